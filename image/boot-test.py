#!/usr/bin/env python3
"""Boot test of the letterbox SD image under qemu -M virt (run by scripts/test-image).

    boot-test.py IMAGE WORKDIR

Boots a copy of IMAGE, enlarged to a 2 GiB card, from the same virtual disk five times (the
Pi 5's image three: up to the confirmed update) and drives it the way a person would: over
the serial console (first-boot setup, root login, admin commands, poweroff), SMTP, POP3 and
IMAP on forwarded ports, and SSH with a key given to the setup. Between the boots: /data
grows to the card; a signed update is installed over SSH and confirmed; an update whose
letterbox exits at start is installed and rolled back by the box itself. An image with
Wi-Fi joins a WPA2 network on simulated radios (WORKDIR/wifi-test.img, a second, read-only
disk, brings mac80211_hwsim and Debian's hostapd). Exits non-zero with one "boot-test:
FAIL: ..." line (and the end of the serial log) on the first failure.

qemu does not run the Pi firmware, so this test does its part: before every boot it reads
slot.txt on the boot partition ("os_prefix=a/") and boots that slot's kernel, initramfs and
cmdline.txt, as the firmware would (a prefix without a kernel is ignored, as there).

The guest network is qemu's user mode with restrict=on: the guest cannot reach anything; the
host reaches it only through the forwarded ports on 127.0.0.1. qemu accepts a forwarded
connection before the guest listens, so readiness is the SMTP banner, never a connect.
"""

import atexit
import base64
import gzip
import hashlib
import imaplib
import json
import os
import poplib
import re
import shutil
import signal
import smtplib
import ssl
import struct
import subprocess
import sys
import time
import uuid
from email.message import EmailMessage

from boot_guest import (BOOT_TIMEOUT, CPU, GUEST_PORTS, POWEROFF_TIMEOUT, Console, Failure, Guest,
                        boot_partition, extract_boot_files, fat_copy_out, free_port, log,
                        wait_for_banner)  # fmt: skip

# Everything the test types or expects in one place.
DOMAIN = "example.org"
ALICE, ALICE_PASSWORD = "alice@example.org", "alice-Secret-1"
BOB, BOB_PASSWORD = "bob@example.org", "bob-Secret-2"
MIGRATED_DOMAIN = "migrated.test"  # added by the broken update's "migration"
WIFI_SETUP = ("letterbox test net", "wifi-Secret-4 x", "GB")  # answered in the setup
WIFI_TXT = ("Cafe \"Uno\" 5G", "second net's pass", "DE")  # wifi.txt before the 2nd boot
ROOT_PASSWORD = "root-Secret-3"
SETUP_DIALOGUE = [  # (the end of the prompt, the answer), in order
    ("Press Enter to begin: ", ""),
    ("Mail domain (the part after the @): ", DOMAIN),
    (f"Host name of this server [mail.{DOMAIN}]: ", ""),
    (f"First user's address (also the login), e.g. you@{DOMAIN}: ", ALICE),
    (f"Password for {ALICE}: ", ALICE_PASSWORD),
    ("Repeat the password: ", ALICE_PASSWORD),
    ("Root password (console and SSH): ", ROOT_PASSWORD),
    ("Repeat the root password: ", ROOT_PASSWORD),
    ("SSH public key for root (one line; empty for none): ", None),  # None: the test's key
    ("Wi-Fi network name (empty for none: cable only): ", WIFI_SETUP[0]),
    (f"Wi-Fi password for {WIFI_SETUP[0]}: ", WIFI_SETUP[1]),
    ("Repeat the Wi-Fi password: ", WIFI_SETUP[1]),
    ("Wi-Fi country (two letters, e.g. GB, DE, US): ", WIFI_SETUP[2]),
]

CARD_BYTES = 2 << 30  # the disk is enlarged to this before the first boot
ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The arm64 letterbox under qemu-user signs the updates (make-update, `letterbox signature`).
SIGNER = f"qemu-aarch64-static {ROOT_DIR}/out/letterbox-aarch64-unknown-linux-musl"

# Page size of each image's kernel (KiB): Debian's Pi 5 kernel uses 16 KiB pages.
PAGE_KIB = {"pi": 4, "pi5": 16}
# The qemu-user variant (LMDB without robust mutexes) makes a store with the host's 4 KiB pages.
QEMU_USER = f"qemu-aarch64-static {ROOT_DIR}/out/letterbox-aarch64-unknown-linux-musl-qemu-user"
WHOLE_TEST_TIMEOUT = 1200  # everything, to stay under 20 minutes

def send_mail(port, recipient, subject):
    message = EmailMessage()
    message["From"] = "tester@example.net"
    message["To"] = recipient
    message["Subject"] = subject
    message["Message-ID"] = f"<{uuid.uuid4()}@example.net>"
    message.set_content(f"Hello {recipient}, this is {subject}.\n")
    with smtplib.SMTP("127.0.0.1", port, local_hostname="tester.example.net", timeout=60) as smtp:
        refused = smtp.send_message(message)
    if refused:
        raise Failure(f"SMTP refused {refused}")


def pop3_subjects(port, user, password):
    """Logs in over POP3 after STLS (letterbox requires TLS for the login) and returns the
    subjects of all messages, leaving them on the server."""
    context = ssl._create_unverified_context()  # the appliance's certificate is self-signed
    pop = poplib.POP3("127.0.0.1", port, timeout=60)
    try:
        pop.stls(context=context)
        pop.user(user)
        pop.pass_(password)
        count, _ = pop.stat()
        subjects = []
        for number in range(1, count + 1):
            _, lines, _ = pop.retr(number)
            for line in lines:
                if line.lower().startswith(b"subject:"):
                    subjects.append(line.split(b":", 1)[1].strip().decode())
        return subjects
    finally:
        pop.quit()


def imap_subjects(port, user, password):
    """Logs in over IMAP after STARTTLS and returns the subjects in INBOX (read-only)."""
    context = ssl._create_unverified_context()  # the appliance's certificate is self-signed
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    try:
        imap.starttls(ssl_context=context)
        imap.login(user, password)
        imap.select("INBOX", readonly=True)
        _, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = []
        for item in data:
            if isinstance(item, tuple):
                header = item[1].decode().strip()
                if header.lower().startswith("subject:"):
                    subjects.append(header.split(":", 1)[1].strip())
        return subjects
    finally:
        imap.logout()


def expect_subject(ports, user, password, subject):
    subjects = pop3_subjects(ports["pop3"], user, password)
    if subject not in subjects:
        raise Failure(f"POP3: {user} has {subjects}, not {subject!r}")
    log(f"POP3 (STLS): {user} has {subject!r}")
    subjects = imap_subjects(ports["imap"], user, password)
    if subject not in subjects:
        raise Failure(f"IMAP: {user} has {subjects}, not {subject!r}")
    log(f"IMAP (STARTTLS): {user} has {subject!r}")


def ssh(ports, key, command):
    result = ssh_run(ports, key, command)
    if result.returncode != 0:
        raise Failure(f"ssh `{command}` exited with {result.returncode}: "
                      f"{result.stderr.strip()}")
    return result.stdout


def ssh_run(ports, key, command, stdin_path=None):
    """Runs a command over ssh; stdout and stderr come back as text."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        result = subprocess.run(
            ["ssh", "-i", key, "-p", str(ports["ssh"]), "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "ConnectTimeout=30", "-o", "LogLevel=ERROR", "root@127.0.0.1", command],
            stdin=stdin, capture_output=True, timeout=300,
        )  # fmt: skip
    finally:
        if stdin_path:
            stdin.close()
    return subprocess.CompletedProcess(result.args, result.returncode,
                                       result.stdout.decode(errors="replace"),
                                       result.stderr.decode(errors="replace"))  # fmt: skip


def ssh_password(ports, password):
    """Logs in over ssh as root with a password only (dropbear checks it with musl's
    crypt() against the setup's SHA-512 hash); the exit status and what the command said."""
    result = subprocess.run(
        ["sshpass", "-p", password, "ssh", "-p", str(ports["ssh"]),
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password",
         "-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=30", "-o", "LogLevel=ERROR",
         "root@127.0.0.1", "echo @@password-login"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return result.returncode, result.stdout.strip()


def check_ssh_passwords(ports):
    status, output = ssh_password(ports, ROOT_PASSWORD)
    if status != 0 or output != "@@password-login":
        raise Failure(f"ssh with root's password: status {status}, output {output!r}")
    status, output = ssh_password(ports, ROOT_PASSWORD + "x")
    if status != 255 or output:
        raise Failure(f"ssh with a wrong password was not refused: status {status}, {output!r}")
    log("ssh (password): root's password logs in, a wrong one is refused")


def ssh_status(ports, key):
    return json.loads(ssh(ports, key, "letterbox status --json"))


def expect_login_status(guest, slot):
    """The profile shows `letterbox status` at every terminal login."""
    if not re.search(rb"letterbox [^\r\n]*, slot " + slot.encode() + rb"\r?\n", guest.output):
        raise Failure(f"the console login did not show the status (slot {slot})")


def poweroff(guest):
    """poweroff on the root shell; letterbox must drain and /data be left clean."""
    guest.send("poweroff")
    guest.expect("letterbox: letterbox stopped", POWEROFF_TIMEOUT, "letterbox stopping")
    guest.expect("letterbox: /data is clean", POWEROFF_TIMEOUT, "/data unmounted")
    status = guest.wait_exit(POWEROFF_TIMEOUT)
    log(f"poweroff: letterbox stopped, /data clean, qemu exited with {status}")


def first_boot(guest, ports, key, subject, image):
    """Setup over the serial console, mail in and out, admin over the console and SSH."""
    dialogue = SETUP_DIALOGUE if image.wifi else [p for p in SETUP_DIALOGUE if "Wi-Fi" not in p[0]]
    for number, (prompt, answer) in enumerate(dialogue):
        guest.expect(prompt, BOOT_TIMEOUT, f"setup prompt {prompt!r}")
        if number == 0:
            log(f"first boot: setup offered {guest.elapsed():.2f} s after qemu started")
        guest.send(read_public_key(key) if answer is None else answer)
    guest.expect("Done. letterbox is starting", BOOT_TIMEOUT, "the end of the setup")
    if any(p.encode() in guest.output for p in (ALICE_PASSWORD, ROOT_PASSWORD, WIFI_SETUP[1])):
        raise Failure("the setup echoed a password on the console")
    log(f"first boot: setup done after {guest.elapsed():.1f} s (passwords not echoed)")
    seconds, banner = wait_for_banner(ports["smtp"], guest)
    log(f"first boot: SMTP banner {seconds:.2f} s after qemu started (setup included): {banner}")

    console = Console(guest, ROOT_PASSWORD)
    console.login()
    check_data_grown(guest, console)
    if image.wifi:
        check_wifi_conf(console, *WIFI_SETUP, "the setup")
    elif b"Wi-Fi" in guest.output:
        raise Failure("the setup of an image without Wi-Fi asked for a Wi-Fi network")
    # The guest's network is restricted (no DNS), so the inbound SPF/DKIM/DMARC checks
    # of port 25 would only wait for timeouts: turn them off, live, with SIGHUP.
    console.run("printf '\\n[inbound]\\nenabled = false\\n' >> /data/letterbox.toml"
                " && kill -HUP $(pidof letterbox) && sleep 1")
    log("console: inbound checks off (no DNS in the test network), configuration reloaded")

    send_mail(ports["smtp"], ALICE, subject)
    log(f"SMTP: delivered {subject!r} to {ALICE}")
    expect_subject(ports, ALICE, ALICE_PASSWORD, subject)

    status = console.run("printf '@@%s %s\\n' UID \"$(grep Uid /proc/$(pidof letterbox)/status)\"")
    uids = re.search(r"@@UID Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status)
    if not uids or "0" in uids.groups():
        raise Failure(f"letterbox is not running as non-root: {status.strip()!r}")
    log(f"console: letterbox runs as uid {' '.join(uids.groups())} (real, effective, saved, fs)")
    check_page_size(console, image.board)

    console.run(f"printf '%s\\n' '{BOB_PASSWORD}' | letterbox user add {BOB} --password-stdin")
    log(f"console: letterbox user add {BOB}")
    send_mail(ports["smtp"], BOB, subject + " for bob")
    expect_subject(ports, BOB, BOB_PASSWORD, subject + " for bob")

    users = ssh(ports, key, "letterbox user list").split()
    if ALICE not in users or BOB not in users:
        raise Failure(f"ssh letterbox user list gave {users}")
    log(f"ssh (key from the setup): letterbox user list -> {' '.join(users)}")
    check_ssh_passwords(ports)
    poweroff(guest)


def check_wifi_conf(console, ssid, passphrase, country, source):
    """/data/etc/wpa_supplicant.conf: root's alone, the network in hex, and the WPA key that
    Python's own PBKDF2 derives from the passphrase (never the passphrase)."""
    text = console.run("stat -c '@@MODE %a %U' /data/etc/wpa_supplicant.conf; "
                       "cat /data/etc/wpa_supplicant.conf")  # fmt: skip
    psk = hashlib.pbkdf2_hmac("sha1", passphrase.encode(), ssid.encode(), 4096, 32).hex()
    for want in ("@@MODE 600 root", f"country={country}", f"\tssid={ssid.encode().hex()}",
                 "\tkey_mgmt=WPA-PSK", f"\tpsk={psk}"):  # fmt: skip
        if want not in text:
            raise Failure(f"wpa_supplicant.conf from {source} lacks {want!r}:\n{text}")
    if passphrase in text:
        raise Failure(f"wpa_supplicant.conf from {source} holds the passphrase")
    log(f"Wi-Fi: {source} wrote /data/etc/wpa_supplicant.conf (0600 root) for {ssid!r}, "
        "key as Python's PBKDF2 derives it")


def write_wifi_txt(disk):
    """wifi.txt on the FAT partition, as a user would write it on another computer."""
    ssid, passphrase, country = WIFI_TXT
    text = (f"# Wi-Fi for letterbox\r\nssid = \"{ssid}\"\r\npassword = {passphrase}\r\n"
            f"country = {country.lower()}\r\n")  # fmt: skip
    path = disk + ".wifi.txt"
    with open(path, "w", newline="") as f:
        f.write(text)
    subprocess.run(["mcopy", "-o", "-i", boot_partition(disk), path, "::/wifi.txt"], check=True)


def check_data_grown(guest, console):
    """/data fills the enlarged card: the partition and the file system grew at first boot."""
    if not re.search(rb"data partition /dev/vda2 grown from \d+ MiB to \d+ MiB", guest.output):
        raise Failure("no 'data partition ... grown' line at the first boot")
    size = console.run("echo @@PART $(cat /sys/class/block/vda2/start /sys/class/block/vda2/size)"
                       " $(df -m /data | awk 'NR == 2 { print $2 }')")  # fmt: skip
    start, sectors, df_mib = map(int, re.search(r"@@PART (\d+) (\d+) (\d+)", size).groups())
    # The partition ends where the card does (4 MiB aligned), and ext4 fills it (df counts
    # what is left after the journal and the inode tables: about 7 %).
    if (start + sectors) * 512 != CARD_BYTES or df_mib < sectors // 2048 * 0.9:
        raise Failure(f"/data: partition {start}+{sectors} sectors, file system {df_mib} MiB, "
                      f"on a {CARD_BYTES >> 20} MiB card")
    log(f"first boot: /data grew to the 2 GiB card: partition {sectors // 2048} MiB, "
        f"file system {df_mib} MiB (df)")


def second_boot(guest, ports, subject, key, updates, image, workdir):
    """The configured system: no setup, the same mail; then the good update over SSH."""
    seconds, banner = wait_for_banner(ports["smtp"], guest)
    log(f"second boot: SMTP banner {seconds:.2f} s after qemu started (goal <= 3 s)")
    expect_subject(ports, ALICE, ALICE_PASSWORD, subject)
    expect_subject(ports, BOB, BOB_PASSWORD, subject + " for bob")
    console = Console(guest, ROOT_PASSWORD)
    console.login()
    if b"first-boot setup" in guest.output:
        raise Failure("the first-boot setup ran again on a configured system")
    if image.wifi:
        check_wifi(console)
    if PAGE_KIB[image.board] != 4:
        check_store_from_4k_pages(ports, key, workdir)
    saved = console.run("cat /data/clock")
    log(f"console: login prompt (no setup); clock saved at the last stop: {saved.split()[-1]}")
    status = ssh_status(ports, key)
    if status["slot"] != "a" or status["image"] != updates["original"]:
        raise Failure(f"status says slot {status['slot']}, image {status['image']}")
    log(f"status: slot a, image {status['image']}; shown at login too")
    expect_login_status(guest, "a")
    refused_updates(ports, key, updates)
    began = time.monotonic()
    install_update(ports, key, updates["good"])
    guest.wait_exit(POWEROFF_TIMEOUT)
    log(f"update: installed over ssh and rebooted in {time.monotonic() - began:.1f} s")
    return seconds, began


def check_wifi(console):
    """wifi.txt was imported, the bundle unpacked and its wpa_supplicant ran; wifi.txt is
    gone from the boot partition."""
    check_wifi_conf(console, *WIFI_TXT, "wifi.txt")
    # Wi-Fi is configured: the bundle unpacks and its wpa_supplicant runs on the image (the
    # virt machine has no radio, so it stops there).
    deadline = time.monotonic() + 60
    wifi_log = ""
    while "this board has no Wi-Fi interface" not in wifi_log and time.monotonic() < deadline:
        time.sleep(2)
        wifi_log = console.run("logread | grep ' wifi: '")
    if not re.search(r"wifi: wpa_supplicant v2\.\d+ is ready", wifi_log) or \
            "this board has no Wi-Fi interface" not in wifi_log:
        raise Failure(f"the Wi-Fi start did not run its course:\n{wifi_log}")
    log("Wi-Fi: the bundle unpacked and its wpa_supplicant runs on the image; the virt "
        "machine has no radio")
    listing = console.run("/usr/libexec/letterbox/slot.sh mount && ls /run/boot").split()
    if "slot.txt" not in listing or "wifi.txt" in listing:
        raise Failure(f"wifi.txt is still on the boot partition after its import: {listing}")
    log("Wi-Fi: wifi.txt was wiped and removed from the boot partition")
    check_wifi_joins(console)


# The test disk's tools (scripts/build-image --wifi-test-disk), mounted on /run/wifitest.
HOSTAPD = ("/run/wifitest/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1 --library-path "
           "/run/wifitest/lib/aarch64-linux-gnu:/run/wifitest/usr/lib/aarch64-linux-gnu "
           "/run/wifitest/usr/sbin/hostapd")  # fmt: skip


def check_wifi_joins(console):
    """The image's wpa_supplicant joins a WPA2 network with the key `letterbox wifi` derived:
    two simulated radios (mac80211_hwsim, from the test disk), Debian's hostapd on wlan1 as
    the access point, given the passphrase itself, and the image's own `wifi.sh start`, which
    takes the first radio, wlan0. hostapd completes the 4-way handshake only when both sides
    hold the same key."""
    ssid, passphrase, country = WIFI_TXT
    # (The console echoes the typed line, wrapped: what is checked is typed in two halves.)
    abi = re.findall(r"@@ABI (\S+) (\S+)", console.run(
        "mkdir -p /run/wifitest && mount -o ro \"$(findfs LABEL=wifitest)\" /run/wifitest && "
        "echo \"@@\"\"ABI $(cat /run/wifitest/kernel-abi) $(uname -r)\""))
    if len(abi) != 1 or abi[0][0] != abi[0][1]:
        raise Failure(f"the Wi-Fi test disk's modules are not for the image's kernel: {abi}")
    console.run("for m in $(cat /run/wifitest/modules.order); do "
                "n=$(basename $m .ko | tr - _); grep -q \"^$n \" /proc/modules || "
                "insmod /run/wifitest/$m; done; n=0; "
                "while [ ! -d /sys/class/net/wlan1 ] && [ $n -lt 50 ]; do sleep 0.1; "
                "n=$((n + 1)); done")  # fmt: skip
    macs = re.findall(r"@@MAC ([0-9a-f:]{17}) ([0-9a-f:]{17})", console.run(
        "echo \"@@\"\"MAC $(cat /sys/class/net/wlan0/address) "
        "$(cat /sys/class/net/wlan1/address)\""))
    if len(macs) != 1:
        raise Failure("mac80211_hwsim made no radios wlan0 and wlan1")
    (station_mac, access_point_mac), = macs
    conf = (f"interface=wlan1\ndriver=nl80211\nssid2={ssid.encode().hex()}\n"
            f"country_code={country}\nhw_mode=g\nchannel=6\nwpa=2\nwpa_key_mgmt=WPA-PSK\n"
            f"rsn_pairwise=CCMP\nwpa_passphrase={passphrase}\n")  # fmt: skip
    encoded = base64.b64encode(conf.encode()).decode()
    console.run(f"echo {encoded} | base64 -d >/run/hostapd.conf && {HOSTAPD} -B -t "
                "-f /run/hostapd.log -P /run/hostapd.pid /run/hostapd.conf")  # fmt: skip
    console.run("/usr/libexec/letterbox/wifi.sh start")
    deadline = time.monotonic() + 60
    while True:
        joined = console.run("logread | grep -F 'CTRL-EVENT-''CONNECTED' || true; "
                             "grep -F 'EAPOL-4WAY-''HS-COMPLETED' /run/hostapd.log || true")
        station = re.search(r"wlan0: CTRL-EVENT-CONNECTED - Connection to ([0-9a-f:]{17}) "
                            r"completed", joined)  # fmt: skip
        access_point = re.search(r"wlan1: EAPOL-4WAY-HS-COMPLETED ([0-9a-f:]{17})", joined)
        if station and access_point:
            if (station.group(1), access_point.group(1)) != (access_point_mac, station_mac):
                raise Failure(f"Wi-Fi: wlan0 ({station_mac}) and wlan1 ({access_point_mac}) "
                              f"were not the two ends:\n{joined}")
            break
        if time.monotonic() > deadline:
            raise Failure("the image's wpa_supplicant did not join the simulated network:\n"
                          + console.run("logread | grep -e wpa_supplicant -e hostapd; "
                                        "cat /run/hostapd.log"))  # fmt: skip
        time.sleep(2)
    log(f"Wi-Fi: the image's wpa_supplicant joined {ssid!r} (WPA2-PSK, CCMP) at "
        f"{station.group(1)} on a simulated radio: Debian's hostapd, given the passphrase, "
        f"completed the 4-way handshake with {access_point.group(1)}")


def lmdb_page_size(header):
    """mm_psize: the 32-bit word at byte 40 of an LMDB file's first meta page."""
    return int.from_bytes(header[40:44], "little")


def backup_store_page_size(path):
    """The LMDB page size of the store in a letterbox backup (gzip around the stream of
    src/backup/archive.rs: "LETTERBOX-BACKUP 1\n", then per file 'F', the name's length
    (u16 BE), the name, the mode (u32 BE), frames of a u32 BE length and bytes, length 0)."""
    with gzip.open(path, "rb") as f:
        if f.readline() != b"LETTERBOX-BACKUP 1\n":
            raise Failure(f"{path} is not a letterbox backup")
        while f.read(1) == b"F":
            (size,) = struct.unpack(">H", f.read(2))
            name = f.read(size).decode()
            f.read(4)
            first = b""
            while (length := struct.unpack(">I", f.read(4))[0]) != 0:
                data = f.read(length)
                first = first or data
            if name == "mail/data.mdb":
                return lmdb_page_size(first)
    raise Failure(f"no mail/data.mdb in {path}")


def check_page_size(console, board):
    """The kernel's page size (as the running letterbox's mappings show it), and LMDB made
    the store with it."""
    out = console.run("echo @@PAGES $(awk '/^KernelPageSize:/ { print $2; exit }' "
                      "/proc/$(pidof letterbox)/smaps) "
                      "$(od -A n -t u4 -j 40 -N 4 /data/letterbox/mail/data.mdb)")  # fmt: skip
    match = re.search(r"@@PAGES (\d+) (\d+)", out)
    if not match:
        raise Failure(f"no page sizes from the console:\n{out}")
    kib, psize = map(int, match.groups())
    if kib != PAGE_KIB[board] or psize != kib * 1024:
        raise Failure(f"the {board} image: {kib} KiB pages, LMDB pages of {psize} bytes; "
                      f"expected {PAGE_KIB[board]} KiB")
    log(f"console: the kernel's pages are {kib} KiB, and LMDB made the store with {psize}-byte "
        "pages")


def check_store_from_4k_pages(ports, key, workdir):
    """A store made on 4 KiB pages (a backup from the Pi 3/4 image or a PC) reads on 16 KiB
    ones: the arm64 letterbox under qemu-user on this host (4 KiB pages) imports two
    messages and backs its store up; the box verifies that backup, which opens its LMDB."""
    work = os.path.join(workdir, "store-4k")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    config = os.path.join(work, "letterbox.toml")
    with open(config, "w") as f:
        f.write(f'hostname = "pc.{DOMAIN}"\ndomains = ["{DOMAIN}"]\n')
    mbox = os.path.join(work, "old.mbox")
    with open(mbox, "w") as f:
        for n in (1, 2):
            f.write(f"From carol@{DOMAIN} Mon Nov 30 10:0{n}:00 2026\nFrom: carol@{DOMAIN}\n"
                    f"Subject: from 4 KiB pages {n}\n\nmessage {n}\n\n")
    run = QEMU_USER.split() + ["--config", config, "--data", os.path.join(work, "data")]
    backup = os.path.join(work, "store-4k.backup")
    subprocess.run(run + ["user", "add", f"carol@{DOMAIN}", "--password-stdin"],
                   input="carol-Secret-5\n", text=True, check=True, capture_output=True)
    subprocess.run(run + ["import", "mbox", mbox, "--user", f"carol@{DOMAIN}"], check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run(run + ["backup", backup], check=True, capture_output=True)
    psize = backup_store_page_size(backup)
    if psize != 4096:
        raise Failure(f"the backup's store has {psize}-byte pages, not 4096")
    upload = ssh_run(ports, key, "cat > /data/store-4k.backup", stdin_path=backup)
    if upload.returncode != 0:
        raise Failure(f"copying the backup to the box: {upload.stderr.strip()}")
    result = ssh(ports, key, "letterbox verify /data/store-4k.backup; rm /data/store-4k.backup")
    if not re.search(r": 1 accounts, \d+ mailboxes, 2 messages, ", result) or \
            "the backup's store is sound" not in result:
        raise Failure(f"letterbox verify of a store with 4 KiB pages:\n{result}")
    log(f"16 KiB pages: a backup of a store with 4 KiB pages verifies: {result.splitlines()[-2]}")


def refused_updates(ports, key, updates):
    """A damaged, a truncated, an unsigned (keys are configured), an older update and one
    for the other image change nothing."""
    ssh(ports, key, f"mkdir -p /data/update/keys && echo {updates['public_key']} "
                    "> /data/update/keys/test.pub")  # fmt: skip
    for name, why in (("damaged", "does not match its checksum"),
                      ("truncated", "or was cut short"),
                      ("unsigned", "the update is not signed"),
                      ("older", "is older than this system"),
                      ("foreign", updates["foreign_why"])):  # fmt: skip
        if name not in updates:
            continue
        result = ssh_run(ports, key, "letterbox-update -", stdin_path=updates[name])
        if result.returncode != 1 or why not in result.stderr:
            raise Failure(f"letterbox-update of the {name} update: exit {result.returncode}, "
                          f"{result.stderr.strip()!r}")
        log(f"update: the {name} update is refused ({why})")
    boot_files = ssh(ports, key, "/usr/libexec/letterbox/slot.sh mount && cat /run/boot/slot.txt "
                                 "&& ls /run/boot")  # fmt: skip
    if "os_prefix=a/" not in boot_files or "trial.txt" in boot_files:
        raise Failure(f"a refused update changed slot.txt or began a trial:\n{boot_files}")


def install_update(ports, key, path):
    """letterbox-update - over ssh; the box reboots at the end, so ssh may end abruptly."""
    result = ssh_run(ports, key, "letterbox-update -", stdin_path=path)
    if "rebooting into slot" not in result.stderr:
        raise Failure(f"letterbox-update did not reboot: exit {result.returncode}, "
                      f"{result.stderr.strip()!r}")
    for line in result.stderr.strip().splitlines():
        log(f"  box: {line}")


def updated_boot(guest, ports, subject, key, updates, began):
    """The good update: slot b, its version, confirmed, the mail still there; then the
    broken update (when there is one), which the box must roll back by itself."""
    seconds, banner = wait_for_banner(ports["smtp"], guest)
    guest.expect("is confirmed: letterbox answers and the store verifies", BOOT_TIMEOUT,
                 "the new slot confirmed")  # fmt: skip
    log(f"update: slot b confirmed {time.monotonic() - began:.1f} s after letterbox-update "
        f"started (banner {seconds:.2f} s into the boot)")
    expect_subject(ports, ALICE, ALICE_PASSWORD, subject)
    status = ssh_status(ports, key)
    if status["slot"] != "b" or status["image"] != updates["good_version"]:
        raise Failure(f"after the update status says slot {status['slot']}, {status['image']}")
    log(f"status: slot b, image {status['image']}")
    if "broken" not in updates:
        guest.send("")  # a new login prompt: the confirmation was printed after the first
        Console(guest, ROOT_PASSWORD).login()
        poweroff(guest)
        return
    install_update(ports, key, updates["broken"])
    guest.wait_exit(POWEROFF_TIMEOUT)


def broken_boot(guest):
    """The broken slot: letterbox exits at start; the box goes back to slot b and reboots."""
    guest.expect("failed: letterbox exited 3 times at start; going back to slot b",
                 BOOT_TIMEOUT, "the rollback")  # fmt: skip
    log(f"rollback: the broken slot a went back to slot b {guest.elapsed():.1f} s after "
        "qemu started")
    guest.wait_exit(POWEROFF_TIMEOUT)


def rolled_back_boot(guest, ports, subject, key, updates):
    seconds, banner = wait_for_banner(ports["smtp"], guest)
    expect_subject(ports, ALICE, ALICE_PASSWORD, subject)
    expect_subject(ports, BOB, BOB_PASSWORD, subject + " for bob")
    status = ssh_status(ports, key)
    if status["slot"] != "b" or status["image"] != updates["good_version"]:
        raise Failure(f"after the rollback status says slot {status['slot']}, {status['image']}")
    history = ssh(ports, key, "cat /data/update/history")
    if not re.search(r"rolled-back b -> a \(\S+\) letterbox exited 3 times", history):
        raise Failure(f"the update history lacks the rollback:\n{history}")
    if not re.search(r"restored-store /data/letterbox/backups/before-schema-99-from-1-test.mdb "
                     r"\(the migrated store: /data/letterbox/backups/after-trial-\S+\.mdb\)",
                     history):  # fmt: skip
        raise Failure(f"the update history lacks the restored store:\n{history}")
    domains = ssh(ports, key, "letterbox domain list; ls /data/letterbox/backups")
    if MIGRATED_DOMAIN in domains.split() or "after-trial-" not in domains:
        raise Failure(f"the store the broken update migrated was not put back:\n{domains}")
    log("after the rollback: the store of before the broken update's migration is back, the "
        "migrated one kept in backups/after-trial-*.mdb")
    log(f"after the rollback: slot b, image {status['image']}, mail intact; history:")
    for line in history.strip().splitlines():
        log(f"  {line}")
    console = Console(guest, ROOT_PASSWORD)
    console.login()
    poweroff(guest)


def read_public_key(key):
    with open(key + ".pub") as f:
        return f.read().strip()


def boot(number, scenario, boot_files, disk, ports, workdir, test_disk=None):
    """Runs one boot scenario; on failure shows the end of that boot's console."""
    log(f"boot {number}: qemu -M virt (TCG), ports {ports} on 127.0.0.1, "
        f"{boot_files.cmdline.split('letterbox.slot=')[-1].split()[0]!r} slot, "
        f"{boot_files.board} image on {CPU[boot_files.board]}")
    serial_log = os.path.join(workdir, f"serial-{number}.log")
    guest = Guest(boot_files, disk, ports, serial_log, test_disk)
    atexit.register(guest.kill)  # also on an unexpected exception or the whole-test alarm
    try:
        return scenario(guest)
    except BaseException:
        log(f"serial console of boot {number}, last lines (all of it: {serial_log}):")
        print(guest.tail(), flush=True)
        raise
    finally:
        guest.kill()


def check_consoles(workdir):
    """Every console the slot's cmdline.txt names gets the setup and a login (inittab runs
    console.sh on it): qemu replaces them with its own, so this is checked in the files."""
    slot = os.path.join(workdir, "slot-a")
    with open(os.path.join(slot, "cmdline.txt")) as f:
        ttys = [w.split("=", 1)[1].split(",")[0] for w in f.read().split() if w.startswith("console=")]
    inittab = subprocess.run(["cpio", "--quiet", "-i", "--to-stdout", "etc/inittab"],
                             stdin=open(os.path.join(slot, "initramfs"), "rb"),
                             capture_output=True, check=True).stdout.decode()  # fmt: skip
    missing = [t for t in ttys if f"::respawn:/usr/libexec/letterbox/console.sh {t}\n" not in inittab]
    if not ttys or missing:
        raise Failure(f"cmdline.txt names consoles {ttys}; inittab has no console.sh for {missing}")
    log(f"consoles of cmdline.txt ({', '.join(ttys)}) all get the setup and a login (inittab)")


def prepare_updates(disk, workdir, board, full):
    """The update files the test installs, made by scripts/make-update from the image's own
    slot a: "good" (its initramfs with a later cpio appended that says another version:
    the kernel unpacks both, the later entries win) and "foreign" (for the other image),
    which must be refused; with `full`, also "broken" (good, plus a letterbox whose `serve`
    exits at once) and more that must be refused: "damaged" (one byte of the good one
    flipped), "truncated", "unsigned" and "older"."""
    slot = os.path.join(workdir, "slot-a")
    os.makedirs(slot, exist_ok=True)
    listing = subprocess.run(["mdir", "-b", "-i", boot_partition(disk), "::/a/"],
                             capture_output=True, text=True, check=True).stdout.split()
    for path in listing:
        name = path.rsplit("/", 1)[-1]
        if name and not name.startswith("."):
            fat_copy_out(disk, f"a/{name}", os.path.join(slot, name))
    with open(os.path.join(slot, "version")) as f:
        original = f.read().strip()
    key = os.path.join(workdir, "update.key")
    subprocess.run(f"{SIGNER} signature keygen {key}", shell=True, check=True,
                   capture_output=True)  # fmt: skip
    with open(key + ".pub") as f:
        public_key = f.read().strip()

    def made(name, slot_dir, version, signed=True):
        out = os.path.join(workdir, f"{name}.update")
        subprocess.run([f"{ROOT_DIR}/scripts/make-update", slot_dir, version, out] +
                       (["--key", key] if signed else []),
                       check=True, env={**os.environ, "LETTERBOX": SIGNER})  # fmt: skip
        return out

    def variant(name, version, extra_files):
        tree = os.path.join(workdir, f"overlay-{name}")
        files = {"etc/letterbox/version": version + "\n", **extra_files}
        for path, content in files.items():
            os.makedirs(os.path.dirname(os.path.join(tree, path)), exist_ok=True)
            mode = "wb" if isinstance(content, bytes) else "w"
            with open(os.path.join(tree, path), mode) as f:
                f.write(content)
            os.chmod(os.path.join(tree, path), 0o755)
        out_slot = os.path.join(workdir, f"slot-{name}")
        shutil.copytree(slot, out_slot, dirs_exist_ok=True)
        names = "\n".join(sorted(files)) + "\n"
        overlay = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=tree,
                                 input=names.encode(), capture_output=True, check=True).stdout
        with open(os.path.join(out_slot, "initramfs"), "ab") as f:
            f.write(overlay)
        with open(os.path.join(out_slot, "version"), "w") as f:
            f.write(version + "\n")
        return made(name, out_slot, version)

    good_version = original + "-test.good"
    updates = {"original": original, "good_version": good_version, "public_key": public_key}
    updates["good"] = variant("good", good_version, {})
    # Refused before anything is switched, whatever the slot holds: a small slot (the files an
    # update must have, a few bytes each) keeps them quick to make, send and unpack.
    small = os.path.join(workdir, "slot-small")
    os.makedirs(small, exist_ok=True)
    for name in ("vmlinuz", "initramfs", "version"):
        with open(os.path.join(small, name), "w") as f:
            f.write(f"not a real {name}\n")
    shutil.copy(os.path.join(slot, "cmdline.txt"), small)
    # Foreign: sound and signed, but for the other image (the slot's board file says which).
    foreign = os.path.join(workdir, "slot-foreign")
    shutil.copytree(small, foreign, dirs_exist_ok=True)
    other = "pi" if board == "pi5" else "pi5"
    if other != "pi":  # a Pi 3/4 update has none, or "pi" (make-update: the format line)
        with open(os.path.join(foreign, "board"), "w") as f:
            f.write(other + "\n")
    updates["foreign"] = made("foreign", foreign, good_version)
    updates["foreign_why"] = "the update is for " + {
        "pi": "the Pi 3/4 image (letterbox-arm64)", "pi5": "the pi5 image (letterbox-pi5)"}[other]
    if not full:
        log(f"updates: good {good_version} ({os.path.getsize(updates['good'])} bytes), foreign")
        return updates
    real = subprocess.run(["cpio", "--quiet", "-i", "--to-stdout", "usr/bin/letterbox"],
                          stdin=open(os.path.join(slot, "initramfs"), "rb"),
                          capture_output=True, check=True).stdout  # fmt: skip
    # serve exits at start, after doing what a version that migrates the store does first:
    # keep the store as it was (backups/before-schema-*.mdb), then change it (here: a domain
    # the old system must not see once it has put that copy back).
    wrapper = ("#!/bin/sh\n# Broken on purpose by the boot test: serve exits at start.\n"
               'case " $* " in *" serve "*)\n'
               "  d=/data/letterbox\n"
               "  if ! ls $d/backups/before-schema-* >/dev/null 2>&1; then\n"
               "    s=$d/backups/before-schema-99-from-1-test.mdb\n"
               "    mkdir -p $d/backups && cp -p $d/mail/data.mdb $s && touch $s &&\n"
               f"      /usr/lib/letterbox.real domain add {MIGRATED_DOMAIN} >&2\n"
               "  fi\n"
               '  echo "letterbox: broken build" >&2; exit 70 ;;\n'
               "esac\n"
               'exec /usr/lib/letterbox.real "$@"\n')
    updates["broken"] = variant("broken", original + "-test.broken",
                                {"usr/bin/letterbox": wrapper, "usr/lib/letterbox.real": real})
    # Damaged: the good update's members, signed manifest included, with one byte of the
    # initramfs flipped (xz's own check would catch a flip in the compressed file first).
    members = os.path.join(workdir, "damaged")
    os.makedirs(members, exist_ok=True)
    subprocess.run(["tar", "-x", "-J", "-f", updates["good"], "-C", members], check=True)
    names = subprocess.run(["tar", "-t", "-J", "-f", updates["good"]], check=True,
                           capture_output=True, text=True).stdout.split()  # fmt: skip
    with open(os.path.join(members, "initramfs"), "r+b") as f:
        f.seek(os.path.getsize(f.name) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))
    updates["damaged"] = os.path.join(workdir, "damaged.update")
    subprocess.run(f"tar --format=ustar -C {members} -cf - {' '.join(names)} | xz -1 -T1 "
                   f"> {updates['damaged']}", shell=True, check=True)  # fmt: skip
    # Cut short: the first half of the good file.
    updates["truncated"] = os.path.join(workdir, "truncated.update")
    with open(updates["good"], "rb") as f, open(updates["truncated"], "wb") as out:
        out.write(f.read(os.path.getsize(updates["good"]) // 2))
    updates["unsigned"] = made("unsigned", small, good_version, signed=False)
    # Older: signed and sound, but its version is below the running one.
    updates["older"] = made("older", small, "0.0.1+test.older")
    log(f"updates: good {good_version} ({os.path.getsize(updates['good'])} bytes), broken, "
        "damaged, truncated, unsigned, older, foreign; signed with a key made by "
        "`letterbox signature keygen`")
    return updates


def main():
    image, workdir = sys.argv[1], sys.argv[2]
    began = time.monotonic()
    os.makedirs(workdir, exist_ok=True)
    disk = os.path.join(workdir, "disk.img")
    shutil.copyfile(image, disk)  # the built image stays pristine
    os.truncate(disk, CARD_BYTES)  # a bigger card than the image: /data grows at first boot
    key = os.path.join(workdir, "id_ed25519")
    for path in (key, key + ".pub"):
        if os.path.exists(path):
            os.remove(path)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    ports = {name: free_port() for name in GUEST_PORTS}
    subject = f"boot test {uuid.uuid4().hex[:8]}"

    def run(number, scenario, test_disk=None):
        # The firmware's choice is read again before every boot.
        return boot(number, scenario, extract_boot_files(disk, workdir), disk, ports, workdir,
                    test_disk)  # fmt: skip

    try:
        image = extract_boot_files(disk, workdir)  # what the image is: board, Wi-Fi
        # The Pi 5's image runs up to the confirmed update: the refusals that do not depend on
        # the image and the rollback (the same scripts) are the Pi 3/4 image's to run.
        full = image.board == "pi"
        updates = prepare_updates(disk, workdir, image.board, full)
        check_consoles(workdir)
        run(1, lambda guest: first_boot(guest, ports, key, subject, image))
        wifi_disk = None
        if image.wifi:
            write_wifi_txt(disk)
            wifi_disk = os.path.join(workdir, "wifi-test.img")  # made by scripts/test-image
            if not os.path.exists(wifi_disk):
                raise Failure(f"no {wifi_disk}: run scripts/test-image, which makes it")
        seconds, update_began = run(2, lambda g: second_boot(g, ports, subject, key, updates,
                                                               image, workdir), wifi_disk)
        run(3, lambda g: updated_boot(g, ports, subject, key, updates, update_began))
        if full:
            run(4, broken_boot)
            run(5, lambda g: rolled_back_boot(g, ports, subject, key, updates))
    except (Failure, OSError, smtplib.SMTPException, poplib.error_proto,
            subprocess.SubprocessError, json.JSONDecodeError) as e:  # fmt: skip
        log(f"FAIL: {e}" if isinstance(e, Failure) else f"FAIL: {type(e).__name__}: {e}")
        return 1
    log(f"PASS in {time.monotonic() - began:.0f} s (second boot to SMTP banner: {seconds:.2f} s)")
    return 0


def on_alarm(signum, frame):
    raise Failure(f"the whole test took longer than {WHOLE_TEST_TIMEOUT} s")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # still clean up
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(WHOLE_TEST_TIMEOUT)
    sys.exit(main())
