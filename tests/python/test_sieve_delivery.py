"""Sieve at delivery, end to end over SMTP: scripts stored with `letterbox sieve put`,
mail sent with smtplib, the result read back over IMAP (imaplib) and, for mail that
leaves, by an SMTP sink on loopback (see test_relay.py's fixtures)."""

from __future__ import annotations

import email
import email.policy
import os
import re
import smtplib
import subprocess
import time

import pytest

from conftest import (
    ALICE,
    BOB,
    EXTERNAL_SENDER,
    imaps_login,
    make_message,
    new_token,
    require_binary,
    smtp_connect,
    smtp_login,
)
from test_relay import REMOTE, relay  # noqa: F401  (the relay fixture)


def spf_verdict(dns_server, sender: str) -> str:
    """pyspf's verdict for mail from `sender` arriving from 127.0.0.1, asking the test's DNS."""
    import dns.resolver
    import spf

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = dns_server.port
    resolver.lifetime = 5
    saved = dns.resolver.default_resolver
    dns.resolver.default_resolver = resolver
    try:
        verdict, _ = spf.check2(i="127.0.0.1", s=sender, h="mx.test")
    finally:
        dns.resolver.default_resolver = saved
    return verdict


def put_script(server, account: str, text: str, name: str = "main") -> None:
    server.cli("sieve", "put", account, name, stdin_text=text)
    server.cli("sieve", "activate", account, name)


def mx_send(server, message: bytes, recipients: list[str], sender: str = EXTERNAL_SENDER) -> dict:
    with smtp_connect(server) as smtp:
        return smtp.sendmail(sender, recipients, message)


def mailbox(server, user: str, name: str = "INBOX") -> list[tuple[str, email.message.Message]]:
    """(flags, message) of every message in the mailbox, \\Recent left out."""
    imap = imaps_login(server, user)
    status, _ = imap.select(f'"{name}"', readonly=True)
    assert status == "OK", name
    _, data = imap.search(None, "ALL")
    out = []
    for number in data[0].split():
        _, parts = imap.fetch(number, "(FLAGS BODY.PEEK[])")
        flags = re.search(rb"FLAGS \(([^)]*)\)", parts[0][0]).group(1).decode()
        # \Recent is IMAP's, per session: not what the script set.
        flags = " ".join(f for f in flags.split() if f != "\\Recent")
        out.append((flags, email.message_from_bytes(parts[0][1], policy=email.policy.compat32)))
    imap.logout()
    return out


def wait_for(server, user: str, count: int, name: str = "INBOX", timeout: float = 15):
    deadline = time.monotonic() + timeout
    while True:
        messages = mailbox(server, user, name)
        if len(messages) >= count or time.monotonic() > deadline:
            return messages
        time.sleep(0.2)


def test_cli_keeps_scripts_and_refuses_bad_ones(server):
    good = 'require "fileinto";\nif header :contains "subject" "x" { fileinto "X"; }\n'
    assert server.cli("sieve", "put", ALICE, "one", stdin_text=good).stdout == "stored one\n"
    bad = server.cli("sieve", "put", ALICE, "two", stdin_text='require "fileinto";\nfileinto;\n', check=False)
    assert bad.returncode != 0
    assert bad.stderr.strip() == "letterbox: two: line 2, column 1: fileinto needs a string"
    assert server.cli("sieve", "activate", ALICE, "one").stdout == "one is active\n"
    assert server.cli("sieve", "list", ALICE).stdout == f"one  {len(good)} bytes (active)\n"
    assert server.cli("sieve", "get", ALICE, "one").stdout == good
    refused = server.cli("sieve", "del", ALICE, "one", check=False)
    assert refused.returncode != 0 and "script one is active" in refused.stderr
    server.cli("sieve", "deactivate", ALICE)
    assert server.cli("sieve", "del", ALICE, "one").stdout == "deleted one\n"
    assert server.cli("sieve", "list", ALICE).stdout == ""


def with_subject(subject: str) -> bytes:
    return re.sub(rb"Subject: test [0-9a-f]+", f"Subject: {subject}".encode(),
                  make_message(new_token()), count=1)


def test_fileinto_create_flags_discard_and_implicit_keep(server):
    put_script(server, ALICE, r'''require ["fileinto", "mailbox", "imap4flags", "variables"];
if header :matches "subject" "report *" {
  fileinto :create :flags "\\Flagged $Report" "Reports/${1}";
  stop;
}
if header :contains "subject" "drop me" { discard; stop; }
addflag "\\Seen";
''')
    for subject in ("report 2026", "drop me please", "hello"):
        assert mx_send(server, with_subject(subject), [ALICE]) == {}
    ((flags, filed),) = mailbox(server, ALICE, "Reports/2026")
    assert sorted(flags.split()) == ["$Report", "\\Flagged"]
    assert filed["Subject"] == "report 2026"
    inbox = mailbox(server, ALICE)
    assert [(flags, m["Subject"]) for flags, m in inbox] == [("\\Seen", "hello")]


def test_a_failing_script_keeps_mail_and_tells_the_owner_once(server):
    put_script(server, ALICE, 'require "fileinto";\nfileinto "No such mailbox";\n')
    tokens = [new_token(), new_token()]
    for token in tokens:
        assert mx_send(server, make_message(token), [ALICE]) == {}
    inbox = wait_for(server, ALICE, 3)
    subjects = sorted(m["Subject"] for _, m in inbox)
    assert subjects == sorted([f"test {t}" for t in tokens] + ["Your Sieve script failed"])
    notice = next(m for _, m in inbox if m["Subject"] == "Your Sieve script failed")
    assert 'fileinto \\"No such mailbox\\": no such mailbox' in notice.get_payload() or \
        'fileinto "No such mailbox": no such mailbox' in notice.get_payload()


def test_reject_at_data_for_the_only_recipient_and_a_bounce_otherwise(server):
    put_script(server, ALICE, 'require "reject";\nif header :contains "subject" "test" { reject "Not wanted here"; }\n')
    with pytest.raises(smtplib.SMTPDataError) as refused:
        mx_send(server, make_message(new_token()), [ALICE])
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error == b"5.7.1 Not wanted here"
    assert mailbox(server, ALICE) == []
    # Two recipients: bob gets his copy, the sender (bob himself here) a failure notice.
    token = new_token()
    with smtp_login(server, BOB) as smtp:
        assert smtp.sendmail(BOB, [ALICE, BOB], make_message(token, sender=BOB)) == {}
    inbox = wait_for(server, BOB, 2)
    assert mailbox(server, ALICE) == []
    bounce = next(m for _, m in inbox if m.get_content_type() == "multipart/report")
    status = bounce.get_payload()[1].as_string()
    assert "Action: failed" in status and "Status: 5.7.1" in status
    assert "rejected by the recipient's filter: Not wanted here" in status
    assert any(m["Subject"] == f"test {token}" for _, m in inbox)


def test_vacation_once_per_period_and_never_to_lists(server):
    put_script(server, ALICE, 'require "vacation";\nvacation :days 1 :subject "Away" "I am away until Monday.";\n')
    for _ in range(2):
        with smtp_login(server, BOB) as smtp:
            smtp.sendmail(BOB, [ALICE], make_message(new_token(), sender=BOB))
    replies = wait_for(server, BOB, 1)
    time.sleep(1)
    replies = mailbox(server, BOB)
    assert len(replies) == 1, "one reply per sender and period"
    (_, reply), = replies
    assert reply["Subject"] == "Away"
    assert reply["From"] == ALICE and reply["To"] == f"<{BOB}>"
    assert reply["Auto-Submitted"] == "auto-replied (vacation)"
    assert reply["Return-Path"] == "<>"
    assert reply.get_payload().strip() == "I am away until Monday."
    # A remote sender's reply is queued, with the null sender; list mail gets none.
    assert server.cli("queue", "list").stdout == "the queue is empty\n"
    listed = make_message(new_token(), extra_headers=("List-Id: <devel.remote.test>",))
    assert mx_send(server, listed, [ALICE]) == {}
    time.sleep(0.5)
    assert server.cli("queue", "list").stdout == "the queue is empty\n"
    assert mx_send(server, make_message(new_token()), [ALICE]) == {}
    deadline = time.monotonic() + 10
    while "the queue is empty" in (listing := server.cli("queue", "list").stdout):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert re.fullmatch(rf"\S+ +\S+ +\d+ bytes +<> +{EXTERNAL_SENDER} \(.*\)\n", listing), listing


def test_redirect_leaves_with_an_srs_sender_and_its_bounce_comes_back(relay):  # noqa: F811
    r = relay()
    sink = r.sink()
    server = r.start()
    put_script(server, ALICE, 'redirect "friend@remote.test";\n')
    token = new_token()
    sender = f"someone@{REMOTE}"
    assert mx_send(server, make_message(token, sender=sender), [ALICE], sender=sender) == {}
    (forwarded,) = sink.wait_for(1, timeout=20)
    assert forwarded.rcpt_tos == ["friend@remote.test"]
    match = re.fullmatch(r"SRS0=[a-z2-7]{8}=[a-z2-7]{2}=remote\.test=someone@example\.org",
                         forwarded.mail_from)
    assert match, forwarded.mail_from
    assert token.encode() in forwarded.data
    assert mailbox(server, ALICE) == [], "redirect without :copy keeps no copy"
    # Why SRS: at the next hop (pyspf over the test's DNS), the original sender's SPF
    # fails for our address, the rewritten sender's passes.
    r.dns.set("example.org", "TXT", ["v=spf1 ip4:127.0.0.1 -all"])
    r.dns.set(REMOTE, "TXT", ["v=spf1 ip4:192.0.2.1 -all"])
    assert spf_verdict(r.dns, forwarded.mail_from) == "pass"
    assert spf_verdict(r.dns, sender) == "fail"
    # The next hop bounces it to the SRS address: it goes on to the original sender.
    bounce = (f"From: MAILER-DAEMON@{REMOTE}\r\nTo: <{forwarded.mail_from}>\r\n"
              f"Subject: Undelivered {token}\r\n\r\nbounced\r\n").encode()
    assert mx_send(server, bounce, [forwarded.mail_from], sender="") == {}
    messages = sink.wait_for(2, timeout=20)
    back = messages[1]
    assert back.mail_from == "" and back.rcpt_tos == [sender]
    assert f"Undelivered {token}".encode() in back.data
    # Only bounces may use it: from anyone else it is nobody, or it would be a relay.
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        mx_send(server, bounce, [forwarded.mail_from], sender=f"spammer@{REMOTE}")
    # A forged SRS address is nobody.
    forged = forwarded.mail_from.replace("someone", "mallory")
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        mx_send(server, bounce, [forged], sender="")


def test_vacation_command_on_and_off_keeps_the_own_filters(server):
    put_script(server, ALICE, 'require "imap4flags";\naddflag "\\\\Flagged";\n', name="mine")
    on = server.cli("vacation", ALICE, "on", "--subject", "Out of office", "--until", "2099-12-31",
                    "--days", "2", stdin_text="Back in January.\n.\n")
    assert on.stdout == f"vacation is on for {ALICE} until 2099-12-31\n"
    assert server.cli("vacation", ALICE, "status").stdout == "on until 2099-12-31\n"
    with smtp_login(server, BOB) as smtp:
        smtp.sendmail(BOB, [ALICE], make_message(new_token(), sender=BOB))
    ((_, reply),) = wait_for(server, BOB, 1)
    assert reply["Subject"] == "Out of office"
    assert reply.get_payload() == "Back in January.\r\n.\r\n"
    # The account's own script still ran behind the reply.
    ((flags, _),) = mailbox(server, ALICE)
    assert flags == "\\Flagged"
    assert server.cli("vacation", ALICE, "off").stdout == f"vacation is off for {ALICE}\n"
    assert server.cli("sieve", "list", ALICE).stdout.endswith("(active)\n")
    assert server.cli("sieve", "list", ALICE).stdout.startswith("mine ")
    assert server.cli("vacation", ALICE, "status").stdout == "off\n"


def test_an_alias_forwards_outside_with_an_srs_sender(relay):  # noqa: F811
    r = relay()
    sink = r.sink()
    server = r.start()
    server.cli("alias", "add", "fwd@example.org", "friend@remote.test", ALICE)
    refused = server.cli("alias", "add", "typo@example.org", "nobody@example.org", check=False)
    assert refused.returncode != 0
    assert "alias target nobody@example.org is in a local domain but is no account" in refused.stderr
    token = new_token()
    sender = f"someone@{REMOTE}"
    message = make_message(token, sender=sender, to="fwd@example.org")
    assert mx_send(server, message, ["fwd@example.org"], sender=sender) == {}
    (forwarded,) = sink.wait_for(1, timeout=20)
    assert forwarded.rcpt_tos == ["friend@remote.test"]
    assert re.fullmatch(r"SRS0=[a-z2-7]{8}=[a-z2-7]{2}=remote\.test=someone@example\.org",
                        forwarded.mail_from), forwarded.mail_from
    assert token.encode() in forwarded.data
    ((_, copy),) = mailbox(server, ALICE)
    assert copy["Subject"] == f"test {token}"


def test_sendmail_runs_the_scripts_too(server):
    put_script(server, ALICE, 'require ["fileinto", "mailbox"];\n'
                              'if header :contains "subject" "nightly" { fileinto :create "Reports"; }\n')
    env = dict(os.environ, LETTERBOX_CONFIG=str(server.config_path), LETTERBOX_DATA=str(server.data_dir))
    result = subprocess.run([require_binary(), "sendmail", "-f", BOB, ALICE],
                            input=b"Subject: nightly report\n\nall good\n", env=env,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    ((_, filed),) = mailbox(server, ALICE, "Reports")
    assert filed["Subject"] == "nightly report"
    assert mailbox(server, ALICE) == []


def test_a_bounce_to_an_srs_address_goes_on_with_the_inbound_checks_on(relay):  # noqa: F811
    # The checks run on port 25 (the default) and classify mail with no local copy.
    r = relay(smarthost="\n[inbound]\nenabled = true\n")
    sink = r.sink()
    server = r.start()
    put_script(server, ALICE, 'redirect "friend@remote.test";\n')
    sender = f"someone@{REMOTE}"
    assert mx_send(server, make_message(new_token(), sender=sender), [ALICE], sender=sender) == {}
    (forwarded,) = sink.wait_for(1, timeout=20)
    token = new_token()
    bounce = (f"From: MAILER-DAEMON@{REMOTE}\r\nTo: <{forwarded.mail_from}>\r\n"
              f"Subject: Undelivered {token}\r\n\r\nbounced\r\n").encode()
    assert mx_send(server, bounce, [forwarded.mail_from], sender="") == {}
    back = sink.wait_for(2, timeout=20)[1]
    assert back.mail_from == "" and back.rcpt_tos == [sender]
    assert f"Undelivered {token}".encode() in back.data
