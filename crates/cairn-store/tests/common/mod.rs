//! Helpers of the disk-fault tests (`disk_faults.rs`): seeded cases run in
//! parallel, each reproducible from the seed it prints when it fails; facts
//! of random sizes and shapes; and the embedded store's data files as a
//! crash or a failing disk leaves them.

pub mod case_runner;
pub mod data_files;
pub mod fact_source;
pub mod seeded_rng;
