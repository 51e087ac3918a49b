//! The client against real flaky servers on 127.0.0.1: retries with one
//! Idempotency-Key, what is never retried, timeouts, the retry budget, and a
//! side effect that happens once behind `IdempotencyLayer`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use cairn_resilient::{
    CallError, CircuitBreakerOptions, IdempotencyLayer, InMemoryIdempotencyStore,
    InMemoryStoreOptions, ResilientClient, ResilientOptions, RetryBudgetOptions,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Counts requests and remembers the Idempotency-Key of each.
#[derive(Default)]
struct Flaky {
    keys: Mutex<Vec<Option<String>>>,
}

impl Flaky {
    /// Records a request and returns how many came before it.
    fn record(&self, headers: &HeaderMap) -> usize {
        let key = headers
            .get("idempotency-key")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let mut keys = self.keys.lock().expect("keys lock");
        keys.push(key);
        keys.len() - 1
    }

    fn hits(&self) -> usize {
        self.keys.lock().expect("keys lock").len()
    }

    fn keys(&self) -> Vec<Option<String>> {
        self.keys.lock().expect("keys lock").clone()
    }
}

async fn serve(router: Router) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(format!("http://{address}"))
}

/// Tens of milliseconds everywhere, and a breaker that does not trip, so
/// each test sees retries alone.
fn fast_options() -> ResilientOptions {
    ResilientOptions {
        attempt_timeout: Duration::from_millis(200),
        call_timeout: Duration::from_secs(5),
        attempts_max: 4,
        backoff_initial: Duration::from_millis(1),
        backoff_max: Duration::from_millis(10),
        backoff_jitter_ratio: 0.5,
        retry_after_max: Duration::from_millis(20),
        retry_budget: RetryBudgetOptions::default(),
        circuit_breaker: CircuitBreakerOptions {
            failures_consecutive_max: 1000,
            failure_rate_max: 1.0,
            failure_window_calls_min: 1000,
            ..CircuitBreakerOptions::default()
        },
    }
}

/// A route answering `failing_status` to its first `failures_n` requests, then 201.
fn failing_first(flaky: &Arc<Flaky>, failures_n: usize, failing_status: StatusCode) -> Router {
    let flaky = Arc::clone(flaky);
    let handler = move |headers: HeaderMap| async move {
        let before = flaky.record(&headers);
        if before < failures_n {
            let mut answer = failing_status.into_response();
            answer
                .headers_mut()
                .insert("retry-after", "1".parse().expect("value"));
            answer
        } else {
            (StatusCode::CREATED, Json(json!({ "attempt": before + 1 }))).into_response()
        }
    };
    Router::new().route("/orders", post(handler.clone()).get(handler))
}

#[tokio::test]
async fn retries_503_with_one_idempotency_key_per_call() -> anyhow::Result<()> {
    let flaky = Arc::new(Flaky::default());
    let base = serve(failing_first(&flaky, 2, StatusCode::SERVICE_UNAVAILABLE)).await?;
    let client = ResilientClient::new(fast_options())?;

    let answer = client
        .post_json(&format!("{base}/orders"), &json!({ "sku": "a" }))
        .send()
        .await?;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.json::<Value>()?, json!({ "attempt": 3 }));
    let keys = flaky.keys();
    assert_eq!(keys.len(), 3);
    let first_key = keys[0].clone().expect("a key was sent");
    assert!(
        uuid::Uuid::parse_str(&first_key).is_ok(),
        "{first_key} is a UUID"
    );
    assert!(keys
        .iter()
        .all(|key| key.as_deref() == Some(first_key.as_str())));

    client
        .post_json(&format!("{base}/orders"), &json!({ "sku": "b" }))
        .idempotency_key("order-42")
        .send()
        .await?;
    assert_eq!(flaky.keys()[3].as_deref(), Some("order-42"));
    Ok(())
}

#[tokio::test]
async fn rate_limited_call_waits_and_succeeds() -> anyhow::Result<()> {
    let flaky = Arc::new(Flaky::default());
    let base = serve(failing_first(&flaky, 1, StatusCode::TOO_MANY_REQUESTS)).await?;
    let client = ResilientClient::new(fast_options())?;
    let answer = client.get(&format!("{base}/orders")).send().await?;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(flaky.hits(), 2);
    Ok(())
}

#[tokio::test]
async fn client_errors_and_unkeyed_posts_are_not_retried() -> anyhow::Result<()> {
    let flaky = Arc::new(Flaky::default());
    let bad = serve(failing_first(&flaky, 100, StatusCode::BAD_REQUEST)).await?;
    let client = ResilientClient::new(fast_options())?;
    let error = client
        .post_json(&format!("{bad}/orders"), &json!({}))
        .send()
        .await
        .expect_err("400");
    assert!(matches!(error, CallError::Status { status, .. } if status == 400));
    assert!(!error.is_retryable());
    assert_eq!(flaky.hits(), 1);

    let flaky = Arc::new(Flaky::default());
    let down = serve(failing_first(&flaky, 100, StatusCode::SERVICE_UNAVAILABLE)).await?;
    let error = client
        .post_json(&format!("{down}/orders"), &json!({}))
        .without_idempotency_key()
        .send()
        .await
        .expect_err("503");
    assert!(
        error.is_retryable(),
        "retryable, but the request is not safe to repeat"
    );
    assert_eq!(flaky.hits(), 1);
    assert_eq!(flaky.keys(), vec![None]);

    client
        .get(&format!("{down}/orders"))
        .without_idempotency_key()
        .send()
        .await
        .expect_err("503");
    assert_eq!(flaky.hits(), 1 + 4, "a GET is safe to repeat without a key");
    Ok(())
}

/// A raw TCP server that closes the first `drops_n` connections after reading
/// the request, without answering, then answers 200.
async fn dropping_server(drops_n: u32) -> anyhow::Result<(String, Arc<AtomicU32>)> {
    const CONNECTIONS_MAX: u32 = 16;
    const REQUEST_HEAD_BYTES_MAX: usize = 16 * 1024;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let connections = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&connections);
    tokio::spawn(async move {
        for connection_idx in 0..CONNECTIONS_MAX {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut head = Vec::new();
            let mut buffer = [0u8; 1024];
            while !head.windows(4).any(|window| window == b"\r\n\r\n")
                && head.len() < REQUEST_HEAD_BYTES_MAX
            {
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read_n) => head.extend_from_slice(&buffer[..read_n]),
                }
            }
            if connection_idx >= drops_n {
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                let _ = socket.write_all(answer).await;
            }
        }
    });
    Ok((format!("http://{address}"), connections))
}

#[tokio::test]
async fn dropped_connections_are_retried() -> anyhow::Result<()> {
    let (base, connections) = dropping_server(2).await?;
    let client = ResilientClient::new(fast_options())?;
    let answer = client
        .post_json(&format!("{base}/orders"), &json!({}))
        .send()
        .await?;
    assert_eq!(answer.body, "ok");
    assert_eq!(connections.load(Ordering::SeqCst), 3);
    Ok(())
}

#[tokio::test]
async fn stalled_attempts_time_out_per_attempt_and_per_call() -> anyhow::Result<()> {
    let flaky = Arc::new(Flaky::default());
    let stalls = Arc::clone(&flaky);
    // The first request stalls far beyond every timeout below; later ones answer at once.
    let router = Router::new().route(
        "/slow",
        post(move |headers: HeaderMap| async move {
            if stalls.record(&headers) == 0 {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            StatusCode::OK
        }),
    );
    let base = serve(router).await?;
    let options = ResilientOptions {
        attempt_timeout: Duration::from_millis(50),
        ..fast_options()
    };
    let client = ResilientClient::new(options.clone())?;
    let answer = client
        .post_json(&format!("{base}/slow"), &json!({}))
        .send()
        .await?;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        flaky.hits(),
        2,
        "the stalled attempt was abandoned and retried"
    );

    let stuck = Arc::new(Flaky::default());
    let stuck_counter = Arc::clone(&stuck);
    let router = Router::new().route(
        "/stuck",
        post(move |headers: HeaderMap| async move {
            stuck_counter.record(&headers);
            tokio::time::sleep(Duration::from_secs(10)).await;
            StatusCode::OK
        }),
    );
    let base = serve(router).await?;
    let error = client
        .post_json(&format!("{base}/stuck"), &json!({}))
        .send()
        .await
        .expect_err("every attempt stalls");
    assert!(matches!(error, CallError::Timeout), "{error:?}");
    assert_eq!(stuck.hits(), 4, "each of attempts_max attempts timed out");

    let whole_call_limited = ResilientClient::new(ResilientOptions {
        attempt_timeout: Duration::from_secs(5),
        call_timeout: Duration::from_millis(300),
        ..options
    })?;
    let error = whole_call_limited
        .post_json(&format!("{base}/stuck"), &json!({}))
        .send()
        .await
        .expect_err("the call deadline passes");
    assert!(matches!(error, CallError::Timeout), "{error:?}");
    assert_eq!(stuck.hits(), 5, "no retry after the call deadline");
    Ok(())
}

#[tokio::test]
async fn retry_budget_bounds_retries_across_calls() -> anyhow::Result<()> {
    const CALLS_N: usize = 20;
    let flaky = Arc::new(Flaky::default());
    let base = serve(failing_first(
        &flaky,
        usize::MAX,
        StatusCode::SERVICE_UNAVAILABLE,
    ))
    .await?;
    let options = ResilientOptions {
        attempts_max: 5,
        retry_budget: RetryBudgetOptions {
            ttl: Duration::from_secs(10),
            retries_min_per_second: 1,
            retry_ratio: 0.1,
        },
        ..fast_options()
    };
    let client = ResilientClient::new(options)?;
    let mut budget_exhausted_n = 0;
    for _ in 0..CALLS_N {
        match client
            .post_json(&format!("{base}/orders"), &json!({}))
            .send()
            .await
        {
            Err(CallError::RetryBudgetExhausted { last_error }) => {
                assert!(matches!(*last_error, CallError::Status { status, .. } if status == 503));
                budget_exhausted_n += 1;
            }
            Err(CallError::Status { .. }) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    // Floor: 1 retry/s over 10 s; ratio: 1 retry per 10 calls. Without the
    // budget the server would have seen 20 × 5 = 100 requests.
    let retries_allowed = 10 + CALLS_N / 10;
    assert!(flaky.hits() > CALLS_N, "the floor allows some retries");
    assert!(
        flaky.hits() <= CALLS_N + retries_allowed,
        "hits {}",
        flaky.hits()
    );
    assert!(budget_exhausted_n > 0);
    Ok(())
}

#[tokio::test]
async fn side_effect_happens_once_when_answers_are_lost_on_the_way_back() -> anyhow::Result<()> {
    let orders_created = Arc::new(AtomicU32::new(0));
    let orders = Arc::clone(&orders_created);
    let answers_seen = Arc::new(AtomicU32::new(0));
    let answers = Arc::clone(&answers_seen);
    let store = Arc::new(InMemoryIdempotencyStore::new(
        InMemoryStoreOptions::default(),
    ));
    // The handler commits, then a gateway in front loses its first two answers.
    let router = Router::new()
        .route(
            "/orders",
            post(move || async move {
                let order = orders.fetch_add(1, Ordering::SeqCst) + 1;
                (StatusCode::CREATED, Json(json!({ "order": order })))
            }),
        )
        .layer(IdempotencyLayer::new(store))
        .layer(tower::util::MapResponseLayer::new(
            move |answer: Response| {
                if answers.fetch_add(1, Ordering::SeqCst) < 2 {
                    StatusCode::BAD_GATEWAY.into_response()
                } else {
                    answer
                }
            },
        ));
    let base = serve(router).await?;
    let client = ResilientClient::new(fast_options())?;
    let answer = client
        .post_json(&format!("{base}/orders"), &json!({ "sku": "a" }))
        .send()
        .await?;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.json::<Value>()?, json!({ "order": 1 }));
    assert_eq!(answer.headers["idempotent-replayed"], "true");
    assert_eq!(answers_seen.load(Ordering::SeqCst), 3);
    assert_eq!(
        orders_created.load(Ordering::SeqCst),
        1,
        "created exactly once"
    );
    Ok(())
}
