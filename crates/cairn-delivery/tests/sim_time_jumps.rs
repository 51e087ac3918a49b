//! Invariant, checked over seeded simulations with clocks that jump
//! forward and step back: **nothing happens early**.
//!
//! * A message is not delivered before it is due: its `cairn_not_before`,
//!   the delay of its last nack, or the backoff floor after its last failed
//!   attempt (half the ceiling `min(max_ms, initial_ms · 2^(n−1))`, counted
//!   from the lease's end when the lease ran out), or the time of its
//!   replay. "Before" is measured by the latest time the state machine has
//!   been given in this incarnation: once it has seen a time, a clock that
//!   steps back cannot make it forget what fell due.
//! * A lease does not run out before its end (after the latest successful
//!   extend), measured by the time of the call that ends it.
//!
//! Across a crash, a due time written by a lost change is undone, as the
//! disk the server restarts from never saw it.

mod common;

use std::collections::HashMap;

use cairn_delivery::TokenStatus;
use common::oracle::{Leases, Violation};
use common::simulation::{handmade_run, token, Event, Run, TokenOperation};
use common::sweep::sweep;

const INVARIANT: &str = "nothing happens early";

/// One reason a message may not be delivered before some time.
#[derive(Clone, Debug)]
struct Due {
    at_ms: u64,
    why: String,
    batch: u64,
}

/// Records a new due time of `seq`.
fn set_due(
    due: &mut HashMap<u64, Vec<Due>>,
    seq: u64,
    at_ms: u64,
    why: String,
    batch: Option<u64>,
) {
    let batch = batch.unwrap_or(u64::MAX);
    due.entry(seq).or_default().push(Due { at_ms, why, batch });
}

fn check(run: &Run) -> Result<(), Violation> {
    let violation = |detail: String| Err(Violation::new(INVARIANT, detail));
    let mut leases = Leases::default();
    // Per message, its due times over time; the last one holds.
    let mut due: HashMap<u64, Vec<Due>> = HashMap::new();
    for (index, event) in run.history.iter().enumerate() {
        match event {
            Event::Published {
                seq, not_before_ms, ..
            } => {
                let at_ms = not_before_ms.unwrap_or(0);
                set_due(
                    &mut due,
                    *seq,
                    at_ms,
                    "its cairn_not_before".into(),
                    Some(0),
                );
            }
            Event::Leased { seq, now_ms, .. } => {
                let server_now_ms = leases.high_water_ms.max(*now_ms);
                let last_due = due.get(seq).and_then(|due| due.last());
                if let Some(last_due) = last_due.filter(|due| due.at_ms > server_now_ms) {
                    return violation(format!(
                        "#{index}: message {seq} delivered at server time {server_now_ms}, before it \
                         was due at {} ({}){}",
                        last_due.at_ms,
                        last_due.why,
                        run.describe_message(*seq, index)
                    ));
                }
            }
            Event::Answered {
                operation: TokenOperation::Nack { now_ms, delay_ms },
                token: Some(token),
                status: TokenStatus::Nacked,
                batch,
                ..
            } => {
                if let Some(attempt) = leases.attempt_of(token) {
                    let (at_ms, why) = match delay_ms {
                        Some(delay_ms) => (
                            now_ms + delay_ms,
                            format!("nacked at {now_ms} with a delay"),
                        ),
                        None => (
                            now_ms + run.config.backoff_floor_ms(attempt),
                            format!("nacked at {now_ms} after attempt {attempt}"),
                        ),
                    };
                    set_due(&mut due, token.seq, at_ms, why, *batch);
                }
            }
            Event::LeaseExpired {
                seq,
                attempts,
                now_ms,
                batch,
                ..
            } => {
                let Some(open) = leases.open.get(seq) else {
                    return violation(format!("#{index}: message {seq} expired without a lease"));
                };
                if open.expires_at_ms > *now_ms {
                    return violation(format!(
                        "#{index}: the lease of message {seq} ran out at {now_ms}, before its end at {}{}",
                        open.expires_at_ms,
                        run.describe_message(*seq, index)
                    ));
                }
                let at_ms = open.expires_at_ms + run.config.backoff_floor_ms(*attempts);
                let why = format!(
                    "its lease ended at {} after attempt {attempts}",
                    open.expires_at_ms
                );
                set_due(&mut due, *seq, at_ms, why, *batch);
            }
            Event::Replayed {
                now_ms,
                seqs,
                batch,
                ..
            } => {
                for seq in seqs {
                    set_due(
                        &mut due,
                        *seq,
                        *now_ms,
                        format!("replayed at {now_ms}"),
                        *batch,
                    );
                }
            }
            Event::Crashed {
                durable_through_batch,
            } => {
                for due in due.values_mut() {
                    while due
                        .last()
                        .is_some_and(|due| due.batch > *durable_through_batch)
                    {
                        due.pop();
                    }
                }
            }
            _ => {}
        }
        leases.observe(event);
    }
    Ok(())
}

#[test]
fn nothing_is_delivered_or_expired_early_whatever_the_clock_does() {
    sweep("sim_time_jumps", 6_000_000, check);
}

fn published(seq: u64, not_before_ms: Option<u64>) -> Event {
    Event::Published {
        seq,
        key: None,
        not_before_ms,
    }
}

fn leased(seq: u64, lease_id: u64, attempt: u32, now_ms: u64) -> Event {
    Event::Leased {
        consumer: 0,
        seq,
        token: token(seq, lease_id),
        attempt,
        now_ms,
        expires_at_ms: now_ms + 1_000,
    }
}

#[test]
fn checker_reports_deliveries_before_not_before_and_before_the_nack_delay() {
    let too_soon = handmade_run(
        3,
        None,
        None,
        vec![published(1, Some(500)), leased(1, 7, 1, 499)],
    );
    assert!(check(&too_soon)
        .unwrap_err()
        .detail
        .contains("its cairn_not_before"));
    // Once the server saw time 500, a clock stepping back does not matter.
    let after_step_back = handmade_run(
        3,
        None,
        None,
        vec![
            published(1, Some(500)),
            Event::Advanced { now_ms: 500 },
            leased(1, 7, 1, 100),
        ],
    );
    assert_eq!(check(&after_step_back), Ok(()));
    let before_the_delay = handmade_run(
        3,
        None,
        None,
        vec![
            published(1, None),
            leased(1, 7, 1, 0),
            Event::Answered {
                consumer: 0,
                operation: TokenOperation::Nack {
                    now_ms: 10,
                    delay_ms: Some(200),
                },
                token: Some(token(1, 7)),
                status: TokenStatus::Nacked,
                batch: Some(1),
                answered: true,
            },
            leased(1, 8, 2, 209),
        ],
    );
    assert!(check(&before_the_delay)
        .unwrap_err()
        .detail
        .contains("with a delay"));
}

#[test]
fn checker_reports_an_early_expiry_and_an_early_retry_after_it() {
    let expiry = |now_ms: u64| Event::LeaseExpired {
        seq: 1,
        attempts: 1,
        dead: false,
        now_ms,
        batch: Some(1),
    };
    let early_expiry = handmade_run(
        3,
        None,
        None,
        vec![published(1, None), leased(1, 7, 1, 0), expiry(999)],
    );
    assert!(check(&early_expiry)
        .unwrap_err()
        .detail
        .contains("before its end"));
    // The backoff floor after one failure is initial_ms / 2 = 50.
    let early_retry = handmade_run(
        3,
        None,
        None,
        vec![
            published(1, None),
            leased(1, 7, 1, 0),
            expiry(1_000),
            leased(1, 8, 2, 1_049),
        ],
    );
    assert!(check(&early_retry)
        .unwrap_err()
        .detail
        .contains("lease ended at 1000"));
}
