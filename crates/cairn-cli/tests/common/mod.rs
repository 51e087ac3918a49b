//! Test support: starts the real `cairn` binary on a free loopback port in
//! its own data directory, and stops only that process, by PID.
//!
//! With `CAIRN_TEST_BACKEND=postgres` every server keeps its data in
//! PostgreSQL instead (`--store`): a fresh database per data directory, so
//! a server restarted on the same directory finds its data, and several
//! servers started on one directory share one database. A database is
//! dropped once its data directory is gone (checked whenever a server
//! starts); the few left when the test process ends are dropped by the next
//! run's sweep (`TestDatabase::create`) and at the end of
//! `scripts/test.sh`. The same tests thus run against both backends. A
//! test that brings a database of its own starts its servers with
//! `Server::start_with_store`.
//!
//! Every test binary compiles this module whole, and each uses only part of
//! it, hence `allow(dead_code)`. `multi_server` holds the helpers of the
//! multi-server tests, `proxy` their TCP proxy in front of PostgreSQL, and
//! `tls` the certificates of the TLS tests.

#![allow(dead_code)]

pub mod multi_server;
pub mod proxy;
pub mod tls;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use cairn_store::postgres::testing::TestDatabase;
use std::time::Duration;

/// Path of the binary under test.
pub const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

/// A running `cairn serve`.
pub struct Server {
    child: Option<Child>,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    /// Data directory.
    pub data: PathBuf,
    /// The database of the data directory, on the PostgreSQL backend.
    database: Option<Arc<TestDatabase>>,
    /// Every line the server wrote to standard error so far.
    stderr_lines: Arc<Mutex<Vec<String>>>,
}

/// True when the tests run against the PostgreSQL backend.
pub fn on_postgres() -> bool {
    std::env::var("CAIRN_TEST_BACKEND").as_deref() == Ok("postgres")
}

/// Databases by data directory, while the directory exists.
fn databases() -> &'static Mutex<HashMap<PathBuf, Arc<TestDatabase>>> {
    static DATABASES: OnceLock<Mutex<HashMap<PathBuf, Arc<TestDatabase>>>> = OnceLock::new();
    DATABASES.get_or_init(Default::default)
}

/// The database of a data directory (created on first use), on the
/// PostgreSQL backend.
fn database_for(data: &Path) -> Option<Arc<TestDatabase>> {
    if !on_postgres() {
        return None;
    }
    let mut databases = databases().lock().unwrap();
    databases.retain(|dir, _| dir.exists());
    if let Some(database) = databases.get(data) {
        return Some(Arc::clone(database));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let database = Arc::new(
        runtime
            .block_on(TestDatabase::create())
            .expect("CAIRN_TEST_BACKEND=postgres needs PostgreSQL (CAIRN_TEST_POSTGRES)"),
    );
    databases.insert(data.to_path_buf(), Arc::clone(&database));
    Some(database)
}

/// The arguments that name the store of a data directory to an offline
/// command (`cairn tokens create`): `--data DIR`, or on the PostgreSQL
/// backend `--store URL` of the directory's database.
pub fn offline_store_args(data: &Path) -> Vec<String> {
    match database_for(data) {
        Some(database) => vec!["--store".to_string(), database.url()],
        None => vec!["--data".to_string(), data.display().to_string()],
    }
}

impl Server {
    /// Starts `cairn serve --data DATA --listen 127.0.0.1:0 EXTRA...` and
    /// waits until it listens.
    pub fn start(data: &Path, extra_args: &[&str]) -> Server {
        Server::try_start(data, extra_args)
            .unwrap_or_else(|stderr| panic!("the server did not start:\n{stderr}"))
    }

    /// Like [`Server::start`], but a server that exits before listening
    /// yields its standard error.
    pub fn try_start(data: &Path, extra_args: &[&str]) -> Result<Server, String> {
        Server::try_start_listening(data, "127.0.0.1:0", extra_args)
    }

    /// Like [`Server::start`], listening on `listen` (`127.0.0.1:PORT`):
    /// to restart a stopped server where its clients look for it.
    pub fn start_listening(data: &Path, listen: &str, extra_args: &[&str]) -> Server {
        Server::try_start_listening(data, listen, extra_args)
            .unwrap_or_else(|stderr| panic!("the server did not start:\n{stderr}"))
    }

    /// Like [`Server::start_listening`], but a server that exits before
    /// listening yields its standard error.
    pub fn try_start_listening(
        data: &Path,
        listen: &str,
        extra_args: &[&str],
    ) -> Result<Server, String> {
        let database = database_for(data);
        let store_url = database.as_ref().map(|database| database.url());
        Server::launch(data, store_url.as_deref(), listen, extra_args, database)
    }

    /// Starts `cairn serve --data DATA --listen 127.0.0.1:0 --store
    /// STORE_URL EXTRA...` on whichever backend the tests run: for a test
    /// that chooses the database itself (and owns it), where
    /// [`Server::start`] would add the `--store` of its data directory.
    pub fn start_with_store(data: &Path, store_url: &str, extra_args: &[&str]) -> Server {
        Server::launch(data, Some(store_url), "127.0.0.1:0", extra_args, None)
            .unwrap_or_else(|stderr| panic!("the server did not start:\n{stderr}"))
    }

    /// Spawns the server on `listen` with `--store STORE_URL` when given (and never
    /// `CAIRN_STORE` from the environment: the test chooses the store),
    /// collects its standard error, and waits until it listens; a server
    /// that exits before listening yields its standard error.
    fn launch(
        data: &Path,
        store_url: Option<&str>,
        listen: &str,
        extra_args: &[&str],
        database: Option<Arc<TestDatabase>>,
    ) -> Result<Server, String> {
        let store_args = match store_url {
            Some(url) => vec!["--store", url],
            None => Vec::new(),
        };
        let mut child = Command::new(CAIRN)
            .arg("serve")
            .arg("--data")
            .arg(data)
            .args(["--listen", listen])
            .args(store_args)
            .args(extra_args)
            .env_remove("CAIRN_STORE")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cairn binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (address_sender, address_receiver) = mpsc::channel();
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let lines_for_reader = Arc::clone(&stderr_lines);
        std::thread::spawn(move || {
            let mut address_sender = Some(address_sender);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                lines_for_reader.lock().unwrap().push(line.clone());
                if std::env::var_os("CAIRN_TEST_VERBOSE").is_some() {
                    eprintln!("[server] {line}");
                }
                let position = line
                    .find("listening on http://")
                    .or_else(|| line.find("listening on https://"));
                if let Some(position) = position {
                    let address = line[position + "listening on ".len()..].trim().to_string();
                    if let Some(sender) = address_sender.take() {
                        let _ = sender.send(address);
                    }
                }
            }
        });
        match address_receiver.recv_timeout(Duration::from_secs(30)) {
            Ok(base) => Ok(Server {
                child: Some(child),
                base,
                data: data.to_path_buf(),
                database,
                stderr_lines,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(stderr_lines.lock().unwrap().join("\n"))
            }
        }
    }

    /// The last lines (at most 40) the server wrote to standard error, for
    /// failure messages.
    pub fn log_text(&self) -> String {
        let lines = self.stderr_lines.lock().unwrap();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Whether the server wrote `needle` to standard error so far (any
    /// line, not only the last ones).
    pub fn log_contains(&self, needle: &str) -> bool {
        let lines = self.stderr_lines.lock().unwrap();
        lines.iter().any(|line| line.contains(needle))
    }

    /// The address the server listens on (`127.0.0.1:PORT`), to restart it
    /// there.
    pub fn listen_address(&self) -> String {
        self.base
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_string()
    }

    /// The PID of the server process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the exit status (bounded).
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on the PID of our own child, not yet reaped, so
        // the PID cannot belong to another process. std has no SIGTERM.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        for _ in 0..600 {
            if let Some(status) = child.try_wait().expect("wait works") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        panic!("the server did not exit within 30 s of SIGTERM");
    }

    /// URL of a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A blocking HTTP client with a timeout.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client builds")
}

/// Posts `{"facts": facts}` and returns status and JSON answer.
pub fn post_facts(server: &Server, facts: &[serde_json::Value]) -> (u16, serde_json::Value) {
    post_raw(server, &serde_json::json!({ "facts": facts }).to_string())
}

/// Posts a raw body as JSON and returns status and JSON answer.
pub fn post_raw(server: &Server, body: &str) -> (u16, serde_json::Value) {
    let response = http()
        .post(server.url("/v1/facts"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .expect("server answers");
    json_answer(response)
}

/// GETs a path and returns status and JSON answer.
pub fn get_json(server: &Server, path: &str) -> (u16, serde_json::Value) {
    json_answer(http().get(server.url(path)).send().expect("server answers"))
}

/// Status and parsed JSON body of a response.
pub fn json_answer(response: reqwest::blocking::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.text().expect("body reads");
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("answer with status {status} is not JSON: {text:?}"));
    (status, value)
}

/// A fact value.
pub fn fact(
    type_name: &str,
    fields: serde_json::Value,
    predecessors: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({ "type": type_name, "fields": fields, "predecessors": predecessors })
}

/// The hash of the first result of a successful write.
pub fn put_one(server: &Server, value: serde_json::Value) -> String {
    let (status, answer) = post_facts(server, &[value]);
    assert_eq!(status, 200, "write failed: {answer}");
    answer["results"][0]["hash"]
        .as_str()
        .expect("hash")
        .to_string()
}

/// What a `cairn` command printed and whether it succeeded.
pub struct CliOutput {
    /// Exit status 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `cairn ARGS...` with `input` on standard input.
pub fn run_cli(args: &[&str], input: &str) -> CliOutput {
    use std::io::Write as _;
    let mut child = Command::new(CAIRN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cairn binary starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("stdin takes the input");
    let output = child.wait_with_output().expect("cairn exits");
    CliOutput {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
    }
}

/// The server's `/metrics` text.
pub fn metrics_text(server: &Server) -> String {
    http()
        .get(server.url("/metrics"))
        .send()
        .expect("server answers")
        .text()
        .expect("body reads")
}

/// The highest seq in the store, read from the log.
pub fn last_seq(server: &Server) -> u64 {
    let mut after = 0;
    loop {
        let (status, page) = get_json(server, &format!("/v1/log?after={after}&limit=10000"));
        assert_eq!(status, 200);
        let next = page["next"].as_u64().expect("next");
        if next == after {
            return after;
        }
        after = next;
    }
}

/// Sends a request over a raw socket, writing the body from another thread
/// (ignoring write errors, since the server may answer and close before the
/// body is complete), and returns the status and body of the answer.
pub fn raw_exchange(
    server: &Server,
    head: String,
    body_chunks: usize,
    chunked: bool,
) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let address = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = vec![b' '; 1024 * 1024];
        for _ in 0..body_chunks {
            let result = if chunked {
                writer
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .and_then(|()| writer.write_all(&chunk))
                    .and_then(|()| writer.write_all(b"\r\n"))
            } else {
                writer.write_all(&chunk)
            };
            if result.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
        if let Some(end) = answer.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if answer.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                let body = serde_json::from_slice(&answer[end + 4..end + 4 + length]).unwrap();
                drop(stream);
                let _ = sender.join();
                return (status, body);
            }
        }
    }
    panic!("no complete answer: {:?}", String::from_utf8_lossy(&answer));
}

/// Posts a JSON body to a path and returns status and JSON answer.
pub fn post_json(server: &Server, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    json_answer(
        http()
            .post(server.url(path))
            .json(&body)
            .send()
            .expect("server answers"),
    )
}

/// Creates (or confirms) a subscription; returns status and view.
pub fn put_subscription(
    server: &Server,
    name: &str,
    definition: serde_json::Value,
) -> (u16, serde_json::Value) {
    json_answer(
        http()
            .put(server.url(&format!("/v1/subscriptions/{name}")))
            .json(&definition)
            .send()
            .expect("server answers"),
    )
}

/// Pulls up to `max` messages, waiting up to `wait_ms`; panics on errors.
pub fn pull(server: &Server, name: &str, max: u64, wait_ms: u64) -> Vec<serde_json::Value> {
    let (status, answer) = post_json(
        server,
        &format!("/v1/subscriptions/{name}/pull"),
        serde_json::json!({ "max": max, "wait_ms": wait_ms }),
    );
    assert_eq!(status, 200, "pull failed: {answer}");
    answer["messages"].as_array().expect("messages").clone()
}

/// Acks or nacks (`verb`) the tokens of `messages`; returns each status.
pub fn settle(
    server: &Server,
    name: &str,
    verb: &str,
    messages: &[serde_json::Value],
    extra: serde_json::Value,
) -> Vec<String> {
    let tokens: Vec<String> = messages
        .iter()
        .map(|message| message["token"].as_str().expect("token").to_string())
        .collect();
    settle_tokens(server, name, verb, &tokens, extra)
}

/// Posts `tokens` to `verb` (ack, nack, extend) of `name`, with the
/// members of `extra`; returns each token's status.
pub fn settle_tokens(
    server: &Server,
    name: &str,
    verb: &str,
    tokens: &[String],
    extra: serde_json::Value,
) -> Vec<String> {
    let mut body = serde_json::json!({ "tokens": tokens });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let (status, answer) = post_json(server, &format!("/v1/subscriptions/{name}/{verb}"), body);
    assert_eq!(status, 200, "{verb} failed: {answer}");
    answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|result| result["status"].as_str().expect("status").to_string())
        .collect()
}

/// The hash of a fact value as the server computes it: the fact model's own
/// canonical form and hash (`cairn_fact`), for a fact the server accepts.
pub fn fact_hash(value: &serde_json::Value) -> String {
    cairn_fact::CanonicalFact::from_json(
        value.to_string().as_bytes(),
        cairn_fact::FACT_CANONICAL_BYTES_MAX_DEFAULT,
    )
    .unwrap_or_else(|error| panic!("not a valid fact ({error}): {value}"))
    .hash
    .to_hex()
}

/// A tiny deterministic generator (xorshift) for the tests' seeded
/// choices: the same seed gives the same sequence in every run.
pub fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
