//! The running server's own state, for `letterbox status`: what only the process knows
//! (its listeners, open connections, failed logins, the clock check, its last warnings),
//! written to `<data_dir>/status.json` every [`EVERY`] and read by the command. Everything
//! the store or the file system says (the queue, sizes, the certificate, backups) the
//! command reads itself.

use crate::floor::Shared;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often the file is written.
pub const EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerStatus {
    pub version: String,
    pub pid: u32,
    /// Unix times.
    pub started: i64,
    pub written: i64,
    /// (kind, address) of every listener.
    pub listeners: Vec<(String, String)>,
    pub connections: usize,
    pub failed_logins_last_day: usize,
    /// When the clock was last checked and its offset in seconds (None: no server answered).
    pub clock_check: Option<(i64, Option<f64>)>,
    /// The last warnings and errors of the log.
    pub recent_problems: Vec<String>,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("status.json")
}

/// The status file, if there is a readable one.
pub fn read(data_dir: &Path) -> Option<ServerStatus> {
    serde_json::from_slice(&std::fs::read(path(data_dir)).ok()?).ok()
}

/// Writes the status file until shutdown (then once more).
pub async fn write_loop(shared: Arc<Shared>, listeners: Vec<(String, String)>) {
    let started = crate::clock::unix_now();
    let data_dir = shared.store.data_dir().to_path_buf();
    let mut shutdown = shared.shutdown.clone();
    loop {
        let now = crate::clock::unix_now();
        let status = ServerStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            started,
            written: now,
            listeners: listeners.clone(),
            connections: shared.connection_count(),
            failed_logins_last_day: shared.auth.failures_since(now - 86_400),
            clock_check: *shared.clock_check.lock().expect("clock lock"),
            recent_problems: crate::logtail::recent(),
        };
        let dir = data_dir.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = write(&dir, &status) {
                log::debug!("status: {e}");
            }
        })
        .await;
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

fn write(data_dir: &Path, status: &ServerStatus) -> std::io::Result<()> {
    let target = path(data_dir);
    let temp = target.with_extension("json.tmp");
    std::fs::write(
        &temp,
        serde_json::to_vec(status).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&temp, &target)
}
