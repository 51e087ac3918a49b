//! `cairn check` end to end: a bounded run under every fault on the
//! embedded store and on PostgreSQL (three servers over a private cluster)
//! must pass with every check having examined something (claims won
//! again after releases, fenced writes refused as stale, timers fired and
//! deleted included); a run over a replicated PostgreSQL (a primary and
//! its synchronous standby, failed over again and again) must pass, and
//! its negative control (`synchronous_commit = local`) must lose
//! acknowledged writes; a shorter run of three embedded deployments linked
//! in a ring (`--topology ring3`) must pass too; the negative controls — a
//! server that acknowledges before writing, a ring link defined with other
//! types than the checker expects — must fail; a shorter run with `--auth` (the checker's own identities, every request
//! with its role's token) must pass on both backends; and bad arguments get
//! a clear error.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;

use serde_json::Value;

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

/// The long runs take both cores; one at a time keeps them honest.
static ONE_RUN_AT_A_TIME: Mutex<()> = Mutex::new(());

fn check(work_dir: &Path, args: &[&str]) -> (Output, Option<Value>) {
    let report = work_dir.join("report.json");
    let output = Command::new(CAIRN)
        .arg("check")
        .arg("--work-dir")
        .arg(work_dir.join("run"))
        .arg("--report-json")
        .arg(&report)
        .args(args)
        .output()
        .expect("cairn check runs");
    let report = std::fs::read(&report)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    (output, report)
}

/// Runs `cairn check ARGS` in a fresh work directory, one long run at a
/// time.
fn check_alone(args: &[&str]) -> (Output, Option<Value>) {
    let _one = ONE_RUN_AT_A_TIME
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let dir = tempfile::tempdir().unwrap();
    check(dir.path(), args)
}

/// A run that must pass with at least 15 faults injected; its report.
fn passing_run(args: &[&str]) -> Value {
    passing_run_with_faults(args, 15)
}

/// A run that must pass with at least `faults_min` faults injected; its
/// report.
fn passing_run_with_faults(args: &[&str], faults_min: u64) -> Value {
    let (output, report) = check_alone(args);
    assert!(output.status.success(), "{}", text(&output));
    let report = report.expect("a JSON report");
    assert!(faults_injected(&report) >= faults_min, "{report:#}");
    report
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Checks whose examined count is zero in `report`.
fn blind_checks(report: &Value, except: &[&str]) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|check| check["examined"] == 0)
        .map(|check| check["name"].as_str().unwrap().to_string())
        .filter(|name| !except.contains(&name.as_str()))
        .collect()
}

/// The claims and fenced writes did what the checks need: keys won in
/// several generations and leases that changed hands under a writer.
fn assert_coordination_exercised(report: &Value) {
    let coordination = &report["coordination"];
    assert!(
        coordination["claim_generations_logged"].as_u64().unwrap() >= 2,
        "{report:#}"
    );
    assert!(
        coordination["claims_lost"].as_u64().unwrap() >= 1,
        "{report:#}"
    );
    assert!(
        coordination["fenced_acknowledged"].as_u64().unwrap() >= 1,
        "{report:#}"
    );
    assert!(
        coordination["fenced_refused_stale"].as_u64().unwrap() >= 1,
        "{report:#}"
    );
    assert!(
        coordination["lease_grants_logged"].as_u64().unwrap() >= 2,
        "{report:#}"
    );
    // Timers fired, and some were deleted.
    assert!(
        coordination["timer_occurrences_logged"].as_u64().unwrap() >= 1,
        "{report:#}"
    );
    assert!(
        coordination["timers_deleted"].as_u64().unwrap() >= 1,
        "{report:#}"
    );
}

fn faults_injected(report: &Value) -> u64 {
    report["faults"]
        .as_object()
        .unwrap()
        .values()
        .map(|count| count.as_u64().unwrap())
        .sum()
}

#[test]
fn the_checker_passes_on_the_embedded_store_under_every_fault() {
    let report = passing_run(&[
        "--seed",
        "20261128",
        "--duration",
        "60s",
        "--fault-interval",
        "1s",
    ]);
    for kind in ["kill", "corruption", "network", "clock-jump"] {
        assert!(
            report["faults"][kind].as_u64().unwrap() >= 1,
            "no {kind} fault: {report:#}"
        );
    }
    assert_eq!(
        blind_checks(&report, &[]),
        Vec::<String>::new(),
        "{report:#}"
    );
    assert!(report["writes"]["acknowledged"].as_u64().unwrap() > 1_000);
    assert_coordination_exercised(&report);
}

#[test]
fn the_checker_passes_on_postgresql_with_three_servers_under_every_fault() {
    if std::env::var("CAIRN_TEST_POSTGRES").as_deref() == Ok("skip") {
        eprintln!("CAIRN_TEST_POSTGRES=skip: skipped");
        return;
    }
    let report = passing_run(&[
        "--backend",
        "postgres",
        "--servers",
        "3",
        "--seed",
        "20261129",
        "--duration",
        "60s",
        "--fault-interval",
        "1s",
    ]);
    for kind in ["kill", "postgres-restart", "network"] {
        assert!(
            report["faults"][kind].as_u64().unwrap() >= 1,
            "no {kind} fault: {report:#}"
        );
    }
    // Disk corruption is the database's business on this backend.
    let not_applicable = [
        "damaged data is never served",
        "no writes on top of detected corruption",
    ];
    assert_eq!(
        blind_checks(&report, &not_applicable),
        Vec::<String>::new(),
        "{report:#}"
    );
    assert_coordination_exercised(&report);
}

/// Whether PostgreSQL's programs are here for `--backend
/// postgres-replicated` (it needs no running server).
fn postgres_programs_installed() -> bool {
    let installed =
        cairn_store::postgres::private_cluster::PrivateCluster::find_bin_dir().is_some();
    if !installed {
        eprintln!(
            "skipped: PostgreSQL's programs (initdb, pg_ctl, pg_basebackup) are not installed"
        );
    }
    installed
}

#[test]
fn the_checker_passes_on_a_replicated_postgresql_through_failovers() {
    if !postgres_programs_installed() {
        return;
    }
    let report = passing_run_with_faults(
        &[
            "--backend",
            "postgres-replicated",
            "--servers",
            "2",
            "--seed",
            "20261208",
            "--duration",
            "30s",
            "--faults",
            "failover,kill",
            "--fault-interval",
            "3s",
        ],
        4,
    );
    assert!(
        report["faults"]["failover"].as_u64().unwrap() >= 2,
        "fewer than two failovers: {report:#}"
    );
    assert!(report["writes"]["acknowledged"].as_u64().unwrap() > 1_000);
}

#[test]
fn negative_control_failovers_lose_writes_acknowledged_without_the_standby() {
    if !postgres_programs_installed() {
        return;
    }
    let (output, report) = check_alone(&[
        "--backend",
        "postgres-replicated",
        "--replicated-commits-local",
        "--servers",
        "2",
        "--seed",
        "8",
        "--duration",
        "15s",
        "--faults",
        "failover",
        "--fault-interval",
        "5s",
    ]);
    assert!(
        !output.status.success(),
        "failovers without a synchronous standby lost nothing:\n{}",
        text(&output)
    );
    let report = report.expect("a JSON report");
    let durable = check_named(&report, "acknowledged writes are durable");
    assert!(
        !durable["counterexamples"].as_array().unwrap().is_empty(),
        "the lost writes went unnoticed: {report:#}"
    );
}

#[test]
fn the_checker_passes_with_auth_on_the_embedded_store() {
    // Short: the long runs above cover every fault; this one shows that
    // the oracle holds with --auth through crashes and restarts.
    let report = passing_run_with_faults(
        &[
            "--auth",
            "--seed",
            "20261206",
            "--duration",
            "25s",
            "--fault-interval",
            "1s",
        ],
        5,
    );
    assert!(
        report["deployment"]
            .as_str()
            .unwrap()
            .ends_with("with --auth"),
        "{report:#}"
    );
    // Corruption is drawn rarely in so short a run.
    let not_drawn = [
        "damaged data is never served",
        "no writes on top of detected corruption",
    ];
    assert_eq!(
        blind_checks(&report, &not_drawn),
        Vec::<String>::new(),
        "{report:#}"
    );
}

#[test]
fn the_checker_passes_with_auth_on_postgresql_with_two_servers() {
    if std::env::var("CAIRN_TEST_POSTGRES").as_deref() == Ok("skip") {
        eprintln!("CAIRN_TEST_POSTGRES=skip: skipped");
        return;
    }
    let report = passing_run_with_faults(
        &[
            "--auth",
            "--backend",
            "postgres",
            "--servers",
            "2",
            "--seed",
            "20261207",
            "--duration",
            "25s",
            "--fault-interval",
            "1s",
        ],
        5,
    );
    assert!(
        report["deployment"]
            .as_str()
            .unwrap()
            .ends_with("with --auth"),
        "{report:#}"
    );
    let not_applicable = [
        "damaged data is never served",
        "no writes on top of detected corruption",
    ];
    assert_eq!(
        blind_checks(&report, &not_applicable),
        Vec::<String>::new(),
        "{report:#}"
    );
}

/// The checks of claims, leases and timers: a ring leaves them out (they
/// are decided per deployment).
const COORDINATION_CHECKS: [&str; 10] = [
    "one winner per claim generation",
    "claim answers match the log",
    "claim answers never go back a generation",
    "lease fences strictly increase",
    "fenced writes only under the current fence",
    "stale-fenced writes are not stored",
    "timer occurrences stored at most once",
    "no phantom timer occurrences",
    "timer occurrences stored at least once after heal",
    "deleted timers do not fire",
];

/// The check named `name` of `report`.
fn check_named<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?}: {report:#}"))
}

#[test]
fn the_checker_passes_on_a_ring_of_three_linked_deployments_under_faults() {
    let report = passing_run_with_faults(
        &[
            "--topology",
            "ring3",
            "--seed",
            "20261215",
            "--duration",
            "25s",
            "--fault-interval",
            "1s",
        ],
        5,
    );
    assert!(
        report["deployment"].as_str().unwrap().starts_with("ring3"),
        "{report:#}"
    );
    // Corruption is drawn rarely in so short a run.
    let mut not_applicable = COORDINATION_CHECKS.to_vec();
    not_applicable.extend([
        "damaged data is never served",
        "no writes on top of detected corruption",
    ]);
    assert_eq!(
        blind_checks(&report, &not_applicable),
        Vec::<String>::new(),
        "{report:#}"
    );
    assert!(report["writes"]["acknowledged"].as_u64().unwrap() > 500);
    // Every link carried facts and is running after the clean restart.
    let links = report["links"].as_array().unwrap();
    assert_eq!(links.len(), 3, "{report:#}");
    for link in links {
        assert_eq!(link["state"], "running", "{report:#}");
        assert!(link["facts_received"].as_u64().unwrap() > 100, "{report:#}");
    }
    assert!(
        check_named(&report, "ring: no fact served without its predecessors")["examined"]
            .as_u64()
            .unwrap()
            > 100,
        "{report:#}"
    );
}

#[test]
fn negative_control_a_ring_link_with_other_types_than_expected_fails() {
    // A follows C for markers instead of items: A misses the items of B
    // and C, and holds C's marker, which no expected link brings.
    let (output, report) = check_alone(&[
        "--topology",
        "ring3",
        "--ring-misdefined-link",
        "--seed",
        "8",
        "--duration",
        "8s",
        "--faults",
        "none",
    ]);
    assert!(
        !output.status.success(),
        "the misdefined link passed:\n{}",
        text(&output)
    );
    let report = report.expect("a JSON report");
    let counterexamples = check_named(&report, "ring: each server holds exactly its filtered set")
        ["counterexamples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|example| example.as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert!(
        counterexamples
            .iter()
            .any(|example| example.starts_with("server 0 lacks")),
        "{report:#}"
    );
    assert!(
        counterexamples.iter().any(
            |example| example.starts_with("server 0 holds") && example.contains("check.Marker")
        ),
        "{report:#}"
    );
}

#[test]
fn negative_control_the_checker_fails_a_server_that_acknowledges_before_writing() {
    let (output, report) = check_alone(&[
        "--seed",
        "7",
        "--duration",
        "20s",
        "--faults",
        "kill",
        "--fault-interval",
        "2s",
        "--server-arg=--unsafe-ack-before-write",
    ]);
    assert!(
        !output.status.success(),
        "the unsafe server passed:\n{}",
        text(&output)
    );
    let report = report.expect("a JSON report");
    let durable = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["name"] == "acknowledged writes are durable")
        .unwrap();
    assert!(
        !durable["counterexamples"].as_array().unwrap().is_empty(),
        "the lost writes went unnoticed: {report:#}"
    );
    assert!(text(&output).contains("violation"), "{}", text(&output));
}

#[test]
fn bad_arguments_get_a_clear_error_and_start_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 16] = [
        (
            &["--faults", "kill,earthquake"],
            "unknown fault \"earthquake\"",
        ),
        (&["--duration", "forever"], "not a duration"),
        (&["--duration", "0s"], "more than 0"),
        (
            &["--store", "postgres://127.0.0.1:1/x"],
            "--store needs --backend postgres",
        ),
        (&["--backend", "oracle"], "invalid value"),
        (
            &[
                "--backend",
                "postgres-replicated",
                "--store",
                "postgres://x",
            ],
            "creates its own primary and standby",
        ),
        (
            &["--replicated-commits-local"],
            "a negative control of --backend postgres-replicated",
        ),
        (&["--claimers", "65"], "65 is not in 0..=64"),
        (&["--timer-setters", "65"], "65 is not in 0..=64"),
        (
            &["--fenced-writers", "x"],
            "invalid value 'x' for '--fenced-writers",
        ),
        (
            &["--url", "https://example.com"],
            "only http:// server URLs",
        ),
        (
            &["--auth", "--url", "http://127.0.0.1:1"],
            "cannot be used with",
        ),
        (&["--topology", "star"], "invalid value 'star'"),
        (
            &["--topology", "ring3", "--backend", "postgres"],
            "it needs --backend embedded",
        ),
        (
            &["--topology", "ring3", "--auth"],
            "does not run with --auth",
        ),
        (
            &["--ring-misdefined-link"],
            "a negative control of --topology ring3",
        ),
    ];
    for (args, expected) in cases {
        let (output, report) = check(dir.path(), args);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(
            text(&output).contains(expected),
            "{args:?}: {}",
            text(&output)
        );
        assert!(report.is_none());
    }
    let busy = dir.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("precious"), "keep me").unwrap();
    let output = Command::new(CAIRN)
        .args(["check", "--work-dir"])
        .arg(&busy)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(text(&output).contains("is not empty"), "{}", text(&output));
    assert_eq!(
        std::fs::read_to_string(busy.join("precious")).unwrap(),
        "keep me"
    );
}
