//! `letterbox status [--json]`: the box at a glance, on the console or over SSH.
//!
//! The server's own state comes from its status file (see [`crate::status`]); the rest
//! from the store, the data dir and the system. A server counts as running while it holds
//! `serve.lock`; its status file is stale when older than three writes.

use super::{data_dir, load_config, open_store, Cli};
use crate::store::{RecipientState, ServeLock};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Serialize)]
struct Status {
    version: String,
    /// The system slot the box booted (the kernel's `letterbox.slot=`), if any.
    slot: Option<String>,
    /// The appliance image's version, if this runs on the image.
    image: Option<String>,
    /// The last line of the appliance's update history (confirmed, rolled back, ...).
    last_update: Option<String>,
    system_uptime_secs: Option<u64>,
    server_running: bool,
    server: Option<crate::status::ServerStatus>,
    /// The server's status file is older than it should be.
    server_status_stale: bool,
    queue_messages: usize,
    queue_pending: usize,
    queue_deferred: usize,
    queue_oldest_secs: Option<i64>,
    store_bytes_used: u64,
    store_map_bytes: u64,
    disk_free_bytes: Option<u64>,
    disk_total_bytes: Option<u64>,
    certificate_expires: Option<i64>,
    last_backup: Option<String>,
    last_backup_age_secs: Option<i64>,
    blocked_sources: usize,
}

fn kernel_slot() -> Option<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("letterbox.slot="))
        .map(str::to_string)
}

/// Files of the appliance image (scripts/build-image, image/rootfs): absent elsewhere.
const IMAGE_VERSION_FILE: &str = "/etc/letterbox/version";
const UPDATE_HISTORY_FILE: &str = "/data/update/history";

/// The last non-empty line of a small file.
fn last_line(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}

fn uptime() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    text.split('.').next()?.parse().ok()
}

fn disk(dir: &Path) -> (Option<u64>, Option<u64>) {
    match nix::sys::statvfs::statvfs(dir) {
        // The field types are narrower on some 32-bit targets.
        #[allow(clippy::unnecessary_cast)]
        Ok(fs) => (
            Some(fs.blocks_available() as u64 * fs.fragment_size() as u64),
            Some(fs.blocks() as u64 * fs.fragment_size() as u64),
        ),
        Err(_) => (None, None),
    }
}

fn certificate_expiry(config: &crate::config::Config, dir: &Path) -> Option<i64> {
    use rustls::pki_types::pem::PemObject;
    let path = crate::tls::served_cert_path(config, dir);
    let der = rustls::pki_types::CertificateDer::pem_file_iter(&path)
        .ok()?
        .next()?
        .ok()?;
    crate::tls::x509::CertInfo::parse(&der)
        .ok()
        .map(|i| i.not_after)
}

fn gather(cli: &Cli) -> Result<Status, String> {
    let config = load_config(cli)?;
    let dir = data_dir(cli, &config);
    let store = open_store(cli)?;
    let now = crate::clock::unix_now();
    let server_running = ServeLock::held(&dir).map_err(|e| e.to_string())?;
    let server = if server_running {
        crate::status::read(&dir)
    } else {
        None
    };
    let stale_after = crate::status::EVERY.as_secs() as i64 * 3;
    let server_status_stale = server_running
        && server
            .as_ref()
            .is_none_or(|s| now - s.written > stale_after);
    let entries = store.queue_entries().map_err(|e| e.to_string())?;
    let waiting = |state: RecipientState| {
        entries
            .iter()
            .filter(|(_, e)| e.recipients.iter().any(|r| r.state == state))
            .count()
    };
    let (store_map_bytes, store_bytes_used) = store.map_use().map_err(|e| e.to_string())?;
    let (disk_free_bytes, disk_total_bytes) = disk(&dir);
    let newest = config
        .backup
        .as_ref()
        .and_then(|b| crate::backup::listed(&b.dir).pop());
    let last_backup_age_secs = newest
        .as_ref()
        .and_then(|p| std::fs::metadata(p).ok()?.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| now - d.as_secs() as i64);
    let blocked_sources = store
        .blocks(now)
        .map_err(|e| e.to_string())?
        .iter()
        .filter(|(_, b)| b.until > now)
        .count();
    Ok(Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        slot: kernel_slot(),
        image: last_line(IMAGE_VERSION_FILE),
        last_update: last_line(UPDATE_HISTORY_FILE),
        system_uptime_secs: uptime(),
        server_running,
        server,
        server_status_stale,
        queue_messages: entries.len(),
        queue_pending: waiting(RecipientState::Pending),
        queue_deferred: waiting(RecipientState::Deferred),
        queue_oldest_secs: entries.iter().map(|(_, e)| now - e.arrival).max(),
        store_bytes_used,
        store_map_bytes,
        disk_free_bytes,
        disk_total_bytes,
        certificate_expires: certificate_expiry(&config, &dir),
        last_backup: newest.map(|p| p.display().to_string()),
        last_backup_age_secs,
        blocked_sources,
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

pub fn status_command(cli: &Cli, json: bool) -> Result<(), String> {
    let s = gather(cli)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    let now = crate::clock::unix_now();
    let age = super::queue::age;
    println!(
        "letterbox {}{}{}",
        s.version,
        s.image
            .as_ref()
            .map_or(String::new(), |image| format!(", image {image}")),
        s.slot
            .as_ref()
            .map_or(String::new(), |slot| format!(", slot {slot}"))
    );
    if let Some(update) = &s.last_update {
        println!("last update: {update}");
    }
    if let Some(up) = s.system_uptime_secs {
        println!("system: up {}", age(up as i64));
    }
    match (&s.server, s.server_running) {
        (_, false) => println!("server: not running"),
        (None, true) => println!("server: running (no status file yet)"),
        (Some(server), true) => {
            println!(
                "server: running {} since {}, pid {}, {} connections{}",
                server.version,
                age(now - server.started),
                server.pid,
                server.connections,
                if s.server_status_stale {
                    " (status is stale)"
                } else {
                    ""
                }
            );
            let listeners: Vec<String> = server
                .listeners
                .iter()
                .map(|(k, a)| format!("{k} {a}"))
                .collect();
            println!("listeners: {}", listeners.join(", "));
            match server.clock_check {
                Some((at, Some(offset))) => println!(
                    "clock: offset {offset:+.3} s, checked {} ago",
                    age(now - at)
                ),
                Some((at, None)) => {
                    println!("clock: no time server answered {} ago", age(now - at))
                }
                None => println!("clock: not checked"),
            }
            println!(
                "failed logins in the last day: {}",
                server.failed_logins_last_day
            );
        }
    }
    println!(
        "queue: {} messages, {} pending, {} deferred{}",
        s.queue_messages,
        s.queue_pending,
        s.queue_deferred,
        s.queue_oldest_secs
            .map_or(String::new(), |a| format!(", oldest {}", age(a)))
    );
    let disk = match (s.disk_free_bytes, s.disk_total_bytes) {
        (Some(free), Some(total)) => format!("; disk {} free of {}", mib(free), mib(total)),
        _ => String::new(),
    };
    println!(
        "store: {} used of a {} map{disk}",
        mib(s.store_bytes_used),
        mib(s.store_map_bytes)
    );
    match s.certificate_expires {
        Some(t) if t > now => println!("certificate: expires in {}", age(t - now)),
        Some(t) => println!("certificate: EXPIRED {} ago", age(now - t)),
        None => println!("certificate: none yet"),
    }
    match (&s.last_backup, s.last_backup_age_secs) {
        (Some(path), Some(a)) => println!("last backup: {path}, {} ago", age(a)),
        _ => println!("last backup: none"),
    }
    println!("blocked sources: {}", s.blocked_sources);
    if let Some(server) = &s.server {
        if !server.recent_problems.is_empty() {
            println!("recent warnings and errors:");
            for line in &server.recent_problems {
                println!("  {line}");
            }
        }
    }
    Ok(())
}
