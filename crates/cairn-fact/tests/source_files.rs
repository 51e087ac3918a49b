//! Enforces the project convention that every source file of this crate
//! starts with a `//!` comment saying what lives there and why.

use std::fs;
use std::path::Path;

#[test]
fn every_source_file_starts_with_a_module_doc_comment() {
    let crate_root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files_checked_n = 0;
    for folder in ["src", "tests", "fuzz/fuzz_targets"] {
        let Ok(entries) = fs::read_dir(crate_root.join(folder)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|extension| extension == "rs") {
                let text = fs::read_to_string(&path).unwrap();
                assert!(
                    text.starts_with("//! "),
                    "{} must start with a //! comment",
                    path.display()
                );
                files_checked_n += 1;
            }
        }
    }
    assert!(files_checked_n >= 12, "only {files_checked_n} files found");
}
