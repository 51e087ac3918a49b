//! Fuzz target `fact_json`: feeds arbitrary bytes to the fact parser and
//! checks the invariants the store relies on. An accepted fact's canonical
//! form must itself be accepted with the same bytes and hash and must pass
//! stored-fact verification; any parsed JSON value must canonicalize to text
//! that parses again to the same canonical form.

#![no_main]

use cairn_fact::{
    parse_json, to_canonical, CanonicalFact, FACT_CANONICAL_BYTES_MAX_DEFAULT, JSON_DEPTH_MAX,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(canonical_fact) = CanonicalFact::from_json(bytes, FACT_CANONICAL_BYTES_MAX_DEFAULT) {
        let again =
            CanonicalFact::from_json(&canonical_fact.canonical, FACT_CANONICAL_BYTES_MAX_DEFAULT)
                .expect("the canonical form of an accepted fact is accepted");
        assert_eq!(again.canonical, canonical_fact.canonical);
        assert_eq!(again.hash, canonical_fact.hash);
        let verified =
            CanonicalFact::verify_stored(&canonical_fact.canonical, &canonical_fact.hash)
                .expect("the canonical form of an accepted fact verifies");
        assert_eq!(
            to_canonical(&verified.fact.to_value()),
            canonical_fact.canonical
        );
    }
    if let Ok(value) = parse_json(bytes, JSON_DEPTH_MAX) {
        let canonical = to_canonical(&value);
        let reparsed =
            parse_json(&canonical, JSON_DEPTH_MAX).expect("canonical output of parsed JSON parses");
        assert_eq!(to_canonical(&reparsed), canonical);
    }
});
