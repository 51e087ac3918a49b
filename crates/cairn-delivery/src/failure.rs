//! What a failed delivery attempt makes of a message (a nack, or a lease
//! that ran out): a dead letter after its last attempt, otherwise a retry
//! after the delay asked for or the subscription's backoff. Both engines
//! decide here; the PostgreSQL engine passes the decisions into its
//! statements.

use crate::definition::SubscriptionDefinition;
use crate::token::TokenKey;

/// The fate of a message whose lease failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailedAttempt {
    /// That was its last attempt: it becomes a dead letter.
    Dead,
    /// It is delivered again after this delay.
    Retry {
        /// From the failure (a nack's time, or the lease's end).
        delay_ms: u64,
    },
}

impl FailedAttempt {
    /// Decides for lease `lease_id` of message `seq` (its attempt is the
    /// lease number's low half), with the nack's `delay_ms` if one was given.
    pub fn decide(
        definition: &SubscriptionDefinition,
        key: &TokenKey,
        seq: u64,
        lease_id: u64,
        delay_ms: Option<u64>,
    ) -> FailedAttempt {
        let attempts = lease_id as u32;
        if attempts >= definition.max_attempts {
            FailedAttempt::Dead
        } else {
            FailedAttempt::Retry {
                delay_ms: retry_delay_ms(definition, key, seq, lease_id, delay_ms),
            }
        }
    }
}

/// How long message `seq` waits after its lease `lease_id` failed: the
/// nack's `delay_ms` if given, else the backoff of its attempts, jittered
/// by the key (the same delay for the same failure on every engine).
pub fn retry_delay_ms(
    definition: &SubscriptionDefinition,
    key: &TokenKey,
    seq: u64,
    lease_id: u64,
    delay_ms: Option<u64>,
) -> u64 {
    delay_ms.unwrap_or_else(|| {
        definition
            .backoff
            .delay_ms(lease_id as u32, key.jitter(seq, lease_id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::lease_number;

    #[test]
    fn the_last_attempt_dies_and_others_wait_for_their_backoff() {
        let definition = SubscriptionDefinition::from_json(
            br#"{"type":"T","max_attempts":3,"backoff":{"initial_ms":100,"max_ms":1000}}"#,
        )
        .unwrap();
        let key = TokenKey::from_seed(9);
        assert_eq!(
            FailedAttempt::decide(&definition, &key, 1, lease_number(0, 3), None),
            FailedAttempt::Dead
        );
        assert_eq!(
            FailedAttempt::decide(&definition, &key, 1, lease_number(2, 1), Some(5)),
            FailedAttempt::Retry { delay_ms: 5 }
        );
        let FailedAttempt::Retry { delay_ms } =
            FailedAttempt::decide(&definition, &key, 1, lease_number(0, 2), None)
        else {
            panic!("a second attempt of three is retried");
        };
        assert!((100..=200).contains(&delay_ms), "{delay_ms}");
        assert_eq!(
            delay_ms,
            retry_delay_ms(&definition, &key, 1, lease_number(0, 2), None),
            "the same failure draws the same delay"
        );
    }
}
