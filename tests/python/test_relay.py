"""Outbound relay: the queue, MX and smarthost delivery, retries, DSNs, DKIM, sendmail.

Every peer is on loopback: a DNS server the test controls (relay_fixtures.DnsServer) is
the relay's only resolver, and the "remote" MX hosts are SMTP sinks on 127.0.0.3 and
127.0.0.4 sharing one port, which the relay is told to use instead of 25.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (
    ALICE,
    imaps_login,
    make_message,
    new_token,
    require_binary,
    smtp_login,
)
from relay_fixtures import DnsServer, SmtpSink, fail_first, make_self_signed, reject_recipients

REMOTE = "remote.test"
MX1, MX2 = "127.0.0.3", "127.0.0.4"


class Relay:
    """A letterbox server with a controlled DNS and up to two MX sinks."""

    def __init__(self, make_server, *, relay_options: str = "", smarthost: str = ""):
        # The server runs as nobody and reads ca_file: a directory everyone may enter.
        self.dir = Path(tempfile.mkdtemp(prefix="letterbox-relay-"))
        self.dir.chmod(0o755)
        self.cert, self.key = make_self_signed(
            self.dir, ["mx1.remote.test", "mx2.remote.test", "smarthost.test", MX1, MX2]
        )
        self.cert.chmod(0o644)
        self.dns = DnsServer(
            {
                REMOTE: {"MX": [(10, "mx1.remote.test"), (20, "mx2.remote.test")]},
                "mx1.remote.test": {"A": [MX1]},
                "mx2.remote.test": {"A": [MX2]},
                "smarthost.test": {"A": ["127.0.0.5"]},
            }
        ).start()
        self.sinks: list[SmtpSink] = []
        self.make_server = make_server
        self.relay_options = relay_options
        self.smarthost = smarthost
        self.server = None

    def sink(self, host: str = MX1, port: int | None = None, **options) -> SmtpSink:
        if port is None:
            port = self.sinks[0].port if self.sinks else 0
        options.setdefault("starttls", True)
        sink = SmtpSink(host, port, tls_cert=self.cert, tls_key=self.key, **options).start()
        self.sinks.append(sink)
        return sink

    def start(self, mx_port: int | None = None):
        port = mx_port or (self.sinks[0].port if self.sinks else 9)
        settings = {
            "dns_servers": f'["127.0.0.1:{self.dns.port}"]',
            "mx_port": str(port),
            "ca_file": f'"{self.cert}"',
            "retry_base_secs": "1",
            "retry_max_secs": "2",
        }
        for line in self.relay_options.splitlines():
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
        config = "\n[relay]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()) + self.smarthost
        self.server = self.make_server(extra_config=config)
        return self.server

    def close(self) -> None:
        for sink in self.sinks:
            sink.stop()
        self.dns.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def relay(make_server):
    holder: list[Relay] = []

    def factory(**options) -> Relay:
        r = Relay(make_server, **options)
        holder.append(r)
        return r

    yield factory
    for r in holder:
        r.close()


def submit(server, recipients: list[str], message: bytes, **options) -> dict:
    with smtp_login(server, ALICE) as smtp:
        return smtp.sendmail(ALICE, recipients, message, **options)


def inbox(server) -> list[email.message.Message]:
    imap = imaps_login(server)
    imap.select("INBOX")
    _, data = imap.search(None, "ALL")
    out = []
    for number in data[0].split():
        _, parts = imap.fetch(number, "(BODY.PEEK[])")
        out.append(email.message_from_bytes(parts[0][1], policy=email.policy.compat32))
    imap.logout()
    return out


def wait_for_inbox(server, count: int, timeout: float = 20) -> list[email.message.Message]:
    deadline = time.monotonic() + timeout
    while True:
        messages = inbox(server)
        if len(messages) >= count or time.monotonic() > deadline:
            return messages
        time.sleep(0.3)


def wait_for_empty_queue(server, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        listing = server.cli("queue", "list").stdout
        if "the queue is empty" in listing:
            return
        assert time.monotonic() < deadline, f"queue not empty:\n{listing}"
        time.sleep(0.3)


def dsn_parts(message: email.message.Message) -> tuple[list[dict], dict, email.message.Message]:
    """(per-recipient fields, per-message fields, returned content part) of a DSN."""
    assert message.get_content_type() == "multipart/report", message.get_content_type()
    assert message.get_param("report-type") == "delivery-status"
    parts = message.get_payload()
    assert [p.get_content_type() for p in parts][:2] == ["text/plain", "message/delivery-status"]
    status = parts[1]
    # The email package parses message/delivery-status into header blocks.
    blocks = status.get_payload()
    per_message = dict(blocks[0].items())
    per_recipient = [dict(b.items()) for b in blocks[1:]]
    return per_recipient, per_message, parts[2]


def test_submission_relays_over_verified_starttls_with_dsn_parameters(relay):
    r = relay(relay_options='mx_tls = "verify"\n')
    sink = r.sink(MX1)
    server = r.start()
    token = new_token()
    message = make_message(token, sender=ALICE, to="Bob@remote.test")
    refused = submit(
        server,
        ["Bob@remote.test"],
        message,
        mail_options=["RET=HDRS", "ENVID=env+2Bid"],
        rcpt_options=["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;bob+2Balias@remote.test"],
    )
    assert refused == {}
    (received,) = sink.wait_for(1)
    assert received.mail_from == ALICE and received.rcpt_tos == ["Bob@remote.test"]
    assert received.tls, "STARTTLS must be used when offered"
    assert received.mail_params.get("RET") == "HDRS"
    assert received.mail_params.get("ENVID") == "env+2Bid"
    params = received.rcpt_params("Bob@remote.test")
    assert params.get("NOTIFY") == "FAILURE,DELAY" and params.get("ORCPT") == "rfc822;bob+2Balias@remote.test"
    assert token.encode() in received.data
    assert b"Received: from client.test" in received.data
    assert not received.data.startswith(b"Return-Path:"), "Return-Path is for final delivery only"
    assert sink.sessions[0].pipelined, "PIPELINING was offered"
    wait_for_empty_queue(server)


def raw_submission(server, payload: bytes, chunked: bool) -> tuple[int, bytes]:
    """Submits `payload` byte for byte (smtplib's sendmail would fix the line ends):
    through DATA, or as one BDAT LAST chunk."""
    with smtp_login(server, ALICE) as smtp:
        assert smtp.mail(ALICE)[0] == 250
        assert smtp.rcpt("bob@remote.test")[0] == 250
        if chunked:
            smtp.send(b"BDAT %d LAST\r\n" % len(payload) + payload)
        else:
            assert smtp.docmd("DATA")[0] == 354
            smtp.send(payload + b".\r\n")  # the payload ends with CRLF
        return smtp.getreply()


@pytest.mark.parametrize("chunked", [False, True], ids=["DATA", "BDAT"])
def test_bare_cr_never_leaves_and_smuggles_nothing(relay, chunked):
    """Issue 10: `hello<CR>.<CR>MAIL FROM:...` must not reach a next hop that ends DATA at
    <CR>.<CR>. DATA stores it as CRLF lines; BDAT stores the bytes as sent, and the relay
    writes every bare CR as CRLF (dot-stuffing the line that starts with a dot)."""
    r = relay()
    sink = r.sink(MX1)
    server = r.start()
    payload = (
        b"Subject: bare cr\r\n\r\nhello\r.\rMAIL FROM:<admin@example.org>\r"
        b"RCPT TO:<victim@remote.test>\rline\r\n"
    )
    code, text = raw_submission(server, payload, chunked)
    assert code == 250, text
    (received,) = sink.wait_for(1)
    assert re.search(rb"\r(?!\n)", received.data) is None, received.data
    assert received.data.endswith(
        b"hello\r\n.\r\nMAIL FROM:<admin@example.org>\r\nRCPT TO:<victim@remote.test>\r\n"
        b"line\r\n"
    ), received.data
    assert received.rcpt_tos == ["bob@remote.test"]
    assert not sink.sessions[0].violations
    wait_for_empty_queue(server)
    assert len(sink.wait_for(1)) == 1, "one message, nothing smuggled"


def test_mx_preference_order_and_fallback(relay):
    r = relay()
    # mx1 (preference 10) is a closed port; mx2 (20) answers.
    sink2 = r.sink(MX2)
    server = r.start()
    assert submit(server, ["carol@remote.test"], make_message(new_token(), sender=ALICE)) == {}
    (received,) = sink2.wait_for(1)
    assert received.rcpt_tos == ["carol@remote.test"]
    # Now mx1 answers too: it is preferred.
    sink1 = r.sink(MX1, port=sink2.port)
    assert submit(server, ["dave@remote.test"], make_message(new_token(), sender=ALICE)) == {}
    (received,) = sink1.wait_for(1)
    assert received.rcpt_tos == ["dave@remote.test"]
    assert len(sink2.messages) == 1
    assert r.dns.count(REMOTE, "MX") >= 1
    # A domain without MX records: its own address is the implicit MX.
    r.dns.set("plain.test", "A", [MX1])
    assert submit(server, ["erin@plain.test"], make_message(new_token(), sender=ALICE)) == {}
    assert any(m.rcpt_tos == ["erin@plain.test"] for m in sink1.wait_for(2))


def test_temporary_failure_then_success_on_retry(relay):
    r = relay()
    sink = r.sink(MX1, hooks=fail_first(1, "RCPT", "451 4.3.0 Greylisted, come back later"))
    server = r.start()
    assert submit(server, ["frank@remote.test"], make_message(new_token(), sender=ALICE)) == {}
    deadline = time.monotonic() + 10
    while "deferred" not in server.cli("queue", "list").stdout:
        assert time.monotonic() < deadline, "the 451 never showed in the queue"
        time.sleep(0.1)
    assert "451 4.3.0 Greylisted" in server.cli("queue", "show", "1").stdout
    (received,) = sink.wait_for(1, timeout=20)
    assert received.rcpt_tos == ["frank@remote.test"]
    assert sink.connections >= 2
    wait_for_empty_queue(server)
    assert inbox(server) == [], "no bounce or delay notice for a retried success"


def test_permanent_failure_bounces_with_a_dsn(relay):
    r = relay()
    sink = r.sink(MX1, hooks=reject_recipients({
        "nobody@remote.test": "550 5.1.1 No such user here",
        "quiet@remote.test": "550 5.1.1 No such user here",
    }))
    server = r.start()
    token = new_token()
    message = make_message(token, sender=ALICE)
    with smtp_login(server, ALICE) as smtp:
        smtp.ehlo()
        assert "dsn" in smtp.esmtp_features
        smtp.mail(ALICE, ["ENVID=QQ314159"])
        assert smtp.rcpt("nobody@remote.test", ["ORCPT=rfc822;nobody@remote.test"])[0] == 250
        assert smtp.rcpt("quiet@remote.test", ["NOTIFY=NEVER"])[0] == 250
        assert smtp.rcpt("ok@remote.test")[0] == 250
        assert smtp.data(message)[0] == 250
    (delivered,) = sink.wait_for(1)
    assert delivered.rcpt_tos == ["ok@remote.test"]
    (bounce,) = wait_for_inbox(server, 1)
    assert bounce["From"].startswith("Mail Delivery System <MAILER-DAEMON@")
    assert bounce["Auto-Submitted"] == "auto-replied"
    recipients, per_message, returned = dsn_parts(bounce)
    assert per_message["Reporting-MTA"] == "dns; mx.test"
    assert per_message["Original-Envelope-Id"] == "QQ314159"
    assert len(recipients) == 1, "NOTIFY=NEVER must suppress the notice for quiet@"
    (rcpt,) = recipients
    assert rcpt["Final-Recipient"] == "rfc822; nobody@remote.test"
    assert rcpt["Original-Recipient"] == "rfc822; nobody@remote.test"
    assert rcpt["Action"] == "failed" and rcpt["Status"] == "5.1.1"
    assert rcpt["Remote-MTA"] == "dns; mx1.remote.test"
    assert rcpt["Diagnostic-Code"].startswith("smtp; 550 5.1.1 No such user")
    assert returned.get_content_type() == "text/rfc822-headers"
    assert token in returned.get_payload()
    wait_for_empty_queue(server)


def test_expiry_at_the_maximum_age_bounces(relay):
    r = relay(relay_options="max_age_secs = 3\n")
    sink = r.sink(MX1, hooks=fail_first(1000, "RCPT", "451 4.7.1 Try again much later"))
    server = r.start()
    assert submit(server, ["gina@remote.test"], make_message(new_token(), sender=ALICE)) == {}
    (bounce,) = wait_for_inbox(server, 1, timeout=30)
    (rcpt,), _, _ = dsn_parts(bounce)
    assert rcpt["Action"] == "failed" and rcpt["Status"] == "4.4.7", rcpt
    assert "451 4.7.1" in rcpt["Diagnostic-Code"]
    assert sink.messages == []
    wait_for_empty_queue(server)


def test_null_mx_and_unknown_domain_bounce_at_once(relay):
    r = relay()
    r.dns.set("null.test", "MX", [(0, ".")])
    server = r.start()
    assert submit(server, ["x@null.test", "y@nx.test"], make_message(new_token(), sender=ALICE)) == {}
    bounces = wait_for_inbox(server, 1, timeout=20)
    statuses = {}
    for bounce in bounces:
        for rcpt in dsn_parts(bounce)[0]:
            statuses[rcpt["Final-Recipient"]] = rcpt["Status"]
    assert statuses.get("rfc822; x@null.test") == "5.1.10", statuses
    if "rfc822; y@nx.test" not in statuses:
        statuses.update({r["Final-Recipient"]: r["Status"] for b in wait_for_inbox(server, 2) for r in dsn_parts(b)[0]})
    assert statuses.get("rfc822; y@nx.test") == "5.1.2", statuses


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_smarthost_with_auth(relay, mode):
    smarthost = (
        "\n[[relay.smarthost]]\n"
        'host = "smarthost.test"\n'
        "port = {port}\n"
        f'tls = "{mode}"\n'
        'username = "relay-user"\n'
        'password = "relay-Secret-1"\n'
    )
    r = relay()
    sink = SmtpSink(
        "127.0.0.5",
        tls_cert=r.cert,
        tls_key=r.key,
        implicit_tls=mode == "implicit",
        starttls=mode == "starttls",
        auth={"relay-user": "relay-Secret-1"},
    ).start()
    r.sinks.append(sink)
    r.smarthost = smarthost.format(port=sink.port)
    server = r.start(mx_port=9)
    assert submit(server, ["hank@elsewhere.test"], make_message(new_token(), sender=ALICE)) == {}
    (received,) = sink.wait_for(1)
    assert received.auth_user == "relay-user" and received.tls
    assert received.rcpt_tos == ["hank@elsewhere.test"]
    assert r.dns.count("elsewhere.test", "MX") == 0, "a smarthost route needs no MX lookup"


def test_kill_9_mid_delivery_then_restart_delivers_exactly_once(relay):
    r = relay()
    sink = r.sink(MX1, hold_data=True)
    server = r.start()
    token = new_token()
    assert submit(server, ["ivan@remote.test"], make_message(token, sender=ALICE)) == {}
    sink.wait_until_holding()
    server.kill9()
    sink.release_data()
    time.sleep(0.5)
    assert sink.messages == [], "the relay vanished before the 250: not delivered"
    sink_data_holds = len(sink.aborted)
    assert sink_data_holds == 1
    server.start()
    (received,) = sink.wait_for(1, timeout=20)
    assert token.encode() in received.data
    wait_for_empty_queue(server)
    time.sleep(2)
    assert len(sink.messages) == 1


def test_dkim_signature_verifies_with_mail_auth(relay):
    r = relay()
    sink = r.sink(MX1)
    server = r.start()
    generated = server.cli("dkim", "generate", "example.org", "--selector", "lb1").stdout
    records = re.findall(r'^(\S+)\. IN TXT (.+)$', generated, re.M)
    assert len(records) == 2, generated
    for name, value in records:
        strings = re.findall(r'"([^"]*)"', value)
        r.dns.set(name, "TXT", [strings])
    assert any("k=ed25519" in v for _, v in records) and any("k=rsa" in v for _, v in records)
    assert submit(server, ["judy@remote.test"], make_message(new_token(), sender=ALICE)) == {}
    (received,) = sink.wait_for(1)
    assert received.data.count(b"DKIM-Signature:") == 2
    verify = [require_binary(), "dkim", "verify", "--dns", f"127.0.0.1:{r.dns.port}"]
    result = subprocess.run(verify, input=received.data, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(b"Pass") == 2, result.stdout
    # A changed body must fail.
    tampered = received.data.replace(b"This is message", b"This is massage", 1)
    assert tampered != received.data
    result = subprocess.run(verify, input=tampered, capture_output=True, timeout=60)
    assert result.returncode != 0, result.stdout


def test_sendmail_t_from_a_shell_script(relay, tmp_path):
    r = relay()
    sink = r.sink(MX1)
    server = r.start()
    link = tmp_path / "bin" / "sendmail"
    link.parent.mkdir()
    link.symlink_to(require_binary())
    script = tmp_path / "cron-job.sh"
    script.write_text(
        "#!/bin/sh\n"
        "set -e\n"
        "printf 'To: kim@remote.test, alice@example.org\\nBcc: hidden@remote.test\\n"
        "Subject: nightly report\\n\\nall good\\n.\\nnot part of it\\n' | sendmail -t -f cron@example.org\n"
        "printf 'Subject: second\\n\\nvia letterbox sendmail\\n' | letterbox sendmail -oi lee@remote.test\n"
    )
    env = dict(os.environ)
    env["PATH"] = f"{link.parent}:{Path(require_binary()).parent}:{env['PATH']}"
    env["LETTERBOX_CONFIG"] = str(server.config_path)
    env["LETTERBOX_DATA"] = str(server.data_dir)
    result = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    received = sink.wait_for(2, timeout=20)
    by_subject = {re.search(rb"Subject: (.*)\r\n", m.data).group(1): m for m in received}
    report = by_subject[b"nightly report"]
    assert sorted(report.rcpt_tos) == ["hidden@remote.test", "kim@remote.test"]
    assert report.mail_from == "cron@example.org"
    assert b"Bcc" not in report.data and b"not part of it" not in report.data
    assert b"\r\nMessage-ID: <" in report.data and b"\r\nDate: " in report.data
    assert by_subject[b"second"].rcpt_tos == ["lee@remote.test"]
    (local,) = wait_for_inbox(server, 1)
    assert local["Subject"] == "nightly report"
    # An unknown local user is refused with sysexits' EX_NOUSER.
    result = subprocess.run(
        [str(link), "nobody-here@example.org"], input=b"Subject: x\n\nx\n", env=env, capture_output=True, timeout=60
    )
    assert result.returncode == 67, result.stderr


def test_queue_commands(relay):
    r = relay(relay_options="retry_base_secs = 60\nretry_max_secs = 60\n")
    gate = {"open": False}
    sink = r.sink(MX1, hooks=lambda step: None if gate["open"] or step.name != "RCPT" else "451 4.3.0 Not now")
    server = r.start()
    assert submit(server, ["mia@remote.test"], make_message(new_token(), sender=ALICE)) == {}
    assert submit(server, ["ned@remote.test"], make_message(new_token(), sender=ALICE)) == {}
    deadline = time.monotonic() + 10
    while server.cli("queue", "list").stdout.count("deferred") < 2:
        assert time.monotonic() < deadline, server.cli("queue", "list").stdout
        time.sleep(0.2)
    listing = server.cli("queue", "list").stdout
    ids = [int(line.split()[0]) for line in listing.splitlines()]
    assert len(ids) == 2
    # retry: now the sink accepts.
    gate["open"] = True
    server.cli("queue", "retry", str(ids[0]))
    (received,) = sink.wait_for(1, timeout=10)
    assert received.rcpt_tos == ["mia@remote.test"]
    # bounce: the other one comes back to alice as a failure notice.
    server.cli("queue", "bounce", str(ids[1]))
    (bounce,) = wait_for_inbox(server, 1)
    (rcpt,), _, _ = dsn_parts(bounce)
    assert rcpt["Final-Recipient"] == "rfc822; ned@remote.test" and rcpt["Action"] == "failed"
    wait_for_empty_queue(server)
    assert server.cli("queue", "delete", "999", check=False).returncode != 0


def test_notify_success_for_a_local_recipient(relay):
    r = relay()
    server = r.start()
    token = new_token()
    with smtp_login(server, ALICE) as smtp:
        smtp.ehlo()
        smtp.mail(ALICE, ["ENVID=local-1"])
        assert smtp.rcpt("bob@example.org", ["NOTIFY=SUCCESS", "ORCPT=rfc822;bob@example.org"])[0] == 250
        assert smtp.data(make_message(token, sender=ALICE, to="bob@example.org"))[0] == 250
    (notice,) = wait_for_inbox(server, 1)
    (rcpt,), per_message, returned = dsn_parts(notice)
    assert notice["Subject"] == "Delivery Status Notification (Success)"
    assert rcpt["Action"] == "delivered" and rcpt["Status"] == "2.0.0"
    assert rcpt["Final-Recipient"] == "rfc822; bob@example.org"
    assert per_message["Original-Envelope-Id"] == "local-1"
    assert token in returned.get_payload()


@pytest.mark.parametrize(
    "behaviour",
    ["long-line", "garbage", "hang-up-after-ehlo", "binary"],
)
def test_a_misbehaving_mx_defers_the_message_without_harm(relay, behaviour):
    """The relay's client must survive any next hop: a clear temporary error, no panic."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind((MX1, 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    if behaviour == "garbage":
                        conn.sendall(b"hello, this is not SMTP\r\n")
                        continue
                    conn.sendall(b"220 evil.test ESMTP\r\n")
                    conn.recv(4096)  # EHLO
                    if behaviour == "long-line":
                        conn.sendall(b"250-" + b"x" * 200_000)
                    elif behaviour == "binary":
                        conn.sendall(b"250 \xff\xfe\x00\x01\r\n")
                        conn.recv(4096)
                        conn.sendall(bytes(range(256)) * 10)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        r = relay()
        server = r.start(mx_port=listener.getsockname()[1])
        assert submit(server, ["olga@remote.test"], make_message(new_token(), sender=ALICE)) == {}
        deadline = time.monotonic() + 20
        while "deferred" not in server.cli("queue", "list").stdout:
            assert time.monotonic() < deadline, server.cli("queue", "list").stdout
            time.sleep(0.2)
        shown = server.cli("queue", "show", "1").stdout
        assert "last error:" in shown, shown
        assert server.running
    finally:
        stop.set()
        thread.join()
        listener.close()
