//! `cairn diff` and `GET /v1/digests` end to end, with real servers:
//! equal deployments (exit 0), differences both ways listed exactly, with
//! and without type filters (exit 1), errors (exit 2: unreachable, bad
//! arguments, a refused token), and `--auth`: a token that may read only
//! `Shop.*` sees only `Shop.*` differences. Bad input to `/v1/digests` is
//! a 400 with a stable code. Runs on PostgreSQL too with
//! `CAIRN_TEST_BACKEND=postgres` (each server its own database).

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{get_json, offline_store_args, post_facts, run_cli, Server, CAIRN};
use serde_json::{json, Value};

fn fact(type_name: &str, n: u64) -> Value {
    json!({"type": type_name, "fields": {"n": n}, "predecessors": {}})
}

/// Writes `facts` (in batches) and answers their hashes.
fn write(server: &Server, token: Option<&str>, facts: &[Value]) -> Vec<String> {
    let mut hashes = Vec::new();
    for batch in facts.chunks(500) {
        let mut request = common::http()
            .post(server.url("/v1/facts"))
            .json(&json!({ "facts": batch }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let (status, answer) = common::json_answer(request.send().expect("server answers"));
        assert_eq!(status, 200, "{answer}");
        for result in answer["results"].as_array().expect("results") {
            hashes.push(result["hash"].as_str().expect("hash").to_string());
        }
    }
    hashes
}

/// The facts both deployments get: 600, of two types.
fn shared_facts() -> Vec<Value> {
    (0..600)
        .map(|n| {
            fact(
                if n % 2 == 0 {
                    "Shop.Order"
                } else {
                    "HR.Person"
                },
                n,
            )
        })
        .collect()
}

struct DiffRun {
    status: i32,
    stdout: String,
    stderr: String,
}

/// Runs `cairn diff ARGS` with only the given token variables set.
fn run_diff(args: &[&str], tokens: &[(&str, &str)]) -> DiffRun {
    let mut command = Command::new(CAIRN);
    command
        .arg("diff")
        .args(args)
        .env_remove("CAIRN_TOKEN")
        .env_remove("CAIRN_TOKEN_A")
        .env_remove("CAIRN_TOKEN_B");
    for (name, value) in tokens {
        command.env(name, value);
    }
    let output = command.output().expect("cairn diff runs");
    DiffRun {
        status: output.status.code().expect("an exit status"),
        stdout: String::from_utf8_lossy(&output.stdout).to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
    }
}

/// The hashes of the `only in SIDE:` lines.
fn listed(stdout: &str, side: &str) -> BTreeSet<String> {
    let marker = format!("only in {side}: ");
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix(&marker))
        .map(str::to_string)
        .collect()
}

fn set(hashes: &[String]) -> BTreeSet<String> {
    hashes.iter().cloned().collect()
}

#[test]
fn differences_both_ways_are_listed_exactly_with_and_without_type_filters() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start(dir_a.path(), &[]);
    let b = Server::start(dir_b.path(), &[]);

    // Two empty deployments hold the same (no) facts.
    let empty = run_diff(&[&a.base, &b.base], &[]);
    assert_eq!(empty.status, 0, "{}{}", empty.stdout, empty.stderr);

    let shared = shared_facts();
    write(&a, None, &shared);
    write(&b, None, &shared);
    let same = run_diff(&[&a.base, &b.base], &[]);
    assert_eq!(same.status, 0, "{}{}", same.stdout, same.stderr);
    assert!(same.stdout.contains("the same facts"), "{}", same.stdout);

    let shop_only_a = write(
        &a,
        None,
        &[fact("Shop.Order", 10_001), fact("Shop.Line", 10_002)],
    );
    let hr_only_a = write(&a, None, &[fact("HR.Person", 10_003)]);
    let shop_only_b = write(&b, None, &[fact("Shop.Order", 20_001)]);
    let hr_only_b = write(
        &b,
        None,
        &[fact("HR.Person", 20_002), fact("HR.Team", 20_003)],
    );

    let all = run_diff(&[&a.base, &b.base], &[]);
    assert_eq!(all.status, 1, "{}{}", all.stdout, all.stderr);
    assert_eq!(
        listed(&all.stdout, "A"),
        set(&[shop_only_a.clone(), hr_only_a].concat())
    );
    assert_eq!(
        listed(&all.stdout, "B"),
        set(&[shop_only_b.clone(), hr_only_b].concat())
    );
    assert!(
        all.stdout.contains("3 only in A, 3 only in B"),
        "{}",
        all.stdout
    );

    let shop = run_diff(&[&a.base, &b.base, "--types", "Shop.*"], &[]);
    assert_eq!(shop.status, 1, "{}{}", shop.stdout, shop.stderr);
    assert_eq!(listed(&shop.stdout, "A"), set(&shop_only_a));
    assert_eq!(listed(&shop.stdout, "B"), set(&shop_only_b));

    // Types that differ nowhere: the same.
    let none = run_diff(
        &[
            &a.base,
            &b.base,
            "--types",
            "Nothing.*",
            "--types",
            "Shop.Item",
        ],
        &[],
    );
    assert_eq!(none.status, 0, "{}{}", none.stdout, none.stderr);

    // Machine output.
    let json_run = run_diff(&[&a.base, &b.base, "--types", "Shop.*", "--json"], &[]);
    assert_eq!(json_run.status, 1, "{}", json_run.stderr);
    let answer: Value = serde_json::from_str(json_run.stdout.trim()).expect("one JSON object");
    assert_eq!(answer["same"], false);
    assert_eq!(answer["count_a"], 300 + 2);
    assert_eq!(answer["count_b"], 300 + 1);
    let from_json = |key: &str| -> BTreeSet<String> {
        answer[key]
            .as_array()
            .expect("hashes")
            .iter()
            .map(|hash| hash.as_str().expect("hex").to_string())
            .collect()
    };
    assert_eq!(from_json("only_in_a"), set(&shop_only_a));
    assert_eq!(from_json("only_in_b"), set(&shop_only_b));
    assert_ne!(answer["store_a"], answer["store_b"], "two deployments");

    // A deployment against itself: the same, and the same store twice.
    let itself = run_diff(&[&a.base, &a.base, "--json"], &[]);
    assert_eq!(itself.status, 0, "{}", itself.stderr);
    let answer: Value = serde_json::from_str(itself.stdout.trim()).unwrap();
    assert_eq!(answer["store_a"], answer["store_b"]);
}

#[test]
fn errors_exit_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let unreachable = format!("http://127.0.0.1:{closed_port}");
    let run = run_diff(&[&server.base, &unreachable], &[]);
    assert_eq!(run.status, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("deployment B"), "{}", run.stderr);
    let run = run_diff(&["not a url", &server.base], &[]);
    assert_eq!(run.status, 2, "{}", run.stderr);
    let run = run_diff(&[&server.base, &server.base, "--types", "a b"], &[]);
    assert_eq!(run.status, 2, "{}", run.stderr);
    // Something that is not Cairn: an answer that is not a digest answer.
    let run = run_diff(&[&server.base, &server.url("/v1/health")], &[]);
    assert_eq!(run.status, 2, "{}", run.stderr);
}

#[test]
fn a_token_that_reads_only_shop_sees_only_shop_differences() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut admins = Vec::new();
    for dir in [&dir_a, &dir_b] {
        let store_args = offline_store_args(dir.path());
        let mut args = vec!["tokens", "create", "--name", "admin", "--admin"];
        args.extend(store_args.iter().map(String::as_str));
        let output = run_cli(&args, "");
        assert!(output.success, "{}", output.stderr);
        admins.push(output.stdout.lines().last().unwrap().to_string());
    }
    let a = Server::start(dir_a.path(), &["--auth"]);
    let b = Server::start(dir_b.path(), &["--auth"]);
    let mut readers = Vec::new();
    for (server, admin) in [(&a, &admins[0]), (&b, &admins[1])] {
        let output = run_cli(
            &[
                "tokens",
                "create",
                "--server",
                &server.base,
                "--token",
                admin,
                "--name",
                "shop-reader",
                "--read",
                "Shop.*",
            ],
            "",
        );
        assert!(output.success, "{}", output.stderr);
        readers.push(output.stdout.lines().last().unwrap().to_string());
    }
    let shared = shared_facts();
    write(&a, Some(&admins[0]), &shared);
    write(&b, Some(&admins[1]), &shared);
    let shop_only_a = write(&a, Some(&admins[0]), &[fact("Shop.Order", 1)]);
    write(&a, Some(&admins[0]), &[fact("HR.Person", 2)]);
    write(&b, Some(&admins[1]), &[fact("HR.Person", 1_003)]);

    let as_readers = run_diff(
        &[&a.base, &b.base],
        &[
            ("CAIRN_TOKEN_A", &readers[0]),
            ("CAIRN_TOKEN_B", &readers[1]),
        ],
    );
    assert_eq!(
        as_readers.status, 1,
        "{}{}",
        as_readers.stdout, as_readers.stderr
    );
    assert_eq!(listed(&as_readers.stdout, "A"), set(&shop_only_a));
    assert!(listed(&as_readers.stdout, "B").is_empty());
    assert!(
        as_readers.stdout.contains("301 facts"),
        "{}",
        as_readers.stdout
    );

    let as_admins = run_diff(
        &[&a.base, &b.base],
        &[("CAIRN_TOKEN_A", &admins[0]), ("CAIRN_TOKEN_B", &admins[1])],
    );
    assert_eq!(as_admins.status, 1);
    assert_eq!(listed(&as_admins.stdout, "A").len(), 2);
    assert_eq!(
        listed(&as_admins.stdout, "B").len(),
        1,
        "{}",
        as_admins.stdout
    );

    // CAIRN_TOKEN is the fallback of both.
    let fallback = run_diff(&[&a.base, &a.base], &[("CAIRN_TOKEN", &readers[0])]);
    assert_eq!(fallback.status, 0, "{}", fallback.stderr);

    // No token: refused, an error.
    let anonymous = run_diff(&[&a.base, &b.base], &[]);
    assert_eq!(anonymous.status, 2, "{}", anonymous.stdout);
    assert!(anonymous.stderr.contains("401"), "{}", anonymous.stderr);
}

#[test]
fn digests_answer_their_shape_and_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, empty) = get_json(&server, "/v1/digests");
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["count"], 0);
    assert_eq!(empty["digest"], "0".repeat(64));
    assert_eq!(empty["prefix"], "");
    assert_eq!(empty["buckets"].as_array().unwrap().len(), 16);
    assert_eq!(empty["buckets"][10]["prefix"], "a");
    assert!(empty.get("hashes").is_none(), "not listed at the root");
    let (status, answer) = post_facts(&server, &[fact("Shop.Order", 1)]);
    assert_eq!(status, 200, "{answer}");
    let hash = answer["results"][0]["hash"].as_str().unwrap().to_string();
    let (_, root) = get_json(&server, "/v1/digests");
    assert_eq!(
        (root["count"].clone(), root["digest"].clone()),
        (json!(1), json!(hash))
    );
    let (status, deep) = get_json(&server, &format!("/v1/digests?prefix={}", &hash[..5]));
    assert_eq!(status, 200, "{deep}");
    assert_eq!(deep["hashes"], json!([hash]));
    let (_, filtered) = get_json(&server, "/v1/digests?types=HR.*&types=Other");
    assert_eq!(filtered["count"], 0);
    let (_, longest) = get_json(&server, &format!("/v1/digests?prefix={}", &hash[..63]));
    assert_eq!(longest["count"], 1);
    assert_eq!(longest["buckets"][0]["prefix"].as_str().unwrap().len(), 64);

    let too_many_types = (0..65)
        .map(|n| format!("types=T{n}"))
        .collect::<Vec<_>>()
        .join("&");
    let cases = [
        ("prefix=ABC".to_string(), "invalid_parameter"),
        ("prefix=0g".to_string(), "invalid_parameter"),
        (
            format!("prefix={}", "0".repeat(64)),
            "parameter_out_of_range",
        ),
        ("prefix=a&prefix=b".to_string(), "invalid_parameter"),
        ("types=a%20b".to_string(), "invalid_parameter"),
        ("types=".to_string(), "invalid_parameter"),
        (too_many_types, "parameter_out_of_range"),
        ("limit=1".to_string(), "unknown_parameter"),
    ];
    for (query, code) in cases {
        let (status, answer) = get_json(&server, &format!("/v1/digests?{query}"));
        assert_eq!(status, 400, "{query}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{query}: {answer}");
    }
}
