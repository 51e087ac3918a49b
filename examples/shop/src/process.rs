//! Process plumbing shared by both binaries: logs to stderr, and the stop
//! signal (SIGINT or SIGTERM) that ends a service.

use std::future::Future;

use tokio::signal::unix::{signal, SignalKind};

use crate::error::ServiceError;

/// Logs to stderr at `info` unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// A future that completes at the first SIGINT or SIGTERM. The handlers
/// are installed before this returns, so a signal that arrives right after
/// is not lost.
pub fn stop_signal() -> Result<impl Future<Output = ()>, ServiceError> {
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServiceError::Signals)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(ServiceError::Signals)?;
    Ok(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!("{name} received: stopping");
    })
}
