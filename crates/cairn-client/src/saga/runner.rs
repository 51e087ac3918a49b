//! [`SagaRunner`]: runs saga instances as subscribers. For each registered
//! definition it subscribes to the instances started under it, to the
//! operators' requests about them and to their attempts' deadlines (four
//! subscriptions, filtered by the definition's hash, so a runner only
//! ever sees the versions it has); each delivered fact drives its
//! instance: read the journal, decide ([`SagaJournal::next`]), carry out,
//! write the transition, read again, until the saga ends or waits for an
//! operator.
//!
//! Delivery is at least once and the runner may die anywhere; nothing is
//! decided from memory. The message that started a drive stays leased (and
//! renewed) until the drive ends, so after a crash it is delivered again
//! and the next runner goes on from the journal: an attempt on the chain
//! without an outcome is run again with the same idempotency key, one past
//! its deadline is timed out. Within one runner, drives of one instance
//! are serialized; between runners, the chain rule of the journal makes
//! every runner follow the first-stored transition.
//!
//! A step's timeout is a durable timer: before storing an attempt with a
//! deadline, the runner sets a one-shot timer at it whose fact is a
//! `Saga.StepDeadline` ([`deadline_timer_name`]). The runner running the
//! attempt times it out itself at the deadline; if that runner is gone
//! (killed, partitioned, its delivery still leased), the server writes the
//! deadline's fact anyway and it wakes another runner, which stores
//! `step_timed_out` and goes on. Timers are deleted once their attempt has
//! an outcome (best effort: a timer left behind by a crash fires once,
//! changes nothing, and is deleted by the runner it wakes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_fact::Hash;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::error::{ClientError, Result as ClientResult};
use crate::limits;
use crate::saga::definition::{SagaDefinition, StepContext, StepFunction};
use crate::saga::error::SagaError;
use crate::saga::facts::{deadline_timer_name, AbortRequestedFact, RetryRequestedFact};
use crate::saga::facts::{DefinitionFact, StartedFact, StepDeadlineFact, TransitionKind};
use crate::saga::journal::{Decision, SagaJournal};
use crate::saga::sagas::unix_time_ms;
use crate::subscriber::{Delivery, HandlerError, Subscriber};
use crate::typed::{to_canonical_fact, Typed, TypedFact};
use crate::wire::{
    BackoffDefinition, PredecessorSelector, SubscriptionDefinition, TimerDefinition,
};

/// A point between two moves of a runner, handed to the hook of
/// [`SagaRunner::on_boundary`] (for tests that crash a runner at each
/// point in turn, and for tracing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SagaBoundary {
    /// The saga.
    pub saga: Hash,
    /// The saga's name.
    pub saga_name: String,
    /// Where the runner is.
    pub point: BoundaryPoint,
}

/// Where a runner is between two moves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoundaryPoint {
    /// A transition was stored (and nothing was done after it yet).
    Written {
        /// Its kind.
        kind: TransitionKind,
        /// The step's name, for step and compensation kinds.
        step: Option<String>,
    },
    /// An action or compensation returned (or timed out), and its outcome
    /// is not stored yet: its effect may be applied downstream without the
    /// journal knowing.
    Returned {
        /// The step's name.
        step: String,
        /// Whether it was the compensation.
        compensation: bool,
    },
}

impl SagaBoundary {
    /// The point as one word: `written:<kind>[:<step>]` or
    /// `returned:action:<step>` / `returned:compensation:<step>`.
    pub fn label(&self) -> String {
        match &self.point {
            BoundaryPoint::Written {
                kind,
                step: Some(step),
            } => format!("written:{}:{step}", kind.as_str()),
            BoundaryPoint::Written { kind, step: None } => format!("written:{}", kind.as_str()),
            BoundaryPoint::Returned {
                step,
                compensation: false,
            } => format!("returned:action:{step}"),
            BoundaryPoint::Returned {
                step,
                compensation: true,
            } => format!("returned:compensation:{step}"),
        }
    }
}

/// The hook called at each boundary.
type BoundaryHook = Arc<dyn Fn(&SagaBoundary) + Send + Sync>;

/// Settings of a [`SagaRunner`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SagaRunnerOptions {
    /// Instances driven at once at most, per subscription.
    pub concurrency: usize,
    /// Lease of a delivered fact (renewed while its drive runs): how soon
    /// another runner takes over an instance whose runner died.
    pub lease_ms: u64,
}

impl Default for SagaRunnerOptions {
    fn default() -> Self {
        SagaRunnerOptions {
            concurrency: limits::SAGA_RUNNER_CONCURRENCY_DEFAULT,
            lease_ms: limits::SAGA_RUNNER_LEASE_MS_DEFAULT,
        }
    }
}

/// A definition the runner has, with its stored fact.
struct RegisteredSaga {
    definition: SagaDefinition,
    fact: Typed<DefinitionFact>,
}

/// What every drive shares.
struct RunnerCore {
    client: Client,
    hook: Option<BoundaryHook>,
    /// One lock per instance being driven, so that two deliveries about
    /// one instance take turns.
    drives: Mutex<HashMap<Hash, Arc<tokio::sync::Mutex<()>>>>,
}

/// Runs sagas: see the module's documentation.
///
/// ```no_run
/// # use cairn_client::{Client, SagaDefinition, SagaRunner, Step, StepContext};
/// # async fn example(client: Client, shutdown: tokio_util::sync::CancellationToken) -> Result<(), cairn_client::SagaError> {
/// let checkout = SagaDefinition::new("checkout", 1)
///     .step(Step::new("reserve", |step: StepContext| async move {
///         Ok(serde_json::json!({"reserved": step.idempotency_key}))
///     }).compensate(|_step| async move { Ok(serde_json::Value::Null) }))
///     .step(Step::new("ship", |_step| async move { Ok(serde_json::Value::Null) })
///         .timeout(std::time::Duration::from_secs(5)).attempts_max(2));
/// SagaRunner::new(client).saga(checkout).run(shutdown).await?;
/// # Ok(()) }
/// ```
pub struct SagaRunner {
    client: Client,
    definitions: Vec<SagaDefinition>,
    options: SagaRunnerOptions,
    hook: Option<BoundaryHook>,
}

impl SagaRunner {
    /// A runner with no sagas yet and default options.
    pub fn new(client: Client) -> SagaRunner {
        SagaRunner {
            client,
            definitions: Vec::new(),
            options: SagaRunnerOptions::default(),
            hook: None,
        }
    }

    /// Runs instances of `definition`. Keep the definitions of older
    /// versions registered while instances of them run: an instance keeps
    /// the version it started with, and only a runner that has that
    /// version drives it.
    pub fn saga(mut self, definition: SagaDefinition) -> SagaRunner {
        self.definitions.push(definition);
        self
    }

    /// Sets the options.
    pub fn options(mut self, options: SagaRunnerOptions) -> SagaRunner {
        self.options = options;
        self
    }

    /// Calls `hook` at every boundary (after each stored transition, and
    /// after each action or compensation returned, before its outcome is
    /// stored), on the drive's task: keep it short.
    pub fn on_boundary(
        mut self,
        hook: impl Fn(&SagaBoundary) + Send + Sync + 'static,
    ) -> SagaRunner {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// The subscription names of a definition: instances, retries,
    /// aborts, deadlines.
    pub fn subscription_names(name: &str, version: u32) -> [String; 4] {
        [
            format!("saga.{name}.v{version}.started"),
            format!("saga.{name}.v{version}.retry"),
            format!("saga.{name}.v{version}.abort"),
            format!("saga.{name}.v{version}.deadline"),
        ]
    }

    /// Registers every definition, then drives instances until `shutdown`
    /// (draining running drives as a [`Subscriber`] does). Errors at the
    /// start (an invalid definition, a refused subscription) or when a
    /// subscriber fails.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), SagaError> {
        let core = Arc::new(RunnerCore {
            client: self.client.clone(),
            hook: self.hook,
            drives: Mutex::new(HashMap::new()),
        });
        let mut subscribers = JoinSet::new();
        for definition in self.definitions {
            let hash = register_until_stored(&self.client, &definition, &shutdown).await?;
            let Some(hash) = hash else {
                return Ok(());
            };
            let fact = self
                .client
                .get::<DefinitionFact>(&hash)
                .await?
                .ok_or_else(|| SagaError::UnknownSaga {
                    name: definition.name.clone(),
                    version: definition.version,
                })?;
            let saga = Arc::new(RegisteredSaga { definition, fact });
            let [started, retry, abort, deadline] =
                SagaRunner::subscription_names(&saga.definition.name, saga.definition.version);
            for (subscription, type_name) in [
                (started, StartedFact::TYPE_NAME),
                (retry, RetryRequestedFact::TYPE_NAME),
                (abort, AbortRequestedFact::TYPE_NAME),
                (deadline, StepDeadlineFact::TYPE_NAME),
            ] {
                let core = Arc::clone(&core);
                let saga_for_handler = Arc::clone(&saga);
                let handler = move |delivery: Delivery| {
                    let core = Arc::clone(&core);
                    let saga = Arc::clone(&saga_for_handler);
                    async move {
                        let instance = instance_of(&delivery)?;
                        let expired_attempt = expired_attempt_of(&delivery);
                        core.drive(instance, &saga, expired_attempt)
                            .await
                            .map_err(HandlerError::new)
                    }
                };
                let definition = SubscriptionDefinition {
                    predecessor: Some(PredecessorSelector {
                        role: "definition".to_string(),
                        hash: saga.fact.hash,
                    }),
                    lease_ms: Some(self.options.lease_ms),
                    max_attempts: Some(limits::SAGA_SUBSCRIPTION_ATTEMPTS_MAX),
                    backoff: Some(BackoffDefinition {
                        initial_ms: Some(limits::SAGA_SUBSCRIPTION_BACKOFF_INITIAL_MS),
                        max_ms: Some(limits::SAGA_SUBSCRIPTION_BACKOFF_MAX_MS),
                    }),
                    ..SubscriptionDefinition::new(type_name)
                };
                let subscriber = Subscriber::new(self.client.clone(), subscription, handler)
                    .definition(definition)
                    .concurrency(self.options.concurrency);
                subscribers.spawn(subscriber.run(shutdown.clone()));
            }
        }
        let mut first_error = None;
        while let Some(joined) = subscribers.join_next().await {
            let error = match joined {
                Ok(Ok(_report)) => continue,
                Ok(Err(error)) => SagaError::Client(error),
                Err(join_error) => SagaError::Client(ClientError::Protocol(format!(
                    "a saga subscriber panicked: {join_error}"
                ))),
            };
            // One subscriber failing stops the others.
            shutdown.cancel();
            first_error.get_or_insert(error);
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Registers a definition, retrying while Cairn is unreachable; `None` if
/// shutdown came first.
async fn register_until_stored(
    client: &Client,
    definition: &SagaDefinition,
    shutdown: &CancellationToken,
) -> Result<Option<Hash>, SagaError> {
    let sagas = client.sagas();
    let mut failures_n = 0;
    loop {
        let registered = tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ok(None),
            registered = sagas.register(definition) => registered,
        };
        match registered {
            Ok(hash) => return Ok(Some(hash)),
            Err(error) if error.is_retryable() => {
                failures_n += 1;
                tracing::warn!(saga = %definition.name, "cannot register the saga, retrying: {error}");
                let delay = crate::backoff::Backoff {
                    initial: limits::BACKOFF_INITIAL_DEFAULT,
                    max: limits::BACKOFF_MAX_DEFAULT,
                }
                .delay(failures_n);
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(delay) => {}
                }
            }
            Err(error) => return Err(error),
        }
    }
}

/// The instance a delivered fact is about: a `Saga.Started` is one, a
/// request or a deadline names it as `saga`.
fn instance_of(delivery: &Delivery) -> ClientResult<Hash> {
    if delivery.fact().get("type").and_then(|t| t.as_str()) == Some(StartedFact::TYPE_NAME) {
        return Ok(delivery.hash());
    }
    delivery
        .fact()
        .get("predecessors")
        .and_then(|predecessors| predecessors.get("saga"))
        .and_then(|saga| saga.as_str())
        .and_then(|saga| Hash::from_hex(saga).ok())
        .ok_or_else(|| ClientError::Protocol("a saga request without its saga".to_string()))
}

/// The attempt a delivered `Saga.StepDeadline` says has expired (by the
/// server's clock, which fired its timer); `None` for other facts.
fn expired_attempt_of(delivery: &Delivery) -> Option<Hash> {
    if delivery.fact().get("type").and_then(|t| t.as_str()) != Some(StepDeadlineFact::TYPE_NAME) {
        return None;
    }
    delivery
        .fact()
        .pointer("/fields/attempt")
        .and_then(|attempt| attempt.as_str())
        .and_then(|attempt| Hash::from_hex(attempt).ok())
}

impl RunnerCore {
    /// Drives one instance until it ends or waits for an operator. When a
    /// deadline woke it, `expired_attempt` is the attempt whose deadline
    /// passed: it counts as expired even if this runner's clock is behind
    /// the server's, and its timer, which has fired, is deleted.
    async fn drive(
        &self,
        id: Hash,
        saga: &RegisteredSaga,
        expired_attempt: Option<Hash>,
    ) -> Result<(), SagaError> {
        let lock = self.lock_of(id);
        let guard = lock.lock().await;
        let driven = self.drive_locked(id, saga, expired_attempt).await;
        drop(guard);
        self.release(id, lock);
        if driven.is_ok() {
            if let Some(attempt) = expired_attempt {
                self.forget_deadline(attempt).await;
            }
        }
        driven
    }

    /// Sets the durable timer of the attempt `attempt` (not yet stored):
    /// at its deadline, the server writes the attempt's
    /// `Saga.StepDeadline`. Setting it again changes nothing.
    async fn set_deadline(
        &self,
        journal: &SagaJournal,
        attempt: &crate::saga::facts::TransitionFact,
        attempt_hash: Hash,
        deadline_ms: u64,
    ) -> Result<(), SagaError> {
        let deadline = StepDeadlineFact {
            saga: journal.id,
            definition: journal.started.value.definition,
            attempt: attempt_hash,
            step: attempt.step.unwrap_or_default(),
            step_name: attempt.step_name.clone().unwrap_or_default(),
            deadline_ms,
        };
        let template: serde_json::Value =
            serde_json::from_slice(&to_canonical_fact(&deadline)?.canonical).map_err(|error| {
                ClientError::Protocol(format!("a deadline's template: {error}"))
            })?;
        self.client
            .put_timer(
                &deadline_timer_name(&attempt_hash),
                &TimerDefinition::at_ms(deadline_ms, template),
            )
            .await?;
        Ok(())
    }

    /// Deletes the durable timer of the attempt `attempt`, once the
    /// attempt has an outcome or the timer has fired. Best effort: a timer
    /// left behind fires once and changes nothing (the journal has moved
    /// on), and the runner it wakes deletes it.
    async fn forget_deadline(&self, attempt: Hash) {
        let name = deadline_timer_name(&attempt);
        match self.client.delete_timer(&name).await {
            Ok(()) => {}
            Err(error) if error.code() == Some("unknown_timer") => {}
            Err(error) => {
                tracing::warn!(timer = %name, "cannot delete a saga's deadline timer: {error}")
            }
        }
    }

    fn lock_of(&self, id: Hash) -> Arc<tokio::sync::Mutex<()>> {
        let mut drives = self
            .drives
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(drives.entry(id).or_default())
    }

    /// Forgets the instance's lock once nobody else holds or waits for it.
    fn release(&self, id: Hash, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut drives = self
            .drives
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The map's reference and ours: no other drive of it.
        if Arc::strong_count(&lock) <= 2 {
            drives.remove(&id);
        }
    }

    fn boundary(&self, journal: &SagaJournal, point: BoundaryPoint) {
        if let Some(hook) = &self.hook {
            hook(&SagaBoundary {
                saga: journal.id,
                saga_name: journal.name().to_string(),
                point,
            });
        }
    }

    async fn drive_locked(
        &self,
        id: Hash,
        saga: &RegisteredSaga,
        expired_attempt: Option<Hash>,
    ) -> Result<(), SagaError> {
        let started = match self.client.get::<StartedFact>(&id).await {
            Ok(Some(started)) => started,
            Ok(None) | Err(ClientError::TypeMismatch { .. }) => {
                return Err(SagaError::NotASaga { id })
            }
            Err(error) => return Err(error.into()),
        };
        if started.value.definition != saga.fact.hash {
            // Another version's instance: not this runner's to drive.
            return Ok(());
        }
        let sagas = self.client.sagas();
        for _ in 0..limits::SAGA_TRANSITIONS_MAX {
            let journal = sagas.journal_of(started.clone(), saga.fact.clone()).await?;
            match journal.next(now_for(&journal, expired_attempt)) {
                Decision::Finished | Decision::WaitForOperator => return Ok(()),
                Decision::Write(transition) => {
                    if transition.kind == TransitionKind::StepAttempted
                        && transition.attempt.unwrap_or(1) > 1
                    {
                        let step = transition.step.unwrap_or_default() as usize;
                        if let Some(step) = saga.definition.steps.get(step) {
                            tokio::time::sleep(step.retry_delay).await;
                        }
                    }
                    let kind = transition.kind;
                    let step = transition.step_name.clone();
                    if let (TransitionKind::StepAttempted, Some(deadline_ms)) =
                        (kind, transition.deadline_ms)
                    {
                        let attempt_hash = to_canonical_fact(&transition)?.hash;
                        self.set_deadline(&journal, &transition, attempt_hash, deadline_ms)
                            .await?;
                    }
                    self.client.put(&transition).await?;
                    self.boundary(&journal, BoundaryPoint::Written { kind, step });
                    if kind == TransitionKind::StepTimedOut {
                        self.forget_deadline(transition.previous).await;
                    }
                }
                Decision::RunAction {
                    attempt_transition,
                    idempotency_key,
                    step,
                    attempt,
                    deadline_ms,
                } => {
                    let step_definition = self.step(&journal, saga, step)?;
                    let context = context(&journal, step_definition, attempt, idempotency_key);
                    let action = (step_definition.action)(context);
                    let returned = match deadline_ms {
                        Some(deadline_ms) => {
                            let left_ms = deadline_ms.saturating_sub(unix_time_ms());
                            tokio::time::timeout(Duration::from_millis(left_ms), action)
                                .await
                                .ok()
                        }
                        None => Some(action.await),
                    };
                    self.boundary(
                        &journal,
                        BoundaryPoint::Returned {
                            step: step_definition.name.clone(),
                            compensation: false,
                        },
                    );
                    let outcome = match returned {
                        None => journal.outcome(TransitionKind::StepTimedOut, None, None),
                        Some(Ok(output)) => {
                            journal.outcome(TransitionKind::StepSucceeded, Some(output), None)
                        }
                        Some(Err(error)) => journal.outcome(
                            TransitionKind::StepFailed,
                            None,
                            Some((error.message().to_string(), error.is_retryable())),
                        ),
                    };
                    self.write_outcome(&journal, outcome).await?;
                    if deadline_ms.is_some() {
                        self.forget_deadline(attempt_transition).await;
                    }
                }
                Decision::RunCompensation {
                    attempt_transition,
                    step,
                    attempt,
                } => {
                    let step_definition = self.step(&journal, saga, step)?;
                    let Some(compensation) = &step_definition.compensation else {
                        return Err(SagaError::MalformedJournal {
                            id,
                            message: format!("step {:?} has no compensation", step_definition.name),
                        });
                    };
                    let context = context(&journal, step_definition, attempt, attempt_transition);
                    let returned = run(compensation, context).await;
                    self.boundary(
                        &journal,
                        BoundaryPoint::Returned {
                            step: step_definition.name.clone(),
                            compensation: true,
                        },
                    );
                    let outcome = match returned {
                        Ok(_) => journal.outcome(TransitionKind::StepCompensated, None, None),
                        Err(error) => journal.outcome(
                            TransitionKind::CompensationFailed,
                            None,
                            Some((error.message().to_string(), true)),
                        ),
                    };
                    self.write_outcome(&journal, outcome).await?;
                }
            }
        }
        Err(SagaError::MalformedJournal {
            id,
            message: format!(
                "not ended after {} transitions",
                limits::SAGA_TRANSITIONS_MAX
            ),
        })
    }

    fn step<'a>(
        &self,
        journal: &SagaJournal,
        saga: &'a RegisteredSaga,
        step: u32,
    ) -> Result<&'a crate::saga::definition::Step, SagaError> {
        saga.definition
            .steps
            .get(step as usize)
            .ok_or_else(|| SagaError::MalformedJournal {
                id: journal.id,
                message: format!("no step {step}"),
            })
    }

    async fn write_outcome(
        &self,
        journal: &SagaJournal,
        outcome: Option<crate::saga::facts::TransitionFact>,
    ) -> Result<(), SagaError> {
        let outcome = outcome.ok_or_else(|| SagaError::MalformedJournal {
            id: journal.id,
            message: "an outcome without its attempt".to_string(),
        })?;
        let kind = outcome.kind;
        let step = outcome.step_name.clone();
        self.client.put(&outcome).await?;
        self.boundary(journal, BoundaryPoint::Written { kind, step });
        Ok(())
    }
}

/// The time a drive decides at: this runner's clock, or, while the
/// journal's last transition is an attempt whose deadline's timer has
/// fired (by the server's clock), at least that deadline.
fn now_for(journal: &SagaJournal, expired_attempt: Option<Hash>) -> u64 {
    let now_ms = unix_time_ms();
    match (journal.chain.last(), expired_attempt) {
        (Some(head), Some(expired)) if head.hash == expired => {
            now_ms.max(head.value.deadline_ms.unwrap_or(now_ms))
        }
        _ => now_ms,
    }
}

/// Runs an action or compensation.
async fn run(
    function: &StepFunction,
    context: StepContext,
) -> Result<serde_json::Value, crate::saga::definition::StepError> {
    function(context).await
}

/// What an attempt's action or compensation is given.
fn context(
    journal: &SagaJournal,
    step: &crate::saga::definition::Step,
    attempt: u32,
    idempotency_key: Hash,
) -> StepContext {
    let mut outputs = serde_json::Map::new();
    for (index, definition) in journal.step_definitions().iter().enumerate() {
        if let Some(output) = journal.output(u32::try_from(index).unwrap_or(u32::MAX)) {
            outputs.insert(definition.name.clone(), output.clone());
        }
    }
    StepContext {
        saga: journal.id,
        input: journal.started.value.input.clone(),
        step: step.name.clone(),
        attempt,
        idempotency_key: idempotency_key.to_hex(),
        outputs,
    }
}
