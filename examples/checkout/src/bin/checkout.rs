//! The `checkout` binary, one process per role: `checkout runner` (the
//! saga runner), `checkout service stock|payment|shipping` (the
//! downstream services), `checkout place` (starts a checkout) and
//! `checkout bench` (saga throughput). For a Cairn started with `--auth`,
//! each process's own access token comes from `CAIRN_TOKEN`.
//!
//! `CHECKOUT_CRASH_AT=<boundary label>` makes the runner kill itself with
//! SIGKILL the first time it reaches that boundary (see
//! `cairn_client::saga::SagaBoundary::label`): the crash-loop test's fault
//! hook.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cairn_client::{AccessToken, Client, ClientOptions, SagaRunner, SagaRunnerOptions};
use cairn_example_checkout::limits::{
    CAIRN_URL_DEFAULT, SAGA_NAME, SAGA_VERSION, SHIPPING_TIMEOUT_MS_DEFAULT,
};
use cairn_example_checkout::saga::{self, Checkout};
use cairn_example_checkout::services::{self, ServiceKind};
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// A checkout saga across separate processes.
#[derive(Debug, Parser)]
#[command(version)]
struct Arguments {
    /// Cairn's base URL.
    #[arg(long, global = true, default_value = CAIRN_URL_DEFAULT)]
    cairn: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run the saga runner.
    Runner {
        /// How long shipping gets to answer one booking.
        #[arg(long, default_value_t = SHIPPING_TIMEOUT_MS_DEFAULT)]
        shipping_timeout_ms: u64,
        /// Lease of the runner's deliveries: how soon a restarted runner
        /// takes over the sagas of one that died.
        #[arg(long, default_value_t = 5_000)]
        lease_ms: u64,
        /// Sagas driven at once at most.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Run a downstream service.
    Service {
        /// Which one.
        #[arg(value_enum)]
        kind: ServiceKind,
        /// The file of the service's applied effects (JSON lines).
        #[arg(long)]
        effects: PathBuf,
    },
    /// Start a checkout; prints the saga's id.
    Place {
        /// The order's id (placing it again is the same saga).
        #[arg(long)]
        order: String,
        /// The card number (ending in 0002: declined).
        #[arg(long, default_value = "4242424242424242")]
        card: String,
        /// Where to ship (`nowhere`: shipping never answers; `flaky`:
        /// answered on the second booking).
        #[arg(long, default_value = "1 Main Street")]
        address: String,
        /// The amount.
        #[arg(long, default_value_t = 1_250)]
        amount_cents: u64,
    },
    /// Start `--sagas` good checkouts and measure how many complete per
    /// second (a runner and the services must be running).
    Bench {
        /// Checkouts.
        #[arg(long, default_value_t = 200)]
        sagas: usize,
        /// Longest wait for all of them.
        #[arg(long, default_value_t = 300)]
        timeout_s: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let arguments = Arguments::parse();
    let client = Client::remote(ClientOptions {
        access_token: AccessToken::from_env(),
        ..ClientOptions::new([arguments.cairn.as_str()])
    })?;
    match arguments.command {
        Command::Runner {
            shipping_timeout_ms,
            lease_ms,
            concurrency,
        } => {
            let shutdown = stop_on_signal()?;
            let crash_at = std::env::var("CHECKOUT_CRASH_AT").ok();
            let definition = saga::definition(&client, Duration::from_millis(shipping_timeout_ms));
            SagaRunner::new(client)
                .saga(definition)
                .options(SagaRunnerOptions {
                    concurrency,
                    lease_ms,
                })
                .on_boundary(move |boundary| {
                    let label = boundary.label();
                    tracing::debug!(saga = %boundary.saga, "boundary {label}");
                    if crash_at.as_deref() == Some(label.as_str()) {
                        eprintln!("CHECKOUT_CRASH_AT={label}: killing myself");
                        kill_self();
                    }
                })
                .run(shutdown)
                .await?;
        }
        Command::Service { kind, effects } => {
            let shutdown = stop_on_signal()?;
            services::run(client, kind, &effects, shutdown).await?;
        }
        Command::Place {
            order,
            card,
            address,
            amount_cents,
        } => {
            let checkout = Checkout {
                order: order.clone(),
                items: serde_json::json!({"tea": 2}),
                card,
                amount_cents,
                address,
            };
            let id = place(&client, &checkout).await?;
            println!("{id}");
        }
        Command::Bench { sagas, timeout_s } => bench(&client, sagas, timeout_s).await?,
    }
    Ok(())
}

/// Starts a checkout saga; its id.
async fn place(client: &Client, checkout: &Checkout) -> anyhow::Result<cairn_client::Hash> {
    Ok(client
        .sagas()
        .start(
            SAGA_NAME,
            SAGA_VERSION,
            checkout.order.clone(),
            serde_json::to_value(checkout)?,
        )
        .await?)
}

/// Starts `sagas_n` good checkouts at once and waits until each is
/// completed; prints the rate.
async fn bench(client: &Client, sagas_n: usize, timeout_s: u64) -> anyhow::Result<()> {
    let run_id = cairn_client::unique_id()?;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(sagas_n);
    for index in 0..sagas_n {
        let checkout = Checkout {
            order: format!("bench-{run_id}-{index}"),
            items: serde_json::json!({"tea": 1}),
            card: "4242424242424242".to_string(),
            amount_cents: 100,
            address: "1 Main Street".to_string(),
        };
        ids.push(place(client, &checkout).await?);
    }
    let placed_s = started.elapsed().as_secs_f64();
    let deadline = started + Duration::from_secs(timeout_s);
    for id in &ids {
        loop {
            let state = client.sagas().journal(id).await?.state();
            if state.is_terminal() {
                anyhow::ensure!(
                    state == cairn_client::SagaState::Completed,
                    "saga {id} ended {}",
                    state.as_str()
                );
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the sagas did not complete in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    println!(
        "{sagas_n} three-step sagas completed in {elapsed_s:.2} s ({:.1} sagas/s; starting them took {placed_s:.2} s)",
        sagas_n as f64 / elapsed_s
    );
    Ok(())
}

/// A token cancelled at the first SIGINT or SIGTERM.
fn stop_on_signal() -> anyhow::Result<CancellationToken> {
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("stop signal received: stopping");
        cancel.cancel();
    });
    Ok(token)
}

/// Ends this process with SIGKILL, as a crash would: no destructor, no
/// flush, no ack.
fn kill_self() -> ! {
    // SAFETY: `kill` with our own pid and SIGKILL only signals this
    // process; it touches no memory.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    // SIGKILL is delivered before `kill` returns to a process that
    // signals itself; this is not reached.
    std::process::abort()
}
