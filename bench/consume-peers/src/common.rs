//! Pieces shared by every peer: the stamped 256-byte payload, the shared consume progress that
//! tells all consumer tasks when the backlog is done, and the latency histogram.
//!
//! Publisher and consumers run in the same process, so the send stamp is a monotonic clock
//! reading (nanoseconds since a base `Instant` taken at start) and no clock sync is involved.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use tokio::task::JoinHandle;

/// Size of every message body, the same for every peer (see /work/shared/PEERS.md).
pub const PAYLOAD_BYTES: usize = 256;
/// The send stamp is written as this many ASCII decimal digits at the start of the payload
/// (ASCII so that PostgreSQL can keep the payload in a `text` column).
const STAMP_DIGITS: usize = 20;
/// Largest latency the histogram records, in microseconds (one minute); larger values saturate.
const LATENCY_MAX_US: u64 = 60_000_000;
/// Significant figures kept by the histogram.
const LATENCY_SIGNIFICANT_FIGURES: u8 = 3;
/// How long a consumer waits for the next message before it checks whether the others have
/// already finished the backlog (or the phase deadline passed).
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The process-wide base for send stamps.
#[derive(Clone, Copy)]
pub struct Clock {
    base: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
        }
    }

    /// A payload of `PAYLOAD_BYTES` whose first digits hold the current time since the base.
    pub fn stamped_payload(&self) -> String {
        let nanos = self.base.elapsed().as_nanos();
        let mut payload = format!("{nanos:0width$}", width = STAMP_DIGITS);
        payload.push_str(&"x".repeat(PAYLOAD_BYTES - STAMP_DIGITS));
        payload
    }

    /// Microseconds from the stamp in `payload` until now.
    pub fn age_us(&self, payload: &[u8]) -> Result<u64> {
        let digits = payload
            .get(..STAMP_DIGITS)
            .context("payload shorter than the stamp")?;
        let stamp_nanos: u128 = std::str::from_utf8(digits)?
            .parse()
            .context("payload stamp is not a number")?;
        let now_nanos = self.base.elapsed().as_nanos();
        Ok((now_nanos.saturating_sub(stamp_nanos) / 1_000) as u64)
    }
}

/// The unstamped payload used for backlogs (its stamp digits are zeros).
pub fn backlog_payload() -> String {
    let mut payload = "0".repeat(STAMP_DIGITS);
    payload.push_str(&"x".repeat(PAYLOAD_BYTES - STAMP_DIGITS));
    payload
}

/// Progress of one consume phase, shared by all its consumer tasks.
pub struct ConsumeProgress {
    acked: AtomicU64,
    target: u64,
    finished_at: Mutex<Option<Instant>>,
}

impl ConsumeProgress {
    /// Progress towards `target` durably acknowledged messages.
    pub fn new(target: u64) -> Arc<Self> {
        Arc::new(Self {
            acked: AtomicU64::new(0),
            target,
            finished_at: Mutex::new(None),
        })
    }

    /// Counts `count` more acknowledged messages; the call that reaches the target records
    /// the finish time.
    pub fn add(&self, count: u64) {
        let before = self.acked.fetch_add(count, Ordering::SeqCst);
        if before < self.target && before + count >= self.target {
            if let Ok(mut finished_at) = self.finished_at.lock() {
                *finished_at = Some(Instant::now());
            }
        }
    }

    /// Whether the target has been reached.
    pub fn is_done(&self) -> bool {
        self.acked.load(Ordering::SeqCst) >= self.target
    }

    /// Messages acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    /// When the target was reached, if it was.
    pub fn finished_at(&self) -> Option<Instant> {
        self.finished_at.lock().ok().and_then(|guard| *guard)
    }
}

/// Result of one consume phase.
pub struct ConsumeReport {
    /// Messages durably acknowledged.
    pub acked: u64,
    /// Seconds from the start signal until the last acknowledgement (or the deadline).
    pub elapsed: Duration,
    /// Messages still in the queue after the phase (should be 0).
    pub left: u64,
}

/// Publish-to-handler latencies of one latency phase.
pub struct LatencyReport {
    /// Messages the publisher sent and had confirmed.
    pub published: u64,
    /// Histogram of handler latencies in microseconds.
    pub histogram: Histogram<u64>,
    /// Seconds the publisher ran.
    pub publish_elapsed: Duration,
}

/// A histogram for latencies in microseconds.
pub fn latency_histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(
        1,
        LATENCY_MAX_US,
        LATENCY_SIGNIFICANT_FIGURES,
    )?)
}

/// Records one latency, saturating at the histogram's upper bound.
pub fn record_latency(histogram: &mut Histogram<u64>, latency_us: u64) {
    histogram.saturating_record(latency_us.max(1));
}

/// The instant at which message `index` of a fixed-rate publisher is due.
pub fn due_at(start: Instant, index: u64, rate_per_s: u64) -> Instant {
    start + Duration::from_nanos(index.saturating_mul(1_000_000_000) / rate_per_s.max(1))
}

/// A latency publisher that cannot keep its rate gives up after this multiple of the planned
/// publish duration (the peer is then reported with a lower publish rate).
const LATENCY_SLOWDOWN_MAX: u32 = 10;

/// When a fixed-rate publisher that started at `start` gives up.
pub fn publish_deadline(start: Instant, duration: Duration) -> Instant {
    start + duration * LATENCY_SLOWDOWN_MAX
}

/// The latest a latency consumer started now keeps running, whatever happens.
pub fn consumer_hard_deadline(duration: Duration, drain_grace: Duration) -> Instant {
    Instant::now() + duration * LATENCY_SLOWDOWN_MAX + drain_grace
}

/// Set when the latency consumer should stop (publisher done and drain grace over).
pub type StopFlag = Arc<AtomicBool>;

/// Whether the latency consumer was told to stop.
pub fn stop_requested(stop: &AtomicBool) -> bool {
    stop.load(Ordering::SeqCst)
}

/// After the publisher is done: gives the consumer `drain_grace` to receive the rest, then
/// tells it to stop, and returns its histogram.
pub async fn finish_latency_consumer(
    mut consumer_task: JoinHandle<Result<Histogram<u64>>>,
    stop: &AtomicBool,
    drain_grace: Duration,
) -> Result<Histogram<u64>> {
    if let Ok(joined) = tokio::time::timeout(drain_grace, &mut consumer_task).await {
        return joined?;
    }
    stop.store(true, Ordering::SeqCst);
    consumer_task.await?
}
