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

/// Facts in one `POST /v1/facts` a sink sends to another deployment, at
/// most (API v1's batch limit).
pub const SINK_BATCH_FACTS_MAX: usize = cairn_api::limits::BATCH_FACTS_MAX;

/// Canonical bytes in one `POST /v1/facts` a sink sends, at most (a
/// server takes bodies of up to 32 MiB by default).
pub const SINK_BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;

/// A `POST /v1/facts` to another deployment that takes longer than this
/// is cut off (the batch may or may not be stored; sending it again is a
/// no-op for what was).
pub const SINK_REQUEST_TIMEOUT_MS: u64 = 60_000;

/// Prefixes a comparison (`cairn diff`) asks about at once, at most; each
/// is one `GET /v1/digests` per deployment.
pub const DIFF_REQUESTS_IN_FLIGHT_MAX: usize = 16;

/// Differences a comparison keeps at most (32 bytes each) before it fails.
pub const DIFF_DIFFERENCES_MAX: usize = 10_000_000;

/// The largest digest answer read (one lists at most 256 hashes: about
/// 20 KiB).
pub const DIGEST_ANSWER_BYTES_MAX: usize = 1024 * 1024;

/// One digest request, connecting included, at most.
pub const DIGEST_REQUEST_TIMEOUT_MS: u64 = 30_000;
