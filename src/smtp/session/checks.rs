//! The inbound checks in the session (MX listener only; see [`crate::inbound`]): at MAIL
//! the client and the sender, after DATA the message, then each recipient account's own
//! junk filter. The verdicts become headers on the stored copies.

use super::data::REPLY_NO_ROOM;
use super::filter::Group;
use super::*;
use crate::delivery::Classified;
use crate::inbound::policy::{refusal_at_mail, Decision, Refusal};
use crate::inbound::results::{forged_results, junk_header};
use crate::inbound::{findings_at_mail, Checker, MessageCheck, Peer};
use crate::limits::JUNK_SCAN_BYTES;
use crate::store::Spooled;
use std::time::Duration;

/// The most each phase of the checks may take: DNS lookups (5 s, two attempts each) of
/// several records, some in sequence; a message with many signatures asks for many keys.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

impl Session {
    /// Whether this session's mail goes through the inbound checks: the MX listener only.
    pub(super) fn checks_inbound(&self) -> bool {
        self.kind == ListenerKind::Smtp && self.user.is_none() && self.config.inbound.enabled
    }

    /// What every phase needs: the checker, the configuration and the HELO name (which
    /// the [`Peer`] borrows).
    fn check_context(&self) -> (Arc<Checker>, Arc<Config>, String) {
        let helo = self.helo.clone().unwrap_or_default();
        (self.shared.inbound(), self.config.clone(), helo)
    }

    /// The client as the checks see it; an IPv4 client of an IPv6 socket as IPv4.
    fn peer<'a>(&self, helo: &'a str, config: &'a Config) -> Peer<'a> {
        Peer {
            ip: self.conn.peer.ip().to_canonical(),
            helo,
            hostname: &config.hostname,
        }
    }

    /// Phases 1 and 2 of the inbound checks, and the refusal configured for what they
    /// found, if any. Both phases together are bounded by [`CHECK_TIMEOUT`].
    pub(super) async fn check_sender(
        &mut self,
        from: Option<&str>,
    ) -> (SenderCheck, Option<Refusal>) {
        let (checker, config, helo) = self.check_context();
        let peer = self.peer(&helo, &config);
        let known = self.client_check.take();
        let checks = async {
            let client = match known {
                Some(client) => client,
                None => checker.client(peer, &config.inbound).await,
            };
            let sender = checker
                .sender(peer, from, &config.inbound, unix_now())
                .await;
            (client, sender)
        };
        let Ok((client, sender)) = tokio::time::timeout(CHECK_TIMEOUT, checks).await else {
            log::warn!(
                "smtp {}: the client and sender checks timed out",
                self.conn.peer
            );
            let refusal = Refusal {
                code: 451,
                esc: "4.4.3",
                text: "Temporary DNS failure, try again later".into(),
            };
            return (SenderCheck::unknown(), Some(refusal));
        };
        let refusal = refusal_at_mail(&config.inbound, &findings_at_mail(&client, &sender));
        self.client_check = Some(client);
        (sender, refusal)
    }

    /// Phase 3: the verdict on the message, and the removal of Authentication-Results:
    /// claiming our name from `body`. Returns the check, or the reply refusing the message.
    pub(super) async fn check_message(
        &mut self,
        tx: &Transaction,
        sender: &SenderCheck,
        body: &mut Spooled,
        id: &str,
    ) -> Result<MessageCheck, Vec<u8>> {
        let (checker, config, helo) = self.check_context();
        let peer = self.peer(&helo, &config);
        let Some(client) = self.client_check.clone() else {
            return Err(b"451 4.3.0 Checks incomplete, try again later\r\n".to_vec());
        };
        let (check, forged) = {
            let view = body.view().map_err(|e| {
                log::error!("smtp {}: reading the spooled message: {e}", self.conn.peer);
                REPLY_NO_ROOM.to_vec()
            })?;
            let from = tx.from.as_deref();
            let check = checker.message(peer, &client, sender, from, &view, &config.inbound);
            let Ok(check) = tokio::time::timeout(CHECK_TIMEOUT, check).await else {
                log::warn!("smtp {}: the checks of id={id} timed out", self.conn.peer);
                return Err(b"451 4.4.3 Temporary DNS failure, try again later\r\n".to_vec());
            };
            let forged = forged_results(crate::mail::header_of(&view), &config.hostname);
            (check, forged)
        };
        if !forged.is_empty() {
            let taken = std::mem::replace(body, Spooled::Memory(Vec::new()));
            *body = taken
                .without(&forged, self.shared.store.spool_dir())
                .map_err(|e| {
                    log::error!("smtp {}: re-spooling the message: {e}", self.conn.peer);
                    REPLY_NO_ROOM.to_vec()
                })?;
        }
        let j = &check.judgement;
        let verdict = match &j.decision {
            Ok(Decision::Accept) => "accept",
            Ok(Decision::Junk) => "junk",
            Err(r) if r.code >= 500 => "reject",
            Err(_) => "defer",
        };
        log::info!(
            "smtp {}: checked id={id} from=<{}> verdict={verdict} score={:.1}{}",
            self.conn.peer,
            tx.from.as_deref().unwrap_or(""),
            j.score,
            j.reasons
                .iter()
                .map(|(why, _)| format!(" {why}"))
                .collect::<String>()
        );
        match &j.decision {
            Err(r) => Err(format_reply(r.code, Some(r.esc), &[r.text.as_str()])),
            Ok(_) => Ok(check),
        }
    }

    /// Each recipient account's junk filter over the checked message: the copies grouped
    /// by the headers they get (Authentication-Results:, then the junk explanation with
    /// that account's probability). Accounts with the same verdict share one group.
    pub(super) async fn classify(
        &mut self,
        check: MessageCheck,
        targets: Vec<Target>,
        body: &Spooled,
        id: &str,
    ) -> Vec<Group> {
        let judged_junk = check.judgement.decision == Ok(Decision::Junk);
        let sample = match body.view() {
            Ok(view) => view[..view.len().min(JUNK_SCAN_BYTES)].to_vec(),
            Err(_) => Vec::new(),
        };
        let threshold = self.config.inbound.junk_probability;
        let fallback = targets.clone();
        let classified = self
            .shared
            .store
            .call(move |store| delivery::classify(store, targets, &sample, judged_junk, threshold))
            .await;
        let classified = match classified {
            Ok(classified) => classified,
            Err(e) => {
                // Without the filters, the checks' own verdict still files the copies.
                log::error!("smtp {}: junk filter for id={id}: {e}", self.conn.peer);
                let mut targets = fallback.clone();
                let filed = if judged_junk {
                    self.shared
                        .store
                        .call(move |store| {
                            delivery::file_as_junk(store, &mut targets)?;
                            Ok(targets)
                        })
                        .await
                        .unwrap_or(fallback)
                } else {
                    fallback
                };
                vec![Classified {
                    targets: filed,
                    junk: judged_junk,
                    bayes: None,
                }]
            }
        };
        let mut groups: Vec<Group> = Vec::new();
        for c in classified {
            if let Some(p) = c.bayes {
                log::info!(
                    "smtp {}: junk filter id={id} account={} bayes={p:.3} junk={}",
                    self.conn.peer,
                    c.targets[0].account,
                    c.junk
                );
            }
            let mut headers = check.results_header.clone().into_bytes();
            headers.extend_from_slice(junk_header(&check.judgement, c.junk, c.bayes).as_bytes());
            // spamtest's view: the account's probability, or certain junk by the checks.
            let spam = match c.bayes {
                Some(p) => Some((p * 100.0).round().clamp(0.0, 100.0) as u8),
                None => c.junk.then_some(100),
            };
            match groups.iter_mut().find(|g| g.headers == headers) {
                Some(group) => group.targets.extend(c.targets),
                None => groups.push(Group {
                    targets: c.targets,
                    headers,
                    spam,
                    outbound: None,
                }),
            }
        }
        groups
    }
}
