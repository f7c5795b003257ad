//! Connection admission: the total, per-address and per-network caps.
//!
//! One address gets at most `max_connections_per_ip` slots and one network (IPv4 /24,
//! IPv6 /64) at most `max_connections_per_network`; neither may exceed a fraction of
//! `max_connections` (a quarter and a half), so that a flood from one source always leaves
//! room for everyone else whatever the configuration says.

use crate::config::Limits;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Open connections, counted three ways.
#[derive(Debug, Default)]
pub struct Connections {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_network: HashMap<IpAddr, usize>,
}

/// The network an address belongs to, for the per-network cap: its /24 or /64. An
/// IPv4-mapped IPv6 address counts as the IPv4 address.
pub fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network_of(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl Connections {
    /// Counts a connection from `ip`, or says why it must be refused.
    pub fn admit(&mut self, ip: IpAddr, limits: &Limits) -> Result<(), &'static str> {
        let total = limits.max_connections;
        let per_ip = limits.max_connections_per_ip.min((total / 4).max(1));
        let per_network = limits.max_connections_per_network.min((total / 2).max(1));
        if self.total >= total {
            return Err("too many connections");
        }
        if self.per_ip.get(&ip).copied().unwrap_or(0) >= per_ip {
            return Err("too many connections from your address");
        }
        let network = network_of(ip);
        if self.per_network.get(&network).copied().unwrap_or(0) >= per_network {
            return Err("too many connections from your network");
        }
        self.total += 1;
        *self.per_ip.entry(ip).or_default() += 1;
        *self.per_network.entry(network).or_default() += 1;
        Ok(())
    }

    /// Connections open now.
    pub fn total(&self) -> usize {
        self.total
    }

    /// A connection from `ip` ended.
    pub fn release(&mut self, ip: IpAddr) {
        self.total = self.total.saturating_sub(1);
        decrement(&mut self.per_ip, ip);
        decrement(&mut self.per_network, network_of(ip));
    }
}

fn decrement(counts: &mut HashMap<IpAddr, usize>, key: IpAddr) {
    if let Some(n) = counts.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks() {
        assert_eq!(network_of(ip("192.0.2.77")), ip("192.0.2.0"));
        assert_eq!(network_of(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(network_of(ip("::ffff:192.0.2.9")), ip("192.0.2.0"));
    }

    #[test]
    fn caps_per_address_network_and_total() {
        let limits = Limits {
            max_connections: 20,
            max_connections_per_ip: 100, // more than a quarter of the total: 5 apply
            max_connections_per_network: 8,
            ..Limits::default()
        };
        let mut c = Connections::default();
        for _ in 0..5 {
            c.admit(ip("10.0.0.1"), &limits).unwrap();
        }
        assert_eq!(
            c.admit(ip("10.0.0.1"), &limits),
            Err("too many connections from your address")
        );
        for _ in 0..3 {
            c.admit(ip("10.0.0.2"), &limits).unwrap();
        }
        assert_eq!(
            c.admit(ip("10.0.0.3"), &limits),
            Err("too many connections from your network")
        );
        for i in 0..12 {
            c.admit(ip(&format!("10.0.{}.1", i + 1)), &limits).unwrap();
        }
        assert_eq!(
            c.admit(ip("10.9.9.9"), &limits),
            Err("too many connections")
        );
        c.release(ip("10.0.0.2"));
        c.admit(ip("10.0.0.3"), &limits).unwrap();
        c.release(ip("10.0.0.1"));
        assert_eq!(c.admit(ip("10.9.9.9"), &limits), Ok(()));
    }
}
