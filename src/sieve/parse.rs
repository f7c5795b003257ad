//! Sieve's grammar (RFC 5228 §8.2) over the tokens of [`super::lex`]: commands with
//! arguments, tests and blocks, before any command is known. Nesting is bounded, so a
//! hostile script cannot exhaust the stack.

use super::lex::{tokens, Token};
use super::{Pos, SieveError};

/// Blocks and tests inside one another, at most (Pigeonhole's default is 32).
pub const MAX_NESTING: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub at: Pos,
    /// Lower-cased.
    pub name: String,
    pub arguments: Vec<Argument>,
    pub tests: Tests,
    /// `{ ... }`, or `None` for a command ended by `;`.
    pub block: Option<Vec<Command>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Test {
    pub at: Pos,
    pub name: String,
    pub arguments: Vec<Argument>,
    pub tests: Tests,
}

/// The tests after a command's or test's arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Tests {
    #[default]
    None,
    /// One test, as `if` and `not` take.
    One(Box<Test>),
    /// `(test, test...)`, as `allof` and `anyof` take.
    List(Vec<Test>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argument {
    pub at: Pos,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A lone string (also acceptable where a list is).
    String(String),
    /// `["a", "b"]`.
    List(Vec<String>),
    Number(u64),
    /// `:name`, lower-cased.
    Tag(String),
}

/// Parses a whole script into its commands.
pub fn script(text: &[u8]) -> Result<Vec<Command>, SieveError> {
    let tokens = tokens(text)?;
    let mut parser = Parser { tokens, at: 0 };
    let commands = parser.commands(0)?;
    match parser.peek() {
        None => Ok(commands),
        Some((pos, _)) => Err(SieveError::new(pos, "'}' without a block to end")),
    }
}

struct Parser {
    tokens: Vec<(Pos, Token)>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<(Pos, &Token)> {
        self.tokens.get(self.at).map(|(p, t)| (*p, t))
    }

    fn next(&mut self) -> Option<(Pos, Token)> {
        let token = self.tokens.get(self.at).cloned();
        self.at += token.is_some() as usize;
        token
    }

    /// Where the script ends, for errors about what is missing there.
    fn end(&self) -> Pos {
        self.tokens
            .last()
            .map_or(Pos { line: 1, column: 1 }, |(p, _)| *p)
    }

    /// Commands up to the end of the script or of the enclosing block.
    fn commands(&mut self, depth: usize) -> Result<Vec<Command>, SieveError> {
        let mut out = Vec::new();
        while let Some((pos, token)) = self.peek() {
            match token {
                Token::Identifier(_) => out.push(self.command(depth)?),
                Token::Punct('}') => break,
                _ => return Err(SieveError::new(pos, "a command name was expected")),
            }
        }
        Ok(out)
    }

    fn command(&mut self, depth: usize) -> Result<Command, SieveError> {
        let Some((at, Token::Identifier(name))) = self.next() else {
            unreachable!("commands() checked for an identifier");
        };
        let (arguments, tests) = self.arguments(depth)?;
        let block = match self.next() {
            Some((_, Token::Punct(';'))) => None,
            Some((pos, Token::Punct('{'))) => {
                if depth + 1 >= MAX_NESTING {
                    return Err(SieveError::new(pos, "blocks nested too deeply"));
                }
                let commands = self.commands(depth + 1)?;
                match self.next() {
                    Some((_, Token::Punct('}'))) => Some(commands),
                    _ => return Err(SieveError::new(pos, "a block that never ends")),
                }
            }
            Some((pos, _)) => {
                return Err(SieveError::new(
                    pos,
                    format!("';' or a block was expected after {name}"),
                ))
            }
            None => return Err(SieveError::new(self.end(), format!("{name} has no ';'"))),
        };
        Ok(Command {
            at,
            name,
            arguments,
            tests,
            block,
        })
    }

    /// `*argument [test / test-list]`.
    fn arguments(&mut self, depth: usize) -> Result<(Vec<Argument>, Tests), SieveError> {
        let mut arguments = Vec::new();
        loop {
            let Some((at, token)) = self.peek() else {
                return Ok((arguments, Tests::None));
            };
            let value = match token {
                Token::String(s) => Value::String(s.clone()),
                Token::Number(n) => Value::Number(*n),
                Token::Tag(t) => Value::Tag(t.clone()),
                Token::Punct('[') => {
                    self.next();
                    arguments.push(Argument {
                        at,
                        value: Value::List(self.string_list(at)?),
                    });
                    continue;
                }
                Token::Identifier(_) => {
                    return Ok((arguments, Tests::One(Box::new(self.test(depth + 1)?))))
                }
                Token::Punct('(') => {
                    return Ok((arguments, Tests::List(self.test_list(depth + 1)?)))
                }
                _ => return Ok((arguments, Tests::None)),
            };
            self.next();
            arguments.push(Argument { at, value });
        }
    }

    /// The rest of `["a", "b"]` after its `[`.
    fn string_list(&mut self, at: Pos) -> Result<Vec<String>, SieveError> {
        let mut strings = Vec::new();
        loop {
            match self.next() {
                Some((_, Token::String(s))) => strings.push(s),
                Some((pos, _)) => {
                    return Err(SieveError::new(pos, "a string was expected in the list"))
                }
                None => return Err(SieveError::new(at, "a string list that never ends")),
            }
            match self.next() {
                Some((_, Token::Punct(','))) => {}
                Some((_, Token::Punct(']'))) => return Ok(strings),
                Some((pos, _)) => return Err(SieveError::new(pos, "',' or ']' was expected")),
                None => return Err(SieveError::new(at, "a string list that never ends")),
            }
        }
    }

    fn test(&mut self, depth: usize) -> Result<Test, SieveError> {
        let (at, name) = match self.next() {
            Some((at, Token::Identifier(name))) => (at, name),
            Some((pos, _)) => return Err(SieveError::new(pos, "a test was expected")),
            None => return Err(SieveError::new(self.end(), "a test was expected")),
        };
        if depth >= MAX_NESTING {
            return Err(SieveError::new(at, "tests nested too deeply"));
        }
        let (arguments, tests) = self.arguments(depth)?;
        Ok(Test {
            at,
            name,
            arguments,
            tests,
        })
    }

    /// `(test, test...)`.
    fn test_list(&mut self, depth: usize) -> Result<Vec<Test>, SieveError> {
        let Some((at, _)) = self.next() else {
            unreachable!("arguments() saw the '('");
        };
        let mut tests = Vec::new();
        loop {
            tests.push(self.test(depth)?);
            match self.next() {
                Some((_, Token::Punct(','))) => {}
                Some((_, Token::Punct(')'))) => return Ok(tests),
                Some((pos, _)) => return Err(SieveError::new(pos, "',' or ')' was expected")),
                None => return Err(SieveError::new(at, "a test list that never ends")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize) -> Pos {
        Pos { line, column }
    }

    #[test]
    fn commands_tests_and_blocks() {
        let script = script(
            b"require [\"fileinto\", \"imap4flags\"];\n\
              if allof (header :contains \"subject\" \"x\", not exists \"to\") {\n\
              \x20 fileinto :flags \"\\\\Seen\" \"Lists\";\n\
              } elsif size :over 1M { discard; }\n",
        )
        .unwrap();
        assert_eq!(script.len(), 3);
        assert_eq!(script[0].name, "require");
        assert_eq!(
            script[0].arguments[0].value,
            Value::List(vec!["fileinto".into(), "imap4flags".into()])
        );
        let Tests::One(allof) = &script[1].tests else {
            panic!("if takes one test")
        };
        assert_eq!(allof.name, "allof");
        let Tests::List(list) = &allof.tests else {
            panic!("allof takes a list")
        };
        assert_eq!(list[0].name, "header");
        assert_eq!(list[0].at, at(2, 11));
        assert_eq!(list[0].arguments[0].value, Value::Tag("contains".into()));
        let Tests::One(exists) = &list[1].tests else {
            panic!("not takes one test")
        };
        assert_eq!(exists.name, "exists");
        let block = script[1].block.as_ref().unwrap();
        assert_eq!(block[0].name, "fileinto");
        assert_eq!(block[0].arguments[1].value, Value::String("\\Seen".into()));
        assert_eq!(script[2].name, "elsif");
        let Tests::One(size) = &script[2].tests else {
            panic!("elsif takes one test")
        };
        assert_eq!(size.arguments[1].value, Value::Number(1 << 20));
    }

    #[test]
    fn syntax_errors() {
        let error = |s: &str| match script(s.as_bytes()) {
            Ok(tree) => panic!("{s:?} parsed: {tree:?}"),
            Err(e) => e.to_string(),
        };
        assert_eq!(error("keep"), "line 1, column 1: keep has no ';'");
        assert_eq!(
            error("keep }"),
            "line 1, column 6: ';' or a block was expected after keep"
        );
        assert_eq!(error("}"), "line 1, column 1: '}' without a block to end");
        assert_eq!(
            error("if true {"),
            "line 1, column 9: a block that never ends"
        );
        assert_eq!(
            error("x [\"a\" \"b\"];"),
            "line 1, column 8: ',' or ']' was expected"
        );
        assert_eq!(
            error("x [1];"),
            "line 1, column 4: a string was expected in the list"
        );
        assert_eq!(
            error("if anyof (true; false) {}"),
            "line 1, column 15: ',' or ')' was expected"
        );
        assert_eq!(
            error("\"a\";"),
            "line 1, column 1: a command name was expected"
        );
        let deep = "if true {".repeat(40) + &"}".repeat(40);
        assert_eq!(error(&deep), "line 1, column 283: tests nested too deeply");
        let nots = format!("if {} true {{}}", "not ".repeat(40));
        assert_eq!(error(&nots), "line 1, column 128: tests nested too deeply");
    }
}
