//! The header/body split and the header-field iterator (see the module doc of
//! [`crate::mail`] for the edge cases).

/// Where a message's header block ends and its body begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// End of the header fields, after the last field's line terminator.
    pub header_end: usize,
    /// Start of the body, after the empty line (equal to `header_end` when there is none).
    pub body_start: usize,
}

impl Split {
    /// The header fields, without the empty line.
    pub fn header<'a>(&self, message: &'a [u8]) -> &'a [u8] {
        &message[..self.header_end]
    }

    /// The header fields and the empty line (IMAP's `BODY[HEADER]`).
    pub fn header_block<'a>(&self, message: &'a [u8]) -> &'a [u8] {
        &message[..self.body_start]
    }

    pub fn body<'a>(&self, message: &'a [u8]) -> &'a [u8] {
        &message[self.body_start..]
    }
}

/// Splits `message` at its first empty line.
pub fn split(message: &[u8]) -> Split {
    let mut start = 0;
    while start < message.len() {
        let end = line_end(message, start);
        let line = &message[start..end];
        if line == b"\n" || line == b"\r\n" {
            return Split {
                header_end: start,
                body_start: end,
            };
        }
        start = end;
    }
    Split {
        header_end: message.len(),
        body_start: message.len(),
    }
}

/// The header fields of a message, without the empty line (all of it if it has no body).
pub fn header_of(message: &[u8]) -> &[u8] {
    split(message).header(message)
}

/// One header field: its first line and any continuation lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The whole field as written, continuation lines and final terminator included.
    pub raw: &'a [u8],
}

impl<'a> Field<'a> {
    /// The field name, trimmed; empty when the line has no colon or the name is not UTF-8.
    pub fn name(&self) -> &'a str {
        let Some(colon) = self.raw.iter().position(|&b| b == b':') else {
            return "";
        };
        std::str::from_utf8(&self.raw[..colon]).map_or("", str::trim)
    }

    /// Whether this field is called `name` (ASCII case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.name().eq_ignore_ascii_case(name)
    }

    /// The raw value after the colon, folding intact.
    pub fn raw_value(&self) -> &'a [u8] {
        match self.raw.iter().position(|&b| b == b':') {
            Some(colon) => &self.raw[colon + 1..],
            None => &[],
        }
    }

    /// The value unfolded (CRLF/LF before whitespace removed, RFC 5322 §2.2.3) and trimmed.
    pub fn value(&self) -> Vec<u8> {
        let raw = self.raw_value();
        let mut out = Vec::with_capacity(raw.len());
        for &b in raw {
            if b != b'\r' && b != b'\n' {
                out.push(b);
            }
        }
        let start = out.iter().position(|b| !b.is_ascii_whitespace());
        let end = out.iter().rposition(|b| !b.is_ascii_whitespace());
        match (start, end) {
            (Some(s), Some(e)) => out[s..=e].to_vec(),
            _ => Vec::new(),
        }
    }
}

/// The fields of a header block (pass [`Split::header`] or [`Split::header_block`]; an
/// empty line ends the iteration).
pub fn fields(header: &[u8]) -> Fields<'_> {
    Fields { header, pos: 0 }
}

pub struct Fields<'a> {
    header: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let h = self.header;
        let start = self.pos;
        if start >= h.len() || h[start] == b'\n' || h[start..].starts_with(b"\r\n") {
            return None;
        }
        let mut end = line_end(h, start);
        while end < h.len() && matches!(h[end], b' ' | b'\t') {
            end = line_end(h, end);
        }
        self.pos = end;
        Some(Field {
            raw: &h[start..end],
        })
    }
}

/// The index after the LF that ends the line starting at `start` (or the end).
fn line_end(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |p| start + p + 1)
}

/// RFC 2047 encoded words decoded, by mail-parser's decoder (as if the text were a
/// Subject).
pub fn decode_words(text: &str) -> String {
    if !text.contains("=?") {
        return text.to_string();
    }
    let header = format!("Subject: {text}\r\n\r\n");
    mail_parser::MessageParser::new()
        .parse_headers(header.as_bytes())
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_else(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (header fields, empty line, body)
    type Parts<'a> = (&'a [u8], &'a [u8], &'a [u8]);

    fn parts(m: &[u8]) -> Parts<'_> {
        let s = split(m);
        (s.header(m), &m[s.header_end..s.body_start], s.body(m))
    }

    #[test]
    fn split_edge_cases() {
        let cases: &[(&[u8], Parts)] = &[
            (b"A: 1\r\n\r\nbody\r\n", (b"A: 1\r\n", b"\r\n", b"body\r\n")),
            // No body: all header.
            (b"A: 1\r\nB: 2\r\n", (b"A: 1\r\nB: 2\r\n", b"", b"")),
            (b"A: 1", (b"A: 1", b"", b"")),
            // A leading empty line: no header at all.
            (b"\r\nbody", (b"", b"\r\n", b"body")),
            (b"\nbody", (b"", b"\n", b"body")),
            // Bare LF.
            (b"A: 1\n\nbody\n", (b"A: 1\n", b"\n", b"body\n")),
            // Mixed: the first empty line wins, whichever terminator it has.
            (b"A: 1\n\r\nB\r\n\r\nC", (b"A: 1\n", b"\r\n", b"B\r\n\r\nC")),
            // Empty body after the empty line.
            (b"A: 1\r\n\r\n", (b"A: 1\r\n", b"\r\n", b"")),
            (b"", (b"", b"", b"")),
        ];
        for (message, expected) in cases {
            assert_eq!(
                parts(message),
                *expected,
                "{:?}",
                String::from_utf8_lossy(message)
            );
        }
    }

    #[test]
    fn fields_unfold_and_keep_odd_lines() {
        let header =
            b"Subject: a\r\n long\r\n\tsubject\r\nX-No-Colon\r\nTo:  b@c \r\n\r\nBody: no\r\n";
        let all: Vec<Field> = fields(header).collect();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].name(), "Subject");
        assert_eq!(all[0].raw, b"Subject: a\r\n long\r\n\tsubject\r\n");
        assert_eq!(all[0].value(), b"a long\tsubject");
        assert_eq!(all[1].name(), "");
        assert_eq!(all[1].raw, b"X-No-Colon\r\n");
        assert!(all[2].is("to"));
        assert_eq!(all[2].value(), b"b@c");
        assert_eq!(all[2].raw_value(), b"  b@c \r\n");
    }

    #[test]
    fn fields_of_bare_lf_and_unterminated_headers() {
        let names: Vec<&str> = fields(b"A: 1\n b\nB: 2").map(|f| f.name()).collect();
        assert_eq!(names, ["A", "B"]);
        assert_eq!(fields(b"A: 1\n b\nB: 2").next().unwrap().value(), b"1 b");
        assert_eq!(fields(b"\r\nA: 1").count(), 0);
        assert_eq!(fields(b"").count(), 0);
    }
}
