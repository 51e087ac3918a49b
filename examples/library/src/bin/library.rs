//! `library`: runs the loans service against a Cairn server (`--cairn`)
//! or an embedded store (`--data`), either until Ctrl-C (`serve`) or
//! through a scripted demo of lending, returning and reminding (`demo`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cairn_client::{Client, ClientOptions};
use cairn_example_library::{Book, Library, Member, ReminderSent};
use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use time::OffsetDateTime;

/// How long the demo waits for the relay to publish a loan or a return.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// The library loans service.
#[derive(Parser)]
struct Arguments {
    /// The Cairn server's URL.
    #[arg(long, default_value = "http://127.0.0.1:7710")]
    cairn: String,
    /// Runs an embedded Cairn store in this directory instead of using a server.
    #[arg(long, conflicts_with = "cairn")]
    data: Option<PathBuf>,
    /// The service's own SQLite database (loans, reminders, outbox, inbox).
    #[arg(long, default_value = "library.sqlite")]
    database: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the service until Ctrl-C.
    Serve,
    /// Runs the service and a scripted scenario, then stops.
    Demo {
        /// Loan period of the demo's loans, in seconds.
        #[arg(long, default_value_t = 2)]
        loan_period_s: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let arguments = Arguments::parse();
    let client = match &arguments.data {
        Some(data) => Client::embedded(data).await?,
        None => Client::remote(ClientOptions::new([arguments.cairn]))?,
    };
    let database_options = SqliteConnectOptions::new()
        .filename(&arguments.database)
        .create_if_missing(true);
    let database = SqlitePool::connect_with(database_options).await?;
    let (library, service) = Library::start(client.clone(), database).await?;
    match arguments.command {
        Command::Serve => {
            let ctrl_c = async { tokio::signal::ctrl_c().await.unwrap_or_default() };
            service.run_until(ctrl_c).await?;
        }
        Command::Demo { loan_period_s } => {
            // The demo is the service's stop signal: it stops when the demo ends.
            let mut demo_result = Ok(());
            let period = Duration::from_secs(loan_period_s);
            let demo = async { demo_result = demo(&library, period).await };
            service.run_until(demo).await?;
            demo_result?;
        }
    }
    client.close().await;
    Ok(())
}

/// Adds a book and a member, asks, borrows, asks, returns, asks, then lets
/// a loan fall overdue and waits for its reminder.
async fn demo(library: &Library, loan_period: Duration) -> anyhow::Result<()> {
    let book = Book {
        isbn: "978-0-13-110362-7".into(),
        title: "The C Programming Language".into(),
    };
    let book = library.add_book(&book).await?;
    let member = library.add_member(&Member { name: "Ada".into() }).await?;
    println!(
        "available before any loan: {}",
        library.is_available(book).await?
    );
    let due_at = OffsetDateTime::now_utc() + loan_period;
    let loan = library.borrow(book, member, due_at).await?;
    library
        .client()
        .wait_for_fact(&loan, PUBLISH_TIMEOUT)
        .await?;
    println!("borrowed: {loan}");
    println!(
        "available while lent: {}",
        library.is_available(book).await?
    );
    let returned = library.return_book(loan).await?;
    library
        .client()
        .wait_for_fact(&returned, PUBLISH_TIMEOUT)
        .await?;
    println!(
        "available after the return: {}",
        library.is_available(book).await?
    );

    let overdue = library
        .borrow(book, member, OffsetDateTime::now_utc() + loan_period)
        .await?;
    println!("borrowed again, due in {loan_period:?}: {overdue}; waiting for its reminder");
    let mut reminders = library
        .client()
        .successors::<ReminderSent>(&overdue)
        .follow()
        .boxed();
    let reminder = tokio::time::timeout(loan_period + PUBLISH_TIMEOUT, reminders.next())
        .await
        .context("no reminder in time")?
        .context("the reminders stream ended")??;
    println!("reminder sent for the overdue loan: {}", reminder.hash);
    Ok(())
}
