//! The checker's view of Cairn's HTTP API v1: the few calls the workload and
//! the oracle make, each with a short timeout, and every answer classified
//! the way the oracle needs it — done, refused (a definite "no"), or
//! unknown (no answer, so the operation may or may not have happened).
//!
//! With `--auth`, each request carries the access token of the identity
//! whose job it is ([`Role`]): the checker's own least-privilege writer,
//! reader and consumer, and an admin only for what needs one. Tokens are
//! sent as sensitive headers and never printed (see [`AccessTokens`]).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

/// How long one request may take before its outcome counts as unknown.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The outcome of one request.
#[derive(Debug)]
pub enum Answer {
    /// A success status with its JSON body.
    Done(Value),
    /// A 4xx answer: the server refused the request, and a refused request
    /// changes nothing. Carries the status and the error code.
    Refused(u16, String),
    /// No definite answer: a timeout, a broken connection or a 5xx. The
    /// operation may or may not have taken effect. Carries the status
    /// (0 without one) and a description.
    Unknown(u16, String),
}

impl Answer {
    /// The body of a successful answer.
    pub fn done(self) -> Option<Value> {
        match self {
            Answer::Done(body) => Some(body),
            _ => None,
        }
    }
}

/// Whose token a request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Writes the workload's facts (and may read them).
    Writer,
    /// Reads facts and the log.
    Reader,
    /// Creates, views and consumes the run's subscriptions.
    Consumer,
    /// Replays dead letters (what only an admin may do).
    Admin,
}

/// The access tokens of the checker's identities, one per [`Role`]. A
/// secret: its `Debug` shows none of them.
#[derive(Clone)]
pub struct AccessTokens {
    /// The writer's token.
    pub writer: String,
    /// The reader's token.
    pub reader: String,
    /// The consumer's token.
    pub consumer: String,
    /// The admin's token.
    pub admin: String,
}

impl AccessTokens {
    fn of(&self, role: Role) -> &str {
        match role {
            Role::Writer => &self.writer,
            Role::Reader => &self.reader,
            Role::Consumer => &self.consumer,
            Role::Admin => &self.admin,
        }
    }
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessTokens(<redacted>)")
    }
}

/// A client of one server's base URL.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    tokens: Option<Arc<AccessTokens>>,
}

impl Default for Api {
    fn default() -> Self {
        Api::new()
    }
}

impl Api {
    /// A client with the checker's timeouts and no connection reuse across
    /// faults beyond what reqwest's pool does.
    pub fn new() -> Api {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .expect("a reqwest client with timeouts builds");
        Api { http, tokens: None }
    }

    /// The same client, sending each request with the token of its role
    /// (for servers started with `--auth`).
    pub fn with_tokens(mut self, tokens: AccessTokens) -> Api {
        self.tokens = Some(Arc::new(tokens));
        self
    }

    /// Sends `request` with the token of `role`, when there are tokens.
    async fn send_as(&self, role: Role, request: reqwest::RequestBuilder) -> Answer {
        let request = match &self.tokens {
            // `bearer_auth` marks the header sensitive.
            Some(tokens) => request.bearer_auth(tokens.of(role)),
            None => request,
        };
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Answer::Unknown(0, error.to_string()),
        };
        let status = response.status().as_u16();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(error) => return Answer::Unknown(status, error.to_string()),
        };
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match status {
            200..=299 => Answer::Done(value),
            400..=499 => Answer::Refused(status, error_code(&value)),
            _ => Answer::Unknown(status, error_code(&value)),
        }
    }

    /// `POST /v1/facts`.
    pub async fn post_facts(&self, base: &str, facts: &[Value]) -> Answer {
        let request = self
            .http
            .post(format!("{base}/v1/facts"))
            .json(&json!({ "facts": facts }));
        self.send_as(Role::Writer, request).await
    }

    /// `POST /v1/facts` with `Cairn-Fence: <lease>=<fence>`: stored only
    /// while that fence is the lease's current grant (else `Refused(409,
    /// "stale_fence")`).
    pub async fn post_facts_fenced(
        &self,
        base: &str,
        facts: &[Value],
        lease: &str,
        fence: u64,
    ) -> Answer {
        let request = self
            .http
            .post(format!("{base}/v1/facts"))
            .header("Cairn-Fence", format!("{lease}={fence}"))
            .json(&json!({ "facts": facts }));
        self.send_as(Role::Writer, request).await
    }

    /// `POST /v1/claims`: claims `key` for the stored fact `fact` (the
    /// writer's job: it wrote the fact).
    pub async fn claim(&self, base: &str, key: &str, fact: &str) -> Answer {
        let request = self
            .http
            .post(format!("{base}/v1/claims"))
            .json(&json!({"key": key, "fact": fact}));
        self.send_as(Role::Writer, request).await
    }

    /// `POST /v1/claims/release`: frees `key` if `fact` holds it.
    pub async fn release_claim(&self, base: &str, key: &str, fact: &str) -> Answer {
        let request = self
            .http
            .post(format!("{base}/v1/claims/release"))
            .json(&json!({"key": key, "fact": fact}));
        self.send_as(Role::Writer, request).await
    }

    /// `POST /v1/leases/{name}/{action}` (acquire, renew, release) with a
    /// JSON body.
    pub async fn lease_call(&self, base: &str, name: &str, action: &str, body: &Value) -> Answer {
        let request = self
            .http
            .post(format!("{base}/v1/leases/{name}/{action}"))
            .json(body);
        self.send_as(Role::Writer, request).await
    }

    /// `PUT /v1/timers/{name}`: creates, replaces or (same definition)
    /// leaves a timer (the writer's job: it needs write on the template's
    /// type).
    pub async fn put_timer(&self, base: &str, name: &str, definition: &Value) -> Answer {
        let request = self
            .http
            .put(format!("{base}/v1/timers/{name}"))
            .json(definition);
        self.send_as(Role::Writer, request).await
    }

    /// `DELETE /v1/timers/{name}`: `Refused(404, _)` when absent.
    pub async fn delete_timer(&self, base: &str, name: &str) -> Answer {
        let request = self.http.delete(format!("{base}/v1/timers/{name}"));
        self.send_as(Role::Writer, request).await
    }

    /// `GET /v1/facts/{hash}`: `Refused(404, _)` when absent.
    pub async fn get_fact(&self, base: &str, hash: &str) -> Answer {
        self.send_as(
            Role::Reader,
            self.http.get(format!("{base}/v1/facts/{hash}")),
        )
        .await
    }

    /// `GET /v1/log?after=..&limit=..`.
    pub async fn log_page(&self, base: &str, after: u64, limit: u64) -> Answer {
        let url = format!("{base}/v1/log?after={after}&limit={limit}");
        self.send_as(Role::Reader, self.http.get(url)).await
    }

    /// `GET /v1/log` without a token: a server started with `--auth` must
    /// answer it 401 (how the checker knows the servers enforce `--auth`).
    pub async fn log_page_anonymous(&self, base: &str) -> Answer {
        let url = format!("{base}/v1/log?after=0&limit=1");
        self.send(self.http.get(url)).await
    }

    /// `GET /v1/health` (open to everyone: no token).
    pub async fn health(&self, base: &str) -> Answer {
        self.send(self.http.get(format!("{base}/v1/health"))).await
    }

    /// `PUT /v1/subscriptions/{name}`.
    pub async fn put_subscription(&self, base: &str, name: &str, definition: &Value) -> Answer {
        let request = self
            .http
            .put(format!("{base}/v1/subscriptions/{name}"))
            .json(definition);
        self.send_as(Role::Consumer, request).await
    }

    /// `GET /v1/subscriptions/{name}`.
    pub async fn subscription(&self, base: &str, name: &str) -> Answer {
        let request = self.http.get(format!("{base}/v1/subscriptions/{name}"));
        self.send_as(Role::Consumer, request).await
    }

    /// `POST /v1/subscriptions/{name}/{action}` with a JSON body (pull,
    /// ack, nack as the consumer; dead/replay as the admin).
    pub async fn subscription_call(
        &self,
        base: &str,
        name: &str,
        action: &str,
        body: &Value,
    ) -> Answer {
        let request = self
            .http
            .post(format!("{base}/v1/subscriptions/{name}/{action}"))
            .json(body);
        let role = if action.starts_with("dead") {
            Role::Admin
        } else {
            Role::Consumer
        };
        self.send_as(role, request).await
    }

    /// `PUT /v1/links/{name}` (an admin's job).
    pub async fn put_link(&self, base: &str, name: &str, definition: &Value) -> Answer {
        let request = self
            .http
            .put(format!("{base}/v1/links/{name}"))
            .json(definition);
        self.send_as(Role::Admin, request).await
    }

    /// `GET /v1/links` (an admin's job).
    pub async fn links(&self, base: &str) -> Answer {
        let request = self.http.get(format!("{base}/v1/links"));
        self.send_as(Role::Admin, request).await
    }

    /// One page of `GET /v1/subscriptions/{name}/dead`.
    pub async fn dead_letters(&self, base: &str, name: &str, after: u64) -> Answer {
        let url = format!("{base}/v1/subscriptions/{name}/dead?limit=1000&after={after}");
        self.send_as(Role::Consumer, self.http.get(url)).await
    }
}

/// The error code of an answer, with the missing hashes of a
/// `missing_predecessors` refusal (the detail a counterexample needs).
fn error_code(body: &Value) -> String {
    let code = body
        .pointer("/error/code")
        .and_then(Value::as_str)
        .unwrap_or("no_error_code");
    match body.pointer("/error/missing").and_then(Value::as_array) {
        Some(missing) => {
            let hashes: Vec<&str> = missing.iter().filter_map(Value::as_str).collect();
            format!("{code} {}", hashes.join(","))
        }
        None => code.to_string(),
    }
}
