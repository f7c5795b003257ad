//! IDLE (RFC 2177, RFC 9051 §6.3.13): mailbox changes are reported as they happen until
//! the client sends DONE; the server's shutdown ends it with BYE.

use super::{End, Reply, Session};
use crate::imap::parse::trim_crlf;
use crate::limits::MAX_IMAP_LINE;
use crate::net::Line;
use std::io;

impl Session {
    /// IDLE (RFC 2177 §3).
    pub(super) async fn idle(&mut self, tag: &str) -> io::Result<Reply> {
        self.sync(true).await?;
        self.update_contexts().await?;
        self.conn.send(b"+ idling\r\n");
        self.conn.flush().await?;
        let mut shutdown = self.shared.shutdown.clone();
        enum Event {
            Line(io::Result<Line>),
            Changed,
            Shutdown,
        }
        loop {
            // With NOTIFY, its own receiver: the events it asked for may leave the
            // selected mailbox's changes for the reply to DONE.
            let changes = match self.notify.as_mut() {
                Some(notify) => &mut notify.changes,
                None => &mut self.changes,
            };
            let event = tokio::select! {
                line = self.conn.read_line(MAX_IMAP_LINE) => Event::Line(line),
                Ok(()) = changes.changed() => Event::Changed,
                _ = shutdown.wait_for(|stop| *stop) => Event::Shutdown,
            };
            match event {
                Event::Line(line) => match line? {
                    Line::Complete(l) if trim_crlf(&l).eq_ignore_ascii_case(b"DONE") => {
                        return self.finish(tag, "OK IDLE terminated", true).await;
                    }
                    Line::Closed => return Ok(Reply::End(End::Closed)),
                    _ => return Ok(Reply::Bad("Expected DONE".into())),
                },
                Event::Changed => {
                    if self.notify.is_some() {
                        // Exactly the events NOTIFY asked for (RFC 5465 §4).
                        self.push_events(true).await?;
                    } else {
                        // Mark it unseen again so sync() reads the mailbox.
                        self.changes.mark_changed();
                        self.sync(true).await?;
                        self.update_contexts().await?;
                    }
                    self.conn.flush().await?;
                }
                Event::Shutdown => {
                    self.conn.send(b"* BYE Server shutting down\r\n");
                    return Ok(Reply::End(End::Shutdown));
                }
            }
        }
    }
}
