//! The mixed workload: writers of chained facts in batches (with retries,
//! idempotent re-sends and deliberately bad batches), readers (point reads
//! of acknowledged facts and followers of the log), and consumers of two
//! subscriptions that ack, fail (nack) or vanish (let leases run out). Each
//! task draws its choices from its own generator, seeded from the run's
//! seed, and records every operation in the [`History`]. Readers and
//! consumers also check what they see at once (wrong bytes, phantoms).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_delivery::SplitMix64;
use cairn_fact::{CanonicalFact, Hash};
use serde_json::{json, Value};

use crate::api::{Answer, Api};
use crate::error::CheckError;
use crate::fact_table::WriteOutcome;
use crate::history::{Delivery, FactToWrite, History, Phase};
use crate::history_file::HistoryFile;

/// The fact type of the workload's items (the subscriptions' selection).
pub const ITEM_TYPE: &str = "check.Item";
/// The fact type of ordering keys.
pub const KEY_TYPE: &str = "check.Key";
/// The fact type of the nemesis's probes after a PostgreSQL failover (no
/// subscription selects it; the oracle leaves it alone).
pub const PROBE_TYPE: &str = "check.FailoverProbe";
/// The fact type of the one fact each store of a ring gets at the start
/// and nothing names: where it ends up shows what the links' types let
/// through on their own, without a predecessor pulling it along.
pub const MARKER_TYPE: &str = "check.Marker";
/// Ordering keys shared by the writers.
pub const KEYS: usize = 64;
/// Attempts of a write before the writer gives up on it (as a client
/// would; the outcome then stays unknown).
const WRITE_ATTEMPTS_MAX: usize = 3;
/// Messages per pull at most.
const PULL_MAX: u64 = 16;
/// How long a pull waits for messages.
const PULL_WAIT_MS: u64 = 300;
/// Lease of the subscriptions: short, so vanished consumers' messages come
/// back quickly.
pub const LEASE_MS: u64 = 1_000;

/// One of the run's subscriptions.
#[derive(Clone, Debug)]
pub struct SubscriptionSpec {
    /// The subscription's name.
    pub name: String,
    /// Its definition, as sent to the server.
    pub definition: Value,
    /// The `max_attempts` of the definition.
    pub max_attempts: u64,
    /// Delivered one at a time per ordering key.
    pub keyed: bool,
}

/// The subscriptions of run `run_id`: one ordered by key, one not.
pub fn subscriptions(run_id: &str) -> Vec<SubscriptionSpec> {
    let backoff = json!({"initial_ms": 50, "max_ms": 400});
    vec![
        SubscriptionSpec {
            name: format!("check-{run_id}-keyed"),
            definition: json!({"type": ITEM_TYPE, "start": "now", "lease_ms": LEASE_MS,
                "max_attempts": 4, "backoff": backoff, "ordering_key": "key"}),
            max_attempts: 4,
            keyed: true,
        },
        SubscriptionSpec {
            name: format!("check-{run_id}-any"),
            definition: json!({"type": ITEM_TYPE, "start": "now", "lease_ms": LEASE_MS,
                "max_attempts": 3, "backoff": backoff}),
            max_attempts: 3,
            keyed: false,
        },
    ]
}

/// Which files a page was served from, for what its seqs say.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ServedFiles {
    /// The server's own files, which the run goes on with: a fact read at
    /// one seq must stay at that seq.
    Lasting,
    /// Damaged files that the nemesis replaces with their backup once it
    /// has probed them. What the server wrote on them meanwhile (in a ring,
    /// what its own links fetched; facts that the damage cut from the
    /// journal and the links fetched again, at new seqs) is thrown away
    /// with them, so their seqs are not the store's history. Their bytes
    /// are still checked.
    Discarded,
}

/// What every task of the workload shares.
pub struct Workload {
    /// Distinguishes this run's subscriptions and facts from earlier runs'.
    pub run_id: String,
    /// The seed the tasks derive their own generators from.
    pub seed: u64,
    /// The HTTP client that classifies every answer.
    pub api: Api,
    /// Everything the tasks recorded.
    pub history: History,
    /// The servers as the workload reaches them (through the proxies).
    pub client_bases: Vec<String>,
    /// The run's subscriptions.
    pub subscriptions: Vec<SubscriptionSpec>,
    /// The `check.Key` facts of each store, acknowledged before the start
    /// (one list when the servers share a store; in a ring, each store has
    /// keys of its own, which its items name).
    pub key_hashes: Vec<Vec<Hash>>,
    /// Every fact written to each store before the start (its keys, and in
    /// a ring its marker), acknowledged.
    pub setup_facts: Vec<Vec<Hash>>,
    /// True when every server has a store of its own (see
    /// [`crate::history::Recorded::independent_stores`]): each writer then
    /// writes to one server, the home of its chain, and point reads of a
    /// fact go to the server that acknowledged it.
    pub independent_stores: bool,
    /// Pause between one writer's batches.
    pub write_interval: Duration,
    /// Writers and readers stop when set.
    pub stop_writes: AtomicBool,
    /// Consumers stop when set.
    pub stop_consumers: AtomicBool,
    phase: AtomicU8,
}

impl Workload {
    /// Prepares the workload: creates the subscriptions (on the first
    /// server) and writes the keys (retrying through faults until each is
    /// acknowledged): to the first server when the servers share a store,
    /// else each store's own keys and marker to its server. The history of
    /// the run, started at `started`, is streamed to `history_file`.
    #[allow(clippy::too_many_arguments)]
    pub async fn prepare(
        run_id: String,
        seed: u64,
        api: Api,
        client_bases: Vec<String>,
        independent_stores: bool,
        write_interval: Duration,
        history_file: HistoryFile,
        started: Instant,
    ) -> Result<Workload, CheckError> {
        let base = client_bases[0].clone();
        let subscriptions = subscriptions(&run_id);
        for spec in &subscriptions {
            retry_until_done("create a subscription", || {
                api.put_subscription(&base, &spec.name, &spec.definition)
            })
            .await?;
        }
        let n_stores = if independent_stores {
            client_bases.len()
        } else {
            1
        };
        let mut key_hashes = Vec::new();
        let mut setup_facts = Vec::new();
        for (store_idx, store_base) in client_bases.iter().take(n_stores).enumerate() {
            let mut facts: Vec<Value> = (0..KEYS)
                .map(|key_idx| {
                    let mut fields = json!({"run": run_id, "key": key_idx});
                    if independent_stores {
                        fields["store"] = json!(store_idx);
                    }
                    json!({"type": KEY_TYPE, "fields": fields, "predecessors": {}})
                })
                .collect();
            if independent_stores {
                facts.push(json!({"type": MARKER_TYPE,
                    "fields": {"run": run_id, "store": store_idx}, "predecessors": {}}));
            }
            let body = retry_until_done("write the ordering keys", || {
                api.post_facts(store_base, &facts)
            })
            .await?;
            let hashes = body["results"]
                .as_array()
                .map(|results| {
                    results
                        .iter()
                        .filter_map(|result| Hash::from_hex(result["hash"].as_str()?).ok())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            if hashes.len() != facts.len() {
                return Err(CheckError::Setup(
                    "the key facts were not all written".to_string(),
                ));
            }
            key_hashes.push(hashes[..KEYS].to_vec());
            setup_facts.push(hashes);
        }
        let history = History::new(&subscriptions, history_file, started);
        history.with(|recorded| recorded.independent_stores = independent_stores);
        Ok(Workload {
            run_id,
            seed,
            api,
            history,
            client_bases,
            subscriptions,
            key_hashes,
            setup_facts,
            independent_stores,
            write_interval,
            stop_writes: AtomicBool::new(false),
            stop_consumers: AtomicBool::new(false),
            phase: AtomicU8::new(Phase::Faults as u8),
        })
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Faults,
            1 => Phase::Drain,
            2 => Phase::Replay,
            _ => Phase::AfterRestart,
        }
    }

    /// Moves to `phase`.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// One of the servers, drawn by `random`.
    pub fn random_base(&self, random: &mut SplitMix64) -> &str {
        let idx = random.in_range(0, self.client_bases.len() as u64 - 1) as usize;
        &self.client_bases[idx]
    }

    /// The store of writer `writer_idx`'s chain: 0 when the servers share
    /// one, else one server's, the writers spread over them.
    fn home_store(&self, writer_idx: usize) -> usize {
        if self.independent_stores {
            writer_idx % self.client_bases.len()
        } else {
            0
        }
    }

    /// Where a write to store `store_idx` goes: any server when they share
    /// it (drawn by `random`), else the store's own server.
    fn write_base(&self, store_idx: usize, random: &mut SplitMix64) -> String {
        if self.independent_stores {
            self.client_bases[store_idx].clone()
        } else {
            self.random_base(random).to_string()
        }
    }

    /// A new item fact and its canonical form.
    #[allow(clippy::too_many_arguments)]
    fn item(
        &self,
        store_idx: usize,
        writer_idx: usize,
        n: u64,
        key_idx: usize,
        prev: Option<&str>,
        poison: bool,
        random: &mut SplitMix64,
    ) -> (Value, CanonicalFact) {
        let pad_len = random.in_range(0, 160) as usize;
        let pad: String = (0..pad_len)
            .map(|_| char::from(b'a' + random.in_range(0, 25) as u8))
            .collect();
        let mut predecessors = json!({"key": self.key_hashes[store_idx][key_idx].to_hex()});
        if let Some(prev) = prev {
            predecessors["prev"] = json!(prev);
        }
        let fact = json!({
            "type": ITEM_TYPE,
            "fields": {"run": self.run_id, "writer": writer_idx, "n": n, "poison": poison, "pad": pad},
            "predecessors": predecessors,
        });
        let canonical = canonical_of(&fact).expect("the workload's facts are valid");
        (fact, canonical)
    }

    /// One writer: batches of chained facts until told to stop.
    pub async fn run_writer(self: Arc<Self>, writer_idx: usize) {
        let mut random = SplitMix64::new(self.seed ^ (0x5752_4954 + writer_idx as u64));
        let store_idx = self.home_store(writer_idx);
        let mut last_acked: Option<String> = None;
        let mut acked_batches: Vec<Vec<Value>> = Vec::new();
        let mut n = 0u64;
        while !self.stop_writes.load(Ordering::Acquire) {
            let choice = random.in_range(0, 99);
            if choice < 4 && !acked_batches.is_empty() {
                // An idempotent re-send of an acknowledged batch.
                let idx = random.in_range(0, acked_batches.len() as u64 - 1) as usize;
                let batch = acked_batches[idx].clone();
                self.write(store_idx, &batch, &mut random, false).await;
            } else if choice < 8 {
                // A bad batch: a new fact, then one whose predecessor does
                // not exist. The whole batch must be refused.
                n += 1;
                let key_idx = random.in_range(0, KEYS as u64 - 1) as usize;
                let (good, good_canonical) = self.item(
                    store_idx,
                    writer_idx,
                    n,
                    key_idx,
                    last_acked.as_deref(),
                    false,
                    &mut random,
                );
                let missing = blake3::hash(&random.next_u64().to_le_bytes())
                    .to_hex()
                    .to_string();
                n += 1;
                let (bad, bad_canonical) = self.item(
                    store_idx,
                    writer_idx,
                    n,
                    key_idx,
                    Some(&missing),
                    false,
                    &mut random,
                );
                let pairs = [(&good, &good_canonical), (&bad, &bad_canonical)];
                self.register(store_idx, &pairs, key_idx);
                self.write(store_idx, &[good, bad], &mut random, true).await;
            } else {
                let n_facts = random.in_range(1, 4) as usize;
                let key_idx = random.in_range(0, KEYS as u64 - 1) as usize;
                let mut facts = Vec::new();
                let mut canonicals = Vec::new();
                let mut prev = last_acked.clone();
                for _ in 0..n_facts {
                    n += 1;
                    let poison = random.in_range(0, 199) == 0;
                    let (fact, canonical) = self.item(
                        store_idx,
                        writer_idx,
                        n,
                        key_idx,
                        prev.as_deref(),
                        poison,
                        &mut random,
                    );
                    prev = Some(canonical.hash.to_hex());
                    facts.push(fact);
                    canonicals.push(canonical);
                }
                let pairs: Vec<(&Value, &CanonicalFact)> = facts.iter().zip(&canonicals).collect();
                self.register(store_idx, &pairs, key_idx);
                if self.write(store_idx, &facts, &mut random, false).await {
                    last_acked = prev;
                    acked_batches.push(facts);
                    if acked_batches.len() > 64 {
                        acked_batches.remove(0);
                    }
                }
            }
            tokio::time::sleep(self.write_interval).await;
        }
    }

    /// Records facts about to be written (before the first attempt, so a
    /// reader that sees them early does not take them for phantoms).
    fn register(&self, store_idx: usize, facts: &[(&Value, &CanonicalFact)], key_idx: usize) {
        let batch = facts
            .iter()
            .map(|(fact, canonical)| FactToWrite {
                hash: canonical.hash,
                predecessors: canonical
                    .fact
                    .all_predecessors()
                    .map(|(_, hash)| *hash)
                    .collect(),
                key: self.key_hashes[store_idx][key_idx],
                poison: fact["fields"]["poison"] == json!(true),
                store_idx: u8::try_from(store_idx).expect("fewer than 256 stores"),
            })
            .collect();
        self.history.with(|recorded| recorded.register_batch(batch));
    }

    /// Writes one batch to store `store_idx`, retrying unknown outcomes;
    /// true when acknowledged.
    async fn write(
        &self,
        store_idx: usize,
        facts: &[Value],
        random: &mut SplitMix64,
        expect_refusal: bool,
    ) -> bool {
        let hashes: Vec<Hash> = facts
            .iter()
            .map(|fact| canonical_of(fact).expect("valid").hash)
            .collect();
        let mut last_overloaded = false;
        for _ in 0..WRITE_ATTEMPTS_MAX {
            let base = self.write_base(store_idx, random);
            self.history
                .with(|recorded| recorded.counts.write_batches += 1);
            match self.api.post_facts(&base, facts).await {
                Answer::Done(body) => {
                    self.record_acked(&hashes, &body, expect_refusal);
                    return !expect_refusal;
                }
                // Overloaded: nothing was done; try again (a refusal is
                // recorded only if every attempt was refused).
                Answer::Refused(429, _) => {
                    last_overloaded = true;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Answer::Refused(status, code) => {
                    let outcome = WriteOutcome::Refused {
                        code: code.as_str().into(),
                    };
                    self.settle_all(&hashes, outcome);
                    if expect_refusal {
                        self.history
                            .with(|recorded| recorded.counts.refused_bad_batches += 1);
                    } else {
                        self.history.violation(
                            "valid writes are accepted",
                            format!(
                                "a valid batch was refused with {status} {code}: {:?}",
                                hex_of(&hashes)
                            ),
                        );
                    }
                    return false;
                }
                Answer::Unknown(..) => {
                    last_overloaded = false;
                    self.settle_all(&hashes, WriteOutcome::Unknown);
                    tokio::time::sleep(Duration::from_millis(random.in_range(20, 200))).await;
                }
            }
        }
        if last_overloaded {
            let code = "overloaded".into();
            self.settle_all(&hashes, WriteOutcome::Refused { code });
        }
        false
    }

    fn settle_all(&self, hashes: &[Hash], outcome: WriteOutcome) {
        self.history.with(|recorded| {
            for hash in hashes {
                recorded.settle(hash, outcome.clone());
            }
        });
    }

    fn record_acked(&self, hashes: &[Hash], body: &Value, expect_refusal: bool) {
        let results = body["results"].as_array().cloned().unwrap_or_default();
        self.history.with(|recorded| {
            if expect_refusal {
                recorded.live_violations.push((
                    "refused writes change nothing".into(),
                    format!(
                        "a batch with a missing predecessor was acknowledged: {:?}",
                        hex_of(hashes)
                    ),
                ));
            }
            if results.len() != hashes.len() {
                recorded.live_violations.push((
                    "valid writes are accepted".into(),
                    format!("{} results for a batch of {}", results.len(), hashes.len()),
                ));
                return;
            }
            for (hash, result) in hashes.iter().zip(&results) {
                let seq = result["seq"].as_u64().unwrap_or(0);
                if result["hash"].as_str() != Some(hash.to_hex().as_str()) {
                    recorded.live_violations.push((
                        "server and client agree on hashes".into(),
                        format!("wrote {hash}, server answered {}", result["hash"]),
                    ));
                }
                if let Some(WriteOutcome::Acked { seq: earlier }) = recorded
                    .facts
                    .by_hash(hash)
                    .map(|fact| fact.outcome.clone())
                {
                    if earlier != seq {
                        recorded.live_violations.push((
                            "acknowledged facts keep their seq".into(),
                            format!("{hash} was acknowledged at seq {earlier}, later at seq {seq}"),
                        ));
                    }
                }
                recorded.settle(hash, WriteOutcome::Acked { seq });
                if let Some(fact_idx) = recorded.facts.idx_of(hash) {
                    recorded.acked_order.push(fact_idx);
                }
            }
        });
    }

    /// One reader: point reads of acknowledged facts and a log follower per
    /// server, until told to stop.
    pub async fn run_reader(self: Arc<Self>, reader_idx: usize) {
        let mut random = SplitMix64::new(self.seed ^ (0x5245_4144 + reader_idx as u64));
        let mut log_cursors = vec![0u64; self.client_bases.len()];
        while !self.stop_writes.load(Ordering::Acquire) {
            let server_idx = random.in_range(0, self.client_bases.len() as u64 - 1) as usize;
            let base = self.client_bases[server_idx].clone();
            if random.in_range(0, 1) == 0 {
                self.point_read(server_idx, &mut random).await;
            } else {
                let cursor = &mut log_cursors[server_idx];
                self.history.with(|recorded| recorded.counts.log_pages += 1);
                if let Answer::Done(page) = self.api.log_page(&base, *cursor, 500).await {
                    self.observe_log_page(server_idx, &page, ServedFiles::Lasting);
                    *cursor = page["next"].as_u64().unwrap_or(*cursor);
                }
            }
            tokio::time::sleep(Duration::from_millis(random.in_range(2, 20))).await;
        }
    }

    /// Reads an acknowledged fact from server `server_idx` (with
    /// independent stores, from the server that acknowledged it: the
    /// others may not hold it yet).
    async fn point_read(&self, server_idx: usize, random: &mut SplitMix64) {
        let Some((hash, store_idx)) = self.history.with(|recorded| {
            if recorded.acked_order.is_empty() {
                return None;
            }
            let idx = random.in_range(0, recorded.acked_order.len() as u64 - 1) as usize;
            let fact = recorded.facts.get(recorded.acked_order[idx]);
            recorded.counts.point_reads += 1;
            Some((fact.hash, usize::from(fact.store_idx)))
        }) else {
            return;
        };
        let server_idx = if self.independent_stores {
            store_idx
        } else {
            server_idx
        };
        let base = &self.client_bases[server_idx];
        match self.api.get_fact(base, &hash.to_hex()).await {
            Answer::Done(body) => {
                // Equal hashes are equal canonical bytes: the hash is their
                // BLAKE3.
                if canonical_of(&body["fact"]).map(|fact| fact.hash) != Some(hash) {
                    self.history.violation(
                        "reads return the acknowledged bytes",
                        format!("server {server_idx} returned other bytes for {hash}"),
                    );
                }
                self.observe(server_idx, &hash, body["seq"].as_u64().unwrap_or(0));
            }
            Answer::Refused(404, _) => self.history.violation(
                "acknowledged writes are durable",
                format!("server {server_idx} answered 404 for acknowledged fact {hash}"),
            ),
            _ => {}
        }
    }

    /// Checks the facts of a log page and, for a page of the server's
    /// lasting files, records the seq at which each one was read.
    pub fn observe_log_page(&self, server_idx: usize, page: &Value, files: ServedFiles) {
        for entry in page["facts"].as_array().into_iter().flatten() {
            let hash = entry["hash"].as_str().unwrap_or_default();
            let seq = entry["seq"].as_u64().unwrap_or(0);
            let Some(canonical) = canonical_of(&entry["fact"]) else {
                self.history.violation(
                    "reads return the acknowledged bytes",
                    format!("server {server_idx}: log entry at seq {seq} is not a valid fact"),
                );
                continue;
            };
            if canonical.hash.to_hex() != hash {
                self.history.violation(
                    "reads return the acknowledged bytes",
                    format!("server {server_idx}: log entry at seq {seq} does not hash to {hash}"),
                );
                continue;
            }
            let fact = &entry["fact"];
            if fact["fields"]["run"].as_str() != Some(self.run_id.as_str())
                || fact["type"] != ITEM_TYPE
            {
                continue;
            }
            let known = self.history.with(|recorded| {
                recorded
                    .facts
                    .by_hash(&canonical.hash)
                    .map(|fact| fact.outcome.clone())
            });
            match known {
                None => self.history.violation(
                    "no phantom facts",
                    format!("server {server_idx}: seq {seq} holds {hash}, which was never written"),
                ),
                Some(WriteOutcome::Refused { code }) => {
                    self.history.violation(
                        "refused writes change nothing",
                        format!("server {server_idx}: {hash} was refused ({code}) but is stored at seq {seq}"),
                    )
                }
                _ => {}
            }
            if files == ServedFiles::Lasting {
                self.observe(server_idx, &canonical.hash, seq);
            }
        }
    }

    fn observe(&self, server_idx: usize, hash: &Hash, seq: u64) {
        self.history
            .with(|recorded| recorded.observe(server_idx, hash, seq));
    }

    /// One consumer of subscription `consumer_idx % subscriptions`: pulls,
    /// then acks, nacks or abandons each message, until told to stop.
    pub async fn run_consumer(self: Arc<Self>, consumer_idx: usize) {
        let mut random = SplitMix64::new(self.seed ^ (0x434f_4e53 + consumer_idx as u64));
        let subscription_idx = consumer_idx % self.subscriptions.len();
        let spec = self.subscriptions[subscription_idx].clone();
        // The subscriptions live on the first server; with independent
        // stores the others do not have them.
        let n_bases = if self.independent_stores {
            1
        } else {
            self.client_bases.len()
        };
        let base = self.client_bases[consumer_idx % n_bases].clone();
        while !self.stop_consumers.load(Ordering::Acquire) {
            let pull_sent = Instant::now();
            self.history.with(|recorded| recorded.counts.pulls += 1);
            let body = json!({"max": PULL_MAX, "wait_ms": PULL_WAIT_MS});
            let Answer::Done(answer) = self
                .api
                .subscription_call(&base, &spec.name, "pull", &body)
                .await
            else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let pull_answered = Instant::now();
            // The phase when the answer came: a pull sent just before the
            // dead letters were replayed may already carry replayed ones.
            let phase = self.phase();
            let mut to_ack = Vec::new();
            let mut to_nack = Vec::new();
            for message in answer["messages"].as_array().into_iter().flatten() {
                let token = message["token"].as_str().unwrap_or_default().to_string();
                let hash = message["hash"].as_str().unwrap_or_default().to_string();
                let poison = self.record_delivery(
                    subscription_idx,
                    message,
                    phase,
                    pull_sent,
                    pull_answered,
                );
                let roll = random.in_range(0, 99);
                let fail = match phase {
                    Phase::Faults => poison || roll < 6,
                    Phase::Drain => poison,
                    Phase::Replay | Phase::AfterRestart => false,
                };
                if fail {
                    to_nack.push(token);
                } else if phase == Phase::Faults && roll < 8 {
                    // Vanish: neither ack nor nack; the lease runs out.
                } else {
                    to_ack.push((token, hash));
                }
            }
            if !to_nack.is_empty() {
                self.history
                    .with(|recorded| recorded.counts.nacks_sent += to_nack.len() as u64);
                let body = json!({"tokens": to_nack, "delay_ms": random.in_range(0, 100),
                    "error": "cairn check: failing on purpose"});
                let _ = self
                    .api
                    .subscription_call(&base, &spec.name, "nack", &body)
                    .await;
            }
            if !to_ack.is_empty() {
                self.ack(&base, subscription_idx, &to_ack, phase).await;
            }
        }
    }

    /// Records and checks one delivered message of subscription
    /// `subscription_idx`; true when it is poison.
    pub fn record_delivery(
        &self,
        subscription_idx: usize,
        message: &Value,
        phase: Phase,
        pull_sent: Instant,
        pull_answered: Instant,
    ) -> bool {
        let name = &self.subscriptions[subscription_idx].name;
        let hash_text = message["hash"].as_str().unwrap_or_default();
        let seq = message["seq"].as_u64().unwrap_or(0);
        let attempt = message["attempt"].as_u64().unwrap_or(0);
        let delivered_hash = canonical_of(&message["fact"]).map(|fact| fact.hash);
        self.history.with(|recorded| {
            let Some(fact_idx) = recorded.facts.idx_of_text(hash_text) else {
                if message["fact"]["fields"]["run"].as_str() == Some(self.run_id.as_str()) {
                    recorded.live_violations.push((
                        "no phantom facts".into(),
                        format!("{name} delivered {hash_text}, which was never written"),
                    ));
                }
                return false;
            };
            let written = recorded.facts.get(fact_idx);
            let poison = written.poison;
            // Equal hashes are equal canonical bytes: the hash is their
            // BLAKE3.
            if delivered_hash != Some(written.hash) {
                recorded.live_violations.push((
                    "deliveries carry the written bytes".into(),
                    format!("{name} delivered other bytes for {hash_text}"),
                ));
            }
            let delivery = Delivery {
                seq,
                attempt,
                phase,
                pull_sent_ns: recorded.ns_since_start(pull_sent),
                pull_answered_ns: recorded.ns_since_start(pull_answered),
            };
            recorded.record_delivery(subscription_idx, fact_idx, hash_text, delivery);
            poison
        })
    }

    async fn ack(
        &self,
        base: &str,
        subscription_idx: usize,
        messages: &[(String, String)],
        phase: Phase,
    ) {
        let name = &self.subscriptions[subscription_idx].name;
        let ticket = self.history.with(|recorded| {
            recorded.counts.acks_sent += messages.len() as u64;
            recorded.ack_sent()
        });
        let tokens: Vec<&String> = messages.iter().map(|(token, _)| token).collect();
        let body = json!({ "tokens": tokens });
        let Answer::Done(answer) = self.api.subscription_call(base, name, "ack", &body).await
        else {
            self.history.with(|recorded| recorded.ack_answered(ticket));
            return;
        };
        let answered = Instant::now();
        let results = answer["results"].as_array().cloned().unwrap_or_default();
        self.history.with(|recorded| {
            for ((_, hash_text), result) in messages.iter().zip(&results) {
                if result["status"] == json!("acked") {
                    recorded.record_ack(subscription_idx, hash_text, phase, answered);
                }
            }
            recorded.ack_answered(ticket);
        });
    }
}

/// Hashes as their text, for counterexamples.
fn hex_of(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(Hash::to_hex).collect()
}

/// The canonical form of a fact given as JSON, if it is a valid fact.
pub fn canonical_of(fact: &Value) -> Option<CanonicalFact> {
    let bytes = serde_json::to_vec(fact).ok()?;
    CanonicalFact::from_json(&bytes, usize::MAX).ok()
}

/// Repeats `call` until it is done (bounded: a minute), for the setup steps
/// that must succeed before the run can start.
async fn retry_until_done<F, Fut>(what: &str, mut call: F) -> Result<Value, CheckError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match call().await {
            Answer::Done(body) => return Ok(body),
            Answer::Refused(status, code) => {
                return Err(CheckError::Setup(format!("cannot {what}: {status} {code}")))
            }
            Answer::Unknown(status, detail) if Instant::now() > deadline => {
                return Err(CheckError::Setup(format!(
                    "cannot {what}: {status} {detail}"
                )))
            }
            Answer::Unknown(..) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
