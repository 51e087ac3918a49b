//! Invariant, checked over seeded simulations: **attempts count failures,
//! and dead letters come exactly after `max_attempts`**.
//!
//! * Every lease reports attempt = the message's failed attempts + 1, never
//!   more than `max_attempts`. Failures are nacks of the current lease and
//!   lease expiries; after a restart only the recorded failures count (a
//!   lease voided by a crash is not a failure), and a replay starts over.
//! * A failure of the last attempt makes a dead letter, and nothing else
//!   does; a dead letter records `max_attempts` attempts.
//! * Dead letters and discarded ones are not delivered. A replay brings back
//!   exactly the dead letters asked for (all of them up to the window's
//!   room, or those named), never anything else; a discard applies only to
//!   a dead letter, and a discarded message is never replayed.
//! * The `dead` and `discarded` counters match.

mod common;

use std::collections::{BTreeSet, HashMap};

use cairn_delivery::{MessageStatus, TokenStatus};
use common::oracle::{Fate, Fates, Leases, Violation};
use common::simulation::{handmade_run, token, Event, Run, TokenOperation};
use common::sweep::sweep;

const INVARIANT: &str = "attempts and dead letters";

/// The log's own batch: never undone by a crash.
const LOG_BATCH: u64 = 0;

/// What the checker follows per message.
#[derive(Debug, Default)]
struct Attempts {
    /// The attempts of the message's record over time, with the batch that
    /// wrote each, so a crash can undo lost ones.
    recorded: HashMap<u64, Vec<(u32, u64)>>,
    /// The attempts the running state machine knows of.
    in_memory: HashMap<u64, u32>,
}

impl Attempts {
    fn record(&mut self, seq: u64, attempts: u32, batch: Option<u64>) {
        self.recorded
            .entry(seq)
            .or_default()
            .push((attempts, batch.unwrap_or(u64::MAX)));
        self.in_memory.insert(seq, attempts);
    }
}

fn check(run: &Run) -> Result<(), Violation> {
    let violation = |detail: String| Err(Violation::new(INVARIANT, detail));
    let max_attempts = run.config.max_attempts;
    let mut fates = Fates::default();
    let mut leases = Leases::default();
    let mut attempts = Attempts::default();
    // Messages whose last attempt failed and that must turn into dead
    // letters in the same call.
    let mut owed_dead_letters: BTreeSet<u64> = BTreeSet::new();
    for (index, event) in run.history.iter().enumerate() {
        let same_call = matches!(event, Event::Answered { .. } | Event::DeadLettered { .. });
        if let (false, Some(seq)) = (same_call, owed_dead_letters.first()) {
            return violation(format!(
                "#{index}: message {seq} failed its last attempt but is not a dead letter{}",
                run.describe_message(*seq, index)
            ));
        }
        match event {
            Event::Published { seq, .. } => attempts.record(*seq, 0, Some(LOG_BATCH)),
            Event::Leased { seq, attempt, .. } => {
                let fate = fates.fate(*seq);
                if matches!(fate, Some(Fate::Dead | Fate::Discarded)) {
                    return violation(format!(
                        "#{index}: message {seq} was delivered while {fate:?}{}",
                        run.describe_message(*seq, index)
                    ));
                }
                let expected = attempts.in_memory.get(seq).copied().unwrap_or(0) + 1;
                if *attempt != expected || *attempt > max_attempts {
                    return violation(format!(
                        "#{index}: message {seq} was delivered as attempt {attempt}, expected \
                         {expected} (max_attempts {max_attempts}){}",
                        run.describe_message(*seq, index)
                    ));
                }
                attempts.in_memory.insert(*seq, *attempt);
            }
            Event::Answered {
                operation: TokenOperation::Nack { .. },
                token: Some(token),
                status: TokenStatus::Nacked,
                batch,
                ..
            } => {
                // Only a nack of the current lease fails an attempt; a late
                // one only reschedules.
                let open = leases.open.get(&token.seq);
                if let Some(open) = open.filter(|open| open.token == *token) {
                    attempts.record(token.seq, open.attempt, *batch);
                    if open.attempt >= max_attempts {
                        owed_dead_letters.insert(token.seq);
                    }
                }
            }
            Event::LeaseExpired {
                seq,
                attempts: recorded,
                dead,
                batch,
                ..
            } => {
                let Some(open) = leases.open.get(seq) else {
                    return violation(format!(
                        "#{index}: message {seq} expired without an open lease{}",
                        run.describe_message(*seq, index)
                    ));
                };
                if *recorded != open.attempt || *dead != (open.attempt >= max_attempts) {
                    return violation(format!(
                        "#{index}: the lease of attempt {} of message {seq} ran out and recorded \
                         {recorded} attempts, dead: {dead} (max_attempts {max_attempts}){}",
                        open.attempt,
                        run.describe_message(*seq, index)
                    ));
                }
                attempts.record(*seq, *recorded, *batch);
            }
            Event::DeadLettered {
                seq,
                attempts: recorded,
                ..
            } => {
                if *recorded != max_attempts {
                    return violation(format!(
                        "#{index}: message {seq} became a dead letter after {recorded} attempts \
                         (max_attempts {max_attempts}){}",
                        run.describe_message(*seq, index)
                    ));
                }
                owed_dead_letters.remove(seq);
            }
            Event::Replayed {
                requested,
                room,
                n_replayed,
                seqs,
                batch,
                ..
            } => {
                let dead: Vec<u64> = fates
                    .all()
                    .filter(|(_, fate)| *fate == Fate::Dead)
                    .map(|(seq, _)| seq)
                    .collect();
                let expected: BTreeSet<u64> = match requested {
                    None => dead.iter().take(*room).copied().collect(),
                    Some(asked) => asked
                        .iter()
                        .filter(|seq| dead.contains(seq))
                        .copied()
                        .collect(),
                };
                let replayed: BTreeSet<u64> = seqs.iter().copied().collect();
                if replayed != expected || *n_replayed != seqs.len() {
                    return violation(format!(
                        "#{index}: a replay of {requested:?} (room {room}) with dead letters {dead:?} \
                         brought back {seqs:?} and counted {n_replayed}, expected {expected:?}"
                    ));
                }
                for seq in seqs {
                    attempts.record(*seq, 0, *batch);
                }
            }
            Event::Discarded { seq, .. } => {
                let fate = fates.fate(*seq);
                if fate != Some(Fate::Dead) {
                    return violation(format!(
                        "#{index}: message {seq} was discarded while {fate:?}{}",
                        run.describe_message(*seq, index)
                    ));
                }
            }
            Event::Crashed {
                durable_through_batch,
            } => {
                for recorded in attempts.recorded.values_mut() {
                    while recorded
                        .last()
                        .is_some_and(|(_, batch)| batch > durable_through_batch)
                    {
                        recorded.pop();
                    }
                }
            }
            Event::Restarted { .. } => {
                attempts.in_memory = attempts
                    .recorded
                    .iter()
                    .filter_map(|(seq, recorded)| Some((*seq, recorded.last()?.0)))
                    .collect();
            }
            Event::Counted { counters } => {
                let dead = fates.count(Fate::Dead) as u64;
                let discarded = fates.count(Fate::Discarded) as u64;
                if counters.dead != dead || counters.discarded != discarded {
                    return violation(format!(
                        "#{index}: the counters say {} dead and {} discarded, the history {dead} and {discarded}",
                        counters.dead, counters.discarded
                    ));
                }
            }
            _ => {}
        }
        fates.observe(event);
        leases.observe(event);
    }
    for (seq, status, recorded) in &run.end.records {
        let dead_letter = matches!(status, MessageStatus::Dead | MessageStatus::Discarded);
        if dead_letter && *recorded != max_attempts {
            return violation(format!(
                "message {seq} ended {status:?} with {recorded} attempts (max_attempts {max_attempts})"
            ));
        }
    }
    Ok(())
}

#[test]
fn dead_letters_come_after_max_attempts_and_replay_and_discard_hold() {
    sweep("sim_attempts_and_dead_letters", 4_000_000, check);
}

fn published(seq: u64) -> Event {
    Event::Published {
        seq,
        key: None,
        not_before_ms: None,
    }
}

fn leased(seq: u64, lease_id: u64, attempt: u32) -> Event {
    Event::Leased {
        consumer: 0,
        seq,
        token: token(seq, lease_id),
        attempt,
        now_ms: 0,
        expires_at_ms: 1_000,
    }
}

fn nacked(seq: u64, lease_id: u64, batch: u64) -> Event {
    Event::Answered {
        consumer: 0,
        operation: TokenOperation::Nack {
            now_ms: 0,
            delay_ms: Some(0),
        },
        token: Some(token(seq, lease_id)),
        status: TokenStatus::Nacked,
        batch: Some(batch),
        answered: true,
    }
}

fn dead_lettered(seq: u64, attempts: u32, batch: u64) -> Event {
    Event::DeadLettered {
        seq,
        attempts,
        batch: Some(batch),
        answered: true,
    }
}

#[test]
fn checker_reports_an_early_dead_letter_and_a_missing_one() {
    let early = handmade_run(
        2,
        None,
        None,
        vec![
            published(1),
            leased(1, 7, 1),
            nacked(1, 7, 1),
            dead_lettered(1, 1, 1),
        ],
    );
    assert!(check(&early)
        .unwrap_err()
        .detail
        .contains("after 1 attempts"));
    let missing = handmade_run(
        1,
        None,
        None,
        vec![
            published(1),
            leased(1, 7, 1),
            nacked(1, 7, 1),
            Event::Advanced { now_ms: 0 },
        ],
    );
    assert!(check(&missing)
        .unwrap_err()
        .detail
        .contains("not a dead letter"));
}

#[test]
fn checker_reports_wrong_attempts_and_dead_letters_delivered() {
    let skipped = handmade_run(
        3,
        None,
        None,
        vec![
            published(1),
            leased(1, 7, 1),
            nacked(1, 7, 1),
            leased(1, 8, 3),
        ],
    );
    assert!(check(&skipped).unwrap_err().detail.contains("expected 2"));
    // After a crash that lost the nack, the next attempt is 1 again.
    let lost_nack = handmade_run(
        3,
        None,
        None,
        vec![
            published(1),
            leased(1, 7, 1),
            nacked(1, 7, 1),
            Event::Crashed {
                durable_through_batch: 0,
            },
            Event::Restarted { now_ms: 0 },
            leased(1, 8, 2),
        ],
    );
    assert!(check(&lost_nack).unwrap_err().detail.contains("expected 1"));
    let dead_delivered = handmade_run(
        1,
        None,
        None,
        vec![
            published(1),
            leased(1, 7, 1),
            nacked(1, 7, 1),
            dead_lettered(1, 1, 1),
            leased(1, 8, 1),
        ],
    );
    assert!(check(&dead_delivered)
        .unwrap_err()
        .detail
        .contains("while Some(Dead)"));
}

#[test]
fn checker_reports_bad_replays_and_discards() {
    let dead_history = vec![
        published(1),
        published(2),
        leased(1, 7, 1),
        nacked(1, 7, 1),
        dead_lettered(1, 1, 1),
    ];
    let replay = |seqs: Vec<u64>| Event::Replayed {
        now_ms: 0,
        requested: None,
        room: 10,
        n_replayed: seqs.len(),
        seqs,
        batch: Some(2),
        answered: true,
    };
    let with = |event: Event| {
        let mut history = dead_history.clone();
        history.push(event);
        handmade_run(1, None, None, history)
    };
    assert_eq!(check(&with(replay(vec![1]))), Ok(()));
    assert!(
        check(&with(replay(vec![1, 2]))).is_err(),
        "replayed a live message"
    );
    assert!(
        check(&with(replay(vec![]))).is_err(),
        "left a dead letter behind"
    );
    let discard_live = Event::Discarded {
        seq: 2,
        batch: Some(2),
        answered: true,
    };
    assert!(check(&with(discard_live))
        .unwrap_err()
        .detail
        .contains("discarded while"));
}
