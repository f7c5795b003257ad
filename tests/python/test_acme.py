"""ACME (RFC 8555) against pebble, Let's Encrypt's test CA, on loopback.

Pebble resolves the names it validates through the test's DNS server and connects to
letterbox's http (HTTP-01) or https (TLS-ALPN-01) listener. Its certificates live 15
seconds, so renewal (at two thirds of the lifetime) happens within the test. The served
certificate is checked by openssl s_client, verifying against pebble's root.
"""
import json
import re
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import HOST, HOSTNAME, require_tool
from relay_fixtures import DnsServer, make_self_signed

VALIDITY = 15  # seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Pebble:
    def __init__(self, directory: Path, dns_port: int, http_port: int, tls_port: int):
        self.dir = directory
        self.port, self.management = free_port(), free_port()
        self.cert, key = make_self_signed(directory, ("localhost", HOST), stem="pebble")
        config = {
            "pebble": {
                "listenAddress": f"{HOST}:{self.port}",
                "managementListenAddress": f"{HOST}:{self.management}",
                "certificate": str(self.cert),
                "privateKey": str(key),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
                "certificateValidityPeriod": VALIDITY,
            }
        }
        (directory / "pebble.json").write_text(json.dumps(config))
        env = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0",
               "PATH": "/usr/bin:/bin"}
        self.log = open(directory / "pebble.log", "w")
        self.proc = subprocess.Popen(
            [require_tool("pebble"), "-config", str(directory / "pebble.json"),
             "-dnsserver", f"{HOST}:{dns_port}"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.context = ssl.create_default_context(cafile=str(self.cert))
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.directory, context=self.context, timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError("pebble did not start:\n" + (directory / "pebble.log").read_text())
                time.sleep(0.1)

    @property
    def directory(self) -> str:
        return f"https://{HOST}:{self.port}/dir"

    def root(self) -> Path:
        pem = urllib.request.urlopen(f"https://{HOST}:{self.management}/roots/0",
                                     context=self.context, timeout=5).read()
        path = self.dir / "pebble-root.pem"
        path.write_bytes(pem)
        return path

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture
def acme_env(server_dir):
    require_tool("openssl")
    tmp_path = server_dir / "pebble"  # readable by the server, which runs as nobody
    tmp_path.mkdir()
    dns = DnsServer({HOSTNAME: {"A": [HOST]}}).start()
    http_port, https_port = free_port(), free_port()
    pebble = Pebble(tmp_path, dns.port, http_port, https_port)
    yield dns, pebble, http_port, https_port
    pebble.stop()
    dns.stop()


def acme_server(make_server, pebble, http_port, https_port, challenge, domains=()):
    names = "".join(f'"{d}", ' for d in domains)
    config = f"""
[[listener]]
kind = "http"
address = "{HOST}"
port = {http_port}

[[listener]]
kind = "https"
address = "{HOST}"
port = {https_port}

[acme]
directory = "{pebble.directory}"
contact = ["mailto:postmaster@example.org"]
challenge = "{challenge}"
domains = [{names}]
ca_file = "{pebble.cert}"
"""
    return make_server(extra_config=config)


def served_certificate(port: int, root: Path, alpn: str | None = None) -> tuple[str, str]:
    """(verification result line, serial) of the certificate served on `port`."""
    args = ["openssl", "s_client", "-connect", f"{HOST}:{port}", "-servername", HOSTNAME,
            "-CAfile", str(root), "-verify_hostname", HOSTNAME]
    if alpn:
        args += ["-alpn", alpn]
    shown = subprocess.run(args, input=b"", capture_output=True, timeout=30).stdout.decode()
    verify = re.search(r"Verify return code: .*", shown).group(0)
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", shown, re.S).group(0)
    serial = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem.encode(),
                            capture_output=True, timeout=30, check=True).stdout.decode().strip()
    return verify, serial


def wait_for_count(server, text: str, count: int, timeout: float):
    deadline = time.monotonic() + timeout
    while server.stderr_text().count(text) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not seen {count} times within {timeout}s:\n{server.stderr_tail()}")
        time.sleep(0.1)


def test_tls_alpn_issuance_renewal_and_a_failed_renewal(make_server, acme_env):
    dns, pebble, http_port, https_port = acme_env
    server = acme_server(make_server, pebble, http_port, https_port, "tls-alpn-01")
    pid = server.pid
    wait_for_count(server, "acme: new certificate for mx.test", 1, 60)
    root = pebble.root()
    verify, first = served_certificate(server.port("imaps"), root)
    assert verify == "Verify return code: 0 (ok)"
    # Renewal two thirds into the 15 s lifetime; new connections get the new one.
    wait_for_count(server, "acme: new certificate for mx.test", 2, 40)
    verify, second = served_certificate(server.port("imaps"), root)
    assert verify == "Verify return code: 0 (ok)"
    assert second != first
    assert server.pid == pid
    assert served_certificate(server.port("https"), root, alpn="http/1.1") == (verify, second)
    # Now the name points elsewhere: the next renewal fails and the certificate stays.
    dns.set(HOSTNAME, "A", ["127.0.0.2"])
    wait_for_count(server, "acme: no new certificate, keeping the one in use", 1, 40)
    issued = server.stderr_text().count("acme: new certificate for mx.test")
    on_disk = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", str(server.data_dir / "acme" / "cert.pem")],
                             capture_output=True, timeout=30, check=True).stdout.decode().strip()
    assert served_certificate(server.port("imaps"), root) == ("Verify return code: 0 (ok)", on_disk)
    status = json.loads((server.data_dir / "acme" / "status.json").read_text())
    assert "Failed to connect to 127.0.0.2" in status["error"], status
    assert "tls-alpn-01" in status["error"], status
    assert server.stderr_text().count("acme: new certificate for mx.test") == issued
    assert status["next"] - status["attempted"] == 60
    account = server.data_dir / "acme" / "account.json"
    assert account.stat().st_mode & 0o777 == 0o600
    assert (server.data_dir / "acme" / "key.pem").stat().st_mode & 0o777 == 0o600


def test_http01_issuance_and_the_challenge_path(make_server, acme_env):
    dns, pebble, http_port, https_port = acme_env
    dns.set("mta-sts.example.org", "A", [HOST])
    server = acme_server(make_server, pebble, http_port, https_port, "http-01",
                         domains=(HOSTNAME, "mta-sts.example.org"))
    wait_for_count(server, "acme: new certificate for mx.test, mta-sts.example.org", 1, 60)
    verify, _ = served_certificate(server.port("submissions"), pebble.root())
    assert verify == "Verify return code: 0 (ok)"
    # Pebble fetched the token over http; its log names the URL it asked.
    assert f"http://{HOSTNAME}:{http_port}/.well-known/acme-challenge/" in (pebble.dir / "pebble.log").read_text()
    # Our MTA-STS policy, over HTTPS with the certificate just issued (curl verifies it).
    root = pebble.root()
    url = f"https://mta-sts.example.org:{https_port}/.well-known/mta-sts.txt"
    fetched = subprocess.run(
        [require_tool("curl"), "-sS", "--fail", "--cacert", str(root),
         "--resolve", f"mta-sts.example.org:{https_port}:{HOST}", url],
        capture_output=True, timeout=30)
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout == b"version: STSv1\r\nmode: enforce\r\nmx: mx.test\r\nmax_age: 604800\r\n"
    # Not for a domain that is not ours, and not over plain http.
    other = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(root), "-k",
         "--resolve", f"mta-sts.example.net:{https_port}:{HOST}",
         f"https://mta-sts.example.net:{https_port}/.well-known/mta-sts.txt"],
        capture_output=True, timeout=30)
    assert other.stdout == b"404"
    raw = http_get(http_port, "/.well-known/mta-sts.txt", "mta-sts.example.org")
    assert raw.startswith(b"HTTP/1.1 404 Not Found\r\n")
    # Outside an order the web listener knows no token, and serves nothing else.
    raw = http_get(http_port, "/.well-known/acme-challenge/nothing-here", HOSTNAME)
    assert raw.startswith(b"HTTP/1.1 404 Not Found\r\n")
    raw = http_get(http_port, "/", HOSTNAME, method="POST")
    assert raw.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    with socket.create_connection((HOST, http_port), timeout=10) as s:
        s.sendall(b"\x16\x03\x01 not http\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 Bad Request\r\n")


def http_get(port: int, path: str, host: str, method: str = "GET") -> bytes:
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        out = b""
        while chunk := s.recv(4096):
            out += chunk
        return out


def test_a_slow_request_head_is_cut_off(make_server):
    """The web listeners face the internet: a client that never finishes its request head
    loses the connection after 15 s, and others are served meanwhile."""
    port = free_port()
    server = make_server(extra_config=f'\n[[listener]]\nkind = "http"\naddress = "{HOST}"\nport = {port}\n')
    slow = socket.create_connection((HOST, port), timeout=30)
    began = time.monotonic()
    slow.sendall(b"GET /.well-known/acme-challenge/x HTTP/1.1\r\n")
    assert http_get(port, "/", HOSTNAME).startswith(b"HTTP/1.1 404 Not Found\r\n")
    # One byte every 4 s: each read is in time, the head as a whole is not.
    closed = False
    for byte in b"Host: mx.test\r\nX-Slow: 1\r\n":
        time.sleep(4)
        try:
            slow.sendall(bytes([byte]))
        except OSError:
            closed = True
            break
        slow.settimeout(0.01)
        try:
            if slow.recv(100) == b"":
                closed = True
                break
        except socket.timeout:
            pass
        slow.settimeout(30)
    assert closed, "the server kept a trickling client"
    waited = time.monotonic() - began
    assert 14 < waited < 21, waited
    slow.close()
    assert server.running
