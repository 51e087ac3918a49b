//! Check of what a replication link decodes from its source — the
//! network-facing parser of the receiving side: a `/v1/log` page and a
//! `/v1/facts/{hash}` answer. Whatever the bytes, decoding does not
//! panic; what it accepts holds only facts whose canonical bytes hash to
//! their hash and are canonical (so nothing unverified reaches a store),
//! and a page carries the `store` and `head` the bytes hold.

use cairn_fact::CanonicalFact;
use cairn_replication::{parse_fact_answer, parse_log_page};

/// Decodes `data` as a log page and as a fact answer, and checks what was
/// accepted against the bytes and the hash.
pub fn check_source_page(data: &[u8]) {
    if let Ok(page) = parse_log_page(data) {
        let value: serde_json::Value =
            serde_json::from_slice(data).expect("an accepted page is JSON");
        assert_eq!(value["store"].as_str(), Some(page.store.as_str()));
        assert_eq!(value["head"].as_u64(), Some(page.head));
        assert_eq!(value["next"].as_u64(), Some(page.next));
        let facts = value["facts"]
            .as_array()
            .expect("an accepted page has facts");
        assert_eq!(facts.len(), page.entries.len());
        for (entry, wire) in page.entries.iter().zip(facts) {
            assert_eq!(wire["seq"].as_u64(), Some(entry.seq));
            assert_eq!(
                wire["hash"].as_str(),
                Some(entry.fact.hash.to_hex().as_str())
            );
            verified(&entry.fact);
        }
    }
    if let Ok(fact) = parse_fact_answer(data) {
        verified(&fact);
    }
}

/// The fact's bytes hash to its hash and are canonical.
fn verified(fact: &CanonicalFact) {
    assert_eq!(cairn_fact::Hash::of_bytes(&fact.canonical), fact.hash);
    let again = CanonicalFact::verify_stored(&fact.canonical, &fact.hash)
        .expect("accepted bytes verify again");
    assert_eq!(again.canonical, fact.canonical);
}
