//! Copies of the whole LMDB environment: compacted, consistent as of one read
//! transaction, taken while the store serves (LMDB's own copy, `mdb_env_copyfd2`). The
//! backup command streams one into its archive; opening a store of an older schema keeps
//! one beside it before migrating.

use super::schema::META_SCHEMA_VERSION;
use super::{Result, Store};
use heed::types::{Bytes, Str};
use heed::{CompactionOption, Env};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

impl Store {
    /// Writes a compacted copy of the environment to `out`, a file or the write end of a
    /// pipe (the copy is written in order, never sought).
    pub fn copy_to(&self, out: &impl AsRawFd) -> Result<()> {
        let _ticket = self.gate.enter();
        // SAFETY: `out` is an open descriptor the caller owns for the whole call.
        unsafe {
            self.env
                .copy_to_fd(out.as_raw_fd(), CompactionOption::Enabled)?
        };
        Ok(())
    }
}

/// The schema version an opened environment holds, without changing it (None: a new store).
pub(super) fn stored_version(env: &Env) -> Result<Option<u64>> {
    let txn = env.read_txn()?;
    let Some(meta) = env.open_database::<Str, Bytes>(&txn, Some("meta"))? else {
        return Ok(None);
    };
    Ok(meta.get(&txn, META_SCHEMA_VERSION)?.and_then(|v| {
        let bytes: [u8; 8] = v.try_into().ok()?;
        Some(u64::from_be_bytes(bytes))
    }))
}

/// Before migrating a store of schema `from`: a compacted copy in
/// `<data_dir>/backups/before-schema-<to>-<time>.mdb`, when the file system has room for
/// it and 64 MiB more. Returns where it went, or why there is none.
pub(super) fn before_migration(
    env: &Env,
    data_dir: &Path,
    from: u64,
    to: u32,
) -> std::result::Result<PathBuf, String> {
    const KEEP_FREE: u64 = 64 << 20;
    let dir = data_dir.join("backups");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let used = std::fs::metadata(env.path().join("data.mdb")).map_or(0, |m| m.len());
    let free = nix::sys::statvfs::statvfs(&dir)
        .map(|fs| {
            // The field types are narrower on some 32-bit targets.
            #[allow(clippy::unnecessary_cast)]
            let free = fs.blocks_available() as u64 * fs.fragment_size() as u64;
            free
        })
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    if free < used.saturating_add(KEEP_FREE) {
        return Err(format!(
            "only {} MiB free in {}, the store takes up to {} MiB",
            free >> 20,
            dir.display(),
            used >> 20
        ));
    }
    let stamp = crate::mail::date::file_stamp(crate::clock::unix_now());
    let path = dir.join(format!("before-schema-{to}-from-{from}-{stamp}.mdb"));
    let partial = path.with_extension("mdb.partial");
    env.copy_to_file(&partial, CompactionOption::Enabled)
        .map_err(|e| format!("{}: {e}", partial.display()))?
        .sync_all()
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    std::fs::rename(&partial, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The lock a serving letterbox holds on `<data_dir>/serve.lock` for its lifetime (the
/// kernel drops it when the process ends, however it ends): a second `serve` on the same
/// data, and `restore` onto a served store, see it and refuse.
pub struct ServeLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

impl ServeLock {
    /// Whether a process holds the lock now (without creating the file).
    pub fn held(data_dir: &Path) -> std::io::Result<bool> {
        use nix::fcntl::{Flock, FlockArg};
        let file = match std::fs::File::open(data_dir.join("serve.lock")) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(_) => Ok(false),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(true),
            Err((_, e)) => Err(e.into()),
        }
    }

    /// Takes the lock; `Ok(None)` when another process holds it.
    pub fn take(data_dir: &Path) -> std::io::Result<Option<ServeLock>> {
        use nix::fcntl::{Flock, FlockArg};
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data_dir.join("serve.lock"))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(ServeLock(lock))),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(e.into()),
        }
    }
}
