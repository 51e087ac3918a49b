//! `cairn demo` and the hidden `cairn demo-service NAME`: the command-line
//! side of the `cairn-demo` crate. `demo` runs the whole café under faults
//! and exits 1 if an invariant fails; `demo-service` runs one of its
//! services (the demo starts each as a process of this same binary).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cairn_client::AccessToken;
use cairn_demo::limits::LISTEN_DEFAULT;
use cairn_demo::services::{self, ServiceOptions};
use cairn_demo::DemoOptions;

use crate::check::parse_duration;

/// Options of `cairn demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// How long customers order (e.g. `90s`, `2m`; 20 s to 1 h).
    #[arg(long, value_parser = parse_duration, default_value = "2m")]
    duration: Duration,
    /// Seed of the fault schedule and the customers' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where Cairn listens (the console is at http://ADDR/ui/).
    #[arg(long, default_value = LISTEN_DEFAULT)]
    listen: SocketAddr,
    /// Keep Cairn's and the services' data and logs here (default: a new
    /// temporary directory, removed after a run that passes).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Print the fault schedule and stop.
    #[arg(long)]
    schedule_only: bool,
}

/// Options of `cairn demo-service` (started by `cairn demo` only).
#[derive(clap::Args)]
pub struct DemoServiceArgs {
    /// The service: orders, payments, stock, kitchen-1, kitchen-2 or notifications.
    name: String,
    /// Cairn's base URL.
    #[arg(long)]
    cairn: String,
    /// The service's data directory.
    #[arg(long)]
    data: PathBuf,
    /// The card provider's base URL.
    #[arg(long)]
    provider: String,
    /// Croissants in stock at the first start.
    #[arg(long, default_value_t = 10)]
    croissants: i64,
    /// When the croissant delivery comes, in ms since the Unix epoch (0:
    /// as soon as they sell out).
    #[arg(long, default_value_t = 0)]
    restock_at_ms: u64,
}

/// Runs `cairn demo`: exit 0 when every invariant holds, 1 otherwise or
/// on an error.
pub async fn run(args: DemoArgs) -> ExitCode {
    let executable = match std::env::current_exe() {
        Ok(executable) => executable,
        Err(error) => {
            eprintln!("error: cannot find the cairn binary itself: {error}");
            return ExitCode::FAILURE;
        }
    };
    let options = DemoOptions {
        duration: args.duration,
        seed: args.seed,
        listen: args.listen.to_string(),
        data: args.data,
        schedule_only: args.schedule_only,
        executable,
    };
    match cairn_demo::run(options).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one service of the demo until SIGINT, SIGTERM or the end of its
/// standard input.
pub async fn run_service(args: DemoServiceArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let stop = services::stop_signal()?;
    let options = ServiceOptions {
        cairn_url: args.cairn,
        data_dir: args.data,
        provider_url: args.provider,
        // The service's own identity (least privilege), from CAIRN_TOKEN.
        access_token: AccessToken::from_env(),
        croissants: args.croissants,
        restock_at_ms: args.restock_at_ms,
    };
    services::run(&args.name, options, stop).await?;
    Ok(())
}
