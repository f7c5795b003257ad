"""`letterbox clock check` against an SNTP server of the test's own on loopback (RFC
4330), answering with a chosen offset, and against servers that answer wrongly."""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import threading
import time

from conftest import require_binary

NTP_UNIX = 2_208_988_800


def ntp(t: float) -> int:
    seconds = int(t)
    return ((seconds + NTP_UNIX) << 32) | int((t - seconds) * 2**32)


class SntpServer:
    """Answers every request with the time `offset` seconds ahead of ours."""

    def __init__(self, offset: float, *, first: int = 0x24, stratum: int = 2, echo: bool = True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.offset, self.first, self.stratum, self.echo = offset, first, stratum, echo
        self.requests = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(512)
            except OSError:
                return
            self.requests += 1
            received = time.time() + self.offset
            origin = data[40:48] if self.echo else b"\0" * 8
            reply = struct.pack("!BBbb", self.first, self.stratum, 6, -20) + b"\0" * 20 + origin
            reply += struct.pack("!QQ", ntp(received), ntp(time.time() + self.offset))
            self.sock.sendto(reply, peer)

    def close(self):
        self.sock.close()


def check(*servers: str, timeout: int = 2):
    args = [require_binary(), "clock", "check", "--timeout", str(timeout)]
    for server in servers:
        args += ["--server", server]
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


def test_the_offset_of_a_server_ahead_and_one_behind():
    ahead, behind = SntpServer(3600.0), SntpServer(-42.5)
    try:
        result = check(f"127.0.0.1:{ahead.port}", f"127.0.0.1:{behind.port}")
        assert result.returncode == 0, result.stderr
        first, second = result.stdout.splitlines()
        offset = float(first.split("offset ")[1].split(" s")[0])
        assert abs(offset - 3600.0) < 0.5, first
        assert "(the server is ahead)" in first and first.endswith("stratum 2")
        offset = float(second.split("offset ")[1].split(" s")[0])
        assert abs(offset + 42.5) < 0.5 and "(the server is behind)" in second, second
    finally:
        ahead.close()
        behind.close()


def test_bad_servers_are_reported_and_fail_the_check():
    kiss = SntpServer(0.0, stratum=0)
    alarm = SntpServer(0.0, first=0xE4)
    forged = SntpServer(0.0, echo=False)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        result = check(f"127.0.0.1:{kiss.port}", f"127.0.0.1:{alarm.port}", f"127.0.0.1:{forged.port}",
                       f"127.0.0.1:{silent.getsockname()[1]}", timeout=1)
        assert result.returncode != 0
        assert result.stdout.splitlines() == [
            f"127.0.0.1:{kiss.port}: the server refused (kiss of death)",
            f"127.0.0.1:{alarm.port}: the server's clock is not synchronised",
            # A reply that does not echo our request is not taken: we wait for the real one.
            f"127.0.0.1:{forged.port}: no answer within 1 s",
            f"127.0.0.1:{silent.getsockname()[1]}: no answer within 1 s",
        ]
        assert result.stderr.strip() == "letterbox: no time server answered"
    finally:
        for s in (kiss, alarm, forged):
            s.close()
        silent.close()


def sync(*servers: str, dry_run: bool = False, user: str | None = None):
    args = [require_binary(), "clock", "sync", "--timeout", "2"]
    for server in servers:
        args += ["--server", server]
    if dry_run:
        args.append("--dry-run")
    if user:
        args = ["runuser", "-u", user, "--"] + args
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


def test_sync_steps_only_beyond_half_a_second_and_only_as_root():
    far, near = SntpServer(3600.0), SntpServer(0.1)
    try:
        result = sync(f"127.0.0.1:{far.port}", dry_run=True)
        assert result.returncode == 0, result.stderr
        assert re.fullmatch(rf"would step the clock by \+3600\.\d{{3}} s \(127\.0\.0\.1:{far.port}\)",
                            result.stdout.splitlines()[-1]), result.stdout
        result = sync(f"127.0.0.1:{near.port}")
        assert result.returncode == 0, result.stderr
        assert re.fullmatch(rf"clock within 0\.5 s of 127\.0\.0\.1:{near.port} \(\+0\.\d{{3}} s\): left alone",
                            result.stdout.splitlines()[-1]), result.stdout
        # Without root the clock is not touched, and the command says why.
        result = sync(f"127.0.0.1:{far.port}", user="nobody")
        assert result.returncode == 1
        assert re.fullmatch(rf"letterbox: setting the clock needs root; it is \+3600\.\d{{3}} s off 127\.0\.0\.1:{far.port}",
                            result.stderr.strip()), result.stderr
        # Of two answers one counts (the shorter round trip): the verdict names it.
        result = sync(f"127.0.0.1:{near.port}", f"127.0.0.1:{far.port}", dry_run=True)
        lines = result.stdout.splitlines()
        assert len(lines) == 3
        delays = [float(re.search(r"delay ([\d.]+) ms", line).group(1)) for line in lines[:2]]
        # (Printed to 0.1 ms: equal-looking delays may go either way.)
        # The verdict is "would step ... (SERVER)" or "clock within 0.5 s of SERVER (...)".
        named = re.search(r"127\.0\.0\.1:(\d+)", lines[2])
        assert named and int(named.group(1)) in (near.port, far.port), lines
        if delays[0] != delays[1]:
            chosen = near.port if delays[0] < delays[1] else far.port
            assert int(named.group(1)) == chosen, lines
    finally:
        far.close()
        near.close()


def test_the_server_checks_its_clock_at_start_and_warns_when_off(make_server):
    ahead = SntpServer(30.0)
    try:
        server = make_server(extra_config=f'\n[clock]\nservers = ["127.0.0.1:{ahead.port}"]\n')
        server.wait_for_log("clock: this machine is 30.0")
        assert re.search(rf"WARN  letterbox::server\] clock: this machine is 30\.\d{{3}} s behind 127\.0\.0\.1:{ahead.port}: "
                         r"set the clock \(letterbox clock sync, as root\)", server.stderr_text())
        assert ahead.requests == 1
    finally:
        ahead.close()
