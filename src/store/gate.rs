//! The gate every transaction passes, so that the map can grow while serving.
//!
//! LMDB may change the size of an open environment's map only while no transaction of
//! the process is active (`mdb_env_set_mapsize`: the library does not check, and the
//! mapping moves). Each transaction therefore holds a [`Ticket`]; [`Gate::exclusive`]
//! stops new tickets, waits for the last one to end, and runs the resize alone.
//!
//! A thread that already holds a ticket (a nested or second transaction on the same
//! thread) takes another without waiting, so a resize in waiting can never deadlock a
//! thread against itself; [`Gate::exclusive`] refuses to run on such a thread.

use std::cell::Cell;
use std::sync::{Condvar, Mutex};

thread_local! {
    /// Tickets this thread holds.
    static HELD: Cell<usize> = const { Cell::new(0) };
}

#[derive(Default)]
struct State {
    /// Threads holding at least one ticket.
    active: usize,
    /// A resize is waiting or running: new tickets wait.
    exclusive: bool,
}

#[derive(Default)]
pub struct Gate {
    state: Mutex<State>,
    changed: Condvar,
}

/// Permission to run a transaction; released when dropped.
pub struct Ticket<'g> {
    gate: &'g Gate,
}

impl Gate {
    pub fn enter(&self) -> Ticket<'_> {
        let held = HELD.with(|h| h.get());
        if held == 0 {
            let mut state = self.state.lock().expect("store gate");
            while state.exclusive {
                state = self.changed.wait(state).expect("store gate");
            }
            state.active += 1;
        }
        HELD.with(|h| h.set(held + 1));
        Ticket { gate: self }
    }

    /// Runs `f` while no transaction is active; None (without running it) on a thread
    /// that holds a ticket itself.
    pub fn exclusive<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        if HELD.with(|h| h.get()) > 0 {
            return None;
        }
        let mut state = self.state.lock().expect("store gate");
        while state.exclusive {
            state = self.changed.wait(state).expect("store gate");
        }
        state.exclusive = true;
        while state.active > 0 {
            state = self.changed.wait(state).expect("store gate");
        }
        let result = f();
        state.exclusive = false;
        self.changed.notify_all();
        Some(result)
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let held = HELD.with(|h| h.get()) - 1;
        HELD.with(|h| h.set(held));
        if held == 0 {
            let mut state = self.gate.state.lock().expect("store gate");
            state.active -= 1;
            if state.active == 0 {
                self.gate.changed.notify_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn exclusive_runs_alone_and_nested_tickets_never_wait() {
        let gate = Arc::new(Gate::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (gate, inside, stop) = (gate.clone(), inside.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let _outer = gate.enter();
                        inside.fetch_add(1, Ordering::SeqCst);
                        let _nested = gate.enter();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for _ in 0..50 {
            let alone = gate.exclusive(|| inside.load(Ordering::SeqCst)).unwrap();
            assert_eq!(alone, 0, "a transaction ran during the resize");
        }
        stop.store(true, Ordering::Relaxed);
        workers.into_iter().for_each(|w| w.join().unwrap());
        let _held = gate.enter();
        assert!(
            gate.exclusive(|| ()).is_none(),
            "refused on a thread with a ticket"
        );
    }
}
