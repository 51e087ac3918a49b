//! End-to-end tests of HTTP API v1 against the real `cairn serve` binary:
//! writes, reads, successors patterns, the types of a fact's successors,
//! the log, blobs, metadata endpoints, and the CLI client commands.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn cairn_hash(fact_json: &str) -> String {
    let output = run_cli(&["hash"], fact_json);
    assert!(output.success, "{}", output.stderr);
    output.stdout.trim().to_string()
}

#[test]
fn a_written_fact_reads_back_with_the_hash_computed_offline() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let sent = r#"{"type":"Shop.Order","fields":{"total":4.50,"id":"é\u0001","big":1E30},"predecessors":{}}"#;
    let offline = cairn_hash(sent);
    let (status, answer) = post_raw(&server, &format!("{{\"facts\":[{sent}]}}"));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["results"][0],
        json!({"hash": offline, "seq": 1, "inserted": true})
    );
    let (status, stored) = get_json(&server, &format!("/v1/facts/{offline}"));
    assert_eq!(status, 200);
    assert_eq!(stored["seq"], 1);
    assert_eq!(
        stored["fact"],
        json!({"type":"Shop.Order","fields":{"total":4.5,"id":"é\u{1}","big":1e30},"predecessors":{}})
    );
    // The raw answer embeds exactly the canonical bytes.
    let raw = http()
        .get(server.url(&format!("/v1/facts/{offline}")))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(raw.contains(r#""fact":{"fields":{"big":1e+30,"id":"é\u0001","total":4.5},"predecessors":{},"type":"Shop.Order"}"#), "{raw}");
}

#[test]
fn writes_are_idempotent_and_predecessors_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let customer = fact("Shop.Customer", json!({"name": "Ada"}), json!({}));
    let first = post_facts(&server, &[customer.clone(), customer.clone()]);
    assert_eq!(first.0, 200);
    assert_eq!(first.1["results"][0]["inserted"], true);
    assert_eq!(first.1["results"][1]["inserted"], false);
    assert_eq!(first.1["results"][1]["seq"], first.1["results"][0]["seq"]);
    let again = post_facts(&server, &[customer]);
    assert_eq!(again.1["results"][0]["inserted"], false);
    assert_eq!(again.1["results"][0]["seq"], 1);
    let customer_hash = first.1["results"][0]["hash"].as_str().unwrap().to_string();

    // A predecessor earlier in the same batch is fine; unsorted duplicates are a set.
    let order = fact(
        "Shop.Order",
        json!({"n": 1}),
        json!({"customer": customer_hash}),
    );
    let order_hash = cairn_hash(&order.to_string());
    let line = fact(
        "Shop.Line",
        json!({}),
        json!({"order": order_hash, "both": [order_hash, customer_hash, order_hash]}),
    );
    let (status, answer) = post_facts(&server, &[order, line]);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][1]["seq"], 3);

    // Missing predecessors: 422, listed, and nothing of the batch stored.
    let unknown = "ab".repeat(32);
    let fine = fact("Shop.Note", json!({"text": "kept out"}), json!({}));
    let orphan = fact("Shop.Order", json!({}), json!({"customer": unknown}));
    let (status, answer) = post_facts(&server, &[fine.clone(), orphan]);
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "missing_predecessors");
    assert_eq!(answer["error"]["missing"], json!([unknown]));
    assert_eq!(last_seq(&server), 3);
    let fine_hash = cairn_hash(&fine.to_string());
    assert_eq!(get_json(&server, &format!("/v1/facts/{fine_hash}")).0, 404);

    // A predecessor that appears only later in the batch is missing too.
    let child = fact("Shop.Child", json!({}), json!({"parent": fine_hash}));
    let (status, answer) = post_facts(&server, &[child, fine]);
    assert_eq!(status, 422);
    assert_eq!(answer["error"]["missing"], json!([fine_hash]));
    assert_eq!(last_seq(&server), 3);
}

#[test]
fn successors_support_tombstones_mutable_properties_and_paging() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let list = put_one(
        &server,
        fact("Todo.List", json!({"id": "groceries"}), json!({})),
    );
    let mut items = Vec::new();
    for n in 0..5 {
        items.push(put_one(
            &server,
            fact("Todo.Item", json!({"n": n}), json!({"list": list})),
        ));
    }
    // Tombstone item 1; items without a Deleted successor are the live ones.
    put_one(
        &server,
        fact("Todo.Deleted", json!({}), json!({"item": items[1]})),
    );
    let path = |query: &str| format!("/v1/facts/{list}/successors?{query}");
    let (status, page) = get_json(&server, &path("type=Todo.Item&without=Todo.Deleted"));
    assert_eq!(status, 200);
    let live: Vec<&str> = page["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["hash"].as_str().unwrap())
        .collect();
    assert_eq!(live, vec![&items[0], &items[2], &items[3], &items[4]]);

    // Paging: limit and after, in seq order, with next.
    let (_, first) = get_json(&server, &path("type=Todo.Item&limit=2"));
    assert_eq!(first["facts"].as_array().unwrap().len(), 2);
    let next = first["next"].as_u64().unwrap();
    assert_eq!(next, first["facts"][1]["seq"].as_u64().unwrap());
    let (_, second) = get_json(
        &server,
        &path(&format!("type=Todo.Item&limit=10&after={next}")),
    );
    assert_eq!(second["facts"].as_array().unwrap().len(), 3);
    assert_eq!(second["facts"][0]["hash"], items[2]);

    // Role filter.
    let (_, by_role) = get_json(&server, &path("type=Todo.Item&role=list"));
    assert_eq!(by_role["facts"].as_array().unwrap().len(), 5);
    let (_, other_role) = get_json(&server, &path("type=Todo.Item&role=owner"));
    assert_eq!(other_role["facts"].as_array().unwrap().len(), 0);

    // Mutable property: two concurrent names, neither superseded, are both current.
    let name_a = put_one(
        &server,
        fact("Todo.Name", json!({"value": "Food"}), json!({"list": list})),
    );
    let name_b = put_one(
        &server,
        fact(
            "Todo.Name",
            json!({"value": "Groceries"}),
            json!({"list": list}),
        ),
    );
    let (_, names) = get_json(&server, &path("type=Todo.Name&without=Todo.NameSuperseded"));
    assert_eq!(
        names["facts"].as_array().unwrap().len(),
        2,
        "a conflict is visible"
    );
    put_one(
        &server,
        fact(
            "Todo.Name",
            json!({"value": "Shopping"}),
            json!({"list": list, "prior": [name_a, name_b]}),
        ),
    );
    let _ = get_json(&server, &path("type=Todo.Name"));
}

/// GETs `path` with a bearer token; answers status and JSON body.
fn get_json_as(server: &Server, path: &str, token: &str) -> (u16, serde_json::Value) {
    json_answer(
        http()
            .get(server.url(path))
            .bearer_auth(token)
            .send()
            .expect("server answers"),
    )
}

/// The hashes of a page's facts, in order.
fn page_hashes(page: &serde_json::Value) -> Vec<String> {
    page["facts"]
        .as_array()
        .expect("facts")
        .iter()
        .map(|fact| fact["hash"].as_str().expect("hash").to_string())
        .collect()
}

/// Addition (issue 17): `GET /v1/facts/{hash}/successor-types` and the
/// `size` of `GET /v1/facts/{hash}`.
#[test]
fn successor_types_are_listed_once_sorted_and_bad_requests_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let order = put_one(&server, fact("Shop.Order", json!({"n": 1}), json!({})));
    for n in 0..5 {
        put_one(
            &server,
            fact("Shop.Line", json!({"n": n}), json!({"order": order})),
        );
    }
    // In two roles at once, and types that sort apart by bytes: '.' < 'A'
    // < '_' < 'a'.
    let note = put_one(
        &server,
        fact(
            "Shop_Note",
            json!({}),
            json!({"order": order, "about": [order]}),
        ),
    );
    put_one(&server, fact("Shop.a", json!({}), json!({"order": order})));
    put_one(&server, fact("Shop.Audit", json!({}), json!({"of": order})));
    // A successor of a successor is not the order's.
    put_one(
        &server,
        fact("Shop.Reply", json!({}), json!({"note": note})),
    );

    let path = format!("/v1/facts/{order}/successor-types");
    let (status, answer) = get_json(&server, &path);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({
            "hash": order,
            "types": ["Shop.Audit", "Shop.Line", "Shop.a", "Shop_Note"],
            "complete": true,
        })
    );
    assert_eq!(
        get_json(&server, &format!("/v1/facts/{note}/successor-types")).1["types"],
        json!(["Shop.Reply"])
    );
    // Every type listed has successors to read, in any role.
    for type_name in ["Shop.Audit", "Shop.Line", "Shop.a", "Shop_Note"] {
        let (_, page) = get_json(
            &server,
            &format!("/v1/facts/{order}/successors?type={type_name}"),
        );
        assert!(!page_hashes(&page).is_empty(), "{type_name}");
    }

    // A fact that is not stored, or has no successors: an empty list.
    let unknown = "ab".repeat(32);
    assert_eq!(
        get_json(&server, &format!("/v1/facts/{unknown}/successor-types")),
        (200, json!({"hash": unknown, "types": [], "complete": true}))
    );
    let line_hash = {
        let (_, page) = get_json(
            &server,
            &format!("/v1/facts/{order}/successors?type=Shop.Line&limit=1"),
        );
        page_hashes(&page).remove(0)
    };
    assert_eq!(
        get_json(&server, &format!("/v1/facts/{line_hash}/successor-types")).1["types"],
        json!([])
    );

    // Malformed hashes and query parameters: refused as on the other
    // fact routes, and nothing changes.
    let before = last_seq(&server);
    for bad in ["xyz", "AB", &"ab".repeat(33), &"AB".repeat(32), "%FF"] {
        let (status, refused) = get_json(&server, &format!("/v1/facts/{bad}/successor-types"));
        let (other_status, other) = get_json(&server, &format!("/v1/facts/{bad}"));
        assert_eq!(status, 400, "{bad}: {refused}");
        assert_eq!(
            (status, &refused["error"]["code"]),
            (other_status, &other["error"]["code"]),
            "{bad}"
        );
    }
    for query in ["type=Shop.Line", "limit=10", "after=Shop.A", "bogus"] {
        let (status, refused) = get_json(&server, &format!("{path}?{query}"));
        let (other_status, other) = get_json(&server, &format!("/v1/facts/{order}?{query}"));
        assert_eq!(status, 400, "{query}: {refused}");
        assert_eq!(
            (status, &refused["error"]["code"]),
            (other_status, &other["error"]["code"]),
            "{query}"
        );
    }
    assert_eq!(http().post(server.url(&path)).send().unwrap().status(), 405);
    assert_eq!(last_seq(&server), before, "refusals write nothing");

    // The size of a fact is the length of the canonical bytes its hash is
    // computed from: those the answer embeds as `fact`.
    let (status, stored) = get_json(&server, &format!("/v1/facts/{note}"));
    assert_eq!(status, 200, "{stored}");
    let raw = http()
        .get(server.url(&format!("/v1/facts/{note}")))
        .send()
        .unwrap()
        .text()
        .unwrap();
    // `size` comes before `fact`, so the answer still ends with the bytes.
    let canonical_start = raw.find(r#""fact":"#).expect("fact") + r#""fact":"#.len();
    assert!(
        raw.find(r#""size":"#).expect("size") < canonical_start,
        "{raw}"
    );
    let canonical = raw[canonical_start..].strip_suffix('}').expect("fact last");
    assert_eq!(stored["size"], json!(canonical.len()), "{raw}");
    assert_eq!(
        cairn_hash(canonical),
        note,
        "the size counts the hashed bytes"
    );
    // Pages carry no size.
    let (_, page) = get_json(
        &server,
        &format!("/v1/facts/{order}/successors?type=Shop_Note"),
    );
    assert!(page["facts"][0].get("size").is_none(), "{page}");
}

/// With `--auth`, types the caller may not read are left out silently: the
/// store is read on past them, so neither the list nor `complete` shows
/// that they exist.
#[test]
fn successor_types_leave_out_what_the_caller_may_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["tokens".to_string(), "create".to_string()];
    args.extend(offline_store_args(dir.path()));
    args.extend(["--name", "admin", "--admin"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run_cli(&args, "");
    assert!(output.success, "{}", output.stderr);
    let admin = output.stdout.lines().last().unwrap().to_string();
    let server = Server::start(dir.path(), &["--auth"]);
    let create = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "tokens",
            "create",
            "--server",
            &server.base,
            "--token",
            &admin,
            "--name",
            name,
        ];
        args.extend(extra);
        let output = run_cli(&args, "");
        assert!(output.success, "{}", output.stderr);
        output.stdout.lines().last().unwrap().to_string()
    };
    let reader = create("reader", &["--read", "Shop.*"]);
    let nobody = create("nobody", &[]);

    let post = |facts: &[serde_json::Value]| -> Vec<String> {
        let (status, answer) = json_answer(
            http()
                .post(server.url("/v1/facts"))
                .bearer_auth(&admin)
                .json(&json!({ "facts": facts }))
                .send()
                .unwrap(),
        );
        assert_eq!(status, 200, "{answer}");
        answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|result| result["hash"].as_str().unwrap().to_string())
            .collect()
    };
    let order = post(&[fact("Shop.Order", json!({}), json!({}))]).remove(0);
    // 257 unreadable types that sort before the readable ones ("Secret" <
    // "Shop"): more than one answer holds.
    let mut successors: Vec<serde_json::Value> = (0..257)
        .map(|n| {
            fact(
                &format!("Secret.T{n:03}"),
                json!({}),
                json!({"order": order}),
            )
        })
        .collect();
    successors.push(fact("Shop.Line", json!({}), json!({"order": order})));
    successors.push(fact("Shop.Payment", json!({}), json!({"order": order})));
    post(&successors);

    let path = format!("/v1/facts/{order}/successor-types");
    let (status, answer) = get_json_as(&server, &path, &reader);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"hash": order, "types": ["Shop.Line", "Shop.Payment"], "complete": true})
    );
    let (status, answer) = get_json_as(&server, &path, &nobody);
    assert_eq!(
        (status, answer),
        (200, json!({"hash": order, "types": [], "complete": true}))
    );
    // An admin reads every type: the first 256, and more to come.
    let (status, answer) = get_json_as(&server, &path, &admin);
    assert_eq!(status, 200, "{answer}");
    let types: Vec<&str> = answer["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|type_name| type_name.as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..256).map(|n| format!("Secret.T{n:03}")).collect();
    assert_eq!(types, expected);
    assert_eq!(answer["complete"], false);

    // As the successors endpoint, it needs no permission on the fact
    // itself: a reader of Shop.* sees the Shop.* successors of a fact it
    // may not read, as `successors?type=Shop.Line` shows them.
    let secret = post(&[fact("Secret.Root", json!({}), json!({}))]).remove(0);
    post(&[
        fact(
            "Shop.Line",
            json!({"of": "secret"}),
            json!({"root": secret}),
        ),
        fact("Secret.Line", json!({}), json!({"root": secret})),
    ]);
    assert_eq!(
        get_json_as(&server, &format!("/v1/facts/{secret}"), &reader).0,
        404
    );
    assert_eq!(
        get_json_as(
            &server,
            &format!("/v1/facts/{secret}/successor-types"),
            &reader
        )
        .1["types"],
        json!(["Shop.Line"])
    );
    let (_, page) = get_json_as(
        &server,
        &format!("/v1/facts/{secret}/successors?type=Shop.Line"),
        &reader,
    );
    assert_eq!(page_hashes(&page).len(), 1);
    // Without a token: 401, as every fact route.
    assert_eq!(get_json(&server, &path).0, 401);
}

#[test]
fn long_polls_wake_up_when_a_matching_fact_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let list = put_one(&server, fact("Todo.List", json!({}), json!({})));
    let base = server.base.clone();
    let list_for_poll = list.clone();
    let poller = std::thread::spawn(move || {
        let started = Instant::now();
        let answer: serde_json::Value = http()
            .get(format!(
                "{base}/v1/facts/{list_for_poll}/successors?type=Todo.Item&wait_ms=20000"
            ))
            .send()
            .unwrap()
            .json()
            .unwrap();
        (answer, started.elapsed())
    });
    let base = server.base.clone();
    let log_poller = std::thread::spawn(move || {
        http()
            .get(format!("{base}/v1/log?after=1&wait_ms=20000"))
            .send()
            .unwrap()
            .json::<serde_json::Value>()
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(300));
    // A fact of another type does not end the successors wait.
    put_one(
        &server,
        fact("Todo.Other", json!({}), json!({"list": list})),
    );
    std::thread::sleep(Duration::from_millis(200));
    put_one(
        &server,
        fact("Todo.Item", json!({"n": 1}), json!({"list": list})),
    );
    let (answer, waited) = poller.join().unwrap();
    assert_eq!(answer["facts"].as_array().unwrap().len(), 1, "{answer}");
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(15),
        "{waited:?}"
    );
    let log_answer = log_poller.join().unwrap();
    assert_eq!(log_answer["facts"][0]["seq"], 2);
    // An empty long-poll returns at its deadline.
    let started = Instant::now();
    let (status, empty) = get_json(&server, "/v1/log?after=100&wait_ms=300");
    assert_eq!(status, 200);
    assert_eq!(empty["facts"], json!([]));
    assert_eq!(empty["next"], 100);
    // A reader ahead of the store is told where the store's log ends
    // (after waiting a moment for it), and that this is its store.
    assert_eq!(empty["head"], 3, "{empty}");
    assert!(empty["store"].is_string(), "{empty}");
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn the_log_lists_every_fact_in_seq_order_with_paging() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let facts: Vec<_> = (0..25)
        .map(|n| fact("Log.Entry", json!({"n": n}), json!({})))
        .collect();
    assert_eq!(post_facts(&server, &facts).0, 200);
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = get_json(&server, &format!("/v1/log?after={after}&limit=10"));
        assert_eq!(status, 200);
        let entries = page["facts"].as_array().unwrap();
        if entries.is_empty() {
            break;
        }
        for entry in entries {
            seen.push((
                entry["seq"].as_u64().unwrap(),
                entry["fact"]["fields"]["n"].as_u64().unwrap(),
            ));
        }
        after = page["next"].as_u64().unwrap();
    }
    let expected: Vec<(u64, u64)> = (0..25).map(|n| (n + 1, n)).collect();
    assert_eq!(seen, expected);
}

#[test]
fn blobs_stream_in_and_out_by_hash() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--blob-bytes-max", "3000000"]);
    let bytes: Vec<u8> = (0..2_500_000u32).map(|n| (n % 251) as u8).collect();
    let put = |body: Vec<u8>| {
        json_answer(
            http()
                .put(server.url("/v1/blobs"))
                .body(body)
                .send()
                .unwrap(),
        )
    };
    let (status, answer) = put(bytes.clone());
    assert_eq!(status, 200, "{answer}");
    let hash = blake3::hash(&bytes).to_hex().to_string();
    assert_eq!(answer, json!({"hash": hash, "size": bytes.len()}));
    assert_eq!(put(bytes.clone()).1, answer, "idempotent");
    let response = http()
        .get(server.url(&format!("/v1/blobs/{hash}")))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    assert_eq!(response.bytes().unwrap().to_vec(), bytes);
    let head = http()
        .head(server.url(&format!("/v1/blobs/{hash}")))
        .send()
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    let (status, missing) = get_json(&server, &format!("/v1/blobs/{}", "0".repeat(64)));
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let head =
        "PUT /v1/blobs HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_string();
    let (status, too_large) = raw_exchange(&server, head, 4, true);
    assert_eq!(
        (status, too_large["error"]["code"].as_str()),
        (413, Some("blob_too_large"))
    );
    assert_eq!(
        get_json(&server, "/v1/blobs/UPPER").1["error"]["code"],
        "invalid_hash"
    );
    // Nothing half-written is left behind by the rejected upload (on
    // PostgreSQL, cairn-store's blob tests check the chunk tables).
    if on_postgres() {
        return;
    }
    let leftovers = std::fs::read_dir(dir.path().join("blobs/tmp"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn a_blob_put_under_its_hash_is_stored_only_if_the_bytes_match() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let bytes = b"the bytes the client hashed".to_vec();
    let hash = blake3::hash(&bytes).to_hex().to_string();
    let put = |hash: &str, body: &[u8]| {
        json_answer(
            http()
                .put(server.url(&format!("/v1/blobs/{hash}")))
                .body(body.to_vec())
                .send()
                .unwrap(),
        )
    };
    let corrupted = b"the bytes the client hashes".to_vec();
    let (status, refused) = put(&hash, &corrupted);
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("blob_hash_mismatch")),
        "{refused}"
    );
    let corrupted_hash = blake3::hash(&corrupted).to_hex().to_string();
    for unstored in [&hash, &corrupted_hash] {
        let (status, _) = get_json(&server, &format!("/v1/blobs/{unstored}"));
        assert_eq!(status, 404, "nothing of the refused upload was stored");
    }
    let (status, stored) = put(&hash, &bytes);
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored, json!({"hash": hash, "size": bytes.len()}));
    assert_eq!(put(&hash, &bytes).1, stored, "idempotent");
    let read = http()
        .get(server.url(&format!("/v1/blobs/{hash}")))
        .send()
        .unwrap();
    assert_eq!(read.bytes().unwrap().to_vec(), bytes);
    let (status, malformed) = put("not-a-hash", &bytes);
    assert_eq!(
        (status, malformed["error"]["code"].as_str()),
        (400, Some("invalid_hash"))
    );
    if !on_postgres() {
        let leftovers = std::fs::read_dir(dir.path().join("blobs/tmp"))
            .unwrap()
            .count();
        assert_eq!(leftovers, 0, "the refused upload left no temporary file");
    }
}

#[test]
fn the_served_openapi_document_is_the_committed_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let response = http().get(server.url("/v1/openapi.json")).send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served = response.text().unwrap();
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi.json"
    ))
    .unwrap();
    assert!(
        served == committed,
        "GET /v1/openapi.json differs from docs/openapi.json; regenerate the file with \
         `CAIRN_WRITE_OPENAPI=1 cargo test -p cairn-api --features openapi`"
    );
}

#[test]
fn health_versions_and_metrics_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, health) = get_json(&server, "/v1/health");
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert!(health["version"].is_string());
    let (status, versions) = get_json(&server, "/versions");
    assert_eq!(status, 200);
    assert_eq!(versions["api"], json!(["v1"]));
    put_one(&server, fact("M.Fact", json!({}), json!({})));
    let metrics = metrics_text(&server);
    for name in [
        "cairn_facts_written_total 1",
        "cairn_fact_bytes_written_total",
        "cairn_fsyncs_total 1",
        "cairn_facts_per_fsync_bucket",
        "cairn_store_disk_bytes",
        "cairn_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/facts\"",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}:\n{metrics}");
    }
}

/// The deprecation mechanism (`cairn_api::versioning`): `/versions` lists
/// each version with its status and deprecated routes; a deprecated route
/// is still served, with `Deprecation`, `Sunset` and `Link` headers, beside
/// its replacement, which has none; the OpenAPI document marks it.
#[test]
fn a_deprecated_route_is_served_with_its_headers_beside_its_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, versions) = get_json(&server, "/versions");
    assert_eq!(status, 200);
    let v1 = &versions["versions"][0];
    assert_eq!(
        (v1["version"].as_str(), v1["status"].as_str()),
        (Some("v1"), Some("current"))
    );
    assert_eq!(v1["base"], "/v1/");
    let deprecated = v1["deprecated_routes"]
        .as_array()
        .expect("deprecated routes")
        .iter()
        .find(|route| route["method"] == "PUT" && route["route"] == "/v1/blobs")
        .expect("PUT /v1/blobs is deprecated")
        .clone();
    assert_eq!(deprecated["replacement"], "/v1/blobs/{hash}");
    assert_eq!(deprecated["sunset"], "2027-12-06");

    let bytes = b"a blob uploaded the old way".to_vec();
    let old = http()
        .put(server.url("/v1/blobs"))
        .body(bytes.clone())
        .send()
        .expect("server answers");
    assert_eq!(old.status().as_u16(), 200, "still served");
    let header = |response: &reqwest::blocking::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_string())
    };
    // RFC 9745: `@` and the seconds of 2026-12-06T00:00:00Z; RFC 8594: an
    // HTTP date.
    assert_eq!(header(&old, "deprecation").as_deref(), Some("@1796515200"));
    assert_eq!(
        header(&old, "sunset").as_deref(),
        Some("Mon, 06 Dec 2027 00:00:00 GMT")
    );
    assert_eq!(
        header(&old, "link").as_deref(),
        Some("</v1/blobs/{hash}>; rel=\"successor-version\"")
    );
    let hash = old.json::<serde_json::Value>().unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let new = http()
        .put(server.url(&format!("/v1/blobs/{hash}")))
        .body(bytes)
        .send()
        .expect("server answers");
    assert_eq!(new.status().as_u16(), 200);
    for name in ["deprecation", "sunset", "link"] {
        assert_eq!(
            header(&new, name),
            None,
            "the replacement has no {name} header"
        );
    }
    // Other routes carry none either.
    let health = http().get(server.url("/v1/health")).send().unwrap();
    assert_eq!(header(&health, "deprecation"), None);
    let (_, document) = get_json(&server, "/v1/openapi.json");
    assert_eq!(document["paths"]["/v1/blobs"]["put"]["deprecated"], true);
    assert!(document["paths"]["/v1/blobs/{hash}"]["put"]
        .get("deprecated")
        .is_none());
}

#[test]
fn sigterm_finishes_cleanly_and_data_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let hash = put_one(&server, fact("Keep.Me", json!({"x": 1}), json!({})));
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    let server = Server::start(dir.path(), &[]);
    assert_eq!(get_json(&server, &format!("/v1/facts/{hash}")).0, 200);
}

#[test]
fn a_second_server_cannot_open_the_same_data_directory() {
    if on_postgres() {
        return; // many servers share one database by design
    }
    let dir = tempfile::tempdir().unwrap();
    let _server = Server::start(dir.path(), &[]);
    let output = Command::new(CAIRN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn cli_client_commands_talk_to_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let run = |args: &[&str], input: Option<&str>| {
        let output = run_cli(
            &[args, &["--server", &server.base]].concat(),
            input.unwrap_or(""),
        );
        (output.success, output.stdout, output.stderr)
    };
    let parent = r#"{"type":"Cli.Parent","fields":{},"predecessors":{}}"#;
    let (ok, out, err) = run(&["put"], Some(parent));
    assert!(ok, "{err}");
    let parent_hash = cairn_hash(parent);
    assert!(out.contains(&parent_hash));
    let child = format!(
        r#"[{{"type":"Cli.Child","fields":{{"n":1}},"predecessors":{{"parent":"{parent_hash}"}}}}]"#
    );
    assert!(run(&["put", "-"], Some(&child)).0);
    let (ok, out, _) = run(&["get", &parent_hash], None);
    assert!(ok && out.contains("Cli.Parent"));
    let (ok, out, _) = run(&["successors", &parent_hash, "--type", "Cli.Child"], None);
    assert!(ok && out.contains("Cli.Child"), "{out}");
    let (ok, out, _) = run(&["log", "--after", "1"], None);
    assert!(ok && out.contains("\"seq\": 2"), "{out}");
    let (ok, _, err) = run(&["get", "nothex"], None);
    assert!(!ok && err.contains("invalid_hash"), "{err}");
}

#[test]
fn cli_put_refuses_duplicate_keys_as_hash_does_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let put = |input: &str| run_cli(&["put", "--server", &server.base], input);
    let posts_of_facts = || {
        metrics_text(&server)
            .lines()
            .filter(|line| line.contains(r#"method="POST",route="/v1/facts""#))
            .count()
    };
    let valid = r#"{"type":"Dup.Key","fields":{"n":1},"predecessors":{}}"#;
    let predecessor = cairn_hash(valid);
    let in_one_fact = [
        r#"{"type":"Dup.Key","type":"Dup.Other","fields":{},"predecessors":{}}"#.to_string(),
        r#"{"type":"Dup.Key","fields":{"n":1,"n":2},"predecessors":{}}"#.to_string(),
        r#"{"type":"Dup.Key","fields":{"order":{"lines":[{"sku":"a","qty":1,"sku":"b"}]}},"predecessors":{}}"#.to_string(),
        format!(r#"{{"type":"Dup.Key","fields":{{}},"predecessors":{{"p":"{predecessor}","p":"{predecessor}"}}}}"#),
    ];
    let in_an_array = [
        format!(
            r#"[{valid},{{"type":"Dup.Key","fields":{{"deep":[[{{"a":1,"a":1}}]]}},"predecessors":{{}}}}]"#
        ),
        format!(r#"[{valid},{}]"#, in_one_fact[1]),
    ];
    for input in in_one_fact.iter().chain(&in_an_array) {
        let hashed = run_cli(&["hash"], input);
        let stored = put(input);
        assert!(
            !hashed.success && !stored.success,
            "{input}: {}",
            stored.stdout
        );
        assert!(
            stored.stderr.contains("duplicate_key"),
            "{input}: {}",
            stored.stderr
        );
        assert_eq!(stored.stderr, hashed.stderr, "{input}");
        assert_eq!(stored.stdout, "", "{input}");
    }
    // Nothing was sent, so nothing was stored.
    assert_eq!(posts_of_facts(), 0, "{}", metrics_text(&server));
    assert_eq!(last_seq(&server), 0);
    assert!(
        metrics_text(&server).contains("\ncairn_store_last_seq 0\n"),
        "{}",
        metrics_text(&server)
    );

    // The same array without the duplicate goes through: the checks above
    // would have seen it.
    let fixed = format!(r#"[{valid},{{"type":"Dup.Key","fields":{{"n":2}},"predecessors":{{}}}}]"#);
    let stored = put(&fixed);
    assert!(stored.success, "{}", stored.stderr);
    assert!(stored.stdout.contains(&predecessor), "{}", stored.stdout);
    assert!(posts_of_facts() > 0);
    assert_eq!(last_seq(&server), 2);
}

#[test]
fn cli_tail_follows_the_log() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let first = put_one(&server, fact("Tail.Entry", json!({"n": 1}), json!({})));
    let mut tail = Command::new(CAIRN)
        .args(["tail", "--after", "0", "--server", &server.base])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(tail.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    assert!(line.contains(&first), "{line}");
    // A fact written while tail waits arrives through its long-poll.
    let second = put_one(&server, fact("Tail.Entry", json!({"n": 2}), json!({})));
    let line = lines.next().unwrap().unwrap();
    assert!(line.contains(&second), "{line}");
    tail.kill().unwrap();
    tail.wait().unwrap();
}

/// The web console at `/ui` (issue 17): its page answers every console
/// URL, its assets are served with their types, anything else under
/// `/ui/assets/` is a 404, every answer carries the strict policy, a
/// browser holding the current build gets `304`, and the routes are open
/// on a server with `--auth` (they carry no data).
#[test]
fn the_console_is_served_with_a_strict_content_security_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--auth"]);
    let client = common::http();
    let policy = "default-src 'none'; script-src 'self'";
    for (path, status, content_type) in [
        ("/ui", 200, "text/html"),
        ("/ui/", 200, "text/html"),
        ("/ui/facts", 200, "text/html"),
        (&format!("/ui/facts/{}", "ab".repeat(32)), 200, "text/html"),
        ("/ui/subscriptions/a%3Cb%3E/dead", 200, "text/html"),
        ("/ui/assets/app.js", 200, "text/javascript"),
        ("/ui/assets/app.css", 200, "text/css"),
        ("/ui/assets/icon.svg", 200, "image/svg+xml"),
        ("/ui/assets/missing.js", 404, "text/plain"),
        ("/ui/assets/..%2Findex.html", 404, "text/plain"),
    ] {
        let answer = client.get(server.url(path)).send().unwrap();
        assert_eq!(answer.status().as_u16(), status, "{path}");
        let header = |name: &str| {
            answer
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(header("content-type").starts_with(content_type), "{path}");
        assert!(
            header("content-security-policy").starts_with(policy),
            "{path}"
        );
        assert!(
            !header("content-security-policy").contains("unsafe"),
            "{path}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        if status == 200 {
            let tag = header("etag");
            let again = client
                .get(server.url(path))
                .header("if-none-match", &tag)
                .send()
                .unwrap();
            assert_eq!(again.status().as_u16(), 304, "{path}");
        }
    }
    let page = client
        .get(server.url("/ui/"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("/ui/assets/app.js"));
    let refused = client.post(server.url("/ui/facts")).send().unwrap();
    assert_eq!(refused.status().as_u16(), 405);
}
