//! Enforces two project conventions over the workspace's source files:
//! every Rust source file (crates, examples, fuzz targets and the benchmark
//! tools) starts with a `//!` comment saying what lives there and why, and
//! only binaries and tests use `anyhow` (libraries return typed errors).

use std::fs;
use std::path::{Path, PathBuf};

/// Collects `.rs` files below `dir`, skipping build output.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | "corpus" | "artifacts" | ".git") {
                rust_files(&path, found);
            }
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
}

#[test]
fn every_source_file_starts_with_a_module_doc_comment() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for folder in ["crates", "examples", "bench"] {
        rust_files(&workspace.join(folder), &mut files);
    }
    let missing: Vec<_> = files
        .iter()
        .filter(|path| !fs::read_to_string(path).unwrap().starts_with("//! "))
        .map(|path| {
            path.strip_prefix(&workspace)
                .unwrap_or(path)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! comment: {missing:?}"
    );
    assert!(files.len() >= 100, "only {} files found", files.len());
}

/// The package folders whose library code must not use `anyhow`: every
/// crate but the binary-only ones (a `src/main.rs` and no `src/lib.rs`:
/// the `cairn` binary, the instruction-count workload), and the examples
/// (whose binaries under `src/bin/` may).
fn library_packages(workspace: &Path) -> Vec<PathBuf> {
    let mut packages = Vec::new();
    for folder in ["crates", "examples"] {
        for entry in fs::read_dir(workspace.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            let binary_only =
                path.join("src/main.rs").exists() && !path.join("src/lib.rs").exists();
            if path.join("Cargo.toml").exists() && !binary_only {
                packages.push(path);
            }
        }
    }
    packages
}

/// The lines of the `[dependencies]` table of a Cargo.toml.
fn normal_dependencies(manifest: &str) -> Vec<&str> {
    manifest
        .lines()
        .skip_while(|line| line.trim() != "[dependencies]")
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .collect()
}

#[test]
fn only_binaries_and_tests_use_anyhow() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let packages = library_packages(&workspace);
    let mut offenders = Vec::new();
    for package in &packages {
        let mut files = Vec::new();
        rust_files(&package.join("src"), &mut files);
        for file in files {
            let in_binary = file.components().any(|part| part.as_os_str() == "bin");
            if !in_binary && fs::read_to_string(&file).unwrap().contains("anyhow") {
                offenders.push(file.display().to_string());
            }
        }
        let manifest = fs::read_to_string(package.join("Cargo.toml")).unwrap();
        let has_binaries = package.join("src/bin").is_dir();
        let lists_anyhow = normal_dependencies(&manifest)
            .iter()
            .any(|line| line.trim_start().starts_with("anyhow"));
        if lists_anyhow && !has_binaries {
            offenders.push(format!("{} ([dependencies])", package.display()));
        }
    }
    assert!(
        offenders.is_empty(),
        "anyhow outside binaries and tests: {offenders:?}"
    );
    assert!(
        packages.len() >= 9,
        "only {} packages found",
        packages.len()
    );
}
