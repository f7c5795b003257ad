"""Sieve, differentially: every script of tests/sieve/scripts over every message of
tests/sieve/messages, run by `letterbox sieve test` and by Pigeonhole's `sieve-test`
(Debian's dovecot-sieve), must report the same actions.

Both outputs are brought to one form: the list of actions in order (store with its
mailbox, flags and :create; redirect with :copy; discard; reject; vacation with its
period and subject), whether `duplicate` tracked the message, and the implicit keep
with its flags. Flags compare without case (Pigeonhole prints system flags lower-cased).
A run-time error is just "error" on both sides (both then keep the message); a script
that does not compile is "compile error".
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import LETTERBOX_BIN

ROOT = pathlib.Path(__file__).resolve().parent.parent / "sieve"
SCRIPTS = sorted((ROOT / "scripts").glob("*.sieve"))
MESSAGES = sorted((ROOT / "messages").glob("*.eml"))
RECIPIENT = "bob+tag@example.org"
SIEVE_TEST = shutil.which("sieve-test")

# Where letterbox differs from Pigeonhole on purpose: (script, message) -> why.
DIFFERENCES = {
    # RFC 4790 §9.2: i;ascii-casemap orders by the upper-cased strings, so "[" (0x5B)
    # sorts after "W" (0x57); Pigeonhole folds to lower case, where "[" sorts before "w".
    ("relational-value", "list"): ":value with characters between Z and a",
}


def envelope_sender(message):
    match = re.search(rb"^Return-Path: <([^>]*)>", message.read_bytes(), re.M)
    return match.group(1).decode() if match else "sender@example.com"


def flags(text):
    return tuple(sorted(f.lower() for f in text.split()))


def pigeonhole(workdir, script, message):
    """Pigeonhole's verdict, in the common form."""
    result = subprocess.run(
        ["runuser", "-u", "nobody", "--", "env", "TZ=UTC", SIEVE_TEST,
         "-x", "+vacation-seconds", "-f", envelope_sender(message), "-r", RECIPIENT,
         str(workdir / script.name), str(workdir / message.name)],
        capture_output=True, text=True, timeout=30)
    out = result.stdout
    if "failed to compile" in result.stderr:
        return "compile error"
    if result.returncode != 0 or "Performed actions:" not in out:
        return "error"
    actions, keep, duplicate = [], None, False
    section = None
    current = None
    in_body = False
    # A vacation's => handle may span lines (a :mime reason), up to START MESSAGE.
    in_vacation = False
    for line in out.splitlines():
        if line.startswith("START MESSAGE"):
            in_body = True
            in_vacation = False
            continue
        if line.startswith("END MESSAGE"):
            in_body = False
            continue
        if in_body or not line.strip():
            continue
        if line.startswith("Performed actions:"):
            section = "actions"
            continue
        if line.startswith("Implicit keep:"):
            section = "keep"
            continue
        text = line.strip()
        if text == "(none)":
            continue
        if text.startswith("* "):
            item = text[2:]
            if item.startswith("store message in folder: "):
                current = ["store", item[len("store message in folder: "):], (), False]
            elif item.startswith("redirect message to: "):
                current = ["redirect", item[len("redirect message to: "):].strip("<>"), False]
            elif item == "discard":
                current = ["discard"]
            elif item.startswith("reject message with reason: "):
                current = ["reject", item[len("reject message with reason: "):]]
            elif item.startswith("send vacation message"):
                current = ["vacation", None, ""]
                in_vacation = True
            elif item == "track duplicate":
                duplicate = True
                current = None
                continue
            else:
                raise AssertionError(f"unknown Pigeonhole action {item!r}\n{out}")
            if section == "keep":
                keep = current
            else:
                actions.append(current)
        elif text.startswith("+ add IMAP flags: "):
            current[2] = flags(text[len("+ add IMAP flags: "):])
        elif text == "+ create mailbox if it does not exist":
            current[3] = True
        elif text == "+ preserve implicit keep":
            # fileinto :copy shows in the implicit keep; redirect :copy is printed.
            if current[0] == "redirect":
                current[2] = True
        elif text.startswith("=> seconds : "):
            current[1] = int(text.split(":", 1)[1])
        elif text.startswith("=> subject : "):
            current[2] = text.split(":", 1)[1].strip()
        elif text.startswith("=>") or in_vacation:
            continue
        else:
            raise AssertionError(f"unknown Pigeonhole line {line!r}\n{out}")
    return {
        "actions": [tuple(a) for a in actions],
        "keep": keep[2] if keep else None,
        "duplicate": duplicate,
    }


STORE = re.compile(r'store into ("(?:[^"\\]|\\.)*")( \(create\))?(?: flags (.*))?$')
VACATION = re.compile(r'vacation every (\d+) s subject ("(?:[^"\\]|\\.)*") from')


def ours(script, message):
    """letterbox's verdict, in the common form."""
    result = subprocess.run(
        [LETTERBOX_BIN, "sieve", "test", "--script", str(script),
         "--from", envelope_sender(message), "--to", RECIPIENT],
        stdin=message.open("rb"), capture_output=True, text=True, timeout=30)
    if result.returncode != 0 and "error:" not in result.stdout:
        assert "line " in result.stderr, result.stderr
        return "compile error"
    if result.stdout.startswith("error:"):
        assert result.returncode == 1
        return "error"
    assert result.returncode == 0, result.stderr
    actions, keep, duplicate = [], None, False
    for line in result.stdout.splitlines():
        text = line.strip()
        if line.startswith("implicit keep: "):
            rest = line[len("implicit keep: "):]
            if rest != "none":
                match = STORE.match(rest)
                keep = flags(match.group(3) or "")
            continue
        if text in ("actions:", "none"):
            continue
        if text == "track duplicate":
            duplicate = True
        elif text.startswith("store into "):
            match = STORE.match(text)
            actions.append(("store", json.loads(match.group(1)), flags(match.group(3) or ""),
                            bool(match.group(2))))
        elif text.startswith("redirect to <"):
            address = text[len("redirect to <"):text.index(">")]
            actions.append(("redirect", address, text.endswith("(copy)")))
        elif text == "discard":
            actions.append(("discard",))
        elif text.startswith("reject "):
            actions.append(("reject", json.loads(text[len("reject "):])))
        elif text.startswith("vacation "):
            match = VACATION.match(text)
            actions.append(("vacation", int(match.group(1)), json.loads(match.group(2))))
        else:
            raise AssertionError(f"unknown line {line!r}")
    return {"actions": actions, "keep": keep, "duplicate": duplicate}


@pytest.fixture(scope="module")
def workdir():
    if SIEVE_TEST is None:
        if os.environ.get("LETTERBOX_REQUIRE_TOOLS"):
            pytest.fail("sieve-test (dovecot-sieve) is required")
        pytest.skip("sieve-test (dovecot-sieve) is not installed")
    # Pigeonhole runs as nobody, who cannot enter pytest's private temporary tree.
    path = pathlib.Path(tempfile.mkdtemp(prefix="letterbox-sieve-"))
    path.chmod(0o1777)
    for file in SCRIPTS + MESSAGES:
        target = path / file.name
        shutil.copy(file, target)
        target.chmod(0o644)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_corpus_is_big_enough():
    assert len(SCRIPTS) >= 50 and len(MESSAGES) >= 5


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_same_actions_as_pigeonhole(workdir, script):
    differences = []
    for message in MESSAGES:
        theirs = pigeonhole(workdir, script, message)
        mine = ours(script, message)
        # Agreeing that a script is broken proves little: only the scripts meant to be
        # broken may be.
        assert (mine == "compile error") == script.stem.startswith("compile-error"), mine
        if (script.stem, message.stem) in DIFFERENCES:
            continue
        if theirs != mine:
            differences.append(f"{message.name}:\n  Pigeonhole {theirs}\n  letterbox  {mine}")
    assert not differences, "\n".join(differences)
