//! Domains, accounts, aliases and recipient resolution; quota usage per account.

use super::schema::*;
use super::{parse_address, parse_alias_source, Recipient, Result, Store, StoreError};
use crate::address::{normalize_address, normalize_domain, without_subaddress};
use crate::clock::unix_now as now;
use heed::RwTxn;

impl Store {
    // ---- domains ----

    pub fn add_domain(&self, domain: &str) -> Result<String> {
        let domain = normalize_domain(domain)
            .ok_or_else(|| StoreError::Invalid(format!("{domain:?} is not a domain name")))?;
        let mut txn = self.write_txn()?;
        if self.db.domains.get(&txn, &domain)?.is_some() {
            return Err(StoreError::Exists(format!("domain {domain}")));
        }
        self.db.domains.put(&mut txn, &domain, &())?;
        txn.commit()?;
        Ok(domain)
    }

    /// Adds the domain unless it exists; used to seed domains from the config.
    pub fn ensure_domain(&self, domain: &str) -> Result<()> {
        match self.add_domain(domain) {
            Ok(_) | Err(StoreError::Exists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes a domain; refuses while accounts or aliases still use it.
    pub fn remove_domain(&self, domain: &str) -> Result<()> {
        let domain = normalize_domain(domain)
            .ok_or_else(|| StoreError::Invalid(format!("{domain:?} is not a domain name")))?;
        let mut txn = self.write_txn()?;
        if self.db.domains.get(&txn, &domain)?.is_none() {
            return Err(StoreError::NotFound(format!("domain {domain}")));
        }
        let suffix = format!("@{domain}");
        for item in self.db.accounts.iter(&txn)? {
            let (address, _) = item?;
            if address.ends_with(&suffix) {
                return Err(StoreError::Invalid(format!(
                    "domain {domain} still has account {address}; delete it first"
                )));
            }
        }
        for item in self.db.aliases.iter(&txn)? {
            let (source, _) = item?;
            if source.ends_with(&suffix) {
                return Err(StoreError::Invalid(format!(
                    "domain {domain} still has alias {source}; delete it first"
                )));
            }
        }
        self.db.domains.delete(&mut txn, &domain)?;
        txn.commit()?;
        Ok(())
    }

    pub fn domains(&self) -> Result<Vec<String>> {
        let txn = self.read_txn()?;
        let mut out = Vec::new();
        for item in self.db.domains.iter(&txn)? {
            out.push(item?.0.to_string());
        }
        Ok(out)
    }

    pub fn is_local_domain(&self, domain: &str) -> Result<bool> {
        let Some(domain) = normalize_domain(domain) else {
            return Ok(false);
        };
        let txn = self.read_txn()?;
        Ok(self.db.domains.get(&txn, &domain)?.is_some())
    }

    // ---- accounts ----

    /// Creates an account with its default mailboxes (INBOX, Sent, Drafts, Trash, Junk, Archive).
    pub fn add_account(&self, address: &str, password_hash: &str) -> Result<String> {
        let (address, domain) = parse_address(address)?;
        let mut txn = self.write_txn()?;
        if self.db.domains.get(&txn, &domain)?.is_none() {
            return Err(StoreError::Invalid(format!(
                "{domain} is not a local domain; add it with `letterbox domain add {domain}`"
            )));
        }
        if self.db.accounts.get(&txn, &address)?.is_some() {
            return Err(StoreError::Exists(format!("account {address}")));
        }
        if self.db.aliases.get(&txn, &address)?.is_some() {
            return Err(StoreError::Exists(format!("alias {address}")));
        }
        let account = Account {
            password_hash: password_hash.to_string(),
            quota_bytes: 0,
            created: now(),
        };
        self.db.accounts.put(&mut txn, &address, &account)?;
        for (name, special_use) in DEFAULT_MAILBOXES {
            self.create_mailbox_txn(&mut txn, &address, name, special_use)?;
            // The folders every account starts with are subscribed; CREATE subscribes nothing.
            let key = mailbox_key(&address, name);
            self.db.subscriptions.put(&mut txn, &key, &())?;
        }
        txn.commit()?;
        Ok(address)
    }

    /// Deletes an account with all its mailboxes, messages, junk filter statistics and
    /// Sieve scripts.
    pub fn remove_account(&self, address: &str) -> Result<()> {
        let (address, _) = parse_address(address)?;
        let mut txn = self.write_txn()?;
        if !self.db.accounts.delete(&mut txn, &address)? {
            return Err(StoreError::NotFound(format!("account {address}")));
        }
        let prefix = mailbox_prefix(&address);
        let mut mailboxes = Vec::new();
        for item in self.db.mailboxes.prefix_iter(&txn, &prefix)? {
            let (key, mailbox) = item?;
            mailboxes.push((key.to_vec(), mailbox.id));
        }
        for (key, id) in mailboxes {
            let uids: Vec<u32> = self.uids_txn(&txn, id)?;
            self.expunge_txn(&mut txn, &address, id, &uids)?;
            self.db.mailboxes.delete(&mut txn, &key)?;
            self.db.recent.delete(&mut txn, &id)?;
        }
        self.db.usage.delete(&mut txn, &address)?;
        let subscribed: Vec<Vec<u8>> = self
            .db
            .subscriptions
            .prefix_iter(&txn, &prefix)?
            .map(|item| item.map(|(key, ())| key.to_vec()))
            .collect::<heed::Result<_>>()?;
        for key in subscribed {
            self.db.subscriptions.delete(&mut txn, &key)?;
        }
        self.junk_forget_account(&mut txn, &address)?;
        self.sieve_forget_account(&mut txn, &address)?;
        self.imports_forget_account(&mut txn, &address)?;
        txn.commit()?;
        Ok(())
    }

    pub fn set_password(&self, address: &str, password_hash: &str) -> Result<()> {
        self.update_account(address, |a| a.password_hash = password_hash.to_string())
    }

    /// Sets the storage quota in bytes (0: unlimited).
    pub fn set_quota(&self, address: &str, quota_bytes: u64) -> Result<()> {
        self.update_account(address, |a| a.quota_bytes = quota_bytes)
    }

    fn update_account(&self, address: &str, change: impl FnOnce(&mut Account)) -> Result<()> {
        let (address, _) = parse_address(address)?;
        let mut txn = self.write_txn()?;
        let mut account = self
            .db
            .accounts
            .get(&txn, &address)?
            .ok_or_else(|| StoreError::NotFound(format!("account {address}")))?;
        change(&mut account);
        self.db.accounts.put(&mut txn, &address, &account)?;
        txn.commit()?;
        Ok(())
    }

    /// Bytes stored in all mailboxes of an account (a message copied twice counts twice,
    /// as IMAP QUOTA's STORAGE resource expects) and the account's quota (0: unlimited).
    /// Both are single lookups: the usage is a counter kept by every write.
    pub fn usage(&self, address: &str) -> Result<(u64, u64)> {
        let Some((address, _)) = normalize_address(address) else {
            return Ok((0, 0));
        };
        let txn = self.read_txn()?;
        let Some(account) = self.db.accounts.get(&txn, &address)? else {
            return Ok((0, 0));
        };
        let used = self.db.usage.get(&txn, &address)?.unwrap_or(0);
        Ok((used, account.quota_bytes))
    }

    /// Whether adding `adding` bytes would take an account over its quota.
    pub fn over_quota(&self, address: &str, adding: u64) -> Result<bool> {
        let (used, quota) = self.usage(address)?;
        Ok(quota > 0 && used.saturating_add(adding) > quota)
    }

    /// Adds `delta` bytes (negative: removes) to an account's usage counter.
    pub(super) fn adjust_usage(&self, txn: &mut RwTxn, account: &str, delta: i64) -> Result<()> {
        // A session that outlived `user del` must not bring the counter back.
        if delta == 0 || self.db.accounts.get(txn, account)?.is_none() {
            return Ok(());
        }
        let used = self.db.usage.get(txn, account)?.unwrap_or(0);
        let used = used.saturating_add_signed(delta);
        self.db.usage.put(txn, account, &used)?;
        Ok(())
    }

    pub fn account(&self, address: &str) -> Result<Option<Account>> {
        let Some((address, _)) = normalize_address(address) else {
            return Ok(None);
        };
        let txn = self.read_txn()?;
        Ok(self.db.accounts.get(&txn, &address)?)
    }

    /// The account created first (ties: the smaller address), among those of `domain`
    /// when given: who reads postmaster mail when no account or alias has that name.
    pub fn oldest_account(&self, domain: Option<&str>) -> Result<Option<String>> {
        let suffix = domain.map(|d| format!("@{}", d.to_ascii_lowercase()));
        let txn = self.read_txn()?;
        let mut best: Option<(i64, String)> = None;
        for item in self.db.accounts.iter(&txn)? {
            let (address, account) = item?;
            if suffix.as_deref().is_some_and(|s| !address.ends_with(s)) {
                continue;
            }
            let candidate = (account.created, address.to_string());
            if best.as_ref().is_none_or(|b| candidate < *b) {
                best = Some(candidate);
            }
        }
        Ok(best.map(|(_, address)| address))
    }

    pub fn accounts(&self) -> Result<Vec<String>> {
        let txn = self.read_txn()?;
        let mut out = Vec::new();
        for item in self.db.accounts.iter(&txn)? {
            out.push(item?.0.to_string());
        }
        Ok(out)
    }

    // ---- aliases ----

    /// Adds an alias. `source` is an address, or `@domain` for a domain's catch-all.
    /// Targets are local accounts, or addresses on other servers (mail to those is
    /// forwarded with its sender rewritten by SRS, see `delivery::srs`); a target in one
    /// of our domains must be an account.
    pub fn add_alias(&self, source: &str, targets: &[String]) -> Result<String> {
        let (source, domain) = parse_alias_source(source)?;
        if targets.is_empty() {
            return Err(StoreError::Invalid(
                "an alias needs at least one target".into(),
            ));
        }
        let mut txn = self.write_txn()?;
        if self.db.domains.get(&txn, &domain)?.is_none() {
            return Err(StoreError::Invalid(format!(
                "{domain} is not a local domain"
            )));
        }
        if self.db.aliases.get(&txn, &source)?.is_some() {
            return Err(StoreError::Exists(format!("alias {source}")));
        }
        if self.db.accounts.get(&txn, &source)?.is_some() {
            return Err(StoreError::Exists(format!("account {source}")));
        }
        let mut normalized = Vec::new();
        for given in targets {
            let (mut target, target_domain) = parse_address(given)?;
            let local = self.db.domains.get(&txn, &target_domain)?.is_some();
            if local && self.db.accounts.get(&txn, &target)?.is_none() {
                return Err(StoreError::Invalid(format!(
                    "alias target {target} is in a local domain but is no account"
                )));
            }
            if !local {
                // Another server's local part keeps its case: only that server may fold it.
                let (local_part, _) = given.trim().rsplit_once('@').unwrap_or((given, ""));
                target = format!("{local_part}@{target_domain}");
            }
            if !normalized.contains(&target) {
                normalized.push(target);
            }
        }
        self.db.aliases.put(&mut txn, &source, &normalized)?;
        txn.commit()?;
        Ok(source)
    }

    pub fn remove_alias(&self, source: &str) -> Result<()> {
        let (source, _) = parse_alias_source(source)?;
        let mut txn = self.write_txn()?;
        if !self.db.aliases.delete(&mut txn, &source)? {
            return Err(StoreError::NotFound(format!("alias {source}")));
        }
        txn.commit()?;
        Ok(())
    }

    pub fn aliases(&self) -> Result<Vec<(String, Vec<String>)>> {
        let txn = self.read_txn()?;
        let mut out = Vec::new();
        for item in self.db.aliases.iter(&txn)? {
            let (source, targets) = item?;
            out.push((source.to_string(), targets));
        }
        Ok(out)
    }

    /// Resolves an envelope recipient: an account, then an alias, then the address without
    /// its `+detail`, then the domain's catch-all.
    pub fn resolve_recipient(&self, address: &str) -> Result<Recipient> {
        let Some((address, domain)) = normalize_address(address) else {
            return Ok(Recipient::NotLocal);
        };
        let txn = self.read_txn()?;
        if self.db.domains.get(&txn, &domain)?.is_none() {
            return Ok(Recipient::NotLocal);
        }
        let mut candidates = vec![address.clone()];
        candidates.extend(without_subaddress(&address));
        candidates.push(format!("@{domain}"));
        for candidate in candidates {
            if self.db.accounts.get(&txn, &candidate)?.is_some() {
                return Ok(Recipient::Local(vec![candidate]));
            }
            if let Some(targets) = self.db.aliases.get(&txn, &candidate)? {
                let (mut live, mut remote) = (Vec::new(), Vec::new());
                for t in targets {
                    if self.db.accounts.get(&txn, &t)?.is_some() {
                        live.push(t);
                    } else if let Some((_, d)) = t.rsplit_once('@') {
                        // An account deleted since is nobody; another server's address is
                        // forwarded to.
                        if self.db.domains.get(&txn, d)?.is_none() {
                            remote.push(t);
                        }
                    }
                }
                if !remote.is_empty() {
                    return Ok(Recipient::Forward {
                        accounts: live,
                        remote,
                    });
                }
                if !live.is_empty() {
                    return Ok(Recipient::Local(live));
                }
            }
        }
        Ok(Recipient::UnknownUser)
    }
}

/// Computes every account's usage counter from its message records (the schema 3 → 4
/// upgrade; later, writes keep the counters).
pub(super) fn compute_usage(db: &Databases, txn: &mut RwTxn) -> Result<()> {
    let mut totals = Vec::new();
    for item in db.accounts.iter(txn)? {
        let (address, _) = item?;
        let mut used = 0u64;
        for mailbox in db.mailboxes.prefix_iter(txn, &mailbox_prefix(address))? {
            let id = mailbox?.1.id;
            for record in db.messages.prefix_iter(txn, &id.to_be_bytes())? {
                used += record?.1.size;
            }
        }
        totals.push((address.to_string(), used));
    }
    for (address, used) in totals {
        db.usage.put(txn, &address, &used)?;
    }
    Ok(())
}
