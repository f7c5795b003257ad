//! Per-mailbox counters (schema 11): messages, unseen and `\Deleted` ones, and their
//! bytes, changed in the same transaction as every record that is added, removed or
//! reflagged. STATUS then reads one record instead of every message of the mailbox.

use super::schema::*;
use super::{Result, Store};
use heed::{RoTxn, RwTxn};

/// An account's mailboxes with their counters, and its subscribed names.
pub type AccountMailboxes = (Vec<(Mailbox, MailboxCounts)>, Vec<String>);

/// What moves whenever a mailbox's messages change: a new message moves UIDNEXT, a flag
/// HIGHESTMODSEQ, an expunge the count; a mailbox made anew has another id. An IMAP
/// session compares it before reading a mailbox's records again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxMark {
    pub id: u64,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
    pub messages: u64,
}

/// What a mailbox holds, for STATUS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MailboxCounts {
    pub messages: u64,
    pub unseen: u64,
    pub deleted: u64,
    /// Bytes of all messages (STATUS SIZE).
    pub size: u64,
    /// Bytes of the `\Deleted` ones (STATUS DELETED-STORAGE).
    pub deleted_size: u64,
}

impl MailboxCounts {
    /// Counts `record` in (`sign` 1) or out (-1).
    pub fn apply(&mut self, record: &MessageRecord, sign: i64) {
        let add = |n: &mut u64, by: u64| {
            *n = if sign > 0 {
                n.saturating_add(by)
            } else {
                n.saturating_sub(by)
            };
        };
        add(&mut self.messages, 1);
        add(&mut self.size, record.size);
        if record.flags & flags::SEEN == 0 {
            add(&mut self.unseen, 1);
        }
        if record.flags & flags::DELETED != 0 {
            add(&mut self.deleted, 1);
            add(&mut self.deleted_size, record.size);
        }
    }
}

impl MailboxCounts {
    /// Adds another set of counters.
    pub fn add(&mut self, other: &MailboxCounts) {
        self.messages += other.messages;
        self.unseen += other.unseen;
        self.deleted += other.deleted;
        self.size += other.size;
        self.deleted_size += other.deleted_size;
    }

    /// Takes another set of counters away (never below zero).
    pub fn sub(&mut self, other: &MailboxCounts) {
        self.messages = self.messages.saturating_sub(other.messages);
        self.unseen = self.unseen.saturating_sub(other.unseen);
        self.deleted = self.deleted.saturating_sub(other.deleted);
        self.size = self.size.saturating_sub(other.size);
        self.deleted_size = self.deleted_size.saturating_sub(other.deleted_size);
    }
}

impl Store {
    /// An account's mailboxes with their counters, and its subscriptions, read in one
    /// transaction (what NOTIFY compares).
    pub fn mailboxes_with_counts(&self, account: &str) -> Result<AccountMailboxes> {
        let txn = self.read_txn()?;
        let mut mailboxes = Vec::new();
        for mailbox in self.mailboxes_txn(&txn, account)? {
            let counts = self.db.counts.get(&txn, &mailbox.id)?.unwrap_or_default();
            mailboxes.push((mailbox, counts));
        }
        Ok((mailboxes, self.subscriptions_txn(&txn, account)?))
    }

    /// The [`MailboxMark`] of a selectable mailbox: two point lookups.
    pub fn mailbox_mark(&self, account: &str, name: &str) -> Result<Option<MailboxMark>> {
        let txn = self.read_txn()?;
        self.mark_txn(&txn, account, name)
    }

    pub(super) fn mark_txn(
        &self,
        txn: &RoTxn,
        account: &str,
        name: &str,
    ) -> Result<Option<MailboxMark>> {
        let Some(mailbox) = self
            .db
            .mailboxes
            .get(txn, &mailbox_key(account, name))?
            .filter(|m| !m.noselect)
        else {
            return Ok(None);
        };
        let counts = self.db.counts.get(txn, &mailbox.id)?.unwrap_or_default();
        Ok(Some(MailboxMark {
            id: mailbox.id,
            uid_validity: mailbox.uid_validity,
            uid_next: mailbox.uid_next,
            highest_modseq: mailbox.highest_modseq,
            messages: counts.messages,
        }))
    }

    /// The counters of a mailbox (all zero for one without messages).
    pub fn mailbox_counts(&self, mailbox_id: u64) -> Result<MailboxCounts> {
        let txn = self.read_txn()?;
        Ok(self.db.counts.get(&txn, &mailbox_id)?.unwrap_or_default())
    }

    /// How many messages of a mailbox have a UID above `uid` (STATUS RECENT): a walk over
    /// those keys only.
    pub fn count_above(&self, mailbox_id: u64, uid: u32) -> Result<u64> {
        let txn = self.read_txn()?;
        let start = message_key(mailbox_id, uid.saturating_add(1));
        let end = message_key(mailbox_id, u32::MAX);
        let range = (
            std::ops::Bound::Included(start.as_slice()),
            std::ops::Bound::Included(end.as_slice()),
        );
        let mut n = 0;
        for item in self.db.messages.lazily_decode_data().range(&txn, &range)? {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// Applies `change` to a mailbox's counters inside `txn`.
    pub(super) fn change_counts(
        &self,
        txn: &mut RwTxn,
        mailbox_id: u64,
        change: impl FnOnce(&mut MailboxCounts),
    ) -> Result<()> {
        let mut counts = self.db.counts.get(txn, &mailbox_id)?.unwrap_or_default();
        change(&mut counts);
        if counts == MailboxCounts::default() {
            self.db.counts.delete(txn, &mailbox_id)?;
        } else {
            self.db.counts.put(txn, &mailbox_id, &counts)?;
        }
        Ok(())
    }
}

/// The counters of one mailbox from its records (the schema 10 → 11 upgrade, and tests).
pub(super) fn count_mailbox(db: &Databases, txn: &RoTxn, mailbox_id: u64) -> Result<MailboxCounts> {
    let mut counts = MailboxCounts::default();
    for item in db.messages.prefix_iter(txn, &mailbox_id.to_be_bytes())? {
        counts.apply(&item?.1, 1);
    }
    Ok(counts)
}

/// Schema 10 → 11: every mailbox's counters, from its records.
pub(super) fn compute_counts(db: &Databases, txn: &mut RwTxn) -> Result<()> {
    let mut ids = Vec::new();
    for item in db.mailboxes.iter(txn)? {
        ids.push(item?.1.id);
    }
    for id in ids {
        let counts = count_mailbox(db, txn, id)?;
        if counts != MailboxCounts::default() {
            db.counts.put(txn, &id, &counts)?;
        }
    }
    Ok(())
}
