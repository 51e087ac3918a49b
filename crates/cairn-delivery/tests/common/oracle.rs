//! The oracle's bookkeeping that several checkers share, rebuilt from a
//! history alone: where each message stands ([`Fates`]), and which leases
//! the current server incarnation holds and what time it has seen
//! ([`Leases`]).
//!
//! Crashes are modelled from the writes, not from the state machine: a fate
//! recorded by a write after a crash's `durable_through_batch` is undone,
//! because the disk the server restarts from never saw it.

use std::collections::{BTreeMap, HashMap};

use cairn_delivery::{LeaseToken, TokenStatus};

use super::simulation::{Event, TokenOperation};

/// A broken invariant: which one, and the counterexample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's name.
    pub invariant: &'static str,
    /// What happened instead.
    pub detail: String,
}

impl Violation {
    /// A violation of `invariant`.
    pub fn new(invariant: &'static str, detail: String) -> Violation {
        Violation { invariant, detail }
    }
}

/// Where a message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fate {
    /// In the log, not (or no longer, after a crash) in the window.
    Published,
    /// In the window: waiting, ready, blocked or leased.
    Tracked,
    /// Acknowledged.
    Acked,
    /// A dead letter.
    Dead,
    /// A discarded dead letter.
    Discarded,
}

/// The batch of the log itself: always durable.
const LOG_BATCH: u64 = 0;
/// The batch of a fate that no write carried: lost in any crash.
const UNWRITTEN_BATCH: u64 = u64::MAX;

/// Every message's fate over time, with crashes undoing lost writes.
#[derive(Debug, Default)]
pub struct Fates {
    /// Per message, its fates in order, each with the batch that wrote it.
    fates: BTreeMap<u64, Vec<(Fate, u64)>>,
    /// How many messages stand at each fate now, kept as fates change
    /// because checkers ask after every step.
    counts: HashMap<Fate, usize>,
}

impl Fates {
    /// Follows one event.
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::Published { seq, .. } => {
                self.fates.insert(*seq, vec![(Fate::Published, LOG_BATCH)]);
                *self.counts.entry(Fate::Published).or_default() += 1;
            }
            Event::Admitted { seqs, batch } | Event::Replayed { seqs, batch, .. } => {
                for seq in seqs {
                    self.push(*seq, Fate::Tracked, *batch);
                }
            }
            Event::Answered {
                operation: TokenOperation::Ack,
                token: Some(token),
                status: TokenStatus::Acked,
                batch,
                ..
            } => self.push(token.seq, Fate::Acked, *batch),
            Event::DeadLettered { seq, batch, .. } => self.push(*seq, Fate::Dead, *batch),
            Event::Discarded { seq, batch, .. } => self.push(*seq, Fate::Discarded, *batch),
            Event::Crashed {
                durable_through_batch,
            } => {
                for fates in self.fates.values_mut() {
                    while let Some((lost, batch)) = fates.last().copied() {
                        if batch <= *durable_through_batch {
                            break;
                        }
                        fates.pop();
                        let restored = fates.last().map(|(fate, _)| *fate);
                        Self::recount(&mut self.counts, Some(lost), restored);
                    }
                }
            }
            _ => {}
        }
    }

    fn push(&mut self, seq: u64, fate: Fate, batch: Option<u64>) {
        let fates = self.fates.entry(seq).or_default();
        let before = fates.last().map(|(fate, _)| *fate);
        fates.push((fate, batch.unwrap_or(UNWRITTEN_BATCH)));
        Self::recount(&mut self.counts, before, Some(fate));
    }

    fn recount(counts: &mut HashMap<Fate, usize>, before: Option<Fate>, after: Option<Fate>) {
        if let Some(before) = before {
            *counts.entry(before).or_default() -= 1;
        }
        if let Some(after) = after {
            *counts.entry(after).or_default() += 1;
        }
    }

    /// Where `seq` stands now (`None`: never published).
    pub fn fate(&self, seq: u64) -> Option<Fate> {
        self.fates
            .get(&seq)
            .and_then(|fates| fates.last())
            .map(|(fate, _)| *fate)
    }

    /// Every published message with its fate, by `seq`.
    pub fn all(&self) -> impl Iterator<Item = (u64, Fate)> + '_ {
        self.fates
            .iter()
            .filter_map(|(seq, fates)| fates.last().map(|(fate, _)| (*seq, *fate)))
    }

    /// How many messages stand at `fate`.
    pub fn count(&self, fate: Fate) -> usize {
        self.counts.get(&fate).copied().unwrap_or(0)
    }
}

/// A lease the state machine considers current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenLease {
    /// Its token.
    pub token: LeaseToken,
    /// Who holds it.
    pub consumer: usize,
    /// The delivery attempt.
    pub attempt: u32,
    /// When it ends, after the latest successful extend.
    pub expires_at_ms: u64,
}

/// The leases of the current server incarnation. A lease is open from its
/// pull until an ack or nack with its token succeeds or the state machine
/// reports its expiry; a crash ends every lease.
#[derive(Debug, Default)]
pub struct Leases {
    /// Counts restarts.
    pub incarnation: u32,
    /// The latest time this incarnation's state machine was given: its
    /// notion of "now" when clocks step back.
    pub high_water_ms: u64,
    /// Open leases by message.
    pub open: BTreeMap<u64, OpenLease>,
    /// Every token this incarnation handed out, with its message's attempt.
    issued: HashMap<LeaseToken, u32>,
    /// The newest token per message in this incarnation.
    newest: HashMap<u64, LeaseToken>,
}

impl Leases {
    /// Follows one event.
    pub fn observe(&mut self, event: &Event) {
        if let Some(now_ms) = event.state_now_ms() {
            self.high_water_ms = self.high_water_ms.max(now_ms);
        }
        match event {
            Event::Leased {
                consumer,
                seq,
                token,
                attempt,
                expires_at_ms,
                ..
            } => {
                let lease = OpenLease {
                    token: *token,
                    consumer: *consumer,
                    attempt: *attempt,
                    expires_at_ms: *expires_at_ms,
                };
                self.open.insert(*seq, lease);
                self.issued.insert(*token, *attempt);
                self.newest.insert(*seq, *token);
            }
            Event::Answered {
                operation,
                token: Some(token),
                status,
                ..
            } => {
                let Some(open) = self.open.get_mut(&token.seq) else {
                    return;
                };
                if open.token != *token {
                    return;
                }
                match (operation, status) {
                    (TokenOperation::Ack, TokenStatus::Acked)
                    | (TokenOperation::Nack { .. }, TokenStatus::Nacked) => {
                        self.open.remove(&token.seq);
                    }
                    (TokenOperation::Extend { expires_at_ms, .. }, TokenStatus::Extended) => {
                        open.expires_at_ms = *expires_at_ms;
                    }
                    _ => {}
                }
            }
            Event::LeaseExpired { seq, .. } => {
                self.open.remove(seq);
            }
            Event::Crashed { .. } => {
                *self = Leases {
                    incarnation: self.incarnation + 1,
                    ..Leases::default()
                };
            }
            _ => {}
        }
    }

    /// The attempt of the lease `token` belongs to, if this incarnation
    /// issued it.
    pub fn attempt_of(&self, token: &LeaseToken) -> Option<u32> {
        self.issued.get(token).copied()
    }

    /// The newest token of `seq` in this incarnation.
    pub fn newest(&self, seq: u64) -> Option<LeaseToken> {
        self.newest.get(&seq).copied()
    }
}
