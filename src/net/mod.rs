//! A client connection: plain or TLS, with bounded line reads and batched writes; and
//! [`dot`], the dot-terminated data codec of SMTP DATA and POP3 multi-line responses.
//!
//! Output is buffered and flushed just before the connection would block on a read, so
//! pipelined commands (SMTP PIPELINING, POP3 PIPELINING) get their replies in one write.
//! Every read and flush carries a timeout; no read ever grows a buffer past the caller's
//! line limit.

mod deflate;
pub mod dot;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::limits::READ_BUFFER;

/// First read buffer of a connection: enough for a command line.
const INITIAL_READ_BUFFER: usize = 1024;

/// Any byte stream a session can run over (a TCP socket, or an in-memory pipe in tests).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

enum Stream {
    Plain(Box<dyn Io>),
    Tls(Box<TlsStream<Box<dyn Io>>>),
    /// Our side is the client (outbound SMTP).
    ClientTls(Box<tokio_rustls::client::TlsStream<Box<dyn Io>>>),
    /// Only while a STARTTLS handshake runs.
    Upgrading,
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
            Stream::ClientTls(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Upgrading => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
            Stream::ClientTls(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Upgrading => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
            Stream::ClientTls(s) => Pin::new(s).poll_flush(cx),
            Stream::Upgrading => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
            Stream::ClientTls(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Upgrading => Poll::Ready(Ok(())),
        }
    }
}

/// How much of an over-long line is kept (see [`Connection::too_long_head`]).
pub const TOO_LONG_HEAD: usize = 128;
/// How much of its end is kept (see [`Connection::finish_too_long`]): room for `{n+}`.
pub const TOO_LONG_TAIL: usize = 32;

/// Result of reading one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line, including its line ending.
    Complete(Vec<u8>),
    /// The line exceeded the limit; it was discarded up to and including its LF.
    TooLong,
    /// The peer closed the connection.
    Closed,
}

pub struct Connection {
    stream: Stream,
    input: Vec<u8>,
    /// Start of unconsumed input in `input`.
    start: usize,
    /// Set after an over-long line until its LF has been skipped.
    skipping: bool,
    /// The first bytes of the last over-long line (IMAP answers with its tag).
    too_long_head: Vec<u8>,
    /// Its last bytes, once known (a literal it announced).
    too_long_tail: Vec<u8>,
    output: Vec<u8>,
    pub peer: SocketAddr,
    /// Longest wait for any input (the idle or autologout timer).
    pub read_timeout: Duration,
    /// Once a line has begun, the longest it may take to arrive whole: a client that
    /// trickles a byte at a time cannot hold a connection past it (slowloris).
    pub line_timeout: Duration,
    pub write_timeout: Duration,
    /// COMPRESS=DEFLATE, once started (boxed: most connections never use it).
    deflate: Option<Box<deflate::Deflate>>,
}

/// A minimum transfer rate for message data (DATA, BDAT, APPEND): `grace`, plus one
/// second for every `min_rate` bytes. A client that sends slower than that is cut off,
/// however often it sends a byte.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    start: Instant,
    grace: Duration,
    min_rate: u64,
}

impl Pace {
    pub fn new(grace: Duration, min_rate: u64) -> Pace {
        Pace {
            start: Instant::now(),
            grace,
            min_rate: min_rate.max(1),
        }
    }

    /// When `bytes` must have arrived.
    pub fn deadline(&self, bytes: u64) -> Instant {
        self.start + self.grace + Duration::from_secs(bytes / self.min_rate)
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timeout")
}

impl Connection {
    pub fn new(stream: Box<dyn Io>, peer: SocketAddr, timeout: Duration) -> Connection {
        Connection {
            stream: Stream::Plain(stream),
            input: Vec::new(),
            start: 0,
            skipping: false,
            too_long_head: Vec::new(),
            too_long_tail: Vec::new(),
            output: Vec::new(),
            peer,
            read_timeout: timeout,
            line_timeout: timeout,
            write_timeout: timeout,
            deflate: None,
        }
    }

    /// Whether COMPRESS=DEFLATE is on.
    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// Starts DEFLATE in both directions (IMAP COMPRESS, RFC 4978): everything sent from
    /// now on is compressed, everything read is inflated. Queued output is sent first, as
    /// is; input the peer sent before it saw our answer is dropped, as at STARTTLS.
    pub async fn start_deflate(&mut self) -> io::Result<()> {
        self.flush().await?;
        self.input.clear();
        self.start = 0;
        self.deflate = Some(Box::new(deflate::Deflate::new()));
        Ok(())
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_) | Stream::ClientTls(_))
    }

    /// TLS protocol and cipher, for the Received: header.
    pub fn tls_description(&self) -> Option<String> {
        let (version, suite) = match &self.stream {
            Stream::Tls(s) => {
                let conn = s.get_ref().1;
                (conn.protocol_version()?, conn.negotiated_cipher_suite()?)
            }
            Stream::ClientTls(s) => {
                let conn = s.get_ref().1;
                (conn.protocol_version()?, conn.negotiated_cipher_suite()?)
            }
            _ => return None,
        };
        Some(format!("{version:?} {:?}", suite.suite()))
    }

    /// Performs the TLS handshake (implicit TLS or STARTTLS). Input buffered before the
    /// upgrade is discarded: accepting it would allow command injection (CVE-2011-0411).
    pub async fn start_tls(&mut self, acceptor: &TlsAcceptor) -> io::Result<()> {
        self.flush().await?;
        self.input.clear();
        self.start = 0;
        let Stream::Plain(plain) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            return Err(io::Error::other("TLS already active"));
        };
        let tls = tokio::time::timeout(self.read_timeout, acceptor.accept(plain))
            .await
            .map_err(|_| timed_out())??;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    /// The client side of a TLS handshake (outbound STARTTLS or implicit TLS).
    pub async fn connect_tls(
        &mut self,
        connector: &tokio_rustls::TlsConnector,
        server_name: rustls::pki_types::ServerName<'static>,
    ) -> io::Result<()> {
        self.flush().await?;
        self.input.clear();
        self.start = 0;
        let Stream::Plain(plain) = std::mem::replace(&mut self.stream, Stream::Upgrading) else {
            return Err(io::Error::other("TLS already active"));
        };
        let tls = tokio::time::timeout(self.read_timeout, connector.connect(server_name, plain))
            .await
            .map_err(|_| timed_out())??;
        self.stream = Stream::ClientTls(Box::new(tls));
        Ok(())
    }

    /// Queues bytes for the peer; sent at the next flush.
    pub fn send(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    pub fn pending_output(&self) -> usize {
        self.output.len()
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        let compressed = match &mut self.deflate {
            Some(deflate) => {
                let mut out = Vec::with_capacity(self.output.len() / 2 + 64);
                deflate.deflate(&self.output, &mut out)?;
                Some(out)
            }
            None => None,
        };
        let bytes = compressed.as_deref().unwrap_or(&self.output);
        let write = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        tokio::time::timeout(self.write_timeout, write)
            .await
            .map_err(|_| timed_out())??;
        self.output.clear();
        if self.output.capacity() > 2 * READ_BUFFER {
            self.output = Vec::new();
        }
        Ok(())
    }

    /// Whether the peer already sent more input (pipelining).
    pub fn has_buffered_input(&self) -> bool {
        self.start < self.input.len()
    }

    /// Unconsumed input.
    pub fn buffered(&self) -> &[u8] {
        &self.input[self.start..]
    }

    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.input.len());
        if self.start == self.input.len() {
            self.input.clear();
            self.start = 0;
            if self.input.capacity() > 2 * READ_BUFFER {
                self.input = Vec::new();
            }
        }
    }

    /// Reads more input (flushing pending output first). Returns the number of new bytes;
    /// 0 means the peer closed the connection.
    pub async fn fill(&mut self) -> io::Result<usize> {
        self.fill_by(None).await
    }

    /// Like [`Connection::fill`], but gives up at `deadline` if that comes before the
    /// read timeout.
    pub async fn fill_by(&mut self, deadline: Option<Instant>) -> io::Result<usize> {
        self.flush().await?;
        if self.start > 0 {
            self.input.drain(..self.start);
            self.start = 0;
        }
        // Start small so idle connections stay cheap; grow once data keeps coming.
        let want = if self.input.capacity() == 0 {
            INITIAL_READ_BUFFER
        } else {
            READ_BUFFER
        };
        if self.input.capacity() - self.input.len() < want / 2 {
            self.input.reserve(want);
        }
        let mut wait = self.read_timeout;
        if let Some(deadline) = deadline {
            wait = wait.min(deadline.saturating_duration_since(Instant::now()));
        }
        let Some(deflate) = self.deflate.as_mut() else {
            let read = self.stream.read_buf(&mut self.input);
            return tokio::time::timeout(wait, read)
                .await
                .map_err(|_| timed_out())?;
        };
        let until = Instant::now() + wait;
        loop {
            let inflated = deflate.inflate(&mut self.input)?;
            if inflated > 0 {
                return Ok(inflated);
            }
            if deflate.pending.capacity() - deflate.pending.len() < READ_BUFFER / 2 {
                deflate.pending.reserve(READ_BUFFER);
            }
            let read = self.stream.read_buf(&mut deflate.pending);
            let n = tokio::time::timeout_at(until, read)
                .await
                .map_err(|_| timed_out())??;
            if n == 0 {
                return Ok(0);
            }
        }
    }

    /// Reads one line of at most `max` bytes (line ending included).
    /// The read timeout applies while nothing of the line has come; from its first byte
    /// on, the whole line must arrive within `line_timeout`.
    pub async fn read_line(&mut self, max: usize) -> io::Result<Line> {
        let mut scanned = 0;
        let mut deadline: Option<Instant> = None;
        loop {
            let pending = &self.input[self.start..];
            if let Some(pos) = pending[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos + 1;
                if self.skipping {
                    self.skipping = false;
                    self.consume(end);
                    scanned = 0;
                    deadline = None;
                    continue;
                }
                if end > max {
                    self.too_long_head = pending[..TOO_LONG_HEAD.min(end)].to_vec();
                    self.too_long_tail = pending[end.saturating_sub(TOO_LONG_TAIL)..end].to_vec();
                    self.consume(end);
                    return Ok(Line::TooLong);
                }
                let line = pending[..end].to_vec();
                self.consume(end);
                return Ok(Line::Complete(line));
            }
            if self.skipping || pending.len() > max {
                // Drop what we have; keep skipping until the LF arrives.
                let was_skipping = self.skipping;
                if !was_skipping {
                    self.too_long_head = pending[..TOO_LONG_HEAD.min(pending.len())].to_vec();
                }
                // The line's end so far: a literal announcement may straddle the next read.
                self.too_long_tail =
                    pending[pending.len().saturating_sub(TOO_LONG_TAIL)..].to_vec();
                let len = pending.len();
                self.consume(len);
                self.skipping = true;
                scanned = 0;
                if !was_skipping {
                    return Ok(Line::TooLong);
                }
            } else {
                scanned = pending.len();
            }
            if deadline.is_none() && (self.skipping || self.start < self.input.len()) {
                deadline = Some(Instant::now() + self.line_timeout);
            }
            if self.fill_by(deadline).await? == 0 {
                return Ok(Line::Closed);
            }
        }
    }

    /// After [`Line::TooLong`]: discards what is left of that line (it may still be
    /// arriving) and returns its last bytes (at most [`TOO_LONG_TAIL`]), so that a literal
    /// it announced can be found. Empty if the client left first.
    pub async fn finish_too_long(&mut self) -> io::Result<Vec<u8>> {
        if !self.skipping {
            return Ok(std::mem::take(&mut self.too_long_tail));
        }
        let deadline = Instant::now() + self.line_timeout;
        let mut tail: Vec<u8> = std::mem::take(&mut self.too_long_tail);
        loop {
            let pending = &self.input[self.start..];
            let (take, done) = match pending.iter().position(|&b| b == b'\n') {
                Some(pos) => (pos + 1, true),
                None => (pending.len(), false),
            };
            tail.extend_from_slice(&pending[..take]);
            if tail.len() > TOO_LONG_TAIL {
                tail.drain(..tail.len() - TOO_LONG_TAIL);
            }
            self.consume(take);
            if done {
                self.skipping = false;
                return Ok(tail);
            }
            if self.fill_by(Some(deadline)).await? == 0 {
                return Ok(Vec::new());
            }
        }
    }

    /// The first bytes (at most [`TOO_LONG_HEAD`]) of the last line that was too long.
    pub fn too_long_head(&self) -> &[u8] {
        &self.too_long_head
    }

    /// Sends what is queued and closes the write side (best effort).
    pub async fn close(&mut self) {
        let _ = self.flush().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Connection, tokio::io::DuplexStream) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let conn = Connection::new(
            Box::new(a),
            "127.0.0.1:1".parse().unwrap(),
            Duration::from_secs(5),
        );
        (conn, b)
    }

    #[tokio::test]
    async fn lines_and_limits() {
        let (mut conn, mut peer) = pair();
        peer.write_all(b"HELO a\r\nNOOP\n").await.unwrap();
        assert_eq!(
            conn.read_line(100).await.unwrap(),
            Line::Complete(b"HELO a\r\n".to_vec())
        );
        assert_eq!(
            conn.read_line(100).await.unwrap(),
            Line::Complete(b"NOOP\n".to_vec())
        );
        let long = vec![b'x'; 50_000];
        peer.write_all(&long).await.unwrap();
        assert_eq!(conn.read_line(100).await.unwrap(), Line::TooLong);
        peer.write_all(b"still the long line\r\nQUIT\r\n")
            .await
            .unwrap();
        assert_eq!(
            conn.read_line(100).await.unwrap(),
            Line::Complete(b"QUIT\r\n".to_vec())
        );
        assert!(conn.input.capacity() <= 4 * READ_BUFFER);
        peer.write_all(&[b'y'; 150]).await.unwrap();
        peer.write_all(b"\r\n").await.unwrap();
        assert_eq!(conn.read_line(100).await.unwrap(), Line::TooLong);
        drop(peer);
        assert_eq!(conn.read_line(100).await.unwrap(), Line::Closed);
    }

    #[tokio::test]
    async fn output_is_flushed_before_blocking() {
        let (mut conn, mut peer) = pair();
        peer.write_all(b"X\r\nZ\r\n").await.unwrap();
        conn.read_line(100).await.unwrap();
        conn.send(b"220 hi\r\n");
        // "Z" is already buffered (pipelined): no flush needed to read it.
        conn.read_line(100).await.unwrap();
        assert_eq!(conn.pending_output(), 8);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            peer.read_exact(&mut buf).await.unwrap();
            peer.write_all(b"Y\r\n").await.unwrap();
            buf
        });
        assert_eq!(
            conn.read_line(100).await.unwrap(),
            Line::Complete(b"Y\r\n".to_vec())
        );
        assert_eq!(&reader.await.unwrap(), b"220 hi\r\n");
    }

    #[tokio::test(start_paused = true)]
    async fn read_times_out() {
        let (mut conn, _peer) = pair();
        let err = conn.read_line(100).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
