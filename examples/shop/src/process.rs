//! Process plumbing shared by both binaries: logs to stderr, and a
//! shutdown token cancelled by SIGINT or SIGTERM.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

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

/// Cancels `shutdown` at the first SIGINT or SIGTERM. The handlers are
/// installed before this returns, so a signal that arrives right after is
/// not lost.
pub fn stop_on_signals(shutdown: CancellationToken) -> Result<(), ServiceError> {
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServiceError::Signals)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(ServiceError::Signals)?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
            () = shutdown.cancelled() => return,
        };
        tracing::info!("{name} received: stopping");
        shutdown.cancel();
    });
    Ok(())
}
