//! Imports and migrations: batches of messages appended together with the mark that says
//! how far the source was read, in one transaction. A killed import therefore resumes
//! exactly after the last batch that committed: nothing twice, nothing lost.

use super::schema::*;
use super::{Incoming, Result, Store};
use heed::RwTxn;

/// The mailbox a batch of imported messages goes to.
#[derive(Debug, Clone, Copy)]
pub struct ImportTarget<'a> {
    pub account: &'a str,
    pub mailbox: &'a str,
    /// Given to the mailbox if the batch creates it.
    pub special_use: Option<SpecialUse>,
}

fn import_key(account: &str, source: &str) -> Vec<u8> {
    mailbox_key(account, source)
}

impl Store {
    /// How far the import of `source` into `account` got, if it ever started.
    pub fn import_mark(&self, account: &str, source: &str) -> Result<Option<ImportMark>> {
        let txn = self.read_txn()?;
        Ok(self.db.imports.get(&txn, &import_key(account, source))?)
    }

    /// Appends `messages` (message, system flags, keywords) to the target mailbox,
    /// created when missing (with its special use then), and records `mark`
    /// for `source`, all in one transaction. `senders` are the messages' envelope
    /// senders, if the source said (empty strings, or a short list, for none). Returns
    /// the UIDs.
    pub fn import_batch(
        &self,
        target: &ImportTarget,
        messages: &mut [(&mut Incoming, u8, &[String])],
        senders: &[&str],
        source: &str,
        mark: &ImportMark,
    ) -> Result<Vec<u32>> {
        let ImportTarget {
            account,
            mailbox: name,
            special_use,
        } = *target;
        self.check_room(messages.iter().map(|(m, _, _)| m.size()).sum())?;
        let mut txn = self.write_txn()?;
        // Missing, or kept only as a `\Noselect` parent: made (again) a real mailbox.
        let existing = self.db.mailboxes.get(&txn, &mailbox_key(account, name))?;
        if existing.is_none_or(|m| m.noselect) {
            super::mailboxes::validate_name(name)?;
            self.create_mailbox_txn(&mut txn, account, name, special_use)?;
        }
        let (_, uids) = if messages.is_empty() {
            (0, Vec::new())
        } else {
            self.append_all_txn(&mut txn, account, name, messages)?
        };
        if senders.iter().any(|s| !s.is_empty()) {
            let id = self.mailbox_txn(&txn, account, name)?.id;
            for (uid, sender) in uids.iter().zip(senders) {
                if sender.is_empty() {
                    continue;
                }
                if let Some(record) = self.db.messages.get(&txn, &message_key(id, *uid))? {
                    self.db.senders.put(&mut txn, &record.blob, sender)?;
                }
            }
        }
        self.db
            .imports
            .put(&mut txn, &import_key(account, source), mark)?;
        txn.commit()?;
        Ok(uids)
    }

    /// The envelope sender an import recorded for a blob.
    pub fn import_sender(&self, blob: u64) -> Result<Option<String>> {
        let txn = self.read_txn()?;
        Ok(self.db.senders.get(&txn, &blob)?.map(str::to_string))
    }

    /// Forgets the marks of `account` whose source starts with `prefix`; returns how many.
    pub fn forget_imports(&self, account: &str, prefix: &str) -> Result<usize> {
        let mut txn = self.write_txn()?;
        let keys: Vec<Vec<u8>> = self
            .db
            .imports
            .prefix_iter(&txn, &import_key(account, prefix))?
            .map(|item| item.map(|(key, _)| key.to_vec()))
            .collect::<heed::Result<_>>()?;
        for key in &keys {
            self.db.imports.delete(&mut txn, key)?;
        }
        txn.commit()?;
        Ok(keys.len())
    }

    /// Forgets every import mark of `account` (with the account itself).
    pub(super) fn imports_forget_account(&self, txn: &mut RwTxn, account: &str) -> Result<()> {
        let keys: Vec<Vec<u8>> = self
            .db
            .imports
            .prefix_iter(txn, &mailbox_prefix(account))?
            .map(|item| item.map(|(key, _)| key.to_vec()))
            .collect::<heed::Result<_>>()?;
        for key in keys {
            self.db.imports.delete(txn, &key)?;
        }
        Ok(())
    }
}
