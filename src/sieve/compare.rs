//! Comparators and match types (RFC 5228 §2.7, RFC 4790): `i;octet` compares bytes,
//! `i;ascii-casemap` bytes with ASCII letters folded; `:is`, `:contains`, and `:matches`
//! with `*` (any run), `?` (one character; one byte under `i;octet`) and `\` escapes.
//!
//! `:matches` runs in O(value × pattern) at worst: on a mismatch it returns to the last
//! `*` instead of trying every split, so no pattern can take exponential time.

use super::program::{Comparator, Match, MatchKind, Relation};
use std::cmp::Ordering;

/// Whether `value` matches `key` as `matching` says (`:count` is the caller's: it
/// compares a number of values, see [`relation_holds`]).
pub fn matches(matching: Match, value: &str, key: &str) -> bool {
    let fold = matching.comparator == Comparator::AsciiCasemap;
    match matching.kind {
        MatchKind::Is => compare(matching.comparator, value, key) == Ordering::Equal,
        MatchKind::Contains => contains(value.as_bytes(), key.as_bytes(), fold),
        MatchKind::Matches => wildcard(value, key, matching.comparator).is_some(),
        MatchKind::Value(relation) | MatchKind::Count(relation) => {
            relation_holds(relation, compare(matching.comparator, value, key))
        }
    }
}

/// A `:matches` with what it matched: `${0}` the whole value, then each wildcard's text
/// (RFC 5229 §3.2: each `*` takes as little as it can, left to right).
pub fn captures(comparator: Comparator, value: &str, key: &str) -> Option<Vec<String>> {
    wildcard(value, key, comparator)
}

/// The comparator's order of two values (RFC 4790 §9).
pub fn compare(comparator: Comparator, a: &str, b: &str) -> Ordering {
    match comparator {
        Comparator::Octet => a.as_bytes().cmp(b.as_bytes()),
        Comparator::AsciiCasemap => a
            .bytes()
            .map(|c| c.to_ascii_uppercase())
            .cmp(b.bytes().map(|c| c.to_ascii_uppercase())),
        Comparator::AsciiNumeric => numeric(a).cmp(&numeric(b)),
    }
}

/// i;ascii-numeric's value: the leading digits as a number, `None` (sorted last, as
/// positive infinity) without any. Leading zeros are dropped and the digits compared as
/// text, so no number is too long.
fn numeric(s: &str) -> NumericValue<'_> {
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return NumericValue::Infinity;
    }
    let significant = s[..digits].trim_start_matches('0');
    NumericValue::Number(significant.len(), significant)
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum NumericValue<'a> {
    /// (number of significant digits, the digits): ordered as the numbers are.
    Number(usize, &'a str),
    Infinity,
}

pub fn relation_holds(relation: Relation, ordering: Ordering) -> bool {
    match relation {
        Relation::Gt => ordering == Ordering::Greater,
        Relation::Ge => ordering != Ordering::Less,
        Relation::Lt => ordering == Ordering::Less,
        Relation::Le => ordering != Ordering::Greater,
        Relation::Eq => ordering == Ordering::Equal,
        Relation::Ne => ordering != Ordering::Equal,
    }
}

fn same(a: u8, b: u8, fold: bool) -> bool {
    if fold {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

fn equal(a: &[u8], b: &[u8], fold: bool) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| same(x, y, fold))
}

fn contains(haystack: &[u8], needle: &[u8], fold: bool) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| equal(window, needle, fold))
}

/// One element of a `:matches` pattern.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Piece<T> {
    Any,
    One,
    Exactly(T),
}

fn pieces<T>(key: &str, unit: impl Fn(&str) -> Vec<T>) -> Vec<Piece<T>> {
    let mut out = Vec::new();
    let mut chars = key.chars();
    let mut buffer = [0u8; 4];
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push(Piece::Any),
            '?' => out.push(Piece::One),
            '\\' => {
                // An escaped character stands for itself; a lone trailing `\` too.
                let escaped = chars.next().unwrap_or('\\');
                out.extend(
                    unit(escaped.encode_utf8(&mut buffer))
                        .into_iter()
                        .map(Piece::Exactly),
                );
            }
            c => out.extend(
                unit(c.encode_utf8(&mut buffer))
                    .into_iter()
                    .map(Piece::Exactly),
            ),
        }
    }
    out
}

fn wildcard(value: &str, key: &str, comparator: Comparator) -> Option<Vec<String>> {
    match comparator {
        // `?` is one octet.
        Comparator::Octet | Comparator::AsciiNumeric => {
            let spans = glob(
                value.as_bytes(),
                &pieces(key, |s| s.bytes().collect()),
                |a, b| a == b,
            )?;
            let text = |(s, e): (usize, usize)| {
                String::from_utf8_lossy(&value.as_bytes()[s..e]).into_owned()
            };
            Some(
                std::iter::once(value.to_string())
                    .chain(spans.into_iter().map(text))
                    .collect(),
            )
        }
        // `?` is one character; letters compare without case.
        Comparator::AsciiCasemap => {
            let chars: Vec<char> = value.chars().collect();
            let spans = glob(
                &chars,
                &pieces(key, |s| s.chars().collect()),
                |a: &char, b: &char| a.eq_ignore_ascii_case(b),
            )?;
            let text = |(s, e): (usize, usize)| chars[s..e].iter().collect::<String>();
            Some(
                std::iter::once(value.to_string())
                    .chain(spans.into_iter().map(text))
                    .collect(),
            )
        }
    }
}

/// Matching with a return to the last `*`, each `*` first taking nothing: the spans of
/// the wildcards (`*` and `?`) in order, when the pattern matches.
fn glob<T>(
    value: &[T],
    pattern: &[Piece<T>],
    eq: impl Fn(&T, &T) -> bool,
) -> Option<Vec<(usize, usize)>> {
    // Where each piece began in `value`; a piece's span ends where the next begins.
    let mut began = vec![0usize; pattern.len() + 1];
    let (mut v, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(Piece::Any) => {
                began[p] = v;
                star = Some((p, v));
                p += 1;
            }
            Some(Piece::One) => {
                began[p] = v;
                v += 1;
                p += 1;
            }
            Some(Piece::Exactly(c)) if eq(c, &value[v]) => {
                began[p] = v;
                v += 1;
                p += 1;
            }
            _ => match star {
                // Let the last `*` take one more unit and try again after it.
                Some((star_p, star_v)) => {
                    star = Some((star_p, star_v + 1));
                    p = star_p + 1;
                    v = star_v + 1;
                }
                None => return None,
            },
        }
    }
    if !pattern[p..].iter().all(|piece| matches!(piece, Piece::Any)) {
        return None;
    }
    for slot in &mut began[p..] {
        *slot = value.len();
    }
    Some(
        pattern
            .iter()
            .enumerate()
            .filter(|(_, piece)| !matches!(piece, Piece::Exactly(_)))
            .map(|(i, _)| (began[i], began[i + 1]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(kind: MatchKind, comparator: Comparator) -> Match {
        Match { kind, comparator }
    }

    #[test]
    fn is_and_contains() {
        let casemap = with(MatchKind::Is, Comparator::AsciiCasemap);
        assert!(matches(casemap, "Frobnitzm", "frobNITZM"));
        assert!(!matches(casemap, "Frobnitzm", "frob"));
        assert!(!matches(
            with(MatchKind::Is, Comparator::Octet),
            "Frob",
            "frob"
        ));
        let contains = with(MatchKind::Contains, Comparator::AsciiCasemap);
        assert!(matches(contains, "[SPAM] offer", "spam"));
        assert!(matches(contains, "anything", ""));
        assert!(!matches(
            with(MatchKind::Contains, Comparator::Octet),
            "[SPAM]",
            "spam"
        ));
        // Only ASCII letters fold.
        assert!(!matches(casemap, "É", "é"));
    }

    #[test]
    fn wildcards() {
        let m = |value: &str, key: &str| {
            matches(
                with(MatchKind::Matches, Comparator::AsciiCasemap),
                value,
                key,
            )
        };
        // RFC 5228 §2.7.1's examples.
        assert!(m("frobnitzm", "frob*"));
        assert!(m("frobnitzm", "*nit?m"));
        assert!(!m("frobnitzm", "*nit?"));
        assert!(m("a*b", "a\\*b"));
        assert!(!m("axb", "a\\*b"));
        assert!(m("", "*"));
        assert!(!m("", "?"));
        assert!(m("bob@example.org", "*@*.org"));
        assert!(m("xaaab", "*a?b"));
        assert!(!m("abc", "*d*"));
        // `?` is a character under casemap, an octet under i;octet.
        assert!(m("é", "?"));
        assert!(!matches(
            with(MatchKind::Matches, Comparator::Octet),
            "é",
            "?"
        ));
        assert!(matches(
            with(MatchKind::Matches, Comparator::Octet),
            "é",
            "??"
        ));
        // No exponential blow-up.
        let value = "a".repeat(5_000);
        assert!(!m(&value, &("*a".repeat(100) + "b")));
    }

    #[test]
    fn what_wildcards_matched() {
        let c = |value: &str, key: &str| captures(Comparator::AsciiCasemap, value, key);
        // RFC 5229 §3.2's example.
        assert_eq!(
            c("[acme-users] [fwd] version 1.0 is out", "[*] *").unwrap(),
            [
                "[acme-users] [fwd] version 1.0 is out",
                "acme-users",
                "[fwd] version 1.0 is out"
            ]
        );
        assert_eq!(
            c("Alice <alice@example.com>", "*<*@*>").unwrap(),
            [
                "Alice <alice@example.com>",
                "Alice ",
                "alice",
                "example.com"
            ]
        );
        assert_eq!(c("abc", "?*?*").unwrap(), ["abc", "a", "", "b", "c"]);
        assert_eq!(c("a.b.c", "*.*").unwrap(), ["a.b.c", "a", "b.c"]);
        assert_eq!(c("x", "y*"), None);
    }

    #[test]
    fn comparators_order() {
        use std::cmp::Ordering::*;
        assert_eq!(compare(Comparator::AsciiNumeric, "10", "9"), Greater);
        assert_eq!(compare(Comparator::AsciiNumeric, "007", "7"), Equal);
        assert_eq!(compare(Comparator::AsciiNumeric, "12abc", "12"), Equal);
        assert_eq!(
            compare(Comparator::AsciiNumeric, "abc", "99999999999999999999999"),
            Greater
        );
        assert_eq!(compare(Comparator::AsciiNumeric, "", "x"), Equal);
        assert_eq!(compare(Comparator::AsciiCasemap, "abc", "ABD"), Less);
        assert_eq!(compare(Comparator::Octet, "abc", "ABD"), Greater);
        assert!(relation_holds(Relation::Ge, Equal) && !relation_holds(Relation::Ne, Equal));
    }
}
