//! Helpers shared by the multi-server tests (`tests/multi_server_*.rs`):
//! several `cairn serve` processes over one PostgreSQL database, requests
//! that report a missing answer instead of panicking, and checks of the
//! log and of subscriptions.

use std::collections::HashSet;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use super::{get_json, Server};

/// Servers that share one database in the multi-server tests.
pub const N_SERVERS: usize = 3;

/// Three servers on one data directory, hence (on PostgreSQL) one database.
pub fn start_servers(data: &Path) -> Vec<Server> {
    (0..N_SERVERS).map(|_| Server::start(data, &[])).collect()
}

/// A blocking client with a short connect timeout, so that a dead server
/// is noticed at once.
pub fn client(timeout: Duration) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("client builds")
}

/// A runtime for the few async calls of these tests (the SDK client, the
/// test database).
pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the runtime builds")
}

/// Sends a request; its status and JSON answer (a string if the body is not
/// JSON), or why no answer came.
pub fn exchange(
    client: &reqwest::blocking::Client,
    method: Method,
    url: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().map_err(|error| format!("{error:?}"))?;
    let status = response.status().as_u16();
    let text = response.text().map_err(|error| format!("{error:?}"))?;
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, value))
}

/// The hash of result `idx` of a write answer.
pub fn result_hash(answer: &Value, idx: usize) -> String {
    answer["results"][idx]["hash"]
        .as_str()
        .unwrap_or_else(|| panic!("no hash {idx} in {answer}"))
        .to_string()
}

/// The hashes of a page of facts (log or successors).
pub fn page_hashes(page: &Value) -> Vec<String> {
    page["facts"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page of facts: {page}"))
        .iter()
        .map(|entry| entry["hash"].as_str().expect("hash").to_string())
        .collect()
}

/// The messages of a pull's answer.
pub fn messages_of(answer: &Value) -> Vec<Value> {
    answer["messages"].as_array().cloned().unwrap_or_default()
}

/// The body of an ack (or nack) of `messages`.
pub fn ack_body(messages: &[Value]) -> Value {
    let tokens: Vec<&Value> = messages.iter().map(|message| &message["token"]).collect();
    json!({ "tokens": tokens })
}

/// The status of each result of an ack's answer, in the order of the
/// tokens ("?" for a result without one); an answer without one result per
/// token (`n_tokens`) is noted in `errors`.
pub fn ack_result_statuses(
    answer: &Value,
    n_tokens: usize,
    errors: &mut Vec<String>,
) -> Vec<String> {
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    if results.len() != n_tokens {
        errors.push(format!("ack answered {answer}"));
    }
    results
        .iter()
        .map(|result| result["status"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// The hash of a message of a pull.
pub fn message_hash(message: &Value) -> String {
    message["hash"].as_str().expect("message hash").to_string()
}

/// Sends a request to `path` on `server`; its status and JSON answer.
/// Panics when no answer comes.
pub fn request(
    server: &Server,
    client: &reqwest::blocking::Client,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    exchange(client, method, &server.url(path), body)
        .unwrap_or_else(|error| panic!("{path}: no answer: {error}"))
}

/// Posts one batch of facts; status and JSON answer.
pub fn write_facts(
    server: &Server,
    client: &reqwest::blocking::Client,
    facts: &[Value],
) -> (u16, Value) {
    let body = json!({ "facts": facts });
    request(server, client, Method::POST, "/v1/facts", Some(&body))
}

/// How long [`pull_at_least`] keeps pulling.
pub const PULL_AT_LEAST_MAX: Duration = Duration::from_secs(10);

/// Pulls through `server` until at least `count` messages came or
/// [`PULL_AT_LEAST_MAX`] passed.
pub fn pull_at_least(
    server: &Server,
    client: &reqwest::blocking::Client,
    name: &str,
    count: usize,
) -> Vec<Value> {
    let deadline = Instant::now() + PULL_AT_LEAST_MAX;
    let path = format!("/v1/subscriptions/{name}/pull");
    let body = json!({"max": 100, "wait_ms": 1000});
    let mut messages = Vec::new();
    while messages.len() < count && Instant::now() < deadline {
        let (status, answer) = request(server, client, Method::POST, &path, Some(&body));
        assert_eq!(status, 200, "pull: {answer}");
        messages.extend(messages_of(&answer));
    }
    messages
}

/// Acks `messages` through `server`; each must answer "acked".
pub fn ack_all(
    server: &Server,
    client: &reqwest::blocking::Client,
    name: &str,
    messages: &[Value],
) {
    let (status, answer) = request(
        server,
        client,
        Method::POST,
        &format!("/v1/subscriptions/{name}/ack"),
        Some(&ack_body(messages)),
    );
    assert_eq!(status, 200, "ack: {answer}");
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), messages.len(), "{answer}");
    assert!(results.iter().all(|r| r["status"] == "acked"), "{answer}");
}

/// Asserts that subscription `name`, seen through `server`, has no
/// backlog and nothing in flight.
pub fn assert_subscription_drained(server: &Server, name: &str) {
    let (status, view) = get_json(server, &format!("/v1/subscriptions/{name}"));
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (view["backlog"].as_u64(), view["in_flight"].as_u64()),
        (Some(0), Some(0)),
        "subscription {name} through {} has messages left: {view}",
        server.base
    );
}

/// Starts a long-poll on every URL of `poll_urls` (each waiting for a
/// fact to come), calls `write` once they wait, and asserts that every
/// poll answers with the fact whose hash `write` returns, within 5 s of
/// the write. `written` names the write in failure messages. Returns the
/// hash.
pub fn assert_long_polls_wake_on(
    poll_urls: Vec<String>,
    written: &str,
    write: impl FnOnce() -> String,
) -> String {
    let polls: Vec<_> = poll_urls
        .into_iter()
        .map(|url| {
            std::thread::spawn(move || {
                let answer = exchange(&client(Duration::from_secs(30)), Method::GET, &url, None);
                (url, answer, Instant::now())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let written_at = Instant::now();
    let hash = write();
    for poll in polls {
        let (url, answer, answered_at) = poll.join().unwrap();
        let (status, page) = answer.unwrap_or_else(|error| panic!("{url}: {error}"));
        assert_eq!(status, 200, "{url}: {page}");
        assert!(
            page_hashes(&page).contains(&hash),
            "the long-poll {url} answered without {written}: {page}"
        );
        let woke_after = answered_at.saturating_duration_since(written_at);
        assert!(
            woke_after < Duration::from_secs(5),
            "the long-poll {url} woke {woke_after:?} after {written}"
        );
    }
    hash
}

/// The whole log of a server as (seq, hash).
pub fn read_log(server: &Server, client: &reqwest::blocking::Client) -> Vec<(u64, String)> {
    let mut entries = Vec::new();
    let mut after = 0;
    for _ in 0..10_000 {
        let path = format!("/v1/log?after={after}&limit=10000");
        let (status, page) = request(server, client, Method::GET, &path, None);
        assert_eq!(status, 200, "{page}");
        for entry in page["facts"].as_array().expect("facts") {
            let seq = entry["seq"].as_u64().expect("seq");
            entries.push((seq, entry["hash"].as_str().expect("hash").to_string()));
        }
        let next = page["next"].as_u64().expect("next");
        if next == after {
            return entries;
        }
        after = next;
    }
    panic!("the log did not end");
}

/// The hashes of a log read by [`read_log`].
pub fn log_hashes(log: &[(u64, String)]) -> HashSet<&str> {
    log.iter().map(|(_, hash)| hash.as_str()).collect()
}

/// Asserts that the seqs of a whole log are 1, 2, 3, … without gaps.
pub fn assert_seqs_dense(log: &[(u64, String)]) {
    let seqs: Vec<u64> = log.iter().map(|(seq, _)| *seq).collect();
    let dense: Vec<u64> = (1..=log.len() as u64).collect();
    assert!(seqs == dense, "the log's seqs are 1, 2, 3, … without gaps");
}

/// Joins every thread of `threads` (`what` names one, for the panic
/// message) and returns what they returned.
pub fn join_all<T>(threads: Vec<JoinHandle<T>>, what: &str) -> Vec<T> {
    threads
        .into_iter()
        .map(|thread| thread.join().unwrap_or_else(|_| panic!("{what} panicked")))
        .collect()
}

/// At most `n` items of a slice, for failure messages.
pub fn first<T>(items: &[T], n: usize) -> &[T] {
    &items[..items.len().min(n)]
}
