//! Binary MIME parts made storable for IMAP: a part sent with
//! `Content-Transfer-Encoding: binary` (BINARY's literal8 APPEND, RFC 3516), or holding
//! NUL bytes under 7bit/8bit, is rewritten as base64 before it is stored. An IMAP4rev1
//! literal may not carry NUL (RFC 3501 §4.3), so BODY[] of such a part could not be sent
//! as stored; BINARY[] still returns the original octets, decoded. Dovecot stores such
//! parts the same way.

use base64::Engine;
use mail_parser::{MessageParser, MimeHeaders, PartType};

/// Line length of the base64 written (RFC 2045 §6.8 allows at most 76).
const BASE64_LINE: usize = 76;

/// The message with its binary leaf parts turned into base64, or `None` when it has
/// none (the common case: a quick scan decides before any parsing). Parts inside an
/// attached message are left as they are.
pub fn encode_binary_parts(raw: &[u8]) -> Option<Vec<u8>> {
    let mentions_binary = raw.windows(6).any(|w| w.eq_ignore_ascii_case(b"binary"));
    if !raw.contains(&0) && !mentions_binary {
        return None;
    }
    let message = MessageParser::default().parse(raw)?;
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for part in &message.parts {
        if matches!(part.body, PartType::Multipart(_) | PartType::Message(_)) {
            continue;
        }
        let (start, body_start, end) = (
            part.offset_header as usize,
            part.offset_body as usize,
            part.offset_end as usize,
        );
        let (Some(header), Some(body)) = (raw.get(start..body_start), raw.get(body_start..end))
        else {
            continue;
        };
        let encoding = part
            .content_transfer_encoding()
            .unwrap_or("")
            .to_ascii_lowercase();
        let binary = encoding == "binary"
            || (matches!(encoding.as_str(), "" | "7bit" | "8bit") && body.contains(&0));
        if !binary {
            continue;
        }
        let mut rewritten = Vec::with_capacity(header.len() + body.len() * 4 / 3 + 64);
        for field in super::fields(header) {
            if !field.is("Content-Transfer-Encoding") {
                rewritten.extend_from_slice(field.raw);
            }
        }
        rewritten.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n\r\n");
        let encoded = base64::engine::general_purpose::STANDARD.encode(body);
        for (i, line) in encoded.as_bytes().chunks(BASE64_LINE).enumerate() {
            if i > 0 {
                rewritten.extend_from_slice(b"\r\n");
            }
            rewritten.extend_from_slice(line);
        }
        // A single-part message's body runs to the end: end it with a line break.
        if end == raw.len() && start == 0 {
            rewritten.extend_from_slice(b"\r\n");
        }
        edits.push((start, end, rewritten));
    }
    if edits.is_empty() {
        return None;
    }
    edits.sort_by_key(|e| e.0);
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 3);
    let mut at = 0;
    for (start, end, replacement) in edits {
        if start < at {
            continue;
        }
        out.extend_from_slice(&raw[at..start]);
        out.extend_from_slice(&replacement);
        at = end;
    }
    out.extend_from_slice(&raw[at..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_parts_become_base64() {
        let raw = b"Subject: b\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n\
            --zz\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
            --zz\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\
            AB\0CD\0\r\nEF\r\n--zz--\r\n";
        let out = encode_binary_parts(raw).unwrap();
        let expected = b"Subject: b\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n\
            --zz\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
            --zz\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
            QUIAQ0QADQpFRg==\r\n--zz--\r\n";
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(expected)
        );
        // Nothing binary: nothing to do, not even a parse.
        assert!(encode_binary_parts(b"Subject: x\r\n\r\nplain text\r\n").is_none());
        assert!(encode_binary_parts(b"Subject: binary\r\n\r\nplain text\r\n").is_none());
        // NUL in a single-part 8bit message.
        let single = b"Subject: s\r\nContent-Transfer-Encoding: 8bit\r\n\r\na\0b";
        assert_eq!(
            encode_binary_parts(single).unwrap(),
            b"Subject: s\r\nContent-Transfer-Encoding: base64\r\n\r\nYQBi\r\n"
        );
        let long = [
            b"Subject: l\r\nContent-Transfer-Encoding: binary\r\n\r\n".as_slice(),
            &[0u8; 100],
        ]
        .concat();
        let out = encode_binary_parts(&long).unwrap();
        let body = &out[out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
        assert!(body
            .split(|&b| b == b'\n')
            .all(|l| l.len() <= BASE64_LINE + 1));
    }
}
