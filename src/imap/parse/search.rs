//! SEARCH syntax (RFC 9051 §6.4.4, RFC 7162 MODSEQ, RFC 4731 ESEARCH and RFC 5182
//! SEARCHRES result options): keys and `RETURN (...)`.

use super::{parse_date, parse_number, ranges_of, sequence_set, Range, Value};
use crate::store::flags;

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
    /// WITHIN (RFC 5032): an internal date more than (OLDER) or at most (YOUNGER) this
    /// many seconds before the search.
    Older(u64),
    Younger(u64),
    /// SAVEDATE (RFC 8514): the day the message was saved into the mailbox (the internal
    /// date's when not known), in days since 1970.
    SavedBefore(i64),
    SavedOn(i64),
    SavedSince(i64),
    /// Whether the mailbox keeps save dates: here always.
    SaveDateSupported,
    /// SEARCHRES `$`: the result saved by an earlier `SEARCH RETURN (SAVE)`.
    Saved,
    /// `\Recent` in this session (RFC 3501 §2.3.2; NEW is RECENT UNSEEN, OLD is NOT RECENT).
    Recent,
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

    /// How many keys look into the message's bytes (header fields, BODY, TEXT): each
    /// costs a pass over every message searched.
    pub fn content_keys(&self) -> usize {
        match self {
            SearchKey::Header(..) | SearchKey::Body(_) | SearchKey::Text(_) => 1,
            SearchKey::Not(k) => k.content_keys(),
            SearchKey::Or(a, b) => a.content_keys() + b.content_keys(),
            SearchKey::And(keys) => keys.iter().map(SearchKey::content_keys).sum(),
            _ => 0,
        }
    }

    /// Whether any key in the tree (NOT, OR and AND looked through) is one `leaf` picks.
    fn any(&self, leaf: &impl Fn(&SearchKey) -> bool) -> bool {
        match self {
            SearchKey::Not(k) => k.any(leaf),
            SearchKey::Or(a, b) => a.any(leaf) || b.any(leaf),
            SearchKey::And(keys) => keys.iter().any(|k| k.any(leaf)),
            key => leaf(key),
        }
    }

    /// Whether the key looks at save dates (each message's is then looked up).
    pub fn uses_save_date(&self) -> bool {
        self.any(&|k| {
            matches!(
                k,
                SearchKey::SavedBefore(_) | SearchKey::SavedOn(_) | SearchKey::SavedSince(_)
            )
        })
    }

    /// Whether a message's match can change without the message changing: keys on
    /// sequence numbers, on `*` (the last UID), or on the time of the search (WITHIN).
    /// Other keys need looking at only the messages that are new or changed.
    pub fn depends_on_position(&self) -> bool {
        self.any(&|k| match k {
            SearchKey::Seq(_) | SearchKey::Older(_) | SearchKey::Younger(_) => true,
            SearchKey::Uid(ranges) => ranges.iter().any(|&(a, b)| a == u32::MAX || b == u32::MAX),
            _ => false,
        })
    }

    /// Whether the key contains MODSEQ (the reply then carries the highest modseq).
    pub fn uses_modseq(&self) -> bool {
        self.any(&|k| matches!(k, SearchKey::ModSeq(_)))
    }
}

/// ESEARCH (RFC 4731), SEARCHRES (RFC 5182) and CONTEXT (RFC 5267 §4) result options of
/// `SEARCH RETURN (...)`; CONTEXT itself is only a hint and is not kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchReturn {
    pub min: bool,
    pub max: bool,
    pub all: bool,
    pub count: bool,
    pub save: bool,
    /// PARTIAL low:high: the results at those positions (1 is the first), low ≤ high.
    pub partial: Option<(u32, u32)>,
    /// UPDATE: keep the search and report how its result changes (ADDTO/REMOVEFROM).
    pub update: bool,
}

impl SearchReturn {
    /// `RETURN ()` means ALL (RFC 4731 §3.1); IMAP4rev2 answers a plain SEARCH so too.
    pub fn all() -> SearchReturn {
        SearchReturn {
            all: true,
            ..SearchReturn::default()
        }
    }

    /// Whether a result line is sent: SAVE alone sends none (RFC 5182 §2.4).
    pub fn sends_result(&self) -> bool {
        self.min || self.max || self.all || self.count || self.partial.is_some() || self.update
    }
}

/// Splits off `RETURN (options)` from SEARCH arguments. `None` means a plain
/// (IMAP4rev1) SEARCH.
pub fn search_return(args: &[Value]) -> Result<(Option<SearchReturn>, &[Value]), String> {
    match args {
        [Value::Atom(a), Value::List(options), rest @ ..] if a.eq_ignore_ascii_case("RETURN") => {
            let mut r = SearchReturn::default();
            let mut it = options.iter();
            while let Some(option) = it.next() {
                match option.atom().map(str::to_ascii_uppercase).as_deref() {
                    Some("MIN") => r.min = true,
                    Some("MAX") => r.max = true,
                    Some("ALL") => r.all = true,
                    Some("COUNT") => r.count = true,
                    Some("SAVE") => r.save = true,
                    Some("UPDATE") => r.update = true,
                    // A hint that the search will be used again (RFC 5267 §4.2).
                    Some("CONTEXT") => {}
                    Some("PARTIAL") if r.partial.is_some() => {
                        return Err("PARTIAL can be used only once".into())
                    }
                    Some("PARTIAL") => {
                        let range = it.next().ok_or("PARTIAL needs a range")?;
                        r.partial = Some(partial_range(range)?);
                    }
                    _ => return Err("Unknown SEARCH return option".into()),
                }
            }
            if r.all && r.partial.is_some() {
                return Err("PARTIAL cannot be combined with ALL".into());
            }
            // Nothing but hints: the same as `RETURN ()`.
            if !r.sends_result() && !r.save {
                r.all = true;
            }
            Ok((Some(r), rest))
        }
        [Value::Atom(a), ..] if a.eq_ignore_ascii_case("RETURN") => {
            Err("RETURN needs a list of options".into())
        }
        _ => Ok((None, args)),
    }
}

/// `low:high` of PARTIAL (RFC 5267 §4.4): two non-zero numbers, either order, no `*`.
fn partial_range(value: &Value) -> Result<(u32, u32), String> {
    let text = value.atom().ok_or("Invalid PARTIAL range")?;
    let number = |s: &str| {
        s.parse::<u32>()
            .ok()
            .filter(|&n| n > 0 && !s.starts_with('+'))
    };
    match text.split_once(':') {
        Some((a, b)) => match (number(a), number(b)) {
            (Some(a), Some(b)) => Ok((a.min(b), a.max(b))),
            _ => Err("Invalid PARTIAL range".into()),
        },
        None => Err("Invalid PARTIAL range".into()),
    }
}

/// Parses SEARCH arguments (after an optional CHARSET, which must be UTF-8 or US-ASCII).
pub fn search_keys(args: &[Value]) -> Result<SearchKey, String> {
    let mut args = args;
    if let Some(Value::Atom(a)) = args.first() {
        if a.eq_ignore_ascii_case("CHARSET") {
            charset(args.get(1).ok_or("CHARSET needs a name")?)?;
            args = &args[2..];
        }
    }
    key_list(args)
}

/// Checks a search charset: UTF-8 and US-ASCII (its subset) are the ones we take.
pub fn charset(name: &Value) -> Result<(), String> {
    let charset = name.text()?;
    if !charset.eq_ignore_ascii_case("UTF-8") && !charset.eq_ignore_ascii_case("US-ASCII") {
        return Err("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset".into());
    }
    Ok(())
}

/// Search keys, all of which must match (no CHARSET before them).
pub fn key_list(args: &[Value]) -> Result<SearchKey, String> {
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

/// Flag keys: name, flag bit, whether the flag must be set.
const FLAG_KEYS: [(&str, u8, bool); 10] = [
    ("SEEN", flags::SEEN, true),
    ("UNSEEN", flags::SEEN, false),
    ("FLAGGED", flags::FLAGGED, true),
    ("UNFLAGGED", flags::FLAGGED, false),
    ("DELETED", flags::DELETED, true),
    ("UNDELETED", flags::DELETED, false),
    ("ANSWERED", flags::ANSWERED, true),
    ("UNANSWERED", flags::ANSWERED, false),
    ("DRAFT", flags::DRAFT, true),
    ("UNDRAFT", flags::DRAFT, false),
];

fn search_key<'a>(
    first: &Value,
    rest: &mut impl Iterator<Item = &'a Value>,
) -> Result<SearchKey, String> {
    use SearchKey::*;
    let atom = match first {
        Value::List(items) => return search_list(items),
        Value::Str(_) => return Err("Unexpected string in SEARCH".into()),
        Value::Atom(a) => a.to_ascii_uppercase(),
    };
    if let Some(&(_, bit, set)) = FLAG_KEYS.iter().find(|(name, ..)| *name == atom) {
        return Ok(Flag(bit, set));
    }
    let mut next = |what: &str| -> Result<&'a Value, String> {
        rest.next().ok_or(format!("{what} needs an argument"))
    };
    Ok(match atom.as_str() {
        "ALL" => All,
        "RECENT" => Recent,
        "OLD" => Not(Box::new(Recent)),
        "NEW" => And(vec![Recent, Flag(flags::SEEN, false)]),
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
        "SAVEDBEFORE" => SavedBefore(parse_date(&next(&atom)?.text()?)?),
        "SAVEDON" => SavedOn(parse_date(&next(&atom)?.text()?)?),
        "SAVEDSINCE" => SavedSince(parse_date(&next(&atom)?.text()?)?),
        "SAVEDATESUPPORTED" => SaveDateSupported,
        "LARGER" => Larger(number_arg(next(&atom)?)? as u64),
        "OLDER" => Older(number_arg(next(&atom)?)? as u64),
        "YOUNGER" => Younger(number_arg(next(&atom)?)? as u64),
        "SMALLER" => Smaller(number_arg(next(&atom)?)? as u64),
        "UID" => Uid(sequence_set(&next(&atom)?.text()?)?),
        "MODSEQ" => {
            // RFC 7162 §3.1.5: MODSEQ [entry-name entry-type] mod-sequence-valzer.
            let mut value = next(&atom)?;
            if matches!(value, Value::Str(_)) {
                next(&atom)?;
                value = next(&atom)?;
            }
            ModSeq(modseq_value(value)?)
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

/// A parenthesised list of keys, all of which must match.
fn search_list(items: &[Value]) -> Result<SearchKey, String> {
    let mut it = items.iter();
    let mut keys = Vec::new();
    while let Some(v) = it.next() {
        keys.push(search_key(v, &mut it)?);
    }
    if keys.is_empty() {
        return Err("Empty search list".into());
    }
    Ok(SearchKey::And(keys))
}

fn modseq_value(value: &Value) -> Result<u64, String> {
    value
        .atom()
        .and_then(|a| a.parse::<u64>().ok())
        .ok_or_else(|| "Invalid MODSEQ value".into())
}

fn number_arg(v: &Value) -> Result<u32, String> {
    v.atom()
        .and_then(|a| parse_number(a.as_bytes()))
        .ok_or_else(|| "Expected a number".into())
}

#[cfg(test)]
mod tests {
    use super::super::{parse_command, RawCommand};
    use super::*;
    use crate::imap::encode::number_set as format_set;
    use crate::mail::date::days_from_civil;

    fn parse(s: &str) -> RawCommand {
        parse_command(s.as_bytes()).unwrap()
    }

    #[test]
    fn search_return_options() {
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
}
