//! A model of a delivery backend for the simulations.
//!
//! It applies the state machine's [`Change`]s the way the embedded store
//! stages them (one record per message, keyed by its status and moved with
//! the change's `previous` status, plus a dead-letter index by hash), and it
//! models durability as the `DeliveryStore` contract states it: writes are
//! queued in order, a barrier makes everything queued durable, and a crash
//! keeps only a prefix of the queued writes. Keying records by status, as
//! the real store does, is what lets a wrong `previous` show up as a message
//! recorded twice.

use std::collections::{BTreeMap, HashMap};

use cairn_delivery::{
    Change, MessageRecord, MessageStatus, SubscriptionRecord, SubscriptionState, TokenKey,
};
use cairn_fact::Hash;

/// The order of statuses in record keys, like the store's `p`, `d` and `x`
/// key tags.
fn status_tag(status: MessageStatus) -> u8 {
    match status {
        MessageStatus::Pending => 0,
        MessageStatus::Dead => 1,
        MessageStatus::Discarded => 2,
    }
}

/// What a backend holds for one subscription.
#[derive(Clone, Debug, Default)]
pub struct DiskImage {
    /// The subscription's record.
    pub subscription: Option<SubscriptionRecord>,
    /// Message records by `(status tag, seq)`.
    records: BTreeMap<(u8, u64), MessageRecord>,
    /// Dead letters by hash, like the store's `h` index.
    dead_by_hash: HashMap<Hash, u64>,
}

impl DiskImage {
    /// Applies one change as the embedded store stages it.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Subscription(record) => self.subscription = Some(record),
            Change::Message {
                seq,
                record,
                previous,
            } => {
                if let Some(previous) = previous.filter(|previous| *previous != record.status) {
                    self.records.remove(&(status_tag(previous), seq));
                    if previous == MessageStatus::Dead {
                        self.dead_by_hash.remove(&record.hash);
                    }
                }
                if record.status == MessageStatus::Dead {
                    self.dead_by_hash.insert(record.hash, seq);
                }
                self.records
                    .insert((status_tag(record.status), seq), record);
            }
            Change::MessageRemoved {
                seq,
                hash,
                previous,
            } => {
                self.records.remove(&(status_tag(previous), seq));
                if previous == MessageStatus::Dead {
                    self.dead_by_hash.remove(&hash);
                }
            }
        }
    }

    /// Applies changes in order.
    pub fn apply_all(&mut self, changes: Vec<Change>) {
        changes.into_iter().for_each(|change| self.apply(change));
    }

    /// Records of one status, ascending by `seq`.
    pub fn records_with(&self, status: MessageStatus) -> Vec<(u64, MessageRecord)> {
        let tag = status_tag(status);
        self.records
            .range((tag, 0)..=(tag, u64::MAX))
            .map(|((_, seq), record)| (*seq, record.clone()))
            .collect()
    }

    /// Every record as `(seq, status, attempts)`, by status then `seq`; a
    /// message recorded under two statuses appears twice.
    pub fn statuses(&self) -> Vec<(u64, MessageStatus, u32)> {
        self.records
            .iter()
            .map(|((_, seq), record)| (*seq, record.status, record.attempts))
            .collect()
    }

    /// The dead letter of this fact, as `DeliveryStore::dead_letter` finds it.
    pub fn dead_letter(&self, hash: &Hash) -> Option<(u64, MessageRecord)> {
        let seq = *self.dead_by_hash.get(hash)?;
        let record = self.records.get(&(status_tag(MessageStatus::Dead), seq))?;
        Some((seq, record.clone()))
    }

    /// The state a restarted server rebuilds from these records, as
    /// `load_subscriptions` and `SubscriptionState::restore` do.
    pub fn restore(&self, now_ms: u64, key: TokenKey) -> SubscriptionState {
        let dead = self.records_with(MessageStatus::Dead).len() as u64;
        let discarded = self.records_with(MessageStatus::Discarded).len() as u64;
        SubscriptionState::restore(
            self.subscription
                .clone()
                .expect("the subscription record is written at creation"),
            self.records_with(MessageStatus::Pending),
            dead,
            discarded,
            now_ms,
            key,
        )
    }
}

/// The durable image and the writes queued on top of it; see the module
/// documentation.
#[derive(Debug)]
pub struct ModelStore {
    durable: DiskImage,
    /// Writes not yet durable, in order, each with its batch number.
    queued: Vec<(u64, Vec<Change>)>,
    last_batch: u64,
}

impl ModelStore {
    /// A store holding `initial` durably (a subscription is created durably
    /// before the answer).
    pub fn new(initial: Vec<Change>) -> ModelStore {
        let mut durable = DiskImage::default();
        durable.apply_all(initial);
        ModelStore {
            durable,
            queued: Vec::new(),
            last_batch: 0,
        }
    }

    /// Queues one write (`write_delivery(.., false)`); returns its batch
    /// number, or `None` when there was nothing to write.
    pub fn write(&mut self, changes: Vec<Change>) -> Option<u64> {
        if changes.is_empty() {
            return None;
        }
        self.last_batch += 1;
        self.queued.push((self.last_batch, changes));
        Some(self.last_batch)
    }

    /// Makes every queued write durable (a synced group commit).
    pub fn barrier(&mut self) {
        self.keep_queued(self.queued.len());
    }

    /// How many writes are queued and not durable.
    pub fn n_queued(&self) -> usize {
        self.queued.len()
    }

    /// A crash: the first `n_surviving` queued writes reached the disk, the
    /// rest are lost. Returns the last batch number that is durable.
    pub fn crash(&mut self, n_surviving: usize) -> u64 {
        self.keep_queued(n_surviving.min(self.queued.len()));
        let durable_through_batch = self.durable_through_batch();
        self.queued.clear();
        durable_through_batch
    }

    /// Every batch up to this number is durable.
    pub fn durable_through_batch(&self) -> u64 {
        self.queued
            .first()
            .map_or(self.last_batch, |(batch, _)| batch - 1)
    }

    /// What survives a crash now.
    pub fn durable(&self) -> &DiskImage {
        &self.durable
    }

    fn keep_queued(&mut self, n_kept: usize) {
        for (_, changes) in self.queued.drain(..n_kept) {
            self.durable.apply_all(changes);
        }
    }
}
