//! Settings of a [`crate::ResilientClient`] and of its circuit breaker, with
//! their validation (so that no invalid value reaches a `tower` constructor
//! that would panic on it).

use std::time::Duration;

use crate::limits::{
    ATTEMPTS_MAX_LIMIT, RETRY_BUDGET_RATIO_MAX, RETRY_BUDGET_TTL_MAX, RETRY_BUDGET_TTL_MIN,
};

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// An option is out of range.
    #[error("invalid option: {reason}")]
    InvalidOption {
        /// Which option and why.
        reason: &'static str,
    },
    /// The HTTP client could not be created.
    #[error("could not create the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
}

/// How a [`crate::ResilientClient`] times out, retries and trips.
#[derive(Clone, Debug)]
pub struct ResilientOptions {
    /// Limit on one attempt, from sending the request to reading the whole answer.
    pub attempt_timeout: Duration,
    /// Limit on the whole logical call, all attempts and backoff included.
    pub call_timeout: Duration,
    /// Attempts per call, the first one included (1 disables retries).
    pub attempts_max: u32,
    /// Backoff before the first retry; it doubles on each retry up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Longest backoff between two attempts.
    pub backoff_max: Duration,
    /// Random extra backoff as a fraction of the backoff (0.0 to 1.0), so that
    /// clients that failed together do not retry together.
    pub backoff_jitter_ratio: f64,
    /// Longest wait honoured from a 429's `Retry-After`.
    pub retry_after_max: Duration,
    /// Limit on retries across all calls of this client.
    pub retry_budget: RetryBudgetOptions,
    /// When to stop sending requests to a failing server.
    pub circuit_breaker: CircuitBreakerOptions,
}

impl Default for ResilientOptions {
    fn default() -> Self {
        ResilientOptions {
            attempt_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(20),
            attempts_max: 3,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            backoff_jitter_ratio: 0.5,
            retry_after_max: Duration::from_secs(5),
            retry_budget: RetryBudgetOptions::default(),
            circuit_breaker: CircuitBreakerOptions::default(),
        }
    }
}

/// Retries allowed over a sliding window: `retry_ratio` of the calls made in
/// the last `ttl`, plus a floor of `retries_min_per_second` so that a client
/// with little traffic can still retry.
#[derive(Clone, Debug)]
pub struct RetryBudgetOptions {
    /// How long a call counts towards the budget (1 to 60 seconds).
    pub ttl: Duration,
    /// Retries allowed per second whatever the traffic.
    pub retries_min_per_second: u32,
    /// Retries allowed per call made (0.2 = one retry per five calls).
    pub retry_ratio: f32,
}

impl Default for RetryBudgetOptions {
    fn default() -> Self {
        RetryBudgetOptions {
            ttl: Duration::from_secs(10),
            retries_min_per_second: 10,
            retry_ratio: 0.2,
        }
    }
}

/// Thresholds of the circuit breaker (see [`crate::CircuitBreakerLayer`]).
#[derive(Clone, Debug)]
pub struct CircuitBreakerOptions {
    /// Consecutive server failures that open the circuit.
    pub failures_consecutive_max: u32,
    /// Fraction of failed calls in `failure_window` that opens the circuit (0.0 to 1.0].
    pub failure_rate_max: f64,
    /// Window over which the failure rate is measured.
    pub failure_window: Duration,
    /// Calls needed in the window before the failure rate is trusted.
    pub failure_window_calls_min: u32,
    /// How long the circuit stays open before letting probes through.
    pub open_duration: Duration,
    /// Probe calls let through while half-open; all must succeed to close.
    pub half_open_probes: u32,
}

impl Default for CircuitBreakerOptions {
    fn default() -> Self {
        CircuitBreakerOptions {
            failures_consecutive_max: 5,
            failure_rate_max: 0.5,
            failure_window: Duration::from_secs(10),
            failure_window_calls_min: 20,
            open_duration: Duration::from_secs(5),
            half_open_probes: 1,
        }
    }
}

impl ResilientOptions {
    /// Checks every option; the first one out of range is reported.
    pub fn validate(&self) -> Result<(), BuildError> {
        let checks = [
            (
                self.attempt_timeout.is_zero(),
                "attempt_timeout must be positive",
            ),
            (self.call_timeout.is_zero(), "call_timeout must be positive"),
            (
                self.attempts_max == 0 || self.attempts_max > ATTEMPTS_MAX_LIMIT,
                "attempts_max must be between 1 and ATTEMPTS_MAX_LIMIT",
            ),
            (self.backoff_max.is_zero(), "backoff_max must be positive"),
            (
                self.backoff_initial > self.backoff_max,
                "backoff_initial must not exceed backoff_max",
            ),
            (
                !(0.0..=1.0).contains(&self.backoff_jitter_ratio),
                "backoff_jitter_ratio must be between 0 and 1",
            ),
            (
                !(RETRY_BUDGET_TTL_MIN..=RETRY_BUDGET_TTL_MAX).contains(&self.retry_budget.ttl),
                "retry_budget.ttl must be between 1 and 60 seconds",
            ),
            (
                !(0.0..=RETRY_BUDGET_RATIO_MAX).contains(&self.retry_budget.retry_ratio),
                "retry_budget.retry_ratio must be between 0 and 1000",
            ),
            (
                self.retry_budget.retries_min_per_second >= i32::MAX as u32,
                "retry_budget.retries_min_per_second is too large",
            ),
        ];
        first_invalid(checks)?;
        self.circuit_breaker.validate()
    }
}

impl CircuitBreakerOptions {
    /// Checks every option; the first one out of range is reported.
    pub fn validate(&self) -> Result<(), BuildError> {
        let checks = [
            (
                self.failures_consecutive_max == 0,
                "failures_consecutive_max must be positive",
            ),
            (
                !(self.failure_rate_max > 0.0 && self.failure_rate_max <= 1.0),
                "failure_rate_max must be in (0, 1]",
            ),
            (
                self.failure_window.is_zero(),
                "failure_window must be positive",
            ),
            (
                self.open_duration.is_zero(),
                "open_duration must be positive",
            ),
            (
                self.half_open_probes == 0,
                "half_open_probes must be positive",
            ),
        ];
        first_invalid(checks)
    }
}

/// Reports the first check that found its option invalid.
fn first_invalid<const N: usize>(checks: [(bool, &'static str); N]) -> Result<(), BuildError> {
    match checks.into_iter().find(|(is_invalid, _)| *is_invalid) {
        Some((_, reason)) => Err(BuildError::InvalidOption { reason }),
        None => Ok(()),
    }
}
