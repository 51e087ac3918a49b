//! Digests over the hash space, for anti-entropy (`cairn diff`,
//! `GET /v1/digests`; the format is in `docs/design.md`, "Digests").
//!
//! The digest of a set of facts is their count and the XOR of their
//! hashes. XOR is its own inverse and commutes, so a digest is updated in
//! O(1) per new fact, and the digest of a prefix of the hash space is the
//! XOR of its sub-prefixes' digests. Two stores hold the same facts under
//! a prefix (with overwhelming probability: the hashes are BLAKE3) when
//! their counts and digests are equal there, so a comparison descends only
//! into the sub-prefixes whose digests differ, and costs in proportion to
//! the differences, not to the stores.
//!
//! [`DigestStore`] is the trait both backends implement; its conformance
//! suite is `tests/digests.rs`. Down to [`MAINTAINED_DIGITS`] hexadecimal
//! digits, each backend keeps per-type digests of every prefix of that
//! length ([`Aggregates`]), so a query there costs in proportion to the
//! number of types, not facts; below it a query reads the facts under the
//! prefix (about n / 4096 of them) through the hash index.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_fact::Hash;
use futures_util::future::BoxFuture;

use crate::error::ReadError;

/// Hexadecimal digits of the prefixes whose digests are maintained per
/// type (4,096 prefixes). A query of a shorter prefix is answered from
/// them; a query of this length or longer reads the facts under it.
pub const MAINTAINED_DIGITS: usize = 3;
/// Number of maintained prefixes.
pub const MAINTAINED_BUCKETS: usize = 1 << (4 * MAINTAINED_DIGITS);
/// Digits of the longest prefix a query may name (one less than a hash,
/// whose 16 sub-prefixes are then single hashes).
pub const PREFIX_DIGITS_MAX: usize = 63;

/// The count of a set of facts and the XOR of their hashes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Digest {
    /// How many facts.
    pub count: u64,
    /// XOR of their hashes (all zeros for none).
    pub xor: [u8; 32],
}

impl Digest {
    /// Adds one fact.
    pub fn add(&mut self, hash: &Hash) {
        self.count += 1;
        xor_into(&mut self.xor, hash.as_bytes());
    }

    /// Adds a set of facts disjoint from this one.
    pub fn merge(&mut self, other: &Digest) {
        self.count += other.count;
        xor_into(&mut self.xor, &other.xor);
    }

    /// The XOR as 64 lowercase hexadecimal digits.
    pub fn xor_hex(&self) -> String {
        Hash(self.xor).to_hex()
    }
}

fn xor_into(target: &mut [u8; 32], other: &[u8; 32]) {
    for (byte, other_byte) in target.iter_mut().zip(other) {
        *byte ^= other_byte;
    }
}

/// Why a prefix was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HashPrefixError {
    /// Longer than [`PREFIX_DIGITS_MAX`].
    #[error("a hash prefix has at most {PREFIX_DIGITS_MAX} hexadecimal digits, got {0}")]
    TooLong(usize),
    /// A character other than `0-9a-f`.
    #[error("a hash prefix holds only lowercase hexadecimal digits (0-9, a-f)")]
    NotHex,
}

/// A prefix of a hash in hexadecimal digits: 0 to [`PREFIX_DIGITS_MAX`]
/// nibbles (the empty prefix is the whole hash space).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HashPrefix {
    nibbles: Vec<u8>,
}

impl HashPrefix {
    /// The whole hash space.
    pub fn root() -> HashPrefix {
        HashPrefix::default()
    }

    /// Parses lowercase hexadecimal digits.
    pub fn parse(text: &str) -> Result<HashPrefix, HashPrefixError> {
        if text.len() > PREFIX_DIGITS_MAX {
            return Err(HashPrefixError::TooLong(text.len()));
        }
        let nibbles = text
            .bytes()
            .map(|digit| match digit {
                b'0'..=b'9' => Ok(digit - b'0'),
                b'a'..=b'f' => Ok(digit - b'a' + 10),
                _ => Err(HashPrefixError::NotHex),
            })
            .collect::<Result<Vec<u8>, _>>()?;
        Ok(HashPrefix { nibbles })
    }

    /// Its length in digits.
    pub fn len(&self) -> usize {
        self.nibbles.len()
    }

    /// True for the whole hash space.
    pub fn is_empty(&self) -> bool {
        self.nibbles.is_empty()
    }

    /// The sub-prefix one digit longer, ending with `nibble` (0 to 15).
    /// `None` beyond [`PREFIX_DIGITS_MAX`].
    pub fn child(&self, nibble: u8) -> Option<HashPrefix> {
        assert!(nibble < 16, "a nibble is below 16");
        if self.len() >= PREFIX_DIGITS_MAX {
            return None;
        }
        let mut nibbles = self.nibbles.clone();
        nibbles.push(nibble);
        Some(HashPrefix { nibbles })
    }

    /// Whether `hash` starts with this prefix.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.nibbles
            .iter()
            .enumerate()
            .all(|(position, &nibble)| nibble_at(hash, position) == nibble)
    }

    /// The smallest hash under the prefix.
    pub fn lower_bound(&self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        for (position, &nibble) in self.nibbles.iter().enumerate() {
            set_nibble(&mut bytes, position, nibble);
        }
        bytes
    }

    /// The smallest hash after the prefix (exclusive upper bound), or
    /// `None` when the prefix is all `f` (it runs to the end).
    pub fn upper_bound(&self) -> Option<[u8; 32]> {
        let mut nibbles = self.nibbles.clone();
        while let Some(last) = nibbles.pop() {
            if last < 15 {
                nibbles.push(last + 1);
                return Some(HashPrefix { nibbles }.lower_bound());
            }
        }
        None
    }

    /// The maintained bucket (the first [`MAINTAINED_DIGITS`] digits as a
    /// number) range this prefix covers, for prefixes shorter than that.
    pub fn maintained_range(&self) -> std::ops::Range<u16> {
        assert!(self.len() < MAINTAINED_DIGITS);
        let mut value = 0u16;
        for &nibble in &self.nibbles {
            value = value * 16 + u16::from(nibble);
        }
        let width = 1u16 << (4 * (MAINTAINED_DIGITS - self.len()));
        value * width..value * width + width
    }
}

impl std::fmt::Display for HashPrefix {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for &nibble in &self.nibbles {
            write!(formatter, "{nibble:x}")?;
        }
        Ok(())
    }
}

/// The digit of `hash` at `position` (0 is the first hexadecimal digit).
pub fn nibble_at(hash: &Hash, position: usize) -> u8 {
    let byte = hash.as_bytes()[position / 2];
    if position.is_multiple_of(2) {
        byte >> 4
    } else {
        byte & 0x0f
    }
}

fn set_nibble(bytes: &mut [u8; 32], position: usize, nibble: u8) {
    let byte = &mut bytes[position / 2];
    if position.is_multiple_of(2) {
        *byte = (*byte & 0x0f) | (nibble << 4);
    } else {
        *byte = (*byte & 0xf0) | nibble;
    }
}

/// The maintained bucket of `hash`: its first [`MAINTAINED_DIGITS`] digits.
pub fn maintained_bucket(hash: &Hash) -> u16 {
    let bytes = hash.as_bytes();
    (u16::from(bytes[0]) << 4) | u16::from(bytes[1] >> 4)
}

const _: () = assert!(MAINTAINED_DIGITS == 3, "maintained_bucket reads 3 digits");

/// Which types a query counts: the caller's patterns, already intersected
/// with what it may read.
pub type TypeFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// One digest query.
#[derive(Clone)]
pub struct DigestQuery {
    /// The prefix whose digest is asked.
    pub prefix: HashPrefix,
    /// Facts of the types this accepts are counted; the others are not.
    pub types: TypeFilter,
    /// The hashes are listed when the prefix holds at most this many facts
    /// (of those types) and is at least [`MAINTAINED_DIGITS`] long.
    pub hashes_max: usize,
}

/// The answer to a [`DigestQuery`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestAnswer {
    /// The facts under the prefix.
    pub total: Digest,
    /// The facts under each of its 16 sub-prefixes (by last digit); empty
    /// digests under the longest prefix's single hashes too.
    pub buckets: [Digest; 16],
    /// Their hashes, ascending, when listed (see [`DigestQuery::hashes_max`]).
    pub hashes: Option<Vec<Hash>>,
}

impl DigestAnswer {
    /// The answer whose sub-prefixes hold `buckets` (no hashes listed).
    pub fn from_buckets(buckets: [Digest; 16]) -> DigestAnswer {
        let mut total = Digest::default();
        for bucket in &buckets {
            total.merge(bucket);
        }
        DigestAnswer {
            total,
            buckets,
            hashes: None,
        }
    }

    /// The answer for `prefix` from the facts under it, in any order:
    /// `(hash, type)` pairs, filtered here by `query.types`.
    pub fn from_facts<'a>(
        query: &DigestQuery,
        facts: impl IntoIterator<Item = (Hash, &'a str)>,
    ) -> DigestAnswer {
        let position = query.prefix.len();
        let mut buckets = [Digest::default(); 16];
        let mut hashes = Vec::new();
        let mut listing = true;
        for (hash, type_name) in facts {
            debug_assert!(query.prefix.contains(&hash));
            if !(query.types)(type_name) {
                continue;
            }
            buckets[usize::from(nibble_at(&hash, position))].add(&hash);
            if listing {
                if hashes.len() < query.hashes_max {
                    hashes.push(hash);
                } else {
                    listing = false;
                    hashes = Vec::new();
                }
            }
        }
        let mut answer = DigestAnswer::from_buckets(buckets);
        if listing && position >= MAINTAINED_DIGITS {
            hashes.sort_unstable();
            answer.hashes = Some(hashes);
        }
        answer
    }
}

/// Per-type digests of the [`MAINTAINED_BUCKETS`] prefixes of
/// [`MAINTAINED_DIGITS`] digits: what a backend keeps so that short
/// prefixes are answered without reading facts. Memory: at most 4,096
/// digests (40 bytes each) per type, fewer for a type with few facts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Aggregates {
    by_type: HashMap<Box<str>, HashMap<u16, Digest>>,
}

impl Aggregates {
    /// Adds one fact of `type_name`.
    pub fn add(&mut self, type_name: &str, hash: &Hash) {
        let buckets = match self.by_type.get_mut(type_name) {
            Some(buckets) => buckets,
            None => self.by_type.entry(type_name.into()).or_default(),
        };
        buckets
            .entry(maintained_bucket(hash))
            .or_default()
            .add(hash);
    }

    /// Merges a stored digest of one type and bucket.
    pub fn merge(&mut self, type_name: &str, bucket: u16, digest: &Digest) {
        let buckets = match self.by_type.get_mut(type_name) {
            Some(buckets) => buckets,
            None => self.by_type.entry(type_name.into()).or_default(),
        };
        buckets.entry(bucket).or_default().merge(digest);
    }

    /// The digests of one type, by bucket.
    pub fn of_type(&self, type_name: &str) -> Option<&HashMap<u16, Digest>> {
        self.by_type.get(type_name)
    }

    /// Every type and its digests.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &HashMap<u16, Digest>)> {
        self.by_type
            .iter()
            .map(|(type_name, buckets)| (&**type_name, buckets))
    }

    /// The answer for a prefix shorter than [`MAINTAINED_DIGITS`].
    pub fn answer(&self, query: &DigestQuery) -> DigestAnswer {
        let range = query.prefix.maintained_range();
        let shift = 4 * (MAINTAINED_DIGITS - query.prefix.len() - 1);
        let mut buckets = [Digest::default(); 16];
        for (type_name, type_buckets) in &self.by_type {
            if !(query.types)(type_name) {
                continue;
            }
            for (&bucket, digest) in type_buckets {
                if range.contains(&bucket) {
                    buckets[usize::from((bucket >> shift) & 0x0f)].merge(digest);
                }
            }
        }
        DigestAnswer::from_buckets(buckets)
    }
}

/// Digests over the hash space of a store's facts (see the module
/// documentation). Answers reflect durable facts only; while facts are
/// being written an answer may lag them by the facts of one commit.
pub trait DigestStore: Send + Sync + 'static {
    /// The digests of the facts under `query.prefix` whose types
    /// `query.types` accepts, and of the 16 sub-prefixes; the hashes too
    /// when few (see [`DigestQuery::hashes_max`]). Costs in proportion to
    /// the number of types for prefixes shorter than [`MAINTAINED_DIGITS`],
    /// and to the facts under the prefix otherwise.
    fn digests<'a>(
        &'a self,
        query: &'a DigestQuery,
    ) -> BoxFuture<'a, Result<DigestAnswer, ReadError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_and_bound_ranges() {
        assert_eq!(HashPrefix::parse("").unwrap(), HashPrefix::root());
        assert_eq!(HashPrefix::parse("0aF"), Err(HashPrefixError::NotHex));
        assert_eq!(
            HashPrefix::parse(&"0".repeat(64)),
            Err(HashPrefixError::TooLong(64))
        );
        let prefix = HashPrefix::parse("a1f").unwrap();
        assert_eq!(prefix.to_string(), "a1f");
        let lower = prefix.lower_bound();
        assert_eq!(&lower[..3], &[0xa1, 0xf0, 0]);
        assert_eq!(&prefix.upper_bound().unwrap()[..3], &[0xa2, 0x00, 0]);
        assert_eq!(HashPrefix::parse("ff").unwrap().upper_bound(), None);
        assert_eq!(
            &HashPrefix::parse("0ff").unwrap().upper_bound().unwrap()[..2],
            &[0x10, 0x00]
        );
        assert!(prefix.contains(&Hash([0xa1; 32]).with_second_byte(0xf3)));
        assert!(!prefix.contains(&Hash([0xa1; 32])));
        assert_eq!(
            HashPrefix::parse("a").unwrap().maintained_range(),
            0xa00..0xb00
        );
        assert_eq!(HashPrefix::root().maintained_range(), 0..4096);
        assert_eq!(HashPrefix::parse(&"1".repeat(63)).unwrap().child(2), None);
    }

    trait WithSecondByte {
        fn with_second_byte(self, byte: u8) -> Hash;
    }

    impl WithSecondByte for Hash {
        fn with_second_byte(mut self, byte: u8) -> Hash {
            self.0[1] = byte;
            self
        }
    }

    #[test]
    fn aggregates_answer_as_the_facts_do() {
        let hashes: Vec<(Hash, &str)> = (0u32..2_000)
            .map(|n| {
                let hash = Hash::of_bytes(&n.to_be_bytes());
                (hash, if n % 3 == 0 { "A.X" } else { "B.Y" })
            })
            .collect();
        let mut aggregates = Aggregates::default();
        for (hash, type_name) in &hashes {
            aggregates.add(type_name, hash);
        }
        for prefix in ["", "7", "c4"] {
            let query = DigestQuery {
                prefix: HashPrefix::parse(prefix).unwrap(),
                types: Arc::new(|type_name| type_name.starts_with("A.")),
                hashes_max: 256,
            };
            let under = hashes
                .iter()
                .filter(|(hash, _)| query.prefix.contains(hash))
                .map(|(hash, type_name)| (*hash, *type_name));
            assert_eq!(
                aggregates.answer(&query),
                DigestAnswer::from_facts(&query, under)
            );
        }
    }

    #[test]
    fn hashes_are_listed_only_deep_and_few() {
        let facts: Vec<(Hash, &str)> = (0u32..40)
            .map(|n| (Hash::of_bytes(&n.to_be_bytes()), "T"))
            .collect();
        let query = |prefix: &str, hashes_max| DigestQuery {
            prefix: HashPrefix::parse(prefix).unwrap(),
            types: Arc::new(|_| true),
            hashes_max,
        };
        let shallow = DigestAnswer::from_facts(&query("", 100), facts.iter().copied());
        assert_eq!(shallow.total.count, 40);
        assert_eq!(shallow.hashes, None);
        let first = facts[0].0.to_hex();
        let deep_query = query(&first[..3], 100);
        let under: Vec<_> = facts
            .iter()
            .copied()
            .filter(|(hash, _)| deep_query.prefix.contains(hash))
            .collect();
        let deep = DigestAnswer::from_facts(&deep_query, under.iter().copied());
        assert_eq!(deep.hashes.as_ref().unwrap().len() as u64, deep.total.count);
        let too_many = DigestAnswer::from_facts(&query(&first[..3], 0), under.iter().copied());
        assert_eq!(too_many.hashes, None);
    }
}
