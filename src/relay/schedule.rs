//! The scheduler's bookkeeping, apart from its I/O: which queue entries are due, which
//! are already being delivered or held back, how many connections each route has open,
//! and how long the runner may sleep. [`super::runner`] owns one and feeds it the queue's
//! schedule and the outcome of each delivery task.

use super::route::Route;
use std::collections::HashMap;
use std::time::Duration;

/// How long an entry whose outcome could not be recorded is left alone: it must not be
/// sent again at once while the store refuses writes (a full map, say).
pub const HOLD_AFTER_RECORD_FAILURE: i64 = 60;

#[derive(Debug, Default)]
pub struct Scheduler {
    /// (next attempt, queue id) of every entry with recipients left.
    schedule: Vec<(i64, u64)>,
    /// Tasks working on each entry: one entry with recipients on several routes is in
    /// several tasks, and stays untouchable until the last one ends.
    in_flight: HashMap<u64, usize>,
    /// Entries left alone until this Unix time.
    held: HashMap<u64, i64>,
    /// Connections open per route.
    busy: HashMap<Route, usize>,
}

impl Scheduler {
    pub fn set_schedule(&mut self, schedule: Vec<(i64, u64)>) {
        self.schedule = schedule;
    }

    /// Entries due at `now` that no task is working on and that are not held.
    pub fn due(&mut self, now: i64) -> Vec<u64> {
        self.held.retain(|_, until| *until > now);
        self.schedule
            .iter()
            .filter(|(at, id)| *at <= now && self.available(*id))
            .map(|(_, id)| *id)
            .collect()
    }

    fn available(&self, id: u64) -> bool {
        !self.in_flight.contains_key(&id) && !self.held.contains_key(&id)
    }

    /// Connections `route` may still open under `per_route` (0: it must wait).
    pub fn free(&self, route: &Route, per_route: usize) -> usize {
        per_route.saturating_sub(self.busy.get(route).copied().unwrap_or(0))
    }

    /// A task starts on `route` with these entries.
    pub fn start(&mut self, route: &Route, ids: &[u64]) {
        for id in ids {
            *self.in_flight.entry(*id).or_default() += 1;
        }
        *self.busy.entry(route.clone()).or_default() += 1;
    }

    /// A task ended; entries whose outcome it could not record are held back.
    pub fn finish(&mut self, route: &Route, ids: &[u64], unrecorded: &[u64], now: i64) {
        for id in ids {
            if let Some(n) = self.in_flight.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    self.in_flight.remove(id);
                }
            }
        }
        for id in unrecorded {
            self.held.insert(*id, now + HOLD_AFTER_RECORD_FAILURE);
        }
        if let Some(n) = self.busy.get_mut(route) {
            *n -= 1;
            if *n == 0 {
                self.busy.remove(route);
            }
        }
    }

    /// How long to sleep before looking again (a wake-up or a finished task comes
    /// first): 50 ms when an available entry is due now, else a second, so that entries
    /// added by other processes are seen. `blocked`: due work is waiting for a route's
    /// connection to free up, which a finished task announces.
    pub fn wait(&self, now: i64, blocked: bool) -> Duration {
        let next = self
            .schedule
            .iter()
            .filter(|(_, id)| self.available(*id))
            .map(|(at, _)| *at)
            .min();
        match next {
            Some(at) if !blocked && at <= now => Duration::from_millis(50),
            _ => Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(domain: &str) -> Route {
        Route::Mx(domain.into())
    }

    #[test]
    fn due_entries_skip_those_in_flight_and_held() {
        let mut s = Scheduler::default();
        s.set_schedule(vec![(100, 1), (100, 2), (100, 3), (200, 4)]);
        assert_eq!(s.due(100), [1, 2, 3]);
        s.start(&mx("a.test"), &[1]);
        s.start(&mx("b.test"), &[1, 2]);
        assert_eq!(s.due(100), [3]);
        s.finish(&mx("a.test"), &[1], &[], 100);
        assert_eq!(s.due(100), [3], "1 is still in the b.test task");
        s.finish(&mx("b.test"), &[1, 2], &[2], 100);
        assert_eq!(s.due(100), [1, 3], "2 is held after a failed record");
        assert_eq!(s.due(100 + HOLD_AFTER_RECORD_FAILURE - 1), [1, 3]);
        assert_eq!(s.due(100 + HOLD_AFTER_RECORD_FAILURE), [1, 2, 3]);
        assert_eq!(s.due(200), [1, 2, 3, 4]);
    }

    #[test]
    fn routes_have_their_own_connection_limit() {
        let mut s = Scheduler::default();
        let a = mx("a.test");
        assert_eq!(s.free(&a, 2), 2);
        s.start(&a, &[1]);
        s.start(&a, &[2]);
        assert_eq!(s.free(&a, 2), 0);
        assert_eq!(s.free(&mx("b.test"), 2), 2);
        s.finish(&a, &[1], &[], 0);
        assert_eq!(s.free(&a, 2), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_runner_sleeps_briefly_only_for_work_it_can_start() {
        let mut s = Scheduler::default();
        let slept = |d: Duration| async move {
            let start = tokio::time::Instant::now();
            tokio::time::sleep(d).await;
            start.elapsed()
        };
        assert_eq!(slept(s.wait(100, false)).await, Duration::from_secs(1));
        s.set_schedule(vec![(100, 1), (150, 2)]);
        assert_eq!(slept(s.wait(100, false)).await, Duration::from_millis(50));
        assert_eq!(slept(s.wait(100, true)).await, Duration::from_secs(1));
        s.start(&mx("a.test"), &[1]);
        assert_eq!(
            slept(s.wait(100, false)).await,
            Duration::from_secs(1),
            "the due entry is in flight; the next is 50 s away"
        );
        assert_eq!(slept(s.wait(150, false)).await, Duration::from_millis(50));
    }
}
