//! The mbox format (RFC 4155; mboxrd and mboxo quoting), read and written as streams.
//!
//! Reading: a message starts at a `From ` line that opens the file or follows an empty
//! line and carries a sender and an asctime date; the empty line before it belongs to
//! the separator. Body lines are unquoted (mboxrd: `>From `, `>>From `... lose one `>`;
//! mboxo: only `>From `), and line ends become CRLF as the store keeps them. Writing
//! does the reverse, with mboxrd quoting and LF line ends (what mutt and Dovecot read).
//! Lines are handled in pieces of at most [`PIECE`] bytes, so a line without end costs
//! no more memory than a short one.

use std::io::{self, BufRead, Write};

/// Longest piece of a line held at once.
pub const PIECE: usize = 64 * 1024;

/// How body lines that look like separators were quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    /// `>*From ` lines got one more `>` (lossless).
    Rd,
    /// Only `From ` lines were quoted, as `>From ` (lossy: `>From ` is read as `From `).
    O,
}

/// The `From ` line of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub sender: String,
    /// Its date (Unix time, UTC), when it parsed.
    pub date: Option<i64>,
    /// Byte offset of the `From ` line in the file.
    pub offset: u64,
}

/// Parses a separator line (`From sender date`, without its line end).
pub fn parse_from_line(line: &[u8]) -> Option<(String, Option<i64>)> {
    let rest = line.strip_prefix(b"From ")?;
    let text = String::from_utf8_lossy(rest);
    let text = text.trim_end_matches(['\r', '\n']);
    let (sender, date) = text.trim_start().split_once(char::is_whitespace)?;
    if sender.is_empty() {
        return None;
    }
    let date = super::date::parse_asctime(date);
    date?;
    Some((sender.to_string(), date))
}

/// Reads the messages of an mbox one at a time.
pub struct Reader<R: BufRead> {
    input: R,
    quoting: Quoting,
    /// Bytes consumed from the input.
    offset: u64,
    /// The separator line read ahead (the next message's), if any.
    next: Option<Envelope>,
    started: bool,
    /// The last byte handed out was `\r` (a CRLF may straddle two pieces).
    last_cr: bool,
}

/// One piece of a line: its bytes (with the line end, if it is the last piece).
struct Piece {
    bytes: Vec<u8>,
    /// The first piece of its line.
    first: bool,
    /// Ends with `\n`.
    ends_line: bool,
}

impl<R: BufRead> Reader<R> {
    /// A reader starting at byte `offset` of the file (`input` is positioned there), which
    /// must be a message's `From ` line.
    pub fn new(input: R, quoting: Quoting, offset: u64) -> Reader<R> {
        Reader {
            input,
            quoting,
            offset,
            next: None,
            started: false,
            last_cr: false,
        }
    }

    /// Bytes of the file consumed so far: after [`Reader::next_message`] returned, the
    /// offset of the following message's `From ` line (or the file's end).
    pub fn position(&self) -> u64 {
        self.next.as_ref().map_or(self.offset, |e| e.offset)
    }

    fn piece(&mut self, first: bool) -> io::Result<Option<Piece>> {
        let mut bytes = Vec::new();
        loop {
            let available = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break;
            }
            let room = PIECE - bytes.len();
            let window = &available[..available.len().min(room)];
            if let Some(i) = memchr::memchr(b'\n', window) {
                bytes.extend_from_slice(&window[..=i]);
                self.input.consume(i + 1);
                self.offset += i as u64 + 1;
                return Ok(Some(Piece {
                    bytes,
                    first,
                    ends_line: true,
                }));
            }
            let n = window.len();
            bytes.extend_from_slice(window);
            self.input.consume(n);
            self.offset += n as u64;
            if bytes.len() >= PIECE {
                break;
            }
        }
        Ok((!bytes.is_empty()).then_some(Piece {
            bytes,
            first,
            ends_line: false,
        }))
    }

    /// Reads the next message, handing its bytes (unquoted, CRLF) to `sink`. Returns its
    /// `From ` line, or None at the end of the file.
    pub fn next_message(
        &mut self,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<Option<Envelope>> {
        let envelope = match self.next.take() {
            Some(e) => e,
            None => {
                if self.started {
                    return Ok(None);
                }
                self.started = true;
                let offset = self.offset;
                let Some(line) = self.piece(true)? else {
                    return Ok(None);
                };
                let Some((sender, date)) = parse_from_line(&line.bytes) else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("no mbox \"From \" line at byte {offset}"),
                    ));
                };
                if !line.ends_line {
                    self.skip_rest_of_line()?;
                }
                Envelope {
                    sender,
                    date,
                    offset,
                }
            }
        };
        // An empty line is held back: before a separator (or the file's end) it is the
        // separator's, not the message's.
        let mut held_blank = false;
        let mut at_line_start = true;
        loop {
            let offset = self.offset;
            let Some(piece) = self.piece(at_line_start)? else {
                break;
            };
            at_line_start = piece.ends_line;
            if !piece.first {
                self.emit(sink, &piece.bytes)?;
                continue;
            }
            let bare = piece.bytes.strip_suffix(b"\n").unwrap_or(&piece.bytes);
            let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
            if bare.is_empty() && piece.ends_line {
                if held_blank {
                    self.emit(sink, b"\n")?;
                }
                held_blank = true;
                continue;
            }
            if held_blank {
                if let Some((sender, date)) = parse_from_line(&piece.bytes) {
                    if !piece.ends_line {
                        self.skip_rest_of_line()?;
                    }
                    self.next = Some(Envelope {
                        sender,
                        date,
                        offset,
                    });
                    return Ok(Some(envelope));
                }
                self.emit(sink, b"\n")?;
                held_blank = false;
            }
            self.emit(sink, unquote(&piece.bytes, self.quoting))?;
        }
        // The file's end: a held empty line was the last separator's.
        Ok(Some(envelope))
    }

    fn skip_rest_of_line(&mut self) -> io::Result<()> {
        while let Some(piece) = self.piece(false)? {
            if piece.ends_line {
                break;
            }
        }
        Ok(())
    }
}

impl<R: BufRead> Reader<R> {
    /// Hands out a piece of a line, its LF line end made CRLF.
    fn emit(
        &mut self,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
        bytes: &[u8],
    ) -> io::Result<()> {
        let before_cr = match bytes.strip_suffix(b"\n") {
            Some([]) => self.last_cr,
            Some(line) => line.ends_with(b"\r"),
            None => true,
        };
        match bytes.strip_suffix(b"\n") {
            Some(line) if !before_cr => {
                sink(line)?;
                sink(b"\r\n")?;
            }
            _ => sink(bytes)?,
        }
        if let Some(&last) = bytes.last() {
            self.last_cr = last == b'\r';
        }
        Ok(())
    }
}

/// The line without its quoting `>`, if it has one.
fn unquote(line: &[u8], quoting: Quoting) -> &[u8] {
    let quotes = line.iter().take_while(|&&b| b == b'>').count();
    let quoted = quotes > 0
        && line[quotes..].starts_with(b"From ")
        && (quoting == Quoting::Rd || quotes == 1);
    if quoted {
        &line[1..]
    } else {
        line
    }
}

/// Writes messages as an mboxrd file: a `From ` line, the message with its lines quoted
/// and LF line ends, then an empty line.
pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Writer<W> {
        Writer { out }
    }

    /// Starts a message from `sender` (empty: `MAILER-DAEMON`) received at `date`.
    pub fn begin(&mut self, sender: &str, date: i64) -> io::Result<MessageWriter<'_, W>> {
        let sender = if sender.is_empty() || sender.contains(char::is_whitespace) {
            "MAILER-DAEMON"
        } else {
            sender
        };
        writeln!(self.out, "From {sender} {}", super::date::asctime(date))?;
        Ok(MessageWriter {
            out: &mut self.out,
            line: Vec::new(),
            in_prefix: true,
            cr: false,
            last: b'\n',
        })
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// One message being written: bytes in any pieces, quoted and converted on the way.
pub struct MessageWriter<'a, W: Write> {
    out: &'a mut W,
    /// The start of the current line while it may still become `>*From `.
    line: Vec<u8>,
    in_prefix: bool,
    /// A `\r` held back: it is dropped if `\n` follows.
    cr: bool,
    last: u8,
}

impl<W: Write> MessageWriter<'_, W> {
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        for &b in bytes {
            if self.cr {
                self.cr = false;
                if b != b'\n' {
                    self.byte(b'\r')?;
                }
            }
            if b == b'\r' {
                self.cr = true;
                continue;
            }
            self.byte(b)?;
        }
        Ok(())
    }

    fn byte(&mut self, b: u8) -> io::Result<()> {
        self.last = b;
        if self.in_prefix {
            self.line.push(b);
            let quotes = self.line.iter().take_while(|&&c| c == b'>').count();
            let rest = &self.line[quotes..];
            // The reader unquotes within a line's first piece only: so does the writer.
            if rest.len() >= 5 || !b"From ".starts_with(rest) || self.line.len() > PIECE - 8 {
                if rest == b"From " {
                    self.out.write_all(b">")?;
                }
                self.out.write_all(&self.line)?;
                self.line.clear();
                self.in_prefix = false;
            }
        } else {
            self.out.write_all(&[b])?;
        }
        if b == b'\n' {
            if self.in_prefix {
                self.out.write_all(&self.line)?;
                self.line.clear();
            }
            self.in_prefix = true;
        }
        Ok(())
    }

    /// Ends the message (with a line end if it had none) and its separator line.
    pub fn finish(mut self) -> io::Result<()> {
        if self.cr {
            self.cr = false;
            self.byte(b'\r')?;
        }
        self.out.write_all(&self.line)?;
        if self.last != b'\n' {
            self.out.write_all(b"\n")?;
        }
        self.out.write_all(b"\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(file: &[u8], quoting: Quoting) -> Vec<(Envelope, Vec<u8>)> {
        let mut reader = Reader::new(file, quoting, 0);
        let mut out = Vec::new();
        loop {
            let mut bytes = Vec::new();
            match reader
                .next_message(&mut |b| {
                    bytes.extend_from_slice(b);
                    Ok(())
                })
                .unwrap()
            {
                Some(e) => out.push((e, bytes)),
                None => return out,
            }
        }
    }

    fn write_all(messages: &[(&str, i64, &[u8])]) -> Vec<u8> {
        let mut writer = Writer::new(Vec::new());
        for (sender, date, bytes) in messages {
            let mut m = writer.begin(sender, *date).unwrap();
            // Odd piece sizes: quoting and CRLF must work across piece boundaries.
            for piece in bytes.chunks(3) {
                m.write(piece).unwrap();
            }
            m.finish().unwrap();
        }
        writer.into_inner()
    }

    const FILE: &[u8] = b"From alice@example.org Thu Jan  1 00:00:00 1970\n\
Subject: one\n\
\n\
From here on, a body line.\n\
>From quoted already\n\
>>From twice\n\
\n\
From bob@example.org Mon Nov 23 22:51:08 2026\n\
Subject: two\n\
\n\
last line without a blank after\n";

    #[test]
    fn reads_messages_and_unquotes() {
        let messages = read_all(FILE, Quoting::Rd);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].0.sender, "alice@example.org");
        assert_eq!(messages[0].0.date, Some(0));
        assert_eq!(messages[0].0.offset, 0);
        assert_eq!(
            messages[0].1,
            b"Subject: one\r\n\r\nFrom here on, a body line.\r\nFrom quoted already\r\n>From twice\r\n"
        );
        assert_eq!(messages[1].0.date, Some(1_795_474_268));
        assert_eq!(messages[1].0.offset, 124);
        assert_eq!(
            messages[1].1,
            b"Subject: two\r\n\r\nlast line without a blank after\r\n"
        );
        let mboxo = read_all(FILE, Quoting::O);
        assert!(mboxo[0]
            .1
            .ends_with(b"From quoted already\r\n>>From twice\r\n"));
    }

    #[test]
    fn written_files_read_back_identically() {
        let tricky: &[&[u8]] = &[
            b"Subject: a\r\n\r\nFrom the start\r\n>From x\r\n>>>From y\r\nFro\r\nFrom\r\n",
            b"Subject: empty body\r\n\r\n",
            b"Subject: blank lines at the end\r\n\r\nbody\r\n\r\n\r\n",
            b"Subject: 8bit \xc3\xa9\xff\r\n\r\n\xe2\x82\xac \x00 bytes\r\nbare\rcr\r\n",
            b"Subject: x\r\n\r\n\r\nFrom nobody Thu Jan  1 00:00:00 1970\r\n",
        ];
        let list: Vec<(&str, i64, &[u8])> = tricky.iter().map(|m| ("a@b", 86_400, *m)).collect();
        let file = write_all(&list);
        let back = read_all(&file, Quoting::Rd);
        assert_eq!(back.len(), tricky.len());
        for (got, want) in back.iter().zip(tricky) {
            assert_eq!(&got.1[..], *want, "{}", String::from_utf8_lossy(want));
            assert_eq!(got.0.date, Some(86_400));
        }
        // Writing what was read gives the same file.
        let again: Vec<(&str, i64, &[u8])> = back
            .iter()
            .map(|(e, b)| ("a@b", e.date.unwrap(), &b[..]))
            .collect();
        assert_eq!(write_all(&again), file);
    }

    #[test]
    fn long_lines_and_resume() {
        let long = vec![b'x'; PIECE * 3 + 7];
        let mut message = b"Subject: long\r\n\r\n".to_vec();
        message.extend_from_slice(&long);
        message.extend_from_slice(b"\r\n");
        let file = write_all(&[
            ("a@b", 0, &message),
            ("c@d", 60, b"Subject: 2\r\n\r\nx\r\n"),
        ]);
        let back = read_all(&file, Quoting::Rd);
        assert_eq!(back[0].1, message);
        // Starting at the second message's offset reads just that one.
        let at = back[1].0.offset as usize;
        let rest = read_all(&file[at..], Quoting::Rd);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].0.sender, "c@d");
    }

    #[test]
    fn not_an_mbox() {
        let mut reader = Reader::new(&b"Subject: no From line\n"[..], Quoting::Rd, 0);
        assert!(reader.next_message(&mut |_| Ok(())).is_err());
        assert!(parse_from_line(b"From here on, a body line.").is_none());
    }
}
