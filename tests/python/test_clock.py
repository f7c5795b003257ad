"""`letterbox clock check` against an SNTP server of the test's own on loopback (RFC
4330), answering with a chosen offset, and against servers that answer wrongly."""

from __future__ import annotations

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
