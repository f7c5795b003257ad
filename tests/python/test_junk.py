"""The junk filter: `letterbox junk train|stats|score`, and learning from what an IMAP
client (imaplib) does: MOVE/COPY into Junk, MOVE out of it, $Junk and $NotJunk."""

from __future__ import annotations

import random
import re
import time

from conftest import ALICE, BOB, PASSWORDS, imaps_login

SPAM_WORDS = "free prize winner cash claim urgent offer viagra casino lottery bonus click unsubscribe guaranteed".split()
HAM_WORDS = "meeting project review notes tuesday agenda draft report minutes budget schedule lunch team thanks".split()


def message(words: list[str], rng: random.Random, subject: str) -> str:
    body = " ".join(rng.choice(words) for _ in range(40))
    return (
        f"From: Someone <someone{rng.randrange(10**6)}@remote.test>\r\n"
        f"To: <{ALICE}>\r\nSubject: {subject}\r\n\r\n{body}\r\n"
    )


def stats(server, address: str = ALICE) -> dict[str, int]:
    out = server.cli("junk", "stats", address).stdout
    return {key: int(value) for key, value in (line.split() for line in out.splitlines())}


def wait_for_stats(server, spam: int, ham: int, timeout: float = 10.0) -> dict[str, int]:
    """IMAP learning runs after the reply: wait for it, then make sure nothing more comes."""
    deadline = time.monotonic() + timeout
    while True:
        now = stats(server)
        if (now["spam"], now["ham"]) == (spam, ham) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    time.sleep(0.3)
    now = stats(server)
    assert (now["spam"], now["ham"]) == (spam, ham), now
    return now


def ok(result):
    typ, data = result
    assert typ == "OK", data
    return data


def test_train_by_hand_counts_exactly(server):
    rng = random.Random(1)
    empty = stats(server)
    assert (empty["spam"], empty["ham"], empty["tokens"]) == (0, 0, 0)
    first = message(SPAM_WORDS, rng, "You won")
    assert server.cli("junk", "train", ALICE, "--spam", stdin_text=first).stdout == "learnt as spam\n"
    after_one = stats(server)
    # The body's words, and subject:you, subject:won, from:someone, from:someoneNNN,
    # from:remote.test.
    assert (after_one["spam"], after_one["ham"]) == (1, 0)
    assert after_one["tokens"] == len(set(first.split("\r\n\r\n")[1].split())) + 5
    server.cli("junk", "train", ALICE, "--spam", stdin_text=message(SPAM_WORDS, rng, "Cash"))
    server.cli("junk", "train", ALICE, "--ham", stdin_text=message(HAM_WORDS, rng, "Notes"))
    now = stats(server)
    assert (now["spam"], now["ham"]) == (2, 1)
    assert now["bytes"] > 0
    # Bob's statistics are his own.
    assert (stats(server, BOB)["spam"], stats(server, BOB)["ham"]) == (0, 0)
    refused = server.cli("junk", "train", "nobody@example.org", "--spam", stdin_text=first, check=False)
    assert refused.returncode != 0 and "does not exist" in refused.stderr
    neither = server.cli("junk", "train", ALICE, stdin_text=first, check=False)
    assert neither.returncode != 0
    both = server.cli("junk", "train", ALICE, "--spam", "--ham", stdin_text=first, check=False)
    assert both.returncode != 0
    assert (stats(server)["spam"], stats(server)["ham"]) == (2, 1)


def test_trained_filter_scores_spam_high_and_ham_low(server):
    rng = random.Random(2)
    spam = message(SPAM_WORDS, rng, "Claim your prize")
    assert server.cli("junk", "score", ALICE, stdin_text=spam).stdout == "untrained\n"
    for i in range(6):
        server.cli("junk", "train", ALICE, "--spam", stdin_text=message(SPAM_WORDS, rng, f"Offer {i}"))
        server.cli("junk", "train", ALICE, "--ham", stdin_text=message(HAM_WORDS, rng, f"Notes {i}"))
    spam_score = server.cli("junk", "score", ALICE, stdin_text=spam).stdout.strip()
    ham_score = server.cli("junk", "score", ALICE, stdin_text=message(HAM_WORDS, rng, "Agenda")).stdout.strip()
    assert re.fullmatch(r"[01]\.\d{4}", spam_score), spam_score
    assert float(spam_score) > 0.99, spam_score
    assert float(ham_score) < 0.01, ham_score
    # Untrained for Bob.
    assert server.cli("junk", "score", BOB, stdin_text=spam).stdout == "untrained\n"


def test_imap_moves_and_keywords_teach_the_filter_once(server):
    rng = random.Random(3)
    imap = imaps_login(server)
    try:
        for i in range(4):
            ok(imap.append("INBOX", None, None, message(SPAM_WORDS, rng, f"Spam {i}").encode()))
        ok(imap.select("INBOX"))
        # MOVE two into Junk: two spam.
        ok(imap.uid("MOVE", "1:2", "Junk"))
        wait_for_stats(server, spam=2, ham=0)
        # COPY one more into Junk: three.
        ok(imap.uid("COPY", "3", "Junk"))
        wait_for_stats(server, spam=3, ham=0)
        # Copying the same message into Junk again counts nothing.
        ok(imap.uid("COPY", "3", "Junk"))
        wait_for_stats(server, spam=3, ham=0)
        # Out of Junk into INBOX: that message becomes ham, no longer spam.
        ok(imap.select("Junk"))
        ok(imap.uid("MOVE", "1", "INBOX"))
        wait_for_stats(server, spam=2, ham=1)
        # Out of Junk into the trash: nothing learnt.
        ok(imap.uid("MOVE", "2", "Trash"))
        wait_for_stats(server, spam=2, ham=1)
        # And back into Junk from INBOX: spam again, its ham count undone.
        ok(imap.select("INBOX"))
        typ, data = imap.uid("SEARCH", "SUBJECT", '"Spam 0"')
        assert typ == "OK" and data[0].split(), data
        moved_back = data[0].split()[-1]
        ok(imap.uid("MOVE", moved_back, "Junk"))
        wait_for_stats(server, spam=3, ham=0)
        # Keywords (RFC 5788) on the fourth message, never trained yet.
        ok(imap.uid("STORE", "4", "+FLAGS", "($NotJunk)"))
        wait_for_stats(server, spam=3, ham=1)
        ok(imap.uid("STORE", "4", "+FLAGS", "($NotJunk)"))
        ok(imap.uid("STORE", "4", "-FLAGS", "($NotJunk)"))
        wait_for_stats(server, spam=3, ham=1)
        ok(imap.uid("STORE", "4", "FLAGS", "($Junk)"))
        wait_for_stats(server, spam=4, ham=0)
        imap.logout()
    finally:
        try:
            imap.shutdown()
        except OSError:
            pass
    # Deleting the account takes its statistics with it.
    server.cli("user", "del", ALICE)
    server.add_user(ALICE, PASSWORDS[ALICE])
    assert (stats(server)["spam"], stats(server)["ham"], stats(server)["tokens"]) == (0, 0, 0)
    server.assert_no_panic()
