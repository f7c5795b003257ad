//! ManageSieve commands (RFC 5804 §2, grammar in §4): bytes in, a typed command out.
//! A command is a line of an atom and arguments: quoted strings (`\"` and `\\` escapes),
//! literals (`{n+}` or `{n}`, then CRLF and n octets) and numbers. The session reads the
//! literals' octets into the same buffer ([`literal_at_end`] tells it how many), so the
//! parser sees the whole command at once.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Authenticate {
        mechanism: String,
        initial: Option<Vec<u8>>,
    },
    StartTls,
    Logout,
    Capability,
    HaveSpace {
        name: String,
        size: u64,
    },
    PutScript {
        name: String,
        script: Vec<u8>,
    },
    ListScripts,
    SetActive {
        name: String,
    },
    GetScript {
        name: String,
    },
    DeleteScript {
        name: String,
    },
    RenameScript {
        from: String,
        to: String,
    },
    CheckScript {
        script: Vec<u8>,
    },
    Noop {
        tag: Option<String>,
    },
    Unauthenticate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Unknown(String),
    Syntax(&'static str),
}

/// A literal announced at the end of a line (`{12+}` or `{12}` before the CRLF): its
/// length. `Err` for a length that does not fit.
pub fn literal_at_end(line: &[u8]) -> Option<Result<u64, ()>> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let line = line.strip_suffix(b"+").unwrap_or(line);
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or(()),
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Atom(String),
    String(Vec<u8>),
    Number(u64),
}

fn tokens(input: &[u8]) -> Result<Vec<Token>, ParseError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b' ' | b'\t' => i += 1,
            b'\r' | b'\n' => {
                // Only the final CRLF ends the command; literals consumed theirs.
                if input[i..].iter().all(|&b| b == b'\r' || b == b'\n') {
                    break;
                }
                return Err(ParseError::Syntax("a line break inside the command"));
            }
            b'"' => {
                let mut s = Vec::new();
                i += 1;
                loop {
                    match input.get(i) {
                        None | Some(b'\r' | b'\n') => {
                            return Err(ParseError::Syntax("a quoted string that never ends"))
                        }
                        Some(b'"') => break,
                        Some(b'\\') => match input.get(i + 1) {
                            Some(&c @ (b'"' | b'\\')) => {
                                s.push(c);
                                i += 2;
                            }
                            _ => return Err(ParseError::Syntax("a bad escape in a quoted string")),
                        },
                        Some(&c) => {
                            s.push(c);
                            i += 1;
                        }
                    }
                }
                i += 1;
                out.push(Token::String(s));
            }
            b'{' => {
                let close = input[i..]
                    .iter()
                    .position(|&b| b == b'}')
                    .ok_or(ParseError::Syntax("a literal without '}'"))?;
                let spec = &input[i + 1..i + close];
                let spec = spec.strip_suffix(b"+").unwrap_or(spec);
                let n: usize = std::str::from_utf8(spec)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse().ok())
                    .ok_or(ParseError::Syntax("a bad literal length"))?;
                let mut at = i + close + 1;
                if input[at..].starts_with(b"\r\n") {
                    at += 2;
                } else if input[at..].starts_with(b"\n") {
                    at += 1;
                } else {
                    return Err(ParseError::Syntax("a literal must end its line"));
                }
                let end = at
                    .checked_add(n)
                    .filter(|&e| e <= input.len())
                    .ok_or(ParseError::Syntax("a literal shorter than announced"))?;
                out.push(Token::String(input[at..end].to_vec()));
                i = end;
            }
            b'0'..=b'9' => {
                let start = i;
                while i < input.len() && input[i].is_ascii_digit() {
                    i += 1;
                }
                let n = std::str::from_utf8(&input[start..i])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or(ParseError::Syntax("a number too large"))?;
                out.push(Token::Number(n));
            }
            c if c.is_ascii_alphabetic() => {
                let start = i;
                while i < input.len() && input[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                out.push(Token::Atom(
                    String::from_utf8_lossy(&input[start..i]).to_ascii_uppercase(),
                ));
            }
            _ => return Err(ParseError::Syntax("an unexpected character")),
        }
    }
    Ok(out)
}

/// Parses one whole command (literals included).
pub fn parse_command(input: &[u8]) -> Result<Command, ParseError> {
    let tokens = tokens(input)?;
    let Some((Token::Atom(name), args)) = tokens.split_first() else {
        return Err(ParseError::Syntax("a command name was expected"));
    };
    let string = |t: &Token| match t {
        Token::String(s) => Ok(s.clone()),
        _ => Err(ParseError::Syntax("a string was expected")),
    };
    let text = |t: &Token| {
        let bytes = string(t)?;
        String::from_utf8(bytes).map_err(|_| ParseError::Syntax("a name must be UTF-8"))
    };
    let command = match (name.as_str(), args) {
        ("AUTHENTICATE", [mechanism]) => Command::Authenticate {
            mechanism: text(mechanism)?.to_ascii_uppercase(),
            initial: None,
        },
        ("AUTHENTICATE", [mechanism, initial]) => Command::Authenticate {
            mechanism: text(mechanism)?.to_ascii_uppercase(),
            initial: Some(string(initial)?),
        },
        ("STARTTLS", []) => Command::StartTls,
        ("LOGOUT", []) => Command::Logout,
        ("CAPABILITY", []) => Command::Capability,
        ("HAVESPACE", [name, Token::Number(size)]) => Command::HaveSpace {
            name: text(name)?,
            size: *size,
        },
        ("PUTSCRIPT", [name, script]) => Command::PutScript {
            name: text(name)?,
            script: string(script)?,
        },
        ("LISTSCRIPTS", []) => Command::ListScripts,
        ("SETACTIVE", [name]) => Command::SetActive { name: text(name)? },
        ("GETSCRIPT", [name]) => Command::GetScript { name: text(name)? },
        ("DELETESCRIPT", [name]) => Command::DeleteScript { name: text(name)? },
        ("RENAMESCRIPT", [from, to]) => Command::RenameScript {
            from: text(from)?,
            to: text(to)?,
        },
        ("CHECKSCRIPT", [script]) => Command::CheckScript {
            script: string(script)?,
        },
        ("NOOP", []) => Command::Noop { tag: None },
        ("NOOP", [tag]) => Command::Noop {
            tag: Some(text(tag)?),
        },
        ("UNAUTHENTICATE", []) => Command::Unauthenticate,
        (
            "AUTHENTICATE" | "STARTTLS" | "LOGOUT" | "CAPABILITY" | "HAVESPACE" | "PUTSCRIPT"
            | "LISTSCRIPTS" | "SETACTIVE" | "GETSCRIPT" | "DELETESCRIPT" | "RENAMESCRIPT"
            | "CHECKSCRIPT" | "NOOP" | "UNAUTHENTICATE",
            _,
        ) => return Err(ParseError::Syntax("wrong arguments for the command")),
        (other, _) => return Err(ParseError::Unknown(other.to_string())),
    };
    Ok(command)
}

/// A line that is one string and nothing else (a SASL response), its bytes.
pub fn lone_string(input: &[u8]) -> Option<Vec<u8>> {
    match tokens(input).ok()?.as_slice() {
        [Token::String(s)] => Some(s.clone()),
        _ => None,
    }
}

/// A string as a reply carries it: quoted when it can be, else a literal.
pub fn quote(text: &[u8]) -> Vec<u8> {
    if text.len() <= 1024 && !text.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        let mut out = Vec::with_capacity(text.len() + 2);
        out.push(b'"');
        for &b in text {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
        return out;
    }
    let mut out = format!("{{{}}}\r\n", text.len()).into_bytes();
    out.extend_from_slice(text);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(
            parse_command(b"Authenticate \"PLAIN\" \"AGFAYg==\"\r\n"),
            Ok(Command::Authenticate {
                mechanism: "PLAIN".into(),
                initial: Some(b"AGFAYg==".to_vec())
            })
        );
        assert_eq!(
            parse_command(b"PUTSCRIPT \"my \\\"s\\\"\" {9+}\r\nkeep;\r\nx\n\r\n"),
            Ok(Command::PutScript {
                name: "my \"s\"".into(),
                script: b"keep;\r\nx\n".to_vec()
            })
        );
        assert_eq!(
            parse_command(b"havespace \"a\" 1000\r\n"),
            Ok(Command::HaveSpace {
                name: "a".into(),
                size: 1000
            })
        );
        assert_eq!(
            parse_command(b"RENAMESCRIPT {1}\r\na \"b\"\r\n"),
            Ok(Command::RenameScript {
                from: "a".into(),
                to: "b".into()
            })
        );
        assert_eq!(
            parse_command(b"NOOP \"t1\"\r\n"),
            Ok(Command::Noop {
                tag: Some("t1".into())
            })
        );
        assert_eq!(parse_command(b"logout\r\n"), Ok(Command::Logout));
    }

    #[test]
    fn bad_commands() {
        for (input, expected) in [
            (&b"FROB\r\n"[..], ParseError::Unknown("FROB".into())),
            (
                b"PUTSCRIPT \"a\"\r\n",
                ParseError::Syntax("wrong arguments for the command"),
            ),
            (
                b"GETSCRIPT \"a\r\n",
                ParseError::Syntax("a quoted string that never ends"),
            ),
            (
                b"GETSCRIPT {5+}\r\nab\r\n",
                ParseError::Syntax("a literal shorter than announced"),
            ),
            (
                b"GETSCRIPT \"\\n\"\r\n",
                ParseError::Syntax("a bad escape in a quoted string"),
            ),
            (
                b"GETSCRIPT \"\xff\"\r\n",
                ParseError::Syntax("a name must be UTF-8"),
            ),
            (
                b"HAVESPACE \"a\" 99999999999999999999999\r\n",
                ParseError::Syntax("a number too large"),
            ),
            (
                b"\"x\"\r\n",
                ParseError::Syntax("a command name was expected"),
            ),
            (
                b"LOGOUT (x)\r\n",
                ParseError::Syntax("an unexpected character"),
            ),
        ] {
            assert_eq!(
                parse_command(input),
                Err(expected),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // Any damage is an error, never a panic.
        let good = b"PUTSCRIPT \"a\" {5+}\r\nkeep;\r\n";
        for i in 0..good.len() {
            let _ = parse_command(&good[..i]);
            for b in [b'{', b'}', b'"', b'\\', b'\n', b'+', b'9'] {
                let mut damaged = good.to_vec();
                damaged[i] = b;
                let _ = parse_command(&damaged);
            }
        }
    }

    #[test]
    fn literals_at_line_ends() {
        assert_eq!(literal_at_end(b"PUTSCRIPT \"a\" {12+}\r\n"), Some(Ok(12)));
        assert_eq!(literal_at_end(b"PUTSCRIPT \"a\" {12}\r\n"), Some(Ok(12)));
        assert_eq!(literal_at_end(b"PUTSCRIPT \"a\" \"{12}\"\r\n"), None);
        assert_eq!(literal_at_end(b"X {}\r\n"), None);
        assert_eq!(
            literal_at_end(b"X {99999999999999999999999+}\r\n"),
            Some(Err(()))
        );
        assert_eq!(quote(b"a\"b"), b"\"a\\\"b\"");
        assert_eq!(lone_string(b"\"AGE=\"\r\n"), Some(b"AGE=".to_vec()));
        assert_eq!(lone_string(b"{3+}\r\nabc\r\n"), Some(b"abc".to_vec()));
        assert_eq!(lone_string(b"\"a\" \"b\"\r\n"), None);
        assert_eq!(quote(b"a\r\nb"), b"{4}\r\na\r\nb");
    }
}
