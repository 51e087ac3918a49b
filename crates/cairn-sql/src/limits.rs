//! Every limit and default of the outbox relay and the HTTP publisher in one
//! place, so that they can be read (and checked against each other) together.
//! Units come last in the names.

use std::time::Duration;

/// Facts the relay publishes in one call by default.
pub const RELAY_BATCH_FACTS_DEFAULT: usize = 500;
/// Facts the relay publishes in one call at most, whatever is configured.
/// Cairn accepts 10,000 facts per request; staying well below keeps one
/// request (and the statement that marks the batch sent, which binds one
/// parameter per row) small.
pub const RELAY_BATCH_FACTS_MAX: usize = 1_000;
/// Canonical bytes the relay puts in one call at most (at least one fact is
/// always sent). Cairn refuses request bodies above 32 MiB.
pub const RELAY_BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;
/// How often the relay looks for unsent rows when nobody wakes it.
pub const RELAY_POLL_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);
/// How often an idle relay purges sent rows (when a retention is set);
/// a relay that publishes purges after every batch.
pub const RELAY_PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// First wait of the relay after a failed pass (before jitter).
pub const RELAY_BACKOFF_INITIAL_DEFAULT: Duration = Duration::from_millis(100);
/// Longest wait of the relay after failed passes (before jitter).
pub const RELAY_BACKOFF_MAX_DEFAULT: Duration = Duration::from_secs(30);
/// Time one publish request of the HTTP publisher may take.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);
/// Characters of an error answer kept in a [`crate::PublishError`].
pub const ERROR_MESSAGE_CHARS_MAX: usize = 500;

/// Bytes of error text kept with an outbox dead letter (the whole chain of
/// causes, cut on a character boundary): the same bound as the error text
/// Cairn's server keeps with its own dead letters.
pub const DEAD_LETTER_ERROR_BYTES_MAX: usize = 4 * 1024;
/// Dead letters [`crate::Outbox::dead_letters`] returns at most per call.
pub const DEAD_LETTERS_LISTED_MAX: usize = 1_000;
/// Hashes looked up in one statement when the relay checks whether a
/// batch's predecessors are dead letters (one bound parameter each).
pub const DEAD_LOOKUP_HASHES_MAX: usize = 500;
/// How often at most the relay counts pending rows and dead letters for
/// [`crate::RelayHandle::metrics`] (counting is a scan of an index).
pub const RELAY_METRICS_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

const _: () = assert!(RELAY_BATCH_FACTS_DEFAULT >= 1);
const _: () = assert!(DEAD_LETTER_ERROR_BYTES_MAX >= 256);
const _: () = assert!(DEAD_LOOKUP_HASHES_MAX >= 1 && DEAD_LOOKUP_HASHES_MAX < 32_000);
const _: () = assert!(DEAD_LETTERS_LISTED_MAX >= 1);
const _: () = assert!(RELAY_BATCH_FACTS_DEFAULT <= RELAY_BATCH_FACTS_MAX);
// SQLite binds at most 32,766 parameters per statement.
const _: () = assert!(RELAY_BATCH_FACTS_MAX < 32_000);
const _: () = assert!(RELAY_BATCH_BYTES_MAX < 32 * 1024 * 1024);
const _: () =
    assert!(RELAY_BACKOFF_INITIAL_DEFAULT.as_millis() <= RELAY_BACKOFF_MAX_DEFAULT.as_millis());
