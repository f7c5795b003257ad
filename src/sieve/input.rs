//! What a script looks at: the message (header fields decoded as RFC 5228 §5.7 says,
//! addresses, the body as RFC 5173 transforms it, dates as RFC 5260 splits them) and its
//! envelope. The MIME parse happens only when a `body` test needs it.

use super::program::{AddressPart, DatePart};
use crate::mail::address::{self, Entry};
use crate::mail::header;
use std::cell::OnceCell;

/// The message and its envelope, as the interpreter sees them.
pub struct Input<'a> {
    /// The message, or as much of it as the caller reads (see `size`).
    pub message: &'a [u8],
    /// The whole message's size, for `size`.
    pub size: u64,
    /// The envelope sender, "" for the null sender.
    pub envelope_from: &'a str,
    pub envelope_to: &'a str,
    /// Unix time now (for `currentdate`) and the server's zone in minutes east of UTC.
    pub now: i64,
    pub local_zone: i32,
    /// The junk filter's verdict as a percentage (spamtestplus, RFC 5235 §3.2): 0 surely
    /// not junk, 100 surely junk; `None` when the message was not classified.
    pub spam_percent: Option<u8>,
}

/// The message's fields, read once.
pub struct View<'a> {
    input: &'a Input<'a>,
    fields: Vec<header::Field<'a>>,
    body_start: usize,
    parsed: OnceCell<Option<mail_parser::Message<'a>>>,
}

impl<'a> View<'a> {
    pub fn new(input: &'a Input<'a>) -> View<'a> {
        let split = header::split(input.message);
        let head = split.header(input.message);
        View {
            input,
            fields: header::fields(head).collect(),
            body_start: split.body_start,
            parsed: OnceCell::new(),
        }
    }

    pub fn input(&self) -> &Input<'a> {
        self.input
    }

    pub fn size(&self) -> u64 {
        self.input.size
    }

    pub fn exists(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.is(name))
    }

    /// The unfolded values of the fields called `name`, in order, undecoded.
    pub fn raw_values(&self, name: &str) -> Vec<Vec<u8>> {
        self.fields
            .iter()
            .filter(|f| f.is(name))
            .map(header::Field::value)
            .collect()
    }

    /// The values decoded: unfolded, encoded words (RFC 2047) decoded.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.raw_values(name)
            .iter()
            .map(|v| header::decode_words(&String::from_utf8_lossy(v)))
            .collect()
    }

    /// The body as `:raw` sees it: the bytes after the header, undecoded.
    pub fn raw_body(&self) -> String {
        let body = self
            .input
            .message
            .get(self.body_start..)
            .unwrap_or_default();
        String::from_utf8_lossy(body).into_owned()
    }

    /// The decoded leaf parts whose content type matches one of `types` (RFC 5173 §5.2:
    /// "type" or "type/subtype", "" for any).
    pub fn parts(&self, types: &[String]) -> Vec<String> {
        let Some(message) = self.parsed() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for part in &message.parts {
            let (main, sub) = content_type(part);
            if main == "multipart" {
                continue;
            }
            let wanted = types.iter().any(|t| {
                let t = t.to_ascii_lowercase();
                match t.split_once('/') {
                    _ if t.is_empty() => true,
                    Some((m, s)) => m == main && s == sub,
                    None => t == main,
                }
            });
            if !wanted || main == "message" && sub == "rfc822" {
                continue;
            }
            out.push(match part.text_contents() {
                Some(text) => text.to_string(),
                None => String::from_utf8_lossy(part.contents()).into_owned(),
            });
        }
        out
    }

    /// The text parts as `:text` sees them: text/plain as it is, text/html as text.
    pub fn text(&self) -> Vec<String> {
        let Some(message) = self.parsed() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for part in &message.parts {
            let (main, sub) = content_type(part);
            match (main.as_str(), sub.as_str(), part.text_contents()) {
                ("text", "html", Some(html)) => {
                    out.push(mail_parser::decoders::html::html_to_text(html))
                }
                ("text", _, Some(text)) => out.push(text.to_string()),
                _ => {}
            }
        }
        out
    }

    fn parsed(&self) -> Option<&mail_parser::Message<'a>> {
        self.parsed
            .get_or_init(|| mail_parser::MessageParser::default().parse(self.input.message))
            .as_ref()
    }
}

fn content_type(part: &mail_parser::MessagePart) -> (String, String) {
    use mail_parser::MimeHeaders;
    match part.content_type() {
        Some(ct) => (
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or("").to_ascii_lowercase(),
        ),
        None => ("text".into(), "plain".into()),
    }
}

/// The addresses of one header value, as the address part selects them. `None` stands
/// for a mailbox that has no such part: one without a domain is no address (it never
/// matches, but `:count` counts it, as Pigeonhole does), one without "+" has no
/// `:detail`. `:all` quotes a local part that needs quotes, as written.
pub fn addresses(raw: &[u8], part: AddressPart) -> Vec<Option<String>> {
    address::parse(raw)
        .into_iter()
        .filter_map(|entry| match entry {
            Entry::Mailbox(address::Mailbox {
                local,
                domain: Some(domain),
                ..
            }) => Some(if part == AddressPart::All {
                Some(format!("{}@{domain}", quoted_local(&local)))
            } else {
                address_part(&local, Some(&domain), part)
            }),
            Entry::Mailbox(_) => Some(None),
            _ => None,
        })
        .collect()
}

/// A local part as RFC 5322 writes it: a dot-atom as it is, anything else quoted.
fn quoted_local(local: &str) -> String {
    let atext = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let dot_atom = !local.is_empty()
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(atext));
    if dot_atom {
        return local.to_string();
    }
    let mut out = String::from("\"");
    for c in local.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// One part of `local@domain`.
pub fn address_part(local: &str, domain: Option<&str>, part: AddressPart) -> Option<String> {
    match part {
        AddressPart::All => Some(match domain {
            Some(d) => format!("{local}@{d}"),
            None => local.to_string(),
        }),
        AddressPart::LocalPart => Some(local.to_string()),
        AddressPart::Domain => Some(domain.unwrap_or("").to_string()),
        AddressPart::User => Some(local.split_once('+').map_or(local, |(u, _)| u).to_string()),
        AddressPart::Detail => local.split_once('+').map(|(_, d)| d.to_string()),
    }
}

/// An envelope address ("" is the null sender) split as the address part says.
pub fn envelope_part(address: &str, part: AddressPart) -> Option<String> {
    if address.is_empty() {
        // RFC 5228 §5.4: the null reverse-path is the empty string for every part.
        return (part != AddressPart::Detail).then(String::new);
    }
    match address.rsplit_once('@') {
        Some((local, domain)) => address_part(local, Some(domain), part),
        None => address_part(address, None, part),
    }
}

/// A date written in a header (for Received, the part after its last ';'): Unix time
/// and the zone it was written in, in minutes east of UTC.
pub fn header_date(value: &str) -> Option<(i64, i32)> {
    let text = value.rsplit_once(';').map_or(value, |(_, date)| date);
    let header = format!("Date: {}\r\n\r\n", text.trim());
    let parsed = mail_parser::MessageParser::new().parse_headers(header.as_bytes())?;
    let date = parsed.date()?;
    if !date.is_valid() {
        return None;
    }
    let zone = (date.tz_hour as i32 * 60 + date.tz_minute as i32)
        * if date.tz_before_gmt { -1 } else { 1 };
    Some((date.to_timestamp(), zone))
}

/// One part of a moment as seen in `zone` (RFC 5260 §4.2).
pub fn date_part(unix: i64, zone: i32, part: DatePart) -> String {
    use crate::mail::date::civil_from_days;
    let local = unix + zone as i64 * 60;
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let zone_text = format!(
        "{}{:02}{:02}",
        if zone < 0 { '-' } else { '+' },
        zone.abs() / 60,
        zone.abs() % 60
    );
    match part {
        DatePart::Year => format!("{y:04}"),
        DatePart::Month => format!("{m:02}"),
        DatePart::Day => format!("{d:02}"),
        DatePart::Date => format!("{y:04}-{m:02}-{d:02}"),
        // Modified Julian Day: days since 1858-11-17.
        DatePart::Julian => (days + 40_587).to_string(),
        DatePart::Hour => format!("{hh:02}"),
        DatePart::Minute => format!("{mm:02}"),
        DatePart::Second => format!("{ss:02}"),
        DatePart::Time => format!("{hh:02}:{mm:02}:{ss:02}"),
        // RFC 3339's form; UTC as "Z", as Pigeonhole writes it.
        DatePart::Iso8601 if zone == 0 => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
        DatePart::Iso8601 => format!(
            "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}{}:{}",
            &zone_text[..3],
            &zone_text[3..]
        ),
        DatePart::Std11 => {
            const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
            const MONTHS: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            format!(
                "{}, {d:02} {} {y:04} {hh:02}:{mm:02}:{ss:02} {zone_text}",
                DAYS[days.rem_euclid(7) as usize],
                MONTHS[(m - 1) as usize]
            )
        }
        DatePart::Zone => zone_text,
        // 0 is Sunday; 1970-01-01 was a Thursday.
        DatePart::Weekday => ((days + 4).rem_euclid(7)).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_a_date() {
        // 2026-12-02 00:37:06 UTC, a Wednesday.
        let t = 1_796_171_826;
        assert_eq!(
            date_part(t, 0, DatePart::Std11),
            "Wed, 02 Dec 2026 00:37:06 +0000"
        );
        assert_eq!(date_part(t, 0, DatePart::Weekday), "3");
        assert_eq!(
            date_part(t, -90, DatePart::Iso8601),
            "2026-12-01T23:07:06-01:30"
        );
        assert_eq!(date_part(t, 60, DatePart::Zone), "+0100");
        assert_eq!(date_part(0, 0, DatePart::Julian), "40587");
        let (unix, zone) = header_date("Tue, 1 Dec 2026 20:00:00 -0500").unwrap();
        assert_eq!((unix, zone), (1_796_173_200, -300));
        assert_eq!(date_part(unix, zone, DatePart::Time), "20:00:00");
        assert_eq!(date_part(unix, 0, DatePart::Date), "2026-12-02");
        let (_, zone) = header_date("from x by y; Wed, 2 Dec 2026 01:00:00 +0100").unwrap();
        assert_eq!(zone, 60);
        assert_eq!(header_date("not a date"), None);
    }

    #[test]
    fn address_parts() {
        let all = addresses(
            b"Alice <alice+lists@Example.COM>, group: bob@x.example;, local, \"a b\"@c",
            AddressPart::All,
        );
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            all,
            [
                some("alice+lists@Example.COM"),
                some("bob@x.example"),
                None,
                some("\"a b\"@c")
            ]
        );
        assert_eq!(addresses(b"a+b+c@x", AddressPart::Detail), [some("b+c")]);
        assert_eq!(addresses(b"a@x", AddressPart::Detail), [None]);
        assert_eq!(addresses(b"a+@x", AddressPart::Detail), [some("")]);
        assert_eq!(
            addresses(b"\"a b\"@c", AddressPart::LocalPart),
            [some("a b")]
        );
        assert_eq!(envelope_part("", AddressPart::Domain).as_deref(), Some(""));
        assert_eq!(
            envelope_part("u+d@h", AddressPart::User).as_deref(),
            Some("u")
        );
    }
}
