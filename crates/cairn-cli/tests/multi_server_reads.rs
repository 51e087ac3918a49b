//! Several `cairn serve` processes over one PostgreSQL database: what one
//! server writes the others read (facts, successors, the log, blobs,
//! subscriptions), and long-polls on one server wake on another's writes.
//!
//! It only makes sense on the PostgreSQL backend: each test returns at once
//! unless `CAIRN_TEST_BACKEND=postgres`. Run with
//! `CAIRN_TEST_BACKEND=postgres cargo test -p cairn-cli --test multi_server_reads`.
//! The tests use loopback only, bound every loop in count and time, and
//! stop only the processes they started.

mod common;

use std::time::Duration;

use common::multi_server::*;
use common::*;
use serde_json::json;

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
