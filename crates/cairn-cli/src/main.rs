//! The `cairn` command: `serve` runs the server on the embedded store;
//! `hash` works offline; `put`, `get`, `successors`, `log`, `tail` and
//! `subs`, `timers`, `links`, `schemas`, `services` and `boundaries` talk to
//! a server through the SDK; `diff`
//! compares two deployments by their digests; `bench` generates load and
//! reports latency percentiles; `check` runs the reliability checker;
//! `demo` runs a coffee shop of services under faults and checks its
//! business invariants (its services run as the hidden `demo-service`).

#![deny(unsafe_code)]

mod allocator;
mod bench;
mod bench_delivery;
mod bench_replication;
mod bench_timers;
mod boundaries;
mod check;
mod client;
mod connection;
mod demo;
mod diff;
mod links;
mod sagas;
mod schemas;
mod serve;
mod services;
mod subs;
mod timers;
mod tokens;

use std::path::PathBuf;
use std::process::ExitCode;

use cairn_fact::Hash;
use clap::{Parser, Subcommand};
use connection::ServerArg;

/// Default address of a Cairn server.
const DEFAULT_SERVER: &str = "http://127.0.0.1:7710";

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Cairn: immutable, content-addressed facts, delivered durably"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded store by default, or PostgreSQL).
    Serve(serve::ServeArgs),
    /// A coffee shop of six services on Cairn, run under faults (services
    /// and Cairn killed, a card provider down), ending with a report of
    /// business invariants checked from the facts (exit 1 if one fails).
    Demo(demo::DemoArgs),
    /// One service of `cairn demo` (started by it, not by hand).
    #[command(hide = true)]
    DemoService(demo::DemoServiceArgs),
    /// Apply the PostgreSQL schema migrations (servers also do at start).
    Migrate {
        /// The database: `postgres://user@host:5432/db`.
        #[arg(long, env = "CAIRN_STORE")]
        store: String,
    },
    /// Print the hash of a fact given as JSON (offline).
    Hash {
        /// File holding the fact; `-` or nothing reads standard input.
        file: Option<PathBuf>,
    },
    /// Store facts: a file holding one fact, or an array of facts.
    Put {
        /// File holding the fact(s); `-` or nothing reads standard input.
        file: Option<PathBuf>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Print a stored fact.
    Get {
        /// The fact's hash.
        #[arg(value_parser = client::parse_hash)]
        hash: Hash,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List successors of a fact.
    Successors(client::SuccessorsArgs),
    /// Print a page of the log.
    Log {
        /// Start after this seq.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many facts.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Follow the log, printing each new fact as a JSON line.
    Tail {
        /// Start after this seq (default: the current end of the log).
        #[arg(long)]
        after: Option<u64>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Generate load against a server or an embedded store.
    Bench(bench::BenchArgs),
    /// Manage subscriptions: list, show, create, delete, pause, resume,
    /// dead letters, replay, discard, pull.
    Subs(subs::SubsArgs),
    /// Durable timers: set (at an instant or on a cron schedule), list,
    /// show, delete.
    Timers(timers::TimersArgs),
    /// Replication links into this deployment from another: create (or
    /// rotate the token of), list, show, pause, resume, delete.
    Links(links::LinksArgs),
    /// Service declarations: register a service's `cairn-service.toml`
    /// (what it owns, consumes, requests and answers), list them.
    Services(services::ServicesArgs),
    /// The flow map between services, declared against observed (table,
    /// Mermaid, DOT, JSON); `check` exits 1 on a violation (2: error).
    Boundaries(boundaries::BoundariesArgs),
    /// Schemas per fact type and version: register (from a JSON body),
    /// list, show.
    Schemas(schemas::SchemasArgs),
    /// Sagas: list (by state, by name), show a saga's journal, and ask the
    /// runner to retry or abort one.
    Sagas(sagas::SagasArgs),
    /// Identities and access tokens: create (also offline, to bootstrap an
    /// admin), list, rotate, revoke, and the audit trail.
    Tokens(tokens::TokensArgs),
    /// Compare two deployments by digests over the hash space and list the
    /// facts each lacks (exit status 0: the same facts, 1: they differ,
    /// 2: error). Tokens: CAIRN_TOKEN_A, CAIRN_TOKEN_B, else CAIRN_TOKEN.
    Diff(diff::DiffArgs),
    /// Check Cairn's guarantees under faults: a seeded workload, injected
    /// crashes, pauses, clock jumps, network and disk faults, and an oracle.
    Check(check::CheckArgs),
}

fn main() -> ExitCode {
    allocator::configure();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let command = match cli.command {
        // Its own exit statuses: 1 means "different", not "failed".
        Command::Diff(args) => return runtime.block_on(diff::run(args)),
        // Its own exit statuses: 1 means "violations", 2 "error".
        Command::Boundaries(args) => return runtime.block_on(boundaries::run(args)),
        // Prints its own report; 1 when an invariant fails.
        Command::Demo(args) => return runtime.block_on(demo::run(args)),
        command => command,
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve(args) => serve::run(args).await,
            Command::Migrate { store } => serve::migrate(&store).await,
            Command::Hash { file } => client::hash(file.as_deref()),
            Command::Put { file, server } => client::put(&server, file.as_deref()).await,
            Command::Get { hash, server } => client::get(&server, &hash).await,
            Command::Successors(args) => client::successors(&args).await,
            Command::Log {
                after,
                limit,
                server,
            } => client::log(&server, after, limit).await,
            Command::Tail { after, server } => client::tail(&server, after).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Subs(args) => subs::run(args).await,
            Command::Timers(args) => timers::run(args).await,
            Command::Links(args) => links::run(args).await,
            Command::Services(args) => services::run(args).await,
            Command::Schemas(args) => schemas::run(args).await,
            Command::Sagas(args) => sagas::run(args).await,
            Command::Tokens(args) => tokens::run(args).await,
            Command::Check(args) => check::run(args).await,
            Command::DemoService(args) => demo::run_service(args).await,
            Command::Diff(_) | Command::Boundaries(_) | Command::Demo(_) => {
                unreachable!("handled above")
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, like anyhow's `{:#}`, but each
/// cause once: the store's errors quote their underlying error in their
/// message (the HTTP API shows the message alone) and also return it as
/// their `source()`, which would otherwise be printed twice.
fn error_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_line_names_each_cause_once() {
        let cause = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let store_error = cairn_store::ReadError::storage_caused_by(
            format!("cannot create /data/LOCK: {cause}"),
            cause,
        );
        let error = anyhow::Error::new(store_error).context("cannot open the store in /data");
        assert_eq!(
            error_line(&error),
            "cannot open the store in /data: storage failure: cannot create /data/LOCK: denied"
        );
    }
}
