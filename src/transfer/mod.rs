//! Moving mail in and out of the store in open formats: `letterbox import` and `export`
//! (mbox, Maildir) and, for `letterbox migrate`, the batches another IMAP server's mail
//! is stored in.
//!
//! Everything streams: a message is read into a spool (memory up to 128 KiB, then an
//! unlinked file), a batch of at most [`BATCH_MESSAGES`] messages or [`BATCH_BYTES`]
//! bytes is committed in one transaction together with the source's [`ImportMark`], and
//! its memory is freed. An import that is killed resumes after its last batch: the mark
//! and the messages it counts commit together, so nothing comes twice or goes missing.

pub mod export;
pub mod import;

use crate::store::{ImportMark, ImportTarget, Incoming, SpecialUse, SpoolWriter, Spooled, Store};

/// Messages per transaction.
pub const BATCH_MESSAGES: usize = 128;
/// Bytes per transaction (beyond one message).
pub const BATCH_BYTES: u64 = 4 << 20;

/// One message on its way into a mailbox.
pub struct Pending {
    pub message: Incoming,
    /// The envelope sender, when the source names one (mbox).
    pub sender: String,
    pub flags: u8,
    pub keywords: Vec<String>,
}

/// Messages gathered for one mailbox, committed in batches with their source's mark.
pub struct Batch<'a> {
    store: &'a Store,
    account: String,
    mailbox: String,
    special_use: Option<SpecialUse>,
    source: String,
    pending: Vec<Pending>,
    bytes: u64,
    /// Messages committed by this batch so far.
    pub committed: u64,
}

impl<'a> Batch<'a> {
    pub fn new(
        store: &'a Store,
        account: &str,
        mailbox: &str,
        special_use: Option<SpecialUse>,
        source: &str,
    ) -> Batch<'a> {
        Batch {
            store,
            account: account.to_string(),
            mailbox: mailbox.to_string(),
            special_use,
            source: source.to_string(),
            pending: Vec::new(),
            bytes: 0,
            committed: 0,
        }
    }

    /// The mark the last run left for this source.
    pub fn mark(&self) -> Result<Option<ImportMark>, String> {
        self.store
            .import_mark(&self.account, &self.source)
            .map_err(|e| e.to_string())
    }

    /// Whether the batch should be committed before another message joins it.
    pub fn full(&self) -> bool {
        self.pending.len() >= BATCH_MESSAGES || self.bytes >= BATCH_BYTES
    }

    pub fn push(&mut self, mut message: Pending) {
        // Only what IMAP can show as a flag atom (RFC 3501 §9 atom, no `]`), each once.
        let mut keywords: Vec<String> = Vec::new();
        for k in message.keywords.drain(..) {
            let valid = !k.is_empty()
                && k.len() <= 255
                && !k.starts_with('\\')
                && k.bytes()
                    .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b));
            if valid && !keywords.iter().any(|x| x.eq_ignore_ascii_case(&k)) {
                keywords.push(k);
            }
        }
        message.keywords = keywords;
        message.message.describe();
        self.bytes += message.message.size();
        self.pending.push(message);
    }

    /// Adds a message whose source position `mark` already holds: counts it, and commits
    /// the batch when it is full.
    pub fn add(
        &mut self,
        message: Pending,
        mark: &mut ImportMark,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), String> {
        mark.count += 1;
        self.push(message);
        progress(1);
        if self.full() {
            self.commit(mark)?;
        }
        Ok(())
    }

    /// Commits the pending messages with `mark` (also when there are none: the mailbox
    /// is created and the mark kept).
    pub fn commit(&mut self, mark: &ImportMark) -> Result<(), String> {
        let senders: Vec<String> = self.pending.iter().map(|p| p.sender.clone()).collect();
        let senders: Vec<&str> = senders.iter().map(String::as_str).collect();
        let mut list: Vec<(&mut Incoming, u8, &[String])> = self
            .pending
            .iter_mut()
            .map(|p| (&mut p.message, p.flags, &p.keywords[..]))
            .collect();
        self.store
            .import_batch(
                &ImportTarget {
                    account: &self.account,
                    mailbox: &self.mailbox,
                    special_use: self.special_use,
                },
                &mut list,
                &senders,
                &self.source,
                mark,
            )
            .map_err(|e| format!("storing into {}: {e}", self.mailbox))?;
        self.committed += self.pending.len() as u64;
        self.pending.clear();
        self.bytes = 0;
        Ok(())
    }
}

/// A spool for one message's bytes, which also keeps its first 64 KiB (the header).
pub struct Collector {
    spool: SpoolWriter,
    pub head: Vec<u8>,
}

const HEAD: usize = 64 * 1024;

impl Collector {
    pub fn new(store: &Store) -> Collector {
        Collector {
            spool: SpoolWriter::new(store.spool_dir()),
            head: Vec::new(),
        }
    }

    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.head.len() < HEAD {
            let take = (HEAD - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
        }
        self.spool.write(bytes)
    }

    pub fn finish(self) -> (Spooled, Vec<u8>) {
        (self.spool.finish(), self.head)
    }
}

/// The Date: header's time, from a message's first bytes.
pub fn header_date(head: &[u8]) -> Option<i64> {
    crate::mail::sortkeys::sort_keys(crate::mail::header_of(head)).sent
}

/// Where a folder of another server (or of an imported tree) goes among `ours` (the
/// account's mailboxes and their special uses): a special use (`said`, or one its
/// well-known name suggests at the top level) leads to our mailbox of that use, so there
/// is never a second Sent; anything else keeps its name.
pub fn place(
    ours: &[(String, Option<SpecialUse>)],
    name: &str,
    said: Option<SpecialUse>,
) -> (String, Option<SpecialUse>) {
    let special = said.or_else(|| {
        if name.contains('/') {
            None
        } else {
            special_use_of(name)
        }
    });
    match special.and_then(|u| ours.iter().find(|(_, s)| *s == Some(u))) {
        Some((ours, _)) => (ours.clone(), special),
        // Ours has none of that use (deleted): the folder keeps its name and takes it.
        None => (name.to_string(), special),
    }
}

/// The account's mailboxes and their special uses, for [`place`].
pub fn ours(store: &Store, account: &str) -> Result<Vec<(String, Option<SpecialUse>)>, String> {
    Ok(store
        .mailboxes(account)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|m| !m.noselect)
        .map(|m| (m.name, m.special_use))
        .collect())
}

/// The special use a mailbox name suggests (for names of other servers' folders).
fn special_use_of(name: &str) -> Option<SpecialUse> {
    let last = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
    Some(match last.as_str() {
        "sent" | "sent items" | "sent messages" | "sent mail" => SpecialUse::Sent,
        "drafts" | "draft" => SpecialUse::Drafts,
        "trash" | "deleted items" | "deleted messages" | "bin" => SpecialUse::Trash,
        "junk" | "spam" | "junk e-mail" | "junk email" => SpecialUse::Junk,
        "archive" | "archives" | "all mail" => SpecialUse::Archive,
        _ => return None,
    })
}

/// Counts for the summary of an import, export or migration.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Per mailbox: (name, messages taken, messages skipped as already there).
    pub mailboxes: Vec<(String, u64, u64)>,
    pub failed: Vec<String>,
}

impl Summary {
    pub fn taken(&self) -> u64 {
        self.mailboxes.iter().map(|m| m.1).sum()
    }
    pub fn skipped(&self) -> u64 {
        self.mailboxes.iter().map(|m| m.2).sum()
    }
}
