//! Checks on mail from the internet, on the MX listener only (submission is never
//! checked: its users have logged in). mail-auth does the RFC work — SPF (RFC 7208),
//! DKIM (RFC 6376), DMARC (RFC 7489), ARC (RFC 8617), iprev (RFC 8601 §3) — and this
//! module asks at the right moment, decides ([`policy`]) and records ([`results`]).
//!
//! Phases, as the SMTP session calls them:
//! 1. [`Checker::client`], once per session at its first MAIL: forward-confirmed reverse
//!    DNS, the HELO name, DNS block lists.
//! 2. [`Checker::sender`] at each MAIL: SPF for the HELO and MAIL FROM identities, RHSBL,
//!    the message rate. Configured rejections of phases 1–2 are answered at MAIL.
//! 3. [`Checker::message`] after DATA: every DKIM signature, the ARC chain, DMARC with
//!    alignment; the judgement; the Authentication-Results: header.
//!
//! DNS answers are cached within their TTLs and a bound on entries ([`cache`]).

pub mod cache;
pub mod policy;
pub mod rate;
pub mod reputation;
pub mod results;

use crate::config::{CheckAction, Inbound};
use crate::dns::{build_resolver, Resolver};
use cache::TtlCache;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Policy;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, IprevOutput, IprevResult,
    MessageAuthenticator, Parameters, RecordSet, SpfOutput, SpfResult, Txt, MX,
};
use policy::{DmarcPolicy, Findings, HeloProblem, Judgement, Outcome};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

/// What is known about a session's client.
#[derive(Debug, Clone)]
pub struct ClientCheck {
    pub iprev: Option<IprevOutput>,
    pub helo: Option<HeloProblem>,
    pub dnsbl: Vec<String>,
}

/// What is known about a transaction's sender.
#[derive(Debug, Clone)]
pub struct SenderCheck {
    pub spf_helo: Option<SpfOutput>,
    pub spf: SpfOutput,
    pub rhsbl: Vec<String>,
    pub rate_exceeded: bool,
}

impl SenderCheck {
    /// What is known when the checks could not finish: nothing.
    pub fn unknown() -> SenderCheck {
        SenderCheck {
            spf_helo: None,
            spf: SpfOutput::new(String::new()).with_result(SpfResult::TempError),
            rhsbl: Vec::new(),
            rate_exceeded: false,
        }
    }
}

/// The result of the checks on one message.
#[derive(Debug, Clone)]
pub struct MessageCheck {
    pub judgement: Judgement,
    /// `Authentication-Results: ...\r\n`, ready to prepend.
    pub results_header: String,
}

/// Who the client said it was, and where it connects from.
#[derive(Debug, Clone, Copy)]
pub struct Peer<'a> {
    pub ip: IpAddr,
    pub helo: &'a str,
    /// Our host name: the SPF `%{r}` and the authserv-id.
    pub hostname: &'a str,
}

struct Caches {
    txt: TtlCache<Box<str>, Txt>,
    mx: TtlCache<Box<str>, RecordSet<MX>>,
    ipv4: TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    ipv6: TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
    ptr: TtlCache<IpAddr, RecordSet<Box<str>>>,
}

type Cached<'x, P> = Parameters<
    'x,
    P,
    TtlCache<Box<str>, Txt>,
    TtlCache<Box<str>, RecordSet<MX>>,
    TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
    TtlCache<IpAddr, RecordSet<Box<str>>>,
>;

/// The checks, with their resolver, caches and rate table; one per server.
pub struct Checker {
    servers: Vec<SocketAddr>,
    client_tls: Arc<rustls::ClientConfig>,
    resolver: Resolver,
    authenticator: Mutex<Option<MessageAuthenticator>>,
    caches: Caches,
    rates: rate::Rates,
}

impl Checker {
    /// Asks `servers` (or /etc/resolv.conf's when empty), like the relay.
    pub fn new(servers: Vec<SocketAddr>, client_tls: Arc<rustls::ClientConfig>) -> Checker {
        let entries = cache::ENTRIES;
        Checker {
            resolver: Resolver::new(servers.clone(), client_tls.clone()),
            servers,
            client_tls,
            authenticator: Mutex::new(None),
            caches: Caches {
                txt: TtlCache::new(entries),
                mx: TtlCache::new(entries),
                ipv4: TtlCache::new(entries),
                ipv6: TtlCache::new(entries),
                ptr: TtlCache::new(entries),
            },
            rates: rate::Rates::default(),
        }
    }

    /// Entries held by the parsed-record caches (for the benchmark's memory report).
    pub fn cached_entries(&self) -> usize {
        let c = &self.caches;
        c.txt.len() + c.mx.len() + c.ipv4.len() + c.ipv6.len() + c.ptr.len()
    }

    /// The mail-auth authenticator, built at first use (and again after a failure: on
    /// the appliance resolv.conf appears only with the DHCP lease).
    fn authenticator(&self) -> Option<MessageAuthenticator> {
        let mut slot = self.authenticator.lock().expect("authenticator");
        if slot.is_none() {
            match build_resolver(&self.servers, &self.client_tls, None) {
                Ok(resolver) => *slot = Some(MessageAuthenticator(resolver)),
                Err(e) => log::warn!("inbound checks: {e}"),
            }
        }
        slot.clone()
    }

    fn cached<P>(&self, params: P) -> Cached<'_, P> {
        Parameters {
            params,
            cache_txt: Some(&self.caches.txt),
            cache_mx: Some(&self.caches.mx),
            cache_ptr: Some(&self.caches.ptr),
            cache_ipv4: Some(&self.caches.ipv4),
            cache_ipv6: Some(&self.caches.ipv6),
        }
    }

    /// Phase 1: the client. A HELO of our own host name is a forgery; one of our mail
    /// domains is not (a customer's web server may well use the apex name).
    pub async fn client(&self, peer: Peer<'_>, policy: &Inbound) -> ClientCheck {
        let helo = if policy.helo == CheckAction::Off {
            None
        } else {
            reputation::helo_problem(peer.helo, peer.ip, &[peer.hostname.to_string()])
        };
        let iprev = async {
            if policy.iprev == CheckAction::Off {
                return None;
            }
            let auth = self.authenticator()?;
            Some(auth.verify_iprev(self.cached(peer.ip)).await)
        };
        let zones: &[String] = if policy.dnsbl_action == CheckAction::Off {
            &[]
        } else {
            &policy.dnsbl
        };
        let dnsbl = reputation::lookup(&self.resolver, zones, |zone| {
            reputation::dnsbl_name(peer.ip, zone)
        });
        let (iprev, dnsbl) = tokio::join!(iprev, dnsbl);
        ClientCheck { iprev, helo, dnsbl }
    }

    /// Phase 2: the sender of one transaction (`None`: the null reverse path).
    pub async fn sender(
        &self,
        peer: Peer<'_>,
        from: Option<&str>,
        policy: &Inbound,
        now: i64,
    ) -> SenderCheck {
        let rate_exceeded = policy.rate_action != CheckAction::Off
            && self
                .rates
                .count(peer.ip, now, policy.max_messages_per_minute);
        let from = from.unwrap_or("");
        let domain = from
            .rsplit_once('@')
            .map_or(peer.helo, |(_, d)| d)
            .to_ascii_lowercase();
        let spf = async {
            let Some(auth) = self.authenticator() else {
                return (
                    None,
                    SpfOutput::new(domain.clone()).with_result(SpfResult::TempError),
                );
            };
            let helo = if Self::several_spf_records(&auth, peer.helo).await {
                SpfOutput::new(peer.helo.to_string()).with_result(SpfResult::PermError)
            } else {
                let params = SpfParameters::verify_ehlo(peer.ip, peer.helo, peer.hostname);
                auth.verify_spf(self.cached(params)).await
            };
            let mail = if Self::several_spf_records(&auth, &domain).await {
                SpfOutput::new(domain.clone()).with_result(SpfResult::PermError)
            } else {
                let params =
                    SpfParameters::verify_mail_from(peer.ip, peer.helo, peer.hostname, from);
                auth.verify_spf(self.cached(params)).await
            };
            (Some(helo), mail)
        };
        let rhsbl = async {
            if from.is_empty() || policy.dnsbl_action == CheckAction::Off {
                return Vec::new();
            }
            reputation::lookup(&self.resolver, &policy.rhsbl, |zone| {
                format!("{domain}.{}", zone.trim_end_matches('.'))
            })
            .await
        };
        let ((spf_helo, spf), rhsbl) = tokio::join!(spf, rhsbl);
        SenderCheck {
            spf_helo,
            spf,
            rhsbl,
            rate_exceeded,
        }
    }

    /// Whether `domain` publishes more than one SPF record: a permerror (RFC 7208 §4.5),
    /// which mail-auth 0.13 does not see (it evaluates the first). Asked through
    /// mail-auth's own resolver, whose cache then answers mail-auth's lookup.
    async fn several_spf_records(auth: &MessageAuthenticator, domain: &str) -> bool {
        use hickory_resolver::proto::rr::RData;
        if crate::address::normalize_domain(domain).is_none() {
            return false;
        }
        let Ok(lookup) = auth.0.txt_lookup(format!("{domain}.")).await else {
            return false;
        };
        let spf = lookup.answers().iter().filter(|record| match &record.data {
            RData::TXT(txt) => {
                let text: Vec<u8> = txt.txt_data.iter().flatten().copied().collect();
                let text = text.to_ascii_lowercase();
                text == b"v=spf1" || text.starts_with(b"v=spf1 ")
            }
            _ => false,
        });
        spf.count() > 1
    }

    /// Phase 3: the message as received (without our trace headers).
    pub async fn message(
        &self,
        peer: Peer<'_>,
        client: &ClientCheck,
        sender: &SenderCheck,
        from: Option<&str>,
        message: &[u8],
        policy: &Inbound,
    ) -> MessageCheck {
        let mut findings = findings_at_mail(client, sender);
        let mut results = AuthenticationResults::new(peer.hostname);
        if let Some(iprev) = &client.iprev {
            results = results.with_iprev_result(iprev, peer.ip);
        }
        if let Some(helo) = &sender.spf_helo {
            results = results.with_spf_ehlo_result(helo, peer.ip, peer.helo);
        }
        results =
            results.with_spf_mailfrom_result(&sender.spf, peer.ip, from.unwrap_or(""), peer.helo);
        let parsed = AuthenticatedMessage::parse(message);
        // Without a resolver, or without a header to check, nothing is judged beyond
        // phases 1 and 2.
        if let (Some(auth), Some(parsed)) = (self.authenticator(), parsed) {
            let dkim = auth.verify_dkim(self.cached(&parsed)).await;
            let arc = auth.verify_arc(self.cached(&parsed)).await;
            let mail_from_domain = from
                .and_then(|f| f.rsplit_once('@'))
                .map_or(peer.helo, |(_, d)| d);
            let dmarc_params = DmarcParameters::new(&parsed, &dkim, mail_from_domain, &sender.spf);
            let dmarc = auth.verify_dmarc(self.cached(dmarc_params)).await;
            let header_from = parsed.from.first().map(String::as_str).unwrap_or("");
            results = results
                .with_dkim_results(&dkim, header_from)
                .with_arc_result(&arc, peer.ip)
                .with_dmarc_result(&dmarc);
            findings.dkim = dkim.iter().map(|d| dkim_outcome(d.result())).collect();
            findings.arc = dkim_outcome(arc.result());
            if let Some(newest) = arc.sets().last() {
                findings.arc_sealer = Some(newest.seal.header.d.clone());
                let seen = String::from_utf8_lossy(newest.results.value).to_ascii_lowercase();
                findings.arc_sealer_saw_dmarc_pass = seen.contains("dmarc=pass");
            }
            findings.dmarc = match dmarc.result() {
                DmarcResult::Pass => Outcome::Pass,
                DmarcResult::Fail(_) => Outcome::Fail,
                DmarcResult::TempError(_) => Outcome::TempError,
                DmarcResult::PermError(_) => Outcome::PermError,
                DmarcResult::None => Outcome::None,
            };
            findings.dmarc_policy = match dmarc.policy() {
                Policy::Reject => DmarcPolicy::Reject,
                Policy::Quarantine => DmarcPolicy::Quarantine,
                Policy::None | Policy::Unspecified => DmarcPolicy::None,
            };
            findings.dmarc_domain = dmarc.domain().to_string();
            findings.dmarc_record = dmarc.dmarc_record().is_some();
        }
        MessageCheck {
            judgement: policy::judge(policy, &findings),
            results_header: results.to_header(),
        }
    }
}

/// What phases 1 and 2 found, as the judgement sees it.
pub fn findings_at_mail(client: &ClientCheck, sender: &SenderCheck) -> Findings {
    Findings {
        iprev: client
            .iprev
            .as_ref()
            .map_or(Outcome::None, |i| match i.result {
                IprevResult::Pass => Outcome::Pass,
                IprevResult::Fail(_) => Outcome::Fail,
                IprevResult::TempError(_) => Outcome::TempError,
                IprevResult::PermError(_) => Outcome::PermError,
                IprevResult::None => Outcome::None,
            }),
        helo: client.helo,
        dnsbl: client.dnsbl.clone(),
        rhsbl: sender.rhsbl.clone(),
        rate_exceeded: sender.rate_exceeded,
        spf_helo: sender
            .spf_helo
            .as_ref()
            .map_or(Outcome::None, |s| spf_outcome(s.result())),
        spf: spf_outcome(sender.spf.result()),
        spf_domain: sender.spf.domain().to_string(),
        ..Findings::default()
    }
}

fn spf_outcome(result: SpfResult) -> Outcome {
    match result {
        SpfResult::Pass => Outcome::Pass,
        SpfResult::Fail => Outcome::Fail,
        SpfResult::SoftFail => Outcome::SoftFail,
        SpfResult::Neutral => Outcome::Neutral,
        SpfResult::TempError => Outcome::TempError,
        SpfResult::PermError => Outcome::PermError,
        SpfResult::None => Outcome::None,
    }
}

fn dkim_outcome(result: &DkimResult) -> Outcome {
    match result {
        DkimResult::Pass => Outcome::Pass,
        DkimResult::Neutral(_) => Outcome::Neutral,
        DkimResult::Fail(_) => Outcome::Fail,
        DkimResult::PermError(_) => Outcome::PermError,
        DkimResult::TempError(_) => Outcome::TempError,
        DkimResult::None => Outcome::None,
    }
}
