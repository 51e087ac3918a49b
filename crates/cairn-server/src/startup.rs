//! `cairn serve`'s start: build the node, listen, serve — and keep serving
//! while the store cannot be opened yet.
//!
//! A PostgreSQL store may be unreachable when the server starts: the
//! database is still starting beside it, or a failover is under way and
//! the URL's only reachable host is a standby that has not been promoted.
//! Exiting would turn that passing state into an outage someone must end
//! by hand, so the server listens anyway, answers every request `503
//! store_unavailable` with the reason (`/v1/health` included, so a load
//! balancer keeps it out of rotation), and builds the node again with
//! jittered exponential backoff until it succeeds. The requests that come
//! after go to the node's router through the same listener. Only reasons
//! that can pass by themselves are retried ([`NodeError::is_transient`]);
//! a bad URL, a refused login or certificate, an unsafe database setting
//! stop the start at once, before anything listens.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::serve::Listener;
use axum::Router;
use cairn_api::ErrorCode;
use cairn_delivery::Backoff;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::error::ApiError;
use crate::http_errors::JsonErrorListener;
use crate::node::{spawn_server, stop_on, Node, NodeError, NodeOptions};
use crate::tls::ServerTls;

/// The delay before the first new attempt to open the store, doubling
/// (with jitter into its upper half) up to [`RETRY_BACKOFF_MAX_MS`].
const RETRY_BACKOFF_INITIAL_MS: u64 = 200;
/// The longest delay between two attempts to open the store.
const RETRY_BACKOFF_MAX_MS: u64 = 5_000;

/// Why `cairn serve` stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The node could not be built, for a reason that does not pass.
    #[error(transparent)]
    Build(#[from] NodeError),
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address asked for.
        address: SocketAddr,
        /// Why it could not be bound.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("the server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Builds the node of `options`, listens on `address` (over `tls` if
/// given) and serves until `shutdown` completes; then lets in-flight
/// requests finish and closes the node. While the node cannot be built for
/// a passing reason, serves `503 store_unavailable` and retries (see the
/// module documentation).
pub async fn serve(
    options: NodeOptions,
    address: SocketAddr,
    tls: Option<&ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let built = match options.clone().build().await {
        Err(error) if !error.is_transient() => return Err(error.into()),
        built => built,
    };
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| ServeError::Listen { address, source })?;
    let bound = listener.local_addr().map_err(ServeError::Serve)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("listening on {scheme}://{bound}");
    match tls {
        Some(tls) => {
            serve_on(
                JsonErrorListener(tls.listener(listener)),
                options,
                built,
                shutdown,
            )
            .await
        }
        None => serve_on(JsonErrorListener(listener), options, built, shutdown).await,
    }
}

async fn serve_on<L>(
    listener: JsonErrorListener<L>,
    options: NodeOptions,
    built: Result<Node, NodeError>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError>
where
    L: Listener,
    L::Addr: std::fmt::Debug,
{
    let stop = stop_on(shutdown);
    let first_error = match built {
        Ok(node) => {
            let server = spawn_server(listener, node.router(), stop.clone());
            return node.finish(server, stop).await.map_err(ServeError::Serve);
        }
        Err(error) => error,
    };
    let gate = Arc::new(Gate::default());
    let server = spawn_server(listener, Arc::clone(&gate).router(), stop.clone());
    match build_retrying(&options, &gate, first_error, &stop).await {
        Ok(Some(node)) => {
            tracing::info!("the store is open; serving");
            gate.open(node.router());
            node.finish(server, stop).await.map_err(ServeError::Serve)
        }
        Ok(None) => {
            // Stopped before the store opened: only 503s were under way.
            server
                .await
                .map_err(std::io::Error::other)
                .and_then(|served| served)
                .map_err(ServeError::Serve)
        }
        Err(error) => {
            stop.cancel();
            let _ = server.await;
            Err(error.into())
        }
    }
}

/// Builds the node again, after a jittered, growing delay, until it is
/// built (`Some`), `stop` is cancelled (`None`) or it fails for a reason
/// that does not pass; `gate` answers with the last reason meanwhile.
async fn build_retrying(
    options: &NodeOptions,
    gate: &Gate,
    first_error: NodeError,
    stop: &CancellationToken,
) -> Result<Option<Node>, NodeError> {
    let backoff = Backoff {
        initial_ms: RETRY_BACKOFF_INITIAL_MS,
        max_ms: RETRY_BACKOFF_MAX_MS,
    };
    let mut error = first_error;
    for failures in 1u32.. {
        let delay_ms = backoff.delay_ms(failures, rand::random());
        tracing::warn!(
            %error,
            attempt = failures,
            retry_in_ms = delay_ms,
            "the store cannot be opened yet; answering 503 store_unavailable and retrying"
        );
        gate.set_reason(&error);
        let attempt = async {
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            options.clone().build().await
        };
        tokio::select! {
            () = stop.cancelled() => return Ok(None),
            built = attempt => match built {
                Ok(node) => return Ok(Some(node)),
                Err(next) if next.is_transient() => error = next,
                Err(next) => return Err(next),
            },
        }
    }
    unreachable!("the attempts are counted up to u32::MAX");
}

/// What the listener answers with until the node is built, then the
/// node's router.
#[derive(Default)]
struct Gate {
    node: OnceLock<Router>,
    reason: Mutex<String>,
}

impl Gate {
    /// A router that hands every request to the gate.
    fn router(self: Arc<Gate>) -> Router {
        Router::new().fallback(move |request: Request| {
            let gate = Arc::clone(&self);
            async move { gate.answer(request).await }
        })
    }

    async fn answer(&self, request: Request) -> Response {
        match self.node.get() {
            Some(node) => match node.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            None => {
                let reason = self.reason.lock().expect("lock poisoned").clone();
                ApiError::new(
                    ErrorCode::StoreUnavailable,
                    format!("the server is starting: {reason}; retrying"),
                )
                .into_response()
            }
        }
    }

    fn set_reason(&self, error: &NodeError) {
        *self.reason.lock().expect("lock poisoned") = error.to_string();
    }

    fn open(&self, node: Router) {
        let _ = self.node.set(node);
    }
}
