//! Test support: a model of a backend that applies the state machine's
//! changes to maps, as a store would, and restores a state from them.

#![allow(dead_code)]

use std::collections::BTreeMap;

use cairn_delivery::{Change, MessageRecord, MessageStatus, SubscriptionRecord, SubscriptionState};

/// What a backend would hold for one subscription.
#[derive(Default)]
pub struct ModelDisk {
    pub subscription: Option<SubscriptionRecord>,
    pub messages: BTreeMap<u64, MessageRecord>,
}

impl ModelDisk {
    /// Applies changes in order.
    pub fn apply(&mut self, changes: Vec<Change>) {
        for change in changes {
            match change {
                Change::Subscription(record) => self.subscription = Some(record),
                Change::Message { seq, record, .. } => {
                    self.messages.insert(seq, record);
                }
                Change::MessageRemoved { seq, .. } => {
                    self.messages.remove(&seq);
                }
            }
        }
    }

    /// The state a restarted server would rebuild from these records.
    pub fn restore(&self, now_ms: u64, seed: u64) -> SubscriptionState {
        let pending = self
            .messages
            .iter()
            .filter(|(_, record)| record.status == MessageStatus::Pending)
            .map(|(seq, record)| (*seq, record.clone()))
            .collect();
        let dead = self
            .messages
            .values()
            .filter(|record| record.status == MessageStatus::Dead)
            .count();
        SubscriptionState::restore(
            self.subscription.clone().expect("a subscription record"),
            pending,
            dead as u64,
            0,
            now_ms,
            seed,
        )
    }
}
