"""SORT, SORT=DISPLAY, ESORT and THREAD (RFC 5256, 5957, 5267) through Python's imaplib.

The expected orders are worked out by hand from the RFCs; test_imap_dovecot.py compares
the same commands with Dovecot's answers.
"""

from __future__ import annotations

import imaplib

from conftest import ALICE, PASSWORDS, imaps_login

# (internal date, raw header lines); each message gets a small body. The dates are chosen
# so that arrival, sent date and sequence orders all differ.
MESSAGES = [
    (
        '"01-Feb-2026 10:00:00 +0000"',
        "From: Zed <zed@example.net>\r\nTo: bob@example.org\r\nSubject: Re: Lunch\r\n"
        "Date: Mon, 2 Feb 2026 09:00:00 +0000\r\nMessage-ID: <b@x>\r\nReferences: <a@x>\r\n",
    ),
    (
        '"03-Feb-2026 10:00:00 +0000"',
        "From: amy@example.net\r\nTo: \"Carol\" <carol@example.org>\r\nCc: dan@example.org\r\n"
        "Subject: Lunch\r\nDate: Sun, 1 Feb 2026 12:00:00 +0100\r\nMessage-ID: <a@x>\r\n",
    ),
    (
        '"02-Feb-2026 10:00:00 +0000"',
        "From: \"Bob B\" <bob@example.net>\r\nTo: amy@example.org\r\nCc: \"Zoe\" <al@example.org>\r\n"
        "Subject: [list] Fwd: budget\r\nMessage-ID: <c@x>\r\n",
    ),
    (
        '"04-Feb-2026 10:00:00 +0000"',
        "From: \"amy\" <yan@example.net>\r\nTo: zed@example.org\r\nSubject: Re: re: LUNCH (fwd)\r\n"
        "Date: Tue, 3 Feb 2026 08:00:00 -0500\r\nMessage-ID: <d@x>\r\nIn-Reply-To: <b@x>\r\n",
    ),
]


def body(header: str, n: int) -> bytes:
    return (header + "\r\n" + "x" * (10 * (4 - n)) + "\r\n").encode()


def setup(server) -> imaplib.IMAP4_SSL:
    imap = imaps_login(server)
    for n, (date, header) in enumerate(MESSAGES):
        typ, data = imap.append("INBOX", None, date, body(header, n))
        assert typ == "OK", data
    typ, _ = imap.select("INBOX")
    assert typ == "OK"
    return imap


def sort(imap, criteria: str, *search: str, uid: bool = False) -> list[bytes]:
    if uid:
        # imaplib's uid() already picks out the SORT response.
        typ, data = imap.uid("SORT", criteria, "UTF-8", *search)
        assert typ == "OK", data
        return data
    typ, data = imap._simple_command("SORT", criteria, "UTF-8", *search)
    assert typ == "OK", data
    return imap._untagged_response(typ, data, "SORT")[1]


def test_capabilities_announce_sort_and_thread(server):
    imap = imaps_login(server)
    for cap in ("SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES"):
        assert cap in imap.capabilities, imap.capabilities
    imap.logout()


def test_sort_criteria(server):
    imap = setup(server)
    # Sent dates (UTC): 1 Feb 2 09:00, 2 Feb 1 11:00, 3 none → arrival Feb 2 10:00,
    # 4 Feb 3 13:00. Base subjects: LUNCH, LUNCH, BUDGET, LUNCH.
    cases = {
        "(ARRIVAL)": b"1 3 2 4",
        "(DATE)": b"2 1 3 4",
        "(REVERSE DATE)": b"4 3 1 2",
        "(SUBJECT)": b"3 1 2 4",
        "(SUBJECT REVERSE DATE)": b"3 4 1 2",
        "(REVERSE SUBJECT DATE)": b"2 1 4 3",
        # Sizes fall with the message number (shorter bodies, similar headers).
        "(SIZE)": None,
        # addr-mailbox of the first From: amy, zed, bob, yan.
        "(FROM)": b"2 3 4 1",
        # First To: bob, carol, amy, zed.
        "(TO)": b"3 1 2 4",
        # First Cc: none ("") for 1 and 4, dan, al.
        "(CC)": b"1 4 3 2",
        # Display names, else the address: Zed, amy@example.net, Bob B, amy.
        "(DISPLAYFROM)": b"4 2 3 1",
        "(DISPLAYTO)": b"3 1 2 4",
    }
    for criteria, expected in cases.items():
        data = sort(imap, criteria, "ALL")
        if expected is None:
            sizes = {}
            for n in range(1, 5):
                typ, fetched = imap.fetch(str(n), "(RFC822.SIZE)")
                sizes[n] = int(fetched[0].split(b"RFC822.SIZE ")[1].rstrip(b")"))
            expected = " ".join(str(n) for n in sorted(sizes, key=lambda n: (sizes[n], n))).encode()
        assert data == [expected], (criteria, data)
    # A search key narrows the set; UID SORT answers with UIDs.
    assert sort(imap, "(DATE)", "SUBJECT", "lunch") == [b"2 1 4"]
    typ, uids = imap.uid("SEARCH", "ALL")
    by_seq = uids[0].split()
    data = sort(imap, "(REVERSE ARRIVAL)", "ALL", uid=True)
    assert data == [b" ".join([by_seq[3], by_seq[1], by_seq[2], by_seq[0]])], data
    imap.logout()


def status(imap, *args: str) -> tuple[str, bytes]:
    """The tagged status and text of a command, BAD included (imaplib raises on BAD)."""
    tag = imap._new_tag()
    imap.send(tag + b" " + " ".join(args).encode() + b"\r\n")
    while True:
        line = imap.readline()
        if line.startswith(tag + b" "):
            word, text = line[len(tag) + 1 :].split(b" ", 1)
            return word.decode(), text


def test_sort_errors(server):
    imap = setup(server)
    assert status(imap, "SORT (DATE) KOI8-R ALL") == ("NO", b"[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n")
    assert status(imap, "THREAD REFERENCES KOI8-R ALL")[0] == "NO"
    for bad in ["SORT (BOGUS) UTF-8 ALL", "SORT (REVERSE) UTF-8 ALL", "SORT DATE UTF-8 ALL",
                "SORT (DATE) UTF-8", "THREAD X-NONE UTF-8 ALL", "SORT (DATE) UTF-8 BOGUSKEY"]:
        assert status(imap, bad)[0] == "BAD", bad
    # The session goes on.
    assert status(imap, "SORT (DATE) UTF-8 ALL") == ("OK", b"SORT completed\r\n")
    imap.logout()


def raw_line(imap, *args: str) -> bytes:
    tag = imap._new_tag()
    imap.send(tag + b" " + " ".join(args).encode() + b"\r\n")
    lines = []
    while True:
        line = imap.readline()
        if line.startswith(tag):
            assert line.startswith(tag + b" OK"), (line, lines)
            return b"".join(lines)
        lines.append(line)


def test_esort_returns_sorted_results(server):
    imap = setup(server)
    line = raw_line(imap, "SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL")
    assert line.endswith(b" MIN 2 MAX 4 COUNT 4 ALL 2,1,3:4\r\n"), line
    assert line.startswith(b"* ESEARCH (TAG "), line
    line = raw_line(imap, "SORT RETURN (COUNT) (DATE) UTF-8 SUBJECT nothing-like-this")
    assert line.endswith(b" COUNT 0\r\n"), line
    imap.logout()


def test_thread_algorithms(server):
    imap = setup(server)
    # REFERENCES: 2 (a@x) ← 1 (b@x) ← 4 (d@x, by In-Reply-To); 3 alone.
    assert raw_line(imap, "THREAD REFERENCES UTF-8 ALL") == b"* THREAD (2 1 4)(3)\r\n"
    # ORDEREDSUBJECT: LUNCH by sent date 2, 1, 4; BUDGET 3. Threads by first date.
    assert raw_line(imap, "THREAD ORDEREDSUBJECT UTF-8 ALL") == b"* THREAD (2 (1)(4))(3)\r\n"
    assert raw_line(imap, "THREAD REFERENCES UTF-8 NOT SUBJECT budget") == b"* THREAD (2 1 4)\r\n"
    assert raw_line(imap, "THREAD REFERENCES UTF-8 SUBJECT nothing-like-this") == b"* THREAD\r\n"
    typ, uids = imap.uid("SEARCH", "ALL")
    u = uids[0].split()
    expected = b"* THREAD (" + u[1] + b" " + u[0] + b" " + u[3] + b")(" + u[2] + b")\r\n"
    assert raw_line(imap, "UID THREAD REFERENCES UTF-8 ALL") == expected
    imap.logout()
