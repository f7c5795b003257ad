//! `letterbox clock check`: how far this machine's clock is from time servers (SNTP,
//! RFC 4330). It only reports; certificates, DKIM and ACME need the clock right, and a Pi
//! has no real-time clock.

use clap::Subcommand;
use std::time::Duration;

/// Asked when no --server is given.
pub const DEFAULT_SERVERS: [&str; 1] = ["pool.ntp.org"];

#[derive(Subcommand, Debug)]
pub(super) enum ClockAction {
    /// Ask each server once and print the offset of our clock from it.
    Check {
        /// A time server (host or address, port 123 unless given); repeatable
        /// [default: pool.ntp.org].
        #[arg(long = "server")]
        servers: Vec<String>,
        /// Seconds to wait for each answer.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
}

/// Exits non-zero when no server answered.
pub(super) fn clock_command(action: &ClockAction) -> Result<(), String> {
    let ClockAction::Check { servers, timeout } = action;
    let servers: Vec<String> = if servers.is_empty() {
        DEFAULT_SERVERS.iter().map(|s| s.to_string()).collect()
    } else {
        servers.clone()
    };
    let mut answered = 0;
    for server in &servers {
        match crate::sntp::query(server, Duration::from_secs((*timeout).max(1))) {
            Ok(s) => {
                answered += 1;
                println!(
                    "{server}: offset {:+.3} s (the server is {}), delay {:.1} ms, stratum {}",
                    s.offset,
                    if s.offset >= 0.0 { "ahead" } else { "behind" },
                    s.delay * 1000.0,
                    s.stratum
                );
            }
            Err(e) => println!("{e}"),
        }
    }
    if answered == 0 {
        return Err("no time server answered".into());
    }
    Ok(())
}
