//! Prometheus metrics: request counts and latencies by route, plus the
//! store's own counters (facts, bytes, syncs, facts per sync, size).

use std::fmt::Write as _;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use cairn_store::{DatabaseStats, StoreStats};

use crate::delivery::SubscriptionView;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The HTTP-level metrics of one server.
pub struct HttpMetrics {
    registry: Registry,
    request_seconds: HistogramVec,
    requests: IntCounterVec,
}

impl HttpMetrics {
    /// Creates and registers the metrics.
    pub fn new() -> HttpMetrics {
        let registry = Registry::new();
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "cairn_http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 10.0, 60.0,
            ]),
            &["method", "route"],
        )
        .expect("valid histogram definition");
        let requests = IntCounterVec::new(
            Opts::new(
                "cairn_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["method", "route", "status"],
        )
        .expect("valid counter definition");
        registry
            .register(Box::new(request_seconds.clone()))
            .expect("metric registered once");
        registry
            .register(Box::new(requests.clone()))
            .expect("metric registered once");
        HttpMetrics {
            registry,
            request_seconds,
            requests,
        }
    }

    /// Adds a collector of another part of the server (access control's
    /// outcomes) to what is rendered.
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        if let Err(error) = self.registry.register(collector) {
            tracing::warn!(%error, "metric not registered");
        }
    }

    /// Renders all metrics in the Prometheus text format.
    pub fn render(&self, store: &StoreStats, subscriptions: &[SubscriptionView]) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding cannot fail");
        let mut text = String::from_utf8(buffer).expect("prometheus text is UTF-8");
        render_store(&mut text, store);
        render_subscriptions(&mut text, subscriptions);
        text
    }
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn render_store(text: &mut String, stats: &StoreStats) {
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(
            text,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        cairn_api::meta::LOG_LAST_SEQ_METRIC,
        "gauge",
        "Highest durable sequence number",
        stats.last_seq.to_string(),
    );
    metric(
        "cairn_facts_written_total",
        "counter",
        "New facts written since start",
        stats.facts_inserted.to_string(),
    );
    metric(
        "cairn_fact_bytes_written_total",
        "counter",
        "Canonical bytes of new facts written since start",
        stats.bytes_inserted.to_string(),
    );
    metric(
        "cairn_fsyncs_total",
        "counter",
        "Durable commits (one fsync each) since start",
        stats.syncs.to_string(),
    );
    metric(
        "cairn_fsync_seconds_total",
        "counter",
        "Time spent committing and syncing",
        format!("{}", stats.sync_seconds),
    );
    metric(
        "cairn_write_paced_seconds_total",
        "counter",
        "Time the writer paused so that flushes of the storage engine could catch up",
        format!("{}", stats.paced_seconds),
    );
    metric(
        "cairn_store_disk_bytes",
        "gauge",
        "Bytes the store occupies on disk",
        stats.disk_bytes.to_string(),
    );
    metric(
        "cairn_store_poisoned",
        "gauge",
        "1 when the store refuses writes after a storage failure",
        u8::from(stats.poisoned).to_string(),
    );
    histogram(
        text,
        "cairn_facts_per_fsync",
        "New facts made durable by one fsync",
        stats
            .facts_per_sync_buckets
            .iter()
            .map(|&(upper, cumulative)| {
                let bound = if upper == u64::MAX {
                    "+Inf".to_string()
                } else {
                    upper.to_string()
                };
                (bound, cumulative)
            }),
        stats.facts_inserted.to_string(),
    );
    if let Some(database) = &stats.database {
        render_database(text, database);
    }
}

/// Connection pool and query latency of a store over PostgreSQL.
fn render_database(text: &mut String, database: &DatabaseStats) {
    let name = "cairn_db_pool_connections";
    let _ = writeln!(
        text,
        "# HELP {name} Database connections of this server, by state\n# TYPE {name} gauge"
    );
    let in_use = database.pool_open.saturating_sub(database.pool_idle);
    let _ = writeln!(text, "{name}{{state=\"in_use\"}} {in_use}");
    let _ = writeln!(text, "{name}{{state=\"idle\"}} {}", database.pool_idle);
    let name = "cairn_db_pool_max_connections";
    let _ = writeln!(
        text,
        "# HELP {name} Database connections this server opens at most\n# TYPE {name} gauge\n{name} {}",
        database.pool_max
    );
    histogram(
        text,
        "cairn_db_query_seconds",
        "Duration of database queries and transactions",
        database
            .query_seconds_buckets
            .iter()
            .map(|&(upper, cumulative)| {
                let bound = if upper.is_infinite() {
                    "+Inf".to_string()
                } else {
                    upper.to_string()
                };
                (bound, cumulative)
            }),
        database.query_seconds_sum.to_string(),
    );
    if let Some(replication) = &database.replication {
        let name = "cairn_db_standbys";
        let _ = writeln!(
            text,
            "# HELP {name} Standbys streaming from the primary, by whether commits wait for them\n# TYPE {name} gauge"
        );
        let asynchronous = replication
            .standbys
            .saturating_sub(replication.synchronous_standbys);
        let _ = writeln!(
            text,
            "{name}{{synchronous=\"true\"}} {}\n{name}{{synchronous=\"false\"}} {asynchronous}",
            replication.synchronous_standbys
        );
        let name = "cairn_db_commits_unprotected";
        let _ = writeln!(
            text,
            "# HELP {name} 1 while the replicated cluster acknowledges commits without a synchronous standby (or has none connected)\n# TYPE {name} gauge\n{name} {}",
            u8::from(replication.warning.is_some())
        );
    }
}

/// One histogram from cumulative `(bound, count)` buckets, the last +Inf.
fn histogram(
    text: &mut String,
    name: &str,
    help: &str,
    buckets: impl Iterator<Item = (String, u64)>,
    sum: String,
) {
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut count = 0;
    for (bound, cumulative) in buckets {
        let _ = writeln!(text, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        count = cumulative;
    }
    let _ = writeln!(text, "{name}_sum {sum}\n{name}_count {count}");
}

/// Per-subscription gauges and counters, labelled by subscription name
/// (names are `[A-Za-z0-9_.-]`, so they need no escaping).
fn render_subscriptions(text: &mut String, views: &[SubscriptionView]) {
    type Field = fn(&SubscriptionView) -> u64;
    let families: [(&str, &str, &str, Field); 10] = [
        (
            "backlog",
            "gauge",
            "Matching messages not yet delivered",
            |v| v.backlog,
        ),
        ("in_flight", "gauge", "Messages leased now", |v| v.in_flight),
        (
            "delivered_total",
            "counter",
            "Deliveries since start",
            |v| v.delivered,
        ),
        (
            "redelivered_total",
            "counter",
            "Redeliveries since start",
            |v| v.redelivered,
        ),
        (
            "acked_total",
            "counter",
            "Acknowledgements since start",
            |v| v.acked,
        ),
        ("dead", "gauge", "Dead letters", |v| v.dead),
        ("discarded", "gauge", "Discarded dead letters", |v| {
            v.discarded
        }),
        (
            "oldest_unacked_age_ms",
            "gauge",
            "Age of the oldest delivered, unacknowledged message",
            |v| v.oldest_unacked_age_ms,
        ),
        (
            "consumer_lag",
            "gauge",
            "Log end minus the fully acknowledged prefix",
            |v| v.consumer_lag,
        ),
        ("paused", "gauge", "1 while delivery is paused", |v| {
            u64::from(v.paused)
        }),
    ];
    if views.is_empty() {
        return;
    }
    for (suffix, kind, help, field) in families {
        let name = format!("cairn_subscription_{suffix}");
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for view in views {
            let _ = writeln!(
                text,
                "{name}{{subscription=\"{}\"}} {}",
                view.name,
                field(view)
            );
        }
    }
}

/// Middleware recording each matched request's latency and status.
pub async fn track_requests(
    State(metrics): State<std::sync::Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    metrics
        .request_seconds
        .with_label_values(&[&method, &route])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[&method, &route, response.status().as_str()])
        .inc();
    response
}
