//! What a subscriber's handler receives ([`Delivery`]) and returns on
//! failure ([`HandlerError`]).

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use cairn_fact::Hash;

use crate::error::Result;
use crate::error_text::error_text;
use crate::limits;
use crate::typed::{Typed, TypedFact};
use crate::wire::Message;

/// One leased message handed to a handler.
#[derive(Clone, Debug)]
pub struct Delivery {
    subscription: Arc<str>,
    message: Message,
}

impl Delivery {
    /// A delivery of `message` from `subscription`: what the subscriber
    /// hands a handler, also for calling a handler in a test.
    pub fn new(subscription: Arc<str>, message: Message) -> Delivery {
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

/// The future a boxed handler returns: name it in a function that returns
/// a handler, `impl Fn(Delivery) -> HandlerFuture`.
pub type HandlerFuture = futures_util::future::BoxFuture<'static, Result<(), HandlerError>>;

/// Why a handler failed. Its text is sent with the nack and becomes the
/// dead letter's `last_error` once attempts run out: the error and every
/// cause below it, joined by `": "` (`"outer: middle: inner"`), cut to the
/// server's limit ([`limits::NACK_ERROR_BYTES_MAX`]).
///
/// Every error converts into it, so `?` works in handlers: any
/// `std::error::Error + Send + Sync + 'static`, a boxed one, the
/// catch-all error of an error-reporting crate (they convert into a boxed
/// one, their context layers as causes), a `String` or a `&str`: everything
/// that converts into `Box<dyn Error + Send + Sync>`. For that reason it
/// implements `Display` but not `Error`: it would then convert into itself
/// twice.
///
/// ```
/// use cairn_client::{Delivery, HandlerError};
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("cannot charge the order")]
/// struct ChargeError(#[source] std::io::Error);
///
/// async fn handle(delivery: Delivery) -> Result<(), HandlerError> {
///     let total: f64 = delivery.fact()["fields"]["total"].to_string().parse()?;
///     if total > 100.0 {
///         let refused = std::io::Error::other("connection refused");
///         Err(ChargeError(refused))?;
///     }
///     Ok(())
/// }
///
/// let error = HandlerError::from(ChargeError(std::io::Error::other("connection refused")));
/// assert_eq!(error.message(), "cannot charge the order: connection refused");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerError {
    message: String,
    retry_after: Option<Duration>,
}

impl HandlerError {
    /// The handler error of `error`, its causes included (what `?` does).
    pub fn new(error: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> HandlerError {
        let error = error.into();
        HandlerError {
            message: error_text(error.as_ref(), limits::NACK_ERROR_BYTES_MAX),
            retry_after: None,
        }
    }

    /// The error text: the error and its causes, at most
    /// [`limits::NACK_ERROR_BYTES_MAX`] bytes.
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

impl<E> From<E> for HandlerError
where
    E: Into<Box<dyn StdError + Send + Sync + 'static>>,
{
    fn from(error: E) -> Self {
        HandlerError::new(error)
    }
}

impl std::fmt::Display for HandlerError {
    /// The error text, as sent with the nack.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a cause, as thiserror's `#[source]` makes them.
    #[derive(Debug)]
    struct Layer {
        text: &'static str,
        cause: Option<Box<dyn StdError + Send + Sync>>,
    }

    impl std::fmt::Display for Layer {
        fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str(self.text)
        }
    }

    impl StdError for Layer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.cause
                .as_deref()
                .map(|cause| cause as &(dyn StdError + 'static))
        }
    }

    fn layered() -> Layer {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "inner");
        let middle = Layer {
            text: "middle",
            cause: Some(Box::new(inner)),
        };
        Layer {
            text: "outer",
            cause: Some(Box::new(middle)),
        }
    }

    #[test]
    fn the_text_keeps_every_cause_in_order() {
        assert_eq!(
            HandlerError::from(layered()).message(),
            "outer: middle: inner"
        );
    }

    #[test]
    fn a_cause_already_in_the_text_is_not_repeated() {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let outer = Layer {
            text: "cannot read the price list: no such file",
            cause: Some(Box::new(inner)),
        };
        assert_eq!(
            HandlerError::from(outer).message(),
            "cannot read the price list: no such file"
        );
    }

    #[test]
    fn strings_and_boxed_errors_convert() {
        assert_eq!(HandlerError::from("declined").message(), "declined");
        assert_eq!(
            HandlerError::from(format!("declined {}", 2)).message(),
            "declined 2"
        );
        let boxed: Box<dyn StdError + Send + Sync> = Box::new(layered());
        assert_eq!(HandlerError::from(boxed).message(), "outer: middle: inner");
    }

    #[test]
    fn question_mark_converts_any_error() {
        fn parse(text: &str) -> Result<u32, HandlerError> {
            Ok(text.parse::<u32>()?)
        }
        assert_eq!(
            parse("x").expect_err("not a number").message(),
            "invalid digit found in string"
        );
    }

    #[test]
    fn the_text_is_bounded_to_the_server_limit_on_a_character_boundary() {
        // Two-byte characters and an odd limit: a cut at the limit would
        // fall inside a character.
        let long = "é".repeat(limits::NACK_ERROR_BYTES_MAX);
        let message = HandlerError::from(long).message().to_string();
        assert!(message.len() <= limits::NACK_ERROR_BYTES_MAX);
        assert!(message.len() > limits::NACK_ERROR_BYTES_MAX - 8);
        assert!(message.ends_with('…'));
        assert!(message
            .trim_end_matches('…')
            .chars()
            .all(|character| character == 'é'));
    }

    #[test]
    fn a_long_chain_stops_at_the_bound() {
        let mut error: Box<dyn StdError + Send + Sync> = Box::new(std::io::Error::other("root"));
        for _ in 0..10_000 {
            error = Box::new(Layer {
                text: "layer of a very deep chain",
                cause: Some(error),
            });
        }
        let message = HandlerError::from(error).message().to_string();
        assert!(message.len() <= limits::NACK_ERROR_BYTES_MAX);
        assert!(message.starts_with("layer of a very deep chain"));
    }
}
