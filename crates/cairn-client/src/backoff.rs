//! Jittered exponential backoff, the one waiting rule of the SDK: the n-th
//! retry waits `d = min(max, initial · 2^(n−1))` jittered uniformly into
//! `[d/2, d]` (the same rule the server uses for redelivery). Jitter keeps
//! many clients that failed together from retrying together.

use std::time::Duration;

/// A backoff policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Upper bound of the first wait.
    pub initial: Duration,
    /// Upper bound of every wait.
    pub max: Duration,
}

impl Backoff {
    /// The upper bound `d` of the wait before retry number `retry_number`
    /// (1 for the first retry).
    pub fn ceiling(&self, retry_number: u32) -> Duration {
        // Past 2^31 the multiplication saturates at `max` anyway.
        let exponent = retry_number.saturating_sub(1).min(31);
        let ceiling = self.initial.saturating_mul(1u32 << exponent);
        ceiling.min(self.max)
    }

    /// The wait before retry number `retry_number` for a jitter `fraction`
    /// in `[0, 1]`: `d/2 + fraction · d/2`.
    pub fn delay_with_fraction(&self, retry_number: u32, fraction: f64) -> Duration {
        let ceiling = self.ceiling(retry_number);
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(fraction.clamp(0.0, 1.0))
    }

    /// The wait before retry number `retry_number`, with random jitter.
    pub fn delay(&self, retry_number: u32) -> Duration {
        let fraction: f64 = fastrand::f64();
        self.delay_with_fraction(retry_number, fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(1_000),
    };

    #[test]
    fn ceiling_doubles_up_to_the_maximum() {
        let ceilings: Vec<u128> = (1..=6).map(|n| POLICY.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(POLICY.ceiling(u32::MAX), POLICY.max);
    }

    #[test]
    fn jitter_stays_between_half_and_the_ceiling() {
        assert_eq!(
            POLICY.delay_with_fraction(3, 0.0),
            Duration::from_millis(200)
        );
        assert_eq!(
            POLICY.delay_with_fraction(3, 1.0),
            Duration::from_millis(400)
        );
        for retry_number in 1..20 {
            let delay = POLICY.delay(retry_number);
            let ceiling = POLICY.ceiling(retry_number);
            assert!(delay >= ceiling / 2 && delay <= ceiling, "{delay:?}");
        }
    }
}
