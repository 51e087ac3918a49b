//! Invariant, checked over seeded simulations: **an acknowledged message is
//! never delivered again**. Once an ack was answered `acked`, the message
//! is never leased again, not after any crash and not by a replay, and no
//! second ack of it succeeds. An ack whose answer never reached the
//! consumer (the server crashed before its barrier) promises nothing: if
//! its write was lost, the message may come back.

mod common;

use std::collections::HashMap;

use cairn_delivery::TokenStatus;
use common::oracle::Violation;
use common::simulation::{handmade_run, simulate_with, token, Event, Options, Run, TokenOperation};
use common::sweep::sweep;

const INVARIANT: &str = "no redelivery after ack";

/// An ack the state machine accepted: its write, whether it was answered,
/// and where in the history.
#[derive(Clone, Copy, Debug)]
struct Ack {
    batch: u64,
    answered: bool,
    index: usize,
}

fn check(run: &Run) -> Result<(), Violation> {
    let violation = |detail: String| Err(Violation::new(INVARIANT, detail));
    let mut acked: HashMap<u64, Ack> = HashMap::new();
    for (index, event) in run.history.iter().enumerate() {
        match event {
            Event::Answered {
                operation: TokenOperation::Ack,
                token: Some(token),
                status: TokenStatus::Acked,
                batch,
                answered,
                ..
            } => {
                if let Some(earlier) = acked.get(&token.seq) {
                    return violation(format!(
                        "message {} was acked at #{index} after its ack at #{}{}",
                        token.seq,
                        earlier.index,
                        run.describe_message(token.seq, index)
                    ));
                }
                let ack = Ack {
                    batch: batch.unwrap_or(u64::MAX),
                    answered: *answered,
                    index,
                };
                acked.insert(token.seq, ack);
            }
            Event::Crashed {
                durable_through_batch,
            } => acked.retain(|_, ack| ack.answered || ack.batch <= *durable_through_batch),
            Event::Leased { seq, .. } => {
                if let Some(ack) = acked.get(seq) {
                    return violation(format!(
                        "message {seq} was delivered again at #{index} after its ack at #{} ({}){}",
                        ack.index,
                        if ack.answered {
                            "answered"
                        } else {
                            "unanswered, but durable"
                        },
                        run.describe_message(*seq, index)
                    ));
                }
            }
            Event::Replayed { seqs, .. } => {
                if let Some(seq) = seqs.iter().find(|seq| acked.contains_key(seq)) {
                    return violation(format!(
                        "the replay at #{index} brought back message {seq}, which was acked{}",
                        run.describe_message(*seq, index)
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[test]
fn acked_messages_never_come_back() {
    sweep("sim_no_redelivery_after_ack", 1_000_000, check);
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

fn acked(seq: u64, lease_id: u64, batch: u64, answered: bool) -> Event {
    Event::Answered {
        consumer: 0,
        operation: TokenOperation::Ack,
        token: Some(token(seq, lease_id)),
        status: TokenStatus::Acked,
        batch: Some(batch),
        answered,
    }
}

fn crashed(durable_through_batch: u64) -> Event {
    Event::Crashed {
        durable_through_batch,
    }
}

#[test]
fn checker_reports_an_acked_message_delivered_again() {
    let run = handmade_run(
        3,
        None,
        None,
        vec![leased(1, 7), acked(1, 7, 1, true), leased(1, 8)],
    );
    let violation = check(&run).unwrap_err();
    assert!(
        violation.detail.contains("delivered again"),
        "{violation:?}"
    );
}

#[test]
fn checker_holds_answered_acks_across_crashes_but_not_unanswered_lost_ones() {
    let answered_then_lost = handmade_run(
        3,
        None,
        None,
        vec![leased(1, 7), acked(1, 7, 2, true), crashed(1), leased(1, 8)],
    );
    assert!(check(&answered_then_lost).is_err());
    let unanswered_and_lost = handmade_run(
        3,
        None,
        None,
        vec![
            leased(1, 7),
            acked(1, 7, 2, false),
            crashed(1),
            leased(1, 8),
        ],
    );
    assert_eq!(check(&unanswered_and_lost), Ok(()));
    let unanswered_but_durable = handmade_run(
        3,
        None,
        None,
        vec![
            leased(1, 7),
            acked(1, 7, 2, false),
            crashed(2),
            leased(1, 8),
        ],
    );
    assert!(check(&unanswered_but_durable).is_err());
}

#[test]
fn checker_reports_a_second_ack_and_a_replay_of_an_acked_message() {
    let twice = handmade_run(
        3,
        None,
        None,
        vec![leased(1, 7), acked(1, 7, 1, true), acked(1, 7, 2, true)],
    );
    assert!(check(&twice).unwrap_err().detail.contains("acked at"));
    let replayed = handmade_run(
        3,
        None,
        None,
        vec![
            leased(1, 7),
            acked(1, 7, 1, true),
            Event::Replayed {
                now_ms: 0,
                requested: None,
                room: 10,
                n_replayed: 1,
                seqs: vec![1],
                batch: Some(2),
                answered: true,
            },
        ],
    );
    assert!(check(&replayed).unwrap_err().detail.contains("replay"));
}

/// With answers given before their changes are durable, a crash loses
/// answered acks and their messages come back: some seed must show it.
#[test]
fn answering_before_the_barrier_is_caught() {
    let unsafe_runtime = Options {
        skip_answer_barriers: true,
    };
    let caught = (0..300).find_map(|seed| check(&simulate_with(seed, unsafe_runtime)).err());
    let violation = caught.expect("no seed caught acks answered before they were durable");
    assert!(violation.detail.contains("(answered)"), "{violation:?}");
}
