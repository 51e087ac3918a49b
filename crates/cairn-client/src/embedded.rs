//! A Cairn server embedded in the service's process: [`EmbeddedNode`] opens
//! the embedded store in a data directory and [`Client::embedded`] talks to
//! it through the same [`Transport`](crate::Transport) as to a remote
//! server, so a service runs unchanged against either.
//!
//! Requests are dispatched into the server's router in-process (no socket),
//! so every validation, answer and error is the server's own.

use std::path::Path;
use std::sync::Arc;

use cairn_server::clock::Clock;
use cairn_server::delivery::memory::{MemoryDeliveries, MemoryOptions};
use cairn_server::ServerConfig;
use cairn_store::{BlobStore, EmbeddedOptions, EmbeddedStore, Store};
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::remote::RemoteTransport;

/// The embedded server's store and its shutdown switch. Dropping it, or
/// [`EmbeddedNode::close`], ends long-polls and closes the store durably;
/// the data directory is released once the last clone of the client is
/// dropped too.
pub struct EmbeddedNode {
    store: Arc<EmbeddedStore>,
    shutdown: CancellationToken,
}

impl EmbeddedNode {
    /// Ends long-polls and closes the store (finishing queued writes).
    pub async fn close(self) {
        self.shutdown.cancel();
        let store = Arc::clone(&self.store);
        if tokio::task::spawn_blocking(move || store.close())
            .await
            .is_err()
        {
            tracing::error!("closing the embedded store panicked");
        }
    }
}

impl Drop for EmbeddedNode {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Client {
    /// Opens (or creates) an embedded Cairn store in `dir` and returns a
    /// client of it, with the node that owns it. One process per directory.
    pub fn embedded(dir: &Path) -> Result<(Client, EmbeddedNode)> {
        let unavailable = |error: String| ClientError::Unavailable {
            attempts: 1,
            last_error: error,
        };
        // The same layout as `cairn serve --data DIR`, so either can open it.
        let store = EmbeddedStore::open(dir, EmbeddedOptions::default())
            .map_err(|error| unavailable(error.to_string()))?;
        let blobs = BlobStore::open(
            &dir.join("blobs"),
            cairn_server::limits::BLOB_BYTES_MAX_DEFAULT,
        )
        .map_err(|error| unavailable(error.to_string()))?;
        let store = Arc::new(store);
        let options = MemoryOptions::new(Clock::system());
        let deliveries = MemoryDeliveries::load(Arc::clone(&store), options)
            .map_err(|error| unavailable(error.to_string()))?;
        let shutdown = CancellationToken::new();
        let router = cairn_server::app(
            Arc::clone(&store),
            Arc::new(blobs),
            Arc::new(deliveries),
            ServerConfig::default(),
            shutdown.clone(),
        );
        let client = Client::with_transport(Arc::new(RemoteTransport::in_process(router)));
        Ok((client, EmbeddedNode { store, shutdown }))
    }
}
