//! Progress of long commands (backup, restore, import, export, migrate): a line redrawn
//! in place when stderr is a terminal, a log line every 10 s otherwise (the daily backup,
//! a script, `ssh box letterbox backup - > file`).
//!
//! Our own rather than indicatif: one line of text is all these commands show, and the
//! crate with its terminal dependencies would cost the binary more than this file.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    what: &'static str,
    unit: Unit,
    total: Option<u64>,
    done: u64,
    tty: bool,
    started: Instant,
    shown: Instant,
}

#[derive(Clone, Copy)]
pub enum Unit {
    Bytes,
    Messages,
}

impl Progress {
    pub fn new(what: &'static str, unit: Unit, total: Option<u64>) -> Progress {
        let now = Instant::now();
        Progress {
            what,
            unit,
            total,
            done: 0,
            tty: std::io::stderr().is_terminal(),
            started: now,
            shown: now,
        }
    }

    pub fn advance(&mut self, by: u64) {
        self.done += by;
        let every = if self.tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(10)
        };
        if self.shown.elapsed() >= every {
            self.shown = Instant::now();
            self.show();
        }
    }

    fn amount(&self, n: u64) -> String {
        match self.unit {
            Unit::Bytes => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
            Unit::Messages => format!("{n} messages"),
        }
    }

    fn line(&self) -> String {
        let mut line = format!("{}: {}", self.what, self.amount(self.done));
        if let Some(total) = self.total.filter(|&t| t > 0) {
            let share = (self.done as f64 / total as f64 * 100.0).min(100.0);
            line.push_str(&format!(" of {} ({share:.0} %)", self.amount(total)));
        }
        let secs = self.started.elapsed().as_secs_f64();
        if secs > 0.5 {
            let rate = self.done as f64 / secs;
            match self.unit {
                Unit::Bytes => line.push_str(&format!(", {:.1} MiB/s", rate / (1 << 20) as f64)),
                Unit::Messages => line.push_str(&format!(", {rate:.0}/s")),
            }
        }
        line
    }

    fn show(&self) {
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K{}", self.line());
            let _ = err.flush();
        } else {
            log::info!("{}", self.line());
        }
    }

    /// Ends the redrawn line (a terminal) so what follows starts on its own.
    pub fn finish(&self) {
        if self.tty {
            eprintln!("\r\x1b[K{}", self.line());
        }
    }
}
