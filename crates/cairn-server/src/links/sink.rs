//! The receiving store as a replication `Sink`: facts through the
//! ordinary `Store::put_facts` (durable on return, predecessors first,
//! idempotent), progress through the `LinkStore`, saved only while this
//! server still runs the link.

use std::sync::Arc;

use cairn_fact::CanonicalFact;
use cairn_replication::{Progress, Sink, SinkError};
use cairn_store::{LinkStore, Store, WriteError};
use futures_util::future::BoxFuture;

/// One link's view of the receiving store.
pub struct StoreSink<S> {
    /// The fact store.
    pub store: Arc<S>,
    /// Where the link's progress is kept.
    pub links: Arc<dyn LinkStore>,
    /// The link's name.
    pub name: String,
    /// The link's incarnation.
    pub incarnation: String,
    /// This server's name as the link's runner.
    pub runner: String,
    /// This deployment's identity.
    pub deployment: String,
}

impl<S: Store> Sink for StoreSink<S> {
    fn store_id(&self) -> &str {
        &self.deployment
    }

    fn put(&self, facts: Vec<CanonicalFact>) -> BoxFuture<'_, Result<u64, SinkError>> {
        Box::pin(async move {
            match self.store.put_facts(facts).await {
                Ok(outcomes) => {
                    Ok(outcomes.iter().filter(|outcome| outcome.inserted).count() as u64)
                }
                Err(WriteError::MissingPredecessors { missing }) => {
                    Err(SinkError::MissingPredecessors(missing))
                }
                Err(error) => Err(SinkError::Unavailable(error.to_string())),
            }
        })
    }

    fn save<'a>(&'a self, progress: &'a Progress) -> BoxFuture<'a, Result<bool, SinkError>> {
        Box::pin(async move {
            let json = serde_json::to_string(progress)
                .map_err(|error| SinkError::Refused(error.to_string()))?;
            self.links
                .save_link_progress(&self.name, &self.incarnation, &self.runner, &json)
                .await
                .map_err(|error| SinkError::Unavailable(error.to_string()))
        })
    }
}
