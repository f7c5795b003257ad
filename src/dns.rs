//! DNS for everything that asks: the relay (MX, A/AAAA), DKIM verification, and next SPF,
//! DMARC and DNSBL checks. One resolver type built on hickory-resolver, typed lookups, and
//! one error type that tells a name that does not exist from trouble worth retrying.
//!
//! The servers are `[relay] dns_servers` (tests point it at their own server on loopback)
//! or, when empty, /etc/resolv.conf. On the appliance resolv.conf appears only with the
//! DHCP lease, so without configured servers the system configuration is read lazily and
//! re-read after a failure.
//!
//! The relay's resolver may validate DNSSEC itself (`[relay] dnssec`, hickory's validator
//! with the root's trust anchor, or `dnssec_trust_anchor`): answers then say whether they
//! were proven ([`Secured`]), which DANE needs. Without validation nothing is "secure".

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why a lookup gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// No servers configured and no usable /etc/resolv.conf.
    NoConfig,
    /// The name does not exist (NXDOMAIN): a permanent answer.
    NxDomain,
    /// SERVFAIL, timeouts, refused connections: worth trying again later.
    Temporary(String),
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::NoConfig => f.write_str("no DNS configuration (/etc/resolv.conf)"),
            DnsError::NxDomain => f.write_str("the name does not exist"),
            DnsError::Temporary(e) => f.write_str(e),
        }
    }
}

/// One MX record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    pub preference: u16,
    /// The exchange without its trailing dot; empty for the null MX (RFC 7505, `0 .`).
    pub exchange: String,
}

impl Mx {
    pub fn is_null(&self) -> bool {
        self.exchange.is_empty()
    }
}

/// An answer, and whether DNSSEC validation proved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secured<T> {
    pub value: T,
    pub secure: bool,
}

/// A TLSA record (RFC 6698 2.1), as its numbers and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

/// Whether answers are validated, and against which trust anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    Off,
    /// DNSSEC validated here; `None`: the root's key built into hickory, else a file of
    /// DNSKEY records.
    On(Option<PathBuf>),
}

/// A resolver; cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    inner: Option<Arc<TokioResolver>>,
    servers: Vec<SocketAddr>,
    client_tls: Arc<rustls::ClientConfig>,
    validation: Validation,
}

impl Resolver {
    /// Asks `servers`, or those of /etc/resolv.conf when the list is empty. `client_tls`
    /// serves hickory's DNS-over-TLS support, whose default would load the OS
    /// certificate store (absent on the appliance).
    pub fn new(servers: Vec<SocketAddr>, client_tls: Arc<rustls::ClientConfig>) -> Resolver {
        Resolver::with_validation(servers, client_tls, Validation::Off)
    }

    /// Like [`Resolver::new`], validating DNSSEC as `validation` says.
    pub fn with_validation(
        servers: Vec<SocketAddr>,
        client_tls: Arc<rustls::ClientConfig>,
        validation: Validation,
    ) -> Resolver {
        let mut resolver = Resolver {
            inner: None,
            servers,
            client_tls,
            validation,
        };
        resolver.inner = match resolver.build() {
            Ok(r) => Some(Arc::new(r)),
            Err(e) => {
                if resolver.validation != Validation::Off {
                    log::error!("{e}");
                }
                None
            }
        };
        resolver
    }

    /// Whether answers are DNSSEC-validated.
    pub fn validates(&self) -> bool {
        self.validation != Validation::Off
    }

    fn build(&self) -> Result<TokioResolver, String> {
        let anchor = match &self.validation {
            Validation::Off => None,
            Validation::On(path) => Some(path.as_deref()),
        };
        build_resolver(&self.servers, &self.client_tls, anchor)
    }

    fn resolver(&mut self) -> Result<Arc<TokioResolver>, DnsError> {
        if self.inner.is_none() {
            self.inner = self.build().map(Arc::new).ok();
        }
        self.inner.clone().ok_or(DnsError::NoConfig)
    }

    /// A mail-auth authenticator (DKIM, SPF, DMARC) asking the same servers.
    pub fn authenticator(&self) -> Result<mail_auth::MessageAuthenticator, String> {
        Ok(mail_auth::MessageAuthenticator(self.build()?))
    }

    /// The MX records of `domain`; an empty list when it has none (RFC 5321 §5.1 then
    /// makes the domain its own implicit MX).
    pub async fn mx(&mut self, domain: &str) -> Result<Vec<Mx>, DnsError> {
        self.mx_secured(domain).await.map(|answer| answer.value)
    }

    /// [`Resolver::mx`], saying whether the MX RRset was proven by DNSSEC.
    pub async fn mx_secured(&mut self, domain: &str) -> Result<Secured<Vec<Mx>>, DnsError> {
        let resolver = self.resolver()?;
        match resolver.mx_lookup(fqdn(domain).as_str()).await {
            Ok(lookup) => {
                let answers = lookup.answers();
                let value: Vec<Mx> = answers
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::MX(mx) => Some(Mx {
                            preference: mx.preference,
                            exchange: if mx.exchange.is_root() {
                                String::new()
                            } else {
                                mx.exchange.to_ascii().trim_end_matches('.').to_string()
                            },
                        }),
                        _ => None,
                    })
                    .collect();
                let secure = self.validates()
                    && !value.is_empty()
                    && all_secure(answers, hickory_resolver::proto::rr::RecordType::MX);
                Ok(Secured { value, secure })
            }
            Err(e) => self.failure(e, "MX", domain).map(|()| Secured {
                value: Vec::new(),
                secure: false,
            }),
        }
    }

    /// The TLSA records at `name` (e.g. `_25._tcp.mx.example.org`), saying whether they
    /// were proven by DNSSEC.
    pub async fn tlsa(&mut self, name: &str) -> Result<Secured<Vec<Tlsa>>, DnsError> {
        use hickory_resolver::proto::rr::RecordType;
        let resolver = self.resolver()?;
        match resolver.lookup(fqdn(name).as_str(), RecordType::TLSA).await {
            Ok(lookup) => {
                let answers = lookup.answers();
                let value: Vec<Tlsa> = answers
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::TLSA(t) => Some(Tlsa {
                            usage: t.cert_usage.into(),
                            selector: t.selector.into(),
                            matching: t.matching.into(),
                            data: t.cert_data.clone(),
                        }),
                        _ => None,
                    })
                    .collect();
                let secure =
                    self.validates() && !value.is_empty() && all_secure(answers, RecordType::TLSA);
                Ok(Secured { value, secure })
            }
            Err(e) => self.failure(e, "TLSA", name).map(|()| Secured {
                value: Vec::new(),
                secure: false,
            }),
        }
    }

    /// The IPv4 and IPv6 addresses of `host`; an empty list when it has none. An IP
    /// literal (bracketed or not) is its own answer.
    pub async fn ip(&mut self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(vec![ip]);
        }
        let resolver = self.resolver()?;
        match resolver.lookup_ip(fqdn(host).as_str()).await {
            Ok(lookup) => Ok(lookup.iter().collect()),
            Err(e) => self.failure(e, "address", host).map(|()| Vec::new()),
        }
    }

    /// The TXT records of `name`, each one's strings joined (RFC 7208 §3.3).
    pub async fn txt(&mut self, name: &str) -> Result<Vec<String>, DnsError> {
        let resolver = self.resolver()?;
        match resolver.txt_lookup(fqdn(name).as_str()).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|part| String::from_utf8_lossy(part))
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(e) => self.failure(e, "TXT", name).map(|()| Vec::new()),
        }
    }

    /// The PTR names of `ip`, without trailing dots.
    pub async fn ptr(&mut self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        let resolver = self.resolver()?;
        match resolver
            .reverse_lookup(hickory_resolver::proto::rr::Name::from(ip))
            .await
        {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::PTR(name) => Some(name.0.to_ascii().trim_end_matches('.').to_string()),
                    _ => None,
                })
                .collect()),
            Err(e) => self.failure(e, "PTR", &ip.to_string()).map(|()| Vec::new()),
        }
    }

    /// Sorts a failed lookup: Ok(()) for "no records", NXDOMAIN, or a temporary error
    /// (after which the system configuration is re-read: the DHCP lease may have
    /// changed it).
    fn failure(
        &mut self,
        e: hickory_resolver::net::NetError,
        kind: &str,
        name: &str,
    ) -> Result<(), DnsError> {
        if e.is_nx_domain() {
            return Err(DnsError::NxDomain);
        }
        if e.is_no_records_found() {
            return Ok(());
        }
        if self.servers.is_empty() {
            self.inner = None;
        }
        Err(DnsError::Temporary(format!(
            "{kind} lookup for {name}: {e}"
        )))
    }
}

/// Whether every record of the asked type (and every CNAME on the way) was proven. RRSIGs
/// in the answer are not judged: hickory marks only the one it used, and an extra one
/// (a key rollover, or an attacker's junk) must not turn DANE off.
fn all_secure(
    records: &[hickory_resolver::proto::rr::Record],
    wanted: hickory_resolver::proto::rr::RecordType,
) -> bool {
    use hickory_resolver::proto::rr::RecordType;
    let mut relevant = records
        .iter()
        .filter(|r| {
            let t = r.record_type();
            t == wanted || t == RecordType::CNAME
        })
        .peekable();
    relevant.peek().is_some()
        && relevant.all(|r| r.proof == hickory_resolver::proto::dnssec::Proof::Secure)
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

/// A resolver asking `servers`, or those of /etc/resolv.conf when the list is empty.
pub fn build_resolver(
    servers: &[SocketAddr],
    client_tls: &rustls::ClientConfig,
    dnssec: Option<Option<&Path>>,
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
    let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
    match dnssec {
        None => {}
        Some(None) => options.validate = true,
        Some(Some(path)) => {
            let anchor = hickory_resolver::proto::dnssec::TrustAnchors::from_file(path)
                .map_err(|e| format!("DNSSEC trust anchor {}: {e}", path.display()))?;
            builder = builder.with_trust_anchor(Arc::new(anchor));
        }
    }
    builder
        .with_options(options)
        .with_tls_config(client_tls.clone())
        .build()
        .map_err(|e| format!("DNS resolver: {e}"))
}
