//! Group commit: deliveries from all sessions go to one thread, which commits whatever
//! has queued up in a single LMDB transaction (one fsync for many messages). A session's
//! reply arrives only after the transaction holding its message committed, so the SMTP 250
//! is never sent before the message is durable, and never waits for later messages.

use super::{Accepted, Delivery, Result, Store, StoreError};
use crate::limits::MAX_GROUP_COMMIT;
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::{oneshot, watch};

struct Job {
    delivery: Delivery,
    reply: oneshot::Sender<Result<Accepted>>,
}

/// Handle to the delivery thread. Cloning is cheap; the thread ends with the last handle.
#[derive(Clone)]
pub struct Committer {
    jobs: mpsc::SyncSender<Job>,
    /// Bumped after every commit that changed mailbox contents (deliveries here, IMAP
    /// writes through [`Committer::notify`]); IMAP sessions watch it for IDLE.
    changes: Arc<watch::Sender<u64>>,
}

impl Committer {
    pub fn start(store: Arc<Store>) -> Committer {
        let (jobs, queue) = mpsc::sync_channel::<Job>(MAX_GROUP_COMMIT * 4);
        let changes = Arc::new(watch::Sender::new(0u64));
        let notify = changes.clone();
        std::thread::Builder::new()
            .name("committer".into())
            .spawn(move || run(&store, &queue, &notify))
            .expect("spawn committer thread");
        Committer { jobs, changes }
    }

    /// Tells watchers that some mailbox changed (call after the commit).
    pub fn notify(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that wakes after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Stores `delivery` (see [`Store::accept`]); returns once all of it is durable. Callers
    /// go through [`crate::delivery`], which decides the targets.
    pub async fn commit(&self, delivery: Delivery) -> Result<Accepted> {
        let (reply, answer) = oneshot::channel();
        let job = Job { delivery, reply };
        let gone = || StoreError::Gone;
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(job)) => {
                // The channel is bounded: waiting for room must not block a runtime thread.
                let jobs = self.jobs.clone();
                tokio::task::spawn_blocking(move || jobs.send(job).map_err(|_| ()))
                    .await
                    .map_err(|_| gone())?
                    .map_err(|_| gone())?;
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(gone()),
        }
        answer.await.map_err(|_| gone())?
    }
}

fn run(store: &Store, queue: &mpsc::Receiver<Job>, changes: &watch::Sender<u64>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP_COMMIT {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcome = {
            let mut jobs: Vec<&mut Delivery> = batch.iter_mut().map(|j| &mut j.delivery).collect();
            store.deliver_group(&mut jobs)
        };
        match outcome {
            Ok(results) => {
                changes.send_modify(|n| *n = n.wrapping_add(1));
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                log::error!("group commit of {} deliveries failed: {e}", batch.len());
                let text = e.to_string();
                for job in batch {
                    let error = match e {
                        StoreError::Full => StoreError::Full,
                        _ => StoreError::Invalid(text.clone()),
                    };
                    let _ = job.reply.send(Err(error));
                }
            }
        }
    }
}
