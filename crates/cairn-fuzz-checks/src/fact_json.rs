//! Check of the fact parser (`POST /v1/facts` parses each fact with it, and
//! clients compute hashes offline with it): an accepted fact's canonical
//! form is accepted again with the same bytes and hash and passes
//! stored-fact verification; any parsed JSON value canonicalizes to text
//! that parses again to the same canonical form.

use cairn_fact::{
    parse_json, to_canonical, CanonicalFact, FACT_CANONICAL_BYTES_MAX_DEFAULT, JSON_DEPTH_MAX,
};

/// Feeds `data` to [`CanonicalFact::from_json`] and [`parse_json`] and
/// panics if an accepted input does not round-trip through its canonical
/// form.
pub fn check_fact_json(data: &[u8]) {
    if let Ok(canonical_fact) = CanonicalFact::from_json(data, FACT_CANONICAL_BYTES_MAX_DEFAULT) {
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
    if let Ok(value) = parse_json(data, JSON_DEPTH_MAX) {
        let canonical = to_canonical(&value);
        let reparsed =
            parse_json(&canonical, JSON_DEPTH_MAX).expect("canonical output of parsed JSON parses");
        assert_eq!(to_canonical(&reparsed), canonical);
    }
}
