//! Backups: `letterbox backup` writes, `letterbox restore` reads back, and the server
//! takes one a day when `[backup]` says so ([`schedule`]).
//!
//! A backup is an [`archive`] of the store (a compacted LMDB copy, consistent as of one
//! read transaction, taken while the server keeps serving), the key directories of the
//! data dir (`dkim/`, `tls/`, `acme/`: DKIM keys, the certificate and the ACME account)
//! and the configuration file. The SRS secret, Sieve scripts and everything else live in
//! the store. The archive may be gzip-compressed, then age-encrypted (to a passphrase or
//! to X25519 recipients: files `age -d` opens); restore recognises each layer by its
//! first bytes, and also takes a bare LMDB file (the copy kept before a schema upgrade).

pub mod archive;
pub mod schedule;

use crate::store::Store;
use age::secrecy::SecretString;
use archive::{ArchiveReader, ArchiveWriter};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// Directories of the data dir a backup keeps besides the store.
pub const KEY_DIRS: [&str; 3] = ["dkim", "tls", "acme"];
/// The store's name inside the archive.
const STORE_ENTRY: &str = "mail/data.mdb";
/// The configuration file's name inside the archive.
const CONFIG_ENTRY: &str = "config/letterbox.toml";
/// Names a backup file gets in a directory: `letterbox-YYYYMMDD-HHMMSS.backup[.gz][.age]`.
pub const FILE_PREFIX: &str = "letterbox-";

/// How the archive is wrapped.
pub enum Encryption {
    None,
    Passphrase(SecretString),
    Recipients(Vec<age::x25519::Recipient>),
}

pub struct Options {
    pub compress: bool,
    pub encryption: Encryption,
}

impl Options {
    /// The file name suffix these options give (`.backup`, `.backup.gz`, `...age`).
    pub fn suffix(&self) -> String {
        let mut s = String::from(".backup");
        if self.compress {
            s.push_str(".gz");
        }
        if !matches!(self.encryption, Encryption::None) {
            s.push_str(".age");
        }
        s
    }
}

/// What a backup wrote.
#[derive(Debug, Default)]
pub struct Written {
    pub files: usize,
    /// Bytes of the store copy.
    pub store_bytes: u64,
    /// Bytes of the archive before compression and encryption.
    pub archive_bytes: u64,
}

/// The encryption layer (outermost), finished last.
enum Crypt {
    Plain(Box<dyn Write>),
    Age(age::stream::StreamWriter<Box<dyn Write>>),
}

impl Write for Crypt {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Crypt::Plain(w) => w.write(b),
            Crypt::Age(w) => w.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Crypt::Plain(w) => w.flush(),
            Crypt::Age(w) => w.flush(),
        }
    }
}

/// The compression layer, inside the encryption.
enum Layers {
    Raw(Crypt),
    Gzip(flate2::write::GzEncoder<Crypt>),
}

impl Write for Layers {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Layers::Raw(w) => w.write(b),
            Layers::Gzip(w) => w.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Layers::Raw(w) => w.flush(),
            Layers::Gzip(w) => w.flush(),
        }
    }
}

impl Layers {
    fn new(out: Box<dyn Write>, options: &Options) -> Result<Layers, String> {
        let crypt = match &options.encryption {
            Encryption::None => Crypt::Plain(out),
            Encryption::Passphrase(p) => Crypt::Age(
                age::Encryptor::with_user_passphrase(p.clone())
                    .wrap_output(out)
                    .map_err(|e| format!("encrypting: {e}"))?,
            ),
            Encryption::Recipients(list) => Crypt::Age(
                age::Encryptor::with_recipients(list.iter().map(|r| r as &dyn age::Recipient))
                    .map_err(|e| format!("encrypting: {e}"))?
                    .wrap_output(out)
                    .map_err(|e| format!("encrypting: {e}"))?,
            ),
        };
        Ok(if options.compress {
            Layers::Gzip(flate2::write::GzEncoder::new(
                crypt,
                flate2::Compression::fast(),
            ))
        } else {
            Layers::Raw(crypt)
        })
    }

    fn finish(self) -> io::Result<()> {
        let crypt = match self {
            Layers::Raw(c) => c,
            Layers::Gzip(g) => g.finish()?,
        };
        match crypt {
            Crypt::Plain(mut w) => w.flush(),
            Crypt::Age(w) => w.finish()?.flush(),
        }
    }
}

/// Writes a backup of `store` (in `data_dir`) and `config` to `out`. `progress` sees the
/// bytes of every file as they go.
pub fn write(
    store: &Store,
    data_dir: &Path,
    config: Option<&Path>,
    out: Box<dyn Write>,
    options: &Options,
    progress: &mut dyn FnMut(u64),
) -> Result<Written, String> {
    let mut archive = ArchiveWriter::new(Layers::new(out, options)?).map_err(write_error)?;
    let mut written = Written::default();
    // The store streams from LMDB's copy, through a pipe, into the archive.
    let (mut reader, writer) = io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let copied = std::thread::scope(|scope| {
        let copy = scope.spawn(move || {
            let result = store.copy_to(&writer);
            drop(writer);
            result
        });
        let added = archive.add(STORE_ENTRY, 0o600, &mut reader, progress);
        // An archive write that failed leaves LMDB writing to a closed pipe: it stops.
        drop(reader);
        let copy = copy
            .join()
            .map_err(|_| "the store copy panicked".to_string())?;
        match (added, copy) {
            (Ok(n), Ok(())) => Ok(n),
            (Err(e), _) => Err(write_error(e)),
            (Ok(_), Err(e)) => Err(format!("copying the store: {e}")),
        }
    })?;
    written.store_bytes = copied;
    written.files += 1;
    for dir in KEY_DIRS {
        for (path, name) in files_under(&data_dir.join(dir), dir)? {
            let mode = file_mode(&path);
            let mut file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            archive
                .add(&name, mode, &mut file, progress)
                .map_err(write_error)?;
            written.files += 1;
        }
    }
    if let Some(config) = config {
        let mut file = File::open(config).map_err(|e| format!("{}: {e}", config.display()))?;
        archive
            .add(CONFIG_ENTRY, file_mode(config), &mut file, progress)
            .map_err(write_error)?;
        written.files += 1;
    }
    written.archive_bytes = archive.written();
    archive
        .finish()
        .map_err(write_error)?
        .finish()
        .map_err(write_error)?;
    Ok(written)
}

fn write_error(e: io::Error) -> String {
    format!("writing the backup: {e}")
}

fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map_or(0o600, |m| m.permissions().mode() & 0o777)
}

/// Regular files under `dir`, recursively, in name order, with their archive names.
fn files_under(dir: &Path, name: &str) -> Result<Vec<(PathBuf, String)>, String> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut entries: Vec<_> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.path(), e.file_name().into_string().ok()?)))
        .collect();
    entries.sort();
    for (path, file) in entries {
        let child = format!("{name}/{file}");
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            out.extend(files_under(&path, &child)?);
        } else if meta.is_file() && archive::check_name(&child).is_ok() {
            out.push((path, child));
        }
    }
    Ok(out)
}

/// How to open an encrypted backup.
pub enum Key {
    None,
    Passphrase(SecretString),
    Identities(Vec<Box<dyn age::Identity + Send + Sync>>),
}

/// A backup being read: its layers taken off.
pub enum Opened {
    Archive(Box<ArchiveReader<Box<dyn Read>>>),
    /// A bare LMDB data file.
    Store(Box<dyn Read>),
}

/// LMDB's meta page magic, at byte 16 of a data file (little-endian on our targets).
const LMDB_MAGIC: [u8; 4] = 0xBEEF_C0DEu32.to_le_bytes();

/// Takes off the encryption and compression layers of `input`, recognised by their
/// first bytes.
pub fn open(input: Box<dyn Read>, key: &Key) -> Result<Opened, String> {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let head = input.fill_buf().map_err(|e| format!("reading: {e}"))?;
    let input: Box<dyn Read> = if head.starts_with(b"age-encryption.org/") {
        let decryptor =
            age::Decryptor::new_buffered(input).map_err(|e| format!("the backup: {e}"))?;
        let reader = match key {
            Key::None => {
                return Err(
                    "the backup is encrypted: pass --passphrase(-file) or --identity FILE".into(),
                )
            }
            Key::Passphrase(p) => {
                if !decryptor.is_scrypt() {
                    return Err(
                        "the backup is encrypted to a key, not a passphrase: pass --identity FILE"
                            .into(),
                    );
                }
                let identity = age::scrypt::Identity::new(p.clone());
                decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity))
            }
            Key::Identities(ids) => {
                decryptor.decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
            }
        }
        .map_err(|e| format!("decrypting the backup: {e}"))?;
        Box::new(reader)
    } else {
        Box::new(input)
    };
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let head = input.fill_buf().map_err(|e| format!("reading: {e}"))?;
    let input: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else {
        Box::new(input)
    };
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let head = input.fill_buf().map_err(|e| format!("reading: {e}"))?;
    if head.len() >= 20 && head[16..20] == LMDB_MAGIC {
        return Ok(Opened::Store(Box::new(input)));
    }
    let input: Box<dyn Read> = Box::new(input);
    ArchiveReader::new(input)
        .map(|reader| Opened::Archive(Box::new(reader)))
        .map_err(|e| format!("the backup: {e}"))
}

/// What [`extract`] found.
#[derive(Debug, Default)]
pub struct Extracted {
    pub files: usize,
    pub bytes: u64,
    /// Where the backup's configuration file was put, if it had one.
    pub config: Option<PathBuf>,
}

/// Writes every file of an opened backup under `dir` (which must be empty), the
/// configuration file as `dir/config/letterbox.toml`. Fails, leaving what was written,
/// if the backup is damaged.
pub fn extract(
    opened: Opened,
    dir: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<Extracted, String> {
    let mut found = Extracted::default();
    match opened {
        Opened::Store(mut input) => {
            let path = dir.join(STORE_ENTRY);
            let mut file = create(&path, 0o600)?;
            found.bytes = copy_counting(&mut input, &mut file, progress)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            file.sync_all()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            found.files = 1;
        }
        Opened::Archive(reader) => {
            let mut files = Vec::new();
            reader
                .read_all(
                    &mut |name, mode| {
                        let path = dir.join(name);
                        let file = create(&path, mode).map_err(io::Error::other)?;
                        files.push(path.clone());
                        Ok(Some(Box::new(Synced(file)) as Box<dyn Write>))
                    },
                    &mut |n| {
                        found.bytes += n;
                        progress(n)
                    },
                )
                .map_err(|e| format!("the backup: {e}"))?;
            found.files = files.len();
            if !files.contains(&dir.join(STORE_ENTRY)) {
                return Err(format!("the backup holds no store ({STORE_ENTRY})"));
            }
            let config = dir.join(CONFIG_ENTRY);
            if files.contains(&config) {
                found.config = Some(config);
            }
        }
    }
    Ok(found)
}

/// A file that is synced to disk when its writer flushes it (at its last byte).
struct Synced(File);

impl Write for Synced {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
}

fn create(path: &Path, mode: u32) -> Result<File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn copy_counting(
    input: &mut dyn Read,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        total += n as u64;
        progress(n as u64);
    }
}

/// Backup files in `dir` (by the names [`write`]'s callers give them), oldest first.
pub fn listed(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(FILE_PREFIX) && name.contains(".backup") && !name.ends_with(".partial")
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Deletes all but the newest `keep` backups in `dir`; returns what it deleted.
pub fn prune(dir: &Path, keep: usize) -> Vec<PathBuf> {
    let found = listed(dir);
    let excess = found.len().saturating_sub(keep.max(1));
    let mut gone = Vec::new();
    for path in found.into_iter().take(excess) {
        if std::fs::remove_file(&path).is_ok() {
            gone.push(path);
        }
    }
    gone
}

/// A backup file name for now: `letterbox-YYYYMMDD-HHMMSS<suffix>` (UTC).
pub fn file_name(now: i64, suffix: &str) -> String {
    format!(
        "{FILE_PREFIX}{}{suffix}",
        crate::mail::date::file_stamp(now)
    )
}
