//! Message bytes to a bounded set of unique tokens: the words of the decoded subject,
//! sender and text parts, lower-cased. Header words carry the header's name
//! (`subject:free`), so the same word counts apart in the subject and in the body; each
//! MIME type present adds `mime:type/subtype` (HTML-only mail is a signal of its own).
//!
//! Pure and bounded: only the first [`JUNK_SCAN_BYTES`] are read, mail-parser decodes
//! quoted-printable, base64 and HTML parts, and at most [`MAX_JUNK_MESSAGE_TOKENS`] unique
//! tokens come out, sorted (sorted keys also make the store's writes local).

use crate::limits::{JUNK_SCAN_BYTES, MAX_JUNK_MESSAGE_TOKENS};
use mail_parser::{Address, MessageParser, MimeHeaders};
use std::collections::BTreeSet;

/// Single characters say little; two-letter words do ("ur", "ok": measured with
/// scripts/bench-junk, keeping them halved the false positives).
const MIN_WORD_CHARS: usize = 2;
/// Longer words are mostly encoded junk (base64 runs, tracking ids); this also bounds the
/// token key (the prefix is at most 9 bytes more).
const MAX_WORD_BYTES: usize = 32;

/// The unique tokens of a message, sorted.
pub fn tokens(message: &[u8]) -> Vec<String> {
    let message = &message[..message.len().min(JUNK_SCAN_BYTES)];
    let mut out = Tokens::default();
    let Some(parsed) = MessageParser::default().parse(message) else {
        out.words("", &String::from_utf8_lossy(message));
        return out.finish();
    };
    if let Some(subject) = parsed.subject() {
        out.words("subject:", subject);
    }
    for (prefix, address) in [("from:", parsed.from()), ("reply-to:", parsed.reply_to())] {
        if let Some(address) = address {
            out.address(prefix, address);
        }
    }
    for part in parsed.parts.iter() {
        if let Some(ct) = part.content_type() {
            let mime = match ct.subtype() {
                Some(sub) => format!("mime:{}/{}", ct.ctype(), sub),
                None => format!("mime:{}", ct.ctype()),
            };
            out.add(&mime.to_lowercase());
        }
    }
    for i in 0..parsed.text_body_count() {
        if let Some(text) = parsed.body_text(i) {
            out.words("", &text);
        }
    }
    out.finish()
}

#[derive(Default)]
struct Tokens {
    set: BTreeSet<String>,
}

impl Tokens {
    fn full(&self) -> bool {
        self.set.len() >= MAX_JUNK_MESSAGE_TOKENS
    }

    fn add(&mut self, token: &str) {
        if !self.full() && !self.set.contains(token) {
            self.set.insert(token.to_string());
        }
    }

    fn address(&mut self, prefix: &str, address: &Address) {
        for addr in address.iter() {
            if let Some(name) = addr.name() {
                self.words(prefix, name);
            }
            if let Some(email) = addr.address() {
                self.words(prefix, email);
            }
        }
    }

    /// Adds the words of `text`, each with `prefix`.
    fn words(&mut self, prefix: &str, text: &str) {
        let mut token = String::with_capacity(prefix.len() + MAX_WORD_BYTES);
        for word in text.split(|c: char| !is_word_char(c)) {
            if self.full() {
                return;
            }
            let word = word.trim_matches(|c: char| matches!(c, '-' | '\'' | '.' | '_'));
            if word.len() > MAX_WORD_BYTES || word.chars().count() < MIN_WORD_CHARS {
                continue;
            }
            token.clear();
            token.push_str(prefix);
            token.extend(word.chars().flat_map(char::to_lowercase));
            self.add(&token);
        }
    }

    fn finish(self) -> Vec<String> {
        self.set.into_iter().collect()
    }
}

/// Characters of a word: letters and digits, and the marks that belong inside words,
/// prices and host names (`don't`, `e-mail`, `$100`, `example.com`).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '$' | '\'' | '-' | '.' | '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_prefixed_and_words_lower_cased() {
        let message = b"From: \"Cheap Meds\" <deals@pharma.example>\r\n\
            Subject: FREE pills, now!\r\n\
            To: alice@example.org\r\n\
            \r\n\
            Buy CHEAP pills at https://pharma.example/buy... Don't wait; $100 off.\r\n";
        assert_eq!(
            tokens(message),
            [
                "$100",
                "at",
                "buy",
                "cheap",
                "don't",
                "from:cheap",
                "from:deals",
                "from:meds",
                "from:pharma.example",
                "https",
                "off",
                "pharma.example",
                "pills",
                "subject:free",
                "subject:now",
                "subject:pills",
                "wait",
            ]
        );
    }

    #[test]
    fn encoded_parts_are_decoded_and_html_is_text() {
        let message = b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\
            MIME-Version: 1.0\r\n\
            Content-Type: multipart/alternative; boundary=b\r\n\
            \r\n\
            --b\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\
            Content-Transfer-Encoding: base64\r\n\
            \r\n\
            bW9uZXkgdHJhbnNmZXIgdXJnZW50\r\n\
            --b\r\n\
            Content-Type: text/html\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\
            \r\n\
            <p>html=20only</p>\r\n\
            --b--\r\n";
        assert_eq!(
            tokens(message),
            [
                "mime:multipart/alternative",
                "mime:text/html",
                "mime:text/plain",
                "money",
                "subject:grüße",
                "transfer",
                "urgent",
            ]
        );
    }

    #[test]
    fn an_html_only_message_is_read_as_text() {
        let message =
            b"Content-Type: text/html\r\n\r\n<html><b>Act</b> <a href=x>now</a></html>\r\n";
        assert_eq!(tokens(message), ["act", "mime:text/html", "now"]);
    }

    #[test]
    fn short_long_and_repeated_words_are_dropped() {
        let long = "x".repeat(MAX_WORD_BYTES + 1);
        let message = format!("Subject: a an and\r\n\r\nok yes yes YES {long} -dash- ... x\r\n");
        assert_eq!(
            tokens(message.as_bytes()),
            ["dash", "ok", "subject:an", "subject:and", "yes"]
        );
    }

    #[test]
    fn tokens_and_input_are_bounded() {
        let mut message = b"Subject: many\r\n\r\n".to_vec();
        for i in 0..5000 {
            message.extend_from_slice(format!("word{i} ").as_bytes());
        }
        let found = tokens(&message);
        assert_eq!(found.len(), MAX_JUNK_MESSAGE_TOKENS);
        // Words past the scanned prefix are never seen.
        let mut big = b"Subject: big\r\n\r\n".to_vec();
        big.resize(JUNK_SCAN_BYTES, b' ');
        big.extend_from_slice(b" lateword\r\n");
        assert!(!tokens(&big).contains(&"lateword".to_string()));
        assert_eq!(tokens(b""), Vec::<String>::new());
    }
}
