//! SEARCH and UID SEARCH (RFC 9051 §6.4.4), with MODSEQ (RFC 7162 §3.1.5), ESEARCH
//! results (RFC 4731, always once IMAP4rev2 is enabled) and SEARCHRES's saved result
//! (RFC 5182).

use super::{store_error_text, Reply, Session};
use crate::imap::encode;
use crate::imap::message::{matches, Candidate};
use crate::imap::parse::{Search, SearchKey, SearchReturn};
use crate::store::{MessageRecord, Store};
use std::io;
use std::rc::Rc;

/// Keys that read message bytes one SEARCH may hold: each is a pass over every message.
const MAX_CONTENT_KEYS: usize = 16;

/// A snapshot message as SEARCH sees it: UID, record, expunged elsewhere, `\Recent`.
pub(super) type Snapshot = Vec<(u32, MessageRecord, bool, bool)>;

impl Session {
    /// SEARCH and UID SEARCH (RFC 9051 §6.4.4).
    pub(super) async fn search(&mut self, tag: &str, search: Search) -> io::Result<Reply> {
        let Search { options, key, uid } = search;
        // IMAP4rev2 answers every SEARCH with ESEARCH (RFC 9051 §6.4.4).
        let options = options.or(self.rev2.then(SearchReturn::all));
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
        if let Some(key) = context_key {
            let results = found.iter().map(|f| f.uid).collect();
            self.keep_context(tag, uid, key, None, results);
        }
        let found: Vec<(u32, u32, u64)> = found
            .into_iter()
            .map(|m| (m.seq, m.uid, m.record.modseq))
            .collect();
        self.answer(tag, "SEARCH", options, &found, uid, uses_modseq)
            .await
    }

    /// Sends what SEARCH or SORT (`word`) found, in the order given: `* SEARCH` / `* SORT`,
    /// or ESEARCH with `options`, and keeps SAVE's result. `found` is (sequence number,
    /// UID, modseq).
    pub(super) async fn answer(
        &mut self,
        tag: &str,
        word: &str,
        options: Option<SearchReturn>,
        found: &[(u32, u32, u64)],
        uid: bool,
        uses_modseq: bool,
    ) -> io::Result<Reply> {
        let done = format!("OK {word} completed");
        let numbers: Vec<u32> = found
            .iter()
            .map(|&(seq, u, _)| if uid { u } else { seq })
            .collect();
        // The highest modseq of what is returned: with MIN/MAX alone, of those messages
        // only (RFC 7162 §3.1.5).
        let returned: Vec<&(u32, u32, u64)> = match &options {
            Some(o) if (o.min || o.max) && !(o.all || o.count) => {
                let mut ends = Vec::new();
                if o.min {
                    ends.extend(found.first());
                }
                if o.max {
                    ends.extend(found.last());
                }
                ends
            }
            _ => found.iter().collect(),
        };
        let highest = returned.iter().map(|&&(_, _, m)| m).max();
        let modseq = highest.filter(|_| uses_modseq);
        let Some(options) = options else {
            self.conn
                .send(encode::search(word, &numbers, modseq).as_bytes());
            return self.finish(tag, &done, uid).await;
        };
        if options.save {
            let mut uids: Vec<u32> = found.iter().map(|&(_, u, _)| u).collect();
            let saved = saved_result(&options, uids.clone());
            uids = saved;
            uids.sort_unstable();
            if let Some(sel) = self.selected.as_mut() {
                sel.saved = uids;
            }
        }
        if options.sends_result() {
            let line = encode::esearch(tag, uid, &options, &numbers, modseq);
            self.conn.send(line.as_bytes());
        }
        self.finish(tag, &done, uid).await
    }
}

impl Session {
    /// The key a context of this search keeps (`$` as it is now), when UPDATE asks for one.
    pub(super) fn context_key(
        &self,
        options: &Option<SearchReturn>,
        key: &SearchKey,
    ) -> Option<SearchKey> {
        let sel = self.selected.as_ref()?;
        options
            .filter(|o| o.update)
            .map(|_| key.clone().with_saved(&sel.saved))
    }
}

/// A message a search found.
pub(super) struct Found {
    pub seq: u32,
    pub uid: u32,
    pub record: MessageRecord,
}

impl Session {
    /// What SEARCH, SORT and THREAD share: `$` resolved, the key checked, the mailbox
    /// brought up to date, then the messages that match, in mailbox order. `Err` is the
    /// reply when the search cannot run.
    pub(super) async fn find(
        &mut self,
        key: SearchKey,
        uid: bool,
    ) -> io::Result<Result<Vec<Found>, Reply>> {
        let Some(sel) = &self.selected else {
            return Ok(Err(Reply::Bad("No mailbox selected".into())));
        };
        let key = key.with_saved(&sel.saved);
        if key.content_keys() > MAX_CONTENT_KEYS {
            let text = format!("[LIMIT] At most {MAX_CONTENT_KEYS} header, BODY and TEXT keys");
            return Ok(Err(Reply::No(text)));
        }
        if key.uses_modseq() {
            self.enable_condstore().await?;
        }
        self.sync(uid).await?;
        let Some(sel) = &self.selected else {
            return Ok(Err(Reply::Bad("No mailbox selected".into())));
        };
        let snapshot: Snapshot = sel
            .messages
            .iter()
            .map(|m| (m.uid, m.record.clone(), m.gone, sel.is_recent(m.uid)))
            .collect();
        let mailbox = sel.id;
        let found = self
            .blocking(move |s| matching(s, &key, mailbox, snapshot))
            .await?;
        Ok(found.map_err(|e| Reply::No(store_error_text(&e))))
    }
}

/// The messages that match. Runs in the store thread; a message's bytes are read only
/// when a key needs them.
pub(super) fn matching(
    store: &Store,
    key: &SearchKey,
    mailbox: u64,
    snapshot: Snapshot,
) -> crate::store::Result<Vec<Found>> {
    let save_dates = key.uses_save_date();
    let max_seq = snapshot.len() as u32;
    let max_uid = snapshot.last().map_or(0, |m| m.0);
    let mut out = Vec::new();
    let now = crate::clock::unix_now();
    for (i, (uid, record, gone, recent)) in snapshot.into_iter().enumerate() {
        if gone {
            continue;
        }
        let candidate = Candidate {
            seq: i as u32 + 1,
            max_seq,
            uid,
            max_uid,
            record: &record,
            recent,
            now,
            saved: if save_dates {
                store.save_date(mailbox, uid)?
            } else {
                None
            },
        };
        let mut cache: Option<Rc<Vec<u8>>> = None;
        let mut content = || {
            if cache.is_none() {
                cache = store.read_message(&record).ok().map(Rc::new);
            }
            cache.clone()
        };
        if matches(key, &candidate, &mut content) {
            out.push(Found {
                seq: i as u32 + 1,
                uid,
                record,
            });
        }
    }
    Ok(out)
}

/// What SAVE keeps: with MIN/MAX but neither ALL nor COUNT, only those (RFC 5182 §2.4).
fn saved_result(options: &SearchReturn, uids: Vec<u32>) -> Vec<u32> {
    if !((options.min || options.max) && !(options.all || options.count)) {
        return uids;
    }
    let mut ends = Vec::new();
    if options.min {
        ends.extend(uids.first());
    }
    if options.max {
        ends.extend(uids.last());
    }
    ends.dedup();
    ends
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_results() {
        let with = |min, max, all, count| SearchReturn {
            min,
            max,
            all,
            count,
            save: true,
            ..SearchReturn::default()
        };
        let uids = vec![3, 5, 9];
        assert_eq!(
            saved_result(&with(false, false, false, false), uids.clone()),
            uids
        );
        assert_eq!(
            saved_result(&with(true, false, false, false), uids.clone()),
            [3]
        );
        assert_eq!(
            saved_result(&with(true, true, false, false), uids.clone()),
            [3, 9]
        );
        assert_eq!(
            saved_result(&with(true, false, true, false), uids.clone()),
            uids
        );
        assert_eq!(saved_result(&with(true, true, false, false), vec![4]), [4]);
        assert!(saved_result(&with(true, true, false, false), vec![]).is_empty());
    }
}
