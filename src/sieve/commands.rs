//! The checks of a script's actions and control commands other than `if`: arguments of
//! the right kind, extensions `require`d, literal addresses valid.

use super::arguments::Arguments;
use super::parse;
use super::program::{no_tests_or_block, Command, FlagChange, Modifier, Scope, Str, Vacation};
use super::strings::is_identifier;
use super::SieveError;

impl Scope<'_> {
    pub(super) fn action(&self, command: &parse::Command) -> Result<Command, SieveError> {
        no_tests_or_block(command)?;
        let at = command.at;
        let mut args = Arguments::new(&command.name, at, &command.arguments)?;
        let action = match command.name.as_str() {
            "stop" => Command::Stop,
            "keep" => Command::Keep {
                flags: self.flags_tag(&mut args, at)?,
            },
            "discard" => Command::Discard,
            "redirect" => {
                let copy = self.copy(&mut args)?;
                let address = self.str(args.string()?, at)?;
                if let Some(literal) = address.literal() {
                    if crate::address::normalize_address(literal).is_none() {
                        return Err(SieveError::new(
                            at,
                            format!("redirect to an invalid address \"{literal}\""),
                        ));
                    }
                }
                Command::Redirect { address, copy }
            }
            "fileinto" => {
                self.need("fileinto", at, "fileinto")?;
                let copy = self.copy(&mut args)?;
                let create = match args.flag("create")? {
                    Some(at) => self.need("mailbox", at, ":create").map(|_| true)?,
                    None => false,
                };
                let flags = self.flags_tag(&mut args, at)?;
                Command::FileInto {
                    mailbox: self.str(args.string()?, at)?,
                    copy,
                    create,
                    flags,
                }
            }
            "reject" | "ereject" => {
                self.need(&command.name, at, &command.name)?;
                Command::Reject {
                    reason: self.str(args.string()?, at)?,
                    extended: command.name == "ereject",
                }
            }
            "setflag" | "addflag" | "removeflag" => {
                self.need("imap4flags", at, &command.name)?;
                let change = match command.name.as_str() {
                    "setflag" => FlagChange::Set,
                    "addflag" => FlagChange::Add,
                    _ => FlagChange::Remove,
                };
                let variable = if args.remaining() == 2 {
                    self.need("variables", at, "a flag variable")?;
                    Some(self.variable_name(args.string()?, at)?)
                } else {
                    None
                };
                Command::Flags {
                    change,
                    variable,
                    flags: self.strs(args.strings()?, at)?,
                }
            }
            "set" => {
                self.need("variables", at, "set")?;
                let modifiers = set_modifiers(&mut args)?;
                Command::Set {
                    name: self.variable_name(args.string()?, at)?,
                    modifiers,
                    value: self.str(args.string()?, at)?,
                }
            }
            "vacation" => {
                self.need("vacation", at, "vacation")?;
                Command::Vacation(Box::new(self.vacation(&mut args, at)?))
            }
            "include" => {
                self.need("include", at, "include")?;
                let personal = args.flag("personal")?;
                let global = args.flag("global")?;
                if let (Some(_), Some(second)) = (personal, global) {
                    return Err(SieveError::new(second, "only one of :personal and :global"));
                }
                let once = args.flag("once")?.is_some();
                let optional = args.flag("optional")?.is_some();
                let name = self.str(args.string()?, at)?;
                if let Some(literal) = name.literal() {
                    if !valid_script_name(literal) {
                        return Err(SieveError::new(
                            at,
                            format!("invalid script name \"{literal}\""),
                        ));
                    }
                }
                Command::Include {
                    global: global.is_some(),
                    once,
                    optional,
                    name,
                }
            }
            "return" => {
                self.need("include", at, "return")?;
                Command::Return
            }
            "global" => {
                self.need("include", at, "global")?;
                self.need("variables", at, "global")?;
                let names = args
                    .strings()?
                    .into_iter()
                    .map(|n| self.variable_name(n, at))
                    .collect::<Result<_, _>>()?;
                Command::Global(names)
            }
            other => {
                return Err(SieveError::new(at, format!("unknown command {other}")));
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

    /// `:flags` of keep and fileinto (RFC 5232 §5).
    fn flags_tag(
        &self,
        args: &mut Arguments,
        at: super::Pos,
    ) -> Result<Option<Vec<Str>>, SieveError> {
        match args.strings_of("flags")? {
            Some(flags) => {
                self.need("imap4flags", at, ":flags")?;
                Ok(Some(self.strs(flags, at)?))
            }
            None => Ok(None),
        }
    }

    fn variable_name(&self, name: String, at: super::Pos) -> Result<String, SieveError> {
        if is_identifier(&name) {
            Ok(name.to_ascii_lowercase())
        } else {
            Err(SieveError::new(
                at,
                format!("invalid variable name \"{name}\""),
            ))
        }
    }

    fn vacation(&self, args: &mut Arguments, at: super::Pos) -> Result<Vacation, SieveError> {
        let days = args.number_of("days")?;
        let seconds = args.number_of("seconds")?;
        if seconds.is_some() {
            self.need("vacation-seconds", at, ":seconds")?;
        }
        let seconds = match (days, seconds) {
            (Some(_), Some(_)) => {
                return Err(SieveError::new(at, "only one of :days and :seconds"));
            }
            (Some(days), None) => Some(days.saturating_mul(86_400)),
            (None, seconds) => seconds,
        };
        let subject = args.string_of("subject")?;
        let from = args.string_of("from")?;
        let addresses = args.strings_of("addresses")?.unwrap_or_default();
        let mime = args.flag("mime")?.is_some();
        let handle = args.string_of("handle")?;
        let vacation = Vacation {
            seconds,
            subject: subject.map(|s| self.str(s, at)).transpose()?,
            from: from.map(|s| self.str(s, at)).transpose()?,
            addresses: self.strs(addresses, at)?,
            mime,
            handle: handle.map(|s| self.str(s, at)).transpose()?,
            reason: self.str(args.string()?, at)?,
        };
        if let Some(from) = vacation.from.as_ref().and_then(Str::literal) {
            if crate::mail::address::parse(from.as_bytes()).iter().all(
                |e| !matches!(e, crate::mail::address::Entry::Mailbox(m) if m.domain.is_some()),
            ) {
                return Err(SieveError::new(
                    at,
                    format!("vacation :from is not an address \"{from}\""),
                ));
            }
        }
        Ok(vacation)
    }
}

/// The modifiers of `set`, at most one of each precedence (RFC 5229 §4.1).
fn set_modifiers(args: &mut Arguments) -> Result<Vec<Modifier>, SieveError> {
    let mut out: Vec<Modifier> = Vec::new();
    for (tag, modifier) in [
        ("lower", Modifier::Lower),
        ("upper", Modifier::Upper),
        ("lowerfirst", Modifier::LowerFirst),
        ("upperfirst", Modifier::UpperFirst),
        ("quotewildcard", Modifier::QuoteWildcard),
        ("length", Modifier::Length),
    ] {
        if let Some(at) = args.flag(tag)? {
            if out.iter().any(|m| precedence(*m) == precedence(modifier)) {
                return Err(SieveError::new(
                    at,
                    format!(":{tag} with another modifier of the same precedence"),
                ));
            }
            out.push(modifier);
        }
    }
    out.sort();
    Ok(out)
}

fn precedence(modifier: Modifier) -> u8 {
    match modifier {
        Modifier::Lower | Modifier::Upper => 40,
        Modifier::LowerFirst | Modifier::UpperFirst => 30,
        Modifier::QuoteWildcard => 20,
        Modifier::Length => 10,
    }
}

/// A script name as ManageSieve allows it (RFC 5804 §1.6): not empty, no control
/// characters, no "/", at most 255 characters.
pub fn valid_script_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 255
        && !name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\u{2028}' || c == '\u{2029}')
}
