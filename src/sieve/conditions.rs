//! The checks of a script's tests: `true`/`false`/`not`/`allof`/`anyof` and every test of
//! the base language and the extensions, with their match types, comparators, address
//! parts, `:index` and body transforms.

use super::arguments::Arguments;
use super::parse::{self, Tests, Value};
use super::program::{
    AddressPart, BodyTransform, Comparator, DatePart, DuplicateId, Index, Match, MatchKind,
    Relation, Scope, Str, Test, Zone,
};
use super::{Pos, SieveError};

impl Scope<'_> {
    pub(super) fn test(&self, test: &parse::Test) -> Result<Test, SieveError> {
        let name = test.name.as_str();
        let at = test.at;
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
            ("not", _) => return Err(SieveError::new(at, "not needs one test")),
            ("allof" | "anyof", _) => {
                return Err(SieveError::new(at, format!("{name} needs a list of tests")))
            }
            (_, Tests::None) => {}
            _ => return Err(SieveError::new(at, format!("{name} takes no test"))),
        }
        let mut args = Arguments::new(name, at, &test.arguments)?;
        let out = match name {
            "true" => Test::True,
            "false" => Test::False,
            "exists" => Test::Exists(self.header_names(args.strings()?, at)?),
            "size" => {
                let over = args.flag("over")?;
                let under = args.flag("under")?;
                let over = match (over, under) {
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    _ => return Err(SieveError::new(at, "size needs one of :over and :under")),
                };
                Test::Size {
                    over,
                    limit: args.number()?,
                }
            }
            "header" => {
                let matching = self.matching(&mut args)?;
                let index = self.index(&mut args)?;
                Test::Header {
                    matching,
                    index,
                    names: self.header_names(args.strings()?, at)?,
                    keys: self.strs(args.strings()?, at)?,
                }
            }
            "address" => {
                let part = self.address_part(&mut args)?;
                let matching = self.matching(&mut args)?;
                let index = self.index(&mut args)?;
                Test::Address {
                    part,
                    matching,
                    index,
                    names: self.header_names(args.strings()?, at)?,
                    keys: self.strs(args.strings()?, at)?,
                }
            }
            "envelope" => {
                self.need("envelope", at, "envelope")?;
                let part = self.address_part(&mut args)?;
                let matching = self.matching(&mut args)?;
                let names = self.strs(args.strings()?, at)?;
                for name in names.iter().filter_map(Str::literal) {
                    if !matches!(name.to_ascii_lowercase().as_str(), "from" | "to") {
                        return Err(SieveError::new(
                            at,
                            format!("unknown envelope part \"{name}\""),
                        ));
                    }
                }
                Test::Envelope {
                    part,
                    matching,
                    names,
                    keys: self.strs(args.strings()?, at)?,
                }
            }
            "body" => {
                self.need("body", at, "body")?;
                let matching = self.matching(&mut args)?;
                let transform = match (
                    args.flag("raw")?,
                    args.strings_of("content")?,
                    args.flag("text")?,
                ) {
                    (None, None, None) | (None, None, Some(_)) => BodyTransform::Text,
                    (Some(_), None, None) => BodyTransform::Raw,
                    (None, Some(types), None) => BodyTransform::Content(self.strs(types, at)?),
                    _ => return Err(SieveError::new(at, "body takes one transform")),
                };
                Test::Body {
                    matching,
                    transform,
                    keys: self.strs(args.strings()?, at)?,
                }
            }
            "string" => {
                self.need("variables", at, "string")?;
                let matching = self.matching(&mut args)?;
                Test::String {
                    matching,
                    sources: self.strs(args.strings()?, at)?,
                    keys: self.strs(args.strings()?, at)?,
                }
            }
            "hasflag" => {
                self.need("imap4flags", at, "hasflag")?;
                let matching = self.matching(&mut args)?;
                let variables = if args.remaining() == 2 {
                    self.need("variables", at, "a flag variable")?;
                    args.strings()?
                        .into_iter()
                        .map(|v| v.to_ascii_lowercase())
                        .collect()
                } else {
                    Vec::new()
                };
                Test::HasFlag {
                    matching,
                    variables,
                    keys: self.strs(args.strings()?, at)?,
                }
            }
            "date" | "currentdate" => {
                self.need("date", at, name)?;
                let matching = self.matching(&mut args)?;
                let zone = self.zone(&mut args, name == "date", at)?;
                let index = if name == "date" {
                    self.index(&mut args)?
                } else {
                    None
                };
                let header = if name == "date" {
                    let header = self.header_names(vec![args.string()?], at)?;
                    header.into_iter().next()
                } else {
                    None
                };
                let part = date_part(&args.string()?, at)?;
                Test::Date {
                    matching,
                    zone,
                    index,
                    header,
                    part,
                    keys: self.strs(args.strings()?, at)?,
                }
            }
            "mailboxexists" => {
                self.need("mailbox", at, "mailboxexists")?;
                Test::MailboxExists(self.strs(args.strings()?, at)?)
            }
            "duplicate" => {
                self.need("duplicate", at, "duplicate")?;
                let handle = args.string_of("handle")?;
                let header = args.string_of("header")?;
                let unique = args.string_of("uniqueid")?;
                let id = match (header, unique) {
                    (Some(_), Some(_)) => {
                        return Err(SieveError::new(at, "only one of :header and :uniqueid"))
                    }
                    (Some(header), None) => {
                        DuplicateId::Header(self.header_names(vec![header], at)?.remove(0))
                    }
                    (None, Some(id)) => DuplicateId::UniqueId(self.str(id, at)?),
                    (None, None) => DuplicateId::MessageId,
                };
                Test::Duplicate {
                    handle: handle.map(|h| self.str(h, at)).transpose()?,
                    id,
                    seconds: args.number_of("seconds")?,
                    last: args.flag("last")?.is_some(),
                }
            }
            "spamtest" => {
                self.need("spamtest", at, "spamtest")?;
                let percent = match args.flag("percent")? {
                    Some(at) => self.need("spamtestplus", at, ":percent").map(|_| true)?,
                    None => false,
                };
                let matching = self.matching(&mut args)?;
                Test::SpamTest {
                    matching,
                    percent,
                    value: self.str(args.string()?, at)?,
                }
            }
            other => return Err(SieveError::new(at, format!("unknown test {other}"))),
        };
        args.done()?;
        Ok(out)
    }

    /// `[COMPARATOR] [MATCH-TYPE]`, in either order (RFC 5228 §2.7, RFC 5231).
    fn matching(&self, args: &mut Arguments) -> Result<Match, SieveError> {
        let mut kind = None;
        let mut set = |k, at| {
            if kind.is_some() {
                return Err(SieveError::new(at, "only one match type may be given"));
            }
            kind = Some(k);
            Ok(())
        };
        for (tag, k) in [
            ("is", MatchKind::Is),
            ("contains", MatchKind::Contains),
            ("matches", MatchKind::Matches),
        ] {
            if let Some(at) = args.flag(tag)? {
                set(k, at)?;
            }
        }
        for tag in ["count", "value"] {
            let Some(argument) = args.value_of(tag)? else {
                continue;
            };
            self.need("relational", argument.at, &format!(":{tag}"))?;
            let relation = match &argument.value {
                Value::String(op) => relation(op),
                _ => None,
            }
            .ok_or_else(|| {
                SieveError::new(
                    argument.at,
                    format!(":{tag} needs one of gt ge lt le eq ne"),
                )
            })?;
            let k = if tag == "count" {
                MatchKind::Count(relation)
            } else {
                MatchKind::Value(relation)
            };
            set(k, argument.at)?;
        }
        let comparator = match args.value_of("comparator")? {
            None => Comparator::AsciiCasemap,
            Some(argument) => match &argument.value {
                Value::String(name) => match name.to_ascii_lowercase().as_str() {
                    "i;ascii-casemap" => Comparator::AsciiCasemap,
                    "i;octet" => Comparator::Octet,
                    "i;ascii-numeric" => {
                        self.need("comparator-i;ascii-numeric", argument.at, "i;ascii-numeric")?;
                        Comparator::AsciiNumeric
                    }
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
        let kind = kind.unwrap_or(MatchKind::Is);
        if comparator == Comparator::AsciiNumeric
            && matches!(kind, MatchKind::Contains | MatchKind::Matches)
        {
            return Err(SieveError::new(
                args.at(),
                "i;ascii-numeric compares only whole values",
            ));
        }
        Ok(Match { kind, comparator })
    }

    fn index(&self, args: &mut Arguments) -> Result<Option<Index>, SieveError> {
        let nth = args.number_of("index")?;
        let last = args.flag("last")?;
        match (nth, last) {
            (None, None) => Ok(None),
            (None, Some(at)) => Err(SieveError::new(at, ":last needs :index")),
            (Some(nth), last) => {
                self.need("index", args.at(), ":index")?;
                if nth == 0 {
                    return Err(SieveError::new(args.at(), ":index counts from 1"));
                }
                Ok(Some(Index {
                    nth,
                    last: last.is_some(),
                }))
            }
        }
    }

    fn address_part(&self, args: &mut Arguments) -> Result<AddressPart, SieveError> {
        let mut part = None;
        for (tag, p) in [
            ("all", AddressPart::All),
            ("localpart", AddressPart::LocalPart),
            ("domain", AddressPart::Domain),
            ("user", AddressPart::User),
            ("detail", AddressPart::Detail),
        ] {
            if let Some(at) = args.flag(tag)? {
                if part.is_some() {
                    return Err(SieveError::new(at, "only one address part may be given"));
                }
                if matches!(p, AddressPart::User | AddressPart::Detail) {
                    self.need("subaddress", at, &format!(":{tag}"))?;
                }
                part = Some(p);
            }
        }
        Ok(part.unwrap_or(AddressPart::All))
    }

    fn zone(
        &self,
        args: &mut Arguments,
        original_allowed: bool,
        at: Pos,
    ) -> Result<Zone, SieveError> {
        let zone = args.string_of("zone")?;
        let original = if original_allowed {
            args.flag("originalzone")?
        } else {
            None
        };
        match (zone, original) {
            (Some(_), Some(at)) => Err(SieveError::new(at, "only one of :zone and :originalzone")),
            (None, Some(_)) => Ok(Zone::Original),
            (None, None) => Ok(Zone::Local),
            (Some(zone), None) => parse_zone(&zone)
                .map(Zone::Offset)
                .ok_or_else(|| SieveError::new(at, format!("invalid zone \"{zone}\""))),
        }
    }

    /// Header field names: printable ASCII but ':' (RFC 5228 §5.5), when literal.
    fn header_names(&self, names: Vec<String>, at: Pos) -> Result<Vec<Str>, SieveError> {
        for name in &names {
            if self.has("variables") && name.contains("${") {
                continue;
            }
            if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
                return Err(SieveError::new(
                    at,
                    format!("invalid header field name \"{name}\""),
                ));
            }
        }
        self.strs(names, at)
    }
}

fn relation(op: &str) -> Option<Relation> {
    Some(match op.to_ascii_lowercase().as_str() {
        "gt" => Relation::Gt,
        "ge" => Relation::Ge,
        "lt" => Relation::Lt,
        "le" => Relation::Le,
        "eq" => Relation::Eq,
        "ne" => Relation::Ne,
        _ => return None,
    })
}

/// "+hhmm" or "-hhmm" as minutes east of UTC.
pub fn parse_zone(zone: &str) -> Option<i32> {
    let b = zone.as_bytes();
    if b.len() != 5 || !b[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours: i32 = zone[1..3].parse().ok()?;
    let minutes: i32 = zone[3..5].parse().ok()?;
    (minutes < 60).then_some(sign * (hours * 60 + minutes))
}

fn date_part(name: &str, at: Pos) -> Result<DatePart, SieveError> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "year" => DatePart::Year,
        "month" => DatePart::Month,
        "day" => DatePart::Day,
        "date" => DatePart::Date,
        "julian" => DatePart::Julian,
        "hour" => DatePart::Hour,
        "minute" => DatePart::Minute,
        "second" => DatePart::Second,
        "time" => DatePart::Time,
        "iso8601" => DatePart::Iso8601,
        "std11" => DatePart::Std11,
        "zone" => DatePart::Zone,
        "weekday" => DatePart::Weekday,
        other => {
            return Err(SieveError::new(
                at,
                format!("unknown date part \"{other}\""),
            ))
        }
    })
}
