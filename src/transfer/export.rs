//! `letterbox export mbox|maildir`: an account's mailboxes as files other programs read.
//!
//! mbox: one mboxrd file per mailbox, LF line ends, `From <Return-Path or MAILER-DAEMON>
//! <internal date>`; flags are not written (mbox has no standard place for them: export
//! to Maildir to keep them). Maildir: each message in `cur/` with its flags as info
//! letters, keywords as Dovecot's letters with a `dovecot-keywords` file, the internal
//! date as the file's time; a whole account is a Maildir++ tree, as Dovecot keeps one.
//! `$Forwarded` is written both as `P` (for mutt) and as a keyword letter (Dovecot shows
//! keywords only from letters).
//! Messages are read chunk by chunk, never whole.

use super::Summary;
use crate::mail::maildir;
use crate::mail::mbox;
use crate::store::{Mailbox, MessageRecord, Store};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A new file only its owner can read: exports hold someone's mail.
fn private_file(path: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Creates a directory (and its parents) only its owner can enter.
fn private_dir(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Feeds a message's stored bytes to `sink`, one chunk at a time.
fn each_chunk(
    store: &Store,
    record: &MessageRecord,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<(), String> {
    for index in 0..crate::store::chunk_count(record.size) {
        let chunk = store
            .read_chunk(record.blob, index)
            .map_err(|e| e.to_string())?;
        sink(&chunk).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The envelope sender an mbox import recorded, else the one the message's Return-Path:
/// names (empty when none).
fn return_path(store: &Store, record: &MessageRecord) -> String {
    if let Ok(Some(sender)) = store.import_sender(record.blob) {
        return sender;
    }
    let Ok(first) = store.read_chunk(record.blob, 0) else {
        return String::new();
    };
    crate::mail::header::fields(crate::mail::header_of(&first))
        .find(|f| f.is("Return-Path"))
        .map(|f| {
            String::from_utf8_lossy(&f.value())
                .trim_matches(|c| c == '<' || c == '>' || c == ' ')
                .to_string()
        })
        .unwrap_or_default()
}

fn mailbox(store: &Store, account: &str, name: &str) -> Result<Mailbox, String> {
    store
        .mailbox(account, name)
        .map_err(|e| e.to_string())?
        .filter(|m| !m.noselect)
        .ok_or_else(|| format!("{account} has no mailbox {name}"))
}

/// Writes one mailbox as an mbox file at `dest` (which must not exist).
pub fn mbox_mailbox(
    store: &Store,
    account: &str,
    name: &str,
    dest: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, String> {
    let mailbox = mailbox(store, account, name)?;
    let partial = PathBuf::from(format!("{}.partial", dest.display()));
    if dest.exists() {
        return Err(format!("{} exists already", dest.display()));
    }
    // A `.partial` is what an interrupted export left.
    let _ = std::fs::remove_file(&partial);
    let file = private_file(&partial)?;
    let mut writer = mbox::Writer::new(std::io::BufWriter::with_capacity(64 * 1024, file));
    let mut count = 0;
    for (_, record) in store.messages(mailbox.id).map_err(|e| e.to_string())? {
        let sender = return_path(store, &record);
        let mut message = writer
            .begin(&sender, record.internal_date)
            .map_err(|e| e.to_string())?;
        each_chunk(store, &record, &mut |b| message.write(b))?;
        message.finish().map_err(|e| e.to_string())?;
        count += 1;
        progress(1);
    }
    let file = writer
        .into_inner()
        .into_inner()
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    file.sync_all()
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    std::fs::rename(&partial, dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    Ok(count)
}

/// Every mailbox of `account` as an mbox file in `dir`, named after the mailbox with `.`
/// between levels (`Archive/2024` is `Archive.2024`).
pub fn mbox_account(
    store: &Store,
    account: &str,
    dir: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, String> {
    private_dir(dir)?;
    let mut summary = Summary::default();
    for mailbox in store.mailboxes(account).map_err(|e| e.to_string())? {
        if mailbox.noselect {
            continue;
        }
        let file = dir.join(mailbox.name.replace('/', "."));
        match mbox_mailbox(store, account, &mailbox.name, &file, progress) {
            Ok(n) => summary.mailboxes.push((mailbox.name, n, 0)),
            Err(e) => summary.failed.push(e),
        }
    }
    Ok(summary)
}

/// Writes one mailbox as a Maildir folder at `dir` (created; it must hold no messages).
pub fn maildir_mailbox(
    store: &Store,
    account: &str,
    name: &str,
    dir: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, String> {
    let mailbox = mailbox(store, account, name)?;
    for sub in ["cur", "new", "tmp"] {
        private_dir(&dir.join(sub))?;
    }
    let busy = ["cur", "new"].iter().any(|sub| {
        std::fs::read_dir(dir.join(sub)).is_ok_and(|mut entries| entries.next().is_some())
    });
    if busy {
        return Err(format!("{} holds messages already", dir.display()));
    }
    let records = store.messages(mailbox.id).map_err(|e| e.to_string())?;
    // Dovecot's letters a..z, for the first 26 keywords in order of appearance.
    let mut letters: Vec<String> = Vec::new();
    for (_, record) in &records {
        for k in &record.keywords {
            if !letters.contains(k) && letters.len() < maildir::KEYWORD_LETTERS {
                letters.push(k.clone());
            }
        }
    }
    if !letters.is_empty() {
        let path = dir.join("dovecot-keywords");
        std::fs::write(&path, maildir::keywords_file(&letters))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let pid = std::process::id();
    let mut count = 0;
    for (uid, record) in records {
        let unique = format!(
            "{}.M{uid:010}P{pid}V{}.letterbox",
            record.internal_date.max(0),
            mailbox.uid_validity
        );
        let temp = dir.join("tmp").join(&unique);
        let file = private_file(&temp)?;
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, file);
        let mut cr = false;
        each_chunk(store, &record, &mut |bytes| {
            lf_only(&mut out, bytes, &mut cr)
        })?;
        if cr {
            out.write_all(b"\r").map_err(|e| e.to_string())?;
        }
        let file = out.into_inner().map_err(|e| e.to_string())?;
        let date = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(record.internal_date.max(0) as u64);
        file.set_modified(date)
            .map_err(|e| format!("{}: {e}", temp.display()))?;
        file.sync_all()
            .map_err(|e| format!("{}: {e}", temp.display()))?;
        let size = file.metadata().map_or(0, |m| m.len());
        let indexes: Vec<usize> = record
            .keywords
            .iter()
            .filter_map(|k| letters.iter().position(|l| l == k))
            .collect();
        let passed = record.keywords.iter().any(|k| k == maildir::FORWARDED);
        let info = maildir::info(record.flags, passed, &indexes);
        let name = format!("{unique},S={size}{info}");
        std::fs::rename(&temp, dir.join("cur").join(&name)).map_err(|e| format!("{name}: {e}"))?;
        count += 1;
        progress(1);
    }
    Ok(count)
}

/// CRLF line ends written as LF (a `\r` at a chunk's end waits for the next chunk).
fn lf_only(out: &mut dyn Write, bytes: &[u8], cr: &mut bool) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let mut bytes = bytes;
    if *cr {
        *cr = false;
        if bytes.first() != Some(&b'\n') {
            out.write_all(b"\r")?;
        }
    }
    if bytes.last() == Some(&b'\r') {
        *cr = true;
        bytes = &bytes[..bytes.len() - 1];
    }
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', bytes) {
        if i > 0 && bytes[i - 1] == b'\r' {
            out.write_all(&bytes[start..i - 1])?;
            start = i;
        }
    }
    out.write_all(&bytes[start..])
}

/// Every mailbox of `account` as a Maildir++ tree at `root`.
pub fn maildir_account(
    store: &Store,
    account: &str,
    root: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, String> {
    let mut summary = Summary::default();
    let mut subscriptions = String::new();
    for mailbox in store.mailboxes(account).map_err(|e| e.to_string())? {
        if mailbox.noselect {
            continue;
        }
        let dir = match maildir::mailbox_folder(&mailbox.name) {
            Some(folder) => {
                subscriptions.push_str(&mailbox.name);
                subscriptions.push('\n');
                root.join(folder)
            }
            None => root.to_path_buf(),
        };
        match maildir_mailbox(store, account, &mailbox.name, &dir, progress) {
            Ok(n) => summary.mailboxes.push((mailbox.name, n, 0)),
            Err(e) => summary.failed.push(e),
        }
    }
    // Dovecot lists the folders it finds; `subscriptions` makes mail clients show them.
    let path = root.join("subscriptions");
    std::fs::write(&path, subscriptions).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::lf_only;

    #[test]
    fn crlf_becomes_lf_across_chunks() {
        let mut out = Vec::new();
        let mut cr = false;
        for piece in [&b"a\r\nb\r"[..], b"\nc\rd\r", b"", b"x\r\n"] {
            lf_only(&mut out, piece, &mut cr).unwrap();
        }
        assert_eq!(out, b"a\nb\nc\rd\rx\n");
    }
}
