//! The backup archive: a stream of named files, then a SHA-256 of everything before it.
//!
//! Our own framing rather than tar: tar puts each file's size before its bytes, and the
//! compacted LMDB copy's size is known only once LMDB has written it. Staging the copy
//! in a temporary file would need as much free space again on an SD card that may be
//! nearly full; frames let the copy stream straight from LMDB to a pipe, stdout or a USB
//! disk. `letterbox restore` reads it back.
//!
//! ```text
//! "LETTERBOX-BACKUP 1\n"
//! per file:  'F'  name length (u16 BE)  name (UTF-8, relative, '/')  mode (u32 BE)
//!            frames: length (u32 BE, 1..=1 MiB) bytes ... then a length of 0
//! the end:   'Z'  SHA-256 of every byte before the 'Z' (32 bytes)
//! ```
//!
//! Compression (gzip) and encryption (age) wrap the whole stream; see [`super`].

use std::io::{self, Read, Write};

pub const MAGIC: &[u8] = b"LETTERBOX-BACKUP 1\n";
/// Largest frame a reader accepts (writers use [`FRAME`]).
const MAX_FRAME: usize = 1 << 20;
/// Frame size the writer uses.
pub const FRAME: usize = 64 * 1024;
const MAX_NAME: usize = 1024;

/// Writes an archive to `out`, hashing as it goes.
pub struct ArchiveWriter<W: Write> {
    out: W,
    digest: ring::digest::Context,
    written: u64,
}

impl<W: Write> ArchiveWriter<W> {
    pub fn new(out: W) -> io::Result<ArchiveWriter<W>> {
        let mut writer = ArchiveWriter {
            out,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            written: 0,
        };
        writer.put(MAGIC)?;
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.digest.update(bytes);
        self.written += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    /// Bytes of archive written so far (before compression).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Adds a file whose bytes `source` yields to its end; `progress` sees each frame.
    pub fn add(
        &mut self,
        name: &str,
        mode: u32,
        source: &mut dyn Read,
        progress: &mut dyn FnMut(u64),
    ) -> io::Result<u64> {
        check_name(name)?;
        self.put(b"F")?;
        self.put(&(name.len() as u16).to_be_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&mode.to_be_bytes())?;
        let mut buf = vec![0u8; FRAME];
        let mut total = 0u64;
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.put(&(n as u32).to_be_bytes())?;
            self.put(&buf[..n])?;
            total += n as u64;
            progress(n as u64);
        }
        self.put(&0u32.to_be_bytes())?;
        Ok(total)
    }

    /// Writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        let digest = self.digest.clone().finish();
        self.out.write_all(b"Z")?;
        self.out.write_all(digest.as_ref())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A file's name in the archive must be relative and stay inside the restore directory.
pub fn check_name(name: &str) -> io::Result<()> {
    let bad = name.is_empty()
        || name.len() > MAX_NAME
        || name.starts_with('/')
        || name
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        || name.chars().any(|c| c.is_control() || c == '\\');
    if bad {
        return Err(invalid(format!("bad file name {name:?} in the backup")));
    }
    Ok(())
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// Reads an archive, handing each file to a sink the caller picks by name.
pub struct ArchiveReader<R: Read> {
    input: R,
    digest: ring::digest::Context,
}

/// Where a file's bytes go, chosen by its name and mode (None: skipped).
pub type Opener<'a> = dyn FnMut(&str, u32) -> io::Result<Option<Box<dyn Write>>> + 'a;

impl<R: Read> ArchiveReader<R> {
    pub fn new(mut input: R) -> io::Result<ArchiveReader<R>> {
        let mut magic = [0u8; MAGIC.len()];
        input
            .read_exact(&mut magic)
            .map_err(|_| invalid("not a letterbox backup (too short)".into()))?;
        if magic != MAGIC {
            return Err(invalid("not a letterbox backup (or a newer format)".into()));
        }
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        digest.update(&magic);
        Ok(ArchiveReader { input, digest })
    }

    fn take(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.input.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => invalid("the backup is cut short".into()),
            _ => e,
        })?;
        self.digest.update(buf);
        Ok(())
    }

    /// Reads every file, calling `open(name, mode)` for where it goes and `done(name)`
    /// after its last byte; fails unless the trailer's digest matches.
    pub fn read_all(mut self, open: &mut Opener, progress: &mut dyn FnMut(u64)) -> io::Result<()> {
        let mut buf = vec![0u8; FRAME];
        loop {
            let mut tag = [0u8; 1];
            self.input
                .read_exact(&mut tag)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => invalid("the backup is cut short".into()),
                    _ => e,
                })?;
            match tag[0] {
                b'Z' => {
                    let mut stated = [0u8; 32];
                    self.input
                        .read_exact(&mut stated)
                        .map_err(|_| invalid("the backup is cut short (in its checksum)".into()))?;
                    let actual = self.digest.clone().finish();
                    if actual.as_ref() != stated {
                        return Err(invalid(
                            "the backup's checksum does not match: it is damaged".into(),
                        ));
                    }
                    return Ok(());
                }
                b'F' => {}
                other => return Err(invalid(format!("the backup is damaged (tag {other:#x})"))),
            }
            self.digest.update(&tag);
            let mut len = [0u8; 2];
            self.take(&mut len)?;
            let len = u16::from_be_bytes(len) as usize;
            if len > MAX_NAME {
                return Err(invalid("the backup is damaged (a name too long)".into()));
            }
            let mut name = vec![0u8; len];
            self.take(&mut name)?;
            let name = String::from_utf8(name)
                .map_err(|_| invalid("the backup is damaged (a name not UTF-8)".into()))?;
            check_name(&name)?;
            let mut mode = [0u8; 4];
            self.take(&mut mode)?;
            let mut sink = open(&name, u32::from_be_bytes(mode))?;
            loop {
                let mut frame = [0u8; 4];
                self.take(&mut frame)?;
                let n = u32::from_be_bytes(frame) as usize;
                if n == 0 {
                    break;
                }
                if n > MAX_FRAME {
                    return Err(invalid("the backup is damaged (a frame too long)".into()));
                }
                if buf.len() < n {
                    buf.resize(n, 0);
                }
                self.take(&mut buf[..n])?;
                if let Some(sink) = sink.as_mut() {
                    sink.write_all(&buf[..n])?;
                }
                progress(n as u64);
            }
            if let Some(mut sink) = sink {
                sink.flush()?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = ArchiveWriter::new(Vec::new()).unwrap();
        for (name, bytes) in files {
            writer
                .add(name, 0o600, &mut &bytes[..], &mut |_| {})
                .unwrap();
        }
        writer.finish().unwrap()
    }

    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn read(bytes: &[u8]) -> io::Result<Vec<(String, u32, Vec<u8>)>> {
        let mut sinks: Vec<(String, u32, Shared)> = Vec::new();
        ArchiveReader::new(bytes)?.read_all(
            &mut |name, mode| {
                let sink = Shared::default();
                sinks.push((name.to_string(), mode, sink.clone()));
                Ok(Some(Box::new(sink)))
            },
            &mut |_| {},
        )?;
        Ok(sinks
            .into_iter()
            .map(|(name, mode, sink)| (name, mode, sink.0.borrow().clone()))
            .collect())
    }

    #[test]
    fn files_come_back_as_written() {
        let big = vec![7u8; FRAME * 2 + 5];
        let bytes = archive(&[
            ("mail/data.mdb", &big),
            ("dkim/x/key", b"k"),
            ("empty", b""),
        ]);
        let files = read(&bytes).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(files[0], ("mail/data.mdb".into(), 0o600, big));
        assert_eq!(files[1].2, b"k");
        assert_eq!(files[2].2, b"");
    }

    #[test]
    fn damage_is_found() {
        let bytes = archive(&[("a", b"hello world")]);
        let mut flipped = bytes.clone();
        let at = MAGIC.len() + 12;
        flipped[at] ^= 1;
        let err = read(&flipped).unwrap_err().to_string();
        assert!(err.contains("checksum does not match"), "{err}");
        let err = read(&bytes[..bytes.len() - 10]).unwrap_err().to_string();
        assert!(err.contains("cut short"), "{err}");
        let err = read(b"PK\x03\x04 not ours at all").unwrap_err().to_string();
        assert!(err.contains("not a letterbox backup"), "{err}");
    }

    #[test]
    fn names_stay_inside() {
        for bad in ["/etc/passwd", "../x", "a/../../b", "a//b", "", "a\nb"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("mail/data.mdb").is_ok());
        let mut writer = ArchiveWriter::new(Vec::new()).unwrap();
        assert!(writer
            .add("../evil", 0, &mut &b""[..], &mut |_| {})
            .is_err());
    }
}
