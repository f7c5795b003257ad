//! What the checks leave in the message: one `Authentication-Results:` header (RFC 8601)
//! under our host name, a header explaining the junk score, and the removal of any
//! incoming `Authentication-Results:` that claims our name (RFC 8601 §5: a forgery or a
//! stale copy that readers would otherwise trust).

use super::policy::Judgement;
use crate::mail::header::fields;
use std::ops::Range;

/// The name of the header that explains a junk verdict.
pub const JUNK_HEADER: &str = "X-Letterbox-Junk";

/// Byte ranges, within `header`, of the `Authentication-Results:` fields whose
/// authserv-id is `authserv_id` (compared without case).
pub fn forged_results(header: &[u8], authserv_id: &str) -> Vec<Range<usize>> {
    let base = header.as_ptr() as usize;
    fields(header)
        .filter(|f| f.is("Authentication-Results"))
        .filter(|f| authserv_id_of(&f.value()).eq_ignore_ascii_case(authserv_id))
        .map(|f| {
            let start = f.raw.as_ptr() as usize - base;
            start..start + f.raw.len()
        })
        .collect()
}

/// The authserv-id at the start of an Authentication-Results value: the first token after
/// any comments and white space (RFC 8601 §2.2).
fn authserv_id_of(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix('(') {
        let mut depth = 1;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = after[end..].trim_start();
    }
    rest.split(|c: char| c == ';' || c == '(' || c.is_whitespace())
        .next()
        .unwrap_or("")
        .to_string()
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
            Authentication-Results: other.test; dmarc=pass\r\n";
        let ranges = forged_results(header, "mx.example.org");
        let texts: Vec<&[u8]> = ranges.iter().map(|r| &header[r.clone()]).collect();
        assert_eq!(
            texts,
            [
                &b"Authentication-Results: mx.example.org; spf=pass\r\n"[..],
                &b"Authentication-Results: (forged) MX.Example.Org 1;\r\n\tdkim=pass\r\n"[..],
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
