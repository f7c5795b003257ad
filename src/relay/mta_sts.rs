//! MTA-STS (RFC 8461) for outbound mail: a recipient domain's promise that its MX hosts
//! speak TLS with certificates that verify.
//!
//! Before a delivery to MX hosts, [`Policies::for_domain`] reads `_mta-sts.<domain>` and,
//! when its `id` is new, fetches `https://mta-sts.<domain>/.well-known/mta-sts.txt` (verified
//! TLS, no redirects, 64 KiB at most, `text/plain`). In `enforce` mode only the MX hosts the
//! policy names are used, STARTTLS is required and the certificate must verify for the MX
//! name: a host that fails that is a deferral, never a plaintext delivery. `none` changes
//! nothing; `testing` is checked the same way, but a host that fails is then used as
//! before (the relay logs it and counts it for the TLS report, see [`super::tlsrpt`]).
//!
//! Policies are cached in memory for their `max_age`, and a cached policy stays in force
//! when the record or the policy host cannot be reached (RFC 8461 5.1). The cache starts
//! empty at each start and reload.

use crate::dns::DnsError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest policy accepted (RFC 8461 3.3).
const MAX_POLICY: usize = 64 * 1024;
/// `max_age` is capped at a year (RFC 8461 3.2).
const MAX_AGE_CAP: u64 = 31_557_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// MX patterns, lower case: a name, or `*.` and a name (one label).
    pub mx: Vec<String>,
    pub max_age: u64,
}

impl Policy {
    /// Whether `host` is one of the policy's MX hosts (RFC 8461 4.1).
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(base) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == base),
                None => *pattern == host,
            })
    }
}

/// The `id` of a `v=STSv1` TXT record (RFC 8461 3.1).
pub fn record_id(txt: &str) -> Option<String> {
    let mut fields = txt.split(';').map(str::trim).filter(|f| !f.is_empty());
    if fields.next()? != "v=STSv1" {
        return None;
    }
    let ids: Vec<&str> = fields.filter_map(|f| f.strip_prefix("id=")).collect();
    match ids.as_slice() {
        [id] if !id.is_empty()
            && id.len() <= 32
            && id.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            Some(id.to_string())
        }
        _ => None,
    }
}

/// Parses a policy body (RFC 8461 3.2). Unknown keys are ignored, as the RFC asks.
pub fn parse_policy(text: &str) -> Result<Policy, String> {
    let mut version = None;
    let mut mode = None;
    let mut mx = Vec::new();
    let mut max_age = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "version" => version = Some(value.to_string()),
            // ABNF literals are case-insensitive (RFC 5234 2.3).
            "mode" => {
                mode = Some(match value.to_ascii_lowercase().as_str() {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    _ => return Err(format!("unknown mode {value:?}")),
                })
            }
            "mx" => mx.push(value.trim_end_matches('.').to_ascii_lowercase()),
            "max_age" => {
                max_age = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| format!("bad max_age {value:?}"))?
                        .min(MAX_AGE_CAP),
                )
            }
            _ => {}
        }
    }
    if !version.is_some_and(|v| v.eq_ignore_ascii_case("STSv1")) {
        return Err("no version: STSv1".into());
    }
    let mode = mode.ok_or("no mode")?;
    let max_age = max_age.ok_or("no max_age")?;
    if mode != Mode::None && mx.is_empty() {
        return Err("no mx".into());
    }
    Ok(Policy { mode, mx, max_age })
}

struct Cached {
    id: String,
    policy: Policy,
    expires: i64,
}

/// The policies known, and how to fetch more.
#[derive(Clone)]
pub struct Policies {
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    dns: crate::dns::Resolver,
    http: crate::http::client::Client,
    port: u16,
}

impl Policies {
    pub fn new(
        dns: crate::dns::Resolver,
        verified: Arc<rustls::ClientConfig>,
        port: u16,
    ) -> Policies {
        let http = crate::http::client::Client::new(verified, dns.clone(), Duration::from_secs(20));
        Policies {
            cache: Arc::new(Mutex::new(HashMap::new())),
            dns,
            http,
            port,
        }
    }

    fn cached(&self, domain: &str, now: i64) -> Option<(String, Policy)> {
        let cache = self.cache.lock().expect("mta-sts lock");
        cache
            .get(domain)
            .filter(|c| c.expires > now)
            .map(|c| (c.id.clone(), c.policy.clone()))
    }

    /// The policy in force for `domain`, if any.
    pub async fn for_domain(&self, domain: &str) -> Option<Policy> {
        let domain = domain.to_ascii_lowercase();
        let now = crate::clock::unix_now();
        let cached = self.cached(&domain, now);
        let id = match self.dns.clone().txt(&format!("_mta-sts.{domain}")).await {
            Ok(records) => {
                let sts: Vec<&String> = records
                    .iter()
                    .filter(|r| r.trim_start().starts_with("v=STSv1"))
                    .collect();
                // Exactly one record, or none counts (RFC 8461 3.1).
                match sts.as_slice() {
                    [one] => match record_id(one) {
                        Some(id) => id,
                        None => return cached.map(|(_, p)| p),
                    },
                    _ => return cached.map(|(_, p)| p),
                }
            }
            Err(DnsError::NxDomain) => return cached.map(|(_, p)| p),
            Err(e) => {
                log::info!("mta-sts {domain}: {e}");
                return cached.map(|(_, p)| p);
            }
        };
        if let Some((cached_id, policy)) = &cached {
            if *cached_id == id {
                return Some(policy.clone());
            }
        }
        match self.fetch(&domain).await {
            Ok(policy) => {
                log::info!(
                    "mta-sts {domain}: policy {id}, mode {:?}, mx {}",
                    policy.mode,
                    policy.mx.join(" ")
                );
                let mut cache = self.cache.lock().expect("mta-sts lock");
                cache.retain(|_, c| c.expires > now);
                cache.insert(
                    domain,
                    Cached {
                        id,
                        policy: policy.clone(),
                        expires: now.saturating_add(policy.max_age as i64),
                    },
                );
                Some(policy)
            }
            Err(e) => {
                log::warn!(
                    "mta-sts {domain}: no policy fetched ({e}); using the cached one if any"
                );
                cached.map(|(_, p)| p)
            }
        }
    }

    async fn fetch(&self, domain: &str) -> Result<Policy, String> {
        fetch(&self.http, domain, self.port).await
    }
}

/// Fetches and parses `domain`'s policy as RFC 8461 3.3 says: HTTPS on `port` (443), no
/// redirects, status 200, `text/plain`, at most 64 KiB. `letterbox check` asks this too.
pub async fn fetch(
    http: &crate::http::client::Client,
    domain: &str,
    port: u16,
) -> Result<Policy, String> {
    let host = format!("mta-sts.{domain}");
    let url = if port == 443 {
        format!("https://{host}/.well-known/mta-sts.txt")
    } else {
        format!("https://{host}:{port}/.well-known/mta-sts.txt")
    };
    let rsp = http.send("GET", &url, &[], &[]).await?;
    if rsp.head.status != 200 {
        return Err(format!("{url} answered {}", rsp.head.status));
    }
    let content_type = rsp
        .head
        .headers
        .iter()
        .find(|(name, _)| name == "content-type")
        .map(|(_, v)| String::from_utf8_lossy(v).to_ascii_lowercase())
        .unwrap_or_default();
    if !content_type.starts_with("text/plain") {
        return Err(format!(
            "{url}: Content-Type {content_type:?}, not text/plain"
        ));
    }
    if rsp.body.len() > MAX_POLICY {
        return Err(format!("{url}: policy over 64 KiB"));
    }
    parse_policy(&String::from_utf8_lossy(&rsp.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records() {
        assert_eq!(
            record_id("v=STSv1; id=20160831085700Z;").as_deref(),
            Some("20160831085700Z")
        );
        assert_eq!(record_id("v=STSv1;id=abc").as_deref(), Some("abc"));
        assert_eq!(record_id("v=STSv2; id=abc"), None);
        assert_eq!(record_id("v=STSv1; id=a-b"), None);
        assert_eq!(record_id("v=STSv1; id=bad-id; id=ok"), None);
        assert_eq!(record_id("v=spf1 -all"), None);
    }

    #[test]
    fn policies() {
        let p = parse_policy(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\nextension: x\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604800);
        assert!(p.matches("MAIL.example.com."));
        assert!(p.matches("mx1.example.net"));
        assert!(!p.matches("a.b.example.net"));
        assert!(!p.matches("example.net"));
        assert!(!p.matches("mail.example.org"));
        let lf = parse_policy("version: STSv1\nmode: none\nmax_age: 99999999999\n").unwrap();
        assert_eq!((lf.mode, lf.max_age), (Mode::None, MAX_AGE_CAP));
        assert_eq!(
            parse_policy("mode: enforce\nmx: a\nmax_age: 1\n").unwrap_err(),
            "no version: STSv1"
        );
        assert_eq!(
            parse_policy("version: STSv1\nmode: enforce\nmax_age: 1\n").unwrap_err(),
            "no mx"
        );
        assert!(parse_policy("version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n").is_err());
    }
}
