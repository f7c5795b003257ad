//! What the checks leave in the message: one `Authentication-Results:` header (RFC 8601)
//! under our host name, a header explaining the junk score, and the removal of any
//! incoming `Authentication-Results:` that claims our name (RFC 8601 §5: a forgery or a
//! stale copy that readers would otherwise trust).

use super::policy::Judgement;
use crate::mail::header::fields;
use std::ops::Range;

/// The name of the header that explains a junk verdict.
pub const JUNK_HEADER: &str = "X-Letterbox-Junk";

/// Byte ranges, within `header`, of the fields that would pass for ours: every
/// `Authentication-Results:` whose authserv-id is `authserv_id` (compared without case),
/// and every [`JUNK_HEADER`].
pub fn forged_results(header: &[u8], authserv_id: &str) -> Vec<Range<usize>> {
    let base = header.as_ptr() as usize;
    fields(header)
        .filter(|f| {
            f.is(JUNK_HEADER)
                || (f.is("Authentication-Results")
                    && authserv_id_of(&f.value()).eq_ignore_ascii_case(authserv_id))
        })
        .map(|f| {
            let start = f.raw.as_ptr() as usize - base;
            start..start + f.raw.len()
        })
        .collect()
}

/// The authserv-id at the start of an Authentication-Results value (RFC 8601 §2.2: a
/// token or a quoted-string), after any comments (which nest and may hold
/// backslash-escaped characters) and white space.
fn authserv_id_of(value: &[u8]) -> String {
    let mut rest = value;
    loop {
        rest = rest.trim_ascii_start();
        let Some(after) = rest.strip_prefix(b"(") else {
            break;
        };
        let (mut depth, mut i) = (1, 0);
        while i < after.len() && depth > 0 {
            match after[i] {
                b'\\' => i += 1,
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            i += 1;
        }
        rest = &after[i.min(after.len())..];
    }
    let id: Vec<u8> = if let Some(quoted) = rest.strip_prefix(b"\"") {
        let mut out = Vec::new();
        let mut bytes = quoted.iter();
        while let Some(&b) = bytes.next() {
            match b {
                b'"' => break,
                b'\\' => out.extend(bytes.next()),
                _ => out.push(b),
            }
        }
        out
    } else {
        rest.iter()
            .take_while(|&&b| b != b';' && b != b'(' && !b.is_ascii_whitespace())
            .copied()
            .collect()
    };
    String::from_utf8_lossy(&id).into_owned()
}

/// The junk explanation: the verdict, the score and its parts, and the Bayesian
/// probability when the account's filter gave one. One line, folded before each part.
pub fn junk_header(judgement: &Judgement, junk: bool, bayes: Option<f64>) -> String {
    let mut h = format!(
        "{JUNK_HEADER}: {}; score={:.1}",
        if junk { "yes" } else { "no" },
        judgement.score
    );
    for (why, points) in &judgement.reasons {
        h.push_str(&format!(";\r\n\t{why} (+{points:.1})"));
    }
    if let Some(p) = bayes {
        h.push_str(&format!(";\r\n\tbayes={p:.3}"));
    }
    h.push_str("\r\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::policy::Decision;

    #[test]
    fn only_results_claiming_our_name_are_found() {
        let header = b"Authentication-Results: mx.example.org; spf=pass\r\n\
            Subject: hi\r\n\
            Authentication-Results: (forged) MX.Example.Org 1;\r\n\tdkim=pass\r\n\
            Authentication-Results: mx.example.org.evil; dkim=pass\r\n\
            Authentication-Results: other.test; dmarc=pass\r\n\
            X-Letterbox-Junk: no; score=0.0\r\n";
        let ranges = forged_results(header, "mx.example.org");
        assert_eq!(
            authserv_id_of(b" (\\() mx.example.org; dkim=pass"),
            "mx.example.org"
        );
        assert_eq!(
            authserv_id_of(b"\"MX.example.org\"; dkim=pass"),
            "MX.example.org"
        );
        assert_eq!(authserv_id_of(b"(a (nested) one)x.test;"), "x.test");
        assert_eq!(authserv_id_of(b"(unclosed"), "");
        let texts: Vec<&[u8]> = ranges.iter().map(|r| &header[r.clone()]).collect();
        assert_eq!(
            texts,
            [
                &b"Authentication-Results: mx.example.org; spf=pass\r\n"[..],
                &b"Authentication-Results: (forged) MX.Example.Org 1;\r\n\tdkim=pass\r\n"[..],
                &b"X-Letterbox-Junk: no; score=0.0\r\n"[..],
            ]
        );
    }

    #[test]
    fn the_junk_header_lists_the_reasons() {
        let j = Judgement {
            decision: Ok(Decision::Junk),
            score: 7.0,
            reasons: vec![("spf=fail".into(), 3.0), ("dnsbl=bl.test".into(), 4.0)],
        };
        assert_eq!(
            junk_header(&j, true, Some(0.9876)),
            "X-Letterbox-Junk: yes; score=7.0;\r\n\tspf=fail (+3.0);\r\n\t\
             dnsbl=bl.test (+4.0);\r\n\tbayes=0.988\r\n"
        );
    }
}
