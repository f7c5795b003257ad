//! POP3 command parsing (RFC 1939, 2449, 2595, 5034): bytes in, typed [`Command`] out.

use crate::auth::Secret;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Capa,
    User(String),
    Pass(Secret),
    /// `AUTH` alone lists mechanisms; otherwise a mechanism and optional initial response.
    Auth(Option<(String, Option<String>)>),
    Stls,
    Stat,
    List(Option<u32>),
    Retr(u32),
    Dele(u32),
    Noop,
    Rset,
    Quit,
    Top(u32, u32),
    Uidl(Option<u32>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Unknown,
    /// Wrong arguments; the text is the expected syntax.
    Syntax(&'static str),
}

/// Parses one command line (line ending optional).
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|_| ParseError::Unknown)?;
    let (keyword, rest) = match text.split_once(' ') {
        Some((k, r)) => (k, Some(r)),
        None => (text, None),
    };
    let keyword = keyword.to_ascii_uppercase();
    // PASS takes the rest of the line verbatim: passwords may contain spaces.
    if keyword == "PASS" {
        return match rest {
            Some(p) if !p.is_empty() => Ok(Command::Pass(Secret(p.to_string()))),
            _ => Err(ParseError::Syntax("PASS password")),
        };
    }
    let args: Vec<&str> = rest.map(|r| r.split(' ').collect()).unwrap_or_default();
    let number = |s: &str, syntax| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::Syntax(syntax));
        }
        s.parse::<u32>().map_err(|_| ParseError::Syntax(syntax))
    };
    match (keyword.as_str(), args.as_slice()) {
        ("CAPA", []) => Ok(Command::Capa),
        ("USER", [name]) if !name.is_empty() => Ok(Command::User(name.to_string())),
        ("USER", _) => Err(ParseError::Syntax("USER name")),
        ("AUTH", []) => Ok(Command::Auth(None)),
        ("AUTH", [mechanism]) => Ok(Command::Auth(Some((mechanism.to_ascii_uppercase(), None)))),
        ("AUTH", [mechanism, initial]) => Ok(Command::Auth(Some((
            mechanism.to_ascii_uppercase(),
            Some(initial.to_string()),
        )))),
        ("AUTH", _) => Err(ParseError::Syntax("AUTH mechanism [initial-response]")),
        ("STLS", []) => Ok(Command::Stls),
        ("STAT", []) => Ok(Command::Stat),
        ("LIST", []) => Ok(Command::List(None)),
        ("LIST", [n]) => Ok(Command::List(Some(number(n, "LIST [msg]")?))),
        ("RETR", [n]) => Ok(Command::Retr(number(n, "RETR msg")?)),
        ("DELE", [n]) => Ok(Command::Dele(number(n, "DELE msg")?)),
        ("NOOP", []) => Ok(Command::Noop),
        ("RSET", []) => Ok(Command::Rset),
        ("QUIT", []) => Ok(Command::Quit),
        ("TOP", [n, lines]) => Ok(Command::Top(
            number(n, "TOP msg lines")?,
            number(lines, "TOP msg lines")?,
        )),
        ("UIDL", []) => Ok(Command::Uidl(None)),
        ("UIDL", [n]) => Ok(Command::Uidl(Some(number(n, "UIDL [msg]")?))),
        ("CAPA" | "STLS" | "STAT" | "NOOP" | "RSET" | "QUIT", _) => {
            Err(ParseError::Syntax("no arguments"))
        }
        ("LIST", _) => Err(ParseError::Syntax("LIST [msg]")),
        ("RETR", _) => Err(ParseError::Syntax("RETR msg")),
        ("DELE", _) => Err(ParseError::Syntax("DELE msg")),
        ("TOP", _) => Err(ParseError::Syntax("TOP msg lines")),
        ("UIDL", _) => Err(ParseError::Syntax("UIDL [msg]")),
        _ => Err(ParseError::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        let cases: &[(&[u8], Result<Command, ParseError>)] = &[
            (b"CAPA\r\n", Ok(Command::Capa)),
            (
                b"user alice@example.org\r\n",
                Ok(Command::User("alice@example.org".into())),
            ),
            (
                b"PASS pass with spaces\r\n",
                Ok(Command::Pass(Secret("pass with spaces".into()))),
            ),
            (b"PASS\r\n", Err(ParseError::Syntax("PASS password"))),
            (b"AUTH\r\n", Ok(Command::Auth(None))),
            (
                b"AUTH plain\r\n",
                Ok(Command::Auth(Some(("PLAIN".into(), None)))),
            ),
            (
                b"AUTH PLAIN AGEAYg==\r\n",
                Ok(Command::Auth(Some((
                    "PLAIN".into(),
                    Some("AGEAYg==".into()),
                )))),
            ),
            (b"STLS\r\n", Ok(Command::Stls)),
            (b"STAT\r\n", Ok(Command::Stat)),
            (b"LIST\r\n", Ok(Command::List(None))),
            (b"LIST 3\r\n", Ok(Command::List(Some(3)))),
            (b"RETR 1\n", Ok(Command::Retr(1))),
            (b"DELE 2\r\n", Ok(Command::Dele(2))),
            (b"TOP 1 10\r\n", Ok(Command::Top(1, 10))),
            (b"UIDL\r\n", Ok(Command::Uidl(None))),
            (b"UIDL 9\r\n", Ok(Command::Uidl(Some(9)))),
            (b"NOOP\r\n", Ok(Command::Noop)),
            (b"RSET\r\n", Ok(Command::Rset)),
            (b"QUIT\r\n", Ok(Command::Quit)),
        ];
        for (input, expected) in cases {
            assert_eq!(
                &parse_command(input),
                expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn bad_input() {
        assert_eq!(
            parse_command(b"RETR\r\n"),
            Err(ParseError::Syntax("RETR msg"))
        );
        assert_eq!(
            parse_command(b"RETR -1\r\n"),
            Err(ParseError::Syntax("RETR msg"))
        );
        assert_eq!(
            parse_command(b"RETR 99999999999\r\n"),
            Err(ParseError::Syntax("RETR msg"))
        );
        assert_eq!(
            parse_command(b"TOP 1\r\n"),
            Err(ParseError::Syntax("TOP msg lines"))
        );
        assert_eq!(
            parse_command(b"STAT x\r\n"),
            Err(ParseError::Syntax("no arguments"))
        );
        assert_eq!(parse_command(b"XYZZY\r\n"), Err(ParseError::Unknown));
        assert_eq!(parse_command(b"\xff\xfe\r\n"), Err(ParseError::Unknown));
        assert_eq!(parse_command(b"\0\r\n"), Err(ParseError::Unknown));
        assert_eq!(parse_command(b""), Err(ParseError::Unknown));
    }
}
