//! One IMAP connection: not authenticated → authenticated → selected → logout.
//!
//! This file owns the session itself: the struct, the read-or-shutdown loop, the bounded
//! command reader, the state check and dispatch of typed commands, the snapshot of the
//! selected mailbox and its `sync`, and the reply helpers. The handlers live
//! beside it, one file per command group, each an `impl Session` block:
//! `auth` (CAPABILITY, LOGIN, AUTHENTICATE, STARTTLS, ENABLE, ID, NOOP, LOGOUT),
//! `mailbox` (SELECT/EXAMINE, CREATE, DELETE, RENAME, (UN)SUBSCRIBE, LIST/LSUB,
//! NAMESPACE, STATUS, QUOTA), `append`, `fetch`, `modify` (STORE, COPY/MOVE,
//! EXPUNGE, CLOSE/UNSELECT), `search` and `idle`. Every handler runs in the same
//! order: RFC reference, its already typed arguments, state checks, store calls, replies.
//!
//! Commands are read with bounded lines and bounded literals (see the module doc of
//! [`crate::imap`]); store calls go through [`Store::call`], never holding a transaction
//! across an `.await`. The selected mailbox is a snapshot of (UID, record) pairs that is
//! brought up to date before every tagged reply.

mod append;
mod auth;
mod fetch;
mod flags;
mod idle;
mod mailbox;
mod modify;
mod search;
mod sort;

use super::encode;
use super::message::resolve;
use super::parse::{
    is_append_message, parse_request, ranges_of, tag_of, trailing_literal, trim_crlf, Command,
    Needs, Range, SequenceSet,
};
use crate::config::Config;
use crate::floor::session::{
    autologout_timeouts, login_allowed, read_or_shutdown, End, ErrorBudget,
};
use crate::floor::Shared;
use crate::limits::{MAX_IMAP_COMMAND, MAX_IMAP_LINE};
use crate::net::{Connection, Line};
use crate::store::{MessageRecord, Store, StoreError};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Distinct keywords one mailbox may carry: FLAGS lists them all, and every client keeps
/// them (Cyrus has the same limit).
pub(super) const MAX_KEYWORDS: usize = 128;

/// RFC 3501 §5.4: the autologout timer must be at least 30 minutes.
const MIN_AUTOLOGOUT: Duration = Duration::from_secs(30 * 60);

impl Session {
    /// Counts a failed command; true (after a BYE) when the budget is spent.
    fn count_error(&mut self) -> bool {
        if self.errors.spend() {
            self.conn.send(b"* BYE Too many errors\r\n");
            return true;
        }
        false
    }

    fn login_allowed(&self) -> bool {
        login_allowed(&self.conn, &self.config)
    }

    pub async fn run(&mut self) -> End {
        let greeting = format!(
            "OK [CAPABILITY {}] letterbox IMAP ready",
            self.capabilities()
        );
        self.untagged(&greeting);
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            let read = self.read_command();
            let Some(input) = read_or_shutdown(&mut shutdown, read).await else {
                self.conn.send(b"* BYE Server shutting down\r\n");
                self.conn.close().await;
                return End::Shutdown;
            };
            let end = match input {
                Ok(input) => self
                    .input(input)
                    .await
                    .unwrap_or_else(|e| Some(End::from_io(e))),
                Err(e) => Some(End::from_io(e)),
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
    /// The keywords announced in FLAGS so far (RFC 3501 §7.2.6): each one a client may
    /// see on a message has been announced first.
    keywords: Vec<String>,
    /// The same, lower-cased, for lookups.
    known_keywords: std::collections::HashSet<String>,
    /// The UIDs that are `\Recent` in this session (sorted; empty for IMAP4rev2).
    recent: Vec<u32>,
}

impl Selected {
    fn is_recent(&self, uid: u32) -> bool {
        self.recent.binary_search(&uid).is_ok()
    }
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
    /// A protocol violation answered with BAD; `close` ends the session. `skip`: a
    /// non-synchronising literal of that length is on its way and must be skipped.
    Bad {
        tag: Option<String>,
        text: String,
        close: bool,
        skip: Option<u64>,
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
    errors: ErrorBudget,
    /// CONDSTORE enabled (ENABLE, SELECT (CONDSTORE), or a command using a modseq).
    condstore: bool,
    /// UTF8=ACCEPT enabled: mailbox names are UTF-8 on the wire, not modified UTF-7.
    utf8: bool,
    /// ENABLE IMAP4rev2 (RFC 9051): ESEARCH replies, no \Recent, LIST in SELECT.
    rev2: bool,
    /// ENABLE QRESYNC (RFC 7162): VANISHED instead of EXPUNGE.
    qresync: bool,
    /// The last junk filter learning this session started (see `modify`).
    learning: Option<tokio::task::JoinHandle<()>>,
}

type Flow = io::Result<Option<End>>;

/// What a command handler decided.
enum Reply {
    /// The tagged reply was sent.
    Done,
    End(End),
    Bad(String),
    No(String),
}

impl Session {
    pub fn new(shared: Arc<Shared>, mut conn: Connection) -> Session {
        let config = shared.config();
        autologout_timeouts(&mut conn, &config, MIN_AUTOLOGOUT);
        let changes = shared.committer.subscribe();
        Session {
            errors: ErrorBudget::new(&config),
            shared,
            config,
            conn,
            user: None,
            selected: None,
            changes,
            condstore: false,
            utf8: false,
            rev2: false,
            qresync: false,
            learning: None,
        }
    }

    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    fn account(&self) -> String {
        self.user.clone().unwrap_or_default()
    }

    /// Runs a store call off the async runtime ([`Store::call`]); the outer `io::Result`
    /// is kept so handlers read the same whichever way a call fails.
    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> crate::store::Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = io::Result<crate::store::Result<T>>> + Send + 'static
    {
        let store = self.shared.store.clone();
        async move { Ok(store.call(f).await) }
    }

    /// Runs a write that stores no message bytes in the next shared commit; see
    /// [`Session::write_bytes`].
    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::store::Write) -> crate::store::Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = io::Result<crate::store::Result<T>>> + Send + 'static
    {
        self.write_bytes(0, f)
    }

    /// Runs a write in the next shared commit (see [`crate::store::Committer::write`]):
    /// concurrent sessions' writes share one fsync. `bytes`: the message bytes it stores.
    fn write_bytes<T: Send + 'static>(
        &self,
        bytes: u64,
        f: impl FnOnce(&mut crate::store::Write) -> crate::store::Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = io::Result<crate::store::Result<T>>> + Send + 'static
    {
        let committer = self.shared.committer.clone();
        async move { Ok(committer.write(bytes, f).await) }
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

    /// A tagged NO: an ordinary answer (a missing mailbox, a failed login), not a
    /// protocol error, so it spends nothing (failed logins have their own limits).
    fn no(&mut self, tag: &str, text: &str) -> bool {
        self.tagged(tag, &format!("NO {text}"));
        false
    }

    /// Acts on one input of [`Session::read_command`].
    async fn input(&mut self, input: Input) -> Flow {
        match input {
            Input::Closed => Ok(Some(End::Closed)),
            Input::Bad {
                tag,
                text,
                close,
                skip,
            } => {
                let too_many = self.bad(tag.as_deref(), &text);
                if let Some(length) = skip {
                    if !self.skip_literal(length).await? {
                        self.conn
                            .send(b"* BYE Cannot skip a non-synchronising literal that large\r\n");
                        return Ok(Some(End::Closed));
                    }
                }
                if close {
                    self.conn.send(b"* BYE Protocol error\r\n");
                    Ok(Some(End::Closed))
                } else {
                    Ok(too_many.then_some(End::TooManyErrors))
                }
            }
            Input::Command(bytes) => self.command(&bytes).await,
            Input::Append { head, length, sync } => self.append(&head, length, sync).await,
        }
    }

    /// Reads one command with its literals, bounded. See the module doc.
    async fn read_command(&mut self) -> io::Result<Input> {
        let mut command: Vec<u8> = Vec::new();
        loop {
            let line = match self.conn.read_line(MAX_IMAP_LINE).await? {
                Line::Closed => return Ok(Input::Closed),
                Line::TooLong => {
                    // Answer with the command's tag, from its first line if need be.
                    let head = if command.is_empty() {
                        self.conn.too_long_head().to_vec()
                    } else {
                        command
                    };
                    // A non-synchronising literal it announced is on its way: skip it.
                    let tail = self.conn.finish_too_long().await?;
                    let mut bad = bad_input(&head, "Line too long", false);
                    if let (Some((length, true)), Input::Bad { skip, .. }) =
                        (trailing_literal(&tail), &mut bad)
                    {
                        *skip = Some(length);
                    }
                    return Ok(bad);
                }
                Line::Complete(line) => line,
            };
            let Some((length, nonsync)) = trailing_literal(&line) else {
                command.extend_from_slice(trim_crlf(&line));
                if command.len() > MAX_IMAP_COMMAND {
                    return Ok(bad_input(&command, "Command too long", false));
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
            if nonsync && length > budget {
                // Its bytes are already on the way (LITERAL+): they are skipped.
                let mut bad = bad_input(&head, "[TOOBIG] Literal too large", false);
                if let Input::Bad { skip, .. } = &mut bad {
                    *skip = Some(length);
                }
                return Ok(bad);
            }
            if length > budget {
                return Ok(bad_input(&head, "[TOOBIG] Literal too large", false));
            }
            command.extend_from_slice(body);
            command.extend_from_slice(b"\r\n");
            if !nonsync {
                self.conn.send(b"+ Ready\r\n");
            }
            if !self.read_literal(&mut command, length as usize).await? {
                return Ok(Input::Closed);
            }
        }
    }

    /// Appends `length` bytes of literal data to `command`; false if the client left.
    async fn read_literal(&mut self, command: &mut Vec<u8>, length: usize) -> io::Result<bool> {
        // Part of the command: it shares the command's deadline.
        let deadline = tokio::time::Instant::now() + self.conn.line_timeout;
        let mut left = length;
        while left > 0 {
            if !self.conn.has_buffered_input() && self.conn.fill_by(Some(deadline)).await? == 0 {
                return Ok(false);
            }
            let buffered = self.conn.buffered();
            let take = buffered.len().min(left);
            command.extend_from_slice(&buffered[..take]);
            self.conn.consume(take);
            left -= take;
        }
        Ok(true)
    }

    /// Parses a command, checks the session state it needs, runs it and sends the
    /// tagged BAD or NO a handler asked for.
    async fn command(&mut self, bytes: &[u8]) -> Flow {
        let request = match parse_request(bytes, self.utf8) {
            Ok(r) => r,
            Err((tag, text)) => {
                return Ok(self
                    .bad(tag.as_deref(), &text)
                    .then_some(End::TooManyErrors))
            }
        };
        let tag = request.tag;
        let reply = match (self.refusal(&request.name, request.needs), request.command) {
            (Some(refusal), _) => refusal,
            // An unsupported charset is a NO, not a syntax error (RFC 9051 §6.4.4).
            (None, Err(text)) if text.starts_with("[BADCHARSET") => Reply::No(text),
            (None, Err(text)) => Reply::Bad(text),
            (None, Ok(command)) => self.dispatch(&tag, command).await?,
        };
        Ok(match reply {
            Reply::Done => {
                // A command that worked forgives one earlier mistake.
                self.errors.refund();
                None
            }
            Reply::End(end) => Some(end),
            Reply::Bad(text) => self.bad(Some(&tag), &text).then_some(End::TooManyErrors),
            Reply::No(text) => self.no(&tag, &text).then_some(End::TooManyErrors),
        })
    }

    /// The reply to a command that the session's state does not allow (RFC 9051 §3).
    fn refusal(&self, name: &str, needs: Needs) -> Option<Reply> {
        let authenticated = self.user.is_some();
        match needs {
            Needs::Any => None,
            Needs::NotAuthenticated if authenticated => {
                Some(Reply::Bad("Already authenticated".into()))
            }
            Needs::NotAuthenticated => None,
            _ if !authenticated => Some(Reply::Bad(format!("{name} needs authentication first"))),
            Needs::Authenticated => None,
            Needs::Selected | Needs::Writable => match &self.selected {
                None => Some(Reply::Bad(format!("{name} needs a selected mailbox"))),
                Some(s) if needs == Needs::Writable && s.read_only => {
                    Some(Reply::No("[READ-ONLY] Mailbox is read-only".into()))
                }
                Some(_) => None,
            },
        }
    }

    async fn dispatch(&mut self, tag: &str, command: Command) -> io::Result<Reply> {
        match command {
            Command::Capability => self.capability(tag).await,
            Command::Noop => self.finish(tag, "OK NOOP completed", true).await,
            Command::Check => self.finish(tag, "OK CHECK completed", true).await,
            Command::Logout => Ok(self.logout(tag)),
            Command::Id => self.id(tag).await,
            Command::StartTls => self.starttls(tag).await,
            Command::Login { user, password } => self.login_command(tag, user, password).await,
            Command::Authenticate(mechanism) => self.authenticate(tag, mechanism).await,
            Command::Enable(capabilities) => self.enable(tag, &capabilities).await,
            Command::Select(select) => self.select(tag, select).await,
            Command::Namespace => self.namespace(tag).await,
            Command::List(request) => self.list(tag, request).await,
            Command::Status { mailbox, items } => self.status(tag, mailbox, &items).await,
            Command::Create(mailbox, uses) => self.create(tag, mailbox, uses).await,
            Command::Delete(mailbox) => self.delete(tag, mailbox).await,
            Command::Subscribe(mailbox) => self.subscribe(tag, mailbox, true).await,
            Command::Unsubscribe(mailbox) => self.subscribe(tag, mailbox, false).await,
            Command::Rename { from, to } => self.rename(tag, from, to).await,
            Command::GetQuotaRoot(mailbox) => self.get_quota_root(tag, mailbox).await,
            Command::GetQuota(root) => self.get_quota(tag, root).await,
            Command::SetQuota => Ok(Reply::No(
                "[NOPERM] Quotas are set by the administrator (letterbox user quota)".into(),
            )),
            Command::Idle => self.idle(tag).await,
            Command::Compress(mechanism) => self.compress(tag, &mechanism).await,
            Command::Catenate(catenate) => self.catenate(tag, catenate).await,
            Command::Close => self.close(tag, true).await,
            Command::Unselect => self.close(tag, false).await,
            Command::Expunge(uids) => self.expunge(tag, uids).await,
            Command::Fetch(fetch) => self.fetch(tag, fetch).await,
            Command::Store(store) => self.store_command(tag, store).await,
            Command::Copy(copy) => self.copy(tag, copy).await,
            Command::Search(search) => self.search(tag, search).await,
            Command::Sort(sort) => self.sort(tag, sort).await,
            Command::Thread(thread) => self.thread(tag, thread).await,
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
        self.announce_keywords(fresh.iter().map(|(_, r)| r));
        // New messages become \Recent here if no other session saw them first.
        let (known, read_only) = match &self.selected {
            Some(sel) => (sel.messages.last().map_or(0, |m| m.uid), sel.read_only),
            None => return Ok(()),
        };
        let arrived: Vec<u32> = fresh
            .iter()
            .map(|(u, _)| *u)
            .filter(|&u| u > known)
            .collect();
        let recent = self.recent_among(id, arrived, read_only).await?;
        let (condstore, qresync) = (self.condstore, self.qresync);
        let Some(sel) = self.selected.as_mut() else {
            return Ok(());
        };
        sel.recent.extend(recent.iter().copied());
        let mut out = sel.refresh(fresh, allow_expunge, condstore, qresync);
        if !recent.is_empty() {
            out.push_str(&format!("* {} RECENT\r\n", sel.recent.len()));
        }
        self.conn.send(out.as_bytes());
        Ok(())
    }

    /// The UID ranges of a UID command's set (`$` included).
    fn uid_ranges(&self, set: &SequenceSet) -> Vec<Range> {
        match (set, &self.selected) {
            (SequenceSet::Ranges(ranges), _) => ranges.clone(),
            (SequenceSet::Saved, Some(sel)) => ranges_of(&sel.saved),
            (SequenceSet::Saved, None) => Vec::new(),
        }
    }

    /// Resolves a sequence set to snapshot indices. `$` (SEARCHRES) is the saved result,
    /// whether the command is a UID command or not.
    fn indices(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, Reply> {
        let Some(sel) = &self.selected else {
            return Err(Reply::Bad("No mailbox selected".into()));
        };
        let uids: Vec<u32> = sel.messages.iter().map(|m| m.uid).collect();
        let set = match set {
            SequenceSet::Saved => return Ok(resolve(&ranges_of(&sel.saved), &uids, true)),
            SequenceSet::Ranges(set) => set,
        };
        if !uid {
            let count = sel.messages.len() as u32;
            if set
                .iter()
                .any(|&(a, b)| (a != u32::MAX && a > count) || (b != u32::MAX && b > count))
            {
                return Err(Reply::Bad("Invalid message sequence number".into()));
            }
        }
        Ok(resolve(set, &uids, uid))
    }

    /// Turns CONDSTORE on for the rest of the session (RFC 7162 §3.1). The first enabling
    /// command on a selected mailbox tells the client the mailbox's HIGHESTMODSEQ.
    async fn enable_condstore(&mut self) -> io::Result<()> {
        if self.condstore {
            return Ok(());
        }
        self.condstore = true;
        let Some(name) = self.selected.as_ref().map(|sel| sel.name.clone()) else {
            return Ok(());
        };
        let account = self.account();
        if let Ok(Some(mailbox)) = self.blocking(move |s| s.mailbox(&account, &name)).await? {
            let text = format!("OK [HIGHESTMODSEQ {}] Highest", mailbox.highest_modseq);
            self.untagged(&text);
        }
        Ok(())
    }

    /// Takes changed records (of STORE or \Seen) into the snapshot, announcing new
    /// keywords first.
    fn apply_records(&mut self, updated: &[(u32, MessageRecord)]) {
        self.announce_keywords(updated.iter().map(|(_, r)| r));
        if let Some(sel) = self.selected.as_mut() {
            for (uid, record) in updated {
                if let Ok(pos) = sel.messages.binary_search_by_key(uid, |m| m.uid) {
                    sel.messages[pos].record = record.clone();
                }
            }
        }
    }

    /// Reports the given UIDs as expunged and drops them from the snapshot.
    fn report_expunged(&mut self, uids: &[u32]) {
        let qresync = self.qresync;
        if let Some(sel) = self.selected.as_mut() {
            let out = sel.expunge(uids, qresync);
            self.conn.send(out.as_bytes());
        }
    }
}

impl Selected {
    /// Takes the mailbox as it is now (`fresh`) into the snapshot and returns what tells
    /// the client: expunges (only when allowed, RFC 3501 §7.4.1), flag changes (with
    /// MODSEQ once CONDSTORE is on) and the new message count.
    fn refresh(
        &mut self,
        fresh: Vec<(u32, MessageRecord)>,
        allow_expunge: bool,
        condstore: bool,
        qresync: bool,
    ) -> String {
        let mut out = String::new();
        let present = |uid: u32| fresh.binary_search_by_key(&uid, |(u, _)| *u);
        for m in self.messages.iter_mut() {
            if present(m.uid).is_err() {
                m.gone = true;
            }
        }
        if allow_expunge {
            let gone: Vec<u32> = self
                .messages
                .iter()
                .filter(|m| m.gone)
                .map(|m| m.uid)
                .collect();
            out.push_str(&self.expunge(&gone, qresync));
        }
        for (i, m) in self.messages.iter_mut().enumerate() {
            let Ok(pos) = present(m.uid) else { continue };
            let record = &fresh[pos].1;
            if record.flags != m.record.flags || record.keywords != m.record.keywords {
                m.record = record.clone();
                let modseq = condstore.then_some(record.modseq);
                let (flags, keywords) = (record.flags, &record.keywords);
                let recent = self.recent.binary_search(&m.uid).is_ok();
                out.push_str(&encode::fetch_flags(
                    i + 1,
                    Some(m.uid),
                    flags,
                    keywords,
                    recent,
                    modseq,
                ));
            }
        }
        let last = self.messages.last().map_or(0, |m| m.uid);
        if let Some((uid, _)) = fresh.last() {
            self.uid_next = self.uid_next.max(uid.saturating_add(1));
        }
        let before = self.messages.len();
        for (uid, record) in fresh.into_iter().filter(|(u, _)| *u > last) {
            self.messages.push(Msg {
                uid,
                record,
                gone: false,
            });
        }
        if self.messages.len() != before {
            out.push_str(&encode::exists(self.messages.len()));
        }
        out
    }

    /// Drops `uids` from the snapshot and returns what tells the client: EXPUNGE per
    /// message (highest sequence number first, so each number is still valid when read),
    /// or one VANISHED once QRESYNC is enabled (RFC 7162 §3.2.10).
    fn expunge(&mut self, uids: &[u32], qresync: bool) -> String {
        let mut sorted = uids.to_vec();
        sorted.sort_unstable();
        self.recent.retain(|u| sorted.binary_search(u).is_err());
        let mut out = String::new();
        let mut vanished = Vec::new();
        for i in (0..self.messages.len()).rev() {
            if sorted.binary_search(&self.messages[i].uid).is_ok() {
                if qresync {
                    vanished.push(self.messages[i].uid);
                } else {
                    out.push_str(&encode::expunge(i + 1));
                }
                self.messages.remove(i);
            }
        }
        if !vanished.is_empty() {
            vanished.reverse();
            out.push_str(&encode::vanished(&vanished));
        }
        out
    }
}

/// A BAD for what the reader could not take as a command; `close` ends the session.
fn bad_input(command: &[u8], text: &str, close: bool) -> Input {
    Input::Bad {
        tag: tag_of(command),
        text: text.into(),
        close,
        skip: None,
    }
}

/// The NO text for a store error.
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
    use crate::store::flags;

    fn record(flags: u8, modseq: u64) -> MessageRecord {
        MessageRecord {
            blob: 1,
            size: 10,
            internal_date: 0,
            flags,
            keywords: Vec::new(),
            modseq,
        }
    }

    fn snapshot(uids: &[u32]) -> Selected {
        Selected {
            name: "INBOX".into(),
            id: 1,
            read_only: false,
            uid_next: uids.last().map_or(1, |u| u + 1),
            messages: uids
                .iter()
                .map(|&uid| Msg {
                    uid,
                    record: record(0, 1),
                    gone: false,
                })
                .collect(),
            saved: Vec::new(),
            keywords: Vec::new(),
            known_keywords: Default::default(),
            recent: Vec::new(),
        }
    }

    fn uids(sel: &Selected) -> Vec<u32> {
        sel.messages.iter().map(|m| m.uid).collect()
    }

    #[test]
    fn expunges_are_reported_highest_first_or_as_vanished() {
        let mut sel = snapshot(&[3, 5, 7, 9]);
        assert_eq!(
            sel.expunge(&[9, 3, 5], false),
            "* 4 EXPUNGE\r\n* 2 EXPUNGE\r\n* 1 EXPUNGE\r\n"
        );
        assert_eq!(uids(&sel), [7]);
        let mut sel = snapshot(&[3, 4, 5, 9]);
        assert_eq!(sel.expunge(&[9, 3, 4, 8], true), "* VANISHED 3:4,9\r\n");
        assert_eq!(uids(&sel), [5]);
        assert_eq!(sel.expunge(&[1], true), "");
    }

    #[test]
    fn refresh_reports_expunges_flag_changes_and_new_messages() {
        let mut sel = snapshot(&[1, 2, 3]);
        let fresh = vec![
            (1, record(0, 1)),
            (3, record(flags::SEEN, 4)),
            (4, record(0, 5)),
        ];
        // Expunges wait (during FETCH, STORE, SEARCH); the message stays addressable.
        assert_eq!(
            sel.refresh(fresh.clone(), false, true, false),
            "* 3 FETCH (UID 3 FLAGS (\\Seen) MODSEQ (4))\r\n* 4 EXISTS\r\n"
        );
        assert_eq!(uids(&sel), [1, 2, 3, 4]);
        assert!(sel.messages[1].gone);
        assert_eq!(sel.uid_next, 5);
        // Then they are reported, with nothing else changed.
        assert_eq!(sel.refresh(fresh, true, true, false), "* 2 EXPUNGE\r\n");
        assert_eq!(uids(&sel), [1, 3, 4]);
        let fresh = vec![(1, record(flags::DELETED, 6))];
        assert_eq!(
            sel.refresh(fresh, true, false, true),
            "* VANISHED 3:4\r\n* 1 FETCH (UID 1 FLAGS (\\Deleted))\r\n"
        );
    }
}
