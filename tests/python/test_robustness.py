"""Hostile and broken clients: the server answers sanely, stays up and never panics."""

import random
import resource
import selectors
import socket
import threading
import time

import pytest

from conftest import (
    ALICE,
    EXTERNAL_SENDER,
    HOST,
    LineClient,
    PASSWORDS,
    Pop3Client,
    Reply,
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


# Raw reply lines, CRLF included.
LINE_TOO_LONG = {"smtp": b"500 5.5.2 Line too long\r\n", "pop3": b"-ERR Line too long\r\n"}
NOOP_OK = {"smtp": b"250 2.0.0 OK\r\n", "pop3": b"+OK \r\n"}


@pytest.mark.parametrize("kind", ["smtp", "pop3"])
def test_overlong_command_line(server, kind):
    with open_client(server, kind) as client:
        assert client.send(b"NOOP " + b"A" * 100_000)
        assert client.send(b"\r\n")
        # One error for the whole line, and the session goes on: the rest of the
        # line up to its CRLF was discarded, not read as further commands.
        assert client.readline() == LINE_TOO_LONG[kind]
        assert client.send(b"NOOP\r\n")
        assert client.readline() == NOOP_OK[kind]
    assert_healthy(server)


# What the server answers to the garbage below, line by line, before it hangs up. The
# first garbage line is empty; every other one is random bytes, never valid UTF-8 (the
# seeded generator gives the same bytes on every Python version). The default
# max_errors (10) ends the session after the tenth error.
GARBAGE_REPLIES = {
    "smtp": [b"500 5.5.1 Command unrecognized\r\n"]
    + [b"500 5.5.2 Command is not valid UTF-8\r\n"] * 9
    + [b"421 4.7.0 Too many errors, closing connection\r\n"],
    "pop3": [b"-ERR Unknown command\r\n"] * 10
    + [b"-ERR [SYS/PERM] Too many errors, closing connection\r\n"],
}


@pytest.mark.parametrize("kind", ["smtp", "pop3"])
def test_binary_garbage(server, kind):
    rng = random.Random(20240101)
    garbage = bytearray(rng.randbytes(16_384))
    for position in range(0, len(garbage), 97):
        garbage[position : position + 2] = b"\r\n"
    garbage[5:9] = b"\0\0\0\0"

    with open_client(server, kind) as client:
        # The server may hang up before it has read everything: a failed send is fine.
        client.send(bytes(garbage))
        client.send(b"\r\n")
        # Read up to the hang-up; silence (a timeout) fails the test.
        replies = []
        while line := client.readline():
            replies.append(line)
        assert replies == GARBAGE_REPLIES[kind]
    assert_healthy(server)


def test_nul_bytes_in_smtp_commands(server):
    with SmtpClient(server.port("smtp")) as smtp:
        smtp.greet()
        for line, code, text in (
            (b"NO\0OP", 500, b"5.5.1 Command unrecognized"),
            (b"\0\0\0", 500, b"5.5.1 Command unrecognized"),
            (b"MAIL FROM:<ev\0il@remote.test>", 553, b"5.1.7 Bad sender address syntax"),
        ):
            assert smtp.command(line) == Reply(code, [text]), line
        smtp.expect("NOOP", 250)
    assert_healthy(server)


def test_invalid_utf8_in_smtp_addresses(server):
    with SmtpClient(server.port("smtp")) as smtp:
        smtp.greet()
        not_utf8 = Reply(500, [b"5.5.2 Command is not valid UTF-8"])
        assert smtp.command(b"MAIL FROM:<\xff\xfe@remote.test> SMTPUTF8") == not_utf8
        smtp.expect(f"MAIL FROM:<{EXTERNAL_SENDER}>", 250)
        assert smtp.command(b"RCPT TO:<\xc3\x28@example.org>") == not_utf8
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
        # A line that is not UTF-8 is no command at all, so no USER is pending for PASS.
        assert pop.command(b"USER \xff\xfe\xc3\x28") == b"-ERR Unknown command"
        assert pop.command(b"PASS \xff") == b"-ERR Unknown command"
        assert pop.command(f"USER {ALICE}") == b"+OK Send PASS"
        assert pop.command(f"PASS {PASSWORDS[ALICE]}") == f"+OK {ALICE} has 0 messages (0 octets)".encode()
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
        peer = smtp.local_address
    # Once the session has ended, a wrongly-committing server has committed.
    server.wait_for_log(f"smtp {peer}: session end (Closed)")

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
        # All connections stay open, so exactly per_ip_limit of them are admitted.
        greeting = b"220 mx.test ESMTP letterbox ready\r"
        refusal = b"421 4.7.0 too many connections from your address, try again later\r"
        accepted = [line for line in first_lines if line == greeting]
        refused = [line for line in first_lines if line == refusal]
        unclean = [line for line in first_lines if line not in (greeting, refusal)]
        assert not unclean, f"{len(unclean)} connections got neither greeting nor refusal, e.g. {unclean[:3]}"
        assert len(accepted) == per_ip_limit, f"{len(accepted)} accepted, per-IP limit {per_ip_limit}"
        assert len(refused) == connections_wanted - per_ip_limit

        # Meanwhile an ordinary client from another address is served normally.
        assert_healthy(server)
    finally:
        for sock in sockets:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (original_soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    server.assert_no_panic()


def test_many_addresses_of_one_network_cannot_take_every_slot(make_server):
    """Issue 10: 1,000 idle sockets from 20 addresses used to lock everyone out. One
    network (an IPv4 /24) now gets at most max_connections_per_network slots."""
    per_network = 200
    original_soft = raise_fd_limit(1000 + 200)
    server = make_server(limits={"max_connections": 1000, "max_connections_per_network": per_network})
    sockets = []
    try:
        for i in range(1000):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(10)
            sock.bind((f"127.0.0.{10 + i % 20}", 0))  # 50 from each of 20 addresses
            sock.connect((HOST, server.port("smtp")))
            sockets.append(sock)
        first_lines = read_first_lines(sockets, timeout=30)
        greeting = b"220 mx.test ESMTP letterbox ready\r"
        refusal = b"421 4.7.0 too many connections from your network, try again later\r"
        assert first_lines.count(greeting) == per_network
        assert first_lines.count(refusal) == 1000 - per_network
        # A client from another network is served throughout.
        with SmtpClient(server.port("smtp"), source="127.0.1.1") as smtp:
            assert smtp.reply() == Reply(220, [b"mx.test ESMTP letterbox ready"])
            assert smtp.command("NOOP") == Reply(250, [b"2.0.0 OK"])
    finally:
        for sock in sockets:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (original_soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    assert_healthy(server)


def test_too_many_errors_smtp(make_server):
    max_errors = 3
    server = make_server(limits={"max_errors": max_errors})
    with SmtpClient(server.port("smtp")) as smtp:
        assert smtp.reply().code == 220
        for _ in range(max_errors):
            assert smtp.command("BOGUS-COMMAND") == Reply(500, [b"5.5.1 Command unrecognized"])
        # The error that reaches the limit is followed, unasked, by the closing notice.
        assert smtp.reply() == Reply(421, [b"4.7.0 Too many errors, closing connection"])
        assert smtp.at_eof(), "connection still open after 421"
    assert_healthy(server)


def test_too_many_errors_pop3(make_server):
    max_errors = 3
    server = make_server(limits={"max_errors": max_errors})
    with Pop3Client(server.port("pop3s"), tls=True) as pop:
        assert pop.status().startswith(b"+OK")
        for _ in range(max_errors):
            assert pop.command("BOGUS-COMMAND") == b"-ERR Unknown command"
        # The error that reaches the limit is followed, unasked, by the closing notice.
        assert pop.status() == b"-ERR [SYS/PERM] Too many errors, closing connection"
        assert pop.at_eof(), "connection still open after the closing notice"
    assert_healthy(server)


# -- slow clients (slowloris) ---------------------------------------------------

SLOW_TIMEOUT = 3  # command_timeout_secs and data_timeout_secs of the slow-client server

SLOW_GOODBYE = {
    "smtp": b"421 4.4.2 mx.test Timeout, closing connection\r\n",
    "data": b"421 4.4.2 mx.test Timeout, closing connection\r\n",
    "bdat": b"421 4.4.2 mx.test Timeout, closing connection\r\n",
    "pop3": b"-ERR [SYS/TEMP] Autologout: idle too long\r\n",
    "imap": b"* BYE Autologout: idle too long\r\n",
}


def trickle(server, kind: str) -> tuple[float, bytes]:
    """Opens a session, then sends one byte every 0.5 s of a line that never ends.
    Returns how long the server took to hang up and the last line it sent."""
    port = server.port("smtp" if kind in ("data", "bdat") else kind)
    with LineClient(port, timeout=30) as client:
        assert client.readline()  # greeting
        if kind == "data":
            for command in ("EHLO client.test", f"MAIL FROM:<{EXTERNAL_SENDER}>", f"RCPT TO:<{ALICE}>", "DATA"):
                assert client.send(command.encode() + b"\r\n")
                while True:
                    line = client.readline()
                    if line[3:4] != b"-":
                        break
            assert line.startswith(b"354"), line
        if kind == "bdat":
            # A huge chunk announced, with no transaction even: the pace follows the bytes
            # that arrive, not the size announced.
            assert client.send(b"EHLO client.test\r\n")
            while client.readline()[3:4] == b"-":
                pass
            assert client.send(b"BDAT 50000000\r\n")
        started = time.monotonic()
        stop = threading.Event()

        def send_slowly():
            while not stop.is_set():
                try:
                    if not client.send(b"x"):
                        return
                except OSError:
                    return
                stop.wait(0.5)

        sender = threading.Thread(target=send_slowly, daemon=True)
        sender.start()
        last = b""
        while True:
            line = client.readline()
            if not line:
                elapsed = time.monotonic() - started
                stop.set()
                sender.join()
                return elapsed, last
            last = line


def test_slow_clients_are_cut_off_while_others_are_served(make_server):
    """Issue 10: a client trickling one byte every half second kept a connection for as
    long as it liked (the timeouts applied to each read). Now a started command line must
    be complete within command_timeout_secs, and DATA must keep a minimum rate after
    data_timeout_secs."""
    server = make_server(limits={"command_timeout_secs": SLOW_TIMEOUT, "data_timeout_secs": SLOW_TIMEOUT})
    kinds = ["smtp", "data", "bdat", "pop3", "imap"]
    results: dict[str, tuple[float, bytes]] = {}
    threads = [threading.Thread(target=lambda k=k: results.__setitem__(k, trickle(server, k))) for k in kinds]
    for t in threads:
        t.start()
    time.sleep(1)
    assert_delivery_works(server)  # served while the slow clients hold their slots
    for t in threads:
        t.join(timeout=30)
    for kind in kinds:
        elapsed, last = results[kind]
        assert last == SLOW_GOODBYE[kind], (kind, last)
        assert SLOW_TIMEOUT - 0.5 <= elapsed < SLOW_TIMEOUT + 5, (kind, elapsed)
    assert_healthy(server)
