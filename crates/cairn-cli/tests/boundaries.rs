//! Service boundaries end to end, against the real binary with `--auth`:
//! three services (shop, billing, shipping) with their own tokens
//! register their declarations with `cairn services register`, write and
//! consume; `cairn boundaries check` passes; then billing writes shop's
//! type and the check exits 1 naming it, also after a restart (the flows
//! are facts). The map prints as a table, Mermaid and DOT; a request
//! cycle is caught; bad declarations (malformed TOML, unknown members,
//! oversized or hostile bodies, invalid or unknown types, a non-admin
//! token) are refused and change nothing; without `--auth` nothing is
//! observed and the answer says so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{http, offline_store_args, run_cli, Server};
use serde_json::{json, Value};

/// What `cairn ARGS...` printed and its exit status.
struct Exit {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn cairn(args: &[&str]) -> Exit {
    let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cairn runs");
    Exit {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
    }
}

/// Creates an identity offline in the store of `data` (no server runs).
fn bootstrap_admin(data: &Path) -> String {
    let store_args = offline_store_args(data);
    let mut args = vec!["tokens", "create", "--name", "admin", "--admin"];
    args.extend(store_args.iter().map(String::as_str));
    let output = run_cli(&args, "");
    assert!(output.success, "tokens create failed: {}", output.stderr);
    output.stdout.lines().last().expect("a token").to_string()
}

/// Creates an identity over HTTP with the CLI; answers its token.
fn create_identity(server: &Server, admin: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "tokens",
        "create",
        "--server",
        &server.base,
        "--token",
        admin,
    ];
    args.extend(extra);
    let output = run_cli(&args, "");
    assert!(output.success, "tokens create failed: {}", output.stderr);
    output.stdout.lines().last().expect("a token").to_string()
}

/// Sends a request with a token; answers status and JSON body.
fn send(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = http().request(method, server.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().expect("server answers");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

/// `PUT /v1/services/{name}` with raw bytes and a content type.
fn put_raw(
    server: &Server,
    name: &str,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let response = http()
        .put(server.url(&format!("/v1/services/{name}")))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .expect("server answers");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// Writes one fact as `token`; answers its hash.
fn write(server: &Server, token: &str, fact: Value) -> String {
    let (status, answer) = send(
        server,
        "POST",
        "/v1/facts",
        token,
        Some(json!({"facts": [fact]})),
    );
    assert_eq!(status, 200, "{answer}");
    answer["results"][0]["hash"]
        .as_str()
        .expect("a hash")
        .to_string()
}

fn declaration_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("declaration written");
    path
}

/// `cairn services register FILE` with `token`.
fn register(server: &Server, token: &str, file: &Path, extra: &[&str]) -> Exit {
    let file = file.to_str().expect("utf-8 path");
    let mut args = vec![
        "services",
        "register",
        file,
        "--server",
        &server.base,
        "--token",
        token,
    ];
    args.extend(extra);
    cairn(&args)
}

fn boundaries(server: &Server, token: &str, extra: &[&str]) -> Exit {
    let mut args = vec!["boundaries"];
    args.extend(extra);
    args.extend(["--server", &server.base, "--token", token]);
    cairn(&args)
}

fn check(server: &Server, token: &str) -> Exit {
    let args = [
        "boundaries",
        "check",
        "--server",
        &server.base,
        "--token",
        token,
    ];
    cairn(&args)
}

/// The current declarations, as the admin sees them.
fn services(server: &Server, admin: &str) -> Value {
    let (status, answer) = send(server, "GET", "/v1/services", admin, None);
    assert_eq!(status, 200, "{answer}");
    answer
}

const SHOP: &str = r#"
name = "shop"
identity = "shop-svc"
description = "Takes orders"
owns = ["Shop.Order"]
"#;

const BILLING: &str = r#"
name = "billing"
identity = "billing-svc"
owns = ["Billing.Invoice"]
consumes = ["Shop.Order"]
"#;

const SHIPPING_JSON: &str = r#"{
  "name": "shipping",
  "identity": "shipping-svc",
  "consumes": ["Shop.Order", "Billing.Invoice"]
}"#;

#[test]
fn three_services_pass_the_check_until_one_writes_another_s_type() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let admin = bootstrap_admin(dir.path());
    let mut server = Server::start(dir.path(), &["--auth"]);
    let shop = create_identity(
        &server,
        &admin,
        &["--name", "shop-svc", "--write", "Shop.*", "--read", "*"],
    );
    // Billing may write anything: permissions alone would not stop it
    // from writing shop's orders — which is what the check is for.
    let billing = create_identity(
        &server,
        &admin,
        &[
            "--name",
            "billing-svc",
            "--write",
            "*",
            "--read",
            "*",
            "--subscribe",
            "billing-orders",
        ],
    );
    let shipping = create_identity(
        &server,
        &admin,
        &[
            "--name",
            "shipping-svc",
            "--read",
            "*",
            "--subscribe",
            "shipping-orders",
        ],
    );

    // Nothing was written yet: shop's type is unknown, and nothing changes.
    let shop_file = declaration_file(files.path(), "shop.toml", SHOP);
    let refused = register(&server, &admin, &shop_file, &[]);
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("unknown_type") && refused.stderr.contains("Shop.Order"),
        "{}",
        refused.stderr
    );
    assert_eq!(services(&server, &admin)["services"], json!([]));
    // A first deployment says so.
    let registered = register(&server, &admin, &shop_file, &["--allow-unknown-types"]);
    assert_eq!(registered.code, Some(0), "{}", registered.stderr);
    let view: Value = serde_json::from_str(&registered.stdout).expect("JSON");
    assert_eq!(view["declaration"]["owns"], json!(["Shop.Order"]));
    let registered_at_ms = view["registered_at_ms"].clone();
    // The same declaration again changes nothing, its time included.
    let again = register(&server, &admin, &shop_file, &[]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    let again: Value = serde_json::from_str(&again.stdout).expect("JSON");
    assert_eq!(again["registered_at_ms"], registered_at_ms);
    assert_eq!(again["fact"], view["fact"]);

    // Traffic: shop writes an order, billing consumes it through its
    // subscription and writes an invoice, shipping consumes both.
    for (name, type_name) in [
        ("billing-orders", "Shop.Order"),
        ("shipping-orders", "Shop.Order"),
    ] {
        let (status, answer) = send(
            &server,
            "PUT",
            &format!("/v1/subscriptions/{name}"),
            &admin,
            Some(json!({"type": type_name})),
        );
        assert_eq!(status, 201, "{answer}");
    }
    let order = write(
        &server,
        &shop,
        json!({"type": "Shop.Order", "fields": {"n": 1}, "predecessors": {}}),
    );
    let pull = |name: &str, token: &str| {
        let (status, answer) = send(
            &server,
            "POST",
            &format!("/v1/subscriptions/{name}/pull"),
            token,
            Some(json!({"max": 10, "wait_ms": 5000})),
        );
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["messages"].as_array().map(Vec::len),
            Some(1),
            "{answer}"
        );
    };
    pull("billing-orders", &billing);
    write(
        &server,
        &billing,
        json!({"type": "Billing.Invoice", "fields": {"n": 1}, "predecessors": {"order": order}}),
    );
    pull("shipping-orders", &shipping);
    let (status, page) = send(
        &server,
        "GET",
        &format!("/v1/facts/{order}/successors?type=Billing.Invoice"),
        &shipping,
        None,
    );
    assert_eq!(
        (status, page["facts"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{page}"
    );

    // Billing's invoice was written, so its declaration needs no flag;
    // shipping's (JSON) names only known types.
    let billing_file = declaration_file(files.path(), "billing.toml", BILLING);
    let shipping_file = declaration_file(files.path(), "cairn-service.json", SHIPPING_JSON);
    for file in [&billing_file, &shipping_file] {
        let exit = register(&server, &admin, file, &[]);
        assert_eq!(exit.code, Some(0), "{}", exit.stderr);
    }
    let listed = cairn(&[
        "services",
        "list",
        "--server",
        &server.base,
        "--token",
        &admin,
    ]);
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    for name in ["shop", "billing", "shipping"] {
        assert!(listed.stdout.contains(name), "{}", listed.stdout);
    }

    let passed = check(&server, &admin);
    assert_eq!(passed.code, Some(0), "{}{}", passed.stdout, passed.stderr);
    assert_eq!(passed.stdout, "no violations\n");

    // An operator looking around (a successors query, as the console
    // does) is not a consumer: admins' reads are not observed.
    let root = "ab".repeat(32);
    let (status, _) = send(
        &server,
        "GET",
        &format!("/v1/facts/{root}/successors?type=Billing.Invoice"),
        &admin,
        None,
    );
    assert_eq!(status, 200);

    // The map: every declared flow was seen.
    let (status, map) = send(&server, "GET", "/v1/boundaries", &admin, None);
    assert_eq!(status, 200, "{map}");
    assert!(
        !map["flows"]
            .as_array()
            .expect("flows")
            .iter()
            .any(|f| f["identity"] == "admin"),
        "{map}"
    );
    assert_eq!(map["observing"], true);
    assert_eq!(map["violations"], json!([]));
    let edges = map["edges"].as_array().expect("edges");
    let edge = |from: &str, to: &str, type_name: &str| {
        edges
            .iter()
            .find(|e| e["from"] == from && e["to"] == to && e["type"] == type_name)
            .unwrap_or_else(|| panic!("no edge {from} -> {to} {type_name}: {map}"))
    };
    for (from, to, type_name) in [
        ("shop", "billing", "Shop.Order"),
        ("shop", "shipping", "Shop.Order"),
        ("billing", "shipping", "Billing.Invoice"),
    ] {
        let found = edge(from, to, type_name);
        assert_eq!(
            (found["declared"].clone(), found["seen"].clone()),
            (json!(true), json!(true))
        );
    }
    let flows = map["flows"].as_array().expect("flows");
    assert!(flows.iter().any(|f| f["identity"] == "shipping-svc"
        && f["kind"] == "consumes"
        && f["type"] == "Billing.Invoice"
        && f["service"] == "shipping"));

    // Billing quietly writes shop's type.
    write(
        &server,
        &billing,
        json!({"type": "Shop.Order", "fields": {"n": 2}, "predecessors": {}}),
    );
    let failed = check(&server, &admin);
    assert_eq!(failed.code, Some(1), "{}{}", failed.stdout, failed.stderr);
    let lines: Vec<&str> = failed.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", failed.stdout);
    assert!(
        lines[0].starts_with(
            "writer_does_not_own: identity billing-svc (service billing) wrote Shop.Order"
        ),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("owned by shop"), "{}", lines[0]);

    // The map in each format.
    let mermaid = boundaries(&server, &admin, &["--format", "mermaid"]);
    assert_eq!(mermaid.code, Some(0), "{}", mermaid.stderr);
    let mermaid_lines: Vec<&str> = mermaid.stdout.lines().collect();
    assert_eq!(mermaid_lines[0], "flowchart LR");
    for line in &mermaid_lines[1..] {
        let line = line.trim();
        let node = line.starts_with('n') && line.ends_with("\"]") && line.contains("[\"");
        let arrow = ["-->|", "-.->|", "==>|"]
            .iter()
            .any(|arrow| line.contains(arrow));
        assert!(node || arrow, "not a node or an edge: {line}");
    }
    assert!(
        mermaid.stdout.contains("==>|\"Shop.Order (undeclared)\"|"),
        "{}",
        mermaid.stdout
    );
    let dot = boundaries(&server, &admin, &["--format", "dot"]);
    assert_eq!(dot.code, Some(0), "{}", dot.stderr);
    assert!(dot.stdout.starts_with("digraph boundaries {") && dot.stdout.trim_end().ends_with('}'));
    assert_eq!(
        dot.stdout.matches('{').count(),
        dot.stdout.matches('}').count()
    );
    assert!(
        dot.stdout
            .contains("\"billing\" -> \"shipping\" [label=\"Shop.Order (undeclared)\""),
        "{}",
        dot.stdout
    );
    let table = boundaries(&server, &admin, &["--unseen-for", "1d"]);
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    assert!(
        table.stdout.contains("1 violations:") && table.stdout.contains("writer_does_not_own"),
        "{}",
        table.stdout
    );
    let as_json = boundaries(&server, &admin, &["--format", "json"]);
    let as_json: Value = serde_json::from_str(&as_json.stdout).expect("JSON");
    assert_eq!(as_json["unseen_for_ms"], 7 * 86_400_000u64);

    // The flows are facts: after a restart the misbehaviour is still there.
    server.terminate();
    let server = Server::start(dir.path(), &["--auth"]);
    let after = check(&server, &admin);
    assert_eq!(after.code, Some(1), "{}{}", after.stdout, after.stderr);
    assert!(
        after
            .stdout
            .starts_with("writer_does_not_own: identity billing-svc"),
        "{}",
        after.stdout
    );
    let (_, map) = send(&server, "GET", "/v1/boundaries", &admin, None);
    assert_eq!(
        map["flows"].as_array().map(Vec::len),
        Some(flows.len() + 1),
        "{map}"
    );

    // Only an admin sees or changes declarations and the map.
    let before = services(&server, &admin);
    for (method, path, body) in [
        ("GET", "/v1/services", None),
        ("GET", "/v1/services/shop", None),
        ("GET", "/v1/boundaries", None),
        (
            "PUT",
            "/v1/services/shop",
            Some(json!({"name": "shop", "identity": "billing-svc"})),
        ),
    ] {
        let (status, answer) = send(&server, method, path, &billing, body);
        assert_eq!(
            (status, code(&answer)),
            (403, "forbidden"),
            "{method} {path}: {answer}"
        );
    }
    let refused = check(&server, &billing);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(refused.stderr.contains("forbidden"), "{}", refused.stderr);
    assert_eq!(services(&server, &admin), before);
}

#[test]
fn request_cycles_and_bad_declarations() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let admin = bootstrap_admin(dir.path());
    let server = Server::start(dir.path(), &["--auth"]);

    // Quotes asks pricing for a price; pricing asks quotes for a quote.
    let quotes = declaration_file(
        files.path(),
        "quotes.toml",
        "name = \"quotes\"\nidentity = \"quotes-svc\"\nowns = [\"Quote.Reply\"]\nrequests = [\"Price.Ask\"]\nanswers = [\"Quote.Ask\"]\n",
    );
    let pricing = declaration_file(
        files.path(),
        "pricing.toml",
        "name = \"pricing\"\nidentity = \"pricing-svc\"\nowns = [\"Price.Reply\"]\nrequests = [\"Quote.Ask\"]\nanswers = [\"Price.Ask\"]\n",
    );
    for file in [&quotes, &pricing] {
        let exit = register(&server, &admin, file, &["--allow-unknown-types"]);
        assert_eq!(exit.code, Some(0), "{}", exit.stderr);
    }
    let found = check(&server, &admin);
    assert_eq!(found.code, Some(1), "{}{}", found.stdout, found.stderr);
    assert_eq!(found.stdout.lines().count(), 1, "{}", found.stdout);
    assert!(
        found.stdout.starts_with(
            "request_cycle: services pricing, quotes request from each other in a cycle"
        ),
        "{}",
        found.stdout
    );
    assert!(
        found.stdout.contains("quotes → pricing (Price.Ask)"),
        "{}",
        found.stdout
    );

    let before = services(&server, &admin);
    // Malformed TOML, an unknown key, an invalid type: refused by the CLI.
    for (name, text, expected) in [
        ("broken.toml", "name = \"x\nidentity = ", "invalid TOML"),
        (
            "extra.toml",
            "name = \"x\"\nidentity = \"x\"\ncolour = \"red\"\n",
            "unknown field",
        ),
        (
            "type.toml",
            "name = \"x\"\nidentity = \"x\"\nowns = [\"Bad..Type\"]\n",
            "owns:",
        ),
    ] {
        let file = declaration_file(files.path(), name, text);
        let exit = register(&server, &admin, &file, &["--allow-unknown-types"]);
        assert_eq!(exit.code, Some(1), "{name}: {}", exit.stdout);
        assert!(exit.stderr.contains(expected), "{name}: {}", exit.stderr);
    }
    // A file too large to be a declaration is not read.
    let huge = declaration_file(files.path(), "huge.toml", &"# padding\n".repeat(10_000));
    let exit = register(&server, &admin, &huge, &[]);
    assert!(
        exit.code == Some(1) && exit.stderr.contains("at most"),
        "{}",
        exit.stderr
    );

    // The same, and hostile bodies, straight to the server.
    let many: Vec<String> = (0..300).map(|n| format!("T.N{n}")).collect();
    let nested = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let cases: Vec<(&str, String, &str, u16, &str)> = vec![
        (
            "x",
            r#"{"name":"x","identity":"x","colour":1}"#.into(),
            "application/json",
            400,
            "invalid_service",
        ),
        (
            "x",
            r#"{"name":"x","identity":"x","owns":["Bad..Type"]}"#.into(),
            "application/json",
            400,
            "invalid_service",
        ),
        (
            "x",
            r#"{"name":"x","identity":"x","owns":["Cairn.Claimed"]}"#.into(),
            "application/json",
            400,
            "invalid_service",
        ),
        (
            "x",
            r#"{"name":"y","identity":"x"}"#.into(),
            "application/json",
            400,
            "invalid_service",
        ),
        (
            "x",
            json!({"name": "x", "identity": "x", "consumes": many}).to_string(),
            "application/json",
            400,
            "invalid_service",
        ),
        (
            "bad-name",
            r#"{"name":"bad-name","identity":"x"}"#.into(),
            "application/json",
            400,
            "invalid_service",
        ),
        (
            "x",
            r#"{"name":"x","name":"x","identity":"x"}"#.into(),
            "application/json",
            400,
            "duplicate_key",
        ),
        (
            "x",
            format!(r#"{{"name":"x","identity":"x","description":{nested}}}"#),
            "application/json",
            400,
            "nesting_too_deep",
        ),
        (
            "x",
            "{\"name\": \"x\"".into(),
            "application/json",
            400,
            "malformed_json",
        ),
        (
            "x",
            r#"{"name":"x","identity":"x"}"#.into(),
            "text/plain",
            415,
            "unsupported_media_type",
        ),
        (
            "x",
            format!(
                r#"{{"name":"x","identity":"x","description":"{}"}}"#,
                "a".repeat(70_000)
            ),
            "application/json",
            413,
            "request_too_large",
        ),
        (
            "x",
            r#"{"name":"x","identity":"x","consumes":["Never.Written"]}"#.into(),
            "application/json",
            422,
            "unknown_type",
        ),
    ];
    for (name, body, content_type, status, expected) in cases {
        let (got, answer) = put_raw(
            &server,
            name,
            &admin,
            content_type,
            body.clone().into_bytes(),
        );
        assert_eq!(
            (got, code(&answer)),
            (status, expected),
            "{}: {answer}",
            &body[..body.len().min(80)]
        );
        if expected == "unknown_type" {
            assert_eq!(answer["error"]["types"], json!(["Never.Written"]));
        }
    }
    let (status, answer) = send(&server, "GET", "/v1/services/nobody", &admin, None);
    assert_eq!((status, code(&answer)), (404, "unknown_service"));
    let (status, answer) = send(
        &server,
        "GET",
        "/v1/boundaries?unseen_for_ms=0",
        &admin,
        None,
    );
    assert_eq!(
        (status, code(&answer)),
        (400, "parameter_out_of_range"),
        "{answer}"
    );
    assert_eq!(
        services(&server, &admin),
        before,
        "a refused declaration changed nothing"
    );
}

#[test]
fn without_auth_nothing_is_observed_and_the_answer_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, answer) = http()
        .put(server.url("/v1/services/shop?allow_unknown_types=true"))
        .json(&json!({"name": "shop", "identity": "shop-svc", "owns": ["Shop.Order"]}))
        .send()
        .map(|response| {
            (
                response.status().as_u16(),
                response.json::<Value>().unwrap_or(Value::Null),
            )
        })
        .expect("server answers");
    assert_eq!(status, 201, "{answer}");
    common::put_one(
        &server,
        json!({"type": "Shop.Order", "fields": {}, "predecessors": {}}),
    );
    let exit = cairn(&["boundaries", "check", "--server", &server.base]);
    assert_eq!(exit.code, Some(0), "{}{}", exit.stdout, exit.stderr);
    assert!(
        exit.stdout.contains("no violations") && exit.stdout.contains("without --auth"),
        "{}",
        exit.stdout
    );
    let (_, map) = common::get_json(&server, "/v1/boundaries");
    assert_eq!(
        (map["observing"].clone(), map["flows"].clone()),
        (json!(false), json!([]))
    );
}

#[test]
fn an_unreachable_server_is_exit_status_2() {
    // A port nobody listens on (the discard port, closed on loopback).
    let exit = cairn(&["boundaries", "check", "--server", "http://127.0.0.1:9"]);
    assert_eq!(exit.code, Some(2), "{}", exit.stderr);
    assert!(exit.stderr.starts_with("error:"), "{}", exit.stderr);
}
