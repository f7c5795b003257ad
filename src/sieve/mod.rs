//! Sieve mail filtering (RFC 5228 and its extensions), written here: the one Rust
//! implementation, sieve-rs, is AGPL-3.0, and letterbox stays MIT OR Apache-2.0.
//!
//! Built in layers, each pure and tested without a mailbox:
//! - [`lex`]: bytes to tokens (strings, numbers, tags, comments), with positions;
//! - [`parse`]: tokens to the generic command tree of RFC 5228 §8.2, nesting bounded;
//! - [`program`]: the tree checked against the known commands (`commands.rs`), tests
//!   (`conditions.rs`) and `require`d extensions into a typed [`program::Program`];
//!   strings become literals or variable templates ([`strings`]);
//! - [`compare`]: comparators and match types;
//! - [`run`]: the interpreter over a message ([`input`]) and its envelope, tests in
//!   `eval.rs`: an [`run::Outcome`] of actions, carried out by the caller.
//!
//! Errors name the line and column they were found at.

mod arguments;
mod commands;
pub mod compare;
mod conditions;
mod eval;
pub mod input;
pub mod lex;
pub mod parse;
pub mod program;
pub mod run;
pub mod strings;

#[cfg(test)]
mod compile_tests;
#[cfg(test)]
mod run_tests;

pub use commands::valid_script_name;
pub use program::compile;
pub use run::{run, Action, Host, NoHost, Outcome};

use std::fmt;

/// A place in a script: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// Why a script was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SieveError {
    pub at: Pos,
    pub message: String,
}

impl SieveError {
    pub fn new(at: Pos, message: impl Into<String>) -> SieveError {
        SieveError {
            at,
            message: message.into(),
        }
    }
}

impl fmt::Display for SieveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.at.line, self.at.column, self.message
        )
    }
}

impl std::error::Error for SieveError {}
