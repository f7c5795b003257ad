"""Hostile and broken clients: the server answers sanely, stays up and never panics."""

import random
import re
import resource
import selectors
import socket
import time

import pytest

from conftest import (
    ALICE,
    EXTERNAL_SENDER,
    HOST,
    PASSWORDS,
    Pop3Client,
    SmtpClient,
    assert_delivery_works,
    fetch_inbox,
    make_message,
    new_token,
    split_trace,
)


def assert_healthy(server):
    """A new client completes a full transaction, and nothing panicked."""
    assert server.running, "server process died"
    assert_delivery_works(server)
    server.assert_no_panic()


def open_client(server, kind):
    if kind == "smtp":
        client = SmtpClient(server.port("smtp"))
        greeting = client.reply()
        assert greeting is not None and greeting.code == 220
    else:
        client = Pop3Client(server.port("pop3"))
        assert client.status().startswith(b"+OK")
    return client


def first_response(client, kind):
    """The next reply as (is_error, raw); (None, b"") if the server hung up.
    For SMTP a 5xx, or a 421 closing notice, counts as an error reply."""
    if kind == "smtp":
        reply = client.reply()
        if reply is None:
            return None, b""
        return reply.code >= 500 or reply.code == 421, str(reply.code).encode()
    line = client.status()
    if not line:
        return None, b""
    assert line.startswith((b"+OK", b"-ERR", b"+ ")), f"malformed POP3 response {line!r}"
    return line.startswith(b"-ERR"), line


@pytest.mark.parametrize("kind", ["smtp", "pop3"])
def test_overlong_command_line(server, kind):
    with open_client(server, kind) as client:
        client.send(b"NOOP " + b"A" * 100_000)
        client.send(b"\r\n")
        is_error, raw = first_response(client, kind)
        assert is_error in (True, None), f"overlong line was accepted: {raw!r}"
    assert_healthy(server)


@pytest.mark.parametrize("kind", ["smtp", "pop3"])
def test_binary_garbage(server, kind):
    rng = random.Random(20240101)
    garbage = bytearray(rng.randbytes(16_384))
    for position in range(0, len(garbage), 97):
        garbage[position : position + 2] = b"\r\n"
    garbage[5:9] = b"\0\0\0\0"

    with open_client(server, kind) as client:
        client.sock.settimeout(3)
        client.send(bytes(garbage))
        client.send(b"\r\n")
        # Whatever comes back must be well-formed errors, then possibly a hang-up.
        while True:
            try:
                line = client.readline()
            except socket.timeout:
                break
            if not line:
                break
            if kind == "smtp":
                assert re.match(rb"^[45]\d\d[ -]", line), f"unexpected reply to garbage: {line!r}"
            else:
                assert line.startswith(b"-ERR"), f"unexpected response to garbage: {line!r}"
    assert_healthy(server)


def test_nul_bytes_in_smtp_commands(server):
    with SmtpClient(server.port("smtp")) as smtp:
        smtp.greet()
        for line in (b"NO\0OP", b"\0\0\0", b"MAIL FROM:<ev\0il@remote.test>"):
            reply = smtp.command(line)
            assert reply is not None and 500 <= reply.code < 600, (line, reply)
        smtp.expect("NOOP", 250)
    assert_healthy(server)


def test_invalid_utf8_in_smtp_addresses(server):
    with SmtpClient(server.port("smtp")) as smtp:
        smtp.greet()
        reply = smtp.command(b"MAIL FROM:<\xff\xfe@remote.test> SMTPUTF8")
        assert reply is not None and 500 <= reply.code < 600, reply
        smtp.expect(f"MAIL FROM:<{EXTERNAL_SENDER}>", 250)
        reply = smtp.command(b"RCPT TO:<\xc3\x28@example.org>")
        assert reply is not None and 500 <= reply.code < 600, reply
        # The transaction is still usable afterwards.
        smtp.expect(f"RCPT TO:<{ALICE}>", 250)
        smtp.expect("DATA", 354)
        message = make_message(new_token())
        assert smtp.send(message + b".\r\n")
        assert smtp.reply().code == 250
    assert [split_trace(raw).content for raw in fetch_inbox(server, ALICE)] == [message]
    server.assert_no_panic()


def test_invalid_utf8_in_pop3_user(server):
    with Pop3Client(server.port("pop3s"), tls=True) as pop:
        assert pop.status().startswith(b"+OK")
        pop.command(b"USER \xff\xfe\xc3\x28")
        assert pop.command(b"PASS \xff").startswith(b"-ERR")
        assert pop.command(f"USER {ALICE}").startswith(b"+OK")
        assert pop.command(f"PASS {PASSWORDS[ALICE]}").startswith(b"+OK")
    assert_healthy(server)


@pytest.mark.parametrize(
    "partial_tail",
    [b"half a mess", b"line\r\n.", b"line\r\n.\r"],
    ids=["mid-line", "after-dot", "after-dot-cr"],
)
def test_disconnect_mid_data_delivers_nothing(server, partial_tail):
    token = new_token()
    with SmtpClient(server.port("smtp")) as smtp:
        smtp.greet()
        smtp.expect(f"MAIL FROM:<{EXTERNAL_SENDER}>", 250)
        smtp.expect(f"RCPT TO:<{ALICE}>", 250)
        smtp.expect("DATA", 354)
        assert smtp.send(f"Subject: partial {token}\r\n\r\n".encode() + partial_tail)
    time.sleep(0.3)  # give a wrongly-committing server the chance to do so

    assert_healthy(server)
    inbox = fetch_inbox(server, ALICE)
    assert len(inbox) == 1, "an interrupted message was delivered"
    assert token.encode() not in inbox[0]


def raise_fd_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {needed}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return soft


def read_first_lines(sockets, timeout):
    """First line (or b"" at EOF, None on silence) from each socket, read concurrently."""
    results = {sock: b"" for sock in sockets}
    done = {}
    selector = selectors.DefaultSelector()
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while len(done) < len(sockets) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            sock = key.fileobj
            try:
                chunk = sock.recv(4096)
            except OSError:
                chunk = b""
            results[sock] += chunk
            if not chunk or b"\n" in results[sock]:
                done[sock] = results[sock].split(b"\n")[0]
                selector.unregister(sock)
    selector.close()
    return [done.get(sock) for sock in sockets]


def test_many_idle_connections_from_one_address(make_server):
    connections_wanted = 1000
    per_ip_limit = 50
    original_soft = raise_fd_limit(connections_wanted + 200)
    server = make_server(limits={"max_connections_per_ip": per_ip_limit, "max_connections": 1000})
    sockets = []
    try:
        for _ in range(connections_wanted):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(10)
            sock.bind(("127.0.0.2", 0))
            sock.connect((HOST, server.port("smtp")))
            sockets.append(sock)

        first_lines = read_first_lines(sockets, timeout=30)
        accepted = [line for line in first_lines if line is not None and line.startswith(b"220")]
        refused = [line for line in first_lines if line is not None and line.startswith(b"421")]
        unclean = [line for line in first_lines if line is None or not line.startswith((b"220", b"421"))]
        assert not unclean, f"{len(unclean)} connections got neither 220 nor 421, e.g. {unclean[:3]}"
        assert 0 < len(accepted) <= per_ip_limit, f"{len(accepted)} accepted, per-IP limit {per_ip_limit}"
        assert len(refused) == connections_wanted - len(accepted)

        # Meanwhile an ordinary client from another address is served normally.
        assert_healthy(server)
    finally:
        for sock in sockets:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (original_soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    server.assert_no_panic()


def test_too_many_errors_smtp(make_server):
    max_errors = 3
    server = make_server(limits={"max_errors": max_errors})
    codes = []
    with SmtpClient(server.port("smtp")) as smtp:
        assert smtp.reply().code == 220
        for _ in range(max_errors + 3):
            reply = smtp.command("BOGUS-COMMAND")
            if reply is None:
                break
            codes.append(reply.code)
            if reply.code == 421:
                break
        assert codes and codes[-1] == 421, f"no 421 after repeated errors: {codes}"
        assert all(500 <= code < 600 for code in codes[:-1]), codes
        assert len(codes) <= max_errors + 1, f"421 came too late: {codes}"
        assert smtp.at_eof(), "connection still open after 421"
    assert_healthy(server)


def test_too_many_errors_pop3(make_server):
    max_errors = 3
    server = make_server(limits={"max_errors": max_errors})
    responses = []
    with Pop3Client(server.port("pop3s"), tls=True) as pop:
        assert pop.status().startswith(b"+OK")
        for _ in range(max_errors + 3):
            response = pop.command("BOGUS-COMMAND")
            if not response:
                break
            responses.append(response)
        assert all(response.startswith(b"-ERR") for response in responses), responses
        assert len(responses) <= max_errors + 1, f"still talking after {len(responses)} errors"
        assert pop.at_eof()
    assert_healthy(server)
