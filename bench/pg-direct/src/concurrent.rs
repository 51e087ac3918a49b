//! Batched ingest over several connections at once (`ingest --clients N`, N > 1): the
//! direct counterpart of `cairn bench --workload write --clients N`. Each of N tasks owns one
//! connection and writes whole batches, each its own committed transaction; the tasks take
//! disjoint batches from one shared `FactSource` (so seqs and hashes never collide), until the
//! N facts are handed out or the time limit is reached.
//!
//! Unlike the one-connection run, the rate is over the wall time of the write phase: with
//! several connections in flight, per-batch times overlap and cannot be summed. Building a
//! batch (JSON, BLAKE3) happens under the source's lock while the other connections' batches
//! are in the database, so it is hidden unless the database is faster than the builder.
//! Connecting and preparing statements happen before the clock starts.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use tokio_postgres::Client;

use crate::rows::{Batch, FactSource};
use crate::writes::{Method, Writer};

/// What the writer tasks share: the source of facts and how many have been handed out.
struct Handout {
    source: FactSource,
    facts_handed_out: u64,
}

/// What one writer task did.
struct TaskReport {
    n_facts: u64,
    n_edges: u64,
    canonical_bytes: u64,
    histogram: Histogram<u64>,
}

/// Writes `n_facts` in batches of `batch_facts` over `n_clients` connections to `url`, and
/// prints the `pg_direct test=ingest` line.
pub async fn ingest(
    url: &str,
    method: Method,
    source: FactSource,
    n_facts: u64,
    batch_facts: usize,
    n_clients: usize,
    time_limit: Duration,
) -> Result<()> {
    let mut connections = Vec::with_capacity(n_clients);
    for _ in 0..n_clients {
        let client = crate::connect(url).await?;
        let writer = Writer::prepare(&client, method).await?;
        connections.push((client, writer));
    }
    let handout = Arc::new(Mutex::new(Handout {
        source,
        facts_handed_out: 0,
    }));
    let started = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|(client, writer)| {
            let handout = Arc::clone(&handout);
            tokio::spawn(write_batches(
                client,
                writer,
                handout,
                n_facts,
                batch_facts,
                started + time_limit,
            ))
        })
        .collect();
    let mut histogram = crate::new_histogram()?;
    let (mut written, mut edges, mut canonical_bytes) = (0u64, 0u64, 0u64);
    let mut failures = Vec::new();
    for task in tasks {
        match task.await.context("a writer task panicked")? {
            Ok(report) => {
                written += report.n_facts;
                edges += report.n_edges;
                canonical_bytes += report.canonical_bytes;
                histogram.add(&report.histogram)?;
            }
            Err(error) => failures.push(format!("{error:#}")),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if !failures.is_empty() {
        bail!(
            "{} writer task(s) failed: {}",
            failures.len(),
            failures.join("; ")
        );
    }
    let facts_per_s = written as f64 / seconds.max(1e-9);
    println!(
        "pg_direct test=ingest method={} clients={n_clients} facts={written} batch={batch_facts} \
         edges={edges} canonical_bytes_per_fact={:.1} complete={} seconds={seconds:.3} \
         facts_per_s={facts_per_s:.0} batches={} batch_p50_ms={:.3} batch_p99_ms={:.3} \
         batch_max_ms={:.3} wall_seconds={seconds:.3} wall_facts_per_s={facts_per_s:.0}",
        method.name(),
        canonical_bytes as f64 / written.max(1) as f64,
        if written == n_facts { "yes" } else { "no" },
        histogram.len(),
        crate::ms_at(&histogram, 0.5),
        crate::ms_at(&histogram, 0.99),
        histogram.max() as f64 / 1_000.0,
    );
    Ok(())
}

/// Takes the next batch from the shared source, or `None` once all facts are handed out.
fn next_batch(handout: &Mutex<Handout>, n_facts: u64, batch_facts: usize) -> Option<Batch> {
    let mut handout = handout
        .lock()
        .expect("a writer task panicked holding the source");
    let n_batch_facts = (n_facts - handout.facts_handed_out).min(batch_facts as u64) as usize;
    if n_batch_facts == 0 {
        return None;
    }
    handout.facts_handed_out += n_batch_facts as u64;
    Some(handout.source.next_batch(n_batch_facts))
}

/// One writer task: batches from `handout`, each one committed transaction on `client`.
async fn write_batches(
    mut client: Client,
    mut writer: Writer,
    handout: Arc<Mutex<Handout>>,
    n_facts: u64,
    batch_facts: usize,
    deadline: Instant,
) -> Result<TaskReport> {
    let mut report = TaskReport {
        n_facts: 0,
        n_edges: 0,
        canonical_bytes: 0,
        histogram: crate::new_histogram()?,
    };
    while Instant::now() < deadline {
        let Some(batch) = next_batch(&handout, n_facts, batch_facts) else {
            break;
        };
        writer
            .prepare_values(&client, batch.len(), batch.edge_predecessors.len())
            .await?;
        let write_started = Instant::now();
        writer
            .write(&mut client, &batch)
            .await
            .with_context(|| format!("writing the batch of seq {:?}", batch.seqs.first()))?;
        crate::record(&mut report.histogram, write_started.elapsed());
        report.n_facts += batch.len() as u64;
        report.n_edges += batch.edge_predecessors.len() as u64;
        report.canonical_bytes += batch.canonical_bytes() as u64;
    }
    Ok(report)
}
