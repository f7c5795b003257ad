//! `letterbox probe`: does the running server answer on every listener it is configured
//! with? The appliance's update trial keeps a new system only when it does (image
//! `slot.sh check`); a person can run it too.
//!
//! Each listener gets a connection from this host (a wildcard address is probed on the
//! loopback address of its family) and must send its protocol's greeting within the
//! timeout: `220` for SMTP and submission, `+OK` for POP3, `* OK` for IMAP, capabilities
//! ending in `OK` for ManageSieve. Implicit-TLS listeners must complete a handshake first
//! (any certificate: this checks that the server answers, not who it is); HTTP ones must
//! accept the connection (HTTPS: the handshake). The probe then says goodbye politely.

use crate::config::{Config, Listener, ListenerKind};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// What a greeting must look like, and what ends the session politely.
fn expectation(kind: ListenerKind) -> Option<(&'static str, &'static [u8])> {
    match kind {
        ListenerKind::Smtp | ListenerKind::Submission | ListenerKind::Submissions => {
            Some(("220", b"QUIT\r\n"))
        }
        ListenerKind::Pop3 | ListenerKind::Pop3s => Some(("+OK", b"QUIT\r\n")),
        ListenerKind::Imap | ListenerKind::Imaps => Some(("* OK", b"p LOGOUT\r\n")),
        ListenerKind::Managesieve => Some(("OK", b"LOGOUT\r\n")),
        ListenerKind::Http | ListenerKind::Https => None,
    }
}

fn implicit_tls(kind: ListenerKind) -> bool {
    matches!(
        kind,
        ListenerKind::Submissions | ListenerKind::Pop3s | ListenerKind::Imaps | ListenerKind::Https
    )
}

/// Where to connect for a listener bound to `address`.
fn target(address: IpAddr, port: u16) -> SocketAddr {
    let ip = match address {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    SocketAddr::new(ip, port)
}

/// Reads lines until one starts with `want` (ManageSieve sends capabilities first);
/// returns that line. At most 64 lines of at most 4 KiB.
async fn greeting<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    want: &str,
    goodbye: &[u8],
) -> Result<String, String> {
    let mut reader = BufReader::with_capacity(4096, stream);
    for _ in 0..64 {
        let mut line = Vec::new();
        let n = AsyncReadExt::take(&mut reader, 4096)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed the connection without a greeting".into());
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        if text.starts_with(want) {
            let _ = reader.get_mut().write_all(goodbye).await;
            let _ = reader.get_mut().shutdown().await;
            return Ok(text);
        }
        // Anything else is either a continuation (ManageSieve capabilities) or wrong.
        if !(want == "OK" && text.starts_with('"')) {
            return Err(format!("greeted with {text:?}, not {want}"));
        }
    }
    Err("no greeting in 64 lines".into())
}

async fn probe_one(
    listener: &Listener,
    hostname: &str,
    tls: &tokio_rustls::TlsConnector,
) -> Result<String, String> {
    let addr = target(listener.address, listener.port);
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let expected = expectation(listener.kind);
    if implicit_tls(listener.kind) {
        let name = rustls::pki_types::ServerName::try_from(hostname.to_string())
            .unwrap_or_else(|_| rustls::pki_types::ServerName::from(addr.ip()));
        let stream = tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        match expected {
            Some((want, bye)) => greeting(stream, want, bye).await,
            None => Ok("TLS handshake completed".into()),
        }
    } else {
        match expected {
            Some((want, bye)) => greeting(tcp, want, bye).await,
            None => Ok("connection accepted".into()),
        }
    }
}

/// Probes every listener; prints one line each. Fails when any did not answer.
pub fn probe(config: &Config, timeout: Duration) -> Result<(), String> {
    let as_root = nix::unistd::geteuid().is_root();
    let listeners = config.effective_listeners(as_root);
    let tls = crate::tls::client::ClientConfigs::new(None)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.opportunistic));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut failed = 0;
    runtime.block_on(async {
        for listener in &listeners {
            let addr = target(listener.address, listener.port);
            let answer =
                tokio::time::timeout(timeout, probe_one(listener, &config.hostname, &connector))
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {} s", timeout.as_secs())));
            match answer {
                Ok(line) => println!("{} {addr}: ok ({line})", listener.kind),
                Err(why) => {
                    failed += 1;
                    println!("{} {addr}: FAILED ({why})", listener.kind);
                }
            }
        }
    });
    if failed > 0 {
        return Err(format!(
            "{failed} of {} listeners did not answer",
            listeners.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_are_probed_on_loopback() {
        assert_eq!(
            target("0.0.0.0".parse().unwrap(), 25),
            "127.0.0.1:25".parse().unwrap()
        );
        assert_eq!(
            target("::".parse().unwrap(), 143),
            "[::1]:143".parse().unwrap()
        );
        assert_eq!(
            target("192.0.2.7".parse().unwrap(), 110),
            "192.0.2.7:110".parse().unwrap()
        );
    }

    #[tokio::test]
    async fn greetings_are_matched_by_protocol() {
        let run = |input: &'static [u8], want: &'static str| async move {
            let (mut server, client) = tokio::io::duplex(8192);
            server.write_all(input).await.unwrap();
            drop(server);
            greeting(client, want, b"").await
        };
        assert_eq!(
            run(b"220 mx.example ESMTP\r\n", "220").await,
            Ok("220 mx.example ESMTP".into())
        );
        assert_eq!(
            run(b"421 busy\r\n", "220").await,
            Err("greeted with \"421 busy\", not 220".into())
        );
        assert_eq!(
            run(
                b"\"IMPLEMENTATION\" \"x\"\r\n\"SASL\" \"\"\r\nOK \"ready\"\r\n",
                "OK"
            )
            .await,
            Ok("OK \"ready\"".into())
        );
        assert_eq!(
            run(b"", "+OK").await,
            Err("closed the connection without a greeting".into())
        );
    }
}
