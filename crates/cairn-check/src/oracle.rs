//! The oracle: after the faults are healed and every message settled, it
//! reads everything back from every server and judges the recorded history
//! against Cairn's guarantees. Each guarantee is one named check with the
//! number of things it examined and every counterexample found.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::api::{Answer, Api};
use crate::history::{Phase, Recorded, WriteOutcome};
use crate::report::{CheckResult, WriteSummary};
use crate::workload::{canonical_of, SubscriptionSpec, ITEM_TYPE};

/// The checks, in report order. Violations noticed during the run are
/// filed under the same names.
pub const CHECKS: [&str; 19] = [
    "valid writes are accepted",
    "acknowledged writes are durable",
    "reads return the acknowledged bytes",
    "server and client agree on hashes",
    "acknowledged facts keep their seq",
    "facts are stored with their predecessors",
    "no phantom facts",
    "refused writes change nothing",
    "batches are all or nothing",
    "every message is delivered at least once",
    "deliveries carry the written bytes",
    "no redelivery after an ack",
    "per-key order",
    "dead letters only after max_attempts",
    "dead letters are replayable",
    "acked messages stay acked after a clean restart",
    "servers recover from crashes",
    "damaged data is never served",
    "no writes on top of detected corruption",
];

/// Collects counterexamples and examined counts per check.
pub struct Verdicts {
    results: Vec<CheckResult>,
}

impl Default for Verdicts {
    fn default() -> Self {
        Verdicts {
            results: CHECKS
                .iter()
                .map(|name| CheckResult {
                    name: name.to_string(),
                    examined: 0,
                    counterexamples: Vec::new(),
                })
                .collect(),
        }
    }
}

impl Verdicts {
    fn entry(&mut self, check: &str) -> &mut CheckResult {
        if let Some(idx) = self.results.iter().position(|result| result.name == check) {
            return &mut self.results[idx];
        }
        self.results.push(CheckResult {
            name: check.to_string(),
            examined: 0,
            counterexamples: Vec::new(),
        });
        self.results.last_mut().expect("just pushed")
    }

    /// Counts `n` things examined by `check`.
    pub fn examined(&mut self, check: &str, n: u64) {
        self.entry(check).examined += n;
    }

    /// Records a violation of `check`.
    pub fn violation(&mut self, check: &str, detail: String) {
        self.entry(check).counterexamples.push(detail);
    }

    /// The results, in report order.
    pub fn into_results(self) -> Vec<CheckResult> {
        self.results
    }
}

/// One fact as a server's log holds it.
struct LoggedFact {
    seq: u64,
    canonical: Vec<u8>,
}

/// Reads a server's whole log (facts of this run only, plus every hash).
async fn read_log(
    api: &Api,
    base: &str,
    run_id: &str,
) -> Result<(HashMap<String, LoggedFact>, Vec<String>), String> {
    let mut facts = HashMap::new();
    let mut problems = Vec::new();
    let mut cursor = 0u64;
    let mut last_seq = 0u64;
    loop {
        let page = match api.log_page(base, cursor, 10_000).await {
            Answer::Done(page) => page,
            Answer::Refused(status, code) | Answer::Unknown(status, code) => {
                return Err(format!("reading the log of {base} failed: {status} {code}"))
            }
        };
        let entries = page["facts"].as_array().cloned().unwrap_or_default();
        if entries.is_empty() {
            break;
        }
        for entry in &entries {
            let hash = entry["hash"].as_str().unwrap_or_default().to_string();
            let seq = entry["seq"].as_u64().unwrap_or(0);
            if seq <= last_seq {
                problems.push(format!("{base}: log seq {seq} after seq {last_seq}"));
            }
            last_seq = seq;
            let fact = &entry["fact"];
            if fact["fields"]["run"].as_str() != Some(run_id) || fact["type"] != ITEM_TYPE {
                continue;
            }
            match canonical_of(&entry["fact"]) {
                Some(canonical) if canonical.hash.to_hex() == hash => {
                    facts.insert(
                        hash,
                        LoggedFact {
                            seq,
                            canonical: canonical.canonical,
                        },
                    );
                }
                _ => problems.push(format!("{base}: seq {seq} does not hash to {hash}")),
            }
        }
        cursor = page["next"].as_u64().unwrap_or(cursor);
    }
    Ok((facts, problems))
}

/// Checks the facts every server holds against the recorded writes and
/// reads; returns the write summary.
pub async fn check_facts(
    api: &Api,
    bases: &[String],
    run_id: &str,
    recorded: &Recorded,
    verdicts: &mut Verdicts,
) -> (WriteSummary, HashSet<String>) {
    let mut summary = WriteSummary::default();
    let mut stored_items = HashSet::new();
    for (server_idx, base) in bases.iter().enumerate() {
        let (logged, problems) = match read_log(api, base, run_id).await {
            Ok(log) => log,
            Err(problem) => {
                verdicts.violation("acknowledged writes are durable", problem);
                continue;
            }
        };
        for problem in problems {
            verdicts.violation("reads return the acknowledged bytes", problem);
        }
        verdicts.examined("no phantom facts", logged.len() as u64);
        for hash in logged.keys() {
            if !recorded.facts.contains_key(hash) {
                verdicts.violation(
                    "no phantom facts",
                    format!("server {server_idx} holds {hash}, which was never written"),
                );
            }
        }
        for (hash, written) in &recorded.facts {
            let present = logged.get(hash);
            match (&written.outcome, present) {
                (WriteOutcome::Acked { seq }, Some(logged_fact)) => {
                    verdicts.examined("acknowledged writes are durable", 1);
                    verdicts.examined("acknowledged facts keep their seq", 1);
                    if logged_fact.canonical != written.canonical {
                        verdicts.violation(
                            "reads return the acknowledged bytes",
                            format!("server {server_idx}: {hash} holds other bytes"),
                        );
                    }
                    if logged_fact.seq != *seq {
                        verdicts.violation(
                            "acknowledged facts keep their seq",
                            format!(
                                "server {server_idx}: {hash} acknowledged at seq {seq}, now at seq {}",
                                logged_fact.seq
                            ),
                        );
                    }
                }
                (WriteOutcome::Acked { seq }, None) => verdicts.violation(
                    "acknowledged writes are durable",
                    format!("server {server_idx}: acknowledged fact {hash} (seq {seq}) is missing"),
                ),
                (WriteOutcome::Refused { .. }, None) => {
                    verdicts.examined("refused writes change nothing", 1)
                }
                (WriteOutcome::Refused { code }, Some(logged_fact)) => verdicts.violation(
                    "refused writes change nothing",
                    format!(
                        "server {server_idx}: {hash} was refused ({code}) but is stored at seq {}",
                        logged_fact.seq
                    ),
                ),
                _ => {}
            }
            if let Some(logged_fact) = present {
                for predecessor in &written.predecessors {
                    let stored_before = logged
                        .get(predecessor)
                        .map(|before| before.seq < logged_fact.seq)
                        // Keys were written before everything else.
                        .unwrap_or(!recorded.facts.contains_key(predecessor));
                    if !stored_before {
                        verdicts.violation(
                            "facts are stored with their predecessors",
                            format!("server {server_idx}: {hash} is stored without predecessor {predecessor} before it"),
                        );
                    }
                }
                verdicts.examined("facts are stored with their predecessors", 1);
            }
        }
        for observed in recorded.observed.values() {
            match logged.get(&observed.hash) {
                Some(logged_fact) if logged_fact.seq == observed.seq => {}
                Some(logged_fact) => verdicts.violation(
                    "acknowledged facts keep their seq",
                    format!(
                        "server {server_idx}: {} was read at seq {}, now at seq {}",
                        observed.hash, observed.seq, logged_fact.seq
                    ),
                ),
                None => verdicts.violation(
                    "acknowledged writes are durable",
                    format!(
                        "server {server_idx}: {} was read (seq {}) but is gone: reads saw data that was not durable",
                        observed.hash, observed.seq
                    ),
                ),
            }
        }
        verdicts.examined(
            "reads return the acknowledged bytes",
            recorded.observed.len() as u64,
        );
        for batch in &recorded.batches {
            let n_present = batch
                .iter()
                .filter(|hash| logged.contains_key(*hash))
                .count();
            verdicts.examined("batches are all or nothing", 1);
            if n_present != 0 && n_present != batch.len() {
                verdicts.violation(
                    "batches are all or nothing",
                    format!("server {server_idx}: {n_present} of the {} facts of a batch are stored: {batch:?}", batch.len()),
                );
            }
        }
        if server_idx == 0 {
            for (hash, written) in &recorded.facts {
                let stored = logged.contains_key(hash);
                if stored {
                    stored_items.insert(hash.clone());
                }
                summary.facts_written += 1;
                match written.outcome {
                    WriteOutcome::Acked { .. } => summary.acknowledged += 1,
                    WriteOutcome::Refused { .. } => summary.refused += 1,
                    WriteOutcome::Unknown | WriteOutcome::Pending if stored => {
                        summary.unknown_stored += 1
                    }
                    WriteOutcome::Unknown | WriteOutcome::Pending => summary.unknown_absent += 1,
                }
            }
        }
    }
    (summary, stored_items)
}

/// The dead letters of a subscription: hash → attempts.
pub async fn dead_letters(
    api: &Api,
    base: &str,
    name: &str,
) -> Result<HashMap<String, u64>, String> {
    let mut dead = HashMap::new();
    let mut cursor = 0u64;
    loop {
        let page = api
            .dead_letters(base, name, cursor)
            .await
            .done()
            .ok_or_else(|| format!("listing the dead letters of {name} failed"))?;
        let messages = page["messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            return Ok(dead);
        }
        for message in &messages {
            let hash = message["hash"].as_str().unwrap_or_default().to_string();
            dead.insert(hash, message["attempts"].as_u64().unwrap_or(0));
        }
        let next = page["next"].as_u64().unwrap_or(cursor);
        if next == cursor {
            return Ok(dead);
        }
        cursor = next;
    }
}

/// Checks the deliveries of one subscription.
pub fn check_deliveries(
    spec: &SubscriptionSpec,
    recorded: &Recorded,
    stored_items: &HashSet<String>,
    dead_before_replay: &HashMap<String, u64>,
    verdicts: &mut Verdicts,
) {
    let name = &spec.name;
    let deliveries: Vec<_> = recorded
        .deliveries
        .iter()
        .filter(|delivery| &delivery.subscription == name)
        .collect();
    // At least once: every stored item of the run reached a consumer.
    let delivered: HashSet<&str> = deliveries
        .iter()
        .filter(|delivery| delivery.phase != Phase::AfterRestart)
        .map(|delivery| delivery.hash.as_str())
        .collect();
    for hash in stored_items {
        verdicts.examined("every message is delivered at least once", 1);
        if !delivered.contains(hash.as_str()) {
            verdicts.violation(
                "every message is delivered at least once",
                format!("{name}: stored fact {hash} was never delivered"),
            );
        }
    }
    // No redelivery after an ack answered "acked".
    let mut first_ack = HashMap::new();
    for ack in recorded.acks.iter().filter(|ack| &ack.subscription == name) {
        first_ack
            .entry(ack.hash.as_str())
            .and_modify(|answered: &mut std::time::Instant| {
                *answered = (*answered).min(ack.answered)
            })
            .or_insert(ack.answered);
    }
    for delivery in &deliveries {
        verdicts.examined("no redelivery after an ack", 1);
        if let Some(acked_at) = first_ack.get(delivery.hash.as_str()) {
            if delivery.pull_sent > *acked_at {
                let check = if delivery.phase == Phase::AfterRestart {
                    "acked messages stay acked after a clean restart"
                } else {
                    "no redelivery after an ack"
                };
                verdicts.violation(
                    check,
                    format!(
                        "{name}: {} (seq {}) delivered again (attempt {}, {:?}) after its ack was answered \"acked\"",
                        delivery.hash, delivery.seq, delivery.attempt, delivery.phase
                    ),
                );
            }
        }
    }
    // Attempts and dead letters.
    for delivery in &deliveries {
        if delivery.attempt == 0 || delivery.attempt > spec.max_attempts {
            verdicts.violation(
                "dead letters only after max_attempts",
                format!(
                    "{name}: {} delivered with attempt {}",
                    delivery.hash, delivery.attempt
                ),
            );
        }
    }
    for (hash, attempts) in dead_before_replay {
        verdicts.examined("dead letters only after max_attempts", 1);
        if *attempts != spec.max_attempts {
            verdicts.violation(
                "dead letters only after max_attempts",
                format!(
                    "{name}: {hash} is dead after {attempts} attempts (max_attempts {})",
                    spec.max_attempts
                ),
            );
        }
        if recorded
            .acks
            .iter()
            .any(|ack| &ack.subscription == name && &ack.hash == hash && ack.phase < Phase::Replay)
        {
            verdicts.violation(
                "dead letters only after max_attempts",
                format!("{name}: {hash} is dead although its ack was answered \"acked\""),
            );
        }
    }
    for hash in stored_items {
        let poison = recorded.facts.get(hash).is_some_and(|fact| fact.poison);
        if poison && !dead_before_replay.contains_key(hash) {
            verdicts.violation(
                "dead letters only after max_attempts",
                format!("{name}: {hash} always failed but is not in the dead letters"),
            );
        }
    }
    // Replay: every dead letter came back with a fresh first attempt.
    for hash in dead_before_replay.keys() {
        verdicts.examined("dead letters are replayable", 1);
        let replayed = deliveries.iter().any(|delivery| {
            &delivery.hash == hash && delivery.phase == Phase::Replay && delivery.attempt == 1
        });
        if !replayed {
            verdicts.violation(
                "dead letters are replayable",
                format!("{name}: dead letter {hash} was not delivered again (attempt 1) after the replay"),
            );
        }
    }
    if spec.keyed {
        check_key_order(spec, recorded, &deliveries, verdicts);
    }
}

/// Per-key order: a message is not leased while a message of the same key
/// with a lower seq is unsettled, so the *first* deliveries of a key's
/// messages come in seq order. (Later deliveries may not: after a crash, a
/// message whose ack was lost comes back after its successor was already
/// delivered once, which at-least-once allows.) Only definite evidence
/// counts: the lower message's first pull was sent after the higher
/// message's first pull was answered.
fn check_key_order(
    spec: &SubscriptionSpec,
    recorded: &Recorded,
    deliveries: &[&crate::history::Delivery],
    verdicts: &mut Verdicts,
) {
    let mut first_deliveries: HashMap<&str, &crate::history::Delivery> = HashMap::new();
    for delivery in deliveries {
        if delivery.phase >= Phase::Replay {
            continue;
        }
        first_deliveries
            .entry(delivery.hash.as_str())
            .and_modify(|first| {
                if delivery.pull_sent < first.pull_sent {
                    *first = delivery;
                }
            })
            .or_insert(delivery);
    }
    let mut by_key: HashMap<&str, Vec<&crate::history::Delivery>> = HashMap::new();
    for (hash, delivery) in first_deliveries {
        if let Some(fact) = recorded.facts.get(hash) {
            by_key.entry(fact.key.as_str()).or_default().push(delivery);
        }
    }
    for (key, mut key_deliveries) in by_key {
        verdicts.examined("per-key order", key_deliveries.len() as u64);
        let mut by_answer = key_deliveries.clone();
        by_answer.sort_by_key(|delivery| delivery.pull_answered);
        key_deliveries.sort_by_key(|delivery| delivery.pull_sent);
        let mut answered_idx = 0;
        let mut highest: Option<&crate::history::Delivery> = None;
        for delivery in key_deliveries {
            while answered_idx < by_answer.len()
                && by_answer[answered_idx].pull_answered < delivery.pull_sent
            {
                let candidate = by_answer[answered_idx];
                if highest.is_none_or(|highest| candidate.seq > highest.seq) {
                    highest = Some(candidate);
                }
                answered_idx += 1;
            }
            if let Some(highest) = highest {
                if delivery.seq < highest.seq {
                    verdicts.violation(
                        "per-key order",
                        format!(
                            "{}: key {key}: seq {} was first delivered after seq {} of the same key had been delivered",
                            spec.name, delivery.seq, highest.seq
                        ),
                    );
                }
            }
        }
    }
}

/// True when a subscription view shows every message settled.
pub fn settled(view: &Value) -> bool {
    view["backlog"].as_u64() == Some(0) && view["in_flight"].as_u64() == Some(0)
}
