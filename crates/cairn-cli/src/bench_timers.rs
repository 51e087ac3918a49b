//! `cairn bench --workload timers` and `--workload timers-pending`: the
//! durable timer benchmarks (`bench/timers.sh`, "Issue 14: timers" in
//! `docs/benchmarks.md`).
//!
//! `timers` creates `--preload` one-shot timers all due in the same second
//! (far enough ahead that creating them all ends first), then follows the
//! log and reports how long after that second the last one fired, the
//! firing rate, and each occurrence's lateness (from its due time to the
//! moment its fact was seen in the log) at p50/p99. `timers-pending`
//! creates up to `--preload` one-shot timers far in the future, within
//! `--duration` seconds, for a memory measurement of the server.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use cairn_api::{format_utc_ms, FactPage};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// What one timer benchmark needs.
pub struct TimerBench {
    pub http: reqwest::Client,
    pub base: String,
    pub run_id: u64,
    pub clients: usize,
    pub timers: u64,
    pub duration: Duration,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

impl TimerBench {
    fn type_name(&self) -> String {
        format!("Bench.Timer{}", self.run_id)
    }

    /// Creates timers `0..count` due at `due_ms(index)`, `clients` at a
    /// time, until `deadline`; answers how many were created.
    async fn create(
        &self,
        count: u64,
        deadline: Instant,
        due_ms: impl Fn(u64) -> u64 + Send + Sync + 'static,
    ) -> anyhow::Result<u64> {
        let next = Arc::new(AtomicU64::new(0));
        let created = Arc::new(AtomicU64::new(0));
        let due_ms = Arc::new(due_ms);
        let mut workers = Vec::new();
        for _ in 0..self.clients {
            let (next, created, due_ms) =
                (Arc::clone(&next), Arc::clone(&created), Arc::clone(&due_ms));
            let http = self.http.clone();
            let base = self.base.clone();
            let type_name = self.type_name();
            let run_id = self.run_id;
            workers.push(tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count || Instant::now() >= deadline {
                        return Ok::<(), anyhow::Error>(());
                    }
                    let body = json!({
                        "at": format_utc_ms(due_ms(index)),
                        "fact": {"type": type_name, "fields": {"i": index}, "predecessors": {}},
                    });
                    let response = http
                        .put(format!("{base}/v1/timers/bench-{run_id}-{index}"))
                        .json(&body)
                        .send()
                        .await
                        .context("cannot reach the server")?;
                    if !response.status().is_success() {
                        bail!("creating a timer answered {}", response.status());
                    }
                    created.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for worker in workers {
            worker.await??;
        }
        Ok(created.load(Ordering::Relaxed))
    }

    async fn last_seq(&self) -> anyhow::Result<u64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?;
        text.lines()
            .find_map(|line| line.strip_prefix(cairn_api::meta::LOG_LAST_SEQ_METRIC))
            .and_then(|value| value.trim().parse().ok())
            .context("the server's metrics lack the log's last seq")
    }
}

/// `--workload timers`.
pub async fn fire(bench: TimerBench) -> anyhow::Result<()> {
    let after_seq = bench.last_seq().await?;
    // Creating runs at several thousand a second; leave twice the time
    // that would take at 1,000 a second, at least 5 s.
    let lead_ms = (bench.timers * 2).max(5_000);
    let due_ms = (unix_ms() + lead_ms) / 1_000 * 1_000 + 1_000;
    let created_started = Instant::now();
    let created = bench
        .create(
            bench.timers,
            Instant::now() + Duration::from_millis(lead_ms),
            move |_| due_ms,
        )
        .await?;
    let create_secs = created_started.elapsed().as_secs_f64();
    if unix_ms() >= due_ms {
        bail!(
            "creating {} timers took longer than the lead of {lead_ms} ms",
            bench.timers
        );
    }
    let mut lateness = Histogram::<u64>::new_with_bounds(1, 600_000, 3)?;
    let mut seen = HashSet::new();
    let mut after = after_seq;
    let mut last_seen_ms = due_ms;
    let deadline = Instant::now() + Duration::from_millis(due_ms - unix_ms()) + bench.duration;
    let type_name = bench.type_name();
    while (seen.len() as u64) < created && Instant::now() < deadline {
        let page: FactPage<Value> = bench
            .http
            .get(format!(
                "{}/v1/log?after={after}&limit=10000&wait_ms=1000",
                bench.base
            ))
            .send()
            .await?
            .json()
            .await?;
        let now_ms = unix_ms();
        for stored in &page.facts {
            if stored.fact["type"] == type_name.as_str()
                && seen.insert(stored.fact["fields"]["i"].as_u64())
            {
                lateness.record(now_ms.saturating_sub(due_ms).max(1))?;
                last_seen_ms = now_ms;
            }
        }
        after = page.next;
    }
    let fired = seen.len() as u64;
    let all_fired_ms = last_seen_ms.saturating_sub(due_ms);
    println!(
        "workload=timers timers={created} created_per_s={:.0} fired={fired} all_fired_ms={all_fired_ms} \
         firing_rate_per_s={:.0} lateness_p50_ms={} lateness_p99_ms={} lateness_max_ms={}",
        created as f64 / create_secs,
        fired as f64 / (all_fired_ms.max(1) as f64 / 1_000.0),
        lateness.value_at_quantile(0.5),
        lateness.value_at_quantile(0.99),
        lateness.max(),
    );
    if fired < created {
        bail!("only {fired} of {created} timers fired within the bound");
    }
    Ok(())
}

/// `--workload timers-pending`.
pub async fn pending(bench: TimerBench) -> anyhow::Result<()> {
    let started = Instant::now();
    // A year ahead, spread over a day: nothing fires during the run.
    let base_ms = unix_ms() + 365 * 86_400_000;
    let created = bench
        .create(bench.timers, started + bench.duration, move |index| {
            base_ms + index % 86_400_000
        })
        .await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "workload=timers-pending created={created} seconds={secs:.1} created_per_s={:.0}",
        created as f64 / secs
    );
    Ok(())
}
