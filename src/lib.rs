//! letterbox: a memory-frugal mail appliance.
//!
//! Mail arrives over SMTP, is committed durably to LMDB, and is read back over POP3 and IMAP.
//!
//! # Layout
//! - [`cli`]: command-line interface (`serve`, `user`, `domain`, `alias`, `queue`, `dkim`,
//!   `sendmail`, `config check`).
//! - [`config`]: typed TOML configuration with the embedded default.
//! - [`limits`]: the fixed protocol-level caps.
//! - [`clock`]: Unix time.
//! - [`address`]: address and domain normalisation.
//! - [`store`]: the LMDB store (accounts, mailboxes, messages, outbound queue); its module
//!   doc is the schema.
//! - [`auth`]: password hashing and SASL PLAIN/LOGIN decoding.
//! - [`tls`]: rustls server configuration and the self-signed certificate.
//! - [`net`]: the connection type (plain or TLS) with bounded line reading.
//! - [`smtp`]: SMTP receiving: `parse` (pure), `data` (pure DATA decoder), `session`.
//! - [`pop3`]: POP3: `parse` (pure) and `session`.
//! - [`imap`]: IMAP4rev1/rev2: `parse` (pure), `message` (pure), `session`.
//! - [`relay`]: outbound delivery: `route` (MX, smarthost), `client` (SMTP client),
//!   `runner` (scheduler), `retry` and `dsn` (pure), `dkim`.
//! - [`server`]: listeners, connection limits, shutdown fan-out.
//! - [`privilege`]: dropping root after binding.
//! - [`signals`]: SIGHUP / SIGTERM / SIGINT handling.
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod address;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod dns;
pub mod floor;
pub mod imap;
pub mod limits;
pub mod mail;
pub mod net;
pub mod pop3;
pub mod privilege;
pub mod relay;
pub mod sendmail;
pub mod server;
pub mod signals;
pub mod smtp;
pub mod store;
pub mod tls;
