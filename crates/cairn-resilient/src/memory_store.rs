//! `InMemoryIdempotencyStore`: the provided [`IdempotencyStore`], bounded by
//! entry count, bytes and age; the oldest entries go first when full.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::idempotency_store::{
    BeginOutcome, IdempotencyStore, IdempotencyStoreError, RequestFingerprint, StoreKey,
    StoredAnswer,
};
use crate::limits::{MEMORY_STORE_BYTES_MAX, MEMORY_STORE_ENTRIES_MAX, MEMORY_STORE_TTL};

/// Bounds of an [`InMemoryIdempotencyStore`].
#[derive(Clone, Debug)]
pub struct InMemoryStoreOptions {
    /// Entries kept at most.
    pub entries_max: usize,
    /// Bytes (keys, headers, bodies) kept at most.
    pub bytes_max: usize,
    /// How long an entry (in progress or answered) is kept.
    pub ttl: Duration,
}

impl Default for InMemoryStoreOptions {
    fn default() -> Self {
        InMemoryStoreOptions {
            entries_max: MEMORY_STORE_ENTRIES_MAX,
            bytes_max: MEMORY_STORE_BYTES_MAX,
            ttl: MEMORY_STORE_TTL,
        }
    }
}

/// Answers kept in process memory; lost on restart.
#[derive(Debug)]
pub struct InMemoryIdempotencyStore {
    options: InMemoryStoreOptions,
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    entries: HashMap<StoreKey, MemoryEntry>,
    /// Insertion order (sequence → key), which is also expiry order.
    order: BTreeMap<u64, StoreKey>,
    sequence_next: u64,
    bytes_total: usize,
}

#[derive(Debug)]
struct MemoryEntry {
    sequence: u64,
    created_at: Instant,
    fingerprint: RequestFingerprint,
    answer: Option<StoredAnswer>,
    size_bytes: usize,
}

impl InMemoryIdempotencyStore {
    /// An empty store with the given bounds.
    pub fn new(options: InMemoryStoreOptions) -> Self {
        InMemoryIdempotencyStore {
            options,
            state: Mutex::new(MemoryState::default()),
        }
    }

    /// Entries held now (in progress and answered), for metrics and tests.
    pub fn entries_count(&self) -> usize {
        self.lock().entries.len()
    }

    /// Every method leaves the state consistent before it could panic, so a
    /// poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl MemoryState {
    fn remove(&mut self, key: &StoreKey) {
        if let Some(entry) = self.entries.remove(key) {
            self.order.remove(&entry.sequence);
            self.bytes_total -= entry.size_bytes;
        }
    }

    /// Drops expired entries, then the oldest ones until within bounds.
    fn evict(&mut self, options: &InMemoryStoreOptions, now: Instant) {
        while let Some((_, key)) = self.order.first_key_value() {
            let Some(entry) = self.entries.get(key) else {
                break;
            };
            let expired = now.saturating_duration_since(entry.created_at) >= options.ttl;
            let over_bounds =
                self.entries.len() > options.entries_max || self.bytes_total > options.bytes_max;
            if !expired && !over_bounds {
                break;
            }
            let key = key.clone();
            self.remove(&key);
        }
    }
}

impl IdempotencyStore for InMemoryIdempotencyStore {
    async fn begin(
        &self,
        key: &StoreKey,
        fingerprint: RequestFingerprint,
    ) -> Result<BeginOutcome, IdempotencyStoreError> {
        let now = Instant::now();
        let mut state = self.lock();
        state.evict(&self.options, now);
        if let Some(entry) = state.entries.get(key) {
            return Ok(match &entry.answer {
                _ if entry.fingerprint != fingerprint => BeginOutcome::FingerprintMismatch,
                None => BeginOutcome::InProgress,
                Some(answer) => BeginOutcome::Completed(answer.clone()),
            });
        }
        let sequence = state.sequence_next;
        state.sequence_next += 1;
        let size_bytes = key.size_bytes();
        state.bytes_total += size_bytes;
        state.order.insert(sequence, key.clone());
        state.entries.insert(
            key.clone(),
            MemoryEntry {
                sequence,
                created_at: now,
                fingerprint,
                answer: None,
                size_bytes,
            },
        );
        state.evict(&self.options, now);
        Ok(BeginOutcome::Started)
    }

    async fn complete(
        &self,
        key: &StoreKey,
        answer: StoredAnswer,
    ) -> Result<(), IdempotencyStoreError> {
        let mut state = self.lock();
        let size_bytes = key.size_bytes() + answer.size_bytes();
        if size_bytes > self.options.bytes_max {
            state.remove(key);
            return Ok(());
        }
        let Some(entry) = state.entries.get_mut(key) else {
            return Ok(());
        };
        if entry.answer.is_some() {
            return Ok(());
        }
        let size_before = entry.size_bytes;
        entry.answer = Some(answer);
        entry.size_bytes = size_bytes;
        state.bytes_total = state.bytes_total - size_before + size_bytes;
        state.evict(&self.options, Instant::now());
        Ok(())
    }

    async fn release(&self, key: &StoreKey) -> Result<(), IdempotencyStoreError> {
        let mut state = self.lock();
        if state
            .entries
            .get(key)
            .is_some_and(|entry| entry.answer.is_none())
        {
            state.remove(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, Method, StatusCode};
    use bytes::Bytes;

    use super::*;

    fn key(name: &str) -> StoreKey {
        StoreKey {
            method: Method::POST,
            path: "/orders".into(),
            idempotency_key: name.into(),
        }
    }

    fn answer(body: &'static [u8]) -> StoredAnswer {
        StoredAnswer {
            status: StatusCode::CREATED,
            headers: HeaderMap::new(),
            body: Bytes::from_static(body),
        }
    }

    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn bounded_by_entries_bytes_and_age() {
        block_on(async {
            let print = RequestFingerprint::of(&Method::POST, "/orders", b"");
            let store = InMemoryIdempotencyStore::new(InMemoryStoreOptions {
                entries_max: 2,
                bytes_max: 64,
                ttl: Duration::from_secs(60),
            });
            for name in ["a", "b", "c"] {
                store.begin(&key(name), print).await.expect("begin");
            }
            assert_eq!(store.entries_count(), 2, "oldest evicted by count");
            let outcome = store.begin(&key("a"), print).await.expect("begin");
            assert!(matches!(outcome, BeginOutcome::Started), "a was evicted");
            store
                .complete(&key("a"), answer(&[b'x'; 100]))
                .await
                .expect("complete");
            assert_eq!(
                store.entries_count(),
                1,
                "an answer over bytes_max is not kept"
            );

            let short_lived = InMemoryIdempotencyStore::new(InMemoryStoreOptions {
                ttl: Duration::ZERO,
                ..InMemoryStoreOptions::default()
            });
            short_lived.begin(&key("a"), print).await.expect("begin");
            let outcome = short_lived.begin(&key("a"), print).await.expect("begin");
            assert!(
                matches!(outcome, BeginOutcome::Started),
                "expired entry replaced"
            );
        });
    }
}
