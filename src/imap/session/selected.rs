//! The selected mailbox's snapshot (RFC 9051 §7.4): which messages the client knows, by
//! sequence number, with their flags, and what it still has to be told. `refresh` takes
//! the mailbox as it is now and returns the EXPUNGE/VANISHED, FETCH FLAGS and EXISTS
//! responses; expunges wait for a command that allows them.

use super::context::Context;
use crate::imap::encode;
use crate::store::{MailboxMark, MessageRecord};

/// The selected mailbox as this session knows it: a snapshot of its messages, brought
/// up to date by [`Session::sync`](super::Session) and told to the client by `refresh`.
pub(super) struct Selected {
    pub(super) name: String,
    pub(super) id: u64,
    pub(super) read_only: bool,
    /// At least the mailbox's UIDNEXT: bounds the UIDs VANISHED (EARLIER) may name.
    pub(super) uid_next: u32,
    /// In UID order; `gone` marks messages expunged elsewhere but not yet reported.
    pub(super) messages: Vec<Msg>,
    /// SEARCHRES (RFC 5182): the UIDs `$` stands for.
    pub(super) saved: Vec<u32>,
    /// The keywords announced in FLAGS so far (RFC 3501 §7.2.6): each one a client may
    /// see on a message has been announced first.
    pub(super) keywords: Vec<String>,
    /// The same, lower-cased, for lookups.
    pub(super) known_keywords: std::collections::HashSet<String>,
    /// The UIDs that are `\Recent` in this session (sorted; empty for IMAP4rev2).
    pub(super) recent: Vec<u32>,
    /// Live search contexts (RFC 5267 §4): SEARCH/SORT RETURN (UPDATE).
    pub(super) contexts: Vec<Context>,
    /// The snapshot changed since the contexts were last brought up to date.
    pub(super) dirty: bool,
    /// Flag changes were left out of a sync and are still to be told.
    pub(super) flags_pending: bool,
    /// Just below the lowest modseq of a change left out: the highest modseq a search
    /// context may count as seen until the change is taken in.
    pub(super) deferred_below: Option<u64>,
    /// `\Recent` claimed by this session's APPEND into it, (claimed before, up to UID),
    /// for the sync that takes those messages in.
    pub(super) preclaimed: Vec<(u32, u32)>,
    /// The mailbox's mark when its records were last read (or when this session's own
    /// change was taken in): unchanged, there is nothing to read.
    pub(super) mark: Option<MailboxMark>,
}

impl Selected {
    /// A fresh snapshot of a mailbox just selected.
    pub(super) fn new(
        name: String,
        id: u64,
        read_only: bool,
        uid_next: u32,
        messages: Vec<(u32, MessageRecord)>,
        keywords: Vec<String>,
        recent: Vec<u32>,
    ) -> Selected {
        Selected {
            name,
            id,
            read_only,
            uid_next,
            messages: messages
                .into_iter()
                .map(|(uid, record)| Msg {
                    uid,
                    record,
                    gone: false,
                })
                .collect(),
            saved: Vec::new(),
            known_keywords: keywords.iter().map(|k| k.to_ascii_lowercase()).collect(),
            keywords,
            recent,
            contexts: Vec::new(),
            dirty: false,
            flags_pending: false,
            deferred_below: None,
            preclaimed: Vec::new(),
            mark: None,
        }
    }

    pub(super) fn is_recent(&self, uid: u32) -> bool {
        self.recent.binary_search(&uid).is_ok()
    }
}

pub(super) struct Msg {
    pub(super) uid: u32,
    pub(super) record: MessageRecord,
    pub(super) gone: bool,
}

impl Selected {
    /// Takes the mailbox as it is now (`fresh`) into the snapshot and returns what tells
    /// the client: expunges (only when allowed, RFC 3501 §7.4.1), flag changes (with
    /// MODSEQ once CONDSTORE is on) and the new message count.
    pub(super) fn refresh(&mut self, fresh: Vec<(u32, MessageRecord)>, tell: Tell) -> String {
        let Tell {
            expunges: allow_expunge,
            flags,
            modseq: condstore,
            vanished: qresync,
            uids,
        } = tell;
        if flags {
            // What was left out is taken in below; contexts saw at most `deferred_below`.
            self.flags_pending = false;
            self.deferred_below = None;
        }
        let mut out = String::new();
        let present = |uid: u32| fresh.binary_search_by_key(&uid, |(u, _)| *u);
        for m in self.messages.iter_mut() {
            if !m.gone && present(m.uid).is_err() {
                m.gone = true;
                self.dirty = true;
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
                if !flags {
                    self.flags_pending = true;
                    // Contexts must look at it again once it is taken in.
                    let below = record.modseq.saturating_sub(1);
                    self.deferred_below = Some(self.deferred_below.map_or(below, |d| d.min(below)));
                    continue;
                }
                self.dirty = true;
                m.record = record.clone();
                let modseq = condstore.then_some(record.modseq);
                let (flags, keywords) = (record.flags, &record.keywords);
                let recent = self.recent.binary_search(&m.uid).is_ok();
                out.push_str(&encode::fetch_flags(
                    i + 1,
                    uids.then_some(m.uid),
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
            self.dirty = true;
            out.push_str(&encode::exists(self.messages.len()));
        }
        out
    }

    /// Drops `uids` from the snapshot and returns what tells the client: EXPUNGE per
    /// message (highest sequence number first, so each number is still valid when read),
    /// or one VANISHED once QRESYNC is enabled (RFC 7162 §3.2.10).
    pub(super) fn expunge(&mut self, uids: &[u32], qresync: bool) -> String {
        let mut sorted = uids.to_vec();
        sorted.sort_unstable();
        self.recent.retain(|u| sorted.binary_search(u).is_err());
        // Contexts lose them first, while their sequence numbers still hold.
        let mut out = String::new();
        let present: Vec<u32> = self.messages.iter().map(|m| m.uid).collect();
        let seq = |u: u32| present.binary_search(&u).map_or(0, |i| i as u32 + 1);
        for context in self.contexts.iter_mut() {
            out.extend(context.expunged(&sorted, &seq));
        }
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

/// What [`Selected::refresh`] tells the client besides new messages.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tell {
    /// Expunges (only when allowed, RFC 3501 §7.4.1); otherwise they wait, marked `gone`.
    pub(super) expunges: bool,
    /// Flag changes; otherwise they wait (`flags_pending`).
    pub(super) flags: bool,
    /// MODSEQ in flag FETCHes (CONDSTORE).
    pub(super) modseq: bool,
    /// VANISHED instead of EXPUNGE (QRESYNC).
    pub(super) vanished: bool,
    /// The UID in flag FETCHes: with QRESYNC (RFC 7162 §3.2.4) or NOTIFY's FlagChange
    /// (RFC 5465 §5.1); Dovecot leaves it out otherwise.
    pub(super) uids: bool,
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
        let messages = uids.iter().map(|&uid| (uid, record(0, 1))).collect();
        let uid_next = uids.last().map_or(1, |u| u + 1);
        Selected::new(
            "INBOX".into(),
            1,
            false,
            uid_next,
            messages,
            Vec::new(),
            Vec::new(),
        )
    }

    /// Expunges, flags, MODSEQ, VANISHED, UIDs in flag FETCHes.
    fn tell(expunges: bool, flags: bool, modseq: bool, vanished: bool, uids: bool) -> Tell {
        Tell {
            expunges,
            flags,
            modseq,
            vanished,
            uids,
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
            sel.refresh(fresh.clone(), tell(false, true, true, false, false)),
            "* 3 FETCH (FLAGS (\\Seen) MODSEQ (4))\r\n* 4 EXISTS\r\n"
        );
        assert_eq!(uids(&sel), [1, 2, 3, 4]);
        assert!(sel.messages[1].gone);
        assert_eq!(sel.uid_next, 5);
        // Then they are reported, with nothing else changed.
        assert_eq!(
            sel.refresh(fresh, tell(true, true, true, false, false)),
            "* 2 EXPUNGE\r\n"
        );
        assert_eq!(uids(&sel), [1, 3, 4]);
        let fresh = vec![(1, record(flags::DELETED, 6))];
        assert_eq!(
            sel.refresh(fresh, tell(true, true, false, true, true)),
            "* VANISHED 3:4\r\n* 1 FETCH (UID 1 FLAGS (\\Deleted))\r\n"
        );
    }

    #[test]
    fn flag_changes_can_wait_for_a_later_sync() {
        let mut sel = snapshot(&[1, 2]);
        let fresh = vec![(1, record(flags::FLAGGED, 3)), (2, record(0, 1))];
        assert_eq!(
            sel.refresh(fresh.clone(), tell(true, false, false, false, false)),
            ""
        );
        assert!(sel.flags_pending);
        assert_eq!(
            sel.refresh(fresh, tell(true, true, false, false, false)),
            "* 1 FETCH (FLAGS (\\Flagged))\r\n"
        );
        assert!(!sel.flags_pending);
    }
}
