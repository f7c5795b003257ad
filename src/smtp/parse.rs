//! SMTP command parsing (RFC 5321 §4.1 and the extensions we offer): bytes in, typed
//! [`Command`] out, no I/O. The grammar work is done by the `smtp-proto` crate; this layer
//! turns its flag words into the few typed values the session needs and maps its errors
//! onto replies.

use smtp_proto::{
    Request, MAIL_BODY_8BITMIME, MAIL_BODY_BINARYMIME, MAIL_RET_FULL, MAIL_RET_HDRS, MAIL_SMTPUTF8,
    RCPT_NOTIFY_DELAY, RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS,
};

/// Body type declared with `MAIL FROM ... BODY=` (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
    BinaryMime,
}

/// SASL mechanisms we know by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    /// `from` is `None` for the null reverse-path `<>`.
    Mail {
        from: Option<String>,
        size: Option<u64>,
        body: Body,
        smtputf8: bool,
        /// RFC 3461 ENVID (xtext decoded) and RET (true: FULL, false: HDRS).
        envid: Option<String>,
        ret_full: Option<bool>,
    },
    Rcpt {
        to: String,
        /// RFC 3461 ORCPT address (the `rfc822;` type, xtext decoded).
        orcpt: Option<String>,
        /// RFC 3461 NOTIFY as [`crate::store::notify`] bits; 0 when not given.
        notify: u8,
    },
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Auth {
        mechanism: Mechanism,
        initial_response: Option<String>,
    },
    StartTls,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    /// Known to the grammar but not offered here (LHLO, ETRN, ATRN, BURL).
    NotImplemented(&'static str),
}

/// Why a line is not a command we can act on; each maps to one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Unknown,
    Syntax(&'static str),
    BadSender,
    BadRecipient,
    BadParameter(String),
    /// The line is not UTF-8 (commands and addresses must be, RFC 6531).
    NotUtf8,
}

/// Parses one command line, line ending included.
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    if std::str::from_utf8(line).is_err() {
        return Err(ParseError::NotUtf8);
    }
    // smtp-proto needs the terminating LF to know where the line ends.
    let mut owned;
    let line = if line.ends_with(b"\n") {
        line
    } else {
        owned = line.to_vec();
        owned.extend_from_slice(b"\r\n");
        &owned
    };
    if let Some(command) = bare_postmaster(line) {
        return command;
    }
    let request = Request::parse(&mut line.iter()).map_err(map_error)?;
    Ok(match request {
        Request::Ehlo { host } => Command::Ehlo(host.into_owned()),
        Request::Helo { host } => Command::Helo(host.into_owned()),
        Request::Mail { from } => {
            let body = if from.flags & MAIL_BODY_BINARYMIME != 0 {
                Body::BinaryMime
            } else if from.flags & MAIL_BODY_8BITMIME != 0 {
                Body::EightBitMime
            } else {
                Body::SevenBit
            };
            let ret_full = if from.flags & MAIL_RET_FULL != 0 {
                Some(true)
            } else if from.flags & MAIL_RET_HDRS != 0 {
                Some(false)
            } else {
                None
            };
            let address = from.address.into_owned();
            Command::Mail {
                from: (!address.is_empty()).then_some(address),
                size: (from.size > 0).then_some(from.size as u64),
                body,
                smtputf8: from.flags & MAIL_SMTPUTF8 != 0,
                envid: from.env_id.map(|e| e.into_owned()),
                ret_full,
            }
        }
        Request::Rcpt { to } => {
            let address = to.address.into_owned();
            if address.is_empty() {
                return Err(ParseError::BadRecipient);
            }
            use crate::store::notify;
            let mut bits = 0;
            for (flag, bit) in [
                (RCPT_NOTIFY_SUCCESS, notify::SUCCESS),
                (RCPT_NOTIFY_FAILURE, notify::FAILURE),
                (RCPT_NOTIFY_DELAY, notify::DELAY),
                (RCPT_NOTIFY_NEVER, notify::NEVER),
            ] {
                if to.flags & flag != 0 {
                    bits |= bit;
                }
            }
            Command::Rcpt {
                to: address,
                orcpt: to.orcpt.map(|o| o.into_owned()),
                notify: bits,
            }
        }
        Request::Data => Command::Data,
        Request::Bdat {
            chunk_size,
            is_last,
        } => Command::Bdat {
            size: chunk_size as u64,
            last: is_last,
        },
        Request::Auth {
            mechanism,
            initial_response,
        } => Command::Auth {
            mechanism: if mechanism == smtp_proto::AUTH_PLAIN {
                Mechanism::Plain
            } else if mechanism == smtp_proto::AUTH_LOGIN {
                Mechanism::Login
            } else {
                Mechanism::Other
            },
            initial_response: (!initial_response.is_empty()).then(|| initial_response.into_owned()),
        },
        Request::StartTls => Command::StartTls,
        Request::Rset => Command::Rset,
        Request::Noop { .. } => Command::Noop,
        Request::Quit => Command::Quit,
        Request::Vrfy { .. } => Command::Vrfy,
        Request::Expn { .. } => Command::Expn,
        Request::Help { .. } => Command::Help,
        Request::Lhlo { .. } => Command::NotImplemented("LHLO"),
        Request::Etrn { .. } => Command::NotImplemented("ETRN"),
        Request::Atrn { .. } => Command::NotImplemented("ATRN"),
        Request::Burl { .. } => Command::NotImplemented("BURL"),
    })
}

/// RFC 5321 §4.5.1: `RCPT TO:<Postmaster>` (any case, no domain) must be accepted. The
/// grammar wants a domain, so the line is parsed again with a placeholder one, which is
/// then dropped: parameters are still checked the same way.
/// None when the line is anything else.
fn bare_postmaster(line: &[u8]) -> Option<Result<Command, ParseError>> {
    let text = std::str::from_utf8(line).ok()?;
    if !text.get(..8)?.eq_ignore_ascii_case("RCPT TO:") {
        return None;
    }
    let open = 8 + text[8..].find(|c: char| c != ' ')?;
    let path = text.get(open..open + 12)?;
    if !path.eq_ignore_ascii_case("<postmaster>") {
        return None;
    }
    let retried = format!(
        "{}<postmaster@postmaster.invalid>{}",
        &text[..open],
        &text[open + 12..]
    );
    Some(match parse_command(retried.as_bytes()) {
        Ok(Command::Rcpt { orcpt, notify, .. }) => Ok(Command::Rcpt {
            to: "postmaster".into(),
            orcpt,
            notify,
        }),
        Ok(_) => Err(ParseError::BadRecipient),
        Err(e) => Err(e),
    })
}

fn map_error(e: smtp_proto::Error) -> ParseError {
    use smtp_proto::Error as E;
    match e {
        E::UnknownCommand => ParseError::Unknown,
        E::InvalidSenderAddress => ParseError::BadSender,
        E::InvalidRecipientAddress => ParseError::BadRecipient,
        E::SyntaxError { syntax } => ParseError::Syntax(syntax),
        E::InvalidParameter { param } => ParseError::BadParameter(param.to_string()),
        E::UnsupportedParameter { param } => ParseError::BadParameter(param),
        E::NeedsMoreData { .. } | E::ResponseTooLong | E::InvalidResponse { .. } => {
            ParseError::Syntax("command line")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, ParseError> {
        parse_command(s.as_bytes())
    }

    #[test]
    fn greetings() {
        assert_eq!(
            p("EHLO client.example\r\n"),
            Ok(Command::Ehlo("client.example".into()))
        );
        assert_eq!(
            p("helo [127.0.0.1]\r\n"),
            Ok(Command::Helo("[127.0.0.1]".into()))
        );
    }

    #[test]
    fn mail_from_with_parameters() {
        assert_eq!(
            p("MAIL FROM:<a@b.org> SIZE=1000 BODY=8BITMIME SMTPUTF8\r\n"),
            Ok(Command::Mail {
                from: Some("a@b.org".into()),
                size: Some(1000),
                body: Body::EightBitMime,
                smtputf8: true,
                envid: None,
                ret_full: None,
            })
        );
        assert_eq!(
            p("MAIL FROM:<>\r\n"),
            Ok(Command::Mail {
                from: None,
                size: None,
                body: Body::SevenBit,
                smtputf8: false,
                envid: None,
                ret_full: None,
            })
        );
        assert_eq!(p("MAIL FROM:<a@@b>\r\n"), Err(ParseError::BadSender));
        assert!(matches!(
            p("MAIL FROM:a@b.org\r\n"),
            Err(ParseError::Syntax(_))
        ));
        assert!(matches!(
            p("MAIL FROM:<a@b.org> SIZE=x\r\n"),
            Err(ParseError::BadParameter(_))
        ));
    }

    #[test]
    fn bare_postmaster_is_a_recipient() {
        for line in [
            "RCPT TO:<Postmaster>\r\n",
            "rcpt to:<POSTMASTER> NOTIFY=NEVER\r\n",
        ] {
            let Ok(Command::Rcpt { to, .. }) = p(line) else {
                panic!("{line:?}: {:?}", p(line));
            };
            assert_eq!(to, "postmaster");
        }
        assert_eq!(
            p("RCPT TO:<Postmaster> NOTIFY=NEVER\r\n"),
            Ok(Command::Rcpt {
                to: "postmaster".into(),
                orcpt: None,
                notify: crate::store::notify::NEVER
            })
        );
        assert_eq!(p("RCPT TO:<webmaster>\r\n"), Err(ParseError::BadRecipient));
        assert_eq!(p("RCPT TO:<postmaster\r\n"), Err(ParseError::BadRecipient));
    }

    #[test]
    fn rcpt_and_data() {
        assert_eq!(
            p("RCPT TO:<Alice@Example.org>\r\n"),
            Ok(Command::Rcpt {
                to: "Alice@Example.org".into(),
                orcpt: None,
                notify: 0
            })
        );
        assert_eq!(
            p("RCPT TO:<bob@x.org> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Bob+2B1@x.org\r\n"),
            Ok(Command::Rcpt {
                to: "bob@x.org".into(),
                orcpt: Some("Bob+1@x.org".into()),
                notify: crate::store::notify::SUCCESS | crate::store::notify::DELAY
            })
        );
        assert_eq!(
            p("MAIL FROM:<a@b.org> RET=HDRS ENVID=QQ+2B1\r\n"),
            Ok(Command::Mail {
                from: Some("a@b.org".into()),
                size: None,
                body: Body::SevenBit,
                smtputf8: false,
                envid: Some("QQ+1".into()),
                ret_full: Some(false),
            })
        );
        assert_eq!(p("RCPT TO:<>\r\n"), Err(ParseError::BadRecipient));
        assert!(matches!(p("RCPT alice\r\n"), Err(ParseError::Syntax(_))));
        assert_eq!(p("DATA\r\n"), Ok(Command::Data));
        assert_eq!(
            p("BDAT 100 LAST\r\n"),
            Ok(Command::Bdat {
                size: 100,
                last: true
            })
        );
        assert_eq!(
            p("BDAT 7\r\n"),
            Ok(Command::Bdat {
                size: 7,
                last: false
            })
        );
        assert!(p("BDAT x\r\n").is_err());
    }

    #[test]
    fn auth() {
        assert_eq!(
            p("AUTH PLAIN AGFsaWNlAHB3\r\n"),
            Ok(Command::Auth {
                mechanism: Mechanism::Plain,
                initial_response: Some("AGFsaWNlAHB3".into())
            })
        );
        assert_eq!(
            p("AUTH LOGIN\r\n"),
            Ok(Command::Auth {
                mechanism: Mechanism::Login,
                initial_response: None
            })
        );
        assert!(matches!(
            p("AUTH CRAM-MD5\r\n"),
            Ok(Command::Auth {
                mechanism: Mechanism::Other,
                ..
            })
        ));
    }

    #[test]
    fn simple_commands_and_errors() {
        assert_eq!(p("STARTTLS\r\n"), Ok(Command::StartTls));
        assert_eq!(p("rset\r\n"), Ok(Command::Rset));
        assert_eq!(p("NOOP hello\r\n"), Ok(Command::Noop));
        assert_eq!(p("QUIT\r\n"), Ok(Command::Quit));
        assert_eq!(p("QUIT"), Ok(Command::Quit));
        assert_eq!(p("FROB\r\n"), Err(ParseError::Unknown));
        assert_eq!(p("\r\n"), Err(ParseError::Unknown));
        assert_eq!(parse_command(b"\xff\xfe\r\n"), Err(ParseError::NotUtf8));
        assert_eq!(parse_command(b"\0\0\0\r\n"), Err(ParseError::Unknown));
    }
}
