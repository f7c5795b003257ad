//! ManageSieve (RFC 5804): users upload, check, activate and delete their Sieve scripts
//! with a client (sieve-connect, Thunderbird's add-on, Roundcube's managesieve plugin).
//! Listener kind `managesieve`: port 4190, or 24190 when started without root;
//! STARTTLS, then AUTHENTICATE PLAIN (plaintext on loopback only if the config allows
//! it, as for the other protocols).
//!
//! - [`parse`]: pure command parser (quoted strings, literals), fuzzed;
//! - [`session`]: the state machine over it and the store's scripts.

pub mod parse;
pub mod session;
