//! The API additions of issue 17 (the web console's needs) end to end
//! against the real binary, on both backends (`CAIRN_TEST_BACKEND=postgres`
//! runs them on PostgreSQL): a fact's deliveries in every state a message
//! can be in, reading them changing nothing, dead-letter causes (the cause
//! of each letter, the `cause` filter with paging, the grouping), `whoami`,
//! and bad input to each that is refused and changes nothing.

mod common;

use common::*;
use serde_json::{json, Value};

/// `cairn_not_before` of the fact that must wait, and its time in ms.
const FAR_FUTURE: &str = "2099-01-01T00:00:00Z";
const FAR_FUTURE_MS: u64 = 4_070_908_800_000;
/// A nack delay that outlasts any test run.
const HOUR_MS: u64 = 3_600_000;

fn write(server: &Server, type_name: &str, fields: Value, predecessors: Value) -> String {
    put_one(server, fact(type_name, fields, predecessors))
}

fn deliveries(server: &Server, hash: &str) -> Value {
    let (status, answer) = get_json(server, &format!("/v1/facts/{hash}/deliveries"));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["hash"], hash, "{answer}");
    answer
}

/// The delivery of `hash` by subscription `name`.
fn delivery(server: &Server, hash: &str, name: &str) -> Value {
    let answer = deliveries(server, hash);
    answer["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|delivery| delivery["subscription"] == name)
        .unwrap_or_else(|| panic!("{name} does not list {hash}: {answer}"))
        .clone()
}

/// The counters of a subscription that only deliveries, acks and failures
/// move (not the time-dependent age).
fn counters(server: &Server, name: &str) -> Value {
    let (status, view) = get_json(server, &format!("/v1/subscriptions/{name}"));
    assert_eq!(status, 200, "{view}");
    let mut counters = json!({});
    for counter in [
        "backlog",
        "in_flight",
        "delivered",
        "redelivered",
        "acked",
        "dead",
        "discarded",
        "paused",
        "generation",
    ] {
        counters[counter] = view[counter].clone();
    }
    counters
}

/// Pulls exactly one message (the lowest ready one) and checks its hash.
fn pull_one(server: &Server, name: &str, hash: &str, attempt: u64) -> Value {
    let messages = pull(server, name, 1, 5_000);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["hash"], hash, "{messages:?}");
    assert_eq!(messages[0]["attempt"], attempt, "{messages:?}");
    messages[0].clone()
}

fn nack(server: &Server, name: &str, message: &Value, delay_ms: u64, error: Option<&str>) {
    let mut extra = json!({ "delay_ms": delay_ms });
    if let Some(error) = error {
        extra["error"] = json!(error);
    }
    assert_eq!(
        settle(server, name, "nack", std::slice::from_ref(message), extra),
        ["nacked"]
    );
}

/// Only the members that identify a delivery's state, for comparison.
fn state_of(delivery: &Value) -> Value {
    let mut state = delivery.clone();
    state.as_object_mut().unwrap().remove("subscription");
    state
}

#[test]
fn deliveries_show_every_state_of_a_message_and_reading_them_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let anchor = write(&server, "Console.Anchor", json!({"n": 0}), json!({}));
    let steps: Vec<String> = (0..6)
        .map(|n| {
            write(
                &server,
                "Console.Step",
                json!({ "n": n }),
                json!({"anchor": anchor}),
            )
        })
        .collect();
    let [acked, dead, discarded, retried, in_flight, pending] =
        <[String; 6]>::try_from(steps.clone()).unwrap();
    let definition = json!({
        "type": "Console.Step", "max_attempts": 2, "lease_ms": 600_000,
        "backoff": {"initial_ms": HOUR_MS, "max_ms": HOUR_MS},
    });
    assert_eq!(put_subscription(&server, "steps", definition).0, 201);
    // Selects by predecessor: the anchor named, or another one.
    let by_anchor =
        json!({"type": "Console.Step", "predecessor": {"role": "anchor", "hash": anchor}});
    assert_eq!(put_subscription(&server, "by-anchor", by_anchor).0, 201);
    let other_anchor =
        json!({"type": "Console.Step", "predecessor": {"role": "anchor", "hash": "0".repeat(64)}});
    assert_eq!(
        put_subscription(&server, "by-other-anchor", other_anchor).0,
        201
    );
    assert_eq!(
        put_subscription(&server, "other-type", json!({"type": "Console.Other"})).0,
        201
    );

    // Nothing delivered yet: pending, never tried.
    let first = deliveries(&server, &acked);
    assert_eq!(
        first["deliveries"],
        json!([
            {"subscription": "by-anchor", "state": "pending", "attempts": 0},
            {"subscription": "steps", "state": "pending", "attempts": 0},
        ]),
        "only the subscriptions that select the fact, by name: {first}"
    );
    assert!(first["seq"].as_u64().unwrap() > 0);

    // Acked.
    let message = pull_one(&server, "steps", &acked, 1);
    assert_eq!(
        settle(&server, "steps", "ack", &[message], json!({})),
        ["acked"]
    );
    // Dead: two failed attempts (the first retried at once).
    let message = pull_one(&server, "steps", &dead, 1);
    nack(&server, "steps", &message, 0, Some("boom 1"));
    let message = pull_one(&server, "steps", &dead, 2);
    nack(&server, "steps", &message, 0, Some("boom 2"));
    // Discarded: dead, then discarded.
    let message = pull_one(&server, "steps", &discarded, 1);
    nack(&server, "steps", &message, 0, Some("gone 1"));
    let message = pull_one(&server, "steps", &discarded, 2);
    nack(&server, "steps", &message, 0, None);
    let answer = http()
        .delete(server.url(&format!("/v1/subscriptions/steps/dead/{discarded}")))
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    // Retried: one failed attempt with an error, waiting an hour.
    let message = pull_one(&server, "steps", &retried, 1);
    nack(
        &server,
        "steps",
        &message,
        HOUR_MS,
        Some("payment 123 declined"),
    );
    // In flight: leased now.
    let leased = pull_one(&server, "steps", &in_flight, 1);

    let state = |hash: &str| state_of(&delivery(&server, hash, "steps"));
    assert_eq!(state(&acked), json!({"state": "acked", "attempts": 0}));
    let dead_state = state(&dead);
    assert_eq!(dead_state["state"], "dead", "{dead_state}");
    assert_eq!(dead_state["attempts"], 2, "{dead_state}");
    assert_eq!(dead_state["last_error"], "boom 2", "{dead_state}");
    assert!(
        dead_state["dead_at_ms"].as_u64().unwrap() > 0,
        "{dead_state}"
    );
    let discarded_state = state(&discarded);
    assert_eq!(discarded_state["state"], "discarded", "{discarded_state}");
    assert_eq!(discarded_state["attempts"], 2, "{discarded_state}");
    assert_eq!(
        discarded_state["last_error"], "gone 1",
        "a nack without error keeps the last one: {discarded_state}"
    );
    assert!(discarded_state["dead_at_ms"].as_u64().unwrap() > 0);
    let retried_state = state(&retried);
    assert_eq!(retried_state["state"], "pending", "{retried_state}");
    assert_eq!(retried_state["attempts"], 1, "{retried_state}");
    assert_eq!(retried_state["last_error"], "payment 123 declined");
    assert!(
        retried_state["not_before_ms"].as_u64().unwrap() > 0,
        "{retried_state}"
    );
    assert!(retried_state.get("dead_at_ms").is_none(), "{retried_state}");
    assert_eq!(
        state(&in_flight),
        json!({"state": "in_flight", "attempts": 1})
    );
    assert_eq!(state(&pending), json!({"state": "pending", "attempts": 0}));
    // The other subscription that selects them never pulled.
    for step in &steps {
        assert_eq!(
            state_of(&delivery(&server, step, "by-anchor")),
            json!({"state": "pending", "attempts": 0})
        );
    }

    // A subscription started after the facts: none of them is its message;
    // a fact after its start is (not delivered before its not-before time).
    let now_definition = json!({"type": "Console.Step", "start": "now"});
    assert_eq!(put_subscription(&server, "late-now", now_definition).0, 201);
    for step in &steps {
        assert_eq!(
            state_of(&delivery(&server, step, "late-now")),
            json!({"state": "not_selected_before_start", "attempts": 0})
        );
    }
    let waiting = write(
        &server,
        "Console.Step",
        json!({"n": 6, "cairn_not_before": FAR_FUTURE}),
        json!({}),
    );
    let answer = deliveries(&server, &waiting);
    assert_eq!(
        answer["deliveries"],
        json!([
            {"subscription": "late-now", "state": "pending", "attempts": 0, "not_before_ms": FAR_FUTURE_MS},
            {"subscription": "steps", "state": "pending", "attempts": 0, "not_before_ms": FAR_FUTURE_MS},
        ]),
        "{answer}"
    );

    // Reading leases nothing and counts nothing: the next pull gets the
    // pending message at its first attempt, and the lease still held
    // keeps working.
    let before = counters(&server, "steps");
    for _ in 0..3 {
        for step in &steps {
            deliveries(&server, step);
        }
    }
    assert_eq!(counters(&server, "steps"), before);
    assert_eq!(
        state(&in_flight),
        json!({"state": "in_flight", "attempts": 1})
    );
    pull_one(&server, "steps", &pending, 1);
    assert_eq!(
        settle(&server, "steps", "ack", &[leased], json!({})),
        ["acked"]
    );
    assert_eq!(state(&in_flight), json!({"state": "acked", "attempts": 0}));
}

#[test]
fn deliveries_refuse_bad_input_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let hash = write(&server, "Console.Step", json!({"n": 1}), json!({}));
    assert_eq!(
        put_subscription(&server, "steps", json!({"type": "Console.Step"})).0,
        201
    );
    let before = counters(&server, "steps");
    let absent = "0".repeat(64);
    for (path, status, code) in [
        (format!("/v1/facts/{absent}/deliveries"), 404, "not_found"),
        ("/v1/facts/abc/deliveries".to_string(), 400, "invalid_hash"),
        (
            format!("/v1/facts/{}/deliveries", hash.to_uppercase()),
            400,
            "invalid_hash",
        ),
        (format!("/v1/facts/{hash}0/deliveries"), 400, "invalid_hash"),
        (
            "/v1/facts/%FF%FE/deliveries".to_string(),
            400,
            "invalid_request",
        ),
        (
            format!("/v1/facts/{hash}/deliveries?limit=1"),
            400,
            "unknown_parameter",
        ),
        (
            format!("/v1/facts/{hash}/deliveries?subscription=steps"),
            400,
            "unknown_parameter",
        ),
    ] {
        let (actual, answer) = get_json(&server, &path);
        assert_eq!(
            (actual, answer["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{path}: {answer}"
        );
    }
    let answer = http()
        .post(server.url(&format!("/v1/facts/{hash}/deliveries")))
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 405);
    assert_eq!(counters(&server, "steps"), before);
    assert_eq!(pull(&server, "steps", 10, 2_000).len(), 1);
}

/// Makes `errors.len()` dead letters of subscription `name` (type
/// `type_name`, `max_attempts` 1), the n-th failing with `errors[n]`;
/// returns their hashes in `seq` order.
fn dead_letters(
    server: &Server,
    name: &str,
    type_name: &str,
    errors: &[Option<&str>],
) -> Vec<String> {
    let definition = json!({"type": type_name, "max_attempts": 1});
    assert_eq!(put_subscription(server, name, definition).0, 201);
    let hashes: Vec<String> = (0..errors.len())
        .map(|n| write(server, type_name, json!({ "n": n }), json!({})))
        .collect();
    for (hash, error) in hashes.iter().zip(errors) {
        let message = pull_one(server, name, hash, 1);
        nack(server, name, &message, 0, *error);
    }
    assert_eq!(counters(server, name)["dead"], errors.len() as u64);
    hashes
}

fn dead_page(server: &Server, name: &str, query: &str) -> Value {
    let (status, page) = get_json(server, &format!("/v1/subscriptions/{name}/dead?{query}"));
    assert_eq!(status, 200, "{query}: {page}");
    page
}

fn page_hashes(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|letter| letter["hash"].as_str().unwrap().to_string())
        .collect()
}

/// `text` percent-encoded for a query value (every byte but letters and
/// digits).
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

const TIMEOUT_CAUSE: &str = "timeout after <n>ms for order <uuid>";

#[test]
fn dead_letters_carry_their_cause_filter_on_it_and_group_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let hashes = dead_letters(
        &server,
        "payments",
        "Console.Payment",
        &[
            Some("timeout after 3000ms for order 550e8400-e29b-41d4-a716-446655440000"),
            Some("card 'x-1' refused"),
            Some("timeout after 45ms for order 6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
            None,
            Some("timeout  after 7ms for order 6ba7b811-9dad-11d1-80b4-00c04fd430c8 "),
        ],
    );

    // Every dead letter carries its cause.
    let all = dead_page(&server, "payments", "");
    let causes: Vec<&str> = all["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|letter| letter["cause"].as_str().unwrap())
        .collect();
    assert_eq!(
        causes,
        [
            TIMEOUT_CAUSE,
            "card <str> refused",
            TIMEOUT_CAUSE,
            "",
            TIMEOUT_CAUSE
        ]
    );
    let (status, one) = get_json(
        &server,
        &format!("/v1/subscriptions/payments/dead/{}", hashes[1]),
    );
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["cause"], "card <str> refused");
    assert_eq!(one["last_error"], "card 'x-1' refused");

    // Filtered by cause, with paging.
    let query = format!("cause={}", encoded(TIMEOUT_CAUSE));
    let page = dead_page(&server, "payments", &query);
    assert_eq!(
        page_hashes(&page),
        [hashes[0].as_str(), hashes[2].as_str(), hashes[4].as_str()]
    );
    let first = dead_page(&server, "payments", &format!("{query}&limit=2"));
    assert_eq!(
        page_hashes(&first),
        [hashes[0].as_str(), hashes[2].as_str()]
    );
    let next = first["next"].as_u64().unwrap();
    assert_eq!(next, first["messages"][1]["seq"].as_u64().unwrap());
    let second = dead_page(
        &server,
        "payments",
        &format!("{query}&limit=2&after={next}"),
    );
    assert_eq!(page_hashes(&second), [hashes[4].as_str()]);
    let after = second["next"].as_u64().unwrap();
    let end = dead_page(&server, "payments", &format!("{query}&after={after}"));
    assert_eq!(page_hashes(&end), Vec::<String>::new());
    assert_eq!(end["next"], after);
    // The empty cause is that of letters without error text.
    assert_eq!(
        page_hashes(&dead_page(&server, "payments", "cause=")),
        [hashes[3].as_str()]
    );
    // Discarded letters are filtered the same way.
    let discarded = http()
        .delete(server.url(&format!("/v1/subscriptions/payments/dead/{}", hashes[1])))
        .send()
        .unwrap();
    assert_eq!(discarded.status().as_u16(), 200);
    let card = format!("cause={}", encoded("card <str> refused"));
    assert_eq!(
        page_hashes(&dead_page(&server, "payments", &card)),
        Vec::<String>::new()
    );
    assert_eq!(
        page_hashes(&dead_page(
            &server,
            "payments",
            &format!("{card}&discarded=true")
        )),
        [hashes[1].as_str()]
    );

    // Grouped by cause, most frequent first, over the dead (not discarded).
    let (status, grouped) = get_json(&server, "/v1/subscriptions/payments/dead/causes");
    assert_eq!(status, 200, "{grouped}");
    assert_eq!(grouped["subscription"], "payments");
    assert_eq!(grouped["type"], "Console.Payment");
    assert_eq!(grouped["examined"], 4);
    assert_eq!(grouped["exact"], true);
    let causes = grouped["causes"].as_array().unwrap();
    assert_eq!(causes.len(), 2, "{grouped}");
    let timeout = &causes[0];
    assert_eq!(timeout["cause"], TIMEOUT_CAUSE);
    assert_eq!(timeout["count"], 3);
    assert_eq!(timeout["sample_hash"], hashes[0].as_str());
    assert_eq!(
        timeout["sample_error"],
        "timeout after 3000ms for order 550e8400-e29b-41d4-a716-446655440000"
    );
    let first_ms = timeout["first_dead_at_ms"].as_u64().unwrap();
    assert!(first_ms > 0 && first_ms <= timeout["last_dead_at_ms"].as_u64().unwrap());
    let silent = &causes[1];
    assert_eq!(silent["cause"], "");
    assert_eq!(silent["count"], 1);
    assert_eq!(silent["sample_hash"], hashes[3].as_str());
    assert!(silent.get("sample_error").is_none(), "{silent}");

    // An empty subscription has no causes.
    assert_eq!(
        put_subscription(&server, "quiet", json!({"type": "Console.Quiet"})).0,
        201
    );
    let (status, quiet) = get_json(&server, "/v1/subscriptions/quiet/dead/causes");
    assert_eq!(status, 200);
    assert_eq!(
        quiet,
        json!({"subscription": "quiet", "type": "Console.Quiet", "causes": [], "examined": 0, "exact": true})
    );
}

#[test]
fn dead_letter_causes_refuse_bad_input_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let hashes = dead_letters(&server, "payments", "Console.Payment", &[Some("boom 1")]);
    let before = counters(&server, "payments");
    let longest = "z".repeat(200);
    let too_long = "z".repeat(201);
    let too_long_wide = "é".repeat(201);
    for (query, status, code) in [
        (format!("cause={too_long}"), 400, "invalid_parameter"),
        (
            format!("cause={}", encoded(&too_long_wide)),
            400,
            "invalid_parameter",
        ),
        ("cause=a&cause=b".to_string(), 400, "invalid_parameter"),
        ("cause=boom&causes=x".to_string(), 400, "unknown_parameter"),
        ("Cause=boom".to_string(), 400, "unknown_parameter"),
        (
            "cause=boom&limit=0".to_string(),
            400,
            "parameter_out_of_range",
        ),
        ("cause=boom&after=-1".to_string(), 400, "invalid_parameter"),
    ] {
        let (actual, answer) =
            get_json(&server, &format!("/v1/subscriptions/payments/dead?{query}"));
        assert_eq!(
            (actual, answer["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{query}: {answer}"
        );
    }
    // Hostile values that are no cause simply match nothing.
    for value in [
        longest.as_str(),
        "%00%01",
        "%22%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "'%20OR%201%3D1%20--",
        "%E2%80%AE%F0%9F%92%A5",
        "boom%201",
        "%25",
    ] {
        let page = dead_page(&server, "payments", &format!("cause={value}"));
        assert_eq!(page["messages"], json!([]), "{value}: {page}");
        assert_eq!(
            page["next"],
            hashes_seq(&server, &hashes[0]),
            "{value}: {page}"
        );
    }
    assert_eq!(
        page_hashes(&dead_page(
            &server,
            "payments",
            &format!("cause={}", encoded("boom <n>"))
        )),
        [hashes[0].as_str()]
    );
    for (path, status, code) in [
        (
            "/v1/subscriptions/payments/dead/causes?limit=1",
            400,
            "unknown_parameter",
        ),
        (
            "/v1/subscriptions/nobody/dead/causes",
            404,
            "unknown_subscription",
        ),
        (
            "/v1/subscriptions/nobody/dead?cause=boom",
            404,
            "unknown_subscription",
        ),
        (
            "/v1/subscriptions/a%20b/dead/causes",
            404,
            "unknown_subscription",
        ),
    ] {
        let (actual, answer) = get_json(&server, path);
        assert_eq!(
            (actual, answer["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{path}: {answer}"
        );
    }
    let answer = http()
        .post(server.url("/v1/subscriptions/payments/dead/causes"))
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 405);
    assert_eq!(counters(&server, "payments"), before);
    assert_eq!(
        page_hashes(&dead_page(&server, "payments", "")),
        [hashes[0].as_str()]
    );
}

/// The `seq` of a stored fact.
fn hashes_seq(server: &Server, hash: &str) -> Value {
    let (status, answer) = get_json(server, &format!("/v1/facts/{hash}"));
    assert_eq!(status, 200, "{answer}");
    answer["seq"].clone()
}

#[test]
fn whoami_without_auth_allows_everything() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, answer) = get_json(&server, "/v1/whoami");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"auth": false, "identity": null, "permissions": {"admin": true}})
    );
    let (status, answer) = get_json(&server, "/v1/whoami?x=1");
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!("unknown_parameter"))
    );
}

#[test]
fn whoami_with_auth_answers_the_callers_own_permissions_and_never_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let store_args = offline_store_args(dir.path());
    let mut args = vec!["tokens", "create", "--name", "root", "--admin"];
    args.extend(store_args.iter().map(String::as_str));
    let output = run_cli(&args, "");
    assert!(output.success, "tokens create failed: {}", output.stderr);
    let root = output.stdout.lines().last().expect("a token").to_string();
    let server = Server::start(dir.path(), &["--auth"]);
    let whoami = |token: Option<&str>| {
        let mut request = http().get(server.url("/v1/whoami"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        json_answer(request.send().unwrap())
    };
    let (status, answer) = whoami(Some(&root));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"auth": true, "identity": "root", "permissions": {"admin": true}})
    );
    let permissions = json!({"read": ["Shop.*"], "subscribe": ["billing"]});
    let (status, created) = json_answer(
        http()
            .post(server.url("/v1/tokens"))
            .bearer_auth(&root)
            .json(&json!({"name": "billing", "permissions": permissions}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap();
    let (status, answer) = whoami(Some(token));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"auth": true, "identity": "billing", "permissions": permissions})
    );
    assert!(!answer.to_string().contains(token));
    for token in [
        None,
        Some("cairn_0000000000000000_00"),
        Some(&*"x".repeat(100)),
    ] {
        let (status, answer) = whoami(token);
        assert_eq!(
            (status, answer["error"]["code"].clone()),
            (401, json!("unauthenticated"))
        );
    }
}
