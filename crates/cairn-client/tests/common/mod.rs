//! Test helpers: a real Cairn server in-process on a free loopback port,
//! client options with short waits, and a few fact types.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::net::SocketAddr;
use std::time::Duration;

use cairn_client::{Client, ClientOptions, Fact, Hash};
use tokio_util::sync::CancellationToken;

/// A Cairn server serving a fresh data directory.
pub struct TestServer {
    pub address: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _data: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> anyhow::Result<TestServer> {
        TestServer::start_on("127.0.0.1:0".parse()?).await
    }

    /// A server listening on `address` (a port a test reserved earlier).
    pub async fn start_on(address: SocketAddr) -> anyhow::Result<TestServer> {
        let data = tempfile::tempdir()?;
        let mut options = cairn_server::NodeOptions::embedded(data.path().join("store"));
        options.blob_bytes_max = 1024 * 1024;
        let node = options.build().await?;
        let listener = tokio::net::TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(node.run(listener, shutdown.clone().cancelled_owned()));
        Ok(TestServer {
            address,
            shutdown,
            task,
            _data: data,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::remote(fast_options(vec![self.url()]))?)
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await??;
        Ok(())
    }
}

/// Options with short backoffs so failure tests stay quick.
pub fn fast_options(endpoints: Vec<String>) -> ClientOptions {
    ClientOptions {
        endpoints,
        request_timeout: Duration::from_secs(10),
        attempts_max: 4,
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ..ClientOptions::default()
    }
}

/// A loopback address where nothing listens: bound, then released.
pub async fn closed_endpoint() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    drop(listener);
    Ok(format!("http://{address}"))
}

#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Shop.Customer")]
pub struct Customer {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Shop.Order")]
pub struct Order {
    pub id: String,
    pub total: f64,
    #[predecessor]
    pub customer: Option<Hash>,
}
