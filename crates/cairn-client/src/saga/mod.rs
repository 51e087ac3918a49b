//! Sagas: a long business transaction as ordered steps, each an async
//! action with a compensation, run by a [`SagaRunner`] as subscribers,
//! with the journal kept as facts.
//!
//! - The journal *is* the log: a `Saga.Started` fact (whose hash is the
//!   saga's id) and a chain of `Saga.Transition` facts, each naming the
//!   instance (`saga`) and the transition it follows (`previous`): one
//!   successor query reads a saga whole (docs/api-v1.md, "Sagas", gives
//!   every fact type and field for readers in other languages).
//! - Crash anywhere: every decision is derived from the journal
//!   ([`SagaJournal::next`], pure), never from memory, so a runner that
//!   starts again (or another runner) goes on where the journal stands.
//! - Idempotency keys: each action and compensation attempt gets the hash
//!   of its attempt transition as its key ([`StepContext`]). Run again
//!   after a crash, the same attempt has the same key and an idempotent
//!   downstream applies its effect once; a retry after a failure or a
//!   timeout is a new attempt fact with a new key, so a downstream that
//!   stored the failure under the old key cannot turn the retry into a
//!   replay of it.
//! - Versions: an instance names the `Saga.Definition` it started under;
//!   runners subscribe by definition, so an instance is driven only by a
//!   runner that has its version (keep old versions registered until
//!   their instances have ended). There is no migration of running
//!   instances.
//! - Timeouts: a step's timeout becomes the attempt's `deadline_ms`, in
//!   its fact, and a durable timer at that deadline (set before the
//!   attempt is stored) whose `Saga.StepDeadline` fact wakes a runner even
//!   if the one running the attempt is gone; a runner that finds an
//!   attempt past its deadline stores `step_timed_out`, whose content is
//!   fixed by the attempt, so two runners store the same fact.
//! - Failure: a step that fails for good (a permanent error, or attempts
//!   used up) makes the runner compensate the completed steps in reverse
//!   order, each compensation once (retried on failure); a compensation
//!   that keeps failing leaves the saga `failed` for an operator
//!   (`cairn sagas retry ID`, or `abort`).

mod definition;
mod error;
pub mod facts;
mod journal;
mod runner;
mod sagas;

pub use definition::{
    registry_hash, validate_saga_name, SagaDefinition, Step, StepContext, StepError, StepFuture,
};
pub use error::SagaError;
pub use journal::{AttemptView, Decision, SagaJournal, SagaState, StepView};
pub use runner::{BoundaryPoint, SagaBoundary, SagaRunner, SagaRunnerOptions};
pub use sagas::{SagaFilter, Sagas};
