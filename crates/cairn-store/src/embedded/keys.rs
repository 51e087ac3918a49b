//! Byte layouts of the embedded store's keys and values.
//!
//! Sequence numbers are big-endian so that byte order is numeric order.
//! Type and role names never contain a zero byte (the fact model restricts
//! them to `[A-Za-z0-9_.]`), so `0x00` separates variable-length parts and
//! `0x01` bounds a prefix from above.

use cairn_fact::Hash;

/// Length of an encoded sequence number.
pub const SEQ_BYTES: usize = 8;
/// Length of a hash.
pub const HASH_BYTES: usize = 32;
const SEPARATOR: u8 = 0x00;
const PREFIX_END: u8 = 0x01;

/// Encodes a sequence number as a key of the `facts` partition.
pub fn seq_key(seq: u64) -> [u8; SEQ_BYTES] {
    seq.to_be_bytes()
}

/// Decodes a big-endian sequence number.
pub fn decode_seq(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// Value of the `facts` partition: the fact's hash followed by its canonical bytes.
pub fn fact_value(hash: &Hash, canonical: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(HASH_BYTES + canonical.len());
    value.extend_from_slice(hash.as_bytes());
    value.extend_from_slice(canonical);
    value
}

/// Splits a `facts` value into hash and canonical bytes.
pub fn split_fact_value(value: &[u8]) -> Option<(Hash, &[u8])> {
    if value.len() < HASH_BYTES {
        return None;
    }
    let (hash_bytes, canonical) = value.split_at(HASH_BYTES);
    Some((Hash(hash_bytes.try_into().ok()?), canonical))
}

/// `successors` key: predecessor, successor type, seq of the successor, role.
/// Ordering by seq before role lets one range scan list successors of any
/// role in log order.
pub fn successor_key(predecessor: &Hash, type_name: &str, seq: u64, role: &str) -> Vec<u8> {
    let mut key = successor_prefix(predecessor, type_name);
    key.extend_from_slice(&seq.to_be_bytes());
    key.extend_from_slice(role.as_bytes());
    key
}

/// The prefix shared by all `successors` keys of one predecessor and type.
pub fn successor_prefix(predecessor: &Hash, type_name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(HASH_BYTES + type_name.len() + 1 + SEQ_BYTES + 16);
    key.extend_from_slice(predecessor.as_bytes());
    key.extend_from_slice(type_name.as_bytes());
    key.push(SEPARATOR);
    key
}

/// The exclusive upper bound of [`successor_prefix`].
pub fn successor_prefix_end(predecessor: &Hash, type_name: &str) -> Vec<u8> {
    let mut key = successor_prefix(predecessor, type_name);
    *key.last_mut().expect("prefix is never empty") = PREFIX_END;
    key
}

/// Splits the part of a `successors` key after its prefix into seq and role.
pub fn split_successor_suffix(suffix: &[u8]) -> Option<(u64, &[u8])> {
    if suffix.len() < SEQ_BYTES {
        return None;
    }
    let (seq_bytes, role) = suffix.split_at(SEQ_BYTES);
    Some((decode_seq(seq_bytes)?, role))
}

/// Splits the part of a `successors` key after its predecessor into the
/// successor's type and the rest (seq and role); `None` if it holds no
/// separator or the type is not UTF-8.
pub fn split_successor_type(after_predecessor: &[u8]) -> Option<(&str, &[u8])> {
    let separator_idx = after_predecessor
        .iter()
        .position(|&byte| byte == SEPARATOR)?;
    let type_name = std::str::from_utf8(&after_predecessor[..separator_idx]).ok()?;
    Some((type_name, &after_predecessor[separator_idx + 1..]))
}

/// `by_type` key: type name, separator, seq.
pub fn type_key(type_name: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(type_name.len() + 1 + SEQ_BYTES);
    key.extend_from_slice(type_name.as_bytes());
    key.push(SEPARATOR);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_keys_sort_by_seq_then_role_within_a_prefix() {
        let predecessor = Hash([7; 32]);
        let early = successor_key(&predecessor, "A.B", 2, "zeta");
        let late = successor_key(&predecessor, "A.B", 10, "alpha");
        assert!(early < late);
        assert!(late < successor_prefix_end(&predecessor, "A.B"));
        assert!(early > successor_prefix(&predecessor, "A.B"));
        // A longer type name sharing a prefix must not fall inside the range.
        let other_type = successor_key(&predecessor, "A.BC", 1, "r");
        assert!(other_type >= successor_prefix_end(&predecessor, "A.B"));
    }

    #[test]
    fn successor_type_splits_off_after_the_predecessor() {
        let key = successor_key(&Hash([1; 32]), "A.B", 42, "role");
        let (type_name, rest) = split_successor_type(&key[HASH_BYTES..]).unwrap();
        assert_eq!(type_name, "A.B");
        assert_eq!(split_successor_suffix(rest), Some((42, &b"role"[..])));
        assert_eq!(split_successor_type(b"no separator"), None);
    }

    #[test]
    fn fact_value_round_trips() {
        let hash = Hash([3; 32]);
        let value = fact_value(&hash, b"{}");
        assert_eq!(split_fact_value(&value), Some((hash, &b"{}"[..])));
        assert_eq!(split_fact_value(b"short"), None);
    }

    #[test]
    fn successor_suffix_round_trips() {
        let key = successor_key(&Hash([1; 32]), "T", 42, "role");
        let prefix_len = successor_prefix(&Hash([1; 32]), "T").len();
        assert_eq!(
            split_successor_suffix(&key[prefix_len..]),
            Some((42, &b"role"[..]))
        );
    }
}
