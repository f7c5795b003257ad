//! The daily backup of a running server (`[backup] dir, keep, hour`).
//!
//! Each run is a child process, `letterbox backup DIR --keep N`, rather than a task of the
//! server: LMDB's copy holds a read transaction (and, in the server, the map-resize gate)
//! for as long as it runs, and a child keeps both, and the copy's memory, out of the
//! server. The child runs with the server's (dropped) privileges.

use crate::config::Config;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Seconds from `now` to the next `hour`:00 UTC (a full day when it is that time now).
pub fn until_next(now: i64, hour: u32) -> u64 {
    let day = 86_400;
    let at = now.div_euclid(day) * day + hour as i64 * 3600;
    let next = if at > now { at } else { at + day };
    (next - now) as u64
}

/// Runs the daily backup until shutdown; `config` gives the configuration in force (it
/// changes on reload).
pub async fn run(
    config: impl Fn() -> Arc<Config>,
    config_path: Option<PathBuf>,
    data_dir: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        // Re-read every minute at most, so a reload that adds or moves `[backup]` counts.
        let wait = match &config().backup {
            Some(b) => until_next(crate::clock::unix_now(), b.hour).min(60),
            None => 60,
        };
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(wait.max(1))) => {}
            _ = shutdown.changed() => return,
        }
        let current = config();
        let Some(backup) = &current.backup else {
            continue;
        };
        let now = crate::clock::unix_now();
        // Due when this minute is the backup hour's first.
        if until_next(now, backup.hour) < 86_400 - 60 {
            continue;
        }
        let mut command = std::process::Command::new(
            std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into()),
        );
        command
            .arg("backup")
            .arg(&backup.dir)
            .arg("--keep")
            .arg(backup.keep.to_string())
            .arg("--data")
            .arg(&data_dir)
            .stdin(std::process::Stdio::null());
        if let Some(path) = &config_path {
            command.arg("--config").arg(path);
        }
        if !backup.compress {
            command.arg("--no-compress");
        }
        for r in &backup.recipients {
            command.arg("--recipient").arg(r);
        }
        log::info!(
            "backup: starting the daily backup into {}",
            backup.dir.display()
        );
        match tokio::task::spawn_blocking(move || command.status()).await {
            Ok(Ok(status)) if status.success() => log::info!("backup: done"),
            Ok(Ok(status)) => log::error!("backup: the daily backup failed ({status})"),
            Ok(Err(e)) => log::error!("backup: could not start the daily backup: {e}"),
            Err(_) => log::error!("backup: the daily backup's task was lost"),
        }
        // Past the minute that made it due.
        tokio::time::sleep(Duration::from_secs(61)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::until_next;

    #[test]
    fn next_run() {
        let midnight = 1_795_392_000; // 2026-11-23 00:00 UTC
        assert_eq!(until_next(midnight, 3), 3 * 3600);
        assert_eq!(until_next(midnight + 3 * 3600, 3), 86_400);
        assert_eq!(until_next(midnight + 4 * 3600, 3), 23 * 3600);
        assert_eq!(until_next(midnight + 3 * 3600 + 10, 3), 86_400 - 10);
    }
}
