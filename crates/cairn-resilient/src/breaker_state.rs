//! The circuit breaker's state machine, pure: it takes the current time and
//! call outcomes and decides whether the next call may go. No clock, no I/O,
//! so every transition is unit-tested with made-up instants.

use std::collections::VecDeque;
use std::time::Instant;

use crate::limits::BREAKER_WINDOW_OUTCOMES_MAX;
use crate::options::CircuitBreakerOptions;

/// The state of a circuit, as reported for metrics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls fail fast without reaching the server.
    Open,
    /// A bounded number of probe calls go through to test the server.
    HalfOpen,
}

/// How a call was let through, which decides how its outcome is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// A call made while closed.
    Normal,
    /// A probe made while half-open.
    Probe,
}

/// What became of an admitted call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered in a healthy way (including 4xx).
    Success,
    /// A timeout, transport failure or 5xx.
    Failure,
    /// The caller dropped the call before it ended; it says nothing about the server.
    Cancelled,
}

#[derive(Debug)]
enum Phase {
    Closed,
    Open {
        until: Instant,
    },
    HalfOpen {
        probes_in_flight: u32,
        probes_succeeded: u32,
    },
}

/// Decisions of one circuit breaker.
#[derive(Debug)]
pub struct BreakerState {
    options: CircuitBreakerOptions,
    phase: Phase,
    failures_consecutive: u32,
    /// (when, failed) for recent calls while closed, oldest first.
    window: VecDeque<(Instant, bool)>,
}

impl BreakerState {
    /// A closed circuit with the given thresholds (already validated).
    pub fn new(options: CircuitBreakerOptions) -> Self {
        BreakerState {
            options,
            phase: Phase::Closed,
            failures_consecutive: 0,
            window: VecDeque::new(),
        }
    }

    /// The state at `now`; an open circuit whose time is up reports half-open.
    pub fn state(&mut self, now: Instant) -> CircuitState {
        self.expire_open(now);
        match self.phase {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { .. } => CircuitState::Open,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Whether a call may go at `now`; `None` means fail fast.
    pub fn try_admit(&mut self, now: Instant) -> Option<Admission> {
        self.expire_open(now);
        match &mut self.phase {
            Phase::Closed => Some(Admission::Normal),
            Phase::Open { .. } => None,
            Phase::HalfOpen {
                probes_in_flight,
                probes_succeeded,
            } => {
                if *probes_in_flight + *probes_succeeded >= self.options.half_open_probes {
                    return None;
                }
                *probes_in_flight += 1;
                Some(Admission::Probe)
            }
        }
    }

    /// Counts the outcome of a call admitted as `admission`. Outcomes of calls
    /// admitted under an earlier state (a slow call finishing after the circuit
    /// opened) are ignored: they describe the past.
    pub fn record(&mut self, now: Instant, admission: Admission, outcome: Outcome) {
        match (&mut self.phase, admission) {
            (Phase::Closed, Admission::Normal) => self.record_closed(now, outcome),
            (
                Phase::HalfOpen {
                    probes_in_flight,
                    probes_succeeded,
                },
                Admission::Probe,
            ) => {
                *probes_in_flight = probes_in_flight.saturating_sub(1);
                match outcome {
                    Outcome::Cancelled => {}
                    Outcome::Failure => self.open(now),
                    Outcome::Success => {
                        *probes_succeeded += 1;
                        if *probes_succeeded >= self.options.half_open_probes {
                            self.phase = Phase::Closed;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn record_closed(&mut self, now: Instant, outcome: Outcome) {
        let failed = match outcome {
            Outcome::Cancelled => return,
            Outcome::Success => false,
            Outcome::Failure => true,
        };
        self.failures_consecutive = if failed {
            self.failures_consecutive + 1
        } else {
            0
        };
        if self.window.len() == BREAKER_WINDOW_OUTCOMES_MAX {
            self.window.pop_front();
        }
        self.window.push_back((now, failed));
        while let Some((when, _)) = self.window.front() {
            if now.saturating_duration_since(*when) <= self.options.failure_window {
                break;
            }
            self.window.pop_front();
        }
        let failures = self.window.iter().filter(|(_, failed)| *failed).count();
        let calls = self.window.len();
        let rate_exceeded = calls >= self.options.failure_window_calls_min as usize
            && failures as f64 >= self.options.failure_rate_max * calls as f64;
        if self.failures_consecutive >= self.options.failures_consecutive_max || rate_exceeded {
            self.open(now);
        }
    }

    fn open(&mut self, now: Instant) {
        self.phase = Phase::Open {
            until: now + self.options.open_duration,
        };
        self.failures_consecutive = 0;
        self.window.clear();
    }

    fn expire_open(&mut self, now: Instant) {
        if let Phase::Open { until } = self.phase {
            if now >= until {
                self.phase = Phase::HalfOpen {
                    probes_in_flight: 0,
                    probes_succeeded: 0,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn options() -> CircuitBreakerOptions {
        CircuitBreakerOptions {
            failures_consecutive_max: 3,
            failure_rate_max: 0.5,
            failure_window: Duration::from_secs(10),
            failure_window_calls_min: 6,
            open_duration: Duration::from_secs(1),
            half_open_probes: 2,
        }
    }

    fn call(breaker: &mut BreakerState, now: Instant, outcome: Outcome) {
        let admission = breaker.try_admit(now).expect("admitted");
        breaker.record(now, admission, outcome);
    }

    #[test]
    fn consecutive_failures_open_and_a_success_resets_the_count() {
        let mut breaker = BreakerState::new(options());
        let start = Instant::now();
        call(&mut breaker, start, Outcome::Failure);
        call(&mut breaker, start, Outcome::Failure);
        call(&mut breaker, start, Outcome::Success);
        call(&mut breaker, start, Outcome::Failure);
        call(&mut breaker, start, Outcome::Cancelled);
        call(&mut breaker, start, Outcome::Failure);
        assert_eq!(breaker.state(start), CircuitState::Closed);
        call(&mut breaker, start, Outcome::Failure);
        assert_eq!(breaker.state(start), CircuitState::Open);
        assert_eq!(breaker.try_admit(start), None);
    }

    #[test]
    fn failure_rate_in_the_window_opens_once_enough_calls_were_seen() {
        let mut breaker = BreakerState::new(options());
        let start = Instant::now();
        for _ in 0..2 {
            call(&mut breaker, start, Outcome::Failure);
            call(&mut breaker, start, Outcome::Success);
        }
        call(&mut breaker, start, Outcome::Failure);
        assert_eq!(
            breaker.state(start),
            CircuitState::Closed,
            "5 calls < calls_min"
        );
        call(&mut breaker, start, Outcome::Success);
        assert_eq!(breaker.state(start), CircuitState::Open, "3 of 6 failed");
    }

    #[test]
    fn half_open_bounds_probes_then_closes_or_reopens() {
        let mut breaker = BreakerState::new(options());
        let start = Instant::now();
        for _ in 0..3 {
            call(&mut breaker, start, Outcome::Failure);
        }
        let later = start + Duration::from_secs(1);
        assert_eq!(breaker.state(later), CircuitState::HalfOpen);
        let first = breaker.try_admit(later).expect("first probe");
        let second = breaker.try_admit(later).expect("second probe");
        assert_eq!(breaker.try_admit(later), None, "only two probes at once");
        breaker.record(later, first, Outcome::Success);
        assert_eq!(
            breaker.try_admit(later),
            None,
            "one success and one in flight"
        );
        breaker.record(later, Admission::Normal, Outcome::Failure);
        assert_eq!(
            breaker.state(later),
            CircuitState::HalfOpen,
            "stale outcome ignored"
        );
        breaker.record(later, second, Outcome::Success);
        assert_eq!(breaker.state(later), CircuitState::Closed);

        for _ in 0..3 {
            call(&mut breaker, later, Outcome::Failure);
        }
        let probe_time = later + Duration::from_secs(1);
        call(&mut breaker, probe_time, Outcome::Failure);
        assert_eq!(breaker.state(probe_time), CircuitState::Open);
    }
}
