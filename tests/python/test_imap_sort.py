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
    assert line.endswith(b" MIN 2 MAX 4 ALL 2,1,3:4 COUNT 4\r\n"), line
    assert line.startswith(b"* ESEARCH (TAG "), line
    line = raw_line(imap, "SORT RETURN (COUNT) (DATE) UTF-8 SUBJECT nothing-like-this")
    assert line.endswith(b" COUNT 0\r\n"), line
    imap.logout()


def tagged(imap, tag: str, command: str) -> list[bytes]:
    """Sends `command` under `tag`; the untagged lines before its tagged reply, then it."""
    imap.send(f"{tag} {command}\r\n".encode())
    lines = []
    while not lines or not lines[-1].startswith(tag.encode() + b" "):
        lines.append(imap.readline())
    return lines


def test_sort_context_updates_name_positions(server):
    """CONTEXT=SORT (RFC 5267 §4.3): REMOVEFROM/ADDTO positions rebuild the sorted result."""
    imap = setup(server)
    assert "CONTEXT=SORT" in imap.capabilities and "CONTEXT=SEARCH" in imap.capabilities
    assert tagged(imap, "S1", "UID SORT RETURN (UPDATE ALL) (DATE) UTF-8 UNSEEN") == [
        b'* ESEARCH (TAG "S1") UID ALL 2,1,3:4\r\n', b"S1 OK SORT completed\r\n"]
    assert tagged(imap, "S2", "SORT RETURN (UPDATE) (REVERSE DATE) UTF-8 ALL") == [
        b'* ESEARCH (TAG "S2")\r\n', b"S2 OK SORT completed\r\n"]
    other = imaps_login(server)
    assert other.select("INBOX")[0] == "OK"
    assert other.store("1", "+FLAGS", "(\\Seen)")[0] == "OK"
    for date in ("Thu, 1 Jan 2026 00:00:00 +0000", "Sun, 1 Mar 2026 00:00:00 +0000"):
        typ, data = other.append("INBOX", None, None, body(f"Subject: new\r\nDate: {date}\r\n", 0))
        assert typ == "OK", data
    # UNSEEN by date was 2,1,3,4: 1 leaves (position 2), 5 comes first, 6 last. (The
    # appending session saw 5 and 6 first: they are \Recent there.)
    assert tagged(imap, "S3", "NOOP") == [
        b"* 1 FETCH (FLAGS (\\Seen \\Recent))\r\n", b"* 6 EXISTS\r\n",
        b'* ESEARCH (TAG "S1") UID REMOVEFROM (2 1) ADDTO (1 5 5 6)\r\n',
        b'* ESEARCH (TAG "S2") ADDTO (1 6 6 5)\r\n', b"S3 OK NOOP completed\r\n"]
    # A key on sequence numbers is searched again in full: after the expunge, 2:3 is
    # UIDs 3 and 4. (Dovecot keeps the UIDs 2:3 named when the search was made.)
    assert tagged(imap, "S7", "UID SEARCH RETURN (UPDATE ALL) 2:3") == [
        b'* ESEARCH (TAG "S7") UID ALL 2:3\r\n', b"S7 OK SEARCH completed\r\n"]
    # An expunge is told before EXPUNGE, with the sequence numbers still valid.
    assert other.store("2", "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
    assert other.expunge()[0] == "OK"
    assert tagged(imap, "S4", "NOOP") == [
        b'* ESEARCH (TAG "S1") UID REMOVEFROM (2 2)\r\n', b'* ESEARCH (TAG "S2") REMOVEFROM (5 2)\r\n',
        b'* ESEARCH (TAG "S7") UID REMOVEFROM (0 2)\r\n', b"* 2 EXPUNGE\r\n",
        b'* ESEARCH (TAG "S7") UID ADDTO (0 4)\r\n', b"S4 OK NOOP completed\r\n"]
    # A tag in use by a context cannot start another; CANCELUPDATE frees it.
    assert tagged(imap, "S1", "SEARCH RETURN (UPDATE) ALL") == [
        b"S1 BAD Tag reuse: a search context has this tag\r\n"]
    assert tagged(imap, "S5", 'CANCELUPDATE "S1" "S2" "S7"') == [b"S5 OK CANCELUPDATE completed\r\n"]
    assert tagged(imap, "S6", 'CANCELUPDATE "S1"') == [b'S6 NO No search context has the tag "S1"\r\n']
    # At most 8 contexts; the ninth search is answered, without updates.
    for n in range(8):
        assert tagged(imap, f"C{n}", "SEARCH RETURN (UPDATE COUNT) ALL")[-1] == f"C{n} OK SEARCH completed\r\n".encode()
    assert tagged(imap, "C9", "SEARCH RETURN (UPDATE COUNT) ALL") == [
        b'* NO [NOUPDATE "C9"] Too many search contexts\r\n', b'* ESEARCH (TAG "C9") COUNT 5\r\n',
        b"C9 OK SEARCH completed\r\n"]
    other.logout()
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
