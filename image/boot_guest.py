"""The guest side of the image's boot test (image/boot-test.py): the SD image's FAT
partition read with mtools, one qemu -M virt run with its serial console, a root shell on
that console, and the wait for the SMTP banner.

qemu does not run the Pi firmware, so extract_boot_files does its part: it reads slot.txt on
the boot partition ("os_prefix=a/") and hands over that slot's kernel, initramfs and
cmdline.txt, as the firmware would (a prefix without a kernel is ignored, as there).
"""

import collections
import ctypes
import os
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time

# Bounded waits, in seconds (TCG on a busy 2-core machine is slow; these are ceilings).
BOOT_TIMEOUT = 180  # qemu start to the setup prompt or the SMTP banner
COMMAND_TIMEOUT = 120  # one shell command on the console
POWEROFF_TIMEOUT = 90  # poweroff to qemu's exit
GUEST_PORTS = {"smtp": 25, "pop3": 110, "imap": 143, "ssh": 22}
# The emulated core per image (scripts/build-image, BOARD): the Pi 4's, and the Pi 5's, whose
# 16 KiB pages Debian's Pi 5 kernel uses (the A72 has no 16 KiB granule).
CPU = {"pi": "cortex-a72", "pi5": "cortex-a76"}
# Cores: the Pis have four, this machine two. One emulated core would run the boot's
# services one after another (and hide their races); four on two host cores booted slower
# than two (README, "Under qemu").
VCPUS = 2

# What one boot starts from: the slot's files (copied out of the image) and what they say.
BootFiles = collections.namedtuple("BootFiles", "kernel initramfs cmdline board wifi")


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
    out of the image's FAT partition, so the test boots exactly what a Pi would load; and
    reads the slot's board file (none: the Pi 3/4 image) and whether its initramfs carries
    the Wi-Fi bundle."""
    prefix = firmware_slot(disk)
    files = {}
    for name in ("vmlinuz", "initramfs", "cmdline.txt"):
        files[name] = os.path.join(workdir, name)
        fat_copy_out(disk, prefix + name, files[name])
    # The Pi's command line with qemu virt's console (the PL011, ttyAMA0) for its consoles.
    with open(files["cmdline.txt"]) as f:
        words = [w for w in f.read().split() if not w.startswith("console=")]
    board = (fat_read(disk, prefix + "board") or "pi").strip()
    listing = subprocess.run(["cpio", "-t", "--quiet"], stdin=open(files["initramfs"], "rb"),
                             capture_output=True, check=True).stdout.split()  # fmt: skip
    return BootFiles(files["vmlinuz"], files["initramfs"], " ".join(["console=ttyAMA0"] + words),
                     board, b"usr/lib/letterbox/wifi.tar.xz" in listing)  # fmt: skip


def die_with_parent():
    """In qemu's child process: have the kernel kill it when this test dies, even by
    SIGKILL, so no guest outlives the test (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


class Guest:
    """One qemu run: the serial console on stdio pipes, a reader thread that keeps
    everything the console printed (and writes it to a log file), and expect/send."""

    def __init__(self, boot_files, disk, ports, serial_log, test_disk=None):
        """test_disk: a second virtio disk, read-only, with the test's own tools."""
        kernel, initrd, cmdline = boot_files.kernel, boot_files.initramfs, boot_files.cmdline
        forwards = ",".join(
            f"hostfwd=tcp:127.0.0.1:{ports[name]}-:{guest}" for name, guest in GUEST_PORTS.items()
        )
        self.argv = [
            "qemu-system-aarch64", "-M", "virt", "-cpu", CPU[boot_files.board], "-m", "256",
            "-smp", str(VCPUS),
            "-nographic", "-no-reboot",
            "-kernel", kernel, "-initrd", initrd, "-append", cmdline,
            "-netdev", f"user,id=n0,restrict=on,{forwards}",
            "-device", "virtio-net-pci,netdev=n0,romfile=",
            "-drive", f"if=none,id=d0,format=raw,file={disk}",
            "-device", "virtio-blk-pci,drive=d0",
            "-device", "virtio-rng-pci",
        ]  # fmt: skip
        if test_disk:
            self.argv += ["-drive", f"if=none,id=d1,format=raw,readonly=on,file={test_disk}",
                          "-device", "virtio-blk-pci,drive=d1"]  # fmt: skip
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

    def __init__(self, guest, password):
        self.guest = guest
        self.password = password
        self.count = 0

    def login(self):
        self.guest.expect(rb"login: ", COMMAND_TIMEOUT, "login prompt")
        self.guest.send("root")
        self.guest.expect("Password: ", COMMAND_TIMEOUT, "password prompt")
        self.guest.send(self.password)
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
