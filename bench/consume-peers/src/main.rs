//! Durable-consumption load tool for Cairn's peer comparison, driven by `bench/consume-peers.sh`.
//!
//! For one peer (RabbitMQ quorum queue, NATS JetStream pull consumer, or a PostgreSQL queue
//! table) it measures, with durable settings only and a 256-byte payload:
//!   * consume throughput over a preloaded backlog, once per consumer count (default 1 and 4):
//!     messages per second from the start signal until the last durable acknowledgement;
//!   * publish-to-handler latency at a fixed publish rate with one consumer (the publisher
//!     stamps the send time into the payload, the consumer records now − stamp on receipt).
//!
//! It also has two small phases used by the driver's strace check: `ackcheck-preload` fills the
//! queue, `ackcheck-consume` consumes one message at a time, each with its own acknowledgement,
//! so the script can count fsync-family calls per acknowledgement on the server; `remove` only
//! deletes the bench queue (clean-up after a failed run on a shared server).
//!
//! Output: `key=value` lines on stdout (keys prefixed by the peer name); progress on stderr.
//! Every phase is bounded in count (the backlog or the publish count) and in time.

mod common;
mod nats;
mod postgres;
mod rabbitmq;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use common::{ConsumeReport, LatencyReport};

/// Default backlog per consume phase.
const MESSAGES_DEFAULT: u64 = 200_000;
/// Default fixed publish rate of the latency phase.
const LATENCY_RATE_PER_S_DEFAULT: u64 = 1_000;
/// Default length of the latency phase.
const LATENCY_SECS_DEFAULT: f64 = 10.0;
/// Default messages acknowledged (or deleted) together.
const ACK_BATCH_DEFAULT: usize = 100;
/// Default messages delivered ahead of acknowledgement (RabbitMQ prefetch, JetStream pull batch).
const PREFETCH_DEFAULT: u16 = 1_000;
/// Default upper bound on one phase.
const PHASE_TIMEOUT_SECS_DEFAULT: f64 = 120.0;
/// Default backlog of the ack-check phase.
const ACKCHECK_COUNT_DEFAULT: u64 = 5_000;
/// Default length of the ack-check consume phase.
const ACKCHECK_SECS_DEFAULT: f64 = 3.0;
/// Extra time the latency consumer waits for the last messages after the publisher stops.
const LATENCY_DRAIN_GRACE: Duration = Duration::from_secs(10);

/// What one invocation does.
#[derive(Clone, Copy, PartialEq)]
enum Phase {
    /// Consume phases for every consumer count, then the latency phase.
    All,
    /// Fresh queue with `ackcheck_count` messages, left in place.
    AckcheckPreload,
    /// One-at-a-time consume of the ack-check backlog, then the queue is removed.
    AckcheckConsume,
    /// Only removes the bench queue (clean-up after a failed run).
    Remove,
}

/// Command-line settings.
struct Args {
    peer: String,
    url: String,
    queue_name: String,
    messages: u64,
    consumer_counts: Vec<usize>,
    latency_rate_per_s: u64,
    latency_duration: Duration,
    ack_batch: usize,
    prefetch: u16,
    phase_timeout: Duration,
    nats_double_ack: bool,
    nats_workqueue: bool,
    postgres_two_step: bool,
    postgres_notify_wakeup: bool,
    phase: Phase,
    ackcheck_count: u64,
    ackcheck_duration: Duration,
}

const USAGE: &str = "usage: consume-peers --peer rabbitmq|nats|postgres --url URL [--queue NAME] \
[--messages 200000] [--consumers 1,4] [--latency-rate 1000] [--latency-secs 10] [--batch 100] \
[--prefetch 1000] [--phase-timeout-secs 120] [--nats-ack double|single] \
[--nats-retention limits|workqueue] [--postgres-two-step] [--postgres-wakeup notify|poll] \
[--phase all|ackcheck-preload|ackcheck-consume|remove] [--ackcheck-count 5000] [--ackcheck-secs 3]";

fn parse_secs(text: &str) -> Result<Duration> {
    let secs: f64 = text.parse().context("seconds must be a number")?;
    if !(secs > 0.0 && secs <= 3_600.0) {
        bail!("seconds must be in (0, 3600]");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        peer: String::new(),
        url: String::new(),
        queue_name: "cairn_consume_bench".into(),
        messages: MESSAGES_DEFAULT,
        consumer_counts: vec![1, 4],
        latency_rate_per_s: LATENCY_RATE_PER_S_DEFAULT,
        latency_duration: Duration::from_secs_f64(LATENCY_SECS_DEFAULT),
        ack_batch: ACK_BATCH_DEFAULT,
        prefetch: PREFETCH_DEFAULT,
        phase_timeout: Duration::from_secs_f64(PHASE_TIMEOUT_SECS_DEFAULT),
        nats_double_ack: true,
        nats_workqueue: false,
        postgres_two_step: false,
        postgres_notify_wakeup: true,
        phase: Phase::All,
        ackcheck_count: ACKCHECK_COUNT_DEFAULT,
        ackcheck_duration: Duration::from_secs_f64(ACKCHECK_SECS_DEFAULT),
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        if flag == "-h" || flag == "--help" {
            eprintln!("{USAGE}");
            std::process::exit(0);
        }
        if flag == "--postgres-two-step" {
            args.postgres_two_step = true;
            continue;
        }
        let value = words
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--peer" => args.peer = value,
            "--url" => args.url = value,
            "--queue" => args.queue_name = value,
            "--messages" => args.messages = value.parse()?,
            "--consumers" => {
                args.consumer_counts = value.split(',').map(str::parse).collect::<Result<_, _>>()?
            }
            "--latency-rate" => args.latency_rate_per_s = value.parse()?,
            "--latency-secs" => args.latency_duration = parse_secs(&value)?,
            "--batch" => args.ack_batch = value.parse()?,
            "--prefetch" => args.prefetch = value.parse()?,
            "--phase-timeout-secs" => args.phase_timeout = parse_secs(&value)?,
            "--nats-ack" => {
                args.nats_double_ack = match value.as_str() {
                    "double" => true,
                    "single" => false,
                    _ => bail!("--nats-ack must be double or single"),
                }
            }
            "--nats-retention" => {
                args.nats_workqueue = match value.as_str() {
                    "workqueue" => true,
                    "limits" => false,
                    _ => bail!("--nats-retention must be limits or workqueue"),
                }
            }
            "--postgres-wakeup" => {
                args.postgres_notify_wakeup = match value.as_str() {
                    "notify" => true,
                    "poll" => false,
                    _ => bail!("--postgres-wakeup must be notify or poll"),
                }
            }
            "--phase" => {
                args.phase = match value.as_str() {
                    "all" => Phase::All,
                    "ackcheck-preload" => Phase::AckcheckPreload,
                    "ackcheck-consume" => Phase::AckcheckConsume,
                    "remove" => Phase::Remove,
                    _ => bail!("unknown --phase {value}"),
                }
            }
            "--ackcheck-count" => args.ackcheck_count = value.parse()?,
            "--ackcheck-secs" => args.ackcheck_duration = parse_secs(&value)?,
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    if args.url.is_empty() {
        bail!("--url is required\n{USAGE}");
    }
    if args.messages == 0
        || args.ack_batch == 0
        || args.prefetch == 0
        || args.latency_rate_per_s == 0
        || args.ackcheck_count == 0
        || args.consumer_counts.contains(&0)
    {
        bail!("counts, rates and batch sizes must be positive");
    }
    Ok(args)
}

/// One peer under test. Every method works on the peer's single bench queue.
trait Peer {
    /// Key prefix of this peer's output lines.
    fn key(&self) -> &str;
    /// Comma-separated settings the peer runs with.
    fn settings(&self) -> String;
    /// Whether consuming leaves the messages in place, so that the next consume phase (with a
    /// fresh consumer reading from the start) can reuse the backlog instead of preloading again.
    fn backlog_survives_consume(&self) -> bool {
        false
    }
    /// Removes any old bench queue and creates an empty one.
    async fn reset(&self) -> Result<()>;
    /// Appends `count` durable messages to the queue.
    async fn preload(&self, count: u64) -> Result<()>;
    /// Consumes `target` messages with `consumers` concurrent consumers.
    async fn consume(
        &self,
        consumers: usize,
        target: u64,
        timeout: Duration,
    ) -> Result<ConsumeReport>;
    /// Publishes at `rate_per_s` for `duration` and records publish-to-handler latencies.
    async fn latency(
        &self,
        clock: common::Clock,
        rate_per_s: u64,
        duration: Duration,
        drain_grace: Duration,
    ) -> Result<LatencyReport>;
    /// Consumes one message at a time, each acknowledged durably on its own; returns the count.
    async fn consume_one_at_a_time(&self, count_max: u64, duration: Duration) -> Result<u64>;
    /// Removes the bench queue.
    async fn remove(&self) -> Result<()>;
}

fn emit(line: String) {
    println!("{line}");
}

async fn run_consume_phases<P: Peer>(peer: &P, args: &Args) -> Result<()> {
    let key = peer.key();
    for (phase_index, &consumers) in args.consumer_counts.iter().enumerate() {
        if phase_index == 0 || !peer.backlog_survives_consume() {
            peer.reset().await?;
            eprintln!(
                "consume-peers: {key}: preloading {} messages",
                args.messages
            );
            let preload_start = Instant::now();
            peer.preload(args.messages).await?;
            let preload_secs = preload_start.elapsed().as_secs_f64();
            emit(format!(
                "{key}_preload_{consumers}={:.0}",
                args.messages as f64 / preload_secs
            ));
        } else {
            eprintln!("consume-peers: {key}: reusing the backlog with a fresh consumer");
        }
        eprintln!("consume-peers: {key}: consuming with {consumers} consumer(s)");
        let report = peer
            .consume(consumers, args.messages, args.phase_timeout)
            .await?;
        let secs = report.elapsed.as_secs_f64();
        emit(format!(
            "{key}_consume_{consumers}={:.0}",
            report.acked as f64 / secs
        ));
        emit(format!(
            "{key}_consume_{consumers}_messages={}",
            report.acked
        ));
        emit(format!("{key}_consume_{consumers}_secs={secs:.3}"));
        emit(format!("{key}_consume_{consumers}_left={}", report.left));
        if report.acked < args.messages {
            emit(format!(
                "{key}_consume_{consumers}_error=incomplete_{}_of_{}",
                report.acked, args.messages
            ));
        }
    }
    Ok(())
}

async fn run_latency_phase<P: Peer>(peer: &P, args: &Args) -> Result<()> {
    let key = peer.key();
    peer.reset().await?;
    eprintln!(
        "consume-peers: {key}: latency at {}/s for {:.1}s",
        args.latency_rate_per_s,
        args.latency_duration.as_secs_f64()
    );
    let report = peer
        .latency(
            common::Clock::new(),
            args.latency_rate_per_s,
            args.latency_duration,
            LATENCY_DRAIN_GRACE,
        )
        .await?;
    let histogram = &report.histogram;
    let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1_000.0;
    emit(format!("{key}_latency_p50_ms={:.3}", ms(0.50)));
    emit(format!("{key}_latency_p99_ms={:.3}", ms(0.99)));
    emit(format!("{key}_latency_p999_ms={:.3}", ms(0.999)));
    emit(format!(
        "{key}_latency_max_ms={:.3}",
        histogram.max() as f64 / 1_000.0
    ));
    emit(format!("{key}_latency_received={}", histogram.len()));
    emit(format!("{key}_latency_published={}", report.published));
    emit(format!(
        "{key}_latency_publish_rate={:.0}",
        report.published as f64 / report.publish_elapsed.as_secs_f64()
    ));
    if histogram.len() < report.published {
        emit(format!(
            "{key}_latency_error=received_{}_of_{}",
            histogram.len(),
            report.published
        ));
    }
    Ok(())
}

async fn run<P: Peer>(peer: &P, args: &Args) -> Result<()> {
    let key = peer.key();
    match args.phase {
        Phase::All => {
            emit(format!("{key}_settings={}", peer.settings()));
            run_consume_phases(peer, args).await?;
            run_latency_phase(peer, args).await?;
            peer.remove().await?;
        }
        Phase::AckcheckPreload => {
            peer.reset().await?;
            peer.preload(args.ackcheck_count).await?;
        }
        Phase::AckcheckConsume => {
            let acked = peer
                .consume_one_at_a_time(args.ackcheck_count, args.ackcheck_duration)
                .await?;
            emit(format!("{key}_ackcheck_acks={acked}"));
            peer.remove().await?;
        }
        Phase::Remove => peer.remove().await?,
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = parse_args()?;
    match args.peer.as_str() {
        "rabbitmq" => {
            let peer =
                rabbitmq::RabbitMq::new(&args.url, &args.queue_name, args.prefetch, args.ack_batch);
            run(&peer, &args).await
        }
        "nats" => {
            let peer = nats::Nats::new(
                &args.url,
                args.prefetch,
                args.ack_batch,
                args.nats_double_ack,
                args.nats_workqueue,
            );
            run(&peer, &args).await
        }
        "postgres" => {
            let peer = postgres::Postgres::new(
                &args.url,
                args.ack_batch,
                false,
                args.postgres_notify_wakeup,
            );
            run(&peer, &args).await?;
            if args.postgres_two_step && args.phase == Phase::All {
                let two_step = postgres::Postgres::new(
                    &args.url,
                    args.ack_batch,
                    true,
                    args.postgres_notify_wakeup,
                );
                emit(format!(
                    "{}_settings={}",
                    two_step.key(),
                    two_step.settings()
                ));
                run_consume_phases(&two_step, &args).await?;
                two_step.remove().await?;
            }
            Ok(())
        }
        other => bail!("unknown --peer {other}\n{USAGE}"),
    }
}
