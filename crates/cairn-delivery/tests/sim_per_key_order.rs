//! Invariant, checked over seeded simulations: **per-key order**. With an
//! ordering key and a window of `max_in_flight_per_key` (m), a message is
//! leased only while fewer than m earlier messages of its key are still
//! unresolved (neither acked, dead nor discarded); with m = 1, a key's
//! messages go out strictly in log order, each after the one before it is
//! done. "Unresolved" follows the disk across crashes: an ack lost in a
//! crash makes its message unresolved again, and a replayed dead letter
//! goes back in line in front of the later messages of its key.

mod common;

use std::collections::HashMap;

use cairn_delivery::TokenStatus;
use common::oracle::{Fate, Fates, Violation};
use common::simulation::{handmade_run, token, Event, Run, TokenOperation};
use common::sweep::sweep;

const INVARIANT: &str = "per-key order";

fn check(run: &Run) -> Result<(), Violation> {
    let Some(window) = run.config.max_in_flight_per_key else {
        return Ok(());
    };
    let mut keys: HashMap<u64, u8> = HashMap::new();
    let mut fates = Fates::default();
    for (index, event) in run.history.iter().enumerate() {
        match event {
            Event::Published {
                seq,
                key: Some(key),
                ..
            } => {
                keys.insert(*seq, *key);
            }
            Event::Leased { seq, .. } => {
                if let Some(key) = keys.get(seq) {
                    let unresolved_before: Vec<u64> = fates
                        .all()
                        .take_while(|(other, _)| other < seq)
                        .filter(|(other, fate)| {
                            keys.get(other) == Some(key)
                                && matches!(fate, Fate::Published | Fate::Tracked)
                        })
                        .map(|(other, _)| other)
                        .collect();
                    if unresolved_before.len() >= window as usize {
                        return Err(Violation::new(
                            INVARIANT,
                            format!(
                                "#{index}: message {seq} of key {key} was leased while earlier messages \
                                 {unresolved_before:?} of its key are unresolved (window {window}){}",
                                run.describe_message(*seq, index)
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
        fates.observe(event);
    }
    Ok(())
}

#[test]
fn messages_of_one_key_are_delivered_in_log_order_within_the_window() {
    sweep("sim_per_key_order", 3_000_000, check);
}

fn keyed_history(extra: Vec<Event>) -> Vec<Event> {
    let mut history: Vec<Event> = (1..=3)
        .map(|seq| Event::Published {
            seq,
            key: Some(0),
            not_before_ms: None,
        })
        .collect();
    history.push(Event::Admitted {
        seqs: vec![1, 2, 3],
        batch: Some(1),
    });
    history.extend(extra);
    history
}

fn leased(seq: u64, lease_id: u64) -> Event {
    Event::Leased {
        consumer: 0,
        seq,
        token: token(seq, lease_id),
        attempt: 1,
        now_ms: 0,
        expires_at_ms: 1_000,
    }
}

#[test]
fn checker_reports_a_message_overtaking_an_earlier_one_of_its_key() {
    let overtaking = keyed_history(vec![leased(2, 7)]);
    let violation = check(&handmade_run(3, Some(1), None, overtaking.clone())).unwrap_err();
    assert!(violation.detail.contains("[1]"), "{violation:?}");
    // A window of two lets the second message go alongside the first.
    assert_eq!(check(&handmade_run(3, Some(2), None, overtaking)), Ok(()));
}

#[test]
fn checker_puts_a_lost_ack_back_in_line() {
    let ack_then_crash = keyed_history(vec![
        leased(1, 7),
        Event::Answered {
            consumer: 0,
            operation: TokenOperation::Ack,
            token: Some(token(1, 7)),
            status: TokenStatus::Acked,
            batch: Some(2),
            answered: false,
        },
        Event::Crashed {
            durable_through_batch: 1,
        },
        leased(2, 8),
    ]);
    let violation = check(&handmade_run(3, Some(1), None, ack_then_crash)).unwrap_err();
    assert!(violation.detail.contains("[1]"), "{violation:?}");
}
