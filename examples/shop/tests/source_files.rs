//! Checks a code standard: every source file of the example starts with a
//! `//!` comment saying what lives there.

use std::path::Path;

#[test]
fn every_source_file_starts_with_a_module_comment() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut directories = vec![crate_dir.join("src"), crate_dir.join("tests")];
    let mut n_files = 0;
    while let Some(directory) = directories.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                directories.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(
                    text.starts_with("//!"),
                    "{} lacks a //! comment",
                    path.display()
                );
                n_files += 1;
            }
        }
    }
    assert!(n_files >= 15, "found only {n_files} source files");
}
