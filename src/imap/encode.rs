//! IMAP response formatting (pure): strings and literals, sequence sets, dates, flag
//! lists, FETCH data items, SEARCH/ESEARCH, LIST, STATUS, QUOTA, EXPUNGE/VANISHED and
//! the response codes that carry UIDs. Nothing here does I/O or looks at session state;
//! whole untagged responses are returned with their `* ` and CRLF, so a handler can
//! gather several into one buffer. RFC 9051 §4 (data formats) and §7 (responses).
//!
//! ENVELOPE and BODYSTRUCTURE have their own writer, [`crate::mail::structure`], since they are
//! computed once per stored message and kept.

use super::parse::{Capability, Range, SearchReturn, Section, StatusItem};
use crate::store::{flags, SpecialUse};

/// A string as a quoted string when that is safe, else as a literal (RFC 9051 §4.3).
/// One implementation for the whole crate: the message descriptions in
/// [`crate::mail::structure`] need it before IMAP is involved.
pub use crate::mail::structure::quote;

/// What announces a literal of `len` bytes: `{len}` and CRLF, or `~{len}` and CRLF for a
/// literal8 (RFC 3516 §4.2), which may hold NUL.
pub fn literal_header(len: u64, literal8: bool) -> String {
    let tilde = if literal8 { "~" } else { "" };
    format!("{tilde}{{{len}}}\r\n")
}

/// One range of a sequence set: `7` or `7:9`.
pub fn range(a: u32, b: u32) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}:{b}")
    }
}

/// Ranges as a sequence set: `1:3,7`.
pub fn ranges(ranges: &[Range]) -> String {
    let parts: Vec<String> = ranges.iter().map(|&(a, b)| range(a, b)).collect();
    parts.join(",")
}

/// The compact form of sorted numbers: `1:3,7,9:10`.
pub fn number_set(numbers: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = numbers[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&range(start, end));
        i += 1;
    }
    out
}

/// Unix time → `17-Jul-1996 09:44:25 +0000` (date-time, RFC 9051 §9, without quotes).
pub use crate::mail::imap_date_time as date_time;

/// The flag list of a message: `(\Seen \Deleted $Work)`.
pub fn flag_list(system: u8, keywords: &[String], recent: bool) -> String {
    let mut out = Vec::new();
    for (bit, name) in [
        (flags::SEEN, "\\Seen"),
        (flags::ANSWERED, "\\Answered"),
        (flags::FLAGGED, "\\Flagged"),
        (flags::DELETED, "\\Deleted"),
        (flags::DRAFT, "\\Draft"),
    ] {
        if system & bit != 0 {
            out.push(name.to_string());
        }
    }
    if recent {
        out.push("\\Recent".into());
    }
    out.extend(keywords.iter().cloned());
    format!("({})", out.join(" "))
}

/// A section as it is echoed in a FETCH response: `2.HEADER.FIELDS (FROM)`.
pub fn section(section: &Section) -> String {
    match section {
        Section::Full => String::new(),
        Section::Header => "HEADER".into(),
        Section::Text => "TEXT".into(),
        Section::Mime => "MIME".into(),
        Section::Fields(not, names) => format!(
            "HEADER.FIELDS{} ({})",
            if *not { ".NOT" } else { "" },
            names.join(" ")
        ),
        Section::Part(path, inner) => {
            let inner = self::section(inner);
            if inner.is_empty() {
                part_path(path)
            } else {
                format!("{}.{inner}", part_path(path))
            }
        }
    }
}

/// `1.2.3` of a section part or a BINARY section.
pub fn part_path(path: &[u32]) -> String {
    let parts: Vec<String> = path.iter().map(u32::to_string).collect();
    parts.join(".")
}

/// Opens one message's FETCH response: `* 3 FETCH (`; items follow, separated by a
/// space, and [`FETCH_CLOSE`] ends it.
pub fn fetch_open(seq: usize) -> String {
    format!("* {seq} FETCH (")
}

/// Ends a FETCH response.
pub const FETCH_CLOSE: &str = ")\r\n";

/// A FETCH data item whose whole value is at hand (RFC 9051 §7.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchValue<'a> {
    /// System flags, keywords, and whether the message is `\Recent` in this session.
    Flags(u8, &'a [String], bool),
    Uid(u32),
    Envelope(&'a str),
    /// BODY (false) or BODYSTRUCTURE (true) with the stored description.
    Structure(bool, &'a str),
    InternalDate(i64),
    /// SAVEDATE (RFC 8514), NIL when unknown.
    SaveDate(Option<i64>),
    Size(u64),
    ModSeq(u64),
    /// `BINARY.SIZE[part]` (RFC 3516 §4.3).
    BinarySize(&'a [u32], u64),
}

pub fn fetch_value(value: &FetchValue) -> String {
    match *value {
        FetchValue::Flags(system, keywords, recent) => {
            format!("FLAGS {}", flag_list(system, keywords, recent))
        }
        FetchValue::Uid(uid) => format!("UID {uid}"),
        FetchValue::Envelope(envelope) => format!("ENVELOPE {envelope}"),
        FetchValue::Structure(true, body) => format!("BODYSTRUCTURE {body}"),
        FetchValue::Structure(false, body) => format!("BODY {body}"),
        FetchValue::InternalDate(t) => format!("INTERNALDATE \"{}\"", date_time(t)),
        FetchValue::SaveDate(Some(t)) => format!("SAVEDATE \"{}\"", date_time(t)),
        FetchValue::SaveDate(None) => "SAVEDATE NIL".into(),
        FetchValue::Size(size) => format!("RFC822.SIZE {size}"),
        FetchValue::ModSeq(modseq) => format!("MODSEQ ({modseq})"),
        FetchValue::BinarySize(path, size) => format!("BINARY.SIZE[{}] {size}", part_path(path)),
    }
}

/// A FETCH data item whose value is a literal; its bytes follow the announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchLiteral<'a> {
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    /// `BODY[section]<origin>`.
    Body(&'a Section, Option<u32>),
    /// `BINARY[part]<origin>`.
    Binary(&'a [u32], Option<u32>),
}

/// The item's name and the literal's announcement: `BODY[1.MIME]<0> {12}` and CRLF. A
/// BINARY literal that holds NUL is a literal8 (RFC 3516 §4.2).
pub fn fetch_literal(item: &FetchLiteral, len: u64, literal8: bool) -> String {
    let origin = |o: Option<u32>| o.map(|start| format!("<{start}>")).unwrap_or_default();
    let name = match *item {
        FetchLiteral::Rfc822 => "RFC822".to_string(),
        FetchLiteral::Rfc822Header => "RFC822.HEADER".to_string(),
        FetchLiteral::Rfc822Text => "RFC822.TEXT".to_string(),
        FetchLiteral::Body(s, o) => format!("BODY[{}]{}", section(s), origin(o)),
        FetchLiteral::Binary(path, o) => format!("BINARY[{}]{}", part_path(path), origin(o)),
    };
    format!("{name} {}", literal_header(len, literal8))
}

/// A flag update: `* 3 FETCH (UID 7 FLAGS (\Seen) MODSEQ (12))` (unsolicited, after STORE,
/// or for QRESYNC). The UID is left out for a plain STORE; MODSEQ once CONDSTORE is on.
pub fn fetch_flags(
    seq: usize,
    uid: Option<u32>,
    system: u8,
    keywords: &[String],
    recent: bool,
    modseq: Option<u64>,
) -> String {
    let uid = uid.map(|u| format!("UID {u} ")).unwrap_or_default();
    let modseq = modseq.map(|m| format!(" MODSEQ ({m})")).unwrap_or_default();
    let flags = flag_list(system, keywords, recent);
    format!("* {seq} FETCH ({uid}FLAGS {flags}{modseq})\r\n")
}

/// `* 4 EXISTS` (RFC 9051 §7.4.1).
pub fn exists(count: usize) -> String {
    format!("* {count} EXISTS\r\n")
}

/// `* 3 EXPUNGE` (RFC 9051 §7.5.1).
pub fn expunge(seq: usize) -> String {
    format!("* {seq} EXPUNGE\r\n")
}

/// `* VANISHED 3:5,9` for sorted UIDs (RFC 7162 §3.2.10).
pub fn vanished(uids: &[u32]) -> String {
    format!("* VANISHED {}\r\n", number_set(uids))
}

/// `* VANISHED (EARLIER) 3:5,9` of SELECT (QRESYNC) and UID FETCH (VANISHED).
pub fn vanished_earlier(uids: &[Range]) -> String {
    format!("* VANISHED (EARLIER) {}\r\n", ranges(uids))
}

/// `* SEARCH 2 5 (MODSEQ 9)` (RFC 9051 §7.3.5 in its IMAP4rev1 form; RFC 7162 §3.1.5),
/// or `* SORT 5 2` (RFC 5256 §4) in the order given.
pub fn search(word: &str, numbers: &[u32], modseq: Option<u64>) -> String {
    let mut line = format!("* {word}");
    for n in numbers {
        line.push_str(&format!(" {n}"));
    }
    if let Some(m) = modseq {
        line.push_str(&format!(" (MODSEQ {m})"));
    }
    line.push_str("\r\n");
    line
}

/// `* ESEARCH (TAG "a") UID MIN 1 MAX 9 COUNT 3 ALL 1,4,9` (RFC 4731 §3.1); results that
/// do not exist for an empty match (MIN, MAX, ALL) are left out.
pub fn esearch(
    tag: &str,
    uid: bool,
    options: &SearchReturn,
    numbers: &[u32],
    modseq: Option<u64>,
) -> String {
    let mut line = format!("* ESEARCH (TAG {})", quote(tag));
    if uid {
        line.push_str(" UID");
    }
    if let (true, Some(n)) = (options.min, numbers.first()) {
        line.push_str(&format!(" MIN {n}"));
    }
    if let (true, Some(n)) = (options.max, numbers.last()) {
        line.push_str(&format!(" MAX {n}"));
    }
    if options.all && !numbers.is_empty() {
        line.push_str(&format!(" ALL {}", number_set(numbers)));
    }
    if let Some((low, high)) = options.partial {
        // RFC 5267 §4.4: the range as asked, then what is in it (NIL for nothing).
        let from = (low as usize - 1).min(numbers.len());
        let to = (high as usize).min(numbers.len());
        let set = match &numbers[from..to] {
            [] => "NIL".to_string(),
            some => number_set(some),
        };
        line.push_str(&format!(" PARTIAL ({low}:{high} {set})"));
    }
    if options.count {
        line.push_str(&format!(" COUNT {}", numbers.len()));
    }
    if let Some(m) = modseq {
        line.push_str(&format!(" MODSEQ {m}"));
    }
    line.push_str("\r\n");
    line
}

/// The special use an attribute names (`\Trash`, any case), if letterbox has it.
pub fn special_use_named(attribute: &str) -> Option<SpecialUse> {
    [
        SpecialUse::Sent,
        SpecialUse::Drafts,
        SpecialUse::Trash,
        SpecialUse::Junk,
        SpecialUse::Archive,
    ]
    .into_iter()
    .find(|&s| special_use(s).eq_ignore_ascii_case(attribute))
}

/// The attribute of a special-use mailbox (RFC 6154 §2).
pub fn special_use(special: SpecialUse) -> &'static str {
    match special {
        SpecialUse::Sent => "\\Sent",
        SpecialUse::Drafts => "\\Drafts",
        SpecialUse::Trash => "\\Trash",
        SpecialUse::Junk => "\\Junk",
        SpecialUse::Archive => "\\Archive",
    }
}

/// `* LIST (\HasNoChildren \Sent) "/" "Sent"` (or LSUB); `childinfo` adds RFC 5258's
/// `("CHILDINFO" ("SUBSCRIBED"))` for a parent listed for its subscribed children.
pub fn list(verb: &str, attributes: &[&str], wire_name: &str, childinfo: bool) -> String {
    let extra = if childinfo {
        " (\"CHILDINFO\" (\"SUBSCRIBED\"))"
    } else {
        ""
    };
    format!(
        "* {verb} ({}) \"/\" {}{extra}\r\n",
        attributes.join(" "),
        quote(wire_name)
    )
}

/// `* STATUS "INBOX" (MESSAGES 3 UNSEEN 1)` (RFC 9051 §7.4).
pub fn status(wire_name: &str, values: &[(StatusItem, u64)]) -> String {
    let values: Vec<String> = values
        .iter()
        .map(|(item, value)| format!("{} {value}", item.name()))
        .collect();
    format!("* STATUS {} ({})\r\n", quote(wire_name), values.join(" "))
}

/// `* QUOTA "" (STORAGE used limit)` in KiB (RFC 9208 §5.1), from bytes.
pub fn quota(used: u64, limit: u64) -> String {
    format!(
        "* QUOTA \"\" (STORAGE {} {})\r\n",
        used.div_ceil(1024),
        limit / 1024
    )
}

/// `* QUOTAROOT "INBOX" ""`, or without a root when the account has no quota (RFC 9208 §5.2).
pub fn quota_root(wire_name: &str, has_root: bool) -> String {
    let root = if has_root { " \"\"" } else { "" };
    format!("* QUOTAROOT {}{root}\r\n", quote(wire_name))
}

/// `[COPYUID validity 1,2 7,8]` from (source, destination) UID pairs (RFC 4315 §3).
pub fn copyuid(uid_validity: u32, pairs: &[(u32, u32)]) -> String {
    let from: Vec<String> = pairs.iter().map(|(a, _)| a.to_string()).collect();
    let to: Vec<String> = pairs.iter().map(|(_, b)| b.to_string()).collect();
    format!(
        "[COPYUID {uid_validity} {} {}]",
        from.join(","),
        to.join(",")
    )
}

/// `* ENABLED CONDSTORE IMAP4rev2` (RFC 5161 §3.2).
pub fn enabled(capabilities: &[Capability]) -> String {
    let mut line = String::from("* ENABLED");
    for c in capabilities {
        line.push(' ');
        line.push_str(c.name());
    }
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_literals() {
        assert_eq!(quote("INBOX"), "\"INBOX\"");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("a \"b\" \\c"), "\"a \\\"b\\\" \\\\c\"");
        assert_eq!(quote("Ünï"), "{5}\r\nÜnï");
        assert_eq!(quote("two\r\nlines"), "{10}\r\ntwo\r\nlines");
        assert_eq!(literal_header(12, false), "{12}\r\n");
        assert_eq!(literal_header(0, true), "~{0}\r\n");
    }

    #[test]
    fn sets() {
        assert_eq!(number_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(number_set(&[]), "");
        assert_eq!(number_set(&[u32::MAX]), "4294967295");
        assert_eq!(ranges(&[(1, 3), (5, 5)]), "1:3,5");
        assert_eq!(ranges(&[]), "");
        assert_eq!(range(4, 4), "4");
    }

    #[test]
    fn dates_and_flags() {
        assert_eq!(date_time(0), "01-Jan-1970 00:00:00 +0000");
        assert_eq!(date_time(837_596_665), "17-Jul-1996 09:44:25 +0000");
        assert_eq!(date_time(-1), "31-Dec-1969 23:59:59 +0000");
        let keywords = vec!["$Work".to_string()];
        assert_eq!(
            flag_list(flags::SEEN | flags::DELETED, &keywords, false),
            "(\\Seen \\Deleted $Work)"
        );
        assert_eq!(flag_list(0, &[], true), "(\\Recent)");
        assert_eq!(flag_list(0, &[], false), "()");
    }

    #[test]
    fn fetch_items() {
        let fields = Section::Part(
            vec![2, 1],
            Box::new(Section::Fields(true, vec!["FROM".into(), "TO".into()])),
        );
        assert_eq!(section(&fields), "2.1.HEADER.FIELDS.NOT (FROM TO)");
        assert_eq!(
            section(&Section::Part(vec![3], Box::new(Section::Full))),
            "3"
        );
        assert_eq!(fetch_open(4), "* 4 FETCH (");
        let keywords = vec!["x".to_string()];
        for (value, text) in [
            (
                FetchValue::Flags(flags::SEEN, &keywords, false),
                "FLAGS (\\Seen x)",
            ),
            (FetchValue::Uid(9), "UID 9"),
            (FetchValue::Envelope("(NIL)"), "ENVELOPE (NIL)"),
            (FetchValue::Structure(false, "(x)"), "BODY (x)"),
            (FetchValue::Structure(true, "(x)"), "BODYSTRUCTURE (x)"),
            (
                FetchValue::InternalDate(0),
                "INTERNALDATE \"01-Jan-1970 00:00:00 +0000\"",
            ),
            (
                FetchValue::SaveDate(Some(86400)),
                "SAVEDATE \"02-Jan-1970 00:00:00 +0000\"",
            ),
            (FetchValue::SaveDate(None), "SAVEDATE NIL"),
            (FetchValue::Size(12), "RFC822.SIZE 12"),
            (FetchValue::ModSeq(7), "MODSEQ (7)"),
            (FetchValue::BinarySize(&[1, 2], 30), "BINARY.SIZE[1.2] 30"),
            (FetchValue::BinarySize(&[], 30), "BINARY.SIZE[] 30"),
        ] {
            assert_eq!(fetch_value(&value), text);
        }
        for (item, literal8, text) in [
            (FetchLiteral::Rfc822, false, "RFC822 {5}\r\n"),
            (FetchLiteral::Rfc822Header, false, "RFC822.HEADER {5}\r\n"),
            (FetchLiteral::Rfc822Text, false, "RFC822.TEXT {5}\r\n"),
            (
                FetchLiteral::Body(&Section::Full, None),
                false,
                "BODY[] {5}\r\n",
            ),
            (
                FetchLiteral::Body(&Section::Header, Some(3)),
                false,
                "BODY[HEADER]<3> {5}\r\n",
            ),
            (
                FetchLiteral::Binary(&[1], Some(0)),
                true,
                "BINARY[1]<0> ~{5}\r\n",
            ),
            (FetchLiteral::Binary(&[], None), false, "BINARY[] {5}\r\n"),
        ] {
            assert_eq!(fetch_literal(&item, 5, literal8), text);
        }
        assert_eq!(
            fetch_flags(2, Some(7), flags::SEEN, &[], false, Some(12)),
            "* 2 FETCH (UID 7 FLAGS (\\Seen) MODSEQ (12))\r\n"
        );
        assert_eq!(
            fetch_flags(2, None, 0, &keywords, false, None),
            "* 2 FETCH (FLAGS (x))\r\n"
        );
    }

    #[test]
    fn expunge_and_search_responses() {
        assert_eq!(expunge(3), "* 3 EXPUNGE\r\n");
        assert_eq!(exists(0), "* 0 EXISTS\r\n");
        assert_eq!(vanished(&[3, 4, 5, 9]), "* VANISHED 3:5,9\r\n");
        assert_eq!(
            vanished_earlier(&[(1, 2), (4, 4)]),
            "* VANISHED (EARLIER) 1:2,4\r\n"
        );
        assert_eq!(search("SEARCH", &[], None), "* SEARCH\r\n");
        assert_eq!(search("SORT", &[5, 2], None), "* SORT 5 2\r\n");
        assert_eq!(
            search("SEARCH", &[2, 5], Some(9)),
            "* SEARCH 2 5 (MODSEQ 9)\r\n"
        );
        let all = SearchReturn {
            min: true,
            max: true,
            all: true,
            count: true,
            ..SearchReturn::default()
        };
        // Dovecot's order: MIN MAX ALL (or PARTIAL) COUNT MODSEQ.
        assert_eq!(
            esearch("a1", true, &all, &[1, 4, 5, 9], Some(3)),
            "* ESEARCH (TAG \"a1\") UID MIN 1 MAX 9 ALL 1,4:5,9 COUNT 4 MODSEQ 3\r\n"
        );
        let partial = |low, high| SearchReturn {
            partial: Some((low, high)),
            count: true,
            ..SearchReturn::default()
        };
        assert_eq!(
            esearch("t", false, &partial(2, 3), &[7, 3, 9, 10], None),
            "* ESEARCH (TAG \"t\") PARTIAL (2:3 3,9) COUNT 4\r\n"
        );
        assert_eq!(
            esearch("t", false, &partial(4, 8), &[7, 3, 9, 10], None),
            "* ESEARCH (TAG \"t\") PARTIAL (4:8 10) COUNT 4\r\n"
        );
        assert_eq!(
            esearch("t", false, &partial(5, 5), &[7, 3, 9, 10], None),
            "* ESEARCH (TAG \"t\") PARTIAL (5:5 NIL) COUNT 4\r\n"
        );
        assert_eq!(
            esearch("t", false, &all, &[], None),
            "* ESEARCH (TAG \"t\") COUNT 0\r\n"
        );
    }

    #[test]
    fn mailbox_responses() {
        assert_eq!(
            list("LIST", &["\\HasNoChildren", "\\Sent"], "Sent", false),
            "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"\r\n"
        );
        assert_eq!(
            list("LSUB", &["\\HasChildren"], "Work", true),
            "* LSUB (\\HasChildren) \"/\" \"Work\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
        );
        assert_eq!(
            list("LIST", &["\\Noselect"], "", false),
            "* LIST (\\Noselect) \"/\" \"\"\r\n"
        );
        assert_eq!(
            list("LIST", &[], "INBOX", false),
            "* LIST () \"/\" \"INBOX\"\r\n"
        );
        assert_eq!(special_use(SpecialUse::Junk), "\\Junk");
        assert_eq!(
            status(
                "INBOX",
                &[(StatusItem::Messages, 3), (StatusItem::DeletedStorage, 1)]
            ),
            "* STATUS \"INBOX\" (MESSAGES 3 DELETED-STORAGE 1)\r\n"
        );
        assert_eq!(status("a b", &[]), "* STATUS \"a b\" ()\r\n");
        assert_eq!(quota(1025, 4096), "* QUOTA \"\" (STORAGE 2 4)\r\n");
        assert_eq!(quota_root("INBOX", true), "* QUOTAROOT \"INBOX\" \"\"\r\n");
        assert_eq!(quota_root("INBOX", false), "* QUOTAROOT \"INBOX\"\r\n");
        assert_eq!(copyuid(5, &[(1, 7), (3, 8)]), "[COPYUID 5 1,3 7,8]");
        assert_eq!(
            enabled(&[Capability::CondStore, Capability::Imap4rev2]),
            "* ENABLED CONDSTORE IMAP4rev2\r\n"
        );
        assert_eq!(enabled(&[]), "* ENABLED\r\n");
    }
}
