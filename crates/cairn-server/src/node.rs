//! The composition root: one type builds a whole Cairn node — its store,
//! blob store, delivery engine and clock — from options, for `cairn serve`
//! and for the SDK's embedded server alike, so both run the same node.
//!
//! Options → [`NodeOptions::build`] → [`Node`], which either serves on a
//! socket until a shutdown signal ([`Node::run`]) or answers in-process
//! through its router ([`Node::router`]) — optionally serving on a socket
//! beside that ([`Node::listen_in_background`]) — until it is closed
//! ([`Node::close`]). Closing ends long-polls and streams, lets in-flight
//! requests finish and closes the store, so every acknowledged write is
//! durable.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::serve::Listener;
use axum::Router;
use cairn_store::{
    BlobError, BlobStore, CoordinationStore, DigestStore, EmbeddedOptions, EmbeddedStore,
    IdentityStore, LinkStore, PostgresError, PostgresOptions, PostgresStore, ReadError, Store,
    TimerStore,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::clock::Clock;
use crate::delivery::memory::{MemoryDeliveries, MemoryOptions};
use crate::delivery::shared::{SharedDeliveries, SharedOptions};
use crate::delivery::Deliveries;
use crate::http_errors::JsonErrorListener;
use crate::links::{spawn_supervisor, Links};
use crate::schemas::Schemas;
use crate::timers::{spawn_scheduler, Timers};
use crate::tls::ServerTls;
use crate::{app, limits, ServerConfig};
use cairn_replication::Certificate;

/// Where a node keeps its data.
#[derive(Clone)]
pub enum Storage {
    /// One data directory, owned by this process (the default).
    Embedded {
        /// The data directory (`cairn serve --data`).
        data_dir: PathBuf,
        /// How the embedded store syncs and fails (test-only faults).
        options: EmbeddedOptions,
    },
    /// A PostgreSQL database that many stateless servers share.
    Postgres {
        /// The connection URL (`cairn serve --store`).
        url: String,
        /// Pool and timeout settings.
        options: PostgresOptions,
    },
}

/// What a node is built from.
#[derive(Clone)]
pub struct NodeOptions {
    /// Where the data lives.
    pub storage: Storage,
    /// Bytes of one blob at most.
    pub blob_bytes_max: u64,
    /// The HTTP API's settings.
    pub server: ServerConfig,
    /// The delivery and timer clock of the embedded store (on PostgreSQL,
    /// delivery and timers take their time from the database, so every
    /// server agrees).
    pub clock: Clock,
    /// Whether requests must carry an access token (`cairn serve --auth`).
    pub auth: bool,
    /// Certificate authorities (PEM) that replication links trust for
    /// `https://` sources besides the public roots (`cairn serve
    /// --link-ca-cert`).
    pub link_ca_pem: Option<Vec<u8>>,
}

impl NodeOptions {
    /// A node over an embedded store in `data_dir`, every setting default:
    /// the same layout as `cairn serve --data DIR`, so either can open it.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> NodeOptions {
        NodeOptions {
            storage: Storage::Embedded {
                data_dir: data_dir.into(),
                options: EmbeddedOptions::default(),
            },
            blob_bytes_max: limits::BLOB_BYTES_MAX_DEFAULT,
            server: ServerConfig::default(),
            clock: Clock::system(),
            auth: false,
            link_ca_pem: None,
        }
    }

    /// Opens the store and the blob store, loads the subscriptions and
    /// builds the router.
    pub async fn build(self) -> Result<Node, NodeError> {
        let shutdown = CancellationToken::new();
        let clock = self.clock.clone();
        let link_roots = match &self.link_ca_pem {
            None => Vec::new(),
            Some(pem) => Certificate::from_pem_bundle(pem)
                .ok()
                .filter(|roots| !roots.is_empty())
                .ok_or_else(|| {
                    NodeError::Options(
                        "the link CA certificate file holds no PEM certificate".into(),
                    )
                })?,
        };
        let (store, router, auth, scheduler) = match self.storage {
            Storage::Embedded { data_dir, options } => {
                let dir = data_dir.clone();
                let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&dir, options))
                    .await
                    .map_err(|error| NodeError::Store(error.to_string()))?
                    .map_err(|error| NodeError::Store(error.to_string()))?;
                let store = Arc::new(store);
                let blobs = BlobStore::open(&data_dir.join("blobs"), self.blob_bytes_max)?;
                let deliveries =
                    MemoryDeliveries::load(Arc::clone(&store), MemoryOptions::new(self.clock))?;
                let settings = Settings {
                    config: self.server,
                    auth_enabled: self.auth,
                    clock,
                    link_roots,
                };
                let (router, auth, scheduler) =
                    assemble(&store, blobs, Arc::new(deliveries), settings, &shutdown).await?;
                (NodeStore::Embedded(store), router, auth, scheduler)
            }
            Storage::Postgres { url, options } => {
                let store = Arc::new(PostgresStore::connect(&url, options).await?);
                let blobs = BlobStore::postgres(store.pool().clone(), self.blob_bytes_max).await?;
                let deliveries =
                    SharedDeliveries::new(Arc::clone(&store), SharedOptions::default());
                let settings = Settings {
                    config: self.server,
                    auth_enabled: self.auth,
                    // What is due is judged by the database's clock; this
                    // one only stamps lateness and cron checks at PUT.
                    clock: Clock::system(),
                    link_roots,
                };
                let (router, auth, scheduler) =
                    assemble(&store, blobs, Arc::new(deliveries), settings, &shutdown).await?;
                (NodeStore::Postgres(store), router, auth, scheduler)
            }
        };
        Ok(Node {
            store,
            router,
            auth,
            shutdown,
            background_servers: Vec::new(),
            scheduler: Some(scheduler),
        })
    }
}

/// What [`assemble`] needs besides the stores.
struct Settings {
    config: ServerConfig,
    auth_enabled: bool,
    clock: Clock,
    link_roots: Vec<Certificate>,
}

/// The router of the application over `store`, with access control over
/// the store's identities if `auth_enabled` (kept fresh until `shutdown`),
/// the timer scheduler and the replication links' supervisor (running
/// until `shutdown`).
async fn assemble<
    S: Store + IdentityStore + TimerStore + CoordinationStore + LinkStore + DigestStore,
>(
    store: &Arc<S>,
    blobs: BlobStore,
    deliveries: Arc<dyn Deliveries>,
    settings: Settings,
    shutdown: &CancellationToken,
) -> Result<(Router, Option<Arc<Auth>>, JoinHandle<()>), NodeError> {
    let Settings {
        config,
        auth_enabled,
        clock,
        link_roots,
    } = settings;
    let auth = if auth_enabled {
        let auth = Arc::new(Auth::load(Arc::clone(store) as Arc<dyn IdentityStore>).await?);
        auth.spawn_upkeep(shutdown.clone());
        Some(auth)
    } else {
        None
    };
    let timers = Timers::new(
        Arc::clone(store) as Arc<dyn TimerStore>,
        clock,
        config.fact_canonical_bytes_max,
    );
    let scheduler = spawn_scheduler(Arc::clone(store), Arc::clone(&timers), shutdown.clone());
    let links = Links::new(
        Arc::clone(store) as Arc<dyn LinkStore>,
        store.deployment().to_string(),
        link_roots,
    );
    let supervisor = spawn_supervisor(Arc::clone(store), Arc::clone(&links), shutdown.clone());
    let schemas = Schemas::new(config.require_schemas);
    let schemas_refresh = schemas.spawn_refresh(Arc::clone(store), shutdown.clone());
    let flows = crate::boundaries::Flows::new(auth_enabled);
    let recorder =
        crate::boundaries::spawn_recorder(Arc::clone(store), Arc::clone(&flows), shutdown.clone());
    // All stop at `shutdown`; the node awaits them before the store closes.
    let scheduler = tokio::spawn(async move {
        let _ = scheduler.await;
        let _ = supervisor.await;
        let _ = schemas_refresh.await;
        let _ = recorder.await;
    });
    let router = app(
        Arc::clone(store),
        Arc::new(blobs),
        deliveries,
        config,
        shutdown.clone(),
        auth.clone(),
        crate::Background {
            timers,
            links,
            schemas,
            flows,
        },
    );
    Ok((router, auth, scheduler))
}

/// Why a node could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The embedded store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(String),
    /// The PostgreSQL store could not be opened.
    #[error("cannot open the PostgreSQL store: {0}")]
    Postgres(#[from] PostgresError),
    /// The blob store could not be opened.
    #[error("cannot open the blob store: {0}")]
    Blobs(#[from] BlobError),
    /// The subscriptions could not be loaded.
    #[error("cannot load the subscriptions: {0}")]
    Subscriptions(#[from] ReadError),
    /// An option is not acceptable.
    #[error("{0}")]
    Options(String),
}

impl NodeError {
    /// Whether building the node again later may succeed: its database
    /// cannot be reached yet, or has no writable primary yet.
    pub fn is_transient(&self) -> bool {
        match self {
            NodeError::Postgres(error) => error.is_transient(),
            NodeError::Subscriptions(error) => matches!(error, ReadError::Unavailable { .. }),
            NodeError::Store(_) | NodeError::Blobs(_) | NodeError::Options(_) => false,
        }
    }
}

/// The store a node owns, closed with it.
#[derive(Clone)]
enum NodeStore {
    Embedded(Arc<EmbeddedStore>),
    Postgres(Arc<PostgresStore>),
}

/// A built node: its router, its store, its shutdown switch and the
/// servers it runs in the background.
pub struct Node {
    store: NodeStore,
    router: Router,
    auth: Option<Arc<Auth>>,
    shutdown: CancellationToken,
    background_servers: Vec<JoinHandle<std::io::Result<()>>>,
    /// The timer scheduler, awaited before the store closes.
    scheduler: Option<JoinHandle<()>>,
}

impl Node {
    /// The router of API v1, to dispatch requests in-process (every
    /// validation, answer and error as over the network).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves API v1 on `listener` until `shutdown` completes, then lets
    /// in-flight requests finish (up to [`limits::SHUTDOWN_GRACE`]) and
    /// closes the store so every acknowledged write is durable.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve(JsonErrorListener(listener), shutdown).await
    }

    /// [`Node::run`] over TLS: every connection `listener` accepts speaks
    /// HTTPS (HTTP/2 or HTTP/1.1, by ALPN) with the certificate `tls`
    /// holds at its handshake, so a reload reaches new connections
    /// without closing the listener.
    pub async fn run_tls(
        self,
        listener: TcpListener,
        tls: &ServerTls,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve(JsonErrorListener(tls.listener(listener)), shutdown)
            .await
    }

    async fn serve<L>(
        self,
        listener: JsonErrorListener<L>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()>
    where
        L: Listener,
        L::Addr: std::fmt::Debug,
    {
        let stop = stop_on(shutdown);
        let server = spawn_server(listener, self.router.clone(), stop.clone());
        self.finish(server, stop).await
    }

    /// Once `stop` is cancelled: ends long-polls and streams, gives
    /// `server` (which stops accepting at `stop`) up to
    /// [`limits::SHUTDOWN_GRACE`] to finish its in-flight requests, and
    /// closes the node, so every acknowledged write is durable.
    pub(crate) async fn finish(
        self,
        server: JoinHandle<std::io::Result<()>>,
        stop: CancellationToken,
    ) -> std::io::Result<()> {
        let cancel = self.shutdown.clone();
        let ending = tokio::spawn(async move {
            stop.cancelled().await;
            tracing::info!("shutting down: finishing in-flight requests");
            cancel.cancel();
        });
        let cancel = self.shutdown.clone();
        let served = tokio::select! {
            result = server => result.map_err(std::io::Error::other).and_then(|served| served),
            () = async {
                cancel.cancelled().await;
                tokio::time::sleep(limits::SHUTDOWN_GRACE).await;
            } => {
                tracing::warn!("in-flight requests did not finish within the grace period");
                Ok(())
            }
        };
        ending.abort();
        self.close().await;
        tracing::info!("store closed; bye");
        served
    }

    /// Also serves API v1 on `address` (`host:port`; port 0 picks a free
    /// one), in a task, while the node keeps answering in-process through
    /// its router: this is how an embedded node becomes reachable for
    /// `cairn subs …` and the console. Answers the bound address.
    /// [`Node::close`] stops the server (in-flight requests get up to
    /// [`limits::SHUTDOWN_GRACE`]) before closing the store; dropping the
    /// node stops it too.
    pub async fn listen_in_background(&mut self, address: &str) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(address).await?;
        let bound = listener.local_addr()?;
        let server = spawn_server(
            JsonErrorListener(listener),
            self.router.clone(),
            self.shutdown.clone(),
        );
        self.background_servers.push(server);
        Ok(bound)
    }

    /// Ends long-polls and streams, stops the background servers (letting
    /// in-flight requests finish) and closes the store (finishing queued
    /// writes).
    pub async fn close(mut self) {
        self.shutdown.cancel();
        for server in std::mem::take(&mut self.background_servers) {
            let abort = server.abort_handle();
            match tokio::time::timeout(limits::SHUTDOWN_GRACE, server).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => tracing::warn!("a background server failed: {error}"),
                Ok(Err(error)) => tracing::error!("a background server panicked: {error}"),
                Err(_) => {
                    tracing::warn!("in-flight requests did not finish within the grace period");
                    abort.abort();
                }
            }
        }
        // The timer scheduler finishes its pass (its writes are durable or
        // fire again after the restart) before the store closes.
        if let Some(scheduler) = self.scheduler.take() {
            let abort = scheduler.abort_handle();
            if tokio::time::timeout(limits::SHUTDOWN_GRACE, scheduler)
                .await
                .is_err()
            {
                tracing::warn!("the timer scheduler did not stop within the grace period");
                abort.abort();
            }
        }
        // Refusals and token uses of the last seconds reach the audit
        // trail before the store closes.
        if let Some(auth) = &self.auth {
            auth.flush().await;
        }
        let closed = match self.store.clone() {
            NodeStore::Embedded(store) => tokio::task::spawn_blocking(move || store.close()).await,
            NodeStore::Postgres(store) => tokio::task::spawn_blocking(move || store.close()).await,
        };
        if closed.is_err() {
            tracing::error!("closing the store panicked");
        }
    }
}

/// Serves `router` on `listener` in a task until `stop` is cancelled, when
/// it stops accepting and lets the requests under way finish.
pub(crate) fn spawn_server<L>(
    listener: JsonErrorListener<L>,
    router: Router,
    stop: CancellationToken,
) -> JoinHandle<std::io::Result<()>>
where
    L: Listener,
    L::Addr: std::fmt::Debug,
{
    let server = axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned());
    tokio::spawn(std::future::IntoFuture::into_future(server))
}

/// A token cancelled when `shutdown` completes.
pub(crate) fn stop_on(shutdown: impl Future<Output = ()> + Send + 'static) -> CancellationToken {
    let stop = CancellationToken::new();
    let stopping = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopping.cancel();
    });
    stop
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
