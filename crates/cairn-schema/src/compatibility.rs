//! Placeholder: the compatibility rules between schema versions (being written).
