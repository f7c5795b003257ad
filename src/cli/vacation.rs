//! `letterbox vacation ADDRESS on|off|status`: an out-of-office reply in one line, for
//! people who will never write Sieve. `on` writes a Sieve script named
//! [`SCRIPT`] and makes it active; the script the account had active before keeps
//! running behind it (`include`), and `off` makes that one active again.

use super::{existing_account, open_store, Cli};
use clap::Subcommand;
use std::io::Read;

/// The generated script's name.
pub const SCRIPT: &str = "letterbox-vacation";
/// The comment that remembers which script was active before.
const PREVIOUS: &str = "# previous active script: ";
/// The longest reply text read.
const MAX_REASON: u64 = 16 * 1024;

#[derive(Subcommand, Debug)]
pub(super) enum VacationAction {
    /// Reply to mail with the text on standard input, once per sender every --days.
    On {
        #[arg(long)]
        subject: Option<String>,
        /// The last day of the absence (YYYY-MM-DD, UTC); no replies after it.
        #[arg(long)]
        until: Option<String>,
        /// Days between two replies to the same sender (RFC 5230: at least 1).
        #[arg(long, default_value_t = 7)]
        days: u64,
    },
    /// Stop replying (and make the script active before `on` active again).
    Off,
    /// Whether replies are on, and until when.
    Status,
}

pub(super) fn vacation_command(
    cli: &Cli,
    address: &str,
    action: &VacationAction,
) -> Result<(), String> {
    let store = open_store(cli)?;
    let address = existing_account(&store, address)?;
    let e = |e: crate::store::StoreError| e.to_string();
    let ours = store.sieve_script(&address, SCRIPT).map_err(e)?;
    let active = store
        .active_sieve_script(&address)
        .map_err(e)?
        .map(|(name, _)| name);
    match action {
        VacationAction::On {
            subject,
            until,
            days,
        } => {
            if let Some(until) = until {
                if !valid_date(until) {
                    return Err(format!("--until {until:?}: give the date as YYYY-MM-DD"));
                }
            }
            let mut reason = String::new();
            std::io::stdin()
                .lock()
                .take(MAX_REASON)
                .read_to_string(&mut reason)
                .map_err(|e| format!("reading the reply text (UTF-8): {e}"))?;
            if reason.trim().is_empty() {
                return Err("give the reply text on standard input".into());
            }
            // Turning it on again keeps the script that was active before the first time.
            let previous = match (&ours, active.as_deref()) {
                (Some(text), Some(SCRIPT)) => previous_of(text),
                (_, other) => other.map(str::to_string),
            };
            if let Some(previous) = &previous {
                // Its own vacation or reject would conflict with ours: the run would fail,
                // and with it the user's filters.
                let own = store
                    .sieve_script(&address, previous)
                    .map_err(e)?
                    .unwrap_or_default();
                if let Ok(program) = crate::sieve::compile(&own) {
                    if let Some(conflict) = program
                        .required
                        .iter()
                        .find(|r| ["vacation", "reject", "ereject"].contains(&r.as_str()))
                    {
                        return Err(format!(
                            "the active script {previous:?} uses {conflict}: add the reply there, \
                             or deactivate it first"
                        ));
                    }
                }
            }
            let text = script(
                &address,
                subject.as_deref(),
                until.as_deref(),
                *days,
                &reason,
                previous.as_deref(),
            );
            crate::sieve::compile(text.as_bytes())
                .map_err(|e| format!("the generated script does not compile: {e}"))?;
            store
                .put_sieve_script(&address, SCRIPT, text.as_bytes())
                .map_err(e)?;
            store
                .activate_sieve_script(&address, Some(SCRIPT))
                .map_err(e)?;
            match until {
                Some(until) => println!("vacation is on for {address} until {until}"),
                None => println!("vacation is on for {address}"),
            }
        }
        VacationAction::Off => {
            let Some(text) = ours else {
                println!("vacation is already off for {address}");
                return Ok(());
            };
            if active.as_deref() == Some(SCRIPT) {
                let previous = previous_of(&text)
                    .filter(|p| store.sieve_script(&address, p).ok().flatten().is_some());
                store
                    .activate_sieve_script(&address, previous.as_deref())
                    .map_err(e)?;
            }
            store.delete_sieve_script(&address, SCRIPT).map_err(e)?;
            println!("vacation is off for {address}");
        }
        VacationAction::Status => match (&ours, active.as_deref()) {
            (Some(text), Some(SCRIPT)) => match until_of(text) {
                Some(until) => println!("on until {until}"),
                None => println!("on"),
            },
            _ => println!("off"),
        },
    }
    Ok(())
}

fn valid_date(date: &str) -> bool {
    let b = date.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && [0..4, 5..7, 8..10]
            .iter()
            .all(|r| b[r.clone()].iter().all(u8::is_ascii_digit))
        && (1..=12).contains(&date[5..7].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&date[8..10].parse::<u32>().unwrap_or(0))
}

/// A Sieve quoted string.
fn quoted(text: &str) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        if c != '\r' && c != '\n' {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// The generated script.
fn script(
    address: &str,
    subject: Option<&str>,
    until: Option<&str>,
    days: u64,
    reason: &str,
    previous: Option<&str>,
) -> String {
    let mut require = vec!["\"vacation\""];
    if until.is_some() {
        require.extend(["\"date\"", "\"relational\""]);
    }
    if previous.is_some() {
        require.push("\"include\"");
    }
    let mut out = String::from(
        "# Written by `letterbox vacation`; `letterbox vacation ADDRESS off` removes it.\r\n",
    );
    if let Some(previous) = previous {
        out.push_str(&format!("{PREVIOUS}{}\r\n", quoted(previous)));
    }
    out.push_str(&format!("require [{}];\r\n", require.join(", ")));
    let mut vacation = format!(
        "vacation :days {} :addresses [{}]",
        days.max(1),
        quoted(address)
    );
    if let Some(subject) = subject {
        vacation.push_str(&format!(" :subject {}", quoted(subject)));
    }
    vacation.push_str(" text:\r\n");
    for line in reason
        .replace("\r\n", "\n")
        .trim_end_matches('\n')
        .split('\n')
    {
        // RFC 5228 §2.4.2: a line starting with a dot gets another.
        if line.starts_with('.') {
            vacation.push('.');
        }
        vacation.push_str(line);
        vacation.push_str("\r\n");
    }
    vacation.push_str(".\r\n;\r\n");
    match until {
        Some(until) => out.push_str(&format!(
            "if currentdate :zone \"+0000\" :value \"le\" \"date\" \"{until}\" {{\r\n{vacation}}}\r\n"
        )),
        None => out.push_str(&vacation),
    }
    if let Some(previous) = previous {
        // :optional: a script deleted or renamed since must not break the reply.
        out.push_str(&format!(
            "include :personal :optional {};\r\n",
            quoted(previous)
        ));
    }
    out
}

fn previous_of(text: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(text);
    let line = text.lines().find_map(|l| l.strip_prefix(PREVIOUS))?;
    let inner = line.trim().strip_prefix('"')?.strip_suffix('"')?;
    Some(inner.replace("\\\"", "\"").replace("\\\\", "\\"))
}

fn until_of(text: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(text);
    let at = text.find("\"date\" \"")? + 8;
    Some(text[at..].chars().take(10).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sieve::input::Input;
    use crate::sieve::run::Action;

    #[test]
    fn the_generated_script_compiles_and_replies() {
        let text = script(
            "bob@example.org",
            Some("Away \"for\" now"),
            Some("2026-12-24"),
            3,
            "Back soon.\n.hidden dot\n",
            Some("my \"filters\""),
        );
        let program = crate::sieve::compile(text.as_bytes()).unwrap();
        assert_eq!(
            previous_of(text.as_bytes()).as_deref(),
            Some("my \"filters\"")
        );
        assert_eq!(until_of(text.as_bytes()).as_deref(), Some("2026-12-24"));
        let message = b"From: a@b.example\r\nTo: bob@example.org\r\n\r\nhi\r\n";
        let input = |now| Input {
            message,
            size: message.len() as u64,
            envelope_from: "a@b.example",
            envelope_to: "bob@example.org",
            now,
            local_zone: 0,
            spam_percent: None,
        };
        // 2026-12-24 23:00 UTC: still on; the earlier script is gone (no host here): the
        // reply still goes out.
        let outcome = crate::sieve::run(&program, &input(1_798_153_200), &crate::sieve::NoHost);
        assert_eq!(outcome.error, None);
        assert!(matches!(outcome.actions.as_slice(), [Action::Vacation(_)]));
        let plain = script(
            "bob@example.org",
            None,
            Some("2026-12-24"),
            3,
            "Back soon.\n.hidden dot\n",
            None,
        );
        let program = crate::sieve::compile(plain.as_bytes()).unwrap();
        let outcome = crate::sieve::run(&program, &input(1_798_153_200), &crate::sieve::NoHost);
        let [Action::Vacation(reply)] = outcome.actions.as_slice() else {
            panic!("{outcome:?}")
        };
        assert_eq!(reply.reason, "Back soon.\r\n.hidden dot\r\n");
        assert_eq!(reply.seconds, 3 * 86_400);
        // The next day: no reply.
        let outcome = crate::sieve::run(&program, &input(1_798_156_800), &crate::sieve::NoHost);
        assert!(outcome.actions.is_empty());
        assert!(valid_date("2026-02-28") && !valid_date("2026-13-01") && !valid_date("26-1-1"));
    }
}
