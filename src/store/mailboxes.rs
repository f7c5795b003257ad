//! Store operations IMAP needs: mailbox management, flag changes, APPEND, COPY and MOVE.
//! Each public function is one write transaction, like the rest of the store.

use super::schema::*;
use super::{Incoming, Result, Store, StoreError};
use heed::{RoTxn, RwTxn};

/// Subscriptions one account may hold (each is a name, with or without a mailbox).
pub const MAX_SUBSCRIPTIONS: usize = 1000;

/// Messages after a flag change: (UID, record).
pub type Flagged = Vec<(u32, MessageRecord)>;

/// How STORE changes flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Replace,
    Add,
    Remove,
}

/// Result of COPY or MOVE: the target's UIDVALIDITY and (source UID, new UID) pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub uid_validity: u32,
    pub uids: Vec<(u32, u32)>,
}

impl Store {
    /// A selectable mailbox (a `\Noselect` name is not found).
    pub(super) fn mailbox_txn(&self, txn: &RwTxn, account: &str, name: &str) -> Result<Mailbox> {
        self.db
            .mailboxes
            .get(txn, &mailbox_key(account, name))?
            .filter(|m| !m.noselect)
            .ok_or_else(|| StoreError::NotFound(format!("mailbox {name}")))
    }

    /// Creates a mailbox (no special use).
    pub fn create_mailbox(&self, account: &str, name: &str) -> Result<Mailbox> {
        self.create_special_mailbox(account, name, None)
    }

    /// Creates a mailbox with a special use (RFC 6154 §3), or none.
    pub fn create_special_mailbox(
        &self,
        account: &str,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Mailbox> {
        validate_name(name)?;
        let mut txn = self.write_txn()?;
        let mailbox = self.create_mailbox_txn(&mut txn, account, name, special_use)?;
        txn.commit()?;
        Ok(mailbox)
    }

    /// Deletes a mailbox and its messages. One with children stays as their `\Noselect`
    /// parent (RFC 3501 §6.3.4); deleting such a parent again while it still has children
    /// is refused. INBOX cannot be deleted.
    pub fn delete_mailbox(&self, account: &str, name: &str) -> Result<()> {
        if name.eq_ignore_ascii_case("INBOX") {
            return Err(StoreError::Invalid("INBOX cannot be deleted".into()));
        }
        let mut txn = self.write_txn()?;
        let key = mailbox_key(account, name);
        let mut mailbox = self
            .db
            .mailboxes
            .get(&txn, &key)?
            .ok_or_else(|| StoreError::NotFound(format!("mailbox {name}")))?;
        let children = mailbox_key(account, &format!("{name}/"));
        let has_children = self
            .db
            .mailboxes
            .prefix_iter(&txn, &children)?
            .next()
            .is_some();
        if has_children && mailbox.noselect {
            return Err(StoreError::Invalid(format!(
                "mailbox {name} is \\Noselect and has children; delete them first"
            )));
        }
        let uids = self.uids_txn(&txn, mailbox.id)?;
        self.expunge_txn(&mut txn, account, mailbox.id, &uids)?;
        self.db.recent.delete(&mut txn, &mailbox.id)?;
        if has_children {
            mailbox.noselect = true;
            mailbox.special_use = None;
            self.db.mailboxes.put(&mut txn, &key, &mailbox)?;
        } else {
            self.db.mailboxes.delete(&mut txn, &key)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Claims the messages of a mailbox up to UID `up_to` as `\Recent` for the calling
    /// session, and returns the UID up to which an earlier session had claimed them: the
    /// caller's recent messages are those above it (RFC 3501 §2.3.2). Callers read
    /// [`Store::recent_claimed`] first and write only when there is something to claim.
    pub(super) fn claim_recent_txn(
        &self,
        txn: &mut RwTxn,
        mailbox_id: u64,
        up_to: u32,
    ) -> Result<u32> {
        let claimed = self.db.recent.get(txn, &mailbox_id)?.unwrap_or(0);
        if up_to > claimed {
            self.db.recent.put(txn, &mailbox_id, &up_to)?;
        }
        Ok(claimed)
    }

    /// The UID up to which sessions have claimed a mailbox's messages as `\Recent`.
    pub fn recent_claimed(&self, mailbox_id: u64) -> Result<u32> {
        let txn = self.read_txn()?;
        Ok(self.db.recent.get(&txn, &mailbox_id)?.unwrap_or(0))
    }

    /// Renames a mailbox and its children. Renaming INBOX moves its messages to a new
    /// mailbox and leaves INBOX empty (RFC 9051 §6.3.6).
    pub fn rename_mailbox(&self, account: &str, from: &str, to: &str) -> Result<()> {
        validate_name(to)?;
        if to.eq_ignore_ascii_case("INBOX") {
            return Err(StoreError::Exists("mailbox INBOX".into()));
        }
        let mut txn = self.write_txn()?;
        // A `\Noselect` parent (kept for its children) is renamed with them, as Dovecot
        // does; INBOX never is one.
        let source = self
            .db
            .mailboxes
            .get(&txn, &mailbox_key(account, from))?
            .ok_or_else(|| StoreError::NotFound(format!("mailbox {from}")))?;
        if self
            .db
            .mailboxes
            .get(&txn, &mailbox_key(account, to))?
            .is_some()
        {
            return Err(StoreError::Exists(format!("mailbox {to}")));
        }
        if from == "INBOX" {
            let target = self.create_mailbox_txn(&mut txn, account, to, None)?;
            let uids = self.uids_txn(&txn, source.id)?;
            self.copy_txn(
                &mut txn,
                account,
                &source,
                &uids,
                target.name.as_str(),
                true,
            )?;
        } else {
            let prefix = mailbox_key(account, &format!("{from}/"));
            let mut moves = vec![(mailbox_key(account, from), source)];
            for item in self.db.mailboxes.prefix_iter(&txn, &prefix)? {
                let (key, mailbox) = item?;
                moves.push((key.to_vec(), mailbox));
            }
            for (key, mut mailbox) in moves {
                self.db.mailboxes.delete(&mut txn, &key)?;
                mailbox.name = format!("{to}{}", &mailbox.name[from.len()..]);
                let new_key = mailbox_key(account, &mailbox.name);
                if self.db.mailboxes.get(&txn, &new_key)?.is_some() {
                    return Err(StoreError::Exists(format!("mailbox {}", mailbox.name)));
                }
                self.db.mailboxes.put(&mut txn, &new_key, &mailbox)?;
                // A subscription follows its mailbox (as Dovecot does).
                if self.db.subscriptions.delete(&mut txn, &key)? {
                    self.db.subscriptions.put(&mut txn, &new_key, &())?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Subscribes to, or unsubscribes from, a mailbox name (RFC 3501 §6.3.6-7). A name
    /// may be subscribed without a mailbox (as Dovecot allows); unsubscribing a name that
    /// is not subscribed is `NotFound`.
    pub fn set_subscribed(&self, account: &str, name: &str, subscribed: bool) -> Result<()> {
        validate_name(name)?;
        let key = mailbox_key(account, name);
        let mut txn = self.write_txn()?;
        if subscribed {
            let prefix = mailbox_key(account, "");
            let count = self.db.subscriptions.prefix_iter(&txn, &prefix)?.count();
            if count >= MAX_SUBSCRIPTIONS && self.db.subscriptions.get(&txn, &key)?.is_none() {
                return Err(StoreError::Invalid(format!(
                    "at most {MAX_SUBSCRIPTIONS} subscriptions per account"
                )));
            }
            self.db.subscriptions.put(&mut txn, &key, &())?;
        } else if !self.db.subscriptions.delete(&mut txn, &key)? {
            return Err(StoreError::NotFound(format!("subscription {name}")));
        }
        txn.commit()?;
        Ok(())
    }

    /// The account's subscribed names, sorted.
    pub fn subscriptions(&self, account: &str) -> Result<Vec<String>> {
        let txn = self.read_txn()?;
        self.subscriptions_txn(&txn, account)
    }

    pub(super) fn subscriptions_txn(&self, txn: &RoTxn, account: &str) -> Result<Vec<String>> {
        let prefix = mailbox_key(account, "");
        let mut names = Vec::new();
        for item in self.db.subscriptions.prefix_iter(txn, &prefix)? {
            let (key, ()) = item?;
            names.push(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
        }
        Ok(names)
    }

    /// Changes flags of the given messages; each changed message gets a new modseq.
    /// Returns the records after the change (changed or not) of the messages that exist.
    pub fn store_flags(
        &self,
        account: &str,
        name: &str,
        uids: &[u32],
        op: FlagOp,
        system: u8,
        keywords: &[String],
    ) -> Result<Vec<(u32, MessageRecord)>> {
        self.store_flags_conditional(account, name, uids, op, system, keywords, None)
            .map(|(updated, _)| updated)
    }

    /// [`Store::store_flags`] with CONDSTORE's UNCHANGEDSINCE: messages whose modseq is
    /// above `unchanged_since` are left alone and returned as the second list.
    #[allow(clippy::too_many_arguments)]
    pub fn store_flags_conditional(
        &self,
        account: &str,
        name: &str,
        uids: &[u32],
        op: FlagOp,
        system: u8,
        keywords: &[String],
        unchanged_since: Option<u64>,
    ) -> Result<(Flagged, Vec<u32>)> {
        let mut txn = self.write_txn()?;
        let flagged = self.store_flags_txn(
            &mut txn,
            account,
            name,
            uids,
            op,
            system,
            keywords,
            unchanged_since,
        )?;
        txn.commit()?;
        Ok(flagged)
    }

    /// [`Store::store_flags_conditional`] inside the caller's transaction.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn store_flags_txn(
        &self,
        txn: &mut RwTxn,
        account: &str,
        name: &str,
        uids: &[u32],
        op: FlagOp,
        system: u8,
        keywords: &[String],
        unchanged_since: Option<u64>,
    ) -> Result<(Flagged, Vec<u32>)> {
        let txn = &mut *txn;
        let mut mailbox = self.mailbox_txn(txn, account, name)?;
        let mut out = Vec::with_capacity(uids.len());
        let mut modified = Vec::new();
        let mut before_counts = super::MailboxCounts::default();
        let mut after_counts = super::MailboxCounts::default();
        for &uid in uids {
            let key = message_key(mailbox.id, uid);
            let Some(mut record) = self.db.messages.get(txn, &key)? else {
                continue;
            };
            if unchanged_since.is_some_and(|limit| record.modseq > limit) {
                modified.push(uid);
                continue;
            }
            let before = (record.flags, record.keywords.clone());
            match op {
                FlagOp::Replace => {
                    record.flags = system;
                    record.keywords = keywords.to_vec();
                }
                FlagOp::Add => {
                    record.flags |= system;
                    for k in keywords {
                        if !record.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                            record.keywords.push(k.clone());
                        }
                    }
                }
                FlagOp::Remove => {
                    record.flags &= !system;
                    record
                        .keywords
                        .retain(|x| !keywords.iter().any(|k| k.eq_ignore_ascii_case(x)));
                }
            }
            if (record.flags, &record.keywords) != (before.0, &before.1) {
                if record.flags != before.0 {
                    let old = MessageRecord {
                        flags: before.0,
                        ..record.clone()
                    };
                    before_counts.apply(&old, 1);
                    after_counts.apply(&record, 1);
                }
                mailbox.highest_modseq += 1;
                record.modseq = mailbox.highest_modseq;
                self.db.messages.put(txn, &key, &record)?;
            }
            out.push((uid, record));
        }
        self.db
            .mailboxes
            .put(txn, &mailbox_key(account, name), &mailbox)?;
        if before_counts != after_counts {
            self.change_counts(txn, mailbox.id, |c| {
                c.add(&after_counts);
                c.sub(&before_counts);
            })?;
        }
        Ok((out, modified))
    }

    /// Appends a message to a mailbox. Returns (UIDVALIDITY, UID).
    pub fn append(
        &self,
        account: &str,
        name: &str,
        message: &mut Incoming,
        system: u8,
        keywords: &[String],
    ) -> Result<(u32, u32)> {
        let mut one = [(message, system, keywords)];
        let (validity, uids) = self.append_all(account, name, &mut one)?;
        Ok((validity, uids[0]))
    }

    /// Appends several messages in one transaction, all or none (IMAP MULTIAPPEND,
    /// RFC 3502): (message, system flags, keywords) each. Returns UIDVALIDITY and the UIDs.
    pub fn append_all(
        &self,
        account: &str,
        name: &str,
        messages: &mut [(&mut Incoming, u8, &[String])],
    ) -> Result<(u32, Vec<u32>)> {
        self.check_room(messages.iter().map(|(m, _, _)| m.size()).sum())?;
        let mut txn = self.write_txn()?;
        let appended = self.append_all_txn(&mut txn, account, name, messages)?;
        txn.commit()?;
        Ok(appended)
    }

    /// [`Store::append_all`] inside the caller's transaction; the caller checked the room.
    pub(super) fn append_all_txn(
        &self,
        txn: &mut RwTxn,
        account: &str,
        name: &str,
        messages: &mut [(&mut Incoming, u8, &[String])],
    ) -> Result<(u32, Vec<u32>)> {
        let mut mailbox = self.mailbox_txn(txn, account, name)?;
        let mut uids = Vec::with_capacity(messages.len());
        for (message, system, keywords) in messages.iter_mut() {
            let size = message.size();
            let blob = self.write_blob(txn, message)?;
            self.db.blob_refs.put(txn, &blob, &1)?;
            let record = MessageRecord {
                blob,
                size,
                internal_date: message.internal_date,
                flags: *system,
                keywords: keywords.to_vec(),
                modseq: 0,
            };
            uids.push(self.place_record(txn, account, &mut mailbox, record)?);
        }
        self.db
            .mailboxes
            .put(txn, &mailbox_key(account, name), &mailbox)?;
        Ok((mailbox.uid_validity, uids))
    }

    /// Copies (or moves) messages to another mailbox of the same account. The bytes are not
    /// copied: each copy takes a reference on the blob.
    pub fn copy_messages(
        &self,
        account: &str,
        from: &str,
        uids: &[u32],
        to: &str,
        remove: bool,
    ) -> Result<Copied> {
        if !remove {
            // A move (to Trash, say) must work when the store is full; a copy adds.
            self.check_room(0)?;
        }
        let mut txn = self.write_txn()?;
        let source = self.mailbox_txn(&txn, account, from)?;
        let copied = self.copy_txn(&mut txn, account, &source, uids, to, remove)?;
        txn.commit()?;
        Ok(copied)
    }

    pub(super) fn copy_txn(
        &self,
        txn: &mut RwTxn,
        account: &str,
        source: &Mailbox,
        uids: &[u32],
        to: &str,
        remove: bool,
    ) -> Result<Copied> {
        let target_key = mailbox_key(account, to);
        let mut target = self
            .db
            .mailboxes
            .get(txn, &target_key)?
            .filter(|m| !m.noselect)
            .ok_or_else(|| StoreError::NotFound(format!("mailbox {to}")))?;
        let mut pairs = Vec::with_capacity(uids.len());
        for &uid in uids {
            let key = message_key(source.id, uid);
            let Some(record) = self.db.messages.get(txn, &key)? else {
                continue;
            };
            if remove {
                self.db.messages.delete(txn, &key)?;
                self.db.save_dates.delete(txn, &key)?;
                // The copy below counts it again.
                self.adjust_usage(txn, account, -(record.size as i64))?;
                self.change_counts(txn, source.id, |c| c.apply(&record, -1))?;
            } else {
                let refs = self.db.blob_refs.get(txn, &record.blob)?.unwrap_or(1);
                self.db.blob_refs.put(txn, &record.blob, &(refs + 1))?;
            }
            let new_uid = self.place_record(txn, account, &mut target, record)?;
            pairs.push((uid, new_uid));
        }
        self.db.mailboxes.put(txn, &target_key, &target)?;
        Ok(Copied {
            uid_validity: target.uid_validity,
            uids: pairs,
        })
    }

    /// Reference count of a blob (tests and diagnostics).
    pub fn blob_refcount(&self, blob: u64) -> Result<u32> {
        let txn = self.read_txn()?;
        Ok(self.db.blob_refs.get(&txn, &blob)?.unwrap_or(0))
    }
}

pub(super) fn validate_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 512
        || name.starts_with('/')
        || name.ends_with('/')
        || name.contains("//")
        || name.chars().any(|c| c.is_control() || c == '*' || c == '%');
    if bad {
        return Err(StoreError::Invalid(format!(
            "{name:?} is not a valid mailbox name"
        )));
    }
    Ok(())
}

/// Schema 9 → 10: the slot of the old subscribed flag becomes `noselect`: cleared.
pub(super) fn clear_noselect(db: &Databases, txn: &mut RwTxn) -> heed::Result<()> {
    let mut changed = Vec::new();
    for item in db.mailboxes.iter(txn)? {
        let (key, mut mailbox) = item?;
        if mailbox.noselect {
            mailbox.noselect = false;
            changed.push((key.to_vec(), mailbox));
        }
    }
    for (key, mailbox) in changed {
        db.mailboxes.put(txn, &key, &mailbox)?;
    }
    Ok(())
}

/// Schema 7 → 8: the subscribed flags of the mailboxes become the subscription list.
pub(super) fn seed_subscriptions(db: &Databases, txn: &mut RwTxn) -> heed::Result<()> {
    let mut keys = Vec::new();
    for item in db.mailboxes.iter(txn)? {
        let (key, mailbox) = item?;
        // Before schema 8 this slot held the subscribed flag.
        if mailbox.noselect {
            keys.push(key.to_vec());
        }
    }
    for key in keys {
        db.subscriptions.put(txn, &key, &())?;
    }
    Ok(())
}

/// Schema 6 → 7: every existing mailbox's messages count as seen by some session.
pub(super) fn seed_recent(db: &Databases, txn: &mut RwTxn) -> heed::Result<()> {
    let mut seeds = Vec::new();
    for item in db.mailboxes.iter(txn)? {
        let (_, mailbox) = item?;
        seeds.push((mailbox.id, mailbox.uid_next.saturating_sub(1)));
    }
    for (id, last) in seeds {
        db.recent.put(txn, &id, &last)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::temp_store;
    use super::super::{flags, Spooled};
    use super::*;

    fn setup() -> super::super::tests::TempStore {
        let t = temp_store();
        t.store.add_domain("example.org").unwrap();
        t.store.add_account("a@example.org", "h").unwrap();
        t
    }

    fn msg(body: &[u8]) -> Incoming {
        Incoming::new(Vec::new(), Spooled::Memory(body.to_vec()), 7)
    }

    const A: &str = "a@example.org";

    #[test]
    fn append_copy_move_and_refcounts() {
        let t = setup();
        let s = &t.store;
        let (_, uid) = s
            .append(
                A,
                "INBOX",
                &mut msg(b"X: 1\r\n\r\nhi\r\n"),
                flags::SEEN,
                &[],
            )
            .unwrap();
        assert_eq!(uid, 1);
        let inbox = s.mailbox(A, "INBOX").unwrap().unwrap();
        let record = s.messages(inbox.id).unwrap()[0].1.clone();
        assert_eq!(record.flags, flags::SEEN);
        assert_eq!(s.read_message(&record).unwrap(), b"X: 1\r\n\r\nhi\r\n");
        let copied = s
            .copy_messages(A, "INBOX", &[1, 99], "Archive", false)
            .unwrap();
        assert_eq!(copied.uids, vec![(1, 1)]);
        assert_eq!(s.blob_refcount(record.blob).unwrap(), 2);
        let moved = s.copy_messages(A, "INBOX", &[1], "Trash", true).unwrap();
        assert_eq!(moved.uids, vec![(1, 1)]);
        assert!(s.messages(inbox.id).unwrap().is_empty());
        assert_eq!(s.blob_refcount(record.blob).unwrap(), 2);
        let trash = s.mailbox(A, "Trash").unwrap().unwrap();
        s.expunge(A, trash.id, &[1]).unwrap();
        assert_eq!(s.blob_refcount(record.blob).unwrap(), 1);
        assert!(s.copy_messages(A, "INBOX", &[1], "Nope", false).is_err());
    }

    #[test]
    fn flags_bump_modseq_only_on_change() {
        let t = setup();
        let s = &t.store;
        s.append(A, "INBOX", &mut msg(b"a\r\n"), 0, &[]).unwrap();
        let before = s.mailbox(A, "INBOX").unwrap().unwrap().highest_modseq;
        let out = s
            .store_flags(
                A,
                "INBOX",
                &[1],
                FlagOp::Add,
                flags::FLAGGED,
                &["$Work".into()],
            )
            .unwrap();
        assert_eq!(out[0].1.flags, flags::FLAGGED);
        assert_eq!(out[0].1.modseq, before + 1);
        let again = s
            .store_flags(
                A,
                "INBOX",
                &[1],
                FlagOp::Add,
                flags::FLAGGED,
                &["$work".into()],
            )
            .unwrap();
        assert_eq!(again[0].1.modseq, before + 1);
        assert_eq!(again[0].1.keywords, vec!["$Work".to_string()]);
        let removed = s
            .store_flags(A, "INBOX", &[1], FlagOp::Remove, 0, &["$WORK".into()])
            .unwrap();
        assert!(removed[0].1.keywords.is_empty());
        let replaced = s
            .store_flags(A, "INBOX", &[1], FlagOp::Replace, flags::SEEN, &[])
            .unwrap();
        assert_eq!(replaced[0].1.flags, flags::SEEN);
        let modseq = replaced[0].1.modseq;
        let (updated, modified) = s
            .store_flags_conditional(
                A,
                "INBOX",
                &[1],
                FlagOp::Add,
                flags::DRAFT,
                &[],
                Some(modseq - 1),
            )
            .unwrap();
        assert!(updated.is_empty());
        assert_eq!(modified, vec![1]);
        let (updated, modified) = s
            .store_flags_conditional(
                A,
                "INBOX",
                &[1],
                FlagOp::Add,
                flags::DRAFT,
                &[],
                Some(modseq),
            )
            .unwrap();
        assert_eq!(updated[0].1.flags, flags::SEEN | flags::DRAFT);
        assert!(modified.is_empty());
    }

    #[test]
    fn create_rename_delete() {
        let t = setup();
        let s = &t.store;
        s.create_mailbox(A, "Work").unwrap();
        s.create_mailbox(A, "Work/2026").unwrap();
        assert!(matches!(
            s.create_mailbox(A, "Work"),
            Err(StoreError::Exists(_))
        ));
        assert!(s.create_mailbox(A, "bad/").is_err());
        s.rename_mailbox(A, "Work", "Job").unwrap();
        assert!(s.mailbox(A, "Job/2026").unwrap().is_some());
        assert!(s.mailbox(A, "Work").unwrap().is_none());
        s.delete_mailbox(A, "Job/2026").unwrap();
        s.delete_mailbox(A, "Job").unwrap();
        assert!(s.delete_mailbox(A, "INBOX").is_err());
        s.set_subscribed(A, "Sent", false).unwrap();
        assert!(
            s.set_subscribed(A, "Sent", false).is_err(),
            "not subscribed any more"
        );
        s.set_subscribed(A, "Gone/Later", true).unwrap();
        let names = s.subscriptions(A).unwrap();
        assert_eq!(
            names,
            ["Archive", "Drafts", "Gone/Later", "INBOX", "Junk", "Trash"]
        );
    }

    #[test]
    fn rename_inbox_moves_messages() {
        let t = setup();
        let s = &t.store;
        s.append(A, "INBOX", &mut msg(b"one\r\n"), 0, &[]).unwrap();
        s.append(A, "INBOX", &mut msg(b"two\r\n"), 0, &[]).unwrap();
        s.rename_mailbox(A, "INBOX", "Old").unwrap();
        let inbox = s.mailbox(A, "INBOX").unwrap().unwrap();
        let old = s.mailbox(A, "Old").unwrap().unwrap();
        assert!(s.messages(inbox.id).unwrap().is_empty());
        assert_eq!(s.messages(old.id).unwrap().len(), 2);
        assert_eq!(inbox.uid_next, 3);
    }
}
