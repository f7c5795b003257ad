use crate::harness::{send_mail, smtp_transaction, wait_for, Client, Server};
use std::time::Duration;

#[test]
fn sigterm_lets_the_current_transaction_finish_and_exits_zero() {
    let mut server = Server::start("");
    let mut c = smtp_transaction(server.port("smtp"), "alice@example.org");
    c.command("DATA", "354");
    c.send(b"Subject: in flight\r\n\r\n");
    server.signal(libc::SIGTERM);
    // The rest of the message arrives only once the shutdown is under way.
    server.wait_until_refusing("smtp");
    c.send(b"still coming\r\n.\r\n");
    assert!(c.reply().starts_with("250 2.0.0"));
    assert!(c.reply().starts_with("421 4.3.2"));
    assert!(server.stop().success());
}

#[test]
fn connections_per_ip_are_limited() {
    let server = Server::start("[limits]\nmax_connections_per_ip = 3");
    let mut held: Vec<Client> = (0..3)
        .map(|_| Client::connect(server.port("smtp")))
        .collect();
    for c in &mut held {
        assert!(c.reply().starts_with("220"));
    }
    let mut refused = Client::connect(server.port("smtp"));
    assert!(refused.reply().starts_with("421 4.7.0"));
    assert!(refused.closed());
    drop(held.pop());
    // The slot is free once the server has seen the hang-up: until then a new
    // connection is still refused.
    let mut c = wait_for(
        Duration::from_secs(10),
        "a connection is admitted again",
        || {
            let mut c = Client::connect(server.port("smtp"));
            let greeting = c.reply();
            if greeting.starts_with("220") {
                return Some(c);
            }
            assert!(greeting.starts_with("421 4.7.0"), "{greeting:?}");
            assert!(c.closed());
            None
        },
    );
    c.command("EHLO client.test", "250");
    c.command("MAIL FROM:<a@remote.test>", "250");
    c.command("RCPT TO:<alice@example.org>", "250");
    c.command("DATA", "354");
    c.send(b"Subject: x\r\n\r\ny\r\n");
    c.command(".", "250");
    c.command("QUIT", "221");
}

#[test]
fn admin_commands_work_while_serving() {
    let server = Server::start("");
    let out = server.cli(&["domain", "add", "second.test"], None);
    assert!(out.status.success(), "{out:?}");
    let out = server.cli(
        &["user", "add", "carol@second.test", "--password-stdin"],
        Some("pw"),
    );
    assert!(out.status.success(), "{out:?}");
    let out = server.cli(
        &[
            "alias",
            "add",
            "team@example.org",
            "alice@example.org",
            "carol@second.test",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    send_mail(
        server.port("smtp"),
        "a@remote.test",
        "team@example.org",
        "Subject: t\r\n\r\nb\r\n",
    );
    let out = server.cli(
        &["user", "add", "carol@second.test", "--password-stdin"],
        Some("pw"),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("already exists"), "{err}");
    let out = server.cli(
        &["user", "add", "dave@nowhere.test", "--password-stdin"],
        Some("pw"),
    );
    assert!(!out.status.success());
    let list = server.cli(&["user", "list"], None);
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        "alice@example.org\nbob@example.org\ncarol@second.test\n"
    );
}

#[test]
fn config_check_names_the_bad_key() {
    let dir = std::env::temp_dir().join(format!("lb-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "hostname = \"x\"\n[limits]\nmax_recipientz = 3\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_letterbox"))
        .args(["config", "check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":3:") && err.contains("max_recipientz"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
