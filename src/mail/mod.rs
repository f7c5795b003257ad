//! Message helpers shared by every protocol and by the relay: the header/body split, the
//! header-field iterator, calendar dates (RFC 5322 and IMAP formats) and delivery status
//! notifications (RFC 3464).
//!
//! These are small, pure functions over bytes. mail-parser builds a full MIME tree and
//! needs the whole message in memory; these helpers only look at the header block, so
//! callers can use them on the first chunk of a spooled message. Their edge cases are
//! decided once, here:
//! - The header ends at the first empty line. A message that starts with an empty line
//!   has an empty header; a message with no empty line is all header and has no body.
//! - Lines end at LF; a CR before it belongs to the terminator. Stored messages are CRLF,
//!   but APPEND and sendmail input may carry bare LF, and both are read the same way.
//! - A line that starts with a space or tab continues the field above it (RFC 5322
//!   §2.2.3); a header line without a colon is still yielded, with an empty name, so that
//!   rewriting a header never drops bytes.

pub mod address;
pub mod binary;
pub mod date;
pub mod dsn;
pub mod header;
pub mod maildir;
pub mod mbox;
pub mod mutf7;
pub mod sortkeys;
pub mod structure;

pub use date::{imap_date_time, rfc5322_date};
pub use header::{fields, header_of, split, Field, Split};
