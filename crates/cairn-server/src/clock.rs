//! The server's wall clock for delivery state (leases, delays, backoff),
//! with an offset that fault injection can move.
//!
//! Delivery times are persisted as milliseconds since the Unix epoch, so
//! they must mean the same after a restart: the clock is the system clock.
//! Real clocks jump (NTP steps, a VM resumed, an operator's mistake); the
//! reliability checker models that by shifting this clock while the server
//! runs (`cairn serve --fault-clock-file`), and the delivery guarantees must
//! hold whatever the jumps. The offset is process-wide because the clock is.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds added to the system clock (negative: the clock is behind).
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// How often the fault clock file is read.
const CLOCK_FILE_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Milliseconds since the Unix epoch, the time base of delivery state.
pub fn now_ms() -> u64 {
    let system_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64);
    system_ms
        .saturating_add(OFFSET_MS.load(Ordering::Relaxed))
        .max(0) as u64
}

/// Moves the clock to the system clock plus `offset_ms`.
pub fn set_offset_ms(offset_ms: i64) {
    OFFSET_MS.store(offset_ms, Ordering::Relaxed);
}

/// Test-only fault injection: follows a file holding the clock offset in
/// milliseconds (a signed decimal integer; missing or unreadable means
/// unchanged), read every 50 ms until the process ends.
pub fn follow_offset_file(path: PathBuf) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(CLOCK_FILE_POLL_INTERVAL);
        loop {
            interval.tick().await;
            let Ok(text) = tokio::fs::read_to_string(&path).await else {
                continue;
            };
            match text.trim().parse::<i64>() {
                Ok(offset_ms) => {
                    if OFFSET_MS.swap(offset_ms, Ordering::Relaxed) != offset_ms {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_moves_the_clock_both_ways() {
        let before = now_ms();
        set_offset_ms(3_600_000);
        let ahead = now_ms();
        set_offset_ms(-3_600_000);
        let behind = now_ms();
        set_offset_ms(0);
        assert!(ahead >= before + 3_600_000);
        assert!(ahead - behind >= 7_199_000);
        assert!(now_ms() >= before);
    }
}
