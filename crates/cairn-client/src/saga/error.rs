//! [`SagaError`]: what saga calls fail with, shaped by what the caller can
//! do: retry (the client's error), fix the input, or stop.

use cairn_fact::Hash;

use crate::error::ClientError;

/// Why a saga call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SagaError {
    /// Talking to Cairn failed (see the client error: some are worth
    /// retrying).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The definition is not valid.
    #[error("invalid saga definition: {0}")]
    InvalidDefinition(String),
    /// No definition of that saga and version is stored.
    #[error("no saga {name:?} at version {version} is defined")]
    UnknownSaga {
        /// The saga's name.
        name: String,
        /// The version asked for.
        version: u32,
    },
    /// The hash is not a stored `Saga.Started`.
    #[error("{id} is not a saga")]
    NotASaga {
        /// The hash given.
        id: Hash,
    },
    /// The request does not apply to the saga in its state.
    #[error("saga {id} is {state}: {message}")]
    WrongState {
        /// The saga.
        id: Hash,
        /// Its state.
        state: &'static str,
        /// What cannot be done.
        message: &'static str,
    },
    /// The journal breaks the format (a transition without the members
    /// its kind needs, a chain longer than the limit).
    #[error("saga {id}: malformed journal: {message}")]
    MalformedJournal {
        /// The saga.
        id: Hash,
        /// What is wrong.
        message: String,
    },
}

impl SagaError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SagaError::Client(error) if error.is_retryable())
    }
}
