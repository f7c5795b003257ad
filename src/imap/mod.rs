//! IMAP server: IMAP4rev1 (RFC 3501) and IMAP4rev2 (RFC 9051).
//!
//! # Layout
//! Calls go downward only: session → parse / encode / message / structure.
//!
//! - [`parse`]: command syntax (pure). `parse/mod.rs` turns bytes into tokens
//!   ([`parse::Value`]) and holds the argument parsers shared by all commands (sequence
//!   sets, flags, dates, literal detection for the reader); `parse/command.rs` turns
//!   tokens into a typed
//!   [`parse::Command`] (the state each command needs, the one arity check, one parse
//!   function per command; tables of tests in `parse/command_tests.rs`);
//!   `parse/fetch.rs` FETCH items, sections and modifiers; `parse/search.rs` SEARCH keys
//!   and RETURN options; `parse/sort.rs` SORT criteria and THREAD algorithms;
//!   `parse/mailbox.rs` mailbox names, LIST, STATUS items, QRESYNC; `parse/url.rs`
//!   CATENATE and its IMAP URLs.
//! - [`encode`]: response formatting (pure): strings and literals, sets, dates, flag
//!   lists, FETCH items, SEARCH/ESEARCH, LIST, STATUS, QUOTA, EXPUNGE/VANISHED.
//! - [`mutf7`]: modified UTF-7 mailbox names for IMAP4rev1 clients.
//! - [`message`]: pure helpers over stored bytes (sections, SEARCH matching, on top of
//!   [`crate::mail`]'s header split) and over a mailbox's UIDs (resolving sets, finding
//!   gone UIDs).
//! - [`thread`]: THREAD=ORDEREDSUBJECT and THREAD=REFERENCES over stored sort fields.
//! - [`structure`]: MIME part sections (`BODY[1.2]`, `BODY[2.MIME]`). ENVELOPE and
//!   BODYSTRUCTURE are [`crate::mail::structure`]'s: delivery computes them.
//! - [`session`]: the not-authenticated → authenticated → selected → logout state
//!   machine; `session/mod.rs` owns the loop, reader, state check, dispatch and snapshot,
//!   and one file per command group holds its handlers (`auth`, `mailbox`, `append`,
//!   `fetch`, `modify`, `search`, `sort`, `idle`).
//!
//! # Parser decision: hand-written, not imap-codec
//! imap-codec / imap-types were weighed first. On 2026-11-23 the current release on
//! crates.io is `2.0.0-alpha.10`: an alpha whose API still changes between releases, and
//! whose full command/response model (every extension as types) is far more than this
//! server uses. Its Fragmentizer would bound literals nicely, but the same bound takes a
//! few lines here because the session already reads bounded lines ([`crate::net`]):
//!
//! - a command is read line by line (each at most [`crate::limits::MAX_IMAP_LINE`]); a
//!   line ending in `{n}` / `{n+}` announces a literal whose length is parsed as a number
//!   and compared with the budget ([`crate::limits::MAX_IMAP_COMMAND`] for a whole
//!   command, `max_message_size` for APPEND) before anything is read or allocated: a
//!   synchronising literal announced as 4 GB gets a tagged `NO [TOOBIG]` (APPEND) or
//!   `BAD [TOOBIG]` (any other command) and the session goes on; a non-synchronising one
//!   (LITERAL+) that is refused is read and dropped, since its bytes are already on the
//!   way, unless it is larger than APPENDLIMIT: then the connection closes;
//! - APPEND's message literal never enters memory as a whole: it is streamed into the
//!   spool ([`crate::store::SpoolWriter`]) exactly like SMTP DATA;
//! - the parser then works on a complete, bounded byte string, recursion is capped, and
//!   every failure is a message for a tagged BAD (unit tests in [`parse`]).
//!
//! Hand-writing keeps imap-codec's tree out of the static binaries; the only new
//! dependency is mail-parser 0.11 (pure Rust), for ENVELOPE and BODYSTRUCTURE.
//!
//! # Behaviour
//! - Listeners `imap` (143, or 2143 unprivileged; STARTTLS) and `imaps` (993 / 2993).
//! - LOGIN and AUTHENTICATE PLAIN (SASL-IR) only after TLS, unless
//!   `[auth] allow_plaintext_on_loopback` and the peer is loopback; before that the
//!   capability list says LOGINDISABLED.
//! - Mailbox names are stored as UTF-8 and converted to and from modified UTF-7 at the
//!   wire, unless the client enabled UTF8=ACCEPT; a malformed `&...-` gets BAD. `/` is
//!   the hierarchy separator; INBOX is case-insensitive.
//! - Each session keeps a snapshot of the selected mailbox (UID, record). Before each
//!   tagged reply it re-reads the mailbox if anything changed (the committer and every
//!   IMAP write bump a counter watched by all sessions) and reports new messages
//!   (EXISTS), flag changes (FETCH FLAGS) and expunges (EXPUNGE, not during FETCH, STORE
//!   and SEARCH, as RFC 3501 §7.4.1 requires). IDLE waits on the same counter.
//! - ENVELOPE, BODYSTRUCTURE and BODY come from mail-parser 0.11, computed once when the
//!   message is stored (delivery or APPEND) and kept in the store's `message_meta`
//!   database; messages over the spool threshold (128 KiB) and those stored before schema
//!   2 get theirs computed at their first FETCH, then kept.
//! - CONDSTORE (RFC 7162): ENABLE or SELECT (CONDSTORE), FETCH MODSEQ / CHANGEDSINCE,
//!   STORE UNCHANGEDSINCE with `[MODIFIED]`, SEARCH MODSEQ, STATUS HIGHESTMODSEQ.
//! - IMAP4rev2 (RFC 9051) and IMAP4rev1 are both advertised; `ENABLE IMAP4rev2` turns on
//!   UTF-8 names, ESEARCH replies, no \Recent, a LIST response in SELECT.
//! - QRESYNC (RFC 7162): SELECT (QRESYNC ...), UID FETCH (CHANGEDSINCE n VANISHED), and
//!   VANISHED instead of EXPUNGE once enabled. Expunged UIDs are not kept with their
//!   modseq, so VANISHED (EARLIER) names every gone UID in the client's range.
//! - SORT, SORT=DISPLAY, ESORT and THREAD (RFC 5256, 5957, 5267) over the stored sort
//!   fields; COMPRESS=DEFLATE (RFC 4978) in [`crate::net`]; CATENATE (RFC 4469);
//!   SAVEDATE (RFC 8514); CONTEXT=SEARCH/SORT (RFC 5267 §4) in `session/context.rs`;
//!   NOTIFY (RFC 5465) in `parse/notify.rs` and `session/notify.rs`.
//!   The README lists the rest with the decisions taken.
//! - ESEARCH (RFC 4731) and SEARCHRES (RFC 5182), BINARY (RFC 3516), LIST-EXTENDED
//!   (RFC 5258), LIST-STATUS (RFC 5819), QUOTA (RFC 9208, STORAGE only, one root `""` per
//!   account; SETQUOTA is refused: quotas are the administrator's).

pub mod encode;
pub mod message;
pub use crate::mail::mutf7;
pub mod parse;
pub mod session;
pub mod structure;
pub mod thread;
