//! Path `fact`: parse, canonicalize and hash every fact of the data set
//! from its JSON text (`CanonicalFact::from_json`), what the server does
//! to each fact of a write before the store sees it. No I/O.

use std::hint::black_box;

use anyhow::ensure;
use cairn_fact::CanonicalFact;

use crate::inputs;

/// Prepares the texts, then measures parsing all of them.
pub fn run() -> anyhow::Result<u64> {
    let texts = inputs::facts_json()?;
    crate::measure("fact", || {
        let mut parsed = 0;
        for text in &texts {
            let fact = CanonicalFact::from_json(text.as_bytes(), inputs::CANONICAL_BYTES_MAX)?;
            black_box(&fact);
            parsed += 1;
        }
        ensure!(parsed == inputs::FACTS as u64, "parsed {parsed} facts");
        Ok(parsed)
    })
}
