//! `cairn bench`: a bounded load generator. It drives writes, point reads
//! or successors queries against a server over HTTP (or writes against an
//! embedded store in-process), shows a progress bar, and prints throughput
//! and latency percentiles from an HDR histogram. The delivery workloads
//! (`consume`, `latency`) live in `bench_delivery.rs`, the timer workloads
//! in `bench_timers.rs`, and replication lag in `bench_replication.rs`.
//!
//! The `write` workload writes facts of one of two shapes (`--fact-shape`):
//! `item`, an opaque random payload of `--fields-bytes`, or `order`, a
//! realistic business fact (`Bench.Order`: ten fields, a nested object,
//! enums, patterned strings) for measuring what schema validation costs
//! (`bench/schema_validation.sh`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use cairn_api::meta::LOG_LAST_SEQ_METRIC;
use cairn_fact::{CanonicalFact, FACT_CANONICAL_BYTES_MAX_DEFAULT};
use cairn_store::{EmbeddedOptions, EmbeddedStore, Store};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

/// What the benchmark does.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Write new facts (`--batch` per request).
    Write,
    /// Read random facts by hash (`GET /v1/facts/{hash}`).
    Get,
    /// Query successors returning `--batch` facts per request.
    Successors,
    /// Consume a preloaded backlog of `--preload` messages: pull `--batch`
    /// at a time and ack durably.
    Consume,
    /// Publish single facts at `--rate` per second; one consumer reports
    /// publish-to-handler latency.
    Latency,
    /// Claim a new key per request (`POST /v1/claims`) for one preloaded
    /// fact: every claim wins and writes its `Cairn.Claimed` fact.
    Claim,
    /// Create `--preload` one-shot timers due in the same second and
    /// report how soon they all fired, the firing rate and lateness.
    Timers,
    /// Create up to `--preload` one-shot timers far in the future within
    /// `--duration` (for a memory measurement of the server).
    TimersPending,
    /// Write single facts at `--rate` per second to `--server` and report
    /// how long after each write's acknowledgement it appears in the log
    /// of `--follow` (a server with a replication link from `--server`).
    ReplicationLag,
}

/// The shape of the facts the `write` workload writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactShape {
    /// `Bench.Item`: `run`, `client`, `n` and a random `payload` filling
    /// `--fields-bytes`.
    Item,
    /// `Bench.Order`: ten fields of an order (an `order_id` unique per fact
    /// matching `^ORD-[0-9]+-[0-9]+-[0-9]+$`, patterned `customer_id` and
    /// `placed_at`, enums `status` and `currency`, integers, a boolean, a
    /// note, and a nested `shipping_address` of four strings), about 330
    /// bytes of fields; `--fields-bytes` does not apply.
    Order,
}

/// Options of `cairn bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Workload to run.
    #[arg(long, value_enum, default_value_t = Workload::Write)]
    workload: Workload,
    /// Server to load (ignored with --embedded); `https://` for TLS.
    #[arg(long, env = "CAIRN_SERVER", default_value = crate::DEFAULT_SERVER)]
    server: String,
    /// A CA certificate file (PEM) to trust for an `https://` server, in
    /// addition to the public roots.
    #[arg(long = "ca-cert", env = "CAIRN_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// Access token for a server that runs with `--auth`.
    #[arg(long = "token", env = "CAIRN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Write to an embedded store in this directory instead of a server.
    #[arg(long)]
    embedded: Option<PathBuf>,
    /// Concurrent clients (connections, or tasks when embedded).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Facts per write request; facts per successors page.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Seconds to run at most.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Requests to send at most.
    #[arg(long, default_value_t = 100_000_000)]
    requests_max: u64,
    /// Bytes of each fact's `fields`.
    #[arg(long, default_value_t = 256)]
    fields_bytes: usize,
    /// Facts to read at random in the `get` workload: sampled across the
    /// whole log if the store already holds that many, else written first.
    #[arg(long, default_value_t = 100_000)]
    preload: u64,
    /// Messages published per second in the `latency` workload.
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    /// `consume`: servers the consumers pull from and ack to, spread
    /// round-robin (servers sharing one PostgreSQL database); the
    /// subscription and the backlog go through `--server`.
    #[arg(long, value_delimiter = ',')]
    consume_servers: Vec<String>,
    /// `write`: spread the facts over this many types, `Bench.Item0` …
    /// (1: every fact is `Bench.Item`).
    #[arg(long, default_value_t = 1)]
    types_count: u64,
    /// `write`: the percentage of facts (after the first of each batch)
    /// that name one predecessor, an earlier fact of the same batch chosen
    /// at random.
    #[arg(long, default_value_t = 0)]
    predecessors_percent: u64,
    /// `write`: the shape of the facts written.
    #[arg(long, value_enum, default_value_t = FactShape::Item)]
    fact_shape: FactShape,
    /// `replication-lag`: the server whose log receives the facts through a
    /// replication link from `--server`.
    #[arg(long)]
    follow: Option<String>,
    /// `write`, `get`, `successors`, `claim`: write every request's start
    /// (seconds since the run began), latency (ms) and facts to this CSV
    /// file, for a latency-over-time plot (`bench/plot_latency.py`);
    /// `consume`: every cycle's (pull, then its ack durable) and messages.
    #[arg(long, value_name = "FILE")]
    latency_log: Option<PathBuf>,
}

/// Everything the workers share.
struct Shared {
    run_id: u64,
    fields_bytes: usize,
    fact_shape: FactShape,
    types_count: u64,
    predecessors_percent: u64,
    deadline: Instant,
    requests_max: u64,
    requests_started: AtomicU64,
    facts_done: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
    histogram: Mutex<Histogram<u64>>,
    /// When the run began, the origin of the latency log's times.
    started: Instant,
    /// Every request's sample when `--latency-log` is given.
    latency_log: Option<Mutex<Vec<LatencySample>>>,
}

/// One request in the latency log.
pub(crate) struct LatencySample {
    pub(crate) started_s: f64,
    pub(crate) latency: Duration,
    pub(crate) n_facts: u64,
}

impl Shared {
    /// Claims the next request slot; false once the count or time bound is hit.
    fn next_request(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
            && Instant::now() < self.deadline
            && self.requests_started.fetch_add(1, Ordering::Relaxed) < self.requests_max
    }

    fn record(&self, latency: Duration, n_facts: u64, histogram: &mut Histogram<u64>) {
        let micros = latency.as_micros().max(1) as u64;
        let _ = histogram.record(micros);
        self.facts_done.fetch_add(n_facts, Ordering::Relaxed);
    }
}

/// A xorshift step: cheap, deterministic pseudo-random numbers for payloads
/// and sampling (no cryptographic use).
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Builds the JSON of a unique benchmark fact with `fields_bytes` of fields.
fn bench_fact_json(run_id: u64, client: usize, n: u64, fields_bytes: usize) -> String {
    let head = format!("{{\"type\":\"Bench.Item\",\"predecessors\":{{}},\"fields\":{{\"run\":{run_id},\"client\":{client},\"n\":{n},\"payload\":\"");
    let fields_overhead =
        head.len() - "{\"type\":\"Bench.Item\",\"predecessors\":{},\"fields\":".len() + 2;
    let payload_len = fields_bytes.saturating_sub(fields_overhead);
    let mut state = run_id ^ ((client as u64) << 40) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut json = head;
    for _ in 0..payload_len {
        let index = (next_random(&mut state) % 36) as usize;
        json.push(char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[index]));
    }
    json.push_str("\"}}");
    json
}

/// Values of `status` in an order fact: the enum of its schema.
const ORDER_STATUSES: [&str; 5] = ["pending", "paid", "packed", "shipped", "delivered"];

/// Values of `currency` in an order fact: the enum of its schema.
const ORDER_CURRENCIES: [&str; 4] = ["EUR", "USD", "GBP", "JPY"];

/// Cities of an order's `shipping_address`, with their country codes.
const ORDER_CITIES: [(&str, &str); 4] = [
    ("Lyon", "FR"),
    ("Rotterdam", "NL"),
    ("Leipzig", "DE"),
    ("Porto", "PT"),
];

/// Builds the JSON of a unique `Bench.Order` fact (see
/// [`FactShape::Order`]); the values vary with `n` and `client`.
fn order_fact_json(run_id: u64, client: usize, n: u64) -> String {
    let mut state = run_id ^ ((client as u64) << 40) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let status = ORDER_STATUSES[(next_random(&mut state) % 5) as usize];
    let currency = ORDER_CURRENCIES[(next_random(&mut state) % 4) as usize];
    let (city, country) = ORDER_CITIES[(next_random(&mut state) % 4) as usize];
    let customer = next_random(&mut state) % 1_000_000;
    let total_cents = next_random(&mut state) % 1_000_000;
    let items_count = 1 + next_random(&mut state) % 20;
    let express = next_random(&mut state) & 1 == 1;
    let street_number = 1 + next_random(&mut state) % 200;
    let postal_code = 10_000 + next_random(&mut state) % 90_000;
    let seconds_of_day = next_random(&mut state) % 86_400;
    let (hour, minute, second) = (
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60,
    );
    format!(
        "{{\"type\":\"Bench.Order\",\"predecessors\":{{}},\"fields\":{{\
         \"order_id\":\"ORD-{run_id}-{client}-{n}\",\
         \"customer_id\":\"CUST-{customer:06}\",\
         \"status\":\"{status}\",\
         \"currency\":\"{currency}\",\
         \"total_cents\":{total_cents},\
         \"items_count\":{items_count},\
         \"express\":{express},\
         \"placed_at\":\"2026-11-01T{hour:02}:{minute:02}:{second:02}Z\",\
         \"note\":\"leave at the door if nobody answers\",\
         \"shipping_address\":{{\"street\":\"{street_number} Harbour Road\",\
         \"city\":\"{city}\",\"postal_code\":\"{postal_code}\",\"country\":\"{country}\"}}}}}}"
    )
}

/// The JSON of the next `batch` facts of `client` (advancing `n`): of
/// type `Bench.Item` (or `Bench.Order` with `--fact-shape order`), or
/// spread over `Bench.Item0` … with `--types-count`; with `--predecessors-percent`, that share of the
/// facts after the first names one earlier fact of the batch, chosen at
/// random, as its predecessor `prev` (its hash computed here, as the
/// server will).
fn batch_json(
    shared: &Shared,
    client: usize,
    n: &mut u64,
    batch: usize,
) -> anyhow::Result<Vec<String>> {
    let mut facts: Vec<String> = Vec::with_capacity(batch);
    let mut hashes: Vec<Option<String>> = vec![None; batch];
    for index in 0..batch {
        *n += 1;
        let mut json = match shared.fact_shape {
            FactShape::Item => bench_fact_json(shared.run_id, client, *n, shared.fields_bytes),
            FactShape::Order => order_fact_json(shared.run_id, client, *n),
        };
        if shared.types_count > 1 {
            let type_name = match shared.fact_shape {
                FactShape::Item => "Bench.Item",
                FactShape::Order => "Bench.Order",
            };
            json = json.replacen(
                &format!("\"type\":\"{type_name}\""),
                &format!("\"type\":\"{type_name}{}\"", *n % shared.types_count),
                1,
            );
        }
        let mut state =
            shared.run_id ^ ((client as u64) << 32) ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1;
        if index > 0 && next_random(&mut state) % 100 < shared.predecessors_percent {
            let earlier = (next_random(&mut state) % index as u64) as usize;
            let hash = match &hashes[earlier] {
                Some(hash) => hash.clone(),
                None => {
                    let fact = CanonicalFact::from_json(
                        facts[earlier].as_bytes(),
                        FACT_CANONICAL_BYTES_MAX_DEFAULT,
                    )?;
                    let hash = fact.hash.to_string();
                    hashes[earlier] = Some(hash.clone());
                    hash
                }
            };
            json = json.replacen(
                "\"predecessors\":{}",
                &format!("\"predecessors\":{{\"prev\":\"{hash}\"}}"),
                1,
            );
        }
        facts.push(json);
    }
    Ok(facts)
}

/// The bench's HTTP client: up to `connections` kept open, HTTP/1.1 only
/// (with TLS too, so that plain and TLS runs compare one connection per
/// client alike), trusting `ca_cert` besides the public roots, and sending
/// `token` (an access token) with every request.
pub fn http_client(
    connections: usize,
    timeout: Duration,
    ca_cert: Option<&std::path::Path>,
    token: Option<&str>,
) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| anyhow::anyhow!("the access token holds characters a header cannot"))?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let mut builder = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(timeout)
        .default_headers(headers)
        .http1_only();
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read the CA certificate file {}", path.display()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
        if certificates.is_empty() {
            bail!("{} holds no PEM certificate", path.display());
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    Ok(builder.build()?)
}

/// Runs the benchmark and prints its report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.batch == 0 || args.batch > 10_000 {
        bail!("--clients must be positive and --batch between 1 and 10000");
    }
    if args.fact_shape != FactShape::Item && args.workload != Workload::Write {
        bail!("--fact-shape applies to --workload write only");
    }
    if args.latency_log.is_some()
        && !matches!(
            args.workload,
            Workload::Write
                | Workload::Get
                | Workload::Successors
                | Workload::Claim
                | Workload::Consume
        )
    {
        bail!("--latency-log applies to --workload write, get, successors, claim and consume only");
    }
    let run_id =
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64 & 0x1F_FFFF_FFFF_FFFF;
    let http = http_client(
        args.clients,
        Duration::from_secs(60),
        args.ca_cert.as_deref(),
        args.token.as_deref(),
    )?;
    let base = args.server.trim_end_matches('/').to_string();
    if matches!(args.workload, Workload::Timers | Workload::TimersPending) {
        let bench = crate::bench_timers::TimerBench {
            http,
            base,
            run_id,
            clients: args.clients,
            timers: args.preload,
            duration: Duration::from_secs(args.duration),
        };
        return match args.workload {
            Workload::Timers => crate::bench_timers::fire(bench).await,
            _ => crate::bench_timers::pending(bench).await,
        };
    }
    if args.workload == Workload::ReplicationLag {
        let Some(follow) = &args.follow else {
            bail!("--workload replication-lag needs --follow URL");
        };
        return crate::bench_replication::lag(crate::bench_replication::LagBench {
            http,
            base,
            follow: follow.trim_end_matches('/').to_string(),
            run_id,
            rate_per_s: args.rate,
            duration: Duration::from_secs(args.duration),
            fields_bytes: args.fields_bytes,
        })
        .await;
    }
    if args.types_count == 0 || args.predecessors_percent > 100 {
        bail!("--types-count must be positive and --predecessors-percent at most 100");
    }
    if matches!(args.workload, Workload::Consume | Workload::Latency) {
        if args.embedded.is_some() {
            bail!("--embedded supports only --workload write");
        }
        let consume_bases = if args.consume_servers.is_empty() {
            vec![base.clone()]
        } else {
            args.consume_servers
                .iter()
                .map(|url| url.trim_end_matches('/').to_string())
                .collect()
        };
        let bench = crate::bench_delivery::DeliveryBench {
            base,
            consume_bases,
            run_id,
            clients: args.clients,
            batch: args.batch,
            duration: Duration::from_secs(args.duration),
            preload: args.preload,
            rate_per_s: args.rate,
            fields_bytes: args.fields_bytes,
            ca_cert: args.ca_cert.clone(),
            token: args.token.clone(),
            latency_log: args.latency_log.clone(),
        };
        return match args.workload {
            Workload::Consume => crate::bench_delivery::consume(bench).await,
            _ => crate::bench_delivery::latency(bench).await,
        };
    }
    // Preparation (not measured): facts to read back.
    let targets: Arc<Vec<String>> = Arc::new(match (args.workload, &args.embedded) {
        (
            Workload::Write
            | Workload::Consume
            | Workload::Latency
            | Workload::Timers
            | Workload::TimersPending
            | Workload::ReplicationLag,
            _,
        ) => Vec::new(),
        (_, Some(_)) => bail!("--embedded supports only --workload write"),
        (Workload::Get, None) => {
            get_targets(&http, &base, run_id, args.preload, args.fields_bytes).await?
        }
        (Workload::Successors, None) => {
            vec![preload_successors(&http, &base, run_id, args.batch, args.fields_bytes).await?]
        }
        (Workload::Claim, None) => {
            let claimant = bench_fact_json(run_id, 0, 0, args.fields_bytes);
            post_batch(&http, &base, &[claimant]).await?
        }
    });
    let shared = Arc::new(Shared {
        run_id,
        fields_bytes: args.fields_bytes,
        fact_shape: args.fact_shape,
        types_count: args.types_count,
        predecessors_percent: args.predecessors_percent,
        deadline: Instant::now() + Duration::from_secs(args.duration),
        requests_max: args.requests_max,
        requests_started: AtomicU64::new(0),
        facts_done: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        histogram: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
        started: Instant::now(),
        latency_log: args.latency_log.as_ref().map(|_| Mutex::new(Vec::new())),
    });
    let embedded = match &args.embedded {
        Some(dir) => Some(Arc::new(EmbeddedStore::open(
            dir,
            EmbeddedOptions::default(),
        )?)),
        None => None,
    };
    let progress = ProgressBar::new(args.duration);
    progress.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len}s {msg}",
    )?);
    let started = Instant::now();
    let mut workers = Vec::new();
    for client in 0..args.clients {
        let shared = Arc::clone(&shared);
        let http = http.clone();
        let base = base.clone();
        let targets = Arc::clone(&targets);
        let embedded = embedded.clone();
        let (workload, batch) = (args.workload, args.batch);
        workers.push(tokio::spawn(async move {
            let mut histogram = Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
            let mut samples = Vec::new();
            let mut n = 0u64;
            while shared.next_request() {
                let request_started = Instant::now();
                let result = match (workload, &embedded) {
                    (Workload::Write, Some(store)) => {
                        write_embedded(store, &shared, client, &mut n, batch).await
                    }
                    (Workload::Write, None) => {
                        write_http(&http, &base, &shared, client, &mut n, batch).await
                    }
                    (Workload::Get, _) => {
                        n += 1;
                        let index = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ client as u64)
                            as usize
                            % targets.len();
                        get_http(&http, &base, &targets[index]).await
                    }
                    (Workload::Successors, _) => {
                        successors_http(&http, &base, &targets[0], batch).await
                    }
                    (Workload::Claim, _) => {
                        n += 1;
                        let key = format!("bench-{}-{client}-{n}", shared.run_id);
                        claim_http(&http, &base, &key, &targets[0]).await
                    }
                    (
                        Workload::Consume
                        | Workload::Latency
                        | Workload::Timers
                        | Workload::TimersPending
                        | Workload::ReplicationLag,
                        _,
                    ) => {
                        unreachable!("delivery workloads return before the request loop")
                    }
                };
                match result {
                    Ok(n_facts) => {
                        let latency = request_started.elapsed();
                        shared.record(latency, n_facts, &mut histogram);
                        if shared.latency_log.is_some() {
                            samples.push(LatencySample {
                                started_s: (request_started - shared.started).as_secs_f64(),
                                latency,
                                n_facts,
                            });
                        }
                    }
                    Err(error) => {
                        if shared.failed.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("request failed: {error:#}");
                        }
                    }
                }
            }
            shared
                .histogram
                .lock()
                .expect("lock")
                .add(&histogram)
                .expect("same bounds");
            if let Some(log) = &shared.latency_log {
                log.lock().expect("lock").append(&mut samples);
            }
        }));
    }
    let ticker_shared = Arc::clone(&shared);
    let ticker_progress = progress.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let elapsed = started.elapsed().as_secs_f64();
            let facts = ticker_shared.facts_done.load(Ordering::Relaxed);
            ticker_progress.set_position(elapsed as u64);
            ticker_progress
                .set_message(format!("{:.0} facts/s", facts as f64 / elapsed.max(0.001)));
        }
    });
    for worker in workers {
        worker.await?;
    }
    let elapsed = started.elapsed();
    ticker.abort();
    progress.finish_and_clear();
    if let Some(store) = embedded {
        store.close();
    }
    report(&args, &shared, elapsed);
    if let (Some(path), Some(log)) = (&args.latency_log, &shared.latency_log) {
        write_latency_log(path, &mut log.lock().expect("lock"))?;
    }
    Ok(())
}

/// Writes the latency log as CSV, in the order the requests started.
pub(crate) fn write_latency_log(
    path: &std::path::Path,
    samples: &mut [LatencySample],
) -> anyhow::Result<()> {
    use std::io::Write;
    samples.sort_by(|a, b| a.started_s.total_cmp(&b.started_s));
    let file = std::fs::File::create(path)
        .with_context(|| format!("cannot create the latency log {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    writeln!(out, "started_s,latency_ms,facts")?;
    for sample in samples.iter() {
        writeln!(
            out,
            "{:.6},{:.3},{}",
            sample.started_s,
            sample.latency.as_secs_f64() * 1000.0,
            sample.n_facts
        )?;
    }
    out.flush()
        .with_context(|| format!("cannot write the latency log {}", path.display()))?;
    Ok(())
}

fn report(args: &BenchArgs, shared: &Shared, elapsed: Duration) {
    let histogram = shared.histogram.lock().expect("lock");
    let seconds = elapsed.as_secs_f64();
    let requests = histogram.len();
    let facts = shared.facts_done.load(Ordering::Relaxed);
    let target = match &args.embedded {
        Some(dir) => format!("embedded:{}", dir.display()),
        None => args.server.clone(),
    };
    let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    println!(
        "workload={:?} target={target} clients={} batch={} seconds={seconds:.1} requests={requests} facts={facts} failed={}",
        args.workload,
        args.clients,
        args.batch,
        shared.failed.load(Ordering::Relaxed)
    );
    println!(
        "requests_per_s={:.0} facts_per_s={:.0} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3}",
        requests as f64 / seconds,
        facts as f64 / seconds,
        ms(0.5),
        ms(0.99),
        ms(0.999),
        histogram.max() as f64 / 1000.0
    );
}

async fn write_embedded(
    store: &EmbeddedStore,
    shared: &Shared,
    client: usize,
    n: &mut u64,
    batch: usize,
) -> anyhow::Result<u64> {
    let mut facts = Vec::with_capacity(batch);
    for json in batch_json(shared, client, n, batch)? {
        facts.push(CanonicalFact::from_json(
            json.as_bytes(),
            FACT_CANONICAL_BYTES_MAX_DEFAULT,
        )?);
    }
    let outcomes = store.put_facts(facts).await?;
    Ok(outcomes.len() as u64)
}

async fn write_http(
    http: &reqwest::Client,
    base: &str,
    shared: &Shared,
    client: usize,
    n: &mut u64,
    batch: usize,
) -> anyhow::Result<u64> {
    let mut body = String::with_capacity(batch * (shared.fields_bytes + 80) + 16);
    body.push_str("{\"facts\":[");
    for (index, json) in batch_json(shared, client, n, batch)?.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        body.push_str(json);
    }
    body.push_str("]}");
    let response = http
        .post(format!("{base}/v1/facts"))
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
    Ok(batch as u64)
}

async fn get_http(http: &reqwest::Client, base: &str, hash: &str) -> anyhow::Result<u64> {
    let response = http.get(format!("{base}/v1/facts/{hash}")).send().await?;
    if !response.status().is_success() {
        bail!("get answered {}", response.status());
    }
    response.bytes().await?;
    Ok(1)
}

async fn successors_http(
    http: &reqwest::Client,
    base: &str,
    parent: &str,
    limit: usize,
) -> anyhow::Result<u64> {
    let response = http
        .get(format!(
            "{base}/v1/facts/{parent}/successors?type=Bench.Child&limit={limit}"
        ))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("successors answered {}", response.status());
    }
    let page: serde_json::Value = serde_json::from_slice(&response.bytes().await?)?;
    Ok(page["facts"]
        .as_array()
        .map_or(0, |facts| facts.len() as u64))
}

/// Claims `key` for `fact`; a claim that does not win is a failure (every
/// key is new).
async fn claim_http(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    fact: &str,
) -> anyhow::Result<u64> {
    let response = http
        .post(format!("{base}/v1/claims"))
        .header("content-type", "application/json")
        .body(serde_json::json!({"key": key, "fact": fact}).to_string())
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("claim answered {}", response.status());
    }
    let answer: serde_json::Value = serde_json::from_slice(&response.bytes().await?)?;
    if answer["won"] != true {
        bail!("a claim of a new key did not win: {answer}");
    }
    Ok(1)
}

/// Posts one batch and returns the hashes.
async fn post_batch(
    http: &reqwest::Client,
    base: &str,
    facts: &[String],
) -> anyhow::Result<Vec<String>> {
    let body = format!("{{\"facts\":[{}]}}", facts.join(","));
    let response = http
        .post(format!("{base}/v1/facts"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .context("cannot reach the server")?;
    if !response.status().is_success() {
        bail!(
            "preload answered {}: {}",
            response.status(),
            response.text().await?
        );
    }
    let answer: serde_json::Value = serde_json::from_slice(&response.bytes().await?)?;
    Ok(answer["results"]
        .as_array()
        .context("no results")?
        .iter()
        .filter_map(|result| result["hash"].as_str().map(str::to_string))
        .collect())
}

/// Hashes for the `get` workload: `count` hashes sampled in runs of 100 at
/// random positions of the whole log when the store is large enough (so
/// reads hit old and new facts alike), else `count` freshly written facts.
async fn get_targets(
    http: &reqwest::Client,
    base: &str,
    run_id: u64,
    count: u64,
    fields_bytes: usize,
) -> anyhow::Result<Vec<String>> {
    let last_seq = last_seq(http, base).await?;
    if last_seq < count.max(100) {
        return preload(http, base, run_id, count, fields_bytes).await;
    }
    let mut hashes = Vec::with_capacity(count as usize);
    let mut state = run_id | 1;
    while (hashes.len() as u64) < count {
        let after = next_random(&mut state) % (last_seq - 100);
        let page: serde_json::Value = http
            .get(format!("{base}/v1/log?after={after}&limit=100"))
            .send()
            .await?
            .json()
            .await?;
        for entry in page["facts"].as_array().context("no facts")? {
            hashes.push(entry["hash"].as_str().context("no hash")?.to_string());
        }
    }
    Ok(hashes)
}

/// The seq of the newest durable fact, read from the server's metrics, so
/// that sampling needs no walk through the whole log.
pub(crate) async fn last_seq(http: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .context("cannot reach the server")?
        .error_for_status()?
        .text()
        .await?;
    text.lines()
        .find_map(|line| line.strip_prefix(LOG_LAST_SEQ_METRIC)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .with_context(|| format!("the server's metrics lack {LOG_LAST_SEQ_METRIC}"))
}

/// The `client` field of preloaded facts: unlike any load client's.
const PRELOAD_CLIENT_ID: usize = 1_000_000;

/// Writes `count` facts in batches of 1,000 and returns their hashes.
async fn preload(
    http: &reqwest::Client,
    base: &str,
    run_id: u64,
    count: u64,
    fields_bytes: usize,
) -> anyhow::Result<Vec<String>> {
    let mut hashes = Vec::with_capacity(count as usize);
    let mut n = 0;
    while n < count {
        let batch: Vec<String> = (n..count.min(n + 1000))
            .map(|index| bench_fact_json(run_id, PRELOAD_CLIENT_ID, index, fields_bytes))
            .collect();
        n += batch.len() as u64;
        hashes.extend(post_batch(http, base, &batch).await?);
    }
    Ok(hashes)
}

/// Writes one parent and `count` children naming it; returns the parent's hash.
async fn preload_successors(
    http: &reqwest::Client,
    base: &str,
    run_id: u64,
    count: usize,
    fields_bytes: usize,
) -> anyhow::Result<String> {
    let parent_json = format!(
        "{{\"type\":\"Bench.Parent\",\"predecessors\":{{}},\"fields\":{{\"run\":{run_id}}}}}"
    );
    let parent = post_batch(http, base, &[parent_json])
        .await?
        .pop()
        .context("no parent hash")?;
    let children: Vec<String> = (0..count as u64)
        .map(|n| {
            let item = bench_fact_json(run_id, 0, n, fields_bytes);
            item.replacen(
                "\"type\":\"Bench.Item\",\"predecessors\":{}",
                &format!("\"type\":\"Bench.Child\",\"predecessors\":{{\"parent\":\"{parent}\"}}"),
                1,
            )
        })
        .collect();
    for chunk in children.chunks(1000) {
        post_batch(http, base, chunk).await?;
    }
    Ok(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Order facts are valid facts of ten fields with the nested address,
    /// and unique per client and `n` (so every write inserts).
    #[test]
    fn order_facts_are_valid_unique_and_have_ten_fields() {
        let mut hashes = std::collections::HashSet::new();
        for client in 0..3 {
            for n in 1..=50 {
                let json = order_fact_json(12_345, client, n);
                let fact =
                    CanonicalFact::from_json(json.as_bytes(), FACT_CANONICAL_BYTES_MAX_DEFAULT)
                        .expect("an order fact is a valid fact");
                assert!(hashes.insert(fact.hash), "a duplicate order fact");
                let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
                assert_eq!(value["type"], "Bench.Order");
                let fields = value["fields"].as_object().expect("fields");
                assert_eq!(fields.len(), 10, "{json}");
                assert_eq!(fields["order_id"], format!("ORD-12345-{client}-{n}"));
                assert_eq!(
                    value["fields"]["shipping_address"]
                        .as_object()
                        .expect("address")
                        .len(),
                    4
                );
                assert!(ORDER_STATUSES.contains(&fields["status"].as_str().expect("status")));
            }
        }
    }
}
