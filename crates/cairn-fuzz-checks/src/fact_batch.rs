//! Check of the path a `POST /v1/facts` body takes: the whole body is
//! parsed with the request's depth limit (the fact limit plus the two
//! levels of the `{"facts": [...]}` envelope), and each element of `facts`
//! is validated as a value with [`CanonicalFact::from_value`], never as
//! text. Whatever that path accepts must be exactly what the fact parser
//! accepts from the canonical bytes, because stored facts are verified
//! again through the text path ([`CanonicalFact::verify_stored`]).

use cairn_fact::{parse_json, CanonicalFact, FACT_CANONICAL_BYTES_MAX_DEFAULT};
use cairn_server::limits::REQUEST_JSON_DEPTH_MAX;

/// Parses `data` as a batch body and panics if a fact accepted from the
/// batch is refused, or hashed differently, when read back from its
/// canonical bytes.
pub fn check_fact_batch(data: &[u8]) {
    let Ok(body) = parse_json(data, REQUEST_JSON_DEPTH_MAX) else {
        return;
    };
    let Some(facts) = body.get("facts").and_then(|facts| facts.as_array()) else {
        return;
    };
    for fact_value in facts {
        let Ok(accepted) = CanonicalFact::from_value(fact_value, FACT_CANONICAL_BYTES_MAX_DEFAULT)
        else {
            continue;
        };
        let from_text =
            CanonicalFact::from_json(&accepted.canonical, FACT_CANONICAL_BYTES_MAX_DEFAULT)
                .expect("a fact accepted in a batch is accepted from its canonical bytes");
        assert_eq!(from_text.canonical, accepted.canonical);
        assert_eq!(from_text.hash, accepted.hash);
        CanonicalFact::verify_stored(&accepted.canonical, &accepted.hash)
            .expect("a fact accepted in a batch verifies once stored");
    }
}
