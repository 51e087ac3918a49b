//! A ring of three deployments (`--topology ring3`): three embedded
//! servers, A, B and C, each with a store of its own, linked by
//! replication links that each reach their source through the source's
//! fault proxy, so the nemesis's partitions, stalls, kills and pauses cut
//! replication as they cut clients. This module defines the links, waits
//! for them to catch up after the heal, probes during the run that no
//! server serves a fact without its predecessors, and after the run
//! judges every server's whole log against a model of what it must hold.
//!
//! The links, and what each server must hold in the end (with the
//! workload's types: `check.Item`, whose predecessors are a `check.Key`
//! of the writer's store and the writer's previous item; `check.Key`; and
//! one `check.Marker` per store that nothing names):
//!
//! | link | receiver ← source | types |
//! |---|---|---|
//! | `ring-b-from-a` | B ← A | `check.Item` |
//! | `ring-c-from-b` | C ← B | `check.*` |
//! | `ring-a-from-c` | A ← C | `check.Item` |
//!
//! Every item reaches every server. B and A receive items without the
//! keys they name (the types do not select keys), so their links must
//! fetch those keys from the source first — the closure path. Keys no item
//! names stay where the filters let them: A's on A, B's on B and C (C
//! takes all of `check.*` from B), C's on C; markers likewise: A holds
//! A's, B holds B's, C holds B's and its own.
//!
//! The model is a fixpoint, not a table: each server holds its own
//! acknowledged writes (and the writes of unknown outcome it stored), plus,
//! for each incoming link, what the link's types select of the source's
//! set, closed under predecessors; repeated over the ring until nothing
//! changes. The checker keeps its own matcher of type patterns (the
//! grammar of permissions: `*` matches any run of characters): it is the
//! oracle and shares no code with the server.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_delivery::SplitMix64;
use cairn_fact::Hash;
use serde::Serialize;
use serde_json::{json, Value};

use crate::api::{Answer, Api};
use crate::deployment::Deployment;
use crate::error::CheckError;
use crate::fact_table::WriteOutcome;
use crate::history::Recorded;
use crate::oracle::Verdicts;
use crate::workload::{canonical_of, Workload, ITEM_TYPE, KEY_TYPE, MARKER_TYPE};

/// The links converge after the heal: every link `running`, caught up
/// (`lag_facts` 0), and every log still, within [`CONVERGE_TIMEOUT`].
pub const CHECK_CONVERGE: &str = "ring: links catch up after the heal";
/// Every server holds exactly the set the model says.
pub const CHECK_EQUAL: &str = "ring: each server holds exactly its filtered set";
/// In every log, each fact's predecessors come before it.
pub const CHECK_CLOSED: &str = "ring: every log holds predecessors first";
/// During the run, a fact read from a server has its predecessors there.
pub const CHECK_SERVED: &str = "ring: no fact served without its predecessors";
/// Every fact on every server was written by the checker (or is a
/// predecessor of one, or a server's own `Cairn.*` fact).
pub const CHECK_PHANTOM: &str = "ring: no phantom facts on any server";
/// Each hash appears once in each log.
pub const CHECK_DUPLICATES: &str = "ring: no fact twice in a log";
/// The ring's checks, in report order.
pub const CHECKS: [&str; 6] = [
    CHECK_CONVERGE,
    CHECK_EQUAL,
    CHECK_CLOSED,
    CHECK_SERVED,
    CHECK_PHANTOM,
    CHECK_DUPLICATES,
];

/// How long the links may take to catch up once every fault is healed:
/// a link that failed backs off up to 30 s before its next try, then
/// catches up.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(90);
/// Consecutive polls, [`CONVERGE_POLL_INTERVAL`] apart, that must see every
/// link caught up and every log head unchanged.
const CONVERGE_STILL_POLLS: usize = 4;
/// The pause between two polls of the links.
const CONVERGE_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Facts of a log page the probes read.
const PROBE_PAGE_FACTS: u64 = 100;
/// Facts of a page whose predecessors a probe reads back at most.
const PROBE_FACTS_PER_PAGE: usize = 3;
/// Facts per page when the judge reads a whole log.
const LOG_PAGE_FACTS: u64 = 1_000;
/// Counterexamples listed per server and check at most (the count of the
/// rest follows).
const COUNTEREXAMPLES_PER_SERVER_MAX: usize = 10;

/// One replication link of the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingLink {
    /// Its name on the receiver.
    pub name: &'static str,
    /// The server that defines and runs it.
    pub receiver_idx: usize,
    /// The server it follows (through that server's proxy).
    pub source_idx: usize,
    /// The type patterns it selects.
    pub types: Vec<&'static str>,
}

/// The ring's links, as the oracle expects them (see the module's doc).
pub fn links() -> Vec<RingLink> {
    vec![
        RingLink {
            name: "ring-b-from-a",
            receiver_idx: 1,
            source_idx: 0,
            types: vec![ITEM_TYPE],
        },
        RingLink {
            name: "ring-c-from-b",
            receiver_idx: 2,
            source_idx: 1,
            types: vec!["check.*"],
        },
        RingLink {
            name: "ring-a-from-c",
            receiver_idx: 0,
            source_idx: 2,
            types: vec![ITEM_TYPE],
        },
    ]
}

/// The links as they are defined on the servers: those the oracle
/// expects, or for the negative control, A ← C with the markers' type
/// instead of the items' (so A misses the items of B and C and holds C's
/// marker, which the oracle must notice).
pub fn links_defined(misdefined: bool) -> Vec<RingLink> {
    let mut links = links();
    if misdefined {
        links[2].types = vec![MARKER_TYPE];
    }
    links
}

/// Defines `links` on their receivers, each with the source's proxy as
/// its `source`.
pub async fn create_links(
    api: &Api,
    deployment: &Deployment,
    links: &[RingLink],
) -> Result<(), CheckError> {
    for link in links {
        let receiver = &deployment.nodes[link.receiver_idx];
        let source = &deployment.nodes[link.source_idx];
        let definition = json!({"source": source.client_base, "types": link.types});
        match api
            .put_link(&receiver.direct_base, link.name, &definition)
            .await
        {
            Answer::Done(_) => {}
            other => {
                return Err(CheckError::Setup(format!(
                    "cannot create link {} on server {}: {other:?}",
                    link.name, link.receiver_idx
                )))
            }
        }
    }
    Ok(())
}

/// A link as the last poll saw it, for the report.
#[derive(Clone, Debug, Serialize)]
pub struct LinkSummary {
    /// The server that runs it.
    pub server_idx: usize,
    /// Its name.
    pub name: String,
    /// Its types, as the server answers them.
    pub types: Value,
    /// `running`, `paused` or `failing`.
    pub state: String,
    /// Entries of the source's log after its bookmark, as the link last
    /// saw the source.
    pub lag_facts: Option<u64>,
    /// The seq of the source's log up to which the link has examined it.
    pub bookmark_after: Option<u64>,
    /// Facts it stored that its server did not hold before.
    pub facts_received: Option<u64>,
    /// Why its last attempt failed, if it did.
    pub last_error: Value,
}

impl std::fmt::Display for LinkSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "server {} link {} {}: {}, lag_facts {}, bookmark {}, facts_received {}",
            self.server_idx,
            self.name,
            self.types,
            self.state,
            self.lag_facts
                .map_or("?".to_string(), |lag| lag.to_string()),
            self.bookmark_after
                .map_or("?".to_string(), |after| after.to_string()),
            self.facts_received
                .map_or("?".to_string(), |received| received.to_string()),
        )?;
        if !self.last_error.is_null() {
            write!(f, ", last_error {}", self.last_error)?;
        }
        Ok(())
    }
}

/// Waits, at most `timeout`, until every link of every server is
/// `running` and caught up and no log moves; a counterexample of
/// [`CHECK_CONVERGE`] otherwise. Returns how long it took and the links
/// as last seen.
///
/// A link counts as caught up when its bookmark has reached its source's
/// head as read *before* the link's view. The link's own `lag_facts` is
/// not enough: it is the lag as of the link's last answer, so a link whose
/// request hangs on a connection a network fault left dead (until the
/// request's deadline) reports 0 while its source holds more.
pub async fn wait_for_links(
    api: &Api,
    bases: &[String],
    timeout: Duration,
    verdicts: &mut Verdicts,
) -> (Duration, Vec<LinkSummary>) {
    let started = Instant::now();
    let mut still_polls = 0usize;
    let mut last_heads: Vec<Option<u64>> = Vec::new();
    let sources: HashMap<&str, usize> = links()
        .iter()
        .map(|link| (link.name, link.source_idx))
        .collect();
    loop {
        let mut caught_up = true;
        let mut states = Vec::new();
        let mut summaries = Vec::new();
        let mut heads = Vec::new();
        for base in bases {
            heads.push(
                api.log_page(base, 0, 1)
                    .await
                    .done()
                    .and_then(|page| page["head"].as_u64()),
            );
        }
        for (server_idx, base) in bases.iter().enumerate() {
            match api.links(base).await {
                Answer::Done(answer) => {
                    for view in answer["links"].as_array().into_iter().flatten() {
                        let summary = LinkSummary {
                            server_idx,
                            name: view["name"].as_str().unwrap_or_default().to_string(),
                            types: view["types"].clone(),
                            state: view["state"].as_str().unwrap_or_default().to_string(),
                            lag_facts: view["lag_facts"].as_u64(),
                            bookmark_after: view["bookmark"]["after"].as_u64(),
                            facts_received: view["facts_received"].as_u64(),
                            last_error: view["last_error"].clone(),
                        };
                        let source_head = sources
                            .get(summary.name.as_str())
                            .and_then(|&source_idx| heads[source_idx]);
                        let reached_head = matches!(
                            (summary.bookmark_after, source_head),
                            (Some(after), Some(head)) if after >= head
                        );
                        caught_up &= summary.state == "running"
                            && summary.lag_facts == Some(0)
                            && reached_head;
                        states.push(summary.to_string());
                        summaries.push(summary);
                    }
                }
                other => {
                    caught_up = false;
                    states.push(format!("server {server_idx}: GET /v1/links: {other:?}"));
                }
            }
        }
        let still = caught_up && heads.iter().all(Option::is_some) && heads == last_heads;
        still_polls = if still { still_polls + 1 } else { 0 };
        last_heads = heads;
        verdicts.examined(CHECK_CONVERGE, 1);
        if still_polls >= CONVERGE_STILL_POLLS {
            return (started.elapsed(), summaries);
        }
        if started.elapsed() > timeout {
            verdicts.violation(
                CHECK_CONVERGE,
                format!(
                    "the links did not catch up within {} s of the heal: {}; log heads {:?}",
                    timeout.as_secs(),
                    states.join("; "),
                    last_heads
                ),
            );
            return (started.elapsed(), summaries);
        }
        tokio::time::sleep(CONVERGE_POLL_INTERVAL).await;
    }
}

/// One probe, until the writers stop: reads a page near the head of a
/// server's log (through its proxy, as a client would) and reads back
/// from the same server, at once, the predecessors of a few of its facts.
/// A predecessor answered absent, or at a seq after its successor's, is a
/// counterexample of [`CHECK_SERVED`].
pub async fn run_probe(workload: Arc<Workload>, probe_idx: usize) {
    let mut random = SplitMix64::new(workload.seed ^ (0x5052_4f42 + probe_idx as u64));
    let n_servers = workload.client_bases.len();
    let mut cursors = vec![0u64; n_servers];
    while !workload.stop_writes.load(Ordering::Acquire) {
        let server_idx = random.in_range(0, n_servers as u64 - 1) as usize;
        let base = &workload.client_bases[server_idx];
        if let Answer::Done(page) = workload
            .api
            .log_page(base, cursors[server_idx], PROBE_PAGE_FACTS)
            .await
        {
            let next = page["next"].as_u64().unwrap_or(cursors[server_idx]);
            let head = page["head"].as_u64().unwrap_or(next);
            // Stay near the head, where replicated facts arrive.
            cursors[server_idx] = next.max(head.saturating_sub(PROBE_PAGE_FACTS));
            let entries: Vec<&Value> = page["facts"].as_array().into_iter().flatten().collect();
            for _ in 0..PROBE_FACTS_PER_PAGE.min(entries.len()) {
                let entry = entries[random.in_range(0, entries.len() as u64 - 1) as usize];
                probe_entry(&workload, server_idx, base, entry).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(random.in_range(5, 30))).await;
    }
}

/// Reads back the predecessors of one served log entry.
async fn probe_entry(workload: &Workload, server_idx: usize, base: &str, entry: &Value) {
    let seq = entry["seq"].as_u64().unwrap_or(0);
    let Some(canonical) = canonical_of(&entry["fact"]) else {
        return;
    };
    for (_, predecessor) in canonical.fact.all_predecessors() {
        workload
            .history
            .with(|recorded| recorded.counts.closure_probes += 1);
        match workload.api.get_fact(base, &predecessor.to_hex()).await {
            Answer::Done(body) => {
                let predecessor_seq = body["seq"].as_u64().unwrap_or(u64::MAX);
                if predecessor_seq >= seq {
                    workload.history.violation(
                        CHECK_SERVED,
                        format!(
                            "server {server_idx} served {} at seq {seq} and its predecessor {predecessor} at seq {predecessor_seq}",
                            canonical.hash
                        ),
                    );
                }
            }
            Answer::Refused(404, _) => workload.history.violation(
                CHECK_SERVED,
                format!(
                    "server {server_idx} served {} at seq {seq}, then answered 404 for its predecessor {predecessor}",
                    canonical.hash
                ),
            ),
            _ => {}
        }
    }
}

/// One entry of a server's log, as the judge keeps it.
#[derive(Clone, Debug)]
pub struct LogEntry {
    /// Its position in that log.
    pub seq: u64,
    /// The fact's hash (checked against its bytes).
    pub hash: Hash,
    /// The fact's type.
    pub type_name: String,
    /// The hashes its predecessors name.
    pub predecessors: Vec<Hash>,
}

/// Reads a server's whole log; entries whose bytes do not hash to their
/// hash are counterexamples of "reads return the acknowledged bytes".
async fn read_whole_log(
    api: &Api,
    server_idx: usize,
    base: &str,
    verdicts: &mut Verdicts,
) -> Result<Vec<LogEntry>, String> {
    let mut entries = Vec::new();
    let mut cursor = 0u64;
    loop {
        let page = match api.log_page(base, cursor, LOG_PAGE_FACTS).await {
            Answer::Done(page) => page,
            Answer::Refused(status, code) | Answer::Unknown(status, code) => {
                return Err(format!(
                    "server {server_idx}: reading the log failed: {status} {code}"
                ))
            }
        };
        let facts = page["facts"].as_array().cloned().unwrap_or_default();
        if facts.is_empty() {
            return Ok(entries);
        }
        for entry in &facts {
            let seq = entry["seq"].as_u64().unwrap_or(0);
            let hash_text = entry["hash"].as_str().unwrap_or_default();
            match canonical_of(&entry["fact"]) {
                Some(canonical) if canonical.hash.to_hex() == hash_text => entries.push(LogEntry {
                    seq,
                    hash: canonical.hash,
                    type_name: canonical.fact.type_name.to_string(),
                    predecessors: canonical
                        .fact
                        .all_predecessors()
                        .map(|(_, hash)| *hash)
                        .collect(),
                }),
                _ => verdicts.violation(
                    "reads return the acknowledged bytes",
                    format!("server {server_idx}: seq {seq} does not hash to {hash_text}"),
                ),
            }
        }
        let next = page["next"].as_u64().unwrap_or(cursor);
        if next == cursor {
            return Ok(entries);
        }
        cursor = next;
    }
}

/// What the model knows of a fact: its type and predecessors.
#[derive(Clone, Debug)]
pub struct FactInfo {
    /// The fact's type.
    pub type_name: String,
    /// The hashes its predecessors name.
    pub predecessors: Vec<Hash>,
}

/// What the judge needs besides the logs: each store's own facts, what the
/// checker wrote or tried to (and their predecessors), and what it knows of
/// each fact.
pub struct RingModel {
    /// Per store: the facts it must hold as its own writes.
    pub own: Vec<HashSet<Hash>>,
    /// Every fact the checker wrote or tried to write, and every hash they
    /// name.
    pub attempted: HashSet<Hash>,
    /// Type and predecessors of every fact the model may need to place.
    pub info: HashMap<Hash, FactInfo>,
}

/// Reads every server's log and judges the ring's final checks; call once
/// the links caught up after the heal.
pub async fn judge(
    api: &Api,
    bases: &[String],
    workload: &Workload,
    recorded: &Recorded,
    verdicts: &mut Verdicts,
) {
    let mut logs = Vec::new();
    for (server_idx, base) in bases.iter().enumerate() {
        match read_whole_log(api, server_idx, base, verdicts).await {
            Ok(log) => logs.push(log),
            Err(problem) => {
                verdicts.violation(CHECK_EQUAL, problem);
                return;
            }
        }
    }
    let model = model(workload, recorded, &logs);
    judge_logs(&logs, &model, &links(), verdicts);
}

/// The model's inputs from the run's history and the logs.
fn model(workload: &Workload, recorded: &Recorded, logs: &[Vec<LogEntry>]) -> RingModel {
    let facts = &recorded.facts;
    let held: Vec<HashSet<Hash>> = logs
        .iter()
        .map(|log| log.iter().map(|entry| entry.hash).collect())
        .collect();
    let mut own: Vec<HashSet<Hash>> = workload
        .setup_facts
        .iter()
        .map(|hashes| hashes.iter().copied().collect())
        .collect();
    let mut attempted = HashSet::new();
    let mut info = HashMap::new();
    for (store_idx, hashes) in workload.setup_facts.iter().enumerate() {
        for (fact_idx, hash) in hashes.iter().enumerate() {
            let type_name = if fact_idx < workload.key_hashes[store_idx].len() {
                KEY_TYPE
            } else {
                MARKER_TYPE
            };
            attempted.insert(*hash);
            info.insert(
                *hash,
                FactInfo {
                    type_name: type_name.to_string(),
                    predecessors: Vec::new(),
                },
            );
        }
    }
    for (_, written) in facts.iter() {
        let store_idx = usize::from(written.store_idx);
        let predecessors: Vec<Hash> = facts
            .predecessors(written)
            .iter()
            .map(|&predecessor| facts.hash_of(predecessor))
            .collect();
        attempted.insert(written.hash);
        attempted.extend(predecessors.iter().copied());
        info.insert(
            written.hash,
            FactInfo {
                type_name: ITEM_TYPE.to_string(),
                predecessors,
            },
        );
        let own_write = match written.outcome {
            WriteOutcome::Acked { .. } => true,
            WriteOutcome::Unknown | WriteOutcome::Pending => held
                .get(store_idx)
                .is_some_and(|held| held.contains(&written.hash)),
            WriteOutcome::Refused { .. } => false,
        };
        if own_write {
            own[store_idx].insert(written.hash);
        }
    }
    // What the servers write themselves (`Cairn.*`) is their own.
    for (store_idx, log) in logs.iter().enumerate() {
        for entry in log {
            info.entry(entry.hash).or_insert_with(|| FactInfo {
                type_name: entry.type_name.clone(),
                predecessors: entry.predecessors.clone(),
            });
            if entry.type_name.starts_with("Cairn.") {
                own[store_idx].insert(entry.hash);
            }
        }
    }
    RingModel {
        own,
        attempted,
        info,
    }
}

/// Whether type `name` matches `pattern`: `*` matches any run of
/// characters (dots included, possibly empty), every other character
/// itself — the checker's own reading of the pattern grammar.
pub fn type_matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((prefix, rest)) => {
            let Some(after_prefix) = name.strip_prefix(prefix) else {
                return false;
            };
            if rest.is_empty() {
                return true;
            }
            // Try the star swallowing every possible run.
            (0..=after_prefix.len())
                .filter(|&start| after_prefix.is_char_boundary(start))
                .any(|start| type_matches(rest, &after_prefix[start..]))
        }
    }
}

/// Adds `hash` and, transitively, its predecessors (as far as the model
/// knows them) to `set`.
fn add_closed(set: &mut HashSet<Hash>, hash: Hash, info: &HashMap<Hash, FactInfo>) {
    let mut stack = vec![hash];
    while let Some(hash) = stack.pop() {
        if set.insert(hash) {
            if let Some(fact) = info.get(&hash) {
                stack.extend(fact.predecessors.iter().copied());
            }
        }
    }
}

/// What each store must hold: its own facts, plus for each incoming link
/// what the link's types select of the source's set, closed under
/// predecessors, until nothing changes.
pub fn expected_sets(model: &RingModel, links: &[RingLink]) -> Vec<HashSet<Hash>> {
    let mut sets: Vec<HashSet<Hash>> = Vec::new();
    for own in &model.own {
        let mut set = HashSet::new();
        for &hash in own {
            add_closed(&mut set, hash, &model.info);
        }
        sets.push(set);
    }
    loop {
        let mut changed = false;
        for link in links {
            let selected: Vec<Hash> = sets[link.source_idx]
                .iter()
                .filter(|hash| !sets[link.receiver_idx].contains(hash))
                .filter(|hash| {
                    model.info.get(hash).is_some_and(|fact| {
                        link.types
                            .iter()
                            .any(|pattern| type_matches(pattern, &fact.type_name))
                    })
                })
                .copied()
                .collect();
            for hash in selected {
                changed = true;
                add_closed(&mut sets[link.receiver_idx], hash, &model.info);
            }
        }
        if !changed {
            return sets;
        }
    }
}

/// Judges every server's log against the model: the filtered sets, the
/// closure, phantoms and duplicates.
pub fn judge_logs(
    logs: &[Vec<LogEntry>],
    model: &RingModel,
    links: &[RingLink],
    verdicts: &mut Verdicts,
) {
    let expected = expected_sets(model, links);
    let type_of = |hash: &Hash| {
        model
            .info
            .get(hash)
            .map_or("an unknown type", |fact| fact.type_name.as_str())
            .to_string()
    };
    for (server_idx, log) in logs.iter().enumerate() {
        let mut seq_of: HashMap<Hash, u64> = HashMap::with_capacity(log.len());
        let mut duplicates = Vec::new();
        for entry in log {
            if let Some(first_seq) = seq_of.insert(entry.hash, entry.seq) {
                duplicates.push(format!(
                    "server {server_idx}: {} is at seq {first_seq} and again at seq {}",
                    entry.hash, entry.seq
                ));
                seq_of.insert(entry.hash, first_seq);
            }
        }
        verdicts.examined(CHECK_DUPLICATES, log.len() as u64);
        report(
            verdicts,
            CHECK_DUPLICATES,
            server_idx,
            duplicates,
            COUNTEREXAMPLES_PER_SERVER_MAX,
        );

        let mut unclosed = Vec::new();
        for entry in log {
            for predecessor in &entry.predecessors {
                match seq_of.get(predecessor) {
                    Some(&before) if before < entry.seq => {}
                    Some(&after) => unclosed.push(format!(
                        "server {server_idx}: {} ({}) is at seq {} but its predecessor {predecessor} at seq {after}",
                        entry.hash, entry.type_name, entry.seq
                    )),
                    None => unclosed.push(format!(
                        "server {server_idx}: {} ({}) is at seq {} without its predecessor {predecessor}",
                        entry.hash, entry.type_name, entry.seq
                    )),
                }
            }
        }
        verdicts.examined(CHECK_CLOSED, log.len() as u64);
        report(
            verdicts,
            CHECK_CLOSED,
            server_idx,
            unclosed,
            COUNTEREXAMPLES_PER_SERVER_MAX,
        );

        let phantoms: Vec<String> = log
            .iter()
            .filter(|entry| {
                !model.attempted.contains(&entry.hash) && !entry.type_name.starts_with("Cairn.")
            })
            .map(|entry| {
                format!(
                    "server {server_idx}: {} ({}) at seq {} was never written",
                    entry.hash, entry.type_name, entry.seq
                )
            })
            .collect();
        verdicts.examined(CHECK_PHANTOM, log.len() as u64);
        report(
            verdicts,
            CHECK_PHANTOM,
            server_idx,
            phantoms,
            COUNTEREXAMPLES_PER_SERVER_MAX,
        );

        let Some(expected) = expected.get(server_idx) else {
            continue;
        };
        let mut missing: Vec<String> = expected
            .iter()
            .filter(|hash| !seq_of.contains_key(hash))
            .map(|hash| {
                format!(
                    "server {server_idx} lacks {hash} ({}), which it must hold",
                    type_of(hash)
                )
            })
            .collect();
        missing.sort();
        let extra: Vec<String> = log
            .iter()
            .filter(|entry| !expected.contains(&entry.hash))
            .map(|entry| {
                format!(
                    "server {server_idx} holds {} ({}) at seq {}, which no link selects for it",
                    entry.hash, entry.type_name, entry.seq
                )
            })
            .collect();
        verdicts.examined(CHECK_EQUAL, expected.len() as u64);
        if !missing.is_empty() || !extra.is_empty() {
            verdicts.violation(
                CHECK_EQUAL,
                format!(
                    "server {server_idx} holds {} facts; the model says {}: {} missing, {} extra",
                    log.len(),
                    expected.len(),
                    missing.len(),
                    extra.len()
                ),
            );
        }
        let half = COUNTEREXAMPLES_PER_SERVER_MAX / 2;
        report(verdicts, CHECK_EQUAL, server_idx, missing, half);
        report(verdicts, CHECK_EQUAL, server_idx, extra, half);
    }
}

/// Files a server's counterexamples of `check`: the first `shown_max` in
/// full and the count of the rest.
fn report(
    verdicts: &mut Verdicts,
    check: &str,
    server_idx: usize,
    counterexamples: Vec<String>,
    shown_max: usize,
) {
    let n_counterexamples = counterexamples.len();
    for counterexample in counterexamples.into_iter().take(shown_max) {
        verdicts.violation(check, counterexample);
    }
    if n_counterexamples > shown_max {
        verdicts.violation(
            check,
            format!(
                "server {server_idx}: … and {} more like these",
                n_counterexamples - shown_max
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(byte: u8) -> Hash {
        Hash::of_bytes(&[byte])
    }

    fn key(store: u8) -> Hash {
        hash(10 + store)
    }

    fn item(store: u8) -> Hash {
        hash(20 + store)
    }

    fn marker(store: u8) -> Hash {
        hash(30 + store)
    }

    fn fact(type_name: &str, predecessors: &[Hash]) -> FactInfo {
        FactInfo {
            type_name: type_name.to_string(),
            predecessors: predecessors.to_vec(),
        }
    }

    /// Each store writes a key, an item naming it and a marker: 10 + s,
    /// 20 + s, 30 + s.
    fn scenario() -> RingModel {
        let mut info = HashMap::new();
        let mut own = Vec::new();
        for store in 0..3u8 {
            info.insert(hash(10 + store), fact(KEY_TYPE, &[]));
            info.insert(hash(20 + store), fact(ITEM_TYPE, &[hash(10 + store)]));
            info.insert(hash(30 + store), fact(MARKER_TYPE, &[]));
            own.push(HashSet::from([
                hash(10 + store),
                hash(20 + store),
                hash(30 + store),
            ]));
        }
        let attempted = info.keys().copied().collect();
        RingModel {
            own,
            attempted,
            info,
        }
    }

    /// A log holding `hashes` in that order, from seq 1.
    fn log_of(model: &RingModel, hashes: &[Hash]) -> Vec<LogEntry> {
        hashes
            .iter()
            .enumerate()
            .map(|(idx, hash)| LogEntry {
                seq: idx as u64 + 1,
                hash: *hash,
                type_name: model.info[hash].type_name.clone(),
                predecessors: model.info[hash].predecessors.clone(),
            })
            .collect()
    }

    /// The logs the ring's links must produce from [`scenario`].
    fn converged_logs(model: &RingModel) -> Vec<Vec<LogEntry>> {
        vec![
            // A: its own, then C's and B's items (A ← C selects items),
            // each after the key it names.
            log_of(
                model,
                &[key(0), item(0), marker(0), key(2), item(2), key(1), item(1)],
            ),
            // B: its own, then A's and C's items with their keys.
            log_of(
                model,
                &[key(1), item(1), marker(1), key(0), item(0), key(2), item(2)],
            ),
            // C: its own, then everything of check.* B holds.
            log_of(
                model,
                &[
                    key(2),
                    item(2),
                    marker(2),
                    key(1),
                    item(1),
                    marker(1),
                    key(0),
                    item(0),
                ],
            ),
        ]
    }

    fn failures(verdicts: Verdicts) -> HashMap<String, Vec<String>> {
        verdicts
            .into_results()
            .into_iter()
            .filter(|result| !result.passed())
            .map(|result| (result.name, result.counterexamples))
            .collect()
    }

    #[test]
    fn patterns_match_as_the_grammar_says() {
        assert!(type_matches("*", "Cairn.Claimed"));
        assert!(type_matches("check.*", "check.Item"));
        assert!(type_matches("check.*", "check.Item.Line"));
        assert!(type_matches("check.It*m", "check.Item"));
        assert!(type_matches("check.Item", "check.Item"));
        assert!(!type_matches("check.Item", "check.Items"));
        assert!(!type_matches("check.*", "checks.Item"));
        assert!(!type_matches("*.Key", "check.Item"));
        assert!(type_matches("*Key", "check.Key"));
    }

    #[test]
    fn the_expected_sets_follow_the_filters_around_the_ring() {
        let model = scenario();
        let sets = expected_sets(&model, &links());
        // Items everywhere, with the keys they name; markers only where
        // check.* carries them (B's to C).
        assert_eq!(
            sets[0],
            HashSet::from([key(0), item(0), marker(0), key(1), item(1), key(2), item(2)])
        );
        assert_eq!(
            sets[1],
            HashSet::from([key(1), item(1), marker(1), key(0), item(0), key(2), item(2)])
        );
        assert_eq!(
            sets[2],
            HashSet::from([
                key(2),
                item(2),
                marker(2),
                key(1),
                item(1),
                marker(1),
                key(0),
                item(0)
            ])
        );
        // With every link selecting everything, the sets are equal.
        let mut everything = links();
        for link in &mut everything {
            link.types = vec!["*"];
        }
        let sets = expected_sets(&model, &everything);
        assert!(sets.iter().all(|set| set.len() == 9 && *set == sets[0]));
    }

    #[test]
    fn converged_logs_pass_every_check() {
        let model = scenario();
        let mut verdicts = Verdicts::default();
        judge_logs(&converged_logs(&model), &model, &links(), &mut verdicts);
        assert_eq!(failures(verdicts), HashMap::new());
    }

    /// The negative control: a log short of one fact, one with a fact no
    /// link selects, one with a fact before its predecessor, one twice and
    /// one never written — each fails its check.
    #[test]
    fn each_check_fails_on_the_log_that_breaks_it() {
        let model = scenario();

        let mut logs = converged_logs(&model);
        logs[1].retain(|entry| entry.hash != item(2));
        let mut verdicts = Verdicts::default();
        judge_logs(&logs, &model, &links(), &mut verdicts);
        let failed = failures(verdicts);
        assert_eq!(failed.keys().collect::<Vec<_>>(), vec![CHECK_EQUAL]);
        assert!(failed[CHECK_EQUAL][0].contains("1 missing, 0 extra"));
        assert!(failed[CHECK_EQUAL][1].contains("server 1 lacks"));

        let mut logs = converged_logs(&model);
        logs[0].extend(log_of(&model, &[marker(2)]));
        logs[0].last_mut().unwrap().seq = 100;
        let mut verdicts = Verdicts::default();
        judge_logs(&logs, &model, &links(), &mut verdicts);
        let failed = failures(verdicts);
        assert_eq!(failed.keys().collect::<Vec<_>>(), vec![CHECK_EQUAL]);
        assert!(failed[CHECK_EQUAL][0].contains("0 missing, 1 extra"));
        assert!(failed[CHECK_EQUAL][1].contains("which no link selects"));

        let mut logs = converged_logs(&model);
        logs[1][3].seq = 20; // A's key after the item naming it
        let mut verdicts = Verdicts::default();
        judge_logs(&logs, &model, &links(), &mut verdicts);
        assert!(failures(verdicts).contains_key(CHECK_CLOSED));

        let mut logs = converged_logs(&model);
        logs[2].extend(log_of(&model, &[key(2)]));
        logs[2].last_mut().unwrap().seq = 100;
        let mut verdicts = Verdicts::default();
        judge_logs(&logs, &model, &links(), &mut verdicts);
        assert_eq!(
            failures(verdicts).keys().collect::<Vec<_>>(),
            vec![CHECK_DUPLICATES]
        );

        let mut logs = converged_logs(&model);
        logs[0].push(LogEntry {
            seq: 100,
            hash: hash(99),
            type_name: ITEM_TYPE.to_string(),
            predecessors: Vec::new(),
        });
        let mut verdicts = Verdicts::default();
        judge_logs(&logs, &model, &links(), &mut verdicts);
        let failed = failures(verdicts);
        assert!(failed.contains_key(CHECK_PHANTOM), "{failed:?}");
        assert!(failed.contains_key(CHECK_EQUAL), "{failed:?}");
    }

    #[test]
    fn the_misdefined_link_differs_from_the_expected_one() {
        assert_eq!(links_defined(false), links());
        assert_ne!(links_defined(true), links());
    }
}
