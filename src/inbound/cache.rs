//! The DNS answer caches handed to mail-auth: parsed SPF, DKIM, DMARC and ARC records,
//! MX sets, addresses and PTR names, each kept until its TTL runs out and never more than
//! [`ENTRIES`] per kind. hickory keeps its own TTL-bound cache of raw answers beneath
//! these; this one saves parsing a record again for every message from a busy sender.
//!
//! Written here rather than taken from a crate: mail-auth only needs get/insert/remove,
//! and a bounded map with expiry is a few lines (the LRU crates bring more than that).

use mail_auth::ResolverCache;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries per cache. DKIM keys are the largest values (about 0.5 KiB for RSA-2048), so
/// the six caches together stay within a few MiB even when full.
pub const ENTRIES: usize = 2048;

/// No answer is kept longer than this, whatever its TTL says.
const MAX_TTL: Duration = Duration::from_secs(3600);

/// A bounded map whose entries expire.
pub struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    capacity: usize,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub fn new(capacity: usize) -> TtlCache<K, V> {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().expect("dns cache").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for TtlCache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut entries = self.entries.lock().expect("dns cache");
        match entries.get(name) {
            Some((value, until)) if *until > Instant::now() => Some(value.clone()),
            Some(_) => {
                entries.remove(name);
                None
            }
            None => None,
        }
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut entries = self.entries.lock().expect("dns cache");
        entries.remove(name).map(|(value, _)| value)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        let now = Instant::now();
        if valid_until <= now {
            return;
        }
        let until = valid_until.min(now + MAX_TTL);
        let mut entries = self.entries.lock().expect("dns cache");
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= self.capacity {
                // Full of live answers: drop the one that expires first.
                let soonest = entries
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(_, (_, until))| *until);
                if let Some(soonest) = soonest {
                    entries.retain(|_, (_, until)| *until != soonest);
                }
            }
        }
        entries.insert(key, (value, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_size_stays_bounded() {
        let cache: TtlCache<Box<str>, u32> = TtlCache::new(3);
        let now = Instant::now();
        cache.insert("gone".into(), 0, now);
        assert_eq!(cache.get("gone"), None, "an expired answer is not kept");
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            cache.insert(
                (*name).into(),
                i as u32,
                now + Duration::from_secs(10 + i as u64),
            );
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("a"), None, "the entry expiring first made room");
        assert_eq!(cache.get("d"), Some(3));
        assert_eq!(cache.remove("d"), Some(3));
        assert_eq!(cache.get("d"), None);
    }

    #[test]
    fn a_long_ttl_is_capped() {
        let cache: TtlCache<Box<str>, u32> = TtlCache::new(3);
        cache.insert("x".into(), 1, Instant::now() + Duration::from_secs(86400));
        let until = cache.entries.lock().unwrap()["x"].1;
        assert!(until <= Instant::now() + MAX_TTL);
    }
}
