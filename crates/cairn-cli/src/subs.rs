//! `cairn subs`: manage and inspect subscriptions on a server over HTTP
//! (list, show, create, delete, pause, resume, dead letters, replay,
//! discard, pull). Arguments that can be checked here (names, hashes, the
//! definition's ranges) are checked before anything is sent, so a typo gets
//! a clear message instead of a request to the wrong path; everything else
//! is the server's to judge, and its error code and message are reported.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use cairn_delivery::{validate_subscription_name, SubscriptionDefinition};
use cairn_fact::{validate_role, Hash};
use cairn_server::limits as server_limits;
use reqwest::{Method, StatusCode};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::ServerArg;

/// Timeout of one request. It exceeds the longest long-poll a pull may ask
/// for, so a pull that waits the full time still gets its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Timeout for establishing the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Characters of a dead letter's `last_error` shown in the table; the full
/// text is in the `--json` output.
const LAST_ERROR_SHOWN_CHARS_MAX: usize = 60;
/// Characters of an unexpected (non-JSON) error body quoted in a message.
const UNEXPECTED_BODY_SHOWN_CHARS_MAX: usize = 200;

const _: () = assert!((server_limits::WAIT_MS_MAX as u128) < REQUEST_TIMEOUT.as_millis());

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
    /// Create a subscription, or confirm that it exists with the same definition.
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
        hashes: Vec<String>,
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
        hash: String,
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
    fn as_str(self) -> &'static str {
        match self {
            StartArg::Beginning => "beginning",
            StartArg::Now => "now",
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

/// `--predecessor ROLE=HASH`.
#[derive(Clone)]
struct PredecessorArg {
    role: String,
    hash: String,
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
    predecessor: Option<PredecessorArg>,
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
    #[arg(long, value_parser = clap::value_parser!(u64)
        .range(1..=server_limits::DEAD_LETTERS_LIMIT_MAX as u64))]
    limit: Option<u64>,
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
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64)
        .range(1..=server_limits::PULL_MESSAGES_MAX as u64))]
    max: u64,
    /// Wait up to this many milliseconds for a first message.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64)
        .range(0..=server_limits::WAIT_MS_MAX))]
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

fn parse_hash(text: &str) -> Result<String, String> {
    Hash::from_hex(text)
        .map(|hash| hash.to_hex())
        .map_err(|_| "a hash is 64 lowercase hexadecimal characters".to_string())
}

fn parse_predecessor(text: &str) -> Result<PredecessorArg, String> {
    let (role, hash) = text
        .split_once('=')
        .ok_or_else(|| "expected ROLE=HASH".to_string())?;
    validate_role(role).map_err(|error| error.to_string())?;
    Ok(PredecessorArg {
        role: role.to_string(),
        hash: parse_hash(hash)?,
    })
}

/// Runs one `cairn subs` command.
pub async fn run(args: SubsArgs) -> anyhow::Result<()> {
    match args.command {
        SubsCommand::List { json, server } => list(&Api::new(&server)?, json).await,
        SubsCommand::Show(args) => print_answer(&args, Method::GET, "").await,
        SubsCommand::Create(args) => create(&args).await,
        SubsCommand::Delete(args) => print_answer(&args, Method::DELETE, "").await,
        SubsCommand::Pause(args) => print_answer(&args, Method::POST, "/pause").await,
        SubsCommand::Resume(args) => print_answer(&args, Method::POST, "/resume").await,
        SubsCommand::Dead(args) => dead(&args).await,
        SubsCommand::Replay {
            name,
            hashes,
            server,
        } => replay(&Api::new(&server)?, &name, &hashes).await,
        SubsCommand::Discard { name, hash, server } => {
            let api = Api::new(&server)?;
            let answer = api
                .json(Method::DELETE, &path(&name, &format!("/dead/{hash}")), None)
                .await?;
            print_pretty(&answer);
            Ok(())
        }
        SubsCommand::Pull(args) => pull(&args).await,
    }
}

/// `show`, `delete`, `pause`, `resume`: one request, its answer printed.
async fn print_answer(args: &NameArgs, method: Method, rest: &str) -> anyhow::Result<()> {
    let api = Api::new(&args.server)?;
    print_pretty(&api.json(method, &path(&args.name, rest), None).await?);
    Ok(())
}

/// The path of a subscription resource. Names are checked by `parse_name`,
/// so they need no escaping.
fn path(name: &str, rest: &str) -> String {
    format!("/v1/subscriptions/{name}{rest}")
}

/// The HTTP side: one client and the server's base URL.
struct Api {
    client: reqwest::Client,
    base_url: String,
}

impl Api {
    fn new(server: &ServerArg) -> anyhow::Result<Api> {
        Ok(Api {
            client: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .connect_timeout(CONNECT_TIMEOUT)
                .build()?,
            base_url: server.url.trim_end_matches('/').to_string(),
        })
    }

    /// Sends a request and returns the status and body of a successful
    /// answer; an error answer becomes an error naming the server's code.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Vec<u8>)> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base_url))
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.base_url))?;
        let status = response.status();
        let bytes = response.bytes().await?.to_vec();
        if !status.is_success() {
            return Err(server_error(status, &bytes));
        }
        Ok((status, bytes))
    }

    /// Like [`Api::call`] without a query, parsing the answer as JSON.
    async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let (status, bytes) = self.call(method, path, &[], body).await?;
        parse_answer(status, &bytes)
    }
}

fn parse_answer(status: StatusCode, bytes: &[u8]) -> anyhow::Result<Value> {
    serde_json::from_slice(bytes)
        .with_context(|| format!("the server answered {status} with a body that is not JSON"))
}

/// `code: message (HTTP status)` from the contract's error body, or the
/// start of the body when it is not one.
fn server_error(status: StatusCode, bytes: &[u8]) -> anyhow::Error {
    let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
    let error = parsed.as_ref().map(|value| &value["error"]);
    match error.map(|error| (error["code"].as_str(), error["message"].as_str())) {
        Some((Some(code), Some(message))) => anyhow!("{code}: {message} (HTTP {status})"),
        _ => {
            let text = String::from_utf8_lossy(bytes);
            anyhow!(
                "the server answered {status}: {}",
                shorten(&text, UNEXPECTED_BODY_SHOWN_CHARS_MAX)
            )
        }
    }
}

fn print_pretty(value: &Value) {
    // Serializing a `Value` cannot fail: its keys are strings.
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// Text of a JSON member for a table cell: strings unquoted, absent as `-`.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
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
async fn list(api: &Api, json: bool) -> anyhow::Result<()> {
    let answer = api.json(Method::GET, "/v1/subscriptions", None).await?;
    if json {
        print_pretty(&answer);
        return Ok(());
    }
    const COLUMNS: [&str; 9] = [
        "name",
        "type",
        "paused",
        "backlog",
        "in_flight",
        "delivered",
        "acked",
        "dead",
        "oldest_unacked_age_ms",
    ];
    let rows: Vec<Vec<String>> = answer["subscriptions"]
        .as_array()
        .context("the answer has no \"subscriptions\" list")?
        .iter()
        .map(|view| COLUMNS.iter().map(|column| cell(&view[*column])).collect())
        .collect();
    print_table(&COLUMNS, &rows);
    Ok(())
}

/// The definition body of `cairn subs create`: only the options given, so
/// the server fills in its own defaults.
fn definition_body(args: &CreateArgs) -> Value {
    let mut body = json!({ "type": args.type_name });
    let mut backoff = serde_json::Map::new();
    if let Some(initial_ms) = args.backoff_initial_ms {
        backoff.insert("initial_ms".into(), json!(initial_ms));
    }
    if let Some(max_ms) = args.backoff_max_ms {
        backoff.insert("max_ms".into(), json!(max_ms));
    }
    let members = [
        (
            "predecessor",
            args.predecessor
                .as_ref()
                .map(|selection| json!({ "role": selection.role, "hash": selection.hash })),
        ),
        ("start", args.start.map(|start| json!(start.as_str()))),
        ("lease_ms", args.lease_ms.map(|value| json!(value))),
        ("max_attempts", args.max_attempts.map(|value| json!(value))),
        (
            "backoff",
            (!backoff.is_empty()).then_some(Value::Object(backoff)),
        ),
        (
            "ordering_key",
            args.ordering_key.as_ref().map(|role| json!(role)),
        ),
        (
            "max_in_flight_per_key",
            args.max_in_flight_per_key.map(|value| json!(value)),
        ),
        (
            "rate_limit_per_s",
            args.rate_limit_per_s.map(|value| json!(value)),
        ),
    ];
    for (member, value) in members {
        if let Some(value) = value {
            body[member] = value;
        }
    }
    body
}

/// `cairn subs create`: checks the definition with the same rules as the
/// server, then PUTs it.
async fn create(args: &CreateArgs) -> anyhow::Result<()> {
    let body = definition_body(args);
    SubscriptionDefinition::from_json(body.to_string().as_bytes())
        .map_err(|error| anyhow!("invalid definition: {error}"))?;
    let api = Api::new(&args.server)?;
    let (status, bytes) = api
        .call(Method::PUT, &path(&args.name, ""), &[], Some(&body))
        .await?;
    let view = parse_answer(status, &bytes)?;
    if status == StatusCode::CREATED {
        println!("created");
    } else {
        println!("exists (same definition)");
    }
    print_pretty(&view);
    Ok(())
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
    let mut query = Vec::new();
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    if let Some(after) = args.after {
        query.push(("after", after.to_string()));
    }
    if args.discarded {
        query.push(("discarded", "true".to_string()));
    }
    let api = Api::new(&args.server)?;
    let (status, bytes) = api
        .call(Method::GET, &path(&args.name, "/dead"), &query, None)
        .await?;
    let answer = parse_answer(status, &bytes)?;
    if args.json {
        print_pretty(&answer);
        return Ok(());
    }
    let messages = answer["messages"]
        .as_array()
        .context("the answer has no \"messages\" list")?;
    let rows: Vec<Vec<String>> = messages
        .iter()
        .map(|message| {
            let dead_at = match message["dead_at_ms"].as_u64() {
                Some(time_ms) if time_ms > 0 => rfc3339_from_ms(time_ms),
                _ => None,
            };
            vec![
                cell(&message["seq"]),
                cell(&message["hash"]),
                cell(&message["attempts"]),
                dead_at.unwrap_or_else(|| "-".to_string()),
                shorten(&cell(&message["last_error"]), LAST_ERROR_SHOWN_CHARS_MAX),
            ]
        })
        .collect();
    print_table(&["seq", "hash", "attempts", "dead_at", "last_error"], &rows);
    let limit = args
        .limit
        .unwrap_or(server_limits::DEAD_LETTERS_LIMIT_DEFAULT as u64);
    if messages.len() as u64 >= limit {
        eprintln!("more may follow: --after {}", cell(&answer["next"]));
    }
    Ok(())
}

/// `cairn subs replay`: all dead letters when `hashes` is empty, otherwise
/// those, in requests of at most the server's limit.
async fn replay(api: &Api, name: &str, hashes: &[String]) -> anyhow::Result<()> {
    let bodies: Vec<Value> = if hashes.is_empty() {
        vec![json!({})]
    } else {
        hashes
            .chunks(server_limits::ACK_TOKENS_MAX)
            .map(|chunk| json!({ "hashes": chunk }))
            .collect()
    };
    let mut n_replayed = 0;
    for body in &bodies {
        let answer = api
            .json(Method::POST, &path(name, "/dead/replay"), Some(body))
            .await?;
        n_replayed += answer["replayed"]
            .as_u64()
            .context("the answer has no \"replayed\" count")?;
    }
    println!("replayed {n_replayed}");
    Ok(())
}

/// `cairn subs pull`: prints each message exactly as the server sent it
/// (the fact in its canonical form), one per line, then acknowledges them
/// if asked. Acks come after printing so a message is never acknowledged
/// before it was written out.
async fn pull(args: &PullArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.server)?;
    let body = json!({ "max": args.max, "wait_ms": args.wait_ms });
    let (_, bytes) = api
        .call(Method::POST, &path(&args.name, "/pull"), &[], Some(&body))
        .await?;
    let answer: HashMap<String, Box<RawValue>> =
        serde_json::from_slice(&bytes).context("the pull answer is not a JSON object")?;
    let messages: Vec<Box<RawValue>> = answer
        .get("messages")
        .map(|raw| serde_json::from_str(raw.get()))
        .transpose()
        .context("the pull answer's \"messages\" is not a list")?
        .context("the pull answer has no \"messages\" list")?;
    let mut tokens = Vec::with_capacity(messages.len());
    let mut stdout = std::io::stdout().lock();
    for message in &messages {
        writeln!(stdout, "{}", message.get())?;
        let parsed: Value = serde_json::from_str(message.get())?;
        tokens.push(
            parsed["token"]
                .as_str()
                .context("a pulled message has no token")?
                .to_string(),
        );
    }
    stdout.flush()?;
    drop(stdout);
    if !args.ack || tokens.is_empty() {
        return Ok(());
    }
    let answer = api
        .json(
            Method::POST,
            &path(&args.name, "/ack"),
            Some(&json!({ "tokens": tokens })),
        )
        .await?;
    let statuses: Vec<&str> = answer["results"]
        .as_array()
        .context("the ack answer has no \"results\" list")?
        .iter()
        .map(|result| result["status"].as_str().unwrap_or("missing"))
        .collect();
    let n_not_acked = statuses.iter().filter(|status| **status != "acked").count();
    if n_not_acked > 0 {
        bail!(
            "{n_not_acked} of {} messages were not acknowledged (statuses: {}); they may be delivered again",
            statuses.len(),
            statuses.join(", ")
        );
    }
    Ok(())
}
