//! The FLAGS and PERMANENTFLAGS responses (RFC 3501 §7.2.6): the system flags and every
//! keyword the mailbox's messages use, sent again before any response shows a new one.

use super::{Session, MAX_KEYWORDS};
use crate::store::MessageRecord;

impl Session {
    /// Sends FLAGS and PERMANENTFLAGS again when `records` carry keywords the client has
    /// not been told of yet (a STORE, an APPEND or COPY, another session's change), before
    /// any FETCH shows them: strict clients insist.
    pub(super) fn announce_keywords<'r>(
        &mut self,
        records: impl Iterator<Item = &'r MessageRecord>,
    ) {
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        let mut added = false;
        for keyword in records.flat_map(|r| &r.keywords) {
            if sel.known_keywords.insert(keyword.to_ascii_lowercase()) {
                sel.keywords.push(keyword.clone());
                added = true;
            }
        }
        if added {
            let (keywords, read_only) = (sel.keywords.clone(), sel.read_only);
            self.send_flags(&keywords, read_only);
        }
    }

    /// The FLAGS and PERMANENTFLAGS responses for a mailbox whose messages use `keywords`.
    pub(super) fn send_flags(&mut self, keywords: &[String], read_only: bool) {
        let mut list = String::from("\\Answered \\Flagged \\Deleted \\Seen \\Draft");
        for keyword in keywords {
            list.push(' ');
            list.push_str(keyword);
        }
        self.untagged(&format!("FLAGS ({list})"));
        if read_only {
            self.untagged("OK [PERMANENTFLAGS ()] Read-only mailbox");
        } else if keywords.len() >= MAX_KEYWORDS {
            // No room for more keywords: `\*` is no longer offered (RFC 3501 §7.1).
            self.untagged(&format!("OK [PERMANENTFLAGS ({list})] Flags permitted"));
        } else {
            self.untagged(&format!("OK [PERMANENTFLAGS ({list} \\*)] Flags permitted"));
        }
    }
}
