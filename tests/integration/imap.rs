use crate::harness::{pop3_login, send_mail, Client, Server, PASSWORD};

const PLAINTEXT: &str = "[auth]\nallow_plaintext_on_loopback = true";

/// Sends a tagged command and returns every line up to and including the tagged reply.
fn command(c: &mut Client, tag: &str, command: &str) -> Vec<String> {
    c.send(format!("{tag} {command}\r\n").as_bytes());
    tagged(c, tag)
}

fn tagged(c: &mut Client, tag: &str) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let line = c.line().expect("connection closed");
        let done = line.starts_with(&format!("{tag} "));
        lines.push(line);
        if done {
            return lines;
        }
    }
}

fn login(server: &Server) -> Client {
    let mut c = Client::connect(server.port("imap"));
    assert!(c.line().unwrap().starts_with("* OK [CAPABILITY "));
    let reply = command(
        &mut c,
        "l",
        &format!("LOGIN alice@example.org \"{PASSWORD}\""),
    );
    assert!(reply.last().unwrap().starts_with("l OK"), "{reply:?}");
    c
}

fn deliver(server: &Server, subject: &str) {
    send_mail(
        server.port("smtp"),
        "a@remote.test",
        "alice@example.org",
        &format!("Subject: {subject}\r\n\r\nbody of {subject}\r\n"),
    );
}

#[test]
fn login_disabled_without_tls() {
    let server = Server::start("");
    let mut c = Client::connect(server.port("imap"));
    let greeting = c.line().unwrap();
    assert!(greeting.contains("LOGINDISABLED") && greeting.contains("STARTTLS"));
    let reply = command(
        &mut c,
        "a",
        &format!("LOGIN alice@example.org \"{PASSWORD}\""),
    );
    assert!(reply[0].starts_with("a NO [PRIVACYREQUIRED]"), "{reply:?}");
    let reply = command(&mut c, "b", "SELECT INBOX");
    assert!(reply[0].starts_with("b BAD"), "{reply:?}");
    let reply = command(&mut c, "c", "LOGOUT");
    assert_eq!(reply[0], "* BYE letterbox logging out");
}

#[test]
fn pop3_and_imap_share_the_inbox() {
    let server = Server::start(PLAINTEXT);
    deliver(&server, "first");
    deliver(&server, "second");
    let mut c = login(&server);
    let reply = command(&mut c, "s", "SELECT inbox");
    assert!(reply.contains(&"* 2 EXISTS".to_string()), "{reply:?}");
    assert!(reply.last().unwrap().starts_with("s OK [READ-WRITE]"));
    let reply = command(
        &mut c,
        "f",
        "FETCH 2 (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
    );
    assert_eq!(
        reply[0],
        "* 2 FETCH (UID 2 BODY[HEADER.FIELDS (SUBJECT)] {19}"
    );
    assert_eq!(reply[1], "Subject: second");
    // POP3 deletes message 1; IMAP learns about it at its next command.
    let mut pop = pop3_login(server.port("pop3"), "alice@example.org");
    pop.command("DELE 1", "+OK");
    pop.command("QUIT", "+OK");
    let reply = command(&mut c, "n", "NOOP");
    assert_eq!(reply, vec!["* 1 EXPUNGE", "n OK NOOP completed"]);
    let reply = command(&mut c, "u", "UID SEARCH ALL");
    assert_eq!(reply[0], "* SEARCH 2");
}

#[test]
fn fetch_search_store_do_not_expunge_but_noop_does() {
    let server = Server::start(PLAINTEXT);
    deliver(&server, "one");
    deliver(&server, "two");
    let mut a = login(&server);
    let mut b = login(&server);
    command(&mut a, "s", "SELECT INBOX");
    command(&mut b, "s", "SELECT INBOX");
    command(&mut a, "d", "STORE 1 +FLAGS.SILENT (\\Deleted)");
    let reply = command(&mut a, "e", "EXPUNGE");
    assert_eq!(reply, vec!["* 1 EXPUNGE", "e OK EXPUNGE completed"]);
    // RFC 3501 §7.4.1: no EXPUNGE during FETCH; message 1 stays addressable.
    let reply = command(&mut b, "f", "FETCH 2 (FLAGS)");
    assert_eq!(reply, vec!["* 2 FETCH (FLAGS ())", "f OK FETCH completed"]);
    let reply = command(&mut b, "n", "NOOP");
    assert_eq!(reply, vec!["* 1 EXPUNGE", "n OK NOOP completed"]);
    let reply = command(&mut b, "f2", "FETCH 1 (UID)");
    assert_eq!(reply[0], "* 1 FETCH (UID 2)");
}

#[test]
fn append_limit_and_literals() {
    let server = Server::start(&format!("{PLAINTEXT}\n[limits]\nmax_message_size = 2000"));
    let mut c = login(&server);
    let reply = command(&mut c, "a", "APPEND INBOX {2001}");
    assert!(reply[0].starts_with("a NO [TOOBIG]"), "{reply:?}");
    c.send(b"b APPEND INBOX (\\Seen) {13}\r\n");
    assert!(c.line().unwrap().starts_with('+'));
    c.send(b"Subject: x\r\n\r\n");
    let reply = tagged(&mut c, "b");
    assert!(
        reply.last().unwrap().starts_with("b OK [APPENDUID "),
        "{reply:?}"
    );
    // A non-synchronising literal (LITERAL+).
    c.send(b"c APPEND INBOX {14+}\r\nSubject: y\r\n\r\n\r\n");
    let reply = tagged(&mut c, "c");
    assert!(
        reply.last().unwrap().starts_with("c OK [APPENDUID "),
        "{reply:?}"
    );
    let reply = command(&mut c, "s", "EXAMINE INBOX");
    assert!(reply.contains(&"* 2 EXISTS".to_string()), "{reply:?}");
    let reply = command(&mut c, "f", "FETCH 1:* (FLAGS RFC822.SIZE)");
    // Nobody selected INBOX yet: EXAMINE sees both as \Recent (without claiming them).
    assert_eq!(
        reply[0],
        "* 1 FETCH (FLAGS (\\Seen \\Recent) RFC822.SIZE 13)"
    );
    assert_eq!(reply[1], "* 2 FETCH (FLAGS (\\Recent) RFC822.SIZE 14)");
    let reply = command(&mut c, "x", "STORE 1 +FLAGS (\\Deleted)");
    assert!(reply[0].starts_with("x NO [READ-ONLY]"), "{reply:?}");
}

#[test]
fn bad_input_gets_tagged_errors_and_the_session_continues() {
    // More errors than the default max_errors (10) are sent below.
    let server = Server::start(&format!("{PLAINTEXT}\n[limits]\nmax_errors = 50"));
    let mut c = login(&server);
    for (tag, line) in [
        ("b1", "SEARCH (ALL"),
        ("b2", "SEARCH ALL)"),
        ("b3", "SELECT"),
        ("b4", "LIST \"unterminated"),
        ("b5", "CREATE &Jjo!-"),
        ("b6", "APPEND"),
    ] {
        let reply = command(&mut c, tag, line);
        assert!(
            reply[0].starts_with(&format!("{tag} BAD")),
            "{line}: {reply:?}"
        );
    }
    // Invalid UTF-8 in an atom.
    c.send(b"b7 CREATE \xc3\x28\r\n");
    assert!(tagged(&mut c, "b7")[0].starts_with("b7 BAD"));
    // A literal announced as 4 GB: refused without a continuation, nothing allocated.
    let reply = command(&mut c, "b8", "APPEND INBOX {4294967296}");
    assert!(reply[0].starts_with("b8 NO [TOOBIG]"), "{reply:?}");
    let reply = command(&mut c, "b9", "LOGIN {4294967296}");
    assert!(reply[0].starts_with("b9 BAD [TOOBIG]"), "{reply:?}");
    command(&mut c, "s", "SELECT INBOX");
    let reply = command(&mut c, "f", "FETCH 1 FLAGS");
    assert!(reply[0].starts_with("f BAD"), "empty mailbox: {reply:?}");
    let reply = command(&mut c, "n", "NOOP");
    assert_eq!(reply, vec!["n OK NOOP completed"]);
}

/// The top-level config keys of the store tests; the map size is the one the test's own
/// LMDB handle uses too.
const STORE_TEST_CONFIG: &str = "map_size_mib = 64\n[auth]\nallow_plaintext_on_loopback = true";

/// The server's LMDB environment, opened from the test process as a second process would
/// (LMDB is safe across processes), to damage the store the way a failing disk or a bug
/// would.
fn store_env(server: &Server) -> heed::Env {
    let mut options = heed::EnvOpenOptions::new();
    options.map_size(64 * 1024 * 1024).max_dbs(10);
    // SAFETY: the files are only touched through LMDB, by the server and by this test.
    unsafe { options.open(server.dir.join("data").join("mail")) }.unwrap()
}

/// Deletes stored chunks of the first (lowest-numbered) message blob: those for which
/// `lose` says so, given the chunk index.
fn lose_chunks(server: &Server, lose: impl Fn(u32) -> bool) {
    use heed::types::Bytes;
    let env = store_env(server);
    let mut wtxn = env.write_txn().unwrap();
    let blobs = env
        .open_database::<Bytes, Bytes>(&wtxn, Some("blobs"))
        .unwrap()
        .unwrap();
    let keys: Vec<Vec<u8>> = blobs
        .iter(&wtxn)
        .unwrap()
        .map(|entry| entry.unwrap().0.to_vec())
        .collect();
    let first = keys[0][..8].to_vec();
    for key in keys.iter().filter(|k| k[..8] == first[..]) {
        let chunk = u32::from_be_bytes(key[8..12].try_into().unwrap());
        if lose(chunk) {
            assert!(blobs.delete(&mut wtxn, key).unwrap());
        }
    }
    wtxn.commit().unwrap();
}

/// Appends a message over IMAP and returns the tagged reply.
fn append(c: &mut Client, tag: &str, message: &[u8]) -> String {
    c.send(format!("{tag} APPEND INBOX {{{}}}\r\n", message.len()).as_bytes());
    assert!(c.line().unwrap().starts_with('+'));
    c.send(message);
    c.send(b"\r\n");
    tagged(c, tag).pop().unwrap()
}

/// A message of three store chunks (64 KiB each, see `limits::BLOB_CHUNK`).
fn large_message() -> Vec<u8> {
    let mut message = b"Subject: large\r\n\r\n".to_vec();
    for i in 0..3000 {
        message.extend_from_slice(
            format!("line {i:06} of a message over three chunks\r\n").as_bytes(),
        );
    }
    assert!(message.len() > 2 * 64 * 1024);
    message
}

#[test]
fn fetch_leaves_out_a_message_whose_data_is_gone_and_never_pads() {
    let server = Server::start(STORE_TEST_CONFIG);
    let mut c = login(&server);
    assert!(append(&mut c, "a1", b"Subject: one\r\n\r\nfirst\r\n").starts_with("a1 OK"));
    assert!(append(&mut c, "a2", b"Subject: two\r\n\r\nsecond\r\n").starts_with("a2 OK"));
    command(&mut c, "s", "SELECT INBOX");
    // The first message's bytes disappear (as when another session expunges it): it is
    // left out, the second one is sent, and nothing pretends to be message data.
    lose_chunks(&server, |_| true);
    let reply = command(&mut c, "f", "FETCH 1:2 (UID BODY.PEEK[])");
    assert_eq!(
        reply,
        [
            "* 2 FETCH (UID 2 BODY[] {24}",
            "Subject: two",
            "",
            "second",
            ")",
            "f OK FETCH completed"
        ]
    );
    let reply = command(&mut c, "h", "FETCH 1 BODY.PEEK[HEADER]");
    assert_eq!(reply, ["h OK FETCH completed"]);
}

#[test]
fn a_chunk_lost_while_streaming_ends_the_session_with_bye() {
    let server = Server::start(STORE_TEST_CONFIG);
    let mut c = login(&server);
    let message = large_message();
    assert!(append(&mut c, "a", &message).starts_with("a OK"));
    command(&mut c, "s", "SELECT INBOX");
    lose_chunks(&server, |chunk| chunk == 1);
    c.send(b"f FETCH 1 BODY.PEEK[]\r\n");
    let announced = format!("* 1 FETCH (BODY[] {{{}}}", message.len());
    assert_eq!(c.line().unwrap(), announced);
    // The literal's length was announced, so the connection cannot go on: what follows the
    // first chunk is a BYE and the end of the connection, never padding or a tagged OK.
    let mut rest = String::new();
    while let Some(line) = c.line() {
        assert!(
            !line.starts_with("f "),
            "tagged reply after a broken literal"
        );
        rest.push_str(&line);
        rest.push('\n');
    }
    assert!(
        rest.contains("* BYE"),
        "{}",
        &rest[rest.len().saturating_sub(200)..]
    );
    assert!(!rest.contains(&" ".repeat(64)), "the literal was padded");
    assert!(
        rest.len() < message.len(),
        "more than the first chunk was sent"
    );
    assert!(
        server.stderr().contains("ERROR"),
        "the failure is not logged"
    );
}

#[test]
fn a_store_error_in_fetch_is_a_serverbug_not_an_expunge() {
    use heed::types::{Bytes, U64};
    let server = Server::start(STORE_TEST_CONFIG);
    let mut c = login(&server);
    assert!(append(&mut c, "a", b"Subject: meta\r\n\r\nbody\r\n").starts_with("a OK"));
    command(&mut c, "s", "SELECT INBOX");
    // The stored ENVELOPE/BODYSTRUCTURE of the message can no longer be decoded.
    let env = store_env(&server);
    let mut wtxn = env.write_txn().unwrap();
    let meta = env
        .open_database::<U64<heed::byteorder::BigEndian>, Bytes>(&wtxn, Some("message_meta"))
        .unwrap()
        .unwrap();
    let blob = meta.first(&wtxn).unwrap().unwrap().0;
    meta.put(&mut wtxn, &blob, b"\x01").unwrap();
    wtxn.commit().unwrap();
    let reply = command(&mut c, "f", "FETCH 1 (UID ENVELOPE)");
    assert_eq!(reply.len(), 1, "{reply:?}");
    assert!(reply[0].starts_with("f NO [SERVERBUG] "), "{reply:?}");
    assert!(
        server.stderr().contains("ERROR"),
        "the failure is not logged"
    );
    // What needs no ENVELOPE is still served, and the session goes on.
    let reply = command(&mut c, "g", "FETCH 1 (UID FLAGS)");
    assert_eq!(
        reply,
        ["* 1 FETCH (UID 1 FLAGS (\\Recent))", "g OK FETCH completed"]
    );
}
