//! The nemesis: injects one fault at a time, at seeded random moments, into
//! a seeded random server, heals it, and records what it did. A fault that
//! leaves a server unable to come back (when it should) is a violation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_delivery::SplitMix64;
use cairn_fact::Hash;

use crate::api::{Answer, Api};
use crate::deployment::{Deployment, Node};
use crate::disk;
use crate::history::FaultEvent;
use crate::options::FaultKind;
use crate::postgres::RestartMode;
use crate::proxy::NetworkFault;
use crate::timers::{self, ClockJump};
use crate::workload::{canonical_of, ServedFiles, Workload, ITEM_TYPE, PROBE_TYPE};

/// Acknowledged facts a corruption probe reads at most.
const PROBE_READS_MAX: usize = 300;

/// Injects faults into a deployment while a workload runs.
pub struct Nemesis {
    /// The deployment it injects faults into.
    pub deployment: Arc<Deployment>,
    /// The workload, whose acknowledged facts the corruption probes read.
    pub workload: Arc<Workload>,
    /// The client for the probes and the checks after a fault.
    pub api: Api,
    /// The kinds of fault it may choose from.
    pub kinds: Vec<FaultKind>,
    /// The pause between two faults.
    pub interval: Duration,
    /// When the run started; fault times are counted from it.
    pub started: Instant,
}

impl Nemesis {
    /// Injects faults until `deadline`.
    pub async fn run(&self, seed: u64, deadline: Instant) {
        let mut random = SplitMix64::new(seed ^ 0x004e_454d_4553_4953);
        if self.kinds.is_empty() {
            tokio::time::sleep_until(deadline.into()).await;
            return;
        }
        let interval_ms = self.interval.as_millis() as u64;
        loop {
            let wait = Duration::from_millis(random.in_range(interval_ms / 2, interval_ms * 3 / 2));
            if Instant::now() + wait >= deadline {
                tokio::time::sleep_until(deadline.into()).await;
                return;
            }
            tokio::time::sleep(wait).await;
            let kind = self.kinds[random.in_range(0, self.kinds.len() as u64 - 1) as usize];
            let node_idx = random.in_range(0, self.deployment.nodes.len() as u64 - 1) as usize;
            let at_ms = self.started.elapsed().as_millis() as u64;
            let detail = self
                .inject(kind, &self.deployment.nodes[node_idx], &mut random)
                .await;
            self.workload.history.with(|recorded| {
                recorded.record_fault(FaultEvent {
                    kind,
                    server_idx: node_idx,
                    at_ms,
                    detail,
                })
            });
        }
    }

    async fn inject(&self, kind: FaultKind, node: &Node, random: &mut SplitMix64) -> String {
        let process = node.process.as_ref();
        match (kind, process) {
            (FaultKind::Kill, Some(process)) => {
                process.kill();
                let down_ms = random.in_range(0, 1_000);
                tokio::time::sleep(Duration::from_millis(down_ms)).await;
                self.restart(node, "kill -9").await;
                format!("kill -9, down {down_ms} ms")
            }
            (FaultKind::Pause, Some(process)) => {
                let paused_ms = random.in_range(300, 3_000);
                process.pause(true);
                tokio::time::sleep(Duration::from_millis(paused_ms)).await;
                process.pause(false);
                format!("SIGSTOP for {paused_ms} ms")
            }
            (FaultKind::RestartLoop, Some(process)) => {
                let cycles = random.in_range(2, 4);
                for _ in 0..cycles {
                    process.kill();
                    let _ = process.spawn();
                    tokio::time::sleep(Duration::from_millis(random.in_range(50, 600))).await;
                }
                process.kill();
                self.restart(node, "a restart loop").await;
                format!("{cycles} start/kill -9 cycles")
            }
            (FaultKind::CleanRestart, Some(process)) => {
                let graceful = process.terminate().await;
                self.restart(node, "SIGTERM").await;
                if graceful {
                    "SIGTERM and restart".into()
                } else {
                    "SIGTERM did not stop it in time; killed and restarted".into()
                }
            }
            (FaultKind::ClockJump, _) => {
                let offset_ms = random.in_range(0, 60_000) as i64 - 30_000;
                let hold_ms = random.in_range(500, 5_000);
                let from_ms = timers::wall_ms();
                node.set_clock_offset_ms(offset_ms);
                tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                node.set_clock_offset_ms(0);
                if node.clock_file.is_some() {
                    // The timer checks count the jump (in wall-clock time).
                    let jump = ClockJump {
                        offset_ms,
                        from_ms,
                        to_ms: timers::wall_ms(),
                    };
                    self.workload
                        .history
                        .with(|recorded| recorded.coordination.timers.clock_jumps.push(jump));
                }
                format!("clock {offset_ms:+} ms for {hold_ms} ms, then back")
            }
            (FaultKind::Network, _) => {
                let fault = match random.in_range(0, 5) {
                    0 => NetworkFault::Delay {
                        delay_ms: random.in_range(20, 400),
                    },
                    1 => NetworkFault::Drop,
                    2 => NetworkFault::Reset,
                    3 => NetworkFault::StallClientToServer,
                    4 => NetworkFault::StallServerToClient,
                    _ => NetworkFault::Blackhole,
                };
                let hold_ms = random.in_range(300, 3_000);
                node.proxy.set_fault(fault);
                tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                node.proxy.heal();
                format!("{} for {hold_ms} ms", describe(fault))
            }
            (FaultKind::PostgresRestart, _) => self.restart_postgres(random).await,
            (FaultKind::Failover, _) => self.fail_over(random).await,
            (FaultKind::TornWrite, Some(process)) => {
                process.kill();
                let detail = match &node.data_dir {
                    Some(data_dir) => disk::tear_last_write(data_dir, random)
                        .unwrap_or_else(|error| format!("tearing failed: {error}")),
                    None => "no data directory".into(),
                };
                self.restart(node, "a torn last write").await;
                format!("kill -9, then {detail}")
            }
            (FaultKind::Corruption, Some(_)) => self.corruption_cycle(node, random).await,
            _ => "not applicable to this server".into(),
        }
    }

    /// Starts a server that must come back; a failure is a violation.
    async fn restart(&self, node: &Node, after: &str) {
        let Some(process) = &node.process else {
            return;
        };
        if let Err(failure) = process.start(&self.api).await {
            self.workload.history.violation(
                "servers recover from crashes",
                format!(
                    "server {} did not come back after {after}:\n{}",
                    node.idx, failure.log_tail
                ),
            );
            // Keep trying, so the rest of the run still exercises it.
            let _ = process.start(&self.api).await;
        }
    }

    /// Fails the replicated PostgreSQL over (see
    /// `replicated_postgres.rs`), replication cut for 300–1,000 ms first
    /// while the workload writes; measures how long the servers take to
    /// acknowledge a write again; then rebuilds the old primary as the new
    /// one's synchronous standby.
    async fn fail_over(&self, random: &mut SplitMix64) -> String {
        let Some(replicated) = &self.deployment.replicated else {
            return "no replicated PostgreSQL".into();
        };
        let failed = |step: &str, error: String| {
            self.workload.history.violation(
                "PostgreSQL fails over",
                format!("the {step} did not complete: {error}"),
            );
            format!("{step} failed: {error}")
        };
        let cut_ms = random.in_range(300, 1_000);
        let (killed_at, failed_over) = match replicated.fail_over(cut_ms).await {
            Ok(done) => done,
            Err(error) => return failed("failover", error),
        };
        let resumed = self.writes_resumed(killed_at).await;
        match replicated.rejoin().await {
            Ok(rejoined) => format!("{failed_over}; {resumed}; {rejoined}"),
            Err(error) => failed("rejoin", error),
        }
    }

    /// Writes a probe fact to every server until each acknowledges one,
    /// and says how long after `since` the last did.
    async fn writes_resumed(&self, since: Instant) -> String {
        const RESUME_WAIT: Duration = Duration::from_secs(60);
        let mut resumed_ms = Vec::new();
        for node in &self.deployment.nodes {
            let mut attempt = 0u64;
            loop {
                let probe = serde_json::json!({
                    "type": PROBE_TYPE,
                    "predecessors": {},
                    "fields": {"at_ms": self.started.elapsed().as_millis() as u64, "attempt": attempt}
                });
                attempt += 1;
                let answer = self.api.post_facts(&node.direct_base, &[probe]).await;
                if matches!(answer, Answer::Done(_)) {
                    resumed_ms.push(since.elapsed().as_millis());
                    break;
                }
                if since.elapsed() > RESUME_WAIT {
                    self.workload.history.violation(
                        "writes resume after a failover",
                        format!("server {} took no write within {RESUME_WAIT:?}", node.idx),
                    );
                    return "writes did not resume".into();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        format!(
            "every server took a write {} ms after the kill",
            resumed_ms.iter().max().copied().unwrap_or(0)
        )
    }

    async fn restart_postgres(&self, random: &mut SplitMix64) -> String {
        let Some(postgres) = &self.deployment.postgres else {
            return "no private PostgreSQL".into();
        };
        let mode = if random.in_range(0, 1) == 0 {
            RestartMode::Crash
        } else {
            RestartMode::Fast
        };
        let down_ms = random.in_range(0, 2_000);
        let stopped = postgres.stop(mode);
        tokio::time::sleep(Duration::from_millis(down_ms)).await;
        if let Err(error) = postgres.start() {
            self.workload.history.violation(
                "servers recover from crashes",
                format!("PostgreSQL did not start again: {error}"),
            );
        }
        match stopped {
            Ok(()) => format!("PostgreSQL {mode:?} stop, down {down_ms} ms"),
            Err(error) => format!("PostgreSQL {mode:?} stop failed: {error}"),
        }
    }

    /// Stops a server, damages a copy of its files' worth, probes what the
    /// server does with the damage, then puts the intact files back.
    async fn corruption_cycle(&self, node: &Node, random: &mut SplitMix64) -> String {
        let (Some(process), Some(data_dir)) = (&node.process, &node.data_dir) else {
            return "no data directory".into();
        };
        // Clients cannot reach the server while its files are damaged, so
        // nothing acknowledged then is lost when the backup comes back.
        node.proxy.set_fault(NetworkFault::Drop);
        process.terminate().await;
        let backup = data_dir.with_extension("backup");
        if let Err(error) = disk::back_up(data_dir, &backup) {
            node.proxy.heal();
            self.restart(node, "a failed backup").await;
            return format!("backup failed: {error}");
        }
        let damage = match disk::corrupt(data_dir, random) {
            Ok(Some(damage)) => damage,
            Ok(None) => "nothing to damage".into(),
            Err(error) => format!("damaging failed: {error}"),
        };
        let verdict = match process.start(&self.api).await {
            Err(failure) => {
                let last_line = failure.log_tail.lines().last().unwrap_or("").to_string();
                format!("refused to start: {last_line}")
            }
            Ok(()) => self.probe_damaged(node, &damage).await,
        };
        process.kill();
        if let Err(error) = disk::restore(data_dir, &backup) {
            self.workload.history.violation(
                "the checker's own steps",
                format!("restoring the backup failed: {error}"),
            );
        }
        self.restart(node, "restoring intact files").await;
        node.proxy.heal();
        format!("{damage}; {verdict}")
    }

    /// Reads acknowledged facts and the log from a server running on damaged
    /// files, and tries a write: wrong data, an acknowledged fact reported
    /// absent without a corruption report, or a write acknowledged after a
    /// corruption report are violations.
    async fn probe_damaged(&self, node: &Node, damage: &str) -> String {
        let base = &node.direct_base;
        // Of the facts acknowledged by this server's store (with
        // independent stores, the others' may not have reached it).
        let sample: Vec<Hash> = self.workload.history.with(|recorded| {
            let store_idx = recorded.store_of(node.idx);
            let n_acked = recorded.acked_order.len();
            let step = (n_acked / PROBE_READS_MAX).max(1);
            recorded
                .acked_order
                .iter()
                .step_by(step)
                .map(|&fact_idx| recorded.facts.get(fact_idx))
                .filter(|fact| usize::from(fact.store_idx) == store_idx)
                .map(|fact| fact.hash)
                .collect()
        });
        let mut detected = 0usize;
        let mut correct = 0usize;
        for hash in &sample {
            match self.api.get_fact(base, &hash.to_hex()).await {
                Answer::Done(body) => {
                    // Equal hashes are equal canonical bytes: the hash is
                    // their BLAKE3.
                    if canonical_of(&body["fact"]).map(|fact| fact.hash) == Some(*hash) {
                        correct += 1;
                    } else {
                        self.workload.history.violation(
                            "damaged data is never served",
                            format!(
                                "server {} served other bytes for {hash} after: {damage}",
                                node.idx
                            ),
                        );
                    }
                }
                Answer::Refused(404, _) => self.workload.history.violation(
                    "damaged data is never served",
                    format!(
                        "server {} answered 404 for acknowledged fact {hash} after: {damage}",
                        node.idx
                    ),
                ),
                Answer::Unknown(500, code) if code == "corrupt_data" => detected += 1,
                _ => {}
            }
        }
        let mut cursor = 0;
        let mut pages = 0;
        loop {
            match self.api.log_page(base, cursor, 1_000).await {
                Answer::Done(page) => {
                    self.workload
                        .observe_log_page(node.idx, &page, ServedFiles::Discarded);
                    let next = page["next"].as_u64().unwrap_or(cursor);
                    pages += 1;
                    if next == cursor || pages > 1_000 {
                        break;
                    }
                    cursor = next;
                }
                Answer::Unknown(500, code) if code == "corrupt_data" => {
                    detected += 1;
                    break;
                }
                _ => break,
            }
        }
        let probe =
            serde_json::json!({"type": ITEM_TYPE, "fields": {"probe": damage}, "predecessors": {}});
        let write = self.api.post_facts(base, &[probe]).await;
        let write_acked = matches!(write, Answer::Done(_));
        if detected > 0 && write_acked {
            self.workload.history.violation(
                "no writes on top of detected corruption",
                format!(
                    "server {} acknowledged a write after reporting corruption ({damage})",
                    node.idx
                ),
            );
        }
        format!(
            "served: {correct} of {} sampled facts correct, {detected} corruption reports, probe write {}",
            sample.len(),
            if write_acked { "acknowledged" } else { "refused" }
        )
    }
}

fn describe(fault: NetworkFault) -> String {
    match fault {
        NetworkFault::Delay { delay_ms } => format!("network delay {delay_ms} ms"),
        other => format!("network {}", other.name()),
    }
}
