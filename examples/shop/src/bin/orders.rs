//! The `orders` binary: parses the command line and runs
//! [`cairn_example_shop::orders`] until SIGINT or SIGTERM. For a Cairn
//! started with `--auth`, the service's own access token comes from the
//! environment variable `CAIRN_TOKEN`.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use cairn_client::AccessToken;
use cairn_example_shop::limits::{CAIRN_URL_DEFAULT, ORDERS_LISTEN_DEFAULT};
use cairn_example_shop::orders::{self, OrdersOptions};
use cairn_example_shop::process::{init_logging, stop_signal};
use clap::Parser;

/// The shop's orders service: takes orders over HTTP and publishes them to
/// Cairn through a transactional outbox.
#[derive(Debug, Parser)]
#[command(version)]
struct Arguments {
    /// Address of the HTTP API (keep it on loopback).
    #[arg(long, default_value = ORDERS_LISTEN_DEFAULT)]
    listen: SocketAddr,
    /// Cairn's base URL.
    #[arg(long, default_value = CAIRN_URL_DEFAULT)]
    cairn: String,
    /// Directory of the service's SQLite database.
    #[arg(long, default_value = "./orders-data")]
    data: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let arguments = Arguments::parse();
    let stop = stop_signal()?;
    let options = OrdersOptions {
        listen: arguments.listen,
        cairn_url: arguments.cairn,
        data_dir: arguments.data,
        // The service's own identity, for a Cairn started with --auth.
        access_token: AccessToken::from_env(),
    };
    orders::run(options, stop).await?;
    Ok(())
}
