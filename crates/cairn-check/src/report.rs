//! The report of a run: what was done, which faults were injected, and
//! each check with its verdict and counterexamples; printed for people and
//! written as JSON for tools.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::ring::LinkSummary;

/// Counterexamples quoted per check at most.
const COUNTEREXAMPLES_SHOWN_MAX: usize = 10;

/// One check of the oracle.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    /// The check's name, as the report prints it.
    pub name: String,
    /// How many things it examined (facts, messages, ...).
    pub examined: u64,
    /// Every violation found; empty means the check passed.
    pub counterexamples: Vec<String>,
}

impl CheckResult {
    /// True when no violation was found.
    pub fn passed(&self) -> bool {
        self.counterexamples.is_empty()
    }
}

/// What the writes came to.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WriteSummary {
    /// Facts the workload wrote (each once, whatever its attempts).
    pub facts_written: u64,
    /// Facts whose write was acknowledged.
    pub acknowledged: u64,
    /// Facts whose write was refused.
    pub refused: u64,
    /// No definite answer, and found stored at the end.
    pub unknown_stored: u64,
    /// No definite answer, and not stored at the end.
    pub unknown_absent: u64,
}

/// What the claims, lease grants, fenced writes and timers came to.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CoordinationSummary {
    /// Claims answered `won: true`.
    pub claims_won: u64,
    /// Claims answered `won: false` (another fact holds the key).
    pub claims_lost: u64,
    /// Claims refused.
    pub claims_refused: u64,
    /// Claims without an answer to any attempt.
    pub claims_unknown: u64,
    /// Releases answered `200`.
    pub claim_releases: u64,
    /// `Cairn.Claimed` facts of the run in the first server's log (keys
    /// won, generations counted).
    pub claim_generations_logged: u64,
    /// Distinct lease grants answered to the fenced writers.
    pub lease_grants: u64,
    /// `Cairn.LeaseGranted` facts of the run in the first server's log.
    pub lease_grants_logged: u64,
    /// Fenced writes acknowledged.
    pub fenced_acknowledged: u64,
    /// Fenced writes refused `stale_fence` at their first answer.
    pub fenced_refused_stale: u64,
    /// Fenced writes refused otherwise (every attempt overloaded).
    pub fenced_refused_other: u64,
    /// Fenced writes without a definite answer, found stored at the end.
    pub fenced_unknown_stored: u64,
    /// Fenced writes without a definite answer, not stored at the end.
    pub fenced_unknown_absent: u64,
    /// Timers the setters put (one-shots and crons), whatever the answer.
    pub timers_set: u64,
    /// Of them, cron timers.
    pub timers_cron: u64,
    /// `PUT`s acknowledged.
    pub timers_acknowledged: u64,
    /// `PUT`s refused at their first answer.
    pub timers_refused: u64,
    /// `PUT`s without a definite answer.
    pub timers_unknown: u64,
    /// `DELETE`s done (answered `200`, or `404` after an attempt without
    /// an answer).
    pub timers_deleted: u64,
    /// `DELETE`s refused at their first answer (`404`: the timer did not
    /// exist, as when its `PUT` never arrived).
    pub timer_deletes_refused: u64,
    /// `DELETE`s without a definite answer.
    pub timer_deletes_unknown: u64,
    /// Distinct timer occurrences in the first server's log.
    pub timer_occurrences_logged: u64,
    /// Occurrences that had to be stored after the heal.
    pub timer_occurrences_expected: u64,
    /// Of them, minutes of `catch_up: all` crons.
    pub timer_cron_minutes_expected: u64,
    /// Seconds the run waited for them after the heal and the drain.
    pub timer_wait_s: f64,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The run's seed: the same seed replays the same workload and faults.
    pub seed: u64,
    /// What was checked (servers, backend).
    pub deployment: String,
    /// Where the run kept its files.
    pub work_dir: String,
    /// Seconds of workload under faults.
    pub fault_phase_s: f64,
    /// Seconds of the whole run.
    pub total_s: f64,
    /// Seconds spent judging once the run was over (reading every
    /// server's log and the final checks), part of `total_s`.
    pub judge_s: f64,
    /// What the writes came to.
    pub writes: WriteSummary,
    /// What the claims, fenced writes and timers came to.
    pub coordination: CoordinationSummary,
    /// Operations by name.
    pub operations: BTreeMap<String, u64>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Every fault, in order: seconds into the run, kind, server, what.
    pub fault_log: Vec<String>,
    /// Seconds the ring's links took to catch up after the heal (a ring's;
    /// none otherwise).
    pub links_caught_up_s: Option<f64>,
    /// The replication links as last seen after the heal (a ring's; empty
    /// otherwise).
    pub links: Vec<LinkSummary>,
    /// Every check of the oracle, passed or not.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(CheckResult::passed)
    }

    /// Violations over all checks.
    pub fn violations(&self) -> usize {
        self.checks
            .iter()
            .map(|check| check.counterexamples.len())
            .sum()
    }

    /// The report as text.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        let line = |text: &mut String, content: String| {
            text.push_str(&content);
            text.push('\n');
        };
        line(&mut text, format!("cairn check — seed {}", self.seed));
        line(&mut text, format!("deployment: {}", self.deployment));
        line(
            &mut text,
            format!(
                "time: {:.0} s of faults, {:.0} s in all, of which {:.1} s judging; files in {}",
                self.fault_phase_s, self.total_s, self.judge_s, self.work_dir
            ),
        );
        let writes = &self.writes;
        line(
            &mut text,
            format!(
                "writes: {} facts — {} acknowledged, {} refused, {} unknown (of which {} stored, {} not)",
                writes.facts_written,
                writes.acknowledged,
                writes.refused,
                writes.unknown_stored + writes.unknown_absent,
                writes.unknown_stored,
                writes.unknown_absent
            ),
        );
        let coordination = &self.coordination;
        line(
            &mut text,
            format!(
                "claims: {} answered — {} won, {} lost; {} refused, {} unknown; {} released; {} generations in the log",
                coordination.claims_won + coordination.claims_lost,
                coordination.claims_won,
                coordination.claims_lost,
                coordination.claims_refused,
                coordination.claims_unknown,
                coordination.claim_releases,
                coordination.claim_generations_logged
            ),
        );
        line(
            &mut text,
            format!(
                "fenced writes: {} acknowledged, {} refused stale_fence, {} refused otherwise, {} unknown (of which {} stored, {} not); {} lease grants ({} in the log)",
                coordination.fenced_acknowledged,
                coordination.fenced_refused_stale,
                coordination.fenced_refused_other,
                coordination.fenced_unknown_stored + coordination.fenced_unknown_absent,
                coordination.fenced_unknown_stored,
                coordination.fenced_unknown_absent,
                coordination.lease_grants,
                coordination.lease_grants_logged
            ),
        );
        line(
            &mut text,
            format!(
                "timers: {} set ({} cron) — {} acknowledged, {} refused, {} unknown; {} deleted, {} deletes refused, {} unknown; {} occurrences in the log, {} expected after heal ({} of them cron minutes; waited {:.1} s)",
                coordination.timers_set,
                coordination.timers_cron,
                coordination.timers_acknowledged,
                coordination.timers_refused,
                coordination.timers_unknown,
                coordination.timers_deleted,
                coordination.timer_deletes_refused,
                coordination.timer_deletes_unknown,
                coordination.timer_occurrences_logged,
                coordination.timer_occurrences_expected,
                coordination.timer_cron_minutes_expected,
                coordination.timer_wait_s
            ),
        );
        let operations: Vec<String> = self
            .operations
            .iter()
            .map(|(name, count)| format!("{name} {count}"))
            .collect();
        line(&mut text, format!("operations: {}", operations.join(", ")));
        let total_faults: u64 = self.faults.values().sum();
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(name, count)| format!("{name} {count}"))
            .collect();
        line(
            &mut text,
            format!("faults: {total_faults} injected — {}", faults.join(", ")),
        );
        if !self.links.is_empty() {
            line(
                &mut text,
                format!(
                    "links: caught up {:.1} s after the heal; after the clean restart:",
                    self.links_caught_up_s.unwrap_or(f64::NAN)
                ),
            );
            for link in &self.links {
                line(&mut text, format!("  {link}"));
            }
        }
        line(&mut text, "checks:".into());
        for check in &self.checks {
            let verdict = if check.passed() { "pass" } else { "FAIL" };
            line(
                &mut text,
                format!("  [{verdict}] {} ({} examined)", check.name, check.examined),
            );
            for example in check.counterexamples.iter().take(COUNTEREXAMPLES_SHOWN_MAX) {
                line(&mut text, format!("         - {example}"));
            }
            if check.counterexamples.len() > COUNTEREXAMPLES_SHOWN_MAX {
                line(
                    &mut text,
                    format!(
                        "         … and {} more",
                        check.counterexamples.len() - COUNTEREXAMPLES_SHOWN_MAX
                    ),
                );
            }
        }
        if self.passed() {
            line(&mut text, "result: PASS — no violations".into());
        } else {
            line(
                &mut text,
                format!(
                    "result: FAIL — {} violation(s); replay the schedule with --seed {}",
                    self.violations(),
                    self.seed
                ),
            );
        }
        text
    }
}

/// Seconds of a duration, for the report.
pub fn seconds(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10.0).round() / 10.0
}
