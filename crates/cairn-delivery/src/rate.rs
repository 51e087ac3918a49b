//! A token bucket for per-subscription rate limits, driven by injected time.

/// Allows `rate_per_s` messages per second on average, with bursts of up to
/// one second's worth.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate_per_s: u32,
    /// Available tokens, in thousandths, so that refills by the millisecond
    /// stay exact in integers.
    milli_tokens: u64,
    refilled_at_ms: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_s: u32, now_ms: u64) -> TokenBucket {
        TokenBucket {
            rate_per_s,
            milli_tokens: u64::from(rate_per_s) * 1_000,
            refilled_at_ms: now_ms,
        }
    }

    /// A bucket as stored: `milli_tokens` thousandths of a message, last
    /// refilled at `refilled_at_ms` (for a backend that keeps the bucket in
    /// a database row shared by several servers).
    pub fn from_parts(rate_per_s: u32, milli_tokens: u64, refilled_at_ms: u64) -> TokenBucket {
        TokenBucket {
            rate_per_s,
            milli_tokens: milli_tokens.min(u64::from(rate_per_s) * 1_000),
            refilled_at_ms,
        }
    }

    /// The stored form: `(milli_tokens, refilled_at_ms)`.
    pub fn parts(&self) -> (u64, u64) {
        (self.milli_tokens, self.refilled_at_ms)
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed_ms = now_ms.saturating_sub(self.refilled_at_ms);
        let capacity = u64::from(self.rate_per_s) * 1_000;
        self.milli_tokens = self
            .milli_tokens
            .saturating_add(elapsed_ms.saturating_mul(u64::from(self.rate_per_s)))
            .min(capacity);
        self.refilled_at_ms = self.refilled_at_ms.max(now_ms);
    }

    /// Whole tokens available now.
    pub fn available(&mut self, now_ms: u64) -> u64 {
        self.refill(now_ms);
        self.milli_tokens / 1_000
    }

    /// Takes `n` tokens (at most what is available).
    pub fn take(&mut self, n: u64, now_ms: u64) {
        self.refill(now_ms);
        self.milli_tokens = self.milli_tokens.saturating_sub(n * 1_000);
    }

    /// When the next whole token will be available.
    pub fn next_token_at_ms(&self) -> u64 {
        if self.milli_tokens >= 1_000 || self.rate_per_s == 0 {
            return self.refilled_at_ms;
        }
        let missing = 1_000 - self.milli_tokens;
        self.refilled_at_ms + missing.div_ceil(u64::from(self.rate_per_s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_the_rate() {
        let mut bucket = TokenBucket::new(10, 0);
        assert_eq!(bucket.available(0), 10);
        bucket.take(10, 0);
        assert_eq!(bucket.available(0), 0);
        assert_eq!(bucket.next_token_at_ms(), 100);
        assert_eq!(bucket.available(99), 0);
        assert_eq!(bucket.available(100), 1);
        assert_eq!(bucket.available(10_000), 10);
        bucket.take(3, 10_000);
        assert_eq!(bucket.available(10_000), 7);
    }
}
