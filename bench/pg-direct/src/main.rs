//! `pg-direct`: the baseline for Cairn's PostgreSQL backend. It writes the rows a Cairn server
//! stores for `cairn bench --workload write` straight into PostgreSQL, into tables shaped like
//! Cairn's, and reports what that costs, so that Cairn's numbers on PostgreSQL can be given as
//! ratios against the database itself (driven by `bench/postgres.sh`):
//!
//! * `ingest`: N facts in batches of B, each batch one committed transaction, written with a
//!   multi-row INSERT (`unnest` arrays or a `values` list), binary `copy`, or Cairn's own
//!   `function`; reports facts per second and per-batch latency percentiles. With
//!   `--clients N` (N > 1), N connections write disjoint batches at once (`concurrent.rs`).
//! * `single`: K facts one at a time, each its own committed transaction, sequential on one
//!   connection (with `--method values`: the plain single-row `INSERT … VALUES`); reports
//!   latency percentiles from an HDR histogram.
//!
//! The database must be fresh and empty: the tool creates the tables. It never changes a
//! server setting and refuses to run if commits are not durable (`synchronous_commit=off` or
//! `fsync=off`). Every run is bounded by its count and by `--time-limit-secs`. One connection
//! runs on a single-threaded runtime; several run on a multi-threaded one.
//! Output: one `pg_direct …` line of `key=value` words per result on stdout.

mod concurrent;
mod rows;
mod schema;
mod writes;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use tokio_postgres::{Client, NoTls};

use rows::FactSource;
use writes::{Method, Writer};

/// Largest latency the histograms record, in microseconds (one minute).
const LATENCY_MAX_US: u64 = 60_000_000;
/// Facts per batch at most (the `values` method binds 4 parameters per fact, at most 65535).
const BATCH_FACTS_MAX: usize = 10_000;
/// Facts of one ingest run at most.
const INGEST_FACTS_MAX: u64 = 100_000_000;
/// Samples of one latency run at most.
const SINGLE_SAMPLES_MAX: u64 = 10_000_000;
/// Concurrent connections of one ingest run at most.
const INGEST_CLIENTS_MAX: usize = 64;

/// Command line.
#[derive(Parser)]
#[command(
    name = "pg-direct",
    about = "Cairn's fact rows written straight into PostgreSQL"
)]
struct Cli {
    /// PostgreSQL URL of a fresh, empty database.
    #[arg(long)]
    url: String,
    /// Bytes of each fact's `fields` object (as `cairn bench --fields-bytes`).
    #[arg(long, default_value_t = 256)]
    fields_bytes: usize,
    /// Predecessor edges per fact (`cairn bench --workload write` sends none).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=rows::EDGES_PER_FACT_MAX as i64))]
    edges_per_fact: u8,
    /// Cairn's migration file (crates/cairn-store/src/postgres/migrations/0001_facts.sql);
    /// required by `--method function`, which writes through the function it defines.
    #[arg(long)]
    cairn_migration: Option<std::path::PathBuf>,
    /// Stop a run after this many seconds even if its count is not reached.
    #[arg(long, default_value_t = 300)]
    time_limit_secs: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Batched ingest: N facts in batches of B, each batch one committed transaction.
    Ingest {
        /// How each batch is written.
        #[arg(long, value_enum)]
        method: Method,
        /// Facts to write.
        #[arg(long, default_value_t = 200_000)]
        facts: u64,
        /// Facts per batch.
        #[arg(long, default_value_t = 1_000)]
        batch: usize,
        /// Connections writing disjoint batches at once, each batch its own transaction.
        #[arg(long, default_value_t = 1)]
        clients: usize,
    },
    /// Single-fact writes: one fact per committed transaction, one after the other.
    Single {
        /// How each fact is written (`values` is the plain single-row INSERT).
        #[arg(long, value_enum, default_value_t = Method::Values)]
        method: Method,
        /// Measured writes.
        #[arg(long, default_value_t = 10_000)]
        samples: u64,
        /// Writes before the measured ones (not recorded).
        #[arg(long, default_value_t = 200)]
        warmup: u64,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let n_clients = match cli.command {
        Command::Ingest { clients, .. } => clients,
        Command::Single { .. } => 1,
    };
    let runtime = if n_clients > 1 {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    }
    .enable_all()
    .build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let migration = match &cli.cairn_migration {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };
    let method = match &cli.command {
        Command::Ingest { method, .. } | Command::Single { method, .. } => *method,
    };
    if (method == Method::Function) != migration.is_some() {
        bail!("--cairn-migration is needed by --method function, and only by it");
    }
    let mut client = connect(&cli.url).await?;
    println!(
        "pg_direct test=settings {} client=tokio-postgres",
        schema::durability_settings(&client).await?
    );
    schema::create(&client, migration.as_deref()).await?;
    let run_id =
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64 & 0x1F_FFFF_FFFF_FFFF;
    let source = FactSource::new(run_id, cli.fields_bytes, cli.edges_per_fact as usize);
    let time_limit = Duration::from_secs(cli.time_limit_secs);
    match cli.command {
        Command::Ingest {
            method,
            facts,
            batch,
            clients,
        } => {
            if !(1..=BATCH_FACTS_MAX).contains(&batch)
                || !(1..=INGEST_FACTS_MAX).contains(&facts)
                || !(1..=INGEST_CLIENTS_MAX).contains(&clients)
            {
                bail!(
                    "--batch must be 1..={BATCH_FACTS_MAX}, --facts 1..={INGEST_FACTS_MAX} \
                     and --clients 1..={INGEST_CLIENTS_MAX}"
                );
            }
            if clients > 1 && method == Method::Function && cli.edges_per_fact > 0 {
                // A batch may name facts of a batch another connection has not committed yet.
                bail!("--method function with --edges-per-fact needs --clients 1");
            }
            if clients == 1 {
                ingest(&mut client, method, source, facts, batch, time_limit).await?;
            } else {
                concurrent::ingest(&cli.url, method, source, facts, batch, clients, time_limit)
                    .await?;
            }
            println!(
                "pg_direct test=tables method={} tables_bytes={}",
                method.name(),
                schema::tables_bytes(&client).await?
            );
        }
        Command::Single {
            method,
            samples,
            warmup,
        } => {
            if !(1..=SINGLE_SAMPLES_MAX).contains(&samples) || warmup > SINGLE_SAMPLES_MAX {
                bail!("--samples must be 1..={SINGLE_SAMPLES_MAX}, --warmup at most that");
            }
            single(&mut client, method, source, samples, warmup, time_limit).await?;
        }
    }
    Ok(())
}

/// Opens one connection; its driver runs on the same (single-threaded) runtime.
async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("pg-direct: connection ended: {error}");
        }
    });
    Ok(client)
}

fn new_histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)?)
}

fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    histogram.saturating_record((elapsed.as_micros() as u64).clamp(1, LATENCY_MAX_US));
}

/// Milliseconds at `quantile` of a microsecond histogram.
fn ms_at(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1_000.0
}

/// Writes `n_facts` in batches of `batch_facts` on one connection. Building a batch (JSON,
/// BLAKE3) is not part of `seconds`, which sums the time from sending each batch until its
/// commit returned; `wall_seconds` includes it.
async fn ingest(
    client: &mut Client,
    method: Method,
    mut source: FactSource,
    n_facts: u64,
    batch_facts: usize,
    time_limit: Duration,
) -> Result<()> {
    let mut writer = Writer::prepare(client, method).await?;
    let mut histogram = new_histogram()?;
    let (mut written, mut edges, mut canonical_bytes) = (0u64, 0u64, 0u64);
    let mut write_time = Duration::ZERO;
    let started = Instant::now();
    while written < n_facts && started.elapsed() < time_limit {
        let batch = source.next_batch(batch_facts.min((n_facts - written) as usize));
        writer
            .prepare_values(client, batch.len(), batch.edge_predecessors.len())
            .await?;
        let write_started = Instant::now();
        writer
            .write(client, &batch)
            .await
            .with_context(|| format!("writing the batch after fact {written}"))?;
        let elapsed = write_started.elapsed();
        write_time += elapsed;
        record(&mut histogram, elapsed);
        written += batch.len() as u64;
        edges += batch.edge_predecessors.len() as u64;
        canonical_bytes += batch.canonical_bytes() as u64;
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    let seconds = write_time.as_secs_f64();
    println!(
        "pg_direct test=ingest method={} clients=1 facts={written} batch={batch_facts} \
         edges={edges} canonical_bytes_per_fact={:.1} complete={} seconds={seconds:.3} facts_per_s={:.0} \
         batches={} batch_p50_ms={:.3} batch_p99_ms={:.3} batch_max_ms={:.3} \
         wall_seconds={wall_seconds:.3} wall_facts_per_s={:.0}",
        method.name(),
        canonical_bytes as f64 / written.max(1) as f64,
        if written == n_facts { "yes" } else { "no" },
        written as f64 / seconds.max(1e-9),
        histogram.len(),
        ms_at(&histogram, 0.5),
        ms_at(&histogram, 0.99),
        histogram.max() as f64 / 1_000.0,
        written as f64 / wall_seconds.max(1e-9),
    );
    Ok(())
}

/// Writes `warmup` then `samples` facts one at a time, timing each measured write from sending
/// it until its commit returned.
async fn single(
    client: &mut Client,
    method: Method,
    mut source: FactSource,
    samples: u64,
    warmup: u64,
    time_limit: Duration,
) -> Result<()> {
    let mut writer = Writer::prepare(client, method).await?;
    let mut histogram = new_histogram()?;
    let mut write_time = Duration::ZERO;
    let started = Instant::now();
    let mut done = 0u64;
    while done < warmup + samples && started.elapsed() < time_limit {
        let batch = source.next_batch(1);
        writer
            .prepare_values(client, 1, batch.edge_predecessors.len())
            .await?;
        let write_started = Instant::now();
        writer
            .write(client, &batch)
            .await
            .with_context(|| format!("writing fact {}", done + 1))?;
        let elapsed = write_started.elapsed();
        if done >= warmup {
            write_time += elapsed;
            record(&mut histogram, elapsed);
        }
        done += 1;
    }
    let measured = histogram.len();
    let seconds = write_time.as_secs_f64();
    println!(
        "pg_direct test=single method={} samples={measured} warmup={} complete={} \
         seconds={seconds:.3} ops_per_s={:.0} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} \
         max_ms={:.3} mean_ms={:.3}",
        method.name(),
        done.min(warmup),
        if measured == samples { "yes" } else { "no" },
        measured as f64 / seconds.max(1e-9),
        ms_at(&histogram, 0.5),
        ms_at(&histogram, 0.99),
        ms_at(&histogram, 0.999),
        histogram.max() as f64 / 1_000.0,
        histogram.mean() / 1_000.0,
    );
    Ok(())
}
