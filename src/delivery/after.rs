//! What the scripts asked for beyond where the copies go, carried out once the copies
//! are stored: the failure notice of a `reject` that could not be refused in the SMTP
//! dialogue (RFC 5429 §2.1), vacation replies (RFC 3834's rules, once per sender and
//! period), the one-time notice of a failing script, and the `duplicate` memory. SMTP
//! and `letterbox sendmail` both come here.

use super::filter::{self, Verdict};
use super::{notice, vacation};
use crate::store::{Delivery, Result, Store, Target};

/// The message's envelope and header, as the notices and replies need them.
pub struct Envelope<'a> {
    pub sender: &'a str,
    pub envid: Option<&'a str>,
    pub hostname: &'a str,
    /// The original message's header.
    pub head: &'a [u8],
    pub now: i64,
}

/// Carries out the `(account, recipient address, verdict)`s: first the reject notices
/// (an error there is the caller's: the sender must learn of the reject), then the rest,
/// each account's failing on its own (logged). True when something was queued.
pub fn carry_out(
    store: &Store,
    verdicts: &[(String, String, Verdict)],
    envelope: &Envelope,
) -> Result<bool> {
    let mut queued = false;
    for (_, rcpt, verdict) in verdicts {
        if let Some(reason) = &verdict.reject {
            let about = notice::About {
                sender: envelope.sender,
                envid: envelope.envid,
                arrival: envelope.now,
            };
            if let Some(bounce) =
                notice::rejected(store, envelope.hostname, about, rcpt, reason, envelope.head)?
            {
                queued |= bounce.outbound.is_some();
                super::deliver_now(store, bounce)?;
            }
        }
    }
    for (account, rcpt, verdict) in verdicts {
        let done = (|| -> Result<()> {
            filter::remember(store, account, verdict, envelope.now)?;
            if let Some(reply) = &verdict.vacation {
                queued |= send_vacation(store, account, rcpt, reply, envelope)?;
            }
            if let Some(error) = &verdict.error {
                if filter::first_failure(store, account, verdict, envelope.now)? {
                    super::deliver_now(
                        store,
                        failure_notice(account, error, envelope.hostname, envelope.now),
                    )?;
                }
            }
            Ok(())
        })();
        if let Err(e) = done {
            log::error!("sieve: after the script of {account}: {e}");
        }
    }
    Ok(queued)
}

/// A vacation reply, when RFC 3834 allows one and none went to this sender within the
/// period: queued (or stored, for a local sender) with the null sender. True if queued.
fn send_vacation(
    store: &Store,
    account: &str,
    rcpt: &str,
    reply: &crate::sieve::run::Reply,
    envelope: &Envelope,
) -> Result<bool> {
    let Envelope {
        sender,
        head,
        hostname,
        now,
        ..
    } = *envelope;
    let mut own = vec![account.to_string(), rcpt.to_string()];
    own.extend(reply.addresses.iter().cloned());
    if let Err(why) = vacation::may_reply(head, sender, &own) {
        log::info!("sieve: no vacation reply from {account} to <{sender}>: {why}");
        return Ok(false);
    }
    let key = vacation::memory_key(sender, reply);
    if store.sieve_remembers(account, &key, now)? {
        return Ok(false);
    }
    let message = vacation::build(reply, account, sender, head, hostname, now);
    let routing = notice::routing(store, sender)?;
    let Some(delivery) = notice::to_sender(message, &routing, now) else {
        return Ok(false);
    };
    let queued = delivery.outbound.is_some();
    super::deliver_now(store, delivery)?;
    store.sieve_remember(account, &key, now + reply.seconds as i64, now)?;
    log::info!("sieve: vacation reply from {account} to <{sender}>");
    Ok(queued)
}

/// The message that tells an account's owner their script failed (once per failure).
fn failure_notice(account: &str, error: &str, hostname: &str, now: i64) -> Delivery {
    let text = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n\
         To: <{account}>\r\n\
         Subject: Your Sieve script failed\r\n\
         Date: {date}\r\n\
         Message-ID: <sieve-error.{now}.{hash:016x}@{hostname}>\r\n\
         Auto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         Your Sieve filter could not run on a message delivered to {account}:\r\n\
         \r\n    {error}\r\n\r\n\
         The message was kept in your inbox, as will be every message until the script\r\n\
         is fixed. You are told this once.\r\n",
        date = crate::mail::date::rfc5322_date(now),
        hash = vacation::fnv(error.as_bytes()),
        error = error.replace(['\r', '\n'], " "),
    );
    let routing = notice::Routing::Local(vec![Target::inbox(account)]);
    notice::to_sender(text.into_bytes(), &routing, now).expect("a local routing always delivers")
}
