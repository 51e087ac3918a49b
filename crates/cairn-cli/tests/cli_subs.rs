//! `cairn subs` end to end: the real server binary on a free loopback port
//! and the real CLI binary, checked against what the server reports. A
//! message is driven to the dead letters with a direct HTTP nack (the CLI
//! has no nack command), then replayed and discarded through the CLI.

mod common;

use common::{fact, http, json_answer, put_one, run_cli, CliOutput, Server};
use serde_json::{json, Value};

/// Runs `cairn subs ARGS... --server BASE`.
fn subs(server: &Server, args: &[&str]) -> CliOutput {
    let mut full_args = vec!["subs"];
    full_args.extend_from_slice(args);
    full_args.extend_from_slice(&["--server", &server.base]);
    run_cli(&full_args, "")
}

/// Runs a `cairn subs` command that must succeed; returns its stdout.
fn subs_ok(server: &Server, args: &[&str]) -> String {
    let output = subs(server, args);
    assert!(
        output.success,
        "cairn subs {args:?} failed:\n{}",
        output.stderr
    );
    output.stdout
}

/// Runs a `cairn subs` command that must fail; returns its stderr.
fn subs_fails(server: &Server, args: &[&str]) -> String {
    let output = subs(server, args);
    assert!(
        !output.success,
        "cairn subs {args:?} succeeded:\n{}",
        output.stdout
    );
    output.stderr
}

/// `cairn subs show NAME`, parsed.
fn show(server: &Server, name: &str) -> Value {
    serde_json::from_str(&subs_ok(server, &["show", name])).expect("show prints JSON")
}

/// `cairn subs dead NAME [EXTRA...] --json`, the hashes listed.
fn dead_hashes(server: &Server, name: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["dead", name, "--json"];
    args.extend_from_slice(extra);
    let answer: Value = serde_json::from_str(&subs_ok(server, &args)).expect("dead prints JSON");
    answer["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|message| message["hash"].as_str().expect("hash").to_string())
        .collect()
}

/// POSTs a JSON body to a subscription path over HTTP.
fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    json_answer(
        http()
            .post(server.url(path))
            .json(&body)
            .send()
            .expect("server answers"),
    )
}

/// Pulls one message over HTTP and nacks it with `error`; with
/// `--max-attempts 1` that makes it a dead letter. Returns its hash.
fn pull_and_nack(server: &Server, name: &str, error: &str) -> String {
    let (status, answer) = post(
        server,
        &format!("/v1/subscriptions/{name}/pull"),
        json!({ "max": 1 }),
    );
    assert_eq!(status, 200, "pull failed: {answer}");
    let message = &answer["messages"][0];
    let (status, answer) = post(
        server,
        &format!("/v1/subscriptions/{name}/nack"),
        json!({ "tokens": [message["token"]], "error": error }),
    );
    assert_eq!(status, 200, "nack failed: {answer}");
    assert_eq!(answer["results"][0]["status"], "nacked");
    message["hash"].as_str().expect("hash").to_string()
}

/// The messages printed by `cairn subs pull`, one JSON object per line.
fn pulled(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

/// Splits `create`'s output into its status line and the view.
fn created(stdout: &str) -> (&str, Value) {
    let (status_line, view) = stdout.split_once('\n').expect("two parts");
    (
        status_line,
        serde_json::from_str(view).expect("the view is JSON"),
    )
}

#[test]
fn subscription_lifecycle_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let first = put_one(&server, fact("Shop.Order", json!({ "n": 1 }), json!({})));
    put_one(&server, fact("Shop.Other", json!({}), json!({})));
    let second = put_one(&server, fact("Shop.Order", json!({ "n": 2 }), json!({})));

    // Create is idempotent; a changed lease or attempts is an update (with
    // --if-generation, only over that generation); a changed start conflicts.
    let create = [
        "create",
        "orders",
        "--type",
        "Shop.Order",
        "--max-attempts",
        "1",
        "--lease-ms",
        "60000",
    ];
    let stdout = subs_ok(&server, &create);
    let (status_line, view) = created(&stdout);
    assert_eq!(status_line, "created");
    assert_eq!(view["name"], "orders");
    assert_eq!(view["max_attempts"], 1);
    assert_eq!(view["lease_ms"], 60000);
    assert_eq!(view["backlog"], 2);
    let stdout = subs_ok(&server, &create);
    assert_eq!(created(&stdout).0, "exists (same definition)");
    let mut update = create.to_vec();
    update[7] = "45000";
    update.extend(["--if-generation", "1"]);
    let stdout = subs_ok(&server, &update);
    let (status_line, view) = created(&stdout);
    assert_eq!(status_line, "updated to generation 2");
    assert_eq!(
        (&view["lease_ms"], &view["generation"]),
        (&json!(45000), &json!(2))
    );
    let stderr = subs_fails(&server, &update);
    assert!(stderr.contains("generation_mismatch"), "{stderr}");
    let stderr = subs_fails(
        &server,
        &[
            "create",
            "orders",
            "--type",
            "Shop.Order",
            "--max-attempts",
            "1",
            "--lease-ms",
            "45000",
            "--start",
            "now",
        ],
    );
    assert!(stderr.contains("subscription_conflict"), "{stderr}");
    assert!(stderr.contains("start"), "{stderr}");
    let stdout = subs_ok(
        &server,
        &["create", "late", "--type", "Shop.Order", "--start", "now"],
    );
    let (status_line, view) = created(&stdout);
    assert_eq!(status_line, "created");
    assert_eq!(view["start"], "now");
    assert_eq!(view["backlog"], 0);

    // List: a table by default, the server's answer with --json.
    let table = subs_ok(&server, &["list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("name") && lines[0].ends_with("oldest_unacked_age_ms"));
    let orders_row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        orders_row,
        [
            "orders",
            "Shop.Order",
            "2",
            "false",
            "2",
            "0",
            "0",
            "0",
            "0",
            "0"
        ]
    );
    let listed: Value = serde_json::from_str(&subs_ok(&server, &["list", "--json"])).unwrap();
    let names: Vec<&str> = listed["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|view| view["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["late", "orders"]);

    // Pull with --ack prints the message and acknowledges it.
    let messages = pulled(&subs_ok(&server, &["pull", "orders", "--ack"]));
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["hash"], first.as_str());
    assert_eq!(messages[0]["attempt"], 1);
    assert_eq!(messages[0]["fact"]["fields"]["n"], 1);
    let view = show(&server, "orders");
    assert_eq!(
        (view["acked"].as_u64(), view["backlog"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(view["in_flight"], 0);

    // A nack with max_attempts 1 makes a dead letter; `dead` shows it.
    assert_eq!(pull_and_nack(&server, "orders", "boom"), second);
    assert_eq!(show(&server, "orders")["dead"], 1);
    let table = subs_ok(&server, &["dead", "orders"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("seq") && lines[0].contains("dead_at"));
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!((row[1], row[2], row[4]), (second.as_str(), "1", "boom"));
    let dead_at = row[3];
    assert!(
        dead_at.len() >= 20 && &dead_at[10..11] == "T" && dead_at.ends_with('Z'),
        "dead_at is not RFC 3339 UTC: {dead_at}"
    );
    let answer: Value =
        serde_json::from_str(&subs_ok(&server, &["dead", "orders", "--json"])).unwrap();
    assert_eq!(answer["messages"][0]["last_error"], "boom");
    assert!(answer["messages"][0]["dead_at_ms"].as_u64().unwrap() > 0);

    // Replay all brings it back with fresh attempts.
    assert_eq!(subs_ok(&server, &["replay", "orders"]).trim(), "replayed 1");
    let view = show(&server, "orders");
    assert_eq!(
        (view["dead"].as_u64(), view["backlog"].as_u64()),
        (Some(0), Some(1))
    );
    let messages = pulled(&subs_ok(&server, &["pull", "orders"]));
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["hash"], second.as_str());
    assert_eq!(messages[0]["attempt"], 1);
    let (status, answer) = post(
        &server,
        "/v1/subscriptions/orders/nack",
        json!({ "tokens": [messages[0]["token"]], "error": "boom again" }),
    );
    assert_eq!(
        (status, &answer["results"][0]["status"]),
        (200, &json!("nacked"))
    );
    assert_eq!(dead_hashes(&server, "orders", &[]), vec![second.as_str()]);

    // Replay by hash: an unknown hash is not counted, the dead letter is.
    let unknown = "ab".repeat(32);
    assert_eq!(
        subs_ok(&server, &["replay", "orders", &unknown]).trim(),
        "replayed 0"
    );
    assert_eq!(
        subs_ok(&server, &["replay", "orders", &second, &unknown]).trim(),
        "replayed 1"
    );
    assert!(dead_hashes(&server, "orders", &[]).is_empty());
    assert_eq!(pull_and_nack(&server, "orders", "still broken"), second);

    // Discard keeps the record among the discarded ones.
    let answer: Value =
        serde_json::from_str(&subs_ok(&server, &["discard", "orders", &second])).unwrap();
    assert_eq!(answer["discarded"], true);
    assert!(dead_hashes(&server, "orders", &[]).is_empty());
    assert_eq!(
        dead_hashes(&server, "orders", &["--discarded"]),
        vec![second.as_str()]
    );
    let stderr = subs_fails(&server, &["discard", "orders", &second]);
    assert!(stderr.contains("not_a_dead_letter"), "{stderr}");

    // Pause and resume show in the view and in what pull delivers.
    let paused: Value = serde_json::from_str(&subs_ok(&server, &["pause", "orders"])).unwrap();
    assert_eq!(paused["paused"], true);
    assert_eq!(show(&server, "orders")["paused"], true);
    let third = put_one(&server, fact("Shop.Order", json!({ "n": 3 }), json!({})));
    assert_eq!(subs_ok(&server, &["pull", "orders", "--max", "5"]), "");
    let resumed: Value = serde_json::from_str(&subs_ok(&server, &["resume", "orders"])).unwrap();
    assert_eq!(resumed["paused"], false);
    let messages = pulled(&subs_ok(
        &server,
        &["pull", "orders", "--max", "5", "--wait-ms", "5000", "--ack"],
    ));
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["hash"], third.as_str());
    let view = show(&server, "orders");
    assert_eq!(
        (
            view["acked"].as_u64(),
            view["backlog"].as_u64(),
            view["paused"].as_bool()
        ),
        (Some(2), Some(0), Some(false))
    );

    // Delete: the subscription is gone.
    let answer: Value = serde_json::from_str(&subs_ok(&server, &["delete", "orders"])).unwrap();
    assert_eq!(answer["deleted"], true);
    let stderr = subs_fails(&server, &["show", "orders"]);
    assert!(stderr.contains("unknown_subscription"), "{stderr}");
    let listed: Value = serde_json::from_str(&subs_ok(&server, &["list", "--json"])).unwrap();
    assert_eq!(listed["subscriptions"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_input_fails_with_a_clear_message_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let hash = put_one(&server, fact("Shop.Order", json!({}), json!({})));

    for args in [
        vec!["show", "nope"],
        vec!["pull", "nope"],
        vec!["dead", "nope"],
        vec!["pause", "nope"],
        vec!["replay", "nope"],
        vec!["discard", "nope", hash.as_str()],
        vec!["delete", "nope"],
    ] {
        let stderr = subs_fails(&server, &args);
        assert!(
            stderr.contains("unknown_subscription"),
            "{args:?}: {stderr}"
        );
    }

    let uppercase = hash.to_uppercase();
    let predecessor_without_hash = "customer".to_string();
    let predecessor_bad_role = format!("9customer={hash}");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["discard", "orders", "xyz"], "64 lowercase hexadecimal"),
        (
            vec!["replay", "orders", &uppercase],
            "64 lowercase hexadecimal",
        ),
        (
            vec![
                "create",
                "orders",
                "--type",
                "Shop.Order",
                "--start",
                "later",
            ],
            "possible values: beginning, now",
        ),
        (
            vec!["create", "a/b", "--type", "Shop.Order"],
            "subscription name",
        ),
        (
            vec![
                "create",
                "orders",
                "--type",
                "Shop.Order",
                "--predecessor",
                &predecessor_without_hash,
            ],
            "ROLE=HASH",
        ),
        (
            vec![
                "create",
                "orders",
                "--type",
                "Shop.Order",
                "--predecessor",
                &predecessor_bad_role,
            ],
            "9customer",
        ),
        (
            vec![
                "create",
                "orders",
                "--type",
                "Shop.Order",
                "--lease-ms",
                "5",
            ],
            "lease_ms must be from",
        ),
        (
            vec![
                "create",
                "orders",
                "--type",
                "Shop.Order",
                "--max-in-flight-per-key",
                "2",
            ],
            "needs ordering_key",
        ),
        (
            vec!["create", "orders", "--type", "not a type"],
            "invalid definition",
        ),
        (vec!["pull", "orders", "--max", "0"], "--max"),
        (vec!["pull", "orders", "--wait-ms", "60001"], "--wait-ms"),
    ];
    for (args, expected) in cases {
        let stderr = subs_fails(&server, &args);
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in {stderr}"
        );
    }
    let listed: Value = serde_json::from_str(&subs_ok(&server, &["list", "--json"])).unwrap();
    assert_eq!(listed["subscriptions"], json!([]));

    // A server that is not there is reported as such.
    let output = run_cli(&["subs", "list", "--server", "http://127.0.0.1:1"], "");
    assert!(!output.success);
    assert!(
        output.stderr.contains("cannot reach the server"),
        "{}",
        output.stderr
    );
}
