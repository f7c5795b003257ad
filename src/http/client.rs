//! One request per connection over HTTPS (or plain HTTP), HTTP/1.1 with `Connection: close`:
//! what the ACME client needs (instant-acme's [`HttpClient`] is implemented here) and what
//! an MTA-STS policy fetch needs. Host names resolve through letterbox's own resolver, so
//! tests and the appliance use the configured DNS servers.

use super::{decode_chunked, parse_response, Framing, ResponseHead};
use crate::dns::Resolver;
use bytes::Bytes;
use http_body_util::BodyExt;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest body read (ACME certificate chains are a few KiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// A response, body read whole.
pub struct Response {
    pub head: ResponseHead,
    pub body: Vec<u8>,
}

/// An HTTPS client trusting `tls`'s roots.
#[derive(Clone)]
pub struct Client {
    tls: Arc<rustls::ClientConfig>,
    dns: Resolver,
    timeout: Duration,
}

impl Client {
    pub fn new(tls: Arc<rustls::ClientConfig>, dns: Resolver, timeout: Duration) -> Client {
        Client { tls, dns, timeout }
    }

    /// Sends one request; the whole exchange must finish within the client's timeout.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Response, String> {
        let url_parts = Url::parse(url)?;
        match tokio::time::timeout(
            self.timeout,
            self.exchange(method, &url_parts, headers, body),
        )
        .await
        {
            Ok(result) => result.map_err(|e| format!("{url}: {e}")),
            Err(_) => Err(format!("{url}: no answer within {:?}", self.timeout)),
        }
    }

    async fn exchange(
        &self,
        method: &str,
        url: &Url,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Response, String> {
        let addrs = match url.host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) if url.host == "localhost" => vec![IpAddr::from([127, 0, 0, 1])],
            Err(_) => self
                .dns
                .clone()
                .ip(&url.host)
                .await
                .map_err(|e| e.to_string())?,
        };
        let mut last = format!("{} has no address", url.host);
        for ip in addrs {
            let addr = SocketAddr::new(ip, url.port);
            let tcp = match TcpStream::connect(addr).await {
                Ok(tcp) => tcp,
                Err(e) => {
                    last = format!("{addr}: {e}");
                    continue;
                }
            };
            let mut request = format!(
                "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: letterbox/{}\r\nConnection: close\r\nContent-Length: {}\r\n",
                url.path,
                url.host_header(),
                env!("CARGO_PKG_VERSION"),
                body.len()
            );
            for (name, value) in headers {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
            request.push_str("\r\n");
            let mut request = request.into_bytes();
            request.extend_from_slice(body);
            let head_only = method.eq_ignore_ascii_case("HEAD");
            return if url.https {
                let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                    .map_err(|e| format!("{}: {e}", url.host))?;
                let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                round_trip(tls, &request, head_only).await
            } else {
                round_trip(tcp, &request, head_only).await
            };
        }
        Err(last)
    }
}

async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
    head_only: bool,
) -> Result<Response, String> {
    stream.write_all(request).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let mut closed = false;
    let mut head: Option<(ResponseHead, usize)> = None;
    loop {
        if head.is_none() {
            head = parse_response(&buf, head_only)?;
            // Interim answers (100 Continue, 103 Early Hints) come before the real one.
            let interim = head
                .as_ref()
                .filter(|(h, _)| (100..200).contains(&h.status) && h.status != 101)
                .map(|(_, len)| *len);
            if let Some(len) = interim {
                buf.drain(..len);
                head = None;
                continue;
            }
        }
        if let Some((h, len)) = &head {
            let body = &buf[*len..];
            let done = match h.framing {
                Framing::Length(n) if n > MAX_BODY as u64 => {
                    return Err(format!("body of {n} bytes, over {MAX_BODY}"))
                }
                Framing::Length(n) => (body.len() as u64 >= n).then(|| body[..n as usize].to_vec()),
                Framing::Chunked => decode_chunked(body)?,
                Framing::Close => closed.then(|| body.to_vec()),
            };
            if let Some(body) = done {
                let (head, _) = head.unwrap();
                return Ok(Response { head, body });
            }
            if buf.len() - len > MAX_BODY {
                return Err(format!("body over {MAX_BODY} bytes"));
            }
        }
        if closed {
            return Err("connection closed before the response ended".into());
        }
        // A server that closes without TLS close_notify ends the body all the same.
        match stream.read(&mut chunk).await {
            Ok(0) => closed = true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A TLS peer that closes without close_notify: fine when the framing says where
            // the body ends, not when the close is the end (it could be a cut).
            Err(e)
                if e.kind() == std::io::ErrorKind::UnexpectedEof
                    && !matches!(head.as_ref().map(|h| h.0.framing), Some(Framing::Close)) =>
            {
                closed = true
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// An `http://` or `https://` URL, split.
#[derive(Debug, PartialEq, Eq)]
struct Url {
    https: bool,
    host: String,
    port: u16,
    default_port: bool,
    path: String,
}

impl Url {
    fn parse(url: &str) -> Result<Url, String> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("{url}: not an http(s) URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let default = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url}: bad host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("{url}: bad port"))?,
            None => default,
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        Ok(Url {
            https,
            host: host.to_ascii_lowercase(),
            port,
            default_port: port == default,
            path: path.to_string(),
        })
    }

    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl HttpClient for Client {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let headers: Vec<(String, String)> = parts
                .headers
                .iter()
                .filter(|(name, _)| {
                    !matches!(
                        name.as_str(),
                        "host" | "content-length" | "connection" | "user-agent"
                    )
                })
                .map(|(name, value)| {
                    (
                        name.to_string(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let rsp = client
                .send(
                    parts.method.as_str(),
                    &parts.uri.to_string(),
                    &headers,
                    &body,
                )
                .await
                .map_err(|e| instant_acme::Error::Other(e.into()))?;
            let mut builder = http::Response::builder().status(rsp.head.status);
            for (name, value) in &rsp.head.headers {
                builder = builder.header(name.as_str(), value.as_slice());
            }
            let response = builder
                .body(http_body_util::Full::new(Bytes::from(rsp.body)))
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            Ok(BytesResponse::from(response))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("https://127.0.0.1:14000/dir").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (true, "127.0.0.1", 14000, "/dir")
        );
        assert_eq!(u.host_header(), "127.0.0.1:14000");
        let u = Url::parse("https://mta-sts.Example.org").unwrap();
        assert_eq!((u.port, u.path.as_str()), (443, "/"));
        assert_eq!(u.host_header(), "mta-sts.example.org");
        let u = Url::parse("http://[::1]:8080/a?b").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8080));
        assert_eq!(u.host_header(), "[::1]:8080");
        assert!(Url::parse("ftp://x/").is_err());
        assert!(Url::parse("https://:80/").is_err());
        assert!(Url::parse("https://x:y/").is_err());
    }
}
