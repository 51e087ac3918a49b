//! `IdempotencyLayer` on a real axum server on 127.0.0.1, driven by a plain
//! HTTP client: replay, 409 while in progress, 422 for a reused key, 400 for
//! malformed keys, and 5xx answers left unstored.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use cairn_resilient::{IdempotencyLayer, InMemoryIdempotencyStore, InMemoryStoreOptions};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

struct Orders {
    created: AtomicU32,
    slow_entered: Notify,
    /// Holds `/slow-orders` handlers until the test adds a permit.
    slow_gate: Semaphore,
}

impl Orders {
    fn new() -> Arc<Self> {
        Arc::new(Orders {
            created: AtomicU32::new(0),
            slow_entered: Notify::new(),
            slow_gate: Semaphore::new(0),
        })
    }
}

async fn serve(orders: Arc<Orders>) -> anyhow::Result<String> {
    let store = Arc::new(InMemoryIdempotencyStore::new(
        InMemoryStoreOptions::default(),
    ));
    let (plain, slow, fragile) = (Arc::clone(&orders), Arc::clone(&orders), orders);
    let router = Router::new()
        .route(
            "/orders",
            post(move |body: Bytes| async move {
                let order = plain.created.fetch_add(1, Ordering::SeqCst) + 1;
                let location = format!("/orders/{order}");
                let echo = String::from_utf8_lossy(&body).into_owned();
                let answer = json!({ "order": order, "echo": echo });
                (StatusCode::CREATED, [("location", location)], Json(answer))
            }),
        )
        .route(
            "/slow-orders",
            post(move || async move {
                slow.created.fetch_add(1, Ordering::SeqCst);
                slow.slow_entered.notify_one();
                let _permit = slow.slow_gate.acquire().await;
                StatusCode::CREATED
            }),
        )
        .route(
            "/fragile-orders",
            post(move || async move {
                match fragile.created.fetch_add(1, Ordering::SeqCst) {
                    0 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                    _ => StatusCode::CREATED.into_response(),
                }
            }),
        )
        .layer(IdempotencyLayer::new(store));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(format!("http://{address}"))
}

async fn post_with_key(
    url: &str,
    key: Option<HeaderValue>,
    body: &'static str,
) -> anyhow::Result<reqwest::Response> {
    let mut request = reqwest::Client::new().post(url).body(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    Ok(request.send().await?)
}

fn key(value: &'static str) -> Option<HeaderValue> {
    Some(HeaderValue::from_static(value))
}

async fn error_code(response: reqwest::Response) -> anyhow::Result<String> {
    let body: Value = response.json().await?;
    Ok(body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

#[tokio::test]
async fn a_repeated_key_gets_the_first_answer() -> anyhow::Result<()> {
    let orders = Orders::new();
    let base = serve(Arc::clone(&orders)).await?;
    let url = format!("{base}/orders");

    let first = post_with_key(&url, key("k-1"), "apples").await?;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body: Value = first.json().await?;
    let again = post_with_key(&url, key("k-1"), "apples").await?;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["location"], "/orders/1");
    assert_eq!(again.json::<Value>().await?, first_body);
    assert_eq!(orders.created.load(Ordering::SeqCst), 1);

    post_with_key(&url, key("k-2"), "apples").await?;
    post_with_key(&url, None, "apples").await?;
    post_with_key(&url, None, "apples").await?;
    assert_eq!(
        orders.created.load(Ordering::SeqCst),
        4,
        "other or no keys run again"
    );
    Ok(())
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422() -> anyhow::Result<()> {
    let orders = Orders::new();
    let base = serve(Arc::clone(&orders)).await?;
    let url = format!("{base}/orders");
    post_with_key(&url, key("k-3"), "apples").await?;
    let reused = post_with_key(&url, key("k-3"), "pears").await?;
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(reused).await?, "idempotency_key_reused");
    assert_eq!(orders.created.load(Ordering::SeqCst), 1);
    Ok(())
}

#[tokio::test]
async fn a_key_in_progress_is_409_until_the_first_answer() -> anyhow::Result<()> {
    let orders = Orders::new();
    let base = serve(Arc::clone(&orders)).await?;
    let url = format!("{base}/slow-orders");
    let entered = orders.slow_entered.notified();
    let first = tokio::spawn({
        let url = url.clone();
        async move { post_with_key(&url, key("k-4"), "apples").await }
    });
    tokio::time::timeout(Duration::from_secs(5), entered).await?;

    let duplicate = post_with_key(&url, key("k-4"), "apples").await?;
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(duplicate).await?, "idempotency_key_in_use");

    orders.slow_gate.add_permits(1);
    let first = tokio::time::timeout(Duration::from_secs(5), first).await???;
    assert_eq!(first.status(), StatusCode::CREATED);
    let replayed = post_with_key(&url, key("k-4"), "apples").await?;
    assert_eq!(replayed.status(), StatusCode::CREATED);
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(orders.created.load(Ordering::SeqCst), 1);
    Ok(())
}

#[tokio::test]
async fn malformed_keys_are_400() -> anyhow::Result<()> {
    let orders = Orders::new();
    let base = serve(Arc::clone(&orders)).await?;
    let url = format!("{base}/orders");
    let too_long = HeaderValue::from_str(&"k".repeat(256))?;
    let bad_keys = [
        too_long,
        HeaderValue::from_static("two words"),
        HeaderValue::from_bytes("clé".as_bytes())?,
        HeaderValue::from_static(""),
    ];
    for bad_key in bad_keys {
        let answer = post_with_key(&url, Some(bad_key.clone()), "apples").await?;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{bad_key:?}");
        assert_eq!(error_code(answer).await?, "invalid_idempotency_key");
    }
    let longest = HeaderValue::from_str(&"k".repeat(255))?;
    let answer = post_with_key(&url, Some(longest), "apples").await?;
    assert_eq!(answer.status(), StatusCode::CREATED);
    assert_eq!(orders.created.load(Ordering::SeqCst), 1);
    Ok(())
}

#[tokio::test]
async fn server_errors_are_not_stored_so_a_retry_runs_again() -> anyhow::Result<()> {
    let orders = Orders::new();
    let base = serve(Arc::clone(&orders)).await?;
    let url = format!("{base}/fragile-orders");
    let failed = post_with_key(&url, key("k-5"), "apples").await?;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let retried = post_with_key(&url, key("k-5"), "apples").await?;
    assert_eq!(retried.status(), StatusCode::CREATED);
    assert!(retried.headers().get("idempotent-replayed").is_none());
    let replayed = post_with_key(&url, key("k-5"), "apples").await?;
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(orders.created.load(Ordering::SeqCst), 2);
    Ok(())
}
