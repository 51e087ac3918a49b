//! Subscriptions end to end against the real binary: the contract's
//! endpoints, retries with growing delays, dead letters and replay, per-key
//! ordering under concurrency, delays that survive restarts, pause, rate
//! limits, metrics, bad input that changes nothing, and definitions that
//! change under their messages (generations, `If-Match`).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{json, Value};

fn view(server: &Server, name: &str) -> Value {
    let (status, view) = get_json(server, &format!("/v1/subscriptions/{name}"));
    assert_eq!(status, 200, "{view}");
    view
}

fn publish(server: &Server, type_name: &str, n: usize) -> Vec<String> {
    let facts: Vec<Value> = (0..n)
        .map(|index| fact(type_name, json!({ "n": index }), json!({})))
        .collect();
    let (status, answer) = post_facts(server, &facts);
    assert_eq!(status, 200, "{answer}");
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| result["hash"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn contract_tour_create_pull_ack_nack_dead_replay_discard_delete() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let definition = json!({"type": "Shop.Order", "max_attempts": 2,
                            "backoff": {"initial_ms": 50, "max_ms": 100}});
    let (status, created) = put_subscription(&server, "billing", definition.clone());
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["lease_ms"], 30000);
    assert_eq!(created["start"], "beginning");
    assert_eq!(
        put_subscription(&server, "billing", definition.clone()).0,
        200
    );
    let mut started_now = definition;
    started_now["start"] = json!("now");
    let (status, conflict) = put_subscription(&server, "billing", started_now);
    assert_eq!(
        (status, conflict["error"]["code"].as_str()),
        (409, Some("subscription_conflict"))
    );

    let hashes = publish(&server, "Shop.Order", 3);
    publish(&server, "Other.Type", 2);
    assert_eq!(view(&server, "billing")["backlog"], 3);
    let messages = pull(&server, "billing", 10, 0);
    assert_eq!(messages.len(), 3);
    for (message, hash) in messages.iter().zip(&hashes) {
        assert_eq!(message["hash"], hash.as_str());
        assert_eq!(message["attempt"], 1);
        assert_eq!(message["fact"]["type"], "Shop.Order");
    }
    let in_flight = view(&server, "billing");
    assert_eq!(
        (
            in_flight["in_flight"].as_u64(),
            in_flight["backlog"].as_u64()
        ),
        (Some(3), Some(0))
    );
    let statuses = settle(&server, "billing", "ack", &messages[..1], json!({}));
    assert_eq!(statuses, ["acked"]);
    assert_eq!(
        settle(&server, "billing", "ack", &messages[..1], json!({})),
        ["unknown"]
    );

    // Two failures with an error text make message 2 a dead letter.
    settle(
        &server,
        "billing",
        "nack",
        &messages[1..2],
        json!({"error": "card declined"}),
    );
    let again = pull(&server, "billing", 10, 5_000);
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0]["hash"].as_str(), again[0]["attempt"].as_u64()),
        (Some(hashes[1].as_str()), Some(2))
    );
    settle(
        &server,
        "billing",
        "nack",
        &again,
        json!({"error": "card declined again"}),
    );
    let after_dead = view(&server, "billing");
    assert_eq!(after_dead["dead"], 1);
    assert_eq!(after_dead["redelivered"], 1);
    let (status, dead) = get_json(&server, "/v1/subscriptions/billing/dead");
    assert_eq!(status, 200);
    let letter = &dead["messages"][0];
    assert_eq!(letter["hash"], hashes[1].as_str());
    assert_eq!(letter["attempts"], 2);
    assert_eq!(letter["last_error"], "card declined again");
    assert_eq!(letter["fact"]["fields"]["n"], 1);
    let (status, one) = get_json(
        &server,
        &format!("/v1/subscriptions/billing/dead/{}", hashes[1]),
    );
    assert_eq!((status, &one["hash"]), (200, &letter["hash"]));

    // Replay brings it back with fresh attempts.
    let (status, replayed) = post_json(
        &server,
        "/v1/subscriptions/billing/dead/replay",
        json!({"hashes": [hashes[1]]}),
    );
    assert_eq!((status, replayed["replayed"].as_u64()), (200, Some(1)));
    let back = pull(&server, "billing", 10, 2_000);
    assert_eq!((back.len(), back[0]["attempt"].as_u64()), (1, Some(1)));
    // Fail it for good, then discard it: recorded, not forgotten.
    settle(&server, "billing", "nack", &back, json!({"delay_ms": 0}));
    let last = pull(&server, "billing", 10, 2_000);
    settle(&server, "billing", "nack", &last, json!({}));
    let discard = http()
        .delete(server.url(&format!("/v1/subscriptions/billing/dead/{}", hashes[1])))
        .send()
        .unwrap();
    assert_eq!(discard.status().as_u16(), 200);
    let (_, dead) = get_json(&server, "/v1/subscriptions/billing/dead");
    assert_eq!(dead["messages"].as_array().unwrap().len(), 0);
    let (_, discarded) = get_json(&server, "/v1/subscriptions/billing/dead?discarded=true");
    assert_eq!(discarded["messages"][0]["hash"], hashes[1].as_str());
    let counters = view(&server, "billing");
    assert_eq!(
        (counters["dead"].as_u64(), counters["discarded"].as_u64()),
        (Some(0), Some(1))
    );

    // start=now sees only later facts; list shows both.
    let (status, _) = put_subscription(
        &server,
        "late",
        json!({"type": "Shop.Order", "start": "now"}),
    );
    assert_eq!(status, 201);
    assert!(pull(&server, "late", 10, 0).is_empty());
    let newer = [put_one(
        &server,
        fact("Shop.Order", json!({"late": true}), json!({})),
    )];
    assert_eq!(
        pull(&server, "late", 10, 2_000)[0]["hash"],
        newer[0].as_str()
    );
    let (_, list) = get_json(&server, "/v1/subscriptions");
    let names: Vec<_> = list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, [json!("billing"), json!("late")]);

    // Delete removes it for good.
    assert_eq!(
        http()
            .delete(server.url("/v1/subscriptions/late"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(get_json(&server, "/v1/subscriptions/late").0, 404);
    assert_eq!(
        put_subscription(&server, "late", json!({"type": "Other.Type"})).0,
        201
    );
}

#[test]
fn failing_handler_is_retried_with_growing_delays_then_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    put_subscription(
        &server,
        "retry",
        json!({"type": "Job", "max_attempts": 10,
        "backoff": {"initial_ms": 100, "max_ms": 5000}}),
    );
    publish(&server, "Job", 1);
    const FAILURES: u64 = 4;
    let mut delivered_at = Vec::new();
    loop {
        let messages = pull(&server, "retry", 1, 10_000);
        assert_eq!(messages.len(), 1, "the message comes back");
        delivered_at.push(Instant::now());
        let attempt = messages[0]["attempt"].as_u64().unwrap();
        assert_eq!(attempt, delivered_at.len() as u64);
        if attempt <= FAILURES {
            settle(
                &server,
                "retry",
                "nack",
                &messages,
                json!({"error": format!("failure {attempt}")}),
            );
        } else {
            assert_eq!(
                settle(&server, "retry", "ack", &messages, json!({})),
                ["acked"]
            );
            break;
        }
    }
    assert_eq!(delivered_at.len() as u64, FAILURES + 1);
    let gaps: Vec<Duration> = delivered_at
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .collect();
    // Backoff ceilings 100, 200, 400, 800 ms, jittered into [d/2, d].
    for (index, gap) in gaps.iter().enumerate() {
        let floor = Duration::from_millis(50 << index);
        assert!(
            *gap >= floor,
            "gap {index} is {gap:?}, below {floor:?}: {gaps:?}"
        );
    }
    assert!(gaps[3] > gaps[0], "delays grow: {gaps:?}");
    assert!(pull(&server, "retry", 1, 300).is_empty());
}

/// One handled message: account, seq, handling start and end.
type Handled = (String, u64, Instant, Instant);

#[test]
fn ordering_key_holds_under_concurrent_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    put_subscription(
        &server,
        "ordered",
        json!({"type": "Account.Entry", "ordering_key": "account",
        "backoff": {"initial_ms": 10, "max_ms": 20}}),
    );
    const ACCOUNTS: usize = 5;
    const ENTRIES: usize = 40;
    let accounts: Vec<String> = (0..ACCOUNTS)
        .map(|index| {
            put_one(
                &server,
                fact("Account", json!({ "index": index }), json!({})),
            )
        })
        .collect();
    // Interleave entries of all accounts in the log.
    let mut expected: HashMap<String, Vec<u64>> = HashMap::new();
    for entry in 0..ENTRIES {
        let facts: Vec<Value> = accounts
            .iter()
            .map(|account| {
                fact(
                    "Account.Entry",
                    json!({ "entry": entry }),
                    json!({ "account": account }),
                )
            })
            .collect();
        let (_, answer) = post_facts(&server, &facts);
        for (result, account) in answer["results"].as_array().unwrap().iter().zip(&accounts) {
            expected
                .entry(account.clone())
                .or_default()
                .push(result["seq"].as_u64().unwrap());
        }
    }
    // Four consumers; each handling records (account, seq, start, end) and
    // sometimes fails, which must not let later entries overtake.
    let handled: Arc<Mutex<Vec<Handled>>> = Arc::default();
    let consumers: Vec<_> = (0..4)
        .map(|consumer| {
            let base = server.base.clone();
            let handled = Arc::clone(&handled);
            std::thread::spawn(move || {
                let client = http();
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut n_pulls = 0u64;
                while Instant::now() < deadline {
                    let answer: Value = client
                        .post(format!("{base}/v1/subscriptions/ordered/pull"))
                        .json(&json!({"max": 3, "wait_ms": 300}))
                        .send()
                        .unwrap()
                        .json()
                        .unwrap();
                    let messages = answer["messages"].as_array().unwrap().clone();
                    if messages.is_empty() {
                        let (_, view) = json_answer(
                            client
                                .get(format!("{base}/v1/subscriptions/ordered"))
                                .send()
                                .unwrap(),
                        );
                        if view["backlog"] == 0 && view["in_flight"] == 0 {
                            return;
                        }
                        continue;
                    }
                    for message in messages {
                        n_pulls += 1;
                        let start = Instant::now();
                        std::thread::sleep(Duration::from_millis(2));
                        let verb = if (n_pulls + consumer).is_multiple_of(7) {
                            "nack"
                        } else {
                            "ack"
                        };
                        let end = Instant::now();
                        if verb == "ack" {
                            let account = message["fact"]["predecessors"]["account"]
                                .as_str()
                                .unwrap()
                                .to_string();
                            handled.lock().unwrap().push((
                                account,
                                message["seq"].as_u64().unwrap(),
                                start,
                                end,
                            ));
                        }
                        client
                            .post(format!("{base}/v1/subscriptions/ordered/{verb}"))
                            .json(&json!({"tokens": [message["token"]]}))
                            .send()
                            .unwrap();
                    }
                }
                panic!("consumer {consumer} did not finish in time");
            })
        })
        .collect();
    for consumer in consumers {
        consumer.join().unwrap();
    }
    let handled = handled.lock().unwrap();
    let mut per_account: BTreeMap<String, Vec<(u64, Instant, Instant)>> = BTreeMap::new();
    for (account, seq, start, end) in handled.iter() {
        per_account
            .entry(account.clone())
            .or_default()
            .push((*seq, *start, *end));
    }
    for (account, mut entries) in per_account {
        entries.sort_by_key(|(_, start, _)| *start);
        let seqs: Vec<u64> = entries.iter().map(|(seq, _, _)| *seq).collect();
        assert_eq!(
            seqs, expected[&account],
            "entries of {account} handled out of order"
        );
        for pair in entries.windows(2) {
            assert!(
                pair[0].2 <= pair[1].1,
                "two entries of {account} handled at once"
            );
        }
    }
}

#[test]
fn not_before_and_nack_delays_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    put_subscription(&server, "timers", json!({"type": "Reminder"}));
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let due = time_text(now_ms + 2_500);
    put_one(
        &server,
        fact(
            "Reminder",
            json!({"cairn_not_before": due, "n": 1}),
            json!({}),
        ),
    );
    put_one(&server, fact("Reminder", json!({"n": 2}), json!({})));
    let first = pull(&server, "timers", 10, 0);
    assert_eq!(first.len(), 1, "only the undelayed reminder: {first:?}");
    assert_eq!(first[0]["fact"]["fields"]["n"], 2);
    settle(
        &server,
        "timers",
        "nack",
        &first,
        json!({"delay_ms": 2_500}),
    );
    server.kill9();
    let server = Server::start(dir.path(), &[]);
    assert!(
        pull(&server, "timers", 10, 0).is_empty(),
        "nothing is due yet"
    );
    let started = Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 2 && started.elapsed() < Duration::from_secs(10) {
        for message in pull(&server, "timers", 10, 5_000) {
            seen.push(message["fact"]["fields"]["n"].as_u64().unwrap());
            settle(&server, "timers", "ack", &[message], json!({}));
        }
    }
    seen.sort();
    assert_eq!(seen, [1, 2]);
    let waited_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - now_ms;
    assert!(
        waited_ms >= 2_500,
        "delivered after {waited_ms} ms, before its time"
    );
}

/// RFC 3339 in UTC for a time in ms since the epoch (civil-from-days).
fn time_text(ms: u64) -> String {
    let seconds = ms / 1000;
    let days = (seconds / 86_400) as i64;
    let (hour, minute, second) = (seconds % 86_400 / 3600, seconds % 3600 / 60, seconds % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{:03}Z",
        ms % 1000
    )
}

#[test]
fn pause_stops_delivery_and_rate_limit_is_respected() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    put_subscription(
        &server,
        "paced",
        json!({"type": "Tick", "rate_limit_per_s": 20}),
    );
    publish(&server, "Tick", 200);
    let (status, paused) = post_json(&server, "/v1/subscriptions/paced/pause", json!({}));
    assert_eq!((status, &paused["paused"]), (200, &json!(true)));
    assert!(
        pull(&server, "paced", 100, 300).is_empty(),
        "paused delivers nothing"
    );
    assert_eq!(view(&server, "paced")["paused"], true);
    let (status, _) = post_json(&server, "/v1/subscriptions/paced/resume", json!({}));
    assert_eq!(status, 200);
    // A burst of at most one second's worth, then about 20 per second.
    let started = Instant::now();
    let mut delivered = 0;
    while started.elapsed() < Duration::from_millis(1_500) {
        let messages = pull(&server, "paced", 100, 100);
        delivered += messages.len();
        if !messages.is_empty() {
            settle(&server, "paced", "ack", &messages, json!({}));
        }
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let allowed = 20.0 + 20.0 * elapsed_s + 1.0;
    assert!(delivered >= 20, "the burst is delivered: {delivered}");
    assert!(
        (delivered as f64) <= allowed,
        "{delivered} delivered in {elapsed_s:.2} s, above {allowed}"
    );
}

#[test]
fn metrics_report_each_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    put_subscription(&server, "observed", json!({"type": "Thing"}));
    publish(&server, "Thing", 5);
    let messages = pull(&server, "observed", 2, 0);
    settle(&server, "observed", "ack", &messages[..1], json!({}));
    let text = metrics_text(&server);
    for line in [
        "cairn_subscription_backlog{subscription=\"observed\"} 3",
        "cairn_subscription_in_flight{subscription=\"observed\"} 1",
        "cairn_subscription_acked_total{subscription=\"observed\"} 1",
        "cairn_subscription_delivered_total{subscription=\"observed\"} 2",
        "cairn_subscription_dead{subscription=\"observed\"} 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[test]
fn bad_input_gets_clear_errors_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    put_subscription(&server, "s", json!({"type": "T", "max_attempts": 3}));
    publish(&server, "T", 2);
    let before = view(&server, "s");
    let long_name = "n".repeat(129);
    let definitions: &[(&str, &str, &str)] = &[
        ("x", "not json", "invalid_definition"),
        ("x", "[]", "invalid_definition"),
        ("x", "{}", "invalid_definition"),
        ("x", r#"{"type":"1bad"}"#, "invalid_definition"),
        ("x", r#"{"type":"T","lease_ms":-1}"#, "invalid_definition"),
        ("x", r#"{"type":"T","lease_ms":0}"#, "invalid_definition"),
        (
            "x",
            r#"{"type":"T","max_attempts":0}"#,
            "invalid_definition",
        ),
        (
            "x",
            r#"{"type":"T","backoff":{"initial_ms":10,"max_ms":5}}"#,
            "invalid_definition",
        ),
        (
            "x",
            r#"{"type":"T","start":"tomorrow"}"#,
            "invalid_definition",
        ),
        ("x", r#"{"type":"T","extra":true}"#, "invalid_definition"),
        (
            "x",
            r#"{"type":"T","max_in_flight_per_key":2}"#,
            "invalid_definition",
        ),
        (
            "x",
            r#"{"type":"T","predecessor":{"role":"r","hash":"nothex"}}"#,
            "invalid_definition",
        ),
        ("bad name", r#"{"type":"T"}"#, "invalid_definition"),
        ("-dash", r#"{"type":"T"}"#, "invalid_definition"),
        (long_name.as_str(), r#"{"type":"T"}"#, "invalid_definition"),
        (
            "s",
            r#"{"type":"U","max_attempts":3}"#,
            "subscription_conflict",
        ),
        (
            "s",
            r#"{"type":"T","max_attempts":3,"lease_ms":0}"#,
            "invalid_definition",
        ),
    ];
    for (name, body, code) in definitions {
        let response = http()
            .put(server.url(&format!("/v1/subscriptions/{}", name.replace(' ', "%20"))))
            .body(body.to_string())
            .send()
            .unwrap();
        let (status, answer) = json_answer(response);
        assert!(status == 400 || status == 409, "{name} {body}: {status}");
        assert_eq!(answer["error"]["code"], *code, "{name} {body}: {answer}");
        assert!(answer["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let posts: &[(&str, Value, u16, &str)] = &[
        (
            "/v1/subscriptions/nope/pull",
            json!({}),
            404,
            "unknown_subscription",
        ),
        (
            "/v1/subscriptions/nope/ack",
            json!({"tokens": ["1-1"]}),
            404,
            "unknown_subscription",
        ),
        (
            "/v1/subscriptions/nope/nack",
            json!({"tokens": ["1-1"]}),
            404,
            "unknown_subscription",
        ),
        (
            "/v1/subscriptions/nope/pause",
            json!({}),
            404,
            "unknown_subscription",
        ),
        (
            "/v1/subscriptions/nope/dead/replay",
            json!({}),
            404,
            "unknown_subscription",
        ),
        (
            "/v1/subscriptions/s/pull",
            json!({"max": 1001}),
            400,
            "invalid_request",
        ),
        (
            "/v1/subscriptions/s/pull",
            json!({"max": 0}),
            400,
            "invalid_request",
        ),
        (
            "/v1/subscriptions/s/pull",
            json!({"max": -1}),
            400,
            "invalid_request",
        ),
        (
            "/v1/subscriptions/s/pull",
            json!({"wait_ms": 60001}),
            400,
            "invalid_request",
        ),
        (
            "/v1/subscriptions/s/pull",
            json!({"lease_ms": 1}),
            400,
            "invalid_request",
        ),
        (
            "/v1/subscriptions/s/pull",
            json!({"surprise": 1}),
            400,
            "invalid_request",
        ),
        (
            "/v1/subscriptions/s/pull",
            json!([1]),
            400,
            "invalid_request",
        ),
        ("/v1/subscriptions/s/ack", json!({}), 400, "invalid_request"),
        (
            "/v1/subscriptions/s/ack",
            json!({"tokens": []}),
            400,
            "invalid_request",
        ),
        (
            "/v1/subscriptions/s/ack",
            json!({"tokens": [1, 2]}),
            400,
            "invalid_request",
        ),
        (
            "/v1/subscriptions/s/ack",
            json!({"tokens": "1-1"}),
            400,
            "invalid_request",
        ),
        (
            "/v1/subscriptions/s/nack",
            json!({"tokens": ["1-1"], "delay_ms": -5}),
            400,
            "invalid_request",
        ),
        (
            "/v1/subscriptions/s/nack",
            json!({"tokens": ["1-1"], "delay_ms": 86400001u64}),
            400,
            "invalid_request",
        ),
        (
            "/v1/subscriptions/s/nack",
            json!({"tokens": ["1-1"], "error": "e".repeat(5000)}),
            400,
            "invalid_request",
        ),
        (
            "/v1/subscriptions/s/extend",
            json!({"tokens": ["1-1"], "lease_ms": 0}),
            400,
            "invalid_request",
        ),
        (
            "/v1/subscriptions/s/pause",
            json!({"now": true}),
            400,
            "invalid_request",
        ),
        (
            "/v1/subscriptions/s/dead/replay",
            json!({"hashes": ["zz"]}),
            400,
            "invalid_hash",
        ),
        (
            "/v1/subscriptions/s/dead/replay",
            json!({"hashes": []}),
            400,
            "invalid_request",
        ),
    ];
    for (path, body, expected_status, code) in posts {
        let (status, answer) = post_json(&server, path, body.clone());
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (*expected_status, Some(*code)),
            "{path} {body}"
        );
    }
    let too_many: Vec<String> = (0..10_001).map(|i| format!("{i}-1")).collect();
    let (status, _) = post_json(
        &server,
        "/v1/subscriptions/s/ack",
        json!({"tokens": too_many}),
    );
    assert_eq!(status, 400);
    let gets: &[(&str, u16, &str)] = &[
        ("/v1/subscriptions/nope", 404, "unknown_subscription"),
        ("/v1/subscriptions/nope/dead", 404, "unknown_subscription"),
        (
            "/v1/subscriptions/s/dead?limit=0",
            400,
            "parameter_out_of_range",
        ),
        (
            "/v1/subscriptions/s/dead?limit=1001",
            400,
            "parameter_out_of_range",
        ),
        (
            "/v1/subscriptions/s/dead?discarded=maybe",
            400,
            "invalid_parameter",
        ),
        (
            "/v1/subscriptions/s/dead?surprise=1",
            400,
            "unknown_parameter",
        ),
        ("/v1/subscriptions/s/dead/nothex", 400, "invalid_hash"),
    ];
    for (path, expected_status, code) in gets {
        let (status, answer) = get_json(&server, path);
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (*expected_status, Some(*code)),
            "{path}"
        );
    }
    let absent = "0".repeat(64);
    let (status, answer) = get_json(&server, &format!("/v1/subscriptions/s/dead/{absent}"));
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("not_a_dead_letter"))
    );
    let response = http()
        .delete(server.url(&format!("/v1/subscriptions/s/dead/{absent}")))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(
        http()
            .delete(server.url("/v1/subscriptions/nope"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        404
    );

    // Bogus tokens are reported per token, never an error for the batch.
    let (status, answer) = post_json(
        &server,
        "/v1/subscriptions/s/ack",
        json!({"tokens": ["garbage", "1-0000000000000001", "ffffffffffffffff-1", ""]}),
    );
    assert_eq!(status, 200);
    assert!(
        answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "unknown"),
        "{answer}"
    );

    // Nothing changed.
    let after = view(&server, "s");
    assert_eq!(before, after);
    let messages = pull(&server, "s", 10, 0);
    assert_eq!(messages.len(), 2);
    assert!(messages.iter().all(|m| m["attempt"] == 1));
    let (_, list) = get_json(&server, "/v1/subscriptions");
    assert_eq!(list["subscriptions"].as_array().unwrap().len(), 1);
}

#[test]
fn predecessor_selection_delivers_only_successors_of_that_fact_in_that_role() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let order = put_one(&server, fact("Order", json!({"n": 1}), json!({})));
    let other = put_one(&server, fact("Order", json!({"n": 2}), json!({})));
    let (status, _) = put_subscription(
        &server,
        "lines-of-1",
        json!({"type": "Line", "predecessor": {"role": "order", "hash": order}}),
    );
    assert_eq!(status, 201);
    let wanted = put_one(
        &server,
        fact("Line", json!({"a": 1}), json!({"order": order})),
    );
    put_one(
        &server,
        fact("Line", json!({"a": 2}), json!({"order": other})),
    );
    put_one(
        &server,
        fact("Line", json!({"a": 3}), json!({"copy_of": order})),
    );
    put_one(
        &server,
        fact("Note", json!({"a": 4}), json!({"order": order})),
    );
    let also_wanted = put_one(
        &server,
        fact("Line", json!({"a": 5}), json!({"order": [order, other]})),
    );
    let hashes: Vec<String> = pull(&server, "lines-of-1", 10, 0)
        .iter()
        .map(|message| message["hash"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hashes, [wanted, also_wanted]);
    assert_eq!(view(&server, "lines-of-1")["backlog"], 0);
}

/// Facts waiting for a subscription in the backlog regression test: more
/// than one index scan of the embedded store reads (100,000 entries).
const LARGE_BACKLOG_FACTS: usize = 150_000;

#[test]
fn backlog_counts_every_waiting_fact_however_many() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    const BATCH_FACTS: usize = 10_000;
    for batch_idx in 0..LARGE_BACKLOG_FACTS / BATCH_FACTS {
        let facts: Vec<Value> = (0..BATCH_FACTS)
            .map(|fact_idx| {
                fact(
                    "Bulk.Job",
                    json!({"b": batch_idx, "n": fact_idx}),
                    json!({}),
                )
            })
            .collect();
        let (status, answer) = post_facts(&server, &facts);
        assert_eq!(status, 200, "{answer}");
    }
    publish(&server, "Other.Type", 3);
    let (status, created) = put_subscription(&server, "bulk", json!({"type": "Bulk.Job"}));
    assert_eq!(status, 201, "{created}");
    assert_eq!(view(&server, "bulk")["backlog"], LARGE_BACKLOG_FACTS);

    let messages = pull(&server, "bulk", 10, 0);
    assert_eq!(messages.len(), 10);
    let after_pull = view(&server, "bulk");
    assert_eq!(
        after_pull["backlog"],
        LARGE_BACKLOG_FACTS - 10,
        "{after_pull}"
    );
    assert_eq!(after_pull["in_flight"], 10, "{after_pull}");
    assert_eq!(
        settle(&server, "bulk", "ack", &messages, json!({})).len(),
        10
    );
    assert_eq!(view(&server, "bulk")["backlog"], LARGE_BACKLOG_FACTS - 10);
}

fn token_of(message: &Value) -> String {
    message["token"].as_str().expect("token").to_string()
}

#[test]
fn tokens_that_never_belonged_to_the_message_are_unknown_for_every_verb() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for name in ["mine", "theirs"] {
        let (status, _) = put_subscription(&server, name, json!({"type": "Shared.Fact"}));
        assert_eq!(status, 201);
    }
    publish(&server, "Shared.Fact", 2);
    let mine = pull(&server, "mine", 2, 0);
    let theirs = pull(&server, "theirs", 2, 0);
    assert_eq!((mine.len(), theirs.len()), (2, 2));
    let seq = mine[0]["seq"].as_u64().unwrap();
    // Tokens of the same messages in another subscription, tokens shaped
    // like real ones, and garbage: none of them is a lease of `mine`.
    let mut strangers: Vec<String> = theirs.iter().map(token_of).collect();
    strangers.extend([
        format!("{seq:x}-1-0123456789abcdef"),
        format!("{seq:x}-1"),
        format!("{seq:x}-{:x}", u64::MAX),
        "garbage".to_string(),
        String::new(),
    ]);
    for verb in ["ack", "nack", "extend"] {
        let statuses = settle_tokens(&server, "mine", verb, &strangers, json!({}));
        assert!(
            statuses.iter().all(|status| status == "unknown"),
            "{verb}: {statuses:?} for {strangers:?}"
        );
    }
    // Nothing changed: both leases of `mine` are intact and act.
    assert_eq!(view(&server, "mine")["in_flight"], 2);
    let own: Vec<String> = mine.iter().map(token_of).collect();
    assert_eq!(
        settle_tokens(&server, "mine", "ack", &own, json!({})),
        ["acked", "acked"]
    );
    assert_eq!(view(&server, "theirs")["in_flight"], 2);
}

#[test]
fn the_token_of_a_nacked_and_released_delivery_answers_expired() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    put_subscription(&server, "again", json!({"type": "Job"}));
    publish(&server, "Job", 1);
    let first = pull(&server, "again", 1, 0);
    assert_eq!(
        settle(&server, "again", "nack", &first, json!({"delay_ms": 0})),
        ["nacked"]
    );
    let second = pull(&server, "again", 1, 5_000);
    assert_eq!(second[0]["attempt"], 2, "{second:?}");
    let old = vec![token_of(&first[0])];
    for verb in ["ack", "nack", "extend"] {
        assert_eq!(
            settle_tokens(&server, "again", verb, &old, json!({})),
            ["expired"]
        );
    }
    assert_eq!(
        settle_tokens(&server, "again", "ack", &[token_of(&second[0])], json!({})),
        ["acked"]
    );
    assert_eq!(
        settle_tokens(&server, "again", "ack", &old, json!({})),
        ["unknown"]
    );
}

#[test]
fn only_the_exact_token_text_acts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    put_subscription(&server, "exact", json!({"type": "Job"}));
    publish(&server, "Job", 1);
    let messages = pull(&server, "exact", 1, 0);
    let token = token_of(&messages[0]);
    let spellings = vec![
        token.to_uppercase(),
        format!("0{token}"),
        token.replacen('-', "-0", 1),
        format!(" {token}"),
        format!("{token}\n"),
    ];
    for verb in ["extend", "nack", "ack"] {
        let statuses = settle_tokens(&server, "exact", verb, &spellings, json!({}));
        assert!(
            statuses.iter().all(|status| status == "unknown"),
            "{verb}: {statuses:?} for {spellings:?}"
        );
    }
    let view_now = view(&server, "exact");
    assert_eq!(
        (view_now["in_flight"].as_u64(), view_now["acked"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        settle_tokens(&server, "exact", "ack", &[token], json!({})),
        ["acked"]
    );
}

#[test]
fn shortening_a_lease_wakes_a_pull_that_is_already_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    put_subscription(
        &server,
        "short",
        json!({"type": "Job", "lease_ms": 20000, "backoff": {"initial_ms": 1, "max_ms": 1}}),
    );
    publish(&server, "Job", 1);
    let held = pull(&server, "short", 1, 0);
    assert_eq!(held.len(), 1);
    let base = server.base.clone();
    let waiter = std::thread::spawn(move || {
        let answer: Value = http()
            .post(format!("{base}/v1/subscriptions/short/pull"))
            .json(&json!({"max": 1, "wait_ms": 15_000}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        (
            Instant::now(),
            answer["messages"].as_array().unwrap().clone(),
        )
    });
    // Give the pull time to start waiting; the bound below does not depend
    // on it (a pull that starts after the extend finds the message anyway).
    std::thread::sleep(Duration::from_millis(500));
    let extended_at = Instant::now();
    let (status, answer) = post_json(
        &server,
        "/v1/subscriptions/short/extend",
        json!({"tokens": [held[0]["token"]], "lease_ms": 100}),
    );
    assert_eq!(status, 200);
    assert_eq!(answer["results"][0]["status"], "extended");
    let (arrived_at, messages) = waiter.join().unwrap();
    assert_eq!(messages.len(), 1, "the waiting pull got the message");
    assert_eq!(messages[0]["attempt"], 2);
    let late = arrived_at.duration_since(extended_at);
    // Woken at the new end of the lease (100 ms, plus the shared engine's
    // polling), not at the old one 20 s away.
    assert!(
        late < Duration::from_secs(5),
        "the message arrived {late:?} after the lease was shortened"
    );
}

#[test]
fn a_restart_voids_leases_on_the_embedded_backend_and_keeps_them_on_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    put_subscription(
        &server,
        "restarted",
        json!({"type": "Job", "lease_ms": 60000}),
    );
    publish(&server, "Job", 1);
    let before = pull(&server, "restarted", 1, 0);
    assert_eq!(before[0]["attempt"], 1);
    server.kill9();
    let server = Server::start(dir.path(), &[]);
    let old = vec![token_of(&before[0])];
    if on_postgres() {
        // Leases are rows: the lease outlives the server, its token still
        // acts, and the message is not delivered again meanwhile.
        assert!(pull(&server, "restarted", 1, 0).is_empty());
        assert_eq!(view(&server, "restarted")["in_flight"], 1);
        assert_eq!(
            settle_tokens(&server, "restarted", "ack", &old, json!({})),
            ["acked"]
        );
    } else {
        // Leases are not recorded: the restart voided it, the old token is
        // not this incarnation's, and the message comes back at once with
        // the same attempt number (a voided lease is not a failed attempt).
        assert_eq!(
            settle_tokens(&server, "restarted", "ack", &old, json!({})),
            ["unknown"]
        );
        let after = pull(&server, "restarted", 1, 0);
        assert_eq!(after.len(), 1);
        assert_eq!(after[0]["attempt"], 1);
        assert_eq!(after[0]["hash"], before[0]["hash"]);
        assert_eq!(
            settle(&server, "restarted", "ack", &after, json!({})),
            ["acked"]
        );
    }
    // `delivered` counts every delivery through this server since it
    // started, redeliveries included.
    let counters = view(&server, "restarted");
    let delivered_here = u64::from(!on_postgres());
    assert_eq!(counters["delivered"], delivered_here, "{counters}");
}

#[test]
fn delivered_counts_redeliveries_too() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    put_subscription(&server, "counted", json!({"type": "Job"}));
    publish(&server, "Job", 1);
    let first = pull(&server, "counted", 1, 0);
    settle(&server, "counted", "nack", &first, json!({"delay_ms": 0}));
    let second = pull(&server, "counted", 1, 5_000);
    settle(&server, "counted", "ack", &second, json!({}));
    let counters = view(&server, "counted");
    assert_eq!(
        (
            counters["delivered"].as_u64(),
            counters["redelivered"].as_u64(),
            counters["acked"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{counters}"
    );
}

#[test]
fn a_body_declared_as_a_form_or_text_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let send = |method: reqwest::Method, path: &str, content_type: Option<&str>, body: &str| {
        let mut request = http()
            .request(method, server.url(path))
            .body(body.to_string());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        json_answer(request.send().unwrap())
    };
    // What a web page may send another origin without asking first.
    for content_type in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
    ] {
        let (status, answer) = send(
            reqwest::Method::PUT,
            "/v1/subscriptions/s",
            Some(content_type),
            r#"{"type": "Form.Test"}"#,
        );
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (415, Some("unsupported_media_type")),
            "{content_type}: {answer}"
        );
    }
    let (status, _) = get_json(&server, "/v1/subscriptions/s");
    assert_eq!(status, 404, "nothing was created");

    // JSON, with or without its type, is taken.
    let (status, created) = send(
        reqwest::Method::PUT,
        "/v1/subscriptions/s",
        None,
        r#"{"type": "Form.Test"}"#,
    );
    assert_eq!(status, 201, "{created}");
    let (status, _) = send(
        reqwest::Method::POST,
        "/v1/subscriptions/s/pause",
        Some("application/json; charset=utf-8"),
        "{}",
    );
    assert_eq!(status, 200);
    let (status, refused) = send(
        reqwest::Method::POST,
        "/v1/subscriptions/s/resume",
        Some("text/plain"),
        "{}",
    );
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    assert_eq!(
        view(&server, "s")["paused"],
        true,
        "the refused resume changed nothing"
    );
    let (status, _) = send(
        reqwest::Method::POST,
        "/v1/subscriptions/s/resume",
        None,
        "",
    );
    assert_eq!(status, 200, "an empty body needs no type");
    assert_eq!(view(&server, "s")["paused"], false);
}

/// PUTs a definition with an `If-Match` header (or several); returns the
/// status, the `ETag` answered and the body.
fn put_if_match(
    server: &Server,
    name: &str,
    if_match: &[&str],
    definition: &Value,
) -> (u16, Option<String>, Value) {
    let mut request = http()
        .put(server.url(&format!("/v1/subscriptions/{name}")))
        .json(definition);
    for value in if_match {
        request = request.header("if-match", *value);
    }
    let response = request.send().expect("server answers");
    let entity_tag = response
        .headers()
        .get("etag")
        .map(|value| value.to_str().unwrap().to_string());
    let (status, body) = json_answer(response);
    (status, entity_tag, body)
}

/// The view and its `ETag`.
fn view_and_entity_tag(server: &Server, name: &str) -> (Value, String) {
    let response = http()
        .get(server.url(&format!("/v1/subscriptions/{name}")))
        .send()
        .expect("server answers");
    let entity_tag = response.headers()["etag"].to_str().unwrap().to_string();
    let (status, view) = json_answer(response);
    assert_eq!(status, 200, "{view}");
    (view, entity_tag)
}

#[test]
fn a_changed_definition_keeps_leases_attempts_and_dead_letters_and_applies_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let first = json!({"type": "Job", "max_attempts": 2, "lease_ms": 60000,
                       "backoff": {"initial_ms": 1, "max_ms": 1}});
    let (status, entity_tag, created) = put_if_match(&server, "jobs", &[], &first);
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (
            entity_tag.as_deref(),
            &created["generation"],
            &created["updated"]
        ),
        (Some("\"1\""), &json!(1), &json!(false))
    );
    let hashes = publish(&server, "Job", 4);
    // Message 1 fails twice: a dead letter.
    let failed = pull(&server, "jobs", 1, 0);
    settle(&server, "jobs", "nack", &failed, json!({"error": "first"}));
    let again = pull(&server, "jobs", 1, 5_000);
    assert_eq!(again[0]["attempt"], 2);
    settle(&server, "jobs", "nack", &again, json!({"error": "last"}));
    // Messages 2 and 3 are leased for a minute; 4 waits.
    let leased = pull(&server, "jobs", 2, 0);
    assert_eq!(leased.len(), 2);
    let before = view(&server, "jobs");
    assert_eq!(
        (&before["dead"], &before["in_flight"], &before["backlog"]),
        (&json!(1), &json!(2), &json!(1))
    );

    let second = json!({"type": "Job", "max_attempts": 5, "lease_ms": 1000,
                        "backoff": {"initial_ms": 50, "max_ms": 100}, "rate_limit_per_s": 100});
    let (status, entity_tag, updated) = put_if_match(&server, "jobs", &[], &second);
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        (
            entity_tag.as_deref(),
            &updated["generation"],
            &updated["updated"]
        ),
        (Some("\"2\""), &json!(2), &json!(true))
    );
    assert_eq!(
        (
            &updated["lease_ms"],
            &updated["max_attempts"],
            &updated["rate_limit_per_s"]
        ),
        (&json!(1000), &json!(5), &json!(100))
    );
    // Nothing was lost: the dead letter, both leases and the waiting message.
    for member in ["dead", "in_flight", "backlog", "delivered", "redelivered"] {
        assert_eq!(updated[member], before[member], "{member}: {updated}");
    }
    let (_, dead) = get_json(&server, "/v1/subscriptions/jobs/dead");
    assert_eq!(dead["messages"][0]["hash"], hashes[0].as_str());
    assert_eq!(
        (
            &dead["messages"][0]["attempts"],
            &dead["messages"][0]["last_error"]
        ),
        (&json!(2), &json!("last"))
    );
    // The new lease applies to later pulls: message 4 is leased for a
    // second and comes back after it; the earlier leases keep their minute.
    let fourth = pull(&server, "jobs", 10, 0);
    assert_eq!(fourth.len(), 1, "{fourth:?}");
    assert_eq!(fourth[0]["hash"], hashes[3].as_str());
    std::thread::sleep(Duration::from_millis(1_300));
    let redelivered = pull(&server, "jobs", 10, 3_000);
    assert_eq!(redelivered.len(), 1, "{redelivered:?}");
    assert_eq!(
        (
            redelivered[0]["hash"].as_str(),
            redelivered[0]["attempt"].as_u64()
        ),
        (Some(hashes[3].as_str()), Some(2))
    );
    // Tokens from before the update still act.
    assert_eq!(
        settle(&server, "jobs", "ack", &leased, json!({})),
        ["acked", "acked"]
    );
    // A raised max_attempts applies at the next failure: message 4 failed
    // twice now, once more than the first definition allowed.
    settle(
        &server,
        "jobs",
        "nack",
        &redelivered,
        json!({"delay_ms": 0}),
    );
    let third_try = pull(&server, "jobs", 1, 3_000);
    assert_eq!(third_try[0]["attempt"], 3);
    assert_eq!(
        settle(&server, "jobs", "ack", &third_try, json!({})),
        ["acked"]
    );

    // The same definition again changes nothing.
    let (status, entity_tag, same) = put_if_match(&server, "jobs", &[], &second);
    assert_eq!(
        (
            status,
            entity_tag.as_deref(),
            &same["generation"],
            &same["updated"]
        ),
        (200, Some("\"2\""), &json!(2), &json!(false))
    );
    // Generation and definition survive a restart.
    drop(server);
    let server = Server::start(dir.path(), &[]);
    let (after, entity_tag) = view_and_entity_tag(&server, "jobs");
    assert_eq!(entity_tag, "\"2\"");
    assert_eq!(
        (&after["generation"], &after["lease_ms"], &after["dead"]),
        (&json!(2), &json!(1000), &json!(1))
    );
}

#[test]
fn if_match_guards_a_put_and_a_stale_or_missing_generation_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let definition = |lease_ms: u64| json!({"type": "Job", "lease_ms": lease_ms});
    // No subscription: any precondition fails, and none is created.
    for if_match in ["\"1\"", "*"] {
        let (status, _, answer) = put_if_match(&server, "guarded", &[if_match], &definition(1000));
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (412, Some("generation_mismatch")),
            "{if_match}: {answer}"
        );
        assert_eq!(answer["error"]["generation"], Value::Null);
        assert_eq!(get_json(&server, "/v1/subscriptions/guarded").0, 404);
    }
    assert_eq!(
        put_if_match(&server, "guarded", &[], &definition(1000)).0,
        201
    );
    let (_, entity_tag) = view_and_entity_tag(&server, "guarded");
    assert_eq!(entity_tag, "\"1\"");
    // The generation read: the update goes through.
    let (status, entity_tag, answer) =
        put_if_match(&server, "guarded", &[&entity_tag], &definition(2000));
    assert_eq!(
        (status, entity_tag.as_deref(), &answer["updated"]),
        (200, Some("\"2\""), &json!(true))
    );
    // Another deploy that read generation 1 loses, and changes nothing.
    let (status, _, answer) = put_if_match(&server, "guarded", &["\"1\""], &definition(3000));
    assert_eq!(
        (
            status,
            answer["error"]["code"].as_str(),
            &answer["error"]["generation"]
        ),
        (412, Some("generation_mismatch"), &json!(2))
    );
    let (view, entity_tag) = view_and_entity_tag(&server, "guarded");
    assert_eq!(
        (entity_tag.as_str(), &view["lease_ms"]),
        ("\"2\"", &json!(2000))
    );
    // Bare digits are taken too, and * matches any generation.
    assert_eq!(
        put_if_match(&server, "guarded", &["2"], &definition(3000)).0,
        200
    );
    let (status, entity_tag, _) = put_if_match(&server, "guarded", &["*"], &definition(4000));
    assert_eq!((status, entity_tag.as_deref()), (200, Some("\"4\"")));
    // A stale precondition fails even for the definition in force.
    assert_eq!(
        put_if_match(&server, "guarded", &["\"3\""], &definition(4000)).0,
        412
    );
    // Malformed preconditions are refused before anything is looked at.
    for if_match in [
        &["W/\"4\""][..],
        &["\"abc\""],
        &["\"4\", \"5\""],
        &["\"04\""],
        &["-4"],
        &[""],
        &["\"4\"", "\"4\""],
    ] {
        let (status, _, answer) = put_if_match(&server, "guarded", if_match, &definition(5000));
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("invalid_if_match")),
            "{if_match:?}: {answer}"
        );
        assert!(answer["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("If-Match")));
    }
    let (view, entity_tag) = view_and_entity_tag(&server, "guarded");
    assert_eq!(
        (entity_tag.as_str(), &view["generation"], &view["lease_ms"]),
        ("\"4\"", &json!(4), &json!(4000))
    );
}

#[test]
fn a_put_changing_what_cannot_change_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let customer = put_one(&server, fact("Customer", json!({}), json!({})));
    let base = json!({"type": "Job", "ordering_key": "customer", "max_attempts": 3});
    assert_eq!(put_subscription(&server, "fixed", base.clone()).0, 201);
    publish(&server, "Job", 2);
    let leased = pull(&server, "fixed", 1, 0);
    let before = view(&server, "fixed");
    let changed = |member: &str, value: Value| {
        let mut definition = base.clone();
        definition[member] = value;
        definition
    };
    let mut unkeyed = base.clone();
    unkeyed.as_object_mut().unwrap().remove("ordering_key");
    let cases = [
        (changed("type", json!("Other")), "type"),
        (changed("start", json!("now")), "start"),
        (changed("ordering_key", json!("owner")), "ordering_key"),
        (unkeyed, "ordering_key"),
        (
            changed("predecessor", json!({"role": "customer", "hash": customer})),
            "predecessor",
        ),
    ];
    for (definition, field) in cases {
        // Changes that may change ride along: they are refused too.
        let mut definition = definition;
        definition["lease_ms"] = json!(1234);
        let (status, answer) = put_subscription(&server, "fixed", definition.clone());
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (409, Some("subscription_conflict")),
            "{definition}: {answer}"
        );
        assert_eq!(answer["error"]["fields"], json!([field]), "{answer}");
        assert!(answer["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains(field)));
    }
    // Invalid and oversized definitions are refused the same way.
    let (status, answer) = put_subscription(&server, "fixed", changed("max_attempts", json!(0)));
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_definition"))
    );
    // Sent over a raw socket: the server answers and closes before the
    // body is complete, which an HTTP client may report as a broken pipe.
    let declared = format!(
        "PUT /v1/subscriptions/fixed HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        33 * 1024 * 1024
    );
    let (status, answer) = raw_exchange(&server, declared, 33, false);
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("request_too_large")),
        "{answer}"
    );
    let mut after = view(&server, "fixed");
    let mut before = before;
    for view in [&mut after, &mut before] {
        // The one member that moves with the clock alone.
        view.as_object_mut()
            .unwrap()
            .remove("oldest_unacked_age_ms");
    }
    assert_eq!(after, before, "a refused PUT changed the subscription");
    assert_eq!(
        settle(&server, "fixed", "ack", &leased, json!({})),
        ["acked"]
    );
}
