//! The SMTP client: one connection to a next hop (an MX host or a smarthost), over which
//! any number of queued messages are sent one after another.
//!
//! EHLO (HELO is not tried: every MTA of this century speaks ESMTP), STARTTLS when offered
//! or required, AUTH PLAIN or LOGIN for smarthosts, then per message MAIL, RCPT…, DATA,
//! pipelined when the server offers PIPELINING (RFC 2920). The EHLO answer is parsed by
//! smtp-proto. Replies are read with bounded lines; every read and write has a timeout.

use crate::auth::{encode_base64, Secret};
use crate::net::dot::DotStuffer;
use crate::net::{Connection, Line};
use crate::store::notify;
use rustls::pki_types::ServerName;
use smtp_proto::{
    EhloResponse, AUTH_LOGIN, AUTH_PLAIN, EXT_8BIT_MIME, EXT_DSN, EXT_PIPELINING, EXT_SIZE,
    EXT_SMTP_UTF8, EXT_START_TLS,
};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// Longest reply line we accept from a server (RFC 5321 §4.5.3.1.5 says 512).
const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one (multi-line) reply.
const MAX_REPLY_LINES: usize = 100;
/// Connect, greeting and command timeout (RFC 5321 §4.5.3.2 asks for 5 minutes; a dead
/// host should not hold a connection slot that long).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Wait for the reply to the final dot (RFC 5321 §4.5.3.2.6: 10 minutes).
const DATA_END_TIMEOUT: Duration = Duration::from_secs(600);

/// How TLS is used towards a next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPolicy {
    /// STARTTLS when offered; the certificate need not verify.
    Opportunistic,
    /// STARTTLS required, certificate verified.
    Required,
    /// TLS from the first byte (port 465), certificate verified.
    Implicit,
    /// Plain text.
    None,
}

/// Where to connect and how.
#[derive(Debug, Clone)]
pub struct Hop {
    /// Host name: for the certificate check, logs and Remote-MTA.
    pub host: String,
    pub addr: SocketAddr,
    pub tls: TlsPolicy,
    pub credentials: Option<(String, Secret)>,
    /// DNSSEC-proven TLSA records of the host: STARTTLS required, the certificate checked
    /// against them (see [`super::dane`]).
    pub dane: Option<std::sync::Arc<Vec<crate::dns::Tlsa>>>,
    /// For an MX host: the policy its TLS results are reported under (RFC 8460).
    pub tlsrpt: Option<super::tlsrpt::PolicyType>,
    /// After a TLS failure, try once more this way: an MTA-STS policy in testing mode is
    /// checked (for the report) but does not stop delivery.
    pub fallback: Option<TlsPolicy>,
}

/// A server reply: its code and its text (all lines, joined by spaces, for diagnostics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
    /// `550 5.1.1 text`, as a DSN Diagnostic-Code shows it.
    pub fn diagnostic(&self) -> String {
        format!("{} {}", self.code, self.text)
    }
    /// The enhanced status code in the reply (RFC 3463), or one derived from the code.
    pub fn status(&self) -> String {
        let first = self.text.split_whitespace().next().unwrap_or("");
        let parts: Vec<&str> = first.split('.').collect();
        if parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return first.to_string();
        }
        format!("{}.0.0", self.code / 100)
    }
}

/// Why a connection or a whole transaction failed (not one recipient).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub permanent: bool,
    /// For the DSN: a server reply, or our own words.
    pub diagnostic: String,
    pub status: String,
}

impl Failure {
    pub fn temporary(why: impl Into<String>) -> Failure {
        Failure {
            permanent: false,
            diagnostic: why.into(),
            status: "4.4.1".into(),
        }
    }
    pub fn permanent(status: &str, why: impl Into<String>) -> Failure {
        Failure {
            permanent: true,
            diagnostic: why.into(),
            status: status.into(),
        }
    }
    fn from_reply(reply: &Reply) -> Failure {
        Failure {
            permanent: reply.is_permanent(),
            diagnostic: reply.diagnostic(),
            status: reply.status(),
        }
    }
}

/// The envelope of one message on this connection.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub sender: &'a str,
    /// (address, ORCPT, NOTIFY bits)
    pub recipients: Vec<(&'a str, Option<&'a str>, u8)>,
    pub envid: Option<&'a str>,
    pub ret_full: Option<bool>,
    pub eight_bit: bool,
    pub smtputf8: bool,
    pub size: u64,
}

/// What became of each recipient of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted; `dsn` tells whether the next hop takes over DSN duties (else "relayed").
    Delivered {
        dsn: bool,
    },
    Failed(Failure),
}

/// A live connection to a next hop.
pub struct Client {
    conn: Connection,
    pub hop: Hop,
    capabilities: u32,
    auth_mechanisms: u64,
    max_size: usize,
    /// Whether TLS is up with a certificate that verified.
    pub tls_verified: bool,
}

/// TLS client configurations: one that verifies (webpki roots plus `ca_file`) and one that
/// accepts any certificate, for opportunistic STARTTLS.
#[derive(Clone)]
pub struct Connectors {
    pub verified: tokio_rustls::TlsConnector,
    pub opportunistic: tokio_rustls::TlsConnector,
}

impl Client {
    /// Whether the session runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.conn.is_tls()
    }

    /// Connects, reads the greeting, says EHLO, and sets up TLS and AUTH as `hop` asks.
    pub async fn connect(hop: Hop, helo: &str, tls: &Connectors) -> Result<Client, Failure> {
        let stream = tokio::time::timeout(COMMAND_TIMEOUT, TcpStream::connect(hop.addr))
            .await
            .map_err(|_| Failure::temporary(format!("connect to {}: timed out", hop.addr)))?
            .map_err(|e| Failure::temporary(format!("connect to {}: {e}", hop.addr)))?;
        let _ = stream.set_nodelay(true);
        let mut client = Client {
            conn: Connection::new(Box::new(stream), hop.addr, COMMAND_TIMEOUT),
            hop,
            capabilities: 0,
            auth_mechanisms: 0,
            max_size: 0,
            tls_verified: false,
        };
        if client.hop.tls == TlsPolicy::Implicit {
            client.handshake(&tls.verified).await?;
        }
        let greeting = client.read_reply().await?;
        if greeting.code != 220 {
            return Err(Failure::from_reply(&greeting));
        }
        client.ehlo(helo).await?;
        let offers_tls = client.capabilities & EXT_START_TLS != 0;
        if let Some(records) = client.hop.dane.clone() {
            if !offers_tls {
                return Err(Failure::temporary(format!(
                    "{} does not offer STARTTLS, which its TLSA records require",
                    client.hop.host
                )));
            }
            let reply = client.command("STARTTLS\r\n").await?;
            if reply.code != 220 {
                return Err(Failure::from_reply(&reply));
            }
            let connector = super::dane::connector(&records).map_err(Failure::temporary)?;
            client.handshake(&connector).await?;
            client.ehlo(helo).await?;
            if client.hop.credentials.is_some() {
                client.authenticate().await?;
            }
            return Ok(client);
        }
        match client.hop.tls {
            TlsPolicy::Required if !offers_tls => {
                return Err(Failure::temporary(format!(
                    "{} does not offer STARTTLS, which is required",
                    client.hop.host
                )))
            }
            TlsPolicy::Required | TlsPolicy::Opportunistic if offers_tls => {
                let reply = client.command("STARTTLS\r\n").await?;
                if reply.code != 220 {
                    return Err(Failure::from_reply(&reply));
                }
                let connector = if client.hop.tls == TlsPolicy::Required {
                    &tls.verified
                } else {
                    &tls.opportunistic
                };
                client.handshake(connector).await?;
                client.ehlo(helo).await?;
            }
            _ => {}
        }
        if client.hop.credentials.is_some() {
            client.authenticate().await?;
        }
        Ok(client)
    }

    async fn handshake(&mut self, connector: &tokio_rustls::TlsConnector) -> Result<(), Failure> {
        let name = ServerName::try_from(self.hop.host.clone())
            .map_err(|_| Failure::temporary(format!("{:?} is not a host name", self.hop.host)))?;
        self.conn
            .connect_tls(connector, name)
            .await
            .map_err(|e| Failure::temporary(format!("TLS with {}: {e}", self.hop.host)))?;
        // The lenient connector is only used when verification is not required.
        self.tls_verified = self.hop.tls != TlsPolicy::Opportunistic;
        Ok(())
    }

    async fn ehlo(&mut self, helo: &str) -> Result<(), Failure> {
        self.conn.send(format!("EHLO {helo}\r\n").as_bytes());
        let (reply, raw) = self.read_reply_raw().await?;
        if reply.code != 250 {
            return Err(Failure::from_reply(&reply));
        }
        let ehlo = EhloResponse::parse(&mut raw.iter())
            .map_err(|e| Failure::temporary(format!("unreadable EHLO reply: {e}")))?;
        self.capabilities = ehlo.capabilities;
        self.max_size = ehlo.size;
        self.auth_mechanisms = ehlo.auth_mechanisms;
        Ok(())
    }

    async fn authenticate(&mut self) -> Result<(), Failure> {
        let Some((user, password)) = self.hop.credentials.clone() else {
            return Ok(());
        };
        if !self.conn.is_tls() {
            // Never send a password in the clear, whatever the configuration says.
            return Err(Failure::temporary(format!(
                "not sending credentials to {} without TLS",
                self.hop.host
            )));
        }
        let reply = if self.auth_mechanisms & AUTH_PLAIN != 0 {
            let token = encode_base64(format!("\0{user}\0{}", password.0).as_bytes());
            self.command(&format!("AUTH PLAIN {token}\r\n")).await?
        } else if self.auth_mechanisms & AUTH_LOGIN != 0 {
            let reply = self.command("AUTH LOGIN\r\n").await?;
            if reply.code != 334 {
                return Err(Failure::from_reply(&reply));
            }
            let reply = self
                .command(&format!("{}\r\n", encode_base64(user.as_bytes())))
                .await?;
            if reply.code != 334 {
                return Err(Failure::from_reply(&reply));
            }
            self.command(&format!("{}\r\n", encode_base64(password.0.as_bytes())))
                .await?
        } else {
            return Err(Failure::temporary(format!(
                "{} offers neither AUTH PLAIN nor AUTH LOGIN",
                self.hop.host
            )));
        };
        if reply.code != 235 {
            // A refused login is a configuration problem: keep the mail, try again later.
            let mut failure = Failure::from_reply(&reply);
            failure.permanent = false;
            return Err(failure);
        }
        Ok(())
    }

    /// Sends one message. `body` yields the message bytes piece by piece (already without
    /// anything that must not leave this server); `None` ends it.
    pub async fn send<B>(
        &mut self,
        envelope: &Envelope<'_>,
        mut body: B,
    ) -> Result<Vec<Outcome>, Failure>
    where
        B: AsyncPieces,
    {
        if envelope.smtputf8 && self.capabilities & EXT_SMTP_UTF8 == 0 {
            return Err(Failure::permanent(
                "5.6.7",
                format!(
                    "{} does not support SMTPUTF8, which this message needs",
                    self.hop.host
                ),
            ));
        }
        if envelope.eight_bit && self.capabilities & EXT_8BIT_MIME == 0 {
            return Err(Failure::permanent(
                "5.6.3",
                format!(
                    "{} does not accept 8-bit messages (no 8BITMIME)",
                    self.hop.host
                ),
            ));
        }
        if self.capabilities & EXT_SIZE != 0
            && self.max_size > 0
            && envelope.size > self.max_size as u64
        {
            return Err(Failure::permanent(
                "5.3.4",
                format!(
                    "message of {} bytes exceeds the {} bytes {} accepts",
                    envelope.size, self.max_size, self.hop.host
                ),
            ));
        }
        let dsn = self.capabilities & EXT_DSN != 0;
        let mut mail = format!("MAIL FROM:<{}>", envelope.sender);
        if self.capabilities & EXT_SIZE != 0 {
            mail.push_str(&format!(" SIZE={}", envelope.size));
        }
        if envelope.eight_bit {
            mail.push_str(" BODY=8BITMIME");
        }
        if envelope.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        if dsn {
            match envelope.ret_full {
                Some(true) => mail.push_str(" RET=FULL"),
                Some(false) => mail.push_str(" RET=HDRS"),
                None => {}
            }
            if let Some(envid) = envelope.envid {
                mail.push_str(&format!(" ENVID={}", xtext(envid)));
            }
        }
        mail.push_str("\r\n");
        let mut rcpts = Vec::with_capacity(envelope.recipients.len());
        for (address, orcpt, bits) in &envelope.recipients {
            let mut rcpt = format!("RCPT TO:<{address}>");
            if dsn {
                if *bits != 0 {
                    rcpt.push_str(&format!(" NOTIFY={}", notify_names(*bits)));
                }
                if let Some(orcpt) = orcpt {
                    rcpt.push_str(&format!(" ORCPT=rfc822;{}", xtext(orcpt)));
                }
            }
            rcpt.push_str("\r\n");
            rcpts.push(rcpt);
        }
        let pipelining = self.capabilities & EXT_PIPELINING != 0;
        // MAIL, RCPT… and DATA go out together when pipelining; else one at a time.
        self.conn.send(mail.as_bytes());
        if !pipelining {
            self.flush().await?;
            let reply = self.read_reply().await?;
            if !reply.is_positive() {
                return Err(Failure::from_reply(&reply));
            }
        }
        let mut outcomes = Vec::with_capacity(rcpts.len());
        let mut mail_reply = None;
        if pipelining {
            for rcpt in &rcpts {
                self.conn.send(rcpt.as_bytes());
            }
            self.conn.send(b"DATA\r\n");
            self.flush().await?;
            mail_reply = Some(self.read_reply().await?);
            for _ in &rcpts {
                outcomes.push(self.read_reply().await?);
            }
        } else {
            for rcpt in &rcpts {
                self.conn.send(rcpt.as_bytes());
                self.flush().await?;
                outcomes.push(self.read_reply().await?);
            }
        }
        let any_accepted = outcomes.iter().any(Reply::is_positive);
        let data_reply = if pipelining {
            self.read_reply().await?
        } else if any_accepted {
            self.conn.send(b"DATA\r\n");
            self.flush().await?;
            self.read_reply().await?
        } else {
            Reply {
                code: 554,
                text: "no valid recipients".into(),
            }
        };
        if let Some(reply) = mail_reply.filter(|r| !r.is_positive()) {
            if data_reply.code == 354 {
                self.end_data_without_content().await?;
            }
            return Err(Failure::from_reply(&reply));
        }
        let result = |o: &Reply, delivered: &Option<Failure>| -> Outcome {
            if !o.is_positive() {
                return Outcome::Failed(Failure::from_reply(o));
            }
            match delivered {
                None => Outcome::Delivered { dsn },
                Some(f) => Outcome::Failed(f.clone()),
            }
        };
        if data_reply.code != 354 {
            if !any_accepted {
                return Ok(outcomes.iter().map(|o| result(o, &None)).collect());
            }
            return Err(Failure::from_reply(&data_reply));
        }
        if !any_accepted {
            // RFC 2920 §3.1: a 354 after no accepted recipient still needs the dot.
            self.end_data_without_content().await?;
            return Ok(outcomes.iter().map(|o| result(o, &None)).collect());
        }
        let mut stuffer = DotStuffer::for_smtp();
        let mut out = Vec::new();
        while let Some(piece) = body
            .next_piece()
            .await
            .map_err(|e| Failure::temporary(format!("reading the queued message: {e}")))?
        {
            out.clear();
            stuffer.push(&piece, &mut out);
            self.conn.send(&out);
            self.flush().await?;
        }
        out.clear();
        stuffer.finish(&mut out);
        self.conn.send(&out);
        self.flush().await?;
        self.conn.read_timeout = DATA_END_TIMEOUT;
        let end = self.read_reply().await;
        self.conn.read_timeout = COMMAND_TIMEOUT;
        let end = end?;
        let after = (!end.is_positive()).then(|| Failure::from_reply(&end));
        Ok(outcomes.iter().map(|o| result(o, &after)).collect())
    }

    async fn end_data_without_content(&mut self) -> Result<(), Failure> {
        self.conn.send(b".\r\n");
        self.flush().await?;
        self.read_reply().await.map(|_| ())
    }

    /// Resets the connection for the next message.
    pub async fn reset(&mut self) -> Result<(), Failure> {
        let reply = self.command("RSET\r\n").await?;
        if reply.code != 250 {
            return Err(Failure::from_reply(&reply));
        }
        Ok(())
    }

    pub async fn quit(mut self) {
        let _ = self.command("QUIT\r\n").await;
        self.conn.close().await;
    }

    async fn command(&mut self, line: &str) -> Result<Reply, Failure> {
        self.conn.send(line.as_bytes());
        self.flush().await?;
        self.read_reply().await
    }

    async fn flush(&mut self) -> Result<(), Failure> {
        self.conn
            .flush()
            .await
            .map_err(|e| Failure::temporary(format!("writing to {}: {e}", self.hop.host)))
    }

    async fn read_reply(&mut self) -> Result<Reply, Failure> {
        Ok(self.read_reply_raw().await?.0)
    }

    /// One reply, possibly multi-line, and its raw bytes.
    async fn read_reply_raw(&mut self) -> Result<(Reply, Vec<u8>), Failure> {
        let lost = |what: String| Failure::temporary(format!("{what} from {}", self.hop.host));
        let mut raw = Vec::new();
        let mut text = Vec::new();
        for _ in 0..MAX_REPLY_LINES {
            let line = match self.conn.read_line(MAX_REPLY_LINE).await {
                Ok(Line::Complete(line)) => line,
                Ok(Line::TooLong) => return Err(lost("over-long reply line".into())),
                Ok(Line::Closed) => return Err(lost("connection closed".into())),
                Err(e) => return Err(lost(format!("read error ({e})"))),
            };
            raw.extend_from_slice(&line);
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
            let Some(code) = code.filter(|c| (200..600).contains(c)) else {
                return Err(lost(format!("malformed reply {line:?}")));
            };
            let last = line.as_bytes().get(3) != Some(&b'-');
            text.push(line.get(4..).unwrap_or("").trim().to_string());
            if last {
                return Ok((
                    Reply {
                        code,
                        text: text.join(" "),
                    },
                    raw,
                ));
            }
        }
        Err(lost("over-long multi-line reply".into()))
    }
}

/// A source of message bytes read piece by piece (a blob in the store).
pub trait AsyncPieces {
    fn next_piece(
        &mut self,
    ) -> impl std::future::Future<Output = std::io::Result<Option<Vec<u8>>>> + Send;
}

/// RFC 3461 §4: xtext encodes `+`, `=` and anything outside `!`..`~` as `+HH`.
pub fn xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

fn notify_names(bits: u8) -> String {
    if bits & notify::NEVER != 0 {
        return "NEVER".into();
    }
    let mut names = Vec::new();
    for (bit, name) in [
        (notify::SUCCESS, "SUCCESS"),
        (notify::FAILURE, "FAILURE"),
        (notify::DELAY, "DELAY"),
    ] {
        if bits & bit != 0 {
            names.push(name);
        }
    }
    names.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_and_notify() {
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(
            notify_names(notify::SUCCESS | notify::DELAY),
            "SUCCESS,DELAY"
        );
        assert_eq!(notify_names(notify::NEVER | notify::FAILURE), "NEVER");
    }

    #[test]
    fn reply_status() {
        let r = |code, text: &str| Reply {
            code,
            text: text.into(),
        };
        assert_eq!(r(550, "5.1.1 no such user").status(), "5.1.1");
        assert_eq!(r(550, "no such user").status(), "5.0.0");
        assert_eq!(r(451, "4.7.1 greylisted").status(), "4.7.1");
        assert_eq!(r(452, "4.x.y odd").status(), "4.0.0");
        assert!(r(550, "").is_permanent() && !r(451, "").is_permanent());
    }
}
