//! Out-of-office replies: whether one may be sent (RFC 3834 §2 and RFC 5230 §4.5-4.6:
//! never to a null sender, a list, bulk or automatic mail, or mail that does not name
//! one of the recipient's own addresses) and the reply itself. The per-sender memory
//! ("replied within the last N days") lives in the store's Sieve memory.

use crate::mail::address::{self, Entry};
use crate::mail::header;
use crate::sieve::run::Reply;

/// Why no reply goes out, or `Ok` when one may.
pub fn may_reply(head: &[u8], sender: &str, own: &[String]) -> Result<(), &'static str> {
    if sender.is_empty() {
        return Err("the null sender");
    }
    let local = sender
        .rsplit_once('@')
        .map_or(sender, |(l, _)| l)
        .to_ascii_lowercase();
    if local.starts_with("owner-")
        || local.ends_with("-request")
        || ["mailer-daemon", "listserv", "majordomo", "postmaster"].contains(&local.as_str())
    {
        return Err("a list or system sender");
    }
    if own.iter().any(|o| same_address(o, sender)) {
        return Err("mail from oneself");
    }
    let mut named_me = false;
    for field in header::fields(head) {
        let name = field.name().to_ascii_lowercase();
        let value = String::from_utf8_lossy(&field.value()).to_ascii_lowercase();
        match name.as_str() {
            "auto-submitted" if value.split(';').next().map(str::trim) != Some("no") => {
                return Err("automatic mail (Auto-Submitted)")
            }
            "precedence" if ["bulk", "list", "junk"].contains(&value.trim()) => {
                return Err("bulk or list mail (Precedence)")
            }
            "x-auto-response-suppress" if value.contains("oof") || value.contains("all") => {
                return Err("the sender asked for no automatic reply")
            }
            "list-id" | "list-help" | "list-subscribe" | "list-unsubscribe" | "list-post"
            | "list-owner" | "list-archive" => return Err("list mail (List-*)"),
            "to" | "cc" | "bcc" | "resent-to" | "resent-cc" | "resent-bcc" => {
                for entry in address::parse(&field.value()) {
                    if let Entry::Mailbox(m) = entry {
                        let Some(domain) = m.domain else { continue };
                        let address = format!("{}@{domain}", m.local);
                        named_me |= own.iter().any(|o| same_address(o, &address));
                    }
                }
            }
            _ => {}
        }
    }
    if !named_me {
        return Err("none of the recipient's addresses in To/Cc/Bcc");
    }
    Ok(())
}

/// Same mailbox: case-insensitive, a `+detail` ignored on either side.
fn same_address(a: &str, b: &str) -> bool {
    let base = |s: &str| {
        let s = s.to_ascii_lowercase();
        match s.rsplit_once('@') {
            Some((local, domain)) => {
                format!(
                    "{}@{domain}",
                    local.split_once('+').map_or(local, |(l, _)| l)
                )
            }
            None => s,
        }
    };
    base(a) == base(b)
}

/// The memory key of a reply to `sender` with this reply's handle.
pub fn memory_key(sender: &str, reply: &Reply) -> String {
    format!(
        "v\0{}\0{:016x}",
        sender.to_ascii_lowercase(),
        fnv(reply.handle.as_bytes())
    )
}

/// FNV-1a, 64 bits: a short stable digest for memory keys (not a security measure).
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= b as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The reply message (RFC 5230 §5): from the account (or `:from`), to the sender,
/// threaded to the original, marked `Auto-Submitted: auto-replied`.
pub fn build(
    reply: &Reply,
    account: &str,
    sender: &str,
    original_head: &[u8],
    hostname: &str,
    now: i64,
) -> Vec<u8> {
    let value = |name: &str| {
        header::fields(original_head)
            .find(|f| f.is(name))
            .map(|f| String::from_utf8_lossy(&f.value()).into_owned())
    };
    let subject = match &reply.subject {
        Some(subject) => subject.clone(),
        None => format!(
            "Auto: {}",
            header::decode_words(&value("subject").unwrap_or_default())
        ),
    };
    // A subject is one line of a reasonable length, whatever the script made of it.
    let subject: String = clean(&subject).chars().take(200).collect();
    let from = reply.from.clone().unwrap_or_else(|| account.to_string());
    let mut out = String::new();
    out.push_str(&format!("From: {}\r\n", clean(&from)));
    out.push_str(&format!("To: <{}>\r\n", clean(sender)));
    out.push_str(&format!("Subject: {}\r\n", encode_words(&subject)));
    out.push_str(&format!(
        "Date: {}\r\n",
        crate::mail::date::rfc5322_date(now)
    ));
    out.push_str(&format!(
        "Message-ID: <vacation.{:016x}.{now}@{hostname}>\r\n",
        fnv(format!("{sender}{subject}{now}").as_bytes())
    ));
    if let Some(id) = value("message-id") {
        let id = clean(&id);
        out.push_str(&format!("In-Reply-To: {id}\r\n"));
        // The last few of the thread's ids, one per line (RFC 5322's line length).
        let mut ids: Vec<String> = value("references")
            .map(|r| clean(&r).split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        ids.push(id.clone());
        let keep = ids.len().saturating_sub(10);
        let ids: Vec<String> = ids
            .into_iter()
            .skip(keep)
            .filter(|i| i.len() <= 900)
            .collect();
        out.push_str(&format!("References: {}\r\n", ids.join("\r\n ")));
    }
    out.push_str("Auto-Submitted: auto-replied (vacation)\r\n");
    out.push_str("Precedence: bulk\r\n");
    out.push_str("MIME-Version: 1.0\r\n");
    let body = crlf(&reply.reason);
    if reply.mime {
        // The reason is a MIME entity of its own: its header, an empty line, its body.
        out.push_str(&body);
    } else {
        out.push_str("Content-Type: text/plain; charset=utf-8\r\n");
        let encoding = if body.is_ascii() { "7bit" } else { "8bit" };
        out.push_str(&format!("Content-Transfer-Encoding: {encoding}\r\n\r\n"));
        out.push_str(&body);
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// No line breaks inside a header value.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// Non-ASCII header text as RFC 2047 encoded words of at most 75 characters (45 bytes
/// of UTF-8 each, never splitting a character), on folded lines.
fn encode_words(text: &str) -> String {
    use base64::Engine;
    if text.is_ascii() {
        return text.to_string();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    words
        .iter()
        .map(|w| {
            format!(
                "=?UTF-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w)
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "bob@example.org";

    fn check(head: &str, sender: &str) -> Result<(), &'static str> {
        may_reply(head.as_bytes(), sender, &[ME.to_string()])
    }

    #[test]
    fn rfc_3834_rules() {
        let to_me = "To: Bob <Bob+x@Example.org>\r\nSubject: hi\r\n";
        assert_eq!(check(to_me, "alice@example.com"), Ok(()));
        assert_eq!(check(to_me, ""), Err("the null sender"));
        assert!(check(to_me, "owner-list@example.com").is_err());
        assert!(check(to_me, "MAILER-DAEMON@example.com").is_err());
        assert_eq!(check(to_me, "bob@example.org"), Err("mail from oneself"));
        assert!(check(
            &format!("{to_me}List-Id: <x.example.com>\r\n"),
            "a@b.example"
        )
        .is_err());
        assert!(check(&format!("{to_me}Precedence: bulk\r\n"), "a@b.example").is_err());
        assert!(check(
            &format!("{to_me}Auto-Submitted: auto-replied\r\n"),
            "a@b.example"
        )
        .is_err());
        assert_eq!(
            check(&format!("{to_me}Auto-Submitted: no\r\n"), "a@b.example"),
            Ok(())
        );
        assert_eq!(
            check("To: someone@example.org\r\n", "a@b.example"),
            Err("none of the recipient's addresses in To/Cc/Bcc")
        );
        assert_eq!(
            check("Cc: x@y.example, bob@example.org\r\n", "a@b.example"),
            Ok(())
        );
    }

    #[test]
    fn a_reply() {
        let reply = Reply {
            seconds: 86_400,
            subject: None,
            from: None,
            addresses: vec![],
            mime: false,
            handle: "h".into(),
            reason: "Away\nback Monday — Bob".into(),
        };
        let head = b"Subject: =?UTF-8?Q?caf=C3=A9?=\r\nMessage-ID: <m1@example.com>\r\n";
        let text = String::from_utf8(build(
            &reply,
            ME,
            "alice@example.com",
            head,
            "mx.example.org",
            0,
        ))
        .unwrap();
        assert!(
            text.starts_with(
                "From: bob@example.org\r\nTo: <alice@example.com>\r\nSubject: =?UTF-8?B?"
            ),
            "{text}"
        );
        assert!(text.contains("In-Reply-To: <m1@example.com>\r\nReferences: <m1@example.com>\r\n"));
        assert!(text.contains("Auto-Submitted: auto-replied (vacation)\r\n"));
        assert!(text.ends_with("8bit\r\n\r\nAway\r\nback Monday — Bob\r\n"));
        assert_ne!(memory_key("a@b", &reply), memory_key("c@b", &reply));
        let long = encode_words(&"é".repeat(100));
        assert!(long
            .split("\r\n ")
            .all(|w| w.len() <= 75 && w.starts_with("=?UTF-8?B?")));
        assert_eq!(long.split("\r\n ").count(), 5);
    }
}
