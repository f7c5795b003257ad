"""ManageSieve (RFC 5804) with clients nobody here wrote: sieve-connect (Debian) and
sievelib's client (PyPI), each over STARTTLS; and the protocol's edges by hand."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess

import pytest
import sievelib.managesieve as managesieve

from conftest import ALICE, BOB, HOST, IO_TIMEOUT, PASSWORDS, insecure_tls_context, require_tool

SCRIPT = 'require ["fileinto"];\r\nif header :contains "subject" "x" { fileinto "X"; }\r\n'


@pytest.fixture
def sievelib(server, monkeypatch):
    # The test server's certificate is self-signed.
    context = insecure_tls_context()
    monkeypatch.setattr(managesieve.ssllib, "create_default_context", lambda *a, **k: context)
    client = managesieve.Client(HOST, server.port("managesieve"))
    assert client.connect(ALICE, PASSWORDS[ALICE], starttls=True, authmech="PLAIN"), client.errmsg
    yield client
    client.logout()


def test_sievelib_uploads_checks_activates_and_deletes(server, sievelib):
    assert sievelib.get_implementation() == "letterbox"
    assert "fileinto" in sievelib.get_sieve_capabilities()
    assert sievelib.havespace("main", len(SCRIPT))
    assert sievelib.checkscript(SCRIPT)
    assert not sievelib.checkscript('fileinto "x";')
    assert b'fileinto needs require \\"fileinto\\"' in sievelib.errmsg or \
        b'fileinto needs require "fileinto"' in sievelib.errmsg
    assert sievelib.putscript("main", SCRIPT)
    assert sievelib.putscript("other", "keep;\r\n")
    assert sievelib.setactive("main")
    assert sievelib.listscripts() == ("main", ["other"])
    # sievelib hands the script back as lines joined with LF (the exact bytes are checked
    # by sieve-connect's download and the raw test below).
    assert sievelib.getscript("main") == SCRIPT.replace("\r\n", "\n").rstrip("\n")
    assert not sievelib.deletescript("main"), "the active script stays"
    assert sievelib.renamescript("main", "renamed")
    assert sievelib.listscripts() == ("renamed", ["other"])
    assert sievelib.setactive("")
    assert sievelib.deletescript("renamed") and sievelib.deletescript("other")
    assert sievelib.listscripts() == (None, [])
    # What the CLI sees is the same store.
    assert server.cli("sieve", "list", ALICE).stdout == ""


def test_sieve_connect_round_trip(server, tmp_path):
    tool = require_tool("sieve-connect")
    local = tmp_path / "filter.sieve"
    local.write_text(SCRIPT)

    def run(*args):
        read, write = os.pipe()
        os.write(write, (PASSWORDS[ALICE] + "\n").encode())
        os.close(write)
        try:
            return subprocess.run(
                [tool, "--server", HOST, "--port", str(server.port("managesieve")),
                 "--user", ALICE, "--notlsverify", "--passwordfd", str(read), *args],
                capture_output=True, text=True, timeout=60, pass_fds=(read,))
        finally:
            os.close(read)

    uploaded = run("--upload", "--localsieve", str(local), "--remotesieve", "main")
    assert uploaded.returncode == 0, uploaded.stderr
    assert run("--activate", "--remotesieve", "main").returncode == 0
    listing = run("--list")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout == '"main" ACTIVE\n', listing.stdout
    assert server.cli("sieve", "list", ALICE).stdout == f"main  {len(SCRIPT)} bytes (active)\n"
    download = tmp_path / "back.sieve"
    got = run("--download", "--remotesieve", "main", "--localsieve", str(download))
    assert got.returncode == 0, got.stderr
    assert download.read_bytes() == SCRIPT.encode()
    assert run("--deactivate").returncode == 0
    assert run("--delete", "--remotesieve", "main").returncode == 0
    assert server.cli("sieve", "list", ALICE).stdout == ""


class Raw:
    """A hand-driven ManageSieve connection."""

    def __init__(self, port: int):
        self.sock = socket.create_connection((HOST, port), timeout=IO_TIMEOUT)
        self.file = self.sock.makefile("rb")

    def until_ok(self) -> list[bytes]:
        lines = []
        while True:
            line = self.file.readline()
            assert line, "connection closed"
            lines.append(line)
            if line.startswith((b"OK", b"NO", b"BYE")):
                return lines

    def send(self, data: bytes) -> list[bytes]:
        self.sock.sendall(data)
        return self.until_ok()

    def starttls(self) -> list[bytes]:
        assert self.send(b"STARTTLS\r\n")[-1].startswith(b"OK")
        self.sock = insecure_tls_context().wrap_socket(self.sock, server_hostname="mx.test")
        self.file = self.sock.makefile("rb")
        return self.until_ok()


def test_protocol_edges_by_hand(server):
    raw = Raw(server.port("managesieve"))
    greeting = raw.until_ok()
    assert b'"SASL" ""\r\n' in greeting, "no plaintext login without TLS"
    assert b'"STARTTLS"\r\n' in greeting and greeting[-1] == b'OK "letterbox ManageSieve ready"\r\n'
    assert raw.send(b"LISTSCRIPTS\r\n") == [b'NO "Authenticate first"\r\n']
    assert raw.send(b'AUTHENTICATE "PLAIN" "AGFAYg=="\r\n') == [b'NO (ENCRYPT-NEEDED) "Use STARTTLS first"\r\n']
    again = raw.starttls()
    assert b'"SASL" "PLAIN"\r\n' in again and b'"STARTTLS"\r\n' not in again
    assert b'"UNAUTHENTICATE"\r\n' in again
    import base64
    token = base64.b64encode(f"\0{ALICE}\0{PASSWORDS[ALICE]}".encode())
    # The response after the server's empty challenge, as a literal.
    raw.sock.sendall(b'AUTHENTICATE "PLAIN"\r\n')
    assert raw.file.readline() == b'""\r\n'
    assert raw.send(b"{%d+}\r\n%s\r\n" % (len(token), token)) == [b'OK "Authentication successful"\r\n']
    assert raw.send(b'PUTSCRIPT "bad" {15+}\r\nfileinto "x";\r\n\r\n') == [
        b'NO "line 1, column 1: fileinto needs require \\"fileinto\\""\r\n']
    assert raw.send(b'PUTSCRIPT "good" {7+}\r\nkeep;\r\n\r\n') == [b'OK "Putscript completed"\r\n']
    assert raw.send(b'GETSCRIPT "good"\r\n') == [b"{7}\r\n", b"keep;\r\n", b"\r\n", b'OK "Getscript completed"\r\n']
    assert raw.send(b'GETSCRIPT "none"\r\n') == [b'NO (NONEXISTENT) "script none does not exist"\r\n']
    assert raw.send(b'HAVESPACE "x" 99999999\r\n')[0].startswith(b"NO (QUOTA/MAXSIZE)")
    assert raw.send(b'RENAMESCRIPT "good" "good"\r\n') == [b'NO (ALREADYEXISTS) "script good already exists"\r\n']
    assert raw.send(b'NOOP "t1"\r\n') == [b'OK (TAG "t1") "Done"\r\n']
    assert raw.send(b"FROB\r\n") == [b'NO "Unknown command FROB"\r\n']
    # After login the capabilities still name PLAIN (sieve-connect refuses an empty
    # SASL list without STARTTLS).
    caps = raw.send(b"CAPABILITY\r\n")
    assert b'"SASL" "PLAIN"\r\n' in caps and caps[-1] == b'OK "Capability completed"\r\n'
    # A line too long that announces a literal: the literal is skipped, not run.
    long_line = b'PUTSCRIPT "' + b"x" * 9000 + b'" {10+}\r\n' + b"LOGOUT\r\n\r\n"
    assert raw.send(long_line) == [b'NO "Line too long"\r\n']
    assert raw.send(b"NOOP\r\n") == [b'OK "Done"\r\n']
    assert raw.send(b"UNAUTHENTICATE\r\n") == [b'OK "Unauthenticate completed"\r\n']
    assert raw.send(b"LISTSCRIPTS\r\n") == [b'NO "Authenticate first"\r\n']
    # A literal beyond any script's size is not read: the session ends.
    assert raw.send(b'PUTSCRIPT "huge" {99999999+}\r\n') == [b'BYE (QUOTA/MAXSIZE) "Literal too large"\r\n']
    assert raw.file.readline() == b""
    # Bob never saw alice's scripts.
    assert server.cli("sieve", "list", BOB).stdout == ""
