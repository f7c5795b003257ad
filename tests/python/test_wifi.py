"""`letterbox wifi`: the appliance's wpa_supplicant configuration. Debian's wpa_passphrase
derives the reference WPA keys; Debian's wpa_supplicant itself parses every file written
(on an interface that does not exist: it reads the configuration, prints the network and
the key it took, and stops at the driver; no radio, no network).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess

import pytest

from conftest import require_binary, require_tool

CASES = [  # (ssid, passphrase)
    ("IEEE", "password"),
    ("Our net", "correct horse battery staple"),
    ('Cafe "Uno" #5', 'p#ss "quoted" \\ back'),
    ("Wärme-Stube", "plain ascii pass"),  # a UTF-8 network name
    (" spaced ", "        "),  # eight spaces: a valid passphrase
]


def reference_psk(ssid: str, passphrase: str) -> str:
    out = subprocess.run([require_tool("wpa_passphrase"), ssid, passphrase],
                         capture_output=True, text=True, check=True).stdout
    return re.search(r"^\s*psk=([0-9a-f]{64})$", out, re.M).group(1)


def parsed_by_wpa_supplicant(conf) -> tuple[str, str]:
    """(ssid, psk hex) as wpa_supplicant read them from `conf`."""
    result = subprocess.run([require_tool("wpa_supplicant"), "-D", "wired", "-i", "lbnone0",
                             "-c", str(conf), "-ddK"], capture_output=True, text=True, timeout=30)
    out = result.stdout + result.stderr
    assert "Failed to read or parse configuration" not in out, out
    ssid = re.search(r"^\s*id=0 ssid='(.*)'$", out, re.M)
    psk = re.search(r"^PSK - hexdump\(len=32\): ((?:[0-9a-f]{2} ?){32})$", out, re.M)
    assert ssid and psk, out
    return ssid.group(1), psk.group(1).replace(" ", "")


def run(*args, stdin=""):
    return subprocess.run([require_binary(), "wifi", *args], input=stdin, capture_output=True,
                          text=True, timeout=30)


@pytest.mark.parametrize("ssid,passphrase", CASES)
def test_set_writes_what_wpa_supplicant_reads_with_the_reference_key(tmp_path, ssid, passphrase):
    conf = tmp_path / "etc" / "wpa_supplicant.conf"
    result = run("set", ssid, "--country", "gb", "--conf", str(conf), stdin=passphrase + "\n")
    assert result.returncode == 0, result
    assert result.stdout == f"Wi-Fi: network {json.dumps(ssid, ensure_ascii=False)} written to {conf}\n"
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600
    text = conf.read_text()
    if passphrase.strip():
        assert passphrase not in text
    assert "country=GB\n" in text
    seen_ssid, seen_psk = parsed_by_wpa_supplicant(conf)
    assert seen_psk == reference_psk(ssid, passphrase)
    # wpa_supplicant prints the SSID's bytes escaped (printf_encode: quote, backslash and
    # anything not printable ASCII).
    printable = "".join("\\" + c if c in '"\\' else c if 32 <= ord(c) < 127
                        else "".join(f"\\x{b:02x}" for b in c.encode()) for c in ssid)
    assert seen_ssid == printable


def test_wifi_txt_is_imported_then_wiped_and_removed(tmp_path):
    wifi_txt = tmp_path / "wifi.txt"
    # As Notepad saves it: a byte-order mark and CRLF line ends.
    wifi_txt.write_bytes('\ufeff# home\r\nssid = "Cafe Uno"\r\npassword = ThisIsAPassword\r\n'
                         'country = de\r\nhidden = yes\r\n'.encode())
    conf = tmp_path / "wpa_supplicant.conf"
    result = run("import", str(wifi_txt), "--conf", str(conf))
    assert result.returncode == 0, result
    assert result.stdout == (f'Wi-Fi: network "Cafe Uno" from {wifi_txt} written to {conf}; '
                             f"{wifi_txt} removed\n")
    assert not wifi_txt.exists()
    text = conf.read_text()
    assert "country=DE\n" in text and "\tscan_ssid=1\n" in text
    assert "ThisIsAPassword" not in text
    assert parsed_by_wpa_supplicant(conf) == ("Cafe Uno", reference_psk("Cafe Uno", "ThisIsAPassword"))


def test_a_bad_wifi_txt_changes_nothing(tmp_path):
    conf = tmp_path / "wpa_supplicant.conf"
    conf.write_text("left alone\n")
    wifi_txt = tmp_path / "wifi.txt"
    wifi_txt.write_text("ssid = home\npassword = short\n")
    result = run("import", str(wifi_txt), "--conf", str(conf))
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        f"{wifi_txt}: a WPA passphrase has 8 to 63 characters, not 5"), result.stderr
    assert wifi_txt.exists() and conf.read_text() == "left alone\n"
    result = run("set", "x" * 33, "--conf", str(conf), stdin="longenough\n")
    assert result.returncode == 1
    assert "the network name must be 1 to 32 bytes, not 33" in result.stderr
