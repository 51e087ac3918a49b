//! `Flows`: which identity actually wrote and consumed which types, as
//! this server saw it, and the recorder task that persists it as
//! `Cairn.Flow` facts (one per identity, kind, type and UTC day).
//!
//! Observing is on the request path, so it only touches memory: a short
//! critical section on a bounded table ([`FLOWS_MAX`] flows; more are
//! counted as dropped) and a `try_send` on a bounded queue. The recorder
//! writes the queued flows off the request path; a write never waits for
//! it and never fails because of it. A flow whose fact could not be
//! queued or written is written at its next observation; a crash loses at
//! most the observations of the current day that were not yet written.
//!
//! Each day's fact of a flow names the previous day's as `previous`, so
//! the facts that no later fact of the flow follows — one per flow — are
//! what a starting server loads (`without: Cairn.Flow`), however long the
//! history. Other servers of the same store write their own; a catch-up
//! before each answer reads the flow facts written since the last one.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use cairn_api::services::{
    FlowKind, FlowView, FLOW_FACT_TYPE, FLOW_REGISTRY_TYPE, PREVIOUS_ROLE, REGISTRY_ROLE,
};
use cairn_fact::{CanonicalFact, Hash};
use cairn_store::{ReadError, Store, StoredFact, SuccessorsQuery};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{day_of, day_start_ms, day_text, parse_day, server_fact, DAY_MS};
use crate::auth::{unix_ms, Caller};
use crate::limits::{
    FLOWS_MAX, FLOW_BATCH_MAX, FLOW_CATCH_UP_PAGES_MAX, FLOW_QUEUE_MAX, SUCCESSORS_LIMIT_MAX,
};

/// The anchor every `Cairn.Flow` fact names as `registry`.
pub fn flow_registry_anchor() -> &'static CanonicalFact {
    static ANCHOR: OnceLock<CanonicalFact> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        server_fact(serde_json::json!({
            "type": FLOW_REGISTRY_TYPE, "fields": {}, "predecessors": {}
        }))
    })
}

/// One flow: who did what with which type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FlowKey {
    identity: Arc<str>,
    kind: FlowKind,
    type_name: Box<str>,
}

/// What is known of one flow.
#[derive(Debug)]
struct FlowEntry {
    first_seen_ms: u64,
    last_seen_ms: u64,
    /// The latest day whose fact is written or queued.
    persisted_day: Option<u64>,
    /// The latest fact of this flow known to be stored, and its day.
    last_fact: Option<(u64, Hash)>,
}

#[derive(Default)]
struct FlowTable {
    entries: HashMap<FlowKey, FlowEntry>,
    /// Observations and loaded facts not kept because the table was full.
    dropped: u64,
    /// Flow facts up to this `seq` of the store are merged in.
    read_after_seq: u64,
}

impl FlowTable {
    /// The entry of `key`, made if there is room (`None`, counted as
    /// dropped, if not).
    fn entry(&mut self, key: FlowKey, seen_ms: u64) -> Option<&mut FlowEntry> {
        if !self.entries.contains_key(&key) && self.entries.len() >= FLOWS_MAX {
            self.dropped += 1;
            return None;
        }
        Some(self.entries.entry(key).or_insert(FlowEntry {
            first_seen_ms: seen_ms,
            last_seen_ms: seen_ms,
            persisted_day: None,
            last_fact: None,
        }))
    }
}

/// A flow fact to write.
struct FlowRecord {
    key: FlowKey,
    day: u64,
    first_day: u64,
}

/// The observed flows of this server; see the module documentation.
pub struct Flows {
    observing: bool,
    table: Mutex<FlowTable>,
    queue: mpsc::Sender<FlowRecord>,
    /// Taken by the recorder when it starts.
    queued: Mutex<Option<mpsc::Receiver<FlowRecord>>>,
    /// One catch-up at a time.
    catching_up: tokio::sync::Mutex<()>,
}

impl Flows {
    /// Flows of a server with access control (`observing`), or of one
    /// without, which has no identities and records nothing.
    pub fn new(observing: bool) -> Arc<Flows> {
        let (queue, queued) = mpsc::channel(FLOW_QUEUE_MAX);
        Arc::new(Flows {
            observing,
            table: Mutex::new(FlowTable::default()),
            queue,
            queued: Mutex::new(Some(queued)),
            catching_up: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether this server records flows.
    pub fn observing(&self) -> bool {
        self.observing
    }

    fn table(&self) -> MutexGuard<'_, FlowTable> {
        // A panic while holding the lock leaves a table that is still a
        // valid set of observations.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The distinct types of a batch, if `caller` is an identity whose
    /// writes are observed (nothing is collected otherwise).
    pub fn types_written(&self, caller: &Caller, facts: &[CanonicalFact]) -> Vec<String> {
        if !self.observing || caller.name().is_none() {
            return Vec::new();
        }
        let types: BTreeSet<&str> = facts
            .iter()
            .map(|fact| fact.fact.type_name.as_str())
            .collect();
        types.into_iter().map(str::to_string).collect()
    }

    /// Records that `caller` did `kind` with each of `types` now (reads by
    /// admins excepted). Never waits: see the module documentation.
    pub fn observe<'a>(
        &self,
        caller: &Caller,
        kind: FlowKind,
        types: impl IntoIterator<Item = &'a str>,
    ) {
        let Some(identity) = caller.name().filter(|_| self.observing) else {
            return;
        };
        // An admin reading is an operator looking (the console, the CLI),
        // not a service consuming: recording it would draw the operator
        // into the flow map and make browsing write facts.
        if kind == FlowKind::Consumes && caller.is_admin() {
            return;
        }
        let now_ms = unix_ms();
        let today = day_of(now_ms);
        let mut table = self.table();
        for type_name in types {
            let key = FlowKey {
                identity: Arc::clone(identity),
                kind,
                type_name: type_name.into(),
            };
            let Some(entry) = table.entry(key.clone(), now_ms) else {
                continue;
            };
            entry.first_seen_ms = entry.first_seen_ms.min(now_ms);
            entry.last_seen_ms = entry.last_seen_ms.max(now_ms);
            if entry.persisted_day.is_none_or(|day| day < today) {
                let record = FlowRecord {
                    key,
                    day: today,
                    first_day: day_of(entry.first_seen_ms),
                };
                // A full queue: the next observation tries again.
                if self.queue.try_send(record).is_ok() {
                    entry.persisted_day = Some(today);
                }
            }
        }
    }

    /// Every flow known, sorted by type, kind and identity, and how many
    /// were dropped.
    pub fn snapshot(&self) -> (Vec<FlowView>, u64) {
        let table = self.table();
        let mut flows: Vec<FlowView> = table
            .entries
            .iter()
            .map(|(key, entry)| FlowView {
                type_name: key.type_name.to_string(),
                kind: key.kind,
                identity: key.identity.to_string(),
                service: None,
                first_seen_ms: entry.first_seen_ms,
                last_seen_ms: entry.last_seen_ms,
            })
            .collect();
        flows.sort_by(|a, b| {
            (&a.type_name, a.kind, &a.identity).cmp(&(&b.type_name, b.kind, &b.identity))
        });
        (flows, table.dropped)
    }

    /// The types some identity was seen writing, ever.
    pub fn written_types(&self) -> BTreeSet<String> {
        self.table()
            .entries
            .keys()
            .filter(|key| key.kind == FlowKind::Writes)
            .map(|key| key.type_name.to_string())
            .collect()
    }

    /// Merges in the flow facts stored since the last catch-up (by this
    /// server or another of the same store); the first one loads the
    /// latest fact of every flow.
    pub async fn catch_up<S: Store>(&self, store: &S) -> Result<(), ReadError> {
        if !self.observing {
            return Ok(());
        }
        let _one_at_a_time = self.catching_up.lock().await;
        let mut after_seq = self.table().read_after_seq;
        // The first load skips the days a later fact of the same flow
        // follows: one fact per flow, however long the history.
        let without_types = if after_seq == 0 {
            vec![FLOW_FACT_TYPE.to_string()]
        } else {
            Vec::new()
        };
        for _ in 0..FLOW_CATCH_UP_PAGES_MAX {
            let page = store
                .successors(&SuccessorsQuery {
                    predecessor: flow_registry_anchor().hash,
                    type_name: FLOW_FACT_TYPE.to_string(),
                    role: Some(REGISTRY_ROLE.to_string()),
                    without_types: without_types.clone(),
                    after_seq,
                    limit: SUCCESSORS_LIMIT_MAX,
                })
                .await?;
            let now_ms = unix_ms();
            let mut table = self.table();
            for fact in &page.facts {
                match parse_flow_fact(fact) {
                    Some((key, day, first_day)) => {
                        merge(&mut table, key, day, first_day, fact.hash, now_ms)
                    }
                    None => {
                        tracing::warn!(hash = %fact.hash, "a Cairn.Flow fact is not one this server reads; skipped")
                    }
                }
            }
            table.read_after_seq = table.read_after_seq.max(page.next_seq);
            if page.facts.is_empty() || page.next_seq <= after_seq {
                break;
            }
            after_seq = page.next_seq;
        }
        Ok(())
    }

    /// Writes a batch of flow facts (with the anchor, idempotently). On
    /// failure their flows are written again at their next observation.
    async fn persist<S: Store>(&self, store: &S, records: Vec<FlowRecord>) {
        let facts: Vec<CanonicalFact> = {
            let table = self.table();
            let anchor = flow_registry_anchor();
            std::iter::once(anchor.clone())
                .chain(records.iter().map(|record| {
                    let previous = table
                        .entries
                        .get(&record.key)
                        .and_then(|entry| entry.last_fact)
                        .filter(|(day, _)| *day < record.day)
                        .map(|(_, hash)| hash);
                    flow_fact(record, previous)
                }))
                .collect()
        };
        let hashes: Vec<Hash> = facts.iter().skip(1).map(|fact| fact.hash).collect();
        match store.put_facts(facts).await {
            Ok(_) => {
                let mut table = self.table();
                for (record, hash) in records.iter().zip(hashes) {
                    if let Some(entry) = table.entries.get_mut(&record.key) {
                        if entry.last_fact.is_none_or(|(day, _)| day <= record.day) {
                            entry.last_fact = Some((record.day, hash));
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, n_flows = records.len(), "could not write flow facts; they are written at their next observation");
                let mut table = self.table();
                for record in &records {
                    if let Some(entry) = table.entries.get_mut(&record.key) {
                        if entry.persisted_day == Some(record.day) {
                            entry.persisted_day = None;
                        }
                    }
                }
            }
        }
    }
}

/// Merges one stored flow fact into the table. Its times are known to
/// the day: first seen at the start of `first_day`, last seen at the end
/// of `day` (or now, if that is earlier).
fn merge(table: &mut FlowTable, key: FlowKey, day: u64, first_day: u64, hash: Hash, now_ms: u64) {
    let first_seen_ms = day_start_ms(first_day.min(day));
    let last_seen_ms = (day_start_ms(day) + DAY_MS - 1)
        .min(now_ms)
        .max(first_seen_ms);
    let Some(entry) = table.entry(key, first_seen_ms) else {
        return;
    };
    entry.first_seen_ms = entry.first_seen_ms.min(first_seen_ms);
    entry.last_seen_ms = entry.last_seen_ms.max(last_seen_ms);
    entry.persisted_day = entry.persisted_day.max(Some(day));
    if entry
        .last_fact
        .is_none_or(|(known_day, _)| known_day <= day)
    {
        entry.last_fact = Some((day, hash));
    }
}

/// The `Cairn.Flow` fact of a record.
fn flow_fact(record: &FlowRecord, previous: Option<Hash>) -> CanonicalFact {
    let mut predecessors = serde_json::Map::new();
    predecessors.insert(
        REGISTRY_ROLE.to_string(),
        flow_registry_anchor().hash.to_hex().into(),
    );
    if let Some(previous) = previous {
        predecessors.insert(PREVIOUS_ROLE.to_string(), previous.to_hex().into());
    }
    server_fact(serde_json::json!({
        "type": FLOW_FACT_TYPE,
        "fields": {
            "identity": &*record.key.identity,
            "kind": record.key.kind.as_str(),
            "type": &*record.key.type_name,
            "day": day_text(record.day),
            "first_day": day_text(record.first_day),
        },
        "predecessors": predecessors,
    }))
}

/// The flow, day and first day a stored `Cairn.Flow` fact records.
fn parse_flow_fact(fact: &StoredFact) -> Option<(FlowKey, u64, u64)> {
    let value: serde_json::Value = serde_json::from_slice(&fact.canonical).ok()?;
    let fields = value.get("fields")?;
    let text = |name: &str| fields.get(name).and_then(serde_json::Value::as_str);
    let kind = match text("kind")? {
        "writes" => FlowKind::Writes,
        "consumes" => FlowKind::Consumes,
        _ => return None,
    };
    let day = parse_day(text("day")?)?;
    let first_day = text("first_day").and_then(parse_day).unwrap_or(day);
    let key = FlowKey {
        identity: text("identity")?.into(),
        kind,
        type_name: text("type")?.into(),
    };
    Some((key, day, first_day))
}

/// Starts the task that writes queued flows as facts, after loading the
/// stored ones; it stops at `shutdown` once the queue is written.
pub fn spawn_recorder<S: Store>(
    store: Arc<S>,
    flows: Arc<Flows>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let queued = flows
        .queued
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    tokio::spawn(async move {
        let Some(mut queued) = queued.filter(|_| flows.observing) else {
            return;
        };
        if let Err(error) = flows.catch_up(&*store).await {
            tracing::warn!(%error, "could not load the recorded flows; they are loaded at the next GET /v1/boundaries");
        }
        loop {
            let first = tokio::select! {
                record = queued.recv() => record,
                () = shutdown.cancelled() => None,
            };
            let Some(first) = first else {
                break;
            };
            let mut records = vec![first];
            while records.len() < FLOW_BATCH_MAX {
                match queued.try_recv() {
                    Ok(record) => records.push(record),
                    Err(_) => break,
                }
            }
            flows.persist(&*store, records).await;
        }
        // What was queued before the shutdown, before the store closes.
        queued.close();
        let mut records = Vec::new();
        while let Ok(record) = queued.try_recv() {
            records.push(record);
            if records.len() == FLOW_BATCH_MAX {
                flows.persist(&*store, std::mem::take(&mut records)).await;
            }
        }
        if !records.is_empty() {
            flows.persist(&*store, records).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(identity: &str, type_name: &str) -> FlowKey {
        FlowKey {
            identity: identity.into(),
            kind: FlowKind::Writes,
            type_name: type_name.into(),
        }
    }

    #[test]
    fn a_flow_fact_reads_back_as_what_was_written() {
        let record = FlowRecord {
            key: key("shop", "Shop.Order"),
            day: 20_000,
            first_day: 19_990,
        };
        let fact = flow_fact(&record, Some(Hash::of_bytes(b"x")));
        let stored = StoredFact {
            hash: fact.hash,
            seq: 1,
            canonical: fact.canonical.clone(),
        };
        assert_eq!(
            parse_flow_fact(&stored),
            Some((key("shop", "Shop.Order"), 20_000, 19_990))
        );
        // The same flow on the same day is the same fact.
        assert_eq!(
            fact.hash,
            flow_fact(&record, Some(Hash::of_bytes(b"x"))).hash
        );
    }

    #[test]
    fn merged_facts_keep_the_earliest_and_latest_days() {
        let mut table = FlowTable::default();
        let now_ms = day_start_ms(30) + 1_000;
        merge(
            &mut table,
            key("a", "T"),
            20,
            10,
            Hash::of_bytes(b"20"),
            now_ms,
        );
        merge(
            &mut table,
            key("a", "T"),
            30,
            10,
            Hash::of_bytes(b"30"),
            now_ms,
        );
        merge(
            &mut table,
            key("a", "T"),
            25,
            10,
            Hash::of_bytes(b"25"),
            now_ms,
        );
        let entry = &table.entries[&key("a", "T")];
        assert_eq!(entry.first_seen_ms, day_start_ms(10));
        assert_eq!(entry.last_seen_ms, now_ms, "never later than now");
        assert_eq!(entry.last_fact, Some((30, Hash::of_bytes(b"30"))));
        assert_eq!(entry.persisted_day, Some(30));
    }

    #[test]
    fn the_table_is_bounded_and_counts_what_it_drops() {
        let mut table = FlowTable::default();
        for n in 0..FLOWS_MAX + 5 {
            table.entry(key("a", &format!("T{n}")), 0);
        }
        assert_eq!(table.entries.len(), FLOWS_MAX);
        assert_eq!(table.dropped, 5);
        // A known flow is still updated when the table is full.
        assert!(table.entry(key("a", "T0"), 0).is_some());
    }
}
