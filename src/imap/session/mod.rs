//! One IMAP connection: not authenticated → authenticated → selected → logout.
//!
//! This file owns the session itself: the struct, the read-or-shutdown loop, the bounded
//! command reader (and, with NOTIFY, the wait for input or events), the state check and
//! dispatch of typed commands, `sync` of the selected mailbox (whose snapshot is
//! `selected.rs`), and the reply helpers. The handlers live
//! beside it, one file per command group, each an `impl Session` block:
//! `auth` (CAPABILITY, LOGIN, AUTHENTICATE, STARTTLS, ENABLE, ID, NOOP, LOGOUT),
//! `mailbox` (SELECT/EXAMINE, CREATE, DELETE, RENAME, (UN)SUBSCRIBE, LIST/LSUB,
//! NAMESPACE, STATUS, QUOTA), `append`, `fetch`, `modify` (STORE, COPY/MOVE,
//! EXPUNGE, CLOSE/UNSELECT), `search`, `sort`, `context` (RFC 5267 search contexts),
//! `notify` (RFC 5465) and `idle`. Every handler runs in the same
//! order: RFC reference, its already typed arguments, state checks, store calls, replies.
//!
//! Commands are read with bounded lines and bounded literals (see the module doc of
//! [`crate::imap`]); store calls go through [`Store::call`] (a mailbox's mark and a
//! message's description are point lookups of [`Store::reader`]), never holding a transaction
//! across an `.await`. The selected mailbox is a snapshot of (UID, record) pairs that is
//! brought up to date before every tagged reply.

mod append;
mod auth;
mod context;
mod fetch;
mod flags;
mod idle;
mod mailbox;
mod modify;
mod notify;
mod search;
mod selected;
mod sort;

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
use selected::{Selected, Tell};
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
            let end = match self.await_input(&mut shutdown).await {
                Ok(true) => None,
                Ok(false) => Some(End::Shutdown),
                Err(e) => Some(End::from_io(e)),
            };
            let end = match end {
                Some(end) => Some(end),
                None => {
                    let read = self.read_command();
                    match read_or_shutdown(&mut shutdown, read).await {
                        None => Some(End::Shutdown),
                        Some(Ok(input)) => self
                            .input(input)
                            .await
                            .unwrap_or_else(|e| Some(End::from_io(e))),
                        Some(Err(e)) => Some(End::from_io(e)),
                    }
                }
            };
            if matches!(end, Some(End::Shutdown)) {
                self.conn.send(b"* BYE Server shutting down\r\n");
                self.conn.close().await;
                return End::Shutdown;
            }
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

impl Session {
    /// With NOTIFY on (RFC 5465), waits for the client's next bytes and sends the events
    /// that happen meanwhile; without, returns at once. False: the server shuts down.
    async fn await_input(&mut self, shutdown: &mut watch::Receiver<bool>) -> io::Result<bool> {
        enum Event {
            Input(io::Result<usize>),
            Changed,
            Shutdown,
        }
        // Events are not the client's activity: the autologout clock runs on.
        let deadline = tokio::time::Instant::now() + self.conn.read_timeout;
        loop {
            if self.conn.has_buffered_input() {
                return Ok(true);
            }
            let Some(notify) = self.notify.as_mut() else {
                return Ok(true);
            };
            self.conn.flush().await?;
            let event = tokio::select! {
                read = self.conn.fill_by(Some(deadline)) => Event::Input(read),
                Ok(()) = notify.changes.changed() => Event::Changed,
                _ = shutdown.wait_for(|stop| *stop) => Event::Shutdown,
            };
            match event {
                // Whatever came (or the end of input) is the command reader's.
                Event::Input(read) => return read.map(|_| true),
                Event::Changed => self.push_events(false).await?,
                Event::Shutdown => return Ok(false),
            }
        }
    }
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
    /// NOTIFY SET (RFC 5465): the events to send as they happen.
    notify: Option<notify::Notify>,
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
            notify: None,
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

    /// [`Session::write`] for a change to the selected mailbox that the caller takes into
    /// the snapshot itself (STORE, EXPUNGE). When nothing else changed the mailbox since
    /// the snapshot, the mailbox's mark after the change is kept: the next sync then reads
    /// nothing.
    async fn write_in_selected<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut crate::store::Write) -> crate::store::Result<T> + Send + 'static,
    ) -> io::Result<crate::store::Result<T>> {
        let Some(sel) = &self.selected else {
            return self.write(f).await;
        };
        let (account, name, id, known) = (self.account(), sel.name.clone(), sel.id, sel.mark);
        let result = self
            .write(move |w| {
                let before = w.mailbox_mark(&account, &name)?;
                let value = f(w)?;
                let after = w.mailbox_mark(&account, &name)?;
                let kept = before.is_some_and(|b| b.id == id) && before == known;
                Ok((value, after.filter(|_| kept)))
            })
            .await?;
        Ok(result.map(|(value, after)| {
            if let (Some(after), Some(sel)) = (after, self.selected.as_mut()) {
                sel.mark = Some(after);
            }
            value
        }))
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
            // So is an event NOTIFY cannot report (RFC 5465 §3.1).
            (None, Err(text))
                if text.starts_with("[BADCHARSET") || text.starts_with("[BADEVENT") =>
            {
                Reply::No(text)
            }
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
            Command::CancelUpdate(tags) => self.cancel_update(tag, &tags).await,
            Command::Notify(set) => self.notify_command(tag, set).await,
        }
    }

    /// Reports pending mailbox changes, then sends the tagged reply.
    async fn finish(&mut self, tag: &str, text: &str, allow_expunge: bool) -> io::Result<Reply> {
        self.sync(allow_expunge).await?;
        self.update_contexts().await?;
        self.tagged(tag, text);
        Ok(Reply::Done)
    }

    /// Brings the snapshot up to date and sends EXPUNGE / EXISTS / FETCH FLAGS.
    async fn sync(&mut self, allow_expunge: bool) -> io::Result<()> {
        self.sync_with(allow_expunge, true).await
    }

    /// [`Session::sync`]; without `flags`, flag changes wait for a later sync (NOTIFY
    /// without FlagChange, RFC 5465 §5.1).
    async fn sync_with(&mut self, allow_expunge: bool, flags: bool) -> io::Result<()> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        let (id, name) = (sel.id, sel.name.clone());
        let pending_gone = sel.messages.iter().any(|m| m.gone);
        let pending_flags = flags && sel.flags_pending;
        let changed = self.changes.has_changed().unwrap_or(false);
        if !(changed || pending_flags || (allow_expunge && pending_gone)) {
            return Ok(());
        }
        self.changes.borrow_and_update();
        // Most changes are to other mailboxes: two point lookups (the mailbox's mark) tell
        // whether this one changed before its records are read.
        let account = self.account();
        let mark = self
            .shared
            .store
            .reader()
            .mailbox_mark(&account, &name)
            .ok()
            .flatten()
            // Renamed away by another session: the name is no longer this mailbox.
            .filter(|m| m.id == id);
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        if mark.is_some() && mark == sel.mark && !pending_flags && !(allow_expunge && pending_gone)
        {
            return Ok(());
        }
        // No mailbox of this id under its name: another session renamed it. Commands
        // that go by name (STORE, APPEND's claim) follow it to its new name.
        let renamed = mark.is_none();
        let read = self
            .blocking(move |s| {
                let name = match renamed {
                    true => s.mailboxes(&account)?.into_iter().find(|m| m.id == id),
                    false => None,
                };
                Ok((s.messages(id)?, name.map(|m| m.name)))
            })
            .await?;
        let fresh = match read {
            Ok((fresh, new_name)) => {
                if let Some(sel) = self.selected.as_mut() {
                    sel.mark = mark;
                    if let Some(new_name) = new_name {
                        sel.name = new_name;
                    }
                }
                fresh
            }
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
        // What this session's APPENDs claimed needs no claim; below their claims, what
        // is not in them was claimed by others.
        let claims = match self.selected.as_mut() {
            Some(sel) => std::mem::take(&mut sel.preclaimed),
            None => Vec::new(),
        };
        let claimed_to = claims.iter().map(|&(_, up_to)| up_to).max().unwrap_or(0);
        let (claimed, arrived): (Vec<u32>, Vec<u32>) =
            arrived.into_iter().partition(|&u| u <= claimed_to);
        let mut recent: Vec<u32> = claimed
            .into_iter()
            .filter(|&u| {
                claims
                    .iter()
                    .any(|&(before, up_to)| u > before && u <= up_to)
            })
            .collect();
        recent.extend(self.recent_among(id, arrived, read_only).await?);
        let tell = Tell {
            expunges: allow_expunge,
            flags,
            modseq: self.condstore,
            vanished: self.qresync,
            uids: self.qresync || self.notify.as_ref().is_some_and(|n| n.flag_changes()),
        };
        let Some(sel) = self.selected.as_mut() else {
            return Ok(());
        };
        sel.recent.extend(recent.iter().copied());
        let mut out = sel.refresh(fresh, tell);
        if !recent.is_empty() {
            out.push_str(&format!("* {} RECENT\r\n", sel.recent.len()));
        }
        self.conn.send(out.as_bytes());
        // NOTIFY's MessageNew items follow the EXISTS (RFC 5465 §5.2).
        if let Some(items) = self.notify.as_ref().and_then(|n| n.fetch_items()) {
            self.fetch_new(&items, known).await?;
        }
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
            sel.dirty = true;
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
