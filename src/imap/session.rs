//! One IMAP connection: not authenticated → authenticated → selected → logout.
//!
//! Commands are read with bounded lines and bounded literals (see the module doc of
//! [`crate::imap`]); store calls run in `spawn_blocking`, never holding a transaction
//! across an `.await`. The selected mailbox is a snapshot of (UID, record) pairs that is
//! brought up to date before every tagged reply.

use super::message::{
    binary_section, matches, partial, resolve, section_bytes, BinaryError, Candidate,
};
use super::parse::{
    fetch_items, flag_list, format_date_time, format_set, parse_command, parse_date_time,
    parse_flags, quote, ranges_of, search_keys, search_return, sequence_set, trailing_literal,
    FetchItem, Range, SearchReturn, Section, Value,
};
use crate::auth::{decode_sasl_line, parse_plain, SaslError, Secret};
use crate::clock::unix_now;
use crate::config::Config;
use crate::floor::Shared;
use crate::limits::{MAX_IMAP_COMMAND, MAX_IMAP_LINE, MAX_IMAP_NONSYNC_LITERAL, MAX_SASL_LINE};
use crate::net::{Connection, Line};
use crate::store::{
    chunk_count, flags, FlagOp, Incoming, Mailbox, MessageRecord, SpecialUse, SpoolWriter, Store,
    StoreError,
};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Advertised before and after login (AUTH=, STARTTLS and APPENDLIMIT are added).
const CAPABILITIES: &str = "IMAP4rev1 IMAP4rev2 LITERAL- SASL-IR ID ENABLE IDLE NAMESPACE \
    UNSELECT CHILDREN MOVE UIDPLUS SPECIAL-USE LIST-EXTENDED LIST-STATUS STATUS=SIZE CONDSTORE \
    QRESYNC ESEARCH SEARCHRES BINARY UTF8=ACCEPT QUOTA QUOTA=RES-STORAGE";

/// RFC 3501 §5.4: the autologout timer must be at least 30 minutes.
const MIN_AUTOLOGOUT: Duration = Duration::from_secs(30 * 60);

/// How a session ended (for the log line).
#[derive(Debug)]
pub enum End {
    Logout,
    Closed,
    Timeout,
    TooManyErrors,
    Shutdown,
    Error(io::Error),
}

struct Selected {
    name: String,
    id: u64,
    read_only: bool,
    /// At least the mailbox's UIDNEXT: bounds the UIDs VANISHED (EARLIER) may name.
    uid_next: u32,
    /// In UID order; `gone` marks messages expunged elsewhere but not yet reported.
    messages: Vec<Msg>,
    /// SEARCHRES (RFC 5182): the UIDs `$` stands for.
    saved: Vec<u32>,
}

struct Msg {
    uid: u32,
    record: MessageRecord,
    gone: bool,
}

/// One command as read from the connection.
enum Input {
    Command(Vec<u8>),
    /// APPEND whose message literal follows: the command up to the literal, its length,
    /// whether the client waits for a continuation.
    Append {
        head: Vec<u8>,
        length: u64,
        sync: bool,
    },
    /// A protocol violation answered with BAD; `close` ends the session.
    Bad {
        tag: Option<String>,
        text: String,
        close: bool,
    },
    Closed,
}

pub struct Session {
    shared: Arc<Shared>,
    config: Arc<Config>,
    conn: Connection,
    user: Option<String>,
    selected: Option<Selected>,
    changes: watch::Receiver<u64>,
    errors: u32,
    /// CONDSTORE enabled (ENABLE, SELECT (CONDSTORE), or a command using a modseq).
    condstore: bool,
    /// UTF8=ACCEPT enabled: mailbox names are UTF-8 on the wire, not modified UTF-7.
    utf8: bool,
    /// ENABLE IMAP4rev2 (RFC 9051): ESEARCH replies, no \Recent, LIST in SELECT.
    rev2: bool,
    /// ENABLE QRESYNC (RFC 7162): VANISHED instead of EXPUNGE.
    qresync: bool,
}

type Flow = io::Result<Option<End>>;

/// A mailbox with all its message records in UID order.
type LoadedMailbox = (Mailbox, Vec<(u32, MessageRecord)>);

fn blocking_error(e: tokio::task::JoinError) -> io::Error {
    io::Error::other(e)
}

impl Session {
    pub fn new(shared: Arc<Shared>, mut conn: Connection) -> Session {
        let config = shared.config();
        let timeout = config.limits.command_timeout().max(MIN_AUTOLOGOUT);
        conn.read_timeout = timeout;
        conn.write_timeout = config.limits.command_timeout();
        let changes = shared.committer.subscribe();
        Session {
            shared,
            config,
            conn,
            user: None,
            selected: None,
            changes,
            errors: 0,
            condstore: false,
            utf8: false,
            rev2: false,
            qresync: false,
        }
    }

    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    fn store(&self) -> Arc<Store> {
        self.shared.store.clone()
    }

    /// Runs a store call off the async runtime.
    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> crate::store::Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = io::Result<crate::store::Result<T>>> + Send + 'static
    {
        let store = self.store();
        async move {
            tokio::task::spawn_blocking(move || f(&store))
                .await
                .map_err(blocking_error)
        }
    }

    fn login_allowed(&self) -> bool {
        self.conn.is_tls()
            || (self.config.auth.allow_plaintext_on_loopback && self.conn.peer.ip().is_loopback())
    }

    fn capabilities(&self) -> String {
        let mut caps = String::from(CAPABILITIES);
        caps.push_str(&format!(" APPENDLIMIT={}", self.append_limit()));
        if self.user.is_none() {
            if !self.conn.is_tls() {
                caps.push_str(" STARTTLS");
            }
            if self.login_allowed() {
                caps.push_str(" AUTH=PLAIN");
            } else {
                caps.push_str(" LOGINDISABLED");
            }
        }
        caps
    }

    fn append_limit(&self) -> u64 {
        self.config.limits.max_message_size.min(u32::MAX as u64)
    }

    fn untagged(&mut self, text: &str) {
        self.conn.send(format!("* {text}\r\n").as_bytes());
    }

    fn tagged(&mut self, tag: &str, text: &str) {
        self.conn.send(format!("{tag} {text}\r\n").as_bytes());
    }

    /// A tagged BAD (or untagged when there is no tag); true when the session must end.
    fn bad(&mut self, tag: Option<&str>, text: &str) -> bool {
        let tag = tag.unwrap_or("*");
        self.conn.send(format!("{tag} BAD {text}\r\n").as_bytes());
        self.count_error()
    }

    fn no(&mut self, tag: &str, text: &str) -> bool {
        self.tagged(tag, &format!("NO {text}"));
        self.count_error()
    }

    fn count_error(&mut self) -> bool {
        self.errors += 1;
        if self.errors >= self.config.limits.max_errors {
            self.conn.send(b"* BYE Too many errors\r\n");
            return true;
        }
        false
    }

    pub async fn run(&mut self) -> End {
        let greeting = format!(
            "OK [CAPABILITY {}] letterbox IMAP ready",
            self.capabilities()
        );
        self.untagged(&greeting);
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            let input = tokio::select! {
                input = self.read_command() => Some(input),
                _ = shutdown.wait_for(|stop| *stop) => None,
            };
            let Some(input) = input else {
                self.conn.send(b"* BYE Server shutting down\r\n");
                self.conn.close().await;
                return End::Shutdown;
            };
            let end = match input {
                Ok(Input::Closed) => Some(End::Closed),
                Ok(Input::Bad { tag, text, close }) => {
                    let too_many = self.bad(tag.as_deref(), &text);
                    if close {
                        self.conn.send(b"* BYE Protocol error\r\n");
                        Some(End::Closed)
                    } else {
                        too_many.then_some(End::TooManyErrors)
                    }
                }
                Ok(Input::Command(bytes)) => self
                    .command(&bytes)
                    .await
                    .unwrap_or_else(|e| Some(io_end(e))),
                Ok(Input::Append { head, length, sync }) => self
                    .append(&head, length, sync)
                    .await
                    .unwrap_or_else(|e| Some(io_end(e))),
                Err(e) => Some(io_end(e)),
            };
            if let Some(end) = end {
                if matches!(end, End::Timeout) {
                    self.conn.send(b"* BYE Autologout: idle too long\r\n");
                }
                self.conn.close().await;
                return end;
            }
        }
    }

    /// Reads one command with its literals, bounded. See the module doc.
    async fn read_command(&mut self) -> io::Result<Input> {
        let mut command: Vec<u8> = Vec::new();
        loop {
            let line = match self.conn.read_line(MAX_IMAP_LINE).await? {
                Line::Closed => return Ok(Input::Closed),
                Line::TooLong => {
                    return Ok(Input::Bad {
                        tag: tag_of(&command),
                        text: "Line too long".into(),
                        close: false,
                    })
                }
                Line::Complete(line) => line,
            };
            let Some((length, nonsync)) = trailing_literal(&line) else {
                command.extend_from_slice(trim_crlf(&line));
                if command.len() > MAX_IMAP_COMMAND {
                    return Ok(Input::Bad {
                        tag: tag_of(&command),
                        text: "Command too long".into(),
                        close: false,
                    });
                }
                return Ok(Input::Command(command));
            };
            let body = trim_crlf(&line);
            let spec_start = body.iter().rposition(|&b| b == b'{').unwrap_or(body.len());
            let mut head = command.clone();
            head.extend_from_slice(&body[..spec_start]);
            if is_append_message(&head) {
                // BINARY's literal8 (`~{n}`): the message bytes are taken as they come.
                if head.ends_with(b"~") {
                    head.pop();
                }
                return Ok(Input::Append {
                    head,
                    length,
                    sync: !nonsync,
                });
            }
            let budget = MAX_IMAP_COMMAND.saturating_sub(command.len() + line.len()) as u64;
            if nonsync && (length > MAX_IMAP_NONSYNC_LITERAL || length > budget) {
                // Its bytes are already on the way; we cannot tell them from commands.
                return Ok(Input::Bad {
                    tag: tag_of(&head),
                    text: "[TOOBIG] Non-synchronising literal too large (LITERAL-)".into(),
                    close: true,
                });
            }
            if length > budget {
                return Ok(Input::Bad {
                    tag: tag_of(&head),
                    text: "[TOOBIG] Literal too large".into(),
                    close: false,
                });
            }
            command.extend_from_slice(body);
            command.extend_from_slice(b"\r\n");
            if !nonsync {
                self.conn.send(b"+ Ready\r\n");
            }
            let mut left = length as usize;
            while left > 0 {
                if !self.conn.has_buffered_input() && self.conn.fill().await? == 0 {
                    return Ok(Input::Closed);
                }
                let buffered = self.conn.buffered();
                let take = buffered.len().min(left);
                command.extend_from_slice(&buffered[..take]);
                self.conn.consume(take);
                left -= take;
            }
        }
    }

    async fn command(&mut self, bytes: &[u8]) -> Flow {
        let command = match parse_command(bytes) {
            Ok(c) => c,
            Err((tag, text)) => {
                return Ok(self
                    .bad(tag.as_deref(), &text)
                    .then_some(End::TooManyErrors))
            }
        };
        let tag = command.tag.clone();
        let (name, args, uid) = if command.name == "UID" {
            match command.args.split_first() {
                Some((Value::Atom(sub), rest)) => (sub.to_ascii_uppercase(), rest.to_vec(), true),
                _ => {
                    return Ok(self
                        .bad(Some(&tag), "UID needs a command")
                        .then_some(End::TooManyErrors))
                }
            }
        } else {
            (command.name.clone(), command.args.clone(), false)
        };
        let result = self.dispatch(&tag, &name, &args, uid).await?;
        Ok(match result {
            Reply::Done => None,
            Reply::End(end) => Some(end),
            Reply::Bad(text) => self.bad(Some(&tag), &text).then_some(End::TooManyErrors),
            Reply::No(text) => self.no(&tag, &text).then_some(End::TooManyErrors),
        })
    }

    async fn dispatch(
        &mut self,
        tag: &str,
        name: &str,
        args: &[Value],
        uid: bool,
    ) -> io::Result<Reply> {
        let authenticated = self.user.is_some();
        let selected = self.selected.is_some();
        if uid
            && !matches!(
                name,
                "FETCH" | "STORE" | "COPY" | "MOVE" | "SEARCH" | "EXPUNGE"
            )
        {
            return Ok(Reply::Bad(format!("UID {name} is not a command")));
        }
        match name {
            "CAPABILITY" => {
                let caps = self.capabilities();
                self.untagged(&format!("CAPABILITY {caps}"));
                self.finish(tag, "OK CAPABILITY completed", true).await
            }
            "NOOP" | "CHECK" => {
                self.finish(tag, &format!("OK {name} completed"), true)
                    .await
            }
            "LOGOUT" => {
                self.untagged("BYE letterbox logging out");
                self.tagged(tag, "OK LOGOUT completed");
                Ok(Reply::End(End::Logout))
            }
            "ID" => {
                self.untagged("ID (\"name\" \"letterbox\")");
                self.finish(tag, "OK ID completed", true).await
            }
            "ENABLE" if authenticated => {
                let mut enabled = String::from("ENABLED");
                for arg in args {
                    let Some(name) = arg.atom().map(str::to_ascii_uppercase) else {
                        return Ok(Reply::Bad("ENABLE takes capability names".into()));
                    };
                    // Unknown names are ignored (RFC 5161 §3.1).
                    match name.as_str() {
                        "CONDSTORE" => self.condstore = true,
                        "QRESYNC" => {
                            self.condstore = true;
                            self.qresync = true;
                        }
                        "UTF8=ACCEPT" => self.utf8 = true,
                        // Mailbox names are UTF-8 in IMAP4rev2 (RFC 9051 §5.1).
                        "IMAP4REV2" => {
                            self.rev2 = true;
                            self.utf8 = true;
                        }
                        _ => continue,
                    }
                    enabled.push(' ');
                    enabled.push_str(if name == "IMAP4REV2" {
                        "IMAP4rev2"
                    } else {
                        &name
                    });
                }
                self.untagged(&enabled);
                self.finish(tag, "OK ENABLE completed", true).await
            }
            "STARTTLS" if !authenticated => self.starttls(tag).await,
            "LOGIN" if !authenticated => self.login_command(tag, args).await,
            "AUTHENTICATE" if !authenticated => self.authenticate(tag, args).await,
            "STARTTLS" | "LOGIN" | "AUTHENTICATE" => Ok(Reply::Bad("Already authenticated".into())),
            _ if !authenticated => Ok(Reply::Bad(format!("{name} needs authentication first"))),
            "SELECT" | "EXAMINE" => self.select(tag, args, name == "EXAMINE").await,
            "NAMESPACE" => {
                self.untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
                self.finish(tag, "OK NAMESPACE completed", true).await
            }
            "LIST" | "LSUB" => self.list(tag, args, name == "LSUB").await,
            "STATUS" => self.status(tag, args).await,
            "CREATE" | "DELETE" | "SUBSCRIBE" | "UNSUBSCRIBE" => self.manage(tag, name, args).await,
            "RENAME" => self.rename(tag, args).await,
            "GETQUOTAROOT" | "GETQUOTA" => self.quota(tag, name, args).await,
            "SETQUOTA" => Ok(Reply::No(
                "[NOPERM] Quotas are set by the administrator (letterbox user quota)".into(),
            )),
            "APPEND" => Ok(Reply::Bad("APPEND needs a message literal".into())),
            "IDLE" => self.idle(tag).await,
            _ if !selected => Ok(Reply::Bad(format!("{name} needs a selected mailbox"))),
            "CLOSE" | "UNSELECT" => self.close(tag, name == "CLOSE").await,
            "EXPUNGE" => self.expunge(tag, args, uid).await,
            "FETCH" => self.fetch(tag, args, uid).await,
            "STORE" => self.store_command(tag, args, uid).await,
            "COPY" | "MOVE" => self.copy(tag, args, uid, name == "MOVE").await,
            "SEARCH" => self.search(tag, args, uid).await,
            _ => Ok(Reply::Bad(format!("Unknown command {name}"))),
        }
    }

    /// Reports pending mailbox changes, then sends the tagged reply.
    async fn finish(&mut self, tag: &str, text: &str, allow_expunge: bool) -> io::Result<Reply> {
        self.sync(allow_expunge).await?;
        self.tagged(tag, text);
        Ok(Reply::Done)
    }

    /// Brings the snapshot up to date and sends EXPUNGE / EXISTS / FETCH FLAGS.
    async fn sync(&mut self, allow_expunge: bool) -> io::Result<()> {
        let Some(id) = self.selected.as_ref().map(|s| s.id) else {
            return Ok(());
        };
        let pending_gone = self
            .selected
            .as_ref()
            .is_some_and(|s| s.messages.iter().any(|m| m.gone));
        let changed = self.changes.has_changed().unwrap_or(false);
        if !(changed || (allow_expunge && pending_gone)) {
            return Ok(());
        }
        self.changes.borrow_and_update();
        let fresh = match self.blocking(move |s| s.messages(id)).await? {
            Ok(f) => f,
            Err(e) => {
                log::error!("imap {}: reading mailbox failed: {e}", self.conn.peer);
                return Ok(());
            }
        };
        let mut out = String::new();
        let condstore = self.condstore;
        let Some(sel) = self.selected.as_mut() else {
            return Ok(());
        };
        for m in sel.messages.iter_mut() {
            if fresh.binary_search_by_key(&m.uid, |(u, _)| *u).is_err() {
                m.gone = true;
            }
        }
        if allow_expunge {
            let gone: Vec<u32> = sel
                .messages
                .iter()
                .filter(|m| m.gone)
                .map(|m| m.uid)
                .collect();
            out.push_str(&expunge_responses(sel, &gone, self.qresync));
        }
        for (i, m) in sel.messages.iter_mut().enumerate() {
            if let Ok(pos) = fresh.binary_search_by_key(&m.uid, |(u, _)| *u) {
                let record = &fresh[pos].1;
                if record.flags != m.record.flags || record.keywords != m.record.keywords {
                    m.record = record.clone();
                    let modseq = if condstore {
                        format!(" MODSEQ ({})", record.modseq)
                    } else {
                        String::new()
                    };
                    out.push_str(&format!(
                        "* {} FETCH (UID {} FLAGS {}{modseq})\r\n",
                        i + 1,
                        m.uid,
                        flag_list(record.flags, &record.keywords, false)
                    ));
                }
            }
        }
        let last = sel.messages.last().map_or(0, |m| m.uid);
        if let Some((uid, _)) = fresh.last() {
            sel.uid_next = sel.uid_next.max(uid.saturating_add(1));
        }
        let before = sel.messages.len();
        for (uid, record) in fresh.into_iter().filter(|(u, _)| *u > last) {
            sel.messages.push(Msg {
                uid,
                record,
                gone: false,
            });
        }
        if sel.messages.len() != before {
            out.push_str(&format!("* {} EXISTS\r\n", sel.messages.len()));
        }
        self.conn.send(out.as_bytes());
        Ok(())
    }

    async fn starttls(&mut self, tag: &str) -> io::Result<Reply> {
        if self.conn.is_tls() {
            return Ok(Reply::Bad("TLS is already active".into()));
        }
        self.tagged(tag, "OK Begin TLS negotiation now");
        let acceptor = self.shared.tls.acceptor();
        if let Err(e) = self.conn.start_tls(&acceptor).await {
            log::info!("imap {}: TLS handshake failed: {e}", self.conn.peer);
            return Ok(Reply::End(End::Closed));
        }
        Ok(Reply::Done)
    }

    async fn login_command(&mut self, tag: &str, args: &[Value]) -> io::Result<Reply> {
        let [user, password] = args else {
            return Ok(Reply::Bad("LOGIN needs a user name and a password".into()));
        };
        if !self.login_allowed() {
            return Ok(Reply::No(
                "[PRIVACYREQUIRED] LOGIN requires TLS: use STARTTLS".into(),
            ));
        }
        let (Ok(user), Ok(password)) = (user.text(), password.text()) else {
            return Ok(Reply::Bad("Invalid UTF-8 in credentials".into()));
        };
        self.login(tag, &user, Secret(password)).await
    }

    async fn authenticate(&mut self, tag: &str, args: &[Value]) -> io::Result<Reply> {
        let Some(mechanism) = args.first().and_then(Value::atom) else {
            return Ok(Reply::Bad("AUTHENTICATE needs a mechanism".into()));
        };
        if !mechanism.eq_ignore_ascii_case("PLAIN") {
            return Ok(Reply::No("Unsupported authentication mechanism".into()));
        }
        if !self.login_allowed() {
            return Ok(Reply::No(
                "[PRIVACYREQUIRED] Authentication requires TLS: use STARTTLS".into(),
            ));
        }
        let response = match args.get(1) {
            Some(v) => match v.text() {
                Ok(t) => t,
                Err(e) => return Ok(Reply::Bad(e)),
            },
            None => {
                self.conn.send(b"+ \r\n");
                match self.conn.read_line(MAX_SASL_LINE).await? {
                    Line::Complete(l) => String::from_utf8_lossy(&l).trim().to_string(),
                    Line::TooLong => return Ok(Reply::Bad("Line too long".into())),
                    Line::Closed => return Ok(Reply::End(End::Closed)),
                }
            }
        };
        match decode_sasl_line(&response).and_then(|b| parse_plain(&b)) {
            Ok((user, password)) => self.login(tag, &user, password).await,
            Err(SaslError::Cancelled) => Ok(Reply::Bad("Authentication cancelled".into())),
            Err(SaslError::Malformed) => Ok(Reply::Bad("Malformed authentication data".into())),
        }
    }

    async fn login(&mut self, tag: &str, user: &str, password: Secret) -> io::Result<Reply> {
        let Some(account) = self.shared.auth.login(user, password).await else {
            log::info!("imap {}: authentication failed", self.conn.peer);
            return Ok(Reply::No(
                "[AUTHENTICATIONFAILED] Invalid credentials".into(),
            ));
        };
        log::info!("imap {}: logged in as {account}", self.conn.peer);
        self.user = Some(account);
        let caps = self.capabilities();
        self.tagged(tag, &format!("OK [CAPABILITY {caps}] Logged in"));
        Ok(Reply::Done)
    }

    /// A stored (UTF-8) mailbox name as this client expects it.
    fn wire_name(&self, name: &str) -> String {
        if self.utf8 {
            name.to_string()
        } else {
            super::mutf7::encode(name)
        }
    }

    fn account(&self) -> String {
        self.user.clone().unwrap_or_default()
    }

    /// A mailbox of the logged-in account with all its message records, or the NO reply
    /// to send when it does not exist or cannot be read. The future holds no borrow of the
    /// session, so it stays `Send`.
    fn load_mailbox(
        &self,
        name: &str,
    ) -> impl std::future::Future<Output = io::Result<Result<LoadedMailbox, Reply>>> + Send + 'static
    {
        let account = self.account();
        let lookup = name.to_string();
        let loaded = self.blocking(move |s| {
            let Some(mailbox) = s.mailbox(&account, &lookup)? else {
                return Ok(None);
            };
            let messages = s.messages(mailbox.id)?;
            Ok(Some((mailbox, messages)))
        });
        async move {
            Ok(match loaded.await? {
                Ok(Some(x)) => Ok(x),
                Ok(None) => Err(Reply::No("[NONEXISTENT] No such mailbox".into())),
                Err(e) => Err(Reply::No(format!("[SERVERBUG] {e}"))),
            })
        }
    }

    async fn select(&mut self, tag: &str, args: &[Value], read_only: bool) -> io::Result<Reply> {
        let (name, params) = match args {
            [name] => (name, &[][..]),
            [name, Value::List(params)] => (name, &params[..]),
            _ => return Ok(Reply::Bad("SELECT needs a mailbox name".into())),
        };
        let mut resync = None;
        let mut params = params.iter();
        while let Some(p) = params.next() {
            match p.atom().map(str::to_ascii_uppercase).as_deref() {
                Some("CONDSTORE") => self.condstore = true,
                Some("QRESYNC") if !self.qresync => {
                    return Ok(Reply::Bad("QRESYNC needs ENABLE QRESYNC first".into()))
                }
                Some("QRESYNC") => match params.next().map(qresync_parameter) {
                    Some(Ok(r)) => resync = Some(r),
                    Some(Err(e)) => return Ok(Reply::Bad(e)),
                    None => return Ok(Reply::Bad("QRESYNC needs its parameters".into())),
                },
                _ => return Ok(Reply::Bad("Unknown SELECT parameter".into())),
            }
        }
        let name = match mailbox_name(name, self.utf8) {
            Ok(n) => n,
            Err(e) => return Ok(Reply::Bad(e)),
        };
        if self.selected.take().is_some() {
            self.untagged("OK [CLOSED] Previous mailbox closed");
        }
        self.changes.borrow_and_update();
        let (mailbox, messages) = match self.load_mailbox(&name).await? {
            Ok(x) => x,
            Err(no) => return Ok(no),
        };
        let first_unseen = messages
            .iter()
            .position(|(_, r)| r.flags & flags::SEEN == 0);
        if self.rev2 {
            // RFC 9051 §6.3.2: a LIST response names the mailbox as the server spells it.
            let wire = quote(&self.wire_name(&mailbox.name));
            self.untagged(&format!("LIST () \"/\" {wire}"));
        }
        self.untagged("FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)");
        if read_only {
            self.untagged("OK [PERMANENTFLAGS ()] Read-only mailbox");
        } else {
            self.untagged(
                "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted",
            );
        }
        self.untagged(&format!("{} EXISTS", messages.len()));
        // IMAP4rev2 dropped \Recent and the UNSEEN response code.
        if !self.rev2 {
            self.untagged("0 RECENT");
            if let Some(i) = first_unseen {
                self.untagged(&format!("OK [UNSEEN {}] First unseen", i + 1));
            }
        }
        self.untagged(&format!(
            "OK [UIDVALIDITY {}] UIDs valid",
            mailbox.uid_validity
        ));
        self.untagged(&format!(
            "OK [UIDNEXT {}] Predicted next UID",
            mailbox.uid_next
        ));
        self.untagged(&format!(
            "OK [HIGHESTMODSEQ {}] Highest",
            mailbox.highest_modseq
        ));
        if let Some((validity, modseq, known)) = resync {
            // RFC 7162 §3.2.5: only when the client's UIDVALIDITY is still right.
            if validity == mailbox.uid_validity {
                let present: Vec<u32> = messages.iter().map(|(u, _)| *u).collect();
                let max = mailbox.uid_next.saturating_sub(1);
                let known = known.unwrap_or_else(|| vec![(1, u32::MAX)]);
                // Expunged UIDs are not kept with their modseq, so every UID the client
                // may know and that is gone is reported, as RFC 7162 §3.2.5.1 allows.
                let vanished = missing_uids(&known, &present, max);
                if !vanished.is_empty() {
                    self.untagged(&format!("VANISHED (EARLIER) {vanished}"));
                }
                let mut out = String::new();
                for (i, (uid, r)) in messages.iter().enumerate() {
                    if r.modseq > modseq {
                        out.push_str(&format!(
                            "* {} FETCH (UID {uid} FLAGS {} MODSEQ ({}))\r\n",
                            i + 1,
                            flag_list(r.flags, &r.keywords, false),
                            r.modseq
                        ));
                    }
                }
                self.conn.send(out.as_bytes());
            }
        }
        self.selected = Some(Selected {
            name,
            id: mailbox.id,
            read_only,
            uid_next: mailbox.uid_next,
            messages: messages
                .into_iter()
                .map(|(uid, record)| Msg {
                    uid,
                    record,
                    gone: false,
                })
                .collect(),
            saved: Vec::new(),
        });
        let mode = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        self.tagged(tag, &format!("OK [{mode}] {verb} completed"));
        Ok(Reply::Done)
    }

    /// LIST (with LIST-EXTENDED selection and return options, RFC 5258, and
    /// LIST-STATUS, RFC 5819) and LSUB.
    async fn list(&mut self, tag: &str, args: &[Value], lsub: bool) -> io::Result<Reply> {
        let request = match list_request(args, lsub) {
            Ok(r) => r,
            Err(e) => return Ok(Reply::Bad(e)),
        };
        if let Some(items) = &request.status {
            if let Err(e) = status_items(items) {
                return Ok(Reply::Bad(e));
            }
        }
        let verb = if lsub { "LSUB" } else { "LIST" };
        if request.patterns == [""] {
            self.untagged(&format!("{verb} (\\Noselect) \"/\" \"\""));
            return self
                .finish(tag, &format!("OK {verb} completed"), true)
                .await;
        }
        let mut patterns = Vec::new();
        for pattern in &request.patterns {
            let pattern = format!("{}{pattern}", request.reference);
            patterns.push(if self.utf8 {
                pattern
            } else {
                match super::mutf7::decode(&pattern) {
                    Ok(p) => p,
                    Err(e) => return Ok(Reply::Bad(e)),
                }
            });
        }
        let account = self.account();
        let mailboxes = match self.blocking(move |s| s.mailboxes(&account)).await? {
            Ok(m) => m,
            Err(e) => return Ok(Reply::No(format!("[SERVERBUG] {e}"))),
        };
        let mut out = String::new();
        let mut with_status = Vec::new();
        for mailbox in &mailboxes {
            let matched = patterns.iter().any(|pattern| {
                if mailbox.name == "INBOX" {
                    wildcard_match(&pattern.to_ascii_uppercase(), "INBOX")
                        || wildcard_match(pattern, "INBOX")
                } else {
                    wildcard_match(pattern, &mailbox.name)
                }
            });
            if !matched || (request.special_use_only && mailbox.special_use.is_none()) {
                continue;
            }
            let mut extra = String::new();
            if request.subscribed_only && !mailbox.subscribed {
                // RECURSIVEMATCH: a parent listed for its subscribed children.
                let prefix = format!("{}/", mailbox.name);
                let child_subscribed = mailboxes
                    .iter()
                    .any(|m| m.subscribed && m.name.starts_with(&prefix));
                if !(request.recursive && child_subscribed) {
                    continue;
                }
                extra = " (\"CHILDINFO\" (\"SUBSCRIBED\"))".into();
            }
            let mut attributes = list_attributes(mailbox, &mailboxes, lsub);
            if request.show_subscribed && mailbox.subscribed {
                attributes.push_str(" \\Subscribed");
            }
            let wire = quote(&self.wire_name(&mailbox.name));
            out.push_str(&format!("* {verb} ({attributes}) \"/\" {wire}{extra}\r\n"));
            if request.status.is_some() {
                with_status.push((mailbox.clone(), out.len()));
            }
        }
        if let Some(items) = &request.status {
            // Each STATUS goes right after its mailbox's LIST line (RFC 5819 §2).
            let ids: Vec<u64> = with_status.iter().map(|(m, _)| m.id).collect();
            let loaded = self
                .blocking(move |s| {
                    ids.iter()
                        .map(|&id| s.messages(id))
                        .collect::<Result<Vec<_>, _>>()
                })
                .await?;
            let loaded = match loaded {
                Ok(l) => l,
                Err(e) => return Ok(Reply::No(format!("[SERVERBUG] {e}"))),
            };
            let items = status_items(items).unwrap_or_default();
            let mut merged = String::new();
            let mut from = 0;
            for ((mailbox, end), messages) in with_status.iter().zip(loaded) {
                merged.push_str(&out[from..*end]);
                from = *end;
                let values = status_values(&items, mailbox, &messages);
                let wire = quote(&self.wire_name(&mailbox.name));
                merged.push_str(&format!("* STATUS {wire} ({values})\r\n"));
            }
            merged.push_str(&out[from..]);
            out = merged;
        }
        self.conn.send(out.as_bytes());
        self.finish(tag, &format!("OK {verb} completed"), true)
            .await
    }

    async fn status(&mut self, tag: &str, args: &[Value]) -> io::Result<Reply> {
        let (Some(name), Some(Value::List(items))) = (args.first(), args.get(1)) else {
            return Ok(Reply::Bad(
                "STATUS needs a mailbox and a list of items".into(),
            ));
        };
        let name = match mailbox_name(name, self.utf8) {
            Ok(n) => n,
            Err(e) => return Ok(Reply::Bad(e)),
        };
        let wanted = match status_items(items) {
            Ok(w) => w,
            Err(e) => return Ok(Reply::Bad(e)),
        };
        let (mailbox, messages) = match self.load_mailbox(&name).await? {
            Ok(x) => x,
            Err(no) => return Ok(no),
        };
        let values = status_values(&wanted, &mailbox, &messages);
        let wire = self.wire_name(&mailbox.name);
        self.untagged(&format!("STATUS {} ({values})", quote(&wire)));
        self.finish(tag, "OK STATUS completed", true).await
    }

    /// GETQUOTAROOT and GETQUOTA (RFC 9208): one root, "", per account, with the
    /// STORAGE resource in KiB. An account without a quota has no quota root.
    async fn quota(&mut self, tag: &str, name: &str, args: &[Value]) -> io::Result<Reply> {
        let [arg] = args else {
            return Ok(Reply::Bad(format!("{name} needs one argument")));
        };
        let account = self.account();
        let usage = match self.blocking(move |s| s.usage(&account)).await? {
            Ok(u) => u,
            Err(e) => return Ok(Reply::No(format!("[SERVERBUG] {e}"))),
        };
        let quota_line = |(used, limit): (u64, u64)| {
            format!(
                "QUOTA \"\" (STORAGE {} {})",
                used.div_ceil(1024),
                limit / 1024
            )
        };
        if name == "GETQUOTAROOT" {
            let mailbox = match mailbox_name(arg, self.utf8) {
                Ok(n) => n,
                Err(e) => return Ok(Reply::Bad(e)),
            };
            if let Err(no) = self.load_mailbox(&mailbox).await? {
                return Ok(no);
            }
            let wire = quote(&self.wire_name(&mailbox));
            if usage.1 == 0 {
                self.untagged(&format!("QUOTAROOT {wire}"));
            } else {
                self.untagged(&format!("QUOTAROOT {wire} \"\""));
                self.untagged(&quota_line(usage));
            }
        } else {
            if usage.1 == 0 || !arg.text().is_ok_and(|t| t.is_empty()) {
                return Ok(Reply::No("[NONEXISTENT] No such quota root".into()));
            }
            self.untagged(&quota_line(usage));
        }
        self.finish(tag, &format!("OK {name} completed"), true)
            .await
    }

    async fn manage(&mut self, tag: &str, name: &str, args: &[Value]) -> io::Result<Reply> {
        let [mailbox] = args else {
            return Ok(Reply::Bad(format!("{name} needs a mailbox name")));
        };
        let mailbox = match mailbox_name(mailbox, self.utf8) {
            Ok(n) => n.trim_end_matches('/').to_string(),
            Err(e) => return Ok(Reply::Bad(e)),
        };
        if name == "DELETE" && self.selected.as_ref().is_some_and(|s| s.name == mailbox) {
            self.selected = None;
        }
        let account = self.account();
        let verb = name.to_string();
        let result = self
            .blocking(move |s| match verb.as_str() {
                "CREATE" => {
                    // Create missing parents too (RFC 3501 §6.3.3).
                    let parts: Vec<&str> = mailbox.split('/').collect();
                    for i in 1..parts.len() {
                        let parent = parts[..i].join("/");
                        if s.mailbox(&account, &parent)?.is_none() {
                            s.create_mailbox(&account, &parent)?;
                        }
                    }
                    s.create_mailbox(&account, &mailbox).map(|_| ())
                }
                "DELETE" => s.delete_mailbox(&account, &mailbox),
                "SUBSCRIBE" => s.set_subscribed(&account, &mailbox, true),
                _ => s.set_subscribed(&account, &mailbox, false),
            })
            .await?;
        match result {
            Ok(()) => {
                self.shared.committer.notify();
                self.finish(tag, &format!("OK {name} completed"), true)
                    .await
            }
            Err(e) => Ok(Reply::No(store_error_text(&e))),
        }
    }

    async fn rename(&mut self, tag: &str, args: &[Value]) -> io::Result<Reply> {
        let [from, to] = args else {
            return Ok(Reply::Bad("RENAME needs two mailbox names".into()));
        };
        let (from, to) = match (mailbox_name(from, self.utf8), mailbox_name(to, self.utf8)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return Ok(Reply::Bad("Invalid mailbox name".into())),
        };
        let account = self.account();
        let (old, new) = (from.clone(), to.clone());
        let result = self
            .blocking(move |s| s.rename_mailbox(&account, &from, &to))
            .await?;
        match result {
            Ok(()) => {
                // The selected mailbox (or one of its parents) may have been renamed.
                if let Some(sel) = self.selected.as_mut() {
                    if old != "INBOX" {
                        if sel.name == old {
                            sel.name = new;
                        } else if let Some(rest) = sel.name.strip_prefix(&format!("{old}/")) {
                            sel.name = format!("{new}/{rest}");
                        }
                    }
                }
                self.shared.committer.notify();
                self.finish(tag, "OK RENAME completed", true).await
            }
            Err(e) => Ok(Reply::No(store_error_text(&e))),
        }
    }

    async fn append(&mut self, head: &[u8], length: u64, sync: bool) -> Flow {
        let command = match parse_command(head) {
            Ok(c) => c,
            Err((tag, text)) => {
                // Without a parsable head we cannot tell what the literal is: refuse it.
                self.bad(tag.as_deref(), &text);
                return Ok((!sync).then_some(End::Closed));
            }
        };
        let tag = command.tag.clone();
        let refuse = |s: &mut Self, text: &str, bad: bool| -> Option<End> {
            if bad {
                s.bad(Some(&tag), text);
            } else {
                s.no(&tag, text);
            }
            if sync {
                None
            } else {
                // The literal's bytes are already on the way.
                s.conn
                    .send(b"* BYE Cannot skip a non-synchronising literal\r\n");
                Some(End::Closed)
            }
        };
        if self.user.is_none() {
            return Ok(refuse(self, "APPEND needs authentication first", true));
        }
        if length > self.append_limit() {
            return Ok(refuse(self, "[TOOBIG] Message exceeds APPENDLIMIT", false));
        }
        if !sync && length > MAX_IMAP_NONSYNC_LITERAL {
            return Ok(refuse(
                self,
                "[TOOBIG] Non-synchronising literal too large (LITERAL-)",
                true,
            ));
        }
        let mut args = command.args.iter();
        let name = match args.next().map(|v| mailbox_name(v, self.utf8)) {
            Some(Ok(n)) => n,
            _ => return Ok(refuse(self, "APPEND needs a mailbox name", true)),
        };
        let mut system = 0;
        let mut keywords = Vec::new();
        let mut date = None;
        for arg in args {
            match arg {
                Value::List(_) => match parse_flags(arg) {
                    Ok((s, k)) => {
                        system = s;
                        keywords = k;
                    }
                    Err(e) => return Ok(refuse(self, &e, true)),
                },
                Value::Str(_) => match arg.text().and_then(|t| parse_date_time(&t)) {
                    Ok(t) => date = Some(t),
                    Err(e) => return Ok(refuse(self, &e, true)),
                },
                Value::Atom(_) => return Ok(refuse(self, "Invalid APPEND argument", true)),
            }
        }
        let account = self.account();
        let lookup = name.clone();
        let exists = self
            .blocking(move |s| {
                let exists = s.mailbox(&account, &lookup)?.is_some();
                Ok((exists, s.over_quota(&account, length)?))
            })
            .await?;
        match exists {
            Ok((true, false)) => {}
            Ok((true, true)) => {
                return Ok(refuse(
                    self,
                    "[OVERQUOTA] The account's quota is used up",
                    false,
                ))
            }
            Ok((false, _)) => return Ok(refuse(self, "[TRYCREATE] No such mailbox", false)),
            Err(e) => return Ok(refuse(self, &format!("[SERVERBUG] {e}"), false)),
        }
        if sync {
            self.conn.send(b"+ Ready for literal data\r\n");
        }
        let saved = self.conn.read_timeout;
        self.conn.read_timeout = self.config.limits.data_timeout();
        let mut spool = SpoolWriter::new(self.shared.store.spool_dir());
        let mut left = length;
        while left > 0 {
            if !self.conn.has_buffered_input() && self.conn.fill().await? == 0 {
                return Ok(Some(End::Closed));
            }
            let buffered = self.conn.buffered();
            let take = (buffered.len() as u64).min(left) as usize;
            spool.write(&buffered[..take])?;
            self.conn.consume(take);
            left -= take as u64;
        }
        self.conn.read_timeout = saved;
        // The rest of the command line must be empty (no MULTIAPPEND).
        match self.conn.read_line(MAX_IMAP_LINE).await? {
            Line::Complete(rest) if trim_crlf(&rest).iter().all(|&b| b == b' ') => {}
            Line::Closed => return Ok(Some(End::Closed)),
            _ => {
                let stop = self.bad(Some(&tag), "Unexpected data after the APPEND literal");
                return Ok(stop.then_some(End::TooManyErrors));
            }
        }
        let mut message = Incoming::new(Vec::new(), spool.finish(), date.unwrap_or_else(unix_now));
        let account = self.account();
        let result = self
            .blocking(move |s| s.append(&account, &name, &mut message, system, &keywords))
            .await?;
        let reply = match result {
            Ok((validity, uid)) => {
                self.shared.committer.notify();
                self.finish(
                    &tag,
                    &format!("OK [APPENDUID {validity} {uid}] APPEND completed"),
                    true,
                )
                .await?
            }
            Err(e) => Reply::No(store_error_text(&e)),
        };
        Ok(match reply {
            Reply::No(text) => self.no(&tag, &text).then_some(End::TooManyErrors),
            _ => None,
        })
    }

    async fn idle(&mut self, tag: &str) -> io::Result<Reply> {
        self.sync(true).await?;
        self.conn.send(b"+ idling\r\n");
        self.conn.flush().await?;
        let mut shutdown = self.shared.shutdown.clone();
        enum Event {
            Line(io::Result<Line>),
            Changed,
            Shutdown,
        }
        loop {
            let event = tokio::select! {
                line = self.conn.read_line(MAX_IMAP_LINE) => Event::Line(line),
                _ = self.changes.changed() => Event::Changed,
                _ = shutdown.wait_for(|stop| *stop) => Event::Shutdown,
            };
            match event {
                Event::Line(line) => match line? {
                    Line::Complete(l) if trim_crlf(&l).eq_ignore_ascii_case(b"DONE") => {
                        return self.finish(tag, "OK IDLE terminated", true).await;
                    }
                    Line::Closed => return Ok(Reply::End(End::Closed)),
                    _ => return Ok(Reply::Bad("Expected DONE".into())),
                },
                Event::Changed => {
                    // Mark it unseen again so sync() reads the mailbox.
                    self.changes.mark_changed();
                    self.sync(true).await?;
                    self.conn.flush().await?;
                }
                Event::Shutdown => {
                    self.conn.send(b"* BYE Server shutting down\r\n");
                    return Ok(Reply::End(End::Shutdown));
                }
            }
        }
    }

    async fn close(&mut self, tag: &str, expunge: bool) -> io::Result<Reply> {
        let Some(sel) = self.selected.take() else {
            return Ok(Reply::Bad("No mailbox selected".into()));
        };
        if expunge && !sel.read_only {
            let uids: Vec<u32> = sel
                .messages
                .iter()
                .filter(|m| m.record.flags & flags::DELETED != 0)
                .map(|m| m.uid)
                .collect();
            if !uids.is_empty() {
                let id = sel.id;
                let account = self.account();
                if let Err(e) = self
                    .blocking(move |s| s.expunge(&account, id, &uids))
                    .await?
                {
                    return Ok(Reply::No(store_error_text(&e)));
                }
                self.shared.committer.notify();
            }
        }
        let verb = if expunge { "CLOSE" } else { "UNSELECT" };
        self.tagged(tag, &format!("OK {verb} completed"));
        Ok(Reply::Done)
    }

    fn writable(&self) -> Result<(), Reply> {
        match &self.selected {
            Some(s) if s.read_only => Err(Reply::No("[READ-ONLY] Mailbox is read-only".into())),
            _ => Ok(()),
        }
    }

    async fn expunge(&mut self, tag: &str, args: &[Value], uid: bool) -> io::Result<Reply> {
        if let Err(reply) = self.writable() {
            return Ok(reply);
        }
        let set = match (uid, args) {
            (false, []) => None,
            (true, [set]) => match self.uid_ranges(set) {
                Ok(s) => Some(s),
                Err(e) => return Ok(Reply::Bad(e)),
            },
            _ => return Ok(Reply::Bad("Invalid EXPUNGE arguments".into())),
        };
        self.sync(true).await?;
        let Some(sel) = &self.selected else {
            return Ok(Reply::Bad("No mailbox selected".into()));
        };
        let all: Vec<u32> = sel.messages.iter().map(|m| m.uid).collect();
        let in_range: Vec<usize> = match &set {
            Some(set) => resolve(set, &all, true),
            None => (0..all.len()).collect(),
        };
        let uids: Vec<u32> = in_range
            .into_iter()
            .filter(|&i| sel.messages[i].record.flags & flags::DELETED != 0)
            .map(|i| sel.messages[i].uid)
            .collect();
        let id = sel.id;
        if !uids.is_empty() {
            let removed = uids.clone();
            let account = self.account();
            if let Err(e) = self
                .blocking(move |s| s.expunge(&account, id, &removed))
                .await?
            {
                return Ok(Reply::No(store_error_text(&e)));
            }
            self.shared.committer.notify();
            self.report_expunged(&uids);
        }
        self.finish(tag, "OK EXPUNGE completed", true).await
    }

    /// Reports the given UIDs as expunged and drops them from the snapshot.
    fn report_expunged(&mut self, uids: &[u32]) {
        let qresync = self.qresync;
        if let Some(sel) = self.selected.as_mut() {
            let out = expunge_responses(sel, uids, qresync);
            self.conn.send(out.as_bytes());
        }
    }

    /// The UID ranges of a UID-command set argument (`$` included).
    fn uid_ranges(&self, value: &Value) -> Result<Vec<Range>, String> {
        match (value.atom(), &self.selected) {
            (Some("$"), Some(sel)) => Ok(ranges_of(&sel.saved)),
            _ => value.text().and_then(|t| sequence_set(&t)),
        }
    }

    /// Resolves a sequence set argument to snapshot indices. `$` (SEARCHRES) is the
    /// saved result, whether the command is a UID command or not.
    fn indices(&self, value: &Value, uid: bool) -> Result<Vec<usize>, Reply> {
        let Some(sel) = &self.selected else {
            return Err(Reply::Bad("No mailbox selected".into()));
        };
        if value.atom() == Some("$") {
            let uids: Vec<u32> = sel.messages.iter().map(|m| m.uid).collect();
            let set: Vec<Range> = ranges_of(&sel.saved);
            return Ok(resolve(&set, &uids, true));
        }
        let set = value
            .text()
            .and_then(|t| sequence_set(&t))
            .map_err(Reply::Bad)?;
        if !uid {
            let count = sel.messages.len() as u32;
            if set
                .iter()
                .any(|&(a, b)| (a != u32::MAX && a > count) || (b != u32::MAX && b > count))
            {
                return Err(Reply::Bad("Invalid message sequence number".into()));
            }
        }
        let uids: Vec<u32> = sel.messages.iter().map(|m| m.uid).collect();
        Ok(resolve(&set, &uids, uid))
    }

    async fn fetch(&mut self, tag: &str, args: &[Value], uid: bool) -> io::Result<Reply> {
        let (set, items, modifiers) = match args {
            [set, items] => (set, items, None),
            [set, items, Value::List(modifiers)] => (set, items, Some(modifiers)),
            _ => return Ok(Reply::Bad("FETCH needs a sequence set and items".into())),
        };
        let mut items = match fetch_items(items) {
            Ok(i) => i,
            Err(e) => return Ok(Reply::Bad(e)),
        };
        let (changed_since, vanished) = match modifiers.map(|m| fetch_modifiers(m)) {
            None => (None, false),
            Some(Ok(m)) => m,
            Some(Err(e)) => return Ok(Reply::Bad(e)),
        };
        if vanished && !(uid && self.qresync) {
            return Ok(Reply::Bad(
                "VANISHED needs UID FETCH and ENABLE QRESYNC".into(),
            ));
        }
        if changed_since.is_some() || items.contains(&FetchItem::ModSeq) {
            self.condstore = true;
        }
        if uid && !items.contains(&FetchItem::Uid) {
            items.insert(0, FetchItem::Uid);
        }
        if self.condstore
            && !items.contains(&FetchItem::ModSeq)
            && (changed_since.is_some() || items.contains(&FetchItem::Flags))
        {
            items.push(FetchItem::ModSeq);
        }
        self.sync(uid).await?;
        let indices = match self.indices(set, uid) {
            Ok(i) => i,
            Err(reply) => return Ok(reply),
        };
        if vanished {
            // RFC 7162 §3.2.6: UIDs of the set that are gone, before the FETCH responses.
            if let (Some(sel), Ok(ranges)) = (&self.selected, self.uid_ranges(set)) {
                let present: Vec<u32> = sel.messages.iter().map(|m| m.uid).collect();
                let gone = missing_uids(&ranges, &present, sel.uid_next.saturating_sub(1));
                if !gone.is_empty() {
                    self.untagged(&format!("VANISHED (EARLIER) {gone}"));
                }
            }
        }
        let read_only = self.selected.as_ref().is_some_and(|s| s.read_only);
        let sets_seen = !read_only
            && items.iter().any(|i| {
                matches!(
                    i,
                    FetchItem::Rfc822
                        | FetchItem::Rfc822Text
                        | FetchItem::Body { peek: false, .. }
                        | FetchItem::Binary { peek: false, .. }
                )
            });
        if sets_seen {
            self.mark_seen(&indices).await?;
        }
        for i in indices {
            let Some(sel) = &self.selected else { break };
            let Some(m) = sel.messages.get(i) else { break };
            if m.gone || changed_since.is_some_and(|n| m.record.modseq <= n) {
                continue;
            }
            let (msg_uid, record) = (m.uid, m.record.clone());
            if !self
                .fetch_one(i + 1, msg_uid, &record, &items, sets_seen)
                .await?
            {
                return Ok(Reply::No(format!(
                    "[UNKNOWN-CTE] Cannot decode a part of message UID {msg_uid} for BINARY"
                )));
            }
        }
        self.finish(tag, "OK FETCH completed", uid).await
    }

    /// Sets \Seen on the messages that lack it (FETCH of a body without PEEK).
    async fn mark_seen(&mut self, indices: &[usize]) -> io::Result<()> {
        let Some(sel) = &self.selected else {
            return Ok(());
        };
        let uids: Vec<u32> = indices
            .iter()
            .filter_map(|&i| sel.messages.get(i))
            .filter(|m| !m.gone && m.record.flags & flags::SEEN == 0)
            .map(|m| m.uid)
            .collect();
        if uids.is_empty() {
            return Ok(());
        }
        let (account, name) = (self.account(), sel.name.clone());
        let result = self
            .blocking(move |s| s.store_flags(&account, &name, &uids, FlagOp::Add, flags::SEEN, &[]))
            .await?;
        if let Ok(updated) = result {
            self.apply_records(&updated);
            self.shared.committer.notify();
            // Our own change: do not report it again as someone else's.
            self.changes.borrow_and_update();
        }
        Ok(())
    }

    fn apply_records(&mut self, updated: &[(u32, MessageRecord)]) {
        if let Some(sel) = self.selected.as_mut() {
            for (uid, record) in updated {
                if let Ok(pos) = sel.messages.binary_search_by_key(uid, |m| m.uid) {
                    sel.messages[pos].record = record.clone();
                }
            }
        }
    }

    async fn fetch_one(
        &mut self,
        seq: usize,
        uid: u32,
        record: &MessageRecord,
        items: &[FetchItem],
        seen_changed: bool,
    ) -> io::Result<bool> {
        let needs_meta = items
            .iter()
            .any(|i| matches!(i, FetchItem::Envelope | FetchItem::Structure(_)));
        let meta = if needs_meta {
            let r = record.clone();
            match self
                .blocking(move |s| {
                    if let Some(meta) = s.message_meta(r.blob)? {
                        return Ok(meta);
                    }
                    // Large or pre-schema-2 message: compute once, keep it.
                    let meta = crate::imap::structure::meta(&s.read_message(&r)?);
                    s.put_message_meta(r.blob, &meta)?;
                    Ok(meta)
                })
                .await?
            {
                Ok(meta) => Some(meta),
                Err(_) => return Ok(true), // expunged meanwhile
            }
        } else {
            None
        };
        let needs_bytes = items.iter().any(|i| {
            matches!(
                i,
                FetchItem::Rfc822Header
                    | FetchItem::Rfc822Text
                    | FetchItem::Body {
                        section: Section::Header
                            | Section::Text
                            | Section::Fields(..)
                            | Section::Part(..),
                        ..
                    }
                    | FetchItem::Body {
                        partial: Some(_),
                        ..
                    }
                    | FetchItem::Binary { .. }
                    | FetchItem::BinarySize(_)
            )
        });
        let content: Option<Vec<u8>> = if needs_bytes {
            let r = record.clone();
            match self.blocking(move |s| s.read_message(&r)).await? {
                Ok(bytes) => Some(bytes),
                Err(_) => return Ok(true), // expunged meanwhile
            }
        } else {
            None
        };
        // Decode BINARY parts first: an unknown encoding fails the FETCH (RFC 3516 §4.1).
        let mut decoded: Vec<Vec<u8>> = Vec::new();
        for item in items {
            if let FetchItem::Binary { path, .. } | FetchItem::BinarySize(path) = item {
                match binary_section(content.as_deref().unwrap_or_default(), path) {
                    Ok(bytes) => decoded.push(bytes),
                    Err(BinaryError::UnknownEncoding) => return Ok(false),
                }
            }
        }
        let mut decoded = decoded.into_iter();
        self.conn.send(format!("* {seq} FETCH (").as_bytes());
        let mut first = true;
        let mut flags_sent = false;
        for item in items {
            if !first {
                self.conn.send(b" ");
            }
            first = false;
            match item {
                FetchItem::Flags => {
                    flags_sent = true;
                    let f = flag_list(record.flags, &record.keywords, false);
                    self.conn.send(format!("FLAGS {f}").as_bytes());
                }
                FetchItem::Uid => self.conn.send(format!("UID {uid}").as_bytes()),
                FetchItem::Envelope => {
                    let envelope = meta.as_ref().map_or("NIL", |m| m.envelope.as_str());
                    self.conn.send(format!("ENVELOPE {envelope}").as_bytes());
                }
                FetchItem::Structure(extended) => {
                    let (label, body) = match (&meta, extended) {
                        (Some(m), true) => ("BODYSTRUCTURE", m.bodystructure.as_str()),
                        (Some(m), false) => ("BODY", m.body.as_str()),
                        (None, _) => ("BODY", "NIL"),
                    };
                    self.conn.send(format!("{label} {body}").as_bytes());
                }
                FetchItem::InternalDate => {
                    let d = format_date_time(record.internal_date);
                    self.conn.send(format!("INTERNALDATE \"{d}\"").as_bytes());
                }
                FetchItem::Size => self
                    .conn
                    .send(format!("RFC822.SIZE {}", record.size).as_bytes()),
                FetchItem::ModSeq => self
                    .conn
                    .send(format!("MODSEQ ({})", record.modseq).as_bytes()),
                FetchItem::Rfc822 => {
                    self.conn
                        .send(format!("RFC822 {{{}}}\r\n", record.size).as_bytes());
                    self.stream_message(record).await?;
                }
                FetchItem::Body {
                    section: Section::Full,
                    partial: None,
                    ..
                } => {
                    self.conn
                        .send(format!("BODY[] {{{}}}\r\n", record.size).as_bytes());
                    self.stream_message(record).await?;
                }
                FetchItem::Rfc822Header | FetchItem::Rfc822Text => {
                    let (label, section) = if *item == FetchItem::Rfc822Header {
                        ("RFC822.HEADER", Section::Header)
                    } else {
                        ("RFC822.TEXT", Section::Text)
                    };
                    let bytes = section_bytes(content.as_deref().unwrap_or_default(), &section);
                    self.send_literal(label, &bytes);
                }
                FetchItem::Body {
                    section,
                    partial: range,
                    ..
                } => {
                    let bytes = section_bytes(content.as_deref().unwrap_or_default(), section);
                    let piece = partial(&bytes, *range);
                    let name = section.name();
                    let origin = range
                        .map(|(start, _)| format!("<{start}>"))
                        .unwrap_or_default();
                    self.send_literal(&format!("BODY[{name}]{origin}"), piece);
                }
                FetchItem::Binary {
                    path,
                    partial: range,
                    ..
                } => {
                    let bytes = decoded.next().unwrap_or_default();
                    let piece = partial(&bytes, *range);
                    let origin = range
                        .map(|(start, _)| format!("<{start}>"))
                        .unwrap_or_default();
                    // literal8 (`~{n}`) when the content holds NUL (RFC 3516 §4.2).
                    let tilde = if piece.contains(&0) { "~" } else { "" };
                    self.conn.send(
                        format!(
                            "BINARY[{}]{origin} {tilde}{{{}}}\r\n",
                            part_path(path),
                            piece.len()
                        )
                        .as_bytes(),
                    );
                    self.conn.send(piece);
                }
                FetchItem::BinarySize(path) => {
                    let size = decoded.next().map_or(0, |b| b.len());
                    self.conn
                        .send(format!("BINARY.SIZE[{}] {size}", part_path(path)).as_bytes());
                }
            }
        }
        if seen_changed && !flags_sent {
            let f = flag_list(record.flags, &record.keywords, false);
            self.conn.send(format!(" FLAGS {f}").as_bytes());
        }
        self.conn.send(b")\r\n");
        Ok(true)
    }

    fn send_literal(&mut self, label: &str, bytes: &[u8]) {
        self.conn
            .send(format!("{label} {{{}}}\r\n", bytes.len()).as_bytes());
        self.conn.send(bytes);
    }

    /// Streams a stored message chunk by chunk (the literal header is already queued).
    async fn stream_message(&mut self, record: &MessageRecord) -> io::Result<()> {
        let mut sent = 0u64;
        for index in 0..chunk_count(record.size) {
            let blob = record.blob;
            let chunk: Vec<u8> = self
                .blocking(move |s| s.read_chunk(blob, index))
                .await?
                .unwrap_or_default();
            let take = (chunk.len() as u64).min(record.size - sent) as usize;
            self.conn.send(&chunk[..take]);
            sent += take as u64;
            self.conn.flush().await?;
        }
        // The literal length was announced: pad if the message vanished meanwhile.
        if sent < record.size {
            self.conn.send(&vec![b' '; (record.size - sent) as usize]);
        }
        Ok(())
    }

    async fn store_command(&mut self, tag: &str, args: &[Value], uid: bool) -> io::Result<Reply> {
        if let Err(reply) = self.writable() {
            return Ok(reply);
        }
        let (set, modifiers, op, flag_value) = match args {
            [set, op, flag_value] => (set, None, op, flag_value),
            [set, Value::List(m), op, flag_value] => (set, Some(m), op, flag_value),
            _ => {
                return Ok(Reply::Bad(
                    "STORE needs a sequence set, an operation and flags".into(),
                ))
            }
        };
        let unchanged_since = match modifiers.map(|m| modseq_modifier(m, "UNCHANGEDSINCE")) {
            None => None,
            Some(Ok(n)) => {
                self.condstore = true;
                Some(n)
            }
            Some(Err(e)) => return Ok(Reply::Bad(e)),
        };
        let Some(op) = op.atom().map(str::to_ascii_uppercase) else {
            return Ok(Reply::Bad("Invalid STORE operation".into()));
        };
        let (op_name, silent) = match op.strip_suffix(".SILENT") {
            Some(o) => (o.to_string(), true),
            None => (op.clone(), false),
        };
        let op = match op_name.as_str() {
            "FLAGS" => FlagOp::Replace,
            "+FLAGS" => FlagOp::Add,
            "-FLAGS" => FlagOp::Remove,
            _ => return Ok(Reply::Bad(format!("Invalid STORE operation {op_name}"))),
        };
        let (system, keywords) = match parse_flags(flag_value) {
            Ok(f) => f,
            Err(e) => return Ok(Reply::Bad(e)),
        };
        self.sync(uid).await?;
        let indices = match self.indices(set, uid) {
            Ok(i) => i,
            Err(reply) => return Ok(reply),
        };
        let Some(sel) = &self.selected else {
            return Ok(Reply::Bad("No mailbox selected".into()));
        };
        let uids: Vec<u32> = indices
            .iter()
            .filter_map(|&i| sel.messages.get(i))
            .filter(|m| !m.gone)
            .map(|m| m.uid)
            .collect();
        let (account, name) = (self.account(), sel.name.clone());
        let result = self
            .blocking(move |s| {
                s.store_flags_conditional(
                    &account,
                    &name,
                    &uids,
                    op,
                    system,
                    &keywords,
                    unchanged_since,
                )
            })
            .await?;
        let (updated, modified) = match result {
            Ok(u) => u,
            Err(e) => return Ok(Reply::No(store_error_text(&e))),
        };
        self.apply_records(&updated);
        self.shared.committer.notify();
        self.changes.borrow_and_update();
        if !silent {
            let mut out = String::new();
            if let Some(sel) = &self.selected {
                for (u, record) in &updated {
                    if let Ok(pos) = sel.messages.binary_search_by_key(u, |m| m.uid) {
                        let f = flag_list(record.flags, &record.keywords, false);
                        let modseq = if self.condstore {
                            format!(" MODSEQ ({})", record.modseq)
                        } else {
                            String::new()
                        };
                        if uid {
                            out.push_str(&format!(
                                "* {} FETCH (UID {u} FLAGS {f}{modseq})\r\n",
                                pos + 1
                            ));
                        } else {
                            out.push_str(&format!("* {} FETCH (FLAGS {f}{modseq})\r\n", pos + 1));
                        }
                    }
                }
            }
            self.conn.send(out.as_bytes());
        }
        if modified.is_empty() {
            self.finish(tag, "OK STORE completed", uid).await
        } else {
            // [MODIFIED] lists UIDs for UID STORE, sequence numbers otherwise.
            let list: Vec<String> = match &self.selected {
                Some(sel) => modified
                    .iter()
                    .filter_map(|u| {
                        let pos = sel.messages.binary_search_by_key(u, |m| m.uid).ok()?;
                        Some(if uid {
                            u.to_string()
                        } else {
                            (pos + 1).to_string()
                        })
                    })
                    .collect(),
                None => Vec::new(),
            };
            let text = format!("OK [MODIFIED {}] Conditional STORE failed", list.join(","));
            self.finish(tag, &text, uid).await
        }
    }

    async fn copy(
        &mut self,
        tag: &str,
        args: &[Value],
        uid: bool,
        remove: bool,
    ) -> io::Result<Reply> {
        if remove {
            if let Err(reply) = self.writable() {
                return Ok(reply);
            }
        }
        let [set, target] = args else {
            return Ok(Reply::Bad("COPY needs a sequence set and a mailbox".into()));
        };
        let target = match mailbox_name(target, self.utf8) {
            Ok(t) => t,
            Err(e) => return Ok(Reply::Bad(e)),
        };
        self.sync(true).await?;
        let indices = match self.indices(set, uid) {
            Ok(i) => i,
            Err(reply) => return Ok(reply),
        };
        let Some(sel) = &self.selected else {
            return Ok(Reply::Bad("No mailbox selected".into()));
        };
        let uids: Vec<u32> = indices.iter().map(|&i| sel.messages[i].uid).collect();
        let adding: u64 = indices.iter().map(|&i| sel.messages[i].record.size).sum();
        let (account, name) = (self.account(), sel.name.clone());
        let result = self
            .blocking(move |s| {
                if s.mailbox(&account, &target)?.is_none() {
                    return Ok(None);
                }
                // A move does not grow the account; a copy does.
                if !remove && s.over_quota(&account, adding)? {
                    return Err(StoreError::OverQuota);
                }
                s.copy_messages(&account, &name, &uids, &target, remove)
                    .map(Some)
            })
            .await?;
        let copied = match result {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(Reply::No("[TRYCREATE] No such mailbox".into())),
            Err(e) => return Ok(Reply::No(store_error_text(&e))),
        };
        self.shared.committer.notify();
        let code = if copied.uids.is_empty() {
            String::new()
        } else {
            let from: Vec<String> = copied.uids.iter().map(|(a, _)| a.to_string()).collect();
            let to: Vec<String> = copied.uids.iter().map(|(_, b)| b.to_string()).collect();
            format!(
                "[COPYUID {} {} {}] ",
                copied.uid_validity,
                from.join(","),
                to.join(",")
            )
        };
        if remove {
            if !code.is_empty() {
                self.untagged(&format!("OK {code}Moved"));
            }
            let moved: Vec<u32> = copied.uids.iter().map(|(a, _)| *a).collect();
            self.report_expunged(&moved);
            self.finish(tag, "OK MOVE completed", true).await
        } else {
            self.finish(tag, &format!("OK {code}COPY completed"), true)
                .await
        }
    }

    async fn search(&mut self, tag: &str, args: &[Value], uid: bool) -> io::Result<Reply> {
        let (options, args) = match search_return(args) {
            Ok(x) => x,
            Err(e) => return Ok(Reply::Bad(e)),
        };
        // IMAP4rev2 answers every SEARCH with ESEARCH (RFC 9051 §6.4.4).
        let options = options.or(self.rev2.then_some(SearchReturn {
            all: true,
            ..SearchReturn::default()
        }));
        let saved = self
            .selected
            .as_ref()
            .map(|s| s.saved.clone())
            .unwrap_or_default();
        let key = match search_keys(args) {
            Ok(k) => k.with_saved(&saved),
            Err(e) => return Ok(Reply::Bad(e)),
        };
        let uses_modseq = key.uses_modseq();
        if uses_modseq {
            self.condstore = true;
        }
        self.sync(uid).await?;
        let Some(sel) = &self.selected else {
            return Ok(Reply::Bad("No mailbox selected".into()));
        };
        let snapshot: Vec<(u32, MessageRecord, bool)> = sel
            .messages
            .iter()
            .map(|m| (m.uid, m.record.clone(), m.gone))
            .collect();
        let found = self
            .blocking(move |s| {
                let max_seq = snapshot.len() as u32;
                let max_uid = snapshot.last().map_or(0, |m| m.0);
                let mut out = Vec::new();
                let mut highest = 0u64;
                for (i, (u, record, gone)) in snapshot.iter().enumerate() {
                    if *gone {
                        continue;
                    }
                    let candidate = Candidate {
                        seq: i as u32 + 1,
                        max_seq,
                        uid: *u,
                        max_uid,
                        record,
                    };
                    let mut cache: Option<Rc<Vec<u8>>> = None;
                    let mut content = || {
                        if cache.is_none() {
                            cache = s.read_message(record).ok().map(Rc::new);
                        }
                        cache.clone()
                    };
                    if matches(&key, &candidate, &mut content) {
                        out.push((i as u32 + 1, *u));
                        highest = highest.max(record.modseq);
                    }
                }
                Ok((out, highest))
            })
            .await?;
        let (found, highest) = match found {
            Ok(f) => f,
            Err(e) => return Ok(Reply::No(store_error_text(&e))),
        };
        let numbers: Vec<u32> = found
            .iter()
            .map(|&(seq, u)| if uid { u } else { seq })
            .collect();
        let modseq = (!found.is_empty() && uses_modseq).then_some(highest);
        let Some(options) = options else {
            let mut line = String::from("* SEARCH");
            for n in &numbers {
                line.push_str(&format!(" {n}"));
            }
            if let Some(m) = modseq {
                line.push_str(&format!(" (MODSEQ {m})"));
            }
            line.push_str("\r\n");
            self.conn.send(line.as_bytes());
            return self.finish(tag, "OK SEARCH completed", uid).await;
        };
        if options.save {
            // RFC 5182 §2.4: with MIN/MAX but neither ALL nor COUNT, only those are saved.
            let uids: Vec<u32> = found.iter().map(|&(_, u)| u).collect();
            let saved = if (options.min || options.max) && !(options.all || options.count) {
                let mut ends = Vec::new();
                if options.min {
                    ends.extend(uids.first());
                }
                if options.max {
                    ends.extend(uids.last());
                }
                ends.dedup();
                ends
            } else {
                uids
            };
            if let Some(sel) = self.selected.as_mut() {
                sel.saved = saved;
            }
        }
        let only_save =
            options.save && !(options.min || options.max || options.all || options.count);
        if !only_save {
            let line = esearch_response(tag, uid, &options, &numbers, modseq);
            self.untagged(&line);
        }
        self.finish(tag, "OK SEARCH completed", uid).await
    }
}

/// What a command handler decided.
enum Reply {
    /// The tagged reply was sent.
    Done,
    End(End),
    Bad(String),
    No(String),
}

/// Drops `uids` from the snapshot and returns what tells the client: EXPUNGE per message
/// (highest sequence number first, so each number is still valid when read), or one
/// VANISHED once QRESYNC is enabled (RFC 7162 §3.2.10).
fn expunge_responses(sel: &mut Selected, uids: &[u32], qresync: bool) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    let mut out = String::new();
    let mut vanished = Vec::new();
    for i in (0..sel.messages.len()).rev() {
        if sorted.binary_search(&sel.messages[i].uid).is_ok() {
            if qresync {
                vanished.push(sel.messages[i].uid);
            } else {
                out.push_str(&format!("* {} EXPUNGE\r\n", i + 1));
            }
            sel.messages.remove(i);
        }
    }
    if !vanished.is_empty() {
        vanished.reverse();
        out.push_str(&format!("* VANISHED {}\r\n", format_set(&vanished)));
    }
    out
}

fn io_end(e: io::Error) -> End {
    if e.kind() == io::ErrorKind::TimedOut {
        End::Timeout
    } else {
        End::Error(e)
    }
}

/// `(uidvalidity modseq [known-uids [seq-match-data]])` of SELECT (QRESYNC ...). The
/// sequence match data only narrows what the server must report; it is not needed here.
fn qresync_parameter(value: &Value) -> Result<(u32, u64, Option<Vec<Range>>), String> {
    let bad = || "Invalid QRESYNC parameters".to_string();
    let Value::List(items) = value else {
        return Err(bad());
    };
    let number = |v: Option<&Value>| v.and_then(Value::atom).and_then(|a| a.parse::<u64>().ok());
    let validity = number(items.first())
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n > 0)
        .ok_or_else(bad)?;
    let modseq = number(items.get(1)).ok_or_else(bad)?;
    let known = match items.get(2) {
        Some(Value::Atom(set)) => Some(sequence_set(set)?),
        Some(Value::List(_)) | None => None,
        Some(Value::Str(_)) => return Err(bad()),
    };
    Ok((validity, modseq, known))
}

/// UIDs in `set` (up to `max`) that are not in `present` (sorted), as a compact set.
/// Works on ranges, so `1:*` over a mailbox with large UIDs costs nothing extra.
fn missing_uids(set: &[Range], present: &[u32], max: u32) -> String {
    let mut ranges: Vec<Range> = set
        .iter()
        .map(|&(a, b)| {
            let b = if b == u32::MAX { max } else { b.min(max) };
            let a = if a == u32::MAX { max } else { a };
            (a.min(b), a.max(b))
        })
        .filter(|&(a, _)| a >= 1 && a <= max)
        .collect();
    ranges.sort_unstable();
    let mut out: Vec<String> = Vec::new();
    let mut covered = 0u32; // everything up to here is done (ranges may overlap)
    for (a, b) in ranges {
        let mut next = a.max(covered.saturating_add(1));
        if next > b {
            continue;
        }
        let start = present.partition_point(|&u| u < next);
        for &u in present[start..].iter().take_while(|&&u| u <= b) {
            if u > next {
                out.push(range_text(next, u - 1));
            }
            next = u.saturating_add(1);
        }
        if next <= b {
            out.push(range_text(next, b));
        }
        covered = covered.max(b);
    }
    out.join(",")
}

fn range_text(a: u32, b: u32) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}:{b}")
    }
}

/// `ESEARCH (TAG "a") UID MIN 1 MAX 9 COUNT 3 ALL 1,4,9` (RFC 4731 §3.1); results that
/// do not exist for an empty match (MIN, MAX, ALL) are left out.
fn esearch_response(
    tag: &str,
    uid: bool,
    options: &SearchReturn,
    numbers: &[u32],
    modseq: Option<u64>,
) -> String {
    let mut line = format!("ESEARCH (TAG {})", quote(tag));
    if uid {
        line.push_str(" UID");
    }
    if let (true, Some(n)) = (options.min, numbers.first()) {
        line.push_str(&format!(" MIN {n}"));
    }
    if let (true, Some(n)) = (options.max, numbers.last()) {
        line.push_str(&format!(" MAX {n}"));
    }
    if options.count {
        line.push_str(&format!(" COUNT {}", numbers.len()));
    }
    if options.all && !numbers.is_empty() {
        line.push_str(&format!(" ALL {}", format_set(numbers)));
    }
    if let Some(m) = modseq {
        line.push_str(&format!(" MODSEQ {m}"));
    }
    line
}

/// `1.2.3` of a BINARY section.
fn part_path(path: &[u32]) -> String {
    let parts: Vec<String> = path.iter().map(u32::to_string).collect();
    parts.join(".")
}

/// FETCH modifiers: `(CHANGEDSINCE n)` or `(CHANGEDSINCE n VANISHED)`.
fn fetch_modifiers(modifiers: &[Value]) -> Result<(Option<u64>, bool), String> {
    match modifiers {
        [since @ .., Value::Atom(v)] if v.eq_ignore_ascii_case("VANISHED") => {
            Ok((Some(modseq_modifier(since, "CHANGEDSINCE")?), true))
        }
        _ => Ok((Some(modseq_modifier(modifiers, "CHANGEDSINCE")?), false)),
    }
}

/// The number of a `(NAME n)` FETCH/STORE modifier list.
fn modseq_modifier(modifiers: &[Value], name: &str) -> Result<u64, String> {
    match modifiers {
        [Value::Atom(a), Value::Atom(n)] if a.eq_ignore_ascii_case(name) => n
            .parse::<u64>()
            .map_err(|_| format!("Invalid {name} value")),
        _ => Err(format!("Unknown modifier (only {name} is supported)")),
    }
}

fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The tag of a (partial) command, if it has a plausible one.
fn tag_of(command: &[u8]) -> Option<String> {
    let end = command.iter().position(|&b| b == b' ')?;
    let tag = std::str::from_utf8(&command[..end]).ok()?;
    (!tag.is_empty()
        && tag
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\+".contains(&b)))
    .then(|| tag.to_string())
}

/// Whether a literal announced after `head` is APPEND's message (the mailbox name is
/// already complete).
fn is_append_message(head: &[u8]) -> bool {
    match parse_command(head) {
        Ok(c) => c.name == "APPEND" && !c.args.is_empty(),
        Err(_) => false,
    }
}

/// A mailbox name argument; INBOX is case-insensitive.
fn mailbox_name(value: &Value, utf8: bool) -> Result<String, String> {
    let name = value.text()?;
    let name = if utf8 {
        name
    } else {
        super::mutf7::decode(&name)?
    };
    if name.eq_ignore_ascii_case("INBOX") {
        return Ok("INBOX".into());
    }
    if name.is_empty() {
        return Err("Empty mailbox name".into());
    }
    Ok(name)
}

/// IMAP LIST wildcards: `*` matches anything, `%` anything but the separator.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some((b'%', rest)) => (0..=n.len())
                .take_while(|&i| i == 0 || n[i - 1] != b'/')
                .any(|i| go(rest, &n[i..])),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    // Bound the backtracking: patterns with many wildcards are unusual.
    if pattern.bytes().filter(|b| matches!(b, b'*' | b'%')).count() > 8 {
        return false;
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// What a LIST command asks for.
#[derive(Debug, Default, PartialEq)]
struct ListRequest {
    reference: String,
    patterns: Vec<String>,
    subscribed_only: bool,
    recursive: bool,
    special_use_only: bool,
    /// Add \Subscribed to the attributes (selection or return option SUBSCRIBED).
    show_subscribed: bool,
    /// LIST-STATUS items.
    status: Option<Vec<Value>>,
}

/// Parses `LIST [(selection)] reference (pattern | (patterns)) [RETURN (options)]`.
/// CHILDREN and SPECIAL-USE return options are accepted; their attributes are always sent.
fn list_request(args: &[Value], lsub: bool) -> Result<ListRequest, String> {
    let mut request = ListRequest {
        subscribed_only: lsub,
        ..ListRequest::default()
    };
    let mut args = args;
    if let [Value::List(selection), rest @ ..] = args {
        for option in selection {
            match option.atom().map(str::to_ascii_uppercase).as_deref() {
                Some("SUBSCRIBED") => {
                    request.subscribed_only = true;
                    request.show_subscribed = true;
                }
                Some("RECURSIVEMATCH") => request.recursive = true,
                Some("SPECIAL-USE") => request.special_use_only = true,
                Some("REMOTE") => {}
                _ => return Err("Unknown LIST selection option".into()),
            }
        }
        // RFC 5258 §3.1: RECURSIVEMATCH alone is an error.
        if request.recursive && !request.subscribed_only && !request.special_use_only {
            return Err("RECURSIVEMATCH needs another selection option".into());
        }
        args = rest;
    }
    let (Some(reference), Some(patterns)) = (args.first(), args.get(1)) else {
        return Err("LIST needs a reference and a pattern".into());
    };
    request.reference = reference.text().map_err(|_| "Invalid reference")?;
    request.patterns = match patterns {
        Value::List(list) if !list.is_empty() => list
            .iter()
            .map(Value::text)
            .collect::<Result<_, _>>()
            .map_err(|_| "Invalid mailbox pattern")?,
        Value::List(_) => return Err("Empty pattern list".into()),
        other => vec![other.text().map_err(|_| "Invalid mailbox pattern")?],
    };
    match &args[2..] {
        [] => {}
        [Value::Atom(r), Value::List(options)] if r.eq_ignore_ascii_case("RETURN") => {
            let mut options = options.iter();
            while let Some(option) = options.next() {
                match option.atom().map(str::to_ascii_uppercase).as_deref() {
                    Some("SUBSCRIBED") => request.show_subscribed = true,
                    Some("CHILDREN") | Some("SPECIAL-USE") => {}
                    Some("STATUS") => match options.next() {
                        Some(Value::List(items)) => request.status = Some(items.clone()),
                        _ => return Err("STATUS needs a list of items".into()),
                    },
                    _ => return Err("Unknown LIST return option".into()),
                }
            }
        }
        _ => return Err("Invalid LIST arguments".into()),
    }
    Ok(request)
}

/// Upper-cased STATUS items, or the BAD text for an unknown one.
fn status_items(items: &[Value]) -> Result<Vec<String>, String> {
    items
        .iter()
        .map(|item| {
            let a = item
                .atom()
                .ok_or("Invalid STATUS item")?
                .to_ascii_uppercase();
            match a.as_str() {
                "MESSAGES" | "UIDNEXT" | "UIDVALIDITY" | "UNSEEN" | "SIZE" | "HIGHESTMODSEQ"
                | "RECENT" | "DELETED" | "DELETED-STORAGE" => Ok(a),
                _ => Err(format!("Unknown STATUS item {a}")),
            }
        })
        .collect()
}

/// `MESSAGES 3 UNSEEN 1 ...` for a STATUS response.
fn status_values(items: &[String], mailbox: &Mailbox, messages: &[(u32, MessageRecord)]) -> String {
    let deleted = || {
        messages
            .iter()
            .filter(|(_, r)| r.flags & flags::DELETED != 0)
    };
    let values: Vec<String> = items
        .iter()
        .map(|item| {
            let value = match item.as_str() {
                "MESSAGES" => messages.len() as u64,
                "UIDNEXT" => mailbox.uid_next as u64,
                "UIDVALIDITY" => mailbox.uid_validity as u64,
                "UNSEEN" => messages
                    .iter()
                    .filter(|(_, r)| r.flags & flags::SEEN == 0)
                    .count() as u64,
                "SIZE" => messages.iter().map(|(_, r)| r.size).sum(),
                "HIGHESTMODSEQ" => mailbox.highest_modseq,
                "DELETED" => deleted().count() as u64,
                // RFC 9208 §4.2: in the STORAGE resource's unit, KiB.
                "DELETED-STORAGE" => deleted().map(|(_, r)| r.size).sum::<u64>().div_ceil(1024),
                _ => 0,
            };
            format!("{item} {value}")
        })
        .collect();
    values.join(" ")
}

fn list_attributes(mailbox: &Mailbox, all: &[Mailbox], lsub: bool) -> String {
    let mut attributes = Vec::new();
    let prefix = format!("{}/", mailbox.name);
    if all.iter().any(|m| m.name.starts_with(&prefix)) {
        attributes.push("\\HasChildren");
    } else {
        attributes.push("\\HasNoChildren");
    }
    if !lsub {
        if let Some(special) = mailbox.special_use {
            attributes.push(match special {
                SpecialUse::Sent => "\\Sent",
                SpecialUse::Drafts => "\\Drafts",
                SpecialUse::Trash => "\\Trash",
                SpecialUse::Junk => "\\Junk",
                SpecialUse::Archive => "\\Archive",
            });
        }
    }
    attributes.join(" ")
}

fn store_error_text(e: &StoreError) -> String {
    match e {
        StoreError::NotFound(_) => format!("[NONEXISTENT] {e}"),
        StoreError::Exists(_) => format!("[ALREADYEXISTS] {e}"),
        StoreError::Invalid(_) => format!("[CANNOT] {e}"),
        StoreError::OverQuota | StoreError::Full => {
            format!("[OVERQUOTA] {e}")
        }
        _ => format!("[SERVERBUG] {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", "Work/2026"));
        assert!(!wildcard_match("%", "Work/2026"));
        assert!(wildcard_match("%", "Work"));
        assert!(wildcard_match("Work/%", "Work/2026"));
        assert!(wildcard_match("W*6", "Work/2026"));
        assert!(!wildcard_match("X*", "Work"));
        assert!(!wildcard_match(
            "*a*a*a*a*a*a*a*a*a*b",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        ));
    }

    #[test]
    fn tags_and_append_detection() {
        assert_eq!(tag_of(b"a1 LOGIN x"), Some("a1".into()));
        assert_eq!(tag_of(b"LOGIN"), None);
        assert!(is_append_message(b"a APPEND INBOX (\\Seen) "));
        assert!(!is_append_message(b"a APPEND "));
        assert!(!is_append_message(b"a LOGIN alice "));
    }
}
