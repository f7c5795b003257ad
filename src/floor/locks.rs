//! Maildrop locks: RFC 1939 §8 lets a POP3 server refuse a second session on a maildrop
//! that is open, which keeps two clients from deleting each other's view of it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Accounts whose maildrop is open in a session.
#[derive(Default)]
pub struct MaildropLocks(Arc<Mutex<HashSet<String>>>);

impl MaildropLocks {
    /// Takes the lock on `account`, or None when another session holds it.
    pub fn try_lock(&self, account: &str) -> Option<MaildropGuard> {
        let mut set = self.0.lock().ok()?;
        set.insert(account.to_string()).then(|| MaildropGuard {
            locks: self.0.clone(),
            account: account.to_string(),
        })
    }
}

/// Holds a maildrop lock; releases it when dropped.
pub struct MaildropGuard {
    locks: Arc<Mutex<HashSet<String>>>,
    account: String,
}

impl Drop for MaildropGuard {
    fn drop(&mut self) {
        if let Ok(mut set) = self.locks.lock() {
            set.remove(&self.account);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let locks = MaildropLocks::default();
        let first = locks.try_lock("a@x").expect("free");
        assert!(locks.try_lock("a@x").is_none());
        assert!(locks.try_lock("b@x").is_some());
        drop(first);
        assert!(locks.try_lock("a@x").is_some());
    }
}
