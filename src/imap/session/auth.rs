//! Commands of any state and of the not-authenticated state: CAPABILITY, NOOP/CHECK (in
//! `dispatch`), LOGOUT, ID (RFC 2971), ENABLE (RFC 5161), STARTTLS, LOGIN and
//! AUTHENTICATE PLAIN with SASL-IR (RFC 9051 §6.1, §6.2; RFC 4959, RFC 4616).

use super::{Reply, Session};
use crate::auth::{decode_sasl_line, parse_plain, SaslError, Secret};
use crate::imap::encode;
use crate::imap::parse::{Capability, Mechanism};
use crate::limits::MAX_SASL_LINE;
use crate::net::Line;
use std::io;

/// Advertised before and after login (AUTH=, STARTTLS and APPENDLIMIT are added).
const CAPABILITIES: &str = "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE \
    UNSELECT CHILDREN MOVE UIDPLUS SPECIAL-USE LIST-EXTENDED LIST-STATUS STATUS=SIZE CONDSTORE \
    QRESYNC ESEARCH SEARCHRES BINARY UTF8=ACCEPT QUOTA QUOTA=RES-STORAGE WITHIN CREATE-SPECIAL-USE PREVIEW MULTIAPPEND \
    SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES COMPRESS=DEFLATE CATENATE SAVEDATE \
    CONTEXT=SEARCH CONTEXT=SORT NOTIFY";

impl Session {
    pub(super) fn capabilities(&self) -> String {
        let mut caps = String::from(CAPABILITIES);
        caps.push_str(&format!(" APPENDLIMIT={}", self.append_limit()));
        if self.user.is_none() {
            if !self.conn.is_tls() {
                caps.push_str(" STARTTLS");
            }
            if self.login_allowed() {
                caps.push_str(" AUTH=PLAIN AUTH=LOGIN");
            } else {
                caps.push_str(" LOGINDISABLED");
            }
        }
        caps
    }

    /// CAPABILITY (RFC 9051 §6.1.1).
    pub(super) async fn capability(&mut self, tag: &str) -> io::Result<Reply> {
        let caps = self.capabilities();
        self.untagged(&format!("CAPABILITY {caps}"));
        self.finish(tag, "OK CAPABILITY completed", true).await
    }

    /// LOGOUT (RFC 9051 §6.1.3).
    pub(super) fn logout(&mut self, tag: &str) -> Reply {
        self.untagged("BYE letterbox logging out");
        self.tagged(tag, "OK LOGOUT completed");
        Reply::End(super::End::Quit)
    }

    /// ID (RFC 2971 §3.1): the client's parameters are not looked at.
    pub(super) async fn id(&mut self, tag: &str) -> io::Result<Reply> {
        self.untagged("ID (\"name\" \"letterbox\")");
        self.finish(tag, "OK ID completed", true).await
    }

    /// ENABLE (RFC 5161 §3.1); QRESYNC implies CONDSTORE (RFC 7162 §3.2.3) and IMAP4rev2
    /// UTF-8 mailbox names (RFC 9051 §5.1).
    pub(super) async fn enable(
        &mut self,
        tag: &str,
        capabilities: &[Capability],
    ) -> io::Result<Reply> {
        for capability in capabilities {
            match capability {
                Capability::CondStore => self.enable_condstore().await?,
                Capability::QResync => {
                    self.enable_condstore().await?;
                    self.qresync = true;
                }
                Capability::Utf8Accept => self.utf8 = true,
                Capability::Imap4rev2 => {
                    self.rev2 = true;
                    self.utf8 = true;
                    // IMAP4rev2 has no \Recent.
                    if let Some(sel) = self.selected.as_mut() {
                        sel.recent.clear();
                    }
                }
            }
        }
        self.conn.send(encode::enabled(capabilities).as_bytes());
        self.finish(tag, "OK ENABLE completed", true).await
    }

    /// STARTTLS (RFC 9051 §6.2.1).
    pub(super) async fn starttls(&mut self, tag: &str) -> io::Result<Reply> {
        if self.conn.is_tls() {
            return Ok(Reply::Bad("TLS is already active".into()));
        }
        self.tagged(tag, "OK Begin TLS negotiation now");
        let acceptor = self.shared.tls.acceptor();
        if let Err(e) = self.conn.start_tls(&acceptor).await {
            log::info!("imap {}: TLS handshake failed: {e}", self.conn.peer);
            return Ok(Reply::End(super::End::Closed));
        }
        Ok(Reply::Done)
    }

    /// COMPRESS DEFLATE (RFC 4978): the tagged OK goes out uncompressed, everything after
    /// it in both directions is DEFLATE.
    pub(super) async fn compress(&mut self, tag: &str, mechanism: &str) -> io::Result<Reply> {
        if mechanism != "DEFLATE" {
            return Ok(Reply::Bad("Unknown compression mechanism".into()));
        }
        if self.conn.is_compressed() {
            return Ok(Reply::No(
                "[COMPRESSIONACTIVE] DEFLATE is already active".into(),
            ));
        }
        self.tagged(tag, "OK DEFLATE active");
        if let Err(e) = self.conn.start_deflate().await {
            log::info!("imap {}: starting COMPRESS failed: {e}", self.conn.peer);
            return Ok(Reply::End(super::End::Closed));
        }
        log::info!("imap {}: COMPRESS DEFLATE active", self.conn.peer);
        Ok(Reply::Done)
    }

    /// LOGIN (RFC 9051 §6.2.3): only over TLS, unless plaintext is allowed on loopback.
    pub(super) async fn login_command(
        &mut self,
        tag: &str,
        user: String,
        password: Secret,
    ) -> io::Result<Reply> {
        if !self.login_allowed() {
            return Ok(Reply::No(
                "[PRIVACYREQUIRED] LOGIN requires TLS: use STARTTLS".into(),
            ));
        }
        self.login(tag, &user, password).await
    }

    /// AUTHENTICATE PLAIN (RFC 9051 §6.2.2, RFC 4616), with SASL-IR (RFC 4959).
    pub(super) async fn authenticate(
        &mut self,
        tag: &str,
        mechanism: Mechanism,
    ) -> io::Result<Reply> {
        if mechanism == Mechanism::Other {
            return Ok(Reply::No("Unsupported authentication mechanism".into()));
        }
        if !self.login_allowed() {
            return Ok(Reply::No(
                "[PRIVACYREQUIRED] Authentication requires TLS: use STARTTLS".into(),
            ));
        }
        let credentials = match mechanism {
            Mechanism::Plain(initial) => match self.sasl_step(initial, "").await? {
                Ok(bytes) => parse_plain(&bytes),
                Err(reply) => return Ok(reply),
            },
            Mechanism::Login(initial) => {
                // The prompts are "Username:" and "Password:", base64-encoded.
                let user = match self.sasl_step(initial, "VXNlcm5hbWU6").await? {
                    Ok(bytes) => bytes,
                    Err(reply) => return Ok(reply),
                };
                let password = match self.sasl_step(None, "UGFzc3dvcmQ6").await? {
                    Ok(bytes) => bytes,
                    Err(reply) => return Ok(reply),
                };
                match (String::from_utf8(user), String::from_utf8(password)) {
                    (Ok(user), Ok(password)) => Ok((user, Secret(password))),
                    _ => Err(SaslError::Malformed),
                }
            }
            Mechanism::Other => Err(SaslError::Malformed),
        };
        match credentials {
            Ok((user, password)) => self.login(tag, &user, password).await,
            Err(SaslError::Cancelled) => Ok(Reply::Bad("Authentication cancelled".into())),
            Err(SaslError::Malformed) => Ok(Reply::Bad("Malformed authentication data".into())),
        }
    }

    /// One SASL exchange: the initial response when the client gave one, else a
    /// continuation with `challenge` (base64) and the client's line; decoded.
    async fn sasl_step(
        &mut self,
        initial: Option<String>,
        challenge: &str,
    ) -> io::Result<Result<Vec<u8>, Reply>> {
        let response = match initial {
            Some(response) => response,
            None => {
                self.conn.send(format!("+ {challenge}\r\n").as_bytes());
                match self.conn.read_line(MAX_SASL_LINE).await? {
                    Line::Complete(l) => String::from_utf8_lossy(&l).trim().to_string(),
                    Line::TooLong => return Ok(Err(Reply::Bad("Line too long".into()))),
                    Line::Closed => return Ok(Err(Reply::End(super::End::Closed))),
                }
            }
        };
        Ok(match decode_sasl_line(&response) {
            Ok(bytes) => Ok(bytes),
            Err(SaslError::Cancelled) => Err(Reply::Bad("Authentication cancelled".into())),
            Err(SaslError::Malformed) => Err(Reply::Bad("Malformed authentication data".into())),
        })
    }

    async fn login(&mut self, tag: &str, user: &str, password: Secret) -> io::Result<Reply> {
        let peer = self.conn.peer.ip();
        let Some(account) = self.shared.auth.login(user, password, peer, "imap").await else {
            log::info!("imap {}: authentication failed", self.conn.peer);
            return Ok(Reply::No(
                "[AUTHENTICATIONFAILED] Invalid credentials".into(),
            ));
        };
        log::info!("imap {}: logged in as {account}", self.conn.peer);
        self.user = Some(account);
        let caps = self.capabilities();
        self.tagged(tag, &format!("OK [CAPABILITY {caps}] Logged in"));
        Ok(Reply::Done)
    }
}
