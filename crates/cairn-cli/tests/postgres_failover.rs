//! Failover of a replicated PostgreSQL under a running Cairn server (issue
//! 19): a private primary and its synchronous standby (`initdb`,
//! `pg_basebackup -R`) on loopback ports, and the real `cairn serve --store`
//! with a multi-host URL that lists the standby first. The server must
//! find the primary by itself, answer 503 with the reason while only the
//! standby is up after `kill -9` of the primary's postmaster, and take
//! writes and pulls again, without a restart, once the standby is
//! promoted — with every fact and ack acknowledged before the failover
//! still there; health warns that the new primary of two nodes has no
//! synchronous standby. Three nodes (`ANY 1 (s1, s2)`) keep one through
//! the failover. Also: a server started before its database or with only
//! a standby reachable answers 503 and serves once a primary is there, and
//! a commit waiting for a synchronous standby is never acknowledged early
//! (the statement timeout passes, the commit keeps waiting).
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

/// One value of a query on `cluster`.
fn sql(cluster: &PrivateCluster, query: &str) -> String {
    cluster.sql(query).unwrap()
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

/// Every fact of `before` and `after` is readable, and pulling the
/// subscription `orders` delivers its 11 unacked messages but none of
/// `acked`; answers what was delivered.
fn assert_nothing_lost(
    server: &Server,
    before: &[String],
    after: &String,
    acked: &[String],
) -> Vec<String> {
    for hash in before.iter().chain([after]) {
        assert_eq!(
            get_json(server, &format!("/v1/facts/{hash}")).0,
            200,
            "{hash}"
        );
    }
    let mut delivered = Vec::new();
    wait_until("the unacked messages after the failover", || {
        delivered.extend(pull(server, "orders", 100, 200).iter().map(message_hash));
        delivered.len() >= 11
    });
    assert!(
        delivered.iter().all(|hash| !acked.contains(hash)),
        "an acked message came back"
    );
    delivered
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
    // Commits wait for the synchronous standby: no warning, and the metric
    // counts it.
    wait_until("the standby in the metrics", || {
        metrics_text(&server).contains("cairn_db_standbys{synchronous=\"true\"} 1")
    });
    let (status, health) = get_json(&server, "/v1/health");
    assert_eq!(status, 200);
    assert!(health.get("warnings").is_none(), "{health}");
    assert!(metrics_text(&server).contains("cairn_db_commits_unprotected 0"));

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
    // The new primary of a two-node cluster has no standby: it takes
    // writes, and says that they are not protected by one.
    let mut health = json!(null);
    wait_until(
        "health warning of commits without a synchronous standby",
        || {
            let (status, answer) = get_json(&server, "/v1/health");
            health = answer;
            status == 200 && health.get("warnings").is_some()
        },
    );
    let warning = health["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("without a synchronous standby"),
        "{warning}"
    );
    assert!(metrics_text(&server).contains("cairn_db_commits_unprotected 1"));
    assert!(server.log_contains("commits are acknowledged without a synchronous standby"));

    // Nothing acknowledged before the failover is lost, and delivery state
    // holds: the acked messages never come back, the others and the new
    // fact do.
    let delivered = assert_nothing_lost(&server, &before, &after, &acked);
    assert!(delivered.contains(&after));
}

#[test]
fn a_url_whose_only_reachable_host_is_a_standby_answers_503_until_it_is_promoted() {
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
    // The server starts listening although no host takes writes, as it
    // would during a failover: it answers 503 with the reason and retries.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_store(dir.path(), &url, &["--pg-acquire-timeout-ms", "2000"]);
    let (status, answer) = get_json(&server, "/v1/health");
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "store_unavailable");
    let message = answer["error"]["message"].as_str().unwrap();
    let standby_reason = format!("127.0.0.1:{} is a standby or read-only", standby.port());
    assert!(message.contains("the server is starting"), "{message}");
    assert!(
        message.contains("no writable PostgreSQL primary"),
        "{message}"
    );
    assert!(message.contains(&standby_reason), "{message}");
    let (status, refused) = post_facts(&server, &[fact("Standby.Only", json!({}), json!({}))]);
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["error"]["code"], "store_unavailable");
    wait_until("the log saying why and that it retries", || {
        server.log_contains(&standby_reason) && server.log_contains("retrying")
    });

    // Promotion ends it, without a restart.
    standby.promote().unwrap();
    wait_until("health after the promotion", || {
        get_json(&server, "/v1/health").0 == 200
    });
    let (status, answer) = post_facts(&server, &[fact("Standby.Only", json!({}), json!({}))]);
    assert_eq!(status, 200, "{answer}");
    assert!(server.log_contains("the store is open; serving"));
}

/// A commit that waits for a synchronous standby is never cut short into
/// a false success (PostgreSQL answers a cancelled wait with success and a
/// warning): a statement timeout far shorter than the wait passes, and the
/// write and the changed subscription stay unacknowledged (503), their commits
/// still waiting for the standby, until one confirms.
#[test]
fn a_commit_waiting_for_a_synchronous_standby_is_not_acknowledged_early() {
    let Some(bin_dir) = PrivateCluster::find_bin_dir() else {
        eprintln!("skipped: PostgreSQL's programs (initdb, pg_ctl) are not installed");
        return;
    };
    let mut cluster = PrivateCluster::init(&bin_dir).unwrap();
    cluster.start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_store(
        dir.path(),
        &cluster.url(),
        &[
            "--pg-statement-timeout-ms",
            "200",
            "--pg-acquire-timeout-ms",
            "1000",
        ],
    );
    let definition = json!({"type": "Sync.Waiting"});
    assert_eq!(put_subscription(&server, "waiting", definition).0, 201);
    // From now on every commit waits for a standby that does not exist.
    sql(
        &cluster,
        "ALTER SYSTEM SET synchronous_standby_names = 'nobody'",
    );
    sql(&cluster, "SELECT pg_reload_conf()");
    let mut health = json!(null);
    wait_until("health warning of commits waiting for a standby", || {
        let (status, answer) = get_json(&server, "/v1/health");
        health = answer;
        status == 200 && health.get("warnings").is_some()
    });
    let warning = health["warnings"][0].as_str().unwrap();
    assert!(warning.contains("commits wait until one is"), "{warning}");

    // A single-statement write (implicit commit) and a transaction of
    // several statements (explicit COMMIT): a changed subscription.
    let waiting_fact = fact("Sync.Waiting", json!({}), json!({}));
    let (status, answer) = post_facts(&server, std::slice::from_ref(&waiting_fact));
    assert_eq!(status, 503, "acknowledged without the standby: {answer}");
    let changed = json!({"type": "Sync.Waiting", "lease_ms": 5000});
    let (status, answer) = put_subscription(&server, "waiting", changed);
    assert_eq!(status, 503, "acknowledged without the standby: {answer}");
    // Both commits are still waiting, long after the statement timeout.
    let waiting = |statement: &str| {
        sql(
            &cluster,
            &format!(
                "SELECT count(*) > 0 FROM pg_stat_activity
                 WHERE application_name = 'cairn' AND wait_event = 'SyncRep'
                 AND query LIKE '{statement}'"
            ),
        )
    };
    assert_eq!(waiting("%cairn_put_facts%"), "t");
    assert_eq!(waiting("COMMIT"), "t");

    // Once commits no longer wait, the writes are there whole: a retry
    // of the same fact finds it stored.
    sql(&cluster, "ALTER SYSTEM SET synchronous_standby_names = ''");
    sql(&cluster, "SELECT pg_reload_conf()");
    let mut answer = json!(null);
    wait_until("the retried write", || {
        let (status, answered) = post_facts(&server, std::slice::from_ref(&waiting_fact));
        answer = answered;
        status == 200
    });
    assert_eq!(answer["results"][0]["inserted"], false, "{answer}");
}

/// Started before its database (both hosts of its URL down), the server
/// listens, answers 503 with why, and serves once a host comes up.
#[test]
fn a_server_started_before_its_database_serves_once_the_database_is_up() {
    let Some(bin_dir) = PrivateCluster::find_bin_dir() else {
        eprintln!("skipped: PostgreSQL's programs (initdb, pg_ctl) are not installed");
        return;
    };
    let mut cluster = PrivateCluster::init(&bin_dir).unwrap();
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:1/postgres",
        cluster.port()
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_store(dir.path(), &url, &["--pg-acquire-timeout-ms", "1000"]);
    let (status, answer) = get_json(&server, "/v1/health");
    assert_eq!(status, 503, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("127.0.0.1:{}:", cluster.port())),
        "{message}"
    );

    cluster.start().unwrap();
    wait_until("health once the database is up", || {
        get_json(&server, "/v1/health").0 == 200
    });
    let hash = put_one(&server, fact("Late.Database", json!({}), json!({})));
    assert_eq!(get_json(&server, &format!("/v1/facts/{hash}")).0, 200);
}

/// Three nodes, `synchronous_standby_names = 'ANY 1 (s1, s2)'` on each:
/// after the primary's loss, the standby that received the most is
/// promoted, the other follows it, and the new primary again has a
/// synchronous standby — so, unlike two nodes, no commit is ever
/// acknowledged without one (a commit waits until the other follows).
#[test]
fn three_nodes_keep_a_synchronous_standby_through_a_failover() {
    let Some(bin_dir) = PrivateCluster::find_bin_dir() else {
        eprintln!("skipped: PostgreSQL's programs (initdb, pg_ctl) are not installed");
        return;
    };
    let quorum = [("synchronous_standby_names", "'ANY 1 (s1, s2)'")];
    let mut primary = PrivateCluster::init(&bin_dir).unwrap();
    primary.configure(&quorum).unwrap();
    primary.start().unwrap();
    let mut standbys: Vec<PrivateCluster> = ["s1", "s2"]
        .iter()
        .map(|name| {
            let mut standby = PrivateCluster::standby_of(&primary, name).unwrap();
            standby.start().unwrap();
            standby
        })
        .collect();
    wait_until("both standbys in the quorum", || {
        sql(
            &primary,
            "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'quorum'",
        ) == "2"
    });
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}/postgres",
        primary.port(),
        standbys[0].port(),
        standbys[1].port()
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_store(dir.path(), &url, &["--pg-acquire-timeout-ms", "2000"]);
    wait_until("both standbys in the metrics", || {
        metrics_text(&server).contains("cairn_db_standbys{synchronous=\"true\"} 2")
    });
    let definition = json!({"type": "Quorum.Order", "lease_ms": 1000});
    assert_eq!(put_subscription(&server, "orders", definition).0, 201);
    let before: Vec<String> = (0..20)
        .map(|n| put_one(&server, fact("Quorum.Order", json!({"n": n}), json!({}))))
        .collect();
    let messages = pull(&server, "orders", 10, 1000);
    assert_eq!(messages.len(), 10);
    assert_eq!(
        settle(&server, "orders", "ack", &messages, json!({})),
        vec!["acked"; 10]
    );
    let acked: Vec<String> = messages.iter().map(message_hash).collect();

    primary.kill_postmaster().unwrap();
    // As Patroni does: promote the standby that received the most WAL,
    // so that the other can follow it.
    let received: Vec<String> = standbys
        .iter()
        .map(|standby| sql(standby, "SELECT pg_last_wal_receive_lsn()"))
        .collect();
    let second_is_ahead = sql(
        &standbys[0],
        &format!(
            "SELECT '{}'::pg_lsn > '{}'::pg_lsn",
            received[1], received[0]
        ),
    ) == "t";
    if second_is_ahead {
        standbys.swap(0, 1);
    }
    let (promoted, follower) = (&standbys[0], &standbys[1]);
    promoted.promote().unwrap();
    let follower_name = if second_is_ahead { "s1" } else { "s2" };
    follower.follow(promoted.port(), follower_name).unwrap();

    let mut after = String::new();
    let took = wait_until("a write after the promotion", || {
        let (status, answer) = post_facts(
            &server,
            &[fact("Quorum.Order", json!({"n": 20}), json!({}))],
        );
        if status == 200 {
            after = answer["results"][0]["hash"].as_str().unwrap().to_string();
        }
        status == 200
    });
    eprintln!("first write acknowledged {took:?} after the promotion");
    // The write waited for the follower: the new primary streams to it
    // synchronously, and health has nothing to warn about.
    let follower_state = format!(
        "SELECT sync_state FROM pg_stat_replication WHERE application_name = '{follower_name}'"
    );
    assert_eq!(sql(promoted, &follower_state), "quorum");
    wait_until("the metrics after the failover", || {
        metrics_text(&server).contains("cairn_db_standbys{synchronous=\"true\"} 1")
    });
    let (status, health) = get_json(&server, "/v1/health");
    assert_eq!(status, 200);
    assert!(health.get("warnings").is_none(), "{health}");

    assert_nothing_lost(&server, &before, &after, &acked);
}
