"""Privilege drop, signals and `config check`."""

import os
import pwd
import re
import shutil
import signal
import ssl
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (
    ALICE,
    BOB,
    HOST,
    IO_TIMEOUT,
    PASSWORDS,
    SmtpClient,
    assert_delivery_works,
    deliver,
    fetch_inbox,
    insecure_tls_context,
    pop3s_login,
    require_binary,
    require_tool,
    smtp_connect,
    split_trace,
)


# -- running as root ------------------------------------------------------------

@pytest.fixture
def nobody():
    if os.geteuid() != 0:
        pytest.skip("privilege drop can only be tested when the suite runs as root")
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user on this system")


@pytest.fixture
def root_server(make_server, nobody):
    """A server started as root with run_as = "nobody"."""
    return make_server(run_as="nobody")


def proc_status_ids(pid: int, field: str) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return [int(value) for value in line.split()[1:]]
    raise AssertionError(f"no {field} line in /proc/{pid}/status")


def test_root_start_drops_to_run_as_user(root_server, nobody):
    uids = proc_status_ids(root_server.pid, "Uid")
    assert len(uids) == 4
    assert all(uid != 0 for uid in uids), f"real/effective/saved/fs uid still root: {uids}"
    assert uids == [nobody.pw_uid] * 4, uids
    gids = proc_status_ids(root_server.pid, "Gid")
    assert all(gid != 0 for gid in gids), f"still in the root group: {gids}"
    assert 0 not in proc_status_ids(root_server.pid, "Groups"), "root supplementary group kept"


def test_run_as_user_is_honoured(make_server, nobody):
    # nobody is also letterbox's fallback, so check a second unprivileged user.
    other = next((entry for entry in pwd.getpwall() if entry.pw_name in ("mail", "daemon")), None)
    if other is None:
        pytest.skip("neither 'mail' nor 'daemon' user exists")
    server = make_server(run_as=other.pw_name)
    assert proc_status_ids(server.pid, "Uid") == [other.pw_uid] * 4
    assert_delivery_works(server)


def test_smtp_and_pop3_work_after_privilege_drop(root_server):
    _, small = deliver(root_server, ALICE)
    _, large = deliver(root_server, ALICE, body=b"large message line\r\n" * 20_000)  # > spool threshold
    with smtp_connect(root_server, "submissions") as smtp:
        smtp.login(BOB, PASSWORDS[BOB])
        assert smtp.sendmail(BOB, [ALICE], small) == {}
    contents = [split_trace(raw).content for raw in fetch_inbox(root_server, ALICE)]
    assert contents == [small, large, small]


# -- signals -------------------------------------------------------------------

def test_sighup_keeps_open_sessions_and_service(server):
    deliver(server, ALICE)
    pop = pop3s_login(server, ALICE)
    smtp = SmtpClient(server.port("smtp"))
    try:
        smtp.greet()
        assert pop.stat()[0] == 1

        server.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert server.running, "server died on SIGHUP"

        assert pop.noop().startswith(b"+OK")
        assert len(pop.retr(1)[1]) > 0
        smtp.expect(f"MAIL FROM:<{BOB}>", 250)
        smtp.expect(f"RCPT TO:<{BOB}>", 250)
        smtp.expect("DATA", 354)
        assert smtp.send(b"Subject: across reload\r\n\r\nhi\r\n.\r\n")
        assert smtp.reply().code == 250
    finally:
        pop.quit()
        smtp.close()
    assert len(fetch_inbox(server, BOB)) == 1
    assert_delivery_works(server)


def make_certificate(openssl: str, directory: Path, common_name: str) -> tuple[Path, Path]:
    directory.mkdir()
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN={common_name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    key.chmod(0o644)  # a throwaway test key, readable after the server drops root
    return cert, key


def served_certificate(port: int) -> bytes:
    with socket.create_connection((HOST, port), timeout=IO_TIMEOUT) as raw:
        with insecure_tls_context().wrap_socket(raw) as tls:
            return tls.getpeercert(binary_form=True)


def der(cert_path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert_path.read_text())


def test_sighup_reloads_certificate(make_server, server_dir):
    openssl = require_tool("openssl")
    # In server_dir, so that the server can read them after dropping root.
    first = make_certificate(openssl, server_dir / "first", "first.test")
    second = make_certificate(openssl, server_dir / "second", "second.test")
    cert, key = server_dir / "cert.pem", server_dir / "key.pem"
    shutil.copy(first[0], cert)
    shutil.copy(first[1], key)

    server = make_server(tls=(cert, key))
    assert served_certificate(server.port("pop3s")) == der(first[0])
    assert served_certificate(server.port("submissions")) == der(first[0])

    for source, target in ((second[0], cert), (second[1], key)):
        shutil.copy(source, target.with_suffix(".new"))
        os.replace(target.with_suffix(".new"), target)
    server.send_signal(signal.SIGHUP)

    deadline = time.monotonic() + 5
    while served_certificate(server.port("pop3s")) != der(second[0]):
        assert time.monotonic() < deadline, "certificate not reloaded after SIGHUP"
        time.sleep(0.2)
    assert served_certificate(server.port("submissions")) == der(second[0])


def test_sighup_reloads_limits(make_server):
    server = make_server(limits={"max_message_size": 100000})
    with smtp_connect(server) as smtp:
        smtp.ehlo()
        assert smtp.esmtp_features.get("size") == "100000"

    server.limits["max_message_size"] = 50000
    server.write_config()
    server.send_signal(signal.SIGHUP)

    deadline = time.monotonic() + 5
    while True:
        with smtp_connect(server) as smtp:
            smtp.ehlo()
            if smtp.esmtp_features.get("size") == "50000":
                break
        assert time.monotonic() < deadline, "max_message_size not reloaded after SIGHUP"
        time.sleep(0.2)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_stop_with_open_sessions_exits_zero(make_server, signum):
    grace = 2
    server = make_server(limits={"shutdown_grace_secs": grace})
    smtp = SmtpClient(server.port("smtp"))
    pop = pop3s_login(server, ALICE)
    try:
        smtp.greet()
        started = time.monotonic()
        server.stop(signum, timeout=grace + 10)  # asserts exit status 0
        assert time.monotonic() - started < grace + 5, "shutdown ignored the grace period"
        # The idle SMTP client is told, then disconnected.
        reply = smtp.reply()
        assert reply is not None, "no goodbye before the close"
        assert (reply.code, reply.text) == (421, b"4.3.2 mx.test Service shutting down"), reply
        assert smtp.at_eof()
    finally:
        smtp.close()
        pop.close()


def test_sigterm_on_idle_server_exits_zero(server):
    smtp_port = server.port("smtp")
    server.stop()  # asserts exit status 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, smtp_port), timeout=IO_TIMEOUT).close()


# -- config check -----------------------------------------------------------------

def config_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [require_binary(), "config", "check", "--config", str(path)],
        capture_output=True, text=True, timeout=60,
    )


def test_config_check_accepts_the_harness_config(make_server):
    server = make_server(start=False)
    result = config_check(server.config_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "config,key,line",
    [
        ('hostname = "mx.test"\ndomains = ["example.org"]\nfrobnicate = true\n', "frobnicate", 3),
        ('hostname = "mx.test"\n\n[limits]\nmax_recipients = 5\nmax_mesage_size = 10\n', "max_mesage_size", 5),
        ('hostname = "mx.test"\n[[listener]]\nkind = "smtp"\nadress = "127.0.0.1"\nport = 0\n', "adress", 4),
    ],
    ids=["top-level", "in-limits", "in-listener"],
)
def test_config_check_names_unknown_key_and_line(tmp_path, config, key, line):
    path = tmp_path / "bad.toml"
    path.write_text(config)
    result = config_check(path)
    assert result.returncode != 0, "config with an unknown key was accepted"
    output = (result.stderr + result.stdout).strip()
    assert len(output.splitlines()) == 1, f"expected one line, got:\n{output}"
    assert key in output
    assert re.search(rf"(line\s*:?\s*{line}\b|:{line}(:\d+)?\b)", output), f"line {line} not named: {output}"
