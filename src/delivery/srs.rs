//! The Sender Rewriting Scheme for mail we forward (Sieve `redirect`, aliases that point
//! outside): the envelope sender becomes an address of ours, so the next hop's SPF check
//! sees our domain, and a bounce to it comes back here to be decoded and sent on to the
//! original sender.
//!
//! The usual SRS0/SRS1 forms (Shevek's scheme, as postsrsd and others write it):
//! `SRS0=HHHHHHHH=TT=domain=local@ours` and, forwarding an SRS0 address again,
//! `SRS1=HHHHHHHH=first-forwarder==HHHH=TT=domain=local@ours`. TT is the day (mod 1024)
//! in two base32 characters; HHHHHHHH is an HMAC-SHA256 of the rest with a secret kept
//! in the store, in eight base32 characters (40 bits, where other schemes use 20: a
//! guess costs one RCPT), computed over the lower-cased text so that
//! forwarders that change case do not break it. Written here: it is forty lines over
//! ring's HMAC, and no maintained pure-Rust crate does it.

use ring::hmac;

/// How long a rewritten address is honoured for bounces (days).
pub const MAX_AGE_DAYS: i64 = 21;
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Characters of the hash: 40 bits.
const HASH_CHARS: usize = 8;

/// Whether a local part has the SRS0 or SRS1 form.
pub fn is_srs(local: &str) -> bool {
    let upper = local.get(..5).map(str::to_ascii_uppercase);
    matches!(upper.as_deref(), Some("SRS0=" | "SRS1="))
}

pub struct Srs {
    key: hmac::Key,
}

impl Srs {
    pub fn new(secret: &[u8]) -> Srs {
        Srs {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn hash(&self, parts: &[&str]) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in parts {
            ctx.update(part.to_ascii_lowercase().as_bytes());
            ctx.update(b"\0");
        }
        let tag = ctx.sign();
        // 40 bits: too many to guess through RCPT replies.
        let t = tag.as_ref();
        let bits = u64::from_be_bytes([0, 0, 0, t[0], t[1], t[2], t[3], t[4]]);
        (0..HASH_CHARS)
            .map(|i| BASE32[((bits >> (35 - 5 * i)) & 31) as usize] as char)
            .collect()
    }

    /// The envelope sender to use when forwarding mail from `sender` out of `domain`.
    /// The null sender stays null; one of our own addresses needs no rewriting.
    pub fn forward(&self, sender: &str, domain: &str, now: i64) -> String {
        let Some((local, sender_domain)) = sender.rsplit_once('@') else {
            return sender.to_string();
        };
        if sender_domain.eq_ignore_ascii_case(domain) {
            return sender.to_string();
        }
        let upper = local.to_ascii_uppercase();
        if upper.starts_with("SRS0=") {
            let rest = &local[5..];
            let hash = self.hash(&[sender_domain, rest]);
            return format!("SRS1={hash}={sender_domain}=={rest}@{domain}");
        }
        if upper.starts_with("SRS1=") {
            // SRS1=HHHH=first==rest: keep the first forwarder, sign anew.
            if let Some((first, rest)) = local[5..]
                .split_once('=')
                .and_then(|(_, after)| after.split_once("=="))
            {
                let hash = self.hash(&[first, rest]);
                return format!("SRS1={hash}={first}=={rest}@{domain}");
            }
        }
        let day = now.div_euclid(86_400).rem_euclid(1024) as usize;
        let stamp: String = [BASE32[day >> 5] as char, BASE32[day & 31] as char]
            .iter()
            .collect();
        let hash = self.hash(&[&stamp, sender_domain, local]);
        format!("SRS0={hash}={stamp}={sender_domain}={local}@{domain}")
    }

    /// The address a bounce to `local` (the part before our domain) goes to: the
    /// original sender for SRS0, the first forwarder's SRS0 address for SRS1. `None`
    /// when it is no valid SRS address of ours, or too old.
    pub fn reverse(&self, local: &str, now: i64) -> Option<String> {
        let upper = local.to_ascii_uppercase();
        if upper.starts_with("SRS0=") {
            let mut parts = local[5..].splitn(4, '=');
            let (hash, stamp, domain, original) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            if !hash.eq_ignore_ascii_case(&self.hash(&[stamp, domain, original])) {
                return None;
            }
            let stamp = stamp.to_ascii_lowercase();
            let digit = |c: u8| BASE32.iter().position(|&b| b == c);
            let [a, b] = stamp.as_bytes() else {
                return None;
            };
            let day = (digit(*a)? << 5 | digit(*b)?) as i64;
            let today = now.div_euclid(86_400).rem_euclid(1024);
            if (today - day).rem_euclid(1024) > MAX_AGE_DAYS {
                return None;
            }
            return Some(format!("{original}@{domain}"));
        }
        if upper.starts_with("SRS1=") {
            let (hash, after) = local[5..].split_once('=')?;
            let (first, rest) = after.split_once("==")?;
            if !hash.eq_ignore_ascii_case(&self.hash(&[first, rest])) {
                return None;
            }
            return Some(format!("SRS0={rest}@{first}"));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn there_and_back() {
        let srs = Srs::new(b"secret");
        let now = 20_000 * DAY;
        let rewritten = srs.forward("alice@example.com", "example.org", now);
        let (local, domain) = rewritten.rsplit_once('@').unwrap();
        assert_eq!(domain, "example.org");
        assert!(
            local.starts_with("SRS0=") && local.ends_with("=example.com=alice"),
            "{local}"
        );
        assert_eq!(
            srs.reverse(local, now).as_deref(),
            Some("alice@example.com")
        );
        // Case changed on the way: still ours.
        assert_eq!(
            srs.reverse(&local.to_ascii_uppercase(), now + 3 * DAY)
                .as_deref(),
            Some("ALICE@EXAMPLE.COM")
        );
        assert_eq!(srs.reverse(local, now + 30 * DAY), None, "too old");
        assert_eq!(Srs::new(b"other").reverse(local, now), None, "not our key");
        let forged = local.replacen("alice", "mallory", 1);
        assert_eq!(srs.reverse(&forged, now), None);
        assert_eq!(srs.forward("", "example.org", now), "");
        assert_eq!(
            srs.forward("me@example.org", "example.org", now),
            "me@example.org"
        );
    }

    #[test]
    fn forwarding_a_forward() {
        let (a, b) = (Srs::new(b"a"), Srs::new(b"b"));
        let now = 1_000 * DAY;
        let first = a.forward("alice@example.com", "one.example", now);
        let second = b.forward(&first, "two.example", now);
        let (local, _) = second.rsplit_once('@').unwrap();
        assert!(
            local.starts_with("SRS1=") && local.contains("=one.example=="),
            "{second}"
        );
        // Our own address is not rewritten again.
        let third = b.forward(&second, "two.example", now);
        assert_eq!(third, second);
        let back = b.reverse(local, now).unwrap();
        let (back_local, back_domain) = back.rsplit_once('@').unwrap();
        assert_eq!(back_domain, "one.example");
        assert_eq!(
            a.reverse(back_local, now).as_deref(),
            Some("alice@example.com")
        );
    }
}
