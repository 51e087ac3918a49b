//! `cairn bench --workload replication-lag`: the steady-state lag of a
//! replication link. One publisher writes single facts to the source
//! (`--server`) at a fixed rate (`--rate` per second for `--duration`
//! seconds, each write acknowledged durably); one reader long-polls the
//! receiver's log (`--follow`, filtered to this run's fact type) and notes
//! when each fact arrives. The lag of a fact is the time from its write's
//! acknowledgement on the source to its arrival in the receiver's log;
//! percentiles are computed once both sides are done. Bounded in count
//! (rate × duration facts) and time (the reader stops 30 s after the
//! publisher at the latest).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::value::RawValue;

/// How long the reader waits for the last facts after the publisher is done.
const GRACE_AFTER_PUBLISHING: Duration = Duration::from_secs(30);

/// Facts one run publishes at most.
const FACTS_MAX: u64 = 10_000_000;

/// Writes in flight at once, at most.
const WRITES_IN_FLIGHT_MAX: usize = 64;

/// What the replication lag benchmark needs from the command line.
pub struct LagBench {
    /// The bench's HTTP client.
    pub http: reqwest::Client,
    /// Base URL of the source, written to.
    pub base: String,
    /// Base URL of the receiver, whose log is read.
    pub follow: String,
    /// Unique id of this run (its fact type is `Bench.Repl_<run_id>`).
    pub run_id: u64,
    /// Facts written per second.
    pub rate_per_s: u64,
    /// How long to write.
    pub duration: Duration,
    /// Bytes of each fact's `fields`.
    pub fields_bytes: usize,
}

#[derive(Deserialize)]
struct LogPage<'a> {
    #[serde(borrow)]
    facts: Vec<LogEntry<'a>>,
    next: u64,
}

#[derive(Deserialize)]
struct LogEntry<'a> {
    #[serde(borrow)]
    fact: &'a RawValue,
}

#[derive(Deserialize)]
struct BenchFact {
    fields: BenchFields,
}

#[derive(Deserialize)]
struct BenchFields {
    n: u64,
}

impl LagBench {
    fn type_name(&self) -> String {
        format!("Bench.Repl_{}", self.run_id)
    }

    fn fact_json(&self, n: u64) -> String {
        let padding = "x".repeat(self.fields_bytes.saturating_sub(24));
        format!(
            "{{\"type\":\"{}\",\"predecessors\":{{}},\"fields\":{{\"n\":{n},\"payload\":\"{padding}\"}}}}",
            self.type_name()
        )
    }

    async fn write(&self, n: u64) -> anyhow::Result<()> {
        let body = format!("{{\"facts\":[{}]}}", self.fact_json(n));
        let response = self
            .http
            .post(format!("{}/v1/facts", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "write answered {}: {}",
                response.status(),
                response.text().await?
            );
        }
        response.bytes().await?;
        Ok(())
    }

    /// One long-poll of the receiver's log after `after`: the `n` of each
    /// fact of this run, and where the next page starts.
    async fn read(&self, after: u64) -> anyhow::Result<(Vec<u64>, u64)> {
        let response = self
            .http
            .get(format!("{}/v1/log", self.follow))
            .query(&[
                ("after", after.to_string()),
                ("limit", "1000".to_string()),
                ("wait_ms", "1000".to_string()),
                ("types", self.type_name()),
            ])
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "log answered {}: {}",
                response.status(),
                response.text().await?
            );
        }
        let body = response.bytes().await?;
        let page: LogPage<'_> = serde_json::from_slice(&body).context("not a log page")?;
        let mut numbers = Vec::with_capacity(page.facts.len());
        for entry in page.facts {
            let fact: BenchFact =
                serde_json::from_str(entry.fact.get()).context("not a bench fact")?;
            numbers.push(fact.fields.n);
        }
        Ok((numbers, page.next))
    }
}

/// Microseconds since `clock`, plus one (0 means "not yet").
fn stamp(clock: Instant) -> u64 {
    clock.elapsed().as_micros() as u64 + 1
}

/// The `replication-lag` workload.
pub async fn lag(bench: LagBench) -> anyhow::Result<()> {
    if bench.rate_per_s == 0 || bench.duration.is_zero() {
        bail!("--rate and --duration must be positive");
    }
    let n_facts = bench.rate_per_s * bench.duration.as_secs();
    if n_facts > FACTS_MAX {
        bail!("--rate × --duration must be at most {FACTS_MAX}");
    }
    let bench = Arc::new(bench);
    let clock = Instant::now();
    let acknowledged_us: Arc<Vec<AtomicU64>> =
        Arc::new((0..n_facts).map(|_| AtomicU64::new(0)).collect());
    let arrived_us: Arc<Vec<AtomicU64>> =
        Arc::new((0..n_facts).map(|_| AtomicU64::new(0)).collect());
    let received = Arc::new(AtomicU64::new(0));
    let publishing_done = Arc::new(tokio::sync::Notify::new());
    let start_after = crate::bench::last_seq(&bench.http, &bench.follow).await?;
    let reader = {
        let (bench, arrived_us, received, publishing_done) = (
            Arc::clone(&bench),
            Arc::clone(&arrived_us),
            Arc::clone(&received),
            Arc::clone(&publishing_done),
        );
        tokio::spawn(async move {
            let mut after = start_after;
            let mut errors = 0u64;
            // Bounded: the publishing time plus the grace period (set once
            // the publisher is done), and at most twice that in any case.
            let hard_deadline = Instant::now() + 2 * (bench.duration + GRACE_AFTER_PUBLISHING);
            let mut deadline = hard_deadline;
            let done = publishing_done.notified();
            tokio::pin!(done);
            let mut publisher_finished = false;
            while received.load(Ordering::Relaxed) < n_facts && Instant::now() < deadline {
                let page = tokio::select! {
                    page = bench.read(after) => page,
                    () = &mut done, if !publisher_finished => {
                        publisher_finished = true;
                        deadline = (Instant::now() + GRACE_AFTER_PUBLISHING).min(hard_deadline);
                        continue;
                    }
                };
                match page {
                    Ok((numbers, next)) => {
                        let now = stamp(clock);
                        for n in numbers {
                            if let Some(slot) = arrived_us.get(n as usize) {
                                if slot.swap(now, Ordering::Relaxed) == 0 {
                                    received.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        after = next;
                    }
                    Err(error) => {
                        errors += 1;
                        if errors <= 5 {
                            eprintln!("reader: {error:#}");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            errors
        })
    };
    let in_flight = Arc::new(tokio::sync::Semaphore::new(WRITES_IN_FLIGHT_MAX));
    let write_errors = Arc::new(AtomicU64::new(0));
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / bench.rate_per_s));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let publishing_started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for n in 0..n_facts {
        ticker.tick().await;
        let permit = Arc::clone(&in_flight).acquire_owned().await?;
        let (bench, acknowledged_us, write_errors) = (
            Arc::clone(&bench),
            Arc::clone(&acknowledged_us),
            Arc::clone(&write_errors),
        );
        writers.spawn(async move {
            match bench.write(n).await {
                Ok(()) => acknowledged_us[n as usize].store(stamp(clock), Ordering::Relaxed),
                Err(error) => {
                    if write_errors.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("publisher: {error:#}");
                    }
                }
            }
            drop(permit);
        });
        while writers.try_join_next().is_some() {}
    }
    while writers.join_next().await.is_some() {}
    let publish_seconds = publishing_started.elapsed().as_secs_f64();
    publishing_done.notify_one();
    let read_errors = reader.await?;
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let (mut measured, mut before_acknowledgement) = (0u64, 0u64);
    for (acknowledged, arrived) in acknowledged_us.iter().zip(arrived_us.iter()) {
        let (acknowledged, arrived) = (
            acknowledged.load(Ordering::Relaxed),
            arrived.load(Ordering::Relaxed),
        );
        if acknowledged == 0 || arrived == 0 {
            continue;
        }
        measured += 1;
        if arrived < acknowledged {
            before_acknowledgement += 1;
        }
        let _ = histogram.record(arrived.saturating_sub(acknowledged).max(1));
    }
    let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    println!(
        "workload=replication-lag source={} receiver={} rate_per_s={} published={n_facts} publish_rate={:.0} write_errors={} received={} read_errors={read_errors} measured={measured} arrived_before_ack={before_acknowledgement}",
        bench.base,
        bench.follow,
        bench.rate_per_s,
        n_facts as f64 / publish_seconds,
        write_errors.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed),
    );
    println!(
        "lag_p50_ms={:.3} lag_p99_ms={:.3} lag_p999_ms={:.3} lag_max_ms={:.3}",
        ms(0.5),
        ms(0.99),
        ms(0.999),
        histogram.max() as f64 / 1000.0
    );
    Ok(())
}
