//! [`OutcomeBatch`]: handler outcomes waiting to be sent as acks and nacks.
//! Pure (the caller passes the time). Acks are batched by count and age to
//! save round trips; nacks sharing an error text and delay go in one call,
//! since a nack call carries one `error` for all its tokens.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::wire::NackOptions;

/// What became of one handled message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The handler succeeded: acknowledge.
    Ack(String),
    /// The handler failed: give back for redelivery, with the error text.
    Nack {
        /// The lease token.
        token: String,
        /// The handler's error text.
        error: String,
        /// Redelivery delay asked for by the handler.
        delay_ms: Option<u64>,
    },
}

/// The calls one flush makes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Flush {
    /// Tokens to acknowledge.
    pub acks: Vec<String>,
    /// Nack calls: options and their tokens.
    pub nacks: Vec<(NackOptions, Vec<String>)>,
}

/// Outcomes not sent yet.
#[derive(Debug, Default)]
pub(crate) struct OutcomeBatch {
    acks: Vec<String>,
    nacks: BTreeMap<(String, Option<u64>), Vec<String>>,
    tokens_n: usize,
    oldest_at: Option<Instant>,
}

impl OutcomeBatch {
    /// Adds an outcome that arrived at `now`.
    pub fn push(&mut self, outcome: Outcome, now: Instant) {
        match outcome {
            Outcome::Ack(token) => self.acks.push(token),
            Outcome::Nack {
                token,
                error,
                delay_ms,
            } => self.nacks.entry((error, delay_ms)).or_default().push(token),
        }
        self.tokens_n += 1;
        self.oldest_at.get_or_insert(now);
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.tokens_n == 0
    }

    /// When the oldest waiting outcome has waited `interval`.
    pub fn due_at(&self, interval: Duration) -> Option<Instant> {
        self.oldest_at.map(|oldest_at| oldest_at + interval)
    }

    /// Whether to flush at `now`: enough tokens, or the oldest waited long
    /// enough.
    pub fn should_flush(&self, now: Instant, tokens_max: usize, interval: Duration) -> bool {
        self.tokens_n >= tokens_max || self.due_at(interval).is_some_and(|due_at| now >= due_at)
    }

    /// Takes everything waiting.
    pub fn take(&mut self) -> Flush {
        let taken = std::mem::take(self);
        Flush {
            acks: taken.acks,
            nacks: taken
                .nacks
                .into_iter()
                .map(|((error, delay_ms), tokens)| {
                    let options = NackOptions {
                        delay_ms,
                        error: Some(error),
                    };
                    (options, tokens)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nack(token: &str, error: &str) -> Outcome {
        Outcome::Nack {
            token: token.to_string(),
            error: error.to_string(),
            delay_ms: None,
        }
    }

    #[test]
    fn flushes_by_count_or_age_and_groups_nacks_by_error() {
        let start = Instant::now();
        let interval = Duration::from_millis(20);
        let mut batch = OutcomeBatch::default();
        assert!(!batch.should_flush(start, 3, interval));
        batch.push(Outcome::Ack("a".to_string()), start);
        batch.push(nack("b", "boom"), start + Duration::from_millis(5));
        assert!(!batch.should_flush(start + Duration::from_millis(19), 3, interval));
        assert!(batch.should_flush(start + Duration::from_millis(20), 3, interval));
        batch.push(nack("c", "boom"), start + Duration::from_millis(6));
        assert!(batch.should_flush(start, 3, interval));
        let flush = batch.take();
        assert_eq!(flush.acks, vec!["a"]);
        assert_eq!(flush.nacks.len(), 1);
        assert_eq!(flush.nacks[0].0.error.as_deref(), Some("boom"));
        assert_eq!(flush.nacks[0].1, vec!["b", "c"]);
        assert!(batch.is_empty() && batch.due_at(interval).is_none());
    }
}
