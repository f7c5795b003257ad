//! The outbound queue's records: entering it (with the local copies of the same message,
//! in one transaction), reading it, recording attempts, and leaving it.

use super::schema::{
    QueuedMessage, QueuedRecipient, RecipientState, META_NEXT_QUEUE_ID, META_QUEUE_GENERATION,
};
use super::{next_counter, read_u64, write_u64, Delivery, Placed, Result, Store, StoreError};
use heed::RwTxn;

/// The envelope of a message's remote recipients, as the queue records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbound {
    /// Empty for the null reverse-path.
    pub sender: String,
    pub envid: Option<String>,
    pub ret_full: Option<bool>,
    pub eight_bit: bool,
    pub smtputf8: bool,
    /// (address, ORCPT, NOTIFY bits)
    pub recipients: Vec<(String, Option<String>, u8)>,
    /// Leading bytes of the stored message that are not sent on (the Return-Path line).
    pub skip: u64,
}

/// What [`Store::accept`] did.
#[derive(Debug, Default)]
pub struct Accepted {
    pub placed: Vec<Placed>,
    pub queued: Option<u64>,
}

impl Store {
    pub(super) fn enqueue_txn(
        &self,
        txn: &mut RwTxn,
        blob: u64,
        size: u64,
        outbound: &Outbound,
        arrival: i64,
    ) -> Result<u64> {
        let id = next_counter(&self.db, txn, META_NEXT_QUEUE_ID)?;
        let entry = QueuedMessage {
            blob,
            size,
            skip: outbound.skip.min(size),
            sender: outbound.sender.clone(),
            arrival,
            envid: outbound.envid.clone(),
            ret_full: outbound.ret_full,
            eight_bit: outbound.eight_bit,
            smtputf8: outbound.smtputf8,
            recipients: outbound
                .recipients
                .iter()
                .map(|(address, orcpt, notify)| QueuedRecipient {
                    address: address.clone(),
                    orcpt: orcpt.clone(),
                    notify: *notify,
                    state: RecipientState::Pending,
                    attempts: 0,
                    next_attempt: arrival,
                    last_error: None,
                    remote: None,
                })
                .collect(),
            delay_notified: false,
        };
        self.db.queue.put(txn, &id, &entry)?;
        self.bump_queue_generation(txn)?;
        Ok(id)
    }

    fn bump_queue_generation(&self, txn: &mut RwTxn) -> Result<()> {
        let generation = read_u64(&self.db, txn, META_QUEUE_GENERATION)?.unwrap_or(0);
        write_u64(
            &self.db,
            txn,
            META_QUEUE_GENERATION,
            generation.wrapping_add(1),
        )
    }

    /// Stores a delivery that has remote recipients only; returns its queue id.
    pub fn enqueue(&self, delivery: &mut Delivery) -> Result<u64> {
        let accepted = self.accept(delivery)?;
        accepted
            .queued
            .ok_or_else(|| StoreError::Invalid("nothing to queue".into()))
    }

    /// Tells a running server (watching [`Store::queue_generation`]) to look again.
    pub fn touch_queue(&self) -> Result<()> {
        let mut txn = self.write_txn()?;
        self.bump_queue_generation(&mut txn)?;
        txn.commit()?;
        Ok(())
    }

    /// Changes whenever anything in the queue changed, in any process.
    pub fn queue_generation(&self) -> Result<u64> {
        let txn = self.read_txn()?;
        Ok(read_u64(&self.db, &txn, META_QUEUE_GENERATION)?.unwrap_or(0))
    }

    pub fn queued(&self, id: u64) -> Result<Option<QueuedMessage>> {
        let txn = self.read_txn()?;
        Ok(self.db.queue.get(&txn, &id)?)
    }

    /// (next attempt, id) of every entry with recipients left to try: what the scheduler
    /// needs, without holding the entries.
    pub fn queue_schedule(&self) -> Result<Vec<(i64, u64)>> {
        let txn = self.read_txn()?;
        let mut out = Vec::new();
        for item in self.db.queue.iter(&txn)? {
            let (id, entry) = item?;
            let due = entry
                .recipients
                .iter()
                .filter(|r| !r.state.is_final())
                .map(|r| r.next_attempt)
                .min();
            if let Some(due) = due {
                out.push((due, id));
            }
        }
        Ok(out)
    }

    /// The whole queue in id (arrival) order.
    pub fn queue_entries(&self) -> Result<Vec<(u64, QueuedMessage)>> {
        let txn = self.read_txn()?;
        let mut out = Vec::new();
        for item in self.db.queue.iter(&txn)? {
            out.push(item?);
        }
        Ok(out)
    }

    /// Reads, changes and writes back one queue entry in one transaction. When `change`
    /// returns messages (bounces, delay notices), they are stored in the same transaction:
    /// delivered to the local accounts or queued for remote ones, as each says. When every
    /// recipient is final afterwards, the entry leaves the queue and drops its blob
    /// reference. Returns the updated entry (None once it left the queue or never was).
    pub fn update_queued<F>(&self, id: u64, change: F) -> Result<Option<QueuedMessage>>
    where
        F: FnOnce(&mut QueuedMessage) -> Vec<Delivery>,
    {
        let mut txn = self.write_txn()?;
        let Some(mut entry) = self.db.queue.get(&txn, &id)? else {
            return Ok(None);
        };
        let notices = change(&mut entry);
        for mut notice in notices {
            self.accept_notice(&mut txn, &mut notice)?;
        }
        let done = entry.recipients.iter().all(|r| r.state.is_final());
        if done {
            self.db.queue.delete(&mut txn, &id)?;
            self.release_blob(&mut txn, entry.blob, entry.size)?;
        } else {
            self.db.queue.put(&mut txn, &id, &entry)?;
        }
        self.bump_queue_generation(&mut txn)?;
        txn.commit()?;
        Ok((!done).then_some(entry))
    }

    /// Stores a notice inside the queue's transaction. A target mailbox that is gone
    /// (deleted since the notice was routed) falls back to that account's INBOX, and a
    /// notice nobody can take is dropped with a log line: the attempt itself must still
    /// be recorded, or the message would be sent again.
    fn accept_notice(&self, txn: &mut RwTxn, notice: &mut Delivery) -> Result<()> {
        let mut nested = self.env.nested_write_txn(txn)?;
        match self.accept_txn(&mut nested, notice) {
            Ok(_) => return Ok(nested.commit()?),
            Err(StoreError::NotFound(what)) => {
                nested.abort();
                log::warn!("notice: {what}; delivering to INBOX instead");
            }
            Err(e) => return Err(e),
        }
        for target in &mut notice.targets {
            target.mailbox = "INBOX".into();
        }
        let mut nested = self.env.nested_write_txn(txn)?;
        match self.accept_txn(&mut nested, notice) {
            Ok(_) => Ok(nested.commit()?),
            Err(StoreError::NotFound(what)) => {
                nested.abort();
                log::error!("notice dropped: {what}");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Makes the given entries (all when `None`) due now, in one transaction; returns how
    /// many there were.
    pub fn retry_now(&self, ids: Option<&[u64]>, now: i64) -> Result<usize> {
        let mut txn = self.write_txn()?;
        let wanted: Vec<u64> = match ids {
            Some(ids) => ids.to_vec(),
            None => {
                let mut all = Vec::new();
                for item in self.db.queue.lazily_decode_data().iter(&txn)? {
                    all.push(item?.0);
                }
                all
            }
        };
        let mut touched = 0;
        for id in wanted {
            let Some(mut entry) = self.db.queue.get(&txn, &id)? else {
                continue;
            };
            for r in entry.recipients.iter_mut().filter(|r| !r.state.is_final()) {
                r.next_attempt = now;
            }
            self.db.queue.put(&mut txn, &id, &entry)?;
            touched += 1;
        }
        self.bump_queue_generation(&mut txn)?;
        txn.commit()?;
        Ok(touched)
    }

    /// Removes an entry without telling anyone (`letterbox queue delete`).
    pub fn delete_queued(&self, id: u64) -> Result<bool> {
        let mut txn = self.write_txn()?;
        let Some(entry) = self.db.queue.get(&txn, &id)? else {
            return Ok(false);
        };
        self.db.queue.delete(&mut txn, &id)?;
        self.release_blob(&mut txn, entry.blob, entry.size)?;
        self.bump_queue_generation(&mut txn)?;
        txn.commit()?;
        Ok(true)
    }
}
