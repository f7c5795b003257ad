//! The typed, validated form of a script: RFC 5228's commands and tests, with
//! `fileinto` (RFC 5228 §4.1), `reject`/`ereject` (RFC 5429), `envelope` (RFC 5228 §5.4)
//! and `:copy` (RFC 3894). Every use of an extension must follow its `require`; anything
//! unknown, misplaced or of the wrong kind is an error at its line and column, before the
//! script is ever run.

use super::arguments::{strings, Arguments};
use super::parse::{self, Argument, Tests, Value};
use super::{Pos, SieveError};

/// The extensions a script may `require` here.
pub const EXTENSIONS: [&str; 8] = [
    "fileinto",
    "reject",
    "ereject",
    "envelope",
    "copy",
    "comparator-i;octet",
    "comparator-i;ascii-casemap",
    "encoded-character",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `if` with its `elsif`s, in order, and the `else`.
    If {
        branches: Vec<(Test, Vec<Command>)>,
        otherwise: Option<Vec<Command>>,
    },
    Stop,
    Keep,
    Discard,
    Redirect {
        address: String,
        copy: bool,
    },
    FileInto {
        mailbox: String,
        copy: bool,
    },
    /// `reject` (an MDN-like refusal) or `ereject` (refused in the SMTP dialogue).
    Reject {
        reason: String,
        extended: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    True,
    False,
    Not(Box<Test>),
    AllOf(Vec<Test>),
    AnyOf(Vec<Test>),
    Exists(Vec<String>),
    /// `size :over n` (`over`) or `size :under n`.
    Size {
        over: bool,
        limit: u64,
    },
    Header {
        matching: Match,
        names: Vec<String>,
        keys: Vec<String>,
    },
    Address {
        part: AddressPart,
        matching: Match,
        names: Vec<String>,
        keys: Vec<String>,
    },
    /// `envelope`: `names` are "from" and/or "to".
    Envelope {
        part: AddressPart,
        matching: Match,
        names: Vec<String>,
        keys: Vec<String>,
    },
}

/// A match type with its comparator (RFC 5228 §2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub kind: MatchKind,
    pub comparator: Comparator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    Is,
    Contains,
    Matches,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Octet,
    AsciiCasemap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressPart {
    All,
    LocalPart,
    Domain,
}

/// A validated script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// What `require` named, lower-cased.
    pub required: Vec<String>,
    pub commands: Vec<Command>,
}

/// Parses and validates a script.
pub fn compile(script: &[u8]) -> Result<Program, SieveError> {
    let tree = parse::script(script)?;
    let mut required = Vec::new();
    let mut rest = &tree[..];
    while let Some((first, after)) = rest.split_first() {
        if first.name != "require" {
            break;
        }
        let [Argument {
            at,
            value: Value::String(_) | Value::List(_),
        }] = first.arguments.as_slice()
        else {
            return Err(SieveError::new(
                first.at,
                "require needs a list of extensions",
            ));
        };
        no_tests_or_block(first)?;
        for name in strings(&first.arguments[0]) {
            let name = name.to_ascii_lowercase();
            if !EXTENSIONS.contains(&name.as_str()) {
                return Err(SieveError::new(
                    *at,
                    format!("unsupported extension \"{name}\""),
                ));
            }
            required.push(name);
        }
        rest = after;
    }
    let scope = Scope {
        required: &required,
    };
    let commands = scope.block(rest)?;
    Ok(Program { required, commands })
}

fn no_tests_or_block(command: &parse::Command) -> Result<(), SieveError> {
    if !matches!(command.tests, Tests::None) {
        return Err(SieveError::new(
            command.at,
            format!("{} takes no test", command.name),
        ));
    }
    if command.block.is_some() {
        return Err(SieveError::new(
            command.at,
            format!("{} takes no block", command.name),
        ));
    }
    Ok(())
}

struct Scope<'a> {
    required: &'a [String],
}

impl Scope<'_> {
    fn has(&self, extension: &str) -> bool {
        self.required.iter().any(|r| r == extension)
    }

    fn need(&self, extension: &str, at: Pos, what: &str) -> Result<(), SieveError> {
        if self.has(extension) {
            return Ok(());
        }
        Err(SieveError::new(
            at,
            format!("{what} needs require \"{extension}\""),
        ))
    }

    fn block(&self, commands: &[parse::Command]) -> Result<Vec<Command>, SieveError> {
        let mut out: Vec<Command> = Vec::new();
        for command in commands {
            match command.name.as_str() {
                "require" => {
                    return Err(SieveError::new(
                        command.at,
                        "require must come before other commands",
                    ))
                }
                "elsif" | "else" => {
                    let Some(Command::If {
                        branches,
                        otherwise,
                    }) = out.last_mut()
                    else {
                        return Err(SieveError::new(
                            command.at,
                            format!("{} without an if", command.name),
                        ));
                    };
                    if otherwise.is_some() {
                        return Err(SieveError::new(
                            command.at,
                            format!("{} after else", command.name),
                        ));
                    }
                    let body = self.body(command)?;
                    if command.name == "else" {
                        if !command.arguments.is_empty() || !matches!(command.tests, Tests::None) {
                            return Err(SieveError::new(command.at, "else takes no test"));
                        }
                        *otherwise = Some(body);
                    } else {
                        branches.push((self.condition(command)?, body));
                    }
                }
                "if" => {
                    let branch = (self.condition(command)?, self.body(command)?);
                    out.push(Command::If {
                        branches: vec![branch],
                        otherwise: None,
                    });
                }
                _ => out.push(self.action(command)?),
            }
        }
        Ok(out)
    }

    fn body(&self, command: &parse::Command) -> Result<Vec<Command>, SieveError> {
        match &command.block {
            Some(block) => self.block(block),
            None => Err(SieveError::new(
                command.at,
                format!("{} needs a block", command.name),
            )),
        }
    }

    /// The one test of `if` or `elsif`.
    fn condition(&self, command: &parse::Command) -> Result<Test, SieveError> {
        if !command.arguments.is_empty() {
            return Err(SieveError::new(
                command.arguments[0].at,
                format!("{} takes only a test", command.name),
            ));
        }
        match &command.tests {
            Tests::One(test) => self.test(test),
            _ => Err(SieveError::new(
                command.at,
                format!("{} needs one test", command.name),
            )),
        }
    }

    fn action(&self, command: &parse::Command) -> Result<Command, SieveError> {
        no_tests_or_block(command)?;
        let mut args = Arguments::new(&command.name, command.at, &command.arguments)?;
        let action = match command.name.as_str() {
            "stop" => Command::Stop,
            "keep" => Command::Keep,
            "discard" => Command::Discard,
            "redirect" => {
                let copy = self.copy(&mut args)?;
                let address = args.string()?;
                if crate::address::normalize_address(&address).is_none() {
                    return Err(SieveError::new(
                        command.at,
                        format!("redirect to an invalid address \"{address}\""),
                    ));
                }
                Command::Redirect { address, copy }
            }
            "fileinto" => {
                self.need("fileinto", command.at, "fileinto")?;
                let copy = self.copy(&mut args)?;
                Command::FileInto {
                    mailbox: args.string()?,
                    copy,
                }
            }
            "reject" | "ereject" => {
                self.need(&command.name, command.at, &command.name)?;
                Command::Reject {
                    reason: args.string()?,
                    extended: command.name == "ereject",
                }
            }
            other => {
                return Err(SieveError::new(
                    command.at,
                    format!("unknown command {other}"),
                ))
            }
        };
        args.done()?;
        Ok(action)
    }

    /// `:copy` (RFC 3894) of redirect and fileinto.
    fn copy(&self, args: &mut Arguments) -> Result<bool, SieveError> {
        match args.flag("copy")? {
            Some(at) => self.need("copy", at, ":copy").map(|_| true),
            None => Ok(false),
        }
    }

    fn test(&self, test: &parse::Test) -> Result<Test, SieveError> {
        let name = test.name.as_str();
        let sub_tests = |list: &[parse::Test]| {
            list.iter()
                .map(|t| self.test(t))
                .collect::<Result<Vec<_>, _>>()
        };
        match (name, &test.tests) {
            ("not", Tests::One(inner)) if test.arguments.is_empty() => {
                return Ok(Test::Not(Box::new(self.test(inner)?)))
            }
            ("allof" | "anyof", Tests::List(list)) if test.arguments.is_empty() => {
                let list = sub_tests(list)?;
                return Ok(if name == "allof" {
                    Test::AllOf(list)
                } else {
                    Test::AnyOf(list)
                });
            }
            ("not", _) => return Err(SieveError::new(test.at, "not needs one test")),
            ("allof" | "anyof", _) => {
                return Err(SieveError::new(
                    test.at,
                    format!("{name} needs a list of tests"),
                ))
            }
            (_, Tests::None) => {}
            _ => return Err(SieveError::new(test.at, format!("{name} takes no test"))),
        }
        let mut args = Arguments::new(name, test.at, &test.arguments)?;
        let out = match name {
            "true" => Test::True,
            "false" => Test::False,
            "exists" => Test::Exists(header_names(args.strings()?, test.at)?),
            "size" => {
                let over = args.flag("over")?;
                let under = args.flag("under")?;
                let over = match (over, under) {
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    _ => {
                        return Err(SieveError::new(
                            test.at,
                            "size needs one of :over and :under",
                        ))
                    }
                };
                Test::Size {
                    over,
                    limit: args.number()?,
                }
            }
            "header" => {
                let matching = self.matching(&mut args)?;
                Test::Header {
                    matching,
                    names: header_names(args.strings()?, test.at)?,
                    keys: args.strings()?,
                }
            }
            "address" | "envelope" => {
                if name == "envelope" {
                    self.need("envelope", test.at, "envelope")?;
                }
                let part = address_part(&mut args)?;
                let matching = self.matching(&mut args)?;
                let names = args.strings()?;
                let names = if name == "envelope" {
                    envelope_parts(names, test.at)?
                } else {
                    header_names(names, test.at)?
                };
                let keys = args.strings()?;
                if name == "envelope" {
                    Test::Envelope {
                        part,
                        matching,
                        names,
                        keys,
                    }
                } else {
                    Test::Address {
                        part,
                        matching,
                        names,
                        keys,
                    }
                }
            }
            other => return Err(SieveError::new(test.at, format!("unknown test {other}"))),
        };
        args.done()?;
        Ok(out)
    }

    /// `[COMPARATOR] [MATCH-TYPE]`, in either order (RFC 5228 §2.7).
    fn matching(&self, args: &mut Arguments) -> Result<Match, SieveError> {
        let kinds = [
            ("is", MatchKind::Is),
            ("contains", MatchKind::Contains),
            ("matches", MatchKind::Matches),
        ];
        let mut kind = None;
        for (tag, k) in kinds {
            if let Some(at) = args.flag(tag)? {
                if kind.is_some() {
                    return Err(SieveError::new(at, "only one match type may be given"));
                }
                kind = Some(k);
            }
        }
        let comparator = match args.value_of("comparator")? {
            None => Comparator::AsciiCasemap,
            Some(argument) => match &argument.value {
                Value::String(name) => match name.to_ascii_lowercase().as_str() {
                    "i;ascii-casemap" => Comparator::AsciiCasemap,
                    "i;octet" => Comparator::Octet,
                    other => {
                        return Err(SieveError::new(
                            argument.at,
                            format!("unknown comparator \"{other}\""),
                        ))
                    }
                },
                _ => return Err(SieveError::new(argument.at, ":comparator needs a string")),
            },
        };
        Ok(Match {
            kind: kind.unwrap_or(MatchKind::Is),
            comparator,
        })
    }
}

fn address_part(args: &mut Arguments) -> Result<AddressPart, SieveError> {
    let mut part = None;
    for (tag, p) in [
        ("all", AddressPart::All),
        ("localpart", AddressPart::LocalPart),
        ("domain", AddressPart::Domain),
    ] {
        if let Some(at) = args.flag(tag)? {
            if part.is_some() {
                return Err(SieveError::new(at, "only one address part may be given"));
            }
            part = Some(p);
        }
    }
    Ok(part.unwrap_or(AddressPart::All))
}

/// Header field names must be valid ones (RFC 5228 §5.5: printable ASCII but ':').
fn header_names(names: Vec<String>, at: Pos) -> Result<Vec<String>, SieveError> {
    for name in &names {
        if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
            return Err(SieveError::new(
                at,
                format!("invalid header field name \"{name}\""),
            ));
        }
    }
    Ok(names)
}

/// Envelope parts: "from" and "to" (RFC 5228 §5.4).
fn envelope_parts(names: Vec<String>, at: Pos) -> Result<Vec<String>, SieveError> {
    names
        .into_iter()
        .map(|n| match n.to_ascii_lowercase().as_str() {
            part @ ("from" | "to") => Ok(part.to_string()),
            other => Err(SieveError::new(
                at,
                format!("unknown envelope part \"{other}\""),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn casemap(kind: MatchKind) -> Match {
        Match {
            kind,
            comparator: Comparator::AsciiCasemap,
        }
    }

    #[test]
    fn a_script_becomes_a_program() {
        let program = compile(
            b"require [\"fileinto\", \"copy\", \"envelope\"];\n\
              if header :contains [\"Subject\", \"X-Spam\"] \"[SPAM]\" { fileinto :copy \"Junk\"; stop; }\n\
              elsif envelope :domain :is \"from\" \"example.net\" { redirect \"a@example.org\"; }\n\
              elsif anyof (size :over 1M, not exists \"date\") { discard; }\n\
              else { keep; }\n",
        )
        .unwrap();
        assert_eq!(program.required, ["fileinto", "copy", "envelope"]);
        let [Command::If {
            branches,
            otherwise,
        }] = program.commands.as_slice()
        else {
            panic!("one if: {:?}", program.commands)
        };
        assert_eq!(
            branches[0],
            (
                Test::Header {
                    matching: casemap(MatchKind::Contains),
                    names: vec!["Subject".into(), "X-Spam".into()],
                    keys: vec!["[SPAM]".into()],
                },
                vec![
                    Command::FileInto {
                        mailbox: "Junk".into(),
                        copy: true
                    },
                    Command::Stop
                ]
            )
        );
        assert_eq!(
            branches[1].0,
            Test::Envelope {
                part: AddressPart::Domain,
                matching: casemap(MatchKind::Is),
                names: vec!["from".into()],
                keys: vec!["example.net".into()],
            }
        );
        assert_eq!(
            branches[2].0,
            Test::AnyOf(vec![
                Test::Size {
                    over: true,
                    limit: 1 << 20
                },
                Test::Not(Box::new(Test::Exists(vec!["date".into()])))
            ])
        );
        assert_eq!(otherwise.as_deref(), Some(&[Command::Keep][..]));
        let program = compile(
            b"if address :comparator \"i;octet\" :localpart :matches \"from\" \"*bob*\" {}",
        )
        .unwrap();
        let [Command::If { branches, .. }] = program.commands.as_slice() else {
            panic!()
        };
        assert_eq!(
            branches[0].0,
            Test::Address {
                part: AddressPart::LocalPart,
                matching: Match {
                    kind: MatchKind::Matches,
                    comparator: Comparator::Octet
                },
                names: vec!["from".into()],
                keys: vec!["*bob*".into()],
            }
        );
    }

    /// Every prefix of a script, and the script with any byte replaced, compiles or
    /// fails with an error: never a panic (the fuzz target does the same at random).
    #[test]
    fn damaged_scripts_fail_cleanly() {
        let script: &[u8] = b"require [\"fileinto\", \"copy\"]; # c\r\n/* b */\n\
            if anyof (header :contains [\"a\", \"b\"] \"x\\\"y\", size :under 2K) {\n\
            fileinto :copy \"F\"; } elsif not exists \"z\" { redirect text:\n..x\n.\n; }\n";
        assert!(compile(script).is_err(), "redirect to an invalid address");
        for end in 0..script.len() {
            let _ = compile(&script[..end]);
        }
        for i in 0..script.len() {
            for b in [
                b'"', b'{', b'}', b'(', b')', b'[', b']', b':', b'\\', b'\n', b'*', b'/', b'#',
                0xff,
            ] {
                let mut damaged = script.to_vec();
                damaged[i] = b;
                let _ = compile(&damaged);
            }
        }
    }

    #[test]
    fn what_a_script_may_not_do() {
        let error = |s: &str| compile(s.as_bytes()).unwrap_err().to_string();
        for (script, expected) in [
            (
                "fileinto \"x\";",
                "line 1, column 1: fileinto needs require \"fileinto\"",
            ),
            (
                "require \"vacation2\";",
                "line 1, column 9: unsupported extension \"vacation2\"",
            ),
            (
                "keep; require \"fileinto\";",
                "line 1, column 7: require must come before other commands",
            ),
            ("elsif true {}", "line 1, column 1: elsif without an if"),
            (
                "if true {} else {} else {}",
                "line 1, column 20: else after else",
            ),
            ("if true;", "line 1, column 1: if needs a block"),
            ("if \"x\" {}", "line 1, column 4: if takes only a test"),
            (
                "frobnicate;",
                "line 1, column 1: unknown command frobnicate",
            ),
            ("if frob {}", "line 1, column 4: unknown test frob"),
            (
                "if size 10 {}",
                "line 1, column 4: size needs one of :over and :under",
            ),
            (
                "if size :over :under 1 {}",
                "line 1, column 4: size needs one of :over and :under",
            ),
            (
                "if header :is :contains \"a\" \"b\" {}",
                "line 1, column 15: only one match type may be given",
            ),
            (
                "if header :is :is \"a\" \"b\" {}",
                "line 1, column 15: :is given twice",
            ),
            (
                "if header \"a\" :is \"b\" {}",
                "line 1, column 15: :is must come before header's other arguments",
            ),
            (
                "if header :comparator \"i;frob\" \"a\" \"b\" {}",
                "line 1, column 23: unknown comparator \"i;frob\"",
            ),
            (
                "if header \"a b\" \"c\" {}",
                "line 1, column 4: invalid header field name \"a b\"",
            ),
            (
                "if header \"a\" {}",
                "line 1, column 4: header needs a string list",
            ),
            (
                "if exists \"a\" \"b\" {}",
                "line 1, column 15: too many arguments for exists",
            ),
            (
                "if exists :over \"a\" {}",
                "line 1, column 11: exists has no :over",
            ),
            (
                "redirect [\"a@b.example\"];",
                "line 1, column 10: redirect needs a string here",
            ),
            (
                "redirect \"not an address\";",
                "line 1, column 1: redirect to an invalid address \"not an address\"",
            ),
            (
                "require \"envelope\"; if envelope \"cc\" \"x\" {}",
                "line 1, column 24: unknown envelope part \"cc\"",
            ),
            (
                "redirect :copy \"a@b.example\";",
                "line 1, column 10: :copy needs require \"copy\"",
            ),
            (
                "if not (true, false) {}",
                "line 1, column 4: not needs one test",
            ),
            (
                "if anyof true {}",
                "line 1, column 4: anyof needs a list of tests",
            ),
            ("keep { stop; }", "line 1, column 1: keep takes no block"),
            (
                "if true {} else true {}",
                "line 1, column 12: else takes no test",
            ),
            // The grammar lets a test end with a test: "true false" is true given a test.
            (
                "if anyof (true false) {}",
                "line 1, column 11: true takes no test",
            ),
        ] {
            assert_eq!(error(script), expected, "{script}");
        }
    }
}
