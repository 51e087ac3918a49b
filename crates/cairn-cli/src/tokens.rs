//! `cairn tokens`: identities and their access tokens. `create` works
//! offline on a store whose server is not running (`--data DIR` or
//! `--store postgres://…`: how an operator makes the first admin) or over
//! HTTP with an admin token; `list`, `rotate`, `revoke` and `audit` go to a
//! server. Every `create` and `rotate` prints the token as the last line of
//! its standard output, and nothing after it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use cairn_api::{BlobAccess, Pattern, Permissions, TokenCreateRequest, TokenRotateRequest};
use cairn_server::auth::identities::{create_identity, created_detail};
use cairn_store::{
    AuditRecord, EmbeddedOptions, EmbeddedStore, IdentityStore, PostgresOptions, PostgresStore,
    Store,
};

use crate::client::print_pretty;
use crate::connection::{explain, ServerArg};

/// Options of `cairn tokens`.
#[derive(clap::Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    command: TokensCommand,
}

#[derive(clap::Subcommand)]
enum TokensCommand {
    /// Create an identity and print its access token (last line).
    Create(CreateArgs),
    /// List identities: permissions, token dates, last use (never secrets).
    List {
        /// Print the server's JSON answer.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Give an identity a new token; the old ones keep working for the
    /// overlap. Prints the new token (last line).
    Rotate {
        /// The identity.
        name: String,
        /// Seconds the earlier tokens keep working (0: end them now).
        #[arg(long, default_value_t = 3_600)]
        overlap_s: u64,
        /// Seconds until the new token expires.
        #[arg(long)]
        expires_in_s: Option<u64>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Revoke an identity and all its tokens (servers refuse them within a
    /// second).
    Revoke {
        /// The identity.
        name: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Print the audit trail (refusals, token changes, admin actions).
    Audit {
        /// Start after this entry.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        server: ServerArg,
    },
}

/// Options of `cairn tokens create`.
#[derive(clap::Args)]
struct CreateArgs {
    /// The identity's name.
    #[arg(long)]
    name: String,
    /// Every permission.
    #[arg(long)]
    admin: bool,
    /// Fact types it may read (`*` matches any run of characters).
    #[arg(long, value_parser = parse_pattern)]
    read: Vec<Pattern>,
    /// Fact types it may write.
    #[arg(long, value_parser = parse_pattern)]
    write: Vec<Pattern>,
    /// Subscriptions it may consume, create and update.
    #[arg(long, value_parser = parse_pattern)]
    subscribe: Vec<Pattern>,
    /// Blob access: read, or write (which includes read).
    #[arg(long, value_parser = parse_blobs)]
    blobs: Option<BlobAccess>,
    /// May scrape /metrics.
    #[arg(long)]
    metrics: bool,
    /// Seconds until the token expires.
    #[arg(long)]
    expires_in_s: Option<u64>,
    /// Requests per second it may make on each server.
    #[arg(long)]
    rate_per_s: Option<u32>,
    /// Facts per second it may write on each server.
    #[arg(long)]
    write_rate_per_s: Option<u32>,
    /// Offline: the data directory of an embedded store whose server is
    /// not running.
    #[arg(long, conflicts_with = "store")]
    data: Option<PathBuf>,
    /// Offline: a PostgreSQL store (`postgres://…`).
    #[arg(long)]
    store: Option<String>,
    #[command(flatten)]
    server: ServerArg,
}

fn parse_pattern(text: &str) -> Result<Pattern, String> {
    Pattern::parse(text).map_err(|error| error.to_string())
}

fn parse_blobs(text: &str) -> Result<BlobAccess, String> {
    match text {
        "read" => Ok(BlobAccess::Read),
        "write" => Ok(BlobAccess::Write),
        _ => Err("blobs is read or write".to_string()),
    }
}

impl CreateArgs {
    fn request(&self) -> TokenCreateRequest {
        TokenCreateRequest {
            name: self.name.clone(),
            permissions: Permissions {
                read: self.read.clone(),
                write: self.write.clone(),
                subscribe: self.subscribe.clone(),
                blobs: self.blobs,
                metrics: self.metrics,
                admin: self.admin,
            },
            expires_in_s: self.expires_in_s,
            rate_per_s: self.rate_per_s,
            write_rate_per_s: self.write_rate_per_s,
        }
    }
}

/// Runs `cairn tokens`.
pub async fn run(args: TokensArgs) -> anyhow::Result<()> {
    match args.command {
        TokensCommand::Create(create) => {
            let request = create.request();
            let created = if let Some(dir) = &create.data {
                let store = tokio::task::spawn_blocking({
                    let dir = dir.clone();
                    move || EmbeddedStore::open(&dir, EmbeddedOptions::default())
                })
                .await?
                .with_context(|| {
                    format!(
                        "cannot open the store in {} (is its server running? stop it, or \
                         create the token over HTTP with an admin token)",
                        dir.display()
                    )
                })?;
                let store = Arc::new(store);
                let created = create_offline(store.as_ref(), &request).await;
                let closing = Arc::clone(&store);
                tokio::task::spawn_blocking(move || closing.close()).await?;
                created?
            } else if let Some(url) = &create.store {
                let store = PostgresStore::connect(url, PostgresOptions::default())
                    .await
                    .context("cannot open the PostgreSQL store")?;
                let created = create_offline(&store, &request).await;
                store.close();
                created?
            } else {
                let client = create.server.client()?;
                client.create_token(&request).await.map_err(explain)?
            };
            eprintln!(
                "created identity {} (token id {}); the token below is shown once: keep it \
                 in a secret store, and pass it as CAIRN_TOKEN",
                created.name, created.token_id
            );
            println!("{}", created.token);
        }
        TokensCommand::List { json, server } => {
            let identities = server.client()?.list_tokens().await.map_err(explain)?;
            if json {
                print_pretty(&serde_json::json!({ "identities": identities }))?;
            } else {
                println!(
                    "{:<24} {:<8} {:>6} {:<20} PERMISSIONS",
                    "NAME", "TOKENS", "RATE", "LAST USED (ms)"
                );
                for identity in identities {
                    println!(
                        "{:<24} {:<8} {:>6} {:<20} {}",
                        identity.name,
                        identity.tokens.len(),
                        identity
                            .rate_per_s
                            .map_or("-".to_string(), |rate| rate.to_string()),
                        identity
                            .last_used_at_ms
                            .map_or("never".to_string(), |at| at.to_string()),
                        serde_json::to_string(&identity.permissions)?
                    );
                }
            }
        }
        TokensCommand::Rotate {
            name,
            overlap_s,
            expires_in_s,
            server,
        } => {
            let request = TokenRotateRequest {
                overlap_s: Some(overlap_s),
                expires_in_s,
            };
            let created = server
                .client()?
                .rotate_token(&name, &request)
                .await
                .map_err(explain)?;
            eprintln!(
                "new token {} for {name}; earlier tokens keep working for {overlap_s} s",
                created.token_id
            );
            println!("{}", created.token);
        }
        TokensCommand::Revoke { name, server } => {
            server
                .client()?
                .revoke_token(&name)
                .await
                .map_err(explain)?;
            println!("revoked {name}");
        }
        TokensCommand::Audit {
            after,
            limit,
            server,
        } => {
            let page = server
                .client()?
                .audit(after, limit)
                .await
                .map_err(explain)?;
            for entry in page.entries {
                println!("{}", serde_json::to_string(&entry)?);
            }
        }
    }
    Ok(())
}

/// Creates the identity in `store` directly, and records it in the audit
/// trail as made offline.
async fn create_offline<S: IdentityStore + Store>(
    store: &S,
    request: &TokenCreateRequest,
) -> anyhow::Result<cairn_api::TokenCreated> {
    let created = create_identity(store, request)
        .await
        .map_err(|error| anyhow::anyhow!("{}: {}", error.code.as_str(), error.message))?;
    let record = AuditRecord {
        seq: 0,
        at_ms: cairn_server::auth::unix_ms(),
        identity: "-".to_string(),
        method: "-".to_string(),
        route: "cairn tokens create (offline)".to_string(),
        outcome: "created".to_string(),
        status: 201,
        count: 1,
        detail: created_detail(request, &created),
    };
    store
        .append_audit(vec![record])
        .await
        .context("cannot write the audit trail")?;
    Ok(created)
}
