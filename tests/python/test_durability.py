"""Crash safety: whatever was acknowledged survives kill -9, exactly once."""

import collections
import re
import smtplib
import threading
import time

from conftest import (
    ALICE,
    EXTERNAL_SENDER,
    HOST,
    deliver,
    fetch_inbox,
    make_message,
    pop3s_login,
    split_trace,
)

SENDER_THREADS = 8
BURST_SECONDS = 1.5
TOKEN_RE = re.compile(rb"^X-Token: (\S+)\r$", re.MULTILINE)


def burst_message(token: str, sequence: int) -> bytes:
    """Deterministic content per token; every 7th message is large enough to spill to disk."""
    line = f"{token} payload line for crash testing.\r\n".encode()
    repeat = 4000 if sequence % 7 == 0 else 20
    return make_message(token, body=line * repeat)


class Sender(threading.Thread):
    """Sends messages to alice over the MX port until told to stop."""

    def __init__(self, port: int, index: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.index, self.stop = port, index, stop
        self.attempted: dict[str, bytes] = {}
        self.acknowledged: list[str] = []

    def run(self) -> None:
        sequence = 0
        while not self.stop.is_set():
            try:
                with smtplib.SMTP(HOST, self.port, timeout=5) as smtp:
                    while not self.stop.is_set():
                        sequence += 1
                        token = f"t{self.index}-{sequence}"
                        message = burst_message(token, sequence)
                        self.attempted[token] = message
                        if smtp.sendmail(EXTERNAL_SENDER, [ALICE], message) == {}:
                            self.acknowledged.append(token)
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)  # the server is gone; retry until told to stop


def test_acknowledged_messages_survive_kill9(server):
    stop = threading.Event()
    senders = [Sender(server.port("smtp"), index, stop) for index in range(SENDER_THREADS)]
    for sender in senders:
        sender.start()
    time.sleep(BURST_SECONDS)
    server.kill9()
    stop.set()
    for sender in senders:
        sender.join(timeout=20)
        assert not sender.is_alive(), "sender thread hung"

    attempted = {token: message for sender in senders for token, message in sender.attempted.items()}
    acknowledged = [token for sender in senders for token in sender.acknowledged]
    assert acknowledged, "no message was acknowledged before the kill; nothing was tested"

    server.start()
    inbox = fetch_inbox(server, ALICE)

    found = collections.Counter()
    for raw in inbox:
        match = TOKEN_RE.search(raw)
        assert match, f"stored message without a token: {raw[:300]!r}"
        token = match.group(1).decode()
        assert token in attempted, f"unknown message {token}"
        assert split_trace(raw).content == attempted[token], f"message {token} is damaged"
        found[token] += 1

    lost = [token for token in acknowledged if found[token] == 0]
    duplicated = [token for token, count in found.items() if count > 1]
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged messages lost, e.g. {lost[:5]}"
    assert not duplicated, f"messages stored more than once: {duplicated[:5]}"


def test_acknowledged_deletion_survives_kill9(server):
    deliver(server, ALICE)
    deliver(server, ALICE)
    kept_token, _ = deliver(server, ALICE)

    pop = pop3s_login(server, ALICE)
    pop.dele(1)
    pop.dele(2)
    assert pop.quit().startswith(b"+OK")

    server.kill9()
    server.start()
    inbox = fetch_inbox(server, ALICE)
    assert len(inbox) == 1
    assert kept_token.encode() in inbox[0]
