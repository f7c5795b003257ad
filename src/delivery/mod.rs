//! The one path from "recipient accepted" to "stored". SMTP, `letterbox sendmail`, the
//! relay's bounces and success notices all come through here:
//!
//! 1. [`resolve`] turns an envelope recipient into targets: (account, mailbox, flags).
//!    INBOX with no flags is the default; the junk classifier ([`classify`]) and then
//!    the account's Sieve script ([`filter`]) choose another mailbox or add flags.
//! 2. [`prepare`] computes what the store keeps beside the bytes (the IMAP ENVELOPE and
//!    BODYSTRUCTURE) before the write transaction, so the single LMDB writer only copies.
//! 3. [`deliver`] hands the result to the group committer and returns once it is durable;
//!    [`deliver_now`] does the same in one transaction of its own, for commands that run
//!    without a server (sendmail).
//!
//! [`notice`] builds the DSNs (RFC 3461/3464) that the relay and SMTP owe a sender;
//! [`vacation`] the out-of-office replies and their rules; [`srs`] the sender addresses
//! of forwarded mail.
//! IMAP APPEND is not a delivery: the client chose the mailbox and flags itself.

pub mod after;
pub mod filter;
pub mod notice;
pub mod srs;
pub mod vacation;

use crate::store::{Accepted, Committer, Delivery, Reader, Recipient, Result, Store, Target};

/// Where a recipient address leads, as delivery sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Local copies (an alias may name several accounts).
    Local(Vec<Target>),
    /// The domain is ours but nobody is called that.
    UnknownUser,
    /// Not one of our domains.
    NotLocal,
    /// An SRS address of ours (a bounce to mail we forwarded): it goes on to this
    /// address, the original sender.
    Forward(String),
    /// An alias that forwards to other servers (with an SRS sender), and maybe to local
    /// accounts too.
    Alias {
        local: Vec<Target>,
        remote: Vec<String>,
    },
}

/// Resolves an envelope recipient to the mailboxes its copies go to. A few point lookups:
/// async code may call it inline (see [`Store::reader`]).
///
/// `postmaster@` a local domain (any case, RFC 5321 §4.5.1) always resolves: to the
/// account or alias of that name when there is one, else to the domain's oldest account,
/// else to the server's. An SRS address we made (and nobody's account) forwards to the
/// original sender.
pub fn resolve(store: &Reader, address: &str) -> Result<Resolution> {
    // Before the aliases: a catch-all must not swallow the bounces of forwarded mail.
    if let Some((local, domain)) = address.rsplit_once('@') {
        if srs::is_srs(local) && store.is_local_domain(domain)? {
            let original = match store.srs_secret()? {
                Some(secret) => srs::Srs::new(&secret).reverse(local, crate::clock::unix_now()),
                None => None,
            };
            if let Some(original) = original {
                return Ok(Resolution::Forward(original));
            }
        }
    }
    Ok(match store.resolve_recipient(address)? {
        Recipient::Local(accounts) => {
            Resolution::Local(accounts.iter().map(|a| Target::inbox(a)).collect())
        }
        Recipient::UnknownUser => match address.rsplit_once('@') {
            Some((local, domain)) if local.eq_ignore_ascii_case("postmaster") => {
                let owner = match store.oldest_account(Some(domain))? {
                    Some(account) => Some(account),
                    None => store.oldest_account(None)?,
                };
                match owner {
                    Some(account) => Resolution::Local(vec![Target::inbox(&account)]),
                    None => Resolution::UnknownUser,
                }
            }
            _ => Resolution::UnknownUser,
        },
        Recipient::NotLocal => Resolution::NotLocal,
        Recipient::Forward { accounts, remote } => Resolution::Alias {
            local: accounts.iter().map(|a| Target::inbox(a)).collect(),
            remote,
        },
    })
}

/// The keyword a message judged junk carries (RFC 5788).
pub const JUNK_KEYWORD: &str = "$Junk";

/// Files `targets` as junk: each copy goes to its account's Junk mailbox (the one with
/// the `\Junk` special use, else one named Junk, else stays where it was) and carries
/// [`JUNK_KEYWORD`]. Blocking: a scan of each account's handful of mailboxes.
pub fn file_as_junk(store: &Store, targets: &mut [Target]) -> Result<()> {
    use crate::store::SpecialUse;
    let mut junk_of: Vec<(String, Option<String>)> = Vec::new();
    for target in targets.iter_mut() {
        let known = junk_of.iter().find(|(a, _)| *a == target.account);
        let junk = match known {
            Some((_, junk)) => junk.clone(),
            None => {
                let mailboxes = store.mailboxes(&target.account)?;
                let junk = mailboxes
                    .iter()
                    .find(|m| m.special_use == Some(SpecialUse::Junk))
                    .or_else(|| {
                        mailboxes
                            .iter()
                            .find(|m| m.name.eq_ignore_ascii_case("Junk") && !m.noselect)
                    })
                    .map(|m| m.name.clone());
                junk_of.push((target.account.clone(), junk.clone()));
                junk
            }
        };
        if let Some(junk) = junk {
            target.mailbox = junk;
        }
        if !target
            .keywords
            .iter()
            .any(|k| k.eq_ignore_ascii_case(JUNK_KEYWORD))
        {
            target.keywords.push(JUNK_KEYWORD.to_string());
        }
    }
    Ok(())
}

/// One account's copies after the junk filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    pub targets: Vec<Target>,
    /// Filed as junk (by the checks' verdict or by the account's own filter).
    pub junk: bool,
    /// The account's Bayesian probability, when its filter is trained.
    pub bayes: Option<f64>,
}

/// Runs each account's junk filter over `sample` (the start of the message) and files
/// the copies of accounts judged junk — by the inbound checks (`judged_junk`) or by a
/// probability of at least `threshold` — into Junk. One entry per account, in the
/// order of `targets`. Blocking.
pub fn classify(
    store: &Store,
    targets: Vec<Target>,
    sample: &[u8],
    judged_junk: bool,
    threshold: f64,
) -> Result<Vec<Classified>> {
    let mut out: Vec<Classified> = Vec::new();
    for target in targets {
        match out
            .iter_mut()
            .find(|c| c.targets[0].account == target.account)
        {
            Some(c) => c.targets.push(target),
            None => out.push(Classified {
                targets: vec![target],
                junk: false,
                bayes: None,
            }),
        }
    }
    for c in &mut out {
        c.bayes = crate::junk::probability(store, &c.targets[0].account, sample)?;
        c.junk = judged_junk || c.bayes.is_some_and(|p| p >= threshold);
        if c.junk {
            file_as_junk(store, &mut c.targets)?;
        }
    }
    Ok(out)
}

/// The domain a bare `postmaster` recipient (no domain, RFC 5321 §4.5.1) belongs to: the
/// host name or the nearest parent of it that is a local domain, else the first local
/// domain. None when there are no domains.
pub fn postmaster_domain(store: &Reader, hostname: &str) -> Result<Option<String>> {
    let mut name = hostname.trim_end_matches('.');
    loop {
        if store.is_local_domain(name)? {
            return Ok(Some(name.to_ascii_lowercase()));
        }
        match name.split_once('.') {
            Some((_, parent)) if parent.contains('.') => name = parent,
            _ => break,
        }
    }
    Ok(store.domains()?.into_iter().next())
}

/// Adds `targets` to `into`, once each (two aliases leading to one account make one copy).
pub fn merge_targets(into: &mut Vec<Target>, targets: &[Target]) {
    for target in targets {
        if !into
            .iter()
            .any(|t| t.account == target.account && t.mailbox == target.mailbox)
        {
            into.push(target.clone());
        }
    }
}

/// Computes the IMAP description of a message held in memory, outside any transaction.
/// Spooled (large) messages get it at their first FETCH instead.
pub fn prepare(delivery: &mut Delivery) {
    // A queue-only message is never FETCHed: no description.
    if !delivery.targets.is_empty() {
        delivery.message.describe();
    }
}

/// Messages up to this size are described on the session's own task: for them the hop
/// to the blocking pool costs more than the work (about 30 µs for 4 KiB; measured with
/// bench-smtp, the hop cost 10 % of the throughput).
const DESCRIBE_INLINE: u64 = 32 * 1024;

/// Prepares and stores a delivery through the group committer; returns once durable.
pub async fn deliver(committer: &Committer, mut delivery: Delivery) -> Result<Accepted> {
    let described = !delivery.targets.is_empty()
        && matches!(delivery.message.body, crate::store::Spooled::Memory(_));
    if !described {
        // Nothing to describe: spooled (described at the first FETCH) or queue-only.
    } else if delivery.message.size() <= DESCRIBE_INLINE {
        prepare(&mut delivery);
    } else {
        delivery = tokio::task::spawn_blocking(move || {
            prepare(&mut delivery);
            delivery
        })
        .await
        .map_err(|_| crate::store::StoreError::Gone)?;
    }
    committer.commit(delivery).await
}

/// Prepares and stores a delivery in a transaction of its own (no server running).
pub fn deliver_now(store: &Store, mut delivery: Delivery) -> Result<Accepted> {
    prepare(&mut delivery);
    store.accept(&mut delivery)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::with_users;

    fn accounts(r: Resolution) -> Vec<String> {
        match r {
            Resolution::Local(targets) => targets.into_iter().map(|t| t.account).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn postmaster_always_resolves() {
        let t = with_users();
        let reader = t.store.reader();
        // Same creation second: the smaller address is the older account.
        let to = |a: &str| accounts(resolve(&reader, a).unwrap());
        assert_eq!(to("PostMaster@example.org"), ["alice@example.org"]);
        assert_eq!(to("bob@example.org"), ["bob@example.org"]);
        assert_eq!(
            resolve(&reader, "webmaster@example.org").unwrap(),
            Resolution::UnknownUser
        );
        assert_eq!(
            resolve(&reader, "postmaster@elsewhere.test").unwrap(),
            Resolution::NotLocal
        );
        t.store
            .add_alias("postmaster@example.org", &["bob@example.org".into()])
            .unwrap();
        assert_eq!(to("postmaster@example.org"), ["bob@example.org"]);
    }

    #[test]
    fn bare_postmaster_domain() {
        let t = with_users();
        let reader = t.store.reader();
        let domain = |h: &str| postmaster_domain(&reader, h).unwrap();
        assert_eq!(domain("mx.example.org"), Some("example.org".into()));
        assert_eq!(domain("Example.org"), Some("example.org".into()));
        t.store.add_domain("b.test").unwrap();
        assert_eq!(domain("mx.b.test"), Some("b.test".into()));
        assert_eq!(
            domain("mx.other.test"),
            Some("b.test".into()),
            "the first domain"
        );
    }
}
