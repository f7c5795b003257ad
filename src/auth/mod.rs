//! Passwords and SASL.
//!
//! Passwords are stored as argon2id PHC strings. The cost (7 MiB, 5 passes) follows OWASP's
//! argon2id minimums while keeping a login's memory spike small on a Raspberry Pi; at most
//! [`MAX_CONCURRENT_PASSWORD_CHECKS`] run at once. Passwords never reach the log: they are
//! wrapped in [`Secret`], whose `Debug` prints nothing.
//!
//! Argon2 is meant to be slow, and IMAP and POP3 clients log in again and again (a phone
//! checking every few minutes, fetchmail, a load test). Like Dovecot's auth cache, a
//! successful check is remembered for `[auth] credential_cache_secs` (600 by default):
//! the cache keeps an HMAC-SHA256 of the password under a key made at start-up (never the
//! password) together with the account's PHC string, so changing the password ends the
//! entry at once. Failures are never cached: every wrong guess costs a full argon2 check.

pub mod guard;

use crate::clock::unix_now;
use crate::config::AuthPolicy;
use crate::limits::MAX_CONCURRENT_PASSWORD_CHECKS;
use crate::store::{Block, Store, BLOCK_MEMORY_SECS};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use guard::Guard;
use ring::hmac;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// At most this many verified logins are remembered (a few hundred bytes each).
const CREDENTIAL_CACHE_ENTRIES: usize = 1024;

/// A value that must never be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

fn hasher() -> Argon2<'static> {
    let params = Params::new(7 * 1024, 5, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into an argon2id PHC string.
pub fn hash_password(password: &Secret) -> String {
    let salt = SaltString::generate(&mut rand_core::OsRng);
    hasher()
        .hash_password(password.0.as_bytes(), &salt)
        .expect("argon2 hashing cannot fail with valid parameters")
        .to_string()
}

/// Checks a password against a PHC string (its own parameters are used).
pub fn verify_password(password: &Secret, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default()
            .verify_password(password.0.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// Verifies logins against the store, bounding concurrent argon2 work.
#[derive(Clone)]
pub struct Authenticator {
    store: Arc<Store>,
    permits: Arc<Semaphore>,
    cache: Arc<CredentialCache>,
    guard: Arc<Mutex<Guard>>,
    /// `[auth] block_after_failures` and `block_secs`.
    blocking: Arc<Mutex<(u32, u64)>>,
    /// When logins failed, newest last (at most [`FAILURES_KEPT`]), for `letterbox status`.
    failures: Arc<Mutex<std::collections::VecDeque<i64>>>,
}

/// Failed logins remembered for [`Authenticator::failures_since`].
const FAILURES_KEPT: usize = 10_000;

/// Recently verified credentials; see the module doc.
struct CredentialCache {
    key: hmac::Key,
    ttl_secs: AtomicU64,
    entries: Mutex<HashMap<String, CachedLogin>>,
}

struct CachedLogin {
    phc: String,
    tag: hmac::Tag,
    verified: Instant,
}

impl CredentialCache {
    fn new() -> CredentialCache {
        let rng = ring::rand::SystemRandom::new();
        CredentialCache {
            key: hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("system randomness"),
            ttl_secs: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs.load(Ordering::Relaxed))
    }

    /// Whether `password` was verified for this account and PHC string within the TTL.
    fn hit(&self, address: &str, phc: &str, password: &Secret) -> bool {
        let entries = self.entries.lock().expect("credential cache lock");
        entries.get(address).is_some_and(|e| {
            e.phc == phc
                && e.verified.elapsed() < self.ttl()
                && hmac::verify(&self.key, password.0.as_bytes(), e.tag.as_ref()).is_ok()
        })
    }

    fn remember(&self, address: &str, phc: &str, password: &Secret) {
        let ttl = self.ttl();
        if ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().expect("credential cache lock");
        if entries.len() >= CREDENTIAL_CACHE_ENTRIES {
            entries.retain(|_, e| e.verified.elapsed() < ttl);
            if entries.len() >= CREDENTIAL_CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            address.to_string(),
            CachedLogin {
                phc: phc.to_string(),
                tag: hmac::sign(&self.key, password.0.as_bytes()),
                verified: Instant::now(),
            },
        );
    }
}

/// Verified against when the user does not exist, so timing does not reveal accounts.
/// Made on first use: hashing at start-up would cost memory and boot time.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&Secret("decoy".into())))
}

impl Authenticator {
    pub fn new(store: Arc<Store>) -> Authenticator {
        Authenticator {
            store,
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_PASSWORD_CHECKS)),
            cache: Arc::new(CredentialCache::new()),
            guard: Arc::new(Mutex::new(Guard::default())),
            blocking: Arc::new(Mutex::new((10, 900))),
            failures: Arc::default(),
        }
    }

    /// Failed logins since `since` (Unix time), up to the last [`FAILURES_KEPT`].
    pub fn failures_since(&self, since: i64) -> usize {
        let failures = self.failures.lock().expect("failures lock");
        failures.iter().rev().take_while(|&&t| t >= since).count()
    }

    /// Applies `[auth]`: the credential cache's lifetime and the block policy.
    pub fn configure(&self, policy: &AuthPolicy) {
        self.set_cache_ttl(Duration::from_secs(policy.credential_cache_secs));
        *self.blocking.lock().expect("auth policy lock") =
            (policy.block_after_failures, policy.block_secs);
    }

    /// Checks a login from `peer` over `proto` (for the log), with the brute-force
    /// defence of [`guard`] around it: a blocked source fails at once, a source or
    /// account with recent failures waits first, and a failure is counted and logged.
    /// Returns the account's canonical address when the credentials are right.
    pub async fn login(
        &self,
        user: &str,
        password: Secret,
        peer: IpAddr,
        proto: &str,
    ) -> Option<String> {
        let source = guard::source_of(peer);
        let name = loggable(user);
        // Counted per account, whatever case or form the name was typed in.
        let key = crate::address::normalize_address(user).map_or_else(|| name.clone(), |a| a.0);
        if self.refused(&source, peer, &name, proto) {
            return None;
        }
        let delay = self
            .guard
            .lock()
            .expect("guard lock")
            .delay(&source, &key, unix_now());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
            // Parallel attempts from one source: the block may have come meanwhile.
            if self.refused(&source, peer, &name, proto) {
                return None;
            }
        }
        if let Some(account) = self.verify(user, password).await {
            self.guard.lock().expect("guard lock").succeeded(&key);
            return Some(account);
        }
        log::warn!("auth failure: ip={peer} user={name} proto={proto}");
        let (block_after, block_secs) = *self.blocking.lock().expect("auth policy lock");
        let now = unix_now();
        {
            let mut failures = self.failures.lock().expect("failures lock");
            if failures.len() >= FAILURES_KEPT {
                failures.pop_front();
            }
            failures.push_back(now);
        }
        let reached =
            self.guard
                .lock()
                .expect("guard lock")
                .failed(&source, &key, now, block_after);
        if reached {
            self.block(&source, peer, now, block_secs, block_after)
                .await;
        }
        None
    }

    /// Whether `source` is blocked now (logged when it is).
    fn refused(&self, source: &str, peer: IpAddr, name: &str, proto: &str) -> bool {
        let now = unix_now();
        match self.store.reader().blocked(source, now) {
            Ok(Some(block)) => {
                log::warn!(
                    "auth refused: ip={peer} user={name} proto={proto} (blocked for {}s more)",
                    block.until - now
                );
                true
            }
            _ => false,
        }
    }

    /// Blocks `source`, twice as long as last time if it was blocked within a day. A
    /// block already in force (parallel attempts that were under way) is left as it is.
    async fn block(&self, source: &str, peer: IpAddr, now: i64, block_secs: u64, failures: u32) {
        let key = source.to_string();
        let blocked = self
            .store
            .call(move |store| {
                let level = match store.block_entry(&key)? {
                    Some(last) if last.until > now => return Ok(None),
                    Some(last) if last.until + BLOCK_MEMORY_SECS >= now => last.level + 1,
                    _ => 1,
                };
                let secs = guard::block_duration(block_secs, level);
                let block = Block {
                    until: now + secs as i64,
                    level,
                    reason: format!(
                        "{failures} failed logins in {} min",
                        guard::WINDOW_SECS / 60
                    ),
                };
                store.block(&key, &block, now)?;
                Ok(Some(secs))
            })
            .await;
        match blocked {
            Ok(Some(secs)) => log::warn!(
                "auth block: ip={peer} source={source} for {secs}s ({failures} failed logins)"
            ),
            Ok(None) => {}
            Err(e) => log::error!("auth block: ip={peer} source={source}: {e}"),
        }
    }

    /// How long verified credentials are remembered (zero: not at all).
    pub fn set_cache_ttl(&self, ttl: Duration) {
        self.cache.ttl_secs.store(ttl.as_secs(), Ordering::Relaxed);
        if ttl.is_zero() {
            self.cache
                .entries
                .lock()
                .expect("credential cache lock")
                .clear();
        }
    }

    /// The account's canonical address when the credentials are right.
    async fn verify(&self, user: &str, password: Secret) -> Option<String> {
        let (address, _) = crate::address::normalize_address(user)?;
        // A point lookup, inline (see `Store::reader`).
        let account = match self.store.reader().account(&address) {
            Ok(account) => account,
            Err(e) => {
                log::error!("auth: reading account {address}: {e}");
                return None;
            }
        };
        // A cache hit needs no argon2, hence no permit and no blocking thread.
        if let Some(account) = &account {
            if self.cache.hit(&address, &account.password_hash, &password) {
                return Some(address);
            }
        }
        let _permit = self.permits.acquire().await.ok()?;
        // Read again: the password may have changed while this login waited its turn.
        let account = match self.store.reader().account(&address) {
            Ok(account) => account,
            Err(e) => {
                log::error!("auth: reading account {address}: {e}");
                return None;
            }
        };
        let cache = self.cache.clone();
        // argon2 is CPU work, not store work: it runs on the blocking pool directly.
        tokio::task::spawn_blocking(move || match account {
            Some(account) => {
                let ok = verify_password(&password, &account.password_hash);
                if ok {
                    cache.remember(&address, &account.password_hash, &password);
                }
                ok.then_some(address)
            }
            None => {
                verify_password(&password, decoy_hash());
                None
            }
        })
        .await
        .ok()
        .flatten()
    }
}

/// A user name as the log shows it: printable, at most 64 characters (it is
/// attacker-controlled, and fail2ban reads these lines).
fn loggable(user: &str) -> String {
    user.chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// Why a SASL exchange failed.
#[derive(Debug, PartialEq, Eq)]
pub enum SaslError {
    /// Not base64, not UTF-8, or not the mechanism's layout.
    Malformed,
    /// The client sent `*` (RFC 4954 §4).
    Cancelled,
}

/// Decodes one base64 SASL line; `*` cancels.
pub fn decode_sasl_line(line: &str) -> Result<Vec<u8>, SaslError> {
    let line = line.trim();
    if line == "*" {
        return Err(SaslError::Cancelled);
    }
    if line == "=" {
        return Ok(Vec::new());
    }
    base64::engine::general_purpose::STANDARD
        .decode(line)
        .map_err(|_| SaslError::Malformed)
}

pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Parses a PLAIN message (RFC 4616): `[authzid] NUL authcid NUL passwd`.
/// An authzid different from the authcid (proxy login) is refused.
pub fn parse_plain(message: &[u8]) -> Result<(String, Secret), SaslError> {
    let mut parts = message.split(|&b| b == 0);
    let (Some(authz), Some(authc), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    let authz = std::str::from_utf8(authz).map_err(|_| SaslError::Malformed)?;
    let authc = std::str::from_utf8(authc).map_err(|_| SaslError::Malformed)?;
    let pass = std::str::from_utf8(pass).map_err(|_| SaslError::Malformed)?;
    if authc.is_empty() || (!authz.is_empty() && !authz.eq_ignore_ascii_case(authc)) {
        return Err(SaslError::Malformed);
    }
    Ok((authc.to_string(), Secret(pass.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let phc = hash_password(&Secret("hunter2".into()));
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password(&Secret("hunter2".into()), &phc));
        assert!(!verify_password(&Secret("hunter3".into()), &phc));
        assert!(!verify_password(&Secret("x".into()), "not a phc"));
    }

    #[test]
    fn credential_cache_needs_the_same_password_and_hash() {
        let cache = CredentialCache::new();
        let pw = Secret("hunter2".into());
        cache.remember("alice@x.org", "$phc1", &pw);
        assert!(
            !cache.hit("alice@x.org", "$phc1", &pw),
            "TTL 0 caches nothing"
        );
        cache.ttl_secs.store(60, Ordering::Relaxed);
        cache.remember("alice@x.org", "$phc1", &pw);
        assert!(cache.hit("alice@x.org", "$phc1", &pw));
        assert!(!cache.hit("alice@x.org", "$phc1", &Secret("hunter3".into())));
        assert!(
            !cache.hit("alice@x.org", "$phc2", &pw),
            "a new password hash"
        );
        assert!(!cache.hit("bob@x.org", "$phc1", &pw));
        for i in 0..CREDENTIAL_CACHE_ENTRIES + 5 {
            cache.remember(&format!("u{i}@x.org"), "$p", &pw);
        }
        assert!(cache.entries.lock().unwrap().len() <= CREDENTIAL_CACHE_ENTRIES);
    }

    #[test]
    fn plain() {
        assert_eq!(
            parse_plain(b"\0alice@x.org\0pw").unwrap(),
            ("alice@x.org".into(), Secret("pw".into()))
        );
        assert!(parse_plain(b"alice@x.org\0alice@x.org\0pw").is_ok());
        assert_eq!(parse_plain(b"bob\0alice\0pw"), Err(SaslError::Malformed));
        assert_eq!(parse_plain(b"\0alice"), Err(SaslError::Malformed));
        assert_eq!(parse_plain(b"\0\0pw"), Err(SaslError::Malformed));
        assert_eq!(parse_plain(b"\0a\0b\0c"), Err(SaslError::Malformed));
    }

    #[test]
    fn sasl_lines() {
        assert_eq!(decode_sasl_line("*"), Err(SaslError::Cancelled));
        assert_eq!(decode_sasl_line("=").unwrap(), b"");
        assert_eq!(decode_sasl_line("aGk=").unwrap(), b"hi");
        assert_eq!(decode_sasl_line("!!"), Err(SaslError::Malformed));
    }

    #[test]
    fn secret_is_not_printed() {
        assert_eq!(format!("{:?}", Secret("pw".into())), "Secret(..)");
    }
}
