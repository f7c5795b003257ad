"""`letterbox migrate` from a real IMAP server: Dovecot (dovecot-imapd) on loopback holds
the source account; afterwards mbsync (isync) pulls both servers into Maildirs, which
must hold the same messages with the same flags, and imaplib compares keywords and
internal dates. A second run copies nothing; a new message alone comes on the third.
"""

from __future__ import annotations

import imaplib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import ALICE, HOST, PASSWORDS, make_message, require_tool
from dovecot import Dovecot, find_dovecot

SOURCE_PASSWORD = "source-Secret-5521"
FOLDERS = {
    # source folder: (our mailbox, [(flags, date, token)])
    "INBOX": ("INBOX", [("(\\Seen)", "01-Jan-2024 10:00:00 +0000", "in-one"),
                        ("(\\Flagged $Important)", "02-Jan-2024 11:00:00 +0100", "in-two"),
                        ("()", "03-Jan-2024 12:00:00 +0000", "in-three")]),
    "Sent Items": ("Sent", [("(\\Seen)", "04-Jan-2024 09:00:00 +0000", "sent-one")]),
    "Archive/2024": ("Archive/2024", [("(\\Seen \\Answered)", "05-Jan-2024 08:00:00 +0000", f"arch-{i}") for i in range(4)]),
    "Work": ("Work", [("(\\Seen project-x \\Draft)", "06-Jan-2024 07:00:00 +0000", "work-one"),
                      ("(\\Deleted \\Seen)", "07-Jan-2024 07:00:00 +0000", "work-two")]),
    "Entwürfe": ("Entwürfe", [("()", "08-Jan-2024 07:00:00 +0000", "umlaut-one")]),
}


def mutf7(name: str) -> str:
    out, pending = [], ""
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            if pending:
                out.append("&" + __import__("base64").b64encode(pending.encode("utf-16-be")).decode().rstrip("=").replace("/", ",") + "-")
                pending = ""
            out.append("&-" if ch == "&" else ch)
        else:
            pending += ch
    if pending:
        out.append("&" + __import__("base64").b64encode(pending.encode("utf-16-be")).decode().rstrip("=").replace("/", ",") + "-")
    return "".join(out)


@pytest.fixture
def source():
    binary = find_dovecot()
    base = Path(tempfile.mkdtemp(prefix="lb-mig-"))
    base.chmod(0o755)
    dovecot = Dovecot(base, ALICE, SOURCE_PASSWORD,
                      namespace_extra='  mailbox "Sent Items" {\n    special_use = \\Sent\n  }')
    dovecot.start(binary)
    imap = imaplib.IMAP4(HOST, dovecot.port)
    imap.login(ALICE, SOURCE_PASSWORD)
    for folder, (_, messages) in FOLDERS.items():
        if folder != "INBOX":
            assert imap.create(f'"{mutf7(folder)}"')[0] == "OK", folder
        for flags, date, token in messages:
            typ, _ = imap.append(f'"{mutf7(folder)}"', flags, f'"{date}"', make_message(token))
            assert typ == "OK", (folder, token)
    imap.logout()
    yield dovecot
    dovecot.stop()
    shutil.rmtree(base, ignore_errors=True)


def view(port: int, password: str, folders: list[str]) -> dict:
    """folder -> sorted [(body, flags without \\Recent, internal date)]."""
    imap = imaplib.IMAP4(HOST, port)
    imap.login(ALICE, password)
    out = {}
    for folder in folders:
        typ, _ = imap.select(f'"{mutf7(folder)}"', readonly=True)
        assert typ == "OK", folder
        typ, data = imap.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
        items = []
        for part in data:
            if isinstance(part, tuple):
                head = part[0].decode()
                flags = tuple(sorted(f for f in re.search(r"FLAGS \(([^)]*)\)", head).group(1).split() if f != "\\Recent"))
                date = imaplib.Internaldate2tuple(part[0])
                items.append((part[1], flags, tuple(date)[:6]))
        out[folder] = sorted(items)
    imap.logout()
    return out


def migrate(server, dovecot, *extra):
    return server.cli("migrate", "--from", f"imap://{ALICE}@{HOST}:{dovecot.port}", "--user", ALICE,
                      "--password-stdin", *extra, stdin_text=SOURCE_PASSWORD + "\n")


def mbsync_pull(tool: str, work: Path, name: str, port: int, password: str) -> dict:
    """mbsync's copy of an IMAP account: folder -> sorted [(bytes, system flag letters)]."""
    root = work / name
    root.mkdir()
    config = work / f"{name}.mbsyncrc"
    config.write_text(f"""IMAPAccount {name}
Host {HOST}
Port {port}
User {ALICE}
Pass {password}
SSLType None
AuthMechs LOGIN

IMAPStore {name}-far
Account {name}

MaildirStore {name}-near
Path {root}/
Inbox {root}/INBOX
SubFolders Verbatim

Channel {name}
Far :{name}-far:
Near :{name}-near:
Patterns *
Create Near
Sync Pull
SyncState *
""")
    result = subprocess.run([tool, "-c", str(config), "-a"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = {}
    for cur in root.rglob("cur"):
        folder = str(cur.parent.relative_to(root))
        items = []
        for sub in ("cur", "new"):
            for path in (cur.parent / sub).iterdir():
                info = path.name.split(":2,", 1)[1] if ":2," in path.name else ""
                body = b"".join(l for l in path.read_bytes().splitlines(keepends=True) if not l.startswith(b"X-TUID: "))
                items.append((body, info))
        out[folder] = sorted(items)
    return out


def test_migrate_from_dovecot_copies_everything_once(make_server, source, server_dir):
    mbsync = require_tool("mbsync")
    server = make_server(start=False)
    result = migrate(server, source)
    lines = result.stdout.splitlines()
    total = sum(len(m) for _, m in FOLDERS.values())
    assert f"copied {total} messages in {len(FOLDERS)} mailboxes, 0 skipped, 0 failed" in lines, lines
    assert "Sent: copied 1" in lines, lines
    again = migrate(server, source)
    assert f"copied 0 messages in {len(FOLDERS)} mailboxes, {total} skipped, 0 failed" in again.stdout.splitlines(), again.stdout

    server.allow_plaintext_on_loopback = True
    server.write_config()
    server.start()
    theirs = view(source.port, SOURCE_PASSWORD, list(FOLDERS))
    ours = view(server.port("imap"), PASSWORDS[ALICE], [mailbox for mailbox, _ in FOLDERS.values()])
    for folder, (mailbox, messages) in FOLDERS.items():
        assert len(theirs[folder]) == len(messages), folder
        assert ours[mailbox] == theirs[folder], folder

    # mbsync sees the same on both sides.
    work = server_dir / "mbsync"
    work.mkdir()
    far = mbsync_pull(mbsync, work, "dovecot", source.port, SOURCE_PASSWORD)
    near = mbsync_pull(mbsync, work, "letterbox", server.port("imap"), PASSWORDS[ALICE])
    assert len(far["INBOX"]) == 3 and len(far["Archive/2024"]) == 4, far.keys()
    for folder, (mailbox, _) in FOLDERS.items():
        # mbsync names Maildir folders as IMAP sends them (modified UTF-7).
        assert near[mutf7(mailbox)] == far[mutf7(folder)], folder

    # A new message on the source comes over alone.
    imap = imaplib.IMAP4(HOST, source.port)
    imap.login(ALICE, SOURCE_PASSWORD)
    imap.append("Work", "(\\Seen)", '"09-Jan-2024 07:00:00 +0000"', make_message("work-late"))
    imap.logout()
    third = migrate(server, source)
    assert "Work: copied 1 (2 already there)" in third.stdout.splitlines(), third.stdout
    assert f"copied 1 messages in {len(FOLDERS)} mailboxes, {total} skipped, 0 failed" in third.stdout.splitlines()


def test_migrate_reports_a_wrong_password_and_refuses_plain_imap_off_loopback(make_server, source):
    server = make_server(start=False)
    result = server.cli("migrate", "--from", f"imap://{ALICE}@{HOST}:{source.port}", "--user", ALICE,
                        "--password-stdin", stdin_text="wrong\n", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith(f"letterbox: logging in as {ALICE}: LOGIN: "), result.stderr
    result = server.cli("migrate", "--from", "imap://someone@192.0.2.1:143", "--user", ALICE,
                        "--password-stdin", stdin_text="x\n", check=False)
    assert result.stderr == "letterbox: imap:// (without TLS) is only for loopback sources: use imaps://\n"
