//! Brute-force defence: failed logins counted per source and per account.
//!
//! - A source is an IPv4 address or an IPv6 /64 (one host can hold a whole /64).
//! - After [`TARPIT_AFTER`] failures within [`WINDOW_SECS`], from a source or against an
//!   account, every further attempt waits first: 250 ms, doubling, at most
//!   [`MAX_TARPIT`]. An account under attack only slows down: its owner logging in from
//!   another address still gets in, a little later.
//! - After `block_after_failures` failures from one source within the window, the source
//!   is blocked for `block_secs`, twice as long each time it is blocked again within a day
//!   (at most a week). The block goes into the store (see `store::blocks`), so
//!   `letterbox block` sees and changes it live, and new connections from the source are
//!   refused at accept.
//! - Every failure and every block is one log line in a fixed form for fail2ban:
//!   `auth failure: ip=ADDRESS user=NAME proto=PROTO` and `auth block: ip=ADDRESS source=SOURCE for Ns`.
//!
//! The counts live in memory, bounded ([`MAX_TRACKED`] sources and as many accounts);
//! only blocks are stored. Written here because no crate does this for a mail server's
//! three protocols at once; it is a few maps and a clock.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

/// Failures older than this are forgotten.
pub const WINDOW_SECS: i64 = 600;
/// Failures before attempts start to wait.
pub const TARPIT_AFTER: usize = 3;
/// The longest wait before an attempt.
pub const MAX_TARPIT: Duration = Duration::from_secs(8);
/// Sources (and accounts) tracked at once; the least recently failed go first.
pub const MAX_TRACKED: usize = 4096;
/// The longest block.
pub const MAX_BLOCK_SECS: u64 = 7 * 86_400;

/// The source a failure is counted against: the address, or its /64 for IPv6.
pub fn source_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
    }
}

/// Recent failure times of one source or account.
#[derive(Debug, Default)]
struct Failures(VecDeque<i64>);

impl Failures {
    fn count(&mut self, now: i64) -> usize {
        while self.0.front().is_some_and(|&t| t <= now - WINDOW_SECS) {
            self.0.pop_front();
        }
        self.0.len()
    }

    fn add(&mut self, now: i64, keep: usize) {
        self.0.push_back(now);
        while self.0.len() > keep {
            self.0.pop_front();
        }
    }

    fn last(&self) -> i64 {
        self.0.back().copied().unwrap_or(0)
    }
}

/// The counts, for one server.
#[derive(Debug, Default)]
pub struct Guard {
    sources: HashMap<String, Failures>,
    accounts: HashMap<String, Failures>,
}

impl Guard {
    /// How long an attempt from `source` against `account` must wait first.
    pub fn delay(&mut self, source: &str, account: &str, now: i64) -> Duration {
        let n = count(&mut self.sources, source, now).max(count(&mut self.accounts, account, now));
        if n < TARPIT_AFTER {
            return Duration::ZERO;
        }
        let steps = (n - TARPIT_AFTER).min(16) as u32;
        (Duration::from_millis(250) * 2u32.pow(steps)).min(MAX_TARPIT)
    }

    /// Counts a failure; true when `source` has now reached `block_after` failures (its
    /// count starts again: the block takes over).
    pub fn failed(&mut self, source: &str, account: &str, now: i64, block_after: u32) -> bool {
        let keep = (block_after as usize).max(TARPIT_AFTER + 16);
        add(&mut self.sources, source, now, keep);
        add(&mut self.accounts, account, now, keep);
        if block_after == 0 || count(&mut self.sources, source, now) < block_after as usize {
            return false;
        }
        self.sources.remove(source);
        true
    }

    /// A correct password: the account's failures are forgiven (its owner is here). The
    /// source's are not: one valid login must not let a source guess on for ever.
    pub fn succeeded(&mut self, account: &str) {
        self.accounts.remove(account);
    }
}

fn count(map: &mut HashMap<String, Failures>, key: &str, now: i64) -> usize {
    map.get_mut(key).map_or(0, |f| f.count(now))
}

fn add(map: &mut HashMap<String, Failures>, key: &str, now: i64, keep: usize) {
    if !map.contains_key(key) && map.len() >= MAX_TRACKED {
        // Forget the entry that failed longest ago.
        if let Some(oldest) = map
            .iter()
            .min_by_key(|(_, f)| f.last())
            .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
    }
    map.entry(key.to_string()).or_default().add(now, keep);
}

/// How long the `level`-th block in a row lasts (level 1 is the first).
pub fn block_duration(block_secs: u64, level: u32) -> u64 {
    let factor = 1u64 << level.saturating_sub(1).min(20);
    block_secs.saturating_mul(factor).min(MAX_BLOCK_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(source_of("192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(
            source_of("2001:db8:1:2:aa::1".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        assert_eq!(source_of("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7");
    }

    #[test]
    fn tarpit_then_block() {
        let mut g = Guard::default();
        let (ip, user) = ("192.0.2.7", "alice@x.test");
        for _ in 0..TARPIT_AFTER {
            assert_eq!(g.delay(ip, user, 100), Duration::ZERO);
            assert!(!g.failed(ip, user, 100, 10));
        }
        assert_eq!(g.delay(ip, user, 100), Duration::from_millis(250));
        assert!(!g.failed(ip, user, 100, 10));
        assert_eq!(g.delay(ip, user, 100), Duration::from_millis(500));
        // The account is slowed down for every source, not blocked.
        assert_eq!(
            g.delay("198.51.100.1", user, 100),
            Duration::from_millis(500)
        );
        for _ in 0..5 {
            assert!(!g.failed(ip, user, 101, 10));
        }
        assert!(g.failed(ip, user, 102, 10), "the tenth failure blocks");
        assert_eq!(
            g.delay(ip, "bob@x.test", 102),
            Duration::ZERO,
            "counting restarts"
        );
        assert_eq!(g.delay(ip, user, 102), MAX_TARPIT);
        g.succeeded(user);
        assert_eq!(g.delay("198.51.100.1", user, 103), Duration::ZERO);
        // A success does not wipe the source's record.
        for _ in 0..3 {
            g.failed("203.0.113.9", "eve@x.test", 104, 10);
        }
        g.succeeded("eve@x.test");
        assert_eq!(
            g.delay("203.0.113.9", "eve@x.test", 104),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn failures_expire_after_the_window() {
        let mut g = Guard::default();
        for t in 0..9 {
            g.failed("192.0.2.7", "a", t, 10);
        }
        assert!(!g.failed("192.0.2.7", "a", WINDOW_SECS + 5, 10));
        assert_eq!(g.delay("192.0.2.7", "a", 2 * WINDOW_SECS), Duration::ZERO);
    }

    #[test]
    fn blocks_double_up_to_a_week() {
        assert_eq!(block_duration(900, 1), 900);
        assert_eq!(block_duration(900, 2), 1800);
        assert_eq!(block_duration(900, 3), 3600);
        assert_eq!(block_duration(900, 40), MAX_BLOCK_SECS);
    }
}
