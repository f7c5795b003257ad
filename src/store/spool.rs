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

impl Spooled {
    /// The whole content as one slice, for checks that need it at once (DKIM): the bytes
    /// themselves, or the spool file mapped read-only. A mapping costs file-backed pages,
    /// which the kernel can drop under memory pressure, instead of a heap copy of a
    /// 25 MB message.
    pub fn view(&self) -> io::Result<View<'_>> {
        match self {
            Spooled::Memory(bytes) => Ok(View::Memory(bytes)),
            Spooled::File { len: 0, .. } => Ok(View::Memory(&[])),
            Spooled::File { file, len } => {
                use std::os::fd::AsRawFd;
                let len = usize::try_from(*len).map_err(io::Error::other)?;
                // SAFETY: a fresh private read-only mapping of our own file; the result
                // is checked before use.
                let ptr = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        len,
                        libc::PROT_READ,
                        libc::MAP_PRIVATE,
                        file.as_raw_fd(),
                        0,
                    )
                };
                if ptr == libc::MAP_FAILED {
                    return Err(io::Error::last_os_error());
                }
                Ok(View::Mapped {
                    ptr,
                    len,
                    _file: std::marker::PhantomData,
                })
            }
        }
    }

    /// A second handle on the same content, for a second delivery of it: a copy of bytes
    /// in memory, or the same spool file (every reader seeks to its start first).
    pub fn try_clone(&self) -> io::Result<Spooled> {
        Ok(match self {
            Spooled::Memory(bytes) => Spooled::Memory(bytes.clone()),
            Spooled::File { file, len } => Spooled::File {
                file: file.try_clone()?,
                len: *len,
            },
        })
    }

    /// The content without the byte ranges `cut` (sorted, not overlapping), re-spooled.
    pub fn without(self, cut: &[std::ops::Range<usize>], dir: &Path) -> io::Result<Spooled> {
        if cut.is_empty() {
            return Ok(self);
        }
        let mut out = SpoolWriter::new(dir);
        {
            let view = self.view()?;
            let mut at = 0;
            for range in cut {
                out.write(&view[at..range.start])?;
                at = range.end;
            }
            out.write(&view[at..])?;
        }
        Ok(out.finish())
    }
}

/// See [`Spooled::view`].
pub enum View<'a> {
    Memory(&'a [u8]),
    Mapped {
        ptr: *mut libc::c_void,
        len: usize,
        _file: std::marker::PhantomData<&'a File>,
    },
}

// SAFETY: the mapping is read-only and lives as long as the view; the file it maps is an
// unlinked spool file that only this process holds and nobody truncates.
unsafe impl Send for View<'_> {}
unsafe impl Sync for View<'_> {}

impl std::ops::Deref for View<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            View::Memory(bytes) => bytes,
            // SAFETY: `ptr` maps `len` readable bytes until the view is dropped.
            View::Mapped { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts(*ptr as *const u8, *len)
            },
        }
    }
}

impl Drop for View<'_> {
    fn drop(&mut self) {
        if let View::Mapped { ptr, len, .. } = self {
            // SAFETY: unmaps exactly the mapping made in `Spooled::view`.
            unsafe { libc::munmap(*ptr, *len) };
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
    #[test]
    fn a_view_of_a_spooled_file_is_its_bytes_and_cuts_remove_ranges() {
        let dir = std::env::temp_dir().join(format!("lb-view-{}", std::process::id()));
        let mut w = super::SpoolWriter::new(&dir);
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        w.write(&content).unwrap();
        let spooled = w.finish();
        assert!(matches!(spooled, super::Spooled::File { .. }));
        assert_eq!(&*spooled.view().unwrap(), &content[..]);
        let cut = spooled.without(&[10..20, 100..299_990], &dir).unwrap();
        let mut expected = content[..10].to_vec();
        expected.extend_from_slice(&content[20..100]);
        expected.extend_from_slice(&content[299_990..]);
        assert_eq!(&*cut.view().unwrap(), &expected[..]);
        std::fs::remove_dir_all(&dir).ok();
    }

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
