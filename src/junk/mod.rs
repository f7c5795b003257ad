//! A learning junk filter per account: a Bayesian classifier after Paul Graham, with its
//! statistics in LMDB (`store::junk`), in the manner of mox's junk filter.
//!
//! [`tokens`] turns a message into a bounded set of tokens, [`classify`] turns their
//! counts into a probability. This file is the API: delivery asks [`probability`], the
//! user teaches through [`train`] (the CLI) and [`learn`] (IMAP moves and `$Junk` /
//! `$NotJunk`, once per stored message). All of it is blocking: async code calls it
//! through `Store::call`.

pub mod classify;
pub mod tokens;

use crate::limits::{BLOB_CHUNK, JUNK_SCAN_BYTES};
use crate::store::{self, chunk_count, Mailbox, MessageRecord, SpecialUse, Store, StoreError};

/// Spam probability of `message` for `account`, or None if the filter is untrained.
pub fn probability(store: &Store, account: &str, message: &[u8]) -> store::Result<Option<f64>> {
    let tokens = tokens::tokens(message);
    let (totals, counts) = store.junk_counts(account, &tokens)?;
    Ok(classify::probability(totals, &counts))
}

/// Learns `message` for `account` as spam (true) or ham (false).
pub fn train(store: &Store, account: &str, message: &[u8], spam: bool) -> store::Result<()> {
    store.junk_train(account, &tokens::tokens(message), spam)
}

/// Learns a stored message as spam or ham, unless it was already learnt as that class
/// for this account; learnt as the other class, it is un-learnt from it first. Returns
/// whether the statistics changed. A message expunged meanwhile is skipped.
pub fn learn(
    store: &Store,
    account: &str,
    record: &MessageRecord,
    spam: bool,
) -> store::Result<bool> {
    if store.junk_trained(account, record.blob)? == Some(spam) {
        return Ok(false);
    }
    // Read and tokenize outside the write transaction: the writer only counts.
    let chunks = chunk_count(record.size).min(JUNK_SCAN_BYTES.div_ceil(BLOB_CHUNK) as u32);
    let mut bytes = Vec::new();
    for index in 0..chunks {
        match store.read_chunk(record.blob, index) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StoreError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    store.junk_train_blob(account, record.blob, &tokens::tokens(&bytes), spam)
}

/// Whether a mailbox is where the user puts junk: the `\Junk` special use, or the name.
pub fn is_junk_mailbox(mailbox: &Mailbox) -> bool {
    mailbox.special_use == Some(SpecialUse::Junk) || mailbox.name.eq_ignore_ascii_case("Junk")
}

/// Whether a mailbox is the trash (moving junk there says nothing about it).
pub fn is_trash_mailbox(mailbox: &Mailbox) -> bool {
    mailbox.special_use == Some(SpecialUse::Trash) || mailbox.name.eq_ignore_ascii_case("Trash")
}

/// What a COPY or MOVE from `source` to `target` teaches: Some(true) for spam (into Junk),
/// Some(false) for ham (moved out of Junk, except to the trash), None otherwise.
pub fn lesson_of_copy(source: &Mailbox, target: &Mailbox, moved: bool) -> Option<bool> {
    match (is_junk_mailbox(source), is_junk_mailbox(target)) {
        (false, true) => Some(true),
        (true, false) if moved && !is_trash_mailbox(target) => Some(false),
        _ => None,
    }
}

/// What setting keywords teaches (RFC 5788): `$Junk` spam, `$NotJunk` ham; both or
/// neither, nothing.
pub fn lesson_of_keywords(keywords: &[String]) -> Option<bool> {
    let has = |k: &str| keywords.iter().any(|x| x.eq_ignore_ascii_case(k));
    match (has("$Junk"), has("$NotJunk")) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Delivery, Incoming, Spooled, Target};

    const A: &str = "alice@example.org";

    fn store() -> (Store, std::path::PathBuf) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("lb-junk-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = Store::open(&dir, 64 << 20).unwrap();
        s.add_domain("example.org").unwrap();
        s.add_account(A, "h").unwrap();
        (s, dir)
    }

    fn spam(i: usize) -> Vec<u8> {
        format!(
            "From: Winner <prize{i}@lottery.example>\r\nSubject: You won a FREE prize\r\n\r\n\
             Claim your cash prize now, click the link, limited offer {i}.\r\n"
        )
        .into_bytes()
    }

    fn ham(i: usize) -> Vec<u8> {
        format!(
            "From: Bob <bob@example.org>\r\nSubject: Meeting notes {i}\r\n\r\n\
             Here are the notes from the project meeting; the review is on Tuesday.\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn trained_filter_separates_spam_from_ham() {
        let (s, dir) = store();
        assert_eq!(probability(&s, A, &spam(0)).unwrap(), None);
        for i in 0..5 {
            train(&s, A, &spam(i), true).unwrap();
            assert_eq!(probability(&s, A, &spam(0)).unwrap(), None);
            train(&s, A, &ham(i), false).unwrap();
        }
        let p_spam = probability(&s, A, &spam(99)).unwrap().unwrap();
        let p_ham = probability(&s, A, &ham(99)).unwrap().unwrap();
        assert!(p_spam > 0.99, "{p_spam}");
        assert!(p_ham < 0.01, "{p_ham}");
        assert_eq!(
            probability(&s, "nobody@example.org", &spam(0)).unwrap(),
            None
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn learning_a_stored_message_counts_it_once() {
        let (s, dir) = store();
        let mut delivery = Delivery {
            message: Incoming::new(Vec::new(), Spooled::Memory(spam(1)), 1),
            targets: vec![Target::inbox(A)],
            outbound: None,
        };
        let placed = s.accept(&mut delivery).unwrap().placed[0];
        let record = s.messages(placed.mailbox).unwrap()[0].1.clone();
        assert!(learn(&s, A, &record, true).unwrap());
        assert!(!learn(&s, A, &record, true).unwrap());
        assert_eq!(
            (
                s.junk_totals(A).unwrap().spam,
                s.junk_totals(A).unwrap().ham
            ),
            (1, 0)
        );
        assert!(learn(&s, A, &record, false).unwrap());
        let totals = s.junk_totals(A).unwrap();
        assert_eq!((totals.spam, totals.ham), (0, 1));
        s.expunge(A, placed.mailbox, &[placed.uid]).unwrap();
        assert!(!learn(&s, A, &record, true).unwrap());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn lessons_of_user_actions() {
        let mb = |name: &str, special_use| Mailbox {
            id: 1,
            name: name.into(),
            uid_validity: 1,
            uid_next: 1,
            highest_modseq: 0,
            noselect: false,
            special_use,
        };
        let inbox = mb("INBOX", None);
        let junk = mb("Spam", Some(SpecialUse::Junk));
        let named = mb("junk", None);
        let trash = mb("Trash", Some(SpecialUse::Trash));
        assert_eq!(lesson_of_copy(&inbox, &junk, true), Some(true));
        assert_eq!(lesson_of_copy(&inbox, &named, false), Some(true));
        assert_eq!(lesson_of_copy(&junk, &inbox, true), Some(false));
        assert_eq!(lesson_of_copy(&junk, &inbox, false), None);
        assert_eq!(lesson_of_copy(&junk, &trash, true), None);
        assert_eq!(lesson_of_copy(&junk, &named, true), None);
        assert_eq!(lesson_of_copy(&inbox, &trash, true), None);
        let k = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert_eq!(lesson_of_keywords(&k(&["$junk", "\\Seen"])), Some(true));
        assert_eq!(lesson_of_keywords(&k(&["$NotJunk"])), Some(false));
        assert_eq!(lesson_of_keywords(&k(&["$Junk", "$NotJunk"])), None);
        assert_eq!(lesson_of_keywords(&k(&["$Work"])), None);
    }
}
