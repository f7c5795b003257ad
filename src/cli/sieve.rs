//! `letterbox sieve ...`: Sieve scripts from the command line. `sieve test` runs a
//! script over a message and prints what it would do, doing none of it (as Pigeonhole's
//! `sieve-test` does).

use crate::sieve::input::Input;
use crate::sieve::run::{Action, Outcome};
use clap::Subcommand;
use std::io::Read;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub(super) enum SieveAction {
    /// Run a script over the message on standard input and print the actions it would
    /// take, without taking them.
    Test {
        /// The script file.
        #[arg(long)]
        script: PathBuf,
        /// The envelope sender ("" for the null sender) [default: the message's
        /// Return-Path, else ""].
        #[arg(long)]
        from: Option<String>,
        /// The envelope recipient.
        #[arg(long, default_value = "recipient@localhost")]
        to: String,
        /// The junk filter's verdict for spamtest, 0 to 100 [default: not classified].
        #[arg(long)]
        spam_percent: Option<u8>,
    },
}

/// The most of a message `sieve test` reads.
const MAX_TEST_MESSAGE: u64 = 64 << 20;

pub(super) fn sieve_command(action: &SieveAction) -> Result<(), String> {
    match action {
        SieveAction::Test {
            script,
            from,
            to,
            spam_percent,
        } => {
            let text =
                std::fs::read(script).map_err(|e| format!("reading {}: {e}", script.display()))?;
            let program =
                crate::sieve::compile(&text).map_err(|e| format!("{}: {e}", script.display()))?;
            let mut message = Vec::new();
            std::io::stdin()
                .lock()
                .take(MAX_TEST_MESSAGE)
                .read_to_end(&mut message)
                .map_err(|e| format!("reading the message: {e}"))?;
            let from = match from {
                Some(from) => from.clone(),
                None => return_path(&message),
            };
            let input = Input {
                message: &message,
                envelope_from: &from,
                envelope_to: to,
                now: crate::clock::unix_now(),
                local_zone: 0,
                spam_percent: spam_percent.map(|p| p.min(100)),
            };
            let outcome = crate::sieve::run(&program, &input, &crate::sieve::NoHost);
            print!("{}", describe(&outcome));
            if outcome.error.is_some() {
                // As sieve-test: the script failed, the message would be kept.
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// The Return-Path's address, the envelope sender a delivered message records.
fn return_path(message: &[u8]) -> String {
    let head = crate::mail::header::header_of(message);
    crate::mail::header::fields(head)
        .find(|f| f.is("return-path"))
        .map(|f| {
            let value = String::from_utf8_lossy(&f.value()).into_owned();
            value.trim_matches(|c| c == '<' || c == '>').to_string()
        })
        .unwrap_or_default()
}

/// The outcome as `sieve test` prints it: one line per action, then the implicit keep.
pub fn describe(outcome: &Outcome) -> String {
    let mut out = String::new();
    if let Some(error) = &outcome.error {
        out.push_str(&format!("error: {error}\n"));
    }
    out.push_str("actions:\n");
    if outcome.actions.is_empty() && outcome.duplicates.is_empty() {
        out.push_str("  none\n");
    }
    for action in &outcome.actions {
        out.push_str("  ");
        out.push_str(&match action {
            Action::Store {
                mailbox,
                flags,
                create,
            } => store(mailbox, flags, *create),
            Action::Redirect { address, copy } => {
                format!(
                    "redirect to <{address}>{}",
                    if *copy { " (copy)" } else { "" }
                )
            }
            Action::Discard => "discard".to_string(),
            Action::Reject { reason, extended } => format!(
                "{} {reason:?}",
                if *extended { "ereject" } else { "reject" }
            ),
            Action::Vacation(reply) => format!(
                "vacation every {} s subject {:?} from {:?} reason {:?}",
                reply.seconds,
                reply.subject.as_deref().unwrap_or(""),
                reply.from.as_deref().unwrap_or(""),
                reply.reason
            ),
        });
        out.push('\n');
    }
    if !outcome.duplicates.is_empty() {
        out.push_str("  track duplicate\n");
    }
    match &outcome.implicit_keep {
        Some(flags) => {
            out.push_str(&format!(
                "implicit keep: {}\n",
                store("INBOX", flags, false)
            ));
        }
        None => out.push_str("implicit keep: none\n"),
    }
    out
}

fn store(mailbox: &str, flags: &[String], create: bool) -> String {
    let mut line = format!("store into {mailbox:?}");
    if create {
        line.push_str(" (create)");
    }
    if !flags.is_empty() {
        line.push_str(&format!(" flags {}", flags.join(" ")));
    }
    line
}
