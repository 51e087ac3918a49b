//! Schemas per type and version against the real binary (on PostgreSQL too,
//! with `CAIRN_TEST_BACKEND=postgres`): registration (idempotent, in
//! order, stored as a fact, refused when it breaks its compatibility),
//! validation of writes (a batch with one bad fact stores nothing),
//! upcasting through every read path (a fact, successors, the log, a
//! subscription's pull and stream), `--require-schemas`, and bad input
//! that changes nothing. The compatibility rules themselves are tested
//! rule by rule in `crates/cairn-schema/tests/compatibility_rules.rs`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

const ORDER: &str = "Shop.Order";

fn put_schema(server: &Server, type_name: &str, version: &str, body: &Value) -> (u16, Value) {
    put_schema_raw(server, type_name, version, body.to_string())
}

fn put_schema_raw(server: &Server, type_name: &str, version: &str, body: String) -> (u16, Value) {
    json_answer(
        http()
            .put(server.url(&format!("/v1/schemas/{type_name}/{version}")))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .expect("server answers"),
    )
}

/// Version 1 of `Shop.Order`: an open model with a required `id`, an
/// optional `total` and a `status` from an enum.
fn order_v1() -> Value {
    json!({
        "schema": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "pattern": "^o-[0-9]+$"},
                "total": {"type": "number", "minimum": 0},
                "status": {"enum": ["new", "paid"]}
            },
            "required": ["id"]
        },
        "compatibility": "backward"
    })
}

/// Version 2: `total` renamed `amount` (with the rename upcast).
fn order_v2() -> Value {
    json!({
        "schema": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "pattern": "^o-[0-9]+$"},
                "amount": {"type": "number", "minimum": 0},
                "status": {"enum": ["new", "paid"]}
            },
            "required": ["id"]
        },
        "compatibility": "backward",
        "upcast": [{"op": "rename", "from": "/total", "to": "/amount"}]
    })
}

/// Version 3: `amount` moved into `money`, a required `currency` (default
/// `EUR` for older facts), and `status` spelled differently.
fn order_v3() -> Value {
    json!({
        "schema": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "pattern": "^o-[0-9]+$"},
                "money": {
                    "type": "object",
                    "properties": {"amount": {"type": "number", "minimum": 0}}
                },
                "currency": {"type": "string", "enum": ["EUR", "USD"]},
                "status": {"enum": ["NEW", "PAID"]}
            },
            "required": ["id", "currency"]
        },
        "compatibility": "backward",
        "upcast": [
            {"op": "move", "from": "/amount", "to": "/money/amount"},
            {"op": "default", "path": "/currency", "value": "EUR"},
            {"op": "map", "path": "/status", "values": {"new": "NEW", "paid": "PAID"}}
        ]
    })
}

fn register_order_versions(server: &Server) {
    for (version, body) in [("1", order_v1()), ("2", order_v2()), ("3", order_v3())] {
        let (status, answer) = put_schema(server, ORDER, version, &body);
        assert_eq!(status, 201, "version {version}: {answer}");
    }
}

#[test]
fn registration_is_in_order_idempotent_and_stored_as_a_fact() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, answer) = get_json(&server, &format!("/v1/schemas/{ORDER}"));
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("unknown_schema"))
    );

    let (status, first) = put_schema(&server, ORDER, "1", &order_v1());
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["registered"], true);
    assert_eq!(first["version"], 1);
    let hash = first["hash"].as_str().unwrap().to_string();
    // The same registration again: the same fact, nothing new.
    let seq = last_seq(&server);
    let (status, again) = put_schema(&server, ORDER, "1", &order_v1());
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["registered"], false);
    assert_eq!(again["hash"], hash.as_str());
    assert_eq!(last_seq(&server), seq);

    // Stored as a Cairn.Schema fact, content-addressed.
    let (status, stored) = get_json(&server, &format!("/v1/facts/{hash}"));
    assert_eq!(status, 200);
    assert_eq!(stored["fact"]["type"], "Cairn.Schema");
    assert_eq!(stored["fact"]["fields"]["type"], ORDER);
    assert_eq!(stored["fact"]["fields"]["version"], 1);
    assert_eq!(fact_hash(&stored["fact"]), hash);

    // Another schema at version 1, or a version that skips one: refused.
    let mut other = order_v1();
    other["schema"]["required"] = json!(["id", "total"]);
    let (status, answer) = put_schema(&server, ORDER, "1", &other);
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("schema_conflict")),
        "{answer}"
    );
    let (status, answer) = put_schema(&server, ORDER, "3", &order_v3());
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("schema_conflict")),
        "{answer}"
    );

    let (status, v2) = put_schema(&server, ORDER, "2", &order_v2());
    assert_eq!(status, 201, "{v2}");
    let previous = get_json(
        &server,
        &format!("/v1/facts/{}", v2["hash"].as_str().unwrap()),
    )
    .1;
    assert_eq!(previous["fact"]["predecessors"]["previous"], hash.as_str());
    let (status, list) = get_json(&server, &format!("/v1/schemas/{ORDER}"));
    assert_eq!(status, 200);
    assert_eq!(list["type"], ORDER);
    let versions: Vec<(u64, &str)> = list["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["version"].as_u64().unwrap(),
                entry["compatibility"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(versions, [(1, "backward"), (2, "backward")]);
    let (status, one) = get_json(&server, &format!("/v1/schemas/{ORDER}/2"));
    assert_eq!(status, 200);
    assert_eq!(one["upcast"], order_v2()["upcast"]);
    assert_eq!(one["schema"], order_v2()["schema"]);
    let (status, all) = get_json(&server, "/v1/schemas");
    assert_eq!(status, 200);
    assert_eq!(all["types"][0]["type"], ORDER);
}

#[test]
fn a_version_that_breaks_its_compatibility_is_refused_with_the_breaking_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(put_schema(&server, ORDER, "1", &order_v1()).0, 201);

    // Adding a typed property to an open model is not backward compatible
    // (an older fact may hold anything under that name).
    let mut open_added = order_v1();
    open_added["schema"]["properties"]["note"] = json!({"type": "string"});
    let (status, answer) = put_schema(&server, ORDER, "2", &open_added);
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "incompatible_schema");
    let breaking = answer["error"]["breaking"].as_array().expect("breaking");
    assert!(
        breaking.iter().any(
            |change| change["rule"] == "property_added_to_open_content_model"
                && change["direction"] == "backward"
                && change["version"] == 1
        ),
        "{answer}"
    );
    // Renaming a required property without an upcast breaks old facts.
    let mut renamed = order_v1();
    renamed["schema"]["properties"] = json!({"key": {"type": "string"}});
    renamed["schema"]["required"] = json!(["key"]);
    let (status, answer) = put_schema(&server, ORDER, "2", &renamed);
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("incompatible_schema"))
    );
    // Nothing was registered.
    let list = get_json(&server, &format!("/v1/schemas/{ORDER}")).1;
    assert_eq!(list["versions"].as_array().unwrap().len(), 1);
    // With the rename upcast it is judged on the upcast older facts, and
    // passes; with compatibility none anything passes.
    renamed["upcast"] = json!([{"op": "rename", "from": "/id", "to": "/key"}]);
    let (status, answer) = put_schema(&server, ORDER, "2", &renamed);
    assert_eq!(status, 201, "{answer}");
    open_added["compatibility"] = json!("none");
    assert_eq!(put_schema(&server, ORDER, "3", &open_added).0, 201);
}

#[test]
fn writes_are_validated_and_one_bad_fact_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    register_order_versions(&server);
    let good = fact(ORDER, json!({"id": "o-1", "total": 4.5}), json!({}));
    let bad = fact(
        ORDER,
        json!({"id": "x", "total": -1, "status": "lost"}),
        json!({}),
    );
    let seq = last_seq(&server);
    let (status, answer) = post_facts(&server, &[good.clone(), bad]);
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "schema_violation");
    assert_eq!(answer["error"]["index"], 1);
    let violations: Vec<(String, String)> = answer["error"]["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .map(|violation| {
            (
                violation["pointer"].as_str().unwrap().to_string(),
                violation["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for expected in [
        ("/fields/id", "pattern"),
        ("/fields/total", "minimum"),
        ("/fields/status", "enum"),
    ] {
        assert!(
            violations.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} in {violations:?}"
        );
    }
    assert_eq!(last_seq(&server), seq, "nothing stored");
    assert_eq!(
        get_json(&server, &format!("/v1/facts/{}", fact_hash(&good))).0,
        404
    );

    // Cairn's own fields are not the schema's; the version they name is.
    let (status, answer) = post_facts(
        &server,
        &[fact(
            ORDER,
            json!({"id": "o-2", "cairn_not_before": "2026-01-01T00:00:00Z"}),
            json!({}),
        )],
    );
    assert_eq!(status, 200, "{answer}");
    // A v3 fact is checked against v3: `currency` is required there.
    let (status, answer) = post_facts(
        &server,
        &[fact(
            ORDER,
            json!({"id": "o-3", "cairn_version": 3}),
            json!({}),
        )],
    );
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["violations"][0]["rule"], "required");
    let (status, answer) = post_facts(
        &server,
        &[fact(
            ORDER,
            json!({"id": "o-3", "cairn_version": 9}),
            json!({}),
        )],
    );
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["violations"][0]["rule"], "version");
    assert_eq!(
        answer["error"]["violations"][0]["pointer"],
        "/fields/cairn_version"
    );
    let (status, answer) = post_facts(
        &server,
        &[fact(
            ORDER,
            json!({"id": "o-3", "cairn_version": "3"}),
            json!({}),
        )],
    );
    assert_eq!(
        (status, answer["error"]["violations"][0]["rule"].as_str()),
        (422, Some("version"))
    );
    // At most 20 errors are named.
    let mut many = serde_json::Map::new();
    many.insert("id".into(), json!(1));
    let mut closed = order_v1();
    closed["schema"]["additionalProperties"] = json!(false);
    closed["compatibility"] = json!("none");
    assert_eq!(put_schema(&server, "Shop.Closed", "1", &closed).0, 201);
    for index in 0..40 {
        many.insert(format!("extra{index}"), json!(index));
    }
    let (status, answer) = post_facts(
        &server,
        &[fact("Shop.Closed", Value::Object(many), json!({}))],
    );
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["violations"].as_array().unwrap().len(), 20);
    // A type without a schema is written as before.
    assert_eq!(
        post_facts(&server, &[fact("Shop.Note", json!({"any": 1}), json!({}))]).0,
        200
    );
}

#[test]
fn predecessor_roles_are_constrained_by_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let registration = json!({
        "schema": {"type": "object"},
        "compatibility": "none",
        "predecessors": {"customer": {"types": ["Shop.Customer"], "required": true, "many": false}}
    });
    assert_eq!(
        put_schema(&server, "Shop.Invoice", "1", &registration).0,
        201
    );
    let customer = put_one(
        &server,
        fact("Shop.Customer", json!({"name": "Ada"}), json!({})),
    );
    let note = put_one(&server, fact("Shop.Note", json!({}), json!({})));
    let invoice = |predecessors: Value| fact("Shop.Invoice", json!({}), predecessors);
    assert_eq!(
        post_facts(&server, &[invoice(json!({"customer": customer}))]).0,
        200
    );
    for (predecessors, rule) in [
        (json!({}), "required"),
        (json!({"customer": note}), "role_type"),
        (json!({"customer": customer, "other": note}), "role"),
        (json!({"customer": [customer, note]}), "many"),
    ] {
        let (status, answer) = post_facts(&server, &[invoice(predecessors.clone())]);
        assert_eq!(status, 422, "{predecessors}: {answer}");
        let rules: Vec<&str> = answer["error"]["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|violation| violation["rule"].as_str().unwrap())
            .collect();
        assert!(rules.contains(&rule), "{predecessors}: {rules:?}");
    }
    // A predecessor earlier in the same batch counts by its type too.
    let new_customer = fact("Shop.Customer", json!({"name": "Grace"}), json!({}));
    let (status, answer) = post_facts(
        &server,
        &[
            new_customer.clone(),
            invoice(json!({"customer": fact_hash(&new_customer)})),
        ],
    );
    assert_eq!(status, 200, "{answer}");
}

/// The facts of the upcast test: one per version, all successors of one
/// customer.
struct Written {
    customer: String,
    v1: String,
    v2: String,
    v3: String,
}

fn write_three_versions(server: &Server) -> Written {
    let customer = put_one(
        server,
        fact("Shop.Customer", json!({"name": "Ada"}), json!({})),
    );
    let of = json!({"customer": customer});
    let v1 = put_one(
        server,
        fact(
            ORDER,
            json!({"id": "o-1", "total": 10, "status": "new"}),
            of.clone(),
        ),
    );
    let v2 = put_one(
        server,
        fact(
            ORDER,
            json!({"id": "o-2", "amount": 20, "status": "paid", "cairn_version": 2}),
            of.clone(),
        ),
    );
    let v3 = put_one(
        server,
        fact(
            ORDER,
            json!({"id": "o-3", "money": {"amount": 30}, "currency": "USD", "status": "NEW", "cairn_version": 3}),
            of,
        ),
    );
    Written {
        customer,
        v1,
        v2,
        v3,
    }
}

/// What each fact looks like read as version 3.
fn expected_v3(written: &Written) -> Vec<(String, Value, Option<Value>)> {
    vec![
        (
            written.v1.clone(),
            json!({"id": "o-1", "money": {"amount": 10}, "currency": "EUR", "status": "NEW", "cairn_version": 3}),
            Some(json!({"from": 1, "to": 3})),
        ),
        (
            written.v2.clone(),
            json!({"id": "o-2", "money": {"amount": 20}, "currency": "EUR", "status": "PAID", "cairn_version": 3}),
            Some(json!({"from": 2, "to": 3})),
        ),
        (
            written.v3.clone(),
            json!({"id": "o-3", "money": {"amount": 30}, "currency": "USD", "status": "NEW", "cairn_version": 3}),
            None,
        ),
    ]
}

/// Checks one answered fact (`{"hash", "fact", "upcast"?, "original"?}`)
/// against what version 3 shows, and that the original still has its hash.
fn check_view(entry: &Value, expected: &[(String, Value, Option<Value>)]) {
    let hash = entry["hash"].as_str().expect("hash");
    let (_, fields, marker) = expected
        .iter()
        .find(|(expected_hash, _, _)| expected_hash == hash)
        .unwrap_or_else(|| panic!("an unexpected fact {entry}"));
    assert_eq!(&entry["fact"]["fields"], fields, "{entry}");
    match marker {
        Some(marker) => {
            assert_eq!(&entry["upcast"], marker, "{entry}");
            assert_eq!(
                fact_hash(&entry["original"]),
                hash,
                "the original keeps its hash"
            );
            assert_eq!(
                entry["fact"]["predecessors"],
                entry["original"]["predecessors"]
            );
        }
        None => {
            assert!(entry.get("upcast").is_none(), "{entry}");
            assert!(entry.get("original").is_none(), "{entry}");
            assert_eq!(fact_hash(&entry["fact"]), hash);
        }
    }
}

#[test]
fn upcast_chains_apply_through_every_read_path() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    register_order_versions(&server);
    let written = write_three_versions(&server);
    let expected = expected_v3(&written);

    // A fact.
    for (hash, _, _) in &expected {
        let (status, answer) = get_json(&server, &format!("/v1/facts/{hash}?as_version=3"));
        assert_eq!(status, 200, "{answer}");
        check_view(&answer, &expected);
    }
    // As stored without as_version; a newer fact read as an older version
    // is as stored; a version the type lacks is an error.
    let (_, plain) = get_json(&server, &format!("/v1/facts/{}", written.v1));
    assert!(plain.get("upcast").is_none());
    assert_eq!(
        plain["fact"]["fields"],
        json!({"id": "o-1", "total": 10, "status": "new"})
    );
    let (_, newer) = get_json(&server, &format!("/v1/facts/{}?as_version=1", written.v3));
    assert!(newer.get("upcast").is_none());
    assert_eq!(newer["fact"]["fields"]["cairn_version"], 3);
    let (status, answer) = get_json(&server, &format!("/v1/facts/{}?as_version=4", written.v1));
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("unknown_schema"))
    );
    // Reading v1 as v2 applies only v2's upcast.
    let (_, as_v2) = get_json(&server, &format!("/v1/facts/{}?as_version=2", written.v1));
    assert_eq!(
        as_v2["fact"]["fields"],
        json!({"id": "o-1", "amount": 10, "status": "new", "cairn_version": 2})
    );
    assert_eq!(as_v2["upcast"], json!({"from": 1, "to": 2}));

    // Successors.
    let (status, page) = get_json(
        &server,
        &format!(
            "/v1/facts/{}/successors?type={ORDER}&as_version=3",
            written.customer
        ),
    );
    assert_eq!(status, 200, "{page}");
    let facts = page["facts"].as_array().unwrap();
    assert_eq!(facts.len(), 3);
    facts.iter().for_each(|entry| check_view(entry, &expected));
    let (status, answer) = get_json(
        &server,
        &format!(
            "/v1/facts/{}/successors?type={ORDER}&as_version=7",
            written.customer
        ),
    );
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("unknown_schema"))
    );

    // The log: facts of other types (the customer, the schemas) as stored.
    let (status, page) = get_json(&server, "/v1/log?as_version=3&limit=100");
    assert_eq!(status, 200, "{page}");
    let mut orders = 0;
    for entry in page["facts"].as_array().unwrap() {
        if entry["fact"]["type"] == ORDER {
            orders += 1;
            check_view(entry, &expected);
        } else {
            assert!(entry.get("upcast").is_none(), "{entry}");
        }
    }
    assert_eq!(orders, 3);

    // A subscription's pull.
    let (status, view) = put_subscription(
        &server,
        "orders-v3",
        json!({"type": ORDER, "as_version": 3}),
    );
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["as_version"], 3);
    let messages = pull(&server, "orders-v3", 10, 5_000);
    assert_eq!(messages.len(), 3);
    messages
        .iter()
        .for_each(|message| check_view(message, &expected));
    // A version the type lacks is refused when the subscription is defined.
    let (status, answer) = put_subscription(
        &server,
        "orders-v9",
        json!({"type": ORDER, "as_version": 9}),
    );
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_definition"))
    );

    // A subscription's stream.
    let (status, _) = put_subscription(
        &server,
        "orders-stream",
        json!({"type": ORDER, "as_version": 3}),
    );
    assert_eq!(status, 201);
    let frames = stream_messages(&server, "orders-stream", 3);
    frames
        .iter()
        .for_each(|message| check_view(message, &expected));
}

/// The first `n` messages of a subscription's stream.
fn stream_messages(server: &Server, name: &str, n: usize) -> Vec<Value> {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!(
        "{}/v1/subscriptions/{name}/stream",
        server.base.replacen("http://", "ws://", 1)
    );
    runtime.block_on(async move {
        let (mut socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connects");
        socket
            .send(Message::Text(json!({"credit": n}).to_string().into()))
            .await
            .expect("sends credit");
        let mut messages = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while messages.len() < n {
            let frame = tokio::time::timeout_at(deadline, socket.next())
                .await
                .expect("a message within 10 s")
                .expect("the stream is open")
                .expect("a frame");
            if let Message::Text(text) = frame {
                let value: Value = serde_json::from_str(text.as_str()).expect("JSON");
                messages.push(value["message"].clone());
            }
        }
        messages
    })
}

#[test]
fn require_schemas_refuses_types_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--require-schemas"]);
    let order = fact(ORDER, json!({"id": "o-1"}), json!({}));
    let (status, answer) = post_facts(&server, std::slice::from_ref(&order));
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("schema_required")),
        "{answer}"
    );
    assert_eq!(
        get_json(&server, &format!("/v1/facts/{}", fact_hash(&order))).0,
        404
    );
    assert_eq!(put_schema(&server, ORDER, "1", &order_v1()).0, 201);
    assert_eq!(post_facts(&server, &[order]).0, 200);
}

#[test]
fn bad_registrations_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let with_schema = |schema: Value| json!({"schema": schema, "compatibility": "none"});
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        ("not a schema", "1", with_schema(json!({"type": 5})).to_string(), 400, "invalid_schema"),
        ("remote ref", "1", with_schema(json!({"$ref": "https://example.com/s.json"})).to_string(), 400, "invalid_schema"),
        ("relative ref", "1", with_schema(json!({"$ref": "other.json#/a"})).to_string(), 400, "invalid_schema"),
        (
            "a ref cycle",
            "1",
            with_schema(json!({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"})).to_string(),
            400,
            "invalid_schema",
        ),
        ("another draft", "1", with_schema(json!({"$schema": "http://json-schema.org/draft-04/schema#"})).to_string(), 400, "invalid_schema"),
        ("a schema of the wrong kind", "1", json!({"schema": 5, "compatibility": "none"}).to_string(), 400, "invalid_schema"),
        ("an unknown compatibility", "1", json!({"schema": {}, "compatibility": "sideways"}).to_string(), 400, "invalid_schema"),
        ("an unknown member", "1", json!({"schema": {}, "compatibility": "none", "extra": 1}).to_string(), 400, "invalid_schema"),
        ("no compatibility", "1", json!({"schema": {}}).to_string(), 400, "invalid_schema"),
        ("an unknown upcast", "1", json!({"schema": {}, "compatibility": "none", "upcast": [{"op": "eval", "code": "x"}]}).to_string(), 400, "invalid_schema"),
        ("an upcast on version 1", "1", json!({"schema": {}, "compatibility": "none", "upcast": [{"op": "rename", "from": "/a", "to": "/b"}]}).to_string(), 400, "invalid_schema"),
        ("a bad role", "1", json!({"schema": {}, "compatibility": "none", "predecessors": {"1x": {}}}).to_string(), 400, "invalid_schema"),
        ("a bad role pattern", "1", json!({"schema": {}, "compatibility": "none", "predecessors": {"a": {"types": ["a b"]}}}).to_string(), 400, "invalid_schema"),
        ("malformed JSON", "1", "{\"schema\": ".to_string(), 400, "malformed_json"),
        ("a duplicate key", "1", "{\"schema\": {}, \"schema\": {}, \"compatibility\": \"none\"}".to_string(), 400, "duplicate_key"),
        ("a huge body", "1", with_schema(json!({"description": "x".repeat(70_000)})).to_string(), 413, "request_too_large"),
        ("version 0", "0", with_schema(json!({})).to_string(), 400, "invalid_parameter"),
        ("version text", "one", with_schema(json!({})).to_string(), 400, "invalid_parameter"),
    ];
    let seq = last_seq(&server);
    for (what, version, body, status, code) in cases {
        let (answered, answer) = put_schema_raw(&server, ORDER, version, body);
        assert_eq!(
            (answered, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{what}: {answer}"
        );
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    for (type_name, status, code) in [
        ("Cairn.Schema", 400, "reserved_type"),
        ("1bad", 400, "invalid_type"),
    ] {
        let (answered, answer) = put_schema(&server, type_name, "1", &with_schema(json!({})));
        assert_eq!(
            (answered, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{answer}"
        );
    }
    assert_eq!(last_seq(&server), seq, "nothing was stored");
    assert_eq!(get_json(&server, &format!("/v1/schemas/{ORDER}")).0, 404);
    // Bad as_version parameters.
    let customer = put_one(&server, fact("Shop.Customer", json!({}), json!({})));
    for bad in ["0", "x", "-1", "99999999999"] {
        let (status, answer) = get_json(&server, &format!("/v1/facts/{customer}?as_version={bad}"));
        assert_eq!(status, 400, "as_version={bad}: {answer}");
    }
}

/// On PostgreSQL: a schema registered through one server is enforced by
/// another within its refresh interval (1 s), and a version registered
/// through one server is read through another at once (a miss reads
/// the store).
#[test]
fn servers_of_one_database_share_the_schemas() {
    if !on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(dir.path(), &[]);
    let second = Server::start(dir.path(), &[]);
    assert_eq!(put_schema(&first, ORDER, "1", &order_v1()).0, 201);
    assert_eq!(put_schema(&first, ORDER, "2", &order_v2()).0, 201);
    // A v2 fact written through the second server at once: a miss reads
    // the store.
    let (status, answer) = post_facts(
        &second,
        &[fact(
            ORDER,
            json!({"id": "bad", "cairn_version": 2}),
            json!({}),
        )],
    );
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("schema_violation")),
        "{answer}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, answer) = post_facts(&second, &[fact(ORDER, json!({"id": "bad"}), json!({}))]);
        if status == 422 {
            assert_eq!(answer["error"]["code"], "schema_violation");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second server never enforced the schema"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
