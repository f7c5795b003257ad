//! When to try again: exponential backoff with jitter (pure).
//!
//! After the first failure the next attempt waits `base`, then twice as long each time,
//! never more than `max`: with the defaults 5 m, 10 m, 20 m, 40 m, 1 h 20, 2 h 40, 4 h, 4 h …
//! until the message is `max_age` old. Each wait is stretched by up to +10 % so that
//! messages that failed together do not all come back in the same second.

/// Seconds to wait after the `failures`-th failed attempt (1 for the first).
/// `jitter` is any number (a random one in production); it only picks the stretch.
pub fn retry_delay(failures: u32, base: u64, max: u64, jitter: u64) -> u64 {
    let doublings = failures.saturating_sub(1).min(40);
    let delay = base.saturating_mul(1u64 << doublings).min(max);
    delay + jitter % (delay / 10 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let waits: Vec<u64> = (1..=9).map(|n| retry_delay(n, 300, 14_400, 0)).collect();
        assert_eq!(
            waits,
            [300, 600, 1200, 2400, 4800, 9600, 14_400, 14_400, 14_400]
        );
        assert_eq!(retry_delay(u32::MAX, 300, 14_400, 0), 14_400);
    }

    #[test]
    fn jitter_stretches_by_at_most_a_tenth() {
        for j in 0..1000 {
            let d = retry_delay(3, 300, 14_400, j * 7919);
            assert!((1200..=1320).contains(&d), "{d}");
        }
    }
}
