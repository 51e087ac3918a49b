//! `cairn schemas`: schemas per fact type and version through the SDK
//! (register, list, show). A registration body is read from a file or
//! standard input and checked here for its shape (what the server would
//! refuse as `invalid_schema` anyway) before anything is sent; whether it
//! is a valid JSON Schema and compatible with the earlier versions is the
//! server's to judge, and a refusal prints each breaking change (see
//! `connection::explain`).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use cairn_api::schemas::parse_version;
use cairn_api::{ErrorCode, RequestBody, SchemaRegistration, SchemaTypes};

use crate::client::{print_pretty, read_input};
use crate::connection::{explain, ServerArg};

/// Options of `cairn schemas`.
#[derive(clap::Args)]
pub struct SchemasArgs {
    #[command(subcommand)]
    command: SchemasCommand,
}

#[derive(clap::Subcommand)]
enum SchemasCommand {
    /// Register a version of a fact type's schema (admin) from a JSON
    /// registration body: `{"schema": …, "compatibility": "backward",
    /// "upcast": […], "predecessors": {…}}`. Registering the same body
    /// again changes nothing.
    Register(RegisterArgs),
    /// List the types that have schemas, or the versions of one type.
    List {
        /// Only this type's versions.
        #[arg(value_name = "TYPE")]
        type_name: Option<String>,
        /// Print the server's JSON answer instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Print one version's registration as JSON.
    Show {
        /// The fact type.
        #[arg(value_name = "TYPE")]
        type_name: String,
        /// The version, from 1.
        #[arg(value_parser = parse_version_arg)]
        version: u32,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(clap::Args)]
struct RegisterArgs {
    /// The fact type, e.g. `Shop.Order`.
    #[arg(value_name = "TYPE")]
    type_name: String,
    /// The version, from 1; each new version follows the latest one.
    #[arg(value_parser = parse_version_arg)]
    version: u32,
    /// The registration body (JSON); `-` reads standard input.
    file: PathBuf,
    #[command(flatten)]
    server: ServerArg,
}

fn parse_version_arg(text: &str) -> Result<u32, String> {
    parse_version(text)
}

/// Runs one `cairn schemas` command.
pub async fn run(args: SchemasArgs) -> anyhow::Result<()> {
    match args.command {
        SchemasCommand::Register(args) => register(args).await,
        SchemasCommand::List {
            type_name,
            json,
            server,
        } => list(&server, type_name.as_deref(), json).await,
        SchemasCommand::Show {
            type_name,
            version,
            server,
        } => {
            let view = server
                .client()?
                .schema(&type_name, version)
                .await
                .map_err(explain)?
                .ok_or_else(|| {
                    anyhow!(
                        "{}: {type_name} has no schema version {version}",
                        ErrorCode::UnknownSchema
                    )
                })?;
            print_pretty(&view)
        }
    }
}

/// Reads and checks the registration body of `file`.
fn read_registration(file: &Path) -> anyhow::Result<SchemaRegistration> {
    let bytes = read_input(Some(file))?;
    let source = if file.as_os_str() == "-" {
        "standard input".to_string()
    } else {
        file.display().to_string()
    };
    let registration: SchemaRegistration = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{}: {source} is not a schema registration (a JSON object with `schema` and \
             `compatibility`, and optionally `upcast` and `predecessors`)",
            ErrorCode::InvalidSchema
        )
    })?;
    registration
        .check()
        .map_err(|message| anyhow!("{}: {source}: {message}", ErrorCode::InvalidSchema))?;
    Ok(registration)
}

async fn register(args: RegisterArgs) -> anyhow::Result<()> {
    let registration = read_registration(&args.file)?;
    let view = args
        .server
        .client()?
        .register_schema(&args.type_name, args.version, &registration)
        .await
        .map_err(explain)?;
    print_pretty(&view)
}

async fn list(server: &ServerArg, type_name: Option<&str>, json: bool) -> anyhow::Result<()> {
    let client = server.client()?;
    let types = match type_name {
        Some(type_name) => vec![client
            .schemas(type_name)
            .await
            .map_err(explain)?
            .ok_or_else(|| anyhow!("{}: {type_name} has no schema", ErrorCode::UnknownSchema))?],
        None => client.schema_types().await.map_err(explain)?,
    };
    if json {
        return match (type_name, types.as_slice()) {
            (Some(_), [list]) => print_pretty(list),
            _ => print_pretty(&SchemaTypes { types }),
        };
    }
    println!("TYPE  VERSION  COMPATIBILITY  HASH");
    for list in &types {
        for version in &list.versions {
            println!(
                "{}  {}  {}  {}",
                list.type_name,
                version.version,
                version.compatibility.as_str(),
                version.hash
            );
        }
    }
    Ok(())
}
