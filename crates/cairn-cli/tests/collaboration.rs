//! Claims, leases and fenced writes end to end against the real binary, on
//! the embedded store (one server, restarted with `kill -9`) and with
//! `CAIRN_TEST_BACKEND=postgres` on three servers over one database: 64
//! concurrent claimers per key with exactly one winner, the same answer on
//! every server and after `kill -9`; leases raced by many holders, expiry,
//! stale fences refused while fresh ones are accepted, fences strictly
//! increasing across restarts; every decision a `Cairn.*` fact in the log;
//! reserved types refused; and bad input answered with a clear 4xx that
//! changes nothing. `claims_and_fences_survive_a_postgresql_restart` runs a
//! PostgreSQL cluster of its own, which it restarts.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use cairn_store::postgres::private_cluster::PrivateCluster;
use common::multi_server::*;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// The servers of one deployment: three on PostgreSQL, one embedded.
fn deployment(data: &std::path::Path) -> Vec<Server> {
    if on_postgres() {
        start_servers(data)
    } else {
        vec![Server::start(data, &[])]
    }
}

fn post(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    exchange(&http(), Method::POST, &server.url(path), Some(body)).expect("the server answers")
}

fn fenced_write(server: &Server, fence: &str, n: u64) -> (u16, Value) {
    let body = json!({"facts": [fact("Job.Done", json!({"n": n}), json!({}))]});
    json_answer(
        http()
            .post(server.url("/v1/facts"))
            .header("content-type", "application/json")
            .header("Cairn-Fence", fence)
            .body(body.to_string())
            .send()
            .expect("the server answers"),
    )
}

/// The facts of `type_name` in the log of `server`.
fn facts_of_type(server: &Server, type_name: &str) -> Vec<Value> {
    let mut found = Vec::new();
    let mut after = 0;
    for _ in 0..1_000 {
        let (status, page) = get_json(server, &format!("/v1/log?after={after}&limit=10000"));
        assert_eq!(status, 200, "{page}");
        let facts = page["facts"].as_array().unwrap();
        if facts.is_empty() {
            return found;
        }
        found.extend(
            facts
                .iter()
                .filter(|entry| entry["fact"]["type"] == type_name)
                .cloned(),
        );
        after = page["next"].as_u64().unwrap();
    }
    panic!("the log did not end");
}

/// Claims `key` with each of `contenders` at once, spread over `servers`.
fn claim_at_once(servers: &[Server], key: &str, contenders: &[String]) -> Vec<Value> {
    let barrier = Arc::new(Barrier::new(contenders.len()));
    let threads = contenders
        .iter()
        .enumerate()
        .map(|(idx, contender)| {
            let url = servers[idx % servers.len()].url("/v1/claims");
            let body = json!({"key": key, "fact": contender});
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let (status, answer) =
                    exchange(&http(), Method::POST, &url, Some(&body)).expect("the server answers");
                assert_eq!(status, 200, "{answer}");
                answer
            })
        })
        .collect();
    join_all(threads, "claimers")
}

#[test]
fn claims_have_exactly_one_winner_on_every_server_and_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut servers = deployment(dir.path());
    let contenders: Vec<String> = (0..64)
        .map(|n| {
            put_one(
                &servers[0],
                fact("Shop.Reservation", json!({"customer": n}), json!({})),
            )
        })
        .collect();
    let answers = claim_at_once(&servers, "last item: sku 42/β", &contenders);
    let winners: Vec<&Value> = answers.iter().filter(|a| a["won"] == true).collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    let winner = winners[0].clone();
    assert!(answers.iter().all(|a| a["fact"] == winner["fact"]
        && a["claimed"] == winner["claimed"]
        && a["generation"] == 1));
    // Claiming again with the winner is idempotent.
    let (status, again) = post(
        &servers[0],
        "/v1/claims",
        &json!({"key": "last item: sku 42/β", "fact": winner["fact"]}),
    );
    assert_eq!((status, &again["won"]), (200, &json!(true)));
    assert_eq!(again["claimed"], winner["claimed"]);

    // Every server answers the same winner, also after a kill -9.
    let path = "/v1/claims/last%20item%3A%20sku%2042%2F%CE%B2";
    for server in &servers {
        let (status, seen) = get_json(server, path);
        assert_eq!(status, 200, "{seen}");
        assert_eq!(
            (&seen["fact"], &seen["seq"]),
            (&winner["fact"], &winner["seq"])
        );
        assert!(seen.get("won").is_none());
    }
    servers[0].kill9();
    servers[0] = Server::start(dir.path(), &[]);
    for server in &servers {
        let (status, seen) = get_json(server, path);
        assert_eq!((status, &seen["fact"]), (200, &winner["fact"]));
    }
    let loser = contenders
        .iter()
        .find(|c| json!(c) != winner["fact"])
        .unwrap();
    let (status, lost) = post(
        servers.last().unwrap(),
        "/v1/claims",
        &json!({"key": "last item: sku 42/β", "fact": loser}),
    );
    assert_eq!(
        (status, &lost["won"], &lost["fact"]),
        (200, &json!(false), &winner["fact"])
    );

    // The decision is one fact in the log, naming the winner.
    let claimed = facts_of_type(&servers[0], "Cairn.Claimed");
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(claimed[0]["hash"], winner["claimed"]);
    assert_eq!(claimed[0]["seq"], winner["seq"]);
    assert_eq!(claimed[0]["fact"]["predecessors"]["fact"], winner["fact"]);
    assert_eq!(claimed[0]["fact"]["fields"]["key"], "last item: sku 42/β");
    assert_eq!(claimed[0]["fact"]["fields"]["generation"], 1);

    // Only the winner releases; a later claim is a new generation and fact.
    let (status, refused) = post(
        &servers[0],
        "/v1/claims/release",
        &json!({"key": "last item: sku 42/β", "fact": loser}),
    );
    assert_eq!(
        (status, &refused["error"]["code"]),
        (409, &json!("not_claim_holder"))
    );
    assert_eq!(refused["error"]["holder"], winner["fact"]);
    let (status, released) = post(
        &servers[0],
        "/v1/claims/release",
        &json!({"key": "last item: sku 42/β", "fact": winner["fact"]}),
    );
    assert_eq!(status, 200, "{released}");
    let (status, retried) = post(
        servers.last().unwrap(),
        "/v1/claims/release",
        &json!({"key": "last item: sku 42/β", "fact": winner["fact"]}),
    );
    assert_eq!((status, &retried), (200, &released), "a retried release");
    assert_eq!(get_json(&servers[0], path).0, 404);
    let (status, second) = post(
        servers.last().unwrap(),
        "/v1/claims",
        &json!({"key": "last item: sku 42/β", "fact": loser}),
    );
    assert_eq!(
        (status, &second["won"], &second["generation"]),
        (200, &json!(true), &json!(2))
    );
    assert_ne!(second["claimed"], winner["claimed"]);
    assert_eq!(facts_of_type(&servers[0], "Cairn.Claimed").len(), 2);
    assert_eq!(facts_of_type(&servers[0], "Cairn.ClaimReleased").len(), 1);
}

/// Acquires `name` for `holder`, retrying while another holder's grant is
/// current (until `deadline`).
fn acquire_when_free(server: &Server, name: &str, holder: &str, ttl_ms: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, answer) = post(
            server,
            &format!("/v1/leases/{name}/acquire"),
            &json!({"holder": holder, "ttl_ms": ttl_ms}),
        );
        match status {
            200 => return answer,
            409 if Instant::now() < deadline => {
                assert_eq!(answer["error"]["code"], "lease_held", "{answer}");
                std::thread::sleep(Duration::from_millis(25));
            }
            _ => panic!("acquire answered {status}: {answer}"),
        }
    }
}

#[test]
fn leases_fence_out_a_paused_old_leader_and_fences_grow_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut servers = deployment(dir.path());
    let last = servers.len() - 1;

    // Sixteen holders race for a fresh lease: exactly one wins.
    let barrier = Arc::new(Barrier::new(16));
    let threads = (0..16)
        .map(|n| {
            let url = servers[n % servers.len()].url("/v1/leases/leader/acquire");
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                exchange(
                    &http(),
                    Method::POST,
                    &url,
                    Some(&json!({"holder": format!("worker-{n}"), "ttl_ms": 300})),
                )
                .expect("the server answers")
            })
        })
        .collect();
    let outcomes = join_all(threads, "holders");
    let granted: Vec<&Value> = outcomes
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, answer)| answer)
        .collect();
    assert_eq!(granted.len(), 1, "{outcomes:?}");
    let old_leader = granted[0].clone();
    assert_eq!(old_leader["fence"], 1);
    assert!(outcomes
        .iter()
        .all(|(status, answer)| *status == 200 || answer["error"]["code"] == "lease_held"));

    // The old leader writes under its fence, then "pauses" past its lease.
    assert_eq!(fenced_write(&servers[0], "leader=1", 1).0, 200);
    let new_leader = acquire_when_free(&servers[last], "leader", "new-leader", 60_000);
    assert_eq!(new_leader["fence"], 2);
    let before = last_seq(&servers[0]);
    let (status, refused) = fenced_write(&servers[0], "leader=1", 2);
    assert_eq!(
        (status, &refused["error"]["code"]),
        (409, &json!("stale_fence"))
    );
    assert_eq!(refused["error"]["current"], 2);
    assert_eq!(last_seq(&servers[0]), before, "nothing stored");
    assert_eq!(fenced_write(&servers[last], "leader=2", 3).0, 200);
    assert_eq!(fenced_write(&servers[0], "leader=3", 4).0, 409);

    // Renewal by the holder; by anyone else it is stale.
    let renew = json!({"holder": "new-leader", "fence": 2, "ttl_ms": 120_000});
    let (status, renewed) = post(&servers[0], "/v1/leases/leader/renew", &renew);
    assert_eq!(
        (status, &renewed["fence"], &renewed["ttl_ms"]),
        (200, &json!(2), &json!(120_000))
    );
    let stranger = json!({"holder": "someone", "fence": 2});
    let (status, stale) = post(&servers[0], "/v1/leases/leader/renew", &stranger);
    assert_eq!(
        (status, &stale["error"]["code"]),
        (409, &json!("stale_fence"))
    );
    let (status, held) = post(
        &servers[0],
        "/v1/leases/leader/acquire",
        &json!({"holder": "usurper", "ttl_ms": 1000}),
    );
    assert_eq!(
        (status, &held["error"]["code"], &held["error"]["holder"]),
        (409, &json!("lease_held"), &json!("new-leader"))
    );

    // Released, then after a kill -9 the next grant takes the next fence.
    let release = json!({"holder": "new-leader", "fence": 2});
    assert_eq!(
        post(&servers[0], "/v1/leases/leader/release", &release).0,
        200
    );
    assert_eq!(fenced_write(&servers[0], "leader=2", 5).0, 409, "released");
    servers[0].kill9();
    servers[0] = Server::start(dir.path(), &[]);
    let (status, view) = get_json(&servers[0], "/v1/leases/leader");
    assert_eq!(
        (status, &view["fence"], &view["released"]),
        (200, &json!(2), &json!(true))
    );
    let third = acquire_when_free(&servers[0], "leader", "third", 1_000);
    assert_eq!(third["fence"], 3);
    assert_eq!(get_json(&servers[0], "/v1/leases/follower").0, 404);

    let grants = facts_of_type(&servers[0], "Cairn.LeaseGranted");
    let fences: Vec<&Value> = grants
        .iter()
        .map(|g| &g["fact"]["fields"]["fence"])
        .collect();
    assert_eq!(fences, [&json!(1), &json!(2), &json!(3)]);
    assert_eq!(facts_of_type(&servers[0], "Cairn.LeaseReleased").len(), 1);
}

#[test]
fn reserved_types_and_bad_input_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let servers = deployment(dir.path());
    let server = &servers[0];
    let stored = put_one(server, fact("Shop.Reservation", json!({}), json!({})));
    let (status, _) = post(server, "/v1/claims", &json!({"key": "k", "fact": stored}));
    assert_eq!(status, 200);
    let (status, _) = post(
        server,
        "/v1/leases/l/acquire",
        &json!({"holder": "a", "ttl_ms": 60_000}),
    );
    assert_eq!(status, 200);
    let snapshot = || {
        (
            last_seq(server),
            get_json(server, "/v1/claims/k").1,
            get_json(server, "/v1/leases/l").1,
        )
    };
    let before = snapshot();

    let missing = "0".repeat(64);
    let long_key = "k".repeat(513);
    let long_holder = "h".repeat(257);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "/v1/claims",
            json!({"key": "", "fact": stored}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/claims",
            json!({"key": long_key, "fact": stored}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/claims",
            json!({"key": "a\u{0}b", "fact": stored}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/claims",
            json!({"key": 7, "fact": stored}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/claims",
            json!({"key": "k", "fact": "xyz"}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/claims",
            json!({"key": "k"}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/claims",
            json!({"key": "k", "fact": stored, "extra": 1}).to_string(),
            400,
            "invalid_request",
        ),
        ("/v1/claims", "[]".to_string(), 400, "invalid_request"),
        (
            "/v1/claims",
            "{\"key\": ".to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/claims",
            json!({"key": "new", "fact": missing}).to_string(),
            422,
            "missing_predecessors",
        ),
        // A held key: the claim does not win, and the absent fact is
        // still answered as missing.
        (
            "/v1/claims",
            json!({"key": "k", "fact": missing}).to_string(),
            422,
            "missing_predecessors",
        ),
        (
            "/v1/claims/release",
            json!({"key": "k", "fact": missing}).to_string(),
            422,
            "missing_predecessors",
        ),
        (
            "/v1/claims/release",
            json!({"key": "", "fact": stored}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/leases/l/acquire",
            json!({"holder": "b", "ttl_ms": 99}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/leases/l/acquire",
            json!({"holder": "b", "ttl_ms": 3_600_001}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/leases/l/acquire",
            json!({"holder": "", "ttl_ms": 1000}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/leases/l/acquire",
            json!({"holder": long_holder, "ttl_ms": 1000}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/leases/l/acquire",
            json!({"holder": "b"}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/leases/l/acquire",
            json!({"holder": "b", "ttl_ms": "1000"}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/leases/bad%20name/acquire",
            json!({"holder": "b", "ttl_ms": 1000}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/leases/%FF/acquire",
            json!({"holder": "b", "ttl_ms": 1000}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/leases/l/renew",
            json!({"holder": "a"}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/leases/l/renew",
            json!({"holder": "a", "fence": -1}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/leases/l/renew",
            json!({"holder": "a", "fence": 9}).to_string(),
            409,
            "stale_fence",
        ),
        (
            "/v1/leases/l/release",
            json!({"holder": "a", "fence": 1, "ttl_ms": 500}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "/v1/leases/l/release",
            json!({"holder": "b", "fence": 1}).to_string(),
            409,
            "stale_fence",
        ),
    ];
    for (path, body, status, code) in &cases {
        let response = http()
            .post(server.url(path))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .unwrap();
        let (got, answer) = json_answer(response);
        assert_eq!(
            (got, answer["error"]["code"].as_str().unwrap_or("")),
            (*status, *code),
            "{path} {body}: {answer}"
        );
    }
    // An oversized body (declared; the server answers before reading it,
    // so it is not sent), and a form body.
    for path in ["/v1/claims", "/v1/leases/l/acquire"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            33 * 1024 * 1024
        );
        let (status, answer) = raw_exchange(server, head, 0, false);
        assert_eq!(
            (status, &answer["error"]["code"]),
            (413, &json!("request_too_large")),
            "{path}"
        );
    }
    let (status, _) = json_answer(
        http()
            .post(server.url("/v1/claims"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("key=k")
            .send()
            .unwrap(),
    );
    assert_eq!(status, 415);
    for path in [
        "/v1/claims/%FF",
        "/v1/claims/a%00b",
        "/v1/leases/no%20such",
        "/v1/claims/k?x=1",
    ] {
        let (status, answer) = get_json(server, path);
        assert_eq!(
            (status, &answer["error"]["code"]),
            (
                400,
                &json!(if path.ends_with("x=1") {
                    "unknown_parameter"
                } else {
                    "invalid_request"
                })
            ),
            "{path}: {answer}"
        );
    }
    let long_path = format!("/v1/claims/{}", "k".repeat(513));
    assert_eq!(get_json(server, &long_path).0, 400);

    // Reserved types, bad fences: nothing of the batch is stored.
    let (status, answer) = post_facts(
        server,
        &[
            fact("Shop.Order", json!({"n": 1}), json!({})),
            fact("Cairn.Claimed", json!({"key": "k"}), json!({})),
        ],
    );
    assert_eq!(
        (status, &answer["error"]["code"], &answer["error"]["index"]),
        (400, &json!("reserved_type"), &json!(1))
    );
    for fence in [
        "l",
        "l=",
        "=1",
        "l=0",
        "l=-1",
        "l=1x",
        "bad name=1",
        "l=99999999999999999999999",
    ] {
        let (status, answer) = fenced_write(server, fence, 1);
        assert_eq!(
            (status, &answer["error"]["code"]),
            (400, &json!("invalid_fence")),
            "{fence}"
        );
    }
    let twice = http()
        .post(server.url("/v1/facts"))
        .header("content-type", "application/json")
        .header("Cairn-Fence", "l=1")
        .header("Cairn-Fence", "l=1")
        .body(json!({"facts": [fact("Job.Done", json!({}), json!({}))]}).to_string())
        .send()
        .unwrap();
    assert_eq!(json_answer(twice).1["error"]["code"], "invalid_fence");
    assert_eq!(fenced_write(server, "l=2", 1).0, 409);
    assert_eq!(fenced_write(server, "unknown=1", 1).0, 409);
    assert_eq!(snapshot(), before, "the refusals changed something");
}

#[test]
fn claims_and_fences_survive_a_postgresql_restart() {
    if !on_postgres() {
        return;
    }
    let Some(bin_dir) = PrivateCluster::find_bin_dir() else {
        eprintln!("skipped: PostgreSQL's programs (initdb, pg_ctl) are not installed");
        return;
    };
    let mut cluster = PrivateCluster::init(&bin_dir).unwrap();
    cluster.start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let servers: Vec<Server> = (0..2)
        .map(|_| Server::start_with_store(dir.path(), &cluster.url(), &[]))
        .collect();
    let contenders: Vec<String> = (0..16)
        .map(|n| {
            put_one(
                &servers[0],
                fact("Shop.Reservation", json!({"n": n}), json!({})),
            )
        })
        .collect();
    let answers = claim_at_once(&servers, "seat 1", &contenders);
    assert_eq!(answers.iter().filter(|a| a["won"] == true).count(), 1);
    let winner = answers[0]["fact"].clone();
    let lease = acquire_when_free(&servers[0], "leader", "a", 600_000);
    assert_eq!(lease["fence"], 1);

    cluster.stop().unwrap();
    cluster.start().unwrap();

    // Every server answers as before once the database is back.
    let deadline = Instant::now() + Duration::from_secs(30);
    for server in &servers {
        loop {
            let (status, seen) = get_json(server, "/v1/claims/seat%201");
            if status == 200 {
                assert_eq!(seen["fact"], winner);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no answer after the restart: {seen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let answers = claim_at_once(&servers, "seat 1", &contenders);
    assert!(answers.iter().all(|a| a["fact"] == winner));
    assert_eq!(answers.iter().filter(|a| a["won"] == true).count(), 1);
    assert_eq!(fenced_write(&servers[1], "leader=1", 1).0, 200);
    let release = json!({"holder": "a", "fence": 1});
    assert_eq!(
        post(&servers[1], "/v1/leases/leader/release", &release).0,
        200
    );
    assert_eq!(
        acquire_when_free(&servers[0], "leader", "b", 1_000)["fence"],
        2
    );
    drop(servers);
}
