//! The recipients' Sieve scripts, between the junk filter and the commit: each script
//! chooses where its account's copies go ([`delivery::filter`]); a `redirect` becomes a
//! queued copy with an SRS sender, stored before the 250 like every copy; a `reject`
//! refuses the message at DATA when its recipient is the only one, and is a bounce
//! otherwise. After the commit: vacation replies (RFC 3834's rules, once per sender and
//! period), the one-time notice of a failing script, and the `duplicate` memory.

use super::*;
use crate::delivery::filter::{self, Verdict};
use crate::delivery::srs::Srs;
use crate::delivery::vacation;
use crate::sieve::input::Input;
use crate::store::Spooled;

/// The most of a message a script sees (headers and `body` tests; `size` sees all).
pub(super) const SIEVE_SCAN_BYTES: usize = 1 << 20;

/// Copies that share the headers only they carry (see `Session::classify`).
pub(super) struct Group {
    pub targets: Vec<Target>,
    pub headers: Vec<u8>,
    /// The junk filter's verdict in percent, for spamtest.
    pub spam: Option<u8>,
    /// A queued copy of its own (a redirect).
    pub outbound: Option<Outbound>,
}

impl Group {
    pub fn plain(targets: Vec<Target>) -> Group {
        Group {
            targets,
            headers: Vec::new(),
            spam: None,
            outbound: None,
        }
    }
}

/// What the scripts left to do once the message is stored.
#[derive(Default)]
pub(super) struct AfterCommit {
    verdicts: Vec<(String, Verdict)>,
}

impl AfterCommit {
    pub fn is_empty(&self) -> bool {
        self.verdicts.is_empty()
    }
}

impl Session {
    /// Runs the scripts of the accounts in `groups` and applies them; `Err` is the reply
    /// refusing the message (a reject for the only recipient).
    pub(super) async fn run_scripts(
        &mut self,
        tx: &Transaction,
        groups: &mut Vec<Group>,
        prefix: &[u8],
        body: &Spooled,
        id: &str,
    ) -> Result<AfterCommit, Vec<u8>> {
        let accounts: Vec<String> = groups
            .iter()
            .flat_map(|g| g.targets.iter().map(|t| t.account.clone()))
            .collect();
        let scripted = self
            .shared
            .store
            .call(move |store| {
                let mut with: Vec<String> = Vec::new();
                for account in accounts {
                    if !with.contains(&account) && filter::has_script(store, &account)? {
                        with.push(account);
                    }
                }
                Ok(with)
            })
            .await
            .unwrap_or_default();
        if scripted.is_empty() {
            return Ok(AfterCommit::default());
        }
        let sample = match body.view() {
            Ok(view) => view[..view.len().min(SIEVE_SCAN_BYTES)].to_vec(),
            Err(_) => Vec::new(),
        };
        let size = prefix.len() as u64 + body.len();
        let sender = tx.from.clone().unwrap_or_default();
        let mut after = AfterCommit::default();
        let mut redirects: Vec<Group> = Vec::new();
        for group in groups.iter_mut() {
            let mut kept: Vec<Target> = Vec::new();
            for target in std::mem::take(&mut group.targets) {
                if !scripted.contains(&target.account) {
                    kept.push(target);
                    continue;
                }
                let recipient = tx
                    .recipients
                    .iter()
                    .find(|(_, ts)| ts.iter().any(|t| t.account == target.account))
                    .map_or(target.account.clone(), |(r, _)| r.clone());
                let mut message = prefix.to_vec();
                message.extend_from_slice(&group.headers);
                message.extend_from_slice(&sample);
                let (default, from, spam) = (target.clone(), sender.clone(), group.spam);
                let verdict = self
                    .shared
                    .store
                    .call(move |store| {
                        let input = Input {
                            message: &message,
                            size,
                            envelope_from: &from,
                            envelope_to: &recipient,
                            now: unix_now(),
                            local_zone: 0,
                            spam_percent: spam,
                        };
                        filter::filter(store, &default, &input)
                    })
                    .await;
                let verdict = match verdict {
                    Ok(Some(v)) => v,
                    Ok(None) => {
                        kept.push(target);
                        continue;
                    }
                    Err(e) => {
                        // The store failed us: the copy goes where it would without a script.
                        log::error!("smtp {}: sieve for id={id}: {e}", self.conn.peer);
                        kept.push(target);
                        continue;
                    }
                };
                log::info!(
                    "smtp {}: sieve id={id} account={} copies={} redirects={} reject={} vacation={}{}",
                    self.conn.peer,
                    target.account,
                    verdict.targets.len(),
                    verdict.redirects.len(),
                    verdict.reject.is_some(),
                    verdict.vacation.is_some(),
                    verdict.error.as_deref().map(|e| format!(" error={e:?}")).unwrap_or_default()
                );
                if let Some(reason) = &verdict.reject {
                    let only = tx.recipients.len() == 1 && tx.outbound.is_empty();
                    if only {
                        return Err(format_reply(550, Some("5.7.1"), &[&reply_text(reason)]));
                    }
                }
                delivery::merge_targets(&mut kept, &verdict.targets);
                for address in &verdict.redirects {
                    // To one of ours: a copy there, without running its script (no loops).
                    match delivery::resolve(&self.shared.store.reader(), address) {
                        Ok(Resolution::Local(local)) => delivery::merge_targets(&mut kept, &local),
                        _ => redirects.push(self.redirect(tx, address).await),
                    }
                }
                after.verdicts.push((target.account.clone(), verdict));
            }
            group.targets = kept;
        }
        groups.extend(redirects);
        Ok(after)
    }

    /// A queued copy for `address`, its sender rewritten with SRS.
    // `&mut self`: a future holding `&Session` would not be Send (Connection is not Sync).
    async fn redirect(&mut self, tx: &Transaction, address: &str) -> Group {
        let sender = tx.from.clone().unwrap_or_default();
        let domain = self.config.hostname.clone();
        let rewritten = self
            .shared
            .store
            .call(move |store| {
                let srs = Srs::new(&store.srs_secret()?);
                let domain = srs_domain(store, &domain)?;
                Ok(srs.forward(&sender, &domain, unix_now()))
            })
            .await
            .unwrap_or_else(|_| tx.from.clone().unwrap_or_default());
        Group {
            targets: Vec::new(),
            headers: Vec::new(),
            spam: None,
            outbound: Some(Outbound {
                sender: rewritten,
                eight_bit: tx.eight_bit,
                smtputf8: tx.smtputf8,
                recipients: vec![(address.to_string(), None, notify::NEVER)],
                ..Outbound::default()
            }),
        }
    }

    /// After the commit: bounces for rejects, vacation replies, failure notices, memory.
    pub(super) async fn after_scripts(
        &mut self,
        tx: &Transaction,
        after: AfterCommit,
        head: Vec<u8>,
        now: i64,
    ) {
        if after.verdicts.is_empty() {
            return;
        }
        let sender = tx.from.clone().unwrap_or_default();
        let hostname = self.config.hostname.clone();
        let recipients: Vec<(String, String)> = tx
            .recipients
            .iter()
            .flat_map(|(r, ts)| ts.iter().map(|t| (t.account.clone(), r.clone())))
            .collect();
        let envid = tx.envid.clone();
        let result = self
            .shared
            .store
            .call(move |store| {
                let mut queued = false;
                for (account, verdict) in &after.verdicts {
                    filter::remember(store, account, verdict, now)?;
                    let rcpt = recipients
                        .iter()
                        .find(|(a, _)| a == account)
                        .map_or(account.clone(), |(_, r)| r.clone());
                    if let Some(reason) = &verdict.reject {
                        let about = notice::About {
                            sender: &sender,
                            envid: envid.as_deref(),
                            arrival: now,
                        };
                        if let Some(bounce) =
                            notice::rejected(store, &hostname, about, &rcpt, reason, &head)?
                        {
                            queued |= bounce.outbound.is_some();
                            delivery::deliver_now(store, bounce)?;
                        }
                    }
                    if let Some(reply) = &verdict.vacation {
                        queued |= send_vacation(
                            store, account, &rcpt, reply, &sender, &head, &hostname, now,
                        )?;
                    }
                    if let Some(error) = &verdict.error {
                        if filter::first_failure(store, account, error, now)? {
                            delivery::deliver_now(
                                store,
                                failure_notice(account, error, &hostname, now),
                            )?;
                        }
                    }
                }
                Ok(queued)
            })
            .await;
        match result {
            Ok(true) => self.shared.relay_wake.notify_one(),
            Ok(false) => {}
            Err(e) => log::error!("smtp {}: after the scripts: {e}", self.conn.peer),
        }
    }
}

/// The domain our SRS addresses use: the host name's local domain, else the first one.
fn srs_domain(store: &crate::store::Store, hostname: &str) -> crate::store::Result<String> {
    Ok(delivery::postmaster_domain(&store.reader(), hostname)?
        .unwrap_or_else(|| hostname.to_string()))
}

/// A reject reason as one line of a reply: printable ASCII, at most 200 characters.
fn reply_text(reason: &str) -> String {
    let text: String = reason
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                ' '
            }
        })
        .take(200)
        .collect();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        "Rejected by the recipient's filter".into()
    } else {
        text
    }
}

/// A vacation reply, when RFC 3834 allows one and none went to this sender within the
/// period: queued (or stored, for a local sender) with the null sender. True if queued.
#[allow(clippy::too_many_arguments)]
fn send_vacation(
    store: &crate::store::Store,
    account: &str,
    rcpt: &str,
    reply: &crate::sieve::run::Reply,
    sender: &str,
    head: &[u8],
    hostname: &str,
    now: i64,
) -> crate::store::Result<bool> {
    let mut own = vec![account.to_string(), rcpt.to_string()];
    own.extend(reply.addresses.iter().cloned());
    if let Err(why) = vacation::may_reply(head, sender, &own) {
        log::info!("sieve: no vacation reply from {account} to <{sender}>: {why}");
        return Ok(false);
    }
    let key = vacation::memory_key(sender, reply);
    if store.sieve_remembers(account, &key, now)? {
        return Ok(false);
    }
    let message = vacation::build(reply, account, sender, head, hostname, now);
    let prefix = b"Return-Path: <>\r\n".to_vec();
    let skip = prefix.len() as u64;
    let eight_bit = !message.is_ascii();
    let routing = notice::routing(store, sender)?;
    let (targets, outbound) = match routing {
        notice::Routing::Local(targets) => (targets, None),
        notice::Routing::Remote => (
            Vec::new(),
            Some(Outbound {
                sender: String::new(),
                recipients: vec![(sender.to_string(), None, notify::NEVER)],
                skip,
                eight_bit,
                ..Outbound::default()
            }),
        ),
        notice::Routing::Nowhere => return Ok(false),
    };
    let queued = outbound.is_some();
    delivery::deliver_now(
        store,
        Delivery {
            message: Incoming::new(prefix, crate::store::Spooled::Memory(message), now),
            targets,
            outbound,
        },
    )?;
    store.sieve_remember(account, &key, now + reply.seconds as i64, now)?;
    log::info!("sieve: vacation reply from {account} to <{sender}>");
    Ok(queued)
}

/// The message that tells an account's owner their script failed (once per failure).
fn failure_notice(account: &str, error: &str, hostname: &str, now: i64) -> Delivery {
    let text = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n\
         To: <{account}>\r\n\
         Subject: Your Sieve script failed\r\n\
         Date: {date}\r\n\
         Message-ID: <sieve-error.{now}.{hash:016x}@{hostname}>\r\n\
         Auto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         Your Sieve filter could not run on a message delivered to {account}:\r\n\
         \r\n    {error}\r\n\r\n\
         The message was kept in your inbox, as will be every message until the script\r\n\
         is fixed. You are told this once.\r\n",
        date = crate::mail::date::rfc5322_date(now),
        hash = vacation::fnv(error.as_bytes()),
        error = error.replace(['\r', '\n'], " "),
    );
    Delivery {
        message: Incoming::new(
            b"Return-Path: <>\r\n".to_vec(),
            crate::store::Spooled::Memory(text.into_bytes()),
            now,
        ),
        targets: vec![Target::inbox(account)],
        outbound: None,
    }
}
