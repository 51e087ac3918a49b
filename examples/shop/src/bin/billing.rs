//! The `billing` binary: parses the command line and runs
//! [`cairn_example_shop::billing`] until SIGINT or SIGTERM. For a Cairn
//! started with `--auth`, the service's own access token comes from the
//! environment variable `CAIRN_TOKEN`.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use cairn_client::AccessToken;
use cairn_example_shop::billing::{self, BillingOptions};
use cairn_example_shop::limits::{CAIRN_URL_DEFAULT, ORDERS_URL_DEFAULT};
use cairn_example_shop::process::{init_logging, stop_signal};
use clap::Parser;

/// The shop's billing service: charges each order placed in Cairn once and
/// publishes the payment.
#[derive(Debug, Parser)]
#[command(version)]
struct Arguments {
    /// Cairn's base URL.
    #[arg(long, default_value = CAIRN_URL_DEFAULT)]
    cairn: String,
    /// The orders service's base URL, for payment notices.
    #[arg(long, default_value = ORDERS_URL_DEFAULT)]
    orders: String,
    /// Directory of the service's SQLite database.
    #[arg(long, default_value = "./billing-data")]
    data: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let arguments = Arguments::parse();
    let stop = stop_signal()?;
    let options = BillingOptions {
        cairn_url: arguments.cairn,
        orders_url: arguments.orders,
        data_dir: arguments.data,
        // The service's own identity, for a Cairn started with --auth.
        access_token: AccessToken::from_env(),
    };
    billing::run(options, stop).await?;
    Ok(())
}
