//! The daily backup of a running server (`[backup] dir, keep, hour`): at `hour` UTC, and
//! also whenever the newest backup in `dir` is over 25 h old or missing, so a box that was
//! off at that hour, or that just got `[backup]`, makes one within a minute.
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

/// Seconds since the newest backup in `dir` was written (None: there is none).
fn newest_age(dir: &std::path::Path, now: i64) -> Option<i64> {
    super::listed(dir)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok()?.modified().ok())
        .filter_map(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| now - d.as_secs() as i64)
        .min()
}

/// Whether a backup is due: in the first minute of `hour` (unless one was made in the
/// last hour), or when the newest is more than 25 h old or missing (the box was off at
/// that hour, or `[backup]` was just added).
pub fn due(now: i64, hour: u32, newest_age: Option<i64>) -> bool {
    match newest_age {
        None => true,
        Some(age) if age > 25 * 3600 => true,
        Some(age) => until_next(now, hour) >= 86_400 - 60 && age > 3600,
    }
}

/// Runs the daily backup until shutdown; `config` gives the configuration in force (it
/// changes on reload).
pub async fn run(
    config: impl Fn() -> Arc<Config>,
    config_path: Option<PathBuf>,
    data_dir: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) {
    // Let the server come up first.
    let mut wait = 5;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
            _ = shutdown.changed() => return,
        }
        let current = config();
        // Looked at again every minute at most, so a reload that adds or moves it counts.
        wait = 60;
        let Some(backup) = &current.backup else {
            continue;
        };
        let now = crate::clock::unix_now();
        wait = until_next(now, backup.hour).clamp(1, 60);
        if !due(now, backup.hour, newest_age(&backup.dir, now)) {
            continue;
        }
        // The running binary, even if an upgrade replaced the file since: a newer one
        // could migrate the store under this server.
        let mut command = std::process::Command::new("/proc/self/exe");
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
        // Past the minute that made it due; a failed run is tried again in an hour.
        wait = 3600;
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

    #[test]
    fn when_due() {
        use super::due;
        let three = 1_795_392_000 + 3 * 3600;
        assert!(due(three + 5, 3, Some(86_000)));
        assert!(!due(three + 5, 3, Some(600)), "made in the last hour");
        assert!(!due(three + 120, 3, Some(86_000)), "past the first minute");
        assert!(due(three + 7200, 3, Some(26 * 3600)), "missed while off");
        assert!(due(three + 7200, 3, None), "none yet");
    }
}
