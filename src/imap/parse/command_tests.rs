//! Tables of command text → expected [`Command`] or BAD text.

use super::*;
use crate::imap::parse::{Section, SequenceSet::Ranges};
use crate::store::flags;

fn parse(input: &str) -> Result<Command, String> {
    parse_utf8(input, false)
}

fn parse_utf8(input: &str, utf8: bool) -> Result<Command, String> {
    parse_request(input.as_bytes(), utf8)
        .map_err(|(_, e)| format!("tokens: {e}"))?
        .command
}

#[test]
fn commands_without_arguments_ignore_extra_ones() {
    for (input, expected) in [
        ("a CAPABILITY", Command::Capability),
        ("a noop", Command::Noop),
        ("a NOOP extra (stuff)", Command::Noop),
        ("a CHECK", Command::Check),
        ("a LOGOUT now", Command::Logout),
        ("a ID (\"name\" \"x\")", Command::Id),
        ("a STARTTLS", Command::StartTls),
        ("a NAMESPACE", Command::Namespace),
        ("a IDLE", Command::Idle),
        ("a CLOSE", Command::Close),
        ("a UNSELECT", Command::Unselect),
        ("a SETQUOTA \"\" (STORAGE 10)", Command::SetQuota),
    ] {
        assert_eq!(parse(input), Ok(expected), "{input}");
    }
}

#[test]
fn requests_carry_tag_name_and_state() {
    let r = parse_request(b"t1 uid fetch 1 FLAGS", false).unwrap();
    assert_eq!((r.tag.as_str(), r.name.as_str()), ("t1", "FETCH"));
    assert_eq!(r.needs, Needs::Selected);
    let r = parse_request(b"t2 BOGUS x", false).unwrap();
    assert_eq!(r.command, Err("Unknown command BOGUS".into()));
    assert_eq!(r.needs, Needs::Selected);
    for (name, state) in [
        ("CAPABILITY", Needs::Any),
        ("ID", Needs::Any),
        ("LOGIN", Needs::NotAuthenticated),
        ("AUTHENTICATE", Needs::NotAuthenticated),
        ("ENABLE", Needs::Authenticated),
        ("APPEND", Needs::Authenticated),
        ("IDLE", Needs::Authenticated),
        ("COPY", Needs::Selected),
        ("MOVE", Needs::Writable),
        ("EXPUNGE", Needs::Writable),
    ] {
        assert_eq!(needs(name), state, "{name}");
    }
    for (input, error) in [
        ("t UID", "UID needs a command"),
        ("t UID \"FETCH\" 1 FLAGS", "UID needs a command"),
        ("t UID NOOP", "UID NOOP is not a command"),
        ("t UID select INBOX", "UID SELECT is not a command"),
        ("t LOGIN \"x", "Unterminated quoted string"),
    ] {
        let (tag, text) = parse_request(input.as_bytes(), false).unwrap_err();
        assert_eq!(
            (tag.as_deref(), text.as_str()),
            (Some("t"), error),
            "{input}"
        );
    }
    assert_eq!(parse_request(b"", false).unwrap_err().0, None);
}

#[test]
fn authentication() {
    let login = |user: &str, password: &str| Command::Login {
        user: user.into(),
        password: Secret(password.into()),
    };
    for (input, expected) in [
        (
            "a LOGIN alice \"pass word\"",
            Ok(login("alice", "pass word")),
        ),
        ("a LOGIN {5}\r\nalice {2}\r\npw", Ok(login("alice", "pw"))),
        ("a LOGIN", Err("LOGIN needs a user name and a password")),
        (
            "a LOGIN alice",
            Err("LOGIN needs a user name and a password"),
        ),
        (
            "a LOGIN a b c",
            Err("LOGIN needs a user name and a password"),
        ),
        ("a LOGIN (x) b", Err("Invalid UTF-8 in credentials")),
        (
            "a AUTHENTICATE plain",
            Ok(Command::Authenticate(Mechanism::Plain(None))),
        ),
        (
            "a AUTHENTICATE PLAIN AGFsaWNl extra",
            Ok(Command::Authenticate(Mechanism::Plain(Some(
                "AGFsaWNl".into(),
            )))),
        ),
        (
            "a AUTHENTICATE CRAM-MD5 (x)",
            Ok(Command::Authenticate(Mechanism::Other)),
        ),
        ("a AUTHENTICATE", Err("AUTHENTICATE needs a mechanism")),
        (
            "a AUTHENTICATE \"PLAIN\"",
            Err("AUTHENTICATE needs a mechanism"),
        ),
        (
            "a AUTHENTICATE PLAIN (x)",
            Err("Expected a string, got a list"),
        ),
        (
            "a ENABLE condstore Foo utf8=accept imap4REV2 QRESYNC",
            Ok(Command::Enable(vec![
                Capability::CondStore,
                Capability::Utf8Accept,
                Capability::Imap4rev2,
                Capability::QResync,
            ])),
        ),
        ("a ENABLE", Ok(Command::Enable(vec![]))),
        (
            "a ENABLE CONDSTORE \"x\"",
            Err("ENABLE takes capability names"),
        ),
    ] {
        assert_eq!(parse(input), expected.map_err(String::from), "{input}");
    }
    let r = parse_request(b"a LOGIN \xff x", false).unwrap_err();
    assert_eq!(r, (Some("a".into()), "Invalid UTF-8 in command".into()));
}

#[test]
fn select_commands() {
    let select = |mailbox: &str, read_only, condstore, qresync| {
        Command::Select(Select {
            mailbox: mailbox.into(),
            read_only,
            condstore,
            qresync,
        })
    };
    let resync = Qresync {
        uid_validity: 7,
        modseq: 9,
        known_uids: Some(vec![(1, 5)]),
    };
    for (input, expected) in [
        ("a SELECT inbox", Ok(select("INBOX", false, false, None))),
        ("a EXAMINE Work", Ok(select("Work", true, false, None))),
        (
            "a SELECT &AOk- (CONDSTORE QRESYNC (7 9 1:5))",
            Ok(select("é", false, true, Some(resync))),
        ),
        ("a SELECT", Err("SELECT needs a mailbox name")),
        ("a EXAMINE", Err("SELECT needs a mailbox name")),
        ("a SELECT INBOX x", Err("SELECT needs a mailbox name")),
        (
            "a SELECT INBOX (CONDSTORE) x",
            Err("SELECT needs a mailbox name"),
        ),
        ("a SELECT INBOX (BOGUS)", Err("Unknown SELECT parameter")),
        (
            "a SELECT INBOX (QRESYNC)",
            Err("QRESYNC needs its parameters"),
        ),
        (
            "a SELECT INBOX (QRESYNC x)",
            Err("Invalid QRESYNC parameters"),
        ),
        // The parameters are checked before the name, as they always were.
        ("a SELECT \"&bad\" (BOGUS)", Err("Unknown SELECT parameter")),
        ("a SELECT \"\"", Err("Empty mailbox name")),
    ] {
        assert_eq!(parse(input), expected.map_err(String::from), "{input}");
    }
}

#[test]
fn mailbox_management() {
    for (input, expected) in [
        (
            "a CREATE Work/2026/",
            Ok(Command::Create("Work/2026".into(), vec![])),
        ),
        ("a DELETE inbox", Ok(Command::Delete("INBOX".into()))),
        ("a SUBSCRIBE Work", Ok(Command::Subscribe("Work".into()))),
        (
            "a UNSUBSCRIBE Work",
            Ok(Command::Unsubscribe("Work".into())),
        ),
        ("a CREATE", Err("CREATE needs a mailbox name")),
        ("a UNSUBSCRIBE a b", Err("UNSUBSCRIBE needs a mailbox name")),
        ("a CREATE (x)", Err("Expected a string, got a list")),
        (
            "a RENAME Work \"Job\"",
            Ok(Command::Rename {
                from: "Work".into(),
                to: "Job".into(),
            }),
        ),
        ("a RENAME Work", Err("RENAME needs two mailbox names")),
        ("a RENAME Work \"&bad\"", Err("Invalid mailbox name")),
    ] {
        assert_eq!(parse(input), expected.map_err(String::from), "{input}");
    }
}

#[test]
fn status_and_quota() {
    for (input, expected) in [
        (
            "a STATUS INBOX (messages UIDNEXT) ignored",
            Ok(Command::Status {
                mailbox: "INBOX".into(),
                items: vec![StatusItem::Messages, StatusItem::UidNext],
            }),
        ),
        (
            "a STATUS INBOX",
            Err("STATUS needs a mailbox and a list of items"),
        ),
        (
            "a STATUS INBOX MESSAGES",
            Err("STATUS needs a mailbox and a list of items"),
        ),
        ("a STATUS INBOX (BOGUS)", Err("Unknown STATUS item BOGUS")),
        (
            "a STATUS \"&bad\" (BOGUS)",
            Err("Invalid modified UTF-7 in mailbox name \"&bad\""),
        ),
        (
            "a GETQUOTAROOT inbox",
            Ok(Command::GetQuotaRoot("INBOX".into())),
        ),
        ("a GETQUOTAROOT", Err("GETQUOTAROOT needs one argument")),
        (
            "a GETQUOTA \"\"",
            Ok(Command::GetQuota(Some(String::new()))),
        ),
        ("a GETQUOTA ()", Ok(Command::GetQuota(None))),
        ("a GETQUOTA a b", Err("GETQUOTA needs one argument")),
        ("a APPEND INBOX", Err("APPEND needs a message literal")),
    ] {
        assert_eq!(parse(input), expected.map_err(String::from), "{input}");
    }
    // UTF-8 names once enabled.
    assert_eq!(
        parse_utf8("a CREATE Ünï", true),
        Ok(Command::Create("Ünï".into(), vec![]))
    );
    assert_eq!(
        parse_utf8("a CREATE &AOk-", true),
        Ok(Command::Create("&AOk-".into(), vec![]))
    );
    let Ok(Command::List(list)) = parse("a LSUB \"\" *") else {
        panic!()
    };
    assert!(list.lsub && list.subscribed_only && list.patterns == ["*"]);
}

#[test]
fn fetch_commands() {
    let fetch = |set, items, changed_since, vanished, uid| {
        Command::Fetch(Fetch {
            set,
            items,
            modifiers: FetchModifiers {
                changed_since,
                vanished,
            },
            uid,
        })
    };
    let body = FetchItem::Body {
        peek: true,
        section: Section::Header,
        partial: None,
    };
    for (input, expected) in [
        (
            "a FETCH 1:* FAST",
            Ok(fetch(
                Ranges(vec![(1, u32::MAX)]),
                vec![FetchItem::Flags, FetchItem::InternalDate, FetchItem::Size],
                None,
                false,
                false,
            )),
        ),
        (
            "a UID FETCH $ (UID BODY.PEEK[HEADER]) (CHANGEDSINCE 4 VANISHED)",
            Ok(fetch(
                SequenceSet::Saved,
                vec![FetchItem::Uid, body],
                Some(4),
                true,
                true,
            )),
        ),
        ("a FETCH", Err("FETCH needs a sequence set and items")),
        (
            "a FETCH 1 FLAGS x",
            Err("FETCH needs a sequence set and items"),
        ),
        (
            "a FETCH 1 BOGUS x y",
            Err("FETCH needs a sequence set and items"),
        ),
        ("a FETCH 1 BOGUS", Err("Unknown FETCH item BOGUS")),
        ("a FETCH 0 BOGUS", Err("Unknown FETCH item BOGUS")),
        ("a FETCH 0 FLAGS", Err("Invalid sequence set \"0\"")),
        ("a FETCH 1 () ", Err("Invalid FETCH items")),
        (
            "a FETCH 1 FLAGS (FOO 1)",
            Err("Unknown modifier (only CHANGEDSINCE is supported)"),
        ),
    ] {
        assert_eq!(parse(input), expected.map_err(String::from), "{input}");
    }
}

#[test]
fn expunge_copy_move() {
    for (input, expected) in [
        ("a EXPUNGE", Ok(Command::Expunge(None))),
        (
            "a UID EXPUNGE 3:4",
            Ok(Command::Expunge(Some(Ranges(vec![(3, 4)])))),
        ),
        (
            "a UID EXPUNGE $",
            Ok(Command::Expunge(Some(SequenceSet::Saved))),
        ),
        ("a EXPUNGE 1", Err("Invalid EXPUNGE arguments")),
        ("a UID EXPUNGE", Err("Invalid EXPUNGE arguments")),
        ("a UID EXPUNGE x", Err("Invalid sequence set \"x\"")),
        (
            "a MOVE 2 Trash",
            Ok(Command::Copy(CopyMove {
                set: Ranges(vec![(2, 2)]),
                mailbox: "Trash".into(),
                uid: false,
                remove: true,
            })),
        ),
        ("a COPY 1", Err("COPY needs a sequence set and a mailbox")),
        (
            "a MOVE 1 a b",
            Err("COPY needs a sequence set and a mailbox"),
        ),
        // The mailbox is checked before the set, as it always was.
        (
            "a COPY 0 \"&bad\"",
            Err("Invalid modified UTF-7 in mailbox name \"&bad\""),
        ),
        ("a COPY 0 Work", Err("Invalid sequence set \"0\"")),
    ] {
        assert_eq!(parse(input), expected.map_err(String::from), "{input}");
    }
}

#[test]
fn store_commands() {
    let store = |unchanged_since, op, silent, system, keywords: &[&str], uid| {
        Command::Store(StoreFlags {
            set: Ranges(vec![(1, 2)]),
            unchanged_since,
            op,
            silent,
            flags: Flags {
                system,
                keywords: keywords.iter().map(|k| k.to_string()).collect(),
            },
            uid,
        })
    };
    for (input, expected) in [
        (
            "a STORE 1:2 +FLAGS (\\Seen $Work)",
            Ok(store(
                None,
                FlagOp::Add,
                false,
                flags::SEEN,
                &["$Work"],
                false,
            )),
        ),
        (
            "a UID STORE 1:2 (UNCHANGEDSINCE 7) -flags.silent \\Deleted",
            Ok(store(
                Some(7),
                FlagOp::Remove,
                true,
                flags::DELETED,
                &[],
                true,
            )),
        ),
        (
            "a STORE 2:1 FLAGS ()",
            Ok(store(None, FlagOp::Replace, false, 0, &[], false)),
        ),
        (
            "a STORE 1 +FLAGS",
            Err("STORE needs a sequence set, an operation and flags"),
        ),
        (
            "a STORE 1 x +FLAGS (y)",
            Err("STORE needs a sequence set, an operation and flags"),
        ),
        ("a STORE 1 (x) +FLAGS", Err("Invalid STORE operation")),
        (
            "a STORE 1 BOGUS.SILENT (x)",
            Err("Invalid STORE operation BOGUS"),
        ),
        (
            "a STORE 1 +FLAGS (\\Bogus)",
            Err("Unknown system flag \\Bogus"),
        ),
        ("a STORE 1 +FLAGS (\"x\")", Err("Flags must be atoms")),
        (
            "a STORE 1 (UNCHANGEDSINCE x) +FLAGS (x)",
            Err("Invalid UNCHANGEDSINCE value"),
        ),
        (
            "a STORE 1 (FOO 1) BOGUS (x)",
            Err("Unknown modifier (only UNCHANGEDSINCE is supported)"),
        ),
        ("a STORE 0 BOGUS (x)", Err("Invalid STORE operation BOGUS")),
        ("a STORE 0 +FLAGS (x)", Err("Invalid sequence set \"0\"")),
    ] {
        assert_eq!(parse(input), expected.map_err(String::from), "{input}");
    }
}

#[test]
fn search_commands() {
    for (input, expected) in [
        (
            "a UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 NOT $",
            Ok(Command::Search(Search {
                options: Some(SearchReturn {
                    min: true,
                    count: true,
                    ..SearchReturn::default()
                }),
                key: SearchKey::Not(Box::new(SearchKey::Saved)),
                uid: true,
            })),
        ),
        (
            "a SEARCH SEEN 2:3",
            Ok(Command::Search(Search {
                options: None,
                key: SearchKey::And(vec![
                    SearchKey::Flag(flags::SEEN, true),
                    SearchKey::Seq(vec![(2, 3)]),
                ]),
                uid: false,
            })),
        ),
        ("a SEARCH", Err("SEARCH needs a key")),
        ("a SEARCH RETURN ALL", Err("RETURN needs a list of options")),
        (
            "a SEARCH RETURN (PARTIAL 9:3 UPDATE CONTEXT) ALL",
            Ok(Command::Search(Search {
                options: Some(SearchReturn {
                    partial: Some((3, 9)),
                    update: true,
                    ..SearchReturn::default()
                }),
                key: SearchKey::All,
                uid: false,
            })),
        ),
        (
            "a SEARCH RETURN (CONTEXT) ALL",
            Ok(Command::Search(Search {
                options: Some(SearchReturn::all()),
                key: SearchKey::All,
                uid: false,
            })),
        ),
        (
            "a SEARCH RETURN (PARTIAL 1:3 ALL) ALL",
            Err("PARTIAL cannot be combined with ALL"),
        ),
        (
            "a SEARCH RETURN (PARTIAL 1:2 PARTIAL 3:4) ALL",
            Err("PARTIAL can be used only once"),
        ),
        (
            "a SEARCH RETURN (PARTIAL) ALL",
            Err("PARTIAL needs a range"),
        ),
        (
            "a SEARCH RETURN (PARTIAL 0:3) ALL",
            Err("Invalid PARTIAL range"),
        ),
        (
            "a SEARCH RETURN (PARTIAL 1:*) ALL",
            Err("Invalid PARTIAL range"),
        ),
        (
            "a SEARCH RETURN (PARTIAL 5) ALL",
            Err("Invalid PARTIAL range"),
        ),
        (
            "a CANCELUPDATE \"a1\" b2",
            Ok(Command::CancelUpdate(vec!["a1".into(), "b2".into()])),
        ),
        ("a CANCELUPDATE", Err("CANCELUPDATE needs a tag")),
        (
            "a SEARCH CHARSET KOI8-R ALL",
            Err("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"),
        ),
    ] {
        assert_eq!(parse(input), expected.map_err(String::from), "{input}");
    }
}

#[test]
fn append_heads() {
    let append = |head: &str| append_request(head.as_bytes(), false);
    assert_eq!(
        append("t APPEND &AOk- (\\Seen x) \"17-Jul-1996 02:44:25 -0700\" "),
        Ok((
            "t".into(),
            Ok(Append {
                mailbox: "é".into(),
                flags: Flags {
                    system: flags::SEEN,
                    keywords: vec!["x".into()],
                },
                date: Some(837_596_665),
            })
        ))
    );
    // The last flag list and date count.
    let (_, last) = append(
        "t APPEND INBOX (\\Deleted) \"01-Jan-1970 00:00:01 +0000\" (\\Seen) \"01-Jan-1970 00:00:02 +0000\" ",
    )
    .unwrap();
    let last = last.unwrap();
    assert_eq!((last.flags.system, last.date), (flags::SEEN, Some(2)));
    for (head, error) in [
        ("t APPEND \"&bad\" ", "APPEND needs a mailbox name"),
        ("t APPEND INBOX (\\Bogus) ", "Unknown system flag \\Bogus"),
        (
            "t APPEND INBOX \"bad date\" ",
            "Invalid date-time \"bad date\"",
        ),
        ("t APPEND INBOX FOO ", "Invalid APPEND argument"),
    ] {
        assert_eq!(append(head).unwrap().1, Err(error.to_string()), "{head}");
    }
    assert_eq!(
        append("t APPEND (").unwrap_err(),
        (Some("t".into()), "Unbalanced parentheses".into())
    );
}

#[test]
fn create_with_special_use() {
    assert_eq!(
        parse("a CREATE MyTrash (USE (\\Trash))"),
        Ok(Command::Create("MyTrash".into(), vec!["\\Trash".into()]))
    );
    assert!(parse("a CREATE x (FOO (\\Trash))").is_err());
    assert!(parse("a CREATE x USE").is_err());
}
