//! MIME part sections for FETCH `BODY[1.2.MIME]` and friends (RFC 3501 §6.4.5), located
//! with mail-parser's part offsets.

use super::message::section_bytes;
use super::parse::Section;
use mail_parser::{MessageParser, PartType};

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
        // The attached message is the part's whole body: its TEXT runs to the part's end,
        // past any closing boundary of its own, epilogue included.
        other => match &part.body {
            PartType::Message(_) => section_bytes(&slice(part.offset_body, part.offset_end), other),
            _ => Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // An attached multipart message keeps its epilogue in TEXT.
        let nested = b"Content-Type: multipart/mixed; boundary=A\r\n\r\n--A\r\n\
            Content-Type: message/rfc822\r\n\r\n\
            Subject: in\r\nContent-Type: multipart/alternative; boundary=B\r\n\r\n\
            --B\r\n\r\none\r\n--B--\r\nthe epilogue\r\n--A--\r\n";
        assert_eq!(
            part_bytes(nested, &[1], &Section::Text),
            b"--B\r\n\r\none\r\n--B--\r\nthe epilogue"
        );
        let single = b"Subject: s\r\n\r\nbody\r\n";
        assert_eq!(part_bytes(single, &[1], &Section::Full), b"body\r\n");
    }
}
