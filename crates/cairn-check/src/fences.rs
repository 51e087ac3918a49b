//! Leases and fenced writes under faults: fenced writers (several per
//! lease name, each its own holder) acquire a lease with a short ttl,
//! write facts with `Cairn-Fence: <name>=<fence>`, renew, release, and
//! sometimes sleep past their ttl, so that leases change hands while the
//! old holder still writes. Each fenced fact names its lease and fence in
//! its fields, so the oracle finds it in the log. The oracle then checks,
//! on every server's log, that each lease's fences strictly increase in
//! log order (no fence granted twice, every answered grant present), that
//! every fenced fact stored lies inside its fence's window — after the
//! grant of its fence and before the next grant or the release of that
//! lease — and that a write refused with `stale_fence` is not stored.
//!
//! A fenced write without an answer is retried with the same fence; if a
//! retry is then refused (`stale_fence`), the write counts as unknown, not
//! refused: the first attempt may have been stored while the fence was
//! still current.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cairn_delivery::SplitMix64;
use cairn_fact::Hash;
use serde_json::{json, Value};

use crate::api::Answer;
use crate::coordination::{index_after, predecessor, write_one, Written};
use crate::oracle::Verdicts;
use crate::report::CoordinationSummary;
use crate::workload::{canonical_of, Workload};

/// The fact type of the facts written under a fence.
pub const FENCED_TYPE: &str = "check.Fenced";
/// The server's record of a grant.
pub const LEASE_GRANTED_TYPE: &str = "Cairn.LeaseGranted";
/// The server's record of a release.
pub const LEASE_RELEASED_TYPE: &str = "Cairn.LeaseReleased";
/// The types of the log this module keeps.
pub const TYPES: [&str; 3] = [LEASE_GRANTED_TYPE, LEASE_RELEASED_TYPE, FENCED_TYPE];
/// Lease names the fenced writers share (writer `i` uses `i % LEASES`).
pub const LEASES: usize = 2;
/// The shortest and longest ttl a writer asks for.
const TTL_MS_MIN: u64 = 300;
const TTL_MS_MAX: u64 = 800;

/// Fences only grow.
pub const FENCES_INCREASE: &str = "lease fences strictly increase";
/// No write is accepted with a stale fence.
pub const ONLY_CURRENT_FENCE: &str = "fenced writes only under the current fence";
/// A write refused as stale changed nothing.
pub const STALE_NOT_STORED: &str = "stale-fenced writes are not stored";

/// The name of lease `lease_idx` of run `run_id`.
pub fn lease_name(run_id: &str, lease_idx: usize) -> String {
    format!("{}{lease_idx}", lease_prefix(run_id))
}

fn lease_prefix(run_id: &str) -> String {
    format!("check-{run_id}-lease-")
}

/// What a fenced writer knows about one fenced write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FencedOutcome {
    /// Answered with its seq: stored under a current fence.
    Acked {
        /// The seq answered.
        seq: u64,
    },
    /// Refused at the first answer (`stale_fence`, or another code):
    /// nothing may be stored.
    Refused {
        /// The error code.
        code: Box<str>,
    },
    /// No answer, or a refusal after an attempt without one.
    Unknown,
}

/// One fenced write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FencedWrite {
    /// The lease it was fenced by.
    pub lease: usize,
    /// The fence it carried.
    pub fence: u64,
    /// The fact's hash.
    pub hash: Hash,
    /// What came of it.
    pub outcome: FencedOutcome,
}

/// An acquire answered `200`: a grant to the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantAnswer {
    /// The lease.
    pub lease: usize,
    /// Its fence.
    pub fence: u64,
    /// Its `Cairn.LeaseGranted` fact.
    pub granted: Hash,
}

/// What the fenced writers recorded.
#[derive(Debug, Default)]
pub struct FenceRecords {
    /// Every fenced write, in order of completion.
    pub writes: Vec<FencedWrite>,
    /// Every grant answered (a retried acquire answers the same grant).
    pub grants: Vec<GrantAnswer>,
    /// Acquires answered `409 lease_held`.
    pub acquires_held: u64,
    /// Renewals and releases answered `409 stale_fence`.
    pub stale_renewals: u64,
}

/// One fenced writer: holds lease `writer_idx % LEASES` when it can and
/// writes under its fence, until told to stop.
pub async fn run_fenced_writer(workload: Arc<Workload>, writer_idx: usize) {
    let mut random = SplitMix64::new(workload.seed ^ (0x4645_4e43 + writer_idx as u64));
    let lease = writer_idx % LEASES;
    let name = lease_name(&workload.run_id, lease);
    let holder = format!("check-{}-holder-{writer_idx}", workload.run_id);
    let mut fence: Option<u64> = None;
    let mut ttl_ms = TTL_MS_MIN;
    let mut n = 0u64;
    while !workload.stop_writes.load(Ordering::Acquire) {
        let base = workload.random_base(&mut random).to_string();
        match fence {
            None => {
                ttl_ms = random.in_range(TTL_MS_MIN, TTL_MS_MAX);
                let body = json!({"holder": holder, "ttl_ms": ttl_ms});
                match workload
                    .api
                    .lease_call(&base, &name, "acquire", &body)
                    .await
                {
                    Answer::Done(grant) => fence = record_grant(&workload, lease, &grant),
                    Answer::Refused(409, _) => {
                        workload
                            .history
                            .with(|recorded| recorded.coordination.fences.acquires_held += 1);
                        let wait_ms = random.in_range(20, 200);
                        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
                    }
                    Answer::Refused(429, _) => {}
                    Answer::Refused(status, code) => workload.history.violation(
                        "valid writes are accepted",
                        format!("acquiring {name} as {holder} was refused: {status} {code}"),
                    ),
                    // Acquiring again as the same holder answers the same
                    // grant if this one was made.
                    Answer::Unknown(..) => {}
                }
            }
            Some(current) => {
                let roll = random.in_range(0, 99);
                if roll < 70 {
                    n += 1;
                    let fact = json!({
                        "type": FENCED_TYPE,
                        "fields": {"run": workload.run_id, "lease": lease, "fence": current,
                            "writer": writer_idx, "n": n},
                        "predecessors": {},
                    });
                    let hash = canonical_of(&fact).expect("a valid fenced fact").hash;
                    let written =
                        write_one(&workload, &fact, Some((&name, current)), &mut random).await;
                    let outcome = match written {
                        Written::Acked(seq) => FencedOutcome::Acked { seq },
                        Written::Refused(_, code) => {
                            // Stale (or refused otherwise): the lease is lost.
                            fence = None;
                            FencedOutcome::Refused { code: code.into() }
                        }
                        Written::Unknown => FencedOutcome::Unknown,
                    };
                    if let FencedOutcome::Refused { code } = &outcome {
                        if !code.starts_with("stale_fence") && !code.starts_with("overloaded") {
                            workload.history.violation(
                                "valid writes are accepted",
                                format!("a fenced write of {name} was refused: {code}"),
                            );
                        }
                    }
                    workload.history.with(|recorded| {
                        recorded.coordination.fences.writes.push(FencedWrite {
                            lease,
                            fence: current,
                            hash,
                            outcome,
                        })
                    });
                } else if roll < 85 {
                    let release = roll >= 80;
                    let action = if release { "release" } else { "renew" };
                    let body = json!({"holder": holder, "fence": current});
                    match workload.api.lease_call(&base, &name, action, &body).await {
                        Answer::Done(_) if release => fence = None,
                        Answer::Done(_) => {}
                        Answer::Refused(409, _) => {
                            workload
                                .history
                                .with(|recorded| recorded.coordination.fences.stale_renewals += 1);
                            fence = None;
                        }
                        // Released or not: acquiring again tells.
                        _ if release => fence = None,
                        _ => {}
                    }
                } else {
                    // Sleep past the ttl: another writer may take the lease
                    // over, and this one's next write is then stale.
                    let sleep_ms = ttl_ms + random.in_range(50, 400);
                    tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(random.in_range(5, 40))).await;
    }
}

/// Records an acquire's answer; its fence.
fn record_grant(workload: &Workload, lease: usize, grant: &Value) -> Option<u64> {
    let fence = grant["fence"].as_u64();
    let granted = grant["granted"]
        .as_str()
        .and_then(|text| Hash::from_hex(text).ok());
    workload.history.with(|recorded| match (fence, granted) {
        (Some(fence), Some(granted)) => {
            recorded.coordination.fences.grants.push(GrantAnswer {
                lease,
                fence,
                granted,
            });
            Some(fence)
        }
        _ => {
            recorded.live_violations.push((
                FENCES_INCREASE.into(),
                format!("a grant without its members: {grant}"),
            ));
            None
        }
    })
}

/// A `Cairn.LeaseGranted` of the run in one server's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedGrant {
    /// Its lease.
    pub lease: usize,
    /// Its fence.
    pub fence: u64,
    /// The lease's previous grant (its `previous` predecessor).
    pub previous: Option<Hash>,
    /// Its own hash.
    pub hash: Hash,
    /// Its seq.
    pub seq: u64,
}

/// A `Cairn.LeaseReleased` or a fenced fact of the run in one server's
/// log: which lease and fence, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedFenced {
    /// Its lease.
    pub lease: usize,
    /// Its fence.
    pub fence: u64,
    /// Its seq.
    pub seq: u64,
}

/// What one server's log holds of the run's leases, in log order.
#[derive(Debug)]
pub struct FenceLog {
    prefix: String,
    run_id: String,
    /// Grants, in seq order.
    pub grants: Vec<LoggedGrant>,
    /// Releases, in seq order.
    pub releases: Vec<LoggedFenced>,
    /// Fenced facts by hash.
    pub fenced: HashMap<Hash, LoggedFenced>,
    /// Entries of the run that lack a member.
    pub malformed: Vec<String>,
}

impl FenceLog {
    /// An empty log of run `run_id`'s leases.
    pub fn new(run_id: &str) -> FenceLog {
        FenceLog {
            prefix: lease_prefix(run_id),
            run_id: run_id.to_string(),
            grants: Vec::new(),
            releases: Vec::new(),
            fenced: HashMap::new(),
            malformed: Vec::new(),
        }
    }

    /// Keeps `fact` at `seq` if it is a grant, release or fenced fact of
    /// the run.
    pub fn observe(&mut self, seq: u64, hash: Hash, fact: &Value) {
        let fields = &fact["fields"];
        let fence = fields["fence"].as_u64();
        if fact["type"] == FENCED_TYPE {
            if fields["run"].as_str() != Some(self.run_id.as_str()) {
                return;
            }
            match (fields["lease"].as_u64(), fence) {
                (Some(lease), Some(fence)) => {
                    let lease = lease as usize;
                    self.fenced.insert(hash, LoggedFenced { lease, fence, seq });
                }
                _ => self.malformed.push(format!("seq {seq}: {fact}")),
            }
            return;
        }
        let name = fields["name"].as_str().unwrap_or_default();
        let Some(lease) = index_after(name, &self.prefix) else {
            return;
        };
        let Some(fence) = fence else {
            self.malformed.push(format!("seq {seq}: {fact}"));
            return;
        };
        if fact["type"] == LEASE_GRANTED_TYPE {
            self.grants.push(LoggedGrant {
                lease,
                fence,
                previous: predecessor(fact, "previous"),
                hash,
                seq,
            });
        } else {
            self.releases.push(LoggedFenced { lease, fence, seq });
        }
    }

    /// Where each grant's fence was current in the log: (lease, fence) →
    /// (seq of its grant, seq of the next grant or of its release, or
    /// `u64::MAX` if it is still current).
    fn windows(&self) -> HashMap<(usize, u64), (u64, u64)> {
        let mut windows: HashMap<(usize, u64), (u64, u64)> = HashMap::new();
        let mut last_by_lease: HashMap<usize, (u64, u64)> = HashMap::new();
        for grant in &self.grants {
            if let Some((fence, _)) = last_by_lease.insert(grant.lease, (grant.fence, grant.seq)) {
                if let Some(window) = windows.get_mut(&(grant.lease, fence)) {
                    window.1 = window.1.min(grant.seq);
                }
            }
            windows
                .entry((grant.lease, grant.fence))
                .or_insert((grant.seq, u64::MAX));
        }
        for release in &self.releases {
            if let Some((start, end)) = windows.get_mut(&(release.lease, release.fence)) {
                if *start < release.seq {
                    *end = (*end).min(release.seq);
                }
            }
        }
        windows
    }
}

/// Judges one server's log of leases and fenced facts against the
/// recorded grants and writes.
pub fn judge(server_idx: usize, log: &FenceLog, records: &FenceRecords, verdicts: &mut Verdicts) {
    for problem in &log.malformed {
        verdicts.violation(
            FENCES_INCREASE,
            format!("server {server_idx}: a lease entry without its members: {problem}"),
        );
    }
    // Fences strictly increase per lease, each grant naming the one before.
    let mut last_by_lease: HashMap<usize, &LoggedGrant> = HashMap::new();
    let mut grant_by_hash: HashMap<Hash, &LoggedGrant> = HashMap::new();
    for grant in &log.grants {
        verdicts.examined(FENCES_INCREASE, 1);
        grant_by_hash.insert(grant.hash, grant);
        let previous = last_by_lease.insert(grant.lease, grant);
        if let Some(previous) = previous {
            if grant.fence <= previous.fence {
                verdicts.violation(
                    FENCES_INCREASE,
                    format!(
                        "server {server_idx}: lease {} granted fence {} at seq {} after fence {} at seq {}",
                        grant.lease, grant.fence, grant.seq, previous.fence, previous.seq
                    ),
                );
            }
        }
        if grant.previous != previous.map(|previous| previous.hash) {
            verdicts.violation(
                FENCES_INCREASE,
                format!(
                    "server {server_idx}: lease {} fence {} (seq {}) does not name the grant before it in the log",
                    grant.lease, grant.fence, grant.seq
                ),
            );
        }
    }
    let mut grants_answered = HashSet::new();
    for answer in &records.grants {
        if !grants_answered.insert(answer.granted) {
            continue;
        }
        let matches = grant_by_hash
            .get(&answer.granted)
            .is_some_and(|grant| grant.lease == answer.lease && grant.fence == answer.fence);
        if !matches {
            verdicts.violation(
                FENCES_INCREASE,
                format!(
                    "server {server_idx}: lease {} fence {} was granted (fact {}) but that grant is not in the log",
                    answer.lease, answer.fence, answer.granted
                ),
            );
        }
    }
    // Every stored fenced fact lies inside its fence's window.
    let windows = log.windows();
    let written: HashSet<Hash> = records.writes.iter().map(|write| write.hash).collect();
    for (hash, fenced) in &log.fenced {
        verdicts.examined(ONLY_CURRENT_FENCE, 1);
        let what = format!(
            "server {server_idx}: {hash} (lease {} fence {}) is stored at seq {}",
            fenced.lease, fenced.fence, fenced.seq
        );
        match windows.get(&(fenced.lease, fenced.fence)) {
            None => verdicts.violation(
                ONLY_CURRENT_FENCE,
                format!("{what}, but that fence was never granted in the log"),
            ),
            Some(&(start, end)) if fenced.seq <= start || fenced.seq >= end => verdicts.violation(
                ONLY_CURRENT_FENCE,
                format!("{what}, outside its fence's window: granted at seq {start}, current until seq {end}"),
            ),
            Some(_) => {}
        }
        if !written.contains(hash) {
            verdicts.violation(
                "no phantom facts",
                format!("{what}, but it was never written"),
            );
        }
    }
    // Acknowledged ones are stored where they were acknowledged; refused
    // ones are not stored.
    for write in &records.writes {
        let stored = log.fenced.get(&write.hash);
        match (&write.outcome, stored) {
            (FencedOutcome::Acked { seq }, Some(stored)) => {
                verdicts.examined("acknowledged writes are durable", 1);
                if stored.seq != *seq {
                    verdicts.violation(
                        "acknowledged facts keep their seq",
                        format!(
                            "server {server_idx}: fenced fact {} acknowledged at seq {seq}, now at seq {}",
                            write.hash, stored.seq
                        ),
                    );
                }
            }
            (FencedOutcome::Acked { seq }, None) => verdicts.violation(
                "acknowledged writes are durable",
                format!(
                    "server {server_idx}: acknowledged fenced fact {} (seq {seq}) is missing",
                    write.hash
                ),
            ),
            (FencedOutcome::Refused { code }, stored) => {
                verdicts.examined(STALE_NOT_STORED, 1);
                if let Some(stored) = stored {
                    verdicts.violation(
                        STALE_NOT_STORED,
                        format!(
                            "server {server_idx}: fenced fact {} (lease {} fence {}) was refused ({code}) but is stored at seq {}",
                            write.hash, write.lease, write.fence, stored.seq
                        ),
                    );
                }
            }
            (FencedOutcome::Unknown, _) => {}
        }
    }
}

/// Adds the leases and fenced writes to the summary.
pub fn summarize(
    records: &FenceRecords,
    first_log: Option<&FenceLog>,
    summary: &mut CoordinationSummary,
) {
    let grants: HashSet<Hash> = records.grants.iter().map(|grant| grant.granted).collect();
    summary.lease_grants = grants.len() as u64;
    summary.lease_grants_logged = first_log.map_or(0, |log| log.grants.len() as u64);
    for write in &records.writes {
        match &write.outcome {
            FencedOutcome::Acked { .. } => summary.fenced_acknowledged += 1,
            FencedOutcome::Refused { code } if code.starts_with("stale_fence") => {
                summary.fenced_refused_stale += 1
            }
            FencedOutcome::Refused { .. } => summary.fenced_refused_other += 1,
            FencedOutcome::Unknown => {
                let stored = first_log.is_some_and(|log| log.fenced.contains_key(&write.hash));
                if stored {
                    summary.fenced_unknown_stored += 1;
                } else {
                    summary.fenced_unknown_absent += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(byte: u8) -> Hash {
        Hash::of_bytes(&[byte])
    }

    fn granted(lease: usize, fence: u64, previous: Option<Hash>) -> Value {
        let predecessors = match previous {
            Some(previous) => json!({"previous": previous.to_hex()}),
            None => json!({}),
        };
        json!({"type": LEASE_GRANTED_TYPE,
            "fields": {"name": lease_name("r1", lease), "holder": "h", "fence": fence,
                "ttl_ms": 500, "deployment": "d"},
            "predecessors": predecessors})
    }

    fn lease_released(lease: usize, fence: u64, grant: Hash) -> Value {
        json!({"type": LEASE_RELEASED_TYPE,
            "fields": {"name": lease_name("r1", lease), "holder": "h", "fence": fence, "deployment": "d"},
            "predecessors": {"grant": grant.to_hex()}})
    }

    fn fenced(lease: usize, fence: u64, n: u64) -> Value {
        json!({"type": FENCED_TYPE,
            "fields": {"run": "r1", "lease": lease, "fence": fence, "writer": 0, "n": n},
            "predecessors": {}})
    }

    fn write(fence: u64, hash: Hash, outcome: FencedOutcome) -> FencedWrite {
        FencedWrite {
            lease: 0,
            fence,
            hash,
            outcome,
        }
    }

    fn violations(verdicts: Verdicts, check: &str) -> Vec<String> {
        verdicts
            .into_results()
            .into_iter()
            .find(|result| result.name == check)
            .map(|result| result.counterexamples)
            .unwrap_or_default()
    }

    /// Lease 0: fence 1 granted at seq 10, a write at 11, fence 2 granted
    /// at 12 (fence 1's writer slept), a write at 13, fence 2 released at
    /// 14, fence 3 granted at 16.
    fn consistent() -> (FenceLog, FenceRecords) {
        let mut log = FenceLog::new("r1");
        log.observe(10, hash(101), &granted(0, 1, None));
        log.observe(11, hash(1), &fenced(0, 1, 1));
        log.observe(12, hash(102), &granted(0, 2, Some(hash(101))));
        log.observe(13, hash(2), &fenced(0, 2, 2));
        log.observe(14, hash(103), &lease_released(0, 2, hash(102)));
        log.observe(16, hash(104), &granted(0, 3, Some(hash(102))));
        // Another run's lease and fenced fact are skipped.
        log.observe(17, hash(105), &json!({"type": LEASE_GRANTED_TYPE,
            "fields": {"name": "check-r2-lease-0", "holder": "h", "fence": 1, "ttl_ms": 500, "deployment": "d"},
            "predecessors": {}}));
        log.observe(18, hash(106), &json!({"type": FENCED_TYPE,
            "fields": {"run": "r2", "lease": 0, "fence": 9, "writer": 0, "n": 1}, "predecessors": {}}));
        let records = FenceRecords {
            writes: vec![
                write(1, hash(1), FencedOutcome::Acked { seq: 11 }),
                write(2, hash(2), FencedOutcome::Unknown),
                write(
                    1,
                    hash(3),
                    FencedOutcome::Refused {
                        code: "stale_fence".into(),
                    },
                ),
            ],
            grants: vec![
                GrantAnswer {
                    lease: 0,
                    fence: 1,
                    granted: hash(101),
                },
                GrantAnswer {
                    lease: 0,
                    fence: 2,
                    granted: hash(102),
                },
                GrantAnswer {
                    lease: 0,
                    fence: 2,
                    granted: hash(102),
                },
            ],
            ..FenceRecords::default()
        };
        (log, records)
    }

    #[test]
    fn a_consistent_history_passes() {
        let (log, records) = consistent();
        assert_eq!((log.grants.len(), log.fenced.len()), (3, 2));
        let mut verdicts = Verdicts::default();
        judge(0, &log, &records, &mut verdicts);
        let results = verdicts.into_results();
        for result in &results {
            assert!(result.passed(), "{result:?}");
        }
        let examined = |name: &str| results.iter().find(|r| r.name == name).unwrap().examined;
        assert_eq!(examined(FENCES_INCREASE), 3);
        assert_eq!(examined(ONLY_CURRENT_FENCE), 2);
        assert_eq!(examined(STALE_NOT_STORED), 1);
    }

    #[test]
    fn an_acknowledged_write_after_a_later_grant_is_reported() {
        let (mut log, mut records) = consistent();
        // Fence 1's write stored after fence 2 was granted.
        log.observe(15, hash(4), &fenced(0, 1, 4));
        records
            .writes
            .push(write(1, hash(4), FencedOutcome::Acked { seq: 15 }));
        // Fence 2's write stored after fence 2 was released.
        log.observe(19, hash(5), &fenced(0, 2, 5));
        records
            .writes
            .push(write(2, hash(5), FencedOutcome::Unknown));
        let mut verdicts = Verdicts::default();
        judge(0, &log, &records, &mut verdicts);
        let found = violations(verdicts, ONLY_CURRENT_FENCE);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("outside its fence's window") || found[1].contains("outside"));
    }

    #[test]
    fn a_stored_stale_write_and_a_fence_granted_twice_are_reported() {
        let (mut log, records) = consistent();
        // The refused write is stored anyway (inside its window even).
        log.observe(11, hash(3), &fenced(0, 1, 3));
        // Fence 3 granted again.
        log.observe(20, hash(107), &granted(0, 3, Some(hash(104))));
        let mut verdicts = Verdicts::default();
        judge(0, &log, &records, &mut verdicts);
        let results = verdicts.into_results();
        let of = |name: &str| {
            results
                .iter()
                .find(|r| r.name == name)
                .unwrap()
                .counterexamples
                .clone()
        };
        assert_eq!(of(STALE_NOT_STORED).len(), 1);
        assert!(of(FENCES_INCREASE)
            .iter()
            .any(|v| v.contains("granted fence 3")));
    }

    #[test]
    fn a_lost_grant_and_an_acknowledged_write_that_is_missing_are_reported() {
        let (log, mut records) = consistent();
        records.grants.push(GrantAnswer {
            lease: 0,
            fence: 4,
            granted: hash(110),
        });
        records
            .writes
            .push(write(3, hash(6), FencedOutcome::Acked { seq: 17 }));
        let mut verdicts = Verdicts::default();
        judge(0, &log, &records, &mut verdicts);
        let results = verdicts.into_results();
        let of = |name: &str| {
            results
                .iter()
                .find(|r| r.name == name)
                .unwrap()
                .counterexamples
                .len()
        };
        assert_eq!(of(FENCES_INCREASE), 1);
        assert_eq!(of("acknowledged writes are durable"), 1);
    }
}
