//! The floor beneath the protocols: what every session stands on.
//!
//! - [`Shared`]: the state every session and the relay can reach (store, committer,
//!   authenticator, TLS, configuration, shutdown signal, connection counts).
//! - [`session`]: the session kernel shared by SMTP, POP3 and IMAP: how a session ends,
//!   the error budget, the login policy and the read-or-shutdown wait.
//! - [`admission`]: the connection caps (total, per address, per network).
//! - [`locks`]: maildrop locks (one POP3 session per account at a time).
//!
//! Protocols build on this module; it imports none of them.

pub mod admission;
pub mod locks;
pub mod session;

use crate::auth::Authenticator;
use crate::config::{Config, ListenerKind};
use crate::inbound::Checker;
use crate::store::{Committer, Store};
use crate::tls::TlsContext;
use admission::Connections;
pub use locks::MaildropLocks;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::watch;

/// State every session can reach.
pub struct Shared {
    pub store: Arc<Store>,
    pub committer: Committer,
    pub auth: Authenticator,
    pub tls: TlsContext,
    pub maildrop_locks: MaildropLocks,
    /// Becomes true when the server is shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Wakes the relay scheduler when something was queued.
    pub relay_wake: tokio::sync::Notify,
    /// Wakes the ACME task after a reload (names or the `[acme]` section may have changed).
    pub acme_wake: tokio::sync::Notify,
    config: RwLock<Arc<Config>>,
    /// The checks on inbound mail, rebuilt when the DNS servers change.
    inbound: RwLock<Arc<Checker>>,
    connections: Mutex<Connections>,
    /// The clock's last check: when (Unix time) and its offset in seconds (None: no
    /// server answered), for `letterbox status`.
    pub clock_check: Mutex<Option<(i64, Option<f64>)>>,
}

impl Shared {
    pub fn new(
        store: Arc<Store>,
        config: Config,
        tls: TlsContext,
        shutdown: watch::Receiver<bool>,
    ) -> Shared {
        let auth = Authenticator::new(store.clone());
        auth.configure(&config.auth);
        let inbound = RwLock::new(Arc::new(checker(&config)));
        Shared {
            inbound,
            committer: Committer::start(store.clone()),
            auth,
            store,
            tls,
            maildrop_locks: MaildropLocks::default(),
            shutdown,
            relay_wake: tokio::sync::Notify::new(),
            acme_wake: tokio::sync::Notify::new(),
            config: RwLock::new(Arc::new(config)),
            connections: Mutex::new(Connections::default()),
            clock_check: Mutex::new(None),
        }
    }

    /// Connections open now, on every listener.
    pub fn connection_count(&self) -> usize {
        self.connections.lock().expect("connections lock").total()
    }

    /// The configuration in force; a session keeps the one it started with.
    pub fn config(&self) -> Arc<Config> {
        self.config.read().expect("config lock").clone()
    }

    /// The inbound checks (their DNS caches and rate table are shared by all sessions).
    pub fn inbound(&self) -> Arc<Checker> {
        self.inbound.read().expect("inbound lock").clone()
    }

    pub fn set_config(&self, config: Config) {
        self.auth.configure(&config.auth);
        if config.relay.dns_servers != self.config().relay.dns_servers {
            *self.inbound.write().expect("inbound lock") = Arc::new(checker(&config));
        }
        *self.config.write().expect("config lock") = Arc::new(config);
    }

    /// Counts a new connection, or says why it must be refused (see [`admission`]). A
    /// source blocked after failed logins is refused where one logs in; port 25 still takes
    /// its mail (a phone with a stale password must not cost the house its mail).
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        kind: ListenerKind,
    ) -> Result<ConnectionSlot, &'static str> {
        let config = self.config();
        if kind != ListenerKind::Smtp {
            let source = crate::auth::guard::source_of(ip);
            let now = crate::clock::unix_now();
            if let Ok(Some(_)) = self.store.reader().blocked(&source, now) {
                return Err("your address is blocked after failed logins");
            }
        }
        let mut c = self.connections.lock().expect("connections lock");
        c.admit(ip, &config.limits)?;
        Ok(ConnectionSlot {
            shared: self.clone(),
            ip,
        })
    }
}

fn checker(config: &Config) -> Checker {
    // The client TLS configuration only serves DNS over TLS, which letterbox does not
    // configure: no roots are needed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    Checker::new(config.relay.dns_server_addrs(), Arc::new(client_tls))
}

/// One admitted connection; frees its slot when dropped.
pub struct ConnectionSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut c = self.shared.connections.lock().expect("connections lock");
        c.release(self.ip);
    }
}
