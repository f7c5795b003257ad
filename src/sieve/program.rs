//! The typed, validated form of a script: RFC 5228's commands and tests and the
//! extensions of [`EXTENSIONS`]. Every use of an extension must follow its `require`;
//! anything unknown, misplaced or of the wrong kind is an error at its line and column,
//! before the script is ever run. Commands are checked in `commands.rs`, tests in
//! `conditions.rs`.

use super::arguments::strings;
use super::parse::{self, Argument, Tests, Value};
pub use super::strings::{Part, Str};
use super::{Pos, SieveError};

/// The extensions a script may `require` here.
pub const EXTENSIONS: [&str; 23] = [
    "fileinto",
    "reject",
    "ereject",
    "envelope",
    "encoded-character",
    "copy",
    "comparator-i;octet",
    "comparator-i;ascii-casemap",
    "comparator-i;ascii-numeric",
    "imap4flags",
    "body",
    "variables",
    "relational",
    "subaddress",
    "vacation",
    "vacation-seconds",
    "date",
    "index",
    "mailbox",
    "duplicate",
    "include",
    "spamtest",
    "spamtestplus",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `if` with its `elsif`s, in order, and the `else`.
    If {
        branches: Vec<(Test, Vec<Command>)>,
        otherwise: Option<Vec<Command>>,
    },
    Stop,
    /// `keep`, with `:flags` (RFC 5232) or the current flags.
    Keep {
        flags: Option<Vec<Str>>,
    },
    Discard,
    Redirect {
        address: Str,
        copy: bool,
    },
    FileInto {
        mailbox: Str,
        copy: bool,
        /// `:create` (RFC 5490).
        create: bool,
        flags: Option<Vec<Str>>,
    },
    /// `reject` (an MDN-like refusal) or `ereject` (refused in the SMTP dialogue).
    Reject {
        reason: Str,
        extended: bool,
    },
    /// `setflag`, `addflag`, `removeflag` (RFC 5232), on a variable or the internal one.
    Flags {
        change: FlagChange,
        variable: Option<String>,
        flags: Vec<Str>,
    },
    /// `set` (RFC 5229 §4): the modifiers in the order they apply.
    Set {
        name: String,
        modifiers: Vec<Modifier>,
        value: Str,
    },
    Vacation(Box<Vacation>),
    /// `include` (RFC 6609).
    Include {
        global: bool,
        once: bool,
        optional: bool,
        name: Str,
    },
    Return,
    /// `global` (RFC 6609 §3.3): variables shared with included scripts.
    Global(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagChange {
    Set,
    Add,
    Remove,
}

/// `set` modifiers, listed in the order RFC 5229 §4.1 applies them (highest precedence
/// first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Modifier {
    Lower,
    Upper,
    LowerFirst,
    UpperFirst,
    QuoteWildcard,
    Length,
}

/// `vacation` (RFC 5230, RFC 6131's `:seconds`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vacation {
    /// How long to wait before replying to the same sender again; `None` for the
    /// default.
    pub seconds: Option<u64>,
    pub subject: Option<Str>,
    pub from: Option<Str>,
    pub addresses: Vec<Str>,
    pub mime: bool,
    pub handle: Option<Str>,
    pub reason: Str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    True,
    False,
    Not(Box<Test>),
    AllOf(Vec<Test>),
    AnyOf(Vec<Test>),
    Exists(Vec<Str>),
    /// `size :over n` (`over`) or `size :under n`.
    Size {
        over: bool,
        limit: u64,
    },
    Header {
        matching: Match,
        index: Option<Index>,
        names: Vec<Str>,
        keys: Vec<Str>,
    },
    Address {
        part: AddressPart,
        matching: Match,
        index: Option<Index>,
        names: Vec<Str>,
        keys: Vec<Str>,
    },
    /// `envelope`: `names` are "from" and/or "to".
    Envelope {
        part: AddressPart,
        matching: Match,
        names: Vec<Str>,
        keys: Vec<Str>,
    },
    /// `body` (RFC 5173).
    Body {
        matching: Match,
        transform: BodyTransform,
        keys: Vec<Str>,
    },
    /// `string` (RFC 5229 §5).
    String {
        matching: Match,
        sources: Vec<Str>,
        keys: Vec<Str>,
    },
    /// `hasflag` (RFC 5232 §4).
    HasFlag {
        matching: Match,
        variables: Vec<String>,
        keys: Vec<Str>,
    },
    /// `date` (RFC 5260 §4), or `currentdate` when `header` is `None`.
    Date {
        matching: Match,
        zone: Zone,
        index: Option<Index>,
        header: Option<Str>,
        part: DatePart,
        keys: Vec<Str>,
    },
    /// `mailboxexists` (RFC 5490 §3.1).
    MailboxExists(Vec<Str>),
    /// `duplicate` (RFC 7352).
    Duplicate {
        handle: Option<Str>,
        id: DuplicateId,
        seconds: Option<u64>,
        last: bool,
    },
    /// `spamtest` (RFC 5235): the junk filter's verdict on a scale of 0 to 10.
    SpamTest {
        matching: Match,
        percent: bool,
        value: Str,
    },
}

/// A match type with its comparator (RFC 5228 §2.7, RFC 5231).
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
    /// `:count` (RFC 5231 §4.1): the number of values, compared to each key.
    Count(Relation),
    /// `:value` (RFC 5231 §4.2).
    Value(Relation),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Octet,
    AsciiCasemap,
    /// RFC 4790 §9.1: leading digits as a number; no digits is positive infinity.
    AsciiNumeric,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressPart {
    All,
    LocalPart,
    Domain,
    /// `:user` and `:detail` (RFC 5233), split at the first "+".
    User,
    Detail,
}

/// `:index n [:last]` (RFC 5260 §6): one occurrence of the header, counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    pub nth: u64,
    pub last: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyTransform {
    Raw,
    /// The parts whose types match one of these ("text", "text/html", "" for all).
    Content(Vec<Str>),
    Text,
}

/// The zone dates are shown in (RFC 5260 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// The server's own zone.
    Local,
    /// `:zone "+hhmm"`, in minutes east of UTC.
    Offset(i32),
    /// `:originalzone`: the zone written in the header.
    Original,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatePart {
    Year,
    Month,
    Day,
    Date,
    Julian,
    Hour,
    Minute,
    Second,
    Time,
    Iso8601,
    Std11,
    Zone,
    Weekday,
}

/// What `duplicate` tracks (RFC 7352 §3): the Message-ID, another header, or a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DuplicateId {
    MessageId,
    Header(Str),
    UniqueId(Str),
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
            // RFC 6131: vacation-seconds implies vacation; spamtestplus implies spamtest.
            if name == "vacation-seconds" && !required.iter().any(|r| r == "vacation") {
                required.push("vacation".to_string());
            }
            if name == "spamtestplus" && !required.iter().any(|r| r == "spamtest") {
                required.push("spamtest".to_string());
            }
            if !required.contains(&name) {
                required.push(name);
            }
        }
        rest = after;
    }
    let scope = Scope {
        required: &required,
    };
    let commands = scope.block(rest)?;
    Ok(Program { required, commands })
}

pub(super) fn no_tests_or_block(command: &parse::Command) -> Result<(), SieveError> {
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

/// What the script `require`d, for the checks of commands and tests.
pub(super) struct Scope<'a> {
    pub(super) required: &'a [String],
}

impl Scope<'_> {
    pub(super) fn has(&self, extension: &str) -> bool {
        self.required.iter().any(|r| r == extension)
    }

    pub(super) fn need(&self, extension: &str, at: Pos, what: &str) -> Result<(), SieveError> {
        if self.has(extension) {
            return Ok(());
        }
        Err(SieveError::new(
            at,
            format!("{what} needs require \"{extension}\""),
        ))
    }

    /// A string as the `require`s make it (encoded characters, variables).
    pub(super) fn str(&self, raw: String, at: Pos) -> Result<Str, SieveError> {
        super::strings::compile(&raw, self.has("encoded-character"), self.has("variables"))
            .map_err(|e| SieveError::new(at, e))
    }

    pub(super) fn strs(&self, raw: Vec<String>, at: Pos) -> Result<Vec<Str>, SieveError> {
        raw.into_iter().map(|s| self.str(s, at)).collect()
    }

    pub(super) fn block(&self, commands: &[parse::Command]) -> Result<Vec<Command>, SieveError> {
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
}
