//! Typed configuration, read from TOML (default `/etc/letterbox/letterbox.toml`).
//!
//! Without a file, letterbox runs on an embedded default: domains `localhost` and the host
//! name, listeners on 127.0.0.1, standard ports as root and unprivileged ports (2525, 2587,
//! 2465, 2110, 2995, 2143, 2993, 24190) otherwise. Unknown keys and bad values are errors naming key and line.
//!
//! Listener changes need a restart; SIGHUP reloads everything else (limits, TLS files,
//! seeded domains).

mod acme;
mod backup;
mod clock;

pub use acme::{Acme, Challenge};
pub use backup::Backup;
pub use clock::Clock;
use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `serve` looks for a config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/letterbox/letterbox.toml";
/// Data directory when neither `--data`, `$LETTERBOX_DATA` nor `data_dir` say otherwise.
pub const DEFAULT_DATA_DIR: &str = "letterbox-data";
/// The unprivileged user letterbox drops to when started as root.
pub const DEFAULT_RUN_AS: &str = "letterbox";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Name announced in greetings and Received: headers.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// Local domains, added to the store at start (more can be added with `letterbox domain add`).
    #[serde(default)]
    pub domains: Vec<String>,
    /// LMDB environment, TLS material and spool live here.
    pub data_dir: Option<PathBuf>,
    /// User to switch to after binding ports when started as root.
    pub run_as: Option<String>,
    /// LMDB map size in MiB: the most the store can ever hold.
    pub map_size_mib: Option<u64>,
    /// Listening sockets; empty means the embedded default set.
    #[serde(default, rename = "listener")]
    pub listeners: Vec<Listener>,
    /// Certificate and key (PEM). Absent: a self-signed pair kept in the data dir.
    pub tls: Option<TlsFiles>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub auth: AuthPolicy,
    #[serde(default)]
    pub relay: Relay,
    #[serde(default)]
    pub inbound: Inbound,
    /// Certificates from an ACME CA (Let's Encrypt by default); absent: none are requested.
    pub acme: Option<Acme>,
    #[serde(default)]
    pub clock: Clock,
    /// The daily backup (see [`Backup`]); absent: none.
    pub backup: Option<Backup>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    /// MX, port 25: mail for local recipients, no AUTH.
    Smtp,
    /// Message submission, port 587: STARTTLS then AUTH.
    Submission,
    /// Submission over implicit TLS, port 465 (RFC 8314).
    Submissions,
    /// POP3 with STLS, port 110.
    Pop3,
    /// POP3 over implicit TLS, port 995.
    Pop3s,
    /// IMAP with STARTTLS, port 143.
    Imap,
    /// IMAP over implicit TLS, port 993.
    Imaps,
    /// ManageSieve (RFC 5804) with STARTTLS, port 4190.
    Managesieve,
    /// HTTP, port 80: ACME HTTP-01 challenges and the MTA-STS policy, nothing else.
    Http,
    /// HTTPS, port 443: the same, plus ACME TLS-ALPN-01 challenges.
    Https,
}

impl ListenerKind {
    /// The embedded default's listeners (the web ones only when configured).
    pub const ALL: [ListenerKind; 8] = [
        ListenerKind::Smtp,
        ListenerKind::Submission,
        ListenerKind::Submissions,
        ListenerKind::Pop3,
        ListenerKind::Pop3s,
        ListenerKind::Imap,
        ListenerKind::Imaps,
        ListenerKind::Managesieve,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ListenerKind::Smtp => "smtp",
            ListenerKind::Submission => "submission",
            ListenerKind::Submissions => "submissions",
            ListenerKind::Pop3 => "pop3",
            ListenerKind::Pop3s => "pop3s",
            ListenerKind::Imap => "imap",
            ListenerKind::Imaps => "imaps",
            ListenerKind::Managesieve => "managesieve",
            ListenerKind::Http => "http",
            ListenerKind::Https => "https",
        }
    }

    pub fn standard_port(self) -> u16 {
        match self {
            ListenerKind::Smtp => 25,
            ListenerKind::Submission => 587,
            ListenerKind::Submissions => 465,
            ListenerKind::Pop3 => 110,
            ListenerKind::Pop3s => 995,
            ListenerKind::Imap => 143,
            ListenerKind::Imaps => 993,
            ListenerKind::Managesieve => 4190,
            ListenerKind::Http => 80,
            ListenerKind::Https => 443,
        }
    }

    /// Ports used when started without root.
    pub fn unprivileged_port(self) -> u16 {
        match self {
            ListenerKind::Smtp => 2525,
            ListenerKind::Submission => 2587,
            ListenerKind::Submissions => 2465,
            ListenerKind::Pop3 => 2110,
            ListenerKind::Pop3s => 2995,
            ListenerKind::Imap => 2143,
            ListenerKind::Imaps => 2993,
            ListenerKind::Managesieve => 24190,
            ListenerKind::Http => 2080,
            ListenerKind::Https => 2443,
        }
    }

    /// Whether the connection starts with a TLS handshake.
    pub fn implicit_tls(self) -> bool {
        matches!(
            self,
            ListenerKind::Submissions
                | ListenerKind::Pop3s
                | ListenerKind::Imaps
                | ListenerKind::Https
        )
    }
}

impl fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub kind: ListenerKind,
    pub address: IpAddr,
    pub port: u16,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest message accepted, in bytes (advertised with SIZE).
    pub max_message_size: u64,
    /// Recipients per SMTP transaction.
    pub max_recipients: usize,
    /// Open connections over all listeners.
    pub max_connections: usize,
    /// Open connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Open connections from one network: an IPv4 /24 or an IPv6 /64 (one home line, one
    /// hosting customer), so that many addresses of one network cannot take every slot.
    pub max_connections_per_network: usize,
    /// Idle time allowed between commands (RFC 5321 §4.5.3.2.7: 5 minutes).
    pub command_timeout_secs: u64,
    /// Time allowed between two reads inside DATA/BDAT (RFC 5321 §4.5.3.2.5: 3 minutes).
    pub data_timeout_secs: u64,
    /// Protocol errors tolerated in one session before it is closed.
    pub max_errors: u32,
    /// How long SIGTERM waits for open sessions before exiting.
    pub shutdown_grace_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_connections: 1000,
            max_connections_per_ip: 50,
            max_connections_per_network: 200,
            command_timeout_secs: 300,
            data_timeout_secs: 180,
            max_errors: 10,
            shutdown_grace_secs: 10,
        }
    }
}

impl Limits {
    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.command_timeout_secs)
    }
    pub fn data_timeout(&self) -> Duration {
        Duration::from_secs(self.data_timeout_secs)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthPolicy {
    /// Allow POP3 and IMAP logins without TLS when the peer is a loopback address (development only).
    /// SMTP submission always requires TLS before AUTH.
    pub allow_plaintext_on_loopback: bool,
    /// How long a verified password is remembered (as a keyed hash in memory), so that
    /// clients that log in for every check do not pay argon2 each time. 0 turns it off.
    pub credential_cache_secs: u64,
    /// Failed logins from one source (IPv4 address, IPv6 /64) within 10 minutes before
    /// it is blocked; 0 never blocks (failures still slow down).
    pub block_after_failures: u32,
    /// How long the first block lasts; each further block within a day lasts twice as
    /// long (at most a week).
    pub block_secs: u64,
}

impl Default for AuthPolicy {
    fn default() -> AuthPolicy {
        AuthPolicy {
            allow_plaintext_on_loopback: false,
            credential_cache_secs: 600,
            block_after_failures: 10,
            block_secs: 900,
        }
    }
}

/// Outbound delivery: the queue, MX lookups and smarthosts (see [`crate::relay`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Relay {
    /// Outbound SMTP connections at once, all destinations together.
    pub max_connections: usize,
    /// Outbound SMTP connections at once to one destination (domain or smarthost).
    pub max_connections_per_domain: usize,
    /// First retry after this long; each further one waits twice as long as the last.
    pub retry_base_secs: u64,
    /// Longest wait between two attempts.
    pub retry_max_secs: u64,
    /// Give up (and bounce) when a message has been queued this long (5 days).
    pub max_age_secs: u64,
    /// Tell the sender about a delay once a message has waited this long (4 hours; 0: never).
    pub delay_notice_secs: u64,
    /// DNS servers (`ip` or `ip:port`) for MX lookups; empty: those of /etc/resolv.conf.
    pub dns_servers: Vec<String>,
    /// Port of remote MX hosts. Only tests and special set-ups change it.
    pub mx_port: u16,
    /// Port of remote MTA-STS policy hosts (443). Only tests change it.
    pub mta_sts_port: u16,
    /// Validate DNSSEC (hickory's validator) and enforce the MX hosts' TLSA records (DANE).
    pub dnssec: bool,
    /// DNSKEY records (zone-file form) to trust instead of the root's key.
    pub dnssec_trust_anchor: Option<PathBuf>,
    /// STARTTLS towards MX hosts: `opportunistic` (when offered; an unverified
    /// certificate is accepted, as Postfix's `may`), `verify` (required and verified),
    /// or `none`.
    pub mx_tls: MxTls,
    /// Extra trusted CA certificates (PEM), added to the built-in webpki roots.
    pub ca_file: Option<PathBuf>,
    /// Relay through these hosts instead of the recipients' MX hosts.
    #[serde(rename = "smarthost")]
    pub smarthosts: Vec<Smarthost>,
}

impl Default for Relay {
    fn default() -> Relay {
        Relay {
            max_connections: 10,
            max_connections_per_domain: 2,
            retry_base_secs: 300,
            retry_max_secs: 4 * 3600,
            max_age_secs: 5 * 86400,
            delay_notice_secs: 4 * 3600,
            dns_servers: Vec::new(),
            mx_port: 25,
            mta_sts_port: 443,
            dnssec: false,
            dnssec_trust_anchor: None,
            mx_tls: MxTls::Opportunistic,
            ca_file: None,
            smarthosts: Vec::new(),
        }
    }
}

impl Relay {
    /// `dns_servers` as socket addresses (checked when the config was read).
    pub fn dns_server_addrs(&self) -> Vec<SocketAddr> {
        self.dns_servers
            .iter()
            .filter_map(|s| parse_dns_server(s))
            .collect()
    }
}

/// What a check does when it finds something wrong (see [`Inbound`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckAction {
    /// Add to the message's junk score.
    Score,
    /// Refuse: 550 for a verdict, 450 for a rate limit.
    Reject,
    /// Do not check.
    Off,
}

/// Checks on mail arriving on the MX listener (see [`crate::inbound`]). Submission is
/// never checked: its users have logged in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Inbound {
    /// SPF, DKIM, DMARC and ARC on port 25, with an Authentication-Results: header.
    pub enabled: bool,
    /// A failed SPF check (`-all`): a score (default), or `reject` with 550 5.7.23.
    pub spf_fail: CheckAction,
    /// Apply the sender domain's DMARC policy: `p=reject` gets 550 5.7.1 after DATA,
    /// `p=quarantine` goes to Junk. Off: DMARC is only recorded and scored.
    pub dmarc_policy: bool,
    /// Domains whose ARC seal is trusted: a DMARC failure of mail they forward (a
    /// mailing list, a forwarding service) is overridden when their chain validates.
    /// Untrusted valid chains turn a DMARC reject into Junk.
    pub trusted_arc_sealers: Vec<String>,
    /// Forward-confirmed reverse DNS of the client.
    pub iprev: CheckAction,
    /// Sanity of the HELO name: a literal that is not the client's address, a name
    /// without a dot, or one of our own names.
    pub helo: CheckAction,
    /// DNS block lists asked about the client's address (e.g. "zen.spamhaus.org").
    pub dnsbl: Vec<String>,
    /// Domain block lists asked about the envelope sender's domain.
    pub rhsbl: Vec<String>,
    /// What a block-list hit does.
    pub dnsbl_action: CheckAction,
    /// Messages per minute one client (IPv4 address, IPv6 /64) may send to port 25; 0:
    /// no limit. Past it, `reject` answers 450 4.7.1 and `score` scores.
    pub max_messages_per_minute: u32,
    pub rate_action: CheckAction,
    /// A message whose score reaches this goes to Junk.
    pub junk_score: f64,
    /// A message the account's Bayesian filter judges at least this likely spam goes to Junk.
    pub junk_probability: f64,
}

impl Default for Inbound {
    fn default() -> Inbound {
        Inbound {
            enabled: true,
            spf_fail: CheckAction::Score,
            dmarc_policy: true,
            trusted_arc_sealers: Vec::new(),
            iprev: CheckAction::Score,
            helo: CheckAction::Score,
            dnsbl: Vec::new(),
            rhsbl: Vec::new(),
            dnsbl_action: CheckAction::Score,
            max_messages_per_minute: 120,
            rate_action: CheckAction::Reject,
            junk_score: 5.0,
            junk_probability: 0.95,
        }
    }
}

/// A DNS server address: `ip` or `ip:port` (IPv6 with a port as `[ip]:port`).
pub fn parse_dns_server(text: &str) -> Option<SocketAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    text.parse::<SocketAddr>().ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MxTls {
    Opportunistic,
    Verify,
    None,
}

/// A relay host. Its certificate is always verified unless `tls = "none"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smarthost {
    pub host: String,
    #[serde(default = "default_submission_port")]
    pub port: u16,
    /// `starttls` (port 587), `implicit` (port 465) or `none`.
    #[serde(default = "default_smarthost_tls")]
    pub tls: SmarthostTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Recipient domains sent this way; empty: every domain without a more specific entry.
    #[serde(default)]
    pub domains: Vec<String>,
}

fn default_submission_port() -> u16 {
    587
}

fn default_smarthost_tls() -> SmarthostTls {
    SmarthostTls::Starttls
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmarthostTls {
    Starttls,
    Implicit,
    None,
}

#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn default_hostname() -> String {
    system_hostname()
}

/// The kernel's host name, or `localhost` when it is unset.
pub fn system_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

impl Config {
    /// The configuration used when no file exists.
    pub fn embedded_default() -> Config {
        let hostname = system_hostname();
        let mut domains = vec!["localhost".to_string()];
        if hostname != "localhost" {
            domains.push(hostname.clone());
        }
        Config {
            hostname,
            domains,
            data_dir: None,
            run_as: None,
            map_size_mib: None,
            listeners: Vec::new(),
            tls: None,
            limits: Limits::default(),
            auth: AuthPolicy::default(),
            relay: Relay::default(),
            inbound: Inbound::default(),
            acme: None,
            clock: Clock::default(),
            backup: None,
        }
    }

    /// Parses TOML text; `origin` names the file in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let message = e.message().replace('\n', " ");
            match line {
                Some(line) => ConfigError(format!("{origin}:{line}: {message}")),
                None => ConfigError(format!("{origin}: {message}")),
            }
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Config::parse(&text, &path.display().to_string())
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{origin}: {key}: {why}")));
        if self.hostname.is_empty() || self.hostname.contains(char::is_whitespace) {
            return bad("hostname", "must be a host name without spaces");
        }
        for d in &self.domains {
            if crate::address::normalize_domain(d).is_none() {
                return bad("domains", &format!("{d:?} is not a domain name"));
            }
        }
        let l = &self.limits;
        if l.max_message_size < 1024 {
            return bad("limits.max_message_size", "must be at least 1024");
        }
        if l.max_recipients == 0
            || l.max_connections == 0
            || l.max_connections_per_ip == 0
            || l.max_connections_per_network == 0
        {
            return bad(
                "limits",
                "max_recipients, max_connections, max_connections_per_ip and \
                 max_connections_per_network must be positive",
            );
        }
        if l.command_timeout_secs == 0 || l.data_timeout_secs == 0 {
            return bad("limits", "timeouts must be positive");
        }
        if let Some(acme) = &self.acme {
            acme.validate().or_else(|why| bad("acme", &why))?;
        }
        if let Some(backup) = &self.backup {
            backup.validate().or_else(|why| bad("backup", &why))?;
        }
        if self.map_size_mib == Some(0) {
            return bad("map_size_mib", "must be positive");
        }
        let r = &self.relay;
        if r.max_connections == 0 || r.max_connections_per_domain == 0 {
            return bad(
                "relay",
                "max_connections and max_connections_per_domain must be positive",
            );
        }
        if r.retry_base_secs == 0 || r.retry_max_secs < r.retry_base_secs || r.max_age_secs == 0 {
            return bad(
                "relay",
                "retry_base_secs and max_age_secs must be positive, retry_max_secs at least retry_base_secs",
            );
        }
        for server in &r.dns_servers {
            if parse_dns_server(server).is_none() {
                return bad(
                    "relay.dns_servers",
                    &format!("{server:?} is not an IP address or ip:port"),
                );
            }
        }
        let i = &self.inbound;
        if i.junk_score.is_nan()
            || i.junk_score <= 0.0
            || !(0.5..=1.0).contains(&i.junk_probability)
        {
            return bad(
                "inbound",
                "junk_score must be positive and junk_probability between 0.5 and 1",
            );
        }
        for zone in i.dnsbl.iter().chain(&i.rhsbl) {
            if crate::address::normalize_domain(zone).is_none() {
                return bad("inbound", &format!("{zone:?} is not a DNS zone"));
            }
        }
        for host in &r.smarthosts {
            if host.host.is_empty() || host.username.is_some() != host.password.is_some() {
                return bad(
                    "relay.smarthost",
                    "needs a host, and a username and password together",
                );
            }
        }
        let mut seen = std::collections::HashSet::new();
        for listener in &self.listeners {
            if listener.port != 0 && !seen.insert((listener.address, listener.port)) {
                return bad(
                    "listener",
                    &format!("{}:{} is listed twice", listener.address, listener.port),
                );
            }
        }
        Ok(())
    }

    /// The listeners to bind: the configured ones, or the default set on 127.0.0.1.
    pub fn effective_listeners(&self, as_root: bool) -> Vec<Listener> {
        if !self.listeners.is_empty() {
            return self.listeners.clone();
        }
        ListenerKind::ALL
            .iter()
            .map(|&kind| Listener {
                kind,
                address: IpAddr::from([127, 0, 0, 1]),
                port: if as_root {
                    kind.standard_port()
                } else {
                    kind.unprivileged_port()
                },
            })
            .collect()
    }

    /// Map size in bytes: 8 GiB on 64-bit targets, 1 GiB on 32-bit ones (address space).
    pub fn map_size_bytes(&self) -> usize {
        let default_mib: u64 = if cfg!(target_pointer_width = "64") {
            8 * 1024
        } else {
            1024
        };
        let mib = self.map_size_mib.unwrap_or(default_mib);
        usize::try_from(mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX / 2)
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
    fn full_example_parses() {
        let text = r#"
hostname = "mx.example.org"
domains = ["example.org"]
run_as = "nobody"
[[listener]]
kind = "smtp"
address = "0.0.0.0"
port = 25
[limits]
max_recipients = 5
[auth]
allow_plaintext_on_loopback = true
"#;
        let c = Config::parse(text, "t.toml").unwrap();
        assert_eq!(c.listeners[0].kind, ListenerKind::Smtp);
        assert_eq!(c.limits.max_recipients, 5);
        assert_eq!(c.limits.max_errors, 10);
        assert!(c.auth.allow_plaintext_on_loopback);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = Config::parse("hostname = \"a\"\n\nbogus = 1\n", "t.toml").unwrap_err();
        assert!(err.0.starts_with("t.toml:3:"), "{err}");
        assert!(err.0.contains("bogus"), "{err}");
    }

    #[test]
    fn bad_listener_kind_is_rejected() {
        let text = "[[listener]]\nkind = \"gopher\"\naddress = \"127.0.0.1\"\nport = 1\n";
        let err = Config::parse(text, "t.toml").unwrap_err();
        assert!(err.0.contains("t.toml:2:"), "{err}");
        assert!(err.0.contains("gopher"), "{err}");
    }

    #[test]
    fn bad_value_is_rejected() {
        let err = Config::parse("[limits]\nmax_message_size = 10\n", "t.toml").unwrap_err();
        assert!(err.0.contains("limits.max_message_size"), "{err}");
    }

    #[test]
    fn default_listeners_depend_on_privilege() {
        let c = Config::embedded_default();
        let ports: Vec<u16> = c
            .effective_listeners(false)
            .iter()
            .map(|l| l.port)
            .collect();
        assert_eq!(ports, vec![2525, 2587, 2465, 2110, 2995, 2143, 2993, 24190]);
        let ports: Vec<u16> = c.effective_listeners(true).iter().map(|l| l.port).collect();
        assert_eq!(ports, vec![25, 587, 465, 110, 995, 143, 993, 4190]);
    }
}
