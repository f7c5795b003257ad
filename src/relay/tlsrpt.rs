//! SMTP TLS Reporting (RFC 8460): what became of our TLS sessions with each recipient
//! domain, counted per UTC day, and the daily report to the domains that ask for one.
//!
//! Every connection attempt to a domain's MX host counts once, under the policy that
//! applied: `sts` (an MTA-STS policy in enforce or testing mode), `tlsa` (DANE records),
//! or `no-policy-found`. A session counts as successful once TLS is up; a TLS failure
//! counts under its RFC 8460 4.3 result type. Trouble that is not about TLS (a refused
//! connection, a 4xx greeting) is not counted.
//!
//! The day's counts live in memory and in `<data_dir>/tlsrpt/YYYY-MM-DD.json` (written at
//! most once a minute and when the day ends; a crash loses at most that minute). After the
//! day, the domains whose `_smtp._tls` record names `mailto:` addresses get one report
//! each, a gzipped JSON attachment (RFC 8460 5.3); `https:` addresses are not served.
//! A day's file is renamed `.sent` once its reports are queued.

use crate::floor::Shared;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The policy a session ran under (RFC 8460 4.4 `policy-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyType {
    Sts,
    Tlsa,
    NoPolicyFound,
}

impl PolicyType {
    fn name(self) -> &'static str {
        match self {
            PolicyType::Sts => "sts",
            PolicyType::Tlsa => "tlsa",
            PolicyType::NoPolicyFound => "no-policy-found",
        }
    }
}

/// The counts of one recipient domain and policy type over a day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub successful: u64,
    /// `result-type` and MX host, `\t`-joined, to count.
    pub failures: BTreeMap<String, u64>,
}

/// One day's counts: (domain, policy type) to tally.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Day {
    date: String,
    counts: BTreeMap<String, Tally>,
}

/// The RFC 8460 4.3 result type of a TLS failure, from the relay's diagnostic; `None`
/// when the failure is not about TLS.
pub fn result_type(diagnostic: &str) -> Option<&'static str> {
    let d = diagnostic;
    Some(if d.contains("does not offer STARTTLS") {
        "starttls-not-supported"
    } else if d.contains("DANE: no TLSA record matches") {
        "tlsa-invalid"
    } else if d.contains("MTA-STS: the enforced policy") {
        "sts-policy-invalid"
    } else if d.contains("TLS with") {
        // rustls's words for its certificate errors (Display, and Debug as a fallback).
        if d.contains("not valid for name") || d.contains("NotValidForName") {
            "certificate-host-mismatch"
        } else if d.contains("certificate expired") || d.contains("Expired") {
            "certificate-expired"
        } else if d.contains("UnknownIssuer") || d.contains("unknown issuer") {
            "certificate-not-trusted"
        } else {
            "validation-failure"
        }
    } else {
        return None;
    })
}

/// The day's counts, kept in memory and in the data dir.
pub struct Results {
    dir: PathBuf,
    day: Mutex<(Day, bool)>,
    /// Set while [`send_due`] runs: one run at a time.
    sending: std::sync::atomic::AtomicBool,
}

/// Whether `date` is `YYYY-MM-DD`.
fn valid_date(date: &str) -> bool {
    let b = date.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

fn today(now: i64) -> String {
    let (y, m, d) = crate::mail::date::civil_from_days(now.div_euclid(86400));
    format!("{y:04}-{m:02}-{d:02}")
}

impl Results {
    pub fn open(data_dir: &Path, now: i64) -> Results {
        let dir = data_dir.join("tlsrpt");
        let date = today(now);
        let day = std::fs::read(dir.join(format!("{date}.json")))
            .ok()
            .and_then(|b| serde_json::from_slice::<Day>(&b).ok())
            .unwrap_or(Day {
                date,
                counts: BTreeMap::new(),
            });
        Results {
            dir,
            day: Mutex::new((day, false)),
            sending: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Counts one session with `domain`'s MX `host`: `failure` is the diagnostic of a
    /// failed attempt, `None` for TLS that came up.
    pub fn record(
        &self,
        now: i64,
        domain: &str,
        policy: PolicyType,
        host: &str,
        failure: Option<&str>,
    ) {
        let result = match failure {
            Some(d) => match result_type(d) {
                Some(r) => Some(r),
                None => return,
            },
            None => None,
        };
        let mut guard = self.day.lock().expect("tlsrpt lock");
        self.roll_locked(&mut guard, now);
        let tally = guard
            .0
            .counts
            .entry(format!(
                "{}\t{}",
                domain.to_ascii_lowercase(),
                policy.name()
            ))
            .or_default();
        match result {
            None => tally.successful += 1,
            Some(r) => *tally.failures.entry(format!("{r}\t{host}")).or_default() += 1,
        }
        guard.1 = true;
    }

    /// When the day changed: writes the old day's counts (if they changed) and starts anew.
    pub fn roll(&self, now: i64) {
        let mut guard = self.day.lock().expect("tlsrpt lock");
        self.roll_locked(&mut guard, now);
    }

    fn roll_locked(&self, guard: &mut (Day, bool), now: i64) {
        let date = today(now);
        if guard.0.date != date {
            if guard.1 {
                self.write(&guard.0);
            }
            guard.0 = Day {
                date,
                counts: BTreeMap::new(),
            };
            guard.1 = false;
        }
    }

    /// Writes the day's counts if they changed.
    pub fn flush(&self) {
        let mut guard = self.day.lock().expect("tlsrpt lock");
        if guard.1 {
            self.write(&guard.0);
            guard.1 = false;
        }
    }

    fn write(&self, day: &Day) {
        // A day already reported is never written again (no second report).
        if self.dir.join(format!("{}.sent", day.date)).exists() {
            return;
        }
        let written = std::fs::create_dir_all(&self.dir)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                let text = serde_json::to_vec(day).map_err(|e| e.to_string())?;
                crate::tls::write_file(&self.dir.join(format!("{}.json", day.date)), &text, 0o640)
            });
        if let Err(e) = written {
            log::warn!("tlsrpt: {e}");
        }
    }

    /// The finished days not yet reported: (date, path, (domain, policy type) -> tally).
    pub fn finished(&self, now: i64) -> Vec<(String, PathBuf, BTreeMap<String, Tally>)> {
        let date = today(now);
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(day) = name.strip_suffix(".json") else {
                continue;
            };
            if day >= date.as_str() {
                continue;
            }
            match std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Day>(&b).ok())
            {
                Some(parsed) if parsed.date == day && valid_date(day) => {
                    out.push((parsed.date, path, parsed.counts))
                }
                _ => {
                    log::warn!(
                        "tlsrpt: {} is not a day's counts: set aside",
                        path.display()
                    );
                    let _ = std::fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// Queues the reports of the finished days, then marks each day's file sent.
pub async fn send_due(shared: Arc<Shared>, results: Arc<Results>, dns: crate::dns::Resolver) {
    use std::sync::atomic::Ordering;
    if results.sending.swap(true, Ordering::AcqRel) {
        return;
    }
    let now = crate::clock::unix_now();
    results.roll(now);
    send_finished(&shared, &results, dns, now).await;
    results.sending.store(false, Ordering::Release);
}

async fn send_finished(
    shared: &Arc<Shared>,
    results: &Results,
    dns: crate::dns::Resolver,
    now: i64,
) {
    let hostname = shared.config().hostname.clone();
    for (date, path, counts) in results.finished(now) {
        let mut domains: Vec<&str> = counts
            .keys()
            .filter_map(|k| k.split_once('\t').map(|(d, _)| d))
            .collect();
        domains.dedup();
        for domain in domains {
            let records = dns
                .clone()
                .txt(&format!("_smtp._tls.{domain}"))
                .await
                .unwrap_or_default();
            // Exactly one v=TLSRPTv1 record, or the domain asks for nothing (RFC 8460 3).
            let tlsrpt: Vec<&String> = records
                .iter()
                .filter(|r| r.trim_start().starts_with("v=TLSRPTv1"))
                .collect();
            let addresses = match tlsrpt.as_slice() {
                [one] => mailto_addresses(one),
                _ => Vec::new(),
            };
            if addresses.is_empty() {
                continue;
            }
            let id = format!("{}.{}.{}", date, domain, now);
            let json = report_json(
                &hostname,
                &format!("mailto:postmaster@{hostname}"),
                &id,
                &date,
                domain,
                &counts,
            );
            for to in addresses {
                let message = report_message(&hostname, &to, domain, &id, &date, &json, now);
                let queued = shared
                    .store
                    .call(move |store| {
                        let routing = crate::delivery::notice::routing(store, &to)?;
                        if let Some(delivery) =
                            crate::delivery::notice::to_sender(message, &routing, now)
                        {
                            crate::delivery::deliver_now(store, delivery)?;
                        }
                        Ok(to)
                    })
                    .await;
                match queued {
                    Ok(to) => log::info!("tlsrpt: report {id} for {domain} queued to {to}"),
                    Err(e) => log::warn!("tlsrpt: report {id} for {domain}: {e}"),
                }
            }
        }
        let _ = std::fs::rename(&path, path.with_extension("sent"));
    }
    shared.relay_wake.notify_one();
}

/// The most report addresses one domain gets.
const MAX_RUA: usize = 3;

/// Whether `address` is a plain mailbox: what may go into RCPT TO and To: unquoted.
fn plain_mailbox(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && crate::address::normalize_domain(domain).is_some()
        && address.len() <= 254
        && local
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:@\"".contains(&b))
}

/// The report of one policy domain for one day (RFC 8460 4).
pub fn report_json(
    organization: &str,
    contact: &str,
    report_id: &str,
    date: &str,
    domain: &str,
    counts: &BTreeMap<String, Tally>,
) -> String {
    let mut policies = Vec::new();
    for (key, tally) in counts {
        let Some((d, policy_type)) = key.split_once('\t') else {
            continue;
        };
        if d != domain {
            continue;
        }
        let failed: u64 = tally.failures.values().sum();
        let details: Vec<serde_json::Value> = tally
            .failures
            .iter()
            .filter_map(|(k, n)| {
                let (result, host) = k.split_once('\t')?;
                Some(serde_json::json!({
                    "result-type": result,
                    "receiving-mx-hostname": host,
                    "failed-session-count": n,
                }))
            })
            .collect();
        policies.push(serde_json::json!({
            "policy": { "policy-type": policy_type, "policy-domain": domain },
            "summary": {
                "total-successful-session-count": tally.successful,
                "total-failure-session-count": failed,
            },
            "failure-details": details,
        }));
    }
    let report = serde_json::json!({
        "organization-name": organization,
        "date-range": {
            "start-datetime": format!("{date}T00:00:00Z"),
            "end-datetime": format!("{date}T23:59:59Z"),
        },
        "contact-info": contact,
        "report-id": report_id,
        "policies": policies,
    });
    serde_json::to_string_pretty(&report).expect("a report serialises")
}

/// The `mailto:` addresses of a `v=TLSRPTv1` record (RFC 8460 3).
pub fn mailto_addresses(record: &str) -> Vec<String> {
    let mut fields = record.split(';').map(str::trim);
    if fields.next() != Some("v=TLSRPTv1") {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for uri in fields
        .filter_map(|f| f.strip_prefix("rua="))
        .flat_map(|list| list.split(','))
        .filter_map(|uri| uri.trim().strip_prefix("mailto:"))
    {
        // Addresses from DNS go into SMTP commands: only plain mailboxes, a few.
        if plain_mailbox(uri) && !out.iter().any(|a| a.eq_ignore_ascii_case(uri)) {
            out.push(uri.to_string());
        }
        if out.len() == MAX_RUA {
            break;
        }
    }
    out
}

/// Letters and digits only (RFC 8460 5.1 unique-id), short enough for a MIME boundary.
fn unique_id(report_id: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, report_id.as_bytes());
    digest.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The report message (RFC 8460 5.3): multipart/report with the gzipped JSON.
pub fn report_message(
    hostname: &str,
    to: &str,
    domain: &str,
    report_id: &str,
    date: &str,
    json: &str,
    now: i64,
) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = gz.write_all(json.as_bytes());
    let gzipped = gz.finish().unwrap_or_default();
    let b64 = crate::auth::encode_base64(&gzipped);
    let boundary = format!("tlsrpt-{}", unique_id(report_id));
    let part = |range: std::ops::Range<usize>| date.get(range).and_then(|p| p.parse::<u32>().ok());
    let start = crate::mail::date::days_from_civil(
        i64::from(part(0..4).unwrap_or(1970)),
        part(5..7).unwrap_or(1),
        part(8..10).unwrap_or(1),
    ) * 86400;
    let file = format!(
        "{hostname}!{domain}!{start}!{}!{report_id}.json.gz",
        start + 86399
    );
    let mut out = format!(
        "From: TLS reports <noreply-tlsrpt@{hostname}>\r\nTo: <{to}>\r\nSubject: Report Domain: {domain} Submitter: {hostname} Report-ID: <{report_id}>\r\nDate: {}\r\nMessage-ID: <{report_id}@{hostname}>\r\nTLS-Report-Domain: {domain}\r\nTLS-Report-Submitter: {hostname}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThe SMTP TLS report of {hostname} for {domain} on {date} (RFC 8460) is attached.\r\n\r\n--{boundary}\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"{file}\"\r\n\r\n",
        crate::mail::date::rfc5322_date(now)
    );
    for line in b64.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push_str("\r\n");
    }
    out.push_str(&format!("\r\n--{boundary}--\r\n"));
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_types() {
        assert_eq!(
            result_type("mx does not offer STARTTLS, which is required"),
            Some("starttls-not-supported")
        );
        assert_eq!(
            result_type("TLS with mx.example: invalid peer certificate: NotValidForName"),
            Some("certificate-host-mismatch")
        );
        assert_eq!(
            result_type("TLS with mx: invalid peer certificate: UnknownIssuer"),
            Some("certificate-not-trusted")
        );
        assert_eq!(
            result_type("TLS with mx: DANE: no TLSA record matches the certificate"),
            Some("tlsa-invalid")
        );
        assert_eq!(
            result_type("connect to 192.0.2.1:25: Connection refused"),
            None
        );
    }

    #[test]
    fn counts_and_reports() {
        let dir = std::env::temp_dir().join(format!("lb-tlsrpt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let day1 = 1_796_169_600; // 2026-12-02
        let results = Results::open(&dir, day1);
        results.record(
            day1,
            "Example.NET",
            PolicyType::Sts,
            "mx1.example.net",
            None,
        );
        results.record(
            day1,
            "example.net",
            PolicyType::Sts,
            "mx1.example.net",
            None,
        );
        results.record(
            day1,
            "example.net",
            PolicyType::Sts,
            "mx2.example.net",
            Some("TLS with mx2.example.net: invalid peer certificate: NotValidForName"),
        );
        results.record(
            day1,
            "example.net",
            PolicyType::Sts,
            "mx2.example.net",
            Some("connect: refused"),
        );
        results.flush();
        assert!(results.finished(day1).is_empty(), "today is not finished");
        let finished = results.finished(day1 + 86400);
        assert_eq!(finished.len(), 1);
        let (date, _, counts) = &finished[0];
        assert_eq!(date, "2026-12-02");
        let json = report_json(
            "mx.test",
            "mailto:postmaster@mx.test",
            "r1",
            date,
            "example.net",
            counts,
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["date-range"]["start-datetime"], "2026-12-02T00:00:00Z");
        let p = &v["policies"][0];
        assert_eq!(p["policy"]["policy-type"], "sts");
        assert_eq!(p["summary"]["total-successful-session-count"], 2);
        assert_eq!(p["summary"]["total-failure-session-count"], 1);
        assert_eq!(
            p["failure-details"][0]["result-type"],
            "certificate-host-mismatch"
        );
        assert_eq!(
            p["failure-details"][0]["receiving-mx-hostname"],
            "mx2.example.net"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rua_addresses() {
        assert_eq!(
            mailto_addresses("v=TLSRPTv1; rua=mailto:a@example.net,https://r.example.net/x, mailto:b@example.net"),
            vec!["a@example.net", "b@example.net"]
        );
        assert!(mailto_addresses("v=TLSRPTv1; rua=mailto:a@b.net>\r\nRCPT TO:<x@y.net").is_empty());
        assert_eq!(
            mailto_addresses("v=TLSRPTv1; rua=mailto:a@x.net,mailto:A@x.net,mailto:b@x.net,mailto:c@x.net,mailto:d@x.net").len(),
            3
        );
        assert!(mailto_addresses("v=spf1 -all").is_empty());
    }
}
