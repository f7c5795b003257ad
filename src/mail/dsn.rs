//! Delivery status notifications (RFC 3464 inside an RFC 6522 multipart/report): pure
//! code that turns what happened to some recipients into a message for the envelope
//! sender. Sent for failures, delays and (when NOTIFY=SUCCESS asked) deliveries; never to
//! the null reverse-path, so a bounce is never bounced.

use super::rfc5322_date;

/// RFC 3464 §2.3.3 action values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
    /// Handed to a next hop that does not speak DSN.
    Relayed,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }
}

/// One recipient's part of a report.
#[derive(Debug, Clone)]
pub struct RecipientReport {
    pub address: String,
    pub orcpt: Option<String>,
    pub action: Action,
    /// Enhanced status code (RFC 3463), e.g. `5.1.1`.
    pub status: String,
    /// The remote host that answered, if any.
    pub remote: Option<String>,
    /// The remote server's reply (`550 5.1.1 no such user`) or our own explanation.
    pub diagnostic: Option<String>,
    pub last_attempt: Option<i64>,
    /// For delays: when we give up.
    pub retry_until: Option<i64>,
}

/// Everything a DSN says about one queued message.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// This server's host name (Reporting-MTA, and the From: and Message-ID: domain).
    pub reporting_mta: &'a str,
    /// Where the report goes: the original envelope sender.
    pub to: &'a str,
    pub envid: Option<&'a str>,
    pub arrival: i64,
    pub now: i64,
    pub recipients: Vec<RecipientReport>,
    /// The original message's header (or the whole message when `original_full`).
    pub original: &'a [u8],
    pub original_full: bool,
    /// Unique part of the Message-ID.
    pub id: &'a str,
}

/// The DSN message, CRLF line endings, ready to be stored.
pub fn build(report: &Report) -> Vec<u8> {
    let boundary = format!("=_letterbox_dsn_{}", report.id);
    let worst = if report.recipients.iter().any(|r| r.action == Action::Failed) {
        Action::Failed
    } else if report
        .recipients
        .iter()
        .any(|r| r.action == Action::Delayed)
    {
        Action::Delayed
    } else {
        Action::Delivered
    };
    let subject = match worst {
        Action::Failed => "Undelivered Mail Returned to Sender",
        Action::Delayed => "Delivery Status Notification (Delay)",
        _ => "Delivery Status Notification (Success)",
    };
    let mut out = String::new();
    let mut line = |text: &str| {
        out.push_str(text);
        out.push_str("\r\n");
    };
    line(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{}>",
        report.reporting_mta
    ));
    line(&format!("To: <{}>", report.to));
    line(&format!("Subject: {subject}"));
    line(&format!("Date: {}", rfc5322_date(report.now)));
    line(&format!(
        "Message-ID: <dsn.{}@{}>",
        report.id, report.reporting_mta
    ));
    // RFC 3834: automatic replies must not trigger more of them.
    line("Auto-Submitted: auto-replied");
    line("MIME-Version: 1.0");
    line(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\""
    ));
    line("");
    line("This is a MIME-encapsulated delivery status notification.");
    line("");
    line(&format!("--{boundary}"));
    line("Content-Type: text/plain; charset=utf-8");
    line("Content-Transfer-Encoding: 8bit");
    line("");
    line(&human_text(report, worst));
    line(&format!("--{boundary}"));
    line("Content-Type: message/delivery-status");
    line("");
    line(&format!("Reporting-MTA: dns; {}", report.reporting_mta));
    if let Some(envid) = report.envid {
        line(&format!("Original-Envelope-Id: {}", one_line(envid)));
    }
    line(&format!("Arrival-Date: {}", rfc5322_date(report.arrival)));
    for r in &report.recipients {
        line("");
        if let Some(orcpt) = &r.orcpt {
            line(&format!("Original-Recipient: rfc822; {}", one_line(orcpt)));
        }
        line(&format!(
            "Final-Recipient: rfc822; {}",
            one_line(&r.address)
        ));
        line(&format!("Action: {}", r.action.name()));
        line(&format!("Status: {}", r.status));
        if let Some(remote) = &r.remote {
            line(&format!("Remote-MTA: dns; {}", one_line(remote)));
        }
        if let Some(diagnostic) = &r.diagnostic {
            line(&format!("Diagnostic-Code: smtp; {}", one_line(diagnostic)));
        }
        if let Some(t) = r.last_attempt {
            line(&format!("Last-Attempt-Date: {}", rfc5322_date(t)));
        }
        if let Some(t) = r.retry_until {
            line(&format!("Will-Retry-Until: {}", rfc5322_date(t)));
        }
    }
    line("");
    line(&format!("--{boundary}"));
    if report.original_full {
        line("Content-Type: message/rfc822");
    } else {
        line("Content-Type: text/rfc822-headers");
    }
    line("");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(report.original);
    if !bytes.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

fn human_text(report: &Report, worst: Action) -> String {
    let mut text = match worst {
        Action::Failed => format!(
            "This is the mail system at {}.\r\n\r\nYour message could not be delivered to one or more \
             recipients. It will not be tried again.\r\n",
            report.reporting_mta
        ),
        Action::Delayed => format!(
            "This is the mail system at {}.\r\n\r\nYour message has not been delivered yet to one or \
             more recipients. Delivery will go on being tried; you do not need to send it again.\r\n",
            report.reporting_mta
        ),
        _ => format!(
            "This is the mail system at {}.\r\n\r\nYour message was delivered as you asked to be \
             told.\r\n",
            report.reporting_mta
        ),
    };
    text.push_str("\r\n");
    for r in &report.recipients {
        let reason = r.diagnostic.as_deref().unwrap_or("");
        text.push_str(&format!(
            "<{}>: {} {}\r\n",
            one_line(&r.address),
            r.action.name(),
            one_line(reason)
        ));
    }
    text
}

/// A value that cannot break the report's line structure.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders;

    fn report(action: Action) -> Vec<u8> {
        build(&Report {
            reporting_mta: "mx.example.org",
            to: "alice@example.org",
            envid: Some("QQ314159"),
            arrival: 1_700_000_000,
            now: 1_700_000_100,
            recipients: vec![RecipientReport {
                address: "bob@remote.test".into(),
                orcpt: Some("Bob@Remote.test".into()),
                action,
                status: "5.1.1".into(),
                remote: Some("mx1.remote.test".into()),
                diagnostic: Some("550 5.1.1 no such\r\nuser".into()),
                last_attempt: Some(1_700_000_100),
                retry_until: None,
            }],
            original: b"Subject: hello\r\nFrom: alice@example.org\r\n",
            original_full: false,
            id: "abc",
        })
    }

    #[test]
    fn failure_report_parses_as_multipart_report() {
        let bytes = report(Action::Failed);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("Subject: Undelivered Mail Returned to Sender\r\n"));
        assert!(text.contains("Original-Envelope-Id: QQ314159\r\n"));
        assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 no such  user\r\n"));
        let message = mail_parser::MessageParser::default().parse(&bytes).unwrap();
        let root = message.root_part();
        let ctype = root.content_type().unwrap();
        assert_eq!(ctype.ctype(), "multipart");
        assert_eq!(ctype.subtype(), Some("report"));
        assert_eq!(ctype.attribute("report-type"), Some("delivery-status"));
        let types: Vec<String> = message
            .parts
            .iter()
            .skip(1)
            .map(|p| {
                let c = p.content_type().unwrap();
                format!("{}/{}", c.ctype(), c.subtype().unwrap_or(""))
            })
            .collect();
        assert_eq!(
            types,
            [
                "text/plain",
                "message/delivery-status",
                "text/rfc822-headers"
            ]
        );
        // Every line is CRLF-terminated.
        assert!(!bytes.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
    }

    #[test]
    fn subjects_follow_the_worst_action() {
        let delayed = String::from_utf8(report(Action::Delayed)).unwrap();
        assert!(delayed.contains("(Delay)") && delayed.contains("Action: delayed"));
        let delivered = String::from_utf8(report(Action::Delivered)).unwrap();
        assert!(delivered.contains("(Success)"));
    }
}
