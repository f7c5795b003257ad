//! IMAP command syntax (pure), in two layers.
//!
//! 1. Tokens: a command's bytes, literals already inlined by the session's reader, become
//!    a tag, a command name and a tree of [`Value`]s ([`parse_command`]); this module also
//!    spots literals at line ends ([`trailing_literal`]) for the reader.
//! 2. Typed commands: [`command::parse_request`] turns the tokens into a [`Command`] whose
//!    arguments are all parsed and validated, using the argument parsers here (sequence
//!    sets, flags, dates) and in [`fetch`], [`search`] and [`mailbox`].
//!
//! Every error is the text of a tagged BAD; nothing here panics or allocates more than
//! the input's size. Responses are written by [`super::encode`].

pub mod command;
pub mod fetch;
pub mod mailbox;
pub mod notify;
pub mod search;
pub mod sort;
pub mod url;

pub use command::{
    append_continuation, append_request, needs, parse_request, Append, Capability, Command,
    CopyMove, Fetch, Mechanism, Needs, Request, Search, Select, StoreFlags,
};
pub use fetch::{fetch_items, FetchItem, FetchModifiers, Section};
pub use mailbox::{list_request, mailbox_name, status_items, ListRequest, Qresync, StatusItem};
pub use notify::{EventGroup, Events, Filter, NotifySet};
pub use search::{search_keys, search_return, SearchKey, SearchReturn};
pub use sort::{Sort, SortBy, Thread, ThreadBy};
pub use url::{CatPart, Catenate, ImapUrl};

use crate::mail::date::{days_from_civil, month_number};
use crate::store::flags;

/// One syntactic element of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An atom (also NIL, numbers, sequence sets, `BODY[HEADER]<0.10>`).
    Atom(String),
    /// A quoted string or a literal.
    Str(Vec<u8>),
    /// A parenthesised list.
    List(Vec<Value>),
}

impl Value {
    /// An astring (atom, quoted string or literal) as text.
    pub fn text(&self) -> Result<String, String> {
        match self {
            Value::Atom(a) => Ok(a.clone()),
            Value::Str(s) => {
                String::from_utf8(s.clone()).map_err(|_| "Invalid UTF-8 in string".to_string())
            }
            Value::List(_) => Err("Expected a string, got a list".into()),
        }
    }

    pub fn atom(&self) -> Option<&str> {
        match self {
            Value::Atom(a) => Some(a),
            _ => None,
        }
    }
}

/// A command as tokens: `tag name args...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCommand {
    pub tag: String,
    /// Upper-cased command name.
    pub name: String,
    pub args: Vec<Value>,
}

/// Deepest list nesting accepted (SEARCH with nested NOT/OR lists stays far below it).
const MAX_DEPTH: usize = 32;

/// Splits a complete command (without its final CRLF) into tag, name and arguments.
/// On error returns the tag (if one could be read, for a tagged BAD) and a message.
pub fn parse_command(input: &[u8]) -> Result<RawCommand, (Option<String>, String)> {
    let mut p = Parser { input, pos: 0 };
    let tag = match p.value(0) {
        Ok(Some(Value::Atom(tag))) if valid_tag(&tag) => tag,
        _ => return Err((None, "Missing or invalid tag".into())),
    };
    let rest = (|| {
        let name = match p.value(0)? {
            Some(Value::Atom(name)) => name.to_ascii_uppercase(),
            _ => return Err("Missing command".to_string()),
        };
        let mut args = Vec::new();
        while let Some(v) = p.value(0)? {
            args.push(v);
        }
        Ok(RawCommand {
            tag: tag.clone(),
            name,
            args,
        })
    })();
    rest.map_err(|e| (Some(tag), e))
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag
            .bytes()
            .all(|b| b > b' ' && b < 0x7f && !b"(){%*\"\\+".contains(&b))
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn skip_spaces(&mut self) {
        while self.input.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }

    /// The next value; `None` at the end of input. `)` ends a list (returned as None to
    /// the list reader only).
    fn value(&mut self, depth: usize) -> Result<Option<Value>, String> {
        self.skip_spaces();
        let Some(&b) = self.input.get(self.pos) else {
            return Ok(None);
        };
        match b {
            b'(' => {
                if depth >= MAX_DEPTH {
                    return Err("Lists nested too deeply".into());
                }
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_spaces();
                    match self.input.get(self.pos) {
                        None => return Err("Unbalanced parentheses".into()),
                        Some(b')') => {
                            self.pos += 1;
                            return Ok(Some(Value::List(items)));
                        }
                        Some(_) => match self.value(depth + 1)? {
                            Some(v) => items.push(v),
                            None => return Err("Unbalanced parentheses".into()),
                        },
                    }
                }
            }
            b')' => Err("Unbalanced parentheses".into()),
            b'"' => self.quoted().map(Some),
            b'{' => self.literal().map(Some),
            _ => self.atom().map(Some),
        }
    }

    fn quoted(&mut self) -> Result<Value, String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.input.get(self.pos) {
                None | Some(b'\r') | Some(b'\n') => return Err("Unterminated quoted string".into()),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Value::Str(out));
                }
                Some(b'\\') => match self.input.get(self.pos + 1) {
                    Some(&c @ (b'"' | b'\\')) => {
                        out.push(c);
                        self.pos += 2;
                    }
                    _ => return Err("Invalid escape in quoted string".into()),
                },
                Some(&c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> Result<Value, String> {
        let rest = &self.input[self.pos..];
        let close = rest
            .iter()
            .position(|&b| b == b'}')
            .ok_or("Invalid literal")?;
        let spec = &rest[1..close];
        let digits = spec.strip_suffix(b"+").unwrap_or(spec);
        let n = parse_number(digits).ok_or("Invalid literal length")? as usize;
        if rest.get(close + 1..close + 3) != Some(b"\r\n") {
            return Err("Literal length must end the line".into());
        }
        let start = self.pos + close + 3;
        let data = self
            .input
            .get(start..start.checked_add(n).ok_or("Invalid literal")?)
            .ok_or("Literal shorter than announced")?;
        self.pos = start + n;
        Ok(Value::Str(data.to_vec()))
    }

    /// An atom, or an astring's atom form. In a FETCH item (`BODY[HEADER.FIELDS (A B)]`,
    /// `BINARY.PEEK[1]`) the bracketed part may hold spaces and parentheses; elsewhere
    /// brackets are ordinary characters (`]` is an ASTRING-CHAR and `[` an ATOM-CHAR, so
    /// a mailbox may be called `a]b` or `[Gmail]`, and `RENAME a[ b]` is two names).
    fn atom(&mut self) -> Result<Value, String> {
        let start = self.pos;
        let rest = &self.input[start..];
        let item = [
            "BODY[",
            "BODY.PEEK[",
            "BINARY[",
            "BINARY.PEEK[",
            "BINARY.SIZE[",
        ]
        .iter()
        .any(|p| rest.len() >= p.len() && rest[..p.len()].eq_ignore_ascii_case(p.as_bytes()));
        if !self.scan_atom(item) {
            // A `[` that never closed: read it again as a plain atom.
            self.pos = start;
            self.scan_atom(false);
        }
        if let Some(&b) = self.input.get(self.pos) {
            if matches!(b, 0..=0x1f | 0x7f) {
                return Err("Control character in command".into());
            }
        }
        let bytes = &self.input[start..self.pos];
        if bytes.is_empty() {
            return Err("Unexpected character".into());
        }
        let text = std::str::from_utf8(bytes).map_err(|_| "Invalid UTF-8 in command")?;
        Ok(Value::Atom(text.to_string()))
    }
}

impl Parser<'_> {
    /// Advances over an atom; with `pair_brackets`, spaces and parentheses inside
    /// brackets belong to it. False when a bracket was left open.
    fn scan_atom(&mut self, pair_brackets: bool) -> bool {
        let mut open = 0usize;
        while let Some(&b) = self.input.get(self.pos) {
            match b {
                b'[' if pair_brackets => open += 1,
                b']' if open > 0 => open -= 1,
                b' ' | b'(' | b')' | b'"' | b'{' if open == 0 => break,
                0..=0x1f | 0x7f => break,
                _ => {}
            }
            self.pos += 1;
        }
        open == 0
    }
}

/// A decimal number that fits in u32 (no sign, no leading `+`).
pub fn parse_number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A literal announced at the end of a line: `{n}` or `{n+}` before the CRLF. Returns
/// the length (u64, never used to size an allocation) and whether it is non-synchronising.
/// A number too long to be a length is reported as `u64::MAX`.
pub fn trailing_literal(line: &[u8]) -> Option<(u64, bool)> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let spec = &line[open + 1..];
    let (digits, plus) = match spec.strip_suffix(b"+") {
        Some(d) => (d, true),
        None => (spec, false),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = if digits.len() > 19 {
        u64::MAX
    } else {
        std::str::from_utf8(digits)
            .ok()?
            .parse()
            .unwrap_or(u64::MAX)
    };
    Some((n, plus))
}

/// The tag of a (partial) command, if it has a plausible one (for a BAD about a line or
/// literal that is never parsed as a whole).
pub fn tag_of(command: &[u8]) -> Option<String> {
    let end = command.iter().position(|&b| b == b' ')?;
    let tag = std::str::from_utf8(&command[..end]).ok()?;
    (!tag.is_empty()
        && tag
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\+".contains(&b)))
    .then(|| tag.to_string())
}

/// Whether a literal announced after `head` is APPEND's message (the mailbox name is
/// already complete), which the reader streams instead of reading into memory.
pub fn is_append_message(head: &[u8]) -> bool {
    match parse_command(head) {
        // A CATENATE's literals are parts, read with the command.
        Ok(c) => c.name == "APPEND" && !c.args.is_empty() && url::catenate_at(&c.args).is_none(),
        Err(_) => false,
    }
}

/// A line without its CRLF (or bare LF).
pub fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// One range of a sequence set; `u32::MAX` stands for `*`.
pub type Range = (u32, u32);

/// Parses `1:4,7,9:*`. Zero is invalid.
pub fn sequence_set(text: &str) -> Result<Vec<Range>, String> {
    let bad = || format!("Invalid sequence set {text:?}");
    if text.is_empty() {
        return Err(bad());
    }
    let number = |s: &str| -> Result<u32, String> {
        if s == "*" {
            return Ok(u32::MAX);
        }
        match parse_number(s.as_bytes()) {
            // An explicit number is a number, never `*`: the largest one (2^32 - 1, the
            // value `*` is kept as) is read one lower, which no UID ever reaches.
            Some(n) if n > 0 => Ok(n.min(u32::MAX - 1)),
            _ => Err(bad()),
        }
    };
    text.split(',')
        .map(|part| match part.split_once(':') {
            Some((a, b)) => {
                let (a, b) = (number(a)?, number(b)?);
                Ok((a.min(b), a.max(b)))
            }
            None => {
                let n = number(part)?;
                Ok((n, n))
            }
        })
        .collect()
}

/// Whether `n` is in the set; `max` is the value `*` stands for.
pub fn in_set(set: &[Range], n: u32, max: u32) -> bool {
    set.iter().any(|&(a, b)| {
        let a = if a == u32::MAX { max } else { a };
        let b = if b == u32::MAX { max } else { b };
        a.min(b) <= n && n <= a.max(b)
    })
}

/// A sequence set argument: numbers and ranges, or `$`, the UIDs saved by SEARCHRES
/// (RFC 5182 §2.1), which only the session can resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceSet {
    Saved,
    Ranges(Vec<Range>),
}

/// A sequence set argument: the atom `$`, or a set as an atom or a string.
pub fn sequence_set_arg(value: &Value) -> Result<SequenceSet, String> {
    if value.atom() == Some("$") {
        return Ok(SequenceSet::Saved);
    }
    value
        .text()
        .and_then(|t| sequence_set(&t))
        .map(SequenceSet::Ranges)
}

/// A message's flags as a command gives them: system-flag bits ([`flags`]) and keywords.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub system: u8,
    pub keywords: Vec<String>,
}

/// Parses a flag list (or a single flag) into system-flag bits and keywords.
pub fn parse_flags(value: &Value) -> Result<Flags, String> {
    let items: Vec<&Value> = match value {
        Value::List(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut system = 0;
    let mut keywords = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for item in items {
        let Value::Atom(flag) = item else {
            return Err("Flags must be atoms".into());
        };
        if let Some(bit) = system_flag(flag) {
            system |= bit;
        } else if flag.starts_with('\\') {
            return Err(format!("Unknown system flag {flag}"));
        } else if flag.contains(['[', ']', '*', '%']) {
            return Err(format!("Invalid keyword {flag}"));
        } else if seen.insert(flag.to_ascii_lowercase()) {
            if keywords.len() == MAX_FLAG_KEYWORDS {
                return Err(format!("At most {MAX_FLAG_KEYWORDS} keywords"));
            }
            keywords.push(flag.clone());
        }
    }
    Ok(Flags { system, keywords })
}

/// Keywords one flag list may name (a mailbox holds at most as many, see the session).
pub const MAX_FLAG_KEYWORDS: usize = 128;

pub fn system_flag(name: &str) -> Option<u8> {
    Some(match name.to_ascii_lowercase().as_str() {
        "\\seen" => flags::SEEN,
        "\\answered" => flags::ANSWERED,
        "\\flagged" => flags::FLAGGED,
        "\\deleted" => flags::DELETED,
        "\\draft" => flags::DRAFT,
        _ => return None,
    })
}

/// Sorted numbers as ranges, consecutive ones merged (`$` of SEARCHRES can be large).
pub fn ranges_of(numbers: &[u32]) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::new();
    for &n in numbers {
        match out.last_mut() {
            Some(last) if last.1.checked_add(1) == Some(n) => last.1 = n,
            _ => out.push((n, n)),
        }
    }
    out
}

/// `1-Feb-1994` → days since the epoch.
pub fn parse_date(text: &str) -> Result<i64, String> {
    let bad = || format!("Invalid date {text:?}");
    let mut parts = text.split('-');
    let (Some(d), Some(m), Some(y), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let day = parse_number(d.trim().as_bytes())
        .filter(|d| (1..=31).contains(d))
        .ok_or_else(bad)?;
    let month = month_number(m).ok_or_else(bad)?;
    let year = parse_number(y.as_bytes())
        .filter(|y| (1..=9999).contains(y))
        .ok_or_else(bad)?;
    Ok(days_from_civil(year as i64, month, day))
}

/// APPEND's date-time: `"17-Jul-1996 02:44:25 -0700"` → Unix time.
pub fn parse_date_time(text: &str) -> Result<i64, String> {
    let bad = || format!("Invalid date-time {text:?}");
    let mut parts = text.split_whitespace();
    let (Some(date), Some(time), Some(zone), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let days = parse_date(date).map_err(|_| bad())?;
    let hms: Vec<u32> = time
        .split(':')
        .map(|p| parse_number(p.as_bytes()).ok_or_else(bad))
        .collect::<Result<_, _>>()?;
    if hms.len() != 3 || hms[0] > 23 || hms[1] > 59 || hms[2] > 60 {
        return Err(bad());
    }
    let zb = zone.as_bytes();
    if zb.len() != 5 || !matches!(zb[0], b'+' | b'-') {
        return Err(bad());
    }
    let zh = parse_number(&zb[1..3]).ok_or_else(bad)? as i64;
    let zm = parse_number(&zb[3..5]).ok_or_else(bad)? as i64;
    let offset = (zh * 60 + zm) * 60 * if zb[0] == b'-' { -1 } else { 1 };
    Ok(days * 86400 + (hms[0] * 3600 + hms[1] * 60 + hms[2]) as i64 - offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::encode::{date_time as format_date_time, flag_list};

    fn parse(s: &str) -> RawCommand {
        parse_command(s.as_bytes()).unwrap()
    }

    #[test]
    fn commands_and_values() {
        let c = parse("a1 login alice \"pass \\\"word\\\"\"");
        assert_eq!(c.tag, "a1");
        assert_eq!(c.name, "LOGIN");
        assert_eq!(c.args[1], Value::Str(b"pass \"word\"".to_vec()));
        let c = parse("a2 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From Subject)]<0.100>)");
        let items = fetch_items(&c.args[1]).unwrap();
        assert_eq!(
            items[1],
            FetchItem::Body {
                peek: true,
                section: Section::Fields(false, vec!["FROM".into(), "SUBJECT".into()]),
                partial: Some((0, 100)),
            }
        );
        let c = parse_command(b"a3 LOGIN {5}\r\nalice {3+}\r\nabc").unwrap();
        assert_eq!(
            c.args,
            vec![Value::Str(b"alice".to_vec()), Value::Str(b"abc".to_vec())]
        );
    }

    #[test]
    fn bad_input_is_an_error_with_the_tag() {
        for bad in [
            &b"a1 SEARCH (ALL"[..],
            b"a1 SEARCH ALL)",
            b"a1 LOGIN \"unterminated",
            b"a1 LOGIN \xff\xfe x",
            b"a1 LOGIN {10}\r\nshort",
        ] {
            let (tag, _) = parse_command(bad).unwrap_err();
            assert_eq!(tag.as_deref(), Some("a1"), "{bad:?}");
        }
        // An unclosed `[` is an ordinary atom character; FETCH then refuses the item.
        let request = crate::imap::parse::parse_request(b"a1 FETCH 1 BODY[HEADER", false).unwrap();
        assert_eq!(request.tag, "a1");
        assert_eq!(request.command.unwrap_err(), "Invalid section");
        assert_eq!(parse_command(b"").unwrap_err().0, None);
        assert_eq!(parse_command(b"+ x").unwrap_err().0, None);
        let deep = format!("a1 SEARCH {}ALL{}", "(".repeat(100), ")".repeat(100));
        assert!(parse_command(deep.as_bytes()).is_err());
    }

    #[test]
    fn sequence_sets() {
        assert_eq!(
            sequence_set("1:3,5,7:*").unwrap(),
            vec![(1, 3), (5, 5), (7, u32::MAX)]
        );
        assert_eq!(sequence_set("4:2").unwrap(), vec![(2, 4)]);
        for bad in ["", "0", "1:0", "a", "1,,2", "1:2:3", "-1", "99999999999"] {
            assert!(sequence_set(bad).is_err(), "{bad}");
        }
        let set = sequence_set("2,5:*").unwrap();
        assert!(in_set(&set, 2, 9) && in_set(&set, 9, 9) && !in_set(&set, 3, 9));
        // "*" with an empty mailbox, and n:* where n > max.
        assert!(in_set(&sequence_set("7:*").unwrap(), 5, 5));
    }

    #[test]
    fn an_explicit_largest_number_is_not_star() {
        // Issue 11: UID SEARCH UID 7:4294967295 with UIDNEXT 7 returned UID 6.
        let set = sequence_set("7:4294967295").unwrap();
        assert!(!in_set(&set, 6, 6));
        assert!(in_set(&set, 7, 7));
        assert!(
            in_set(&sequence_set("7:*").unwrap(), 6, 6),
            "`*` is the last message"
        );
    }

    #[test]
    fn literals_at_line_end() {
        assert_eq!(
            trailing_literal(b"a APPEND INBOX {12}\r\n"),
            Some((12, false))
        );
        assert_eq!(trailing_literal(b"a LOGIN {5+}\r\n"), Some((5, true)));
        assert_eq!(
            trailing_literal(b"a APPEND INBOX {4294967296}\r\n"),
            Some((4294967296, false))
        );
        assert_eq!(
            trailing_literal(b"a APPEND INBOX {99999999999999999999999999}\r\n"),
            Some((u64::MAX, false))
        );
        assert_eq!(trailing_literal(b"a NOOP\r\n"), None);
        assert_eq!(trailing_literal(b"a X {}\r\n"), None);
    }

    #[test]
    fn dates() {
        assert_eq!(format_date_time(0), "01-Jan-1970 00:00:00 +0000");
        let t = parse_date_time("17-Jul-1996 02:44:25 -0700").unwrap();
        assert_eq!(format_date_time(t), "17-Jul-1996 09:44:25 +0000");
        assert!(parse_date_time("32-Jul-1996 02:44:25 -0700").is_err());
        assert!(parse_date("1-Foo-2000").is_err());
    }

    #[test]
    fn flags_parse_and_format() {
        let c = parse("a STORE 1 +FLAGS (\\Seen \\Deleted $Work)");
        let Flags { system, keywords } = parse_flags(&c.args[2]).unwrap();
        assert_eq!(system, flags::SEEN | flags::DELETED);
        assert_eq!(keywords, vec!["$Work".to_string()]);
        assert_eq!(
            flag_list(system, &keywords, false),
            "(\\Seen \\Deleted $Work)"
        );
        assert!(parse_flags(&parse("a X (\\Bogus)").args[0]).is_err());
    }

    #[test]
    fn session_helpers() {
        assert_eq!(tag_of(b"a1 LOGIN x"), Some("a1".into()));
        assert_eq!(tag_of(b"LOGIN"), None);
        assert_eq!(tag_of(b"a{ LOGIN"), None);
        assert!(is_append_message(b"a APPEND INBOX (\\Seen) "));
        assert!(!is_append_message(b"a APPEND "));
        assert!(!is_append_message(b"a LOGIN alice "));
        assert_eq!(trim_crlf(b"DONE\r\n"), b"DONE");
        assert_eq!(trim_crlf(b"DONE\n"), b"DONE");
        assert_eq!(
            sequence_set_arg(&parse("a X $").args[0]).unwrap(),
            SequenceSet::Saved
        );
        assert_eq!(
            sequence_set_arg(&parse("a X \"1:2\"").args[0]).unwrap(),
            SequenceSet::Ranges(vec![(1, 2)])
        );
        assert!(sequence_set_arg(&parse("a X \"$\"").args[0]).is_err());
        assert_eq!(ranges_of(&[1, 2, 3, 7, 9, 10]), [(1, 3), (7, 7), (9, 10)]);
    }
}
