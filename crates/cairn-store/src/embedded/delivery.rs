//! Delivery state in the embedded store: the `delivery` partition and the
//! `DeliveryStore` implementation.
//!
//! | key                                    | value                      |
//! |----------------------------------------|----------------------------|
//! | `s` ‖ id (u64 BE)                      | `SubscriptionRecord`       |
//! | `p` ‖ id ‖ seq (u64 BE)                | `MessageRecord` (pending)  |
//! | `d` ‖ id ‖ seq                         | `MessageRecord` (dead)     |
//! | `x` ‖ id ‖ seq                         | `MessageRecord` (discarded)|
//! | `h` ‖ id ‖ hash (32 bytes)             | seq of the dead letter     |
//!
//! Changes are staged into the writer thread's group batches, so they share
//! the facts' journal, atomic commits and fsyncs (see `writer.rs`).

use std::sync::atomic::Ordering;

use cairn_delivery::{Change, MessageRecord, MessageStatus, SubscriptionRecord};
use cairn_fact::Hash;
use tokio::sync::oneshot;

use super::writer::WriteRequest;
use super::{keys, EmbeddedStore, Shared};
use crate::delivery::{DeliveryStore, MessageSelection, StoredSubscription};
use crate::error::{ReadError, WriteError};
use crate::store::{Page, StoredFact};

const SUBSCRIPTION_TAG: u8 = b's';
const DEAD_BY_HASH_TAG: u8 = b'h';

/// Most index entries one matching query scans.
const MATCHING_ENTRIES_SCANNED_MAX: usize = 100_000;

/// What the writer thread applies for one `write_delivery` call.
pub enum DeliveryWrite {
    /// Changes of one subscription, in order.
    Changes {
        subscription_id: u64,
        changes: Vec<Change>,
    },
    /// Removal of a subscription and all its records.
    DeleteSubscription { subscription_id: u64 },
}

fn status_tag(status: MessageStatus) -> u8 {
    match status {
        MessageStatus::Pending => b'p',
        MessageStatus::Dead => b'd',
        MessageStatus::Discarded => b'x',
    }
}

fn prefix(tag: u8, id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(41);
    key.push(tag);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

fn message_key(status: MessageStatus, id: u64, seq: u64) -> Vec<u8> {
    let mut key = prefix(status_tag(status), id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn dead_by_hash_key(id: u64, hash: &Hash) -> Vec<u8> {
    let mut key = prefix(DEAD_BY_HASH_TAG, id);
    key.extend_from_slice(hash.as_bytes());
    key
}

/// Adds one delivery write to a group batch. Runs on the writer thread.
pub fn stage(
    shared: &Shared,
    batch: &mut fjall::Batch,
    write: DeliveryWrite,
) -> Result<(), WriteError> {
    let partition = &shared.delivery;
    match write {
        DeliveryWrite::Changes {
            subscription_id: id,
            changes,
        } => {
            for change in changes {
                match change {
                    Change::Subscription(record) => {
                        debug_assert_eq!(record.id, id);
                        batch.insert(partition, prefix(SUBSCRIPTION_TAG, id), record.encode());
                    }
                    Change::Message {
                        seq,
                        record,
                        previous,
                    } => {
                        if let Some(previous) = previous.filter(|p| *p != record.status) {
                            batch.remove(partition, message_key(previous, id, seq));
                            if previous == MessageStatus::Dead {
                                batch.remove(partition, dead_by_hash_key(id, &record.hash));
                            }
                        }
                        if record.status == MessageStatus::Dead {
                            batch.insert(
                                partition,
                                dead_by_hash_key(id, &record.hash),
                                seq.to_be_bytes(),
                            );
                        }
                        batch.insert(
                            partition,
                            message_key(record.status, id, seq),
                            record.encode(),
                        );
                    }
                    Change::MessageRemoved {
                        seq,
                        hash,
                        previous,
                    } => {
                        batch.remove(partition, message_key(previous, id, seq));
                        if previous == MessageStatus::Dead {
                            batch.remove(partition, dead_by_hash_key(id, &hash));
                        }
                    }
                }
            }
        }
        DeliveryWrite::DeleteSubscription {
            subscription_id: id,
        } => {
            for tag in [SUBSCRIPTION_TAG, b'p', b'd', b'x', DEAD_BY_HASH_TAG] {
                for entry in partition.prefix(prefix(tag, id)) {
                    let (key, _) = entry
                        .map_err(|error| WriteError::storage_caused_by(error.to_string(), error))?;
                    batch.remove(partition, key);
                }
            }
        }
    }
    Ok(())
}

impl EmbeddedStore {
    async fn send_delivery(
        &self,
        write: DeliveryWrite,
        wait_durable: bool,
    ) -> Result<(), WriteError> {
        if self.shared.poisoned.load(Ordering::Acquire) {
            return Err(WriteError::Poisoned);
        }
        let (reply, answer) = if wait_durable {
            let (sender, receiver) = oneshot::channel();
            (Some(sender), Some(receiver))
        } else {
            (None, None)
        };
        let sender = self
            .requests
            .lock()
            .expect("lock poisoned")
            .clone()
            .ok_or(WriteError::Closed)?;
        sender
            .send(WriteRequest::Delivery { write, reply })
            .await
            .map_err(|_| WriteError::Closed)?;
        match answer {
            Some(answer) => answer.await.map_err(|_| WriteError::Closed)?,
            None => Ok(()),
        }
    }

    /// Calls `visit` with the seq of each fact matching `selection` in
    /// `after_seq < seq <= through_seq`, ascending, until it returns false
    /// or `MATCHING_ENTRIES_SCANNED_MAX` index entries were read. Returns
    /// the seq through which the range was completely searched.
    fn scan_matching(
        &self,
        selection: &MessageSelection,
        after_seq: u64,
        through_seq: u64,
        mut visit: impl FnMut(u64) -> bool,
    ) -> Result<u64, ReadError> {
        let shared = &self.shared;
        if after_seq >= through_seq {
            return Ok(after_seq);
        }
        let (partition, prefix, role) = match selection {
            MessageSelection::Type(type_name) => {
                (&shared.by_type, keys::type_key(type_name, 0), None)
            }
            MessageSelection::Successors {
                type_name,
                role,
                predecessor,
            } => (
                &shared.successors,
                keys::successor_prefix(predecessor, type_name),
                Some(role.as_bytes()),
            ),
        };
        // Both index keys are `prefix ‖ seq (8 bytes BE) ‖ [role]`.
        let prefix = &prefix[..prefix.len() - if role.is_none() { 8 } else { 0 }];
        let bound = |seq: u64| {
            let mut key = prefix.to_vec();
            key.extend_from_slice(&keys::seq_key(seq));
            key
        };
        for (n_scanned, entry) in partition
            .range(bound(after_seq + 1)..bound(through_seq + 1))
            .enumerate()
        {
            let (key, _) = entry?;
            let (seq, entry_role) = keys::split_successor_suffix(&key[prefix.len()..])
                .ok_or_else(|| shared.corrupt("malformed index key".into()))?;
            if n_scanned >= MATCHING_ENTRIES_SCANNED_MAX {
                // Every entry before this one was read; the entries of one
                // fact are never this many, so the answer always moves
                // forward.
                return Ok(seq - 1);
            }
            if role.is_some_and(|role| role != entry_role) {
                continue;
            }
            if !visit(seq) {
                return Ok(seq);
            }
        }
        Ok(through_seq)
    }

    fn decode_message(&self, key: &[u8], value: &[u8]) -> Result<(u64, MessageRecord), ReadError> {
        let seq = key
            .get(9..17)
            .and_then(keys::decode_seq)
            .ok_or_else(|| self.shared.corrupt("malformed delivery record key".into()))?;
        let record =
            MessageRecord::decode(value).map_err(|error| self.shared.corrupt(error.to_string()))?;
        Ok((seq, record))
    }
}

impl DeliveryStore for EmbeddedStore {
    fn load_subscriptions(&self) -> Result<Vec<StoredSubscription>, ReadError> {
        let partition = &self.shared.delivery;
        let mut subscriptions = Vec::new();
        for entry in partition.prefix([SUBSCRIPTION_TAG]) {
            let (_, value) = entry?;
            let record = SubscriptionRecord::decode(&value)
                .map_err(|error| self.shared.corrupt(error.to_string()))?;
            let id = record.id;
            let mut pending = Vec::new();
            for entry in partition.prefix(prefix(b'p', id)) {
                let (key, value) = entry?;
                pending.push(self.decode_message(&key, &value)?);
            }
            let count = |tag| -> Result<u64, ReadError> {
                let mut n = 0;
                for entry in partition.prefix(prefix(tag, id)) {
                    entry?;
                    n += 1;
                }
                Ok(n)
            };
            subscriptions.push(StoredSubscription {
                dead: count(b'd')?,
                discarded: count(b'x')?,
                record,
                pending,
            });
        }
        Ok(subscriptions)
    }

    async fn write_delivery(
        &self,
        subscription_id: u64,
        changes: Vec<Change>,
        wait_durable: bool,
    ) -> Result<(), WriteError> {
        if changes.is_empty() && !wait_durable {
            return Ok(());
        }
        self.send_delivery(
            DeliveryWrite::Changes {
                subscription_id,
                changes,
            },
            wait_durable,
        )
        .await
    }

    async fn delete_subscription(&self, subscription_id: u64) -> Result<(), WriteError> {
        self.send_delivery(DeliveryWrite::DeleteSubscription { subscription_id }, true)
            .await
    }

    fn message_records(
        &self,
        subscription_id: u64,
        status: MessageStatus,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, MessageRecord)>, ReadError> {
        let start = message_key(status, subscription_id, after_seq.saturating_add(1));
        let end = prefix(status_tag(status), subscription_id.saturating_add(1));
        let mut records = Vec::new();
        for entry in self.shared.delivery.range(start..end).take(limit) {
            let (key, value) = entry?;
            records.push(self.decode_message(&key, &value)?);
        }
        Ok(records)
    }

    fn dead_letter(
        &self,
        subscription_id: u64,
        hash: &Hash,
    ) -> Result<Option<(u64, MessageRecord)>, ReadError> {
        let Some(seq) = self
            .shared
            .delivery
            .get(dead_by_hash_key(subscription_id, hash))?
        else {
            return Ok(None);
        };
        let seq = keys::decode_seq(&seq).ok_or_else(|| {
            self.shared
                .corrupt("malformed dead letter index entry".into())
        })?;
        let key = message_key(MessageStatus::Dead, subscription_id, seq);
        match self.shared.delivery.get(&key)? {
            None => Err(self
                .shared
                .corrupt(format!("dead letter {hash} is indexed but missing"))),
            Some(value) => self.decode_message(&key, &value).map(Some),
        }
    }

    fn matching_facts(
        &self,
        selection: &MessageSelection,
        after_seq: u64,
        limit: usize,
    ) -> Result<Page, ReadError> {
        let durable = self.shared.durable_seq();
        let mut seqs = Vec::new();
        let searched_through = self.scan_matching(selection, after_seq, durable, |seq| {
            seqs.push(seq);
            seqs.len() < limit
        })?;
        Ok(Page {
            facts: self.shared.facts_at(&seqs)?,
            next_seq: searched_through,
        })
    }

    fn count_matching(
        &self,
        selection: &MessageSelection,
        after_seq: u64,
        through_seq: u64,
    ) -> Result<u64, ReadError> {
        let mut n = 0;
        let through_seq = through_seq.min(self.shared.durable_seq());
        // One scan stops after `MATCHING_ENTRIES_SCANNED_MAX` entries; the
        // count goes on from where it stopped, so a backlog of any size is
        // counted whole.
        let mut searched_through = after_seq;
        while searched_through < through_seq {
            searched_through =
                self.scan_matching(selection, searched_through, through_seq, |_| {
                    n += 1;
                    true
                })?;
        }
        Ok(n)
    }

    fn fact_at_seq(&self, seq: u64) -> Result<Option<StoredFact>, ReadError> {
        if seq == 0 || seq > self.shared.durable_seq() {
            return Ok(None);
        }
        self.shared.fact_at(seq).map(Some)
    }
}
