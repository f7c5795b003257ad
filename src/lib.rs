//! letterbox: a memory-frugal mail appliance.
//!
//! Mail arrives over SMTP, is committed durably to LMDB, and is read back over POP3 and IMAP.
//!
//! # Layout
//! Lowest layer first; a module uses only modules of lower layers (`scripts/check-layers`
//! enforces it, with the same table).
//! 1. Foundations, pure: [`clock`] (Unix time), [`address`] (address and domain
//!    normalisation), [`mail`] (header/body split, header fields, dates, DSNs).
//! 2. [`config`]: typed TOML configuration with the embedded default.
//! 3. [`limits`]: the fixed protocol-level caps.
//! 4. Platform: [`alloc`] (the static binaries' allocator), [`tls`] (rustls server and client configurations, the self-signed
//!    certificate), [`dns`] (one resolver, typed lookups), [`net`] (the connection type
//!    with bounded line reading; dot-stuffing), [`privilege`] (dropping root),
//!    [`signals`] (SIGHUP / SIGTERM / SIGINT), [`sntp`] (the clock's offset from time
//!    servers), [`logtail`] (the logger, keeping the last warnings).
//! 5. [`store`]: the LMDB store (accounts, mailboxes, messages, outbound queue, quota
//!    counters); its module doc is the schema. Imports no protocol.
//! 6. [`auth`]: password hashing, the credential cache, SASL PLAIN/LOGIN decoding.
//!    [`junk`]: the learning junk filter per account (tokens, a Bayesian classifier over
//!    statistics kept by the store). [`inbound`]: the checks on mail from the internet
//!    (SPF, DKIM, DMARC, ARC, iprev, HELO, block lists, message rate) and their verdict.
//!    [`sieve`]: the Sieve filter language: parser, validator and interpreter (pure).
//!    [`backup`]: backup archives of the store and keys, restore, the daily backup.
//!    [`transfer`]: mbox and Maildir import and export, batches with resume marks.
//! 7. [`delivery`]: the one path from "recipient accepted" to "stored"; DSN notices.
//! 8. [`floor`]: what every session stands on: `Shared`, the session kernel, admission,
//!    locks.
//! 9. [`relay`]: outbound delivery: `route` (MX, smarthost), `client` (SMTP client),
//!    `runner` and `schedule` (the scheduler), `retry` (pure), `dkim`. [`status`]: the
//!    running server's status file, for `letterbox status`.
//! 10. Protocol servers: [`smtp`], [`pop3`], [`imap`], [`managesieve`], each a pure `parse` under a
//!     `session` state machine.
//! 11. [`sendmail`] (local injection), [`server`] (listeners, shutdown fan-out) and
//!     [`migrate`] (pulling an account from another IMAP server).
//! 12. [`cli`]: the command line (`serve`, `user`, `domain`, `alias`, `queue`, `junk`,
//!     `dkim`, `sendmail`, `config check`).
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod acme;
pub mod address;
pub mod alloc;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod dns;
pub mod floor;
pub mod http;
pub mod imap;
pub mod inbound;
pub mod junk;
pub mod limits;
pub mod logtail;
pub mod mail;
pub mod managesieve;
pub mod migrate;
pub mod net;
pub mod pop3;
pub mod privilege;
pub mod relay;
pub mod sendmail;
pub mod server;
pub mod sieve;
pub mod signals;
pub mod smtp;
pub mod sntp;
pub mod status;
pub mod store;
pub mod tls;
pub mod transfer;
pub mod web;
