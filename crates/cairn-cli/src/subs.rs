//! `cairn subs`: manage and inspect subscriptions on a server through the
//! SDK (list, show, create, delete, pause, resume, dead letters, replay,
//! discard, pull). Arguments that can be checked here (names, hashes, the
//! definition's ranges) are checked before anything is sent, so a typo gets
//! a clear message instead of a request to the wrong path; everything else
//! is the server's to judge, and its error code and message are reported.

use std::io::Write as _;

use anyhow::{anyhow, bail};
use cairn_api::limits::{
    ACK_TOKENS_MAX, DEAD_LETTERS_LIMIT_DEFAULT, DEAD_LETTERS_LIMIT_MAX, PULL_MESSAGES_MAX,
    WAIT_MS_MAX,
};
use cairn_api::{
    BackoffDefinition, DeadLetterQuery, Deleted, Discarded, ErrorCode, PredecessorSelector, Start,
    SubscriptionDefinition, SubscriptionList, TokenStatus,
};
use cairn_client::{ApplyOutcome, GenerationPrecondition, PullOptions, ReplaySelection};
use cairn_delivery::validate_subscription_name;
use cairn_fact::{validate_role, Hash};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::client::{parse_hash, print_pretty};
use crate::connection::{explain, ServerArg};

/// Characters of a dead letter's `last_error` shown in the table; the full
/// text is in the `--json` output.
const LAST_ERROR_SHOWN_CHARS_MAX: usize = 60;

/// Options of `cairn subs`.
#[derive(clap::Args)]
pub struct SubsArgs {
    #[command(subcommand)]
    command: SubsCommand,
}

#[derive(clap::Subcommand)]
enum SubsCommand {
    /// List every subscription with its counters.
    List {
        /// Print the server's JSON answer instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Print a subscription's definition and counters.
    Show(NameArgs),
    /// Create a subscription, confirm that it exists with the same definition, or
    /// update what may change of it (lease, attempts, backoff, rate and key limits).
    Create(CreateArgs),
    /// Delete a subscription.
    Delete(NameArgs),
    /// Stop delivering messages (pulls answer empty lists).
    Pause(NameArgs),
    /// Deliver messages again after a pause.
    Resume(NameArgs),
    /// List dead letters in seq order.
    Dead(DeadArgs),
    /// Deliver dead letters again with fresh attempts: the given ones, or all.
    Replay {
        /// The subscription's name.
        #[arg(value_parser = parse_name)]
        name: String,
        /// Hashes of the dead letters to replay; none replays every one.
        #[arg(value_parser = parse_hash)]
        hashes: Vec<Hash>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Discard a dead letter (it stays recorded, listed with `dead --discarded`).
    Discard {
        /// The subscription's name.
        #[arg(value_parser = parse_name)]
        name: String,
        /// The dead letter's hash.
        #[arg(value_parser = parse_hash)]
        hash: Hash,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Lease messages and print them as JSON lines.
    Pull(PullArgs),
}

/// Where a new subscription starts in the log.
#[derive(clap::ValueEnum, Clone, Copy)]
enum StartArg {
    /// Every matching fact already stored is a message.
    Beginning,
    /// Only facts stored after creation.
    Now,
}

impl StartArg {
    fn start(self) -> Start {
        match self {
            StartArg::Beginning => Start::Beginning,
            StartArg::Now => Start::Now,
        }
    }
}

/// A command that takes only a subscription's name.
#[derive(clap::Args)]
struct NameArgs {
    /// The subscription's name.
    #[arg(value_parser = parse_name)]
    name: String,
    #[command(flatten)]
    server: ServerArg,
}

/// Options of `cairn subs create`; omitted ones take the server's defaults.
#[derive(clap::Args)]
struct CreateArgs {
    /// The subscription's name: [A-Za-z0-9][A-Za-z0-9_.-]*, up to 128 characters.
    #[arg(value_parser = parse_name)]
    name: String,
    /// The fact type selected.
    #[arg(long = "type", value_name = "TYPE")]
    type_name: String,
    /// Only successors of this fact in this role.
    #[arg(long, value_name = "ROLE=HASH", value_parser = parse_predecessor)]
    predecessor: Option<PredecessorSelector>,
    /// Start with every stored matching fact, or only with facts stored from now on.
    #[arg(long, value_enum)]
    start: Option<StartArg>,
    /// How long a pulled message stays leased (default 30000).
    #[arg(long)]
    lease_ms: Option<u64>,
    /// Deliveries of one message before it becomes a dead letter (default 5).
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Delay ceiling after the first failed attempt (default 200).
    #[arg(long)]
    backoff_initial_ms: Option<u64>,
    /// Largest delay between attempts (default 60000).
    #[arg(long)]
    backoff_max_ms: Option<u64>,
    /// Predecessor role whose hash orders delivery: one key's messages go one at a time.
    #[arg(long, value_name = "ROLE")]
    ordering_key: Option<String>,
    /// Messages of one key leased at once (needs --ordering-key; default 1).
    #[arg(long)]
    max_in_flight_per_key: Option<u32>,
    /// Messages delivered per second at most.
    #[arg(long)]
    rate_limit_per_s: Option<u32>,
    /// Deliver facts of older schema versions upcast to this version.
    #[arg(long)]
    as_version: Option<u32>,
    /// Only if the subscription exists at this generation (If-Match), so
    /// that a definition another deploy changed meanwhile is not
    /// overwritten unseen.
    #[arg(long)]
    if_generation: Option<u64>,
    #[command(flatten)]
    server: ServerArg,
}

/// Options of `cairn subs dead`.
#[derive(clap::Args)]
struct DeadArgs {
    /// The subscription's name.
    #[arg(value_parser = parse_name)]
    name: String,
    /// At most this many dead letters (server default 100).
    #[arg(long, value_parser = clap::value_parser!(u32)
        .range(1..=DEAD_LETTERS_LIMIT_MAX as i64))]
    limit: Option<u32>,
    /// Only dead letters after this seq (for paging).
    #[arg(long)]
    after: Option<u64>,
    /// List the discarded dead letters instead.
    #[arg(long)]
    discarded: bool,
    /// Print the server's JSON answer instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArg,
}

/// Options of `cairn subs pull`.
#[derive(clap::Args)]
struct PullArgs {
    /// The subscription's name.
    #[arg(value_parser = parse_name)]
    name: String,
    /// At most this many messages.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32)
        .range(1..=PULL_MESSAGES_MAX as i64))]
    max: u32,
    /// Wait up to this many milliseconds for a first message.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64)
        .range(0..=WAIT_MS_MAX))]
    wait_ms: u64,
    /// Acknowledge the messages after printing them.
    #[arg(long)]
    ack: bool,
    #[command(flatten)]
    server: ServerArg,
}

fn parse_name(text: &str) -> Result<String, String> {
    validate_subscription_name(text)?;
    Ok(text.to_string())
}

/// `--predecessor ROLE=HASH`.
fn parse_predecessor(text: &str) -> Result<PredecessorSelector, String> {
    let (role, hash) = text
        .split_once('=')
        .ok_or_else(|| "expected ROLE=HASH".to_string())?;
    validate_role(role).map_err(|error| error.to_string())?;
    Ok(PredecessorSelector {
        role: role.to_string(),
        hash: parse_hash(hash)?,
    })
}

/// Runs one `cairn subs` command.
pub async fn run(args: SubsArgs) -> anyhow::Result<()> {
    match args.command {
        SubsCommand::List { json, server } => list(&server, json).await,
        SubsCommand::Show(args) => show(&args).await,
        SubsCommand::Create(args) => create(&args).await,
        SubsCommand::Delete(args) => delete(&args).await,
        SubsCommand::Pause(args) => {
            let view = args.server.client()?.pause(&args.name).await;
            print_pretty(&view.map_err(explain)?)
        }
        SubsCommand::Resume(args) => {
            let view = args.server.client()?.resume(&args.name).await;
            print_pretty(&view.map_err(explain)?)
        }
        SubsCommand::Dead(args) => dead(&args).await,
        SubsCommand::Replay {
            name,
            hashes,
            server,
        } => replay(&server, &name, hashes).await,
        SubsCommand::Discard { name, hash, server } => {
            let client = server.client()?;
            client
                .discard_dead_letter(&name, &hash)
                .await
                .map_err(explain)?;
            print_pretty(&Discarded { discarded: true })
        }
        SubsCommand::Pull(args) => pull(&args).await,
    }
}

/// `cairn subs show`: the SDK answers "none" for an unknown name, which is
/// reported with the server's code.
async fn show(args: &NameArgs) -> anyhow::Result<()> {
    let view = args
        .server
        .client()?
        .subscription(&args.name)
        .await
        .map_err(explain)?
        .ok_or_else(|| {
            anyhow!(
                "{}: no subscription named {:?}",
                ErrorCode::UnknownSubscription,
                args.name
            )
        })?;
    print_pretty(&view)
}

/// `cairn subs delete`: prints the server's answer, `{"deleted": true}`.
async fn delete(args: &NameArgs) -> anyhow::Result<()> {
    let client = args.server.client()?;
    client
        .delete_subscription(&args.name)
        .await
        .map_err(explain)?;
    print_pretty(&Deleted { deleted: true })
}

/// At most `chars_max` characters on one line, `…` marking a cut.
fn shorten(text: &str, chars_max: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= chars_max {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(chars_max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Prints left-aligned columns separated by two spaces.
fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|header| header.chars().count())
        .collect();
    for row in rows {
        for (width, text) in widths.iter_mut().zip(row) {
            *width = (*width).max(text.chars().count());
        }
    }
    let header_row: Vec<String> = headers.iter().map(|header| header.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header_row).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(text, width)| format!("{text:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    print!("{out}");
}

/// `cairn subs list`.
async fn list(server: &ServerArg, json: bool) -> anyhow::Result<()> {
    let subscriptions = server.client()?.subscriptions().await.map_err(explain)?;
    if json {
        return print_pretty(&SubscriptionList { subscriptions });
    }
    let rows: Vec<Vec<String>> = subscriptions
        .iter()
        .map(|view| {
            vec![
                view.name.clone(),
                view.definition.type_name.clone(),
                view.generation.to_string(),
                view.paused.to_string(),
                view.backlog.to_string(),
                view.in_flight.to_string(),
                view.delivered.to_string(),
                view.acked.to_string(),
                view.dead.to_string(),
                view.oldest_unacked_age_ms.to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "name",
            "type",
            "generation",
            "paused",
            "backlog",
            "in_flight",
            "delivered",
            "acked",
            "dead",
            "oldest_unacked_age_ms",
        ],
        &rows,
    );
    Ok(())
}

/// The definition of `cairn subs create`: only the options given, so the
/// server fills in its own defaults.
fn definition(args: &CreateArgs) -> SubscriptionDefinition {
    let backoff = BackoffDefinition {
        initial_ms: args.backoff_initial_ms,
        max_ms: args.backoff_max_ms,
    };
    SubscriptionDefinition {
        type_name: args.type_name.clone(),
        predecessor: args.predecessor.clone(),
        start: args.start.map(StartArg::start),
        lease_ms: args.lease_ms,
        max_attempts: args.max_attempts,
        backoff: (backoff != BackoffDefinition::default()).then_some(backoff),
        ordering_key: args.ordering_key.clone(),
        max_in_flight_per_key: args.max_in_flight_per_key,
        rate_limit_per_s: args.rate_limit_per_s,
        as_version: args.as_version,
    }
}

/// `cairn subs create`: checks the definition with the same rules as the
/// server, then sends it.
async fn create(args: &CreateArgs) -> anyhow::Result<()> {
    let definition = definition(args);
    cairn_delivery::SubscriptionDefinition::from_json(&serde_json::to_vec(&definition)?)
        .map_err(|error| anyhow!("invalid definition: {error}"))?;
    let client = args.server.client()?;
    let applied = match args.if_generation {
        Some(generation) => {
            client
                .apply_subscription_if(
                    &args.name,
                    &definition,
                    GenerationPrecondition::Generation(generation),
                )
                .await
        }
        None => client.apply_subscription(&args.name, &definition).await,
    }
    .map_err(explain)?;
    match applied.outcome {
        ApplyOutcome::Created => println!("created"),
        ApplyOutcome::Updated => println!("updated to generation {}", applied.generation()),
        ApplyOutcome::Unchanged => println!("exists (same definition)"),
    }
    print_pretty(&applied.view)
}

/// RFC 3339 text of a time in milliseconds since the Unix epoch.
fn rfc3339_from_ms(time_ms: u64) -> Option<String> {
    let nanoseconds = i128::from(time_ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanoseconds)
        .ok()?
        .format(&Rfc3339)
        .ok()
}

/// `cairn subs dead`.
async fn dead(args: &DeadArgs) -> anyhow::Result<()> {
    let query = DeadLetterQuery {
        limit: args.limit,
        after: args.after,
        discarded: args.discarded,
    };
    let page = args
        .server
        .client()?
        .dead_letters(&args.name, query)
        .await
        .map_err(explain)?;
    if args.json {
        return print_pretty(&page);
    }
    let rows: Vec<Vec<String>> = page
        .messages
        .iter()
        .map(|message| {
            let dead_at = match message.dead_at_ms {
                0 => None,
                time_ms => rfc3339_from_ms(time_ms),
            };
            vec![
                message.seq.to_string(),
                message.hash.to_hex(),
                message.attempts.to_string(),
                dead_at.unwrap_or_else(|| "-".to_string()),
                shorten(
                    message.last_error.as_deref().unwrap_or("-"),
                    LAST_ERROR_SHOWN_CHARS_MAX,
                ),
            ]
        })
        .collect();
    print_table(&["seq", "hash", "attempts", "dead_at", "last_error"], &rows);
    let limit = args
        .limit
        .map_or(DEAD_LETTERS_LIMIT_DEFAULT, |limit| limit as usize);
    if page.messages.len() >= limit {
        eprintln!("more may follow: --after {}", page.next);
    }
    Ok(())
}

/// `cairn subs replay`: all dead letters when `hashes` is empty, otherwise
/// those, in requests of at most the server's limit.
async fn replay(server: &ServerArg, name: &str, hashes: Vec<Hash>) -> anyhow::Result<()> {
    let selections: Vec<ReplaySelection> = if hashes.is_empty() {
        vec![ReplaySelection::All]
    } else {
        hashes
            .chunks(ACK_TOKENS_MAX)
            .map(|chunk| ReplaySelection::Hashes(chunk.to_vec()))
            .collect()
    };
    let client = server.client()?;
    let mut n_replayed = 0;
    for selection in &selections {
        n_replayed += client
            .replay_dead_letters(name, selection)
            .await
            .map_err(explain)?;
    }
    println!("replayed {n_replayed}");
    Ok(())
}

/// `cairn subs pull`: prints each message as a JSON line, its fact exactly
/// as the server sent it (the canonical form), then acknowledges them if
/// asked. Acks come after printing so a message is never acknowledged
/// before it was written out.
async fn pull(args: &PullArgs) -> anyhow::Result<()> {
    let client = args.server.client()?;
    let options = PullOptions {
        max: args.max,
        wait_ms: args.wait_ms,
        lease_ms: None,
    };
    let messages = client
        .transport()
        .pull_raw(&args.name, options)
        .await
        .map_err(explain)?;
    let mut stdout = std::io::stdout().lock();
    for message in &messages {
        writeln!(stdout, "{}", serde_json::to_string(message)?)?;
    }
    stdout.flush()?;
    drop(stdout);
    if !args.ack || messages.is_empty() {
        return Ok(());
    }
    let tokens: Vec<String> = messages.into_iter().map(|message| message.token).collect();
    let results = client
        .transport()
        .ack(&args.name, &tokens)
        .await
        .map_err(explain)?;
    let n_not_acked = results
        .iter()
        .filter(|result| result.status != TokenStatus::Acked)
        .count();
    if n_not_acked > 0 {
        let statuses: Vec<&str> = results
            .iter()
            .map(|result| result.status.as_str())
            .collect();
        bail!(
            "{n_not_acked} of {} messages were not acknowledged (statuses: {}); they may be delivered again",
            statuses.len(),
            statuses.join(", ")
        );
    }
    Ok(())
}
