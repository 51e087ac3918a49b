//! Every limit of the delivery logic in one place. Units come last in the
//! names. The README's "Limits" section documents these values.

/// The lease range, the longest delay (backoff ceiling and nack delay) and
/// the longest error text kept with a message (longer ones are cut) are
/// the protocol's.
pub use cairn_api::limits::{DELAY_MS_MAX, LAST_ERROR_BYTES_MAX, LEASE_MS_MAX, LEASE_MS_MIN};

/// Messages one subscription keeps track of at once (leased, waiting for a
/// retry, or ready). New matching facts are admitted only while there is
/// room, so a slow consumer never makes memory grow with the backlog.
pub const TRACKED_MESSAGES_MAX: usize = 20_000;
/// Default lease.
pub const LEASE_MS_DEFAULT: u64 = 30_000;
/// Largest `max_attempts`.
pub const MAX_ATTEMPTS_MAX: u32 = 1_000;
/// Default `max_attempts`.
pub const MAX_ATTEMPTS_DEFAULT: u32 = 5;
/// Default first backoff.
pub const BACKOFF_INITIAL_MS_DEFAULT: u64 = 200;
/// Largest first backoff.
pub const BACKOFF_INITIAL_MS_MAX: u64 = 3_600_000;
/// Default backoff ceiling.
pub const BACKOFF_MAX_MS_DEFAULT: u64 = 60_000;
/// Largest `max_in_flight_per_key`.
pub const MAX_IN_FLIGHT_PER_KEY_MAX: u32 = 1_000;
/// Largest `rate_limit_per_s`.
pub const RATE_LIMIT_PER_S_MAX: u32 = 1_000_000;
/// Longest subscription name, in bytes.
pub const SUBSCRIPTION_NAME_BYTES_MAX: usize = 128;

const _: () = assert!(LEASE_MS_MIN <= LEASE_MS_DEFAULT && LEASE_MS_DEFAULT <= LEASE_MS_MAX);
const _: () = assert!(BACKOFF_INITIAL_MS_DEFAULT <= BACKOFF_MAX_MS_DEFAULT);
const _: () = assert!(BACKOFF_INITIAL_MS_MAX <= DELAY_MS_MAX);
const _: () = assert!(MAX_ATTEMPTS_DEFAULT <= MAX_ATTEMPTS_MAX);
