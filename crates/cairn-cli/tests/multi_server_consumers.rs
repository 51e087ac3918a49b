//! Consumers on every one of several `cairn serve` processes over one
//! PostgreSQL database share one subscription: every message is delivered,
//! and no message is ever leased twice.
//!
//! It only makes sense on the PostgreSQL backend: each test returns at once
//! unless `CAIRN_TEST_BACKEND=postgres`. Run with
//! `CAIRN_TEST_BACKEND=postgres cargo test -p cairn-cli --test multi_server_consumers`.
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
