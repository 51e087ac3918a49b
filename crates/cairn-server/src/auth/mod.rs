//! Access control (`cairn serve --auth`): who is calling, and what each
//! identity may do. See "Access control" in `docs/api-v1.md`.
//!
//! One middleware ([`authenticate`]) runs on every route: it reads the
//! bearer token (one parser, `token.rs`), finds its identity in memory
//! (`registry.rs`), applies the identity's request rate, checks what the
//! route alone decides (admin, blobs, metrics: [`Need`]) and hands the
//! handler a [`Caller`]. Handlers then authorize every object a request
//! touches by its own stored attributes — each fact of a batch by its
//! type, a subscription by its stored definition — through the `Caller`.
//! The middleware sees every answer, so every 401, 403 and 429
//! `rate_limited` and every admin action reaches the audit trail
//! (`audit.rs`). Without `--auth` every request is [`Caller::Anyone`].

mod audit;
pub mod identities;
mod registry;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_api::access::Permissions;
use cairn_api::ErrorCode;
use cairn_store::{IdentityStore, ReadError};
use tokio_util::sync::CancellationToken;

pub use audit::Audit;
pub use registry::{unix_ms, Identity, Refusal, Registry, Session, REFRESH_INTERVAL};

use crate::error::ApiError;

/// How often token uses and aggregated refusals are written to the store.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// Access control of one server: its identities and its audit trail.
pub struct Auth {
    /// The identities known.
    pub registry: Registry,
    /// The audit trail.
    pub audit: Audit,
}

impl Auth {
    /// Loads the identities of `store`.
    pub async fn load(store: Arc<dyn IdentityStore>) -> Result<Auth, ReadError> {
        Ok(Auth {
            registry: Registry::load(Arc::clone(&store)).await?,
            audit: Audit::new(store),
        })
    }

    /// Keeps the identities fresh and flushes uses and refusals until
    /// `shutdown` (the node then calls [`Auth::flush`] once more, before it
    /// closes the store).
    pub fn spawn_upkeep(self: &Arc<Self>, shutdown: CancellationToken) {
        let auth = Arc::clone(self);
        tokio::spawn(async move {
            let mut refresh = tokio::time::interval(REFRESH_INTERVAL);
            let mut flush = tokio::time::interval(FLUSH_INTERVAL);
            loop {
                tokio::select! {
                    _ = refresh.tick() => {
                        if let Err(error) = auth.registry.refresh().await {
                            tracing::warn!(%error, "could not refresh identities; keeping the ones known");
                        }
                    }
                    _ = flush.tick() => auth.flush().await,
                    () = shutdown.cancelled() => break,
                }
            }
        });
    }

    /// Writes the token uses and aggregated refusals seen so far.
    pub async fn flush(&self) {
        self.registry.flush_uses().await;
        self.audit.flush().await;
    }
}

/// Who is making a request.
#[derive(Clone)]
pub enum Caller {
    /// The server runs without `--auth`: every request may do everything.
    Anyone,
    /// An authenticated identity.
    Identity {
        /// Its session.
        session: Session,
        /// The access control that authenticated it.
        auth: Arc<Auth>,
    },
}

impl Caller {
    fn permissions(&self) -> Option<&Permissions> {
        match self {
            Caller::Anyone => None,
            Caller::Identity { session, .. } => Some(&session.identity.permissions),
        }
    }

    /// What it may do, as `/v1/whoami` answers it: everything
    /// (`admin`) without `--auth`.
    pub fn granted(&self) -> Permissions {
        self.permissions()
            .cloned()
            .unwrap_or_else(Permissions::admin)
    }

    /// The identity's name, if there is one.
    pub fn name(&self) -> Option<&Arc<str>> {
        match self {
            Caller::Anyone => None,
            Caller::Identity { session, .. } => Some(&session.identity.name),
        }
    }

    /// The author to record for the facts it writes.
    pub fn author(&self) -> Option<Arc<str>> {
        self.name().cloned()
    }

    /// May read facts of `type_name`.
    pub fn may_read(&self, type_name: &str) -> bool {
        self.permissions().is_none_or(|p| p.may_read(type_name))
    }

    /// Whether it has every permission.
    pub fn is_admin(&self) -> bool {
        self.permissions().is_none_or(|p| p.admin)
    }

    /// 403 unless it may read facts of `type_name`.
    pub fn require_read(&self, type_name: &str) -> Result<(), ApiError> {
        if self.may_read(type_name) {
            Ok(())
        } else {
            Err(self.forbidden(format!("read on type {type_name}")))
        }
    }

    /// 403 unless it may write facts of `type_name`.
    pub fn require_write(&self, type_name: &str) -> Result<(), ApiError> {
        if self.permissions().is_none_or(|p| p.may_write(type_name)) {
            Ok(())
        } else {
            Err(self.forbidden(format!("write on type {type_name}")))
        }
    }

    /// 403 unless it may consume the subscription `name`.
    pub fn require_subscribe(&self, name: &str) -> Result<(), ApiError> {
        if self.permissions().is_none_or(|p| p.may_subscribe(name)) {
            Ok(())
        } else {
            Err(self.forbidden(format!("subscribe on {name}")))
        }
    }

    /// 403 unless it is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(self.forbidden("admin".to_string()))
        }
    }

    /// Takes `n_facts` from its write rate (429 `rate_limited` beyond it).
    pub fn take_writes(&self, n_facts: u64) -> Result<(), ApiError> {
        match self {
            Caller::Anyone => Ok(()),
            Caller::Identity { session, auth } => auth
                .registry
                .take_writes(&session.identity, n_facts)
                .map_err(rate_limited),
        }
    }

    /// Completes once its token stops working (never without `--auth`).
    pub async fn invalidated(&self) {
        match self {
            Caller::Anyone => std::future::pending().await,
            Caller::Identity { session, auth } => auth.registry.invalidated(session).await,
        }
    }

    /// 401 unless its token still works (after a long wait).
    pub fn ensure_still_valid(&self) -> Result<(), ApiError> {
        match self {
            Caller::Anyone => Ok(()),
            Caller::Identity { session, auth } => {
                if auth.registry.still_valid(session) {
                    Ok(())
                } else {
                    Err(unauthenticated("the access token was revoked or expired"))
                }
            }
        }
    }

    fn forbidden(&self, permission: String) -> ApiError {
        let name = self.name().map_or("-", |name| name);
        ApiError::new(
            ErrorCode::Forbidden,
            format!("identity {name} lacks the permission {permission}"),
        )
        .with_detail("permission", serde_json::Value::String(permission))
    }
}

/// 401 `unauthenticated` (the answer carries `WWW-Authenticate: Bearer`).
pub fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, message)
}

/// 429 `rate_limited` with `Retry-After` after `retry_after_s`.
pub fn rate_limited(retry_after_s: u64) -> ApiError {
    ApiError::new(
        ErrorCode::RateLimited,
        format!("this identity's rate limit is reached; retry after {retry_after_s} s"),
    )
    .with_detail("retry_after_s", retry_after_s.into())
}

/// What a route needs before its handler runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing: health, versions, the OpenAPI document, the console's page.
    Open,
    /// A valid token; the handler checks each object.
    Identity,
    /// `admin`.
    Admin,
    /// Blob read.
    BlobRead,
    /// Blob write.
    BlobWrite,
    /// `metrics`.
    Metrics,
}

/// What `method` on the route template `route` needs. Every route of the
/// router is listed here (a test holds the OpenAPI document to it); an
/// unlisted route needs `admin`, so a route added without thought is
/// closed, not open.
pub fn need(method: &Method, route: &str) -> Need {
    // HEAD answers what GET would, without the body: the same need.
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    match (method, route) {
        (_, "/v1/health" | "/versions" | "/v1/openapi.json") => Need::Open,
        // The console's page and assets carry no data: the page asks API v1
        // for everything it shows, with the token it was given.
        ("GET", "/ui" | "/ui/" | "/ui/assets/{name}" | "/ui/{*path}") => Need::Open,
        (_, "/metrics") => Need::Metrics,
        ("GET", "/v1/blobs/{hash}") => Need::BlobRead,
        ("PUT", "/v1/blobs" | "/v1/blobs/{hash}") => Need::BlobWrite,
        ("POST", "/v1/facts")
        | ("GET", "/v1/facts/{hash}" | "/v1/facts/{hash}/successors" | "/v1/log")
        // Addition (issue 17): the handler lists only what the caller may
        // consume, of a fact it may read; whoami answers the caller itself.
        | ("GET", "/v1/facts/{hash}/deliveries" | "/v1/whoami")
        | ("GET", "/v1/digests")
        | ("GET", "/v1/timers")
        | ("GET" | "PUT" | "DELETE", "/v1/timers/{name}")
        | ("GET", "/v1/subscriptions")
        | ("GET" | "PUT", "/v1/subscriptions/{name}")
        | ("GET", "/v1/subscriptions/{name}/stream")
        | (
            "GET",
            "/v1/subscriptions/{name}/dead"
            | "/v1/subscriptions/{name}/dead/causes"
            | "/v1/subscriptions/{name}/dead/{hash}",
        )
        | (
            "POST",
            "/v1/subscriptions/{name}/pull"
            | "/v1/subscriptions/{name}/ack"
            | "/v1/subscriptions/{name}/nack"
            | "/v1/subscriptions/{name}/extend",
        )
        | ("POST", "/v1/claims" | "/v1/claims/release")
        | ("GET", "/v1/claims/{key}" | "/v1/leases/{name}")
        | ("GET", "/v1/schemas" | "/v1/schemas/{type}" | "/v1/schemas/{type}/{version}")
        | (
            "POST",
            "/v1/leases/{name}/acquire" | "/v1/leases/{name}/renew" | "/v1/leases/{name}/release",
        ) => Need::Identity,
        // Service declarations and the flow map of every identity.
        ("GET" | "PUT", "/v1/services/{name}") | ("GET", "/v1/services" | "/v1/boundaries") => {
            Need::Admin
        }
        _ => Need::Admin,
    }
}

/// The middleware of every route; see the module documentation.
pub async fn authenticate(
    State(auth): State<Option<Arc<Auth>>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(auth) = auth else {
        request.extensions_mut().insert(Caller::Anyone);
        return next.run(request).await;
    };
    let method = request.method().clone();
    // A clone of the matched route is a reference count, not a copy.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("(unmatched)", MatchedPath::as_str);
    let need = need(&method, route);
    if need == Need::Open {
        return next.run(request).await;
    }
    let refuse = |identity: &str, error: ApiError| {
        let outcome = match error.code {
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::RateLimited => "rate_limited",
            _ => "forbidden",
        };
        auth.audit.refused(
            identity,
            method.as_str(),
            route,
            outcome,
            error.code.status(),
        );
        error.into_response()
    };
    let presented = match token::parse_authorization(
        request
            .headers()
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(|value| value.as_bytes()),
    ) {
        Ok(presented) => presented,
        Err(error) => return refuse("-", unauthenticated(&error.to_string())),
    };
    let session = match auth.registry.authenticate(&presented) {
        Ok(session) => session,
        Err(refusal) => {
            let message = "the access token is unknown, expired or revoked";
            let detail = match refusal {
                Refusal::Unknown => "unknown",
                Refusal::Expired => "expired",
            };
            tracing::debug!(target: "cairn::audit", token_id = %presented.id, detail, "token refused");
            return refuse("-", unauthenticated(message));
        }
    };
    let identity = Arc::clone(&session.identity.name);
    if let Err(retry_after_s) = auth.registry.take_request(&session.identity) {
        return refuse(&identity, rate_limited(retry_after_s));
    }
    let caller = Caller::Identity {
        session,
        auth: Arc::clone(&auth),
    };
    let allowed = match need {
        Need::Admin => caller.require_admin(),
        Need::BlobRead if !caller.permissions().is_some_and(|p| p.may_read_blobs()) => {
            Err(caller.forbidden("blobs read".to_string()))
        }
        Need::BlobWrite if !caller.permissions().is_some_and(|p| p.may_write_blobs()) => {
            Err(caller.forbidden("blobs write".to_string()))
        }
        Need::Metrics if !caller.permissions().is_some_and(|p| p.may_read_metrics()) => {
            Err(caller.forbidden("metrics".to_string()))
        }
        _ => Ok(()),
    };
    if let Err(error) = allowed {
        return refuse(&identity, error);
    }
    request.extensions_mut().insert(caller);
    // Admin actions are recorded with their path (names included).
    let path = (need == Need::Admin).then(|| request.uri().path().to_string());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    match status {
        401 => {
            auth.audit
                .refused(&identity, method.as_str(), route, "unauthenticated", status);
        }
        403 => {
            auth.audit
                .refused(&identity, method.as_str(), route, "forbidden", status);
        }
        // The write rate, checked by the handler once it knows the batch.
        429 if response.headers().contains_key(header::RETRY_AFTER) => {
            auth.audit
                .refused(&identity, method.as_str(), route, "rate_limited", status);
        }
        _ => {
            auth.audit.accepted();
            let recorded =
                path.filter(|_| !route.starts_with("/v1/tokens") && method != Method::GET);
            if let Some(path) = recorded {
                auth.audit
                    .action(
                        &identity,
                        method.as_str(),
                        &path,
                        "admin",
                        status,
                        String::new(),
                    )
                    .await;
            }
        }
    }
    response
}
