//! `cairn bench --workload consume|latency`: delivery benchmarks over HTTP.
//!
//! * `consume`: preloads a backlog of messages, then `--clients` consumers
//!   pull `--batch` at a time and ack each batch durably (the ack of one
//!   batch beside the pull of the next), until the backlog is gone or the
//!   time is up; reports messages per second of the consume phase, counting
//!   a message once its ack is answered.
//! * `latency`: one publisher writes single facts at `--rate` per second,
//!   one consumer long-polls and acks; reports publish-to-handler latency
//!   percentiles (the publisher stamps each fact with its send time).
//!
//! Each run uses its own fact type and subscription, deleted at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::bench::{write_latency_log, LatencySample};

/// What a delivery benchmark needs from the command line.
pub struct DeliveryBench {
    /// Base URL of the server.
    pub base: String,
    /// Servers the consumers pull from and ack to, consumer `i` using
    /// `consume_bases[i % len]` (one subscription consumed through several
    /// servers sharing a database); `[base]` by default.
    pub consume_bases: Vec<String>,
    /// Unique id of this run.
    pub run_id: u64,
    /// Consumers (`consume`).
    pub clients: usize,
    /// Messages per pull and per ack.
    pub batch: usize,
    /// Seconds to run at most.
    pub duration: Duration,
    /// Backlog to preload (`consume`).
    pub preload: u64,
    /// Messages published per second (`latency`).
    pub rate_per_s: u64,
    /// Bytes of each message's payload.
    pub fields_bytes: usize,
    /// A CA certificate file to trust for `https://` servers.
    pub ca_cert: Option<std::path::PathBuf>,
    /// Access token for servers that run with `--auth`.
    pub token: Option<String>,
    /// Where to write every consume cycle's start, latency and messages
    /// (`consume`), as `cairn bench --latency-log` does for requests.
    pub latency_log: Option<std::path::PathBuf>,
}

impl DeliveryBench {
    fn type_name(&self) -> String {
        format!("Bench.Msg_{}", self.run_id)
    }

    fn subscription(&self) -> String {
        format!("bench-{}", self.run_id)
    }

    fn message_json(&self, n: u64, sent_us: u64) -> String {
        let padding = "x".repeat(self.fields_bytes.saturating_sub(48));
        format!(
            "{{\"type\":\"{}\",\"predecessors\":{{}},\"fields\":{{\"n\":{n},\"sent_us\":{sent_us},\"payload\":\"{padding}\"}}}}",
            self.type_name()
        )
    }

    async fn post<T: DeserializeOwned>(
        &self,
        http: &reqwest::Client,
        base: &str,
        path: &str,
        body: String,
    ) -> anyhow::Result<T> {
        let response = http
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach the server for {path}"))?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            bail!(
                "{path} answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    async fn create_subscription(&self, http: &reqwest::Client, start: &str) -> anyhow::Result<()> {
        let response = http
            .put(format!(
                "{}/v1/subscriptions/{}",
                self.base,
                self.subscription()
            ))
            .json(&json!({"type": self.type_name(), "start": start, "lease_ms": 60_000}))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("creating the subscription answered {}", response.status());
        }
        Ok(())
    }

    async fn delete_subscription(&self, http: &reqwest::Client) {
        let url = format!("{}/v1/subscriptions/{}", self.base, self.subscription());
        if let Err(error) = http.delete(url).send().await {
            eprintln!("could not delete the benchmark subscription: {error}");
        }
    }

    /// Pulls up to `batch` messages, long-polling up to `wait_ms`.
    async fn pull(
        &self,
        http: &reqwest::Client,
        base: &str,
        wait_ms: u64,
    ) -> anyhow::Result<Vec<Pulled>> {
        let name = self.subscription();
        let answer: PullAnswer = self
            .post(
                http,
                base,
                &format!("/v1/subscriptions/{name}/pull"),
                json!({"max": self.batch, "wait_ms": wait_ms}).to_string(),
            )
            .await?;
        Ok(answer.messages)
    }

    /// Acks `messages` durably; fails unless every ack is accepted.
    async fn ack(
        &self,
        http: &reqwest::Client,
        base: &str,
        messages: &[Pulled],
    ) -> anyhow::Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let name = self.subscription();
        let tokens: Vec<&str> = messages.iter().map(|m| m.token.as_str()).collect();
        let answer: Value = self
            .post(
                http,
                base,
                &format!("/v1/subscriptions/{name}/ack"),
                json!({ "tokens": tokens }).to_string(),
            )
            .await?;
        let acked = answer["results"].as_array().map_or(0, |results| {
            results.iter().filter(|r| r["status"] == "acked").count()
        });
        if acked != messages.len() {
            bail!("only {acked} of {} acks were accepted", messages.len());
        }
        Ok(())
    }
}

/// The part of a pull answer the benchmark reads; the facts stay raw JSON,
/// so the load generator spends its CPU on load, not on parsing.
#[derive(Deserialize)]
struct PullAnswer {
    messages: Vec<Pulled>,
}

/// One pulled message.
#[derive(Deserialize)]
struct Pulled {
    token: String,
    fact: Box<RawValue>,
}

impl Pulled {
    /// The send time the latency publisher stamped into the fact.
    fn sent_us(&self) -> Option<u64> {
        #[derive(Deserialize)]
        struct Stamped {
            fields: Stamp,
        }
        #[derive(Deserialize)]
        struct Stamp {
            sent_us: u64,
        }
        let stamped: Stamped = serde_json::from_str(self.fact.get()).ok()?;
        Some(stamped.fields.sent_us)
    }
}

/// The `consume` workload.
pub async fn consume(bench: DeliveryBench) -> anyhow::Result<()> {
    let bench = Arc::new(bench);
    let http = crate::bench::http_client(
        bench.clients + 4,
        Duration::from_secs(120),
        bench.ca_cert.as_deref(),
        bench.token.as_deref(),
    )?;
    bench.create_subscription(&http, "beginning").await?;
    let preload_started = Instant::now();
    let mut n = 0;
    while n < bench.preload {
        let facts: Vec<String> = (n..bench.preload.min(n + 1_000))
            .map(|index| bench.message_json(index, 0))
            .collect();
        n += facts.len() as u64;
        bench
            .post::<Value>(
                &http,
                &bench.base,
                "/v1/facts",
                format!("{{\"facts\":[{}]}}", facts.join(",")),
            )
            .await?;
    }
    let preload_seconds = preload_started.elapsed().as_secs_f64();
    let consumed = Arc::new(AtomicU64::new(0));
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let cycle_log: Arc<Mutex<Vec<LatencySample>>> = Arc::default();
    let started = Instant::now();
    let deadline = started + bench.duration;
    let mut consumers = Vec::new();
    for consumer in 0..bench.clients {
        let base = bench.consume_bases[consumer % bench.consume_bases.len()].clone();
        let (bench, http, consumed, histogram, cycle_log) = (
            Arc::clone(&bench),
            http.clone(),
            Arc::clone(&consumed),
            Arc::clone(&histogram),
            Arc::clone(&cycle_log),
        );
        consumers.push(tokio::spawn(async move {
            let mut local =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
            let mut cycles: Vec<LatencySample> = Vec::new();
            let log_cycles = bench.latency_log.is_some();
            // One ack in flight per consumer, beside the next pull, as the
            // SDK's subscriber does; a message counts once its ack is durable.
            // A cycle lasts from its pull to its durable ack, measured in
            // the ack's task: when the consumer settles it, its next pull
            // may have long-polled meanwhile (the last one waits out
            // `wait_ms` on an empty backlog), which is not the cycle's time.
            let mut pending_ack: Option<tokio::task::JoinHandle<anyhow::Result<AckedCycle>>> = None;
            let settle = |result: Result<anyhow::Result<AckedCycle>, tokio::task::JoinError>,
                          local: &mut Histogram<u64>,
                          cycles: &mut Vec<LatencySample>| match result {
                Ok(Ok(AckedCycle {
                    n_messages,
                    cycle_started,
                    latency,
                })) => {
                    let _ = local.record(latency.as_micros().max(1) as u64);
                    consumed.fetch_add(n_messages, Ordering::Relaxed);
                    if log_cycles {
                        cycles.push(LatencySample {
                            started_s: (cycle_started - started).as_secs_f64(),
                            latency,
                            n_facts: n_messages,
                        });
                    }
                }
                Ok(Err(error)) => eprintln!("consumer ack: {error:#}"),
                Err(error) => eprintln!("consumer ack task: {error}"),
            };
            while Instant::now() < deadline && consumed.load(Ordering::Relaxed) < bench.preload {
                let cycle_started = Instant::now();
                let messages = match bench.pull(&http, &base, 200).await {
                    Ok(messages) => messages,
                    Err(error) => {
                        eprintln!("consumer: {error:#}");
                        continue;
                    }
                };
                if let Some(previous) = pending_ack.take() {
                    settle(previous.await, &mut local, &mut cycles);
                }
                if messages.is_empty() {
                    continue;
                }
                let (bench, http, base) = (Arc::clone(&bench), http.clone(), base.clone());
                pending_ack = Some(tokio::spawn(async move {
                    bench.ack(&http, &base, &messages).await?;
                    Ok(AckedCycle {
                        n_messages: messages.len() as u64,
                        cycle_started,
                        latency: cycle_started.elapsed(),
                    })
                }));
            }
            if let Some(previous) = pending_ack.take() {
                settle(previous.await, &mut local, &mut cycles);
            }
            histogram
                .lock()
                .expect("lock")
                .add(&local)
                .expect("same bounds");
            cycle_log.lock().expect("lock").append(&mut cycles);
        }));
    }
    for consumer in consumers {
        consumer.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    bench.delete_subscription(&http).await;
    let histogram = histogram.lock().expect("lock");
    let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    let consumed = consumed.load(Ordering::Relaxed);
    println!(
        "workload=consume target={} consume_servers={} clients={} batch={} preload={} preload_per_s={:.0} seconds={seconds:.1} consumed={consumed}",
        bench.base,
        bench.consume_bases.len(),
        bench.clients,
        bench.batch,
        bench.preload,
        bench.preload as f64 / preload_seconds
    );
    println!(
        "messages_per_s={:.0} cycle_p50_ms={:.3} cycle_p99_ms={:.3} cycle_max_ms={:.3}",
        consumed as f64 / seconds,
        ms(0.5),
        ms(0.99),
        histogram.max() as f64 / 1000.0
    );
    if let Some(path) = &bench.latency_log {
        write_latency_log(path, &mut cycle_log.lock().expect("lock"))?;
    }
    Ok(())
}

/// One consume cycle whose ack is durable.
struct AckedCycle {
    n_messages: u64,
    cycle_started: Instant,
    /// From the pull's start to the ack's answer.
    latency: Duration,
}

/// The `latency` workload.
pub async fn latency(bench: DeliveryBench) -> anyhow::Result<()> {
    if bench.rate_per_s == 0 {
        bail!("--rate must be positive");
    }
    let bench = Arc::new(bench);
    let http = crate::bench::http_client(
        64,
        Duration::from_secs(120),
        bench.ca_cert.as_deref(),
        bench.token.as_deref(),
    )?;
    bench.create_subscription(&http, "now").await?;
    let clock = Instant::now();
    let n_messages = bench.rate_per_s * bench.duration.as_secs();
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let received = Arc::new(AtomicU64::new(0));
    let consumer = {
        let (bench, http, histogram, received) = (
            Arc::clone(&bench),
            http.clone(),
            Arc::clone(&histogram),
            Arc::clone(&received),
        );
        tokio::spawn(async move {
            // Bounded: the publishing time plus a grace period.
            let deadline = Instant::now() + bench.duration + Duration::from_secs(10);
            let mut acks = tokio::task::JoinSet::new();
            while received.load(Ordering::Relaxed) < n_messages && Instant::now() < deadline {
                // The handler runs on receipt; acks go out beside the next
                // pull, as the SDK's subscriber sends them.
                match bench.pull(&http, &bench.base, 1_000).await {
                    Ok(messages) => {
                        let now_us = clock.elapsed().as_micros() as u64;
                        {
                            let mut histogram = histogram.lock().expect("lock");
                            for message in &messages {
                                let sent_us = message.sent_us().unwrap_or(0);
                                let _ = histogram.record(now_us.saturating_sub(sent_us).max(1));
                            }
                        }
                        received.fetch_add(messages.len() as u64, Ordering::Relaxed);
                        let (bench, http) = (Arc::clone(&bench), http.clone());
                        acks.spawn(async move {
                            if let Err(error) = bench.ack(&http, &bench.base, &messages).await {
                                eprintln!("consumer ack: {error:#}");
                            }
                        });
                    }
                    Err(error) => eprintln!("consumer: {error:#}"),
                }
            }
            while acks.join_next().await.is_some() {}
        })
    };
    let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / bench.rate_per_s));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let published_started = Instant::now();
    for n in 0..n_messages {
        ticker.tick().await;
        let permit = Arc::clone(&in_flight).acquire_owned().await?;
        let (bench, http) = (Arc::clone(&bench), http.clone());
        tokio::spawn(async move {
            let sent_us = clock.elapsed().as_micros() as u64;
            let body = format!("{{\"facts\":[{}]}}", bench.message_json(n, sent_us));
            if let Err(error) = bench
                .post::<Value>(&http, &bench.base, "/v1/facts", body)
                .await
            {
                eprintln!("publisher: {error:#}");
            }
            drop(permit);
        });
    }
    let publish_seconds = published_started.elapsed().as_secs_f64();
    consumer.await?;
    bench.delete_subscription(&http).await;
    let histogram = histogram.lock().expect("lock");
    let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    println!(
        "workload=latency target={} rate_per_s={} published={n_messages} publish_rate={:.0} received={}",
        bench.base,
        bench.rate_per_s,
        n_messages as f64 / publish_seconds,
        received.load(Ordering::Relaxed)
    );
    println!(
        "latency_p50_ms={:.3} latency_p99_ms={:.3} latency_p999_ms={:.3} latency_max_ms={:.3}",
        ms(0.5),
        ms(0.99),
        ms(0.999),
        histogram.max() as f64 / 1000.0
    );
    Ok(())
}
