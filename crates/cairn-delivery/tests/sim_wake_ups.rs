//! Invariant, checked over seeded simulations: **the runtime is woken when
//! something can happen, and only then**. After a pull that leased
//! nothing, `next_event_at_ms()` is what a runtime sleeps on:
//!
//! * if it names a time, that time lies after the pull's time (a time at or
//!   before it would wake a long-polling pull at once, over and over, until
//!   its wait ran out);
//! * if it names none, nothing can become deliverable without an outside
//!   event: no lease is open, and either delivery is paused or no message
//!   is tracked (a message left waiting without a wake-up would be stranded
//!   until some unrelated request came by).

mod common;

use cairn_delivery::Counters;
use common::oracle::Violation;
use common::simulation::{handmade_run, Event, Run};
use common::sweep::sweep;

const INVARIANT: &str = "wake-ups";

fn check(run: &Run) -> Result<(), Violation> {
    for (index, event) in run.history.iter().enumerate() {
        let Event::Idle {
            now_ms,
            next_event_at_ms,
            paused,
            counters,
        } = event
        else {
            continue;
        };
        let problem = match next_event_at_ms {
            Some(next_ms) if next_ms <= now_ms => Some(format!(
                "the next event is at {next_ms}, not after now ({now_ms}): a waiting pull would spin"
            )),
            Some(_) => None,
            None if counters.in_flight > 0 => {
                Some("no next event while leases are open: none would ever run out".into())
            }
            None if !paused && counters.tracked_not_leased > 0 => Some(format!(
                "no next event while {} messages wait unpaused: they are stranded",
                counters.tracked_not_leased
            )),
            None => None,
        };
        if let Some(problem) = problem {
            return Err(Violation::new(
                INVARIANT,
                format!(
                    "#{index}: after an empty pull at {now_ms} (paused: {paused}, {counters:?}), {problem}\n  config: {:?}",
                    run.config
                ),
            ));
        }
    }
    Ok(())
}

#[test]
fn an_empty_pull_leaves_a_wake_up_in_the_future_or_nothing_to_wait_for() {
    sweep("sim_wake_ups", 7_000_000, check);
}

fn idle(next_event_at_ms: Option<u64>, paused: bool, counters: Counters) -> Run {
    handmade_run(
        3,
        None,
        None,
        vec![Event::Idle {
            now_ms: 1_000,
            next_event_at_ms,
            paused,
            counters,
        }],
    )
}

#[test]
fn checker_reports_busy_and_missing_wake_ups() {
    let waiting = Counters {
        tracked_not_leased: 2,
        ..Counters::default()
    };
    let leased = Counters {
        in_flight: 1,
        ..Counters::default()
    };
    assert_eq!(check(&idle(Some(1_001), false, waiting)), Ok(()));
    assert!(check(&idle(Some(1_000), true, waiting))
        .unwrap_err()
        .detail
        .contains("would spin"));
    assert!(check(&idle(None, false, waiting))
        .unwrap_err()
        .detail
        .contains("stranded"));
    assert_eq!(check(&idle(None, true, waiting)), Ok(()));
    assert!(check(&idle(None, true, leased))
        .unwrap_err()
        .detail
        .contains("leases are open"));
}
