//! Exponential backoff with jitter between delivery attempts.

use serde::{Deserialize, Serialize};

/// The retry delay policy of a subscription: after the n-th failed attempt a
/// message waits `d = min(max_ms, initial_ms · 2^(n−1))`, jittered uniformly
/// into `[d/2, d]` ("equal jitter": delays still grow from one attempt to
/// the next, while consumers that failed together spread out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// Delay ceiling after the first failed attempt.
    #[serde(default = "default_initial_ms")]
    pub initial_ms: u64,
    /// Largest delay.
    #[serde(default = "default_max_ms")]
    pub max_ms: u64,
}

fn default_initial_ms() -> u64 {
    crate::limits::BACKOFF_INITIAL_MS_DEFAULT
}

fn default_max_ms() -> u64 {
    crate::limits::BACKOFF_MAX_MS_DEFAULT
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial_ms: default_initial_ms(),
            max_ms: default_max_ms(),
        }
    }
}

impl Backoff {
    /// The un-jittered delay after `failed_attempts` failures (at least 1).
    pub fn ceiling_ms(&self, failed_attempts: u32) -> u64 {
        let doublings = failed_attempts.saturating_sub(1).min(63);
        self.initial_ms
            .checked_shl(doublings)
            .filter(|delay| delay >> doublings == self.initial_ms)
            .unwrap_or(u64::MAX)
            .min(self.max_ms)
    }

    /// The jittered delay after `failed_attempts` failures, drawn with
    /// the uniform random bits `jitter` (see `TokenKey::jitter`).
    pub fn delay_ms(&self, failed_attempts: u32, jitter: u64) -> u64 {
        let ceiling = self.ceiling_ms(failed_attempts);
        let low = ceiling / 2;
        // `ceiling - low` is at most half of `u64::MAX` plus one: no overflow.
        low + jitter % (ceiling - low + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_ceiling_and_never_overflow() {
        let backoff = Backoff {
            initial_ms: 100,
            max_ms: 1_000,
        };
        assert_eq!(backoff.ceiling_ms(0), 100);
        assert_eq!(backoff.ceiling_ms(1), 100);
        assert_eq!(backoff.ceiling_ms(2), 200);
        assert_eq!(backoff.ceiling_ms(4), 800);
        assert_eq!(backoff.ceiling_ms(5), 1_000);
        assert_eq!(backoff.ceiling_ms(1_000), 1_000);
        let huge = Backoff {
            initial_ms: u64::MAX / 2,
            max_ms: u64::MAX,
        };
        assert_eq!(huge.ceiling_ms(3), u64::MAX);
        assert_eq!(huge.delay_ms(3, 7), u64::MAX / 2 + 7);
        assert!(huge.delay_ms(3, u64::MAX) >= u64::MAX / 2);
    }

    #[test]
    fn jittered_delays_stay_in_half_to_full_and_grow() {
        let backoff = Backoff {
            initial_ms: 100,
            max_ms: 60_000,
        };
        let mut random = crate::random::SplitMix64::new(1);
        for _ in 0..100 {
            let mut previous = 0;
            for attempt in 1..=8 {
                let delay = backoff.delay_ms(attempt, random.next_u64());
                let ceiling = backoff.ceiling_ms(attempt);
                assert!(delay >= ceiling / 2 && delay <= ceiling);
                assert!(delay >= previous);
                previous = delay;
            }
        }
    }
}
