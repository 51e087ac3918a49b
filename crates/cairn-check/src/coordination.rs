//! The run's collaboration decisions, gathered in one place for the
//! workload, the history and the oracle: claims ([`crate::claims`]) and
//! leases with fenced writes ([`crate::fences`]), and durable timers
//! ([`crate::timers`]). Each kind has its own
//! module with the same four parts — the tasks that drive it, what the
//! history records of their answers, what one server's log holds of its
//! decisions (the `Cairn.*` facts and the workload's own facts), and the
//! judge that compares the two — and this module joins them, so that the
//! oracle reads each server's log once and hands every entry here.
//!
//! A new kind joins the same way: its module, a field in
//! [`CoordinationRecords`] and in [`DecisionLog`], an arm in
//! [`DecisionLog::observe`], its checks in [`CHECKS`], and a call in
//! [`judge`], [`judge_history`] and [`summary`].

use std::time::Duration;

use cairn_delivery::SplitMix64;
use cairn_fact::Hash;
use serde_json::Value;

use crate::api::Answer;
use crate::claims::{self, ClaimLog, ClaimRecords};
use crate::fences::{self, FenceLog, FenceRecords};
use crate::oracle::Verdicts;
use crate::report::CoordinationSummary;
use crate::timers::{self, TimerLog, TimerRecords};
use crate::workload::Workload;

/// Attempts of one coordination request or write before the task gives up
/// on it (as a client would; the outcome then stays unknown).
pub const ATTEMPTS_MAX: usize = 3;
/// How much longer each pause after an attempt without an answer is than
/// the one before: the attempts then span a server's restart after a kill
/// (about a second) instead of all failing fast within it, which left
/// many outcomes unknown on the embedded store's single server.
const RETRY_PAUSE_STEP_MS: u64 = 500;

/// The pause after attempt `attempt` (from 0) got no answer.
pub fn retry_pause(random: &mut SplitMix64, attempt: usize) -> Duration {
    Duration::from_millis(random.in_range(20, 200) + RETRY_PAUSE_STEP_MS * attempt as u64)
}

/// The checks of the coordination decisions, in report order.
pub const CHECKS: [&str; 10] = [
    claims::ONE_WINNER,
    claims::ANSWERS_MATCH_LOG,
    claims::NO_GOING_BACK,
    fences::FENCES_INCREASE,
    fences::ONLY_CURRENT_FENCE,
    fences::STALE_NOT_STORED,
    timers::AT_MOST_ONCE,
    timers::NO_PHANTOM,
    timers::AT_LEAST_ONCE,
    timers::DELETED_DO_NOT_FIRE,
];

/// What the coordination tasks recorded.
#[derive(Debug, Default)]
pub struct CoordinationRecords {
    /// Claims and releases with their answers.
    pub claims: ClaimRecords,
    /// Lease grants and fenced writes with their outcomes.
    pub fences: FenceRecords,
    /// Timers set and deleted with their answers, and the clock jumps.
    pub timers: TimerRecords,
}

/// What one server's log holds of the run's coordination decisions.
#[derive(Debug)]
pub struct DecisionLog {
    /// `Cairn.Claimed` and `Cairn.ClaimReleased` of the run's keys.
    pub claims: ClaimLog,
    /// `Cairn.LeaseGranted`, `Cairn.LeaseReleased` of the run's leases and
    /// the run's fenced facts.
    pub fences: FenceLog,
    /// The occurrences of the run's timers.
    pub timers: TimerLog,
}

impl DecisionLog {
    /// An empty log of run `run_id`'s decisions.
    pub fn new(run_id: &str) -> DecisionLog {
        DecisionLog {
            claims: ClaimLog::new(run_id),
            fences: FenceLog::new(run_id),
            timers: TimerLog::new(run_id),
        }
    }

    /// True when a fact of type `fact_type` may be a decision of the run
    /// (cheap: the oracle then checks its hash and calls `observe`).
    pub fn wants(fact_type: &str) -> bool {
        claims::TYPES.contains(&fact_type)
            || fences::TYPES.contains(&fact_type)
            || timers::TYPES.contains(&fact_type)
    }

    /// Keeps the log entry `fact` (whose bytes hash to `hash`) at `seq` if
    /// it is one of the run's decisions; entries of other runs are skipped.
    pub fn observe(&mut self, seq: u64, hash: Hash, fact: &Value) {
        let fact_type = fact["type"].as_str().unwrap_or_default();
        if claims::TYPES.contains(&fact_type) {
            self.claims.observe(seq, hash, fact);
        } else if fences::TYPES.contains(&fact_type) {
            self.fences.observe(seq, hash, fact);
        } else if timers::TYPES.contains(&fact_type) {
            self.timers.observe(seq, hash, fact);
        }
    }
}

/// Judges what one server's log holds against the recorded answers.
pub fn judge(
    server_idx: usize,
    log: &DecisionLog,
    records: &CoordinationRecords,
    verdicts: &mut Verdicts,
) {
    claims::judge(server_idx, &log.claims, &records.claims, verdicts);
    fences::judge(server_idx, &log.fences, &records.fences, verdicts);
    timers::judge(server_idx, &log.timers, &records.timers, verdicts);
}

/// Judges the recorded answers among themselves (once, not per server).
pub fn judge_history(records: &CoordinationRecords, verdicts: &mut Verdicts) {
    claims::judge_history(&records.claims, verdicts);
    timers::judge_history(&records.timers, verdicts);
}

/// What the coordination came to, with what the first server's log holds.
pub fn summary(
    records: &CoordinationRecords,
    first_log: Option<&DecisionLog>,
) -> CoordinationSummary {
    let mut summary = CoordinationSummary::default();
    claims::summarize(
        &records.claims,
        first_log.map(|log| &log.claims),
        &mut summary,
    );
    fences::summarize(
        &records.fences,
        first_log.map(|log| &log.fences),
        &mut summary,
    );
    timers::summarize(
        &records.timers,
        first_log.map(|log| &log.timers),
        &mut summary,
    );
    summary
}

/// How a workload fact (a claimant, a fenced fact) was answered.
pub enum Written {
    /// Acknowledged at this seq.
    Acked(u64),
    /// Refused with this status and code (the last attempt's).
    Refused(u16, String),
    /// No definite answer to any attempt, or a refusal after an attempt
    /// without an answer (that attempt may have been stored).
    Unknown,
}

/// Writes one fact, retrying attempts without a definite answer (and
/// overloaded ones) through random servers, as a client would. With
/// `fence` (lease name and fence), the write carries `Cairn-Fence`. A
/// refusal after an attempt whose answer was lost is unknown: that first
/// attempt may have been stored.
pub async fn write_one(
    workload: &Workload,
    fact: &Value,
    fence: Option<(&str, u64)>,
    random: &mut SplitMix64,
) -> Written {
    let facts = std::slice::from_ref(fact);
    let mut unanswered = false;
    let mut last_refusal = None;
    for attempt in 0..ATTEMPTS_MAX {
        let base = workload.random_base(random).to_string();
        workload
            .history
            .with(|recorded| recorded.counts.write_batches += 1);
        let answer = match fence {
            Some((lease, fence)) => {
                workload
                    .api
                    .post_facts_fenced(&base, facts, lease, fence)
                    .await
            }
            None => workload.api.post_facts(&base, facts).await,
        };
        match answer {
            Answer::Done(body) => {
                return Written::Acked(body["results"][0]["seq"].as_u64().unwrap_or(0))
            }
            // Overloaded: nothing was done; try again.
            Answer::Refused(429, code) => {
                last_refusal = Some((429, code));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Answer::Refused(status, code) => {
                return if unanswered {
                    Written::Unknown
                } else {
                    Written::Refused(status, code)
                };
            }
            Answer::Unknown(..) => {
                unanswered = true;
                tokio::time::sleep(retry_pause(random, attempt)).await;
            }
        }
    }
    match last_refusal {
        Some((status, code)) if !unanswered => Written::Refused(status, code),
        _ => Written::Unknown,
    }
}

/// The hash named by `role` among a fact's predecessors.
pub fn predecessor(fact: &Value, role: &str) -> Option<Hash> {
    Hash::from_hex(fact["predecessors"][role].as_str()?).ok()
}

/// The index at the end of a name `<prefix><index>` (a claim key or a
/// lease name of the run); `None` for names of other runs.
pub fn index_after(name: &str, prefix: &str) -> Option<usize> {
    name.strip_prefix(prefix)?.parse().ok()
}
