//! The `http` and `https` listeners (HTTP/1.1 parsing is [`crate::http`]'s). They answer two things and nothing else:
//!
//! - `/.well-known/acme-challenge/<token>`: HTTP-01 answers while an ACME order waits
//!   (RFC 8555 8.3), on both listeners;
//! - `/.well-known/mta-sts.txt` for a host `mta-sts.<domain>` of a local domain: our
//!   MTA-STS policy (RFC 8461 3.2), over HTTPS only, as the RFC requires. Its mode is
//!   `enforce` once the served certificate is a CA-issued one for the host name, else
//!   `testing`, so a self-signed appliance never tells senders to refuse it.
//!
//! One request per connection, answered with `Connection: close`. The head must arrive
//! whole within [`HEAD_DEADLINE`] (a slow client cannot hold a connection slot longer) and
//! fit in [`crate::http::MAX_HEAD`].

use crate::floor::Shared;
use crate::http::{parse_request, response, Request};
use crate::net::Connection;
use crate::tls::x509::CertInfo;
use std::sync::Arc;

/// The time a client has to send its request head, from the connection on.
pub const HEAD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15);

/// How MTA-STS policies say how long to cache them: one week (RFC 8461 3.2 suggests weeks).
pub const MTA_STS_MAX_AGE: u64 = 604_800;

/// How a web session ended, for the log.
#[derive(Debug)]
pub enum End {
    Answered(u16),
    Closed,
    Bad(String),
}

pub async fn serve(shared: Arc<Shared>, mut conn: Connection) -> End {
    let deadline = tokio::time::Instant::now() + HEAD_DEADLINE;
    let request = loop {
        match parse_request(conn.buffered()) {
            Ok(Some((request, _))) => break request,
            Ok(None) => {}
            Err(why) => {
                conn.send(&response(
                    400,
                    "Bad Request",
                    "text/plain",
                    b"bad request\n",
                ));
                conn.close().await;
                return End::Bad(why);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return End::Bad("no request head in time".into());
        }
        match conn.fill_by(Some(deadline)).await {
            Ok(0) | Err(_) => return End::Closed,
            Ok(_) => {}
        }
    };
    let https = conn.is_tls();
    let (status, reason, content_type, body) = answer(&shared, &request, https).await;
    let mut bytes = response(status, reason, content_type, body.as_bytes());
    if request.method == "HEAD" {
        let head = bytes.len() - body.len();
        bytes.truncate(head);
    }
    conn.send(&bytes);
    conn.close().await;
    End::Answered(status)
}

type Answer = (u16, &'static str, &'static str, String);

async fn answer(shared: &Arc<Shared>, request: &Request, https: bool) -> Answer {
    let not_found = (404, "Not Found", "text/plain", "not found\n".to_string());
    if request.method != "GET" && request.method != "HEAD" {
        return (405, "Method Not Allowed", "text/plain", "GET only\n".into());
    }
    let path = request.path.split('?').next().unwrap_or_default();
    if let Some(token) = path.strip_prefix("/.well-known/acme-challenge/") {
        return match shared.tls.http_token(token) {
            Some(key_authorization) => (200, "OK", "application/octet-stream", key_authorization),
            None => not_found,
        };
    }
    if path == "/.well-known/mta-sts.txt" && https {
        let Some(domain) = request
            .host
            .as_deref()
            .and_then(|h| h.strip_prefix("mta-sts."))
        else {
            return not_found;
        };
        let domain = domain.to_string();
        let local = shared
            .store
            .call(move |store| store.is_local_domain(&domain))
            .await
            .unwrap_or(false);
        if local {
            return (200, "OK", "text/plain", mta_sts_policy(shared));
        }
    }
    not_found
}

/// Our policy: the host name is the one MX (RFC 8461 3.2).
pub fn mta_sts_policy(shared: &Shared) -> String {
    let config = shared.config();
    let current = shared.tls.current();
    let trusted = current
        .end_entity_cert()
        .is_ok_and(|der| CertInfo::trusted_for(der, &config.hostname));
    policy_text(&config.hostname, trusted)
}

pub fn policy_text(mx: &str, enforce: bool) -> String {
    let mode = if enforce { "enforce" } else { "testing" };
    format!("version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: {MTA_STS_MAX_AGE}\r\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn policy_lines() {
        assert_eq!(
            super::policy_text("mail.example.org", true),
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.org\r\nmax_age: 604800\r\n"
        );
        assert!(super::policy_text("m", false).contains("mode: testing\r\n"));
    }
}
