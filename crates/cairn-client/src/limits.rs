//! Every limit and default of the SDK in one place, units last in the names.
//!
//! Server-side ranges (pull sizes, token batches, long-poll lengths) come
//! from `docs/api-v1.md`; the client keeps its requests inside them so that
//! it never provokes a `400` by its own choice of sizes.

use std::time::Duration;

/// Facts in one `POST /v1/facts` at most (larger batches are split), the
/// longest long-poll, messages per pull, tokens per call and the error
/// text kept: the protocol's limits.
pub use cairn_api::limits::{
    ACK_TOKENS_MAX as TOKENS_PER_CALL_MAX, BATCH_FACTS_MAX,
    LAST_ERROR_BYTES_MAX as NACK_ERROR_BYTES_MAX, PULL_MESSAGES_MAX, WAIT_MS_MAX,
};

/// The highest schema version (a typed fact's `VERSION` at most).
pub use cairn_api::limits::SCHEMA_VERSION_MAX;

/// Largest `limit` of one successors page.
pub const SUCCESSORS_PAGE_FACTS_MAX: u32 = cairn_api::limits::SUCCESSORS_LIMIT_MAX as u32;
/// Page size of [`crate::Successors::first`]: small, since one match ends
/// it, but not one, since successors left out by `without` fill pages too.
pub const FIRST_SUCCESSOR_PAGE_FACTS: u32 = 100;
/// Largest `limit` of one log page.
pub const LOG_PAGE_FACTS_MAX: u32 = cairn_api::limits::LOG_LIMIT_MAX as u32;

/// Extra time a long-poll request gets beyond its `wait_ms` before the client
/// gives up on it, so that a slow answer after a full wait is not mistaken
/// for a dead server.
pub const LONG_POLL_MARGIN: Duration = Duration::from_secs(10);
/// Canonical bytes of one fact the client builds at most: the server's
/// request body limit. The server applies its own (configurable, usually
/// smaller) per-fact limit and answers `413` beyond it.
pub const FACT_CANONICAL_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Default time one request may take (long-polls get their wait on top).
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Default time to establish a connection to one endpoint.
pub const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// Default number of tries of one request across all endpoints.
pub const ATTEMPTS_MAX_DEFAULT: u32 = 6;
/// Default first backoff before a retry.
pub const BACKOFF_INITIAL_DEFAULT: Duration = Duration::from_millis(100);
/// Default longest backoff before a retry.
pub const BACKOFF_MAX_DEFAULT: Duration = Duration::from_secs(5);

/// Default number of handlers a subscriber runs at once.
pub const SUBSCRIBER_CONCURRENCY_DEFAULT: usize = 8;
/// Handlers one subscriber may run at once at most.
pub const SUBSCRIBER_CONCURRENCY_MAX: usize = 10_000;
/// Default long-poll of a subscriber's pulls.
pub const SUBSCRIBER_WAIT_MS_DEFAULT: u64 = 10_000;
/// Causes of a handler's error that its text follows at most (the text is
/// also cut to [`NACK_ERROR_BYTES_MAX`]).
pub const HANDLER_ERROR_CAUSES_MAX: usize = 64;
/// Bytes of a transport failure's text at most (the error and its causes),
/// as kept in [`crate::ClientError::Unavailable`].
pub const TRANSPORT_ERROR_TEXT_BYTES_MAX: usize = 4096;
/// Default number of finished messages that triggers an ack/nack flush.
pub const ACK_BATCH_TOKENS_DEFAULT: usize = 256;
/// Default time a finished message waits before its ack/nack is flushed.
pub const ACK_FLUSH_INTERVAL_DEFAULT: Duration = Duration::from_millis(20);
/// Rounds of retries of one ack/nack batch before the subscriber gives up on
/// it (the messages are then redelivered after their lease: at least once).
pub const ACK_FLUSH_ROUNDS_MAX: u32 = 8;
/// Default time in-flight handlers get to finish at shutdown.
pub const DRAIN_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Shortest interval between two scans for leases to extend.
pub const LEASE_SCAN_INTERVAL_MIN: Duration = Duration::from_millis(10);
/// Longest interval between two scans for leases to extend.
pub const LEASE_SCAN_INTERVAL_MAX: Duration = Duration::from_secs(5);

const _: () = assert!(SUBSCRIBER_WAIT_MS_DEFAULT <= WAIT_MS_MAX);
const _: () = assert!(ACK_BATCH_TOKENS_DEFAULT <= TOKENS_PER_CALL_MAX);
const _: () = assert!(SUBSCRIBER_CONCURRENCY_DEFAULT <= SUBSCRIBER_CONCURRENCY_MAX);
const _: () = assert!(LEASE_SCAN_INTERVAL_MIN.as_millis() < LEASE_SCAN_INTERVAL_MAX.as_millis());

/// Bytes of one `POST /v1/facts` body the client aims to stay under (the
/// server's request limit is 32 MiB); larger batches are split.
pub const BATCH_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Longest pause between two looks of [`crate::Client::wait_for_fact`] (the
/// first is [`REPLY_POLL_INTERVAL_MIN`], then it doubles).
pub const FACT_WAIT_POLL_INTERVAL_MAX: Duration = Duration::from_millis(500);
/// How long a request lives by default: a responder skips it afterwards
/// (see [`crate::Request`]).
pub const REQUEST_EXPIRY_DEFAULT: Duration = Duration::from_secs(300);
/// Shortest time between two polls for a reply (or for new facts of a
/// followed stream), so that a server answering a long-poll at once cannot
/// make the client spin.
pub const REPLY_POLL_INTERVAL_MIN: Duration = Duration::from_millis(50);

const _: () = assert!(BATCH_BODY_BYTES_MAX >= 2 * cairn_fact::FACT_CANONICAL_BYTES_MAX_DEFAULT);
/// Shortest time between two pulls that found nothing, so that a pull with
/// no wait (or a server answering at once) cannot make a subscriber spin.
pub const PULL_EMPTY_INTERVAL_MIN: Duration = Duration::from_millis(50);
/// The server's default lease (`lease_ms` of a subscription definition).
pub const SUBSCRIPTION_LEASE_MS_DEFAULT: u64 = 30_000;

/// Steps of a saga at most.
pub const SAGA_STEPS_MAX: usize = 64;
/// Bytes of a saga's or a step's name at most (subscription names are
/// built from it).
pub const SAGA_NAME_BYTES_MAX: usize = 64;
/// Attempts of a step's action or compensation at most.
pub const SAGA_ATTEMPTS_MAX: u32 = 1_000;
/// Attempts of a compensation per round, unless the step says otherwise.
pub const SAGA_COMPENSATION_ATTEMPTS_DEFAULT: u32 = 5;
/// Wait before retrying a step, unless the step says otherwise.
pub const SAGA_RETRY_DELAY_DEFAULT: Duration = Duration::from_millis(100);
/// Bytes of an error (or a request's reason) kept in the journal.
pub const SAGA_ERROR_BYTES_MAX: usize = 2_048;
/// Transitions of one saga at most: a journal past it is refused as
/// malformed, and a drive stops after that many moves.
pub const SAGA_TRANSITIONS_MAX: usize = 10_000;
/// Retry or abort requests of one saga read at most.
pub const SAGA_REQUESTS_MAX: usize = 1_000;
/// Saga definitions read at most.
pub const SAGA_DEFINITIONS_MAX: usize = 10_000;
/// Sagas `Sagas::list` reads at most.
pub const SAGAS_LIST_MAX: usize = 10_000;
/// Journals read at once by `Sagas::list`.
pub const SAGA_READS_CONCURRENT_MAX: usize = 8;
/// Instances a runner drives at once per subscription, by default.
pub const SAGA_RUNNER_CONCURRENCY_DEFAULT: usize = 64;
/// Lease of a runner's deliveries by default: how soon another runner
/// takes over after one died.
pub const SAGA_RUNNER_LEASE_MS_DEFAULT: u64 = 5_000;
/// Deliveries of a saga fact before it is a dead letter of the runner's
/// subscription (a runner crashing in a loop).
pub const SAGA_SUBSCRIPTION_ATTEMPTS_MAX: u32 = 1_000;
/// Redelivery backoff of the runner's subscriptions: first wait.
pub const SAGA_SUBSCRIPTION_BACKOFF_INITIAL_MS: u64 = 100;
/// Redelivery backoff of the runner's subscriptions: longest wait.
pub const SAGA_SUBSCRIPTION_BACKOFF_MAX_MS: u64 = 5_000;

const _: () = assert!(SAGA_RUNNER_CONCURRENCY_DEFAULT <= SUBSCRIBER_CONCURRENCY_MAX);
const _: () = assert!(SAGA_COMPENSATION_ATTEMPTS_DEFAULT <= SAGA_ATTEMPTS_MAX);

/// The name of a sync ([`crate::SyncOptions`]) when none is given.
pub const SYNC_NAME_DEFAULT: &str = "remote";
/// The prefix of the embedded node's link that brings a sync's remote
/// facts in (`sync-<name>`).
pub const SYNC_LINK_PREFIX: &str = "sync-";
/// The first wait before a sync retries sending to an unreachable remote.
pub const SYNC_RETRY_DELAY_MIN: Duration = Duration::from_millis(200);
/// The longest wait between a sync's retries, by default.
pub const SYNC_RETRY_DELAY_MAX_DEFAULT: Duration = Duration::from_secs(30);
/// How often waiting for a sync to catch up looks at its progress.
pub const SYNC_STATUS_POLL: Duration = Duration::from_millis(20);
/// A request of the sync to its own embedded node (defining, pausing and
/// reading its link), at most.
pub const SYNC_NODE_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of an answer of the embedded node to such a request, at most.
pub const SYNC_NODE_ANSWER_BYTES_MAX: usize = 1024 * 1024;
