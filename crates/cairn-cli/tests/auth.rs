//! Access control end to end, against the real binary (and, with
//! `CAIRN_TEST_BACKEND=postgres`, on PostgreSQL): bootstrapping an admin
//! offline, 401 and 403 with nothing changed, reads that leak nothing,
//! subscriptions authorized by their stored definition, revocation ending
//! long-polls, rotation with an overlap, expiry, rate limits, authorship,
//! the audit trail across a restart, hostile headers and a bounded
//! brute-force loop, and the refusal to serve beyond loopback without
//! `--auth`.

mod common;

use std::time::{Duration, Instant};

use common::{http, offline_store_args, run_cli, Server};
use serde_json::{json, Value};

/// Creates an identity offline in the store of `data` (its server is not
/// running) and answers the token: the last line of standard output.
fn bootstrap(data: &std::path::Path, extra: &[&str]) -> String {
    let store_args = offline_store_args(data);
    let mut args = vec!["tokens", "create"];
    args.extend(store_args.iter().map(String::as_str));
    args.extend(extra);
    let output = run_cli(&args, "");
    assert!(output.success, "tokens create failed: {}", output.stderr);
    output
        .stdout
        .lines()
        .last()
        .expect("a token line")
        .to_string()
}

/// Creates an identity over HTTP with the CLI and `admin`'s token.
fn create(server: &Server, admin: &str, extra: &[&str]) -> String {
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
    output
        .stdout
        .lines()
        .last()
        .expect("a token line")
        .to_string()
}

fn fact(type_name: &str, label: &str) -> Value {
    json!({"type": type_name, "fields": {"label": label}, "predecessors": {}})
}

/// Sends a request with an optional bearer token; answers status, headers
/// and JSON body (`Null` if the body is not JSON).
fn send(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = http().request(method, server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().expect("server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().unwrap_or(Value::Null);
    (status, headers, body)
}

fn post_facts(server: &Server, token: &str, facts: &[Value]) -> (u16, Value) {
    let (status, _, body) = send(
        server,
        "POST",
        "/v1/facts",
        Some(token),
        Some(json!({ "facts": facts })),
    );
    (status, body)
}

/// The `seq` of the last fact in the log, and of the last one a request
/// wrote: `Cairn.Flow*` facts are left out of the latter, as the server
/// records the flows of the service boundaries in the background after
/// an identity's successful read or write, so they may land at any time.
fn last_seqs(server: &Server, admin: &str) -> (u64, u64) {
    let (status, _, body) = send(server, "GET", "/v1/log?limit=1000", Some(admin), None);
    assert_eq!(status, 200, "{body}");
    let facts = body["facts"].as_array().expect("facts");
    assert!(facts.len() < 1000, "the log outgrew one page");
    let seq = |stored: &Value| stored["seq"].as_u64().expect("seq");
    let last = facts.last().map_or(0, seq);
    let last_written = facts
        .iter()
        .rfind(|stored| {
            !stored["fact"]["type"]
                .as_str()
                .is_some_and(|type_name| type_name.starts_with("Cairn.Flow"))
        })
        .map_or(0, seq);
    (last, last_written)
}

/// The `seq` of the last fact a request wrote (see [`last_seqs`]).
fn last_seq(server: &Server, admin: &str) -> u64 {
    last_seqs(server, admin).1
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[test]
fn tokens_permissions_and_what_a_refusal_changes() {
    let dir = tempfile::tempdir().unwrap();
    let admin = bootstrap(dir.path(), &["--name", "admin", "--admin"]);
    assert!(admin.starts_with("cairn_"), "{admin}");
    let server = Server::start(dir.path(), &["--auth"]);

    // Open routes stay open; everything else needs a token.
    assert_eq!(send(&server, "GET", "/v1/health", None, None).0, 200);
    assert_eq!(send(&server, "GET", "/versions", None, None).0, 200);
    let (status, headers, body) = send(&server, "GET", "/v1/log", None, None);
    assert_eq!((status, code(&body)), (401, "unauthenticated"));
    assert!(headers
        .get("www-authenticate")
        .is_some_and(|value| value.to_str().unwrap().starts_with("Bearer")));
    let forged = format!("cairn_{}_{}", "0".repeat(16), "0".repeat(64));
    assert_eq!(send(&server, "GET", "/v1/log", Some(&forged), None).0, 401);
    // A right id with a wrong secret is as unknown as a forged one.
    let wrong_secret = format!(
        "{}{}",
        &admin[..admin.len() - 1],
        if admin.ends_with('0') { '1' } else { '0' }
    );
    assert_eq!(
        send(&server, "GET", "/v1/log", Some(&wrong_secret), None).0,
        401
    );

    let billing = create(
        &server,
        &admin,
        &[
            "--name",
            "billing",
            "--read",
            "Shop.*",
            "--write",
            "Shop.Payment*",
            "--subscribe",
            "billing",
        ],
    );
    let reader = create(&server, &admin, &["--name", "reader", "--read", "Shop.*"]);
    let nothing = create(&server, &admin, &["--name", "nothing"]);

    // Writes: each fact by its own type; one refused fact stores nothing.
    let (status, body) = post_facts(&server, &billing, &[fact("Shop.Payment", "p1")]);
    assert_eq!(status, 200, "{body}");
    let payment_hash = body["results"][0]["hash"].as_str().unwrap().to_string();
    let before = last_seq(&server, &admin);
    let (status, body) = post_facts(
        &server,
        &billing,
        &[fact("Shop.PaymentFailed", "p2"), fact("Shop.Order", "o1")],
    );
    assert_eq!((status, code(&body)), (403, "forbidden"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("write on type Shop.Order"),
        "{body}"
    );
    assert_eq!(
        last_seq(&server, &admin),
        before,
        "a refused batch stored nothing"
    );
    let (status, _) = post_facts(&server, &reader, &[fact("Shop.Order", "o2")]);
    assert_eq!(status, 403);
    let (status, _) = post_facts(&server, &nothing, &[fact("Shop.Order", "o3")]);
    assert_eq!(status, 403);

    // Reads leak nothing: an unreadable fact is answered like an absent one.
    let (status, body) = post_facts(
        &server,
        &admin,
        &[fact("Secret.Key", "k1"), fact("Shop.Order", "o4")],
    );
    assert_eq!(status, 200, "{body}");
    let secret_hash = body["results"][0]["hash"].as_str().unwrap().to_string();
    let absent = "0".repeat(64);
    let (status_secret, _, body_secret) = send(
        &server,
        "GET",
        &format!("/v1/facts/{secret_hash}"),
        Some(&reader),
        None,
    );
    let (status_absent, _, body_absent) = send(
        &server,
        "GET",
        &format!("/v1/facts/{absent}"),
        Some(&reader),
        None,
    );
    assert_eq!((status_secret, code(&body_secret)), (404, "not_found"));
    assert_eq!((status_absent, code(&body_absent)), (404, "not_found"));
    let (status, _, body) = send(&server, "GET", "/v1/log?limit=1000", Some(&reader), None);
    assert_eq!(status, 200);
    let types: Vec<&str> = body["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|stored| stored["fact"]["type"].as_str().unwrap())
        .collect();
    assert!(types.iter().all(|t| t.starts_with("Shop.")), "{types:?}");
    assert_eq!(types.len(), 2, "{types:?}");
    // `next` moves past what was left out.
    // (Up to the log's head, flows recorded since included.)
    let next = body["next"].as_u64().expect("next");
    let (head, last_written) = last_seqs(&server, &admin);
    assert!(
        (last_written..=head).contains(&next),
        "{next} not in {last_written}..={head}"
    );
    let (status, _, body) = send(
        &server,
        "GET",
        &format!("/v1/facts/{payment_hash}/successors?type=Secret.Key"),
        Some(&reader),
        None,
    );
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (status, _, _) = send(
        &server,
        "GET",
        &format!("/v1/facts/{payment_hash}/successors?type=Shop.Order&without=Secret.Key"),
        Some(&reader),
        None,
    );
    assert_eq!(status, 403);

    // Authorship: admins see who wrote a fact, and who wrote it again.
    let (status, body) = post_facts(&server, &admin, &[fact("Shop.Payment", "p1")]);
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = send(
        &server,
        "GET",
        &format!("/v1/facts/{payment_hash}"),
        Some(&admin),
        None,
    );
    assert_eq!(body["author"]["first"], "billing", "{body}");
    assert_eq!(body["author"]["again"], json!(["admin"]), "{body}");
    let (_, _, body) = send(
        &server,
        "GET",
        &format!("/v1/facts/{payment_hash}"),
        Some(&billing),
        None,
    );
    assert!(
        body.get("author").is_none(),
        "only admins see authors: {body}"
    );

    // Subscriptions: by name first, then by the stored definition.
    let over_orders = json!({"type": "Shop.Order"});
    let (status, _, body) = send(
        &server,
        "PUT",
        "/v1/subscriptions/billing",
        Some(&billing),
        Some(over_orders.clone()),
    );
    assert_eq!(status, 201, "{body}");
    let (status, _, _) = send(
        &server,
        "PUT",
        "/v1/subscriptions/other",
        Some(&billing),
        Some(over_orders.clone()),
    );
    assert_eq!(status, 403);
    let (status, _, _) = send(
        &server,
        "PUT",
        "/v1/subscriptions/secrets",
        Some(&admin),
        Some(json!({"type": "Secret.Key"})),
    );
    assert_eq!(status, 201);
    for path in [
        "/v1/subscriptions/secrets/pull",
        "/v1/subscriptions/other/pull",
    ] {
        let (status, _, _) = send(&server, "POST", path, Some(&billing), Some(json!({})));
        assert_eq!(status, 403, "{path}");
    }
    let (status, _, body) = send(
        &server,
        "POST",
        "/v1/subscriptions/billing/pull",
        Some(&billing),
        Some(json!({"max": 10})),
    );
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = send(&server, "GET", "/v1/subscriptions", Some(&billing), None);
    let names: Vec<&str> = body["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|view| view["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["billing"]);
    // Delete, pause and replay are an admin's; so are tokens and the audit.
    for (method, path) in [
        ("DELETE", "/v1/subscriptions/billing"),
        ("POST", "/v1/subscriptions/billing/pause"),
        ("POST", "/v1/subscriptions/billing/dead/replay"),
        ("GET", "/v1/tokens"),
        ("GET", "/v1/audit"),
        ("GET", "/metrics"),
        ("PUT", "/v1/blobs"),
    ] {
        let (status, _, body) = send(&server, method, path, Some(&billing), Some(json!({})));
        assert_eq!((status, code(&body)), (403, "forbidden"), "{method} {path}");
    }
    assert_eq!(
        send(
            &server,
            "GET",
            "/v1/subscriptions/billing",
            Some(&admin),
            None
        )
        .0,
        200
    );

    // Listing never shows a secret.
    let output = run_cli(
        &[
            "tokens",
            "list",
            "--json",
            "--server",
            &server.base,
            "--token",
            &admin,
        ],
        "",
    );
    assert!(output.success, "{}", output.stderr);
    for token in [&admin, &billing, &reader] {
        let secret = token.rsplit('_').next().unwrap();
        assert!(!output.stdout.contains(secret), "a secret is listed");
    }
    assert!(output.stdout.contains("\"billing\""));
    // Secrets are not in the server's log either.
    let log = server.log_text();
    for token in [&admin, &billing] {
        assert!(
            !log.contains(token.rsplit('_').next().unwrap()),
            "a secret was logged"
        );
    }
}

#[test]
fn revocation_rotation_expiry_and_rate_limits() {
    let dir = tempfile::tempdir().unwrap();
    let admin = bootstrap(dir.path(), &["--name", "admin", "--admin"]);
    let mut server = Server::start(dir.path(), &["--auth"]);
    let worker = create(
        &server,
        &admin,
        &["--name", "worker", "--read", "*", "--write", "Job.*"],
    );
    assert_eq!(send(&server, "GET", "/v1/log", Some(&worker), None).0, 200);

    // A long-poll of a revoked token ends within a second with 401.
    let base = server.base.clone();
    let waiting_token = worker.clone();
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let response = http()
            .get(format!("{base}/v1/log?after=1000000&wait_ms=20000"))
            .bearer_auth(waiting_token)
            .send()
            .expect("answers");
        (response.status().as_u16(), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    let revoked_at = Instant::now();
    let output = run_cli(
        &[
            "tokens",
            "revoke",
            "worker",
            "--server",
            &server.base,
            "--token",
            &admin,
        ],
        "",
    );
    assert!(output.success, "{}", output.stderr);
    let (status, _) = waiter.join().unwrap();
    assert_eq!(status, 401, "the long-poll ended unauthenticated");
    assert!(
        revoked_at.elapsed() < Duration::from_millis(2_500),
        "ended {:?} after the revocation",
        revoked_at.elapsed()
    );
    assert_eq!(send(&server, "GET", "/v1/log", Some(&worker), None).0, 401);

    // Rotation: old and new both work during the overlap, then only new.
    let service = create(&server, &admin, &["--name", "service", "--read", "*"]);
    let output = run_cli(
        &[
            "tokens",
            "rotate",
            "service",
            "--overlap-s",
            "2",
            "--server",
            &server.base,
            "--token",
            &admin,
        ],
        "",
    );
    assert!(output.success, "{}", output.stderr);
    let rotated = output.stdout.lines().last().unwrap().to_string();
    assert_ne!(rotated, service);
    assert_eq!(send(&server, "GET", "/v1/log", Some(&service), None).0, 200);
    assert_eq!(send(&server, "GET", "/v1/log", Some(&rotated), None).0, 200);
    std::thread::sleep(Duration::from_millis(2_300));
    assert_eq!(send(&server, "GET", "/v1/log", Some(&service), None).0, 401);
    assert_eq!(send(&server, "GET", "/v1/log", Some(&rotated), None).0, 200);

    // Expiry.
    let brief = create(
        &server,
        &admin,
        &["--name", "brief", "--read", "*", "--expires-in-s", "1"],
    );
    assert_eq!(send(&server, "GET", "/v1/log", Some(&brief), None).0, 200);
    std::thread::sleep(Duration::from_millis(1_300));
    assert_eq!(send(&server, "GET", "/v1/log", Some(&brief), None).0, 401);

    // Request rate: a burst beyond the rate is answered 429 with Retry-After.
    let slow = create(
        &server,
        &admin,
        &["--name", "slow", "--read", "*", "--rate-per-s", "3"],
    );
    let statuses: Vec<(u16, Option<String>)> = (0..10)
        .map(|_| {
            let (status, headers, _) = send(&server, "GET", "/v1/log", Some(&slow), None);
            (
                status,
                headers
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string()),
            )
        })
        .collect();
    assert!(statuses.iter().any(|(status, _)| *status == 200));
    let limited: Vec<_> = statuses
        .iter()
        .filter(|(status, _)| *status == 429)
        .collect();
    assert!(!limited.is_empty(), "{statuses:?}");
    assert!(
        limited.iter().all(|(_, retry)| retry.is_some()),
        "{statuses:?}"
    );

    // The audit trail holds the refusals and token changes, across a restart.
    assert_eq!(server.terminate().code(), Some(0));
    let server = Server::start(dir.path(), &["--auth"]);
    let output = run_cli(
        &[
            "tokens",
            "audit",
            "--limit",
            "1000",
            "--server",
            &server.base,
            "--token",
            &admin,
        ],
        "",
    );
    assert!(output.success, "{}", output.stderr);
    let entries: Vec<Value> = output
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let has = |outcome: &str| entries.iter().any(|entry| entry["outcome"] == outcome);
    for outcome in [
        "created",
        "revoked",
        "rotated",
        "unauthenticated",
        "rate_limited",
    ] {
        assert!(has(outcome), "no {outcome} entry in {entries:?}");
    }
    assert!(entries
        .iter()
        .any(|entry| entry["route"] == "cairn tokens create (offline)"));
    let text = output.stdout;
    for token in [&admin, &service, &rotated] {
        assert!(
            !text.contains(token.rsplit('_').next().unwrap()),
            "a secret in the audit trail"
        );
    }
}

#[test]
fn hostile_headers_and_a_brute_force_loop_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let admin = bootstrap(dir.path(), &["--name", "admin", "--admin"]);
    let server = Server::start(dir.path(), &["--auth"]);
    let client = http();
    let oversized = format!("Bearer {}", "a".repeat(8 * 1024));
    let headers: Vec<reqwest::header::HeaderValue> = vec![
        reqwest::header::HeaderValue::from_static(""),
        reqwest::header::HeaderValue::from_static("Bearer"),
        reqwest::header::HeaderValue::from_static("Basic YWRtaW46YWRtaW4="),
        reqwest::header::HeaderValue::from_str(&oversized).unwrap(),
        reqwest::header::HeaderValue::from_bytes(b"Bearer caf\xc3\xa9").unwrap(),
        reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        reqwest::header::HeaderValue::from_str(&format!("Bearer {admin} {admin}")).unwrap(),
    ];
    for header in headers {
        let response = client
            .post(server.url("/v1/facts"))
            .header("authorization", header.clone())
            .json(&json!({"facts": [fact("Shop.Order", "hostile")]}))
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{header:?}");
    }
    // Two Authorization headers are refused even if one is right.
    let response = client
        .get(server.url("/v1/log"))
        .header("authorization", format!("Bearer {admin}"))
        .header("authorization", format!("Bearer {admin}"))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    // A bounded brute-force loop: none succeeds, legitimate requests go on.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let started = Instant::now();
    for _ in 0..2_000 {
        let id = common::next_random(&mut state);
        let secret: String = (0..4)
            .map(|_| format!("{:016x}", common::next_random(&mut state)))
            .collect();
        let token = format!("cairn_{id:016x}_{secret}");
        assert_eq!(send(&server, "GET", "/v1/log", Some(&token), None).0, 401);
        if started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    let (status, _, _) = send(&server, "GET", "/v1/log", Some(&admin), None);
    assert_eq!(status, 200);
    let (_, _, body) = send(&server, "GET", "/v1/log?limit=10", Some(&admin), None);
    assert_eq!(
        body["facts"].as_array().unwrap().len(),
        0,
        "nothing was written"
    );
    // The flood is aggregated in the audit trail, not logged line by line.
    let (_, _, body) = send(&server, "GET", "/v1/audit?limit=1000", Some(&admin), None);
    let refused: u64 = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["outcome"] == "unauthenticated")
        .map(|entry| entry["count"].as_u64().unwrap())
        .sum();
    assert!(refused >= 2_000, "{refused} refusals counted");
    assert!(
        body["entries"].as_array().unwrap().len() < 50,
        "refusals are aggregated"
    );
}

#[test]
fn serving_beyond_loopback_needs_auth_or_an_explicit_risk() {
    let dir = tempfile::tempdir().unwrap();
    // Refused before anything is bound: no socket is opened.
    let output = run_cli(
        &[
            "serve",
            "--data",
            dir.path().to_str().unwrap(),
            "--listen",
            "0.0.0.0:0",
        ],
        "",
    );
    assert!(!output.success);
    assert!(
        output.stderr.contains("--auth") && output.stderr.contains("--insecure-no-auth"),
        "{}",
        output.stderr
    );
    // A token created offline needs a store whose server is not running.
    let _server = Server::start(dir.path(), &["--auth"]);
    if !common::on_postgres() {
        let output = run_cli(
            &[
                "tokens",
                "create",
                "--data",
                dir.path().to_str().unwrap(),
                "--name",
                "x",
                "--admin",
            ],
            "",
        );
        assert!(!output.success, "the running server holds the store");
    }
}

/// A subscription stream of a revoked token is closed with an
/// `unauthenticated` error frame and close code 1008 within about a second;
/// on PostgreSQL, a second server sharing the database refuses the token
/// within a second of its revocation through the first.
#[test]
fn revocation_closes_streams_and_reaches_every_server() {
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    use tokio_tungstenite::tungstenite::Message;

    let dir = tempfile::tempdir().unwrap();
    let admin = bootstrap(dir.path(), &["--name", "admin", "--admin"]);
    let server = Server::start(dir.path(), &["--auth"]);
    let consumer = create(
        &server,
        &admin,
        &[
            "--name",
            "consumer",
            "--read",
            "Job.*",
            "--subscribe",
            "jobs",
        ],
    );
    let (status, _, body) = send(
        &server,
        "PUT",
        "/v1/subscriptions/jobs",
        Some(&consumer),
        Some(json!({"type": "Job.Run"})),
    );
    assert_eq!(status, 201, "{body}");
    let second = common::on_postgres().then(|| Server::start(dir.path(), &["--auth"]));
    if let Some(second) = &second {
        assert_eq!(
            send(
                second,
                "GET",
                "/v1/subscriptions/jobs",
                Some(&consumer),
                None
            )
            .0,
            200
        );
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!(
        "{}/v1/subscriptions/jobs/stream",
        server.base.replace("http://", "ws://")
    );
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {consumer}").parse().unwrap(),
    );
    let (mut socket, response) = runtime
        .block_on(tokio_tungstenite::connect_async(request))
        .expect("the stream upgrades");
    assert_eq!(response.status().as_u16(), 101);

    let output = run_cli(
        &[
            "tokens",
            "revoke",
            "consumer",
            "--server",
            &server.base,
            "--token",
            &admin,
        ],
        "",
    );
    assert!(output.success, "{}", output.stderr);
    let revoked_at = Instant::now();
    let (error_code, close_code) = runtime.block_on(async {
        let mut error_code = None;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                    error_code = frame["error"]["code"].as_str().map(str::to_string);
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return (error_code, frame.map(|frame| u16::from(frame.code)));
                }
                Ok(Some(Ok(_))) => {}
                other => panic!("the stream ended without a close frame: {other:?}"),
            }
        }
    });
    assert_eq!(error_code.as_deref(), Some("unauthenticated"));
    assert_eq!(close_code, Some(1008));
    assert!(
        revoked_at.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        revoked_at.elapsed()
    );

    if let Some(second) = &second {
        // The revocation went through the first server; the second polls
        // the identity revision every 250 ms.
        let deadline = revoked_at + Duration::from_millis(1_000);
        loop {
            let status = send(
                second,
                "GET",
                "/v1/subscriptions/jobs",
                Some(&consumer),
                None,
            )
            .0;
            if status == 401 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the second server still accepts the revoked token"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The token endpoints and `cairn tokens` refuse malformed, oversized and
/// hostile input with a clear error, and create nothing.
#[test]
fn bad_token_requests_are_refused_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let admin = bootstrap(dir.path(), &["--name", "admin", "--admin"]);
    let server = Server::start(dir.path(), &["--auth"]);
    let identities = |server: &Server| {
        let (status, _, body) = send(server, "GET", "/v1/tokens", Some(&admin), None);
        assert_eq!(status, 200, "{body}");
        body["identities"].as_array().unwrap().len()
    };
    let before = identities(&server);
    let raw_post = |body: &str, content_type: &str| {
        let response = http()
            .post(server.url("/v1/tokens"))
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().unwrap_or(Value::Null))
    };
    let json = "application/json";
    for (body, expected_status, expected_code) in [
        ("{", 400, "invalid_request"),
        ("[]", 400, "invalid_request"),
        (r#"{"name": "x", "extra": 1}"#, 400, "invalid_request"),
        (
            r#"{"name": "x", "permissions": {"raed": ["A"]}}"#,
            400,
            "invalid_request",
        ),
        (
            r#"{"name": "x", "permissions": {"read": ["a b"]}}"#,
            400,
            "invalid_request",
        ),
        (
            r#"{"name": "x", "permissions": {"read": [""]}}"#,
            400,
            "invalid_request",
        ),
        (
            r#"{"name": "x", "permissions": {"admin": "yes"}}"#,
            400,
            "invalid_request",
        ),
        (r#"{"name": "", "permissions": {}}"#, 400, "invalid_request"),
        (
            r#"{"name": "../etc", "permissions": {}}"#,
            400,
            "invalid_request",
        ),
        (r#"{"name": "x", "rate_per_s": 0}"#, 400, "invalid_request"),
        (
            r#"{"name": "x", "expires_in_s": 0}"#,
            400,
            "invalid_request",
        ),
        (
            r#"{"name": "x", "expires_in_s": 18446744073709551615}"#,
            400,
            "invalid_request",
        ),
        (r#"{"name": "admin"}"#, 409, "identity_exists"),
    ] {
        let (status, answer) = raw_post(body, json);
        assert_eq!(
            (status, code(&answer)),
            (expected_status, expected_code),
            "{body}: {answer}"
        );
    }
    let long_name = format!(r#"{{"name": "{}"}}"#, "n".repeat(129));
    assert_eq!(raw_post(&long_name, json).0, 400);
    let many_patterns: Vec<String> = (0..65).map(|n| format!("T{n}")).collect();
    let too_many = json!({"name": "x", "permissions": {"read": many_patterns}}).to_string();
    assert_eq!(raw_post(&too_many, json).0, 400);
    let (status, answer) = raw_post(r#"{"name": "x"}"#, "text/plain");
    assert_eq!((status, code(&answer)), (415, "unsupported_media_type"));
    // Sent over a raw socket: the server answers and closes before the
    // body is complete, which an HTTP client may report as a broken pipe.
    let declared = format!(
        "POST /v1/tokens HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {admin}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        33 * 1024 * 1024
    );
    let (status, answer) = common::raw_exchange(&server, declared, 33, false);
    assert_eq!(
        (status, code(&answer)),
        (413, "request_too_large"),
        "{answer}"
    );
    for path in [
        "/v1/audit?limit=0",
        "/v1/audit?limit=x",
        "/v1/audit?after=-1",
        "/v1/tokens?x=1",
    ] {
        let (status, _, body) = send(&server, "GET", path, Some(&admin), None);
        assert_eq!(status, 400, "{path}: {body}");
    }
    let (status, _, body) = send(&server, "DELETE", "/v1/tokens/nobody", Some(&admin), None);
    assert_eq!((status, code(&body)), (404, "unknown_identity"));
    let (status, _, body) = send(
        &server,
        "POST",
        "/v1/tokens/nobody/rotate",
        Some(&admin),
        Some(json!({})),
    );
    assert_eq!((status, code(&body)), (404, "unknown_identity"));
    // The CLI checks patterns before it sends anything.
    let output = run_cli(
        &[
            "tokens",
            "create",
            "--name",
            "x",
            "--read",
            "Shop Order",
            "--server",
            &server.base,
            "--token",
            &admin,
        ],
        "",
    );
    assert!(!output.success);
    assert!(output.stderr.contains("pattern"), "{}", output.stderr);
    assert_eq!(identities(&server), before, "nothing was created");
}
