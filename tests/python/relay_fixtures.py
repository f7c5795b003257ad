"""Loopback peers for the outbound-relay tests: a DNS server, SMTP sinks, certificates.

Plain classes and context managers, independent of the letterbox server and of pytest,
so they can also be driven from a throwaway script:

    with DnsServer({"example.test": {"MX": [(10, "mx1.example.test")]},
                    "mx1.example.test": {"A": ["127.0.0.3"]}}) as dns, \\
         SmtpSink("127.0.0.3", starttls=True, tls_cert=cert, tls_key=key) as sink:
        ...  # point the relay's resolver at 127.0.0.1:dns.port, its MX port at sink.port
        sink.wait_for(1)

Both peers are written here on the standard library alone, on purpose:
  * DNS: the four record types the relay asks for (MX, A, AAAA, TXT) and the answers it
    must tell apart (NXDOMAIN, NOERROR without records, SERVFAIL, no answer at all) take
    a page of wire format (RFC 1035 4.1, EDNS per RFC 6891 6.1). Hand-encoding keeps the
    tests free of a PyPI dependency and lets them produce exactly the failure they need.
  * SMTP: aiosmtpd 1.4 answers 555 to any MAIL/RCPT parameter other than SIZE, BODY and
    SMTPUTF8, so it cannot be a DSN-capable next hop (RET, ENVID, NOTIFY, ORCPT); it also
    upper-cases the parameters it keeps and does not advertise PIPELINING. The relay tests
    need all of that, plus per-connection scripted replies and protocol-violation
    records, which a small threaded server gives directly.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import re
import select
import socket
import ssl
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

IO_TIMEOUT = 30  # seconds a peer waits on a silent client before hanging up
POLL = 0.2       # how often idle loops look at the stop flag


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _close_quietly(sock: socket.socket | None) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


# --------------------------------------------------------------------------
# DNS
# --------------------------------------------------------------------------

RR_TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "OPT": 41}
RR_NAMES = {number: name for name, number in RR_TYPES.items()}
RCODE_NOERROR, RCODE_FORMERR, RCODE_SERVFAIL, RCODE_NXDOMAIN = 0, 1, 2, 3
MAX_UDP_PAYLOAD = 4096  # what we answer at most, whatever larger size a client offers

# Markers a zone entry may carry instead of (or beside) records.
SERVFAIL = "SERVFAIL"  # answer every query for the name with SERVFAIL (a temporary failure)
TIMEOUT = "TIMEOUT"    # never answer queries for the name (the resolver times out)


@dataclass(frozen=True)
class DnsQuery:
    transport: str  # "udp" or "tcp"
    name: str       # lower case, without the trailing dot
    rtype: str      # "MX", "A", ... or "TYPE<n>"


def _normalise(name: str) -> str:
    return name.rstrip(".").lower()


def _encode_name(name: str) -> bytes:
    """Uncompressed wire form; "." and "" are the root (as in a null MX, RFC 7505)."""
    out = b""
    for label in name.rstrip(".").split(".") if name.strip(".") else []:
        raw = label.encode("idna") if not label.isascii() else label.encode()
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad DNS label {label!r} in {name!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def _decode_name(packet: bytes, offset: int) -> tuple[str, int]:
    """(name, offset after it); follows compression pointers, refuses loops."""
    labels: list[str] = []
    end = None
    for _ in range(128):
        length = packet[offset]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = offset + 2
            offset = struct.unpack_from("!H", packet, offset)[0] & 0x3FFF
            continue
        offset += 1
        if length == 0:
            return ".".join(labels), end if end is not None else offset
        labels.append(packet[offset : offset + length].decode("ascii", "replace"))
        offset += length
    raise ValueError("DNS name compression loop")


def _txt_rdata(value: str | bytes | Iterable[str | bytes]) -> bytes:
    """A TXT record: one string is split into 255-octet chunks (as DKIM keys must be);
    a list gives the chunks explicitly."""
    if isinstance(value, (str, bytes)):
        raw = value.encode() if isinstance(value, str) else value
        chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
    else:
        chunks = [c.encode() if isinstance(c, str) else c for c in value]
    out = b""
    for chunk in chunks:
        if len(chunk) > 255:
            raise ValueError("TXT chunk longer than 255 octets")
        out += bytes([len(chunk)]) + chunk
    return out


def _rdata(rtype: str, value) -> bytes:
    if rtype == "A":
        return ipaddress.IPv4Address(value).packed
    if rtype == "AAAA":
        return ipaddress.IPv6Address(value).packed
    if rtype == "MX":
        preference, exchange = value
        return struct.pack("!H", preference) + _encode_name(exchange)
    if rtype in ("CNAME", "NS", "PTR"):
        return _encode_name(value)
    if rtype == "TXT":
        return _txt_rdata(value)
    raise ValueError(f"record type {rtype} is not supported by the test DNS server")


class DnsServer:
    """A small authoritative DNS server on loopback, over UDP and TCP on one port.

    `zone` maps names to {type: [records]} and stays mutable: tests may change it while
    the server runs (`set()` does so under the server's lock). Record shapes:
        "MX":   [(10, "mx1.example.test"), (0, ".")]     # (preference, exchange)
        "A":    ["127.0.0.3"]          "AAAA": ["::1"]
        "TXT":  ["v=DKIM1; k=ed25519; p=..."] or [["chunk1", "chunk2"]]
        "CNAME": ["target.example.test"]   (followed within the zone, as a resolver would)
    plus the markers {"SERVFAIL": True} and {"TIMEOUT": True}. Names are case-insensitive,
    with or without the trailing dot. Unknown names get NXDOMAIN; known names without
    the asked type get NOERROR with no answer. Negative answers carry no SOA, so
    resolvers do not cache them (RFC 2308 5), and positive ones carry `ttl` (0 by
    default, so a changed zone is seen at once).

    Every query is logged in `queries` (see DnsQuery).
    """

    def __init__(self, zone: dict | None = None, host: str = "127.0.0.1", port: int = 0, *, ttl: int = 0,
                 negative_ttl: int | None = None):
        self.zone: dict = zone if zone is not None else {}
        self.host = host
        self.ttl = ttl
        # With a negative TTL, empty answers carry an SOA and resolvers cache them (the
        # benchmark, as real DNS would); tests leave it None to see zone changes at once.
        self.negative_ttl = negative_ttl
        self._lock = threading.Lock()
        self._queries: list[DnsQuery] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._tcp_clients: set[socket.socket] = set()
        self.errors: list[str] = []  # exceptions while answering (bad zone data, bugs)
        self._udp, self._tcp = self._bind(port)

    def _bind(self, port: int) -> tuple[socket.socket, socket.socket]:
        # UDP and TCP must share the number; with an ephemeral port the TCP side may find
        # it taken, so try a few.
        family = _family(self.host)
        for _ in range(20):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            udp.bind((self.host, port))
            number = udp.getsockname()[1]
            tcp = socket.socket(family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, number))
            except OSError:
                udp.close()
                tcp.close()
                if port:
                    raise
                continue
            tcp.listen(16)
            udp.settimeout(POLL)
            tcp.settimeout(POLL)
            return udp, tcp
        raise OSError("no port free for both UDP and TCP")

    # -- life cycle --------------------------------------------------------

    @property
    def port(self) -> int:
        return self._udp.getsockname()[1]

    @property
    def address(self) -> str:
        """host:port, as a resolver setting would take it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def start(self) -> "DnsServer":
        for target in (self._serve_udp, self._serve_tcp):
            thread = threading.Thread(target=target, name=f"dns-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        with self._lock:
            clients = list(self._tcp_clients)
        for client in clients:
            _close_quietly(client)
        _close_quietly(self._udp)
        _close_quietly(self._tcp)

    def __enter__(self) -> "DnsServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- zone and log --------------------------------------------------------

    def set(self, name: str, rtype: str, records) -> None:
        """Replace (or with records=None remove) one RRset or marker while running."""
        with self._lock:
            entry = self._entry(name, create=True)
            if records is None:
                entry.pop(rtype, None)
            else:
                entry[rtype] = records

    def remove(self, name: str) -> None:
        """Forget a name entirely: it answers NXDOMAIN from now on."""
        with self._lock:
            for key in [k for k in self.zone if _normalise(k) == _normalise(name)]:
                del self.zone[key]

    @property
    def queries(self) -> list[DnsQuery]:
        with self._lock:
            return list(self._queries)

    def count(self, name: str | None = None, rtype: str | None = None) -> int:
        return sum(
            1
            for q in self.queries
            if (name is None or q.name == _normalise(name)) and (rtype is None or q.rtype == rtype)
        )

    def clear_log(self) -> None:
        with self._lock:
            self._queries.clear()

    def _entry(self, name: str, create: bool = False) -> dict | None:
        wanted = _normalise(name)
        # A copy: tests may change the zone from their own thread while we look.
        for key, value in list(self.zone.items()):
            if _normalise(key) == wanted:
                return value
        if create:
            self.zone[wanted] = {}
            return self.zone[wanted]
        return None

    # -- protocol ----------------------------------------------------------------

    def answer(self, query: bytes, transport: str) -> bytes | None:
        """The response to one query message, or None to stay silent."""
        try:
            return self._answer(query, transport)
        except Exception as error:  # keep serving; the test sees it in `errors`
            with self._lock:
                self.errors.append(f"{type(error).__name__}: {error}")
            return None

    def _answer(self, query: bytes, transport: str) -> bytes | None:
        if len(query) < 12:
            return None
        ident, flags, qdcount, _ancount, _nscount, arcount = struct.unpack_from("!6H", query, 0)
        if flags & 0x8000:  # a response, not a query
            return None
        opcode = (flags >> 11) & 0xF
        rd = flags & 0x0100
        try:
            if qdcount != 1 or opcode != 0:
                raise ValueError("only standard queries with one question")
            qname, offset = _decode_name(query, 12)
            qtype, qclass = struct.unpack_from("!HH", query, offset)
            question = query[12 : offset + 4]
            udp_size = self._edns_size(query, offset + 4, arcount)
        except (ValueError, IndexError, struct.error):
            return struct.pack("!6H", ident, 0x8000 | (opcode << 11) | rd | RCODE_FORMERR, 0, 0, 0, 0)

        rtype = RR_NAMES.get(qtype, f"TYPE{qtype}")
        with self._lock:
            self._queries.append(DnsQuery(transport, _normalise(qname), rtype))
            rcode, answers = self._resolve(qname, rtype, qclass)
        if rcode is None:
            return None

        opt = b""
        if udp_size is not None:  # answer EDNS with EDNS (RFC 6891 6.1.1)
            opt = b"\x00" + struct.pack("!HHIH", RR_TYPES["OPT"], MAX_UDP_PAYLOAD, 0, 0)
        limit = min(max(udp_size or 512, 512), MAX_UDP_PAYLOAD) if transport == "udp" else 65535
        # QR, AA and RA set; RD echoed: it looks like the recursive resolver the relay expects.
        head_flags = 0x8000 | 0x0400 | 0x0080 | rd | rcode
        body = b"".join(answers)
        extra = 1 if opt else 0
        authority = b""
        if not answers and self.negative_ttl is not None and rcode in (RCODE_NOERROR, RCODE_NXDOMAIN):
            soa = _encode_name("ns.test") + _encode_name("hostmaster.test") + struct.pack(
                "!5I", 1, 3600, 600, 86400, self.negative_ttl)
            authority = b"\x00" + struct.pack("!HHIH", RR_TYPES["SOA"], 1, self.negative_ttl, len(soa)) + soa
        response = (struct.pack("!6H", ident, head_flags, 1, len(answers), 1 if authority else 0, extra)
                    + question + body + authority + opt)
        if len(response) > limit:
            # Too big for this datagram: TC tells the client to ask again over TCP.
            response = struct.pack("!6H", ident, head_flags | 0x0200, 1, 0, 0, extra) + question + opt
        return response

    def _resolve(self, qname: str, rtype: str, qclass: int) -> tuple[int | None, list[bytes]]:
        """(rcode or None for silence, answer records); follows CNAMEs inside the zone
        the way a recursive resolver would. Called with the lock held."""
        answers: list[bytes] = []
        # The first owner is the question's name: a pointer to offset 12 (RFC 1035 4.1.4).
        owner, name = b"\xc0\x0c", qname
        for _ in range(8):
            entry = self._entry(name)
            if entry is not None and entry.get(TIMEOUT):
                return None, []
            if entry is None:
                return (RCODE_NXDOMAIN if not answers else RCODE_NOERROR), answers
            if entry.get(SERVFAIL):
                return RCODE_SERVFAIL, []
            if qclass not in (1, 255):
                return RCODE_NOERROR, answers
            if rtype not in entry and rtype != "CNAME" and entry.get("CNAME"):
                target = entry["CNAME"][0]
                rdata = _rdata("CNAME", target)
                answers.append(owner + struct.pack("!HHIH", RR_TYPES["CNAME"], 1, self.ttl, len(rdata)) + rdata)
                owner, name = _encode_name(target), target
                continue
            for value in entry.get(rtype, []):
                rdata = _rdata(rtype, value)
                answers.append(owner + struct.pack("!HHIH", RR_TYPES[rtype], 1, self.ttl, len(rdata)) + rdata)
            return RCODE_NOERROR, answers
        return RCODE_SERVFAIL, []  # a CNAME loop

    @staticmethod
    def _edns_size(query: bytes, offset: int, arcount: int) -> int | None:
        """The UDP payload size from an OPT record in the additional section, if any."""
        for _ in range(arcount):
            _name, offset = _decode_name(query, offset)
            rtype, rclass, _ttl, rdlength = struct.unpack_from("!HHIH", query, offset)
            offset += 10 + rdlength
            if rtype == RR_TYPES["OPT"]:
                return rclass
        return None

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                query, peer = self._udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            response = self.answer(query, "udp")
            if response is not None:
                with contextlib.suppress(OSError):
                    self._udp.sendto(response, peer)

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                client, _peer = self._tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self._tcp_clients.add(client)
            threading.Thread(target=self._tcp_client, args=(client,), name="dns-tcp-client", daemon=True).start()

    def _tcp_client(self, client: socket.socket) -> None:
        # RFC 7766: a client may send several length-prefixed queries on one connection.
        client.settimeout(IO_TIMEOUT)
        try:
            while not self._stop.is_set():
                header = self._read_exact(client, 2)
                if header is None:
                    return
                query = self._read_exact(client, struct.unpack("!H", header)[0])
                if query is None:
                    return
                response = self.answer(query, "tcp")
                if response is not None:
                    client.sendall(struct.pack("!H", len(response)) + response)
        except OSError:
            pass
        finally:
            with self._lock:
                self._tcp_clients.discard(client)
            _close_quietly(client)

    @staticmethod
    def _read_exact(sock: socket.socket, count: int) -> bytes | None:
        data = b""
        while len(data) < count:
            chunk = sock.recv(count - len(data))
            if not chunk:
                return None
            data += chunk
        return data


# --------------------------------------------------------------------------
# SMTP sink
# --------------------------------------------------------------------------

DEFAULT_EXTENSIONS = ("PIPELINING", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES")
DSN_MAIL_PARAMS = ("RET", "ENVID")
DSN_RCPT_PARAMS = ("NOTIFY", "ORCPT")

_MAIL_RE = re.compile(r"^MAIL FROM:<([^<>]*)>(?: +(.*))?$", re.IGNORECASE)
_RCPT_RE = re.compile(r"^RCPT TO:<([^<>]*)>(?: +(.*))?$", re.IGNORECASE)


@dataclass
class Session:
    """One SMTP connection as the sink saw it."""

    number: int                  # 1-based, in accept order
    peer: tuple
    tls: bool = False            # TLS (implicit or after STARTTLS) was active at some point
    tls_version: str | None = None
    helo: str | None = None
    esmtp: bool = False          # the client said EHLO
    auth_user: str | None = None
    pipelined: bool = False      # the client sent a command before reading the previous reply
    violations: list[str] = field(default_factory=list)  # protocol errors the relay made
    transcript: list[str] = field(default_factory=list)  # commands as received (no data)
    messages: int = 0            # messages accepted on this connection
    closed: bool = False


@dataclass
class ReceivedMessage:
    """One accepted message: the envelope, the parameters as sent, and the content."""

    mail_from: str                   # "" for the null reverse-path
    rcpt_tos: list[str]
    data: bytes                      # dot-unstuffed, without the terminating ".\r\n"
    mail_options: list[str]          # "KEY=value" words after MAIL FROM:<...>, case kept
    rcpt_options: dict[str, list[str]]
    tls: bool
    auth_user: str | None
    connection: int
    helo: str | None

    @property
    def mail_params(self) -> dict[str, str | None]:
        return _params(self.mail_options)

    def rcpt_params(self, rcpt: str) -> dict[str, str | None]:
        return _params(self.rcpt_options.get(rcpt, []))


@dataclass
class Stage:
    """What a reply hook is told: where the transaction is and what it holds so far."""

    name: str                      # "CONNECT", "EHLO", "MAIL", "RCPT" or "DATA"
    session: Session
    mail_from: str | None = None
    rcpt: str | None = None        # the recipient being added (RCPT)
    rcpt_tos: list[str] = field(default_factory=list)
    data: bytes | None = None      # the content (DATA, after the final dot)


ReplyHook = Callable[[Stage], "str | None"]


def _params(words: Iterable[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for word in words:
        key, eq, value = word.partition("=")
        out[key.upper()] = value if eq else None
    return out


def xtext_encode(value: str) -> str:
    """RFC 3461 4: "+", "=", controls and non-ASCII become "+XX" (UTF-8 octets)."""
    return "".join(
        chr(byte) if 33 <= byte <= 126 and byte not in (ord("+"), ord("=")) else f"+{byte:02X}"
        for byte in value.encode("utf-8")
    )


def xtext_decode(value: str) -> str:
    """RFC 3461 4: "+XX" stands for the octet with hex value XX."""
    raw = re.sub(rb"\+([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), value.encode("utf-8"))
    return raw.decode("utf-8", "replace")


def fail_first(connections: int, stage: str = "RCPT", reply: str = "451 4.3.0 Try again later") -> ReplyHook:
    """A hook: the first `connections` connections get `reply` at `stage`, later ones pass."""

    def hook(step: Stage) -> str | None:
        if step.name == stage and step.session.number <= connections:
            return reply
        return None

    return hook


def reject_recipients(replies: dict[str, str]) -> ReplyHook:
    """A hook: RCPT for the given addresses (case-insensitive) gets the given reply."""
    wanted = {address.lower(): reply for address, reply in replies.items()}

    def hook(step: Stage) -> str | None:
        if step.name == "RCPT" and step.rcpt is not None:
            return wanted.get(step.rcpt.lower())
        return None

    return hook


class SmtpSink:
    """A receiving SMTP server on loopback that records what it accepts.

    Options:
      tls_cert, tls_key     PEM files; needed for starttls or implicit_tls
      starttls              offer STARTTLS (AUTH is then offered only after it, as on 587)
      implicit_tls          TLS from the first byte (as on 465)
      auth                  {user: password}: AUTH PLAIN and LOGIN are offered and required
      disable               extensions not to offer, e.g. ("SMTPUTF8", "DSN", "PIPELINING");
                            using one anyway is refused with 555 and logged as a violation
      esmtp=False           answer EHLO with 502 (an old server: the client must use HELO)
      max_size              offer SIZE and refuse larger messages with 552
      hooks                 a ReplyHook or a list of them; the first non-None reply wins.
                            A reply starting with 421 also closes the connection.
      hold_data             keep the reply to the final dot until release_data(): a test can
                            kill the relay while it waits (see wait_until_holding)

    A message counts as accepted only if its client is still connected when the 250
    would go out; otherwise it is kept in `aborted`, so a relay killed mid-transaction is
    not counted as having delivered.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        starttls: bool = False,
        implicit_tls: bool = False,
        auth: dict[str, str] | None = None,
        disable: Iterable[str] = (),
        esmtp: bool = True,
        max_size: int | None = None,
        hooks: ReplyHook | list[ReplyHook] | None = None,
        hold_data: bool = False,
        hostname: str = "sink.test",
    ):
        if (starttls or implicit_tls) and not (tls_cert and tls_key):
            raise ValueError("starttls and implicit_tls need tls_cert and tls_key")
        self.host = host
        self.hostname = hostname
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.auth = dict(auth) if auth else None
        self.disabled = {name.upper() for name in disable}
        self.esmtp = esmtp
        self.max_size = max_size
        self.hooks: list[ReplyHook] = [] if hooks is None else [hooks] if callable(hooks) else list(hooks)
        self.tls_context = None
        if tls_cert and tls_key:
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_context.load_cert_chain(str(tls_cert), str(tls_key))

        self._lock = threading.Condition()
        self._messages: list[ReceivedMessage] = []
        self._aborted: list[ReceivedMessage] = []
        self._sessions: list[Session] = []
        self._tls_errors: list[str] = []
        self.errors: list[str] = []  # unexpected exceptions in connection threads
        self._clients: set[socket.socket] = set()
        self._holding = 0
        self._gate = threading.Event()
        if not hold_data:
            self._gate.set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener = socket.socket(_family(host), socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(64)
        self._listener.settimeout(POLL)

    # -- life cycle --------------------------------------------------------

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    def start(self) -> "SmtpSink":
        self._thread = threading.Thread(target=self._accept_loop, name=f"sink-{self.host}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection."""
        self._stop.set()
        self._gate.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        _close_quietly(self._listener)
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            _close_quietly(client)

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what was received -------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._messages)

    @property
    def aborted(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._aborted)

    @property
    def sessions(self) -> list[Session]:
        with self._lock:
            return list(self._sessions)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._sessions)

    @property
    def tls_errors(self) -> list[str]:
        """Failed TLS handshakes (e.g. a client that rejected our certificate)."""
        with self._lock:
            return list(self._tls_errors)

    def wait_for(self, count: int, timeout: float = 10) -> list[ReceivedMessage]:
        """Block until at least `count` messages were accepted; return them all."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{self.host}:{self.port} accepted {len(self._messages)} of {count} messages "
                        f"in {timeout} s ({len(self._sessions)} connections)"
                    )
                self._lock.wait(left)
            return list(self._messages)

    def wait_for_connections(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._sessions) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._sessions)} of {count} connections in {timeout} s")
                self._lock.wait(left)

    def wait_until_holding(self, count: int = 1, timeout: float = 10) -> None:
        """With hold_data: block until `count` transactions wait for their DATA reply."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._holding < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self._holding} of {count} transactions held in {timeout} s")
                self._lock.wait(left)

    def release_data(self) -> None:
        """Let held DATA replies go out, now and from now on."""
        self._gate.set()

    # -- serving -------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                session = Session(number=len(self._sessions) + 1, peer=peer)
                self._sessions.append(session)
                self._clients.add(client)
                self._lock.notify_all()
            threading.Thread(
                target=self._serve, args=(client, session), name=f"sink-conn-{session.number}", daemon=True
            ).start()

    def _serve(self, client: socket.socket, session: Session) -> None:
        client.settimeout(IO_TIMEOUT)
        conn = _Connection(self, client, session)
        try:
            if self.implicit_tls:
                conn.start_tls()
            conn.run()
        except ssl.SSLError as error:
            with self._lock:
                self._tls_errors.append(f"connection {session.number}: {error}")
        except (OSError, _Hangup):
            pass
        except Exception as error:  # a bug here must not pass as a silent hang-up
            with self._lock:
                self.errors.append(f"connection {session.number}: {type(error).__name__}: {error}")
        finally:
            session.closed = True
            with self._lock:
                self._clients.discard(conn.sock)
                self._clients.discard(client)
            _close_quietly(conn.sock)

    def _reply_from_hooks(self, stage: Stage) -> str | None:
        for hook in self.hooks:
            reply = hook(stage)
            if reply is not None:
                return reply
        return None

    def _record(self, message: ReceivedMessage, accepted: bool) -> None:
        with self._lock:
            (self._messages if accepted else self._aborted).append(message)
            self._lock.notify_all()


class _Hangup(Exception):
    """The client went away, or a 421 ended the session."""


class _Connection:
    """The state machine of one sink connection."""

    def __init__(self, sink: SmtpSink, sock: socket.socket, session: Session):
        self.sink = sink
        self.sock = sock
        self.session = session
        self.buffer = b""
        self.tls_active = False
        self.reset()

    def reset(self) -> None:
        self.mail_from: str | None = None
        self.mail_options: list[str] = []
        self.rcpt_tos: list[str] = []
        self.rcpt_options: dict[str, list[str]] = {}

    # -- I/O -------------------------------------------------------------------

    def start_tls(self) -> None:
        assert self.sink.tls_context is not None
        # Bytes a client pipelined after STARTTLS must not survive into the TLS session
        # (RFC 3207 6); note them as a violation.
        if self.buffer:
            self.session.violations.append("data pipelined after STARTTLS")
            self.buffer = b""
        self.sock = self.sink.tls_context.wrap_socket(self.sock, server_side=True)
        with self.sink._lock:
            self.sink._clients.add(self.sock)
        self.tls_active = True
        self.session.tls = True
        self.session.tls_version = self.sock.version()

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode("utf-8") + b"\r\n")

    def reply(self, text: str) -> None:
        """Send a reply; multi-line replies are given with "\\n" between lines."""
        lines = text.split("\n")
        code = lines[0][:3]
        for number, line in enumerate(lines):
            rest = line[4:] if line[:3] == code else line
            separator = " " if number == len(lines) - 1 else "-"
            self.send(f"{code}{separator}{rest}")
        if code == "421":
            raise _Hangup()

    def readline(self, limit: int = 4096) -> bytes:
        while b"\n" not in self.buffer:
            if len(self.buffer) > limit:
                break
            chunk = self.sock.recv(65536)
            if not chunk:
                raise _Hangup()
            self.buffer += chunk
        line, sep, self.buffer = self.buffer.partition(b"\n")
        return line + sep

    def peer_gone(self) -> bool:
        """True if the client has closed its side; reads nothing it would miss."""
        pending = self.tls_active and self.sock.pending()
        readable, _, _ = select.select([self.sock], [], [], 0)
        if not readable and not pending:
            return False
        self.sock.setblocking(False)
        try:
            if self.tls_active:
                # TLS has no peek: keep whatever arrives for the next command.
                data = self.sock.recv(65536)
                self.buffer += data
            else:
                data = self.sock.recv(1, socket.MSG_PEEK)
            return data == b""
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except OSError:  # reset, or TLS closed without close_notify
            return True
        finally:
            self.sock.settimeout(IO_TIMEOUT)

    # -- the dialogue ----------------------------------------------------------

    def run(self) -> None:
        greeting = self.sink._reply_from_hooks(Stage("CONNECT", self.session))
        if greeting is not None:
            self.reply(greeting)
            if not greeting.startswith("2"):
                self._drain_until_quit()
                return
        else:
            self.reply(f"220 {self.sink.hostname} ESMTP letterbox test sink")
        while True:
            raw = self.readline()
            # Anything already buffered behind this command was sent before our reply.
            if self.buffer:
                self.session.pipelined = True
            line = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
            if not raw.endswith(b"\r\n"):
                self.session.violations.append(f"command not ended by CRLF: {raw[:80]!r}")
            self.session.transcript.append(line)
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            handler = getattr(self, f"do_{verb}", None)
            if handler is None:
                self.reply("500 5.5.2 Command not recognised")
                continue
            if handler(arg) == "quit":
                return

    def _drain_until_quit(self) -> None:
        # After a refusing greeting (RFC 5321 3.1) only QUIT is answered with 221.
        while True:
            line = self.readline().strip().upper()
            if line == b"QUIT":
                self.reply("221 2.0.0 Bye")
                return
            self.reply("503 5.5.1 No service")

    def extensions(self) -> list[str]:
        sink = self.sink
        words = [name for name in DEFAULT_EXTENSIONS if name not in sink.disabled]
        if sink.max_size is not None and "SIZE" not in sink.disabled:
            words.append(f"SIZE {sink.max_size}")
        if sink.starttls and not self.tls_active and "STARTTLS" not in sink.disabled:
            words.append("STARTTLS")
        if sink.auth and (self.tls_active or not sink.starttls):
            words.append("AUTH PLAIN LOGIN")
        return words

    def offered(self, name: str) -> bool:
        return self.session.esmtp and any(word.split()[0] == name for word in self.extensions())

    def do_EHLO(self, arg: str) -> None:
        if not self.sink.esmtp:
            self.reply("502 5.5.1 EHLO not supported")
            return
        if not arg.strip():
            self.reply("501 5.5.4 EHLO needs a domain")
            return
        self.session.helo, self.session.esmtp = arg.strip(), True
        self.reset()
        hooked = self.sink._reply_from_hooks(Stage("EHLO", self.session))
        if hooked is not None:
            self.reply(hooked)
            return
        self.reply("\n".join([f"250 {self.sink.hostname}"] + [f"250 {word}" for word in self.extensions()]))

    def do_HELO(self, arg: str) -> None:
        if not arg.strip():
            self.reply("501 5.5.4 HELO needs a domain")
            return
        self.session.helo, self.session.esmtp = arg.strip(), False
        self.reset()
        self.reply(f"250 {self.sink.hostname}")

    def do_STARTTLS(self, arg: str) -> None:
        if not self.offered("STARTTLS"):
            self.reply("502 5.5.1 STARTTLS not offered")
            return
        self.reply("220 2.0.0 Ready to start TLS")
        self.start_tls()
        self.session.helo, self.session.esmtp = None, False  # RFC 3207 4.2: start over
        self.reset()

    def do_AUTH(self, arg: str) -> None:
        if not self.offered("AUTH"):
            self.reply("503 5.5.1 AUTH not offered")
            return
        if self.session.auth_user is not None:
            self.reply("503 5.5.1 Already authenticated")
            return
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        try:
            if mechanism == "PLAIN":
                response = initial.strip() or self.challenge("")
                _authzid, user, password = base64.b64decode(response, validate=True).decode().split("\0")
            elif mechanism == "LOGIN":
                user_b64 = initial.strip() or self.challenge("VXNlcm5hbWU6")  # "Username:"
                user = base64.b64decode(user_b64, validate=True).decode()
                password_b64 = self.challenge("UGFzc3dvcmQ6")  # "Password:"
                password = base64.b64decode(password_b64, validate=True).decode()
            else:
                self.reply("504 5.5.4 Unrecognised authentication mechanism")
                return
        except _Cancelled:
            self.reply("501 5.7.0 Authentication cancelled")
            return
        except (ValueError, UnicodeDecodeError):
            self.reply("501 5.5.2 Malformed authentication data")
            return
        if self.sink.auth.get(user) != password:
            self.reply("535 5.7.8 Authentication credentials invalid")
            return
        self.session.auth_user = user
        self.reply("235 2.7.0 Authentication successful")

    def challenge(self, text: str) -> str:
        self.send(f"334 {text}")
        answer = self.readline().rstrip(b"\r\n").decode("ascii", "replace")
        if answer == "*":
            raise _Cancelled()
        return answer

    def do_MAIL(self, arg: str) -> None:
        line = f"MAIL {arg}"
        if self.session.helo is None:
            self.reply("503 5.5.1 Say EHLO first")
            return
        if self.sink.auth and self.session.auth_user is None:
            self.reply("530 5.7.0 Authentication required")
            return
        if self.mail_from is not None:
            self.reply("503 5.5.1 Nested MAIL command")
            return
        match = _MAIL_RE.match(line)
        if match is None:
            self.session.violations.append(f"malformed: {line}")
            self.reply("501 5.5.4 Syntax: MAIL FROM:<address> [parameters]")
            return
        address, words = match.group(1), (match.group(2) or "").split()
        params = _params(words)
        refusal = self.check_mail_params(params)
        if refusal is None and not address.isascii() and "SMTPUTF8" not in params:
            refusal = "553 5.6.7 Non-ASCII address without SMTPUTF8"
        if refusal is not None:
            self.session.violations.append(f"refused: {line} -> {refusal}")
            self.reply(refusal)
            return
        hooked = self.sink._reply_from_hooks(Stage("MAIL", self.session, mail_from=address))
        if hooked is not None:
            self.reply(hooked)
            return
        self.mail_from, self.mail_options = address, words
        self.reply("250 2.1.0 Sender OK")

    def check_mail_params(self, params: dict[str, str | None]) -> str | None:
        for key, value in params.items():
            if key == "SIZE":
                if not self.offered("SIZE"):
                    return "555 5.5.4 SIZE not offered"
                if value is None or not value.isdigit():
                    return "501 5.5.4 Bad SIZE"
                if self.sink.max_size is not None and int(value) > self.sink.max_size:
                    return "552 5.3.4 Message too big"
            elif key == "BODY":
                if (value or "").upper() not in ("7BIT", "8BITMIME"):
                    return "501 5.5.4 Bad BODY"
                if value.upper() == "8BITMIME" and not self.offered("8BITMIME"):
                    return "555 5.5.4 8BITMIME not offered"
            elif key == "SMTPUTF8":
                if not self.offered("SMTPUTF8"):
                    return "555 5.5.4 SMTPUTF8 not offered"
            elif key in DSN_MAIL_PARAMS:
                if not self.offered("DSN"):
                    return f"555 5.5.4 {key} needs DSN, which is not offered"
                if key == "RET" and (value or "").upper() not in ("FULL", "HDRS"):
                    return "501 5.5.4 RET must be FULL or HDRS"
            elif key == "AUTH":
                pass  # RFC 4954 5: accepted and ignored
            else:
                return f"555 5.5.4 Unsupported parameter {key}"
        return None

    def do_RCPT(self, arg: str) -> None:
        line = f"RCPT {arg}"
        if self.mail_from is None:
            self.reply("503 5.5.1 Need MAIL first")
            return
        match = _RCPT_RE.match(line)
        if match is None or not match.group(1):
            self.session.violations.append(f"malformed: {line}")
            self.reply("501 5.5.4 Syntax: RCPT TO:<address> [parameters]")
            return
        address, words = match.group(1), (match.group(2) or "").split()
        refusal = None
        for key, value in _params(words).items():
            if key not in DSN_RCPT_PARAMS:
                refusal = f"555 5.5.4 Unsupported parameter {key}"
            elif not self.offered("DSN"):
                refusal = f"555 5.5.4 {key} needs DSN, which is not offered"
            elif key == "NOTIFY" and not _valid_notify(value):
                refusal = "501 5.5.4 Bad NOTIFY"
            elif key == "ORCPT" and ";" not in (value or ""):
                refusal = "501 5.5.4 ORCPT must be addr-type;xtext"
        if refusal is None and not address.isascii() and "SMTPUTF8" not in self.mail_params():
            refusal = "553 5.6.7 Non-ASCII address without SMTPUTF8"
        if refusal is not None:
            self.session.violations.append(f"refused: {line} -> {refusal}")
            self.reply(refusal)
            return
        hooked = self.sink._reply_from_hooks(
            Stage("RCPT", self.session, mail_from=self.mail_from, rcpt=address, rcpt_tos=list(self.rcpt_tos))
        )
        if hooked is not None:
            self.reply(hooked)
            return
        self.rcpt_tos.append(address)
        self.rcpt_options[address] = words
        self.reply("250 2.1.5 Recipient OK")

    def mail_params(self) -> dict[str, str | None]:
        return _params(self.mail_options)

    @staticmethod
    def eight_bit_declared(params: dict[str, str | None]) -> bool:
        return (params.get("BODY") or "").upper() == "8BITMIME" or "SMTPUTF8" in params

    def do_DATA(self, arg: str) -> None:
        if self.mail_from is None or not self.rcpt_tos:
            self.reply("503 5.5.1 Need MAIL and RCPT first")
            return
        self.reply("354 End data with <CR><LF>.<CR><LF>")
        data = self.read_data()
        params = self.mail_params()
        refusal = None
        if self.sink.max_size is not None and len(data) > self.sink.max_size:
            refusal = "552 5.3.4 Message too big"
        elif max(data, default=0) > 0x7F and not self.eight_bit_declared(params):
            # RFC 6152 3 / RFC 5321 2.4: 8-bit content needs BODY=8BITMIME (or SMTPUTF8).
            refusal = "554 5.6.0 8-bit content without BODY=8BITMIME"
        if refusal is not None:
            self.session.violations.append(f"refused DATA: {refusal}")
            self.reply(refusal)
            self.reset()
            return
        hooked = self.sink._reply_from_hooks(
            Stage("DATA", self.session, mail_from=self.mail_from, rcpt_tos=list(self.rcpt_tos), data=data)
        )
        message = ReceivedMessage(
            mail_from=self.mail_from,
            rcpt_tos=list(self.rcpt_tos),
            data=data,
            mail_options=list(self.mail_options),
            rcpt_options={k: list(v) for k, v in self.rcpt_options.items()},
            tls=self.tls_active,
            auth_user=self.session.auth_user,
            connection=self.session.number,
            helo=self.session.helo,
        )
        self.reset()
        if hooked is not None and not hooked.startswith("2"):
            self.reply(hooked)
            return
        self.hold()
        if self.peer_gone():
            self.sink._record(message, accepted=False)
            raise _Hangup()
        self.sink._record(message, accepted=True)
        self.session.messages += 1
        self.reply(hooked or "250 2.0.0 Message accepted")

    def hold(self) -> None:
        if self.sink._gate.is_set():
            return
        with self.sink._lock:
            self.sink._holding += 1
            self.sink._lock.notify_all()
        try:
            while not self.sink._gate.wait(POLL):
                pass
        finally:
            with self.sink._lock:
                self.sink._holding -= 1

    def read_data(self) -> bytes:
        lines = []
        while True:
            raw = self.readline(limit=1 << 20)
            if raw == b".\r\n":
                break
            if not raw.endswith(b"\r\n"):
                self.session.violations.append("bare LF (or unterminated line) in DATA")
            if raw.startswith(b"."):
                raw = raw[1:]  # RFC 5321 4.5.2 transparency
            lines.append(raw)
        return b"".join(lines)

    def do_RSET(self, arg: str) -> None:
        self.reset()
        self.reply("250 2.0.0 Reset")

    def do_NOOP(self, arg: str) -> None:
        self.reply("250 2.0.0 OK")

    def do_VRFY(self, arg: str) -> None:
        self.reply("252 2.5.0 Cannot verify")

    def do_QUIT(self, arg: str) -> str:
        self.reply("221 2.0.0 Bye")
        return "quit"


class _Cancelled(Exception):
    """The client answered a SASL challenge with "*"."""


def _valid_notify(value: str | None) -> bool:
    words = (value or "").upper().split(",")
    if words == ["NEVER"]:
        return True
    return bool(words) and all(word in ("SUCCESS", "FAILURE", "DELAY") for word in words)


# --------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------

def make_self_signed(
    tmpdir: str | Path, names: Iterable[str] = ("localhost", "127.0.0.1"), *, stem: str = "sink"
) -> tuple[Path, Path]:
    """A self-signed server certificate and its key (PEM) for `names`, made by openssl.

    The certificate is an end-entity one (CA:FALSE, serverAuth): a verifying client
    (rustls/webpki) that is given it as an extra trust anchor accepts it, whereas webpki
    refuses a CA:TRUE certificate as a server's own (CaUsedAsEndEntity), which is what
    plain `openssl req -x509` would make. Names that parse as IP addresses go in as IP
    SANs, the rest as DNS SANs. The first name is the subject CN.
    """
    names = list(names)
    if not names:
        raise ValueError("at least one name")
    directory = Path(tmpdir)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key, config = directory / f"{stem}-cert.pem", directory / f"{stem}-key.pem", directory / f"{stem}.cnf"
    sans = []
    for name in names:
        try:
            sans.append(f"IP:{ipaddress.ip_address(name)}")
        except ValueError:
            sans.append(f"DNS:{name}")
    config.write_text(
        "[req]\n"
        "distinguished_name = dn\n"
        "x509_extensions = leaf\n"
        "prompt = no\n"
        "[dn]\n"
        f"CN = {names[0]}\n"
        "[leaf]\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        f"subjectAltName = {', '.join(sans)}\n"
        "subjectKeyIdentifier = hash\n"
    )
    subprocess.run(
        [
            "openssl", "req", "-x509", "-new", "-nodes",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-days", "30", "-config", str(config),
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def client_tls_context(ca_cert: str | Path | None = None) -> ssl.SSLContext:
    """A verifying client context trusting `ca_cert` (for smtplib against a sink)."""
    return ssl.create_default_context(cafile=str(ca_cert) if ca_cert else None)
