//! Replication links (`/v1/links`, "Replication links" in
//! `docs/api-v1.md`): the handle the routes share ([`Links`]) and the
//! supervisor task that runs every link that is not paused
//! ([`spawn_supervisor`]), each in a runner task of its own.
//!
//! The engine is `cairn-replication`'s `Follower`; this module is the thin
//! runtime around it: the receiving store as its `Sink` ([`StoreSink`]:
//! facts through the ordinary `Store::put_facts`, progress through the
//! `LinkStore`), the source over HTTP, retries with backoff, and — on
//! PostgreSQL, where many servers share the links — a claim that lets one
//! server run each link at a time, renewed while it runs and taken over
//! by another server when it lapses (the store's `claim_link`).
//! *Invariant:* a link's token is never logged, answered or put in an
//! error; it lives in the stored definition only.

pub mod repair;
mod runner;
mod sink;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_api::{LinkDefinition, LinkState, LinkView};
use cairn_replication::{Certificate, Progress};
use cairn_store::{LinkRecord, LinkStore, Store};
use prometheus::{IntCounterVec, IntGaugeVec, Opts};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::limits::LINK_SCAN;
use cairn_api::limits::LINKS_MAX;

pub use sink::StoreSink;

/// A link's definition as stored: what the `PUT` gave, and when the link
/// was created. It holds the token: see the module comment.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDefinition {
    /// The source's base URL, as checked.
    pub source: String,
    /// The type patterns.
    pub types: Vec<String>,
    /// The access token presented to the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// When the link was created (ms since the Unix epoch).
    pub created_at_ms: u64,
}

impl StoredDefinition {
    /// Parses a stored definition.
    pub fn parse(record: &LinkRecord) -> Result<StoredDefinition, String> {
        serde_json::from_str(&record.definition_json)
            .map_err(|error| format!("link {:?} has a malformed definition: {error}", record.name))
    }

    /// Whether `definition` asks for the same source and types (what a
    /// link cannot change).
    pub fn same_selection(&self, definition: &LinkDefinition) -> bool {
        self.source == definition.source && self.types == definition.types
    }
}

/// The metrics of the links this server runs, by link name.
struct LinkMetrics {
    received: IntCounterVec,
    lag_facts: IntGaugeVec,
    failing: IntGaugeVec,
}

impl LinkMetrics {
    fn new() -> LinkMetrics {
        LinkMetrics {
            received: IntCounterVec::new(
                Opts::new(
                    "cairn_link_facts_received_total",
                    "Facts a replication link run by this server stored that were new here",
                ),
                &["link"],
            )
            .expect("valid counter"),
            lag_facts: IntGaugeVec::new(
                Opts::new(
                    "cairn_link_lag_facts",
                    "Entries of the source's log after the link's bookmark, as last seen",
                ),
                &["link"],
            )
            .expect("valid gauge"),
            failing: IntGaugeVec::new(
                Opts::new(
                    "cairn_link_failing",
                    "1 while the link's last attempt failed (on the server that runs it)",
                ),
                &["link"],
            )
            .expect("valid gauge"),
        }
    }
}

/// The links of one server, shared by the routes and the supervisor.
pub struct Links {
    /// Where links are kept.
    pub store: Arc<dyn LinkStore>,
    /// This deployment's identity (a source answering it is this store).
    pub deployment: String,
    /// This server's name as a runner of links (random, per process).
    pub runner_name: String,
    /// Certificate authorities trusted for `https://` sources besides the
    /// public roots (`cairn serve --link-ca-cert`).
    pub extra_roots: Vec<Certificate>,
    wake: Notify,
    metrics: LinkMetrics,
}

impl Links {
    /// The links of the deployment `deployment`, kept in `store`, trusting
    /// `extra_roots` for their sources.
    pub fn new(
        store: Arc<dyn LinkStore>,
        deployment: String,
        extra_roots: Vec<Certificate>,
    ) -> Arc<Links> {
        Arc::new(Links {
            store,
            deployment,
            extra_roots,
            runner_name: format!("server-{:032x}", rand::random::<u128>()),
            wake: Notify::new(),
            metrics: LinkMetrics::new(),
        })
    }

    /// Adds the link metrics to what `/metrics` renders.
    pub fn register_metrics(&self, metrics: &crate::HttpMetrics) {
        metrics.register(Box::new(self.metrics.received.clone()));
        metrics.register(Box::new(self.metrics.lag_facts.clone()));
        metrics.register(Box::new(self.metrics.failing.clone()));
    }

    /// Records a step of the link `name` that this server runs.
    pub(crate) fn record_step(&self, name: &str, facts_inserted: u64, lag_facts: u64) {
        self.metrics
            .received
            .with_label_values(&[name])
            .inc_by(facts_inserted);
        self.metrics
            .lag_facts
            .with_label_values(&[name])
            .set(lag_facts as i64);
        self.metrics.failing.with_label_values(&[name]).set(0);
    }

    /// Records a failed attempt of the link `name`.
    pub(crate) fn record_failure(&self, name: &str) {
        self.metrics.failing.with_label_values(&[name]).set(1);
    }

    /// Forgets the gauges of the link `name` when this server stops running
    /// it (paused, deleted, taken over), so they do not linger.
    pub(crate) fn forget(&self, name: &str) {
        let _ = self.metrics.lag_facts.remove_label_values(&[name]);
        let _ = self.metrics.failing.remove_label_values(&[name]);
    }

    /// Tells the supervisor that links changed (put, paused, resumed,
    /// deleted), so it acts at once rather than at its next scan.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A new random incarnation for a link being created.
    pub fn new_incarnation() -> String {
        format!("{:032x}", rand::random::<u128>())
    }

    /// The view of a stored link.
    pub fn view(&self, record: &LinkRecord) -> Result<LinkView, String> {
        let definition = StoredDefinition::parse(record)?;
        let progress = progress_of(record)?;
        let state = if record.paused {
            LinkState::Paused
        } else if progress.last_error.is_some() {
            LinkState::Failing
        } else {
            LinkState::Running
        };
        Ok(LinkView {
            name: record.name.clone(),
            source: definition.source,
            types: definition.types,
            authenticated: definition.token.is_some(),
            state,
            lag_facts: progress.lag_facts(),
            lag_ms: progress.lag_ms(now_ms(), definition.created_at_ms),
            bookmark: progress.bookmark,
            last_error: progress.last_error,
            facts_received: progress.facts_received,
            created_at_ms: definition.created_at_ms,
            runner: record.runner.clone(),
        })
    }
}

/// The saved progress of a link (the start of the source's log if none).
pub fn progress_of(record: &LinkRecord) -> Result<Progress, String> {
    match &record.progress_json {
        None => Ok(Progress::default()),
        Some(json) => serde_json::from_str(json)
            .map_err(|error| format!("link {:?} has malformed progress: {error}", record.name)),
    }
}

/// Milliseconds since the Unix epoch, by the system clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// A runner task and what it runs.
struct Running {
    incarnation: String,
    generation: u64,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Starts the supervisor: at least every [`LINK_SCAN`], and whenever
/// [`Links::wake`] is called, it reads the stored links and makes the
/// runners match — one per link that is not paused, restarted when the
/// definition changes (a rotated token: the new runner starts once the
/// old one ended, and keeps the server's claim), stopped when the link is
/// paused or deleted. At `shutdown` it stops every runner (which gives up
/// its claim) and waits for them.
pub fn spawn_supervisor<S: Store>(
    store: Arc<S>,
    links: Arc<Links>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut running: HashMap<String, Running> = HashMap::new();
        loop {
            match links.store.links(None, LINKS_MAX).await {
                Ok(records) => reconcile(&store, &links, &records, &mut running, &shutdown),
                Err(error) => tracing::warn!(%error, "cannot read the replication links"),
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = links.wake.notified() => {}
                () = tokio::time::sleep(LINK_SCAN) => {}
            }
        }
        for (_, link) in running.drain() {
            link.stop.cancel();
            let _ = link.task.await;
        }
    })
}

fn reconcile<S: Store>(
    store: &Arc<S>,
    links: &Arc<Links>,
    records: &[LinkRecord],
    running: &mut HashMap<String, Running>,
    shutdown: &CancellationToken,
) {
    let wanted: HashMap<&str, &LinkRecord> = records
        .iter()
        .filter(|record| !record.paused)
        .map(|record| (record.name.as_str(), record))
        .collect();
    let outdated: Vec<String> = running
        .iter()
        .filter(|(name, link)| {
            let current = wanted.get(name.as_str()).is_some_and(|record| {
                record.incarnation == link.incarnation && record.generation == link.generation
            });
            !current || link.task.is_finished()
        })
        .map(|(name, _)| name.clone())
        .collect();
    // The runners stopped here, by link: a runner started for the same
    // link waits for its predecessor to end (see `runner::run`).
    let mut stopped: HashMap<String, JoinHandle<()>> = HashMap::new();
    for name in outdated {
        if let Some(link) = running.remove(&name) {
            link.stop.cancel();
            stopped.insert(name, link.task);
        }
    }
    for (name, record) in wanted {
        if running.contains_key(name) {
            continue;
        }
        let stop = shutdown.child_token();
        let task = tokio::spawn(runner::run(
            Arc::clone(store),
            Arc::clone(links),
            record.clone(),
            runner::Stops {
                this_runner: stop.clone(),
                server: shutdown.clone(),
                predecessor: stopped.remove(name),
            },
        ));
        running.insert(
            name.to_string(),
            Running {
                incarnation: record.incarnation.clone(),
                generation: record.generation,
                stop,
                task,
            },
        );
    }
}
