//! Raw DEFLATE (RFC 1951) on both directions of a connection, for IMAP COMPRESS=DEFLATE
//! (RFC 4978), over flate2's pure-Rust backend. Output is compressed with a sync flush at
//! each [`super::Connection::flush`], so every reply reaches the client whole. Input is
//! inflated at most [`READ_BUFFER`] bytes per read, so a small compressed bomb grows no
//! buffer faster than plain input would.

use crate::limits::READ_BUFFER;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::io;

pub struct Deflate {
    compress: Compress,
    decompress: Decompress,
    /// Compressed input not inflated yet.
    pub pending: Vec<u8>,
}

impl Deflate {
    pub fn new() -> Deflate {
        Deflate {
            // Level 6 (zlib's default); raw streams, no zlib header (RFC 4978 §4).
            compress: Compress::new(Compression::default(), false),
            decompress: Decompress::new(false),
            pending: Vec::new(),
        }
    }

    /// Compresses `input` and sync-flushes, appending to `out`.
    pub fn deflate(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut consumed = 0;
        loop {
            out.reserve((input.len() - consumed) / 2 + 64);
            let before = self.compress.total_in();
            let status = self
                .compress
                .compress_vec(&input[consumed..], out, FlushCompress::Sync)
                .map_err(io::Error::other)?;
            consumed += (self.compress.total_in() - before) as usize;
            // Done once everything went in and the flush left spare room behind it.
            if consumed == input.len() && out.len() < out.capacity() {
                return Ok(());
            }
            if status == Status::StreamEnd {
                return Ok(());
            }
        }
    }

    /// Inflates pending input into `out`, at most [`READ_BUFFER`] new bytes; returns how
    /// many. Zero means more compressed input is needed.
    pub fn inflate(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
        let start = out.len();
        out.reserve(READ_BUFFER);
        let limit = start + READ_BUFFER;
        // Even without pending input the inflater may hold output it had no room for.
        while out.len() < limit {
            let room = limit - out.len();
            let mut chunk = Vec::with_capacity(room);
            let before = self.decompress.total_in();
            let status = self
                .decompress
                .decompress_vec(&self.pending, &mut chunk, FlushDecompress::Sync)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let used = (self.decompress.total_in() - before) as usize;
            self.pending.drain(..used);
            out.extend_from_slice(&chunk);
            if status == Status::StreamEnd {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the client ended its compressed stream",
                ));
            }
            if used == 0 && chunk.is_empty() {
                break;
            }
        }
        Ok(out.len() - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounded_inflation() {
        let mut server = Deflate::new();
        let mut client = Deflate::new();
        let mut wire = Vec::new();
        server.deflate(b"* OK hello\r\n", &mut wire).unwrap();
        // A sync flush ends with the empty stored block 00 00 ff ff.
        assert!(wire.ends_with(&[0, 0, 0xff, 0xff]));
        client.pending.extend_from_slice(&wire);
        let mut got = Vec::new();
        client.inflate(&mut got).unwrap();
        assert_eq!(got, b"* OK hello\r\n");
        // 1 MiB of zeros compresses to about a kilobyte; one inflate gives READ_BUFFER.
        let mut bomb = Vec::new();
        client.deflate(&vec![0u8; 1 << 20], &mut bomb).unwrap();
        assert!(bomb.len() < 8 * 1024);
        server.pending.extend_from_slice(&bomb);
        let mut out = Vec::new();
        assert_eq!(server.inflate(&mut out).unwrap(), READ_BUFFER);
        let mut total = out.len();
        loop {
            out.clear();
            let n = server.inflate(&mut out).unwrap();
            if n == 0 {
                break;
            }
            assert!(n <= READ_BUFFER);
            total += n;
        }
        assert_eq!(total, 1 << 20);
        // Garbage is an error, not a panic.
        let mut broken = Deflate::new();
        broken
            .pending
            .extend_from_slice(b"\xff\xff\xff\xff not deflate");
        assert!(broken.inflate(&mut Vec::new()).is_err());
    }
}
