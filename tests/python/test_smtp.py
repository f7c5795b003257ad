"""SMTP: the MX port (smtp), submission (STARTTLS + AUTH) and submissions (implicit TLS)."""

import re
import smtplib
import subprocess

import pytest

from conftest import (
    ALICE,
    BOB,
    EXTERNAL_SENDER,
    HOST,
    PASSWORDS,
    Pop3Client,
    Reply,
    SmtpClient,
    dot_stuff,
    fetch_inbox,
    insecure_tls_context,
    make_message,
    new_token,
    require_tool,
    sasl_plain,
    send_mail,
    smtp_connect,
    smtp_login,
    split_trace,
)


def contents(server, user):
    """The client-sent part of every message in the user's INBOX."""
    return [split_trace(raw).content for raw in fetch_inbox(server, user)]


def rcpt_reply(server, recipient):
    """(code, text) of RCPT TO on the MX port, after a successful MAIL FROM."""
    with smtp_connect(server, "smtp") as smtp:
        smtp.ehlo()
        assert smtp.docmd("MAIL", f"FROM:<{EXTERNAL_SENDER}>")[0] == 250
        return smtp.docmd("RCPT", f"TO:<{recipient}>")


# -- MX port ---------------------------------------------------------------

def test_mx_advertises_extensions_but_no_auth(server):
    with smtp_connect(server, "smtp") as smtp:
        code, _ = smtp.ehlo("client.test")
        assert code == 250
        for extension in ("pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking"):
            assert smtp.has_extn(extension), f"EHLO does not advertise {extension.upper()}"
        assert not smtp.has_extn("auth"), "the MX port must not offer AUTH"


def test_mx_delivery_is_stored_byte_for_byte(server):
    token = new_token()
    message = make_message(token, to=ALICE)

    assert send_mail(server, EXTERNAL_SENDER, [ALICE], message) == {}

    [raw] = fetch_inbox(server, ALICE)
    stored = split_trace(raw)
    assert stored.return_path == f"Return-Path: <{EXTERNAL_SENDER}>\r\n".encode()
    assert stored.content == message
    assert fetch_inbox(server, BOB) == [], "message leaked into another mailbox"


def test_null_reverse_path_is_accepted(server):
    message = make_message(new_token(), sender="MAILER-DAEMON@remote.test")
    assert send_mail(server, "", [ALICE], message) == {}
    [raw] = fetch_inbox(server, ALICE)
    assert split_trace(raw).return_path == b"Return-Path: <>\r\n"


DOT_BODY = (
    b".\r\n"
    b"..\r\n"
    b".leading dot\r\n"
    b"..two leading dots\r\n"
    b"a dot . in the middle\r\n"
    b". \r\n"
    b"last line\r\n"
)


def test_dot_stuffing_round_trip(server):
    message = make_message(new_token(), body=DOT_BODY)
    assert send_mail(server, EXTERNAL_SENDER, [ALICE], message) == {}  # smtplib stuffs

    [raw] = fetch_inbox(server, ALICE)  # poplib unstuffs
    assert split_trace(raw).content == message

    # On the POP3 wire every stored line starting with "." must be stuffed.
    with Pop3Client(server.port("pop3s"), tls=True) as pop:
        pop.login(ALICE)
        assert pop.command("RETR 1").startswith(b"+OK")
        assert pop.multiline_raw() == dot_stuff(raw) + b".\r\n"


def test_raw_data_dot_unstuffing(server):
    body = b"Subject: raw\r\n\r\n..starts with one dot\r\n...\r\n"
    with SmtpClient(server.port("smtp")) as smtp:
        smtp.greet()
        smtp.expect(f"MAIL FROM:<{EXTERNAL_SENDER}>", 250)
        smtp.expect(f"RCPT TO:<{ALICE}>", 250)
        smtp.expect("DATA", 354)
        assert smtp.send(body + b".\r\n")
        assert smtp.reply().code == 250
    [raw] = fetch_inbox(server, ALICE)
    assert split_trace(raw).content == b"Subject: raw\r\n\r\n.starts with one dot\r\n..\r\n"


def test_bare_lf_in_data_becomes_crlf(server):
    with SmtpClient(server.port("smtp")) as smtp:
        smtp.greet()
        smtp.expect(f"MAIL FROM:<{EXTERNAL_SENDER}>", 250)
        smtp.expect(f"RCPT TO:<{ALICE}>", 250)
        smtp.expect("DATA", 354)
        assert smtp.send(b"Subject: lf\n\nline one\nline two\r\n.\r\n")
        assert smtp.reply().code == 250
    [raw] = fetch_inbox(server, ALICE)
    assert split_trace(raw).content == b"Subject: lf\r\n\r\nline one\r\nline two\r\n"


def test_8bit_utf8_body_is_preserved(server):
    body = "Grüße aus Köln — 東京 ✉ ñandú\r\nzweite Zeile: €\r\n".encode("utf-8")
    message = make_message(
        new_token(),
        body=body,
        extra_headers=(
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
        ),
    )
    with smtp_connect(server, "smtp") as smtp:
        refused = smtp.sendmail(EXTERNAL_SENDER, [ALICE], message, mail_options=["BODY=8BITMIME"])
    assert refused == {}
    [raw] = fetch_inbox(server, ALICE)
    assert split_trace(raw).content == message


def test_smtputf8_header(server):
    message = make_message(new_token(), extra_headers=("X-Greeting: Grüße 東京",))
    with smtp_connect(server, "smtp") as smtp:
        smtp.ehlo()
        refused = smtp.sendmail(EXTERNAL_SENDER, [ALICE], message, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert refused == {}
    assert contents(server, ALICE) == [message]


def test_mx_refuses_relaying(server):
    assert rcpt_reply(server, "victim@elsewhere.test") == (554, b"5.7.1 Relay access denied")


def test_mx_refuses_unknown_local_user(server):
    assert rcpt_reply(server, "nobody-here@example.org") == (550, b"5.1.1 No such user here")


def test_recipient_domain_is_case_insensitive(server):
    message = make_message(new_token())
    assert send_mail(server, EXTERNAL_SENDER, ["alice@EXAMPLE.org"], message) == {}
    assert contents(server, ALICE) == [message]


def test_pipelined_commands_get_replies_in_order(server):
    with SmtpClient(server.port("smtp")) as smtp:
        smtp.greet()
        assert smtp.send(
            f"MAIL FROM:<{EXTERNAL_SENDER}>\r\n"
            f"RCPT TO:<{ALICE}>\r\n"
            "RCPT TO:<unknown-person@example.org>\r\n"
            f"RCPT TO:<{BOB}>\r\n"
            "DATA\r\n".encode()
        )
        assert [smtp.reply().code for _ in range(5)] == [250, 250, 550, 250, 354]
        message = make_message(new_token())
        assert smtp.send(message + b".\r\n")
        assert smtp.reply().code == 250
    assert contents(server, ALICE) == [message]
    assert contents(server, BOB) == [message]


def test_deleted_user_becomes_unknown(server):
    assert rcpt_reply(server, BOB)[0] == 250
    server.cli("user", "del", BOB)
    assert rcpt_reply(server, BOB) == (550, b"5.1.1 No such user here")


# -- submission (587) and submissions (465) ---------------------------------

@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_submission_starttls_then_auth(server, mechanism):
    message = make_message(new_token(), sender=ALICE, to=BOB)
    with smtp_connect(server, "submission") as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth"), "AUTH must only be offered after TLS"
        smtp.starttls(context=insecure_tls_context())
        smtp.ehlo()
        offered = set(smtp.esmtp_features.get("auth", "").upper().split())
        assert {"PLAIN", "LOGIN"} <= offered, offered
        assert not smtp.has_extn("starttls"), "STARTTLS offered again inside TLS"

        smtp.user, smtp.password = ALICE, PASSWORDS[ALICE]
        code, _ = smtp.auth(mechanism, getattr(smtp, f"auth_{mechanism.lower()}"))
        assert code == 235
        assert smtp.sendmail(ALICE, [BOB], message) == {}

    [raw] = fetch_inbox(server, BOB)
    stored = split_trace(raw)
    assert stored.return_path == f"Return-Path: <{ALICE}>\r\n".encode()
    assert stored.content == message


def test_submission_wrong_password_is_535(server):
    with smtp_connect(server, "submission") as smtp:
        smtp.ehlo()
        smtp.starttls(context=insecure_tls_context())
        smtp.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
            smtp.login(ALICE, "not-the-password")
    assert failure.value.smtp_code == 535
    assert failure.value.smtp_error == b"5.7.8 Authentication credentials invalid"


def test_submissions_implicit_tls(server):
    message = make_message(new_token(), sender=BOB, to=ALICE)
    with smtp_connect(server, "submissions") as smtp:
        smtp.ehlo()
        assert smtp.sock.version() is not None, "not a TLS connection"
        assert smtp.has_extn("auth")
        assert not smtp.has_extn("starttls"), "STARTTLS offered on an implicit-TLS port"
        smtp.login(BOB, PASSWORDS[BOB])
        assert smtp.sendmail(BOB, [ALICE], message) == {}
    assert contents(server, ALICE) == [message]


@pytest.mark.parametrize(
    "auth_command",
    ["AUTH PLAIN " + sasl_plain(ALICE, PASSWORDS[ALICE]).decode(), "AUTH LOGIN"],
    ids=["plain", "login"],
)
def test_submission_auth_before_tls_is_refused(server, auth_command):
    with SmtpClient(server.port("submission")) as smtp:
        smtp.greet()
        assert smtp.command(auth_command) == Reply(538, [b"5.7.11 Encryption required: use STARTTLS first"])
        # And nothing was authenticated: a submission is not accepted.
        assert smtp.command(f"MAIL FROM:<{ALICE}>") == Reply(530, [b"5.7.0 Authentication required"])


def test_submission_requires_auth(server):
    with smtp_connect(server, "submission") as smtp:
        smtp.ehlo()
        smtp.starttls(context=insecure_tls_context())
        smtp.ehlo()
        assert smtp.docmd("MAIL", f"FROM:<{ALICE}>") == (530, b"5.7.0 Authentication required")
        # No transaction was opened.
        assert smtp.docmd("RCPT", f"TO:<{BOB}>") == (503, b"5.5.1 Send MAIL first")
    assert fetch_inbox(server, BOB) == []


def test_submission_mail_from_must_be_owned(server):
    with smtp_login(server, ALICE) as smtp:
        assert smtp.docmd("MAIL", f"FROM:<{BOB}>") == (553, b"5.7.1 Sender address not owned by authenticated user")
        assert smtp.docmd("MAIL", f"FROM:<{ALICE}>")[0] == 250


def test_submission_queues_remote_recipients(server):
    # Issue 5: an authenticated user's mail to other domains goes into the queue.
    with smtp_login(server, ALICE) as smtp:
        assert smtp.docmd("MAIL", f"FROM:<{ALICE}>")[0] == 250
        code, text = smtp.docmd("RCPT", "TO:<friend@elsewhere.test>")
        assert code == 250, (code, text)
        code, text = smtp.data(b"Subject: hi\r\n\r\nhello\r\n")
        assert code == 250, (code, text)
    listing = server.cli("queue", "list").stdout
    assert "<alice@example.org>" in listing and "friend@elsewhere.test" in listing, listing


# -- aliases --------------------------------------------------------------

def test_alias_delivers_to_every_target(server):
    server.add_alias("sales@example.org", ALICE, BOB)
    assert "sales@example.org" in server.cli("alias", "list").stdout

    message = make_message(new_token(), to="sales@example.org")
    assert send_mail(server, EXTERNAL_SENDER, ["sales@example.org"], message) == {}

    assert contents(server, ALICE) == [message]
    assert contents(server, BOB) == [message]


def test_deleted_alias_becomes_unknown(server):
    server.add_alias("sales@example.org", ALICE)
    assert rcpt_reply(server, "sales@example.org")[0] == 250
    server.cli("alias", "del", "sales@example.org")
    assert rcpt_reply(server, "sales@example.org") == (550, b"5.1.1 No such user here")


def test_catch_all_alias(server):
    assert rcpt_reply(server, "whatever-xyz@example.org")[0] == 550
    server.add_alias("@example.org", ALICE)
    message = make_message(new_token(), to="whatever-xyz@example.org")
    assert send_mail(server, EXTERNAL_SENDER, ["whatever-xyz@example.org"], message) == {}
    assert contents(server, ALICE) == [message]


def test_postmaster_is_always_accepted(server):
    """RFC 5321 §4.5.1: <Postmaster> without a domain and postmaster@ each local domain,
    in any case, with no account of that name: the domain's oldest account reads it."""
    assert rcpt_reply(server, "Postmaster") == (250, b"2.1.5 Recipient OK")
    assert rcpt_reply(server, "POSTMASTER@Example.org") == (250, b"2.1.5 Recipient OK")
    bare = make_message(new_token(), to="postmaster")
    assert send_mail(server, EXTERNAL_SENDER, ["Postmaster"], bare) == {}
    full = make_message(new_token(), to="postmaster@example.org")
    assert send_mail(server, EXTERNAL_SENDER, ["postmaster@EXAMPLE.ORG"], full) == {}
    assert contents(server, ALICE) == [bare, full]
    assert contents(server, BOB) == []
    # Other local parts still need an account.
    assert rcpt_reply(server, "webmaster") == (553, b"5.1.3 Bad recipient address syntax")


def test_postmaster_alias_wins(server):
    server.add_alias("postmaster@example.org", BOB)
    message = make_message(new_token(), to="postmaster")
    assert send_mail(server, EXTERNAL_SENDER, ["postmaster"], message) == {}
    assert contents(server, BOB) == [message]
    assert contents(server, ALICE) == []


# -- limits ---------------------------------------------------------------

def test_declared_size_over_limit_is_552(make_server):
    server = make_server(limits={"max_message_size": 4096})
    with smtp_connect(server, "smtp") as smtp:
        smtp.ehlo()
        assert smtp.esmtp_features.get("size") == "4096"
        code, text = smtp.docmd("MAIL", f"FROM:<{EXTERNAL_SENDER}> SIZE=100000")
    assert (code, text) == (552, b"5.3.4 Message size exceeds fixed maximum of 4096 bytes")


def test_actual_size_over_limit_is_552(make_server):
    server = make_server(limits={"max_message_size": 4096})
    body = (b"y" * 70 + b"\r\n") * 200  # ~14 KB, no SIZE declared
    with SmtpClient(server.port("smtp")) as smtp:
        smtp.greet()
        smtp.expect(f"MAIL FROM:<{EXTERNAL_SENDER}>", 250)
        smtp.expect(f"RCPT TO:<{ALICE}>", 250)
        smtp.expect("DATA", 354)
        assert smtp.send(make_message(new_token(), body=body) + b".\r\n")
        assert smtp.reply() == Reply(552, [b"5.3.4 Message size exceeds fixed maximum of 4096 bytes"])
        # The session survives and still accepts a small message.
        small = make_message(new_token())
        smtp.expect("RSET", 250)
        smtp.expect(f"MAIL FROM:<{EXTERNAL_SENDER}>", 250)
        smtp.expect(f"RCPT TO:<{ALICE}>", 250)
        smtp.expect("DATA", 354)
        assert smtp.send(small + b".\r\n")
        assert smtp.reply().code == 250
    assert contents(server, ALICE) == [small], "the oversized message was stored"


def test_too_many_recipients(make_server):
    server = make_server(limits={"max_recipients": 2})
    server.add_user("carol@example.org", "carol-Secret-1")
    with smtp_connect(server, "smtp") as smtp:
        smtp.ehlo()
        assert smtp.docmd("MAIL", f"FROM:<{EXTERNAL_SENDER}>")[0] == 250
        assert smtp.docmd("RCPT", f"TO:<{ALICE}>")[0] == 250
        assert smtp.docmd("RCPT", f"TO:<{BOB}>")[0] == 250
        assert smtp.docmd("RCPT", "TO:<carol@example.org>") == (452, b"4.5.3 Too many recipients")
        message = make_message(new_token())
        code, _ = smtp.data(message)
        assert code == 250
    assert contents(server, ALICE) == [message]
    assert contents(server, BOB) == [message]
    assert fetch_inbox(server, "carol@example.org", "carol-Secret-1") == []


# -- CHUNKING (BDAT) ---------------------------------------------------------

def test_bdat_chunks_are_stored_verbatim(server):
    token = new_token()
    # BDAT carries octets as-is: no dot-stuffing, and a CRLF may straddle chunks.
    first = f"Subject: bdat {token}\r\n\r\n.this line starts with a dot\r\nsplit line\r".encode()
    second = b"\n.\r\nlast line\r\n"
    with SmtpClient(server.port("smtp")) as smtp:
        smtp.greet()
        smtp.expect(f"MAIL FROM:<{EXTERNAL_SENDER}>", 250)
        smtp.expect(f"RCPT TO:<{ALICE}>", 250)
        assert smtp.send(f"BDAT {len(first)}\r\n".encode() + first)
        assert smtp.reply().code == 250
        assert smtp.send(f"BDAT {len(second)} LAST\r\n".encode() + second)
        assert smtp.reply().code == 250
        smtp.expect("QUIT", 221)
    assert contents(server, ALICE) == [first + second]


def test_bdat_pipelined_with_zero_length_last(server):
    chunk = b"Subject: bdat pipelined\r\n\r\nbody\r\n"
    with SmtpClient(server.port("smtp")) as smtp:
        smtp.greet()
        assert smtp.send(
            f"MAIL FROM:<{EXTERNAL_SENDER}>\r\nRCPT TO:<{BOB}>\r\nBDAT {len(chunk)}\r\n".encode()
            + chunk
            + b"BDAT 0 LAST\r\n"
        )
        assert [smtp.reply().code for _ in range(4)] == [250, 250, 250, 250]
    assert contents(server, BOB) == [chunk]


# -- SMTP smuggling ----------------------------------------------------------

@pytest.mark.parametrize(
    "fake_end",
    [b"\n.\n", b"\r.\r\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r"],
    ids=["LF.LF", "CR.CRLF", "LF.CRLF", "CRLF.LF", "CR.CR"],
)
def test_only_crlf_dot_crlf_ends_data(server, fake_end):
    smuggled = f"MAIL FROM:<smuggler@remote.test>\r\nRCPT TO:<{BOB}>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n"
    with SmtpClient(server.port("smtp")) as smtp:
        smtp.greet()
        smtp.expect(f"MAIL FROM:<{EXTERNAL_SENDER}>", 250)
        smtp.expect(f"RCPT TO:<{ALICE}>", 250)
        smtp.expect("DATA", 354)
        assert smtp.send(b"Subject: outer\r\n\r\nbefore" + fake_end + smuggled.encode() + b".\r\n")
        assert smtp.reply().code == 250
        # If the fake terminator had ended DATA, the smuggled commands would
        # have produced further replies (250, 250, 354, 250) before this 221.
        quit_reply = smtp.command("QUIT")
        assert quit_reply is not None and quit_reply.code == 221, quit_reply

    [raw] = fetch_inbox(server, ALICE)
    assert b"MAIL FROM:<smuggler@remote.test>" in raw
    assert b"evil" in raw
    assert fetch_inbox(server, BOB) == []


# -- swaks ------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["smtp", "submission"])
def test_swaks_pipelining(server, kind):
    swaks = require_tool("swaks")
    token = new_token()
    command = [
        swaks,
        "--server", HOST,
        "--port", str(server.port(kind)),
        "--helo", "client.test",
        "--pipeline",
        "--to", ALICE,
        "--header", f"Subject: swaks {token}",
        "--body", f"swaks body {token}",
        "--timeout", "10",
    ]
    if kind == "smtp":
        command += ["--from", EXTERNAL_SENDER]
    else:
        command += [
            "--from", BOB,
            "--tls",
            "--auth", "PLAIN",
            "--auth-user", BOB,
            "--auth-password", PASSWORDS[BOB],
        ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    transcript = result.stdout + result.stderr
    assert result.returncode == 0, transcript

    # swaks only pipelines if PIPELINING was advertised; then DATA is sent
    # before the reply to MAIL FROM is read. ("->"/"<-" plain, "~>"/"<~" in TLS.)
    lines = [line.strip() for line in transcript.splitlines()]
    mail_sent = next(i for i, line in enumerate(lines) if re.match(r"^[-~]> MAIL FROM:", line))
    data_sent = next(i for i, line in enumerate(lines) if re.match(r"^[-~]> DATA$", line))
    first_reply = next(i for i, line in enumerate(lines) if i > mail_sent and re.match(r"^<[-~] ", line))
    assert data_sent < first_reply, "swaks did not pipeline:\n" + transcript

    [raw] = fetch_inbox(server, ALICE)
    assert f"swaks body {token}".encode() in raw
