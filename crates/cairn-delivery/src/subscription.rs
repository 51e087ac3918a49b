//! One subscription's delivery state machine.
//!
//! It tracks a bounded window of messages (admitted in `seq` order from the
//! facts that match the subscription) and decides, from events and the time
//! it is given, which message is leased to whom, when a failed one is
//! retried, and when it becomes a dead letter. Every state change that must
//! survive a restart is returned as a [`Change`] for the runtime to persist;
//! the state machine itself never blocks and never fails.
//!
//! Each tracked message is in exactly one slot:
//! `Leased` (a consumer holds it), `Waiting` (for its backoff, its nack delay
//! or its `cairn_not_before`), `Blocked` (due, but earlier messages of its
//! ordering key come first) or `Ready` (deliverable now, in `ready`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use cairn_fact::Hash;

use crate::attributes::MessageAttributes;
use crate::definition::{DefinitionChange, SubscriptionDefinition};
use crate::failure::{retry_delay_ms, FailedAttempt};
use crate::limits;
use crate::outcomes::TokenBatch;
use crate::rate::TokenBucket;
use crate::record::{MessageRecord, MessageStatus, SubscriptionRecord, FIRST_GENERATION};
use crate::token::{lease_number, match_token, LeaseToken, MessageLease, TokenKey, TokenMatch};

/// The error recorded when a lease runs out.
pub const LEASE_EXPIRED_ERROR: &str = "lease expired";

/// A matching fact entering the subscription's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmittedMessage {
    /// Its position in the log.
    pub seq: u64,
    /// Its hash.
    pub hash: Hash,
    /// Its ordering key and not-before time.
    pub attributes: MessageAttributes,
}

/// One message leased by a pull.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// What the consumer acks with.
    pub token: LeaseToken,
    /// The message's position in the log.
    pub seq: u64,
    /// The message's hash.
    pub hash: Hash,
    /// 1 on the first delivery, growing by one with each redelivery.
    pub attempt: u32,
}

/// A state change the runtime must persist, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Store (replace) the subscription's record.
    Subscription(SubscriptionRecord),
    /// Store a message's record; `previous` is the status it was stored
    /// under before (`None` if it had no record), so a backend that keys
    /// records by status can move it.
    Message {
        /// The message.
        seq: u64,
        /// Its new record.
        record: MessageRecord,
        /// Its previous status, if it had a record.
        previous: Option<MessageStatus>,
    },
    /// Delete a message's record: it was acknowledged.
    MessageRemoved {
        /// The message.
        seq: u64,
        /// Its hash.
        hash: Hash,
        /// The status it was stored under.
        previous: MessageStatus,
    },
}

/// What became of one token of an ack, nack or extend: the protocol's
/// statuses.
pub use cairn_api::TokenStatus;

/// The outcome for one token, in request order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenOutcome {
    /// The token as the consumer sent it.
    pub token: String,
    /// What happened.
    pub status: TokenStatus,
}

/// Where one tracked message stands (see
/// [`SubscriptionState::tracked_detail`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackedDetail {
    /// Deliveries in its current round, the running lease included.
    pub attempts: u32,
    /// Leased now.
    pub leased: bool,
    /// The error of its last failed attempt, if any.
    pub last_error: Option<String>,
    /// Not leased, and not delivered before this time, which lies ahead.
    pub not_before_ms: Option<u64>,
}

/// Counters for observability.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Deliveries since start (first deliveries and redeliveries).
    pub delivered: u64,
    /// Redeliveries since start.
    pub redelivered: u64,
    /// Acknowledgements since start.
    pub acked: u64,
    /// Dead letters now.
    pub dead: u64,
    /// Discarded dead letters now.
    pub discarded: u64,
    /// Messages leased now.
    pub in_flight: u64,
    /// Tracked messages not leased now (ready, waiting or blocked).
    pub tracked_not_leased: u64,
    /// Age of the oldest tracked message that was delivered (ms).
    pub oldest_unacked_age_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Leased { expires_at_ms: u64 },
    Waiting,
    Blocked,
    Ready,
}

#[derive(Clone, Debug)]
struct Tracked {
    hash: Hash,
    key: Option<Hash>,
    /// Replays so far (the high half of its lease numbers).
    round: u32,
    /// Leases in this round so far (the low half of its lease numbers).
    attempts: u32,
    available_at_ms: u64,
    first_delivered_at_ms: Option<u64>,
    last_error: Option<String>,
    slot: Slot,
}

impl Tracked {
    /// The lease number of its latest lease.
    fn lease_id(&self) -> u64 {
        lease_number(self.round, self.attempts)
    }
}

/// The tracked messages of one ordering key, in `seq` order, and how many of
/// them are leased.
#[derive(Debug, Default)]
struct KeyQueue {
    seqs: BTreeSet<u64>,
    in_flight: u32,
}

/// One subscription's delivery state; see the module documentation.
#[derive(Debug)]
pub struct SubscriptionState {
    id: u64,
    name: String,
    definition: SubscriptionDefinition,
    generation: u64,
    paused: bool,
    cursor_seq: u64,
    /// The cursor it was created with, if recorded.
    start_seq: Option<u64>,
    created_at_ms: u64,
    tracked: BTreeMap<u64, Tracked>,
    ready: BTreeSet<u64>,
    waiting: BinaryHeap<Reverse<(u64, u64)>>,
    leases: BinaryHeap<Reverse<(u64, u64, u64)>>,
    keys: HashMap<Hash, KeyQueue>,
    rate: Option<TokenBucket>,
    key: TokenKey,
    counters: Counters,
}

impl SubscriptionState {
    /// A new subscription whose messages are the matching facts with
    /// `seq > cursor_seq`, signing its tokens with `key`.
    pub fn new(
        id: u64,
        name: String,
        definition: SubscriptionDefinition,
        cursor_seq: u64,
        now_ms: u64,
        key: TokenKey,
    ) -> SubscriptionState {
        let rate = definition
            .rate_limit_per_s
            .map(|rate| TokenBucket::new(rate, now_ms));
        SubscriptionState {
            id,
            name,
            definition,
            generation: FIRST_GENERATION,
            paused: false,
            cursor_seq,
            start_seq: Some(cursor_seq),
            created_at_ms: now_ms,
            tracked: BTreeMap::new(),
            ready: BTreeSet::new(),
            waiting: BinaryHeap::new(),
            leases: BinaryHeap::new(),
            keys: HashMap::new(),
            rate,
            key,
            counters: Counters::default(),
        }
    }

    /// Rebuilds the state from its records (after a restart). Leases are
    /// not recorded (a lease is worth less than the write it would cost on
    /// every delivery), so messages leased before the restart are delivered
    /// again, with the attempts of their last recorded failure. `key` is
    /// the new incarnation's: tokens from before the restart are unknown.
    pub fn restore(
        record: SubscriptionRecord,
        pending: Vec<(u64, MessageRecord)>,
        dead: u64,
        discarded: u64,
        now_ms: u64,
        key: TokenKey,
    ) -> SubscriptionState {
        let mut state = SubscriptionState::new(
            record.id,
            record.name,
            record.definition,
            record.cursor_seq,
            now_ms,
            key,
        );
        state.paused = record.paused;
        state.created_at_ms = record.created_at_ms;
        state.generation = record.generation;
        state.start_seq = record.start_seq;
        state.counters.dead = dead;
        state.counters.discarded = discarded;
        for (seq, message) in pending {
            state.track(
                seq,
                Tracked {
                    hash: message.hash,
                    key: message.key,
                    round: message.round,
                    attempts: message.attempts,
                    available_at_ms: message.available_at_ms,
                    first_delivered_at_ms: message.first_delivered_at_ms,
                    last_error: message.last_error,
                    slot: Slot::Waiting,
                },
            );
            state.schedule(seq, message.available_at_ms, now_ms);
        }
        state
    }

    /// The subscription's internal id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The subscription's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The definition.
    pub fn definition(&self) -> &SubscriptionDefinition {
        &self.definition
    }

    /// The definition's generation (see [`SubscriptionRecord::generation`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether delivery is paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Every matching fact up to here is tracked or done.
    pub fn cursor_seq(&self) -> u64 {
        self.cursor_seq
    }

    /// The record to persist for the subscription itself.
    pub fn record(&self) -> SubscriptionRecord {
        SubscriptionRecord {
            id: self.id,
            name: self.name.clone(),
            definition: self.definition.clone(),
            paused: self.paused,
            cursor_seq: self.cursor_seq,
            created_at_ms: self.created_at_ms,
            generation: self.generation,
            start_seq: self.start_seq,
        }
    }

    /// The cursor it was created with: facts at or below it were never
    /// its messages. `None` for a subscription recorded before the start
    /// was kept.
    pub fn start_seq(&self) -> Option<u64> {
        self.start_seq
    }

    /// How many more messages the window can take now.
    pub fn admission_room(&self) -> usize {
        limits::TRACKED_MESSAGES_MAX.saturating_sub(self.tracked.len())
    }

    /// The highest `seq` below which every tracked message lies acked or
    /// tracked: `min(tracked) − 1`, or the cursor when nothing is tracked.
    pub fn acked_floor_seq(&self) -> u64 {
        self.tracked
            .keys()
            .next()
            .map_or(self.cursor_seq, |seq| seq - 1)
    }

    /// Adds matching facts with `seq > cursor_seq`, ascending, and moves the
    /// cursor to `scanned_through_seq` (the end of the range that was
    /// searched, which may lie beyond the last message).
    pub fn admit(
        &mut self,
        messages: &[AdmittedMessage],
        scanned_through_seq: u64,
        now_ms: u64,
    ) -> Vec<Change> {
        let mut changes = Vec::with_capacity(messages.len() + 1);
        for message in messages {
            assert!(message.seq > self.cursor_seq, "admission out of order");
            let available_at_ms = message.attributes.not_before_ms.unwrap_or(0);
            self.cursor_seq = message.seq;
            self.track(
                message.seq,
                Tracked {
                    hash: message.hash,
                    key: message.attributes.key,
                    round: 0,
                    attempts: 0,
                    available_at_ms,
                    first_delivered_at_ms: None,
                    last_error: None,
                    slot: Slot::Waiting,
                },
            );
            self.schedule(message.seq, available_at_ms, now_ms);
            changes.push(self.message_change(message.seq, None));
        }
        let cursor_moved = scanned_through_seq > self.cursor_seq;
        self.cursor_seq = self.cursor_seq.max(scanned_through_seq);
        if !messages.is_empty() || cursor_moved {
            changes.push(Change::Subscription(self.record()));
        }
        changes
    }

    /// Leases up to `max` deliverable messages for `lease_ms` (or the
    /// definition's lease).
    pub fn pull(
        &mut self,
        max: usize,
        lease_ms: Option<u64>,
        now_ms: u64,
    ) -> (Vec<Lease>, Vec<Change>) {
        let changes = self.advance(now_ms);
        if self.paused {
            return (Vec::new(), changes);
        }
        let mut budget = max;
        if let Some(rate) = &mut self.rate {
            budget = budget.min(usize::try_from(rate.available(now_ms)).unwrap_or(usize::MAX));
        }
        let lease_ms = lease_ms.unwrap_or(self.definition.lease_ms);
        let mut leases = Vec::with_capacity(budget.min(self.ready.len()));
        while leases.len() < budget {
            let Some(seq) = self.ready.pop_first() else {
                break;
            };
            if !self.key_allows(seq) {
                self.slot_mut(seq).slot = Slot::Blocked;
                continue;
            }
            let tracked = self.slot_mut(seq);
            tracked.attempts += 1;
            tracked.first_delivered_at_ms.get_or_insert(now_ms);
            let attempt = tracked.attempts;
            let lease_id = tracked.lease_id();
            let hash = tracked.hash;
            self.set_leased(seq, now_ms.saturating_add(lease_ms));
            self.counters.delivered += 1;
            if attempt > 1 {
                self.counters.redelivered += 1;
            }
            leases.push(Lease {
                token: self.key.issue(seq, lease_id),
                seq,
                hash,
                attempt,
            });
        }
        if let Some(rate) = &mut self.rate {
            rate.take(leases.len() as u64, now_ms);
        }
        (leases, changes)
    }

    /// Acknowledges messages: they will not be delivered again. Tokens
    /// are answered as `TokenBatch` describes.
    pub fn ack(&mut self, tokens: &[String]) -> (Vec<TokenOutcome>, Vec<Change>) {
        let mut changes = Vec::new();
        let mut batch = TokenBatch::verify(tokens, &self.key);
        for (token_idx, token) in batch.tokens().to_vec().into_iter().enumerate() {
            if let TokenMatch::Current { .. } = self.match_token(&token) {
                let tracked = self.untrack(token.seq);
                self.counters.acked += 1;
                changes.push(Change::MessageRemoved {
                    seq: token.seq,
                    hash: tracked.hash,
                    previous: MessageStatus::Pending,
                });
                batch.settle(token_idx, TokenStatus::Acked);
            }
        }
        (batch.finish(|token| self.match_token(token)), changes)
    }

    /// Gives messages back: each is delivered again after `delay_ms` (or
    /// the backoff), or becomes a dead letter if it used its last attempt.
    pub fn nack(
        &mut self,
        tokens: &[String],
        delay_ms: Option<u64>,
        error: Option<&str>,
        now_ms: u64,
    ) -> (Vec<TokenOutcome>, Vec<Change>) {
        let mut changes = Vec::new();
        let error = error.map(truncate_error);
        let mut batch = TokenBatch::verify(tokens, &self.key);
        for (token_idx, token) in batch.tokens().to_vec().into_iter().enumerate() {
            let TokenMatch::Current { leased } = self.match_token(&token) else {
                continue;
            };
            let seq = token.seq;
            if leased {
                self.fail_attempt(seq, delay_ms, error.clone(), now_ms, &mut changes);
            } else {
                // Its lease already ran out and was counted as a failed
                // attempt; take the error and delay given.
                let delay_ms =
                    retry_delay_ms(&self.definition, &self.key, seq, token.lease_id, delay_ms);
                self.reschedule_waiting(seq, delay_ms, error.clone(), now_ms);
                changes.push(self.message_change(seq, Some(MessageStatus::Pending)));
            }
            batch.settle(token_idx, TokenStatus::Nacked);
        }
        (batch.finish(|token| self.match_token(token)), changes)
    }

    /// Renews current leases that have not ended by `now_ms`, for
    /// `lease_ms` (or the definition's lease) from now. Leases are not
    /// persisted, so there is nothing to write.
    pub fn extend(
        &mut self,
        tokens: &[String],
        lease_ms: Option<u64>,
        now_ms: u64,
    ) -> Vec<TokenOutcome> {
        let lease_ms = lease_ms.unwrap_or(self.definition.lease_ms);
        let mut batch = TokenBatch::verify(tokens, &self.key);
        for (token_idx, token) in batch.tokens().to_vec().into_iter().enumerate() {
            let running = match self.tracked.get(&token.seq).map(|tracked| tracked.slot) {
                Some(Slot::Leased { expires_at_ms }) => expires_at_ms > now_ms,
                _ => false,
            };
            if running && self.match_token(&token) == (TokenMatch::Current { leased: true }) {
                self.set_leased(token.seq, now_ms.saturating_add(lease_ms));
                batch.settle(token_idx, TokenStatus::Extended);
            }
        }
        batch.finish(|token| self.match_token(token))
    }
    /// Replaces the definition with `new`, which may differ only in how it
    /// delivers ([`DefinitionChange::Update`]; the caller checks), and
    /// counts a generation. Nothing tracked is lost: leases keep their
    /// deadlines, waiting messages their due times, and the attempts made
    /// so far stand. From now on pulls and extends without a lease of their
    /// own use the new `lease_ms`, failures the new `max_attempts` and
    /// backoff (a message whose attempts already reach a lowered
    /// `max_attempts` dies at its next failure), and the key window the new
    /// `max_in_flight_per_key`. The rate limit's bucket keeps what it held,
    /// refilled to `now_ms` at the old rate and capped at the new burst; a
    /// rate limit added now starts full.
    pub fn update_definition(&mut self, new: SubscriptionDefinition, now_ms: u64) -> Vec<Change> {
        assert_eq!(
            self.definition.change_to(&new),
            DefinitionChange::Update,
            "only delivery members of a definition change"
        );
        self.rate = match (self.rate.take(), new.rate_limit_per_s) {
            (Some(mut bucket), Some(rate)) => {
                bucket.available(now_ms);
                let (milli_tokens, refilled_at_ms) = bucket.parts();
                Some(TokenBucket::from_parts(rate, milli_tokens, refilled_at_ms))
            }
            (None, Some(rate)) => Some(TokenBucket::new(rate, now_ms)),
            (_, None) => None,
        };
        self.definition = new;
        self.generation += 1;
        // A wider key window lets blocked messages go now; a narrower one
        // holds back ready messages when a pull reaches them.
        let keys: Vec<Hash> = self.keys.keys().copied().collect();
        for key in keys {
            self.unblock_key(key);
        }
        vec![Change::Subscription(self.record())]
    }

    /// Pauses or resumes delivery.
    pub fn set_paused(&mut self, paused: bool) -> Vec<Change> {
        self.paused = paused;
        vec![Change::Subscription(self.record())]
    }

    /// Brings dead letters back with fresh attempts. `dead` are their
    /// records as read from the store; only those with status `Dead` are
    /// replayed, at most `admission_room()` of them. Returns the number
    /// replayed.
    pub fn replay(&mut self, dead: Vec<(u64, MessageRecord)>, now_ms: u64) -> (usize, Vec<Change>) {
        let mut changes = Vec::new();
        let room = self.admission_room();
        for (seq, record) in dead
            .into_iter()
            .filter(|(_, record)| record.status == MessageStatus::Dead)
            .take(room)
        {
            if self.tracked.contains_key(&seq) {
                continue;
            }
            // A new round: the attempts start again, and lease numbers
            // still grow, so tokens of the earlier round stay superseded.
            self.track(
                seq,
                Tracked {
                    hash: record.hash,
                    key: record.key,
                    round: record.round + 1,
                    attempts: 0,
                    available_at_ms: now_ms,
                    first_delivered_at_ms: None,
                    last_error: record.last_error,
                    slot: Slot::Waiting,
                },
            );
            self.schedule(seq, now_ms, now_ms);
            self.counters.dead = self.counters.dead.saturating_sub(1);
            changes.push(self.message_change(seq, Some(MessageStatus::Dead)));
        }
        (changes.len(), changes)
    }

    /// Discards one dead letter (its record is kept, marked discarded).
    pub fn discard(&mut self, seq: u64, mut record: MessageRecord) -> Vec<Change> {
        assert_eq!(
            record.status,
            MessageStatus::Dead,
            "only dead letters are discarded"
        );
        record.status = MessageStatus::Discarded;
        self.counters.dead = self.counters.dead.saturating_sub(1);
        self.counters.discarded += 1;
        vec![Change::Message {
            seq,
            record,
            previous: Some(MessageStatus::Dead),
        }]
    }

    /// Processes expired leases and due retries. Called by `pull`; a runtime
    /// also calls it at [`SubscriptionState::next_event_at_ms`].
    pub fn advance(&mut self, now_ms: u64) -> Vec<Change> {
        let mut changes = Vec::new();
        while let Some(&Reverse((expires_at_ms, seq, lease_id))) = self.leases.peek() {
            if expires_at_ms > now_ms {
                break;
            }
            self.leases.pop();
            let current = self.tracked.get(&seq).is_some_and(|tracked| {
                tracked.slot == Slot::Leased { expires_at_ms } && tracked.lease_id() == lease_id
            });
            if current {
                // The attempt failed when the lease ran out, however late
                // this runs: the backoff counts from then.
                let error = Some(LEASE_EXPIRED_ERROR.to_string());
                self.fail_attempt(seq, None, error, expires_at_ms, &mut changes);
            }
        }
        while let Some(&Reverse((available_at_ms, seq))) = self.waiting.peek() {
            if available_at_ms > now_ms {
                break;
            }
            self.waiting.pop();
            let due = self.tracked.get(&seq).is_some_and(|tracked| {
                tracked.slot == Slot::Waiting && tracked.available_at_ms == available_at_ms
            });
            if due {
                self.make_available(seq);
            }
        }
        changes
    }

    /// Whether a pull now would lease something (after `advance`).
    pub fn has_deliverable(&mut self, now_ms: u64) -> bool {
        let rate_allows = match &mut self.rate {
            Some(rate) => rate.available(now_ms) > 0,
            None => true,
        };
        !self.paused && rate_allows && !self.ready.is_empty()
    }

    /// The next time something changes without an outside event: a lease
    /// expires, a retry or delay falls due, or the rate limit refills.
    pub fn next_event_at_ms(&self) -> Option<u64> {
        let lease = self.leases.peek().map(|Reverse((at, _, _))| *at);
        let waiting = self.waiting.peek().map(|Reverse((at, _))| *at);
        // A refill matters only to ready messages that a pull could take.
        // While paused, the bucket keeps its last refill time, which lies in
        // the past: reporting it would wake a waiting pull at once, again and
        // again. Resuming is an outside event that wakes pulls itself.
        let rate = match &self.rate {
            Some(rate) if !self.paused && !self.ready.is_empty() => Some(rate.next_token_at_ms()),
            _ => None,
        };
        [lease, waiting, rate].into_iter().flatten().min()
    }

    /// Current counters.
    pub fn counters(&self, now_ms: u64) -> Counters {
        let mut counters = self.counters;
        counters.tracked_not_leased = self.tracked.len() as u64 - counters.in_flight;
        counters.oldest_unacked_age_ms = self
            .tracked
            .values()
            .filter_map(|tracked| tracked.first_delivered_at_ms)
            .min()
            .map_or(0, |first| now_ms.saturating_sub(first));
        counters
    }

    /// Where the tracked message at `seq` stands, read without changing
    /// anything (`None` if it is not tracked: not admitted yet, acked, dead
    /// or discarded). Call [`SubscriptionState::advance`] first for an
    /// answer that is exact at `now_ms`.
    pub fn tracked_detail(&self, seq: u64, now_ms: u64) -> Option<TrackedDetail> {
        self.tracked.get(&seq).map(|tracked| {
            let leased = matches!(tracked.slot, Slot::Leased { .. });
            TrackedDetail {
                attempts: tracked.attempts,
                leased,
                last_error: tracked.last_error.clone(),
                not_before_ms: (!leased && tracked.available_at_ms > now_ms)
                    .then_some(tracked.available_at_ms),
            }
        })
    }

    /// The tracked message at `seq`, for checks in tests and simulations:
    /// `(attempts, leased)`.
    pub fn tracked_message(&self, seq: u64) -> Option<(u32, bool)> {
        self.tracked.get(&seq).map(|tracked| {
            (
                tracked.attempts,
                matches!(tracked.slot, Slot::Leased { .. }),
            )
        })
    }

    // ----- internals

    fn slot_mut(&mut self, seq: u64) -> &mut Tracked {
        self.tracked
            .get_mut(&seq)
            .expect("a message in an index is tracked")
    }

    fn track(&mut self, seq: u64, tracked: Tracked) {
        if let Some(key) = tracked.key {
            self.keys.entry(key).or_default().seqs.insert(seq);
        }
        let previous = self.tracked.insert(seq, tracked);
        assert!(previous.is_none(), "message {seq} tracked twice");
    }

    /// Removes a message from every index and returns it.
    fn untrack(&mut self, seq: u64) -> Tracked {
        let tracked = self
            .tracked
            .remove(&seq)
            .expect("untracking a tracked message");
        match tracked.slot {
            Slot::Ready => {
                self.ready.remove(&seq);
            }
            Slot::Leased { .. } => self.counters.in_flight -= 1,
            Slot::Waiting | Slot::Blocked => {}
        }
        if let Some(key) = tracked.key {
            if let Some(queue) = self.keys.get_mut(&key) {
                queue.seqs.remove(&seq);
                if matches!(tracked.slot, Slot::Leased { .. }) {
                    queue.in_flight -= 1;
                }
            }
            self.unblock_key(key);
        }
        tracked
    }

    /// What a verified token refers to now (see `match_token`).
    fn match_token(&self, token: &LeaseToken) -> TokenMatch {
        let message = self.tracked.get(&token.seq).map(|tracked| MessageLease {
            lease_id: tracked.lease_id(),
            leased: matches!(tracked.slot, Slot::Leased { .. }),
        });
        match_token(token, message)
    }

    /// Leases a message (again, for an extend) until `expires_at_ms`.
    fn set_leased(&mut self, seq: u64, expires_at_ms: u64) {
        let tracked = self.slot_mut(seq);
        let was_leased = matches!(tracked.slot, Slot::Leased { .. });
        tracked.slot = Slot::Leased { expires_at_ms };
        let lease_id = tracked.lease_id();
        let key = tracked.key;
        self.leases.push(Reverse((expires_at_ms, seq, lease_id)));
        if !was_leased {
            self.counters.in_flight += 1;
            if let Some(key) = key {
                self.keys.entry(key).or_default().in_flight += 1;
            }
        }
    }

    /// A leased message's attempt failed (nack or expiry).
    fn fail_attempt(
        &mut self,
        seq: u64,
        delay_ms: Option<u64>,
        error: Option<String>,
        now_ms: u64,
        changes: &mut Vec<Change>,
    ) {
        let tracked = self.slot_mut(seq);
        debug_assert!(matches!(tracked.slot, Slot::Leased { .. }));
        tracked.slot = Slot::Waiting;
        let key = tracked.key;
        self.counters.in_flight -= 1;
        if let Some(key) = key {
            if let Some(queue) = self.keys.get_mut(&key) {
                queue.in_flight -= 1;
            }
        }
        let lease_id = self.slot_mut(seq).lease_id();
        let failed = FailedAttempt::decide(&self.definition, &self.key, seq, lease_id, delay_ms);
        let FailedAttempt::Retry { delay_ms } = failed else {
            let mut tracked = self.untrack(seq);
            if error.is_some() {
                tracked.last_error = error;
            }
            self.counters.dead += 1;
            changes.push(Change::Message {
                seq,
                record: MessageRecord {
                    hash: tracked.hash,
                    status: MessageStatus::Dead,
                    attempts: tracked.attempts,
                    available_at_ms: now_ms,
                    first_delivered_at_ms: tracked.first_delivered_at_ms,
                    last_error: tracked.last_error,
                    dead_at_ms: Some(now_ms),
                    key: tracked.key,
                    round: tracked.round,
                },
                previous: Some(MessageStatus::Pending),
            });
            return;
        };
        self.reschedule_waiting(seq, delay_ms, error, now_ms);
        changes.push(self.message_change(seq, Some(MessageStatus::Pending)));
        if let Some(key) = key {
            self.unblock_key(key);
        }
    }

    /// Sets a waiting message's next delivery time and error.
    fn reschedule_waiting(&mut self, seq: u64, delay_ms: u64, error: Option<String>, now_ms: u64) {
        if self.slot_mut(seq).slot == Slot::Ready {
            self.ready.remove(&seq);
        }
        let tracked = self.slot_mut(seq);
        if error.is_some() {
            tracked.last_error = error;
        }
        tracked.slot = Slot::Waiting;
        let available_at_ms = now_ms.saturating_add(delay_ms);
        self.schedule(seq, available_at_ms, now_ms);
    }

    /// Makes a message wait until `available_at_ms`, or available now.
    fn schedule(&mut self, seq: u64, available_at_ms: u64, now_ms: u64) {
        self.slot_mut(seq).available_at_ms = available_at_ms;
        if available_at_ms > now_ms {
            self.slot_mut(seq).slot = Slot::Waiting;
            self.waiting.push(Reverse((available_at_ms, seq)));
        } else {
            self.make_available(seq);
        }
    }

    /// A due message becomes ready, or blocked behind its key.
    fn make_available(&mut self, seq: u64) {
        if self.key_allows(seq) {
            self.slot_mut(seq).slot = Slot::Ready;
            self.ready.insert(seq);
        } else {
            self.slot_mut(seq).slot = Slot::Blocked;
        }
    }

    /// Whether the message's ordering key lets it be leased now: it is among
    /// the first `max_in_flight_per_key` of its key, and fewer than that are
    /// leased.
    fn key_allows(&self, seq: u64) -> bool {
        let Some(key) = self.tracked.get(&seq).and_then(|tracked| tracked.key) else {
            return true;
        };
        let Some(queue) = self.keys.get(&key) else {
            return true;
        };
        let max_in_flight = self.definition.max_in_flight_per_key.unwrap_or(1);
        queue.in_flight < max_in_flight
            && queue
                .seqs
                .iter()
                .take(max_in_flight as usize)
                .any(|&first| first == seq)
    }

    /// Re-examines the head of a key's queue after it changed.
    fn unblock_key(&mut self, key: Hash) {
        let max_in_flight = self.definition.max_in_flight_per_key.unwrap_or(1) as usize;
        let Some(queue) = self.keys.get(&key) else {
            return;
        };
        if queue.seqs.is_empty() {
            self.keys.remove(&key);
            return;
        }
        let head: Vec<u64> = queue.seqs.iter().take(max_in_flight).copied().collect();
        for seq in head {
            if self.tracked.get(&seq).map(|tracked| tracked.slot) == Some(Slot::Blocked) {
                self.make_available(seq);
            }
        }
    }

    fn message_change(&self, seq: u64, previous: Option<MessageStatus>) -> Change {
        let tracked = &self.tracked[&seq];
        Change::Message {
            seq,
            record: MessageRecord {
                hash: tracked.hash,
                status: MessageStatus::Pending,
                attempts: tracked.attempts,
                available_at_ms: tracked.available_at_ms,
                first_delivered_at_ms: tracked.first_delivered_at_ms,
                last_error: tracked.last_error.clone(),
                dead_at_ms: None,
                key: tracked.key,
                round: tracked.round,
            },
            previous,
        }
    }
}

/// Cuts an error text to the kept length, at a character boundary.
pub fn truncate_error(error: &str) -> String {
    let mut end = error.len().min(limits::LAST_ERROR_BYTES_MAX);
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    error[..end].to_string()
}
