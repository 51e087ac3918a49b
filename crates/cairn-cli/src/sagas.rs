//! `cairn sagas`: operators' view of sagas (list, show) and their two
//! levers (retry, abort), through the SDK's `Client::sagas`, which reads
//! each saga's journal from its facts and writes the requests a runner
//! acts on. Arguments are checked before anything is sent.

use anyhow::bail;
use cairn_client::{SagaError, SagaFilter, SagaJournal, SagaState};
use cairn_fact::Hash;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::client::parse_hash;
use crate::connection::{explain, ServerArg};

/// Characters of an error shown in a table; the full text is in `--json`.
const ERROR_SHOWN_CHARS_MAX: usize = 60;

/// Options of `cairn sagas`.
#[derive(clap::Args)]
pub struct SagasArgs {
    #[command(subcommand)]
    command: SagasCommand,
}

#[derive(clap::Subcommand)]
enum SagasCommand {
    /// List sagas, newest first, with their state and current step.
    List {
        /// Only sagas in this state.
        #[arg(long, value_parser = parse_state)]
        state: Option<SagaState>,
        /// Only sagas of this name.
        #[arg(long, value_parser = parse_saga_name)]
        name: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32)
            .range(1..=cairn_client::limits::SAGAS_LIST_MAX as i64))]
        limit: u32,
        /// Print JSON (one journal per saga) instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Print a saga's steps, attempts (with their idempotency keys) and
    /// errors, and the chain of its transitions, from its facts.
    Show {
        /// The saga's id (the hash of its `Saga.Started`).
        #[arg(value_parser = parse_hash)]
        id: Hash,
        /// Print the journal as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Ask the runner to go on with a saga: a `failed` one gets a new
    /// round of compensation attempts, a running one is looked at again.
    Retry(RequestArgs),
    /// Ask the runner to abort a saga: it compensates the completed steps
    /// in reverse order, and the saga ends `aborted`.
    Abort(RequestArgs),
}

/// A request about one saga.
#[derive(clap::Args)]
struct RequestArgs {
    /// The saga's id.
    #[arg(value_parser = parse_hash)]
    id: Hash,
    /// Why, kept in the journal.
    #[arg(long, default_value = "requested by an operator")]
    reason: String,
    #[command(flatten)]
    server: ServerArg,
}

fn parse_state(text: &str) -> Result<SagaState, String> {
    SagaState::parse(text).ok_or_else(|| {
        let names: Vec<&str> = SagaState::ALL.iter().map(|state| state.as_str()).collect();
        format!("a state is one of {}", names.join(", "))
    })
}

fn parse_saga_name(text: &str) -> Result<String, String> {
    cairn_client::saga::validate_saga_name(text)?;
    Ok(text.to_string())
}

/// A saga error for the terminal: the client's errors as the other
/// commands word them.
fn explain_saga(error: SagaError) -> anyhow::Error {
    match error {
        SagaError::Client(error) => explain(error),
        other => anyhow::Error::new(other),
    }
}

/// Runs `cairn sagas …`.
pub async fn run(args: SagasArgs) -> anyhow::Result<()> {
    match args.command {
        SagasCommand::List {
            state,
            name,
            limit,
            json,
            server,
        } => {
            let filter = SagaFilter {
                name,
                state,
                limit: Some(limit as usize),
            };
            let sagas = server
                .client()?
                .sagas()
                .list(&filter)
                .await
                .map_err(explain_saga)?;
            if json {
                let journals: Vec<serde_json::Value> =
                    sagas.iter().map(SagaJournal::to_json).collect();
                println!("{}", serde_json::to_string_pretty(&journals)?);
            } else {
                print_list(&sagas);
            }
        }
        SagasCommand::Show { id, json, server } => {
            let journal = server
                .client()?
                .sagas()
                .journal(&id)
                .await
                .map_err(explain_saga)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&journal.to_json())?);
            } else {
                print_journal(&journal);
            }
        }
        SagasCommand::Retry(request) => {
            let reason = checked_reason(&request.reason)?;
            let hash = request
                .server
                .client()?
                .sagas()
                .request_retry(&request.id, reason)
                .await
                .map_err(explain_saga)?;
            println!("retry requested: {hash}");
        }
        SagasCommand::Abort(request) => {
            let reason = checked_reason(&request.reason)?;
            let hash = request
                .server
                .client()?
                .sagas()
                .request_abort(&request.id, reason)
                .await
                .map_err(explain_saga)?;
            println!("abort requested: {hash}");
        }
    }
    Ok(())
}

fn checked_reason(reason: &str) -> anyhow::Result<&str> {
    if reason.len() > cairn_client::limits::SAGA_ERROR_BYTES_MAX {
        bail!(
            "a reason is at most {} bytes",
            cairn_client::limits::SAGA_ERROR_BYTES_MAX
        );
    }
    Ok(reason)
}

/// The step a saga is at (the first not succeeded, or the one being
/// compensated), for the list.
fn current_step(journal: &SagaJournal) -> String {
    let steps = journal.steps();
    steps
        .iter()
        .rev()
        .find(|step| step.status.starts_with("compensat"))
        .or_else(|| steps.iter().find(|step| step.status != "succeeded"))
        .map_or_else(
            || "-".to_string(),
            |step| format!("{} ({})", step.name, step.status),
        )
}

fn shortened(text: &str) -> String {
    if text.chars().count() <= ERROR_SHOWN_CHARS_MAX {
        return text.to_string();
    }
    let cut: String = text.chars().take(ERROR_SHOWN_CHARS_MAX).collect();
    format!("{cut}…")
}

fn print_list(sagas: &[SagaJournal]) {
    println!(
        "{:<64}  {:<16} {:>3}  {:<12}  {:<32}  LAST ERROR",
        "ID", "NAME", "V", "STATE", "STEP"
    );
    for journal in sagas {
        println!(
            "{:<64}  {:<16} {:>3}  {:<12}  {:<32}  {}",
            journal.id,
            journal.name(),
            journal.version(),
            journal.state().as_str(),
            current_step(journal),
            shortened(journal.last_error().unwrap_or("-"))
        );
    }
}

fn time_text(at_ms: Option<u64>) -> String {
    at_ms
        .and_then(|at_ms| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000).ok()
        })
        .and_then(|time| time.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".to_string())
}

fn print_journal(journal: &SagaJournal) {
    println!("saga      {}", journal.id);
    println!(
        "name      {} (version {})",
        journal.name(),
        journal.version()
    );
    println!("state     {}", journal.state().as_str());
    println!("input     {}", journal.started.value.input);
    if let Some(error) = journal.last_error() {
        println!("error     {error}");
    }
    println!();
    for step in journal.steps() {
        println!("step {} — {}", step.name, step.status);
        for attempt in &step.attempts {
            println!(
                "  attempt {:<3} {:<10} at {}  key {}{}",
                attempt.attempt,
                attempt.outcome,
                time_text(attempt.at_ms),
                attempt.key,
                attempt
                    .error
                    .as_deref()
                    .map(|error| format!("  error: {error}"))
                    .unwrap_or_default()
            );
        }
        for attempt in &step.compensation_attempts {
            println!(
                "  compensation {:<3} {:<10} at {}  key {}{}",
                attempt.attempt,
                attempt.outcome,
                time_text(attempt.at_ms),
                attempt.key,
                attempt
                    .error
                    .as_deref()
                    .map(|error| format!("  error: {error}"))
                    .unwrap_or_default()
            );
        }
    }
    println!();
    println!("transitions (seq, kind, step, attempt):");
    for transition in &journal.chain {
        println!(
            "  {:>8}  {:<24} {:<20} {}",
            transition.seq,
            transition.value.kind.as_str(),
            transition.value.step_name.as_deref().unwrap_or("-"),
            transition
                .value
                .attempt
                .map_or_else(|| "-".to_string(), |attempt| attempt.to_string())
        );
    }
    if !journal.superseded.is_empty() {
        println!(
            "{} superseded transition(s) (a second successor of one transition; ignored)",
            journal.superseded.len()
        );
    }
    for request in &journal.retry_requests {
        println!(
            "retry requested: {} ({})",
            request.hash, request.value.reason
        );
    }
    for request in &journal.abort_requests {
        println!(
            "abort requested: {} ({})",
            request.hash, request.value.reason
        );
    }
}
