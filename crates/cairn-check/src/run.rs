//! One check run from start to end: start the deployment, prepare the
//! workload, run it with the nemesis for the set duration, heal, settle
//! every message, replay the dead letters, wait for the timers due,
//! restart cleanly, and hand the history to the oracle.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tokio::task::JoinSet;

use crate::api::{Answer, Api};
use crate::deployment::Deployment;
use crate::error::CheckError;
use crate::history::{Phase, Recorded};
use crate::history_file::HistoryFile;
use crate::nemesis::Nemesis;
use crate::options::{CheckOptions, FaultKind, Topology};
use crate::oracle::{self, Verdicts};
use crate::report::{seconds, Report, WriteSummary};
use crate::workload::Workload;
use crate::{claims, fences, ring, timers};

/// How long the consumers may take to settle every message once the faults
/// are healed (longer than the largest clock jump plus a lease).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a pull waits after the clean restart for a message that must
/// not come.
const AFTER_RESTART_WAIT_MS: u64 = 2_000;

/// Runs a check and returns its report.
pub async fn run(options: CheckOptions) -> Result<Report, CheckError> {
    if let Some(problem) = options.topology_problem() {
        return Err(CheckError::Setup(problem.to_string()));
    }
    let ring = options.topology == Topology::Ring3;
    let started = Instant::now();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let run_id = format!("s{}-{:x}", options.seed, nanos & 0xffff_ffff_ffff);
    let api = Api::new();
    let deployment = Arc::new(Deployment::start(&options, &api, &run_id).await?);
    // With --auth, every request from here on carries its role's token.
    let api = match &deployment.tokens {
        Some(tokens) => api.with_tokens(tokens.clone()),
        None => api,
    };
    let client_bases = deployment
        .nodes
        .iter()
        .map(|node| node.client_base.clone())
        .collect();
    let workload = Arc::new(
        Workload::prepare(
            run_id,
            options.seed,
            api.clone(),
            client_bases,
            ring,
            options.write_interval,
            HistoryFile::create(&options.work_dir.join("history.tsv")),
            started,
        )
        .await?,
    );

    let mut verdicts = Verdicts::default();
    if ring {
        for check in ring::CHECKS {
            verdicts.examined(check, 0);
        }
        ring::create_links(
            &api,
            &deployment,
            &ring::links_defined(options.ring_misdefined_link),
        )
        .await?;
    }

    let mut tasks = JoinSet::new();
    let mut consumers = JoinSet::new();
    for writer_idx in 0..options.writers {
        tasks.spawn(Arc::clone(&workload).run_writer(writer_idx));
    }
    for reader_idx in 0..options.readers {
        tasks.spawn(Arc::clone(&workload).run_reader(reader_idx));
    }
    if ring {
        // Claims, leases and timers are decided per deployment (see
        // "Guarantees and their limits" of replication links): their
        // checks assume one store, so the ring leaves them out and probes
        // the closure of what each server serves instead.
        for probe_idx in 0..options.readers {
            tasks.spawn(ring::run_probe(Arc::clone(&workload), probe_idx));
        }
    } else {
        for claimer_idx in 0..options.claimers {
            tasks.spawn(claims::run_claimer(Arc::clone(&workload), claimer_idx));
        }
        for writer_idx in 0..options.fenced_writers {
            tasks.spawn(fences::run_fenced_writer(Arc::clone(&workload), writer_idx));
        }
        for setter_idx in 0..options.timer_setters {
            tasks.spawn(timers::run_timer_setter(Arc::clone(&workload), setter_idx));
        }
    }
    for consumer_idx in 0..options.consumers.max(workload.subscriptions.len()) {
        consumers.spawn(Arc::clone(&workload).run_consumer(consumer_idx));
    }
    let progress = progress_bar(&options);
    let progress_task = tokio::spawn(show_progress(
        progress.clone(),
        Arc::clone(&workload),
        options.duration,
    ));
    let nemesis = Nemesis {
        deployment: Arc::clone(&deployment),
        workload: Arc::clone(&workload),
        api: api.clone(),
        kinds: options.applicable_faults(),
        interval: options.fault_interval,
        started,
    };
    nemesis
        .run(options.seed, Instant::now() + options.duration)
        .await;
    let fault_phase = started.elapsed();
    workload
        .stop_writes
        .store(true, std::sync::atomic::Ordering::Release);
    while tasks.join_next().await.is_some() {}

    progress.set_message("healing and settling every message");
    heal(&deployment, &api, &mut verdicts).await;
    let mut links_caught_up_s = None;
    let mut links = Vec::new();
    let direct_bases: Vec<String> = deployment
        .nodes
        .iter()
        .map(|node| node.direct_base.clone())
        .collect();
    if ring {
        // Every server must hold what its links bring before the
        // subscriptions of the first server are settled.
        progress.set_message("waiting for the links to catch up");
        let (waited, _) =
            ring::wait_for_links(&api, &direct_bases, ring::CONVERGE_TIMEOUT, &mut verdicts).await;
        links_caught_up_s = Some(seconds(waited));
    }
    let clocks_shared = options.clocks_shared();
    workload.history.with(|recorded| {
        let timers = &mut recorded.coordination.timers;
        timers.healed_ms = Some(timers::wall_ms());
        timers.clocks_shared = clocks_shared;
    });
    let base = deployment.nodes[0].direct_base.clone();
    let dead_before_replay =
        drain_and_replay(&api, &base, &workload, &progress, &mut verdicts).await;
    workload
        .stop_consumers
        .store(true, std::sync::atomic::Ordering::Release);
    while consumers.join_next().await.is_some() {}
    progress.set_message("waiting for the timers due");
    timers::settle(&api, &base, &workload).await;

    if deployment.owns_processes() {
        progress.set_message("restarting every server cleanly");
        for node in &deployment.nodes {
            if let Some(process) = &node.process {
                process.terminate().await;
            }
        }
        heal(&deployment, &api, &mut verdicts).await;
        workload.set_phase(Phase::AfterRestart);
        pull_after_restart(&deployment, &workload, ring).await;
        if ring {
            (_, links) =
                ring::wait_for_links(&api, &direct_bases, ring::CONVERGE_TIMEOUT, &mut verdicts)
                    .await;
        }
    }

    progress.set_message("checking every server's facts");
    let bases = direct_bases;
    progress_task.abort();
    let judge_started = Instant::now();
    // Every task that records is done: the history can leave its lock.
    let mut recorded = workload.history.take();
    let history_written = recorded.finish();
    for (check, detail) in &recorded.live_violations {
        verdicts.violation(check, detail.clone());
    }
    if let Err(error) = history_written {
        verdicts.violation(
            "the checker's own steps",
            format!("cannot write the history: {error}"),
        );
    }
    let judged =
        oracle::check_facts(&api, &bases, &workload.run_id, &recorded, &mut verdicts).await;
    if ring {
        ring::judge(&api, &bases, &workload, &recorded, &mut verdicts).await;
    }
    let writes = judged.writes;
    let stored_on_first_server = judged.stored_on_first_server;
    for (subscription_idx, spec) in workload.subscriptions.iter().enumerate() {
        oracle::check_deliveries(
            spec,
            recorded.deliveries.subscription(subscription_idx),
            &recorded.facts,
            &stored_on_first_server,
            &dead_before_replay[&spec.name],
            &mut verdicts,
        );
    }
    count_examined(
        &mut verdicts,
        &recorded,
        &writes,
        deployment.owns_processes(),
    );
    progress.finish_and_clear();

    let (faults, fault_log) = fault_summary(&options, &recorded);
    Ok(Report {
        seed: options.seed,
        deployment: deployment.description.clone(),
        work_dir: options.work_dir.display().to_string(),
        fault_phase_s: seconds(fault_phase),
        total_s: seconds(started.elapsed()),
        judge_s: seconds(judge_started.elapsed()),
        writes,
        coordination: judged.coordination,
        operations: operation_counts(&recorded, ring),
        faults,
        fault_log,
        links_caught_up_s,
        links,
        checks: verdicts.into_results(),
    })
}

/// Lets the consumers settle every message (poison ones into the dead
/// letters), replays the dead letters and lets them be acknowledged.
/// Returns each subscription's dead letters (hash → attempts) as they were
/// before the replay.
async fn drain_and_replay(
    api: &Api,
    base: &str,
    workload: &Workload,
    progress: &ProgressBar,
    verdicts: &mut Verdicts,
) -> HashMap<String, HashMap<String, u64>> {
    workload.set_phase(Phase::Drain);
    settle(api, base, workload, verdicts).await;
    let mut dead_before_replay = HashMap::new();
    for spec in &workload.subscriptions {
        let dead = oracle::dead_letters(api, base, &spec.name)
            .await
            .unwrap_or_else(|problem| {
                verdicts.violation("dead letters are replayable", problem);
                HashMap::new()
            });
        dead_before_replay.insert(spec.name.clone(), dead);
    }
    progress.set_message("replaying the dead letters");
    workload.set_phase(Phase::Replay);
    for spec in &workload.subscriptions {
        replay_all(api, base, &spec.name, verdicts).await;
    }
    settle(api, base, workload, verdicts).await;
    for spec in &workload.subscriptions {
        match oracle::dead_letters(api, base, &spec.name).await {
            Ok(dead) if dead.is_empty() => {}
            Ok(dead) => verdicts.violation(
                "dead letters are replayable",
                format!(
                    "{}: {} dead letters remain after the replay was acked",
                    spec.name,
                    dead.len()
                ),
            ),
            Err(problem) => verdicts.violation("dead letters are replayable", problem),
        }
    }
    dead_before_replay
}

/// Counts what the checks that judge during the run examined.
fn count_examined(
    verdicts: &mut Verdicts,
    recorded: &Recorded,
    writes: &WriteSummary,
    restarted_cleanly: bool,
) {
    let n_corruptions = recorded
        .faults
        .iter()
        .filter(|fault| fault.kind == FaultKind::Corruption)
        .count() as u64;
    verdicts.examined("servers recover from crashes", recorded.faults.len() as u64);
    verdicts.examined("valid writes are accepted", recorded.counts.write_batches);
    verdicts.examined("server and client agree on hashes", writes.acknowledged);
    verdicts.examined(
        "deliveries carry the written bytes",
        recorded.deliveries.n_deliveries,
    );
    verdicts.examined("damaged data is never served", n_corruptions);
    verdicts.examined("no writes on top of detected corruption", n_corruptions);
    if restarted_cleanly {
        verdicts.examined(
            "acked messages stay acked after a clean restart",
            recorded.deliveries.n_acks,
        );
    }
    if recorded.independent_stores {
        verdicts.examined(ring::CHECK_SERVED, recorded.counts.closure_probes);
    }
}

/// Faults injected by kind (every applicable kind listed), and the fault
/// log, one line per fault.
fn fault_summary(
    options: &CheckOptions,
    recorded: &Recorded,
) -> (BTreeMap<String, u64>, Vec<String>) {
    let mut faults = BTreeMap::new();
    for kind in options.applicable_faults() {
        faults.insert(kind.name().to_string(), 0);
    }
    let mut fault_log = Vec::new();
    for event in &recorded.faults {
        *faults.entry(event.kind.name().to_string()).or_insert(0) += 1;
        let target = match event.kind {
            FaultKind::PostgresRestart | FaultKind::Failover => "PostgreSQL".to_string(),
            _ => format!("server {}", event.server_idx),
        };
        fault_log.push(format!(
            "{:>8.1} s  {:<16} {target:<10}  {}",
            event.at_ms as f64 / 1000.0,
            event.kind.name(),
            event.detail
        ));
    }
    (faults, fault_log)
}

/// Operations by name, for the report.
fn operation_counts(recorded: &Recorded, ring: bool) -> BTreeMap<String, u64> {
    let counts = &recorded.counts;
    let mut operations = BTreeMap::from([
        ("write requests".to_string(), counts.write_batches),
        (
            "bad batches refused".to_string(),
            counts.refused_bad_batches,
        ),
        ("point reads".to_string(), counts.point_reads),
        ("log pages".to_string(), counts.log_pages),
        ("pulls".to_string(), counts.pulls),
        ("deliveries".to_string(), recorded.deliveries.n_deliveries),
        ("acks sent".to_string(), counts.acks_sent),
        ("nacks sent".to_string(), counts.nacks_sent),
    ]);
    if ring {
        operations.insert("closure probes".to_string(), counts.closure_probes);
    }
    operations
}

/// Heals every fault: proxies, clocks, and servers that are down.
async fn heal(deployment: &Deployment, api: &Api, verdicts: &mut Verdicts) {
    for node in &deployment.nodes {
        node.proxy.heal();
        node.set_clock_offset_ms(0);
        if let Some(process) = &node.process {
            process.pause(false);
        }
    }
    if let Some(postgres) = &deployment.postgres {
        // Starting a running cluster fails harmlessly.
        let _ = postgres.start();
    }
    for (idx, failure) in deployment.start_all(api).await {
        verdicts.violation(
            "servers recover from crashes",
            format!(
                "server {idx} did not start after the faults were healed:\n{}",
                failure.log_tail
            ),
        );
    }
}

/// Waits until every subscription shows nothing in backlog or in flight.
async fn settle(api: &Api, base: &str, workload: &Workload, verdicts: &mut Verdicts) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    for spec in &workload.subscriptions {
        loop {
            let view = api.subscription(base, &spec.name).await.done();
            if view.as_ref().is_some_and(oracle::settled) {
                break;
            }
            if Instant::now() > deadline {
                verdicts.violation(
                    "every message is delivered at least once",
                    format!(
                        "{}: messages still unsettled {} s after the faults were healed: {}",
                        spec.name,
                        SETTLE_TIMEOUT.as_secs(),
                        view.map(|view| format!(
                            "backlog {} in flight {}",
                            view["backlog"], view["in_flight"]
                        ))
                        .unwrap_or_else(|| "no answer".into())
                    ),
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Replays every dead letter of a subscription (a call replays a window's
/// worth, so it is repeated until nothing is left).
async fn replay_all(api: &Api, base: &str, name: &str, verdicts: &mut Verdicts) {
    for _ in 0..1_000 {
        match api
            .subscription_call(base, name, "dead/replay", &json!({}))
            .await
        {
            Answer::Done(answer) if answer["replayed"].as_u64() == Some(0) => return,
            Answer::Done(_) => {}
            other => {
                verdicts.violation(
                    "dead letters are replayable",
                    format!("{name}: replay failed: {other:?}"),
                );
                return;
            }
        }
    }
}

/// After a clean restart nothing is left to deliver: pulls a while from
/// every server (in a ring, the first: the others have no subscriptions)
/// and records whatever comes (the oracle judges it).
async fn pull_after_restart(deployment: &Deployment, workload: &Arc<Workload>, ring: bool) {
    let mut pulls = JoinSet::new();
    let n_nodes = if ring { 1 } else { deployment.nodes.len() };
    for node in &deployment.nodes[..n_nodes] {
        for (subscription_idx, spec) in workload.subscriptions.iter().enumerate() {
            let workload = Arc::clone(workload);
            let base = node.direct_base.clone();
            let spec = spec.clone();
            pulls.spawn(async move {
                let sent = Instant::now();
                let body = json!({"max": 100, "wait_ms": AFTER_RESTART_WAIT_MS});
                if let Answer::Done(answer) = workload
                    .api
                    .subscription_call(&base, &spec.name, "pull", &body)
                    .await
                {
                    let answered = Instant::now();
                    for message in answer["messages"].as_array().into_iter().flatten() {
                        workload.record_delivery(
                            subscription_idx,
                            message,
                            Phase::AfterRestart,
                            sent,
                            answered,
                        );
                    }
                }
            });
        }
    }
    while pulls.join_next().await.is_some() {}
}

fn progress_bar(options: &CheckOptions) -> ProgressBar {
    if !options.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(options.duration.as_secs().max(1));
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

async fn show_progress(bar: ProgressBar, workload: Arc<Workload>, duration: Duration) {
    let started = Instant::now();
    loop {
        let message = workload.history.with(|recorded| {
            format!(
                "acked {} · deliveries {} · faults {} · violations {}",
                recorded.acked_order.len(),
                recorded.deliveries.n_deliveries,
                recorded.faults.len(),
                recorded.live_violations.len()
            )
        });
        bar.set_position(started.elapsed().as_secs().min(duration.as_secs()));
        if started.elapsed() < duration {
            bar.set_message(message);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
