//! One subscription of the in-memory engine: its state machine behind a lock, the
//! admission of new matching facts, long-polling pulls, and the durable
//! operations of the API.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_api::GenerationPrecondition;
use cairn_delivery::{
    fact_attributes, AdmittedMessage, Change, DefinitionChange, MessageRecord, MessageStatus,
    SubscriptionDefinition, SubscriptionState, TokenOutcome,
};
use cairn_fact::Hash;
use cairn_store::{DeliveryStore, MessageSelection, Store};
use tokio::sync::{watch, Mutex, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::delivery::{
    selection_of, Answer, Applied, DeadLetter, DeliveryError, MessageDelivery, PulledMessage,
    Subscription, SubscriptionView,
};

/// Matching facts admitted into a subscription's window per step.
const ADMISSION_BATCH_MAX: usize = 1_000;
/// Canonical bytes of admitted facts kept in memory for their first
/// delivery, so a pull need not read them from the store again.
const PREFETCHED_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Counts matching facts beyond the cursor incrementally, so viewing a
/// subscription with a large backlog does not rescan it every time.
#[derive(Debug, Default)]
struct BacklogCount {
    counted_through_seq: u64,
    n_untracked: u64,
}

struct Inner {
    state: SubscriptionState,
    backlog: BacklogCount,
    /// Canonical bytes of admitted, not yet delivered facts, by seq, within
    /// `PREFETCHED_BYTES_MAX`.
    prefetched: HashMap<u64, Vec<u8>>,
    prefetched_bytes: usize,
}

/// One subscription at run time; see the module documentation.
pub struct MemorySubscription<S> {
    store: Arc<S>,
    id: u64,
    name: String,
    /// The definition's `ordering_key` (it cannot change; the rest of the
    /// definition may, and is the state machine's).
    ordering_key: Option<String>,
    selection: MessageSelection,
    inner: Mutex<Inner>,
    /// Woken when messages may have become deliverable.
    changed: Notify,
    last_seq: watch::Receiver<u64>,
    closed: AtomicBool,
    clock: Clock,
}

impl<S: Store + DeliveryStore> MemorySubscription<S> {
    pub(super) fn new(
        store: Arc<S>,
        state: SubscriptionState,
        clock: Clock,
    ) -> MemorySubscription<S> {
        let selection = selection_of(state.definition());
        let ordering_key = state.definition().ordering_key.clone();
        MemorySubscription {
            last_seq: store.watch_last_seq(),
            store,
            id: state.id(),
            name: state.name().to_string(),
            ordering_key,
            selection,
            inner: Mutex::new(Inner {
                state,
                backlog: BacklogCount::default(),
                prefetched: HashMap::new(),
                prefetched_bytes: 0,
            }),
            changed: Notify::new(),
            closed: AtomicBool::new(false),
            clock,
        }
    }

    /// The internal id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Ends waiting pulls: the subscription was deleted.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    fn check_open(&self) -> Result<(), DeliveryError> {
        if self.closed.load(Ordering::Acquire) {
            Err(DeliveryError::UnknownSubscription(self.name.clone()))
        } else {
            Ok(())
        }
    }

    /// Queues changes in order (call with the lock held).
    async fn queue(&self, changes: Vec<Change>) -> Result<(), DeliveryError> {
        if !changes.is_empty() {
            self.store.write_delivery(self.id, changes, false).await?;
        }
        Ok(())
    }

    /// Waits until everything queued so far is durable (call without the lock).
    async fn barrier(&self) -> Result<(), DeliveryError> {
        self.store.write_delivery(self.id, Vec::new(), true).await?;
        Ok(())
    }

    /// Processes due events and admits new matching facts while there is
    /// room (call with the lock held).
    async fn catch_up(&self, inner: &mut Inner, now: u64) -> Result<(), DeliveryError> {
        let changes = inner.state.advance(now);
        self.queue(changes).await?;
        let durable_seq = *self.last_seq.borrow();
        while inner.state.cursor_seq() < durable_seq {
            let room = inner.state.admission_room().min(ADMISSION_BATCH_MAX);
            if room == 0 {
                break;
            }
            let cursor = inner.state.cursor_seq();
            let page = self.store.matching_facts(&self.selection, cursor, room)?;
            let ordering_key = self.ordering_key.as_deref();
            let messages = page
                .facts
                .iter()
                .map(|fact| {
                    // The store verified the bytes against their hash.
                    let attributes =
                        fact_attributes(ordering_key, &fact.canonical).map_err(|error| {
                            cairn_store::ReadError::corrupt(format!(
                                "fact with seq {}: {error}",
                                fact.seq
                            ))
                        })?;
                    Ok(AdmittedMessage {
                        seq: fact.seq,
                        hash: fact.hash,
                        attributes,
                    })
                })
                .collect::<Result<Vec<_>, DeliveryError>>()?;
            let n_admitted = messages.len() as u64;
            let changes = inner.state.admit(&messages, page.next_seq, now);
            self.queue(changes).await?;
            for fact in page.facts {
                if inner.prefetched_bytes + fact.canonical.len() > PREFETCHED_BYTES_MAX {
                    break;
                }
                inner.prefetched_bytes += fact.canonical.len();
                inner.prefetched.insert(fact.seq, fact.canonical);
            }
            let backlog = &mut inner.backlog;
            if page.next_seq <= backlog.counted_through_seq {
                backlog.n_untracked = backlog.n_untracked.saturating_sub(n_admitted);
            }
            if page.next_seq == cursor {
                break;
            }
        }
        Ok(())
    }

    /// Puts `definition` in force if `precondition` holds: nothing to do
    /// if it is the same, an update if only members that may change
    /// differ (see `SubscriptionState::update_definition`), a conflict
    /// otherwise. Durable before it returns.
    pub(super) async fn apply(
        &self,
        definition: SubscriptionDefinition,
        precondition: Option<GenerationPrecondition>,
    ) -> Result<Applied, DeliveryError> {
        self.check_open()?;
        {
            let mut inner = self.inner.lock().await;
            let generation = inner.state.generation();
            if precondition.is_some_and(|precondition| !precondition.holds(Some(generation))) {
                return Err(DeliveryError::GenerationMismatch {
                    name: self.name.clone(),
                    current_generation: Some(generation),
                });
            }
            match inner.state.definition().change_to(&definition) {
                DefinitionChange::Same => return Ok(Applied::Unchanged),
                DefinitionChange::Conflict {
                    fixed_members_changed,
                } => {
                    return Err(DeliveryError::Conflict {
                        name: self.name.clone(),
                        fixed_members_changed,
                    })
                }
                DefinitionChange::Update => {
                    let changes = inner
                        .state
                        .update_definition(definition, self.clock.now_ms());
                    self.queue(changes).await?;
                }
            }
        }
        self.barrier().await?;
        // A wider key window, a higher rate or a shorter lease may let a
        // waiting pull lease now, or sooner than it planned to look.
        self.changed.notify_waiters();
        tracing::info!(name = %self.name, "subscription definition updated");
        Ok(Applied::Updated)
    }

    /// Ends the leases that ran out (as the shared engine does before
    /// listing dead letters, so that both list the same ones).
    async fn expire_leases(&self) -> Result<(), DeliveryError> {
        let mut inner = self.inner.lock().await;
        let changes = inner.state.advance(self.clock.now_ms());
        self.queue(changes).await
    }

    /// The canonical bytes of a leased message, from the store.
    fn leased_fact(&self, seq: u64) -> Result<Vec<u8>, DeliveryError> {
        let fact = self.store.fact_at_seq(seq)?.ok_or_else(|| {
            cairn_store::ReadError::corrupt(format!("leased message {seq} is not in the store"))
        })?;
        Ok(fact.canonical)
    }

    fn with_fact(&self, seq: u64, record: MessageRecord) -> Result<DeadLetter, DeliveryError> {
        let fact = self.store.fact_at_seq(seq)?.ok_or_else(|| {
            cairn_store::ReadError::corrupt(format!("dead letter {seq} is not in the store"))
        })?;
        Ok(DeadLetter {
            seq,
            record,
            canonical: fact.canonical,
        })
    }
}

impl<S: Store + DeliveryStore> Subscription for MemorySubscription<S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn selection(&self) -> &MessageSelection {
        &self.selection
    }

    fn as_version(&self) -> Answer<'_, Option<u32>> {
        Box::pin(async move { Ok(self.inner.lock().await.state.definition().as_version) })
    }

    fn pull<'a>(
        &'a self,
        max: usize,
        wait_ms: u64,
        lease_ms: Option<u64>,
        shutdown: &'a CancellationToken,
    ) -> Answer<'a, Vec<PulledMessage>> {
        Box::pin(async move {
            let deadline = Instant::now() + Duration::from_millis(wait_ms);
            let mut last_seq = self.last_seq.clone();
            loop {
                self.check_open()?;
                let mut notified = pin!(self.changed.notified());
                notified.as_mut().enable();
                last_seq.borrow_and_update();
                let (leases, prefetched, next_event_at_ms) = {
                    let mut inner = self.inner.lock().await;
                    let now = self.clock.now_ms();
                    self.catch_up(&mut inner, now).await?;
                    let (leases, changes) = inner.state.pull(max, lease_ms, now);
                    self.queue(changes).await?;
                    let prefetched: Vec<Option<Vec<u8>>> = leases
                        .iter()
                        .map(|lease| inner.prefetched.remove(&lease.seq))
                        .collect();
                    let n_bytes: usize = prefetched.iter().flatten().map(Vec::len).sum();
                    inner.prefetched_bytes -= n_bytes;
                    (leases, prefetched, inner.state.next_event_at_ms())
                };
                if !leases.is_empty() {
                    let mut messages = Vec::with_capacity(leases.len());
                    for (lease, prefetched) in leases.into_iter().zip(prefetched) {
                        let canonical = match prefetched {
                            Some(canonical) => canonical,
                            None => self.leased_fact(lease.seq)?,
                        };
                        messages.push(PulledMessage {
                            token: lease.token.to_string(),
                            hash: lease.hash,
                            seq: lease.seq,
                            attempt: lease.attempt,
                            canonical,
                        });
                    }
                    return Ok(messages);
                }
                let now = Instant::now();
                if now >= deadline {
                    return Ok(Vec::new());
                }
                let wake_at = next_event_at_ms
                    .map(|at| now + Duration::from_millis(at.saturating_sub(self.clock.now_ms())))
                    .map_or(deadline, |at| at.min(deadline));
                tokio::select! {
                    () = notified => {}
                    _ = last_seq.changed() => {}
                    () = tokio::time::sleep_until(wake_at) => {}
                    () = shutdown.cancelled() => return Ok(Vec::new()),
                }
            }
        })
    }

    fn ack<'a>(&'a self, tokens: &'a [String]) -> Answer<'a, Vec<TokenOutcome>> {
        Box::pin(async move {
            self.check_open()?;
            let outcomes = {
                let mut inner = self.inner.lock().await;
                let (outcomes, changes) = inner.state.ack(tokens);
                self.queue(changes).await?;
                outcomes
            };
            self.barrier().await?;
            // An ack can let the next message of an ordering key go.
            self.changed.notify_waiters();
            Ok(outcomes)
        })
    }

    fn nack<'a>(
        &'a self,
        tokens: &'a [String],
        delay_ms: Option<u64>,
        error: Option<&'a str>,
    ) -> Answer<'a, Vec<TokenOutcome>> {
        Box::pin(async move {
            self.check_open()?;
            let outcomes = {
                let mut inner = self.inner.lock().await;
                let now = self.clock.now_ms();
                let (outcomes, changes) = inner.state.nack(tokens, delay_ms, error, now);
                self.queue(changes).await?;
                outcomes
            };
            self.barrier().await?;
            self.changed.notify_waiters();
            Ok(outcomes)
        })
    }

    fn extend<'a>(
        &'a self,
        tokens: &'a [String],
        lease_ms: Option<u64>,
    ) -> Answer<'a, Vec<TokenOutcome>> {
        Box::pin(async move {
            self.check_open()?;
            let outcomes = {
                let mut inner = self.inner.lock().await;
                inner.state.extend(tokens, lease_ms, self.clock.now_ms())
            };
            // A shortened lease ends sooner than a waiting pull planned to
            // wake for: let it plan again.
            self.changed.notify_waiters();
            Ok(outcomes)
        })
    }

    fn set_paused(&self, paused: bool) -> Answer<'_, SubscriptionView> {
        Box::pin(async move {
            self.check_open()?;
            {
                let mut inner = self.inner.lock().await;
                let changes = inner.state.set_paused(paused);
                self.queue(changes).await?;
            }
            self.barrier().await?;
            self.changed.notify_waiters();
            self.view().await
        })
    }

    fn view(&self) -> Answer<'_, SubscriptionView> {
        Box::pin(async move {
            let mut inner = self.inner.lock().await;
            let now = self.clock.now_ms();
            self.catch_up(&mut inner, now).await?;
            let durable_seq = *self.last_seq.borrow();
            let cursor = inner.state.cursor_seq();
            let backlog = &mut inner.backlog;
            if backlog.counted_through_seq < cursor {
                backlog.counted_through_seq = cursor;
                backlog.n_untracked = 0;
            }
            backlog.n_untracked += self.store.count_matching(
                &self.selection,
                backlog.counted_through_seq,
                durable_seq,
            )?;
            backlog.counted_through_seq = backlog.counted_through_seq.max(durable_seq);
            let n_untracked = backlog.n_untracked;
            let counters = inner.state.counters(now);
            Ok(SubscriptionView {
                name: self.name.clone(),
                definition: inner.state.definition().to_wire(),
                generation: inner.state.generation(),
                paused: inner.state.paused(),
                backlog: counters.tracked_not_leased + n_untracked,
                in_flight: counters.in_flight,
                delivered: counters.delivered,
                redelivered: counters.redelivered,
                acked: counters.acked,
                dead: counters.dead,
                discarded: counters.discarded,
                oldest_unacked_age_ms: counters.oldest_unacked_age_ms,
                consumer_lag: durable_seq.saturating_sub(inner.state.acked_floor_seq()),
            })
        })
    }

    fn dead_letters(
        &self,
        discarded: bool,
        after_seq: u64,
        limit: usize,
    ) -> Answer<'_, Vec<DeadLetter>> {
        Box::pin(async move {
            self.check_open()?;
            self.expire_leases().await?;
            // Dead-lettering by lease expiry is queued without waiting; make it
            // readable first.
            self.barrier().await?;
            let status = if discarded {
                MessageStatus::Discarded
            } else {
                MessageStatus::Dead
            };
            self.store
                .message_records(self.id, status, after_seq, limit)?
                .into_iter()
                .map(|(seq, record)| self.with_fact(seq, record))
                .collect()
        })
    }

    fn dead_letter<'a>(&'a self, hash: &'a Hash) -> Answer<'a, Option<DeadLetter>> {
        Box::pin(async move {
            self.check_open()?;
            self.expire_leases().await?;
            self.barrier().await?;
            self.store
                .dead_letter(self.id, hash)?
                .map(|(seq, record)| self.with_fact(seq, record))
                .transpose()
        })
    }

    fn replay<'a>(&'a self, hashes: Option<&'a [Hash]>) -> Answer<'a, usize> {
        Box::pin(async move {
            self.check_open()?;
            let n_replayed = {
                let mut inner = self.inner.lock().await;
                self.barrier().await?;
                let room = inner.state.admission_room();
                let records = match hashes {
                    Some(hashes) => {
                        let mut records = Vec::new();
                        for hash in hashes {
                            if let Some(found) = self.store.dead_letter(self.id, hash)? {
                                records.push(found);
                            }
                        }
                        records
                    }
                    None => self
                        .store
                        .message_records(self.id, MessageStatus::Dead, 0, room)?,
                };
                let (n_replayed, changes) = inner.state.replay(records, self.clock.now_ms());
                self.queue(changes).await?;
                n_replayed
            };
            self.barrier().await?;
            self.changed.notify_waiters();
            Ok(n_replayed)
        })
    }

    fn delivery_of(
        &self,
        seq: u64,
        fact_not_before_ms: Option<u64>,
    ) -> Answer<'_, MessageDelivery> {
        Box::pin(async move {
            self.check_open()?;
            let mut inner = self.inner.lock().await;
            let now = self.clock.now_ms();
            // Leases that ran out end now, as before every read; nothing
            // is admitted and nothing leased.
            let changes = inner.state.advance(now);
            self.queue(changes).await?;
            if let Some(detail) = inner.state.tracked_detail(seq, now) {
                return Ok(MessageDelivery::tracked(
                    detail.leased,
                    detail.attempts,
                    detail.last_error,
                    detail.not_before_ms,
                ));
            }
            let start_seq = inner.state.start_seq().unwrap_or(0);
            let cursor_seq = inner.state.cursor_seq();
            if seq <= start_seq || seq > cursor_seq {
                return Ok(MessageDelivery::unrecorded(
                    seq,
                    start_seq,
                    cursor_seq,
                    fact_not_before_ms,
                    now,
                ));
            }
            // Not tracked, within the cursor: dead, discarded, or acked
            // (acked messages have no record). The lock keeps the state
            // still while what was queued becomes readable.
            self.barrier().await?;
            for status in [MessageStatus::Dead, MessageStatus::Discarded] {
                let found = self.store.message_records(self.id, status, seq - 1, 1)?;
                if let Some((_, record)) = found.into_iter().find(|(found, _)| *found == seq) {
                    return Ok(MessageDelivery::settled(&record));
                }
            }
            Ok(MessageDelivery::unrecorded(
                seq,
                start_seq,
                cursor_seq,
                fact_not_before_ms,
                now,
            ))
        })
    }

    fn discard<'a>(&'a self, hash: &'a Hash) -> Answer<'a, bool> {
        Box::pin(async move {
            self.check_open()?;
            {
                let mut inner = self.inner.lock().await;
                self.barrier().await?;
                let Some((seq, record)) = self.store.dead_letter(self.id, hash)? else {
                    return Ok(false);
                };
                let changes = inner.state.discard(seq, record);
                self.queue(changes).await?;
            }
            self.barrier().await?;
            Ok(true)
        })
    }
}
