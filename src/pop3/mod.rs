//! POP3 (RFC 1939) with CAPA and response codes (RFC 2449, 3206), STLS (RFC 2595) and
//! SASL PLAIN (RFC 5034). POP3 serves the account's INBOX, the same one IMAP will show.
//!
//! - [`parse`]: command lines to typed commands (pure).
//! - [`session`]: the AUTHORIZATION → TRANSACTION → UPDATE state machine.

pub mod parse;
pub mod session;
