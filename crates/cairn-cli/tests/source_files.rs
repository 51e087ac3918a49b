//! Enforces the project convention that every Rust source file of the
//! workspace (crates, examples, fuzz targets and the benchmark tools) starts
//! with a `//!` comment saying what lives there and why.

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
