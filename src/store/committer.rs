//! Group commit: deliveries from all sessions, and the writes IMAP sessions make, go to
//! one thread, which runs whatever has queued up in a single LMDB transaction (one fsync
//! for many changes), each job in a nested transaction so that one failure does not sink
//! the others. A caller's answer arrives only after the transaction holding its change
//! committed, so an SMTP 250 or an IMAP OK is never sent before the change is durable,
//! and never waits for later ones.

use super::mailboxes::Flagged;
use super::{Accepted, Copied, Delivery, FlagOp, Incoming, MailboxMark, Result, Store, StoreError};
use crate::limits::{MAX_GROUP_COMMIT, MAX_GROUP_COMMIT_BYTES};
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
    /// With the message bytes it stores (for the batch's size cap).
    Write(WriteJob, u64),
}

impl Job {
    fn bytes(&self) -> u64 {
        match self {
            Job::Deliver { delivery, .. } => delivery.message.size(),
            Job::Write(_, bytes) => *bytes,
        }
    }
}

/// The store operations a shared commit offers (see [`Committer::write`]), each inside
/// the batch's transaction. Reads that need their own transaction (quota, whether a
/// mailbox exists) belong before the write, through [`Store::call`].
pub struct Write<'s, 't, 'e> {
    store: &'s Store,
    txn: &'t mut RwTxn<'e>,
    /// Bytes new mail may still take in this batch (see [`Store::check_room`]).
    room: &'t mut u64,
    /// Whether the job changed what other sessions see (so they are told).
    changed: bool,
}

impl Write<'_, '_, '_> {
    /// Takes room for `bytes` of new mail, or fails with [`StoreError::Full`]: the batch's
    /// deliveries and writes share what is left before the reserve.
    fn take_room(&mut self, bytes: u64) -> Result<()> {
        let needed = super::messages::footprint(bytes);
        if *self.room == 0 || needed > *self.room {
            return Err(StoreError::Full);
        }
        *self.room -= needed;
        Ok(())
    }

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
        let before = self
            .store
            .mailbox_txn(self.txn, account, name)?
            .highest_modseq;
        let flagged = self.store.store_flags_txn(
            self.txn,
            account,
            name,
            uids,
            op,
            system,
            keywords,
            unchanged_since,
        )?;
        self.changed |= flagged.0.iter().any(|(_, r)| r.modseq > before);
        Ok(flagged)
    }

    /// See [`Store::mailbox_mark`]: as this job's transaction sees it.
    pub fn mailbox_mark(&self, account: &str, name: &str) -> Result<Option<MailboxMark>> {
        self.store.mark_txn(self.txn, account, name)
    }

    /// See [`Store::append_all`].
    pub fn append_all(
        &mut self,
        account: &str,
        name: &str,
        messages: &mut [(&mut Incoming, u8, &[String])],
    ) -> Result<(u32, Vec<u32>)> {
        self.take_room(messages.iter().map(|(m, _, _)| m.size()).sum())?;
        self.changed = true;
        self.store.append_all_txn(self.txn, account, name, messages)
    }

    /// See [`Store::copy_messages`]; the caller checked the quota beforehand. A move
    /// needs no room: it must work when the store is full.
    pub fn copy_messages(
        &mut self,
        account: &str,
        from: &str,
        uids: &[u32],
        to: &str,
        remove: bool,
    ) -> Result<Copied> {
        if !remove {
            self.take_room(0)?;
        }
        self.changed = true;
        let source = self.store.mailbox_txn(self.txn, account, from)?;
        self.store
            .copy_txn(self.txn, account, &source, uids, to, remove)
    }

    /// Claims `\Recent` up to `up_to` (see `Store::claim_recent_txn`); no other session
    /// sees it.
    pub fn claim_recent(&mut self, mailbox_id: u64, up_to: u32) -> Result<u32> {
        self.store.claim_recent_txn(self.txn, mailbox_id, up_to)
    }

    /// See [`Store::expunge`]; a full store needs the batched [`Store::expunge`] instead.
    pub fn expunge(&mut self, account: &str, mailbox_id: u64, uids: &[u32]) -> Result<usize> {
        let removed = self
            .store
            .expunge_txn(self.txn, account, mailbox_id, uids)?;
        self.changed |= removed > 0;
        Ok(removed)
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
    /// reading messages) belongs before, on the blocking pool. `bytes`: the message bytes
    /// it stores (0 for flag changes), for the batch's size cap.
    pub async fn write<R, F>(&self, bytes: u64, f: F) -> Result<R>
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
        self.send(Job::Write(job, bytes)).await?;
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
        let mut bytes = first.bytes();
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP_COMMIT && bytes < MAX_GROUP_COMMIT_BYTES {
            match queue.try_recv() {
                Ok(job) => {
                    bytes += job.bytes();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let count = batch.len();
        let (done, outcome) = commit_batch(store, batch);
        match &outcome {
            Err(e) => log::error!("group commit of {count} jobs failed: {e}"),
            Ok(true) => changes.send_modify(|n| *n = n.wrapping_add(1)),
            Ok(false) => {}
        }
        let outcome = outcome.map(|_| ());
        for job in done {
            job.answer(outcome.as_ref().err());
        }
    }
}

/// A job run in the batch, waiting for the commit to be answered.
pub(super) enum Done {
    Delivered(oneshot::Sender<Result<Accepted>>, Result<Accepted>),
    /// A write and its own failure, if its nested transaction could not be committed.
    Wrote(Finish, Option<StoreError>),
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
            (Done::Wrote(finish, own), failed) => finish(own.as_ref().or(failed)),
            (Done::Skipped(Job::Write(job, _)), _) => {
                // Never run: dropping it drops its reply, which reads as the store gone.
                drop(job);
            }
            (Done::Skipped(Job::Deliver { reply, .. }), None) => {
                let _ = reply.send(Err(StoreError::Gone));
            }
        }
    }
}

/// Commits a job's nested transaction if the job kept it, else aborts it.
fn settle(nested: RwTxn, kept: bool) -> Result<()> {
    if kept {
        nested.commit()?;
    } else {
        nested.abort();
    }
    Ok(())
}

/// Runs the batch in one transaction and commits it; `Ok(true)` when a job changed what
/// sessions see. The jobs come back to be answered with the outcome. A job that fails
/// fails alone: its nested transaction is dropped and the others go on. So does one that
/// panics, where panics unwind (tests, debug builds); release builds abort on a panic.
/// Only an error of the batch's own transaction fails them all (and skips those not yet
/// run).
pub(super) fn commit_batch(store: &Store, batch: Vec<Job>) -> (Vec<Done>, Result<bool>) {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    let mut done = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    let panicked = || {
        log::error!("group commit: a delivery panicked; it alone fails");
        StoreError::Invalid("internal error in a delivery".into())
    };
    let outcome = (|| {
        // Room is judged per message, in order: near the reserve, one large message must
        // not make the small ones beside it fail.
        let mut room = store.room()?;
        let mut changed = false;
        let mut txn = store.write_txn()?;
        for job in jobs.by_ref() {
            match job {
                Job::Deliver {
                    mut delivery,
                    reply,
                } => {
                    let size = super::messages::footprint(delivery.message.size());
                    if size > room {
                        done.push(Done::Delivered(reply, Err(StoreError::Full)));
                        continue;
                    }
                    room -= size;
                    let result = (|| {
                        let mut nested = store.env.nested_write_txn(&mut txn)?;
                        let result = catch_unwind(AssertUnwindSafe(|| {
                            store.accept_txn(&mut nested, &mut delivery)
                        }))
                        .unwrap_or_else(|_| Err(panicked()));
                        settle(nested, result.is_ok())?;
                        result
                    })();
                    changed |= result.is_ok();
                    done.push(Done::Delivered(reply, result));
                }
                Job::Write(job, _) => {
                    let mut nested = match store.env.nested_write_txn(&mut txn) {
                        Ok(nested) => nested,
                        Err(e) => {
                            // Dropping the job answers it as the store gone.
                            log::error!("group commit: a write could not begin: {e}");
                            continue;
                        }
                    };
                    let left = room;
                    let mut write = Write {
                        store,
                        txn: &mut nested,
                        room: &mut room,
                        changed: false,
                    };
                    let ran = catch_unwind(AssertUnwindSafe(|| {
                        let (kept, finish) = job(&mut write);
                        (kept, write.changed, finish)
                    }));
                    match ran {
                        Ok((kept, job_changed, finish)) => {
                            let own = settle(nested, kept).err();
                            if kept && own.is_none() {
                                changed |= job_changed;
                            } else {
                                room = left;
                            }
                            done.push(Done::Wrote(finish, own));
                        }
                        Err(_) => {
                            // The job's reply went with its unwinding closure: its caller
                            // sees the store as gone.
                            room = left;
                            nested.abort();
                            log::error!("group commit: a write panicked; it alone fails");
                        }
                    }
                }
            }
        }
        txn.commit()?;
        Ok(changed)
    })();
    done.extend(jobs.map(Done::Skipped));
    (done, outcome)
}
