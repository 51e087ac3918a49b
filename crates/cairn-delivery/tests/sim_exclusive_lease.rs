//! Invariant, checked over seeded simulations: **one holder per message at
//! a time**. Within one server incarnation a message is leased again only
//! after its current lease ended (acked, nacked, or run out by the latest
//! time the state machine was given: a clock that steps back does not
//! revive a lease), and only the newest token of a message is ever honoured
//! (`acked`, `nacked`, `extended`): not a superseded one, not a forged one,
//! and not one from before a restart. A restart ends every lease by design
//! (leases are not recorded), which is why the property is per incarnation
//! and why stale tokens must not be honoured afterwards. Every token is
//! handed out once.
//!
//! A lease counts as held by the API's contract, not by what the state
//! machine reports: from its pull until an ack or nack with its token
//! succeeds, or its end (after extends) has passed. A state machine that
//! expired leases early would therefore be caught here too.

mod common;

use std::collections::{HashMap, HashSet};

use cairn_delivery::TokenStatus;
use common::oracle::{Leases, OpenLease, Violation};
use common::simulation::{handmade_run, token, Event, Run, TokenOperation};
use common::sweep::sweep;

const INVARIANT: &str = "exclusive lease";

fn check(run: &Run) -> Result<(), Violation> {
    let violation = |detail: String| Err(Violation::new(INVARIANT, detail));
    let mut leases = Leases::default();
    let mut handed_out = HashSet::new();
    // Leases held by the contract, per message, in this incarnation.
    let mut held: HashMap<u64, OpenLease> = HashMap::new();
    for (index, event) in run.history.iter().enumerate() {
        match event {
            Event::Leased {
                consumer,
                seq,
                token,
                now_ms,
                ..
            } => {
                if token.seq != *seq {
                    return violation(format!("#{index}: message {seq} leased with token {token}"));
                }
                if !handed_out.insert(*token) {
                    return violation(format!("#{index}: token {token} handed out twice"));
                }
                let server_now_ms = leases.high_water_ms.max(*now_ms);
                if let Some(open) = held.get(seq) {
                    if open.expires_at_ms > server_now_ms {
                        return violation(format!(
                            "#{index}: message {seq} leased to consumer {consumer} at server time \
                             {server_now_ms} while consumer {} holds it until {}{}",
                            open.consumer,
                            open.expires_at_ms,
                            run.describe_message(*seq, index)
                        ));
                    }
                }
            }
            Event::Answered {
                operation,
                token: Some(token),
                status: status @ (TokenStatus::Acked | TokenStatus::Nacked | TokenStatus::Extended),
                ..
            } => {
                let verdict = if leases.attempt_of(token).is_none() {
                    Some("was not handed out by this server incarnation")
                } else if leases.newest(token.seq) != Some(*token) {
                    Some("was superseded by a newer lease")
                } else {
                    None
                };
                if let Some(verdict) = verdict {
                    return violation(format!(
                        "#{index}: {operation:?} of token {token} answered {status:?}, but the token {verdict}{}",
                        run.describe_message(token.seq, index)
                    ));
                }
            }
            _ => {}
        }
        follow_held_leases(&mut held, event);
        leases.observe(event);
    }
    Ok(())
}

/// Follows the leases held by the contract.
fn follow_held_leases(held: &mut HashMap<u64, OpenLease>, event: &Event) {
    match event {
        Event::Leased {
            consumer,
            seq,
            token,
            attempt,
            expires_at_ms,
            ..
        } => {
            let lease = OpenLease {
                token: *token,
                consumer: *consumer,
                attempt: *attempt,
                expires_at_ms: *expires_at_ms,
            };
            held.insert(*seq, lease);
        }
        Event::Answered {
            operation,
            token: Some(token),
            status,
            ..
        } => {
            let Some(lease) = held
                .get_mut(&token.seq)
                .filter(|lease| lease.token == *token)
            else {
                return;
            };
            match (operation, status) {
                (TokenOperation::Ack, TokenStatus::Acked)
                | (TokenOperation::Nack { .. }, TokenStatus::Nacked) => {
                    held.remove(&token.seq);
                }
                (TokenOperation::Extend { expires_at_ms, .. }, TokenStatus::Extended) => {
                    lease.expires_at_ms = *expires_at_ms;
                }
                _ => {}
            }
        }
        Event::Crashed { .. } => held.clear(),
        _ => {}
    }
}

#[test]
fn no_message_is_leased_to_two_consumers_at_once() {
    sweep("sim_exclusive_lease", 2_000_000, check);
}

fn leased(consumer: usize, seq: u64, lease_id: u64, now_ms: u64) -> Event {
    Event::Leased {
        consumer,
        seq,
        token: token(seq, lease_id),
        attempt: 1,
        now_ms,
        expires_at_ms: now_ms + 1_000,
    }
}

fn answered(operation: TokenOperation, seq: u64, lease_id: u64, status: TokenStatus) -> Event {
    Event::Answered {
        consumer: 0,
        operation,
        token: Some(token(seq, lease_id)),
        status,
        batch: Some(1),
        answered: true,
    }
}

#[test]
fn checker_reports_two_concurrent_leases() {
    let run = handmade_run(
        3,
        None,
        None,
        vec![leased(0, 1, 7, 0), leased(1, 1, 8, 500)],
    );
    let violation = check(&run).unwrap_err();
    assert!(
        violation.detail.contains("holds it until 1000"),
        "{violation:?}"
    );
    // After the lease ran out (by the latest time seen), leasing again is
    // fine, even if the clock then stepped back.
    let after_expiry = handmade_run(
        3,
        None,
        None,
        vec![
            leased(0, 1, 7, 0),
            Event::Advanced { now_ms: 1_000 },
            leased(1, 1, 8, 900),
        ],
    );
    assert_eq!(check(&after_expiry), Ok(()));
}

#[test]
fn checker_reports_stale_tokens_honoured() {
    let superseded = handmade_run(
        3,
        None,
        None,
        vec![
            leased(0, 1, 7, 0),
            Event::Advanced { now_ms: 1_000 },
            leased(1, 1, 8, 1_000),
            answered(TokenOperation::Ack, 1, 7, TokenStatus::Acked),
        ],
    );
    assert!(check(&superseded)
        .unwrap_err()
        .detail
        .contains("superseded"));
    let from_before_a_restart = handmade_run(
        3,
        None,
        None,
        vec![
            leased(0, 1, 7, 0),
            Event::Crashed {
                durable_through_batch: 0,
            },
            Event::Restarted { now_ms: 0 },
            answered(
                TokenOperation::Nack {
                    now_ms: 0,
                    delay_ms: None,
                },
                1,
                7,
                TokenStatus::Nacked,
            ),
        ],
    );
    assert!(check(&from_before_a_restart)
        .unwrap_err()
        .detail
        .contains("not handed out by this server incarnation"));
}
