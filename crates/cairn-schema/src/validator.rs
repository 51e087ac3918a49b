//! Placeholder: compiled schemas and the validation of facts (being written).
