//! What every candidate storage engine implements, so one driver measures them all alike.

use crate::workload::Record;

/// A candidate: writes groups durably (one sync per group) and reads facts by hash.
pub trait Engine: Send + Sync {
    /// Checks each record's hash for existence, writes the new ones with their indexes, and
    /// returns only once the group is on stable storage. Returns how many were new.
    fn write_group(&mut self, records: &[Record]) -> anyhow::Result<usize>;
    /// The stored canonical bytes of the fact with this hash.
    fn get(&self, hash: &[u8; 32]) -> anyhow::Result<Option<Vec<u8>>>;
    /// Flushes whatever a clean shutdown flushes.
    fn close(&mut self) -> anyhow::Result<()>;
    /// Segment log only: write the next groups to the log but not to the index (a simulated
    /// crash that lost the index's unsynced tail).
    fn set_skip_index(&mut self, _skip_index: bool) {}
    /// Segment log only: what the last open re-indexed, (records, milliseconds).
    fn recovered(&self) -> Option<(u64, f64)> {
        None
    }
}

/// `successors` key: predecessor, successor type, separator, successor seq, role (as Cairn's).
pub fn successor_key(predecessor: &[u8; 32], type_name: &str, seq: u64, role: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(32 + type_name.len() + 1 + 8 + role.len());
    key.extend_from_slice(predecessor);
    key.extend_from_slice(type_name.as_bytes());
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key.extend_from_slice(role.as_bytes());
    key
}

/// `by_type` key: type, separator, seq (as Cairn's).
pub fn type_key(type_name: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(type_name.len() + 1 + 8);
    key.extend_from_slice(type_name.as_bytes());
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// `facts` value: hash then canonical bytes (as Cairn's).
pub fn fact_value(record: &Record) -> Vec<u8> {
    let mut value = Vec::with_capacity(32 + record.body.len());
    value.extend_from_slice(&record.hash);
    value.extend_from_slice(&record.body);
    value
}
