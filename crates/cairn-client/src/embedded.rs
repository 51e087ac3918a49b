//! A Cairn server embedded in the service's process: [`Client::embedded`]
//! builds the same node as `cairn serve --data DIR` (the server's
//! [`cairn_server::NodeOptions`]) and talks to it through the same
//! [`Transport`](crate::Transport) as to a remote server, so a service runs
//! unchanged against either.
//!
//! Requests are dispatched into the node's router in-process (no socket),
//! so every validation, answer and error is the server's own.

use std::path::Path;
use std::sync::Arc;

use cairn_server::{Node, NodeOptions};

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::remote::RemoteTransport;

/// The embedded node: its store and its shutdown switch. Dropping it, or
/// [`EmbeddedNode::close`], ends long-polls; `close` also closes the store
/// durably. The data directory is released once the last clone of the
/// client is dropped too.
pub struct EmbeddedNode {
    node: Node,
}

impl EmbeddedNode {
    /// Ends long-polls and closes the store (finishing queued writes).
    pub async fn close(self) {
        self.node.close().await;
    }
}

impl Client {
    /// Opens (or creates) an embedded Cairn store in `dir` and returns a
    /// client of it, with the node that owns it. One process per directory.
    pub async fn embedded(dir: &Path) -> Result<(Client, EmbeddedNode)> {
        let node =
            NodeOptions::embedded(dir)
                .build()
                .await
                .map_err(|error| ClientError::Unavailable {
                    attempts: 1,
                    last_error: error.to_string(),
                })?;
        let client = Client::with_transport(Arc::new(RemoteTransport::in_process(node.router())));
        Ok((client, EmbeddedNode { node }))
    }
}
