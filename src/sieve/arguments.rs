//! A command's or test's arguments as the validator takes them: tagged arguments first,
//! each at most once and in any order (`:comparator` with its value), then the positional
//! ones in order; whatever is left over at the end is an error.

use super::parse::{Argument, Value};
use super::{Pos, SieveError};

/// The tags that take a value (the argument after them), in any command or test.
const VALUED_TAGS: [&str; 15] = [
    "comparator",
    "count",
    "value",
    "days",
    "seconds",
    "subject",
    "from",
    "addresses",
    "handle",
    "flags",
    "index",
    "zone",
    "content",
    "header",
    "uniqueid",
];

/// A command's or test's arguments: tags first, in any order, then the positional ones.
pub(super) struct Arguments<'a> {
    name: &'a str,
    at: Pos,
    tags: Vec<(Pos, &'a str, Option<&'a Argument>)>,
    positional: Vec<&'a Argument>,
}

impl<'a> Arguments<'a> {
    pub(super) fn new(
        name: &'a str,
        at: Pos,
        arguments: &'a [Argument],
    ) -> Result<Arguments<'a>, SieveError> {
        let mut tags = Vec::new();
        let mut positional = Vec::new();
        let mut it = arguments.iter().peekable();
        while let Some(argument) = it.next() {
            match &argument.value {
                Value::Tag(tag) => {
                    if !positional.is_empty() {
                        return Err(SieveError::new(
                            argument.at,
                            format!(":{tag} must come before {name}'s other arguments"),
                        ));
                    }
                    if tags.iter().any(|(_, t, _)| t == tag) {
                        return Err(SieveError::new(argument.at, format!(":{tag} given twice")));
                    }
                    let value = VALUED_TAGS
                        .contains(&tag.as_str())
                        .then(|| it.next())
                        .flatten();
                    tags.push((argument.at, tag.as_str(), value));
                }
                _ => positional.push(argument),
            }
        }
        positional.reverse();
        Ok(Arguments {
            name,
            at,
            tags,
            positional,
        })
    }

    /// Where the command or test starts.
    pub(super) fn at(&self) -> Pos {
        self.at
    }

    /// Takes a tag without a value; `Some(where)` when it was given.
    pub(super) fn flag(&mut self, tag: &str) -> Result<Option<Pos>, SieveError> {
        Ok(self.take(tag).map(|(at, _)| at))
    }

    /// Takes a tag with its value (`:comparator "i;octet"`).
    pub(super) fn value_of(&mut self, tag: &str) -> Result<Option<&'a Argument>, SieveError> {
        match self.take(tag) {
            None => Ok(None),
            Some((_, Some(value))) => Ok(Some(value)),
            Some((at, None)) => Err(SieveError::new(at, format!(":{tag} needs a value"))),
        }
    }

    /// A tag's string value (`:subject "x"`).
    pub(super) fn string_of(&mut self, tag: &str) -> Result<Option<String>, SieveError> {
        match self.value_of(tag)? {
            None => Ok(None),
            Some(Argument {
                value: Value::String(s),
                ..
            }) => Ok(Some(s.clone())),
            Some(other) => Err(SieveError::new(other.at, format!(":{tag} needs a string"))),
        }
    }

    /// A tag's string-list value (`:flags ["a", "b"]`).
    pub(super) fn strings_of(&mut self, tag: &str) -> Result<Option<Vec<String>>, SieveError> {
        match self.value_of(tag)? {
            None => Ok(None),
            Some(
                argument @ Argument {
                    value: Value::String(_) | Value::List(_),
                    ..
                },
            ) => Ok(Some(strings(argument))),
            Some(other) => Err(SieveError::new(
                other.at,
                format!(":{tag} needs a string list"),
            )),
        }
    }

    /// A tag's number value (`:days 7`).
    pub(super) fn number_of(&mut self, tag: &str) -> Result<Option<u64>, SieveError> {
        match self.value_of(tag)? {
            None => Ok(None),
            Some(Argument {
                value: Value::Number(n),
                ..
            }) => Ok(Some(*n)),
            Some(other) => Err(SieveError::new(other.at, format!(":{tag} needs a number"))),
        }
    }

    /// Whether positional arguments are left (for optional ones, as hasflag's
    /// variable list).
    pub(super) fn remaining(&self) -> usize {
        self.positional.len()
    }

    fn take(&mut self, tag: &str) -> Option<(Pos, Option<&'a Argument>)> {
        let i = self.tags.iter().position(|(_, t, _)| *t == tag)?;
        let (at, _, value) = self.tags.remove(i);
        Some((at, value))
    }

    fn next(&mut self, what: &str) -> Result<&'a Argument, SieveError> {
        self.positional
            .pop()
            .ok_or_else(|| SieveError::new(self.at, format!("{} needs {what}", self.name)))
    }

    pub(super) fn string(&mut self) -> Result<String, SieveError> {
        let argument = self.next("a string")?;
        match &argument.value {
            Value::String(s) => Ok(s.clone()),
            _ => Err(SieveError::new(
                argument.at,
                format!("{} needs a string here", self.name),
            )),
        }
    }

    pub(super) fn strings(&mut self) -> Result<Vec<String>, SieveError> {
        let argument = self.next("a string list")?;
        match &argument.value {
            Value::String(_) | Value::List(_) => Ok(strings(argument)),
            _ => Err(SieveError::new(
                argument.at,
                format!("{} needs a string list here", self.name),
            )),
        }
    }

    pub(super) fn number(&mut self) -> Result<u64, SieveError> {
        let argument = self.next("a number")?;
        match argument.value {
            Value::Number(n) => Ok(n),
            _ => Err(SieveError::new(
                argument.at,
                format!("{} needs a number here", self.name),
            )),
        }
    }

    /// Nothing may be left over.
    pub(super) fn done(self) -> Result<(), SieveError> {
        if let Some((at, tag, _)) = self.tags.first() {
            return Err(SieveError::new(*at, format!("{} has no :{tag}", self.name)));
        }
        if let Some(extra) = self.positional.last() {
            return Err(SieveError::new(
                extra.at,
                format!("too many arguments for {}", self.name),
            ));
        }
        Ok(())
    }
}

/// The strings of a string or string-list argument.
pub(super) fn strings(argument: &Argument) -> Vec<String> {
    match &argument.value {
        Value::String(s) => vec![s.clone()],
        Value::List(list) => list.clone(),
        _ => Vec::new(),
    }
}
