//! Every limit of replication, in one place.

/// Entries a link asks for per page of the source's log (the log's own
/// maximum is 10,000).
pub const PAGE_FACTS_DEFAULT: usize = 1_000;

/// How long a caught-up link long-polls the source's log.
pub const WAIT_MS_DEFAULT: u64 = 10_000;

/// Predecessors a link fetches to close one page, at most.
pub const CLOSURE_FACTS_MAX: usize = 10_000;

/// Predecessor fetches in flight at once.
pub const FETCHES_IN_FLIGHT_MAX: usize = 16;

/// The largest answer read from a source (a page of 10,000 facts of the
/// default maximum size, 64 KiB, would be larger: such a source is asked
/// for smaller pages by the default page size).
pub const ANSWER_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A request to a source that takes longer than its long-poll plus this
/// is cut off (a stalled connection).
pub const REQUEST_TIMEOUT_MS_BEYOND_WAIT: u64 = 10_000;

/// Connecting to a source, at most.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
