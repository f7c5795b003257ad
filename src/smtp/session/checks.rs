//! The inbound checks in the session (MX listener only; see [`crate::inbound`]): at MAIL
//! the client and the sender, after DATA the message, then each recipient account's own
//! junk filter. The verdicts become headers on the stored copies.

use super::data::REPLY_NO_ROOM;
use super::*;
use crate::delivery::Classified;
use crate::inbound::policy::{refusal_at_mail, Decision, Refusal};
use crate::inbound::results::{forged_results, junk_header};
use crate::inbound::{findings_at_mail, MessageCheck, Peer};
use crate::limits::JUNK_SCAN_BYTES;
use crate::store::Spooled;

impl Session {
    /// Whether this session's mail goes through the inbound checks: the MX listener only.
    pub(super) fn checks_inbound(&self) -> bool {
        self.kind == ListenerKind::Smtp && self.user.is_none() && self.config.inbound.enabled
    }

    /// Phases 1 and 2 of the inbound checks, with the refusals configured for them.
    pub(super) async fn check_sender(
        &mut self,
        from: Option<&str>,
    ) -> Result<SenderCheck, Refusal> {
        let checker = self.shared.inbound();
        let config = self.config.clone();
        let helo = self.helo.clone().unwrap_or_default();
        let peer = Peer {
            ip: self.conn.peer.ip(),
            helo: &helo,
            hostname: &config.hostname,
        };
        let client = match self.client_check.take() {
            Some(client) => client,
            None => {
                let mut ours = self.shared.store.reader().domains().unwrap_or_default();
                ours.push(config.hostname.clone());
                checker.client(peer, &ours, &config.inbound).await
            }
        };
        let sender = checker
            .sender(peer, from, &config.inbound, unix_now())
            .await;
        let refusal = refusal_at_mail(&config.inbound, &findings_at_mail(&client, &sender));
        self.client_check = Some(client);
        match refusal {
            Some(r) => Err(r),
            None => Ok(sender),
        }
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
        let checker = self.shared.inbound();
        let config = self.config.clone();
        let helo = self.helo.clone().unwrap_or_default();
        let peer = Peer {
            ip: self.conn.peer.ip(),
            helo: &helo,
            hostname: &config.hostname,
        };
        let Some(client) = self.client_check.clone() else {
            return Err(b"451 4.3.0 Checks incomplete, try again later\r\n".to_vec());
        };
        let (check, forged) = {
            let view = body.view().map_err(|e| {
                log::error!("smtp {}: reading the spooled message: {e}", self.conn.peer);
                REPLY_NO_ROOM.to_vec()
            })?;
            let from = tx.from.as_deref();
            let check = checker
                .message(peer, &client, sender, from, &view, &config.inbound)
                .await;
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
    ) -> Vec<(Vec<Target>, Vec<u8>)> {
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
            .await
            .unwrap_or_else(|e| {
                log::error!("smtp {}: junk filter for id={id}: {e}", self.conn.peer);
                vec![Classified {
                    targets: fallback,
                    junk: false,
                    bayes: None,
                }]
            });
        let mut groups: Vec<(Vec<Target>, Vec<u8>)> = Vec::new();
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
            match groups.iter_mut().find(|(_, h)| *h == headers) {
                Some((group, _)) => group.extend(c.targets),
                None => groups.push((c.targets, headers)),
            }
        }
        groups
    }
}
