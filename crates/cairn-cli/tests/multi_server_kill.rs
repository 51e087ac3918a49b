//! Killing one of several `cairn serve` processes over one PostgreSQL
//! database under load loses no acknowledged write and no acknowledged ack,
//! and the messages whose leases it abandoned are delivered again.
//!
//! The writers are SDK clients (`cairn_client::Client`) configured with all
//! three endpoints: they carry on through the others when one dies.
//!
//! It only makes sense on the PostgreSQL backend: each test returns at once
//! unless `CAIRN_TEST_BACKEND=postgres`. Run with
//! `CAIRN_TEST_BACKEND=postgres cargo test -p cairn-cli --test multi_server_kill`.
//! The tests use loopback only, bound every loop in count and time, and
//! stop only the processes they started.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::multi_server::*;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const LOAD_WRITERS: usize = 3;
const LOAD_BATCHES_PER_WRITER: usize = 30;
const LOAD_BATCH: usize = 30;
const LOAD_FACTS: usize = LOAD_WRITERS * LOAD_BATCHES_PER_WRITER * LOAD_BATCH;
const LOAD_CONSUMERS: usize = 6;
const LOAD_SUBSCRIPTION: &str = "load";
const LOAD_DEADLINE: Duration = Duration::from_secs(90);
/// Quiet time after everything is settled, longer than a lease (2 s) plus
/// its backoff, so that a message wrongly redelivered would show up.
const LOAD_QUIET: Duration = Duration::from_secs(4);
/// The server that is killed.
const KILLED_SERVER_IDX: usize = 1;
/// How long a consumer works on the messages of one pull before acking:
/// long enough that the kill may find consumers holding leases.
const LOAD_PROCESSING: Duration = Duration::from_millis(50);

/// What a consumer does with the messages it holds when its server fails.
#[derive(Clone, Copy, PartialEq)]
enum ConsumerKind {
    /// Runs beside its server and dies with it: its messages are abandoned
    /// (their leases must run out and they must be delivered again), and it
    /// comes back on the next server.
    CoLocated,
    /// Survives the server: acks through another server (tokens are valid
    /// on every server) and carries on there.
    FailingOver,
}

/// One message handed to a consumer, and when its pull was sent.
struct LoadDelivery {
    hash: String,
    attempt: u64,
    server_idx: usize,
    pull_sent_at: Instant,
}

#[derive(Default)]
struct LoadOracle {
    /// Every fact sent in a write request, answered or not.
    sent: HashSet<String>,
    /// Facts in a 200 answer: acknowledged, so durable.
    acknowledged: HashSet<String>,
    deliveries: Vec<LoadDelivery>,
    /// When the first "acked" answer for a message was received.
    acked_at: HashMap<String, Instant>,
    /// Messages whose ack got no definite answer (a server died under it).
    ack_unanswered: HashSet<String>,
    /// Answers other than "acked" (a lease that ran out, for example).
    other_ack_statuses: HashMap<String, u64>,
    last_delivery_at: Option<Instant>,
    violations: Vec<String>,
}

impl LoadOracle {
    fn record_deliveries(
        &mut self,
        messages: &[Value],
        hashes: &[String],
        server_idx: usize,
        pull_sent_at: Instant,
    ) {
        for (message, hash) in messages.iter().zip(hashes) {
            if !self.sent.contains(hash) {
                self.violations
                    .push(format!("delivered a fact nobody wrote: {hash}"));
            }
            self.deliveries.push(LoadDelivery {
                hash: hash.clone(),
                attempt: message["attempt"].as_u64().unwrap_or(0),
                server_idx,
                pull_sent_at,
            });
        }
        self.last_delivery_at = Some(Instant::now());
    }

    /// Acknowledged facts never delivered.
    fn undelivered(&self) -> Vec<&String> {
        let delivered: HashSet<&str> = self.deliveries.iter().map(|d| d.hash.as_str()).collect();
        self.acknowledged
            .iter()
            .filter(|hash| !delivered.contains(hash.as_str()))
            .collect()
    }

    /// Acknowledged facts whose ack was neither answered "acked" nor left
    /// without an answer (which may have acked it).
    fn unsettled(&self) -> Vec<&String> {
        self.acknowledged
            .iter()
            .filter(|hash| {
                !self.acked_at.contains_key(*hash) && !self.ack_unanswered.contains(*hash)
            })
            .collect()
    }
}

#[test]
fn killing_a_server_during_load_loses_no_acknowledged_write_or_ack() {
    if !on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut servers = start_servers(dir.path());
    let bases: Arc<Vec<String>> = Arc::new(servers.iter().map(|s| s.base.clone()).collect());
    let (status, view) = put_subscription(
        &servers[0],
        LOAD_SUBSCRIPTION,
        json!({"type": "Load.Job", "lease_ms": 2000, "max_attempts": 1000,
               "backoff": {"initial_ms": 100, "max_ms": 500}}),
    );
    assert_eq!(status, 201, "{view}");
    let oracle = Arc::new(Mutex::new(LoadOracle::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let started_at = Instant::now();
    let deadline = started_at + LOAD_DEADLINE;

    let writers: Vec<_> = (0..LOAD_WRITERS)
        .map(|writer_idx| {
            let (bases, oracle) = (Arc::clone(&bases), Arc::clone(&oracle));
            std::thread::spawn(move || run_writer(writer_idx, &bases, &oracle, deadline))
        })
        .collect();
    let paused = Arc::new(AtomicBool::new(false));
    let consumers: Vec<_> = (0..LOAD_CONSUMERS)
        .map(|consumer_idx| {
            let consumer = LoadConsumer {
                consumer_idx,
                kind: if consumer_idx < LOAD_CONSUMERS / 2 {
                    ConsumerKind::CoLocated
                } else {
                    ConsumerKind::FailingOver
                },
                bases: Arc::clone(&bases),
                oracle: Arc::clone(&oracle),
                stop: Arc::clone(&stop),
                paused: Arc::clone(&paused),
                deadline,
            };
            std::thread::spawn(move || consumer.run())
        })
        .collect();

    // Kill one server once a third of the writes are acknowledged, while a
    // consumer that knows only that server holds leases taken through it.
    // The test is that consumer: it pauses the others (so the writers'
    // next batches are left for it), pulls through the doomed server until
    // it holds messages, kills the server and never acks them. Their
    // leases are abandoned for certain, and each of those messages must
    // come back.
    let kill_deadline = Instant::now() + Duration::from_secs(30);
    while oracle.lock().unwrap().acknowledged.len() < LOAD_FACTS / 3
        && Instant::now() < kill_deadline
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    paused.store(true, Ordering::Release);
    let abandoned: Vec<String> = loop {
        assert!(
            Instant::now() < kill_deadline,
            "no message could be pulled through the server to be killed"
        );
        let pull_sent_at = Instant::now();
        let (status, answer) = post_json(
            &servers[KILLED_SERVER_IDX],
            &format!("/v1/subscriptions/{LOAD_SUBSCRIPTION}/pull"),
            json!({"max": 50, "wait_ms": 500}),
        );
        assert_eq!(status, 200, "{answer}");
        let messages = messages_of(&answer);
        if !messages.is_empty() {
            let hashes: Vec<String> = messages.iter().map(message_hash).collect();
            let mut oracle = oracle.lock().unwrap();
            oracle.record_deliveries(&messages, &hashes, KILLED_SERVER_IDX, pull_sent_at);
            break hashes;
        }
    };
    let acknowledged_before_kill = oracle.lock().unwrap().acknowledged.len();
    let killed_at = Instant::now();
    servers[KILLED_SERVER_IDX].kill9();
    paused.store(false, Ordering::Release);
    eprintln!(
        "killed server {KILLED_SERVER_IDX} after {:?}, {acknowledged_before_kill} facts \
         acknowledged, the test holding {} messages pulled through it",
        killed_at - started_at,
        abandoned.len()
    );

    join_all(writers, "a writer");
    let survivors: Vec<&Server> = servers
        .iter()
        .enumerate()
        .filter(|(idx, _)| *idx != KILLED_SERVER_IDX)
        .map(|(_, server)| server)
        .collect();
    // Consume until every acknowledged fact was delivered and settled, the
    // subscription is empty on the survivors, and nothing was delivered
    // for a while (a wrongful redelivery would have shown up).
    let mut last_views = Vec::new();
    let settled = loop {
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(250));
        last_views = survivors
            .iter()
            .map(|server| get_json(server, &format!("/v1/subscriptions/{LOAD_SUBSCRIPTION}")).1)
            .collect();
        let empty = last_views.iter().all(|view| {
            view["backlog"].as_u64() == Some(0) && view["in_flight"].as_u64() == Some(0)
        });
        let oracle = oracle.lock().unwrap();
        let all_delivered = oracle.undelivered().is_empty();
        let all_settled = oracle.unsettled().is_empty();
        let quiet = oracle
            .last_delivery_at
            .is_some_and(|at| at.elapsed() >= LOAD_QUIET);
        if empty && all_delivered && all_settled && quiet {
            break true;
        }
    };
    stop.store(true, Ordering::Release);
    join_all(consumers, "a consumer");

    let oracle = oracle.lock().unwrap();
    assert!(
        oracle.violations.is_empty(),
        "violations: {:?}",
        first(&oracle.violations, 10)
    );
    assert_eq!(
        oracle.acknowledged.len(),
        LOAD_FACTS,
        "writers failing over between the servers carried on: every batch was acknowledged"
    );
    assert!(
        oracle.acknowledged.len() > acknowledged_before_kill,
        "writes were acknowledged after the kill"
    );
    assert!(
        oracle.deliveries.iter().any(|d| d.pull_sent_at > killed_at),
        "messages were delivered after the kill"
    );

    // Every acknowledged fact is stored: by hash through a survivor, and in its log.
    let reader = survivors[0];
    let http_client = client(Duration::from_secs(30));
    let missing: Vec<&String> = oracle
        .acknowledged
        .iter()
        .filter(|hash| {
            let url = reader.url(&format!("/v1/facts/{hash}"));
            !matches!(
                exchange(&http_client, Method::GET, &url, None),
                Ok((200, _))
            )
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged facts are not readable through {}: {:?}",
        missing.len(),
        reader.base,
        first(&missing, 5)
    );
    let log = read_log(survivors[1], &http_client);
    let in_log = log_hashes(&log);
    let missing_from_log: Vec<_> = oracle
        .acknowledged
        .iter()
        .filter(|hash| !in_log.contains(hash.as_str()))
        .collect();
    assert!(
        missing_from_log.is_empty(),
        "{} acknowledged facts are missing from the log, e.g. {:?}",
        missing_from_log.len(),
        first(&missing_from_log, 5)
    );
    assert_seqs_dense(&log);
    let phantoms: Vec<_> = in_log
        .iter()
        .filter(|hash| !oracle.sent.contains(**hash))
        .collect();
    assert!(
        phantoms.is_empty(),
        "facts nobody wrote: {:?}",
        first(&phantoms, 5)
    );

    // Delivery: every acknowledged fact at least once; never again after
    // an ack was answered "acked".
    let undelivered = oracle.undelivered();
    assert!(
        undelivered.is_empty(),
        "{} acknowledged facts were never delivered, e.g. {:?}",
        undelivered.len(),
        first(&undelivered, 5)
    );
    let after_ack: Vec<String> = oracle
        .deliveries
        .iter()
        .filter_map(|delivery| {
            let acked_at = oracle.acked_at.get(&delivery.hash)?;
            (delivery.pull_sent_at > *acked_at).then(|| {
                format!(
                    "{} delivered (attempt {}, server {}) by a pull sent {:?} after its ack was answered \"acked\"",
                    delivery.hash,
                    delivery.attempt,
                    delivery.server_idx,
                    delivery.pull_sent_at - *acked_at
                )
            })
        })
        .collect();
    assert!(
        after_ack.is_empty(),
        "{} deliveries of acknowledged messages: {:?}",
        after_ack.len(),
        first(&after_ack, 5)
    );
    let unsettled = oracle.unsettled();
    assert!(
        unsettled.is_empty(),
        "{} acknowledged facts were never acked, e.g. {:?}",
        unsettled.len(),
        first(&unsettled, 5)
    );
    assert!(
        settled,
        "the subscription did not settle within {LOAD_DEADLINE:?}: views {last_views:?}"
    );
    for view in &last_views {
        assert_eq!(view["dead"].as_u64(), Some(0), "no dead letters: {view}");
    }
    let redelivered = oracle.deliveries.iter().filter(|d| d.attempt > 1).count();
    eprintln!(
        "{} deliveries ({redelivered} redeliveries), {} acks answered \"acked\", {} unanswered, other answers {:?}",
        oracle.deliveries.len(),
        oracle.acked_at.len(),
        oracle.ack_unanswered.len(),
        oracle.other_ack_statuses
    );
    let not_back: Vec<&String> = abandoned
        .iter()
        .filter(|hash| {
            !oracle.deliveries.iter().any(|delivery| {
                &delivery.hash == *hash && delivery.attempt > 1 && delivery.pull_sent_at > killed_at
            })
        })
        .collect();
    assert!(
        not_back.is_empty(),
        "{} of the {} messages whose leases the kill abandoned were not delivered again: {:?}",
        not_back.len(),
        abandoned.len(),
        first(&not_back, 5)
    );
}

/// Writes this writer's batches, each through the next server in turn,
/// moving to another server when one fails (no answer, 429 or 5xx).
/// A writer of the kill test: the Rust SDK's client, configured with all
/// three servers, fails over by itself when one dies; a batch the client
/// gives up on is tried again until the deadline.
fn run_writer(writer_idx: usize, bases: &[String], oracle: &Mutex<LoadOracle>, deadline: Instant) {
    let runtime = current_thread_runtime();
    let mut options = cairn_client::ClientOptions::new(bases.iter().cloned());
    options.request_timeout = Duration::from_secs(15);
    let client = cairn_client::Client::remote(options).unwrap();
    let mut previous: Option<String> = None;
    for batch_idx in 0..LOAD_BATCHES_PER_WRITER {
        // The first fact of each batch names the last of the previous one,
        // which another server may have acknowledged.
        let facts: Vec<Value> = (0..LOAD_BATCH)
            .map(|fact_idx| {
                let predecessors = match (&previous, fact_idx) {
                    (Some(previous), 0) => json!({ "previous": previous }),
                    _ => json!({}),
                };
                let fields = json!({"batch": batch_idx, "n": fact_idx, "writer": writer_idx});
                fact("Load.Job", fields, predecessors)
            })
            .collect();
        let hashes: Vec<String> = facts.iter().map(fact_hash).collect();
        oracle.lock().unwrap().sent.extend(hashes.iter().cloned());
        let canonical: Vec<cairn_fact::CanonicalFact> = facts
            .iter()
            .map(|fact| cairn_fact::CanonicalFact::from_json(fact.to_string().as_bytes(), 65_536))
            .collect::<Result<_, _>>()
            .unwrap();
        loop {
            if Instant::now() >= deadline {
                let violation =
                    format!("writer {writer_idx}: batch {batch_idx} never acknowledged");
                oracle.lock().unwrap().violations.push(violation);
                return;
            }
            match runtime.block_on(client.put_facts(canonical.clone())) {
                Ok(results) => {
                    let answered: Vec<String> =
                        results.iter().map(|result| result.hash.to_hex()).collect();
                    let mut oracle = oracle.lock().unwrap();
                    if answered != hashes {
                        oracle
                            .violations
                            .push(format!("write answered other hashes: {answered:?}"));
                    }
                    oracle.acknowledged.extend(answered);
                    break;
                }
                Err(error) if error.is_retryable() => {}
                Err(error) => {
                    let violation = format!("writer {writer_idx}: write failed: {error}");
                    oracle.lock().unwrap().violations.push(violation);
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        previous = hashes.last().cloned();
        std::thread::sleep(Duration::from_millis(40));
    }
}

/// A consumer thread of the kill test.
struct LoadConsumer {
    consumer_idx: usize,
    kind: ConsumerKind,
    bases: Arc<Vec<String>>,
    oracle: Arc<Mutex<LoadOracle>>,
    stop: Arc<AtomicBool>,
    /// While set, the consumer sends no new pull (the test is pulling).
    paused: Arc<AtomicBool>,
    deadline: Instant,
}

impl LoadConsumer {
    /// Pulls through one server, works, acks; moves to the next server
    /// when its server fails.
    fn run(&self) {
        let client = client(Duration::from_secs(15));
        let n_servers = self.bases.len();
        let mut server_idx = self.consumer_idx % n_servers;
        while !self.stop.load(Ordering::Acquire) && Instant::now() < self.deadline {
            if self.paused.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            let pull_sent_at = Instant::now();
            let url = format!(
                "{}/v1/subscriptions/{LOAD_SUBSCRIPTION}/pull",
                self.bases[server_idx]
            );
            let body = json!({"max": 50, "wait_ms": 500});
            let messages = match exchange(&client, Method::POST, &url, Some(&body)) {
                Ok((200, answer)) => messages_of(&answer),
                Ok((status, answer)) if status != 429 && status < 500 => {
                    let violation = format!("pull answered {status} {answer}");
                    self.oracle.lock().unwrap().violations.push(violation);
                    return;
                }
                _ => {
                    server_idx = (server_idx + 1) % n_servers;
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            let hashes: Vec<String> = messages.iter().map(message_hash).collect();
            self.oracle.lock().unwrap().record_deliveries(
                &messages,
                &hashes,
                server_idx,
                pull_sent_at,
            );
            std::thread::sleep(LOAD_PROCESSING);
            let (answer, failed_attempts) = self.ack(&client, &messages, &mut server_idx);
            self.record_ack_answer(answer, hashes, failed_attempts);
        }
    }

    /// Acks through the consumer's server; a co-located consumer whose
    /// server failed gives up (and moves on), another one tries the other
    /// servers. Returns the answer, if any, and how many attempts failed.
    fn ack(
        &self,
        client: &reqwest::blocking::Client,
        messages: &[Value],
        server_idx: &mut usize,
    ) -> (Option<Value>, usize) {
        let body = ack_body(messages);
        let n_servers = self.bases.len();
        let mut failed_attempts = 0;
        for offset in 0..n_servers {
            let idx = (*server_idx + offset) % n_servers;
            let url = format!(
                "{}/v1/subscriptions/{LOAD_SUBSCRIPTION}/ack",
                self.bases[idx]
            );
            match exchange(client, Method::POST, &url, Some(&body)) {
                Ok((200, answer)) => {
                    *server_idx = idx;
                    return (Some(answer), failed_attempts);
                }
                _ => failed_attempts += 1,
            }
            if self.kind == ConsumerKind::CoLocated {
                *server_idx = (*server_idx + 1) % n_servers;
                break;
            }
        }
        (None, failed_attempts)
    }

    fn record_ack_answer(
        &self,
        answer: Option<Value>,
        hashes: Vec<String>,
        failed_attempts: usize,
    ) {
        let answered_at = Instant::now();
        let mut oracle = self.oracle.lock().unwrap();
        let Some(answer) = answer else {
            oracle.ack_unanswered.extend(hashes);
            return;
        };
        let statuses = ack_result_statuses(&answer, hashes.len(), &mut oracle.violations);
        for (hash, status) in hashes.into_iter().zip(statuses) {
            if status == "acked" {
                oracle.acked_at.entry(hash).or_insert(answered_at);
            } else if failed_attempts > 0 {
                // An earlier attempt may have acked it without answering.
                oracle.ack_unanswered.insert(hash);
            } else {
                *oracle.other_ack_statuses.entry(status).or_default() += 1;
            }
        }
    }
}
