//! Integration tests: the real binary, driven over real sockets. One test binary for all.

mod harness;
mod imap;
mod pop3;
mod server;
mod smtp;
