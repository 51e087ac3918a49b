//! Failover of a replicated PostgreSQL under a running Cairn server (issue
//! 19): a private primary and its synchronous standby (`initdb`,
//! `pg_basebackup -R`) on loopback ports, and the real `cairn serve --store`
//! with a multi-host URL that lists the standby first. The server must
//! find the primary by itself, answer 503 with the reason while only the
//! standby is up after `kill -9` of the primary's postmaster, and take
//! writes and pulls again, without a restart, once the standby is
//! promoted — with every fact and ack acknowledged before the failover
//! still there.
//!
//! It needs PostgreSQL's programs (`initdb`, `pg_ctl`, `pg_basebackup`),
//! not a running server; it skips, saying so, only where they are not
//! installed.

mod common;

use std::time::{Duration, Instant};

use cairn_store::postgres::private_cluster::PrivateCluster;
use common::multi_server::message_hash;
use common::*;
use serde_json::json;

/// How long the failover may take in this test (promotion included). The
/// issue's 10 s is measured by the benchmark; this bound only keeps a
/// broken failover from hanging the test.
const RECOVERY_WAIT: Duration = Duration::from_secs(60);

/// A running primary with a running synchronous standby named `standby1`.
fn primary_and_standby(bin_dir: &std::path::Path) -> (PrivateCluster, PrivateCluster) {
    let mut primary = PrivateCluster::init(bin_dir).unwrap();
    primary
        .configure(&[("synchronous_standby_names", "'standby1'")])
        .unwrap();
    primary.start().unwrap();
    let mut standby = PrivateCluster::standby_of(&primary, "standby1").unwrap();
    // The copied configuration names a synchronous standby; once promoted,
    // this node has none (a two-node cluster after failover), and would
    // wait for it forever.
    standby
        .configure(&[("synchronous_standby_names", "''")])
        .unwrap();
    standby.start().unwrap();
    // Until the standby streams synchronously, commits on the primary wait.
    let deadline = Instant::now() + RECOVERY_WAIT;
    while sql(&primary, "SELECT sync_state FROM pg_stat_replication") != "sync" {
        assert!(
            Instant::now() < deadline,
            "the standby never became synchronous"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (primary, standby)
}

/// One value of a query through `psql` on `cluster`.
fn sql(cluster: &PrivateCluster, query: &str) -> String {
    let port = cluster.port().to_string();
    let output = cluster
        .run_program(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-At",
                "-c",
                query,
            ],
        )
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Waits until `probe` holds, panicking with `what` after [`RECOVERY_WAIT`];
/// returns how long it took.
fn wait_until(what: &str, mut probe: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !probe() {
        assert!(
            started.elapsed() < RECOVERY_WAIT,
            "{what}: not within {RECOVERY_WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

#[test]
fn a_multi_host_url_finds_the_primary_and_follows_it_through_a_failover() {
    let Some(bin_dir) = PrivateCluster::find_bin_dir() else {
        eprintln!("skipped: PostgreSQL's programs (initdb, pg_ctl) are not installed");
        return;
    };
    let (mut primary, standby) = primary_and_standby(&bin_dir);
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        standby.port(),
        primary.port()
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_store(dir.path(), &url, &["--pg-acquire-timeout-ms", "2000"]);
    assert_eq!(get_json(&server, "/v1/health").0, 200);

    // Facts and a subscription with one acked and one pending message,
    // all acknowledged while the standby was synchronous.
    let definition = json!({"type": "Failover.Order", "lease_ms": 1000});
    assert_eq!(put_subscription(&server, "orders", definition).0, 201);
    let before: Vec<String> = (0..20)
        .map(|n| put_one(&server, fact("Failover.Order", json!({"n": n}), json!({}))))
        .collect();
    let messages = pull(&server, "orders", 10, 1000);
    assert_eq!(messages.len(), 10);
    assert_eq!(
        settle(&server, "orders", "ack", &messages, json!({})),
        vec!["acked"; 10]
    );
    let acked: Vec<String> = messages.iter().map(message_hash).collect();

    // The primary's machine dies; only the standby answers, read-only.
    primary.kill_postmaster().unwrap();
    let mut reason = json!(null);
    wait_until("health answering 503 with the reason", || {
        let (status, answer) = get_json(&server, "/v1/health");
        reason = answer;
        status == 503
            && reason["error"]["message"]
                .as_str()
                .is_some_and(|message| message.contains("is a standby or read-only"))
    });
    let message = reason["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no writable PostgreSQL primary"),
        "{message}"
    );
    let (status, refused) = post_facts(
        &server,
        &[fact("Failover.Order", json!({"n": "x"}), json!({}))],
    );
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["error"]["code"], "store_unavailable");

    // Promotion: the same server process writes again, on the new primary.
    standby.promote().unwrap();
    let mut after = String::new();
    let took = wait_until("a write after the promotion", || {
        let (status, answer) = post_facts(
            &server,
            &[fact("Failover.Order", json!({"n": 20}), json!({}))],
        );
        if status == 200 {
            after = answer["results"][0]["hash"].as_str().unwrap().to_string();
        }
        status == 200
    });
    eprintln!("first write acknowledged {took:?} after the promotion");
    wait_until("the log saying that the primary moved", || {
        server.log_contains("the writable primary moved")
    });
    assert_eq!(get_json(&server, "/v1/health").0, 200);

    // Nothing acknowledged before the failover is lost, and delivery state
    // holds: the acked messages never come back, the others and the new
    // fact do.
    for hash in before.iter().chain([&after]) {
        assert_eq!(
            get_json(&server, &format!("/v1/facts/{hash}")).0,
            200,
            "{hash}"
        );
    }
    let mut delivered = Vec::new();
    wait_until("the unacked messages after the failover", || {
        delivered.extend(pull(&server, "orders", 100, 200).iter().map(message_hash));
        delivered.len() >= 11
    });
    assert!(
        delivered.iter().all(|hash| !acked.contains(hash)),
        "an acked message came back"
    );
    assert!(delivered.contains(&after));
}

#[test]
fn a_url_whose_only_reachable_host_is_a_standby_says_so() {
    let Some(bin_dir) = PrivateCluster::find_bin_dir() else {
        eprintln!("skipped: PostgreSQL's programs (initdb, pg_ctl) are not installed");
        return;
    };
    let (mut primary, standby) = primary_and_standby(&bin_dir);
    primary.kill_postmaster().unwrap();
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres",
        standby.port(),
        primary.port()
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let output = run_cli(
        &[
            "serve",
            "--data",
            data,
            "--store",
            &url,
            "--pg-acquire-timeout-ms",
            "2000",
        ],
        "",
    );
    assert!(!output.success);
    let expected = format!("127.0.0.1:{} is a standby or read-only", standby.port());
    assert!(output.stderr.contains(&expected), "{}", output.stderr);
    assert!(
        output.stderr.contains("no writable PostgreSQL primary"),
        "{}",
        output.stderr
    );
}
