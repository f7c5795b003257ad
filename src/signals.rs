//! Signals: SIGHUP reloads, SIGTERM and SIGINT stop. signal-hook runs the handlers on a
//! thread of its own and forwards them to the server's async loop.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Reload,
    Stop,
}

/// Installs the handlers; from now on these signals no longer kill the process.
pub fn listen() -> std::io::Result<mpsc::UnboundedReceiver<Signal>> {
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let event = if signal == SIGHUP {
                    Signal::Reload
                } else {
                    Signal::Stop
                };
                log::info!("received signal {signal}");
                if tx.send(event).is_err() {
                    break;
                }
            }
        })?;
    Ok(rx)
}
