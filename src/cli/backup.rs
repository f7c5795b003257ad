//! `letterbox backup`, `restore` and `verify` (see [`crate::backup`]).

use super::progress::{Progress, Unit};
use super::{config_path, data_dir, load_config, open_store, Cli};
use crate::backup::{self, Encryption, Key, Options};
use crate::store::{ServeLock, Store};
use age::secrecy::SecretString;
use clap::Args;
use std::io::{IsTerminal, Write};
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

pub fn backup_command(cli: &Cli, args: &BackupArgs) -> Result<(), String> {
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
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
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
    let config = load_config(cli)?;
    let dir = std::path::absolute(data_dir(cli, &config)).map_err(|e| e.to_string())?;
    let store_file = dir.join("mail/data.mdb");
    if dir.exists() {
        if ServeLock::take(&dir).map_err(|e| e.to_string())?.is_none() {
            return Err(format!(
                "a letterbox is serving {}: stop it before restoring",
                dir.display()
            ));
        }
        if store_file.exists() && !args.force {
            return Err(format!(
                "{} holds a store already: pass --force to restore over it (it is moved aside, not deleted)",
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
    let mut progress = Progress::new("restore", Unit::Bytes, None);
    let extracted = backup::extract(opened, &staging, &mut |n| progress.advance(n));
    progress.finish();
    let extracted = match extracted {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(format!("{e} (nothing was restored)"));
        }
    };
    // The restored store must open (an older schema is upgraded here) and be sound.
    let verdict = Store::open(&staging, config.map_size_bytes())
        .and_then(|store| store.verify())
        .map_err(|e| e.to_string());
    match verdict {
        Ok(v) if v.problems.is_empty() => {}
        Ok(v) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(format!(
                "the backup's store is not sound ({}); nothing was restored",
                v.problems.join("; ")
            ));
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(format!(
                "the backup's store does not open: {e}; nothing was restored"
            ));
        }
    }
    let restored_config = extracted.config.as_ref().map(|from| {
        let kept = staging.join("restored-letterbox.toml");
        let _ = std::fs::rename(from, &kept);
        let _ = std::fs::remove_dir(staging.join("config"));
        kept
    });
    if dir.exists() {
        let aside = beside(
            &dir,
            &format!(
                ".before-restore-{}",
                crate::mail::date::file_stamp(crate::clock::unix_now())
            ),
        );
        std::fs::rename(&dir, &aside).map_err(|e| format!("{}: {e}", dir.display()))?;
        println!("the store that was there is now in {}", aside.display());
    }
    std::fs::rename(&staging, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    println!(
        "restored {} files ({} bytes) into {}",
        extracted.files,
        extracted.bytes,
        dir.display()
    );
    if let Some(kept) = restored_config {
        let kept = dir.join(kept.file_name().unwrap_or_default());
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
                let target = PathBuf::from(crate::config::DEFAULT_CONFIG_PATH);
                let target = cli.config.clone().unwrap_or(target);
                if let Some(parent) = target.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                std::fs::rename(&kept, &target)
                    .or_else(|_| std::fs::copy(&kept, &target).map(|_| ()))
                    .map_err(|e| format!("{}: {e}", target.display()))?;
                println!("restored the configuration to {}", target.display());
            }
        }
    }
    Ok(())
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
            let scratch =
                std::env::temp_dir().join(format!("letterbox-verify-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&scratch);
            std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
            let result = backup::extract(opened, &scratch, &mut |_| {}).and_then(|x| {
                let config = load_config(cli)?;
                let store =
                    Store::open(&scratch, config.map_size_bytes()).map_err(|e| e.to_string())?;
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
