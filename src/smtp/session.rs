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

use super::parse::{parse_command, Body, Command, Mechanism, ParseError};
use super::{format_reply, Trace};
use crate::auth::{decode_sasl_line, parse_plain, SaslError, Secret};
use crate::clock::unix_now;
use crate::config::{Config, ListenerKind};
use crate::delivery::{self, notice, Resolution};
use crate::floor::session::{read_or_shutdown, End, ErrorBudget};
use crate::floor::Shared;
use crate::limits::{MAX_DATA_LINE, MAX_SASL_LINE, MAX_SMTP_COMMAND_LINE};
use crate::net::dot::DataDecoder;
use crate::net::{Connection, Line};
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
    /// Local recipients that asked for NOTIFY=SUCCESS, with their ORCPT.
    success_notices: Vec<(String, Option<String>)>,
    /// BDAT state: bytes so far, and whether something already failed.
    chunks: Option<Chunking>,
}

struct Chunking {
    spool: SpoolWriter,
    received: u64,
    failure: Option<&'static [u8]>,
}

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
        self.esmtp = false;
        self.tx = None;
        Ok(None)
    }

    async fn auth(
        &mut self,
        mechanism: Mechanism,
        initial: Option<String>,
    ) -> io::Result<Option<End>> {
        let refusal = if self.kind == ListenerKind::Smtp {
            Some((
                502,
                "5.5.1",
                "AUTH is not available on this port; use submission",
            ))
        } else if !self.conn.is_tls() {
            Some((538, "5.7.11", "Encryption required: use STARTTLS first"))
        } else if self.user.is_some() {
            Some((503, "5.5.1", "Already authenticated"))
        } else if self.tx.is_some() {
            Some((
                503,
                "5.5.1",
                "AUTH is not allowed during a mail transaction",
            ))
        } else if !self.esmtp {
            Some((503, "5.5.1", "Send EHLO first"))
        } else if mechanism == Mechanism::Other {
            Some((504, "5.5.4", "Unrecognized authentication type"))
        } else {
            None
        };
        if let Some((code, esc, text)) = refusal {
            let stop = self.error(code, esc, text);
            return Ok(stop.then_some(End::TooManyErrors));
        }
        let credentials = match mechanism {
            Mechanism::Plain => {
                let response = match initial {
                    Some(r) => r,
                    None => match self.sasl_prompt("").await? {
                        Some(r) => r,
                        None => return Ok(Some(End::Closed)),
                    },
                };
                decode_sasl_line(&response).and_then(|bytes| parse_plain(&bytes))
            }
            _ => self.auth_login(initial).await?,
        };
        let (user, password) = match credentials {
            Ok(c) => c,
            Err(SaslError::Cancelled) => {
                let stop = self.error(501, "5.0.0", "Authentication cancelled");
                return Ok(stop.then_some(End::TooManyErrors));
            }
            Err(SaslError::Malformed) => {
                let stop = self.error(501, "5.5.2", "Malformed authentication data");
                return Ok(stop.then_some(End::TooManyErrors));
            }
        };
        match self.shared.auth.login(&user, password).await {
            Some(account) => {
                log::info!("smtp {}: authenticated as {account}", self.conn.peer);
                self.user = Some(account);
                self.reply(235, "2.7.0", "Authentication successful");
                Ok(None)
            }
            None => {
                log::info!(
                    "smtp {}: authentication failed for {}",
                    self.conn.peer,
                    printable(&user)
                );
                let stop = self.error(535, "5.7.8", "Authentication credentials invalid");
                Ok(stop.then_some(End::TooManyErrors))
            }
        }
    }

    /// LOGIN (draft-murchison-sasl-login): username and password as two base64 answers.
    async fn auth_login(
        &mut self,
        initial: Option<String>,
    ) -> io::Result<Result<(String, Secret), SaslError>> {
        let user = match initial {
            Some(u) => u,
            None => match self.sasl_prompt("VXNlcm5hbWU6").await? {
                Some(u) => u,
                None => return Ok(Err(SaslError::Cancelled)),
            },
        };
        let user = match decode_sasl_line(&user).map(String::from_utf8) {
            Ok(Ok(u)) => u,
            Ok(Err(_)) => return Ok(Err(SaslError::Malformed)),
            Err(e) => return Ok(Err(e)),
        };
        let password = match self.sasl_prompt("UGFzc3dvcmQ6").await? {
            Some(p) => p,
            None => return Ok(Err(SaslError::Cancelled)),
        };
        Ok(match decode_sasl_line(&password).map(String::from_utf8) {
            Ok(Ok(p)) => Ok((user, Secret(p))),
            Ok(Err(_)) => Err(SaslError::Malformed),
            Err(e) => Err(e),
        })
    }

    /// Sends a 334 challenge and reads the answer line.
    async fn sasl_prompt(&mut self, challenge: &str) -> io::Result<Option<String>> {
        self.conn.send(format!("334 {challenge}\r\n").as_bytes());
        match self.conn.read_line(MAX_SASL_LINE).await? {
            Line::Complete(line) => Ok(Some(String::from_utf8_lossy(&line).trim().to_string())),
            Line::TooLong => Ok(Some("*".into())),
            Line::Closed => Ok(None),
        }
    }

    /// Returns true when the session must end.
    async fn mail(
        &mut self,
        from: Option<String>,
        size: Option<u64>,
        body: Body,
        smtputf8: bool,
    ) -> bool {
        let max = self.config.limits.max_message_size;
        let refusal = if self.helo.is_none() {
            Some((503, "5.5.1", "Send EHLO or HELO first".to_string()))
        } else if self.tx.is_some() {
            Some((503, "5.5.1", "Nested MAIL command".into()))
        } else if self.kind != ListenerKind::Smtp && self.user.is_none() {
            Some((530, "5.7.0", "Authentication required".into()))
        } else if size.is_some_and(|s| s > max) {
            Some((
                552,
                "5.3.4",
                format!("Message size exceeds fixed maximum of {max} bytes"),
            ))
        } else if body == Body::BinaryMime {
            Some((555, "5.5.4", "BODY=BINARYMIME is not supported".into()))
        } else if !smtputf8 && from.as_deref().is_some_and(|f| !f.is_ascii()) {
            Some((553, "5.6.7", "Non-ASCII address requires SMTPUTF8".into()))
        } else {
            self.sender_refusal(from.as_deref()).await
        };
        if let Some((code, esc, text)) = refusal {
            return self.error(code, esc, &text);
        }
        self.tx = Some(Transaction {
            from,
            smtputf8,
            eight_bit: body == Body::EightBitMime,
            envid: None,
            ret_full: None,
            recipients: Vec::new(),
            outbound: Vec::new(),
            success_notices: Vec::new(),
            chunks: None,
        });
        self.reply(250, "2.1.0", "Sender OK");
        false
    }

    /// On submission, the sender must be the user's own address or an alias leading to it.
    async fn sender_refusal(&mut self, from: Option<&str>) -> Option<(u16, &'static str, String)> {
        let user = self.user.as_deref()?;
        let denied = Some((
            553,
            "5.7.1",
            "Sender address not owned by authenticated user".to_string(),
        ));
        let from = from?;
        let Some((address, _)) = crate::address::normalize_address(from) else {
            return denied;
        };
        if address == user {
            return None;
        }
        let resolved = self
            .shared
            .store
            .call(move |store| delivery::resolve(store, &address))
            .await;
        match resolved {
            Ok(Resolution::Local(targets)) if targets.iter().any(|t| t.account == user) => None,
            Ok(_) => denied,
            Err(e) => Some((451, "4.3.0", format!("Temporary lookup failure: {e}"))),
        }
    }

    async fn rcpt(&mut self, to: &str, orcpt: Option<String>, notify: u8) -> bool {
        let max = self.config.limits.max_recipients;
        let authenticated = self.user.is_some();
        let Some(tx) = &self.tx else {
            return self.error(503, "5.5.1", "Send MAIL first");
        };
        if tx.recipients.len() + tx.outbound.len() >= max {
            return self.error(452, "4.5.3", "Too many recipients");
        }
        if !tx.smtputf8 && !to.is_ascii() {
            return self.error(553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
        }
        let address = to.to_string();
        let resolved = self
            .shared
            .store
            .call(move |store| {
                let resolution = delivery::resolve(store, &address)?;
                let mut full = false;
                if let Resolution::Local(targets) = &resolution {
                    for target in targets {
                        full |= store.over_quota(&target.account, 0)?;
                    }
                }
                Ok((resolution, full))
            })
            .await;
        match resolved {
            Ok((Resolution::Local(_), true)) => {
                // Temporary: the owner may make room before the sender gives up.
                self.error(452, "4.2.2", "Mailbox full")
            }
            Ok((Resolution::Local(targets), false)) => {
                if let Some(tx) = &mut self.tx {
                    tx.recipients.push((to.to_string(), targets));
                    // Only for our own users: on the MX port a forged sender would turn
                    // success notices into backscatter.
                    if authenticated && notify::wants(notify, notify::SUCCESS) {
                        tx.success_notices.push((to.to_string(), orcpt));
                    }
                }
                self.reply(250, "2.1.5", "Recipient OK");
                false
            }
            Ok((Resolution::UnknownUser, _)) => self.error(550, "5.1.1", "No such user here"),
            Ok((Resolution::NotLocal, _)) if authenticated => {
                // Submission: remote recipients go to the outbound queue.
                if crate::address::normalize_address(to).is_none() {
                    return self.error(501, "5.1.3", "Invalid recipient address");
                }
                // The local part is kept as given: only the remote host may fold its case.
                let address = to.to_string();
                if let Some(tx) = &mut self.tx {
                    if !tx.outbound.iter().any(|(a, _, _)| *a == address) {
                        tx.outbound.push((address, orcpt, notify));
                    }
                }
                self.reply(250, "2.1.5", "Recipient OK, will be relayed");
                false
            }
            Ok((Resolution::NotLocal, _)) => self.error(554, "5.7.1", "Relay access denied"),
            Err(e) => {
                log::error!("recipient lookup failed: {e}");
                self.reply(451, "4.3.0", "Temporary lookup failure, try again later");
                false
            }
        }
    }

    async fn data(&mut self) -> io::Result<Option<End>> {
        let refusal = match &self.tx {
            None => Some((503, "5.5.1", "Send MAIL first")),
            Some(tx) if tx.recipients.is_empty() && tx.outbound.is_empty() => {
                Some((554, "5.5.1", "No valid recipients"))
            }
            _ => None,
        };
        if let Some((code, esc, text)) = refusal {
            let stop = self.error(code, esc, text);
            return Ok(stop.then_some(End::TooManyErrors));
        }
        self.reply(354, "2.0.0", "End data with <CR><LF>.<CR><LF>");
        let max = self.config.limits.max_message_size;
        let mut spool = SpoolWriter::new(self.shared.store.spool_dir());
        let mut decoder = DataDecoder::new();
        let mut decoded = Vec::new();
        let mut too_big = false;
        self.conn.read_timeout = self.config.limits.data_timeout();
        let outcome = loop {
            if !self.conn.has_buffered_input() {
                match self.conn.fill().await {
                    Ok(0) => break Ok(false),
                    Ok(_) => {}
                    Err(e) => break Err(e),
                }
            }
            let fed = decoder.feed(self.conn.buffered(), &mut decoded);
            self.conn.consume(fed.consumed);
            if !too_big {
                if spool.len() + decoded.len() as u64 > max {
                    too_big = true;
                } else {
                    spool.write(&decoded)?;
                }
            }
            decoded.clear();
            if fed.done {
                break Ok(true);
            }
        };
        self.conn.read_timeout = self.config.limits.command_timeout();
        if !outcome? {
            log::info!(
                "smtp {}: connection lost during DATA; nothing delivered",
                self.conn.peer
            );
            return Ok(Some(End::Closed));
        }
        if too_big {
            self.tx = None;
            let text = format!("Message size exceeds fixed maximum of {max} bytes");
            self.reply(552, "5.3.4", &text);
            return Ok(None);
        }
        if decoder.longest_line() > MAX_DATA_LINE {
            self.tx = None;
            self.reply(500, "5.5.2", "Message has a line longer than 64 KiB");
            return Ok(None);
        }
        self.deliver(spool).await;
        Ok(None)
    }

    async fn bdat(&mut self, size: u64, last: bool) -> io::Result<Option<End>> {
        let max = self.config.limits.max_message_size;
        let failure: Option<&'static [u8]> = match &self.tx {
            None => Some(b"503 5.5.1 Send MAIL first\r\n"),
            Some(tx) if tx.recipients.is_empty() && tx.outbound.is_empty() => {
                Some(b"554 5.5.1 No valid recipients\r\n")
            }
            _ => None,
        };
        // A chunk larger than any acceptable message cannot be worth reading: close.
        if size > max.saturating_mul(2) {
            self.conn
                .send(b"552 5.3.4 Chunk too large, closing connection\r\n");
            return Ok(Some(End::Closed));
        }
        let spool_dir = self.shared.store.spool_dir().to_path_buf();
        let mut chunks = match self.tx.as_mut().and_then(|tx| tx.chunks.take()) {
            Some(c) => c,
            None => Chunking {
                spool: SpoolWriter::new(&spool_dir),
                received: 0,
                failure,
            },
        };
        self.conn.read_timeout = self.config.limits.data_timeout();
        let mut left = size;
        let read = async {
            while left > 0 {
                if !self.conn.has_buffered_input() && self.conn.fill().await? == 0 {
                    return Ok::<bool, io::Error>(false);
                }
                let take = (self.conn.buffered().len() as u64).min(left) as usize;
                if chunks.failure.is_none() {
                    if chunks.received + take as u64 > max {
                        chunks.failure = Some(b"552 5.3.4 Message size exceeds fixed maximum\r\n");
                    } else {
                        chunks.spool.write(&self.conn.buffered()[..take])?;
                    }
                }
                chunks.received += take as u64;
                self.conn.consume(take);
                left -= take as u64;
            }
            Ok(true)
        };
        let complete = read.await;
        self.conn.read_timeout = self.config.limits.command_timeout();
        if !complete? {
            return Ok(Some(End::Closed));
        }
        if let Some(reply) = chunks.failure {
            if last || self.tx.is_none() {
                self.tx = None;
                self.conn.send(reply);
                if self.count_error() {
                    return Ok(Some(End::TooManyErrors));
                }
            } else {
                let text =
                    format!("250 2.0.0 {size} octets received (message will be refused)\r\n");
                self.conn.send(text.as_bytes());
                if let Some(tx) = &mut self.tx {
                    tx.chunks = Some(chunks);
                }
            }
            return Ok(None);
        }
        if last {
            self.deliver(chunks.spool).await;
        } else {
            let text = format!("250 2.0.0 {size} octets received\r\n");
            self.conn.send(text.as_bytes());
            if let Some(tx) = &mut self.tx {
                tx.chunks = Some(chunks);
            }
        }
        Ok(None)
    }

    /// Commits the message for all recipients, then replies.
    async fn deliver(&mut self, spool: SpoolWriter) {
        let Some(tx) = self.tx.take() else { return };
        let mut targets: Vec<Target> = Vec::new();
        for (_, resolved) in &tx.recipients {
            delivery::merge_targets(&mut targets, resolved);
        }
        let id = message_id();
        let protocol = protocol_name(
            self.esmtp,
            tx.smtputf8,
            self.conn.is_tls(),
            self.user.is_some(),
        );
        let now = unix_now();
        let single = match (tx.recipients.as_slice(), tx.outbound.as_slice()) {
            ([(only, _)], []) | ([], [(only, _, _)]) => Some(only.as_str()),
            _ => None,
        };
        let trace = Trace {
            reverse_path: tx.from.as_deref(),
            helo: self.helo.as_deref().unwrap_or("unknown"),
            peer_ip: self.conn.peer.ip(),
            hostname: &self.config.hostname,
            protocol,
            tls: self.conn.tls_description(),
            id: &id,
            recipient: single,
            date: now,
        };
        let prefix = trace.headers();
        let skip = crate::smtp::return_path_len(&prefix);
        let mut message = Incoming::new(prefix, spool.finish(), now);
        // SMTPUTF8 is needed on the way out only when something is not ASCII (RFC 6531
        // §3.2): a client that always says SMTPUTF8 must not get ASCII mail bounced by
        // next hops without it.
        let needs_utf8 = tx.smtputf8
            && (tx.from.as_deref().is_some_and(|f| !f.is_ascii())
                || tx.outbound.iter().any(|(r, _, _)| !r.is_ascii())
                || !crate::mail::header_of(&message.body.head().unwrap_or_default()).is_ascii());
        let outbound = (!tx.outbound.is_empty()).then(|| Outbound {
            sender: tx.from.clone().unwrap_or_default(),
            envid: tx.envid.clone(),
            ret_full: tx.ret_full,
            eight_bit: tx.eight_bit,
            smtputf8: needs_utf8,
            recipients: tx.outbound.clone(),
            skip,
        });
        let head = if tx.success_notices.is_empty() || tx.from.is_none() {
            Vec::new()
        } else {
            message.body.head().unwrap_or_default()
        };
        let size = message.size();
        let delivery = Delivery {
            message,
            targets,
            outbound,
        };
        match delivery::deliver(&self.shared.committer, delivery).await {
            Ok(accepted) => {
                let recipients: Vec<&str> = tx
                    .recipients
                    .iter()
                    .map(|(r, _)| r.as_str())
                    .chain(tx.outbound.iter().map(|(r, _, _)| r.as_str()))
                    .collect();
                log::info!(
                    "smtp {}: accepted id={id} from=<{}> to={} size={size} copies={}{}",
                    self.conn.peer,
                    tx.from.as_deref().unwrap_or(""),
                    recipients.join(","),
                    accepted.placed.len(),
                    accepted
                        .queued
                        .map(|q| format!(" queued={q}"))
                        .unwrap_or_default()
                );
                if accepted.queued.is_some() {
                    self.shared.relay_wake.notify_one();
                }
                if !head.is_empty() {
                    self.send_success_notice(&tx, &head, now).await;
                }
                let text = format!("OK id={id}");
                self.reply(250, "2.0.0", &text);
            }
            Err(e) => {
                log::error!("smtp {}: delivery of id={id} failed: {e}", self.conn.peer);
                self.reply(451, "4.3.0", "Could not store the message, try again later");
            }
        }
    }
}

impl Session {
    /// RFC 3461: local recipients that asked for NOTIFY=SUCCESS get the sender a
    /// "delivered" notice. Stored after the message itself; a crash in between loses the
    /// notice, never the mail.
    async fn send_success_notice(&mut self, tx: &Transaction, head: &[u8], now: i64) {
        let Some(sender) = tx.from.as_deref() else {
            return;
        };
        let hostname = self.config.hostname.clone();
        let (about_sender, about_envid) = (sender.to_string(), tx.envid.clone());
        let recipients = tx.success_notices.clone();
        let header = head.to_vec();
        let built = self
            .shared
            .store
            .call(move |store| {
                let about = notice::About {
                    sender: &about_sender,
                    envid: about_envid.as_deref(),
                    arrival: now,
                };
                notice::delivered(store, &hostname, about, &recipients, &header, now)
            })
            .await;
        match built {
            Ok(Some(n)) => {
                let queued = n.outbound.is_some();
                if let Err(e) = delivery::deliver(&self.shared.committer, n).await {
                    log::error!(
                        "smtp {}: storing a success notice failed: {e}",
                        self.conn.peer
                    );
                } else if queued {
                    self.shared.relay_wake.notify_one();
                }
            }
            Ok(None) => {}
            Err(e) => log::error!("smtp {}: success notice: {e}", self.conn.peer),
        }
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
