//! SORT and UID SORT (RFC 5256 §3, SORT=DISPLAY RFC 5957, ESORT RFC 5267 §3.2), THREAD
//! and UID THREAD (RFC 5256 §3). The search is SEARCH's; the comparison reads only the
//! stored sort fields ([`crate::mail::sortkeys`]), one lookup per message found.

use super::search::Found;
use super::{store_error_text, Reply, Session};
use crate::imap::parse::{Sort, SortBy, Thread, ThreadBy};
use crate::imap::thread::{self, Item};
use crate::mail::sortkeys::{casemap, SortKeys};
use crate::store::Store;
use std::cmp::Ordering;
use std::io;

impl Session {
    pub(super) async fn sort(&mut self, tag: &str, sort: Sort) -> io::Result<Reply> {
        let Sort {
            criteria,
            options,
            key,
            uid,
        } = sort;
        if let Some(reply) = options
            .filter(|o| o.update)
            .and_then(|_| self.context_tag_in_use(tag))
        {
            return Ok(reply);
        }
        let uses_modseq = key.uses_modseq();
        let context_key = self.context_key(&options, &key);
        let found = match self.find(key, uid).await? {
            Ok(found) => found,
            Err(reply) => return Ok(reply),
        };
        let order = criteria.clone();
        let found = match self.blocking(move |s| sorted(s, found, &order)).await? {
            Ok(found) => found,
            Err(e) => return Ok(Reply::No(store_error_text(&e))),
        };
        let sorted: Vec<(u32, u32, u64)> = found
            .iter()
            .map(|f| (f.seq, f.uid, f.record.modseq))
            .collect();
        if let Some(key) = context_key {
            let results = found.iter().map(|f| f.uid).collect();
            self.keep_context(tag, uid, key, Some(criteria), results);
        }
        self.answer(tag, "SORT", options, &sorted, uid, uses_modseq)
            .await
    }

    pub(super) async fn thread(&mut self, tag: &str, thread: Thread) -> io::Result<Reply> {
        let Thread {
            algorithm,
            key,
            uid,
        } = thread;
        let keyed = match self.found_with_keys(key, uid).await? {
            Ok(keyed) => keyed,
            Err(reply) => return Ok(reply),
        };
        let items: Vec<Item> = keyed
            .iter()
            .map(|(f, keys)| Item {
                number: if uid { f.uid } else { f.seq },
                sent: keys.sent.unwrap_or(f.record.internal_date),
                keys,
            })
            .collect();
        let line = match algorithm {
            ThreadBy::OrderedSubject => thread::ordered_subject(&items),
            ThreadBy::References => thread::references(&items),
        };
        self.conn.send(line.as_bytes());
        self.finish(tag, "OK THREAD completed", uid).await
    }

    /// The messages `key` finds, with their sort fields (see
    /// [`crate::store::Store::sort_keys`]).
    async fn found_with_keys(
        &mut self,
        key: crate::imap::parse::SearchKey,
        uid: bool,
    ) -> io::Result<Result<Vec<(Found, SortKeys)>, Reply>> {
        let found = match self.find(key, uid).await? {
            Ok(found) => found,
            Err(reply) => return Ok(Err(reply)),
        };
        let blobs: Vec<(u64, u64)> = found
            .iter()
            .map(|f| (f.record.blob, f.record.size))
            .collect();
        let keys = self.blocking(move |s| s.sort_keys(&blobs)).await?;
        Ok(match keys {
            Ok(keys) => Ok(found.into_iter().zip(keys).collect()),
            Err(e) => Err(Reply::No(store_error_text(&e))),
        })
    }
}

/// The messages found, in SORT order: the criteria in turn, then mailbox order (RFC
/// 5256 §3). Runs in the store thread: one sort-field lookup per message.
pub(super) fn sorted(
    store: &Store,
    found: Vec<Found>,
    criteria: &[(SortBy, bool)],
) -> crate::store::Result<Vec<Found>> {
    let blobs: Vec<(u64, u64)> = found
        .iter()
        .map(|f| (f.record.blob, f.record.size))
        .collect();
    let keys = store.sort_keys(&blobs)?;
    let sortable: Vec<Sortable> = found
        .iter()
        .zip(&keys)
        .map(|(f, k)| Sortable::new(f, k))
        .collect();
    let mut order: Vec<usize> = (0..found.len()).collect();
    // Stable: equal under every criterion keeps mailbox order.
    order.sort_by(|&a, &b| {
        criteria
            .iter()
            .map(|&(by, reverse)| {
                let o = sortable[a].compare(&sortable[b], by);
                if reverse {
                    o.reverse()
                } else {
                    o
                }
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    });
    let mut found: Vec<Option<Found>> = found.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| found[i].take()).collect())
}

/// A message's sort values, case-mapped once rather than at every comparison.
struct Sortable {
    arrival: i64,
    sent: i64,
    size: u64,
    subject: String,
    from: String,
    to: String,
    cc: String,
    display_from: String,
    display_to: String,
}

impl Sortable {
    fn new(found: &Found, keys: &SortKeys) -> Sortable {
        Sortable {
            arrival: found.record.internal_date,
            // RFC 5256 §2.2: without a valid Date:, the INTERNALDATE.
            sent: keys.sent.unwrap_or(found.record.internal_date),
            size: found.record.size,
            subject: casemap(&keys.subject),
            from: casemap(&keys.from.mailbox),
            to: casemap(&keys.to.mailbox),
            cc: casemap(&keys.cc.mailbox),
            display_from: casemap(&keys.from.display),
            display_to: casemap(&keys.to.display),
        }
    }

    fn compare(&self, other: &Sortable, by: SortBy) -> Ordering {
        match by {
            SortBy::Arrival => self.arrival.cmp(&other.arrival),
            SortBy::Date => self.sent.cmp(&other.sent),
            SortBy::Size => self.size.cmp(&other.size),
            SortBy::Subject => self.subject.cmp(&other.subject),
            SortBy::From => self.from.cmp(&other.from),
            SortBy::To => self.to.cmp(&other.to),
            SortBy::Cc => self.cc.cmp(&other.cc),
            SortBy::DisplayFrom => self.display_from.cmp(&other.display_from),
            SortBy::DisplayTo => self.display_to.cmp(&other.display_to),
        }
    }
}
