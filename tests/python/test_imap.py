"""IMAP: imap (STARTTLS) and imaps (implicit TLS) with imaplib, raw sockets and curl."""

from __future__ import annotations

import base64
import imaplib
import re
import smtplib
import socket
import subprocess
import threading
import time

import pytest

from conftest import (
    ALICE,
    BOB,
    HOST,
    IO_TIMEOUT,
    LineClient,
    PASSWORDS,
    deliver,
    imap_starttls_login,
    imaps_login,
    insecure_tls_context,
    make_message,
    new_token,
    require_tool,
    run_fetchmail,
)


def ok(result):
    typ, data = result
    assert typ == "OK", data
    return data


def fetch_body(imap, spec: bytes | str, item: str = "(BODY.PEEK[])", uid: bool = False) -> bytes:
    if uid:
        data = ok(imap.uid("FETCH", spec, item))
    else:
        data = ok(imap.fetch(spec, item))
    assert isinstance(data[0], tuple), data
    return data[0][1]


class RawImap:
    """A line-level IMAP client for bad input."""

    def __init__(self, port: int, tls: bool = False):
        sock = socket.create_connection((HOST, port), timeout=IO_TIMEOUT)
        if tls:
            sock = insecure_tls_context().wrap_socket(sock, server_hostname=HOST)
        self.sock = sock
        self.file = sock.makefile("rb")
        greeting = self.file.readline()
        assert greeting.startswith(b"* OK"), greeting

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def until_tagged(self, tag: bytes) -> list[bytes]:
        lines = []
        while True:
            line = self.file.readline()
            assert line, f"connection closed; got {lines!r}"
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def command(self, line: bytes) -> bytes:
        tag = line.split(b" ", 1)[0]
        self.send(line + b"\r\n")
        return self.until_tagged(tag)[-1]

    def at_eof(self) -> bool:
        try:
            while True:
                if not self.file.readline():
                    return True
        except OSError:
            return False

    def close(self):
        self.sock.close()


def test_capabilities_and_login_policy(server):
    imap = imaplib.IMAP4(HOST, server.port("imap"), timeout=IO_TIMEOUT)
    caps = imap.capabilities
    for cap in ("IMAP4REV1", "STARTTLS", "LOGINDISABLED", "IDLE", "MOVE", "UIDPLUS", "SPECIAL-USE"):
        assert cap in caps, caps
    assert any(c.startswith("APPENDLIMIT=") for c in caps)
    with pytest.raises(imaplib.IMAP4.error):
        imap.login(ALICE, PASSWORDS[ALICE])
    imap.starttls(ssl_context=insecure_tls_context())
    ok(imap.capability())
    assert "LOGINDISABLED" not in imap.capabilities
    assert "AUTH=PLAIN" in imap.capabilities
    with pytest.raises(imaplib.IMAP4.error):
        imap.login(ALICE, "wrong password")
    imap.login(ALICE, PASSWORDS[ALICE])
    imap.logout()


def test_plaintext_login_on_loopback_when_allowed(make_server):
    server = make_server(allow_plaintext_on_loopback=True)
    imap = imaplib.IMAP4(HOST, server.port("imap"), timeout=IO_TIMEOUT)
    assert "LOGINDISABLED" not in imap.capabilities
    imap.authenticate("PLAIN", lambda _: f"\0{ALICE}\0{PASSWORDS[ALICE]}".encode())
    ok(imap.select("INBOX"))
    imap.logout()


def test_select_fetch_store_search(server):
    token, message = deliver(server)
    deliver(server, sender="carol@remote.test")
    imap = imaps_login(server)
    data = ok(imap.select("INBOX"))
    assert data == [b"2"]
    body = fetch_body(imap, "1")
    assert body.endswith(message)
    assert body.startswith(b"Return-Path: ")
    data = ok(imap.fetch("1", "(UID FLAGS RFC822.SIZE INTERNALDATE)"))
    assert f"RFC822.SIZE {len(body)}".encode() in data[0]
    assert b"FLAGS (\\Recent)" in data[0]  # this session was the first to select INBOX
    assert re.search(rb'INTERNALDATE "\d\d-\w{3}-\d{4} \d\d:\d\d:\d\d \+0000"', data[0])
    header = fetch_body(imap, "1", "(BODY.PEEK[HEADER.FIELDS (Subject)])")
    assert header == f"Subject: test {token}\r\n\r\n".encode()
    partial = fetch_body(imap, "1", "(BODY.PEEK[]<0.11>)")
    assert partial == b"Return-Path"
    text = fetch_body(imap, "1", "(BODY.PEEK[TEXT])")
    assert text == f"This is message {token}.\r\n".encode()
    # BODY[] without PEEK sets \Seen.
    fetch_body(imap, "1", "(BODY[])")
    data = ok(imap.fetch("1", "(FLAGS)"))
    assert b"\\Seen" in data[0]
    assert ok(imap.search(None, "UNSEEN")) == [b"2"]
    assert ok(imap.search(None, "SEEN")) == [b"1"]
    assert ok(imap.search(None, "FROM", "carol")) == [b"2"]
    assert ok(imap.search(None, "SUBJECT", token)) == [b"1"]
    assert ok(imap.search(None, "BODY", token.upper())) == [b"1"]
    assert ok(imap.search(None, "NOT", "SEEN")) == [b"2"]
    assert ok(imap.search(None, "OR", "SEEN", "FROM", "carol")) == [b"1 2"]
    assert ok(imap.search(None, "LARGER", "10", "SMALLER", "100000")) == [b"1 2"]
    assert ok(imap.search(None, "SINCE", "1-Jan-2020")) == [b"1 2"]
    assert ok(imap.search(None, "BEFORE", "1-Jan-2020")) == [b""]
    data = ok(imap.store("2", "+FLAGS", "(\\Flagged $Work)"))
    assert b"\\Flagged" in data[0] and b"$Work" in data[0]
    assert ok(imap.search(None, "FLAGGED")) == [b"2"]
    assert ok(imap.search(None, "KEYWORD", "$work")) == [b"2"]
    ok(imap.store("2", "-FLAGS.SILENT", "(\\Flagged)"))
    assert ok(imap.search(None, "FLAGGED")) == [b""]
    uids = ok(imap.uid("SEARCH", None, "ALL"))[0].split()
    assert len(uids) == 2
    assert ok(imap.uid("SEARCH", None, "UID", uids[1].decode())) == [uids[1]]
    assert fetch_body(imap, uids[0], uid=True).endswith(message)
    imap.logout()


def test_append_copy_move_expunge(server):
    imap = imaps_login(server)
    token = new_token()
    message = make_message(token)
    typ, data = imap.append("Drafts", "(\\Draft $Label)", '"01-Feb-2024 10:00:00 +0100"', message)
    assert typ == "OK", data
    match = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
    assert match, data
    appended_uid = match.group(2)
    assert ok(imap.select("Drafts")) == [b"1"]
    assert fetch_body(imap, appended_uid, uid=True) == message
    data = ok(imap.fetch("1", "(FLAGS INTERNALDATE)"))
    assert b"\\Draft" in data[0] and b"$Label" in data[0]
    assert b'"01-Feb-2024 09:00:00 +0000"' in data[0]
    typ, data = imap.append("NoSuchBox", None, None, message)
    assert typ == "NO" and b"TRYCREATE" in data[0]

    typ, data = imap.copy("1", "Archive")
    assert typ == "OK" and b"COPYUID" in data[0], data
    typ, data = imap.uid("MOVE", appended_uid, "Trash")
    assert typ == "OK", data
    assert ok(imap.select("Drafts")) == [b"0"]
    assert ok(imap.select("Archive", readonly=True)) == [b"1"]
    assert fetch_body(imap, "1") == message
    ok(imap.select("Trash"))
    ok(imap.store("1", "+FLAGS", "(\\Deleted)"))
    ok(imap.expunge())
    assert ok(imap.select("Trash")) == [b"0"]
    # The copy in Archive still has its bytes (blobs are shared, refcounted).
    ok(imap.select("Archive"))
    assert fetch_body(imap, "1") == message
    imap.logout()


def test_mailbox_management(server):
    imap = imap_starttls_login(server)
    data = ok(imap.list())
    listing = b"\n".join(data)
    assert b'(\\HasNoChildren \\Sent) "/" "Sent"' in listing
    assert b'"INBOX"' in listing
    ok(imap.create("Projects/2026"))
    ok(imap.subscribe("Projects/2026"))  # CREATE subscribes nothing
    listing = b"\n".join(ok(imap.list('""', "Projects*")))
    assert b'(\\HasChildren) "/" "Projects"' in listing
    assert b'"Projects/2026"' in listing
    assert ok(imap.list('""', "%")).count(b'(\\HasChildren) "/" "Projects"') == 1
    typ, _ = imap.create("Projects")
    assert typ == "NO"
    ok(imap.rename("Projects", "Work"))
    listing = b"\n".join(ok(imap.list('""', "*")))
    assert b'"Work/2026"' in listing and b'"Projects' not in listing
    assert b'"Work/2026"' in b"\n".join(x for x in ok(imap.lsub()) if x), "moved with RENAME"
    ok(imap.unsubscribe("Work/2026"))
    assert b"Work/2026" not in b"\n".join(x for x in ok(imap.lsub()) if x)
    deliver(server)
    data = ok(imap.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY SIZE HIGHESTMODSEQ)"))
    assert re.search(rb"MESSAGES 1 UNSEEN 1 UIDNEXT 2 UIDVALIDITY \d+ SIZE \d+ HIGHESTMODSEQ \d+", data[0]), data
    # A mailbox with a child is deleted as far as it can be: RFC 3501 §6.3.4 keeps the name
    # as \Noselect for its children.
    ok(imap.delete("Work"))
    assert b'(\\Noselect \\HasChildren) "/" "Work"' in b"\n".join(ok(imap.list('""', "Work")))
    assert imap.select("Work")[0] == "NO"
    assert imap.status("Work", "(MESSAGES)")[0] == "NO"
    typ, _ = imap.delete("Work")
    assert typ == "NO"  # \Noselect with a child
    ok(imap.create("Work"))  # CREATE brings it back, empty
    assert b'(\\HasChildren) "/" "Work"' in b"\n".join(ok(imap.list('""', "Work")))
    ok(imap.delete("Work"))
    ok(imap.delete("Work/2026"))
    ok(imap.delete("Work"))
    assert ok(imap.list('""', "Work*")) == [None]
    typ, _ = imap.delete("INBOX")
    assert typ == "NO"
    ok(imap.rename("INBOX", "Old"))
    assert ok(imap.select("INBOX")) == [b"0"]
    assert ok(imap.select("Old")) == [b"1"]
    imap.logout()


def test_two_sessions_see_each_others_changes(server):
    deliver(server)
    deliver(server)
    a = imaps_login(server)
    b = imaps_login(server)
    ok(a.select("INBOX"))
    ok(b.select("INBOX"))
    ok(a.store("1", "+FLAGS", "(\\Deleted)"))
    ok(a.expunge())
    typ, data = b.noop()
    assert typ == "OK"
    assert b.untagged_responses.get("EXPUNGE") == [b"1"], b.untagged_responses
    b.untagged_responses.clear()
    deliver(server)
    ok(b.noop())
    assert b.untagged_responses.get("EXISTS") == [b"2"], b.untagged_responses
    b.untagged_responses.clear()
    ok(a.noop())
    a.untagged_responses.clear()
    ok(b.store("2", "+FLAGS", "(\\Flagged)"))
    ok(a.noop())
    fetches = a.untagged_responses.get("FETCH", [])
    assert any(b"\\Flagged" in f for f in fetches), a.untagged_responses
    a.logout()
    b.logout()


def test_idle_is_woken_by_smtp_delivery(server):
    imap = imaps_login(server)
    ok(imap.select("INBOX"))
    tag = imap._new_tag()
    imap.send(tag + b" IDLE\r\n")
    assert imap.readline().startswith(b"+")
    sent = {}

    def later():
        time.sleep(0.3)
        sent["at"] = time.monotonic()
        deliver(server)

    thread = threading.Thread(target=later)
    thread.start()
    line = imap.readline()
    woke = time.monotonic()
    thread.join()
    assert line == b"* 1 EXISTS\r\n", line
    # The SMTP 250 comes after the commit that wakes IDLE; allow for the SMTP exchange.
    assert woke - sent["at"] < 1.0
    imap.send(b"DONE\r\n")
    while True:
        line = imap.readline()
        assert line, "closed"
        if line.startswith(tag):
            assert b"OK" in line
            break
    imap.logout()


def test_bad_input_gets_tagged_errors_and_session_continues(server):
    raw = RawImap(server.port("imaps"), tls=True)
    assert b"OK" in raw.command(f"a1 LOGIN {ALICE} {PASSWORDS[ALICE]}".encode())
    assert b"OK" in raw.command(b"a2 SELECT INBOX")
    assert raw.command(b"a3 SEARCH (ALL").startswith(b"a3 BAD")
    assert raw.command(b"a4 SEARCH ALL)").startswith(b"a4 BAD")
    assert raw.command(b"a5 FETCH 0:2 FLAGS").startswith(b"a5 BAD")
    assert raw.command(b"a6 FETCH 1:x FLAGS").startswith(b"a6 BAD")
    assert raw.command(b"a7 FETCH 5 FLAGS").startswith(b"a7 BAD")  # empty mailbox
    assert raw.command(b"a8 CREATE \xff\xfe").startswith(b"a8 BAD")
    assert raw.command(b"a9 FROBNICATE").startswith(b"a9 BAD")
    # A 4 GB literal is refused before anything is read or allocated.
    reply = raw.command(b"b1 APPEND INBOX {4294967296}")
    assert reply.startswith(b"b1 NO [TOOBIG]"), reply
    reply = raw.command(b"b2 LOGIN {4294967296}")
    assert reply.startswith(b"b2 BAD"), reply
    assert b"OK" in raw.command(b"b3 NOOP")
    # A small synchronising literal works.
    raw.send(b"b4 CREATE {5}\r\n")
    assert raw.file.readline().startswith(b"+")
    raw.send(b"Lit-1\r\n")
    assert raw.until_tagged(b"b4")[-1].startswith(b"b4 OK")
    # LITERAL+: a large non-synchronising APPEND is taken.
    message = b"Subject: big\r\n\r\n" + b"x" * 99_980 + b"\r\n"
    raw.send(b"b5 APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\n")
    assert raw.until_tagged(b"b5")[-1].startswith(b"b5 OK [APPENDUID ")
    # Refused ones are read and dropped, and the session goes on: to a missing mailbox...
    raw.send(b"b6 APPEND Nowhere {%d+}\r\n" % len(message) + message + b"\r\n")
    assert raw.until_tagged(b"b6")[-1] == b"b6 NO [TRYCREATE] No such mailbox\r\n"
    # ... and beyond a command's 64 KiB, with a second literal after it.
    raw.send(b"b7 LOGIN {70000+}\r\n" + b"y" * 70000 + b" {3+}\r\nabc\r\n")
    assert raw.until_tagged(b"b7")[-1] == b"b7 BAD [TOOBIG] Literal too large\r\n"
    assert raw.command(b"b8 NOOP") == b"b8 OK NOOP completed\r\n"
    # One larger than APPENDLIMIT is not worth reading: the session ends.
    raw.send(b"b9 APPEND INBOX {4294967296+}\r\n")
    assert raw.until_tagged(b"b9")[-1].startswith(b"b9 NO [TOOBIG]")
    assert raw.at_eof()
    raw.close()


def test_too_many_errors_closes(server):
    raw = RawImap(server.port("imap"))
    for i in range(9):
        assert raw.command(f"e{i} BOGUS".encode()).startswith(f"e{i} BAD".encode())
    raw.send(b"e9 BOGUS\r\n")
    assert raw.at_eof()
    raw.close()


@pytest.mark.parametrize("scheme", ["imap", "imaps"])
def test_curl_reads_a_message(server, scheme):
    curl = require_tool("curl")
    token, message = deliver(server)
    port = server.port(scheme)
    args = [curl, "-s", "-k", "--max-time", "20", "-u", f"{ALICE}:{PASSWORDS[ALICE]}"]
    if scheme == "imap":
        args.append("--ssl-reqd")
    out = subprocess.run(
        args + [f"{scheme}://{HOST}:{port}/INBOX;UID=1"], capture_output=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith(message)
    listing = subprocess.run(args + [f"{scheme}://{HOST}:{port}/"], capture_output=True, timeout=30)
    assert listing.returncode == 0, listing.stderr
    assert b"INBOX" in listing.stdout and b"Archive" in listing.stdout


def test_bob_cannot_see_alice(server):
    deliver(server, to=ALICE)
    imap = imaps_login(server, BOB)
    assert ok(imap.select("INBOX")) == [b"0"]
    imap.logout()


def test_envelope_and_bodystructure(server):
    token, message = deliver(server, extra_headers=("Cc: Carol <carol@example.net>",))
    imap = imaps_login(server)
    ok(imap.select("INBOX"))
    data = ok(imap.fetch("1", "(ENVELOPE BODYSTRUCTURE)"))
    line = data[0]
    assert f'"test {token}"'.encode() in line, line
    assert b'(("Carol" NIL "carol" "example.net"))' in line, line
    assert f'"<{token}@client.test>"'.encode() in line, line
    assert b'BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit"' in line, line
    data = ok(imap.fetch("1", "ALL"))
    assert b"ENVELOPE (" in data[0] and b"RFC822.SIZE" in data[0]
    imap.logout()


def test_mbsync_syncs_both_ways(server, tmp_path):
    mbsync = require_tool("mbsync")
    tokens = [deliver(server)[0] for _ in range(2)]
    maildir = tmp_path / "mail"
    maildir.mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(
        f"""IMAPAccount lb
Host {HOST}
Port {server.port("imaps")}
User {ALICE}
Pass {PASSWORDS[ALICE]}
SSLType IMAPS
CertificateFile {server.data_dir / "tls" / "cert.pem"}

IMAPStore remote
Account lb

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel all
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
"""
    )

    def run():
        out = subprocess.run([mbsync, "-c", str(config), "-a"], capture_output=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        return out

    run()
    # mbsync asks for COMPRESS=DEFLATE when it is offered: the sync ran compressed.
    assert "COMPRESS DEFLATE active" in server.stderr_text()
    local = b"".join(p.read_bytes() for p in (maildir / "INBOX").glob("*/*"))
    for token in tokens:
        assert token.encode() in local
    assert (maildir / "Archive").is_dir()
    # A message written locally goes up.
    new_token_value = new_token()
    (maildir / "Archive" / "new" / "1700000000.1_1.host").write_bytes(make_message(new_token_value))
    # A message marked seen locally is flagged seen remotely.
    first = sorted((maildir / "INBOX").glob("*/*"))[0]
    seen_name = first.name.split(":2,")[0] + ":2,S"
    first.rename(maildir / "INBOX" / "cur" / seen_name)
    run()
    imap = imaps_login(server)
    assert ok(imap.select("Archive")) == [b"1"]
    assert new_token_value.encode() in fetch_body(imap, "1")
    ok(imap.select("INBOX"))
    assert len(ok(imap.search(None, "SEEN"))[0].split()) == 1
    imap.logout()
    # A second run changes nothing.
    before = sorted(p.name for p in maildir.rglob("*") if p.is_file() and "mbsyncstate" not in p.name)
    run()
    after = sorted(p.name for p in maildir.rglob("*") if p.is_file() and "mbsyncstate" not in p.name)
    assert before == after
    imap = imaps_login(server)
    assert ok(imap.select("INBOX")) == [b"2"]
    assert ok(imap.select("Archive")) == [b"1"]
    imap.logout()


@pytest.mark.parametrize("keep", [True, False])
def test_fetchmail_over_imap(server, tmp_path, keep):
    tokens = [deliver(server)[0] for _ in range(2)]
    fetched = run_fetchmail(
        tmp_path, "IMAP", server.port("imaps"), 'ssl\n    sslproto "TLS1.2+"', keep
    )
    for token in tokens:
        assert fetched.count(f"X-Token: {token}".encode()) == 1
    imap = imaps_login(server)
    assert ok(imap.select("INBOX")) == ([b"2"] if keep else [b"0"])
    if keep:
        assert len(ok(imap.search(None, "SEEN"))[0].split()) == 2
    imap.logout()


def test_condstore(server):
    deliver(server)
    deliver(server)
    raw = RawImap(server.port("imaps"), tls=True)
    assert b"OK" in raw.command(f"a1 LOGIN {ALICE} {PASSWORDS[ALICE]}".encode())
    raw.send(b"a2 ENABLE CONDSTORE\r\n")
    lines = raw.until_tagged(b"a2")
    assert b"* ENABLED CONDSTORE\r\n" in lines
    raw.send(b"a3 SELECT INBOX\r\n")
    lines = raw.until_tagged(b"a3")
    highest = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(lines)).group(1))
    raw.send(b"a4 FETCH 1:* (FLAGS)\r\n")
    lines = raw.until_tagged(b"a4")
    modseqs = [int(m) for m in re.findall(rb"MODSEQ \((\d+)\)", b"".join(lines))]
    assert len(modseqs) == 2 and max(modseqs) == highest
    # STORE with UNCHANGEDSINCE below the message's modseq fails for it.
    raw.send(f"a5 STORE 1 (UNCHANGEDSINCE {modseqs[0] - 1}) +FLAGS (\\Seen)\r\n".encode())
    lines = raw.until_tagged(b"a5")
    assert lines[-1].startswith(b"a5 OK [MODIFIED 1]"), lines
    raw.send(f"a6 STORE 1 (UNCHANGEDSINCE {modseqs[0]}) +FLAGS (\\Seen)\r\n".encode())
    lines = raw.until_tagged(b"a6")
    assert lines[-1].startswith(b"a6 OK STORE"), lines
    new_modseq = int(re.search(rb"MODSEQ \((\d+)\)", lines[0]).group(1))
    assert new_modseq > highest
    raw.send(f"a7 FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})\r\n".encode())
    lines = raw.until_tagged(b"a7")
    assert len([l for l in lines if l.startswith(b"* ")]) == 1 and lines[0].startswith(b"* 1 FETCH"), lines
    raw.send(f"a8 SEARCH MODSEQ {new_modseq}\r\n".encode())
    lines = raw.until_tagged(b"a8")
    assert lines[0] == f"* SEARCH 1 (MODSEQ {new_modseq})\r\n".encode(), lines
    raw.send(b"a9 STATUS INBOX (HIGHESTMODSEQ)\r\n")
    lines = raw.until_tagged(b"a9")
    assert f"HIGHESTMODSEQ {new_modseq}".encode() in lines[0], lines
    raw.close()


def test_mime_part_sections_and_large_append(server):
    imap = imaps_login(server)
    boundary = "BOUNDARY42"
    attachment = b"A" * 200_000  # past the 128 KiB spool threshold
    message = (
        f"Subject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary={boundary}\r\n\r\n"
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfirst part\r\n"
        f"--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode() + attachment + f"\r\n--{boundary}--\r\n".encode()
    ok(imap.append("INBOX", None, None, message))
    ok(imap.select("INBOX"))
    assert fetch_body(imap, "1") == message
    assert fetch_body(imap, "1", "(BODY.PEEK[1])") == b"first part"
    assert fetch_body(imap, "1", "(BODY.PEEK[2])") == attachment
    assert fetch_body(imap, "1", "(BODY.PEEK[2.MIME])") == b"Content-Type: application/octet-stream\r\n\r\n"
    data = ok(imap.fetch("1", "(BODYSTRUCTURE)"))
    assert b'("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 10 0 NIL NIL NIL NIL)' in data[0], data
    assert b'"mixed" ("boundary" "BOUNDARY42") NIL NIL NIL))' in data[0], data
    imap.logout()


def test_modified_utf7_and_utf8_accept(server):
    imap = imaps_login(server)
    ok(imap.create('"Entw&APw-rfe/&ZeVnLIqe-"'))
    listing = b"\n".join(ok(imap.list('""', '"Entw&APw-rfe*"')))
    assert b'"Entw&APw-rfe"' in listing and b'"Entw&APw-rfe/&ZeVnLIqe-"' in listing, listing
    with pytest.raises(imaplib.IMAP4.error, match="modified UTF-7"):
        imap.create('"bad&Jjo!-"')
    with pytest.raises(imaplib.IMAP4.error):
        imap.select('"&AGE-"')
    imap.logout()
    raw = RawImap(server.port("imaps"), tls=True)
    assert b"OK" in raw.command(f"a1 LOGIN {ALICE} {PASSWORDS[ALICE]}".encode())
    raw.send(b"a2 ENABLE UTF8=ACCEPT\r\n")
    assert b"* ENABLED UTF8=ACCEPT\r\n" in raw.until_tagged(b"a2")
    raw.send(b'a3 LIST "" "Entw*"\r\n')
    lines = b"".join(raw.until_tagged(b"a3"))
    assert "Entwürfe".encode() in lines and "日本語".encode() in lines, lines
    raw.send('a4 SELECT "Entwürfe/日本語"\r\n'.encode())
    assert raw.until_tagged(b"a4")[-1].startswith(b"a4 OK"), "select by UTF-8 name"
    raw.close()


def test_renaming_the_selected_mailbox_keeps_it_usable(server):
    imap = imaps_login(server)
    ok(imap.create("Box/Sub"))
    ok(imap.append("Box/Sub", None, None, make_message(new_token())))
    ok(imap.select("Box/Sub"))
    ok(imap.rename("Box", "Crate"))
    ok(imap.store("1", "+FLAGS", "(\\Flagged)"))
    assert ok(imap.search(None, "FLAGGED")) == [b"1"]
    imap.logout()


def login_raw(server) -> RawImap:
    raw = RawImap(server.port("imaps"), tls=True)
    assert b"OK" in raw.command(f"a0 LOGIN {ALICE} {PASSWORDS[ALICE]}".encode())
    return raw


def untagged(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines if line.startswith(b"* ")]


def test_imap4rev2_mode(server):
    deliver(server)
    deliver(server)
    raw = login_raw(server)
    raw.send(b"a1 CAPABILITY\r\n")
    caps = raw.until_tagged(b"a1")[0]
    for cap in [b"IMAP4rev1", b"IMAP4rev2", b"ESEARCH", b"SEARCHRES", b"QRESYNC", b"BINARY", b"LIST-STATUS"]:
        assert b" " + cap + b" " in caps, caps
    # Before ENABLE: rev1 behaviour (RECENT, plain SEARCH).
    raw.send(b"a2 SELECT INBOX\r\n")
    assert b"* 2 RECENT\r\n" in raw.until_tagged(b"a2")
    raw.send(b"a3 SEARCH ALL\r\n")
    assert raw.until_tagged(b"a3")[0] == b"* SEARCH 1 2\r\n"
    raw.send(b"a4 ENABLE IMAP4rev2\r\n")
    assert b"* ENABLED IMAP4rev2\r\n" in raw.until_tagged(b"a4")
    raw.send(b"a5 SELECT INBOX\r\n")
    lines = raw.until_tagged(b"a5")
    assert b'* LIST () "/" "INBOX"\r\n' in lines, lines
    assert not any(b"RECENT" in line or b"UNSEEN" in line for line in lines), lines
    assert lines[0] == b"* OK [CLOSED] Previous mailbox closed\r\n", lines
    raw.send(b"a6 UID SEARCH ALL\r\n")
    lines = raw.until_tagged(b"a6")
    assert re.fullmatch(rb'\* ESEARCH \(TAG "a6"\) UID ALL \d+:\d+\r\n', lines[0]), lines
    # UTF-8 mailbox names without UTF8=ACCEPT.
    raw.send('a7 CREATE "Größe"\r\n'.encode())
    assert raw.until_tagged(b"a7")[-1].startswith(b"a7 OK")
    raw.send(b'a8 LIST "" "Gr*"\r\n')
    assert "Größe".encode() in b"".join(raw.until_tagged(b"a8"))
    raw.close()


def test_esearch_and_searchres(server):
    for _ in range(4):
        deliver(server)
    raw = login_raw(server)
    raw.send(b"a1 SELECT INBOX\r\n")
    raw.until_tagged(b"a1")
    raw.send(b"a2 STORE 2,4 +FLAGS (\\Flagged)\r\n")
    raw.until_tagged(b"a2")
    raw.send(b"a3 SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED\r\n")
    lines = raw.until_tagged(b"a3")
    assert lines[0] == b'* ESEARCH (TAG "a3") MIN 2 MAX 4 ALL 2,4 COUNT 2\r\n', lines
    raw.send(b"a4 SEARCH RETURN (COUNT) KEYWORD nothing\r\n")
    assert raw.until_tagged(b"a4")[0] == b'* ESEARCH (TAG "a4") COUNT 0\r\n'
    # SAVE alone sends no ESEARCH; `$` then stands for the result.
    raw.send(b"a5 SEARCH RETURN (SAVE) FLAGGED\r\n")
    lines = raw.until_tagged(b"a5")
    assert len(lines) == 1 and lines[0].startswith(b"a5 OK"), lines
    raw.send(b"a6 FETCH $ (FLAGS)\r\n")
    lines = untagged(raw.until_tagged(b"a6"))
    assert [line.split()[1] for line in lines] == [b"2", b"4"], lines
    raw.send(b"a7 SEARCH NOT $\r\n")
    assert raw.until_tagged(b"a7")[0] == b"* SEARCH 1 3\r\n"
    raw.send(b"a8 UID SEARCH RETURN (SAVE MIN) ALL\r\n")
    raw.until_tagged(b"a8")
    raw.send(b"a9 SEARCH $\r\n")
    assert raw.until_tagged(b"a9")[0] == b"* SEARCH 1\r\n"
    raw.send(b"a10 SEARCH RETURN (BOGUS) ALL\r\n")
    assert raw.until_tagged(b"a10")[-1].startswith(b"a10 BAD")
    raw.close()


def test_binary_fetch_decodes_parts(server):
    imap = imaps_login(server)
    payload = bytes(range(256)) * 4
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    message = (
        b"Subject: binary\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
        b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Gr=C3=BC=C3=9Fe\r\n"
        b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + encoded
        + b"--XX\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-unknown\r\n\r\nzzz\r\n--XX--\r\n"
    )
    ok(imap.append("INBOX", None, None, message))
    ok(imap.select("INBOX"))
    assert fetch_body(imap, "1", "(BINARY.PEEK[1])") == "Grüße".encode()
    # imaplib reads a literal8 (~{n}) as a literal too.
    assert fetch_body(imap, "1", "(BINARY.PEEK[2])") == payload
    assert fetch_body(imap, "1", "(BINARY.PEEK[2]<256.16>)") == payload[256:272]
    data = ok(imap.fetch("1", "(BINARY.SIZE[2] BINARY.SIZE[1])"))
    assert b"BINARY.SIZE[2] 1024" in data[0] and b"BINARY.SIZE[1] 7" in data[0], data
    typ, data = imap.fetch("1", "(BINARY.PEEK[3])")
    assert typ == "NO" and b"UNKNOWN-CTE" in data[0], data
    # PEEK left \Seen alone; BINARY without PEEK sets it.
    assert b"\\Seen" not in ok(imap.fetch("1", "(FLAGS)"))[0]
    fetch_body(imap, "1", "(BINARY[1])")
    assert b"\\Seen" in ok(imap.fetch("1", "(FLAGS)"))[0]
    imap.logout()
    # APPEND with a literal8 holding NUL bytes.
    raw = login_raw(server)
    body = b"Subject: nul\r\n\r\nbefore\x00after\r\n"
    raw.send(b"a1 APPEND INBOX ~{%d}\r\n" % len(body))
    assert raw.file.readline().startswith(b"+")
    raw.send(body + b"\r\n")
    assert raw.until_tagged(b"a1")[-1].startswith(b"a1 OK [APPENDUID")
    raw.close()


def test_qresync(server):
    for _ in range(5):
        deliver(server)
    raw = login_raw(server)
    raw.send(b"a1 SELECT INBOX (QRESYNC (1 1))\r\n")
    assert raw.until_tagged(b"a1")[-1].startswith(b"a1 BAD"), "QRESYNC before ENABLE"
    raw.send(b"a2 ENABLE QRESYNC\r\n")
    assert b"* ENABLED QRESYNC\r\n" in raw.until_tagged(b"a2")
    raw.send(b"a3 SELECT INBOX\r\n")
    lines = b"".join(raw.until_tagged(b"a3"))
    validity = int(re.search(rb"UIDVALIDITY (\d+)", lines).group(1))
    highest = int(re.search(rb"HIGHESTMODSEQ (\d+)", lines).group(1))
    raw.send(b"a4 UID SEARCH ALL\r\n")
    uids = [int(u) for u in raw.until_tagged(b"a4")[0].split()[2:]]
    # Another session changes flags and expunges while this client is "offline".
    other = imaps_login(server)
    ok(other.select("INBOX"))
    ok(other.uid("STORE", f"{uids[1]},{uids[3]}", "+FLAGS", "(\\Deleted)"))
    ok(other.uid("STORE", str(uids[4]), "+FLAGS", "(\\Flagged)"))
    ok(other.expunge())
    other.logout()
    # Our own session hears VANISHED, not EXPUNGE.
    raw.send(b"a5 NOOP\r\n")
    lines = raw.until_tagged(b"a5")
    assert f"* VANISHED {uids[1]},{uids[3]}\r\n".encode() in lines, lines
    assert not any(b"EXPUNGE" in line for line in lines), lines
    raw.send(b"a6 UNSELECT\r\n")
    raw.until_tagged(b"a6")
    # Resynchronisation: what vanished and what changed since `highest`.
    raw.send(f"a7 SELECT INBOX (QRESYNC ({validity} {highest} {uids[0]}:{uids[-1]}))\r\n".encode())
    lines = raw.until_tagged(b"a7")
    assert f"* VANISHED (EARLIER) {uids[1]},{uids[3]}\r\n".encode() in lines, lines
    fetches = [line for line in lines if b" FETCH " in line]
    assert len(fetches) == 1 and f"UID {uids[4]} ".encode() in fetches[0] and b"\\Flagged" in fetches[0], lines
    # A stale UIDVALIDITY gets a plain SELECT.
    raw.send(f"a8 SELECT INBOX (QRESYNC ({validity + 1} {highest}))\r\n".encode())
    lines = raw.until_tagged(b"a8")
    assert not any(b"VANISHED" in line or b" FETCH " in line for line in lines), lines
    raw.send(f"a9 UID FETCH 1:* (FLAGS) (CHANGEDSINCE {highest} VANISHED)\r\n".encode())
    lines = raw.until_tagged(b"a9")
    assert lines[0].startswith(b"* VANISHED (EARLIER) ") and f"{uids[1]}".encode() in lines[0], lines
    raw.close()


def test_list_extended_and_list_status(server):
    deliver(server)
    imap = imaps_login(server)
    ok(imap.create("Projects/Alpha"))
    ok(imap.subscribe("Projects/Alpha"))  # "Projects" itself stays unsubscribed
    imap.logout()
    raw = login_raw(server)
    raw.send(b'a1 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"\r\n')
    lines = b"".join(raw.until_tagged(b"a1"))
    assert b'"Projects" ("CHILDINFO" ("SUBSCRIBED"))' in lines, lines
    assert b'\\Subscribed) "/" "INBOX"' in lines, lines
    raw.send(b'a2 LIST (SPECIAL-USE) "" "*"\r\n')
    lines = untagged(raw.until_tagged(b"a2"))
    assert lines and all(re.search(rb"\\(Sent|Drafts|Trash|Junk|Archive)", line) for line in lines), lines
    raw.send(b'a3 LIST "" ("INBOX" "Projects/*") RETURN (SUBSCRIBED STATUS (MESSAGES UNSEEN DELETED))\r\n')
    lines = untagged(raw.until_tagged(b"a3"))
    assert lines[0].startswith(b"* LIST (") and b'"INBOX"' in lines[0], lines
    assert lines[1] == b'* STATUS "INBOX" (MESSAGES 1 UNSEEN 1 DELETED 0)\r\n', lines
    assert b"\\Subscribed" in lines[2] and b'"Projects/Alpha"' in lines[2], lines
    assert lines[3] == b'* STATUS "Projects/Alpha" (MESSAGES 0 UNSEEN 0 DELETED 0)\r\n', lines
    assert len(lines) == 4, lines
    raw.send(b'a4 LIST (RECURSIVEMATCH) "" "*"\r\n')
    assert raw.until_tagged(b"a4")[-1].startswith(b"a4 BAD")
    raw.close()


def test_quota(server):
    imap = imaps_login(server)
    typ, data = imap.getquotaroot("INBOX")
    assert typ == "OK" and data[1] == [None], data  # no QUOTA response: no quota root
    server.cli("user", "quota", ALICE, "10K")
    deliver(server)
    typ, data = imap.getquotaroot("INBOX")
    assert typ == "OK", data
    used, limit = map(int, re.search(rb"STORAGE (\d+) (\d+)", data[1][0]).groups())
    assert limit == 10 and 1 <= used < 10, data
    assert b"STORAGE" in ok(imap.getquota('""'))[0]
    typ, data = imap.setquota('""', "(STORAGE 99999)")
    assert typ == "NO"
    typ, data = imap.append("INBOX", None, None, b"Subject: big\r\n\r\n" + b"x" * 20_000 + b"\r\n")
    assert typ == "NO" and b"OVERQUOTA" in data[0], data
    imap.logout()
    # Over quota, SMTP answers a temporary 452 4.2.2 at RCPT.
    server.cli("user", "quota", ALICE, "1")
    with smtplib.SMTP(HOST, server.port("smtp"), timeout=IO_TIMEOUT) as smtp:
        smtp.ehlo("client.example")
        smtp.mail("someone@example.net")
        code, text = smtp.rcpt(ALICE)
        assert code == 452 and text.startswith(b"4.2.2"), (code, text)
    server.cli("user", "quota", ALICE, "none")
    deliver(server)


def test_password_change_ends_a_cached_login(server):
    # The first login fills the credential cache; the old password must stop working
    # the moment it is changed.
    imaps_login(server).logout()
    imaps_login(server).logout()
    server.cli("user", "passwd", ALICE, "--password-stdin", stdin_text="a-new-password\n")
    with pytest.raises(imaplib.IMAP4.error):
        imaps_login(server)
    imaps_login(server, password="a-new-password").logout()


# --------------------------------------------------------------------------
# Strict-client fixes (issue 11)
# --------------------------------------------------------------------------

def imap_raw(server) -> LineClient:
    """A raw client on the plaintext IMAP port, logged in as alice, greeting read."""
    client = LineClient(server.port("imap"))
    assert client.readline().startswith(b"* OK")
    client.send(f"L LOGIN {ALICE} {PASSWORDS[ALICE]}\r\n".encode())
    assert tagged_reply(client, b"L").startswith(b"L OK")
    return client


def tagged_reply(client: LineClient, tag: bytes) -> bytes:
    """Reads until the tagged line of `tag` and returns it."""
    while True:
        line = client.readline()
        assert line, "connection closed"
        if line.startswith(tag + b" "):
            return line


def test_mailbox_names_with_brackets(make_server):
    server = make_server(allow_plaintext_on_loopback=True)
    with imap_raw(server) as client:
        for tag, name in ((b"a", b"foo]bar"), (b"b", b"[Gmail]"), (b"c", b"[Gmail]/Sent"), (b"d", b"x[y")):
            client.send(tag + b" CREATE " + name + b"\r\n")
            assert tagged_reply(client, tag) == tag + b" OK CREATE completed\r\n", name
        client.send(b"e SELECT [Gmail]/Sent\r\n")
        assert tagged_reply(client, b"e").startswith(b"e OK [READ-WRITE]")
        client.send(b'f LIST "" *\r\n')
        listed = []
        while (line := client.readline()).startswith(b"* LIST"):
            listed.append(line.rsplit(b" ", 1)[1].strip())
        assert line.startswith(b"f OK")
        for name in (b"foo]bar", b"[Gmail]", b"[Gmail]/Sent", b"x[y"):
            assert name in listed or b'"' + name + b'"' in listed, (name, listed)


def test_long_command_lines_get_a_tagged_answer(make_server):
    server = make_server(allow_plaintext_on_loopback=True)
    with imap_raw(server) as client:
        # RFC 2971's maxima: 30 fields of 30-octet names and 1024-octet values, about 32 KB.
        fields = " ".join(f'"field{i:024d}" "{"v" * 1024}"' for i in range(30))
        client.send(f"i1 ID ({fields})\r\n".encode())
        assert tagged_reply(client, b"i1") == b"i1 OK ID completed\r\n"
        client.send(b"i2 NOOP " + b"x" * 70_000 + b"\r\n")
        assert client.readline() == b"i2 BAD Line too long\r\n"
        client.send(b"i3 NOOP\r\n")
        assert tagged_reply(client, b"i3") == b"i3 OK NOOP completed\r\n"


def test_no_replies_do_not_end_the_session(make_server):
    server = make_server(allow_plaintext_on_loopback=True, limits={"max_errors": 3})
    with imap_raw(server) as client:
        for i in range(12):
            tag = f"s{i}".encode()
            client.send(tag + b" STATUS nosuch" + str(i).encode() + b" (MESSAGES)\r\n")
            assert tagged_reply(client, tag).startswith(tag + b" NO ")
        # Protocol errors still count; each command that works forgives one of them.
        for tag in (b"b0", b"b1", b"n1", b"c0", b"n2", b"c1", b"n3"):
            command = b" NOOP" if tag.startswith(b"n") else b" FROB"
            reply = replies(client, tag + command)[-1]
            assert reply.startswith(tag + (b" OK" if tag.startswith(b"n") else b" BAD")), reply
        # One is still counted; two more in a row reach max_errors (3).
        assert replies(client, b"d0 FROB")[-1].startswith(b"d0 BAD")
        client.send(b"d1 FROB\r\n")
        assert client.readline().startswith(b"d1 BAD")
        assert client.readline() == b"* BYE Too many errors\r\n"


def test_literals_after_refused_lines_are_skipped(make_server):
    server = make_server(allow_plaintext_on_loopback=True)
    with imap_raw(server) as c:
        # An over-long line that announces a literal: the literal is data, not commands.
        c.send(b"t1 NOOP " + b"x" * 70_000 + b" {11+}\r\nt2 LOGOUT\r\n\r\n")
        assert c.readline() == b"t1 BAD Line too long\r\n"
        assert replies(c, b"t3 NOOP")[-1] == b"t3 OK NOOP completed\r\n"
        # A further MULTIAPPEND message with bad arguments is skipped the same way.
        c.send(b"a APPEND INBOX {5+}\r\nHello FOO {11+}\r\nt4 LOGOUT\r\n\r\n")
        assert tagged_reply(c, b"a") == b"a BAD Invalid APPEND argument\r\n"
        assert replies(c, b"t5 NOOP")[-1] == b"t5 OK NOOP completed\r\n"
        # Brackets pair only inside FETCH items: these are two mailbox names.
        assert replies(c, b"c CREATE a[")[-1] == b"c OK CREATE completed\r\n"
        assert replies(c, b"r RENAME a[ b]")[-1] == b"r OK RENAME completed\r\n"
        assert replies(c, b"s SELECT b]")[-1].startswith(b"s OK [READ-WRITE]")
        assert replies(c, b"f UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (Subject From)])")[-1] == (
            b"f OK FETCH completed\r\n")


def test_keywords_per_mailbox_are_capped(make_server):
    server = make_server(allow_plaintext_on_loopback=True)
    deliver(server, ALICE)
    with imap_raw(server) as c:
        replies(c, b"s SELECT INBOX")
        words = lambda lo, hi: b" ".join(b"$k%d" % i for i in range(lo, hi))  # noqa: E731
        # One flag list is bounded by the parser...
        assert replies(c, b"t STORE 1 +FLAGS (" + words(0, 129) + b")")[-1] == (
            b"t BAD At most 128 keywords\r\n")
        # ... and a mailbox by the session: 100, then 29 more is one too many.
        assert replies(c, b"u STORE 1 +FLAGS.SILENT (" + words(0, 100) + b")")[-1] == (
            b"u OK STORE completed\r\n")
        assert replies(c, b"v STORE 1 +FLAGS (" + words(100, 129) + b")")[-1] == (
            b"v NO [LIMIT] At most 128 keywords per mailbox\r\n")
        lines = replies(c, b"w STORE 1 +FLAGS.SILENT (" + words(100, 128) + b")")
        assert lines[-1] == b"w OK STORE completed\r\n"
        assert lines[1].startswith(b"* OK [PERMANENTFLAGS (") and b"\\*" not in lines[1], lines[1]


def test_an_explicit_uid_beyond_the_last_matches_nothing(server):
    for _ in range(2):
        deliver(server, ALICE)
    imap = imaps_login(server)
    try:
        ok(imap.select("INBOX"))
        uids = ok(imap.uid("SEARCH", "ALL"))[0].split()
        last = int(uids[-1])
        assert ok(imap.uid("SEARCH", "UID", f"{last + 1}:4294967295")) == [b""]
        assert ok(imap.uid("SEARCH", "UID", f"{last + 1}:*")) == [str(last).encode()]
    finally:
        imap.logout()


def test_keywords_are_announced_in_flags_before_use(make_server):
    server = make_server(allow_plaintext_on_loopback=True)
    deliver(server, ALICE)
    with imap_raw(server) as a, imap_raw(server) as b:
        for client in (a, b):
            client.send(b"s SELECT INBOX\r\n")
            lines = []
            while not (line := client.readline()).startswith(b"s "):
                lines.append(line)
            assert b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n" in lines
        a.send(b"t STORE 1 +FLAGS ($Work)\r\n")
        assert a.readline() == b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)\r\n"
        assert a.readline() == (
            b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)]"
            b" Flags permitted\r\n")
        assert a.readline() == b"* 1 FETCH (FLAGS (\\Recent $Work))\r\n"  # a selected first
        assert tagged_reply(a, b"t") == b"t OK STORE completed\r\n"
        # The other session learns of the keyword before it sees it on the message.
        b.send(b"n NOOP\r\n")
        assert b.readline() == b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)\r\n"
        assert b.readline().startswith(b"* OK [PERMANENTFLAGS (")
        # (An unsolicited FETCH carries the UID only once QRESYNC is on, as with Dovecot.)
        assert b.readline() == b"* 1 FETCH (FLAGS ($Work))\r\n"
        assert tagged_reply(b, b"n") == b"n OK NOOP completed\r\n"
        # A keyword already announced is not announced again; a new SELECT lists it.
        a.send(b"u STORE 1 +FLAGS ($WORK \\Seen)\r\n")
        assert a.readline() == b"* 1 FETCH (FLAGS (\\Seen \\Recent $Work))\r\n"
        assert tagged_reply(a, b"u") == b"u OK STORE completed\r\n"
        a.send(b"v EXAMINE INBOX\r\n")
        lines = []
        while not (line := a.readline()).startswith(b"v "):
            lines.append(line)
        assert b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)\r\n" in lines


def replies(client: LineClient, command: bytes) -> list[bytes]:
    """Sends one command; returns its untagged lines and the tagged reply last."""
    tag = command.split(b" ", 1)[0]
    client.send(command + b"\r\n")
    lines = []
    while True:
        line = client.readline()
        assert line, f"connection closed after {lines!r}"
        lines.append(line)
        if line.startswith(tag + b" "):
            return lines


def test_recent_belongs_to_the_first_session_that_selects(make_server):
    """RFC 3501 §2.3.2: a message is \\Recent in exactly one session; EXAMINE does not
    claim it; IMAP4rev2 sessions never see it."""
    server = make_server(allow_plaintext_on_loopback=True)
    deliver(server, ALICE)
    deliver(server, ALICE)
    with imap_raw(server) as rev2, imap_raw(server) as look, imap_raw(server) as a, imap_raw(server) as b:
        assert replies(rev2, b"e ENABLE IMAP4rev2")[-1].startswith(b"e OK")
        assert not any(b"RECENT" in line for line in replies(rev2, b"s SELECT INBOX"))
        assert b"* 2 RECENT\r\n" in replies(look, b"x EXAMINE INBOX"), "EXAMINE sees, claims nothing"
        assert b"* 2 RECENT\r\n" in replies(a, b"s SELECT INBOX")
        assert replies(a, b"f FETCH 1:* (FLAGS)")[:2] == [
            b"* 1 FETCH (FLAGS (\\Recent))\r\n", b"* 2 FETCH (FLAGS (\\Recent))\r\n"]
        assert replies(a, b"r SEARCH RECENT")[0] == b"* SEARCH 1 2\r\n"
        assert replies(a, b"n SEARCH NEW")[0] == b"* SEARCH 1 2\r\n"
        assert replies(a, b"o SEARCH OLD")[0] == b"* SEARCH\r\n"
        assert b"* 0 RECENT\r\n" in replies(b, b"s SELECT INBOX"), "a claimed them"
        assert replies(b, b"o SEARCH OLD")[0] == b"* SEARCH 1 2\r\n"
        # A new message is recent in the first session to notice it.
        deliver(server, ALICE)
        assert replies(b, b"n NOOP")[:2] == [b"* 3 EXISTS\r\n", b"* 1 RECENT\r\n"]
        assert replies(a, b"n NOOP")[:2] == [b"* 3 EXISTS\r\n", b"n OK NOOP completed\r\n"]
        assert replies(b, b"f FETCH 3 (FLAGS)")[0] == b"* 3 FETCH (FLAGS (\\Recent))\r\n"
        assert replies(a, b"f FETCH 3 (FLAGS)")[0] == b"* 3 FETCH (FLAGS ())\r\n"
        # STATUS counts what no session has seen yet; a COPY into the selected mailbox
        # is recent for the session that made it.
        deliver(server, ALICE)
        assert replies(look, b"t STATUS INBOX (RECENT)")[0] == b"* STATUS \"INBOX\" (RECENT 1)\r\n"
        # (The copy first brings in message 4, which a claims, then its own copy.)
        lines = replies(a, b"c COPY 1 INBOX")
        assert lines[:4] == [b"* 4 EXISTS\r\n", b"* 3 RECENT\r\n", b"* 5 EXISTS\r\n",
                             b"* 4 RECENT\r\n"], lines
        assert replies(look, b"t STATUS INBOX (RECENT)")[0] == b"* STATUS \"INBOX\" (RECENT 0)\r\n"
        # So is an APPEND, claimed in its own commit, with what arrived just before it.
        deliver(server, ALICE)
        message = b"Subject: appended\r\n\r\nx\r\n"
        lines = replies(a, b"p APPEND INBOX {%d+}\r\n" % len(message) + message)
        assert lines[:2] == [b"* 7 EXISTS\r\n", b"* 6 RECENT\r\n"], lines
        assert replies(b, b"n NOOP")[:2] == [b"* 7 EXISTS\r\n", b"n OK NOOP completed\r\n"]
        assert replies(a, b"f FETCH 6:7 (FLAGS)")[:2] == [
            b"* 6 FETCH (FLAGS (\\Recent))\r\n", b"* 7 FETCH (FLAGS (\\Recent))\r\n"]
        assert replies(look, b"t STATUS INBOX (RECENT)")[0] == b"* STATUS \"INBOX\" (RECENT 0)\r\n"


def test_subscriptions_are_a_list_of_names(make_server):
    """RFC 3501 §6.3.6 and RFC 5258 §3: CREATE does not subscribe, a subscription outlives
    DELETE, and LSUB shows an unsubscribed parent of a subscribed child as \\Noselect."""
    server = make_server(allow_plaintext_on_loopback=True)
    with imap_raw(server) as c:
        lsub = replies(c, b'l LSUB "" *')
        assert [line.rsplit(b" ", 1)[1] for line in lsub[:-1]] == [
            b'"Archive"\r\n', b'"Drafts"\r\n', b'"INBOX"\r\n', b'"Junk"\r\n', b'"Sent"\r\n',
            b'"Trash"\r\n']
        for tag, name in ((b"c1", b"foo"), (b"c2", b"foo/bar"), (b"c3", b"x")):
            assert replies(c, tag + b" CREATE " + name)[-1] == tag + b" OK CREATE completed\r\n"
        assert replies(c, b'l LIST (SUBSCRIBED) "" foo*') == [b"l OK LIST completed\r\n"]
        assert replies(c, b"s SUBSCRIBE foo/bar")[-1] == b"s OK SUBSCRIBE completed\r\n"
        assert replies(c, b'l LSUB "" foo/%') == [
            b'* LSUB (\\HasNoChildren) "/" "foo/bar"\r\n', b"l OK LSUB completed\r\n"]
        assert replies(c, b'l LSUB "" f%') == [
            b'* LSUB (\\Noselect) "/" "foo"\r\n', b"l OK LSUB completed\r\n"]
        assert replies(c, b'l LSUB "" f*') == [
            b'* LSUB (\\HasNoChildren) "/" "foo/bar"\r\n', b"l OK LSUB completed\r\n"]
        assert replies(c, b'l LIST (SUBSCRIBED RECURSIVEMATCH) "" f%') == [
            b'* LIST (\\HasChildren) "/" "foo" ("CHILDINFO" ("SUBSCRIBED"))\r\n',
            b"l OK LIST completed\r\n"]
        # The child itself is listed: its parent is not listed for it.
        assert replies(c, b'l LIST (SUBSCRIBED RECURSIVEMATCH) "" f*') == [
            b'* LIST (\\HasNoChildren \\Subscribed) "/" "foo/bar"\r\n', b"l OK LIST completed\r\n"]
        assert replies(c, b"d DELETE foo/bar")[-1] == b"d OK DELETE completed\r\n"
        assert replies(c, b'l LIST (SUBSCRIBED) "" foo/*') == [
            b'* LIST (\\NonExistent \\Subscribed) "/" "foo/bar"\r\n', b"l OK LIST completed\r\n"]
        assert replies(c, b'l LIST "" foo/*') == [b"l OK LIST completed\r\n"]
        assert replies(c, b"u UNSUBSCRIBE foo/bar")[-1] == b"u OK UNSUBSCRIBE completed\r\n"
        assert replies(c, b"u UNSUBSCRIBE foo/bar")[-1].startswith(b"u NO ")
        # A subscription follows RENAME.
        assert replies(c, b"s SUBSCRIBE x")[-1] == b"s OK SUBSCRIBE completed\r\n"
        assert replies(c, b"r RENAME x y")[-1] == b"r OK RENAME completed\r\n"
        assert replies(c, b'l LSUB "" ?') == [b"l OK LSUB completed\r\n"]
        assert replies(c, b'l LSUB "" y') == [
            b'* LSUB (\\HasNoChildren) "/" "y"\r\n', b"l OK LSUB completed\r\n"]


def test_condstore_enabled_late_and_esearch_min_max_modseq(make_server):
    server = make_server(allow_plaintext_on_loopback=True)
    for _ in range(3):
        deliver(server, ALICE)
    with imap_raw(server) as c:
        select = replies(c, b"s SELECT INBOX")
        highest = next(int(re.search(rb"HIGHESTMODSEQ (\d+)", l).group(1))
                       for l in select if b"HIGHESTMODSEQ" in l)
        assert replies(c, b"t STORE 2 +FLAGS.SILENT (\\Seen)")[-1] == b"t OK STORE completed\r\n"
        # The first CONDSTORE-enabling command reports HIGHESTMODSEQ (RFC 7162 §3.1).
        lines = replies(c, b"f FETCH 1:3 (MODSEQ)")
        assert lines[0] == b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % (highest + 1), lines
        modseqs = [int(re.search(rb"MODSEQ \((\d+)\)", l).group(1)) for l in lines[1:4]]
        assert modseqs[1] == highest + 1 and modseqs[0] < modseqs[1]
        assert not any(b"HIGHESTMODSEQ" in l for l in replies(c, b"g FETCH 1 (MODSEQ)"))
        # MIN/MAX alone: the modseq of the message(s) returned (RFC 7162 §3.1.5).
        assert replies(c, b"m SEARCH RETURN (MIN) MODSEQ 1")[0] == (
            b'* ESEARCH (TAG "m") MIN 1 MODSEQ %d\r\n' % modseqs[0])
        assert replies(c, b"x SEARCH RETURN (MAX) MODSEQ 1")[0] == (
            b'* ESEARCH (TAG "x") MAX 3 MODSEQ %d\r\n' % modseqs[2])
        assert replies(c, b"a SEARCH RETURN (MIN ALL) MODSEQ 1")[0] == (
            b'* ESEARCH (TAG "a") MIN 1 ALL 1:3 MODSEQ %d\r\n' % max(modseqs))


def test_authenticate_login_and_within(make_server):
    server = make_server(allow_plaintext_on_loopback=True)
    deliver(server, ALICE)
    with LineClient(server.port("imap")) as c:
        assert b"AUTH=LOGIN" in c.readline()
        c.send(b"a AUTHENTICATE LOGIN\r\n")
        assert c.readline() == b"+ VXNlcm5hbWU6\r\n"
        c.send(base64.b64encode(ALICE.encode()) + b"\r\n")
        assert c.readline() == b"+ UGFzc3dvcmQ6\r\n"
        c.send(base64.b64encode(PASSWORDS[ALICE].encode()) + b"\r\n")
        assert tagged_reply(c, b"a").startswith(b"a OK [CAPABILITY ")
        replies(c, b"s SELECT INBOX")
        # WITHIN (RFC 5032): the message arrived seconds ago.
        assert replies(c, b"y SEARCH YOUNGER 3600")[0] == b"* SEARCH 1\r\n"
        assert replies(c, b"o SEARCH OLDER 3600")[0] == b"* SEARCH\r\n"
        # Each BODY/TEXT/header key is a pass over every message: their number is bounded.
        keys = b" ".join(b"BODY x%d" % i for i in range(17))
        assert replies(c, b"k SEARCH " + keys)[-1] == (
            b"k NO [LIMIT] At most 16 header, BODY and TEXT keys\r\n")
    # A wrong password through LOGIN is refused like any other.
    with LineClient(server.port("imap")) as c:
        c.readline()
        c.send(b"b AUTHENTICATE LOGIN " + base64.b64encode(ALICE.encode()) + b"\r\n")
        assert c.readline() == b"+ UGFzc3dvcmQ6\r\n"
        c.send(base64.b64encode(b"wrong") + b"\r\n")
        assert tagged_reply(c, b"b") == b"b NO [AUTHENTICATIONFAILED] Invalid credentials\r\n"


def test_create_special_use(make_server):
    server = make_server(allow_plaintext_on_loopback=True)
    with imap_raw(server) as c:
        assert b"CREATE-SPECIAL-USE" in replies(c, b"c CAPABILITY")[0]
        assert replies(c, b"a CREATE Old/Bin (USE (\\Trash))")[-1] == b"a OK CREATE completed\r\n"
        assert replies(c, b'l LIST "" Old/Bin') == [
            b'* LIST (\\HasNoChildren \\Trash) "/" "Old/Bin"\r\n', b"l OK LIST completed\r\n"]
        assert replies(c, b"b CREATE X (USE (\\Important))")[-1] == (
            b"b NO [USEATTR] \\Important is not supported\r\n")
        assert replies(c, b"d CREATE Y (USE (\\Sent \\Drafts))")[-1] == (
            b"d NO [USEATTR] One special use per mailbox\r\n")
        assert replies(c, b'l LIST "" X') == [b"l OK LIST completed\r\n"]


def test_preview(make_server):
    server = make_server(allow_plaintext_on_loopback=True)
    deliver(server, ALICE, body=b"Hello,   this is\r\n  a   short   test.\r\n")
    html = (b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable"
            b"\r\n\r\n<p>Caf=C3=A9 <b>ouvert</b></p>\r\n")
    with smtplib.SMTP(HOST, server.port("smtp")) as smtp:
        smtp.sendmail("x@remote.test", [ALICE], b"Subject: html\r\n" + html)
    with imap_raw(server) as c:
        assert b" PREVIEW" in replies(c, b"c CAPABILITY")[0]
        replies(c, b"s SELECT INBOX")
        lines = replies(c, b"f FETCH 1 (PREVIEW)")
        assert lines[0] == b'* 1 FETCH (PREVIEW "Hello, this is a short test.")\r\n', lines
        lines = replies(c, b"g FETCH 1 (UID PREVIEW (LAZY) FLAGS)")
        assert lines[0] == b'* 1 FETCH (UID 1 PREVIEW "Hello, this is a short test." FLAGS (\\Recent))\r\n'
        # Not ASCII: a literal.
        lines = replies(c, b"h FETCH 2 (PREVIEW)")
        assert lines[0] == b"* 2 FETCH (PREVIEW {12}\r\n", lines  # 12 octets of UTF-8
        assert lines[1] == "Café ouvert)\r\n".encode(), lines
        assert replies(c, b"b FETCH 1 (PREVIEW (FAST))")[-1].startswith(b"b BAD")


def test_multiappend_is_all_or_nothing(make_server):
    server = make_server(allow_plaintext_on_loopback=True)
    first, second = b"Subject: one\r\n\r\n1\r\n", b"Subject: two\r\n\r\n2\r\n"
    with imap_raw(server) as c:
        assert b"MULTIAPPEND" in replies(c, b"c CAPABILITY")[0]
        c.send(b"m APPEND INBOX (\\Seen) {%d}\r\n" % len(first))
        assert c.readline().startswith(b"+ ")
        c.send(first + b' (\\Flagged) "01-Dec-2026 10:00:00 +0000" {%d}\r\n' % len(second))
        assert c.readline().startswith(b"+ ")
        c.send(second + b"\r\n")
        reply = tagged_reply(c, b"m")
        assert re.fullmatch(rb"m OK \[APPENDUID \d+ 1:2\] APPEND completed\r\n", reply), reply
        # The second message's arguments are bad: neither is stored.
        c.send(b"n APPEND INBOX {%d+}\r\n" % len(first) + first + b" NOTAFLAG {3+}\r\nabc\r\n")
        assert tagged_reply(c, b"n") == b"n BAD Invalid APPEND argument\r\n"
        lines = replies(c, b"s SELECT INBOX")
        assert b"* 2 EXISTS\r\n" in lines, lines
        assert replies(c, b"f FETCH 1:2 (FLAGS INTERNALDATE)")[:2] == [
            b'* 1 FETCH (FLAGS (\\Seen \\Recent) INTERNALDATE "%s")\r\n'
            % re.search(rb'INTERNALDATE "([^"]+)"', replies(c, b"g FETCH 1 (INTERNALDATE)")[0]).group(1),
            b'* 2 FETCH (FLAGS (\\Flagged \\Recent) INTERNALDATE "01-Dec-2026 10:00:00 +0000")\r\n']


def test_compress_deflate(server):
    """COMPRESS=DEFLATE (RFC 4978) with Python's zlib as the client's raw DEFLATE."""
    import zlib

    token, _ = deliver(server)
    raw = login_raw(server)
    raw.send(b"c1 COMPRESS BOGUS\r\n")
    assert raw.until_tagged(b"c1")[-1] == b"c1 BAD Unknown compression mechanism\r\n"
    raw.send(b"c2 COMPRESS DEFLATE\r\n")
    assert raw.until_tagged(b"c2")[-1] == b"c2 OK DEFLATE active\r\n"
    deflate = zlib.compressobj(wbits=-15)
    inflate = zlib.decompressobj(wbits=-15)
    received = bytearray()

    def command(line: bytes, tag: bytes) -> list[bytes]:
        raw.sock.sendall(deflate.compress(line + b"\r\n") + deflate.flush(zlib.Z_SYNC_FLUSH))
        while True:
            lines = received.split(b"\r\n")
            done = [i for i, l in enumerate(lines[:-1]) if l.startswith(tag + b" ")]
            if done:
                end = sum(len(l) + 2 for l in lines[: done[0] + 1])
                reply = bytes(received[:end])
                del received[:end]
                return [l + b"\r\n" for l in reply.split(b"\r\n")[:-1]]
            chunk = raw.sock.recv(65536)
            assert chunk, "connection closed"
            received.extend(inflate.decompress(chunk))

    assert command(b"c3 NOOP", b"c3")[-1] == b"c3 OK NOOP completed\r\n"
    assert command(b"c4 SELECT INBOX", b"c4")[-1].startswith(b"c4 OK [READ-WRITE]")
    body = b"".join(command(b"c5 FETCH 1 BODY.PEEK[]", b"c5"))
    assert token.encode() in body
    # Many commands in one compressed write, and a large reply.
    many = b"".join(f"n{i} NOOP\r\n".encode() for i in range(50))
    raw.sock.sendall(deflate.compress(many) + deflate.flush(zlib.Z_SYNC_FLUSH))
    replies = command(b"c6 NOOP", b"c6")
    assert replies.count(b"* 1 EXISTS\r\n") == 0 and len(replies) == 51, replies
    assert replies[-2:] == [b"n49 OK NOOP completed\r\n", b"c6 OK NOOP completed\r\n"]
    assert command(b"c7 COMPRESS DEFLATE", b"c7")[-1] == (
        b"c7 NO [COMPRESSIONACTIVE] DEFLATE is already active\r\n"
    )
    assert command(b"c8 LOGOUT", b"c8")[-1] == b"c8 OK LOGOUT completed\r\n"
    raw.close()


def test_catenate_builds_a_message_from_parts(server):
    """CATENATE (RFC 4469): TEXT literals and URLs to (parts of) stored messages."""
    attachment = b"ATTACHMENT-" + new_token().encode()
    source = (
        b"From: a@example.org\r\nSubject: with attachment\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
        b"--b1\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
        b"--b1\r\nContent-Type: application/octet-stream\r\n\r\n" + attachment + b"\r\n--b1--\r\n"
    )
    imap = imaps_login(server)
    ok(imap.append("INBOX", None, None, source))
    ok(imap.select("INBOX"))
    validity = int(imap.response("UIDVALIDITY")[1][0])
    uid = int(ok(imap.uid("SEARCH", "ALL"))[0].split()[-1])
    imap.logout()

    raw = login_raw(server)
    head = b"From: me@example.org\r\nSubject: forward\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n\r\nsee below\r\n--zz\r\n"
    tail = b"\r\n--zz--\r\n"
    url = f"/INBOX;UIDVALIDITY={validity}/;UID={uid}/;SECTION=2.MIME".encode()
    url_body = f"/INBOX/;UID={uid}/;SECTION=2".encode()
    line = (b"c1 APPEND Drafts (\\Draft) CATENATE (TEXT {%d+}\r\n" % len(head) + head
            + b' URL "' + url + b'" URL "' + url_body + b'" TEXT {%d+}\r\n' % len(tail) + tail + b")\r\n")
    raw.send(line)
    reply = raw.until_tagged(b"c1")[-1]
    assert re.fullmatch(rb"c1 OK \[APPENDUID \d+ \d+\] APPEND completed\r\n", reply), reply
    expected = head + b"Content-Type: application/octet-stream\r\n\r\n" + attachment + tail
    raw.send(b"c2 SELECT Drafts\r\n")
    raw.until_tagged(b"c2")
    raw.send(b"c3 FETCH 1 (FLAGS BODY.PEEK[])\r\n")
    fetched = b"".join(raw.until_tagged(b"c3"))
    assert b"FLAGS (\\Draft \\Recent)" in fetched, fetched
    assert b"{%d}\r\n" % len(expected) + expected in fetched, fetched
    # A URL alone fits on one line; PARTIAL takes a range.
    raw.send(b'c4 APPEND Drafts CATENATE (URL "/INBOX/;UID=%d/;PARTIAL=0.4")\r\n' % uid)
    assert raw.until_tagged(b"c4")[-1].startswith(b"c4 OK [APPENDUID")
    raw.send(b"c5 FETCH 2 BODY.PEEK[]\r\n")
    assert b"{4}\r\nFrom" in b"".join(raw.until_tagged(b"c5"))
    # URLs that name nothing get [BADURL].
    for bad in [f"/INBOX;UIDVALIDITY={validity + 1}/;UID={uid}", f"/INBOX/;UID={uid + 100}",
                f"/Nowhere/;UID={uid}", "/INBOX", "imap://other.test/INBOX/;UID=1/;URLAUTH=x"]:
        raw.send(b'c6 APPEND Drafts CATENATE (URL "' + bad.encode() + b'")\r\n')
        assert raw.until_tagged(b"c6")[-1] == f"c6 NO [BADURL {bad}] No such message\r\n".encode(), bad
    raw.send(b"c7 APPEND Drafts CATENATE ()\r\n")
    assert raw.until_tagged(b"c7")[-1].startswith(b"c7 BAD")
    raw.send(b'c8 APPEND Nowhere CATENATE (URL "/INBOX/;UID=%d")\r\n' % uid)
    assert raw.until_tagged(b"c8")[-1] == b"c8 NO [TRYCREATE] No such mailbox\r\n"
    # A mailbox called CATENATE is a mailbox (this crashed the server), a part that is not
    # there names nothing, and a URL cannot smuggle a line break into the reply.
    raw.send(b"c9 APPEND CATENATE (x)\r\n")
    assert raw.until_tagged(b"c9")[-1] == b"c9 BAD APPEND needs a message literal\r\n"
    raw.send(b'c10 APPEND Drafts CATENATE (URL "/INBOX/;UID=%d/;SECTION=7")\r\n' % uid)
    assert raw.until_tagged(b"c10")[-1] == b"c10 NO [BADURL /INBOX/;UID=%d/;SECTION=7] No such message\r\n" % uid
    raw.send(b"c11 APPEND Drafts CATENATE (URL {10+}\r\n/x]\r\n* BYE)\r\n")
    assert raw.until_tagged(b"c11")[-1] == b"c11 NO [BADURL /x* BYE] No such message\r\n"
    raw.send(b"c12 NOOP\r\n")
    assert raw.until_tagged(b"c12")[-1] == b"c12 OK NOOP completed\r\n"
    raw.close()


def test_savedate(server):
    """SAVEDATE (RFC 8514): when a message was saved into this mailbox, not its INTERNALDATE."""
    import datetime

    imap = imaps_login(server)
    assert "SAVEDATE" in imap.capabilities
    ok(imap.append("INBOX", None, '"01-Jan-2020 10:00:00 +0000"', make_message(new_token())))
    ok(imap.select("INBOX"))
    today = datetime.datetime.now(datetime.timezone.utc)
    data = ok(imap.fetch("1", "(INTERNALDATE SAVEDATE)"))[0]
    assert b'INTERNALDATE "01-Jan-2020 10:00:00 +0000"' in data, data
    saved = re.search(rb'SAVEDATE "(\d\d-\w\w\w-\d{4}) ', data).group(1).decode()
    assert saved.lstrip("0") == today.strftime("%d-%b-%Y").lstrip("0"), data
    day = today.strftime("%d-%b-%Y")
    assert ok(imap.search(None, "SAVEDSINCE", day)) == [b"1"]
    assert ok(imap.search(None, "SAVEDBEFORE", day)) == [b""]
    assert ok(imap.search(None, "BEFORE", "2-Jan-2020")) == [b"1"]
    assert ok(imap.search(None, "SAVEDATESUPPORTED")) == [b"1"]
    # A copy is saved anew in its mailbox.
    ok(imap.copy("1", "Archive"))
    ok(imap.select("Archive"))
    data = ok(imap.fetch("1", "(INTERNALDATE SAVEDATE)"))[0]
    assert b'INTERNALDATE "01-Jan-2020 10:00:00 +0000"' in data and b"SAVEDATE \"" in data, data
    imap.logout()


def test_a_mailbox_renamed_by_another_session_stays_selected(make_server):
    """Another session renames the selected mailbox and makes a new one of the old name:
    this session keeps working on the mailbox it selected, now under its new name."""
    server = make_server(allow_plaintext_on_loopback=True)
    message = b"Subject: renamed\r\n\r\nx\r\n"
    with imap_raw(server) as a, imap_raw(server) as b:
        assert replies(b, b"c CREATE Work")[-1] == b"c OK CREATE completed\r\n"
        assert replies(b, b"p APPEND Work {%d+}\r\n" % len(message) + message)[-1].startswith(b"p OK")
        assert replies(a, b"s SELECT Work")[-1] == b"s OK [READ-WRITE] SELECT completed\r\n"
        assert replies(b, b"r RENAME Work Old")[-1] == b"r OK RENAME completed\r\n"
        assert replies(b, b"c CREATE Work")[-1] == b"c OK CREATE completed\r\n"
        assert replies(b, b"p APPEND Old {%d+}\r\n" % len(message) + message)[-1].startswith(b"p OK")
        # The new message of the renamed mailbox reaches this session, and its STORE goes
        # there, not to the new mailbox that has the old name.
        assert replies(a, b"n NOOP")[:2] == [b"* 2 EXISTS\r\n", b"* 2 RECENT\r\n"]
        assert replies(a, b"f STORE 2 +FLAGS (\\Flagged)")[0] == b"* 2 FETCH (FLAGS (\\Flagged \\Recent))\r\n"
        assert replies(b, b"x EXAMINE Old")[-1].startswith(b"x OK")
        assert replies(b, b"y FETCH 2 (FLAGS)")[0] == b"* 2 FETCH (FLAGS (\\Flagged))\r\n"
        assert b"* 0 EXISTS\r\n" in replies(b, b"z EXAMINE Work")
