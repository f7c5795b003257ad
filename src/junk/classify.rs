//! The spam probability of a message from its tokens' counts: Paul Graham's "A Plan for
//! Spam" with Gary Robinson's correction for rare tokens.
//!
//! For a token seen in `s` of the `S` trained spam and `h` of the `H` trained ham
//! messages, p = (s/S) / (s/S + 2h/H): ham counts double (Graham's bias: a false
//! positive costs more than a missed spam). Robinson's f = (0.5 + n·p) / (1 + n), with
//! n = s + h, pulls a token seen once or twice towards 0.5 instead of trusting it fully.
//! The [`INTERESTING`] tokens farthest from 0.5 (at least [`MIN_DISTANCE`] away) are
//! combined as Graham does, Πf / (Πf + Π(1−f)), in logarithms so that the products
//! cannot underflow. Tokens never trained carry no information and are left out.

use crate::store::{JunkTotals, TokenCounts};

/// Trained messages of each class needed before the filter gives an answer: below it,
/// one early message would decide whole classes of mail. 5 and 5 is where mox-style
/// filters start to separate obvious spam; accuracy keeps improving for hundreds more.
pub const MIN_TRAINED: u32 = 5;

/// Tokens the verdict is made of (Graham used 15).
pub const INTERESTING: usize = 15;

/// Tokens closer to 0.5 than this are noise, whatever their number.
pub const MIN_DISTANCE: f64 = 0.1;

/// Ham counts weigh this much more than spam counts.
const HAM_BIAS: f64 = 2.0;

/// Spam probability from the account's totals and the tokens' counts; None while the
/// account has trained fewer than [`MIN_TRAINED`] messages of either class.
pub fn probability(totals: JunkTotals, counts: &[TokenCounts]) -> Option<f64> {
    if totals.spam < MIN_TRAINED || totals.ham < MIN_TRAINED {
        return None;
    }
    let (spams, hams) = (totals.spam as f64, totals.ham as f64);
    let mut scores: Vec<f64> = counts
        .iter()
        .filter(|c| c.spam > 0 || c.ham > 0)
        .map(|c| {
            let spam_freq = (c.spam as f64 / spams).min(1.0);
            let ham_freq = (HAM_BIAS * c.ham as f64 / hams).min(1.0);
            let p = spam_freq / (spam_freq + ham_freq);
            let n = c.spam as f64 + c.ham as f64;
            ((0.5 + n * p) / (1.0 + n)).clamp(0.01, 0.99)
        })
        .filter(|f| (f - 0.5).abs() >= MIN_DISTANCE)
        .collect();
    // Most interesting first; equal distances keep their (sorted token) order.
    scores.sort_by(|a, b| (b - 0.5).abs().total_cmp(&(a - 0.5).abs()));
    scores.truncate(INTERESTING);
    if scores.is_empty() {
        return Some(0.5);
    }
    let (log_spam, log_ham) = scores
        .iter()
        .fold((0.0, 0.0), |(s, h), f| (s + f.ln(), h + (1.0 - f).ln()));
    Some(1.0 / (1.0 + (log_ham - log_spam).exp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(spam: u32, ham: u32) -> JunkTotals {
        JunkTotals {
            spam,
            ham,
            tokens: 0,
        }
    }

    fn c(spam: u32, ham: u32) -> TokenCounts {
        TokenCounts { spam, ham }
    }

    #[test]
    fn untrained_accounts_get_no_answer() {
        assert_eq!(probability(totals(4, 100), &[c(4, 0)]), None);
        assert_eq!(probability(totals(100, 4), &[c(4, 0)]), None);
        assert_eq!(probability(totals(5, 5), &[]), Some(0.5));
        assert_eq!(probability(totals(5, 5), &[c(0, 0)]), Some(0.5));
    }

    #[test]
    fn known_values() {
        // One token in every spam and no ham: p = 1, f = (0.5 + 10) / 11.
        let f = 10.5 / 11.0;
        let got = probability(totals(10, 10), &[c(10, 0)]).unwrap();
        assert!((got - f).abs() < 1e-12, "{got}");
        // In every ham: p = 0, f = 0.5 / 11; the combined value of a single f is f.
        let g = 0.5 / 11.0;
        let got = probability(totals(10, 10), &[c(0, 10)]).unwrap();
        assert!((got - g).abs() < 1e-12, "{got}");
        // Seen once in spam out of 10/10: p = 1, f = 0.75; with an equal ham token
        // (f = 0.25) the two cancel.
        let got = probability(totals(10, 10), &[c(1, 0), c(0, 1)]).unwrap();
        assert!((got - 0.5).abs() < 1e-12, "{got}");
        // Ham counts double: 5 of 10 spam and 5 of 10 ham lean to ham. p = 0.5/(0.5+1),
        // f = (0.5 + 10/3) / 11 = 0.348..., which is interesting.
        let got = probability(totals(10, 10), &[c(5, 5)]).unwrap();
        assert!((got - (0.5 + 10.0 / 3.0) / 11.0).abs() < 1e-12, "{got}");
    }

    #[test]
    fn only_the_most_interesting_tokens_count_and_the_rest_is_noise() {
        // 15 strong spam tokens decide; 20 weak ham tokens beyond them are ignored.
        let mut counts = vec![c(50, 0); INTERESTING];
        counts.extend(vec![c(1, 3); 20]);
        let p = probability(totals(100, 100), &counts).unwrap();
        assert!(p > 0.999_999, "{p}");
        // Neutral tokens (f within 0.1 of 0.5) are left out: the answer is 0.5.
        let p = probability(totals(100, 100), &[c(20, 10), c(2, 1)]).unwrap();
        assert_eq!(p, 0.5);
        // Many strong tokens cannot underflow to NaN.
        let p = probability(totals(1000, 1000), &vec![c(0, 1000); 2000]).unwrap();
        assert!(p.is_finite() && p < 1e-12, "{p}");
    }
}
