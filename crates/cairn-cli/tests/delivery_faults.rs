//! Delivery under faults, checked by an oracle: a publisher and four
//! consumers that randomly fail (nack) or vanish (leases run out) while the
//! real server is killed with `kill -9` and stopped with SIGTERM and
//! restarted. The oracle records every publish, delivery and ack answer and
//! checks that every published message is delivered and finally acked, and
//! that no message is ever delivered again once an ack was answered
//! "acked" — across crashes too.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const MESSAGES: usize = 3_000;
const BATCH: usize = 50;
const CONSUMERS: u64 = 4;
const DEADLINE: Duration = Duration::from_secs(120);
/// How long the negative control runs after its crashes.
const NEGATIVE_CONTROL_SETTLE: Duration = Duration::from_secs(15);

#[derive(Default)]
struct Oracle {
    published: HashSet<String>,
    /// Deliveries per message.
    delivered: HashMap<String, u64>,
    /// Messages whose ack was answered "acked".
    acked: HashSet<String>,
    /// Messages whose ack got no answer (the server died): acked or not.
    ack_unknown: HashSet<String>,
    violations: Vec<String>,
}

fn try_post(
    client: &reqwest::blocking::Client,
    base: &str,
    path: &str,
    body: &Value,
) -> Option<Value> {
    let response = client
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().ok()
}

#[test]
fn every_message_is_delivered_and_acked_messages_never_return_across_crashes() {
    let (oracle, server) = consume_through_crashes(&[]);
    let server = server.expect("the server restarts after every crash");
    assert!(
        oracle.violations.is_empty(),
        "violations: {:?}",
        &oracle.violations[..oracle.violations.len().min(10)]
    );
    assert_eq!(oracle.published.len(), MESSAGES);
    let settled: HashSet<String> = oracle.acked.union(&oracle.ack_unknown).cloned().collect();
    assert!(
        oracle.published.is_subset(&settled),
        "every published message was acked"
    );
    assert!(
        oracle.acked.is_subset(&oracle.published),
        "no phantom messages"
    );
    let redelivered = oracle.delivered.values().filter(|n| **n > 1).count();
    assert!(
        redelivered > 0,
        "faults caused no redelivery: the test did not test anything"
    );
    let (_, view) = get_json(&server, "/v1/subscriptions/work");
    assert_eq!(
        (
            view["backlog"].as_u64(),
            view["in_flight"].as_u64(),
            view["dead"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{view}"
    );
}

/// Negative control: a server that answers acks before writing them loses
/// some in the crashes, and the oracle must see those messages return.
#[test]
fn negative_control_unsafe_acks_are_caught() {
    if on_postgres() {
        return; // the unsafe mode is the embedded store's; PostgreSQL commits
    }
    let (oracle, _server) = consume_through_crashes(&["--unsafe-ack-before-write"]);
    let lost: Vec<_> = oracle
        .published
        .iter()
        .filter(|hash| !oracle.acked.contains(*hash) && !oracle.ack_unknown.contains(*hash))
        .collect();
    eprintln!(
        "negative control: {} acked messages delivered again, {} published messages never acked",
        oracle.violations.len(),
        lost.len()
    );
    assert!(
        !oracle.violations.is_empty() || !lost.is_empty(),
        "the oracle must catch what the unsafe server loses"
    );
}

/// Runs the publisher, the consumers and the crashes; returns what the
/// oracle saw and the last server (none if the store refused to reopen).
fn consume_through_crashes(server_args: &[&str]) -> (Oracle, Option<Server>) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), server_args);
    let (status, _) = put_subscription(
        &server,
        "work",
        json!({"type": "Work.Item", "lease_ms": 400, "max_attempts": 1000,
               "backoff": {"initial_ms": 10, "max_ms": 100}}),
    );
    assert_eq!(status, 201);
    let base = Arc::new(RwLock::new(server.base.clone()));
    let oracle = Arc::new(Mutex::new(Oracle::default()));
    let publishing_done = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let n_ack_answers = Arc::new(AtomicU64::new(0));

    let publisher = {
        let (base, oracle, publishing_done, stop) = (
            Arc::clone(&base),
            Arc::clone(&oracle),
            Arc::clone(&publishing_done),
            Arc::clone(&stop),
        );
        std::thread::spawn(move || {
            let client = http();
            for batch_start in (0..MESSAGES).step_by(BATCH) {
                let facts: Vec<Value> = (batch_start..batch_start + BATCH)
                    .map(|n| fact("Work.Item", json!({ "n": n }), json!({})))
                    .collect();
                let started = Instant::now();
                let answer = loop {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    assert!(started.elapsed() < DEADLINE, "publishing never succeeded");
                    let current = base.read().unwrap().clone();
                    match try_post(&client, &current, "/v1/facts", &json!({ "facts": facts })) {
                        Some(answer) => break answer,
                        None => std::thread::sleep(Duration::from_millis(50)),
                    }
                };
                let mut oracle = oracle.lock().unwrap();
                for result in answer["results"].as_array().unwrap() {
                    oracle
                        .published
                        .insert(result["hash"].as_str().unwrap().to_string());
                }
                drop(oracle);
                std::thread::sleep(Duration::from_millis(10));
            }
            publishing_done.store(true, Ordering::Release);
        })
    };

    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|consumer| {
            let (base, oracle, stop, n_ack_answers) = (
                Arc::clone(&base),
                Arc::clone(&oracle),
                Arc::clone(&stop),
                Arc::clone(&n_ack_answers),
            );
            std::thread::spawn(move || {
                let client = http();
                let mut random = 0x9e37_79b9_7f4a_7c15 ^ (consumer + 1);
                while !stop.load(Ordering::Acquire) {
                    let current = base.read().unwrap().clone();
                    let Some(answer) = try_post(
                        &client,
                        &current,
                        "/v1/subscriptions/work/pull",
                        &json!({"max": 20, "wait_ms": 200}),
                    ) else {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    let messages = answer["messages"].as_array().unwrap().clone();
                    {
                        let mut oracle = oracle.lock().unwrap();
                        for message in &messages {
                            let hash = message["hash"].as_str().unwrap().to_string();
                            if oracle.acked.contains(&hash) {
                                oracle
                                    .violations
                                    .push(format!("{hash} delivered after it was acked"));
                            }
                            *oracle.delivered.entry(hash).or_default() += 1;
                        }
                    }
                    let (mut acks, mut nacks) = (Vec::new(), Vec::new());
                    for message in messages {
                        match next_random(&mut random) % 100 {
                            0..=9 => nacks.push(message["token"].clone()),
                            10..=14 => {} // The consumer "crashes": the lease runs out.
                            _ => acks.push(message),
                        }
                    }
                    if !nacks.is_empty() {
                        try_post(
                            &client,
                            &current,
                            "/v1/subscriptions/work/nack",
                            &json!({"tokens": nacks, "error": "random failure"}),
                        );
                    }
                    if acks.is_empty() {
                        continue;
                    }
                    let tokens: Vec<Value> = acks.iter().map(|m| m["token"].clone()).collect();
                    let answer = try_post(
                        &client,
                        &current,
                        "/v1/subscriptions/work/ack",
                        &json!({ "tokens": tokens }),
                    );
                    let mut oracle = oracle.lock().unwrap();
                    let Some(answer) = answer else {
                        for message in &acks {
                            let hash = message["hash"].as_str().unwrap().to_string();
                            oracle.ack_unknown.insert(hash);
                        }
                        continue;
                    };
                    n_ack_answers.fetch_add(1, Ordering::Relaxed);
                    for (message, result) in acks.iter().zip(answer["results"].as_array().unwrap())
                    {
                        if result["status"] == "acked" {
                            let hash = message["hash"].as_str().unwrap().to_string();
                            if !oracle.acked.insert(hash.clone()) {
                                oracle.violations.push(format!("{hash} acked twice"));
                            }
                        }
                    }
                }
            })
        })
        .collect();

    // Faults: kill -9 twice and SIGTERM once while consumption runs.
    for (cycle, clean) in [(0, false), (1, true), (2, false)] {
        let wait_started = Instant::now();
        while n_ack_answers.load(Ordering::Relaxed) < 20 * (cycle + 1) as u64 {
            assert!(
                wait_started.elapsed() < DEADLINE,
                "consumers made no progress"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        if clean {
            assert!(server.terminate().success());
        } else {
            server.kill9();
        }
        drop(server);
        server = match Server::try_start(dir.path(), server_args) {
            Ok(restarted) => restarted,
            Err(stderr) => {
                // Only an unsafe server loses acknowledged writes; the
                // store's watermark then refuses to open. That is a loss the
                // oracle counts.
                oracle.lock().unwrap().violations.push(format!(
                    "the store refused to open after a crash: {}",
                    stderr.lines().last().unwrap_or("")
                ));
                stop.store(true, Ordering::Release);
                publisher.join().unwrap();
                for consumer in consumers {
                    consumer.join().unwrap();
                }
                let oracle = std::mem::take(&mut *oracle.lock().unwrap());
                return (oracle, None);
            }
        };
        *base.write().unwrap() = server.base.clone();
    }

    // Run until every published message is acked.
    let started = Instant::now();
    loop {
        let (settled, violated) = {
            let oracle = oracle.lock().unwrap();
            // A message whose ack got no answer may be acked: the server's
            // own view must then show nothing left to deliver.
            let settled = publishing_done.load(Ordering::Acquire)
                && oracle
                    .published
                    .iter()
                    .all(|hash| oracle.acked.contains(hash) || oracle.ack_unknown.contains(hash));
            (settled, !oracle.violations.is_empty())
        };
        let done = settled && {
            let (_, view) = get_json(&server, "/v1/subscriptions/work");
            view["backlog"] == 0 && view["in_flight"] == 0
        };
        // The negative control may never finish: its acked messages can come
        // back, and published ones can be lost outright.
        let unsafe_server = !server_args.is_empty();
        if done || (unsafe_server && (violated || started.elapsed() > NEGATIVE_CONTROL_SETTLE)) {
            break;
        }
        if started.elapsed() > DEADLINE {
            let oracle = oracle.lock().unwrap();
            let (_, view) = get_json(&server, "/v1/subscriptions/work");
            panic!(
                "messages were not all acked in time: {} published, {} acked, {} violations; view {view}",
                oracle.published.len(),
                oracle.acked.len(),
                oracle.violations.len()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Release);
    publisher.join().unwrap();
    for consumer in consumers {
        consumer.join().unwrap();
    }
    let oracle = std::mem::take(&mut *oracle.lock().unwrap());
    (oracle, Some(server))
}
