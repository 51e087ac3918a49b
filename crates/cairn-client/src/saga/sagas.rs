//! [`Sagas`] (from [`Client::sagas`]): a saga's journal read from its
//! facts, the list of sagas, and what a caller or an operator writes:
//! definitions, new instances, retry and abort requests. The CLI's
//! `cairn sagas` commands are this, printed.

use std::time::{SystemTime, UNIX_EPOCH};

use cairn_fact::Hash;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::client::Client;
use crate::error::ClientError;
use crate::limits;
use crate::request::unique_id;
use crate::saga::definition::{registry_hash, validate_saga_name, SagaDefinition};
use crate::saga::error::SagaError;
use crate::saga::facts::{
    AbortRequestedFact, DefinitionFact, RegistryFact, RetryRequestedFact, StartedFact,
    TransitionFact,
};
use crate::saga::journal::{SagaJournal, SagaState};
use crate::typed::Typed;

/// Which sagas [`Sagas::list`] answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SagaFilter {
    /// Only sagas of this name.
    pub name: Option<String>,
    /// Only sagas in this state.
    pub state: Option<SagaState>,
    /// At most this many (newest first); `None` for
    /// [`limits::SAGAS_LIST_MAX`].
    pub limit: Option<usize>,
}

/// Sagas on a Cairn server: see [`Client::sagas`].
#[derive(Clone, Debug)]
pub struct Sagas {
    client: Client,
}

impl Client {
    /// The sagas stored on the server: their definitions, instances and
    /// journals, and operators' requests.
    pub fn sagas(&self) -> Sagas {
        Sagas {
            client: self.clone(),
        }
    }
}

/// Now, in ms since the Unix epoch.
pub(crate) fn unix_time_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

impl Sagas {
    /// Stores a definition (and the registry it names); its hash.
    /// Idempotent: the same definition is the same fact.
    pub async fn register(&self, definition: &SagaDefinition) -> Result<Hash, SagaError> {
        let fact = definition.fact()?;
        self.client.put(&RegistryFact {}).await?;
        Ok(self.client.put(&fact).await?.hash)
    }

    /// Every stored definition, in `seq` order.
    pub async fn definitions(&self) -> Result<Vec<Typed<DefinitionFact>>, SagaError> {
        let registry = registry_hash()?;
        let definitions: Vec<Typed<DefinitionFact>> = self
            .client
            .successors::<DefinitionFact>(&registry)
            .role("registry")
            .stream()
            .take(limits::SAGA_DEFINITIONS_MAX)
            .try_collect()
            .await?;
        Ok(definitions)
    }

    /// The stored definition of saga `name` at `version`.
    pub async fn definition(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Typed<DefinitionFact>, SagaError> {
        self.definitions()
            .await?
            .into_iter()
            .find(|definition| definition.value.name == name && definition.value.version == version)
            .ok_or_else(|| SagaError::UnknownSaga {
                name: name.to_string(),
                version,
            })
    }

    /// Starts an instance of saga `name` at `version` with `input`, under
    /// the caller's `id` (an order number: starting the same id with the
    /// same input again is the same saga, so a retried start starts one);
    /// the saga's id. A runner of that version picks it up.
    pub async fn start(
        &self,
        name: &str,
        version: u32,
        id: impl Into<String>,
        input: serde_json::Value,
    ) -> Result<Hash, SagaError> {
        validate_saga_name(name).map_err(SagaError::InvalidDefinition)?;
        let definition = self.definition(name, version).await?;
        let started = StartedFact {
            definition: definition.hash,
            id: id.into(),
            input,
        };
        Ok(self.client.put(&started).await?.hash)
    }

    /// [`Sagas::start`] under a new random id: every call is a new saga.
    pub async fn start_new(
        &self,
        name: &str,
        version: u32,
        input: serde_json::Value,
    ) -> Result<Hash, SagaError> {
        self.start(name, version, unique_id()?, input).await
    }

    /// The journal of saga `id`.
    pub async fn journal(&self, id: &Hash) -> Result<SagaJournal, SagaError> {
        let started = match self.client.get::<StartedFact>(id).await {
            Ok(Some(started)) => started,
            Ok(None) | Err(ClientError::TypeMismatch { .. }) => {
                return Err(SagaError::NotASaga { id: *id })
            }
            Err(error) => return Err(error.into()),
        };
        let definition = self
            .client
            .get::<DefinitionFact>(&started.value.definition)
            .await?
            .ok_or_else(|| SagaError::MalformedJournal {
                id: *id,
                message: "its definition is not stored".to_string(),
            })?;
        self.journal_of(started, definition).await
    }

    /// The journal of an instance whose facts are known already.
    pub(crate) async fn journal_of(
        &self,
        started: Typed<StartedFact>,
        definition: Typed<DefinitionFact>,
    ) -> Result<SagaJournal, SagaError> {
        let id = started.hash;
        let transitions = self
            .client
            .successors::<TransitionFact>(&id)
            .role("saga")
            .stream()
            .take(limits::SAGA_TRANSITIONS_MAX + 1);
        let retries = self
            .client
            .successors::<RetryRequestedFact>(&id)
            .role("saga")
            .stream()
            .take(limits::SAGA_REQUESTS_MAX);
        let aborts = self
            .client
            .successors::<AbortRequestedFact>(&id)
            .role("saga")
            .stream()
            .take(limits::SAGA_REQUESTS_MAX);
        let (transitions, retry_requests, abort_requests): (Vec<_>, Vec<_>, Vec<_>) =
            futures_util::future::try_join3(
                transitions.try_collect(),
                retries.try_collect(),
                aborts.try_collect(),
            )
            .await?;
        if transitions.len() > limits::SAGA_TRANSITIONS_MAX {
            return Err(SagaError::MalformedJournal {
                id,
                message: format!("more than {} transitions", limits::SAGA_TRANSITIONS_MAX),
            });
        }
        Ok(SagaJournal::new(
            started,
            definition,
            transitions,
            retry_requests,
            abort_requests,
        ))
    }

    /// The sagas that `filter` selects, newest first, each read whole.
    pub async fn list(&self, filter: &SagaFilter) -> Result<Vec<SagaJournal>, SagaError> {
        let limit = filter
            .limit
            .unwrap_or(limits::SAGAS_LIST_MAX)
            .min(limits::SAGAS_LIST_MAX);
        let mut instances = Vec::new();
        for definition in self.definitions().await? {
            if filter
                .name
                .as_ref()
                .is_some_and(|name| *name != definition.value.name)
            {
                continue;
            }
            let started: Vec<Typed<StartedFact>> = self
                .client
                .successors::<StartedFact>(&definition.hash)
                .role("definition")
                .stream()
                .take(limits::SAGAS_LIST_MAX)
                .try_collect()
                .await?;
            instances.extend(
                started
                    .into_iter()
                    .map(|started| (started, definition.clone())),
            );
        }
        instances.sort_by_key(|(started, _)| std::cmp::Reverse(started.seq));
        instances.truncate(limits::SAGAS_LIST_MAX);
        let journals: Vec<SagaJournal> = stream::iter(instances)
            .map(|(started, definition)| self.journal_of(started, definition))
            .buffered(limits::SAGA_READS_CONCURRENT_MAX)
            .try_filter(|journal| {
                let keep = filter.state.is_none_or(|state| journal.state() == state);
                async move { keep }
            })
            .take(limit)
            .try_collect()
            .await?;
        Ok(journals)
    }

    /// Asks the runner to go on with saga `id`: a `failed` saga gets a new
    /// round of compensation attempts; a running one is looked at again
    /// (after a runner was down, say). Refused for a saga that has ended.
    pub async fn request_retry(&self, id: &Hash, reason: &str) -> Result<Hash, SagaError> {
        let journal = self.journal(id).await?;
        let state = journal.state();
        if state.is_terminal() {
            return Err(SagaError::WrongState {
                id: *id,
                state: state.as_str(),
                message: "an ended saga cannot be retried",
            });
        }
        let request = RetryRequestedFact {
            saga: *id,
            definition: journal.definition.hash,
            after: journal.head(),
            id: unique_id()?,
            reason: bounded_reason(reason),
            requested_at_ms: unix_time_ms(),
        };
        Ok(self.client.put(&request).await?.hash)
    }

    /// Asks the runner to abort saga `id`: at the next step boundary it
    /// compensates the completed steps in reverse order and the saga ends
    /// `aborted`. Refused for a saga that has ended.
    pub async fn request_abort(&self, id: &Hash, reason: &str) -> Result<Hash, SagaError> {
        let journal = self.journal(id).await?;
        let state = journal.state();
        if state.is_terminal() {
            return Err(SagaError::WrongState {
                id: *id,
                state: state.as_str(),
                message: "an ended saga cannot be aborted",
            });
        }
        let request = AbortRequestedFact {
            saga: *id,
            definition: journal.definition.hash,
            id: unique_id()?,
            reason: bounded_reason(reason),
            requested_at_ms: unix_time_ms(),
        };
        Ok(self.client.put(&request).await?.hash)
    }
}

/// A reason cut to [`limits::SAGA_ERROR_BYTES_MAX`] at a character
/// boundary.
fn bounded_reason(reason: &str) -> String {
    let mut end = reason.len().min(limits::SAGA_ERROR_BYTES_MAX);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}
