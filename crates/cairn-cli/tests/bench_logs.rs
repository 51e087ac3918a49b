//! `cairn bench --latency-log` end to end against the real binary: the
//! consume workload writes one CSV line per cycle (a pull and its durable
//! ack), and the lines account for every message consumed.

mod common;

use common::*;

#[test]
fn the_consume_workload_logs_every_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let log = dir.path().join("cycles.csv");
    let output = run_cli(
        &[
            "bench",
            "--server",
            &server.base,
            "--workload",
            "consume",
            "--clients",
            "2",
            "--batch",
            "100",
            "--preload",
            "1000",
            "--duration",
            "60",
            "--latency-log",
            log.to_str().unwrap(),
        ],
        "",
    );
    assert!(output.success, "{}", output.stderr);
    assert!(output.stdout.contains("consumed=1000"), "{}", output.stdout);

    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("started_s,latency_ms,facts"));
    let cycles: Vec<(f64, f64, u64)> = lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 3, "{line}");
            (
                fields[0].parse().unwrap(),
                fields[1].parse().unwrap(),
                fields[2].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(cycles.iter().map(|cycle| cycle.2).sum::<u64>(), 1000);
    assert!(cycles.iter().all(|cycle| cycle.1 > 0.0 && cycle.2 > 0));
    assert!(
        cycles.windows(2).all(|pair| pair[0].0 <= pair[1].0),
        "in the order the cycles started"
    );
}
