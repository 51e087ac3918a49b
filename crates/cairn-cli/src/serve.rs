//! `cairn serve`: opens the store (embedded in a data directory, or
//! PostgreSQL with `--store postgres://…`), serves the HTTP API, and shuts
//! down cleanly on SIGINT or SIGTERM; with `--tls-cert` and `--tls-key` it
//! serves HTTPS and reloads both files on SIGHUP. `cairn migrate` applies the
//! PostgreSQL schema without serving.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cairn_server::clock::Clock;
use cairn_server::tls::{ServerTls, TlsFiles};
use cairn_server::{limits, NodeOptions, ServeError, ServerConfig, Storage};
use cairn_store::{EmbeddedOptions, PostgresOptions, PostgresStore, SyncMode, SCHEMA_VERSION};
use tokio::signal::unix::{signal, SignalKind};

/// Options of `cairn serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Data directory of the embedded store (created if missing).
    #[arg(long, env = "CAIRN_DATA", default_value = "./cairn-data")]
    data: PathBuf,
    /// Keep everything in PostgreSQL instead: a URL such as
    /// `postgres://user@host:5432/db`. Many servers can share one database.
    #[arg(long, env = "CAIRN_STORE")]
    store: Option<String>,
    #[command(flatten)]
    postgres: PostgresArgs,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "CAIRN_LISTEN", default_value = "127.0.0.1:7710")]
    listen: SocketAddr,
    /// Require an access token on every request but health, versions and
    /// the OpenAPI document (identities: `cairn tokens`).
    #[arg(long, env = "CAIRN_AUTH")]
    auth: bool,
    /// Listen on an address other than loopback without `--auth`: anyone
    /// who reaches the port can then read, write and delete everything.
    #[arg(long, conflicts_with = "auth")]
    insecure_no_auth: bool,
    /// Serve HTTPS with this certificate chain (PEM, the server's
    /// certificate first); needs --tls-key. Both files are read again on
    /// SIGHUP.
    #[arg(
        long,
        env = "CAIRN_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "CAIRN_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Trust the certificate authorities in this PEM file (besides the
    /// public roots) when replication links read from `https://` sources.
    #[arg(long, env = "CAIRN_LINK_CA_CERT", value_name = "FILE")]
    link_ca_cert: Option<PathBuf>,
    /// Canonical bytes of one fact at most.
    #[arg(long, default_value_t = limits::FACT_CANONICAL_BYTES_MAX_DEFAULT)]
    fact_bytes_max: usize,
    /// Bytes of one blob at most.
    #[arg(long, default_value_t = limits::BLOB_BYTES_MAX_DEFAULT)]
    blob_bytes_max: u64,
    /// Requests handled at once; beyond this the server answers 429.
    #[arg(long, default_value_t = limits::CONCURRENT_REQUESTS_MAX)]
    concurrent_requests_max: usize,
    /// The longest a long-poll is held (`wait_ms` above it is accepted and
    /// shortened); lowered for API test runs.
    #[arg(long, default_value_t = limits::WAIT_MS_MAX,
          value_parser = clap::value_parser!(u64).range(0..=limits::WAIT_MS_MAX))]
    long_poll_ms_max: u64,
    /// Refuse writes of fact types that have no registered schema
    /// (`422 schema_required`); Cairn's own types are exempt.
    #[arg(long, env = "CAIRN_REQUIRE_SCHEMAS")]
    require_schemas: bool,
    /// UNSAFE, for negative-control tests only: acknowledge writes before
    /// they are written or synced, so a crash loses acknowledged writes.
    #[arg(long, hide = true)]
    unsafe_ack_before_write: bool,
    /// Test-only fault injection: every sync after this many fails.
    #[arg(long, hide = true)]
    fail_sync_after: Option<u64>,
    /// Test-only fault injection: a file holding a clock offset in
    /// milliseconds, followed while the server runs (clock jumps).
    #[arg(long, hide = true)]
    fault_clock_file: Option<PathBuf>,
}

/// Connection settings of the PostgreSQL store.
#[derive(clap::Args)]
pub struct PostgresArgs {
    /// Database connections this server opens at most.
    #[arg(long, env = "CAIRN_PG_POOL_MAX", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pg_pool_max: u32,
    /// Milliseconds a request waits for a free connection (then 503).
    #[arg(long, env = "CAIRN_PG_ACQUIRE_TIMEOUT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pg_acquire_timeout_ms: u64,
    /// Milliseconds a statement may run before PostgreSQL cancels it.
    #[arg(long, env = "CAIRN_PG_STATEMENT_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pg_statement_timeout_ms: u64,
}

impl PostgresArgs {
    fn options(&self) -> PostgresOptions {
        PostgresOptions {
            pool_max: self.pg_pool_max,
            acquire_timeout: Duration::from_millis(self.pg_acquire_timeout_ms),
            statement_timeout: Duration::from_millis(self.pg_statement_timeout_ms),
            ..PostgresOptions::default()
        }
    }
}

fn init_logging() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a person watching, not in log files.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// `cairn migrate`: applies missing schema migrations to a PostgreSQL
/// database (servers also apply them when they start).
pub async fn migrate(url: &str) -> anyhow::Result<()> {
    init_logging();
    let applied = PostgresStore::migrate(url).await?;
    if applied.is_empty() {
        println!("schema is up to date (version {SCHEMA_VERSION})");
    } else {
        println!("applied migrations {applied:?}; schema is at version {SCHEMA_VERSION}");
    }
    Ok(())
}

/// Refuses to serve beyond loopback without access control, unless told
/// loudly to.
fn check_exposure(args: &ServeArgs) -> anyhow::Result<()> {
    if args.auth || args.listen.ip().is_loopback() {
        return Ok(());
    }
    if args.insecure_no_auth {
        tracing::warn!(
            listen = %args.listen,
            "INSECURE: serving beyond loopback without --auth: anyone who reaches this port can read, write and delete everything"
        );
        return Ok(());
    }
    anyhow::bail!(
        "refusing to listen on {} without --auth: anyone who reaches that address could read, \
         write and delete everything. Start with --auth (create an admin first: cairn tokens \
         create --name admin --admin, with the same --data or --store), or pass \
         --insecure-no-auth to accept the risk",
        args.listen
    )
}

/// Runs the server until a shutdown signal.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    check_exposure(&args)?;
    // The delivery clock of the embedded engine; on PostgreSQL delivery
    // takes its time from the database.
    let clock = Clock::system();
    if let Some(path) = args.fault_clock_file.clone() {
        tracing::warn!(path = %path.display(), "fault injection: the delivery clock follows a file");
        clock.follow_offset_file(path);
    }
    // Read before the store opens: bad files stop the start at once.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(certificate), Some(key)) => {
            let tls = ServerTls::load(TlsFiles {
                certificate: certificate.clone(),
                key: key.clone(),
            })
            .context("cannot start with TLS")?;
            tracing::info!("TLS: {}", tls.loaded());
            // Registered before listening: SIGHUP's default action ends
            // the process.
            tls.reload_on_hangup()
                .context("cannot watch for SIGHUP (TLS reload)")?;
            Some(tls)
        }
        _ => None,
    };
    let storage = match &args.store {
        Some(url) => {
            if args.unsafe_ack_before_write
                || args.fail_sync_after.is_some()
                || args.fault_clock_file.is_some()
            {
                // On PostgreSQL, delivery takes its time from the database.
                anyhow::bail!("the test-only fault options apply to the embedded store only");
            }
            Storage::Postgres {
                url: url.clone(),
                options: args.postgres.options(),
            }
        }
        None => {
            if args.unsafe_ack_before_write {
                tracing::warn!("UNSAFE: writes are acknowledged before they are durable");
            }
            Storage::Embedded {
                data_dir: args.data.clone(),
                options: EmbeddedOptions {
                    sync_mode: if args.unsafe_ack_before_write {
                        SyncMode::UnsafeAckBeforeWrite
                    } else {
                        SyncMode::Data
                    },
                    fail_sync_after: args.fail_sync_after,
                    ..EmbeddedOptions::default()
                },
            }
        }
    };
    let link_ca_pem = match &args.link_ca_cert {
        Some(file) => Some(std::fs::read(file).with_context(|| {
            format!(
                "cannot read the link CA certificate file {}",
                file.display()
            )
        })?),
        None => None,
    };
    let options = NodeOptions {
        storage,
        blob_bytes_max: args.blob_bytes_max,
        server: ServerConfig {
            fact_canonical_bytes_max: args.fact_bytes_max,
            concurrent_requests_max: args.concurrent_requests_max,
            long_poll_ms_max: args.long_poll_ms_max,
            require_schemas: args.require_schemas,
        },
        clock,
        auth: args.auth,
        link_ca_pem,
    };
    cairn_server::serve(options, args.listen, tls.as_ref(), shutdown_signal()?)
        .await
        .map_err(|error| match error {
            ServeError::Build(error) => anyhow::Error::new(error).context(match &args.store {
                Some(_) => "cannot start on the PostgreSQL store".to_string(),
                None => format!("cannot start on the data in {}", args.data.display()),
            }),
            other => other.into(),
        })
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
