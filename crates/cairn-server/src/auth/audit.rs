//! The audit trail: every refused request (401, 403, 429 `rate_limited`),
//! every token created, rotated or revoked and every admin action, as a
//! structured log line (target `cairn::audit`), a metric by outcome
//! (`cairn_auth_requests_total`) and an entry in the store's trail, which
//! admins read at `GET /v1/audit` and which survives restarts.
//!
//! A flood of refusals must neither fill the disk nor slow the server, so
//! refusals are aggregated: per (identity, method, route, outcome) and
//! [`super::FLUSH_INTERVAL`], the first is logged at once and the trail
//! gets one entry with the count when the window is flushed. At most
//! [`AGGREGATES_MAX`] such keys are kept per window; refusals beyond them
//! are counted under one `*` key. The trail keeps at most
//! `cairn_store::AUDIT_ENTRIES_MAX` entries. Admin actions are written
//! through before they are answered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cairn_store::{AuditRecord, IdentityStore};
use prometheus::{IntCounter, IntCounterVec};

use super::registry::unix_ms;

/// Distinct refusal keys kept per flush window.
pub const AGGREGATES_MAX: usize = 1_024;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    identity: String,
    method: String,
    route: String,
    outcome: &'static str,
}

struct Aggregate {
    first_at_ms: u64,
    status: u16,
    count: u64,
}

/// The audit trail of one server; see the module documentation.
pub struct Audit {
    store: Arc<dyn IdentityStore>,
    outcomes: IntCounterVec,
    /// `outcomes` of `ok`, resolved once: it is counted on every request.
    accepted: IntCounter,
    refusals: Mutex<HashMap<Key, Aggregate>>,
}

impl Audit {
    /// An audit trail into `store`.
    pub fn new(store: Arc<dyn IdentityStore>) -> Audit {
        let outcomes = IntCounterVec::new(
            prometheus::Opts::new(
                "cairn_auth_requests_total",
                "Requests by access-control outcome (ok, unauthenticated, forbidden, rate_limited)",
            ),
            &["outcome"],
        )
        .expect("valid counter definition");
        Audit {
            store,
            accepted: outcomes.with_label_values(&["ok"]),
            outcomes,
            refusals: Mutex::new(HashMap::new()),
        }
    }

    /// The counter of requests by outcome, to register with the metrics.
    pub fn outcomes(&self) -> IntCounterVec {
        self.outcomes.clone()
    }

    /// Counts an accepted request.
    pub fn accepted(&self) {
        self.accepted.inc();
    }

    /// Records a refused request (aggregated; see the module documentation).
    pub fn refused(
        &self,
        identity: &str,
        method: &str,
        route: &str,
        outcome: &'static str,
        status: u16,
    ) {
        self.outcomes.with_label_values(&[outcome]).inc();
        let mut key = Key {
            identity: identity.to_string(),
            method: method.to_string(),
            route: route.to_string(),
            outcome,
        };
        let mut refusals = self.refusals.lock().expect("lock poisoned");
        if !refusals.contains_key(&key) && refusals.len() >= AGGREGATES_MAX {
            key = Key {
                identity: "*".to_string(),
                method: "*".to_string(),
                route: "*".to_string(),
                outcome,
            };
        }
        let aggregate = refusals.entry(key).or_insert_with(|| {
            tracing::warn!(
                target: "cairn::audit",
                identity,
                method,
                route,
                outcome,
                status,
                "request refused (repeats in this window are counted, not logged)"
            );
            Aggregate {
                first_at_ms: unix_ms(),
                status,
                count: 0,
            }
        });
        aggregate.count += 1;
    }

    /// Records an admin action or a token change, durably, before the
    /// caller answers.
    pub async fn action(
        &self,
        identity: &str,
        method: &str,
        route: &str,
        outcome: &str,
        status: u16,
        detail: String,
    ) {
        tracing::info!(target: "cairn::audit", identity, method, route, outcome, status, detail = %detail, "admin action");
        let record = AuditRecord {
            seq: 0,
            at_ms: unix_ms(),
            identity: identity.to_string(),
            method: method.to_string(),
            route: route.to_string(),
            outcome: outcome.to_string(),
            status,
            count: 1,
            detail,
        };
        if let Err(error) = self.store.append_audit(vec![record]).await {
            tracing::error!(target: "cairn::audit", %error, "could not write the audit trail");
        }
    }

    /// Writes the refusals aggregated since the last flush to the trail.
    pub async fn flush(&self) {
        let refusals = std::mem::take(&mut *self.refusals.lock().expect("lock poisoned"));
        if refusals.is_empty() {
            return;
        }
        let mut records: Vec<AuditRecord> = refusals
            .into_iter()
            .map(|(key, aggregate)| AuditRecord {
                seq: 0,
                at_ms: aggregate.first_at_ms,
                identity: key.identity,
                method: key.method,
                route: key.route,
                outcome: key.outcome.to_string(),
                status: aggregate.status,
                count: aggregate.count,
                detail: String::new(),
            })
            .collect();
        records.sort_by_key(|record| record.at_ms);
        if let Err(error) = self.store.append_audit(records).await {
            tracing::error!(target: "cairn::audit", %error, "could not write the audit trail");
        }
    }
}
