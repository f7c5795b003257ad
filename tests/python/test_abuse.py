"""Password guessing (issue 10): failures slow down, then block the source; the owner
still gets in from elsewhere; `letterbox block` works live; fail2ban-friendly log lines."""

import time

from conftest import ALICE, PASSWORDS, LineClient, Reply, SmtpClient

ATTACKER, OWNER, OTHER = "127.0.0.5", "127.0.0.6", "127.0.0.7"
BLOCKED_IMAP = b"* BYE [UNAVAILABLE] your address is blocked after failed logins\r\n"
BLOCKED_SMTP = Reply(421, [b"4.7.0 your address is blocked after failed logins, try again later"])


def imap_login(server, source: str, password: str) -> tuple[bytes, float]:
    """LOGIN on a new plaintext IMAP connection from `source`: (tagged reply, seconds)."""
    with LineClient(server.port("imap"), source=source, timeout=20) as client:
        greeting = client.readline()
        if not greeting.startswith(b"* OK"):
            return greeting, 0.0
        started = time.monotonic()
        client.send(f'a LOGIN {ALICE} "{password}"\r\n'.encode())
        while True:
            line = client.readline()
            if line.startswith(b"a ") or not line:
                return line, time.monotonic() - started


def smtp_greeting(server, source: str, kind: str = "submission") -> Reply | None:
    with SmtpClient(server.port(kind), source=source) as smtp:
        return smtp.reply()


def test_guessing_is_slowed_then_blocked_and_the_owner_still_gets_in(make_server):
    server = make_server(allow_plaintext_on_loopback=True, auth={"block_after_failures": 5, "block_secs": 60})
    waits = []
    for _ in range(5):
        reply, seconds = imap_login(server, ATTACKER, "wrong-guess")
        assert reply == b"a NO [AUTHENTICATIONFAILED] Invalid credentials\r\n", reply
        waits.append(seconds)
    # Three free tries, then 250 ms and 500 ms before the fourth and fifth.
    assert waits[3] >= 0.25 and waits[4] >= 0.5, waits
    # The fifth failure blocked the source: new connections are refused at once.
    assert imap_login(server, ATTACKER, PASSWORDS[ALICE]) == (BLOCKED_IMAP, 0.0)
    assert smtp_greeting(server, ATTACKER) == BLOCKED_SMTP
    # Port 25 still takes the source's mail: a stale password must not cost mail.
    assert smtp_greeting(server, ATTACKER, "smtp") == Reply(220, [b"mx.test ESMTP letterbox ready"])
    # The owner, from another address, logs in (slowed by the attack on the account,
    # not locked out).
    reply, _ = imap_login(server, OWNER, PASSWORDS[ALICE])
    assert reply.startswith(b"a OK "), reply
    log = server.stderr_tail(400)
    assert log.count(f"auth failure: ip={ATTACKER} user={ALICE} proto=imap") == 5, log
    assert f"auth block: ip={ATTACKER} source={ATTACKER} for 60s (5 failed logins)" in log, log

    listing = server.cli("block", "list").stdout
    assert listing.startswith(f"{ATTACKER}  blocked for "), listing
    assert listing.rstrip().endswith("level 1  5 failed logins in 10 min"), listing
    assert server.cli("block", "del", ATTACKER).stdout == f"unblocked {ATTACKER}\n"
    assert smtp_greeting(server, ATTACKER) == Reply(220, [b"mx.test ESMTP letterbox ready"])
    assert server.cli("block", "add", OTHER, "--minutes", "5").stdout == f"blocked {OTHER} for 5 min\n"
    assert smtp_greeting(server, OTHER) == BLOCKED_SMTP
    assert server.cli("block", "list").stdout.startswith(f"{OTHER}  blocked for 5m  level 1  added by hand")
