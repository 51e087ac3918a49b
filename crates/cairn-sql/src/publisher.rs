//! The narrow interface through which the relay hands facts to Cairn, so
//! that the relay depends on no particular client: [`crate::HttpPublisher`]
//! implements it here, and the SDK's client can implement it too.

use cairn_fact::{CanonicalFact, Hash};
use futures_util::future::BoxFuture;

/// Publishes facts to Cairn.
///
/// Contract:
/// - `Ok(())` means every fact given is durably stored in Cairn.
/// - Facts come in the order in which they must be stored: a fact's
///   predecessors are either already in Cairn or earlier in `facts`.
/// - The same facts may be published again (after a crash or a lost
///   answer); Cairn's content addressing makes that harmless, and an
///   implementation must not treat it as an error.
/// - An error means nothing can be assumed about which facts were stored;
///   the relay publishes them all again later.
pub trait FactPublisher: Send + Sync + 'static {
    /// Stores `facts` in Cairn, in order; see the trait's contract.
    fn publish(&self, facts: Vec<CanonicalFact>) -> BoxFuture<'_, Result<(), PublishError>>;
}

/// Why publishing failed. The kind decides what the relay does: it retries
/// with backoff what waiting may fix ([`PublishError::is_transient`]) and
/// what concerns the exchange rather than the facts (a wrong URL, a
/// malformed answer); it sets aside as dead letters the facts that Cairn
/// refuses ([`PublishError::refuses_facts`]), after narrowing a refused
/// batch down to the refused facts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// Cairn could not be reached, timed out, was overloaded (429) or
    /// failed (5xx): waiting should help.
    #[error("Cairn is unavailable: {message}")]
    Unavailable {
        /// What went wrong.
        message: String,
    },
    /// Cairn refused the facts (4xx other than 429), for example
    /// `missing_predecessors` when a fact names a predecessor that was
    /// neither published nor enqueued before it: this needs an operator
    /// (or the commit of the transaction that enqueues the predecessor).
    #[error("Cairn refused the facts with status {status}, code {code}: {message}")]
    Rejected {
        /// HTTP status of the answer.
        status: u16,
        /// The stable error code of the answer (empty if it had none).
        code: String,
        /// The human message of the answer.
        message: String,
    },
    /// Cairn stored a fact under another hash than the one computed
    /// locally: the two disagree on the canonical form, a bug on one side.
    #[error("Cairn answered hash {answered} for the fact hashed {expected} locally")]
    HashMismatch {
        /// The hash computed locally.
        expected: Hash,
        /// The hash in Cairn's answer.
        answered: String,
    },
    /// Cairn's answer could not be understood.
    #[error("Cairn's answer is malformed: {message}")]
    MalformedAnswer {
        /// What was wrong with it.
        message: String,
    },
}

impl PublishError {
    /// Whether waiting and publishing again is expected to succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, PublishError::Unavailable { .. })
    }

    /// Whether Cairn refused the facts themselves, so that publishing them
    /// again as they are cannot succeed: 400 (an invalid fact), 413 (a fact
    /// or batch too large), 422 (`missing_predecessors`), or a hash that
    /// disagrees with the local one. Other refusals (404 from a wrong base
    /// URL, 401/403, 405, 415) are about the exchange, not the facts: the
    /// relay retries those rather than set the whole outbox aside.
    pub fn refuses_facts(&self) -> bool {
        match self {
            PublishError::Rejected { status, .. } => matches!(status, 400 | 413 | 422),
            PublishError::HashMismatch { .. } => true,
            PublishError::Unavailable { .. } | PublishError::MalformedAnswer { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16) -> PublishError {
        PublishError::Rejected {
            status,
            code: String::new(),
            message: String::new(),
        }
    }

    #[test]
    fn only_refusals_of_the_facts_refuse_facts() {
        for status in [400, 413, 422] {
            assert!(rejected(status).refuses_facts(), "status {status}");
        }
        for status in [401, 403, 404, 405, 415] {
            assert!(!rejected(status).refuses_facts(), "status {status}");
        }
        let unavailable = PublishError::Unavailable {
            message: String::new(),
        };
        assert!(!unavailable.refuses_facts());
        let malformed = PublishError::MalformedAnswer {
            message: String::new(),
        };
        assert!(!malformed.refuses_facts());
        let mismatch = PublishError::HashMismatch {
            expected: Hash([0; 32]),
            answered: String::new(),
        };
        assert!(mismatch.refuses_facts());
    }
}
