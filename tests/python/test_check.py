"""`letterbox check`, the deliverability doctor, against the test's own DNS server.

One zone is right in every way; each other case breaks it in one way. The report is
compared line by line: a right zone gives exactly the expected lines, and each break
changes exactly the lines it should.
"""
import json
import re
import socket

import pytest

from conftest import HOST, HOSTNAME
from relay_fixtures import DnsServer, make_self_signed
from test_acme import free_port
from test_clock import SntpServer

ADDRESS = "192.0.2.10"
REVERSE = "10.2.0.192.in-addr.arpa"


@pytest.fixture
def doctor(make_server, server_dir):
    """(server, dns, run) with a right zone; run(*args) -> (returncode, stdout lines)."""
    dns = DnsServer().start()
    sntp = SntpServer(0.0)
    probe = socket.socket()
    probe.bind((HOST, 0))
    probe.listen(16)
    https_port = free_port()
    cert, key = make_self_signed(server_dir / "certs", (HOSTNAME, "mta-sts.example.org"), stem="mx")
    key.chmod(0o644)  # the server reads it after dropping to nobody
    server = make_server(tls=(cert, key), extra_config=f"""
[[listener]]
kind = "https"
address = "{HOST}"
port = {https_port}

[relay]
dns_servers = ["{HOST}:{dns.port}"]
mx_port = {probe.getsockname()[1]}
ca_file = "{cert}"

[inbound]
enabled = false
dnsbl = ["bl.test"]

[clock]
servers = ["{HOST}:{sntp.port}"]
check_hours = 0
""")
    generated = server.cli("dkim", "generate", "example.org", "--selector", "s1").stdout
    zone = {
        HOSTNAME: {"A": [ADDRESS]},
        REVERSE: {"PTR": [HOSTNAME]},
        "example.org": {"MX": [(10, HOSTNAME)], "TXT": ["v=spf1 mx -all"]},
        "_dmarc.example.org": {"TXT": ["v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org"]},
        "_mta-sts.example.org": {"TXT": ["v=STSv1; id=20261202"]},
        "mta-sts.example.org": {"A": [HOST]},
        "_smtp._tls.example.org": {"TXT": ["v=TLSRPTv1; rua=mailto:tls@example.org"]},
        "gmail.com": {"MX": [(5, "probe.test")]},
        "probe.test": {"A": [HOST]},
    }
    for line in generated.splitlines():
        m = re.match(r"(\S+)\. IN TXT (.*)$", line)
        if m:
            zone[m.group(1)] = {"TXT": [re.findall(r'"([^"]*)"', m.group(2))]}
    for name, records in zone.items():
        for rtype, values in records.items():
            dns.set(name, rtype, values)

    def run(*args):
        result = server.cli("check", "--https-port", str(https_port), *args, check=False)
        return result.returncode, result.stdout.splitlines(), result.stderr

    yield server, dns, run, probe
    probe.close()
    sntp.close()
    dns.stop()


def findings(lines):
    return lines[: lines.index("")]


RIGHT = [
    f"PASS  mx.test  address: mx.test is {ADDRESS}",
    f"PASS  mx.test  PTR: {ADDRESS} points back at mx.test (forward-confirmed)",
    f"PASS  mx.test  DNSBL: {ADDRESS} is on none of bl.test",
    "PASS  mx.test  port 25: outbound connections reach probe.test (127.0.0.1:{probe})",
    "WARN  mx.test  certificate: self-signed: mail apps warn, and our MTA-STS policy stays in testing mode; set up [acme]",
    "PASS  mx.test  clock: 0.0 s off 127.0.0.1:{sntp}",
    "WARN  mx.test  DANE: not enforced outbound: DNS answers are not DNSSEC-validated ([relay] dnssec = false), so TLSA records of MX hosts are not checked",
    "PASS  example.org  MX: points at mx.test",
    "PASS  example.org  SPF: v=spf1 mx -all allows mx.test",
    "PASS  example.org  DKIM: s1-rsa._domainkey.example.org matches the key in the store",
    "PASS  example.org  DKIM: s1-ed25519._domainkey.example.org matches the key in the store",
    "PASS  example.org  DMARC: p=quarantine",
    "PASS  example.org  MTA-STS: id 20261202, mode testing, policy served over HTTPS",
    "PASS  example.org  TLS-RPT: v=TLSRPTv1; rua=mailto:tls@example.org",
]


def expected(server, probe, replace=None):
    sntp = re.search(r'\[clock\]\nservers = \["127.0.0.1:(\d+)"\]', server.config_path.read_text()).group(1)
    lines = [line.format(probe=probe.getsockname()[1], sntp=sntp) for line in RIGHT]
    for index, line in (replace or {}).items():
        lines[index] = line
    return [line for line in lines if line is not None]


def test_a_right_zone_passes_and_the_records_to_publish_follow(doctor):
    server, dns, run, probe = doctor
    code, lines, stderr = run()
    assert findings(lines) == expected(server, probe), "\n".join(lines)
    assert code == 0, stderr
    records = lines[lines.index("") + 1:]
    assert records[0] == "; The records to publish (zone-file form), for mx.test and example.org"
    assert records[1:4] == [
        f"mx.test. IN A {ADDRESS}",
        f"; PTR, set by whoever owns the address: {REVERSE}. IN PTR mx.test.",
        "example.org. IN MX 10 mx.test.",
    ]
    assert 'example.org. IN TXT "v=spf1 mx -all"' in records
    assert '_dmarc.example.org. IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org"' in records
    assert "mta-sts.example.org. IN CNAME mx.test." in records
    assert re.fullmatch(r'_mta-sts\.example\.org\. IN TXT "v=STSv1; id=[0-9a-f]{16}"', records[-4]), records
    assert records[-1] == '; the MTA-STS policy needs a certificate for mta-sts.<domain>: [acme] domains = ["mx.test", "mta-sts.example.org"]'
    assert any(r.startswith('s1-rsa._domainkey.example.org. IN TXT "v=DKIM1; k=rsa; p=') for r in records)
    # The same as JSON.
    code, lines, _ = run("--json")
    report = json.loads("\n".join(lines))
    assert [f"{f['level']}  {f['scope']}  {f['check']}: {f['why']}" for f in report["findings"]] == expected(server, probe)
    assert report["records"] == records


WRONG = {
    "MX elsewhere": (lambda dns: dns.set("example.org", "MX", [(10, "mx.other.test")]),
                     {7: "FAIL  example.org  MX: points at mx.other.test, not mx.test",
                      8: "FAIL  example.org  SPF: v=spf1 mx -all does not allow this host: 192.0.2.10 gets fail"}),
    "no PTR": (lambda dns: dns.remove(REVERSE),
               {1: f"FAIL  mx.test  PTR: {ADDRESS} has no PTR record: ask your ISP or hosting provider to set it to mx.test"}),
    "PTR elsewhere": (lambda dns: dns.set(REVERSE, "PTR", ["dsl-10.isp.test"]),
                      {1: f"FAIL  mx.test  PTR: {ADDRESS} points at dsl-10.isp.test, not mx.test: ask your ISP or hosting provider to set it to mx.test"}),
    "listed": (lambda dns: dns.set("10.2.0.192.bl.test", "A", ["127.0.0.2"]),
               {2: f"FAIL  mx.test  DNSBL: {ADDRESS} is listed on bl.test"}),
    "SPF without us": (lambda dns: dns.set("example.org", "TXT", ["v=spf1 ip4:198.51.100.1 -all"]),
                       {8: "FAIL  example.org  SPF: v=spf1 ip4:198.51.100.1 -all does not allow this host: 192.0.2.10 gets fail"}),
    "no SPF": (lambda dns: dns.set("example.org", "TXT", []),
               {8: "FAIL  example.org  SPF: example.org has no v=spf1 record"}),
    "DKIM unpublished": (lambda dns: dns.remove("s1-rsa._domainkey.example.org"),
                         {9: "FAIL  example.org  DKIM: s1-rsa._domainkey.example.org is not published"}),
    "DKIM other key": (lambda dns: dns.set("s1-ed25519._domainkey.example.org", "TXT",
                                           ["v=DKIM1; k=ed25519; p=MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="]),
                       {10: "FAIL  example.org  DKIM: s1-ed25519._domainkey.example.org publishes a different key than the one in the store"}),
    "no DMARC": (lambda dns: dns.remove("_dmarc.example.org"),
                 {11: "FAIL  example.org  DMARC: _dmarc.example.org has no v=DMARC1 record"}),
    "DMARC none": (lambda dns: dns.set("_dmarc.example.org", "TXT", ["v=DMARC1; p=none"]),
                   {11: "WARN  example.org  DMARC: p=none: receivers are asked to do nothing with failing mail"}),
    "no MTA-STS": (lambda dns: dns.remove("_mta-sts.example.org"),
                   {12: "WARN  example.org  MTA-STS: _mta-sts.example.org has no v=STSv1 record: senders may deliver without TLS"}),
    "no TLS-RPT": (lambda dns: dns.remove("_smtp._tls.example.org"),
                   {13: "WARN  example.org  TLS-RPT: _smtp._tls.example.org has no v=TLSRPTv1 record: senders cannot report TLS trouble"}),
    "private address": (lambda dns: (dns.set(HOSTNAME, "A", ["192.168.1.10"]),
                                     dns.set("10.1.168.192.in-addr.arpa", "PTR", [HOSTNAME])),
                        {0: "FAIL  mx.test  address: 192.168.1.10 is not a public address: the internet cannot reach it",
                         1: "PASS  mx.test  PTR: 192.168.1.10 points back at mx.test (forward-confirmed)",
                         2: "PASS  mx.test  DNSBL: 192.168.1.10 is on none of bl.test"}),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_each_wrong_zone_changes_its_line(doctor, case):
    server, dns, run, probe = doctor
    breaks, replace = WRONG[case]
    breaks(dns)
    code, lines, stderr = run()
    assert findings(lines) == expected(server, probe, replace), "\n".join(lines)
    fails = sum(1 for line in findings(lines) if line.startswith("FAIL"))
    assert (code, stderr.strip() if fails else "") == ((1, f"letterbox: {fails} check(s) failed") if fails else (0, ""))


def test_blocked_port_25_says_so_and_shows_the_smarthost_config(doctor):
    server, dns, run, probe = doctor
    closed = free_port()
    server.config_path.write_text(server.config_path.read_text().replace(
        f"mx_port = {probe.getsockname()[1]}", f"mx_port = {closed}"))
    code, lines, _ = run()
    assert findings(lines)[3] == (
        f"FAIL  mx.test  port 25: cannot reach probe.test (127.0.0.1:{closed}): Connection refused (os error 111); "
        "many home ISPs block outbound port 25: relay through a smarthost (see below)")
    assert lines[-5:] == ["[[relay.smarthost]]", 'host = "smtp.example.net"', "port = 587",
                          'username = "you@example.net"', 'password = "your-password"']
    assert code == 1


def test_records_only_and_one_domain(doctor):
    server, dns, run, probe = doctor
    code, lines, _ = run("--records")
    assert code == 0
    assert lines[:3] == [
        "; The records to publish (zone-file form), for mx.test and example.org",
        "mx.test. IN A <the public IPv4 address of this host>",
        "example.org. IN MX 10 mx.test.",
    ]
    code, lines, stderr = run("example.net")
    assert (code, stderr.strip()) == (1, "letterbox: example.net is not a local domain")
