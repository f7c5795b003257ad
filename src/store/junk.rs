//! Junk filter statistics (schema 6): for each account, how many trained spam and ham
//! messages contained each token, the account's totals, and which stored message was
//! trained as which class. The tokens and the classifier live in [`crate::junk`]; this
//! file only counts, in LMDB, so the statistics are never all in memory.
//!
//! Keys start with an 8-byte digest of the account address (SHA-256, truncated) rather
//! than the address itself: every token key repeats it, and LMDB does not compress
//! prefixes. Two accounts sharing a digest is a 2^-64 chance per pair; it would mix their
//! statistics, nothing else.
//!
//! - `junk`: digest ++ token → spam count, ham count, the account's training sequence
//!   number when the token was last counted (u32 BE each). The digest alone → totals:
//!   spam messages, ham messages, tokens, sequence number (u32 BE each).
//! - `junk_trained`: blob id (u64 BE) ++ digest → 1 (spam) or 0 (ham). Keyed by blob
//!   first so that the blob's release drops it with one seek; a message moved or copied
//!   keeps its blob, so it is never counted twice.
//!
//! Bound: past [`MAX_JUNK_TOKENS`] tokens, one training prunes the account back to nine
//! tenths of it in two scans of its keys, with a fixed-size histogram, never a list of
//! all tokens. Tokens counted once go first, the longest unused first (by sequence
//! number, in 16 age buckets); only when those are not enough, tokens counted twice, and
//! so on. Pruning a token that a later un-training would decrement only loses that
//! decrement.

use super::{parse_address, Result, Store, StoreError};
use crate::limits::{MAX_JUNK_TOKENS, MAX_JUNK_TOKEN_BYTES};
use heed::RwTxn;
use std::ops::Bound;

/// An account's trained messages and how many tokens its statistics hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JunkTotals {
    pub spam: u32,
    pub ham: u32,
    pub tokens: u32,
}

/// How many trained spam and ham messages contained a token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub spam: u32,
    pub ham: u32,
}

/// Totals as stored: [`JunkTotals`] plus the training sequence number.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    spam: u32,
    ham: u32,
    tokens: u32,
    seq: u32,
}

/// Age buckets of the pruning histogram, and the counts told apart (1, 2, 3, 4 or more).
const AGE_BUCKETS: usize = 16;
const COUNT_CLASSES: usize = 4;
/// Keys deleted per pass of the pruning scan.
const PRUNE_BATCH: usize = 1024;

fn digest(account: &str) -> [u8; 8] {
    let d = ring::digest::digest(&ring::digest::SHA256, account.as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&d.as_ref()[..8]);
    out
}

fn token_key(digest: &[u8; 8], token: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + token.len());
    key.extend_from_slice(digest);
    key.extend_from_slice(token.as_bytes());
    key
}

fn trained_key(blob: u64, digest: &[u8; 8]) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&blob.to_be_bytes());
    key[8..].copy_from_slice(digest);
    key
}

fn u32_at(bytes: &[u8], i: usize) -> u32 {
    bytes
        .get(i * 4..i * 4 + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn decode_token(bytes: &[u8]) -> (u32, u32, u32) {
    (u32_at(bytes, 0), u32_at(bytes, 1), u32_at(bytes, 2))
}

fn encode_token(spam: u32, ham: u32, last: u32) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..4].copy_from_slice(&spam.to_be_bytes());
    out[4..8].copy_from_slice(&ham.to_be_bytes());
    out[8..].copy_from_slice(&last.to_be_bytes());
    out
}

fn usable(token: &str) -> bool {
    !token.is_empty() && token.len() <= MAX_JUNK_TOKEN_BYTES
}

impl Totals {
    fn decode(bytes: &[u8]) -> Totals {
        Totals {
            spam: u32_at(bytes, 0),
            ham: u32_at(bytes, 1),
            tokens: u32_at(bytes, 2),
            seq: u32_at(bytes, 3),
        }
    }

    fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, v) in [self.spam, self.ham, self.tokens, self.seq]
            .iter()
            .enumerate()
        {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
        }
        out
    }

    fn public(&self) -> JunkTotals {
        JunkTotals {
            spam: self.spam,
            ham: self.ham,
            tokens: self.tokens,
        }
    }
}

impl Store {
    /// An account's junk totals (zero for an unknown account).
    pub fn junk_totals(&self, account: &str) -> Result<JunkTotals> {
        let (account, _) = parse_address(account)?;
        let txn = self.read_txn()?;
        let totals = self.db.junk.get(&txn, &digest(&account))?;
        Ok(totals.map(Totals::decode).unwrap_or_default().public())
    }

    /// The totals and each token's counts, in one read transaction.
    pub fn junk_counts(
        &self,
        account: &str,
        tokens: &[String],
    ) -> Result<(JunkTotals, Vec<TokenCounts>)> {
        let (account, _) = parse_address(account)?;
        let d = digest(&account);
        let txn = self.read_txn()?;
        let totals = self.db.junk.get(&txn, &d)?.map(Totals::decode);
        let mut counts = Vec::with_capacity(tokens.len());
        for token in tokens {
            let found = if usable(token) {
                self.db.junk.get(&txn, &token_key(&d, token))?
            } else {
                None
            };
            let (spam, ham, _) = found.map_or((0, 0, 0), decode_token);
            counts.push(TokenCounts { spam, ham });
        }
        Ok((totals.unwrap_or_default().public(), counts))
    }

    /// Counts one message with these (unique) tokens as spam or ham.
    /// Refused (`Full`) once new mail is: the reserve is for deletions.
    pub fn junk_train(&self, account: &str, tokens: &[String], spam: bool) -> Result<()> {
        let (account, _) = parse_address(account)?;
        self.check_room(0)?;
        let mut txn = self.write_txn()?;
        self.require_account(&txn, &account)?;
        self.junk_add(&mut txn, &digest(&account), tokens, spam, true)?;
        self.junk_bound(&mut txn, &digest(&account), MAX_JUNK_TOKENS)?;
        txn.commit()?;
        Ok(())
    }

    /// The class a stored message (its blob) was trained as for an account, if any.
    pub fn junk_trained(&self, account: &str, blob: u64) -> Result<Option<bool>> {
        let (account, _) = parse_address(account)?;
        let txn = self.read_txn()?;
        let class = self
            .db
            .junk_trained
            .get(&txn, &trained_key(blob, &digest(&account)))?;
        Ok(class.map(|c| c == [1]))
    }

    /// Trains a stored message as spam or ham unless it already is: a message trained as
    /// the other class is un-trained from it first. `tokens` are the message's. Returns
    /// whether anything changed.
    pub fn junk_train_blob(
        &self,
        account: &str,
        blob: u64,
        tokens: &[String],
        spam: bool,
    ) -> Result<bool> {
        let (account, _) = parse_address(account)?;
        let d = digest(&account);
        let key = trained_key(blob, &d);
        // Learning is worth less than the reserve kept for deletions.
        self.check_room(0)?;
        let mut txn = self.write_txn()?;
        self.require_account(&txn, &account)?;
        if self.db.blob_refs.get(&txn, &blob)?.is_none() {
            // Expunged meanwhile: a marker now would outlive the blob.
            return Ok(false);
        }
        let before = self.db.junk_trained.get(&txn, &key)?.map(|c| c == [1]);
        if before == Some(spam) {
            return Ok(false);
        }
        if let Some(old) = before {
            self.junk_add(&mut txn, &d, tokens, old, false)?;
        }
        self.junk_add(&mut txn, &d, tokens, spam, true)?;
        self.db.junk_trained.put(&mut txn, &key, &[spam as u8])?;
        self.junk_bound(&mut txn, &d, MAX_JUNK_TOKENS)?;
        txn.commit()?;
        Ok(true)
    }

    /// LMDB bytes the junk databases take, all accounts together.
    pub fn junk_bytes(&self) -> Result<u64> {
        let txn = self.read_txn()?;
        let mut bytes = 0;
        for stat in [self.db.junk.stat(&txn)?, self.db.junk_trained.stat(&txn)?] {
            let pages = stat.branch_pages + stat.leaf_pages + stat.overflow_pages;
            bytes += pages as u64 * stat.page_size as u64;
        }
        Ok(bytes)
    }

    fn require_account(&self, txn: &RwTxn, account: &str) -> Result<()> {
        if self.db.accounts.get(txn, account)?.is_none() {
            return Err(StoreError::NotFound(format!("account {account}")));
        }
        Ok(())
    }

    /// Adds (or, `add` false, removes) one message of a class with these tokens.
    fn junk_add(
        &self,
        txn: &mut RwTxn,
        d: &[u8; 8],
        tokens: &[String],
        spam: bool,
        add: bool,
    ) -> Result<()> {
        let mut totals = self
            .db
            .junk
            .get(txn, d)?
            .map(Totals::decode)
            .unwrap_or_default();
        let step = |v: u32| {
            if add {
                v.saturating_add(1)
            } else {
                v.saturating_sub(1)
            }
        };
        if add {
            totals.seq = totals.seq.saturating_add(1);
        }
        for token in tokens.iter().filter(|t| usable(t)) {
            let key = token_key(d, token);
            let found = self.db.junk.get(txn, &key)?.map(decode_token);
            if found.is_none() && !add {
                continue; // pruned meanwhile
            }
            let (mut s, mut h, mut last) = found.unwrap_or((0, 0, 0));
            if spam {
                s = step(s);
            } else {
                h = step(h);
            }
            if add {
                last = totals.seq;
            }
            if s == 0 && h == 0 {
                self.db.junk.delete(txn, &key)?;
                totals.tokens = totals.tokens.saturating_sub(1);
                continue;
            }
            if found.is_none() {
                totals.tokens = totals.tokens.saturating_add(1);
            }
            self.db.junk.put(txn, &key, &encode_token(s, h, last))?;
        }
        if spam {
            totals.spam = step(totals.spam);
        } else {
            totals.ham = step(totals.ham);
        }
        self.db.junk.put(txn, d, &totals.encode())?;
        Ok(())
    }

    /// Prunes an account above `cap` tokens back to nine tenths of it (see the module doc).
    fn junk_bound(&self, txn: &mut RwTxn, d: &[u8; 8], cap: u32) -> Result<()> {
        let Some(mut totals) = self.db.junk.get(txn, d)?.map(Totals::decode) else {
            return Ok(());
        };
        if totals.tokens <= cap {
            return Ok(());
        }
        let excess = totals.tokens - cap / 10 * 9;
        let seq = totals.seq;
        // The cell of a token: lower is pruned first.
        let cell = |value: &[u8]| {
            let (s, h, last) = decode_token(value);
            let count = (s.saturating_add(h).clamp(1, COUNT_CLASSES as u32) - 1) as usize;
            let age = seq.saturating_sub(last) as u64 * AGE_BUCKETS as u64 / (seq as u64 + 1);
            count * AGE_BUCKETS + (AGE_BUCKETS - 1 - age as usize)
        };
        let mut histogram = [0u32; COUNT_CLASSES * AGE_BUCKETS];
        for item in self.db.junk.prefix_iter(txn, d)? {
            let (key, value) = item?;
            if key.len() > d.len() {
                histogram[cell(value)] += 1;
            }
        }
        let mut limit = 0;
        let mut chosen = 0u32;
        while limit < histogram.len() && chosen < excess {
            chosen += histogram[limit];
            limit += 1;
        }
        // Delete cells below `limit`, in batches: no list of every key is ever held.
        let mut from = d.to_vec();
        let mut removed = 0u32;
        loop {
            let mut batch = Vec::new();
            let range = (Bound::Excluded(from.as_slice()), Bound::Unbounded);
            for item in self.db.junk.range(txn, &range)? {
                let (key, value) = item?;
                if !key.starts_with(d) || batch.len() == PRUNE_BATCH {
                    break;
                }
                from = key.to_vec();
                if cell(value) < limit {
                    batch.push(key.to_vec());
                }
            }
            if batch.is_empty() {
                break;
            }
            for key in &batch {
                self.db.junk.delete(txn, key)?;
            }
            removed += batch.len() as u32;
        }
        totals.tokens = totals.tokens.saturating_sub(removed);
        self.db.junk.put(txn, d, &totals.encode())?;
        Ok(())
    }

    /// Drops the trained markers of a blob being freed.
    pub(super) fn junk_forget_blob(&self, txn: &mut RwTxn, blob: u64) -> Result<()> {
        let prefix = blob.to_be_bytes();
        let mut keys = Vec::new();
        for item in self.db.junk_trained.prefix_iter(txn, &prefix)? {
            keys.push(item?.0.to_vec());
        }
        for key in keys {
            self.db.junk_trained.delete(txn, &key)?;
        }
        Ok(())
    }

    /// Removes an account's statistics and trained markers (account deletion). The
    /// markers are keyed by blob: one scan of them, which only `user del` pays.
    pub(super) fn junk_forget_account(&self, txn: &mut RwTxn, account: &str) -> Result<()> {
        let d = digest(account);
        loop {
            let mut batch = Vec::new();
            for item in self.db.junk.prefix_iter(txn, &d)? {
                batch.push(item?.0.to_vec());
                if batch.len() == PRUNE_BATCH {
                    break;
                }
            }
            if batch.is_empty() {
                break;
            }
            for key in &batch {
                self.db.junk.delete(txn, key)?;
            }
        }
        let mut markers = Vec::new();
        for item in self.db.junk_trained.iter(txn)? {
            let (key, _) = item?;
            if key.len() == 16 && key[8..] == d {
                markers.push(key.to_vec());
            }
        }
        for key in markers {
            self.db.junk_trained.delete(txn, &key)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::with_users;
    use super::*;

    const A: &str = "alice@example.org";
    const B: &str = "bob@example.org";

    fn toks(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn counts(s: &Store, account: &str, words: &[&str]) -> Vec<(u32, u32)> {
        let (_, c) = s.junk_counts(account, &toks(words)).unwrap();
        c.iter().map(|c| (c.spam, c.ham)).collect()
    }

    #[test]
    fn training_counts_per_account_and_token() {
        let t = with_users();
        let s = &t.store;
        s.junk_train(A, &toks(&["viagra", "hello"]), true).unwrap();
        s.junk_train(A, &toks(&["meeting", "hello"]), false)
            .unwrap();
        s.junk_train("Alice@Example.org", &toks(&["viagra"]), true)
            .unwrap();
        let totals = s.junk_totals(A).unwrap();
        assert_eq!(
            totals,
            JunkTotals {
                spam: 2,
                ham: 1,
                tokens: 3
            }
        );
        assert_eq!(
            counts(s, A, &["viagra", "hello", "meeting", "nothing"]),
            [(2, 0), (1, 1), (0, 1), (0, 0)]
        );
        assert_eq!(s.junk_totals(B).unwrap(), JunkTotals::default());
        assert_eq!(counts(s, B, &["viagra"]), [(0, 0)]);
        assert!(matches!(
            s.junk_train("nobody@example.org", &toks(&["x"]), true),
            Err(StoreError::NotFound(_))
        ));
        // Overlong tokens are never keys.
        let long = "x".repeat(MAX_JUNK_TOKEN_BYTES + 1);
        s.junk_train(A, std::slice::from_ref(&long), true).unwrap();
        assert_eq!(s.junk_totals(A).unwrap().tokens, 3);
        assert_eq!(
            s.junk_counts(A, &[long]).unwrap().1[0],
            TokenCounts::default()
        );
    }

    #[test]
    fn a_blob_counts_once_and_switching_class_untrains() {
        let t = with_users();
        let s = &t.store;
        let placed = super::super::tests::deliver_to(s, b"Subject: x\r\n\r\nhi\r\n", &[A, B]);
        let blob = placed;
        let words = toks(&["cheap", "pills"]);
        assert!(s.junk_train_blob(A, blob, &words, true).unwrap());
        assert!(!s.junk_train_blob(A, blob, &words, true).unwrap());
        assert_eq!(s.junk_trained(A, blob).unwrap(), Some(true));
        assert_eq!(s.junk_trained(B, blob).unwrap(), None);
        assert_eq!(counts(s, A, &["cheap", "pills"]), [(1, 0), (1, 0)]);
        assert!(s.junk_train_blob(A, blob, &words, false).unwrap());
        assert_eq!(
            s.junk_totals(A).unwrap(),
            JunkTotals {
                spam: 0,
                ham: 1,
                tokens: 2
            }
        );
        assert_eq!(counts(s, A, &["cheap", "pills"]), [(0, 1), (0, 1)]);
        assert!(s.junk_train_blob(B, blob, &words, true).unwrap());
        // The last reference goes: the markers go with the blob.
        for account in [A, B] {
            let inbox = s.mailbox(account, "INBOX").unwrap().unwrap();
            s.expunge(account, inbox.id, &[1]).unwrap();
        }
        assert_eq!(s.junk_trained(A, blob).unwrap(), None);
        assert_eq!(s.junk_trained(B, blob).unwrap(), None);
        assert!(!s.junk_train_blob(A, blob, &words, true).unwrap());
        // The statistics stay: they were learnt.
        assert_eq!(
            s.junk_totals(A).unwrap(),
            JunkTotals {
                spam: 0,
                ham: 1,
                tokens: 2
            }
        );
    }

    #[test]
    fn deleting_an_account_removes_its_statistics() {
        let t = with_users();
        let s = &t.store;
        let blob = super::super::tests::deliver_to(s, b"Subject: x\r\n\r\nhi\r\n", &[A, B]);
        s.junk_train_blob(A, blob, &toks(&["one", "two"]), true)
            .unwrap();
        s.junk_train_blob(B, blob, &toks(&["one"]), false).unwrap();
        s.remove_account(A).unwrap();
        s.add_account(A, "h").unwrap();
        assert_eq!(s.junk_totals(A).unwrap(), JunkTotals::default());
        assert_eq!(counts(s, A, &["one", "two"]), [(0, 0), (0, 0)]);
        assert_eq!(s.junk_trained(A, blob).unwrap(), None);
        assert_eq!(s.junk_trained(B, blob).unwrap(), Some(false));
        assert_eq!(
            s.junk_totals(B).unwrap(),
            JunkTotals {
                spam: 0,
                ham: 1,
                tokens: 1
            }
        );
    }

    #[test]
    fn pruning_drops_old_singletons_first() {
        let t = with_users();
        let s = &t.store;
        let d = digest(A);
        // Message 1: 10 tokens seen once, the oldest. Messages 2-11: "common" each time,
        // plus one fresh singleton each.
        let old: Vec<String> = (0..10).map(|i| format!("old{i}")).collect();
        s.junk_train(A, &old, true).unwrap();
        for i in 0..10 {
            s.junk_train(A, &toks(&["common", &format!("new{i}")]), false)
                .unwrap();
        }
        assert_eq!(s.junk_totals(A).unwrap().tokens, 21);
        let mut txn = s.env.write_txn().unwrap();
        s.junk_bound(&mut txn, &d, 20).unwrap(); // down to 18: at least 3 go
        txn.commit().unwrap();
        let totals = s.junk_totals(A).unwrap();
        assert_eq!(totals.tokens, 11);
        let old: Vec<&str> = old.iter().map(String::as_str).collect();
        assert!(counts(s, A, &old).iter().all(|&c| c == (0, 0)));
        assert_eq!(
            counts(s, A, &["common", "new0", "new9"]),
            [(0, 10), (0, 1), (0, 1)]
        );
        // Under the cap nothing happens.
        let mut txn = s.env.write_txn().unwrap();
        s.junk_bound(&mut txn, &d, 20).unwrap();
        txn.commit().unwrap();
        assert_eq!(s.junk_totals(A).unwrap().tokens, 11);
        let mut remaining = 0;
        let txn = s.env.read_txn().unwrap();
        for item in s.db.junk.prefix_iter(&txn, &d).unwrap() {
            if item.unwrap().0.len() > 8 {
                remaining += 1;
            }
        }
        assert_eq!(remaining, 11);
    }
}
