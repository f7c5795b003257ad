//! `letterbox verify`: the store's invariants, checked in one read transaction. Every
//! message record and queue entry points at a blob whose chunks add up to its size, each
//! blob's reference count is the number of records and queue entries that hold it, UIDs
//! stay below UIDNEXT and modseqs at or below HIGHESTMODSEQ, the counters (per mailbox,
//! per account) match the records, and the id counters are ahead of every id in use.

use super::counts::count_mailbox;
use super::schema::*;
use super::{read_u64, Result, Store, SCHEMA_VERSION};
use std::collections::HashMap;

/// What a check found.
#[derive(Debug, Default)]
pub struct Verdict {
    pub schema: u32,
    pub accounts: u64,
    pub mailboxes: u64,
    pub messages: u64,
    pub blobs: u64,
    pub queued: u64,
    /// One line per broken invariant (at most [`MAX_PROBLEMS`] are kept).
    pub problems: Vec<String>,
    /// Problems beyond those kept.
    pub more: u64,
}

/// Problems listed before the rest are only counted.
pub const MAX_PROBLEMS: usize = 50;

impl Verdict {
    fn problem(&mut self, what: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(what);
        } else {
            self.more += 1;
        }
    }
}

impl Store {
    /// Checks the invariants listed in the module doc.
    pub fn verify(&self) -> Result<Verdict> {
        let txn = self.read_txn()?;
        let db = &self.db;
        let mut v = Verdict {
            schema: read_u64(db, &txn, META_SCHEMA_VERSION)?.unwrap_or(0) as u32,
            ..Verdict::default()
        };
        if v.schema != SCHEMA_VERSION {
            v.problem(format!(
                "schema version {} (this letterbox writes {SCHEMA_VERSION})",
                v.schema
            ));
        }
        // References each blob should have, from records and queue entries.
        let mut refs: HashMap<u64, (u32, u64)> = HashMap::new();
        let mut hold = |v: &mut Verdict, blob: u64, size: u64, who: &str| {
            let entry = refs.entry(blob).or_insert((0, size));
            entry.0 += 1;
            if entry.1 != size {
                v.problem(format!(
                    "{who}: blob {blob} has size {size} here and {} elsewhere",
                    entry.1
                ));
            }
        };
        let mut max_mailbox = 0;
        let mut usage: HashMap<String, u64> = HashMap::new();
        for item in db.mailboxes.iter(&txn)? {
            let (key, mailbox) = item?;
            v.mailboxes += 1;
            max_mailbox = max_mailbox.max(mailbox.id);
            let account = key
                .split(|&b| b == 0)
                .next()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .unwrap_or_default();
            if db.accounts.get(&txn, &account)?.is_none() {
                v.problem(format!(
                    "mailbox {:?} belongs to no account ({account})",
                    mailbox.name
                ));
            }
            let name = format!("{account} {}", mailbox.name);
            for item in db.messages.prefix_iter(&txn, &mailbox.id.to_be_bytes())? {
                let (key, record) = item?;
                v.messages += 1;
                if key.len() != 12 {
                    v.problem(format!("{name}: a message key of {} bytes", key.len()));
                    continue;
                }
                let uid = uid_of_message_key(key);
                if uid == 0 || uid >= mailbox.uid_next {
                    v.problem(format!(
                        "{name}: UID {uid} is not below UIDNEXT {}",
                        mailbox.uid_next
                    ));
                }
                if record.modseq > mailbox.highest_modseq {
                    v.problem(format!(
                        "{name}: UID {uid} has modseq {} above HIGHESTMODSEQ {}",
                        record.modseq, mailbox.highest_modseq
                    ));
                }
                hold(
                    &mut v,
                    record.blob,
                    record.size,
                    &format!("{name} UID {uid}"),
                );
                *usage.entry(account.clone()).or_default() += record.size;
            }
            let counted = count_mailbox(db, &txn, mailbox.id)?;
            let stored = db.counts.get(&txn, &mailbox.id)?.unwrap_or_default();
            if counted != stored {
                v.problem(format!(
                    "{name}: counters say {stored:?}, the records {counted:?}"
                ));
            }
        }
        for item in db.accounts.iter(&txn)? {
            let (address, _) = item?;
            v.accounts += 1;
            let stored = db.usage.get(&txn, address)?.unwrap_or(0);
            let counted = usage.get(address).copied().unwrap_or(0);
            if stored != counted {
                v.problem(format!(
                    "{address}: usage says {stored} bytes, the records {counted}"
                ));
            }
        }
        let mut max_queue = 0;
        for item in db.queue.iter(&txn)? {
            let (id, queued) = item?;
            v.queued += 1;
            max_queue = max_queue.max(id);
            if queued.recipients.is_empty() {
                v.problem(format!("queue entry {id} has no recipients"));
            }
            hold(
                &mut v,
                queued.blob,
                queued.size,
                &format!("queue entry {id}"),
            );
        }
        let mut max_blob = 0;
        for item in db.blob_refs.iter(&txn)? {
            let (blob, count) = item?;
            v.blobs += 1;
            max_blob = max_blob.max(blob);
            match refs.remove(&blob) {
                None => v.problem(format!(
                    "blob {blob} has {count} references but nothing holds it"
                )),
                Some((held, size)) => {
                    if held != count {
                        v.problem(format!(
                            "blob {blob}: reference count {count}, held {held} times"
                        ));
                    }
                    let stored = blob_size(self, &txn, blob)?;
                    if stored != size {
                        v.problem(format!(
                            "blob {blob}: {stored} bytes stored, {size} recorded"
                        ));
                    }
                }
            }
        }
        let mut missing: Vec<u64> = refs.into_keys().collect();
        missing.sort_unstable();
        for blob in missing {
            v.problem(format!("blob {blob} is used but has no reference count"));
        }
        for (counter, max, what) in [
            (META_NEXT_MAILBOX_ID, max_mailbox, "mailbox"),
            (META_NEXT_BLOB_ID, max_blob, "blob"),
            (META_NEXT_QUEUE_ID, max_queue, "queue"),
        ] {
            let next = read_u64(db, &txn, counter)?.unwrap_or(1);
            if max > 0 && next <= max {
                v.problem(format!(
                    "the next {what} id {next} is not above the highest in use, {max}"
                ));
            }
        }
        Ok(v)
    }
}

/// Bytes in a blob's chunks, which must be consecutive from 0.
fn blob_size(store: &Store, txn: &heed::RoTxn, blob: u64) -> Result<u64> {
    let mut size = 0u64;
    for (expected, item) in store
        .db
        .blobs
        .prefix_iter(txn, &blob.to_be_bytes())?
        .enumerate()
    {
        let (key, chunk) = item?;
        if key.len() != 12 || uid_of_message_key(key) as usize != expected {
            break;
        }
        size += chunk.len() as u64;
    }
    Ok(size)
}
