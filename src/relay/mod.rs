//! Outbound mail: the queue's delivery side.
//!
//! - [`route`]: where a recipient's mail goes (smarthost or MX hosts via hickory-resolver),
//!   and the TLS client configurations.
//! - [`client`]: the SMTP client that talks to a next hop.
//! - [`runner`]: the scheduler: picks due queue entries, groups their recipients by route,
//!   delivers each group over one connection, within the connection limits.
//! - [`schedule`]: the scheduler's bookkeeping: due entries, per-route limits (pure).
//! - [`retry`]: the backoff schedule (pure).
//! - [`dkim`]: DKIM keys (`letterbox dkim generate`) and signing with mail-auth.
//! - [`mta_sts`]: recipient domains' MTA-STS policies (RFC 8461), enforced by [`route`].
//! - [`dane`]: TLSA records (RFC 7672) checked against MX certificates, with `[relay] dnssec`.
//! - [`tlsrpt`]: the TLS results per recipient domain and day, and the daily reports (RFC 8460).
//!
//! This module ties them together: [`record`] applies the outcome of an attempt to a queue
//! entry and writes any DSN (built by [`crate::delivery::notice`]) in the same
//! transaction, so that a crash never loses a bounce nor sends one twice.
//!
//! # Decisions
//! - A queue entry is a blob reference plus per-recipient state (see
//!   [`crate::store::QueuedMessage`]); recipients of one message to one route share one
//!   transaction on the wire, and several messages to one route share one connection.
//! - A recipient is marked delivered only after the next hop's 250 to the final dot was
//!   read and the store committed it; a crash in between sends it again (SMTP's own
//!   at-least-once window), never loses it.
//! - 4xx and network trouble: retry with backoff until `max_age_secs`, then bounce with
//!   4.4.7 and the last error. 5xx: bounce at once. Bounces (null sender) are never
//!   bounced. A delay notice goes out once, after `delay_notice_secs`, to recipients whose
//!   NOTIFY allows it.
//! - RET: failures include the original header (RET=HDRS or no RET) or the whole message
//!   when RET=FULL asked for it and it is at most [`MAX_RETURNED_MESSAGE`] bytes.
//! - DSN (RFC 3461) is honoured: parameters are passed on to a next hop that offers DSN;
//!   when it does not, a NOTIFY=SUCCESS recipient gets a "relayed" notice from us.
//! - Forwarded mail (aliases to other domains, Sieve redirects) is queued with an SRS
//!   sender (`delivery::srs`), so SPF at the destination sees our domain.

pub mod client;
pub mod dane;
pub mod dkim;
pub mod mta_sts;
pub mod retry;
pub mod route;
pub mod runner;
pub mod schedule;
pub mod tlsrpt;

use crate::config::Relay;
use crate::delivery::notice::{self, About, Original};
use crate::mail::dsn::{Action, RecipientReport};
use crate::store::{notify, QueuedMessage, RecipientState, Store};
use client::Failure;

/// The largest original message a RET=FULL failure notice carries whole.
pub const MAX_RETURNED_MESSAGE: u64 = 1 << 20;

/// What happened to one recipient (by index) in one attempt.
#[derive(Debug, Clone)]
pub enum Attempt {
    /// The next hop took it; `dsn` when it takes over DSN duties.
    Delivered { remote: String, dsn: bool },
    Failed {
        remote: Option<String>,
        failure: Failure,
    },
}

/// Applies one attempt's results to queue entry `id` and stores what the sender must be
/// told, all in one transaction. Returns the entry as it now stands (None: it left the
/// queue).
pub fn record(
    store: &Store,
    relay: &Relay,
    hostname: &str,
    id: u64,
    results: &[(usize, Attempt)],
    now: i64,
) -> crate::store::Result<Option<QueuedMessage>> {
    let Some(current) = store.queued(id)? else {
        return Ok(None);
    };
    let original = original_for_report(store, &current)?;
    let routing = notice::routing(store, &current.sender)?;
    store.update_queued(id, |entry| {
        let mut reports = Vec::new();
        let mut delays = Vec::new();
        for (index, result) in results {
            let Some(r) = entry.recipients.get_mut(*index) else {
                continue;
            };
            if r.state.is_final() {
                continue;
            }
            r.attempts += 1;
            match result {
                Attempt::Delivered { remote, dsn } => {
                    r.state = RecipientState::Delivered { relayed: !dsn };
                    r.remote = Some(remote.clone());
                    r.last_error = None;
                    if !dsn && notify::wants(r.notify, notify::SUCCESS) {
                        reports.push(report_line(r, Action::Relayed, "2.0.0", None, now));
                    }
                }
                Attempt::Failed { remote, failure } => {
                    r.remote = remote.clone().or(r.remote.take());
                    r.last_error = Some(failure.diagnostic.clone());
                    let expired = now - entry.arrival >= relay.max_age_secs as i64;
                    if failure.permanent || expired {
                        r.state = RecipientState::Failed;
                        let status = if failure.permanent {
                            failure.status.clone()
                        } else {
                            "4.4.7".to_string()
                        };
                        if notify::wants(r.notify, notify::FAILURE) {
                            reports.push(report_line(r, Action::Failed, &status, None, now));
                        }
                    } else {
                        r.state = RecipientState::Deferred;
                        let jitter = rand_jitter();
                        r.next_attempt = now
                            + retry::retry_delay(
                                r.attempts,
                                relay.retry_base_secs,
                                relay.retry_max_secs,
                                jitter,
                            ) as i64;
                        let until = entry.arrival + relay.max_age_secs as i64;
                        if notify::wants(r.notify, notify::DELAY) {
                            delays.push(report_line(
                                r,
                                Action::Delayed,
                                &failure.status,
                                Some(until),
                                now,
                            ));
                        }
                    }
                }
            }
        }
        let mut notices = Vec::new();
        if entry.sender.is_empty() {
            return notices; // never bounce a bounce
        }
        if !reports.is_empty() {
            notices.push(notice::build(
                About::from(&*entry),
                hostname,
                reports,
                &original,
                &routing,
                now,
            ));
        }
        let late =
            relay.delay_notice_secs > 0 && now - entry.arrival >= relay.delay_notice_secs as i64;
        if late && !entry.delay_notified && !delays.is_empty() {
            entry.delay_notified = true;
            let headers = Original {
                bytes: crate::mail::header_of(&original.bytes).to_vec(),
                full: false,
            };
            notices.push(notice::build(
                About::from(&*entry),
                hostname,
                delays,
                &headers,
                &routing,
                now,
            ));
        }
        notices
    })
}

/// Fails every recipient not yet final (`letterbox queue bounce`), telling the sender.
pub fn bounce_all(
    store: &Store,
    relay: &Relay,
    hostname: &str,
    id: u64,
    why: &str,
    now: i64,
) -> crate::store::Result<bool> {
    let Some(entry) = store.queued(id)? else {
        return Ok(false);
    };
    let results: Vec<(usize, Attempt)> = entry
        .recipients
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.state.is_final())
        .map(|(i, _)| {
            (
                i,
                Attempt::Failed {
                    remote: None,
                    failure: Failure::permanent("5.0.0", why),
                },
            )
        })
        .collect();
    record(store, relay, hostname, id, &results, now)?;
    Ok(true)
}

fn report_line(
    r: &crate::store::QueuedRecipient,
    action: Action,
    status: &str,
    retry_until: Option<i64>,
    now: i64,
) -> RecipientReport {
    RecipientReport {
        address: r.address.clone(),
        orcpt: r.orcpt.clone(),
        action,
        status: status.to_string(),
        remote: r.remote.clone(),
        diagnostic: r.last_error.clone(),
        last_attempt: Some(now),
        retry_until,
    }
}

fn rand_jitter() -> u64 {
    use rand_core::RngCore;
    rand_core::OsRng.next_u64()
}

/// The header of the queued message, or all of it for RET=FULL when small enough.
fn original_for_report(store: &Store, entry: &QueuedMessage) -> crate::store::Result<Original> {
    let full = entry.ret_full == Some(true) && entry.size - entry.skip <= MAX_RETURNED_MESSAGE;
    let mut bytes = Vec::new();
    let mut index = 0;
    // Headers live in the first chunks; stop once the blank line is in.
    while index < crate::store::chunk_count(entry.size) {
        bytes.extend_from_slice(&store.read_chunk(entry.blob, index)?);
        index += 1;
        let body = &bytes[(entry.skip as usize).min(bytes.len())..];
        if !full && body.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if bytes.len() as u64 > MAX_RETURNED_MESSAGE + entry.skip {
            break;
        }
    }
    bytes.drain(..(entry.skip as usize).min(bytes.len()));
    if full {
        Ok(Original { bytes, full })
    } else {
        Ok(Original {
            bytes: crate::mail::header_of(&bytes).to_vec(),
            full: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::with_users;
    use crate::store::{Delivery, Incoming, Outbound, Spooled};

    const ARRIVAL: i64 = 1_700_000_000;

    fn queue_one(store: &Store, sender: &str, notify_bits: u8) -> u64 {
        let message = Incoming::new(
            b"Return-Path: <x>\r\n".to_vec(),
            Spooled::Memory(b"Subject: original\r\n\r\nbody\r\n".to_vec()),
            ARRIVAL,
        );
        let outbound = Outbound {
            sender: sender.into(),
            recipients: vec![("bob@remote.test".into(), None, notify_bits)],
            skip: 18,
            ..Outbound::default()
        };
        store
            .enqueue(&mut Delivery {
                message,
                targets: Vec::new(),
                outbound: Some(outbound),
            })
            .unwrap()
    }

    fn failed(permanent: bool) -> Vec<(usize, Attempt)> {
        let failure = if permanent {
            Failure::permanent("5.1.1", "550 5.1.1 no such user")
        } else {
            Failure {
                permanent: false,
                diagnostic: "451 4.3.0 later".into(),
                status: "4.3.0".into(),
            }
        };
        vec![(
            0,
            Attempt::Failed {
                remote: Some("mx.remote.test".into()),
                failure,
            },
        )]
    }

    /// The texts of the messages in alice's INBOX.
    fn inbox(store: &Store) -> Vec<String> {
        let mailbox = store
            .mailbox("alice@example.org", "INBOX")
            .unwrap()
            .unwrap();
        store
            .messages(mailbox.id)
            .unwrap()
            .iter()
            .map(|(_, r)| String::from_utf8(store.read_message(r).unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn a_permanent_failure_bounces_to_a_local_sender_in_the_same_step() {
        let t = with_users();
        let relay = Relay::default();
        let id = queue_one(&t.store, "alice@example.org", 0);
        let left = record(&t.store, &relay, "mx.test", id, &failed(true), ARRIVAL + 5).unwrap();
        assert!(left.is_none(), "a final entry leaves the queue");
        assert!(t.store.queue_entries().unwrap().is_empty());
        let bounces = inbox(&t.store);
        assert_eq!(bounces.len(), 1);
        assert!(bounces[0].starts_with("Return-Path: <>\r\n"));
        assert!(bounces[0].contains("Action: failed\r\nStatus: 5.1.1\r\n"));
        assert!(bounces[0].contains("Subject: original"));
    }

    #[test]
    fn temporary_failures_back_off_then_expire_into_a_bounce() {
        let t = with_users();
        let relay = Relay::default();
        let id = queue_one(&t.store, "alice@example.org", 0);
        let now = ARRIVAL + 10;
        let entry = record(&t.store, &relay, "mx.test", id, &failed(false), now)
            .unwrap()
            .unwrap();
        let r = &entry.recipients[0];
        assert_eq!(r.state, RecipientState::Deferred);
        assert_eq!(r.attempts, 1);
        assert!((now + 300..=now + 330).contains(&r.next_attempt));
        assert!(
            inbox(&t.store).is_empty(),
            "no notice before the delay threshold"
        );
        let expired = ARRIVAL + relay.max_age_secs as i64;
        assert!(
            record(&t.store, &relay, "mx.test", id, &failed(false), expired)
                .unwrap()
                .is_none()
        );
        let bounces = inbox(&t.store);
        assert_eq!(bounces.len(), 1);
        assert!(bounces[0].contains("Status: 4.4.7"));
        assert!(bounces[0].contains("Diagnostic-Code: smtp; 451 4.3.0 later"));
    }

    #[test]
    fn one_delay_notice_after_the_threshold() {
        let t = with_users();
        let relay = Relay::default();
        let id = queue_one(&t.store, "alice@example.org", 0);
        let late = ARRIVAL + relay.delay_notice_secs as i64 + 1;
        let entry = record(&t.store, &relay, "mx.test", id, &failed(false), late)
            .unwrap()
            .unwrap();
        assert!(entry.delay_notified);
        record(&t.store, &relay, "mx.test", id, &failed(false), late + 600).unwrap();
        let notices = inbox(&t.store);
        assert_eq!(notices.len(), 1, "only one delay notice");
        assert!(notices[0].contains("Action: delayed") && notices[0].contains("Will-Retry-Until:"));
    }

    #[test]
    fn bounces_are_never_bounced_and_never_means_never() {
        let t = with_users();
        let relay = Relay::default();
        for (sender, bits) in [("", 0), ("alice@example.org", notify::NEVER)] {
            let id = queue_one(&t.store, sender, bits);
            assert!(
                record(&t.store, &relay, "mx.test", id, &failed(true), ARRIVAL)
                    .unwrap()
                    .is_none()
            );
        }
        assert!(inbox(&t.store).is_empty());
        assert!(t.store.queue_entries().unwrap().is_empty());
    }

    #[test]
    fn success_notice_only_when_the_next_hop_lacks_dsn() {
        let t = with_users();
        let relay = Relay::default();
        for dsn in [true, false] {
            let id = queue_one(&t.store, "alice@example.org", notify::SUCCESS);
            let delivered = vec![(
                0,
                Attempt::Delivered {
                    remote: "mx.remote.test".into(),
                    dsn,
                },
            )];
            assert!(record(&t.store, &relay, "mx.test", id, &delivered, ARRIVAL)
                .unwrap()
                .is_none());
        }
        let notices = inbox(&t.store);
        assert_eq!(notices.len(), 1);
        assert!(notices[0].contains("Action: relayed"));
    }
}
