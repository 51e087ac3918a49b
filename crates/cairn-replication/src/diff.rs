//! Anti-entropy: which facts one deployment holds that another lacks,
//! found by comparing digests over the hash space (`GET /v1/digests`;
//! `cairn diff`, and `cairn links repair` to fetch what a link missed).
//!
//! A [`DigestSource`] answers, for a prefix of the hash and a set of type
//! patterns, the count and XOR of the hashes under the prefix, the same
//! for its 16 one-digit-longer sub-prefixes, and the hashes themselves
//! once they are few. [`diff`] asks both deployments for the whole hash
//! space, then descends — with at most [`DiffOptions::requests_in_flight_max`]
//! prefixes at a time — only into the sub-prefixes whose counts or digests
//! differ, asking only one side where the other holds nothing, until
//! both sides list their hashes; so its cost grows with the number of
//! differences (about 3 + 2 requests per difference on stores of a
//! million facts), not with the size of the stores. Every answer is
//! checked (its prefix, its sub-prefixes summing to it, its hashes under
//! it, sorted and summing to its digest, the same deployment throughout)
//! before it is trusted.
//!
//! The comparison is exact for deployments that do not change while it
//! runs; facts written meanwhile may or may not be reported.

use std::collections::VecDeque;
use std::time::Duration;

use cairn_api::DigestsAnswer;
use cairn_fact::Hash;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use reqwest::{StatusCode, Url};

use crate::limits::{
    DIFF_DIFFERENCES_MAX, DIFF_REQUESTS_IN_FLIGHT_MAX, DIGEST_ANSWER_BYTES_MAX,
    DIGEST_REQUEST_TIMEOUT_MS,
};
use crate::source::SourceError;

/// Digits of a hash; a prefix has at most one less.
const HASH_DIGITS: usize = 64;

/// A deployment's digests, as a comparison reads them.
pub trait DigestSource: Send + Sync {
    /// The digests under `prefix` (lowercase hexadecimal, 0 to 63 digits)
    /// of the facts whose types match one of `types` (every type when
    /// empty), as `GET /v1/digests` answers them.
    fn digests<'a>(
        &'a self,
        prefix: &'a str,
        types: &'a [String],
    ) -> BoxFuture<'a, Result<DigestsAnswer, SourceError>>;
}

/// Which deployment of a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The first.
    A,
    /// The second.
    B,
}

impl std::fmt::Display for Side {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Side::A => "A",
            Side::B => "B",
        })
    }
}

/// Why a comparison failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum DiffError {
    /// A deployment could not answer, refused, or answered something
    /// that is not a valid digest answer.
    #[error("deployment {side}: {error}")]
    Source {
        /// Which one.
        side: Side,
        /// What went wrong.
        #[source]
        error: SourceError,
    },
    /// More differences than the comparison keeps.
    #[error("the deployments differ by more than {max} facts")]
    TooManyDifferences {
        /// [`DiffOptions::differences_max`].
        max: usize,
    },
}

/// How a comparison runs.
#[derive(Clone, Debug)]
pub struct DiffOptions {
    /// Prefixes asked about at once at most (each is one request per side).
    pub requests_in_flight_max: usize,
    /// Differences kept at most; beyond them the comparison fails.
    pub differences_max: usize,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            requests_in_flight_max: DIFF_REQUESTS_IN_FLIGHT_MAX,
            differences_max: DIFF_DIFFERENCES_MAX,
        }
    }
}

/// What a comparison found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Difference {
    /// Deployment A's identity (`store` of its answers).
    pub store_a: String,
    /// Deployment B's identity.
    pub store_b: String,
    /// Facts A holds and B lacks, ascending.
    pub only_in_a: Vec<Hash>,
    /// Facts B holds and A lacks, ascending.
    pub only_in_b: Vec<Hash>,
    /// Facts of the compared types A holds (as its first answer said).
    pub count_a: u64,
    /// Facts of the compared types B holds.
    pub count_b: u64,
    /// Digest requests made, both sides together.
    pub requests: u64,
}

impl Difference {
    /// True when both hold the same facts of the compared types.
    pub fn is_empty(&self) -> bool {
        self.only_in_a.is_empty() && self.only_in_b.is_empty()
    }
}

/// One answer, checked and decoded.
struct Node {
    count: u64,
    digest: [u8; 32],
    buckets: [(u64, [u8; 32]); 16],
    hashes: Option<Vec<Hash>>,
}

fn xor_into(target: &mut [u8; 32], other: &[u8; 32]) {
    for (byte, other_byte) in target.iter_mut().zip(other) {
        *byte ^= other_byte;
    }
}

fn parse_digest(text: &str) -> Result<[u8; 32], SourceError> {
    Hash::from_hex(text)
        .map(|hash| hash.0)
        .map_err(|_| SourceError::Invalid(format!("digest {text:?} is not 64 hexadecimal digits")))
}

/// Checks an answer for `prefix` from the deployment `store` (once known).
fn check(
    answer: DigestsAnswer,
    prefix: &str,
    store: Option<&str>,
) -> Result<(String, Node), SourceError> {
    let invalid = |message: String| SourceError::Invalid(format!("prefix {prefix:?}: {message}"));
    if answer.prefix != prefix {
        return Err(invalid(format!(
            "the answer is for prefix {:?}",
            answer.prefix
        )));
    }
    if let Some(store) = store {
        if answer.store != store {
            return Err(invalid(format!(
                "another deployment answered ({} instead of {store})",
                answer.store
            )));
        }
    }
    if answer.buckets.len() != 16 {
        return Err(invalid(format!(
            "{} sub-prefixes, not 16",
            answer.buckets.len()
        )));
    }
    let digest = parse_digest(&answer.digest)?;
    let mut buckets = [(0u64, [0u8; 32]); 16];
    let mut count_sum: u64 = 0;
    let mut digest_sum = [0u8; 32];
    for (nibble, bucket) in answer.buckets.iter().enumerate() {
        if bucket.prefix != format!("{prefix}{nibble:x}") {
            return Err(invalid(format!(
                "sub-prefix {nibble} is {:?}",
                bucket.prefix
            )));
        }
        let bucket_digest = parse_digest(&bucket.digest)?;
        count_sum = count_sum.saturating_add(bucket.count);
        xor_into(&mut digest_sum, &bucket_digest);
        buckets[nibble] = (bucket.count, bucket_digest);
    }
    if count_sum != answer.count || digest_sum != digest {
        return Err(invalid(
            "the sub-prefixes do not add up to the prefix".into(),
        ));
    }
    if let Some(hashes) = &answer.hashes {
        if hashes.len() as u64 != answer.count {
            return Err(invalid(format!(
                "{} hashes listed for a count of {}",
                hashes.len(),
                answer.count
            )));
        }
        let mut hashes_sum = [0u8; 32];
        for (position, hash) in hashes.iter().enumerate() {
            if !hash.to_hex().starts_with(prefix) {
                return Err(invalid(format!("hash {hash} is not under the prefix")));
            }
            if position > 0 && hashes[position - 1] >= *hash {
                return Err(invalid("the hashes are not in ascending order".into()));
            }
            xor_into(&mut hashes_sum, hash.as_bytes());
        }
        if hashes_sum != digest {
            return Err(invalid(
                "the hashes listed do not add up to the digest".into(),
            ));
        }
    } else if prefix.len() + 1 == HASH_DIGITS {
        return Err(invalid("no hashes listed under the longest prefix".into()));
    }
    Ok((
        answer.store,
        Node {
            count: answer.count,
            digest,
            buckets,
            hashes: answer.hashes,
        },
    ))
}

/// A prefix to compare: on both sides, or on one side whose facts there
/// the other lacks entirely.
enum Task {
    Both(String),
    Only(Side, String),
}

/// What one task found: differences, and prefixes to compare next.
#[derive(Default)]
struct Found {
    only_in_a: Vec<Hash>,
    only_in_b: Vec<Hash>,
    next: Vec<Task>,
    requests: u64,
}

struct Comparison<'a> {
    a: &'a dyn DigestSource,
    b: &'a dyn DigestSource,
    types: &'a [String],
    store_a: String,
    store_b: String,
}

impl Comparison<'_> {
    async fn ask(&self, side: Side, prefix: &str) -> Result<Node, DiffError> {
        let (source, store) = match side {
            Side::A => (self.a, &self.store_a),
            Side::B => (self.b, &self.store_b),
        };
        let answer = source
            .digests(prefix, self.types)
            .await
            .map_err(|error| DiffError::Source { side, error })?;
        check(answer, prefix, Some(store))
            .map(|(_, node)| node)
            .map_err(|error| DiffError::Source { side, error })
    }

    async fn run(&self, task: Task) -> Result<Found, DiffError> {
        match task {
            Task::Both(prefix) => {
                let (a, b) = tokio::join!(self.ask(Side::A, &prefix), self.ask(Side::B, &prefix));
                let mut found = Found {
                    requests: 2,
                    ..Found::default()
                };
                compare(&prefix, &a?, &b?, &mut found);
                Ok(found)
            }
            Task::Only(side, prefix) => {
                let node = self.ask(side, &prefix).await?;
                let mut found = Found {
                    requests: 1,
                    ..Found::default()
                };
                only(side, &prefix, &node, &mut found);
                Ok(found)
            }
        }
    }
}

/// Compares both sides' answers for `prefix`.
fn compare(prefix: &str, a: &Node, b: &Node, found: &mut Found) {
    if a.count == b.count && a.digest == b.digest {
        return;
    }
    if let (Some(hashes_a), Some(hashes_b)) = (&a.hashes, &b.hashes) {
        let (only_a, only_b) = sorted_difference(hashes_a, hashes_b);
        found.only_in_a.extend(only_a);
        found.only_in_b.extend(only_b);
        return;
    }
    for nibble in 0..16 {
        let (bucket_a, bucket_b) = (a.buckets[nibble], b.buckets[nibble]);
        if bucket_a == bucket_b {
            continue;
        }
        let child = format!("{prefix}{nibble:x}");
        found.next.push(if bucket_b.0 == 0 {
            Task::Only(Side::A, child)
        } else if bucket_a.0 == 0 {
            Task::Only(Side::B, child)
        } else {
            Task::Both(child)
        });
    }
}

/// Every fact of `side`'s answer for `prefix` is missing on the other side.
fn only(side: Side, prefix: &str, node: &Node, found: &mut Found) {
    let target = match side {
        Side::A => &mut found.only_in_a,
        Side::B => &mut found.only_in_b,
    };
    if let Some(hashes) = &node.hashes {
        target.extend(hashes.iter().copied());
        return;
    }
    for (nibble, bucket) in node.buckets.iter().enumerate() {
        if bucket.0 > 0 {
            found
                .next
                .push(Task::Only(side, format!("{prefix}{nibble:x}")));
        }
    }
}

/// The hashes only in `a` and only in `b`, both sorted ascending.
fn sorted_difference(a: &[Hash], b: &[Hash]) -> (Vec<Hash>, Vec<Hash>) {
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => {
                only_a.push(*x);
                i += 1;
            }
            (Some(_), Some(y)) => {
                only_b.push(*y);
                j += 1;
            }
            (Some(x), None) => {
                only_a.push(*x);
                i += 1;
            }
            (None, Some(y)) => {
                only_b.push(*y);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (only_a, only_b)
}

/// Compares the facts of `types` (type patterns; every type when empty)
/// that `a` and `b` hold; see the module documentation.
pub async fn diff(
    a: &dyn DigestSource,
    b: &dyn DigestSource,
    types: &[String],
    options: &DiffOptions,
) -> Result<Difference, DiffError> {
    let (root_a, root_b) = tokio::join!(a.digests("", types), b.digests("", types));
    let (store_a, root_a) = root_a
        .and_then(|answer| check(answer, "", None))
        .map_err(|error| DiffError::Source {
            side: Side::A,
            error,
        })?;
    let (store_b, root_b) = root_b
        .and_then(|answer| check(answer, "", None))
        .map_err(|error| DiffError::Source {
            side: Side::B,
            error,
        })?;
    let comparison = Comparison {
        a,
        b,
        types,
        store_a,
        store_b,
    };
    let mut found = Found {
        requests: 2,
        ..Found::default()
    };
    compare("", &root_a, &root_b, &mut found);
    let mut difference = Difference {
        count_a: root_a.count,
        count_b: root_b.count,
        ..Difference::default()
    };
    let mut requests = 0;
    let mut waiting: VecDeque<Task> = VecDeque::new();
    let mut running = FuturesUnordered::new();
    let mut absorb = |found: Found, waiting: &mut VecDeque<Task>| -> Result<(), DiffError> {
        requests += found.requests;
        difference.only_in_a.extend(found.only_in_a);
        difference.only_in_b.extend(found.only_in_b);
        if difference.only_in_a.len() + difference.only_in_b.len() > options.differences_max {
            return Err(DiffError::TooManyDifferences {
                max: options.differences_max,
            });
        }
        waiting.extend(found.next);
        Ok(())
    };
    absorb(found, &mut waiting)?;
    let in_flight_max = options.requests_in_flight_max.max(1);
    loop {
        while running.len() < in_flight_max {
            let Some(task) = waiting.pop_front() else {
                break;
            };
            running.push(comparison.run(task));
        }
        match running.next().await {
            None => break,
            Some(result) => absorb(result?, &mut waiting)?,
        }
    }
    drop(running);
    difference.store_a = comparison.store_a;
    difference.store_b = comparison.store_b;
    difference.requests = requests;
    difference.only_in_a.sort_unstable();
    difference.only_in_b.sort_unstable();
    Ok(difference)
}

/// A deployment's digests over API v1 (`GET /v1/digests`), with an access
/// token when it runs with `--auth`. Every request has a deadline and
/// every answer a size bound.
#[derive(Clone)]
pub struct HttpDigestSource {
    base: Url,
    token: Option<String>,
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpDigestSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("HttpDigestSource")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<not shown>"))
            .finish()
    }
}

impl HttpDigestSource {
    /// The deployment at `base` (checked by
    /// [`crate::parse_source_url`]), authenticating with `token` if given,
    /// trusting `extra_roots` besides the public roots.
    pub fn new(
        base: Url,
        token: Option<String>,
        extra_roots: &[reqwest::Certificate],
    ) -> Result<HttpDigestSource, SourceError> {
        let client = crate::http::client(
            extra_roots,
            Some(Duration::from_millis(DIGEST_REQUEST_TIMEOUT_MS)),
        )?;
        Ok(HttpDigestSource {
            base,
            token,
            client,
        })
    }

    async fn get(&self, prefix: &str, types: &[String]) -> Result<DigestsAnswer, SourceError> {
        let mut url = self.base.clone();
        let path = format!("{}/v1/digests", self.base.path().trim_end_matches('/'));
        url.set_path(&path);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("prefix", prefix);
            for pattern in types {
                query.append_pair("types", pattern);
            }
        }
        let (status, body) = crate::http::send(
            self.client.get(url),
            self.token.as_deref(),
            DIGEST_ANSWER_BYTES_MAX,
        )
        .await?;
        if status != StatusCode::OK {
            return Err(crate::http::status_error(status, &body));
        }
        serde_json::from_slice(&body)
            .map_err(|error| SourceError::Invalid(format!("not a digest answer: {error}")))
    }
}

impl DigestSource for HttpDigestSource {
    fn digests<'a>(
        &'a self,
        prefix: &'a str,
        types: &'a [String],
    ) -> BoxFuture<'a, Result<DigestsAnswer, SourceError>> {
        Box::pin(self.get(prefix, types))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicU64, Ordering};

    use cairn_api::DigestBucket;

    use super::*;

    /// A deployment in memory: its hashes, answered as a server would.
    struct Memory {
        store: String,
        hashes: BTreeSet<Hash>,
        requests: AtomicU64,
    }

    impl Memory {
        fn new(store: &str, hashes: impl IntoIterator<Item = Hash>) -> Memory {
            Memory {
                store: store.into(),
                hashes: hashes.into_iter().collect(),
                requests: AtomicU64::new(0),
            }
        }
    }

    fn hex_digest(hashes: &[&Hash]) -> String {
        let mut digest = [0u8; 32];
        for hash in hashes {
            xor_into(&mut digest, hash.as_bytes());
        }
        Hash(digest).to_hex()
    }

    impl DigestSource for Memory {
        fn digests<'a>(
            &'a self,
            prefix: &'a str,
            _types: &'a [String],
        ) -> BoxFuture<'a, Result<DigestsAnswer, SourceError>> {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let under: Vec<&Hash> = self
                .hashes
                .iter()
                .filter(|hash| hash.to_hex().starts_with(prefix))
                .collect();
            let buckets = (0..16)
                .map(|nibble| {
                    let child = format!("{prefix}{nibble:x}");
                    let in_child: Vec<&Hash> = under
                        .iter()
                        .copied()
                        .filter(|hash| hash.to_hex().starts_with(&child))
                        .collect();
                    DigestBucket {
                        prefix: child,
                        count: in_child.len() as u64,
                        digest: hex_digest(&in_child),
                    }
                })
                .collect();
            let answer = DigestsAnswer {
                store: self.store.clone(),
                prefix: prefix.to_string(),
                count: under.len() as u64,
                digest: hex_digest(&under),
                buckets,
                hashes: (prefix.len() >= 3 && under.len() <= 4)
                    .then(|| under.iter().map(|hash| **hash).collect()),
            };
            Box::pin(std::future::ready(Ok(answer)))
        }
    }

    fn hashes(range: std::ops::Range<u32>) -> Vec<Hash> {
        range.map(|n| Hash::of_bytes(&n.to_be_bytes())).collect()
    }

    #[tokio::test]
    async fn finds_exactly_what_each_side_lacks() {
        let common = hashes(0..3_000);
        let only_a = hashes(10_000..10_007);
        let only_b = hashes(20_000..20_003);
        let a = Memory::new("a", common.iter().chain(&only_a).copied());
        let b = Memory::new("b", common.iter().chain(&only_b).copied());
        let found = diff(&a, &b, &[], &DiffOptions::default()).await.unwrap();
        let mut expected_a = only_a.clone();
        expected_a.sort();
        let mut expected_b = only_b.clone();
        expected_b.sort();
        assert_eq!(found.only_in_a, expected_a);
        assert_eq!(found.only_in_b, expected_b);
        assert_eq!((found.store_a.as_str(), found.store_b.as_str()), ("a", "b"));
        assert_eq!(found.count_a, 3_007);
        // The cost follows the differences: a few requests per difference.
        assert!(found.requests < 10 * 10, "{} requests", found.requests);
        let same = diff(&a, &a, &[], &DiffOptions::default()).await.unwrap();
        assert!(same.is_empty());
        assert_eq!(same.requests, 2);
    }

    #[tokio::test]
    async fn against_an_empty_side_lists_everything() {
        let all = hashes(0..500);
        let a = Memory::new("a", all.iter().copied());
        let b = Memory::new("b", []);
        let found = diff(&a, &b, &[], &DiffOptions::default()).await.unwrap();
        assert_eq!(found.only_in_a.len(), 500);
        assert!(found.only_in_b.is_empty());
        assert_eq!(
            b.requests.load(Ordering::Relaxed),
            1,
            "B is asked only once"
        );
        let limited = DiffOptions {
            differences_max: 100,
            ..DiffOptions::default()
        };
        assert!(matches!(
            diff(&a, &b, &[], &limited).await,
            Err(DiffError::TooManyDifferences { max: 100 })
        ));
    }

    #[test]
    fn answers_that_do_not_add_up_are_refused() {
        let hash = Hash::of_bytes(b"x");
        let good = DigestsAnswer {
            store: "s".into(),
            prefix: String::new(),
            count: 1,
            digest: hash.to_hex(),
            buckets: (0..16)
                .map(|nibble| {
                    let mine = nibble == usize::from(hash.as_bytes()[0] >> 4);
                    DigestBucket {
                        prefix: format!("{nibble:x}"),
                        count: u64::from(mine),
                        digest: if mine { hash.to_hex() } else { "0".repeat(64) },
                    }
                })
                .collect(),
            hashes: None,
        };
        assert!(check(good.clone(), "", None).is_ok());
        let mut wrong_count = good.clone();
        wrong_count.count = 2;
        assert!(check(wrong_count, "", None).is_err());
        let mut wrong_prefix = good.clone();
        wrong_prefix.prefix = "a".into();
        assert!(check(wrong_prefix, "", None).is_err());
        assert!(check(good.clone(), "", Some("another")).is_err());
        let mut listed_wrong = good.clone();
        listed_wrong.hashes = Some(vec![Hash::of_bytes(b"y")]);
        assert!(check(listed_wrong, "", None).is_err());
        let mut bad_digest = good;
        bad_digest.digest = "zz".into();
        assert!(check(bad_digest, "", None).is_err());
    }
}
