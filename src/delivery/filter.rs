//! An account's active Sieve script at delivery: where its copies go (fileinto, keep,
//! discard, imap4flags), and what else the script asked for (reject, redirect,
//! vacation) for the caller to carry out. A script that fails never loses mail: the
//! copy stays where it would have gone without the script (INBOX, or Junk when the junk
//! filter said so), and the account's owner is told once per version of the script.

use super::vacation;
use crate::sieve::input::Input;
use crate::sieve::program::Program;
use crate::sieve::run::{Action, Host, Reply};
use crate::store::{flags, Result, Store, StoreError, Target};

/// How long a `duplicate` id is remembered without `:seconds` (RFC 7352 §3.4 leaves it
/// to the site; Pigeonhole's default is 12 hours).
pub const DUPLICATE_DEFAULT_SECONDS: u64 = 12 * 3600;
const DUPLICATE_MAX_SECONDS: u64 = 7 * 86_400;

/// What one account's script decided for one message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    /// The copies to store (none for discard or reject).
    pub targets: Vec<Target>,
    pub redirects: Vec<String>,
    /// `reject`/`ereject` with its reason.
    pub reject: Option<String>,
    pub vacation: Option<Reply>,
    /// Why the script failed, when it did (the message is then kept).
    pub error: Option<String>,
    /// `duplicate` ids to remember once the message is stored, with their lifetime.
    pub duplicates: Vec<(String, u64)>,
    /// Which script decided: its name and a digest of its text (a failure is told
    /// once per version of the script).
    pub script: (String, u64),
}

/// The store's answers to one account's script.
pub struct StoreHost<'a> {
    pub store: &'a Store,
    pub account: &'a str,
    pub now: i64,
}

impl Host for StoreHost<'_> {
    fn mailbox_exists(&self, name: &str) -> bool {
        mailbox_exists(self.store, self.account, name).unwrap_or(false)
    }

    fn duplicate_seen(&self, key: &str) -> bool {
        self.store
            .sieve_remembers(self.account, &duplicate_key(key), self.now)
            .unwrap_or(false)
    }

    /// `:personal` scripts are the account's own; there are no `:global` ones yet.
    fn include(&self, global: bool, name: &str) -> std::result::Result<Option<Program>, String> {
        if global {
            return Ok(None);
        }
        match self.store.sieve_script(self.account, name) {
            Ok(Some(text)) => crate::sieve::compile(&text)
                .map(Some)
                .map_err(|e| e.to_string()),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn duplicate_key(key: &str) -> String {
    format!("d\0{key}")
}

fn mailbox_exists(store: &Store, account: &str, name: &str) -> Result<bool> {
    if name.eq_ignore_ascii_case("INBOX") {
        return Ok(true);
    }
    Ok(store
        .mailboxes(account)?
        .iter()
        .any(|m| m.name == name && !m.noselect))
}

/// Whether the account has an active script (one lookup).
pub fn has_script(store: &Store, account: &str) -> Result<bool> {
    store.has_active_sieve_script(account)
}

/// Runs the active script of `default.account` over the message; `None` when it has
/// none. `default` is where the copy goes without a script. Blocking.
pub fn filter(store: &Store, default: &Target, input: &Input) -> Result<Option<Verdict>> {
    let account = default.account.as_str();
    let Some((name, text)) = store.active_sieve_script(account)? else {
        return Ok(None);
    };
    let script = (name.clone(), vacation::fnv(&text));
    let failed = |error: String| Verdict {
        targets: vec![default.clone()],
        error: Some(format!("script \"{name}\": {error}")),
        script: script.clone(),
        ..Verdict::default()
    };
    let program = match crate::sieve::compile(&text) {
        Ok(program) => program,
        Err(e) => return Ok(Some(failed(e.to_string()))),
    };
    let host = StoreHost {
        store,
        account,
        now: input.now,
    };
    let outcome = crate::sieve::run(&program, input, &host);
    if let Some(e) = outcome.error {
        return Ok(Some(failed(e)));
    }
    let mut verdict = Verdict {
        script: script.clone(),
        ..Verdict::default()
    };
    for action in outcome.actions {
        match action {
            Action::Store {
                mailbox,
                flags,
                create,
            } => {
                let target = placed(store, default, &mailbox, &flags, create);
                match target {
                    Ok(target) => super::merge_targets(&mut verdict.targets, &[target]),
                    Err(e) => return Ok(Some(failed(e))),
                }
            }
            Action::Redirect { address, .. } => verdict.redirects.push(address),
            Action::Discard => {}
            Action::Reject { reason, .. } => verdict.reject = Some(reason),
            Action::Vacation(reply) => verdict.vacation = Some(reply),
        }
    }
    if let Some(flags) = outcome.implicit_keep {
        let keep = with_flags(default.clone(), &flags);
        super::merge_targets(&mut verdict.targets, &[keep]);
    }
    verdict.duplicates = outcome
        .duplicates
        .into_iter()
        .map(|(key, seconds)| {
            let seconds = seconds
                .unwrap_or(DUPLICATE_DEFAULT_SECONDS)
                .min(DUPLICATE_MAX_SECONDS);
            (duplicate_key(&key), seconds)
        })
        .collect();
    Ok(Some(verdict))
}

/// The copy a keep or fileinto makes: keep (INBOX) goes where the message would have
/// gone; a mailbox that does not exist is made with `:create`, else it is an error.
fn placed(
    store: &Store,
    default: &Target,
    mailbox: &str,
    flags: &[String],
    create: bool,
) -> std::result::Result<Target, String> {
    let account = default.account.as_str();
    let mut target = default.clone();
    if !mailbox.eq_ignore_ascii_case("INBOX") {
        let exists = mailbox_exists(store, account, mailbox).map_err(|e| e.to_string())?;
        if !exists {
            if !create {
                return Err(format!("fileinto \"{mailbox}\": no such mailbox"));
            }
            match store.create_mailbox(account, mailbox) {
                Ok(_) | Err(StoreError::Exists(_)) => {}
                Err(e) => return Err(format!("fileinto :create \"{mailbox}\": {e}")),
            }
        }
        target.mailbox = mailbox.to_string();
    }
    Ok(with_flags(target, flags))
}

/// Adds IMAP flags named in a script: system flags by their bit, others as keywords.
fn with_flags(mut target: Target, names: &[String]) -> Target {
    for name in names {
        let bit = match name.to_ascii_lowercase().as_str() {
            "\\seen" => flags::SEEN,
            "\\answered" => flags::ANSWERED,
            "\\flagged" => flags::FLAGGED,
            "\\deleted" => flags::DELETED,
            "\\draft" => flags::DRAFT,
            // \Recent cannot be set, and other backslash names are not flags.
            n if n.starts_with('\\') => continue,
            _ => 0,
        };
        if bit != 0 {
            target.flags |= bit;
        } else if keyword_ok(name) && !target.keywords.iter().any(|k| k.eq_ignore_ascii_case(name))
        {
            target.keywords.push(name.clone());
        }
    }
    target
}

/// An IMAP keyword: an atom (RFC 3501 §9: no controls, spaces or `(){%*"\]`).
fn keyword_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
}

/// After the copies are stored: the duplicate ids are remembered.
pub fn remember(store: &Store, account: &str, verdict: &Verdict, now: i64) -> Result<()> {
    for (key, seconds) in &verdict.duplicates {
        store.sieve_remember(account, key, now + *seconds as i64, now)?;
    }
    Ok(())
}

/// Whether the owner is yet to be told that this version of their script fails (keyed
/// by the script, not the error text, which may carry what a message put in it);
/// records that they were.
pub fn first_failure(store: &Store, account: &str, verdict: &Verdict, now: i64) -> Result<bool> {
    let (name, digest) = &verdict.script;
    let key = format!("e\0{name}\0{digest:016x}");
    if store.sieve_remembers(account, &key, now)? {
        return Ok(false);
    }
    store.sieve_remember(account, &key, now + 30 * 86_400, now)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::with_users;

    const ALICE: &str = "alice@example.org";

    fn verdict(store: &Store, script: &str, default: &Target) -> Verdict {
        store
            .put_sieve_script(ALICE, "s", script.as_bytes())
            .unwrap();
        store.activate_sieve_script(ALICE, Some("s")).unwrap();
        let message = b"From: a@b.example\r\nSubject: hi\r\nMessage-ID: <1@b>\r\n\r\nbody\r\n";
        let input = Input {
            message,
            size: message.len() as u64,
            envelope_from: "a@b.example",
            envelope_to: ALICE,
            now: 1_000,
            local_zone: 0,
            spam_percent: None,
        };
        filter(store, default, &input).unwrap().unwrap()
    }

    #[test]
    fn copies_go_where_the_script_says() {
        let t = with_users();
        let inbox = Target::inbox(ALICE);
        let v = verdict(
            &t.store,
            "require [\"fileinto\", \"mailbox\", \"imap4flags\", \"copy\"];\n\
             fileinto :copy :create :flags \"\\\\Seen $Work\" \"A/B\"; addflag \"\\\\Flagged\";",
            &inbox,
        );
        assert_eq!(v.error, None);
        assert_eq!(v.targets.len(), 2);
        assert_eq!(v.targets[0].mailbox, "A/B");
        assert_eq!(v.targets[0].flags, flags::SEEN);
        assert_eq!(v.targets[0].keywords, ["$Work"]);
        assert_eq!(
            (v.targets[1].mailbox.as_str(), v.targets[1].flags),
            ("INBOX", flags::FLAGGED)
        );
        assert!(t
            .store
            .mailboxes(ALICE)
            .unwrap()
            .iter()
            .any(|m| m.name == "A/B"));
        // keep goes where the message was going (Junk, say), with its keyword kept.
        let mut junk = Target::inbox(ALICE);
        junk.mailbox = "Junk".into();
        junk.keywords.push("$Junk".into());
        let v = verdict(&t.store, "keep;", &junk);
        assert_eq!(v.targets, std::slice::from_ref(&junk));
        let v = verdict(&t.store, "discard;", &junk);
        assert!(v.targets.is_empty());
    }

    #[test]
    fn failures_keep_the_message() {
        let t = with_users();
        let inbox = Target::inbox(ALICE);
        let v = verdict(
            &t.store,
            "require \"fileinto\"; fileinto \"Nowhere\";",
            &inbox,
        );
        assert_eq!(v.targets, std::slice::from_ref(&inbox));
        assert_eq!(
            v.error.as_deref(),
            Some("script \"s\": fileinto \"Nowhere\": no such mailbox")
        );
        assert!(first_failure(&t.store, ALICE, &v, 0).unwrap());
        assert!(!first_failure(&t.store, ALICE, &v, 1).unwrap());
        // A script stored broken (not through the CLI) is a failure too.
        let v = verdict(&t.store, "if {", &inbox);
        assert_eq!(v.targets, [inbox]);
        assert!(v.error.unwrap().starts_with("script \"s\": line 1"));
    }
}
