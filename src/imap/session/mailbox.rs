//! Mailbox commands of the authenticated state (RFC 9051 §6.3): SELECT/EXAMINE with
//! CONDSTORE and QRESYNC (RFC 7162), NAMESPACE (RFC 2342), CREATE, DELETE, RENAME,
//! SUBSCRIBE/UNSUBSCRIBE, LIST/LSUB with LIST-EXTENDED and LIST-STATUS (RFC 5258, RFC
//! 5819), STATUS, and GETQUOTA/GETQUOTAROOT (RFC 9208).

use super::{store_error_text, Reply, Selected, Session};
use crate::imap::encode;
use crate::imap::message::missing_uids;
use crate::imap::parse::{ListRequest, Qresync, Select, StatusItem};
use crate::store::{flags, Mailbox, MailboxCounts, MessageRecord};
use std::io;

/// A mailbox with all its message records in UID order.
type LoadedMailbox = (Mailbox, Vec<(u32, MessageRecord)>);

impl Session {
    /// A stored (UTF-8) mailbox name as this client expects it.
    pub(super) fn wire_name(&self, name: &str) -> String {
        if self.utf8 {
            name.to_string()
        } else {
            crate::imap::mutf7::encode(name)
        }
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

    /// SELECT and EXAMINE (RFC 9051 §6.3.2, §6.3.3), SELECT (CONDSTORE) (RFC 7162
    /// §3.1.8) and SELECT (QRESYNC ...) (RFC 7162 §3.2.5).
    pub(super) async fn select(&mut self, tag: &str, select: Select) -> io::Result<Reply> {
        let Select {
            mailbox: name,
            read_only,
            condstore,
            qresync,
        } = select;
        if qresync.is_some() && !self.qresync {
            return Ok(Reply::Bad("QRESYNC needs ENABLE QRESYNC first".into()));
        }
        if condstore {
            self.condstore = true;
        }
        if self.selected.take().is_some() {
            self.untagged("OK [CLOSED] Previous mailbox closed");
        }
        self.changes.borrow_and_update();
        let (mailbox, messages) = match self.load_mailbox(&name).await? {
            Ok(x) => x,
            Err(no) => return Ok(no),
        };
        let keywords = keywords_of(&messages);
        let uids = messages.iter().map(|(uid, _)| *uid).collect();
        let recent = self.recent_among(mailbox.id, uids, read_only).await?;
        self.send_selected(&mailbox, &messages, &keywords, recent.len(), read_only);
        if let Some(resync) = qresync {
            self.send_resync(&resync, &mailbox, &messages, &recent);
        }
        self.selected = Some(Selected::new(
            name,
            mailbox.id,
            read_only,
            mailbox.uid_next,
            messages,
            keywords,
            recent,
        ));
        let mode = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        self.tagged(tag, &format!("OK [{mode}] {verb} completed"));
        Ok(Reply::Done)
    }

    /// The untagged responses of SELECT (RFC 9051 §6.3.2, RFC 3501 §6.3.1).
    fn send_selected(
        &mut self,
        mailbox: &Mailbox,
        messages: &[(u32, MessageRecord)],
        keywords: &[String],
        recent: usize,
        read_only: bool,
    ) {
        let first_unseen = messages
            .iter()
            .position(|(_, r)| r.flags & flags::SEEN == 0);
        if self.rev2 {
            // RFC 9051 §6.3.2: a LIST response names the mailbox as the server spells it.
            let wire = self.wire_name(&mailbox.name);
            self.conn
                .send(encode::list("LIST", &[], &wire, false).as_bytes());
        }
        self.send_flags(keywords, read_only);
        self.conn.send(encode::exists(messages.len()).as_bytes());
        // IMAP4rev2 dropped \Recent and the UNSEEN response code.
        if !self.rev2 {
            self.untagged(&format!("{recent} RECENT"));
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
    }

    /// QRESYNC's VANISHED (EARLIER) and flag changes since the client's modseq, only when
    /// its UIDVALIDITY is still right (RFC 7162 §3.2.5). Expunged UIDs are not kept with
    /// their modseq, so every UID the client may know and that is gone is reported, as RFC
    /// 7162 §3.2.5.1 allows.
    fn send_resync(
        &mut self,
        resync: &Qresync,
        mailbox: &Mailbox,
        messages: &[(u32, MessageRecord)],
        recent: &[u32],
    ) {
        if resync.uid_validity != mailbox.uid_validity {
            return;
        }
        let present: Vec<u32> = messages.iter().map(|(u, _)| *u).collect();
        let max = mailbox.uid_next.saturating_sub(1);
        let all = [(1, u32::MAX)];
        let known = resync.known_uids.as_deref().unwrap_or(&all);
        let vanished = missing_uids(known, &present, max);
        let mut out = String::new();
        if !vanished.is_empty() {
            out.push_str(&encode::vanished_earlier(&vanished));
        }
        for (i, (uid, r)) in messages.iter().enumerate() {
            if r.modseq > resync.modseq {
                let modseq = Some(r.modseq);
                let is_recent = recent.binary_search(uid).is_ok();
                out.push_str(&encode::fetch_flags(
                    i + 1,
                    Some(*uid),
                    r.flags,
                    &r.keywords,
                    is_recent,
                    modseq,
                ));
            }
        }
        self.conn.send(out.as_bytes());
    }

    /// NAMESPACE (RFC 2342 §5): one personal namespace, `/` as separator.
    pub(super) async fn namespace(&mut self, tag: &str) -> io::Result<Reply> {
        self.untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
        self.finish(tag, "OK NAMESPACE completed", true).await
    }

    /// LIST and LSUB (RFC 9051 §6.3.9, RFC 3501 §6.3.9), with LIST-EXTENDED selection
    /// and return options (RFC 5258) and LIST-STATUS (RFC 5819).
    pub(super) async fn list(&mut self, tag: &str, request: ListRequest) -> io::Result<Reply> {
        let verb = if request.lsub { "LSUB" } else { "LIST" };
        let done = format!("OK {verb} completed");
        if request.delimiter_only {
            let line = encode::list(verb, &["\\Noselect"], "", false);
            self.conn.send(line.as_bytes());
            return self.finish(tag, &done, true).await;
        }
        let account = self.account();
        let loaded = self
            .blocking(move |s| Ok((s.mailboxes(&account)?, s.subscriptions(&account)?)))
            .await?;
        let (mailboxes, subscribed) = match loaded {
            Ok(m) => m,
            Err(e) => return Ok(Reply::No(format!("[SERVERBUG] {e}"))),
        };
        let lines = list_lines(&request, &mailboxes, &subscribed, |name| {
            self.wire_name(name)
        });
        let out = match &request.status {
            None => lines.into_iter().map(|(_, line)| line).collect(),
            Some(items) => match self.with_status(items, lines, &mailboxes).await? {
                Ok(out) => out,
                Err(no) => return Ok(no),
            },
        };
        self.conn.send(out.as_bytes());
        self.finish(tag, &done, true).await
    }

    /// LIST-STATUS: each listed mailbox's LIST line followed by its STATUS (RFC 5819 §2).
    async fn with_status(
        &mut self,
        items: &[StatusItem],
        lines: Vec<(Option<usize>, String)>,
        mailboxes: &[Mailbox],
    ) -> io::Result<Result<String, Reply>> {
        let ids: Vec<u64> = lines
            .iter()
            .filter_map(|&(i, _)| i.map(|i| mailboxes[i].id))
            .collect();
        let loaded = match self.counts_of(ids, items).await? {
            Ok(l) => l,
            Err(no) => return Ok(Err(no)),
        };
        let mut out = String::new();
        let mut statuses = loaded.into_iter();
        for (i, line) in lines {
            out.push_str(&line);
            // Only an existing, selectable mailbox has a STATUS (RFC 5819 §2).
            let Some(mailbox) = i.map(|i| &mailboxes[i]) else {
                continue;
            };
            let Some((counts, recent)) = statuses.next() else {
                break;
            };
            let values = status_values(items, mailbox, &counts, recent);
            out.push_str(&encode::status(&self.wire_name(&mailbox.name), &values));
        }
        Ok(Ok(out))
    }

    /// The messages recent in this session among `uids` (sorted), RFC 3501 §2.3.2: those
    /// above the UID earlier sessions claimed. SELECT claims them, EXAMINE only looks, and
    /// IMAP4rev2 sessions, which have no `\Recent`, neither.
    pub(super) async fn recent_among(
        &mut self,
        id: u64,
        uids: Vec<u32>,
        read_only: bool,
    ) -> io::Result<Vec<u32>> {
        let Some(&last) = uids.last() else {
            return Ok(Vec::new());
        };
        if self.rev2 {
            return Ok(Vec::new());
        }
        // A read first: only a session that has something to claim writes, in a shared
        // commit.
        let mut claimed = self.blocking(move |s| s.recent_claimed(id)).await?;
        if matches!(claimed, Ok(c) if c < last) && !read_only {
            claimed = self.write(move |w| w.claim_recent(id, last)).await?;
        }
        Ok(match claimed {
            Ok(claimed) => uids.into_iter().filter(|&u| u > claimed).collect(),
            Err(e) => {
                log::error!("imap {}: \\Recent of mailbox {id}: {e}", self.conn.peer);
                Vec::new()
            }
        })
    }

    /// For STATUS: each mailbox's counters and, when RECENT is asked for, how many of its
    /// messages no session has claimed as `\Recent` (zero otherwise). No message is read.
    async fn counts_of(
        &mut self,
        ids: Vec<u64>,
        items: &[StatusItem],
    ) -> io::Result<Result<Vec<(MailboxCounts, u64)>, Reply>> {
        let wants_recent = items.contains(&StatusItem::Recent);
        let loaded = self
            .blocking(move |s| {
                ids.iter()
                    .map(|&id| {
                        let recent = if wants_recent {
                            s.count_above(id, s.recent_claimed(id)?)?
                        } else {
                            0
                        };
                        Ok((s.mailbox_counts(id)?, recent))
                    })
                    .collect()
            })
            .await?;
        Ok(loaded.map_err(|e| Reply::No(format!("[SERVERBUG] {e}"))))
    }

    /// STATUS (RFC 9051 §6.3.11).
    pub(super) async fn status(
        &mut self,
        tag: &str,
        name: String,
        items: &[StatusItem],
    ) -> io::Result<Reply> {
        let account = self.account();
        let lookup = name.clone();
        let mailbox = match self.blocking(move |s| s.mailbox(&account, &lookup)).await? {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(Reply::No("[NONEXISTENT] No such mailbox".into())),
            Err(e) => return Ok(Reply::No(format!("[SERVERBUG] {e}"))),
        };
        let (counts, recent) = match self.counts_of(vec![mailbox.id], items).await? {
            Ok(mut c) if !c.is_empty() => c.remove(0),
            Ok(_) => Default::default(),
            Err(no) => return Ok(no),
        };
        let values = status_values(items, &mailbox, &counts, recent);
        let wire = self.wire_name(&mailbox.name);
        self.conn.send(encode::status(&wire, &values).as_bytes());
        self.finish(tag, "OK STATUS completed", true).await
    }

    /// The account's (used, limit) storage in bytes, or the NO reply.
    async fn usage(&mut self) -> io::Result<Result<(u64, u64), Reply>> {
        let account = self.account();
        Ok(match self.blocking(move |s| s.usage(&account)).await? {
            Ok(u) => Ok(u),
            Err(e) => Err(Reply::No(format!("[SERVERBUG] {e}"))),
        })
    }

    /// GETQUOTAROOT (RFC 9208 §4.3): one root, "", per account, with the STORAGE
    /// resource in KiB. An account without a quota has no quota root.
    pub(super) async fn get_quota_root(&mut self, tag: &str, mailbox: String) -> io::Result<Reply> {
        let (used, limit) = match self.usage().await? {
            Ok(u) => u,
            Err(no) => return Ok(no),
        };
        if let Err(no) = self.load_mailbox(&mailbox).await? {
            return Ok(no);
        }
        let wire = self.wire_name(&mailbox);
        let mut out = encode::quota_root(&wire, limit != 0);
        if limit != 0 {
            out.push_str(&encode::quota(used, limit));
        }
        self.conn.send(out.as_bytes());
        self.finish(tag, "OK GETQUOTAROOT completed", true).await
    }

    /// GETQUOTA (RFC 9208 §4.2) of the one root, "".
    pub(super) async fn get_quota(&mut self, tag: &str, root: Option<String>) -> io::Result<Reply> {
        let (used, limit) = match self.usage().await? {
            Ok(u) => u,
            Err(no) => return Ok(no),
        };
        if limit == 0 || root.as_deref() != Some("") {
            return Ok(Reply::No("[NONEXISTENT] No such quota root".into()));
        }
        self.conn.send(encode::quota(used, limit).as_bytes());
        self.finish(tag, "OK GETQUOTA completed", true).await
    }

    /// CREATE (RFC 9051 §6.3.4); missing parents are created too.
    pub(super) async fn create(
        &mut self,
        tag: &str,
        mailbox: String,
        uses: Vec<String>,
    ) -> io::Result<Reply> {
        // CREATE-SPECIAL-USE (RFC 6154 §3): one attribute per mailbox here.
        let special_use = match uses.as_slice() {
            [] => None,
            [one] => match encode::special_use_named(one) {
                Some(special) => Some(special),
                None => return Ok(Reply::No(format!("[USEATTR] {one} is not supported"))),
            },
            _ => return Ok(Reply::No("[USEATTR] One special use per mailbox".into())),
        };
        let account = self.account();
        let result = self
            .blocking(move |s| {
                let parts: Vec<&str> = mailbox.split('/').collect();
                for i in 1..parts.len() {
                    let parent = parts[..i].join("/");
                    // A `\Noselect` parent stays one: only a missing name is created.
                    if !s.name_exists(&account, &parent)? {
                        s.create_mailbox(&account, &parent)?;
                    }
                }
                s.create_special_mailbox(&account, &mailbox, special_use)
                    .map(|_| ())
            })
            .await?;
        self.mailbox_changed(tag, "CREATE", result).await
    }

    /// DELETE (RFC 9051 §6.3.5); deleting the selected mailbox deselects it.
    pub(super) async fn delete(&mut self, tag: &str, mailbox: String) -> io::Result<Reply> {
        if self.selected.as_ref().is_some_and(|s| s.name == mailbox) {
            self.selected = None;
        }
        let account = self.account();
        let result = self
            .blocking(move |s| s.delete_mailbox(&account, &mailbox))
            .await?;
        self.mailbox_changed(tag, "DELETE", result).await
    }

    /// SUBSCRIBE and UNSUBSCRIBE (RFC 9051 §6.3.7, §6.3.8).
    pub(super) async fn subscribe(
        &mut self,
        tag: &str,
        mailbox: String,
        on: bool,
    ) -> io::Result<Reply> {
        let account = self.account();
        let result = self
            .blocking(move |s| s.set_subscribed(&account, &mailbox, on))
            .await?;
        let verb = if on { "SUBSCRIBE" } else { "UNSUBSCRIBE" };
        self.mailbox_changed(tag, verb, result).await
    }

    /// The reply to a change of the account's mailboxes, which other sessions hear of.
    async fn mailbox_changed(
        &mut self,
        tag: &str,
        verb: &str,
        result: crate::store::Result<()>,
    ) -> io::Result<Reply> {
        match result {
            Ok(()) => {
                self.shared.committer.notify();
                self.finish(tag, &format!("OK {verb} completed"), true)
                    .await
            }
            Err(e) => Ok(Reply::No(store_error_text(&e))),
        }
    }

    /// RENAME (RFC 9051 §6.3.6); the selected mailbox (or one of its parents) may be the
    /// one renamed. Renaming INBOX moves its messages and leaves it in place.
    pub(super) async fn rename(
        &mut self,
        tag: &str,
        from: String,
        to: String,
    ) -> io::Result<Reply> {
        let account = self.account();
        let (old, new) = (from.clone(), to.clone());
        let result = self
            .blocking(move |s| s.rename_mailbox(&account, &from, &to))
            .await?;
        if result.is_ok() && old != "INBOX" {
            if let Some(sel) = self.selected.as_mut() {
                if sel.name == old {
                    sel.name = new;
                } else if let Some(rest) = sel.name.strip_prefix(&format!("{old}/")) {
                    sel.name = format!("{new}/{rest}");
                }
            }
        }
        self.mailbox_changed(tag, "RENAME", result).await
    }
}

/// The LIST (or LSUB) lines the request names, each with the index of its mailbox when it
/// exists (LIST-STATUS adds STATUS only for those).
///
/// Subscriptions are their own list of names (RFC 3501 §6.3.6, RFC 5258 §3): LSUB and
/// LIST (SUBSCRIBED) walk it, so a subscribed name without a mailbox shows as
/// `\NonExistent \Subscribed` (LSUB: `\Noselect`). An unsubscribed parent of a subscribed
/// name appears too: in LSUB as `\Noselect` when the pattern matches the parent but not
/// the child (`LSUB "" %`, RFC 3501 §6.3.9), in LIST with RECURSIVEMATCH with CHILDINFO.
fn list_lines(
    request: &ListRequest,
    mailboxes: &[Mailbox],
    subscribed: &[String],
    wire_name: impl Fn(&str) -> String,
) -> Vec<(Option<usize>, String)> {
    let verb = if request.lsub { "LSUB" } else { "LIST" };
    let matches = |name: &str| {
        request.patterns.iter().any(|pattern| {
            if name.eq_ignore_ascii_case("INBOX") {
                wildcard_match(&pattern.to_ascii_uppercase(), "INBOX")
                    || wildcard_match(pattern, "INBOX")
            } else {
                wildcard_match(pattern, name)
            }
        })
    };
    let subscribed_set: std::collections::HashSet<&str> =
        subscribed.iter().map(String::as_str).collect();
    let is_subscribed = |name: &str| subscribed_set.contains(name);
    let index_of: std::collections::HashMap<&str, usize> = mailboxes
        .iter()
        .enumerate()
        .map(|(i, m)| (m.name.as_str(), i))
        .collect();
    let mut lines = Vec::new();
    if !(request.lsub || request.subscribed_only) {
        for (i, mailbox) in mailboxes.iter().enumerate() {
            if !matches(&mailbox.name)
                || (request.special_use_only && mailbox.special_use.is_none())
            {
                continue;
            }
            let mut attributes = list_attributes(mailbox, mailboxes, false);
            if request.show_subscribed && is_subscribed(&mailbox.name) {
                attributes.push("\\Subscribed");
            }
            let wire = wire_name(&mailbox.name);
            // LIST-STATUS gives no STATUS for a `\Noselect` name.
            let status_index = (!mailbox.noselect).then_some(i);
            lines.push((status_index, encode::list(verb, &attributes, &wire, false)));
        }
        return lines;
    }
    // Name → whether it is subscribed itself (else listed for a subscribed descendant).
    let mut names: std::collections::BTreeMap<&str, bool> = std::collections::BTreeMap::new();
    for name in subscribed {
        if matches(name) {
            names.insert(name, true);
        }
        let mut parent = name.as_str();
        while let Some((up, _)) = parent.rsplit_once('/') {
            parent = up;
            // Only for a child the pattern itself does not reach (RFC 3501 §6.3.9, RFC 5258
            // §3.5).
            let wanted = (request.lsub || request.recursive) && !matches(name);
            if wanted && matches(parent) && !is_subscribed(parent) {
                names.entry(parent).or_insert(false);
            }
        }
    }
    for (name, own) in names {
        let index = index_of.get(name).copied();
        let mailbox = index.map(|i| &mailboxes[i]);
        if request.special_use_only && mailbox.is_none_or(|m| m.special_use.is_none()) {
            continue;
        }
        let mut attributes = match mailbox {
            Some(m) if own || !request.lsub => list_attributes(m, mailboxes, request.lsub),
            Some(_) => vec!["\\Noselect"],
            None if request.lsub => vec!["\\Noselect"],
            None => vec!["\\NonExistent"],
        };
        if own && !request.lsub {
            attributes.push("\\Subscribed");
        }
        let childinfo = !own && !request.lsub;
        let wire = wire_name(name);
        let status_index = index.filter(|_| own && mailbox.is_some_and(|m| !m.noselect));
        lines.push((
            status_index,
            encode::list(verb, &attributes, &wire, childinfo),
        ));
    }
    lines
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

/// CHILDREN (RFC 3348) and, for LIST, SPECIAL-USE (RFC 6154) attributes.
fn list_attributes(mailbox: &Mailbox, all: &[Mailbox], lsub: bool) -> Vec<&'static str> {
    let mut attributes = Vec::new();
    if mailbox.noselect {
        attributes.push("\\Noselect");
    }
    let prefix = format!("{}/", mailbox.name);
    if all.iter().any(|m| m.name.starts_with(&prefix)) {
        attributes.push("\\HasChildren");
    } else {
        attributes.push("\\HasNoChildren");
    }
    if !lsub {
        if let Some(special) = mailbox.special_use {
            attributes.push(encode::special_use(special));
        }
    }
    attributes
}

/// The values of STATUS items for a mailbox and its messages.
fn status_values(
    items: &[StatusItem],
    mailbox: &Mailbox,
    counts: &MailboxCounts,
    recent: u64,
) -> Vec<(StatusItem, u64)> {
    items
        .iter()
        .map(|&item| {
            let value = match item {
                StatusItem::Messages => counts.messages,
                StatusItem::UidNext => mailbox.uid_next as u64,
                StatusItem::UidValidity => mailbox.uid_validity as u64,
                StatusItem::Unseen => counts.unseen,
                StatusItem::Size => counts.size,
                StatusItem::HighestModSeq => mailbox.highest_modseq,
                StatusItem::Deleted => counts.deleted,
                // RFC 9208 §4.2: in the STORAGE resource's unit, KiB.
                StatusItem::DeletedStorage => counts.deleted_size.div_ceil(1024),
                StatusItem::Recent => recent,
            };
            (item, value)
        })
        .collect()
}

/// The keywords the messages use, each once (compared without case), in order of first use.
fn keywords_of(messages: &[(u32, MessageRecord)]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<String> = Vec::new();
    for keyword in messages.iter().flat_map(|(_, r)| &r.keywords) {
        if seen.insert(keyword.to_ascii_lowercase()) {
            out.push(keyword.clone());
        }
    }
    out
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
}
