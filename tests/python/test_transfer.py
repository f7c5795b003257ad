"""mbox and Maildir import and export: byte-identical round trips, resume after kill -9,
and the exported Maildir read by Dovecot (dovecot-imapd) over IMAP.
"""

from __future__ import annotations

import base64
import imaplib
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import ALICE, BOB, HOST, PASSWORDS, require_binary
from dovecot import Dovecot, find_dovecot

FROM_RE = re.compile(rb"^>*From ")


def mboxrd(messages: list[tuple[str, int, bytes]]) -> bytes:
    """An mboxrd file, written here (not by letterbox): each message LF-ended, quoted."""
    out = []
    for sender, date, body in messages:
        stamp = time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(date)).encode()
        out.append(b"From " + sender.encode() + b" " + stamp + b"\n")
        for line in body.split(b"\n")[:-1] if body.endswith(b"\n") else body.split(b"\n"):
            out.append((b">" if FROM_RE.match(line) else b"") + line + b"\n")
        out.append(b"\n")
    return b"".join(out)


def tricky_messages(count: int = 40, big: bool = True) -> list[tuple[str, int, bytes]]:
    rng = random.Random(7)
    base = 1_700_000_000
    messages = [
        ("a@example.net", base, b"From: a@example.net\nSubject: From lines\n\nFrom the start\n>From quoted\n>>From twice\nFrom\n"),
        ("b@example.net", base + 60, b"Subject: empty body\n\n"),
        ("c@example.net", base + 120, b"Subject: header only, no blank line\n"),
        ("d@example.net", base + 180, b"Subject: 8bit \xe9t\xe9 \xff\xfe\n\nlatin-1 \xe9 and bad utf-8 \xc3\x28\n"),
        ("e@example.net", base + 240, b"Subject: blank lines at the end\n\nbody\n\n\n"),
        ("MAILER-DAEMON", base + 300, b"Subject: a bounce\n\nnull sender\n"),
    ]
    if big:
        blob = base64.encodebytes(rng.randbytes(3 << 20))
        messages.append(("big@example.net", base + 360,
                         b"Subject: big attachment\nContent-Type: application/octet-stream\n"
                         b"Content-Transfer-Encoding: base64\n\n" + blob))
    for i in range(count):
        lines = b"".join(b"line %d %s\n" % (j, b"x" * rng.randint(0, 120)) for j in range(rng.randint(0, 60)))
        messages.append((f"s{i}@example.net", base + 1000 + i, b"Subject: m%d\nMessage-ID: <%d@x>\n\n%s" % (i, i, lines)))
    return messages


def test_mbox_round_trip_is_byte_identical_and_a_second_import_takes_nothing(make_server, server_dir):
    server = make_server(start=False)
    source = server_dir / "in.mbox"
    source.write_bytes(mboxrd(tricky_messages()))
    result = server.cli("import", "mbox", str(source), "--user", ALICE, "--mailbox", "Old/Mail")
    count = len(tricky_messages())
    assert result.stdout.splitlines()[-1] == f"imported {count} messages in 1 mailboxes, 0 skipped, 0 failed"
    again = server.cli("import", "mbox", str(source), "--user", ALICE, "--mailbox", "Old/Mail")
    assert again.stdout.splitlines()[0] == f"Old/Mail: imported 0 ({count} already there)"
    out = server_dir / "out.mbox"
    server.cli("export", "mbox", str(out), "--user", ALICE, "--mailbox", "Old/Mail")
    assert out.read_bytes() == source.read_bytes()
    assert server.cli("verify").stdout.strip().endswith("the store is sound")
    # Messages appended to the mbox later come in on the next run, and only they.
    extra = [("late@example.net", 1_800_000_000, b"Subject: late\n\nnew\n")]
    with open(source, "ab") as f:
        f.write(mboxrd(extra))
    result = server.cli("import", "mbox", str(source), "--user", ALICE, "--mailbox", "Old/Mail")
    assert result.stdout.splitlines()[0] == f"Old/Mail: imported 1 ({count} already there)"


def test_mboxo_files_and_mbox_directories(make_server, server_dir):
    server = make_server(start=False)
    tree = server_dir / "mail"
    (tree / "Lists").mkdir(parents=True)
    # mboxo quoting (only `From ` quoted): `>From` in a body is read as `From`.
    (tree / "inbox").write_bytes(b"From x@y Thu Jan  1 00:00:00 1970\nSubject: o\n\n>From me\n\n")
    (tree / "Lists" / "rust").write_bytes(mboxrd(tricky_messages(5, big=False)))
    result = server.cli("import", "mbox", str(tree), "--user", BOB, "--mboxo")
    lines = result.stdout.splitlines()
    assert sorted(lines[:2]) == ["INBOX: imported 1", "Lists/rust: imported 11"], lines
    out = server_dir / "inbox.mbox"
    server.cli("export", "mbox", str(out), "--user", BOB, "--mailbox", "INBOX")
    assert out.read_bytes() == b"From x@y Thu Jan  1 00:00:00 1970\nSubject: o\n\n>From me\n\n"
    bad = server_dir / "not.mbox"
    bad.write_bytes(b"Subject: no separator\n\nbody\n")
    result = server.cli("import", "mbox", str(bad), "--user", BOB, check=False)
    assert result.returncode == 1
    assert result.stderr == f'letterbox: {bad}: no mbox "From " line at byte 0\n'


def write_maildir(root: Path) -> dict[str, list[tuple[bytes, str, int]]]:
    """A Maildir++ tree as Dovecot keeps one; returns folder -> [(bytes, info, mtime)]."""
    folders = {
        "INBOX": [(b"Subject: new one\n\nunread\n", "", 1_700_000_000),
                  (b"Subject: seen\n\nread\n", "S", 1_700_000_100),
                  (b"Subject: keywords\n\nimportant\n", "FRSab", 1_700_000_200)],
        "Work": [(b"Subject: draft\n\n\xe9\n", "DS", 1_700_000_300), (b"Subject: deleted\n\nx\n", "ST", 1_700_000_400),
                 (b"Subject: forwarded\n\ny\n", "PS", 1_700_000_500)],
        "Archive/2024": [(b"Subject: old %d\n\nold\n" % i, "S", 1_600_000_000 + i) for i in range(5)],
    }
    for folder, messages in folders.items():
        base = root if folder == "INBOX" else root / ("." + folder.replace("/", "."))
        for sub in ("cur", "new", "tmp"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        (base / "dovecot-keywords").write_text("0 $Important\n1 project-x\n")
        for i, (body, info, mtime) in enumerate(messages):
            unique = f"{mtime}.M{i}P1.source"
            path = base / ("new" if not info else "cur") / (unique if not info else f"{unique}:2,{info}")
            path.write_bytes(body)
            os.utime(path, (mtime, mtime))
    return folders


def read_maildir(root: Path) -> dict[str, list[tuple[bytes, str, int]]]:
    out = {}
    for base in [root] + sorted(p for p in root.iterdir() if p.name.startswith(".") and p.is_dir()):
        folder = "INBOX" if base == root else base.name[1:].replace(".", "/")
        items = []
        for sub in ("cur", "new"):
            for path in (base / sub).iterdir():
                info = path.name.split(":2,", 1)[1] if ":2," in path.name else ""
                items.append((path.read_bytes(), info, int(path.stat().st_mtime)))
        out[folder] = sorted(items)
    return out


def test_maildir_round_trip_keeps_bytes_flags_keywords_and_dates(make_server, server_dir):
    server = make_server(start=False)
    source = server_dir / "Maildir"
    expected = write_maildir(source)
    result = server.cli("import", "maildir", str(source), "--user", ALICE)
    assert result.stdout.splitlines()[-1] == "imported 11 messages in 3 mailboxes, 0 skipped, 0 failed", result.stdout
    out = server_dir / "exported"
    server.cli("export", "maildir", str(out), "--user", ALICE)
    got = read_maildir(out)
    # $Forwarded (`P`) also goes out as a Dovecot keyword letter, which Dovecot shows.
    expected["Work"] = [(b, "PSa" if i == "PS" else i, t) for b, i, t in expected["Work"]]
    for folder, messages in expected.items():
        assert got[folder] == sorted(messages), folder
    assert (out / ".Work" / "dovecot-keywords").read_text() == "0 $Forwarded\n"
    assert (out / "dovecot-keywords").read_text() == "0 $Important\n1 project-x\n"
    # The exported tree holds every mailbox of the account, the empty defaults too.
    assert sorted(got) == ["Archive", "Archive/2024", "Drafts", "INBOX", "Junk", "Sent", "Trash", "Work"]


def test_dovecot_reads_the_exported_maildir(make_server, server_dir):
    binary = find_dovecot()
    server = make_server(start=False)
    write_maildir(server_dir / "Maildir")
    server.cli("import", "maildir", str(server_dir / "Maildir"), "--user", ALICE)
    # Dovecot's socket paths must stay short: its own directory right under /tmp.
    base = Path(tempfile.mkdtemp(prefix="lb-dc-"))
    base.chmod(0o755)
    dovecot = Dovecot(base, ALICE, PASSWORDS[ALICE], mail_location="maildir:~/Maildir")
    (dovecot.base / "home").mkdir()
    server.cli("export", "maildir", str(dovecot.base / "home" / "Maildir"), "--user", ALICE)
    dovecot.start(binary)
    try:
        server.allow_plaintext_on_loopback = True
        server.write_config()
        server.start()

        def view(port: int) -> dict:
            imap = imaplib.IMAP4(HOST, port)
            imap.login(ALICE, PASSWORDS[ALICE])
            seen = {}
            for name in ("INBOX", "Work", "Archive/2024"):
                typ, _ = imap.select(f'"{name}"', readonly=True)
                assert typ == "OK", name
                typ, status = imap.status(f'"{name}"', "(MESSAGES)")
                typ, data = imap.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
                items = []
                for part in data:
                    if isinstance(part, tuple):
                        head = part[0].decode()
                        flags = sorted(f for f in re.search(r"FLAGS \(([^)]*)\)", head).group(1).split() if f != "\\Recent")
                        date = re.search(r'INTERNALDATE "([^"]+)"', head).group(1)
                        items.append((part[1], tuple(flags), imaplib.Internaldate2tuple(f'INTERNALDATE "{date}"'.encode())))
                seen[name] = (status[0].decode().split("(")[1], sorted(items))
            imap.logout()
            return seen

        ours, theirs = view(server.port("imap")), view(dovecot.port)
        assert theirs["INBOX"][0] == "MESSAGES 3)"
        for name in ours:
            assert theirs[name] == ours[name], (name, [i[1] for i in theirs[name][1]], [i[1] for i in ours[name][1]])
        keyworded = [f for _, f, _ in theirs["INBOX"][1] if "$Important" in f]
        assert keyworded == [("$Important", "\\Answered", "\\Flagged", "\\Seen", "project-x")], theirs["INBOX"]
    finally:
        dovecot.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_import_killed_with_sigkill_resumes_without_duplicates_or_loss(make_server, server_dir):
    server = make_server(start=False)
    messages = [(f"s{i}@example.net", 1_700_000_000 + i, b"Subject: n%d\n\n%s\n" % (i, b"y" * 2000)) for i in range(6000)]
    source = server_dir / "big.mbox"
    source.write_bytes(mboxrd(messages))
    command = [require_binary(), "import", "mbox", str(source), "--user", BOB, "--mailbox", "Big",
               "--config", str(server.config_path), "--data", str(server.data_dir)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Kill it once some batches are in (the store grows as they commit).
    data = server.data_dir / "mail" / "data.mdb"
    start_size = data.stat().st_size
    deadline = time.monotonic() + 60
    while data.stat().st_size < start_size + (2 << 20) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the import ended before it could be killed"
    result = server.cli("import", "mbox", str(source), "--user", BOB, "--mailbox", "Big")
    first = result.stdout.splitlines()[0]
    taken, there = map(int, re.fullmatch(r"Big: imported (\d+) \((\d+) already there\)", first).groups())
    assert taken + there == 6000 and taken > 0 and there > 0, first
    out = server_dir / "out.mbox"
    server.cli("export", "mbox", str(out), "--user", BOB, "--mailbox", "Big")
    assert out.read_bytes() == source.read_bytes()
