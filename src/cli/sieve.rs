//! `letterbox sieve ...`: an account's Sieve scripts from the command line (list, get,
//! put, activate, deactivate, del; they work live, as every admin command), and
//! `sieve test`, which runs a script over a message and prints what it would do, doing
//! none of it (as Pigeonhole's `sieve-test` does).

use super::{existing_account, open_store, Cli};
use crate::sieve::input::Input;
use crate::sieve::run::{Action, Outcome};
use clap::Subcommand;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub(super) enum SieveAction {
    /// The account's scripts; the active one is marked.
    List { address: String },
    /// Print a script.
    Get { address: String, name: String },
    /// Store the script on standard input (checked first: errors name line and column).
    Put { address: String, name: String },
    /// Make a script the one that runs at delivery.
    Activate { address: String, name: String },
    /// Run no script at delivery.
    Deactivate { address: String },
    /// Delete a script (not the active one).
    Del { address: String, name: String },
    /// Run a script (the account's active one, or --script) over the message on
    /// standard input and print the actions it would take, without taking them.
    Test {
        /// The account whose active script runs (its mailboxes and memory are asked).
        address: Option<String>,
        /// A script file instead.
        #[arg(long, required_unless_present = "address")]
        script: Option<PathBuf>,
        /// The envelope sender ("" for the null sender) [default: the message's
        /// Return-Path, else ""].
        #[arg(long)]
        from: Option<String>,
        /// The envelope recipient [default: ADDRESS, else recipient@localhost].
        #[arg(long)]
        to: Option<String>,
        /// The junk filter's verdict for spamtest, 0 to 100 [default: the account's
        /// filter, else not classified].
        #[arg(long)]
        spam_percent: Option<u8>,
    },
}

/// The most of a message `sieve test` reads.
const MAX_TEST_MESSAGE: u64 = 64 << 20;

pub(super) fn sieve_command(cli: &Cli, action: &SieveAction) -> Result<(), String> {
    if let SieveAction::Test {
        address,
        script,
        from,
        to,
        spam_percent,
    } = action
    {
        return test(
            cli,
            address.as_deref(),
            script.as_deref(),
            from,
            to,
            *spam_percent,
        );
    }
    let store = open_store(cli)?;
    let (SieveAction::List { address }
    | SieveAction::Get { address, .. }
    | SieveAction::Put { address, .. }
    | SieveAction::Activate { address, .. }
    | SieveAction::Deactivate { address }
    | SieveAction::Del { address, .. }) = action
    else {
        unreachable!("test returned above")
    };
    let address = existing_account(&store, address)?;
    let e = |e: crate::store::StoreError| e.to_string();
    match action {
        SieveAction::List { .. } => {
            for script in store.sieve_scripts(&address).map_err(e)? {
                let mark = if script.active { " (active)" } else { "" };
                println!("{}  {} bytes{mark}", script.name, script.size);
            }
        }
        SieveAction::Get { name, .. } => match store.sieve_script(&address, name).map_err(e)? {
            Some(text) => {
                std::io::Write::write_all(&mut std::io::stdout(), &text)
                    .map_err(|e| e.to_string())?;
            }
            None => return Err(format!("script {name} does not exist")),
        },
        SieveAction::Put { name, .. } => {
            if !crate::sieve::valid_script_name(name) {
                return Err(format!("{name:?} is not a valid script name"));
            }
            let mut text = Vec::new();
            std::io::stdin()
                .lock()
                .take(crate::store::MAX_SCRIPT_BYTES as u64 + 1)
                .read_to_end(&mut text)
                .map_err(|e| format!("reading the script: {e}"))?;
            crate::sieve::compile(&text).map_err(|e| format!("{name}: {e}"))?;
            store.put_sieve_script(&address, name, &text).map_err(e)?;
            println!("stored {name}");
        }
        SieveAction::Activate { name, .. } => {
            store
                .activate_sieve_script(&address, Some(name))
                .map_err(e)?;
            println!("{name} is active");
        }
        SieveAction::Deactivate { .. } => {
            store.activate_sieve_script(&address, None).map_err(e)?;
            println!("no script is active");
        }
        SieveAction::Del { name, .. } => {
            store.delete_sieve_script(&address, name).map_err(e)?;
            println!("deleted {name}");
        }
        SieveAction::Test { .. } => unreachable!("handled above"),
    }
    Ok(())
}

fn test(
    cli: &Cli,
    address: Option<&str>,
    script: Option<&Path>,
    from: &Option<String>,
    to: &Option<String>,
    spam_percent: Option<u8>,
) -> Result<(), String> {
    let store = match address {
        Some(_) => Some(open_store(cli)?),
        None => None,
    };
    let account = address.map(str::to_ascii_lowercase);
    let text = match (script, &store, &account) {
        (Some(path), _, _) => {
            std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?
        }
        (None, Some(store), Some(account)) => {
            match store
                .active_sieve_script(account)
                .map_err(|e| e.to_string())?
            {
                Some((_, text)) => text,
                None => return Err(format!("{account} has no active script")),
            }
        }
        _ => return Err("give an account or --script".into()),
    };
    let program = crate::sieve::compile(&text).map_err(|e| e.to_string())?;
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
    let to = to
        .clone()
        .or_else(|| account.clone())
        .unwrap_or_else(|| "recipient@localhost".into());
    let spam_percent = match (spam_percent, &store, &account) {
        (Some(p), _, _) => Some(p.min(100)),
        (None, Some(store), Some(account)) => crate::junk::probability(store, account, &message)
            .map_err(|e| e.to_string())?
            .map(|p| (p * 100.0).round().clamp(0.0, 100.0) as u8),
        _ => None,
    };
    let now = crate::clock::unix_now();
    let input = Input {
        message: &message,
        size: message.len() as u64,
        envelope_from: &from,
        envelope_to: &to,
        now,
        local_zone: 0,
        spam_percent,
    };
    let outcome = match (&store, &account) {
        (Some(store), Some(account)) => {
            let host = crate::delivery::filter::StoreHost {
                store,
                account,
                now,
            };
            crate::sieve::run(&program, &input, &host)
        }
        _ => crate::sieve::run(&program, &input, &crate::sieve::NoHost),
    };
    print!("{}", describe(&outcome));
    if outcome.error.is_some() {
        // As sieve-test: the script failed, the message would be kept.
        std::process::exit(1);
    }
    Ok(())
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
