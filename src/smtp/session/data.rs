//! DATA (RFC 5321 §4.1.1.4) and BDAT (RFC 3030): receiving the message into the spool,
//! then one delivery for every recipient, and the 250 only once it is durable. NOTIFY=SUCCESS
//! notices (RFC 3461) follow the delivery.

use super::*;
use crate::limits::MIN_DATA_RATE;
use crate::net::Pace;
use crate::store::StoreError;
use filter::Group;

/// More `Received:` fields than this and the message is refused as looping.
const MAX_HOPS: usize = 50;

/// RFC 3463 4.3.1: the disk or the store is full; the client may try again later.
pub(super) const REPLY_NO_ROOM: &[u8] =
    b"452 4.3.1 Insufficient system storage, try again later\r\n";

impl Session {
    pub(super) async fn data(&mut self) -> io::Result<Option<End>> {
        let refusal = match &self.tx {
            None => Some((503, "5.5.1", "Send MAIL first")),
            Some(tx)
                if tx.recipients.is_empty() && tx.outbound.is_empty() && tx.forwards.is_empty() =>
            {
                Some((554, "5.5.1", "No valid recipients"))
            }
            _ => None,
        };
        if let Some((code, esc, text)) = refusal {
            let stop = self.error(code, esc, text);
            return Ok(stop.then_some(End::TooManyErrors));
        }
        self.reply(354, "2.0.0", "End data with <CR><LF>.<CR><LF>");
        let max = self.config.limits.max_message_size;
        let mut spool = SpoolWriter::new(self.shared.store.spool_dir());
        let mut decoder = DataDecoder::new();
        let mut decoded = Vec::new();
        let mut too_big = false;
        // A spool write that failed (disk full): the rest is read and thrown away.
        let mut no_room = false;
        self.conn.read_timeout = self.config.limits.data_timeout();
        let pace = Pace::new(self.config.limits.data_timeout(), MIN_DATA_RATE);
        let mut received = 0u64;
        let outcome = loop {
            if !self.conn.has_buffered_input() {
                match self.conn.fill_by(Some(pace.deadline(received))).await {
                    Ok(0) => break Ok(false),
                    Ok(_) => {}
                    Err(e) => break Err(e),
                }
            }
            let fed = decoder.feed(self.conn.buffered(), &mut decoded);
            self.conn.consume(fed.consumed);
            received += fed.consumed as u64;
            if !too_big && !no_room {
                if spool.len() + decoded.len() as u64 > max {
                    too_big = true;
                } else if let Err(e) = spool.write(&decoded) {
                    log::error!("smtp {}: spooling the message: {e}", self.conn.peer);
                    no_room = true;
                }
            }
            decoded.clear();
            if fed.done {
                break Ok(true);
            }
        };
        self.conn.read_timeout = self.config.limits.command_timeout();
        if !outcome? {
            log::info!(
                "smtp {}: connection lost during DATA; nothing delivered",
                self.conn.peer
            );
            return Ok(Some(End::Closed));
        }
        if too_big {
            self.tx = None;
            let text = format!("Message size exceeds fixed maximum of {max} bytes");
            self.reply(552, "5.3.4", &text);
            return Ok(None);
        }
        if no_room {
            // Our trouble, not the client's: no error is counted.
            self.tx = None;
            self.conn.send(REPLY_NO_ROOM);
            return Ok(None);
        }
        if decoder.longest_line() > MAX_DATA_LINE {
            self.tx = None;
            self.reply(500, "5.5.2", "Message has a line longer than 64 KiB");
            return Ok(None);
        }
        self.deliver(spool).await;
        Ok(None)
    }

    pub(super) async fn bdat(&mut self, size: u64, last: bool) -> io::Result<Option<End>> {
        let max = self.config.limits.max_message_size;
        let failure: Option<&'static [u8]> = match &self.tx {
            None => Some(b"503 5.5.1 Send MAIL first\r\n"),
            Some(tx)
                if tx.recipients.is_empty() && tx.outbound.is_empty() && tx.forwards.is_empty() =>
            {
                Some(b"554 5.5.1 No valid recipients\r\n")
            }
            _ => None,
        };
        // A chunk larger than any acceptable message cannot be worth reading: close.
        if size > max.saturating_mul(2) {
            self.conn
                .send(b"552 5.3.4 Chunk too large, closing connection\r\n");
            return Ok(Some(End::Closed));
        }
        let spool_dir = self.shared.store.spool_dir().to_path_buf();
        let mut chunks = match self.tx.as_mut().and_then(|tx| tx.chunks.take()) {
            Some(c) => c,
            None => Chunking {
                spool: SpoolWriter::new(&spool_dir),
                received: 0,
                failure,
            },
        };
        self.conn.read_timeout = self.config.limits.data_timeout();
        // The pace follows the bytes received, not the size announced: a client may
        // announce any size and then trickle.
        let pace = Pace::new(self.config.limits.data_timeout(), MIN_DATA_RATE);
        let mut left = size;
        let read = async {
            while left > 0 {
                let deadline = pace.deadline(size - left);
                if !self.conn.has_buffered_input() && self.conn.fill_by(Some(deadline)).await? == 0
                {
                    return Ok::<bool, io::Error>(false);
                }
                let take = (self.conn.buffered().len() as u64).min(left) as usize;
                if chunks.failure.is_none() {
                    if chunks.received + take as u64 > max {
                        chunks.failure = Some(b"552 5.3.4 Message size exceeds fixed maximum\r\n");
                    } else if let Err(e) = chunks.spool.write(&self.conn.buffered()[..take]) {
                        log::error!("smtp {}: spooling the message: {e}", self.conn.peer);
                        chunks.failure = Some(REPLY_NO_ROOM);
                    }
                }
                chunks.received += take as u64;
                self.conn.consume(take);
                left -= take as u64;
            }
            Ok(true)
        };
        let complete = read.await;
        self.conn.read_timeout = self.config.limits.command_timeout();
        if !complete? {
            return Ok(Some(End::Closed));
        }
        if let Some(reply) = chunks.failure {
            if last || self.tx.is_none() {
                self.tx = None;
                self.conn.send(reply);
                // A full disk is our trouble, not the client's.
                if reply != REPLY_NO_ROOM && self.count_error() {
                    return Ok(Some(End::TooManyErrors));
                }
            } else {
                let text =
                    format!("250 2.0.0 {size} octets received (message will be refused)\r\n");
                self.conn.send(text.as_bytes());
                if let Some(tx) = &mut self.tx {
                    tx.chunks = Some(chunks);
                }
            }
            return Ok(None);
        }
        if last {
            self.deliver(chunks.spool).await;
        } else {
            let text = format!("250 2.0.0 {size} octets received\r\n");
            self.conn.send(text.as_bytes());
            if let Some(tx) = &mut self.tx {
                tx.chunks = Some(chunks);
            }
        }
        Ok(None)
    }

    /// Commits the message for all recipients, then replies.
    pub(super) async fn deliver(&mut self, spool: SpoolWriter) {
        let Some(mut tx) = self.tx.take() else { return };
        let mut targets: Vec<Target> = Vec::new();
        for (_, resolved) in &tx.recipients {
            delivery::merge_targets(&mut targets, resolved);
        }
        let id = message_id();
        let protocol = protocol_name(
            self.esmtp,
            tx.smtputf8,
            self.conn.is_tls(),
            self.user.is_some(),
        );
        let now = unix_now();
        let single = match (tx.recipients.as_slice(), tx.outbound.as_slice()) {
            ([(only, _)], []) | ([], [(only, _, _)]) => Some(only.as_str()),
            _ => None,
        };
        let trace = Trace {
            reverse_path: tx.from.as_deref(),
            helo: self.helo.as_deref().unwrap_or("unknown"),
            peer_ip: self.conn.peer.ip(),
            hostname: &self.config.hostname,
            protocol,
            tls: self.conn.tls_description(),
            id: &id,
            recipient: single,
            date: now,
        };
        let base_prefix = trace.headers();
        let skip = crate::smtp::return_path_len(&base_prefix);
        let mut body = spool.finish();
        // RFC 5321 §6.3: a message that went round too often is a loop (Postfix counts
        // the same way, to 50). Checked for everyone: a Sieve redirect could make one.
        let hops = crate::mail::header::fields(&body.head().unwrap_or_default())
            .filter(|f| f.is("received"))
            .count();
        if hops > MAX_HOPS {
            log::warn!(
                "smtp {}: refused id={id}: {hops} Received: fields",
                self.conn.peer
            );
            self.reply(554, "5.4.6", "Too many hops: a mail loop?");
            return;
        }
        // The copies, grouped by the headers only they carry: one group, unless the
        // accounts' own junk filters told them apart.
        let mut groups = vec![Group::plain(targets)];
        if let Some(sender) = &tx.sender_check {
            match self.check_message(&tx, sender, &mut body, &id).await {
                Ok(checked) => {
                    let targets = groups.remove(0).targets;
                    groups = self.classify(checked, targets, &body, &id).await;
                }
                Err(reply) => {
                    self.conn.send(&reply);
                    return;
                }
            }
        }
        let after = match self
            .run_scripts(&tx, &mut groups, &base_prefix, &body, &id)
            .await
        {
            Ok(after) => {
                // A recipient whose every account rejected it is told of no delivery.
                let refused = after.refused_recipients(&tx.recipients);
                tx.success_notices.retain(|(r, _)| !refused.contains(r));
                after
            }
            Err(reply) => {
                log::info!(
                    "smtp {}: refused id={id}: the recipient's Sieve script rejected it",
                    self.conn.peer
                );
                self.conn.send(&reply);
                return;
            }
        };
        // The transaction's own queued recipients (submission's, or bounces going back
        // through an SRS address) need a group to travel with, even with no local copy.
        if !tx.outbound.is_empty() && !groups.iter().any(|g| g.outbound.is_none()) {
            groups.insert(0, Group::plain(Vec::new()));
        }
        // Forwarding aliases: a queued copy each, its sender rewritten (SRS).
        let header_ascii = crate::mail::header_of(&body.head().unwrap_or_default()).is_ascii();
        for address in &tx.forwards {
            let sender_ascii = tx.from.as_deref().is_none_or(str::is_ascii);
            let utf8 = tx.smtputf8 && !(header_ascii && sender_ascii && address.is_ascii());
            let group = self.redirect(&tx, address, utf8).await;
            groups.push(group);
        }
        // SMTPUTF8 is needed on the way out only when something is not ASCII (RFC 6531
        // §3.2): a client that always says SMTPUTF8 must not get ASCII mail bounced by
        // next hops without it.
        let needs_utf8 = tx.smtputf8
            && (tx.from.as_deref().is_some_and(|f| !f.is_ascii())
                || tx.outbound.iter().any(|(r, _, _)| !r.is_ascii())
                || !crate::mail::header_of(&body.head().unwrap_or_default()).is_ascii());
        let mut outbound = (!tx.outbound.is_empty()).then(|| Outbound {
            sender: tx.from.clone().unwrap_or_default(),
            envid: tx.envid.clone(),
            ret_full: tx.ret_full,
            eight_bit: tx.eight_bit,
            smtputf8: needs_utf8,
            recipients: tx.outbound.clone(),
            skip,
        });
        let head = if (tx.success_notices.is_empty() && after.is_empty()) || tx.from.is_none() {
            Vec::new()
        } else {
            body.head().unwrap_or_default()
        };
        let size = base_prefix.len() as u64 + body.len();
        let (mut copies, mut queued) = (0, None);
        let count = groups.len();
        let mut body = Some(body);
        for (index, group) in groups.into_iter().enumerate() {
            // Recorded below the Return-Path, above our Received: (RFC 8601 §2).
            let mut prefix = base_prefix.clone();
            prefix.splice(skip as usize..skip as usize, group.headers);
            let content = match body.take() {
                Some(b) if index + 1 < count => match b.try_clone() {
                    Ok(copy) => {
                        body = Some(b);
                        copy
                    }
                    Err(e) => {
                        log::error!("smtp {}: re-reading the spool: {e}", self.conn.peer);
                        self.conn.send(REPLY_NO_ROOM);
                        return;
                    }
                },
                Some(b) => b,
                None => unreachable!("the body is kept until the last group"),
            };
            let own = group.outbound.map(|o| Outbound { skip, ..o });
            let delivery = Delivery {
                message: Incoming::new(prefix, content, now),
                targets: group.targets,
                outbound: own.or_else(|| outbound.take()),
            };
            // A later group that fails leaves the earlier ones delivered; the client's
            // retry then duplicates them (SMTP's at-least-once), never loses them.
            match delivery::deliver(&self.shared.committer, delivery).await {
                Ok(accepted) => {
                    copies += accepted.placed.len();
                    queued = queued.or(accepted.queued);
                }
                Err(StoreError::Full) => {
                    log::error!(
                        "smtp {}: delivery of id={id}: the store is full",
                        self.conn.peer
                    );
                    self.conn.send(REPLY_NO_ROOM);
                    return;
                }
                Err(e) => {
                    log::error!("smtp {}: delivery of id={id} failed: {e}", self.conn.peer);
                    self.reply(451, "4.3.0", "Could not store the message, try again later");
                    return;
                }
            }
        }
        let recipients: Vec<&str> = tx
            .recipients
            .iter()
            .map(|(r, _)| r.as_str())
            .chain(tx.outbound.iter().map(|(r, _, _)| r.as_str()))
            .collect();
        log::info!(
            "smtp {}: accepted id={id} from=<{}> to={} size={size} copies={copies}{}",
            self.conn.peer,
            tx.from.as_deref().unwrap_or(""),
            recipients.join(","),
            queued.map(|q| format!(" queued={q}")).unwrap_or_default()
        );
        if queued.is_some() {
            self.shared.relay_wake.notify_one();
        }
        if !head.is_empty() && !tx.success_notices.is_empty() {
            self.send_success_notice(&tx, &head, now).await;
        }
        if let Err(e) = self.after_scripts(&tx, after, head, now).await {
            log::error!(
                "smtp {}: id={id}: a Sieve reject notice: {e}",
                self.conn.peer
            );
            self.reply(451, "4.3.0", "Could not store the message, try again later");
            return;
        }
        let text = format!("OK id={id}");
        self.reply(250, "2.0.0", &text);
    }

    /// RFC 3461: local recipients that asked for NOTIFY=SUCCESS get the sender a
    /// "delivered" notice. Stored after the message itself; a crash in between loses the
    /// notice, never the mail.
    pub(super) async fn send_success_notice(&mut self, tx: &Transaction, head: &[u8], now: i64) {
        let Some(sender) = tx.from.as_deref() else {
            return;
        };
        let hostname = self.config.hostname.clone();
        let (about_sender, about_envid) = (sender.to_string(), tx.envid.clone());
        let recipients = tx.success_notices.clone();
        let header = head.to_vec();
        let built = self
            .shared
            .store
            .call(move |store| {
                let about = notice::About {
                    sender: &about_sender,
                    envid: about_envid.as_deref(),
                    arrival: now,
                };
                notice::delivered(store, &hostname, about, &recipients, &header)
            })
            .await;
        match built {
            Ok(Some(n)) => {
                let queued = n.outbound.is_some();
                if let Err(e) = delivery::deliver(&self.shared.committer, n).await {
                    log::error!(
                        "smtp {}: storing a success notice failed: {e}",
                        self.conn.peer
                    );
                } else if queued {
                    self.shared.relay_wake.notify_one();
                }
            }
            Ok(None) => {}
            Err(e) => log::error!("smtp {}: success notice: {e}", self.conn.peer),
        }
    }
}
