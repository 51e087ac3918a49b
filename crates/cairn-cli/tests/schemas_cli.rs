//! `cairn schemas` against a real `cairn serve`: register (from a file and
//! from standard input), the same registration again, an incompatible
//! version refused with a non-zero exit that names the rule, list (table
//! and JSON, all types or one), show, bad files refused before anything is
//! sent, and on a server with `--auth`, the token options: a reader lists
//! but may not register. A write that breaks the schema (`cairn put`)
//! prints each violation.

mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};

const ORDER_TYPE: &str = "Shop.Order";

fn registration_v1() -> Value {
    json!({
        "schema": {
            "type": "object",
            "properties": {"id": {"type": "string"}, "amount": {"type": "number"}},
            "required": ["id", "amount"],
            "additionalProperties": false,
        },
        "compatibility": "backward",
    })
}

fn registration_v2() -> Value {
    json!({
        "schema": {
            "type": "object",
            "properties": {"id": {"type": "string"}, "total": {"type": "number"}},
            "required": ["id", "total"],
            "additionalProperties": false,
        },
        "compatibility": "backward",
        "upcast": [{"op": "rename", "from": "/amount", "to": "/total"}],
    })
}

/// Version 2 requiring a member that version 1 facts lack, with no upcast
/// to supply it: not backward compatible.
fn registration_v2_incompatible() -> Value {
    json!({
        "schema": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "amount": {"type": "number"},
                "currency": {"type": "string"},
            },
            "required": ["id", "amount", "currency"],
            "additionalProperties": false,
        },
        "compatibility": "backward",
    })
}

fn write_file(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("file written");
    path.display().to_string()
}

/// Runs `cairn schemas ARGS... --server BASE [--token TOKEN]`.
fn schemas(server: &Server, token: Option<&str>, args: &[&str], input: &str) -> CliOutput {
    let mut all = vec!["schemas"];
    all.extend(args);
    all.extend(["--server", server.base.as_str()]);
    if let Some(token) = token {
        all.extend(["--token", token]);
    }
    run_cli(&all, input)
}

fn stdout_json(output: &CliOutput) -> Value {
    assert!(output.success, "the command failed: {}", output.stderr);
    serde_json::from_str(&output.stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", output.stdout))
}

#[test]
fn register_list_show_and_refusals() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let v1_file = write_file(files.path(), "v1.json", &registration_v1().to_string());

    let first = stdout_json(&schemas(
        &server,
        None,
        &["register", ORDER_TYPE, "1", &v1_file],
        "",
    ));
    assert_eq!(first["registered"], true, "{first}");
    assert_eq!(first["version"], 1, "{first}");
    let again = stdout_json(&schemas(
        &server,
        None,
        &["register", ORDER_TYPE, "1", &v1_file],
        "",
    ));
    assert_eq!(
        again["registered"], false,
        "the same registration again: {again}"
    );
    assert_eq!(again["hash"], first["hash"]);

    // An incompatible version 2: refused, naming the rule and the version
    // it breaks with; nothing registered.
    let incompatible = write_file(
        files.path(),
        "v2-bad.json",
        &registration_v2_incompatible().to_string(),
    );
    let refused = schemas(
        &server,
        None,
        &["register", ORDER_TYPE, "2", &incompatible],
        "",
    );
    assert!(!refused.success, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("incompatible_schema")
            && refused
                .stderr
                .contains("required_property_added_to_unopen_content_model")
            && refused
                .stderr
                .contains("breaks backward compatibility with version 1"),
        "{}",
        refused.stderr
    );
    let missing = schemas(&server, None, &["show", ORDER_TYPE, "2"], "");
    assert!(!missing.success);
    assert!(
        missing.stderr.contains("unknown_schema"),
        "{}",
        missing.stderr
    );

    // Version 2 from standard input.
    let second = stdout_json(&schemas(
        &server,
        None,
        &["register", ORDER_TYPE, "2", "-"],
        &registration_v2().to_string(),
    ));
    assert_eq!(second["registered"], true, "{second}");

    let shown = stdout_json(&schemas(&server, None, &["show", ORDER_TYPE, "2"], ""));
    assert_eq!(shown["type"], ORDER_TYPE);
    assert_eq!(shown["schema"], registration_v2()["schema"]);
    assert_eq!(shown["upcast"], registration_v2()["upcast"]);
    assert_eq!(shown["hash"], second["hash"]);

    let table = schemas(&server, None, &["list"], "");
    assert!(table.success, "{}", table.stderr);
    let rows: Vec<&str> = table.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{}", table.stdout);
    assert!(
        rows[0].starts_with("Shop.Order  1  backward  "),
        "{}",
        table.stdout
    );
    assert!(
        rows[1].starts_with("Shop.Order  2  backward  "),
        "{}",
        table.stdout
    );
    let all = stdout_json(&schemas(&server, None, &["list", "--json"], ""));
    assert_eq!(all["types"][0]["type"], ORDER_TYPE, "{all}");
    let one = stdout_json(&schemas(&server, None, &["list", ORDER_TYPE, "--json"], ""));
    assert_eq!(one["versions"].as_array().map(Vec::len), Some(2), "{one}");
    assert_eq!(one["versions"][1]["hash"], second["hash"]);
    let unknown = schemas(&server, None, &["list", "Shop.Nothing"], "");
    assert!(!unknown.success);
    assert!(
        unknown.stderr.contains("unknown_schema"),
        "{}",
        unknown.stderr
    );

    // A write that does not fit version 2 prints each violation.
    let fact = json!({
        "type": ORDER_TYPE,
        "fields": {"id": "o-1", "total": "ten", "cairn_version": 2},
        "predecessors": {},
    });
    let put = run_cli(&["put", "--server", &server.base], &fact.to_string());
    assert!(!put.success, "{}", put.stdout);
    assert!(
        put.stderr.contains("schema_violation") && put.stderr.contains("type at /fields/total"),
        "{}",
        put.stderr
    );
}

#[test]
fn bad_files_and_versions_are_refused_before_anything_is_sent() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let not_json = write_file(files.path(), "not.json", "{ this is not JSON");
    let unknown_member = write_file(
        files.path(),
        "extra.json",
        &json!({"schema": {}, "compatibility": "backward", "upcasts": []}).to_string(),
    );
    let bad_upcast = write_file(
        files.path(),
        "upcast.json",
        &json!({
            "schema": {},
            "compatibility": "backward",
            "upcast": [{"op": "rename", "from": "/a", "to": "/b/c"}],
        })
        .to_string(),
    );
    let absent = files.path().join("absent.json").display().to_string();
    for (file, expected) in [
        (not_json.as_str(), "is not a schema registration"),
        (unknown_member.as_str(), "upcasts"),
        (bad_upcast.as_str(), "upcast[0]"),
        (absent.as_str(), "cannot read"),
    ] {
        let output = schemas(&server, None, &["register", ORDER_TYPE, "1", file], "");
        assert!(!output.success, "{file}: {}", output.stdout);
        assert!(
            output.stderr.contains(expected),
            "{file}: {}",
            output.stderr
        );
    }
    for version in ["0", "x", "01"] {
        let output = schemas(&server, None, &["show", ORDER_TYPE, version], "");
        assert!(!output.success);
        assert!(
            output.stderr.contains("schema version"),
            "{}",
            output.stderr
        );
    }
    let listed = stdout_json(&schemas(&server, None, &["list", "--json"], ""));
    assert_eq!(listed, json!({"types": []}), "nothing was registered");
}

#[test]
fn the_token_options_reach_a_server_with_auth() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let mut bootstrap = vec!["tokens", "create", "--name", "admin", "--admin"];
    let store_args = offline_store_args(data.path());
    bootstrap.extend(store_args.iter().map(String::as_str));
    let admin = last_line(&run_cli(&bootstrap, ""));
    let server = Server::start(data.path(), &["--auth"]);
    let reader = last_line(&run_cli(
        &[
            "tokens",
            "create",
            "--server",
            &server.base,
            "--token",
            &admin,
            "--name",
            "reader",
            "--read",
            "Shop.*",
        ],
        "",
    ));
    let v1_file = write_file(files.path(), "v1.json", &registration_v1().to_string());

    let anonymous = schemas(&server, None, &["list"], "");
    assert!(!anonymous.success);
    assert!(anonymous.stderr.contains("401"), "{}", anonymous.stderr);
    let forbidden = schemas(
        &server,
        Some(&reader),
        &["register", ORDER_TYPE, "1", &v1_file],
        "",
    );
    assert!(!forbidden.success);
    assert!(
        forbidden.stderr.contains("forbidden"),
        "{}",
        forbidden.stderr
    );
    let registered = stdout_json(&schemas(
        &server,
        Some(&admin),
        &["register", ORDER_TYPE, "1", &v1_file],
        "",
    ));
    assert_eq!(registered["registered"], true);
    let shown = stdout_json(&schemas(
        &server,
        Some(&reader),
        &["show", ORDER_TYPE, "1"],
        "",
    ));
    assert_eq!(shown["hash"], registered["hash"]);
}

/// The last line a command printed (a token), after checking it succeeded.
fn last_line(output: &CliOutput) -> String {
    assert!(output.success, "the command failed: {}", output.stderr);
    output.stdout.lines().last().expect("a line").to_string()
}
