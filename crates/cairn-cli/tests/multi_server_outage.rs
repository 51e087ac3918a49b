//! A `cairn serve` on PostgreSQL whose database goes away (connections cut
//! by a TCP proxy inside the test, `common/proxy.rs`) or stops answering (a
//! partition: the proxy holds every byte) answers 503 within bounded time
//! and heals without a restart.
//!
//! It only makes sense on the PostgreSQL backend: each test returns at once
//! unless `CAIRN_TEST_BACKEND=postgres`. Run with
//! `CAIRN_TEST_BACKEND=postgres cargo test -p cairn-cli --test multi_server_outage`.
//! The tests use loopback only, bound every loop in count and time, and
//! stop only the processes they started.

mod common;

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_store::postgres::testing::TestDatabase;
use common::multi_server::*;
use common::proxy::Proxy;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// A database outage
// ---------------------------------------------------------------------------

/// How long a request may take while the database is unreachable.
const OUTAGE_ANSWER_MAX: Duration = Duration::from_secs(10);
/// How long `/v1/health` may take to follow the database going away or
/// coming back.
const HEALTH_CHANGE_MAX: Duration = Duration::from_secs(10);
/// Facts of the batch in flight when the database is cut.
const OUTAGE_BULK_FACTS: usize = 5_000;

#[test]
fn database_outage_answers_503_and_recovers_without_restart() {
    if !on_postgres() {
        return;
    }
    let Some(setup) = ProxiedServer::start() else {
        return;
    };
    let (server, proxy) = (&setup.server, &setup.proxy);
    let client = client(Duration::from_secs(30));
    let name = "outage";
    write_and_consume(server, &client, name);

    // A big batch in flight while the database goes away, then the cut.
    let bulk: Vec<Value> = (0..OUTAGE_BULK_FACTS)
        .map(|n| fact("Outage.Bulk", json!({ "n": n }), json!({})))
        .collect();
    let bulk_hashes: Vec<String> = bulk.iter().map(fact_hash).collect();
    let bulk_write = {
        let (client, url) = (client.clone(), server.url("/v1/facts"));
        let body = json!({ "facts": bulk });
        std::thread::spawn(move || {
            let started = Instant::now();
            let answer = exchange(&client, Method::POST, &url, Some(&body));
            (answer, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(30));
    proxy.cut();
    let cut_at = Instant::now();

    // Health says so within a few seconds.
    await_health_unavailable(server, &client, "after the cut", cut_at);
    eprintln!("health answered 503 {:?} after the cut", cut_at.elapsed());

    // A write answers 503 promptly (nothing of its batch is stored: checked
    // after), and so does a pull.
    let chain = chain_of_facts("Outage.Chain", 5);
    let chain_hashes: Vec<String> = chain.iter().map(fact_hash).collect();
    assert_answers_unavailable(
        server,
        &client,
        "/v1/facts",
        &json!({ "facts": chain }),
        "a write during the outage",
    );
    assert_answers_unavailable(
        server,
        &client,
        &format!("/v1/subscriptions/{name}/pull"),
        &json!({"max": 10, "wait_ms": 0}),
        "a pull during the outage",
    );

    let (bulk_answer, bulk_took) = bulk_write.join().expect("the bulk writer does not panic");
    let (bulk_status, bulk_error) = bulk_answer
        .as_ref()
        .map(|(status, answer)| (*status, answer.clone()))
        .unwrap_or_else(|error| panic!("the write in flight at the cut got no answer: {error}"));
    assert!(
        bulk_status == 200 || bulk_status == 503,
        "the write in flight at the cut answered {bulk_status}: {bulk_error}"
    );
    assert!(
        bulk_took < OUTAGE_ANSWER_MAX,
        "the write in flight at the cut took {bulk_took:?}"
    );
    eprintln!("the write in flight at the cut: {bulk_answer:?} after {bulk_took:?}");

    // The database comes back: the same server heals by itself.
    proxy.restore();
    let restored_at = Instant::now();
    await_health(
        server,
        &client,
        200,
        "after the database returned",
        restored_at,
    );

    // All or nothing for both batches that failed or raced the cut.
    let log = read_log(server, &client);
    let in_log = log_hashes(&log);
    assert_stored_all_or_nothing(&chain_hashes, &in_log, false, "a batch answered 503");
    assert_stored_all_or_nothing(
        &bulk_hashes,
        &in_log,
        bulk_status == 200,
        "the batch in flight at the cut",
    );
    assert_seqs_dense(&log);

    assert_writes_and_delivers_again(server, &client, name, "after the outage");

    // Long-polls of the healed server wake on writes of another server
    // (its LISTEN connection was cut too).
    let other_data = tempfile::tempdir().unwrap();
    let other = Server::start_with_store(other_data.path(), &setup.direct_url, &[]);
    let after = last_seq(server);
    let poll_url = server.url(&format!("/v1/log?after={after}&wait_ms=20000"));
    assert_long_polls_wake_on(vec![poll_url], "the other server's write", || {
        let late = fact("Outage.Late", json!({}), json!({}));
        let (status, answer) = write_facts(&other, &client, &[late]);
        assert_eq!(status, 200, "{answer}");
        result_hash(&answer, 0)
    });

    drop(other);
    drop(setup);
}

// ---------------------------------------------------------------------------
// A database that stops answering
// ---------------------------------------------------------------------------

#[test]
fn database_that_stops_answering_answers_503_in_bounded_time_and_recovers() {
    if !on_postgres() {
        return;
    }
    let Some(setup) = ProxiedServer::start() else {
        return;
    };
    let (server, proxy) = (&setup.server, &setup.proxy);
    // Requests that hang are the failure this test looks for: give up on
    // them a little after the bound.
    let client = client(OUTAGE_ANSWER_MAX + Duration::from_secs(5));
    let name = "partition";
    write_and_consume(server, &client, name);

    // Writes and waiting pulls run back to back, so that some are in the
    // middle of a statement when the partition starts.
    let stop = Arc::new(AtomicBool::new(false));
    let background: Vec<_> = [BackgroundKind::Write, BackgroundKind::Pull]
        .into_iter()
        .map(|kind| {
            let (base, name, stop) = (server.base.clone(), name.to_string(), Arc::clone(&stop));
            std::thread::spawn(move || background_load(kind, &base, &name, &stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    // Bytes stop flowing both ways, nothing is closed (a network
    // partition), right after a write's statement went to PostgreSQL.
    let stalled_at = proxy.stall_after_request_of(8 * 1024, Duration::from_secs(10));
    await_health_unavailable(server, &client, "into the partition", stalled_at);
    let chain = chain_of_facts("Partition.Chain", 5);
    let chain_hashes: Vec<String> = chain.iter().map(fact_hash).collect();
    assert_answers_unavailable(
        server,
        &client,
        "/v1/facts",
        &json!({ "facts": chain }),
        "a write during the partition",
    );
    assert_answers_unavailable(
        server,
        &client,
        &format!("/v1/subscriptions/{name}/pull"),
        &json!({"max": 10, "wait_ms": 0}),
        "a pull during the partition",
    );

    // The partition lasts longer than any request may take.
    let partition_end = stalled_at + OUTAGE_ANSWER_MAX + Duration::from_secs(2);
    std::thread::sleep(partition_end.saturating_duration_since(Instant::now()));
    stop.store(true, Ordering::Release);

    // The partition heals: the same server recovers by itself.
    proxy.restore();
    let restored_at = Instant::now();
    let requests: Vec<BackgroundRequest> = join_all(background, "the background load")
        .into_iter()
        .flatten()
        .collect();
    await_health(
        server,
        &client,
        200,
        "after the partition healed",
        restored_at,
    );
    let log = read_log(server, &client);
    let in_log = log_hashes(&log);
    assert_stored_all_or_nothing(&chain_hashes, &in_log, false, "a batch answered 503");
    let hung: Vec<String> = requests
        .iter()
        .filter(|request| {
            let allowed = OUTAGE_ANSWER_MAX + request.wait;
            request.started_at < restored_at && (request.answer.is_err() || request.took > allowed)
        })
        .map(|request| {
            let sent = if request.started_at < stalled_at {
                format!("{:?} before", stalled_at - request.started_at)
            } else {
                format!("{:?} after", request.started_at - stalled_at)
            };
            format!(
                "{:?} sent {sent} the partition began, answered {:?} after {:?}",
                request.kind, request.answer, request.took
            )
        })
        .collect();
    let failed: Vec<String> = requests
        .iter()
        .filter(
            |request| matches!(request.answer, Ok((status, _)) if status != 200 && status != 503),
        )
        .map(|request| format!("{:?} answered {:?}", request.kind, request.answer))
        .collect();
    eprintln!(
        "background requests: {} ({} during the partition)",
        requests.len(),
        requests
            .iter()
            .filter(|r| r.started_at + r.took > stalled_at && r.started_at < restored_at)
            .count()
    );
    for request in requests.iter().filter(|r| !r.hashes.is_empty()) {
        assert_stored_all_or_nothing(
            &request.hashes,
            &in_log,
            matches!(request.answer, Ok((200, _))),
            &format!(
                "a batch of the background load (answer {:?})",
                request.answer
            ),
        );
    }
    assert_seqs_dense(&log);
    assert_writes_and_delivers_again(server, &client, name, "after the partition");
    // Last, so that recovery is checked even when this fails.
    assert!(
        hung.is_empty(),
        "requests in flight during the partition hung beyond {OUTAGE_ANSWER_MAX:?}: {hung:#?}"
    );
    assert!(
        failed.is_empty(),
        "answers other than 200 or 503: {failed:?}"
    );
    drop(setup);
}

#[derive(Clone, Copy, Debug)]
enum BackgroundKind {
    Write,
    Pull,
}

/// A request of the background load and how it went.
struct BackgroundRequest {
    kind: BackgroundKind,
    started_at: Instant,
    took: Duration,
    /// How long the request may wait by design (a pull's `wait_ms`).
    wait: Duration,
    /// Status and error code, or why no answer came.
    answer: Result<(u16, String), String>,
    /// The facts of a write.
    hashes: Vec<String>,
}

/// Writes batches of 200 facts, or pulls with `wait_ms` 1000 (from a
/// subscription with no messages: the pull waits), back to back until
/// `stop`; at most 1,000 requests.
fn background_load(
    kind: BackgroundKind,
    base: &str,
    name: &str,
    stop: &AtomicBool,
) -> Vec<BackgroundRequest> {
    let client = client(OUTAGE_ANSWER_MAX + Duration::from_secs(5));
    let mut requests = Vec::new();
    for batch_idx in 0..1_000 {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let (url, body, hashes, wait) = match kind {
            BackgroundKind::Write => {
                let facts: Vec<Value> = (0..200)
                    .map(|n| {
                        fact(
                            "Partition.Load",
                            json!({"batch": batch_idx, "n": n}),
                            json!({}),
                        )
                    })
                    .collect();
                let hashes = facts.iter().map(fact_hash).collect();
                (
                    format!("{base}/v1/facts"),
                    json!({ "facts": facts }),
                    hashes,
                    Duration::ZERO,
                )
            }
            BackgroundKind::Pull => (
                format!("{base}/v1/subscriptions/{name}/pull"),
                json!({"max": 10, "wait_ms": 1000}),
                Vec::new(),
                Duration::from_millis(1000),
            ),
        };
        let started_at = Instant::now();
        let answer = exchange(&client, Method::POST, &url, Some(&body)).map(|(status, answer)| {
            let code = answer["error"]["code"].as_str().unwrap_or("").to_string();
            (status, code)
        });
        let failed = !matches!(answer, Ok((200, _)));
        requests.push(BackgroundRequest {
            kind,
            started_at,
            took: started_at.elapsed(),
            wait,
            answer,
            hashes,
        });
        if failed {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    requests
}

/// One server whose database connections pass through a [`Proxy`], on a
/// database of its own. Fields drop in order: the server before the
/// proxy, the proxy before the database.
struct ProxiedServer {
    server: Server,
    proxy: Proxy,
    /// The database's own URL, bypassing the proxy.
    direct_url: String,
    _database: TestDatabase,
    _data: tempfile::TempDir,
}

impl ProxiedServer {
    /// `None` when `CAIRN_TEST_POSTGRES=skip`.
    fn start() -> Option<ProxiedServer> {
        let database = current_thread_runtime().block_on(TestDatabase::create())?;
        let direct_url = database.url();
        let (user, postgres_address) = user_and_address(&direct_url);
        let proxy = Proxy::start(postgres_address);
        let proxied_url = format!(
            "postgres://{user}@127.0.0.1:{}/{}",
            proxy.address.port(),
            database.name()
        );
        let data = tempfile::tempdir().unwrap();
        let server = Server::start_with_store(
            data.path(),
            &proxied_url,
            &[
                "--pg-acquire-timeout-ms",
                "1000",
                "--pg-statement-timeout-ms",
                "2000",
            ],
        );
        Some(ProxiedServer {
            server,
            proxy,
            direct_url,
            _database: database,
            _data: data,
        })
    }
}

/// Checks that the server works: writes three `Outage.Event` facts (and
/// that the test computes their hashes as the server does), creates
/// subscription `name` on that type, pulls and acks them.
fn write_and_consume(server: &Server, client: &reqwest::blocking::Client, name: &str) {
    let events: Vec<Value> = (0..3)
        .map(|n| fact("Outage.Event", json!({ "n": n }), json!({})))
        .collect();
    let (status, answer) = write_facts(server, client, &events);
    assert_eq!(status, 200, "{answer}");
    for (idx, event) in events.iter().enumerate() {
        assert_eq!(
            result_hash(&answer, idx),
            fact_hash(event),
            "the test computes hashes as the server"
        );
    }
    let (status, view) = request(
        server,
        client,
        Method::PUT,
        &format!("/v1/subscriptions/{name}"),
        Some(&json!({"type": "Outage.Event", "lease_ms": 5000})),
    );
    assert_eq!(status, 201, "{view}");
    let messages = pull_at_least(server, client, name, 3);
    assert_eq!(messages.len(), 3, "{messages:?}");
    ack_all(server, client, name, &messages);
}

/// `n` facts, each naming the one before it, for one batch.
fn chain_of_facts(type_name: &str, n: usize) -> Vec<Value> {
    let mut facts: Vec<Value> = Vec::with_capacity(n);
    for idx in 0..n {
        let predecessors = match facts.last() {
            Some(previous) => json!({ "previous": fact_hash(previous) }),
            None => json!({}),
        };
        facts.push(fact(type_name, json!({ "n": idx }), predecessors));
    }
    facts
}

/// Polls `/v1/health` until it answers `expected`, for at most
/// [`HEALTH_CHANGE_MAX`]; every answer must come within
/// [`OUTAGE_ANSWER_MAX`] and be 200 or 503. `event` says what happened at
/// `since`, for failure messages. Returns the body of the answer.
fn await_health(
    server: &Server,
    client: &reqwest::blocking::Client,
    expected: u16,
    event: &str,
    since: Instant,
) -> Value {
    let deadline = Instant::now() + HEALTH_CHANGE_MAX;
    loop {
        let started = Instant::now();
        let (status, health) = exchange(client, Method::GET, &server.url("/v1/health"), None)
            .unwrap_or_else(|error| {
                panic!(
                    "health got no answer in {:?}: {error}\n{}",
                    started.elapsed(),
                    server.log_text()
                )
            });
        assert!(
            started.elapsed() < OUTAGE_ANSWER_MAX,
            "health took {:?} to answer",
            started.elapsed()
        );
        assert!(
            status == 200 || status == 503,
            "health answered {status}: {health}"
        );
        if status == expected {
            return health;
        }
        assert!(
            Instant::now() < deadline,
            "health {:?} {event} answered {status}, not {expected}: {health}\n{}",
            since.elapsed(),
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// [`await_health`] for a 503 with the error code `store_unavailable`.
fn await_health_unavailable(
    server: &Server,
    client: &reqwest::blocking::Client,
    event: &str,
    since: Instant,
) {
    let health = await_health(server, client, 503, event, since);
    assert_eq!(health["error"]["code"], "store_unavailable", "{health}");
}

/// Posts `body` to `path` while the database cannot be reached: the
/// answer must come within [`OUTAGE_ANSWER_MAX`] and be a 503 with the
/// error code `store_unavailable` and a message. `what` names the request
/// in failure messages.
fn assert_answers_unavailable(
    server: &Server,
    client: &reqwest::blocking::Client,
    path: &str,
    body: &Value,
    what: &str,
) {
    let started = Instant::now();
    let answer = exchange(client, Method::POST, &server.url(path), Some(body));
    let took = started.elapsed();
    let (status, answer) =
        answer.unwrap_or_else(|error| panic!("{what} got no answer in {took:?}: {error}"));
    assert_eq!(status, 503, "{what}: {answer}");
    assert_eq!(
        answer["error"]["code"], "store_unavailable",
        "{what}: {answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "{what}: {answer}"
    );
    assert!(took < OUTAGE_ANSWER_MAX, "{what} took {took:?} to fail");
}

/// Asserts that the facts of one batch (`hashes`) are in the log all or
/// none, and all when the batch was `acknowledged`. `batch` names it in
/// failure messages.
fn assert_stored_all_or_nothing(
    hashes: &[String],
    in_log: &HashSet<&str>,
    acknowledged: bool,
    batch: &str,
) {
    let stored = hashes
        .iter()
        .filter(|hash| in_log.contains(hash.as_str()))
        .count();
    assert!(
        stored == 0 || stored == hashes.len(),
        "{stored} of the {} facts of {batch} are stored",
        hashes.len()
    );
    if acknowledged {
        assert_eq!(
            stored,
            hashes.len(),
            "{batch}, acknowledged, is stored whole"
        );
    }
}

/// Checks that the server works again after a failure (`after` says
/// which): a new `Outage.Event` is written, and is the one message then
/// delivered on subscription `name`, which acks it.
fn assert_writes_and_delivers_again(
    server: &Server,
    client: &reqwest::blocking::Client,
    name: &str,
    after: &str,
) {
    let event = fact("Outage.Event", json!({ "n": after }), json!({}));
    let (status, answer) = write_facts(server, client, &[event]);
    assert_eq!(status, 200, "a write {after}: {answer}");
    let messages = pull_at_least(server, client, name, 1);
    let hashes: Vec<String> = messages.iter().map(message_hash).collect();
    assert_eq!(
        hashes,
        vec![result_hash(&answer, 0)],
        "the one new event is delivered {after}"
    );
    ack_all(server, client, name, &messages);
}

/// The user and the socket address of a `postgres://user@host:port/db` URL.
fn user_and_address(url: &str) -> (String, SocketAddr) {
    let rest = url.strip_prefix("postgres://").expect("a postgres:// URL");
    let (user, rest) = rest.split_once('@').expect("a user in the URL");
    let host_port = rest.split('/').next().expect("host and port");
    let address = host_port
        .to_socket_addrs()
        .expect("the address resolves")
        .next()
        .expect("one address");
    (user.to_string(), address)
}
