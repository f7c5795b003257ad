//! What a string in a script stands for once its extensions are known: `encoded-character`
//! (RFC 5228 §2.4.2.4) is decoded when the script is compiled, and with `variables`
//! (RFC 5229 §3) a string becomes a template of text and `${name}` / `${1}` references,
//! expanded each time it is used.

/// A compiled string: literal text, or text with variable references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Str(pub Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    /// `${name}`, the name lower-cased (variable names are case-insensitive).
    Variable(String),
    /// `${0}` to `${N}`: what the last successful `:matches` matched.
    Matched(usize),
}

impl Str {
    /// The text, when the string has no variable references.
    pub fn literal(&self) -> Option<&str> {
        match self.0.as_slice() {
            [] => Some(""),
            [Part::Text(text)] => Some(text),
            _ => None,
        }
    }
}

impl From<&str> for Str {
    fn from(text: &str) -> Str {
        Str(vec![Part::Text(text.to_string())])
    }
}

/// A string as the script's `require`s make it: `encoded` decodes `${hex:..}` and
/// `${unicode:..}`, `variables` finds references.
pub fn compile(raw: &str, encoded: bool, variables: bool) -> Result<Str, String> {
    let text = if encoded {
        decode_encoded(raw)?
    } else {
        raw.to_string()
    };
    if !variables {
        return Ok(Str(vec![Part::Text(text)]));
    }
    Ok(Str(template(&text)))
}

/// Whether `name` is a variable name `set` may assign (RFC 5229 §3: identifier).
pub fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn template(text: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        literal.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let reference = after.find('}').map(|end| &after[..end]);
        let part = reference.and_then(|name| {
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
                // Leading zeros are allowed; a huge number is simply never set.
                Some(Part::Matched(name.parse().unwrap_or(usize::MAX)))
            } else if is_identifier(name) {
                Some(Part::Variable(name.to_ascii_lowercase()))
            } else {
                None
            }
        });
        match (part, reference) {
            (Some(part), Some(name)) => {
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(part);
                rest = &after[name.len() + 1..];
            }
            // Not a reference (RFC 5229 §3: left as it is): keep "${" and go on after it.
            _ => {
                literal.push_str("${");
                rest = after;
            }
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() || parts.is_empty() {
        parts.push(Part::Text(literal));
    }
    parts
}

/// `${hex: 41 42}` and `${unicode: 263a}` decoded; anything else that starts with "${"
/// stays as written. A code point outside Unicode is an error (RFC 5228 §2.4.2.4).
pub fn decode_encoded(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match encoded_sequence(after)? {
            Some((decoded, used)) => {
                out.push_str(&decoded);
                rest = &after[used..];
            }
            None => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// One `hex:...}` or `unicode:...}` after a "${": the decoded text and the bytes used.
fn encoded_sequence(after: &str) -> Result<Option<(String, usize)>, String> {
    let colon = match after.find(':') {
        Some(colon) if colon <= 7 => colon,
        _ => return Ok(None),
    };
    let kind = after[..colon].to_ascii_lowercase();
    if kind != "hex" && kind != "unicode" {
        return Ok(None);
    }
    let Some(end) = after.find('}') else {
        return Ok(None);
    };
    let body = &after[colon + 1..end];
    let blank = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    if !body.chars().all(|c| blank(c) || c.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let units: Vec<&str> = body.split(blank).filter(|s| !s.is_empty()).collect();
    if units.is_empty() {
        return Ok(Some((String::new(), end + 1)));
    }
    let decoded = if kind == "hex" {
        if units.iter().any(|u| u.len() > 2) {
            return Ok(None);
        }
        let bytes: Vec<u8> = units
            .iter()
            .map(|u| u8::from_str_radix(u, 16).unwrap_or(0))
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        let mut s = String::new();
        for unit in units {
            match u32::from_str_radix(unit, 16).ok().and_then(char::from_u32) {
                Some(c) => s.push(c),
                None => return Err(format!("invalid unicode character \"{unit}\"")),
            }
        }
        s
    };
    Ok(Some((decoded, end + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_characters() {
        assert_eq!(decode_encoded("${hex: 24 24}").unwrap(), "$$");
        assert_eq!(decode_encoded("${HEX:40}x").unwrap(), "@x");
        assert_eq!(decode_encoded("${unicode:40}").unwrap(), "@");
        assert_eq!(decode_encoded("${Unicode:263a 00e9}").unwrap(), "☺é");
        assert_eq!(decode_encoded("${hex:}").unwrap(), "");
        // Not encodings: left as written.
        assert_eq!(decode_encoded("${hex:xyz}").unwrap(), "${hex:xyz}");
        assert_eq!(decode_encoded("${hex:123}").unwrap(), "${hex:123}");
        assert_eq!(decode_encoded("${hex 40}").unwrap(), "${hex 40}");
        assert_eq!(decode_encoded("$${hex:40").unwrap(), "$${hex:40");
        assert!(decode_encoded("${unicode:D800}").is_err());
        assert!(decode_encoded("${unicode:110000}").is_err());
    }

    #[test]
    fn templates() {
        let s = compile("a${Name}b${1}${x.y}${}${", false, true).unwrap();
        assert_eq!(
            s.0,
            [
                Part::Text("a".into()),
                Part::Variable("name".into()),
                Part::Text("b".into()),
                Part::Matched(1),
                Part::Text("${x.y}${}${".into()),
            ]
        );
        assert_eq!(
            compile("${name}", false, false).unwrap().literal(),
            Some("${name}")
        );
        assert_eq!(compile("", false, true).unwrap().literal(), Some(""));
        assert!(is_identifier("_a1") && !is_identifier("1a") && !is_identifier("a.b"));
    }
}
