//! `letterbox import mbox|maildir`: files into an account's mailboxes.
//!
//! Dates: an mbox message's `From ` line, a Maildir file's modification time, else its
//! Date: header, else now. Flags: Maildir's info letters and Dovecot's keyword letters
//! (`dovecot-keywords`); an mbox message's `Status:` (`R` seen) and `X-Status:` (`A`
//! answered, `F` flagged, `T` draft, `D` deleted) headers, which mutt and Dovecot write.
//! Messages are stored as they are, with CRLF line ends.
//!
//! Resuming: the mark of an mbox is the byte offset of the next message's `From ` line,
//! of a Maildir folder the last file taken in name order; both commit with the messages.

use super::{header_date, place, Batch, Collector, Pending, Summary};
use crate::mail::maildir;
use crate::mail::mbox::{self, Quoting};
use crate::store::{flags, Incoming, SpecialUse, Store};
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Flags from an mbox message's `Status:` and `X-Status:` headers.
fn mbox_flags(head: &[u8]) -> u8 {
    let mut bits = 0;
    for field in crate::mail::header::fields(crate::mail::header_of(head)) {
        let value = field.value();
        if field.is("Status") {
            if value.contains(&b'R') {
                bits |= flags::SEEN;
            }
        } else if field.is("X-Status") {
            for (c, bit) in [
                (b'A', flags::ANSWERED),
                (b'F', flags::FLAGGED),
                (b'T', flags::DRAFT),
                (b'D', flags::DELETED),
            ] {
                if value.contains(&c) {
                    bits |= bit;
                }
            }
        }
    }
    bits
}

fn source_key(kind: &str, path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    format!("{kind}:{}", path.display())
}

/// Imports one mbox file into `mailbox` of `account`.
pub fn mbox_file(
    store: &Store,
    account: &str,
    path: &Path,
    (mailbox, special_use): (&str, Option<SpecialUse>),
    quoting: Quoting,
    progress: &mut dyn FnMut(u64),
) -> Result<(u64, u64), String> {
    let source = source_key("mbox", path) + "\0" + mailbox;
    let mut batch = Batch::new(store, account, mailbox, special_use, &source);
    let mut mark = batch.mark()?.unwrap_or_default();
    let skipped = mark.count;
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let size = file.metadata().map_or(0, |m| m.len());
    if mark.position > size {
        return Err(format!(
            "{} is shorter than when it was imported before: pass --restart to import it again",
            path.display()
        ));
    }
    file.seek(SeekFrom::Start(mark.position))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut reader = mbox::Reader::new(
        BufReader::with_capacity(64 * 1024, file),
        quoting,
        mark.position,
    );
    loop {
        let mut collector = Collector::new(store);
        let envelope = reader
            .next_message(&mut |bytes| collector.write(bytes))
            .map_err(|e| match mark.position {
                0 => format!("{}: {e}", path.display()),
                at => format!(
                    "{}: {e} (resuming at byte {at}: if the file was rewritten, pass --restart)",
                    path.display()
                ),
            })?;
        let Some(envelope) = envelope else {
            break;
        };
        let (body, head) = collector.finish();
        let date = envelope
            .date
            .or_else(|| header_date(&head))
            .unwrap_or_else(crate::clock::unix_now);
        mark.position = reader.position();
        batch.add(
            Pending {
                message: Incoming::new(Vec::new(), body, date),
                sender: envelope.sender,
                flags: mbox_flags(&head),
                keywords: Vec::new(),
            },
            &mut mark,
            progress,
        )?;
    }
    batch.commit(&mark)?;
    Ok((batch.committed, skipped))
}

/// Imports the mbox files under `dir` (recursively), each into the mailbox its relative
/// path names (`.` and `/` both separate levels; a file called `inbox` is INBOX).
pub fn mbox_tree(
    store: &Store,
    account: &str,
    dir: &Path,
    quoting: Quoting,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, String> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    let mut summary = Summary::default();
    let ours = super::ours(store, account)?;
    for (path, relative) in files {
        let name = relative.replace('.', "/");
        let (name, special) = if name.eq_ignore_ascii_case("inbox") {
            ("INBOX".to_string(), None)
        } else {
            place(&ours, &name, None)
        };
        match mbox_file(store, account, &path, (&name, special), quoting, progress) {
            Ok((taken, skipped)) => summary.mailboxes.push((name, taken, skipped)),
            Err(e) => summary.failed.push(e),
        }
    }
    Ok(summary)
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) -> Result<(), String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        // Symbolic links are not followed: a loop would never end.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            collect_files(root, &path, out)?;
        } else if meta.is_file() {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            out.push((path.clone(), relative.to_string_lossy().into_owned()));
        }
    }
    Ok(())
}

/// The message files of one Maildir folder (`cur/` and `new/`), by unique name.
fn maildir_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let mut files = Vec::new();
    for sub in ["cur", "new"] {
        let path = dir.join(sub);
        let entries = match std::fs::read_dir(&path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !name.starts_with('.') && entry.path().is_file() {
                files.push((name, entry.path()));
            }
        }
    }
    files.sort_by(|a, b| maildir::unique(&a.0).cmp(maildir::unique(&b.0)));
    Ok(files)
}

/// Whether `dir` is a Maildir folder.
pub fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() || dir.join("new").is_dir()
}

/// Imports one Maildir folder into `mailbox`; `keywords` are the letters' keywords of
/// its `dovecot-keywords`.
pub fn maildir_folder(
    store: &Store,
    account: &str,
    dir: &Path,
    (mailbox, special_use): (&str, Option<SpecialUse>),
    progress: &mut dyn FnMut(u64),
) -> Result<(u64, u64), String> {
    let letters = std::fs::read_to_string(dir.join("dovecot-keywords"))
        .map(|t| maildir::parse_keywords_file(&t))
        .unwrap_or_default();
    let source = source_key("maildir", dir) + "\0" + mailbox;
    let mut batch = Batch::new(store, account, mailbox, special_use, &source);
    let mut mark = batch.mark()?.unwrap_or_default();
    let skipped = mark.count;
    for (listed, listed_path) in maildir_files(dir)? {
        let unique = maildir::unique(&listed).to_string();
        if !mark.last.is_empty() && unique.as_str() <= mark.last.as_str() {
            continue;
        }
        let (name, file) = match std::fs::File::open(&listed_path) {
            Ok(f) => (listed, f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A mail client moved it (new/ to cur/, or new flags) meanwhile: find it
                // again by its unique name; if it is gone, it was deleted.
                match maildir_files(dir)?
                    .into_iter()
                    .find(|(n, _)| maildir::unique(n) == unique)
                    .and_then(|(n, p)| Some((n, std::fs::File::open(p).ok()?)))
                {
                    Some(found) => found,
                    None => continue,
                }
            }
            Err(e) => return Err(format!("{}: {e}", listed_path.display())),
        };
        let label = dir.join(&name);
        let mtime = file
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64);
        let mut collector = Collector::new(store);
        let mut input = BufReader::with_capacity(64 * 1024, file);
        crlf_copy(&mut input, &mut |b| collector.write(b))
            .map_err(|e| format!("{}: {e}", label.display()))?;
        let (body, head) = collector.finish();
        let (bits, passed, indexes) = maildir::parse_info(&name);
        let mut keywords: Vec<String> = indexes
            .iter()
            .filter_map(|i| letters.iter().find(|(n, _)| n == i).map(|(_, k)| k.clone()))
            .collect();
        if passed && !keywords.iter().any(|k| k == maildir::FORWARDED) {
            keywords.push(maildir::FORWARDED.to_string());
        }
        let date = mtime
            .or_else(|| header_date(&head))
            .unwrap_or_else(crate::clock::unix_now);
        mark.last = unique;
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

/// Imports a Maildir++ tree: the root's messages into INBOX, each `.A.B` folder into
/// `A/B`.
pub fn maildir_tree(
    store: &Store,
    account: &str,
    root: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, String> {
    let mut summary = Summary::default();
    let mut folders = vec![(root.to_path_buf(), "INBOX".to_string())];
    let mut entries: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| format!("{}: {e}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(mailbox) = maildir::folder_mailbox(name) {
            if is_maildir(&path) {
                folders.push((path.clone(), mailbox));
            }
        }
    }
    let ours = super::ours(store, account)?;
    for (dir, mailbox) in folders {
        if !is_maildir(&dir) {
            continue;
        }
        let (mailbox, special) = if mailbox == "INBOX" {
            (mailbox, None)
        } else {
            place(&ours, &mailbox, None)
        };
        match maildir_folder(store, account, &dir, (&mailbox, special), progress) {
            Ok((taken, skipped)) => summary.mailboxes.push((mailbox, taken, skipped)),
            Err(e) => summary.failed.push(e),
        }
    }
    Ok(summary)
}

/// Copies a file's bytes with bare LF line ends made CRLF.
fn crlf_copy(
    input: &mut dyn std::io::BufRead,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut last_cr = false;
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        let n = buf.len();
        let mut start = 0;
        for i in memchr::memchr_iter(b'\n', buf) {
            let before_cr = if i == 0 { last_cr } else { buf[i - 1] == b'\r' };
            if !before_cr {
                sink(&buf[start..i])?;
                sink(b"\r\n")?;
                start = i + 1;
            }
        }
        sink(&buf[start..])?;
        last_cr = buf[n - 1] == b'\r';
        input.consume(n);
    }
}

/// Forgets the marks of earlier imports from `path` (a file, or a tree and all it holds)
/// into `account`, so that it is read again from the start.
pub fn restart(store: &Store, account: &str, kind: &str, path: &Path) -> Result<usize, String> {
    let key = source_key(kind, path);
    let mut forgotten = 0;
    // The file or folder itself, then what lies under it (not its namesakes: "a2" for "a").
    for prefix in [format!("{key}\0"), format!("{key}/")] {
        forgotten += store
            .forget_imports(account, &prefix)
            .map_err(|e| e.to_string())?;
    }
    Ok(forgotten)
}
