//! [`LeaseTracker`]: which running handlers' leases need renewing. Pure (the
//! caller passes the time), so its rule is tested without a server: a lease
//! is renewed once half of it has passed since it was granted or last
//! renewed, leaving the other half for the renewal to arrive.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Leases of the messages whose handlers are running.
#[derive(Debug)]
pub(crate) struct LeaseTracker {
    lease: Duration,
    renewed_at: HashMap<String, Instant>,
}

impl LeaseTracker {
    /// Tracks leases of length `lease`.
    pub fn new(lease: Duration) -> LeaseTracker {
        LeaseTracker {
            lease,
            renewed_at: HashMap::new(),
        }
    }

    /// A handler started on a message leased at `leased_at`.
    pub fn insert(&mut self, token: String, leased_at: Instant) {
        self.renewed_at.insert(token, leased_at);
    }

    /// The handler finished (or the lease was lost): stop renewing.
    pub fn remove(&mut self, token: &str) {
        self.renewed_at.remove(token);
    }

    /// The lease was renewed at `renewed_at` (still tracked only if the
    /// handler is still running).
    pub fn renewed(&mut self, token: &str, renewed_at: Instant) {
        if let Some(entry) = self.renewed_at.get_mut(token) {
            *entry = (*entry).max(renewed_at);
        }
    }

    /// Tokens whose lease is at least half used at `now`.
    pub fn due(&self, now: Instant) -> Vec<String> {
        let half = self.lease / 2;
        self.renewed_at
            .iter()
            .filter(|(_, renewed_at)| now.saturating_duration_since(**renewed_at) >= half)
            .map(|(token, _)| token.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_due_at_half_and_renewal_resets_them() {
        let start = Instant::now();
        let mut tracker = LeaseTracker::new(Duration::from_millis(1_000));
        tracker.insert("a".to_string(), start);
        tracker.insert("b".to_string(), start + Duration::from_millis(300));
        assert!(tracker.due(start + Duration::from_millis(499)).is_empty());
        assert_eq!(tracker.due(start + Duration::from_millis(500)), vec!["a"]);
        tracker.renewed("a", start + Duration::from_millis(500));
        let mut due = tracker.due(start + Duration::from_millis(900));
        due.sort();
        assert_eq!(due, vec!["b"]);
        tracker.remove("b");
        tracker.renewed("b", start);
        assert_eq!(tracker.due(start + Duration::from_millis(1_000)), vec!["a"]);
    }
}
