//! `cairn timers`: durable timers on a server through the SDK (set, list,
//! show, delete). The name and the body's shape are checked here, before
//! anything is sent; the schedule and the template are the server's to
//! judge, and its error code and message are reported.

use std::path::PathBuf;

use anyhow::{anyhow, Context as _};
use cairn_api::timers::validate_timer_name;
use cairn_api::{CatchUp, Deleted, ErrorCode, RequestBody, TimerDefinition, TimerList};

use crate::client::{print_pretty, read_input};
use crate::connection::{explain, ServerArg};

/// Options of `cairn timers`.
#[derive(clap::Args)]
pub struct TimersArgs {
    #[command(subcommand)]
    command: TimersCommand,
}

#[derive(clap::Subcommand)]
enum TimersCommand {
    /// Create or replace a timer that writes a fact at `--at` or at every
    /// occurrence of `--cron` in `--timezone`.
    Set(SetArgs),
    /// List the timers with their next and last occurrences.
    List {
        /// Print the server's JSON answer instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Print a timer's definition, next due and last fired occurrence.
    Show(NameArgs),
    /// Delete a timer: it never fires again.
    Delete(NameArgs),
}

#[derive(clap::Args)]
struct NameArgs {
    /// The timer's name.
    #[arg(value_parser = parse_name)]
    name: String,
    #[command(flatten)]
    server: ServerArg,
}

/// Which missed occurrences fire after downtime.
#[derive(clap::ValueEnum, Clone, Copy)]
enum CatchUpArg {
    /// Every one, oldest first.
    All,
    /// Only the most recent (the default).
    Latest,
    /// None.
    None,
}

#[derive(clap::Args)]
struct SetArgs {
    /// The timer's name: [A-Za-z0-9][A-Za-z0-9_.-]*, up to 128 characters.
    #[arg(value_parser = parse_name)]
    name: String,
    /// Fire once at this RFC 3339 instant (`2026-03-29T02:30:00+02:00`).
    #[arg(long, conflicts_with_all = ["cron", "timezone"], required_unless_present = "cron")]
    at: Option<String>,
    /// Fire at every occurrence of this 5-field cron expression.
    #[arg(long, requires = "timezone")]
    cron: Option<String>,
    /// The IANA zone of `--cron` (`Europe/Berlin`, `UTC`).
    #[arg(long, requires = "cron")]
    timezone: Option<String>,
    /// File holding the template fact (`type`, `fields`, `predecessors`);
    /// `-` reads standard input.
    #[arg(long)]
    fact: PathBuf,
    /// Which occurrences missed while no server ran fire (default latest).
    #[arg(long, value_enum)]
    catch_up: Option<CatchUpArg>,
    #[command(flatten)]
    server: ServerArg,
}

fn parse_name(text: &str) -> Result<String, String> {
    validate_timer_name(text)?;
    Ok(text.to_string())
}

/// Runs one `cairn timers` command.
pub async fn run(args: TimersArgs) -> anyhow::Result<()> {
    match args.command {
        TimersCommand::Set(args) => set(args).await,
        TimersCommand::List { json, server } => list(&server, json).await,
        TimersCommand::Show(args) => {
            let view = args
                .server
                .client()?
                .get_timer(&args.name)
                .await
                .map_err(explain)?
                .ok_or_else(|| {
                    anyhow!(
                        "{}: no timer named {:?}",
                        ErrorCode::UnknownTimer,
                        args.name
                    )
                })?;
            print_pretty(&view)
        }
        TimersCommand::Delete(args) => {
            args.server
                .client()?
                .delete_timer(&args.name)
                .await
                .map_err(explain)?;
            print_pretty(&Deleted { deleted: true })
        }
    }
}

async fn set(args: SetArgs) -> anyhow::Result<()> {
    let bytes = read_input(Some(&args.fact))?;
    let fact: serde_json::Value =
        serde_json::from_slice(&bytes).context("the template fact is not JSON")?;
    let definition = TimerDefinition {
        at: args.at,
        cron: args.cron,
        timezone: args.timezone,
        fact,
        catch_up: args.catch_up.map(|policy| match policy {
            CatchUpArg::All => CatchUp::All,
            CatchUpArg::Latest => CatchUp::Latest,
            CatchUpArg::None => CatchUp::None,
        }),
    };
    definition
        .check()
        .map_err(|message| anyhow!("{}: {message}", ErrorCode::InvalidTimer))?;
    let view = args
        .server
        .client()?
        .put_timer(&args.name, &definition)
        .await
        .map_err(explain)?;
    print_pretty(&view)
}

async fn list(server: &ServerArg, json: bool) -> anyhow::Result<()> {
    let timers = server.client()?.list_timers().await.map_err(explain)?;
    if json {
        return print_pretty(&TimerList { timers, next: None });
    }
    println!("NAME  SCHEDULE  TYPE  NEXT_DUE  LAST_FIRED  LAST_ERROR");
    for timer in &timers {
        let schedule = match (&timer.definition.at, &timer.definition.cron) {
            (Some(at), _) => format!("at {at}"),
            (_, Some(cron)) => format!(
                "cron '{cron}' {}",
                timer.definition.timezone.as_deref().unwrap_or("")
            ),
            _ => "-".into(),
        };
        println!(
            "{}  {}  {}  {}  {}  {}",
            timer.name,
            schedule,
            timer.definition.type_name().unwrap_or("-"),
            timer.next_due.as_deref().unwrap_or("-"),
            timer.last_fired.as_deref().unwrap_or("-"),
            timer.last_error.as_deref().unwrap_or("-"),
        );
    }
    Ok(())
}
