//! Commands that change the selected mailbox (RFC 9051 §6.4): STORE with UNCHANGEDSINCE
//! (RFC 7162 §3.1.3), COPY and MOVE (RFC 6851) with COPYUID (RFC 4315), EXPUNGE and UID
//! EXPUNGE (RFC 4315 §2.1), CLOSE and UNSELECT (RFC 3691). A read-only mailbox has
//! already been refused for STORE, EXPUNGE and MOVE (see [`super::Session::refusal`]).
//!
//! COPY and MOVE into Junk, MOVE out of it and the `$Junk` / `$NotJunk` keywords
//! (RFC 5788) teach the account's junk filter ([`crate::junk`]) in a task of its own:
//! the reply does not wait for it, and its failure is only logged.

use super::{store_error_text, Reply, Session};
use crate::imap::encode;
use crate::imap::message::resolve;
use crate::imap::parse::{CopyMove, SequenceSet, StoreFlags};
use crate::junk;
use crate::store::{flags, FlagOp, MessageRecord, StoreError};
use std::io;

impl Session {
    /// STORE and UID STORE (RFC 9051 §6.4.6), with UNCHANGEDSINCE (RFC 7162 §3.1.3).
    pub(super) async fn store_command(
        &mut self,
        tag: &str,
        store: StoreFlags,
    ) -> io::Result<Reply> {
        let StoreFlags {
            set,
            unchanged_since,
            op,
            silent,
            flags,
            uid,
        } = store;
        if unchanged_since.is_some() {
            self.enable_condstore().await?;
        }
        self.sync(uid).await?;
        let indices = match self.indices(&set, uid) {
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
        if op != FlagOp::Remove {
            let new = flags
                .keywords
                .iter()
                .filter(|k| !sel.known_keywords.contains(&k.to_ascii_lowercase()))
                .count();
            if sel.keywords.len() + new > super::MAX_KEYWORDS {
                let text = format!(
                    "[LIMIT] At most {} keywords per mailbox",
                    super::MAX_KEYWORDS
                );
                return Ok(Reply::No(text));
            }
        }
        let (account, name) = (self.account(), sel.name.clone());
        let lesson = match op {
            FlagOp::Add | FlagOp::Replace => junk::lesson_of_keywords(&flags.keywords),
            FlagOp::Remove => None,
        };
        let result = self
            .write_in_selected(move |w| {
                let (system, keywords) = (flags.system, &flags.keywords);
                w.store_flags(
                    &account,
                    &name,
                    &uids,
                    op,
                    system,
                    keywords,
                    unchanged_since,
                )
            })
            .await?;
        let (updated, modified) = match result {
            Ok(u) => u,
            Err(e) => return Ok(Reply::No(store_error_text(&e))),
        };
        self.apply_records(&updated);
        if let Some(spam) = lesson {
            self.learn_junk(updated.iter().map(|(_, r)| r.clone()).collect(), spam);
        }
        if !silent {
            let out = self.flag_updates(&updated, uid);
            self.conn.send(out.as_bytes());
        }
        if modified.is_empty() {
            return self.finish(tag, "OK STORE completed", uid).await;
        }
        let text = format!(
            "OK [MODIFIED {}] Conditional STORE failed",
            self.numbers(&modified, uid).join(",")
        );
        self.finish(tag, &text, uid).await
    }

    /// The FETCH responses of a STORE: with the UID for UID STORE, with MODSEQ once
    /// CONDSTORE is on.
    fn flag_updates(&self, updated: &[(u32, MessageRecord)], uid: bool) -> String {
        let mut out = String::new();
        let Some(sel) = &self.selected else {
            return out;
        };
        for (u, record) in updated {
            if let Ok(pos) = sel.messages.binary_search_by_key(u, |m| m.uid) {
                let modseq = self.condstore.then_some(record.modseq);
                let uid = uid.then_some(*u);
                let (system, keywords) = (record.flags, &record.keywords);
                let recent = sel.is_recent(*u);
                out.push_str(&encode::fetch_flags(
                    pos + 1,
                    uid,
                    system,
                    keywords,
                    recent,
                    modseq,
                ));
            }
        }
        out
    }

    /// UIDs for a UID command, sequence numbers otherwise, of messages in the snapshot.
    fn numbers(&self, uids: &[u32], uid: bool) -> Vec<String> {
        let Some(sel) = &self.selected else {
            return Vec::new();
        };
        uids.iter()
            .filter_map(|u| {
                let pos = sel.messages.binary_search_by_key(u, |m| m.uid).ok()?;
                Some(if uid {
                    u.to_string()
                } else {
                    (pos + 1).to_string()
                })
            })
            .collect()
    }

    /// COPY, MOVE and their UID forms (RFC 9051 §6.4.7, §6.4.8, RFC 6851), answered with
    /// COPYUID (RFC 4315 §3). A copy must fit the account's quota; a move does not grow it.
    pub(super) async fn copy(&mut self, tag: &str, copy: CopyMove) -> io::Result<Reply> {
        let CopyMove {
            set,
            mailbox: target,
            uid,
            remove,
        } = copy;
        self.sync(true).await?;
        let indices = match self.indices(&set, uid) {
            Ok(i) => i,
            Err(reply) => return Ok(reply),
        };
        let Some(sel) = &self.selected else {
            return Ok(Reply::Bad("No mailbox selected".into()));
        };
        let uids: Vec<u32> = indices.iter().map(|&i| sel.messages[i].uid).collect();
        let records: Vec<(u32, MessageRecord)> = indices
            .iter()
            .map(|&i| (sel.messages[i].uid, sel.messages[i].record.clone()))
            .collect();
        let adding: u64 = indices.iter().map(|&i| sel.messages[i].record.size).sum();
        let (account, name) = (self.account(), sel.name.clone());
        // Reads first, on the blocking pool; then the copy alone in a shared commit.
        let checks = {
            let (account, name, target) = (account.clone(), name.clone(), target.clone());
            self.blocking(move |s| {
                let Some(to) = s.mailbox(&account, &target)? else {
                    return Ok(None);
                };
                if !remove {
                    // A move (to Trash, say) must work when the store is full; a copy adds.
                    s.check_room(0)?;
                    if s.over_quota(&account, adding)? {
                        return Err(StoreError::OverQuota);
                    }
                }
                Ok(Some(match s.mailbox(&account, &name)? {
                    Some(from) => junk::lesson_of_copy(&from, &to, remove),
                    None => None,
                }))
            })
            .await?
        };
        let result = match checks {
            Ok(Some(lesson)) => self
                .write(move |w| w.copy_messages(&account, &name, &uids, &target, remove))
                .await?
                .map(|c| Some((c, lesson))),
            other => other.map(|_| None),
        };
        let copied = match result {
            Ok(Some((c, lesson))) => {
                if let Some(spam) = lesson {
                    let done: Vec<u32> = c.uids.iter().map(|(a, _)| *a).collect();
                    let records = records
                        .into_iter()
                        .filter(|(u, _)| done.contains(u))
                        .map(|(_, r)| r)
                        .collect();
                    self.learn_junk(records, spam);
                }
                c
            }
            Ok(None) => return Ok(Reply::No("[TRYCREATE] No such mailbox".into())),
            Err(e) => return Ok(Reply::No(store_error_text(&e))),
        };
        let code = if copied.uids.is_empty() {
            String::new()
        } else {
            format!("{} ", encode::copyuid(copied.uid_validity, &copied.uids))
        };
        if !remove {
            return self
                .finish(tag, &format!("OK {code}COPY completed"), true)
                .await;
        }
        if !code.is_empty() {
            self.untagged(&format!("OK {code}Moved"));
        }
        let moved: Vec<u32> = copied.uids.iter().map(|(a, _)| *a).collect();
        self.report_expunged(&moved);
        self.finish(tag, "OK MOVE completed", true).await
    }

    /// Teaches the junk filter these messages as spam or ham, after any learning this
    /// session started before (so a quick move in and out ends in the right class).
    fn learn_junk(&mut self, records: Vec<MessageRecord>, spam: bool) {
        if records.is_empty() {
            return;
        }
        let (store, account, peer) = (self.shared.store.clone(), self.account(), self.conn.peer);
        let previous = self.learning.take();
        self.learning = Some(tokio::spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            let result = store
                .call(move |s| {
                    let mut learnt = 0;
                    for record in &records {
                        learnt += junk::learn(s, &account, record, spam)? as usize;
                    }
                    Ok(learnt)
                })
                .await;
            match result {
                Ok(n) => log::debug!("imap {peer}: junk filter learnt {n} messages"),
                Err(e) => log::warn!("imap {peer}: junk filter learning failed: {e}"),
            }
        }));
    }

    /// EXPUNGE (RFC 9051 §6.4.3) and UID EXPUNGE (RFC 4315 §2.1): removes the messages
    /// marked \Deleted (of the set, for UID EXPUNGE).
    pub(super) async fn expunge(
        &mut self,
        tag: &str,
        set: Option<SequenceSet>,
    ) -> io::Result<Reply> {
        let set = set.map(|s| self.uid_ranges(&s));
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
            if let Err(e) = self.expunge_uids(account, id, removed).await? {
                return Ok(Reply::No(store_error_text(&e)));
            }
            self.report_expunged(&uids);
        }
        self.finish(tag, "OK EXPUNGE completed", true).await
    }

    /// CLOSE (RFC 9051 §6.4.1), which silently expunges a writable mailbox, and UNSELECT
    /// (RFC 3691), which does not.
    pub(super) async fn close(&mut self, tag: &str, expunge: bool) -> io::Result<Reply> {
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
                if let Err(e) = self.expunge_uids(account, id, uids).await? {
                    return Ok(Reply::No(store_error_text(&e)));
                }
            }
        }
        let verb = if expunge { "CLOSE" } else { "UNSELECT" };
        self.tagged(tag, &format!("OK {verb} completed"));
        Ok(Reply::Done)
    }

    /// Removes messages in a shared commit; when the store is too full for that, on its
    /// own in batches (see [`crate::store::Store::expunge`]).
    async fn expunge_uids(
        &mut self,
        account: String,
        id: u64,
        uids: Vec<u32>,
    ) -> io::Result<crate::store::Result<usize>> {
        let shared = {
            let (account, uids) = (account.clone(), uids.clone());
            self.write_in_selected(move |w| w.expunge(&account, id, &uids))
                .await?
        };
        Ok(match shared {
            Err(StoreError::Full) => {
                let result = self
                    .blocking(move |s| s.expunge(&account, id, &uids))
                    .await?;
                // Batches may have gone before an error: every session resyncs.
                self.shared.committer.notify();
                result
            }
            other => other,
        })
    }
}
