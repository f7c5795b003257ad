//! Typed IMAP commands: the tokens of one command ([`super::parse_command`]) become a
//! [`Request`] holding a [`Command`] whose arguments are all parsed and checked before a
//! handler runs, as SMTP's [`crate::smtp::parse`] does for its commands.
//!
//! - [`needs`] says which session state each command needs (RFC 9051 §3); the session
//!   checks it before it reports the command's argument errors, so a command in the
//!   wrong state gets the state error whatever its arguments.
//! - `arity` is the one place where a wrong number of arguments, missing or left over,
//!   is rejected, before any argument is parsed. LIST checks its own optional tail;
//!   commands without arguments, STATUS after its item list and AUTHENTICATE after the
//!   initial response ignore what follows, as they always have on the wire.
//! - Then one function per command turns the values into typed arguments, in the order
//!   the BAD texts have always been chosen in.
//!
//! The only context is `utf8` (UTF8=ACCEPT or IMAP4rev2 enabled), which decides how
//! mailbox names are decoded. APPEND's message literal is not part of its [`Append`]:
//! the session streams it ([`append_request`] parses the command up to it).

use super::fetch::{fetch_items, fetch_modifiers, modseq_modifier, FetchItem, FetchModifiers};
use super::mailbox::{
    list_request, mailbox_name, qresync_parameter, status_items, ListRequest, Qresync, StatusItem,
};
use super::search::{search_keys, search_return, SearchKey, SearchReturn};
use super::sort::{Sort, Thread};
use super::{
    parse_command, parse_date_time, parse_flags, sequence_set_arg, Flags, RawCommand, SequenceSet,
    Value,
};
use crate::auth::Secret;
use crate::store::FlagOp;

/// One command read from a client: its tag, its name and the typed command, or the BAD
/// text for its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub tag: String,
    /// The upper-cased command name (after `UID`).
    pub name: String,
    pub needs: Needs,
    pub command: Result<Command, String>,
}

/// The session state a command needs (RFC 9051 §3, §6.1–6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Any,
    NotAuthenticated,
    Authenticated,
    Selected,
    /// A selected mailbox that is not read-only (STORE, EXPUNGE, MOVE); refused with
    /// `NO [READ-ONLY]` before the arguments are looked at.
    Writable,
}

/// Which state each command needs. An unknown command is called unknown only in the
/// selected state; before that it gets the state error, as it always has.
pub fn needs(name: &str) -> Needs {
    match name {
        "CAPABILITY" | "NOOP" | "CHECK" | "LOGOUT" | "ID" => Needs::Any,
        "STARTTLS" | "LOGIN" | "AUTHENTICATE" => Needs::NotAuthenticated,
        "ENABLE" | "SELECT" | "EXAMINE" | "NAMESPACE" | "LIST" | "LSUB" | "STATUS" | "CREATE"
        | "DELETE" | "SUBSCRIBE" | "UNSUBSCRIBE" | "RENAME" | "GETQUOTAROOT" | "GETQUOTA"
        | "SETQUOTA" | "APPEND" | "IDLE" | "COMPRESS" | "NOTIFY" => Needs::Authenticated,
        "STORE" | "EXPUNGE" | "MOVE" => Needs::Writable,
        _ => Needs::Selected,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    // Any state (RFC 9051 §6.1; ID is RFC 2971).
    Capability,
    Noop,
    Check,
    Logout,
    Id,
    // Not authenticated (RFC 9051 §6.2).
    StartTls,
    Login {
        user: String,
        password: Secret,
    },
    Authenticate(Mechanism),
    // Authenticated (RFC 9051 §6.3; ENABLE is RFC 5161, IDLE RFC 2177, QUOTA RFC 9208).
    Enable(Vec<Capability>),
    Select(Select),
    Namespace,
    List(ListRequest),
    Status {
        mailbox: String,
        items: Vec<StatusItem>,
    },
    /// CREATE, with the special-use attributes asked for (RFC 6154 §3, CREATE-SPECIAL-USE).
    Create(String, Vec<String>),
    Delete(String),
    Subscribe(String),
    Unsubscribe(String),
    Rename {
        from: String,
        to: String,
    },
    GetQuotaRoot(String),
    /// The quota root, or `None` when the argument is not a string (answered as an
    /// unknown root).
    GetQuota(Option<String>),
    SetQuota,
    Idle,
    /// COMPRESS (RFC 4978) with its mechanism, upper-cased.
    Compress(String),
    /// APPEND with CATENATE (RFC 4469); other APPENDs stream their literal.
    Catenate(super::url::Catenate),
    // Selected (RFC 9051 §6.4; UNSELECT is RFC 3691, MOVE RFC 6851).
    Close,
    Unselect,
    /// EXPUNGE, or UID EXPUNGE with its set (RFC 4315 §2.1).
    Expunge(Option<SequenceSet>),
    Fetch(Fetch),
    Store(StoreFlags),
    Copy(CopyMove),
    Search(Search),
    Sort(Sort),
    Thread(Thread),
    /// CANCELUPDATE (RFC 5267 §4.3.5) with the tags of the contexts to stop.
    CancelUpdate(Vec<String>),
    /// NOTIFY (RFC 5465): SET with its event groups, or NONE.
    Notify(Option<super::notify::NotifySet>),
}

/// SASL mechanisms (RFC 9051 §6.2.2): PLAIN (RFC 4616) and, for older clients, LOGIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    /// PLAIN with its SASL-IR initial response (RFC 4959), if given.
    Plain(Option<String>),
    /// LOGIN (draft-murchison-sasl-login): the user name, then the password, each asked
    /// for with a continuation; SASL-IR may give the user name.
    Login(Option<String>),
    /// Any other mechanism: refused with NO, its response is not looked at.
    Other,
}

/// ENABLE's extensions (RFC 5161); unknown names are ignored (§3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    CondStore,
    /// Implies CONDSTORE (RFC 7162 §3.2.3).
    QResync,
    Utf8Accept,
    /// Implies UTF-8 mailbox names (RFC 9051 §5.1).
    Imap4rev2,
}

const CAPABILITIES: [(&str, Capability); 4] = [
    ("CONDSTORE", Capability::CondStore),
    ("QRESYNC", Capability::QResync),
    ("UTF8=ACCEPT", Capability::Utf8Accept),
    ("IMAP4rev2", Capability::Imap4rev2),
];

impl Capability {
    /// The extension's name as ENABLED reports it.
    pub fn name(self) -> &'static str {
        CAPABILITIES
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("", |(name, _)| name)
    }
}

/// SELECT or EXAMINE (RFC 9051 §6.3.2, §6.3.3) with CONDSTORE and QRESYNC parameters
/// (RFC 7162 §3.1.8, §3.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Select {
    pub mailbox: String,
    pub read_only: bool,
    pub condstore: bool,
    pub qresync: Option<Qresync>,
}

/// FETCH or UID FETCH (RFC 9051 §6.4.5, §6.4.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub set: SequenceSet,
    pub items: Vec<FetchItem>,
    pub modifiers: FetchModifiers,
    pub uid: bool,
}

/// STORE or UID STORE (RFC 9051 §6.4.6) with UNCHANGEDSINCE (RFC 7162 §3.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFlags {
    pub set: SequenceSet,
    pub unchanged_since: Option<u64>,
    pub op: FlagOp,
    /// `.SILENT`: no FETCH responses for the changed messages.
    pub silent: bool,
    pub flags: Flags,
    pub uid: bool,
}

/// COPY or MOVE, plain or UID (RFC 9051 §6.4.7, §6.4.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyMove {
    pub set: SequenceSet,
    pub mailbox: String,
    pub uid: bool,
    /// MOVE: the messages leave the selected mailbox.
    pub remove: bool,
}

/// SEARCH or UID SEARCH (RFC 9051 §6.4.4) with ESEARCH/SEARCHRES result options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// `None`: a plain IMAP4rev1 SEARCH (unless IMAP4rev2 is enabled).
    pub options: Option<SearchReturn>,
    /// May still contain `$` ([`SearchKey::Saved`]), which the session resolves.
    pub key: SearchKey,
    pub uid: bool,
}

/// APPEND's arguments before its message literal (RFC 9051 §6.3.12). Several flag lists
/// or dates may be given; the last one counts, as it always has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Append {
    pub mailbox: String,
    pub flags: Flags,
    /// Unix time of the given date-time.
    pub date: Option<i64>,
}

/// Parses a complete command (without its final CRLF; literals inlined). On error
/// returns the tag, if one could be read, and the BAD text; errors of the arguments
/// themselves are in [`Request::command`].
pub fn parse_request(input: &[u8], utf8: bool) -> Result<Request, (Option<String>, String)> {
    let RawCommand { tag, name, args } = parse_command(input)?;
    let (name, args, uid) = if name == "UID" {
        match args.split_first() {
            Some((Value::Atom(sub), rest)) => (sub.to_ascii_uppercase(), rest, true),
            _ => return Err((Some(tag), "UID needs a command".into())),
        }
    } else {
        (name, &args[..], false)
    };
    if uid
        && !matches!(
            name.as_str(),
            "FETCH" | "STORE" | "COPY" | "MOVE" | "SEARCH" | "EXPUNGE" | "SORT" | "THREAD"
        )
    {
        return Err((Some(tag), format!("UID {name} is not a command")));
    }
    let command = match arity(&name, uid) {
        Some((min, max, usage)) if args.len() < min || args.len() > max => Err(usage),
        _ => command(&name, args, uid, utf8),
    };
    Ok(Request {
        tag,
        needs: needs(&name),
        name,
        command,
    })
}

/// How many arguments a command takes, and the BAD text when it gets fewer or more;
/// `None` for commands whose arguments are not counted here (see the module doc).
fn arity(name: &str, uid: bool) -> Option<(usize, usize, String)> {
    let (min, max, usage) = match name {
        "LOGIN" => (2, 2, "LOGIN needs a user name and a password".into()),
        "SELECT" | "EXAMINE" => (1, 2, "SELECT needs a mailbox name".into()),
        "CREATE" => (1, 2, "CREATE needs a mailbox name".into()),
        "DELETE" | "SUBSCRIBE" | "UNSUBSCRIBE" => (1, 1, format!("{name} needs a mailbox name")),
        "RENAME" => (2, 2, "RENAME needs two mailbox names".into()),
        "GETQUOTAROOT" | "GETQUOTA" => (1, 1, format!("{name} needs one argument")),
        "COMPRESS" => (1, 1, "COMPRESS needs a mechanism".into()),
        "EXPUNGE" => {
            let n = usize::from(uid);
            (n, n, "Invalid EXPUNGE arguments".into())
        }
        "FETCH" => (2, 3, "FETCH needs a sequence set and items".into()),
        "STORE" => (
            3,
            4,
            "STORE needs a sequence set, an operation and flags".into(),
        ),
        "COPY" | "MOVE" => (2, 2, "COPY needs a sequence set and a mailbox".into()),
        _ => return None,
    };
    Some((min, max, usage))
}

/// The typed command; `args` has the count [`arity`] asks for.
fn command(name: &str, args: &[Value], uid: bool, utf8: bool) -> Result<Command, String> {
    let mailbox = |i: usize| mailbox_name(&args[i], utf8);
    Ok(match name {
        "CAPABILITY" => Command::Capability,
        "NOOP" => Command::Noop,
        "CHECK" => Command::Check,
        "LOGOUT" => Command::Logout,
        "ID" => Command::Id,
        "STARTTLS" => Command::StartTls,
        "LOGIN" => login(args)?,
        "AUTHENTICATE" => Command::Authenticate(mechanism(args)?),
        "ENABLE" => Command::Enable(enable(args)?),
        "SELECT" | "EXAMINE" => Command::Select(select(args, name == "EXAMINE", utf8)?),
        "NAMESPACE" => Command::Namespace,
        "LIST" | "LSUB" => Command::List(list_request(args, name == "LSUB", utf8)?),
        "STATUS" => status(args, utf8)?,
        "CREATE" | "DELETE" | "SUBSCRIBE" | "UNSUBSCRIBE" => {
            let mailbox = mailbox(0)?.trim_end_matches('/').to_string();
            match name {
                "CREATE" => Command::Create(mailbox, create_uses(args.get(1))?),
                "DELETE" => Command::Delete(mailbox),
                "SUBSCRIBE" => Command::Subscribe(mailbox),
                _ => Command::Unsubscribe(mailbox),
            }
        }
        "RENAME" => match (mailbox(0), mailbox(1)) {
            (Ok(from), Ok(to)) => Command::Rename { from, to },
            _ => return Err("Invalid mailbox name".into()),
        },
        "GETQUOTAROOT" => Command::GetQuotaRoot(mailbox(0)?),
        "GETQUOTA" => Command::GetQuota(args[0].text().ok()),
        "SETQUOTA" => Command::SetQuota,
        "APPEND" => match super::url::catenate(args, utf8)? {
            Some(catenate) => Command::Catenate(catenate),
            None => return Err("APPEND needs a message literal".into()),
        },
        "IDLE" => Command::Idle,
        "COMPRESS" => Command::Compress(args[0].text()?.to_ascii_uppercase()),
        "CLOSE" => Command::Close,
        "UNSELECT" => Command::Unselect,
        "EXPUNGE" => Command::Expunge(args.first().map(sequence_set_arg).transpose()?),
        "FETCH" => Command::Fetch(fetch(args, uid)?),
        "STORE" => Command::Store(store(args, uid)?),
        "COPY" | "MOVE" => Command::Copy(CopyMove {
            mailbox: mailbox(1)?,
            set: sequence_set_arg(&args[0])?,
            uid,
            remove: name == "MOVE",
        }),
        "SEARCH" => {
            let (options, keys) = search_return(args)?;
            Command::Search(Search {
                options,
                key: search_keys(keys)?,
                uid,
            })
        }
        "SORT" => Command::Sort(super::sort::sort(args, uid)?),
        "THREAD" => Command::Thread(super::sort::thread(args, uid)?),
        "NOTIFY" => Command::Notify(super::notify::notify(args, utf8)?),
        "CANCELUPDATE" if args.is_empty() => return Err("CANCELUPDATE needs a tag".into()),
        "CANCELUPDATE" => {
            Command::CancelUpdate(args.iter().map(|a| a.text()).collect::<Result<_, _>>()?)
        }
        _ => return Err(format!("Unknown command {name}")),
    })
}

/// `LOGIN user password` (RFC 9051 §6.2.3).
fn login(args: &[Value]) -> Result<Command, String> {
    match (args[0].text(), args[1].text()) {
        (Ok(user), Ok(password)) => Ok(Command::Login {
            user,
            password: Secret(password),
        }),
        _ => Err("Invalid UTF-8 in credentials".into()),
    }
}

/// `AUTHENTICATE mechanism [initial-response]` (RFC 9051 §6.2.2, RFC 4959).
fn mechanism(args: &[Value]) -> Result<Mechanism, String> {
    let Some(mechanism) = args.first().and_then(Value::atom) else {
        return Err("AUTHENTICATE needs a mechanism".into());
    };
    let initial = || args.get(1).map(Value::text).transpose();
    Ok(if mechanism.eq_ignore_ascii_case("PLAIN") {
        Mechanism::Plain(initial()?)
    } else if mechanism.eq_ignore_ascii_case("LOGIN") {
        Mechanism::Login(initial()?)
    } else {
        // Refused with NO; whatever follows is not looked at.
        Mechanism::Other
    })
}

/// CREATE's optional `(USE (\Sent ...))` (RFC 6154 §3).
fn create_uses(params: Option<&Value>) -> Result<Vec<String>, String> {
    let Some(params) = params else {
        return Ok(Vec::new());
    };
    match params {
        Value::List(items) => match items.as_slice() {
            [Value::Atom(name), Value::List(uses)] if name.eq_ignore_ascii_case("USE") => uses
                .iter()
                .map(|u| {
                    u.atom()
                        .map(str::to_string)
                        .ok_or("Invalid USE attribute".into())
                })
                .collect(),
            _ => Err("Unknown CREATE parameter".into()),
        },
        _ => Err("CREATE parameters must be a list".into()),
    }
}

/// `ENABLE capability...` (RFC 5161 §3.1).
fn enable(args: &[Value]) -> Result<Vec<Capability>, String> {
    let mut enabled = Vec::new();
    for arg in args {
        let Some(name) = arg.atom() else {
            return Err("ENABLE takes capability names".into());
        };
        if let Some((_, c)) = CAPABILITIES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            enabled.push(*c);
        }
    }
    Ok(enabled)
}

/// `SELECT mailbox [(CONDSTORE | QRESYNC (...))]`.
fn select(args: &[Value], read_only: bool, utf8: bool) -> Result<Select, String> {
    let params = match args {
        [_] => &[][..],
        [_, Value::List(params)] => &params[..],
        _ => return Err("SELECT needs a mailbox name".into()),
    };
    let mut condstore = false;
    let mut qresync = None;
    let mut params = params.iter();
    while let Some(p) = params.next() {
        match p.atom().map(str::to_ascii_uppercase).as_deref() {
            Some("CONDSTORE") => condstore = true,
            Some("QRESYNC") => match params.next() {
                Some(value) => qresync = Some(qresync_parameter(value)?),
                None => return Err("QRESYNC needs its parameters".into()),
            },
            _ => return Err("Unknown SELECT parameter".into()),
        }
    }
    Ok(Select {
        mailbox: mailbox_name(&args[0], utf8)?,
        read_only,
        condstore,
        qresync,
    })
}

/// `STATUS mailbox (items)`; what follows the item list is ignored.
fn status(args: &[Value], utf8: bool) -> Result<Command, String> {
    let (Some(mailbox), Some(Value::List(items))) = (args.first(), args.get(1)) else {
        return Err("STATUS needs a mailbox and a list of items".into());
    };
    let mailbox = mailbox_name(mailbox, utf8)?;
    Ok(Command::Status {
        mailbox,
        items: status_items(items)?,
    })
}

/// `FETCH set items [(modifiers)]`.
fn fetch(args: &[Value], uid: bool) -> Result<Fetch, String> {
    let modifiers = match args {
        [_, _] => None,
        [_, _, Value::List(modifiers)] => Some(modifiers),
        _ => return Err("FETCH needs a sequence set and items".into()),
    };
    let items = fetch_items(&args[1])?;
    let modifiers = match modifiers {
        Some(m) => fetch_modifiers(m)?,
        None => FetchModifiers::default(),
    };
    Ok(Fetch {
        set: sequence_set_arg(&args[0])?,
        items,
        modifiers,
        uid,
    })
}

/// `STORE set [(UNCHANGEDSINCE n)] [+-]FLAGS[.SILENT] flags`.
fn store(args: &[Value], uid: bool) -> Result<StoreFlags, String> {
    let (set, modifiers, op, flags) = match args {
        [set, op, flags] => (set, None, op, flags),
        [set, Value::List(m), op, flags] => (set, Some(m), op, flags),
        _ => return Err("STORE needs a sequence set, an operation and flags".into()),
    };
    let unchanged_since = modifiers
        .map(|m| modseq_modifier(m, "UNCHANGEDSINCE"))
        .transpose()?;
    let Some(op) = op.atom().map(str::to_ascii_uppercase) else {
        return Err("Invalid STORE operation".into());
    };
    let (op, silent) = match op.strip_suffix(".SILENT") {
        Some(o) => (o, true),
        None => (op.as_str(), false),
    };
    let op = match op {
        "FLAGS" => FlagOp::Replace,
        "+FLAGS" => FlagOp::Add,
        "-FLAGS" => FlagOp::Remove,
        _ => return Err(format!("Invalid STORE operation {op}")),
    };
    let flags = parse_flags(flags)?;
    Ok(StoreFlags {
        set: sequence_set_arg(set)?,
        unchanged_since,
        op,
        silent,
        flags,
        uid,
    })
}

/// APPEND's command up to its message literal: the tag and the typed arguments, or their
/// BAD text.
pub type AppendRequest = (String, Result<Append, String>);

/// Parses APPEND's command up to its message literal; errors as for [`parse_request`]
/// when the tokens cannot be read.
pub fn append_request(head: &[u8], utf8: bool) -> Result<AppendRequest, (Option<String>, String)> {
    let RawCommand { tag, args, .. } = parse_command(head)?;
    Ok((tag, append(&args, utf8)))
}

/// The flags and date-time of a further MULTIAPPEND message (RFC 3502): what precedes its
/// literal on the line after the previous message.
pub fn append_continuation(args: &[u8], utf8: bool) -> Result<(Flags, Option<i64>), String> {
    let mut command = b"x APPEND INBOX ".to_vec();
    command.extend_from_slice(args);
    let RawCommand { args, .. } = parse_command(&command).map_err(|(_, text)| text)?;
    let Append { flags, date, .. } = append(&args, utf8)?;
    Ok((flags, date))
}

/// `APPEND mailbox [(flags)] [date-time]`, in any order after the mailbox.
fn append(args: &[Value], utf8: bool) -> Result<Append, String> {
    let mut args = args.iter();
    let Some(Ok(mailbox)) = args.next().map(|v| mailbox_name(v, utf8)) else {
        return Err("APPEND needs a mailbox name".into());
    };
    let mut append = Append {
        mailbox,
        flags: Flags::default(),
        date: None,
    };
    for arg in args {
        match arg {
            Value::List(_) => append.flags = parse_flags(arg)?,
            Value::Str(_) => append.date = Some(arg.text().and_then(|t| parse_date_time(&t))?),
            Value::Atom(_) => return Err("Invalid APPEND argument".into()),
        }
    }
    Ok(append)
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
