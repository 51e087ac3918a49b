//! `cairn sagas` end to end: the real server binary, a saga runner of the
//! SDK in this process, and the real CLI binary. One saga fails a step for
//! good and its compensation fails too, so it is `failed`; `cairn sagas
//! retry` gets it compensated. Another saga keeps failing a step with
//! retries; `cairn sagas abort` gets its completed step compensated and
//! the saga `aborted`. `list` filters by state and name, `show` prints
//! steps, attempts and errors from the facts. Malformed and hostile
//! arguments get clear errors and write nothing.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_client::{
    Client, ClientOptions, Hash, SagaDefinition, SagaRunner, SagaRunnerOptions, SagaState, Step,
    StepError,
};
use common::{last_seq, put_one, run_cli, CliOutput, Server};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Longest wait for a saga to reach a state.
const WAIT_MAX: Duration = Duration::from_secs(30);

fn sagas(server: &Server, args: &[&str]) -> CliOutput {
    let mut full_args = vec!["sagas"];
    full_args.extend_from_slice(args);
    full_args.extend_from_slice(&["--server", &server.base]);
    run_cli(&full_args, "")
}

fn sagas_ok(server: &Server, args: &[&str]) -> String {
    let output = sagas(server, args);
    assert!(
        output.success,
        "cairn sagas {args:?} failed:\n{}",
        output.stderr
    );
    output.stdout
}

fn sagas_fails(server: &Server, args: &[&str]) -> String {
    let output = sagas(server, args);
    assert!(
        !output.success,
        "cairn sagas {args:?} succeeded:\n{}",
        output.stdout
    );
    output.stderr
}

/// `cairn sagas show ID --json`.
fn show(server: &Server, id: &Hash) -> Value {
    serde_json::from_str(&sagas_ok(server, &["show", &id.to_hex(), "--json"])).expect("JSON")
}

/// Waits until `cairn sagas show` reports `state`.
fn wait_for_state(server: &Server, id: &Hash, state: &str) -> Value {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let journal = show(server, id);
        if journal["state"] == state {
            return journal;
        }
        assert!(
            Instant::now() < deadline,
            "saga {id} is not {state}: {journal:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The test saga: `reserve` succeeds (its compensation fails while
/// `release_fails` is set), `pay` fails for good for the input
/// `{"pay": "decline"}` and retryably (many attempts) for `"later"`.
fn definition(release_fails: Arc<AtomicBool>, pay_attempts: Arc<AtomicU32>) -> SagaDefinition {
    SagaDefinition::new("cli-demo", 1)
        .step(
            Step::new("reserve", |_step| async { Ok(json!({"reserved": true})) })
                .compensate(move |_step| {
                    let release_fails = Arc::clone(&release_fails);
                    async move {
                        if release_fails.load(Ordering::SeqCst) {
                            return Err(StepError::retryable("the warehouse is closed"));
                        }
                        Ok(Value::Null)
                    }
                })
                .compensation_attempts_max(2),
        )
        .step(
            Step::new("pay", move |step| {
                let pay_attempts = Arc::clone(&pay_attempts);
                async move {
                    pay_attempts.fetch_add(1, Ordering::SeqCst);
                    match step.input["pay"].as_str() {
                        Some("decline") => Err(StepError::permanent("card declined")),
                        _ => Err(StepError::retryable("the bank is busy")),
                    }
                }
            })
            .attempts_max(1_000)
            .retry_delay(Duration::from_millis(100)),
        )
}

#[test]
fn operators_list_show_retry_and_abort_sagas() {
    let data = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(data.path(), &[]);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let client = Client::remote(ClientOptions::new([server.base.as_str()])).expect("a client");
    let release_fails = Arc::new(AtomicBool::new(true));
    let pay_attempts = Arc::new(AtomicU32::new(0));
    let shutdown = CancellationToken::new();
    let runner = runtime.spawn(
        SagaRunner::new(client.clone())
            .saga(definition(
                Arc::clone(&release_fails),
                Arc::clone(&pay_attempts),
            ))
            .options(SagaRunnerOptions {
                concurrency: 4,
                lease_ms: 1_000,
            })
            .run(shutdown.clone()),
    );
    let start = |id: &str, input: Value| {
        runtime.block_on(async {
            let deadline = Instant::now() + WAIT_MAX;
            loop {
                match client.sagas().start("cli-demo", 1, id, input.clone()).await {
                    Ok(saga) => return saga,
                    // The runner registers the definition as it starts.
                    Err(cairn_client::SagaError::UnknownSaga { .. })
                        if Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(error) => panic!("cannot start a saga: {error}"),
                }
            }
        })
    };

    // Declined, and the release fails twice: failed, waiting for an operator.
    let declined = start("order-1", json!({"pay": "decline"}));
    let journal = wait_for_state(&server, &declined, "failed");
    assert_eq!(
        journal["steps"][0]["status"], "compensation_failed",
        "{journal:#}"
    );
    assert_eq!(
        journal["steps"][0]["compensation_attempts"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(journal["steps"][1]["attempts"][0]["error"], "card declined");
    let listed = sagas_ok(&server, &["list", "--state", "failed"]);
    assert!(listed.contains(&declined.to_hex()), "{listed}");
    assert!(listed.contains("the compensation of step"), "{listed}");
    let shown = sagas_ok(&server, &["show", &declined.to_hex()]);
    assert!(shown.contains("state     failed"), "{shown}");
    assert!(shown.contains("card declined"), "{shown}");

    // The warehouse opens; a retry compensates.
    release_fails.store(false, Ordering::SeqCst);
    let retried = sagas_ok(
        &server,
        &["retry", &declined.to_hex(), "--reason", "warehouse open"],
    );
    assert!(retried.starts_with("retry requested: "), "{retried}");
    let journal = wait_for_state(&server, &declined, "compensated");
    assert_eq!(journal["steps"][0]["status"], "compensated");
    assert_eq!(journal["retry_requests"][0]["reason"], "warehouse open");

    // A saga that keeps retrying is aborted: its reserve is compensated.
    let stuck = start("order-2", json!({"pay": "later"}));
    wait_for_state(&server, &stuck, "running");
    let deadline = Instant::now() + WAIT_MAX;
    while pay_attempts.load(Ordering::SeqCst) < 3 {
        assert!(Instant::now() < deadline, "pay was not retried");
        std::thread::sleep(Duration::from_millis(20));
    }
    let aborted = sagas_ok(&server, &["abort", &stuck.to_hex()]);
    assert!(aborted.starts_with("abort requested: "), "{aborted}");
    let journal = wait_for_state(&server, &stuck, "aborted");
    assert_eq!(journal["steps"][0]["status"], "compensated", "{journal:#}");

    // Filters.
    let listed: Value = serde_json::from_str(&sagas_ok(
        &server,
        &["list", "--state", "aborted", "--json"],
    ))
    .expect("JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed:#}");
    assert_eq!(listed[0]["id"], stuck.to_hex());
    let listed: Value =
        serde_json::from_str(&sagas_ok(&server, &["list", "--name", "other", "--json"]))
            .expect("JSON");
    assert_eq!(listed, json!([]));
    let all: Value = serde_json::from_str(&sagas_ok(&server, &["list", "--json"])).expect("JSON");
    assert_eq!(all.as_array().map(Vec::len), Some(2));

    // Bad and hostile input: clear errors, nothing written.
    let seq_before = last_seq(&server);
    let not_a_saga = put_one(
        &server,
        json!({"type": "Demo.Thing", "fields": {}, "predecessors": {}}),
    );
    let seq_before = seq_before.max(last_seq(&server));
    let error = sagas_fails(&server, &["show", "not-a-hash"]);
    assert!(error.contains("64 lowercase hexadecimal"), "{error}");
    let error = sagas_fails(&server, &["show", &not_a_saga]);
    assert!(error.contains("is not a saga"), "{error}");
    let error = sagas_fails(&server, &["show", &"0".repeat(64)]);
    assert!(error.contains("is not a saga"), "{error}");
    let error = sagas_fails(&server, &["list", "--state", "bogus"]);
    assert!(error.contains("a state is one of"), "{error}");
    let error = sagas_fails(&server, &["list", "--name", "../etc/passwd"]);
    assert!(error.contains("[A-Za-z0-9_-]"), "{error}");
    let error = sagas_fails(&server, &["list", "--limit", "0"]);
    assert!(error.contains("limit"), "{error}");
    let error = sagas_fails(&server, &["retry", &declined.to_hex()]);
    assert!(
        error.contains("is compensated: an ended saga cannot be retried"),
        "{error}"
    );
    let error = sagas_fails(&server, &["abort", &stuck.to_hex()]);
    assert!(
        error.contains("is aborted: an ended saga cannot be aborted"),
        "{error}"
    );
    let error = sagas_fails(&server, &["abort", &not_a_saga]);
    assert!(error.contains("is not a saga"), "{error}");
    let long_reason = "x".repeat(cairn_client::limits::SAGA_ERROR_BYTES_MAX + 1);
    let error = sagas_fails(
        &server,
        &["retry", &stuck.to_hex(), "--reason", &long_reason],
    );
    assert!(error.contains("a reason is at most"), "{error}");
    assert_eq!(
        last_seq(&server),
        seq_before,
        "a refused command wrote a fact"
    );

    shutdown.cancel();
    runtime
        .block_on(runner)
        .expect("the runner task")
        .expect("the runner stops cleanly");
    assert_eq!(
        runtime
            .block_on(client.sagas().journal(&declined))
            .expect("a journal")
            .state(),
        SagaState::Compensated
    );
}
