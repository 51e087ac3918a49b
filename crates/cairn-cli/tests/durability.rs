//! Durability under `kill -9`: many concurrent writers, the server killed
//! mid-write, restarted on the same directory, and every acknowledged fact
//! checked — present, byte-identical, with its predecessors; the log
//! gap-free. A negative control runs the same check against a server that
//! acknowledges before writing, and must catch lost writes.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_fact::CanonicalFact;
use common::*;
use serde_json::json;

const WRITERS: usize = 16;
const CYCLES: usize = 4;
const RUN_BEFORE_KILL: Duration = Duration::from_millis(1500);

/// What a writer saw acknowledged: hash → (expected canonical bytes, predecessor hashes).
type Acknowledged = Arc<Mutex<HashMap<String, (Vec<u8>, Vec<String>)>>>;

/// Runs writers against `server` until `stop`, recording acknowledged facts.
/// Each writer chains its facts (each names the writer's previous
/// acknowledged fact) and sometimes sends batches, so predecessors and
/// batch atomicity are exercised.
fn write_until_stopped(
    server: &Server,
    cycle: usize,
    acknowledged: &Acknowledged,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..WRITERS)
        .map(|writer| {
            let base = server.base.clone();
            let acknowledged = Arc::clone(acknowledged);
            let stop = Arc::clone(stop);
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
                let mut previous: Option<String> = None;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let batch_len = if n.is_multiple_of(5) { 10 } else { 1 };
                    let mut facts = Vec::new();
                    let mut expected = Vec::new();
                    for _ in 0..batch_len {
                        n += 1;
                        let predecessors = match &previous {
                            Some(hash) => json!({ "previous": hash }),
                            None => json!({}),
                        };
                        let value = fact("Durable.Write", json!({"cycle": cycle, "writer": writer, "n": n, "pad": "p".repeat(200)}), predecessors);
                        let canonical = CanonicalFact::from_json(value.to_string().as_bytes(), 65536).unwrap();
                        previous = Some(canonical.hash.to_hex());
                        expected.push((canonical.hash.to_hex(), canonical.canonical.clone(), canonical.fact.all_predecessors().map(|(_, h)| h.to_hex()).collect::<Vec<_>>()));
                        facts.push(value);
                    }
                    let response = client
                        .post(format!("{base}/v1/facts"))
                        .header("content-type", "application/json")
                        .body(json!({ "facts": facts }).to_string())
                        .send();
                    let Ok(response) = response else { return };
                    if response.status() != 200 {
                        return;
                    }
                    let Ok(answer) = response.json::<serde_json::Value>() else { return };
                    let mut acknowledged = acknowledged.lock().unwrap();
                    for ((hash, canonical, predecessors), result) in expected.into_iter().zip(answer["results"].as_array().unwrap()) {
                        assert_eq!(result["hash"].as_str(), Some(hash.as_str()), "server and client agree on hashes");
                        acknowledged.insert(hash, (canonical, predecessors));
                    }
                }
            })
        })
        .collect()
}

/// Checks every acknowledged fact after a restart; returns the violations.
/// The whole log is read once: it must be gap-free from seq 1, every entry
/// must re-hash (on this side) to its hash, and every acknowledged fact
/// must be in it with identical canonical bytes and with its predecessors
/// at lower seqs. A sample is also fetched by hash and compared byte for byte.
fn check(server: &Server, acknowledged: &Acknowledged) -> Vec<String> {
    let mut violations = Vec::new();
    let mut stored: HashMap<String, (u64, Vec<u8>)> = HashMap::new();
    let mut after = 0;
    loop {
        let (status, page) = get_json(server, &format!("/v1/log?after={after}&limit=10000"));
        assert_eq!(status, 200, "{page}");
        let entries = page["facts"].as_array().unwrap();
        if entries.is_empty() {
            break;
        }
        for entry in entries {
            let seq = entry["seq"].as_u64().unwrap();
            if seq != after + 1 {
                violations.push(format!("log gap: {after} then {seq}"));
            }
            after = seq;
            let hash = entry["hash"].as_str().unwrap().to_string();
            let rehashed =
                CanonicalFact::from_json(entry["fact"].to_string().as_bytes(), 65536).unwrap();
            if rehashed.hash.to_hex() != hash {
                violations.push(format!("log entry {seq} does not hash to {hash}"));
            }
            stored.insert(hash, (seq, rehashed.canonical));
        }
    }
    let acknowledged = acknowledged.lock().unwrap();
    for (hash, (canonical, predecessors)) in acknowledged.iter() {
        let Some((seq, stored_canonical)) = stored.get(hash) else {
            violations.push(format!("acknowledged fact {hash} is missing"));
            continue;
        };
        if stored_canonical != canonical {
            violations.push(format!("fact {hash} is not byte-identical"));
        }
        for predecessor in predecessors {
            if stored
                .get(predecessor)
                .is_none_or(|(predecessor_seq, _)| predecessor_seq >= seq)
            {
                violations.push(format!(
                    "fact {hash} is stored without its predecessor {predecessor} before it"
                ));
            }
        }
    }
    let client = http();
    for (hash, (canonical, _)) in acknowledged.iter().take(100) {
        let text = client
            .get(server.url(&format!("/v1/facts/{hash}")))
            .send()
            .unwrap()
            .text()
            .unwrap();
        if stored.contains_key(hash)
            && !text.ends_with(&format!(
                ",\"fact\":{}}}",
                String::from_utf8_lossy(canonical)
            ))
        {
            violations.push(format!("GET {hash} is not byte-identical: {text:.200}"));
        }
    }
    violations
}

/// Restarts the server after a kill. A server that refuses to open because
/// it finds acknowledged facts missing has detected a loss: that is a
/// violation too, reported with its message.
fn restart(
    dir: &std::path::Path,
    extra_args: &[&str],
    violations: &mut Vec<String>,
) -> Option<Server> {
    match Server::try_start(dir, extra_args) {
        Ok(server) => Some(server),
        Err(stderr) => {
            violations.push(format!(
                "acknowledged facts are missing: the server refused to start: {stderr}"
            ));
            None
        }
    }
}

/// Runs the kill -9 cycles with the given server flags; returns the violations.
fn kill_cycles(extra_args: &[&str], cycles: usize) -> (Vec<String>, usize) {
    let dir = tempfile::tempdir().unwrap();
    let acknowledged: Acknowledged = Arc::default();
    let mut violations = Vec::new();
    for cycle in 0..cycles {
        let Some(mut server) = restart(dir.path(), extra_args, &mut violations) else {
            break;
        };
        violations.extend(check(&server, &acknowledged));
        let stop = Arc::new(AtomicBool::new(false));
        let writers = write_until_stopped(&server, cycle, &acknowledged, &stop);
        let started = Instant::now();
        while started.elapsed() < RUN_BEFORE_KILL {
            std::thread::sleep(Duration::from_millis(50));
        }
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            writer.join().unwrap();
        }
    }
    if let Some(server) = restart(dir.path(), extra_args, &mut violations) {
        violations.extend(check(&server, &acknowledged));
    }
    let n_acknowledged = acknowledged.lock().unwrap().len();
    (violations, n_acknowledged)
}

#[test]
fn every_acknowledged_write_survives_kill_9() {
    let (violations, n_acknowledged) = kill_cycles(&[], CYCLES);
    assert!(
        n_acknowledged > 100,
        "the writers made progress ({n_acknowledged} acknowledged)"
    );
    assert!(
        violations.is_empty(),
        "{} violation(s):\n{}",
        violations.len(),
        violations.join("\n")
    );
}

#[test]
fn negative_control_acknowledging_before_writing_loses_writes() {
    let (violations, n_acknowledged) = kill_cycles(&["--unsafe-ack-before-write"], CYCLES);
    assert!(
        n_acknowledged > 100,
        "the writers made progress ({n_acknowledged} acknowledged)"
    );
    assert!(
        violations
            .iter()
            .any(|violation| violation.contains("is missing")),
        "the durability check must catch the unsafe server losing acknowledged writes"
    );
}
