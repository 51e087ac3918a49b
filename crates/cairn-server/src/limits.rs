//! Every limit of the HTTP API in one place. Units come last in the names.
//! The README's "Limits" section documents these values.

use std::time::Duration;

/// The limits a request is checked against are the protocol's.
pub use cairn_api::limits::{
    ACK_TOKENS_MAX, BATCH_FACTS_MAX, DEAD_LETTERS_LIMIT_DEFAULT, DEAD_LETTERS_LIMIT_MAX,
    LOG_LIMIT_DEFAULT, LOG_LIMIT_MAX, PULL_MESSAGES_MAX, SUCCESSORS_LIMIT_DEFAULT,
    SUCCESSORS_LIMIT_MAX, SUCCESSOR_TYPES_MAX, WAIT_MS_MAX, WITHOUT_TYPES_MAX,
};

/// Bytes of a request body at most (blobs excepted).
pub const REQUEST_BODY_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Canonical bytes of one fact at most (the default; configurable).
pub const FACT_CANONICAL_BYTES_MAX_DEFAULT: usize = cairn_fact::FACT_CANONICAL_BYTES_MAX_DEFAULT;
/// JSON nesting depth of a request body: a fact's own depth limit plus the
/// two levels of the `{"facts": [...]}` envelope.
pub const REQUEST_JSON_DEPTH_MAX: usize = cairn_fact::JSON_DEPTH_MAX + 2;
/// Bytes of one blob at most (the default; configurable).
pub const BLOB_BYTES_MAX_DEFAULT: u64 = 1024 * 1024 * 1024;
/// Requests handled at once (the default; configurable); beyond this the
/// server answers 429.
pub const CONCURRENT_REQUESTS_MAX: usize = 4_096;
/// Time a request (other than a long-poll's wait or a blob transfer) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);
/// Time a blob upload or download may take.
pub const BLOB_TIMEOUT: Duration = Duration::from_secs(3_600);
/// Time in-flight requests get to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

const _: () = assert!(PULL_MESSAGES_MAX <= cairn_delivery::limits::TRACKED_MESSAGES_MAX);
const _: () = assert!(WAIT_MS_MAX < REQUEST_TIMEOUT.as_millis() as u64);
const _: () = assert!(FACT_CANONICAL_BYTES_MAX_DEFAULT < REQUEST_BODY_BYTES_MAX);

// Streaming push (`routes/stream.rs`).

/// Bytes of one client frame (and of one client message) at most; larger
/// frames end the connection, since no valid client frame comes near it.
pub const STREAM_CLIENT_FRAME_BYTES_MAX: usize = 64 * 1024;
/// Credit one `{"credit": N}` frame may grant at most.
pub const STREAM_CREDIT_PER_FRAME_MAX: u64 = 1_000;
/// Credit granted but not yet used, at most, per connection: it bounds the
/// messages one stream leases ahead of its client's acknowledgements.
pub const STREAM_CREDIT_OUTSTANDING_MAX: u64 = 10_000;
/// Messages one pull of a stream leases at most.
pub const STREAM_PULL_MESSAGES_MAX: usize = 100;
/// How long one pull of a stream long-polls before it pulls again.
pub const STREAM_PULL_WAIT_MS: u64 = 1_000;
/// Leased messages waiting to be written to the client, at most.
pub const STREAM_SEND_BUFFER_MESSAGES: usize = 100;
/// Time one frame may take to be written before the client counts as
/// stalled and the connection is dropped.
pub const STREAM_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Bad client frames a connection survives; the last one closes it (1008).
pub const STREAM_BAD_FRAMES_MAX: u32 = 10;
/// Stream connections open at once per server process; beyond this the
/// upgrade is refused with `503 overloaded`.
pub const STREAM_CONNECTIONS_MAX: usize = 1_024;

const _: () = assert!(STREAM_CREDIT_PER_FRAME_MAX <= STREAM_CREDIT_OUTSTANDING_MAX);
const _: () = assert!(STREAM_PULL_MESSAGES_MAX <= PULL_MESSAGES_MAX);
const _: () = assert!(STREAM_PULL_WAIT_MS <= WAIT_MS_MAX);
const _: () = assert!(STREAM_BAD_FRAMES_MAX >= 1);

/// Pages of the log one long-polling request reads past when the caller
/// may read none of their facts, before it answers an empty page with
/// `next` moved on.
pub const FILTERED_PAGES_MAX: u32 = 16;

/// Pages of [`SUCCESSOR_TYPES_MAX`] + 1 types one `GET
/// /v1/facts/{hash}/successor-types` reads from the store at most (addition,
/// issue 17). A caller who may read every type needs one; one who may read
/// some types reads on past the others until it has a full answer, and
/// past this bound it gets what it has with `complete: false`, so one
/// request never reads more than about 4,000 types.
pub const SUCCESSOR_TYPES_PAGES_MAX: u32 = 16;
const _: () = assert!(SUCCESSOR_TYPES_PAGES_MAX >= 1 && SUCCESSOR_TYPES_MAX >= 1);
// TLS (`tls.rs`).

/// Time a client gets to complete the TLS handshake after connecting; a
/// connection that has not by then is closed, so that connections which
/// never speak TLS cannot pile up.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of a certificate or key file at most: a chain is a few KiB, so a
/// larger file is a mistake, not something to read into memory.
pub const TLS_FILE_BYTES_MAX: u64 = 1024 * 1024;

// Durable timers (`timers/`).

/// Occurrences of one timer fired in one pass at most when it catches up
/// with `catch_up: all`; the rest fire in the passes that follow at once.
pub const TIMER_CATCH_UP_PER_PASS_MAX: usize = 100;
/// An occurrence more overdue than this when a scheduler reaches it counts
/// as missed (`catch_up: none` skips it).
pub const TIMER_MISSED_AFTER_MS: u64 = 60_000;
/// Due timers one scheduler pass takes at most.
pub const TIMERS_DUE_PER_PASS_MAX: usize = 1_000;
/// Wait before a timer whose firing failed (its template's predecessors
/// are missing, the store refused the fact) is tried again.
pub const TIMER_RETRY_MS: u64 = 5_000;
/// How long a PostgreSQL server holds the due timers it claimed before
/// another server may take them (a claimer that died is replaced then).
pub const TIMER_CLAIM_MS: u64 = 5_000;
/// The longest a scheduler sleeps before it looks again: how soon a
/// PostgreSQL server sees a timer another server put, and how soon a
/// jump of the fault clock is noticed.
pub const TIMER_IDLE_WAKE: Duration = Duration::from_millis(250);

const _: () = assert!(TIMER_CATCH_UP_PER_PASS_MAX * TIMERS_DUE_PER_PASS_MAX <= 1_000_000);

/// A server holds its claim to run a replication link this long (on
/// PostgreSQL): if it dies, another server takes the link over after at
/// most this much time.
pub const LINK_CLAIM_MS: u64 = 6_000;
/// A link's runner renews its claim this often, and long-polls its source
/// at most this long, so a claim never lapses while it runs.
pub const LINK_RENEW_MS: u64 = 1_500;
const _: () = assert!(LINK_RENEW_MS * 3 <= LINK_CLAIM_MS);
/// The link supervisor looks at the stored links at least this often
/// (a link put on another server, a claim to take over).
pub const LINK_SCAN: Duration = Duration::from_millis(1_000);
/// A failing link waits this long before its first retry, doubling up to
/// [`LINK_RETRY_MS_MAX`].
pub const LINK_RETRY_MS_MIN: u64 = 200;
/// The longest wait between two attempts of a failing link.
pub const LINK_RETRY_MS_MAX: u64 = 30_000;
/// A `PUT` of a link asks its source who it is (to refuse a link to
/// itself) for at most this long; a source that does not answer in time
/// is not a bad definition.
pub const LINK_PROBE_TIMEOUT: Duration = Duration::from_millis(2_000);
/// A log answer whose reader asked for entries after this server's head
/// waits this long for the head to get there before it answers the lower
/// head (see `routes/facts.rs`, `log_answer`).
pub const HEAD_CATCH_UP: Duration = Duration::from_millis(1_000);

// Service boundaries (`boundaries/`).

/// Observed flows (identity, kind, type) one server keeps at most; more
/// are counted as dropped and the answer says so.
pub const FLOWS_MAX: usize = 10_000;
/// Flow facts waiting to be written at most: observing never waits, so a
/// full queue leaves the flow to be written at its next observation.
pub const FLOW_QUEUE_MAX: usize = 1_024;
/// Flow facts written in one batch at most.
pub const FLOW_BATCH_MAX: usize = 256;
/// Pages of flow facts one catch-up reads at most (the rest: the next).
pub const FLOW_CATCH_UP_PAGES_MAX: usize = 10;

const _: () = assert!(FLOW_BATCH_MAX <= BATCH_FACTS_MAX);
