"""DANE (RFC 7672) outbound against a DNSSEC-signed zone on loopback.

The zone dane.test is signed by ldns-signzone (ldnsutils) and served by unbound as an
authoritative zone; letterbox validates it itself ([relay] dnssec) against the zone's key
as trust anchor. The MX host is an SMTP sink; its TLSA record matches its certificate, or
does not. Unbound's recursion is pointed at a dead loopback port: nothing leaves loopback.
"""
import hashlib
import subprocess
import time
from pathlib import Path

import pytest

from conftest import make_message, new_token, require_tool
from test_acme import free_port
from test_mta_sts import wait_for_deferral
from test_relay import MX1, relay, submit, wait_for_empty_queue  # noqa: F401 (fixture)

ZONE = """$ORIGIN dane.test.
$TTL 300
@ IN SOA ns.dane.test. admin.dane.test. 1 3600 600 86400 300
@ IN NS ns.dane.test.
ns IN A 127.0.0.1
@ IN MX 10 mx.dane.test.
mx IN A {mx}
_{port}._tcp.mx IN TLSA 3 1 1 {digest}
"""


def spki_sha256(cert: Path) -> str:
    pem = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"],
                         capture_output=True, check=True, timeout=30).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pem,
                         capture_output=True, check=True, timeout=30).stdout
    return hashlib.sha256(der).hexdigest()


class SignedZone:
    def __init__(self, directory: Path, text: str):
        self.dir = directory / "dns"
        self.dir.mkdir()
        self.dir.chmod(0o755)
        (self.dir / "dane.test.zone").write_text(text)
        run = lambda *args: subprocess.run(args, cwd=self.dir, capture_output=True, text=True,
                                           check=True, timeout=60).stdout.strip()
        ksk = run(require_tool("ldns-keygen"), "-a", "ECDSAP256SHA256", "-k", "dane.test")
        zsk = run("ldns-keygen", "-a", "ECDSAP256SHA256", "dane.test")
        run(require_tool("ldns-signzone"), "dane.test.zone", ksk, zsk)
        self.anchor = self.dir / "anchor.key"
        # Both keys: hickory asks the parent for DS records unless every key of the
        # zone's DNSKEY set is an anchor (and there is no parent here).
        self.anchor.write_text((self.dir / f"{ksk}.key").read_text() + (self.dir / f"{zsk}.key").read_text())
        self.anchor.chmod(0o644)
        self.port = free_port()
        (self.dir / "unbound.conf").write_text(f"""server:
  interface: 127.0.0.1@{self.port}
  port: {self.port}
  do-daemonize: no
  use-syslog: no
  username: ""
  chroot: ""
  directory: "{self.dir}"
  pidfile: ""
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  local-zone: "test." nodefault
auth-zone:
  name: "dane.test"
  zonefile: "{self.dir}/dane.test.zone.signed"
  for-downstream: yes
  for-upstream: no
stub-zone:
  name: "."
  stub-addr: 127.0.0.1@9
""")
        self.log = open(self.dir / "unbound.log", "w")
        self.proc = subprocess.Popen([require_tool("unbound"), "-d", "-c", str(self.dir / "unbound.conf")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        time.sleep(0.5)
        assert self.proc.poll() is None, (self.dir / "unbound.log").read_text()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture
def dane(relay):  # noqa: F811
    zones = []

    def factory(matching: bool, dnssec: bool = True, wrong_anchor: bool = False):
        r = relay()
        sink = r.sink(MX1)
        digest = spki_sha256(r.cert) if matching else "00" * 32
        zone = SignedZone(r.dir, ZONE.format(mx=MX1, port=sink.port, digest=digest))
        zones.append(zone)
        anchor = zone.anchor
        if wrong_anchor:
            # Another key for the same name: the zone's signatures are then bogus.
            other = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", "dane.test"],
                                   cwd=r.dir, capture_output=True, text=True, check=True).stdout.strip()
            anchor = r.dir / f"{other}.key"
            anchor.chmod(0o644)
        r.relay_options = f'dns_servers = ["127.0.0.1:{zone.port}"]\nmx_tls = "none"'
        if dnssec:
            r.relay_options += f'\ndnssec = true\ndnssec_trust_anchor = "{anchor}"'
        return r, sink, r.start()

    yield factory
    for zone in zones:
        zone.stop()


def test_a_matching_tlsa_record_delivers_over_tls(dane):
    r, sink, server = dane(matching=True)
    assert submit(server, ["bob@dane.test"], make_message(new_token(), sender="alice@example.org")) == {}
    (received,) = sink.wait_for(1, timeout=20)
    assert received.tls, "TLSA records make STARTTLS mandatory, even with mx_tls = none"
    wait_for_empty_queue(server)
    assert "relay: DNSSEC validated here; MX hosts' TLSA records are enforced (DANE)" in server.stderr_text()


def test_a_mismatching_tlsa_record_defers(dane):
    r, sink, server = dane(matching=False)
    assert submit(server, ["bob@dane.test"], make_message(new_token(), sender="alice@example.org")) == {}
    shown = wait_for_deferral(server, "DANE: no TLSA record matches the certificate", timeout=20)
    assert "deferred" in shown
    assert sink.messages == []


def test_without_validation_tlsa_records_are_not_used_and_the_log_says_so(dane):
    r, sink, server = dane(matching=False, dnssec=False)
    assert submit(server, ["bob@dane.test"], make_message(new_token(), sender="alice@example.org")) == {}
    (received,) = sink.wait_for(1, timeout=20)
    assert not received.tls  # mx_tls = none, and no DANE without DNSSEC
    assert ("relay: DANE not enforced: DNS answers are not DNSSEC-validated ([relay] dnssec = false)"
            in server.stderr_text())


def test_a_zone_that_fails_validation_defers_instead_of_sending_plain(dane):
    r, sink, server = dane(matching=True, wrong_anchor=True)
    assert submit(server, ["bob@dane.test"], make_message(new_token(), sender="alice@example.org")) == {}
    wait_for_deferral(server, "MX lookup for dane.test: DNS error: DNSSEC validation failed", timeout=20)
    assert sink.messages == []
