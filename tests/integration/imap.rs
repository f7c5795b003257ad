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
    // Non-synchronising literal within LITERAL-'s limit.
    c.send(b"c APPEND INBOX {14+}\r\nSubject: y\r\n\r\n\r\n");
    let reply = tagged(&mut c, "c");
    assert!(
        reply.last().unwrap().starts_with("c OK [APPENDUID "),
        "{reply:?}"
    );
    let reply = command(&mut c, "s", "EXAMINE INBOX");
    assert!(reply.contains(&"* 2 EXISTS".to_string()), "{reply:?}");
    let reply = command(&mut c, "f", "FETCH 1:* (FLAGS RFC822.SIZE)");
    assert_eq!(reply[0], "* 1 FETCH (FLAGS (\\Seen) RFC822.SIZE 13)");
    assert_eq!(reply[1], "* 2 FETCH (FLAGS () RFC822.SIZE 14)");
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
