//! Search contexts (RFC 5267 §4, CONTEXT=SEARCH and CONTEXT=SORT): a SEARCH or SORT with
//! `RETURN (UPDATE)` stays alive while its mailbox is selected, and every change to its
//! result (new messages, flag changes, expunges) is told as an unsolicited ESEARCH with
//! REMOVEFROM and ADDTO, until CANCELUPDATE or the mailbox is left.
//!
//! A context keeps the key (with `$` resolved when it was made) and the result the client
//! holds, as UIDs in its order. After the snapshot changes the key is run again and the
//! two results compared. Removals caused by expunges are told before the EXPUNGE
//! responses, while their sequence numbers still hold (§4.3.4); additions after EXISTS.
//! SEARCH results use position 0 and mailbox order; SORT results name the positions.

use super::search::{matching, Found, Snapshot};
use super::sort::sorted;
use super::{Reply, Session};
use crate::imap::encode::{number_set, quote};
use crate::imap::parse::{SearchKey, SortBy};
use crate::store::Store;
use std::collections::HashSet;
use std::io;

/// Live contexts one session may hold; beyond it UPDATE is refused with NOUPDATE (RFC
/// 5267 §4.3.1 asks for at least one). Each is a search run after every change.
pub(super) const MAX_CONTEXTS: usize = 8;

/// SORT criteria with whether each is reversed.
pub(super) type Criteria = Vec<(SortBy, bool)>;

pub(super) struct Context {
    pub tag: String,
    pub uid: bool,
    pub key: SearchKey,
    /// SORT's criteria; `None` for a SEARCH.
    pub order: Option<Criteria>,
    /// The result as the client holds it: UIDs, in its order.
    pub results: Vec<u32>,
    /// The highest (modseq, UID) of the snapshot that result was found in: messages
    /// above either are the ones to look at again.
    pub seen: (u64, u32),
}

impl super::Selected {
    /// The highest modseq and UID of the snapshot; the modseq stays below changes a sync
    /// left out (NOTIFY without FlagChange), so they are looked at once taken in.
    fn seen_now(&self) -> (u64, u32) {
        let modseq = self.messages.iter().map(|m| m.record.modseq).max();
        let modseq = modseq
            .unwrap_or(0)
            .min(self.deferred_below.unwrap_or(u64::MAX));
        (modseq, self.messages.last().map_or(0, |m| m.uid))
    }
}

/// One context's search, run in the store thread.
struct Pass {
    key: SearchKey,
    order: Option<Criteria>,
    /// For keys that allow it: the result so far and the marks it was found at.
    since: Option<(Vec<u32>, (u64, u32))>,
}

impl Pass {
    /// The result now, as UIDs in the context's order.
    fn run(
        self,
        store: &Store,
        mailbox: u64,
        snapshot: &Snapshot,
    ) -> crate::store::Result<Vec<u32>> {
        let found = match self.since {
            None => matching(store, &self.key, mailbox, snapshot.clone())?,
            Some((results, (modseq, uid))) => {
                let changed: Snapshot = snapshot
                    .iter()
                    .filter(|m| !m.2 && (m.0 > uid || m.1.modseq > modseq))
                    .cloned()
                    .collect();
                let again: HashSet<u32> = changed.iter().map(|m| m.0).collect();
                let mut keep: HashSet<u32> =
                    results.into_iter().filter(|u| !again.contains(u)).collect();
                keep.extend(
                    matching(store, &self.key, mailbox, changed)?
                        .iter()
                        .map(|f| f.uid),
                );
                snapshot
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| !m.2 && keep.contains(&m.0))
                    .map(|(i, m)| Found {
                        seq: i as u32 + 1,
                        uid: m.0,
                        record: m.1.clone(),
                    })
                    .collect()
            }
        };
        Ok(match self.order {
            None => found.iter().map(|f| f.uid).collect(),
            Some(criteria) => sorted(store, found, &criteria)?
                .iter()
                .map(|f| f.uid)
                .collect(),
        })
    }
}

impl Context {
    /// The ESEARCH that removes `gone` (sorted UIDs, being expunged) from the result, or
    /// `None` when none of them is in it. `seq` gives a UID's sequence number now.
    pub fn expunged(&mut self, gone: &[u32], seq: &impl Fn(u32) -> u32) -> Option<String> {
        let keep: Vec<u32> = self
            .results
            .iter()
            .copied()
            .filter(|u| gone.binary_search(u).is_err())
            .collect();
        self.update(keep, seq)
    }

    /// Makes `now` (UIDs in result order) the result and returns the ESEARCH telling the
    /// client, or `None` when nothing changed.
    pub fn update(&mut self, now: Vec<u32>, seq: &impl Fn(u32) -> u32) -> Option<String> {
        let old: HashSet<u32> = self.results.iter().copied().collect();
        let new: HashSet<u32> = now.iter().copied().collect();
        let number = |u: u32| if self.uid { u } else { seq(u) };
        let sorted = self.order.is_some();
        let removed = runs(&self.results, |u| !new.contains(&u), sorted, true);
        let added = runs(&now, |u| !old.contains(&u), sorted, false);
        if removed.is_empty() && added.is_empty() {
            return None;
        }
        let mut line = format!("* ESEARCH (TAG {})", quote(&self.tag));
        if self.uid {
            line.push_str(" UID");
        }
        for (word, pairs) in [("REMOVEFROM", removed), ("ADDTO", added)] {
            if pairs.is_empty() {
                continue;
            }
            let pairs: Vec<String> = pairs
                .into_iter()
                .map(|(position, uids)| {
                    let mut numbers: Vec<u32> = uids.into_iter().map(number).collect();
                    if !sorted {
                        numbers.sort_unstable();
                    }
                    format!("{position} {}", number_set(&numbers))
                })
                .collect();
            line.push_str(&format!(" {word} ({})", pairs.join(" ")));
        }
        line.push_str("\r\n");
        self.results = now;
        Some(line)
    }
}

/// The (context position, UIDs) pairs for the members of `list` that `pick` selects. For
/// a SEARCH one pair at position 0. For a SORT, runs of neighbours: a removal's position
/// is where the run starts once earlier runs are gone (`removing`), an insertion's its
/// place in the new list; applied in order they turn the old list into the new one.
fn runs(
    list: &[u32],
    pick: impl Fn(u32) -> bool,
    sorted: bool,
    removing: bool,
) -> Vec<(usize, Vec<u32>)> {
    if !sorted {
        let picked: Vec<u32> = list.iter().copied().filter(|&u| pick(u)).collect();
        return if picked.is_empty() {
            Vec::new()
        } else {
            vec![(0, picked)]
        };
    }
    let mut pairs: Vec<(usize, Vec<u32>)> = Vec::new();
    let (mut dropped, mut previous) = (0, None);
    for (i, &u) in list.iter().enumerate() {
        if !pick(u) {
            continue;
        }
        let position = if removing { i - dropped + 1 } else { i + 1 };
        match pairs.last_mut() {
            Some((_, run)) if previous == Some(i.wrapping_sub(1)) => run.push(u),
            _ => pairs.push((position, vec![u])),
        }
        previous = Some(i);
        dropped += 1;
    }
    pairs
}

impl Session {
    /// Registers the context of a SEARCH or SORT with UPDATE (its reply is yet to be
    /// sent): `results` are the UIDs found in the snapshot as it is. Refused with an
    /// untagged NO [NOUPDATE] when the session has too many.
    pub(super) fn keep_context(
        &mut self,
        tag: &str,
        uid: bool,
        key: SearchKey,
        order: Option<Criteria>,
        results: Vec<u32>,
    ) {
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        if sel.contexts.len() >= MAX_CONTEXTS {
            let text = format!("NO [NOUPDATE {}] Too many search contexts", quote(tag));
            self.untagged(&text);
            return;
        }
        let seen = sel.seen_now();
        sel.contexts.push(Context {
            tag: tag.into(),
            uid,
            key,
            order,
            results,
            seen,
        });
    }

    /// The BAD for an UPDATE whose tag a live context already has (RFC 5267 §4.3).
    pub(super) fn context_tag_in_use(&self, tag: &str) -> Option<Reply> {
        let sel = self.selected.as_ref()?;
        sel.contexts
            .iter()
            .any(|c| c.tag == tag)
            .then(|| Reply::Bad("Tag reuse: a search context has this tag".into()))
    }

    /// Brings every context up to date after the snapshot changed and tells the client
    /// what entered or left each result. A key that does not depend on message positions
    /// or the clock is run only on the messages that are new or changed since.
    pub(super) async fn update_contexts(&mut self) -> io::Result<()> {
        let Some(sel) = self.selected.as_mut() else {
            return Ok(());
        };
        if !sel.dirty || sel.contexts.is_empty() {
            return Ok(());
        }
        let snapshot: Snapshot = sel
            .messages
            .iter()
            .map(|m| (m.uid, m.record.clone(), m.gone, sel.is_recent(m.uid)))
            .collect();
        let seen = sel.seen_now();
        let passes: Vec<Pass> = sel
            .contexts
            .iter()
            .map(|c| Pass {
                key: c.key.clone(),
                order: c.order.clone(),
                since: (!c.key.depends_on_position()).then(|| (c.results.clone(), c.seen)),
            })
            .collect();
        let mailbox = sel.id;
        let results = self
            .blocking(move |store| {
                passes
                    .into_iter()
                    .map(|pass| pass.run(store, mailbox, &snapshot))
                    .collect::<crate::store::Result<Vec<Vec<u32>>>>()
            })
            .await?;
        let results = match results {
            Ok(r) => r,
            Err(e) => {
                log::error!(
                    "imap {}: updating search contexts failed: {e}",
                    self.conn.peer
                );
                return Ok(());
            }
        };
        let Some(sel) = self.selected.as_mut() else {
            return Ok(());
        };
        sel.dirty = false;
        let seqs: Vec<u32> = sel.messages.iter().map(|m| m.uid).collect();
        let seq = |u: u32| seqs.binary_search(&u).map_or(0, |i| i as u32 + 1);
        let mut out = String::new();
        for (context, now) in sel.contexts.iter_mut().zip(results) {
            context.seen = seen;
            out.extend(context.update(now, &seq));
        }
        self.conn.send(out.as_bytes());
        Ok(())
    }

    /// CANCELUPDATE (RFC 5267 §4.3.5): the named contexts stop; an unknown tag cancels
    /// nothing and gets NO.
    pub(super) async fn cancel_update(&mut self, tag: &str, tags: &[String]) -> io::Result<Reply> {
        let Some(sel) = self.selected.as_mut() else {
            return Ok(Reply::Bad("No mailbox selected".into()));
        };
        if let Some(unknown) = tags
            .iter()
            .find(|t| !sel.contexts.iter().any(|c| &c.tag == *t))
        {
            return Ok(Reply::No(format!(
                "No search context has the tag {}",
                quote(unknown)
            )));
        }
        sel.contexts.retain(|c| !tags.contains(&c.tag));
        self.finish(tag, "OK CANCELUPDATE completed", true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(uid: bool, sorted: bool, results: &[u32]) -> Context {
        Context {
            tag: "A1".into(),
            uid,
            key: SearchKey::All,
            order: sorted.then(|| vec![(SortBy::Arrival, true)]),
            results: results.to_vec(),
            seen: (0, 0),
        }
    }

    /// Applies REMOVEFROM/ADDTO pairs as a client must (RFC 5267 §4.3.3, §4.3.4).
    fn apply(list: &mut Vec<u32>, removing: bool, pairs: &[(usize, Vec<u32>)]) {
        for (position, uids) in pairs {
            for (k, u) in uids.iter().enumerate() {
                if removing {
                    assert_eq!(list[position - 1], *u);
                    list.remove(position - 1);
                } else {
                    list.insert(position - 1 + k, *u);
                }
            }
        }
    }

    #[test]
    fn search_updates_use_position_zero_and_mailbox_order() {
        let mut c = context(true, false, &[2, 3, 5]);
        let seq = |u: u32| u;
        assert_eq!(
            c.update(vec![3, 5, 7, 8], &seq).as_deref(),
            Some("* ESEARCH (TAG \"A1\") UID REMOVEFROM (0 2) ADDTO (0 7:8)\r\n")
        );
        assert_eq!(c.update(vec![3, 5, 7, 8], &seq), None);
        // Sequence numbers for a SEARCH without UID.
        let mut c = context(false, false, &[10, 20]);
        let seq = |u: u32| u / 10;
        assert_eq!(
            c.expunged(&[10, 11], &seq).as_deref(),
            Some("* ESEARCH (TAG \"A1\") REMOVEFROM (0 1)\r\n")
        );
        assert_eq!(c.results, [20]);
        assert_eq!(c.expunged(&[30], &seq), None);
    }

    #[test]
    fn sort_updates_name_positions_that_rebuild_the_new_order() {
        let old = vec![9, 4, 7, 1, 3, 8];
        let new = vec![6, 9, 1, 5, 2, 8];
        let removed = runs(&old, |u| !new.contains(&u), true, true);
        assert_eq!(removed, [(2, vec![4, 7]), (3, vec![3])]);
        let added = runs(&new, |u| !old.contains(&u), true, false);
        assert_eq!(added, [(1, vec![6]), (4, vec![5, 2])]);
        let mut list = old.clone();
        apply(&mut list, true, &removed);
        apply(&mut list, false, &added);
        assert_eq!(list, new);
        let mut c = context(true, true, &old);
        assert_eq!(
            c.update(new.clone(), &|u| u).as_deref(),
            Some("* ESEARCH (TAG \"A1\") UID REMOVEFROM (2 4,7 3 3) ADDTO (1 6 4 5,2)\r\n")
        );
        assert_eq!(c.results, new);
    }
}
