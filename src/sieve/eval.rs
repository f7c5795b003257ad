//! Evaluating tests: the values each test looks at, then the match type over values
//! and keys (RFC 5228 §2.7), `:count` (RFC 5231), and the match variables a successful
//! `:matches` sets (RFC 5229 §3.2).

use super::compare::{self, relation_holds};
use super::input::{self, addresses, envelope_part};
use super::program::{BodyTransform, DuplicateId, Index, Match, MatchKind, Str, Test, Zone};
use super::run::{flag_list, Failure, Host, Run};

impl<H: Host> Run<'_, H> {
    pub(super) fn test(&mut self, test: &Test) -> Result<bool, Failure> {
        self.step(1)?;
        Ok(match test {
            Test::True => true,
            Test::False => false,
            Test::Not(inner) => !self.test(inner)?,
            Test::AllOf(tests) => {
                for t in tests {
                    if !self.test(t)? {
                        return Ok(false);
                    }
                }
                true
            }
            Test::AnyOf(tests) => {
                for t in tests {
                    if self.test(t)? {
                        return Ok(true);
                    }
                }
                false
            }
            Test::Exists(names) => names.iter().all(|n| self.view.exists(&self.expand(n))),
            Test::Size { over, limit } => {
                let size = self.view.size();
                if *over {
                    size > *limit
                } else {
                    size < *limit
                }
            }
            Test::Header {
                matching,
                index,
                names,
                keys,
            } => {
                let mut values = Vec::new();
                for name in names {
                    values.extend(pick(self.view.values(&self.expand(name)), *index));
                }
                self.match_values(*matching, &values, keys)?
            }
            Test::Address {
                part,
                matching,
                index,
                names,
                keys,
            } => {
                let mut found = Vec::new();
                for name in names {
                    for raw in pick(self.view.raw_values(&self.expand(name)), *index) {
                        found.extend(addresses(&raw, *part));
                    }
                }
                if let MatchKind::Count(_) = matching.kind {
                    let all: Vec<String> =
                        found.into_iter().map(Option::unwrap_or_default).collect();
                    self.match_values(*matching, &all, keys)?
                } else {
                    let values: Vec<String> = found.into_iter().flatten().collect();
                    self.match_values(*matching, &values, keys)?
                }
            }
            Test::Envelope {
                part,
                matching,
                names,
                keys,
            } => {
                let mut values = Vec::new();
                for name in names {
                    let input = self.view.input();
                    let address = match self.expand(name).to_ascii_lowercase().as_str() {
                        "from" => input.envelope_from,
                        "to" => input.envelope_to,
                        _ => continue,
                    };
                    values.extend(envelope_part(address, *part));
                }
                self.match_values(*matching, &values, keys)?
            }
            Test::Body {
                matching,
                transform,
                keys,
            } => {
                let values = match transform {
                    BodyTransform::Raw => vec![self.view.raw_body()],
                    BodyTransform::Text => self.view.text(),
                    BodyTransform::Content(types) => {
                        let types: Vec<String> = types.iter().map(|t| self.expand(t)).collect();
                        self.view.parts(&types)
                    }
                };
                self.step(values.iter().map(|v| v.len() as u64 / 4096).sum())?;
                self.match_values(*matching, &values, keys)?
            }
            Test::String {
                matching,
                sources,
                keys,
            } => {
                let mut values: Vec<String> = sources.iter().map(|s| self.expand(s)).collect();
                // RFC 5229 §5: empty strings are not counted.
                if matches!(matching.kind, MatchKind::Count(_)) {
                    values.retain(|v| !v.is_empty());
                }
                self.match_values(*matching, &values, keys)?
            }
            Test::HasFlag {
                matching,
                variables,
                keys,
            } => {
                let values = if variables.is_empty() {
                    self.flags.clone()
                } else {
                    flag_list(variables.iter().map(|v| self.variable(v)))
                };
                let keys: Vec<Str> = flag_list(keys.iter().map(|k| self.expand(k)))
                    .iter()
                    .map(|k| Str::from(k.as_str()))
                    .collect();
                self.match_values(*matching, &values, &keys)?
            }
            Test::Date {
                matching,
                zone,
                index,
                header,
                part,
                keys,
            } => {
                let input = self.view.input();
                let moments: Vec<(i64, i32)> = match header {
                    Some(name) => pick(self.view.values(&self.expand(name)), *index)
                        .iter()
                        .filter_map(|v| input::header_date(v))
                        .collect(),
                    None => vec![(input.now, input.local_zone)],
                };
                let values: Vec<String> = moments
                    .into_iter()
                    .map(|(unix, original)| {
                        let zone = match zone {
                            Zone::Local => input.local_zone,
                            Zone::Offset(z) => *z,
                            Zone::Original => original,
                        };
                        input::date_part(unix, zone, *part)
                    })
                    .collect();
                self.match_values(*matching, &values, keys)?
            }
            Test::MailboxExists(names) => names
                .iter()
                .all(|n| self.host.mailbox_exists(&self.expand(n))),
            Test::Duplicate {
                handle,
                id,
                seconds,
                last: _,
            } => {
                let value = match id {
                    DuplicateId::MessageId => self.view.values("message-id").into_iter().next(),
                    DuplicateId::Header(name) => {
                        self.view.values(&self.expand(name)).into_iter().next()
                    }
                    DuplicateId::UniqueId(id) => Some(self.expand(id)),
                };
                let Some(value) = value.filter(|v| !v.is_empty()) else {
                    return Ok(false);
                };
                let handle = handle.as_ref().map(|h| self.expand(h)).unwrap_or_default();
                let key = format!("{handle}\u{0}{}", value.trim());
                let seen = self.host.duplicate_seen(&key);
                self.duplicates.push((key, *seconds));
                seen
            }
            Test::SpamTest {
                matching,
                percent,
                value,
            } => {
                let score = self.view.input().spam_percent;
                let shown = match (score, percent) {
                    (None, _) => 0,
                    (Some(p), true) => p as u32,
                    // 1 (surely not junk) to 10 (surely junk).
                    (Some(p), false) => 1 + (p as u32 * 9 + 50) / 100,
                };
                self.match_values(*matching, &[shown.to_string()], std::slice::from_ref(value))?
            }
        })
    }

    /// Whether any value matches any key; a successful `:matches` sets `${0}`... when
    /// the script uses variables.
    fn match_values(
        &mut self,
        matching: Match,
        values: &[String],
        keys: &[Str],
    ) -> Result<bool, Failure> {
        if let MatchKind::Count(relation) = matching.kind {
            let count = values.len().to_string();
            for key in keys {
                let key = self.expand(key);
                if relation_holds(
                    relation,
                    compare::compare(matching.comparator, &count, &key),
                ) {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        for value in values {
            for key in keys {
                let key = self.expand(key);
                // A match costs up to value × key comparisons.
                self.step(1 + (value.len() as u64 * key.len() as u64) / 1024)?;
                if matching.kind == MatchKind::Matches && self.variables_on {
                    if let Some(captured) = compare::captures(matching.comparator, value, &key) {
                        self.matched = captured;
                        return Ok(true);
                    }
                } else if compare::matches(matching, value, &key) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// The occurrence `:index` selects, or all.
fn pick<T>(mut values: Vec<T>, index: Option<Index>) -> Vec<T> {
    let Some(Index { nth, last }) = index else {
        return values;
    };
    let n = nth as usize;
    if n == 0 || n > values.len() {
        return Vec::new();
    }
    let at = if last { values.len() - n } else { n - 1 };
    vec![values.swap_remove(at)]
}
