//! The log, and the last warnings and errors kept in memory for `letterbox status` (the
//! server writes them into its status file). Lines still go to stderr through
//! env_logger, as configured by `RUST_LOG`; this only keeps a copy of the serious ones.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Warnings and errors kept.
pub const KEPT: usize = 10;
/// Longest line kept (a longer one is cut).
const MAX_LINE: usize = 300;

static RECENT: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

struct Tail(env_logger::Logger);

impl log::Log for Tail {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        if !self.0.matches(record) {
            return;
        }
        self.0.log(record);
        if record.level() <= log::Level::Warn {
            let mut line = format!(
                "{} {} {}",
                crate::mail::date::rfc5322_date(crate::clock::unix_now()),
                record.level(),
                record.args()
            );
            if line.len() > MAX_LINE {
                let mut end = MAX_LINE;
                while !line.is_char_boundary(end) {
                    end -= 1;
                }
                line.truncate(end);
            }
            if let Ok(mut recent) = RECENT.lock() {
                if recent.len() >= KEPT {
                    recent.pop_front();
                }
                recent.push_back(line);
            }
        }
    }

    fn flush(&self) {
        self.0.flush()
    }
}

/// Installs the logger: `RUST_LOG`, else `default_level`.
pub fn init(default_level: &str) {
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
            .build();
    let max = logger.filter();
    if log::set_boxed_logger(Box::new(Tail(logger))).is_ok() {
        log::set_max_level(max);
    }
}

/// The last warnings and errors, oldest first.
pub fn recent() -> Vec<String> {
    RECENT
        .lock()
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default()
}
