//! A small blocking IMAP4rev1 client (RFC 3501): what pulling a mailbox needs (LOGIN,
//! LIST, EXAMINE, UID FETCH) and no more.
//!
//! Our own rather than a crate: the maintained async clients pull in their own parser
//! stacks for the whole protocol, and a migration reads four kinds of response. Lines are
//! bounded ([`MAX_LINE`]); literals are read into memory only up to [`MAX_SMALL_LITERAL`],
//! except a message's body, which streams to the caller.

use std::io::{self, BufRead, BufReader, Read, Write};

/// Longest response line (without literals) accepted.
pub const MAX_LINE: usize = 256 * 1024;
/// Largest literal held in memory (names, headers); message bodies stream instead.
pub const MAX_SMALL_LITERAL: usize = 64 * 1024;
/// Most bytes one response holds in memory (its lines and small literals).
pub const MAX_RESPONSE: usize = 1 << 20;
/// Largest message taken (it goes to a spool file, not memory).
pub const MAX_MESSAGE: u64 = 256 << 20;
/// Most untagged responses [`Client::command`] collects (folder lists, EXAMINE);
/// [`Client::command_each`] takes any number, one at a time.
pub const MAX_COLLECTED: usize = 100_000;

/// One token of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Atom(String),
    /// A quoted string or a small literal.
    Text(Vec<u8>),
    Open,
    Close,
    /// A literal that went to the body sink, with its size.
    Streamed(u64),
}

impl Token {
    pub fn text(&self) -> Option<String> {
        match self {
            Token::Atom(a) => Some(a.clone()),
            Token::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
            _ => None,
        }
    }
}

/// Tokenizes one line (no line end) starting at `pos`; returns the tokens and, when the
/// line ends in a literal announcement `{n}`, its size.
pub fn tokenize(line: &[u8], tokens: &mut Vec<Token>) -> Result<Option<u64>, String> {
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b' ' => i += 1,
            b'(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            b')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            b'"' => {
                let mut text = Vec::new();
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err("unterminated quoted string".into()),
                        Some(b'\\') => {
                            text.push(*line.get(i + 1).ok_or("bad escape")?);
                            i += 2;
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            text.push(c);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Text(text));
            }
            b'{' | b'~' if literal_size(&line[i..]).is_some() => {
                return Ok(literal_size(&line[i..]));
            }
            _ => {
                let start = i;
                let mut depth = 0;
                while i < line.len() {
                    match line[i] {
                        b'[' => depth += 1,
                        b']' => depth -= 1,
                        b' ' | b'(' | b')' if depth <= 0 => break,
                        _ => {}
                    }
                    i += 1;
                }
                tokens.push(Token::Atom(
                    String::from_utf8_lossy(&line[start..i]).into_owned(),
                ));
            }
        }
    }
    Ok(None)
}

/// The size a literal announcement (`{n}`, `{n+}`, `~{n}`) ending the line states.
fn literal_size(rest: &[u8]) -> Option<u64> {
    let rest = rest.strip_prefix(b"~").unwrap_or(rest);
    let digits = rest.strip_prefix(b"{")?.strip_suffix(b"}")?;
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A complete response: its tokens (literals spliced in).
#[derive(Debug, Default)]
pub struct Response {
    pub tokens: Vec<Token>,
}

impl Response {
    pub fn tag(&self) -> Option<&str> {
        match self.tokens.first() {
            Some(Token::Atom(a)) => Some(a),
            _ => None,
        }
    }
    pub fn word(&self, i: usize) -> Option<String> {
        self.tokens.get(i).and_then(Token::text)
    }
}

pub trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

pub struct Client {
    conn: BufReader<Box<dyn Stream>>,
    next_tag: u32,
}

/// Where a literal goes: the body sink takes literals that follow `BODY[]`.
pub type BodySink<'a> = &'a mut dyn FnMut(&[u8]) -> io::Result<()>;

impl Client {
    /// Reads the greeting.
    pub fn new(stream: Box<dyn Stream>) -> Result<Client, String> {
        let mut client = Client {
            conn: BufReader::with_capacity(64 * 1024, stream),
            next_tag: 1,
        };
        let greeting = client.response(None)?;
        match greeting.word(1).as_deref() {
            Some("OK") | Some("PREAUTH") => Ok(client),
            _ => Err(format!("the server greeted with {:?}", greeting.tokens)),
        }
    }

    fn line(&mut self) -> Result<Vec<u8>, String> {
        let mut line = Vec::new();
        let n = (&mut self.conn)
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("reading: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        if !line.ends_with(b"\n") {
            return Err("a response line is too long".into());
        }
        line.pop();
        if line.ends_with(b"\r") {
            line.pop();
        }
        Ok(line)
    }

    /// Reads one response, streaming a literal that follows `BODY[]` into `body`.
    pub fn response(&mut self, mut body: Option<BodySink>) -> Result<Response, String> {
        let mut response = Response::default();
        // What one response may hold besides a streamed body: bounded, whatever the server.
        let mut held = 0usize;
        loop {
            let line = self.line()?;
            held += line.len();
            if held > MAX_RESPONSE {
                return Err("a response from the server is too long".into());
            }
            let Some(size) = tokenize(&line, &mut response.tokens)? else {
                return Ok(response);
            };
            let to_body = matches!(response.tokens.last(), Some(Token::Atom(a)) if a.eq_ignore_ascii_case("BODY[]"));
            match (to_body, body.as_mut()) {
                (true, Some(sink)) => {
                    if size > MAX_MESSAGE {
                        return Err(format!(
                            "a message of {size} bytes is over the {MAX_MESSAGE}-byte limit"
                        ));
                    }
                    let mut left = size;
                    let mut buf = vec![0u8; 64 * 1024];
                    while left > 0 {
                        let want = left.min(buf.len() as u64) as usize;
                        self.conn
                            .read_exact(&mut buf[..want])
                            .map_err(|e| format!("reading a message: {e}"))?;
                        sink(&buf[..want]).map_err(|e| format!("storing a message: {e}"))?;
                        left -= want as u64;
                    }
                    response.tokens.push(Token::Streamed(size));
                }
                _ => {
                    if size > MAX_SMALL_LITERAL as u64 {
                        return Err(format!(
                            "a literal of {size} bytes where a short one belongs"
                        ));
                    }
                    let mut text = vec![0u8; size as usize];
                    self.conn
                        .read_exact(&mut text)
                        .map_err(|e| format!("reading: {e}"))?;
                    response.tokens.push(Token::Text(text));
                }
            }
        }
    }

    /// Sends a command; returns its untagged responses, failing unless it ends OK.
    pub fn command(
        &mut self,
        command: &str,
        body: Option<BodySink>,
    ) -> Result<Vec<Response>, String> {
        let mut untagged = Vec::new();
        self.command_each(command, body, &mut |response| {
            if untagged.len() >= MAX_COLLECTED {
                return Err("the server sent too many responses".into());
            }
            untagged.push(response);
            Ok(())
        })?;
        Ok(untagged)
    }

    /// Sends a command and hands each untagged response to `each` as it arrives.
    pub fn command_each(
        &mut self,
        command: &str,
        mut body: Option<BodySink>,
        each: &mut dyn FnMut(Response) -> Result<(), String>,
    ) -> Result<(), String> {
        let tag = format!("m{}", self.next_tag);
        self.next_tag += 1;
        let stream = self.conn.get_mut();
        stream
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .and_then(|_| stream.flush())
            .map_err(|e| format!("sending: {e}"))?;
        // Only the verb in messages: the rest may be a password.
        let verb = command.split(' ').next().unwrap_or("");
        loop {
            let response = self.response(body.as_mut().map(|b| &mut **b as BodySink))?;
            match response.tag() {
                Some("*") => each(response)?,
                Some("+") => return Err(format!("the server wants more for {verb}")),
                Some(t) if t == tag => {
                    return match response.word(1) {
                        Some(w) if w.eq_ignore_ascii_case("OK") => Ok(()),
                        _ => Err(format!(
                            "{verb}: {}",
                            response.tokens[1..]
                                .iter()
                                .filter_map(Token::text)
                                .collect::<Vec<_>>()
                                .join(" ")
                        )),
                    };
                }
                _ => {}
            }
        }
    }
}

/// An IMAP string for a command: quoted when it can be, else refused.
pub fn quote(text: &str) -> Result<String, String> {
    if text.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err("line breaks cannot be sent in a quoted string".into());
    }
    Ok(format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(line: &str) -> (Vec<Token>, Option<u64>) {
        let mut t = Vec::new();
        let lit = tokenize(line.as_bytes(), &mut t).unwrap();
        (t, lit)
    }

    #[test]
    fn tokens() {
        let (t, lit) = toks(r#"* LIST (\HasNoChildren \Sent) "/" "Sent \"Items\"""#);
        assert_eq!(lit, None);
        assert_eq!(t[0], Token::Atom("*".into()));
        assert_eq!(t[2], Token::Open);
        assert_eq!(t[3], Token::Atom("\\HasNoChildren".into()));
        assert_eq!(t[7], Token::Text(b"Sent \"Items\"".to_vec()));
        let (t, lit) = toks("* 3 FETCH (UID 7 FLAGS (\\Seen) BODY[] {120}");
        assert_eq!(lit, Some(120));
        assert_eq!(t.last(), Some(&Token::Atom("BODY[]".into())));
        let (t, _) = toks("* OK [UIDVALIDITY 3857529045] UIDs valid");
        assert_eq!(t[2], Token::Atom("[UIDVALIDITY 3857529045]".into()));
        // Text that merely ends in a brace is not a literal.
        let (t, lit) = toks("* OK [ALERT] see {this}");
        assert_eq!(lit, None);
        assert_eq!(t.last(), Some(&Token::Atom("{this}".into())));
        assert_eq!(quote(r#"a"b\c"#).unwrap(), r#""a\"b\\c""#);
    }

    #[test]
    fn streams_bodies_and_keeps_small_literals() {
        let wire = b"* OK hi\r\nm1 OK done\r\n";
        let mut client = Client::new(Box::new(io::Cursor::new(wire.to_vec()))).unwrap();
        assert!(client.response(None).is_ok());
        let wire = b"* OK hi\r\n* LIST () \"/\" {4}\r\nA\"\\B\r\n* 1 FETCH (UID 9 BODY[] {5}\r\nhello FLAGS (\\Seen))\r\n";
        let mut client = Client::new(Box::new(io::Cursor::new(wire.to_vec()))).unwrap();
        let list = client.response(None).unwrap();
        assert_eq!(list.tokens.last(), Some(&Token::Text(b"A\"\\B".to_vec())));
        let mut got = Vec::new();
        let fetch = client
            .response(Some(&mut |b: &[u8]| {
                got.extend_from_slice(b);
                Ok(())
            }))
            .unwrap();
        assert_eq!(got, b"hello");
        assert!(fetch.tokens.contains(&Token::Streamed(5)));
        assert!(fetch.tokens.contains(&Token::Atom("\\Seen".into())));
    }
}
