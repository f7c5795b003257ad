//! LMDB databases, key encodings and record types. See the [`crate::store`] module doc for
//! the schema as a whole.

use heed::byteorder::BigEndian;
use heed::types::{Bytes, SerdeBincode, Str, Unit, U32, U64};
use heed::{Database, Env, RwTxn};
use serde::{Deserialize, Serialize};

/// Version of the layout below. Bump it, and add a migration, whenever a record changes.
pub const SCHEMA_VERSION: u32 = 14;

pub(crate) const META_SCHEMA_VERSION: &str = "schema_version";
pub(crate) const META_NEXT_MAILBOX_ID: &str = "next_mailbox_id";
pub(crate) const META_NEXT_BLOB_ID: &str = "next_blob_id";
pub(crate) const META_LAST_UIDVALIDITY: &str = "last_uidvalidity";
pub(crate) const META_NEXT_QUEUE_ID: &str = "next_queue_id";
/// Bumped by every change to the queue, from any process (the server's scheduler rescans
/// when it moves; `letterbox sendmail` and `letterbox queue` run in their own processes).
pub(crate) const META_QUEUE_GENERATION: &str = "queue_generation";

/// All named databases of the environment.
#[derive(Clone, Copy)]
pub(crate) struct Databases {
    pub meta: Database<Str, Bytes>,
    pub domains: Database<Str, Unit>,
    pub accounts: Database<Str, SerdeBincode<Account>>,
    pub aliases: Database<Str, SerdeBincode<Vec<String>>>,
    pub mailboxes: Database<Bytes, SerdeBincode<Mailbox>>,
    pub messages: Database<Bytes, SerdeBincode<MessageRecord>>,
    pub blobs: Database<Bytes, Bytes>,
    pub blob_refs: Database<U64<BigEndian>, U32<BigEndian>>,
    /// Since schema 2: IMAP ENVELOPE/BODY/BODYSTRUCTURE per blob, computed at delivery.
    pub message_meta: Database<U64<BigEndian>, SerdeBincode<MessageMeta>>,
    /// Since schema 3: the outbound queue, by queue id.
    pub queue: Database<U64<BigEndian>, SerdeBincode<QueuedMessage>>,
    /// Since schema 4: bytes stored in all mailboxes of an account, kept up to date by
    /// every transaction that adds or removes a message record.
    pub usage: Database<Str, U64<BigEndian>>,
    /// Since schema 5: sources refused after failed logins (see `store::blocks`).
    pub blocks: Database<Str, SerdeBincode<Block>>,
    /// Since schema 6: junk filter statistics per account and token (see `store::junk`).
    pub junk: Database<Bytes, Bytes>,
    /// Since schema 6: the class each message was trained as, per account.
    pub junk_trained: Database<Bytes, Bytes>,
    /// Since schema 7: per mailbox, the highest UID some IMAP session has already seen as
    /// `\Recent` (RFC 3501 §2.3.2: a message is recent in one session only).
    pub recent: Database<U64<BigEndian>, U32<BigEndian>>,
    /// Since schema 8: subscribed mailbox names (RFC 3501 §6.3.6), keyed like
    /// `mailboxes` (account `\0` name); a name may outlive its mailbox.
    pub subscriptions: Database<Bytes, Unit>,
    /// Since schema 9: what SORT and THREAD compare, per blob (see `mail::sortkeys`).
    pub sort_keys: Database<U64<BigEndian>, SerdeBincode<SortKeys>>,
    /// Since schema 11: per mailbox id, its counters (see `store::counts`).
    pub counts: Database<U64<BigEndian>, SerdeBincode<MailboxCounts>>,
    /// Since schema 12: per message key (mailbox id ++ UID), when it was saved into that
    /// mailbox (Unix time; IMAP SAVEDATE, RFC 8514). Messages stored earlier have none.
    pub save_dates: Database<Bytes, U64<BigEndian>>,
    /// Since schema 13: Sieve scripts, keyed account `\0` name (see `store::sieve`).
    pub sieve_scripts: Database<Bytes, Bytes>,
    /// Since schema 13: the name of each account's active script.
    pub sieve_active: Database<Str, Str>,
    /// Since schema 13: what vacation replied to and duplicate saw, keyed account `\0`
    /// key, until when (Unix time).
    pub sieve_memory: Database<Bytes, U64<BigEndian>>,
    /// Since schema 14: how far each import or migration got, keyed account `\0` source
    /// (see `store::imports`), written in the transaction of the messages it counts.
    pub imports: Database<Bytes, SerdeBincode<ImportMark>>,
    /// Since schema 14: per blob, the envelope sender an mbox `From ` line gave a message
    /// imported from it (export writes it back; delivered mail has its Return-Path:).
    pub senders: Database<U64<BigEndian>, Str>,
}

/// Number of named databases (LMDB needs an upper bound at open time).
pub(crate) const DATABASE_COUNT: u32 = 32;

impl Databases {
    /// Bytes of the pages every database uses (free pages not counted), from LMDB's own
    /// statistics: no scan.
    pub fn used_bytes(&self, txn: &heed::RoTxn) -> heed::Result<u64> {
        let stats = [
            self.meta.stat(txn)?,
            self.domains.stat(txn)?,
            self.accounts.stat(txn)?,
            self.aliases.stat(txn)?,
            self.mailboxes.stat(txn)?,
            self.messages.stat(txn)?,
            self.blobs.stat(txn)?,
            self.blob_refs.stat(txn)?,
            self.message_meta.stat(txn)?,
            self.queue.stat(txn)?,
            self.usage.stat(txn)?,
            self.blocks.stat(txn)?,
            self.junk.stat(txn)?,
            self.junk_trained.stat(txn)?,
            self.recent.stat(txn)?,
            self.subscriptions.stat(txn)?,
            self.sort_keys.stat(txn)?,
            self.counts.stat(txn)?,
            self.save_dates.stat(txn)?,
            self.sieve_scripts.stat(txn)?,
            self.sieve_active.stat(txn)?,
            self.sieve_memory.stat(txn)?,
            self.imports.stat(txn)?,
            self.senders.stat(txn)?,
        ];
        Ok(stats
            .iter()
            .map(|s| (s.branch_pages + s.leaf_pages + s.overflow_pages) as u64 * s.page_size as u64)
            .sum())
    }

    pub fn create(env: &Env, txn: &mut RwTxn) -> heed::Result<Databases> {
        Ok(Databases {
            meta: env.create_database(txn, Some("meta"))?,
            domains: env.create_database(txn, Some("domains"))?,
            accounts: env.create_database(txn, Some("accounts"))?,
            aliases: env.create_database(txn, Some("aliases"))?,
            mailboxes: env.create_database(txn, Some("mailboxes"))?,
            messages: env.create_database(txn, Some("messages"))?,
            blobs: env.create_database(txn, Some("blobs"))?,
            blob_refs: env.create_database(txn, Some("blob_refs"))?,
            message_meta: env.create_database(txn, Some("message_meta"))?,
            queue: env.create_database(txn, Some("queue"))?,
            usage: env.create_database(txn, Some("usage"))?,
            blocks: env.create_database(txn, Some("blocks"))?,
            junk: env.create_database(txn, Some("junk"))?,
            junk_trained: env.create_database(txn, Some("junk_trained"))?,
            recent: env.create_database(txn, Some("recent"))?,
            subscriptions: env.create_database(txn, Some("subscriptions"))?,
            sort_keys: env.create_database(txn, Some("sort_keys"))?,
            counts: env.create_database(txn, Some("counts"))?,
            save_dates: env.create_database(txn, Some("save_dates"))?,
            sieve_scripts: env.create_database(txn, Some("sieve_scripts"))?,
            sieve_active: env.create_database(txn, Some("sieve_active"))?,
            sieve_memory: env.create_database(txn, Some("sieve_memory"))?,
            imports: env.create_database(txn, Some("imports"))?,
            senders: env.create_database(txn, Some("senders"))?,
        })
    }
}

/// How far an import (mbox, Maildir) or a migration (one IMAP folder) got. What the
/// fields mean is the importer's business; the store only keeps them atomic with the
/// messages they count.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImportMark {
    /// The source's UIDVALIDITY, for an IMAP folder (a change restarts it).
    pub validity: u32,
    /// The byte offset after the last message taken (mbox), or the last UID (IMAP).
    pub position: u64,
    /// The last file name taken (Maildir, in sorted order).
    pub last: String,
    /// Messages taken so far.
    pub count: u64,
}

/// A blocked source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Block {
    /// Unix time the block ends.
    pub until: i64,
    /// How many times in a row the source was blocked (each block lasts twice the last).
    pub level: u32,
    /// Why, for `letterbox block list`.
    pub reason: String,
}

/// A mail account, keyed by its full lower-cased address.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Account {
    /// argon2id PHC string.
    pub password_hash: String,
    /// Storage quota in bytes; 0 means unlimited.
    pub quota_bytes: u64,
    /// Unix time of creation.
    pub created: i64,
}

/// IMAP special-use attributes (RFC 6154).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum SpecialUse {
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
}

/// A mailbox of an account, with the IMAP state that must survive restarts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Mailbox {
    /// Globally unique, never reused; prefixes the mailbox's message keys.
    pub id: u64,
    /// Hierarchical name with `/` as separator; `INBOX` is the inbox.
    pub name: String,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
    /// Since schema 10: the mailbox was deleted while it had children and is kept only as
    /// their parent (`\Noselect`, RFC 3501 §6.3.4): no messages, not selectable; CREATE
    /// brings it back. Schemas 2 to 7 kept the subscribed flag here (opening one clears it).
    pub noselect: bool,
    pub special_use: Option<SpecialUse>,
}

/// Mailboxes every new account gets.
pub const DEFAULT_MAILBOXES: [(&str, Option<SpecialUse>); 6] = [
    ("INBOX", None),
    ("Sent", Some(SpecialUse::Sent)),
    ("Drafts", Some(SpecialUse::Drafts)),
    ("Trash", Some(SpecialUse::Trash)),
    ("Junk", Some(SpecialUse::Junk)),
    ("Archive", Some(SpecialUse::Archive)),
];

/// System flags as bits of [`MessageRecord::flags`].
pub mod flags {
    pub const SEEN: u8 = 1;
    pub const ANSWERED: u8 = 2;
    pub const FLAGGED: u8 = 4;
    pub const DELETED: u8 = 8;
    pub const DRAFT: u8 = 16;
}

/// What IMAP FETCH ENVELOPE / BODY / BODYSTRUCTURE return for a message, computed once
/// from its bytes before it is stored (the store only keeps it).
pub use super::counts::MailboxCounts;
pub use crate::mail::sortkeys::SortKeys;
pub use crate::mail::structure::MessageMeta;

/// One message in one mailbox. The bytes live in a shared, refcounted blob.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageRecord {
    pub blob: u64,
    /// Size of the stored RFC 5322 bytes.
    pub size: u64,
    /// Unix time the message arrived (IMAP INTERNALDATE).
    pub internal_date: i64,
    /// System flags, see [`flags`].
    pub flags: u8,
    pub keywords: Vec<String>,
    pub modseq: u64,
}

pub(crate) fn mailbox_key(account: &str, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(account.len() + 1 + name.len());
    key.extend_from_slice(account.as_bytes());
    key.push(0);
    key.extend_from_slice(name.as_bytes());
    key
}

pub(crate) fn mailbox_prefix(account: &str) -> Vec<u8> {
    mailbox_key(account, "")
}

pub(crate) fn message_key(mailbox_id: u64, uid: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&mailbox_id.to_be_bytes());
    key[8..].copy_from_slice(&uid.to_be_bytes());
    key
}

pub(crate) fn uid_of_message_key(key: &[u8]) -> u32 {
    let mut uid = [0u8; 4];
    uid.copy_from_slice(&key[8..12]);
    u32::from_be_bytes(uid)
}

pub(crate) fn blob_chunk_key(blob: u64, chunk: u32) -> [u8; 12] {
    message_key(blob, chunk)
}

/// A message in the outbound queue. Its bytes are a blob like a mailbox message's (the
/// queue holds one reference), minus the first `skip` bytes (the Return-Path line, which
/// belongs only to local copies).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueuedMessage {
    pub blob: u64,
    pub size: u64,
    pub skip: u64,
    /// Envelope sender; empty for the null reverse-path (a bounce is never bounced).
    pub sender: String,
    /// Unix time it entered the queue.
    pub arrival: i64,
    /// RFC 3461 ENVID (decoded).
    pub envid: Option<String>,
    /// RFC 3461 RET: true for FULL, false for HDRS, None when not given.
    pub ret_full: Option<bool>,
    /// The body is 8BITMIME / the envelope needs SMTPUTF8.
    pub eight_bit: bool,
    pub smtputf8: bool,
    pub recipients: Vec<QueuedRecipient>,
    /// A delay notice went out already.
    pub delay_notified: bool,
}

/// One recipient of a queued message and where its delivery stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueuedRecipient {
    pub address: String,
    /// RFC 3461 ORCPT (`rfc822;` address, decoded).
    pub orcpt: Option<String>,
    /// RFC 3461 NOTIFY bits ([`notify`]); 0 means not given (FAILURE and DELAY apply).
    pub notify: u8,
    pub state: RecipientState,
    pub attempts: u32,
    /// Unix time of the next attempt (for pending and deferred recipients).
    pub next_attempt: i64,
    /// The last temporary or permanent error, as said by the remote server or the network.
    pub last_error: Option<String>,
    /// The host that answered last.
    pub remote: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum RecipientState {
    /// Not tried yet.
    Pending,
    /// Tried, failed temporarily; see `last_error` and `next_attempt`.
    Deferred,
    /// Accepted by the next hop; `relayed` when that hop does not speak DSN.
    Delivered { relayed: bool },
    /// Failed for good; the sender is told (unless NOTIFY says otherwise).
    Failed,
}

impl RecipientState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RecipientState::Delivered { .. } | RecipientState::Failed
        )
    }
}

/// RFC 3461 NOTIFY values as bits of [`QueuedRecipient::notify`].
pub mod notify {
    pub const SUCCESS: u8 = 1;
    pub const FAILURE: u8 = 2;
    pub const DELAY: u8 = 4;
    pub const NEVER: u8 = 8;

    /// Whether a DSN of this kind may be sent for these bits (RFC 3461 §4.1).
    pub fn wants(bits: u8, kind: u8) -> bool {
        if bits & NEVER != 0 {
            return false;
        }
        if bits == 0 {
            return kind != SUCCESS;
        }
        bits & kind != 0
    }
}
