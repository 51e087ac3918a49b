//! The fake card gateway: deterministic, so that the example shows every
//! path on demand. The customer `broke` is always declined; the customer
//! `flaky` times out on the first [`FLAKY_FAILED_ATTEMPTS`] delivery
//! attempts and then goes through; everyone else is charged at once.

use cairn_client::Hash;

use crate::facts::OrderPlaced;
use crate::limits::FLAKY_FAILED_ATTEMPTS;

/// The customer whose card is always declined.
pub const BROKE_CUSTOMER: &str = "broke";
/// The customer whose charges time out at first.
pub const FLAKY_CUSTOMER: &str = "flaky";

/// A charge that went through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    /// The gateway's reference, derived from the order fact, so that the
    /// same order always gets the same reference.
    pub charge_id: String,
}

/// Why the gateway refused; the text ends in the dead letter.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Decline {
    /// The card has no funds (never goes through).
    #[error("card declined: insufficient funds (customer {customer})")]
    InsufficientFunds {
        /// The customer.
        customer: String,
    },
    /// The gateway did not answer in time (goes through later).
    #[error("card gateway timed out (simulated, attempt {attempt})")]
    Timeout {
        /// The delivery attempt.
        attempt: u32,
    },
}

/// Charges `order` (whose fact is `order_fact`) on delivery `attempt`.
pub fn charge(order: &OrderPlaced, order_fact: &Hash, attempt: u32) -> Result<Charge, Decline> {
    if order.customer == BROKE_CUSTOMER {
        return Err(Decline::InsufficientFunds {
            customer: order.customer.clone(),
        });
    }
    if order.customer == FLAKY_CUSTOMER && attempt <= FLAKY_FAILED_ATTEMPTS {
        return Err(Decline::Timeout { attempt });
    }
    Ok(Charge {
        charge_id: format!("ch-{}", &order_fact.to_hex()[..16]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(customer: &str) -> OrderPlaced {
        OrderPlaced {
            order_id: "o-1".to_owned(),
            customer: customer.to_owned(),
            items: Vec::new(),
            total_cents: 900,
            placed_at_ms: 0,
        }
    }

    #[test]
    fn each_customer_takes_its_path() {
        let fact = Hash([9; 32]);
        assert!(charge(&order("ada"), &fact, 1).is_ok());
        for attempt in 1..=FLAKY_FAILED_ATTEMPTS {
            assert_eq!(
                charge(&order(FLAKY_CUSTOMER), &fact, attempt),
                Err(Decline::Timeout { attempt })
            );
        }
        assert!(charge(&order(FLAKY_CUSTOMER), &fact, FLAKY_FAILED_ATTEMPTS + 1).is_ok());
        for attempt in 1..10 {
            assert!(matches!(
                charge(&order(BROKE_CUSTOMER), &fact, attempt),
                Err(Decline::InsufficientFunds { .. })
            ));
        }
        assert_eq!(
            charge(&order("ada"), &fact, 1),
            charge(&order("ada"), &fact, 2)
        );
    }
}
