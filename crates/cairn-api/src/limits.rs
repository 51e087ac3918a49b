//! The limits a request of API v1 is checked against, in one place (units
//! last in the names). The server enforces them; the SDK and the OpenAPI
//! document state them; the README's "Limits" section lists them.

/// Facts in one `POST /v1/facts` batch at most.
pub const BATCH_FACTS_MAX: usize = 10_000;
/// Default `limit` of `GET /v1/log`.
pub const LOG_LIMIT_DEFAULT: usize = 1_000;
/// Largest `limit` of `GET /v1/log`.
pub const LOG_LIMIT_MAX: usize = 10_000;
/// Default `limit` of a successors query.
pub const SUCCESSORS_LIMIT_DEFAULT: usize = 1_000;
/// Largest `limit` of a successors query.
pub const SUCCESSORS_LIMIT_MAX: usize = 10_000;
/// `without` parameters of one successors query at most.
pub const WITHOUT_TYPES_MAX: usize = 16;
/// Longest long-poll a client may ask for (`wait_ms`).
pub const WAIT_MS_MAX: u64 = 60_000;
/// Messages one pull leases at most.
pub const PULL_MESSAGES_MAX: usize = 1_000;
/// Tokens in one ack, nack or extend (and hashes in one replay) at most.
pub const ACK_TOKENS_MAX: usize = 10_000;
/// Default `limit` of a dead-letter listing.
pub const DEAD_LETTERS_LIMIT_DEFAULT: usize = 100;
/// Largest `limit` of a dead-letter listing.
pub const DEAD_LETTERS_LIMIT_MAX: usize = 1_000;
/// Shortest lease.
pub const LEASE_MS_MIN: u64 = 100;
/// Longest lease.
pub const LEASE_MS_MAX: u64 = 3_600_000;
/// Largest backoff ceiling, and largest nack delay.
pub const DELAY_MS_MAX: u64 = 86_400_000;
/// Longest error text kept with a message, in bytes.
pub const LAST_ERROR_BYTES_MAX: usize = 4_096;

/// Longest claim key, in bytes of UTF-8.
pub const CLAIM_KEY_BYTES_MAX: usize = 512;
/// Longest lease name, in bytes.
pub const LEASE_NAME_BYTES_MAX: usize = 128;
/// Longest lease holder, in bytes of UTF-8.
pub const LEASE_HOLDER_BYTES_MAX: usize = 256;
/// Shortest lease of `/v1/leases`.
pub const LEASE_TTL_MS_MIN: u64 = 100;
/// Longest lease of `/v1/leases`.
pub const LEASE_TTL_MS_MAX: u64 = 3_600_000;

const _: () = assert!(LOG_LIMIT_DEFAULT <= LOG_LIMIT_MAX);
const _: () = assert!(LEASE_TTL_MS_MIN <= LEASE_TTL_MS_MAX);
const _: () = assert!(SUCCESSORS_LIMIT_DEFAULT <= SUCCESSORS_LIMIT_MAX);
const _: () = assert!(DEAD_LETTERS_LIMIT_DEFAULT <= DEAD_LETTERS_LIMIT_MAX);
const _: () = assert!(LEASE_MS_MIN <= LEASE_MS_MAX);

/// Bytes of a timer's name at most.
pub const TIMER_NAME_BYTES_MAX: usize = 128;
/// Bytes of a `PUT /v1/timers/{name}` body at most (the template fact
/// included): a timer is a small thing, and a million of them must fit.
pub const TIMER_BODY_BYTES_MAX: usize = 64 * 1024;
/// Bytes of a cron expression or a zone name at most.
pub const TIMER_SCHEDULE_BYTES_MAX: usize = 200;
/// Default `limit` of `GET /v1/timers`.
pub const TIMERS_LIMIT_DEFAULT: usize = 1_000;
/// Largest `limit` of `GET /v1/timers`.
pub const TIMERS_LIMIT_MAX: usize = 10_000;

const _: () = assert!(TIMERS_LIMIT_DEFAULT <= TIMERS_LIMIT_MAX);

/// Longest link name, in bytes.
pub const LINK_NAME_BYTES_MAX: usize = 128;
/// Longest source URL of a link, in bytes.
pub const LINK_SOURCE_BYTES_MAX: usize = 2_048;
/// Type patterns of one link, at most.
pub const LINK_TYPES_MAX: usize = 64;
/// Links one deployment holds, at most (each runs a task and a connection).
pub const LINKS_MAX: usize = 256;
/// Longest link definition body, in bytes.
pub const LINK_BODY_BYTES_MAX: usize = 64 * 1024;

/// Hexadecimal digits of the longest `prefix` of `GET /v1/digests` (its 16
/// sub-prefixes are then whole hashes).
pub const DIGEST_PREFIX_DIGITS_MAX: usize = 63;
/// `types` patterns of one `GET /v1/digests` at most.
pub const DIGEST_TYPES_MAX: usize = crate::access::PATTERNS_MAX;
/// `GET /v1/digests` lists the hashes under a prefix holding at most this many facts.
pub const DIGEST_HASHES_MAX: usize = 256;
/// … and only for prefixes of at least this many digits (shorter ones are
/// answered from maintained digests without reading facts).
pub const DIGEST_LISTED_PREFIX_DIGITS_MIN: usize = 3;
/// Missing facts one repair of a link fetches at most (the rest: another).
pub const LINK_REPAIR_FACTS_MAX: usize = 100_000;

/// Highest schema version number.
pub const SCHEMA_VERSION_MAX: u32 = 1_000_000;
/// Bytes of a `PUT /v1/schemas/{type}/{version}` body at most: the
/// registration is stored as one fact, so it must fit in one.
pub const SCHEMA_BODY_BYTES_MAX: usize = 60 * 1024;
/// Upcast operations of one version at most.
pub const SCHEMA_UPCAST_OPERATIONS_MAX: usize = 100;
/// Predecessor roles one schema constrains at most.
pub const SCHEMA_PREDECESSOR_ROLES_MAX: usize = 64;
/// Errors one `422 schema_violation` names at most.
pub const SCHEMA_VIOLATIONS_MAX: usize = 20;
/// Breaking changes one `409 incompatible_schema` names at most.
pub const SCHEMA_BREAKING_CHANGES_MAX: usize = 100;

/// Longest service name, in bytes (`[A-Za-z][A-Za-z0-9_]*`).
pub const SERVICE_NAME_BYTES_MAX: usize = 64;
/// Types in one list of a service declaration at most.
pub const SERVICE_TYPES_MAX: usize = 256;
/// Longest description of a service, in bytes.
pub const SERVICE_DESCRIPTION_BYTES_MAX: usize = 1_024;
/// Bytes of a `PUT /v1/services/{name}` body at most: the declaration is
/// stored as one fact, so it must fit in one.
pub const SERVICE_BODY_BYTES_MAX: usize = 60 * 1024;
/// Services one deployment declares at most.
pub const SERVICES_MAX: usize = 1_000;
/// Default window of `GET /v1/boundaries` (`unseen_for_ms`): 7 days.
pub const BOUNDARIES_UNSEEN_FOR_MS_DEFAULT: u64 = 7 * 86_400_000;
/// Largest window of `GET /v1/boundaries`: 400 days.
pub const BOUNDARIES_UNSEEN_FOR_MS_MAX: u64 = 400 * 86_400_000;

const _: () = assert!(SERVICE_BODY_BYTES_MAX < 64 * 1024);
const _: () = assert!(BOUNDARIES_UNSEEN_FOR_MS_DEFAULT <= BOUNDARIES_UNSEEN_FOR_MS_MAX);

/// Longest dead-letter cause (`dead_letter_cause`), in characters; also the
/// longest `cause` a dead-letter listing accepts (addition, issue 17).
pub const DEAD_LETTER_CAUSE_CHARS_MAX: usize = 200;
/// Dead letters `GET …/dead/causes` (and one `GET …/dead?cause=`) examine
/// at most (addition, issue 17).
pub const DEAD_LETTERS_EXAMINED_MAX: usize = 100_000;
/// Distinct causes `GET …/dead/causes` tracks at most while it examines;
/// dead letters of further causes are not counted (`exact: false`).
pub const DEAD_LETTER_CAUSES_TRACKED_MAX: usize = 10_000;
/// Causes `GET …/dead/causes` lists at most (the most frequent).
pub const DEAD_LETTER_CAUSES_LISTED_MAX: usize = 1_000;
/// Bytes of a cause's `sample_error` kept at most.
pub const DEAD_LETTER_SAMPLE_ERROR_BYTES_MAX: usize = 1_024;

const _: () = assert!(DEAD_LETTER_CAUSES_LISTED_MAX <= DEAD_LETTER_CAUSES_TRACKED_MAX);
const _: () = assert!(DEAD_LETTER_SAMPLE_ERROR_BYTES_MAX <= LAST_ERROR_BYTES_MAX);
