//! Group commit: deliveries from all sessions, and the writes IMAP sessions make, go to
//! one thread, which runs whatever has queued up in a single LMDB transaction (one fsync
//! for many changes), each job in a nested transaction so that one failure does not sink
//! the others. A caller's answer arrives only after the transaction holding its change
//! committed, so an SMTP 250 or an IMAP OK is never sent before the change is durable,
//! and never waits for later ones.

use super::mailboxes::Flagged;
use super::{Accepted, Copied, Delivery, FlagOp, Incoming, Result, Store, StoreError};
use crate::limits::MAX_GROUP_COMMIT;
use heed::RwTxn;
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::{oneshot, watch};

/// Sends a write job's result once the batch's commit is known (its error, if it failed).
type Finish = Box<dyn FnOnce(Option<&StoreError>) + Send>;
/// A write job: runs inside the batch and says whether its nested transaction stays.
type WriteJob = Box<dyn FnOnce(&mut Write) -> (bool, Finish) + Send>;

pub(super) enum Job {
    Deliver {
        /// Boxed: a delivery is large, a write job a pointer.
        delivery: Box<Delivery>,
        reply: oneshot::Sender<Result<Accepted>>,
    },
    Write(WriteJob),
}

/// The store operations a shared commit offers (see [`Committer::write`]), each inside
/// the batch's transaction. Reads that need their own transaction (quota, whether a
/// mailbox exists) belong before the write, through [`Store::call`].
pub struct Write<'s, 't, 'e> {
    store: &'s Store,
    txn: &'t mut RwTxn<'e>,
}

impl Write<'_, '_, '_> {
    /// See [`Store::store_flags_conditional`].
    #[allow(clippy::too_many_arguments)]
    pub fn store_flags(
        &mut self,
        account: &str,
        name: &str,
        uids: &[u32],
        op: FlagOp,
        system: u8,
        keywords: &[String],
        unchanged_since: Option<u64>,
    ) -> Result<(Flagged, Vec<u32>)> {
        self.store.store_flags_txn(
            self.txn,
            account,
            name,
            uids,
            op,
            system,
            keywords,
            unchanged_since,
        )
    }

    /// See [`Store::append_all`]; the caller checked the room beforehand.
    pub fn append_all(
        &mut self,
        account: &str,
        name: &str,
        messages: &mut [(&mut Incoming, u8, &[String])],
    ) -> Result<(u32, Vec<u32>)> {
        self.store.append_all_txn(self.txn, account, name, messages)
    }

    /// See [`Store::copy_messages`]; the caller checked room and quota beforehand.
    pub fn copy_messages(
        &mut self,
        account: &str,
        from: &str,
        uids: &[u32],
        to: &str,
        remove: bool,
    ) -> Result<Copied> {
        let source = self.store.mailbox_txn(self.txn, account, from)?;
        self.store
            .copy_txn(self.txn, account, &source, uids, to, remove)
    }

    /// Claims `\Recent` up to `up_to` (see `Store::claim_recent_txn`).
    pub fn claim_recent(&mut self, mailbox_id: u64, up_to: u32) -> Result<u32> {
        self.store.claim_recent_txn(self.txn, mailbox_id, up_to)
    }

    /// See [`Store::expunge`]; a full store needs the batched [`Store::expunge`] instead.
    pub fn expunge(&mut self, account: &str, mailbox_id: u64, uids: &[u32]) -> Result<usize> {
        self.store.expunge_txn(self.txn, account, mailbox_id, uids)
    }
}

/// Handle to the commit thread. Cloning is cheap; the thread ends with the last handle.
#[derive(Clone)]
pub struct Committer {
    jobs: mpsc::SyncSender<Job>,
    /// Bumped after every commit that changed mailbox contents (everything through here,
    /// other writes through [`Committer::notify`]); IMAP sessions watch it for IDLE.
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
        self.send(Job::Deliver {
            delivery: Box::new(delivery),
            reply,
        })
        .await?;
        answer.await.map_err(|_| StoreError::Gone)?
    }

    /// Runs `f` in the next shared commit; returns its result once that is durable. `f`
    /// runs on the commit thread, so it should only write: anything slow (parsing,
    /// reading messages) belongs before, on the blocking pool.
    pub async fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Write) -> Result<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: WriteJob = Box::new(move |write| {
            let result = f(write);
            let kept = result.is_ok();
            let finish: Finish = Box::new(move |failed| {
                let _ = reply.send(match failed {
                    None => result,
                    Some(e) => Err(copy_error(e)),
                });
            });
            (kept, finish)
        });
        self.send(Job::Write(job)).await?;
        answer.await.map_err(|_| StoreError::Gone)?
    }

    async fn send(&self, job: Job) -> Result<()> {
        let gone = || StoreError::Gone;
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(mpsc::TrySendError::Full(job)) => {
                // The channel is bounded: waiting for room must not block a runtime thread.
                let jobs = self.jobs.clone();
                tokio::task::spawn_blocking(move || jobs.send(job).map_err(|_| ()))
                    .await
                    .map_err(|_| gone())?
                    .map_err(|_| gone())
            }
            Err(mpsc::TrySendError::Disconnected(_)) => Err(gone()),
        }
    }
}

/// The same error for each job of a failed batch (store errors are not `Clone`).
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Full => StoreError::Full,
        other => StoreError::Invalid(other.to_string()),
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
        let count = batch.len();
        let (done, outcome) = commit_batch(store, batch);
        if let Err(e) = &outcome {
            log::error!("group commit of {count} jobs failed: {e}");
        } else {
            changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        for job in done {
            job.answer(outcome.as_ref().err());
        }
    }
}

/// A job run in the batch, waiting for the commit to be answered.
pub(super) enum Done {
    Delivered(oneshot::Sender<Result<Accepted>>, Result<Accepted>),
    Wrote(Finish),
    /// Not run: the batch failed before it.
    Skipped(Job),
}

impl Done {
    pub(super) fn answer(self, failed: Option<&StoreError>) {
        match (self, failed) {
            (Done::Delivered(reply, result), None) => {
                let _ = reply.send(result);
            }
            (Done::Delivered(reply, _), Some(e))
            | (Done::Skipped(Job::Deliver { reply, .. }), Some(e)) => {
                let _ = reply.send(Err(copy_error(e)));
            }
            (Done::Wrote(finish), failed) => finish(failed),
            (Done::Skipped(Job::Write(job)), _) => {
                // Never run: dropping it drops its reply, which reads as the store gone.
                drop(job);
            }
            (Done::Skipped(Job::Deliver { reply, .. }), None) => {
                let _ = reply.send(Err(StoreError::Gone));
            }
        }
    }
}

/// Runs the batch in one transaction and commits it. The jobs come back to be answered
/// with the outcome; after an error in the batch itself, the rest are skipped.
pub(super) fn commit_batch(store: &Store, batch: Vec<Job>) -> (Vec<Done>, Result<()>) {
    let mut done = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    let outcome = (|| {
        // Room is judged per message, in order: near the reserve, one large message must
        // not make the small ones beside it fail.
        let room = store.room()?;
        let mut admitted = 0u64;
        let mut txn = store.write_txn()?;
        for job in jobs.by_ref() {
            match job {
                Job::Deliver {
                    mut delivery,
                    reply,
                } => {
                    let size = super::messages::footprint(delivery.message.size());
                    if admitted + size > room {
                        done.push(Done::Delivered(reply, Err(StoreError::Full)));
                        continue;
                    }
                    admitted += size;
                    let mut nested = store.env.nested_write_txn(&mut txn)?;
                    let result = store.accept_txn(&mut nested, &mut delivery);
                    if result.is_ok() {
                        nested.commit()?;
                    } else {
                        nested.abort();
                    }
                    done.push(Done::Delivered(reply, result));
                }
                Job::Write(job) => {
                    let mut nested = store.env.nested_write_txn(&mut txn)?;
                    let mut write = Write {
                        store,
                        txn: &mut nested,
                    };
                    let (kept, finish) = job(&mut write);
                    if kept {
                        nested.commit()?;
                    } else {
                        nested.abort();
                    }
                    done.push(Done::Wrote(finish));
                }
            }
        }
        txn.commit()?;
        Ok(())
    })();
    done.extend(jobs.map(Done::Skipped));
    (done, outcome)
}
