//! NOTIFY syntax (RFC 5465 §3.1, §8): `NOTIFY NONE` or `NOTIFY SET [STATUS]` with event
//! groups, each a mailbox filter and the events wanted for it.
//!
//! The composition rules of §5 are checked here: MessageNew and MessageExpunge come
//! together, FlagChange needs both, and the selected mailbox takes only message events.
//! Events letterbox cannot report (annotations, metadata) get `NO [BADEVENT (...)]`: the
//! error text starts with `[BADEVENT`, which the session answers with NO, not BAD.

use super::fetch::fetch_items;
use super::mailbox::mailbox_name;
use super::{FetchItem, Value};

/// The events letterbox reports, as BADEVENT lists them.
pub const SUPPORTED_EVENTS: &str =
    "MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange";

/// `NOTIFY SET`: the groups in the client's order (the first that matches a mailbox wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySet {
    /// `SET STATUS`: a STATUS for each watched mailbox before the tagged OK.
    pub status: bool,
    pub groups: Vec<EventGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventGroup {
    pub filter: Filter,
    pub events: Events,
}

/// Which mailboxes a group is about (RFC 5465 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Selected,
    /// As Selected, but expunges wait for a command that allows them.
    SelectedDelayed,
    Inboxes,
    Personal,
    Subscribed,
    /// These mailboxes and all below them.
    Subtree(Vec<String>),
    Mailboxes(Vec<String>),
}

impl Filter {
    pub fn is_selected(&self) -> bool {
        matches!(self, Filter::Selected | Filter::SelectedDelayed)
    }
}

/// The events of a group; all false for NONE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Events {
    /// MessageNew (with MessageExpunge, which always comes with it).
    pub messages: bool,
    /// FETCH items sent with each new message of the selected mailbox.
    pub fetch: Vec<FetchItem>,
    pub flag_change: bool,
    pub mailbox_name: bool,
    pub subscription_change: bool,
}

/// `NOTIFY` arguments: `None` for NONE.
pub fn notify(args: &[Value], utf8: bool) -> Result<Option<NotifySet>, String> {
    let word = |v: &Value| v.atom().map(str::to_ascii_uppercase);
    let Some((first, rest)) = args.split_first() else {
        return Err("NOTIFY needs SET or NONE".into());
    };
    match word(first).as_deref() {
        Some("NONE") if rest.is_empty() => return Ok(None),
        Some("SET") => {}
        _ => return Err("NOTIFY needs SET or NONE".into()),
    }
    let (status, groups) = match rest.split_first() {
        Some((v, groups)) if word(v).as_deref() == Some("STATUS") => (true, groups),
        _ => (false, rest),
    };
    if groups.is_empty() {
        return Err("NOTIFY SET needs an event group".into());
    }
    let groups = groups
        .iter()
        .map(|g| match g {
            Value::List(items) => event_group(items, utf8),
            _ => Err("An event group is a list".into()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if groups.iter().filter(|g| g.filter.is_selected()).count() > 1 {
        return Err("SELECTED can be given once".into());
    }
    Ok(Some(NotifySet { status, groups }))
}

/// `(filter events)`.
fn event_group(items: &[Value], utf8: bool) -> Result<EventGroup, String> {
    let word = items
        .first()
        .and_then(Value::atom)
        .map(str::to_ascii_uppercase)
        .ok_or("An event group starts with a mailbox filter")?;
    let names = |v: &Value| -> Result<Vec<String>, String> {
        match v {
            Value::List(names) if names.is_empty() => Err("Empty mailbox list".into()),
            Value::List(names) => names.iter().map(|n| mailbox_name(n, utf8)).collect(),
            one => Ok(vec![mailbox_name(one, utf8)?]),
        }
    };
    let (filter, rest) = match (word.as_str(), &items[1..]) {
        ("SELECTED", rest) => (Filter::Selected, rest),
        ("SELECTED-DELAYED", rest) => (Filter::SelectedDelayed, rest),
        ("INBOXES", rest) => (Filter::Inboxes, rest),
        ("PERSONAL", rest) => (Filter::Personal, rest),
        ("SUBSCRIBED", rest) => (Filter::Subscribed, rest),
        ("SUBTREE", [m, rest @ ..]) => (Filter::Subtree(names(m)?), rest),
        ("MAILBOXES", [m, rest @ ..]) => (Filter::Mailboxes(names(m)?), rest),
        _ => return Err("Unknown NOTIFY mailbox filter".into()),
    };
    let events = match rest {
        [v] if v.atom().is_some_and(|a| a.eq_ignore_ascii_case("NONE")) => Events::default(),
        [Value::List(list)] if !list.is_empty() => events(list)?,
        _ => return Err("An event group needs a list of events or NONE".into()),
    };
    if filter.is_selected() && (events.mailbox_name || events.subscription_change) {
        return Err("SELECTED takes only message events".into());
    }
    if !filter.is_selected() && !events.fetch.is_empty() {
        return Err("FETCH items are for the selected mailbox only".into());
    }
    Ok(EventGroup { filter, events })
}

fn events(list: &[Value]) -> Result<Events, String> {
    let mut e = Events::default();
    let (mut new, mut expunge) = (false, false);
    let (mut unsupported, mut annotations) = (false, false);
    let mut it = list.iter().peekable();
    while let Some(v) = it.next() {
        let name = v.atom().ok_or("An event is an atom")?.to_ascii_uppercase();
        match name.as_str() {
            "MESSAGENEW" => {
                new = true;
                if let Some(Value::List(_)) = it.peek() {
                    let items = it.next().map(fetch_items).transpose()?;
                    e.fetch = items.unwrap_or_default();
                }
            }
            "MESSAGEEXPUNGE" => expunge = true,
            "FLAGCHANGE" => e.flag_change = true,
            "MAILBOXNAME" => e.mailbox_name = true,
            "SUBSCRIPTIONCHANGE" => e.subscription_change = true,
            // Like FlagChange, it needs both message events (RFC 5465 §5).
            "ANNOTATIONCHANGE" => {
                annotations = true;
                unsupported = true
            }
            "MAILBOXMETADATACHANGE" | "SERVERMETADATACHANGE" => unsupported = true,
            _ => return Err(format!("Unknown NOTIFY event {name}")),
        }
    }
    // RFC 5465 §5: both or neither; FlagChange (and AnnotationChange) need both.
    if new != expunge {
        return Err("MessageNew and MessageExpunge go together".into());
    }
    if e.flag_change && !new {
        return Err("FlagChange needs MessageNew and MessageExpunge".into());
    }
    if annotations && !new {
        return Err("AnnotationChange needs MessageNew and MessageExpunge".into());
    }
    if unsupported {
        return Err(format!(
            "[BADEVENT ({SUPPORTED_EVENTS})] Unsupported NOTIFY event"
        ));
    }
    e.messages = new;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::parse::parse_command;

    fn parse(args: &str) -> Result<Option<NotifySet>, String> {
        let raw = parse_command(format!("a NOTIFY {args}").as_bytes()).map_err(|e| e.1)?;
        notify(&raw.args, false)
    }

    #[test]
    fn sets_and_none() {
        assert_eq!(parse("NONE"), Ok(None));
        let set = parse(
            "SET STATUS (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange)) \
             (subtree (Work Lists) (MessageNew MessageExpunge MailboxName)) (personal NONE)",
        )
        .unwrap()
        .unwrap();
        assert!(set.status);
        assert_eq!(set.groups.len(), 3);
        assert_eq!(set.groups[0].filter, Filter::Selected);
        assert_eq!(
            set.groups[0].events.fetch,
            [FetchItem::Uid, FetchItem::Flags]
        );
        assert!(set.groups[0].events.flag_change && set.groups[0].events.messages);
        assert_eq!(
            set.groups[1].filter,
            Filter::Subtree(vec!["Work".into(), "Lists".into()])
        );
        assert!(set.groups[1].events.mailbox_name && !set.groups[1].events.flag_change);
        assert_eq!(set.groups[2].events, Events::default());
        let set = parse("SET (mailboxes inbox (MessageNew MessageExpunge))")
            .unwrap()
            .unwrap();
        assert_eq!(
            set.groups[0].filter,
            Filter::Mailboxes(vec!["INBOX".into()])
        );
    }

    #[test]
    fn composition_rules_and_errors() {
        for (args, error) in [
            (
                "SET (personal (AnnotationChange))",
                "AnnotationChange needs MessageNew and MessageExpunge",
            ),
            (
                "SET (personal (MessageNew))",
                "MessageNew and MessageExpunge go together",
            ),
            (
                "SET (personal (FlagChange))",
                "FlagChange needs MessageNew and MessageExpunge",
            ),
            (
                "SET (selected (MailboxName))",
                "SELECTED takes only message events",
            ),
            (
                "SET (selected NONE) (selected-delayed NONE)",
                "SELECTED can be given once",
            ),
            (
                "SET (personal (MessageNew (UID) MessageExpunge))",
                "FETCH items are for the selected mailbox only",
            ),
            (
                "SET (bogus (MessageNew MessageExpunge))",
                "Unknown NOTIFY mailbox filter",
            ),
            ("SET (personal (Bogus))", "Unknown NOTIFY event BOGUS"),
            (
                "SET (personal ())",
                "An event group needs a list of events or NONE",
            ),
            ("SET", "NOTIFY SET needs an event group"),
            ("SET STATUS", "NOTIFY SET needs an event group"),
            ("NONE extra", "NOTIFY needs SET or NONE"),
            (
                "SET (subtree () (MessageNew MessageExpunge))",
                "Empty mailbox list",
            ),
            (
                "SET (personal (MailboxMetadataChange))",
                "[BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)] \
                 Unsupported NOTIFY event",
            ),
        ] {
            assert_eq!(parse(args), Err(error.to_string()), "{args}");
        }
    }
}
