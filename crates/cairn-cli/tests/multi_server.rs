//! Several `cairn serve` processes over one PostgreSQL database: what one
//! server writes the others read; consumers on every server share one
//! subscription without a message ever leased twice; killing a server under
//! load loses no acknowledged write and no acknowledged ack; and a database
//! that goes away (connections cut by a TCP proxy inside the test) or
//! stops answering (a partition: the proxy holds every byte) makes the
//! server answer 503 within bounded time and heal without a restart.
//!
//! The writers of the kill test are SDK clients (`cairn_client::Client`)
//! configured with all three endpoints: they carry on through the others
//! when one dies.
//!
//! These tests only make sense on the PostgreSQL backend: each returns at
//! once unless `CAIRN_TEST_BACKEND=postgres`. Run them with
//! `CAIRN_TEST_BACKEND=postgres cargo test -p cairn-cli --test multi_server`.
//! They use loopback only, bound every loop in count and time, and stop
//! only the processes they started.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cairn_store::postgres::testing::TestDatabase;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// Servers that share one database in the multi-server tests.
const N_SERVERS: usize = 3;

// ---------------------------------------------------------------------------
// 1. Reads through every server
// ---------------------------------------------------------------------------

#[test]
fn writes_through_one_server_are_read_through_the_others() {
    if !on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let servers = start_servers(dir.path());
    let (a, b, c) = (&servers[0], &servers[1], &servers[2]);

    // Facts with predecessors, written through A.
    let list = put_one(
        a,
        fact("Todo.List", json!({"name": "groceries"}), json!({})),
    );
    let (status, answer) = post_facts(
        a,
        &[
            fact(
                "Todo.Item",
                json!({"title": "bread"}),
                json!({"list": list}),
            ),
            fact("Todo.Item", json!({"title": "milk"}), json!({"list": list})),
        ],
    );
    assert_eq!(status, 200, "{answer}");
    let bread = result_hash(&answer, 0);
    let milk = result_hash(&answer, 1);
    let deleted = put_one(a, fact("Todo.Deleted", json!({}), json!({"item": bread})));
    let written = [&list, &bread, &milk, &deleted];

    let log_on_a = get_json(a, "/v1/log?after=0&limit=100");
    assert_eq!(log_on_a.0, 200, "{}", log_on_a.1);
    assert_eq!(
        page_hashes(&log_on_a.1),
        written.map(String::clone).to_vec()
    );
    for (name, reader) in [("B", b), ("C", c)] {
        for hash in written {
            let path = format!("/v1/facts/{hash}");
            let (status, on_reader) = get_json(reader, &path);
            assert_eq!(
                status, 200,
                "fact {hash} written through A, read through {name}"
            );
            assert_eq!(on_reader, get_json(a, &path).1, "{name} reads what A wrote");
        }
        let (status, items) = get_json(
            reader,
            &format!("/v1/facts/{list}/successors?type=Todo.Item&role=list"),
        );
        assert_eq!(status, 200, "{items}");
        assert_eq!(
            page_hashes(&items),
            vec![bread.clone(), milk.clone()],
            "{name}"
        );
        let (status, live) = get_json(
            reader,
            &format!("/v1/facts/{list}/successors?type=Todo.Item&role=list&without=Todo.Deleted"),
        );
        assert_eq!(status, 200, "{live}");
        assert_eq!(
            page_hashes(&live),
            vec![milk.clone()],
            "{name}: tombstone seen"
        );
        assert_eq!(
            get_json(reader, "/v1/log?after=0&limit=100"),
            log_on_a,
            "the log read through {name} is the log read through A"
        );
    }

    // Long-polls on C (log) and B (successors) wake when A writes.
    let after = last_seq(c);
    let poll_urls = vec![
        c.url(&format!("/v1/log?after={after}&wait_ms=20000")),
        b.url(&format!(
            "/v1/facts/{list}/successors?type=Todo.Item&role=list&after={after}&wait_ms=20000"
        )),
    ];
    let eggs = assert_long_polls_wake_on(poll_urls, "the fact written through A", || {
        put_one(
            a,
            fact("Todo.Item", json!({"title": "eggs"}), json!({"list": list})),
        )
    });

    // A blob stored through B is read through C byte for byte.
    let blob: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let (status, answer) = json_answer(
        http()
            .put(b.url("/v1/blobs"))
            .body(blob.clone())
            .send()
            .expect("B answers"),
    );
    assert_eq!(status, 200, "{answer}");
    let blob_hash = answer["hash"].as_str().expect("hash").to_string();
    assert_eq!(blob_hash, blake3::hash(&blob).to_hex().to_string());
    assert_eq!(answer["size"].as_u64(), Some(blob.len() as u64));
    let response = http()
        .get(c.url(&format!("/v1/blobs/{blob_hash}")))
        .send()
        .expect("C answers");
    assert_eq!(response.status().as_u16(), 200);
    let read_back = response.bytes().expect("the blob reads");
    assert!(read_back[..] == blob[..], "the blob read through C differs");
    let head = http()
        .head(a.url(&format!("/v1/blobs/{blob_hash}")))
        .send()
        .expect("A answers");
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(
        head.headers()["content-length"],
        blob.len().to_string().as_str(),
        "HEAD through A"
    );

    // A subscription created through A, paused through B, resumed through C.
    let name = "todo-items";
    let view_path = format!("/v1/subscriptions/{name}");
    let (status, view) = put_subscription(a, name, json!({"type": "Todo.Item", "lease_ms": 10000}));
    assert_eq!(status, 201, "{view}");
    let (status, view) = get_json(c, &view_path);
    assert_eq!(
        status, 200,
        "the subscription created through A is visible through C: {view}"
    );
    assert_eq!(view["type"], "Todo.Item", "{view}");
    assert_eq!(view["lease_ms"], 10000, "{view}");
    assert_eq!(view["paused"], false, "{view}");
    let (status, answer) = post_json(b, &format!("{view_path}/pause"), json!({}));
    assert_eq!(status, 200, "{answer}");
    let (_, view) = get_json(a, &view_path);
    assert_eq!(
        view["paused"], true,
        "paused through B, seen paused through A: {view}"
    );
    assert!(
        pull(c, name, 10, 0).is_empty(),
        "a subscription paused through B delivers nothing through C"
    );
    let (status, answer) = post_json(c, &format!("{view_path}/resume"), json!({}));
    assert_eq!(status, 200, "{answer}");
    let (_, view) = get_json(b, &view_path);
    assert_eq!(
        view["paused"], false,
        "resumed through C, seen through B: {view}"
    );
    let messages = pull_at_least(a, &client(Duration::from_secs(30)), name, 3);
    let mut delivered: Vec<String> = messages.iter().map(message_hash).collect();
    delivered.sort();
    let mut items = vec![bread, milk, eggs];
    items.sort();
    assert_eq!(delivered, items, "every item delivered once through A");
    let statuses = settle(b, name, "ack", &messages, json!({}));
    assert!(
        statuses.iter().all(|status| status == "acked"),
        "pulled through A, acked through B: {statuses:?}"
    );
    for server in [a, b, c] {
        assert_subscription_drained(server, name);
    }
}

// ---------------------------------------------------------------------------
// 2. Consumers on every server
// ---------------------------------------------------------------------------

/// Facts published in the shared-consumption test.
const SHARED_FACTS: usize = 3_000;
/// Facts per published batch.
const SHARED_BATCH: usize = 100;
/// Consumers per server.
const SHARED_CONSUMERS_PER_SERVER: usize = 2;
const SHARED_DEADLINE: Duration = Duration::from_secs(60);

/// One message handed to a consumer.
#[derive(Clone, Debug)]
struct Delivery {
    hash: String,
    attempt: u64,
    server_idx: usize,
    consumer_idx: usize,
}

#[derive(Default)]
struct SharedOracle {
    published: HashSet<String>,
    deliveries: Vec<Delivery>,
    /// Ack answers by status ("acked", "expired", ...).
    ack_statuses: HashMap<String, u64>,
    acked: HashSet<String>,
    errors: Vec<String>,
}

#[test]
fn consumers_on_three_servers_get_every_message_and_no_message_is_leased_twice() {
    if !on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let servers = start_servers(dir.path());
    let bases: Arc<Vec<String>> = Arc::new(servers.iter().map(|s| s.base.clone()).collect());
    let name = "shared-work";
    let (status, view) = put_subscription(
        &servers[0],
        name,
        json!({"type": "Shared.Work", "lease_ms": 60000, "max_attempts": 1000}),
    );
    assert_eq!(status, 201, "{view}");

    let oracle = Arc::new(Mutex::new(SharedOracle::default()));
    let done = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + SHARED_DEADLINE;

    // The publisher writes through a pseudo-random server per batch while
    // the consumers already pull: admission runs on every server too.
    let publisher = {
        let (bases, oracle) = (Arc::clone(&bases), Arc::clone(&oracle));
        std::thread::spawn(move || {
            let client = client(Duration::from_secs(30));
            let mut random = 0x2545_f491_4f6c_dd1d_u64;
            for batch_start in (0..SHARED_FACTS).step_by(SHARED_BATCH) {
                let facts: Vec<Value> = (batch_start..batch_start + SHARED_BATCH)
                    .map(|n| fact("Shared.Work", json!({ "n": n }), json!({})))
                    .collect();
                let server_idx = (next_random(&mut random) % N_SERVERS as u64) as usize;
                let url = format!("{}/v1/facts", bases[server_idx]);
                match exchange(
                    &client,
                    Method::POST,
                    &url,
                    Some(&json!({ "facts": facts })),
                ) {
                    Ok((200, answer)) => {
                        let results = answer["results"].as_array().cloned().unwrap_or_default();
                        let mut oracle = oracle.lock().unwrap();
                        for result in results {
                            let hash = result["hash"].as_str().unwrap_or_default().to_string();
                            oracle.published.insert(hash);
                        }
                    }
                    other => {
                        let error = format!("publishing through server {server_idx}: {other:?}");
                        oracle.lock().unwrap().errors.push(error);
                        return;
                    }
                }
            }
        })
    };

    let consumers: Vec<_> = (0..N_SERVERS * SHARED_CONSUMERS_PER_SERVER)
        .map(|consumer_idx| {
            let (bases, oracle, done) =
                (Arc::clone(&bases), Arc::clone(&oracle), Arc::clone(&done));
            std::thread::spawn(move || {
                let server_idx = consumer_idx % N_SERVERS;
                let base = &bases[server_idx];
                let client = client(Duration::from_secs(30));
                while !done.load(Ordering::Acquire) && Instant::now() < deadline {
                    let pull_url = format!("{base}/v1/subscriptions/{name}/pull");
                    let body = json!({"max": 50, "wait_ms": 300});
                    let messages = match exchange(&client, Method::POST, &pull_url, Some(&body)) {
                        Ok((200, answer)) => messages_of(&answer),
                        other => {
                            let error = format!("pull through server {server_idx}: {other:?}");
                            oracle.lock().unwrap().errors.push(error);
                            std::thread::sleep(Duration::from_millis(200));
                            continue;
                        }
                    };
                    if messages.is_empty() {
                        continue;
                    }
                    let deliveries: Vec<Delivery> = messages
                        .iter()
                        .map(|message| Delivery {
                            hash: message_hash(message),
                            attempt: message["attempt"].as_u64().unwrap_or(0),
                            server_idx,
                            consumer_idx,
                        })
                        .collect();
                    oracle
                        .lock()
                        .unwrap()
                        .deliveries
                        .extend(deliveries.iter().cloned());
                    let ack_url = format!("{base}/v1/subscriptions/{name}/ack");
                    let answer =
                        exchange(&client, Method::POST, &ack_url, Some(&ack_body(&messages)));
                    let mut oracle = oracle.lock().unwrap();
                    match answer {
                        Ok((200, answer)) => {
                            let statuses =
                                ack_result_statuses(&answer, deliveries.len(), &mut oracle.errors);
                            for (delivery, status) in deliveries.iter().zip(statuses) {
                                if status == "acked" {
                                    oracle.acked.insert(delivery.hash.clone());
                                }
                                *oracle.ack_statuses.entry(status).or_default() += 1;
                            }
                            if oracle.acked.len() >= SHARED_FACTS {
                                done.store(true, Ordering::Release);
                            }
                        }
                        other => {
                            let error = format!("ack through server {server_idx}: {other:?}");
                            oracle.errors.push(error);
                        }
                    }
                }
            })
        })
        .collect();

    publisher.join().expect("the publisher does not panic");
    join_all(consumers, "a consumer");
    let oracle = oracle.lock().unwrap();
    assert!(
        oracle.errors.is_empty(),
        "errors: {:?}",
        first(&oracle.errors, 10)
    );
    assert_eq!(
        oracle.published.len(),
        SHARED_FACTS,
        "every batch was published"
    );

    let mut deliveries_by_hash: HashMap<&str, Vec<&Delivery>> = HashMap::new();
    for delivery in &oracle.deliveries {
        deliveries_by_hash
            .entry(&delivery.hash)
            .or_default()
            .push(delivery);
    }
    let phantoms: Vec<_> = deliveries_by_hash
        .keys()
        .filter(|hash| !oracle.published.contains(**hash))
        .collect();
    assert!(
        phantoms.is_empty(),
        "delivered but never published: {:?}",
        first(&phantoms, 10)
    );
    let undelivered: Vec<_> = oracle
        .published
        .iter()
        .filter(|hash| !deliveries_by_hash.contains_key(hash.as_str()))
        .collect();
    assert!(
        undelivered.is_empty(),
        "{} published messages never delivered within {SHARED_DEADLINE:?}, e.g. {:?}",
        undelivered.len(),
        first(&undelivered, 5)
    );
    let twice: Vec<_> = deliveries_by_hash
        .values()
        .filter(|deliveries| deliveries.len() > 1)
        .collect();
    assert!(
        twice.is_empty(),
        "{} messages delivered more than once with 60 s leases and no failure (two servers \
         leased one message at once), e.g. {:?}",
        twice.len(),
        first(&twice, 3)
    );
    let retried: Vec<_> = oracle
        .deliveries
        .iter()
        .filter(|d| d.attempt != 1)
        .collect();
    assert!(
        retried.is_empty(),
        "attempts other than 1: {:?}",
        first(&retried, 5)
    );
    assert_eq!(
        oracle.ack_statuses.get("acked").copied().unwrap_or(0),
        oracle.deliveries.len() as u64,
        "every ack answered \"acked\": {:?}",
        oracle.ack_statuses
    );
    let mut per_server = vec![0; N_SERVERS];
    let mut per_consumer = vec![0; N_SERVERS * SHARED_CONSUMERS_PER_SERVER];
    for delivery in &oracle.deliveries {
        per_server[delivery.server_idx] += 1;
        per_consumer[delivery.consumer_idx] += 1;
    }
    eprintln!("deliveries per server {per_server:?}, per consumer {per_consumer:?}");
    assert!(
        per_server.iter().all(|n| *n > 0),
        "every server delivered some messages: {per_server:?}"
    );
    for server in &servers {
        assert_subscription_drained(server, name);
    }
}

// ---------------------------------------------------------------------------
// 3. A server killed under load
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// 4. A database outage
// ---------------------------------------------------------------------------

/// How long a request may take while the database is unreachable.
const OUTAGE_ANSWER_MAX: Duration = Duration::from_secs(10);
/// How long `/v1/health` may take to follow the database going away or
/// coming back.
const HEALTH_CHANGE_MAX: Duration = Duration::from_secs(10);
/// Facts of the batch in flight when the database is cut.
const OUTAGE_BULK_FACTS: usize = 5_000;

#[test]
fn database_outage_answers_503_and_recovers_without_restart() {
    if !on_postgres() {
        return;
    }
    let Some(setup) = ProxiedServer::start() else {
        return;
    };
    let (server, proxy) = (&setup.server, &setup.proxy);
    let client = client(Duration::from_secs(30));
    let name = "outage";
    write_and_consume(server, &client, name);

    // A big batch in flight while the database goes away, then the cut.
    let bulk: Vec<Value> = (0..OUTAGE_BULK_FACTS)
        .map(|n| fact("Outage.Bulk", json!({ "n": n }), json!({})))
        .collect();
    let bulk_hashes: Vec<String> = bulk.iter().map(fact_hash).collect();
    let bulk_write = {
        let (client, url) = (client.clone(), server.url("/v1/facts"));
        let body = json!({ "facts": bulk });
        std::thread::spawn(move || {
            let started = Instant::now();
            let answer = exchange(&client, Method::POST, &url, Some(&body));
            (answer, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(30));
    proxy.cut();
    let cut_at = Instant::now();

    // Health says so within a few seconds.
    await_health_unavailable(server, &client, "after the cut", cut_at);
    eprintln!("health answered 503 {:?} after the cut", cut_at.elapsed());

    // A write answers 503 promptly (nothing of its batch is stored: checked
    // after), and so does a pull.
    let chain = chain_of_facts("Outage.Chain", 5);
    let chain_hashes: Vec<String> = chain.iter().map(fact_hash).collect();
    assert_answers_unavailable(
        server,
        &client,
        "/v1/facts",
        &json!({ "facts": chain }),
        "a write during the outage",
    );
    assert_answers_unavailable(
        server,
        &client,
        &format!("/v1/subscriptions/{name}/pull"),
        &json!({"max": 10, "wait_ms": 0}),
        "a pull during the outage",
    );

    let (bulk_answer, bulk_took) = bulk_write.join().expect("the bulk writer does not panic");
    let (bulk_status, bulk_error) = bulk_answer
        .as_ref()
        .map(|(status, answer)| (*status, answer.clone()))
        .unwrap_or_else(|error| panic!("the write in flight at the cut got no answer: {error}"));
    assert!(
        bulk_status == 200 || bulk_status == 503,
        "the write in flight at the cut answered {bulk_status}: {bulk_error}"
    );
    assert!(
        bulk_took < OUTAGE_ANSWER_MAX,
        "the write in flight at the cut took {bulk_took:?}"
    );
    eprintln!("the write in flight at the cut: {bulk_answer:?} after {bulk_took:?}");

    // The database comes back: the same server heals by itself.
    proxy.restore();
    let restored_at = Instant::now();
    await_health(
        server,
        &client,
        200,
        "after the database returned",
        restored_at,
    );

    // All or nothing for both batches that failed or raced the cut.
    let log = read_log(server, &client);
    let in_log = log_hashes(&log);
    assert_stored_all_or_nothing(&chain_hashes, &in_log, false, "a batch answered 503");
    assert_stored_all_or_nothing(
        &bulk_hashes,
        &in_log,
        bulk_status == 200,
        "the batch in flight at the cut",
    );
    assert_seqs_dense(&log);

    assert_writes_and_delivers_again(server, &client, name, "after the outage");

    // Long-polls of the healed server wake on writes of another server
    // (its LISTEN connection was cut too).
    let other_data = tempfile::tempdir().unwrap();
    let other = Server::start_with_store(other_data.path(), &setup.direct_url, &[]);
    let after = last_seq(server);
    let poll_url = server.url(&format!("/v1/log?after={after}&wait_ms=20000"));
    assert_long_polls_wake_on(vec![poll_url], "the other server's write", || {
        let late = fact("Outage.Late", json!({}), json!({}));
        let (status, answer) = write_facts(&other, &client, &[late]);
        assert_eq!(status, 200, "{answer}");
        result_hash(&answer, 0)
    });

    drop(other);
    drop(setup);
}

// ---------------------------------------------------------------------------
// 5. A database that stops answering
// ---------------------------------------------------------------------------

#[test]
fn database_that_stops_answering_answers_503_in_bounded_time_and_recovers() {
    if !on_postgres() {
        return;
    }
    let Some(setup) = ProxiedServer::start() else {
        return;
    };
    let (server, proxy) = (&setup.server, &setup.proxy);
    // Requests that hang are the failure this test looks for: give up on
    // them a little after the bound.
    let client = client(OUTAGE_ANSWER_MAX + Duration::from_secs(5));
    let name = "partition";
    write_and_consume(server, &client, name);

    // Writes and waiting pulls run back to back, so that some are in the
    // middle of a statement when the partition starts.
    let stop = Arc::new(AtomicBool::new(false));
    let background: Vec<_> = [BackgroundKind::Write, BackgroundKind::Pull]
        .into_iter()
        .map(|kind| {
            let (base, name, stop) = (server.base.clone(), name.to_string(), Arc::clone(&stop));
            std::thread::spawn(move || background_load(kind, &base, &name, &stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    // Bytes stop flowing both ways, nothing is closed (a network
    // partition), right after a write's statement went to PostgreSQL.
    let stalled_at = proxy.stall_after_request_of(8 * 1024, Duration::from_secs(10));
    await_health_unavailable(server, &client, "into the partition", stalled_at);
    let chain = chain_of_facts("Partition.Chain", 5);
    let chain_hashes: Vec<String> = chain.iter().map(fact_hash).collect();
    assert_answers_unavailable(
        server,
        &client,
        "/v1/facts",
        &json!({ "facts": chain }),
        "a write during the partition",
    );
    assert_answers_unavailable(
        server,
        &client,
        &format!("/v1/subscriptions/{name}/pull"),
        &json!({"max": 10, "wait_ms": 0}),
        "a pull during the partition",
    );

    // The partition lasts longer than any request may take.
    let partition_end = stalled_at + OUTAGE_ANSWER_MAX + Duration::from_secs(2);
    std::thread::sleep(partition_end.saturating_duration_since(Instant::now()));
    stop.store(true, Ordering::Release);

    // The partition heals: the same server recovers by itself.
    proxy.restore();
    let restored_at = Instant::now();
    let requests: Vec<BackgroundRequest> = join_all(background, "the background load")
        .into_iter()
        .flatten()
        .collect();
    await_health(
        server,
        &client,
        200,
        "after the partition healed",
        restored_at,
    );
    let log = read_log(server, &client);
    let in_log = log_hashes(&log);
    assert_stored_all_or_nothing(&chain_hashes, &in_log, false, "a batch answered 503");
    let hung: Vec<String> = requests
        .iter()
        .filter(|request| {
            let allowed = OUTAGE_ANSWER_MAX + request.wait;
            request.started_at < restored_at && (request.answer.is_err() || request.took > allowed)
        })
        .map(|request| {
            let sent = if request.started_at < stalled_at {
                format!("{:?} before", stalled_at - request.started_at)
            } else {
                format!("{:?} after", request.started_at - stalled_at)
            };
            format!(
                "{:?} sent {sent} the partition began, answered {:?} after {:?}",
                request.kind, request.answer, request.took
            )
        })
        .collect();
    let failed: Vec<String> = requests
        .iter()
        .filter(
            |request| matches!(request.answer, Ok((status, _)) if status != 200 && status != 503),
        )
        .map(|request| format!("{:?} answered {:?}", request.kind, request.answer))
        .collect();
    eprintln!(
        "background requests: {} ({} during the partition)",
        requests.len(),
        requests
            .iter()
            .filter(|r| r.started_at + r.took > stalled_at && r.started_at < restored_at)
            .count()
    );
    for request in requests.iter().filter(|r| !r.hashes.is_empty()) {
        assert_stored_all_or_nothing(
            &request.hashes,
            &in_log,
            matches!(request.answer, Ok((200, _))),
            &format!(
                "a batch of the background load (answer {:?})",
                request.answer
            ),
        );
    }
    assert_seqs_dense(&log);
    assert_writes_and_delivers_again(server, &client, name, "after the partition");
    // Last, so that recovery is checked even when this fails.
    assert!(
        hung.is_empty(),
        "requests in flight during the partition hung beyond {OUTAGE_ANSWER_MAX:?}: {hung:#?}"
    );
    assert!(
        failed.is_empty(),
        "answers other than 200 or 503: {failed:?}"
    );
    drop(setup);
}

#[derive(Clone, Copy, Debug)]
enum BackgroundKind {
    Write,
    Pull,
}

/// A request of the background load and how it went.
struct BackgroundRequest {
    kind: BackgroundKind,
    started_at: Instant,
    took: Duration,
    /// How long the request may wait by design (a pull's `wait_ms`).
    wait: Duration,
    /// Status and error code, or why no answer came.
    answer: Result<(u16, String), String>,
    /// The facts of a write.
    hashes: Vec<String>,
}

/// Writes batches of 200 facts, or pulls with `wait_ms` 1000 (from a
/// subscription with no messages: the pull waits), back to back until
/// `stop`; at most 1,000 requests.
fn background_load(
    kind: BackgroundKind,
    base: &str,
    name: &str,
    stop: &AtomicBool,
) -> Vec<BackgroundRequest> {
    let client = client(OUTAGE_ANSWER_MAX + Duration::from_secs(5));
    let mut requests = Vec::new();
    for batch_idx in 0..1_000 {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let (url, body, hashes, wait) = match kind {
            BackgroundKind::Write => {
                let facts: Vec<Value> = (0..200)
                    .map(|n| {
                        fact(
                            "Partition.Load",
                            json!({"batch": batch_idx, "n": n}),
                            json!({}),
                        )
                    })
                    .collect();
                let hashes = facts.iter().map(fact_hash).collect();
                (
                    format!("{base}/v1/facts"),
                    json!({ "facts": facts }),
                    hashes,
                    Duration::ZERO,
                )
            }
            BackgroundKind::Pull => (
                format!("{base}/v1/subscriptions/{name}/pull"),
                json!({"max": 10, "wait_ms": 1000}),
                Vec::new(),
                Duration::from_millis(1000),
            ),
        };
        let started_at = Instant::now();
        let answer = exchange(&client, Method::POST, &url, Some(&body)).map(|(status, answer)| {
            let code = answer["error"]["code"].as_str().unwrap_or("").to_string();
            (status, code)
        });
        let failed = !matches!(answer, Ok((200, _)));
        requests.push(BackgroundRequest {
            kind,
            started_at,
            took: started_at.elapsed(),
            wait,
            answer,
            hashes,
        });
        if failed {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    requests
}

/// One server whose database connections pass through a [`Proxy`], on a
/// database of its own. Fields drop in order: the server before the
/// proxy, the proxy before the database.
struct ProxiedServer {
    server: Server,
    proxy: Proxy,
    /// The database's own URL, bypassing the proxy.
    direct_url: String,
    _database: TestDatabase,
    _data: tempfile::TempDir,
}

impl ProxiedServer {
    /// `None` when `CAIRN_TEST_POSTGRES=skip`.
    fn start() -> Option<ProxiedServer> {
        let database = current_thread_runtime().block_on(TestDatabase::create())?;
        let direct_url = database.url();
        let (user, postgres_address) = user_and_address(&direct_url);
        let proxy = Proxy::start(postgres_address);
        let proxied_url = format!(
            "postgres://{user}@127.0.0.1:{}/{}",
            proxy.address.port(),
            database.name()
        );
        let data = tempfile::tempdir().unwrap();
        let server = Server::start_with_store(
            data.path(),
            &proxied_url,
            &[
                "--pg-acquire-timeout-ms",
                "1000",
                "--pg-statement-timeout-ms",
                "2000",
            ],
        );
        Some(ProxiedServer {
            server,
            proxy,
            direct_url,
            _database: database,
            _data: data,
        })
    }
}

/// Checks that the server works: writes three `Outage.Event` facts (and
/// that the test computes their hashes as the server does), creates
/// subscription `name` on that type, pulls and acks them.
fn write_and_consume(server: &Server, client: &reqwest::blocking::Client, name: &str) {
    let events: Vec<Value> = (0..3)
        .map(|n| fact("Outage.Event", json!({ "n": n }), json!({})))
        .collect();
    let (status, answer) = write_facts(server, client, &events);
    assert_eq!(status, 200, "{answer}");
    for (idx, event) in events.iter().enumerate() {
        assert_eq!(
            result_hash(&answer, idx),
            fact_hash(event),
            "the test computes hashes as the server"
        );
    }
    let (status, view) = request(
        server,
        client,
        Method::PUT,
        &format!("/v1/subscriptions/{name}"),
        Some(&json!({"type": "Outage.Event", "lease_ms": 5000})),
    );
    assert_eq!(status, 201, "{view}");
    let messages = pull_at_least(server, client, name, 3);
    assert_eq!(messages.len(), 3, "{messages:?}");
    ack_all(server, client, name, &messages);
}

/// `n` facts, each naming the one before it, for one batch.
fn chain_of_facts(type_name: &str, n: usize) -> Vec<Value> {
    let mut facts: Vec<Value> = Vec::with_capacity(n);
    for idx in 0..n {
        let predecessors = match facts.last() {
            Some(previous) => json!({ "previous": fact_hash(previous) }),
            None => json!({}),
        };
        facts.push(fact(type_name, json!({ "n": idx }), predecessors));
    }
    facts
}

/// Polls `/v1/health` until it answers `expected`, for at most
/// [`HEALTH_CHANGE_MAX`]; every answer must come within
/// [`OUTAGE_ANSWER_MAX`] and be 200 or 503. `event` says what happened at
/// `since`, for failure messages. Returns the body of the answer.
fn await_health(
    server: &Server,
    client: &reqwest::blocking::Client,
    expected: u16,
    event: &str,
    since: Instant,
) -> Value {
    let deadline = Instant::now() + HEALTH_CHANGE_MAX;
    loop {
        let started = Instant::now();
        let (status, health) = exchange(client, Method::GET, &server.url("/v1/health"), None)
            .unwrap_or_else(|error| {
                panic!(
                    "health got no answer in {:?}: {error}\n{}",
                    started.elapsed(),
                    server.log_text()
                )
            });
        assert!(
            started.elapsed() < OUTAGE_ANSWER_MAX,
            "health took {:?} to answer",
            started.elapsed()
        );
        assert!(
            status == 200 || status == 503,
            "health answered {status}: {health}"
        );
        if status == expected {
            return health;
        }
        assert!(
            Instant::now() < deadline,
            "health {:?} {event} answered {status}, not {expected}: {health}\n{}",
            since.elapsed(),
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// [`await_health`] for a 503 with the error code `store_unavailable`.
fn await_health_unavailable(
    server: &Server,
    client: &reqwest::blocking::Client,
    event: &str,
    since: Instant,
) {
    let health = await_health(server, client, 503, event, since);
    assert_eq!(health["error"]["code"], "store_unavailable", "{health}");
}

/// Posts `body` to `path` while the database cannot be reached: the
/// answer must come within [`OUTAGE_ANSWER_MAX`] and be a 503 with the
/// error code `store_unavailable` and a message. `what` names the request
/// in failure messages.
fn assert_answers_unavailable(
    server: &Server,
    client: &reqwest::blocking::Client,
    path: &str,
    body: &Value,
    what: &str,
) {
    let started = Instant::now();
    let answer = exchange(client, Method::POST, &server.url(path), Some(body));
    let took = started.elapsed();
    let (status, answer) =
        answer.unwrap_or_else(|error| panic!("{what} got no answer in {took:?}: {error}"));
    assert_eq!(status, 503, "{what}: {answer}");
    assert_eq!(
        answer["error"]["code"], "store_unavailable",
        "{what}: {answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "{what}: {answer}"
    );
    assert!(took < OUTAGE_ANSWER_MAX, "{what} took {took:?} to fail");
}

/// Asserts that the facts of one batch (`hashes`) are in the log all or
/// none, and all when the batch was `acknowledged`. `batch` names it in
/// failure messages.
fn assert_stored_all_or_nothing(
    hashes: &[String],
    in_log: &HashSet<&str>,
    acknowledged: bool,
    batch: &str,
) {
    let stored = hashes
        .iter()
        .filter(|hash| in_log.contains(hash.as_str()))
        .count();
    assert!(
        stored == 0 || stored == hashes.len(),
        "{stored} of the {} facts of {batch} are stored",
        hashes.len()
    );
    if acknowledged {
        assert_eq!(
            stored,
            hashes.len(),
            "{batch}, acknowledged, is stored whole"
        );
    }
}

/// Checks that the server works again after a failure (`after` says
/// which): a new `Outage.Event` is written, and is the one message then
/// delivered on subscription `name`, which acks it.
fn assert_writes_and_delivers_again(
    server: &Server,
    client: &reqwest::blocking::Client,
    name: &str,
    after: &str,
) {
    let event = fact("Outage.Event", json!({ "n": after }), json!({}));
    let (status, answer) = write_facts(server, client, &[event]);
    assert_eq!(status, 200, "a write {after}: {answer}");
    let messages = pull_at_least(server, client, name, 1);
    let hashes: Vec<String> = messages.iter().map(message_hash).collect();
    assert_eq!(
        hashes,
        vec![result_hash(&answer, 0)],
        "the one new event is delivered {after}"
    );
    ack_all(server, client, name, &messages);
}

/// The user and the socket address of a `postgres://user@host:port/db` URL.
fn user_and_address(url: &str) -> (String, SocketAddr) {
    let rest = url.strip_prefix("postgres://").expect("a postgres:// URL");
    let (user, rest) = rest.split_once('@').expect("a user in the URL");
    let host_port = rest.split('/').next().expect("host and port");
    let address = host_port
        .to_socket_addrs()
        .expect("the address resolves")
        .next()
        .expect("one address");
    (user.to_string(), address)
}

/// A TCP proxy in front of PostgreSQL. It forwards connections, and on
/// command cuts them (closes every connection and turns new ones away:
/// accepted, then closed at once) or stalls them (bytes stop flowing both
/// ways and new connections are held unanswered, as in a network
/// partition), and lets them through again. It can stall right after a
/// large request went through to PostgreSQL, so that a statement is
/// certainly in flight when the partition starts.
struct Proxy {
    address: SocketAddr,
    shared: Arc<ProxyShared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Clone, Copy, PartialEq)]
enum ProxyMode {
    Open,
    Cut,
    Stalled,
}

struct ProxyShared {
    stopping: AtomicBool,
    /// Read by the copying threads before each write.
    stalled: AtomicBool,
    /// When not 0: stall after forwarding a read of at least this many
    /// bytes towards PostgreSQL.
    stall_after_bytes: AtomicUsize,
    connections: Mutex<ProxyConnections>,
}

struct ProxyConnections {
    mode: ProxyMode,
    /// When the last stall began.
    stalled_at: Option<Instant>,
    /// Both ends of every forwarded connection, to cut them.
    streams: Vec<TcpStream>,
    /// Connections accepted while stalled, never answered.
    held: Vec<TcpStream>,
    /// The threads copying bytes, two per connection.
    pumps: Vec<JoinHandle<()>>,
}

impl Proxy {
    fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("the proxy listens");
        let address = listener.local_addr().unwrap();
        let shared = Arc::new(ProxyShared {
            stopping: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            stall_after_bytes: AtomicUsize::new(0),
            connections: Mutex::new(ProxyConnections {
                mode: ProxyMode::Open,
                stalled_at: None,
                streams: Vec::new(),
                held: Vec::new(),
                pumps: Vec::new(),
            }),
        });
        let acceptor_shared = Arc::clone(&shared);
        let acceptor = std::thread::spawn(move || {
            for client in listener.incoming() {
                if acceptor_shared.stopping.load(Ordering::Acquire) {
                    break;
                }
                let Ok(client) = client else { continue };
                // Deciding under the lock that `cut` and `stall` take means
                // no connection slips through a change of mode.
                let mut connections = acceptor_shared.connections.lock().unwrap();
                match connections.mode {
                    ProxyMode::Cut => drop(client),
                    ProxyMode::Stalled => connections.held.push(client),
                    ProxyMode::Open => {
                        if let Ok(upstream) =
                            TcpStream::connect_timeout(&target, Duration::from_secs(2))
                        {
                            forward(&acceptor_shared, client, upstream, &mut connections);
                        }
                    }
                }
            }
        });
        Proxy {
            address,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Closes every forwarded connection and turns new ones away.
    fn cut(&self) {
        let mut connections = self.shared.connections.lock().unwrap();
        connections.mode = ProxyMode::Cut;
        self.shared.stalled.store(false, Ordering::Release);
        for stream in connections.streams.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        connections.held.clear();
    }

    /// Stalls right after the next read of at least `bytes_min` bytes
    /// towards PostgreSQL (a large statement) went through; returns when
    /// the stall began.
    fn stall_after_request_of(&self, bytes_min: usize, within: Duration) -> Instant {
        self.shared
            .stall_after_bytes
            .store(bytes_min, Ordering::Release);
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(stalled_at) = self.shared.connections.lock().unwrap().stalled_at {
                return stalled_at;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("no request of {bytes_min} bytes went to PostgreSQL within {within:?}");
    }

    /// Forwards again: stalled connections resume, held ones are closed
    /// (their clients gave up long ago), new ones pass.
    fn restore(&self) {
        let mut connections = self.shared.connections.lock().unwrap();
        connections.mode = ProxyMode::Open;
        connections.stalled_at = None;
        self.shared.stall_after_bytes.store(0, Ordering::Release);
        self.shared.stalled.store(false, Ordering::Release);
        connections.held.clear();
    }
}

impl ProxyShared {
    /// Stops every byte, both ways, without closing anything.
    fn stall(&self) {
        let mut connections = self.connections.lock().unwrap();
        connections.mode = ProxyMode::Stalled;
        connections.stalled_at.get_or_insert_with(Instant::now);
        self.stall_after_bytes.store(0, Ordering::Release);
        self.stalled.store(true, Ordering::Release);
    }
}

/// Copies bytes both ways between `client` and `upstream` on two threads,
/// holding them back while the proxy is stalled.
fn forward(
    shared: &Arc<ProxyShared>,
    client: TcpStream,
    upstream: TcpStream,
    connections: &mut ProxyConnections,
) {
    let ends = [
        (client.try_clone(), upstream.try_clone(), true),
        (upstream.try_clone(), client.try_clone(), false),
    ];
    for ends in ends {
        let (Ok(mut from), Ok(mut to), towards_postgres) = ends else {
            return;
        };
        let shared = Arc::clone(shared);
        connections.pumps.push(std::thread::spawn(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let n_bytes = match from.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n_bytes) => n_bytes,
                };
                while shared.stalled.load(Ordering::Acquire)
                    && !shared.stopping.load(Ordering::Acquire)
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if to.write_all(&buffer[..n_bytes]).is_err() {
                    break;
                }
                let bytes_min = shared.stall_after_bytes.load(Ordering::Acquire);
                if towards_postgres && bytes_min > 0 && n_bytes >= bytes_min {
                    shared.stall();
                }
            }
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        }));
    }
    connections.streams.push(client);
    connections.streams.push(upstream);
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.cut();
        // Wakes the acceptor, which then sees `stopping`.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let pumps: Vec<_> = self
            .shared
            .connections
            .lock()
            .unwrap()
            .pumps
            .drain(..)
            .collect();
        for pump in pumps {
            let _ = pump.join();
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Three servers on one data directory, hence (on PostgreSQL) one database.
fn start_servers(data: &Path) -> Vec<Server> {
    (0..N_SERVERS).map(|_| Server::start(data, &[])).collect()
}

/// A blocking client with a short connect timeout, so that a dead server
/// is noticed at once.
fn client(timeout: Duration) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("client builds")
}

/// A runtime for the few async calls of these tests (the SDK client, the
/// test database).
fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the runtime builds")
}

/// Sends a request; its status and JSON answer (a string if the body is not
/// JSON), or why no answer came.
fn exchange(
    client: &reqwest::blocking::Client,
    method: Method,
    url: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().map_err(|error| format!("{error:?}"))?;
    let status = response.status().as_u16();
    let text = response.text().map_err(|error| format!("{error:?}"))?;
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, value))
}

/// The hash of result `idx` of a write answer.
fn result_hash(answer: &Value, idx: usize) -> String {
    answer["results"][idx]["hash"]
        .as_str()
        .unwrap_or_else(|| panic!("no hash {idx} in {answer}"))
        .to_string()
}

/// The hashes of a page of facts (log or successors).
fn page_hashes(page: &Value) -> Vec<String> {
    page["facts"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page of facts: {page}"))
        .iter()
        .map(|entry| entry["hash"].as_str().expect("hash").to_string())
        .collect()
}

/// The messages of a pull's answer.
fn messages_of(answer: &Value) -> Vec<Value> {
    answer["messages"].as_array().cloned().unwrap_or_default()
}

/// The body of an ack (or nack) of `messages`.
fn ack_body(messages: &[Value]) -> Value {
    let tokens: Vec<&Value> = messages.iter().map(|message| &message["token"]).collect();
    json!({ "tokens": tokens })
}

/// The status of each result of an ack's answer, in the order of the
/// tokens ("?" for a result without one); an answer without one result per
/// token (`n_tokens`) is noted in `errors`.
fn ack_result_statuses(answer: &Value, n_tokens: usize, errors: &mut Vec<String>) -> Vec<String> {
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    if results.len() != n_tokens {
        errors.push(format!("ack answered {answer}"));
    }
    results
        .iter()
        .map(|result| result["status"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// The hash of a message of a pull.
fn message_hash(message: &Value) -> String {
    message["hash"].as_str().expect("message hash").to_string()
}

/// Sends a request to `path` on `server`; its status and JSON answer.
/// Panics when no answer comes.
fn request(
    server: &Server,
    client: &reqwest::blocking::Client,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    exchange(client, method, &server.url(path), body)
        .unwrap_or_else(|error| panic!("{path}: no answer: {error}"))
}

/// Posts one batch of facts; status and JSON answer.
fn write_facts(
    server: &Server,
    client: &reqwest::blocking::Client,
    facts: &[Value],
) -> (u16, Value) {
    let body = json!({ "facts": facts });
    request(server, client, Method::POST, "/v1/facts", Some(&body))
}

/// How long [`pull_at_least`] keeps pulling.
const PULL_AT_LEAST_MAX: Duration = Duration::from_secs(10);

/// Pulls through `server` until at least `count` messages came or
/// [`PULL_AT_LEAST_MAX`] passed.
fn pull_at_least(
    server: &Server,
    client: &reqwest::blocking::Client,
    name: &str,
    count: usize,
) -> Vec<Value> {
    let deadline = Instant::now() + PULL_AT_LEAST_MAX;
    let path = format!("/v1/subscriptions/{name}/pull");
    let body = json!({"max": 100, "wait_ms": 1000});
    let mut messages = Vec::new();
    while messages.len() < count && Instant::now() < deadline {
        let (status, answer) = request(server, client, Method::POST, &path, Some(&body));
        assert_eq!(status, 200, "pull: {answer}");
        messages.extend(messages_of(&answer));
    }
    messages
}

/// Acks `messages` through `server`; each must answer "acked".
fn ack_all(server: &Server, client: &reqwest::blocking::Client, name: &str, messages: &[Value]) {
    let (status, answer) = request(
        server,
        client,
        Method::POST,
        &format!("/v1/subscriptions/{name}/ack"),
        Some(&ack_body(messages)),
    );
    assert_eq!(status, 200, "ack: {answer}");
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), messages.len(), "{answer}");
    assert!(results.iter().all(|r| r["status"] == "acked"), "{answer}");
}

/// Asserts that subscription `name`, seen through `server`, has no
/// backlog and nothing in flight.
fn assert_subscription_drained(server: &Server, name: &str) {
    let (status, view) = get_json(server, &format!("/v1/subscriptions/{name}"));
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (view["backlog"].as_u64(), view["in_flight"].as_u64()),
        (Some(0), Some(0)),
        "subscription {name} through {} has messages left: {view}",
        server.base
    );
}

/// Starts a long-poll on every URL of `poll_urls` (each waiting for a
/// fact to come), calls `write` once they wait, and asserts that every
/// poll answers with the fact whose hash `write` returns, within 5 s of
/// the write. `written` names the write in failure messages. Returns the
/// hash.
fn assert_long_polls_wake_on(
    poll_urls: Vec<String>,
    written: &str,
    write: impl FnOnce() -> String,
) -> String {
    let polls: Vec<_> = poll_urls
        .into_iter()
        .map(|url| {
            std::thread::spawn(move || {
                let answer = exchange(&client(Duration::from_secs(30)), Method::GET, &url, None);
                (url, answer, Instant::now())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let written_at = Instant::now();
    let hash = write();
    for poll in polls {
        let (url, answer, answered_at) = poll.join().unwrap();
        let (status, page) = answer.unwrap_or_else(|error| panic!("{url}: {error}"));
        assert_eq!(status, 200, "{url}: {page}");
        assert!(
            page_hashes(&page).contains(&hash),
            "the long-poll {url} answered without {written}: {page}"
        );
        let woke_after = answered_at.saturating_duration_since(written_at);
        assert!(
            woke_after < Duration::from_secs(5),
            "the long-poll {url} woke {woke_after:?} after {written}"
        );
    }
    hash
}

/// The whole log of a server as (seq, hash).
fn read_log(server: &Server, client: &reqwest::blocking::Client) -> Vec<(u64, String)> {
    let mut entries = Vec::new();
    let mut after = 0;
    for _ in 0..10_000 {
        let path = format!("/v1/log?after={after}&limit=10000");
        let (status, page) = request(server, client, Method::GET, &path, None);
        assert_eq!(status, 200, "{page}");
        for entry in page["facts"].as_array().expect("facts") {
            let seq = entry["seq"].as_u64().expect("seq");
            entries.push((seq, entry["hash"].as_str().expect("hash").to_string()));
        }
        let next = page["next"].as_u64().expect("next");
        if next == after {
            return entries;
        }
        after = next;
    }
    panic!("the log did not end");
}

/// The hashes of a log read by [`read_log`].
fn log_hashes(log: &[(u64, String)]) -> HashSet<&str> {
    log.iter().map(|(_, hash)| hash.as_str()).collect()
}

/// Asserts that the seqs of a whole log are 1, 2, 3, … without gaps.
fn assert_seqs_dense(log: &[(u64, String)]) {
    let seqs: Vec<u64> = log.iter().map(|(seq, _)| *seq).collect();
    let dense: Vec<u64> = (1..=log.len() as u64).collect();
    assert!(seqs == dense, "the log's seqs are 1, 2, 3, … without gaps");
}

/// The hash of a fact as the server computes it, for the plain facts of
/// these tests (ASCII keys, integers and ASCII strings, no predecessor
/// arrays): BLAKE3 of the JSON with object keys sorted, no whitespace. The
/// tests check it against the server's answers.
fn fact_hash(value: &Value) -> String {
    blake3::hash(canonical(value).as_bytes())
        .to_hex()
        .to_string()
}

fn canonical(value: &Value) -> String {
    match value {
        Value::Object(members) => {
            let mut keys: Vec<&String> = members.keys().collect();
            keys.sort();
            let members: Vec<String> = keys
                .into_iter()
                .map(|key| {
                    format!(
                        "{}:{}",
                        Value::String(key.clone()),
                        canonical(&members[key])
                    )
                })
                .collect();
            format!("{{{}}}", members.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// A tiny deterministic generator (xorshift).
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Joins every thread of `threads` (`what` names one, for the panic
/// message) and returns what they returned.
fn join_all<T>(threads: Vec<JoinHandle<T>>, what: &str) -> Vec<T> {
    threads
        .into_iter()
        .map(|thread| thread.join().unwrap_or_else(|_| panic!("{what} panicked")))
        .collect()
}

/// At most `n` items of a slice, for failure messages.
fn first<T>(items: &[T], n: usize) -> &[T] {
    &items[..items.len().min(n)]
}
