//! Where a recipient's mail goes: a smarthost from the configuration, or the MX hosts of
//! the recipient's domain (RFC 5321 §5.1), looked up with hickory-resolver.
//!
//! - MX records are tried in preference order (equal preferences in random order); a
//!   domain without MX records gets its own A/AAAA as an implicit MX.
//! - A null MX (RFC 7505, `0 .`) and a domain that does not exist are permanent failures
//!   (5.1.10, 5.1.2); every other DNS trouble (SERVFAIL, timeouts) is temporary.
//! - `[relay] dns_servers` replaces /etc/resolv.conf (tests point it at their own server);
//!   without it the system configuration is read when the relay starts and re-read after a
//!   failure, since on the appliance resolv.conf appears only with the DHCP lease.

use super::client::{Connectors, Failure, Hop, TlsPolicy};
use crate::auth::Secret;
use crate::config::{MxTls, Relay, SmarthostTls};
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// `ip` or `ip:port` (IPv6 with a port as `[ip]:port`).
pub fn parse_dns_server(text: &str) -> Option<SocketAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    text.parse::<SocketAddr>().ok()
}

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

/// Looks up next hops. Cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    inner: Option<Arc<TokioResolver>>,
    servers: Vec<SocketAddr>,
    client_tls: Arc<rustls::ClientConfig>,
}

impl Resolver {
    pub fn new(relay: &Relay, client_tls: Arc<rustls::ClientConfig>) -> Resolver {
        let servers: Vec<SocketAddr> = relay
            .dns_servers
            .iter()
            .filter_map(|s| parse_dns_server(s))
            .collect();
        let mut resolver = Resolver {
            inner: None,
            servers,
            client_tls,
        };
        resolver.inner = resolver.build().map(Arc::new).ok();
        resolver
    }

    fn build(&self) -> Result<TokioResolver, String> {
        build_resolver(&self.servers, &self.client_tls)
    }

    fn resolver(&mut self) -> Result<Arc<TokioResolver>, Failure> {
        if self.inner.is_none() {
            self.inner = self.build().map(Arc::new).ok();
        }
        self.inner
            .clone()
            .ok_or_else(|| Failure::temporary("no DNS configuration (/etc/resolv.conf)"))
    }

    /// The hosts to try for a domain, best first.
    pub async fn mx_hosts(&mut self, domain: &str) -> Result<Vec<String>, Failure> {
        let resolver = self.resolver()?;
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        match resolver.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => {
                let mut records: Vec<(u16, String, bool)> = Vec::new();
                for record in lookup.answers() {
                    if let RData::MX(mx) = &record.data {
                        let root = mx.exchange.is_root();
                        let host = mx.exchange.to_ascii();
                        records.push((mx.preference, host.trim_end_matches('.').to_string(), root));
                    }
                }
                if records.iter().any(|(_, _, root)| *root) {
                    return Err(Failure::permanent(
                        "5.1.10",
                        format!("{domain} does not accept mail (null MX, RFC 7505)"),
                    ));
                }
                if records.is_empty() {
                    return Ok(vec![domain.to_string()]);
                }
                shuffle_equal_preferences(&mut records);
                Ok(records.into_iter().map(|(_, host, _)| host).collect())
            }
            Err(e) if e.is_nx_domain() => Err(Failure::permanent(
                "5.1.2",
                format!("domain {domain} does not exist"),
            )),
            // No MX records: the domain itself is the implicit MX.
            Err(e) if e.is_no_records_found() => Ok(vec![domain.to_string()]),
            Err(e) => {
                self.forget_if_system();
                Err(Failure {
                    permanent: false,
                    diagnostic: format!("MX lookup for {domain}: {e}"),
                    status: "4.4.3".into(),
                })
            }
        }
    }

    /// The addresses of a host; an empty list when it has none.
    pub async fn addresses(&mut self, host: &str) -> Result<Vec<IpAddr>, Failure> {
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(vec![ip]);
        }
        let resolver = self.resolver()?;
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        match resolver.lookup_ip(fqdn.as_str()).await {
            Ok(lookup) => Ok(lookup.iter().collect()),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => {
                self.forget_if_system();
                Err(Failure {
                    permanent: false,
                    diagnostic: format!("address lookup for {host}: {e}"),
                    status: "4.4.3".into(),
                })
            }
        }
    }

    /// Re-read /etc/resolv.conf next time: the DHCP lease may have changed it.
    fn forget_if_system(&mut self) {
        if self.servers.is_empty() {
            self.inner = None;
        }
    }
}

/// A resolver asking `servers`, or those of /etc/resolv.conf when the list is empty.
pub fn build_resolver(
    servers: &[SocketAddr],
    client_tls: &rustls::ClientConfig,
) -> Result<TokioResolver, String> {
    let config = if servers.is_empty() {
        let (config, _) = hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| format!("no DNS configuration: {e}"))?;
        config
    } else {
        let servers = servers
            .iter()
            .map(|addr| {
                let (mut udp, mut tcp) = (ConnectionConfig::udp(), ConnectionConfig::tcp());
                udp.port = addr.port();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        ResolverConfig::from_name_servers(servers)
    };
    let mut options = ResolverOpts::default();
    options.use_hosts_file = ResolveHosts::Never;
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    options.timeout = Duration::from_secs(5);
    options.attempts = 2;
    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(options)
        // mail-auth turns on hickory's TLS support, whose default would load the OS
        // certificate store (absent on the appliance); give it ours.
        .with_tls_config(client_tls.clone())
        .build()
        .map_err(|e| format!("DNS resolver: {e}"))
}

/// RFC 5321 §5.1: hosts of equal preference are tried in random order.
fn shuffle_equal_preferences(records: &mut [(u16, String, bool)]) {
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
                })
                .collect())
        }
        Route::Mx(domain) => {
            let tls = match relay.mx_tls {
                MxTls::Opportunistic => TlsPolicy::Opportunistic,
                MxTls::Verify => TlsPolicy::Required,
                MxTls::None => TlsPolicy::None,
            };
            let mut hops = Vec::new();
            let mut last_error = None;
            for host in resolver.mx_hosts(domain).await? {
                match resolver.addresses(&host).await {
                    Ok(addresses) => hops.extend(addresses.into_iter().map(|ip| Hop {
                        host: host.clone(),
                        addr: SocketAddr::new(ip, relay.mx_port),
                        tls,
                        credentials: None,
                    })),
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
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = &relay.ca_file {
        let certs =
            CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verified = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let verified = Arc::new(verified);
    let opportunistic = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok((
        Connectors {
            verified: tokio_rustls::TlsConnector::from(verified.clone()),
            opportunistic: tokio_rustls::TlsConnector::from(Arc::new(opportunistic)),
        },
        verified,
    ))
}

/// Opportunistic TLS (RFC 7435): encrypt even when the certificate cannot be checked, as
/// Postfix's `may` level does. Signatures are still checked, so the session key is bound
/// to the certificate that was shown.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_server_forms() {
        assert_eq!(
            parse_dns_server("127.0.0.1"),
            Some("127.0.0.1:53".parse().unwrap())
        );
        assert_eq!(
            parse_dns_server("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_dns_server("[::1]:5353"),
            Some("[::1]:5353".parse().unwrap())
        );
        assert_eq!(parse_dns_server("ns.example"), None);
    }

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
