//! Replication links end to end (`/v1/links`, "Replication links" in
//! `docs/api-v1.md`), with real `cairn serve` processes: chains, stars,
//! cycles and rings that converge with every fact once everywhere and
//! nothing looping; filters and the closure under predecessors; a source
//! with `--auth`, a predecessor the link's token may not read, and a token
//! rotated without a restart; `kill -9` of the source and of the receiver
//! while facts flow; a partition and a stalled connection (`cairn check`'s
//! fault proxy); hostile sources (a fake HTTP server in the test); a
//! bookmark made invalid by a source restored from an older backup or by
//! another store at the same URL; bad definitions; pause, resume and
//! delete; and on PostgreSQL, one runner per link and a takeover when it
//! dies.
//!
//! Every wait polls with a deadline; the few fixed pauses only watch that
//! nothing more happens (no loop, nothing received while paused). The
//! tests use loopback only and stop only the processes they started, by
//! PID.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cairn_check::proxy::{FaultProxy, NetworkFault};
use cairn_store::postgres::testing::TestDatabase;
use common::*;
use serde_json::{json, Value};

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);
/// How long links may take to deliver what their sources hold.
const CONVERGE_MAX: Duration = Duration::from_secs(30);
/// How long a link may take to show a failure (a stalled request is cut
/// off after its long-poll plus 10 s).
const FAIL_MAX: Duration = Duration::from_secs(25);
/// How long to watch that nothing more happens.
const QUIET: Duration = Duration::from_millis(2_000);

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// One blocking client for every request of the tests.
fn client() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("client builds")
    })
}

/// Sends a request with an optional bearer token and JSON body; answers
/// the status and the JSON answer (a string if it is not JSON).
fn call(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client().request(method, server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request
        .send()
        .unwrap_or_else(|error| panic!("{} {path}: no answer: {error}", server.base));
    let status = response.status().as_u16();
    let text = response.text().expect("the body reads");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// The error code of an error answer.
fn code(answer: &Value) -> &str {
    answer["error"]["code"].as_str().unwrap_or("")
}

/// Polls `probe` until it answers `Ok`, for at most `limit`; panics with
/// `what` and the last `Err` (the state seen) otherwise.
fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(state) if Instant::now() >= deadline => {
                panic!("{what}: not within {limit:?}; last seen: {state}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

// ---------------------------------------------------------------------------
// Facts and logs
// ---------------------------------------------------------------------------

/// A fact of `type_name` told apart by `label`.
fn item(type_name: &str, label: &str, predecessors: Value) -> Value {
    fact(type_name, json!({ "label": label }), predecessors)
}

/// Writes `facts` in one batch (with `token` if given); their hashes.
fn write(server: &Server, token: Option<&str>, facts: &[Value]) -> Vec<String> {
    let (status, answer) = call(
        server,
        "POST",
        "/v1/facts",
        token,
        Some(&json!({ "facts": facts })),
    );
    assert_eq!(status, 200, "write to {}: {answer}", server.base);
    facts.iter().map(fact_hash).collect()
}

/// One entry of a log.
struct Entry {
    seq: u64,
    hash: String,
    fact: Value,
}

/// A server's whole log (what `token` may read, if given).
fn full_log(server: &Server, token: Option<&str>) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut after = 0;
    for _ in 0..10_000 {
        let path = format!("/v1/log?after={after}&limit=10000");
        let (status, page) = call(server, "GET", &path, token, None);
        assert_eq!(status, 200, "{}: {page}", server.base);
        for entry in page["facts"].as_array().expect("facts") {
            entries.push(Entry {
                seq: entry["seq"].as_u64().expect("seq"),
                hash: entry["hash"].as_str().expect("hash").to_string(),
                fact: entry["fact"].clone(),
            });
        }
        let next = page["next"].as_u64().expect("next");
        if next == after {
            return entries;
        }
        after = next;
    }
    panic!("the log of {} did not end", server.base);
}

/// The hashes of a log.
fn hashes(log: &[Entry]) -> BTreeSet<String> {
    log.iter().map(|entry| entry.hash.clone()).collect()
}

/// The predecessors a fact names, in every role.
fn predecessors_of(fact: &Value) -> Vec<String> {
    let Some(roles) = fact["predecessors"].as_object() else {
        return Vec::new();
    };
    roles
        .values()
        .flat_map(|named| match named {
            Value::String(hash) => vec![hash.clone()],
            Value::Array(list) => list
                .iter()
                .filter_map(|hash| hash.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// Asserts that a log holds each fact once and every fact's predecessors
/// at a lower `seq`.
fn assert_whole(server: &Server, log: &[Entry]) {
    let seq_of: HashMap<&str, u64> = log
        .iter()
        .map(|entry| (entry.hash.as_str(), entry.seq))
        .collect();
    assert_eq!(
        seq_of.len(),
        log.len(),
        "{} holds a fact twice in its log",
        server.base
    );
    for entry in log {
        for predecessor in predecessors_of(&entry.fact) {
            match seq_of.get(predecessor.as_str()) {
                Some(seq) if *seq < entry.seq => {}
                found => panic!(
                    "{}: fact {} (seq {}) has its predecessor {predecessor} at {found:?}",
                    server.base, entry.hash, entry.seq
                ),
            }
        }
    }
}

/// Waits until the log of `server` holds every fact of `expected`;
/// answers the log.
fn wait_holds(server: &Server, token: Option<&str>, expected: &BTreeSet<String>) -> Vec<Entry> {
    wait_for(
        &format!("{} to hold {} facts", server.base, expected.len()),
        CONVERGE_MAX,
        || {
            let log = full_log(server, token);
            let held = hashes(&log);
            let missing = expected.difference(&held).count();
            if missing == 0 {
                Ok(log)
            } else {
                Err(format!("{missing} missing of {}", expected.len()))
            }
        },
    )
}

/// Waits until `server` holds `expected`, then asserts that it holds
/// exactly that, each fact once, closed under predecessors.
fn assert_holds_exactly(server: &Server, expected: &BTreeSet<String>) -> Vec<Entry> {
    let log = wait_holds(server, None, expected);
    let held = hashes(&log);
    let extra: Vec<_> = held.difference(expected).collect();
    assert!(
        extra.is_empty(),
        "{} holds facts it should not: {extra:?}",
        server.base
    );
    assert_whole(server, &log);
    log
}

// ---------------------------------------------------------------------------
// Links
// ---------------------------------------------------------------------------

fn put_link(receiver: &Server, name: &str, definition: &Value) -> (u16, Value) {
    call(
        receiver,
        "PUT",
        &format!("/v1/links/{name}"),
        None,
        Some(definition),
    )
}

/// Creates a link on `receiver` following `source`; answers its view.
fn create_link(receiver: &Server, name: &str, source: &str, types: &[&str]) -> Value {
    let (status, view) = put_link(receiver, name, &json!({ "source": source, "types": types }));
    assert_eq!(status, 201, "create link {name}: {view}");
    view
}

/// The view of a link.
fn link(receiver: &Server, name: &str) -> Value {
    let (status, view) = call(receiver, "GET", &format!("/v1/links/{name}"), None, None);
    assert_eq!(status, 200, "link {name}: {view}");
    view
}

/// Waits until the view of link `name` passes `accept`; answers it.
fn wait_link(
    receiver: &Server,
    name: &str,
    what: &str,
    limit: Duration,
    accept: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(&format!("link {name}: {what}"), limit, || {
        let view = link(receiver, name);
        if accept(&view) {
            Ok(view)
        } else {
            Err(view.to_string())
        }
    })
}

/// Waits until link `name` fails with a `last_error` holding every one of
/// `needles`; answers its view.
fn wait_failing(receiver: &Server, name: &str, needles: &[&str]) -> Value {
    wait_link(
        receiver,
        name,
        &format!("failing with {needles:?}"),
        FAIL_MAX,
        |view| {
            view["state"] == "failing"
                && view["last_error"]
                    .as_str()
                    .is_some_and(|error| needles.iter().all(|needle| error.contains(needle)))
        },
    )
}

/// Waits until link `name` is running and caught up: its source answered
/// (the bookmark names it), no error, no lag.
fn wait_caught_up(receiver: &Server, name: &str) -> Value {
    wait_link(receiver, name, "running, caught up", CONVERGE_MAX, |view| {
        view["state"] == "running"
            && view["lag_facts"] == 0
            && view["last_error"].is_null()
            && view["bookmark"]["store"].is_string()
    })
}

fn facts_received(view: &Value) -> u64 {
    view["facts_received"].as_u64().expect("facts_received")
}

/// Waits until link `name` is caught up with `n_facts` received (its
/// progress, which counts them, is saved after the facts are stored);
/// fails at once if it counts more.
fn wait_received(receiver: &Server, name: &str, n_facts: u64) -> Value {
    wait_link(
        receiver,
        name,
        &format!("caught up with {n_facts} facts received"),
        CONVERGE_MAX,
        |view| {
            assert!(
                facts_received(view) <= n_facts,
                "link {name} counts more than {n_facts} facts: {view}"
            );
            facts_received(view) == n_facts && view["state"] == "running" && view["lag_facts"] == 0
        },
    )
}

/// What `GET /v1/links` answers, without what moves while links run.
fn link_definitions(receiver: &Server) -> Vec<Value> {
    let (status, list) = call(receiver, "GET", "/v1/links", None, None);
    assert_eq!(status, 200, "{list}");
    list["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|view| {
            json!({
                "name": view["name"],
                "source": view["source"],
                "types": view["types"],
                "authenticated": view["authenticated"],
                "created_at_ms": view["created_at_ms"],
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Topologies
// ---------------------------------------------------------------------------

/// Starts `n_stores` servers linked along `edges` (`(from, to)`: a link on
/// `to` following `from`, named `from-{from}`, types `Topo.*`), writes at
/// every store a chain of facts and then facts joining every store's
/// chain, and checks that every store ends with every `Topo.*` fact once
/// (and its own `Local.*` fact, which no link selects), closed under
/// predecessors; that each fact was inserted once per store (the links'
/// `facts_received`); and that nothing moves after convergence.
fn converge_topology(n_stores: usize, edges: &[(usize, usize)]) {
    let dirs: Vec<_> = (0..n_stores)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let servers: Vec<Server> = dirs
        .iter()
        .map(|dir| Server::start(dir.path(), &[]))
        .collect();
    for &(from, to) in edges {
        create_link(
            &servers[to],
            &format!("from-{from}"),
            &servers[from].base,
            &["Topo.*"],
        );
    }
    let mut shared = BTreeSet::new();
    let mut local: Vec<BTreeSet<String>> = vec![BTreeSet::new(); n_stores];
    let mut written_here = vec![0u64; n_stores];
    let mut roots = Vec::new();
    for (store_idx, server) in servers.iter().enumerate() {
        let mut chain = vec![item("Topo.Item", &format!("{store_idx}/0"), json!({}))];
        for n in 1..25 {
            let previous = fact_hash(chain.last().unwrap());
            chain.push(item(
                "Topo.Item",
                &format!("{store_idx}/{n}"),
                json!({ "previous": previous }),
            ));
        }
        roots.push(fact_hash(&chain[0]));
        written_here[store_idx] += chain.len() as u64;
        shared.extend(write(server, None, &chain[..10]));
        shared.extend(write(server, None, &chain[10..]));
        local[store_idx].extend(write(
            server,
            None,
            &[item("Local.Note", &format!("only {store_idx}"), json!({}))],
        ));
    }
    for (store_idx, server) in servers.iter().enumerate() {
        wait_holds(server, None, &shared);
        // Every store now holds every root: a fact joining them all.
        let join = item(
            "Topo.Join",
            &format!("{store_idx}"),
            json!({ "roots": roots }),
        );
        shared.extend(write(server, None, &[join]));
        written_here[store_idx] += 1;
    }
    for (store_idx, server) in servers.iter().enumerate() {
        let expected: BTreeSet<String> = shared.union(&local[store_idx]).cloned().collect();
        assert_holds_exactly(server, &expected);
    }
    for &(from, to) in edges {
        wait_caught_up(&servers[to], &format!("from-{from}"));
    }
    let total = shared.len() as u64;
    let snapshot = || {
        let received: Vec<u64> = edges
            .iter()
            .map(|&(from, to)| facts_received(&link(&servers[to], &format!("from-{from}"))))
            .collect();
        let log_lengths: Vec<usize> = servers
            .iter()
            .map(|server| full_log(server, None).len())
            .collect();
        (received, log_lengths)
    };
    // Each fact was inserted once on every store that did not write it:
    // the counters, saved by each link after the facts they count, reach
    // exactly that, and never pass it.
    let settled = wait_for(
        "the links to count each fact once per store",
        CONVERGE_MAX,
        || {
            let state = snapshot();
            let mut counted = true;
            for (store_idx, server) in servers.iter().enumerate() {
                let received_here: u64 = edges
                    .iter()
                    .zip(&state.0)
                    .filter(|((_, to), _)| *to == store_idx)
                    .map(|(_, received)| received)
                    .sum();
                let expected_here = total - written_here[store_idx];
                assert!(
                    received_here <= expected_here,
                    "{}: the links inserted {received_here} facts, more than the {expected_here} written elsewhere",
                    server.base
                );
                counted &= received_here == expected_here;
            }
            if counted {
                Ok(state)
            } else {
                Err(format!("{state:?}"))
            }
        },
    );
    // Nothing loops: a fact arriving again changes nothing.
    std::thread::sleep(QUIET);
    assert_eq!(
        snapshot(),
        settled,
        "links kept receiving after convergence"
    );
}

#[test]
fn a_chain_carries_facts_through_the_middle_store_as_ordinary_facts() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let [a, b, c] = [0, 1, 2].map(|idx| Server::start(dirs[idx].path(), &[]));
    // A subscription on the last store, made before anything arrives.
    let (status, answer) = put_subscription(
        &c,
        "chain",
        json!({ "type": "Chain.Item", "start": "beginning" }),
    );
    assert_eq!(status, 201, "{answer}");
    create_link(&b, "from-a", &a.base, &["Chain.*"]);
    create_link(&c, "from-b", &b.base, &["Chain.*"]);

    let root = item("Chain.Root", "root", json!({}));
    let root_hash = fact_hash(&root);
    let items: Vec<Value> = (0..30)
        .map(|n| item("Chain.Item", &format!("{n}"), json!({ "root": root_hash })))
        .collect();
    let mut expected: BTreeSet<String> = write(&a, None, &[root]).into_iter().collect();
    let item_hashes: BTreeSet<String> = write(&a, None, &items[..15])
        .into_iter()
        .chain(write(&a, None, &items[15..]))
        .collect();
    expected.extend(item_hashes.iter().cloned());

    assert_holds_exactly(&b, &expected);
    assert_holds_exactly(&c, &expected);
    wait_received(&b, "from-a", 31);
    wait_received(&c, "from-b", 31);

    // Successor queries on the last store see the replicated facts.
    let (status, page) = call(
        &c,
        "GET",
        &format!("/v1/facts/{root_hash}/successors?type=Chain.Item&limit=1000"),
        None,
        None,
    );
    assert_eq!(status, 200, "{page}");
    let successors: BTreeSet<String> = page["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["hash"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(successors, item_hashes);

    // Its subscription delivers them.
    let mut delivered = BTreeSet::new();
    wait_for("the subscription to deliver 30 facts", CONVERGE_MAX, || {
        let messages = pull(&c, "chain", 100, 200);
        if !messages.is_empty() {
            settle(&c, "chain", "ack", &messages, json!({}));
        }
        delivered.extend(
            messages
                .iter()
                .map(|message| message["hash"].as_str().unwrap().to_string()),
        );
        if delivered.len() >= item_hashes.len() {
            Ok(())
        } else {
            Err(format!("{} delivered", delivered.len()))
        }
    });
    assert_eq!(delivered, item_hashes);
}

#[test]
fn a_two_way_star_converges_with_every_fact_once_everywhere() {
    // A hub and three leaves, each linked both ways with the hub.
    converge_topology(4, &[(0, 1), (1, 0), (0, 2), (2, 0), (0, 3), (3, 0)]);
}

#[test]
fn a_cycle_of_two_converges_without_looping() {
    converge_topology(2, &[(0, 1), (1, 0)]);
}

#[test]
fn a_ring_of_three_converges_without_looping() {
    converge_topology(3, &[(0, 1), (1, 2), (2, 0)]);
}

// ---------------------------------------------------------------------------
// Filters and the closure
// ---------------------------------------------------------------------------

#[test]
fn a_filter_brings_the_predecessors_of_what_it_selects_and_nothing_else() {
    let (source_dir, receiver_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = Server::start(source_dir.path(), &[]);
    let receiver = Server::start(receiver_dir.path(), &[]);

    // Predecessors two levels deep of other types, unrelated facts, and a
    // successor of a fetched predecessor that nothing selected needs.
    let vendor = item("Catalog.Vendor", "v", json!({}));
    let product = item(
        "Catalog.Product",
        "p",
        json!({ "vendor": fact_hash(&vendor) }),
    );
    let order = item(
        "Shop.Order",
        "o1",
        json!({ "product": fact_hash(&product) }),
    );
    let review = item(
        "Catalog.Review",
        "r",
        json!({ "product": fact_hash(&product) }),
    );
    let noise: Vec<Value> = (0..5)
        .map(|n| item("Noise.Thing", &format!("{n}"), json!({})))
        .collect();
    write(&source, None, &[vendor.clone(), product.clone()]);
    write(&source, None, &noise);
    write(&source, None, &[order.clone(), review.clone()]);
    create_link(&receiver, "shop", &source.base, &["Shop.*"]);

    // Later: a Shop fact whose predecessors are one already received and
    // one fetched (a Customer), in a page with unrelated facts.
    let customer = item("Customer.Account", "c", json!({}));
    let line = item(
        "Shop.Line",
        "l1",
        json!({ "order": fact_hash(&order), "customer": fact_hash(&customer) }),
    );
    let standalone = item("Shop.Order", "o2", json!({}));
    write(
        &source,
        None,
        &[customer.clone(), item("Noise.Thing", "late", json!({}))],
    );
    write(&source, None, &[line.clone(), standalone.clone()]);

    let expected: BTreeSet<String> = [&vendor, &product, &order, &customer, &line, &standalone]
        .iter()
        .map(|value| fact_hash(value))
        .collect();
    assert_holds_exactly(&receiver, &expected);
    wait_received(&receiver, "shop", expected.len() as u64);
    // Nothing else comes afterwards.
    std::thread::sleep(QUIET);
    assert_eq!(hashes(&full_log(&receiver, None)), expected);
}

// ---------------------------------------------------------------------------
// Authorization
// ---------------------------------------------------------------------------

/// Runs `cairn tokens create ARGS...`; answers the token (the last line).
fn token_from(args: &[&str]) -> String {
    let output = run_cli(args, "");
    assert!(output.success, "tokens create failed: {}", output.stderr);
    output
        .stdout
        .lines()
        .last()
        .expect("a token line")
        .to_string()
}

#[test]
fn a_link_gets_only_what_its_token_reads_and_recovers_when_granted() {
    let (source_dir, receiver_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store_args = offline_store_args(source_dir.path());
    let mut bootstrap = vec!["tokens", "create", "--name", "admin", "--admin"];
    bootstrap.extend(store_args.iter().map(String::as_str));
    let admin = token_from(&bootstrap);
    let source = Server::start(source_dir.path(), &["--auth"]);
    let receiver = Server::start(receiver_dir.path(), &[]);
    let create_identity = |extra: &[&str]| {
        let mut args = vec![
            "tokens",
            "create",
            "--server",
            &source.base,
            "--token",
            &admin,
        ];
        args.extend(extra);
        token_from(&args)
    };
    let shop_token = create_identity(&["--name", "shop-link", "--read", "Shop.*"]);

    let salary = item("HR.Salary", "s1", json!({}));
    let first_order = item("Shop.Order", "o1", json!({}));
    write(
        &source,
        Some(&admin),
        &[salary.clone(), first_order.clone()],
    );
    // The link asks for both types; its token reads Shop.* only.
    let (status, view) = put_link(
        &receiver,
        "shop",
        &json!({ "source": source.base, "types": ["Shop.*", "HR.*"], "token": shop_token }),
    );
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["authenticated"], true, "{view}");
    assert!(!view.to_string().contains(&shop_token), "{view}");
    wait_holds(&receiver, None, &BTreeSet::from([fact_hash(&first_order)]));
    wait_caught_up(&receiver, "shop");

    // A Shop fact whose predecessor is HR: the link stops at it.
    let employee = item("HR.Employee", "e1", json!({}));
    let assigned = item(
        "Shop.Order",
        "o2",
        json!({ "handled_by": fact_hash(&employee) }),
    );
    let after_it = item("Shop.Order", "o3", json!({}));
    write(
        &source,
        Some(&admin),
        &[employee.clone(), assigned.clone(), after_it.clone()],
    );
    let (assigned_hash, employee_hash) = (fact_hash(&assigned), fact_hash(&employee));
    let view = wait_failing(&receiver, "shop", &[&assigned_hash, &employee_hash]);
    let last_error = view["last_error"].as_str().unwrap().to_string();
    assert!(!last_error.contains(&shop_token), "{last_error}");
    // Nothing that would break the closure, nor anything after it.
    let held = full_log(&receiver, None);
    assert_eq!(
        hashes(&held),
        BTreeSet::from([fact_hash(&first_order)]),
        "the receiver holds only what it could close"
    );
    assert_whole(&receiver, &held);

    // Granting: a new identity that reads both, given to the link by a PUT
    // (a rotation, no restart).
    let both_token = create_identity(&[
        "--name",
        "shop-hr-link",
        "--read",
        "Shop.*",
        "--read",
        "HR.*",
    ]);
    let (status, view) = put_link(
        &receiver,
        "shop",
        &json!({ "source": source.base, "types": ["Shop.*", "HR.*"], "token": both_token }),
    );
    assert_eq!(status, 200, "{view}");
    assert!(!view.to_string().contains(&both_token), "{view}");
    let expected: BTreeSet<String> = [&first_order, &employee, &assigned, &after_it]
        .iter()
        .map(|value| fact_hash(value))
        .collect();
    // The salary went by while the token could not read it: the bookmark
    // moved over it and it is not read again.
    let log = assert_holds_exactly(&receiver, &expected);
    assert!(
        log.iter().all(|entry| entry.hash != fact_hash(&salary)),
        "an HR fact the first token could not read arrived"
    );
    wait_caught_up(&receiver, "shop");

    // The tokens appear in no answer and no log line.
    let (_, list) = call(&receiver, "GET", "/v1/links", None, None);
    let (_, one) = call(&receiver, "GET", "/v1/links/shop", None, None);
    for token in [&shop_token, &both_token] {
        for answer in [&list, &one] {
            assert!(!answer.to_string().contains(token.as_str()), "{answer}");
        }
        let secret = token.rsplit('_').next().unwrap();
        for server in [&receiver, &source] {
            assert!(
                !server.log_contains(secret),
                "{} logged a link's token",
                server.base
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

/// A runtime for `cairn check`'s fault proxy.
fn proxy_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("the runtime builds")
}

/// Starts `cairn check`'s fault proxy in front of `server`.
fn proxy_in_front_of(runtime: &tokio::runtime::Runtime, server: &Server) -> FaultProxy {
    let target: SocketAddr = server.listen_address().parse().unwrap();
    runtime
        .block_on(FaultProxy::start(target))
        .expect("the proxy starts")
}

/// Writes `n_batches` batches from `make_batch` to `base`, each retried
/// (the same facts: idempotent) until it is acknowledged, while the server
/// may be killed and restarted; answers the hashes acknowledged.
fn spawn_writer(
    base: String,
    n_batches: usize,
    make_batch: impl Fn(usize) -> Vec<Value> + Send + 'static,
) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut acknowledged = Vec::new();
        for batch_idx in 0..n_batches {
            let facts = make_batch(batch_idx);
            let body = json!({ "facts": facts });
            let deadline = Instant::now() + CONVERGE_MAX;
            loop {
                let answer = client().post(format!("{base}/v1/facts")).json(&body).send();
                if answer.is_ok_and(|response| response.status() == 200) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "batch {batch_idx} never acknowledged"
                );
                std::thread::sleep(POLL);
            }
            acknowledged.extend(facts.iter().map(fact_hash));
        }
        acknowledged
    })
}

#[test]
fn the_source_killed_mid_stream_comes_back_and_the_link_converges() {
    let (source_dir, receiver_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut source = Server::start(source_dir.path(), &[]);
    let receiver = Server::start(receiver_dir.path(), &[]);
    create_link(&receiver, "stream", &source.base, &["Stream.*"]);
    let writer = spawn_writer(source.base.clone(), 60, |batch_idx| {
        (0..100)
            .map(|n| item("Stream.Item", &format!("{batch_idx}/{n}"), json!({})))
            .collect()
    });
    wait_link(&receiver, "stream", "copying", CONVERGE_MAX, |view| {
        facts_received(view) >= 500
    });
    let address = source.listen_address();
    source.kill9();
    let source = Server::start_listening(source_dir.path(), &address, &[]);
    let acknowledged: BTreeSet<String> = writer.join().expect("the writer").into_iter().collect();
    assert_eq!(acknowledged.len(), 6_000);
    // Every acknowledged write survived the kill, and the link delivers
    // exactly what the source holds.
    let source_log = wait_holds(&source, None, &acknowledged);
    let receiver_log = assert_holds_exactly(&receiver, &hashes(&source_log));
    assert_whole(&source, &source_log);
    assert_eq!(receiver_log.len(), 6_000);
    wait_received(&receiver, "stream", 6_000);
}

#[test]
fn the_receiver_killed_mid_batch_never_saved_its_bookmark_ahead() {
    let runtime = proxy_runtime();
    let (source_dir, receiver_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = Server::start(source_dir.path(), &[]);
    let proxy = proxy_in_front_of(&runtime, &source);
    let mut receiver = Server::start(receiver_dir.path(), &[]);
    let source_url = format!("http://{}", proxy.address());
    create_link(&receiver, "shop", &source_url, &["Shop.*"]);
    // Batches of orders (each with a product of another type, fetched) and
    // noise the filter skips.
    let writer = spawn_writer(source.base.clone(), 80, |batch_idx| {
        let product = item("Catalog.Product", &format!("{batch_idx}"), json!({}));
        let product_hash = fact_hash(&product);
        let mut facts = vec![product];
        for n in 0..50 {
            facts.push(item("Noise.Item", &format!("{batch_idx}/{n}"), json!({})));
            facts.push(item(
                "Shop.Order",
                &format!("{batch_idx}/{n}"),
                json!({ "product": product_hash }),
            ));
        }
        facts
    });
    wait_link(&receiver, "shop", "copying", CONVERGE_MAX, |view| {
        facts_received(view) >= 1_000
    });
    let at_kill = link(&receiver, "shop");
    receiver.kill9();
    // The source out of reach, so that the restarted receiver shows the
    // bookmark saved before the kill, not one it moved since.
    proxy.set_fault(NetworkFault::Reset);
    let receiver = Server::start(receiver_dir.path(), &[]);
    let view = link(&receiver, "shop");
    let bookmark = view["bookmark"]["after"].as_u64().expect("bookmark");
    assert!(bookmark > 0, "nothing saved before the kill: {view}");
    eprintln!(
        "killed at bookmark {} of source head {}; restarted at bookmark {bookmark}",
        at_kill["bookmark"]["after"],
        last_seq(&source)
    );
    let held = hashes(&full_log(&receiver, None));
    let source_log = full_log(&source, None);
    let selected_before: Vec<&Entry> = source_log
        .iter()
        .filter(|entry| entry.seq <= bookmark && entry.fact["type"] == "Shop.Order")
        .collect();
    assert!(!selected_before.is_empty());
    for entry in selected_before {
        assert!(
            held.contains(&entry.hash),
            "the bookmark {bookmark} is past fact {} (seq {}), which the receiver does not hold",
            entry.hash,
            entry.seq
        );
    }
    assert_whole(&receiver, &full_log(&receiver, None));

    proxy.heal();
    let acknowledged: BTreeSet<String> = writer.join().expect("the writer").into_iter().collect();
    let source_log = wait_holds(&source, None, &acknowledged);
    let expected: BTreeSet<String> = source_log
        .iter()
        .filter(|entry| entry.fact["type"] != "Noise.Item")
        .map(|entry| entry.hash.clone())
        .collect();
    assert_holds_exactly(&receiver, &expected);
    wait_caught_up(&receiver, "shop");
}

#[test]
fn a_partition_and_a_stalled_connection_fail_the_link_until_healed() {
    let runtime = proxy_runtime();
    let (source_dir, receiver_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = Server::start(source_dir.path(), &[]);
    let proxy = proxy_in_front_of(&runtime, &source);
    let receiver = Server::start(receiver_dir.path(), &[]);
    create_link(
        &receiver,
        "net",
        &format!("http://{}", proxy.address()),
        &["Net.*"],
    );
    let batch = |label: &str| -> Vec<Value> {
        (0..20)
            .map(|n| item("Net.Item", &format!("{label}/{n}"), json!({})))
            .collect()
    };
    let mut expected: BTreeSet<String> =
        write(&source, None, &batch("before")).into_iter().collect();
    wait_holds(&receiver, None, &expected);
    wait_caught_up(&receiver, "net");

    // A partition: connections reset, new ones refused.
    proxy.set_fault(NetworkFault::Reset);
    let during: BTreeSet<String> = write(&source, None, &batch("partition"))
        .into_iter()
        .collect();
    wait_failing(&receiver, "net", &["unavailable"]);
    assert!(hashes(&full_log(&receiver, None)).is_disjoint(&during));
    proxy.heal();
    expected.extend(during);
    assert_holds_exactly(&receiver, &expected);
    wait_caught_up(&receiver, "net");

    // A stall: the answer to the link's long-poll never comes; the link
    // cuts the request off at its deadline.
    proxy.set_fault(NetworkFault::StallServerToClient);
    let stalled: BTreeSet<String> = write(&source, None, &batch("stall")).into_iter().collect();
    wait_failing(&receiver, "net", &["timed out"]);
    assert!(hashes(&full_log(&receiver, None)).is_disjoint(&stalled));
    proxy.heal();
    expected.extend(stalled);
    assert_holds_exactly(&receiver, &expected);
    wait_caught_up(&receiver, "net");
}

// ---------------------------------------------------------------------------
// Hostile sources
// ---------------------------------------------------------------------------

/// What a fake source answers to a path: a status and a body.
type Answer = Arc<dyn Fn(&str) -> (u16, String) + Send + Sync>;

/// A fake HTTP source on loopback: answers each request by its path (the
/// query left out), one connection per request.
struct FakeSource {
    address: SocketAddr,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeSource {
    fn start(answer: Answer) -> FakeSource {
        let listener = TcpListener::bind("127.0.0.1:0").expect("the fake source listens");
        let address = listener.local_addr().unwrap();
        let stopping = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let stopping = Arc::clone(&stopping);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let answer = Arc::clone(&answer);
                    std::thread::spawn(move || answer_one(stream, answer.as_ref()));
                }
            })
        };
        FakeSource {
            address,
            stopping,
            acceptor: Some(acceptor),
        }
    }

    /// The base URL of one of the fake's sources.
    fn url(&self, prefix: &str) -> String {
        format!("http://{}/{prefix}", self.address)
    }
}

impl Drop for FakeSource {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Reads one request's head and writes the answer, then closes.
fn answer_one(mut stream: TcpStream, answer: &(dyn Fn(&str) -> (u16, String) + Send + Sync)) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n_bytes) => request.extend_from_slice(&buffer[..n_bytes]),
        }
        if request.len() > 64 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&request);
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/");
    let (status, body) = answer(path);
    let answer_head = format!(
        "HTTP/1.1 {status} Fake\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(answer_head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
}

/// The canonical bytes of a fact, as text.
fn canonical(value: &Value) -> String {
    let fact = cairn_fact::CanonicalFact::from_json(
        value.to_string().as_bytes(),
        cairn_fact::FACT_CANONICAL_BYTES_MAX_DEFAULT,
    )
    .expect("a valid fact");
    String::from_utf8(fact.canonical).unwrap()
}

/// A log page as a source answers it, each entry `(seq, hash, canonical
/// bytes)`, with `store` and `head` when given.
fn page_text(entries: &[(u64, String, String)], store_and_head: Option<(&str, u64)>) -> String {
    let facts: Vec<String> = entries
        .iter()
        .map(|(seq, hash, bytes)| format!(r#"{{"hash":"{hash}","seq":{seq},"fact":{bytes}}}"#))
        .collect();
    let next = entries.last().map_or(0, |(seq, _, _)| *seq);
    let identity = store_and_head.map_or(String::new(), |(store, head)| {
        format!(r#","store":"{store}","head":{head}"#)
    });
    format!(
        r#"{{"facts":[{}],"next":{next}{identity}}}"#,
        facts.join(",")
    )
}

#[test]
fn hostile_sources_fail_the_link_and_store_nothing() {
    let receiver_dir = tempfile::tempdir().unwrap();
    let receiver = Server::start(receiver_dir.path(), &[]);

    let genuine = item("Hostile.Item", "genuine", json!({}));
    let other = item("Hostile.Item", "other", json!({}));
    let parent = item("Hostile.Parent", "never served", json!({}));
    let child = item(
        "Hostile.Item",
        "child",
        json!({ "parent": fact_hash(&parent) }),
    );
    let (genuine_hash, other_hash) = (fact_hash(&genuine), fact_hash(&other));
    let (parent_hash, child_hash) = (fact_hash(&parent), fact_hash(&child));
    let identity = Some(("fake-store", 1));
    let pages: HashMap<&str, String> = HashMap::from([
        ("garbage", "<html>this is not a log page".to_string()),
        (
            "out-of-order",
            page_text(
                &[
                    (2, genuine_hash.clone(), canonical(&genuine)),
                    (1, other_hash.clone(), canonical(&other)),
                ],
                Some(("fake-store", 2)),
            ),
        ),
        (
            "bad-hash",
            page_text(&[(1, other_hash.clone(), canonical(&genuine))], identity),
        ),
        (
            "no-parent",
            page_text(&[(1, child_hash.clone(), canonical(&child))], identity),
        ),
        (
            "wrong-parent",
            page_text(&[(1, child_hash.clone(), canonical(&child))], identity),
        ),
        (
            "no-identity",
            page_text(&[(1, genuine_hash.clone(), canonical(&genuine))], None),
        ),
    ]);
    let other_answer = format!(
        r#"{{"hash":"{other_hash}","seq":1,"fact":{}}}"#,
        canonical(&other)
    );
    let fake = FakeSource::start(Arc::new(move |path: &str| {
        let mut parts = path.trim_start_matches('/').splitn(2, '/');
        let (prefix, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        match (rest, pages.get(prefix)) {
            ("v1/log", Some(page)) => (200, page.clone()),
            (rest, Some(_)) if rest.starts_with("v1/facts/") && prefix == "wrong-parent" => {
                (200, other_answer.clone())
            }
            _ => (
                404,
                r#"{"error":{"code":"not_found","message":"no such fact"}}"#.to_string(),
            ),
        }
    }));

    let cases = [
        ("garbage", vec!["invalid page", "not a log page"]),
        ("bad-hash", vec!["invalid page", &other_hash]),
        (
            "no-parent",
            vec!["names predecessor", &child_hash, &parent_hash],
        ),
        (
            "wrong-parent",
            vec!["invalid page", &parent_hash, &other_hash],
        ),
        ("no-identity", vec!["no `store` and `head`"]),
        ("out-of-order", vec!["invalid page", "must ascend"]),
    ];
    for (prefix, _) in &cases {
        create_link(&receiver, prefix, &fake.url(prefix), &["Hostile.*"]);
    }
    for (prefix, needles) in &cases {
        let view = wait_failing(&receiver, prefix, needles);
        assert_eq!(view["bookmark"]["after"], 0, "{view}");
        assert_eq!(facts_received(&view), 0, "{view}");
    }
    assert!(
        full_log(&receiver, None).is_empty(),
        "a hostile source's fact was stored"
    );
}

// ---------------------------------------------------------------------------
// Invalid bookmarks
// ---------------------------------------------------------------------------

/// Copies the files of directory `from` into `to` (made if missing),
/// recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn docs(label: &str, n_facts: usize) -> Vec<Value> {
    docs_of("Doc.Page", label, n_facts)
}

#[test]
fn a_source_restored_from_an_older_backup_invalidates_the_bookmark() {
    if on_postgres() {
        // The backup is a copy of the data directory: the embedded store's.
        return;
    }
    let (source_dir, receiver_dir, backup_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let mut source = Server::start(source_dir.path(), &[]);
    let address = source.listen_address();
    let receiver = Server::start(receiver_dir.path(), &[]);
    create_link(&receiver, "docs", &source.base, &["Doc.*"]);
    let mut received: BTreeSet<String> = write(&source, None, &docs("first", 5))
        .into_iter()
        .collect();
    wait_holds(&receiver, None, &received);

    assert!(source.terminate().success());
    copy_dir(source_dir.path(), backup_dir.path());
    let source = Server::start_listening(source_dir.path(), &address, &[]);
    received.extend(write(&source, None, &docs("second", 5)));
    wait_holds(&receiver, None, &received);
    let before = wait_caught_up(&receiver, "docs");
    assert_eq!(before["bookmark"]["after"], 10, "{before}");

    // The source comes back from the backup and writes other facts past
    // the link's bookmark.
    restore_and_diverge(
        source,
        source_dir.path(),
        backup_dir.path(),
        &receiver,
        &before,
        &received,
    );
}

#[test]
fn a_restored_source_is_detected_where_the_link_selected_nothing() {
    if on_postgres() {
        return;
    }
    let (source_dir, receiver_dir, backup_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let mut source = Server::start(source_dir.path(), &[]);
    let address = source.listen_address();
    let receiver = Server::start(receiver_dir.path(), &[]);
    create_link(&receiver, "docs", &source.base, &["Doc.*"]);
    let received: BTreeSet<String> = write(&source, None, &docs("first", 5))
        .into_iter()
        .collect();
    wait_holds(&receiver, None, &received);

    // After the backup only facts the link skips are written: its
    // bookmark moves to 10 while the last fact it received stays at 5.
    assert!(source.terminate().success());
    copy_dir(source_dir.path(), backup_dir.path());
    let source = Server::start_listening(source_dir.path(), &address, &[]);
    write(&source, None, &docs_of("Noise.Item", "skipped", 5));
    let before = wait_link(&receiver, "docs", "bookmark at 10", CONVERGE_MAX, |view| {
        view["bookmark"]["after"] == 10 && view["lag_facts"] == 0
    });

    // Restored, the source writes selected facts at seqs 6 to 13: the
    // link must not start reading at 11.
    restore_and_diverge(
        source,
        source_dir.path(),
        backup_dir.path(),
        &receiver,
        &before,
        &received,
    );
}

/// Stops `source`, puts its backup back, restarts it on the same address
/// and writes 8 other `Doc.Item` facts: the link "docs" of `receiver`
/// must stop with its bookmark where it was (`before`) and hold exactly
/// `received`, nothing of the restored source.
fn restore_and_diverge(
    mut source: Server,
    source_dir: &Path,
    backup_dir: &Path,
    receiver: &Server,
    before: &Value,
    received: &BTreeSet<String>,
) {
    let address = source.listen_address();
    assert!(source.terminate().success());
    std::fs::remove_dir_all(source_dir).unwrap();
    copy_dir(backup_dir, source_dir);
    let source = Server::start_listening(source_dir, &address, &[]);
    let unseen = write(&source, None, &docs("diverged", 8));
    let view = wait_failing(
        receiver,
        "docs",
        &["bookmark is invalid", "where this link's bookmark saw"],
    );
    assert_eq!(view["bookmark"], before["bookmark"], "{view}");
    let held = hashes(&full_log(receiver, None));
    assert_eq!(&held, received, "nothing of the restored source was taken");
    assert!(unseen.iter().all(|hash| !held.contains(hash)));
}

#[test]
fn another_store_at_the_source_url_invalidates_the_bookmark() {
    let (source_dir, receiver_dir, other_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let mut source = Server::start(source_dir.path(), &[]);
    let address = source.listen_address();
    let receiver = Server::start(receiver_dir.path(), &[]);
    create_link(&receiver, "docs", &source.base, &["Doc.*"]);
    let received: BTreeSet<String> = write(&source, None, &docs("first", 5))
        .into_iter()
        .collect();
    wait_holds(&receiver, None, &received);
    let before = wait_caught_up(&receiver, "docs");

    assert!(source.terminate().success());
    let other = Server::start_listening(other_dir.path(), &address, &[]);
    let unseen = write(&other, None, &docs("other store", 8));
    let view = wait_failing(
        &receiver,
        "docs",
        &["bookmark is invalid", "answers at the source's URL"],
    );
    assert_eq!(view["bookmark"], before["bookmark"], "{view}");
    let held = hashes(&full_log(&receiver, None));
    assert_eq!(held, received);
    assert!(unseen.iter().all(|hash| !held.contains(hash)));
}

// ---------------------------------------------------------------------------
// Bad definitions, an unreachable source
// ---------------------------------------------------------------------------

/// A loopback port nothing listens on (free when this returns).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn bad_definitions_are_refused_and_change_nothing() {
    let (source_dir, receiver_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = Server::start(source_dir.path(), &[]);
    let receiver = Server::start(receiver_dir.path(), &[]);
    create_link(&receiver, "good", &source.base, &["A.*"]);
    let definitions = link_definitions(&receiver);
    let valid = |source: &str| json!({ "source": source, "types": ["A.*"] });
    let long_name = "n".repeat(129);

    let refused: Vec<(&str, Value, u16, &str)> = vec![
        ("malformed", valid("not a url"), 400, "invalid_link"),
        ("no-host", valid("http://"), 400, "invalid_link"),
        ("ftp", valid("ftp://127.0.0.1:21"), 400, "invalid_link"),
        (
            "credentials",
            valid("http://user:secret@127.0.0.1:1"),
            400,
            "invalid_link",
        ),
        (
            "query",
            valid("http://127.0.0.1:1/?x=1"),
            400,
            "invalid_link",
        ),
        (
            "fragment",
            valid("http://127.0.0.1:1/#x"),
            400,
            "invalid_link",
        ),
        (
            "empty-types",
            json!({ "source": source.base, "types": [] }),
            400,
            "invalid_link",
        ),
        (
            "bad-pattern",
            json!({ "source": source.base, "types": ["Shop Order"] }),
            400,
            "invalid_link",
        ),
        (
            "unknown-member",
            json!({ "source": source.base, "types": ["A.*"], "mirror": true }),
            400,
            "invalid_link",
        ),
        (
            "no-source",
            json!({ "types": ["A.*"] }),
            400,
            "invalid_link",
        ),
        (
            "empty-token",
            json!({ "source": source.base, "types": ["A.*"], "token": "" }),
            400,
            "invalid_link",
        ),
        ("-dash-first", valid(&source.base), 400, "invalid_link"),
        (&long_name, valid(&source.base), 400, "invalid_link"),
        ("self", valid(&receiver.base), 422, "link_to_self"),
        (
            "good",
            valid(&format!("{}/elsewhere", source.base)),
            409,
            "link_conflict",
        ),
        (
            "good",
            json!({ "source": source.base, "types": ["B.*"] }),
            409,
            "link_conflict",
        ),
    ];
    for (name, definition, status, expected_code) in &refused {
        let (answered, answer) = put_link(&receiver, name, definition);
        assert_eq!(
            (answered, code(&answer)),
            (*status, *expected_code),
            "{name}: {definition} answered {answer}"
        );
        assert!(
            !answer.to_string().contains("secret"),
            "{name}: the answer shows the credentials: {answer}"
        );
        assert_eq!(
            link_definitions(&receiver),
            definitions,
            "{name} changed the links"
        );
    }
    // A body that is not JSON, and an oversized one (declared).
    let (status, answer) = json_answer(
        client()
            .put(receiver.url("/v1/links/not-json"))
            .header("content-type", "application/json")
            .body("{\"source\":")
            .send()
            .unwrap(),
    );
    assert_eq!(status, 400, "{answer}");
    let declared = format!(
        "PUT /v1/links/big HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        1024 * 1024
    );
    let (status, answer) = raw_exchange(&receiver, declared, 0, false);
    assert_eq!(
        (status, code(&answer)),
        (413, "request_too_large"),
        "{answer}"
    );
    assert_eq!(link_definitions(&receiver), definitions);

    // An unreachable source is not a bad definition: the link is made,
    // fails with the reason, retries, and recovers once a source listens.
    let port = closed_port();
    let later_url = format!("http://127.0.0.1:{port}");
    let (status, view) = put_link(&receiver, "later", &valid(&later_url));
    assert_eq!(status, 201, "{view}");
    let failing = wait_failing(&receiver, "later", &["unavailable", "connect"]);
    let still = wait_link(&receiver, "later", "still failing", FAIL_MAX, |view| {
        view["state"] == "failing" && view["last_error"] == failing["last_error"]
    });
    assert_eq!(still["bookmark"]["after"], 0);
    let later_dir = tempfile::tempdir().unwrap();
    let later = Server::start_listening(later_dir.path(), &format!("127.0.0.1:{port}"), &[]);
    let expected: BTreeSet<String> = write(&later, None, &[item("A.Thing", "late", json!({}))])
        .into_iter()
        .collect();
    wait_holds(&receiver, None, &expected);
    wait_caught_up(&receiver, "later");
}

// ---------------------------------------------------------------------------
// Pause, resume, delete
// ---------------------------------------------------------------------------

#[test]
fn paused_links_wait_resumed_ones_catch_up_and_deleted_ones_stop() {
    let (source_dir, receiver_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = Server::start(source_dir.path(), &[]);
    let receiver = Server::start(receiver_dir.path(), &[]);
    create_link(&receiver, "p", &source.base, &["P.*"]);
    let batch = |label: &str| -> Vec<Value> {
        (0..10)
            .map(|n| item("P.Item", &format!("{label}/{n}"), json!({})))
            .collect()
    };
    let mut expected: BTreeSet<String> = write(&source, None, &batch("one")).into_iter().collect();
    wait_holds(&receiver, None, &expected);

    let (status, view) = call(&receiver, "POST", "/v1/links/p/pause", None, None);
    assert_eq!(
        (status, view["state"].as_str()),
        (200, Some("paused")),
        "{view}"
    );
    let while_paused: BTreeSet<String> = write(&source, None, &batch("two")).into_iter().collect();
    std::thread::sleep(QUIET);
    assert!(hashes(&full_log(&receiver, None)).is_disjoint(&while_paused));
    assert_eq!(link(&receiver, "p")["state"], "paused");

    let (status, view) = call(&receiver, "POST", "/v1/links/p/resume", None, None);
    assert_eq!(status, 200, "{view}");
    expected.extend(while_paused);
    assert_holds_exactly(&receiver, &expected);
    wait_received(&receiver, "p", 20);

    let (status, answer) = call(&receiver, "DELETE", "/v1/links/p", None, None);
    assert_eq!(status, 200, "{answer}");
    let after_delete = write(&source, None, &batch("three"));
    std::thread::sleep(QUIET);
    let held = hashes(&full_log(&receiver, None));
    assert_eq!(
        held, expected,
        "the facts received stay; nothing more comes"
    );
    assert!(after_delete.iter().all(|hash| !held.contains(hash)));

    for (method, path) in [
        ("GET", "/v1/links/p"),
        ("DELETE", "/v1/links/p"),
        ("POST", "/v1/links/p/pause"),
        ("POST", "/v1/links/p/resume"),
        ("GET", "/v1/links/never-made"),
    ] {
        let (status, answer) = call(&receiver, method, path, None, None);
        assert_eq!(
            (status, code(&answer)),
            (404, "unknown_link"),
            "{method} {path}: {answer}"
        );
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL: one runner per link
// ---------------------------------------------------------------------------

#[test]
fn on_postgresql_one_server_runs_a_link_and_another_takes_over() {
    let Some(database) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(TestDatabase::create())
    else {
        return;
    };
    let (source_dir, first_dir, second_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let source = Server::start(source_dir.path(), &[]);
    let mut receivers = [
        Server::start_with_store(first_dir.path(), &database.url(), &[]),
        Server::start_with_store(second_dir.path(), &database.url(), &[]),
    ];
    create_link(&receivers[0], "pg", &source.base, &["Pg.*"]);
    let mut expected: BTreeSet<String> = write(&source, None, &docs_of("Pg.Item", "one", 50))
        .into_iter()
        .collect();
    wait_holds(&receivers[1], None, &expected);
    let view = wait_caught_up(&receivers[1], "pg");
    let runner = view["runner"]
        .as_str()
        .expect("a runner on PostgreSQL")
        .to_string();
    let running: Vec<usize> = (0..2)
        .filter(|&idx| receivers[idx].log_contains("running the replication link"))
        .collect();
    assert_eq!(running.len(), 1, "exactly one server runs the link");
    let runner_idx = running[0];
    assert!(receivers[runner_idx].log_contains(&runner));

    // A rotated token: the link stays with its server, never without one
    // (for longer than the other server takes to claim a free link).
    for round in 0..2 {
        let token = format!("cairn_{round:016x}_{}", "0".repeat(64));
        let (status, view) = put_link(
            &receivers[0],
            "pg",
            &json!({ "source": source.base, "types": ["Pg.*"], "token": token }),
        );
        assert_eq!(status, 200, "{view}");
        let watch_until = Instant::now() + Duration::from_millis(2_000);
        while Instant::now() < watch_until {
            let view = link(&receivers[1 - runner_idx], "pg");
            assert_eq!(
                view["runner"].as_str(),
                Some(runner.as_str()),
                "rotation {round} moved the link: {view}"
            );
            std::thread::sleep(POLL);
        }
    }
    expected.extend(write(&source, None, &docs_of("Pg.Item", "rotated", 10)));
    wait_holds(&receivers[1 - runner_idx], None, &expected);
    // Its progress saved too (a kill between storing facts and saving the
    // progress would leave them to be read again, and not counted again).
    wait_link(
        &receivers[1 - runner_idx],
        "pg",
        "60 received",
        CONVERGE_MAX,
        |view| facts_received(view) == 60,
    );

    receivers[runner_idx].kill9();
    let killed_at = Instant::now();
    let survivor = &receivers[1 - runner_idx];
    expected.extend(write(&source, None, &docs_of("Pg.Item", "two", 50)));
    let view = wait_link(survivor, "pg", "taken over", CONVERGE_MAX, |view| {
        view["runner"].as_str().is_some_and(|name| name != runner)
    });
    let took_over_in = killed_at.elapsed();
    eprintln!("the other server took over {took_over_in:?} after the kill");
    assert!(
        took_over_in < Duration::from_secs(12),
        "the other server took over after {took_over_in:?}"
    );
    assert!(survivor.log_contains(view["runner"].as_str().unwrap()));
    assert_holds_exactly(survivor, &expected);
    wait_received(survivor, "pg", 110);
}

fn docs_of(type_name: &str, label: &str, n_facts: usize) -> Vec<Value> {
    (0..n_facts)
        .map(|n| item(type_name, &format!("{label}/{n}"), json!({})))
        .collect()
}

// ---------------------------------------------------------------------------
// Repair: anti-entropy for what a link missed
// ---------------------------------------------------------------------------

#[test]
fn a_repair_fetches_what_the_link_lacks_predecessors_first_and_changes_nothing_more() {
    let (source_dir, receiver_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut source = Server::start(source_dir.path(), &[]);
    let receiver = Server::start(receiver_dir.path(), &[]);
    create_link(&receiver, "docs", &source.base, &["Doc.*"]);
    let (status, paused) = call(&receiver, "POST", "/v1/links/docs/pause", None, None);
    assert_eq!((status, paused["state"].as_str()), (200, Some("paused")));

    // While the link is paused, documents arrive at the source, each
    // naming an author of a type the link does not select.
    let authors = docs_of("Author.Person", "author", 3);
    let author_hashes = write(&source, None, &authors);
    let documents: Vec<Value> = (0..40)
        .map(|n| {
            item(
                "Doc.Page",
                &format!("missed/{n}"),
                json!({ "author": author_hashes[n % 3] }),
            )
        })
        .collect();
    let document_hashes = write(&source, None, &documents);
    let mine = write(&receiver, None, &docs("written here", 2));

    let repaired = run_cli(&["links", "repair", "docs", "--server", &receiver.base], "");
    assert!(repaired.success, "{}", repaired.stderr);
    let answer: Value = serde_json::from_str(&repaired.stdout).unwrap();
    assert_eq!(answer["missing"], 40, "{answer}");
    assert_eq!(
        answer["stored"], 43,
        "the documents and their 3 authors: {answer}"
    );
    assert_eq!(answer["remaining"], 0, "{answer}");
    assert_eq!(answer["only_here"], 2, "{answer}");
    let log = full_log(&receiver, None);
    let held = hashes(&log);
    for hash in document_hashes.iter().chain(&author_hashes).chain(&mine) {
        assert!(held.contains(hash), "{hash} is held after the repair");
    }
    assert_eq!(held.len(), 45, "nothing else was stored");
    assert_whole(&receiver, &log);

    // The link's bookmark did not move; a second repair finds nothing.
    let view = link(&receiver, "docs");
    assert_eq!(view["state"], "paused", "{view}");
    assert_eq!(view["bookmark"]["after"], 0, "{view}");
    let (status, again) = call(&receiver, "POST", "/v1/links/docs/repair", None, None);
    assert_eq!(
        (status, again["missing"].as_u64()),
        (200, Some(0)),
        "{again}"
    );

    // `cairn diff` agrees for the link's types.
    let diff = run_cli(
        &["diff", &source.base, &receiver.base, "--types", "Author.*"],
        "",
    );
    assert!(diff.success, "{} {}", diff.stdout, diff.stderr);

    // An unknown link, and a source that is gone.
    let (status, answer) = call(&receiver, "POST", "/v1/links/nope/repair", None, None);
    assert_eq!((status, code(&answer)), (404, "unknown_link"), "{answer}");
    assert!(source.terminate().success());
    let (status, answer) = call(&receiver, "POST", "/v1/links/docs/repair", None, None);
    assert_eq!(
        (status, code(&answer)),
        (502, "source_unavailable"),
        "{answer}"
    );
    assert_eq!(hashes(&full_log(&receiver, None)).len(), 45);
}
