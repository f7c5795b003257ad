//! `letterbox clock check|sync`: how far this machine's clock is from time servers (SNTP,
//! RFC 4330), and, as root, setting it. A Pi has no real-time clock; certificates, DKIM and
//! ACME need the time right. The appliance runs `clock sync` at boot and every 6 hours
//! (image/rootfs/usr/libexec/letterbox/clock.sh); `serve` only checks and logs, because it
//! has dropped root.

use crate::config::Config;
use crate::sntp::Sample;
use clap::Subcommand;
use std::time::Duration;

/// Offsets smaller than this are left alone: SNTP over the internet is good to a few tens
/// of milliseconds, and stepping the clock for less would only add jitter.
pub const STEP_THRESHOLD: f64 = 0.5;

#[derive(Subcommand, Debug)]
pub(super) enum ClockAction {
    /// Ask each server once and print the offset of our clock from it.
    Check {
        /// A time server (host or address, port 123 unless given); repeatable
        /// [default: [clock] servers, else the DHCP lease's, else pool.ntp.org].
        #[arg(long = "server")]
        servers: Vec<String>,
        /// Seconds to wait for each answer.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// Ask the servers and step the clock (root only) by the offset of the answer with the
    /// shortest round trip, when it is 0.5 s or more.
    Sync {
        #[arg(long = "server")]
        servers: Vec<String>,
        #[arg(long, default_value_t = 5)]
        timeout: u64,
        /// Say what would be done, without setting the clock.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Asks every server; the answers, and a printed line per server.
fn ask(servers: &[String], timeout: u64) -> Vec<(String, Sample)> {
    let mut answers = Vec::new();
    for server in servers {
        match crate::sntp::query(server, Duration::from_secs(timeout.max(1))) {
            Ok(s) => {
                println!(
                    "{server}: offset {:+.3} s (the server is {}), delay {:.1} ms, stratum {}",
                    s.offset,
                    if s.offset >= 0.0 { "ahead" } else { "behind" },
                    s.delay * 1000.0,
                    s.stratum
                );
                answers.push((server.clone(), s));
            }
            Err(e) => println!("{e}"),
        }
    }
    answers
}

/// Exits non-zero when no server answered.
pub(super) fn clock_command(action: &ClockAction, config: &Config) -> Result<(), String> {
    let (given, timeout) = match action {
        ClockAction::Check { servers, timeout }
        | ClockAction::Sync {
            servers, timeout, ..
        } => (servers, *timeout),
    };
    let servers = if given.is_empty() {
        config.clock.effective_servers()
    } else {
        given.clone()
    };
    let answers = ask(&servers, timeout);
    let Some((server, best)) = answers
        .iter()
        .min_by(|a, b| a.1.delay.total_cmp(&b.1.delay))
    else {
        return Err("no time server answered".into());
    };
    let ClockAction::Sync { dry_run, .. } = action else {
        return Ok(());
    };
    if best.offset.abs() < STEP_THRESHOLD {
        println!(
            "clock within {STEP_THRESHOLD} s of {server} ({:+.3} s): left alone",
            best.offset
        );
        return Ok(());
    }
    if *dry_run {
        println!("would step the clock by {:+.3} s ({server})", best.offset);
        return Ok(());
    }
    if !crate::privilege::is_root() {
        return Err(format!(
            "setting the clock needs root; it is {:+.3} s off {server}",
            best.offset
        ));
    }
    step(best.offset)?;
    println!("stepped the clock by {:+.3} s ({server})", best.offset);
    Ok(())
}

fn step(offset: f64) -> Result<(), String> {
    use nix::sys::time::TimeSpec;
    use nix::time::{clock_gettime, clock_settime, ClockId};
    let now = clock_gettime(ClockId::CLOCK_REALTIME).map_err(|e| format!("clock: {e}"))?;
    let nanos = now.tv_sec() as i128 * 1_000_000_000
        + now.tv_nsec() as i128
        + (offset * 1e9).round() as i128;
    let target = TimeSpec::new(
        nanos.div_euclid(1_000_000_000) as _,
        nanos.rem_euclid(1_000_000_000) as _,
    );
    clock_settime(ClockId::CLOCK_REALTIME, target).map_err(|e| format!("setting the clock: {e}"))
}
