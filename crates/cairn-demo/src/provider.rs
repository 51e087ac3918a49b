//! The card provider: a deliberately flaky payment service outside the
//! café, run inside the demo's own process on a loopback port. It fails a
//! share of calls with 503 (before charging anything), fails every call
//! during an outage the schedule turns on, and runs each charge or refund
//! once per `Idempotency-Key` ([`cairn_resilient::IdempotencyLayer`]): a
//! retried charge is answered with the first charge's id, never charged
//! again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use cairn_resilient::{IdempotencyLayer, InMemoryIdempotencyStore, InMemoryStoreOptions};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::DemoError;
use crate::limits::{PROVIDER_FLAKY_PERCENT, PROVIDER_KEYS_MAX};
use crate::random::SeededRandom;

/// A charge asked of the provider.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChargeRequest {
    /// The order's id.
    pub order_id: String,
    /// How much, in cents.
    pub amount_cents: i64,
}

/// A refund asked of the provider.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefundRequest {
    /// The order's id.
    pub order_id: String,
    /// The charge to give back.
    pub charge_id: String,
}

/// The provider's answer: the id of what it did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProviderAnswer {
    /// `ch-…` for a charge, `re-…` for a refund.
    pub id: String,
}

/// What the provider counted, for the progress line.
#[derive(Debug, Default)]
pub struct ProviderCounts {
    /// Charges made.
    pub charges: AtomicU64,
    /// Refunds made.
    pub refunds: AtomicU64,
    /// Calls refused with 503.
    pub refused: AtomicU64,
}

struct ProviderState {
    outage: AtomicBool,
    random: Mutex<SeededRandom>,
    counts: Arc<ProviderCounts>,
    next_id: AtomicU64,
}

/// The running provider: its address, and the switch of its outage.
#[derive(Clone)]
pub struct CardProvider {
    state: Arc<ProviderState>,
    /// Where it listens.
    pub address: SocketAddr,
}

impl CardProvider {
    /// Starts the provider on a free loopback port until `shutdown`.
    pub async fn start(seed: u64, shutdown: CancellationToken) -> Result<CardProvider, DemoError> {
        let state = Arc::new(ProviderState {
            outage: AtomicBool::new(false),
            random: Mutex::new(SeededRandom::new(seed ^ 0x00CA_4D00)),
            counts: Arc::default(),
            next_id: AtomicU64::new(1),
        });
        let store = Arc::new(InMemoryIdempotencyStore::new(InMemoryStoreOptions {
            entries_max: PROVIDER_KEYS_MAX,
            ..InMemoryStoreOptions::default()
        }));
        let router = Router::new()
            .route("/charges", post(charge))
            .route("/refunds", post(refund))
            .layer(IdempotencyLayer::new(store))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(DemoError::Provider)?;
        let address = listener.local_addr().map_err(DemoError::Provider)?;
        tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "the card provider stopped");
            }
        });
        Ok(CardProvider { state, address })
    }

    /// The base URL the payments service calls.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Turns the outage on or off.
    pub fn set_outage(&self, outage: bool) {
        self.state.outage.store(outage, Ordering::SeqCst);
    }

    /// Whether an outage is on.
    pub fn in_outage(&self) -> bool {
        self.state.outage.load(Ordering::SeqCst)
    }

    /// What it counted so far.
    pub fn counts(&self) -> &ProviderCounts {
        &self.state.counts
    }
}

impl ProviderState {
    /// Whether to refuse this call: always in an outage, else now and then.
    fn refuses(&self) -> bool {
        let refused = self.outage.load(Ordering::SeqCst) || {
            let mut random = self
                .random
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            random.below(100) < PROVIDER_FLAKY_PERCENT
        };
        if refused {
            self.counts.refused.fetch_add(1, Ordering::Relaxed);
        }
        refused
    }

    fn new_id(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

async fn charge(
    State(state): State<Arc<ProviderState>>,
    Json(request): Json<ChargeRequest>,
) -> Result<Json<ProviderAnswer>, StatusCode> {
    if request.amount_cents <= 0 {
        return Err(StatusCode::UNPROCESSABLE_ENTITY);
    }
    if state.refuses() {
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    state.counts.charges.fetch_add(1, Ordering::Relaxed);
    Ok(Json(ProviderAnswer {
        id: state.new_id("ch"),
    }))
}

async fn refund(
    State(state): State<Arc<ProviderState>>,
    Json(request): Json<RefundRequest>,
) -> Result<Json<ProviderAnswer>, StatusCode> {
    if request.charge_id.is_empty() {
        return Err(StatusCode::UNPROCESSABLE_ENTITY);
    }
    if state.refuses() {
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    state.counts.refunds.fetch_add(1, Ordering::Relaxed);
    Ok(Json(ProviderAnswer {
        id: state.new_id("re"),
    }))
}
