//! Replays every kept fuzz input (`fuzz/regressions/<target>/*`: crashes the
//! fuzzer found and a few interesting seeds) through the same check its
//! fuzz target runs, on stable and without libFuzzer, so that a fixed crash
//! stays fixed in `cargo test --workspace`.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use cairn_fuzz_checks::TARGETS;

/// The regressions folder of the fuzz crate at the repository root.
fn regressions_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions")
}

/// The files of one folder, sorted so that failures list in a stable order.
fn files_in(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(folder)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", folder.display()))
        .map(|entry| entry.expect("a readable folder entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_folder_of_regressions_belongs_to_a_target() {
    for entry in fs::read_dir(regressions_folder()).expect("fuzz/regressions exists") {
        let name = entry.expect("a readable folder entry").file_name();
        let name = name.to_string_lossy();
        assert!(
            TARGETS.iter().any(|(target, _)| *target == name),
            "fuzz/regressions/{name} is not a fuzz target's folder, so nothing replays it"
        );
    }
}

#[test]
fn every_kept_input_passes_its_targets_check() {
    let mut n_inputs = 0;
    let mut failures = Vec::new();
    for (target, check) in TARGETS {
        let files = files_in(&regressions_folder().join(target));
        assert!(
            !files.is_empty(),
            "fuzz/regressions/{target} holds no input"
        );
        for file in files {
            let data = fs::read(&file).expect("a readable input");
            n_inputs += 1;
            if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
                failures.push(format!("{target}: {}", file.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n_inputs} kept fuzz inputs fail (reproduce one from the repository \
         root with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>`): {failures:#?}",
        failures.len()
    );
}
