//! Certificates from an ACME CA (RFC 8555), kept fresh without a restart.
//!
//! [`run`] is one task for the server's life: it looks at `<data_dir>/acme/cert.pem`,
//! requests a certificate when there is none (or its key does not fit), when its names no
//! longer match `[acme] domains`, or two thirds into its lifetime, and sleeps until then or
//! until a reload (SIGHUP) wakes it. A certificate that is due again the moment it arrives
//! (a clock far ahead, a CA's odd lifetime) counts as a failure, so it never loops. A new certificate is written next to the account key and
//! handed to [`crate::tls::TlsContext::replace`], so new connections get it at once. A
//! failed attempt keeps the certificate in use, is logged as a warning, is written to
//! `status.json` for `letterbox check`, and is retried after 1 minute, doubling up to 6 hours.
//!
//! The protocol is instant-acme's; the challenges are answered here: HTTP-01 tokens by the
//! web listeners ([`crate::web`]), TLS-ALPN-01 certificates by the
//! TLS layer (RFC 8737). DNS-01 is not offered, so wildcard names are refused by the config.

mod issue;

use crate::floor::Shared;
use crate::tls::x509::CertInfo;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const FIRST_RETRY: Duration = Duration::from_secs(60);
const LAST_RETRY: Duration = Duration::from_secs(6 * 3600);
/// Config changes (new names) are noticed at least this often.
const RECHECK: Duration = Duration::from_secs(3600);

/// The last attempt, as `letterbox check` reports it.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    /// Unix time of the last attempt.
    pub attempted: i64,
    /// Why it failed; `None` after a success.
    pub error: Option<String>,
    /// Unix time of the next attempt.
    pub next: i64,
}

fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("acme")
}

fn status_path(data_dir: &Path) -> PathBuf {
    dir(data_dir).join("status.json")
}

/// The status file, if an attempt was ever made.
pub fn read_status(data_dir: &Path) -> Option<Status> {
    let text = std::fs::read(status_path(data_dir)).ok()?;
    serde_json::from_slice(&text).ok()
}

fn write_status(data_dir: &Path, status: &Status) {
    let text = serde_json::to_vec_pretty(status).expect("status serialises");
    let written = std::fs::create_dir_all(dir(data_dir))
        .map_err(|e| e.to_string())
        .and_then(|()| crate::tls::write_file(&status_path(data_dir), &text, 0o644));
    if let Err(e) = written {
        log::warn!("acme: {e}");
    }
}

/// What to do about the certificate on disk.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    Request(&'static str),
    Wait(i64),
}

fn plan(data_dir: &Path, names: &[String], now: i64) -> Plan {
    let (cert, _) = crate::tls::acme_paths(data_dir);
    let Ok(pem) = std::fs::read(&cert) else {
        return Plan::Request("no certificate yet");
    };
    use rustls::pki_types::pem::PemObject;
    let first = rustls::pki_types::CertificateDer::pem_slice_iter(&pem).next();
    let Some(Ok(der)) = first else {
        return Plan::Request("the certificate file is unreadable");
    };
    let Ok(info) = CertInfo::parse(&der) else {
        return Plan::Request("the certificate file is unreadable");
    };
    let (cert_path, key_path) = crate::tls::acme_paths(data_dir);
    if crate::tls::load_pair(&cert_path, &key_path).is_err() {
        return Plan::Request("the certificate and key do not fit together");
    }
    if !names.iter().all(|n| info.covers(n)) {
        return Plan::Request("the configured names changed");
    }
    let renew_at = info.renew_at();
    if now >= renew_at {
        Plan::Request("two thirds of its lifetime are over")
    } else {
        Plan::Wait(renew_at - now)
    }
}

/// Keeps the ACME certificate fresh until shutdown; idle while there is no `[acme]`.
pub async fn run(shared: Arc<Shared>) {
    let data_dir = shared.store.data_dir().to_path_buf();
    let mut shutdown = shared.shutdown.clone();
    let mut retry = FIRST_RETRY;
    loop {
        let config = shared.config();
        let Some(acme) = config.acme.clone() else {
            tokio::select! {
                _ = shared.acme_wake.notified() => continue,
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        };
        let names = acme.names(&config.hostname);
        let now = crate::clock::unix_now();
        let wait = match plan(&data_dir, &names, now) {
            Plan::Wait(secs) => Duration::from_secs(secs as u64).min(RECHECK),
            Plan::Request(why) => {
                log::info!(
                    "acme: requesting a certificate for {} ({why})",
                    names.join(", ")
                );
                let issued = issue::issue(&shared, &acme, &names, &data_dir)
                    .await
                    .and_then(
                        |info| match plan(&data_dir, &names, crate::clock::unix_now()) {
                            Plan::Wait(_) => Ok(info),
                            Plan::Request(why) => Err(format!(
                            "the new certificate is due again at once ({why}): is the clock right?"
                        )),
                        },
                    );
                match issued {
                    Ok(info) => {
                        retry = FIRST_RETRY;
                        log::info!(
                            "acme: new certificate for {}, valid until {}, renewal from {}",
                            names.join(", "),
                            crate::mail::date::rfc5322_date(info.not_after),
                            crate::mail::date::rfc5322_date(info.renew_at())
                        );
                        write_status(
                            &data_dir,
                            &Status {
                                attempted: now,
                                error: None,
                                next: info.renew_at(),
                            },
                        );
                        continue;
                    }
                    Err(e) => {
                        let wait = retry;
                        retry = (retry * 2).min(LAST_RETRY);
                        log::warn!(
                            "acme: no new certificate, keeping the one in use: {e}; trying again in {}s",
                            wait.as_secs()
                        );
                        write_status(
                            &data_dir,
                            &Status {
                                attempted: now,
                                error: Some(e),
                                next: now + wait.as_secs() as i64,
                            },
                        );
                        wait
                    }
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.acme_wake.notified() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_from_the_certificate_on_disk() {
        let dir = std::env::temp_dir().join(format!("lb-acme-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let names = vec!["mail.example.org".to_string()];
        assert_eq!(plan(&dir, &names, 0), Plan::Request("no certificate yet"));
        let (cert, _) = crate::tls::acme_paths(&dir);
        std::fs::create_dir_all(cert.parent().unwrap()).unwrap();
        let mut params = rcgen::CertificateParams::new(names.clone()).unwrap();
        params.not_before = rcgen::date_time_ymd(2026, 1, 1);
        params.not_after = rcgen::date_time_ymd(2026, 4, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&cert, params.self_signed(&key).unwrap().pem()).unwrap();
        let key_path = crate::tls::acme_paths(&dir).1;
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&key_path, other.serialize_pem()).unwrap();
        assert_eq!(
            plan(&dir, &names, 1_767_225_600),
            Plan::Request("the certificate and key do not fit together")
        );
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let start = 1_767_225_600; // 2026-01-01
        let renew = start + (90 * 86400) * 2 / 3;
        assert_eq!(plan(&dir, &names, start), Plan::Wait(renew - start));
        assert_eq!(
            plan(&dir, &names, renew),
            Plan::Request("two thirds of its lifetime are over")
        );
        let more = vec![names[0].clone(), "mta-sts.example.org".to_string()];
        assert_eq!(
            plan(&dir, &more, start),
            Plan::Request("the configured names changed")
        );
        std::fs::write(&cert, "garbage").unwrap();
        assert_eq!(
            plan(&dir, &names, start),
            Plan::Request("the certificate file is unreadable")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
