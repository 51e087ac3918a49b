//! The shared delivery engine, for the PostgreSQL store: every
//! subscription's state is rows in the database (see
//! `cairn_store::postgres::delivery`), read and locked by whichever server
//! a consumer talks to. Servers never talk to each other: a lease is a row
//! lock taken with `SKIP LOCKED`, an ack deletes the row whose lease id the
//! token names, admission of new facts takes the subscription row's lock.
//!
//! Every operation is one statement (or one short transaction) and is
//! durable when it returns (PostgreSQL commits it). A waiting pull wakes on
//! new facts (the store follows the log's head through LISTEN/NOTIFY), on
//! acks, nacks, extends, pauses and replays through this server, and
//! otherwise polls every [`POLL_INTERVAL`] for retries falling due, leases
//! running out and acks through other servers.
//!
//! The decisions are `cairn-delivery`'s, as in the in-memory engine: which
//! lease a token names and what each token is told ([`TokenBatch`]), the
//! backoff and dead letters, the attributes of admitted facts. The time is
//! the database's clock in production (so servers with skewed clocks
//! agree), or the [`Clock`] the engine is given ([`SharedOptions`]).

use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_api::GenerationPrecondition;
use cairn_delivery::limits::TRACKED_MESSAGES_MAX;
use cairn_delivery::{
    match_token, validate_subscription_name, LeaseToken, MessageStatus, Start,
    SubscriptionDefinition, TokenBatch, TokenKey, TokenOutcome, TokenStatus,
};
use cairn_fact::Hash;
use cairn_store::postgres::delivery::{
    Admission, CreateOutcome, DeliveryRules, LeaseRequest, LeasedMessage, MessageState,
    SubscriptionRow, UpdateOutcome,
};
use cairn_store::{MessageSelection, PostgresStore, Store};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    selection_of, Answer, Applied, DeadLetter, Deliveries, DeliveryError, MessageDelivery,
    PulledMessage, Subscription, SubscriptionView, TokenSecrets, SUBSCRIPTIONS_MAX,
};
use crate::clock::Clock;

/// How often a waiting pull looks again without a wake-up.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How soon a pull looks again while another pull is admitting new facts.
const ADMISSION_RETRY: Duration = Duration::from_millis(2);
/// Rounds of create-then-update one `PUT` makes at most while other
/// servers delete and create the subscription under it.
const APPLY_ROUNDS_MAX: usize = 3;
/// How often one server ends expired leases of one subscription at most,
/// by default.
pub const EXPIRY_INTERVAL: Duration = Duration::from_millis(50);

/// How the shared engine is built.
#[derive(Clone, Debug)]
pub struct SharedOptions {
    /// The delivery clock; `None` is the database's clock (production:
    /// every server reads the same clock, so skewed server clocks agree).
    pub clock: Option<Clock>,
    /// Where new subscriptions' token secrets come from (kept in their
    /// rows, so every server signs and checks tokens alike).
    pub secrets: TokenSecrets,
    /// How often one server ends expired leases of one subscription at
    /// most (zero: on every operation that looks for them, which makes a
    /// run on a simulated clock independent of the wall clock).
    pub expiry_interval: Duration,
}

impl Default for SharedOptions {
    fn default() -> SharedOptions {
        SharedOptions {
            clock: None,
            secrets: TokenSecrets::Random,
            expiry_interval: EXPIRY_INTERVAL,
        }
    }
}

/// What an admission attempt found.
enum Admitted {
    /// New messages are in; those leased in the same transaction.
    Some(Vec<LeasedMessage>),
    /// Nothing new to admit (or no room).
    Nothing,
    /// Another pull (on this or another server) holds the admission lock.
    Elsewhere,
}

/// The registry: subscriptions are looked up in the database on every
/// request (another server may have created, changed or deleted them); the
/// handles, which carry this server's counters, are kept by id.
pub struct SharedDeliveries {
    store: Arc<PostgresStore>,
    handles: Mutex<HashMap<u64, Arc<SharedSubscription>>>,
    options: SharedOptions,
}

impl SharedDeliveries {
    /// The registry over `store`.
    pub fn new(store: Arc<PostgresStore>, options: SharedOptions) -> SharedDeliveries {
        SharedDeliveries {
            store,
            handles: Mutex::new(HashMap::new()),
            options,
        }
    }

    /// This server's handle of the subscription in `row`, brought up to
    /// the row's generation: every request reads the row first, so a
    /// definition changed through another server is in force here from
    /// the next request on.
    fn handle(&self, row: SubscriptionRow) -> Result<Arc<SharedSubscription>, DeliveryError> {
        let existing = self
            .handles
            .lock()
            .expect("lock poisoned")
            .get(&row.id)
            .cloned();
        if let Some(handle) = existing {
            handle.refresh(&row)?;
            return Ok(handle);
        }
        let definition = parse_definition(&row)?;
        let mut handles = self.handles.lock().expect("lock poisoned");
        if let Some(handle) = handles.get(&row.id) {
            return Ok(Arc::clone(handle));
        }
        let handle = Arc::new(SharedSubscription {
            store: Arc::clone(&self.store),
            id: row.id,
            selection: selection_of(&definition),
            name: row.name,
            ordering_key: definition.ordering_key.clone(),
            in_force: Mutex::new(InForce {
                generation: row.generation,
                definition: Arc::new(definition),
            }),
            key: TokenKey::new(row.token_secret),
            clock: self.options.clock.clone(),
            expiry_interval: self.options.expiry_interval,
            delivered: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            changed: Notify::new(),
            last_seq: self.store.watch_last_seq(),
            cursor_seq: AtomicU64::new(row.cursor_seq),
            expired_at: Mutex::new(None),
            closed: AtomicBool::new(false),
        });
        handles.insert(row.id, Arc::clone(&handle));
        Ok(handle)
    }
}

fn parse_definition(row: &SubscriptionRow) -> Result<SubscriptionDefinition, DeliveryError> {
    SubscriptionDefinition::from_json(row.definition.as_bytes()).map_err(|error| {
        DeliveryError::Read(cairn_store::ReadError::corrupt(format!(
            "subscription {:?} has an unreadable definition: {error}",
            row.name
        )))
    })
}

impl Deliveries for SharedDeliveries {
    fn apply<'a>(
        &'a self,
        name: &'a str,
        definition: SubscriptionDefinition,
        precondition: Option<GenerationPrecondition>,
    ) -> Answer<'a, (Arc<dyn Subscription>, Applied)> {
        Box::pin(async move {
            validate_subscription_name(name).map_err(DeliveryError::InvalidDefinition)?;
            let json = serde_json::to_string(&definition)
                .map_err(|error| DeliveryError::InvalidDefinition(error.to_string()))?;
            let now_ms = self.options.clock.as_ref().map(Clock::now_ms);
            let expected_generation = match precondition {
                Some(GenerationPrecondition::Generation(generation)) => Some(generation),
                Some(GenerationPrecondition::Exists) | None => None,
            };
            // Without a precondition, create first; an existing row is then
            // updated. A delete through another server between the two
            // makes the update find nothing, and the creation is tried again.
            for _ in 0..APPLY_ROUNDS_MAX {
                if precondition.is_none() {
                    let start_now = definition.start == Start::Now;
                    let secret = self.options.secrets.next_secret();
                    let created = self
                        .store
                        .create_subscription(
                            name,
                            &json,
                            start_now,
                            SUBSCRIPTIONS_MAX,
                            &secret,
                            now_ms,
                        )
                        .await?;
                    match created {
                        CreateOutcome::Created(row) => {
                            tracing::info!(name, id = row.id, "subscription created");
                            let handle = self.handle(row)? as Arc<dyn Subscription>;
                            return Ok((handle, Applied::Created));
                        }
                        CreateOutcome::Existing(_) => {}
                        CreateOutcome::TooMany => return Err(DeliveryError::TooManySubscriptions),
                    }
                }
                let outcome = self
                    .store
                    .update_subscription(name, &json, expected_generation, now_ms)
                    .await?;
                let (row, applied) = match outcome {
                    UpdateOutcome::Missing if precondition.is_none() => continue,
                    UpdateOutcome::Missing => {
                        return Err(DeliveryError::GenerationMismatch {
                            name: name.to_string(),
                            current_generation: None,
                        })
                    }
                    UpdateOutcome::GenerationMismatch { current_generation } => {
                        return Err(DeliveryError::GenerationMismatch {
                            name: name.to_string(),
                            current_generation: Some(current_generation),
                        })
                    }
                    UpdateOutcome::Conflict {
                        fixed_members_changed,
                    } => {
                        return Err(DeliveryError::Conflict {
                            name: name.to_string(),
                            fixed_members_changed,
                        })
                    }
                    UpdateOutcome::Unchanged(row) => (row, Applied::Unchanged),
                    UpdateOutcome::Updated(row) => (row, Applied::Updated),
                };
                let handle = self.handle(row)?;
                if applied == Applied::Updated {
                    tracing::info!(name, "subscription definition updated");
                    handle.changed.notify_waiters();
                }
                return Ok((handle as Arc<dyn Subscription>, applied));
            }
            Err(DeliveryError::Write(cairn_store::WriteError::Unavailable {
                message: format!(
                    "subscription {name:?} was deleted and created again through other \
                     servers {APPLY_ROUNDS_MAX} times while this PUT ran; retrying is safe"
                ),
                source: None,
            }))
        })
    }

    fn get<'a>(&'a self, name: &'a str) -> Answer<'a, Arc<dyn Subscription>> {
        Box::pin(async move {
            match self.store.subscription(name).await? {
                Some(row) => Ok(self.handle(row)? as Arc<dyn Subscription>),
                None => Err(DeliveryError::UnknownSubscription(name.to_string())),
            }
        })
    }

    fn list(&self) -> Answer<'_, Vec<Arc<dyn Subscription>>> {
        Box::pin(async move {
            let rows = self.store.subscriptions().await?;
            // Forget handles of subscriptions deleted through other servers.
            self.handles
                .lock()
                .expect("lock poisoned")
                .retain(|id, _| rows.iter().any(|row| row.id == *id));
            rows.into_iter()
                .map(|row| Ok(self.handle(row)? as Arc<dyn Subscription>))
                .collect()
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> Answer<'a, ()> {
        Box::pin(async move {
            if !self.store.delete_subscription(name).await? {
                return Err(DeliveryError::UnknownSubscription(name.to_string()));
            }
            let mut handles = self.handles.lock().expect("lock poisoned");
            handles.retain(|_, handle| {
                let deleted = handle.name == name;
                if deleted {
                    handle.close();
                }
                !deleted
            });
            tracing::info!(name, "subscription deleted");
            Ok(())
        })
    }
}

/// One subscription as this server sees it; see the module documentation.
pub struct SharedSubscription {
    store: Arc<PostgresStore>,
    id: u64,
    name: String,
    /// The definition's `ordering_key` (it cannot change).
    ordering_key: Option<String>,
    /// The definition in force here and its generation.
    in_force: Mutex<InForce>,
    selection: MessageSelection,
    /// Signs and checks tokens, jitters backoff (from the row's secret).
    key: TokenKey,
    /// `None`: the database's clock.
    clock: Option<Clock>,
    expiry_interval: Duration,
    /// Deliveries, redeliveries and acks through this server since it started.
    delivered: AtomicU64,
    redelivered: AtomicU64,
    acked: AtomicU64,
    /// Woken when an ack, nack, resume or replay through this server may
    /// have made messages deliverable.
    changed: Notify,
    last_seq: watch::Receiver<u64>,
    /// The admission cursor as last seen: admission is tried while the log
    /// is ahead of it.
    cursor_seq: AtomicU64,
    /// When this server last ended expired leases of this subscription.
    expired_at: Mutex<Option<Instant>>,
    closed: AtomicBool,
}

/// A definition and its generation, as this server last read them.
#[derive(Clone, Debug)]
struct InForce {
    generation: u64,
    definition: Arc<SubscriptionDefinition>,
}

impl SharedSubscription {
    /// The definition in force here.
    fn definition(&self) -> Arc<SubscriptionDefinition> {
        Arc::clone(&self.in_force.lock().expect("lock poisoned").definition)
    }

    /// Takes the definition of `row` if it is of a later generation.
    fn refresh(&self, row: &SubscriptionRow) -> Result<(), DeliveryError> {
        if self.in_force.lock().expect("lock poisoned").generation >= row.generation {
            return Ok(());
        }
        let definition = Arc::new(parse_definition(row)?);
        let mut in_force = self.in_force.lock().expect("lock poisoned");
        if in_force.generation < row.generation {
            *in_force = InForce {
                generation: row.generation,
                definition,
            };
        }
        Ok(())
    }

    /// The time for a statement: `None` lets the database read its clock.
    fn now_ms(&self) -> Option<u64> {
        self.clock.as_ref().map(Clock::now_ms)
    }

    fn rules<'a>(&'a self, definition: &'a SubscriptionDefinition) -> DeliveryRules<'a> {
        DeliveryRules {
            definition,
            key: &self.key,
        }
    }

    fn close(&self) {
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

    /// Ends expired leases, at most every `expiry_interval` per server.
    async fn expire_leases(&self) -> Result<(), DeliveryError> {
        {
            let mut expired_at = self.expired_at.lock().expect("lock poisoned");
            let now = Instant::now();
            if expired_at.is_some_and(|at| now.duration_since(at) < self.expiry_interval) {
                return Ok(());
            }
            *expired_at = Some(now);
        }
        let definition = self.definition();
        self.store
            .expire_leases(self.id, self.rules(&definition), self.now_ms())
            .await?;
        Ok(())
    }

    /// Admits new matching facts if the log is ahead of the cursor, and
    /// leases per `then_lease` in the same transaction (one commit).
    async fn admit(&self, then_lease: Option<LeaseRequest>) -> Result<Admitted, DeliveryError> {
        if *self.last_seq.borrow() <= self.cursor_seq.load(Ordering::Acquire) {
            return Ok(Admitted::Nothing);
        }
        let admission = self
            .store
            .admit(
                self.id,
                &self.selection,
                TRACKED_MESSAGES_MAX,
                self.ordering_key.as_deref(),
                then_lease,
                self.now_ms(),
            )
            .await?;
        Ok(match admission {
            Admission::Busy => Admitted::Elsewhere,
            Admission::Admitted {
                n_admitted,
                cursor_seq,
                window_full,
                leased,
            } => {
                if !window_full {
                    self.cursor_seq.fetch_max(cursor_seq, Ordering::AcqRel);
                }
                if n_admitted == 0 {
                    Admitted::Nothing
                } else {
                    // Other pulls waiting on this server can lease them.
                    self.changed.notify_waiters();
                    Admitted::Some(leased)
                }
            }
        })
    }

    /// One attempt to lease up to `max` messages, admitting new facts if
    /// too few are ready. Also says whether another pull was admitting.
    async fn lease_now(
        &self,
        max: usize,
        lease_ms: Option<u64>,
    ) -> Result<(Vec<PulledMessage>, bool), DeliveryError> {
        self.expire_leases().await?;
        let definition = self.definition();
        let request = |max: usize| LeaseRequest {
            max,
            lease_ms: lease_ms.unwrap_or(definition.lease_ms),
            max_in_flight_per_key: definition.max_in_flight_per_key.unwrap_or(1),
            rate_limit_per_s: definition.rate_limit_per_s,
        };
        let mut leased = self
            .store
            .lease(self.id, request(max), self.now_ms())
            .await?;
        let mut admitting_elsewhere = false;
        if leased.len() < max {
            // A rate limit takes its bucket in a transaction of its own.
            let rate_limited = definition.rate_limit_per_s.is_some();
            let then_lease = (!rate_limited).then(|| request(max - leased.len()));
            match self.admit(then_lease).await? {
                Admitted::Some(more) if !more.is_empty() => leased.extend(more),
                Admitted::Some(_) => {
                    let more = self
                        .store
                        .lease(self.id, request(max - leased.len()), self.now_ms())
                        .await?;
                    leased.extend(more);
                }
                Admitted::Elsewhere => admitting_elsewhere = true,
                Admitted::Nothing => {}
            }
        }
        let n_redelivered = leased.iter().filter(|message| message.attempt > 1).count();
        self.delivered
            .fetch_add(leased.len() as u64, Ordering::Relaxed);
        self.redelivered
            .fetch_add(n_redelivered as u64, Ordering::Relaxed);
        let messages = leased
            .into_iter()
            .map(|message| PulledMessage {
                token: self.key.issue(message.seq, message.lease_id()).to_string(),
                hash: message.hash,
                seq: message.seq,
                attempt: message.attempt,
                canonical: message.canonical,
            })
            .collect();
        Ok((messages, admitting_elsewhere))
    }

    /// Answers every token of `batch`: the ones that did not act are
    /// judged against their messages' state after the request.
    async fn finish(&self, batch: TokenBatch<'_>) -> Result<Vec<TokenOutcome>, DeliveryError> {
        let unsettled: Vec<u64> = batch.unsettled().iter().map(|token| token.seq).collect();
        let leases: HashMap<u64, _> = if unsettled.is_empty() {
            HashMap::new()
        } else {
            self.store
                .pending_leases(self.id, &unsettled)
                .await?
                .into_iter()
                .collect()
        };
        Ok(batch.finish(|token| match_token(token, leases.get(&token.seq).copied())))
    }

    /// Settles the tokens of `batch` a statement acted on.
    fn settle(batch: &mut TokenBatch<'_>, acted: &[LeaseToken], status: TokenStatus) {
        for token in acted {
            batch.settle_token(token, status);
        }
    }
}

impl Subscription for SharedSubscription {
    fn name(&self) -> &str {
        &self.name
    }

    fn selection(&self) -> &MessageSelection {
        &self.selection
    }

    fn as_version(&self) -> Answer<'_, Option<u32>> {
        Box::pin(async move { Ok(self.definition().as_version) })
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
                let (messages, admitting_elsewhere) = self.lease_now(max, lease_ms).await?;
                if !messages.is_empty() {
                    return Ok(messages);
                }
                let now = Instant::now();
                if now >= deadline {
                    return Ok(Vec::new());
                }
                let poll = if admitting_elsewhere {
                    ADMISSION_RETRY
                } else {
                    POLL_INTERVAL
                };
                tokio::select! {
                    () = notified => {}
                    _ = last_seq.changed() => {}
                    () = tokio::time::sleep_until((now + poll).min(deadline)) => {}
                    () = shutdown.cancelled() => return Ok(Vec::new()),
                }
            }
        })
    }

    fn ack<'a>(&'a self, tokens: &'a [String]) -> Answer<'a, Vec<TokenOutcome>> {
        Box::pin(async move {
            self.check_open()?;
            let mut batch = TokenBatch::verify(tokens, &self.key);
            let acked = self.store.ack_leases(self.id, batch.tokens()).await?;
            self.acked.fetch_add(acked.len() as u64, Ordering::Relaxed);
            Self::settle(&mut batch, &acked, TokenStatus::Acked);
            // An ack can let the next message of an ordering key go.
            self.changed.notify_waiters();
            self.finish(batch).await
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
            let mut batch = TokenBatch::verify(tokens, &self.key);
            let error = error.map(cairn_delivery::truncate_error);
            let definition = self.definition();
            let nacked = self
                .store
                .nack_leases(
                    self.id,
                    batch.tokens(),
                    delay_ms,
                    error.as_deref(),
                    self.rules(&definition),
                    self.now_ms(),
                )
                .await?;
            Self::settle(&mut batch, &nacked, TokenStatus::Nacked);
            self.changed.notify_waiters();
            self.finish(batch).await
        })
    }

    fn extend<'a>(
        &'a self,
        tokens: &'a [String],
        lease_ms: Option<u64>,
    ) -> Answer<'a, Vec<TokenOutcome>> {
        Box::pin(async move {
            self.check_open()?;
            let mut batch = TokenBatch::verify(tokens, &self.key);
            let lease_ms = lease_ms.unwrap_or(self.definition().lease_ms);
            let extended = self
                .store
                .extend_leases(self.id, batch.tokens(), lease_ms, self.now_ms())
                .await?;
            Self::settle(&mut batch, &extended, TokenStatus::Extended);
            // A shortened lease ends sooner than a waiting pull's next poll
            // on this server may come: let it look again.
            self.changed.notify_waiters();
            self.finish(batch).await
        })
    }

    fn set_paused(&self, paused: bool) -> Answer<'_, SubscriptionView> {
        Box::pin(async move {
            self.check_open()?;
            if !self.store.set_subscription_paused(self.id, paused).await? {
                return Err(DeliveryError::UnknownSubscription(self.name.clone()));
            }
            self.changed.notify_waiters();
            self.view().await
        })
    }

    fn view(&self) -> Answer<'_, SubscriptionView> {
        Box::pin(async move {
            self.check_open()?;
            // As the in-memory engine does before counting.
            self.expire_leases().await?;
            let counts = self
                .store
                .delivery_counts(self.id, &self.selection, self.now_ms())
                .await?
                .ok_or_else(|| DeliveryError::UnknownSubscription(self.name.clone()))?;
            let durable_seq = (*self.last_seq.borrow()).max(counts.cursor_seq);
            // Everything before the first message neither acked nor dead,
            // tracked or not yet admitted, is settled (as the in-memory
            // engine counts, which admits before it counts).
            let acked_floor = [counts.lowest_pending_seq, counts.first_untracked_seq]
                .into_iter()
                .flatten()
                .min()
                .map_or(durable_seq, |seq| seq - 1);
            let in_force = self.in_force.lock().expect("lock poisoned").clone();
            Ok(SubscriptionView {
                name: self.name.clone(),
                definition: in_force.definition.to_wire(),
                generation: in_force.generation,
                paused: counts.paused,
                backlog: counts.pending - counts.in_flight + counts.untracked,
                in_flight: counts.in_flight,
                delivered: self.delivered.load(Ordering::Relaxed),
                redelivered: self.redelivered.load(Ordering::Relaxed),
                acked: self.acked.load(Ordering::Relaxed),
                dead: counts.dead,
                discarded: counts.discarded,
                oldest_unacked_age_ms: counts
                    .oldest_first_delivered_at_ms
                    .map_or(0, |first| counts.now_ms.saturating_sub(first)),
                consumer_lag: durable_seq.saturating_sub(acked_floor),
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
            let status = if discarded {
                MessageStatus::Discarded
            } else {
                MessageStatus::Dead
            };
            self.expire_leases().await?;
            Ok(self
                .store
                .message_rows(self.id, status, after_seq, limit)
                .await?
                .into_iter()
                .map(|(seq, record, canonical)| DeadLetter {
                    seq,
                    record,
                    canonical,
                })
                .collect())
        })
    }

    fn dead_letter<'a>(&'a self, hash: &'a Hash) -> Answer<'a, Option<DeadLetter>> {
        Box::pin(async move {
            self.check_open()?;
            self.expire_leases().await?;
            Ok(self
                .store
                .dead_message(self.id, hash)
                .await?
                .map(|(seq, record, canonical)| DeadLetter {
                    seq,
                    record,
                    canonical,
                }))
        })
    }

    fn replay<'a>(&'a self, hashes: Option<&'a [Hash]>) -> Answer<'a, usize> {
        Box::pin(async move {
            self.check_open()?;
            let n_replayed = self
                .store
                .replay_dead(self.id, hashes, TRACKED_MESSAGES_MAX, self.now_ms())
                .await?;
            self.changed.notify_waiters();
            Ok(n_replayed as usize)
        })
    }

    fn delivery_of(
        &self,
        seq: u64,
        fact_not_before_ms: Option<u64>,
    ) -> Answer<'_, MessageDelivery> {
        Box::pin(async move {
            self.check_open()?;
            let definition = self.definition();
            // Leases that ran out end first (as before every read; one
            // statement ends at most a batch of them, so this goes on while
            // this message's lease is one that ran out). Nothing is
            // admitted, nothing leased.
            let mut rounds_left = TRACKED_MESSAGES_MAX / 1_000 + 2;
            let state = loop {
                self.store
                    .expire_leases(self.id, self.rules(&definition), self.now_ms())
                    .await?;
                let state: MessageState = self
                    .store
                    .message_state(self.id, seq, self.now_ms())
                    .await?
                    .ok_or_else(|| DeliveryError::UnknownSubscription(self.name.clone()))?;
                let lease_ran_out = state.message.as_ref().is_some_and(|message| {
                    message.status == MessageStatus::Pending
                        && message
                            .leased_until_ms
                            .is_some_and(|until| until <= state.now_ms)
                });
                rounds_left -= 1;
                if !lease_ran_out || rounds_left == 0 {
                    break state;
                }
            };
            let start_seq = state.start_seq.unwrap_or(0);
            Ok(match state.message {
                None => MessageDelivery::unrecorded(
                    seq,
                    start_seq,
                    state.cursor_seq,
                    fact_not_before_ms,
                    state.now_ms,
                ),
                Some(message) if message.status == MessageStatus::Pending => {
                    let leased = message
                        .leased_until_ms
                        .is_some_and(|until| until > state.now_ms);
                    let not_before_ms =
                        (message.available_at_ms > state.now_ms).then_some(message.available_at_ms);
                    MessageDelivery::tracked(
                        leased,
                        message.attempts,
                        message.last_error,
                        not_before_ms,
                    )
                }
                Some(message) => MessageDelivery {
                    state: if message.status == MessageStatus::Discarded {
                        cairn_api::DeliveryState::Discarded
                    } else {
                        cairn_api::DeliveryState::Dead
                    },
                    attempts: message.attempts,
                    last_error: message.last_error,
                    dead_at_ms: message.dead_at_ms,
                    not_before_ms: None,
                },
            })
        })
    }

    fn discard<'a>(&'a self, hash: &'a Hash) -> Answer<'a, bool> {
        Box::pin(async move {
            self.check_open()?;
            Ok(self.store.discard_dead(self.id, hash).await?)
        })
    }
}
