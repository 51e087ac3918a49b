//! The SDK's promises about what it brings into an application, checked
//! with `cargo tree` and `cargo metadata` (offline, from `Cargo.lock`, in
//! well under a second): with default features it is a client of remote
//! servers only — no server, no store, no axum, no database driver — and it
//! never turns on tokio's "full" feature itself, so that an application
//! chooses its own runtime features.

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

#[test]
fn default_features_bring_no_server_store_or_database() {
    let tree = cargo(&[
        "tree",
        "-p",
        "cairn-client",
        "-e",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]);
    let packages: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    // The tree is the SDK's: its HTTP client is there.
    assert!(packages.contains(&"reqwest"), "{tree}");
    for unwanted in [
        "axum",
        "sqlx",
        "sqlx-core",
        "cairn-server",
        "cairn-store",
        "fjall",
    ] {
        assert!(
            !packages.contains(&unwanted),
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
