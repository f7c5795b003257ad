use crate::harness::{pop3_login, send_mail, smtp_session, smtp_transaction, Client, Server};

const PLAINTEXT_POP3: &str = "[auth]\nallow_plaintext_on_loopback = true";

fn retrieve_all(server: &Server, user: &str) -> Vec<Vec<u8>> {
    let mut pop = pop3_login(server.port("pop3"), user);
    let stat = pop.command("STAT", "+OK");
    let count: usize = stat.split(' ').nth(1).unwrap().parse().unwrap();
    let mut messages = Vec::new();
    for n in 1..=count {
        pop.command(&format!("RETR {n}"), "+OK");
        messages.push(pop.pop3_body());
    }
    pop.command("QUIT", "+OK");
    messages
}

fn body_after_trace(message: &[u8]) -> &[u8] {
    let text = message;
    let pos = text
        .windows(9)
        .position(|w| w == b"Subject: ")
        .expect("Subject header");
    &text[pos..]
}

#[test]
fn pipelined_transaction_is_stored_with_trace_headers() {
    let server = Server::start(PLAINTEXT_POP3);
    let mut c = Client::connect(server.port("smtp"));
    assert!(c.reply().starts_with("220 mx.test"));
    c.send(b"EHLO client.test\r\nMAIL FROM:<sender@remote.test> SIZE=100\r\nRCPT TO:<Alice@Example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
    assert!(c.reply().starts_with("250 "));
    assert!(c.reply().starts_with("250 2.1.0"));
    assert!(c.reply().starts_with("250 2.1.5"));
    assert!(c.reply().starts_with("250 2.1.5"));
    assert!(c.reply().starts_with("354"));
    c.send(b"Subject: hello\r\n\r\n..dotted line\r\nbody\r\n.\r\n");
    assert!(c.reply().starts_with("250 2.0.0"));
    c.command("QUIT", "221");

    for user in ["alice@example.org", "bob@example.org"] {
        let messages = retrieve_all(&server, user);
        assert_eq!(messages.len(), 1, "{user}");
        let m = String::from_utf8(messages[0].clone()).unwrap();
        assert!(
            m.starts_with(
                "Return-Path: <sender@remote.test>\r\nReceived: from client.test ([127.0.0.1])\r\n"
            ),
            "{m}"
        );
        assert!(
            m.ends_with("Subject: hello\r\n\r\n.dotted line\r\nbody\r\n"),
            "{m}"
        );
        assert!(!m.contains("for <"), "two recipients: no 'for' clause");
    }
}

#[test]
fn smuggled_end_of_data_does_not_split_the_message() {
    let server = Server::start(PLAINTEXT_POP3);
    let mut c = smtp_transaction(server.port("smtp"), "alice@example.org");
    c.command("DATA", "354");
    c.send(b"Subject: one\r\n\r\nfirst\n.\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n");
    assert!(c.reply().starts_with("250 2.0.0"));
    c.command("QUIT", "221");
    let alice = retrieve_all(&server, "alice@example.org");
    assert_eq!(alice.len(), 1);
    let m = String::from_utf8_lossy(&alice[0]);
    assert!(
        m.contains("first\r\n.\r\nMAIL FROM:<evil@remote.test>\r\n"),
        "{m}"
    );
    assert!(retrieve_all(&server, "bob@example.org").is_empty());
}

#[test]
fn bdat_chunks_are_joined() {
    let server = Server::start(PLAINTEXT_POP3);
    let mut c = smtp_transaction(server.port("smtp"), "alice@example.org");
    let first = b"Subject: chunked\r\n\r\n.starts with a dot\r\n";
    let second = b"second chunk\r\n";
    c.send(format!("BDAT {}\r\n", first.len()).as_bytes());
    c.send(first);
    assert!(c.reply().starts_with("250"));
    c.send(format!("BDAT {} LAST\r\n", second.len()).as_bytes());
    c.send(second);
    assert!(c.reply().starts_with("250 2.0.0"));
    c.command("QUIT", "221");
    let alice = retrieve_all(&server, "alice@example.org");
    assert_eq!(
        body_after_trace(&alice[0]),
        [&first[..], &second[..]].concat()
    );
}

#[test]
fn relay_and_unknown_users_are_refused() {
    let server = Server::start("");
    let mut c = smtp_session(server.port("smtp"));
    c.command("MAIL FROM:<a@remote.test>", "250");
    c.command("RCPT TO:<someone@elsewhere.test>", "554 5.7.1");
    c.command("RCPT TO:<nobody@example.org>", "550 5.1.1");
    c.command("DATA", "554");
    c.command("AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHB3", "502");
}

#[test]
fn submission_requires_tls_before_auth_and_auth_before_mail() {
    let server = Server::start("");
    let mut c = Client::connect(server.port("submission"));
    c.reply();
    c.send(b"EHLO client.test\r\n");
    let mut ehlo = Vec::new();
    loop {
        let line = c.line().unwrap();
        let last = line.as_bytes()[3] == b' ';
        ehlo.push(line);
        if last {
            break;
        }
    }
    assert!(ehlo.iter().any(|l| l.ends_with("STARTTLS")));
    assert!(!ehlo.iter().any(|l| l.contains("AUTH")), "{ehlo:?}");
    c.command("AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHB3", "538 5.7.11");
    c.command("MAIL FROM:<alice@example.org>", "530 5.7.0");
}

#[test]
fn size_and_recipient_limits() {
    let server = Server::start("[limits]\nmax_message_size = 2048\nmax_recipients = 2");
    let mut c = smtp_session(server.port("smtp"));
    c.command("MAIL FROM:<a@remote.test> SIZE=999999", "552 5.3.4");
    c.command("MAIL FROM:<a@remote.test>", "250");
    c.command("RCPT TO:<alice@example.org>", "250");
    c.command("RCPT TO:<bob@example.org>", "250");
    c.command("RCPT TO:<alice+x@example.org>", "452 4.5.3");
    c.command("DATA", "354");
    let line = "x".repeat(70);
    for _ in 0..100 {
        c.send(format!("{line}\r\n").as_bytes());
    }
    c.command(".", "552 5.3.4");
    // The session goes on after a refused message.
    c.command("NOOP", "250");
}

#[test]
fn bad_input_gets_errors_then_disconnect() {
    let server = Server::start("[limits]\nmax_errors = 4");
    let mut c = Client::connect(server.port("smtp"));
    c.reply();
    let long = vec![b'A'; 100_000];
    c.send(&long);
    c.send(b"\r\n");
    assert!(c.reply().starts_with("500 5.5.2"));
    c.send(b"\x00\x01\x02garbage\r\n");
    assert!(c.reply().starts_with("500"));
    c.send(b"EHLO \xff\xfe\r\n");
    assert!(c.reply().starts_with("500 5.5.2"));
    c.command("NOOP", "250");
    c.send(b"FROB\r\n");
    assert!(c.reply().starts_with("500"));
    assert!(c.reply().starts_with("421 4.7.0"));
    assert!(c.closed());
    // Another client is served normally.
    send_mail(
        server.port("smtp"),
        "a@remote.test",
        "alice@example.org",
        "Subject: ok\r\n\r\nfine\r\n",
    );
}

#[test]
fn client_vanishing_mid_data_delivers_nothing() {
    let server = Server::start(PLAINTEXT_POP3);
    {
        let mut c = smtp_transaction(server.port("smtp"), "alice@example.org");
        c.command("DATA", "354");
        c.send(b"Subject: half\r\n\r\nthis never ends");
    }
    send_mail(
        server.port("smtp"),
        "a@remote.test",
        "alice@example.org",
        "Subject: whole\r\n\r\nbody\r\n",
    );
    let alice = retrieve_all(&server, "alice@example.org");
    assert_eq!(alice.len(), 1);
    assert!(String::from_utf8_lossy(&alice[0]).contains("Subject: whole"));
}
