//! SMTP receiving (RFC 5321, submission RFC 6409/8314).
//!
//! - [`parse`]: command lines to typed [`parse::Command`]s (pure).
//! - the DATA decoder and dot-stuffer live in [`crate::net::dot`] (POP3 and the relay use
//!   them too).
//! - [`session`]: one connection's state machine: greeting, EHLO, STARTTLS, AUTH, the mail
//!   transaction, and delivery through [`crate::delivery`].

pub mod parse;
pub mod session;

use std::fmt::Write;

/// Formats a reply, one line per entry of `lines`, with the enhanced status code (RFC 2034)
/// on every line when given.
pub fn format_reply(code: u16, enhanced: Option<&str>, lines: &[&str]) -> Vec<u8> {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        match enhanced {
            Some(esc) => {
                let _ = write!(out, "{code}{sep}{esc} {line}\r\n");
            }
            None => {
                let _ = write!(out, "{code}{sep}{line}\r\n");
            }
        }
    }
    out.into_bytes()
}

/// Inputs for the trace headers added at final delivery (RFC 5321 §4.4).
pub struct Trace<'a> {
    pub reverse_path: Option<&'a str>,
    pub helo: &'a str,
    pub peer_ip: std::net::IpAddr,
    pub hostname: &'a str,
    /// `with` protocol per RFC 3848: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP...
    pub protocol: &'a str,
    pub tls: Option<String>,
    pub id: &'a str,
    /// Named in the header only when there is exactly one.
    pub recipient: Option<&'a str>,
    pub date: i64,
}

/// Length of the first line of trace headers: the Return-Path line, which belongs to
/// local copies only (a relayed copy starts after it).
pub fn return_path_len(prefix: &[u8]) -> u64 {
    prefix
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(0, |p| p as u64 + 2)
}

impl Trace<'_> {
    /// `Return-Path:` and `Received:` header lines, folded, each ending in CRLF.
    pub fn headers(&self) -> Vec<u8> {
        let mut h = format!(
            "Return-Path: <{}>\r\nReceived: from {} ([{}])\r\n\tby {} (letterbox) with {}",
            self.reverse_path.unwrap_or(""),
            sanitize(self.helo),
            self.peer_ip,
            self.hostname,
            self.protocol
        );
        if let Some(tls) = &self.tls {
            let _ = write!(h, "\r\n\t(using {})", sanitize(tls));
        }
        let _ = write!(h, "\r\n\tid {}", self.id);
        if let Some(rcpt) = self.recipient {
            let _ = write!(h, "\r\n\tfor <{}>", sanitize(rcpt));
        }
        let _ = write!(h, ";\r\n\t{}\r\n", crate::mail::rfc5322_date(self.date));
        h.into_bytes()
    }
}

/// Keeps client-chosen text from breaking the header syntax.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || c == '(' || c == ')' {
                '_'
            } else {
                c
            }
        })
        .take(255)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(
            format_reply(250, Some("2.0.0"), &["OK"]),
            b"250 2.0.0 OK\r\n"
        );
        assert_eq!(
            format_reply(250, None, &["mx", "PIPELINING", "SIZE 10"]),
            b"250-mx\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
        );
    }

    #[test]
    fn trace_headers() {
        let t = Trace {
            reverse_path: None,
            helo: "evil\r\nX-Injected: 1",
            peer_ip: "192.0.2.1".parse().unwrap(),
            hostname: "mx.example.org",
            protocol: "ESMTPS",
            tls: Some("TLSv1_3".into()),
            id: "abc",
            recipient: Some("a@example.org"),
            date: 0,
        };
        let h = String::from_utf8(t.headers()).unwrap();
        assert!(
            h.starts_with(
                "Return-Path: <>\r\nReceived: from evil__X-Injected: 1 ([192.0.2.1])\r\n"
            ),
            "{h}"
        );
        assert!(h.contains("for <a@example.org>;\r\n\tThu, 1 Jan 1970"));
        assert!(h.ends_with("+0000\r\n"));
        assert_eq!(h.matches("\r\n").count(), h.matches("\r\n\t").count() + 2);
    }
}
