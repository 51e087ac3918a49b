//! The facts of a saga's journal, as typed facts: what other-language
//! clients read (docs/api-v1.md, "Sagas", is their contract). Every type
//! is in the `Saga.` namespace.
//!
//! - `Saga.Registry` (no fields, no predecessors: one fact with a constant
//!   hash) is the root every definition names, so definitions are found
//!   with one successor query.
//! - `Saga.Definition` is a saga's name, version and steps.
//! - `Saga.Started` is an instance: its hash is the saga's id.
//! - `Saga.Transition` is every step of the journal after the start, its
//!   `kind` saying which; each names the instance (`saga`) and the
//!   transition it follows (`previous`), so the journal is one successor
//!   query of the instance and a chain.
//! - `Saga.RetryRequested` and `Saga.AbortRequested` are an operator's
//!   requests, which the runner answers with a transition naming them.
//! - `Saga.StepDeadline` is written by the server, from a durable timer
//!   the runner sets, when an attempt's deadline comes: it wakes a runner
//!   to time the attempt out even if the one running it is gone.

use cairn_fact::Hash;
use serde::{Deserialize, Serialize};

use crate::Fact;

/// The root of every saga definition (`Saga.Registry`, `{}`): a constant
/// fact, so its hash is known to every client without a read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Fact)]
#[fact(type = "Saga.Registry")]
pub struct RegistryFact {}

/// One step of a definition as the journal records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepDefinitionFact {
    /// The step's name, unique in the saga.
    pub name: String,
    /// Attempts of the action at most before the step fails for good.
    pub attempts_max: u32,
    /// Each attempt's deadline after it starts, if the step has a timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Whether the step has a compensation.
    pub compensable: bool,
    /// Attempts of the compensation at most (per round: an operator's
    /// retry starts a new round) before the saga is `failed`.
    pub compensation_attempts_max: u32,
}

/// A saga's definition (`Saga.Definition`): name, version and steps.
/// Instances name the version they started with and keep it.
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Saga.Definition")]
pub struct DefinitionFact {
    /// The root of definitions.
    #[predecessor]
    pub registry: Hash,
    /// The saga's name (`[A-Za-z0-9_-]`, 1 to 64 characters).
    pub name: String,
    /// The definition's version (1 or more).
    pub version: u32,
    /// The steps, in order.
    pub steps: Vec<StepDefinitionFact>,
}

/// A saga instance (`Saga.Started`): its hash is the saga's id.
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Saga.Started")]
pub struct StartedFact {
    /// The definition (and so the version) the instance runs under.
    #[predecessor]
    pub definition: Hash,
    /// The caller's id of the instance (an order number, or a random id):
    /// starting the same id and input again is the same saga, two ids are
    /// two sagas.
    pub id: String,
    /// The input, as the caller gave it.
    pub input: serde_json::Value,
}

/// A transition of a saga's journal (`Saga.Transition`); `kind` says
/// which, the other fields are set as the kind needs (see
/// [`TransitionKind`]).
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Saga.Transition")]
pub struct TransitionFact {
    /// The instance (its `Saga.Started`).
    #[predecessor]
    pub saga: Hash,
    /// The transition this one follows (the `Saga.Started` for the first).
    #[predecessor]
    pub previous: Hash,
    /// The operator's request this transition answers (`retry_accepted`,
    /// `abort_accepted`).
    #[predecessor]
    pub request: Option<Hash>,
    /// For a `step_attempted` after a `step_timed_out`: the earlier
    /// attempt whose idempotency key this attempt reuses (the attempt that
    /// started the run of timeouts). A timed-out attempt's effect is
    /// unknown — the downstream may have applied it without answering in
    /// time, or the runner may have died before storing the answer — so
    /// its retry asks again under the same key, and an idempotent
    /// downstream answers with what it did. A retry after a `step_failed`
    /// (the downstream said no) is a new attempt with its own key.
    #[predecessor]
    pub key_attempt: Option<Hash>,
    /// What happened.
    pub kind: TransitionKind,
    /// The step concerned (index from 0), for step and compensation kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// The step's name, beside its index, for readers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_name: Option<String>,
    /// The attempt (from 1), for attempts and their outcomes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// When an attempt times out (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// When an attempt was made (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
    /// What a step's action answered (`step_succeeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// Why an attempt or the saga failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether a failed attempt may be tried again (`step_failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
}

/// The kinds of transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// A step's action is being tried (`step`, `attempt`, `at_ms`,
    /// `deadline_ms` if the step has a timeout). Its hash is the attempt's
    /// idempotency key, unless it names a `key_attempt`, whose hash is.
    StepAttempted,
    /// The attempt's action succeeded (`output`).
    StepSucceeded,
    /// The attempt's action failed (`error`, `retryable`).
    StepFailed,
    /// The attempt passed its deadline without an answer.
    StepTimedOut,
    /// A step's compensation is being tried (`step`, `attempt`, `at_ms`).
    /// Its hash is the compensation's idempotency key.
    CompensationAttempted,
    /// The compensation succeeded.
    StepCompensated,
    /// The compensation failed (`error`).
    CompensationFailed,
    /// An operator's abort was accepted (`request`): the completed steps
    /// are compensated, and the saga ends `aborted`.
    AbortAccepted,
    /// An operator's retry of a `failed` saga was accepted (`request`):
    /// compensation goes on with fresh attempts.
    RetryAccepted,
    /// Every step succeeded (terminal).
    Completed,
    /// A step failed for good and every completed step was compensated
    /// (terminal).
    Compensated,
    /// Aborted by an operator and every completed step compensated
    /// (terminal).
    Aborted,
    /// A compensation failed for good (`error`): waits for an operator
    /// (`cairn sagas retry` or `abort`).
    Failed,
}

impl TransitionKind {
    /// The kind's name in the journal (`step_attempted`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::StepAttempted => "step_attempted",
            TransitionKind::StepSucceeded => "step_succeeded",
            TransitionKind::StepFailed => "step_failed",
            TransitionKind::StepTimedOut => "step_timed_out",
            TransitionKind::CompensationAttempted => "compensation_attempted",
            TransitionKind::StepCompensated => "step_compensated",
            TransitionKind::CompensationFailed => "compensation_failed",
            TransitionKind::AbortAccepted => "abort_accepted",
            TransitionKind::RetryAccepted => "retry_accepted",
            TransitionKind::Completed => "completed",
            TransitionKind::Compensated => "compensated",
            TransitionKind::Aborted => "aborted",
            TransitionKind::Failed => "failed",
        }
    }
}

/// An operator's request to retry a `failed` saga (`Saga.RetryRequested`).
/// It names the transition it was made against (`after`): the runner
/// accepts it only while that transition is still the journal's last.
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Saga.RetryRequested")]
pub struct RetryRequestedFact {
    /// The instance.
    #[predecessor]
    pub saga: Hash,
    /// The instance's definition (runners subscribe by it).
    #[predecessor]
    pub definition: Hash,
    /// The journal's last transition when the request was made.
    #[predecessor]
    pub after: Hash,
    /// A random id: asking twice is two requests.
    pub id: String,
    /// Why, for the record.
    pub reason: String,
    /// When (ms since the Unix epoch).
    pub requested_at_ms: u64,
}

/// An operator's request to abort a saga (`Saga.AbortRequested`): at the
/// next step boundary the runner compensates the completed steps.
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Saga.AbortRequested")]
pub struct AbortRequestedFact {
    /// The instance.
    #[predecessor]
    pub saga: Hash,
    /// The instance's definition (runners subscribe by it).
    #[predecessor]
    pub definition: Hash,
    /// A random id: asking twice is two requests.
    pub id: String,
    /// Why, for the record.
    pub reason: String,
    /// When (ms since the Unix epoch).
    pub requested_at_ms: u64,
}

/// An attempt's deadline (`Saga.StepDeadline`): the template of the
/// one-shot durable timer ([`deadline_timer_name`]) a runner sets at the
/// attempt's `deadline_ms` just before it stores a `step_attempted` with
/// a timeout. The server writes it when the deadline comes (with
/// `fields.cairn_timer` added), whether or not any runner is alive, and
/// runners subscribe to it: the one it reaches times the attempt out if
/// it is still the journal's last transition, and otherwise does nothing.
#[derive(Clone, Debug, PartialEq, Eq, Fact)]
#[fact(type = "Saga.StepDeadline")]
pub struct StepDeadlineFact {
    /// The instance.
    #[predecessor]
    pub saga: Hash,
    /// The instance's definition (runners subscribe by it).
    #[predecessor]
    pub definition: Hash,
    /// The attempt's `step_attempted` transition. A field, not a
    /// predecessor: the timer is set before the attempt is stored, so
    /// that no crash leaves an attempt without its timer (an attempt that
    /// is then never stored, or loses to another runner's, leaves a timer
    /// whose fact changes nothing).
    pub attempt: Hash,
    /// The step (index from 0).
    pub step: u32,
    /// The step's name, for readers.
    pub step_name: String,
    /// The attempt's deadline (ms since the Unix epoch).
    pub deadline_ms: u64,
}

/// The name of the durable timer of the attempt `attempt`:
/// `saga-deadline.<the attempt's hash>`.
pub fn deadline_timer_name(attempt: &Hash) -> String {
    format!("saga-deadline.{}", attempt.to_hex())
}
