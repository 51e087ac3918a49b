//! The SDK's promises about what it brings into an application, checked
//! with `cargo tree` and `cargo metadata` (offline, from `Cargo.lock`, in
//! well under a second): with default features it is a client of remote
//! servers only — no server, no store, no axum, no database driver — of at
//! most [`DEFAULT_TREE_CRATES_MAX`] crates, and it never turns on tokio's
//! "full" feature itself, so that an application chooses its own runtime
//! features.

use std::collections::BTreeSet;

use std::process::Command;

/// Runs `cargo ARGS... --offline --locked` in this crate and returns its
/// standard output.
fn cargo(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO"))
        .args(args)
        .args(["--offline", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("cargo prints UTF-8")
}

/// Crates in the default (remote client) tree at most, the SDK itself
/// included: the bound of issue 12 (98 before, 82 with `idna_adapter` 1.1;
/// see `docs/benchmarks.md`, "Issue 12: SDK weight").
const DEFAULT_TREE_CRATES_MAX: usize = 90;

/// `cargo tree -p cairn-client -e normal` with default features, one
/// `name vVERSION` line per crate.
fn default_tree() -> String {
    cargo(&[
        "tree",
        "-p",
        "cairn-client",
        "-e",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ])
}

#[test]
fn default_features_stay_within_the_crate_bound() {
    let tree = default_tree();
    // Repeated subtrees end in " (*)"; a crate counts once per version,
    // as `cargo tree ... | sed 's/ (\*)//' | sort -u | wc -l` counts.
    let crates: BTreeSet<&str> = tree
        .lines()
        .map(|line| line.trim_end_matches(" (*)").trim())
        .filter(|line| !line.is_empty())
        .collect();
    // The ICU4X tables come back with `idna_adapter` 1.2 (a plain `cargo
    // update` picks it): the lock file pins 1.1 (unicode-rs) on purpose.
    let icu: Vec<&&str> = crates
        .iter()
        .filter(|name| name.starts_with("icu_"))
        .collect();
    assert!(
        icu.is_empty(),
        "ICU4X is back in the SDK's tree ({icu:?}): \
         keep cairn-client's `idna_adapter = \"~1.1\"` requirement (see ARCHITECTURE.md, Dependencies)"
    );
    assert!(
        crates.len() <= DEFAULT_TREE_CRATES_MAX,
        "the SDK's default tree has {} crates, more than {DEFAULT_TREE_CRATES_MAX}:\n{}",
        crates.len(),
        crates.iter().copied().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn default_features_bring_no_server_store_or_database() {
    let tree = default_tree();
    let packages: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    // The tree is the SDK's: its HTTP client is there.
    assert!(packages.contains(&"reqwest"), "{tree}");
    // Each name and its family (`axum-core`, `sqlx-postgres`, ...).
    for unwanted in ["axum", "sqlx", "cairn-server", "cairn-store", "fjall"] {
        let family = format!("{unwanted}-");
        assert!(
            !packages
                .iter()
                .any(|package| *package == unwanted || package.starts_with(&family)),
            "the SDK's default features bring in {unwanted}:\n{tree}"
        );
    }
}

#[test]
fn default_features_leave_tokio_full_off() {
    let features = cargo(&[
        "tree",
        "-p",
        "cairn-client",
        "-e",
        "normal,features",
        "-i",
        "tokio",
        "--prefix",
        "none",
    ]);
    assert!(features.contains("tokio feature \"rt\""), "{features}");
    assert!(
        !features.contains("tokio feature \"full\""),
        "something the SDK uses by default turns on tokio's \"full\":\n{features}"
    );
}

#[test]
fn the_sdk_itself_never_asks_for_tokio_full() {
    let metadata: serde_json::Value =
        serde_json::from_str(&cargo(&["metadata", "--no-deps", "--format-version", "1"]))
            .expect("cargo metadata prints JSON");
    let package = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|package| package["name"] == "cairn-client")
        .expect("cairn-client is a workspace member");
    let tokio_specs: Vec<&serde_json::Value> = package["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .filter(|dependency| dependency["name"] == "tokio")
        .collect();
    assert!(!tokio_specs.is_empty(), "the SDK depends on tokio");
    for spec in tokio_specs {
        let features = spec["features"].as_array().expect("features");
        assert!(
            !features.iter().any(|feature| feature == "full"),
            "cairn-client asks for tokio's \"full\" ({} dependency): {spec}",
            spec["kind"].as_str().unwrap_or("normal")
        );
    }
}
