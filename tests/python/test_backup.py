"""Backups while serving, restore, verify, and the upgrade from the previous schema.

Third-party software: smtplib delivers the burst, Debian's `age` (the Go implementation)
decrypts what letterbox encrypted and encrypts what it restores, py-lmdb (its own LMDB
build) damages a store for `verify` to find, imaplib reads the upgraded store.
"""

from __future__ import annotations

import gzip
import imaplib
import os
import shutil
import smtplib
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (
    ALICE,
    BOB,
    EXTERNAL_SENDER,
    HOST,
    IO_TIMEOUT,
    PASSWORDS,
    Server,
    make_message,
    new_token,
    require_binary,
    require_tool,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "store-schema13.mdb.gz"


def fresh(base: Path, name: str) -> Server:
    """A server directory with no store yet (for restores)."""
    path = base / name
    path.mkdir()
    path.chmod(0o755)
    server = Server(path)
    shutil.rmtree(server.data_dir)
    return server


def mailbox_tokens(server: Server, user: str, mailbox: str, out: Path) -> str:
    """Every byte of a mailbox, via `letterbox export mbox` (a third check besides verify)."""
    server.cli("export", "mbox", str(out), "--user", user, "--mailbox", mailbox)
    return out.read_text(errors="replace")


def test_backup_during_an_smtp_burst_restores_everything_acknowledged_before_it(make_server, server_dir):
    server = make_server()
    acked: list[tuple[float, str]] = []
    stop = threading.Event()
    errors: list[str] = []

    def burst() -> None:
        try:
            with smtplib.SMTP(HOST, server.port("smtp"), timeout=IO_TIMEOUT) as smtp:
                while not stop.is_set():
                    token = new_token()
                    smtp.sendmail(EXTERNAL_SENDER, [ALICE], make_message(token))
                    acked.append((time.monotonic(), token))
        except Exception as error:  # reported below
            errors.append(repr(error))

    sender = threading.Thread(target=burst)
    sender.start()
    try:
        deadline = time.monotonic() + 60
        while len(acked) < 50 and not errors and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(acked) >= 50, errors
        began = time.monotonic()
        backup = server_dir / "burst.backup.gz"
        result = server.cli("backup", str(backup))
        assert result.stdout.startswith(f"backup written to {backup} ("), result.stdout
        time.sleep(0.3)
    finally:
        stop.set()
        sender.join(timeout=30)
    assert not errors, errors
    before = [t for at, t in acked if at < began]
    assert len(before) >= 50
    server.stop()

    restored = fresh(server_dir, "restored")
    result = restored.cli("restore", str(backup))
    assert f"into {restored.data_dir}" in result.stdout, result.stdout
    verdict = restored.cli("verify")
    assert verdict.stdout.strip().endswith("the store is sound"), verdict.stdout
    text = mailbox_tokens(restored, ALICE, "INBOX", server_dir / "inbox.mbox")
    missing = [t for t in before if t not in text]
    assert not missing, f"{len(missing)} acknowledged messages are not in the backup"
    # And the backup itself verifies, read straight from its file.
    checked = restored.cli("verify", str(backup))
    assert "checksum ok" in checked.stdout and "the backup's store is sound" in checked.stdout, checked.stdout


def test_encrypted_backups_open_with_age_and_restore(make_server, server_dir):
    age = require_tool("age")
    keygen = require_tool("age-keygen")
    server = make_server(start=False)
    token = new_token()
    server.start()
    with smtplib.SMTP(HOST, server.port("smtp"), timeout=IO_TIMEOUT) as smtp:
        smtp.sendmail(EXTERNAL_SENDER, [BOB], make_message(token))
    identity = server_dir / "key.txt"
    subprocess.run([keygen, "-o", str(identity)], check=True, capture_output=True)
    recipient = subprocess.run([keygen, "-y", str(identity)], check=True, capture_output=True, text=True).stdout.strip()

    # To stdout, encrypted to a recipient: Debian's age opens it, and under it is gzip.
    with open(server_dir / "to-key.age", "wb") as out:
        subprocess.run(
            [require_binary(), "backup", "-", "--recipient", recipient,
             "--config", str(server.config_path), "--data", str(server.data_dir)],
            stdout=out, check=True, timeout=60,
        )
    plain = subprocess.run([age, "-d", "-i", str(identity), str(server_dir / "to-key.age")], check=True, capture_output=True).stdout
    assert gzip.decompress(plain).startswith(b"LETTERBOX-BACKUP 1\n")

    # A plain backup that age encrypted restores too.
    server.cli("backup", str(server_dir / "plain.backup"), "--no-compress")
    assert (server_dir / "plain.backup").read_bytes().startswith(b"LETTERBOX-BACKUP 1\n")
    subprocess.run([age, "-r", recipient, "-o", str(server_dir / "by-age.age"), str(server_dir / "plain.backup")], check=True)

    # A passphrase backup.
    passfile = server_dir / "pass"
    passfile.write_text("correct horse battery staple\n")
    server.cli("backup", str(server_dir / "pass.backup.gz.age"), "--passphrase-file", str(passfile))
    server.stop()

    for name, key in [("to-key.age", ["--identity", str(identity)]), ("by-age.age", ["--identity", str(identity)]),
                      ("pass.backup.gz.age", ["--passphrase-file", str(passfile)])]:
        target = fresh(server_dir, "from-" + name)
        refused = target.cli("restore", str(server_dir / name), check=False)
        assert refused.returncode == 1
        wanted = ("letterbox: the backup is encrypted: pass --passphrase(-file) or --identity FILE\n")
        assert refused.stderr == wanted, refused.stderr
        target.cli("restore", str(server_dir / name), *key)
        assert token in mailbox_tokens(target, BOB, "INBOX", target.base_dir / "inbox.mbox"), name
    wrong = server_dir / "wrong"
    wrong.write_text("not the passphrase\n")
    target = fresh(server_dir, "wrong-pass")
    result = target.cli("restore", str(server_dir / "pass.backup.gz.age"), "--passphrase-file", str(wrong), check=False)
    assert result.returncode == 1 and result.stderr.startswith("letterbox: decrypting the backup: "), result.stderr
    assert not (target.data_dir / "mail").exists()


def test_restore_refuses_a_served_store_an_existing_store_and_a_damaged_backup(make_server, server_dir):
    server = make_server()
    backup = server_dir / "b.backup.gz"
    server.cli("backup", str(backup))
    refused = server.cli("restore", str(backup), "--force", check=False)
    assert refused.returncode == 1
    assert refused.stderr == f"letterbox: a letterbox is serving {server.data_dir}: stop it before restoring\n"
    # A second server on the same data is refused too.
    second = subprocess.run(
        [require_binary(), "serve", "--config", str(server.config_path), "--data", str(server.data_dir)],
        capture_output=True, text=True, timeout=30,
    )
    assert second.returncode == 1
    assert second.stderr.strip().endswith(f"letterbox: another letterbox is serving {server.data_dir}"), second.stderr
    server.stop()
    refused = server.cli("restore", str(backup), check=False)
    assert refused.stderr == (
        f"letterbox: {server.data_dir} holds a store already: pass --force to restore over it "
        "(it is moved aside, not deleted)\n"
    )
    raw = bytearray(gzip.decompress(backup.read_bytes()))
    raw[1000] ^= 0x40  # inside the store's first frame of bytes
    damaged = server_dir / "damaged.backup"
    damaged.write_bytes(bytes(raw))
    result = server.cli("restore", str(damaged), "--force", check=False)
    assert result.returncode == 1
    assert result.stderr == (
        "letterbox: the backup: the backup's checksum does not match: it is damaged; nothing was restored\n"
    ), result.stderr
    assert ALICE in server.cli("user", "list").stdout
    cut = server_dir / "cut.backup"
    cut.write_bytes(bytes(raw[: len(raw) // 3]))
    result = server.cli("restore", str(cut), "--force", check=False)
    assert result.stderr == "letterbox: the backup: the backup is cut short; nothing was restored\n", result.stderr
    # --force moves the old store aside.
    result = server.cli("restore", str(backup), "--force")
    aside = [p for p in server.base_dir.iterdir() if p.name.startswith("data.before-restore-")]
    assert len(aside) == 1 and (aside[0] / "mail" / "data.mdb").exists(), result.stdout
    assert f"the store that was there is now in {aside[0]}" in result.stdout


def test_backups_into_a_directory_keep_the_newest(make_server, server_dir):
    server = make_server(start=False)
    target = server_dir / "backups"
    target.mkdir()
    made = []
    for _ in range(3):
        made.append(server.cli("backup", str(target), "--keep", "2").stdout.split()[3])
        time.sleep(1.1)  # names carry the second
    names = sorted(p.name for p in target.iterdir())
    assert names == sorted(Path(m).name for m in made[1:]), (names, made)
    assert all(n.startswith("letterbox-") and n.endswith(".backup.gz") for n in names), names
    result = server.cli("backup", str(server_dir / "one.backup"), "--keep", "2", check=False)
    assert result.stderr == "letterbox: --keep needs a directory as the destination\n"


def test_verify_finds_a_wrong_reference_count(make_server):
    lmdb = pytest.importorskip("lmdb") if os.environ.get("LETTERBOX_REQUIRE_TOOLS") != "1" else __import__("lmdb")
    server = make_server()
    with smtplib.SMTP(HOST, server.port("smtp"), timeout=IO_TIMEOUT) as smtp:
        smtp.sendmail(EXTERNAL_SENDER, [ALICE, BOB], make_message(new_token()))
    server.stop()
    assert server.cli("verify").stdout.strip().endswith("the store is sound")
    env = lmdb.open(str(server.data_dir / "mail"), max_dbs=64, map_size=1 << 30)
    refs = env.open_db(b"blob_refs", create=False)
    with env.begin(write=True) as txn:
        key, value = next(iter(txn.cursor(refs)))
        txn.put(key, (int.from_bytes(value, "big") + 1).to_bytes(4, "big"), db=refs)
    env.close()
    blob = int.from_bytes(key, "big")
    result = server.cli("verify", check=False)
    assert result.returncode == 1
    assert f"problem: blob {blob}: reference count 3, held 2 times\n" in result.stdout, result.stdout
    assert result.stderr == "letterbox: the store is not sound (1 problem)\n"


def test_upgrade_from_the_previous_schema_keeps_everything_and_a_copy(server_dir):
    server = fresh(server_dir, "upgrade")
    (server.data_dir / "mail").mkdir(parents=True)
    (server.data_dir / "mail" / "data.mdb").write_bytes(gzip.decompress(FIXTURE.read_bytes()))
    server.allow_plaintext_on_loopback = True
    server.write_config()
    server.start()
    server.wait_for_log("upgrading schema 13 to 14; the store as it was is in ")
    copies = list((server.data_dir / "backups").glob("before-schema-14-from-13-*.mdb"))
    assert len(copies) == 1, copies
    imap = imaplib.IMAP4(HOST, server.port("imap"))
    imap.login(ALICE, PASSWORDS[ALICE])
    typ, listing = imap.list()
    assert typ == "OK" and any(b'"Projects/2026"' in line for line in listing), listing
    typ, _ = imap.select("INBOX", readonly=True)
    typ, data = imap.fetch("1:*", "(FLAGS INTERNALDATE)")
    flags = [line for line in data]
    assert b"FLAGS (\\Seen \\Recent)" in flags[0] and b'INTERNALDATE "01-Jan-2025 10:00:00 +0000"' in flags[0], flags
    assert b"\\Flagged" in flags[1] and b"$Important" in flags[1], flags
    imap.select("Projects/2026", readonly=True)
    typ, data = imap.fetch("1", "(FLAGS BODY.PEEK[])")
    assert b"fixture-three" in data[0][1] and b"\\Answered" in data[0][0], data
    imap.logout()
    server.stop()
    assert "someone@remote.test (pending)" in server.cli("queue", "list").stdout
    assert server.cli("sieve", "list", ALICE).stdout.startswith("main ")
    assert "info@example.org -> alice@example.org, bob@example.org" in server.cli("alias", "list").stdout
    assert server.cli("verify").stdout.strip().endswith("the store is sound")
    # The copy is the old store: restoring it elsewhere brings schema 13 back, upgraded again.
    other = fresh(server_dir, "from-copy")
    other.cli("restore", str(copies[0]))
    assert ALICE in other.cli("user", "list").stdout


def test_the_server_takes_a_daily_backup_at_once_when_none_is_there(make_server, server_dir):
    target = server_dir / "daily"
    target.mkdir()
    target.chmod(0o777)  # the server runs as nobody
    server = make_server(extra_config=f'\n[backup]\ndir = "{target}"\nkeep = 2\n')
    server.wait_for_log("backup: done", timeout=60)
    made = [p for p in target.iterdir()]
    assert len(made) == 1 and made[0].name.startswith("letterbox-") and made[0].name.endswith(".backup.gz"), made
    checked = server.cli("verify", str(made[0]))
    assert checked.stdout.strip().endswith("the backup's store is sound"), checked.stdout
    assert "backup: starting the daily backup into " + str(target) in server.stderr_text()
