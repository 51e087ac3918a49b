//! Runs a checker over many seeded simulations within a budget, and turns
//! a failing seed into a message that says how to replay it.
//!
//! * `CAIRN_SIM_SEEDS`: seeds per test file (default [`SEEDS_DEFAULT`]).
//! * `CAIRN_SIM_BUDGET_MS`: wall-clock budget per test file (default
//!   [`BUDGET_MS_DEFAULT`]); the sweep stops early when it runs out, so a
//!   slow machine runs fewer seeds rather than a slower suite.
//! * `CAIRN_SIM_SEED=<n>`: runs exactly seed `n` (as printed on failure).
//!
//! Each file sweeps its own range of seeds (`seed_base + 0, 1, ...`), so
//! the files together explore different runs. The count of seeds run is
//! written to the terminal directly, past the test harness's capture, so
//! it shows in a plain `cargo test`.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::oracle::Violation;
use super::simulation::{simulate, Run};

/// Seeds per test file unless `CAIRN_SIM_SEEDS` says otherwise: eight
/// files make 16,000 seeds, about 5 to 7 s per file in a debug build on
/// two cores.
pub const SEEDS_DEFAULT: u64 = 2_000;
/// Wall-clock budget per test file unless `CAIRN_SIM_BUDGET_MS` says
/// otherwise: it caps a loaded machine's suite at about 80 s of sweeps.
pub const BUDGET_MS_DEFAULT: u64 = 10_000;

/// An invariant over one run.
pub type Checker = fn(&Run) -> Result<(), Violation>;

fn environment_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {text:?}")),
    )
}

/// Simulates `seed` and checks it; a panic inside the state machine counts
/// as a failure of the seed.
pub fn check_seed(seed: u64, checker: Checker) -> Result<(), Violation> {
    let run = catch_unwind(AssertUnwindSafe(|| simulate(seed))).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|text| text.to_string()))
            .unwrap_or_default();
        Violation::new("no panic", format!("the simulation panicked: {message}"))
    })?;
    checker(&run)
}

/// Runs `checker` over the seeds of this file (or the one seed asked for)
/// and panics on the first failing seed with a replay command.
pub fn sweep(test_name: &str, seed_base: u64, checker: Checker) {
    let fail = |seed: u64, violation: Violation| -> ! {
        panic!(
            "seed {seed} failed: {}: {}\nreplay with CAIRN_SIM_SEED={seed} cargo test -p cairn-delivery --test {test_name}",
            violation.invariant, violation.detail
        )
    };
    if let Some(seed) = environment_number("CAIRN_SIM_SEED") {
        if let Err(violation) = check_seed(seed, checker) {
            fail(seed, violation);
        }
        report(&format!("{test_name}: seed {seed} passed"));
        return;
    }
    let n_seeds = environment_number("CAIRN_SIM_SEEDS").unwrap_or(SEEDS_DEFAULT);
    let budget_ms = environment_number("CAIRN_SIM_BUDGET_MS").unwrap_or(BUDGET_MS_DEFAULT);
    let budget = Duration::from_millis(budget_ms);
    let started = Instant::now();
    let mut n_run = 0;
    while n_run < n_seeds && started.elapsed() < budget {
        let seed = seed_base + n_run;
        if let Err(violation) = check_seed(seed, checker) {
            fail(seed, violation);
        }
        n_run += 1;
    }
    let stopped_by = if n_run < n_seeds {
        format!(" (budget of {budget_ms} ms ran out before {n_seeds})")
    } else {
        String::new()
    };
    report(&format!(
        "{test_name}: {n_run} seeds ({seed_base}..{}) passed in {:.1} s{stopped_by}",
        seed_base + n_run,
        started.elapsed().as_secs_f64()
    ));
    assert!(n_run > 0, "{test_name}: the budget allowed no seed at all");
}

/// Writes a line to the terminal's stderr directly: the test harness
/// captures `println!`/`eprintln!` of passing tests, not this.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
