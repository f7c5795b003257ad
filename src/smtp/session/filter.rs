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

    /// The recipients all of whose accounts' scripts rejected the message.
    pub fn refused_recipients(&self, recipients: &[(String, Vec<Target>)]) -> Vec<String> {
        let rejecting = |account: &str| {
            self.verdicts
                .iter()
                .any(|(a, v)| a == account && v.reject.is_some())
        };
        recipients
            .iter()
            .filter(|(_, targets)| {
                !targets.is_empty() && targets.iter().all(|t| rejecting(&t.account))
            })
            .map(|(rcpt, _)| rcpt.clone())
            .collect()
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
            Err(e) => {
                // A script over an empty message could discard it: keep it instead.
                log::error!(
                    "smtp {}: sieve for id={id}: reading the spool: {e}",
                    self.conn.peer
                );
                return Ok(AfterCommit::default());
            }
        };
        let header_ascii = crate::mail::header_of(&sample).is_ascii();
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
                let recipient = recipient_of(tx, &target.account);
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
                let mut verdict = match verdict {
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
                    // Refused in the dialogue only when nobody else (another recipient, or
                    // another account behind the same alias) takes the message.
                    let only = tx.outbound.is_empty()
                        && matches!(tx.recipients.as_slice(), [(_, targets)] if targets.len() == 1);
                    if only {
                        return Err(format_reply(550, Some("5.7.1"), &[&reply_text(reason)]));
                    }
                }
                // No out-of-office replies to junk: its senders are mostly forged.
                if verdict.vacation.is_some()
                    && target
                        .keywords
                        .iter()
                        .any(|k| k.eq_ignore_ascii_case(delivery::JUNK_KEYWORD))
                {
                    log::info!(
                        "smtp {}: sieve id={id}: no vacation reply to junk",
                        self.conn.peer
                    );
                    verdict.vacation = None;
                }
                delivery::merge_targets(&mut kept, &verdict.targets);
                for address in &verdict.redirects {
                    // To one of ours: a copy there, without running its script (no loops).
                    match delivery::resolve(&self.shared.store.reader(), address) {
                        Ok(Resolution::Local(local)) => delivery::merge_targets(&mut kept, &local),
                        Ok(Resolution::NotLocal) => {
                            let utf8 = tx.smtputf8
                                && !(header_ascii && sender.is_ascii() && address.is_ascii());
                            redirects.push(self.redirect(tx, address, utf8).await);
                        }
                        // Nobody here, or the lookup failed: the copy stays with the account.
                        other => {
                            log::warn!(
                                "smtp {}: sieve id={id}: redirect to {address}: {other:?}; kept instead",
                                self.conn.peer
                            );
                            delivery::merge_targets(&mut kept, std::slice::from_ref(&target));
                        }
                    }
                }
                after.verdicts.push((target.account.clone(), verdict));
            }
            group.targets = kept;
        }
        groups.extend(redirects);
        Ok(after)
    }

    /// A queued copy for `address` (a redirect, a forwarding alias), its sender rewritten
    /// with SRS.
    // `&mut self`: a future holding `&Session` would not be Send (Connection is not Sync).
    pub(super) async fn redirect(
        &mut self,
        tx: &Transaction,
        address: &str,
        smtputf8: bool,
    ) -> Group {
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
                smtputf8,
                // Default NOTIFY: a failure goes back to the SRS sender, and on from there
                // to the original sender, so a redirected message is never lost unseen.
                recipients: vec![(address.to_string(), None, 0)],
                ..Outbound::default()
            }),
        }
    }

    /// After the commit, before the 250: bounces for rejects (an error here is the
    /// caller's 451: the sender must learn of the reject), then vacation replies,
    /// failure notices and the memory, each failing on its own (logged).
    pub(super) async fn after_scripts(
        &mut self,
        tx: &Transaction,
        after: AfterCommit,
        head: Vec<u8>,
        now: i64,
    ) -> Result<(), crate::store::StoreError> {
        if after.verdicts.is_empty() {
            return Ok(());
        }
        let sender = tx.from.clone().unwrap_or_default();
        let hostname = self.config.hostname.clone();
        let recipients: Vec<(String, String)> = after
            .verdicts
            .iter()
            .map(|(account, _)| (account.clone(), recipient_of(tx, account)))
            .collect();
        let envid = tx.envid.clone();
        let peer = self.conn.peer;
        let queued = self
            .shared
            .store
            .call(move |store| {
                let mut queued = false;
                for ((_, verdict), (_, rcpt)) in after.verdicts.iter().zip(&recipients) {
                    if let Some(reason) = &verdict.reject {
                        let about = notice::About {
                            sender: &sender,
                            envid: envid.as_deref(),
                            arrival: now,
                        };
                        if let Some(bounce) =
                            notice::rejected(store, &hostname, about, rcpt, reason, &head)?
                        {
                            queued |= bounce.outbound.is_some();
                            delivery::deliver_now(store, bounce)?;
                        }
                    }
                }
                for ((account, verdict), (_, rcpt)) in after.verdicts.iter().zip(&recipients) {
                    let done = (|| -> crate::store::Result<()> {
                        filter::remember(store, account, verdict, now)?;
                        if let Some(reply) = &verdict.vacation {
                            let facts = Facts {
                                account,
                                rcpt,
                                sender: &sender,
                                head: &head,
                                hostname: &hostname,
                                now,
                            };
                            queued |= send_vacation(store, &facts, reply)?;
                        }
                        if let Some(error) = &verdict.error {
                            if filter::first_failure(store, account, verdict, now)? {
                                delivery::deliver_now(
                                    store,
                                    failure_notice(account, error, &hostname, now),
                                )?;
                            }
                        }
                        Ok(())
                    })();
                    if let Err(e) = done {
                        log::error!("smtp {peer}: after the script of {account}: {e}");
                    }
                }
                Ok(queued)
            })
            .await?;
        if queued {
            self.shared.relay_wake.notify_one();
        }
        Ok(())
    }
}

/// The address a recipient account was reached by (its RCPT, or an alias of it).
fn recipient_of(tx: &Transaction, account: &str) -> String {
    tx.recipients
        .iter()
        .find(|(_, targets)| targets.iter().any(|t| t.account == account))
        .map_or(account.to_string(), |(rcpt, _)| rcpt.clone())
}

/// What a vacation reply is about.
struct Facts<'a> {
    account: &'a str,
    rcpt: &'a str,
    sender: &'a str,
    head: &'a [u8],
    hostname: &'a str,
    now: i64,
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
fn send_vacation(
    store: &crate::store::Store,
    facts: &Facts,
    reply: &crate::sieve::run::Reply,
) -> crate::store::Result<bool> {
    let Facts {
        account,
        rcpt,
        sender,
        head,
        hostname,
        now,
    } = *facts;
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
    let routing = notice::routing(store, sender)?;
    let Some(delivery) = notice::to_sender(message, sender, &routing, now) else {
        return Ok(false);
    };
    let queued = delivery.outbound.is_some();
    delivery::deliver_now(store, delivery)?;
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
    let routing = notice::Routing::Local(vec![Target::inbox(account)]);
    notice::to_sender(text.into_bytes(), account, &routing, now)
        .expect("a local routing always delivers")
}
