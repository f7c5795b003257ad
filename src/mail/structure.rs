//! The IMAP description of a message: ENVELOPE, BODY and BODYSTRUCTURE (RFC 3501
//! §7.4.2, RFC 9051 §7.5.2) from mail-parser's MIME tree.
//!
//! Computed once per stored message, before the store's write transaction (by
//! [`crate::delivery`] and IMAP APPEND through `Incoming::describe`, or at the first
//! FETCH for large messages), and kept in the `message_meta` database. It lives here, not
//! in IMAP, because delivery computes it: the format is IMAP's, the work is the message's.

use mail_parser::{HeaderName, HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use serde::{Deserialize, Serialize};

/// What IMAP FETCH ENVELOPE / BODY / BODYSTRUCTURE return for a message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageMeta {
    pub envelope: String,
    pub body: String,
    pub bodystructure: String,
}

/// A string as an IMAP quoted string when that is safe, else as a literal (RFC 9051
/// §4.3): CR, LF and 8-bit bytes cannot be quoted. The IMAP encoder uses this one too.
pub fn quote(s: &str) -> String {
    if s.bytes().any(|b| b == b'\r' || b == b'\n' || b >= 0x80) {
        format!("{{{}}}\r\n{s}", s.len())
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

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

/// Lines of a body: its line breaks. A part's last line, whose CRLF belongs to the
/// boundary after it, is not counted: Dovecot counts so too.
fn line_count(raw: &[u8]) -> usize {
    raw.iter().filter(|&&b| b == b'\n').count()
}

/// An address list as ENVELOPE shows it: `((name adl mailbox host)...)`, groups as
/// `(NIL NIL name NIL)` ... `(NIL NIL NIL NIL)` (RFC 3501 §7.4.2), from the raw field.
fn addresses(raw: Option<&[u8]>) -> String {
    use super::address::{parse, Entry};
    let Some(raw) = raw else {
        return "NIL".into();
    };
    let mut out = String::new();
    for entry in parse(raw) {
        match entry {
            // A NIL host would read as a group marker (RFC 3501 §7.4.2): an address
            // without a domain gets Dovecot's placeholder.
            Entry::Mailbox(m) => out.push_str(&format!(
                "({} {} {} {})",
                nstring(m.name.as_deref()),
                nstring(m.route.as_deref()),
                quote(&m.local),
                quote(m.domain.as_deref().unwrap_or("MISSING_DOMAIN"))
            )),
            Entry::GroupStart(name) => out.push_str(&format!("(NIL NIL {} NIL)", quote(&name))),
            Entry::GroupEnd => out.push_str("(NIL NIL NIL NIL)"),
        }
    }
    if out.is_empty() {
        "NIL".into()
    } else {
        format!("({out})")
    }
}

fn envelope(m: &Message) -> String {
    // The field's bytes as written (8-bit ones too, which `header_raw` would refuse).
    let field = |name: HeaderName| {
        let header = m.parts.first()?.headers.iter().find(|h| h.name == name)?;
        m.raw_message
            .get(header.offset_start as usize..header.offset_end as usize)
    };
    let field = |name: HeaderName| addresses(field(name));
    let from = field(HeaderName::From);
    // Sender and Reply-To default to From (RFC 3501 §7.4.2).
    let or_from = |list: String| if list == "NIL" { from.clone() } else { list };
    let sender = or_from(field(HeaderName::Sender));
    let reply_to = or_from(field(HeaderName::ReplyTo));
    format!(
        "({} {} {} {} {} {} {} {} {} {})",
        nstring(m.header_raw(HeaderName::Date)),
        nstring(m.header_raw(HeaderName::Subject)),
        from,
        sender,
        reply_to,
        field(HeaderName::To),
        field(HeaderName::Cc),
        field(HeaderName::Bcc),
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
    let params = match param_list(content_type.and_then(|ct| ct.attributes())) {
        Some(list) => list,
        None if ctype == "text" => "(\"charset\" \"us-ascii\")".into(),
        None => "NIL".into(),
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
                out.push_str(&extension(part));
            }
            out.push(')');
            return out;
        }
    }
    let raw = m
        .raw_message
        .get(part.offset_body as usize..part.offset_end as usize)
        .unwrap_or_default();
    // The stored value keeps its angle brackets (RFC 2045 §7), as Dovecot sends it.
    let content_id = part.content_id().map(|id| format!("<{id}>"));
    let lines = line_count(raw);
    let encoding = part
        .content_transfer_encoding()
        .map_or_else(|| "7bit".to_string(), str::to_ascii_lowercase);
    let mut out = format!(
        "({} {} {} {} {} {} {}",
        quote(&ctype),
        quote(subtype.as_deref().unwrap_or("plain")),
        params,
        nstring(content_id.as_deref()),
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
    if extended {
        let md5 = part
            .headers
            .iter()
            .find(|h| h.name.as_str().eq_ignore_ascii_case("Content-MD5"))
            .and_then(|h| h.value.as_text());
        out.push(' ');
        out.push_str(&nstring(md5));
        out.push_str(&extension(part));
    }
    out.push(')');
    out
}

/// `("name" "value" ...)` of a Content-Type or Content-Disposition; `None` without any.
fn param_list(attrs: Option<&[mail_parser::Attribute]>) -> Option<String> {
    let attrs = attrs.filter(|a| !a.is_empty())?;
    let pairs: Vec<String> = attrs
        .iter()
        .map(|a| format!("{} {}", quote(&a.name), quote(&a.value)))
        .collect();
    Some(format!("({})", pairs.join(" ")))
}

/// body-fld-dsp, body-fld-lang and body-fld-loc (RFC 3501 §7.4.2), each after a space.
fn extension(part: &mail_parser::MessagePart) -> String {
    let disposition = match part.content_disposition() {
        Some(d) => {
            let params = param_list(d.attributes()).unwrap_or_else(|| "NIL".into());
            format!("({} {params})", quote(d.ctype()))
        }
        None => "NIL".into(),
    };
    let language = match part.content_language() {
        HeaderValue::Text(l) => quote(l),
        HeaderValue::TextList(list) if !list.is_empty() => format!(
            "({})",
            list.iter().map(|l| quote(l)).collect::<Vec<_>>().join(" ")
        ),
        _ => "NIL".into(),
    };
    format!(
        " {disposition} {language} {}",
        nstring(part.content_location())
    )
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
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 16 2 NIL NIL NIL NIL)"
        );
    }

    #[test]
    fn groups_and_routes_follow_rfc_3501() {
        // Issue 11: an empty group with a comment made a phantom address, and a source
        // route landed in the mailbox field.
        let raw = b"From: <@route.example:user@domain.example>\r\n\
            To: group1: a@b.example;, group2: (foo) ;\r\n\r\nx\r\n";
        let (env, _) = describe(raw, false);
        assert!(
            env.contains("((NIL \"@route.example\" \"user\" \"domain.example\"))"),
            "{env}"
        );
        assert!(
            env.contains(
                "((NIL NIL \"group1\" NIL)(NIL NIL \"a\" \"b.example\")(NIL NIL NIL NIL)\
                 (NIL NIL \"group2\" NIL)(NIL NIL NIL NIL))"
            ),
            "{env}"
        );
    }

    #[test]
    fn eight_bit_address_fields_keep_their_addresses() {
        let raw = b"From: J\xf6rg <j@x.test>\r\nTo: a@b.test <a@b.test>\r\n\r\nx\r\n";
        let (env, _) = describe(raw, false);
        assert!(env.contains("NIL \"j\" \"x.test\"))"), "{env}");
        assert!(
            env.contains("((\"a@b.test\" NIL \"a\" \"b.test\"))"),
            "{env}"
        );
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
            body.ends_with(" \"mixed\" (\"boundary\" \"XX\") NIL NIL NIL)"),
            "{body}"
        );
        let (_, plain) = describe(raw, false);
        assert!(plain.ends_with(" \"mixed\")"), "{plain}");
    }
}
