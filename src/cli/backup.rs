//! `letterbox backup`, `restore` and `verify` (see [`crate::backup`]).

use super::progress::{Progress, Unit};
use super::{config_path, data_dir, load_config, open_store, Cli};
use crate::backup::{self, Encryption, Key, Options};
use crate::store::{ServeLock, Store};
use age::secrecy::SecretString;
use clap::Args;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// A file, a directory (the backup gets a dated name in it), or - for stdout.
    dest: String,
    /// Do not gzip the archive.
    #[arg(long)]
    no_compress: bool,
    /// Encrypt to a passphrase, asked on the terminal.
    #[arg(long, conflicts_with_all = ["passphrase_file", "recipient"])]
    passphrase: bool,
    /// Encrypt to the passphrase on this file's first line.
    #[arg(long, conflicts_with = "recipient")]
    passphrase_file: Option<PathBuf>,
    /// Encrypt to an age recipient (age1...); may be repeated.
    #[arg(long)]
    recipient: Vec<String>,
    /// With a directory: keep only the newest N backups there.
    #[arg(long)]
    keep: Option<usize>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// A backup file, or - for stdin.
    src: String,
    /// Restore over an existing store (it is moved aside, not deleted).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    key: KeyArgs,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// A backup file to check instead of the store (- for stdin).
    backup: Option<String>,
    #[command(flatten)]
    key: KeyArgs,
}

#[derive(Args, Debug)]
pub struct KeyArgs {
    /// The backup is encrypted to a passphrase: ask for it on the terminal.
    #[arg(long)]
    passphrase: bool,
    /// The backup is encrypted to the passphrase on this file's first line.
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
    /// An age identity file (AGE-SECRET-KEY-1...) that opens the backup.
    #[arg(long)]
    identity: Option<PathBuf>,
}

fn passphrase(ask: bool, file: Option<&Path>, twice: bool) -> Result<Option<SecretString>, String> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let line = text.lines().next().unwrap_or("").to_string();
        if line.is_empty() {
            return Err(format!(
                "{}: no passphrase on its first line",
                file.display()
            ));
        }
        return Ok(Some(SecretString::from(line)));
    }
    if !ask {
        return Ok(None);
    }
    if !std::io::stdin().is_terminal() {
        return Err("no terminal to ask for the passphrase: use --passphrase-file".into());
    }
    let first = super::prompt_hidden("Passphrase: ")?;
    if twice && super::prompt_hidden("Repeat passphrase: ")? != first {
        return Err("passphrases do not match".into());
    }
    if first.is_empty() {
        return Err("empty passphrase".into());
    }
    Ok(Some(SecretString::from(first)))
}

impl KeyArgs {
    fn key(&self) -> Result<Key, String> {
        if let Some(path) = &self.identity {
            let file = age::IdentityFile::from_file(path.display().to_string())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let ids = file
                .into_identities()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            return Ok(Key::Identities(ids));
        }
        Ok(
            match passphrase(self.passphrase, self.passphrase_file.as_deref(), false)? {
                Some(p) => Key::Passphrase(p),
                None => Key::None,
            },
        )
    }
}

/// Lowers this process's CPU (nice 10) and I/O priority (best effort, lowest level), so a
/// backup yields to the deliveries and IMAP sessions it runs beside.
fn yield_to_the_server() {
    // SAFETY: plain system calls on this process, with constant arguments.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
        // ioprio_set(IOPRIO_WHO_PROCESS, self, IOPRIO_CLASS_BE << 13 | 7).
        libc::syscall(libc::SYS_ioprio_set, 1, 0, (2 << 13) | 7);
    }
}

pub fn backup_command(cli: &Cli, args: &BackupArgs) -> Result<(), String> {
    yield_to_the_server();
    let encryption = if !args.recipient.is_empty() {
        let list = args
            .recipient
            .iter()
            .map(|r| r.parse().map_err(|e| format!("recipient {r:?}: {e}")))
            .collect::<Result<Vec<age::x25519::Recipient>, String>>()?;
        Encryption::Recipients(list)
    } else {
        match passphrase(args.passphrase, args.passphrase_file.as_deref(), true)? {
            Some(p) => Encryption::Passphrase(p),
            None => Encryption::None,
        }
    };
    let options = Options {
        compress: !args.no_compress,
        encryption,
    };
    let config = load_config(cli)?;
    let dir = data_dir(cli, &config);
    let store = open_store(cli)?;
    let config_file = config_path(cli);
    let total = std::fs::metadata(dir.join("mail/data.mdb"))
        .ok()
        .map(|m| m.len());
    let mut progress = Progress::new("backup", Unit::Bytes, total);
    let started = std::time::Instant::now();
    if args.dest == "-" {
        if std::io::stdout().is_terminal() {
            return Err("refusing to write a backup to a terminal: redirect stdout".into());
        }
        let out = Box::new(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        ));
        let written = backup::write(
            &store,
            &dir,
            config_file.as_deref(),
            out,
            &options,
            &mut |n| progress.advance(n),
        )?;
        progress.finish();
        log::info!(
            "backup: {} files, store {} bytes, in {:.1} s",
            written.files,
            written.store_bytes,
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let dest = PathBuf::from(&args.dest);
    let (path, in_dir) = if dest.is_dir() {
        let name = backup::file_name(crate::clock::unix_now(), &options.suffix());
        (dest.join(name), true)
    } else {
        (dest.clone(), false)
    };
    if args.keep.is_some() && !in_dir {
        return Err("--keep needs a directory as the destination".into());
    }
    let partial = PathBuf::from(format!("{}.partial", path.display()));
    // Keys, password hashes and all the mail: for the owner's eyes only.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    let sync = file.try_clone().map_err(|e| e.to_string())?;
    let out = Box::new(std::io::BufWriter::with_capacity(64 * 1024, file));
    let result = backup::write(
        &store,
        &dir,
        config_file.as_deref(),
        out,
        &options,
        &mut |n| progress.advance(n),
    )
    .and_then(|w| sync.sync_all().map(|_| w).map_err(|e| e.to_string()));
    progress.finish();
    let written = match result {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "backup written to {} ({size} bytes; {} files, store {} bytes, {:.1} s)",
        path.display(),
        written.files,
        written.store_bytes,
        started.elapsed().as_secs_f64()
    );
    if let Some(keep) = args.keep {
        for gone in backup::prune(&dest, keep) {
            println!("deleted the older backup {}", gone.display());
        }
    }
    Ok(())
}

fn open_source(src: &str) -> Result<Box<dyn std::io::Read>, String> {
    if src == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    let file = std::fs::File::open(src).map_err(|e| format!("{src}: {e}"))?;
    Ok(Box::new(file))
}

/// The sibling directory `<data_dir><suffix>` (same file system: renames are atomic).
fn beside(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

pub fn restore_command(cli: &Cli, args: &RestoreArgs) -> Result<(), String> {
    // On a fresh box the configuration may not exist yet: the backup brings it.
    let config = match &cli.config {
        Some(path) if !path.exists() => crate::config::Config::embedded_default(),
        _ => load_config(cli)?,
    };
    let dir = std::path::absolute(data_dir(cli, &config)).map_err(|e| e.to_string())?;
    let store_file = dir.join("mail/data.mdb");
    // Held until the end, so that no server starts on the store being replaced.
    let mut _lock = None;
    if dir.exists() {
        _lock = Some(
            ServeLock::take(&dir)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| {
                    format!(
                        "a letterbox is serving {}: stop it before restoring",
                        dir.display()
                    )
                })?,
        );
        if store_file.exists() && !args.force {
            return Err(format!(
                "{} holds a store already: pass --force to restore over it (it is moved aside, not deleted)",
                dir.display()
            ));
        }
        if is_mount_point(&dir) {
            return Err(format!(
                "{} is a mount point, which cannot be moved aside: set data_dir to a directory inside it",
                dir.display()
            ));
        }
    }
    let key = args.key.key()?;
    let opened = backup::open(open_source(&args.src)?, &key)?;
    let staging = beside(&dir, ".restoring");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    let fail = |why: String| {
        let _ = std::fs::remove_dir_all(&staging);
        Err(format!("{why}; nothing was restored"))
    };
    let mut progress = Progress::new("restore", Unit::Bytes, None);
    let extracted = backup::extract(opened, &staging, &mut |n| progress.advance(n));
    progress.finish();
    let extracted = match extracted {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    // The restored store must open (an older schema is upgraded here) and be sound.
    let verdict = Store::open(&staging, crate::store::map_size(&config, &staging))
        .and_then(|store| store.verify())
        .map_err(|e| e.to_string());
    match verdict {
        Ok(v) if v.problems.is_empty() => {}
        Ok(v) => {
            return fail(format!(
                "the backup's store is not sound ({})",
                v.problems.join("; ")
            ))
        }
        Err(e) => return fail(format!("the backup's store does not open: {e}")),
    }
    let restored_config = extracted.config.as_ref().map(|from| {
        let kept = staging.join("restored-letterbox.toml");
        let _ = std::fs::rename(from, &kept);
        let _ = std::fs::remove_dir(staging.join("config"));
        kept
    });
    let mut aside = None;
    if dir.exists() {
        let stamp = crate::mail::date::file_stamp(crate::clock::unix_now());
        let path = beside(&dir, &format!(".before-restore-{stamp}"));
        if let Err(e) = std::fs::rename(&dir, &path) {
            return fail(format!("{}: {e}", dir.display()));
        }
        aside = Some(path);
    }
    if let Err(e) = std::fs::rename(&staging, &dir) {
        if let Some(path) = &aside {
            let _ = std::fs::rename(path, &dir);
        }
        return fail(format!("{}: {e}", dir.display()));
    }
    if let Some(path) = aside {
        println!("the store that was there is now in {}", path.display());
    }
    println!(
        "restored {} files ({} bytes) into {}",
        extracted.files,
        extracted.bytes,
        dir.display()
    );
    if let Some(kept) = restored_config {
        let kept = dir.join(kept.file_name().unwrap_or_default());
        if let Ok(theirs) = crate::config::Config::load(&kept) {
            let named = theirs
                .data_dir
                .as_ref()
                .and_then(|d| std::path::absolute(d).ok());
            if named.as_ref().is_some_and(|d| *d != dir) {
                println!(
                    "note: the backup's configuration names data_dir {}, and the store is in {}",
                    named.unwrap_or_default().display(),
                    dir.display()
                );
            }
        }
        match config_path(cli) {
            Some(current) if std::fs::read(&current).ok() == std::fs::read(&kept).ok() => {
                let _ = std::fs::remove_file(&kept);
            }
            Some(current) if current.exists() => println!(
                "the backup's configuration differs from {}: it is in {}",
                current.display(),
                kept.display()
            ),
            _ => {
                let target = cli
                    .config
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_CONFIG_PATH));
                if let Some(parent) = target.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                std::fs::copy(&kept, &target).map_err(|e| format!("{}: {e}", target.display()))?;
                let _ = std::fs::remove_file(&kept);
                println!("restored the configuration to {}", target.display());
            }
        }
    }
    Ok(())
}

/// A new directory `<data_dir>.verify-<random>` only we can enter.
fn private_scratch(data_dir: &Path) -> Result<PathBuf, String> {
    use rand_core::RngCore;
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::path::absolute(data_dir).map_err(|e| e.to_string())?;
    let path = beside(
        &dir,
        &format!(".verify-{:016x}", rand_core::OsRng.next_u64()),
    );
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Whether `dir` is the root of a mounted file system (another device than its parent).
fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let parent = dir.parent().unwrap_or(Path::new("/"));
    match (std::fs::metadata(dir), std::fs::metadata(parent)) {
        (Ok(d), Ok(p)) => d.dev() != p.dev() || d.ino() == p.ino(),
        _ => false,
    }
}

pub fn verify_command(cli: &Cli, args: &VerifyArgs) -> Result<(), String> {
    let (verdict, what) = match &args.backup {
        None => (
            open_store(cli)?.verify().map_err(|e| e.to_string())?,
            "the store".to_string(),
        ),
        Some(src) => {
            let key = args.key.key()?;
            let opened = backup::open(open_source(src)?, &key)?;
            // Beside the data dir, on its disk (the appliance's /tmp is memory), and private.
            let config = load_config(cli)?;
            let scratch = private_scratch(&data_dir(cli, &config))?;
            let result = backup::extract(opened, &scratch, &mut |_| {}).and_then(|x| {
                let store = Store::open(&scratch, crate::store::map_size(&config, &scratch))
                    .map_err(|e| e.to_string())?;
                let v = store.verify().map_err(|e| e.to_string())?;
                println!("backup: {} files, {} bytes, checksum ok", x.files, x.bytes);
                Ok(v)
            });
            let _ = std::fs::remove_dir_all(&scratch);
            (result?, "the backup's store".to_string())
        }
    };
    println!(
        "schema {}: {} accounts, {} mailboxes, {} messages, {} blobs, {} queued",
        verdict.schema,
        verdict.accounts,
        verdict.mailboxes,
        verdict.messages,
        verdict.blobs,
        verdict.queued
    );
    for p in &verdict.problems {
        println!("problem: {p}");
    }
    if verdict.more > 0 {
        println!("... and {} more problems", verdict.more);
    }
    let _ = std::io::stdout().flush();
    if verdict.problems.is_empty() {
        println!("{what} is sound");
        Ok(())
    } else {
        let n = verdict.problems.len() as u64 + verdict.more;
        Err(format!(
            "{what} is not sound ({n} problem{})",
            if n == 1 { "" } else { "s" }
        ))
    }
}
