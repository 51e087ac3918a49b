//! `cairn check`: runs the reliability checker (crate `cairn-check`)
//! against an embedded server it starts, servers over PostgreSQL it starts,
//! or servers given by URL; prints the report and fails on any violation.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cairn_check::{CheckOptions, FaultKind, Target, Topology};

/// Options of `cairn check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// Seed of the schedule of operations and faults (default: from the
    /// clock; the report prints it so the run can be replayed).
    #[arg(long)]
    seed: Option<u64>,
    /// How long the workload runs with faults, e.g. `90s`, `5m`, `1h`.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// `embedded`: one server on the embedded store; `postgres`: several
    /// servers over one PostgreSQL database; `postgres-replicated`: several
    /// servers over a primary and its synchronous standby that the checker
    /// creates and fails over (fault `failover`).
    #[arg(long, default_value = "embedded", value_parser = ["embedded", "postgres", "postgres-replicated"])]
    backend: String,
    /// The negative control of `--backend postgres-replicated`: commits
    /// wait for the primary's disk only (`synchronous_commit = local`), so
    /// failovers lose acknowledged writes and the run must fail.
    #[arg(long, hide = true)]
    replicated_commits_local: bool,
    /// `single`: one deployment (the backend's); `ring3`: three embedded
    /// deployments linked in a ring by replication links through the
    /// fault proxies (B follows A, C follows B, A follows C), checked for
    /// eventual equality of what their links select, closure and
    /// phantoms. Claimers, fenced writers and timer setters are left out
    /// of a ring (those are decided per deployment).
    #[arg(long, default_value = "single", value_parser = ["single", "ring3"])]
    topology: String,
    /// The negative control of `--topology ring3`: one link is defined
    /// with other types than the checker expects, so the run must fail.
    #[arg(long, hide = true)]
    ring_misdefined_link: bool,
    /// Servers started on the PostgreSQL backend.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=16))]
    servers: u16,
    /// The PostgreSQL database to use (default: a private cluster the
    /// checker creates, and restarts as a fault).
    #[arg(long)]
    store: Option<String>,
    /// Check servers that are already running (repeat for several; only
    /// network faults can then be injected). Overrides --backend.
    #[arg(long = "url")]
    urls: Vec<String>,
    /// Fault kinds to inject, comma-separated, or `none` (default: all
    /// that apply): kill, pause, restart-loop, clean-restart, clock-jump,
    /// network, postgres-restart, failover, torn-write, corruption.
    #[arg(long, value_delimiter = ',')]
    faults: Vec<String>,
    /// Mean time between faults, e.g. `3s`.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    fault_interval: Duration,
    /// Concurrent writers.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    writers: u16,
    /// Pause between one writer's batches, in milliseconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    write_interval_ms: u64,
    /// Concurrent readers.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    readers: u16,
    /// Concurrent consumers (spread over the two subscriptions).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(2..=256))]
    consumers: u16,
    /// Concurrent claimers racing for the run's claim keys (0: none).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(0..=64))]
    claimers: u16,
    /// Concurrent writers holding the run's leases and writing under their
    /// fences (0: none).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(0..=64))]
    fenced_writers: u16,
    /// Concurrent timer setters: one-shot timers due 0.5–5 s ahead (some
    /// deleted before or after), and a cron timer each (0: none).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(0..=64))]
    timer_setters: u16,
    /// Directory for data, logs and the report (default: a new one under
    /// the system's temporary directory, removed after a passing run).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the work directory after a passing run.
    #[arg(long)]
    keep: bool,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    report_json: Option<PathBuf>,
    /// An extra argument for every server the checker starts (repeatable).
    /// `--server-arg=--unsafe-ack-before-write` is the negative control.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Start the servers with `--auth`: the checker first creates its own
    /// least-privilege identities offline (a writer, a reader, a consumer
    /// and an admin for replaying dead letters) and sends every request
    /// with the right token. Not with --url.
    #[arg(long, conflicts_with = "urls")]
    auth: bool,
}

/// Runs the check; an error when any violation was found.
pub async fn run(args: CheckArgs) -> anyhow::Result<()> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_secs())
    });
    let faults = match args.faults.as_slice() {
        [] => FaultKind::ALL.to_vec(),
        [none] if none == "none" => Vec::new(),
        names => names
            .iter()
            .map(|name| {
                FaultKind::from_name(name).ok_or_else(|| {
                    let known: Vec<&str> = FaultKind::ALL.iter().map(|kind| kind.name()).collect();
                    anyhow::anyhow!("unknown fault {name:?}; known: {}", known.join(", "))
                })
            })
            .collect::<anyhow::Result<_>>()?,
    };
    anyhow::ensure!(
        !args.replicated_commits_local || args.backend == "postgres-replicated",
        "--replicated-commits-local is a negative control of --backend postgres-replicated"
    );
    let topology = Topology::from_name(&args.topology).expect("clap checked the name");
    let target = if !args.urls.is_empty() {
        Target::Urls(args.urls.clone())
    } else if args.backend == "postgres" {
        Target::Postgres {
            servers: usize::from(args.servers),
            store_url: args.store.clone(),
        }
    } else if args.backend == "postgres-replicated" {
        anyhow::ensure!(
            args.store.is_none(),
            "--backend postgres-replicated creates its own primary and standby; --store needs --backend postgres"
        );
        Target::PostgresReplicated {
            servers: usize::from(args.servers),
            commits_wait_for_standby: !args.replicated_commits_local,
        }
    } else {
        anyhow::ensure!(args.store.is_none(), "--store needs --backend postgres");
        Target::Embedded
    };
    let temporary = args.work_dir.is_none();
    let work_dir = args.work_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("cairn-check-{}-{seed}", std::process::id()))
    });
    let options = CheckOptions {
        seed,
        duration: args.duration,
        target,
        topology,
        ring_misdefined_link: args.ring_misdefined_link,
        binary: std::env::current_exe().context("cannot find the cairn binary")?,
        work_dir: work_dir.clone(),
        writers: usize::from(args.writers),
        write_interval: Duration::from_millis(args.write_interval_ms),
        readers: usize::from(args.readers),
        consumers: usize::from(args.consumers),
        claimers: usize::from(args.claimers),
        fenced_writers: usize::from(args.fenced_writers),
        timer_setters: usize::from(args.timer_setters),
        faults,
        fault_interval: args.fault_interval,
        server_args: args.server_args.clone(),
        auth: args.auth,
        progress: true,
    };
    if let Some(problem) = options.topology_problem() {
        anyhow::bail!("{problem}");
    }
    anyhow::ensure!(
        !work_dir.exists() || std::fs::read_dir(&work_dir)?.next().is_none(),
        "the work directory {} is not empty",
        work_dir.display()
    );
    eprintln!(
        "cairn check: seed {seed}, {} of faults ({}){}{}, files in {}",
        humanize(args.duration),
        options
            .applicable_faults()
            .iter()
            .map(|kind| kind.name())
            .collect::<Vec<_>>()
            .join(", "),
        if args.auth { ", with --auth" } else { "" },
        if topology == Topology::Ring3 {
            ", topology ring3"
        } else {
            ""
        },
        work_dir.display()
    );
    // On Ctrl-C the run is dropped, and with it every server process and
    // the private PostgreSQL cluster it started.
    let report = tokio::select! {
        report = cairn_check::run(options) => report?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!(
            "interrupted; the servers it started were stopped; files are in {}",
            work_dir.display()
        ),
    };
    let text = report.to_text();
    println!("{text}");
    std::fs::write(
        work_dir.join("report.txt"),
        format!("{text}\n{}\n", report.fault_log.join("\n")),
    )
    .context("cannot write the report")?;
    if let Some(path) = &args.report_json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !report.passed() {
        anyhow::bail!(
            "{} violation(s); server logs and the report are in {}",
            report.violations(),
            work_dir.display()
        );
    }
    if temporary && !args.keep {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    Ok(())
}

/// Parses `90`, `90s`, `500ms`, `5m` or `1h`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 5m or 1h"))?;
    let milliseconds = match unit {
        "ms" => value,
        "" | "s" => value.saturating_mul(1_000),
        "m" => value.saturating_mul(60_000),
        "h" => value.saturating_mul(3_600_000),
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h")),
    };
    if milliseconds == 0 || milliseconds > 7 * 24 * 3_600_000 {
        return Err(format!("{text:?}: must be more than 0 and at most a week"));
    }
    Ok(Duration::from_millis(milliseconds))
}

fn humanize(duration: Duration) -> String {
    format!("{} s", duration.as_secs())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_take_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in [
            "",
            "s",
            "0s",
            "-1s",
            "1d",
            "1.5s",
            "99999999999999999999s",
            "9999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
