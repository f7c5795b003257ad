#!/usr/bin/env python3
"""Boot test of the letterbox SD image under qemu -M virt (run by scripts/test-image).

    boot-test.py IMAGE WORKDIR

Boots a copy of IMAGE, enlarged to a 2 GiB card, from the same virtual disk five times and
drives it the way a person would: over the serial console (first-boot setup, root login,
admin commands, poweroff), SMTP, POP3 and IMAP on forwarded ports, and SSH with a key given
to the setup. Between the boots: /data grows to the card; a signed update is installed over
SSH and confirmed; an update whose letterbox exits at start is installed and rolled back by
the box itself. Exits non-zero with one "boot-test: FAIL: ..." line (and the end of the
serial log) on the first failure.

qemu does not run the Pi firmware, so this test does its part: before every boot it reads
slot.txt on the boot partition ("os_prefix=a/") and boots that slot's kernel, initramfs and
cmdline.txt, as the firmware would (a prefix without a kernel is ignored, as there).

The guest network is qemu's user mode with restrict=on: the guest cannot reach anything; the
host reaches it only through the forwarded ports on 127.0.0.1. qemu accepts a forwarded
connection before the guest listens, so readiness is the SMTP banner, never a connect.
"""

import atexit
import ctypes
import hashlib
import imaplib
import json
import os
import poplib
import re
import select
import shutil
import signal
import smtplib
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import uuid
from email.message import EmailMessage

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
GUEST_PORTS = {"smtp": 25, "pop3": 110, "imap": 143, "ssh": 22}

CARD_BYTES = 2 << 30  # the disk is enlarged to this before the first boot
ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The arm64 letterbox under qemu-user signs the updates (make-update, `letterbox signature`).
SIGNER = f"qemu-aarch64-static {ROOT_DIR}/out/letterbox-aarch64-unknown-linux-musl"

# Bounded waits, in seconds (TCG on a busy 2-core machine is slow; these are ceilings).
BOOT_TIMEOUT = 180  # qemu start to the setup prompt or the SMTP banner
COMMAND_TIMEOUT = 120  # one shell command on the console
POWEROFF_TIMEOUT = 90  # poweroff to qemu's exit
WHOLE_TEST_TIMEOUT = 1200  # everything, to stay under 20 minutes


class Failure(Exception):
    pass


def log(message):
    print(f"boot-test: {message}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def boot_partition(disk):
    """The mtools address of the FAT partition (partition 1) of the disk image."""
    with open(disk, "rb") as f:
        mbr = f.read(512)
    if mbr[510:512] != b"\x55\xaa":
        raise Failure(f"{disk} has no MBR")
    start_sector = struct.unpack_from("<I", mbr, 446 + 8)[0]  # first entry, LBA start
    return f"{disk}@@{start_sector * 512}"  # mtools: the file system at that byte offset


def fat_read(disk, path):
    result = subprocess.run(["mtype", "-i", boot_partition(disk), f"::/{path}"],
                            capture_output=True)  # fmt: skip
    return result.stdout.decode() if result.returncode == 0 else None


def fat_copy_out(disk, path, dest):
    subprocess.run(["mcopy", "-o", "-n", "-i", boot_partition(disk), f"::/{path}", dest],
                   check=True)  # fmt: skip


def firmware_slot(disk):
    """What the Pi firmware would boot: config.txt includes slot.txt; its os_prefix is
    ignored when no kernel is found under it."""
    if "include slot.txt" not in (fat_read(disk, "config.txt") or ""):
        raise Failure("config.txt does not include slot.txt")
    match = re.search(r"^os_prefix=(\S*)$", fat_read(disk, "slot.txt") or "", re.M)
    prefix = match.group(1) if match else ""
    if prefix and fat_read(disk, prefix + "cmdline.txt") is None:
        prefix = ""
    return prefix


def extract_boot_files(disk, workdir):
    """Copies the kernel, the initramfs and cmdline.txt of the slot the firmware would boot
    out of the image's FAT partition, so the test boots exactly what a Pi would load."""
    prefix = firmware_slot(disk)
    files = {}
    for name in ("vmlinuz", "initramfs", "cmdline.txt"):
        files[name] = os.path.join(workdir, name)
        fat_copy_out(disk, prefix + name, files[name])
    # The Pi's command line with qemu virt's console (the PL011, ttyAMA0) for its consoles.
    with open(files["cmdline.txt"]) as f:
        words = [w for w in f.read().split() if not w.startswith("console=")]
    return files["vmlinuz"], files["initramfs"], " ".join(["console=ttyAMA0"] + words)


def die_with_parent():
    """In qemu's child process: have the kernel kill it when this test dies, even by
    SIGKILL, so no guest outlives the test (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


class Guest:
    """One qemu run: the serial console on stdio pipes, a reader thread that keeps
    everything the console printed (and writes it to a log file), and expect/send."""

    def __init__(self, kernel, initrd, cmdline, disk, ports, serial_log):
        forwards = ",".join(
            f"hostfwd=tcp:127.0.0.1:{ports[name]}-:{guest}" for name, guest in GUEST_PORTS.items()
        )
        self.argv = [
            "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-m", "256",
            "-nographic", "-no-reboot",
            "-kernel", kernel, "-initrd", initrd, "-append", cmdline,
            "-netdev", f"user,id=n0,restrict=on,{forwards}",
            "-device", "virtio-net-pci,netdev=n0,romfile=",
            "-drive", f"if=none,id=d0,format=raw,file={disk}",
            "-device", "virtio-blk-pci,drive=d0",
            "-device", "virtio-rng-pci",
        ]  # fmt: skip
        self.output = b""
        self.cursor = 0  # expect() searches from here on
        self.changed = threading.Condition()  # guards output; notified on new output
        self.log_file = open(serial_log, "wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            data = self.process.stdout.read1(4096)
            if not data:
                break
            self.log_file.write(data)
            self.log_file.flush()
            with self.changed:
                self.output += data
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def expect(self, pattern, timeout, what=None):
        """Waits for `pattern` (bytes regex, or a str taken literally) in the console output
        after the last match; returns the match."""
        if isinstance(pattern, str):
            pattern = re.escape(pattern.encode())
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                match = regex.search(self.output, self.cursor)
                if match:
                    self.cursor = match.end()
                    return match
                if self.process.poll() is not None:
                    raise Failure(f"qemu exited while waiting for {what or pattern!r}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Failure(f"no {what or pattern!r} on the console within {timeout} s")
                self.changed.wait(min(remaining, 0.5))

    def send(self, line):
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def elapsed(self):
        return time.monotonic() - self.started

    def tail(self, lines=40):
        text = self.output.decode(errors="replace").replace("\r", "")
        return "\n".join(text.splitlines()[-lines:])

    def wait_exit(self, timeout):
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"qemu did not exit within {timeout} s of poweroff") from None

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log_file.close()


class Console:
    """A root shell on the guest's serial console."""

    def __init__(self, guest):
        self.guest = guest
        self.count = 0

    def login(self):
        self.guest.expect(rb"login: ", COMMAND_TIMEOUT, "login prompt")
        self.guest.send("root")
        self.guest.expect("Password: ", COMMAND_TIMEOUT, "password prompt")
        self.guest.send(ROOT_PASSWORD)
        self.guest.expect(rb"# ", COMMAND_TIMEOUT, "root shell prompt")

    def run(self, command, timeout=COMMAND_TIMEOUT):
        """Runs a command and returns what it printed; fails on a non-zero exit. The end
        marker is typed as two quoted halves, so the echo of the typed line cannot match."""
        self.count += 1
        before = self.guest.cursor
        self.guest.send(f'{command}; echo "@@""{self.count}-END $?"')
        end = rb"@@%d-END (\d+)" % self.count
        match = self.guest.expect(end, timeout, f"the end of `{command}`")
        printed = self.guest.output[before:match.start()].decode(errors="replace")
        printed = printed.replace("\r", "").split("\n", 1)[-1]  # drop the echoed command
        if match.group(1) != b"0":
            raise Failure(f"`{command}` exited with {match.group(1).decode()}:\n{printed}")
        return printed


def wait_for_banner(port, guest, timeout=BOOT_TIMEOUT):
    """Seconds from qemu's start to the first SMTP greeting on the forwarded port.

    A connection made before the guest listens is not refused at once: qemu accepts it and
    its SYN to the guest goes unanswered (no network yet) or is retried only after a
    second. So a new attempt starts every 100 ms while older ones stay open for 2 s, and
    the first greeting on any of them counts: the figure is late by at most ~100 ms."""
    deadline = time.monotonic() + timeout
    attempts = {}  # socket -> when it was started
    try:
        while time.monotonic() < deadline:
            if guest.process.poll() is not None:
                raise Failure("qemu exited before letterbox answered on port 25")
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            attempts[s] = time.monotonic()
            readable, _, _ = select.select(list(attempts), [], [], 0.1)
            for r in readable:
                try:
                    greeting = r.recv(512)
                except OSError:
                    greeting = b""
                if greeting.startswith(b"220 "):
                    elapsed = guest.elapsed()
                    r.sendall(b"QUIT\r\n")
                    return elapsed, greeting.decode(errors="replace").strip()
                r.close()  # closed or reset: the guest is not listening yet
                del attempts[r]
            for old in [a for a, started in attempts.items() if time.monotonic() - started > 2]:
                old.close()
                del attempts[old]
    finally:
        for a in attempts:
            a.close()
    raise Failure(f"no SMTP banner on 127.0.0.1:{port} within {timeout} s")


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


def first_boot(guest, ports, key, subject):
    """Setup over the serial console, mail in and out, admin over the console and SSH."""
    for number, (prompt, answer) in enumerate(SETUP_DIALOGUE):
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

    console = Console(guest)
    console.login()
    check_data_grown(guest, console)
    check_wifi_conf(console, *WIFI_SETUP, "the setup")
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

    console.run(f"printf '%s\\n' '{BOB_PASSWORD}' | letterbox user add {BOB} --password-stdin")
    log(f"console: letterbox user add {BOB}")
    send_mail(ports["smtp"], BOB, subject + " for bob")
    expect_subject(ports, BOB, BOB_PASSWORD, subject + " for bob")

    users = ssh(ports, key, "letterbox user list").split()
    if ALICE not in users or BOB not in users:
        raise Failure(f"ssh letterbox user list gave {users}")
    log(f"ssh (key from the setup): letterbox user list -> {' '.join(users)}")
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


def second_boot(guest, ports, subject, key, updates):
    """The configured system: no setup, the same mail; then the good update over SSH."""
    seconds, banner = wait_for_banner(ports["smtp"], guest)
    log(f"second boot: SMTP banner {seconds:.2f} s after qemu started (goal <= 3 s)")
    expect_subject(ports, ALICE, ALICE_PASSWORD, subject)
    expect_subject(ports, BOB, BOB_PASSWORD, subject + " for bob")
    console = Console(guest)
    console.login()
    if b"first-boot setup" in guest.output:
        raise Failure("the first-boot setup ran again on a configured system")
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
    log("Wi-Fi: the bundle unpacked and Debian's wpa_supplicant runs on the image; no radio "
        "under qemu")
    if "wifi.txt" in console.run("/usr/libexec/letterbox/slot.sh mount && ls /run/boot"):
        raise Failure("wifi.txt is still on the boot partition after its import")
    log("Wi-Fi: wifi.txt was wiped and removed from the boot partition")
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


def refused_updates(ports, key, updates):
    """A damaged, a truncated and an unsigned update (keys are configured) change
    nothing."""
    ssh(ports, key, f"mkdir -p /data/update/keys && echo {updates['public_key']} "
                    "> /data/update/keys/test.pub")  # fmt: skip
    for name, why in (("damaged", "does not match its checksum"),
                      ("truncated", "or was cut short"),
                      ("unsigned", "the update is not signed"),
                      ("older", "is older than this system")):  # fmt: skip
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
    broken update, which the box must roll back by itself."""
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
    console = Console(guest)
    console.login()
    poweroff(guest)


def read_public_key(key):
    with open(key + ".pub") as f:
        return f.read().strip()


def boot(number, scenario, boot_files, disk, ports, workdir):
    """Runs one boot scenario; on failure shows the end of that boot's console."""
    log(f"boot {number}: qemu -M virt (TCG), ports {ports} on 127.0.0.1, "
        f"{boot_files[2].split('letterbox.slot=')[-1].split()[0]!r} slot")
    serial_log = os.path.join(workdir, f"serial-{number}.log")
    guest = Guest(*boot_files, disk, ports, serial_log)
    atexit.register(guest.kill)  # also on an unexpected exception or the whole-test alarm
    try:
        return scenario(guest)
    except BaseException:
        log(f"serial console of boot {number}, last lines (all of it: {serial_log}):")
        print(guest.tail(), flush=True)
        raise
    finally:
        guest.kill()


def prepare_updates(disk, workdir):
    """The update files the test installs, made by scripts/make-update from the image's own
    slot a: "good" (its initramfs with a later cpio appended that says another version:
    the kernel unpacks both, the later entries win), "broken" (the same, plus a letterbox
    whose `serve` exits at once), and two that must be refused: "damaged" (one byte of the
    good one flipped) and "unsigned" (good, without a signature)."""
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
        out = os.path.join(workdir, f"{name}.update")
        subprocess.run([f"{ROOT_DIR}/scripts/make-update", out_slot, version, out, "--key", key],
                       check=True, env={**os.environ, "LETTERBOX": SIGNER})  # fmt: skip
        return out

    good_version = original + "-test.good"
    updates = {"original": original, "good_version": good_version, "public_key": public_key}
    updates["good"] = variant("good", good_version, {})
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
    updates["unsigned"] = os.path.join(workdir, "unsigned.update")
    subprocess.run([f"{ROOT_DIR}/scripts/make-update", os.path.join(workdir, "slot-good"),
                    good_version, updates["unsigned"]], check=True)  # fmt: skip
    # Older: signed and sound, but its version is below the running one.
    updates["older"] = os.path.join(workdir, "older.update")
    subprocess.run([f"{ROOT_DIR}/scripts/make-update", os.path.join(workdir, "slot-good"),
                    "0.0.1+test.older", updates["older"], "--key", key], check=True,
                   env={**os.environ, "LETTERBOX": SIGNER})  # fmt: skip
    log(f"updates: good {good_version} ({os.path.getsize(updates['good'])} bytes), broken, "
        "damaged, truncated, unsigned; signed with a key made by `letterbox signature keygen`")
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

    def run(number, scenario):
        # The firmware's choice is read again before every boot.
        return boot(number, scenario, extract_boot_files(disk, workdir), disk, ports, workdir)

    try:
        updates = prepare_updates(disk, workdir)
        run(1, lambda guest: first_boot(guest, ports, key, subject))
        write_wifi_txt(disk)
        seconds, update_began = run(2, lambda g: second_boot(g, ports, subject, key, updates))
        run(3, lambda g: updated_boot(g, ports, subject, key, updates, update_began))
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
