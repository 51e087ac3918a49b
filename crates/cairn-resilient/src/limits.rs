//! Every fixed limit of the crate in one place, so that reviews and tuning
//! look at a single file.

use std::time::Duration;

/// Longest accepted `Idempotency-Key`, in bytes (Stripe and the IETF draft use 255).
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 255;

/// Largest response body the client reads into memory; larger answers fail the call.
pub const RESPONSE_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Highest `attempts_max` a client accepts: more attempts only add load to a sick server.
pub const ATTEMPTS_MAX_LIMIT: u32 = 10;

/// Outcomes the circuit breaker keeps for its failure-rate window; older ones are dropped
/// first, so memory stays bounded whatever the call rate.
pub const BREAKER_WINDOW_OUTCOMES_MAX: usize = 1024;

/// Shortest and longest window of the retry budget (bounds asserted by `tower`'s `TpsBudget`).
pub const RETRY_BUDGET_TTL_MIN: Duration = Duration::from_secs(1);
/// See [`RETRY_BUDGET_TTL_MIN`].
pub const RETRY_BUDGET_TTL_MAX: Duration = Duration::from_secs(60);
/// Highest retry ratio `TpsBudget` accepts (1000 retries per call).
pub const RETRY_BUDGET_RATIO_MAX: f32 = 1000.0;

/// Default limit on a request body the idempotency layer buffers to fingerprint it.
pub const IDEMPOTENT_REQUEST_BYTES_MAX: usize = 1024 * 1024;
/// Default limit on an answer body the idempotency layer stores; larger answers pass
/// through unstored.
pub const IDEMPOTENT_ANSWER_BYTES_MAX: usize = 1024 * 1024;

/// Default number of answers the in-memory idempotency store keeps.
pub const MEMORY_STORE_ENTRIES_MAX: usize = 10_000;
/// Default number of bytes (keys, headers and bodies) the in-memory store keeps.
pub const MEMORY_STORE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Default time an answer stays replayable (24 hours, as most public APIs promise).
pub const MEMORY_STORE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

const _: () = assert!(IDEMPOTENT_ANSWER_BYTES_MAX < MEMORY_STORE_BYTES_MAX);
