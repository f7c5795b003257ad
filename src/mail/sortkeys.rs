//! What IMAP SORT and THREAD (RFC 5256, RFC 5957) compare, taken from a message's header
//! once and stored with it, so that sorting a mailbox never re-reads the messages.
//!
//! The base-subject rules (RFC 5256 §2.1) are written here rather than taken from a
//! crate: no maintained crate implements them, and they are a few dozen lines over the
//! decoded subject.

use mail_parser::{Address, HeaderValue, Message, MessageParser};
use serde::{Deserialize, Serialize};

/// Longest base subject kept (in bytes, cut at a character boundary): sorting only
/// needs a prefix, and the record stays small.
const MAX_SUBJECT: usize = 512;
/// Most References kept: the first and the newest (threading links the chain in order,
/// and the parent is the last one).
const MAX_REFERENCES: usize = 32;
/// Longest Message-ID kept; longer ones are truncated (still unique in practice).
const MAX_ID: usize = 256;

/// The first address of a From, To or Cc field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstAddress {
    /// The local part (RFC 5256's addr-mailbox), empty when absent.
    pub mailbox: String,
    /// RFC 5957's display form: the decoded display name, or `mailbox@host` without one.
    pub display: String,
}

/// The sort and thread fields of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortKeys {
    /// The base subject (RFC 5256 §2.1), decoded and unfolded, not yet case-mapped.
    pub subject: String,
    /// Whether extracting the base subject removed a reply or forward marker.
    pub reply: bool,
    /// The Date: field in Unix seconds (UTC), if present and valid.
    pub sent: Option<i64>,
    pub from: FirstAddress,
    pub to: FirstAddress,
    pub cc: FirstAddress,
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// References, or else the first message-id of In-Reply-To, oldest first.
    pub references: Vec<String>,
}

/// The sort keys of a message, from its header block (the whole message is fine too).
pub fn sort_keys(header: &[u8]) -> SortKeys {
    let Some(message) = MessageParser::new().parse_headers(header) else {
        return SortKeys::default();
    };
    let (subject, reply) = base_subject(message.subject().unwrap_or(""));
    SortKeys {
        subject: truncate(subject, MAX_SUBJECT),
        reply,
        sent: message
            .date()
            .filter(|d| d.is_valid())
            .map(|d| d.to_timestamp()),
        from: first_address(message.from()),
        to: first_address(message.to()),
        cc: first_address(message.cc()),
        message_id: message.message_id().map(|id| truncate(id.into(), MAX_ID)),
        references: references(&message),
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn ids(value: &HeaderValue) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![id.to_string()],
        HeaderValue::TextList(list) => list.iter().map(|id| id.to_string()).collect(),
        _ => Vec::new(),
    }
}

fn references(message: &Message) -> Vec<String> {
    let mut refs = ids(message.references());
    if refs.is_empty() {
        refs = ids(message.in_reply_to()).into_iter().take(1).collect();
    }
    if refs.len() > MAX_REFERENCES {
        let newest = refs.split_off(refs.len() - (MAX_REFERENCES - 1));
        refs.truncate(1);
        refs.extend(newest);
    }
    refs.into_iter()
        .filter(|id| !id.is_empty())
        .map(|id| truncate(id, MAX_ID))
        .collect()
}

fn first_address(address: Option<&Address>) -> FirstAddress {
    let first = match address {
        Some(Address::List(list)) => list.first(),
        Some(Address::Group(groups)) => match groups.first() {
            // The first "address" of a group is its start marker, whose mailbox is the
            // group's name (RFC 3501 §7.4.2; Dovecot sorts so too).
            Some(group) if group.name.is_some() => {
                let name = group.name.as_deref().unwrap_or("").to_string();
                return FirstAddress {
                    mailbox: name.clone(),
                    display: name,
                };
            }
            _ => groups
                .iter()
                .flat_map(|g| g.addresses.iter())
                .find(|a| a.address.is_some()),
        },
        None => None,
    };
    let Some(first) = first else {
        return FirstAddress::default();
    };
    let spec = first.address.as_deref().unwrap_or("");
    // A source route (`@a,@b:user@host`) is not part of the mailbox.
    let spec = spec.rsplit_once(':').map_or(spec, |(_, rest)| rest);
    let mailbox = spec.rsplit_once('@').map_or(spec, |(local, _)| local);
    let name = first.name.as_deref().map(str::trim).unwrap_or("");
    FirstAddress {
        mailbox: mailbox.to_string(),
        display: if name.is_empty() { spec } else { name }.to_string(),
    }
}

/// The base subject of a decoded subject (RFC 5256 §2.1) and whether a reply or forward
/// marker (`Re:`, `Fwd:`, `(fwd)`, `[fwd: ...]`) was removed.
pub fn base_subject(subject: &str) -> (String, bool) {
    // (1) Tabs and folds become spaces, runs of spaces one space.
    let mut s = String::with_capacity(subject.len());
    for c in subject.chars() {
        let c = if matches!(c, '\t' | '\r' | '\n') {
            ' '
        } else {
            c
        };
        if !(c == ' ' && s.ends_with(' ')) {
            s.push(c);
        }
    }
    let mut reply = false;
    let mut s = s.as_str();
    loop {
        // (2) Trailers: "(fwd)" and spaces.
        loop {
            if let Some(rest) = s.strip_suffix(' ') {
                s = rest;
            } else if s.len() >= 5 && s.as_bytes()[s.len() - 5..].eq_ignore_ascii_case(b"(fwd)") {
                s = &s[..s.len() - 5];
                reply = true;
            } else {
                break;
            }
        }
        // (3)-(5) Leaders ("Re:", "[blob] Fwd:", spaces) and leading blobs, until none.
        loop {
            if let Some(rest) = s.strip_prefix(' ') {
                s = rest;
            } else if let Some(after) = refwd_leader(s.as_bytes()) {
                s = &s[after..];
                reply = true;
            } else if let Some(after) = blob(s.as_bytes(), 0) {
                if s[after..].bytes().any(|b| b != b' ') {
                    s = &s[after..];
                } else {
                    break;
                }
            } else {
                break;
            }
        }
        // (6) "[fwd: ... ]" around the whole subject.
        let b = s.as_bytes();
        if b.len() >= 6 && b[..5].eq_ignore_ascii_case(b"[fwd:") && b.ends_with(b"]") {
            s = &s[5..s.len() - 1];
            reply = true;
            continue;
        }
        return (s.to_string(), reply);
    }
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP` starting at `at`: the offset after it.
fn blob(b: &[u8], at: usize) -> Option<usize> {
    if b.get(at) != Some(&b'[') {
        return None;
    }
    let mut i = at + 1;
    while let Some(&c) = b.get(i) {
        match c {
            b']' => {
                i += 1;
                while b.get(i) == Some(&b' ') {
                    i += 1;
                }
                return Some(i);
            }
            // BLOBCHAR is %x01-5a / %x5c / %x5e-7f: no brackets, no 8-bit bytes.
            b'[' | 0 | 0x80.. => return None,
            _ => i += 1,
        }
    }
    None
}

/// `*subj-blob subj-refwd` at the start, where `subj-refwd = ("re" / ("fw" ["d"])) *WSP
/// [subj-blob] ":"`: the offset after the colon.
fn refwd_leader(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(next) = blob(b, i) {
        i = next;
    }
    let word =
        |w: &[u8], i: usize| b.len() >= i + w.len() && b[i..i + w.len()].eq_ignore_ascii_case(w);
    i += if word(b"re", i) {
        2
    } else if word(b"fwd", i) {
        3
    } else if word(b"fw", i) {
        2
    } else {
        return None;
    };
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    if let Some(next) = blob(b, i) {
        i = next;
    }
    (b.get(i) == Some(&b':')).then_some(i + 1)
}

/// The i;unicode-casemap form of a string (RFC 5051), which SORT and THREAD compare
/// (RFC 5256 §1 by way of I18NLEVEL=1): each character in its title case (upper case
/// here: the two differ only for a few digraphs), then decomposed (NFKD), so that "é"
/// sorts beside "e".
pub fn casemap(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.chars().flat_map(char::to_uppercase).nfkd().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects_follow_rfc_5256() {
        let cases = [
            ("Hello", "Hello", false),
            ("Re: Hello", "Hello", true),
            ("RE:Hello", "Hello", true),
            ("Re: re: Fwd: Hello", "Hello", true),
            ("Fw: Hello", "Hello", true),
            ("Re [2]: Hello", "Hello", true),
            ("[list] Re: Hello", "Hello", true),
            ("[list] Hello", "Hello", false),
            ("[list]", "[list]", false),
            ("[a][b] Hello", "Hello", false),
            ("Hello (fwd)", "Hello", true),
            ("Hello (FWD) (fwd)  ", "Hello", true),
            ("[fwd: Hello]", "Hello", true),
            ("[Fwd: Re: [list] Hello (fwd)]", "Hello", true),
            ("Re:", "", true),
            ("  Hello \t\r\n  world  ", "Hello world", false),
            ("Reply", "Reply", false),
            ("Re: [ünï] Hello", "[ünï] Hello", true),
            ("", "", false),
        ];
        for (subject, base, reply) in cases {
            assert_eq!(
                base_subject(subject),
                (base.to_string(), reply),
                "{subject:?}"
            );
        }
    }

    #[test]
    fn keys_from_a_header() {
        let raw = b"From: \"Alice A.\" <alice@example.org>\r\n\
            To: undisclosed: ;, <@relay.test:bob@example.net>\r\n\
            Cc: group: (none) ;\r\n\
            Subject: =?utf-8?q?Re=3A_caf=C3=A9?=\r\n\
            Date: Tue, 1 Dec 2026 10:00:00 +0100\r\n\
            Message-ID: <m3@example.org>\r\n\
            In-Reply-To: <m2@example.org> <other@example.org>\r\n\
            \r\nbody\r\n";
        let keys = sort_keys(raw);
        assert_eq!(keys.subject, "café");
        assert!(keys.reply);
        assert_eq!(keys.sent, Some(1_796_115_600));
        assert_eq!(keys.from.mailbox, "alice");
        assert_eq!(keys.from.display, "Alice A.");
        assert_eq!(keys.to.mailbox, "undisclosed");
        let keys_to = sort_keys(b"To: <@relay.test:bob@example.net>\r\n\r\n").to;
        assert_eq!(keys_to.mailbox, "bob");
        assert_eq!(keys_to.display, "bob@example.net");
        assert_eq!(keys.cc.mailbox, "group");
        assert_eq!(keys.message_id.as_deref(), Some("m3@example.org"));
        assert_eq!(keys.references, ["m2@example.org"]);
        let keys = sort_keys(b"Subject: x\r\nReferences: <a@x> <b@x>\r\nIn-Reply-To: <c@x>\r\nDate: nonsense\r\n\r\n");
        assert_eq!(keys.references, ["a@x", "b@x"]);
        assert_eq!(keys.sent, None);
        assert_eq!(sort_keys(b""), SortKeys::default());
    }

    #[test]
    fn casemap_upper_cases() {
        assert_eq!(casemap("abc_Déf"), "ABC_DE\u{301}F");
        assert!(casemap("a") < casemap("_"));
        assert!(casemap("Ezra") < casemap("éclair") && casemap("Émile") < casemap("f"));
    }
}
