//! The oracle: after the faults are healed and every message settled, it
//! reads everything back from every server and judges the recorded history
//! against Cairn's guarantees. Each guarantee is one named check with the
//! number of things it examined and every counterexample found.
//!
//! Judging is linear in the history: every fact and message is looked up
//! by index or hash, each server's log is read page by page keeping only
//! each fact's seq, and the checks about a single delivery were already
//! judged while the run went (in [`crate::delivery_ledger`]).

use std::collections::HashMap;

use cairn_fact::Hash;
use serde_json::Value;

use crate::api::{Answer, Api};
use crate::coordination::{self, DecisionLog};
use crate::delivery_ledger::{FirstDelivery, SubscriptionLedger};
use crate::fact_table::{FactTable, WriteOutcome};
use crate::history::Recorded;
use crate::report::{CheckResult, CoordinationSummary, WriteSummary};
use crate::workload::{canonical_of, SubscriptionSpec, ITEM_TYPE};

/// Facts per page when the oracle reads a server's log: a page is parsed
/// into JSON values whole, which take several times its bytes, so pages
/// stay small (the server's default) to keep the judging's memory low.
const LOG_PAGE_FACTS: u64 = 1_000;

/// The checks of facts and deliveries, in report order (the coordination
/// checks, [`coordination::CHECKS`], follow them). Violations noticed
/// during the run are filed under the same names.
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
                .chain(coordination::CHECKS.iter())
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

/// What one server's log holds of the run's facts (entries of other runs
/// and of other types are skipped).
struct ServerLog {
    /// The seq of each written fact on the server, by fact index.
    seq_by_fact: Vec<Option<u64>>,
    /// Facts of the run the server holds that were never written: hash →
    /// seq.
    phantoms: HashMap<Hash, u64>,
    /// Entries out of seq order or that do not hash to their hash.
    problems: Vec<String>,
    /// The run's claims, leases and fenced facts.
    decisions: DecisionLog,
}

impl ServerLog {
    /// The seq of `hash` on the server, if it holds it.
    fn seq_of_hash(&self, facts: &FactTable, hash: &Hash) -> Option<u64> {
        match facts.idx_of(hash) {
            Some(fact_idx) => self.seq_by_fact[fact_idx as usize],
            None => self.phantoms.get(hash).copied(),
        }
    }

    /// Facts of the run the server holds, written or not.
    fn n_facts(&self) -> u64 {
        let n_written = self.seq_by_fact.iter().flatten().count();
        (n_written + self.phantoms.len()) as u64
    }
}

/// Reads a server's whole log, page by page, keeping only each fact's seq:
/// a fact whose bytes hash to its hash carries the bytes that were written
/// under that hash (the hash is the BLAKE3 of the canonical bytes), so the
/// bytes need not be kept to be compared.
async fn read_log(
    api: &Api,
    base: &str,
    run_id: &str,
    facts: &FactTable,
) -> Result<ServerLog, String> {
    let mut log = ServerLog {
        seq_by_fact: vec![None; facts.len()],
        phantoms: HashMap::new(),
        problems: Vec::new(),
        decisions: DecisionLog::new(run_id),
    };
    let mut cursor = 0u64;
    let mut last_seq = 0u64;
    loop {
        let mut page = match api.log_page(base, cursor, LOG_PAGE_FACTS).await {
            Answer::Done(page) => page,
            Answer::Refused(status, code) | Answer::Unknown(status, code) => {
                return Err(format!("reading the log of {base} failed: {status} {code}"))
            }
        };
        let entries = match page["facts"].take() {
            Value::Array(entries) => entries,
            _ => Vec::new(),
        };
        if entries.is_empty() {
            break;
        }
        for entry in &entries {
            let hash = entry["hash"].as_str().unwrap_or_default();
            let seq = entry["seq"].as_u64().unwrap_or(0);
            if seq <= last_seq {
                log.problems
                    .push(format!("{base}: log seq {seq} after seq {last_seq}"));
            }
            last_seq = seq;
            let fact = &entry["fact"];
            if DecisionLog::wants(fact["type"].as_str().unwrap_or_default()) {
                match canonical_of(fact) {
                    Some(canonical) if canonical.hash.to_hex() == hash => {
                        log.decisions.observe(seq, canonical.hash, fact)
                    }
                    _ => log
                        .problems
                        .push(format!("{base}: seq {seq} does not hash to {hash}")),
                }
                continue;
            }
            if fact["fields"]["run"].as_str() != Some(run_id) || fact["type"] != ITEM_TYPE {
                continue;
            }
            match canonical_of(fact) {
                Some(canonical) if canonical.hash.to_hex() == hash => {
                    match facts.idx_of(&canonical.hash) {
                        Some(fact_idx) => log.seq_by_fact[fact_idx as usize] = Some(seq),
                        None => {
                            log.phantoms.insert(canonical.hash, seq);
                        }
                    }
                }
                _ => log
                    .problems
                    .push(format!("{base}: seq {seq} does not hash to {hash}")),
            }
        }
        cursor = page["next"].as_u64().unwrap_or(cursor);
    }
    Ok(log)
}

/// What the writes and the coordination came to, as the first server
/// holds them.
pub struct FactsJudged {
    /// The item writes.
    pub writes: WriteSummary,
    /// Claims, grants and fenced writes.
    pub coordination: CoordinationSummary,
    /// Which items the first server holds (by fact index).
    pub stored_on_first_server: Vec<bool>,
}

/// Checks the facts every server holds against the recorded writes and
/// reads, and the coordination decisions in its log against the recorded
/// answers.
pub async fn check_facts(
    api: &Api,
    bases: &[String],
    run_id: &str,
    recorded: &Recorded,
    verdicts: &mut Verdicts,
) -> FactsJudged {
    let facts = &recorded.facts;
    let mut summary = WriteSummary::default();
    let mut coordination_summary = None;
    let mut stored_on_first_server = vec![false; facts.len()];
    for (server_idx, base) in bases.iter().enumerate() {
        let log = match read_log(api, base, run_id, facts).await {
            Ok(log) => log,
            Err(problem) => {
                verdicts.violation("acknowledged writes are durable", problem);
                continue;
            }
        };
        for problem in &log.problems {
            verdicts.violation("reads return the acknowledged bytes", problem.clone());
        }
        verdicts.examined("no phantom facts", log.n_facts());
        for hash in log.phantoms.keys() {
            verdicts.violation(
                "no phantom facts",
                format!("server {server_idx} holds {hash}, which was never written"),
            );
        }
        let store_idx = recorded.store_of(server_idx);
        for (fact_idx, written) in facts.iter() {
            check_written_fact(server_idx, store_idx, &log, facts, fact_idx, verdicts);
            if server_idx == 0 {
                let stored = log.seq_by_fact[fact_idx as usize].is_some();
                stored_on_first_server[fact_idx as usize] = stored;
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
        check_observed(server_idx, &log, recorded, verdicts);
        check_batches(server_idx, &log, recorded, verdicts);
        coordination::judge(server_idx, &log.decisions, &recorded.coordination, verdicts);
        if server_idx == 0 {
            coordination_summary = Some(coordination::summary(
                &recorded.coordination,
                Some(&log.decisions),
            ));
        }
    }
    coordination::judge_history(&recorded.coordination, verdicts);
    FactsJudged {
        writes: summary,
        coordination: coordination_summary
            .unwrap_or_else(|| coordination::summary(&recorded.coordination, None)),
        stored_on_first_server,
    }
}

/// Judges one written fact against what one server (serving store
/// `store_idx`) holds: durable at its acknowledged seq and absent if
/// refused (when the server serves the store it was written to; a replica
/// has its own seqs, and what it must hold is judged by [`crate::ring`]),
/// stored after its predecessors (on every server).
fn check_written_fact(
    server_idx: usize,
    store_idx: usize,
    log: &ServerLog,
    facts: &FactTable,
    fact_idx: u32,
    verdicts: &mut Verdicts,
) {
    let written = facts.get(fact_idx);
    let hash = &written.hash;
    let present = log.seq_by_fact[fact_idx as usize];
    let at_home = usize::from(written.store_idx) == store_idx;
    match (&written.outcome, present) {
        (WriteOutcome::Acked { .. }, _) if !at_home => {}
        (WriteOutcome::Acked { seq }, Some(logged_seq)) => {
            verdicts.examined("acknowledged writes are durable", 1);
            verdicts.examined("acknowledged facts keep their seq", 1);
            if logged_seq != *seq {
                verdicts.violation(
                    "acknowledged facts keep their seq",
                    format!(
                        "server {server_idx}: {hash} acknowledged at seq {seq}, now at seq {logged_seq}"
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
        (WriteOutcome::Refused { code }, Some(logged_seq)) => verdicts.violation(
            "refused writes change nothing",
            format!(
                "server {server_idx}: {hash} was refused ({code}) but is stored at seq {logged_seq}"
            ),
        ),
        _ => {}
    }
    let Some(logged_seq) = present else {
        return;
    };
    for &predecessor in facts.predecessors(written) {
        let stored_before = match facts.fact_idx_of_ref(predecessor) {
            Some(predecessor_idx) => {
                log.seq_by_fact[predecessor_idx as usize].is_some_and(|before| before < logged_seq)
            }
            // Keys were written before everything else.
            None => log
                .phantoms
                .get(&facts.hash_of(predecessor))
                .is_none_or(|&before| before < logged_seq),
        };
        if !stored_before {
            verdicts.violation(
                "facts are stored with their predecessors",
                format!(
                    "server {server_idx}: {hash} is stored without predecessor {} before it",
                    facts.hash_of(predecessor)
                ),
            );
        }
    }
    verdicts.examined("facts are stored with their predecessors", 1);
}

/// Every fact a read returned during the run must still be on the server,
/// at the seq it was read at (of the reads of the store it serves).
fn check_observed(
    server_idx: usize,
    log: &ServerLog,
    recorded: &Recorded,
    verdicts: &mut Verdicts,
) {
    let facts = &recorded.facts;
    let store_idx = recorded.store_of(server_idx);
    let observed_written = facts
        .iter()
        .filter_map(|(_, fact)| Some((fact.hash, fact.observed?)));
    let observed_replicas = recorded
        .observed_replicas
        .iter()
        .map(|(&(fact_idx, _), observation)| (facts.get(fact_idx).hash, *observation));
    let observed_unwritten = recorded
        .observed_unwritten
        .iter()
        .map(|(&(hash, _), observation)| (hash, *observation));
    let mut n_observed = 0u64;
    let all_observed = observed_written
        .chain(observed_replicas)
        .chain(observed_unwritten)
        .filter(|(_, observed)| recorded.store_of(observed.server_idx) == store_idx);
    for (hash, observed) in all_observed {
        n_observed += 1;
        match log.seq_of_hash(facts, &hash) {
            Some(logged_seq) if logged_seq == observed.seq => {}
            Some(logged_seq) => verdicts.violation(
                "acknowledged facts keep their seq",
                format!(
                    "server {server_idx}: {hash} was read at seq {}, now at seq {logged_seq}",
                    observed.seq
                ),
            ),
            None => verdicts.violation(
                "acknowledged writes are durable",
                format!(
                    "server {server_idx}: {hash} was read (seq {}) but is gone: reads saw data that was not durable",
                    observed.seq
                ),
            ),
        }
    }
    verdicts.examined("reads return the acknowledged bytes", n_observed);
}

/// Of every batch, a server holds all facts or none.
fn check_batches(server_idx: usize, log: &ServerLog, recorded: &Recorded, verdicts: &mut Verdicts) {
    for batch in recorded.batches() {
        let n_present = batch
            .iter()
            .filter(|&&fact_idx| log.seq_by_fact[fact_idx as usize].is_some())
            .count();
        verdicts.examined("batches are all or nothing", 1);
        if n_present != 0 && n_present != batch.len() {
            let hashes: Vec<String> = batch
                .iter()
                .map(|&fact_idx| recorded.facts.get(fact_idx).hash.to_hex())
                .collect();
            verdicts.violation(
                "batches are all or nothing",
                format!(
                    "server {server_idx}: {n_present} of the {} facts of a batch are stored: {hashes:?}",
                    batch.len()
                ),
            );
        }
    }
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

/// Checks the deliveries of one subscription, from what the history kept
/// of its messages (the checks of each single delivery were judged as they
/// were recorded).
pub fn check_deliveries(
    spec: &SubscriptionSpec,
    ledger: &SubscriptionLedger,
    facts: &FactTable,
    stored_on_first_server: &[bool],
    dead_before_replay: &HashMap<String, u64>,
    verdicts: &mut Verdicts,
) {
    let name = &spec.name;
    // At least once: every stored item of the run reached a consumer.
    for (fact_idx, written) in facts.iter() {
        if !stored_on_first_server[fact_idx as usize] {
            continue;
        }
        verdicts.examined("every message is delivered at least once", 1);
        if !ledger.message(fact_idx).delivered_before_restart {
            verdicts.violation(
                "every message is delivered at least once",
                format!("{name}: stored fact {} was never delivered", written.hash),
            );
        }
    }
    // No redelivery after an ack answered "acked": judged per delivery as
    // the run went.
    verdicts.examined("no redelivery after an ack", ledger.n_deliveries);
    // Attempts and dead letters.
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
        if ledger.message_by_text(facts, hash).acked_before_replay {
            verdicts.violation(
                "dead letters only after max_attempts",
                format!("{name}: {hash} is dead although its ack was answered \"acked\""),
            );
        }
    }
    for (fact_idx, written) in facts.iter() {
        if !written.poison || !stored_on_first_server[fact_idx as usize] {
            continue;
        }
        let hash = written.hash.to_hex();
        if !dead_before_replay.contains_key(&hash) {
            verdicts.violation(
                "dead letters only after max_attempts",
                format!("{name}: {hash} always failed but is not in the dead letters"),
            );
        }
    }
    // Replay: every dead letter came back with a fresh first attempt.
    for hash in dead_before_replay.keys() {
        verdicts.examined("dead letters are replayable", 1);
        if !ledger
            .message_by_text(facts, hash)
            .replayed_at_first_attempt
        {
            verdicts.violation(
                "dead letters are replayable",
                format!("{name}: dead letter {hash} was not delivered again (attempt 1) after the replay"),
            );
        }
    }
    if spec.keyed {
        check_key_order(spec, ledger, facts, verdicts);
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
    ledger: &SubscriptionLedger,
    facts: &FactTable,
    verdicts: &mut Verdicts,
) {
    let mut by_key: HashMap<Hash, Vec<FirstDelivery>> = HashMap::new();
    for (fact_idx, first) in ledger.first_deliveries() {
        let key = facts.hash_of(facts.get(fact_idx).key);
        by_key.entry(key).or_default().push(first);
    }
    for (key, mut key_deliveries) in by_key {
        verdicts.examined("per-key order", key_deliveries.len() as u64);
        let mut by_answer = key_deliveries.clone();
        by_answer.sort_by_key(|delivery| delivery.pull_answered_ns);
        key_deliveries.sort_by_key(|delivery| delivery.pull_sent_ns);
        let mut answered_idx = 0;
        let mut highest: Option<FirstDelivery> = None;
        for delivery in key_deliveries {
            while answered_idx < by_answer.len()
                && by_answer[answered_idx].pull_answered_ns < delivery.pull_sent_ns
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
