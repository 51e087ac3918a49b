//! `cairn demo` end to end: the real binary runs the café for 20 s with
//! seed 13 — every kind of fault once, and the two services killed are
//! payments (which runs the fulfilment sagas, so they resume from their
//! journals) and a cook (whose orders its claims keep from being made
//! twice) — and must end with every invariant passed and no process of its
//! own left; the same seed must print the
//! same schedule; bad flags and an occupied port must fail clearly and
//! start nothing.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

/// A free loopback address (the port is free once the listener drops).
fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").to_string()
}

fn demo(arguments: &[&str]) -> Output {
    Command::new(CAIRN)
        .arg("demo")
        .args(arguments)
        .output()
        .expect("cairn demo runs")
}

/// PIDs of the processes whose command line names `directory` (every child
/// of the demo gets a path under its data directory).
fn processes_using(directory: &Path) -> Vec<String> {
    let needle = directory.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|character| character.is_ascii_digit()) {
            continue;
        }
        let Ok(command_line) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let command_line = String::from_utf8_lossy(&command_line).replace('\0', " ");
        if command_line.contains(&needle) {
            found.push(format!("{name}: {command_line}"));
        }
    }
    found
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_demo_survives_every_fault_and_every_invariant_holds() {
    let data = tempfile::tempdir().expect("a temporary directory");
    let data_dir = data.path().join("run");
    let address = free_address();
    let output = demo(&[
        "--duration",
        "20s",
        "--seed",
        "13",
        "--listen",
        &address,
        "--data",
        data_dir.to_str().expect("a UTF-8 path"),
    ]);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let last_line = stdout.lines().next_back();
    assert_eq!(
        last_line,
        Some("invariants: 10 passed, 0 failed"),
        "stdout:\n{stdout}"
    );
    for happened in [
        "fault: SIGKILL",
        "fault: card provider outage",
        "fault: kill -9 Cairn",
        "restarted Cairn",
        "fault: SIGKILL payments",
        "fault: SIGKILL kitchen-",
        "card provider back",
        &format!("http://{address}/ui/"),
    ] {
        assert!(stdout.contains(happened), "{happened:?} missing:\n{stdout}");
    }
    assert_eq!(
        stdout.matches("fault: SIGKILL").count(),
        2,
        "two services killed:\n{stdout}"
    );
    let left = processes_using(&data_dir);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    assert!(
        TcpListener::bind(&address).is_ok(),
        "Cairn's port is free again"
    );
}

#[test]
fn the_same_seed_prints_the_same_schedule() {
    let schedule = |seed: &str| {
        let output = demo(&["--duration", "2m", "--seed", seed, "--schedule-only"]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout)
    };
    let first = schedule("42");
    assert_eq!(first, schedule("42"));
    assert_ne!(first, schedule("43"));
    for kind in ["SIGKILL the", "card provider fails", "kill -9 Cairn"] {
        assert!(first.contains(kind), "{kind:?} missing:\n{first}");
    }
}

#[test]
fn bad_flags_fail_clearly_and_start_nothing() {
    let data = tempfile::tempdir().expect("a temporary directory");
    let data_dir = data.path().join("run");
    let data_arg = data_dir.to_str().expect("a UTF-8 path");
    let cases: [(&[&str], &str); 5] = [
        (&["--duration", "5s"], "--duration must be from 20 s"),
        (&["--duration", "soon"], "is not a duration"),
        (&["--seed=-3"], "--seed"),
        (&["--listen", "not-an-address"], "--listen"),
        (&["--no-such-flag"], "--no-such-flag"),
    ];
    for (arguments, expected) in cases {
        let mut all = arguments.to_vec();
        all.extend(["--data", data_arg]);
        let output = demo(&all);
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{arguments:?} must fail");
        assert!(
            stderr.contains(expected),
            "{arguments:?}: {expected:?} not in {stderr}"
        );
        assert!(
            !data_dir.exists(),
            "{arguments:?} created the data directory"
        );
        assert!(processes_using(&data_dir).is_empty());
    }
}

#[test]
fn an_occupied_port_fails_clearly_and_leaves_nothing() {
    let data = tempfile::tempdir().expect("a temporary directory");
    let data_dir = data.path().join("run");
    let occupied = TcpListener::bind("127.0.0.1:0").expect("a port to occupy");
    let address = occupied.local_addr().expect("its address").to_string();
    let output = demo(&[
        "--duration",
        "20s",
        "--listen",
        &address,
        "--data",
        data_dir.to_str().expect("a UTF-8 path"),
    ]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!("cannot listen on {address}")) && stderr.contains("--listen"),
        "{stderr}"
    );
    assert!(!data_dir.exists(), "nothing was set up");
    assert!(processes_using(&data_dir).is_empty());
    drop(occupied);
}

#[test]
fn sigterm_stops_the_demo_and_every_process_it_started() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let data = tempfile::tempdir().expect("a temporary directory");
    let data_dir = data.path().join("run");
    let address = free_address();
    let mut demo = Command::new(CAIRN)
        .args(["demo", "--duration", "60s", "--listen", &address, "--data"])
        .arg(&data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cairn demo starts");
    // Wait (bounded by the demo's own start-up timeouts) until the services
    // run: the line with the console's URL comes after they are started.
    let stdout = demo.stdout.take().expect("its stdout");
    let mut lines = BufReader::new(stdout).lines();
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.starts_with("services:"));
    assert!(started, "the demo did not get to start its services");
    assert!(!processes_using(&data_dir).is_empty(), "its children run");
    let killed = Command::new("kill")
        .args(["-TERM", &demo.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = demo.wait().expect("the demo ends");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut demo.stderr.take().expect("stderr"), &mut stderr)
        .expect("its stderr");
    assert!(!status.success());
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
    let left = processes_using(&data_dir);
    assert!(left.is_empty(), "processes left behind: {left:?}");
}
