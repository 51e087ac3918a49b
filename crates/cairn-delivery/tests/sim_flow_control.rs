//! Invariant, checked over seeded simulations: **flow control holds**.
//!
//! * A pull never returns more than it asked for.
//! * Nothing is delivered while the subscription is paused (as the disk
//!   has it across crashes: an answered pause survives a restart).
//! * With an ordering key, at most `max_in_flight_per_key` messages of one
//!   key are leased at once.
//! * The rate limit holds like a token bucket of one second's worth: within
//!   one server incarnation, the messages leased by the pulls from time `a`
//!   to the latest time `b` the state machine has seen are at most
//!   `rate · (1 + (b − a) / 1 s)`. (A restart starts with a full bucket: the
//!   bucket is not recorded.)
//! * The counters of the window agree with the history: leased messages
//!   (`in_flight`), tracked ones (never above `TRACKED_MESSAGES_MAX`), and
//!   deliveries, redeliveries and acks since the restart.

mod common;

use std::collections::HashMap;

use cairn_delivery::limits::TRACKED_MESSAGES_MAX;
use cairn_delivery::{Counters, TokenStatus};
use common::oracle::{Fate, Fates, Leases, Violation};
use common::simulation::{handmade_run, token, Event, Run, TokenOperation};
use common::sweep::sweep;

const INVARIANT: &str = "flow control";

/// The token-bucket bound over the pulls of one incarnation, kept in one
/// pass: for pulls i ≤ j, `1000·Σ n ≤ 1000·rate + rate·(H_j − t_i)`, where
/// `t_i` is pull i's time and `H_j` the latest time seen at pull j; the
/// largest `rate·t_i − 1000·(leases before i)` over i is all that matters.
/// Only a pull that reached the bucket (one not paused) can start a window:
/// a paused pull leaves the bucket's clock where it was.
#[derive(Debug, Default)]
struct RateBound {
    leased_total: i128,
    best_start: Option<(i128, u64)>,
}

impl RateBound {
    /// Adds pull j; returns the start time of a window that breaks the
    /// bound, if one does.
    fn add_pull(&mut self, rate: u32, pull: &BucketPull) -> Option<u64> {
        let rate = i128::from(rate);
        let start = rate * i128::from(pull.now_ms) - 1_000 * self.leased_total;
        let better = match self.best_start {
            Some((best, _)) => start > best,
            None => true,
        };
        if pull.reached_bucket && better {
            self.best_start = Some((start, pull.now_ms));
        }
        self.leased_total += pull.n_leased as i128;
        let (best, start_ms) = self.best_start?;
        let excess = 1_000 * self.leased_total - rate * i128::from(pull.high_water_ms) + best;
        (excess > 1_000 * rate).then_some(start_ms)
    }
}

/// One pull as the rate bound sees it.
#[derive(Debug)]
struct BucketPull {
    now_ms: u64,
    /// The latest time the state machine has seen, this pull's included.
    high_water_ms: u64,
    n_leased: usize,
    /// Whether the pull got past the pause check to the bucket.
    reached_bucket: bool,
}

/// What the counters should say since the last restart.
#[derive(Debug, Default)]
struct Tally {
    delivered: u64,
    redelivered: u64,
    acked: u64,
}

fn check(run: &Run) -> Result<(), Violation> {
    let violation = |detail: String| Err(Violation::new(INVARIANT, detail));
    let mut keys: HashMap<u64, u8> = HashMap::new();
    let mut fates = Fates::default();
    let mut leases = Leases::default();
    let mut rate_bound = RateBound::default();
    let mut tally = Tally::default();
    // Pause settings over time with the batch that wrote each.
    let mut paused: Vec<(bool, u64)> = vec![(false, 0)];
    for (index, event) in run.history.iter().enumerate() {
        match event {
            Event::Published {
                seq,
                key: Some(key),
                ..
            } => {
                keys.insert(*seq, *key);
            }
            Event::Pulled {
                max,
                n_leased,
                now_ms,
                ..
            } => {
                if n_leased > max {
                    return violation(format!("#{index}: a pull of {max} leased {n_leased}"));
                }
                if let Some(rate) = run.config.rate_limit_per_s {
                    let pull = BucketPull {
                        now_ms: *now_ms,
                        high_water_ms: leases.high_water_ms.max(*now_ms),
                        n_leased: *n_leased,
                        reached_bucket: paused.last().is_some_and(|(paused, _)| !paused),
                    };
                    if let Some(start_ms) = rate_bound.add_pull(rate, &pull) {
                        return violation(format!(
                            "#{index}: the pulls from time {start_ms} to server time {} leased more \
                             than a bucket of {rate}/s allows",
                            pull.high_water_ms
                        ));
                    }
                }
            }
            Event::Leased { seq, attempt, .. } => {
                if paused.last().is_some_and(|(paused, _)| *paused) {
                    return violation(format!("#{index}: message {seq} delivered while paused"));
                }
                if let (Some(window), Some(key)) = (run.config.max_in_flight_per_key, keys.get(seq))
                {
                    let in_flight: Vec<u64> = leases
                        .open
                        .keys()
                        .filter(|other| keys.get(other) == Some(key))
                        .copied()
                        .collect();
                    if in_flight.len() >= window as usize {
                        return violation(format!(
                            "#{index}: message {seq} of key {key} leased while {in_flight:?} of its \
                             key are leased (window {window}){}",
                            run.describe_message(*seq, index)
                        ));
                    }
                }
                tally.delivered += 1;
                if *attempt > 1 {
                    tally.redelivered += 1;
                }
            }
            Event::Answered {
                operation: TokenOperation::Ack,
                status: TokenStatus::Acked,
                ..
            } => tally.acked += 1,
            Event::PauseSet {
                paused: setting,
                batch,
                ..
            } => paused.push((*setting, batch.unwrap_or(u64::MAX))),
            Event::Crashed {
                durable_through_batch,
            } => {
                while paused
                    .last()
                    .is_some_and(|(_, batch)| batch > durable_through_batch)
                {
                    paused.pop();
                }
                rate_bound = RateBound::default();
                tally = Tally::default();
            }
            Event::Counted { counters } => {
                let expected = Counters {
                    delivered: tally.delivered,
                    redelivered: tally.redelivered,
                    acked: tally.acked,
                    in_flight: leases.open.len() as u64,
                    tracked_not_leased: (fates.count(Fate::Tracked) as u64)
                        .saturating_sub(leases.open.len() as u64),
                    ..*counters
                };
                let tracked = counters.in_flight + counters.tracked_not_leased;
                if *counters != expected || tracked > TRACKED_MESSAGES_MAX as u64 {
                    return violation(format!(
                        "#{index}: the counters are {counters:?}, the history says {expected:?}"
                    ));
                }
            }
            _ => {}
        }
        fates.observe(event);
        leases.observe(event);
    }
    Ok(())
}

#[test]
fn windows_rate_limits_and_pauses_hold() {
    sweep("sim_flow_control", 5_000_000, check);
}

fn published(seq: u64, key: u8) -> Event {
    Event::Published {
        seq,
        key: Some(key),
        not_before_ms: None,
    }
}

fn pulled_and_leased(seqs: &[u64], now_ms: u64) -> Vec<Event> {
    let mut events = vec![Event::Pulled {
        consumer: 0,
        now_ms,
        max: 10,
        n_leased: seqs.len(),
    }];
    events.extend(seqs.iter().map(|seq| Event::Leased {
        consumer: 0,
        seq: *seq,
        token: token(*seq, 7),
        attempt: 1,
        now_ms,
        expires_at_ms: now_ms + 1_000,
    }));
    events
}

#[test]
fn checker_reports_a_full_key_window_exceeded() {
    let mut history: Vec<Event> = (1..=3).map(|seq| published(seq, 0)).collect();
    history.extend(pulled_and_leased(&[1, 2], 0));
    assert_eq!(
        check(&handmade_run(3, Some(2), None, history.clone())),
        Ok(())
    );
    history.extend(pulled_and_leased(&[3], 0));
    let violation = check(&handmade_run(3, Some(2), None, history)).unwrap_err();
    assert!(violation.detail.contains("window 2"), "{violation:?}");
}

#[test]
fn checker_reports_a_rate_limit_exceeded() {
    let seqs: Vec<u64> = (1..=25).collect();
    let mut history: Vec<Event> = seqs.iter().map(|seq| published(*seq, *seq as u8)).collect();
    // A bucket of 10/s allows 10 at once and 5 more half a second later.
    history.extend(pulled_and_leased(&seqs[..10], 0));
    history.extend(pulled_and_leased(&seqs[10..15], 500));
    assert_eq!(
        check(&handmade_run(3, None, Some(10), history.clone())),
        Ok(())
    );
    history.extend(pulled_and_leased(&seqs[15..16], 500));
    let violation = check(&handmade_run(3, None, Some(10), history)).unwrap_err();
    assert!(violation.detail.contains("10/s"), "{violation:?}");
}

#[test]
fn checker_reports_a_delivery_while_paused_even_after_a_restart() {
    let mut history = vec![
        published(1, 0),
        Event::PauseSet {
            paused: true,
            batch: Some(1),
            answered: true,
        },
        Event::Crashed {
            durable_through_batch: 1,
        },
        Event::Restarted { now_ms: 0 },
    ];
    history.extend(pulled_and_leased(&[1], 0));
    let violation = check(&handmade_run(3, None, None, history)).unwrap_err();
    assert!(violation.detail.contains("while paused"), "{violation:?}");
}
