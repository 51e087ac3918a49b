//! JetStream mirroring, the peer of Cairn's replication links (`bench/replication.sh`).
//!
//! Two servers (or one, when `--mirror-url` equals `--url`): the origin stream `ORIGIN`
//! (file storage, R1, subjects `repl.>`) lives on the server at `--url`; the mirror stream
//! `MIRROR` (file storage, R1) lives on the server at `--mirror-url` and mirrors `ORIGIN`
//! from the JetStream domain `--origin-domain` (two servers joined by a leaf node, each its
//! own domain) or from the same server (no domain).
//!
//! 1. Backlog: `--messages` payloads of `--payload-size` bytes are published to `ORIGIN`
//!    with acks, `--inflight` outstanding at most (not timed as part of the mirror).
//! 2. Throughput: the mirror is created, and the time until its state holds every message
//!    gives messages/s (polled every 20 ms, bounded by `--timeout`).
//! 3. Lag: with an ordered push consumer on the mirror (new messages only), one message is
//!    published to the origin every 1/`--rate` s for `--lag-secs` s, each awaiting its ack
//!    (at most 64 outstanding); the lag of a message is the time from its publish ack to its
//!    delivery from the mirror. Percentiles are nearest-rank.
//!
//! Output: `key=value` lines on stdout (`peer=nats scenario=…`); progress on stderr.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};

/// Options of the mirror scenario.
pub struct MirrorArgs {
    pub url: String,
    pub mirror_url: String,
    pub origin_domain: Option<String>,
    pub messages: u64,
    pub inflight: usize,
    pub payload_size: usize,
    pub rate: u64,
    pub lag_secs: u64,
    pub timeout: Duration,
    pub label: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn payload(n: u64, size: usize) -> Bytes {
    let mut text = format!("{n:020}");
    text.extend(std::iter::repeat('x').take(size.saturating_sub(20)));
    Bytes::from(text)
}

fn number_of(payload: &[u8]) -> Option<u64> {
    std::str::from_utf8(payload.get(..20)?).ok()?.parse().ok()
}

fn nearest_rank(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

pub async fn run(args: MirrorArgs) -> Result<(), BoxError> {
    let label = if args.label.is_empty() {
        String::new()
    } else {
        format!(" {}", args.label)
    };
    let origin_client = async_nats::connect(&args.url).await?;
    let origin = jetstream::ContextBuilder::new()
        .max_ack_inflight(args.inflight.max(64) * 2)
        .build(origin_client);
    let mirror_client = async_nats::connect(&args.mirror_url).await?;
    let mirror_js = jetstream::new(mirror_client.clone());

    let _ = mirror_js.delete_stream("MIRROR").await;
    let _ = origin.delete_stream("ORIGIN").await;
    origin
        .create_stream(stream::Config {
            name: "ORIGIN".into(),
            subjects: vec!["repl.>".into()],
            storage: stream::StorageType::File,
            num_replicas: 1,
            ..Default::default()
        })
        .await?;

    // 1. The backlog.
    eprintln!("nats-peer mirror: publishing {} messages", args.messages);
    let started = Instant::now();
    let deadline = started + args.timeout;
    let mut pending = FuturesUnordered::new();
    let (mut sent, mut acked, mut errors) = (0u64, 0u64, 0u64);
    while acked + errors < args.messages {
        while pending.len() < args.inflight && sent < args.messages && Instant::now() < deadline {
            let subject = format!("repl.{}", sent % 16);
            match origin
                .publish(subject, payload(sent, args.payload_size))
                .await
            {
                Ok(ack) => pending.push(async move { ack.await }),
                Err(error) => {
                    errors += 1;
                    if errors <= 3 {
                        eprintln!("nats-peer mirror: publish error: {error}");
                    }
                }
            }
            sent += 1;
        }
        match tokio::time::timeout_at(deadline.into(), pending.next()).await {
            Ok(Some(Ok(_))) => acked += 1,
            Ok(Some(Err(error))) => {
                errors += 1;
                if errors <= 3 {
                    eprintln!("nats-peer mirror: ack error: {error}");
                }
            }
            Ok(None) => break,
            Err(_) => return Err("the backlog was not published within --timeout".into()),
        }
    }
    let publish_secs = started.elapsed().as_secs_f64();
    println!(
        "peer=nats scenario=mirror_backlog messages={} acked={acked} errors={errors} publish_per_s={:.0} secs={publish_secs:.1} inflight={}{label}",
        args.messages,
        acked as f64 / publish_secs,
        args.inflight
    );
    if errors > 0 {
        return Err("the backlog was not published whole".into());
    }

    // 2. Mirror throughput.
    let started = Instant::now();
    let deadline = started + args.timeout;
    let mut mirror = mirror_js
        .create_stream(stream::Config {
            name: "MIRROR".into(),
            storage: stream::StorageType::File,
            num_replicas: 1,
            mirror: Some(stream::Source {
                name: "ORIGIN".into(),
                // The server takes a domain as the external API prefix `$JS.<domain>.API`.
                external: args.origin_domain.as_ref().map(|domain| stream::External {
                    api_prefix: format!("$JS.{domain}.API"),
                    delivery_prefix: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?;
    let mut held = 0;
    while Instant::now() < deadline {
        held = mirror.info().await?.state.messages;
        if held >= acked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mirror_secs = started.elapsed().as_secs_f64();
    println!(
        "peer=nats scenario=mirror_throughput messages={acked} mirrored={held} secs={mirror_secs:.2} messages_per_s={:.0} complete={}{label}",
        held as f64 / mirror_secs,
        held >= acked
    );

    // 3. Steady-state lag.
    let n_messages = args.rate * args.lag_secs;
    let consumer = mirror
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: mirror_client.new_inbox(),
            deliver_policy: consumer::DeliverPolicy::New,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let clock = Instant::now();
    let stamp = move || clock.elapsed().as_micros() as u64 + 1;
    let acknowledged: Arc<Vec<AtomicU64>> =
        Arc::new((0..n_messages).map(|_| AtomicU64::new(0)).collect());
    let arrived: Arc<Vec<AtomicU64>> =
        Arc::new((0..n_messages).map(|_| AtomicU64::new(0)).collect());
    let reader = {
        let arrived = Arc::clone(&arrived);
        let hard_deadline = Instant::now() + Duration::from_secs(args.lag_secs + 60);
        tokio::spawn(async move {
            let mut received = 0u64;
            let base = args.messages;
            while received < n_messages {
                match tokio::time::timeout_at(hard_deadline.into(), messages.next()).await {
                    Ok(Some(Ok(message))) => {
                        let now = stamp();
                        if let Some(n) = number_of(&message.payload) {
                            if let Some(slot) =
                                n.checked_sub(base).and_then(|i| arrived.get(i as usize))
                            {
                                if slot.swap(now, Ordering::Relaxed) == 0 {
                                    received += 1;
                                }
                            }
                        }
                    }
                    Ok(Some(Err(error))) => eprintln!("nats-peer mirror: consumer error: {error}"),
                    Ok(None) | Err(_) => break,
                }
            }
            received
        })
    };
    let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / args.rate.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let publishing_started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    let lag_errors = Arc::new(AtomicU64::new(0));
    for i in 0..n_messages {
        ticker.tick().await;
        let permit = Arc::clone(&in_flight).acquire_owned().await?;
        let (origin, acknowledged, lag_errors) = (
            origin.clone(),
            Arc::clone(&acknowledged),
            Arc::clone(&lag_errors),
        );
        let body = payload(args.messages + i, args.payload_size);
        writers.spawn(async move {
            let result = match origin.publish("repl.lag", body).await {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            match result {
                Ok(()) => acknowledged[i as usize].store(stamp(), Ordering::Relaxed),
                Err(error) => {
                    if lag_errors.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("nats-peer mirror: lag publish error: {error}");
                    }
                }
            }
            drop(permit);
        });
        while writers.try_join_next().is_some() {}
    }
    while writers.join_next().await.is_some() {}
    let publish_secs = publishing_started.elapsed().as_secs_f64();
    let received = reader.await?;
    let mut lags: Vec<u64> = Vec::with_capacity(n_messages as usize);
    let mut before_ack = 0u64;
    for (acked_at, arrived_at) in acknowledged.iter().zip(arrived.iter()) {
        let (acked_at, arrived_at) = (
            acked_at.load(Ordering::Relaxed),
            arrived_at.load(Ordering::Relaxed),
        );
        if acked_at == 0 || arrived_at == 0 {
            continue;
        }
        if arrived_at < acked_at {
            before_ack += 1;
        }
        lags.push(arrived_at.saturating_sub(acked_at).max(1));
    }
    lags.sort_unstable();
    println!(
        "peer=nats scenario=mirror_lag rate_per_s={} published={n_messages} publish_rate={:.0} publish_errors={} received={received} measured={} arrived_before_ack={before_ack} lag_p50_ms={:.3} lag_p99_ms={:.3} lag_p999_ms={:.3} lag_max_ms={:.3}{label}",
        args.rate,
        n_messages as f64 / publish_secs,
        lag_errors.load(Ordering::Relaxed),
        lags.len(),
        nearest_rank(&lags, 50.0),
        nearest_rank(&lags, 99.0),
        nearest_rank(&lags, 99.9),
        lags.last().copied().unwrap_or(0) as f64 / 1000.0,
    );
    let _ = mirror_js.delete_stream("MIRROR").await;
    let _ = origin.delete_stream("ORIGIN").await;
    Ok(())
}
