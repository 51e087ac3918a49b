//! The executable specification of delivery: one seeded schedule drives
//! both engines behind the `Deliveries`/`Subscription` traits — the
//! in-memory engine over a fresh embedded store, and the shared engine over
//! a fresh PostgreSQL database — on one simulated clock, with consumers
//! that ack, nack, extend and vanish, leases that run out, pauses, replays,
//! discards, per-key order, rate limits, dead letters and restarts.
//!
//! Every engine is held to the same invariants (`oracle.rs`), and until
//! the first restart of a run the two must answer every step alike
//! (`driver::Observation`): the same messages and attempts per pull, the
//! same status per token, the same views and dead letters. After a restart
//! they legitimately differ — the embedded backend does not record leases,
//! so a restart voids them, while on PostgreSQL they are rows — and only
//! the invariants are checked; `restart_differences` pins the difference
//! itself.
//!
//! Runs are deterministic: time is simulated (no wall-clock sleep decides
//! anything), the shared engine ends expired leases on every call rather
//! than at most every 50 ms of wall time, and every loop is bounded.
//!
//! * `CAIRN_DELIVERY_SECONDS`: wall-clock budget of seeds per engine
//!   (default [`SECONDS_PER_ENGINE_DEFAULT`]);
//! * `CAIRN_DELIVERY_SEEDS`: seeds at most (default unlimited within the
//!   budget);
//! * `CAIRN_DELIVERY_SEED=<n>`: runs exactly seed `n`, as a failure prints;
//!   with `CAIRN_DELIVERY_TRACE=1` every step and what each engine
//!   answered is printed.
//!
//! Without PostgreSQL (`CAIRN_TEST_POSTGRES=skip`) the in-memory engine
//! runs alone.

mod driver;
mod engines;
mod oracle;
mod restart_differences;
mod schedule;

use std::io::Write;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use std::time::{Duration, Instant};

use cairn_server::clock::Clock;

use driver::{Driver, Observation};
use engines::{Engine, EngineKind, SharedDatabase};
use schedule::{Schedule, Step, START_MS};

/// Seconds of seeds per engine unless `CAIRN_DELIVERY_SECONDS` says
/// otherwise.
const SECONDS_PER_ENGINE_DEFAULT: u64 = 60;
/// The first seed of a sweep.
const SEED_BASE: u64 = 0x00c0_ffee_0000;
/// Rounds of the drain phase at most.
const DRAIN_ROUNDS_MAX: usize = 2_000;
/// How far the clock moves when a drain round leased nothing.
const DRAIN_STEP_MS: u64 = 500;

fn environment_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {text:?}")),
    )
}

/// Writes past the test harness's capture, so counts show in `cargo test`.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Wall-clock time spent in each engine's steps.
#[derive(Debug, Default)]
struct Timings {
    memory: Duration,
    shared: Duration,
}

/// Runs one seed on both engines (the shared one unless PostgreSQL is
/// skipped); a broken invariant or a disagreement is an error naming the
/// step.
async fn run_seed(
    seed: u64,
    database: Option<&mut SharedDatabase>,
    timings: &mut Timings,
) -> Result<(), String> {
    let schedule = Schedule::draw(seed);
    let clock = Clock::simulated(START_MS);
    let mut drivers = Vec::new();
    let started = Instant::now();
    let memory = Engine::memory(clock.clone(), seed);
    drivers.push(Driver::start(memory, seed, &schedule.config).await);
    timings.memory += started.elapsed();
    if let Some(database) = database {
        let started = Instant::now();
        let store = database.fresh_store().await;
        let shared = Engine::shared_on(store, clock.clone(), seed);
        drivers.push(Driver::start(shared, seed, &schedule.config).await);
        timings.shared += started.elapsed();
    }
    let context = |index: usize, what: String| {
        format!(
            "step {index} of {}: {what}\n  config: {:?}",
            schedule.steps.len(),
            schedule.config
        )
    };
    let trace = std::env::var_os("CAIRN_DELIVERY_TRACE").is_some();
    let mut restarted = false;
    for (index, step) in schedule.steps.iter().enumerate() {
        if let Step::Advance { delta_ms } = step {
            clock.advance_ms(*delta_ms);
        }
        let observations = run_step(&mut drivers, timings, step)
            .await
            .map_err(|error| context(index, format!("{step:?}: {error}")))?;
        if trace {
            report(&format!("#{index} {step:?}\n    -> {observations:?}"));
        }
        restarted |= matches!(step, Step::Restart);
        if !restarted {
            agree(&observations).map_err(|error| context(index, format!("{step:?}: {error}")))?;
        }
    }
    for driver in &mut drivers {
        driver
            .begin_drain(seed)
            .await
            .map_err(|error| context(schedule.steps.len(), format!("draining: {error}")))?;
    }
    let mut drained = vec![false; drivers.len()];
    for round in 0..DRAIN_ROUNDS_MAX {
        let mut observations = Vec::new();
        let mut leased_any = false;
        for (driver, done) in drivers.iter_mut().zip(&mut drained) {
            let started = Instant::now();
            let (observation, now_done) = driver
                .drain_round()
                .await
                .map_err(|error| context(round, format!("drain round: {error}")))?;
            *timings_of(timings, driver.engine.kind) += started.elapsed();
            leased_any |= observation != Observation::Pulled(Vec::new());
            *done = now_done;
            observations.push(observation);
        }
        if trace {
            report(&format!(
                "drain round {round} at {} ms\n    -> {observations:?}",
                clock.now_ms() - START_MS
            ));
        }
        if !restarted {
            agree(&observations)
                .map_err(|error| context(round, format!("drain round: {error}")))?;
        }
        if drained.iter().all(|done| *done) {
            break;
        }
        if !leased_any {
            clock.advance_ms(DRAIN_STEP_MS);
        }
    }
    if let Some(engine) = drained.iter().position(|done| !done) {
        return Err(format!(
            "{:?} did not drain within {DRAIN_ROUNDS_MAX} rounds",
            drivers[engine].engine.kind
        ));
    }
    for driver in drivers {
        let kind = driver.engine.kind;
        driver
            .finish()
            .await
            .map_err(|error| format!("{kind:?} at the end: {error}"))?;
    }
    Ok(())
}

fn timings_of(timings: &mut Timings, kind: EngineKind) -> &mut Duration {
    match kind {
        EngineKind::Memory => &mut timings.memory,
        EngineKind::Shared => &mut timings.shared,
    }
}

/// Runs one step on every engine, in turn.
async fn run_step(
    drivers: &mut [Driver],
    timings: &mut Timings,
    step: &Step,
) -> Result<Vec<Observation>, String> {
    let mut observations = Vec::with_capacity(drivers.len());
    for driver in drivers {
        let started = Instant::now();
        let observation = driver
            .step(step)
            .await
            .map_err(|error| format!("{:?}: {error}", driver.engine.kind))?;
        *timings_of(timings, driver.engine.kind) += started.elapsed();
        observations.push(observation);
    }
    Ok(observations)
}

/// The engines' observations of one step must be equal.
fn agree(observations: &[Observation]) -> Result<(), String> {
    match observations {
        [memory, shared] if memory != shared => Err(format!(
            "the engines disagree:\n    memory: {memory:?}\n    shared: {shared:?}"
        )),
        _ => Ok(()),
    }
}

/// Runs `seed`; a panic fails the seed too.
async fn check_seed(
    seed: u64,
    database: Option<&mut SharedDatabase>,
    timings: &mut Timings,
) -> Result<(), String> {
    AssertUnwindSafe(run_seed(seed, database, timings))
        .catch_unwind()
        .await
        .unwrap_or_else(|payload| {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {message}"))
        })
}

#[test]
fn both_engines_keep_the_delivery_invariants_and_agree() {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(sweep());
}

/// Runs the seeds of this sweep (or the one asked for), failing on the
/// first that breaks an invariant or finds the engines disagreeing.
async fn sweep() {
    let fail = |seed: u64, error: String| -> ! {
        panic!(
            "seed {seed} failed: {error}\nreproduce with \
             CAIRN_DELIVERY_SEED={seed} cargo test -p cairn-server --test delivery_conformance"
        )
    };
    let mut database = SharedDatabase::create().await;
    let n_engines = 1 + u64::from(database.is_some());
    let mut timings = Timings::default();
    if let Some(seed) = environment_number("CAIRN_DELIVERY_SEED") {
        if let Err(error) = check_seed(seed, database.as_mut(), &mut timings).await {
            fail(seed, error);
        }
        report(&format!(
            "delivery conformance: seed {seed} passed on {n_engines} engine(s) ({timings:?})"
        ));
        return;
    }
    let seconds =
        environment_number("CAIRN_DELIVERY_SECONDS").unwrap_or(SECONDS_PER_ENGINE_DEFAULT);
    let seeds_max = environment_number("CAIRN_DELIVERY_SEEDS").unwrap_or(u64::MAX);
    let budget = Duration::from_secs(seconds * n_engines);
    let started = Instant::now();
    let mut n_run = 0;
    while n_run < seeds_max && started.elapsed() < budget {
        let seed = SEED_BASE + n_run;
        if let Err(error) = check_seed(seed, database.as_mut(), &mut timings).await {
            fail(seed, error);
        }
        n_run += 1;
    }
    report(&format!(
        "delivery conformance: {n_run} seeds ({SEED_BASE}..{}) passed on {n_engines} engine(s) in \
         {:.1} s (memory {:.1} s, shared {:.1} s)",
        SEED_BASE + n_run,
        started.elapsed().as_secs_f64(),
        timings.memory.as_secs_f64(),
        timings.shared.as_secs_f64()
    ));
    assert!(n_run > 0, "the budget allowed no seed at all");
}
