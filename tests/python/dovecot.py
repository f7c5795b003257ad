"""A private Dovecot 2.3 instance and a wire-level IMAP client, for differential tests.

Dovecot is a mature IMAP server: running the same commands against it and against
letterbox, over the same messages, finds protocol details neither side's own tests
think of. Dovecot runs from its own config in a temp dir (base_dir, state, log, Maildir,
passwd-file), on a free 127.0.0.1 port, in the foreground; the system service is not used.
"""

from __future__ import annotations

import contextlib
import os
import grp
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import ALICE, HOST, IO_TIMEOUT, PASSWORDS, require_tool

DOVECOT_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def find_dovecot() -> str:
    """The dovecot binary (in /usr/sbin, not always on PATH), or skip (fail in CI)."""
    require_tool("/usr/lib/dovecot/imap")  # dovecot-imapd
    return shutil.which("dovecot", path=DOVECOT_SEARCH_PATH) or require_tool("dovecot")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Dovecot:
    """One Dovecot master process with a single passwd-file user."""

    def __init__(self, base: Path, user: str, password: str, mail_location: str = "maildir:~/Maildir:LAYOUT=fs",
                 namespace_extra: str = ""):
        self.base = base
        self.mail_location = mail_location
        self.namespace_extra = namespace_extra
        self.user = user
        self.password = password
        self.log_path = base / "dovecot.log"
        self.config_path = base / "dovecot.conf"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def config_text(self) -> str:
        if os.geteuid() == 0:
            internal, login = "dovecot", "dovenull"
            mail_uid, mail_gid = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
        else:  # an unprivileged Dovecot runs everything as the invoking user
            internal = login = pwd.getpwuid(os.getuid()).pw_name
            mail_uid, mail_gid = os.getuid(), os.getgid()
        home = self.base / "home"
        home.mkdir(exist_ok=True)
        for path in [home, *home.rglob("*")]:  # mail a test put there before starting
            os.chown(path, mail_uid, mail_gid)
        users = self.base / "users"
        users.write_text(f"{self.user}:{{PLAIN}}{self.password}:{mail_uid}:{mail_gid}::{home}::\n")
        users.chmod(0o644)
        b = self.base
        return f"""# Written by tests/python/dovecot.py: a private instance, nothing system-wide.
base_dir = {b}/run
state_dir = {b}/state
log_path = {self.log_path}
info_log_path = {self.log_path}
protocols = imap
listen = {HOST}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name}
default_login_user = {login}
first_valid_uid = {min(mail_uid, 500)}
mail_location = {self.mail_location}
mail_fsync = never
namespace inbox {{
  inbox = yes
  separator = /
  prefix =
{self.namespace_extra}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {users}
}}
userdb {{
  driver = passwd-file
  args = {users}
}}
service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""

    def start(self, dovecot: str, timeout: float = 20) -> None:
        for attempt in range(5):  # the free port may be taken between probe and bind
            self.port = free_port()
            self.config_path.write_text(self.config_text())
            self.proc = subprocess.Popen(
                [dovecot, "-c", str(self.config_path), "-F"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    with socket.create_connection((HOST, self.port), timeout=1) as sock:
                        if sock.recv(100).startswith(b"* OK"):
                            return
                time.sleep(0.05)
            self.stop()
            if "Address already in use" not in self.log_text():
                break
        pytest.fail(f"dovecot did not start on {HOST}:{self.port}:\n{self.log_text()[-3000:]}", pytrace=False)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="module")
def dovecot_server():
    """A running private Dovecot for the module, with alice's account; yields a Dovecot."""
    binary = find_dovecot()
    base = Path(tempfile.mkdtemp(prefix="letterbox-dovecot-"))
    base.chmod(0o755)  # the auth and mail processes run as other users
    server = Dovecot(base, ALICE, PASSWORDS[ALICE])
    server.start(binary)
    yield server
    server.stop()
    for line in server.log_text().splitlines():
        assert "Panic:" not in line and "Fatal:" not in line, line
    shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------
# Wire client and normalisation
# --------------------------------------------------------------------------

_LITERAL_AT_END = re.compile(rb"~?\{(\d+)\}\r\n$")


class WireImap:
    """Sends exact command lines; returns every response line up to the tagged one, each
    with the literals ({n} and ~{n}) it announces spliced in, so replies compare as wire text."""

    def __init__(self, port: int):
        self.sock = socket.create_connection((HOST, port), timeout=IO_TIMEOUT)
        self.buffer = b""
        self.counter = 0
        greeting = self._line()
        assert greeting.startswith(b"* OK"), greeting

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, f"connection closed; buffered {self.buffer[-300:]!r}"
        self.buffer += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line + b"\r\n"

    def _exact(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self._fill()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def _response_line(self) -> bytes:
        line = self._line()
        while match := _LITERAL_AT_END.search(line):
            line += self._exact(int(match.group(1))) + self._line()
        return line

    def command(self, text: bytes | str, *literals: bytes) -> list[bytes]:
        """`text` without tag; each `{n}`/`~{n}` in it is followed by the next literal
        once the server sends its continuation request."""
        if isinstance(text, str):
            text = text.encode()
        self.counter += 1
        tag = b"t%d" % self.counter
        pieces = _pieces(tag + b" " + text)
        assert len(pieces) == len(literals) + 1, (text, len(literals))
        lines = []
        for piece, literal in zip(pieces, literals):
            self.sock.sendall(piece + b"\r\n")
            while not (line := self._response_line()).startswith(b"+"):
                lines.append(line)
                if line.startswith(tag + b" "):  # the literal was refused
                    return lines
            self.sock.sendall(literal)
        self.sock.sendall(pieces[-1] + b"\r\n")
        while True:
            line = self._response_line()
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def ok(self, text: bytes | str, *literals: bytes) -> list[bytes]:
        lines = self.command(text, *literals)
        assert re.match(rb"t\d+ OK", lines[-1]), (text, lines)
        return lines


def _pieces(line: bytes) -> list[bytes]:
    """Split a command line after every literal announcement ({n} or ~{n})."""
    parts, start = [], 0
    for match in re.finditer(rb"~?\{\d+\}", line):
        parts.append(line[start:match.end()])
        start = match.end()
    parts.append(line[start:])
    return parts


def login(port: int, user: str, password: str) -> WireImap:
    client = WireImap(port)
    client.ok(f'LOGIN "{user}" "{password}"')
    return client


_STATUS_TEXT = re.compile(rb"^(\S+ (?:OK|NO|BAD|BYE|PREAUTH))( \[[^\]]*\])?.*\r\n$", re.S)
_DROPPED = (re.compile(rb"^\* OK"), re.compile(rb"^\* \d+ RECENT\r\n$"),
            re.compile(rb"^\* CAPABILITY "))
_VALUES = ((re.compile(rb"(UIDVALIDITY |APPENDUID |COPYUID )\d+"), rb"\1N"),
           (re.compile(rb"(HIGHESTMODSEQ |MODSEQ \(?)\d+"), rb"\1N"),
           (re.compile(rb"\[BADCHARSET \([^)]*\)\]"), b"[BADCHARSET]"))
_STRING = re.compile(rb'"((?:[^"\\\r\n]|\\.)*)"|(~?)\{(\d+)\}\r\n')
_LIST = re.compile(rb'^(\* (?:LIST|LSUB) )\(([^)]*)\)( (?:"(?:[^"\\]|\\.)"|NIL) )([^ "{\r]+)?')
_STATUS = re.compile(rb'^(\* STATUS "(?:[^"\\]|\\.)*" )\(((?:[A-Z-]+ \d+ ?)*)\)\r\n$')
_CHILD_FLAGS = {b"\\haschildren", b"\\hasnochildren"}
_ESEARCH = re.compile(rb'^(\* ESEARCH(?: \(TAG "[^"]*"\))?(?: UID)?)((?: [A-Z]+ [^ ()]+)+)\r\n$')


def _canonical_strings(line: bytes) -> bytes:
    """Quoted string or literal is the sender's choice (RFC 3501 §4.3): every string becomes
    a quoted string if it is printable ASCII, else a literal; literal8 stays literal8."""
    out, pos = [], 0
    while True:
        match = _STRING.search(line, pos)
        if match is None:
            return b"".join(out) + line[pos:]
        out.append(line[pos:match.start()])
        if match.group(3) is None:
            value = re.sub(rb"\\(.)", rb"\1", match.group(1))
            end = match.end()
        else:
            start = match.end()
            end = start + int(match.group(3))
            value = line[start:end]
            if match.group(2):  # literal8: binary content, kept as it is
                out.append(b"~{%d}\r\n" % len(value) + value)
                pos = end
                continue
        if all(0x20 <= byte < 0x7F for byte in value):
            out.append(b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"')
        else:
            out.append(b"{%d}\r\n" % len(value) + value)
        pos = end


def _canonical_list(line: bytes, children_requested: bool) -> bytes:
    """LIST/LSUB: attribute order is free, a name may be an atom or a string, and
    \\HasChildren/\\HasNoChildren are optional unless RETURN (CHILDREN) asked for them
    (RFC 5258 §4) and optional in LSUB (RFC 3501 §6.3.9)."""
    match = _LIST.match(line)
    if match is None:
        return line
    flags = match.group(2).split()
    if line.startswith(b"* LSUB") or not children_requested:
        flags = [flag for flag in flags if flag.lower() not in _CHILD_FLAGS]
    name = match.group(4)
    name = b'"' + name + b'"' if name is not None else b""
    rest = re.sub(rb'^ \(CHILDINFO ', b' ("CHILDINFO" ', line[match.end():])  # an astring
    return (match.group(1) + b"(" + b" ".join(sorted(flags, key=bytes.lower)) + b")" + match.group(3)
            + name + rest)


def normalise(lines: list[bytes], command: bytes = b"", keep_tags: bool = False) -> list[bytes]:
    """What may legitimately differ between two servers is replaced or dropped: tags, the
    human text after a status (and response code), UIDVALIDITY and MODSEQ values, the
    charset list of BADCHARSET, hints (untagged OK), RECENT and CAPABILITY lines, quoted
    versus literal strings (and atom versus string for mailbox names and CHILDINFO), the
    order of LIST/LSUB responses, of their attributes, of STATUS items and of ESEARCH
    return data (no RFC fixes one), and optional child attributes. The rest stays byte for byte."""
    children = bool(re.search(rb"RETURN \([^)]*CHILDREN", command, re.I))
    out = []
    for line in lines:
        if any(pattern.match(line) for pattern in _DROPPED):
            continue
        line = re.sub(rb"^t\d+ ", b"TAG ", line)
        if not keep_tags:  # (kept where they tell search contexts apart)
            line = re.sub(rb'\(TAG "t\d+"\)', b'(TAG "TAG")', line)
        for pattern, replacement in _VALUES:
            line = pattern.sub(replacement, line)
        match = _STATUS_TEXT.match(line)
        if match:
            line = match.group(1) + (match.group(2) or b"") + b"\r\n"
        line = _canonical_strings(line)
        line = _canonical_list(line, children)
        line = re.sub(rb'^(\* STATUS )([^ "{]+) \(', rb'\1"\2" (', line)
        match = _STATUS.match(line)
        if match:  # STATUS items come in any order (RFC 3501 §7.2.4)
            items = sorted(re.findall(rb"([A-Z-]+) (\d+)", match.group(2)))
            line = match.group(1) + b"(" + b" ".join(b"%s %s" % item for item in items) + b")\r\n"
        match = _ESEARCH.match(line)
        if match:
            items = re.findall(rb" ([A-Z]+) ([^ ()]+)", match.group(2))
            line = match.group(1) + b"".join(b" %s %s" % item for item in sorted(items)) + b"\r\n"
        out.append(line)
    # The order of LIST/LSUB responses is not specified either.
    start = 0
    while start < len(out):
        end = start
        while end < len(out) and out[end].startswith((b"* LIST ", b"* LSUB ")):
            end += 1
        out[start:end] = sorted(out[start:end], key=lambda line: (line[line.index(b") ") + 2:], line))
        start = end + 1
    return out
