//! Sieve scripts per account (at most one active, as ManageSieve has it, RFC 5804 §1.5),
//! the Sieve memory (what `vacation` replied to and what `duplicate` saw, each with an
//! expiry) and the secret that signs the sender addresses of forwarded mail. The store keeps bytes; compiling and checking scripts is the caller's job
//! (the store sits below the Sieve layer).

use super::schema::mailbox_key;
use super::{Result, Store, StoreError};

/// Scripts one account may keep, and the largest script (ManageSieve's limits too).
pub const MAX_SCRIPTS: usize = 32;
pub const MAX_SCRIPT_BYTES: usize = 64 * 1024;
/// Memory entries one account may keep; the oldest expiries go first beyond that.
pub const MAX_MEMORY_ENTRIES: usize = 10_000;

/// One stored script, as LISTSCRIPTS shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptInfo {
    pub name: String,
    pub active: bool,
    pub size: usize,
}

impl Store {
    /// The account's scripts, by name.
    pub fn sieve_scripts(&self, account: &str) -> Result<Vec<ScriptInfo>> {
        let txn = self.read_txn()?;
        let active = self.db.sieve_active.get(&txn, account)?.map(str::to_string);
        let prefix = mailbox_key(account, "");
        let mut out = Vec::new();
        for item in self.db.sieve_scripts.prefix_iter(&txn, &prefix)? {
            let (key, text) = item?;
            let name = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            out.push(ScriptInfo {
                active: active.as_deref() == Some(name.as_str()),
                name,
                size: text.len(),
            });
        }
        Ok(out)
    }

    pub fn sieve_script(&self, account: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.read_txn()?;
        let text = self
            .db
            .sieve_scripts
            .get(&txn, &mailbox_key(account, name))?;
        Ok(text.map(<[u8]>::to_vec))
    }

    /// Whether the account has an active script (one small read: deliveries ask it for
    /// every recipient).
    pub fn has_active_sieve_script(&self, account: &str) -> Result<bool> {
        let txn = self.read_txn()?;
        Ok(self.db.sieve_active.get(&txn, account)?.is_some())
    }

    /// The active script's name and text.
    pub fn active_sieve_script(&self, account: &str) -> Result<Option<(String, Vec<u8>)>> {
        let txn = self.read_txn()?;
        let Some(name) = self.db.sieve_active.get(&txn, account)? else {
            return Ok(None);
        };
        let text = self
            .db
            .sieve_scripts
            .get(&txn, &mailbox_key(account, name))?;
        Ok(text.map(|t| (name.to_string(), t.to_vec())))
    }

    /// Stores (or replaces) a script; more than [`MAX_SCRIPTS`] or a script over
    /// [`MAX_SCRIPT_BYTES`] is refused with `Invalid`.
    pub fn put_sieve_script(&self, account: &str, name: &str, text: &[u8]) -> Result<()> {
        if text.len() > MAX_SCRIPT_BYTES {
            return Err(StoreError::Invalid(format!(
                "a script may have at most {MAX_SCRIPT_BYTES} bytes"
            )));
        }
        let mut txn = self.write_txn()?;
        if self.db.accounts.get(&txn, account)?.is_none() {
            return Err(StoreError::NotFound(format!("account {account}")));
        }
        let key = mailbox_key(account, name);
        if self.db.sieve_scripts.get(&txn, &key)?.is_none() {
            let count = self
                .db
                .sieve_scripts
                .prefix_iter(&txn, &mailbox_key(account, ""))?
                .count();
            if count >= MAX_SCRIPTS {
                return Err(StoreError::Invalid(format!(
                    "an account may keep at most {MAX_SCRIPTS} scripts"
                )));
            }
        }
        self.db.sieve_scripts.put(&mut txn, &key, text)?;
        txn.commit()?;
        Ok(())
    }

    /// Makes `name` the active script, or none with `None`.
    pub fn activate_sieve_script(&self, account: &str, name: Option<&str>) -> Result<()> {
        let mut txn = self.write_txn()?;
        match name {
            Some(name) => {
                if self
                    .db
                    .sieve_scripts
                    .get(&txn, &mailbox_key(account, name))?
                    .is_none()
                {
                    return Err(StoreError::NotFound(format!("script {name}")));
                }
                self.db.sieve_active.put(&mut txn, account, name)?;
            }
            None => {
                self.db.sieve_active.delete(&mut txn, account)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Deletes a script; the active one must be deactivated first (RFC 5804 §2.10).
    pub fn delete_sieve_script(&self, account: &str, name: &str) -> Result<()> {
        let mut txn = self.write_txn()?;
        if self.db.sieve_active.get(&txn, account)? == Some(name) {
            return Err(StoreError::Invalid(format!("script {name} is active")));
        }
        if !self
            .db
            .sieve_scripts
            .delete(&mut txn, &mailbox_key(account, name))?
        {
            return Err(StoreError::NotFound(format!("script {name}")));
        }
        txn.commit()?;
        Ok(())
    }

    /// Renames a script (the active one stays active under its new name).
    pub fn rename_sieve_script(&self, account: &str, from: &str, to: &str) -> Result<()> {
        let mut txn = self.write_txn()?;
        let (old, new) = (mailbox_key(account, from), mailbox_key(account, to));
        let Some(text) = self.db.sieve_scripts.get(&txn, &old)?.map(<[u8]>::to_vec) else {
            return Err(StoreError::NotFound(format!("script {from}")));
        };
        if self.db.sieve_scripts.get(&txn, &new)?.is_some() {
            return Err(StoreError::Exists(format!("script {to}")));
        }
        self.db.sieve_scripts.delete(&mut txn, &old)?;
        self.db.sieve_scripts.put(&mut txn, &new, &text)?;
        if self.db.sieve_active.get(&txn, account)? == Some(from) {
            self.db.sieve_active.put(&mut txn, account, to)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Whether `key` is remembered for the account and not yet expired at `now`.
    pub fn sieve_remembers(&self, account: &str, key: &str, now: i64) -> Result<bool> {
        let txn = self.read_txn()?;
        let until = self.db.sieve_memory.get(&txn, &mailbox_key(account, key))?;
        Ok(until.is_some_and(|until| until as i64 > now))
    }

    /// Remembers `key` until `until`; expired entries of the account go on the way, and
    /// beyond [`MAX_MEMORY_ENTRIES`] those that expire first.
    pub fn sieve_remember(&self, account: &str, key: &str, until: i64, now: i64) -> Result<()> {
        let mut txn = self.write_txn()?;
        let prefix = mailbox_key(account, "");
        let mut entries: Vec<(Vec<u8>, u64)> = Vec::new();
        for item in self.db.sieve_memory.prefix_iter(&txn, &prefix)? {
            let (k, until) = item?;
            entries.push((k.to_vec(), until));
        }
        entries.sort_by_key(|(_, until)| *until);
        let excess = (entries.len() + 1).saturating_sub(MAX_MEMORY_ENTRIES);
        for (i, (k, entry_until)) in entries.iter().enumerate() {
            if i < excess || (*entry_until as i64) <= now {
                self.db.sieve_memory.delete(&mut txn, k)?;
            }
        }
        self.db
            .sieve_memory
            .put(&mut txn, &mailbox_key(account, key), &(until.max(0) as u64))?;
        txn.commit()?;
        Ok(())
    }

    /// The secret of the Sender Rewriting Scheme (`delivery::srs`) for forwarded mail:
    /// 32 random bytes, made at first use and kept with the mail.
    pub fn srs_secret(&self) -> Result<Vec<u8>> {
        const KEY: &str = "srs_secret";
        {
            let txn = self.read_txn()?;
            if let Some(secret) = self.db.meta.get(&txn, KEY)? {
                return Ok(secret.to_vec());
            }
        }
        let mut txn = self.write_txn()?;
        if let Some(secret) = self.db.meta.get(&txn, KEY)? {
            return Ok(secret.to_vec());
        }
        let mut secret = vec![0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut secret);
        self.db.meta.put(&mut txn, KEY, &secret)?;
        txn.commit()?;
        Ok(secret)
    }

    /// Drops an account's scripts and memory (with the account).
    pub(super) fn sieve_forget_account(&self, txn: &mut heed::RwTxn, account: &str) -> Result<()> {
        let prefix = mailbox_key(account, "");
        for db in [
            self.db.sieve_scripts,
            self.db.sieve_memory.remap_data_type(),
        ] {
            let keys: Vec<Vec<u8>> = db
                .prefix_iter(txn, &prefix)?
                .map(|item| item.map(|(k, _)| k.to_vec()))
                .collect::<heed::Result<_>>()?;
            for key in keys {
                db.delete(txn, &key)?;
            }
        }
        self.db.sieve_active.delete(txn, account)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::tests::with_users;
    use crate::store::StoreError;

    #[test]
    fn scripts_one_active() {
        let t = with_users();
        let s = &t.store;
        let a = "alice@example.org";
        s.put_sieve_script(a, "one", b"keep;").unwrap();
        s.put_sieve_script(a, "two", b"discard;").unwrap();
        s.activate_sieve_script(a, Some("two")).unwrap();
        let names: Vec<(String, bool)> = s
            .sieve_scripts(a)
            .unwrap()
            .into_iter()
            .map(|i| (i.name, i.active))
            .collect();
        assert_eq!(names, [("one".into(), false), ("two".into(), true)]);
        assert_eq!(
            s.active_sieve_script(a).unwrap(),
            Some(("two".into(), b"discard;".to_vec()))
        );
        assert!(matches!(
            s.delete_sieve_script(a, "two"),
            Err(StoreError::Invalid(_))
        ));
        s.rename_sieve_script(a, "two", "three").unwrap();
        assert_eq!(s.active_sieve_script(a).unwrap().unwrap().0, "three");
        s.activate_sieve_script(a, None).unwrap();
        s.delete_sieve_script(a, "three").unwrap();
        assert!(s.active_sieve_script(a).unwrap().is_none());
        assert!(s.sieve_scripts("bob@example.org").unwrap().is_empty());
        for i in 0..super::MAX_SCRIPTS - 1 {
            s.put_sieve_script(a, &format!("s{i}"), b"keep;").unwrap();
        }
        assert!(matches!(
            s.put_sieve_script(a, "more", b"keep;"),
            Err(StoreError::Invalid(_))
        ));
        // Replacing an existing one is always possible.
        s.put_sieve_script(a, "one", b"stop;").unwrap();
        s.remove_account(a).unwrap();
        assert!(s.sieve_scripts(a).unwrap().is_empty());
    }

    #[test]
    fn memory_expires() {
        let t = with_users();
        let s = &t.store;
        let a = "alice@example.org";
        s.sieve_remember(a, "v\0x@y", 100, 0).unwrap();
        assert!(s.sieve_remembers(a, "v\0x@y", 99).unwrap());
        assert!(!s.sieve_remembers(a, "v\0x@y", 100).unwrap());
        assert!(!s.sieve_remembers("bob@example.org", "v\0x@y", 0).unwrap());
        // An expired entry goes when something else is remembered.
        s.sieve_remember(a, "d\0other", 500, 200).unwrap();
        assert!(!s.sieve_remembers(a, "v\0x@y", 0).unwrap());
    }
}
