//! Every fixed cap in one place. Configurable limits live in [`crate::config::Limits`];
//! these are the protocol-level bounds that protect memory no matter the config.

/// Longest SMTP command line we accept, CRLF included. RFC 5321 §4.5.3.1.4 says 512;
/// extensions (SIZE, DSN parameters, SMTPUTF8 addresses) make real clients exceed it.
pub const MAX_SMTP_COMMAND_LINE: usize = 4096;

/// Longest SASL continuation line (RFC 4954 §4 allows 12288 octets for AUTH).
pub const MAX_SASL_LINE: usize = 12288;

/// Longest text line inside DATA. RFC 5321 says 1000; real mail (HTML newsletters)
/// breaks that, so we are lenient but bounded. Long lines are streamed, never buffered.
pub const MAX_DATA_LINE: usize = 64 * 1024;

/// Longest POP3 command line (RFC 2449 §4: 255 octets; we allow more for AUTH PLAIN).
pub const MAX_POP3_COMMAND_LINE: usize = 1024;

/// The slowest message data accepted, in bytes per second, after the `data_timeout_secs`
/// grace (see [`crate::net::Pace`]): 25 MB take at most 7 hours at this rate, while a
/// client trickling a byte every few seconds is cut off after the grace.
pub const MIN_DATA_RATE: u64 = 1024;

/// Size of the in-memory part of an incoming message; beyond it the message spills to a
/// spool file so a large message costs disk, not RAM.
pub const SPOOL_MEMORY_THRESHOLD: usize = 128 * 1024;

/// Chunk size for message bodies in LMDB and for streaming them to clients.
pub const BLOB_CHUNK: usize = 64 * 1024;

/// Read buffer of a connection.
pub const READ_BUFFER: usize = 8 * 1024;

/// Most jobs (deliveries, IMAP writes) grouped into one LMDB write transaction.
pub const MAX_GROUP_COMMIT: usize = 64;
/// A batch stops taking jobs once their message bytes pass this: LMDB keeps a
/// transaction's dirty pages in memory, and every reply in the batch waits for the last.
pub const MAX_GROUP_COMMIT_BYTES: u64 = 32 << 20;

/// Concurrent password verifications (argon2 needs its memory cost per verification).
pub const MAX_CONCURRENT_PASSWORD_CHECKS: usize = 2;

/// Longest IMAP command line (each line of a command with literals): a whole command's
/// worth, as Dovecot allows (an ID command at RFC 2971's maximum sizes is about 32 KB).
pub const MAX_IMAP_LINE: usize = MAX_IMAP_COMMAND + 2;

/// Most bytes of one IMAP command, its literals included (APPEND's message literal is
/// streamed to the spool instead and bounded by `max_message_size`).
pub const MAX_IMAP_COMMAND: usize = 64 * 1024;

/// Bytes of a message the junk filter reads (the start: headers and the first text).
pub const JUNK_SCAN_BYTES: usize = 256 * 1024;

/// Most unique tokens the junk filter takes from one message.
pub const MAX_JUNK_MESSAGE_TOKENS: usize = 2000;

/// Longest token the junk statistics store, in bytes (bounds the LMDB key).
pub const MAX_JUNK_TOKEN_BYTES: usize = 48;

/// Most tokens the junk statistics keep per account; past it, the least useful tenth is
/// pruned (see `store::junk`). About 5 to 6 MiB of LMDB pages when full (scripts/bench-junk
/// measured 55 bytes a token).
pub const MAX_JUNK_TOKENS: u32 = 100_000;
