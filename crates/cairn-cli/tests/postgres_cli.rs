//! The PostgreSQL backend's command line: `cairn migrate` (run by several
//! processes at once, each migration applied once), three servers started
//! at the same moment on a fresh database, and bad `--store` input, which
//! must fail with a clear message and create nothing. Each test makes its
//! own database (`CAIRN_TEST_POSTGRES=skip` skips them).

mod common;

use std::process::{Command, Stdio};

use cairn_store::postgres::testing::TestDatabase;
use common::*;
use serde_json::json;

fn fresh_database() -> Option<TestDatabase> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(TestDatabase::create())
}

#[test]
fn migrate_run_by_three_processes_at_once_applies_each_migration_once() {
    let Some(database) = fresh_database() else {
        return;
    };
    let url = database.url();
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(CAIRN)
                .args(["migrate", "--store", &url])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    let stdouts: Vec<String> = outputs
        .iter()
        .map(|output| {
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8_lossy(&output.stdout).to_string()
        })
        .collect();
    let applied: Vec<&String> = stdouts
        .iter()
        .filter(|out| out.contains("applied migrations"))
        .collect();
    assert_eq!(applied.len(), 1, "exactly one process applies: {stdouts:?}");
    assert!(
        applied[0].contains("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]"),
        "{}",
        applied[0]
    );
    let again = run_cli(&["migrate", "--store", &url], "");
    assert!(again.success, "{}", again.stderr);
    assert!(again.stdout.contains("up to date"), "{}", again.stdout);
}

#[test]
fn three_servers_starting_at_once_on_a_fresh_database_all_serve() {
    let Some(database) = fresh_database() else {
        return;
    };
    let url = database.url();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let starters: Vec<_> = dirs
        .iter()
        .map(|dir| {
            let (path, url) = (dir.path().to_path_buf(), url.clone());
            std::thread::spawn(move || Server::start_with_store(&path, &url, &[]))
        })
        .collect();
    let servers: Vec<Server> = starters
        .into_iter()
        .map(|starter| starter.join().unwrap())
        .collect();
    let hash = put_one(&servers[0], fact("Start.Race", json!({"n": 1}), json!({})));
    for server in &servers {
        assert_eq!(get_json(server, "/v1/health").0, 200);
        assert_eq!(get_json(server, &format!("/v1/facts/{hash}")).0, 200);
    }
}

/// A database that cannot be reached when `cairn serve` starts is a state
/// that passes (started together, a failover under way): the server
/// listens, answers 503 with the reason and retries. A database that
/// refuses the server for good (here: it does not exist) stops it.
#[test]
fn a_database_that_cannot_be_reached_at_start_answers_503_until_it_can() {
    let Some(database) = fresh_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (url, expected) in [
        (
            "postgres://postgres@127.0.0.1:1,127.0.0.1:2/none?target_session_attrs=read-write",
            "no writable PostgreSQL primary among 127.0.0.1:1, 127.0.0.1:2: 127.0.0.1:1:",
        ),
        (
            "postgres://postgres@127.0.0.1:1/none",
            "cannot connect to PostgreSQL",
        ),
    ] {
        let server =
            Server::start_with_store(dir.path(), url, &["--pg-acquire-timeout-ms", "1000"]);
        for path in ["/v1/health", "/v1/log"] {
            let (status, answer) = get_json(&server, path);
            assert_eq!(status, 503, "{url} {path}: {answer}");
            assert_eq!(answer["error"]["code"], "store_unavailable");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(expected), "{url}: {message}");
        }
        assert!(server.log_contains("retrying"), "{}", server.log_text());
    }
    let no_such_database = database
        .url()
        .replace(database.name(), "cairn_no_such_database");
    let output = run_cli(
        &[
            "serve",
            "--data",
            dir.path().to_str().unwrap(),
            "--store",
            &no_such_database,
        ],
        "",
    );
    assert!(!output.success);
    assert!(
        output.stderr.contains("does not exist"),
        "{}",
        output.stderr
    );
}

#[test]
fn bad_store_arguments_fail_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let refused = |args: &[&str], expected: &str| {
        let output = run_cli(args, "");
        assert!(!output.success, "{args:?} succeeded");
        assert!(
            output.stderr.contains(expected),
            "{args:?}: expected {expected:?} in {}",
            output.stderr
        );
    };
    refused(
        &[
            "serve",
            "--data",
            data,
            "--store",
            "http://127.0.0.1:5432/x",
        ],
        "invalid PostgreSQL URL",
    );
    refused(
        &["migrate", "--store", "not a url"],
        "invalid PostgreSQL URL",
    );
    // Multi-host URLs (libpq's convention): a malformed host list, a kind
    // of session Cairn cannot write through, and hosts none of which is up.
    for (url, expected) in [
        (
            "postgres://postgres@127.0.0.1:5432,,127.0.0.1:5433/test",
            "host 2 of the host list is empty",
        ),
        (
            "postgres://postgres@127.0.0.1:5432,127.0.0.1:70000/test",
            "the port must be a number from 1 to 65535",
        ),
        (
            "postgres://postgres@127.0.0.1:5432,127.0.0.1:5433/test?target_session_attrs=any",
            "takes read-write or primary",
        ),
    ] {
        refused(&["serve", "--data", data, "--store", url], expected);
    }
    // `cairn migrate` is a one-shot command: a database it cannot reach
    // fails it at once (`cairn serve` waits for it; see
    // a_database_that_cannot_be_reached_at_start_answers_503_until_it_can).
    refused(
        &[
            "migrate",
            "--store",
            "postgres://postgres@127.0.0.1:1,127.0.0.1:2/none?target_session_attrs=read-write",
        ],
        "no writable PostgreSQL primary among 127.0.0.1:1, 127.0.0.1:2: 127.0.0.1:1:",
    );
    refused(
        &["migrate", "--store", "postgres://postgres@127.0.0.1:1/none"],
        "cannot connect to PostgreSQL",
    );
    refused(
        &[
            "serve",
            "--data",
            data,
            "--store",
            "postgres://postgres@127.0.0.1:5432/test",
            "--unsafe-ack-before-write",
        ],
        "embedded store only",
    );
    refused(
        &[
            "serve",
            "--data",
            data,
            "--store",
            "postgres://x",
            "--pg-pool-max",
            "0",
        ],
        "--pg-pool-max",
    );
    assert!(!dir.path().join("data").exists(), "nothing was created");
}
