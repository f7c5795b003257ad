//! `letterbox check [DOMAIN]`: the deliverability doctor. For the host and every local
//! domain it asks DNS (the configured `[relay] dns_servers`, else resolv.conf) what the
//! internet will see, and reports each check as PASS, WARN or FAIL with one line of why;
//! then the records to publish, in zone-file form ([`super::records`]).
//!
//! Decisions: the host name's A/AAAA records are taken as the public addresses (a home
//! server behind NAT cannot learn its own from inside); outbound port 25 is probed by
//! connecting to the MX of `--probe` (gmail.com), unless a smarthost is configured; the
//! certificate checked is the one `serve` would load. DANE passes only with `[relay]
//! dnssec` (answers validated here); without it the report says so instead of pretending.

mod domain;

use super::records;
use crate::config::Config;
use crate::dns::{DnsError, Resolver};
use crate::tls::x509::CertInfo;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Level {
    #[serde(rename = "PASS")]
    Pass,
    #[serde(rename = "WARN")]
    Warn,
    #[serde(rename = "FAIL")]
    Fail,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Pass => "PASS",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub level: Level,
    /// The host name or the domain the check is about.
    pub scope: String,
    pub check: &'static str,
    pub why: String,
}

impl Finding {
    pub fn line(&self) -> String {
        format!(
            "{}  {}  {}: {}",
            self.level.word(),
            self.scope,
            self.check,
            self.why
        )
    }
}

/// What the checks need to know of this installation.
pub struct Setup<'a> {
    pub config: &'a Config,
    pub data_dir: &'a Path,
    pub domains: Vec<String>,
    /// Whose MX the port-25 probe connects to.
    pub probe: String,
    /// Where MTA-STS policies are fetched (443).
    pub https_port: u16,
}

/// How `letterbox check` prints.
pub struct Output {
    pub json: bool,
    pub records_only: bool,
}

struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, level: Level, scope: &str, check: &'static str, why: impl Into<String>) {
        self.0.push(Finding {
            level,
            scope: scope.to_string(),
            check,
            why: why.into(),
        });
    }
}

fn dns_trouble(e: &DnsError) -> bool {
    !matches!(e, DnsError::NxDomain)
}

/// Runs every check; the findings in report order.
pub async fn run(setup: &Setup<'_>, dns: &Resolver) -> Vec<Finding> {
    let mut out = Findings(Vec::new());
    let host = setup.config.hostname.as_str();
    if let Err(e) = dns.clone().ip(host).await {
        if dns_trouble(&e) {
            out.add(
                Level::Fail,
                host,
                "DNS",
                format!("the resolver does not answer ({e}): nothing in DNS was checked"),
            );
            certificate_check(setup, &mut out);
            clock_check(setup, &mut out).await;
            return out.0;
        }
    }
    let addresses = host_checks(setup, dns, &mut out).await;
    for domain in &setup.domains {
        domain::checks(setup, dns, domain, &addresses, &mut out).await;
    }
    out.0
}

async fn host_checks(setup: &Setup<'_>, dns: &Resolver, out: &mut Findings) -> Vec<IpAddr> {
    let config = setup.config;
    let host = config.hostname.as_str();
    let addresses = match dns.clone().ip(host).await {
        Ok(a) if !a.is_empty() => a,
        Ok(_) | Err(DnsError::NxDomain) => {
            out.add(
                Level::Fail,
                host,
                "address",
                format!("{host} has no A or AAAA record"),
            );
            Vec::new()
        }
        Err(e) => {
            out.add(Level::Fail, host, "address", format!("lookup failed: {e}"));
            Vec::new()
        }
    };
    for ip in &addresses {
        if !public(*ip) {
            out.add(
                Level::Fail,
                host,
                "address",
                format!("{ip} is not a public address: the internet cannot reach it"),
            );
        }
    }
    if !addresses.is_empty() && addresses.iter().all(|ip| public(*ip)) {
        let list: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
        out.add(
            Level::Pass,
            host,
            "address",
            format!("{host} is {}", list.join(", ")),
        );
    }
    for ip in &addresses {
        ptr_check(host, *ip, &addresses, dns, out).await;
    }
    for ip in &addresses {
        dnsbl_check(setup, host, *ip, dns, out).await;
    }
    port25_check(setup, dns, out).await;
    certificate_check(setup, out);
    clock_check(setup, out).await;
    let anchor_missing = config
        .relay
        .dnssec_trust_anchor
        .as_ref()
        .filter(|p| std::fs::metadata(p).is_err());
    if let (true, Some(path)) = (config.relay.dnssec, anchor_missing) {
        out.add(
            Level::Fail,
            host,
            "DANE",
            format!(
                "[relay] dnssec_trust_anchor {} cannot be read: every outbound lookup fails",
                path.display()
            ),
        );
    } else if config.relay.dnssec {
        out.add(
            Level::Pass,
            host,
            "DANE",
            "enforced outbound: DNSSEC is validated here and MX hosts' TLSA records are checked",
        );
    } else {
        out.add(
            Level::Warn,
            host,
            "DANE",
            "not enforced outbound: DNS answers are not DNSSEC-validated ([relay] dnssec = false), so TLSA records of MX hosts are not checked",
        );
    }
    addresses
}

fn public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

async fn ptr_check(
    host: &str,
    ip: IpAddr,
    addresses: &[IpAddr],
    dns: &Resolver,
    out: &mut Findings,
) {
    let names = match dns.clone().ptr(ip).await {
        Ok(names) => names,
        Err(e) if dns_trouble(&e) => {
            out.add(
                Level::Fail,
                host,
                "PTR",
                format!("lookup for {ip} failed: {e}"),
            );
            return;
        }
        Err(_) => Vec::new(),
    };
    let fix = format!("ask your ISP or hosting provider to set it to {host}");
    if names.is_empty() {
        out.add(
            Level::Fail,
            host,
            "PTR",
            format!("{ip} has no PTR record: {fix}"),
        );
    } else if names.iter().any(|n| n.eq_ignore_ascii_case(host)) {
        // Forward-confirmed: the name's addresses include this one (they were looked up).
        if addresses.contains(&ip) {
            out.add(
                Level::Pass,
                host,
                "PTR",
                format!("{ip} points back at {host} (forward-confirmed)"),
            );
        }
    } else {
        out.add(
            Level::Fail,
            host,
            "PTR",
            format!("{ip} points at {}, not {host}: {fix}", names.join(", ")),
        );
    }
}

async fn dnsbl_check(
    setup: &Setup<'_>,
    host: &str,
    ip: IpAddr,
    dns: &Resolver,
    out: &mut Findings,
) {
    let zones = &setup.config.inbound.dnsbl;
    if zones.is_empty() {
        out.add(
            Level::Warn,
            host,
            "DNSBL",
            "no block lists configured to ask ([inbound] dnsbl)",
        );
        return;
    }
    use crate::inbound::reputation::{dnsbl_name, lookup};
    let hits = lookup(dns, zones, |zone| dnsbl_name(ip, zone)).await;
    if hits.is_empty() {
        out.add(
            Level::Pass,
            host,
            "DNSBL",
            format!("{ip} is on none of {}", zones.join(", ")),
        );
    } else {
        out.add(
            Level::Fail,
            host,
            "DNSBL",
            format!("{ip} is listed on {}", hits.join(", ")),
        );
    }
}

async fn port25_check(setup: &Setup<'_>, dns: &Resolver, out: &mut Findings) {
    let config = setup.config;
    let host = config.hostname.as_str();
    if let Some(s) = config.relay.smarthosts.first() {
        out.add(
            Level::Pass,
            host,
            "port 25",
            format!("mail leaves through the smarthost {}:{}", s.host, s.port),
        );
        return;
    }
    let port = config.relay.mx_port;
    let mx = match dns.clone().mx(&setup.probe).await {
        Ok(mx) => mx
            .into_iter()
            .min_by_key(|m| m.preference)
            .map(|m| m.exchange),
        Err(_) => None,
    };
    let Some(mx) = mx.filter(|m| !m.is_empty()) else {
        out.add(
            Level::Warn,
            host,
            "port 25",
            format!("not probed: {} has no MX record here", setup.probe),
        );
        return;
    };
    let mut ips = dns.clone().ip(&mx).await.unwrap_or_default();
    if ips.is_empty() {
        out.add(
            Level::Warn,
            host,
            "port 25",
            format!("not probed: {mx} has no address"),
        );
        return;
    }
    // IPv4 first: a host without an IPv6 route must not look blocked.
    ips.sort_by_key(|ip| ip.is_ipv6());
    let mut tried = None;
    for ip in &ips {
        let addr = SocketAddr::new(*ip, port);
        let connected =
            tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
                .await;
        let ok = matches!(connected, Ok(Ok(_)));
        tried = Some((addr, connected));
        if ok {
            break;
        }
    }
    let Some((addr, connected)) = tried else {
        return;
    };
    match connected {
        Ok(Ok(_)) => out.add(
            Level::Pass,
            host,
            "port 25",
            format!("outbound connections reach {mx} ({addr})"),
        ),
        Ok(Err(e)) => out.add(
            Level::Fail,
            host,
            "port 25",
            format!(
                "cannot reach {mx} ({addr}): {e}; many home ISPs block outbound port 25: relay through a smarthost (see below)"
            ),
        ),
        Err(_) => out.add(
            Level::Fail,
            host,
            "port 25",
            format!(
                "no answer from {mx} ({addr}) within 5 s; many home ISPs block outbound port 25: relay through a smarthost (see below)"
            ),
        ),
    }
}

/// Days before expiry that count as "soon" (ACME renews at a third of 90 days left, 30).
const EXPIRY_WARN_DAYS: i64 = 14;

fn certificate_check(setup: &Setup<'_>, out: &mut Findings) {
    let config = setup.config;
    let host = config.hostname.as_str();
    let path = crate::tls::served_cert_path(config, setup.data_dir);
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::pem_file_iter(&path)
        .ok()
        .and_then(|mut certs| certs.next())
        .and_then(Result::ok);
    let Some(der) = der else {
        out.add(
            Level::Fail,
            host,
            "certificate",
            format!(
                "{}: no certificate (serve makes a self-signed one)",
                path.display()
            ),
        );
        return;
    };
    let info = match CertInfo::parse(&der) {
        Ok(info) => info,
        Err(e) => {
            out.add(
                Level::Fail,
                host,
                "certificate",
                format!("{}: {e}", path.display()),
            );
            return;
        }
    };
    let now = crate::clock::unix_now();
    let days = (info.not_after - now).div_euclid(86400);
    if !info.covers(host) {
        out.add(
            Level::Fail,
            host,
            "certificate",
            format!("not valid for {host} (it names {})", info.names.join(", ")),
        );
    } else if info.not_after <= now {
        out.add(Level::Fail, host, "certificate", "expired");
    } else if CertInfo::self_signed(&der) {
        out.add(
            Level::Warn,
            host,
            "certificate",
            "self-signed: mail apps warn, and our MTA-STS policy stays in testing mode; set up [acme]",
        );
    } else if days < EXPIRY_WARN_DAYS {
        out.add(
            Level::Warn,
            host,
            "certificate",
            format!("expires in {days} days ({})", info.issuer),
        );
    } else {
        out.add(
            Level::Pass,
            host,
            "certificate",
            format!("valid for {} more days, issued by {}", days, info.issuer),
        );
    }
    if config.acme.is_some() {
        if let Some(status) = crate::acme::read_status(setup.data_dir) {
            if let Some(error) = status.error {
                out.add(
                    Level::Warn,
                    host,
                    "ACME",
                    format!(
                        "the last attempt failed ({}): {error}",
                        crate::mail::date::rfc5322_date(status.attempted)
                    ),
                );
            }
        }
    }
}

async fn clock_check(setup: &Setup<'_>, out: &mut Findings) {
    let host = setup.config.hostname.as_str();
    let servers = setup.config.clock.effective_servers();
    let asked = servers.clone();
    let answers = tokio::task::spawn_blocking(move || {
        asked
            .iter()
            .filter_map(|s| {
                crate::sntp::query(s, Duration::from_secs(3))
                    .ok()
                    .map(|a| (s.clone(), a))
            })
            .min_by(|a, b| a.1.delay.total_cmp(&b.1.delay))
    })
    .await
    .ok()
    .flatten();
    match answers {
        None => out.add(
            Level::Warn,
            host,
            "clock",
            format!("no time server answered ({})", servers.join(", ")),
        ),
        Some((server, s)) => {
            let level = match s.offset.abs() {
                x if x < 1.0 => Level::Pass,
                x if x < 10.0 => Level::Warn,
                _ => Level::Fail,
            };
            out.add(
                level,
                host,
                "clock",
                format!("{:.1} s off {server}", s.offset.abs()),
            );
        }
    }
}

/// The report as text: findings, then the records to publish.
pub fn render(findings: &[Finding], records: &records::Records) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&f.line());
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&records.render());
    out
}

/// The first certificate of the file `serve` would load.
pub fn served_certificate(config: &Config, data_dir: &Path) -> Option<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    let path = crate::tls::served_cert_path(config, data_dir);
    let der = rustls::pki_types::CertificateDer::pem_file_iter(&path)
        .ok()?
        .next()?
        .ok()?;
    Some(der.to_vec())
}

/// `letterbox check`: exits non-zero when a check failed.
pub(super) fn check_command(
    cli: &super::Cli,
    domain: Option<&str>,
    output: Output,
    probe: &str,
    https_port: u16,
) -> Result<(), String> {
    let Output { json, records_only } = output;
    let config = super::load_config(cli)?;
    let data_dir = super::data_dir(cli, &config);
    let mut domains: Vec<String> = match super::open_store(cli) {
        Ok(store) => store.domains().map_err(|e| e.to_string())?,
        Err(_) => config.domains.clone(),
    };
    domains.retain(|d| d != "localhost");
    domains.sort();
    domains.dedup();
    if let Some(only) = domain {
        let only = only.trim_end_matches('.').to_ascii_lowercase();
        if !domains.contains(&only) {
            return Err(format!("{only} is not a local domain"));
        }
        domains = vec![only];
    }
    if records_only {
        print!(
            "{}",
            records::build(&config, &data_dir, &domains, &[], false).render()
        );
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let tls = crate::tls::client::ClientConfigs::new(config.relay.ca_file.as_deref())?;
    let dns = Resolver::new(config.relay.dns_server_addrs(), tls.verified);
    let setup = Setup {
        config: &config,
        data_dir: &data_dir,
        domains: domains.clone(),
        probe: probe.to_string(),
        https_port,
    };
    let (findings, addresses) = runtime.block_on(async {
        let findings = run(&setup, &dns).await;
        let addresses = dns.clone().ip(&config.hostname).await.unwrap_or_default();
        (findings, addresses)
    });
    let blocked = findings
        .iter()
        .any(|f| f.check == "port 25" && f.level == Level::Fail);
    let records = records::build(&config, &data_dir, &domains, &addresses, blocked);
    if json {
        let value = serde_json::json!({ "findings": findings, "records": records.lines });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", render(&findings, &records));
    }
    let failed = findings.iter().filter(|f| f.level == Level::Fail).count();
    if failed > 0 {
        return Err(format!("{failed} check(s) failed"));
    }
    Ok(())
}
