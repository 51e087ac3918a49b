//! Crash injection: the named steps of the outbox, the relay and the inbox
//! at which a test can make the work stop as if the process had died there.
//!
//! Production code never sets an injector; the hook exists so that the
//! crash tests can stop at every step and then check, after a restart, that
//! every effect happened exactly once.

use std::sync::Arc;

/// A point in the outbox, relay or inbox where a crash can be injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// [`crate::Outbox::enqueue`] inserted its rows; the caller's
    /// transaction is not committed yet.
    OutboxAfterInsertBeforeCommit,
    /// The relay read a batch of unsent rows and has not published it yet.
    RelayAfterReadBeforePublish,
    /// Cairn has the batch; the rows are not yet marked sent.
    RelayAfterPublishBeforeMarkSent,
    /// The rows are marked sent (and the relay would go on with the next batch).
    RelayAfterMarkSent,
    /// [`crate::Inbox::process`] recorded the message; the handler has not run.
    InboxAfterInsertBeforeHandler,
    /// The handler succeeded; the transaction is not committed yet.
    InboxAfterHandlerBeforeCommit,
    /// The transaction is committed; the caller has not acknowledged the
    /// message yet.
    InboxAfterCommit,
}

impl Step {
    /// Every step, in the order in which the work reaches them.
    pub const ALL: [Step; 7] = [
        Step::OutboxAfterInsertBeforeCommit,
        Step::RelayAfterReadBeforePublish,
        Step::RelayAfterPublishBeforeMarkSent,
        Step::RelayAfterMarkSent,
        Step::InboxAfterInsertBeforeHandler,
        Step::InboxAfterHandlerBeforeCommit,
        Step::InboxAfterCommit,
    ];
}

/// The crash a [`FaultInjector`] asked for: the work stopped at `step`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("crash injected at step {step:?}")]
pub struct InjectedFault {
    /// Where the work stopped.
    pub step: Step,
}

/// A test hook called at every [`Step`]: returning an error stops the work
/// there, as a crash would (open transactions are rolled back, the relay's
/// `run` returns).
pub type FaultInjector = Arc<dyn Fn(Step) -> Result<(), InjectedFault> + Send + Sync>;

/// Calls the injector, if any, at `step`.
pub(crate) fn reach(injector: Option<&FaultInjector>, step: Step) -> Result<(), InjectedFault> {
    match injector {
        Some(injector) => injector(step),
        None => Ok(()),
    }
}
