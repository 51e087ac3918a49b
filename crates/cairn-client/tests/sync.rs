//! Offline-first sync (`Client::sync_with`) between an embedded store and a
//! remote Cairn running in another process — this test binary started
//! again as a server (see [`remote_server_process`]), so that it can be
//! started late, killed with SIGKILL and restarted on the same data and
//! port: facts written on either side while the remote is away flow both
//! ways when it is back, bookmarks persist across a reopen (nothing sent
//! twice, nothing missed), the types filter both ways, and a fact's
//! predecessors of unselected types come along. Every wait is bounded.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cairn_client::{
    Client, ClientError, Fact, Hash, LinkState, LogQuery, RemoteSync, SyncOptions, SyncStatus,
};

/// The environment that makes this binary a remote server.
const REMOTE_DATA_ENV: &str = "CAIRN_SYNC_TEST_REMOTE_DATA";
const REMOTE_ADDRESS_ENV: &str = "CAIRN_SYNC_TEST_REMOTE_ADDRESS";
/// What the server process prints once it listens.
const READY_LINE: &str = "CAIRN_SYNC_TEST_REMOTE_LISTENING";
/// Bound of every wait for the sync.
const CAUGHT_UP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Shop.Customer")]
struct Customer {
    name: String,
}

#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Shop.Order")]
struct Order {
    id: String,
    #[predecessor]
    customer: Hash,
}

#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Hr.Employee")]
struct Employee {
    name: String,
}

#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Crm.Account")]
struct Account {
    name: String,
}

#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Shop.Invoice")]
struct Invoice {
    id: String,
    #[predecessor]
    account: Hash,
}

/// Not a test of its own: the body of the remote server process that the
/// tests start (this binary, run again with [`REMOTE_DATA_ENV`] and
/// [`REMOTE_ADDRESS_ENV`] set). Without them it returns at once. The
/// process serves until killed, or until its standard input closes (the
/// test process is gone).
#[test]
fn remote_server_process() {
    let (Ok(data), Ok(address)) = (
        std::env::var(REMOTE_DATA_ENV),
        std::env::var(REMOTE_ADDRESS_ENV),
    ) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let result: anyhow::Result<()> = runtime.block_on(async move {
        let node = cairn_server::NodeOptions::embedded(PathBuf::from(data))
            .build()
            .await?;
        let listener = tokio::net::TcpListener::bind(&address).await?;
        println!("\n{READY_LINE} {}", listener.local_addr()?);
        let parent_gone = async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut byte = [0u8; 1];
                while std::io::stdin().read(&mut byte).is_ok_and(|read| read > 0) {}
            })
            .await;
        };
        node.run(listener, parent_gone).await?;
        Ok(())
    });
    if let Err(error) = result {
        eprintln!("the remote server failed: {error:#}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

/// A remote Cairn in a process of its own.
struct Remote {
    child: Child,
    url: String,
}

impl Remote {
    /// Starts a server over `data` on `address` and waits until it
    /// listens.
    fn start(data: &Path, address: SocketAddr) -> Remote {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "--exact",
                "remote_server_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(REMOTE_DATA_ENV, data)
            .env(REMOTE_ADDRESS_ENV, address.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the remote server starts");
        let stdout = child.stdout.take().expect("a piped stdout");
        let (ready, listening) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if line.contains(READY_LINE) {
                    let _ = ready.send(());
                }
            }
        });
        if listening.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the remote server did not listen on {address} within 60 s");
        }
        Remote {
            child,
            url: format!("http://{address}"),
        }
    }

    /// Kills the server with SIGKILL (by its PID) and reaps it.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the remote server exits");
    }

    fn client(&self) -> Client {
        Client::remote(common::fast_options(vec![self.url.clone()])).expect("a remote client")
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address nothing listens on now (bound, then released), for
/// a remote started later.
fn free_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address")
}

/// Every fact of a store's log: hash and type, in `seq` order.
async fn log(client: &Client) -> Vec<(Hash, String)> {
    let mut facts = Vec::new();
    let mut after = 0;
    loop {
        let page = client
            .log(LogQuery {
                after: Some(after),
                limit: Some(1_000),
                wait_ms: None,
            })
            .await
            .expect("the log");
        if page.facts.is_empty() {
            return facts;
        }
        for stored in &page.facts {
            let type_name = stored.fact["type"].as_str().expect("a type").to_string();
            facts.push((stored.hash, type_name));
        }
        after = page.next;
    }
}

/// The hashes of a log, checking that each appears once.
fn unique_hashes(log: &[(Hash, String)]) -> HashSet<Hash> {
    let hashes: HashSet<Hash> = log.iter().map(|(hash, _)| *hash).collect();
    assert_eq!(hashes.len(), log.len(), "a hash appears twice in the log");
    hashes
}

/// The hashes of a log whose type starts with `prefix`.
fn hashes_of(log: &[(Hash, String)], prefix: &str) -> HashSet<Hash> {
    log.iter()
        .filter(|(_, type_name)| type_name.starts_with(prefix))
        .map(|(hash, _)| *hash)
        .collect()
}

/// Successful `POST /v1/facts` requests the remote answered since it
/// started, from its metrics.
async fn remote_fact_posts(remote: &Client) -> u64 {
    let metrics = remote.transport().metrics().await.expect("metrics");
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("cairn_http_requests_total{")
                && line.contains("method=\"POST\"")
                && line.contains("route=\"/v1/facts\"")
                && line.contains("status=\"200\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Waits (bounded) until the sync's status satisfies `condition`.
async fn wait_for_status(
    sync: &RemoteSync,
    what: &str,
    condition: impl Fn(&SyncStatus) -> bool,
) -> SyncStatus {
    let deadline = Instant::now() + CAUGHT_UP_TIMEOUT;
    loop {
        let status = sync.status().await.expect("the sync's status");
        if condition(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: {status:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn options() -> SyncOptions {
    SyncOptions::new(["Shop.*"]).retry_delay_max(Duration::from_millis(500))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_written_while_the_remote_is_down_flow_both_ways_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let local = Client::embedded(dir.path().join("local")).await.unwrap();
    let url = format!("http://{address}");
    let sync = local.sync_with(&url, options()).await.unwrap();

    // Offline: the remote has not started yet.
    let ada = local
        .put(&Customer { name: "Ada".into() })
        .await
        .unwrap()
        .hash;
    let first_order = Order {
        id: "o-1".into(),
        customer: ada,
    };
    let first_order = local.put(&first_order).await.unwrap().hash;
    let local_employee = local
        .put(&Employee { name: "Eve".into() })
        .await
        .unwrap()
        .hash;
    let offline = wait_for_status(&sync, "the outbound error shows", |status| {
        status.outbound.last_error.is_some()
    })
    .await;
    assert_eq!(offline.outbound.facts_sent, 0);
    match sync.wait_caught_up(Duration::from_millis(300)).await {
        Err(ClientError::NotCaughtUp { name, .. }) => assert_eq!(name, "remote"),
        other => panic!("caught up with nobody: {other:?}"),
    }

    // The remote comes up, with facts of its own.
    let remote_data = dir.path().join("remote");
    let remote = Remote::start(&remote_data, address);
    let remote_client = remote.client();
    let grace = remote_client
        .put(&Customer {
            name: "Grace".into(),
        })
        .await
        .unwrap()
        .hash;
    let remote_employee = remote_client
        .put(&Employee {
            name: "Mallory".into(),
        })
        .await
        .unwrap()
        .hash;
    let status = sync.wait_caught_up(CAUGHT_UP_TIMEOUT).await.unwrap();
    assert_eq!(status.outbound.facts_sent, 2, "{status:#?}");
    assert_eq!(status.outbound.last_error, None);
    assert_eq!(status.inbound.facts_received, 1, "{status:#?}");
    assert_eq!(status.inbound.state, LinkState::Running);

    let remote_log = log(&remote_client).await;
    let local_log = log(&local).await;
    let remote_hashes = unique_hashes(&remote_log);
    let local_hashes = unique_hashes(&local_log);
    assert!(remote_hashes.contains(&ada) && remote_hashes.contains(&first_order));
    assert!(local_hashes.contains(&grace));
    assert!(
        !remote_hashes.contains(&local_employee),
        "Hr.* is not synced"
    );
    assert!(
        !local_hashes.contains(&remote_employee),
        "Hr.* is not synced"
    );
    assert_eq!(
        hashes_of(&remote_log, "Shop."),
        hashes_of(&local_log, "Shop.")
    );

    // The remote dies without a chance to clean up; writes go on locally.
    remote.kill();
    let second_order = Order {
        id: "o-2".into(),
        customer: grace,
    };
    let second_order = local.put(&second_order).await.unwrap().hash;
    wait_for_status(&sync, "the outbound error shows again", |status| {
        status.outbound.last_error.is_some()
    })
    .await;

    // It comes back on the same data and address.
    let remote = Remote::start(&remote_data, address);
    let remote_client = remote.client();
    let linus = remote_client
        .put(&Customer {
            name: "Linus".into(),
        })
        .await
        .unwrap()
        .hash;
    let status = sync.wait_caught_up(CAUGHT_UP_TIMEOUT).await.unwrap();
    assert_eq!(status.outbound.facts_sent, 3, "{status:#?}");
    let remote_log = log(&remote_client).await;
    let local_log = log(&local).await;
    assert!(unique_hashes(&remote_log).contains(&second_order));
    assert!(unique_hashes(&local_log).contains(&linus));
    assert_eq!(
        hashes_of(&remote_log, "Shop."),
        hashes_of(&local_log, "Shop.")
    );
    assert_eq!(hashes_of(&local_log, "Shop.").len(), 5);

    sync.stop().await;
    local.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_persist_across_a_reopen_so_nothing_is_sent_twice_or_missed() {
    let dir = tempfile::tempdir().unwrap();
    let remote = Remote::start(&dir.path().join("remote"), free_address());
    let remote_client = remote.client();
    let local_dir = dir.path().join("local");

    let local = Client::embedded(&local_dir).await.unwrap();
    let sync = local.sync_with(&remote.url, options()).await.unwrap();
    for n in 0..10 {
        local
            .put(&Customer {
                name: format!("local-{n}"),
            })
            .await
            .unwrap();
    }
    for n in 0..5 {
        remote_client
            .put(&Customer {
                name: format!("remote-{n}"),
            })
            .await
            .unwrap();
    }
    // Twice: the second covers the remote's facts that the first brought
    // in, which go out again as no-ops; after it both sides are settled.
    sync.wait_caught_up(CAUGHT_UP_TIMEOUT).await.unwrap();
    let before = sync.wait_caught_up(CAUGHT_UP_TIMEOUT).await.unwrap();
    assert_eq!(before.outbound.facts_sent, 10);
    assert_eq!(before.inbound.facts_received, 5);
    let posts_before = remote_fact_posts(&remote_client).await;
    let remote_len_before = log(&remote_client).await.len();
    let local_len_before = log(&local).await.len();
    assert_eq!((remote_len_before, local_len_before), (15, 15));
    sync.stop().await;
    let paused = local.log_last_seq().await.unwrap();
    local.close().await;
    assert!(
        local_dir.join("sync").join("remote.json").exists(),
        "the outbound bookmark is kept in the data directory"
    );

    // Reopened: both directions go on from their bookmarks.
    let local = Client::embedded(&local_dir).await.unwrap();
    assert_eq!(local.log_last_seq().await.unwrap(), paused);
    let sync = local.sync_with(&remote.url, options()).await.unwrap();
    let reopened = sync.status().await.unwrap();
    assert_eq!(reopened.outbound.bookmark, before.outbound.bookmark);
    assert_eq!(reopened.outbound.facts_sent, 10);
    assert_eq!(reopened.inbound.bookmark, before.inbound.bookmark);
    let after = sync.wait_caught_up(CAUGHT_UP_TIMEOUT).await.unwrap();
    assert_eq!(after.outbound.facts_sent, 10);
    assert_eq!(after.inbound.facts_received, 5);
    assert_eq!(
        remote_fact_posts(&remote_client).await,
        posts_before,
        "nothing was sent again"
    );
    assert_eq!(log(&remote_client).await.len(), remote_len_before);
    assert_eq!(log(&local).await.len(), local_len_before);

    // Nothing missed: written on either side while the sync was stopped
    // or after it went on.
    sync.stop().await;
    let while_stopped = remote_client
        .put(&Customer {
            name: "while stopped".into(),
        })
        .await
        .unwrap()
        .hash;
    let sync = local.sync_with(&remote.url, options()).await.unwrap();
    let new_local = local
        .put(&Customer {
            name: "new local".into(),
        })
        .await
        .unwrap()
        .hash;
    let status = sync.wait_caught_up(CAUGHT_UP_TIMEOUT).await.unwrap();
    assert_eq!(status.outbound.facts_sent, 11);
    assert_eq!(status.inbound.facts_received, 6);
    let remote_log = log(&remote_client).await;
    let local_log = log(&local).await;
    assert!(unique_hashes(&local_log).contains(&while_stopped));
    assert!(unique_hashes(&remote_log).contains(&new_local));
    assert_eq!(remote_log.len(), 17);
    assert_eq!(local_log.len(), 17);
    sync.stop().await;
    local.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn types_filter_both_ways_and_predecessors_of_unselected_types_come_along() {
    let dir = tempfile::tempdir().unwrap();
    let remote = Remote::start(&dir.path().join("remote"), free_address());
    let remote_client = remote.client();
    let local = Client::embedded(dir.path().join("local")).await.unwrap();

    let local_account = local.put(&Account { name: "l".into() }).await.unwrap().hash;
    let local_invoice = Invoice {
        id: "i-local".into(),
        account: local_account,
    };
    let local_invoice = local.put(&local_invoice).await.unwrap().hash;
    let local_employee = local
        .put(&Employee { name: "l".into() })
        .await
        .unwrap()
        .hash;
    let remote_account = remote_client
        .put(&Account { name: "r".into() })
        .await
        .unwrap()
        .hash;
    let remote_invoice = Invoice {
        id: "i-remote".into(),
        account: remote_account,
    };
    let remote_invoice = remote_client.put(&remote_invoice).await.unwrap().hash;
    let remote_employee = remote_client
        .put(&Employee { name: "r".into() })
        .await
        .unwrap()
        .hash;
    let lone_account = remote_client
        .put(&Account {
            name: "alone".into(),
        })
        .await
        .unwrap()
        .hash;

    let sync = local
        .sync_with(
            &remote.url,
            SyncOptions::new(["Shop.Invoice"]).name("invoices"),
        )
        .await
        .unwrap();
    let status = sync.wait_caught_up(CAUGHT_UP_TIMEOUT).await.unwrap();
    assert_eq!(status.name, "invoices");
    assert_eq!(status.outbound.facts_sent, 2, "the invoice and its account");
    assert_eq!(
        status.inbound.facts_received, 2,
        "the invoice and its account"
    );

    let remote_log = log(&remote_client).await;
    let local_log = log(&local).await;
    let remote_hashes = unique_hashes(&remote_log);
    let local_hashes = unique_hashes(&local_log);
    assert!(remote_hashes.contains(&local_invoice) && remote_hashes.contains(&local_account));
    assert!(local_hashes.contains(&remote_invoice) && local_hashes.contains(&remote_account));
    assert!(!remote_hashes.contains(&local_employee));
    assert!(!local_hashes.contains(&remote_employee));
    assert!(
        !local_hashes.contains(&lone_account),
        "not selected, not needed"
    );
    let position = |log: &[(Hash, String)], hash: Hash| {
        log.iter()
            .position(|(candidate, _)| *candidate == hash)
            .unwrap()
    };
    assert!(
        position(&remote_log, local_account) < position(&remote_log, local_invoice),
        "predecessors first"
    );
    assert!(position(&local_log, remote_account) < position(&local_log, remote_invoice));
    sync.stop().await;

    // Other types under the same name: the sync starts over with them.
    let widened = SyncOptions::new(["Shop.Invoice", "Hr.*"]).name("invoices");
    let sync = local.sync_with(&remote.url, widened).await.unwrap();
    let status = sync.wait_caught_up(CAUGHT_UP_TIMEOUT).await.unwrap();
    assert_eq!(
        status.outbound.facts_sent, 1,
        "the employee; the rest is there"
    );
    assert_eq!(status.inbound.facts_received, 1, "the employee");
    assert!(unique_hashes(&log(&remote_client).await).contains(&local_employee));
    let local_hashes = unique_hashes(&log(&local).await);
    assert!(local_hashes.contains(&remote_employee));
    assert!(!local_hashes.contains(&lone_account));
    sync.stop().await;
    local.close().await;
}

#[tokio::test]
async fn sync_with_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let local = Client::embedded(dir.path()).await.unwrap();
    let remote_url = common::closed_endpoint().await.unwrap();
    let invalid = |result: Result<RemoteSync, ClientError>| {
        assert!(
            matches!(result, Err(ClientError::InvalidOptions(_))),
            "{result:?}"
        )
    };
    let not_embedded = Client::remote(common::fast_options(vec![remote_url.clone()])).unwrap();
    invalid(not_embedded.sync_with(&remote_url, options()).await);
    invalid(local.sync_with("ftp://example.org", options()).await);
    invalid(
        local
            .sync_with("http://user:secret@example.org", options())
            .await,
    );
    for name in ["bad name", "", "..", "a/b"] {
        invalid(local.sync_with(&remote_url, options().name(name)).await);
    }
    invalid(
        local
            .sync_with(&remote_url, SyncOptions::new(Vec::<String>::new()))
            .await,
    );
    invalid(
        local
            .sync_with(&remote_url, SyncOptions::new(["Shop orders"]))
            .await,
    );

    let sync = local.sync_with(&remote_url, options()).await.unwrap();
    invalid(local.sync_with(&remote_url, options()).await);
    sync.stop().await;
    // Stopped, it paused its inbound link; the name is free again, and
    // the link resumes (failing: nothing listens at the remote's URL).
    let paused = local.sync_with(&remote_url, options()).await;
    let sync = paused.unwrap();
    assert_ne!(
        sync.status().await.unwrap().inbound.state,
        LinkState::Paused
    );
    sync.stop().await;

    // Closing the client with a sync running ends the sync and releases
    // the data directory.
    let sync = local.sync_with(&remote_url, options()).await.unwrap();
    local.close().await;
    assert!(matches!(sync.status().await, Err(ClientError::Closed)));
    tokio::time::timeout(Duration::from_secs(30), sync.stop())
        .await
        .expect("the sync ends once its node is closed");
    let reopened = Client::embedded(dir.path()).await.unwrap();
    reopened.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_killed_while_receiving_a_backlog_gets_all_of_it_once() {
    const BACKLOG_FACTS: usize = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let local = Client::embedded(dir.path().join("local")).await.unwrap();
    let backlog = (0..BACKLOG_FACTS)
        .map(|n| {
            cairn_client::to_canonical_fact(&Customer {
                name: format!("backlog-{n}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    local.put_facts(backlog).await.unwrap();
    let sync = local
        .sync_with(&format!("http://{address}"), options())
        .await
        .unwrap();

    let remote_data = dir.path().join("remote");
    let remote = Remote::start(&remote_data, address);
    let remote_client = remote.client();
    let deadline = Instant::now() + CAUGHT_UP_TIMEOUT;
    while remote_client.log_last_seq().await.unwrap() == 0 {
        assert!(Instant::now() < deadline, "nothing arrived at the remote");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    remote.kill();

    let remote = Remote::start(&remote_data, address);
    let remote_client = remote.client();
    let status = sync.wait_caught_up(CAUGHT_UP_TIMEOUT).await.unwrap();
    assert!(status.outbound.facts_sent <= BACKLOG_FACTS as u64);
    let remote_log = log(&remote_client).await;
    assert_eq!(unique_hashes(&remote_log).len(), BACKLOG_FACTS);
    assert_eq!(
        hashes_of(&remote_log, "Shop."),
        hashes_of(&log(&local).await, "Shop.")
    );
    sync.stop().await;
    local.close().await;
}
