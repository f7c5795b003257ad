//! The LMDB store: accounts, mailboxes, messages and the outbound queue.
//!
//! One LMDB environment in `<data_dir>/mail` holds every database. Every public function
//! here runs one transaction and returns only after it committed; LMDB's synchronous
//! commit makes each write durable when the call returns. No transaction is ever held
//! across an `.await` (see below for how async code calls in).
//!
//! # Schema (version [`SCHEMA_VERSION`])
//! | database    | key                                  | value                          |
//! |-------------|--------------------------------------|--------------------------------|
//! | `meta`      | `schema_version`, counters (str)     | big-endian integers            |
//! | `domains`   | domain, lower-case                   | ()                             |
//! | `accounts`  | address, lower-case                  | [`Account`] (argon2id hash, quota) |
//! | `aliases`   | address, or `@domain` for catch-all  | list of local target addresses |
//! | `mailboxes` | account `\0` name                    | [`Mailbox`] (id, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, `\Noselect`, special-use) |
//! | `messages`  | mailbox id (u64 BE) ++ UID (u32 BE)  | [`MessageRecord`] (blob, size, flags, keywords, internal date, modseq) |
//! | `blobs`     | blob id (u64 BE) ++ chunk (u32 BE)   | raw RFC 5322 bytes, 64 KiB per chunk |
//! | `blob_refs` | blob id (u64 BE)                     | reference count (u32 BE)       |
//! | `message_meta` | blob id (u64 BE)                  | [`MessageMeta`]: IMAP ENVELOPE, BODY, BODYSTRUCTURE (schema 2) |
//! | `queue`     | queue id (u64 BE)                    | [`QueuedMessage`]: envelope, DSN parameters, per-recipient state (schema 3) |
//! | `usage`     | account address                      | bytes in all its mailboxes (u64 BE, schema 4) |
//! | `blocks`    | source (IPv4 address, IPv6 /64)      | [`Block`]: until, level, reason (schema 5) |
//! | `junk`      | account digest (8 bytes) ++ token    | spam, ham, last-trained (u32 BE each); the digest alone: totals (schema 6) |
//! | `junk_trained` | blob id (u64 BE) ++ account digest | the class the message was trained as (schema 6) |
//! | `recent`    | mailbox id (u64 BE)                  | highest UID claimed as `\Recent` by an IMAP session (u32 BE, schema 7) |
//! | `subscriptions` | account `\0` name               | () (schema 8)                  |
//! | `sort_keys` | blob id (u64 BE)                     | [`SortKeys`]: what SORT and THREAD compare (schema 9) |
//! | `counts`    | mailbox id (u64 BE)                  | [`MailboxCounts`]: messages, unseen, deleted, bytes (schema 11) |
//! | `save_dates` | mailbox id (u64 BE) ++ UID (u32 BE) | when the message was saved there, Unix time (u64 BE, schema 12) |
//! | `sieve_scripts` | account `\0` name | the script's bytes (schema 13) |
//! | `sieve_active` | account | the active script's name (schema 13) |
//! | `sieve_memory` | account `\0` key | until when vacation or duplicate remembers it, Unix time (u64 BE, schema 13) |
//! | `imports` | account `\0` source | [`ImportMark`]: how far an import or migration got (schema 14) |
//! | `senders` | blob id (u64 BE) | the envelope sender of a message imported from mbox (schema 14) |
//!
//! A message's bytes are stored once as a blob; every mailbox entry that shows it (one per
//! recipient, later IMAP COPY) holds a reference, and the blob is deleted with the last one.
//! Keys sort so that a mailbox's messages are contiguous in UID order. Opening a store
//! written by a newer schema fails rather than guessing.
//!
//! `message_meta` is written with the blob when the caller computed it beforehand (delivery
//! and APPEND do, for messages in memory, outside the write transaction); larger messages,
//! and messages stored by schema 1, get it computed when IMAP first asks for it.
//!
//! `usage` is the quota counter: every transaction that adds or removes a message record
//! adjusts it, so a quota check is one lookup. Opening a schema-3 store computes it once.
//!
//! This module imports no protocol: what it stores is data its callers prepared. Async
//! code reaches it through [`Store::call`], which runs a closure on tokio's blocking pool
//! (deliveries go through the [`Committer`]). The one exception is [`Store::reader`], a
//! read-only view with the point lookups of the command paths (recipient resolution,
//! quota, the account at login, an IMAP mailbox's mark and a message's stored
//! description): LMDB readers take no lock and never wait for the writer, so a lookup of
//! a few keys costs microseconds, less than the hop to the blocking pool (measured: that
//! hop on every RCPT cost bench-smtp 10 to 15 % of its throughput; on IMAP commands it
//! was most of their CPU time, in thread switches). Nothing that writes or reads message
//! bytes is on the view; its only scan, of the accounts, serves postmaster mail when
//! nobody has that name.

mod accounts;
mod blocks;
mod committer;
mod counts;
mod gate;
mod imports;
mod junk;
mod mailboxes;
mod messages;
mod queue;
mod schema;
mod sieve;
mod snapshot;
mod spool;
mod verify;

pub use blocks::BLOCK_MEMORY_SECS;
pub use committer::{Committer, Write};
pub use counts::{MailboxCounts, MailboxMark};
pub use imports::ImportTarget;
pub use junk::{JunkTotals, TokenCounts};
pub use mailboxes::{Copied, FlagOp};
pub use messages::map_size;
pub use queue::{Accepted, Outbound};
pub use schema::{
    flags, notify, Account, Block, ImportMark, Mailbox, MessageMeta, MessageRecord, QueuedMessage,
    QueuedRecipient, RecipientState, SortKeys, SpecialUse, DEFAULT_MAILBOXES, SCHEMA_VERSION,
};
pub use sieve::{ScriptInfo, MAX_SCRIPTS, MAX_SCRIPT_BYTES};
pub use snapshot::ServeLock;
pub use spool::{SpoolWriter, Spooled};
pub use verify::Verdict;

use crate::address::{normalize_address, normalize_domain};
use crate::limits::BLOB_CHUNK;
use heed::{Env, EnvOpenOptions, RoTxn, RwTxn};
use schema::*;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug)]
pub enum StoreError {
    Lmdb(heed::Error),
    Io(std::io::Error),
    NotFound(String),
    Exists(String),
    Invalid(String),
    /// The account's quota would be exceeded.
    OverQuota,
    /// The blocking task running a store call panicked or was cancelled.
    Gone,
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
            StoreError::Gone => f.write_str("store: the task was lost"),
            StoreError::Full => {
                write!(
                    f,
                    "the store is full (free disk space or raise map_size_mib)"
                )
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
    /// An alias that also forwards to other servers: its local accounts and the remote
    /// addresses.
    Forward {
        accounts: Vec<String>,
        remote: Vec<String>,
    },
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
    /// The IMAP description, when the caller computed it (see the module doc).
    pub meta: Option<MessageMeta>,
    /// The SORT and THREAD fields, likewise.
    pub sort: Option<SortKeys>,
}

impl Incoming {
    pub fn new(prefix: Vec<u8>, body: Spooled, internal_date: i64) -> Incoming {
        Incoming {
            prefix,
            body,
            internal_date,
            meta: None,
            sort: None,
        }
    }

    pub fn size(&self) -> u64 {
        self.prefix.len() as u64 + self.body.len()
    }

    /// Computes the IMAP description of a message held in memory. Call it before the
    /// write transaction: the single LMDB writer should only copy bytes. Spooled (large)
    /// messages are described at their first FETCH instead.
    pub fn describe(&mut self) {
        if self.meta.is_some() {
            return;
        }
        if let Spooled::Memory(bytes) = &self.body {
            let mut raw = Vec::with_capacity(self.prefix.len() + bytes.len());
            raw.extend_from_slice(&self.prefix);
            raw.extend_from_slice(bytes);
            self.meta = Some(crate::mail::structure::meta(&raw));
            let header = crate::mail::split(&raw).header_block(&raw);
            self.sort = Some(crate::mail::sortkeys::sort_keys(header));
        }
    }
}

/// One copy of a message: the mailbox it goes to and the flags it starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub account: String,
    pub mailbox: String,
    /// System flags ([`flags`]).
    pub flags: u8,
    pub keywords: Vec<String>,
}

impl Target {
    pub fn inbox(account: &str) -> Target {
        Target {
            account: account.to_string(),
            mailbox: "INBOX".into(),
            flags: 0,
            keywords: Vec::new(),
        }
    }
}

/// Everything one accepted message becomes, stored in one transaction: a copy per
/// target and, for remote recipients, a queue entry.
#[derive(Debug)]
pub struct Delivery {
    pub message: Incoming,
    pub targets: Vec<Target>,
    pub outbound: Option<Outbound>,
}

/// Point lookups that never wait (see the module doc): safe on a runtime thread.
pub struct Reader<'a>(&'a Store);

impl Reader<'_> {
    /// The SRS secret, when one was ever made (see [`Store::srs_secret`]).
    pub fn srs_secret(&self) -> Result<Option<Vec<u8>>> {
        let txn = self.0.read_txn()?;
        Ok(self.0.db.meta.get(&txn, "srs_secret")?.map(<[u8]>::to_vec))
    }

    /// See [`Store::resolve_recipient`].
    pub fn resolve_recipient(&self, address: &str) -> Result<Recipient> {
        self.0.resolve_recipient(address)
    }

    /// See [`Store::over_quota`].
    pub fn over_quota(&self, address: &str, adding: u64) -> Result<bool> {
        self.0.over_quota(address, adding)
    }

    /// Whether `source` is blocked at `now` (see [`Store::block_entry`]).
    pub fn blocked(&self, source: &str, now: i64) -> Result<Option<Block>> {
        Ok(self.0.block_entry(source)?.filter(|b| b.until > now))
    }

    /// See [`Store::account`].
    pub fn account(&self, address: &str) -> Result<Option<Account>> {
        self.0.account(address)
    }

    /// See [`Store::message_meta`] (one key).
    pub fn message_meta(&self, blob: u64) -> Result<Option<MessageMeta>> {
        self.0.message_meta(blob)
    }

    /// See [`Store::mailbox_mark`] (two keys).
    pub fn mailbox_mark(&self, account: &str, name: &str) -> Result<Option<MailboxMark>> {
        self.0.mailbox_mark(account, name)
    }

    /// See [`Store::is_local_domain`].
    pub fn is_local_domain(&self, domain: &str) -> Result<bool> {
        self.0.is_local_domain(domain)
    }

    /// See [`Store::domains`] (a handful of keys).
    pub fn domains(&self) -> Result<Vec<String>> {
        self.0.domains()
    }

    /// See [`Store::oldest_account`]: a scan of the accounts, reached only for postmaster
    /// mail when nobody has that name.
    pub fn oldest_account(&self, domain: Option<&str>) -> Result<Option<String>> {
        self.0.oldest_account(domain)
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
    /// Every transaction's ticket, so that the map can grow (see [`gate`]).
    gate: gate::Gate,
    /// Whether the map grows when it fills ([`Store::grow_when_full`]).
    grows: std::sync::atomic::AtomicBool,
}

/// A read transaction holding its [`gate`] ticket.
pub(crate) struct Ro<'e> {
    txn: RoTxn<'e>,
    _ticket: gate::Ticket<'e>,
}

/// A write transaction holding its [`gate`] ticket.
pub(crate) struct Rw<'e> {
    txn: RwTxn<'e>,
    _ticket: gate::Ticket<'e>,
}

impl<'e> std::ops::Deref for Ro<'e> {
    type Target = RoTxn<'e>;
    fn deref(&self) -> &RoTxn<'e> {
        &self.txn
    }
}

impl<'e> std::ops::Deref for Rw<'e> {
    type Target = RwTxn<'e>;
    fn deref(&self) -> &RwTxn<'e> {
        &self.txn
    }
}

impl std::ops::DerefMut for Rw<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.txn
    }
}

impl Rw<'_> {
    pub fn commit(self) -> heed::Result<()> {
        let Rw { txn, _ticket } = self;
        txn.commit()
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.env.path())
            .finish()
    }
}

/// The LMDB environment's directory inside the data dir.
pub const STORE_DIR: &str = "mail";

impl Store {
    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path, map_size: usize) -> Result<Store> {
        let path = data_dir.join(STORE_DIR);
        std::fs::create_dir_all(&path)?;
        let mut options = EnvOpenOptions::new();
        options.map_size(map_size).max_dbs(DATABASE_COUNT);
        // SAFETY: the environment is opened once per process (Store is shared through an Arc)
        // and the files are only ever touched through LMDB.
        let env = unsafe { options.open(&path)? };
        if let Some(found) = snapshot::stored_version(&env)? {
            if found < SCHEMA_VERSION as u64 {
                match snapshot::before_migration(&env, data_dir, found, SCHEMA_VERSION) {
                    Ok(copy) => log::warn!(
                        "store: upgrading schema {found} to {SCHEMA_VERSION}; the store as it was is in {}",
                        copy.display()
                    ),
                    Err(why) => log::warn!(
                        "store: upgrading schema {found} to {SCHEMA_VERSION} without a copy first: {why}"
                    ),
                }
            }
        }
        // The whole migration is this one transaction: if any step fails, nothing of it
        // is written and the store stays as the older letterbox left it.
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
                // 3 → 4: the `usage` counters are computed from the message records.
                // 4 → 5: `blocks` was created above, empty.
                // 5 → 6: `junk` and `junk_trained` were created above, empty.
                // 6 → 7: `recent` starts at each mailbox's last UID (old mail is not new).
                if v < 4 {
                    accounts::compute_usage(&db, &mut txn)?;
                }
                if v < 7 {
                    mailboxes::seed_recent(&db, &mut txn)?;
                }
                // 7 → 8: the mailboxes' subscribed flags become the subscription list.
                if v < 8 {
                    mailboxes::seed_subscriptions(&db, &mut txn)?;
                }
                // 8 → 9: `sort_keys` was created above; old messages get theirs at the
                // first SORT or THREAD.
                // 9 → 10: the old subscribed flags' slot becomes `noselect`, cleared.
                if v < 10 {
                    mailboxes::clear_noselect(&db, &mut txn)?;
                }
                // 10 → 11: the mailboxes' counters, from their records.
                if v < 11 {
                    counts::compute_counts(&db, &mut txn)?;
                }
                // 11 → 12: `save_dates` was created above; older messages have none.
                // 12 → 13: the `sieve_*` databases were created above, empty.
                // 13 → 14: `imports` and `senders` were created above, empty.
                write_u64(&db, &mut txn, META_SCHEMA_VERSION, SCHEMA_VERSION as u64)?;
            }
            Some(_) => {}
        }
        txn.commit()?;
        Ok(Store {
            env,
            db,
            spool_dir: data_dir.join("spool"),
            gate: gate::Gate::default(),
            grows: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Lets the map grow by itself when it is three quarters used: doubled, within the
    /// file system's free space, while no transaction runs (see [`gate`]). 64-bit only:
    /// there the address space is plentiful; a 32-bit process keeps its configured map.
    /// The server turns it on; one-shot commands keep the size they opened with.
    pub fn grow_when_full(&self, on: bool) {
        let on = on && cfg!(target_pointer_width = "64");
        self.grows.store(on, std::sync::atomic::Ordering::Relaxed);
        if on {
            // A map opened smaller than its data (LMDB then maps just the file) grows now,
            // before a deletion could need the room.
            if let Err(e) = self.room() {
                log::error!("store: checking the map: {e}");
            }
        }
    }

    /// A read transaction (every one passes the [`gate`]).
    pub(crate) fn read_txn(&self) -> heed::Result<Ro<'_>> {
        let ticket = self.gate.enter();
        Ok(Ro {
            txn: self.env.read_txn()?,
            _ticket: ticket,
        })
    }

    /// A write transaction (every one passes the [`gate`]).
    pub(crate) fn write_txn(&self) -> heed::Result<Rw<'_>> {
        let ticket = self.gate.enter();
        Ok(Rw {
            txn: self.env.write_txn()?,
            _ticket: ticket,
        })
    }

    /// Runs `f` on tokio's blocking pool: the one way async code calls the store, so that
    /// an LMDB transaction (and its fsync) never blocks a runtime thread.
    pub async fn call<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|_| StoreError::Gone)?
    }

    /// The read-only point lookups that async code may run inline (see the module doc).
    pub fn reader(&self) -> Reader<'_> {
        Reader(self)
    }

    /// The data directory the store lives in (DKIM keys sit next to it).
    pub fn data_dir(&self) -> &Path {
        self.spool_dir.parent().unwrap_or(&self.spool_dir)
    }

    /// Directory for messages too large to buffer in memory while they arrive.
    pub fn spool_dir(&self) -> &Path {
        &self.spool_dir
    }

    pub fn schema_version(&self) -> Result<u32> {
        let txn = self.read_txn()?;
        Ok(read_u64(&self.db, &txn, META_SCHEMA_VERSION)?.unwrap_or(0) as u32)
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
