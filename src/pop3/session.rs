//! One POP3 connection. After login the session takes the maildrop lock (a second session
//! gets `[IN-USE]`) and a snapshot of the INBOX. DELE only marks; QUIT removes the marked
//! messages in one store transaction (the UPDATE state). A dropped connection removes
//! nothing. Message bytes are streamed chunk by chunk, dot-stuffed.

use super::parse::{parse_command, Command, ParseError};
use crate::auth::{decode_sasl_line, parse_plain, SaslError, Secret};
use crate::config::Config;
use crate::floor::locks::MaildropGuard;
use crate::floor::session::{
    autologout_timeouts, login_allowed, read_or_shutdown, End, ErrorBudget,
};
use crate::floor::Shared;
use crate::limits::{MAX_POP3_COMMAND_LINE, MAX_SASL_LINE};
use crate::net::dot::DotStuffer;
use crate::net::{Connection, Line};
use crate::store::{chunk_count, MessageRecord, StoreError};
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// RFC 1939 §3: the inactivity timer must be at least 10 minutes.
const MIN_AUTOLOGOUT: Duration = Duration::from_secs(600);

struct Message {
    uid: u32,
    record: MessageRecord,
    deleted: bool,
}

struct Maildrop {
    _guard: MaildropGuard,
    account: String,
    mailbox_id: u64,
    uid_validity: u32,
    messages: Vec<Message>,
}

pub struct Session {
    shared: Arc<Shared>,
    config: Arc<Config>,
    conn: Connection,
    /// USER given, waiting for PASS.
    pending_user: Option<String>,
    maildrop: Option<Maildrop>,
    logged_in: Option<String>,
    errors: ErrorBudget,
}

impl Session {
    pub fn new(shared: Arc<Shared>, mut conn: Connection) -> Session {
        let config = shared.config();
        autologout_timeouts(&mut conn, &config, MIN_AUTOLOGOUT);
        Session {
            errors: ErrorBudget::new(&config),
            shared,
            config,
            conn,
            pending_user: None,
            maildrop: None,
            logged_in: None,
        }
    }

    /// Who logged in (kept after QUIT, for the session's log line).
    pub fn user(&self) -> Option<&str> {
        self.logged_in.as_deref()
    }

    fn ok(&mut self, text: &str) {
        self.conn.send(format!("+OK {text}\r\n").as_bytes());
    }

    /// Sends `-ERR`, counts the error; true when the session must end.
    fn err(&mut self, text: &str) -> bool {
        self.conn.send(format!("-ERR {text}\r\n").as_bytes());
        if self.errors.spend() {
            self.conn
                .send(b"-ERR [SYS/PERM] Too many errors, closing connection\r\n");
            return true;
        }
        false
    }

    fn login_allowed(&self) -> bool {
        login_allowed(&self.conn, &self.config)
    }

    pub async fn run(&mut self) -> End {
        self.ok("letterbox POP3 server ready");
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            let read = self.conn.read_line(MAX_POP3_COMMAND_LINE);
            let Some(line) = read_or_shutdown(&mut shutdown, read).await else {
                self.conn.send(b"-ERR [SYS/TEMP] Server shutting down\r\n");
                self.conn.close().await;
                return End::Shutdown;
            };
            let end = match line {
                Ok(Line::Complete(line)) => match self.command(&line).await {
                    Ok(end) => end,
                    Err(e) => Some(End::from_io(e)),
                },
                Ok(Line::TooLong) => self.err("Line too long").then_some(End::TooManyErrors),
                Ok(Line::Closed) => Some(End::Closed),
                Err(e) => Some(End::from_io(e)),
            };
            if let Some(end) = end {
                if matches!(end, End::Timeout) {
                    self.conn
                        .send(b"-ERR [SYS/TEMP] Autologout: idle too long\r\n");
                }
                self.conn.close().await;
                return end;
            }
        }
    }

    async fn command(&mut self, line: &[u8]) -> io::Result<Option<End>> {
        let command = match parse_command(line) {
            Ok(c) => c,
            Err(ParseError::Unknown) => {
                return Ok(self.err("Unknown command").then_some(End::TooManyErrors))
            }
            Err(ParseError::Syntax(s)) => {
                let text = format!("Syntax: {s}");
                return Ok(self.err(&text).then_some(End::TooManyErrors));
            }
        };
        let stop = if self.maildrop.is_none() {
            self.authorization(command).await?
        } else {
            self.transaction(command).await?
        };
        Ok(stop)
    }

    fn capabilities(&self) -> Vec<u8> {
        let mut capa = String::from("+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
        if self.maildrop.is_none() {
            if self.login_allowed() {
                capa.push_str("USER\r\nSASL PLAIN\r\n");
            }
            if !self.conn.is_tls() {
                capa.push_str("STLS\r\n");
            }
        }
        capa.push_str("IMPLEMENTATION letterbox\r\n.\r\n");
        capa.into_bytes()
    }

    async fn authorization(&mut self, command: Command) -> io::Result<Option<End>> {
        let stop = match command {
            Command::Capa => {
                let capa = self.capabilities();
                self.conn.send(&capa);
                false
            }
            Command::Quit => {
                self.ok("letterbox POP3 server signing off");
                return Ok(Some(End::Quit));
            }
            Command::Noop => {
                self.ok("");
                false
            }
            Command::Stls => {
                if self.conn.is_tls() {
                    self.err("TLS is already active")
                } else {
                    self.ok("Begin TLS negotiation");
                    let acceptor = self.shared.tls.acceptor();
                    if let Err(e) = self.conn.start_tls(&acceptor).await {
                        log::info!("pop3 {}: TLS handshake failed: {e}", self.conn.peer);
                        return Ok(Some(End::Closed));
                    }
                    self.pending_user = None;
                    false
                }
            }
            Command::User(name) => {
                if !self.login_allowed() {
                    self.err("[SYS/PERM] Authentication requires TLS: use STLS")
                } else {
                    self.pending_user = Some(name);
                    self.ok("Send PASS");
                    false
                }
            }
            Command::Pass(password) => match self.pending_user.take() {
                None => self.err("Send USER first"),
                Some(user) => self.login(&user, password).await?,
            },
            Command::Auth(None) => {
                self.conn.send(b"+OK Mechanisms follow\r\nPLAIN\r\n.\r\n");
                false
            }
            Command::Auth(Some((mechanism, initial))) => {
                if !self.login_allowed() {
                    self.err("[SYS/PERM] Authentication requires TLS: use STLS")
                } else if mechanism != "PLAIN" {
                    self.err("Unsupported authentication mechanism")
                } else {
                    let response = match initial {
                        Some(r) => r,
                        None => {
                            self.conn.send(b"+ \r\n");
                            match self.conn.read_line(MAX_SASL_LINE).await? {
                                Line::Complete(l) => String::from_utf8_lossy(&l).trim().to_string(),
                                Line::TooLong => "*".into(),
                                Line::Closed => return Ok(Some(End::Closed)),
                            }
                        }
                    };
                    match decode_sasl_line(&response).and_then(|b| parse_plain(&b)) {
                        Ok((user, password)) => self.login(&user, password).await?,
                        Err(SaslError::Cancelled) => self.err("Authentication cancelled"),
                        Err(SaslError::Malformed) => self.err("Malformed authentication data"),
                    }
                }
            }
            _ => self.err("Not allowed before login"),
        };
        Ok(stop.then_some(End::TooManyErrors))
    }

    /// Verifies credentials, locks and loads the maildrop. Returns true to end the session.
    async fn login(&mut self, user: &str, password: Secret) -> io::Result<bool> {
        let peer = self.conn.peer.ip();
        let Some(account) = self.shared.auth.login(user, password, peer, "pop3").await else {
            log::info!("pop3 {}: authentication failed", self.conn.peer);
            return Ok(self.err("[AUTH] Invalid credentials"));
        };
        let Some(guard) = self.shared.maildrop_locks.try_lock(&account) else {
            return Ok(self.err("[IN-USE] Maildrop is already locked by another session"));
        };
        let owner = account.clone();
        let loaded = self
            .shared
            .store
            .call(move |store| {
                let inbox = store
                    .mailbox(&owner, "INBOX")?
                    .ok_or_else(|| StoreError::NotFound("INBOX".into()))?;
                let messages = store.messages(inbox.id)?;
                Ok((inbox, messages))
            })
            .await;
        let (inbox, messages) = match loaded {
            Ok(x) => x,
            Err(e) => {
                log::error!(
                    "pop3 {}: cannot open INBOX of {account}: {e}",
                    self.conn.peer
                );
                return Ok(self.err("[SYS/TEMP] Cannot open maildrop"));
            }
        };
        let maildrop = Maildrop {
            _guard: guard,
            account: account.clone(),
            mailbox_id: inbox.id,
            uid_validity: inbox.uid_validity,
            messages: messages
                .into_iter()
                .map(|(uid, record)| Message {
                    uid,
                    record,
                    deleted: false,
                })
                .collect(),
        };
        let (count, size) = totals(&maildrop);
        self.maildrop = Some(maildrop);
        self.logged_in = Some(account.clone());
        log::info!("pop3 {}: logged in as {account}", self.conn.peer);
        self.ok(&format!("{account} has {count} messages ({size} octets)"));
        Ok(false)
    }

    async fn transaction(&mut self, command: Command) -> io::Result<Option<End>> {
        let Some(drop) = &mut self.maildrop else {
            return Ok(None);
        };
        let stop = match command {
            Command::Capa => {
                let capa = self.capabilities();
                self.conn.send(&capa);
                false
            }
            Command::Stat => {
                let (count, size) = totals(drop);
                self.ok(&format!("{count} {size}"));
                false
            }
            Command::List(None) | Command::Uidl(None) => {
                let uidl = matches!(command, Command::Uidl(None));
                let mut out = String::from("+OK\r\n");
                for (i, m) in drop.messages.iter().enumerate().filter(|(_, m)| !m.deleted) {
                    if uidl {
                        out.push_str(&format!(
                            "{} {}\r\n",
                            i + 1,
                            unique_id(drop.uid_validity, m.uid)
                        ));
                    } else {
                        out.push_str(&format!("{} {}\r\n", i + 1, m.record.size));
                    }
                }
                out.push_str(".\r\n");
                self.conn.send(out.as_bytes());
                false
            }
            Command::List(Some(n)) => match message(drop, n) {
                Some(m) => {
                    let size = m.record.size;
                    self.ok(&format!("{n} {size}"));
                    false
                }
                None => self.err("No such message"),
            },
            Command::Uidl(Some(n)) => match message(drop, n) {
                Some(m) => {
                    let id = unique_id(drop.uid_validity, m.uid);
                    self.ok(&format!("{n} {id}"));
                    false
                }
                None => self.err("No such message"),
            },
            Command::Retr(n) => match message(drop, n) {
                Some(m) => {
                    let record = m.record.clone();
                    self.ok(&format!("{} octets", record.size));
                    self.send_message(&record, None).await?;
                    false
                }
                None => self.err("No such message"),
            },
            Command::Top(n, lines) => match message(drop, n) {
                Some(m) => {
                    let record = m.record.clone();
                    self.ok("Top of message follows");
                    self.send_message(&record, Some(lines)).await?;
                    false
                }
                None => self.err("No such message"),
            },
            Command::Dele(n) => {
                match n
                    .checked_sub(1)
                    .and_then(|i| drop.messages.get_mut(i as usize))
                    .filter(|m| !m.deleted)
                {
                    Some(m) => {
                        m.deleted = true;
                        self.ok(&format!("Message {n} deleted"));
                        false
                    }
                    None => self.err("No such message"),
                }
            }
            Command::Rset => {
                drop.messages.iter_mut().for_each(|m| m.deleted = false);
                let (count, size) = totals(drop);
                self.ok(&format!("Maildrop has {count} messages ({size} octets)"));
                false
            }
            Command::Noop => {
                self.ok("");
                false
            }
            Command::Quit => return self.update().await.map(Some),
            Command::User(_) | Command::Pass(_) | Command::Auth(_) | Command::Stls => {
                self.err("Already logged in")
            }
        };
        Ok(stop.then_some(End::TooManyErrors))
    }

    /// The UPDATE state: remove the marked messages atomically.
    async fn update(&mut self) -> io::Result<End> {
        // Leaving UPDATE releases the maildrop lock before the final reply goes out, so a
        // client may log in again as soon as it reads that reply.
        let Some(maildrop) = self.maildrop.take() else {
            return Ok(End::Quit);
        };
        let uids: Vec<u32> = maildrop
            .messages
            .iter()
            .filter(|m| m.deleted)
            .map(|m| m.uid)
            .collect();
        let left = maildrop.messages.len() - uids.len();
        let account = maildrop.account.clone();
        let mailbox = maildrop.mailbox_id;
        let removed = if uids.is_empty() {
            Ok(0)
        } else {
            let owner = account.clone();
            self.shared
                .store
                .call(move |store| store.expunge(&owner, mailbox, &uids))
                .await
        };
        std::mem::drop(maildrop);
        match removed {
            Ok(n) => {
                if n > 0 {
                    // IMAP sessions on this INBOX report the expunge.
                    self.shared.committer.notify();
                    log::info!("pop3 {}: {account} removed {n} messages", self.conn.peer);
                }
                self.ok(&format!("letterbox signing off ({left} messages left)"));
            }
            Err(e) => {
                log::error!(
                    "pop3 {}: removing messages of {account} failed: {e}",
                    self.conn.peer
                );
                self.conn
                    .send(b"-ERR [SYS/TEMP] Some deleted messages were not removed\r\n");
            }
        }
        Ok(End::Quit)
    }

    /// Streams a stored message, dot-stuffed; `top` limits the body to that many lines.
    async fn send_message(&mut self, record: &MessageRecord, top: Option<u32>) -> io::Result<()> {
        let mut stuffer = DotStuffer::new();
        let mut out = Vec::new();
        let mut body_lines = Limit::new(top);
        for index in 0..chunk_count(record.size) {
            let blob = record.blob;
            let chunk = match self
                .shared
                .store
                .call(move |s| s.read_chunk(blob, index))
                .await
            {
                Ok(chunk) => chunk,
                Err(e) => {
                    // A cut message must not look complete: end the session without the
                    // terminating dot.
                    log::error!("pop3 {}: reading message data: {e}", self.conn.peer);
                    return Err(io::Error::other(e));
                }
            };
            let (piece, done) = body_lines.cut(&chunk);
            stuffer.push(piece, &mut out);
            self.conn.send(&out);
            out.clear();
            self.conn.flush().await?;
            if done {
                break;
            }
        }
        stuffer.finish(&mut out);
        self.conn.send(&out);
        Ok(())
    }
}

/// Cuts a message after its header and `n` body lines (for TOP).
struct Limit {
    lines: Option<u32>,
    in_body: bool,
    previous: u8,
    /// Bytes of the current header line so far (to detect the empty separator line).
    line_length: usize,
}

impl Limit {
    fn new(lines: Option<u32>) -> Limit {
        Limit {
            lines,
            in_body: false,
            previous: b'\n',
            line_length: 0,
        }
    }

    /// Returns the part of `chunk` to send, and whether the limit was reached.
    fn cut<'a>(&mut self, chunk: &'a [u8]) -> (&'a [u8], bool) {
        let Some(mut left) = self.lines else {
            return (chunk, false);
        };
        for (i, &b) in chunk.iter().enumerate() {
            if !self.in_body {
                if b == b'\n' {
                    let empty =
                        self.line_length == 0 || (self.line_length == 1 && self.previous == b'\r');
                    self.line_length = 0;
                    if empty {
                        self.in_body = true;
                        if left == 0 {
                            return (&chunk[..=i], true);
                        }
                    }
                } else {
                    self.line_length += 1;
                }
            } else if b == b'\n' {
                left -= 1;
                if left == 0 {
                    self.lines = Some(0);
                    return (&chunk[..=i], true);
                }
            }
            self.previous = b;
        }
        self.lines = Some(left);
        (chunk, false)
    }
}

fn message(drop: &Maildrop, n: u32) -> Option<&Message> {
    let m = drop.messages.get(n.checked_sub(1)? as usize)?;
    (!m.deleted).then_some(m)
}

fn totals(drop: &Maildrop) -> (usize, u64) {
    drop.messages
        .iter()
        .filter(|m| !m.deleted)
        .fold((0, 0), |(c, s), m| (c + 1, s + m.record.size))
}

/// UIDL value: stable across sessions and restarts, unique per mailbox incarnation.
fn unique_id(uid_validity: u32, uid: u32) -> String {
    format!("{uid_validity:08x}{uid:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(message: &[u8], lines: u32, step: usize) -> Vec<u8> {
        let mut limit = Limit::new(Some(lines));
        let mut out = Vec::new();
        for chunk in message.chunks(step) {
            let (piece, done) = limit.cut(chunk);
            out.extend_from_slice(piece);
            if done {
                break;
            }
        }
        out
    }

    #[test]
    fn top_cuts_after_header_and_lines() {
        let msg = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n";
        for step in 1..10 {
            assert_eq!(top(msg, 0, step), b"A: 1\r\nB: 2\r\n\r\n");
            assert_eq!(top(msg, 2, step), b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n");
            assert_eq!(top(msg, 10, step), msg);
        }
    }

    #[test]
    fn unique_ids_are_stable_and_valid() {
        let id = unique_id(0x5f00_0001, 42);
        assert_eq!(id, "5f0000010000002a");
        assert!(id.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    }
}
