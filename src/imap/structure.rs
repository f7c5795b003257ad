//! ENVELOPE and BODYSTRUCTURE (RFC 3501 §7.4.2) from mail-parser's MIME tree.
//!
//! Computed once per stored message ([`meta`], called by the store when it writes the
//! bytes) and kept in the `message_meta` database.

use super::encode::quote;
use super::message::section_bytes;
use super::parse::Section;
use crate::store::MessageMeta;
use mail_parser::{Address, HeaderName, Message, MessageParser, MimeHeaders, PartType};

/// Deepest MIME nesting described; deeper parts are shown as application/octet-stream.
const MAX_DEPTH: usize = 16;

fn nstring(s: Option<&str>) -> String {
    match s {
        Some(s) => quote(s.trim()),
        None => "NIL".into(),
    }
}

/// ENVELOPE, BODY and BODYSTRUCTURE of a message, parsed once.
pub fn meta(raw: &[u8]) -> MessageMeta {
    let (envelope, body, bodystructure) = match MessageParser::default().parse(raw) {
        Some(message) => (
            envelope(&message),
            structure(&message, 0, false, 0),
            structure(&message, 0, true, 0),
        ),
        None => {
            let (e, b) = describe(raw, false);
            (e, b.clone(), b)
        }
    };
    MessageMeta {
        envelope,
        body,
        bodystructure,
    }
}

/// The ENVELOPE and BODYSTRUCTURE of a message; `extended` false gives the BODY form.
pub fn describe(raw: &[u8], extended: bool) -> (String, String) {
    match MessageParser::default().parse(raw) {
        Some(message) => (envelope(&message), structure(&message, 0, extended, 0)),
        None => (
            "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)".into(),
            format!(
                "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" {} {})",
                raw.len(),
                line_count(raw)
            ),
        ),
    }
}

/// Lines of a body: its LFs, plus an unterminated last line (a part's final CRLF belongs
/// to the following boundary).
fn line_count(raw: &[u8]) -> usize {
    let lfs = raw.iter().filter(|&&b| b == b'\n').count();
    lfs + usize::from(!raw.is_empty() && !raw.ends_with(b"\n"))
}

fn addresses(address: Option<&Address>) -> String {
    let mut out = Vec::new();
    let push = |out: &mut Vec<String>, name: Option<&str>, address: Option<&str>| {
        let address = address.unwrap_or("");
        let (local, host) = match address.rsplit_once('@') {
            Some((l, h)) => (Some(l), Some(h)),
            None => (Some(address), None),
        };
        out.push(format!(
            "({} NIL {} {})",
            nstring(name),
            nstring(local),
            nstring(host)
        ));
    };
    match address {
        None => return "NIL".into(),
        Some(Address::List(list)) => {
            for a in list {
                push(&mut out, a.name.as_deref(), a.address.as_deref());
            }
        }
        Some(Address::Group(groups)) => {
            for g in groups {
                if let Some(name) = g.name.as_deref() {
                    out.push(format!("(NIL NIL {} NIL)", quote(name)));
                }
                for a in &g.addresses {
                    push(&mut out, a.name.as_deref(), a.address.as_deref());
                }
                if g.name.is_some() {
                    out.push("(NIL NIL NIL NIL)".into());
                }
            }
        }
    }
    if out.is_empty() {
        "NIL".into()
    } else {
        format!("({})", out.concat())
    }
}

fn envelope(m: &Message) -> String {
    let from = addresses(m.from());
    let sender = m
        .sender()
        .map_or_else(|| from.clone(), |a| addresses(Some(a)));
    let reply_to = m
        .reply_to()
        .map_or_else(|| from.clone(), |a| addresses(Some(a)));
    format!(
        "({} {} {} {} {} {} {} {} {} {})",
        nstring(m.header_raw(HeaderName::Date)),
        nstring(m.header_raw(HeaderName::Subject)),
        from,
        sender,
        reply_to,
        addresses(m.to()),
        addresses(m.cc()),
        addresses(m.bcc()),
        nstring(m.header_raw(HeaderName::InReplyTo)),
        nstring(m.header_raw(HeaderName::MessageId)),
    )
}

fn structure(m: &Message, id: usize, extended: bool, depth: usize) -> String {
    let Some(part) = m.parts.get(id) else {
        return "(\"text\" \"plain\" NIL NIL NIL \"7bit\" 0 0)".into();
    };
    let content_type = part.content_type();
    let (ctype, subtype) = match content_type {
        Some(ct) => (
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().map(str::to_ascii_lowercase),
        ),
        None if part.is_multipart() => ("multipart".into(), Some("mixed".into())),
        None => ("text".into(), Some("plain".into())),
    };
    let params = match content_type.and_then(|ct| ct.attributes()) {
        Some(attrs) if !attrs.is_empty() => format!(
            "({})",
            attrs
                .iter()
                .map(|a| format!("{} {}", quote(&a.name), quote(&a.value)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        _ if ctype == "text" => "(\"charset\" \"us-ascii\")".into(),
        _ => "NIL".into(),
    };
    if let PartType::Multipart(children) = &part.body {
        if depth < MAX_DEPTH {
            let mut out = String::from("(");
            for child in children {
                out.push_str(&structure(m, *child as usize, extended, depth + 1));
            }
            if children.is_empty() {
                out.push_str("(\"text\" \"plain\" NIL NIL NIL \"7bit\" 0 0)");
            }
            out.push(' ');
            out.push_str(&quote(subtype.as_deref().unwrap_or("mixed")));
            if extended {
                out.push(' ');
                out.push_str(&params);
            }
            out.push(')');
            return out;
        }
    }
    let raw = m
        .raw_message
        .get(part.offset_body as usize..part.offset_end as usize)
        .unwrap_or_default();
    let lines = line_count(raw);
    let encoding = part
        .content_transfer_encoding()
        .map_or_else(|| "7bit".to_string(), str::to_ascii_lowercase);
    let mut out = format!(
        "({} {} {} {} {} {} {}",
        quote(&ctype),
        quote(subtype.as_deref().unwrap_or("plain")),
        params,
        nstring(part.content_id()),
        nstring(part.content_description()),
        quote(&encoding),
        raw.len()
    );
    match &part.body {
        PartType::Message(inner) if ctype == "message" && depth < MAX_DEPTH => {
            out.push_str(&format!(
                " {} {} {lines}",
                envelope(inner),
                structure(inner, 0, extended, depth + 1)
            ));
        }
        _ if ctype == "text" => out.push_str(&format!(" {lines}")),
        _ => {}
    }
    out.push(')');
    out
}

/// The bytes of MIME part `path` (RFC 3501 §6.4.5 part numbering): its body, its MIME
/// header, or for an attached message that message's header/text/fields. Empty when the
/// part does not exist.
pub fn part_bytes(raw: &[u8], path: &[u32], inner: &Section) -> Vec<u8> {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Vec::new();
    };
    let mut msg = &message;
    let mut id = 0usize;
    for (i, &n) in path.iter().enumerate() {
        let Some(part) = msg.parts.get(id) else {
            return Vec::new();
        };
        if i > 0 {
            match &part.body {
                PartType::Message(nested) => {
                    msg = nested;
                    id = 0;
                }
                PartType::Multipart(_) => {}
                _ => return Vec::new(),
            }
        }
        let Some(part) = msg.parts.get(id) else {
            return Vec::new();
        };
        match &part.body {
            PartType::Multipart(children) => {
                match (n as usize).checked_sub(1).and_then(|i| children.get(i)) {
                    Some(&child) => id = child as usize,
                    None => return Vec::new(),
                }
            }
            _ if n == 1 => {}
            _ => return Vec::new(),
        }
    }
    let Some(part) = msg.parts.get(id) else {
        return Vec::new();
    };
    let slice = |from: u32, to: u32| {
        msg.raw_message
            .get(from as usize..to as usize)
            .unwrap_or_default()
            .to_vec()
    };
    match inner {
        Section::Full => slice(part.offset_body, part.offset_end),
        Section::Mime => slice(part.offset_header, part.offset_body),
        Section::Part(..) => Vec::new(),
        other => match &part.body {
            PartType::Message(nested) => match nested.parts.first() {
                Some(root) => {
                    let bytes = nested
                        .raw_message
                        .get(root.offset_header as usize..root.offset_end as usize)
                        .unwrap_or_default();
                    section_bytes(bytes, other)
                }
                None => Vec::new(),
            },
            _ => Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_message() {
        let raw = b"From: Alice <alice@example.org>\r\nTo: bob@example.org, \"Carol C\" <carol@example.net>\r\nSubject: Hi there\r\nMessage-ID: <1@x>\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\nline 1\r\nline 2\r\n";
        let (env, body) = describe(raw, true);
        assert_eq!(
            env,
            "(\"Mon, 01 Jan 2024 00:00:00 +0000\" \"Hi there\" ((\"Alice\" NIL \"alice\" \"example.org\")) ((\"Alice\" NIL \"alice\" \"example.org\")) ((\"Alice\" NIL \"alice\" \"example.org\")) ((NIL NIL \"bob\" \"example.org\")(\"Carol C\" NIL \"carol\" \"example.net\")) NIL NIL NIL \"<1@x>\")"
        );
        assert_eq!(
            body,
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 16 2)"
        );
    }

    #[test]
    fn part_sections() {
        let raw = b"Subject: outer\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--XX--\r\n";
        assert_eq!(part_bytes(raw, &[1], &Section::Full), b"hello");
        assert_eq!(
            part_bytes(raw, &[1], &Section::Mime),
            b"Content-Type: text/plain\r\n\r\n"
        );
        assert_eq!(
            part_bytes(raw, &[2], &Section::Header),
            b"Subject: inner\r\n\r\n"
        );
        assert_eq!(part_bytes(raw, &[2], &Section::Text), b"inner body");
        assert_eq!(part_bytes(raw, &[2, 1], &Section::Full), b"inner body");
        assert!(part_bytes(raw, &[3], &Section::Full).is_empty());
        assert!(part_bytes(raw, &[1, 1], &Section::Full).is_empty());
        let single = b"Subject: s\r\n\r\nbody\r\n";
        assert_eq!(part_bytes(single, &[1], &Section::Full), b"body\r\n");
    }

    #[test]
    fn multipart_message() {
        let raw = b"From: a@b.c\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n--XX\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--XX--\r\n";
        let (_, body) = describe(raw, true);
        assert!(
            body.starts_with("((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\""),
            "{body}"
        );
        assert!(
            body.contains("(\"application\" \"pdf\" NIL NIL NIL \"base64\""),
            "{body}"
        );
        assert!(
            body.ends_with(" \"mixed\" (\"boundary\" \"XX\"))"),
            "{body}"
        );
        let (_, plain) = describe(raw, false);
        assert!(plain.ends_with(" \"mixed\")"), "{plain}");
    }
}
