//! The SMTP state machine driven over an in-memory stream: exact transcripts, no sockets.

use super::*;
use crate::store::Store;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

struct Harness {
    client: BufReader<DuplexStream>,
    session: JoinHandle<End>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> TempDir {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("lb-smtp-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    TempDir(dir)
}

async fn start(kind: ListenerKind, max_errors: u32) -> Harness {
    start_with_map(kind, max_errors, 64 << 20).await
}

async fn start_with_map(kind: ListenerKind, max_errors: u32, map_size: usize) -> Harness {
    let t = temp_dir();
    let store = Arc::new(Store::open(&t.0, map_size).unwrap());
    store.add_domain("example.org").unwrap();
    store.add_account("alice@example.org", "h").unwrap();
    let mut config = Config::embedded_default();
    config.hostname = "mx.test".into();
    config.limits.max_errors = max_errors;
    config.limits.command_timeout_secs = 10;
    // The inbound checks need DNS; tests/python/test_inbound.py runs them on a fixture.
    config.inbound.enabled = false;
    let certificate = crate::tls::load(&config, &t.0).unwrap();
    let (stop, shutdown) = watch::channel(false);
    let tls = crate::tls::TlsContext::new(certificate).unwrap();
    let shared = Arc::new(Shared::new(store, config, tls, shutdown));
    let (client, server) = tokio::io::duplex(64 * 1024);
    let peer = "127.0.0.1:40000".parse().unwrap();
    let conn = Connection::new(Box::new(server), peer, std::time::Duration::from_secs(5));
    let mut session = Session::new(shared.clone(), kind, conn);
    let session = tokio::spawn(async move { session.run().await });
    let mut h = Harness {
        client: BufReader::new(client),
        session,
        shared,
        stop,
        _dir: t,
    };
    assert_eq!(h.reply().await, "220 mx.test ESMTP letterbox ready");
    h
}

impl Harness {
    /// One reply, its lines joined with `|`.
    async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.client.read_line(&mut line).await.unwrap() == 0 {
                lines.push("<closed>".to_string());
                break;
            }
            let line = line.trim_end_matches("\r\n").to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                break;
            }
        }
        lines.join("|")
    }

    async fn send(&mut self, text: &str) {
        self.client
            .get_mut()
            .write_all(text.as_bytes())
            .await
            .unwrap();
    }

    async fn says(&mut self, command: &str, expected: &str) {
        self.send(&format!("{command}\r\n")).await;
        assert_eq!(self.reply().await, expected, "after {command:?}");
    }

    async fn end(self) -> End {
        self.session.await.unwrap()
    }

    /// MAIL FROM a remote sender, RCPT TO alice, DATA: each accepted.
    async fn open_data_to_alice(&mut self) {
        self.says("MAIL FROM:<a@remote.test>", "250 2.1.0 Sender OK")
            .await;
        self.says("RCPT TO:<alice@example.org>", "250 2.1.5 Recipient OK")
            .await;
        self.says("DATA", "354 2.0.0 End data with <CR><LF>.<CR><LF>")
            .await;
    }

    /// The budget is spent: 421, the close, and the session's end reason.
    async fn ends_with_too_many_errors(mut self) {
        let bye = self.reply().await;
        assert_eq!(bye, "421 4.7.0 Too many errors, closing connection");
        assert_eq!(self.reply().await, "<closed>");
        assert!(matches!(self.end().await, End::TooManyErrors));
    }

    fn inbox(&self, account: &str) -> Vec<Vec<u8>> {
        let store = &self.shared.store;
        let inbox = store.mailbox(account, "INBOX").unwrap().unwrap();
        let messages = store.messages(inbox.id).unwrap();
        messages
            .iter()
            .map(|(_, r)| store.read_message(r).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn a_local_delivery_transcript() {
    let mut h = start(ListenerKind::Smtp, 10).await;
    h.says(
        "MAIL FROM:<a@remote.test>",
        "503 5.5.1 Send EHLO or HELO first",
    )
    .await;
    h.says("EHLO client.test", &h_ehlo()).await;
    h.says("RCPT TO:<alice@example.org>", "503 5.5.1 Send MAIL first")
        .await;
    h.says("MAIL FROM:<a@remote.test>", "250 2.1.0 Sender OK")
        .await;
    h.says("MAIL FROM:<a@remote.test>", "503 5.5.1 Nested MAIL command")
        .await;
    h.says("DATA", "554 5.5.1 No valid recipients").await;
    h.says(
        "RCPT TO:<nobody@example.org>",
        "550 5.1.1 No such user here",
    )
    .await;
    h.says(
        "RCPT TO:<x@elsewhere.test>",
        "554 5.7.1 Relay access denied",
    )
    .await;
    h.says("RCPT TO:<Alice@Example.org>", "250 2.1.5 Recipient OK")
        .await;
    h.says("DATA", "354 2.0.0 End data with <CR><LF>.<CR><LF>")
        .await;
    h.send("Subject: hi\r\n\r\n..dot\r\n.\r\n").await;
    let ok = h.reply().await;
    assert!(ok.starts_with("250 2.0.0 OK id="), "{ok}");
    h.says("QUIT", "221 2.0.0 mx.test closing connection").await;
    assert_eq!(h.reply().await, "<closed>");
    let stored = h.inbox("alice@example.org");
    assert_eq!(stored.len(), 1);
    let text = String::from_utf8(stored[0].clone()).unwrap();
    assert!(text.starts_with("Return-Path: <a@remote.test>\r\nReceived: from client.test"));
    assert!(text.ends_with("Subject: hi\r\n\r\n.dot\r\n"), "{text}");
    assert!(matches!(h.end().await, End::Quit));
}

#[tokio::test]
async fn errors_end_the_session_at_max_errors() {
    let mut h = start(ListenerKind::Smtp, 3).await;
    h.says("FOO", "500 5.5.1 Command unrecognized").await;
    h.says("MAIL FROM:<a@b.test>", "503 5.5.1 Send EHLO or HELO first")
        .await;
    // EXPN is refused, but it is not a protocol error.
    h.says("EXPN x", "502 5.5.1 EXPN is not available").await;
    h.says("RCPT TO:<a@b.test>", "503 5.5.1 Send MAIL first")
        .await;
    h.ends_with_too_many_errors().await;
}

#[tokio::test]
async fn bdat_errors_count_towards_max_errors() {
    let mut h = start(ListenerKind::Smtp, 2).await;
    h.says("EHLO client.test", &h_ehlo()).await;
    h.says("BDAT 0 LAST", "503 5.5.1 Send MAIL first").await;
    h.says("BDAT 0 LAST", "503 5.5.1 Send MAIL first").await;
    h.ends_with_too_many_errors().await;
}

#[tokio::test]
async fn submission_needs_auth_and_shutdown_says_421() {
    let mut h = start(ListenerKind::Submission, 10).await;
    h.says("EHLO client.test", &h_ehlo()).await;
    h.says(
        "MAIL FROM:<alice@example.org>",
        "530 5.7.0 Authentication required",
    )
    .await;
    h.says(
        "AUTH PLAIN AGFsaWNlAHg=",
        "538 5.7.11 Encryption required: use STARTTLS first",
    )
    .await;
    h.stop.send(true).unwrap();
    assert_eq!(h.reply().await, "421 4.3.2 mx.test Service shutting down");
    assert_eq!(h.reply().await, "<closed>");
    assert!(matches!(h.end().await, End::Shutdown));
}

fn h_ehlo() -> String {
    "250-mx.test greets 127.0.0.1|250-PIPELINING|250-SIZE 26214400|250-8BITMIME|\
     250-SMTPUTF8|250-ENHANCEDSTATUSCODES|250-CHUNKING|250-DSN|250 STARTTLS"
        .into()
}

#[tokio::test]
async fn a_full_store_is_452_and_the_session_goes_on() {
    let mut h = start_with_map(ListenerKind::Smtp, 2, 1 << 20).await;
    h.says("EHLO client.test", &h_ehlo()).await;
    // Three times, with a budget of two errors: a full store is not the client's fault.
    for _ in 0..3 {
        h.open_data_to_alice().await;
        let line = format!("{}\r\n", "x".repeat(998));
        h.send("Subject: big\r\n\r\n").await;
        for _ in 0..2100 {
            h.send(&line).await;
        }
        h.says(
            ".",
            "452 4.3.1 Insufficient system storage, try again later",
        )
        .await;
    }
    h.open_data_to_alice().await;
    h.send("Subject: small\r\n\r\nfits\r\n.\r\n").await;
    let ok = h.reply().await;
    assert!(ok.starts_with("250 2.0.0 OK id="), "{ok}");
    assert_eq!(h.inbox("alice@example.org").len(), 1);
    h.says("QUIT", "221 2.0.0 mx.test closing connection").await;
}
