//! Cairn's HTTP API v1 (see `docs/api-v1.md`), over any [`Store`].
//!
//! *Boundary:* this crate is the only one that opens listening sockets.
//! Handlers parse and validate input, call the store, and shape answers;
//! they hold no state of their own beyond metrics.

#![forbid(unsafe_code)]

pub mod auth;
pub mod boundaries;
pub mod clock;
pub mod console;
pub mod delivery;
mod deprecation;
pub mod error;
mod http_errors;
pub mod limits;
pub mod links;
mod metrics;
mod node;
pub mod parsers {
    //! The request parsers that face the network, re-exported for the fuzz
    //! checks (`crates/cairn-fuzz-checks`), which drive them as a request
    //! would: the JSON bodies of the POSTs on a subscription, and the
    //! client's frames on its WebSocket stream.

    pub use crate::routes::stream::{
        parse_request as parse_stream_frame, Request as StreamRequest,
    };
    pub use crate::routes::subscriptions::parse_body;
    pub use cairn_api::{
        AckRequest, EmptyRequest, ExtendRequest, NackRequest, PullRequest, ReplayRequest,
        RequestBody,
    };
}
/// Strict query-string parsing; public so that the fuzz checks
/// (`crates/cairn-fuzz-checks`) can drive it as a request would.
pub mod query;
mod routes;
pub mod schemas;
mod startup;
mod state;
pub mod timers;
pub mod tls;

use cairn_api::ErrorCode;
use std::sync::Arc;

use axum::error_handling::HandleErrorLayer;
use axum::routing::{delete, get, post, put};
use axum::{middleware, BoxError, Router};
use cairn_store::{BlobStore, CoordinationStore, DigestStore, Store};
use delivery::Deliveries;
use tokio_util::sync::CancellationToken;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceBuilder;

pub use error::ApiError;
pub use metrics::HttpMetrics;
pub use node::{Node, NodeError, NodeOptions, Storage};
pub use routes::meta::SERVER_VERSION;
pub use startup::{serve, ServeError};
pub use state::{AppState, ServerConfig};

/// Builds the router of API v1 with its limits, timeouts and metrics.
pub fn router<S: Store>(state: AppState<S>) -> Router {
    let api = Router::new()
        .route("/v1/facts", post(routes::facts::post_facts::<S>))
        .route("/v1/facts/{hash}", get(routes::facts::get_fact::<S>))
        .route(
            "/v1/facts/{hash}/successors",
            get(routes::facts::get_successors::<S>),
        )
        .route(
            "/v1/facts/{hash}/successor-types",
            get(routes::facts::get_successor_types::<S>),
        )
        .route(
            "/v1/facts/{hash}/deliveries",
            get(routes::deliveries::get_fact_deliveries::<S>),
        )
        .route("/v1/log", get(routes::facts::get_log::<S>))
        .route("/v1/digests", get(routes::digests::get_digests::<S>))
        .route("/v1/health", get(routes::meta::health::<S>))
        .route("/versions", get(routes::meta::versions))
        .route("/v1/openapi.json", get(routes::meta::openapi_document))
        .route("/metrics", get(routes::meta::metrics::<S>))
        .route(
            "/v1/subscriptions",
            get(routes::subscriptions::list_subscriptions::<S>),
        )
        .route(
            "/v1/subscriptions/{name}",
            put(routes::subscriptions::put_subscription::<S>)
                .get(routes::subscriptions::get_subscription::<S>)
                .delete(routes::subscriptions::delete_subscription::<S>),
        )
        .route(
            "/v1/subscriptions/{name}/pull",
            post(routes::subscriptions::pull::<S>),
        )
        .route(
            "/v1/subscriptions/{name}/ack",
            post(routes::subscriptions::ack::<S>),
        )
        .route(
            "/v1/subscriptions/{name}/nack",
            post(routes::subscriptions::nack::<S>),
        )
        .route(
            "/v1/subscriptions/{name}/extend",
            post(routes::subscriptions::extend::<S>),
        )
        .route(
            "/v1/subscriptions/{name}/pause",
            post(routes::subscriptions::pause::<S>),
        )
        .route(
            "/v1/subscriptions/{name}/resume",
            post(routes::subscriptions::resume::<S>),
        )
        .route(
            "/v1/subscriptions/{name}/stream",
            get(routes::stream::subscription_stream::<S>),
        )
        .route(
            "/v1/subscriptions/{name}/dead",
            get(routes::subscriptions::list_dead::<S>),
        )
        .route(
            "/v1/subscriptions/{name}/dead/causes",
            get(routes::subscriptions::list_dead_causes::<S>),
        )
        .route(
            "/v1/subscriptions/{name}/dead/replay",
            post(routes::subscriptions::replay::<S>),
        )
        .route(
            "/v1/subscriptions/{name}/dead/{hash}",
            get(routes::subscriptions::get_dead::<S>).delete(routes::subscriptions::discard::<S>),
        )
        .route(
            "/v1/tokens",
            post(routes::tokens::create::<S>).get(routes::tokens::list::<S>),
        )
        .route("/v1/tokens/{name}", delete(routes::tokens::revoke::<S>))
        .route(
            "/v1/tokens/{name}/rotate",
            post(routes::tokens::rotate::<S>),
        )
        .route("/v1/audit", get(routes::tokens::audit::<S>))
        .route("/v1/whoami", get(routes::tokens::whoami::<S>))
        .route("/v1/claims", post(routes::claims::claim::<S>))
        .route("/v1/claims/release", post(routes::claims::release::<S>))
        .route("/v1/claims/{key}", get(routes::claims::get_claim::<S>))
        .route("/v1/leases/{name}", get(routes::leases::get_lease::<S>))
        .route(
            "/v1/leases/{name}/acquire",
            post(routes::leases::acquire::<S>),
        )
        .route("/v1/leases/{name}/renew", post(routes::leases::renew::<S>))
        .route(
            "/v1/leases/{name}/release",
            post(routes::leases::release::<S>),
        )
        .route("/v1/timers", get(routes::timers::list_timers::<S>))
        .route(
            "/v1/timers/{name}",
            put(routes::timers::put_timer::<S>)
                .get(routes::timers::get_timer::<S>)
                .delete(routes::timers::delete_timer::<S>),
        )
        .route("/v1/schemas", get(routes::schemas::list_types::<S>))
        .route(
            "/v1/schemas/{type}",
            get(routes::schemas::list_versions::<S>),
        )
        .route(
            "/v1/schemas/{type}/{version}",
            get(routes::schemas::get_schema::<S>).put(routes::schemas::put_schema::<S>),
        )
        .route("/v1/links", get(routes::links::list_links::<S>))
        .route(
            "/v1/links/{name}",
            put(routes::links::put_link::<S>)
                .get(routes::links::get_link::<S>)
                .delete(routes::links::delete_link::<S>),
        )
        .route(
            "/v1/links/{name}/pause",
            post(routes::links::pause_link::<S>),
        )
        .route(
            "/v1/links/{name}/resume",
            post(routes::links::resume_link::<S>),
        )
        .route(
            "/v1/links/{name}/repair",
            post(routes::links::repair_link::<S>),
        )
        .route("/v1/services", get(routes::services::list_services::<S>))
        .route(
            "/v1/services/{name}",
            put(routes::services::put_service::<S>).get(routes::services::get_service::<S>),
        )
        .route("/v1/boundaries", get(routes::services::get_boundaries::<S>));
    let blobs = Router::new()
        .route("/v1/blobs", put(routes::blobs::put_blob::<S>))
        .route(
            "/v1/blobs/{hash}",
            get(routes::blobs::get_blob::<S>).put(routes::blobs::put_blob_with_hash::<S>),
        );
    // One semaphore for the whole server: axum applies a layer to each
    // route separately, so a plain concurrency limit would count per route.
    let in_progress = GlobalConcurrencyLimitLayer::new(state.config.concurrent_requests_max);
    with_overload_limits(api, limits::REQUEST_TIMEOUT, in_progress.clone())
        .merge(with_overload_limits(
            blobs,
            limits::BLOB_TIMEOUT,
            in_progress,
        ))
        .merge(console::router())
        .method_not_allowed_fallback(routes::meta::method_not_allowed)
        .fallback(routes::meta::unknown_route)
        // Layers run outside in: metrics see every answer, the refusals of
        // access control included.
        .route_layer(middleware::from_fn_with_state(
            state.auth.clone(),
            auth::authenticate,
        ))
        .route_layer(middleware::from_fn(deprecation::deprecation_headers))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state.metrics),
            metrics::track_requests,
        ))
        .with_state(state)
}

/// Adds load shedding (429 once `in_progress` is exhausted) and a timeout
/// (503) to `router`, both answered as JSON errors.
fn with_overload_limits<S: Store>(
    router: Router<AppState<S>>,
    timeout: std::time::Duration,
    in_progress: GlobalConcurrencyLimitLayer,
) -> Router<AppState<S>> {
    router.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|error: BoxError| async move {
                if error.is::<tower::timeout::error::Elapsed>() {
                    ApiError::new(ErrorCode::Timeout, "the request took too long")
                } else {
                    ApiError::new(
                        ErrorCode::Overloaded,
                        "the server is handling too many requests; retry with backoff",
                    )
                }
            }))
            .load_shed()
            .layer(in_progress)
            .timeout(timeout),
    )
}

/// The handles the routes share with the server's background tasks.
pub struct Background {
    /// Durable timers, shared with the scheduler.
    pub timers: Arc<timers::Timers>,
    /// Replication links, shared with their supervisor.
    pub links: Arc<links::Links>,
    /// The schema registry, shared with its refresh task.
    pub schemas: Arc<schemas::Schemas>,
    /// Observed flows, shared with their recorder.
    pub flows: Arc<boundaries::Flows>,
}

/// Builds the complete application over `store` and its delivery engine
/// (see [`delivery`]): the router of API v1. `shutdown` ends long-polls and
/// streams; `clock` judges lease expiry on a store that leaves that to
/// the server. A [`Node`] builds it and puts it behind a socket; an embedded client can
/// dispatch requests into it in-process, with every validation, answer and
/// error exactly as over the network.
pub fn app<S: Store + CoordinationStore + DigestStore>(
    store: Arc<S>,
    blobs: Arc<BlobStore>,
    deliveries: Arc<dyn Deliveries>,
    config: ServerConfig,
    shutdown: CancellationToken,
    auth: Option<Arc<auth::Auth>>,
    background: Background,
) -> Router {
    let Background {
        timers,
        links,
        schemas,
        flows,
    } = background;
    let metrics = Arc::new(HttpMetrics::new());
    timers.register_metrics(&metrics);
    links.register_metrics(&metrics);
    if let Some(auth) = &auth {
        metrics.register(Box::new(auth.audit.outcomes()));
    }
    router(AppState {
        coordination: Arc::clone(&store) as Arc<dyn CoordinationStore>,
        digests: Arc::clone(&store) as Arc<dyn DigestStore>,
        clock: timers.clock.clone(),
        store,
        blobs,
        deliveries,
        stream_connections: Arc::new(tokio::sync::Semaphore::new(limits::STREAM_CONNECTIONS_MAX)),
        metrics,
        config,
        shutdown,
        auth,
        timers,
        links,
        schemas,
        flows,
    })
}
