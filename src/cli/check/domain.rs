//! The checks of one local domain: MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT.

use super::{Findings, Level, Setup};
use crate::dns::{DnsError, Resolver};
use std::net::IpAddr;
use std::time::Duration;

/// Unwraps a lookup, or reports its failure and returns from the check.
macro_rules! looked_up {
    ($result:expr, $out:expr, $domain:expr, $check:expr) => {
        match $result {
            Ok(value) => value,
            Err(e) => {
                $out.add(Level::Fail, $domain, $check, e);
                return;
            }
        }
    };
}

pub(super) async fn checks(
    setup: &Setup<'_>,
    dns: &Resolver,
    domain: &str,
    addresses: &[IpAddr],
    out: &mut Findings,
) {
    let host = setup.config.hostname.as_str();
    // MX
    match dns.clone().mx(domain).await {
        Ok(mx) if mx.iter().any(|m| m.exchange.eq_ignore_ascii_case(host)) => {
            out.add(Level::Pass, domain, "MX", format!("points at {host}"))
        }
        Ok(mx) if !mx.is_empty() => {
            let names: Vec<&str> = mx.iter().map(|m| m.exchange.as_str()).collect();
            out.add(
                Level::Fail,
                domain,
                "MX",
                format!("points at {}, not {host}", names.join(", ")),
            )
        }
        Ok(_) | Err(DnsError::NxDomain) => out.add(Level::Fail, domain, "MX", "no MX record"),
        Err(e) => out.add(Level::Fail, domain, "MX", format!("lookup failed: {e}")),
    }
    spf_check(setup, dns, domain, addresses, out).await;
    dkim_check(setup, dns, domain, out).await;
    dmarc_check(dns, domain, out).await;
    mta_sts_check(setup, dns, domain, out).await;
    let tlsrpt = txt_with(dns, &format!("_smtp._tls.{domain}"), "v=TLSRPTv1").await;
    match looked_up!(tlsrpt, out, domain, "TLS-RPT") {
        Some(record) => out.add(Level::Pass, domain, "TLS-RPT", record),
        None => out.add(
            Level::Warn,
            domain,
            "TLS-RPT",
            format!(
                "_smtp._tls.{domain} has no v=TLSRPTv1 record: senders cannot report TLS trouble"
            ),
        ),
    }
}

async fn dmarc_check(dns: &Resolver, domain: &str, out: &mut Findings) {
    let dmarc = txt_with(dns, &format!("_dmarc.{domain}"), "v=DMARC1").await;
    match looked_up!(dmarc, out, domain, "DMARC") {
        Some(record) => {
            let policy = tag(&record, "p").unwrap_or_default();
            if !matches!(policy.as_str(), "none" | "quarantine" | "reject") {
                out.add(
                    Level::Fail,
                    domain,
                    "DMARC",
                    format!("{record}: no valid p= (none, quarantine or reject)"),
                );
                return;
            }
            let level = if policy == "none" {
                Level::Warn
            } else {
                Level::Pass
            };
            let note = if policy == "none" {
                ": receivers are asked to do nothing with failing mail"
            } else {
                ""
            };
            out.add(level, domain, "DMARC", format!("p={policy}{note}"));
        }
        None => out.add(
            Level::Fail,
            domain,
            "DMARC",
            format!("_dmarc.{domain} has no v=DMARC1 record"),
        ),
    }
}

/// The first TXT record at `name` starting with `prefix` (case-insensitive); lookup
/// trouble (not "no such name") is an error, reported as such.
async fn txt_with(dns: &Resolver, name: &str, prefix: &str) -> Result<Option<String>, String> {
    let records = txt_records(dns, name).await?;
    Ok(records.into_iter().find(|r| {
        r.trim_start()
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    }))
}

/// A `tag=value` of a DKIM/DMARC/MTA-STS style record.
fn tag(record: &str, name: &str) -> Option<String> {
    record.split(';').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.split_whitespace().collect::<String>())
    })
}

async fn spf_check(
    setup: &Setup<'_>,
    dns: &Resolver,
    domain: &str,
    addresses: &[IpAddr],
    out: &mut Findings,
) {
    let host = setup.config.hostname.as_str();
    let spf = txt_with(dns, domain, "v=spf1").await;
    let Some(record) = looked_up!(spf, out, domain, "SPF") else {
        out.add(
            Level::Fail,
            domain,
            "SPF",
            format!("{domain} has no v=spf1 record"),
        );
        return;
    };
    if !setup.config.relay.smarthosts.is_empty() {
        out.add(
            Level::Pass,
            domain,
            "SPF",
            format!("{record} (mail leaves through the smarthost: make sure it includes that)"),
        );
        return;
    }
    let Ok(auth) = dns.authenticator() else {
        out.add(Level::Warn, domain, "SPF", "no resolver to evaluate it");
        return;
    };
    let sender = format!("postmaster@{domain}");
    let mut failed = Vec::new();
    for ip in addresses {
        use mail_auth::spf::verify::SpfParameters;
        let result = auth
            .verify_spf(SpfParameters::verify_mail_from(*ip, host, host, &sender))
            .await;
        if result.result() != mail_auth::SpfResult::Pass {
            failed.push(format!(
                "{ip} gets {}",
                result.result().to_string().to_lowercase()
            ));
        }
    }
    if addresses.is_empty() {
        out.add(
            Level::Warn,
            domain,
            "SPF",
            format!("{record} (no address of {host} to try)"),
        );
    } else if failed.is_empty() {
        out.add(
            Level::Pass,
            domain,
            "SPF",
            format!("{record} allows {host}"),
        );
    } else {
        out.add(
            Level::Fail,
            domain,
            "SPF",
            format!("{record} does not allow this host: {}", failed.join(", ")),
        );
    }
}

async fn dkim_check(setup: &Setup<'_>, dns: &Resolver, domain: &str, out: &mut Findings) {
    let keys = crate::relay::dkim::public_records(setup.data_dir, domain);
    if keys.is_empty() {
        out.add(
            Level::Fail,
            domain,
            "DKIM",
            format!("no key: run letterbox dkim generate {domain}"),
        );
        return;
    }
    for (selector, ours) in keys {
        let name = format!("{selector}._domainkey.{domain}");
        // v=DKIM1 is optional (RFC 6376 3.6.1): any record with a p= tag is a key.
        let published = dkim_record(dns, &name).await;
        match published {
            Err(e) => out.add(Level::Fail, domain, "DKIM", e),
            Ok(None) => out.add(
                Level::Fail,
                domain,
                "DKIM",
                format!("{name} is not published"),
            ),
            Ok(Some(theirs)) if tag(&theirs, "p") == tag(&ours, "p") => out.add(
                Level::Pass,
                domain,
                "DKIM",
                format!("{name} matches the key in the store"),
            ),
            Ok(Some(_)) => out.add(
                Level::Fail,
                domain,
                "DKIM",
                format!("{name} publishes a different key than the one in the store"),
            ),
        }
    }
}

/// The DKIM key record at `name`, if one is published.
async fn dkim_record(dns: &Resolver, name: &str) -> Result<Option<String>, String> {
    let records = txt_records(dns, name).await?;
    Ok(records.into_iter().find(|r| tag(r, "p").is_some()))
}

/// The TXT records at `name`; none for a name that does not exist.
async fn txt_records(dns: &Resolver, name: &str) -> Result<Vec<String>, String> {
    match dns.clone().txt(name).await {
        Ok(records) => Ok(records),
        Err(DnsError::NxDomain) => Ok(Vec::new()),
        Err(e) => Err(format!("lookup failed: {e}")),
    }
}

async fn mta_sts_check(setup: &Setup<'_>, dns: &Resolver, domain: &str, out: &mut Findings) {
    let host = setup.config.hostname.as_str();
    let sts = txt_with(dns, &format!("_mta-sts.{domain}"), "v=STSv1").await;
    let Some(record) = looked_up!(sts, out, domain, "MTA-STS") else {
        out.add(
            Level::Warn,
            domain,
            "MTA-STS",
            format!("_mta-sts.{domain} has no v=STSv1 record: senders may deliver without TLS"),
        );
        return;
    };
    let tls = match crate::tls::client::ClientConfigs::new(setup.config.relay.ca_file.as_deref()) {
        Ok(c) => c.verified,
        Err(e) => {
            out.add(Level::Fail, domain, "MTA-STS", e);
            return;
        }
    };
    let client = crate::http::client::Client::new(tls, dns.clone(), Duration::from_secs(10));
    let policy = match crate::relay::mta_sts::fetch(&client, domain, setup.https_port).await {
        Ok(p) => p,
        Err(e) => {
            out.add(Level::Fail, domain, "MTA-STS", format!("policy: {e}"));
            return;
        }
    };
    let Some(id) = crate::relay::mta_sts::record_id(&record) else {
        out.add(
            Level::Fail,
            domain,
            "MTA-STS",
            format!("_mta-sts.{domain}: the id is missing or not 1-32 letters and digits"),
        );
        return;
    };
    let mode = format!("{:?}", policy.mode).to_ascii_lowercase();
    if !policy.matches(host) && policy.mode != crate::relay::mta_sts::Mode::None {
        out.add(
            Level::Fail,
            domain,
            "MTA-STS",
            format!("the policy's mx lines do not name {host}"),
        );
    } else {
        out.add(
            Level::Pass,
            domain,
            "MTA-STS",
            format!("id {id}, mode {mode}, policy served over HTTPS"),
        );
    }
}
