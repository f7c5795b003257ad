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
