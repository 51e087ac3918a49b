//! `cairn links`: replication links on the receiving deployment through
//! the SDK (create, list, show, pause, resume, delete, repair). The token a link
//! presents to its source is read from a file or an environment variable,
//! never from the command line (where `ps` and shell history would show
//! it), and never printed.

use std::path::PathBuf;

use anyhow::{anyhow, Context as _};
use cairn_api::links::validate_link_name;
use cairn_api::{Deleted, ErrorCode, LinkDefinition, LinkList, RequestBody};

use crate::client::print_pretty;
use crate::connection::{explain, ServerArg};

/// Options of `cairn links`.
#[derive(clap::Args)]
pub struct LinksArgs {
    #[command(subcommand)]
    command: LinksCommand,
}

#[derive(clap::Subcommand)]
enum LinksCommand {
    /// Create a link that follows another deployment's log into this one
    /// (the server of `--server`), or — run again with the same source and
    /// types — rotate the token it presents there.
    Create(CreateArgs),
    /// List the links with their state and lag.
    List {
        /// Print the server's JSON answer instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Print a link: source, types, state, bookmark, lag, last error.
    Show(NameArgs),
    /// Pause a link: it receives nothing until resumed.
    Pause(NameArgs),
    /// Resume a paused link: it catches up from its bookmark.
    Resume(NameArgs),
    /// Delete a link: it stops; the facts it received stay.
    Delete(NameArgs),
    /// Compare the link's source with this deployment for the link's
    /// types (by digests) and fetch what this deployment lacks.
    Repair(NameArgs),
}

#[derive(clap::Args)]
struct NameArgs {
    /// The link's name.
    #[arg(value_parser = parse_name)]
    name: String,
    #[command(flatten)]
    server: ServerArg,
}

#[derive(clap::Args)]
struct CreateArgs {
    /// The link's name: [A-Za-z0-9][A-Za-z0-9_.-]*, up to 128 characters.
    #[arg(value_parser = parse_name)]
    name: String,
    /// The base URL of the source deployment (`http://host:7710`).
    #[arg(long)]
    source: String,
    /// A type pattern of the facts to receive (repeatable; `Shop.*`, `*`).
    #[arg(long = "types", required = true)]
    types: Vec<String>,
    /// Read the access token the link presents to the source from this
    /// file (its first line).
    #[arg(long, conflicts_with = "source_token_env")]
    source_token_file: Option<PathBuf>,
    /// Read the access token the link presents to the source from this
    /// environment variable.
    #[arg(long)]
    source_token_env: Option<String>,
    #[command(flatten)]
    server: ServerArg,
}

fn parse_name(text: &str) -> Result<String, String> {
    validate_link_name(text)?;
    Ok(text.to_string())
}

/// Runs one `cairn links` command.
pub async fn run(args: LinksArgs) -> anyhow::Result<()> {
    match args.command {
        LinksCommand::Create(args) => create(args).await,
        LinksCommand::List { json, server } => list(&server, json).await,
        LinksCommand::Show(args) => {
            let view = args
                .server
                .client()?
                .get_link(&args.name)
                .await
                .map_err(explain)?
                .ok_or_else(|| {
                    anyhow!("{}: no link named {:?}", ErrorCode::UnknownLink, args.name)
                })?;
            print_pretty(&view)
        }
        LinksCommand::Repair(args) => {
            let repaired = args
                .server
                .client()?
                .repair_link(&args.name)
                .await
                .map_err(explain)?;
            print_pretty(&repaired)
        }
        LinksCommand::Pause(args) => pause(args, true).await,
        LinksCommand::Resume(args) => pause(args, false).await,
        LinksCommand::Delete(args) => {
            args.server
                .client()?
                .delete_link(&args.name)
                .await
                .map_err(explain)?;
            print_pretty(&Deleted { deleted: true })
        }
    }
}

async fn pause(args: NameArgs, paused: bool) -> anyhow::Result<()> {
    let view = args
        .server
        .client()?
        .set_link_paused(&args.name, paused)
        .await
        .map_err(explain)?;
    print_pretty(&view)
}

fn read_token(args: &CreateArgs) -> anyhow::Result<Option<String>> {
    if let Some(file) = &args.source_token_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the token file {}", file.display()))?;
        let token = text.lines().next().unwrap_or("").trim().to_string();
        if token.is_empty() {
            return Err(anyhow!("the token file {} is empty", file.display()));
        }
        return Ok(Some(token));
    }
    if let Some(variable) = &args.source_token_env {
        let token = std::env::var(variable)
            .with_context(|| format!("the environment variable {variable} is not set"))?;
        return Ok(Some(token.trim().to_string()));
    }
    Ok(None)
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let definition = LinkDefinition {
        source: args.source.clone(),
        types: args.types.clone(),
        token: read_token(&args)?,
    };
    definition
        .check()
        .map_err(|message| anyhow!("{}: {message}", ErrorCode::InvalidLink))?;
    let view = args
        .server
        .client()?
        .put_link(&args.name, &definition)
        .await
        .map_err(explain)?;
    print_pretty(&view)
}

async fn list(server: &ServerArg, json: bool) -> anyhow::Result<()> {
    let links = server.client()?.list_links().await.map_err(explain)?;
    if json {
        return print_pretty(&LinkList { links });
    }
    println!("NAME  SOURCE  TYPES  STATE  LAG_FACTS  LAG_MS  RECEIVED  LAST_ERROR");
    for link in &links {
        println!(
            "{}  {}  {}  {}  {}  {}  {}  {}",
            link.name,
            link.source,
            link.types.join(","),
            serde_json::to_value(link.state)?.as_str().unwrap_or("-"),
            link.lag_facts,
            link.lag_ms,
            link.facts_received,
            link.last_error.as_deref().unwrap_or("-"),
        );
    }
    Ok(())
}
