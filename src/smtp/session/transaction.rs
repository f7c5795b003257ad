//! MAIL and RCPT (RFC 5321 §4.1.1.2-3): opening a transaction and resolving recipients
//! through [`crate::delivery`]. Both are async, so DNS checks (SPF) can join them here;
//! the store lookups are point reads and run inline (see `Store::reader`).

use super::*;

impl Session {
    /// Returns true when the session must end.
    pub(super) async fn mail(
        &mut self,
        from: Option<String>,
        size: Option<u64>,
        body: Body,
        smtputf8: bool,
    ) -> bool {
        let max = self.config.limits.max_message_size;
        let refusal = if self.helo.is_none() {
            Some((503, "5.5.1", "Send EHLO or HELO first".to_string()))
        } else if self.tx.is_some() {
            Some((503, "5.5.1", "Nested MAIL command".into()))
        } else if self.kind != ListenerKind::Smtp && self.user.is_none() {
            Some((530, "5.7.0", "Authentication required".into()))
        } else if size.is_some_and(|s| s > max) {
            Some((
                552,
                "5.3.4",
                format!("Message size exceeds fixed maximum of {max} bytes"),
            ))
        } else if body == Body::BinaryMime {
            Some((555, "5.5.4", "BODY=BINARYMIME is not supported".into()))
        } else if !smtputf8 && from.as_deref().is_some_and(|f| !f.is_ascii()) {
            Some((553, "5.6.7", "Non-ASCII address requires SMTPUTF8".into()))
        } else {
            self.sender_refusal(from.as_deref()).await
        };
        if let Some((code, esc, text)) = refusal {
            return self.error(code, esc, &text);
        }
        // A configured refusal of the client or sender is answered at RCPT, so that
        // postmaster still gets its mail (RFC 5321 §4.5.1; Postfix's smtpd_delay_reject).
        let (sender_check, refused) = if self.checks_inbound() {
            let (check, refusal) = self.check_sender(from.as_deref()).await;
            (Some(check), refusal)
        } else {
            (None, None)
        };
        self.tx = Some(Transaction {
            from,
            smtputf8,
            eight_bit: body == Body::EightBitMime,
            envid: None,
            ret_full: None,
            recipients: Vec::new(),
            outbound: Vec::new(),
            forwards: Vec::new(),
            success_notices: Vec::new(),
            chunks: None,
            sender_check,
            refused,
        });
        self.reply(250, "2.1.0", "Sender OK");
        false
    }

    /// On submission, the sender must be the user's own address or an alias leading to it.
    pub(super) async fn sender_refusal(
        &mut self,
        from: Option<&str>,
    ) -> Option<(u16, &'static str, String)> {
        let user = self.user.as_deref()?;
        let denied = Some((
            553,
            "5.7.1",
            "Sender address not owned by authenticated user".to_string(),
        ));
        let from = from?;
        let Some((address, _)) = crate::address::normalize_address(from) else {
            return denied;
        };
        if address == user {
            return None;
        }
        let resolved = delivery::resolve(&self.shared.store.reader(), &address);
        match resolved {
            Ok(Resolution::Local(targets) | Resolution::Alias { local: targets, .. })
                if targets.iter().any(|t| t.account == user) =>
            {
                None
            }
            Ok(_) => denied,
            Err(e) => Some((451, "4.3.0", format!("Temporary lookup failure: {e}"))),
        }
    }

    pub(super) async fn rcpt(&mut self, to: &str, orcpt: Option<String>, notify: u8) -> bool {
        let max = self.config.limits.max_recipients;
        let authenticated = self.user.is_some();
        let Some(tx) = &self.tx else {
            return self.error(503, "5.5.1", "Send MAIL first");
        };
        if tx.recipients.len() + tx.outbound.len() >= max {
            return self.error(452, "4.5.3", "Too many recipients");
        }
        if !tx.smtputf8 && !to.is_ascii() {
            return self.error(553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
        }
        if let Some(r) = &tx.refused {
            let postmaster = to
                .rsplit_once('@')
                .map_or(to, |(local, _)| local)
                .eq_ignore_ascii_case("postmaster");
            if !postmaster {
                log::info!(
                    "smtp {}: refused from=<{}> to=<{to}>: {} {} {}",
                    self.conn.peer,
                    tx.from.as_deref().unwrap_or(""),
                    r.code,
                    r.esc,
                    r.text
                );
                // A verdict, not a protocol error: nothing is counted.
                let (code, esc, text) = (r.code, r.esc, r.text.clone());
                self.reply(code, esc, &text);
                return false;
            }
        }
        // Point lookups, inline (see `Store::reader`).
        let store = self.shared.store.reader();
        let mut to = to.to_string();
        if to.eq_ignore_ascii_case("postmaster") {
            // The parser accepts a bare <Postmaster> (RFC 5321 §4.5.1).
            match delivery::postmaster_domain(&store, &self.config.hostname) {
                Ok(Some(domain)) => to = format!("postmaster@{domain}"),
                Ok(None) => return self.error(550, "5.1.1", "No such user here"),
                Err(e) => {
                    log::error!("recipient lookup failed: {e}");
                    self.reply(451, "4.3.0", "Temporary lookup failure, try again later");
                    return false;
                }
            }
        }
        let to = to.as_str();
        let resolved = delivery::resolve(&store, to).and_then(|resolution| {
            let mut full = false;
            if let Resolution::Local(targets) | Resolution::Alias { local: targets, .. } =
                &resolution
            {
                for target in targets {
                    full |= store.over_quota(&target.account, 0)?;
                }
            }
            Ok((resolution, full))
        });
        match resolved {
            Ok((Resolution::Local(_) | Resolution::Alias { .. }, true)) => {
                // Temporary: the owner may make room before the sender gives up.
                self.error(452, "4.2.2", "Mailbox full")
            }
            Ok((Resolution::Local(targets), false)) => {
                if let Some(tx) = &mut self.tx {
                    tx.recipients.push((to.to_string(), targets));
                    // Only for our own users: on the MX port a forged sender would turn
                    // success notices into backscatter.
                    if authenticated && notify::wants(notify, notify::SUCCESS) {
                        tx.success_notices.push((to.to_string(), orcpt));
                    }
                }
                self.reply(250, "2.1.5", "Recipient OK");
                false
            }
            Ok((Resolution::Alias { local, remote }, false)) => {
                if let Some(tx) = &mut self.tx {
                    if !local.is_empty() {
                        tx.recipients.push((to.to_string(), local));
                    }
                    for address in remote {
                        if !tx.forwards.contains(&address) {
                            tx.forwards.push(address);
                        }
                    }
                }
                self.reply(250, "2.1.5", "Recipient OK");
                false
            }
            Ok((Resolution::UnknownUser, _)) => self.error(550, "5.1.1", "No such user here"),
            Ok((Resolution::NotLocal, _)) if authenticated => {
                // Submission: remote recipients go to the outbound queue.
                if crate::address::normalize_address(to).is_none() {
                    return self.error(501, "5.1.3", "Invalid recipient address");
                }
                // The local part is kept as given: only the remote host may fold its case.
                let address = to.to_string();
                if let Some(tx) = &mut self.tx {
                    if !tx.outbound.iter().any(|(a, _, _)| *a == address) {
                        tx.outbound.push((address, orcpt, notify));
                    }
                }
                self.reply(250, "2.1.5", "Recipient OK, will be relayed");
                false
            }
            Ok((Resolution::NotLocal, _)) => self.error(554, "5.7.1", "Relay access denied"),
            Ok((Resolution::Forward(_), _))
                if self.tx.as_ref().is_some_and(|tx| tx.from.is_some()) =>
            {
                // Only bounces (the null sender) go back through an SRS address: anything
                // else would make it a relay for whoever learnt one.
                self.error(550, "5.1.1", "No such user here")
            }
            Ok((Resolution::Forward(original), _)) => {
                // A bounce to mail we forwarded: it goes on to the original sender.
                if let Some(tx) = &mut self.tx {
                    if !tx.outbound.iter().any(|(a, _, _)| *a == original) {
                        tx.outbound.push((original, orcpt, notify::NEVER));
                    }
                }
                self.reply(250, "2.1.5", "Recipient OK, will be forwarded");
                false
            }
            Err(e) => {
                log::error!("recipient lookup failed: {e}");
                self.reply(451, "4.3.0", "Temporary lookup failure, try again later");
                false
            }
        }
    }
}
