//! Incoming message bytes on their way to the store: kept in memory while small, spilled
//! to an unlinked temporary file when large, so a 25 MB message costs disk, not RAM.
//! The file is unlinked at creation, so a crash can never leave spool garbage behind.

use crate::limits::{BLOB_CHUNK, SPOOL_MEMORY_THRESHOLD};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Message bytes ready to be committed.
#[derive(Debug)]
pub enum Spooled {
    Memory(Vec<u8>),
    File { file: File, len: u64 },
}

impl Spooled {
    pub fn len(&self) -> u64 {
        match self {
            Spooled::Memory(bytes) => bytes.len() as u64,
            Spooled::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first piece of the content (at most [`BLOB_CHUNK`] bytes): enough for the header
    /// of any sensible message.
    pub fn head(&mut self) -> io::Result<Vec<u8>> {
        match self {
            Spooled::Memory(bytes) => Ok(bytes[..bytes.len().min(BLOB_CHUNK)].to_vec()),
            Spooled::File { file, len } => {
                file.seek(SeekFrom::Start(0))?;
                let mut buf = vec![0u8; (*len).min(BLOB_CHUNK as u64) as usize];
                file.read_exact(&mut buf)?;
                Ok(buf)
            }
        }
    }

    /// Calls `f` with consecutive pieces of the content, at most [`BLOB_CHUNK`] bytes each.
    pub fn for_each_piece<E: From<io::Error>>(
        &mut self,
        mut f: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Spooled::Memory(bytes) => bytes.chunks(BLOB_CHUNK).try_for_each(f),
            Spooled::File { file, len } => {
                file.seek(SeekFrom::Start(0)).map_err(E::from)?;
                let mut buf = vec![0u8; BLOB_CHUNK];
                let mut left = *len;
                while left > 0 {
                    let want = left.min(BLOB_CHUNK as u64) as usize;
                    file.read_exact(&mut buf[..want]).map_err(E::from)?;
                    f(&buf[..want])?;
                    left -= want as u64;
                }
                Ok(())
            }
        }
    }
}

/// Accumulates message bytes, spilling to `dir` past [`SPOOL_MEMORY_THRESHOLD`].
#[derive(Debug)]
pub struct SpoolWriter {
    dir: PathBuf,
    memory: Vec<u8>,
    file: Option<File>,
    len: u64,
}

impl SpoolWriter {
    pub fn new(dir: &Path) -> SpoolWriter {
        SpoolWriter {
            dir: dir.to_path_buf(),
            memory: Vec::new(),
            file: None,
            len: 0,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.len += bytes.len() as u64;
        if let Some(file) = &mut self.file {
            return file.write_all(bytes);
        }
        if self.memory.len() + bytes.len() <= SPOOL_MEMORY_THRESHOLD {
            self.memory.extend_from_slice(bytes);
            return Ok(());
        }
        let mut file = unlinked_temp_file(&self.dir)?;
        file.write_all(&self.memory)?;
        file.write_all(bytes)?;
        self.memory = Vec::new();
        self.file = Some(file);
        Ok(())
    }

    pub fn finish(self) -> Spooled {
        match self.file {
            Some(file) => Spooled::File {
                file,
                len: self.len,
            },
            None => Spooled::Memory(self.memory),
        }
    }
}

fn unlinked_temp_file(dir: &Path) -> io::Result<File> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir)?;
    let name = format!(
        "spool-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(mut s: Spooled) -> Vec<u8> {
        let mut out = Vec::new();
        s.for_each_piece(|p| {
            assert!(p.len() <= BLOB_CHUNK);
            out.extend_from_slice(p);
            Ok::<(), io::Error>(())
        })
        .unwrap();
        out
    }

    #[test]
    fn small_stays_in_memory_large_spills() {
        let dir = std::env::temp_dir().join(format!("lb-spool-{}", std::process::id()));
        let mut w = SpoolWriter::new(&dir);
        w.write(b"hello ").unwrap();
        w.write(b"world").unwrap();
        let s = w.finish();
        assert!(matches!(s, Spooled::Memory(_)));
        assert_eq!(collect(s), b"hello world");

        let mut w = SpoolWriter::new(&dir);
        let big: Vec<u8> = (0..SPOOL_MEMORY_THRESHOLD * 3)
            .map(|i| (i % 251) as u8)
            .collect();
        for piece in big.chunks(1000) {
            w.write(piece).unwrap();
        }
        let s = w.finish();
        assert!(matches!(s, Spooled::File { .. }));
        assert_eq!(s.len(), big.len() as u64);
        assert_eq!(collect(s), big);
        // The spool file was unlinked at creation.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }
}
