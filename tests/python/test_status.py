"""`letterbox status`: the running server's state, the queue, the store, the certificate
and the last backup, in text and JSON. The certificate's expiry is compared with what
openssl reads from the same file; the failed login is made with imaplib.
"""

from __future__ import annotations

import calendar
import imaplib
import json
import smtplib
import subprocess
import time

import pytest

from conftest import ALICE, HOST, IO_TIMEOUT, PASSWORDS, make_message, new_token, require_tool


def status(server) -> dict:
    return json.loads(server.cli("status", "--json").stdout)


def test_status_reports_the_server_the_queue_and_the_store(make_server, server_dir):
    openssl = require_tool("openssl")
    backups = server_dir / "backups"
    backups.mkdir()
    backups.chmod(0o777)
    server = make_server(allow_plaintext_on_loopback=True,
                         extra_config=f'\n[backup]\ndir = "{backups}"\n')
    with pytest.raises(imaplib.IMAP4.error):
        imaplib.IMAP4(HOST, server.port("imap")).login(ALICE, "not-the-password")
    # Submission to a remote address: queued (the relay's DNS is a dead port).
    with smtplib.SMTP(HOST, server.port("submission"), timeout=IO_TIMEOUT) as smtp:
        smtp.starttls()
        smtp.login(ALICE, PASSWORDS[ALICE])
        smtp.sendmail(ALICE, ["someone@remote.test"], make_message(new_token(), sender=ALICE, to="someone@remote.test"))
    server.wait_for_log("backup: done", timeout=60)
    held = imaplib.IMAP4(HOST, server.port("imap"))  # one connection open while we look
    deadline = time.monotonic() + 20
    while True:
        s = status(server)
        ready = s["server"] and s["server"]["failed_logins_last_day"] == 1 and s["server"]["connections"] >= 1
        if ready or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    held.logout()
    assert s["server_running"] is True and s["server_status_stale"] is False
    srv = s["server"]
    assert srv["failed_logins_last_day"] == 1, srv
    assert srv["connections"] >= 1
    assert sorted(k for k, _ in srv["listeners"]) == sorted(server.ports), srv["listeners"]
    assert [a for k, a in srv["listeners"] if k == "imap"] == [f"{HOST}:{server.port('imap')}"]
    assert any("auth failure" in line and "user=alice@example.org" in line for line in srv["recent_problems"]), srv
    assert s["queue_messages"] == 1 and s["queue_pending"] + s["queue_deferred"] == 1, s
    assert 0 < s["store_bytes_used"] <= s["store_map_bytes"]
    assert s["disk_free_bytes"] > 0 and s["disk_total_bytes"] >= s["disk_free_bytes"]
    assert s["last_backup"].startswith(str(backups / "letterbox-")) and s["last_backup_age_secs"] < 120
    # The expiry is the certificate's notAfter as openssl reads it.
    cert = server.data_dir / "tls" / "cert.pem"
    end = subprocess.run([openssl, "x509", "-in", str(cert), "-noout", "-enddate"], capture_output=True, text=True,
                         check=True).stdout.strip().split("=", 1)[1]
    assert s["certificate_expires"] == calendar.timegm(time.strptime(end, "%b %d %H:%M:%S %Y GMT"))
    text = server.cli("status").stdout.splitlines()
    assert text[0] == "letterbox 0.1.0"
    assert any(l.startswith("server: running 0.1.0 since ") for l in text), text
    assert "failed logins in the last day: 1" in text
    assert any(l.startswith("queue: 1 messages, ") for l in text), text
    assert any(l.startswith("certificate: expires in ") for l in text), text
    server.stop()
    stopped = status(server)
    assert stopped["server_running"] is False and stopped["server"] is None
    assert "server: not running" in server.cli("status").stdout.splitlines()


def _probe_config(server, extra: list[tuple[str, int]]) -> str:
    """The server's config with its real ports (it binds port 0), plus `extra` listeners."""
    lines = [f'hostname = "mx.test"', f'data_dir = "{server.data_dir}"']
    for kind, port in [*server.ports.items(), *extra]:
        lines += ["", "[[listener]]", f'kind = "{kind}"', f'address = "{HOST}"', f"port = {port}"]
    return "\n".join(lines) + "\n"


def _probe(server, server_dir, extra=(), timeout="5") -> subprocess.CompletedProcess:
    config = server_dir / "probe.toml"
    config.write_text(_probe_config(server, list(extra)))
    from conftest import require_binary
    return subprocess.run([require_binary(), "probe", "--timeout", timeout, "--config", str(config)],
                          capture_output=True, text=True, timeout=60)


def test_probe_reads_every_listeners_greeting(server, server_dir):
    """The greetings `letterbox probe` reports are the ones Python's own clients see."""
    import poplib
    import ssl
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP(timeout=IO_TIMEOUT) as smtp:
        code, text = smtp.connect(HOST, server.port("smtp"))
        smtp_greeting = f"{code} {text.decode()}"
    with smtplib.SMTP_SSL(timeout=IO_TIMEOUT, context=insecure) as smtp:
        smtp._host = HOST  # connect() alone leaves the TLS server name empty
        code, text = smtp.connect(HOST, server.port("submissions"))
        submissions_greeting = f"{code} {text.decode()}"
    imap = imaplib.IMAP4(HOST, server.port("imap"))
    imap_greeting = imap.welcome.decode()
    imap.logout()
    pop = poplib.POP3(HOST, server.port("pop3"), timeout=IO_TIMEOUT)
    pop_greeting = pop.getwelcome().decode()
    pop.quit()

    result = _probe(server, server_dir)
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert len(lines) == len(server.ports), lines
    assert f"smtp {HOST}:{server.port('smtp')}: ok ({smtp_greeting})" in lines
    assert f"submissions {HOST}:{server.port('submissions')}: ok ({submissions_greeting})" in lines
    assert f"imap {HOST}:{server.port('imap')}: ok ({imap_greeting})" in lines
    assert f"pop3 {HOST}:{server.port('pop3')}: ok ({pop_greeting})" in lines
    assert any(line.startswith(f"managesieve {HOST}:{server.port('managesieve')}: ok (OK ") for line in lines), lines


def test_probe_fails_on_a_wrong_silent_or_missing_listener(server, server_dir):
    import socket
    import threading
    wrong = socket.create_server((HOST, 0))
    silent = socket.create_server((HOST, 0))
    closed = socket.create_server((HOST, 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    held = []

    def answer(sock, text):
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            held.append(conn)
            if text:
                conn.sendall(text)

    for sock, text in ((wrong, b"421 mx.test busy\r\n"), (silent, b"")):
        threading.Thread(target=answer, args=(sock, text), daemon=True).start()
    extra = [("submission", wrong.getsockname()[1]), ("imap", silent.getsockname()[1]),
             ("pop3", closed_port)]
    result = _probe(server, server_dir, extra, timeout="1")
    wrong.close()
    silent.close()
    assert result.returncode == 1, result
    lines = result.stdout.splitlines()
    assert f'submission {HOST}:{extra[0][1]}: FAILED (greeted with "421 mx.test busy", not 220)' in lines
    assert f"imap {HOST}:{extra[1][1]}: FAILED (no answer within 1 s)" in lines
    assert any(line.startswith(f"pop3 {HOST}:{closed_port}: FAILED (Connection refused") for line in lines), lines
    assert sum(": ok (" in line for line in lines) == len(server.ports)
    assert f"3 of {len(server.ports) + 3} listeners did not answer" in result.stderr
