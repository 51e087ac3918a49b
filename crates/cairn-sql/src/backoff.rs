//! The relay's wait after failed passes: exponential, bounded and jittered,
//! computed by a pure function so that it can be tested without time.

use std::time::Duration;

/// Exponential backoff: after the n-th consecutive failure the wait is
/// `d = min(max, initial · 2^(n−1))`, jittered uniformly into `[d/2, d]` so
/// that relays of many service instances do not retry in step. This is the
/// same rule that Cairn's subscriptions use for redeliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// Wait after the first failure, before jitter.
    pub initial: Duration,
    /// Longest wait, before jitter.
    pub max: Duration,
}

/// Doublings counted at most: keeps `1 << doublings` within a `u32`; any
/// real `max` is reached long before.
const DOUBLINGS_MAX: u32 = 31;

impl Backoff {
    /// The wait after `failures` consecutive failures (at least 1), given a
    /// random number `random_unit` in `[0, 1)` for the jitter.
    pub fn delay(&self, failures: u32, random_unit: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(DOUBLINGS_MAX);
        let unjittered = self
            .initial
            .checked_mul(1u32 << doublings)
            .map_or(self.max, |delay| delay.min(self.max));
        let half = unjittered / 2;
        half + half.mul_f64(random_unit.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(5),
    };

    #[test]
    fn doubles_from_initial_up_to_max() {
        let top = |failures| BACKOFF.delay(failures, 1.0);
        assert_eq!(top(0), Duration::from_millis(100));
        assert_eq!(top(1), Duration::from_millis(100));
        assert_eq!(top(2), Duration::from_millis(200));
        assert_eq!(top(3), Duration::from_millis(400));
        assert_eq!(top(7), Duration::from_millis(5_000));
        assert_eq!(top(40), Duration::from_millis(5_000));
        assert_eq!(top(u32::MAX), Duration::from_millis(5_000));
    }

    #[test]
    fn jitter_stays_within_half_and_full_delay() {
        for failures in 1..50 {
            let low = BACKOFF.delay(failures, 0.0);
            let high = BACKOFF.delay(failures, 1.0);
            assert_eq!(low * 2, high, "failures {failures}");
            for random_unit in [0.1, 0.5, 0.999] {
                let delay = BACKOFF.delay(failures, random_unit);
                assert!(low <= delay && delay <= high, "failures {failures}");
            }
        }
        // Out-of-range random numbers cannot push the wait out of bounds.
        assert_eq!(BACKOFF.delay(3, -1.0), BACKOFF.delay(3, 0.0));
        assert_eq!(BACKOFF.delay(3, 7.0), BACKOFF.delay(3, 1.0));
    }
}
