//! Running a compiled script over one message: the actions it takes, whether the implicit
//! keep still happens, and the limits that stop a hostile script (actions, redirects,
//! steps, variable sizes, include depth). Nothing here has side effects: the caller
//! carries out the [`Outcome`]; what the script needs to know of the world (mailboxes,
//! duplicates, other scripts) it asks the [`Host`].

use super::input::{Input, View};
use super::program::{Command, FlagChange, Modifier, Part, Program, Str, Vacation};
use std::collections::{HashMap, HashSet};

/// At most this many actions (Pigeonhole's default too).
pub const MAX_ACTIONS: usize = 32;
/// At most this many different redirect addresses.
pub const MAX_REDIRECTS: usize = 4;
/// Commands and comparisons one run may take before it is stopped as an error.
pub const MAX_STEPS: u64 = 100_000;
/// The longest a variable's value may be (longer values are cut, RFC 5229 §3).
pub const MAX_VARIABLE: usize = 4096;
/// The longest an expanded string may be.
pub const MAX_STRING: usize = 64 * 1024;
/// Variables one script may hold.
pub const MAX_VARIABLES: usize = 255;
/// Included scripts inside one another.
pub const MAX_INCLUDE_DEPTH: usize = 10;
/// What one `include` costs against [`MAX_STEPS`]: at most 100 per run.
const INCLUDE_STEPS: u64 = 1_000;
/// `vacation`'s wait between replies to one sender, by default and at least/most (RFC
/// 5230 §4.1: 7 days by default, at least 1 day; Pigeonhole's defaults too).
pub const VACATION_DEFAULT_SECONDS: u64 = 7 * 86_400;
pub const VACATION_MIN_SECONDS: u64 = 86_400;
pub const VACATION_MAX_SECONDS: u64 = 60 * 86_400;

/// What the script can ask of the world.
pub trait Host {
    fn mailbox_exists(&self, name: &str) -> bool;
    /// Whether `key` was recorded by an earlier delivery's `duplicate` test.
    fn duplicate_seen(&self, key: &str) -> bool;
    /// Another of the account's scripts (`global`: the server's), compiled; `Ok(None)`
    /// when there is none.
    fn include(&self, global: bool, name: &str) -> Result<Option<Program>, String>;
}

/// A host for scripts that look at nothing else: no mailboxes but INBOX, no duplicates,
/// no other scripts.
pub struct NoHost;

impl Host for NoHost {
    fn mailbox_exists(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case("INBOX")
    }
    fn duplicate_seen(&self, _key: &str) -> bool {
        false
    }
    fn include(&self, _global: bool, _name: &str) -> Result<Option<Program>, String> {
        Ok(None)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// keep (into INBOX) or fileinto.
    Store {
        mailbox: String,
        flags: Vec<String>,
        create: bool,
    },
    Redirect {
        address: String,
        copy: bool,
    },
    Discard,
    Reject {
        reason: String,
        extended: bool,
    },
    Vacation(Reply),
}

/// A vacation reply the script asks for; whether it is sent is the RFC 3834 checks'
/// business, after the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub seconds: u64,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub addresses: Vec<String>,
    pub mime: bool,
    /// What identifies this reply in the per-sender memory.
    pub handle: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub actions: Vec<Action>,
    /// The flags of the implicit keep into INBOX, when it happens.
    pub implicit_keep: Option<Vec<String>>,
    /// A run-time error: the actions are dropped and the message kept (RFC 5228 §2.10.6).
    pub error: Option<String>,
    /// `duplicate` ids to remember once the message is delivered, with their lifetime.
    pub duplicates: Vec<(String, Option<u64>)>,
}

pub(super) enum Flow {
    Next,
    Stop,
    Return,
}

pub(super) type Failure = String;

/// One script's variables (RFC 6609: every included script has its own, but `global`s).
#[derive(Default)]
pub(super) struct Scope {
    pub(super) variables: HashMap<String, String>,
    pub(super) globals: HashSet<String>,
}

pub(super) struct Run<'a, H: Host> {
    pub(super) view: View<'a>,
    pub(super) host: &'a H,
    pub(super) variables_on: bool,
    pub(super) scope: Scope,
    pub(super) globals: HashMap<String, String>,
    pub(super) matched: Vec<String>,
    pub(super) flags: Vec<String>,
    pub(super) actions: Vec<Action>,
    pub(super) implicit_keep: bool,
    pub(super) steps: u64,
    pub(super) duplicates: Vec<(String, Option<u64>)>,
    included: Vec<(bool, String)>,
    /// The included scripts now running, innermost last.
    running: Vec<(bool, String)>,
    depth: usize,
}

/// Runs `program` over the message.
pub fn run(program: &Program, input: &Input, host: &impl Host) -> Outcome {
    let mut run = Run {
        view: View::new(input),
        host,
        variables_on: program.required.iter().any(|r| r == "variables"),
        scope: Scope::default(),
        globals: HashMap::new(),
        matched: Vec::new(),
        flags: Vec::new(),
        actions: Vec::new(),
        implicit_keep: true,
        steps: 0,
        duplicates: Vec::new(),
        included: Vec::new(),
        running: Vec::new(),
        depth: 0,
    };
    match run.block(&program.commands) {
        Ok(_) => Outcome {
            implicit_keep: run.implicit_keep.then(|| run.flags.clone()),
            actions: run.actions,
            error: None,
            duplicates: run.duplicates,
        },
        Err(error) => Outcome {
            actions: Vec::new(),
            implicit_keep: Some(Vec::new()),
            error: Some(error),
            duplicates: Vec::new(),
        },
    }
}

impl<H: Host> Run<'_, H> {
    pub(super) fn step(&mut self, n: u64) -> Result<(), Failure> {
        self.steps += n;
        if self.steps > MAX_STEPS {
            return Err("the script took too many steps".into());
        }
        Ok(())
    }

    fn block(&mut self, commands: &[Command]) -> Result<Flow, Failure> {
        for command in commands {
            self.step(1)?;
            match self.command(command)? {
                Flow::Next => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Next)
    }

    fn command(&mut self, command: &Command) -> Result<Flow, Failure> {
        match command {
            Command::If {
                branches,
                otherwise,
            } => {
                for (test, body) in branches {
                    if self.test(test)? {
                        return self.block(body);
                    }
                }
                if let Some(body) = otherwise {
                    return self.block(body);
                }
            }
            Command::Stop => return Ok(Flow::Stop),
            Command::Return => return Ok(Flow::Return),
            Command::Keep { flags } => {
                let flags = self.action_flags(flags.as_deref());
                self.store("INBOX".into(), flags, false)?;
                self.implicit_keep = false;
            }
            Command::Discard => {
                self.implicit_keep = false;
                if !self.actions.contains(&Action::Discard) {
                    self.add(Action::Discard)?;
                }
            }
            Command::FileInto {
                mailbox,
                copy,
                create,
                flags,
            } => {
                let flags = self.action_flags(flags.as_deref());
                let mailbox = self.expand(mailbox);
                if mailbox.is_empty() {
                    return Err("fileinto an empty mailbox name".into());
                }
                self.store(mailbox, flags, *create)?;
                self.implicit_keep &= *copy;
            }
            Command::Redirect { address, copy } => {
                let address = self.expand(address);
                if crate::address::normalize_address(&address).is_none() {
                    return Err(format!("redirect to an invalid address \"{address}\""));
                }
                self.redirect(address, *copy)?;
                self.implicit_keep &= *copy;
            }
            Command::Reject { reason, extended } => {
                let reason = self.expand(reason);
                self.reject(reason, *extended)?;
                self.implicit_keep = false;
            }
            Command::Flags {
                change,
                variable,
                flags,
            } => {
                let given = flag_list(flags.iter().map(|f| self.expand(f)));
                let mut current = match variable {
                    Some(name) => flag_list([self.variable(name)]),
                    None => std::mem::take(&mut self.flags),
                };
                change_flags(&mut current, *change, given);
                match variable {
                    Some(name) => {
                        let value = current.join(" ");
                        self.set_variable(name, value)?;
                    }
                    None => self.flags = current,
                }
            }
            Command::Set {
                name,
                modifiers,
                value,
            } => {
                let value = apply_modifiers(self.expand(value), modifiers);
                self.set_variable(name, value)?;
            }
            Command::Vacation(vacation) => self.vacation(vacation)?,
            Command::Include {
                global,
                once,
                optional,
                name,
            } => return self.include(*global, *once, *optional, name),
            Command::Global(names) => {
                for name in names {
                    self.scope.globals.insert(name.clone());
                }
            }
        }
        Ok(Flow::Next)
    }

    fn add(&mut self, action: Action) -> Result<(), Failure> {
        if self.actions.len() >= MAX_ACTIONS {
            return Err(format!("more than {MAX_ACTIONS} actions"));
        }
        self.actions.push(action);
        Ok(())
    }

    fn rejected(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Reject { .. }))
    }

    /// keep and fileinto: one store per mailbox, the later flags replacing the earlier
    /// (RFC 5228 §2.10.3; Pigeonhole does the same).
    fn store(&mut self, mailbox: String, flags: Vec<String>, create: bool) -> Result<(), Failure> {
        if self.rejected() {
            return Err("reject conflicts with storing the message".into());
        }
        let same = |m: &str| {
            m == mailbox || m.eq_ignore_ascii_case("INBOX") && mailbox.eq_ignore_ascii_case("INBOX")
        };
        for action in &mut self.actions {
            if let Action::Store {
                mailbox: m,
                flags: f,
                create: c,
            } = action
            {
                if same(m) {
                    *f = flags;
                    *c |= create;
                    return Ok(());
                }
            }
        }
        self.add(Action::Store {
            mailbox,
            flags,
            create,
        })
    }

    fn redirect(&mut self, address: String, copy: bool) -> Result<(), Failure> {
        if self.rejected() {
            return Err("reject conflicts with redirect".into());
        }
        let mut count = 0;
        for action in &self.actions {
            if let Action::Redirect { address: a, .. } = action {
                if *a == address {
                    return Ok(());
                }
                count += 1;
            }
        }
        if count >= MAX_REDIRECTS {
            return Err(format!("more than {MAX_REDIRECTS} redirects"));
        }
        self.add(Action::Redirect { address, copy })
    }

    fn reject(&mut self, reason: String, extended: bool) -> Result<(), Failure> {
        for action in &self.actions {
            match action {
                Action::Reject { .. } => return Err("a second reject".into()),
                Action::Store { .. } | Action::Redirect { .. } => {
                    return Err("reject conflicts with delivering the message".into())
                }
                Action::Vacation(_) => return Err("reject conflicts with vacation".into()),
                Action::Discard => {}
            }
        }
        self.add(Action::Reject { reason, extended })
    }

    fn vacation(&mut self, vacation: &Vacation) -> Result<(), Failure> {
        for action in &self.actions {
            match action {
                Action::Reject { .. } => return Err("vacation conflicts with reject".into()),
                Action::Vacation(_) => return Err("a second vacation".into()),
                _ => {}
            }
        }
        let seconds = vacation
            .seconds
            .unwrap_or(VACATION_DEFAULT_SECONDS)
            .clamp(VACATION_MIN_SECONDS, VACATION_MAX_SECONDS);
        let subject = vacation.subject.as_ref().map(|s| self.expand(s));
        let from = vacation.from.as_ref().map(|s| self.expand(s));
        let reason = self.expand(&vacation.reason);
        // RFC 5230 §4.2: without :handle, replies differing in their text are different.
        let handle = match &vacation.handle {
            Some(handle) => self.expand(handle),
            None => format!(
                "{reason}\u{0}{}\u{0}{}\u{0}{}",
                subject.as_deref().unwrap_or(""),
                from.as_deref().unwrap_or(""),
                vacation.mime
            ),
        };
        let reply = Reply {
            seconds,
            subject,
            from,
            addresses: vacation.addresses.iter().map(|a| self.expand(a)).collect(),
            mime: vacation.mime,
            handle,
            reason,
        };
        self.add(Action::Vacation(reply))
    }

    fn include(
        &mut self,
        global: bool,
        once: bool,
        optional: bool,
        name: &Str,
    ) -> Result<Flow, Failure> {
        let name = self.expand(name);
        let key = (global, name.clone());
        if once && self.included.contains(&key) {
            return Ok(Flow::Next);
        }
        // RFC 6609 §3.2: including a script that is already running is an error.
        if self.running.contains(&key) {
            return Err(format!("script \"{name}\" includes itself"));
        }
        // Reading and compiling a script costs more than a command.
        self.step(INCLUDE_STEPS)?;
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(format!("include nested deeper than {MAX_INCLUDE_DEPTH}"));
        }
        let program = match self.host.include(global, &name) {
            Ok(Some(program)) => program,
            Ok(None) if optional => return Ok(Flow::Next),
            Ok(None) => return Err(format!("included script \"{name}\" does not exist")),
            Err(e) => return Err(format!("included script \"{name}\": {e}")),
        };
        self.included.push(key.clone());
        self.running.push(key);
        let outer = std::mem::take(&mut self.scope);
        let outer_variables = self.variables_on;
        self.variables_on = program.required.iter().any(|r| r == "variables");
        self.depth += 1;
        let flow = self.block(&program.commands);
        self.depth -= 1;
        self.running.pop();
        self.variables_on = outer_variables;
        self.scope = outer;
        match flow? {
            Flow::Stop => Ok(Flow::Stop),
            // `return` ends the included script only.
            Flow::Next | Flow::Return => Ok(Flow::Next),
        }
    }

    /// `:flags` given, or else the internal variable.
    fn action_flags(&self, given: Option<&[Str]>) -> Vec<String> {
        match given {
            Some(flags) => flag_list(flags.iter().map(|f| self.expand(f))),
            None => self.flags.clone(),
        }
    }

    pub(super) fn variable(&self, name: &str) -> String {
        let table = if self.scope.globals.contains(name) {
            &self.globals
        } else {
            &self.scope.variables
        };
        table.get(name).cloned().unwrap_or_default()
    }

    fn set_variable(&mut self, name: &str, mut value: String) -> Result<(), Failure> {
        truncate(&mut value, MAX_VARIABLE);
        let table = if self.scope.globals.contains(name) {
            &mut self.globals
        } else {
            &mut self.scope.variables
        };
        if table.len() >= MAX_VARIABLES && !table.contains_key(name) {
            return Err(format!("more than {MAX_VARIABLES} variables"));
        }
        table.insert(name.to_string(), value);
        Ok(())
    }

    /// A string with its variable references replaced (RFC 5229 §3).
    pub(super) fn expand(&self, s: &Str) -> String {
        if let Some(text) = s.literal() {
            return text.to_string();
        }
        let mut out = String::new();
        for part in &s.0 {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Variable(name) => out.push_str(&self.variable(name)),
                Part::Matched(n) => out.push_str(self.matched.get(*n).map_or("", String::as_str)),
            }
            if out.len() > MAX_STRING {
                truncate(&mut out, MAX_STRING);
                break;
            }
        }
        out
    }
}

/// Cuts a string to at most `max` bytes, at a character boundary.
fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Flags from strings that may each hold several, separated by spaces; each once
/// (compared without case, RFC 5232 §3).
pub(super) fn flag_list(strings: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in strings {
        for flag in s.split(' ').filter(|f| !f.is_empty()) {
            if !out.iter().any(|f| f.eq_ignore_ascii_case(flag)) {
                out.push(flag.to_string());
            }
        }
    }
    out
}

fn change_flags(current: &mut Vec<String>, change: FlagChange, given: Vec<String>) {
    match change {
        FlagChange::Set => *current = given,
        FlagChange::Add => {
            for flag in given {
                if !current.iter().any(|f| f.eq_ignore_ascii_case(&flag)) {
                    current.push(flag);
                }
            }
        }
        FlagChange::Remove => current.retain(|f| !given.iter().any(|g| g.eq_ignore_ascii_case(f))),
    }
}

/// `set`'s modifiers, highest precedence first (RFC 5229 §4.1).
fn apply_modifiers(mut value: String, modifiers: &[Modifier]) -> String {
    for modifier in modifiers {
        value = match modifier {
            Modifier::Lower => value.to_lowercase(),
            Modifier::Upper => value.to_uppercase(),
            Modifier::LowerFirst | Modifier::UpperFirst => {
                let mut chars = value.chars();
                match chars.next() {
                    Some(first) => {
                        let first: String = if *modifier == Modifier::LowerFirst {
                            first.to_lowercase().collect()
                        } else {
                            first.to_uppercase().collect()
                        };
                        first + chars.as_str()
                    }
                    None => value,
                }
            }
            Modifier::QuoteWildcard => {
                let mut out = String::with_capacity(value.len());
                for c in value.chars() {
                    if matches!(c, '*' | '?' | '\\') {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out
            }
            Modifier::Length => value.chars().count().to_string(),
        };
    }
    value
}
