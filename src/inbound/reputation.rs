//! Who the client is: the sanity of its HELO name and what DNS block lists say about its
//! address (DNSBL) and its sender's domain (RHSBL, RFC 5782). Forward-confirmed reverse
//! DNS is mail-auth's `verify_iprev` (see the module above).

use super::policy::HeloProblem;
use crate::dns::{DnsError, Resolver};
use std::net::IpAddr;

/// What is wrong with `helo` from a client at `ip`, if anything. `ours` are our host
/// name and local domains.
pub fn helo_problem(helo: &str, ip: IpAddr, ours: &[String]) -> Option<HeloProblem> {
    if let Some(literal) = helo.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let literal = literal.strip_prefix("IPv6:").unwrap_or(literal);
        return match literal.parse::<IpAddr>() {
            Ok(claimed) if claimed == ip || Some(claimed) == mapped(ip) => None,
            _ => Some(HeloProblem::ForeignLiteral),
        };
    }
    let name = helo.trim_end_matches('.');
    if ours.iter().any(|o| o.eq_ignore_ascii_case(name)) {
        return Some(HeloProblem::OurName);
    }
    if !name.contains('.') || name.parse::<IpAddr>().is_ok() {
        return Some(HeloProblem::NotQualified);
    }
    None
}

fn mapped(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
        IpAddr::V4(_) => None,
    }
}

/// The name asked of `zone` about `ip` (RFC 5782 §2.1, §2.4): reversed octets, or
/// reversed nibbles for IPv6.
pub fn dnsbl_name(ip: IpAddr, zone: &str) -> String {
    let ip = mapped(ip).unwrap_or(ip);
    let mut name = String::new();
    match ip {
        IpAddr::V4(v4) => {
            for octet in v4.octets().iter().rev() {
                name.push_str(&format!("{octet}."));
            }
        }
        IpAddr::V6(v6) => {
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
        }
    }
    name.push_str(zone.trim_end_matches('.'));
    name
}

/// Whether an answer says "listed": 127.0.0.0/8 (RFC 5782 §2.3), except 127.255.255.0/24,
/// which lists use to refuse a query (for instance one sent through a public resolver)
/// and which must not count against the client.
fn listed(answers: &[IpAddr]) -> bool {
    answers.iter().any(|a| match a {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            o[0] == 127 && !(o[1] == 255 && o[2] == 255)
        }
        IpAddr::V6(_) => false,
    })
}

/// The zones among `zones` that list `name_of(zone)`. Lookup trouble counts as not listed:
/// a block list that is down must not stop mail.
pub async fn lookup(
    resolver: &Resolver,
    zones: &[String],
    name_of: impl Fn(&str) -> String,
) -> Vec<String> {
    // Asked all at once: each list answers in its own time.
    let asks: Vec<_> = zones
        .iter()
        .map(|zone| {
            let mut resolver = resolver.clone();
            let (name, zone) = (name_of(zone), zone.clone());
            tokio::spawn(async move {
                match resolver.ip(&name).await {
                    Ok(answers) if listed(&answers) => Some(zone),
                    Ok(_) | Err(DnsError::NxDomain) => None,
                    Err(e) => {
                        log::warn!("dnsbl {zone}: {e}");
                        None
                    }
                }
            })
        })
        .collect();
    let mut hits = Vec::new();
    for ask in asks {
        if let Ok(Some(zone)) = ask.await {
            hits.push(zone);
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helo_names() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let ours = vec!["mx.example.org".to_string(), "example.org".to_string()];
        assert_eq!(helo_problem("mail.sender.test", ip, &ours), None);
        assert_eq!(helo_problem("[192.0.2.7]", ip, &ours), None);
        assert_eq!(
            helo_problem("[192.0.2.8]", ip, &ours),
            Some(HeloProblem::ForeignLiteral)
        );
        assert_eq!(
            helo_problem("EXAMPLE.org.", ip, &ours),
            Some(HeloProblem::OurName)
        );
        assert_eq!(
            helo_problem("localhost", ip, &ours),
            Some(HeloProblem::NotQualified)
        );
        assert_eq!(
            helo_problem("192.0.2.7", ip, &ours),
            Some(HeloProblem::NotQualified)
        );
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(helo_problem("[IPv6:2001:db8::1]", v6, &ours), None);
    }

    #[test]
    fn query_names_follow_rfc_5782() {
        let v4: IpAddr = "192.0.2.99".parse().unwrap();
        assert_eq!(dnsbl_name(v4, "bl.test."), "99.2.0.192.bl.test");
        let v6: IpAddr = "2001:db8:1:2:3:4:567:89ab".parse().unwrap();
        assert_eq!(
            dnsbl_name(v6, "bl.test"),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test"
        );
    }

    #[test]
    fn refusal_codes_are_not_listings() {
        let a = |s: &str| vec![s.parse::<IpAddr>().unwrap()];
        assert!(listed(&a("127.0.0.2")));
        assert!(!listed(&a("127.255.255.254")));
        assert!(!listed(&a("10.0.0.2")));
    }
}
