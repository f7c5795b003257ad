"""POP3: pop3 (STLS) and pop3s (implicit TLS), maildrop semantics, real clients."""

import poplib
import re
import subprocess

import pytest

from conftest import (
    ALICE,
    BOB,
    HOST,
    IO_TIMEOUT,
    PASSWORDS,
    Pop3Client,
    deliver,
    error_text,
    fetch_inbox,
    insecure_tls_context,
    pop3s_login,
    require_tool,
    retr_bytes,
    run_fetchmail,
    sasl_plain,
)


def uidl_map(pop):
    _, lines, _ = pop.uidl()
    return {int(number): uid for number, uid in (line.split() for line in lines)}


# -- transport and authentication -------------------------------------------

def test_stls_then_user_pass(server):
    token, _ = deliver(server, ALICE)
    pop = poplib.POP3(HOST, server.port("pop3"), timeout=IO_TIMEOUT)
    try:
        assert "STLS" in pop.capa()
        pop.stls(context=insecure_tls_context())
        capabilities = pop.capa()
        assert "STLS" not in capabilities, "STLS offered again inside TLS"
        assert "USER" in capabilities
        pop.user(ALICE)
        pop.pass_(PASSWORDS[ALICE])
        assert pop.stat()[0] == 1
        assert token.encode() in retr_bytes(pop, 1)
    finally:
        pop.quit()


def test_pop3s_capabilities_before_login(server):
    pop = poplib.POP3_SSL(HOST, server.port("pop3s"), timeout=IO_TIMEOUT, context=insecure_tls_context())
    try:
        capabilities = pop.capa()
    finally:
        pop.quit()
    for name in ("USER", "UIDL", "TOP", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
        assert name in capabilities, f"CAPA lacks {name}: {capabilities}"
    assert "PLAIN" in [mechanism.upper() for mechanism in capabilities.get("SASL", [])]
    assert "STLS" not in capabilities


def test_pop3s_auth_plain_with_initial_response(server):
    deliver(server, ALICE)
    with Pop3Client(server.port("pop3s"), tls=True) as pop:
        assert pop.status().startswith(b"+OK")
        assert pop.command(b"AUTH PLAIN " + sasl_plain(ALICE, PASSWORDS[ALICE])).startswith(b"+OK")
        assert pop.command("STAT").startswith(b"+OK 1 ")


def test_pop3s_auth_plain_with_continuation(server):
    with Pop3Client(server.port("pop3s"), tls=True) as pop:
        assert pop.status().startswith(b"+OK")
        assert pop.command("AUTH PLAIN") == b"+ "
        assert pop.command(sasl_plain(BOB, PASSWORDS[BOB])).startswith(b"+OK")
        assert pop.command("STAT") == b"+OK 0 0"


def test_wrong_password_gets_auth_response_code(server):
    pop = poplib.POP3_SSL(HOST, server.port("pop3s"), timeout=IO_TIMEOUT, context=insecure_tls_context())
    try:
        pop.user(ALICE)
        with pytest.raises(poplib.error_proto) as failure:
            pop.pass_("wrong-password")
        assert error_text(failure.value) == b"-ERR [AUTH] Invalid credentials"
    finally:
        pop.close()


def test_plaintext_login_refused_by_default(server):
    with Pop3Client(server.port("pop3")) as pop:
        assert pop.status().startswith(b"+OK")
        needs_tls = b"-ERR [SYS/PERM] Authentication requires TLS: use STLS"
        assert pop.command(f"USER {ALICE}") == needs_tls
        # USER was refused, so no user is pending for PASS.
        assert pop.command(f"PASS {PASSWORDS[ALICE]}") == b"-ERR Send USER first", "PASS accepted without TLS"
        assert pop.command(b"AUTH PLAIN " + sasl_plain(ALICE, PASSWORDS[ALICE])) == needs_tls
        assert pop.command("STAT") == b"-ERR Not allowed before login", "session is authenticated without TLS"


def test_plaintext_login_allowed_on_loopback_when_configured(make_server):
    server = make_server(allow_plaintext_on_loopback=True)
    token, _ = deliver(server, ALICE)
    pop = poplib.POP3(HOST, server.port("pop3"), timeout=IO_TIMEOUT)
    try:
        pop.user(ALICE)
        pop.pass_(PASSWORDS[ALICE])
        assert pop.stat()[0] == 1
        assert token.encode() in retr_bytes(pop, 1)
    finally:
        pop.quit()


def test_changed_password_takes_effect(server):
    server.cli("user", "passwd", ALICE, "--password-stdin", stdin_text="brand-New-pass-77\n")
    with pytest.raises(poplib.error_proto) as failure:
        pop3s_login(server, ALICE)
    assert error_text(failure.value) == b"-ERR [AUTH] Invalid credentials"
    pop = pop3s_login(server, ALICE, "brand-New-pass-77")
    pop.quit()


# -- maildrop semantics ------------------------------------------------------

def test_uidl_is_unique_and_stable_across_restart(server):
    for _ in range(3):
        deliver(server, ALICE)
    pop = pop3s_login(server, ALICE)
    before = uidl_map(pop)
    single = pop.uidl(2)
    pop.quit()

    assert sorted(before) == [1, 2, 3]
    assert len(set(before.values())) == 3, "UIDs are not unique"
    for uid in before.values():
        assert 1 <= len(uid) <= 70 and all(0x21 <= byte <= 0x7E for byte in uid), uid
    assert single.split()[1:] == [b"2", before[2]]

    server.restart()
    deliver(server, ALICE)
    pop = pop3s_login(server, ALICE)
    after = uidl_map(pop)
    pop.quit()
    assert {n: after[n] for n in (1, 2, 3)} == before
    assert after[4] not in before.values(), "a new message reused an old UID"


def test_dele_then_quit_removes(server):
    first, _ = deliver(server, ALICE)
    second, _ = deliver(server, ALICE)
    pop = pop3s_login(server, ALICE)
    uids = uidl_map(pop)
    pop.dele(1)
    assert pop.stat()[0] == 1, "STAT still counts a message marked deleted"
    with pytest.raises(poplib.error_proto) as failure:
        pop.retr(1)
    assert error_text(failure.value) == b"-ERR No such message"
    assert pop.quit().startswith(b"+OK")

    pop = pop3s_login(server, ALICE)
    try:
        assert pop.stat()[0] == 1
        remaining = retr_bytes(pop, 1)
        assert second.encode() in remaining and first.encode() not in remaining
        assert uidl_map(pop) == {1: uids[2]}
    finally:
        pop.quit()


def test_dele_then_rset_keeps(server):
    deliver(server, ALICE)
    deliver(server, ALICE)
    pop = pop3s_login(server, ALICE)
    pop.dele(1)
    pop.dele(2)
    pop.rset()
    assert pop.stat()[0] == 2
    pop.quit()
    assert len(fetch_inbox(server, ALICE)) == 2


def test_dele_then_dropped_connection_keeps(server):
    deliver(server, ALICE)
    pop = pop3s_login(server, ALICE)
    pop.dele(1)
    pop.close()  # no QUIT: the UPDATE state is never entered
    assert len(fetch_inbox(server, ALICE)) == 1


def test_top(server):
    body = b"".join(f"body line {n}\r\n".encode() for n in range(1, 6))
    deliver(server, ALICE, body=body)
    pop = pop3s_login(server, ALICE)
    try:
        _, full, _ = pop.retr(1)
        header_end = full.index(b"")
        assert pop.top(1, 2)[1] == full[: header_end + 3]
        assert pop.top(1, 0)[1] == full[: header_end + 1]
        assert pop.top(1, 100)[1] == full
    finally:
        pop.quit()


def test_list_and_stat_sizes_match_retr(server):
    deliver(server, ALICE)
    deliver(server, ALICE, body=b".dotted\r\n..twice\r\n" * 50)
    deliver(server, ALICE, body=b"z" * 998 + b"\r\n")
    pop = pop3s_login(server, ALICE)
    try:
        count, total = pop.stat()
        _, listing, _ = pop.list()
        sizes = {int(number): int(size) for number, size in (line.split() for line in listing)}
        assert count == 3 and sorted(sizes) == [1, 2, 3]
        assert total == sum(sizes.values())
        for number, size in sizes.items():
            assert len(retr_bytes(pop, number)) == size, f"LIST size of message {number} is wrong"
        assert pop.list(2).split()[1:] == [b"2", str(sizes[2]).encode()]
    finally:
        pop.quit()


def test_second_session_gets_in_use(server):
    first = pop3s_login(server, ALICE)
    try:
        second = poplib.POP3_SSL(HOST, server.port("pop3s"), timeout=IO_TIMEOUT, context=insecure_tls_context())
        try:
            second.user(ALICE)
            with pytest.raises(poplib.error_proto) as failure:
                second.pass_(PASSWORDS[ALICE])
            assert error_text(failure.value) == b"-ERR [IN-USE] Maildrop is already locked by another session"
        finally:
            second.close()
        # Another maildrop is not affected.
        fetch_inbox(server, BOB)
        assert first.noop().startswith(b"+OK")
    finally:
        first.quit()
    # Released after QUIT.
    pop3s_login(server, ALICE).quit()


def test_pipelined_commands(server):
    deliver(server, ALICE)
    [stored] = fetch_inbox(server, ALICE)
    with Pop3Client(server.port("pop3s"), tls=True) as pop:
        pop.login(ALICE)
        assert pop.send(b"STAT\r\nLIST 1\r\nUIDL 1\r\nNOOP\r\n")
        stat, listing, uidl, noop = [pop.status() for _ in range(4)]
        assert stat == f"+OK 1 {len(stored)}".encode()
        assert listing == f"+OK 1 {len(stored)}".encode()
        assert re.fullmatch(rb"\+OK 1 [0-9a-f]{16}", uidl), uidl
        assert noop == b"+OK "


# -- real clients -------------------------------------------------------------

@pytest.mark.parametrize("variant", ["pop3-plaintext", "pop3-stls", "pop3s"])
def test_curl_lists_and_retrieves(make_server, variant):
    curl = require_tool("curl")
    server = make_server(allow_plaintext_on_loopback=(variant == "pop3-plaintext"))
    _, message = deliver(server, ALICE)
    [stored] = fetch_inbox(server, ALICE)

    if variant == "pop3s":
        base_url, tls_options = f"pop3s://{HOST}:{server.port('pop3s')}/", ["--insecure"]
    elif variant == "pop3-stls":
        base_url, tls_options = f"pop3://{HOST}:{server.port('pop3')}/", ["--ssl-reqd", "--insecure"]
    else:
        base_url, tls_options = f"pop3://{HOST}:{server.port('pop3')}/", []

    def curl_get(url):
        result = subprocess.run(
            [curl, "--silent", "--show-error", "--max-time", "20", "--user", f"{ALICE}:{PASSWORDS[ALICE]}", *tls_options, url],
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        return result.stdout

    assert curl_get(base_url).split() == [b"1", str(len(stored)).encode()]
    assert curl_get(base_url + "1") == stored


@pytest.mark.parametrize("mode,keep", [("ssl", False), ("stls", True)])
def test_fetchmail_retrieves(server, tmp_path, mode, keep):
    tokens = [deliver(server, ALICE)[0] for _ in range(2)]
    port = server.port("pop3s" if mode == "ssl" else "pop3")
    tls_lines = 'ssl\n    sslproto "TLS1.2+"' if mode == "ssl" else 'sslproto "TLS1.2+"'
    fetched = run_fetchmail(tmp_path, "POP3", port, tls_lines, keep)
    for token in tokens:
        assert fetched.count(f"X-Token: {token}".encode()) == 1
    assert len(fetch_inbox(server, ALICE)) == (2 if keep else 0)

