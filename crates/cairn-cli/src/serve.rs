//! `cairn serve`: opens the embedded store and blob directory, serves the
//! HTTP API, and shuts down cleanly on SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use cairn_server::delivery::memory::MemoryDeliveries;
use cairn_server::{limits, ServerConfig};
use cairn_store::{BlobStore, EmbeddedOptions, EmbeddedStore, SyncMode};
use tokio::signal::unix::{signal, SignalKind};

/// Options of `cairn serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Data directory (created if missing).
    #[arg(long, env = "CAIRN_DATA", default_value = "./cairn-data")]
    data: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "CAIRN_LISTEN", default_value = "127.0.0.1:7710")]
    listen: SocketAddr,
    /// Canonical bytes of one fact at most.
    #[arg(long, default_value_t = limits::FACT_CANONICAL_BYTES_MAX_DEFAULT)]
    fact_bytes_max: usize,
    /// Bytes of one blob at most.
    #[arg(long, default_value_t = limits::BLOB_BYTES_MAX_DEFAULT)]
    blob_bytes_max: u64,
    /// Requests handled at once; beyond this the server answers 429.
    #[arg(long, default_value_t = limits::CONCURRENT_REQUESTS_MAX)]
    concurrent_requests_max: usize,
    /// UNSAFE, for negative-control tests only: acknowledge writes before
    /// they are written or synced, so a crash loses acknowledged writes.
    #[arg(long, hide = true)]
    unsafe_ack_before_write: bool,
    /// Test-only fault injection: every sync after this many fails.
    #[arg(long, hide = true)]
    fail_sync_after: Option<u64>,
}

/// Runs the server until a shutdown signal.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let options = EmbeddedOptions {
        sync_mode: if args.unsafe_ack_before_write {
            SyncMode::UnsafeAckBeforeWrite
        } else {
            SyncMode::Data
        },
        fail_sync_after: args.fail_sync_after,
        ..EmbeddedOptions::default()
    };
    if args.unsafe_ack_before_write {
        tracing::warn!("UNSAFE: writes are acknowledged before they are durable");
    }
    let data = args.data.clone();
    let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&data, options))
        .await?
        .with_context(|| format!("cannot open the store in {}", args.data.display()))?;
    let blobs = BlobStore::open(&args.data.join("blobs"), args.blob_bytes_max)
        .context("cannot open the blob directory")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    tracing::info!("listening on http://{address}");
    let config = ServerConfig {
        fact_canonical_bytes_max: args.fact_bytes_max,
        concurrent_requests_max: args.concurrent_requests_max,
    };
    let store = Arc::new(store);
    let deliveries =
        MemoryDeliveries::load(Arc::clone(&store)).context("cannot load the subscriptions")?;
    cairn_server::serve(
        listener,
        store,
        Arc::new(blobs),
        Arc::new(deliveries),
        config,
        shutdown_signal()?,
    )
    .await
    .context("the server failed")
}

fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
