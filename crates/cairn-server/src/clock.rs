//! The delivery clock (leases, delays, backoff): a cheap-to-clone handle
//! that each delivery engine is given when it is built, rather than a
//! process-wide global, so that tests can run engines on simulated time
//! side by side.
//!
//! Delivery times are persisted as milliseconds since the Unix epoch, so
//! in production they must mean the same after a restart: the clock is the
//! system clock. Real clocks jump (NTP steps, a VM resumed, an operator's
//! mistake); the reliability checker models that by shifting a server's
//! clock while it runs (`cairn serve --fault-clock-file`, see
//! [`Clock::follow_offset_file`]), and the delivery guarantees must hold
//! whatever the jumps. A simulated clock ([`Clock::simulated`]) moves only
//! when a test moves it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the fault clock file is read.
const CLOCK_FILE_POLL_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug)]
enum Source {
    /// The system clock plus an offset (negative: behind) that fault
    /// injection moves.
    System { offset_ms: AtomicI64 },
    /// A time that only [`Clock::advance_ms`] and [`Clock::set_ms`] move.
    Simulated { now_ms: AtomicU64 },
}

/// Milliseconds since the Unix epoch, the time base of delivery state.
/// Clones share one clock.
#[derive(Clone, Debug)]
pub struct Clock {
    source: Arc<Source>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock {
            source: Arc::new(Source::System {
                offset_ms: AtomicI64::new(0),
            }),
        }
    }

    /// A simulated clock standing at `start_ms`.
    pub fn simulated(start_ms: u64) -> Clock {
        Clock {
            source: Arc::new(Source::Simulated {
                now_ms: AtomicU64::new(start_ms),
            }),
        }
    }

    /// The time now.
    pub fn now_ms(&self) -> u64 {
        match &*self.source {
            Source::System { offset_ms } => {
                let system_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |elapsed| elapsed.as_millis() as i64);
                system_ms
                    .saturating_add(offset_ms.load(Ordering::Relaxed))
                    .max(0) as u64
            }
            Source::Simulated { now_ms } => now_ms.load(Ordering::Acquire),
        }
    }

    /// Moves a system clock to the system time plus `offset_ms` (fault
    /// injection). A simulated clock is moved with [`Clock::set_ms`].
    pub fn set_offset_ms(&self, offset_ms: i64) {
        match &*self.source {
            Source::System { offset_ms: offset } => offset.store(offset_ms, Ordering::Relaxed),
            Source::Simulated { .. } => panic!("a simulated clock has no offset"),
        }
    }

    /// Moves a simulated clock on by `delta_ms`.
    pub fn advance_ms(&self, delta_ms: u64) {
        match &*self.source {
            Source::Simulated { now_ms } => {
                now_ms.fetch_add(delta_ms, Ordering::AcqRel);
            }
            Source::System { .. } => panic!("only a simulated clock is advanced by hand"),
        }
    }

    /// Sets a simulated clock to `time_ms` (either way).
    pub fn set_ms(&self, time_ms: u64) {
        match &*self.source {
            Source::Simulated { now_ms } => now_ms.store(time_ms, Ordering::Release),
            Source::System { .. } => panic!("only a simulated clock is set by hand"),
        }
    }

    /// Test-only fault injection: follows a file holding the clock offset
    /// in milliseconds (a signed decimal integer; missing or unreadable
    /// means unchanged), read at once and then every 50 ms until the
    /// process ends, so that the clock is moved before anything (the timer
    /// scheduler) reads it at start. Needs a tokio runtime.
    pub fn follow_offset_file(&self, path: PathBuf) {
        let clock = self.clone();
        let mut current_ms = 0;
        if let Some(offset_ms) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
        {
            current_ms = offset_ms;
            clock.set_offset_ms(offset_ms);
            tracing::warn!(offset_ms, "fault injection: the clock jumped");
        }
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(CLOCK_FILE_POLL_INTERVAL);
            loop {
                interval.tick().await;
                let Ok(text) = tokio::fs::read_to_string(&path).await else {
                    continue;
                };
                match text.trim().parse::<i64>() {
                    Ok(offset_ms) => {
                        if offset_ms != current_ms {
                            current_ms = offset_ms;
                            clock.set_offset_ms(offset_ms);
                            tracing::warn!(offset_ms, "fault injection: the clock jumped");
                        }
                    }
                    Err(_) => {
                        tracing::warn!(path = %path.display(), "ignoring a malformed clock offset file")
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_moves_the_clock_both_ways_and_clones_share_it() {
        let clock = Clock::system();
        let other = Clock::system();
        let shared = clock.clone();
        let before = clock.now_ms();
        clock.set_offset_ms(3_600_000);
        let ahead = shared.now_ms();
        assert!(other.now_ms() < ahead, "another clock does not move");
        clock.set_offset_ms(-3_600_000);
        let behind = clock.now_ms();
        clock.set_offset_ms(0);
        assert!(ahead >= before + 3_600_000);
        assert!(ahead - behind >= 7_199_000);
        assert!(clock.now_ms() >= before);
    }

    #[test]
    fn a_simulated_clock_moves_only_when_told() {
        let clock = Clock::simulated(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance_ms(250);
        assert_eq!(clock.clone().now_ms(), 1_250);
        clock.set_ms(900);
        assert_eq!(clock.now_ms(), 900);
    }
}
