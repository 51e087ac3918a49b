//! Runs the simulation over many seeds within a budget, and turns a
//! failing seed into a message that says how to replay it.
//!
//! * `CAIRN_REPL_SIM_SEEDS`: seeds to run (default [`SEEDS_DEFAULT`]).
//! * `CAIRN_REPL_SIM_BUDGET_MS`: wall-clock budget (default
//!   [`BUDGET_MS_DEFAULT`]); the sweep stops early when it runs out, so a
//!   slow machine runs fewer seeds rather than a slower suite.
//! * `CAIRN_REPL_SIM_SEED=<n>`: runs exactly seed `n` (as printed on
//!   failure).
//!
//! The count of seeds run is written to the terminal directly, past the
//! test harness's capture, so it shows in a plain `cargo test`.

use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::run::{simulate, Report};

/// Seeds run unless `CAIRN_REPL_SIM_SEEDS` says otherwise: about 10 s in
/// a debug build on two cores.
pub const SEEDS_DEFAULT: u64 = 1_000;
/// Wall-clock budget unless `CAIRN_REPL_SIM_BUDGET_MS` says otherwise.
pub const BUDGET_MS_DEFAULT: u64 = 20_000;
/// A sweep of at least this many seeds must take every path of [`PATHS`].
pub const COVERAGE_SEEDS_MIN: u64 = 100;

/// The paths of the model a sweep must exercise (names as the world
/// counts them), so that a change that quietly stops a fault or the
/// closure fetches fails the sweep rather than weakening it.
pub const PATHS: [&str; 19] = [
    "page read",
    "call into a partition",
    "call to a crashed source",
    "call cut",
    "stale page",
    "short page",
    "garbled page",
    "predecessor fetched",
    "source lied",
    "write failed",
    "batch holding facts stored already",
    "batch stored",
    "batch missing predecessors",
    "save failed",
    "zombie's save refused",
    "progress saved",
    "runner dropped mid-attempt",
    "batch durable, its answer lost",
    "save durable, its answer lost",
];

fn environment_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {text:?}")),
    )
}

/// Simulates `seed`; a panic (in the engine or the model) fails it.
pub fn check_seed(seed: u64) -> Result<Report, String> {
    let report = catch_unwind(AssertUnwindSafe(|| simulate(seed))).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|text| text.to_string()))
            .unwrap_or_default();
        format!("the simulation panicked: {message}")
    })?;
    if report.violations.is_empty() {
        Ok(report)
    } else {
        Err(format!(
            "{}\n  run: {}",
            report.violations.join("\n  "),
            report.summary()
        ))
    }
}

/// Runs the seeds (or the one seed asked for) and panics on the first
/// failing one with a replay command.
pub fn sweep(test_name: &str) {
    let fail = |seed: u64, detail: String| -> ! {
        panic!(
            "seed {seed} failed:\n  {detail}\nreplay with CAIRN_REPL_SIM_SEED={seed} cargo test -p cairn-replication --test {test_name}"
        )
    };
    if let Some(seed) = environment_number("CAIRN_REPL_SIM_SEED") {
        match check_seed(seed) {
            Ok(report) => report_line(&format!(
                "{test_name}: seed {seed} passed: {}",
                report.summary()
            )),
            Err(detail) => fail(seed, detail),
        }
        return;
    }
    let n_seeds = environment_number("CAIRN_REPL_SIM_SEEDS").unwrap_or(SEEDS_DEFAULT);
    let budget_ms = environment_number("CAIRN_REPL_SIM_BUDGET_MS").unwrap_or(BUDGET_MS_DEFAULT);
    let budget = Duration::from_millis(budget_ms);
    let started = Instant::now();
    let mut n_run = 0;
    let mut facts_replicated = 0;
    let mut tally: BTreeMap<&'static str, u64> = BTreeMap::new();
    while n_run < n_seeds && started.elapsed() < budget {
        let seed = n_run;
        match check_seed(seed) {
            Ok(report) => {
                facts_replicated += report.counters.facts_replicated;
                for (path, count) in report.tally {
                    *tally.entry(path).or_default() += count;
                }
            }
            Err(detail) => fail(seed, detail),
        }
        n_run += 1;
    }
    let stopped_by = if n_run < n_seeds {
        format!(" (budget of {budget_ms} ms ran out before {n_seeds})")
    } else {
        String::new()
    };
    report_line(&format!(
        "{test_name}: {n_run} seeds (0..{n_run}) converged, {facts_replicated} facts replicated, in {:.1} s{stopped_by}; paths taken: {tally:?}",
        started.elapsed().as_secs_f64()
    ));
    assert!(n_run > 0, "{test_name}: the budget allowed no seed at all");
    if n_run >= COVERAGE_SEEDS_MIN {
        let untaken: Vec<&str> = PATHS
            .iter()
            .filter(|path| tally.get(*path).copied().unwrap_or(0) == 0)
            .copied()
            .collect();
        assert!(
            untaken.is_empty(),
            "{test_name}: {n_run} seeds never took {untaken:?}: the simulation no longer exercises them ({tally:?})"
        );
    }
}

/// Writes a line to the terminal's stderr directly: the test harness
/// captures `println!`/`eprintln!` of passing tests, not this.
fn report_line(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
