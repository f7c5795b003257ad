"""IMAP differential tests: the same commands against letterbox and Dovecot 2.3.

Dovecot is a mature, widely used IMAP server: comparing letterbox with it reply by reply finds
protocol details (base subjects, collation, address parsing, MIME structure) that tests written
from one reading of the RFCs miss. Both servers get the same messages by APPEND (same bytes,
flags and INTERNALDATE); each case sends the same lines to both and compares the normalised
wire replies exactly (dovecot.normalise lists what may differ). Dovecot's answers here were
checked against the RFCs; a case where Dovecot is wrong passes the RFC's answer as `expected`.
"""

from __future__ import annotations

import difflib

import pytest

from conftest import ALICE, PASSWORDS, Server
from dovecot import dovecot_server, login, normalise  # noqa: F401 (dovecot_server: fixture)


def message(*headers: str, body: str = "Hello.\r\n") -> bytes:
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("utf-8")


# --------------------------------------------------------------------------
# The messages. Each mailbox starts with a message that setup expunges, so UIDs are not
# sequence numbers. Entries are (INTERNALDATE, flags, bytes).
# --------------------------------------------------------------------------

EXPUNGED = ("01-Jan-2020 00:00:00 +0000", "", message("Subject: expunged"))

# RFC 5256 SORT keys: base subjects (Re:, Fwd:, [fwd: ...], "(fwd)" trailers, [blob] prefixes,
# encoded words, folding, tabs, case, subjects that are only "Re:", no Subject), dates (zones,
# obsolete zones, comments, a two-digit year, missing and invalid -> INTERNALDATE), first
# From/To/Cc (missing, groups, empty groups, encoded display names, comments, case). Strings
# compare with i;unicode-casemap, the default of I18NLEVEL=1 that RFC 5256 requires: "éclair"
# sorts among the e's. The first address of a group is its group marker, whose addr-mailbox
# is the group name (what Dovecot sorts FROM/TO/CC and DISPLAYFROM/DISPLAYTO by).
SORT_SET = [
    ("05-Feb-2024 10:00:00 +0000", "\\Seen", message(
        'From: "Zed Zulu" <alpha@zulu.example>', "To: Bob <bravo@to.example>",
        "Cc: Carol <charlie@cc.example>", "Subject: Re: apple pie",
        "Date: Mon, 01 Jan 2024 12:00:00 +0000", body="first body.\r\n")),
    ("03-Feb-2024 10:00:00 +0000", "", message(
        "From: bravo@from.example", 'To: "Xavier" <alpha@to.example>',
        "Subject: Fwd: Apple Pie", "Date: Tue, 02 Jan 2024 01:00:00 +0200", body="x" * 300 + "\r\n")),
    ("07-Feb-2024 10:00:00 +0000", "\\Seen", message(
        "From: =?utf-8?q?=C3=89mile_Zola?= <echo@from.example>", "To: undisclosed-recipients:;",
        'Cc: "Ann" <Alpha@cc.example>, zed@cc.example', "Subject: [fwd: banana split]",
        "Date: Mon, 01 Jan 2024 23:30:00 +0000", body="y" * 200 + "\r\n")),
    ("01-Feb-2024 10:00:00 +0000", "", message(
        "To: Friends: kim@to.example, lee@to.example;", "Subject: cherry tart (fwd)")),
    ("02-Feb-2024 10:00:00 +0000", "", message(
        'From: Friends: "Dora" <delta@from.example>;',
        'To: "=?iso-8859-1?q?J=FCrgen?=" <juliet@to.example>',
        "Cc: =?utf-8?b?w4lsb2RpZQ==?= <mike@cc.example>", "Subject: [blob] [list] Re: date loaf",
        "Date: not a date at all")),
    ("04-Feb-2024 10:00:00 +0000", "\\Seen", message(
        "From: foxtrot@from.example (Foxy Fox)", "To: tango@to.example",
        "Subject: =?utf-8?q?=C3=A9clair?=", "Date: Mon, 1 Jan 2024 12:00:00 -0500 (EST)")),
    ("06-Feb-2024 10:00:00 +0000", "", message(
        'From: "Golf" <golf@from.example>', "To: Tango <tango@to.example>", "Subject: Re:",
        "Date: 01 Jan 2024 12:00:00 GMT")),
    ("06-Feb-2024 10:00:00 +0000", "", message(
        "From: Hotel <HOTEL@from.example>", 'To: "Uniform" <uniform@to.example>',
        "Subject: Re: [ml]\r\n\tfig   roll", "Date: Sun, 31 Dec 2023 22:00:00 -0300",
        body="other body.\r\n")),
    ("08-Feb-2024 10:00:00 +0000", "", message(
        'From: "india" <india@from.example>', "Subject: [only blob]",
        "Date: Mon, 01 Jan 2024 12:00:00 +0000")),
    ("09-Feb-2024 10:00:00 +0000", "\\Seen", message(
        "From: juliet@from.example", "To: Victor <victor@to.example>", "Subject: Re: Re[2]: grape",
        "Date: Fri, 01 Jan 99 10:00:00 +0000")),
    ("10-Feb-2024 10:00:00 +0000", "", message(
        'From: "Kilo" <kilo@from.example>', "To: whiskey@to.example", "Cc: <bravo@cc.example>",
        "Subject: Fw: [fwd: Re: honeydew] (fwd)", "Date: Wed, 03 Jan 2024 08:00:00 +0100")),
    ("11-Feb-2024 10:00:00 +0000", "", message(
        "From: lima@from.example", "To: xray@to.example", "Date: Thu, 04 Jan 2024 00:00:00 +0000")),
    ("12-Feb-2024 10:00:00 +0000", "\\Seen", message(
        'From: "Mike" <mike@from.example>', "To: yankee@to.example", "Subject: RE:  apple pie",
        "Date: Mon, 01 Jan 2024 11:59:59 +0000")),
    ("13-Feb-2024 10:00:00 +0000", "", message(
        'From: "November" <november@from.example>', "To: Zulu <zulu@to.example>", "Subject: Re: Fwd: [x] Re:",
        "Date: Mon, 01 Jan 2024 13:00:00 +0100")),
    ("14-Feb-2024 10:00:00 +0000", "", message(
        "From: oscar@from.example", "To: alpha@to.example", "Subject: kiwi (FWD)  ",
        "Date: Sat, 06 Jan 2024 10:00:00 +0000")),
    ("15-Feb-2024 10:00:00 +0000", "\\Seen", message(
        "From: Papa <papa@from.example>", "Subject: =?UTF-8?Q?Re=3A_lime?=",
        "Date: Sat, 06 Jan 2024 09:00:00 +0000")),
    ("16-Feb-2024 10:00:00 +0000", "", message(
        "From: hotel@other.example", "To: bravo@to.example", "Subject: fig roll",
        "Date: Sun, 31 Dec 2023 22:00:00 -0300")),
    ("17-Feb-2024 10:00:00 +0000", "", message(
        "From: quebec@from.example", "To: mike@to.example", "Subject: =?iso-8859-1?q?M=FCsli?=",
        "Date: Sun, 07 Jan 2024 10:00:00 +0000")),
]

# RFC 5256 THREAD: reference chains, In-Reply-To only, References winning over In-Reply-To,
# missing parents (dummies pruned or kept at the root), a duplicate Message-ID, a loop, a
# self-reference, an invalid Message-ID, garbage around an In-Reply-To id, subject merging
# of roots (reply into non-reply; two non-replies under a dummy), empty base subjects.
THREAD_SET = [  # (number: INTERNALDATE's day, Message-ID and reference headers, Subject, Date)
    (1, "Message-ID: <a@t>", "thread one", "01 Mar 2024 10:00"),
    (2, "Message-ID: <b@t>\r\nIn-Reply-To: <a@t>", "Re: thread one", "01 Mar 2024 11:00"),
    (3, "Message-ID: <c@t>\r\nReferences: <a@t> <b@t>", "Re: thread one", "01 Mar 2024 12:00"),
    (4, "Message-ID: <d@t>\r\nReferences: <x1@t> <x2@t>", "lost parent", "02 Mar 2024 10:00"),
    (5, "Message-ID: <e@t>\r\nReferences: <x1@t>", "Re: lost parent", "02 Mar 2024 09:00"),
    (6, "Message-ID: <a@t>", "dup id", "03 Mar 2024 10:00"),
    (7, "Message-ID: <f@t>\r\nReferences: <g@t>", "loop", "04 Mar 2024 10:00"),
    (8, "Message-ID: <g@t>\r\nReferences: <f@t>", "Re: loop", "04 Mar 2024 09:00"),
    (9, "Message-ID: <h@t>\r\nReferences: <h@t>", "self", "05 Mar 2024 10:00"),
    (10, "Message-ID: <i@t>", "Re: thread one", "01 Mar 2024 11:30"),
    (11, "Message-ID: <j@t>", "orange", "06 Mar 2024 10:00"),
    (12, "Message-ID: <k@t>", "orange", "06 Mar 2024 09:00"),
    (13, "Message-ID: not-an-id\r\nIn-Reply-To: Your message of Friday <c@t>", "Re: thread one",
     "01 Mar 2024 13:00"),
    (14, "Message-ID: <l@t>\r\nIn-Reply-To: <j@t>\r\nReferences: <k@t>", "Re: orange", "06 Mar 2024 11:00"),
    (15, "Message-ID: <m@t>", "Re:", "07 Mar 2024 10:00"),
    (16, "Message-ID: <n@t>\r\nIn-Reply-To: <nothere@t>", "Re:", None),
    (17, "Message-ID: <o@t>\r\nReferences: <b@t> <zz@t>", "Re: thread one", "01 Mar 2024 10:30"),
    (18, "Message-ID: <p@t>\r\nReferences: <k@t>", "Fwd: orange", "06 Mar 2024 08:00"),
]

MIME_SET = [
    # 1: RFC 5322 appendix A.5 (comments and white space) plus groups and a source route.
    message("Date: Tue, 05 Mar 2024 10:00:00 +0100",
            'From: "Joe Q. Public" <john.q.public@example.com>, Pete(A nice \\) chap) '
            "<pete(his account)@silly.test(his host)>",
            "Sender: <@relay1.example,@relay2.example:joe@example.com>",
            "Reply-To: joe@example.com (Joe at home)",
            "To: A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n"
            "         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of the group)",
            "Cc: Undisclosed recipients:;",
            'Bcc: "Mary \\"M\\" Smith" <mary@x.test>',
            "In-Reply-To: <3456@example.net>", "Message-ID: <testabcd.1234@silly.test>",
            "Subject: =?utf-8?q?caf=C3=A9?= =?utf-8?q?_au_lait?="),
    # 2: multipart/alternative inside multipart/mixed, an attachment with every MIME field.
    message("From: a@example.com", "Subject: mixed alt", "MIME-Version: 1.0",
            'Content-Type: multipart/mixed; boundary="outer"', body=(
                "preamble\r\n--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
                '--inner\r\nContent-Type: text/plain; charset="utf-8"\r\n'
                "Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 text\r\n"
                "--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>caf&eacute;</p>\r\n"
                "--inner--\r\n--outer\r\nContent-Type: application/pdf; name=\"doc.pdf\"\r\n"
                'Content-Disposition: attachment; filename="doc.pdf"; size=8\r\n'
                "Content-Transfer-Encoding: base64\r\nContent-ID: <part3@example.com>\r\n"
                "Content-Description: A PDF\r\nContent-Language: en, de\r\n"
                "Content-Location: http://example.com/doc.pdf\r\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
                "\r\nJVBERi0xLjQK\r\n--outer--\r\nepilogue\r\n")),
    # 3: an attached message/rfc822 (itself multipart) as part 1.
    message("From: b@example.com", "Subject: forwarded", "MIME-Version: 1.0",
            "Content-Type: multipart/mixed; boundary=b1", body=(
                "--b1\r\nContent-Type: message/rfc822\r\nContent-Description: the original\r\n\r\n"
                "From: orig@example.net\r\nTo: b@example.com\r\nSubject: the original\r\n"
                "Date: Mon, 04 Mar 2024 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
                "Content-Type: multipart/alternative; boundary=b2\r\n\r\n"
                "--b2\r\nContent-Type: text/plain\r\n\r\nplain original\r\n"
                "--b2\r\nContent-Type: text/html\r\n\r\n<b>html original</b>\r\n--b2--\r\n\r\n"
                "--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nmy comment\r\n--b1--\r\n")),
    # 4: a binary part with NUL bytes (appended as a literal8). Dovecot rewrites the part to
    # base64 when it saves a literal8 APPEND, so its BODY[...] and BODYSTRUCTURE answers show
    # base64: that is what the binary cases compare with (an IMAP4rev1 literal cannot carry
    # NUL, RFC 3501 §9 CHAR8; only BINARY[...] returns the raw octets, in a literal8).
    message("From: c@example.com", "Subject: binary part", "MIME-Version: 1.0",
            "Content-Type: multipart/mixed; boundary=zz", body=(
                "--zz\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n"
                "\r\nAB\0CD\0\r\nEF\r\n--zz\r\nContent-Type: text/plain\r\n\r\nafter\r\n--zz--\r\n")),
    # 5: text only reachable decoded: base64 and quoted-printable (a soft break inside a word).
    message("From: Dan (the decoder) <dan@example.org>", 'To: "Eve, the listener" <eve@example.org>',
            "Subject: encoded bodies", "MIME-Version: 1.0", "Content-Type: multipart/mixed; boundary=sep",
            body=("--sep\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
                  "\r\nVGhlIHNlY3JldCB3b3JkIGlzIHphbnppYmFyLgpLcsO8bWVsCg==\r\n"
                  "--sep\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
                  "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                  "soft line break inside a word: xylo=\r\nphone, and Gr=FC=DFe\r\n--sep--\r\n")),
    # 6: no MIME headers at all (text/plain us-ascii by default), an encoded-word subject.
    message("From: plain@example.com", "Subject: =?utf-8?q?Kr=C3=BCmel?= plain", body="just text, ok\r\n"),
    # 7: odd address forms: no domain, a comment as the only name, an empty group. (An
    # unquoted address as its own name, `a@b <a@b>`, is left out: it is not RFC 5322, and
    # Dovecot drops the addresses after it.)
    message("From: joe", "To: Some One <so@x.test>, bare@x.test (Bare Name)",
            "Cc: undisclosed-recipients:;", "Subject: odd addresses", body="x\r\n"),
]


def thread_message(number: int, ids: str, subject: str, date: str | None) -> tuple[str, str, bytes]:
    headers = [f"From: t{number}@example.org", ids, f"Subject: {subject}"]
    if date:
        headers.append(f"Date: {date}:00 +0000")
    return (f"{number:02d}-Apr-2024 10:00:00 +0000", "", message(*headers))


MAILBOXES = {
    "sort": SORT_SET,
    "thread": [thread_message(*entry) for entry in THREAD_SET],
    "mime": [(f"0{n}-Mar-2024 12:00:00 +0000", "", raw) for n, raw in enumerate(MIME_SET, 1)],
}


# --------------------------------------------------------------------------
# Servers and sessions
# --------------------------------------------------------------------------

def append(client, mailbox: str, date: str, flags: str, raw: bytes) -> None:
    literal = "~{%d}" if b"\0" in raw else "{%d}"  # NUL needs a literal8 (RFC 3516)
    client.ok(f'APPEND "{mailbox}" ({flags}) "{date}" {literal % len(raw)}', raw)


@pytest.fixture(scope="module")
def letterbox(work_root, account_template):
    """One letterbox for the module (the conftest `server` fixture is per test), plain
    LOGIN allowed on loopback."""
    server = Server(work_root / "dovecot-diff", allow_plaintext_on_loopback=True)
    server.copy_data_from(account_template)
    server.start()
    yield server
    server.stop()
    server.assert_no_panic()


@pytest.fixture(scope="module")
def ports(letterbox, dovecot_server):
    """Both servers, provisioned with the same mailboxes and messages; {name: port}."""
    ports = {"letterbox": letterbox.port("imap"), "dovecot": dovecot_server.port}
    for port in ports.values():
        client = login(port, ALICE, PASSWORDS[ALICE])
        for mailbox, messages in MAILBOXES.items():
            client.ok(f"CREATE {mailbox}")
            for date, flags, raw in [EXPUNGED, *messages]:
                append(client, mailbox, date, flags, raw)
            client.ok(f"SELECT {mailbox}")
            client.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
            client.ok("EXPUNGE")
        client.ok("LOGOUT")
        client.close()
    return ports


def replies(ports, mailbox: str | None, commands) -> dict[str, list[bytes]]:
    """Runs `commands` (a line, or (line with "{}" per literal, literal...)) in a fresh
    session on each server, after EXAMINE of `mailbox` (read-only: BODY[] sets no \\Seen);
    returns each server's normalised replies, every command's lines after a ">> command"."""
    out = {}
    for name, port in ports.items():
        client = login(port, ALICE, PASSWORDS[ALICE])
        try:
            if mailbox:
                client.ok(f"EXAMINE {mailbox}")
            lines = []
            for command in commands:
                text, *literals = (command,) if isinstance(command, str) else command
                for literal in literals:  # "{}" announces the next literal
                    text = text.replace("{}", "{%d}" % len(literal), 1)
                lines.append(b">> " + text.encode() + b"\r\n")
                lines += normalise(client.command(text, *literals), text.encode())
            out[name] = lines
        finally:
            client.close()
    return out


# Cases whose command is meant to fail; every other data case must get OK from Dovecot,
# so that two servers failing alike cannot pass as agreement.
FAILING_CASES = {"bad-charset", "bad-criterion", "unknown-algorithm", "partial-with-all",
                 "partial-twice", "partial-zero"}


def assert_same(got: dict[str, list[bytes]], expected: list[bytes] | None = None,
                case: str | None = None) -> None:
    """letterbox's replies must equal Dovecot's (or `expected`, where Dovecot is wrong)."""
    if case is not None and case not in FAILING_CASES:
        tagged = [line for line in got["dovecot"] if line.startswith(b"TAG ")]
        assert tagged and all(line == b"TAG OK\r\n" for line in tagged), got["dovecot"]
    want = got["dovecot"] if expected is None else expected
    if got["letterbox"] != want:
        diff = difflib.unified_diff([repr(line) for line in want], [repr(line) for line in got["letterbox"]],
                                    "dovecot" if expected is None else "expected", "letterbox",
                                    lineterm="", n=2)
        pytest.fail("replies differ:\n" + "\n".join(diff), pytrace=False)


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

# Differences from Dovecot that are known and not fixed yet (issue 11 stays open for
# them). Strict: once letterbox answers like Dovecot, the case fails until it leaves this
# list.
KNOWN_DIFFERENCES = {
}


def cases(table: dict) -> list:
    """The table's cases as pytest params, known differences marked strict xfail."""
    return [
        pytest.param(value, id=key, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_DIFFERENCES[key])]
                     if key in KNOWN_DIFFERENCES else [])
        for key, value in table.items()
    ]



SORT_CASES = {
    "arrival": "SORT (ARRIVAL) UTF-8 ALL",
    "cc": "SORT (CC) UTF-8 ALL",
    "date": "SORT (DATE) UTF-8 ALL",
    "from": "SORT (FROM) UTF-8 ALL",
    "size": "SORT (SIZE) UTF-8 ALL",
    "subject": "SORT (SUBJECT) UTF-8 ALL",
    "to": "SORT (TO) UTF-8 ALL",
    "reverse-arrival": "SORT (REVERSE ARRIVAL) UTF-8 ALL",
    "reverse-date": "SORT (REVERSE DATE) UTF-8 ALL",
    "reverse-size": "SORT (REVERSE SIZE) UTF-8 ALL",
    "subject-reverse-date": "SORT (SUBJECT REVERSE DATE) UTF-8 ALL",
    "reverse-subject-date": "SORT (REVERSE SUBJECT DATE) UTF-8 ALL",
    "reverse-from-reverse-cc": "SORT (REVERSE FROM REVERSE CC) UTF-8 ALL",
    "to-cc-size": "SORT (TO CC SIZE) US-ASCII ALL",
    "displayfrom": "SORT (DISPLAYFROM) UTF-8 ALL",
    "displayto": "SORT (DISPLAYTO) UTF-8 ALL",
    "reverse-displayfrom": "SORT (REVERSE DISPLAYFROM) UTF-8 ALL",
    "search-key-unseen": "SORT (SUBJECT) UTF-8 UNSEEN",
    "search-key-or": "SORT (DATE) UTF-8 OR FROM hotel SUBJECT pie",
    "uid-date": "UID SORT (DATE) UTF-8 ALL",
    "envelope-of-sort-keys": "FETCH 3:6 (ENVELOPE)",
    "uid-subject-seen": "UID SORT (SUBJECT) UTF-8 SEEN",
    "uid-range": "UID SORT (ARRIVAL) UTF-8 UID 5:12",
    "esort": "SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL",
    "esort-uid": "UID SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL",
    "esort-count-unseen": "SORT RETURN (COUNT) (SUBJECT) UTF-8 UNSEEN",
    "esort-empty": "SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 SUBJECT nosuchthing",
    "bad-charset": "SORT (SUBJECT) X-NO-SUCH-CHARSET ALL",
    "bad-criterion": "SORT (BOGUS) UTF-8 ALL",
}


@pytest.mark.parametrize("command", cases(SORT_CASES))
def test_sort(ports, command, request):
    assert_same(replies(ports, "sort", [command]), case=request.node.callspec.id)


THREAD_CASES = {
    "orderedsubject": "THREAD ORDEREDSUBJECT UTF-8 ALL",
    "references": "THREAD REFERENCES UTF-8 ALL",
    "uid-orderedsubject": "UID THREAD ORDEREDSUBJECT UTF-8 ALL",
    "uid-references": "UID THREAD REFERENCES UTF-8 ALL",
    "references-subset": "THREAD REFERENCES UTF-8 SUBJECT orange",
    "orderedsubject-subset": "THREAD ORDEREDSUBJECT US-ASCII NOT SUBJECT thread",
    "unknown-algorithm": "THREAD NOSUCH UTF-8 ALL",
}


@pytest.mark.parametrize("command", cases(THREAD_CASES))
def test_thread(ports, command, request):
    assert_same(replies(ports, "thread", [command]), case=request.node.callspec.id)


FETCH_CASES = {
    "envelope-groups-comments-route": "FETCH 1 (ENVELOPE)",
    "envelope-rfc822-part": "FETCH 3 (ENVELOPE)",
    "envelope-all": "FETCH 2:* (ENVELOPE)",
    "envelope-odd-addresses": "FETCH 7 (ENVELOPE)",
    "bodystructure-mixed-alternative": "FETCH 2 (BODYSTRUCTURE)",
    "bodystructure-rfc822": "FETCH 3 (BODYSTRUCTURE)",
    "bodystructure-binary": "FETCH 4 (BODYSTRUCTURE)",
    "bodystructure-encoded": "FETCH 5:6 (BODYSTRUCTURE)",
    "body-non-extensible": "FETCH 2:3 (BODY)",
    "rfc822-part": "FETCH 3 (BODY[1])",
    "rfc822-part-text": "FETCH 3 (BODY[1.TEXT])",
    "rfc822-part-mime": "FETCH 3 (BODY[1.MIME])",
    "rfc822-part-header": "FETCH 3 (BODY[1.HEADER])",
    "rfc822-part-inner": "FETCH 3 (BODY[1.1] BODY[1.2.MIME])",
    "rfc822-part-partial": "FETCH 3 (BODY[1]<10.20>)",
    "binary-part": "FETCH 4 (BODY[1])",
    "binary-part-text": "FETCH 4 (BODY[1.TEXT])",
    "binary-part-mime": "FETCH 4 (BODY[1.MIME])",
    "binary-whole": "FETCH 4 (BODY[])",
    "binary-fetch-binary": "FETCH 4 (BINARY[1] BINARY.SIZE[1])",
    "qp-part": "FETCH 2 (BODY[1.1] BODY[1.1.MIME])",
    "header-fields": "FETCH 1 (BODY[HEADER.FIELDS (TO CC)])",
}


@pytest.mark.parametrize("command", cases(FETCH_CASES))
def test_fetch(ports, command, request):
    assert_same(replies(ports, "mime", [command]), case=request.node.callspec.id)


SEARCH_CASES = {
    "from-display-name": "SEARCH FROM public",
    "from-comment": "SEARCH FROM nice",
    "from-comment-in-addr-spec": 'SEARCH FROM "his account"',
    "from-domain": "SEARCH FROM silly.test",
    "from-address": "SEARCH FROM dan@example.org",
    "from-comment-decoder": "SEARCH FROM decoder",
    "to-group-name": 'SEARCH TO "a group"',
    "to-group-member": "SEARCH TO jdoe@one.test",
    "to-quoted-comma": 'SEARCH TO "eve, the"',
    "cc-empty-group": "SEARCH CC undisclosed",
    "body-base64": "SEARCH BODY zanzibar",
    "text-base64": "SEARCH TEXT ZANZIBAR",
    # With a CHARSET other than US-ASCII, transfer encodings MUST be decoded before comparing
    # (RFC 3501 §6.4.4): the raw base64 or quoted-printable text is not what is searched.
    "body-base64-raw-not-found": "SEARCH CHARSET UTF-8 BODY VGhlIHNlY3JldC",
    "body-qp-soft-break": "SEARCH BODY xylophone",
    "body-qp-raw-not-found": 'SEARCH CHARSET UTF-8 BODY "xylo="',
    "body-latin1-decoded": ("SEARCH CHARSET UTF-8 BODY {}", "grüße".encode()),
    "body-utf8-base64": ("SEARCH CHARSET UTF-8 BODY {}", "KRÜMEL".encode()),
    "text-encoded-word-header": ("SEARCH CHARSET UTF-8 TEXT {}", "krümel".encode()),
    "subject-encoded-word": "SEARCH SUBJECT lait",
    "esearch": "SEARCH RETURN (MIN MAX COUNT ALL) OR SUBJECT binary SUBJECT plain",
    "esearch-uid": "UID SEARCH RETURN (MIN MAX COUNT ALL) ALL",
    "esearch-empty": "SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT nosuchthing",
    "esearch-default": "SEARCH RETURN () FROM example",
    # CONTEXT=SEARCH (RFC 5267 §4): PARTIAL windows, and CONTEXT as a mere hint.
    "partial": "SEARCH RETURN (PARTIAL 2:4) ALL",
    "partial-reversed-range": "UID SEARCH RETURN (MIN PARTIAL 9:2 COUNT) ALL",
    "partial-beyond-the-end": "SEARCH RETURN (PARTIAL 50:60) ALL",
    "partial-empty-result": "SEARCH RETURN (PARTIAL 1:3 MIN) SUBJECT nosuchthing",
    "context-hint": "SEARCH RETURN (CONTEXT) FROM example",
    "context-hint-count": "SEARCH RETURN (CONTEXT COUNT) ALL",
    "partial-with-all": "SEARCH RETURN (PARTIAL 1:3 ALL) ALL",
    "partial-twice": "SEARCH RETURN (PARTIAL 1:3 PARTIAL 4:5) ALL",
    "partial-zero": "SEARCH RETURN (PARTIAL 0:3) ALL",
}


@pytest.mark.parametrize("command", cases(SEARCH_CASES))
def test_search(ports, command, request):
    assert_same(replies(ports, "mime", [command]), case=request.node.callspec.id)


def test_esearch_over_flags(ports):
    assert_same(replies(ports, "sort", ["SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN",
                                        "UID SEARCH RETURN (MIN MAX COUNT ALL) SEEN"]),
                case="esearch-over-flags")


def test_esort_partial(ports):
    assert_same(replies(ports, "sort", ["SORT RETURN (PARTIAL 2:4) (REVERSE SUBJECT) UTF-8 ALL",
                                        "UID SORT RETURN (PARTIAL 1:2 COUNT) (DATE) UTF-8 UNSEEN"]),
                case="esort-partial")


def context_session(port: int, mailbox: str):
    client = login(port, ALICE, PASSWORDS[ALICE])
    client.ok(f"SELECT {mailbox}")
    return client


def test_search_context_updates(ports):
    """RFC 5267 §4.3: SEARCH RETURN (UPDATE) contexts get REMOVEFROM/ADDTO as another
    session changes flags, delivers and expunges; REMOVEFROM comes before EXPUNGE."""
    msg = message("From: c@example.org", "Subject: context")
    got = {}
    for name, port in ports.items():
        setup = login(port, ALICE, PASSWORDS[ALICE])
        setup.ok("CREATE ctx")
        for _ in range(6):
            append(setup, "ctx", "01-May-2024 10:00:00 +0000", "", msg)
        setup.close()
        watcher, changer = context_session(port, "ctx"), context_session(port, "ctx")
        lines = []

        def run(client, text, *literals):
            lines.append(b">> " + text.encode() + b"\r\n")
            lines.extend(normalise(client.command(text, *literals), text.encode(), keep_tags=True))

        try:
            run(watcher, "SEARCH RETURN (UPDATE) UNSEEN")
            run(watcher, "UID SEARCH RETURN (UPDATE COUNT) UNSEEN")
            run(watcher, "SEARCH RETURN (UPDATE MIN) OR SEEN FLAGGED")
            run(watcher, "UID SEARCH RETURN (PARTIAL 1:2 UPDATE) SEEN")
            changer.ok("STORE 2 +FLAGS (\\Seen)")
            changer.ok("STORE 5 +FLAGS (\\Flagged)")
            append(changer, "ctx", "01-May-2024 10:00:00 +0000", "", msg)
            run(watcher, "NOOP")
            changer.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
            changer.ok("EXPUNGE")
            run(watcher, "NOOP")
            run(watcher, 'CANCELUPDATE "t3"')
            run(watcher, 'CANCELUPDATE "nosuchtag"')
            append(changer, "ctx", "01-May-2024 10:00:00 +0000", "\\Seen", msg)
            run(watcher, "NOOP")
            # The session's own changes update its contexts too.
            run(watcher, "STORE 1 +FLAGS (\\Seen)")
            run(watcher, "UNSELECT")
            run(watcher, "SELECT ctx")
            append(changer, "ctx", "01-May-2024 10:00:00 +0000", "", msg)
            run(watcher, "NOOP")
        finally:
            watcher.close()
            changer.close()
        got[name] = lines
    assert b"ADDTO" in b"".join(got["dovecot"]) and b"REMOVEFROM" in b"".join(got["dovecot"])
    assert_same(got)


MAILBOX_CASES = {  # each case uses names of its own: the servers live for the whole module
    "rename-noselect-parent": ["CREATE lt7", "CREATE lt7/c", "DELETE lt7", "RENAME lt7 lt8",
                               'LIST "" lt7*', 'LIST "" lt8*', "CREATE lt9", "RENAME lt9 lt8"],
    "create-subscribe-delete": [
        "CREATE lt1", "CREATE lt1/x", "SUBSCRIBE lt1/x", "SUBSCRIBE lt1", "DELETE lt1/x",
        'LIST "" lt1* RETURN (CHILDREN)', 'LIST (SUBSCRIBED) "" lt1*',
        "UNSUBSCRIBE lt1/x", 'LSUB "" lt1*', 'LIST (SUBSCRIBED) "" lt1*'],
    "wildcards": [
        "CREATE lt2", "CREATE lt2/a", "CREATE lt2/a/b", "CREATE lt2/c", 'LIST "" lt2/%',
        'LIST "" lt2/*', 'LIST "" lt2/%/%', 'LIST lt2/ %', 'LIST "" LT2', 'LIST "" lt2/% RETURN (CHILDREN)'],
    # RFC 3501 §6.3.4: deleting a name with inferiors is permitted; the name becomes \Noselect.
    "delete-parent-with-children": ["CREATE lt3", "CREATE lt3/c", "DELETE lt3", 'LIST "" lt3*'],
    "lsub-unsubscribed-parent": [
        "CREATE lt4", "CREATE lt4/p", "CREATE lt4/p/q", "SUBSCRIBE lt4/p/q", 'LSUB "" lt4/%',
        'LSUB "" lt4*', 'LIST "" lt4/% RETURN (CHILDREN)', 'LIST (SUBSCRIBED RECURSIVEMATCH) "" lt4/%'],
    "create-existing-and-delete-missing": ["CREATE lt5", "CREATE lt5", "CREATE lt5/", "DELETE lt5/nope",
                                           'LIST "" lt5*'],
    # (Whether a subscription follows RENAME is not specified: letterbox moves it, Dovecot not.)
    "rename-with-children": ["CREATE lt6", "CREATE lt6/a", "CREATE lt6/a/b", "RENAME lt6/a lt6/z",
                             'LIST "" lt6* RETURN (CHILDREN)', "SELECT lt6/z/b", 'LIST "" lt6/a*'],
}


@pytest.mark.parametrize("commands", cases(MAILBOX_CASES))
def test_list_lsub(ports, commands):
    assert_same(replies(ports, None, commands))


def test_status(ports):
    msg = message("From: s@example.org", "Subject: status")
    commands = ["CREATE st", *[(f'APPEND st ({flags}) "01-May-2024 10:00:00 +0000" {{}}', msg)
                               for flags in ("\\Seen", "", "", "\\Seen")],
                "STATUS st (MESSAGES UNSEEN UIDNEXT)", "SELECT st", "STORE 2:3 +FLAGS.SILENT (\\Deleted)",
                "EXPUNGE", "UNSELECT", "STATUS st (MESSAGES UNSEEN UIDNEXT)",
                "STATUS sort (MESSAGES UNSEEN UIDNEXT)", "STATUS thread (UIDNEXT MESSAGES)"]
    assert_same(replies(ports, None, commands))
