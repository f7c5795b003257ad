//! AUTH (RFC 4954) on the submission ports: PLAIN (RFC 4616) and LOGIN, only over TLS,
//! only outside a mail transaction.

use super::*;

impl Session {
    pub(super) async fn auth(
        &mut self,
        mechanism: Mechanism,
        initial: Option<String>,
    ) -> io::Result<Option<End>> {
        let refusal = if self.kind == ListenerKind::Smtp {
            Some((
                502,
                "5.5.1",
                "AUTH is not available on this port; use submission",
            ))
        } else if !self.conn.is_tls() {
            Some((538, "5.7.11", "Encryption required: use STARTTLS first"))
        } else if self.user.is_some() {
            Some((503, "5.5.1", "Already authenticated"))
        } else if self.tx.is_some() {
            Some((
                503,
                "5.5.1",
                "AUTH is not allowed during a mail transaction",
            ))
        } else if !self.esmtp {
            Some((503, "5.5.1", "Send EHLO first"))
        } else if mechanism == Mechanism::Other {
            Some((504, "5.5.4", "Unrecognized authentication type"))
        } else {
            None
        };
        if let Some((code, esc, text)) = refusal {
            let stop = self.error(code, esc, text);
            return Ok(stop.then_some(End::TooManyErrors));
        }
        let credentials = match mechanism {
            Mechanism::Plain => {
                let response = match initial {
                    Some(r) => r,
                    None => match self.sasl_prompt("").await? {
                        Some(r) => r,
                        None => return Ok(Some(End::Closed)),
                    },
                };
                decode_sasl_line(&response).and_then(|bytes| parse_plain(&bytes))
            }
            _ => self.auth_login(initial).await?,
        };
        let (user, password) = match credentials {
            Ok(c) => c,
            Err(SaslError::Cancelled) => {
                let stop = self.error(501, "5.0.0", "Authentication cancelled");
                return Ok(stop.then_some(End::TooManyErrors));
            }
            Err(SaslError::Malformed) => {
                let stop = self.error(501, "5.5.2", "Malformed authentication data");
                return Ok(stop.then_some(End::TooManyErrors));
            }
        };
        match self
            .shared
            .auth
            .login(&user, password, self.conn.peer.ip(), "smtp")
            .await
        {
            Some(account) => {
                log::info!("smtp {}: authenticated as {account}", self.conn.peer);
                self.user = Some(account);
                self.reply(235, "2.7.0", "Authentication successful");
                Ok(None)
            }
            None => {
                log::info!(
                    "smtp {}: authentication failed for {}",
                    self.conn.peer,
                    printable(&user)
                );
                let stop = self.error(535, "5.7.8", "Authentication credentials invalid");
                Ok(stop.then_some(End::TooManyErrors))
            }
        }
    }

    /// LOGIN (draft-murchison-sasl-login): username and password as two base64 answers.
    pub(super) async fn auth_login(
        &mut self,
        initial: Option<String>,
    ) -> io::Result<Result<(String, Secret), SaslError>> {
        let user = match initial {
            Some(u) => u,
            None => match self.sasl_prompt("VXNlcm5hbWU6").await? {
                Some(u) => u,
                None => return Ok(Err(SaslError::Cancelled)),
            },
        };
        let user = match decode_sasl_line(&user).map(String::from_utf8) {
            Ok(Ok(u)) => u,
            Ok(Err(_)) => return Ok(Err(SaslError::Malformed)),
            Err(e) => return Ok(Err(e)),
        };
        let password = match self.sasl_prompt("UGFzc3dvcmQ6").await? {
            Some(p) => p,
            None => return Ok(Err(SaslError::Cancelled)),
        };
        Ok(match decode_sasl_line(&password).map(String::from_utf8) {
            Ok(Ok(p)) => Ok((user, Secret(p))),
            Ok(Err(_)) => Err(SaslError::Malformed),
            Err(e) => Err(e),
        })
    }

    /// Sends a 334 challenge and reads the answer line.
    pub(super) async fn sasl_prompt(&mut self, challenge: &str) -> io::Result<Option<String>> {
        self.conn.send(format!("334 {challenge}\r\n").as_bytes());
        match self.conn.read_line(MAX_SASL_LINE).await? {
            Line::Complete(line) => Ok(Some(String::from_utf8_lossy(&line).trim().to_string())),
            Line::TooLong => Ok(Some("*".into())),
            Line::Closed => Ok(None),
        }
    }
}
