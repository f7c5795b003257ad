//! Address lists as IMAP's ENVELOPE shows them (RFC 3501 §7.4.2): from the raw header
//! value, with comments dropped, phrases kept as written (encoded words undecoded, as
//! Dovecot sends them), groups as start and end markers, and source routes as the adl.
//!
//! Written here rather than taken from mail-parser: its address parser decodes names and
//! folds comments into them, which is right for display and wrong for ENVELOPE and
//! SEARCH. The grammar is RFC 5322 §3.4 with the obsolete forms of §4.4 (routes, phrases
//! with dots, missing domains), forgiving as mail needs: nothing here fails.

/// One entry of an address list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Mailbox(Mailbox),
    /// `name:` starting a group.
    GroupStart(String),
    /// The `;` ending it.
    GroupEnd,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mailbox {
    /// The display name as written (quotes removed), or a comment when there is no name.
    pub name: Option<String>,
    /// A source route (`@a,@b`), the obsolete adl.
    pub route: Option<String>,
    pub local: String,
    pub domain: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Special(u8),
    Comment(String),
}

/// Most entries one field yields: a header is bounded, this bounds the work on it.
const MAX_ENTRIES: usize = 1024;

fn tokens(raw: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    while i < raw.len() {
        match raw[i] {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' => {
                let mut depth = 0;
                let mut comment = Vec::new();
                while i < raw.len() {
                    match raw[i] {
                        b'\\' if i + 1 < raw.len() => {
                            comment.push(raw[i + 1]);
                            i += 1;
                        }
                        b'(' => {
                            if depth > 0 {
                                comment.push(b'(');
                            }
                            depth += 1;
                        }
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                            comment.push(b')');
                        }
                        c => comment.push(c),
                    }
                    i += 1;
                }
                out.push(Token::Comment(text(&comment)));
            }
            b'"' => {
                let mut quoted = Vec::new();
                i += 1;
                while i < raw.len() && raw[i] != b'"' {
                    if raw[i] == b'\\' && i + 1 < raw.len() {
                        i += 1;
                    }
                    if !matches!(raw[i], b'\r' | b'\n') {
                        quoted.push(raw[i]);
                    }
                    i += 1;
                }
                i += 1;
                out.push(Token::Quoted(text(&quoted)));
            }
            b'[' => {
                // A domain literal stays one word, brackets included.
                let start = i;
                while i < raw.len() && raw[i] != b']' {
                    i += 1;
                }
                i = (i + 1).min(raw.len());
                out.push(Token::Word(text(&raw[start..i])));
            }
            c @ (b'<' | b'>' | b'@' | b',' | b';' | b':') => {
                out.push(Token::Special(c));
                i += 1;
            }
            _ => {
                let start = i;
                while i < raw.len()
                    && !matches!(
                        raw[i],
                        b' ' | b'\t'
                            | b'\r'
                            | b'\n'
                            | b'('
                            | b'"'
                            | b'<'
                            | b'>'
                            | b'@'
                            | b','
                            | b';'
                            | b':'
                            | b'['
                    )
                {
                    i += 1;
                }
                out.push(Token::Word(text(&raw[start..i])));
            }
        }
    }
    out
}

/// Words joined as a phrase: single spaces between them.
fn phrase(words: &[String]) -> Option<String> {
    let joined = words.join(" ");
    (!joined.is_empty()).then_some(joined)
}

/// Words joined as a local part or domain: no spaces (`a . b` is `a.b`).
fn dotted(words: &[String]) -> String {
    words.concat()
}

/// Parses an address-list header value.
pub fn parse(raw: &[u8]) -> Vec<Entry> {
    let tokens = tokens(raw);
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut comment: Option<String> = None;
    let mut in_group = false;
    let mut i = 0;
    let finish_bare =
        |words: &mut Vec<String>, comment: &mut Option<String>, out: &mut Vec<Entry>| {
            if !words.is_empty() {
                // A word list without `@` or `<`: a mailbox with no domain.
                out.push(Entry::Mailbox(Mailbox {
                    name: comment.take(),
                    local: dotted(words),
                    ..Mailbox::default()
                }));
                words.clear();
            }
            *comment = None;
        };
    while i < tokens.len() && out.len() < MAX_ENTRIES {
        match &tokens[i] {
            Token::Word(w) | Token::Quoted(w) => words.push(w.clone()),
            Token::Comment(c) => {
                if !c.trim().is_empty() {
                    comment = Some(c.trim().to_string());
                }
            }
            Token::Special(b':') if !in_group => {
                out.push(Entry::GroupStart(phrase(&words).unwrap_or_default()));
                words.clear();
                comment = None;
                in_group = true;
            }
            Token::Special(b';') => {
                finish_bare(&mut words, &mut comment, &mut out);
                if in_group {
                    out.push(Entry::GroupEnd);
                    in_group = false;
                }
            }
            Token::Special(b',') => finish_bare(&mut words, &mut comment, &mut out),
            Token::Special(b'<') => {
                let name = phrase(&words);
                words.clear();
                let (mut mailbox, next) = angle(&tokens, i + 1);
                i = next;
                // Comments after the address may still name it.
                while let Some(Token::Comment(c)) = tokens.get(i) {
                    if !c.trim().is_empty() {
                        comment = Some(c.trim().to_string());
                    }
                    i += 1;
                }
                mailbox.name = name.or(comment.take());
                out.push(Entry::Mailbox(mailbox));
                comment = None;
                continue;
            }
            Token::Special(b'@') => {
                let local = dotted(&words);
                words.clear();
                let mut domain = Vec::new();
                i += 1;
                while let Some(t) = tokens.get(i) {
                    match t {
                        Token::Word(w) | Token::Quoted(w) => domain.push(w.clone()),
                        Token::Comment(c) => {
                            if !c.trim().is_empty() {
                                comment = Some(c.trim().to_string());
                            }
                        }
                        Token::Special(b'@') => {}
                        Token::Special(_) => break,
                    }
                    i += 1;
                }
                if matches!(tokens.get(i), Some(Token::Special(b'<'))) {
                    // `user@host <user@host>`: what came first is the display name.
                    words.push(format!("{local}@{}", dotted(&domain)));
                    continue;
                }
                out.push(Entry::Mailbox(Mailbox {
                    name: comment.take(),
                    route: None,
                    local,
                    domain: (!domain.is_empty()).then(|| dotted(&domain)),
                }));
                continue;
            }
            Token::Special(_) => {}
        }
        i += 1;
    }
    finish_bare(&mut words, &mut comment, &mut out);
    if in_group {
        out.push(Entry::GroupEnd);
    }
    out
}

/// The inside of `<...>` from `start`: an optional route, then the addr-spec. Returns
/// the mailbox and the index after `>`.
fn angle(tokens: &[Token], start: usize) -> (Mailbox, usize) {
    let mut i = start;
    let mut route = String::new();
    // obs-route: `@a,@b:` before the addr-spec.
    if matches!(tokens.get(i), Some(Token::Special(b'@'))) {
        let mut j = i;
        let mut text = String::new();
        while let Some(t) = tokens.get(j) {
            match t {
                Token::Special(b':') => {
                    route = text;
                    i = j + 1;
                    break;
                }
                Token::Special(b'@') => text.push('@'),
                Token::Special(b',') => text.push(','),
                Token::Word(w) => text.push_str(w),
                Token::Comment(_) => {}
                _ => break,
            }
            j += 1;
        }
    }
    let mut local = Vec::new();
    let mut domain = Vec::new();
    let mut after_at = false;
    while let Some(t) = tokens.get(i) {
        i += 1;
        match t {
            Token::Special(b'>') => break,
            Token::Special(b'@') => after_at = true,
            Token::Word(w) | Token::Quoted(w) if after_at => domain.push(w.clone()),
            Token::Word(w) | Token::Quoted(w) => local.push(w.clone()),
            _ => {}
        }
    }
    let mailbox = Mailbox {
        name: None,
        route: (!route.is_empty()).then_some(route),
        local: dotted(&local),
        domain: (after_at && !domain.is_empty()).then(|| dotted(&domain)),
    };
    (mailbox, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(
        name: Option<&str>,
        route: Option<&str>,
        local: &str,
        domain: Option<&str>,
    ) -> Entry {
        Entry::Mailbox(Mailbox {
            name: name.map(str::to_string),
            route: route.map(str::to_string),
            local: local.to_string(),
            domain: domain.map(str::to_string),
        })
    }

    #[test]
    fn rfc_5322_appendix_a_forms() {
        assert_eq!(
            parse(b"\"Joe Q. Public\" <john.q.public@example.com>, Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>"),
            [
                mailbox(Some("Joe Q. Public"), None, "john.q.public", Some("example.com")),
                mailbox(Some("Pete"), None, "pete", Some("silly.test")),
            ]
        );
        assert_eq!(
            parse(b"A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n joe@example.org,\r\n John <jdoe@one.test> (my dear friend); (the end of the group)"),
            [
                Entry::GroupStart("A Group".into()),
                mailbox(Some("Chris Jones"), None, "c", Some("public.example")),
                mailbox(None, None, "joe", Some("example.org")),
                mailbox(Some("John"), None, "jdoe", Some("one.test")),
                Entry::GroupEnd,
            ]
        );
        assert_eq!(
            parse(b"Undisclosed recipients:;"),
            [
                Entry::GroupStart("Undisclosed recipients".into()),
                Entry::GroupEnd
            ]
        );
        assert_eq!(
            parse(b"<@route.example,@two.example:user@domain.example>"),
            [mailbox(
                None,
                Some("@route.example,@two.example"),
                "user",
                Some("domain.example")
            )]
        );
    }

    #[test]
    fn names_comments_and_odd_forms() {
        // A comment names an address that has no phrase.
        assert_eq!(
            parse(b"foxtrot@x.test (Foxy Fox)"),
            [mailbox(Some("Foxy Fox"), None, "foxtrot", Some("x.test"))]
        );
        // Encoded words stay as written.
        assert_eq!(
            parse(b"=?utf-8?q?=C3=89mile?= <e@x.test>"),
            [mailbox(
                Some("=?utf-8?q?=C3=89mile?="),
                None,
                "e",
                Some("x.test")
            )]
        );
        assert_eq!(
            parse(b"\"Mary \\\"M\\\" Smith\" <mary@x.test>, joe, \"a b\"@c.test"),
            [
                mailbox(Some("Mary \"M\" Smith"), None, "mary", Some("x.test")),
                mailbox(None, None, "joe", None),
                mailbox(None, None, "a b", Some("c.test")),
            ]
        );
        assert_eq!(
            parse(b"group2: (foo) ;"),
            [Entry::GroupStart("group2".into()), Entry::GroupEnd]
        );
        assert_eq!(
            parse(b"joe@x.test <joe@x.test>"),
            [mailbox(Some("joe@x.test"), None, "joe", Some("x.test"))]
        );
        for junk in [
            &b""[..],
            b"<",
            b"@",
            b"((((",
            b"\"open",
            b":::;;;,,,",
            b"<@a:",
            b"[1.2",
        ] {
            let _ = parse(junk);
        }
        assert!(parse(b"").is_empty());
        assert_eq!(parse(&b"a@b,".repeat(5000)).len(), MAX_ENTRIES);
    }
}
