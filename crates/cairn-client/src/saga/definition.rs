//! A saga's definition in code: [`SagaDefinition`] (name, version, ordered
//! [`Step`]s), each step an async action with an optional compensation,
//! attempts and timeout; what an action receives ([`StepContext`]) and
//! returns on failure ([`StepError`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cairn_fact::Hash;
use futures_util::future::BoxFuture;

use crate::error_text::error_text;
use crate::limits;
use crate::saga::error::SagaError;
use crate::saga::facts::{DefinitionFact, RegistryFact, StepDefinitionFact};
use crate::typed::to_canonical_fact;

/// What an action or compensation returns: the step's output (any JSON,
/// kept in the journal) or why it failed.
pub type StepFuture = BoxFuture<'static, Result<serde_json::Value, StepError>>;

/// An action or a compensation.
pub(crate) type StepFunction = Arc<dyn Fn(StepContext) -> StepFuture + Send + Sync>;

/// What an action or compensation is given.
#[derive(Clone, Debug)]
pub struct StepContext {
    /// The saga's id (the hash of its `Saga.Started`).
    pub saga: Hash,
    /// The saga's input.
    pub input: serde_json::Value,
    /// The step's name.
    pub step: String,
    /// The attempt number (from 1).
    pub attempt: u32,
    /// The idempotency key of this attempt: the hex hash of its
    /// `step_attempted` (or `compensation_attempted`) transition. The same
    /// attempt run again after a crash has the same key, so a downstream
    /// service that deduplicates by it applies the effect once; a retry
    /// after a failure is a new attempt with a new key, so the downstream
    /// cannot answer it with the stored failure. A retry after a *timeout*
    /// keeps the key of the attempt that timed out (its effect is unknown,
    /// so the downstream must be asked again under the same key): send
    /// [`StepContext::attempt`] along if the request must still be a new
    /// message.
    pub idempotency_key: String,
    /// The outputs of the steps that succeeded so far, by step name (for a
    /// compensation: including its own step's output).
    pub outputs: serde_json::Map<String, serde_json::Value>,
}

/// Why an action or compensation failed: its text (with causes) goes into
/// the journal. A retryable failure is tried again while the step has
/// attempts left; a permanent one (a declined card) fails the step at
/// once. Every error converts into a retryable one, so `?` works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepError {
    message: String,
    retryable: bool,
}

impl StepError {
    /// A failure worth trying again (a timeout, a service down).
    pub fn retryable(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StepError {
        StepError::new(error, true)
    }

    /// A failure that another attempt would not change (a declined card):
    /// the step fails for good and compensation starts.
    pub fn permanent(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StepError {
        StepError::new(error, false)
    }

    fn new(
        error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
        retryable: bool,
    ) -> StepError {
        let error = error.into();
        StepError {
            message: error_text(error.as_ref(), limits::SAGA_ERROR_BYTES_MAX),
            retryable,
        }
    }

    /// The error's text, causes included.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl<E: Into<Box<dyn std::error::Error + Send + Sync>>> From<E> for StepError {
    fn from(error: E) -> StepError {
        StepError::retryable(error)
    }
}

/// One step: an action, and what undoes it.
#[derive(Clone)]
pub struct Step {
    pub(crate) name: String,
    pub(crate) action: StepFunction,
    pub(crate) compensation: Option<StepFunction>,
    pub(crate) attempts_max: u32,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retry_delay: Duration,
    pub(crate) compensation_attempts_max: u32,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Step")
            .field("name", &self.name)
            .field("compensable", &self.compensation.is_some())
            .field("attempts_max", &self.attempts_max)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Boxes a closure returning a future into a [`StepFunction`].
fn step_function<F, Fut>(function: F) -> StepFunction
where
    F: Fn(StepContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<serde_json::Value, StepError>> + Send + 'static,
{
    Arc::new(move |context| Box::pin(function(context)))
}

impl Step {
    /// A step named `name` (`[A-Za-z0-9_-]`) running `action`: one
    /// attempt, no timeout, no compensation.
    pub fn new<F, Fut>(name: impl Into<String>, action: F) -> Step
    where
        F: Fn(StepContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<serde_json::Value, StepError>> + Send + 'static,
    {
        Step {
            name: name.into(),
            action: step_function(action),
            compensation: None,
            attempts_max: 1,
            timeout: None,
            retry_delay: limits::SAGA_RETRY_DELAY_DEFAULT,
            compensation_attempts_max: limits::SAGA_COMPENSATION_ATTEMPTS_DEFAULT,
        }
    }

    /// What undoes the action once it succeeded: run, in reverse order of
    /// the steps, when a later step fails for good or the saga is aborted.
    /// It should succeed eventually; its failures are retried up to
    /// [`Step::compensation_attempts_max`] times, then the saga is
    /// `failed` and waits for an operator.
    pub fn compensate<F, Fut>(mut self, compensation: F) -> Step
    where
        F: Fn(StepContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<serde_json::Value, StepError>> + Send + 'static,
    {
        self.compensation = Some(step_function(compensation));
        self
    }

    /// Attempts of the action at most (retryable failures and timeouts
    /// are tried again).
    pub fn attempts_max(mut self, attempts_max: u32) -> Step {
        self.attempts_max = attempts_max;
        self
    }

    /// Each attempt's deadline: an attempt without an answer by then is
    /// `step_timed_out`, which counts as a retryable failure. The deadline
    /// is in the attempt's fact, so it holds across crashes.
    pub fn timeout(mut self, timeout: Duration) -> Step {
        self.timeout = Some(timeout);
        self
    }

    /// Wait before a retry.
    pub fn retry_delay(mut self, delay: Duration) -> Step {
        self.retry_delay = delay;
        self
    }

    /// Attempts of the compensation at most per round.
    pub fn compensation_attempts_max(mut self, attempts_max: u32) -> Step {
        self.compensation_attempts_max = attempts_max;
        self
    }
}

/// A saga: a name, a version and ordered steps. Register it with a
/// [`crate::SagaRunner`]; start instances with
/// [`crate::Sagas::start`].
#[derive(Clone, Debug)]
pub struct SagaDefinition {
    pub(crate) name: String,
    pub(crate) version: u32,
    pub(crate) steps: Vec<Step>,
}

impl SagaDefinition {
    /// A saga `name` (`[A-Za-z0-9_-]`, 1 to 64 characters) at `version`
    /// (1 or more), with no steps yet.
    pub fn new(name: impl Into<String>, version: u32) -> SagaDefinition {
        SagaDefinition {
            name: name.into(),
            version,
            steps: Vec::new(),
        }
    }

    /// Adds a step after the others.
    pub fn step(mut self, step: Step) -> SagaDefinition {
        self.steps.push(step);
        self
    }

    /// The saga's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The definition's version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Checks names, counts and ranges.
    pub fn validate(&self) -> Result<(), SagaError> {
        let invalid = |message: String| Err(SagaError::InvalidDefinition(message));
        validate_saga_name(&self.name).map_err(SagaError::InvalidDefinition)?;
        if self.version == 0 {
            return invalid("a saga's version is 1 or more".to_string());
        }
        if self.steps.is_empty() || self.steps.len() > limits::SAGA_STEPS_MAX {
            return invalid(format!(
                "a saga has 1 to {} steps, {:?} has {}",
                limits::SAGA_STEPS_MAX,
                self.name,
                self.steps.len()
            ));
        }
        for (index, step) in self.steps.iter().enumerate() {
            validate_saga_name(&step.name).map_err(|message| {
                SagaError::InvalidDefinition(format!("step {index}: {message}"))
            })?;
            if self.steps[..index]
                .iter()
                .any(|earlier| earlier.name == step.name)
            {
                return invalid(format!("two steps are named {:?}", step.name));
            }
            if !(1..=limits::SAGA_ATTEMPTS_MAX).contains(&step.attempts_max)
                || !(1..=limits::SAGA_ATTEMPTS_MAX).contains(&step.compensation_attempts_max)
            {
                return invalid(format!(
                    "step {:?}: attempts are 1 to {}",
                    step.name,
                    limits::SAGA_ATTEMPTS_MAX
                ));
            }
            if step.timeout.is_some_and(|timeout| timeout.is_zero()) {
                return invalid(format!("step {:?}: a timeout must be positive", step.name));
            }
        }
        Ok(())
    }

    /// The definition as the journal records it (`Saga.Definition`).
    pub fn fact(&self) -> Result<DefinitionFact, SagaError> {
        self.validate()?;
        Ok(DefinitionFact {
            registry: registry_hash()?,
            name: self.name.clone(),
            version: self.version,
            steps: self
                .steps
                .iter()
                .map(|step| StepDefinitionFact {
                    name: step.name.clone(),
                    attempts_max: step.attempts_max,
                    timeout_ms: step
                        .timeout
                        .map(|timeout| u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
                    compensable: step.compensation.is_some(),
                    compensation_attempts_max: step.compensation_attempts_max,
                })
                .collect(),
        })
    }
}

/// The hash of `Saga.Registry` (a constant).
pub fn registry_hash() -> Result<Hash, SagaError> {
    Ok(to_canonical_fact(&RegistryFact {})?.hash)
}

/// Checks a saga's or a step's name: 1 to 64 characters of
/// `[A-Za-z0-9_-]` (so that subscription names built from it are valid).
pub fn validate_saga_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= limits::SAGA_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "a name is 1 to {} characters of [A-Za-z0-9_-], got {name:?}",
            limits::SAGA_NAME_BYTES_MAX
        ))
    }
}
