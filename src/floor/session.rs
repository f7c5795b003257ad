//! The session kernel: what SMTP, POP3 and IMAP sessions share.
//!
//! Each protocol's session is a state machine over its own parser; around it, every
//! session waits for input or for the server's shutdown, counts protocol errors against
//! `max_errors`, refuses passwords on connections that are neither TLS nor (when allowed)
//! loopback, and ends with one of the reasons in [`End`]. Only the wording of the goodbye
//! differs, so each protocol supplies that and nothing else.

use crate::config::Config;
use crate::net::Connection;
use std::future::Future;
use std::io;
use std::time::Duration;
use tokio::sync::watch;

/// How a session ended (for the log line).
#[derive(Debug)]
pub enum End {
    Quit,
    Closed,
    Timeout,
    TooManyErrors,
    Shutdown,
    Error(io::Error),
}

impl End {
    /// What an I/O error ends: a timeout, or a broken connection.
    pub fn from_io(e: io::Error) -> End {
        if e.kind() == io::ErrorKind::TimedOut {
            End::Timeout
        } else {
            End::Error(e)
        }
    }
}

/// Protocol errors a client may make before the session ends.
#[derive(Debug)]
pub struct ErrorBudget {
    spent: u32,
    max: u32,
}

impl ErrorBudget {
    pub fn new(config: &Config) -> ErrorBudget {
        ErrorBudget {
            spent: 0,
            max: config.limits.max_errors,
        }
    }

    /// Forgives one error (IMAP: after a command that worked), so that an occasional
    /// mistake never adds up, while a client that errs more often than not still ends.
    pub fn refund(&mut self) {
        self.spent = self.spent.saturating_sub(1);
    }

    /// Counts one error; true when the budget is used up and the session must end.
    pub fn spend(&mut self) -> bool {
        self.spent += 1;
        self.spent >= self.max
    }
}

/// Whether a client may send a password here: over TLS, or on loopback when the config
/// allows plaintext there (tests, a local webmail).
pub fn login_allowed(conn: &Connection, config: &Config) -> bool {
    conn.is_tls() || (config.auth.allow_plaintext_on_loopback && conn.peer.ip().is_loopback())
}

/// Timeouts for a protocol with an idle autologout timer (POP3: 10 min, RFC 1939 §3;
/// IMAP: 30 min, RFC 3501 §5.4): a client may sit idle that long, but a command once begun
/// must be complete, and a reply written, within the command timeout.
pub fn autologout_timeouts(conn: &mut Connection, config: &Config, autologout: Duration) {
    conn.read_timeout = config.limits.command_timeout().max(autologout);
    conn.line_timeout = config.limits.command_timeout();
    conn.write_timeout = config.limits.command_timeout();
}

/// Waits for `read`, unless the server starts shutting down first (None). A session
/// checks between commands, so a command in progress always finishes.
pub async fn read_or_shutdown<T>(
    shutdown: &mut watch::Receiver<bool>,
    read: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        value = read => Some(value),
        _ = shutdown.wait_for(|stop| *stop) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_ends_at_max_errors() {
        let mut config = Config::embedded_default();
        config.limits.max_errors = 3;
        let mut budget = ErrorBudget::new(&config);
        assert!(!budget.spend());
        assert!(!budget.spend());
        assert!(budget.spend());
    }

    #[test]
    fn timeouts_and_broken_connections() {
        let timeout = io::Error::new(io::ErrorKind::TimedOut, "t");
        assert!(matches!(End::from_io(timeout), End::Timeout));
        let reset = io::Error::new(io::ErrorKind::ConnectionReset, "r");
        assert!(matches!(End::from_io(reset), End::Error(_)));
    }

    #[tokio::test]
    async fn shutdown_wins_over_a_pending_read() {
        let (stop, mut shutdown) = watch::channel(false);
        stop.send(true).unwrap();
        let read = std::future::pending::<()>();
        assert!(read_or_shutdown(&mut shutdown, read).await.is_none());
        let (_stop, mut running) = watch::channel(false);
        assert_eq!(read_or_shutdown(&mut running, async { 7 }).await, Some(7));
    }
}
