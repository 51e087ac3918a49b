//! The `DeliveryStore` trait: how a backend keeps subscriptions' delivery
//! state, with the same transaction discipline as facts.
//!
//! The delivery logic itself lives in `cairn-delivery` as a pure state
//! machine; it emits [`Change`]s, which a backend applies in order. A
//! backend also answers the queries the delivery runtime needs: which facts
//! match a subscription, and its dead letters.

use std::future::Future;

use cairn_delivery::{Change, MessageRecord, MessageStatus, SubscriptionRecord};
use cairn_fact::Hash;

use crate::error::{ReadError, WriteError};
use crate::store::{Page, StoredFact};

/// A subscription as loaded at open: its record, its pending messages in
/// `seq` order, and how many dead letters and discarded ones it has.
#[derive(Clone, Debug)]
pub struct StoredSubscription {
    /// The subscription's record.
    pub record: SubscriptionRecord,
    /// Its tracked messages.
    pub pending: Vec<(u64, MessageRecord)>,
    /// Its dead letters.
    pub dead: u64,
    /// Its discarded dead letters.
    pub discarded: u64,
}

/// Which facts are messages of a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageSelection {
    /// Every fact of this type.
    Type(String),
    /// Facts of this type that name `predecessor` in `role`.
    Successors {
        /// The type.
        type_name: String,
        /// The role.
        role: String,
        /// The predecessor.
        predecessor: Hash,
    },
}

impl MessageSelection {
    /// The type of the facts selected.
    pub fn type_name(&self) -> &str {
        match self {
            MessageSelection::Type(type_name) | MessageSelection::Successors { type_name, .. } => {
                type_name
            }
        }
    }
}

/// Delivery state storage. Contract:
///
/// * **Ordered.** Changes are applied in the order they are written, also
///   across calls: a later call never becomes durable without an earlier one.
/// * **Durable on return when asked.** If `write_delivery(.., true)`
///   returns `Ok`, the changes and every change written before them are on
///   stable storage. With `false` they become durable with the next durable
///   write (or are lost in a crash, together with everything after them).
/// * **All or nothing** per call; after a storage failure the store is
///   poisoned like for facts.
/// * **Reads see only durable facts**; delivery records read back are those
///   written, in `seq` order.
pub trait DeliveryStore: Send + Sync + 'static {
    /// Every subscription with its pending messages.
    fn load_subscriptions(&self) -> Result<Vec<StoredSubscription>, ReadError>;

    /// Applies changes of one subscription in order; see the trait contract
    /// for `wait_durable`.
    fn write_delivery(
        &self,
        subscription_id: u64,
        changes: Vec<Change>,
        wait_durable: bool,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;

    /// Removes a subscription and every record of its messages, durably.
    fn delete_subscription(&self, id: u64) -> impl Future<Output = Result<(), WriteError>> + Send;

    /// Message records of one status with `seq > after_seq`, ascending, at
    /// most `limit`.
    fn message_records(
        &self,
        subscription_id: u64,
        status: MessageStatus,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, MessageRecord)>, ReadError>;

    /// The dead letter (status `Dead`) of this fact, if there is one.
    fn dead_letter(
        &self,
        subscription_id: u64,
        hash: &Hash,
    ) -> Result<Option<(u64, MessageRecord)>, ReadError>;

    /// Durable facts matching `selection` with `seq > after_seq`, ascending,
    /// at most `limit`. `next_seq` is how far the search went.
    fn matching_facts(
        &self,
        selection: &MessageSelection,
        after_seq: u64,
        limit: usize,
    ) -> Result<Page, ReadError>;

    /// How many durable facts match `selection` with
    /// `after_seq < seq <= through_seq`.
    fn count_matching(
        &self,
        selection: &MessageSelection,
        after_seq: u64,
        through_seq: u64,
    ) -> Result<u64, ReadError>;

    /// The durable fact at `seq`, if any.
    fn fact_at_seq(&self, seq: u64) -> Result<Option<StoredFact>, ReadError>;
}
