//! Where a recipient's mail goes: a smarthost from the configuration, or the MX hosts of
//! the recipient's domain (RFC 5321 §5.1), looked up through [`crate::dns`].
//!
//! - MX records are tried in preference order (equal preferences in random order); a
//!   domain without MX records gets its own A/AAAA as an implicit MX.
//! - A null MX (RFC 7505, `0 .`) and a domain that does not exist are permanent failures
//!   (5.1.10, 5.1.2); every other DNS trouble (SERVFAIL, timeouts) is temporary.

use super::client::{Connectors, Failure, Hop, TlsPolicy};
use super::mta_sts::{Mode, Policies};
use super::tlsrpt::PolicyType;
use crate::auth::Secret;
use crate::config::{MxTls, Relay, SmarthostTls};
use crate::dns::{DnsError, Mx, Tlsa};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// A destination for a set of recipients: all recipients with the same route can share
/// one connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    /// Through the configured smarthost with this index.
    Smarthost(usize),
    /// To the MX hosts of this (lower-case) domain.
    Mx(String),
}

impl Route {
    pub fn for_domain(relay: &Relay, domain: &str) -> Route {
        let domain = domain.to_ascii_lowercase();
        match relay
            .smarthosts
            .iter()
            .position(|s| s.domains.iter().any(|d| d.eq_ignore_ascii_case(&domain)))
            .or_else(|| relay.smarthosts.iter().position(|s| s.domains.is_empty()))
        {
            Some(i) => Route::Smarthost(i),
            None => Route::Mx(domain),
        }
    }

    pub fn name(&self, relay: &Relay) -> String {
        match self {
            Route::Smarthost(i) => relay
                .smarthosts
                .get(*i)
                .map_or_else(|| "smarthost".into(), |s| format!("{}:{}", s.host, s.port)),
            Route::Mx(domain) => domain.clone(),
        }
    }
}

/// Next-hop lookups over [`crate::dns`], with the relay's reading of each answer, and the
/// recipient domains' MTA-STS policies.
#[derive(Clone)]
pub struct Resolver(crate::dns::Resolver, Policies);

impl Resolver {
    /// `client_tls`: the verifying client configuration (policies are fetched with it).
    /// With `[relay] dnssec` the answers are DNSSEC-validated, for DANE.
    pub fn new(relay: &Relay, client_tls: Arc<rustls::ClientConfig>) -> Resolver {
        let validation = if relay.dnssec {
            crate::dns::Validation::On(relay.dnssec_trust_anchor.clone())
        } else {
            crate::dns::Validation::Off
        };
        let dns = crate::dns::Resolver::with_validation(
            relay.dns_server_addrs(),
            client_tls.clone(),
            validation,
        );
        let policies = Policies::new(dns.clone(), client_tls, relay.mta_sts_port);
        Resolver(dns, policies)
    }

    /// The DNS resolver beneath.
    pub fn dns(&self) -> crate::dns::Resolver {
        self.0.clone()
    }

    /// The hosts to try for a domain, best first, and whether DNSSEC proved them.
    pub async fn mx_hosts(&mut self, domain: &str) -> Result<(Vec<String>, bool), Failure> {
        match self.0.mx_secured(domain).await {
            Ok(answer) => {
                let (records, secure) = (answer.value, answer.secure);
                if records.iter().any(Mx::is_null) {
                    return Err(Failure::permanent(
                        "5.1.10",
                        format!("{domain} does not accept mail (null MX, RFC 7505)"),
                    ));
                }
                if records.is_empty() {
                    // No MX records: the domain itself is the implicit MX.
                    return Ok((vec![domain.to_string()], false));
                }
                let mut records: Vec<(u16, String)> = records
                    .into_iter()
                    .map(|mx| (mx.preference, mx.exchange))
                    .collect();
                shuffle_equal_preferences(&mut records);
                Ok((records.into_iter().map(|(_, host)| host).collect(), secure))
            }
            Err(DnsError::NxDomain) => Err(Failure::permanent(
                "5.1.2",
                format!("domain {domain} does not exist"),
            )),
            Err(e) => Err(temporary(e)),
        }
    }

    /// The DNSSEC-proven TLSA records of `host` on `port` (RFC 7672 2.2); `None` when
    /// there are none or they are not proven.
    pub async fn tlsa(&mut self, host: &str, port: u16) -> Result<Option<Vec<Tlsa>>, Failure> {
        match self.0.tlsa(&format!("_{port}._tcp.{host}")).await {
            Ok(answer) if answer.secure => Ok(Some(answer.value)),
            Ok(_) | Err(DnsError::NxDomain) => Ok(None),
            Err(e) => Err(temporary(e)),
        }
    }

    /// The addresses of a host; an empty list when it has none.
    pub async fn addresses(&mut self, host: &str) -> Result<Vec<IpAddr>, Failure> {
        match self.0.ip(host).await {
            Ok(addresses) => Ok(addresses),
            Err(DnsError::NxDomain) => Ok(Vec::new()),
            Err(e) => Err(temporary(e)),
        }
    }
}

fn temporary(e: DnsError) -> Failure {
    match e {
        // No resolver at all: a routing problem of ours (4.4.1), not a DNS answer.
        DnsError::NoConfig => Failure::temporary(e.to_string()),
        e => Failure {
            permanent: false,
            diagnostic: e.to_string(),
            status: "4.4.3".into(),
        },
    }
}

/// RFC 5321 §5.1: hosts of equal preference are tried in random order.
fn shuffle_equal_preferences(records: &mut [(u16, String)]) {
    use rand_core::RngCore;
    let mut rng = rand_core::OsRng;
    records.sort_by_key(|r| (r.0, rng.next_u32()));
}

/// The hops to try, in order, for one route. Smarthost: its addresses. MX: every address of
/// every MX host in preference order.
pub async fn hops(
    route: &Route,
    relay: &Relay,
    resolver: &mut Resolver,
) -> Result<Vec<Hop>, Failure> {
    match route {
        Route::Smarthost(i) => {
            let Some(smarthost) = relay.smarthosts.get(*i) else {
                return Err(Failure::temporary("the smarthost left the configuration"));
            };
            let addresses = resolver.addresses(&smarthost.host).await?;
            if addresses.is_empty() {
                return Err(Failure::temporary(format!(
                    "smarthost {} has no address",
                    smarthost.host
                )));
            }
            let tls = match smarthost.tls {
                SmarthostTls::Starttls => TlsPolicy::Required,
                SmarthostTls::Implicit => TlsPolicy::Implicit,
                SmarthostTls::None => TlsPolicy::None,
            };
            let credentials = smarthost
                .username
                .clone()
                .zip(smarthost.password.clone().map(Secret));
            Ok(addresses
                .into_iter()
                .map(|ip| Hop {
                    host: smarthost.host.clone(),
                    addr: SocketAddr::new(ip, smarthost.port),
                    tls,
                    credentials: credentials.clone(),
                    dane: None,
                    tlsrpt: None,
                    fallback: None,
                })
                .collect())
        }
        Route::Mx(domain) => {
            let mut tls = match relay.mx_tls {
                MxTls::Opportunistic => TlsPolicy::Opportunistic,
                MxTls::Verify => TlsPolicy::Required,
                MxTls::None => TlsPolicy::None,
            };
            let (mut hosts, mx_secure) = resolver.mx_hosts(domain).await?;
            let policy = resolver.1.for_domain(domain).await;
            let sts = policy.as_ref().is_some_and(|p| p.mode != Mode::None);
            let testing = policy.as_ref().is_some_and(|p| p.mode == Mode::Testing);
            if let Some(policy) = policy.filter(|p| p.mode == Mode::Enforce) {
                // RFC 8461 4.2: only the policy's MX hosts, over verified TLS.
                let listed = hosts.len();
                hosts.retain(|host| policy.matches(host));
                if hosts.is_empty() {
                    return Err(Failure::temporary(format!(
                        "MTA-STS: the enforced policy of {domain} names none of its {listed} MX host(s)"
                    )));
                }
                tls = TlsPolicy::Required;
            }
            let mut hops = Vec::new();
            let mut last_error = None;
            for host in hosts {
                // DANE (RFC 7672 2.2.1): only below a proven MX RRset.
                let dane = if mx_secure {
                    match resolver.tlsa(&host, relay.mx_port).await {
                        // Records none of which we can use still make TLS mandatory
                        // (unauthenticated, RFC 7672 2.2), unless a stricter policy
                        // (MTA-STS enforce, mx_tls = "verify") verifies the certificate.
                        Ok(records) => records
                            .filter(|r| {
                                !super::dane::usable(r).is_empty() || tls != TlsPolicy::Required
                            })
                            .map(Arc::new),
                        Err(e) => {
                            // A TLSA lookup that fails may hide records: skip the host.
                            last_error = Some(e);
                            continue;
                        }
                    }
                } else {
                    None
                };
                match resolver.addresses(&host).await {
                    Ok(addresses) => {
                        hops.extend(addresses.into_iter().map(|ip| {
                            Hop {
                                host: host.clone(),
                                addr: SocketAddr::new(ip, relay.mx_port),
                                tls: if dane.is_some() || testing {
                                    TlsPolicy::Required
                                } else {
                                    tls
                                },
                                fallback: (dane.is_none() && testing && tls != TlsPolicy::Required)
                                    .then_some(tls),
                                credentials: None,
                                dane: dane.clone(),
                                tlsrpt: Some(if dane.is_some() {
                                    PolicyType::Tlsa
                                } else if sts {
                                    PolicyType::Sts
                                } else {
                                    PolicyType::NoPolicyFound
                                }),
                            }
                        }))
                    }
                    Err(e) => last_error = Some(e),
                }
            }
            if hops.is_empty() {
                return Err(last_error.unwrap_or_else(|| {
                    Failure::permanent("5.1.2", format!("no mail host of {domain} has an address"))
                }));
            }
            Ok(hops)
        }
    }
}

/// Client TLS configurations for outbound SMTP: webpki roots plus `ca_file`.
pub fn connectors(relay: &Relay) -> Result<(Connectors, Arc<rustls::ClientConfig>), String> {
    let configs = crate::tls::client::ClientConfigs::new(relay.ca_file.as_deref())?;
    Ok((
        Connectors {
            verified: tokio_rustls::TlsConnector::from(configs.verified.clone()),
            opportunistic: tokio_rustls::TlsConnector::from(configs.opportunistic),
        },
        configs.verified,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_prefer_a_listed_smarthost() {
        let mut relay = Relay::default();
        assert_eq!(
            Route::for_domain(&relay, "Example.NET"),
            Route::Mx("example.net".into())
        );
        let host = |domains: &[&str]| crate::config::Smarthost {
            host: "relay.test".into(),
            port: 587,
            tls: SmarthostTls::Starttls,
            username: None,
            password: None,
            domains: domains.iter().map(|d| d.to_string()).collect(),
        };
        relay.smarthosts = vec![host(&[]), host(&["special.test"])];
        assert_eq!(
            Route::for_domain(&relay, "special.test"),
            Route::Smarthost(1)
        );
        assert_eq!(Route::for_domain(&relay, "other.test"), Route::Smarthost(0));
    }
}
