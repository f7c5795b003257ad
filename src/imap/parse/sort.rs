//! SORT and THREAD syntax (RFC 5256 §3, SORT=DISPLAY RFC 5957, ESORT's `RETURN (...)`
//! RFC 5267 §3.2): `SORT [RETURN (...)] (criteria) charset keys` and
//! `THREAD algorithm charset keys`.

use super::search::{charset, key_list, search_return, SearchKey, SearchReturn};
use super::Value;

/// What one sort criterion compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// INTERNALDATE.
    Arrival,
    /// The local part of the first Cc, From or To address.
    Cc,
    From,
    To,
    /// The sent date (Date:, else INTERNALDATE).
    Date,
    /// RFC822.SIZE.
    Size,
    /// The base subject.
    Subject,
    /// RFC 5957: the display name of the first From or To address, else its address.
    DisplayFrom,
    DisplayTo,
}

/// SORT or UID SORT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    /// Each criterion with whether it is reversed; later ones break earlier ties.
    pub criteria: Vec<(SortBy, bool)>,
    /// ESORT result options; `None` answers with `* SORT`.
    pub options: Option<SearchReturn>,
    /// May still contain `$`, which the session resolves.
    pub key: SearchKey,
    pub uid: bool,
}

/// The threading algorithms of RFC 5256 §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadBy {
    OrderedSubject,
    References,
}

/// THREAD or UID THREAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    pub algorithm: ThreadBy,
    pub key: SearchKey,
    pub uid: bool,
}

/// Most criteria one SORT takes: more than the nine keys, each once, is a mistake.
const MAX_CRITERIA: usize = 9;

pub fn sort(args: &[Value], uid: bool) -> Result<Sort, String> {
    let (options, args) = search_return(args)?;
    let [Value::List(list), name, keys @ ..] = args else {
        return Err("SORT needs a criteria list, a charset and search keys".into());
    };
    charset(name)?;
    let mut criteria = Vec::new();
    let mut reverse = false;
    for item in list {
        let word = item.atom().map(str::to_ascii_uppercase).unwrap_or_default();
        let by = match word.as_str() {
            "REVERSE" if !reverse => {
                reverse = true;
                continue;
            }
            "ARRIVAL" => SortBy::Arrival,
            "CC" => SortBy::Cc,
            "DATE" => SortBy::Date,
            "FROM" => SortBy::From,
            "SIZE" => SortBy::Size,
            "SUBJECT" => SortBy::Subject,
            "TO" => SortBy::To,
            "DISPLAYFROM" => SortBy::DisplayFrom,
            "DISPLAYTO" => SortBy::DisplayTo,
            _ => return Err("Invalid sort criterion".into()),
        };
        criteria.push((by, reverse));
        reverse = false;
    }
    if criteria.is_empty() || reverse {
        return Err("SORT criteria must end with a key".into());
    }
    if criteria.len() > MAX_CRITERIA {
        return Err("Too many sort criteria".into());
    }
    Ok(Sort {
        criteria,
        options,
        key: key_list(keys)?,
        uid,
    })
}

pub fn thread(args: &[Value], uid: bool) -> Result<Thread, String> {
    let [algorithm, name, keys @ ..] = args else {
        return Err("THREAD needs an algorithm, a charset and search keys".into());
    };
    let algorithm = match algorithm.atom().map(str::to_ascii_uppercase).as_deref() {
        Some("ORDEREDSUBJECT") => ThreadBy::OrderedSubject,
        Some("REFERENCES") => ThreadBy::References,
        _ => return Err("Unknown threading algorithm".into()),
    };
    charset(name)?;
    Ok(Thread {
        algorithm,
        key: key_list(keys)?,
        uid,
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse_command;
    use super::*;

    fn args(line: &str) -> Vec<Value> {
        parse_command(line.as_bytes()).unwrap().args
    }

    #[test]
    fn sort_commands() {
        let s = sort(&args("a SORT (REVERSE DATE subject) UTF-8 UNSEEN"), false).unwrap();
        assert_eq!(s.criteria, [(SortBy::Date, true), (SortBy::Subject, false)]);
        assert_eq!(s.key, SearchKey::Flag(crate::store::flags::SEEN, false));
        assert!(s.options.is_none());
        let s = sort(
            &args("a SORT RETURN (MIN COUNT) (DISPLAYFROM) US-ASCII ALL"),
            true,
        )
        .unwrap();
        assert!(s.options.unwrap().min && s.options.unwrap().count && s.uid);
        for bad in [
            "a SORT (DATE) UTF-8",
            "a SORT (REVERSE) UTF-8 ALL",
            "a SORT (DATE REVERSE) UTF-8 ALL",
            "a SORT (REVERSE REVERSE DATE) UTF-8 ALL",
            "a SORT () UTF-8 ALL",
            "a SORT (BOGUS) UTF-8 ALL",
            "a SORT DATE UTF-8 ALL",
            "a SORT (DATE) KOI8-R ALL",
        ] {
            assert!(sort(&args(bad), false).is_err(), "{bad}");
        }
    }

    #[test]
    fn thread_commands() {
        let t = thread(&args("a THREAD references UTF-8 SINCE 1-Jan-2020"), true).unwrap();
        assert_eq!(t.algorithm, ThreadBy::References);
        assert!(t.uid);
        assert!(thread(&args("a THREAD ORDEREDSUBJECT UTF-8 ALL"), false).is_ok());
        assert!(thread(&args("a THREAD X-JWZ UTF-8 ALL"), false).is_err());
        assert!(thread(&args("a THREAD REFERENCES UTF-8"), false).is_err());
    }
}
