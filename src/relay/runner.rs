//! The delivery scheduler: one task that keeps the queue moving.
//!
//! It keeps a list of (next attempt, queue id), rebuilt from the store whenever the queue's
//! generation counter moved (any change, by this process or by `letterbox sendmail` /
//! `letterbox queue`), and checks it at least once a second or when woken by an SMTP
//! session that queued something. Due recipients are grouped by route; each group goes
//! out over one connection in its own task. At most `max_connections` such tasks run in
//! all, and at most `max_connections_per_domain` per route.

use super::client::{AsyncPieces, Client, Connectors, Envelope, Failure, Outcome};
use super::route::{hops, Resolver, Route};
use super::schedule::Scheduler;
use super::tlsrpt::{PolicyType, Results};
use super::{record, Attempt};
use crate::clock::unix_now;
use crate::config::Config;
use crate::floor::Shared;
use crate::store::{chunk_count, QueuedMessage, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Most messages sent over one connection before it is closed and the scheduler looks again.
const MAX_BATCH: usize = 100;

/// One queue entry's due recipients on one route.
struct Item {
    id: u64,
    recipients: Vec<usize>,
}

/// What a finished delivery task reports.
struct Done {
    route: Route,
    ids: Vec<u64>,
    /// Entries whose outcome could not be written.
    unrecorded: Vec<u64>,
}

/// Runs until shutdown. Deliveries under way when it stops are dropped mid-flight; they are
/// tried again after the restart (SMTP's at-least-once window).
pub async fn run(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut scheduler = Scheduler::default();
    let mut generation = None;
    let mut tools: Option<(Arc<Config>, Connectors, Resolver)> = None;
    let connections = Arc::new(tokio::sync::Semaphore::new(0));
    let mut permits = 0usize;
    let tlsrpt = Arc::new(Results::open(shared.store.data_dir(), unix_now()));
    let mut last_flush = std::time::Instant::now();
    let mut next_reports = std::time::Instant::now();
    loop {
        if last_flush.elapsed() >= std::time::Duration::from_secs(60) {
            tlsrpt.flush();
            last_flush = std::time::Instant::now();
        }

        let config = shared.config();
        // Rebuild TLS and DNS clients when the configuration changed (SIGHUP).
        if tools
            .as_ref()
            .is_none_or(|(c, _, _)| !Arc::ptr_eq(c, &config))
        {
            match super::route::connectors(&config.relay) {
                Ok((connectors, client_tls)) => {
                    if config.relay.dnssec {
                        log::info!("relay: DNSSEC validated here; MX hosts' TLSA records are enforced (DANE)");
                    } else {
                        log::info!("relay: DANE not enforced: DNS answers are not DNSSEC-validated ([relay] dnssec = false)");
                    }
                    let resolver = Resolver::new(&config.relay, client_tls);
                    tools = Some((config.clone(), connectors, resolver));
                }
                Err(e) => log::error!("relay: TLS set-up failed: {e}"),
            }
            let wanted = config.relay.max_connections;
            if wanted > permits {
                connections.add_permits(wanted - permits);
                permits = wanted;
            } else if wanted < permits {
                if let Ok(p) = connections
                    .clone()
                    .try_acquire_many_owned((permits - wanted) as u32)
                {
                    p.forget();
                    permits = wanted;
                }
            }
        }
        // Yesterday's TLS reports: at start, then hourly.
        if let Some((_, _, resolver)) = &tools {
            if std::time::Instant::now() >= next_reports {
                next_reports = std::time::Instant::now() + std::time::Duration::from_secs(3600);
                tokio::spawn(super::tlsrpt::send_due(
                    shared.clone(),
                    tlsrpt.clone(),
                    resolver.dns(),
                ));
            }
        }
        match shared.store.call(|s| s.queue_generation()).await {
            Ok(g) if Some(g) != generation => match shared.store.call(|s| s.queue_schedule()).await
            {
                Ok(fresh) => {
                    scheduler.set_schedule(fresh);
                    generation = Some(g);
                    // `letterbox sendmail` may also have filled local mailboxes.
                    shared.committer.notify();
                }
                Err(e) => log::error!("relay: reading the queue schedule: {e}"),
            },
            Ok(_) => {}
            Err(e) => log::error!("relay: reading the queue: {e}"),
        }
        let now = unix_now();
        // Due work that could not start (its routes are at their connection limit) waits
        // for a delivery to finish instead of being looked at again right away.
        let mut blocked = false;
        if let Some((config, connectors, resolver)) = &tools {
            let due = scheduler.due(now);
            if !due.is_empty() {
                let groups = group_by_route(&shared.store, config, &due, now).await;
                for (route, items) in groups {
                    let free = scheduler.free(&route, config.relay.max_connections_per_domain);
                    if free == 0 {
                        blocked = true;
                        continue;
                    }
                    for batch in split(items, free) {
                        let ids: Vec<u64> = batch.iter().map(|i| i.id).collect();
                        scheduler.start(&route, &ids);
                        let task = Delivery {
                            shared: shared.clone(),
                            config: config.clone(),
                            connectors: connectors.clone(),
                            resolver: resolver.clone(),
                            route: route.clone(),
                            tlsrpt: tlsrpt.clone(),
                        };
                        let done = done_tx.clone();
                        let limit = connections.clone();
                        tokio::spawn(async move {
                            let _permit = limit.acquire_owned().await;
                            let unrecorded = task.run(batch).await;
                            let _ = done.send(Done {
                                route: task.route,
                                ids,
                                unrecorded,
                            });
                        });
                    }
                }
            }
        }
        let wait = scheduler.wait(now, blocked);
        tokio::select! {
            _ = shared.relay_wake.notified() => {}
            Some(done) = done_rx.recv() => {
                scheduler.finish(&done.route, &done.ids, &done.unrecorded, unix_now());
                // The entries changed: make sure the next round rereads them.
                generation = None;
            }
            _ = tokio::time::sleep(wait.min(std::time::Duration::from_secs(60))) => {}
            _ = shutdown.wait_for(|stop| *stop) => {
                tlsrpt.flush();
                return;
            }
        }
    }
}

async fn group_by_route(
    store: &Arc<Store>,
    config: &Config,
    due: &[u64],
    now: i64,
) -> BTreeMap<Route, Vec<Item>> {
    let ids = due.to_vec();
    let entries = store
        .call(move |store| {
            let mut entries = Vec::with_capacity(ids.len());
            for id in ids {
                match store.queued(id) {
                    Ok(Some(entry)) => entries.push((id, entry)),
                    // Gone meanwhile (delivered, or deleted by the administrator).
                    Ok(None) => {}
                    // One unreadable entry must not hold up the others.
                    Err(e) => log::error!("relay: reading queue id {id}: {e}"),
                }
            }
            Ok(entries)
        })
        .await
        .unwrap_or_else(|e| {
            log::error!("relay: reading due queue entries: {e}");
            Vec::new()
        });
    let mut groups: BTreeMap<Route, Vec<Item>> = BTreeMap::new();
    for (id, entry) in entries {
        let mut by_route: BTreeMap<Route, Vec<usize>> = BTreeMap::new();
        for (index, r) in entry.recipients.iter().enumerate() {
            if r.state.is_final() || r.next_attempt > now {
                continue;
            }
            let domain = r.address.rsplit_once('@').map_or("", |(_, d)| d);
            by_route
                .entry(Route::for_domain(&config.relay, domain))
                .or_default()
                .push(index);
        }
        for (route, recipients) in by_route {
            groups
                .entry(route)
                .or_default()
                .push(Item { id, recipients });
        }
    }
    groups
}

/// Up to `parts` batches of at most [`MAX_BATCH`] items each.
fn split(items: Vec<Item>, parts: usize) -> Vec<Vec<Item>> {
    let mut batches: Vec<Vec<Item>> = (0..parts).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        let batch = &mut batches[i % parts];
        if batch.len() < MAX_BATCH {
            batch.push(item);
        }
    }
    batches.retain(|b| !b.is_empty());
    batches
}

/// One connection's worth of work for one route.
struct Delivery {
    shared: Arc<Shared>,
    config: Arc<Config>,
    connectors: Connectors,
    resolver: Resolver,
    route: Route,
    tlsrpt: Arc<Results>,
}

impl Delivery {
    /// Delivers the batch; returns the ids whose outcome could not be recorded.
    async fn run(&self, batch: Vec<Item>) -> Vec<u64> {
        let mut unrecorded = Vec::new();
        let mut resolver = self.resolver.clone();
        let name = self.route.name(&self.config.relay);
        let hops = match hops(&self.route, &self.config.relay, &mut resolver).await {
            Ok(h) => h,
            Err(failure) => {
                log::info!("relay {name}: {}", failure.diagnostic);
                if let Route::Mx(domain) = &self.route {
                    // Only an MTA-STS verdict counts here (result_type filters the rest).
                    if failure.diagnostic.starts_with("MTA-STS") {
                        self.tlsrpt.record(
                            unix_now(),
                            domain,
                            PolicyType::Sts,
                            "",
                            Some(&failure.diagnostic),
                        );
                    }
                }
                for item in &batch {
                    if !self.fail_item(item, None, &failure).await {
                        unrecorded.push(item.id);
                    }
                }
                return unrecorded;
            }
        };
        let mut client: Option<Client> = None;
        for (position, item) in batch.iter().enumerate() {
            if client.is_none() {
                client = match self.connect(&hops).await {
                    Ok(c) => Some(c),
                    Err(failure) => {
                        // Nobody answered: the rest of the batch waits.
                        log::info!("relay {name}: {}", failure.diagnostic);
                        for item in &batch[position..] {
                            if !self.fail_item(item, None, &failure).await {
                                unrecorded.push(item.id);
                            }
                        }
                        return unrecorded;
                    }
                };
            }
            let Some(c) = client.as_mut() else { break };
            let remote = c.hop.host.clone();
            match self.send_item(c, item).await {
                Ok(true) => {
                    if c.reset().await.is_err() {
                        client = None;
                    }
                }
                Ok(false) => {
                    unrecorded.push(item.id);
                    if c.reset().await.is_err() {
                        client = None;
                    }
                }
                Err(failure) => {
                    log::info!("relay {name}: queue id {}: {}", item.id, failure.diagnostic);
                    if !self.fail_item(item, Some(remote), &failure).await {
                        unrecorded.push(item.id);
                    }
                    // The connection may be in any state now: start afresh.
                    client = None;
                }
            }
        }
        if let Some(c) = client {
            c.quit().await;
        }
        unrecorded
    }

    /// Tries the hops in order; the first that greets us and says EHLO wins.
    async fn connect(&self, hops: &[super::client::Hop]) -> Result<Client, Failure> {
        let mut last = Failure::temporary("no host to try");
        for hop in hops {
            let mut connected =
                Client::connect(hop.clone(), &self.config.hostname, &self.connectors).await;
            if let (Some(policy), Route::Mx(domain)) = (hop.tlsrpt, &self.route) {
                let failure = match &connected {
                    Ok(c) if c.is_tls() => Some(None),
                    // Plain by choice (mx_tls = "none"): nothing to report.
                    Ok(_) if hop.tls == super::client::TlsPolicy::None => None,
                    Ok(_) => Some(Some("does not offer STARTTLS")),
                    Err(f) => Some(Some(f.diagnostic.as_str())),
                };
                if let Some(failure) = failure {
                    self.tlsrpt
                        .record(unix_now(), domain, policy, &hop.host, failure);
                }
            }
            if let (Err(f), Some(fallback)) = (&connected, hop.fallback) {
                if super::tlsrpt::result_type(&f.diagnostic).is_some() {
                    log::info!(
                        "relay: {} fails the MTA-STS policy in testing mode ({}); delivering anyway",
                        hop.host,
                        f.diagnostic
                    );
                    let mut again = hop.clone();
                    again.tls = fallback;
                    again.fallback = None;
                    connected =
                        Client::connect(again, &self.config.hostname, &self.connectors).await;
                }
            }
            match connected {
                Ok(c) => return Ok(c),
                Err(f) => {
                    log::info!("relay: {} ({}): {}", hop.host, hop.addr, f.diagnostic);
                    last = f;
                }
            }
        }
        // A 5xx greeting from every host is still not the recipient's fault for good.
        last.permanent = false;
        Err(last)
    }

    /// Sends one queued message; Ok(false) when its outcome could not be recorded.
    async fn send_item(&self, client: &mut Client, item: &Item) -> Result<bool, Failure> {
        let id = item.id;
        let entry = match self.shared.store.call(move |s| s.queued(id)).await {
            Ok(Some(entry)) => entry,
            Ok(None) => return Ok(true), // gone meanwhile (deleted by the administrator)
            Err(e) => {
                log::error!("relay: reading queue id {id}: {e}");
                return Ok(false);
            }
        };
        // Only recipients still waiting in the stored entry (never one that is done).
        let wanted: Vec<usize> = item
            .recipients
            .iter()
            .copied()
            .filter(|&i| entry.recipients.get(i).is_some_and(|r| !r.state.is_final()))
            .collect();
        if wanted.is_empty() {
            return Ok(true);
        }
        let signature = super::dkim::sign_queued(&self.shared.store, &entry).await;
        let size = entry.size - entry.skip + signature.len() as u64;
        let envelope = Envelope {
            sender: &entry.sender,
            recipients: wanted
                .iter()
                .filter_map(|&i| entry.recipients.get(i))
                .map(|r| (r.address.as_str(), r.orcpt.as_deref(), r.notify))
                .collect(),
            envid: entry.envid.as_deref(),
            ret_full: entry.ret_full,
            eight_bit: entry.eight_bit,
            smtputf8: entry.smtputf8,
            size,
        };
        let body = BlobPieces {
            store: self.shared.store.clone(),
            entry: entry.clone(),
            next: 0,
            first: Some(signature),
        };
        let outcomes = client.send(&envelope, body).await?;
        let remote = client.hop.host.clone();
        let results: Vec<(usize, Attempt)> = wanted
            .iter()
            .zip(outcomes)
            .map(|(&i, outcome)| {
                let attempt = match outcome {
                    Outcome::Delivered { dsn } => Attempt::Delivered {
                        remote: remote.clone(),
                        dsn,
                    },
                    Outcome::Failed(failure) => Attempt::Failed {
                        remote: Some(remote.clone()),
                        failure,
                    },
                };
                (i, attempt)
            })
            .collect();
        for (i, attempt) in &results {
            let address = entry.recipients.get(*i).map_or("", |r| r.address.as_str());
            match attempt {
                Attempt::Delivered { .. } => {
                    log::info!("relay: queue id {id}: delivered to <{address}> via {remote}")
                }
                Attempt::Failed { failure, .. } => log::info!(
                    "relay: queue id {id}: <{address}> via {remote}: {}",
                    failure.diagnostic
                ),
            }
        }
        Ok(self.record(id, results).await)
    }

    /// Records a failure for the item's recipients; false when that could not be written.
    async fn fail_item(&self, item: &Item, remote: Option<String>, failure: &Failure) -> bool {
        let results = item
            .recipients
            .iter()
            .map(|&i| {
                (
                    i,
                    Attempt::Failed {
                        remote: remote.clone(),
                        failure: failure.clone(),
                    },
                )
            })
            .collect();
        self.record(item.id, results).await
    }

    /// Writes an attempt's outcome; false when the store refused.
    async fn record(&self, id: u64, results: Vec<(usize, Attempt)>) -> bool {
        let config = self.config.clone();
        let outcome = self
            .shared
            .store
            .call(move |store| {
                record(
                    store,
                    &config.relay,
                    &config.hostname,
                    id,
                    &results,
                    unix_now(),
                )
            })
            .await;
        match outcome {
            Ok(_) => {
                // Bounces may have landed in local mailboxes.
                self.shared.committer.notify();
                true
            }
            Err(e) => {
                log::error!("relay: recording queue id {id}: {e}");
                false
            }
        }
    }
}

/// The queued message's bytes, chunk by chunk, after an optional first piece (the DKIM
/// signature) and without the skipped prefix.
struct BlobPieces {
    store: Arc<Store>,
    entry: QueuedMessage,
    next: u32,
    first: Option<Vec<u8>>,
}

impl AsyncPieces for BlobPieces {
    async fn next_piece(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        if let Some(first) = self.first.take().filter(|f| !f.is_empty()) {
            return Ok(Some(first));
        }
        if self.next >= chunk_count(self.entry.size) {
            return Ok(None);
        }
        let index = self.next;
        self.next += 1;
        let blob = self.entry.blob;
        let chunk = self
            .store
            .call(move |s| s.read_chunk(blob, index))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        // Drop the skipped prefix (it lies in the first chunk).
        let start = if index == 0 {
            (self.entry.skip as usize).min(chunk.len())
        } else {
            0
        };
        Ok(Some(chunk[start..].to_vec()))
    }
}
