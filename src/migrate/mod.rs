//! `letterbox migrate`: pulls a whole account from another IMAP server.
//!
//! Every selectable folder is copied with its messages' flags, keywords and internal
//! dates. Folders map by special use (RFC 6154 attributes on LIST; `\Sent` goes to our
//! Sent whatever the source calls it), then by well-known names, else by name with the
//! source's separator made `/`. Gmail's `[Gmail]/` (or `[Google Mail]/`) prefix is
//! dropped, and its views of mail that lives in other folders (`\Flagged`, `\Important`)
//! are skipped. Its All Mail (`\All`) is copied into our Archive, but only the messages
//! with no label (X-GM-LABELS, the X-GM-EXT-1 extension) besides Important and Starred:
//! archived mail, which no other folder shows; the rest comes from its labels' folders.
//! On other servers `\All` is a view and skipped.
//!
//! Resumable and incremental: per source folder, the UIDVALIDITY and the last UID copied
//! are kept with the messages (see [`crate::transfer`]); a second run copies only UIDs
//! above it. Flag changes on the source after a message was copied are not followed. A
//! folder whose UIDVALIDITY changed is reported as failed rather than copied again.

pub mod client;

use crate::store::{flags, ImportMark, Incoming, SpecialUse, Store};
use crate::transfer::{place, Batch, Collector, Pending, Summary};
use client::{quote, Client, Token};

/// Where the mail comes from.
pub struct Source {
    pub host: String,
    pub port: u16,
    pub login: String,
    pub tls: bool,
}

impl Source {
    /// Parses `imaps://LOGIN@HOST[:PORT]` (or `imap://`, plain, for loopback only).
    pub fn parse(url: &str) -> Result<Source, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("imaps://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("imap://") {
            (false, r)
        } else {
            return Err(format!("{url:?}: expected imaps://LOGIN@HOST[:PORT]"));
        };
        let rest = rest.trim_end_matches('/');
        let (login, hostport) = rest
            .rsplit_once('@')
            .ok_or_else(|| format!("{url:?}: no LOGIN@ before the host"))?;
        let login = percent_decode(login)?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (
                h.trim_matches(['[', ']']).to_string(),
                p.parse().map_err(|_| format!("{url:?}: bad port"))?,
            ),
            _ => (
                hostport.trim_matches(['[', ']']).to_string(),
                if tls { 993 } else { 143 },
            ),
        };
        if host.is_empty() || login.is_empty() {
            return Err(format!("{url:?}: expected imaps://LOGIN@HOST[:PORT]"));
        }
        Ok(Source {
            host,
            port,
            login,
            tls,
        })
    }

    /// The key the import marks of this source's folders start with.
    fn key(&self) -> String {
        format!("imap:{}@{}:{}/", self.login, self.host, self.port)
    }
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or("bad %-escape in the login")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad %-escape in the login")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the login is not UTF-8".into())
}

/// A folder of the source and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// The name as the server sends it (modified UTF-7).
    pub wire: String,
    /// Our mailbox.
    pub mailbox: String,
    pub special_use: Option<SpecialUse>,
    /// Gmail's All Mail: only the messages no other folder shows (archived ones).
    pub only_unlabelled: bool,
}

/// Maps a LIST reply's attributes, separator and name to our mailbox; None to skip it.
pub fn map_folder(
    attributes: &[String],
    separator: Option<char>,
    wire: &str,
    ours: &[(String, Option<SpecialUse>)],
    gmail: bool,
) -> Option<Folder> {
    let has = |a: &str| attributes.iter().any(|x| x.eq_ignore_ascii_case(a));
    if gmail && has("\\All") && !has("\\Noselect") {
        // Archived mail lives only here: it goes to our Archive (see `copy_folder`).
        let (mailbox, special) = place(ours, "Archive", Some(SpecialUse::Archive));
        return Some(Folder {
            wire: wire.to_string(),
            mailbox,
            special_use: special,
            only_unlabelled: true,
        });
    }
    if has("\\Noselect")
        || has("\\NonExistent")
        || has("\\All")
        || has("\\Flagged")
        || has("\\Important")
    {
        return None;
    }
    let decoded = crate::mail::mutf7::decode(wire).unwrap_or_else(|_| wire.to_string());
    let mut name = match separator {
        Some(sep) if sep != '/' => decoded.split(sep).collect::<Vec<_>>().join("/"),
        _ => decoded,
    };
    for prefix in ["[Gmail]/", "[Google Mail]/"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            name = rest.to_string();
        }
    }
    if name.eq_ignore_ascii_case("INBOX") {
        return Some(Folder {
            wire: wire.to_string(),
            mailbox: "INBOX".into(),
            special_use: None,
            only_unlabelled: false,
        });
    }
    let special = [
        ("\\Sent", SpecialUse::Sent),
        ("\\Drafts", SpecialUse::Drafts),
        ("\\Trash", SpecialUse::Trash),
        ("\\Junk", SpecialUse::Junk),
        ("\\Archive", SpecialUse::Archive),
    ]
    .into_iter()
    .find(|(a, _)| has(a))
    .map(|(_, u)| u);
    let (mailbox, special) = place(ours, &name, special);
    Some(Folder {
        wire: wire.to_string(),
        mailbox,
        special_use: special,
        only_unlabelled: false,
    })
}

/// System flags and keywords from a FETCH FLAGS list.
fn parse_flags(list: &[String]) -> (u8, Vec<String>) {
    let mut bits = 0;
    let mut keywords = Vec::new();
    for f in list {
        match f.to_ascii_lowercase().as_str() {
            "\\seen" => bits |= flags::SEEN,
            "\\answered" => bits |= flags::ANSWERED,
            "\\flagged" => bits |= flags::FLAGGED,
            "\\deleted" => bits |= flags::DELETED,
            "\\draft" => bits |= flags::DRAFT,
            other if other.starts_with('\\') => {}
            _ => keywords.push(f.clone()),
        }
    }
    (bits, keywords)
}

/// What one FETCH response said about a message.
#[derive(Debug, Default)]
struct Fetched {
    uid: u32,
    flags: Vec<String>,
    internal_date: Option<i64>,
    /// Gmail's labels (X-GM-LABELS), when asked for.
    labels: Option<Vec<String>>,
}

fn parse_fetch(tokens: &[Token]) -> Fetched {
    let mut out = Fetched::default();
    let mut i = 0;
    while i < tokens.len() {
        let key = tokens[i].text().unwrap_or_default().to_ascii_uppercase();
        match key.as_str() {
            "UID" => {
                out.uid = tokens
                    .get(i + 1)
                    .and_then(Token::text)
                    .and_then(|u| u.parse().ok())
                    .unwrap_or(0);
                i += 1;
            }
            "FLAGS" | "X-GM-LABELS" if tokens.get(i + 1) == Some(&Token::Open) => {
                let mut list = Vec::new();
                i += 2;
                while i < tokens.len() && tokens[i] != Token::Close {
                    if let Some(f) = tokens[i].text() {
                        list.push(f);
                    }
                    i += 1;
                }
                if key == "FLAGS" {
                    out.flags = list;
                } else {
                    out.labels = Some(list);
                }
            }
            "INTERNALDATE" => {
                out.internal_date = tokens
                    .get(i + 1)
                    .and_then(Token::text)
                    .and_then(|d| crate::imap::parse::parse_date_time(&d).ok());
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Logs in and lists the folders to copy.
pub fn connect(
    source: &Source,
    password: &str,
    stream: Box<dyn client::Stream>,
) -> Result<Client, String> {
    let mut client = Client::new(stream)?;
    client
        .command(
            &format!("LOGIN {} {}", quote(&source.login)?, quote(password)?),
            None,
        )
        .map_err(|e| format!("logging in as {}: {e}", source.login))?;
    Ok(client)
}

/// The source's folders, mapped (see [`map_folder`]).
pub fn folders(
    client: &mut Client,
    ours: &[(String, Option<SpecialUse>)],
) -> Result<Vec<Folder>, String> {
    let gmail = client
        .command("CAPABILITY", None)?
        .iter()
        .flat_map(|r| r.tokens.iter())
        .any(|t| matches!(t, Token::Atom(a) if a.eq_ignore_ascii_case("X-GM-EXT-1")));
    let mut out = Vec::new();
    for response in client.command("LIST \"\" \"*\"", None)? {
        let t = &response.tokens;
        if response.word(1).as_deref() != Some("LIST") || t.get(2) != Some(&Token::Open) {
            continue;
        }
        let close = t.iter().position(|x| *x == Token::Close).unwrap_or(t.len());
        let attributes: Vec<String> = t[3..close].iter().filter_map(Token::text).collect();
        let separator = match t.get(close + 1) {
            Some(Token::Atom(a)) if a.eq_ignore_ascii_case("NIL") => None,
            Some(x) => x.text().and_then(|s| s.chars().next()),
            None => None,
        };
        let Some(wire) = t.get(close + 2).and_then(Token::text) else {
            continue;
        };
        if let Some(folder) = map_folder(&attributes, separator, &wire, ours, gmail) {
            out.push(folder);
        }
    }
    // INBOX first, then by name: a stable order for the summary.
    out.sort_by(|a, b| (a.mailbox != "INBOX", &a.mailbox).cmp(&(b.mailbox != "INBOX", &b.mailbox)));
    Ok(out)
}

/// Copies the messages of one folder above the last UID copied before.
pub fn copy_folder(
    client: &mut Client,
    store: &Store,
    account: &str,
    source: &Source,
    folder: &Folder,
    progress: &mut dyn FnMut(u64),
) -> Result<(u64, u64), String> {
    let key = format!("{}{}", source.key(), folder.wire);
    let mut batch = Batch::new(store, account, &folder.mailbox, folder.special_use, &key);
    let previous = batch.mark()?;
    let examined = client.command(&format!("EXAMINE {}", quote(&folder.wire)?), None)?;
    let validity: u32 = examined
        .iter()
        .flat_map(|r| r.tokens.iter())
        .filter_map(Token::text)
        .find_map(|t| {
            t.strip_prefix("[UIDVALIDITY ")
                .and_then(|v| v.trim_end_matches(']').parse().ok())
        })
        .ok_or_else(|| format!("{}: the server sent no UIDVALIDITY", folder.wire))?;
    let mut mark = match previous {
        Some(m) if m.validity != validity => {
            return Err(format!(
                "{}: its UIDVALIDITY changed since the last run ({} to {validity}); pass --restart to copy it again",
                folder.wire, m.validity
            ))
        }
        Some(m) => m,
        None => ImportMark {
            validity,
            ..ImportMark::default()
        },
    };
    let skipped = mark.count;
    let exists = examined
        .iter()
        .any(|r| r.word(2).as_deref() == Some("EXISTS") && r.word(1).as_deref() != Some("0"));
    let mut uids = Vec::new();
    if exists {
        let above = mark.position;
        let items = if folder.only_unlabelled {
            "(UID X-GM-LABELS)"
        } else {
            "(UID)"
        };
        client.command_each(
            &format!("UID FETCH {}:* {items}", above + 1),
            None,
            &mut |r| {
                let f = parse_fetch(&r.tokens);
                // A message with a label is copied from that label's folder.
                let elsewhere = f.labels.as_ref().is_some_and(|labels| {
                    labels.iter().any(|l| {
                        !l.eq_ignore_ascii_case("\\Important")
                            && !l.eq_ignore_ascii_case("\\Starred")
                    })
                });
                // `n:*` always names the last message, even below n.
                if f.uid as u64 > above && !elsewhere {
                    uids.push(f.uid);
                }
                Ok(())
            },
        )?;
    }
    uids.sort_unstable();
    for uid in uids {
        let mut collector = Collector::new(store);
        let responses = client.command(
            &format!("UID FETCH {uid} (UID FLAGS INTERNALDATE BODY.PEEK[])"),
            Some(&mut |b: &[u8]| collector.write(b)),
        )?;
        let Some((fetched, response)) = responses
            .iter()
            .map(|r| (parse_fetch(&r.tokens), r))
            .find(|(f, _)| f.uid == uid)
        else {
            // Expunged meanwhile.
            continue;
        };
        // The body came as a literal (streamed), or as a quoted string.
        let at = response
            .tokens
            .iter()
            .position(|t| matches!(t, Token::Atom(a) if a.eq_ignore_ascii_case("BODY[]")));
        match at.and_then(|i| response.tokens.get(i + 1)) {
            Some(Token::Streamed(_)) => {}
            Some(Token::Text(text)) => collector
                .write(text)
                .map_err(|e| format!("storing a message: {e}"))?,
            _ => return Err(format!("{}: UID {uid} came without its body", folder.wire)),
        }
        let (body, head) = collector.finish();
        let (bits, keywords) = parse_flags(&fetched.flags);
        let date = fetched
            .internal_date
            .or_else(|| crate::transfer::header_date(&head))
            .unwrap_or_else(crate::clock::unix_now);
        mark.position = uid as u64;
        batch.add(
            Pending {
                message: Incoming::new(Vec::new(), body, date),
                sender: String::new(),
                flags: bits,
                keywords,
            },
            &mut mark,
            progress,
        )?;
    }
    batch.commit(&mark)?;
    Ok((batch.committed, skipped))
}

/// Copies every folder; failures of one folder do not stop the others.
pub fn run(
    client: &mut Client,
    store: &Store,
    account: &str,
    source: &Source,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, String> {
    let ours = crate::transfer::ours(store, account)?;
    let mut summary = Summary::default();
    for folder in folders(client, &ours)? {
        match copy_folder(client, store, account, source, &folder, progress) {
            Ok((taken, skipped)) => {
                summary
                    .mailboxes
                    .push((folder.mailbox.clone(), taken, skipped))
            }
            Err(e) => summary
                .failed
                .push(format!("{} -> {}: {e}", folder.wire, folder.mailbox)),
        }
    }
    let _ = client.command("LOGOUT", None);
    Ok(summary)
}

/// Forgets how far earlier runs from `source` got, so everything is copied again.
pub fn restart(store: &Store, account: &str, source: &Source) -> Result<usize, String> {
    store
        .forget_imports(account, &source.key())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> Vec<(String, Option<SpecialUse>)> {
        crate::store::DEFAULT_MAILBOXES
            .iter()
            .map(|(n, u)| (n.to_string(), *u))
            .collect()
    }

    fn map(attrs: &[&str], sep: Option<char>, wire: &str) -> Option<(String, Option<SpecialUse>)> {
        let attrs: Vec<String> = attrs.iter().map(|a| a.to_string()).collect();
        map_folder(&attrs, sep, wire, &ours(), false).map(|f| (f.mailbox, f.special_use))
    }

    #[test]
    fn folders_map_by_use_then_name() {
        assert_eq!(
            map(&["\\Sent"], Some('/'), "[Gmail]/Sent Mail"),
            Some(("Sent".into(), Some(SpecialUse::Sent)))
        );
        assert_eq!(map(&["\\All"], Some('/'), "[Gmail]/All Mail"), None);
        assert_eq!(map(&["\\Noselect"], Some('/'), "[Gmail]"), None);
        assert_eq!(
            map(&[], Some('/'), "[Gmail]/Later"),
            Some(("Later".into(), None))
        );
        assert_eq!(
            map(&[], Some('.'), "INBOX.Sent Items"),
            Some(("INBOX/Sent Items".into(), None))
        );
        assert_eq!(
            map(&[], Some('.'), "Sent Items"),
            Some(("Sent".into(), Some(SpecialUse::Sent)))
        );
        assert_eq!(map(&[], Some('/'), "inbox"), Some(("INBOX".into(), None)));
        assert_eq!(
            map(&[], Some('/'), "Archive/2024"),
            Some(("Archive/2024".into(), None))
        );
        assert_eq!(
            map(&[], Some('/'), "Entw&APw-rfe"),
            Some(("Entwürfe".into(), None))
        );
    }

    #[test]
    fn gmail_all_mail_goes_to_archive() {
        let attrs = vec!["\\HasNoChildren".to_string(), "\\All".to_string()];
        let f = map_folder(&attrs, Some('/'), "[Gmail]/All Mail", &ours(), true).unwrap();
        assert_eq!((f.mailbox.as_str(), f.only_unlabelled), ("Archive", true));
        let mut t = Vec::new();
        client::tokenize(
            br#"* 9 FETCH (UID 70 X-GM-LABELS (\Important "work stuff"))"#,
            &mut t,
        )
        .unwrap();
        assert_eq!(
            parse_fetch(&t).labels,
            Some(vec!["\\Important".into(), "work stuff".into()])
        );
    }

    #[test]
    fn urls() {
        let s = Source::parse("imaps://me%40example.com@imap.example.com").unwrap();
        assert_eq!(
            (s.login.as_str(), s.host.as_str(), s.port, s.tls),
            ("me@example.com", "imap.example.com", 993, true)
        );
        let s = Source::parse("imap://alice@127.0.0.1:1143").unwrap();
        assert_eq!((s.port, s.tls), (1143, false));
        assert!(Source::parse("http://x@y").is_err());
        assert!(Source::parse("imaps://host-only").is_err());
    }

    #[test]
    fn fetch_items() {
        let mut t = Vec::new();
        client::tokenize(br#"* 1 FETCH (UID 42 FLAGS (\Seen $Label1 \Recent) INTERNALDATE "17-Jul-1996 02:44:25 -0700")"#, &mut t).unwrap();
        let f = parse_fetch(&t);
        assert_eq!(f.uid, 42);
        assert_eq!(f.internal_date, Some(837_596_665));
        assert_eq!(
            parse_flags(&f.flags),
            (flags::SEEN, vec!["$Label1".to_string()])
        );
    }
}
