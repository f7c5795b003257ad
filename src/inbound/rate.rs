//! Messages per minute per client on the MX port: a fixed one-minute window per source
//! (an IPv4 address, an IPv6 /64), in a table that forgets idle sources so a flood from
//! many addresses cannot grow it without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

const WINDOW_SECS: i64 = 60;
/// Sources remembered at most; past it, windows that are over are dropped first.
const MAX_SOURCES: usize = 16_384;

#[derive(Default)]
pub struct Rates {
    windows: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

/// The key a client is counted under.
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
    }
}

impl Rates {
    /// Counts one message from `ip` at `now`; true when it is over `limit` this minute.
    pub fn count(&self, ip: IpAddr, now: i64, limit: u32) -> bool {
        if limit == 0 {
            return false;
        }
        let mut windows = self.windows.lock().expect("rate table");
        if windows.len() >= MAX_SOURCES {
            windows.retain(|_, (start, _)| now - *start < WINDOW_SECS);
            if windows.len() >= MAX_SOURCES {
                windows.clear();
            }
        }
        let entry = windows.entry(source(ip)).or_insert((now, 0));
        if now - entry.0 >= WINDOW_SECS {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 > limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_over_its_limit_waits_for_the_next_minute() {
        let rates = Rates::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(!rates.count(ip, 1000, 2));
        assert!(!rates.count(ip, 1001, 2));
        assert!(rates.count(ip, 1002, 2));
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(
            !rates.count(other, 1002, 2),
            "each address has its own count"
        );
        assert!(!rates.count(ip, 1060, 2), "a new minute starts afresh");
    }

    #[test]
    fn an_ipv6_64_is_one_source() {
        let rates = Rates::default();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        assert!(!rates.count(a, 0, 1));
        assert!(rates.count(b, 0, 1));
    }
}
