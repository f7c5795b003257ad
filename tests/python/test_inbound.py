"""Inbound checks on the MX port (issue 10): SPF, DKIM, DMARC, ARC, Authentication-Results,
client reputation (iprev, HELO, DNSBL/RHSBL) and the per-client message rate.

Everything DNS answers comes from an offline fixture on loopback. The verdicts are compared
case by case with independent implementations on the same records: pyspf for SPF and
dkimpy for DKIM and ARC (differential testing); dkimpy also signs and seals the messages.
"""

import base64
import random
import email.utils
import imaplib
import re
import smtplib
import subprocess

import dkim
import dns.resolver
import pytest
import spf

from conftest import ALICE, BOB, HOST, HOSTNAME, PASSWORDS, imaps_login, new_token, smtp_login
from relay_fixtures import DnsServer

CLIENT_NAME = "client.good.test"


def rsa_key() -> tuple[bytes, str]:
    """A fresh RSA-2048 key: (PEM private key, base64 DER public key)."""
    pem = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        check=True, capture_output=True,
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubout", "-outform", "DER"], input=pem, check=True, capture_output=True
    ).stdout
    return pem, base64.b64encode(der).decode()


def chunks(text: str) -> list[str]:
    """A long TXT value as 255-octet character-strings (RFC 7208 §3.3)."""
    return [text[i:i + 255] for i in range(0, len(text), 255)]


@pytest.fixture(scope="module")
def keys():
    return {"good": rsa_key(), "lists": rsa_key(), "other": rsa_key()}


@pytest.fixture
def world(keys):
    """The DNS of a few test domains, served on loopback for the duration of a test."""
    good_pub = keys["good"][1]
    lists_pub = keys["lists"][1]
    zone = {
        # The client: 127.0.0.1 with forward-confirmed reverse DNS.
        "1.0.0.127.in-addr.arpa": {"PTR": [CLIENT_NAME]},
        CLIENT_NAME: {"A": ["127.0.0.1"]},
        # A well-run sender: SPF, DKIM and DMARC p=reject.
        "good.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
        "sel._domainkey.good.test": {"TXT": [chunks(f"v=DKIM1; k=rsa; p={good_pub}")]},
        "_dmarc.good.test": {"TXT": ["v=DMARC1; p=reject"]},
        # A bank whose name is spoofed: its mail never comes from 127.0.0.1.
        "bank.test": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]},
        "_dmarc.bank.test": {"TXT": ["v=DMARC1; p=reject"]},
        "news.test": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]},
        "_dmarc.news.test": {"TXT": ["v=DMARC1; p=quarantine"]},
        "flaky.test": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]},
        "_dmarc.flaky.test": {"SERVFAIL": True},
        # The attacker's own domain: SPF passes for it, but it does not align.
        "evil.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
        # A mailing list that rewrites messages and seals them with ARC.
        "lists.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
        "arc._domainkey.lists.test": {"TXT": [chunks(f"v=DKIM1; k=rsa; p={lists_pub}")]},
        "sel._domainkey.lists.test": {"TXT": [chunks(f"v=DKIM1; k=rsa; p={lists_pub}")]},
    }
    with DnsServer(zone) as server:
        yield server


def txt_of(world: DnsServer, name: bytes | str) -> bytes | None:
    """What the fixture serves as TXT for `name` (dkimpy's dnsfunc)."""
    if isinstance(name, bytes):
        name = name.decode()
    records = world.zone.get(name.rstrip(".").lower(), {}).get("TXT")
    if not records:
        return None
    value = records[0]
    return ("".join(value) if isinstance(value, list) else value).encode()


def checked_server(make_server, world, inbound: str = "", **options):
    extra = (
        f'\n[relay]\ndns_servers = ["{world.address}"]\n'
        f"\n[inbound]\n{inbound}\n"
    )
    return make_server(extra_config=extra, **options)


def message(sender: str, token: str, *, to: str = ALICE, body: str | None = None, extra: str = "") -> bytes:
    text = (
        f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: test {token}\r\n"
        f"Date: {email.utils.formatdate()}\r\nMessage-ID: <{token}@sender.test>\r\n{extra}\r\n"
        + (body or f"Hello, this is {token}.\r\n")
    )
    return text.encode()


def sign(msg: bytes, domain: str, pem: bytes, selector: str = "sel") -> bytes:
    signature = dkim.sign(
        msg, selector.encode(), domain.encode(), pem,
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    return signature + msg


def send(server, mail_from: str, msg: bytes, *, helo: str = CLIENT_NAME, to: str = ALICE, source: str = HOST):
    """One transaction on the MX port; returns the first reply other than 250 (the
    checks' refusals come at RCPT), else the reply to the end of data."""
    with smtplib.SMTP(HOST, server.port("smtp"), local_hostname=helo, timeout=30,
                      source_address=(source, 0)) as smtp:
        smtp.ehlo(helo)
        code, text = smtp.mail(mail_from)
        if code != 250:
            return code, text
        code, text = smtp.rcpt(to)
        if code != 250:
            return code, text
        return smtp.data(msg)


def stored(server, token: str, user: str = ALICE) -> tuple[str, list[str], bytes]:
    """(mailbox, flags, bytes) of the one message carrying `token` in its subject."""
    imap = imaps_login(server, user)
    try:
        for mailbox in ("INBOX", "Junk"):
            imap.select(mailbox, readonly=True)
            _, found = imap.search(None, "SUBJECT", token)
            numbers = found[0].split()
            if numbers:
                assert len(numbers) == 1
                _, data = imap.fetch(numbers[0], "(FLAGS BODY.PEEK[])")
                flags = imaplib.ParseFlags(data[0][0])
                return mailbox, [f.decode() for f in flags], data[0][1]
        raise AssertionError(f"message {token} not stored")
    finally:
        imap.logout()


def results_of(raw: bytes) -> list[str]:
    """The method results of our Authentication-Results: header, unfolded."""
    header = raw.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = re.sub(r"\r\n[ \t]+", " ", header)
    ours = [line for line in unfolded.split("\r\n")
            if line.lower().startswith(f"authentication-results: {HOSTNAME};")]
    assert len(ours) == 1, unfolded
    return [part.strip() for part in ours[0].split(";")[1:]]


def result(raw: bytes, method: str, qualifier: str = "") -> str:
    """The result of `method` (with `qualifier`, e.g. smtp.mailfrom) in our header."""
    for part in results_of(raw):
        if part.startswith(method + "=") and qualifier in part:
            return part.split("=", 1)[1].split()[0]
    raise AssertionError(f"no {method} {qualifier} in {results_of(raw)}")


# --------------------------------------------------------------------------
# DKIM and DMARC
# --------------------------------------------------------------------------

def test_signed_mail_from_a_good_sender_passes(make_server, world, keys):
    server = checked_server(make_server, world)
    token = new_token()
    msg = sign(message("news@good.test", token), "good.test", keys["good"][0])
    assert dkim.verify(msg, dnsfunc=lambda name, timeout=5: txt_of(world, name))
    code, _ = send(server, "bounce@good.test", msg)
    assert code == 250
    mailbox, flags, raw = stored(server, token)
    assert (mailbox, "$Junk" in flags) == ("INBOX", False)
    assert result(raw, "dkim") == "pass"
    assert result(raw, "spf", "smtp.mailfrom") == "pass"
    assert result(raw, "dmarc") == "pass"
    assert result(raw, "iprev") == "pass"
    assert b"X-Letterbox-Junk: no; score=0.0\r\n" in raw


def test_dkim_verdicts_match_dkimpy(make_server, world, keys):
    """Signed by dkimpy, then left alone, altered in transit, or signed with the wrong key:
    our dkim= result must agree with dkimpy's verification of the same bytes."""
    server = checked_server(make_server, world)
    cases = {}
    token = new_token()
    cases["intact"] = (token, sign(message("a@good.test", token), "good.test", keys["good"][0]))
    token = new_token()
    signed = sign(message("a@good.test", token), "good.test", keys["good"][0])
    cases["body altered"] = (token, signed.replace(b"Hello,", b"Hullo,"))
    token = new_token()
    signed = sign(message("a@good.test", token), "good.test", keys["good"][0])
    cases["header altered"] = (token, signed.replace(b"To: <", b"To: <x"))
    token = new_token()
    cases["wrong key"] = (token, sign(message("a@good.test", token), "good.test", keys["other"][0]))
    token = new_token()
    cases["unknown selector"] = (
        token, sign(message("a@good.test", token), "good.test", keys["good"][0], selector="nokey"))
    seen = {}
    for name, (token, msg) in cases.items():
        theirs = dkim.verify(msg, dnsfunc=lambda n, timeout=5: txt_of(world, n))
        code, _ = send(server, "bounce@good.test", msg)
        assert code == 250, name  # SPF aligns, so DMARC passes whatever DKIM says
        ours = result(stored(server, token)[2], "dkim")
        seen[name] = (ours, theirs)
        assert (ours == "pass") == theirs, f"{name}: ours {ours}, dkimpy {theirs}"
    assert seen["intact"] == ("pass", True)
    # A body hash that does not verify is "neutral" (as OpenDKIM reports it); a
    # signature over altered headers is "fail".
    assert seen["body altered"][0] == "neutral"
    assert seen["header altered"][0] == "fail"
    assert seen["unknown selector"][0] in ("permerror", "neutral")


def test_dmarc_reject_refuses_a_spoofed_sender(make_server, world):
    server = checked_server(make_server, world)
    msg = message("ceo@bank.test", new_token())
    assert send(server, "x@evil.test", msg) == (550, b"5.7.1 Rejected by the DMARC policy of bank.test")
    server.wait_for_log("verdict=reject score=1.5 dmarc=fail")


def test_dmarc_quarantine_files_into_junk(make_server, world):
    server = checked_server(make_server, world)
    token = new_token()
    assert send(server, "x@evil.test", message("offers@news.test", token))[0] == 250
    mailbox, flags, raw = stored(server, token)
    assert mailbox == "Junk"
    assert "$Junk" in flags
    assert result(raw, "dmarc") == "fail"
    assert b"X-Letterbox-Junk: yes; score=1.5;\r\n\tdmarc=fail (+1.5)\r\n" in raw


def test_dmarc_policy_off_only_records(make_server, world):
    server = checked_server(make_server, world, "dmarc_policy = false")
    token = new_token()
    assert send(server, "x@evil.test", message("ceo@bank.test", token))[0] == 250
    mailbox, _, raw = stored(server, token)
    assert mailbox == "INBOX"
    assert result(raw, "dmarc") == "fail"


def test_a_dns_failure_on_the_dmarc_record_defers(make_server, world):
    server = checked_server(make_server, world)
    code, text = send(server, "x@evil.test", message("a@flaky.test", new_token()))
    assert (code, text) == (451, b"4.4.3 Temporary DNS failure checking DMARC for flaky.test")


def test_forged_results_claiming_our_name_are_removed(make_server, world):
    server = checked_server(make_server, world)
    token = new_token()
    forged = (
        f"Authentication-Results: {HOSTNAME}; dkim=pass header.d=bank1.test\r\n"
        "Authentication-Results: elsewhere.test; spf=pass\r\n"
        f"Authentication-Results: (a \\( comment)\r\n\t{HOSTNAME.upper()};\r\n dkim=pass header.d=bank2.test\r\n"
        f'Authentication-Results: "{HOSTNAME}"; dkim=pass header.d=bank3.test\r\n'
        "X-Letterbox-Junk: no; score=0.0\r\n"
    )
    # Large enough to be spooled to a file, which is then re-spooled without the fields.
    body = "filler line of a long message\r\n" * 5000
    msg = message("a@evil.test", token, extra=forged, body=body)
    assert send(server, "x@evil.test", msg)[0] == 250
    raw = stored(server, token)[2]
    for n in (1, 2, 3):
        assert f"header.d=bank{n}.test".encode() not in raw
    assert raw.count(b"X-Letterbox-Junk:") == 1
    assert b"Authentication-Results: elsewhere.test; spf=pass\r\n" in raw
    assert result(raw, "spf", "smtp.mailfrom") == "pass"
    assert raw.endswith(body.encode())


def test_submission_is_not_checked(make_server, world):
    server = checked_server(make_server, world)
    token = new_token()
    with smtp_login(server, ALICE) as smtp:
        smtp.sendmail(ALICE, [BOB], message(ALICE, token, to=BOB))
    raw = stored(server, token, BOB)[2]
    assert b"Authentication-Results:" not in raw
    assert b"X-Letterbox-Junk" not in raw


# --------------------------------------------------------------------------
# ARC
# --------------------------------------------------------------------------

def forwarded_by_list(keys, token: str, *, tamper_after_seal: bool = False, saw: str = "pass") -> bytes:
    """good.test's signed message, rewritten by lists.test (subject tag, footer) and
    sealed by it with dkimpy's ARC implementation."""
    original = sign(message("author@good.test", token), "good.test", keys["good"][0])
    # What the list's own server found on arrival, recorded for the ARC set.
    results = (
        "Authentication-Results: lists.test; dkim=pass header.d=good.test;"
        f" spf=pass smtp.mailfrom=good.test; dmarc={saw} header.from=good.test\r\n"
    ).encode()
    rewritten = results + original.replace(b"Subject: test", b"Subject: [list] test")
    rewritten += b"-- \r\nThe list footer\r\n"
    seal = dkim.arc_sign(rewritten, b"arc", b"lists.test", keys["lists"][0], b"lists.test",
                         include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    sealed = b"".join(seal) + rewritten
    if tamper_after_seal:
        sealed = sealed.replace(b"The list footer", b"The evil footer")
    return sealed


def arc_verdict(world, msg: bytes) -> str:
    cv, _, _ = dkim.arc_verify(msg, dnsfunc=lambda n, timeout=5: txt_of(world, n))
    return cv.decode()


def test_arc_from_a_trusted_list_overrides_the_dmarc_failure(make_server, world, keys):
    server = checked_server(make_server, world, 'trusted_arc_sealers = ["lists.test"]')
    token = new_token()
    msg = forwarded_by_list(keys, token)
    assert arc_verdict(world, msg) == "pass"
    assert send(server, "bounce@lists.test", msg)[0] == 250
    mailbox, flags, raw = stored(server, token)
    assert (mailbox, "$Junk" in flags) == ("INBOX", False)
    assert result(raw, "arc") == "pass"
    assert result(raw, "dkim") == "neutral"  # the footer broke the body hash
    assert result(raw, "dmarc") == "fail"


def test_arc_counts_only_from_a_trusted_sealer_that_saw_dmarc_pass(make_server, world, keys):
    rejected = (550, b"5.7.1 Rejected by the DMARC policy of good.test")
    # Anyone can seal: a valid chain from an unknown sealer proves nothing (RFC 8617 §7.2).
    server = checked_server(make_server, world)
    assert send(server, "bounce@lists.test", forwarded_by_list(keys, new_token())) == rejected
    # A trusted sealer that recorded a DMARC failure on arrival vouches for nothing.
    trusting = checked_server(make_server, world, 'trusted_arc_sealers = ["lists.test"]')
    msg = forwarded_by_list(keys, new_token(), saw="fail")
    assert arc_verdict(world, msg) == "pass"
    assert send(trusting, "bounce@lists.test", msg) == rejected


def test_a_broken_arc_chain_does_not_save_the_message(make_server, world, keys):
    server = checked_server(make_server, world, 'trusted_arc_sealers = ["lists.test"]')
    msg = forwarded_by_list(keys, new_token(), tamper_after_seal=True)
    assert arc_verdict(world, msg) == "fail"
    assert send(server, "bounce@lists.test", msg) == (
        550, b"5.7.1 Rejected by the DMARC policy of good.test")


# --------------------------------------------------------------------------
# SPF, compared with pyspf
# --------------------------------------------------------------------------

SPF_CASES = {
    # name: (TXT records of the sender domain, extra zone entries)
    "ip4-pass": (["v=spf1 ip4:127.0.0.1 -all"], {}),
    "ip4-fail": (["v=spf1 ip4:127.0.0.2 -all"], {}),
    "softfail": (["v=spf1 ip4:127.0.0.2 ~all"], {}),
    "neutral": (["v=spf1 ?all"], {}),
    "none": ([], {}),
    "not-spf": (["v=spf10 -all"], {}),
    "cidr": (["v=spf1 ip4:127.0.0.0/24 -all"], {}),
    "ip6-only": (["v=spf1 ip6:::1 -all"], {}),
    "a": (["v=spf1 a -all"], {"a.spf.test": {"A": ["127.0.0.1"]}}),
    "a-other": (["v=spf1 a:host.spf.test -all"], {"host.spf.test": {"A": ["127.0.0.9"]}}),
    "mx": (["v=spf1 mx -all"], {"mx.spf.test": {"MX": [(10, "mail.spf.test")]},
                                "mail.spf.test": {"A": ["127.0.0.1"]}}),
    "include": (["v=spf1 include:inc.spf.test -all"], {"inc.spf.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]}}),
    "include-nomatch": (["v=spf1 include:soft.spf.test -all"], {"soft.spf.test": {"TXT": ["v=spf1 ~all"]}}),
    "include-missing": (["v=spf1 include:missing.spf.test -all"], {}),
    "redirect": (["v=spf1 redirect=red.spf.test"], {"red.spf.test": {"TXT": ["v=spf1 -all"]}}),
    "syntax": (["v=spf1 ip4:127.0.0.1 ip4:bad -all"], {}),
    "two-records": (["v=spf1 -all", "v=spf1 +all"], {}),
    "exists-macro": (["v=spf1 exists:%{i}.ex.spf.test -all"], {"127.0.0.1.ex.spf.test": {"A": ["127.0.0.2"]}}),
    "minus-ip": (["v=spf1 -ip4:127.0.0.1 +all"], {}),
    "servfail": (None, {}),
    "too-many-lookups": (["v=spf1 " + " ".join(f"a:h{i}.spf.test" for i in range(11)) + " -all"], {}),
}


def spf_zone(name: str) -> tuple[str, dict]:
    records, extra = SPF_CASES[name]
    domain = f"{name}.spf.test"
    entries = {}
    if records is None:
        entries[domain] = {"SERVFAIL": True}
    elif records:
        entries[domain] = {"TXT": records}
    else:
        entries[domain] = {"A": ["192.0.2.99"]}  # exists, publishes nothing
    entries.update(extra)
    return domain, entries


def pyspf_verdict(world: DnsServer, sender: str) -> str:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [HOST]
    resolver.port = world.port
    resolver.lifetime = 5
    saved = dns.resolver.default_resolver
    dns.resolver.default_resolver = resolver
    try:
        verdict, _ = spf.check2(i=HOST, s=sender, h=CLIENT_NAME)
    finally:
        dns.resolver.default_resolver = saved
    return verdict


def test_spf_verdicts_match_pyspf(make_server, world):
    for name in SPF_CASES:
        _, entries = spf_zone(name)
        for entry, records in entries.items():
            world.zone[entry] = records
    server = checked_server(make_server, world)
    mismatches = []
    for name in SPF_CASES:
        domain, _ = spf_zone(name)
        sender = f"user@{domain}"
        theirs = pyspf_verdict(world, sender)
        token = new_token()
        code, text = send(server, sender, message("a@evil.test", token))
        assert code == 250, (name, text)
        ours = result(stored(server, token)[2], "spf", "smtp.mailfrom")
        if ours != theirs:
            mismatches.append(f"{name}: ours {ours}, pyspf {theirs}")
    assert mismatches == []


def test_spf_fail_can_be_configured_to_reject(make_server, world):
    server = checked_server(make_server, world, 'spf_fail = "reject"')
    code, text = send(server, "ceo@bank.test", message("ceo@bank.test", new_token()))
    assert (code, text) == (550, b"5.7.23 SPF validation failed for bank.test")


# --------------------------------------------------------------------------
# Client reputation and rate
# --------------------------------------------------------------------------

def test_dnsbl_listing_rejects_or_scores(make_server, world):
    world.zone["1.0.0.127.bl.test"] = {"A": ["127.0.0.2"]}
    world.zone["2.0.0.127.bl.test"] = {"A": ["127.255.255.254"]}  # "query refused"
    world.zone["evil.test.dbl.test"] = {"A": ["127.0.1.2"]}
    server = checked_server(make_server, world, 'dnsbl = ["bl.test"]\ndnsbl_action = "reject"')
    code, text = send(server, "x@good.test", message("x@good.test", new_token()))
    assert (code, text) == (554, b"5.7.1 Client address listed by bl.test")
    # postmaster still gets mail from a listed client (RFC 5321 §4.5.1).
    token = new_token()
    msg = message("x@good.test", token, to="postmaster@example.org")
    assert send(server, "x@good.test", msg, to="postmaster@example.org")[0] == 250
    assert stored(server, token)[0] == "INBOX"  # alice is the domain's oldest account
    # From 127.0.0.2 the list answers with its refusal code, which is not a listing.
    token = new_token()
    assert send(server, "x@nowhere.test", message("x@nowhere.test", token), source="127.0.0.2")[0] == 250

    scoring = checked_server(make_server, world, 'dnsbl = ["bl.test"]\nrhsbl = ["dbl.test"]')
    token = new_token()
    assert send(scoring, "x@evil.test", message("x@evil.test", token))[0] == 250
    mailbox, flags, raw = stored(scoring, token)
    assert mailbox == "Junk"
    assert b"X-Letterbox-Junk: yes; score=7.0;\r\n\tdnsbl=bl.test (+4.0);\r\n\trhsbl=dbl.test (+3.0)\r\n" in raw


def test_helo_and_reverse_dns_are_scored(make_server, world):
    world.zone["2.0.0.127.in-addr.arpa"] = {"PTR": ["liar.good.test"]}
    world.zone["liar.good.test"] = {"A": ["127.0.0.9"]}
    server = checked_server(make_server, world)
    token = new_token()
    # No SPF for the sender's domain, so only the client counts: 4.5 stays below 5.
    assert send(server, "x@nowhere.test", message("x@nowhere.test", token), helo=HOSTNAME,
                source="127.0.0.2")[0] == 250
    mailbox, _, raw = stored(server, token)
    assert mailbox == "INBOX"
    assert result(raw, "iprev") == "fail"
    assert b"X-Letterbox-Junk: no; score=4.5;\r\n\tiprev=fail (+1.5);\r\n\thelo=ours (+3.0)\r\n" in raw


def test_message_rate_per_client(make_server, world):
    server = checked_server(make_server, world, "max_messages_per_minute = 3")
    with smtplib.SMTP(HOST, server.port("smtp"), local_hostname=CLIENT_NAME, timeout=30) as smtp:
        smtp.ehlo()
        for _ in range(3):
            assert smtp.mail("x@good.test")[0] == 250
            assert smtp.rcpt(ALICE)[0] == 250
            smtp.rset()
        assert smtp.mail("x@good.test")[0] == 250
        assert smtp.rcpt(ALICE) == (450, b"4.7.1 Too many messages from your address, try again later")
    # Another address is not held back.
    with smtplib.SMTP(HOST, server.port("smtp"), local_hostname=CLIENT_NAME, timeout=30,
                      source_address=("127.0.0.3", 0)) as smtp:
        smtp.ehlo()
        assert smtp.mail("x@good.test")[0] == 250
        assert smtp.rcpt(ALICE)[0] == 250


# --------------------------------------------------------------------------
# The junk filter at delivery
# --------------------------------------------------------------------------

SPAM_WORDS = "free prize winner cash claim urgent offer casino lottery bonus click guaranteed".split()
HAM_WORDS = "meeting project review notes tuesday agenda draft report minutes budget schedule lunch".split()


def words_body(words: list[str], seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(words) for _ in range(40)) + "\r\n"


def test_each_account_s_own_filter_files_its_copy(make_server, world):
    """alice has taught her filter, bob has not: one message to both lands in alice's Junk
    (with her probability in the header) and in bob's INBOX."""
    server = checked_server(make_server, world)
    for i in range(6):
        for words, kind in ((SPAM_WORDS, "--spam"), (HAM_WORDS, "--ham")):
            text = message("x@evil.test", new_token(), body=words_body(words, i)).decode()
            server.cli("junk", "train", ALICE, kind, stdin_text=text)
    token = new_token()
    # Over 128 KiB, so the spooled file is delivered twice (one copy per verdict).
    padding = "padding\r\n" * 15000
    spam = message("x@evil.test", token, body=words_body(SPAM_WORDS, 99) + padding)
    with smtplib.SMTP(HOST, server.port("smtp"), local_hostname=CLIENT_NAME, timeout=30) as smtp:
        assert smtp.sendmail("x@evil.test", [ALICE, BOB], spam) == {}
    mailbox, flags, raw = stored(server, token, ALICE)
    assert (mailbox, "$Junk" in flags) == ("Junk", True)
    assert re.search(rb"X-Letterbox-Junk: yes; score=0\.0;\r\n\tbayes=(0\.9\d\d|1\.000)\r\n", raw), raw
    mailbox, flags, raw = stored(server, token, BOB)
    assert (mailbox, "$Junk" in flags) == ("INBOX", False)
    assert b"X-Letterbox-Junk: no; score=0.0\r\n" in raw
    assert raw.endswith(padding.encode())
    # Ham-like mail stays in alice's INBOX.
    token = new_token()
    ham = message("x@evil.test", token, body=words_body(HAM_WORDS, 98))
    assert send(server, "x@evil.test", ham)[0] == 250
    mailbox, _, raw = stored(server, token, ALICE)
    assert mailbox == "INBOX"
    assert re.search(rb"X-Letterbox-Junk: no; score=0\.0;\r\n\tbayes=0\.0\d\d\r\n", raw), raw
