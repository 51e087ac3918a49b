//! The circuit breaker against a real server on 127.0.0.1 whose health the
//! test switches: it opens after failures, fails fast without contacting the
//! server, half-opens after the open duration, and closes or reopens on the probe.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use cairn_resilient::{
    CallError, CircuitBreakerOptions, CircuitState, ResilientClient, ResilientOptions,
};
use tokio::net::TcpListener;

struct Switchable {
    healthy: AtomicBool,
    hits: AtomicU32,
}

async fn serve(server: Arc<Switchable>) -> anyhow::Result<String> {
    let router = Router::new().route(
        "/stock",
        get(move || async move {
            server.hits.fetch_add(1, Ordering::SeqCst);
            if server.healthy.load(Ordering::SeqCst) {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(format!("http://{address}/stock"))
}

fn options(attempts_max: u32, failures_consecutive_max: u32) -> ResilientOptions {
    ResilientOptions {
        attempts_max,
        backoff_initial: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        circuit_breaker: CircuitBreakerOptions {
            failures_consecutive_max,
            open_duration: Duration::from_millis(100),
            half_open_probes: 1,
            ..CircuitBreakerOptions::default()
        },
        ..ResilientOptions::default()
    }
}

/// Polls until the open duration has passed; bounded in count and time.
async fn wait_for_half_open(client: &ResilientClient) {
    for _ in 0..200 {
        if client.circuit_state() == CircuitState::HalfOpen {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the circuit never half-opened");
}

#[tokio::test]
async fn opens_fails_fast_half_opens_and_closes_or_reopens() -> anyhow::Result<()> {
    let server = Arc::new(Switchable {
        healthy: AtomicBool::new(false),
        hits: AtomicU32::new(0),
    });
    let url = serve(Arc::clone(&server)).await?;
    let client = ResilientClient::new(options(1, 3))?;
    let hits = || server.hits.load(Ordering::SeqCst);

    for _ in 0..3 {
        let error = client.get(&url).send().await.expect_err("503");
        assert!(matches!(error, CallError::Status { status, .. } if status == 503));
    }
    assert_eq!(client.circuit_state(), CircuitState::Open);
    for _ in 0..5 {
        let error = client.get(&url).send().await.expect_err("open");
        assert!(matches!(error, CallError::CircuitOpen), "{error:?}");
    }
    assert_eq!(hits(), 3, "no request reached the server while open");

    server.healthy.store(true, Ordering::SeqCst);
    wait_for_half_open(&client).await;
    client.get(&url).send().await?;
    assert_eq!(client.circuit_state(), CircuitState::Closed);
    assert_eq!(hits(), 4);

    server.healthy.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        client.get(&url).send().await.expect_err("503");
    }
    wait_for_half_open(&client).await;
    let error = client.get(&url).send().await.expect_err("failed probe");
    assert!(matches!(error, CallError::Status { .. }), "{error:?}");
    assert_eq!(client.circuit_state(), CircuitState::Open);
    let error = client.get(&url).send().await.expect_err("open again");
    assert!(matches!(error, CallError::CircuitOpen));
    assert_eq!(hits(), 4 + 3 + 1);
    Ok(())
}

#[tokio::test]
async fn retries_stop_when_the_circuit_opens() -> anyhow::Result<()> {
    let server = Arc::new(Switchable {
        healthy: AtomicBool::new(false),
        hits: AtomicU32::new(0),
    });
    let url = serve(Arc::clone(&server)).await?;
    let client = ResilientClient::new(options(3, 2))?;
    let error = client.get(&url).send().await.expect_err("down");
    assert!(matches!(error, CallError::CircuitOpen), "{error:?}");
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
    Ok(())
}
