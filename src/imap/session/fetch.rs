//! FETCH and UID FETCH (RFC 9051 §6.4.5, §6.4.9), with BINARY (RFC 3516), CHANGEDSINCE
//! (RFC 7162 §3.1.4) and VANISHED (RFC 7162 §3.2.6).
//!
//! For each message, what the response needs from the store (ENVELOPE/BODYSTRUCTURE, the
//! bytes of sections, decoded BINARY parts, the first chunk of a whole message) is read
//! before anything of it is sent; BODY[] and RFC822 are streamed chunk by chunk after
//! their literal is announced.
//!
//! Store failures: a message whose record or data is missing (`StoreError::NotFound`)
//! was expunged by another session since the snapshot, and is left out. Any other store
//! error is logged and ends the FETCH with `NO [SERVERBUG]`. Once a literal's length has
//! been announced, nothing can stand in for its bytes: a chunk that cannot be read (for
//! any reason) ends the session with `* BYE`, without another byte of the literal.

use super::{End, Reply, Session};
use crate::imap::encode::{self, FetchLiteral, FetchValue};
use crate::imap::message::{binary_section, missing_uids, partial, section_bytes, BinaryError};
use crate::imap::parse::{Fetch, FetchItem, FetchModifiers, Section, SequenceSet};
use crate::store::{
    chunk_count, flags, FlagOp, MessageMeta, MessageRecord, Result as StoreResult, StoreError,
};
use std::io;

/// What one message's FETCH response needs, read before it is sent.
#[derive(Default)]
struct Loaded {
    meta: Option<MessageMeta>,
    content: Option<Vec<u8>>,
    /// The BINARY and BINARY.SIZE parts, decoded, in the order of the items.
    decoded: Vec<Vec<u8>>,
    /// The first chunk of the message, read before a whole-message literal is announced
    /// so that a message gone meanwhile is left out rather than cut short.
    first_chunk: Option<Vec<u8>>,
    /// SAVEDATE, when asked for (`None` inside: not known).
    saved: Option<i64>,
}

/// Why a FETCH stops before its tagged OK.
enum Stop {
    /// Answer NO with this text; nothing of the message has been sent.
    No(String),
    /// A literal was announced and cannot be completed: the session must end.
    Broken,
}

/// One FETCH data item, ready to be sent.
enum Data {
    /// A value written in full.
    Text(String),
    /// A literal's announcement and its bytes.
    Literal(String, Vec<u8>),
    /// A literal's announcement; the whole message follows, streamed from the store.
    Message(String),
}

impl Session {
    /// FETCH and UID FETCH (RFC 9051 §6.4.5, §6.4.9).
    pub(super) async fn fetch(&mut self, tag: &str, fetch: Fetch) -> io::Result<Reply> {
        let Fetch {
            set,
            mut items,
            modifiers,
            uid,
        } = fetch;
        let FetchModifiers {
            changed_since,
            vanished,
        } = modifiers;
        if vanished && !(uid && self.qresync) {
            return Ok(Reply::Bad(
                "VANISHED needs UID FETCH and ENABLE QRESYNC".into(),
            ));
        }
        if changed_since.is_some() || items.contains(&FetchItem::ModSeq) {
            self.enable_condstore().await?;
        }
        if uid && !items.contains(&FetchItem::Uid) {
            items.insert(0, FetchItem::Uid);
        }
        if self.condstore
            && !items.contains(&FetchItem::ModSeq)
            && (changed_since.is_some() || items.contains(&FetchItem::Flags))
        {
            items.push(FetchItem::ModSeq);
        }
        self.sync(uid).await?;
        let indices = match self.indices(&set, uid) {
            Ok(i) => i,
            Err(reply) => return Ok(reply),
        };
        if vanished {
            self.report_vanished(&set);
        }
        let sets_seen =
            !self.selected.as_ref().is_some_and(|s| s.read_only) && items.iter().any(sets_seen);
        if sets_seen {
            if let Err(no) = self.mark_seen(&indices).await? {
                return Ok(no);
            }
        }
        for i in indices {
            let Some(sel) = &self.selected else { break };
            let Some(m) = sel.messages.get(i) else { break };
            if m.gone || changed_since.is_some_and(|n| m.record.modseq <= n) {
                continue;
            }
            let (msg_uid, record) = (m.uid, m.record.clone());
            match self
                .fetch_one(i + 1, msg_uid, &record, &items, sets_seen)
                .await?
            {
                Ok(()) => {}
                Err(Stop::No(text)) => return Ok(Reply::No(text)),
                Err(Stop::Broken) => {
                    self.conn
                        .send(b"* BYE [SERVERBUG] Cannot read the message data\r\n");
                    let error = format!("FETCH of UID {msg_uid} cut short by a store error");
                    return Ok(Reply::End(End::Error(io::Error::other(error))));
                }
            }
        }
        self.finish(tag, "OK FETCH completed", uid).await
    }

    /// FETCH responses for the messages after UID `after` (NOTIFY's MessageNew items,
    /// RFC 5465 §5.2). Bodies are peeked: nothing here sets `\Seen`.
    pub(super) async fn fetch_new(&mut self, items: &[FetchItem], after: u32) -> io::Result<()> {
        let Some(sel) = &self.selected else {
            return Ok(());
        };
        let new: Vec<(usize, u32, MessageRecord)> = sel
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.uid > after && !m.gone)
            .map(|(i, m)| (i + 1, m.uid, m.record.clone()))
            .collect();
        for (seq, uid, record) in new {
            if let Err(stop) = self.fetch_one(seq, uid, &record, items, false).await? {
                if matches!(stop, Stop::Broken) {
                    let error = format!("NOTIFY FETCH of UID {uid} cut short by a store error");
                    return Err(io::Error::other(error));
                }
            }
        }
        Ok(())
    }

    /// UIDs of the set that are gone, before the FETCH responses (RFC 7162 §3.2.6).
    fn report_vanished(&mut self, set: &SequenceSet) {
        let ranges = self.uid_ranges(set);
        let Some(sel) = &self.selected else { return };
        let present: Vec<u32> = sel.messages.iter().map(|m| m.uid).collect();
        let gone = missing_uids(&ranges, &present, sel.uid_next.saturating_sub(1));
        if !gone.is_empty() {
            self.conn.send(encode::vanished_earlier(&gone).as_bytes());
        }
    }

    /// Sets \Seen on the messages that lack it (FETCH of a body without PEEK). A mailbox
    /// deleted meanwhile is not an error here; the FETCH reports what is left.
    async fn mark_seen(&mut self, indices: &[usize]) -> io::Result<Result<(), Reply>> {
        let Some(sel) = &self.selected else {
            return Ok(Ok(()));
        };
        let uids: Vec<u32> = indices
            .iter()
            .filter_map(|&i| sel.messages.get(i))
            .filter(|m| !m.gone && m.record.flags & flags::SEEN == 0)
            .map(|m| m.uid)
            .collect();
        if uids.is_empty() {
            return Ok(Ok(()));
        }
        let (account, name) = (self.account(), sel.name.clone());
        let result = self
            .write(move |w| {
                w.store_flags(&account, &name, &uids, FlagOp::Add, flags::SEEN, &[], None)
            })
            .await?;
        match result {
            Ok((updated, _)) => {
                // The snapshot has our change; the change counter is left alone, since
                // the same commit may hold other sessions' changes.
                self.apply_records(&updated);
                Ok(Ok(()))
            }
            Err(StoreError::NotFound(_)) => Ok(Ok(())),
            Err(e) => {
                log::error!("imap {}: setting \\Seen failed: {e}", self.conn.peer);
                Ok(Err(Reply::No(format!("[SERVERBUG] {e}"))))
            }
        }
    }

    /// One message's FETCH response; a message expunged meanwhile is left out.
    async fn fetch_one(
        &mut self,
        seq: usize,
        uid: u32,
        record: &MessageRecord,
        items: &[FetchItem],
        seen_changed: bool,
    ) -> io::Result<Result<(), Stop>> {
        let loaded = match self.load(uid, record, items).await? {
            Ok(Some(loaded)) => loaded,
            Ok(None) => return Ok(Ok(())),
            Err(stop) => return Ok(Err(stop)),
        };
        let mut decoded = loaded.decoded.iter();
        let recent = self.selected.as_ref().is_some_and(|sel| sel.is_recent(uid));
        self.conn.send(encode::fetch_open(seq).as_bytes());
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                self.conn.send(b" ");
            }
            match fetch_data(item, uid, record, recent, &loaded, &mut decoded) {
                Data::Text(text) => self.conn.send(text.as_bytes()),
                Data::Literal(announcement, bytes) => {
                    self.conn.send(announcement.as_bytes());
                    self.conn.send(&bytes);
                }
                Data::Message(announcement) => {
                    self.conn.send(announcement.as_bytes());
                    let first = loaded.first_chunk.as_deref();
                    if let Err(stop) = self.stream_message(uid, record, first).await? {
                        return Ok(Err(stop));
                    }
                }
            }
        }
        if seen_changed && !items.contains(&FetchItem::Flags) {
            let flags = FetchValue::Flags(record.flags, &record.keywords, recent);
            self.conn
                .send(format!(" {}", encode::fetch_value(&flags)).as_bytes());
        }
        self.conn.send(encode::FETCH_CLOSE.as_bytes());
        Ok(Ok(()))
    }

    /// Reads what the items need; `None` when the message is gone.
    async fn load(
        &mut self,
        uid: u32,
        record: &MessageRecord,
        items: &[FetchItem],
    ) -> io::Result<Result<Option<Loaded>, Stop>> {
        let mut loaded = Loaded::default();
        if items.contains(&FetchItem::SaveDate) {
            let mailbox = self.selected.as_ref().map_or(0, |s| s.id);
            match self.blocking(move |s| s.save_date(mailbox, uid)).await? {
                Ok(saved) => loaded.saved = saved,
                Err(e) => return Ok(Err(Stop::No(super::store_error_text(&e)))),
            }
        }
        if items.iter().any(needs_meta) {
            let (r, peer) = (record.clone(), self.conn.peer);
            // Stored at delivery for most messages: one key, read here.
            let stored = self.shared.store.reader().message_meta(r.blob);
            let meta = match stored {
                Ok(Some(meta)) => Ok(meta),
                _ => {
                    self.blocking(move |s| {
                        if let Some(meta) = s.message_meta(r.blob)? {
                            return Ok(meta);
                        }
                        // Large or pre-schema-2 message: compute once, keep it.
                        let meta = crate::mail::structure::meta(&s.read_message(&r)?);
                        if let Err(e) = s.put_message_meta(r.blob, &meta) {
                            log::warn!(
                                "imap {peer}: keeping the structure of UID {uid} failed: {e}"
                            );
                        }
                        Ok(meta)
                    })
                    .await?
                }
            };
            match self.present(uid, meta) {
                Ok(Some(meta)) => loaded.meta = Some(meta),
                other => return Ok(other.map(|_| None)),
            }
        }
        if items.iter().any(needs_bytes) {
            let r = record.clone();
            let content = self.blocking(move |s| s.read_message(&r)).await?;
            match self.present(uid, content) {
                Ok(Some(bytes)) => loaded.content = Some(bytes),
                other => return Ok(other.map(|_| None)),
            }
        }
        if items.iter().any(is_whole_message) && chunk_count(record.size) > 0 {
            let blob = record.blob;
            let chunk = self.blocking(move |s| s.read_chunk(blob, 0)).await?;
            match self.present(uid, chunk) {
                Ok(Some(chunk)) => loaded.first_chunk = Some(chunk),
                other => return Ok(other.map(|_| None)),
            }
        }
        // Decode BINARY parts first: an unknown encoding fails the FETCH (RFC 3516 §4.1).
        for item in items {
            if let FetchItem::Binary { path, .. } | FetchItem::BinarySize(path) = item {
                match binary_section(loaded.content.as_deref().unwrap_or_default(), path) {
                    Ok(bytes) => loaded.decoded.push(bytes),
                    Err(BinaryError::UnknownEncoding) => {
                        let text = format!(
                            "[UNKNOWN-CTE] Cannot decode a part of message UID {uid} for BINARY"
                        );
                        return Ok(Err(Stop::No(text)));
                    }
                }
            }
        }
        Ok(Ok(Some(loaded)))
    }

    /// A store result for one message: `None` when the message is gone (expunged by
    /// another session since the snapshot); any other error is logged and stops the
    /// FETCH before anything of the message is sent.
    fn present<T>(&self, uid: u32, result: StoreResult<T>) -> Result<Option<T>, Stop> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => {
                log::error!(
                    "imap {}: reading message UID {uid} failed: {e}",
                    self.conn.peer
                );
                Err(Stop::No(format!("[SERVERBUG] {e}")))
            }
        }
    }

    /// Streams a stored message chunk by chunk (the literal's announcement is already
    /// queued; `first` is chunk 0, read beforehand). A chunk that cannot be read, or data
    /// shorter than the record says, breaks the literal: logged, and [`Stop::Broken`].
    async fn stream_message(
        &mut self,
        uid: u32,
        record: &MessageRecord,
        first: Option<&[u8]>,
    ) -> io::Result<Result<(), Stop>> {
        let mut sent = 0u64;
        for index in 0..chunk_count(record.size) {
            let read;
            let chunk = match (index, first) {
                (0, Some(chunk)) => chunk,
                _ => {
                    let blob = record.blob;
                    match self.blocking(move |s| s.read_chunk(blob, index)).await? {
                        Ok(chunk) => {
                            read = chunk;
                            &read[..]
                        }
                        Err(e) => {
                            let peer = self.conn.peer;
                            log::error!("imap {peer}: reading message UID {uid} failed while sending it: {e}");
                            return Ok(Err(Stop::Broken));
                        }
                    }
                }
            };
            let take = (chunk.len() as u64).min(record.size - sent) as usize;
            self.conn.send(&chunk[..take]);
            sent += take as u64;
            self.conn.flush().await?;
        }
        if sent < record.size {
            let peer = self.conn.peer;
            log::error!(
                "imap {peer}: message UID {uid} has {sent} of its {} bytes",
                record.size
            );
            return Ok(Err(Stop::Broken));
        }
        Ok(Ok(()))
    }
}

/// Whether fetching the item sets \Seen (RFC 9051 §6.4.5: BODY[] without PEEK).
fn sets_seen(item: &FetchItem) -> bool {
    matches!(
        item,
        FetchItem::Rfc822
            | FetchItem::Rfc822Text
            | FetchItem::Body { peek: false, .. }
            | FetchItem::Binary { peek: false, .. }
    )
}

/// Whether the item is the whole message, streamed from the store.
fn is_whole_message(item: &FetchItem) -> bool {
    matches!(
        item,
        FetchItem::Rfc822
            | FetchItem::Body {
                section: Section::Full,
                partial: None,
                ..
            }
    )
}

fn needs_meta(item: &FetchItem) -> bool {
    matches!(item, FetchItem::Envelope | FetchItem::Structure(_))
}

/// Whether the item needs the message's bytes in memory (whole messages are streamed).
fn needs_bytes(item: &FetchItem) -> bool {
    matches!(
        item,
        FetchItem::Preview
            | FetchItem::Rfc822Header
            | FetchItem::Rfc822Text
            | FetchItem::Body {
                section: Section::Header | Section::Text | Section::Fields(..) | Section::Part(..),
                ..
            }
            | FetchItem::Body {
                partial: Some(_),
                ..
            }
            | FetchItem::Binary { .. }
            | FetchItem::BinarySize(_)
    )
}

/// The item as it is sent; `decoded` yields the decoded BINARY parts in item order.
fn fetch_data<'a>(
    item: &FetchItem,
    uid: u32,
    record: &MessageRecord,
    recent: bool,
    loaded: &Loaded,
    decoded: &mut impl Iterator<Item = &'a Vec<u8>>,
) -> Data {
    let content = loaded.content.as_deref().unwrap_or_default();
    let literal = |item: FetchLiteral, bytes: &[u8], literal8: bool| {
        let announcement = encode::fetch_literal(&item, bytes.len() as u64, literal8);
        Data::Literal(announcement, bytes.to_vec())
    };
    let value = |value: FetchValue| Data::Text(encode::fetch_value(&value));
    match item {
        FetchItem::Flags => value(FetchValue::Flags(record.flags, &record.keywords, recent)),
        FetchItem::Uid => value(FetchValue::Uid(uid)),
        FetchItem::Envelope => {
            let envelope = loaded.meta.as_ref().map_or("NIL", |m| m.envelope.as_str());
            value(FetchValue::Envelope(envelope))
        }
        FetchItem::Structure(extended) => value(match (&loaded.meta, extended) {
            (Some(m), true) => FetchValue::Structure(true, &m.bodystructure),
            (Some(m), false) => FetchValue::Structure(false, &m.body),
            (None, _) => FetchValue::Structure(false, "NIL"),
        }),
        FetchItem::InternalDate => value(FetchValue::InternalDate(record.internal_date)),
        FetchItem::SaveDate => value(FetchValue::SaveDate(loaded.saved)),
        FetchItem::Size => value(FetchValue::Size(record.size)),
        FetchItem::ModSeq => value(FetchValue::ModSeq(record.modseq)),
        FetchItem::Rfc822
        | FetchItem::Body {
            section: Section::Full,
            partial: None,
            ..
        } => {
            let name = match item {
                FetchItem::Rfc822 => FetchLiteral::Rfc822,
                _ => FetchLiteral::Body(&Section::Full, None),
            };
            Data::Message(encode::fetch_literal(&name, record.size, false))
        }
        FetchItem::Rfc822Header | FetchItem::Rfc822Text => {
            let (name, section) = match item {
                FetchItem::Rfc822Header => (FetchLiteral::Rfc822Header, Section::Header),
                _ => (FetchLiteral::Rfc822Text, Section::Text),
            };
            literal(name, &section_bytes(content, &section), false)
        }
        FetchItem::Body {
            section,
            partial: range,
            ..
        } => {
            let bytes = section_bytes(content, section);
            let origin = range.map(|(start, _)| start);
            literal(
                FetchLiteral::Body(section, origin),
                partial(&bytes, *range),
                false,
            )
        }
        FetchItem::Binary {
            path,
            partial: range,
            ..
        } => {
            let bytes = decoded.next().map(Vec::as_slice).unwrap_or_default();
            let piece = partial(bytes, *range);
            let origin = range.map(|(start, _)| start);
            // literal8 (`~{n}`) when the content holds NUL (RFC 3516 §4.2).
            literal(
                FetchLiteral::Binary(path, origin),
                piece,
                piece.contains(&0),
            )
        }
        FetchItem::BinarySize(path) => {
            let size = decoded.next().map_or(0, Vec::len) as u64;
            value(FetchValue::BinarySize(path, size))
        }
        FetchItem::Preview => Data::Text(format!("PREVIEW {}", preview(content))),
    }
}

/// PREVIEW (RFC 8970 §3): the first text of the message (HTML turned into text), white
/// space folded, at most 256 characters; NIL when there is no text.
fn preview(content: &[u8]) -> String {
    /// RFC 8970 §3: the preview MUST NOT exceed 256 characters.
    const PREVIEW_CHARS: usize = 256;
    /// Enough of the message for its first text; a large attachment is never parsed.
    const PREVIEW_INPUT: usize = 64 * 1024;
    let head = &content[..content.len().min(PREVIEW_INPUT)];
    let text = mail_parser::MessageParser::default()
        .parse(head)
        .and_then(|m| m.body_preview(PREVIEW_INPUT).map(|p| p.into_owned()))
        .unwrap_or_default();
    let folded: String = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(PREVIEW_CHARS)
        .collect();
    // No text gives an empty preview; NIL is for a LAZY preview not ready (RFC 8970 §3).
    crate::mail::structure::quote(&folded)
}
