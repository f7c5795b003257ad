//! `letterbox queue ...`: the outbound queue from the command line (list, show, retry,
//! flush, delete, bounce). Works live: the server's scheduler sees the change.

use super::{load_config, open_store, Cli};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub(super) enum QueueAction {
    /// One line per queued message: id, age, sender, recipients and their state.
    List,
    /// Everything about one message, with its header.
    Show { id: u64 },
    /// Try it again now.
    Retry { id: u64 },
    /// Try every message again now.
    Flush,
    /// Remove it without telling anyone.
    Delete { id: u64 },
    /// Give up on it and send the sender a failure notice.
    Bounce { id: u64 },
}

pub(super) fn queue_command(cli: &Cli, action: &QueueAction) -> Result<(), String> {
    let config = load_config(cli)?;
    let store = open_store(cli)?;
    let now = crate::clock::unix_now();
    let missing = |id: u64| format!("no queued message {id}");
    match action {
        QueueAction::List => {
            let entries = store.queue_entries().map_err(|e| e.to_string())?;
            for (id, e) in &entries {
                let waiting: Vec<String> = e
                    .recipients
                    .iter()
                    .map(|r| format!("{} ({})", r.address, describe_state(r, now)))
                    .collect();
                println!(
                    "{id}  {}  {} bytes  <{}>  {}",
                    age(now - e.arrival),
                    e.size - e.skip,
                    e.sender,
                    waiting.join(", ")
                );
            }
            if entries.is_empty() {
                println!("the queue is empty");
            }
        }
        QueueAction::Show { id } => {
            let e = store
                .queued(*id)
                .map_err(|e| e.to_string())?
                .ok_or(missing(*id))?;
            println!(
                "id: {id}\nsender: <{}>\narrived: {} ago\nsize: {} bytes",
                e.sender,
                age(now - e.arrival),
                e.size - e.skip
            );
            if let Some(envid) = &e.envid {
                println!("envid: {envid}");
            }
            for r in &e.recipients {
                println!(
                    "recipient: <{}> {} attempts={}",
                    r.address,
                    describe_state(r, now),
                    r.attempts
                );
                if let Some(err) = &r.last_error {
                    println!("  last error: {err}");
                }
            }
            let first = store.read_chunk(e.blob, 0).map_err(|e| e.to_string())?;
            let start = (e.skip as usize).min(first.len());
            println!();
            print!(
                "{}",
                String::from_utf8_lossy(crate::mail::header_of(&first[start..]))
            );
        }
        QueueAction::Retry { id } => {
            if store
                .retry_now(Some(&[*id]), now)
                .map_err(|e| e.to_string())?
                == 0
            {
                return Err(missing(*id));
            }
            println!("queued message {id} will be tried now");
        }
        QueueAction::Flush => {
            let n = store.retry_now(None, now).map_err(|e| e.to_string())?;
            println!("{n} queued messages will be tried now");
        }
        QueueAction::Delete { id } => {
            if !store.delete_queued(*id).map_err(|e| e.to_string())? {
                return Err(missing(*id));
            }
            println!("deleted queued message {id}");
        }
        QueueAction::Bounce { id } => {
            let found = crate::relay::bounce_all(
                &store,
                &config.relay,
                &config.hostname,
                *id,
                "delivery cancelled by the administrator",
                now,
            )
            .map_err(|e| e.to_string())?;
            if !found {
                return Err(missing(*id));
            }
            println!("bounced queued message {id}");
        }
    }
    Ok(())
}

fn describe_state(r: &crate::store::QueuedRecipient, now: i64) -> String {
    use crate::store::RecipientState::*;
    match r.state {
        Pending => "pending".into(),
        Deferred => format!("deferred, next try in {}", age(r.next_attempt - now)),
        Delivered { relayed: false } => "delivered".into(),
        Delivered { relayed: true } => "relayed".into(),
        Failed => "failed".into(),
    }
}

/// `3d4h`, `5m`, `12s`.
pub(super) fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}
