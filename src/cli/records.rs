//! The DNS records a letterbox installation wants published, in zone-file form: printed at
//! the end of `letterbox check`, alone by `letterbox check --records` (the image's first-boot
//! setup shows them).
//!
//! Decisions: SPF is `v=spf1 mx -all` (the MX is this host; with a smarthost its own SPF
//! include must be added), DMARC asks for `p=quarantine` with reports to postmaster, the
//! MTA-STS id is derived from the policy served, so it changes when the policy does.

use crate::config::Config;
use std::net::IpAddr;
use std::path::Path;

pub struct Records {
    pub lines: Vec<String>,
}

impl Records {
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// The records for the host and `domains`. `addresses`: the host's, if known;
/// `port25_blocked` adds the smarthost configuration to copy.
pub fn build(
    config: &Config,
    data_dir: &Path,
    domains: &[String],
    addresses: &[IpAddr],
    port25_blocked: bool,
) -> Records {
    let host = config.hostname.as_str();
    let mut lines = vec![format!(
        "; The records to publish (zone-file form), for {host} and {}",
        if domains.is_empty() {
            "no domain".to_string()
        } else {
            domains.join(", ")
        }
    )];
    if addresses.is_empty() {
        lines.push(format!(
            "{host}. IN A <the public IPv4 address of this host>"
        ));
    }
    for ip in addresses {
        let kind = if ip.is_ipv4() { "A" } else { "AAAA" };
        lines.push(format!("{host}. IN {kind} {ip}"));
    }
    for ip in addresses {
        lines.push(format!(
            "; PTR, set by whoever owns the address: {} IN PTR {host}.",
            reverse_name(*ip)
        ));
    }
    let trusted = super::check::served_certificate(config, data_dir)
        .is_some_and(|der| crate::tls::x509::CertInfo::trusted_for(&der, host));
    let policy = crate::web::policy_text(host, trusted);
    let id = policy_id(&policy);
    for domain in domains {
        lines.push(format!("{domain}. IN MX 10 {host}."));
        lines.push(crate::relay::dkim::txt_line(domain, "v=spf1 mx -all"));
        let keys = crate::relay::dkim::public_records(data_dir, domain);
        if keys.is_empty() {
            lines.push(format!(
                "; no DKIM key yet: letterbox dkim generate {domain} prints its records"
            ));
        }
        for (selector, value) in keys {
            lines.push(crate::relay::dkim::txt_line(
                &format!("{selector}._domainkey.{domain}"),
                &value,
            ));
        }
        lines.push(crate::relay::dkim::txt_line(
            &format!("_dmarc.{domain}"),
            &format!("v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}"),
        ));
        lines.push(crate::relay::dkim::txt_line(
            &format!("_mta-sts.{domain}"),
            &format!("v=STSv1; id={id}"),
        ));
        lines.push(format!("mta-sts.{domain}. IN CNAME {host}."));
        lines.push(crate::relay::dkim::txt_line(
            &format!("_smtp._tls.{domain}"),
            &format!("v=TLSRPTv1; rua=mailto:postmaster@{domain}"),
        ));
    }
    if !domains.is_empty() {
        let names: Vec<String> = std::iter::once(host.to_string())
            .chain(domains.iter().map(|d| format!("mta-sts.{d}")))
            .map(|n| format!("\"{n}\""))
            .collect();
        lines.push(format!(
            "; the MTA-STS policy needs a certificate for mta-sts.<domain>: [acme] domains = [{}]",
            names.join(", ")
        ));
    }
    if port25_blocked {
        lines.extend(
            [
                "",
                "; Outbound port 25 is blocked: relay through your ISP's or a mail provider's",
                "; submission server. Add to letterbox.toml, then `kill -HUP` letterbox:",
                "[[relay.smarthost]]",
                "host = \"smtp.example.net\"",
                "port = 587",
                "username = \"you@example.net\"",
                "password = \"your-password\"",
            ]
            .map(str::to_string),
        );
    }
    Records { lines }
}

/// `d.c.b.a.in-addr.arpa.` or the nibble form under ip6.arpa.
fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => crate::inbound::reputation::dnsbl_name(ip, "in-addr.arpa") + ".",
        IpAddr::V6(_) => crate::inbound::reputation::dnsbl_name(ip, "ip6.arpa") + ".",
    }
}

/// An MTA-STS policy id (RFC 8461 3.1: 1-32 letters and digits) that changes with the policy.
pub fn policy_id(policy: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, policy.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_and_ids() {
        assert_eq!(
            reverse_name("192.0.2.1".parse().unwrap()),
            "1.2.0.192.in-addr.arpa."
        );
        assert!(
            reverse_name("2001:db8::1".parse().unwrap()).ends_with(".8.b.d.0.1.0.0.2.ip6.arpa.")
        );
        let id = policy_id("version: STSv1\r\n");
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(id, policy_id("version: STSv1\r\nmode: enforce\r\n"));
    }
}
