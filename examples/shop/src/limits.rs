//! Every default, limit and timing of the example in one place, so that
//! they can be read together (and the end-to-end test can lean on them).
//! Units come last in the names.

use std::time::Duration;

/// Where `orders` listens unless told otherwise (loopback only).
pub const ORDERS_LISTEN_DEFAULT: &str = "127.0.0.1:7720";
/// Where `billing` finds `orders` unless told otherwise.
pub const ORDERS_URL_DEFAULT: &str = "http://127.0.0.1:7720";
/// Where both services find Cairn unless told otherwise.
pub const CAIRN_URL_DEFAULT: &str = "http://127.0.0.1:7710";

/// The durable subscription through which `billing` receives orders.
pub const BILLING_SUBSCRIPTION: &str = "billing";
/// Deliveries of one order to `billing` before it becomes a dead letter.
pub const BILLING_ATTEMPTS_MAX: u32 = 4;
/// First redelivery delay after a failed charge (Cairn doubles it).
pub const BILLING_BACKOFF_INITIAL_MS: u64 = 200;
/// Longest redelivery delay after failed charges.
pub const BILLING_BACKOFF_MAX_MS: u64 = 1_000;
/// How long one delivery is leased to `billing`: a `billing` that dies
/// mid-charge gets its order redelivered after this.
pub const BILLING_LEASE_MS: u64 = 5_000;

/// The subscription through which `orders` learns of successful payments.
pub const ORDERS_SUCCEEDED_SUBSCRIPTION: &str = "orders-payment-succeeded";
/// The subscription through which `orders` learns of failed payments.
pub const ORDERS_FAILED_SUBSCRIPTION: &str = "orders-payment-failed";
/// Deliveries of one payment fact to `orders` before it becomes a dead letter.
pub const ORDERS_ATTEMPTS_MAX: u32 = 10;
/// First redelivery delay of a payment fact `orders` failed to apply.
pub const ORDERS_BACKOFF_INITIAL_MS: u64 = 200;
/// Longest redelivery delay of a payment fact.
pub const ORDERS_BACKOFF_MAX_MS: u64 = 5_000;

/// Long-poll of each pull of the subscribers.
pub const SUBSCRIBER_WAIT_MS: u64 = 2_000;
/// Handlers each subscriber runs at once.
pub const SUBSCRIBER_CONCURRENCY: usize = 4;
/// Time running handlers get to finish at shutdown.
pub const SUBSCRIBER_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the outbox relay looks at the outbox when nobody wakes it.
pub const RELAY_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Time the relay gets at shutdown to publish what is still in the outbox
/// (the rest is published at the next start).
pub const RELAY_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections of each service's SQLite pool (SQLite serializes writers).
pub const SQLITE_CONNECTIONS_MAX: u32 = 4;
/// Time a SQLite statement waits for another writer before failing.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest request body `orders` accepts.
pub const HTTP_BODY_BYTES_MAX: usize = 64 * 1024;
/// Characters of a customer name at most.
pub const CUSTOMER_CHARS_MAX: usize = 100;
/// Characters of a SKU at most.
pub const SKU_CHARS_MAX: usize = 64;
/// Line items of one order at most.
pub const ORDER_ITEMS_MAX: usize = 100;
/// Quantity of one line item at most.
pub const ITEM_QUANTITY_MAX: u32 = 10_000;
/// Order total at most, in cents (well inside the ±(2^53−1) integers a
/// fact may hold).
pub const TOTAL_CENTS_MAX: i64 = 100_000_000_000;
/// Orders listed by `GET /orders` at most (the newest first).
pub const ORDERS_LIST_MAX: i64 = 100;

/// Attempts of the fake gateway that fail for the customer `flaky`.
pub const FLAKY_FAILED_ATTEMPTS: u32 = 2;

/// Time one attempt of `billing`'s payment notice to `orders` may take.
pub const NOTICE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time the whole payment notice may take, retries included.
pub const NOTICE_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts of one payment notice.
pub const NOTICE_ATTEMPTS_MAX: u32 = 4;

const _: () = assert!(BILLING_BACKOFF_INITIAL_MS <= BILLING_BACKOFF_MAX_MS);
const _: () = assert!(ORDERS_BACKOFF_INITIAL_MS <= ORDERS_BACKOFF_MAX_MS);
// The flaky customer must succeed before its attempts run out.
const _: () = assert!(FLAKY_FAILED_ATTEMPTS < BILLING_ATTEMPTS_MAX);
const _: () = assert!(TOTAL_CENTS_MAX < (1 << 53));
