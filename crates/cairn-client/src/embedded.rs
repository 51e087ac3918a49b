//! A Cairn server embedded in the service's process: [`Client::embedded`]
//! builds the same node as `cairn serve --data DIR` (the server's
//! [`cairn_server::NodeOptions`]) and talks to it through the same
//! [`Transport`](crate::Transport) as to a remote server, so a service runs
//! unchanged against either.
//!
//! Requests are dispatched into the node's router in-process (no socket),
//! so every validation, answer and error is the server's own. With
//! [`EmbeddedOptions::listen`] the node also serves API v1 on a local TCP
//! port, so that `cairn subs …`, the console or `curl` reach it.
//!
//! The node belongs to the client: it lives as long as any clone of the
//! [`Client`] (a running [`Subscriber`](crate::Subscriber) holds one, and a
//! running `RemoteSync` holds the node), so
//! its lifetime cannot be cut short by a handle dropped too early.
//! [`Client::close`] closes it durably, for every clone at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use cairn_server::{Node, NodeOptions};

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::remote::RemoteTransport;

/// How to start an embedded node: its data directory and, optionally, a
/// local address to serve API v1 on as well.
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    data_dir: PathBuf,
    listen_address: Option<String>,
}

impl EmbeddedOptions {
    /// A node over the store in `data_dir` (created if missing), answering
    /// in-process only.
    pub fn new(data_dir: impl Into<PathBuf>) -> EmbeddedOptions {
        EmbeddedOptions {
            data_dir: data_dir.into(),
            listen_address: None,
        }
    }

    /// Also serves API v1 on `address` (`host:port`; port `0` picks a free
    /// one, [`Client::local_address`] tells which). Prefer a loopback
    /// address: the API has no authentication.
    pub fn listen(mut self, address: impl Into<String>) -> EmbeddedOptions {
        self.listen_address = Some(address.into());
        self
    }
}

/// The node inside an embedded client's transport: closed once, by the
/// first [`Client::close`], or stopped when the last clone is dropped.
pub(crate) struct EmbeddedNode {
    /// The node's router, cloned for each request. `None` once closed, so
    /// that no reference to the store outlives the close (the data
    /// directory is released when the last one goes).
    router: std::sync::Mutex<Option<Router>>,
    /// `None` once closed.
    node: tokio::sync::Mutex<Option<Node>>,
    local_address: Option<SocketAddr>,
    /// The node's data directory (the offline sync keeps its outbound
    /// bookmarks under it).
    data_dir: PathBuf,
    /// Names of the syncs running now (one task per name).
    pub(crate) syncs: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl EmbeddedNode {
    /// The node's data directory.
    pub(crate) fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Whether the node was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.router().is_none()
    }

    /// Sends one request into the node's router: `path_and_query` such as
    /// `/v1/links/x`, a JSON body if given; answers the status and at most
    /// `body_bytes_max` bytes of body. [`ClientError::Closed`] once closed.
    pub(crate) async fn request(
        &self,
        method: axum::http::Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        timeout: std::time::Duration,
        body_bytes_max: usize,
    ) -> Result<(u16, bytes::Bytes)> {
        use tower::ServiceExt as _;
        let router = self.router().ok_or(ClientError::Closed)?;
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(path_and_query);
        let body = match body {
            Some(body) => {
                request = request.header(axum::http::header::CONTENT_TYPE, "application/json");
                axum::body::Body::from(body)
            }
            None => axum::body::Body::empty(),
        };
        let request = request
            .body(body)
            .map_err(|error| ClientError::Protocol(error.to_string()))?;
        let unavailable = |last_error: String| ClientError::Unavailable {
            attempts: 1,
            last_error,
        };
        let response = tokio::time::timeout(timeout, router.oneshot(request))
            .await
            .map_err(|_| unavailable("timed out".to_string()))?
            .map_err(|error| unavailable(error.to_string()))?;
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), body_bytes_max)
            .await
            .map_err(|error| unavailable(error.to_string()))?;
        Ok((status, body))
    }

    /// The router to send a request into; `None` once closed.
    pub(crate) fn router(&self) -> Option<Router> {
        self.router
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The address the node serves API v1 on, if it listens.
    pub(crate) fn local_address(&self) -> Option<SocketAddr> {
        self.local_address
    }

    /// Ends long-polls, stops serving and closes the store (finishing
    /// queued writes). A second call waits for the first to finish.
    pub(crate) async fn close(&self) {
        self.router
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let mut node = self.node.lock().await;
        if let Some(node) = node.take() {
            node.close().await;
        }
    }
}

impl Client {
    /// Opens (or creates) an embedded Cairn store in `data_dir` and returns
    /// a client of it that owns the node (see [`Client::embedded_with`]).
    /// One process per directory.
    pub async fn embedded(data_dir: impl Into<PathBuf>) -> Result<Client> {
        Client::embedded_with(EmbeddedOptions::new(data_dir)).await
    }

    /// Starts an embedded node as `options` say and returns a client of it.
    /// The node lives as long as any clone of the client; [`Client::close`]
    /// closes its store durably, after which every clone's calls fail with
    /// [`ClientError::Closed`]. Dropping the last clone without closing
    /// stops the node too (every acknowledged write is durable already),
    /// but releases the data directory only once in-flight work has ended.
    ///
    /// ```
    /// use cairn_client::{Client, EmbeddedOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// let options = EmbeddedOptions::new(dir.path()).listen("127.0.0.1:0");
    /// let client = Client::embedded_with(options).await?;
    /// let address = client.local_address().expect("the node listens");
    /// println!("cairn subs list --server http://{address}");
    /// client.close().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn embedded_with(options: EmbeddedOptions) -> Result<Client> {
        let data_dir = options.data_dir.clone();
        let mut node = NodeOptions::embedded(options.data_dir)
            .build()
            .await
            .map_err(|error| ClientError::Embedded(error.to_string()))?;
        let local_address = match &options.listen_address {
            Some(address) => match node.listen_in_background(address).await {
                Ok(bound) => Some(bound),
                Err(error) => {
                    // Closed, not just dropped: the directory is free again
                    // when the error is returned.
                    node.close().await;
                    return Err(ClientError::Embedded(format!(
                        "cannot listen on {address}: {error}"
                    )));
                }
            },
            None => None,
        };
        let embedded = EmbeddedNode {
            router: std::sync::Mutex::new(Some(node.router())),
            node: tokio::sync::Mutex::new(Some(node)),
            local_address,
            data_dir,
            syncs: std::sync::Mutex::new(std::collections::HashSet::new()),
        };
        let embedded = Arc::new(embedded);
        let transport = Arc::new(RemoteTransport::embedded(Arc::clone(&embedded)));
        Ok(Client::with_embedded_node(transport, embedded))
    }
}
