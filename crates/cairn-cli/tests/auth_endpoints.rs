//! Access control of every operation, table-driven, against the real
//! binary started with `--auth` (and, with `CAIRN_TEST_BACKEND=postgres`,
//! on PostgreSQL). The table has one row per operation of the OpenAPI
//! document (`cairn_api::openapi::document()`, the same as
//! `docs/openapi.json`), and the test fails if an operation has no row or
//! a row names an operation the document lacks. Each row is tried five
//! ways: without a token, with a well-formed token never issued, with the
//! token of a revoked identity that had every permission, with identities
//! that lack exactly what the row needs, and with the narrowest identity
//! that should be allowed. Every refusal is checked to change nothing the
//! operation would change. The open operations answer every caller as a
//! server without `--auth` would.
//!
//! See "Access control" in `docs/api-v1.md` for the contract.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::{http, offline_store_args, run_cli, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The type every subscription of the table selects, and the one the
/// least-privileged readers may read.
const OPEN_TYPE: &str = "Auth.Open";
/// A type only admins (and `*` readers) may read.
const SECRET_TYPE: &str = "Auth.Secret";
/// A type the "other types" identities may read.
const OTHER_TYPE: &str = "Other.Thing";
/// How long any wait of this test may last.
const WAIT: Duration = Duration::from_secs(10);

/// A request body.
#[derive(Clone)]
enum Body {
    None,
    Json(Value),
    Bytes(Vec<u8>),
}

/// What the server answered.
struct Answer {
    status: u16,
    /// Header names in lower case.
    headers: Vec<(String, String)>,
    bytes: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn describe(&self) -> String {
        format!("{} {}", self.status, String::from_utf8_lossy(&self.bytes))
    }
}

/// The server, the setup admin's token and every identity of the test.
struct Ctx {
    server: Server,
    root: String,
    /// Tokens by identity name.
    tokens: HashMap<String, String>,
    /// Permissions by identity name, as sent when it was made.
    permissions: HashMap<String, Value>,
    /// Hashes of the facts written in the setup.
    open_hash: String,
    child_hash: String,
    secret_hash: String,
    /// The lease tokens the setup admin holds, by subscription.
    leases: HashMap<String, Vec<String>>,
}

impl Ctx {
    fn token(&self, identity: &str) -> &str {
        self.tokens
            .get(identity)
            .unwrap_or_else(|| panic!("no identity {identity}"))
    }

    fn send(&self, method: &str, path: &str, token: Option<&str>, body: &Body) -> Answer {
        send(&self.server, method, path, token, body)
    }

    /// A request with the setup admin's token that must answer `expected`.
    fn root(&self, method: &str, path: &str, body: Body, expected: u16) -> Value {
        let answer = self.send(method, path, Some(&self.root), &body);
        assert_eq!(
            answer.status,
            expected,
            "{method} {path}: {}",
            answer.describe()
        );
        answer.json()
    }

    /// The status and answer of a request with the setup admin's token.
    fn root_answer(&self, method: &str, path: &str) -> Value {
        let answer = self.send(method, path, Some(&self.root), &Body::None);
        json!({"status": answer.status, "answer": answer.json()})
    }

    /// Makes an identity with `permissions` over HTTP and keeps its token.
    fn identity(&mut self, name: &str, permissions: Value) {
        let body = json!({"name": name, "permissions": permissions});
        let created = self.root("POST", "/v1/tokens", Body::Json(body), 201);
        let token = created["token"].as_str().expect("a token").to_string();
        self.tokens.insert(name.to_string(), token);
        self.permissions.insert(name.to_string(), permissions);
    }

    /// Whether `identity` may read (`list` "read") the type or subscribe
    /// (`list` "subscribe") to the name `value`.
    fn may(&self, identity: &str, list: &str, value: &str) -> bool {
        let permissions = &self.permissions[identity];
        permissions["admin"] == json!(true)
            || permissions[list].as_array().is_some_and(|patterns| {
                patterns
                    .iter()
                    .any(|pattern| glob(pattern.as_str().unwrap(), value))
            })
    }

    /// The whole log as `token` sees it: `(hash, type)` in order,
    /// and the last `seq`.
    fn log(&self, token: &str) -> (Vec<(String, String)>, u64) {
        let answer = self.send("GET", "/v1/log?limit=1000", Some(token), &Body::None);
        assert_eq!(answer.status, 200, "{}", answer.describe());
        log_entries(&answer.json())
    }

    /// A subscription's state, or the status of its absence.
    fn subscription(&self, name: &str) -> Value {
        let answer = self.send(
            "GET",
            &format!("/v1/subscriptions/{name}"),
            Some(&self.root),
            &Body::None,
        );
        let view = answer.json();
        if answer.status != 200 {
            return json!({"status": answer.status, "code": answer.code()});
        }
        let mut state = json!({});
        for counter in [
            "backlog",
            "in_flight",
            "delivered",
            "acked",
            "dead",
            "discarded",
            "paused",
            "generation",
        ] {
            state[counter] = view[counter].clone();
        }
        state
    }

    /// Identities and their token ids.
    fn identities(&self) -> BTreeMap<String, Vec<String>> {
        let list = self.root("GET", "/v1/tokens", Body::None, 200);
        list["identities"]
            .as_array()
            .expect("identities")
            .iter()
            .map(|identity| {
                let ids = identity["tokens"]
                    .as_array()
                    .expect("tokens")
                    .iter()
                    .map(|token| token["token_id"].as_str().unwrap().to_string())
                    .collect();
                (identity["name"].as_str().unwrap().to_string(), ids)
            })
            .collect()
    }

    /// Leases every message of `name` to the setup admin (bounded).
    fn lease_all(&self, name: &str, expected: usize) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        let mut messages = Vec::new();
        while messages.len() < expected {
            assert!(Instant::now() < deadline, "{name}: only {messages:?}");
            let answer = self.root(
                "POST",
                &format!("/v1/subscriptions/{name}/pull"),
                Body::Json(json!({"max": 10, "wait_ms": 1000, "lease_ms": 600000})),
                200,
            );
            messages.extend(answer["messages"].as_array().unwrap().iter().cloned());
        }
        messages
    }

    /// Makes every message of `name` a dead letter (its `max_attempts` is 1).
    fn kill_all(&self, name: &str, expected: usize) {
        let tokens: Vec<Value> = self
            .lease_all(name, expected)
            .iter()
            .map(|message| message["token"].clone())
            .collect();
        self.root(
            "POST",
            &format!("/v1/subscriptions/{name}/nack"),
            Body::Json(json!({"tokens": tokens, "error": "made dead by the test"})),
            200,
        );
        assert_eq!(self.subscription(name)["dead"], expected);
    }
}

fn log_entries(page: &Value) -> (Vec<(String, String)>, u64) {
    let entries = page["facts"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|stored| {
            (
                stored["hash"].as_str().unwrap().to_string(),
                stored["fact"]["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (entries, page["next"].as_u64().expect("next"))
}

/// Whether `pattern` (`*` matches any run, the empty one included) matches
/// all of `text`.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(text) = text.strip_prefix(head) else {
                return false;
            };
            (0..=text.len()).any(|skip| text.is_char_boundary(skip) && glob(rest, &text[skip..]))
        }
    }
}

fn send(server: &Server, method: &str, path: &str, token: Option<&str>, body: &Body) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = http()
        .request(method, server.url(path))
        .timeout(Duration::from_secs(30));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request = match body {
        Body::None => request,
        Body::Json(value) => request.json(value),
        Body::Bytes(bytes) => request
            .header("content-type", "application/octet-stream")
            .body(bytes.clone()),
    };
    let response = request.send().expect("the server answers");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                value.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let bytes = response.bytes().expect("the body reads").to_vec();
    Answer {
        status,
        headers,
        bytes,
    }
}

/// A runtime for the WebSocket client.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket to `path` (a real upgrade request) with an optional
/// bearer token; a refusal before the upgrade is answered as an `Answer`.
fn ws_connect(
    runtime: &tokio::runtime::Runtime,
    server: &Server,
    path: &str,
    token: Option<&str>,
) -> Result<Socket, Answer> {
    let url = format!("{}{path}", server.base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("a request");
    if let Some(token) = token {
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("a header value"),
        );
    }
    let connected = runtime
        .block_on(async {
            tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request)).await
        })
        .expect("the handshake ends in time");
    match connected {
        Ok((socket, response)) => {
            assert_eq!(response.status().as_u16(), 101);
            Ok(socket)
        }
        Err(tungstenite::Error::Http(response)) => Err(Answer {
            status: response.status().as_u16(),
            headers: response
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_ascii_lowercase(),
                        value.to_str().unwrap_or("").to_string(),
                    )
                })
                .collect(),
            bytes: response.body().clone().unwrap_or_default(),
        }),
        Err(other) => panic!("the handshake failed: {other}"),
    }
}

/// What a refusal (case 4) must look like.
enum Refusal {
    /// `403 forbidden` naming this permission.
    Forbidden(String),
    /// `404 not_found`, exactly as for an absent fact.
    NotFound,
    /// `404` with this code, exactly as for an absent object of its kind.
    Absent(&'static str),
    /// `200`, with what the identity may not see left out (the row's
    /// check tells).
    Filtered,
}

type Check = Box<dyn Fn(&Ctx, &str, &Answer)>;
type Observe = Box<dyn Fn(&Ctx) -> Value>;

/// One operation of the document and how to try it.
struct Row {
    method: &'static str,
    /// The path template, as in the document.
    template: &'static str,
    /// The concrete path.
    path: String,
    body: Body,
    /// Open to everyone: every case answers `success`.
    open: bool,
    /// The WebSocket stream: refused before the upgrade, upgraded on success.
    websocket: bool,
    /// Any valid token may call it (`/v1/whoami`): refused only without
    /// one, so it has no insufficient identity.
    any_identity: bool,
    /// Identities lacking exactly what the row needs, and their answer.
    insufficient: Vec<(&'static str, Refusal)>,
    /// The narrowest identity that may do it.
    least: String,
    success: u16,
    /// Checks a successful answer, and a `Refusal::Filtered` one.
    check: Check,
    /// What a refusal must leave as it was.
    observe: Observe,
}

fn row(method: &'static str, template: &'static str, path: impl Into<String>) -> Row {
    Row {
        method,
        template,
        path: path.into(),
        body: Body::None,
        open: false,
        websocket: false,
        any_identity: false,
        insufficient: Vec::new(),
        least: String::new(),
        success: 200,
        check: Box::new(|_, _, _| {}),
        observe: Box::new(|_| Value::Null),
    }
}

impl Row {
    fn body(mut self, body: Body) -> Row {
        self.body = body;
        self
    }

    fn open(mut self) -> Row {
        self.open = true;
        self
    }

    fn any_identity(mut self) -> Row {
        self.any_identity = true;
        self
    }

    fn websocket(mut self) -> Row {
        self.websocket = true;
        self
    }

    fn refused(mut self, identity: &'static str, refusal: Refusal) -> Row {
        self.insufficient.push((identity, refusal));
        self
    }

    fn forbidden(self, identity: &'static str, permission: impl Into<String>) -> Row {
        self.refused(identity, Refusal::Forbidden(permission.into()))
    }

    fn allowed(mut self, identity: impl Into<String>, success: u16) -> Row {
        self.least = identity.into();
        self.success = success;
        self
    }

    fn check(mut self, check: impl Fn(&Ctx, &str, &Answer) + 'static) -> Row {
        self.check = Box::new(check);
        self
    }

    fn observe(mut self, observe: impl Fn(&Ctx) -> Value + 'static) -> Row {
        self.observe = Box::new(observe);
        self
    }

    /// A row on subscription `name` for its consumer `c-<name>`
    /// (subscribe on that name, read on [`OPEN_TYPE`]); refused to
    /// identities that may not subscribe to it, or may not read its type.
    fn consumer(self, name: &'static str, success: u16) -> Row {
        self.forbidden("no-subscribe", format!("subscribe on {name}"))
            .forbidden("no-read", format!("read on type {OPEN_TYPE}"))
            .allowed(format!("c-{name}"), success)
            .observe(move |ctx| ctx.subscription(name))
    }

    /// An admin-only row: refused to an identity with every other permission.
    fn admin(self, success: u16) -> Row {
        self.forbidden("nonadmin", "admin")
            .allowed("least-admin", success)
    }

    fn label(&self) -> String {
        format!("{} {}", self.method, self.template)
    }
}

/// Every `(METHOD, template)` of the OpenAPI document.
fn document_operations() -> BTreeSet<(String, String)> {
    let document = cairn_api::openapi::document();
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            if [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                operations.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    operations
}

fn fact(type_name: &str, label: &str, predecessors: Value) -> Value {
    json!({"type": type_name, "fields": {"label": label}, "predecessors": predecessors})
}

/// Writes one fact with the setup admin's token and answers its hash.
fn write(ctx: &Ctx, fact: Value) -> String {
    let answer = ctx.root(
        "POST",
        "/v1/facts",
        Body::Json(json!({"facts": [fact]})),
        200,
    );
    answer["results"][0]["hash"].as_str().unwrap().to_string()
}

fn setup() -> (tempfile::TempDir, Ctx) {
    let dir = tempfile::tempdir().unwrap();
    let store_args = offline_store_args(dir.path());
    let mut args = vec!["tokens", "create", "--name", "root", "--admin"];
    args.extend(store_args.iter().map(String::as_str));
    let output = run_cli(&args, "");
    assert!(output.success, "tokens create failed: {}", output.stderr);
    let root = output.stdout.lines().last().expect("a token").to_string();
    let server = Server::start(dir.path(), &["--auth"]);
    let mut ctx = Ctx {
        server,
        root,
        tokens: HashMap::new(),
        permissions: HashMap::new(),
        open_hash: String::new(),
        child_hash: String::new(),
        secret_hash: String::new(),
        leases: HashMap::new(),
    };
    ctx.permissions
        .insert("root".to_string(), json!({"admin": true}));

    // Identities. Those named no-X have every permission but admin and X.
    let all_but = |missing: &str, replacement: Value| {
        let mut permissions = json!({
            "read": ["*"], "write": ["*"], "subscribe": ["*"],
            "blobs": "write", "metrics": true,
        });
        match replacement {
            Value::Null => {
                permissions.as_object_mut().unwrap().remove(missing);
            }
            value => permissions[missing] = value,
        }
        permissions
    };
    for (name, permissions) in [
        ("gone", json!({"admin": true})),
        ("least-admin", json!({"admin": true})),
        ("nonadmin", all_but("admin", Value::Null)),
        ("no-metrics", all_but("metrics", Value::Null)),
        ("no-blobs", all_but("blobs", Value::Null)),
        ("blobs-read-only", all_but("blobs", json!("read"))),
        ("no-read", all_but("read", json!(["Other.*"]))),
        ("no-write", all_but("write", json!(["Other.*"]))),
        ("no-subscribe", all_but("subscribe", json!(["Other.*"]))),
        ("nothing", json!({})),
        ("meter", json!({"metrics": true})),
        ("blob-reader", json!({"blobs": "read"})),
        ("blob-writer", json!({"blobs": "write"})),
        ("reader", json!({"read": [OPEN_TYPE]})),
        ("writer", json!({"write": [OPEN_TYPE]})),
        ("rot-target", json!({"metrics": true})),
        ("rev-target", json!({"metrics": true})),
        (
            "claimer",
            json!({"write": ["Cairn.Claimed"], "read": [OPEN_TYPE]}),
        ),
        ("claim-reader", json!({"read": ["Cairn.Claimed"]})),
        ("leaser", json!({"write": ["Cairn.LeaseGranted"]})),
        ("lease-reader", json!({"read": ["Cairn.LeaseGranted"]})),
    ] {
        ctx.identity(name, permissions);
    }
    for name in SUBSCRIPTIONS.iter().chain(["put-sub"].iter()) {
        ctx.identity(
            &format!("c-{name}"),
            json!({"subscribe": [name], "read": [OPEN_TYPE]}),
        );
    }

    // The revoked identity had every permission; it works until revoked.
    let gone = ctx.token("gone").to_string();
    assert_eq!(
        ctx.send("GET", "/v1/tokens", Some(&gone), &Body::None)
            .status,
        200
    );
    ctx.root("DELETE", "/v1/tokens/gone", Body::None, 200);
    let deadline = Instant::now() + WAIT;
    while ctx
        .send("GET", "/v1/tokens", Some(&gone), &Body::None)
        .status
        != 401
    {
        assert!(Instant::now() < deadline, "the revoked token still works");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Facts: a readable one with a successor, an unreadable one, and one
    // the "other types" identities may read.
    ctx.open_hash = write(&ctx, fact(OPEN_TYPE, "open", json!({})));
    ctx.child_hash = write(
        &ctx,
        fact(OPEN_TYPE, "child", json!({"parent": ctx.open_hash})),
    );
    ctx.secret_hash = write(&ctx, fact(SECRET_TYPE, "secret", json!({})));
    // A successor of the open fact that readers of OPEN_TYPE may not read:
    // its type is left out of their successor types.
    write(
        &ctx,
        fact(
            SECRET_TYPE,
            "secret child",
            json!({"parent": ctx.open_hash}),
        ),
    );
    write(&ctx, fact(OTHER_TYPE, "other", json!({})));

    // Subscriptions: one per row that changes one, each over the two facts
    // of OPEN_TYPE; the dead-letter ones fail at the first nack.
    for name in SUBSCRIPTIONS {
        let max_attempts = if DEAD_SUBSCRIPTIONS.contains(&name) {
            1
        } else {
            5
        };
        ctx.root(
            "PUT",
            &format!("/v1/subscriptions/{name}"),
            Body::Json(json!({"type": OPEN_TYPE, "max_attempts": max_attempts})),
            201,
        );
    }
    // Two more that only some of the "insufficient" identities may see
    // listed: one named Other.*, one over OTHER_TYPE.
    for (name, type_name) in [("Other.sub", OPEN_TYPE), ("other-type-sub", OTHER_TYPE)] {
        ctx.root(
            "PUT",
            &format!("/v1/subscriptions/{name}"),
            Body::Json(json!({"type": type_name})),
            201,
        );
    }
    for name in LEASED_SUBSCRIPTIONS {
        let tokens = ctx
            .lease_all(name, 2)
            .iter()
            .map(|message| message["token"].as_str().unwrap().to_string())
            .collect();
        ctx.leases.insert(name.to_string(), tokens);
    }
    for name in DEAD_SUBSCRIPTIONS {
        ctx.kill_all(name, 2);
    }
    ctx.root(
        "POST",
        "/v1/subscriptions/resume-sub/pause",
        Body::None,
        200,
    );
    // Timers far in the future: two over OPEN_TYPE for the rows that read
    // and delete one, and one over SECRET_TYPE that lists leave out.
    for (name, type_name) in [
        ("get-timer", OPEN_TYPE),
        ("del-timer", OPEN_TYPE),
        ("secret-timer", SECRET_TYPE),
    ] {
        ctx.root(
            "PUT",
            &format!("/v1/timers/{name}"),
            Body::Json(timer_body(type_name)),
            201,
        );
    }
    // Replication links the rows read, pause, resume and delete (their
    // source is a closed port: they exist, failing, which is enough).
    for name in ["get-link", "del-link", "pause-link", "resume-link"] {
        ctx.root(
            "PUT",
            &format!("/v1/links/{name}"),
            Body::Json(link_body()),
            201,
        );
    }
    // Schemas the rows read (accepting every fact, so the other rows'
    // writes are unaffected).
    for type_name in [OPEN_TYPE, SECRET_TYPE] {
        ctx.root(
            "PUT",
            &format!("/v1/schemas/{type_name}/1"),
            Body::Json(json!({"schema": {}, "compatibility": "none"})),
            201,
        );
    }
    // A service declaration the row reads.
    ctx.root(
        "PUT",
        "/v1/services/get_svc",
        Body::Json(json!({"name": "get_svc", "identity": "get-svc"})),
        201,
    );
    // Claims and leases the rows read, renew and release.
    for key in ["held-claim", "release-claim"] {
        let body = json!({"key": key, "fact": ctx.open_hash});
        ctx.root("POST", "/v1/claims", Body::Json(body), 200);
    }
    for name in ["held-lease", "renew-lease", "release-lease"] {
        let body = json!({"holder": "h", "ttl_ms": 600_000});
        ctx.root(
            "POST",
            &format!("/v1/leases/{name}/acquire"),
            Body::Json(body),
            200,
        );
    }
    (dir, ctx)
}

/// The subscriptions made in the setup, each with its consumer `c-<name>`.
const SUBSCRIPTIONS: [&str; 13] = [
    "get-sub",
    "del-sub",
    "pull-sub",
    "ack-sub",
    "nack-sub",
    "extend-sub",
    "pause-sub",
    "resume-sub",
    "stream-sub",
    "dead-sub",
    "replay-sub",
    "discard-sub",
    "list-sub",
];
/// Those whose messages the setup admin leased.
const LEASED_SUBSCRIPTIONS: [&str; 3] = ["ack-sub", "nack-sub", "extend-sub"];
/// Those whose messages are dead letters.
const DEAD_SUBSCRIPTIONS: [&str; 3] = ["dead-sub", "replay-sub", "discard-sub"];

/// Checks that a page of the log holds exactly what `identity` may read
/// of the setup admin's log, and that `next` moved past what it left out.
fn check_log(ctx: &Ctx, identity: &str, answer: &Answer) {
    let (seen, next) = log_entries(&answer.json());
    let (all, last) = ctx.log(&ctx.root);
    let expected: Vec<_> = all
        .iter()
        .filter(|(_, type_name)| ctx.may(identity, "read", type_name))
        .cloned()
        .collect();
    assert_eq!(seen, expected, "{identity} sees what it may read, in order");
    assert_eq!(next, last, "next moves past what {identity} may not read");
    assert!(!seen.is_empty(), "{identity} reads something");
    assert!(seen.len() < all.len(), "{identity} had facts left out");
}

/// `GET /v1/digests` counts exactly the facts the identity may read.
fn check_digests(ctx: &Ctx, identity: &str, answer: &Answer) {
    let (all, _) = ctx.log(&ctx.root);
    let readable = all
        .iter()
        .filter(|(_, type_name)| ctx.may(identity, "read", type_name))
        .count();
    assert_eq!(
        answer.json()["count"],
        readable as u64,
        "{identity} counts what it may read"
    );
    assert!(readable < all.len(), "{identity} had facts left out");
}

/// The body of a timer far in the future writing a fact of `type_name`.
fn timer_body(type_name: &str) -> Value {
    json!({
        "at": "2099-01-01T00:00:00Z",
        "fact": {"type": type_name, "fields": {}, "predecessors": {}},
    })
}

/// The status of `GET /v1/timers/{name}` for the setup admin.
fn timer_status(ctx: &Ctx, name: &str) -> Value {
    let answer = ctx.send(
        "GET",
        &format!("/v1/timers/{name}"),
        Some(&ctx.root),
        &Body::None,
    );
    json!(answer.status)
}

/// Checks that a timer list holds exactly the timers whose template type
/// `identity` may read.
fn check_timer_list(ctx: &Ctx, identity: &str, answer: &Answer) {
    let names = |list: &Value| -> Vec<(String, String)> {
        list["timers"]
            .as_array()
            .unwrap_or_else(|| panic!("a list: {list}"))
            .iter()
            .map(|view| {
                (
                    view["name"].as_str().unwrap().to_string(),
                    view["fact"]["type"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let seen = names(&answer.json());
    let all = names(&ctx.root("GET", "/v1/timers", Body::None, 200));
    let expected: Vec<_> = all
        .iter()
        .filter(|(_, type_name)| ctx.may(identity, "read", type_name))
        .cloned()
        .collect();
    assert_eq!(seen, expected, "{identity} lists the timers it may read");
    assert!(seen.len() < all.len(), "{identity} had timers left out");
}

/// Checks that a subscription list holds exactly what `identity` may consume.
fn check_list(ctx: &Ctx, identity: &str, answer: &Answer) {
    let names = |list: &Value| -> Vec<(String, String)> {
        list["subscriptions"]
            .as_array()
            .unwrap_or_else(|| panic!("a list: {list}"))
            .iter()
            .map(|view| {
                (
                    view["name"].as_str().unwrap().to_string(),
                    view["type"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let seen = names(&answer.json());
    let all = names(&ctx.root("GET", "/v1/subscriptions", Body::None, 200));
    let expected: Vec<_> = all
        .iter()
        .filter(|(name, type_name)| {
            ctx.may(identity, "subscribe", name) && ctx.may(identity, "read", type_name)
        })
        .cloned()
        .collect();
    assert_eq!(seen, expected, "{identity} lists what it may consume");
    assert!(!seen.is_empty(), "{identity} lists something");
    assert!(
        seen.len() < all.len(),
        "{identity} had subscriptions left out"
    );
}

fn results(answer: &Answer) -> Vec<String> {
    answer.json()["results"]
        .as_array()
        .unwrap_or_else(|| panic!("results: {}", answer.describe()))
        .iter()
        .map(|result| result["status"].as_str().unwrap().to_string())
        .collect()
}

fn blob_status(ctx: &Ctx, hash: &str) -> Value {
    json!(
        ctx.send(
            "GET",
            &format!("/v1/blobs/{hash}"),
            Some(&ctx.root),
            &Body::None
        )
        .status
    )
}

/// The table: one row per operation of the document.
fn table(ctx: &Ctx) -> Vec<Row> {
    let open = ctx.open_hash.clone();
    let child = ctx.child_hash.clone();
    let lease = |name: &str| ctx.leases[name][0].clone();

    let stored_blob = b"a blob of the table".to_vec();
    let stored_hash = blake3::hash(&stored_blob).to_hex().to_string();
    let put_blob = b"a blob for PUT /v1/blobs".to_vec();
    let put_hash = blake3::hash(&put_blob).to_hex().to_string();
    let put_hash_blob = b"a blob for PUT /v1/blobs/{hash}".to_vec();
    let put_hash_hash = blake3::hash(&put_hash_blob).to_hex().to_string();
    let stored = ctx.root("PUT", "/v1/blobs", Body::Bytes(stored_blob.clone()), 200);
    assert_eq!(stored["hash"], stored_hash.as_str());

    let tokens_observe = |ctx: &Ctx| -> Value {
        let probe = |identity: &str| {
            ctx.send("GET", "/metrics", Some(ctx.token(identity)), &Body::None)
                .status
        };
        json!({
            "identities": ctx.identities(),
            "rot-target": probe("rot-target"),
            "rev-target": probe("rev-target"),
        })
    };
    // The facts a refusal could have written. `Cairn.Flow*` facts are left
    // out: the server records the flows of the service boundaries in the
    // background after any identity's successful read or write, so they
    // may land while a later row runs.
    let last_seq = |ctx: &Ctx| {
        let (entries, _) = ctx.log(&ctx.root);
        assert!(entries.len() < 1000, "the log outgrew one page");
        let written = entries
            .iter()
            .filter(|(_, type_name)| !type_name.starts_with("Cairn.Flow"));
        json!(written.count())
    };
    let ok_json = |answer: &Answer| {
        assert!(answer.json().is_object(), "{}", answer.describe());
    };

    let mut rows = Vec::new();

    // Open to everyone.
    for (template, document) in [
        ("/v1/health", false),
        ("/versions", false),
        ("/v1/openapi.json", true),
    ] {
        rows.push(
            row("GET", template, template)
                .open()
                .allowed("nothing", 200)
                .check(move |_, _, answer| {
                    ok_json(answer);
                    if document {
                        assert_eq!(answer.json(), cairn_api::openapi::document());
                    }
                }),
        );
    }
    rows.push(
        row("GET", "/metrics", "/metrics")
            .forbidden("no-metrics", "metrics")
            .allowed("meter", 200)
            .check(|_, _, answer| {
                let text = String::from_utf8_lossy(&answer.bytes);
                assert!(text.contains("cairn_auth_requests_total"), "{text}");
            }),
    );

    // Facts.
    let posted = fact(OPEN_TYPE, "posted by the table", json!({}));
    rows.push(
        row("POST", "/v1/facts", "/v1/facts")
            .body(Body::Json(json!({"facts": [posted]})))
            .forbidden("no-write", format!("write on type {OPEN_TYPE}"))
            .allowed("writer", 200)
            .check(|_, _, answer| {
                // Inserted now: no refusal before stored it.
                assert_eq!(
                    answer.json()["results"][0]["inserted"],
                    true,
                    "{}",
                    answer.describe()
                );
            })
            .observe(last_seq),
    );
    {
        let absent = "0".repeat(64);
        let open = open.clone();
        rows.push(
            row("GET", "/v1/facts/{hash}", format!("/v1/facts/{open}"))
                .refused("no-read", Refusal::NotFound)
                .allowed("reader", 200)
                .check(move |ctx, identity, answer| {
                    if answer.status == 404 {
                        // Exactly as an absent fact.
                        let absent = ctx.send(
                            "GET",
                            &format!("/v1/facts/{absent}"),
                            Some(ctx.token(identity)),
                            &Body::None,
                        );
                        assert_eq!((absent.status, absent.code()), (404, answer.code()));
                    } else {
                        assert_eq!(answer.json()["fact"]["fields"]["label"], "open");
                        assert!(
                            answer.json().get("author").is_none(),
                            "authorship is for admins"
                        );
                    }
                })
                .observe(last_seq),
        );
    }
    {
        // Addition (issue 17): a fact's deliveries list only the
        // subscriptions the caller may consume, of a fact it may read.
        let absent = "0".repeat(64);
        let path = format!("/v1/facts/{open}/deliveries");
        let all_path = path.clone();
        rows.push(
            row("GET", "/v1/facts/{hash}/deliveries", path)
                .refused("no-read", Refusal::NotFound)
                .refused("no-subscribe", Refusal::Filtered)
                .allowed("c-dead-sub", 200)
                .check(move |ctx, identity, answer| {
                    if answer.status == 404 {
                        let absent = ctx.send(
                            "GET",
                            &format!("/v1/facts/{absent}/deliveries"),
                            Some(ctx.token(identity)),
                            &Body::None,
                        );
                        assert_eq!((absent.status, absent.code()), (404, answer.code()));
                        return;
                    }
                    let names = |answer: &Value| -> Vec<String> {
                        answer["deliveries"]
                            .as_array()
                            .unwrap_or_else(|| panic!("deliveries: {answer}"))
                            .iter()
                            .map(|delivery| delivery["subscription"].as_str().unwrap().to_string())
                            .collect()
                    };
                    let all = names(&ctx.root("GET", &all_path, Body::None, 200));
                    let expected: Vec<String> = all
                        .iter()
                        .filter(|name| ctx.may(identity, "subscribe", name))
                        .cloned()
                        .collect();
                    let seen = names(&answer.json());
                    assert_eq!(seen, expected, "{identity} sees what it may consume");
                    assert!(!seen.is_empty(), "{identity} sees something");
                    assert!(seen.len() < all.len(), "{identity} had some left out");
                    assert!(!all.contains(&"other-type-sub".to_string()));
                })
                .observe(|ctx| ctx.subscription("ack-sub")),
        );
    }
    {
        let child = child.clone();
        rows.push(
            row(
                "GET",
                "/v1/facts/{hash}/successors",
                format!("/v1/facts/{open}/successors?type={OPEN_TYPE}"),
            )
            .forbidden("no-read", format!("read on type {OPEN_TYPE}"))
            .allowed("reader", 200)
            .check(move |_, _, answer| {
                let (seen, _) = log_entries(&answer.json());
                assert_eq!(seen, [(child.clone(), OPEN_TYPE.to_string())]);
            })
            .observe(last_seq),
        );
    }
    {
        let open = open.clone();
        rows.push(
            row(
                "GET",
                "/v1/facts/{hash}/successor-types",
                format!("/v1/facts/{open}/successor-types"),
            )
            .refused("no-read", Refusal::Filtered)
            .allowed("reader", 200)
            .check(move |ctx, identity, answer| {
                // Unreadable types are left out silently: nothing tells
                // that there are any.
                let readable: Vec<&str> = [OPEN_TYPE, SECRET_TYPE]
                    .into_iter()
                    .filter(|type_name| ctx.may(identity, "read", type_name))
                    .collect();
                assert_eq!(
                    answer.json(),
                    json!({"hash": open, "types": readable, "complete": true}),
                    "{identity}"
                );
            })
            .observe(last_seq),
        );
    }
    rows.push(
        row("GET", "/v1/log", "/v1/log?limit=1000")
            .refused("no-read", Refusal::Filtered)
            .allowed("reader", 200)
            .check(check_log)
            .observe(last_seq),
    );
    rows.push(
        row("GET", "/v1/digests", "/v1/digests")
            .refused("no-read", Refusal::Filtered)
            .allowed("reader", 200)
            .check(check_digests)
            .observe(last_seq),
    );

    // Blobs.
    rows.push(
        row("PUT", "/v1/blobs", "/v1/blobs")
            .body(Body::Bytes(put_blob))
            .forbidden("no-blobs", "blobs write")
            .forbidden("blobs-read-only", "blobs write")
            .allowed("blob-writer", 200)
            .check({
                let put_hash = put_hash.clone();
                move |ctx, _, answer| {
                    assert_eq!(answer.json()["hash"], put_hash.as_str());
                    assert_eq!(blob_status(ctx, &put_hash), 200);
                }
            })
            .observe(move |ctx| blob_status(ctx, &put_hash)),
    );
    rows.push(
        row(
            "PUT",
            "/v1/blobs/{hash}",
            format!("/v1/blobs/{put_hash_hash}"),
        )
        .body(Body::Bytes(put_hash_blob))
        .forbidden("no-blobs", "blobs write")
        .forbidden("blobs-read-only", "blobs write")
        .allowed("blob-writer", 200)
        .check({
            let put_hash_hash = put_hash_hash.clone();
            move |ctx, _, answer| {
                assert_eq!(answer.json()["hash"], put_hash_hash.as_str());
                assert_eq!(blob_status(ctx, &put_hash_hash), 200);
            }
        })
        .observe(move |ctx| blob_status(ctx, &put_hash_hash)),
    );
    rows.push(
        row(
            "GET",
            "/v1/blobs/{hash}",
            format!("/v1/blobs/{stored_hash}"),
        )
        .forbidden("no-blobs", "blobs read")
        .allowed("blob-reader", 200)
        .check({
            let stored_blob = stored_blob.clone();
            move |_, _, answer| assert_eq!(answer.bytes, stored_blob)
        }),
    );
    rows.push(
        row(
            "HEAD",
            "/v1/blobs/{hash}",
            format!("/v1/blobs/{stored_hash}"),
        )
        .forbidden("no-blobs", "blobs read")
        .allowed("blob-reader", 200)
        .check(move |_, _, answer| {
            let length = stored_blob.len().to_string();
            assert_eq!(answer.header("content-length"), Some(length.as_str()));
            assert!(answer.bytes.is_empty());
        }),
    );

    // Subscriptions, for their consumers.
    // Timers: writing (and deleting) one needs write on its template's
    // type, reading one needs read on it.
    rows.push(
        row("PUT", "/v1/timers/{name}", "/v1/timers/put-timer")
            .body(Body::Json(timer_body(OPEN_TYPE)))
            .forbidden("no-write", format!("write on type {OPEN_TYPE}"))
            .allowed("writer", 201)
            .check(|_, _, answer| assert_eq!(answer.json()["name"], "put-timer"))
            .observe(|ctx| timer_status(ctx, "put-timer")),
    );
    rows.push(
        row("GET", "/v1/timers/{name}", "/v1/timers/get-timer")
            .refused("no-read", Refusal::Absent("unknown_timer"))
            .allowed("reader", 200)
            .check(|_, _, answer| {
                if answer.status == 404 {
                    assert_eq!(answer.code(), "unknown_timer", "{}", answer.describe());
                } else {
                    assert_eq!(answer.json()["name"], "get-timer");
                }
            }),
    );
    rows.push(
        row("GET", "/v1/timers", "/v1/timers")
            .refused("no-read", Refusal::Filtered)
            .allowed("reader", 200)
            .check(check_timer_list),
    );
    rows.push(
        row("DELETE", "/v1/timers/{name}", "/v1/timers/del-timer")
            .forbidden("no-write", format!("write on type {OPEN_TYPE}"))
            .allowed("writer", 200)
            .check(|_, _, answer| assert_eq!(answer.json()["deleted"], true))
            .observe(|ctx| timer_status(ctx, "del-timer")),
    );
    rows.push(
        row("GET", "/v1/subscriptions", "/v1/subscriptions")
            .refused("no-subscribe", Refusal::Filtered)
            .refused("no-read", Refusal::Filtered)
            .allowed("c-list-sub", 200)
            .check(check_list),
    );
    rows.push(
        row(
            "PUT",
            "/v1/subscriptions/{name}",
            "/v1/subscriptions/put-sub",
        )
        .body(Body::Json(json!({"type": OPEN_TYPE})))
        .consumer("put-sub", 201)
        .check(|ctx, _, answer| {
            assert_eq!(answer.json()["name"], "put-sub");
            assert!(ctx.subscription("put-sub")["backlog"].is_u64());
        }),
    );
    rows.push(
        row(
            "GET",
            "/v1/subscriptions/{name}",
            "/v1/subscriptions/get-sub",
        )
        .consumer("get-sub", 200)
        .check(|_, _, answer| assert_eq!(answer.json()["name"], "get-sub")),
    );
    rows.push(
        row(
            "POST",
            "/v1/subscriptions/{name}/pull",
            "/v1/subscriptions/pull-sub/pull",
        )
        .body(Body::Json(json!({"max": 1, "wait_ms": 5000})))
        .consumer("pull-sub", 200)
        .check(|ctx, _, answer| {
            let messages = answer.json()["messages"].clone();
            assert_eq!(messages.as_array().map(Vec::len), Some(1), "{messages}");
            assert_eq!(messages[0]["fact"]["type"], OPEN_TYPE);
            assert_eq!(ctx.subscription("pull-sub")["in_flight"], 1);
        }),
    );
    for (verb, name, template, status) in [
        ("ack", "ack-sub", "/v1/subscriptions/{name}/ack", "acked"),
        (
            "nack",
            "nack-sub",
            "/v1/subscriptions/{name}/nack",
            "nacked",
        ),
        (
            "extend",
            "extend-sub",
            "/v1/subscriptions/{name}/extend",
            "extended",
        ),
    ] {
        let mut body = json!({"tokens": [lease(name)]});
        if verb == "nack" {
            body["delay_ms"] = json!(60_000);
        }
        rows.push(
            row("POST", template, format!("/v1/subscriptions/{name}/{verb}"))
                .body(Body::Json(body))
                .consumer(name, 200)
                .check(move |_, _, answer| assert_eq!(results(answer), [status])),
        );
    }
    rows.push(
        row(
            "GET",
            "/v1/subscriptions/{name}/stream",
            "/v1/subscriptions/stream-sub/stream",
        )
        .websocket()
        .consumer("stream-sub", 101)
        .check(|ctx, _, answer| {
            let frame = answer.json();
            assert_eq!(frame["message"]["fact"]["type"], OPEN_TYPE, "{frame}");
            assert_eq!(ctx.subscription("stream-sub")["delivered"], 1);
        }),
    );
    rows.push(
        row(
            "GET",
            "/v1/subscriptions/{name}/dead",
            "/v1/subscriptions/dead-sub/dead",
        )
        .consumer("dead-sub", 200)
        .check(|_, _, answer| {
            assert_eq!(answer.json()["messages"].as_array().map(Vec::len), Some(2));
        }),
    );
    rows.push(
        row(
            "GET",
            "/v1/subscriptions/{name}/dead/causes",
            "/v1/subscriptions/dead-sub/dead/causes",
        )
        .consumer("dead-sub", 200)
        .check(|_, _, answer| {
            let answer = answer.json();
            assert_eq!(
                answer["causes"][0]["cause"], "made dead by the test",
                "{answer}"
            );
            assert_eq!(answer["causes"][0]["count"], 2, "{answer}");
            assert_eq!(answer["exact"], true, "{answer}");
        }),
    );
    {
        let open = open.clone();
        rows.push(
            row(
                "GET",
                "/v1/subscriptions/{name}/dead/{hash}",
                format!("/v1/subscriptions/dead-sub/dead/{open}"),
            )
            .consumer("dead-sub", 200)
            .check(move |_, _, answer| assert_eq!(answer.json()["hash"], open.as_str())),
        );
    }

    // Subscriptions, for admins only.
    let admin_on = |admin_row: Row, name: &'static str, success: u16| {
        admin_row
            .admin(success)
            .observe(move |ctx| ctx.subscription(name))
    };
    rows.push(
        admin_on(
            row(
                "DELETE",
                "/v1/subscriptions/{name}",
                "/v1/subscriptions/del-sub",
            ),
            "del-sub",
            200,
        )
        .check(|ctx, _, _| assert_eq!(ctx.subscription("del-sub")["status"], 404)),
    );
    rows.push(
        admin_on(
            row(
                "POST",
                "/v1/subscriptions/{name}/pause",
                "/v1/subscriptions/pause-sub/pause",
            ),
            "pause-sub",
            200,
        )
        .check(|_, _, answer| assert_eq!(answer.json()["paused"], true)),
    );
    rows.push(
        admin_on(
            row(
                "POST",
                "/v1/subscriptions/{name}/resume",
                "/v1/subscriptions/resume-sub/resume",
            ),
            "resume-sub",
            200,
        )
        .check(|_, _, answer| assert_eq!(answer.json()["paused"], false)),
    );
    rows.push(
        admin_on(
            row(
                "POST",
                "/v1/subscriptions/{name}/dead/replay",
                "/v1/subscriptions/replay-sub/dead/replay",
            )
            .body(Body::Json(json!({"hashes": [open.clone()]}))),
            "replay-sub",
            200,
        )
        .check(|_, _, answer| assert_eq!(answer.json()["replayed"], 1)),
    );
    rows.push(
        admin_on(
            row(
                "DELETE",
                "/v1/subscriptions/{name}/dead/{hash}",
                format!("/v1/subscriptions/discard-sub/dead/{open}"),
            ),
            "discard-sub",
            200,
        )
        .check(|_, _, answer| assert_eq!(answer.json()["discarded"], true)),
    );

    // Identities, tokens and the audit trail.
    rows.push(
        row("POST", "/v1/tokens", "/v1/tokens")
            .body(Body::Json(
                json!({"name": "row-made", "permissions": {"metrics": true}}),
            ))
            .admin(201)
            .check(|ctx, _, answer| {
                let token = answer.json()["token"].as_str().unwrap().to_string();
                assert_eq!(
                    ctx.send("GET", "/metrics", Some(&token), &Body::None)
                        .status,
                    200
                );
            })
            .observe(tokens_observe),
    );
    rows.push(
        row("GET", "/v1/tokens", "/v1/tokens")
            .admin(200)
            .check(|ctx, _, answer| {
                let text = String::from_utf8_lossy(&answer.bytes).to_string();
                assert!(text.contains("\"rot-target\""), "{text}");
                for token in ctx.tokens.values() {
                    let secret = token.rsplit('_').next().unwrap();
                    assert!(!text.contains(secret), "a secret is listed");
                }
            })
            .observe(tokens_observe),
    );
    rows.push(
        row(
            "POST",
            "/v1/tokens/{name}/rotate",
            "/v1/tokens/rot-target/rotate",
        )
        // Without an overlap a rotation that slipped through would
        // end the earlier token at once, which `observe` would see.
        .body(Body::Json(json!({"overlap_s": 0})))
        .admin(200)
        .check(|ctx, _, answer| {
            let token = answer.json()["token"].as_str().unwrap().to_string();
            assert_eq!(
                ctx.send("GET", "/metrics", Some(&token), &Body::None)
                    .status,
                200
            );
            wait_refused(ctx, ctx.token("rot-target"));
        })
        .observe(tokens_observe),
    );
    rows.push(
        row("DELETE", "/v1/tokens/{name}", "/v1/tokens/rev-target")
            .admin(200)
            .check(|ctx, _, answer| {
                assert_eq!(answer.json()["revoked"], true);
                wait_refused(ctx, ctx.token("rev-target"));
            })
            .observe(tokens_observe),
    );
    // Addition (issue 17): any valid token learns its own permissions.
    rows.push(
        row("GET", "/v1/whoami", "/v1/whoami")
            .any_identity()
            .allowed("c-get-sub", 200)
            .check(|ctx, identity, answer| {
                let answer = answer.json();
                assert_eq!(answer["auth"], true, "{answer}");
                assert_eq!(answer["identity"], identity, "{answer}");
                assert_eq!(answer["permissions"], ctx.permissions[identity], "{answer}");
                assert!(!answer.to_string().contains("cairn_"), "no token: {answer}");
            }),
    );
    rows.push(
        row("GET", "/v1/audit", "/v1/audit")
            .admin(200)
            .check(|_, _, answer| assert!(answer.json()["entries"].is_array())),
    );
    collaboration_rows(ctx, &mut rows);
    link_rows(&mut rows);
    schema_rows(&mut rows);
    service_rows(&mut rows);
    rows
}

/// The rows of schemas: registering is an admin's; reading a type's
/// schemas needs permission to read the type.
fn schema_rows(rows: &mut Vec<Row>) {
    let versions_observe = |ctx: &Ctx| ctx.root_answer("GET", &format!("/v1/schemas/{OPEN_TYPE}"));
    rows.push(
        row("GET", "/v1/schemas", "/v1/schemas")
            .refused("no-read", Refusal::Filtered)
            .allowed("reader", 200)
            .check(|ctx, identity, answer| {
                let types: Vec<String> = answer.json()["types"]
                    .as_array()
                    .expect("types")
                    .iter()
                    .map(|list| list["type"].as_str().expect("a type").to_string())
                    .collect();
                let expected: Vec<String> = [OPEN_TYPE, SECRET_TYPE]
                    .into_iter()
                    .filter(|type_name| ctx.may(identity, "read", type_name))
                    .map(str::to_string)
                    .collect();
                assert_eq!(types, expected, "{identity} lists the schemas it may read");
            }),
    );
    rows.push(
        row(
            "GET",
            "/v1/schemas/{type}",
            format!("/v1/schemas/{OPEN_TYPE}"),
        )
        .forbidden("no-read", format!("read on type {OPEN_TYPE}"))
        .allowed("reader", 200)
        .check(|_, _, answer| assert_eq!(answer.json()["versions"][0]["version"], 1)),
    );
    rows.push(
        row(
            "GET",
            "/v1/schemas/{type}/{version}",
            format!("/v1/schemas/{OPEN_TYPE}/1"),
        )
        .forbidden("no-read", format!("read on type {OPEN_TYPE}"))
        .allowed("reader", 200)
        .check(|_, _, answer| assert_eq!(answer.json()["compatibility"], "none")),
    );
    rows.push(
        row(
            "PUT",
            "/v1/schemas/{type}/{version}",
            format!("/v1/schemas/{OPEN_TYPE}/2"),
        )
        .body(Body::Json(json!({"schema": {}, "compatibility": "none"})))
        .admin(201)
        .check(|_, _, answer| assert_eq!(answer.json()["version"], 2))
        .observe(versions_observe),
    );
}

/// The rows of service declarations and the boundaries check: every
/// operation is an admin's.
fn service_rows(rows: &mut Vec<Row>) {
    rows.push(
        row("GET", "/v1/services", "/v1/services")
            .admin(200)
            .check(|_, _, answer| assert!(answer.json()["services"].is_array())),
    );
    rows.push(
        row("PUT", "/v1/services/{name}", "/v1/services/put_svc")
            .body(Body::Json(
                json!({"name": "put_svc", "identity": "put-svc"}),
            ))
            .admin(201)
            .check(|_, _, answer| assert_eq!(answer.json()["declaration"]["name"], "put_svc"))
            .observe(|ctx| ctx.root_answer("GET", "/v1/services/put_svc")["status"].clone()),
    );
    rows.push(
        row("GET", "/v1/services/{name}", "/v1/services/get_svc")
            .admin(200)
            .check(|_, _, answer| assert_eq!(answer.json()["declaration"]["identity"], "get-svc")),
    );
    rows.push(
        row("GET", "/v1/boundaries", "/v1/boundaries")
            .admin(200)
            .check(|_, _, answer| assert!(answer.json()["violations"].is_array())),
    );
}

/// A link definition whose source nobody listens at.
fn link_body() -> Value {
    json!({"source": "http://127.0.0.1:9", "types": ["*"]})
}

/// The status of `GET /v1/links/{name}` for the setup admin, and whether
/// the link is paused.
fn link_observe(name: &'static str) -> impl Fn(&Ctx) -> Value {
    // Only what a refused request could have changed: whether the link
    // exists and whether it is paused (its lag and errors move by
    // themselves).
    move |ctx: &Ctx| {
        let observed = ctx.root_answer("GET", &format!("/v1/links/{name}"));
        json!([observed["status"], observed["answer"]["state"] == "paused"])
    }
}

/// The rows of replication links: every operation is an admin's.
fn link_rows(rows: &mut Vec<Row>) {
    rows.push(
        row("GET", "/v1/links", "/v1/links")
            .admin(200)
            .check(|_, _, answer| assert!(answer.json()["links"].is_array())),
    );
    rows.push(
        row("PUT", "/v1/links/{name}", "/v1/links/put-link")
            .body(Body::Json(link_body()))
            .admin(201)
            .check(|_, _, answer| assert_eq!(answer.json()["name"], "put-link"))
            .observe(link_observe("put-link")),
    );
    rows.push(
        row("GET", "/v1/links/{name}", "/v1/links/get-link")
            .admin(200)
            .check(|_, _, answer| assert_eq!(answer.json()["name"], "get-link")),
    );
    rows.push(
        row("DELETE", "/v1/links/{name}", "/v1/links/del-link")
            .admin(200)
            .check(|_, _, answer| assert_eq!(answer.json()["deleted"], true))
            .observe(link_observe("del-link")),
    );
    rows.push(
        row(
            "POST",
            "/v1/links/{name}/pause",
            "/v1/links/pause-link/pause",
        )
        .admin(200)
        .check(|_, _, answer| assert_eq!(answer.json()["state"], "paused"))
        .observe(link_observe("pause-link")),
    );
    rows.push(
        // The source is a closed port: an admin's repair reaches the
        // handler and is answered 502; anyone else's is refused first.
        row(
            "POST",
            "/v1/links/{name}/repair",
            "/v1/links/get-link/repair",
        )
        .admin(502)
        .check(|_, _, answer| assert_eq!(answer.code(), "source_unavailable")),
    );
    rows.push(
        row(
            "POST",
            "/v1/links/{name}/resume",
            "/v1/links/resume-link/resume",
        )
        .admin(200)
        .check(|_, _, answer| assert_ne!(answer.json()["state"], "paused"))
        .observe(link_observe("resume-link")),
    );
}

/// The rows of claims and leases: permissions on the `Cairn.*` type that
/// records each decision.
fn collaboration_rows(ctx: &Ctx, rows: &mut Vec<Row>) {
    let claim_observe =
        |key: &'static str| move |ctx: &Ctx| ctx.root_answer("GET", &format!("/v1/claims/{key}"));
    let lease_observe =
        |name: &'static str| move |ctx: &Ctx| ctx.root_answer("GET", &format!("/v1/leases/{name}"));
    let open = ctx.open_hash.clone();
    rows.push(
        row("POST", "/v1/claims", "/v1/claims")
            .body(Body::Json(json!({"key": "new-claim", "fact": open})))
            .forbidden("no-write", "write on type Cairn.Claimed")
            .allowed("claimer", 200)
            .check(|_, _, answer| assert_eq!(answer.json()["won"], true))
            .observe(claim_observe("new-claim")),
    );
    rows.push(
        row("GET", "/v1/claims/{key}", "/v1/claims/held-claim")
            .forbidden("no-read", "read on type Cairn.Claimed")
            .allowed("claim-reader", 200)
            .check(|ctx, _, answer| assert_eq!(answer.json()["fact"], ctx.open_hash.as_str())),
    );
    rows.push(
        row("POST", "/v1/claims/release", "/v1/claims/release")
            .body(Body::Json(json!({"key": "release-claim", "fact": open})))
            .forbidden("no-write", "write on type Cairn.Claimed")
            .allowed("claimer", 200)
            .observe(claim_observe("release-claim")),
    );
    rows.push(
        row("GET", "/v1/leases/{name}", "/v1/leases/held-lease")
            .forbidden("no-read", "read on type Cairn.LeaseGranted")
            .allowed("lease-reader", 200)
            .check(|_, _, answer| assert_eq!(answer.json()["holder"], "h")),
    );
    rows.push(
        row(
            "POST",
            "/v1/leases/{name}/acquire",
            "/v1/leases/new-lease/acquire",
        )
        .body(Body::Json(json!({"holder": "x", "ttl_ms": 60_000})))
        .forbidden("no-write", "write on type Cairn.LeaseGranted")
        .allowed("leaser", 200)
        .check(|_, _, answer| assert_eq!(answer.json()["fence"], 1))
        .observe(lease_observe("new-lease")),
    );
    for (action, name) in [("renew", "renew-lease"), ("release", "release-lease")] {
        let template = if action == "renew" {
            "/v1/leases/{name}/renew"
        } else {
            "/v1/leases/{name}/release"
        };
        rows.push(
            row("POST", template, format!("/v1/leases/{name}/{action}"))
                .body(Body::Json(json!({"holder": "h", "fence": 1})))
                .forbidden("no-write", "write on type Cairn.LeaseGranted")
                .allowed("leaser", 200)
                .observe(lease_observe(name)),
        );
    }
}

/// Waits (bounded) until `token` is refused.
fn wait_refused(ctx: &Ctx, token: &str) {
    let deadline = Instant::now() + WAIT;
    while ctx.send("GET", "/metrics", Some(token), &Body::None).status != 401 {
        assert!(Instant::now() < deadline, "the token still works");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends the row's request with `token`; a WebSocket row that upgrades
/// grants one credit and answers `101` with the first frame as its body.
fn attempt(ctx: &Ctx, row: &Row, token: Option<&str>) -> Answer {
    if !row.websocket {
        return ctx.send(row.method, &row.path, token, &row.body);
    }
    let runtime = runtime();
    let mut socket = match ws_connect(&runtime, &ctx.server, &row.path, token) {
        Ok(socket) => socket,
        Err(answer) => return answer,
    };
    let frame = runtime.block_on(async {
        socket
            .send(tungstenite::Message::text(json!({"credit": 1}).to_string()))
            .await
            .expect("the credit is sent");
        let frame = loop {
            match tokio::time::timeout(WAIT, socket.next()).await {
                Ok(Some(Ok(tungstenite::Message::Text(text)))) => break text.as_str().to_string(),
                Ok(Some(Ok(tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_)))) => {}
                other => panic!("expected a frame, got {other:?}"),
            }
        };
        let _ = socket.close(None).await;
        frame
    });
    Answer {
        status: 101,
        headers: Vec::new(),
        bytes: frame.into_bytes(),
    }
}

#[test]
fn every_operation_is_refused_and_allowed_as_the_contract_says() {
    let started = Instant::now();
    let (_dir, ctx) = setup();
    let rows = table(&ctx);
    let setup_time = started.elapsed();

    // The table covers the document, and names nothing else.
    let documented = document_operations();
    let mut listed = BTreeSet::new();
    for row in &rows {
        let key = (row.method.to_string(), row.template.to_string());
        assert!(listed.insert(key), "{} has two rows", row.label());
    }
    let missing: Vec<_> = documented.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&documented).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "operations without a row: {missing:?}; rows without an operation: {extra:?}"
    );
    let open: BTreeSet<_> = cairn_api::openapi::OPEN_OPERATIONS
        .iter()
        .map(|(method, path)| (method.to_ascii_uppercase(), path.to_string()))
        .collect();
    for row in &rows {
        let key = (row.method.to_string(), row.template.to_string());
        assert_eq!(row.open, open.contains(&key), "{} open or not", row.label());
    }

    let forged = format!("cairn_{}_{}", "5a17".repeat(4), "c0ffee42".repeat(8));
    let revoked = ctx.token("gone").to_string();
    let mut failures = Vec::new();
    for row in &rows {
        let label = row.label();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_row(&ctx, row, &forged, &revoked)
        }));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_default();
            failures.push(format!("{label}: {message}"));
        }
    }

    // A lease token of another subscription is unknown to the one named,
    // even to a consumer of the one named, and changes nothing.
    let foreign = ctx.leases["ack-sub"][1].clone();
    let before = ctx.subscription("ack-sub");
    let answer = ctx.send(
        "POST",
        "/v1/subscriptions/get-sub/ack",
        Some(ctx.token("c-get-sub")),
        &Body::Json(json!({"tokens": [foreign]})),
    );
    assert_eq!(answer.status, 200, "{}", answer.describe());
    assert_eq!(results(&answer), ["unknown"]);
    assert_eq!(ctx.subscription("ack-sub"), before);

    // A fact of a type the reader may not read is answered as an absent one.
    let reader = ctx.token("reader");
    let secret = ctx.send(
        "GET",
        &format!("/v1/facts/{}", ctx.secret_hash),
        Some(reader),
        &Body::None,
    );
    assert_eq!(
        (secret.status, secret.code()),
        (404, "not_found".to_string())
    );

    eprintln!(
        "{} rows, setup {:?}, total {:?}",
        rows.len(),
        setup_time,
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n"),
        ctx.server.log_text()
    );
}

/// The five cases of one row.
fn run_row(ctx: &Ctx, row: &Row, forged: &str, revoked: &str) {
    let before = (row.observe)(ctx);
    let unchanged = |case: &str| {
        assert_eq!((row.observe)(ctx), before, "{case} changed something");
    };
    let has_body = row.method != "HEAD";
    let unauthenticated = |case: &str, answer: Answer| {
        if row.open {
            assert_eq!(answer.status, row.success, "{case}: {}", answer.describe());
            (row.check)(ctx, "-", &answer);
            return;
        }
        assert_eq!(answer.status, 401, "{case}: {}", answer.describe());
        if has_body {
            assert_eq!(answer.code(), "unauthenticated", "{case}");
        }
        assert!(
            answer
                .header("www-authenticate")
                .is_some_and(|value| value.starts_with("Bearer")),
            "{case}: WWW-Authenticate: {:?}",
            answer.header("www-authenticate")
        );
        unchanged(case);
    };
    // 1. No token; 2. a token never issued; 3. a revoked one.
    unauthenticated("no token", attempt(ctx, row, None));
    unauthenticated("a forged token", attempt(ctx, row, Some(forged)));
    unauthenticated("a revoked token", attempt(ctx, row, Some(revoked)));

    // 4. Identities lacking exactly what the row needs.
    for (identity, refusal) in &row.insufficient {
        let answer = attempt(ctx, row, Some(ctx.token(identity)));
        let case = format!("as {identity}");
        match refusal {
            Refusal::Forbidden(permission) => {
                assert_eq!(answer.status, 403, "{case}: {}", answer.describe());
                if has_body {
                    let body = answer.json();
                    assert_eq!(answer.code(), "forbidden", "{case}");
                    assert_eq!(
                        body["error"]["permission"],
                        permission.as_str(),
                        "{case}: {body}"
                    );
                    assert!(
                        body["error"]["message"]
                            .as_str()
                            .is_some_and(|message| message.contains(permission.as_str())),
                        "{case}: {body}"
                    );
                }
            }
            Refusal::NotFound => {
                assert_eq!(
                    (answer.status, answer.code()),
                    (404, "not_found".to_string()),
                    "{case}: {}",
                    answer.describe()
                );
                (row.check)(ctx, identity, &answer);
            }
            Refusal::Absent(code) => {
                assert_eq!(
                    (answer.status, answer.code()),
                    (404, code.to_string()),
                    "{case}: {}",
                    answer.describe()
                );
                (row.check)(ctx, identity, &answer);
            }
            Refusal::Filtered => {
                assert_eq!(answer.status, 200, "{case}: {}", answer.describe());
                (row.check)(ctx, identity, &answer);
            }
        }
        unchanged(&case);
    }
    if row.open {
        let answer = attempt(ctx, row, Some(ctx.token("nothing")));
        assert_eq!(
            answer.status,
            row.success,
            "as nothing: {}",
            answer.describe()
        );
    } else if row.any_identity {
        let answer = attempt(ctx, row, Some(ctx.token("nothing")));
        assert_eq!(
            answer.status,
            row.success,
            "as nothing: {}",
            answer.describe()
        );
        (row.check)(ctx, "nothing", &answer);
    } else {
        assert!(!row.insufficient.is_empty(), "no insufficient identity");
    }

    // 5. The narrowest identity allowed.
    let answer = attempt(ctx, row, Some(ctx.token(&row.least)));
    assert_eq!(
        answer.status,
        row.success,
        "as {}: {}",
        row.least,
        answer.describe()
    );
    (row.check)(ctx, &row.least, &answer);
}
