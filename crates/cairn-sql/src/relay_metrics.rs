//! [`RelayMetrics`]: what an outbox relay has done since it was built and
//! what it last saw in the outbox, read through [`crate::RelayHandle`] for a
//! service's metrics endpoint; and the atomic counters behind it.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a relay's counters. The `n_*_total` counts only grow
/// while the relay lives (export them as counters); `n_pending` and
/// `n_dead_letters` are gauges counted in the database by the relay after
/// its passes, at most every
/// [`RELAY_METRICS_REFRESH_INTERVAL`](crate::limits::RELAY_METRICS_REFRESH_INTERVAL)
/// (an idle relay counts at each poll).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayMetrics {
    /// Facts this relay published and marked sent.
    pub n_published_total: u64,
    /// Rows this relay set aside as dead letters.
    pub n_dead_lettered_total: u64,
    /// Passes that failed and were retried after a backoff (Cairn or the
    /// database unavailable, or a refusal that is not about the facts).
    pub n_retries_total: u64,
    /// Rows waiting to be published (the backlog), when last counted.
    pub n_pending: u64,
    /// Dead letters in the outbox, when last counted (also those set aside
    /// by other relays, and not yet retried or discarded).
    pub n_dead_letters: u64,
}

/// The live counters a relay updates and its handles read.
#[derive(Debug, Default)]
pub(crate) struct RelayCounters {
    n_published_total: AtomicU64,
    n_dead_lettered_total: AtomicU64,
    n_retries_total: AtomicU64,
    n_pending: AtomicU64,
    n_dead_letters: AtomicU64,
}

impl RelayCounters {
    /// Counts `n_facts` more published facts.
    pub fn add_published(&self, n_facts: u64) {
        self.n_published_total.fetch_add(n_facts, Ordering::Relaxed);
    }

    /// Counts one more row set aside.
    pub fn add_dead_lettered(&self) {
        self.n_dead_lettered_total.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one more failed pass.
    pub fn add_retry(&self) {
        self.n_retries_total.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the counts of the outbox as just read.
    pub fn set_backlog(&self, n_pending: u64, n_dead_letters: u64) {
        self.n_pending.store(n_pending, Ordering::Relaxed);
        self.n_dead_letters.store(n_dead_letters, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> RelayMetrics {
        RelayMetrics {
            n_published_total: self.n_published_total.load(Ordering::Relaxed),
            n_dead_lettered_total: self.n_dead_lettered_total.load(Ordering::Relaxed),
            n_retries_total: self.n_retries_total.load(Ordering::Relaxed),
            n_pending: self.n_pending.load(Ordering::Relaxed),
            n_dead_letters: self.n_dead_letters.load(Ordering::Relaxed),
        }
    }
}
