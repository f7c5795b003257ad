//! Comparators and match types (RFC 5228 §2.7, RFC 4790): `i;octet` compares bytes,
//! `i;ascii-casemap` bytes with ASCII letters folded; `:is`, `:contains`, and `:matches`
//! with `*` (any run), `?` (one character; one byte under `i;octet`) and `\` escapes.
//!
//! `:matches` runs in O(value × pattern) at worst: on a mismatch it returns to the last
//! `*` instead of trying every split, so no pattern can take exponential time.

use super::program::{Comparator, Match, MatchKind};

/// Whether `value` matches `key` as `matching` says.
pub fn matches(matching: Match, value: &str, key: &str) -> bool {
    let fold = matching.comparator == Comparator::AsciiCasemap;
    match matching.kind {
        MatchKind::Is => equal(value.as_bytes(), key.as_bytes(), fold),
        MatchKind::Contains => contains(value.as_bytes(), key.as_bytes(), fold),
        MatchKind::Matches => wildcard(value, key, matching.comparator),
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

fn wildcard(value: &str, key: &str, comparator: Comparator) -> bool {
    match comparator {
        // `?` is one octet.
        Comparator::Octet => glob(
            value.as_bytes(),
            &pieces(key, |s| s.bytes().collect()),
            |a, b| a == b,
        ),
        // `?` is one character; letters compare without case.
        Comparator::AsciiCasemap => {
            let value: Vec<char> = value.chars().collect();
            glob(
                &value,
                &pieces(key, |s| s.chars().collect()),
                |a: &char, b: &char| a.eq_ignore_ascii_case(b),
            )
        }
    }
}

/// Greedy matching with a return to the last `*`.
fn glob<T>(value: &[T], pattern: &[Piece<T>], eq: impl Fn(&T, &T) -> bool) -> bool {
    let (mut v, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(Piece::Any) => {
                star = Some((p, v));
                p += 1;
            }
            Some(Piece::One) => {
                v += 1;
                p += 1;
            }
            Some(Piece::Exactly(c)) if eq(c, &value[v]) => {
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
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|piece| matches!(piece, Piece::Any))
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
}
