//! Running many seeded cases: which seeds to run, running them on several
//! threads, and printing the seed of a case that fails.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Cases run at the same time. Most of a case's time is spent waiting:
/// fjall's background threads notice that a closed store stops only at
/// their next wake-up (up to 250 ms), and every acknowledged write waits
/// for an fsync.
const PARALLEL_CASES: usize = 16;
/// The environment variable that runs one seed alone.
pub const SEED_VARIABLE: &str = "DISK_FAULTS_SEED";

/// The seeds to run: the one in `DISK_FAULTS_SEED` if it is set, else
/// `n_cases` seeds from `first_seed` (fixed, so that every run checks the
/// same cases).
pub fn case_seeds(first_seed: u64, n_cases: u64) -> Vec<u64> {
    match std::env::var(SEED_VARIABLE) {
        Ok(seed) => vec![seed.parse().expect("DISK_FAULTS_SEED is a number")],
        Err(_) => (first_seed..first_seed + n_cases).collect(),
    }
}

/// Prints how to rerun a case when it is dropped while its thread panics.
pub struct SeedOnFailure {
    /// The test's name.
    pub test: &'static str,
    /// The case's seed.
    pub seed: u64,
}

impl Drop for SeedOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "{test} failed with seed {seed}: rerun it alone with \
                 {SEED_VARIABLE}={seed} cargo test -p cairn-store --test disk_faults {test}",
                test = self.test,
                seed = self.seed,
            );
        }
    }
}

/// A runtime for one thread of cases.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Runs `case` for every seed, [`PARALLEL_CASES`] at a time.
pub fn run_cases<Case, CaseFuture>(test: &'static str, seeds: &[u64], case: Case)
where
    Case: Fn(u64) -> CaseFuture + Sync,
    CaseFuture: Future<Output = ()>,
{
    let next_case = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_CASES {
            scope.spawn(|| {
                let runtime = runtime();
                while let Some(&seed) = seeds.get(next_case.fetch_add(1, Ordering::Relaxed)) {
                    let _report = SeedOnFailure { test, seed };
                    runtime.block_on(case(seed));
                }
            });
        }
    });
}
