//! IMAP command syntax (pure): a command's bytes, literals already inlined by the session's
//! reader, become a tag, a command name and a tree of [`Value`]s; helpers turn values into
//! sequence sets, flags, FETCH items and SEARCH keys. Every error is a message for a
//! tagged BAD; nothing here panics or allocates more than the input's size.

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

/// A parsed command line: `tag name args...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: String,
    /// Upper-cased command name.
    pub name: String,
    pub args: Vec<Value>,
}

/// Deepest list nesting accepted (SEARCH with nested NOT/OR lists stays far below it).
const MAX_DEPTH: usize = 32;

/// Splits a complete command (without its final CRLF) into tag, name and arguments.
/// On error returns the tag (if one could be read, for a tagged BAD) and a message.
pub fn parse_command(input: &[u8]) -> Result<Command, (Option<String>, String)> {
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
        Ok(Command {
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

    fn atom(&mut self) -> Result<Value, String> {
        let start = self.pos;
        let mut brackets = 0usize;
        while let Some(&b) = self.input.get(self.pos) {
            match b {
                b'[' => brackets += 1,
                b']' if brackets > 0 => brackets -= 1,
                b']' => return Err("Unbalanced brackets".into()),
                b' ' | b'(' | b')' if brackets == 0 => break,
                b'"' | b'{' if brackets == 0 => break,
                0..=0x1f | 0x7f => return Err("Control character in command".into()),
                _ => {}
            }
            self.pos += 1;
        }
        if brackets > 0 {
            return Err("Unbalanced brackets".into());
        }
        let bytes = &self.input[start..self.pos];
        if bytes.is_empty() {
            return Err("Unexpected character".into());
        }
        let text = std::str::from_utf8(bytes).map_err(|_| "Invalid UTF-8 in command")?;
        Ok(Value::Atom(text.to_string()))
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
            Some(n) if n > 0 => Ok(n),
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

/// Parses a flag list (or a single flag) into system-flag bits and keywords.
pub fn parse_flags(value: &Value) -> Result<(u8, Vec<String>), String> {
    let items: Vec<&Value> = match value {
        Value::List(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut system = 0;
    let mut keywords = Vec::new();
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
        } else if !keywords
            .iter()
            .any(|k: &String| k.eq_ignore_ascii_case(flag))
        {
            keywords.push(flag.clone());
        }
    }
    Ok((system, keywords))
}

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

/// The flag list of a message as IMAP text.
pub fn flag_list(system: u8, keywords: &[String], recent: bool) -> String {
    let mut out = Vec::new();
    for (bit, name) in [
        (flags::SEEN, "\\Seen"),
        (flags::ANSWERED, "\\Answered"),
        (flags::FLAGGED, "\\Flagged"),
        (flags::DELETED, "\\Deleted"),
        (flags::DRAFT, "\\Draft"),
    ] {
        if system & bit != 0 {
            out.push(name.to_string());
        }
    }
    if recent {
        out.push("\\Recent".into());
    }
    out.extend(keywords.iter().cloned());
    format!("({})", out.join(" "))
}

/// A BODY[...] section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Section {
    Full,
    Header,
    Text,
    /// HEADER.FIELDS (true = NOT) with the field names.
    Fields(bool, Vec<String>),
    /// The MIME header of a part (only inside [`Section::Part`]).
    Mime,
    /// A MIME part (`1.2`), then what of it: Full (its body), Mime, or for an attached
    /// message Header, Text, Fields.
    Part(Vec<u32>, Box<Section>),
}

impl Section {
    /// The section as it is echoed in a FETCH response.
    pub fn name(&self) -> String {
        match self {
            Section::Full => String::new(),
            Section::Header => "HEADER".into(),
            Section::Text => "TEXT".into(),
            Section::Mime => "MIME".into(),
            Section::Fields(not, names) => format!(
                "HEADER.FIELDS{} ({})",
                if *not { ".NOT" } else { "" },
                names.join(" ")
            ),
            Section::Part(path, inner) => {
                let path: Vec<String> = path.iter().map(u32::to_string).collect();
                let inner = inner.name();
                if inner.is_empty() {
                    path.join(".")
                } else {
                    format!("{}.{inner}", path.join("."))
                }
            }
        }
    }
}

/// Parses the text between the brackets of BODY[...] (already upper-cased).
fn parse_section(text: &str) -> Result<Section, String> {
    let mut rest = text.trim();
    let mut path = Vec::new();
    loop {
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        let n = parse_number(&rest.as_bytes()[..end])
            .filter(|&n| n > 0)
            .ok_or("Invalid section part number")?;
        path.push(n);
        rest = &rest[end..];
        match rest.strip_prefix('.') {
            Some("") => return Err("Invalid section".into()),
            Some(r) => rest = r,
            None if rest.is_empty() => break,
            None => return Err("Invalid section".into()),
        }
    }
    let inner = match rest {
        "" => Section::Full,
        "HEADER" => Section::Header,
        "TEXT" => Section::Text,
        "MIME" if !path.is_empty() => Section::Mime,
        s => {
            let (not, names) = if let Some(n) = s.strip_prefix("HEADER.FIELDS.NOT") {
                (true, n)
            } else if let Some(n) = s.strip_prefix("HEADER.FIELDS") {
                (false, n)
            } else {
                return Err(format!("Invalid section {s}"));
            };
            let inner = names
                .trim()
                .strip_prefix('(')
                .and_then(|n| n.strip_suffix(')'))
                .ok_or("Invalid HEADER.FIELDS list")?;
            let fields: Vec<String> = inner
                .split_whitespace()
                .map(|f| f.trim_matches('"').to_string())
                .collect();
            if fields.is_empty() {
                return Err("Empty HEADER.FIELDS list".into());
            }
            Section::Fields(not, fields)
        }
    };
    Ok(if path.is_empty() {
        inner
    } else {
        Section::Part(path, Box::new(inner))
    })
}

/// One FETCH data item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchItem {
    Flags,
    InternalDate,
    Size,
    Uid,
    ModSeq,
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    Envelope,
    /// BODYSTRUCTURE (true) or BODY (false).
    Structure(bool),
    Body {
        peek: bool,
        section: Section,
        partial: Option<(u32, u32)>,
    },
    /// BINARY[part]<partial> (RFC 3516): the part with its transfer encoding undone.
    Binary {
        peek: bool,
        path: Vec<u32>,
        partial: Option<(u32, u32)>,
    },
    /// BINARY.SIZE[part].
    BinarySize(Vec<u32>),
}

/// Parses the FETCH item argument: a macro, one item, or a list.
pub fn fetch_items(value: &Value) -> Result<Vec<FetchItem>, String> {
    use FetchItem::*;
    match value {
        Value::Atom(a) => match a.to_ascii_uppercase().as_str() {
            "ALL" => Ok(vec![Flags, InternalDate, Size, Envelope]),
            "FULL" => Ok(vec![Flags, InternalDate, Size, Envelope, Structure(false)]),
            "FAST" => Ok(vec![Flags, InternalDate, Size]),
            _ => Ok(vec![fetch_item(a)?]),
        },
        Value::List(items) if !items.is_empty() => items
            .iter()
            .map(|v| match v {
                Value::Atom(a) => fetch_item(a),
                _ => Err("Invalid FETCH item".to_string()),
            })
            .collect(),
        _ => Err("Invalid FETCH items".into()),
    }
}

fn fetch_item(text: &str) -> Result<FetchItem, String> {
    use FetchItem::*;
    let upper = text.to_ascii_uppercase();
    Ok(match upper.as_str() {
        "FLAGS" => Flags,
        "INTERNALDATE" => InternalDate,
        "RFC822.SIZE" => Size,
        "UID" => Uid,
        "MODSEQ" => ModSeq,
        "RFC822" => Rfc822,
        "RFC822.HEADER" => Rfc822Header,
        "RFC822.TEXT" => Rfc822Text,
        "ENVELOPE" => Envelope,
        "BODYSTRUCTURE" => Structure(true),
        "BODY" => Structure(false),
        _ => {
            let (kind, peek, rest) = [
                ("BODY.PEEK[", "BODY", true),
                ("BODY[", "BODY", false),
                ("BINARY.PEEK[", "BINARY", true),
                ("BINARY[", "BINARY", false),
                ("BINARY.SIZE[", "BINARY.SIZE", false),
            ]
            .iter()
            .find_map(|(prefix, kind, peek)| Some((*kind, *peek, upper.strip_prefix(prefix)?)))
            .ok_or_else(|| format!("Unknown FETCH item {text}"))?;
            let close = rest.find(']').ok_or("Invalid section")?;
            let section = parse_section(&rest[..close])?;
            let partial = parse_partial(&rest[close + 1..])?;
            match kind {
                "BODY" => Body {
                    peek,
                    section,
                    partial,
                },
                // section-binary is only a part number (RFC 3516 §4.2).
                _ => {
                    let path = match section {
                        Section::Full => Vec::new(),
                        Section::Part(path, inner) if *inner == Section::Full => path,
                        _ => return Err("BINARY takes only a part number".into()),
                    };
                    if kind == "BINARY" {
                        Binary {
                            peek,
                            path,
                            partial,
                        }
                    } else if partial.is_none() {
                        BinarySize(path)
                    } else {
                        return Err("BINARY.SIZE takes no partial".into());
                    }
                }
            }
        }
    })
}

/// `<start.length>` after a section, or nothing.
fn parse_partial(after: &str) -> Result<Option<(u32, u32)>, String> {
    if after.is_empty() {
        return Ok(None);
    }
    let inner = after
        .strip_prefix('<')
        .and_then(|p| p.strip_suffix('>'))
        .ok_or("Invalid partial")?;
    let (a, b) = inner.split_once('.').ok_or("Invalid partial")?;
    let start = parse_number(a.as_bytes()).ok_or("Invalid partial")?;
    let len = parse_number(b.as_bytes())
        .filter(|&n| n > 0)
        .ok_or("Invalid partial")?;
    Ok(Some((start, len)))
}

/// A SEARCH key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    Seq(Vec<Range>),
    Uid(Vec<Range>),
    Flag(u8, bool),
    Keyword(String, bool),
    Header(String, String),
    Body(String),
    Text(String),
    /// Internal date (arrival), in days since 1970.
    Before(i64),
    On(i64),
    Since(i64),
    /// The Date: header's calendar day, time and zone disregarded (RFC 3501 §6.4.4).
    SentBefore(i64),
    SentOn(i64),
    SentSince(i64),
    Larger(u64),
    Smaller(u64),
    /// CONDSTORE: modseq at least this.
    ModSeq(u64),
    /// SEARCHRES `$`: the result saved by an earlier `SEARCH RETURN (SAVE)`.
    Saved,
    Not(Box<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    And(Vec<SearchKey>),
}

impl SearchKey {
    /// Replaces `$` with the saved UIDs (an empty set when nothing was saved).
    pub fn with_saved(self, saved: &[u32]) -> SearchKey {
        use SearchKey::*;
        match self {
            Saved => Uid(ranges_of(saved)),
            Not(k) => Not(Box::new(k.with_saved(saved))),
            Or(a, b) => Or(Box::new(a.with_saved(saved)), Box::new(b.with_saved(saved))),
            And(keys) => And(keys.into_iter().map(|k| k.with_saved(saved)).collect()),
            other => other,
        }
    }

    /// Whether the key contains MODSEQ (the reply then carries the highest modseq).
    pub fn uses_modseq(&self) -> bool {
        match self {
            SearchKey::ModSeq(_) => true,
            SearchKey::Not(k) => k.uses_modseq(),
            SearchKey::Or(a, b) => a.uses_modseq() || b.uses_modseq(),
            SearchKey::And(keys) => keys.iter().any(SearchKey::uses_modseq),
            _ => false,
        }
    }
}

/// ESEARCH (RFC 4731) and SEARCHRES (RFC 5182) result options of `SEARCH RETURN (...)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchReturn {
    pub min: bool,
    pub max: bool,
    pub all: bool,
    pub count: bool,
    pub save: bool,
}

impl SearchReturn {
    /// `RETURN ()` means ALL (RFC 4731 §3.1).
    fn all() -> SearchReturn {
        SearchReturn {
            all: true,
            ..SearchReturn::default()
        }
    }
}

/// Splits off `RETURN (options)` from SEARCH arguments. `None` means a plain
/// (IMAP4rev1) SEARCH.
pub fn search_return(args: &[Value]) -> Result<(Option<SearchReturn>, &[Value]), String> {
    match args {
        [Value::Atom(a), Value::List(options), rest @ ..] if a.eq_ignore_ascii_case("RETURN") => {
            if options.is_empty() {
                return Ok((Some(SearchReturn::all()), rest));
            }
            let mut r = SearchReturn::default();
            for option in options {
                match option.atom().map(str::to_ascii_uppercase).as_deref() {
                    Some("MIN") => r.min = true,
                    Some("MAX") => r.max = true,
                    Some("ALL") => r.all = true,
                    Some("COUNT") => r.count = true,
                    Some("SAVE") => r.save = true,
                    _ => return Err("Unknown SEARCH return option".into()),
                }
            }
            Ok((Some(r), rest))
        }
        [Value::Atom(a), ..] if a.eq_ignore_ascii_case("RETURN") => {
            Err("RETURN needs a list of options".into())
        }
        _ => Ok((None, args)),
    }
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

/// The compact form of sorted numbers: `1:3,7,9:10`.
pub fn format_set(numbers: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = numbers[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// Parses SEARCH arguments (after an optional CHARSET, which must be UTF-8 or US-ASCII).
pub fn search_keys(args: &[Value]) -> Result<SearchKey, String> {
    let mut args = args;
    if let Some(Value::Atom(a)) = args.first() {
        if a.eq_ignore_ascii_case("CHARSET") {
            let charset = args.get(1).ok_or("CHARSET needs a name")?.text()?;
            if !charset.eq_ignore_ascii_case("UTF-8") && !charset.eq_ignore_ascii_case("US-ASCII") {
                return Err("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset".into());
            }
            args = &args[2..];
        }
    }
    let mut it = args.iter();
    let mut keys = Vec::new();
    while let Some(v) = it.next() {
        keys.push(search_key(v, &mut it)?);
    }
    if keys.is_empty() {
        return Err("SEARCH needs a key".into());
    }
    Ok(if keys.len() == 1 {
        keys.remove(0)
    } else {
        SearchKey::And(keys)
    })
}

fn search_key<'a>(
    first: &Value,
    rest: &mut impl Iterator<Item = &'a Value>,
) -> Result<SearchKey, String> {
    use SearchKey::*;
    let mut next = |what: &str| -> Result<&'a Value, String> {
        rest.next().ok_or(format!("{what} needs an argument"))
    };
    let atom = match first {
        Value::List(items) => {
            let mut it = items.iter();
            let mut keys = Vec::new();
            while let Some(v) = it.next() {
                keys.push(search_key(v, &mut it)?);
            }
            if keys.is_empty() {
                return Err("Empty search list".into());
            }
            return Ok(And(keys));
        }
        Value::Str(_) => return Err("Unexpected string in SEARCH".into()),
        Value::Atom(a) => a.to_ascii_uppercase(),
    };
    Ok(match atom.as_str() {
        "ALL" => All,
        "SEEN" => Flag(flags::SEEN, true),
        "UNSEEN" => Flag(flags::SEEN, false),
        "FLAGGED" => Flag(flags::FLAGGED, true),
        "UNFLAGGED" => Flag(flags::FLAGGED, false),
        "DELETED" => Flag(flags::DELETED, true),
        "UNDELETED" => Flag(flags::DELETED, false),
        "ANSWERED" => Flag(flags::ANSWERED, true),
        "UNANSWERED" => Flag(flags::ANSWERED, false),
        "DRAFT" => Flag(flags::DRAFT, true),
        "UNDRAFT" => Flag(flags::DRAFT, false),
        // Nothing is ever \Recent in this server's sessions.
        "RECENT" => Not(Box::new(All)),
        "OLD" => All,
        "NEW" => And(vec![Not(Box::new(All))]),
        "KEYWORD" => Keyword(next(&atom)?.text()?, true),
        "UNKEYWORD" => Keyword(next(&atom)?.text()?, false),
        "FROM" | "TO" | "CC" | "BCC" | "SUBJECT" => Header(atom.clone(), next(&atom)?.text()?),
        "HEADER" => {
            let field = next(&atom)?.text()?;
            Header(field.to_ascii_uppercase(), next(&atom)?.text()?)
        }
        "BODY" => Body(next(&atom)?.text()?),
        "TEXT" => Text(next(&atom)?.text()?),
        "BEFORE" => Before(parse_date(&next(&atom)?.text()?)?),
        "ON" => On(parse_date(&next(&atom)?.text()?)?),
        "SINCE" => Since(parse_date(&next(&atom)?.text()?)?),
        "SENTBEFORE" => SentBefore(parse_date(&next(&atom)?.text()?)?),
        "SENTON" => SentOn(parse_date(&next(&atom)?.text()?)?),
        "SENTSINCE" => SentSince(parse_date(&next(&atom)?.text()?)?),
        "LARGER" => Larger(number_arg(next(&atom)?)? as u64),
        "SMALLER" => Smaller(number_arg(next(&atom)?)? as u64),
        "UID" => Uid(sequence_set(&next(&atom)?.text()?)?),
        "MODSEQ" => {
            // RFC 7162: MODSEQ [entry-name entry-type] mod-sequence-valzer.
            let mut value = next(&atom)?;
            if matches!(value, Value::Str(_)) {
                next(&atom)?;
                value = next(&atom)?;
            }
            let n = value
                .atom()
                .and_then(|a| a.parse::<u64>().ok())
                .ok_or("Invalid MODSEQ value")?;
            ModSeq(n)
        }
        "NOT" => {
            let v = next(&atom)?;
            Not(Box::new(search_key(v, rest)?))
        }
        "OR" => {
            let a = next(&atom)?;
            let a = search_key(a, rest)?;
            let b = rest.next().ok_or("OR needs two keys")?;
            let b = search_key(b, rest)?;
            Or(Box::new(a), Box::new(b))
        }
        "$" => Saved,
        _ if atom.starts_with(|c: char| c.is_ascii_digit() || c == '*') => {
            Seq(sequence_set(&atom)?)
        }
        _ => return Err(format!("Unknown search key {atom}")),
    })
}

fn number_arg(v: &Value) -> Result<u32, String> {
    v.atom()
        .and_then(|a| parse_number(a.as_bytes()))
        .ok_or_else(|| "Expected a number".into())
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// (year, month, day) of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
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
    let month = MONTHS
        .iter()
        .position(|x| x.eq_ignore_ascii_case(m))
        .ok_or_else(bad)? as u32
        + 1;
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

/// Unix time → `"17-Jul-1996 02:44:25 +0000"`.
pub fn format_date_time(t: i64) -> String {
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{d:02}-{}-{y:04} {:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Quotes a string for a response: a quoted string when safe, else a literal.
pub fn quote(s: &str) -> String {
    if s.bytes().any(|b| b == b'\r' || b == b'\n' || b >= 0x80) {
        format!("{{{}}}\r\n{s}", s.len())
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Command {
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
            b"a1 FETCH 1 BODY[HEADER",
            b"a1 LOGIN {10}\r\nshort",
        ] {
            let (tag, _) = parse_command(bad).unwrap_err();
            assert_eq!(tag.as_deref(), Some("a1"), "{bad:?}");
        }
        assert_eq!(parse_command(b"").unwrap_err().0, None);
        assert_eq!(parse_command(b"+ x").unwrap_err().0, None);
        let deep = format!("a1 SEARCH {}ALL{}", "(".repeat(100), ")".repeat(100));
        assert!(parse_command(deep.as_bytes()).is_err());
    }

    #[test]
    fn sections() {
        let item = |s: &str| match fetch_item(s).unwrap() {
            FetchItem::Body { section, .. } => section,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            item("BODY[1]"),
            Section::Part(vec![1], Box::new(Section::Full))
        );
        assert_eq!(
            item("body.peek[2.1.MIME]"),
            Section::Part(vec![2, 1], Box::new(Section::Mime))
        );
        assert_eq!(
            item("BODY[2.HEADER.FIELDS (X)]").name(),
            "2.HEADER.FIELDS (X)"
        );
        for bad in [
            "BODY[MIME]",
            "BODY[1.]",
            "BODY[0]",
            "BODY[1x]",
            "BODY[FOO]",
            "BODY[1..2]",
        ] {
            assert!(fetch_item(bad).is_err(), "{bad}");
        }
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
    fn binary_items_and_search_return_options() {
        let c = parse("a FETCH 1 (BINARY.PEEK[1.2]<0.10> BINARY.SIZE[3] BINARY[])");
        let items = fetch_items(&c.args[1]).unwrap();
        assert_eq!(
            items,
            vec![
                FetchItem::Binary {
                    peek: true,
                    path: vec![1, 2],
                    partial: Some((0, 10))
                },
                FetchItem::BinarySize(vec![3]),
                FetchItem::Binary {
                    peek: false,
                    path: vec![],
                    partial: None
                },
            ]
        );
        for bad in ["BINARY[1.HEADER]", "BINARY[TEXT]", "BINARY.SIZE[1]<0.5>"] {
            let c = parse(&format!("a FETCH 1 {bad}"));
            assert!(fetch_items(&c.args[1]).is_err(), "{bad}");
        }
        let c = parse("a SEARCH RETURN (MIN COUNT save) CHARSET UTF-8 $");
        let (options, rest) = search_return(&c.args).unwrap();
        let options = options.unwrap();
        assert!(options.min && options.count && options.save && !options.all && !options.max);
        assert_eq!(search_keys(rest).unwrap(), SearchKey::Saved);
        let c = parse("a SEARCH RETURN () ALL");
        assert!(search_return(&c.args).unwrap().0.unwrap().all);
        let c = parse("a SEARCH RETURN (BOGUS) ALL");
        assert!(search_return(&c.args).is_err());
        let c = parse("a SEARCH ALL");
        assert_eq!(search_return(&c.args).unwrap().0, None);
        assert_eq!(format_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(ranges_of(&[1, 2, 3, 7, 9, 10]), [(1, 3), (7, 7), (9, 10)]);
        assert_eq!(format_set(&[]), "");
        assert_eq!(
            SearchKey::Not(Box::new(SearchKey::Saved)).with_saved(&[4]),
            SearchKey::Not(Box::new(SearchKey::Uid(vec![(4, 4)])))
        );
    }

    #[test]
    fn search_keys_parse() {
        let c = parse("a SEARCH CHARSET UTF-8 OR FROM alice NOT SEEN SINCE 1-Feb-2020 1:3");
        let key = search_keys(&c.args).unwrap();
        let SearchKey::And(keys) = key else { panic!() };
        assert_eq!(keys.len(), 3);
        assert!(matches!(keys[0], SearchKey::Or(..)));
        assert_eq!(keys[1], SearchKey::Since(days_from_civil(2020, 2, 1)));
        assert!(search_keys(&parse("a SEARCH FROM").args).is_err());
        assert!(search_keys(&parse("a SEARCH CHARSET KOI8-R ALL").args).is_err());
        assert!(search_keys(&parse("a SEARCH BOGUS").args).is_err());
        assert!(search_keys(&parse("a SEARCH 0:4").args).is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(format_date_time(0), "01-Jan-1970 00:00:00 +0000");
        let t = parse_date_time("17-Jul-1996 02:44:25 -0700").unwrap();
        assert_eq!(format_date_time(t), "17-Jul-1996 09:44:25 +0000");
        assert!(parse_date_time("32-Jul-1996 02:44:25 -0700").is_err());
        assert!(parse_date("1-Foo-2000").is_err());
        for days in [-1000, 0, 11016, 20000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn flags_parse_and_format() {
        let c = parse("a STORE 1 +FLAGS (\\Seen \\Deleted $Work)");
        let (system, keywords) = parse_flags(&c.args[2]).unwrap();
        assert_eq!(system, flags::SEEN | flags::DELETED);
        assert_eq!(keywords, vec!["$Work".to_string()]);
        assert_eq!(
            flag_list(system, &keywords, false),
            "(\\Seen \\Deleted $Work)"
        );
        assert!(parse_flags(&parse("a X (\\Bogus)").args[0]).is_err());
    }
}
