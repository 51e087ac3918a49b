//! Issue 18's storage engine benchmark: ingests N fact-like records into one candidate engine
//! in durable groups (existence check per fact, one sync per group), then reports ingest rate,
//! disk bytes, reopen time, multi-threaded point reads by hash and peak RSS as `key=value`
//! lines. One candidate per process, so each gets its own peak RSS; `bench/engines.sh` runs
//! them all one after the other.

mod engine;
mod fjall2_engine;
mod fjall3_engine;
mod index_kv;
mod redb_engine;
mod segment_log;
mod workload;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rand::{Rng, SeedableRng};

use engine::Engine;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum EngineName {
    Fjall2,
    Fjall3,
    Fjall3Defaults,
    LogFjall2,
    LogFjall3,
    Redb,
}

#[derive(Parser)]
#[command(about = "Ingest, reopen and read one storage engine candidate")]
struct Arguments {
    #[arg(long, value_enum)]
    engine: EngineName,
    /// Records to ingest.
    #[arg(long, default_value_t = 2_000_000)]
    facts: u64,
    /// Records per durable group (one sync each).
    #[arg(long, default_value_t = 4_000)]
    group_facts: u64,
    /// Segment log only: the last this-many records reach the log but not the index, so the
    /// reopen re-indexes them (what a crash that lost the index's unsynced tail costs).
    #[arg(long, default_value_t = 0)]
    unindexed_tail_facts: u64,
    /// Threads reading random existing hashes.
    #[arg(long, default_value_t = 4)]
    read_threads: usize,
    /// Read phase length.
    #[arg(long, default_value_t = 5)]
    read_secs: u64,
    /// Reads per thread at most.
    #[arg(long, default_value_t = 2_000_000)]
    reads_per_thread_max: u64,
    /// Ingest stops after this long even if not all records are written.
    #[arg(long, default_value_t = 600)]
    ingest_time_limit_secs: u64,
    /// Parent of the temporary store directory (removed at the end).
    #[arg(long, default_value = "/tmp")]
    temp_parent: String,
}

fn open_engine(name: EngineName, dir: &Path) -> anyhow::Result<Box<dyn Engine>> {
    Ok(match name {
        EngineName::Fjall2 => Box::new(fjall2_engine::Fjall2::open(dir)?),
        EngineName::Fjall3 => Box::new(fjall3_engine::Fjall3::open(
            dir,
            fjall3_engine::Settings::Cairn,
        )?),
        EngineName::Fjall3Defaults => Box::new(fjall3_engine::Fjall3::open(
            dir,
            fjall3_engine::Settings::Fjall3Defaults,
        )?),
        EngineName::LogFjall2 => Box::new(segment_log::SegmentLog::open(
            dir,
            Box::new(index_kv::Fjall2Index::open(&dir.join("index"))?),
        )?),
        EngineName::LogFjall3 => Box::new(segment_log::SegmentLog::open(
            dir,
            Box::new(index_kv::Fjall3Index::open(&dir.join("index"))?),
        )?),
        EngineName::Redb => Box::new(redb_engine::Redb::open(dir)?),
    })
}

fn directory_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => directory_bytes(&entry.path()),
            Ok(metadata) => metadata.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A line of /proc/self/status in KiB, e.g. `VmHWM`.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let temp_dir = tempfile::Builder::new()
        .prefix("cairn-engines-")
        .tempdir_in(&arguments.temp_parent)?;
    let dir = temp_dir.path().join("store");
    let name = format!("{:?}", arguments.engine).to_lowercase();
    let out = |key: &str, value: String| println!("engine={name} {key}={value}");

    let mut engine = open_engine(arguments.engine, &dir)?;
    let mut write_time = Duration::ZERO;
    let ingest_started = Instant::now();
    let ingest_limit = Duration::from_secs(arguments.ingest_time_limit_secs);
    let mut written = 0u64;
    let mut group_start = 0u64;
    while group_start < arguments.facts && ingest_started.elapsed() < ingest_limit {
        let group_end = (group_start + arguments.group_facts).min(arguments.facts);
        let records: Vec<_> = (group_start..group_end).map(workload::record_of).collect();
        if arguments.facts - group_start <= arguments.unindexed_tail_facts {
            engine.set_skip_index(true);
        }
        let started = Instant::now();
        let new_count = engine.write_group(&records)?;
        write_time += started.elapsed();
        anyhow::ensure!(
            new_count == records.len(),
            "group at {group_start}: {new_count} new"
        );
        written += new_count as u64;
        group_start = group_end;
    }
    let ingest_wall = ingest_started.elapsed();
    out("facts", written.to_string());
    out("group_facts", arguments.group_facts.to_string());
    out(
        "ingest_facts_per_s",
        format!("{:.0}", written as f64 / write_time.as_secs_f64()),
    );
    out(
        "ingest_wall_facts_per_s",
        format!("{:.0}", written as f64 / ingest_wall.as_secs_f64()),
    );
    out(
        "ingest_rss_hwm_mib",
        format!("{:.1}", status_kib("VmHWM") as f64 / 1024.0),
    );
    engine.set_skip_index(false);

    let close_started = Instant::now();
    engine.close()?;
    drop(engine);
    out(
        "close_ms",
        format!("{:.0}", close_started.elapsed().as_secs_f64() * 1000.0),
    );
    let disk_bytes = directory_bytes(&dir);
    out("disk_bytes", disk_bytes.to_string());
    out(
        "disk_bytes_per_fact",
        format!("{:.0}", disk_bytes as f64 / written.max(1) as f64),
    );

    let reopen_started = Instant::now();
    let mut engine = open_engine(arguments.engine, &dir)?;
    out(
        "reopen_ms",
        format!("{:.0}", reopen_started.elapsed().as_secs_f64() * 1000.0),
    );
    if let Some((records, milliseconds)) = engine.recovered() {
        out("recovered_records", records.to_string());
        out("recovery_ms", format!("{milliseconds:.0}"));
    }
    // Idempotence: the first group again adds nothing.
    let first_group: Vec<_> = (0..arguments.group_facts.min(written))
        .map(workload::record_of)
        .collect();
    anyhow::ensure!(
        engine.write_group(&first_group)? == 0,
        "rewrite added facts"
    );

    let engine: Arc<dyn Engine> = Arc::from(engine);
    let read_deadline = Instant::now() + Duration::from_secs(arguments.read_secs);
    let read_started = Instant::now();
    let readers: Vec<_> = (0..arguments.read_threads)
        .map(|thread_index| {
            let engine = Arc::clone(&engine);
            let reads_max = arguments.reads_per_thread_max;
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let mut random = rand::rngs::SmallRng::seed_from_u64(thread_index as u64);
                let mut reads = 0u64;
                while reads < reads_max && ((reads & 0xff) != 0 || Instant::now() < read_deadline) {
                    let index = random.gen_range(0..written);
                    let body = engine.get(&workload::hash_of(index))?;
                    anyhow::ensure!(body.is_some_and(|body| body.len() > 200), "{index} missing");
                    reads += 1;
                }
                Ok(reads)
            })
        })
        .collect();
    let mut reads = 0u64;
    for reader in readers {
        reads += reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    }
    out("read_threads", arguments.read_threads.to_string());
    out(
        "reads_per_s",
        format!("{:.0}", reads as f64 / read_started.elapsed().as_secs_f64()),
    );
    out(
        "peak_rss_mib",
        format!("{:.1}", status_kib("VmHWM") as f64 / 1024.0),
    );
    drop(engine);
    drop(temp_dir);
    Ok(())
}
