//! The recipients' Sieve scripts, between the junk filter and the commit: each script
//! chooses where its account's copies go ([`delivery::filter`]); a `redirect` becomes a
//! queued copy with an SRS sender, stored before the 250 like every copy; a `reject`
//! refuses the message at DATA when its recipient is the only one, and is a bounce
//! otherwise. After the commit, [`after::carry_out`] does the rest (notices, vacation
//! replies, memory).

use super::*;
use crate::delivery::after;
use crate::delivery::filter::{self, Verdict};
use crate::delivery::srs::Srs;
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
                        && tx.forwards.is_empty()
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
                    let resolved = delivery::resolve(&self.shared.store.reader(), address);
                    // Where it goes on to other servers: the address, an alias's remote
                    // targets, or the original sender behind an SRS address of ours.
                    let remote = match resolved {
                        Ok(Resolution::Local(local)) => {
                            delivery::merge_targets(&mut kept, &local);
                            continue;
                        }
                        Ok(Resolution::NotLocal) => vec![address.clone()],
                        Ok(Resolution::Forward(original)) => vec![original],
                        Ok(Resolution::Alias { local, remote }) => {
                            delivery::merge_targets(&mut kept, &local);
                            remote
                        }
                        // Nobody here, or the lookup failed: the copy stays with the account.
                        other => {
                            log::warn!(
                                "smtp {}: sieve id={id}: redirect to {address}: {other:?}; kept instead",
                                self.conn.peer
                            );
                            delivery::merge_targets(&mut kept, std::slice::from_ref(&target));
                            continue;
                        }
                    };
                    for address in remote {
                        let utf8 = tx.smtputf8
                            && !(header_ascii && sender.is_ascii() && address.is_ascii());
                        redirects.push(self.redirect(tx, &address, utf8).await);
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
        let verdicts: Vec<(String, String, Verdict)> = after
            .verdicts
            .into_iter()
            .map(|(account, verdict)| {
                let rcpt = recipient_of(tx, &account);
                (account, rcpt, verdict)
            })
            .collect();
        let envid = tx.envid.clone();
        let queued = self
            .shared
            .store
            .call(move |store| {
                let envelope = after::Envelope {
                    sender: &sender,
                    envid: envid.as_deref(),
                    hostname: &hostname,
                    head: &head,
                    now,
                };
                after::carry_out(store, &verdicts, &envelope)
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
