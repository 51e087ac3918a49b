//! Storage faults against the real binary: a failing sync poisons the store
//! (writes refused, health 503, nothing acknowledged on unknown disk state),
//! and corrupted data files are detected and never served as facts.

mod common;

use common::*;
use serde_json::json;

#[test]
fn a_failed_sync_poisons_the_store_until_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--fail-sync-after", "2"]);
    let first = put_one(&server, fact("Poison.Test", json!({"n": 1}), json!({})));
    let second = put_one(&server, fact("Poison.Test", json!({"n": 2}), json!({})));
    let (status, answer) = post_facts(&server, &[fact("Poison.Test", json!({"n": 3}), json!({}))]);
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (503, Some("storage_failure")),
        "{answer}"
    );
    let (status, answer) = post_facts(&server, &[fact("Poison.Test", json!({"n": 4}), json!({}))]);
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (503, Some("store_poisoned")),
        "{answer}"
    );
    let (status, health) = get_json(&server, "/v1/health");
    assert_eq!(
        (status, health["error"]["code"].as_str()),
        (503, Some("store_poisoned"))
    );
    // Reads still answer, and show only what was acknowledged.
    assert_eq!(get_json(&server, &format!("/v1/facts/{first}")).0, 200);
    let (_, log) = get_json(&server, "/v1/log");
    assert_eq!(log["facts"].as_array().unwrap().len(), 2);
    let metrics = metrics_text(&server);
    assert!(metrics.contains("cairn_store_poisoned 1"));
    server.kill9();

    let server = Server::start(dir.path(), &[]);
    assert_eq!(get_json(&server, "/v1/health").0, 200);
    for hash in [&first, &second] {
        assert_eq!(get_json(&server, &format!("/v1/facts/{hash}")).0, 200);
    }
    put_one(&server, fact("Poison.Test", json!({"n": 5}), json!({})));
}

/// Flips one byte in every 4 KiB of every store file of 4 KiB or more
/// (journals and table segments).
fn corrupt_fact_records(data: &std::path::Path) -> usize {
    let mut n_corrupted = 0;
    let mut pending = vec![data.join("store")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let mut bytes = std::fs::read(&path).unwrap();
            if bytes.len() < 4096 {
                continue;
            }
            for offset in (2048..bytes.len()).step_by(4096) {
                bytes[offset] ^= 0x5a;
            }
            std::fs::write(&path, bytes).unwrap();
            n_corrupted += 1;
        }
    }
    n_corrupted
}

#[test]
fn corrupted_data_files_are_detected_and_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let mut written = Vec::new();
    for batch in 0..20 {
        let facts: Vec<_> = (0..500)
            .map(|n| {
                fact(
                    "Corrupt.Me",
                    json!({"batch": batch, "n": n, "text": "some text that compresses ".repeat(8)}),
                    json!({}),
                )
            })
            .collect();
        let (status, answer) = post_facts(&server, &facts);
        assert_eq!(status, 200);
        written.extend(
            answer["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["hash"].as_str().unwrap().to_string()),
        );
    }
    assert_eq!(server.terminate().code(), Some(0));
    assert!(
        corrupt_fact_records(dir.path()) > 0,
        "there were data files to corrupt"
    );

    // The server may refuse to start, or start and refuse to serve damaged
    // facts; it must never answer a fact whose bytes do not match its hash.
    let server = match Server::try_start(dir.path(), &[]) {
        Ok(server) => server,
        Err(stderr) => {
            // Refusing to start on a damaged store, saying why, is a correct answer.
            eprintln!("the server refused the damaged store:\n{stderr}");
            assert!(
                stderr.contains("damaged")
                    || stderr.contains("corrupt")
                    || stderr.contains("checksum"),
                "{stderr}"
            );
            return;
        }
    };
    let client = http();
    let mut n_refused = 0;
    for hash in &written {
        let response = client
            .get(server.url(&format!("/v1/facts/{hash}")))
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        match status {
            200 => {
                let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
                let canonical = cairn_fact::CanonicalFact::from_json(
                    answer["fact"].to_string().as_bytes(),
                    65536,
                )
                .unwrap();
                assert_eq!(
                    &canonical.hash.to_hex(),
                    hash,
                    "served a fact that does not match its hash"
                );
            }
            404 | 500 => n_refused += 1,
            other => panic!("unexpected status {other}: {text}"),
        }
    }
    assert!(n_refused > 0, "the corruption was noticed");
    let (status, health) = get_json(&server, "/v1/health");
    assert_eq!(
        (status, health["error"]["code"].as_str()),
        (503, Some("store_poisoned")),
        "corruption stops writes"
    );
}
