//! HTTP/1.1, as little as letterbox needs: request heads for the web listeners
//! ([`crate::web`]: ACME HTTP-01 answers, the MTA-STS policy), and requests over HTTPS for
//! the ACME client ([`client`]).
//!
//! Heads are parsed by httparse; the framing (Content-Length, chunked) is ours. hyper would
//! bring HTTP/2, pooling and upgrades that these few one-shot requests never use, and the
//! size of the static binary matters on the appliance. Everything here is pure: bytes in,
//! typed heads out, tested without sockets.

pub mod client;

/// The longest request or response head we read.
pub const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// A parsed request head.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The Host header, lower-cased, without a port.
    pub host: Option<String>,
}

/// A parsed response head.
#[derive(Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub framing: Framing,
}

/// How the body after a response head ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// A head, once all of it has arrived, with its length in bytes.
pub type Parsed<T> = Option<(T, usize)>;

/// Parses a request head; `Ok(None)` until the blank line has arrived.
pub fn parse_request(buf: &[u8]) -> Result<Parsed<Request>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf).map_err(|e| format!("bad request: {e}"))? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial if buf.len() >= MAX_HEAD => {
            return Err("request head too long".into())
        }
        httparse::Status::Partial => return Ok(None),
    };
    let host = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(host_without_port);
    let request = Request {
        method: req.method.unwrap_or_default().to_string(),
        path: req.path.unwrap_or_default().to_string(),
        host,
    };
    Ok(Some((request, len)))
}

fn host_without_port(value: &str) -> String {
    let value = value.trim();
    let host = match value.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => value.rsplit_once(':').map_or(value, |(h, _)| h),
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Parses a response head; `Ok(None)` until the blank line has arrived. `head_request`:
/// the response to HEAD has no body whatever its headers say.
pub fn parse_response(buf: &[u8], head_request: bool) -> Result<Parsed<ResponseHead>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut rsp = httparse::Response::new(&mut headers);
    let len = match rsp.parse(buf).map_err(|e| format!("bad response: {e}"))? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial if buf.len() >= MAX_HEAD => {
            return Err("response head too long".into())
        }
        httparse::Status::Partial => return Ok(None),
    };
    let status = rsp.code.unwrap_or(0);
    let headers: Vec<(String, Vec<u8>)> = rsp
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).trim().to_ascii_lowercase())
    };
    let framing = if head_request || status == 204 || status == 304 || status < 200 {
        Framing::Length(0)
    } else if value("transfer-encoding").is_some_and(|v| v.ends_with("chunked")) {
        Framing::Chunked
    } else if let Some(length) = value("content-length") {
        Framing::Length(
            length
                .parse()
                .map_err(|_| format!("bad Content-Length {length:?}"))?,
        )
    } else {
        Framing::Close
    };
    Ok(Some((
        ResponseHead {
            status,
            headers,
            framing,
        },
        len,
    )))
}

/// Decodes a chunked body (RFC 9112 7.1) once all of it is in `buf`; `Ok(None)` while more
/// is to come. Trailers are read and dropped.
pub fn decode_chunked(buf: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let (start, size) = match httparse::parse_chunk_size(&buf[at..]) {
            Ok(httparse::Status::Complete(x)) => x,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err("bad chunk size".into()),
        };
        at += start;
        if size == 0 {
            // Trailer fields, then the final blank line.
            loop {
                let Some(end) = memchr::memmem::find(&buf[at..], b"\r\n") else {
                    return Ok(None);
                };
                at += end + 2;
                if end == 0 {
                    return Ok(Some(body));
                }
            }
        }
        let size = usize::try_from(size).map_err(|_| "chunk too large".to_string())?;
        if buf.len() < at.saturating_add(size).saturating_add(2) {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size;
        if &buf[at..at + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        at += 2;
    }
}

/// A response with a plain-text body, closing the connection.
pub fn response(status: u16, reason: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads() {
        let (req, len) =
            parse_request(b"GET /x HTTP/1.1\r\nHost: MTA-STS.Example.org:443\r\n\r\nrest")
                .unwrap()
                .unwrap();
        assert_eq!(len, 50);
        assert_eq!(
            req,
            Request {
                method: "GET".into(),
                path: "/x".into(),
                host: Some("mta-sts.example.org".into())
            }
        );
        let (req, _) = parse_request(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(req.host.as_deref(), Some("::1"));
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHost: a").unwrap(), None);
        assert!(parse_request(b"\x00\x01 nonsense\r\n\r\n").is_err());
        let long = vec![b'a'; MAX_HEAD];
        assert_eq!(parse_request(&long).unwrap_err(), "request head too long");
    }

    #[test]
    fn response_framing() {
        let head = |raw: &[u8], head: bool| parse_response(raw, head).unwrap().unwrap().0;
        let r = head(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", false);
        assert_eq!((r.status, r.framing), (200, Framing::Length(12)));
        let r = head(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            false,
        );
        assert_eq!(r.framing, Framing::Chunked);
        let r = head(b"HTTP/1.0 200 OK\r\n\r\n", false);
        assert_eq!(r.framing, Framing::Close);
        let r = head(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", true);
        assert_eq!(r.framing, Framing::Length(0));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).is_err());
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            decode_chunked(b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-T: 1\r\n\r\n").unwrap(),
            Some(b"Wikipedia".to_vec())
        );
        assert_eq!(decode_chunked(b"4\r\nWiki\r\n").unwrap(), None);
        assert_eq!(decode_chunked(b"4\r\nWiki\r\n0\r\n").unwrap(), None);
        assert!(decode_chunked(b"4\r\nWikiXX").is_err());
        assert!(decode_chunked(b"zz\r\n").is_err());
    }
}
