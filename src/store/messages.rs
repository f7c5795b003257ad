//! Mailboxes' messages and their bytes: records, refcounted blobs, delivery of accepted
//! mail (one transaction for every copy and the queue entry) and group commit.

use super::schema::*;
use super::{
    chunk_count, next_counter, read_u64, write_u64, Accepted, Delivery, Incoming, Placed, Result,
    Store, StoreError, Target,
};
use crate::clock::unix_now as now;
use crate::limits::BLOB_CHUNK;

/// New mail stops when less than a this-th of the map is left (5 %): room for deleting.
pub const RESERVE_DIVISOR: u64 = 20;
/// What `size` bytes of mail take in the map: about their size in pages, plus records and
/// tree pages.
pub(super) fn footprint(size: u64) -> u64 {
    size + size / 8
}

/// Chunks of a message read for its SORT fields: a header beyond 256 KiB is cut there.
const MAX_SORT_HEADER_CHUNKS: u32 = 4;

/// Messages removed per transaction when a large expunge ran out of room.
pub const EXPUNGE_BATCH: usize = 64;
use heed::{RoTxn, RwTxn};

impl Store {
    // ---- mailboxes ----

    pub(super) fn create_mailbox_txn(
        &self,
        txn: &mut RwTxn,
        account: &str,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Mailbox> {
        let key = mailbox_key(account, name);
        match self.db.mailboxes.get(txn, &key)? {
            // A `\Noselect` parent comes back as an empty mailbox, with a new UIDVALIDITY
            // (and nothing of the old one left behind).
            Some(old) if old.noselect => {
                let uids = self.uids_txn(txn, old.id)?;
                self.expunge_txn(txn, account, old.id, &uids)?;
                self.db.recent.delete(txn, &old.id)?;
                self.db.mailboxes.delete(txn, &key)?;
            }
            Some(_) => return Err(StoreError::Exists(format!("mailbox {name}"))),
            None => {}
        }
        let id = next_counter(&self.db, txn, META_NEXT_MAILBOX_ID)?;
        // UIDVALIDITY must change if a mailbox is ever recreated under the same name.
        let last = read_u64(&self.db, txn, META_LAST_UIDVALIDITY)?.unwrap_or(0);
        let uid_validity = (now() as u64).max(last + 1) & 0xffff_ffff;
        write_u64(&self.db, txn, META_LAST_UIDVALIDITY, uid_validity)?;
        let mailbox = Mailbox {
            id,
            name: name.to_string(),
            uid_validity: uid_validity as u32,
            uid_next: 1,
            highest_modseq: 1,
            noselect: false,
            special_use,
        };
        self.db.mailboxes.put(txn, &key, &mailbox)?;
        Ok(mailbox)
    }

    /// A selectable mailbox by name (`\\Noselect` parents are not found).
    pub fn mailbox(&self, account: &str, name: &str) -> Result<Option<Mailbox>> {
        let txn = self.read_txn()?;
        Ok(self
            .db
            .mailboxes
            .get(&txn, &mailbox_key(account, name))?
            .filter(|m| !m.noselect))
    }

    /// Whether a mailbox name is taken, by a mailbox or a `\Noselect` parent.
    pub fn name_exists(&self, account: &str, name: &str) -> Result<bool> {
        let txn = self.read_txn()?;
        Ok(self
            .db
            .mailboxes
            .get(&txn, &mailbox_key(account, name))?
            .is_some())
    }

    /// Every mailbox of an account, `\Noselect` parents included (LIST shows them).
    pub fn mailboxes(&self, account: &str) -> Result<Vec<Mailbox>> {
        let txn = self.read_txn()?;
        self.mailboxes_txn(&txn, account)
    }

    pub(super) fn mailboxes_txn(&self, txn: &RoTxn, account: &str) -> Result<Vec<Mailbox>> {
        let mut out = Vec::new();
        for item in self
            .db
            .mailboxes
            .prefix_iter(txn, &mailbox_prefix(account))?
        {
            out.push(item?.1);
        }
        Ok(out)
    }

    /// When a message was saved into its mailbox (IMAP SAVEDATE); `None` for messages
    /// stored before schema 12.
    pub fn save_date(&self, mailbox_id: u64, uid: u32) -> Result<Option<i64>> {
        let txn = self.read_txn()?;
        let saved = self
            .db
            .save_dates
            .get(&txn, &message_key(mailbox_id, uid))?;
        Ok(saved.map(|s| s as i64))
    }

    /// One message record of a mailbox, by UID.
    pub fn message(&self, mailbox_id: u64, uid: u32) -> Result<Option<MessageRecord>> {
        let txn = self.read_txn()?;
        Ok(self.db.messages.get(&txn, &message_key(mailbox_id, uid))?)
    }

    /// All messages of a mailbox in UID order.
    pub fn messages(&self, mailbox_id: u64) -> Result<Vec<(u32, MessageRecord)>> {
        let txn = self.read_txn()?;
        let mut out = Vec::new();
        for item in self
            .db
            .messages
            .prefix_iter(&txn, &mailbox_id.to_be_bytes())?
        {
            let (key, record) = item?;
            out.push((uid_of_message_key(key), record));
        }
        Ok(out)
    }

    pub(super) fn uids_txn(&self, txn: &RoTxn, mailbox_id: u64) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        for item in self
            .db
            .messages
            .lazily_decode_data()
            .prefix_iter(txn, &mailbox_id.to_be_bytes())?
        {
            out.push(uid_of_message_key(item?.0));
        }
        Ok(out)
    }

    /// Removes messages from a mailbox in one transaction, freeing blobs nobody else holds.
    /// Returns how many were removed.
    ///
    /// Deleting must stay possible when the map is full: new mail is refused before the
    /// last [`RESERVE_DIVISOR`]th of the map is reached, and a removal that still runs out
    /// of room is retried in batches of [`EXPUNGE_BATCH`], each its own transaction (a
    /// smaller transaction needs fewer new pages).
    pub fn expunge(&self, account: &str, mailbox_id: u64, uids: &[u32]) -> Result<usize> {
        match self.expunge_once(account, mailbox_id, uids) {
            Err(StoreError::Full) if uids.len() > EXPUNGE_BATCH => {
                log::warn!(
                    "expunge of {} messages: the store is full; in batches",
                    uids.len()
                );
                let mut removed = 0;
                for batch in uids.chunks(EXPUNGE_BATCH) {
                    removed += self.expunge_once(account, mailbox_id, batch)?;
                }
                Ok(removed)
            }
            other => other,
        }
    }

    fn expunge_once(&self, account: &str, mailbox_id: u64, uids: &[u32]) -> Result<usize> {
        let mut txn = self.write_txn()?;
        let removed = self.expunge_txn(&mut txn, account, mailbox_id, uids)?;
        txn.commit()?;
        Ok(removed)
    }

    /// Refuses `adding` more bytes of mail when they would eat into the reserve kept for
    /// deletions (see [`Store::expunge`]).
    pub fn check_room(&self, adding: u64) -> Result<()> {
        let room = self.room()?;
        if room == 0 || footprint(adding) > room {
            return Err(StoreError::Full);
        }
        Ok(())
    }

    /// Bytes new mail may still take before the reserve. Best effort: LMDB's statistics
    /// count the pages in use, not pages held for old readers or the free list's own.
    pub(super) fn room(&self) -> Result<u64> {
        let (mut map, used) = self.map_use()?;
        if used > map / 4 * 3 && self.grows.load(std::sync::atomic::Ordering::Relaxed) {
            self.grow(map, used);
            map = self.map_use()?.0;
        }
        let reserve = (map / RESERVE_DIVISOR).max(64 * 1024);
        Ok(map.saturating_sub(used + reserve))
    }

    /// The map's size and the bytes in use, read under one ticket: `mdb_env_info` reads
    /// the map itself, which must not move meanwhile.
    pub fn map_use(&self) -> Result<(u64, u64)> {
        let txn = self.read_txn()?;
        let map = self.env.info().map_size as u64;
        Ok((map, self.db.used_bytes(&txn)?))
    }

    /// Doubles a map of `map` bytes, within what the file system can still give the data
    /// file (keeping some for the spool and the log), and says so in the log.
    fn grow(&self, map: u64, used: u64) {
        let room = match room_for_map(self.env.path()) {
            Ok(room) => room,
            Err(e) => {
                log::error!("store: cannot grow the map: statvfs: {e}");
                return;
            }
        };
        let target = (map * 2).min(room) / MAP_ALIGN * MAP_ALIGN;
        if target <= map {
            log::warn!(
                "store: the map is {} % full ({} of {} MiB) and the file system has no room \
                 to grow it",
                used * 100 / map,
                used >> 20,
                map >> 20
            );
            return;
        }
        let grown = self.gate.exclusive(|| {
            if self.env.info().map_size as u64 != map {
                return Ok(false); // another thread grew it meanwhile
            }
            // SAFETY: the gate holds every transaction of this process back.
            unsafe { self.env.resize(target as usize) }.map(|()| true)
        });
        match grown {
            Some(Ok(true)) => log::warn!(
                "store: the map was {} % full ({} of {} MiB); grown to {} MiB",
                used * 100 / map,
                used >> 20,
                map >> 20,
                target >> 20
            ),
            Some(Ok(false)) | None => {}
            Some(Err(e)) => {
                // LMDB has unmapped the old map by now: no transaction may run again.
                log::error!(
                    "store: growing the map to {} MiB: {e}; stopping",
                    target >> 20
                );
                std::process::abort();
            }
        }
    }

    pub(super) fn expunge_txn(
        &self,
        txn: &mut RwTxn,
        account: &str,
        mailbox_id: u64,
        uids: &[u32],
    ) -> Result<usize> {
        let mut removed = 0;
        let mut freed = 0u64;
        let mut gone = super::MailboxCounts::default();
        for &uid in uids {
            let key = message_key(mailbox_id, uid);
            let Some(record) = self.db.messages.get(txn, &key)? else {
                continue;
            };
            self.db.messages.delete(txn, &key)?;
            self.db.save_dates.delete(txn, &key)?;
            self.release_blob(txn, record.blob, record.size)?;
            gone.apply(&record, 1);
            freed += record.size;
            removed += 1;
        }
        self.adjust_usage(txn, account, -(freed as i64))?;
        if removed > 0 {
            self.change_counts(txn, mailbox_id, |c| c.sub(&gone))?;
        }
        Ok(removed)
    }

    // ---- blobs ----

    pub(super) fn release_blob(&self, txn: &mut RwTxn, blob: u64, size: u64) -> Result<()> {
        let refs = self.db.blob_refs.get(txn, &blob)?.unwrap_or(1);
        if refs > 1 {
            self.db.blob_refs.put(txn, &blob, &(refs - 1))?;
            return Ok(());
        }
        self.db.blob_refs.delete(txn, &blob)?;
        self.db.message_meta.delete(txn, &blob)?;
        self.db.sort_keys.delete(txn, &blob)?;
        self.db.senders.delete(txn, &blob)?;
        self.junk_forget_blob(txn, blob)?;
        for chunk in 0..chunk_count(size) {
            self.db.blobs.delete(txn, &blob_chunk_key(blob, chunk))?;
        }
        Ok(())
    }

    /// Reads chunk `index` (of [`BLOB_CHUNK`] bytes) of a stored message. Reading a message
    /// chunk by chunk keeps memory flat and never holds a read transaction across I/O.
    pub fn read_chunk(&self, blob: u64, index: u32) -> Result<Vec<u8>> {
        let txn = self.read_txn()?;
        self.db
            .blobs
            .get(&txn, &blob_chunk_key(blob, index))?
            .map(<[u8]>::to_vec)
            .ok_or_else(|| StoreError::NotFound(format!("message data {blob}/{index}")))
    }

    /// The stored IMAP description of a blob, if it was computed at delivery.
    pub fn message_meta(&self, blob: u64) -> Result<Option<MessageMeta>> {
        let txn = self.read_txn()?;
        Ok(self.db.message_meta.get(&txn, &blob)?)
    }

    /// Stores a description computed later (large or pre-schema-2 messages), if the blob
    /// still exists.
    pub fn put_message_meta(&self, blob: u64, meta: &MessageMeta) -> Result<()> {
        let mut txn = self.write_txn()?;
        if self.db.blob_refs.get(&txn, &blob)?.is_some() {
            self.db.message_meta.put(&mut txn, &blob, meta)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The SORT and THREAD fields of each `(blob, size)`, in order. Blobs stored without
    /// them (spooled at delivery, or before schema 9) get them computed from the header
    /// and kept, so each message is read once; a blob gone meanwhile gets empty fields.
    pub fn sort_keys(&self, blobs: &[(u64, u64)]) -> Result<Vec<SortKeys>> {
        let mut out = Vec::with_capacity(blobs.len());
        let mut missing = Vec::new();
        {
            let txn = self.read_txn()?;
            for (i, &(blob, _)) in blobs.iter().enumerate() {
                match self.db.sort_keys.get(&txn, &blob)? {
                    Some(keys) => out.push(keys),
                    None => {
                        out.push(SortKeys::default());
                        missing.push(i);
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        for &i in &missing {
            let (blob, size) = blobs[i];
            let mut head = Vec::new();
            for index in 0..chunk_count(size).min(MAX_SORT_HEADER_CHUNKS) {
                match self.read_chunk(blob, index) {
                    Ok(chunk) => head.extend_from_slice(&chunk),
                    Err(_) => break,
                }
                if crate::mail::split(&head).body_start < head.len() {
                    break;
                }
            }
            let header = crate::mail::split(&head).header_block(&head);
            out[i] = crate::mail::sortkeys::sort_keys(header);
        }
        // Keeping them is a cache: a full store or a failed write costs only the next
        // SORT the same work.
        let kept = (|| -> Result<()> {
            let mut txn = self.write_txn()?;
            for &i in &missing {
                let blob = blobs[i].0;
                if self.db.blob_refs.get(&txn, &blob)?.is_some() {
                    self.db.sort_keys.put(&mut txn, &blob, &out[i])?;
                }
            }
            txn.commit()?;
            Ok(())
        })();
        if let Err(e) = kept {
            log::warn!(
                "store: keeping the sort fields of {} messages: {e}",
                missing.len()
            );
        }
        Ok(out)
    }

    /// Reads a whole stored message (tests and small messages only).
    pub fn read_message(&self, record: &MessageRecord) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(record.size as usize);
        for index in 0..chunk_count(record.size) {
            out.extend_from_slice(&self.read_chunk(record.blob, index)?);
        }
        Ok(out)
    }

    // ---- delivery ----

    /// Stores one accepted message in one transaction: a copy in each target mailbox and,
    /// for remote recipients, a queue entry. All of it or nothing.
    pub fn accept(&self, delivery: &mut Delivery) -> Result<Accepted> {
        self.check_room(delivery.message.size())?;
        let mut txn = self.write_txn()?;
        let accepted = self.accept_txn(&mut txn, delivery)?;
        txn.commit()?;
        Ok(accepted)
    }

    pub(super) fn accept_txn(&self, txn: &mut RwTxn, delivery: &mut Delivery) -> Result<Accepted> {
        let mut mailboxes: Vec<(Vec<u8>, Mailbox, &Target)> = Vec::new();
        for target in &delivery.targets {
            let key = mailbox_key(&target.account, &target.mailbox);
            if mailboxes.iter().any(|(k, _, _)| *k == key) {
                continue;
            }
            let mailbox = self
                .db
                .mailboxes
                .get(txn, &key)?
                .filter(|m| !m.noselect)
                .ok_or_else(|| {
                    StoreError::NotFound(format!("{} of {}", target.mailbox, target.account))
                })?;
            mailboxes.push((key, mailbox, target));
        }
        let outbound = delivery.outbound.as_ref();
        let holders = mailboxes.len() + usize::from(outbound.is_some());
        if holders == 0 {
            return Ok(Accepted::default());
        }
        let message = &mut delivery.message;
        let size = message.size();
        let blob = self.write_blob(txn, message)?;
        self.db.blob_refs.put(txn, &blob, &(holders as u32))?;
        let mut placed = Vec::with_capacity(mailboxes.len());
        for (key, mut mailbox, target) in mailboxes {
            let record = MessageRecord {
                blob,
                size,
                internal_date: message.internal_date,
                flags: target.flags,
                keywords: target.keywords.clone(),
                modseq: 0,
            };
            let uid = self.place_record(txn, &target.account, &mut mailbox, record)?;
            self.db.mailboxes.put(txn, &key, &mailbox)?;
            placed.push(Placed {
                mailbox: mailbox.id,
                uid,
            });
        }
        let queued = match outbound {
            Some(o) => Some(self.enqueue_txn(txn, blob, size, o, message.internal_date)?),
            None => None,
        };
        Ok(Accepted { placed, queued })
    }

    /// Adds `record` to `mailbox` under the next UID with a new modseq, and returns the UID.
    /// The caller saves the updated `mailbox`.
    pub(super) fn place_record(
        &self,
        txn: &mut RwTxn,
        account: &str,
        mailbox: &mut Mailbox,
        mut record: MessageRecord,
    ) -> Result<u32> {
        self.adjust_usage(txn, account, record.size as i64)?;
        self.change_counts(txn, mailbox.id, |c| c.apply(&record, 1))?;
        let uid = mailbox.uid_next;
        let saved = u64::try_from(now()).unwrap_or(0);
        self.db
            .save_dates
            .put(txn, &message_key(mailbox.id, uid), &saved)?;
        mailbox.uid_next += 1;
        mailbox.highest_modseq += 1;
        record.modseq = mailbox.highest_modseq;
        self.db
            .messages
            .put(txn, &message_key(mailbox.id, uid), &record)?;
        Ok(uid)
    }

    pub(super) fn write_blob(&self, txn: &mut RwTxn, message: &mut Incoming) -> Result<u64> {
        let blob = next_counter(&self.db, txn, META_NEXT_BLOB_ID)?;
        let mut chunk = Vec::with_capacity(BLOB_CHUNK);
        let mut index = 0u32;
        let mut put = |txn: &mut RwTxn, chunk: &mut Vec<u8>, piece: &[u8]| -> Result<()> {
            let mut piece = piece;
            while !piece.is_empty() {
                let take = (BLOB_CHUNK - chunk.len()).min(piece.len());
                chunk.extend_from_slice(&piece[..take]);
                piece = &piece[take..];
                if chunk.len() == BLOB_CHUNK {
                    self.db
                        .blobs
                        .put(txn, &blob_chunk_key(blob, index), chunk)?;
                    index += 1;
                    chunk.clear();
                }
            }
            Ok(())
        };
        put(txn, &mut chunk, &message.prefix)?;
        message
            .body
            .for_each_piece(|piece| put(txn, &mut chunk, piece))?;
        if !chunk.is_empty() {
            self.db
                .blobs
                .put(txn, &blob_chunk_key(blob, index), &chunk)?;
        }
        if let Some(meta) = &message.meta {
            self.db.message_meta.put(txn, &blob, meta)?;
        }
        if let Some(keys) = &message.sort {
            self.db.sort_keys.put(txn, &blob, keys)?;
        }
        Ok(blob)
    }
}

/// Left free on the file system for spooled messages and everything else.
const KEEP_FREE: u64 = 64 << 20;
/// A multiple of every page size in use (4 KiB, 16 KiB on the Pi 5).
const MAP_ALIGN: u64 = 64 << 10;
/// The smallest map a store is opened with.
const MIN_MAP: u64 = 8 << 20;

/// How large the data file of the LMDB environment in `dir` may become: its size now plus the file
/// system's free space, less [`KEEP_FREE`].
fn room_for_map(dir: &std::path::Path) -> nix::Result<u64> {
    // The data dir may not exist yet: then its nearest existing parent is the file system.
    let existing = dir.ancestors().find(|d| d.exists()).unwrap_or(dir);
    let file = std::fs::metadata(dir.join("data.mdb")).map_or(0, |m| m.len());
    let fs = nix::sys::statvfs::statvfs(existing)?;
    // The field types are narrower on some 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    let free = fs.blocks_available() as u64 * fs.fragment_size() as u64;
    Ok((file + free).saturating_sub(KEEP_FREE))
}

/// The map size to open the store in `data_dir` with: `map_size_mib` when it is configured;
/// otherwise the default, but no larger than the file system can give the data file. The
/// reserve that keeps deleting possible (new mail is refused once less than 5 % of the map
/// is left) then runs out before the disk does, on a small card too. On 64-bit the map
/// grows later with the disk (`grow`), so a /data grown to the whole card is used.
pub fn map_size(config: &crate::config::Config, data_dir: &std::path::Path) -> usize {
    let requested = config.map_size_bytes();
    if config.map_size_mib.is_some() {
        return requested;
    }
    // Never smaller than the data file already is: LMDB cannot open a file larger than
    // its map (a full disk must not lock the mail out).
    let env_dir = data_dir.join(super::STORE_DIR);
    let file = std::fs::metadata(env_dir.join("data.mdb")).map_or(0, |m| m.len());
    let at_least = file.div_ceil(MAP_ALIGN) * MAP_ALIGN;
    let fitted = match room_for_map(&env_dir) {
        Ok(room) => usize::try_from((room / MAP_ALIGN * MAP_ALIGN).max(MIN_MAP))
            .map_or(requested, |f| f.min(requested)),
        Err(_) => requested,
    };
    usize::try_from(at_least).map_or(fitted, |least| fitted.max(least))
}
