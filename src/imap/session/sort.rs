//! SORT and UID SORT (RFC 5256 §3, SORT=DISPLAY RFC 5957, ESORT RFC 5267 §3.2), THREAD
//! and UID THREAD (RFC 5256 §3). The search is SEARCH's; the comparison reads only the
//! stored sort fields ([`crate::mail::sortkeys`]), one lookup per message found.

use super::search::Found;
use super::{store_error_text, Reply, Session};
use crate::imap::parse::{Sort, SortBy, Thread, ThreadBy};
use crate::imap::thread::{self, Item};
use crate::mail::sortkeys::{casemap, SortKeys};
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
        let uses_modseq = key.uses_modseq();
        let keyed = match self.found_with_keys(key, uid).await? {
            Ok(keyed) => keyed,
            Err(reply) => return Ok(reply),
        };
        let mut order: Vec<usize> = (0..keyed.len()).collect();
        let sortable: Vec<Sortable> = keyed.iter().map(|(f, k)| Sortable::new(f, k)).collect();
        // Equal under every criterion: mailbox order (RFC 5256 §3), hence a stable sort.
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
        let sorted: Vec<(u32, u32, u64)> = order
            .iter()
            .map(|&i| {
                let f = &keyed[i].0;
                (f.seq, f.uid, f.record.modseq)
            })
            .collect();
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
