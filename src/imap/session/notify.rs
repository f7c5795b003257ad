//! NOTIFY (RFC 5465): once a client has said which events it wants, they are sent as
//! they happen, between commands as well as during IDLE.
//!
//! - The selected mailbox (filter `selected` or `selected-delayed`): the usual EXISTS,
//!   EXPUNGE and FETCH FLAGS of [`Session::sync`], plus FETCH of the items MessageNew asked
//!   for; `selected-delayed` keeps expunges for a command that allows them.
//! - Other mailboxes: a STATUS (MESSAGES UIDNEXT UIDVALIDITY UNSEEN, and HIGHESTMODSEQ once
//!   CONDSTORE is on) when messages arrive or go, or, with FlagChange, when flags change;
//!   LIST for MailboxName (a new name, `\NonExistent` for a deleted one, `OLDNAME` for a
//!   rename) and for SubscriptionChange (`\Subscribed` or not).
//!
//! Every change the committer announces wakes the session; the account's mailboxes and
//! their counters (one record each) are then compared with what the client was last told.
//! Changes made by the session itself are reported too, as Dovecot does (RFC 5465 §5
//! only asks to omit them with SHOULD). When several groups match a mailbox, the first wins.

use super::{Reply, Session};
use crate::imap::encode;
use crate::imap::mutf7;
use crate::imap::parse::{Events, Filter, NotifySet, StatusItem};
use crate::store::{Mailbox, MailboxCounts, Store};
use std::collections::{BTreeSet, HashMap};
use std::io;
use tokio::sync::watch;

pub(super) struct Notify {
    set: NotifySet,
    /// A receiver of its own: [`Session::sync`] takes the session's.
    pub changes: watch::Receiver<u64>,
    /// The account as the client last heard of it.
    known: State,
}

/// An account's mailboxes (with their counters) and subscriptions at one moment.
#[derive(Debug, Clone, Default)]
pub(super) struct State {
    mailboxes: HashMap<u64, (Mailbox, MailboxCounts)>,
    subscribed: BTreeSet<String>,
}

/// Reads what [`Notify`] compares, in one transaction. Runs in the store thread.
fn account_state(store: &Store, account: &str) -> crate::store::Result<State> {
    let (mailboxes, subscribed) = store.mailboxes_with_counts(account)?;
    Ok(State {
        mailboxes: mailboxes.into_iter().map(|m| (m.0.id, m)).collect(),
        subscribed: subscribed.into_iter().collect(),
    })
}

impl Notify {
    /// Whether flag changes of the selected mailbox were asked for: their FETCHes then
    /// carry the UID (RFC 5465 §5.1).
    pub fn flag_changes(&self) -> bool {
        self.set.selected().is_some_and(|(e, _)| e.flag_change)
    }

    /// The FETCH items MessageNew asked for the selected mailbox, if any.
    pub fn fetch_items(&self) -> Option<Vec<crate::imap::parse::FetchItem>> {
        self.set
            .selected()
            .map(|(e, _)| e.fetch.clone())
            .filter(|items| !items.is_empty())
    }
}

impl NotifySet {
    /// The events of the first group other than `selected` that matches `name`.
    fn events_for(&self, name: &str, subscribed: &BTreeSet<String>) -> Option<&Events> {
        let under = |roots: &[String]| {
            roots.iter().any(|r| {
                name == r
                    || name
                        .strip_prefix(r.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
        };
        self.groups
            .iter()
            .find(|g| match &g.filter {
                Filter::Selected | Filter::SelectedDelayed => false,
                Filter::Inboxes | Filter::Personal => true,
                Filter::Subscribed => subscribed.contains(name),
                Filter::Subtree(roots) => under(roots),
                Filter::Mailboxes(names) => names.iter().any(|n| n == name),
            })
            .map(|g| &g.events)
    }

    /// The selected group's events and whether expunges wait (`selected-delayed`).
    fn selected(&self) -> Option<(&Events, bool)> {
        self.groups
            .iter()
            .find(|g| g.filter.is_selected())
            .map(|g| (&g.events, g.filter == Filter::SelectedDelayed))
    }

    fn watches_mailboxes(&self) -> bool {
        self.groups.iter().any(|g| {
            !g.filter.is_selected()
                && (g.events.messages || g.events.mailbox_name || g.events.subscription_change)
        })
    }
}

/// The STATUS that tells a mailbox's new counts.
fn status_line(
    mailbox: &Mailbox,
    counts: &MailboxCounts,
    condstore: bool,
    wire: &dyn Fn(&str) -> String,
) -> String {
    let mut values = vec![
        (StatusItem::Messages, counts.messages),
        (StatusItem::UidNext, mailbox.uid_next as u64),
        (StatusItem::UidValidity, mailbox.uid_validity as u64),
        (StatusItem::Unseen, counts.unseen),
    ];
    if condstore {
        values.push((StatusItem::HighestModSeq, mailbox.highest_modseq));
    }
    encode::status(&wire(&mailbox.name), &values)
}

/// What tells the client how the account went from `before` to `now`. `selected`: the
/// selected mailbox, whose messages are reported by [`Session::sync`] instead.
fn events(
    set: &NotifySet,
    before: &State,
    now: &State,
    selected: Option<u64>,
    condstore: bool,
    wire: &dyn Fn(&str) -> String,
) -> String {
    let mut out = String::new();
    let list =
        |attributes: &[&str], name: &str| encode::list("LIST", attributes, &wire(name), false);
    let wants = |name: &str, pick: fn(&Events) -> bool| {
        set.events_for(name, &now.subscribed)
            .or_else(|| set.events_for(name, &before.subscribed))
            .is_some_and(pick)
    };
    // MailboxName (RFC 5465 §5.4): by mailbox id, so that a rename is one.
    let mut ids: Vec<u64> = before
        .mailboxes
        .keys()
        .chain(now.mailboxes.keys())
        .copied()
        .collect();
    ids.sort_unstable();
    ids.dedup();
    for id in &ids {
        let (old, new) = (before.mailboxes.get(id), now.mailboxes.get(id));
        match (old, new) {
            (Some((old, _)), None) if wants(&old.name, |e| e.mailbox_name) => {
                out.push_str(&list(&["\\NonExistent"], &old.name));
            }
            (None, Some((new, _))) if wants(&new.name, |e| e.mailbox_name) => {
                out.push_str(&list(&[], &new.name));
            }
            (Some((old, _)), Some((new, _)))
                if (old.name != new.name || old.noselect != new.noselect)
                    && (wants(&old.name, |e| e.mailbox_name)
                        || wants(&new.name, |e| e.mailbox_name)) =>
            {
                let attributes: &[&str] = if new.noselect { &["\\Noselect"] } else { &[] };
                let mut line = list(attributes, &new.name);
                if old.name != new.name {
                    line.truncate(line.len() - 2);
                    let oldname = encode::quote(&wire(&old.name));
                    line.push_str(&format!(" (\"OLDNAME\" ({oldname}))\r\n"));
                }
                out.push_str(&line);
            }
            _ => {}
        }
    }
    // SubscriptionChange (RFC 5465 §5.5).
    let exists = |name: &str| now.mailboxes.values().any(|(m, _)| m.name == name);
    for name in now.subscribed.difference(&before.subscribed) {
        if wants(name, |e| e.subscription_change) {
            let attributes: &[&str] = if exists(name) {
                &["\\Subscribed"]
            } else {
                &["\\Subscribed", "\\NonExistent"]
            };
            out.push_str(&list(attributes, name));
        }
    }
    for name in before.subscribed.difference(&now.subscribed) {
        if wants(name, |e| e.subscription_change) {
            let attributes: &[&str] = if exists(name) {
                &[]
            } else {
                &["\\NonExistent"]
            };
            out.push_str(&list(attributes, name));
        }
    }
    // MessageNew, MessageExpunge, FlagChange (RFC 5465 §5.1-5.3) of other mailboxes.
    for id in &ids {
        let (Some((old, old_counts)), Some((new, counts))) =
            (before.mailboxes.get(id), now.mailboxes.get(id))
        else {
            continue;
        };
        if Some(*id) == selected || new.noselect {
            continue;
        }
        let Some(events) = set.events_for(&new.name, &now.subscribed) else {
            continue;
        };
        let messages = old.uid_next != new.uid_next
            || old.uid_validity != new.uid_validity
            || old_counts.messages != counts.messages;
        let flags = old.highest_modseq != new.highest_modseq || old_counts.unseen != counts.unseen;
        if events.messages && (messages || (events.flag_change && flags)) {
            out.push_str(&status_line(new, counts, condstore, wire));
        }
    }
    out
}

impl Session {
    fn wire_fn(&self) -> impl Fn(&str) -> String {
        let utf8 = self.utf8;
        move |name: &str| {
            if utf8 {
                name.to_string()
            } else {
                mutf7::encode(name)
            }
        }
    }

    /// NOTIFY (RFC 5465 §3.1). SET STATUS first tells the counts of every watched
    /// mailbox; SET is also an implicit NOOP.
    pub(super) async fn notify_command(
        &mut self,
        tag: &str,
        set: Option<NotifySet>,
    ) -> io::Result<Reply> {
        let Some(set) = set else {
            self.notify = None;
            return self.finish(tag, "OK NOTIFY completed", true).await;
        };
        // Subscribed before the state is read: nothing in between goes unnoticed.
        let mut changes = self.shared.committer.subscribe();
        changes.borrow_and_update();
        let account = self.account();
        let state = match self.blocking(move |s| account_state(s, &account)).await? {
            Ok(state) => state,
            Err(e) => return Ok(Reply::No(format!("[SERVERBUG] {e}"))),
        };
        if set.status {
            let selected = self.selected.as_ref().map(|s| s.id);
            let wire = self.wire_fn();
            let mut watched: Vec<&(Mailbox, MailboxCounts)> = state
                .mailboxes
                .values()
                .filter(|(m, _)| Some(m.id) != selected && !m.noselect)
                .filter(|(m, _)| {
                    set.events_for(&m.name, &state.subscribed)
                        .is_some_and(|e| e.messages)
                })
                .collect();
            watched.sort_by(|a, b| a.0.name.cmp(&b.0.name));
            let out: String = watched
                .into_iter()
                .map(|(m, c)| status_line(m, c, self.condstore, &wire))
                .collect();
            self.conn.send(out.as_bytes());
        }
        self.notify = Some(Notify {
            set,
            changes,
            known: state,
        });
        self.finish(tag, "OK NOTIFY completed", true).await
    }

    /// Sends the events NOTIFY asked for that happened since the last time. `in_idle`:
    /// IDLE allows expunges even for `selected-delayed` (RFC 5465 §6.1).
    pub(super) async fn push_events(&mut self, in_idle: bool) -> io::Result<()> {
        let Some(notify) = self.notify.as_mut() else {
            return Ok(());
        };
        notify.changes.borrow_and_update();
        let selected = notify
            .set
            .selected()
            .filter(|(events, _)| events.messages)
            .map(|(events, delayed)| (events.flag_change, delayed));
        let watches_mailboxes = notify.set.watches_mailboxes();
        if let (Some((flags, delayed)), true) = (selected, self.selected.is_some()) {
            // sync() sends MessageNew's FETCHes after the EXISTS; ESEARCH comes last.
            self.sync_with(!delayed || in_idle, flags).await?;
            self.update_contexts().await?;
        }
        if !watches_mailboxes {
            return Ok(());
        }
        let account = self.account();
        let state = match self.blocking(move |s| account_state(s, &account)).await? {
            Ok(state) => state,
            Err(e) => {
                log::error!(
                    "imap {}: reading mailboxes for NOTIFY failed: {e}",
                    self.conn.peer
                );
                return Ok(());
            }
        };
        let selected = self.selected.as_ref().map(|s| s.id);
        let (condstore, wire) = (self.condstore, self.wire_fn());
        let Some(notify) = self.notify.as_mut() else {
            return Ok(());
        };
        let out = events(
            &notify.set,
            &notify.known,
            &state,
            selected,
            condstore,
            &wire,
        );
        notify.known = state;
        self.conn.send(out.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::parse::notify::notify;
    use crate::imap::parse::parse_command;

    fn set(args: &str) -> NotifySet {
        let raw = parse_command(format!("a NOTIFY {args}").as_bytes()).unwrap();
        notify(&raw.args, false).unwrap().unwrap()
    }

    fn mailbox(
        id: u64,
        name: &str,
        uid_next: u32,
        messages: u64,
        unseen: u64,
    ) -> (Mailbox, MailboxCounts) {
        let mailbox = Mailbox {
            id,
            name: name.into(),
            uid_validity: 7,
            uid_next,
            highest_modseq: uid_next as u64 + unseen,
            noselect: false,
            special_use: None,
        };
        let counts = MailboxCounts {
            messages,
            unseen,
            ..MailboxCounts::default()
        };
        (mailbox, counts)
    }

    fn state(mailboxes: &[(Mailbox, MailboxCounts)], subscribed: &[&str]) -> State {
        State {
            mailboxes: mailboxes.iter().map(|m| (m.0.id, m.clone())).collect(),
            subscribed: subscribed.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn wire(name: &str) -> String {
        name.to_string()
    }

    #[test]
    fn names_subscriptions_and_counts() {
        let set = set("SET (selected (MessageNew MessageExpunge)) \
             (personal (MessageNew MessageExpunge MailboxName SubscriptionChange))");
        let before = state(
            &[
                mailbox(1, "INBOX", 5, 4, 1),
                mailbox(2, "Work", 3, 2, 0),
                mailbox(3, "Old", 1, 0, 0),
            ],
            &["Work"],
        );
        let now = state(
            &[
                mailbox(1, "INBOX", 6, 5, 2),
                mailbox(2, "Job", 4, 3, 1),
                mailbox(4, "New", 1, 0, 0),
            ],
            &["Job", "Gone"],
        );
        assert_eq!(
            events(&set, &before, &now, Some(1), false, &wire),
            "* LIST () \"/\" \"Job\" (\"OLDNAME\" (\"Work\"))\r\n\
             * LIST (\\NonExistent) \"/\" \"Old\"\r\n\
             * LIST () \"/\" \"New\"\r\n\
             * LIST (\\Subscribed \\NonExistent) \"/\" \"Gone\"\r\n\
             * LIST (\\Subscribed) \"/\" \"Job\"\r\n\
             * LIST (\\NonExistent) \"/\" \"Work\"\r\n\
             * STATUS \"Job\" (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 7 UNSEEN 1)\r\n"
        );
        assert_eq!(events(&set, &now, &now, Some(1), false, &wire), "");
    }

    #[test]
    fn flag_changes_need_flagchange_and_the_first_group_wins() {
        let before = state(
            &[
                mailbox(2, "Lists/rust", 3, 2, 2),
                mailbox(3, "Work", 3, 2, 2),
            ],
            &[],
        );
        let now = state(
            &[
                mailbox(2, "Lists/rust", 3, 2, 1),
                mailbox(3, "Work", 3, 2, 1),
            ],
            &[],
        );
        let set = set("SET (subtree Lists (MessageNew MessageExpunge)) \
             (personal (MessageNew MessageExpunge FlagChange))");
        assert_eq!(
            events(&set, &before, &now, None, true, &wire),
            "* STATUS \"Work\" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 7 UNSEEN 1 HIGHESTMODSEQ 4)\r\n"
        );
        let set = super::tests::set(
            "SET (mailboxes (Work) NONE) (personal (MessageNew MessageExpunge FlagChange))",
        );
        assert_eq!(
            events(&set, &before, &now, None, false, &wire),
            "* STATUS \"Lists/rust\" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 7 UNSEEN 1)\r\n"
        );
    }
}
