//! SMTP receiving (RFC 5321, submission RFC 6409/8314).
//!
//! - [`parse`]: command lines to typed [`parse::Command`]s (pure).
//! - [`data`]: the DATA decoder and dot-stuffer (pure).
//! - [`session`]: one connection's state machine: greeting, EHLO, STARTTLS, AUTH, the mail
//!   transaction, and delivery through the store's group committer.

pub mod data;
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

/// The date in RFC 5322 §3.3 form, in UTC: `Mon, 23 Nov 2026 22:51:08 +0000`.
pub fn rfc5322_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
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
        let _ = write!(h, ";\r\n\t{}\r\n", rfc5322_date(self.date));
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
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_474_268),
            "Mon, 23 Nov 2026 22:51:08 +0000"
        );
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
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
