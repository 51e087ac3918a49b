//! The state every handler shares: the store, the blobs, the subscriptions,
//! metrics, settings.

use std::sync::Arc;

use cairn_store::{BlobStore, CoordinationStore, DigestStore};
use tokio_util::sync::CancellationToken;

use crate::delivery::Deliveries;
use crate::metrics::HttpMetrics;

/// Settings of the HTTP layer that are not compile-time limits.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Canonical bytes of one fact at most.
    pub fact_canonical_bytes_max: usize,
    /// Requests handled at once; beyond this the server answers 429.
    pub concurrent_requests_max: usize,
    /// The longest this server holds a long-poll (`wait_ms` of the log,
    /// successors and pulls), whatever a request asks for up to
    /// [`crate::limits::WAIT_MS_MAX`]: an answer may come back empty
    /// sooner, as it may anyway. Lowered for test runs that call every
    /// operation with random values (the schemathesis profile).
    pub long_poll_ms_max: u64,
    /// Refuse writes of types without a schema (`cairn serve
    /// --require-schemas`).
    pub require_schemas: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            fact_canonical_bytes_max: crate::limits::FACT_CANONICAL_BYTES_MAX_DEFAULT,
            concurrent_requests_max: crate::limits::CONCURRENT_REQUESTS_MAX,
            long_poll_ms_max: crate::limits::WAIT_MS_MAX,
            require_schemas: false,
        }
    }
}

/// Shared handler state, cheap to clone.
pub struct AppState<S> {
    /// The fact store.
    pub store: Arc<S>,
    /// The blob directory.
    pub blobs: Arc<BlobStore>,
    /// The subscriptions.
    pub deliveries: Arc<dyn Deliveries>,
    /// Permits for open subscription streams (`STREAM_CONNECTIONS_MAX`):
    /// a stream outlives the request that upgraded it, so the router's
    /// per-request limit does not count it.
    pub stream_connections: Arc<tokio::sync::Semaphore>,
    /// HTTP metrics.
    pub metrics: Arc<HttpMetrics>,
    /// Settings.
    pub config: ServerConfig,
    /// Cancelled when the server shuts down, so long-polls end early.
    pub shutdown: CancellationToken,
    /// Access control, when the server runs with `--auth`.
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// Claims, leases and fenced writes: the store again, as that trait.
    pub coordination: Arc<dyn CoordinationStore>,
    /// Digests over the hash space (`/v1/digests`): the store again, as that trait.
    pub digests: Arc<dyn DigestStore>,
    /// The node's clock (lease expiry on the embedded store).
    pub clock: crate::clock::Clock,
    /// Durable timers.
    pub timers: Arc<crate::timers::Timers>,
    /// Replication links.
    pub links: Arc<crate::links::Links>,
    /// The schema registry.
    pub schemas: Arc<crate::schemas::Schemas>,
    /// The flows observed for the service boundaries.
    pub flows: Arc<crate::boundaries::Flows>,
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        AppState {
            store: Arc::clone(&self.store),
            blobs: Arc::clone(&self.blobs),
            deliveries: Arc::clone(&self.deliveries),
            stream_connections: Arc::clone(&self.stream_connections),
            metrics: Arc::clone(&self.metrics),
            config: self.config.clone(),
            shutdown: self.shutdown.clone(),
            auth: self.auth.clone(),
            coordination: Arc::clone(&self.coordination),
            digests: Arc::clone(&self.digests),
            clock: self.clock.clone(),
            timers: Arc::clone(&self.timers),
            links: Arc::clone(&self.links),
            schemas: Arc::clone(&self.schemas),
            flows: Arc::clone(&self.flows),
        }
    }
}
