//! JetStream publish-with-ack load generator used by `bench/peers.sh`.
//!
//! Creates (or recreates) a file-backed, single-replica stream on `bench.>` and publishes
//! fixed-size payloads, timing each publish from the moment it is handed to the client until
//! the server's PubAck arrives. Two modes:
//!   * `seq`    — one message in flight (publish, await ack, repeat);
//!   * `window` — up to `--inflight N` unacknowledged publishes (bounded window of ack futures).
//!
//! Every run is bounded both in time (`--duration`) and in count (`--max-count`).
//! Output: one `key=value` line per mode on stdout; diagnostics go to stderr.
//!
//! `--mode mirror` runs the mirroring scenario of `bench/replication.sh` instead (see
//! `mirror.rs`).

mod mirror;

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::PublishAckFuture, stream};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};

struct Args {
    url: String,
    duration: Duration,
    max_count: u64,
    modes: Vec<String>,
    inflight: usize,
    payload_size: usize,
    stream_name: String,
    label: String,
    mirror_url: Option<String>,
    origin_domain: Option<String>,
    messages: u64,
    rate: u64,
    lag_secs: u64,
    timeout_secs: u64,
}

fn usage() -> ! {
    eprintln!(
        "usage: nats-peer [--url nats://127.0.0.1:54222] [--duration SECS] [--max-count N] \
         [--mode seq|window|both] [--inflight 256] [--payload-size 256] [--stream BENCH] \
         [--label extra=key-values]\n\
         \x20      nats-peer --mode mirror [--url ORIGIN] [--mirror-url URL] [--origin-domain D] \
         [--messages 1000000] [--inflight 1024] [--rate 1000] [--lag-secs 30] [--timeout 900]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut a = Args {
        url: "nats://127.0.0.1:54222".into(),
        duration: Duration::from_secs(20),
        max_count: 2_000_000,
        modes: vec!["seq".into(), "window".into()],
        inflight: 256,
        payload_size: 256,
        stream_name: "BENCH".into(),
        label: String::new(),
        mirror_url: None,
        origin_domain: None,
        messages: 1_000_000,
        rate: 1_000,
        lag_secs: 30,
        timeout_secs: 900,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| usage());
        match k.as_str() {
            "--url" => a.url = v(),
            "--duration" => {
                let s: f64 = v().parse().unwrap_or_else(|_| usage());
                a.duration = Duration::from_secs_f64(s);
            }
            "--max-count" => a.max_count = v().parse().unwrap_or_else(|_| usage()),
            "--mode" => {
                a.modes = match v().as_str() {
                    "both" => vec!["seq".into(), "window".into()],
                    m @ ("seq" | "window" | "mirror") => vec![m.to_string()],
                    _ => usage(),
                }
            }
            "--inflight" => a.inflight = v().parse().unwrap_or_else(|_| usage()),
            "--payload-size" => a.payload_size = v().parse().unwrap_or_else(|_| usage()),
            "--stream" => a.stream_name = v(),
            "--label" => a.label = v(),
            "--mirror-url" => a.mirror_url = Some(v()),
            "--origin-domain" => a.origin_domain = Some(v()),
            "--messages" => a.messages = v().parse().unwrap_or_else(|_| usage()),
            "--rate" => a.rate = v().parse().unwrap_or_else(|_| usage()),
            "--lag-secs" => a.lag_secs = v().parse().unwrap_or_else(|_| usage()),
            "--timeout" => a.timeout_secs = v().parse().unwrap_or_else(|_| usage()),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    if a.inflight == 0
        || a.max_count == 0
        || a.messages == 0
        || a.rate == 0
        || a.messages > 100_000_000
        || a.rate * a.lag_secs > 10_000_000
    {
        usage();
    }
    a
}

struct RunResult {
    ok: u64,
    errors: u64,
    elapsed: Duration,
    lat_ns: Vec<u64>,
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // nearest-rank percentile
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    sorted[idx] as f64 / 1e6
}

async fn timed_ack(
    start: Instant,
    fut: PublishAckFuture,
) -> (
    Instant,
    Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
) {
    let r = fut.await;
    (start, r)
}

async fn run_mode(
    js: &jetstream::Context,
    mode: &str,
    inflight: usize,
    payload: &Bytes,
    duration: Duration,
    max_count: u64,
) -> RunResult {
    let window = if mode == "seq" { 1 } else { inflight };
    let mut lat_ns: Vec<u64> = Vec::with_capacity(max_count.min(4_000_000) as usize);
    let mut ok = 0u64;
    let mut errors = 0u64;
    let mut sent = 0u64;
    let mut pending = FuturesUnordered::new();
    let t0 = Instant::now();
    let deadline = t0 + duration;
    // Hard stop: even if acks stall, never wait more than duration + 30 s in total.
    let hard_deadline = deadline + Duration::from_secs(30);

    loop {
        // Fill the window while within both bounds.
        while pending.len() < window && sent < max_count && Instant::now() < deadline {
            let subj = format!("bench.{}", sent % 16);
            let start = Instant::now();
            sent += 1;
            match js.publish(subj, payload.clone()).await {
                Ok(ack) => pending.push(timed_ack(start, ack)),
                Err(e) => {
                    errors += 1;
                    if errors <= 3 {
                        eprintln!("nats-peer: publish error: {e}");
                    }
                }
            }
        }
        if pending.is_empty() {
            break;
        }
        let next = tokio::time::timeout_at(hard_deadline.into(), pending.next()).await;
        match next {
            Ok(Some((start, res))) => match res {
                Ok(_) => {
                    ok += 1;
                    lat_ns.push(start.elapsed().as_nanos() as u64);
                }
                Err(e) => {
                    errors += 1;
                    if errors <= 3 {
                        eprintln!("nats-peer: ack error: {e}");
                    }
                }
            },
            Ok(None) => break,
            Err(_) => {
                eprintln!(
                    "nats-peer: hard deadline hit with {} acks outstanding",
                    pending.len()
                );
                errors += pending.len() as u64;
                break;
            }
        }
    }
    RunResult {
        ok,
        errors,
        elapsed: t0.elapsed(),
        lat_ns,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = parse_args();
    if args.modes == ["mirror"] {
        return mirror::run(mirror::MirrorArgs {
            mirror_url: args.mirror_url.clone().unwrap_or_else(|| args.url.clone()),
            url: args.url,
            origin_domain: args.origin_domain,
            messages: args.messages,
            inflight: args.inflight,
            payload_size: args.payload_size,
            rate: args.rate,
            lag_secs: args.lag_secs,
            timeout: Duration::from_secs(args.timeout_secs),
            label: args.label,
        })
        .await;
    }
    let client = async_nats::connect(&args.url).await?;
    let js = jetstream::ContextBuilder::new()
        // window of acks is bounded by us; give the client enough permits for it
        .max_ack_inflight(args.inflight.max(1) * 2)
        .build(client);

    // Fresh stream per invocation so runs do not inherit each other's data.
    let _ = js.delete_stream(&args.stream_name).await;
    let info = js
        .create_stream(stream::Config {
            name: args.stream_name.clone(),
            subjects: vec!["bench.>".into()],
            storage: stream::StorageType::File,
            num_replicas: 1,
            ..Default::default()
        })
        .await?;
    let cfg = &info.cached_info().config;
    eprintln!(
        "nats-peer: stream {} storage={:?} replicas={} subjects={:?}",
        cfg.name, cfg.storage, cfg.num_replicas, cfg.subjects
    );

    let payload = Bytes::from(vec![b'x'; args.payload_size]);
    for mode in &args.modes {
        let r = run_mode(
            &js,
            mode,
            args.inflight,
            &payload,
            args.duration,
            args.max_count,
        )
        .await;
        let mut lat = r.lat_ns;
        lat.sort_unstable();
        let secs = r.elapsed.as_secs_f64();
        let inflight = if mode == "seq" { 1 } else { args.inflight };
        let label = if args.label.is_empty() {
            String::new()
        } else {
            format!(" {}", args.label)
        };
        println!(
            "peer=nats mode={mode} inflight={inflight} ops_per_s={:.0} p50_ms={:.3} p99_ms={:.3} acked={} errors={} secs={:.2} payload_bytes={}{label}",
            r.ok as f64 / secs,
            pct(&lat, 50.0),
            pct(&lat, 99.0),
            r.ok,
            r.errors,
            secs,
            args.payload_size,
        );
    }
    let _ = js.delete_stream(&args.stream_name).await;
    Ok(())
}
