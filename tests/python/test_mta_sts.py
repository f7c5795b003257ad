"""MTA-STS (RFC 8461) outbound: the recipient domain's policy comes from a loopback HTTPS
server the test runs (its name resolved by the test's DNS), the MX hosts are SMTP sinks.
An enforced policy makes TLS with a verified certificate a condition of delivery."""
import http.server
import ssl
import threading
import time

import pytest

from conftest import make_message, new_token
from relay_fixtures import SmtpSink, make_self_signed
from test_acme import free_port
from test_relay import MX1, relay, submit, wait_for_empty_queue  # noqa: F401 (fixture)

POLICY = "version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n"


class PolicyServer:
    """https://mta-sts.remote.test:PORT/.well-known/mta-sts.txt on 127.0.0.1."""

    def __init__(self, directory, body: str, content_type: str = "text/plain"):
        cert, key = make_self_signed(directory, ["mta-sts.remote.test"], stem="sts")
        self.cert = cert
        self.body, self.content_type, self.requests = body.encode(), content_type, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                found = self.path == "/.well-known/mta-sts.txt" and self.headers["Host"].startswith("mta-sts.remote.test")
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", outer.content_type)
                self.send_header("Content-Length", str(len(outer.body) if found else 0))
                self.end_headers()
                if found:
                    self.wfile.write(outer.body)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()


@pytest.fixture
def sts(relay):  # noqa: F811
    made = []

    def factory(mode: str, mx: str = "mx1.remote.test", relay_options: str = "", content_type="text/plain"):
        r = relay(relay_options=relay_options)
        policy = PolicyServer(r.dir, POLICY.format(mode=mode, mx=mx), content_type)
        made.append(policy)
        # The relay trusts the sinks' certificate and the policy server's.
        with open(r.cert, "a") as ca:
            ca.write(policy.cert.read_text())
        r.dns.set("_mta-sts.remote.test", "TXT", ["v=STSv1; id=20261202T1"])
        r.dns.set("mta-sts.remote.test", "A", ["127.0.0.1"])
        r.relay_options = f"{r.relay_options.strip()}\nmta_sts_port = {policy.port}".strip()
        return r, policy

    yield factory
    for policy in made:
        policy.stop()


def wait_for_deferral(server, why: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while True:
        shown = server.cli("queue", "show", "1", check=False).stdout
        if why in shown:
            return shown
        assert time.monotonic() < deadline, f"no deferral with {why!r}:\n{shown}"
        time.sleep(0.2)


def test_enforce_delivers_over_verified_tls_even_when_tls_is_off_by_config(sts):
    r, policy = sts("enforce", relay_options='mx_tls = "none"\n')
    sink = r.sink(MX1)
    server = r.start()
    assert submit(server, ["bob@remote.test"], make_message(new_token(), sender="alice@example.org")) == {}
    (received,) = sink.wait_for(1)
    assert received.tls, "an enforced policy requires STARTTLS"
    wait_for_empty_queue(server)
    assert policy.requests == 1
    assert "mta-sts remote.test: policy 20261202T1, mode Enforce, mx mx1.remote.test" in server.stderr_text()
    # The policy is cached: a second message does not fetch it again.
    assert submit(server, ["carol@remote.test"], make_message(new_token(), sender="alice@example.org")) == {}
    sink.wait_for(2)
    assert policy.requests == 1


def test_enforce_refuses_an_mx_whose_certificate_does_not_match(sts):
    r, policy = sts("enforce")
    wrong_cert, wrong_key = make_self_signed(r.dir, ["other.test"], stem="wrong")
    sink = SmtpSink(MX1, 0, tls_cert=wrong_cert, tls_key=wrong_key, starttls=True).start()
    r.sinks.append(sink)
    server = r.start()
    assert submit(server, ["bob@remote.test"], make_message(new_token(), sender="alice@example.org")) == {}
    shown = wait_for_deferral(server, "TLS with mx1.remote.test")
    assert "deferred" in shown
    assert sink.messages == [], "nothing may be delivered without verified TLS"


def test_testing_mode_delivers_to_the_same_mx_as_before(sts):
    r, policy = sts("testing")
    wrong_cert, wrong_key = make_self_signed(r.dir, ["other.test"], stem="wrong")
    sink = SmtpSink(MX1, 0, tls_cert=wrong_cert, tls_key=wrong_key, starttls=True).start()
    r.sinks.append(sink)
    server = r.start()
    assert submit(server, ["bob@remote.test"], make_message(new_token(), sender="alice@example.org")) == {}
    (received,) = sink.wait_for(1)
    assert received.tls  # opportunistic, unverified
    assert policy.requests == 1


def test_enforce_with_no_listed_mx_defers(sts):
    r, policy = sts("enforce", mx="mail.elsewhere.test")
    sink = r.sink(MX1)
    server = r.start()
    assert submit(server, ["bob@remote.test"], make_message(new_token(), sender="alice@example.org")) == {}
    wait_for_deferral(server, "MTA-STS: the enforced policy of remote.test names none of its 2 MX host(s)")
    assert sink.messages == []


def test_a_policy_served_with_the_wrong_type_is_not_used(sts):
    r, policy = sts("enforce", mx="mail.elsewhere.test", content_type="text/html")
    sink = r.sink(MX1)
    server = r.start()
    assert submit(server, ["bob@remote.test"], make_message(new_token(), sender="alice@example.org")) == {}
    sink.wait_for(1)
    assert 'Content-Type "text/html", not text/plain' in server.stderr_text()


def test_tls_results_are_counted_and_reported_the_next_day(sts):
    """RFC 8460: the day's sessions are counted per domain and policy; a finished day's
    counts go to the rua address of the domain's _smtp._tls record, as gzipped JSON."""
    import datetime
    import email
    import email.policy
    import gzip
    import json
    r, policy = sts("testing")
    wrong_cert, wrong_key = make_self_signed(r.dir, ["other.test"], stem="wrong")
    sink = SmtpSink(MX1, 0, tls_cert=wrong_cert, tls_key=wrong_key, starttls=True).start()
    r.sinks.append(sink)
    server = r.start()
    for _ in range(2):
        assert submit(server, ["bob@remote.test"], make_message(new_token(), sender="alice@example.org")) == {}
    sink.wait_for(2)
    wait_for_empty_queue(server)
    server.stop()
    today = datetime.datetime.now(datetime.timezone.utc).date()
    counts = json.loads((server.data_dir / "tlsrpt" / f"{today}.json").read_text())
    # The certificate does not fit the policy: both sessions fail its check (testing mode
    # delivers anyway, over unverified TLS).
    assert counts == {"date": str(today), "counts": {"remote.test\tsts": {
        "successful": 0, "failures": {"certificate-not-trusted\tmx1.remote.test": 2}}}}
    # Make it yesterday's, publish a reporting address, and start again.
    yesterday = today - datetime.timedelta(days=1)
    counts["date"] = str(yesterday)
    (server.data_dir / "tlsrpt" / f"{yesterday}.json").write_text(json.dumps(counts))
    (server.data_dir / "tlsrpt" / f"{today}.json").unlink()
    r.dns.set("_smtp._tls.remote.test", "TXT", ["v=TLSRPTv1; rua=mailto:tls-reports@remote.test"])
    server.start()
    deadline = time.monotonic() + 20
    while not any(m.rcpt_tos == ["tls-reports@remote.test"] for m in sink.messages):
        assert time.monotonic() < deadline, "no report arrived"
        time.sleep(0.2)
    (report,) = [m for m in sink.messages if m.rcpt_tos == ["tls-reports@remote.test"]]
    assert report.mail_from == ""
    message = email.message_from_bytes(report.data, policy=email.policy.compat32)
    assert message["TLS-Report-Domain"] == "remote.test"
    assert message["TLS-Report-Submitter"] == "mx.test"
    assert message.get_content_type() == "multipart/report" and message.get_param("report-type") == "tlsrpt"
    attachment = message.get_payload()[1]
    assert attachment.get_content_type() == "application/tlsrpt+gzip"
    assert attachment.get_filename().startswith("mx.test!remote.test!")
    data = json.loads(gzip.decompress(attachment.get_payload(decode=True)))
    assert data["date-range"] == {"start-datetime": f"{yesterday}T00:00:00Z", "end-datetime": f"{yesterday}T23:59:59Z"}
    assert data["policies"] == [{
        "policy": {"policy-type": "sts", "policy-domain": "remote.test"},
        "summary": {"total-successful-session-count": 0, "total-failure-session-count": 2},
        "failure-details": [{"result-type": "certificate-not-trusted", "receiving-mx-hostname": "mx1.remote.test",
                             "failed-session-count": 2}],
    }]
    assert (server.data_dir / "tlsrpt" / f"{yesterday}.sent").exists()
