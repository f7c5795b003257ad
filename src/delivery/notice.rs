//! Delivery status notifications owed to a sender (RFC 3461 §4.1): failure, delay and
//! success notices, built with [`crate::mail::dsn`] and routed like any other delivery: to
//! the sender's local mailboxes through [`super::resolve`], or into the queue when the
//! sender is remote. Never to the null reverse-path: a bounce is never bounced.

use crate::mail::dsn::{self, Action, RecipientReport, Report};
use crate::store::{notify, Delivery, Incoming, Outbound, QueuedMessage, Result, Spooled, Store};

/// The original message as a DSN quotes it: its header, or all of it for RET=FULL.
pub struct Original {
    pub bytes: Vec<u8>,
    pub full: bool,
}

/// Where a notice to a sender goes.
pub enum Routing {
    /// Local copies, as [`super::resolve`] placed them.
    Local(Vec<crate::store::Target>),
    /// Queued to this address (the sender's, or the original sender behind an SRS one).
    Remote(String),
    /// Null or unknown local sender: nobody to tell.
    Nowhere,
}

/// Where a notice to `sender` goes.
pub fn routing(store: &Store, sender: &str) -> Result<Routing> {
    if sender.is_empty() {
        return Ok(Routing::Nowhere);
    }
    Ok(match super::resolve(&store.reader(), sender)? {
        super::Resolution::Local(targets) => Routing::Local(targets),
        super::Resolution::Alias { local, .. } if !local.is_empty() => Routing::Local(local),
        super::Resolution::Alias { remote, .. } => match remote.into_iter().next() {
            Some(first) => Routing::Remote(first),
            None => Routing::Nowhere,
        },
        // A notice to an SRS address of ours goes straight to the original sender.
        super::Resolution::Forward(original) => Routing::Remote(original),
        super::Resolution::NotLocal => Routing::Remote(sender.to_string()),
        // A local sender that no longer exists: nobody to tell.
        super::Resolution::UnknownUser => Routing::Nowhere,
    })
}

/// The envelope facts a notice repeats.
pub struct About<'a> {
    pub sender: &'a str,
    pub envid: Option<&'a str>,
    pub arrival: i64,
}

impl<'a> From<&'a QueuedMessage> for About<'a> {
    fn from(entry: &'a QueuedMessage) -> About<'a> {
        About {
            sender: &entry.sender,
            envid: entry.envid.as_deref(),
            arrival: entry.arrival,
        }
    }
}

/// The "delivered" notice owed for local recipients that asked for NOTIFY=SUCCESS, or
/// None when the sender is null or unknown here. `recipients` are (address, ORCPT). A
/// local delivery happens as the message arrives, so the notice is dated at its arrival.
pub fn delivered(
    store: &Store,
    hostname: &str,
    about: About,
    recipients: &[(String, Option<String>)],
    header: &[u8],
) -> Result<Option<Delivery>> {
    let now = about.arrival;
    let routing = routing(store, about.sender)?;
    if matches!(routing, Routing::Nowhere) || recipients.is_empty() {
        return Ok(None);
    }
    let reports = recipients
        .iter()
        .map(|(address, orcpt)| RecipientReport {
            address: address.clone(),
            orcpt: orcpt.clone(),
            action: Action::Delivered,
            status: "2.0.0".into(),
            remote: None,
            diagnostic: None,
            last_attempt: Some(now),
            retry_until: None,
        })
        .collect();
    let original = Original {
        bytes: crate::mail::header_of(header).to_vec(),
        full: false,
    };
    Ok(Some(build(
        about, hostname, reports, &original, &routing, now,
    )))
}

/// The failure notice for a recipient whose Sieve script rejected the message (RFC
/// 5429 §2.1: when it cannot be refused in the SMTP dialogue, because other recipients
/// took it). None when the sender is null or unknown here.
pub fn rejected(
    store: &Store,
    hostname: &str,
    about: About,
    recipient: &str,
    reason: &str,
    header: &[u8],
) -> Result<Option<Delivery>> {
    let now = about.arrival;
    let routing = routing(store, about.sender)?;
    if matches!(routing, Routing::Nowhere) {
        return Ok(None);
    }
    let report = RecipientReport {
        address: recipient.to_string(),
        orcpt: None,
        action: Action::Failed,
        status: "5.7.1".into(),
        remote: None,
        diagnostic: Some(format!(
            "rejected by the recipient's filter: {}",
            reason.replace(['\r', '\n'], " ")
        )),
        last_attempt: Some(now),
        retry_until: None,
    };
    let original = Original {
        bytes: crate::mail::header_of(header).to_vec(),
        full: false,
    };
    Ok(Some(build(
        about,
        hostname,
        vec![report],
        &original,
        &routing,
        now,
    )))
}

/// A notice about `recipients`, as a delivery to the sender. The relay stores it inside
/// its queue transaction, so it gets no description there (the first FETCH computes it);
/// SMTP's success notices go through [`super::deliver`] and get one.
pub fn build(
    about: About,
    hostname: &str,
    recipients: Vec<RecipientReport>,
    original: &Original,
    routing: &Routing,
    now: i64,
) -> Delivery {
    let id = format!("{:016x}", random_id());
    let body = dsn::build(&Report {
        reporting_mta: hostname,
        to: about.sender,
        envid: about.envid,
        arrival: about.arrival,
        now,
        recipients,
        original: &original.bytes,
        original_full: original.full,
        id: &id,
    });
    to_sender(body, routing, now).unwrap_or_else(|| Delivery {
        message: Incoming::new(Vec::new(), Spooled::Memory(Vec::new()), now),
        targets: Vec::new(),
        outbound: None,
    })
}

/// A message of ours (a notice, a vacation reply) to `sender`, with the null reverse
/// path: stored for a local sender, queued for a remote one; None for nobody.
pub fn to_sender(body: Vec<u8>, routing: &Routing, now: i64) -> Option<Delivery> {
    let eight_bit = !body.is_ascii();
    let prefix = b"Return-Path: <>\r\n".to_vec();
    let skip = prefix.len() as u64;
    let message = Incoming::new(prefix, Spooled::Memory(body), now);
    let (targets, outbound) = match routing {
        Routing::Local(targets) => (targets.clone(), None),
        Routing::Remote(address) => (
            Vec::new(),
            Some(Outbound {
                sender: String::new(),
                recipients: vec![(address.clone(), None, notify::NEVER)],
                skip,
                eight_bit,
                ..Outbound::default()
            }),
        ),
        Routing::Nowhere => return None,
    };
    Some(Delivery {
        message,
        targets,
        outbound,
    })
}

fn random_id() -> u64 {
    use rand_core::RngCore;
    rand_core::OsRng.next_u64()
}
