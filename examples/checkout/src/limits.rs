//! Every setting of the example in one place.

use std::time::Duration;

/// Cairn's URL by default.
pub const CAIRN_URL_DEFAULT: &str = "http://127.0.0.1:7710";
/// The saga's name.
pub const SAGA_NAME: &str = "checkout";
/// The saga definition's version.
pub const SAGA_VERSION: u32 = 1;
/// How long shipping gets to answer one booking, by default.
pub const SHIPPING_TIMEOUT_MS_DEFAULT: u64 = 2_000;
/// Attempts of a shipping booking (a booking that timed out is tried once
/// more with a new key, then the saga compensates).
pub const SHIPPING_ATTEMPTS_MAX: u32 = 2;
/// Attempts of the stock and payment calls on a retryable failure.
pub const SERVICE_ATTEMPTS_MAX: u32 = 3;
/// Longest wait for a reply of stock or payment within one attempt.
pub const REPLY_WAIT_MAX: Duration = Duration::from_secs(30);
/// Card numbers ending in this are declined.
pub const DECLINED_CARD_SUFFIX: &str = "0002";
/// The address shipping never answers for.
pub const ADDRESS_NEVER_ANSWERED: &str = "nowhere";
/// The address shipping ignores the first attempt of (answered on retry).
pub const ADDRESS_ANSWERED_ON_RETRY: &str = "flaky";
/// Requests a service handles at once.
pub const SERVICE_CONCURRENCY: usize = 32;
/// The services' subscriptions.
pub const STOCK_SUBSCRIPTION: &str = "checkout-stock";
/// The payment service's subscription.
pub const PAYMENT_SUBSCRIPTION: &str = "checkout-payment";
/// The shipping service's subscription.
pub const SHIPPING_SUBSCRIPTION: &str = "checkout-shipping";
