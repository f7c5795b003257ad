//! Dot-terminated data (SMTP DATA, RFC 5321 §4.1.1.4 and §4.5.2; POP3 multi-line
//! responses, RFC 1939 §3): a pure decoder that removes dot-stuffing and finds the end of
//! the message, and the matching encoder for sending stored mail.
//!
//! Only `<CRLF>.<CRLF>` ends a message. A bare LF or bare CR never ends one, so a message
//! cannot smuggle a second SMTP transaction past a server that reads line endings
//! differently (the "SMTP smuggling" class). A bare LF and a bare CR both end a line and
//! are stored as CRLF, so stored mail is always RFC 5322 line-terminated and a relayed
//! message can never carry `<CR>.<CR>` to a next hop that reads CR as a line end (Postfix's
//! `smtpd_forbid_bare_newline = normalize` does the same for LF). A line starting with a
//! dot has that dot removed, whatever ended the line before it. The encoder for SMTP
//! ([`DotStuffer::for_smtp`]) also writes bare LF and bare CR as CRLF, for stored mail
//! that did not come through DATA (BDAT, APPEND, sendmail).

/// Where the decoder is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Inside a line.
    Text,
    /// Just after a CR inside a line.
    Cr,
    /// At the start of a line; `after_crlf` tells if the previous line ended with CRLF
    /// (only then can a lone dot end the message).
    LineStart { after_crlf: bool },
    /// A dot at the start of a line.
    Dot { after_crlf: bool },
    /// A dot at the start of a line, then CR.
    DotCr { after_crlf: bool },
}

/// Incremental DATA decoder.
#[derive(Debug)]
pub struct DataDecoder {
    state: State,
    line_length: usize,
    longest_line: usize,
}

impl Default for DataDecoder {
    fn default() -> Self {
        DataDecoder::new()
    }
}

/// What one call to [`DataDecoder::feed`] did.
#[derive(Debug, PartialEq, Eq)]
pub struct Fed {
    /// Input bytes used. When `done`, the rest belongs to the next command.
    pub consumed: usize,
    /// The end-of-data line was seen.
    pub done: bool,
}

impl DataDecoder {
    pub fn new() -> DataDecoder {
        DataDecoder {
            state: State::LineStart { after_crlf: true },
            line_length: 0,
            longest_line: 0,
        }
    }

    /// Length of the longest line seen so far, line ending excluded.
    pub fn longest_line(&self) -> usize {
        self.longest_line
    }

    /// Decodes `input`, appending message bytes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Fed {
        let mut i = 0;
        while i < input.len() {
            let byte = input[i];
            match self.state {
                State::Text => {
                    // Fast path: copy everything up to the next CR or LF at once.
                    let rest = &input[i..];
                    let run = rest
                        .iter()
                        .position(|&b| b == b'\r' || b == b'\n')
                        .unwrap_or(rest.len());
                    if run > 0 {
                        out.extend_from_slice(&rest[..run]);
                        self.line_length += run;
                        i += run;
                        continue;
                    }
                    if byte == b'\r' {
                        self.state = State::Cr;
                    } else {
                        self.end_line(out, false);
                    }
                }
                State::Cr => {
                    if byte == b'\n' {
                        self.end_line(out, true);
                    } else {
                        // A bare CR ends the line; this byte starts the next one.
                        self.end_line(out, false);
                        continue;
                    }
                }
                State::LineStart { after_crlf } => {
                    if byte == b'.' {
                        self.state = State::Dot { after_crlf };
                    } else {
                        self.state = State::Text;
                        continue;
                    }
                }
                State::Dot { after_crlf } => match byte {
                    b'\r' => self.state = State::DotCr { after_crlf },
                    b'\n' => {
                        // A lone dot ended by a bare LF is text, not the end of data.
                        out.push(b'.');
                        self.line_length += 1;
                        self.end_line(out, false);
                    }
                    _ => {
                        // Dot-stuffed line: drop the first dot.
                        self.state = State::Text;
                        continue;
                    }
                },
                State::DotCr { after_crlf } => match byte {
                    b'\n' if after_crlf => {
                        self.state = State::LineStart { after_crlf: true };
                        return Fed {
                            consumed: i + 1,
                            done: true,
                        };
                    }
                    b'\n' => {
                        out.push(b'.');
                        self.line_length += 1;
                        self.end_line(out, true);
                    }
                    _ => {
                        // A lone dot ended by a bare CR: text, not the end of data.
                        out.push(b'.');
                        self.line_length += 1;
                        self.end_line(out, false);
                        continue;
                    }
                },
            }
            i += 1;
        }
        Fed {
            consumed: input.len(),
            done: false,
        }
    }

    fn end_line(&mut self, out: &mut Vec<u8>, crlf: bool) {
        out.extend_from_slice(b"\r\n");
        self.longest_line = self.longest_line.max(self.line_length);
        self.line_length = 0;
        self.state = State::LineStart { after_crlf: crlf };
    }
}

/// Dot-stuffs stored message bytes for sending (POP3 RETR, SMTP DATA), piece by piece.
#[derive(Debug)]
pub struct DotStuffer {
    at_line_start: bool,
    last: u8,
    /// Turn a bare LF or bare CR into CRLF (SMTP must never send one; POP3 keeps the
    /// stored bytes).
    crlf: bool,
    /// A CR whose LF may come with the next piece (SMTP only).
    held_cr: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer::new()
    }
}

impl DotStuffer {
    pub fn new() -> DotStuffer {
        DotStuffer {
            at_line_start: true,
            last: b'\n',
            crlf: false,
            held_cr: false,
        }
    }

    /// For SMTP DATA: also writes every bare LF and bare CR as CRLF, so the data holds
    /// only CRLF line ends and always ends with CRLF.CRLF (a message stored from BDAT or
    /// APPEND may hold either).
    pub fn for_smtp() -> DotStuffer {
        DotStuffer {
            crlf: true,
            ..DotStuffer::new()
        }
    }

    pub fn push(&mut self, piece: &[u8], out: &mut Vec<u8>) {
        for &byte in piece {
            if self.held_cr {
                self.held_cr = false;
                self.emit(b'\r', out);
                if byte != b'\n' {
                    self.emit(b'\n', out); // a bare CR
                }
            }
            if self.crlf && byte == b'\r' {
                self.held_cr = true;
                continue;
            }
            if self.crlf && byte == b'\n' && self.last != b'\r' {
                self.emit(b'\r', out);
            }
            self.emit(byte, out);
        }
    }

    fn emit(&mut self, byte: u8, out: &mut Vec<u8>) {
        if self.at_line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        self.at_line_start = byte == b'\n';
        self.last = byte;
    }

    /// Ends the data: adds a CRLF if the content did not end with one, then `.CRLF`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.held_cr {
            self.held_cr = false;
            self.emit(b'\r', out);
            self.emit(b'\n', out);
        }
        if self.last != b'\n' {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        *self = DotStuffer {
            crlf: self.crlf,
            ..DotStuffer::new()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_stuffing_never_sends_a_bare_lf() {
        let mut out = Vec::new();
        let mut s = DotStuffer::for_smtp();
        s.push(b"a\n.b\r", &mut out);
        s.push(b"\nend\n", &mut out);
        s.finish(&mut out);
        assert_eq!(out, b"a\r\n..b\r\nend\r\n.\r\n");
        let mut out = Vec::new();
        let mut s = DotStuffer::for_smtp();
        s.push(b"hello\r.\rMAIL FROM:<x@y>\r", &mut out);
        s.push(b"\nbye\r", &mut out);
        s.finish(&mut out);
        assert_eq!(
            out, b"hello\r\n..\r\nMAIL FROM:<x@y>\r\nbye\r\n.\r\n",
            "no bare CR ever goes out, even split across pieces"
        );
        let mut out = Vec::new();
        let mut s = DotStuffer::new();
        s.push(b"a\nb\n", &mut out);
        s.finish(&mut out);
        assert_eq!(out, b"a\nb\n.\r\n", "POP3 keeps the stored bytes");
    }

    /// Feeds `input` in pieces of `step` bytes; returns (message, leftover, done).
    fn decode(input: &[u8], step: usize) -> (Vec<u8>, Vec<u8>, bool) {
        let mut decoder = DataDecoder::new();
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let end = (pos + step).min(input.len());
            let fed = decoder.feed(&input[pos..end], &mut out);
            pos += fed.consumed;
            if fed.done {
                return (out, input[pos..].to_vec(), true);
            }
        }
        (out, Vec::new(), false)
    }

    fn all_steps(input: &[u8]) -> (Vec<u8>, Vec<u8>, bool) {
        let first = decode(input, input.len().max(1));
        for step in 1..8 {
            assert_eq!(decode(input, step), first, "step {step}");
        }
        first
    }

    #[test]
    fn plain_message_ends_at_crlf_dot_crlf() {
        let (msg, rest, done) = all_steps(b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n");
        assert!(done);
        assert_eq!(msg, b"Subject: x\r\n\r\nhello\r\n");
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn empty_message() {
        let (msg, rest, done) = all_steps(b".\r\n");
        assert!(done);
        assert!(msg.is_empty());
        assert!(rest.is_empty());
    }

    #[test]
    fn dot_unstuffing() {
        let (msg, _, done) = all_steps(b"..leading\r\n...\r\n.x\r\n.\r\n");
        assert!(done);
        assert_eq!(msg, b".leading\r\n..\r\nx\r\n");
    }

    #[test]
    fn bare_lf_dot_does_not_end_data() {
        // The classic smuggling payloads: <LF>.<LF>, <LF>.<CR><LF>, <CR>.<CR><LF>.
        for payload in [
            &b"a\n.\nMAIL FROM:<x@y>\r\n"[..],
            b"a\n.\r\nMAIL FROM:<x@y>\r\n",
            b"a\r.\r\nMAIL FROM:<x@y>\r\n",
            b"a\r\n.\nMAIL FROM:<x@y>\r\n",
        ] {
            let (msg, _, done) = all_steps(payload);
            assert!(!done, "{payload:?} ended the message");
            assert!(msg.ends_with(b"MAIL FROM:<x@y>\r\n"), "{msg:?}");
        }
        let (msg, _, done) = all_steps(b"a\n.\nb\r\n.\r\n");
        assert!(done);
        assert_eq!(msg, b"a\r\n.\r\nb\r\n");
    }

    #[test]
    fn bare_lf_and_bare_cr_become_crlf() {
        let (msg, _, done) = all_steps(b"one\ntwo\rthree\r\r\n.\r\n");
        assert!(done);
        assert_eq!(msg, b"one\r\ntwo\r\nthree\r\n\r\n");
        // The smuggling attempt of issue 10 stays one message, with no bare CR in it.
        let (msg, rest, done) = all_steps(b"hello\r.\rMAIL FROM:<admin@x.test>\r\n.\r\nQUIT\r\n");
        assert!(done);
        assert_eq!(msg, b"hello\r\n.\r\nMAIL FROM:<admin@x.test>\r\n");
        assert_eq!(rest, b"QUIT\r\n");
        let (msg, _, _) = all_steps(b"a\r..b\r\n.\r\n");
        assert_eq!(msg, b"a\r\n.b\r\n", "a dot-stuffed line after a bare CR");
    }

    #[test]
    fn longest_line_is_measured() {
        let mut d = DataDecoder::new();
        let mut out = Vec::new();
        d.feed(b"abc\r\n", &mut out);
        d.feed(&[b'x'; 5000], &mut out);
        d.feed(b"\r\n.\r\n", &mut out);
        assert_eq!(d.longest_line(), 5000);
    }

    #[test]
    fn stuffing_round_trips() {
        let original: &[u8] = b".a\r\n..b\r\nc\r\n.\r\nno newline at end";
        let mut stuffer = DotStuffer::new();
        let mut wire = Vec::new();
        for piece in original.chunks(3) {
            stuffer.push(piece, &mut wire);
        }
        stuffer.finish(&mut wire);
        assert_eq!(
            wire,
            b"..a\r\n...b\r\nc\r\n..\r\nno newline at end\r\n.\r\n"
        );
        let (msg, rest, done) = all_steps(&wire);
        assert!(done && rest.is_empty());
        assert_eq!(msg, [original, b"\r\n"].concat());
    }
}
