//! CATENATE (RFC 4469): `APPEND mailbox [flags] [date] CATENATE (part...)`, each part a
//! `TEXT` literal or a `URL` to a message or part of one on this server, in the IMAP URL
//! form of RFC 5092: `[imap://host]/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s]
//! [/;PARTIAL=a[.b]]`. URLAUTH URLs are not accepted.

use super::fetch::{parse_section, Section};
use super::{mailbox_name, parse_date_time, parse_flags, Flags, Value};

/// One part of a CATENATE message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatPart {
    Text(Vec<u8>),
    /// The URL as given (for `[BADURL url]`) and parsed, or `None` when it cannot be.
    Url(String, Option<ImapUrl>),
}

/// An APPEND whose message is put together from parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catenate {
    pub mailbox: String,
    pub flags: Flags,
    pub date: Option<i64>,
    pub parts: Vec<CatPart>,
}

/// What a URL points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapUrl {
    pub mailbox: String,
    pub uid_validity: Option<u32>,
    pub uid: u32,
    pub section: Option<Section>,
    pub partial: Option<(u32, u32)>,
}

/// Most parts one CATENATE takes.
const MAX_PARTS: usize = 64;

/// APPEND's arguments when they are a CATENATE; `Ok(None)` when they are not one.
pub fn catenate(args: &[Value], utf8: bool) -> Result<Option<Catenate>, String> {
    // After the mailbox: a mailbox may itself be called CATENATE.
    let Some(at) = catenate_at(args) else {
        return Ok(None);
    };
    let (Some(first), [Value::List(items)]) = (args.first(), &args[at + 1..]) else {
        return Err("CATENATE needs one list of parts, and is the only message".into());
    };
    let mailbox = mailbox_name(first, utf8)?;
    let mut flags = Flags::default();
    let mut date = None;
    for arg in &args[1..at] {
        match arg {
            Value::List(_) => flags = parse_flags(arg)?,
            Value::Str(_) => date = Some(arg.text().and_then(|t| parse_date_time(&t))?),
            Value::Atom(_) => return Err("Invalid APPEND argument".into()),
        }
    }
    let mut parts = Vec::new();
    let mut it = items.iter();
    while let Some(kind) = it.next() {
        let value = it.next().ok_or("A CATENATE part needs a value")?;
        let part = match (kind.atom().map(str::to_ascii_uppercase).as_deref(), value) {
            (Some("TEXT"), Value::Str(bytes)) => CatPart::Text(bytes.clone()),
            (Some("URL"), Value::Str(_) | Value::Atom(_)) => {
                let text = value.text()?;
                let parsed = imap_url(&text);
                CatPart::Url(text, parsed)
            }
            _ => return Err("CATENATE parts are TEXT literal or URL string".into()),
        };
        parts.push(part);
        if parts.len() > MAX_PARTS {
            return Err(format!("At most {MAX_PARTS} CATENATE parts"));
        }
    }
    if parts.is_empty() {
        return Err("CATENATE needs at least one part".into());
    }
    Ok(Some(Catenate {
        mailbox,
        flags,
        date,
        parts,
    }))
}

/// Where the `CATENATE` atom is among APPEND's arguments (never the mailbox, first).
pub fn catenate_at(args: &[Value]) -> Option<usize> {
    args.iter()
        .skip(1)
        .position(|v| matches!(v, Value::Atom(a) if a.eq_ignore_ascii_case("CATENATE")))
        .map(|p| p + 1)
}

/// `%XX` decoding; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses an IMAP URL to a message on this server (see the module doc).
pub fn imap_url(text: &str) -> Option<ImapUrl> {
    let path = match text.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("imap://") => {
            let rest = &text[7..];
            let slash = rest.find('/')?;
            // `user@host`: a URL for some (maybe other) user's mailbox is not ours to follow.
            if rest[..slash].contains('@') {
                return None;
            }
            &rest[slash..]
        }
        _ => text,
    };
    let path = path.strip_prefix('/')?;
    // `mailbox[;UIDVALIDITY=n]`, then `/;UID=n`, then optional `/;SECTION=`, `/;PARTIAL=`.
    let mut segments = path.split("/;");
    let first = segments.next()?;
    let (mailbox, validity) = match first.to_ascii_uppercase().find(";UIDVALIDITY=") {
        Some(at) => (&first[..at], Some(first[at + 13..].parse::<u32>().ok()?)),
        None => (first, None),
    };
    let mailbox = percent_decode(mailbox)?;
    let mut mailbox = super::super::mutf7::decode(&mailbox).unwrap_or(mailbox);
    if mailbox.eq_ignore_ascii_case("INBOX") {
        mailbox = "INBOX".into();
    }
    let mut url = ImapUrl {
        mailbox,
        uid_validity: validity,
        uid: 0,
        section: None,
        partial: None,
    };
    for segment in segments {
        let (key, value) = segment.split_once('=')?;
        match key.to_ascii_uppercase().as_str() {
            "UID" if url.uid == 0 => url.uid = value.parse().ok().filter(|&u| u > 0)?,
            "SECTION" if url.uid > 0 && url.section.is_none() => {
                url.section =
                    Some(parse_section(&percent_decode(value)?.to_ascii_uppercase()).ok()?)
            }
            "PARTIAL" if url.uid > 0 && url.partial.is_none() => {
                let (start, length) = match value.split_once('.') {
                    Some((s, l)) => (s.parse().ok()?, l.parse().ok()?),
                    None => (value.parse().ok()?, u32::MAX),
                };
                url.partial = Some((start, length));
            }
            _ => return None,
        }
    }
    (url.uid > 0).then_some(url)
}

#[cfg(test)]
mod tests {
    use super::super::parse_command;
    use super::*;

    #[test]
    fn urls() {
        let url = imap_url("/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER").unwrap();
        assert_eq!(url.mailbox, "Drafts");
        assert_eq!(url.uid_validity, Some(385759045));
        assert_eq!(url.uid, 20);
        assert_eq!(url.section, Some(Section::Header));
        let url = imap_url("imap://mx.test/INBOX/;UID=3/;SECTION=1.2/;PARTIAL=0.1024").unwrap();
        assert_eq!(
            url.section,
            Some(Section::Part(vec![1, 2], Box::new(Section::Full)))
        );
        assert_eq!(url.partial, Some((0, 1024)));
        assert_eq!(imap_url("/a%20b%26AOQ-/;UID=1").unwrap().mailbox, "a bä");
        for bad in [
            "/INBOX",
            "INBOX/;UID=1",
            "/INBOX/;UID=0",
            "/INBOX/;UID=x",
            "/INBOX;UIDVALIDITY=x/;UID=1",
            "/INBOX/;UID=1/;URLAUTH=anonymous:internal:x",
            "/INBOX/;UID=1/;SECTION=BOGUS",
            "/INBOX/;UID=1/;UID=2",
            "/a%2/;UID=1",
            "imap://nohost",
            "imap://bob@mx.test/INBOX/;UID=1",
        ] {
            assert_eq!(imap_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn catenate_arguments() {
        let c = parse_command(
            b"a APPEND Drafts (\\Seen) CATENATE (URL \"/Drafts/;UID=2\" TEXT {3}\r\nabc)",
        )
        .unwrap();
        let cat = catenate(&c.args, false).unwrap().unwrap();
        assert_eq!(cat.mailbox, "Drafts");
        assert_eq!(cat.parts.len(), 2);
        assert_eq!(cat.parts[1], CatPart::Text(b"abc".to_vec()));
        assert!(matches!(&cat.parts[0], CatPart::Url(u, Some(_)) if u == "/Drafts/;UID=2"));
        let c = parse_command(b"a APPEND Drafts (\\Seen)").unwrap();
        assert_eq!(catenate(&c.args, false), Ok(None));
        // A mailbox called CATENATE is a mailbox (this used to panic).
        let c = parse_command(b"a APPEND CATENATE (x)").unwrap();
        assert_eq!(catenate(&c.args, false), Ok(None));
        assert_eq!(imap_url("/inbox/;UID=1").unwrap().mailbox, "INBOX");
        for bad in [
            &b"a APPEND Drafts CATENATE ()"[..],
            b"a APPEND Drafts CATENATE (TEXT)",
            b"a APPEND Drafts CATENATE (BOGUS x)",
            b"a APPEND Drafts CATENATE URL x",
        ] {
            let c = parse_command(bad).unwrap();
            assert!(
                catenate(&c.args, false).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
