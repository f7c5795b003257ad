use crate::harness::{pop3_login, pop3_login_when_unlocked, send_mail, Client, Server, PASSWORD};

const PLAINTEXT_POP3: &str = "[auth]\nallow_plaintext_on_loopback = true";

fn deliver(server: &Server, n: usize) {
    for i in 0..n {
        send_mail(
            server.port("smtp"),
            "a@remote.test",
            "alice@example.org",
            &format!("Subject: message {i}\r\n\r\nbody {i}\r\n"),
        );
    }
}

fn list_body(c: &mut Client, command: &str) -> Vec<String> {
    c.command(command, "+OK");
    String::from_utf8(c.pop3_body())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn login_requires_tls_by_default() {
    let server = Server::start("");
    let mut c = Client::connect(server.port("pop3"));
    assert!(c.line().unwrap().starts_with("+OK"));
    let capa = list_body(&mut c, "CAPA");
    assert!(capa.contains(&"STLS".to_string()));
    assert!(!capa.contains(&"USER".to_string()));
    c.command("USER alice@example.org", "-ERR [SYS/PERM]");
    c.command("AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHB3", "-ERR [SYS/PERM]");
}

#[test]
fn dele_quit_removes_rset_and_drop_keep() {
    let server = Server::start(PLAINTEXT_POP3);
    deliver(&server, 3);

    let mut c = pop3_login(server.port("pop3"), "alice@example.org");
    c.command("DELE 1", "+OK");
    c.command("DELE 1", "-ERR");
    c.command("STAT", "+OK 2 ");
    c.command("RSET", "+OK");
    c.command("STAT", "+OK 3 ");
    c.command("DELE 2", "+OK");
    drop(c); // connection lost: nothing is removed

    // The lock goes once the server has seen the hang-up; then the session is over.
    let mut c = pop3_login_when_unlocked(server.port("pop3"), "alice@example.org");
    c.command("STAT", "+OK 3 ");
    let uidl_before = list_body(&mut c, "UIDL");
    c.command("DELE 2", "+OK");
    c.command("QUIT", "+OK");

    let mut c = pop3_login(server.port("pop3"), "alice@example.org");
    c.command("STAT", "+OK 2 ");
    let uidl_after = list_body(&mut c, "UIDL");
    let ids = |l: &[String]| {
        l.iter()
            .map(|s| s.split(' ').nth(1).unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&uidl_after),
        vec![ids(&uidl_before)[0].clone(), ids(&uidl_before)[2].clone()]
    );
    c.command("RETR 2", "+OK");
    assert!(String::from_utf8(c.pop3_body())
        .unwrap()
        .ends_with("Subject: message 2\r\n\r\nbody 2\r\n"));
}

#[test]
fn uidl_survives_restart_and_list_matches_retr() {
    let mut server = Server::start(PLAINTEXT_POP3);
    deliver(&server, 2);
    let mut c = pop3_login(server.port("pop3"), "alice@example.org");
    let before = list_body(&mut c, "UIDL");
    let sizes = list_body(&mut c, "LIST");
    c.command("RETR 1", "+OK");
    let body = c.pop3_body();
    assert_eq!(sizes[0], format!("1 {}", body.len()));
    c.command("TOP 1 0", "+OK");
    let top = c.pop3_body();
    assert!(top.ends_with(b"\r\n\r\n") && !top.ends_with(b"body 0\r\n"));
    c.command("QUIT", "+OK");

    server.restart();
    let mut c = pop3_login(server.port("pop3"), "alice@example.org");
    assert_eq!(list_body(&mut c, "UIDL"), before);
}

#[test]
fn second_session_gets_in_use() {
    let server = Server::start(PLAINTEXT_POP3);
    let mut first = pop3_login(server.port("pop3"), "alice@example.org");
    let mut second = Client::connect(server.port("pop3"));
    second.line();
    second.command("USER alice@example.org", "+OK");
    second.command(&format!("PASS {PASSWORD}"), "-ERR [IN-USE]");
    // QUIT releases the lock before its +OK goes out: no waiting needed.
    first.command("QUIT", "+OK");
    second.command("USER alice@example.org", "+OK");
    second.command(&format!("PASS {PASSWORD}"), "+OK");
}

#[test]
fn wrong_password_is_refused_with_auth_code() {
    let server = Server::start(PLAINTEXT_POP3);
    let mut c = Client::connect(server.port("pop3"));
    c.line();
    c.command("USER alice@example.org", "+OK");
    c.command("PASS wrong", "-ERR [AUTH]");
    c.command("STAT", "-ERR");
}
