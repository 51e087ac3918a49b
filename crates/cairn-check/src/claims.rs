//! Claims under faults: claimer tasks race for a few keys ("seats") of the
//! run with facts they wrote and had acknowledged, through every server,
//! and release every key they win after holding it a while (most briefly,
//! some long, so that others lose to them), so that keys are won again (a new
//! generation each time). The history keeps every answer; the oracle then
//! checks that no key ever had two winners — per key and generation
//! exactly one `Cairn.Claimed` fact in every server's log, each won only
//! after the previous generation was released — that every answer agrees
//! with the log (its winner, generation, `Cairn.Claimed` fact and seq),
//! and that answers never go back a generation in real time.
//!
//! A claim without an answer is retried (claims are idempotent) and stays
//! unknown if no attempt is answered; the claimer then tries to release
//! the key in case it won, and tries again later while no release is
//! answered, so that a lost answer does not hold a seat for the rest of
//! the run.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_delivery::SplitMix64;
use cairn_fact::Hash;
use serde_json::{json, Value};

use crate::api::Answer;
use crate::coordination::{
    index_after, predecessor, retry_pause, write_one, Written, ATTEMPTS_MAX,
};
use crate::oracle::Verdicts;
use crate::report::CoordinationSummary;
use crate::workload::{canonical_of, Workload};

/// The fact type of the facts the claimers claim keys with.
pub const CLAIMANT_TYPE: &str = "check.Claimant";
/// The server's record of a key won.
pub const CLAIMED_TYPE: &str = "Cairn.Claimed";
/// The server's record of a key released.
pub const CLAIM_RELEASED_TYPE: &str = "Cairn.ClaimReleased";
/// The types of the log this module keeps.
pub const TYPES: [&str; 2] = [CLAIMED_TYPE, CLAIM_RELEASED_TYPE];
/// Keys the claimers race for: few, so that they collide.
pub const SEATS: usize = 4;
/// Percent of won keys the winner holds long (0.5–2 s, so that claims are
/// lost to it) rather than briefly (up to 0.1 s) before releasing them.
const LONG_HOLD_PERCENT: u64 = 20;

/// No key has two winners.
pub const ONE_WINNER: &str = "one winner per claim generation";
/// Every answer agrees with what the servers logged.
pub const ANSWERS_MATCH_LOG: &str = "claim answers match the log";
/// A claim answered after another was answered never names an older
/// generation.
pub const NO_GOING_BACK: &str = "claim answers never go back a generation";

/// The key of seat `seat_idx` of run `run_id`.
pub fn seat_key(run_id: &str, seat_idx: usize) -> String {
    format!("{}{seat_idx}", seat_prefix(run_id))
}

fn seat_prefix(run_id: &str) -> String {
    format!("check-{run_id}-seat-")
}

/// A claim answered `200`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimDone {
    /// The seat claimed.
    pub seat: usize,
    /// The fact it was claimed with.
    pub fact: Hash,
    /// The winner the answer named.
    pub winner: Hash,
    /// `won` of the answer.
    pub won: bool,
    /// `generation` of the answer.
    pub generation: u64,
    /// `seq` of the answer: where its `Cairn.Claimed` fact is.
    pub seq: u64,
    /// `claimed` of the answer: the `Cairn.Claimed` fact's hash.
    pub claimed: Hash,
    /// When the claim's first attempt was sent, in ns since the run began.
    pub sent_ns: u64,
    /// When the answer came, in ns since the run began.
    pub answered_ns: u64,
}

/// A release answered `200`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleaseDone {
    /// The seat released.
    pub seat: usize,
    /// The fact that held it.
    pub fact: Hash,
    /// `released` of the answer: the `Cairn.ClaimReleased` fact's hash.
    pub released: Hash,
    /// `seq` of the answer: where that fact is.
    pub seq: u64,
}

/// What the claimers recorded.
#[derive(Debug, Default)]
pub struct ClaimRecords {
    /// Every (seat, fact) a claim was sent for: a winner in the log must
    /// be one of them.
    pub offered: HashSet<(usize, Hash)>,
    /// Claims answered `200`.
    pub answers: Vec<ClaimDone>,
    /// Claims refused (every attempt overloaded, or a violation).
    pub refused: u64,
    /// Claims without an answer to any attempt.
    pub unknown: u64,
    /// Releases answered `200`.
    pub releases: Vec<ReleaseDone>,
    /// Releases answered `409 not_claim_holder`.
    pub releases_not_holder: u64,
}

/// One claimer: writes a fact, claims a random seat with it, holds a seat
/// it wins a while and releases it, until told to stop.
pub async fn run_claimer(workload: Arc<Workload>, claimer_idx: usize) {
    let mut random = SplitMix64::new(workload.seed ^ (0x434c_4149 + claimer_idx as u64));
    let mut n = 0u64;
    // Seats this claimer may hold: their releases were not answered.
    let mut unreleased: Vec<(usize, Hash)> = Vec::new();
    while !workload.stop_writes.load(Ordering::Acquire) {
        if let Some((seat, hash)) = unreleased.pop() {
            if !release(&workload, seat, hash, &mut random).await {
                unreleased.insert(0, (seat, hash));
            }
        }
        n += 1;
        let fact = json!({
            "type": CLAIMANT_TYPE,
            "fields": {"run": workload.run_id, "claimer": claimer_idx, "n": n},
            "predecessors": {},
        });
        let hash = canonical_of(&fact).expect("a valid claimant").hash;
        if let Written::Acked(_) = write_one(&workload, &fact, None, &mut random).await {
            let seat = random.in_range(0, SEATS as u64 - 1) as usize;
            match claim(&workload, seat, hash, &mut random).await {
                Some(done) if done.won => {
                    let hold_ms = if random.in_range(0, 99) < LONG_HOLD_PERCENT {
                        random.in_range(500, 2_000)
                    } else {
                        random.in_range(0, 100)
                    };
                    tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                    if !release(&workload, seat, hash, &mut random).await {
                        unreleased.push((seat, hash));
                    }
                }
                Some(_) => {}
                // It may have won: free the seat if it did.
                None => {
                    if !release(&workload, seat, hash, &mut random).await {
                        unreleased.push((seat, hash));
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(random.in_range(10, 60))).await;
    }
}

/// Claims `seat` with `fact`, retrying attempts without an answer; the
/// answer, if one came.
async fn claim(
    workload: &Workload,
    seat: usize,
    fact: Hash,
    random: &mut SplitMix64,
) -> Option<ClaimDone> {
    let key = seat_key(&workload.run_id, seat);
    let fact_text = fact.to_hex();
    let sent = Instant::now();
    workload.history.with(|recorded| {
        recorded.coordination.claims.offered.insert((seat, fact));
    });
    for attempt in 0..ATTEMPTS_MAX {
        let base = workload.random_base(random).to_string();
        match workload.api.claim(&base, &key, &fact_text).await {
            Answer::Done(body) => {
                let answered = Instant::now();
                let parsed = parse_claim_answer(&body);
                return workload.history.with(|recorded| {
                    let Some((winner, won, generation, seq, claimed)) = parsed else {
                        recorded.live_violations.push((
                            ANSWERS_MATCH_LOG.into(),
                            format!("claim of {key}: an answer without its members: {body}"),
                        ));
                        return None;
                    };
                    let done = ClaimDone {
                        seat,
                        fact,
                        winner,
                        won,
                        generation,
                        seq,
                        claimed,
                        sent_ns: recorded.ns_since_start(sent),
                        answered_ns: recorded.ns_since_start(answered),
                    };
                    recorded.coordination.claims.answers.push(done);
                    Some(done)
                });
            }
            Answer::Refused(429, _) => tokio::time::sleep(Duration::from_millis(50)).await,
            Answer::Refused(status, code) => {
                workload.history.with(|recorded| {
                    recorded.coordination.claims.refused += 1;
                    recorded.live_violations.push((
                        ANSWERS_MATCH_LOG.into(),
                        format!("a claim of {key} with acknowledged fact {fact} was refused: {status} {code}"),
                    ));
                });
                return None;
            }
            Answer::Unknown(..) => tokio::time::sleep(retry_pause(random, attempt)).await,
        }
    }
    workload
        .history
        .with(|recorded| recorded.coordination.claims.unknown += 1);
    None
}

/// `fact`, `won`, `generation`, `seq` and `claimed` of a claim's answer.
fn parse_claim_answer(body: &Value) -> Option<(Hash, bool, u64, u64, Hash)> {
    Some((
        Hash::from_hex(body["fact"].as_str()?).ok()?,
        body["won"].as_bool()?,
        body["generation"].as_u64()?,
        body["seq"].as_u64()?,
        Hash::from_hex(body["claimed"].as_str()?).ok()?,
    ))
}

/// Releases `seat` held by `fact`, retrying attempts without an answer;
/// true when an answer came.
async fn release(workload: &Workload, seat: usize, fact: Hash, random: &mut SplitMix64) -> bool {
    let key = seat_key(&workload.run_id, seat);
    let fact_text = fact.to_hex();
    for attempt in 0..ATTEMPTS_MAX {
        let base = workload.random_base(random).to_string();
        match workload.api.release_claim(&base, &key, &fact_text).await {
            Answer::Done(body) => {
                let released = body["released"]
                    .as_str()
                    .and_then(|text| Hash::from_hex(text).ok());
                let seq = body["seq"].as_u64();
                workload.history.with(|recorded| match (released, seq) {
                    (Some(released), Some(seq)) => {
                        recorded.coordination.claims.releases.push(ReleaseDone {
                            seat,
                            fact,
                            released,
                            seq,
                        })
                    }
                    _ => recorded.live_violations.push((
                        ANSWERS_MATCH_LOG.into(),
                        format!("release of {key}: an answer without its members: {body}"),
                    )),
                });
                return true;
            }
            Answer::Refused(409, _) => {
                workload
                    .history
                    .with(|recorded| recorded.coordination.claims.releases_not_holder += 1);
                return true;
            }
            Answer::Refused(429, _) => tokio::time::sleep(Duration::from_millis(50)).await,
            Answer::Refused(status, code) => {
                workload.history.with(|recorded| {
                    recorded.live_violations.push((
                        ANSWERS_MATCH_LOG.into(),
                        format!("a release of {key} by {fact} was refused: {status} {code}"),
                    ))
                });
                return true;
            }
            Answer::Unknown(..) => tokio::time::sleep(retry_pause(random, attempt)).await,
        }
    }
    false
}

/// A `Cairn.Claimed` fact of the run in one server's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedClaim {
    /// Its seat.
    pub seat: usize,
    /// Its generation.
    pub generation: u64,
    /// The winner (its `fact` predecessor).
    pub winner: Hash,
    /// Its own hash.
    pub hash: Hash,
    /// Its seq.
    pub seq: u64,
}

/// A `Cairn.ClaimReleased` fact of the run in one server's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedRelease {
    /// Its seat.
    pub seat: usize,
    /// The generation released.
    pub generation: u64,
    /// The `Cairn.Claimed` fact it releases (its `claim` predecessor).
    pub claim: Hash,
    /// Its own hash.
    pub hash: Hash,
    /// Its seq.
    pub seq: u64,
}

/// What one server's log holds of the run's claims, in log order.
#[derive(Debug)]
pub struct ClaimLog {
    prefix: String,
    /// `Cairn.Claimed` facts, in seq order.
    pub claims: Vec<LoggedClaim>,
    /// `Cairn.ClaimReleased` facts, in seq order.
    pub releases: Vec<LoggedRelease>,
    /// Entries of the run's keys that lack a member.
    pub malformed: Vec<String>,
}

impl ClaimLog {
    /// An empty log of run `run_id`'s claims.
    pub fn new(run_id: &str) -> ClaimLog {
        ClaimLog {
            prefix: seat_prefix(run_id),
            claims: Vec::new(),
            releases: Vec::new(),
            malformed: Vec::new(),
        }
    }

    /// Keeps `fact` at `seq` if it is a decision on one of the run's keys.
    pub fn observe(&mut self, seq: u64, hash: Hash, fact: &Value) {
        let key = fact["fields"]["key"].as_str().unwrap_or_default();
        let Some(seat) = index_after(key, &self.prefix) else {
            return;
        };
        let generation = fact["fields"]["generation"].as_u64();
        match fact["type"].as_str() {
            Some(CLAIMED_TYPE) => match (generation, predecessor(fact, "fact")) {
                (Some(generation), Some(winner)) => self.claims.push(LoggedClaim {
                    seat,
                    generation,
                    winner,
                    hash,
                    seq,
                }),
                _ => self.malformed.push(format!("seq {seq}: {fact}")),
            },
            Some(CLAIM_RELEASED_TYPE) => match (generation, predecessor(fact, "claim")) {
                (Some(generation), Some(claim)) => self.releases.push(LoggedRelease {
                    seat,
                    generation,
                    claim,
                    hash,
                    seq,
                }),
                _ => self.malformed.push(format!("seq {seq}: {fact}")),
            },
            _ => {}
        }
    }
}

/// Judges one server's log of claims against the recorded answers.
pub fn judge(server_idx: usize, log: &ClaimLog, records: &ClaimRecords, verdicts: &mut Verdicts) {
    for problem in &log.malformed {
        verdicts.violation(
            ANSWERS_MATCH_LOG,
            format!("server {server_idx}: a claim decision without its members: {problem}"),
        );
    }
    let claims_by_hash: HashMap<Hash, &LoggedClaim> =
        log.claims.iter().map(|claim| (claim.hash, claim)).collect();
    let releases_by_hash: HashMap<Hash, &LoggedRelease> = log
        .releases
        .iter()
        .map(|release| (release.hash, release))
        .collect();
    let release_seq_by_claim: HashMap<Hash, u64> = log
        .releases
        .iter()
        .map(|release| (release.claim, release.seq))
        .collect();
    // One winner per key and generation; generations 1, 2, 3, … in log
    // order, each won only after the one before was released.
    let mut last_by_seat: HashMap<usize, &LoggedClaim> = HashMap::new();
    let mut winners: HashMap<(usize, u64), &LoggedClaim> = HashMap::new();
    for claim in &log.claims {
        verdicts.examined(ONE_WINNER, 1);
        let key = format!("seat {}", claim.seat);
        if let Some(other) = winners.insert((claim.seat, claim.generation), claim) {
            verdicts.violation(
                ONE_WINNER,
                format!(
                    "server {server_idx}: {key} generation {} has two winners: {} (seq {}) and {} (seq {})",
                    claim.generation, other.winner, other.seq, claim.winner, claim.seq
                ),
            );
        }
        let previous = last_by_seat.insert(claim.seat, claim);
        let expected = previous.map_or(1, |previous| previous.generation + 1);
        if claim.generation != expected {
            verdicts.violation(
                ONE_WINNER,
                format!(
                    "server {server_idx}: {key} generation {} (seq {}) follows generation {} in the log",
                    claim.generation,
                    claim.seq,
                    expected - 1
                ),
            );
        }
        if let Some(previous) = previous {
            let released_before = release_seq_by_claim
                .get(&previous.hash)
                .is_some_and(|&seq| previous.seq < seq && seq < claim.seq);
            if !released_before {
                verdicts.violation(
                    ONE_WINNER,
                    format!(
                        "server {server_idx}: {key} was won by {} (generation {}, seq {}) while generation {} (seq {}) was not released",
                        claim.winner, claim.generation, claim.seq, previous.generation, previous.seq
                    ),
                );
            }
        }
        if !records.offered.contains(&(claim.seat, claim.winner)) {
            verdicts.violation(
                ANSWERS_MATCH_LOG,
                format!(
                    "server {server_idx}: {key} generation {} was won by {}, which never claimed it",
                    claim.generation, claim.winner
                ),
            );
        }
    }
    for release in &log.releases {
        let released = claims_by_hash.get(&release.claim);
        let matches = released.is_some_and(|claim| {
            claim.seat == release.seat
                && claim.generation == release.generation
                && claim.seq < release.seq
        });
        if !matches {
            verdicts.violation(
                ONE_WINNER,
                format!(
                    "server {server_idx}: the release at seq {} (seat {} generation {}) releases no earlier claim of that generation",
                    release.seq, release.seat, release.generation
                ),
            );
        }
    }
    // Every answer agrees with the log.
    for answer in &records.answers {
        verdicts.examined(ANSWERS_MATCH_LOG, 1);
        let what = format!(
            "server {server_idx}: a claim of seat {} by {} answered winner {} generation {} at seq {}",
            answer.seat, answer.fact, answer.winner, answer.generation, answer.seq
        );
        if answer.won != (answer.winner == answer.fact) {
            verdicts.violation(
                ANSWERS_MATCH_LOG,
                format!("{what} with won: {}", answer.won),
            );
        }
        match claims_by_hash.get(&answer.claimed) {
            None => verdicts.violation(
                ANSWERS_MATCH_LOG,
                format!(
                    "{what}, but its Cairn.Claimed fact {} is not in the log",
                    answer.claimed
                ),
            ),
            Some(logged)
                if logged.seat != answer.seat
                    || logged.generation != answer.generation
                    || logged.winner != answer.winner
                    || logged.seq != answer.seq =>
            {
                verdicts.violation(
                    ANSWERS_MATCH_LOG,
                    format!(
                        "{what}, but the log holds seat {} winner {} generation {} at seq {}",
                        logged.seat, logged.winner, logged.generation, logged.seq
                    ),
                )
            }
            Some(_) => {}
        }
    }
    for release in &records.releases {
        verdicts.examined(ANSWERS_MATCH_LOG, 1);
        let matches = releases_by_hash
            .get(&release.released)
            .is_some_and(|logged| {
                logged.seat == release.seat
                    && logged.seq == release.seq
                    && claims_by_hash
                        .get(&logged.claim)
                        .is_some_and(|claim| claim.winner == release.fact)
            });
        if !matches {
            verdicts.violation(
                ANSWERS_MATCH_LOG,
                format!(
                    "server {server_idx}: a release of seat {} by {} was answered (fact {} at seq {}), but the log does not hold that release of that holder",
                    release.seat, release.fact, release.released, release.seq
                ),
            );
        }
    }
}

/// Judges the answers among themselves: two answers never name two
/// winners of one generation, and a claim sent after another was answered
/// never names an older generation of the key (only definite evidence
/// counts: the later claim's first attempt was sent after the earlier
/// answer came).
pub fn judge_history(records: &ClaimRecords, verdicts: &mut Verdicts) {
    let mut winners: HashMap<(usize, u64), Hash> = HashMap::new();
    let mut by_seat: HashMap<usize, Vec<&ClaimDone>> = HashMap::new();
    for answer in &records.answers {
        let winner = *winners
            .entry((answer.seat, answer.generation))
            .or_insert(answer.winner);
        if winner != answer.winner {
            verdicts.violation(
                ONE_WINNER,
                format!(
                    "seat {} generation {} was answered with two winners: {winner} and {}",
                    answer.seat, answer.generation, answer.winner
                ),
            );
        }
        by_seat.entry(answer.seat).or_default().push(answer);
    }
    for (seat, mut answers) in by_seat {
        verdicts.examined(NO_GOING_BACK, answers.len() as u64);
        let mut by_answer = answers.clone();
        by_answer.sort_by_key(|answer| answer.answered_ns);
        answers.sort_by_key(|answer| answer.sent_ns);
        let mut answered_idx = 0;
        let mut newest: Option<&ClaimDone> = None;
        for answer in answers {
            while answered_idx < by_answer.len()
                && by_answer[answered_idx].answered_ns < answer.sent_ns
            {
                let candidate = by_answer[answered_idx];
                if newest.is_none_or(|newest| candidate.generation > newest.generation) {
                    newest = Some(candidate);
                }
                answered_idx += 1;
            }
            if let Some(newest) = newest {
                if answer.generation < newest.generation {
                    verdicts.violation(
                        NO_GOING_BACK,
                        format!(
                            "seat {seat}: a claim sent at {} ms was answered generation {} (winner {}), after generation {} (winner {}) had been answered at {} ms",
                            answer.sent_ns / 1_000_000,
                            answer.generation,
                            answer.winner,
                            newest.generation,
                            newest.winner,
                            newest.answered_ns / 1_000_000
                        ),
                    );
                }
            }
        }
    }
}

/// Adds the claims to the summary.
pub fn summarize(
    records: &ClaimRecords,
    first_log: Option<&ClaimLog>,
    summary: &mut CoordinationSummary,
) {
    summary.claims_won = records.answers.iter().filter(|answer| answer.won).count() as u64;
    summary.claims_lost = records.answers.len() as u64 - summary.claims_won;
    summary.claims_refused = records.refused;
    summary.claims_unknown = records.unknown;
    summary.claim_releases = records.releases.len() as u64;
    summary.claim_generations_logged = first_log.map_or(0, |log| log.claims.len() as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(byte: u8) -> Hash {
        Hash::of_bytes(&[byte])
    }

    fn claimed(seat: usize, generation: u64, winner: Hash) -> Value {
        json!({"type": CLAIMED_TYPE,
            "fields": {"key": seat_key("r1", seat), "generation": generation, "deployment": "d"},
            "predecessors": {"fact": winner.to_hex()}})
    }

    fn released(seat: usize, generation: u64, claim: Hash) -> Value {
        json!({"type": CLAIM_RELEASED_TYPE,
            "fields": {"key": seat_key("r1", seat), "generation": generation, "deployment": "d"},
            "predecessors": {"claim": claim.to_hex()}})
    }

    fn answer(
        seat: usize,
        fact: Hash,
        winner: Hash,
        generation: u64,
        seq: u64,
        claimed: Hash,
        at_ms: u64,
    ) -> ClaimDone {
        ClaimDone {
            seat,
            fact,
            winner,
            won: fact == winner,
            generation,
            seq,
            claimed,
            sent_ns: at_ms * 1_000_000,
            answered_ns: (at_ms + 1) * 1_000_000,
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

    /// Seat 0: won by fact 1 (gen 1, seq 10), released (seq 11), won by
    /// fact 2 (gen 2, seq 12); the answers and releases as recorded.
    fn consistent() -> (ClaimLog, ClaimRecords) {
        let mut log = ClaimLog::new("r1");
        log.observe(10, hash(101), &claimed(0, 1, hash(1)));
        log.observe(11, hash(102), &released(0, 1, hash(101)));
        log.observe(12, hash(103), &claimed(0, 2, hash(2)));
        // Another run's key is not the run's business.
        log.observe(
            13,
            hash(104),
            &json!({"type": CLAIMED_TYPE,
            "fields": {"key": "check-r2-seat-0", "generation": 1, "deployment": "d"},
            "predecessors": {"fact": hash(9).to_hex()}}),
        );
        let mut records = ClaimRecords::default();
        records
            .offered
            .extend([(0, hash(1)), (0, hash(2)), (0, hash(3))]);
        records.answers = vec![
            answer(0, hash(1), hash(1), 1, 10, hash(101), 1),
            answer(0, hash(3), hash(1), 1, 10, hash(101), 2),
            answer(0, hash(2), hash(2), 2, 12, hash(103), 5),
            answer(0, hash(3), hash(2), 2, 12, hash(103), 7),
        ];
        records.releases = vec![ReleaseDone {
            seat: 0,
            fact: hash(1),
            released: hash(102),
            seq: 11,
        }];
        (log, records)
    }

    #[test]
    fn a_consistent_history_passes() {
        let (log, records) = consistent();
        assert_eq!(log.claims.len(), 2);
        let mut verdicts = Verdicts::default();
        judge(0, &log, &records, &mut verdicts);
        judge_history(&records, &mut verdicts);
        let results = verdicts.into_results();
        for result in &results {
            assert!(result.passed(), "{result:?}");
        }
        let examined = |name: &str| results.iter().find(|r| r.name == name).unwrap().examined;
        assert_eq!(examined(ONE_WINNER), 2);
        assert_eq!(examined(ANSWERS_MATCH_LOG), 5);
        assert_eq!(examined(NO_GOING_BACK), 4);
    }

    #[test]
    fn two_winners_of_one_generation_are_reported() {
        let (mut log, mut records) = consistent();
        // A second Cairn.Claimed of generation 2 with another winner.
        log.observe(14, hash(105), &claimed(0, 2, hash(3)));
        let mut verdicts = Verdicts::default();
        judge(0, &log, &records, &mut verdicts);
        let found = violations(verdicts, ONE_WINNER);
        assert!(
            found.iter().any(|v| v.contains("has two winners")),
            "{found:?}"
        );
        // Two answers naming two winners of one generation, without the log.
        records
            .answers
            .push(answer(0, hash(3), hash(3), 2, 14, hash(105), 9));
        let mut verdicts = Verdicts::default();
        judge_history(&records, &mut verdicts);
        let found = violations(verdicts, ONE_WINNER);
        assert!(found.iter().any(|v| v.contains("two winners")), "{found:?}");
    }

    #[test]
    fn a_key_won_again_without_a_release_is_reported() {
        let mut log = ClaimLog::new("r1");
        log.observe(10, hash(101), &claimed(0, 1, hash(1)));
        log.observe(12, hash(103), &claimed(0, 2, hash(2)));
        let mut records = ClaimRecords::default();
        records.offered.extend([(0, hash(1)), (0, hash(2))]);
        let mut verdicts = Verdicts::default();
        judge(0, &log, &records, &mut verdicts);
        let found = violations(verdicts, ONE_WINNER);
        assert!(
            found.iter().any(|v| v.contains("was not released")),
            "{found:?}"
        );
    }

    #[test]
    fn a_won_answer_missing_from_the_log_or_naming_another_winner_is_reported() {
        let (log, mut records) = consistent();
        // Won, but its Cairn.Claimed fact is not in the log.
        records
            .answers
            .push(answer(0, hash(4), hash(4), 3, 20, hash(120), 9));
        // Answered a winner the log does not hold for that generation.
        records
            .answers
            .push(answer(0, hash(3), hash(3), 1, 10, hash(101), 9));
        let mut verdicts = Verdicts::default();
        judge(0, &log, &records, &mut verdicts);
        let found = violations(verdicts, ANSWERS_MATCH_LOG);
        assert!(
            found.iter().any(|v| v.contains("is not in the log")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|v| v.contains("but the log holds")),
            "{found:?}"
        );
    }

    #[test]
    fn a_winner_that_never_claimed_is_reported() {
        let (mut log, records) = consistent();
        log.observe(14, hash(104), &released(0, 2, hash(103)));
        log.observe(15, hash(105), &claimed(0, 3, hash(77)));
        let mut verdicts = Verdicts::default();
        judge(0, &log, &records, &mut verdicts);
        let found = violations(verdicts, ANSWERS_MATCH_LOG);
        assert!(
            found.iter().any(|v| v.contains("never claimed")),
            "{found:?}"
        );
    }

    #[test]
    fn an_answer_that_goes_back_a_generation_is_reported() {
        let (_, mut records) = consistent();
        // Sent at 20 ms, after generation 2 was answered at 8 ms, but
        // answered generation 1.
        records
            .answers
            .push(answer(0, hash(3), hash(1), 1, 10, hash(101), 20));
        let mut verdicts = Verdicts::default();
        judge_history(&records, &mut verdicts);
        let found = violations(verdicts, NO_GOING_BACK);
        assert_eq!(found.len(), 1, "{found:?}");
    }
}
