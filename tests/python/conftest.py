"""Harness for the letterbox integration tests.

The binary under test is taken from $LETTERBOX_BIN (default: the debug build).
Every test gets its own data directory, config file and server process; the
server listens on ephemeral loopback ports that are read back from its stdout.

Environment:
  LETTERBOX_BIN            path of the binary to test
  LETTERBOX_REQUIRE_TOOLS  "1" turns "external tool missing" skips into failures (CI)
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import os
import poplib
import pwd
import queue
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

LETTERBOX_BIN = os.environ.get(
    "LETTERBOX_BIN", str(Path(__file__).resolve().parents[2] / "target" / "debug" / "letterbox")
)
HOST = "127.0.0.1"
HOSTNAME = "mx.test"
DOMAIN = "example.org"
ALICE = "alice@example.org"
BOB = "bob@example.org"
PASSWORDS = {ALICE: "alice-Secret-4827", BOB: "bob-Secret-9153"}
EXTERNAL_SENDER = "someone@remote.test"
LISTENER_KINDS = ("smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps", "managesieve")

IO_TIMEOUT = 10  # seconds, for every client socket
START_TIMEOUT = 30
STOP_TIMEOUT = 20
CLI_TIMEOUT = 60

# Limits every test server gets unless a test overrides them.
DEFAULT_LIMITS = {"shutdown_grace_secs": 3}

_LISTENING_RE = re.compile(r"^listening (\S+) (\S+):(\d+)$")


# --------------------------------------------------------------------------
# External tools
# --------------------------------------------------------------------------

def require_tool(name: str) -> str:
    """Return the path of an external program, or skip (fail in CI) without it."""
    path = shutil.which(name)
    if path:
        return path
    message = f"external tool {name!r} is not installed"
    if os.environ.get("LETTERBOX_REQUIRE_TOOLS") == "1":
        pytest.fail(message + " and LETTERBOX_REQUIRE_TOOLS=1", pytrace=False)
    pytest.skip(message)


def require_binary() -> str:
    """The letterbox binary; a missing binary fails the test with a clear message."""
    if not os.access(LETTERBOX_BIN, os.X_OK):
        pytest.fail(f"letterbox binary not found at {LETTERBOX_BIN} (build it or set LETTERBOX_BIN)", pytrace=False)
    return LETTERBOX_BIN


def _copy_sparse(source: str, destination: str) -> None:
    # LMDB may pre-size data.mdb as a large sparse file; GNU cp keeps the holes.
    cp = shutil.which("cp")
    if cp is None:
        shutil.copy2(source, destination)
        return
    subprocess.run([cp, "--sparse=always", "--preserve=mode", source, destination], check=True, timeout=60)


# --------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------

class Server:
    """One letterbox instance: its config, data dir, process and ports."""

    def __init__(
        self,
        base_dir: Path,
        *,
        allow_plaintext_on_loopback: bool = False,
        limits: dict | None = None,
        auth: dict | None = None,
        run_as: str | None = None,
        tls: tuple[Path, Path] | None = None,
        extra_config: str = "",
    ):
        self.base_dir = Path(base_dir)
        self.extra_config = extra_config
        self.data_dir = self.base_dir / "data"
        self.config_path = self.base_dir / "letterbox.toml"
        self.stderr_path = self.base_dir / "server-stderr.log"
        self.allow_plaintext_on_loopback = allow_plaintext_on_loopback
        self.limits = {**DEFAULT_LIMITS, **(limits or {})}
        self.auth = auth or {}
        self.run_as = run_as
        self.tls = tls
        self.proc: subprocess.Popen | None = None
        self.ports: dict[str, int] = {}
        self.stdout_lines: list[str] = []
        self._stderr_file = None
        self._stdout_thread = None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()

    # -- configuration ----------------------------------------------------

    def config_text(self) -> str:
        lines = [
            f'hostname = "{HOSTNAME}"',
            f'domains = ["{DOMAIN}"]',
            f'data_dir = "{self.data_dir}"',
        ]
        if self.run_as:
            lines.append(f'run_as = "{self.run_as}"')
        for kind in LISTENER_KINDS:
            lines += ["", "[[listener]]", f'kind = "{kind}"', f'address = "{HOST}"', "port = 0"]
        if self.tls:
            cert, key = self.tls
            lines += ["", "[tls]", f'cert = "{cert}"', f'key = "{key}"']
        lines += ["", "[limits]"] + [f"{key} = {value}" for key, value in self.limits.items()]
        plaintext = "true" if self.allow_plaintext_on_loopback else "false"
        lines += ["", "[auth]", f"allow_plaintext_on_loopback = {plaintext}"]
        lines += [f"{key} = {value}" for key, value in self.auth.items()]
        if "[relay]" not in self.extra_config:
            # Tests stay on loopback: a queued remote recipient must never make the relay
            # ask the machine's real resolver. Nothing answers on this port.
            lines += ["", "[relay]", 'dns_servers = ["127.0.0.1:9"]']
        if "[clock]" not in self.extra_config:
            # No time servers off loopback; test_clock runs the check against its own.
            lines += ["", "[clock]", "check_hours = 0"]
        if "[inbound]" not in self.extra_config:
            # SPF, DKIM and DMARC need DNS, which only test_inbound provides (a fixture).
            lines += ["", "[inbound]", "enabled = false"]
        return "\n".join(lines) + "\n" + self.extra_config

    def write_config(self) -> None:
        self.config_path.write_text(self.config_text())

    @staticmethod
    def env() -> dict:
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        return env

    # -- admin CLI ----------------------------------------------------------

    def cli(self, *args: str, stdin_text: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run `letterbox ARGS --config ... --data ...` (global flags after the
        subcommand, as documented) and return the result."""
        cmd = [require_binary(), *args, "--config", str(self.config_path), "--data", str(self.data_dir)]
        result = subprocess.run(
            cmd,
            input=stdin_text,
            stdin=None if stdin_text is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            env=self.env(),
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def add_domain(self, domain: str = DOMAIN) -> None:
        result = self.cli("domain", "add", domain, check=False)
        if result.returncode != 0:
            # Acceptable only if the domain already exists (e.g. seeded from the config).
            listed = self.cli("domain", "list").stdout.split()
            assert domain in listed, f"domain add {domain} failed: {result.stderr}"

    def add_user(self, address: str, password: str) -> None:
        self.cli("user", "add", address, "--password-stdin", stdin_text=password + "\n")

    def add_alias(self, source: str, *targets: str) -> None:
        self.cli("alias", "add", source, *targets)

    def copy_data_from(self, other: "Server") -> None:
        """Copy another (stopped) server's data dir; LMDB files may be sparse."""
        shutil.copytree(other.data_dir, self.data_dir, dirs_exist_ok=True, copy_function=_copy_sparse)

    # -- process lifecycle ----------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "server is not started"
        return self.proc.pid

    def start(self, timeout: float = START_TIMEOUT) -> None:
        assert self.proc is None, "server already started"
        binary = require_binary()
        self._stderr_file = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", str(self.config_path), "--data", str(self.data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file,
            env=self.env(),
        )
        self.ports = self._wait_until_ready(timeout)

    def _wait_until_ready(self, timeout: float) -> dict[str, int]:
        lines: queue.Queue = queue.Queue()
        stdout = self.proc.stdout

        def pump() -> None:
            # Keeps draining stdout for the life of the process so it never blocks.
            for raw in stdout:
                lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
            lines.put(None)

        self._stdout_thread = threading.Thread(target=pump, daemon=True)
        self._stdout_thread.start()

        ports: dict[str, int] = {}
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._abort(f"no 'ready' line within {timeout}s")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self._abort("server exited before printing 'ready'")
            self.stdout_lines.append(line)
            match = _LISTENING_RE.match(line)
            if match:
                kind, ip, port = match.groups()
                assert ip == HOST, f"listener bound to {ip}, expected {HOST}: {line!r}"
                ports[kind] = int(port)
            elif line == "ready":
                missing = set(LISTENER_KINDS) - set(ports)
                assert not missing, f"no 'listening' line for {sorted(missing)}: {self.stdout_lines}"
                assert all(port > 0 for port in ports.values()), ports
                return ports

    def _abort(self, reason: str) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        self._cleanup()
        pytest.fail(
            f"{reason}; exit code {code}\nstdout: {self.stdout_lines}\n"
            f"stderr tail:\n{self.stderr_tail()}",
            pytrace=False,
        )

    def _cleanup(self) -> None:
        if self._stdout_thread is not None:
            self._stdout_thread.join(timeout=5)
            self._stdout_thread = None
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None
        self.proc = None
        self.ports = {}

    def send_signal(self, signum: int) -> None:
        assert self.running, "server is not running"
        self.proc.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> None:
        """Graceful stop; asserts that the server exits with status 0."""
        assert self.proc is not None, "server is not started"
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._cleanup()
            raise AssertionError(f"server did not exit within {timeout}s of signal {signum}")
        self._cleanup()
        assert code == 0, f"server exited with {code} after signal {signum}\n{self.stderr_tail()}"

    def kill9(self) -> None:
        assert self.proc is not None, "server is not started"
        self.proc.kill()
        self.proc.wait()
        self._cleanup()

    def restart(self) -> None:
        self.stop()
        self.start()

    # -- logs ---------------------------------------------------------------

    def stderr_text(self) -> str:
        if not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_bytes().decode("utf-8", "replace")

    def stderr_tail(self, lines: int = 40) -> str:
        return "\n".join(self.stderr_text().splitlines()[-lines:])

    def wait_for_log(self, text: str, timeout: float = IO_TIMEOUT) -> None:
        """Waits until the server's stderr contains `text`; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while text not in self.stderr_text():
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line with {text!r} within {timeout}s:\n{self.stderr_tail()}")
            time.sleep(0.05)

    def assert_no_panic(self) -> None:
        text = self.stderr_text()
        assert "panicked" not in text, f"server panicked:\n{text[-4000:]}"

    def port(self, kind: str) -> int:
        assert kind in self.ports, f"no {kind} listener (is the server running?)"
        return self.ports[kind]


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------

@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Lets fixtures see whether the test itself failed (request.node.rep_call).
    report = yield
    setattr(item, "rep_" + report.when, report)
    return report


@pytest.fixture(scope="session")
def work_root():
    """Parent of every server directory.

    Started as root, letterbox chowns its data dir to an unprivileged user and
    drops to it, so that user must be able to reach the data dir, the config
    and any certificate: pytest's own tmp dirs are root-only, this one is not.
    """
    root = Path(tempfile.mkdtemp(prefix="letterbox-tests-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def server_dir(work_root, request) -> Path:
    """A fresh world-traversable directory for this test's servers and their files."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:60]
    path = Path(tempfile.mkdtemp(prefix=name + "-", dir=work_root))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def account_template(work_root) -> Server:
    """A data dir with example.org, alice and bob, provisioned once via the CLI.

    Password hashing is deliberately slow, so tests copy this data dir instead
    of creating the accounts again.
    """
    template = Server(work_root / "template")
    template.add_domain()
    for address, password in PASSWORDS.items():
        template.add_user(address, password)
    listed = template.cli("user", "list").stdout
    for address in PASSWORDS:
        assert address in listed, f"user list does not show {address}: {listed!r}"
    return template


@pytest.fixture
def make_server(server_dir, account_template, request):
    """Factory: make_server(start=True, **Server options) -> Server.

    Servers are provisioned with alice and bob. At teardown every server that
    is still running is stopped with SIGTERM (must exit 0), and none may have
    panicked. If the test failed, the servers' stderr is printed.
    """
    servers: list[Server] = []

    def factory(*, start: bool = True, **options) -> Server:
        server = Server(server_dir / f"server{len(servers)}", **options)
        server.copy_data_from(account_template)
        servers.append(server)
        if start:
            server.start()
        return server

    yield factory

    problems = []
    for server in servers:
        try:
            if server.proc is not None:
                server.stop()
            server.assert_no_panic()
        except AssertionError as error:
            problems.append(str(error))
    report = getattr(request.node, "rep_call", None)
    if problems or (report is not None and report.failed):
        for server in servers:
            print(f"--- stderr of {server.base_dir} ---\n{server.stderr_tail(80)}")
    if problems:
        pytest.fail("server teardown: " + "\n".join(problems), pytrace=False)


@pytest.fixture
def server(make_server) -> Server:
    """A running server with alice@example.org and bob@example.org."""
    return make_server()


# --------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------

def new_token() -> str:
    return uuid.uuid4().hex


def make_message(
    token: str,
    *,
    sender: str = EXTERNAL_SENDER,
    to: str = ALICE,
    body: bytes | None = None,
    extra_headers: tuple[str, ...] = (),
) -> bytes:
    """A CRLF-terminated RFC 5322 message carrying `token` in headers and body."""
    headers = [
        f"From: <{sender}>",
        f"To: <{to}>",
        f"Subject: test {token}",
        f"Message-ID: <{token}@client.test>",
        "Date: Mon, 01 Jan 2024 00:00:00 +0000",
        f"X-Token: {token}",
        *extra_headers,
    ]
    if body is None:
        body = f"This is message {token}.\r\n".encode()
    assert body.endswith(b"\r\n")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


@dataclass
class Stored:
    return_path: bytes  # the complete "Return-Path: <...>\r\n" line
    received: bytes     # the complete (possibly folded) Received header
    content: bytes      # everything after them: what the client sent


def split_trace(raw: bytes) -> Stored:
    """Split a stored message into Return-Path, Received and the original content."""
    end = raw.find(b"\r\n")
    assert raw.startswith(b"Return-Path: <") and end > 0, f"no Return-Path first: {raw[:200]!r}"
    return_path = raw[: end + 2]
    start = end + 2
    assert raw.startswith(b"Received:", start), f"no Received second: {raw[:400]!r}"
    end = raw.index(b"\r\n", start) + 2
    while raw[end : end + 1] in (b" ", b"\t"):  # folded continuation lines
        end = raw.index(b"\r\n", end) + 2
    return Stored(return_path, raw[start:end], raw[end:])


def dot_stuff(data: bytes) -> bytes:
    """Transparency encoding for a CRLF text (RFC 5321 4.5.2 / RFC 1939 3)."""
    lines = data.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)


# --------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------

def insecure_tls_context() -> ssl.SSLContext:
    """The server's certificate is self-signed: do not verify it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# --------------------------------------------------------------------------
# SMTP clients
# --------------------------------------------------------------------------

def smtp_connect(server: Server, kind: str = "smtp") -> smtplib.SMTP:
    """smtplib client; implicit TLS for the submissions listener."""
    port = server.port(kind)
    if kind == "submissions":
        return smtplib.SMTP_SSL(
            HOST, port, local_hostname="client.test", timeout=IO_TIMEOUT, context=insecure_tls_context()
        )
    return smtplib.SMTP(HOST, port, local_hostname="client.test", timeout=IO_TIMEOUT)


def smtp_login(server: Server, user: str, kind: str = "submission") -> smtplib.SMTP:
    """An authenticated submission session (STARTTLS first on the submission port)."""
    smtp = smtp_connect(server, kind)
    smtp.ehlo()
    if kind == "submission":
        smtp.starttls(context=insecure_tls_context())
        smtp.ehlo()
    smtp.login(user, PASSWORDS[user])
    return smtp


def send_mail(server: Server, sender: str, recipients: list[str], message: bytes, **options) -> dict:
    """One transaction over the MX (smtp) port. Returns smtplib's refused dict."""
    with smtp_connect(server, "smtp") as smtp:
        return smtp.sendmail(sender, recipients, message, **options)


def deliver(server: Server, to: str = ALICE, **message_options) -> tuple[str, bytes]:
    """Send a fresh message to `to` over the MX port; return (token, message)."""
    token = new_token()
    message = make_message(token, to=to, **message_options)
    assert send_mail(server, EXTERNAL_SENDER, [to], message) == {}
    return token, message


@dataclass
class Reply:
    code: int
    lines: list[bytes]  # text after "NNN-" / "NNN "

    @property
    def text(self) -> bytes:
        return b"\n".join(self.lines)


class LineClient:
    """A raw, line-oriented TCP (optionally TLS) client with timeouts.

    EOF and connection resets are reported as b"" from readline(), so tests
    can treat "server hung up" uniformly.
    """

    def __init__(self, port: int, *, tls: bool = False, source: str | None = None, timeout: float = IO_TIMEOUT):
        source_address = (source, 0) if source else None
        self.sock = socket.create_connection((HOST, port), timeout=timeout, source_address=source_address)
        if tls:
            self.sock = insecure_tls_context().wrap_socket(self.sock)
        self.buffer = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, data: bytes) -> bool:
        """Send everything; False if the server already closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            return False

    def readline(self) -> bytes:
        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                chunk = b""
            if not chunk:
                line, self.buffer = self.buffer, b""
                return line
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    @property
    def local_address(self) -> str:
        """This end's "ip:port", as the server's log lines name the peer."""
        ip, port = self.sock.getsockname()[:2]
        return f"{ip}:{port}"

    def at_eof(self) -> bool:
        """True if the server closed the connection (nothing more to read)."""
        return self.readline() == b""


class SmtpClient(LineClient):
    def reply(self) -> Reply | None:
        """Read one (possibly multi-line) reply; None if the connection closed."""
        lines = []
        while True:
            line = self.readline()
            if not line:
                return None
            assert re.match(rb"^[2-5]\d\d([ -]|\r\n)", line) and line.endswith(b"\r\n"), f"malformed reply {line!r}"
            lines.append(line[4:-2])
            if line[3:4] != b"-":
                return Reply(int(line[:3]), lines)

    def command(self, line: bytes | str) -> Reply | None:
        if isinstance(line, str):
            line = line.encode()
        if not self.send(line + b"\r\n"):
            return None
        return self.reply()

    def expect(self, line: bytes | str, code: int) -> Reply:
        reply = self.command(line)
        assert reply is not None, f"connection closed after {line!r}"
        assert reply.code == code, f"{line!r} -> {reply.code} {reply.text!r}, expected {code}"
        return reply

    def greet(self) -> None:
        """Read the 220 greeting and say EHLO."""
        greeting = self.reply()
        assert greeting is not None and greeting.code == 220, f"bad greeting {greeting}"
        self.expect("EHLO client.test", 250)


class Pop3Client(LineClient):
    def status(self) -> bytes:
        """One status line (+OK / -ERR ...), without CRLF; b"" if closed."""
        return self.readline().rstrip(b"\r\n")

    def command(self, line: bytes | str) -> bytes:
        if isinstance(line, str):
            line = line.encode()
        if not self.send(line + b"\r\n"):
            return b""
        return self.status()

    def multiline_raw(self) -> bytes:
        """The raw body of a multi-line response, up to and including '.\\r\\n'."""
        data = b""
        while True:
            line = self.readline()
            assert line, "connection closed inside a multi-line response"
            data += line
            if line == b".\r\n":
                return data

    def login(self, user: str, password: str | None = None) -> None:
        assert self.status().startswith(b"+OK"), "no +OK greeting"
        password = PASSWORDS[user] if password is None else password
        response = self.command(b"AUTH PLAIN " + sasl_plain(user, password))
        assert response.startswith(b"+OK"), f"AUTH PLAIN failed: {response!r}"


def sasl_plain(user: str, password: str) -> bytes:
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())


# --------------------------------------------------------------------------
# POP3 (poplib)
# --------------------------------------------------------------------------

def pop3s_login(server: Server, user: str, password: str | None = None, wait_free: float = 5.0) -> poplib.POP3_SSL:
    """USER/PASS over pop3s. Retries briefly while the maildrop is [IN-USE],
    since a previous session's lock may be released just after its QUIT."""
    password = PASSWORDS[user] if password is None else password
    deadline = time.monotonic() + wait_free
    while True:
        pop = poplib.POP3_SSL(HOST, server.port("pop3s"), timeout=IO_TIMEOUT, context=insecure_tls_context())
        try:
            pop.user(user)
            pop.pass_(password)
            return pop
        except poplib.error_proto as error:
            pop.close()
            if b"[IN-USE]" not in error_text(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def error_text(error: Exception) -> bytes:
    arg = error.args[0] if error.args else b""
    return arg if isinstance(arg, bytes) else str(arg).encode()


def retr_bytes(pop: poplib.POP3, number: int) -> bytes:
    """RETR, with poplib's dot-unstuffing, reassembled into the exact stored bytes."""
    _, lines, _ = pop.retr(number)
    return b"".join(line + b"\r\n" for line in lines)


def fetch_inbox(server: Server, user: str = ALICE, password: str | None = None) -> list[bytes]:
    """Every message in the user's INBOX (nothing is deleted)."""
    pop = pop3s_login(server, user, password)
    try:
        count, _ = pop.stat()
        return [retr_bytes(pop, number) for number in range(1, count + 1)]
    finally:
        pop.quit()


def assert_delivery_works(server: Server) -> None:
    """A complete new SMTP transaction is accepted and lands in alice's INBOX."""
    _, message = deliver(server, ALICE)
    contents = [split_trace(raw).content for raw in fetch_inbox(server, ALICE)]
    assert message in contents, "message accepted with 250 but not found in INBOX"


# --------------------------------------------------------------------------
# IMAP clients
# --------------------------------------------------------------------------

def imaps_login(server: Server, user: str = ALICE, password: str | None = None) -> imaplib.IMAP4_SSL:
    """imaplib over implicit TLS (imaps), logged in."""
    imap = imaplib.IMAP4_SSL(HOST, server.port("imaps"), ssl_context=insecure_tls_context(), timeout=IO_TIMEOUT)
    imap.login(user, password or PASSWORDS[user])
    return imap


def imap_starttls_login(server: Server, user: str = ALICE) -> imaplib.IMAP4:
    """imaplib on the imap port: STARTTLS, then LOGIN."""
    imap = imaplib.IMAP4(HOST, server.port("imap"), timeout=IO_TIMEOUT)
    imap.starttls(ssl_context=insecure_tls_context())
    imap.login(user, PASSWORDS[user])
    return imap


def run_fetchmail(tmp_path: Path, protocol: str, port: int, tls_lines: str, keep: bool) -> bytes:
    """Runs fetchmail once for alice (POP3 or IMAP on `port`), delivering into an mbox
    through an MDA; asserts it succeeded and returns what it delivered."""
    fetchmail = require_tool("fetchmail")
    mbox = tmp_path / "fetched.mbox"
    home = tmp_path / "fetchmail-home"
    home.mkdir(mode=0o700)
    local_user = pwd.getpwuid(os.getuid()).pw_name
    rcfile = tmp_path / "fetchmailrc"
    rcfile.write_text(
        "set no bouncemail\n"
        f"poll {HOST} with protocol {protocol} service {port}\n"
        f'    user "{ALICE}" there with password "{PASSWORDS[ALICE]}" is "{local_user}" here\n'
        f"    {tls_lines}\n"
        "    no sslcertck\n"
        f"    {'keep' if keep else 'no keep'}\n"
        "    fetchall\n"
        f'    mda "cat >> {mbox}"\n'
    )
    rcfile.chmod(0o600)
    result = subprocess.run(
        [fetchmail, "--fetchmailrc", str(rcfile), "--nodetach", "--nosyslog", "--verbose"],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "FETCHMAILHOME": str(home)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return mbox.read_bytes()
