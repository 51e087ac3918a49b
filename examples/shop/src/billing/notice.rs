//! The one synchronous call between the services: after a charge, billing
//! tells `orders` over HTTP through `cairn_resilient::ResilientClient`
//! (timeouts, retries within a budget, circuit breaker). The
//! `Idempotency-Key` is derived from the payment fact's hash, so every
//! retry and every later resend of the same payment is recognised by
//! `orders` as the same notice.

use cairn_client::Hash;
use cairn_resilient::{CallError, ResilientClient, ResilientOptions, IDEMPOTENT_REPLAYED_HEADER};

use crate::error::ServiceError;
use crate::limits::{NOTICE_ATTEMPTS_MAX, NOTICE_ATTEMPT_TIMEOUT, NOTICE_CALL_TIMEOUT};
use crate::orders::store::PaymentNotice;

/// Sends payment notices to `orders`.
#[derive(Clone, Debug)]
pub struct NoticeSender {
    client: ResilientClient,
    orders_url: String,
}

/// The `Idempotency-Key` of the notice of the payment fact `payment_fact`.
pub fn notice_key(payment_fact: &Hash) -> String {
    format!("payment-{payment_fact}")
}

impl NoticeSender {
    /// A sender to the `orders` service at `orders_url`.
    pub fn new(orders_url: &str) -> Result<NoticeSender, ServiceError> {
        let client = ResilientClient::new(ResilientOptions {
            attempt_timeout: NOTICE_ATTEMPT_TIMEOUT,
            call_timeout: NOTICE_CALL_TIMEOUT,
            attempts_max: NOTICE_ATTEMPTS_MAX,
            ..ResilientOptions::default()
        })?;
        Ok(NoticeSender {
            client,
            orders_url: orders_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Tells `orders` that `order_id` was paid by `notice`. Returns whether
    /// `orders` said it had this notice already.
    pub async fn send(&self, order_id: &str, notice: &PaymentNotice) -> Result<bool, CallError> {
        // The id comes from a fact; refuse to build a URL from anything
        // but a plain id.
        if order_id.is_empty()
            || !order_id
                .chars()
                .all(|character| character.is_ascii_alphanumeric() || character == '-')
        {
            return Err(CallError::InvalidRequest {
                reason: format!("order id {order_id:?} is not a plain id"),
            });
        }
        let answer = self
            .client
            .post_json(
                &format!("{}/orders/{order_id}/payment-notice", self.orders_url),
                notice,
            )
            .idempotency_key(notice_key(&notice.payment_fact))
            .send()
            .await?;
        Ok(answer.headers.contains_key(IDEMPOTENT_REPLAYED_HEADER))
    }
}
