//! Durable timers end to end against the real binary, on whichever backend
//! the tests run (`CAIRN_TEST_BACKEND=postgres` for PostgreSQL): one-shot
//! timers, cron across daylight-saving changes and catch-up after downtime
//! (on the embedded store, whose clock the fault clock file moves), deleted
//! timers that never fire, exactly one fact per occurrence across repeated
//! `kill -9`, several servers sharing one database, a template whose
//! predecessor arrives late, the CLI, and bad input that changes nothing.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn_api::format_utc_ms;
use common::*;
use serde_json::{json, Value};

const TEMPLATE_TYPE: &str = "Test.TimerFired";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn template(fields: Value) -> Value {
    json!({ "type": TEMPLATE_TYPE, "fields": fields, "predecessors": {} })
}

fn put_timer(server: &Server, name: &str, body: &Value) -> (u16, Value) {
    json_answer(
        http()
            .put(server.url(&format!("/v1/timers/{name}")))
            .json(body)
            .send()
            .expect("server answers"),
    )
}

fn timer(server: &Server, name: &str) -> Value {
    let (status, view) = get_json(server, &format!("/v1/timers/{name}"));
    assert_eq!(status, 200, "{view}");
    view
}

/// Every fact a timer wrote, by timer name, with its `due` texts.
fn fired(server: &Server) -> HashMap<String, Vec<String>> {
    let mut by_timer: HashMap<String, Vec<String>> = HashMap::new();
    let mut after = 0;
    for _ in 0..1_000 {
        let (status, page) = get_json(server, &format!("/v1/log?after={after}&limit=10000"));
        assert_eq!(status, 200, "{page}");
        let facts = page["facts"].as_array().unwrap();
        if facts.is_empty() {
            break;
        }
        for stored in facts {
            let timer = &stored["fact"]["fields"]["cairn_timer"];
            if let (Some(name), Some(due)) = (timer["name"].as_str(), timer["due"].as_str()) {
                by_timer
                    .entry(name.to_string())
                    .or_default()
                    .push(due.to_string());
            }
        }
        after = page["next"].as_u64().unwrap();
    }
    by_timer
}

/// Waits (bounded) until `condition` holds.
fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Moves the embedded server's clock (`--fault-clock-file`) so that it
/// reads `target_ms` now, and waits until the server took the jump.
fn set_clock(server: &Server, clock_file: &Path, target_ms: u64) {
    let offset_ms = target_ms as i64 - now_ms() as i64;
    std::fs::write(clock_file, offset_ms.to_string()).unwrap();
    let marker = format!("offset_ms={offset_ms}");
    wait_until("the server's clock jumped", Duration::from_secs(10), || {
        server.log_text().contains(&marker)
    });
}

fn ms_of(rfc3339: &str) -> u64 {
    // Only the tests' own instants, all in whole seconds and UTC.
    let text = rfc3339.trim_end_matches('Z');
    let (date, time) = text.split_once('T').unwrap();
    let date: Vec<i64> = date.split('-').map(|part| part.parse().unwrap()).collect();
    let time: Vec<i64> = time.split(':').map(|part| part.parse().unwrap()).collect();
    let (year, month, day) = (date[0], date[1], date[2]);
    // days_from_civil.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    ((days * 86_400 + time[0] * 3_600 + time[1] * 60 + time[2]) * 1_000) as u64
}

#[test]
fn a_past_at_fires_at_once_and_a_near_at_fires_once() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let past = json!({ "at": "2020-01-01T00:00:00+01:00", "fact": template(json!({"n": 1})) });
    let (status, view) = put_timer(&server, "past", &past);
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["catch_up"], "latest");
    wait_until("the past timer fired", Duration::from_secs(10), || {
        fired(&server).contains_key("past")
    });
    assert_eq!(fired(&server)["past"], ["2019-12-31T23:00:00.000Z"]);
    wait_until("its progress is recorded", Duration::from_secs(10), || {
        timer(&server, "past")["last_fired"] == "2019-12-31T23:00:00.000Z"
    });
    assert!(timer(&server, "past").get("next_due").is_none());

    let at = format_utc_ms(now_ms() + 1_500);
    let near = json!({ "at": at, "fact": template(json!({"n": 2})) });
    let (status, view) = put_timer(&server, "near", &near);
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["next_due"], at);
    assert!(
        !fired(&server).contains_key("near"),
        "fired before its time"
    );
    wait_until("the near timer fired", Duration::from_secs(10), || {
        fired(&server).contains_key("near")
    });
    wait_until("its progress is recorded", Duration::from_secs(10), || {
        timer(&server, "near")["last_fired"] == at
    });
    // The same definition again changes nothing and fires nothing again.
    let (status, _) = put_timer(&server, "near", &near);
    assert_eq!(status, 200);
    let sentinel = json!({ "at": "2020-01-01T00:00:00Z", "fact": template(json!({"n": 3})) });
    put_timer(&server, "sentinel", &sentinel);
    wait_until("the sentinel fired", Duration::from_secs(10), || {
        fired(&server).contains_key("sentinel")
    });
    let fired = fired(&server);
    assert_eq!(fired["near"], std::slice::from_ref(&at));
    assert_eq!(fired["past"].len(), 1);
    // The SDK and the CLI see the same.
    let listed = run_cli(&["timers", "list", "--json", "--server", &server.base], "");
    assert!(listed.success, "{}", listed.stderr);
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    let names: Vec<&str> = listed["timers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|timer| timer["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["near", "past", "sentinel"]);
}

#[test]
fn the_cli_sets_shows_and_deletes_timers() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let fact_file = data.path().join("template.json");
    std::fs::write(&fact_file, template(json!({"by": "cli"})).to_string()).unwrap();
    let fact_path = fact_file.display().to_string();
    let set = run_cli(
        &[
            "timers",
            "set",
            "nightly",
            "--cron",
            "0 3 * * *",
            "--timezone",
            "Europe/Berlin",
            "--fact",
            &fact_path,
            "--catch-up",
            "all",
            "--server",
            &server.base,
        ],
        "",
    );
    assert!(set.success, "{}", set.stderr);
    let shown = run_cli(&["timers", "show", "nightly", "--server", &server.base], "");
    assert!(shown.success, "{}", shown.stderr);
    let shown: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(shown["cron"], "0 3 * * *");
    assert_eq!(shown["catch_up"], "all");
    assert!(shown["next_due"].as_str().unwrap().ends_with(":00:00.000Z"));
    let from_stdin = run_cli(
        &[
            "timers",
            "set",
            "once",
            "--at",
            "2030-01-01T00:00:00Z",
            "--fact",
            "-",
            "--server",
            &server.base,
        ],
        &template(json!({})).to_string(),
    );
    assert!(from_stdin.success, "{}", from_stdin.stderr);
    for bad in [
        vec![
            "timers",
            "set",
            "-bad",
            "--at",
            "2030-01-01T00:00:00Z",
            "--fact",
            "-",
        ],
        vec!["timers", "set", "x", "--cron", "* * * * *", "--fact", "-"],
        vec![
            "timers",
            "set",
            "x",
            "--at",
            "2030-01-01T00:00:00Z",
            "--cron",
            "* * * * *",
            "--timezone",
            "UTC",
            "--fact",
            "-",
        ],
        vec![
            "timers",
            "set",
            "x",
            "--cron",
            "* * * * * *",
            "--timezone",
            "UTC",
            "--fact",
            "-",
        ],
        vec![
            "timers",
            "set",
            "x",
            "--cron",
            "* * * * *",
            "--timezone",
            "Mars/Base",
            "--fact",
            "-",
        ],
        vec!["timers", "show", "absent"],
        vec!["timers", "delete", "absent"],
    ] {
        let mut args = bad.clone();
        args.extend(["--server", &server.base]);
        let output = run_cli(&args, &template(json!({})).to_string());
        assert!(!output.success, "{bad:?} succeeded");
    }
    let deleted = run_cli(
        &["timers", "delete", "nightly", "--server", &server.base],
        "",
    );
    assert!(deleted.success, "{}", deleted.stderr);
    let (status, answer) = get_json(&server, "/v1/timers/nightly");
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error"]["code"], "unknown_timer");
}

#[test]
fn deleted_timers_never_fire() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let soon = format_utc_ms(now_ms() + 1_000);
    let later = format_utc_ms(now_ms() + 2_500);
    let (status, _) = put_timer(
        &server,
        "doomed",
        &json!({ "at": soon, "fact": template(json!({"d": 1})) }),
    );
    assert_eq!(status, 201);
    let cron = json!({ "cron": "* * * * *", "timezone": "UTC", "fact": template(json!({"d": 2})) });
    assert_eq!(put_timer(&server, "doomed-cron", &cron).0, 201);
    for name in ["doomed", "doomed-cron"] {
        let response = http()
            .delete(server.url(&format!("/v1/timers/{name}")))
            .send()
            .unwrap();
        let (status, answer) = json_answer(response);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer, json!({"deleted": true}));
    }
    let (status, _) = put_timer(
        &server,
        "sentinel",
        &json!({ "at": later, "fact": template(json!({"d": 3})) }),
    );
    assert_eq!(status, 201);
    wait_until("the sentinel fired", Duration::from_secs(15), || {
        fired(&server).contains_key("sentinel")
    });
    let fired = fired(&server);
    assert!(!fired.contains_key("doomed"), "{fired:?}");
    assert!(!fired.contains_key("doomed-cron"), "{fired:?}");
    let (status, _) = get_json(&server, "/v1/timers/doomed");
    assert_eq!(status, 404);
    let response = http()
        .delete(server.url("/v1/timers/doomed"))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
}

#[test]
fn a_template_whose_predecessor_is_missing_fires_once_it_is_stored() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let step = fact("Test.Step", json!({"id": 7}), json!({}));
    let step_hash = fact_hash(&step);
    let timeout = json!({
        "at": "2020-01-01T00:00:00Z",
        "fact": { "type": "Test.StepTimedOut", "fields": {}, "predecessors": { "step": step_hash } },
    });
    let (status, view) = put_timer(&server, "step-7-timeout", &timeout);
    assert_eq!(status, 201, "{view}");
    wait_until("the failure is shown", Duration::from_secs(10), || {
        timer(&server, "step-7-timeout")["last_error"]
            .as_str()
            .is_some_and(|error| error.contains(&step_hash))
    });
    assert!(!fired(&server).contains_key("step-7-timeout"));
    put_one(&server, step);
    wait_until(
        "the timeout fired after a retry",
        Duration::from_secs(20),
        || fired(&server).contains_key("step-7-timeout"),
    );
    wait_until("the error is cleared", Duration::from_secs(10), || {
        timer(&server, "step-7-timeout").get("last_error").is_none()
    });
}

#[test]
fn exactly_one_fact_per_occurrence_after_repeated_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), &[]);
    let start_ms = now_ms();
    let n_timers = 30;
    let mut dues = HashMap::new();
    for index in 0..n_timers {
        let due = format_utc_ms(start_ms + 200 * index as u64);
        let body = json!({ "at": due, "fact": template(json!({"k": index})) });
        let name = format!("k{index}");
        let (status, answer) = put_timer(&server, &name, &body);
        assert_eq!(status, 201, "{answer}");
        dues.insert(name, due);
    }
    // Kill the server while the timers come due, again and again.
    for round in 0..6 {
        std::thread::sleep(Duration::from_millis(150 + 70 * round));
        server.kill9();
        server = Server::start(data.path(), &[]);
    }
    wait_until("every timer fired", Duration::from_secs(30), || {
        let fired = fired(&server);
        dues.keys().all(|name| fired.contains_key(name))
    });
    wait_until(
        "every timer recorded its firing",
        Duration::from_secs(30),
        || {
            dues.iter()
                .all(|(name, due)| timer(&server, name)["last_fired"] == due.as_str())
        },
    );
    let fired = fired(&server);
    for (name, due) in &dues {
        assert_eq!(&fired[name], &vec![due.clone()], "timer {name}");
    }
}

#[test]
fn several_servers_on_one_database_fire_each_occurrence_once() {
    if !on_postgres() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let servers: Vec<Server> = (0..3).map(|_| Server::start(data.path(), &[])).collect();
    let start_ms = now_ms() + 500;
    let n_timers = 60;
    for index in 0..n_timers {
        let body = json!({
            "at": format_utc_ms(start_ms + 10 * index as u64),
            "fact": template(json!({"s": index})),
        });
        let (status, answer) = put_timer(&servers[index % 3], &format!("s{index}"), &body);
        assert_eq!(status, 201, "{answer}");
    }
    wait_until("every timer fired", Duration::from_secs(30), || {
        (0..n_timers).all(|index| {
            timer(&servers[0], &format!("s{index}"))
                .get("last_fired")
                .is_some()
        })
    });
    let fired = fired(&servers[1]);
    for index in 0..n_timers {
        assert_eq!(fired[&format!("s{index}")].len(), 1);
    }
    let mut fired_total = 0.0;
    for server in &servers {
        let text = metrics_text(server);
        let line = text
            .lines()
            .find(|line| line.starts_with("cairn_timer_fired_total "))
            .unwrap();
        fired_total += line.split(' ').nth(1).unwrap().parse::<f64>().unwrap();
    }
    assert!(fired_total >= n_timers as f64, "{fired_total}");
}

#[test]
fn cron_across_daylight_saving_changes_on_the_fault_clock() {
    if on_postgres() {
        // The fault clock moves the embedded store's time only; PostgreSQL
        // judges what is due by the database's clock.
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let clock_file = data.path().join("clock");
    std::fs::write(&clock_file, "0").unwrap();
    let clock_arg = clock_file.display().to_string();
    let server = Server::start(data.path(), &["--fault-clock-file", &clock_arg]);
    // Europe/Berlin, 29 March 2026: 02:00 CET becomes 03:00 CEST, so 02:30
    // does not exist and fires at 03:00 CEST (01:00 UTC).
    set_clock(&server, &clock_file, ms_of("2026-03-28T12:00:00Z"));
    let body = json!({
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "fact": template(json!({"dst": true})),
    });
    let (status, view) = put_timer(&server, "berlin", &body);
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["next_due"], "2026-03-29T01:00:00.000Z");
    set_clock(&server, &clock_file, ms_of("2026-03-29T01:00:01Z"));
    wait_until(
        "the gap's occurrence fired",
        Duration::from_secs(10),
        || timer(&server, "berlin")["next_due"] == "2026-03-30T00:30:00.000Z",
    );
    assert_eq!(fired(&server)["berlin"], ["2026-03-29T01:00:00.000Z"]);
    // 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:30 happens twice
    // and fires once, at its first instance (00:30 UTC).
    set_clock(&server, &clock_file, ms_of("2026-10-25T00:30:01Z"));
    wait_until(
        "the repeated hour's occurrence fired",
        Duration::from_secs(10),
        || timer(&server, "berlin")["last_fired"] == "2026-10-25T00:30:00.000Z",
    );
    assert_eq!(
        timer(&server, "berlin")["next_due"],
        "2026-10-26T01:30:00.000Z"
    );
    // Its second instance (01:30 UTC) passes without a firing.
    set_clock(&server, &clock_file, ms_of("2026-10-25T01:30:05Z"));
    let sentinel = json!({ "at": "2026-10-25T01:30:02Z", "fact": template(json!({"after": 1})) });
    put_timer(&server, "sentinel", &sentinel);
    wait_until("the sentinel fired", Duration::from_secs(10), || {
        fired(&server).contains_key("sentinel")
    });
    assert_eq!(
        fired(&server)["berlin"],
        ["2026-03-29T01:00:00.000Z", "2026-10-25T00:30:00.000Z"]
    );
}

#[test]
fn catch_up_policies_after_downtime() {
    if on_postgres() {
        return; // the fault clock moves the embedded store's time only
    }
    let data = tempfile::tempdir().unwrap();
    let clock_file = data.path().join("clock");
    std::fs::write(&clock_file, "0").unwrap();
    let clock_arg = clock_file.display().to_string();
    let mut server = Server::start(data.path(), &["--fault-clock-file", &clock_arg]);
    set_clock(&server, &clock_file, ms_of("2027-06-01T09:30:00Z"));
    for policy in ["all", "latest", "none"] {
        let body = json!({
            "cron": "0 * * * *",
            "timezone": "UTC",
            "catch_up": policy,
            "fact": template(json!({"policy": policy})),
        });
        let (status, view) = put_timer(&server, policy, &body);
        assert_eq!(status, 201, "{view}");
        assert_eq!(view["next_due"], "2027-06-01T10:00:00.000Z");
    }
    server.terminate();
    // Five hours and a half pass while no server runs.
    let target = ms_of("2027-06-01T15:30:00Z");
    std::fs::write(&clock_file, (target as i64 - now_ms() as i64).to_string()).unwrap();
    let server = Server::start(data.path(), &["--fault-clock-file", &clock_arg]);
    wait_until("every policy caught up", Duration::from_secs(15), || {
        ["all", "latest", "none"]
            .iter()
            .all(|policy| timer(&server, policy)["next_due"] == "2027-06-01T16:00:00.000Z")
    });
    let fired = fired(&server);
    assert_eq!(
        fired["all"],
        [
            "2027-06-01T10:00:00.000Z",
            "2027-06-01T11:00:00.000Z",
            "2027-06-01T12:00:00.000Z",
            "2027-06-01T13:00:00.000Z",
            "2027-06-01T14:00:00.000Z",
            "2027-06-01T15:00:00.000Z"
        ]
    );
    assert_eq!(fired["latest"], ["2027-06-01T15:00:00.000Z"]);
    assert!(!fired.contains_key("none"), "{fired:?}");
    assert_eq!(timer(&server, "none")["last_fired"], Value::Null);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let good = json!({ "at": "2030-01-01T00:00:00Z", "fact": template(json!({})) });
    assert_eq!(put_timer(&server, "kept", &good).0, 201);
    let before_timers = get_json(&server, "/v1/timers").1;
    let before_seq = last_seq(&server);
    let fact_of = |fact: Value| json!({ "at": "2020-01-01T00:00:00Z", "fact": fact });
    let cron = |expression: &str, zone: &str| json!({ "cron": expression, "timezone": zone, "fact": template(json!({})) });
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("-leading-dash", good.clone(), 400, "invalid_timer"),
        ("a%20b", good.clone(), 400, "invalid_timer"),
        ("%C3%A9", good.clone(), 400, "invalid_timer"),
        (
            &*Box::leak("n".repeat(129).into_boxed_str()),
            good.clone(),
            400,
            "invalid_timer",
        ),
        (
            "x",
            cron("* * * * *", "Mars/Olympus_Mons"),
            400,
            "invalid_timer",
        ),
        ("x", cron("61 * * * *", "UTC"), 400, "invalid_timer"),
        ("x", cron("* * * * * *", "UTC"), 400, "invalid_timer"),
        ("x", cron("0 0 30 2 *", "UTC"), 400, "invalid_timer"),
        ("x", cron("@daily", "UTC"), 400, "invalid_timer"),
        (
            "x",
            json!({ "cron": "* * * * *", "fact": template(json!({})) }),
            400,
            "invalid_timer",
        ),
        (
            "x",
            json!({ "at": "tomorrow", "fact": template(json!({})) }),
            400,
            "invalid_timer",
        ),
        (
            "x",
            json!({ "at": "2030-01-01", "fact": template(json!({})) }),
            400,
            "invalid_timer",
        ),
        (
            "x",
            json!({ "at": "2030-01-01T00:00:00Z", "cron": "* * * * *", "timezone": "UTC", "fact": template(json!({})) }),
            400,
            "invalid_timer",
        ),
        (
            "x",
            json!({ "at": "2030-01-01T00:00:00Z" }),
            400,
            "invalid_timer",
        ),
        (
            "x",
            json!({ "at": "2030-01-01T00:00:00Z", "fact": template(json!({})), "extra": 1 }),
            400,
            "invalid_timer",
        ),
        (
            "x",
            json!({ "at": "2030-01-01T00:00:00Z", "fact": template(json!({})), "catch_up": "some" }),
            400,
            "invalid_timer",
        ),
        (
            "x",
            fact_of(json!({ "type": "Test.T", "fields": {} })),
            400,
            "invalid_timer",
        ),
        (
            "x",
            fact_of(json!({ "type": "not a type", "fields": {}, "predecessors": {} })),
            400,
            "invalid_timer",
        ),
        (
            "x",
            fact_of(json!({ "type": "Cairn.Timer", "fields": {}, "predecessors": {} })),
            400,
            "invalid_timer",
        ),
        (
            "x",
            fact_of(json!({ "type": "Test.T", "fields": {"cairn_timer": {}}, "predecessors": {} })),
            400,
            "invalid_timer",
        ),
        (
            "x",
            fact_of(json!({ "type": "Test.T", "fields": {}, "predecessors": {"p": "abc"} })),
            400,
            "invalid_timer",
        ),
        ("x", fact_of(json!([1, 2])), 400, "invalid_timer"),
        (
            "x",
            fact_of(
                json!({ "type": "Test.T", "fields": {"big": "x".repeat(70_000)}, "predecessors": {} }),
            ),
            413,
            "request_too_large",
        ),
    ];
    for (name, body, status, code) in &cases {
        let (got_status, answer) = put_timer(&server, name, body);
        assert_eq!(
            (got_status, answer["error"]["code"].as_str()),
            (*status, Some(*code)),
            "PUT {name} {body}: {answer}"
        );
        assert!(answer["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let raw_cases: Vec<(&str, Option<&str>, u16, &str)> = vec![
        ("{", Some("application/json"), 400, "malformed_json"),
        (
            r#"{"at": "2030-01-01T00:00:00Z", "at": "2031-01-01T00:00:00Z", "fact": {"type": "A", "fields": {}, "predecessors": {}}}"#,
            Some("application/json"),
            400,
            "duplicate_key",
        ),
        (
            r#"{"at": "2030-01-01T00:00:00Z", "fact": {"type": "A", "fields": {"n": 9007199254740993}, "predecessors": {}}}"#,
            Some("application/json"),
            400,
            "integer_out_of_range",
        ),
        ("[]", Some("application/json"), 400, "invalid_timer"),
        ("{}", Some("text/plain"), 415, "unsupported_media_type"),
    ];
    for (body, content_type, status, code) in raw_cases {
        let mut request = http()
            .put(server.url("/v1/timers/raw"))
            .body(body.to_string());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let (got_status, answer) = json_answer(request.send().unwrap());
        assert_eq!(
            (got_status, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }
    for (path, status, code) in [
        ("/v1/timers/-x", 400, "invalid_timer"),
        ("/v1/timers/absent", 404, "unknown_timer"),
        ("/v1/timers?limit=0", 400, "parameter_out_of_range"),
        ("/v1/timers?limit=10001", 400, "parameter_out_of_range"),
        ("/v1/timers?after=-x", 400, "invalid_parameter"),
        ("/v1/timers?bogus=1", 400, "unknown_parameter"),
        ("/v1/timers/kept?x=1", 400, "unknown_parameter"),
    ] {
        let (got_status, answer) = get_json(&server, path);
        assert_eq!(
            (got_status, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {answer}"
        );
    }
    let response = http()
        .delete(server.url("/v1/timers/absent"))
        .send()
        .unwrap();
    assert_eq!(json_answer(response).1["error"]["code"], "unknown_timer");
    assert_eq!(get_json(&server, "/v1/timers").1, before_timers);
    assert_eq!(last_seq(&server), before_seq);
    // Paging.
    for index in 0..5 {
        put_timer(&server, &format!("p{index}"), &good);
    }
    let (_, first) = get_json(&server, "/v1/timers?limit=2");
    assert_eq!(first["timers"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().unwrap();
    let (_, second) = get_json(&server, &format!("/v1/timers?limit=10&after={next}"));
    assert_eq!(second["timers"].as_array().unwrap().len(), 4);
    assert!(second.get("next").is_none());
}
