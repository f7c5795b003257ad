//! Mailbox argument syntax: names (RFC 9051 §5.1, modified UTF-7 of RFC 3501 §5.1.3
//! unless UTF-8 is enabled), LIST/LSUB with LIST-EXTENDED (RFC 5258) and LIST-STATUS
//! (RFC 5819), STATUS items (RFC 9051 §6.3.11, RFC 9208 §4.2) and SELECT's QRESYNC
//! parameter (RFC 7162 §3.2.5).

use super::{sequence_set, Range, Value};
use crate::imap::mutf7;

/// A mailbox name argument as stored (UTF-8); INBOX is case-insensitive. `utf8`: the
/// client enabled UTF8=ACCEPT or IMAP4rev2, so the name is not modified UTF-7.
pub fn mailbox_name(value: &Value, utf8: bool) -> Result<String, String> {
    let name = value.text()?;
    let name = if utf8 { name } else { mutf7::decode(&name)? };
    if name.eq_ignore_ascii_case("INBOX") {
        return Ok("INBOX".into());
    }
    if name.is_empty() {
        return Err("Empty mailbox name".into());
    }
    Ok(name)
}

/// What a LIST or LSUB command asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRequest {
    pub lsub: bool,
    /// The client asks only for the hierarchy delimiter: one empty pattern (RFC 9051
    /// §6.3.9). `patterns` is then empty and the reference is not looked at.
    pub delimiter_only: bool,
    /// Reference and pattern joined, decoded to UTF-8.
    pub patterns: Vec<String>,
    pub subscribed_only: bool,
    pub recursive: bool,
    pub special_use_only: bool,
    /// Add \Subscribed to the attributes (selection or return option SUBSCRIBED).
    pub show_subscribed: bool,
    /// LIST-STATUS items.
    pub status: Option<Vec<StatusItem>>,
}

/// Parses `LIST [(selection)] reference (pattern | (patterns)) [RETURN (options)]` (or
/// LSUB's `reference pattern`). CHILDREN and SPECIAL-USE return options are accepted;
/// their attributes are always sent.
pub fn list_request(args: &[Value], lsub: bool, utf8: bool) -> Result<ListRequest, String> {
    let mut request = ListRequest {
        lsub,
        subscribed_only: lsub,
        ..ListRequest::default()
    };
    let mut args = args;
    if let [Value::List(selection), rest @ ..] = args {
        list_selection(selection, &mut request)?;
        args = rest;
    }
    let (Some(reference), Some(patterns)) = (args.first(), args.get(1)) else {
        return Err("LIST needs a reference and a pattern".into());
    };
    let reference = reference.text().map_err(|_| "Invalid reference")?;
    let patterns: Vec<String> = match patterns {
        Value::List(list) if !list.is_empty() => list
            .iter()
            .map(Value::text)
            .collect::<Result<_, _>>()
            .map_err(|_| "Invalid mailbox pattern")?,
        Value::List(_) => return Err("Empty pattern list".into()),
        other => vec![other.text().map_err(|_| "Invalid mailbox pattern")?],
    };
    let mut status = None;
    match &args[2..] {
        [] => {}
        [Value::Atom(r), Value::List(options)] if r.eq_ignore_ascii_case("RETURN") => {
            status = list_return(options, &mut request)?;
        }
        _ => return Err("Invalid LIST arguments".into()),
    }
    if let Some(items) = status {
        request.status = Some(status_items(items)?);
    }
    if patterns == [""] {
        request.delimiter_only = true;
        return Ok(request);
    }
    for pattern in patterns {
        let pattern = format!("{reference}{pattern}");
        request.patterns.push(if utf8 {
            pattern
        } else {
            mutf7::decode(&pattern)?
        });
    }
    Ok(request)
}

/// LIST-EXTENDED selection options (RFC 5258 §3.1).
fn list_selection(selection: &[Value], request: &mut ListRequest) -> Result<(), String> {
    for option in selection {
        match option.atom().map(str::to_ascii_uppercase).as_deref() {
            Some("SUBSCRIBED") => {
                request.subscribed_only = true;
                request.show_subscribed = true;
            }
            Some("RECURSIVEMATCH") => request.recursive = true,
            Some("SPECIAL-USE") => request.special_use_only = true,
            Some("REMOTE") => {}
            _ => return Err("Unknown LIST selection option".into()),
        }
    }
    // RFC 5258 §3.1: RECURSIVEMATCH alone is an error.
    if request.recursive && !request.subscribed_only && !request.special_use_only {
        return Err("RECURSIVEMATCH needs another selection option".into());
    }
    Ok(())
}

/// LIST-EXTENDED return options (RFC 5258 §3.2); returns the STATUS item list, if any,
/// for the caller to check once every option is known.
fn list_return<'a>(
    options: &'a [Value],
    request: &mut ListRequest,
) -> Result<Option<&'a [Value]>, String> {
    let mut status = None;
    let mut options = options.iter();
    while let Some(option) = options.next() {
        match option.atom().map(str::to_ascii_uppercase).as_deref() {
            Some("SUBSCRIBED") => request.show_subscribed = true,
            Some("CHILDREN") | Some("SPECIAL-USE") => {}
            Some("STATUS") => match options.next() {
                Some(Value::List(items)) => status = Some(&items[..]),
                _ => return Err("STATUS needs a list of items".into()),
            },
            _ => return Err("Unknown LIST return option".into()),
        }
    }
    Ok(status)
}

/// A STATUS data item (RFC 9051 §6.3.11; SIZE from RFC 8438, HIGHESTMODSEQ from RFC
/// 7162, DELETED-STORAGE from RFC 9208).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    UidNext,
    UidValidity,
    Unseen,
    Size,
    HighestModSeq,
    /// Always 0: nothing is ever \Recent in this server's sessions.
    Recent,
    Deleted,
    DeletedStorage,
}

const STATUS_ITEMS: [(&str, StatusItem); 9] = [
    ("MESSAGES", StatusItem::Messages),
    ("UIDNEXT", StatusItem::UidNext),
    ("UIDVALIDITY", StatusItem::UidValidity),
    ("UNSEEN", StatusItem::Unseen),
    ("SIZE", StatusItem::Size),
    ("HIGHESTMODSEQ", StatusItem::HighestModSeq),
    ("RECENT", StatusItem::Recent),
    ("DELETED", StatusItem::Deleted),
    ("DELETED-STORAGE", StatusItem::DeletedStorage),
];

impl StatusItem {
    /// The item's name on the wire.
    pub fn name(self) -> &'static str {
        STATUS_ITEMS
            .iter()
            .find(|(_, item)| *item == self)
            .map_or("", |(name, _)| name)
    }
}

/// STATUS items, in the client's order, or the BAD text for an unknown one.
pub fn status_items(items: &[Value]) -> Result<Vec<StatusItem>, String> {
    items
        .iter()
        .map(|item| {
            let name = item
                .atom()
                .ok_or("Invalid STATUS item")?
                .to_ascii_uppercase();
            STATUS_ITEMS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, item)| *item)
                .ok_or_else(|| format!("Unknown STATUS item {name}"))
        })
        .collect()
}

/// SELECT's `QRESYNC (uidvalidity modseq [known-uids [seq-match-data]])` (RFC 7162
/// §3.2.5). The sequence match data only narrows what the server must report; it is
/// not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qresync {
    pub uid_validity: u32,
    pub modseq: u64,
    pub known_uids: Option<Vec<Range>>,
}

pub fn qresync_parameter(value: &Value) -> Result<Qresync, String> {
    let bad = || "Invalid QRESYNC parameters".to_string();
    let Value::List(items) = value else {
        return Err(bad());
    };
    let number = |v: Option<&Value>| v.and_then(Value::atom).and_then(|a| a.parse::<u64>().ok());
    let uid_validity = number(items.first())
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n > 0)
        .ok_or_else(bad)?;
    let modseq = number(items.get(1)).ok_or_else(bad)?;
    let known_uids = match items.get(2) {
        Some(Value::Atom(set)) => Some(sequence_set(set)?),
        Some(Value::List(_)) | None => None,
        Some(Value::Str(_)) => return Err(bad()),
    };
    Ok(Qresync {
        uid_validity,
        modseq,
        known_uids,
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse_command;
    use super::*;

    fn args(s: &str) -> Vec<Value> {
        parse_command(format!("t X {s}").as_bytes()).unwrap().args
    }

    #[test]
    fn names() {
        let name = |s: &str, utf8| mailbox_name(&args(s)[0], utf8);
        assert_eq!(name("inbox", false).unwrap(), "INBOX");
        assert_eq!(name("\"Work/2026\"", false).unwrap(), "Work/2026");
        assert_eq!(name("&AOk-t&AOk-", false).unwrap(), "été");
        assert_eq!(name("&AOk-t&AOk-", true).unwrap(), "&AOk-t&AOk-");
        assert_eq!(name("\"\"", false).unwrap_err(), "Empty mailbox name");
        assert!(name("&bad", false).is_err());
        assert_eq!(
            name("(x)", false).unwrap_err(),
            "Expected a string, got a list"
        );
    }

    #[test]
    fn list_requests() {
        let list = |s: &str| list_request(&args(s), false, false);
        let r = list("(SUBSCRIBED RECURSIVEMATCH) \"Work/\" (% \"a*\") RETURN (CHILDREN STATUS (MESSAGES uidnext))")
            .unwrap();
        assert_eq!(r.patterns, ["Work/%", "Work/a*"]);
        assert!(r.subscribed_only && r.recursive && r.show_subscribed && !r.lsub);
        assert_eq!(
            r.status,
            Some(vec![StatusItem::Messages, StatusItem::UidNext])
        );
        let r = list("\"&bad\" \"\"").unwrap();
        assert!(r.delimiter_only && r.patterns.is_empty());
        let r = list_request(&args("\"\" *"), true, false).unwrap();
        assert!(r.lsub && r.subscribed_only && !r.show_subscribed);
        for (input, error) in [
            ("", "LIST needs a reference and a pattern"),
            ("(SUBSCRIBED) \"\"", "LIST needs a reference and a pattern"),
            ("(BOGUS) \"\" *", "Unknown LIST selection option"),
            (
                "(RECURSIVEMATCH) \"\" *",
                "RECURSIVEMATCH needs another selection option",
            ),
            ("(SUBSCRIBED) (x) *", "Invalid reference"),
            ("\"\" ((x))", "Invalid mailbox pattern"),
            ("\"\" ()", "Empty pattern list"),
            ("\"\" * extra", "Invalid LIST arguments"),
            ("\"\" * RETURN", "Invalid LIST arguments"),
            ("\"\" * RETURN (FOO)", "Unknown LIST return option"),
            ("\"\" * RETURN (STATUS)", "STATUS needs a list of items"),
            (
                "\"\" * RETURN (STATUS (BOGUS))",
                "Unknown STATUS item BOGUS",
            ),
            (
                "\"\" * RETURN (STATUS (BOGUS) FOO)",
                "Unknown LIST return option",
            ),
        ] {
            assert_eq!(list(input).unwrap_err(), error, "{input}");
        }
        assert!(list("\"\" \"&Jjo\"").is_err());
        assert_eq!(
            list_request(&args("\"\" \"&Jjo\""), false, true)
                .unwrap()
                .patterns,
            ["&Jjo"]
        );
    }

    #[test]
    fn status_and_qresync() {
        assert_eq!(
            status_items(&args("messages DELETED-STORAGE Recent")).unwrap(),
            [
                StatusItem::Messages,
                StatusItem::DeletedStorage,
                StatusItem::Recent
            ]
        );
        assert_eq!(StatusItem::HighestModSeq.name(), "HIGHESTMODSEQ");
        assert_eq!(
            status_items(&args("bogus")).unwrap_err(),
            "Unknown STATUS item BOGUS"
        );
        assert_eq!(
            status_items(&args("\"x\"")).unwrap_err(),
            "Invalid STATUS item"
        );
        let q = |s: &str| qresync_parameter(&args(s)[0]);
        assert_eq!(
            q("(67 90 1:9 (1 2))").unwrap(),
            Qresync {
                uid_validity: 67,
                modseq: 90,
                known_uids: Some(vec![(1, 9)]),
            }
        );
        assert_eq!(q("(1 0)").unwrap().known_uids, None);
        for bad in [
            "x",
            "(0 1)",
            "(x 1)",
            "(1)",
            "(1 1 \"x\")",
            "(4294967296 1)",
        ] {
            assert_eq!(q(bad).unwrap_err(), "Invalid QRESYNC parameters", "{bad}");
        }
        assert_eq!(q("(1 1 0)").unwrap_err(), "Invalid sequence set \"0\"");
    }
}
