//! Every number the demo runs by, in one place: rates, sizes, attempts,
//! timeouts and the bounds of every loop, with units last in the names.

use std::time::Duration;

/// The run's length when `--duration` is not given.
pub const DURATION_DEFAULT: Duration = Duration::from_secs(120);
/// The shortest run that still holds every kind of fault once.
pub const DURATION_MIN: Duration = Duration::from_secs(20);
/// The longest run.
pub const DURATION_MAX: Duration = Duration::from_secs(3_600);
/// Where Cairn listens when `--listen` is not given.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:7710";

/// Customers' orders per second (a small café at its busiest).
pub const ORDERS_PER_S: u64 = 4;
/// Orders of one run at most, whatever the duration.
pub const ORDERS_MAX: u64 = 20_000;
/// Orders waiting for their acceptance at once at most.
pub const ORDERS_IN_FLIGHT_MAX: usize = 32;
/// Times a customer asks for the same order (same client-side id) before
/// giving up on an answer.
pub const ORDER_ASKS_MAX: u32 = 3;
/// How long a customer waits for the acceptance of one ask.
pub const ORDER_REPLY_TIMEOUT: Duration = Duration::from_secs(8);
/// When the orders service stops answering an order request.
pub const ORDER_REQUEST_EXPIRY: Duration = Duration::from_secs(600);
/// One order in this many comes from the café's old app, which writes
/// `Cafe.PlaceOrder` at schema version 1.
pub const ORDERS_OLD_APP_EVERY: u64 = 3;
/// How often customers read the menu again.
pub const MENU_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// How long a card-provider call may take, each attempt.
pub const PROVIDER_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(800);
/// How long one card-provider call may take, retries included.
pub const PROVIDER_CALL_TIMEOUT: Duration = Duration::from_millis(1_500);
/// Attempts of one card-provider call (the resilient client's retries).
pub const PROVIDER_ATTEMPTS_MAX: u32 = 3;
/// Share of card-provider calls that fail outside an outage, in percent.
pub const PROVIDER_FLAKY_PERCENT: u64 = 15;
/// How long the circuit to the card provider stays open before a probe.
pub const PROVIDER_CIRCUIT_OPEN_DURATION: Duration = Duration::from_secs(1);
/// The longest outage of the card provider.
pub const PROVIDER_OUTAGE_MAX: Duration = Duration::from_secs(20);
/// Answers the card provider keeps for idempotent replays at most.
pub const PROVIDER_KEYS_MAX: usize = 100_000;

/// Deliveries of an order to payments before it becomes a dead letter.
pub const PAYMENT_ATTEMPTS_MAX: u32 = 3;
/// Deliveries of an order to payments beyond [`PAYMENT_ATTEMPTS_MAX`]
/// before it becomes a dead letter: room for deliveries cut short by a
/// SIGKILL of payments (each counts as an attempt), so that the delivery
/// that gives up and explains the dead letter always runs.
pub const PAYMENT_CRASH_ATTEMPTS: u32 = 2;
/// Deliveries of a message to the other subscriptions before it becomes a
/// dead letter (only a bug gets there).
pub const ATTEMPTS_MAX: u32 = 10;
/// First redelivery delay.
pub const BACKOFF_INITIAL_MS: u64 = 300;
/// Longest redelivery delay.
pub const BACKOFF_MAX_MS: u64 = 1_000;
/// A delivery's lease: a killed service's messages come back after it.
pub const LEASE_MS: u64 = 4_000;
/// Handlers of one subscription at once.
pub const SUBSCRIBER_CONCURRENCY: usize = 4;
/// Long-poll of a subscriber's pull.
pub const SUBSCRIBER_WAIT_MS: u64 = 2_000;
/// How long a stopping subscriber waits for its handlers.
pub const SUBSCRIBER_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts of a fulfilment saga's refund (its compensation) per round;
/// each attempt is itself patient ([`REFUND_PATIENCE`]).
pub const SAGA_COMPENSATION_ATTEMPTS_MAX: u32 = 10;
/// How long one refund attempt keeps asking the card provider: longer
/// than its longest outage, so a refund waits the outage out.
pub const REFUND_PATIENCE: Duration = Duration::from_secs(30);
/// Pause between two asks of one refund attempt.
pub const REFUND_RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// Attempts of the saga's wait for stock's answer (each
/// [`STOCK_ANSWER_WAIT`] long): minutes, more than any fault lasts.
pub const SAGA_STOCK_ATTEMPTS_MAX: u32 = 60;
/// How long one attempt waits for stock's answer about an order.
pub const STOCK_ANSWER_WAIT: Duration = Duration::from_secs(5);
/// How often the wait looks for stock's answer.
pub const STOCK_ANSWER_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long payments tries to store the saga's definition at its start.
pub const SAGA_REGISTER_TIMEOUT: Duration = Duration::from_secs(30);
/// When the croissant delivery comes, in per mille of the run: after
/// the schedule's `kill -9` of Cairn (which starts by 625 ‰), so the
/// restock timer, set when croissants sell out, is pending across it.
pub const RESTOCK_AT_PER_MILLE: u64 = 700;
/// The croissants' price from the delivery on (the new batch is dearer,
/// which also makes it a new menu item, not the withdrawn one).
pub const RESTOCK_PRICE_CENTS: i64 = 300;
/// How long the kitchen takes to make one order at most.
pub const KITCHEN_PREPARATION_MS_MAX: u64 = 150;

/// SQLite: waiting for the write lock at most.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// SQLite: connections of one service's pool.
pub const SQLITE_CONNECTIONS_MAX: u32 = 4;
/// The outbox relay's poll when nothing wakes it.
pub const RELAY_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long a stopping relay publishes what is left.
pub const RELAY_DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// How long Cairn may take to answer after it was started.
pub const CAIRN_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a killed process stays down before it is started again.
pub const RESTART_DELAY: Duration = Duration::from_millis(1_000);
/// How long the demo waits after the customers stop for the last orders to
/// settle, at most.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the progress line waits for the log (Cairn may be down).
pub const PROGRESS_READ_TIMEOUT: Duration = Duration::from_millis(700);
/// How often the progress line and the drain look at the facts.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Facts per page when the demo reads the log.
pub const LOG_PAGE_FACTS: u32 = 1_000;
/// Pages read per look at the log at most (a bound, not a target).
pub const LOG_PAGES_PER_READ_MAX: u32 = 1_000;
/// Dead letters read per subscription at most.
pub const DEAD_LETTERS_MAX: u32 = 10_000;
/// How long a service process may take to stop after its stdin closes.
pub const SERVICE_STOP_TIMEOUT: Duration = Duration::from_secs(10);

const _: () = assert!(REFUND_PATIENCE.as_secs() > PROVIDER_OUTAGE_MAX.as_secs());
