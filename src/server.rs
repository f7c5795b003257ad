//! Listeners, connection limits and graceful shutdown.
//!
//! Sockets are bound before privileges are dropped (see [`crate::privilege`]); this module
//! then runs one accept loop per listener and one task per connection. A connection over
//! the total or per-IP limit gets a one-line refusal and is closed at once. On shutdown the
//! accept loops stop, each session finishes its current command and says goodbye, and
//! [`run`] returns when the last session ended and the relay stopped, or the grace period
//! ran out.

use crate::config::{Config, Listener, ListenerKind};
use crate::floor::Shared;
use crate::net::Connection;
use crate::signals::Signal;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// A socket bound while still privileged.
pub struct BoundListener {
    pub kind: ListenerKind,
    pub socket: std::net::TcpListener,
}

/// Binds every listener; fails naming the first address that could not be bound.
pub fn bind(listeners: &[Listener]) -> Result<Vec<BoundListener>, String> {
    listeners
        .iter()
        .map(|l| {
            let addr = SocketAddr::new(l.address, l.port);
            let socket = std::net::TcpListener::bind(addr)
                .map_err(|e| format!("cannot listen on {addr} ({}): {e}", l.kind))?;
            socket
                .set_nonblocking(true)
                .map_err(|e| format!("{addr}: {e}"))?;
            Ok(BoundListener {
                kind: l.kind,
                socket,
            })
        })
        .collect()
}

/// Reloads configuration and certificates on SIGHUP.
pub type Reloader =
    Box<dyn Fn() -> Result<(Config, Arc<rustls::sign::CertifiedKey>), String> + Send>;

/// Serves until SIGTERM/SIGINT, then drains. Prints `listening KIND ADDR` per listener and
/// `ready` on stdout once connections are accepted.
pub async fn run(
    shared: Arc<Shared>,
    listeners: Vec<BoundListener>,
    stop: watch::Sender<bool>,
    mut signals: mpsc::UnboundedReceiver<Signal>,
    reload: Reloader,
) -> Result<(), String> {
    // Each session holds a clone of `done`; when all are gone, recv() yields None.
    let (done, mut all_done) = mpsc::channel::<()>(1);
    let mut stdout = std::io::stdout().lock();
    let mut bound_addrs = Vec::new();
    for bound in listeners {
        let socket = TcpListener::from_std(bound.socket).map_err(|e| e.to_string())?;
        let addr = socket.local_addr().map_err(|e| e.to_string())?;
        bound_addrs.push((bound.kind.to_string(), addr.to_string()));
        let _ = writeln!(stdout, "listening {} {addr}", bound.kind);
        log::info!("listening for {} on {addr}", bound.kind);
        tokio::spawn(accept_loop(
            shared.clone(),
            bound.kind,
            socket,
            done.clone(),
        ));
    }
    let relay = tokio::spawn(crate::relay::runner::run(shared.clone()));
    tokio::spawn(crate::acme::run(shared.clone()));
    tokio::spawn(watch_clock(shared.clone()));
    tokio::spawn(crate::status::write_loop(shared.clone(), bound_addrs));
    let _ = writeln!(stdout, "ready");
    let _ = stdout.flush();
    drop(stdout);
    drop(done);

    while let Some(signal) = signals.recv().await {
        match signal {
            Signal::Reload => match reload() {
                Ok((config, certificate)) => {
                    shared.tls.replace(certificate);
                    let domains = config.domains.clone();
                    let added = shared
                        .store
                        .call(move |store| {
                            for domain in &domains {
                                if let Err(e) = store.ensure_domain(domain) {
                                    log::error!("reload: domain {domain}: {e}");
                                }
                            }
                            Ok(())
                        })
                        .await;
                    if let Err(e) = added {
                        log::error!("reload: adding the configured domains: {e}");
                    }
                    shared.set_config(config);
                    shared.acme_wake.notify_one();
                    log::info!("reloaded configuration and certificates");
                }
                Err(e) => log::error!("reload failed, keeping the old configuration: {e}"),
            },
            Signal::Stop => break,
        }
    }
    let grace = shared.config().limits.shutdown_grace();
    log::info!(
        "shutting down: waiting up to {}s for sessions",
        grace.as_secs()
    );
    let _ = stop.send(true);
    let deadline = tokio::time::Instant::now() + grace;
    match tokio::time::timeout_at(deadline, all_done.recv()).await {
        Ok(_) => log::info!("all sessions closed"),
        Err(_) => log::warn!("grace period over; closing remaining sessions"),
    }
    // The relay writes the day's TLS-report counts as it stops: dropping it with the
    // runtime could lose them. It stops at once unless a store call is under way; what is
    // left of the grace period (at least a second) keeps the whole stop within the image's
    // wait (rcK). Its deliveries under way are dropped either way (see there).
    let left = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .max(Duration::from_secs(1));
    match tokio::time::timeout(left, relay).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::error!("the relay ended abnormally: {e}"),
        Err(_) => log::warn!("the relay did not stop in time"),
    }
    Ok(())
}

/// Offsets beyond this are logged as warnings: DKIM signatures and certificate checks start
/// to go wrong.
const CLOCK_WARN_SECS: f64 = 2.0;

/// Checks the clock against `[clock] servers` at start and every `check_hours`, logging the
/// offset. Only reports: setting the clock needs root, which `serve` has dropped.
async fn watch_clock(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let clock = shared.config().clock.clone();
        if clock.check_hours == 0 {
            // Off: look at the configuration again in an hour (a reload may turn it on).
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(3600)) => continue,
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
        let servers = clock.effective_servers();
        let answers = tokio::task::spawn_blocking(move || {
            servers
                .iter()
                .map(|s| (s.clone(), crate::sntp::query(s, Duration::from_secs(5))))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let best = answers
            .iter()
            .filter_map(|(server, answer)| answer.as_ref().ok().map(|s| (server, s)))
            .min_by(|a, b| a.1.delay.total_cmp(&b.1.delay));
        *shared.clock_check.lock().expect("clock lock") =
            Some((crate::clock::unix_now(), best.map(|(_, s)| s.offset)));
        match best {
            Some((server, s)) if s.offset.abs() >= CLOCK_WARN_SECS => log::warn!(
                "clock: this machine is {:.3} s {} {server}: set the clock (letterbox clock sync, as root)",
                s.offset.abs(),
                if s.offset > 0.0 { "behind" } else { "ahead of" }
            ),
            Some((server, s)) => log::info!("clock: offset {:+.3} s from {server}", s.offset),
            None => {
                let why: Vec<String> = answers
                    .into_iter()
                    .filter_map(|(_, a)| a.err())
                    .collect();
                log::warn!("clock: no time server answered ({})", why.join("; "));
            }
        }
        let wait = Duration::from_secs(clock.check_hours.saturating_mul(3600));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    kind: ListenerKind,
    socket: TcpListener,
    done: mpsc::Sender<()>,
) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                log::warn!("accept on {kind}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match shared.admit(peer.ip(), kind) {
            Ok(slot) => slot,
            Err(why) => {
                log::warn!("{kind} {peer}: refused: {why}");
                refuse(kind, &stream, why);
                continue;
            }
        };
        let shared = shared.clone();
        let done = done.clone();
        tokio::spawn(async move {
            handle(shared, kind, stream, peer).await;
            drop(slot);
            drop(done);
        });
    }
}

/// Best-effort one-line refusal; the socket is closed when dropped.
fn refuse(kind: ListenerKind, stream: &TcpStream, why: &str) {
    let line = match kind {
        ListenerKind::Pop3 | ListenerKind::Pop3s => format!("-ERR [SYS/TEMP] {why}\r\n"),
        ListenerKind::Imap | ListenerKind::Imaps => format!("* BYE [UNAVAILABLE] {why}\r\n"),
        ListenerKind::Managesieve => format!("BYE (TRYLATER) \"{why}\"\r\n"),
        ListenerKind::Http | ListenerKind::Https => {
            String::from_utf8_lossy(&crate::http::response(
                503,
                "Service Unavailable",
                "text/plain",
                format!("{why}\n").as_bytes(),
            ))
            .into_owned()
        }
        _ => format!("421 4.7.0 {why}, try again later\r\n"),
    };
    if !kind.implicit_tls() {
        let _ = stream.try_write(line.as_bytes());
    }
}

async fn handle(shared: Arc<Shared>, kind: ListenerKind, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let config = shared.config();
    // The web listeners answer one request: a handshake and head get seconds, not minutes.
    let timeout = match kind {
        ListenerKind::Http | ListenerKind::Https => crate::web::HEAD_DEADLINE,
        _ => config.limits.command_timeout(),
    };
    let mut conn = Connection::new(Box::new(stream), peer, timeout);
    if kind.implicit_tls() {
        let acceptor = if kind == ListenerKind::Https {
            shared.tls.web_acceptor()
        } else {
            shared.tls.acceptor()
        };
        if let Err(e) = conn.start_tls(&acceptor).await {
            log::info!("{kind} {peer}: TLS handshake failed: {e}");
            return;
        }
    }
    log::info!("{kind} {peer}: session start");
    let (end, user) = match kind {
        ListenerKind::Smtp | ListenerKind::Submission | ListenerKind::Submissions => {
            let mut session = crate::smtp::session::Session::new(shared, kind, conn);
            let end = session.run().await;
            (format!("{end:?}"), session.user().map(str::to_string))
        }
        ListenerKind::Pop3 | ListenerKind::Pop3s => {
            let mut session = crate::pop3::session::Session::new(shared, conn);
            let end = session.run().await;
            (format!("{end:?}"), session.user().map(str::to_string))
        }
        ListenerKind::Imap | ListenerKind::Imaps => {
            let mut session = crate::imap::session::Session::new(shared, conn);
            let end = session.run().await;
            (format!("{end:?}"), session.user().map(str::to_string))
        }
        ListenerKind::Managesieve => {
            let mut session = crate::managesieve::session::Session::new(shared, conn);
            let end = session.run().await;
            (format!("{end:?}"), session.user().map(str::to_string))
        }
        ListenerKind::Http | ListenerKind::Https => {
            (format!("{:?}", crate::web::serve(shared, conn).await), None)
        }
    };
    match user {
        Some(user) => log::info!("{kind} {peer}: session end ({end}) user={user}"),
        None => log::info!("{kind} {peer}: session end ({end})"),
    }
}
