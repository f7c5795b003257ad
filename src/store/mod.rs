//! The LMDB store: accounts, mailboxes, messages and the outbound queue.
//!
//! One LMDB environment in `<data_dir>/mail` holds every database. Every public function
//! here runs one transaction and returns only after it committed; LMDB's synchronous
//! commit makes each write durable when the call returns. No transaction is ever held
//! across an `.await`: callers in async code use `spawn_blocking` or the [`Committer`].
//!
//! # Schema (version [`SCHEMA_VERSION`])
//! | database    | key                                  | value                          |
//! |-------------|--------------------------------------|--------------------------------|
//! | `meta`      | `schema_version`, counters (str)     | big-endian integers            |
//! | `domains`   | domain, lower-case                   | ()                             |
//! | `accounts`  | address, lower-case                  | [`Account`] (argon2id hash, quota) |
//! | `aliases`   | address, or `@domain` for catch-all  | list of local target addresses |
//! | `mailboxes` | account `\0` name                    | [`Mailbox`] (id, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, subscribed, special-use) |
//! | `messages`  | mailbox id (u64 BE) ++ UID (u32 BE)  | [`MessageRecord`] (blob, size, flags, keywords, internal date, modseq) |
//! | `blobs`     | blob id (u64 BE) ++ chunk (u32 BE)   | raw RFC 5322 bytes, 64 KiB per chunk |
//! | `blob_refs` | blob id (u64 BE)                     | reference count (u32 BE)       |
//! | `message_meta` | blob id (u64 BE)                  | [`MessageMeta`]: IMAP ENVELOPE, BODY, BODYSTRUCTURE (schema 2) |
//! | `queue`     | queue id (u64 BE)                    | [`QueuedMessage`]: envelope, DSN parameters, per-recipient state (schema 3) |
//!
//! A message's bytes are stored once as a blob; every mailbox entry that shows it (one per
//! recipient, later IMAP COPY) holds a reference, and the blob is deleted with the last one.
//! Keys sort so that a mailbox's messages are contiguous in UID order. Opening a store
//! written by a newer schema fails rather than guessing.
//!
//! `message_meta` is written with the blob when the message's bytes are in memory (up to
//! the spool threshold); larger messages, and messages stored by schema 1 (upgraded on
//! open by creating the database), get it computed when IMAP first asks for it.

mod committer;
mod mailboxes;
mod queue;
mod schema;
mod spool;

pub use committer::Committer;
pub use mailboxes::{Copied, FlagOp};
pub use queue::{Accepted, Notice, Outbound};
pub use schema::{
    flags, notify, Account, Mailbox, MessageMeta, MessageRecord, QueuedMessage, QueuedRecipient,
    RecipientState, SpecialUse, SCHEMA_VERSION,
};
pub use spool::{SpoolWriter, Spooled};

use crate::address::{normalize_address, normalize_domain, without_subaddress};
use crate::clock::unix_now as now;
use crate::limits::BLOB_CHUNK;
use heed::{Env, EnvOpenOptions, RoTxn, RwTxn};
use schema::*;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum StoreError {
    Lmdb(heed::Error),
    Io(std::io::Error),
    NotFound(String),
    Exists(String),
    Invalid(String),
    /// The account's quota would be exceeded.
    OverQuota,
    /// The store cannot grow: the LMDB map is full or the disk is.
    Full,
    SchemaTooNew {
        found: u32,
        supported: u32,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Full => {
                write!(f, "the store is full (free disk space or raise map_size_mib)")
            }
            StoreError::Lmdb(e) => write!(f, "store: {e}"),
            StoreError::Io(e) => write!(f, "store: {e}"),
            StoreError::NotFound(what) => write!(f, "{what} does not exist"),
            StoreError::Exists(what) => write!(f, "{what} already exists"),
            StoreError::Invalid(why) => f.write_str(why),
            StoreError::OverQuota => f.write_str("the account's quota is used up"),
            StoreError::SchemaTooNew { found, supported } => write!(
                f,
                "the store has schema version {found}, but this letterbox supports only up to \
                 {supported}: run a newer letterbox"
            ),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<heed::Error> for StoreError {
    fn from(e: heed::Error) -> Self {
        match e {
            heed::Error::Mdb(heed::MdbError::MapFull) => StoreError::Full,
            heed::Error::Io(e) => StoreError::from(e),
            e => StoreError::Lmdb(e),
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT) {
            return StoreError::Full;
        }
        StoreError::Io(e)
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Where a recipient address leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// Local accounts that receive the message (an alias may name several).
    Local(Vec<String>),
    /// The domain is ours but nobody is called that.
    UnknownUser,
    /// Not one of our domains.
    NotLocal,
}

/// A message ready for delivery: headers we add, then the received bytes.
#[derive(Debug)]
pub struct Incoming {
    /// Trace headers (Return-Path:, Received:) prepended to the stored bytes.
    pub prefix: Vec<u8>,
    pub body: Spooled,
    pub internal_date: i64,
}

impl Incoming {
    pub fn size(&self) -> u64 {
        self.prefix.len() as u64 + self.body.len()
    }
}

/// Where a delivered copy landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub mailbox: u64,
    pub uid: u32,
}

pub struct Store {
    env: Env,
    db: Databases,
    spool_dir: PathBuf,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.env.path())
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path, map_size: usize) -> Result<Store> {
        let path = data_dir.join("mail");
        std::fs::create_dir_all(&path)?;
        let mut options = EnvOpenOptions::new();
        options.map_size(map_size).max_dbs(DATABASE_COUNT);
        // SAFETY: the environment is opened once per process (Store is shared through an Arc)
        // and the files are only ever touched through LMDB.
        let env = unsafe { options.open(&path)? };
        let mut txn = env.write_txn()?;
        let db = Databases::create(&env, &mut txn)?;
        match read_u64(&db, &txn, META_SCHEMA_VERSION)? {
            None => write_u64(&db, &mut txn, META_SCHEMA_VERSION, SCHEMA_VERSION as u64)?,
            Some(v) if v > SCHEMA_VERSION as u64 => {
                return Err(StoreError::SchemaTooNew {
                    found: v as u32,
                    supported: SCHEMA_VERSION,
                })
            }
            Some(v) if v < SCHEMA_VERSION as u64 => {
                // 1 → 2: `message_meta` was created above; old messages have no entry yet.
                // 2 → 3: the reserved, always empty `queue` database gets its records.
                write_u64(&db, &mut txn, META_SCHEMA_VERSION, SCHEMA_VERSION as u64)?;
            }
            Some(_) => {}
        }
        txn.commit()?;
        Ok(Store {
            env,
            db,
            spool_dir: data_dir.join("spool"),
        })
    }

    /// Directory for messages too large to buffer in memory while they arrive.
    /// The data directory the store lives in (DKIM keys sit next to it).
    pub fn data_dir(&self) -> &Path {
        self.spool_dir.parent().unwrap_or(&self.spool_dir)
    }

    pub fn spool_dir(&self) -> &Path {
        &self.spool_dir
    }

    pub fn schema_version(&self) -> Result<u32> {
        let txn = self.env.read_txn()?;
        Ok(read_u64(&self.db, &txn, META_SCHEMA_VERSION)?.unwrap_or(0) as u32)
    }

    // ---- domains ----

    pub fn add_domain(&self, domain: &str) -> Result<String> {
        let domain = normalize_domain(domain)
            .ok_or_else(|| StoreError::Invalid(format!("{domain:?} is not a domain name")))?;
        let mut txn = self.env.write_txn()?;
        if self.db.domains.get(&txn, &domain)?.is_some() {
            return Err(StoreError::Exists(format!("domain {domain}")));
        }
        self.db.domains.put(&mut txn, &domain, &())?;
        txn.commit()?;
        Ok(domain)
    }

    /// Adds the domain unless it exists; used to seed domains from the config.
    pub fn ensure_domain(&self, domain: &str) -> Result<()> {
        match self.add_domain(domain) {
            Ok(_) | Err(StoreError::Exists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes a domain; refuses while accounts or aliases still use it.
    pub fn remove_domain(&self, domain: &str) -> Result<()> {
        let domain = normalize_domain(domain)
            .ok_or_else(|| StoreError::Invalid(format!("{domain:?} is not a domain name")))?;
        let mut txn = self.env.write_txn()?;
        if self.db.domains.get(&txn, &domain)?.is_none() {
            return Err(StoreError::NotFound(format!("domain {domain}")));
        }
        let suffix = format!("@{domain}");
        for item in self.db.accounts.iter(&txn)? {
            let (address, _) = item?;
            if address.ends_with(&suffix) {
                return Err(StoreError::Invalid(format!(
                    "domain {domain} still has account {address}; delete it first"
                )));
            }
        }
        for item in self.db.aliases.iter(&txn)? {
            let (source, _) = item?;
            if source.ends_with(&suffix) {
                return Err(StoreError::Invalid(format!(
                    "domain {domain} still has alias {source}; delete it first"
                )));
            }
        }
        self.db.domains.delete(&mut txn, &domain)?;
        txn.commit()?;
        Ok(())
    }

    pub fn domains(&self) -> Result<Vec<String>> {
        let txn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.db.domains.iter(&txn)? {
            out.push(item?.0.to_string());
        }
        Ok(out)
    }

    pub fn is_local_domain(&self, domain: &str) -> Result<bool> {
        let Some(domain) = normalize_domain(domain) else {
            return Ok(false);
        };
        let txn = self.env.read_txn()?;
        Ok(self.db.domains.get(&txn, &domain)?.is_some())
    }

    // ---- accounts ----

    /// Creates an account with its default mailboxes (INBOX, Sent, Drafts, Trash, Junk, Archive).
    pub fn add_account(&self, address: &str, password_hash: &str) -> Result<String> {
        let (address, domain) = parse_address(address)?;
        let mut txn = self.env.write_txn()?;
        if self.db.domains.get(&txn, &domain)?.is_none() {
            return Err(StoreError::Invalid(format!(
                "{domain} is not a local domain; add it with `letterbox domain add {domain}`"
            )));
        }
        if self.db.accounts.get(&txn, &address)?.is_some() {
            return Err(StoreError::Exists(format!("account {address}")));
        }
        if self.db.aliases.get(&txn, &address)?.is_some() {
            return Err(StoreError::Exists(format!("alias {address}")));
        }
        let account = Account {
            password_hash: password_hash.to_string(),
            quota_bytes: 0,
            created: now(),
        };
        self.db.accounts.put(&mut txn, &address, &account)?;
        for (name, special_use) in DEFAULT_MAILBOXES {
            self.create_mailbox_txn(&mut txn, &address, name, special_use)?;
        }
        txn.commit()?;
        Ok(address)
    }

    /// Deletes an account with all its mailboxes and messages.
    pub fn remove_account(&self, address: &str) -> Result<()> {
        let (address, _) = parse_address(address)?;
        let mut txn = self.env.write_txn()?;
        if !self.db.accounts.delete(&mut txn, &address)? {
            return Err(StoreError::NotFound(format!("account {address}")));
        }
        let prefix = mailbox_prefix(&address);
        let mut mailboxes = Vec::new();
        for item in self.db.mailboxes.prefix_iter(&txn, &prefix)? {
            let (key, mailbox) = item?;
            mailboxes.push((key.to_vec(), mailbox.id));
        }
        for (key, id) in mailboxes {
            let uids: Vec<u32> = self.uids_txn(&txn, id)?;
            self.expunge_txn(&mut txn, id, &uids)?;
            self.db.mailboxes.delete(&mut txn, &key)?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn set_password(&self, address: &str, password_hash: &str) -> Result<()> {
        self.update_account(address, |a| a.password_hash = password_hash.to_string())
    }

    /// Sets the storage quota in bytes (0: unlimited).
    pub fn set_quota(&self, address: &str, quota_bytes: u64) -> Result<()> {
        self.update_account(address, |a| a.quota_bytes = quota_bytes)
    }

    fn update_account(&self, address: &str, change: impl FnOnce(&mut Account)) -> Result<()> {
        let (address, _) = parse_address(address)?;
        let mut txn = self.env.write_txn()?;
        let mut account = self
            .db
            .accounts
            .get(&txn, &address)?
            .ok_or_else(|| StoreError::NotFound(format!("account {address}")))?;
        change(&mut account);
        self.db.accounts.put(&mut txn, &address, &account)?;
        txn.commit()?;
        Ok(())
    }

    /// Bytes stored in all mailboxes of an account (a message copied twice counts twice,
    /// as IMAP QUOTA's STORAGE resource expects) and the account's quota (0: unlimited).
    /// A scan of the message records: cheap next to the messages themselves.
    pub fn usage(&self, address: &str) -> Result<(u64, u64)> {
        let Some((address, _)) = normalize_address(address) else {
            return Ok((0, 0));
        };
        let txn = self.env.read_txn()?;
        let Some(account) = self.db.accounts.get(&txn, &address)? else {
            return Ok((0, 0));
        };
        let mut used = 0;
        for item in self
            .db
            .mailboxes
            .prefix_iter(&txn, &mailbox_prefix(&address))?
        {
            let mailbox = item?.1;
            for record in self
                .db
                .messages
                .prefix_iter(&txn, &mailbox.id.to_be_bytes())?
            {
                used += record?.1.size;
            }
        }
        Ok((used, account.quota_bytes))
    }

    /// Whether an account is at or over its quota. Accounts without a quota cost one
    /// lookup, not a scan of their messages.
    pub fn over_quota(&self, address: &str, adding: u64) -> Result<bool> {
        if self.account(address)?.is_none_or(|a| a.quota_bytes == 0) {
            return Ok(false);
        }
        let (used, quota) = self.usage(address)?;
        Ok(quota > 0 && used.saturating_add(adding) > quota)
    }

    pub fn account(&self, address: &str) -> Result<Option<Account>> {
        let Some((address, _)) = normalize_address(address) else {
            return Ok(None);
        };
        let txn = self.env.read_txn()?;
        Ok(self.db.accounts.get(&txn, &address)?)
    }

    pub fn accounts(&self) -> Result<Vec<String>> {
        let txn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.db.accounts.iter(&txn)? {
            out.push(item?.0.to_string());
        }
        Ok(out)
    }

    // ---- aliases ----

    /// Adds an alias. `source` is an address, or `@domain` for a domain's catch-all.
    /// Targets must be local accounts: forwarding outside would need SRS (see
    /// [`crate::relay`]).
    pub fn add_alias(&self, source: &str, targets: &[String]) -> Result<String> {
        let (source, domain) = parse_alias_source(source)?;
        if targets.is_empty() {
            return Err(StoreError::Invalid(
                "an alias needs at least one target".into(),
            ));
        }
        let mut txn = self.env.write_txn()?;
        if self.db.domains.get(&txn, &domain)?.is_none() {
            return Err(StoreError::Invalid(format!(
                "{domain} is not a local domain"
            )));
        }
        if self.db.aliases.get(&txn, &source)?.is_some() {
            return Err(StoreError::Exists(format!("alias {source}")));
        }
        if self.db.accounts.get(&txn, &source)?.is_some() {
            return Err(StoreError::Exists(format!("account {source}")));
        }
        let mut normalized = Vec::new();
        for target in targets {
            let (target, _) = parse_address(target)?;
            if self.db.accounts.get(&txn, &target)?.is_none() {
                return Err(StoreError::Invalid(format!(
                    "alias target {target} is not a local account: forwarding to other \
                     servers is refused, because without sender rewriting (SRS) it would \
                     fail SPF checks at the destination"
                )));
            }
            if !normalized.contains(&target) {
                normalized.push(target);
            }
        }
        self.db.aliases.put(&mut txn, &source, &normalized)?;
        txn.commit()?;
        Ok(source)
    }

    pub fn remove_alias(&self, source: &str) -> Result<()> {
        let (source, _) = parse_alias_source(source)?;
        let mut txn = self.env.write_txn()?;
        if !self.db.aliases.delete(&mut txn, &source)? {
            return Err(StoreError::NotFound(format!("alias {source}")));
        }
        txn.commit()?;
        Ok(())
    }

    pub fn aliases(&self) -> Result<Vec<(String, Vec<String>)>> {
        let txn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.db.aliases.iter(&txn)? {
            let (source, targets) = item?;
            out.push((source.to_string(), targets));
        }
        Ok(out)
    }

    /// Resolves an envelope recipient: an account, then an alias, then the address without
    /// its `+detail`, then the domain's catch-all.
    pub fn resolve_recipient(&self, address: &str) -> Result<Recipient> {
        let Some((address, domain)) = normalize_address(address) else {
            return Ok(Recipient::NotLocal);
        };
        let txn = self.env.read_txn()?;
        if self.db.domains.get(&txn, &domain)?.is_none() {
            return Ok(Recipient::NotLocal);
        }
        let mut candidates = vec![address.clone()];
        candidates.extend(without_subaddress(&address));
        candidates.push(format!("@{domain}"));
        for candidate in candidates {
            if self.db.accounts.get(&txn, &candidate)?.is_some() {
                return Ok(Recipient::Local(vec![candidate]));
            }
            if let Some(targets) = self.db.aliases.get(&txn, &candidate)? {
                let mut live = Vec::new();
                for t in targets {
                    if self.db.accounts.get(&txn, &t)?.is_some() {
                        live.push(t);
                    }
                }
                if !live.is_empty() {
                    return Ok(Recipient::Local(live));
                }
            }
        }
        Ok(Recipient::UnknownUser)
    }

    // ---- mailboxes ----

    fn create_mailbox_txn(
        &self,
        txn: &mut RwTxn,
        account: &str,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Mailbox> {
        let key = mailbox_key(account, name);
        if self.db.mailboxes.get(txn, &key)?.is_some() {
            return Err(StoreError::Exists(format!("mailbox {name}")));
        }
        let id = next_counter(&self.db, txn, META_NEXT_MAILBOX_ID)?;
        // UIDVALIDITY must change if a mailbox is ever recreated under the same name.
        let last = read_u64(&self.db, txn, META_LAST_UIDVALIDITY)?.unwrap_or(0);
        let uid_validity = (now() as u64).max(last + 1) & 0xffff_ffff;
        write_u64(&self.db, txn, META_LAST_UIDVALIDITY, uid_validity)?;
        let mailbox = Mailbox {
            id,
            name: name.to_string(),
            uid_validity: uid_validity as u32,
            uid_next: 1,
            highest_modseq: 1,
            subscribed: true,
            special_use,
        };
        self.db.mailboxes.put(txn, &key, &mailbox)?;
        Ok(mailbox)
    }

    pub fn mailbox(&self, account: &str, name: &str) -> Result<Option<Mailbox>> {
        let txn = self.env.read_txn()?;
        Ok(self.db.mailboxes.get(&txn, &mailbox_key(account, name))?)
    }

    pub fn mailboxes(&self, account: &str) -> Result<Vec<Mailbox>> {
        let txn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self
            .db
            .mailboxes
            .prefix_iter(&txn, &mailbox_prefix(account))?
        {
            out.push(item?.1);
        }
        Ok(out)
    }

    /// All messages of a mailbox in UID order.
    pub fn messages(&self, mailbox_id: u64) -> Result<Vec<(u32, MessageRecord)>> {
        let txn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self
            .db
            .messages
            .prefix_iter(&txn, &mailbox_id.to_be_bytes())?
        {
            let (key, record) = item?;
            out.push((uid_of_message_key(key), record));
        }
        Ok(out)
    }

    fn uids_txn(&self, txn: &RoTxn, mailbox_id: u64) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        for item in self
            .db
            .messages
            .lazily_decode_data()
            .prefix_iter(txn, &mailbox_id.to_be_bytes())?
        {
            out.push(uid_of_message_key(item?.0));
        }
        Ok(out)
    }

    /// Removes messages from a mailbox in one transaction, freeing blobs nobody else holds.
    /// Returns how many were removed.
    pub fn expunge(&self, mailbox_id: u64, uids: &[u32]) -> Result<usize> {
        let mut txn = self.env.write_txn()?;
        let removed = self.expunge_txn(&mut txn, mailbox_id, uids)?;
        txn.commit()?;
        Ok(removed)
    }

    fn expunge_txn(&self, txn: &mut RwTxn, mailbox_id: u64, uids: &[u32]) -> Result<usize> {
        let mut removed = 0;
        for &uid in uids {
            let key = message_key(mailbox_id, uid);
            let Some(record) = self.db.messages.get(txn, &key)? else {
                continue;
            };
            self.db.messages.delete(txn, &key)?;
            self.release_blob(txn, record.blob, record.size)?;
            removed += 1;
        }
        Ok(removed)
    }

    // ---- blobs ----

    fn release_blob(&self, txn: &mut RwTxn, blob: u64, size: u64) -> Result<()> {
        let refs = self.db.blob_refs.get(txn, &blob)?.unwrap_or(1);
        if refs > 1 {
            self.db.blob_refs.put(txn, &blob, &(refs - 1))?;
            return Ok(());
        }
        self.db.blob_refs.delete(txn, &blob)?;
        self.db.message_meta.delete(txn, &blob)?;
        for chunk in 0..chunk_count(size) {
            self.db.blobs.delete(txn, &blob_chunk_key(blob, chunk))?;
        }
        Ok(())
    }

    /// Reads chunk `index` (of [`BLOB_CHUNK`] bytes) of a stored message. Reading a message
    /// chunk by chunk keeps memory flat and never holds a read transaction across I/O.
    pub fn read_chunk(&self, blob: u64, index: u32) -> Result<Vec<u8>> {
        let txn = self.env.read_txn()?;
        self.db
            .blobs
            .get(&txn, &blob_chunk_key(blob, index))?
            .map(<[u8]>::to_vec)
            .ok_or_else(|| StoreError::NotFound(format!("message data {blob}/{index}")))
    }

    /// The stored IMAP description of a blob, if it was computed at delivery.
    pub fn message_meta(&self, blob: u64) -> Result<Option<MessageMeta>> {
        let txn = self.env.read_txn()?;
        Ok(self.db.message_meta.get(&txn, &blob)?)
    }

    /// Stores a description computed later (large or pre-schema-2 messages), if the blob
    /// still exists.
    pub fn put_message_meta(&self, blob: u64, meta: &MessageMeta) -> Result<()> {
        let mut txn = self.env.write_txn()?;
        if self.db.blob_refs.get(&txn, &blob)?.is_some() {
            self.db.message_meta.put(&mut txn, &blob, meta)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Reads a whole stored message (tests and small messages only).
    pub fn read_message(&self, record: &MessageRecord) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(record.size as usize);
        for index in 0..chunk_count(record.size) {
            out.extend_from_slice(&self.read_chunk(record.blob, index)?);
        }
        Ok(out)
    }

    // ---- delivery ----

    /// Delivers one message to the INBOX of each account, in one transaction.
    pub fn deliver(&self, message: &mut Incoming, accounts: &[String]) -> Result<Vec<Placed>> {
        Ok(self.accept(message, accounts, None)?.placed)
    }

    /// Stores one accepted message in one transaction: a copy in the INBOX of each local
    /// account and, for remote recipients, a queue entry. All of it or nothing.
    pub fn accept(
        &self,
        message: &mut Incoming,
        accounts: &[String],
        outbound: Option<&Outbound>,
    ) -> Result<Accepted> {
        let mut txn = self.env.write_txn()?;
        let accepted = self.accept_txn(&mut txn, message, accounts, outbound)?;
        txn.commit()?;
        Ok(accepted)
    }

    fn accept_txn(
        &self,
        txn: &mut RwTxn,
        message: &mut Incoming,
        accounts: &[String],
        outbound: Option<&Outbound>,
    ) -> Result<Accepted> {
        let mut inboxes = Vec::with_capacity(accounts.len());
        for account in accounts {
            let key = mailbox_key(account, "INBOX");
            let inbox = self
                .db
                .mailboxes
                .get(txn, &key)?
                .ok_or_else(|| StoreError::NotFound(format!("INBOX of {account}")))?;
            if !inboxes.iter().any(|(k, _): &(Vec<u8>, Mailbox)| *k == key) {
                inboxes.push((key, inbox));
            }
        }
        let holders = inboxes.len() + usize::from(outbound.is_some());
        if holders == 0 {
            return Ok(Accepted::default());
        }
        let size = message.size();
        let blob = self.write_blob(txn, message)?;
        self.db.blob_refs.put(txn, &blob, &(holders as u32))?;
        let mut placed = Vec::with_capacity(inboxes.len());
        for (key, mut inbox) in inboxes {
            let record = MessageRecord {
                blob,
                size,
                internal_date: message.internal_date,
                flags: 0,
                keywords: Vec::new(),
                modseq: 0,
            };
            let uid = self.place_record(txn, &mut inbox, record)?;
            self.db.mailboxes.put(txn, &key, &inbox)?;
            placed.push(Placed {
                mailbox: inbox.id,
                uid,
            });
        }
        let queued = match outbound {
            Some(o) => Some(self.enqueue_txn(txn, blob, size, o, message.internal_date)?),
            None => None,
        };
        Ok(Accepted { placed, queued })
    }

    /// Adds `record` to `mailbox` under the next UID with a new modseq, and returns the UID.
    /// The caller saves the updated `mailbox`.
    fn place_record(
        &self,
        txn: &mut RwTxn,
        mailbox: &mut Mailbox,
        mut record: MessageRecord,
    ) -> Result<u32> {
        let uid = mailbox.uid_next;
        mailbox.uid_next += 1;
        mailbox.highest_modseq += 1;
        record.modseq = mailbox.highest_modseq;
        self.db
            .messages
            .put(txn, &message_key(mailbox.id, uid), &record)?;
        Ok(uid)
    }

    fn write_blob(&self, txn: &mut RwTxn, message: &mut Incoming) -> Result<u64> {
        let blob = next_counter(&self.db, txn, META_NEXT_BLOB_ID)?;
        let mut chunk = Vec::with_capacity(BLOB_CHUNK);
        let mut index = 0u32;
        let mut put = |txn: &mut RwTxn, chunk: &mut Vec<u8>, piece: &[u8]| -> Result<()> {
            let mut piece = piece;
            while !piece.is_empty() {
                let take = (BLOB_CHUNK - chunk.len()).min(piece.len());
                chunk.extend_from_slice(&piece[..take]);
                piece = &piece[take..];
                if chunk.len() == BLOB_CHUNK {
                    self.db
                        .blobs
                        .put(txn, &blob_chunk_key(blob, index), chunk)?;
                    index += 1;
                    chunk.clear();
                }
            }
            Ok(())
        };
        put(txn, &mut chunk, &message.prefix)?;
        message
            .body
            .for_each_piece(|piece| put(txn, &mut chunk, piece))?;
        if !chunk.is_empty() {
            self.db
                .blobs
                .put(txn, &blob_chunk_key(blob, index), &chunk)?;
        }
        if let Spooled::Memory(bytes) = &message.body {
            let mut raw = Vec::with_capacity(message.prefix.len() + bytes.len());
            raw.extend_from_slice(&message.prefix);
            raw.extend_from_slice(bytes);
            let meta = crate::imap::structure::meta(&raw);
            self.db.message_meta.put(txn, &blob, &meta)?;
        }
        Ok(blob)
    }

    /// Runs several deliveries in one write transaction (group commit), each in a nested
    /// transaction so that one failure does not sink the others.
    pub(crate) fn deliver_group(
        &self,
        jobs: &mut [(&mut Incoming, &[String], Option<&Outbound>)],
    ) -> Result<Vec<Result<Accepted>>> {
        let mut txn = self.env.write_txn()?;
        let mut results = Vec::with_capacity(jobs.len());
        for (message, accounts, outbound) in jobs.iter_mut() {
            let mut nested = self.env.nested_write_txn(&mut txn)?;
            match self.accept_txn(&mut nested, message, accounts, *outbound) {
                Ok(placed) => {
                    nested.commit()?;
                    results.push(Ok(placed));
                }
                Err(e) => {
                    nested.abort();
                    results.push(Err(e));
                }
            }
        }
        txn.commit()?;
        Ok(results)
    }
}

/// Number of [`BLOB_CHUNK`]-sized chunks a blob of `size` bytes occupies.
pub fn chunk_count(size: u64) -> u32 {
    size.div_ceil(BLOB_CHUNK as u64) as u32
}

fn parse_address(address: &str) -> Result<(String, String)> {
    normalize_address(address)
        .ok_or_else(|| StoreError::Invalid(format!("{address:?} is not a mail address")))
}

fn parse_alias_source(source: &str) -> Result<(String, String)> {
    if let Some(domain) = source.strip_prefix('@') {
        let domain = normalize_domain(domain)
            .ok_or_else(|| StoreError::Invalid(format!("{source:?} is not a catch-all")))?;
        return Ok((format!("@{domain}"), domain));
    }
    parse_address(source)
}

fn read_u64(db: &Databases, txn: &RoTxn, key: &str) -> Result<Option<u64>> {
    Ok(db.meta.get(txn, key)?.and_then(|v| {
        let bytes: [u8; 8] = v.try_into().ok()?;
        Some(u64::from_be_bytes(bytes))
    }))
}

fn write_u64(db: &Databases, txn: &mut RwTxn, key: &str, value: u64) -> Result<()> {
    db.meta.put(txn, key, &value.to_be_bytes())?;
    Ok(())
}

fn next_counter(db: &Databases, txn: &mut RwTxn, key: &str) -> Result<u64> {
    let value = read_u64(db, txn, key)?.unwrap_or(1);
    write_u64(db, txn, key, value + 1)?;
    Ok(value)
}

#[cfg(test)]
pub(crate) mod tests;
