//! `letterbox sendmail`: sendmail-compatible local injection, for cron jobs and scripts on
//! the box (also run as `sendmail` through a symlink).
//!
//! The message is read from standard input (at most `max_message_size`), given CRLF line
//! endings and the header fields a script often leaves out (From:, Date:, Message-ID:),
//! and stored in one transaction: copies for local recipients, a queue entry for remote
//! ones. The running server picks the entry up within a second. Options understood:
//! `-t` (recipients from To:, Cc: and Bcc:, which is then removed), `-f FROM`, `-F NAME`,
//! `-i`/`-oi` (a lone dot does not end the message); other `-o…` and `-b…`/`-d…` flags of
//! other sendmails are accepted and ignored. Exit codes follow sysexits.h.

use crate::clock::unix_now;
use crate::config::Config;
use crate::delivery::{self, Resolution};
use crate::mail::{self, rfc5322_date};
use crate::smtp::Trace;
use crate::store::{Delivery, Incoming, Outbound, Spooled, Store};
use std::io::Read;

pub const EX_USAGE: i32 = 64;
pub const EX_DATAERR: i32 = 65;
pub const EX_NOUSER: i32 = 67;
pub const EX_TEMPFAIL: i32 = 75;

/// What the command line asked for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub extract_recipients: bool,
    pub from: Option<String>,
    pub full_name: Option<String>,
    pub ignore_dots: bool,
    pub recipients: Vec<String>,
}

/// Parses sendmail's arguments (without the program name).
pub fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            options.recipients.extend(it.by_ref().cloned());
            break;
        }
        let Some(flag) = arg.strip_prefix('-') else {
            options.recipients.push(arg.clone());
            continue;
        };
        let mut value = |inline: &str, name: &str| -> Result<String, String> {
            if !inline.is_empty() {
                return Ok(inline.to_string());
            }
            it.next().cloned().ok_or(format!("-{name} needs a value"))
        };
        match flag.chars().next() {
            Some('t') if flag == "t" => options.extract_recipients = true,
            Some('i') if flag == "i" => options.ignore_dots = true,
            Some('f') => options.from = Some(value(&flag[1..], "f")?),
            Some('r') => options.from = Some(value(&flag[1..], "r")?),
            Some('F') => options.full_name = Some(value(&flag[1..], "F")?),
            Some('o') if flag == "oi" => options.ignore_dots = true,
            // -oem, -odi, -bm, -v …: accepted for compatibility, no meaning here.
            Some('o' | 'b' | 'd' | 'v' | 'U') => {}
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    Ok(options)
}

/// Reads the message: LF or CRLF lines become CRLF; unless `ignore_dots`, a line with a
/// lone dot ends it. Fails past `max` bytes.
pub fn read_message(input: impl Read, ignore_dots: bool, max: u64) -> Result<Vec<u8>, String> {
    let mut raw = Vec::new();
    input
        .take(max + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("reading the message: {e}"))?;
    if raw.len() as u64 > max {
        return Err(format!("message larger than {max} bytes"));
    }
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if !ignore_dots && body == b"." {
            break;
        }
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    Ok(out)
}

/// The prepared message and its recipients.
pub struct Prepared {
    pub message: Vec<u8>,
    pub recipients: Vec<String>,
}

/// Adds recipients from the header (`-t`), drops Bcc:, and adds From:, Date: and
/// Message-ID: when missing.
pub fn prepare(
    message: &[u8],
    options: &Options,
    sender: &str,
    hostname: &str,
    now: i64,
    unique: &str,
) -> Prepared {
    let parts = mail::split(message);
    let (header, body) = (parts.header(message), parts.body(message));
    let mut recipients = options.recipients.clone();
    if options.extract_recipients {
        if let Some(parsed) = mail_parser::MessageParser::new().parse_headers(header) {
            for list in [parsed.to(), parsed.cc(), parsed.bcc()]
                .into_iter()
                .flatten()
            {
                for address in list.iter().filter_map(|a| a.address()) {
                    recipients.push(address.to_string());
                }
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    recipients.retain(|r| seen.insert(r.to_ascii_lowercase()));
    let mut out = Vec::with_capacity(message.len() + 256);
    let mut names = std::collections::HashSet::new();
    for field in mail::fields(header) {
        let name = field.name().to_ascii_lowercase();
        if name == "bcc" {
            continue;
        }
        names.insert(name);
        out.extend_from_slice(field.raw);
    }
    if !names.contains("from") {
        let from = match &options.full_name {
            Some(n) => format!(
                "From: \"{}\" <{sender}>\r\n",
                n.replace(['"', '\r', '\n'], "")
            ),
            None => format!("From: <{sender}>\r\n"),
        };
        out.extend_from_slice(from.as_bytes());
    }
    if !names.contains("date") {
        out.extend_from_slice(format!("Date: {}\r\n", rfc5322_date(now)).as_bytes());
    }
    if !names.contains("message-id") {
        out.extend_from_slice(format!("Message-ID: <{unique}@{hostname}>\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Prepared {
        message: out,
        recipients,
    }
}

/// The login name of the calling user, for the default sender.
fn login_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map_or_else(|| "root".to_string(), |u| u.name)
}

/// Runs the whole command; returns the exit code.
pub fn run(args: &[String], config: &Config, store: &Store) -> i32 {
    let options = match parse_args(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sendmail: {e}");
            return EX_USAGE;
        }
    };
    let message = match read_message(
        std::io::stdin().lock(),
        options.ignore_dots,
        config.limits.max_message_size,
    ) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("sendmail: {e}");
            return EX_DATAERR;
        }
    };
    let sender = options
        .from
        .clone()
        .unwrap_or_else(|| format!("{}@{}", login_name(), config.hostname));
    if !sender.is_empty() && crate::address::normalize_address(&sender).is_none() {
        eprintln!("sendmail: {sender:?} is not a mail address");
        return EX_USAGE;
    }
    let now = unix_now();
    let unique = {
        use rand_core::RngCore;
        format!("{:016x}", rand_core::OsRng.next_u64())
    };
    let prepared = prepare(&message, &options, &sender, &config.hostname, now, &unique);
    if prepared.recipients.is_empty() {
        eprintln!("sendmail: no recipients (give them as arguments or use -t)");
        return EX_USAGE;
    }
    let mut targets = Vec::new();
    let mut remote = Vec::new();
    // Copies forwarded on (aliases to other servers, Sieve redirects): queued apart, with
    // the sender rewritten by SRS unless it is one of ours.
    let mut forwards: Vec<String> = Vec::new();
    for r in &prepared.recipients {
        match delivery::resolve(&store.reader(), r) {
            Ok(Resolution::Local(resolved)) => delivery::merge_targets(&mut targets, &resolved),
            Ok(Resolution::NotLocal) if crate::address::normalize_address(r).is_some() => {
                remote.push((r.clone(), None, 0));
            }
            Ok(Resolution::Forward(original)) => remote.push((original, None, 0)),
            Ok(Resolution::Alias {
                local,
                remote: outside,
            }) => {
                delivery::merge_targets(&mut targets, &local);
                forwards.extend(outside);
            }
            Ok(Resolution::NotLocal) => {
                eprintln!("sendmail: {r:?} is not a mail address");
                return EX_NOUSER;
            }
            Ok(Resolution::UnknownUser) => {
                eprintln!("sendmail: {r}: no such user here");
                return EX_NOUSER;
            }
            Err(e) => {
                eprintln!("sendmail: {e}");
                return EX_TEMPFAIL;
            }
        }
    }
    let uid = nix::unistd::getuid();
    let trace = Trace {
        reverse_path: (!sender.is_empty()).then_some(sender.as_str()),
        helo: &format!("uid {uid}"),
        peer_ip: std::net::IpAddr::from([127, 0, 0, 1]),
        hostname: &config.hostname,
        protocol: "local",
        tls: None,
        id: &unique,
        recipient: None,
        date: now,
    };
    let prefix = trace.headers();
    let skip = crate::smtp::return_path_len(&prefix);
    let eight_bit = !prepared.message.is_ascii();
    // The recipients' Sieve scripts, as at SMTP delivery (the sender is ours: a redirect
    // needs no SRS).
    let scripted = match run_scripts(store, targets, &prefix, &prepared, &sender, now) {
        Ok(scripted) => scripted,
        Err(e) => {
            eprintln!("sendmail: {e}");
            return EX_TEMPFAIL;
        }
    };
    let targets = scripted.targets;
    // The header the notices and replies quote, kept before the message moves.
    let head = if scripted.verdicts.is_empty() {
        Vec::new()
    } else {
        mail::header_of(&prepared.message).to_vec()
    };
    forwards.extend(scripted.remote);
    forwards.sort();
    forwards.dedup();
    let outbound = (!remote.is_empty()).then(|| Outbound {
        sender: sender.clone(),
        eight_bit,
        recipients: remote,
        skip,
        ..Outbound::default()
    });
    let forwarded = match forward_copy(
        store,
        &config.hostname,
        &sender,
        &forwards,
        (&prefix, &prepared.message, skip),
        now,
    ) {
        Ok(forwarded) => forwarded,
        Err(e) => {
            eprintln!("sendmail: {e}");
            return EX_TEMPFAIL;
        }
    };
    let delivery = Delivery {
        message: Incoming::new(prefix, Spooled::Memory(prepared.message), now),
        targets,
        outbound,
    };
    let stored = delivery::deliver_now(store, delivery).and_then(|accepted| match forwarded {
        Some(copy) => delivery::deliver_now(store, copy).map(|_| accepted),
        None => Ok(accepted),
    });
    match stored {
        Ok(_) => {
            let envelope = delivery::after::Envelope {
                sender: &sender,
                envid: None,
                hostname: &config.hostname,
                head: &head,
                now,
            };
            if let Err(e) = delivery::after::carry_out(store, &scripted.verdicts, &envelope) {
                eprintln!("sendmail: a Sieve reject notice: {e}");
                return EX_TEMPFAIL;
            }
            // Tell a running server (another process) to look: local copies and queue.
            if let Err(e) = store.touch_queue() {
                log::warn!("sendmail: {e}");
            }
            0
        }
        Err(e) => {
            eprintln!("sendmail: could not store the message: {e}");
            EX_TEMPFAIL
        }
    }
}

/// The forwarded copy of (our trace prefix, the message, the Return-Path's length):
/// queued to `forwards` with an SRS sender when the sender is not one of ours (else SPF
/// at the next hop would fail it).
fn forward_copy(
    store: &Store,
    hostname: &str,
    sender: &str,
    forwards: &[String],
    (prefix, message, skip): (&[u8], &[u8], u64),
    now: i64,
) -> crate::store::Result<Option<Delivery>> {
    if forwards.is_empty() {
        return Ok(None);
    }
    let ours = match sender.rsplit_once('@') {
        Some((_, domain)) => store.is_local_domain(domain)?,
        None => true,
    };
    let sender = if ours {
        sender.to_string()
    } else {
        let domain = delivery::postmaster_domain(&store.reader(), hostname)?.unwrap_or_default();
        delivery::srs::Srs::new(&store.srs_secret()?).forward(sender, &domain, now)
    };
    Ok(Some(Delivery {
        message: Incoming::new(prefix.to_vec(), Spooled::Memory(message.to_vec()), now),
        targets: Vec::new(),
        outbound: Some(Outbound {
            sender,
            eight_bit: !message.is_ascii(),
            recipients: forwards.iter().map(|f| (f.clone(), None, 0)).collect(),
            skip,
            ..Outbound::default()
        }),
    }))
}

/// Where the copies go once the recipients' scripts had their say.
struct Scripted {
    targets: Vec<crate::store::Target>,
    /// Redirects to other servers.
    remote: Vec<String>,
    verdicts: Vec<(String, String, delivery::filter::Verdict)>,
}

fn run_scripts(
    store: &Store,
    targets: Vec<crate::store::Target>,
    prefix: &[u8],
    prepared: &Prepared,
    sender: &str,
    now: i64,
) -> crate::store::Result<Scripted> {
    let mut out = Scripted {
        targets: Vec::new(),
        remote: Vec::new(),
        verdicts: Vec::new(),
    };
    let mut message = prefix.to_vec();
    message.extend_from_slice(&prepared.message);
    for target in targets {
        let account = target.account.clone();
        let recipient = prepared
            .recipients
            .iter()
            .find(|r| r.eq_ignore_ascii_case(&account))
            .cloned()
            .unwrap_or_else(|| account.clone());
        let input = crate::sieve::input::Input {
            message: &message,
            size: message.len() as u64,
            envelope_from: sender,
            envelope_to: &recipient,
            now,
            local_zone: 0,
            spam_percent: None,
        };
        let Some(verdict) = delivery::filter::filter(store, &target, &input)? else {
            delivery::merge_targets(&mut out.targets, &[target]);
            continue;
        };
        delivery::merge_targets(&mut out.targets, &verdict.targets);
        for address in &verdict.redirects {
            match delivery::resolve(&store.reader(), address)? {
                Resolution::Local(local) => delivery::merge_targets(&mut out.targets, &local),
                Resolution::NotLocal => out.remote.push(address.clone()),
                Resolution::Forward(original) => out.remote.push(original),
                Resolution::Alias { local, remote } => {
                    delivery::merge_targets(&mut out.targets, &local);
                    out.remote.extend(remote);
                }
                Resolution::UnknownUser => {
                    delivery::merge_targets(&mut out.targets, std::slice::from_ref(&target))
                }
            }
        }
        out.verdicts.push((account, recipient, verdict));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sendmail_options() {
        let o = parse_args(&args(&[
            "-t",
            "-oi",
            "-f",
            "cron@box.test",
            "-FCron Daemon",
            "a@b.test",
        ]))
        .unwrap();
        assert!(o.extract_recipients && o.ignore_dots);
        assert_eq!(o.from.as_deref(), Some("cron@box.test"));
        assert_eq!(o.full_name.as_deref(), Some("Cron Daemon"));
        assert_eq!(o.recipients, ["a@b.test"]);
        let o = parse_args(&args(&["-fme@x.test", "-odi", "--", "-odd@x.test"])).unwrap();
        assert_eq!(o.from.as_deref(), Some("me@x.test"));
        assert_eq!(o.recipients, ["-odd@x.test"]);
        assert!(parse_args(&args(&["-f"])).is_err());
        assert!(parse_args(&args(&["-q"])).is_err());
    }

    #[test]
    fn reading_ends_at_a_lone_dot_unless_told_not_to() {
        let input = b"Subject: x\n\nline\n.\nafter\n";
        assert_eq!(
            read_message(&input[..], false, 1000).unwrap(),
            b"Subject: x\r\n\r\nline\r\n"
        );
        assert_eq!(
            read_message(&input[..], true, 1000).unwrap(),
            b"Subject: x\r\n\r\nline\r\n.\r\nafter\r\n"
        );
        assert!(read_message(&input[..], true, 5).is_err());
    }

    #[test]
    fn prepare_extracts_recipients_and_fills_in_the_header() {
        let message = b"To: Bob <bob@remote.test>, alice@example.org\r\nCc: carol@remote.test\r\nBcc: secret@remote.test\r\nSubject: report\r\n\r\nbody\r\n";
        let options = Options {
            extract_recipients: true,
            recipients: vec!["extra@remote.test".into(), "BOB@remote.test".into()],
            ..Options::default()
        };
        let p = prepare(message, &options, "root@box.test", "box.test", 0, "u1");
        assert_eq!(
            p.recipients,
            [
                "extra@remote.test",
                "BOB@remote.test",
                "alice@example.org",
                "carol@remote.test",
                "secret@remote.test"
            ]
        );
        let text = String::from_utf8(p.message).unwrap();
        assert!(!text.contains("Bcc") && !text.contains("secret"));
        assert!(text.contains("From: <root@box.test>\r\n"));
        assert!(text.contains("Message-ID: <u1@box.test>\r\n"));
        assert!(text.contains("Date: Thu, 1 Jan 1970"));
        assert!(text.ends_with("\r\n\r\nbody\r\n"));
    }
}
