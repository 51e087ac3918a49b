//! Bad input, tried from outside against the real binary: each gets the
//! right status and a clear JSON error with a stable code, and the store is
//! unchanged afterwards.

mod common;

use common::*;
use serde_json::json;

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn post(name: &'static str, body: impl Into<Vec<u8>>, status: u16, code: &'static str) -> Case {
    Case {
        name,
        method: "POST",
        path: "/v1/facts".into(),
        content_type: Some("application/json"),
        body: body.into(),
        status,
        code,
    }
}

fn get(name: &'static str, path: String, status: u16, code: &'static str) -> Case {
    Case {
        name,
        method: "GET",
        path,
        content_type: None,
        body: Vec::new(),
        status,
        code,
    }
}

fn batch_of(fact: &str) -> String {
    format!("{{\"facts\":[{fact}]}}")
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let parent = put_one(&server, fact("Ok.Parent", json!({}), json!({})));
    let good = r#"{"type":"Ok.Fact","fields":{},"predecessors":{}}"#;
    let many_facts = format!(
        "{{\"facts\":[{}]}}",
        (0..10_001)
            .map(|n| format!(r#"{{"type":"Many.F","fields":{{"n":{n}}},"predecessors":{{}}}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let big_fact = batch_of(&format!(
        r#"{{"type":"Big.F","fields":{{"s":"{}"}},"predecessors":{{}}}}"#,
        "x".repeat(70_000)
    ));
    let deep = batch_of(&format!(
        r#"{{"type":"Deep.F","fields":{{"a":{}1{}}},"predecessors":{{}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    ));
    let missing = "cd".repeat(32);
    let cases = vec![
        post("malformed JSON", r#"{"facts": [ "#, 400, "malformed_json"),
        post(
            "trailing garbage",
            format!("{} x", batch_of(good)),
            400,
            "malformed_json",
        ),
        Case {
            content_type: Some("text/plain"),
            ..post(
                "wrong content type",
                batch_of(good),
                415,
                "unsupported_media_type",
            )
        },
        Case {
            content_type: None,
            ..post(
                "no content type",
                batch_of(good),
                415,
                "unsupported_media_type",
            )
        },
        post("empty batch", r#"{"facts":[]}"#, 400, "empty_batch"),
        post("not an envelope", "[1,2]", 400, "invalid_request"),
        post(
            "unknown envelope member",
            format!("{{\"facts\":[{good}],\"extra\":1}}"),
            400,
            "invalid_request",
        ),
        post("10,001 facts", many_facts, 413, "batch_too_large"),
        post("fact over the size limit", big_fact, 413, "fact_too_large"),
        post(
            "bad type name",
            batch_of(r#"{"type":"1Bad","fields":{},"predecessors":{}}"#),
            400,
            "invalid_type",
        ),
        post(
            "type with a dash",
            batch_of(r#"{"type":"A-B","fields":{},"predecessors":{}}"#),
            400,
            "invalid_type",
        ),
        post(
            "empty type",
            batch_of(r#"{"type":"","fields":{},"predecessors":{}}"#),
            400,
            "invalid_type",
        ),
        post(
            "type over 200 chars",
            batch_of(&format!(
                r#"{{"type":"{}","fields":{{}},"predecessors":{{}}}}"#,
                "A".repeat(201)
            )),
            400,
            "invalid_type",
        ),
        post(
            "bad role name",
            batch_of(&format!(
                r#"{{"type":"A","fields":{{}},"predecessors":{{"9role":"{parent}"}}}}"#
            )),
            400,
            "invalid_role",
        ),
        post(
            "uppercase hash",
            batch_of(&format!(
                r#"{{"type":"A","fields":{{}},"predecessors":{{"p":"{}"}}}}"#,
                parent.to_uppercase()
            )),
            400,
            "invalid_hash",
        ),
        post(
            "short hash",
            batch_of(r#"{"type":"A","fields":{},"predecessors":{"p":"abc"}}"#),
            400,
            "invalid_hash",
        ),
        post(
            "empty predecessor array",
            batch_of(r#"{"type":"A","fields":{},"predecessors":{"p":[]}}"#),
            400,
            "invalid_predecessor",
        ),
        post(
            "missing predecessor",
            batch_of(&format!(
                r#"{{"type":"A","fields":{{}},"predecessors":{{"p":"{missing}"}}}}"#
            )),
            422,
            "missing_predecessors",
        ),
        post(
            "integer beyond 2^53-1",
            batch_of(r#"{"type":"A","fields":{"n":9007199254740992},"predecessors":{}}"#),
            400,
            "integer_out_of_range",
        ),
        post(
            "non-finite number",
            batch_of(r#"{"type":"A","fields":{"n":1e400},"predecessors":{}}"#),
            400,
            "non_finite_number",
        ),
        post(
            "NaN literal",
            batch_of(r#"{"type":"A","fields":{"n":NaN},"predecessors":{}}"#),
            400,
            "malformed_json",
        ),
        post(
            "invalid UTF-8",
            [
                &b"{\"facts\":[{\"type\":\"A\",\"fields\":{\"s\":\""[..],
                &[0xff, 0xfe],
                &b"\"},\"predecessors\":{}}]}"[..],
            ]
            .concat(),
            400,
            "invalid_utf8",
        ),
        post(
            "lone surrogate",
            batch_of(r#"{"type":"A","fields":{"s":"\ud800"},"predecessors":{}}"#),
            400,
            "invalid_unicode",
        ),
        post(
            "duplicate key",
            batch_of(r#"{"type":"A","fields":{"k":1,"k":2},"predecessors":{}}"#),
            400,
            "duplicate_key",
        ),
        post("deeply nested fields", deep, 400, "nesting_too_deep"),
        post(
            "extra fact member",
            batch_of(r#"{"type":"A","fields":{},"predecessors":{},"x":1}"#),
            400,
            "invalid_fact",
        ),
        post(
            "missing fact member",
            batch_of(r#"{"type":"A","fields":{}}"#),
            400,
            "invalid_fact",
        ),
        post(
            "fields not an object",
            batch_of(r#"{"type":"A","fields":[],"predecessors":{}}"#),
            400,
            "invalid_fact",
        ),
        Case {
            path: "/v1/facts?x=1".into(),
            ..post(
                "unknown query parameter on write",
                batch_of(good),
                400,
                "unknown_parameter",
            )
        },
        get(
            "get with a non-hex hash",
            "/v1/facts/xyz".into(),
            400,
            "invalid_hash",
        ),
        get(
            "get with an uppercase hash",
            format!("/v1/facts/{}", parent.to_uppercase()),
            400,
            "invalid_hash",
        ),
        get(
            "get of an unknown fact",
            format!("/v1/facts/{missing}"),
            404,
            "not_found",
        ),
        get(
            "unknown parameter on get",
            format!("/v1/facts/{parent}?pretty=1"),
            400,
            "unknown_parameter",
        ),
        get(
            "successors without type",
            format!("/v1/facts/{parent}/successors"),
            400,
            "missing_parameter",
        ),
        get(
            "successors with a bad type",
            format!("/v1/facts/{parent}/successors?type=9x"),
            400,
            "invalid_type",
        ),
        get(
            "successors with a bad role",
            format!("/v1/facts/{parent}/successors?type=A&role=a.b"),
            400,
            "invalid_role",
        ),
        get(
            "successors with a bad without",
            format!("/v1/facts/{parent}/successors?type=A&without=-"),
            400,
            "invalid_type",
        ),
        get(
            "successors with an unknown parameter",
            format!("/v1/facts/{parent}/successors?type=A&sort=desc"),
            400,
            "unknown_parameter",
        ),
        get(
            "successors limit 0",
            format!("/v1/facts/{parent}/successors?type=A&limit=0"),
            400,
            "parameter_out_of_range",
        ),
        get(
            "successors limit too big",
            format!("/v1/facts/{parent}/successors?type=A&limit=10001"),
            400,
            "parameter_out_of_range",
        ),
        get(
            "successors wait too long",
            format!("/v1/facts/{parent}/successors?type=A&wait_ms=600000"),
            400,
            "parameter_out_of_range",
        ),
        get(
            "log limit too big",
            "/v1/log?limit=10001".into(),
            400,
            "parameter_out_of_range",
        ),
        get(
            "log limit not a number",
            "/v1/log?limit=ten".into(),
            400,
            "invalid_parameter",
        ),
        get(
            "log negative after",
            "/v1/log?after=-1".into(),
            400,
            "invalid_parameter",
        ),
        get(
            "log repeated after",
            "/v1/log?after=1&after=2".into(),
            400,
            "invalid_parameter",
        ),
        get(
            "log unknown parameter",
            "/v1/log?from=3".into(),
            400,
            "unknown_parameter",
        ),
        get("unknown route", "/v2/facts".into(), 404, "not_found"),
        Case {
            method: "DELETE",
            ..get("wrong method", "/v1/log".into(), 405, "method_not_allowed")
        },
    ];
    let before = last_seq(&server);
    let client = http();
    let mut failures = Vec::new();
    for case in &cases {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut request = client
            .request(method, server.url(&case.path))
            .body(case.body.clone());
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        let response = match request.send() {
            Ok(response) => response,
            Err(error) => {
                failures.push(format!("{}: request failed: {error}", case.name));
                continue;
            }
        };
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or(json!(null));
        let code = answer["error"]["code"].as_str().unwrap_or("<no code>");
        let message = answer["error"]["message"].as_str().unwrap_or("");
        if status != case.status || code != case.code || message.len() < 10 {
            failures.push(format!(
                "{}: expected {} {}, got {status} {text:.300}",
                case.name, case.status, case.code
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(last_seq(&server), before, "bad input changed the store");
    let metrics = metrics_text(&server);
    assert!(
        metrics.contains("cairn_facts_written_total 1\n"),
        "only the parent was ever written"
    );
}

#[test]
fn bodies_over_the_request_limit_are_refused_with_413() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let declared = format!(
        "POST /v1/facts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        33 * 1024 * 1024
    );
    let (status, answer) = raw_exchange(&server, declared, 0, false);
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("request_too_large")),
        "{answer}"
    );
    let streamed = "POST /v1/facts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_string();
    let (status, answer) = raw_exchange(&server, streamed, 40, true);
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("request_too_large")),
        "{answer}"
    );
    assert_eq!(last_seq(&server), 0);
}

#[test]
fn requests_beyond_the_concurrency_limit_get_429() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--concurrent-requests-max", "2"]);
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let url = server.url("/v1/log?after=1000&wait_ms=3000");
            std::thread::spawn(move || http().get(url).send().unwrap().status().as_u16())
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (status, answer) = get_json(&server, "/v1/log");
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (429, Some("overloaded")),
        "{answer}"
    );
    for waiter in waiters {
        assert_eq!(waiter.join().unwrap(), 200);
    }
    assert_eq!(get_json(&server, "/v1/log").0, 200, "capacity returns");
}

#[test]
fn cli_commands_refuse_bad_input_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let run = |args: &[&str], input: &str| {
        let output = run_cli(args, input);
        (output.success, output.stderr)
    };
    let cases: [(&[&str], &str, &str); 6] = [
        (&["hash"], "{not json", "malformed_json"),
        (
            &["hash"],
            r#"{"type":"A","fields":{"n":9007199254740993},"predecessors":{}}"#,
            "integer_out_of_range",
        ),
        (&["hash"], r#"{"type":"A","fields":{}}"#, "invalid_fact"),
        (&["put", "--server", &server.base], "{not json", "not JSON"),
        (
            &["put", "--server", &server.base],
            r#"{"type":"bad type","fields":{},"predecessors":{}}"#,
            "invalid_type",
        ),
        (
            &[
                "successors",
                &"a".repeat(64),
                "--type",
                "9x",
                "--server",
                &server.base,
            ],
            "",
            "invalid_type",
        ),
    ];
    for (args, input, expected) in cases {
        let (ok, stderr) = run(args, input);
        assert!(
            !ok && stderr.contains(expected),
            "{args:?} with {input:?}: {stderr}"
        );
    }
    let (ok, stderr) = run(
        &["get", &"a".repeat(64), "--server", "http://127.0.0.1:9"],
        "",
    );
    assert!(
        !ok && stderr.contains("cannot reach the server"),
        "{stderr}"
    );
    // `cairn bench --latency-log` applies to the request workloads and
    // consume only, and is refused before any load is sent.
    let log = dir.path().join("latency.csv");
    let (ok, stderr) = run(
        &[
            "bench",
            "--workload",
            "latency",
            "--latency-log",
            log.to_str().unwrap(),
            "--server",
            &server.base,
        ],
        "",
    );
    assert!(
        !ok && stderr.contains("--latency-log applies to --workload write"),
        "{stderr}"
    );
    assert!(!log.exists());
    assert_eq!(last_seq(&server), 0);
}

#[test]
fn blob_endpoints_refuse_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = http();
    let (status, answer) = json_answer(
        client
            .put(server.url("/v1/blobs?name=x"))
            .body("abc")
            .send()
            .unwrap(),
    );
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("unknown_parameter"))
    );
    let head = client
        .head(server.url(&format!("/v1/blobs/{}", "0".repeat(64))))
        .send()
        .unwrap();
    assert_eq!(head.status(), 404);
    let (status, answer) = get_json(&server, &format!("/v1/blobs/{}", "g".repeat(64)));
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_hash"))
    );
    let (status, answer) = json_answer(
        client
            .post(server.url("/v1/blobs"))
            .body("abc")
            .send()
            .unwrap(),
    );
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

#[test]
fn the_nesting_limit_is_the_facts_own_on_the_server_and_in_cairn_hash() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut refused_from = None;
    for arrays_n in 58..=66 {
        let fact = format!(
            r#"{{"type":"Deep.F","fields":{{"a":{}1{}}},"predecessors":{{}}}}"#,
            "[".repeat(arrays_n),
            "]".repeat(arrays_n)
        );
        let hashed = run_cli(&["hash"], &fact);
        let (status, answer) = post_raw(&server, &batch_of(&fact));
        assert_eq!(
            hashed.success,
            status == 200,
            "{arrays_n} nested arrays: cairn hash and the server disagree: {answer}"
        );
        if status != 200 {
            assert_eq!(answer["error"]["code"], "nesting_too_deep", "{answer}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(" 64 "), "{message}");
            assert!(hashed.stderr.contains(" 64 "), "{}", hashed.stderr);
            refused_from.get_or_insert(arrays_n);
        }
    }
    assert!(refused_from.is_some(), "the limit lies in the range tried");
}

#[test]
fn requests_the_http_layer_cannot_parse_get_the_json_error_body_too() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let before = last_seq(&server);
    let address = server.base.trim_start_matches("http://").to_string();
    let exchange = |request: Vec<u8>| -> (u16, serde_json::Value) {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        // The server may answer and close before it has read everything.
        let _ = stream.write_all(&request);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer).to_string();
        let status = text
            .get(9..12)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        (status, serde_json::from_str(body).unwrap_or(json!(null)))
    };
    let fact = r#"{"facts":[{"type":"Framing.Test","fields":{},"predecessors":{}}]}"#;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "a garbage request line",
            b"GARBAGE\r\n\r\n".to_vec(),
            400,
            "malformed_http",
        ),
        (
            "a non-numeric Content-Length",
            format!(
                "POST /v1/facts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                 content-length: abc\r\n\r\n{fact}"
            )
            .into_bytes(),
            400,
            "malformed_http",
        ),
        (
            "an unknown Transfer-Encoding",
            format!(
                "POST /v1/facts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                 transfer-encoding: gzip\r\n\r\n{fact}"
            )
            .into_bytes(),
            400,
            "malformed_http",
        ),
        (
            "a URI over 64 KiB",
            format!(
                "GET /v1/log?after={} HTTP/1.1\r\nhost: x\r\n\r\n",
                "1".repeat(70_000)
            )
            .into_bytes(),
            414,
            "uri_too_long",
        ),
        (
            "headers over the limit",
            format!(
                "GET /v1/log HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
                "a".repeat(500_000)
            )
            .into_bytes(),
            431,
            "headers_too_large",
        ),
    ];
    for (name, request, status, code) in cases {
        let (answered, body) = exchange(request);
        assert_eq!(
            (answered, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{name}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.len() > 10),
            "{name}: {body}"
        );
    }
    assert_eq!(last_seq(&server), before, "nothing was written");
    let (status, _) = get_json(&server, "/v1/health");
    assert_eq!(status, 200, "the server serves on");
}
