//! One SMTP connection: a state machine over [`Connection`] and [`parse_command`].
//!
//! States: greeting sent → after EHLO/HELO → in a transaction (after MAIL) → receiving data.
//! Which listener kind the session serves decides the rules:
//! - `smtp` (MX, port 25): no AUTH; recipients must be local (no open relay).
//! - `submission` (587) and `submissions` (465): AUTH is required before MAIL, and offered
//!   only over TLS; the sender must be an address the user owns.
//!
//! The 250 after DATA or BDAT LAST is sent only once the message is committed for every
//! recipient. Each protocol error counts; at `max_errors` the session ends with 421.

use crate::auth::{decode_sasl_line, parse_plain, SaslError, Secret};
use crate::clock::unix_now;
use crate::config::{Config, ListenerKind};
use crate::delivery::{self, notice, Resolution};
use crate::floor::session::{read_or_shutdown, End, ErrorBudget};
use crate::floor::Shared;
use crate::inbound::{ClientCheck, SenderCheck};
use crate::limits::{MAX_DATA_LINE, MAX_SASL_LINE, MAX_SMTP_COMMAND_LINE};
use crate::net::dot::DataDecoder;
use crate::net::{Connection, Line};
use crate::smtp::parse::{parse_command, Body, Command, Mechanism, ParseError};
use crate::smtp::{format_reply, Trace};
use crate::store::{notify, Delivery, Incoming, Outbound, SpoolWriter, Target};
use std::io;
use std::sync::Arc;

struct Transaction {
    from: Option<String>,
    smtputf8: bool,
    eight_bit: bool,
    envid: Option<String>,
    ret_full: Option<bool>,
    /// Local recipients as given, and the mailboxes their copies go to.
    recipients: Vec<(String, Vec<Target>)>,
    /// Remote recipients (submission only) with their ORCPT and NOTIFY: they are queued.
    outbound: Vec<(String, Option<String>, u8)>,
    /// Where aliases forward to on other servers: queued with an SRS sender.
    forwards: Vec<String>,
    /// Local recipients that asked for NOTIFY=SUCCESS, with their ORCPT.
    success_notices: Vec<(String, Option<String>)>,
    /// BDAT state: bytes so far, and whether something already failed.
    chunks: Option<Chunking>,
    /// SPF and the sender's reputation, when the inbound checks run (MX listener).
    sender_check: Option<SenderCheck>,
    /// The refusal the checks configured for this client or sender, answered at each
    /// RCPT except to postmaster.
    refused: Option<crate::inbound::policy::Refusal>,
}

struct Chunking {
    spool: SpoolWriter,
    received: u64,
    failure: Option<&'static [u8]>,
}

mod auth;
mod checks;
mod data;
mod filter;
#[cfg(test)]
mod tests;
mod transaction;

pub struct Session {
    shared: Arc<Shared>,
    config: Arc<Config>,
    kind: ListenerKind,
    conn: Connection,
    helo: Option<String>,
    esmtp: bool,
    user: Option<String>,
    tx: Option<Transaction>,
    errors: ErrorBudget,
    /// The client's reputation, checked at the first MAIL after each HELO.
    client_check: Option<ClientCheck>,
}

const REPLY_TOO_MANY_ERRORS: &[u8] = b"421 4.7.0 Too many errors, closing connection\r\n";

impl Session {
    pub fn new(shared: Arc<Shared>, kind: ListenerKind, mut conn: Connection) -> Session {
        let config = shared.config();
        conn.read_timeout = config.limits.command_timeout();
        conn.write_timeout = config.limits.command_timeout();
        Session {
            errors: ErrorBudget::new(&config),
            shared,
            config,
            kind,
            conn,
            helo: None,
            esmtp: false,
            user: None,
            tx: None,
            client_check: None,
        }
    }

    /// The authenticated user, if any (for logging).
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    fn reply(&mut self, code: u16, esc: &str, text: &str) {
        let bytes = format_reply(code, Some(esc), &[text]);
        self.conn.send(&bytes);
    }

    /// Counts a protocol error; true when the session must end.
    fn error(&mut self, code: u16, esc: &str, text: &str) -> bool {
        self.reply(code, esc, text);
        self.count_error()
    }

    /// Counts an error already answered; true (after a 421) when the session must end.
    fn count_error(&mut self) -> bool {
        if self.errors.spend() {
            self.conn.send(REPLY_TOO_MANY_ERRORS);
            return true;
        }
        false
    }

    /// Runs the session to its end: greeting, then one command at a time until QUIT, a
    /// protocol or I/O end, or the server's shutdown (answered with 421 between commands).
    pub async fn run(&mut self) -> End {
        let greeting = format!("220 {} ESMTP letterbox ready\r\n", self.config.hostname);
        self.conn.send(greeting.as_bytes());
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            let read = self.conn.read_line(MAX_SMTP_COMMAND_LINE);
            let Some(line) = read_or_shutdown(&mut shutdown, read).await else {
                let text = format!(
                    "421 4.3.2 {} Service shutting down\r\n",
                    self.config.hostname
                );
                self.conn.send(text.as_bytes());
                return self.finish(End::Shutdown).await;
            };
            let end = match line {
                Ok(Line::Complete(line)) => match self.command(&line).await {
                    Ok(end) => end,
                    Err(e) => Some(End::from_io(e)),
                },
                Ok(Line::TooLong) => self
                    .error(500, "5.5.2", "Line too long")
                    .then_some(End::TooManyErrors),
                Ok(Line::Closed) => return End::Closed,
                Err(e) => Some(End::from_io(e)),
            };
            match end {
                None => {}
                Some(End::Error(e)) => return End::Error(e),
                Some(end) => {
                    if matches!(end, End::Timeout) {
                        let text = format!(
                            "421 4.4.2 {} Timeout, closing connection\r\n",
                            self.config.hostname
                        );
                        self.conn.send(text.as_bytes());
                    }
                    return self.finish(end).await;
                }
            }
        }
    }

    async fn finish(&mut self, end: End) -> End {
        self.conn.close().await;
        end
    }

    /// Handles one command line. `Ok(Some(end))` ends the session.
    async fn command(&mut self, line: &[u8]) -> io::Result<Option<End>> {
        let command = match parse_command(line) {
            Ok(command) => command,
            Err(e) => {
                let (code, esc, text) = match &e {
                    ParseError::Unknown => (500, "5.5.1", "Command unrecognized".to_string()),
                    ParseError::Syntax(hint) => (501, "5.5.4", format!("Syntax: {hint}")),
                    ParseError::BadSender => (553, "5.1.7", "Bad sender address syntax".into()),
                    ParseError::BadRecipient => {
                        (553, "5.1.3", "Bad recipient address syntax".into())
                    }
                    ParseError::BadParameter(p) => (
                        555,
                        "5.5.4",
                        format!("Parameter not recognized: {}", printable(p)),
                    ),
                    ParseError::NotUtf8 => (500, "5.5.2", "Command is not valid UTF-8".into()),
                };
                let stop = self.error(code, esc, &text);
                return Ok(stop.then_some(End::TooManyErrors));
            }
        };
        // BDAT transfers must not be interleaved with other transaction commands.
        if self.tx.as_ref().is_some_and(|tx| tx.chunks.is_some())
            && !matches!(
                command,
                Command::Bdat { .. } | Command::Rset | Command::Quit | Command::Noop
            )
        {
            let stop = self.error(
                503,
                "5.5.1",
                "Only BDAT, RSET or QUIT during a chunked transfer",
            );
            return Ok(stop.then_some(End::TooManyErrors));
        }
        match command {
            Command::Ehlo(host) => self.hello(host, true),
            Command::Helo(host) => self.hello(host, false),
            Command::StartTls => return self.starttls().await,
            Command::Auth {
                mechanism,
                initial_response,
            } => return self.auth(mechanism, initial_response).await,
            Command::Mail {
                from,
                size,
                body,
                smtputf8,
                envid,
                ret_full,
            } => {
                let had_transaction = self.tx.is_some();
                let stop = self.mail(from, size, body, smtputf8).await;
                // Only a transaction this MAIL opened takes its DSN parameters.
                if let (false, Some(tx)) = (had_transaction, &mut self.tx) {
                    tx.envid = envid;
                    tx.ret_full = ret_full;
                }
                return Ok(stop.then_some(End::TooManyErrors));
            }
            Command::Rcpt { to, orcpt, notify } => {
                let stop = self.rcpt(&to, orcpt, notify).await;
                return Ok(stop.then_some(End::TooManyErrors));
            }
            Command::Data => return self.data().await,
            Command::Bdat { size, last } => return self.bdat(size, last).await,
            Command::Rset => {
                self.tx = None;
                self.reply(250, "2.0.0", "Reset OK");
            }
            Command::Noop => self.reply(250, "2.0.0", "OK"),
            Command::Quit => {
                let text = format!("{} closing connection", self.config.hostname);
                self.reply(221, "2.0.0", &text);
                return Ok(Some(End::Quit));
            }
            Command::Vrfy => self.reply(252, "2.5.0", "Cannot VRFY user, but will accept message"),
            Command::Expn => self.reply(502, "5.5.1", "EXPN is not available"),
            Command::Help => self.reply(214, "2.0.0", "See RFC 5321"),
            Command::NotImplemented(name) => {
                let text = format!("{name} is not implemented");
                let stop = self.error(502, "5.5.1", &text);
                return Ok(stop.then_some(End::TooManyErrors));
            }
        }
        Ok(None)
    }

    fn offers_auth(&self) -> bool {
        self.kind != ListenerKind::Smtp && self.conn.is_tls()
    }

    fn hello(&mut self, host: String, esmtp: bool) {
        self.tx = None;
        self.client_check = None;
        self.helo = Some(host);
        self.esmtp = esmtp;
        let greeting = format!("{} greets {}", self.config.hostname, self.conn.peer.ip());
        if !esmtp {
            self.conn
                .send(&format_reply(250, None, &[greeting.as_str()]));
            return;
        }
        let size = format!("SIZE {}", self.config.limits.max_message_size);
        let mut lines: Vec<&str> = vec![
            &greeting,
            "PIPELINING",
            &size,
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
            "CHUNKING",
            "DSN",
        ];
        if !self.conn.is_tls() {
            lines.push("STARTTLS");
        }
        if self.offers_auth() {
            lines.push("AUTH PLAIN LOGIN");
        }
        self.conn.send(&format_reply(250, None, &lines));
    }

    async fn starttls(&mut self) -> io::Result<Option<End>> {
        if self.conn.is_tls() {
            let stop = self.error(503, "5.5.1", "TLS is already active");
            return Ok(stop.then_some(End::TooManyErrors));
        }
        self.reply(220, "2.0.0", "Ready to start TLS");
        let acceptor = self.shared.tls.acceptor();
        if let Err(e) = self.conn.start_tls(&acceptor).await {
            log::info!("smtp {}: TLS handshake failed: {e}", self.conn.peer);
            return Ok(Some(End::Closed));
        }
        // RFC 3207 §4.2: forget everything learned before TLS.
        self.helo = None;
        self.client_check = None;
        self.esmtp = false;
        self.tx = None;
        Ok(None)
    }
}

/// The `with` keyword of the Received: header (RFC 3848).
fn protocol_name(esmtp: bool, utf8: bool, tls: bool, auth: bool) -> &'static str {
    match (esmtp, utf8, tls, auth) {
        (false, _, _, _) => "SMTP",
        (true, false, false, false) => "ESMTP",
        (true, false, true, false) => "ESMTPS",
        (true, false, false, true) => "ESMTPA",
        (true, false, true, true) => "ESMTPSA",
        (true, true, false, false) => "UTF8SMTP",
        (true, true, true, false) => "UTF8SMTPS",
        (true, true, false, true) => "UTF8SMTPA",
        (true, true, true, true) => "UTF8SMTPSA",
    }
}

fn message_id() -> String {
    use rand_core::RngCore;
    format!("{:016x}", rand_core::OsRng.next_u64())
}

/// Client text made safe for replies and logs.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(100)
        .collect()
}
