//! [`OutboxDeadLetter`]: an outbox row that Cairn refused, set aside by the
//! relay with the reason, so that the rest of the outbox goes on; and the
//! reasons themselves ([`SetAsideCause`]), written into the row as text.

use cairn_fact::{CanonicalFact, FactError, Hash};

use crate::limits::DEAD_LETTER_ERROR_BYTES_MAX;
use crate::publisher::PublishError;

/// An outbox row set aside by the relay: Cairn refused its fact, or one of
/// its predecessors is itself a dead letter. Listed by
/// [`crate::Outbox::dead_letters`]; [`crate::Outbox::retry_dead_letter`]
/// puts it back, [`crate::Outbox::discard_dead_letter`] deletes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxDeadLetter {
    /// The row's position in the outbox (publishing follows `id` order).
    pub id: i64,
    /// The fact's hash.
    pub hash: Hash,
    /// The fact's canonical JSON bytes, as enqueued.
    pub canonical: Vec<u8>,
    /// Why it was set aside: the whole chain of causes, at most
    /// [`DEAD_LETTER_ERROR_BYTES_MAX`] bytes.
    pub error: String,
    /// When it was set aside, in milliseconds since the Unix epoch.
    pub failed_at_ms: i64,
    /// How many times the relay set it aside (more than 1 after a retry
    /// that failed again).
    pub attempts: u64,
}

impl OutboxDeadLetter {
    /// The fact, checked against its hash.
    pub fn fact(&self) -> Result<CanonicalFact, FactError> {
        CanonicalFact::verify_stored(&self.canonical, &self.hash)
    }

    /// The fact's canonical JSON as text (it is UTF-8 by construction;
    /// anything else is shown lossily).
    pub fn fact_json(&self) -> String {
        String::from_utf8_lossy(&self.canonical).into_owned()
    }
}

/// Why the relay set a row aside.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetAsideCause {
    /// Cairn refused the fact itself.
    #[error("Cairn refused the fact")]
    Refused(#[source] PublishError),
    /// A predecessor of the fact is a dead letter of the outbox, so Cairn
    /// could not store the fact either.
    #[error("predecessor {role} = {predecessor} is a dead letter of the outbox")]
    PredecessorDeadLettered {
        /// The predecessor's role.
        role: String,
        /// The predecessor's hash.
        predecessor: Hash,
    },
}

/// `error` and each of its causes in one line, cut to
/// [`DEAD_LETTER_ERROR_BYTES_MAX`] bytes on a character boundary.
pub(crate) fn error_chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    cairn_client::error_text(error, DEAD_LETTER_ERROR_BYTES_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_keeps_every_cause() {
        let cause = SetAsideCause::Refused(PublishError::Rejected {
            status: 422,
            code: "missing_predecessors".to_owned(),
            message: "predecessors are missing".to_owned(),
        });
        assert_eq!(
            error_chain_text(&cause),
            "Cairn refused the fact: Cairn refused the facts with status 422, \
             code missing_predecessors: predecessors are missing"
        );
    }
}
