//! APPEND (RFC 9051 §6.3.12) with APPENDUID (RFC 4315 §3), APPENDLIMIT (RFC 7889),
//! MULTIAPPEND (RFC 3502), CATENATE (RFC 4469),
//! LITERAL+ (RFC 7888) and BINARY's literal8 (RFC 3516 §4.4).
//!
//! The reader hands over the command up to the message literal; the message itself is
//! streamed into the spool ([`crate::store::SpoolWriter`]), never held in memory whole.
//! Refusals come before the literal is read. A refused non-synchronising literal is on
//! its way already: it is read and dropped (up to APPENDLIMIT; a larger one ends the
//! session), and the session goes on.
//!
//! A CATENATE is read as an ordinary command, its TEXT literals with it (so they are
//! bounded by the command limit, 64 KiB); large content comes by URL, from messages of the
//! same account, and the message is put together in memory (at most APPENDLIMIT).

use super::{store_error_text, End, Flow, Reply, Session};
use crate::clock::unix_now;
use crate::imap::parse::{
    append_continuation, append_request, needs, trailing_literal, trim_crlf, CatPart, Catenate,
    Flags,
};
use crate::limits::MAX_IMAP_LINE;
use crate::net::Line;
use crate::store::{Incoming, SpoolWriter, Spooled};
use std::io;

/// Messages one MULTIAPPEND may carry: each waits in the spool (up to 128 KiB of it in
/// memory) until all are there.
const MAX_MULTIAPPEND: usize = 32;

impl Session {
    /// The largest message APPEND takes (advertised as APPENDLIMIT).
    pub(super) fn append_limit(&self) -> u64 {
        self.config.limits.max_message_size.min(u32::MAX as u64)
    }

    /// APPEND of `length` bytes announced after `head`; `sync`: the client waits for a
    /// continuation before it sends them.
    pub(super) async fn append(&mut self, head: &[u8], length: u64, sync: bool) -> Flow {
        let (tag, append) = match append_request(head, self.utf8) {
            Ok(parsed) => parsed,
            Err((tag, text)) => {
                // Without a parsable head we cannot tell what the literal is: refuse it.
                self.bad(tag.as_deref(), &text);
                return Ok((!sync).then_some(End::Closed));
            }
        };
        if let Some(refusal) = self.refusal("APPEND", needs("APPEND")) {
            return self.refuse(&tag, refusal, length, sync).await;
        }
        if length > self.append_limit() {
            let no = Reply::No("[TOOBIG] Message exceeds APPENDLIMIT".into());
            return self.refuse(&tag, no, length, sync).await;
        }
        let append = match append {
            Ok(a) => a,
            Err(text) => return self.refuse(&tag, Reply::Bad(text), length, sync).await,
        };
        if append.flags.keywords.len() > super::MAX_KEYWORDS {
            let text = format!("[LIMIT] At most {} keywords", super::MAX_KEYWORDS);
            return self.refuse(&tag, Reply::No(text), length, sync).await;
        }
        if let Err(no) = self.append_allowed(&append.mailbox, length).await? {
            return self.refuse(&tag, no, length, sync).await;
        }
        if sync {
            self.conn.send(b"+ Ready for literal data\r\n");
        }
        let Some(body) = self.receive_message(length).await? else {
            return Ok(Some(End::Closed));
        };
        let mut messages = vec![(append.flags.clone(), append.date, body)];
        // MULTIAPPEND (RFC 3502): further messages follow on the same command, each
        // announced after the previous one's literal; all are stored, or none.
        loop {
            let line = match self.conn.read_line(MAX_IMAP_LINE).await? {
                Line::Complete(line) => line,
                Line::Closed => return Ok(Some(End::Closed)),
                Line::TooLong => {
                    let stop = self.bad(Some(&tag), "Line too long");
                    return Ok(stop.then_some(End::TooManyErrors));
                }
            };
            let rest = trim_crlf(&line);
            if rest.iter().all(|&b| b == b' ') {
                break;
            }
            let Some((length, nonsync)) = trailing_literal(&line) else {
                let stop = self.bad(Some(&tag), "Unexpected data after the APPEND literal");
                return Ok(stop.then_some(End::TooManyErrors));
            };
            let sync = !nonsync;
            let spec = rest.iter().rposition(|&b| b == b'{').unwrap_or(rest.len());
            let args = &rest[..spec];
            let args = args.strip_suffix(b"~").unwrap_or(args);
            let (flags, date) = match append_continuation(args, self.utf8) {
                Ok(parsed) => parsed,
                Err(text) => return self.refuse(&tag, Reply::Bad(text), length, sync).await,
            };
            let total = messages.iter().map(|(_, _, b)| b.len()).sum::<u64>() + length;
            let refusal = if messages.len() >= MAX_MULTIAPPEND {
                let text = format!("[LIMIT] At most {MAX_MULTIAPPEND} messages in one APPEND");
                Some(Reply::No(text))
            } else if total > self.append_limit() {
                // APPENDLIMIT is per message; this bound on the whole command is ours.
                Some(Reply::No(
                    "[LIMIT] The messages together exceed APPENDLIMIT".into(),
                ))
            } else if flags.keywords.len() > super::MAX_KEYWORDS {
                let text = format!("[LIMIT] At most {} keywords", super::MAX_KEYWORDS);
                Some(Reply::No(text))
            } else {
                self.append_allowed(&append.mailbox, total).await?.err()
            };
            if let Some(refusal) = refusal {
                return self.refuse(&tag, refusal, length, sync).await;
            }
            if sync {
                self.conn.send(b"+ Ready for literal data\r\n");
            }
            let Some(body) = self.receive_message(length).await? else {
                return Ok(Some(End::Closed));
            };
            messages.push((flags, date, body));
        }
        self.store_appended(&tag, &append.mailbox, messages).await
    }

    /// APPEND with CATENATE (RFC 4469): the message is put together from its TEXT parts
    /// and the message parts its URLs name, then stored as any APPEND.
    pub(super) async fn catenate(&mut self, tag: &str, catenate: Catenate) -> io::Result<Reply> {
        let Catenate {
            mailbox,
            flags,
            date,
            parts,
        } = catenate;
        if flags.keywords.len() > super::MAX_KEYWORDS {
            let text = format!("[LIMIT] At most {} keywords", super::MAX_KEYWORDS);
            return Ok(Reply::No(text));
        }
        let account = self.account();
        let limit = self.append_limit();
        let built = self
            .blocking(move |s| put_together(s, &account, parts, limit))
            .await?;
        let body = match built {
            Ok(Ok(body)) => body,
            Ok(Err(no)) => return Ok(no),
            Err(e) => return Ok(Reply::No(store_error_text(&e))),
        };
        if let Err(no) = self.append_allowed(&mailbox, body.len() as u64).await? {
            return Ok(no);
        }
        let messages = vec![(flags, date, Spooled::Memory(body))];
        Ok(match self.store_appended(tag, &mailbox, messages).await? {
            Some(end) => Reply::End(end),
            None => Reply::Done,
        })
    }

    /// Answers a refused APPEND. A non-synchronising literal's bytes are already on the
    /// way: they are skipped with the rest of the command (see [`Session::skip_literal`]).
    async fn refuse(&mut self, tag: &str, reply: Reply, length: u64, sync: bool) -> Flow {
        let stop = match reply {
            Reply::Bad(text) => self.bad(Some(tag), &text),
            Reply::No(text) => self.no(tag, &text),
            Reply::Done | Reply::End(_) => false,
        };
        if !sync && !self.skip_literal(length).await? {
            self.conn
                .send(b"* BYE Cannot skip a non-synchronising literal that large\r\n");
            return Ok(Some(End::Closed));
        }
        Ok(stop.then_some(End::TooManyErrors))
    }

    /// Reads and drops a non-synchronising literal of `length` bytes and the rest of its
    /// command, further non-synchronising literals included, so that the session can go
    /// on after refusing the command. False when the client left or a literal is larger
    /// than APPENDLIMIT (not worth reading: the session ends).
    pub(super) async fn skip_literal(&mut self, mut length: u64) -> io::Result<bool> {
        loop {
            if length > self.append_limit() || !self.discard(length).await? {
                return Ok(false);
            }
            match self.conn.read_line(MAX_IMAP_LINE).await? {
                Line::Complete(line) => match crate::imap::parse::trailing_literal(&line) {
                    Some((next, true)) => length = next,
                    // The end of the command; or a synchronising literal, which the
                    // client sends only after a continuation it will not get.
                    _ => return Ok(true),
                },
                Line::TooLong => return Ok(true),
                Line::Closed => return Ok(false),
            }
        }
    }

    /// Reads and drops `length` bytes, at the pace required of message data.
    async fn discard(&mut self, length: u64) -> io::Result<bool> {
        let pace = crate::net::Pace::new(
            self.config.limits.data_timeout(),
            crate::limits::MIN_DATA_RATE,
        );
        let mut left = length;
        while left > 0 {
            let deadline = pace.deadline(length - left);
            if !self.conn.has_buffered_input() && self.conn.fill_by(Some(deadline)).await? == 0 {
                return Ok(false);
            }
            let take = (self.conn.buffered().len() as u64).min(left) as usize;
            self.conn.consume(take);
            left -= take as u64;
        }
        Ok(true)
    }

    /// Whether the mailbox exists and the message fits the account's quota.
    async fn append_allowed(
        &mut self,
        mailbox: &str,
        length: u64,
    ) -> io::Result<Result<(), Reply>> {
        let account = self.account();
        let lookup = mailbox.to_string();
        let checked = self
            .blocking(move |s| {
                let exists = s.mailbox(&account, &lookup)?.is_some();
                Ok((exists, s.over_quota(&account, length)?))
            })
            .await?;
        Ok(match checked {
            Ok((true, false)) => Ok(()),
            Ok((true, true)) => Err(Reply::No(
                "[OVERQUOTA] The account's quota is used up".into(),
            )),
            Ok((false, _)) => Err(Reply::No("[TRYCREATE] No such mailbox".into())),
            Err(e) => Err(Reply::No(format!("[SERVERBUG] {e}"))),
        })
    }

    /// Streams the message literal into the spool; `None` if the client left.
    async fn receive_message(&mut self, length: u64) -> io::Result<Option<Spooled>> {
        let saved = self.conn.read_timeout;
        self.conn.read_timeout = self.config.limits.data_timeout();
        let pace = crate::net::Pace::new(
            self.config.limits.data_timeout(),
            crate::limits::MIN_DATA_RATE,
        );
        let mut spool = SpoolWriter::new(self.shared.store.spool_dir());
        let mut left = length;
        while left > 0 {
            // The pace follows the bytes received, not the length announced.
            let deadline = pace.deadline(length - left);
            if !self.conn.has_buffered_input() && self.conn.fill_by(Some(deadline)).await? == 0 {
                return Ok(None);
            }
            let buffered = self.conn.buffered();
            let take = (buffered.len() as u64).min(left) as usize;
            spool.write(&buffered[..take])?;
            self.conn.consume(take);
            left -= take as u64;
        }
        self.conn.read_timeout = saved;
        Ok(Some(spool.finish()))
    }

    /// Stores the received messages, all in one transaction, and answers with APPENDUID.
    async fn store_appended(
        &mut self,
        tag: &str,
        mailbox: &str,
        messages: Vec<(Flags, Option<i64>, Spooled)>,
    ) -> Flow {
        let account = self.account();
        let mailbox = mailbox.to_string();
        // Described on the blocking pool; then only the bytes are written, in a shared
        // commit.
        let prepared = self
            .blocking(move |s| {
                let prepared: Vec<(Incoming, Flags)> = messages
                    .into_iter()
                    .map(|(flags, date, body)| {
                        let body = storable(body);
                        let mut message =
                            Incoming::new(Vec::new(), body, date.unwrap_or_else(unix_now));
                        message.describe();
                        (message, flags)
                    })
                    .collect();
                // Checked early too, so a full store refuses before the commit thread.
                s.check_room(prepared.iter().map(|(m, _)| m.size()).sum())?;
                Ok(prepared)
            })
            .await?;
        // Into the selected mailbox, this session is the first to hear of the messages:
        // their \Recent is claimed in the same commit (RFC 3501 §2.3.2).
        let claim = self
            .selected
            .as_ref()
            .filter(|sel| sel.name == mailbox && !sel.read_only && !self.rev2)
            .map(|sel| sel.id);
        let result = match prepared {
            Ok(mut prepared) => {
                let bytes = prepared.iter().map(|(m, _)| m.size()).sum();
                self.write_bytes(bytes, move |w| {
                    let mut batch: Vec<(&mut Incoming, u8, &[String])> = prepared
                        .iter_mut()
                        .map(|(message, flags)| (message, flags.system, flags.keywords.as_slice()))
                        .collect();
                    let (validity, uids) = w.append_all(&account, &mailbox, &mut batch)?;
                    // Only if the name still is the selected mailbox (not renamed away).
                    let target = w.mailbox_mark(&account, &mailbox)?.map(|m| m.id);
                    let claimed = match (claim, uids.last()) {
                        (Some(id), Some(&last)) if target == Some(id) => {
                            Some((w.claim_recent(id, last)?, last))
                        }
                        _ => None,
                    };
                    Ok((validity, uids, claimed))
                })
                .await?
            }
            Err(e) => Err(e),
        };
        match result {
            Ok((validity, uids, claimed)) => {
                if let (Some(sel), Some(claimed)) = (self.selected.as_mut(), claimed) {
                    sel.preclaimed.push(claimed);
                }
                let set = crate::imap::encode::number_set(&uids);
                let text = format!("OK [APPENDUID {validity} {set}] APPEND completed");
                self.finish(tag, &text, true).await?;
                Ok(None)
            }
            Err(e) => Ok(self
                .no(tag, &store_error_text(&e))
                .then_some(End::TooManyErrors)),
        }
    }
}

/// Largest message whose binary parts are rewritten (it is held in memory meanwhile).
const MAX_BINARY_REWRITE: u64 = 16 << 20;

/// The message as it is stored: binary parts as base64 (see [`crate::mail::binary`]).
fn storable(body: Spooled) -> Spooled {
    if body.len() > MAX_BINARY_REWRITE {
        return body;
    }
    let rewritten = match body.view() {
        Ok(view) => crate::mail::binary::encode_binary_parts(&view),
        Err(_) => None,
    };
    match rewritten {
        Some(bytes) => Spooled::Memory(bytes),
        None => body,
    }
}

/// The message a CATENATE describes, or the NO to answer: `[BADURL url]` for a URL that
/// names nothing of this account, `[TOOBIG]` past APPENDLIMIT.
fn put_together(
    store: &crate::store::Store,
    account: &str,
    parts: Vec<CatPart>,
    limit: u64,
) -> crate::store::Result<Result<Vec<u8>, Reply>> {
    use crate::imap::message::{partial, section_bytes};
    use crate::imap::parse::Section;
    let mut out = Vec::new();
    for part in parts {
        match part {
            CatPart::Text(bytes) => out.extend_from_slice(&bytes),
            CatPart::Url(text, url) => {
                // url-resp-text (RFC 4469 §6): no CR, LF or "]" in the code.
                let shown: String = text
                    .chars()
                    .filter(|&c| c.is_ascii() && !c.is_ascii_control() && c != ']')
                    .collect();
                let bad = || Reply::No(format!("[BADURL {shown}] No such message"));
                let Some(url) = url else {
                    return Ok(Err(bad()));
                };
                let Some(mailbox) = store.mailbox(account, &url.mailbox)? else {
                    return Ok(Err(bad()));
                };
                if url.uid_validity.is_some_and(|v| v != mailbox.uid_validity) {
                    return Ok(Err(bad()));
                }
                let Some(record) = store.message(mailbox.id, url.uid)? else {
                    return Ok(Err(bad()));
                };
                if out.len() as u64 + record.size > limit.saturating_mul(2) {
                    return Ok(Err(Reply::No(
                        "[TOOBIG] Message exceeds APPENDLIMIT".into(),
                    )));
                }
                let raw = store.read_message(&record)?;
                let bytes = match &url.section {
                    Some(section) => section_bytes(&raw, section),
                    None => raw,
                };
                // A part that is not there reads as empty: a URL naming nothing.
                if bytes.is_empty() && matches!(url.section, Some(Section::Part(..))) {
                    return Ok(Err(bad()));
                }
                out.extend_from_slice(partial(&bytes, url.partial));
            }
        }
        if out.len() as u64 > limit {
            return Ok(Err(Reply::No(
                "[TOOBIG] Message exceeds APPENDLIMIT".into(),
            )));
        }
    }
    Ok(Ok(out))
}
