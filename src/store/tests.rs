use super::*;
use std::sync::atomic::{AtomicU32, Ordering};

pub(crate) struct TempStore {
    pub store: Store,
    pub dir: PathBuf,
}

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn temp_store() -> TempStore {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "lb-store-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir, 64 << 20).unwrap();
    TempStore { store, dir }
}

fn incoming(body: &[u8]) -> Incoming {
    Incoming::new(
        b"Return-Path: <a@b.c>\r\n".to_vec(),
        Spooled::Memory(body.to_vec()),
        1,
    )
}

/// Delivers `message` to the INBOX of each account, in one transaction.
fn deliver(s: &Store, message: Incoming, accounts: &[String]) -> Result<Vec<Placed>> {
    let mut delivery = Delivery {
        message,
        targets: accounts.iter().map(|a| Target::inbox(a)).collect(),
        outbound: None,
    };
    Ok(s.accept(&mut delivery)?.placed)
}

/// Delivers `body` to the INBOX of each account; returns the blob id.
pub(crate) fn deliver_to(s: &Store, body: &[u8], accounts: &[&str]) -> u64 {
    let accounts: Vec<String> = accounts.iter().map(|a| a.to_string()).collect();
    let placed = deliver(s, incoming(body), &accounts).unwrap();
    let records = s.messages(placed[0].mailbox).unwrap();
    records
        .iter()
        .find(|(uid, _)| *uid == placed[0].uid)
        .unwrap()
        .1
        .blob
}

pub(crate) fn with_users() -> TempStore {
    let t = temp_store();
    t.store.add_domain("Example.org").unwrap();
    t.store.add_account("alice@example.org", "h1").unwrap();
    t.store.add_account("bob@example.org", "h2").unwrap();
    t
}

#[test]
fn new_account_has_default_mailboxes() {
    let t = with_users();
    let names: Vec<_> = t
        .store
        .mailboxes("alice@example.org")
        .unwrap()
        .into_iter()
        .map(|m| (m.name, m.special_use))
        .collect();
    assert_eq!(names.len(), 6);
    assert!(names.contains(&("INBOX".into(), None)));
    assert!(names.contains(&("Trash".into(), Some(SpecialUse::Trash))));
    let inbox = t
        .store
        .mailbox("alice@example.org", "INBOX")
        .unwrap()
        .unwrap();
    let sent = t
        .store
        .mailbox("alice@example.org", "Sent")
        .unwrap()
        .unwrap();
    assert_ne!(inbox.uid_validity, sent.uid_validity);
    assert_ne!(inbox.id, sent.id);
}

#[test]
fn account_needs_local_domain_and_is_unique() {
    let t = with_users();
    assert!(matches!(
        t.store.add_account("x@other.org", "h"),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        t.store.add_account("ALICE@example.org", "h"),
        Err(StoreError::Exists(_))
    ));
    assert!(matches!(
        t.store.add_account("not-an-address", "h"),
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn resolve_accounts_aliases_subaddress_catchall() {
    let t = with_users();
    let s = &t.store;
    assert_eq!(
        s.resolve_recipient("Alice@Example.org").unwrap(),
        Recipient::Local(vec!["alice@example.org".into()])
    );
    assert_eq!(
        s.resolve_recipient("alice+news@example.org").unwrap(),
        Recipient::Local(vec!["alice@example.org".into()])
    );
    assert_eq!(
        s.resolve_recipient("carol@example.org").unwrap(),
        Recipient::UnknownUser
    );
    assert_eq!(
        s.resolve_recipient("x@elsewhere.net").unwrap(),
        Recipient::NotLocal
    );
    s.add_alias(
        "team@example.org",
        &["alice@example.org".into(), "bob@example.org".into()],
    )
    .unwrap();
    assert_eq!(
        s.resolve_recipient("team@example.org").unwrap(),
        Recipient::Local(vec!["alice@example.org".into(), "bob@example.org".into()])
    );
    s.add_alias("@example.org", &["bob@example.org".into()])
        .unwrap();
    assert_eq!(
        s.resolve_recipient("carol@example.org").unwrap(),
        Recipient::Local(vec!["bob@example.org".into()])
    );
    assert!(s
        .add_alias("x@example.org", &["nobody@example.org".into()])
        .is_err());
    s.remove_alias("@example.org").unwrap();
    assert_eq!(
        s.resolve_recipient("carol@example.org").unwrap(),
        Recipient::UnknownUser
    );
    // Forwarding outside: the remote address, and the local accounts beside it.
    s.add_alias(
        "fwd@example.org",
        &["Friend@Remote.test".into(), "alice@example.org".into()],
    )
    .unwrap();
    assert_eq!(
        s.resolve_recipient("fwd@example.org").unwrap(),
        Recipient::Forward {
            accounts: vec!["alice@example.org".into()],
            remote: vec!["Friend@remote.test".into()],
        }
    );
}

#[test]
fn delivery_shares_one_blob_and_expunge_frees_it() {
    let t = with_users();
    let s = &t.store;
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 97) as u8 + 32).collect();
    let accounts = vec![
        "alice@example.org".to_string(),
        "bob@example.org".to_string(),
    ];
    let placed = deliver(s, incoming(&body), &accounts).unwrap();
    assert_eq!(placed.len(), 2);
    assert_eq!(placed[0].uid, 1);

    let inbox = s.mailbox("alice@example.org", "INBOX").unwrap().unwrap();
    assert_eq!(inbox.uid_next, 2);
    let msgs = s.messages(inbox.id).unwrap();
    assert_eq!(msgs.len(), 1);
    let bob_inbox = s.mailbox("bob@example.org", "INBOX").unwrap().unwrap();
    let bob_msgs = s.messages(bob_inbox.id).unwrap();
    assert_eq!(msgs[0].1.blob, bob_msgs[0].1.blob, "stored once");

    let stored = s.read_message(&msgs[0].1).unwrap();
    assert!(stored.starts_with(b"Return-Path: <a@b.c>\r\n"));
    assert_eq!(&stored[22..], &body[..]);
    assert_eq!(stored.len() as u64, msgs[0].1.size);

    assert_eq!(s.expunge("alice@example.org", inbox.id, &[1]).unwrap(), 1);
    assert!(s.messages(inbox.id).unwrap().is_empty());
    assert_eq!(
        s.read_message(&bob_msgs[0].1).unwrap(),
        stored,
        "bob keeps it"
    );
    s.expunge("bob@example.org", bob_inbox.id, &[1]).unwrap();
    assert!(s.read_chunk(bob_msgs[0].1.blob, 0).is_err(), "blob freed");

    // UIDs are never reused.
    deliver(s, incoming(b"x"), &accounts[..1]).unwrap();
    assert_eq!(s.messages(inbox.id).unwrap()[0].0, 2);
}

#[test]
fn remove_account_removes_its_mail() {
    let t = with_users();
    let s = &t.store;
    deliver(s, incoming(b"hi"), &["alice@example.org".to_string()]).unwrap();
    s.remove_account("alice@example.org").unwrap();
    assert!(s.account("alice@example.org").unwrap().is_none());
    assert!(s.mailboxes("alice@example.org").unwrap().is_empty());
    assert!(s.remove_domain("example.org").is_err(), "bob still there");
}

#[test]
fn group_commit_isolates_failures() {
    let t = with_users();
    let s = &t.store;
    let job = |body: &[u8], account: &str| Delivery {
        message: incoming(body),
        targets: vec![Target::inbox(account)],
        outbound: None,
    };
    let (reply_a, mut a) = tokio::sync::oneshot::channel();
    let (reply_b, mut b) = tokio::sync::oneshot::channel();
    let batch = vec![
        committer::Job::Deliver {
            delivery: Box::new(job(b"one", "alice@example.org")),
            reply: reply_a,
        },
        committer::Job::Deliver {
            delivery: Box::new(job(b"two", "ghost@example.org")),
            reply: reply_b,
        },
    ];
    let (done, outcome) = committer::commit_batch(s, batch);
    assert!(outcome.is_ok());
    for job in done {
        job.answer(None);
    }
    assert!(a.try_recv().unwrap().is_ok());
    assert!(b.try_recv().unwrap().is_err());
    let inbox = s.mailbox("alice@example.org", "INBOX").unwrap().unwrap();
    assert_eq!(s.messages(inbox.id).unwrap().len(), 1);
}

#[test]
fn newer_schema_is_refused() {
    let dir = std::env::temp_dir().join(format!("lb-schema-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let store = Store::open(&dir, 64 << 20).unwrap();
        let mut txn = store.write_txn().unwrap();
        write_u64(&store.db, &mut txn, META_SCHEMA_VERSION, 99).unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(&dir, 64 << 20).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn schema_1_is_upgraded_and_given_meta_is_kept_per_blob() {
    let dir = std::env::temp_dir().join(format!("lb-schema-up-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let store = Store::open(&dir, 64 << 20).unwrap();
        let mut txn = store.write_txn().unwrap();
        write_u64(&store.db, &mut txn, META_SCHEMA_VERSION, 1).unwrap();
        txn.commit().unwrap();
    }
    let store = Store::open(&dir, 64 << 20).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    store.add_domain("example.org").unwrap();
    store.add_account("alice@example.org", "h").unwrap();
    let mut message = incoming(b"Subject: meta\r\n\r\nhi\r\n");
    let given = MessageMeta {
        envelope: "(envelope)".into(),
        body: "(body)".into(),
        bodystructure: "(bodystructure)".into(),
    };
    message.meta = Some(given.clone());
    let placed = deliver(&store, message, &["alice@example.org".to_string()]).unwrap();
    let record = store.messages(placed[0].mailbox).unwrap()[0].1.clone();
    assert_eq!(store.message_meta(record.blob).unwrap(), Some(given));
    // Without a description, the store computes none: that is the first FETCH's job.
    let plain = deliver(&store, incoming(b"x"), &["alice@example.org".to_string()]).unwrap();
    let other = store.messages(plain[0].mailbox).unwrap()[1].1.clone();
    assert_eq!(store.message_meta(other.blob).unwrap(), None);
    store
        .expunge("alice@example.org", placed[0].mailbox, &[placed[0].uid])
        .unwrap();
    assert!(store.message_meta(record.blob).unwrap().is_none());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_counter_follows_every_change() {
    let t = with_users();
    let s = &t.store;
    let alice = "alice@example.org";
    let both = [
        "alice@example.org".to_string(),
        "bob@example.org".to_string(),
    ];
    let placed = deliver(s, incoming(b"0123456789"), &both).unwrap();
    let size = 22 + 10;
    assert_eq!(s.usage(alice).unwrap(), (size, 0));
    assert_eq!(s.usage("bob@example.org").unwrap(), (size, 0));
    // A copy counts again; a move does not.
    s.copy_messages(alice, "INBOX", &[1], "Archive", false)
        .unwrap();
    assert_eq!(s.usage(alice).unwrap().0, 2 * size);
    s.copy_messages(alice, "Archive", &[1], "Trash", true)
        .unwrap();
    assert_eq!(s.usage(alice).unwrap().0, 2 * size);
    s.expunge(alice, placed[0].mailbox, &[placed[0].uid])
        .unwrap();
    assert_eq!(s.usage(alice).unwrap().0, size);
    s.set_quota(alice, size).unwrap();
    assert!(!s.over_quota(alice, 0).unwrap());
    assert!(s.over_quota(alice, 1).unwrap());
    s.delete_mailbox(alice, "Trash").unwrap();
    assert_eq!(s.usage(alice).unwrap(), (0, size));
    deliver(s, incoming(b"again"), &both[..1]).unwrap();
    s.remove_account(alice).unwrap();
    assert_eq!(s.usage(alice).unwrap(), (0, 0));
    assert_eq!(s.usage("bob@example.org").unwrap(), (size, 0));
}

#[test]
fn schema_3_upgrade_computes_usage() {
    let dir = std::env::temp_dir().join(format!("lb-schema-usage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let store = Store::open(&dir, 64 << 20).unwrap();
        store.add_domain("example.org").unwrap();
        store.add_account("alice@example.org", "h").unwrap();
        deliver(
            &store,
            incoming(b"hello"),
            &["alice@example.org".to_string()],
        )
        .unwrap();
        // Back to schema 3: no counters.
        let mut txn = store.write_txn().unwrap();
        store.db.usage.clear(&mut txn).unwrap();
        write_u64(&store.db, &mut txn, META_SCHEMA_VERSION, 3).unwrap();
        txn.commit().unwrap();
        assert_eq!(store.usage("alice@example.org").unwrap().0, 0);
    }
    let store = Store::open(&dir, 64 << 20).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.usage("alice@example.org").unwrap().0, 22 + 5);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_store_can_always_delete() {
    // Issue 10: with the map full, one EXPUNGE of 100+ messages failed, and kept failing.
    let dir = std::env::temp_dir().join(format!("lb-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir, 16 << 20).unwrap();
    store.add_domain("example.org").unwrap();
    store.add_account("alice@example.org", "h").unwrap();
    let alice = ["alice@example.org".to_string()];
    let body = vec![b'x'; 60_000];
    let mut stored = 0;
    let refused = loop {
        match deliver(&store, incoming(&body), &alice) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(refused, StoreError::Full), "{refused}");
    assert!(stored > 200, "{stored} messages fit in 16 MiB");
    let inbox = store
        .mailbox("alice@example.org", "INBOX")
        .unwrap()
        .unwrap();
    let uids: Vec<u32> = store
        .messages(inbox.id)
        .unwrap()
        .iter()
        .map(|m| m.0)
        .collect();
    // A move into Trash (what clients do to delete) works while new mail is refused.
    store
        .copy_messages("alice@example.org", "INBOX", &uids[..10], "Trash", true)
        .unwrap();
    assert_eq!(
        store
            .expunge("alice@example.org", inbox.id, &uids[10..])
            .unwrap(),
        uids.len() - 10
    );
    assert_eq!(
        store.usage("alice@example.org").unwrap().0,
        10 * (22 + 60_000)
    );
    deliver(&store, incoming(b"room again"), &alice).unwrap();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_map_grows_while_readers_keep_reading() {
    let dir = std::env::temp_dir().join(format!("lb-grow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(Store::open(&dir, 4 << 20).unwrap());
    store.grow_when_full(true);
    store.add_domain("example.org").unwrap();
    store.add_account("alice@example.org", "h").unwrap();
    let alice = ["alice@example.org".to_string()];
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Readers on other threads all along: the resize must wait for them, and they for it.
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let inbox = store.mailbox("alice@example.org", "INBOX").unwrap();
                    assert!(inbox.is_some());
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let body = vec![b'x'; 60_000];
    // 16 MiB of mail through a 4 MiB map.
    for _ in 0..280 {
        deliver(&store, incoming(&body), &alice).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().unwrap() > 0);
    }
    let map = store.env.info().map_size;
    assert!(map >= 16 << 20, "the map grew to {map} bytes");
    let inbox = store
        .mailbox("alice@example.org", "INBOX")
        .unwrap()
        .unwrap();
    assert_eq!(store.messages(inbox.id).unwrap().len(), 280);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sort_keys_are_computed_once_and_go_with_the_blob() {
    let t = with_users();
    let s = &t.store;
    let body = b"Subject: Re: [x] Hello\r\nFrom: A <a@example.org>\r\n\r\nbody\r\n";
    // Not described beforehand (as a spooled message): computed at the first ask.
    let blob = deliver_to(s, body, &["alice@example.org"]);
    let size = (b"Return-Path: <a@b.c>\r\n".len() + body.len()) as u64;
    let txn = s.read_txn().unwrap();
    assert!(s.db.sort_keys.get(&txn, &blob).unwrap().is_none());
    drop(txn);
    let keys = s.sort_keys(&[(blob, size)]).unwrap();
    assert_eq!(keys[0].subject, "Hello");
    assert_eq!(keys[0].from.display, "A");
    let txn = s.read_txn().unwrap();
    assert_eq!(
        s.db.sort_keys.get(&txn, &blob).unwrap().as_ref(),
        Some(&keys[0])
    );
    drop(txn);
    // A blob that is gone gets empty fields, and nothing is stored for it.
    assert_eq!(
        s.sort_keys(&[(blob + 100, 10)]).unwrap()[0],
        SortKeys::default()
    );
    let txn = s.read_txn().unwrap();
    assert!(s.db.sort_keys.get(&txn, &(blob + 100)).unwrap().is_none());
    drop(txn);
    // Described at delivery: stored with the message, and removed with its last copy.
    let mut message = incoming(b"Subject: Fwd: Later\r\n\r\nx\r\n");
    message.describe();
    let placed = deliver(s, message, &["alice@example.org".into()]).unwrap();
    let records = s.messages(placed[0].mailbox).unwrap();
    let record = &records.iter().find(|(u, _)| *u == placed[0].uid).unwrap().1;
    let txn = s.read_txn().unwrap();
    let stored = s.db.sort_keys.get(&txn, &record.blob).unwrap().unwrap();
    drop(txn);
    assert_eq!((stored.subject.as_str(), stored.reply), ("Later", true));
    s.expunge("alice@example.org", placed[0].mailbox, &[placed[0].uid])
        .unwrap();
    let txn = s.read_txn().unwrap();
    assert!(s.db.sort_keys.get(&txn, &record.blob).unwrap().is_none());
}

#[test]
fn a_panicking_write_fails_alone() {
    let t = with_users();
    let s = &t.store;
    let (reply, mut answer) = tokio::sync::oneshot::channel();
    let batch = vec![
        committer::Job::Write(Box::new(|_| panic!("a bug in one write")), 0),
        committer::Job::Deliver {
            delivery: Box::new(Delivery {
                message: incoming(b"kept"),
                targets: vec![Target::inbox("alice@example.org")],
                outbound: None,
            }),
            reply,
        },
    ];
    let (done, outcome) = committer::commit_batch(s, batch);
    assert!(outcome.is_ok());
    for job in done {
        job.answer(None);
    }
    assert!(answer.try_recv().unwrap().is_ok());
    let inbox = s.mailbox("alice@example.org", "INBOX").unwrap().unwrap();
    assert_eq!(s.messages(inbox.id).unwrap().len(), 1);
}

#[test]
fn deleting_a_parent_leaves_a_noselect_name_and_schema_9_clears_the_old_flag() {
    let t = with_users();
    let s = &t.store;
    let alice = "alice@example.org";
    s.create_mailbox(alice, "Work").unwrap();
    s.create_mailbox(alice, "Work/2026").unwrap();
    deliver_to(s, b"x", &[alice]);
    s.delete_mailbox(alice, "Work").unwrap();
    assert!(
        s.mailbox(alice, "Work").unwrap().is_none(),
        "not selectable"
    );
    let all = s.mailboxes(alice).unwrap();
    assert!(all.iter().any(|m| m.name == "Work" && m.noselect));
    assert!(
        s.delete_mailbox(alice, "Work").is_err(),
        "still has a child"
    );
    s.delete_mailbox(alice, "Work/2026").unwrap();
    s.delete_mailbox(alice, "Work").unwrap();
    assert!(!s.mailboxes(alice).unwrap().iter().any(|m| m.name == "Work"));
}

#[test]
fn schema_9_upgrade_clears_the_old_subscribed_flag() {
    let dir = std::env::temp_dir().join(format!("lb-schema9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let alice = "alice@example.org";
    let inbox_key = mailbox_key(alice, "INBOX");
    {
        let store = Store::open(&dir, 64 << 20).unwrap();
        store.add_domain("example.org").unwrap();
        store.add_account(alice, "h").unwrap();
        // Schema 9 kept the subscribed flag (true for most mailboxes) in this slot.
        let mut txn = store.write_txn().unwrap();
        let mut inbox = store.db.mailboxes.get(&txn, &inbox_key).unwrap().unwrap();
        inbox.noselect = true;
        store
            .db
            .mailboxes
            .put(&mut txn, &inbox_key, &inbox)
            .unwrap();
        write_u64(&store.db, &mut txn, META_SCHEMA_VERSION, 9).unwrap();
        txn.commit().unwrap();
    }
    let store = Store::open(&dir, 64 << 20).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(store.mailbox(alice, "INBOX").unwrap().is_some());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mailbox_counters_follow_every_change() {
    let t = with_users();
    let s = &t.store;
    let alice = "alice@example.org";
    let check = |s: &Store| {
        // One read transaction per thread at a time (LMDB): look up, then scan.
        for mailbox in s.mailboxes(alice).unwrap() {
            let kept = s.mailbox_counts(mailbox.id).unwrap();
            let txn = s.read_txn().unwrap();
            let scanned = counts::count_mailbox(&s.db, &txn, mailbox.id).unwrap();
            assert_eq!(kept, scanned, "{}", mailbox.name);
        }
    };
    for body in [&b"one"[..], b"two two", b"three 333"] {
        deliver_to(s, body, &[alice]);
    }
    check(s);
    let inbox = s.mailbox(alice, "INBOX").unwrap().unwrap();
    let c = s.mailbox_counts(inbox.id).unwrap();
    assert_eq!((c.messages, c.unseen, c.deleted), (3, 3, 0));
    s.store_flags(
        alice,
        "INBOX",
        &[1, 2],
        FlagOp::Add,
        flags::SEEN | flags::DELETED,
        &[],
    )
    .unwrap();
    check(s);
    s.store_flags(alice, "INBOX", &[2], FlagOp::Replace, flags::FLAGGED, &[])
        .unwrap();
    check(s);
    s.copy_messages(alice, "INBOX", &[1, 3], "Archive", false)
        .unwrap();
    assert!(s.save_date(inbox.id, 2).unwrap().is_some());
    let moved = s
        .copy_messages(alice, "INBOX", &[2], "Trash", true)
        .unwrap();
    check(s);
    // Save dates follow the records: gone with the moved one, new for its copy.
    let trash = s.mailbox(alice, "Trash").unwrap().unwrap();
    assert_eq!(s.save_date(inbox.id, 2).unwrap(), None);
    assert!(s.save_date(trash.id, moved.uids[0].1).unwrap().is_some());
    s.expunge(alice, inbox.id, &[1]).unwrap();
    check(s);
    let c = s.mailbox_counts(inbox.id).unwrap();
    assert_eq!((c.messages, c.unseen, c.deleted), (1, 1, 0));
    s.rename_mailbox(alice, "INBOX", "Old").unwrap();
    check(s);
    s.delete_mailbox(alice, "Archive").unwrap();
    check(s);
    assert_eq!(
        s.count_above(inbox.id, 0).unwrap(),
        0,
        "INBOX emptied by RENAME"
    );
    let old = s.mailbox(alice, "Old").unwrap().unwrap();
    assert_eq!(s.count_above(old.id, 0).unwrap(), 1);
    assert_eq!(s.count_above(old.id, 1).unwrap(), 0);
    // The upgrade computes what the changes kept.
    let mut txn = s.write_txn().unwrap();
    s.db.counts.clear(&mut txn).unwrap();
    counts::compute_counts(&s.db, &mut txn).unwrap();
    txn.commit().unwrap();
    check(s);
}

#[test]
fn the_map_is_never_smaller_than_the_data_file() {
    // A data file larger than the default map (grown earlier with the disk) must still open.
    let dir = std::env::temp_dir().join(format!("lb-map-fit-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("mail")).unwrap();
    let config = crate::config::Config::embedded_default();
    let large = config.map_size_bytes() as u64 + (3 << 20) + 123;
    std::fs::File::create(dir.join("mail").join("data.mdb"))
        .unwrap()
        .set_len(large)
        .unwrap();
    let map = crate::store::map_size(&config, &dir) as u64;
    assert!(map >= large, "map {map} for a data file of {large} bytes");
    assert_eq!(map % (64 << 10), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
