//! What a subscriber's handler receives ([`Delivery`]) and returns on
//! failure ([`HandlerError`]).

use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use cairn_fact::Hash;

use crate::error::Result;
use crate::typed::{Typed, TypedFact};
use crate::wire::Message;

/// One leased message handed to a handler.
#[derive(Clone, Debug)]
pub struct Delivery {
    subscription: Arc<str>,
    message: Message,
}

impl Delivery {
    pub(crate) fn new(subscription: Arc<str>, message: Message) -> Delivery {
        Delivery {
            subscription,
            message,
        }
    }

    /// The subscription the message came from.
    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    /// The message as pulled.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The fact's hash (stable across redeliveries: use it to deduplicate).
    pub fn hash(&self) -> Hash {
        self.message.hash
    }

    /// The fact's position in the server's log.
    pub fn seq(&self) -> u64 {
        self.message.seq
    }

    /// 1 on the first delivery, one more on each redelivery.
    pub fn attempt(&self) -> u32 {
        self.message.attempt
    }

    /// The fact as JSON.
    pub fn fact(&self) -> &serde_json::Value {
        &self.message.fact
    }

    /// The fact as a typed value; an error if it has another type.
    pub fn fact_as<T: TypedFact>(&self) -> Result<Typed<T>> {
        Typed::from_parts(
            self.message.hash,
            self.message.seq,
            self.message.fact.clone(),
        )
    }
}

/// Why a handler failed. Its text is sent with the nack and becomes the
/// dead letter's `last_error` once attempts run out.
///
/// Any error that implements `Display` converts into it, so `?` works in
/// handlers; for that reason it does not implement `Display` itself (the
/// blanket conversion would clash with the identity one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerError {
    message: String,
    retry_after: Option<Duration>,
}

impl HandlerError {
    /// The error text.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Asks for redelivery after `delay` instead of the subscription's
    /// backoff.
    pub fn retry_after(mut self, delay: Duration) -> HandlerError {
        self.retry_after = Some(delay);
        self
    }

    /// The redelivery delay asked for, if any.
    pub fn retry_delay(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl<E: Display> From<E> for HandlerError {
    fn from(error: E) -> Self {
        HandlerError {
            message: error.to_string(),
            retry_after: None,
        }
    }
}
