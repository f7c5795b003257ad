//! Pure helpers over a stored message's bytes: FETCH sections and SEARCH evaluation (the
//! header/body split and header fields are [`crate::mail`]'s); and over a mailbox's UIDs: resolving a sequence set,
//! finding the UIDs that are gone. Messages are stored CRLF-terminated.

use super::parse::{in_set, Range, SearchKey, Section};
use crate::mail;
use crate::mail::header::decode_words;
use crate::store::MessageRecord;

/// The bytes of a `BODY[section]` (before any partial).
pub fn section_bytes(message: &[u8], section: &Section) -> Vec<u8> {
    let split = mail::split(message);
    match section {
        Section::Full => message.to_vec(),
        Section::Header => split.header_block(message).to_vec(),
        Section::Text => split.body(message).to_vec(),
        Section::Fields(not, names) => {
            let mut out = Vec::new();
            for field in mail::fields(split.header(message)) {
                let name = field.name();
                if name.is_empty() {
                    continue;
                }
                let listed = names.iter().any(|n| n.eq_ignore_ascii_case(name));
                if listed != *not {
                    out.extend_from_slice(field.raw);
                }
            }
            out.extend_from_slice(b"\r\n");
            out
        }
        Section::Mime => Vec::new(),
        Section::Part(path, inner) => super::structure::part_bytes(message, path, inner),
    }
}

/// Why a BINARY fetch cannot be answered.
#[derive(Debug, PartialEq, Eq)]
pub enum BinaryError {
    /// RFC 3516 `[UNKNOWN-CTE]`: a transfer encoding we cannot undo, or a broken one.
    UnknownEncoding,
}

/// The bytes of `BINARY[path]`: the part's body with its Content-Transfer-Encoding
/// undone; the whole message as stored for an empty path.
pub fn binary_section(message: &[u8], path: &[u32]) -> Result<Vec<u8>, BinaryError> {
    if path.is_empty() {
        return Ok(message.to_vec());
    }
    let body = section_bytes(
        message,
        &Section::Part(path.to_vec(), Box::new(Section::Full)),
    );
    // For part 1 of a single-part message this is the message header, as it should be.
    let header = section_bytes(
        message,
        &Section::Part(path.to_vec(), Box::new(Section::Mime)),
    );
    let encoding = mail::fields(&header)
        .find(|f| f.is("Content-Transfer-Encoding"))
        .map(|f| String::from_utf8_lossy(&f.value()).to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "7bit" | "8bit" | "binary" => Ok(body),
        "base64" => {
            mail_parser::decoders::base64::base64_decode(&body).ok_or(BinaryError::UnknownEncoding)
        }
        "quoted-printable" => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(&body)
                .ok_or(BinaryError::UnknownEncoding)
        }
        _ => Err(BinaryError::UnknownEncoding),
    }
}

/// Applies `<start.length>`.
pub fn partial(bytes: &[u8], range: Option<(u32, u32)>) -> &[u8] {
    match range {
        None => bytes,
        Some((start, len)) => {
            let start = (start as usize).min(bytes.len());
            let end = start.saturating_add(len as usize).min(bytes.len());
            &bytes[start..end]
        }
    }
}

fn contains_ci(haystack: &[u8], needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if needle.is_ascii() {
        // An ASCII needle matches the same bytes in the ASCII-lower-cased text: a byte
        // search, no decoding of the whole haystack into lower-cased characters.
        let hay = haystack.to_ascii_lowercase();
        return memchr::memmem::find(&hay, needle.to_ascii_lowercase().as_bytes()).is_some();
    }
    let hay = String::from_utf8_lossy(haystack).to_lowercase();
    hay.contains(&needle.to_lowercase())
}

/// Whether a header field's value holds `needle`, as written or with its encoded words
/// decoded.
fn field_contains(field: &mail::Field, needle: &str) -> bool {
    let value = field.value();
    contains_ci(&value, needle)
        || (value.windows(2).any(|w| w == b"=?")
            && contains_ci(
                decode_words(&String::from_utf8_lossy(&value)).as_bytes(),
                needle,
            ))
}

/// Whether the body holds `needle`, in the decoded text of its text parts (quoted-
/// printable, base64, charsets undone) as RFC 3501 §6.4.4 intends and Dovecot does: the
/// transfer-encoded form does not match. A message whose text needs no decoding (or one
/// too large to parse) is searched as stored.
fn body_contains(message: &[u8], needle: &str) -> bool {
    // Decoding costs a parse of every part: only for messages of a sensible size.
    if message.len() <= MAX_DECODED_SEARCH && needs_decoding(message) {
        if let Some(parsed) = mail_parser::MessageParser::default().parse(message) {
            return text_parts_contain(&parsed, needle, 0);
        }
    }
    contains_ci(mail::split(message).body(message), needle)
}

/// Whether a decoded text part of `message`, or of a message attached to it (up to a few
/// levels), holds `needle`.
fn text_parts_contain(message: &mail_parser::Message, needle: &str, depth: usize) -> bool {
    message.parts.iter().any(|part| match &part.body {
        mail_parser::PartType::Text(text) | mail_parser::PartType::Html(text) => {
            contains_ci(text.as_bytes(), needle)
        }
        mail_parser::PartType::Message(inner) if depth < 8 => {
            text_parts_contain(inner, needle, depth + 1)
        }
        _ => false,
    })
}

/// Messages larger than this are searched as stored, not decoded.
const MAX_DECODED_SEARCH: usize = 4 << 20;

/// Whether any text in the message is stored other than as UTF-8 (or ASCII) plain bytes:
/// quoted-printable, base64, or another charset. Only then is it worth parsing. One
/// lower-cased copy, then byte searches.
fn needs_decoding(message: &[u8]) -> bool {
    use memchr::memmem;
    let lower = message.to_ascii_lowercase();
    if memmem::find(&lower, b"quoted-printable").is_some()
        || memmem::find(&lower, b"base64").is_some()
    {
        return true;
    }
    memmem::find_iter(&lower, b"charset=").any(|at| {
        let value: Vec<u8> = lower[at + 8..]
            .iter()
            .skip_while(|&&b| b == b'"')
            .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            .copied()
            .collect();
        !(value == b"utf-8" || value == b"us-ascii" || value == b"utf8")
    })
}

fn is_address_field(field: &str) -> bool {
    ["FROM", "TO", "CC", "BCC"]
        .iter()
        .any(|f| f.eq_ignore_ascii_case(field))
}

/// Whether an address of `field` (parsed as ENVELOPE shows it: comments, routes and
/// folding gone) has `needle` in its `local@domain`, its group name or its display name
/// (encoded words decoded).
fn address_matches(header: &[u8], field: &str, needle: &str) -> bool {
    use crate::mail::address::{parse, Entry};
    mail::fields(header).filter(|f| f.is(field)).any(|f| {
        parse(&f.value()).into_iter().any(|entry| match entry {
            Entry::Mailbox(m) => {
                let spec = match &m.domain {
                    Some(domain) => format!("{}@{domain}", m.local),
                    None => m.local.clone(),
                };
                let name = m.name.as_deref().map(decode_words).unwrap_or_default();
                contains_ci(spec.as_bytes(), needle) || contains_ci(name.as_bytes(), needle)
            }
            Entry::GroupStart(name) => contains_ci(decode_words(&name).as_bytes(), needle),
            Entry::GroupEnd => false,
        })
    })
}

/// The facts SEARCH looks at for one message.
pub struct Candidate<'a> {
    pub seq: u32,
    pub max_seq: u32,
    pub uid: u32,
    pub max_uid: u32,
    pub record: &'a MessageRecord,
    /// `\Recent` in the searching session.
    pub recent: bool,
    /// Unix time of the search (WITHIN).
    pub now: i64,
    /// When it was saved into the mailbox, if known and asked for (SAVEDATE).
    pub saved: Option<i64>,
}

/// Whether the message matches; `content` loads its bytes (only when a key needs them).
pub fn matches(
    key: &SearchKey,
    c: &Candidate,
    content: &mut dyn FnMut() -> Option<std::rc::Rc<Vec<u8>>>,
) -> bool {
    use SearchKey::*;
    let day = c.record.internal_date.div_euclid(86400);
    match key {
        All => true,
        Seq(set) => in_set(set, c.seq, c.max_seq),
        Uid(set) => in_set(set, c.uid, c.max_uid),
        Flag(bit, on) => (c.record.flags & bit != 0) == *on,
        Keyword(k, on) => c.record.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) == *on,
        Header(field, needle) => content().is_some_and(|m| {
            let header = mail::header_of(&m);
            if needle.is_empty() {
                // An empty string matches every message that has the field.
                mail::fields(header).any(|f| f.is(field))
            } else if is_address_field(field) {
                address_matches(header, field, needle)
            } else {
                mail::fields(header).any(|f| f.is(field) && field_contains(&f, needle))
            }
        }),
        Body(needle) => content().is_some_and(|m| body_contains(&m, needle)),
        Text(needle) => content().is_some_and(|m| {
            let header = mail::header_of(&m);
            contains_ci(header, needle)
                || mail::fields(header).any(|f| field_contains(&f, needle))
                || body_contains(&m, needle)
        }),
        Before(d) => day < *d,
        On(d) => day == *d,
        Since(d) => day >= *d,
        SavedBefore(d) => saved_day(c) < *d,
        SavedOn(d) => saved_day(c) == *d,
        SavedSince(d) => saved_day(c) >= *d,
        SaveDateSupported => true,
        SentBefore(d) => sent_day(content).is_some_and(|s| s < *d),
        SentOn(d) => sent_day(content).is_some_and(|s| s == *d),
        SentSince(d) => sent_day(content).is_some_and(|s| s >= *d),
        Larger(n) => c.record.size > *n,
        Smaller(n) => c.record.size < *n,
        ModSeq(n) => c.record.modseq >= *n,
        // The session replaces `$` before matching (SearchKey::with_saved).
        Saved => false,
        Recent => c.recent,
        Older(secs) => c.record.internal_date < c.now.saturating_sub(*secs as i64),
        Younger(secs) => c.record.internal_date >= c.now.saturating_sub(*secs as i64),
        Not(k) => !matches(k, c, content),
        Or(a, b) => matches(a, c, content) || matches(b, c, content),
        And(keys) => keys.iter().all(|k| matches(k, c, content)),
    }
}

/// The day a message was saved (RFC 8514 §4: the internal date's when not known).
fn saved_day(c: &Candidate) -> i64 {
    c.saved.unwrap_or(c.record.internal_date).div_euclid(86400)
}

/// The calendar day of the Date: header as written (days since 1970), if it has one.
fn sent_day(content: &mut dyn FnMut() -> Option<std::rc::Rc<Vec<u8>>>) -> Option<i64> {
    let message = content()?;
    let header = mail::split(&message).header_block(&message);
    let date = *mail_parser::MessageParser::new()
        .parse_headers(header)?
        .date()?;
    Some(mail::date::days_from_civil(
        date.year as i64,
        date.month as u32,
        date.day as u32,
    ))
}

/// Sequence numbers or UIDs of a sequence set resolved against a mailbox's UIDs.
pub fn resolve(set: &[Range], uids: &[u32], by_uid: bool) -> Vec<usize> {
    let max = if by_uid {
        uids.last().copied().unwrap_or(0)
    } else {
        uids.len() as u32
    };
    uids.iter()
        .enumerate()
        .filter(|(i, &uid)| {
            let n = if by_uid { uid } else { *i as u32 + 1 };
            in_set(set, n, max)
        })
        .map(|(i, _)| i)
        .collect()
}

/// UIDs in `set` (up to `max`) that are not in `present` (sorted), as ranges. Works on
/// ranges, so `1:*` over a mailbox with large UIDs costs nothing extra.
pub fn missing_uids(set: &[Range], present: &[u32], max: u32) -> Vec<Range> {
    let mut ranges: Vec<Range> = set
        .iter()
        .map(|&(a, b)| {
            let b = if b == u32::MAX { max } else { b.min(max) };
            let a = if a == u32::MAX { max } else { a };
            (a.min(b), a.max(b))
        })
        .filter(|&(a, _)| a >= 1 && a <= max)
        .collect();
    ranges.sort_unstable();
    let mut out = Vec::new();
    let mut covered = 0u32; // everything up to here is done (ranges may overlap)
    for (a, b) in ranges {
        let mut next = a.max(covered.saturating_add(1));
        if next > b {
            continue;
        }
        let start = present.partition_point(|&u| u < next);
        for &u in present[start..].iter().take_while(|&&u| u <= b) {
            if u > next {
                out.push((next, u - 1));
            }
            next = u.saturating_add(1);
        }
        if next <= b {
            out.push((next, b));
        }
        covered = covered.max(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::parse::{parse_command, search_keys, sequence_set};
    use super::*;
    use crate::store::flags;
    use std::rc::Rc;

    const MSG: &[u8] = b"From: Alice <alice@example.org>\r\nSubject: Hello\r\n World\r\nTo: bob@example.org\r\n\r\nBody text here\r\n";

    #[test]
    fn sections() {
        let h = section_bytes(MSG, &Section::Header);
        assert!(h.ends_with(b"\r\n\r\n") && h.starts_with(b"From:"));
        assert_eq!(section_bytes(MSG, &Section::Text), b"Body text here\r\n");
        let f = section_bytes(MSG, &Section::Fields(false, vec!["SUBJECT".into()]));
        assert_eq!(f, b"Subject: Hello\r\n World\r\n\r\n");
        let f = section_bytes(
            MSG,
            &Section::Fields(true, vec!["SUBJECT".into(), "to".into()]),
        );
        assert_eq!(f, b"From: Alice <alice@example.org>\r\n\r\n");
        assert_eq!(partial(b"0123456789", Some((2, 3))), b"234");
        assert_eq!(partial(b"0123", Some((10, 3))), b"");
    }

    #[test]
    fn binary_sections_undo_the_transfer_encoding() {
        let multipart = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=C3=A9 =\r\nau lait\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n/w==\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n--b--\r\n";
        assert_eq!(
            binary_section(multipart, &[1]).unwrap(),
            "Café au lait".as_bytes()
        );
        assert_eq!(binary_section(multipart, &[2]).unwrap(), [0, 1, 2, 255]);
        assert_eq!(
            binary_section(multipart, &[3]),
            Err(BinaryError::UnknownEncoding)
        );
        assert_eq!(binary_section(multipart, &[]).unwrap(), multipart);
        // Part 1 of a single-part message: its body, encoding from the message header.
        let single = b"Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n";
        assert_eq!(binary_section(single, &[1]).unwrap(), b"hi");
        assert_eq!(binary_section(MSG, &[1]).unwrap(), b"Body text here\r\n");
    }

    fn search(query: &str, record: &MessageRecord) -> bool {
        search_in(query, record, MSG)
    }

    fn search_in(query: &str, record: &MessageRecord, message: &[u8]) -> bool {
        let c = parse_command(format!("a SEARCH {query}").as_bytes()).unwrap();
        let key = search_keys(&c.args).unwrap();
        let cand = Candidate {
            seq: 1,
            max_seq: 1,
            uid: 5,
            max_uid: 5,
            record,
            recent: false,
            now: record.internal_date + 100,
            // Saved two days after its internal date.
            saved: Some(record.internal_date + 2 * 86400),
        };
        matches(&key, &cand, &mut || Some(Rc::new(message.to_vec())))
    }

    /// A record for `message` with no flags, arriving at `internal_date`.
    fn plain_record(message: &[u8], internal_date: i64) -> MessageRecord {
        MessageRecord {
            blob: 1,
            size: message.len() as u64,
            internal_date,
            flags: 0,
            keywords: vec![],
            modseq: 1,
        }
    }

    #[test]
    fn sent_keys_use_the_date_header_as_written() {
        let dated = b"Date: Mon, 1 Jan 2024 23:30:00 -0800\r\nSubject: x\r\n\r\nbody\r\n";
        let record = plain_record(dated, 1_600_000_000);
        let check = |query: &str, message: &[u8]| search_in(query, &record, message);
        // 23:30 at -0800 is already 2 January in UTC: the zone is disregarded.
        assert!(check("SENTON 1-Jan-2024", dated));
        assert!(!check("SENTON 2-Jan-2024", dated));
        assert!(check("SENTBEFORE 2-Jan-2024", dated));
        assert!(!check("SENTSINCE 2-Jan-2024", dated));
        assert!(check("SENTSINCE 1-Jan-2024", dated));
        // The internal date (2020) is a different thing.
        assert!(check("BEFORE 1-Jan-2021", dated));
        assert!(
            !check("SENTSINCE 1-Jan-1970", MSG),
            "no Date: header, no match"
        );
    }

    #[test]
    fn save_date_keys() {
        // plain_record's internal date is day 0 (1 Jan 1970); saved on day 2.
        let record = plain_record(MSG, 0);
        let check = |query: &str| search_in(query, &record, MSG);
        assert!(check("SAVEDON 3-Jan-1970") && !check("SAVEDON 1-Jan-1970"));
        assert!(check("SAVEDSINCE 2-Jan-1970") && !check("SAVEDSINCE 4-Jan-1970"));
        assert!(check("SAVEDBEFORE 4-Jan-1970") && !check("SAVEDBEFORE 3-Jan-1970"));
        assert!(check("SAVEDATESUPPORTED"));
        assert!(
            check("ON 1-Jan-1970"),
            "the internal date stays the internal date"
        );
    }

    #[test]
    fn address_keys_match_parsed_addresses() {
        // Issue 11: comments inside an address hid it from SEARCH FROM.
        let commented = b"From: Joe <user-from (comment)@ (comment) domain.org>\r\n\
            To: undisclosed: ;\r\n\r\nx\r\n";
        let record = plain_record(commented, 0);
        let check = |query: &str| search_in(query, &record, commented);
        assert!(check("FROM user-from@domain.org"));
        assert!(check("FROM joe"));
        // BODY and TEXT look into decoded text parts too.
        let encoded = b"Subject: s\r\nContent-Type: text/plain; charset=utf-8\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\r\nun caf=C3=A9 cr=C3=A8me\r\n";
        assert!(search_in("BODY \"caf\u{e9} cr\u{e8}me\"", &record, encoded));
        assert!(
            search_in("TEXT CAF\u{c9}", &record, encoded),
            "decoded, case-insensitive"
        );
        assert!(
            !search_in("BODY caf=C3", &record, encoded),
            "the transfer-encoded form does not match (as in Dovecot)"
        );
        assert!(
            !check("FROM comment"),
            "comments are not part of an address"
        );
        assert!(check("TO undisclosed"), "a group matches by its name");
        let header_word = b"Subject: =?utf-8?q?kr=C3=BCmel?=\r\n\r\nx\r\n";
        assert!(search_in("TEXT kr\u{fc}mel", &record, header_word));
        assert!(search_in("SUBJECT kr\u{fc}mel", &record, header_word));
        assert!(!search_in("BODY th\u{e9}", &record, encoded));
        let latin1 =
            b"Subject: s\r\nContent-Type: text/plain; charset=\"ISO-8859-1\"\r\n\r\nd\xe9j\xe0\r\n";
        assert!(search_in("BODY \"d\u{e9}j\u{e0}\"", &record, latin1));
        assert!(!needs_decoding(
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nplain\r\n"
        ));
        // WITHIN: the search runs 100 s after the internal date.
        assert!(check("YOUNGER 100") && !check("YOUNGER 99"));
        assert!(check("OLDER 99") && !check("OLDER 100"));
        assert!(!check("FROM other@domain.org"));
        assert!(!check("TO user-from"));
    }

    #[test]
    fn search_keys_match() {
        let record = MessageRecord {
            blob: 1,
            size: MSG.len() as u64,
            internal_date: 1_600_000_000,
            flags: flags::SEEN,
            keywords: vec!["$Work".into()],
            modseq: 1,
        };
        for (q, want) in [
            ("ALL", true),
            ("SEEN", true),
            ("UNSEEN", false),
            ("FROM ALICE", true),
            ("FROM carol", false),
            ("SUBJECT world", true),
            ("TO bob", true),
            ("BODY \"text HERE\"", true),
            ("BODY Hello", false),
            ("TEXT hello", true),
            ("UID 5", true),
            ("UID 1:4", false),
            ("1", true),
            ("NOT SEEN", false),
            ("OR UNSEEN FLAGGED", false),
            ("OR UNSEEN KEYWORD $work", true),
            ("SINCE 13-Sep-2020", true),
            ("SINCE 14-Sep-2020", false),
            ("ON 13-Sep-2020", true),
            ("BEFORE 13-Sep-2020", false),
            ("LARGER 10", true),
            ("SMALLER 10", false),
            ("(SEEN FROM alice) NOT DELETED", true),
        ] {
            assert_eq!(search(q, &record), want, "{q}");
        }
    }

    #[test]
    fn resolving_sets() {
        let uids = [3, 7, 9, 20];
        assert_eq!(
            resolve(&sequence_set("2:3").unwrap(), &uids, false),
            vec![1, 2]
        );
        assert_eq!(resolve(&sequence_set("*").unwrap(), &uids, false), vec![3]);
        assert_eq!(
            resolve(&sequence_set("8:*").unwrap(), &uids, true),
            vec![2, 3]
        );
        assert_eq!(
            resolve(&sequence_set("21:*").unwrap(), &uids, true),
            vec![3]
        );
        assert!(resolve(&sequence_set("1:*").unwrap(), &[], true).is_empty());
    }

    #[test]
    fn gone_uids() {
        assert_eq!(
            missing_uids(&[(1, u32::MAX)], &[2, 3, 7], 9),
            [(1, 1), (4, 6), (8, 9)]
        );
        assert_eq!(
            missing_uids(&[(1, 5), (3, 8)], &[4], 6),
            [(1, 3), (5, 5), (6, 6)]
        );
        assert_eq!(missing_uids(&[(1, 3)], &[1, 2, 3], 3), []);
        assert_eq!(missing_uids(&[(u32::MAX, u32::MAX)], &[], 0), []);
    }
}
