//! Path `http-write`: `POST /v1/facts` of small batches through the whole
//! application router (`cairn_server::app`: routing, the middleware,
//! body reading, parsing and hashing, schema checks, the store's durable
//! write, the JSON answer), in process, one request after the other, as
//! the SDK's embedded client sends them — no socket, so no kernel network
//! stack in the count.
//!
//! The router is assembled as `cairn serve` assembles it, but without its
//! background tasks (timer scheduler, link supervisor, schema refresh,
//! flow recorder): they wake on wall-clock intervals, which would make
//! the count vary with how long the run takes.

use std::sync::Arc;

use anyhow::{ensure, Context};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use cairn_server::boundaries::Flows;
use cairn_server::clock::Clock;
use cairn_server::delivery::memory::{MemoryDeliveries, MemoryOptions};
use cairn_server::delivery::TokenSecrets;
use cairn_server::links::Links;
use cairn_server::schemas::Schemas;
use cairn_server::timers::Timers;
use cairn_server::{Background, ServerConfig};
use cairn_store::{BlobStore, CoordinationStore, LinkStore, TimerStore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::inputs;
use crate::store::{runtime, FreshStore};

/// Requests sent.
pub const REQUESTS: usize = 100;
/// Facts per request.
pub const REQUEST_FACTS: usize = 10;
/// Bytes of an answer read at most.
const ANSWER_BYTES_MAX: usize = 1024 * 1024;
/// Where the simulated delivery and timer clock stands (2026-01-01T00:00:00Z).
const CLOCK_START_MS: u64 = 1_767_225_600_000;

/// Prepares the router and the request bodies (the first
/// `REQUESTS × REQUEST_FACTS` facts of the data set), then measures the
/// requests.
pub fn run() -> anyhow::Result<u64> {
    let texts = inputs::facts_json()?;
    let bodies: Vec<String> = texts[..REQUESTS * REQUEST_FACTS]
        .chunks(REQUEST_FACTS)
        .map(|facts| format!("{{\"facts\":[{}]}}", facts.join(",")))
        .collect();
    let runtime = runtime()?;
    let fresh = FreshStore::open()?;
    let store = Arc::clone(&fresh.store);
    let blobs = BlobStore::open(&fresh.path().join("blobs"), u64::MAX)
        .context("cannot open the blob store")?;
    let clock = Clock::simulated(CLOCK_START_MS);
    let deliveries = MemoryDeliveries::load(
        Arc::clone(&store),
        MemoryOptions {
            clock: clock.clone(),
            secrets: TokenSecrets::seeded(18),
        },
    )?;
    let config = ServerConfig::default();
    let background = Background {
        timers: Timers::new(
            Arc::clone(&store) as Arc<dyn TimerStore>,
            clock,
            config.fact_canonical_bytes_max,
        ),
        links: Links::new(
            Arc::clone(&store) as Arc<dyn LinkStore>,
            store.deployment().to_string(),
            Vec::new(),
        ),
        schemas: Schemas::new(config.require_schemas),
        flows: Flows::new(false),
    };
    let shutdown = CancellationToken::new();
    // `app` registers metrics and builds the router; it needs a runtime.
    let router = runtime.block_on(async {
        cairn_server::app(
            store,
            Arc::new(blobs),
            Arc::new(deliveries),
            config,
            shutdown.clone(),
            None,
            background,
        )
    });
    let written = crate::measure("http-write", || {
        runtime.block_on(async {
            let mut written = 0;
            for body in bodies {
                let request = Request::post("/v1/facts")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))?;
                let answer = router.clone().oneshot(request).await?;
                let status = answer.status();
                let bytes = axum::body::to_bytes(answer.into_body(), ANSWER_BYTES_MAX).await?;
                ensure!(
                    status == StatusCode::OK,
                    "POST /v1/facts answered {status}: {}",
                    String::from_utf8_lossy(&bytes)
                );
                written += REQUEST_FACTS as u64;
            }
            Ok(written)
        })
    })?;
    shutdown.cancel();
    drop(router);
    fresh.close();
    Ok(written)
}
