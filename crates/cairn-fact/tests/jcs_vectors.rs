//! The RFC 8785 reference vectors: each `input/X.json` must canonicalize to
//! exactly the bytes of `output/X.json`, alone and embedded as a field of a
//! fact. The crate keeps its own copy of the vectors (`tests/jcs/`, Apache
//! 2.0, see the LICENSE there) so this test always runs; the shared copy of
//! the workspace is checked too when it is present.

use std::fs;
use std::path::{Path, PathBuf};

use cairn_fact::{
    parse_json, to_canonical, CanonicalFact, Hash, FACT_CANONICAL_BYTES_MAX_DEFAULT, JSON_DEPTH_MAX,
};

const VECTOR_NAMES: [&str; 6] = [
    "arrays.json",
    "french.json",
    "structures.json",
    "unicode.json",
    "values.json",
    "weird.json",
];

fn crate_vectors_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jcs")
}

fn shared_vectors_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/jcs")
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// Checks every vector in `folder` and returns how many were checked.
fn check_vectors_in(folder: &Path) -> usize {
    for name in VECTOR_NAMES {
        let input = read(&folder.join("input").join(name));
        let expected = read(&folder.join("output").join(name));

        let value =
            parse_json(&input, JSON_DEPTH_MAX).unwrap_or_else(|error| panic!("{name}: {error}"));
        let canonical = to_canonical(&value);
        assert_eq!(
            String::from_utf8_lossy(&canonical),
            String::from_utf8_lossy(&expected),
            "{name}"
        );
        assert_eq!(canonical, expected, "{name}");

        // Canonicalization is compositional: the vector as a field value.
        let mut fact_json = br#"{"type":"T","predecessors":{},"fields":{"v":"#.to_vec();
        fact_json.extend_from_slice(&input);
        fact_json.extend_from_slice(b"}}");
        let canonical_fact = CanonicalFact::from_json(&fact_json, FACT_CANONICAL_BYTES_MAX_DEFAULT)
            .unwrap_or_else(|error| panic!("{name} as a field: {error}"));
        let mut expected_fact = br#"{"fields":{"v":"#.to_vec();
        expected_fact.extend_from_slice(&expected);
        expected_fact.extend_from_slice(br#"},"predecessors":{},"type":"T"}"#);
        assert_eq!(canonical_fact.canonical, expected_fact, "{name} as a field");
        assert_eq!(
            canonical_fact.hash,
            Hash::of_bytes(&expected_fact),
            "{name} as a field"
        );
    }
    VECTOR_NAMES.len()
}

#[test]
fn crate_copy_of_the_rfc8785_vectors() {
    assert_eq!(check_vectors_in(&crate_vectors_folder()), 6);
}

#[test]
fn shared_rfc8785_vectors_when_present() {
    let shared = shared_vectors_folder();
    if !shared.is_dir() {
        println!(
            "notice: {} is missing; only the crate's copy of the RFC 8785 vectors was checked",
            shared.display()
        );
        return;
    }
    assert_eq!(check_vectors_in(&shared), 6);
    // The crate's copy must not drift from the shared original.
    for name in VECTOR_NAMES {
        for kind in ["input", "output"] {
            assert_eq!(
                read(&shared.join(kind).join(name)),
                read(&crate_vectors_folder().join(kind).join(name)),
                "{kind}/{name}"
            );
        }
    }
}
