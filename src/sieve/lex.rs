//! Sieve's lexical syntax (RFC 5228 §2, §8.1): identifiers, tags, numbers with K/M/G,
//! quoted strings with `\` escapes, `text:` multi-line strings with dot-stuffing, hash
//! and bracket comments. Line ends may be CRLF or a bare LF (as scripts saved on Unix
//! have them); multi-line strings keep CRLF.

use super::{Pos, SieveError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// Lower-cased: identifiers are case-insensitive (RFC 5228 §8.2).
    Identifier(String),
    /// A `:tag`, lower-cased, without the colon.
    Tag(String),
    Number(u64),
    /// A quoted or multi-line string, escapes resolved.
    String(String),
    Punct(char),
}

/// The script as tokens with their positions. The script must be UTF-8 (RFC 5228 §1).
pub fn tokens(script: &[u8]) -> Result<Vec<(Pos, Token)>, SieveError> {
    let text = std::str::from_utf8(script).map_err(|e| {
        let before = &script[..e.valid_up_to()];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        SieveError::new(Pos { line, column }, "the script is not UTF-8")
    })?;
    let mut lexer = Lexer {
        text,
        at: 0,
        line: 1,
        line_start: 0,
    };
    let mut out = Vec::new();
    while let Some(token) = lexer.next()? {
        out.push(token);
    }
    Ok(out)
}

struct Lexer<'a> {
    text: &'a str,
    at: usize,
    line: usize,
    line_start: usize,
}

impl Lexer<'_> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.text[self.line_start..self.at].chars().count() + 1,
        }
    }

    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    /// Moves past `n` bytes, counting lines.
    fn advance(&mut self, n: usize) {
        let end = self.at + n;
        for (i, b) in self.text.as_bytes()[self.at..end].iter().enumerate() {
            if *b == b'\n' {
                self.line += 1;
                self.line_start = self.at + i + 1;
            }
        }
        self.at = end;
    }

    fn next(&mut self) -> Result<Option<(Pos, Token)>, SieveError> {
        self.skip_space()?;
        let pos = self.pos();
        let rest = self.rest();
        let Some(c) = rest.chars().next() else {
            return Ok(None);
        };
        let token = match c {
            '[' | ']' | '(' | ')' | '{' | '}' | ',' | ';' => {
                self.advance(1);
                Token::Punct(c)
            }
            '"' => Token::String(self.quoted(pos)?),
            ':' => {
                let name = word(&rest[1..]);
                if name.is_empty() {
                    return Err(SieveError::new(pos, "a tag needs a name after ':'"));
                }
                let name = name.to_ascii_lowercase();
                self.advance(1 + name.len());
                Token::Tag(name)
            }
            '0'..='9' => self.number(pos)?,
            c if c.is_ascii_alphabetic() || c == '_' => {
                let name = word(rest).to_ascii_lowercase();
                if name == "text" && self.rest()[4..].starts_with(':') {
                    self.advance(5);
                    Token::String(self.multi_line(pos)?)
                } else {
                    self.advance(name.len());
                    Token::Identifier(name)
                }
            }
            other => {
                return Err(SieveError::new(
                    pos,
                    format!("unexpected character {other:?}"),
                ))
            }
        };
        Ok(Some((pos, token)))
    }

    /// White space and comments (RFC 5228 §2.3).
    fn skip_space(&mut self) -> Result<(), SieveError> {
        loop {
            let rest = self.rest();
            if let Some(c) = rest
                .chars()
                .next()
                .filter(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
            {
                self.advance(c.len_utf8());
            } else if rest.starts_with('#') {
                let end = rest.find('\n').map_or(rest.len(), |i| i + 1);
                self.advance(end);
            } else if let Some(comment) = rest.strip_prefix("/*") {
                let pos = self.pos();
                let Some(end) = comment.find("*/") else {
                    return Err(SieveError::new(pos, "a comment that never ends"));
                };
                self.advance(end + 4);
            } else {
                return Ok(());
            }
        }
    }

    /// `1*DIGIT [K / M / G]`; a number that does not fit in 64 bits is an error.
    fn number(&mut self, pos: Pos) -> Result<Token, SieveError> {
        let rest = self.rest();
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let too_large = || SieveError::new(pos, "number too large");
        let mut n: u64 = rest[..digits].parse().map_err(|_| too_large())?;
        let mut len = digits;
        let unit = match rest[digits..].chars().next() {
            Some('K' | 'k') => Some(1u64 << 10),
            Some('M' | 'm') => Some(1u64 << 20),
            Some('G' | 'g') => Some(1u64 << 30),
            _ => None,
        };
        if let Some(unit) = unit {
            n = n.checked_mul(unit).ok_or_else(too_large)?;
            len += 1;
        }
        if self.rest()[len..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(SieveError::new(pos, "invalid number"));
        }
        self.advance(len);
        Ok(Token::Number(n))
    }

    /// A quoted string: `\"` and `\\` escape; any other `\x` is `x` (RFC 5228 §2.4.2).
    fn quoted(&mut self, pos: Pos) -> Result<String, SieveError> {
        let mut out = String::new();
        let mut chars = self.rest()[1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.advance(i + 2);
                    return Ok(normalise_line_ends(out));
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => out.push(escaped),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(SieveError::new(pos, "a string that never ends"))
    }

    /// After `text:`: blanks, then a hash comment or the line end; lines up to one that
    /// is just `.`; a leading `..` stands for `.` (RFC 5228 §2.4.2).
    fn multi_line(&mut self, pos: Pos) -> Result<String, SieveError> {
        let rest = self.rest();
        let blanks = rest
            .bytes()
            .take_while(|&b| b == b' ' || b == b'\t')
            .count();
        let after = &rest[blanks..];
        let first_line_end = match after.find('\n') {
            Some(i) if after.starts_with('#') || after[..i].trim_end_matches('\r').is_empty() => {
                blanks + i + 1
            }
            _ => return Err(SieveError::new(pos, "text: must end its line")),
        };
        self.advance(first_line_end);
        let mut out = String::new();
        loop {
            let rest = self.rest();
            let Some(end) = rest.find('\n') else {
                return Err(SieveError::new(pos, "a text: string without its final '.'"));
            };
            let line = rest[..end]
                .strip_suffix('\r')
                .unwrap_or(&rest[..end])
                .to_string();
            self.advance(end + 1);
            if line == "." {
                return Ok(out);
            }
            out.push_str(
                line.strip_prefix('.')
                    .filter(|_| line.starts_with(".."))
                    .unwrap_or(&line),
            );
            out.push_str("\r\n");
        }
    }
}

/// An identifier's characters: `(ALPHA / "_") *(ALPHA / DIGIT / "_")`.
fn word(text: &str) -> &str {
    let mut end = 0;
    for (i, c) in text.char_indices() {
        let ok = c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        end = i + 1;
    }
    &text[..end]
}

/// Line ends inside a quoted string become CRLF, as in the script's canonical form.
fn normalise_line_ends(text: String) -> String {
    if !text.contains('\n') {
        return text;
    }
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(script: &str) -> Vec<Token> {
        tokens(script.as_bytes())
            .unwrap()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    #[test]
    fn tokens_of_a_script() {
        use Token::*;
        assert_eq!(
            kinds("require [\"fileinto\"]; # comment\r\nIF size :OVER 10K /* x */ { stop; }"),
            [
                Identifier("require".into()),
                Punct('['),
                String("fileinto".into()),
                Punct(']'),
                Punct(';'),
                Identifier("if".into()),
                Identifier("size".into()),
                Tag("over".into()),
                Number(10 * 1024),
                Punct('{'),
                Identifier("stop".into()),
                Punct(';'),
                Punct('}'),
            ]
        );
        assert_eq!(kinds(r#""a\"b\\c\d""#), [String("a\"b\\cd".into())]);
        assert_eq!(
            kinds("text: # why\n..one\n.two\n\n.\n"),
            [String(".one\r\n.two\r\n\r\n".into())]
        );
        assert_eq!(kinds("text:\r\n.\r\n"), [String("".into())]);
        assert_eq!(kinds("1G"), [Number(1 << 30)]);
    }

    #[test]
    fn errors_name_line_and_column() {
        let error = |s: &str| tokens(s.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            error("keep;\n  \"open"),
            "line 2, column 3: a string that never ends"
        );
        assert_eq!(
            error("/* open"),
            "line 1, column 1: a comment that never ends"
        );
        assert_eq!(
            error("x 99999999999999999999"),
            "line 1, column 3: number too large"
        );
        assert_eq!(error("20000000000G"), "line 1, column 1: number too large");
        assert_eq!(error("12ab"), "line 1, column 1: invalid number");
        assert_eq!(
            error("text: x\n.\n"),
            "line 1, column 1: text: must end its line"
        );
        assert_eq!(
            error("text:\nno end\n"),
            "line 1, column 1: a text: string without its final '.'"
        );
        assert_eq!(
            error("keep; @"),
            "line 1, column 7: unexpected character '@'"
        );
        assert_eq!(
            error(": x"),
            "line 1, column 1: a tag needs a name after ':'"
        );
        assert_eq!(
            tokens(b"keep;\n\"\xff\"").unwrap_err().to_string(),
            "line 2, column 2: the script is not UTF-8"
        );
    }
}
