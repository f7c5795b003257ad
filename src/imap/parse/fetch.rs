//! FETCH syntax (RFC 9051 §6.4.5, RFC 3516 BINARY, RFC 7162 CHANGEDSINCE/VANISHED): data
//! items, BODY[...] sections, partial ranges and the modifier list.

use super::{parse_number, Value};

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

/// Parses the text between the brackets of BODY[...] (already upper-cased).
pub(super) fn parse_section(text: &str) -> Result<Section, String> {
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
    /// `BINARY[part]<partial>` (RFC 3516): the part with its transfer encoding undone.
    Binary {
        peek: bool,
        path: Vec<u32>,
        partial: Option<(u32, u32)>,
    },
    /// `BINARY.SIZE[part]`.
    BinarySize(Vec<u32>),
    /// PREVIEW (RFC 8970): the start of the message's text; `(LAZY)` changes nothing here.
    Preview,
    /// SAVEDATE (RFC 8514): when the message was saved into this mailbox.
    SaveDate,
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
        Value::List(items) if !items.is_empty() => {
            let mut out = Vec::new();
            let mut values = items.iter().peekable();
            while let Some(v) = values.next() {
                let Value::Atom(a) = v else {
                    return Err("Invalid FETCH item".to_string());
                };
                let item = fetch_item(a)?;
                if item == Preview {
                    // PREVIEW's modifier list: only LAZY exists (RFC 8970 §3).
                    if let Some(Value::List(modifiers)) = values.peek() {
                        if !modifiers
                            .iter()
                            .all(|m| m.atom().is_some_and(|m| m.eq_ignore_ascii_case("LAZY")))
                        {
                            return Err("Unknown PREVIEW modifier".into());
                        }
                        values.next();
                    }
                }
                out.push(item);
            }
            Ok(out)
        }
        _ => Err("Invalid FETCH items".into()),
    }
}

pub(super) fn fetch_item(text: &str) -> Result<FetchItem, String> {
    use FetchItem::*;
    let upper = text.to_ascii_uppercase();
    Ok(match upper.as_str() {
        "FLAGS" => Flags,
        "INTERNALDATE" => InternalDate,
        "SAVEDATE" => SaveDate,
        "RFC822.SIZE" => Size,
        "PREVIEW" => Preview,
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

/// FETCH modifiers (RFC 7162 §3.1.4.1, §3.2.6): `(CHANGEDSINCE n)` or
/// `(CHANGEDSINCE n VANISHED)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchModifiers {
    pub changed_since: Option<u64>,
    pub vanished: bool,
}

pub fn fetch_modifiers(modifiers: &[Value]) -> Result<FetchModifiers, String> {
    let (since, vanished) = match modifiers {
        [since @ .., Value::Atom(v)] if v.eq_ignore_ascii_case("VANISHED") => (since, true),
        _ => (modifiers, false),
    };
    Ok(FetchModifiers {
        changed_since: Some(modseq_modifier(since, "CHANGEDSINCE")?),
        vanished,
    })
}

/// The number of a `(NAME n)` FETCH/STORE modifier list.
pub fn modseq_modifier(modifiers: &[Value], name: &str) -> Result<u64, String> {
    match modifiers {
        [Value::Atom(a), Value::Atom(n)] if a.eq_ignore_ascii_case(name) => n
            .parse::<u64>()
            .map_err(|_| format!("Invalid {name} value")),
        _ => Err(format!("Unknown modifier (only {name} is supported)")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_command;
    use super::*;
    use crate::imap::encode::section;

    fn parse(s: &str) -> super::super::RawCommand {
        parse_command(s.as_bytes()).unwrap()
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
            section(&item("BODY[2.HEADER.FIELDS (X)]")),
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
    }

    #[test]
    fn modifiers() {
        let m = |s: &str| match &parse(&format!("a X {s}")).args[0] {
            Value::List(items) => fetch_modifiers(items),
            _ => unreachable!(),
        };
        assert_eq!(
            m("(CHANGEDSINCE 5)").unwrap(),
            FetchModifiers {
                changed_since: Some(5),
                vanished: false
            }
        );
        assert!(m("(changedsince 5 vanished)").unwrap().vanished);
        assert_eq!(
            m("(FOO 1)").unwrap_err(),
            "Unknown modifier (only CHANGEDSINCE is supported)"
        );
        assert_eq!(
            m("(CHANGEDSINCE x)").unwrap_err(),
            "Invalid CHANGEDSINCE value"
        );
        assert_eq!(
            m("(VANISHED)").unwrap_err(),
            "Unknown modifier (only CHANGEDSINCE is supported)"
        );
    }
}
