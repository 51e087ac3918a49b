//! Failover and retries of the remote transport: a dead first endpoint, all
//! endpoints dead, and a stub in front of a real server that answers 503,
//! 429 or 409 before letting requests through.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_client::{Client, ClientError};
use common::{closed_endpoint, fast_options, Customer, TestServer};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_dead_first_endpoint_fails_over_to_the_next() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = Client::remote(fast_options(vec![closed_endpoint().await?, server.url()]))?;
    for index in 0..3 {
        let put = client
            .put(&Customer {
                name: format!("c{index}"),
            })
            .await?;
        let read = client.get::<Customer>(&put.hash).await?.expect("stored");
        assert_eq!(read.value.name, format!("c{index}"));
    }
    server.stop().await
}

#[tokio::test]
async fn all_endpoints_down_fails_after_bounded_attempts() -> anyhow::Result<()> {
    let mut options = fast_options(vec![closed_endpoint().await?, closed_endpoint().await?]);
    options.attempts_max = 3;
    let client = Client::remote(options)?;
    match client.put(&Customer { name: "x".into() }).await {
        Err(error @ ClientError::Unavailable { attempts, .. }) => {
            assert_eq!(attempts, 3);
            assert!(error.is_retryable());
            assert!(error.to_string().contains("127.0.0.1"), "{error}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    Ok(())
}

/// A proxy that answers the scripted statuses first, then forwards.
struct Stub {
    script: Mutex<VecDeque<StatusCode>>,
    hits: AtomicUsize,
    upstream: String,
    http: reqwest::Client,
}

async fn stub_handler(State(stub): State<Arc<Stub>>, request: Request) -> Response {
    stub.hits.fetch_add(1, Ordering::SeqCst);
    let scripted = stub.script.lock().expect("script lock").pop_front();
    if let Some(status) = scripted {
        let body = serde_json::json!({"error": {"code": "stub", "message": "scripted answer"}});
        return (status, axum::Json(body)).into_response();
    }
    let url = format!(
        "{}{}",
        stub.upstream,
        request
            .uri()
            .path_and_query()
            .map_or("/", |path| path.as_str())
    );
    let method = request.method().clone();
    let headers = request.headers().clone();
    let Ok(body) = axum::body::to_bytes(request.into_body(), 64 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut forwarded = stub.http.request(method, url).body(body);
    if let Some(content_type) = headers.get("content-type") {
        forwarded = forwarded.header("content-type", content_type);
    }
    match forwarded.send().await {
        Ok(answer) => {
            let status = answer.status();
            let bytes = answer.bytes().await.unwrap_or_default();
            (status, Body::from(bytes)).into_response()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

async fn start_stub(
    upstream: &TestServer,
    script: &[u16],
) -> anyhow::Result<(Arc<Stub>, String, CancellationToken)> {
    let stub = Arc::new(Stub {
        script: Mutex::new(
            script
                .iter()
                .map(|status| StatusCode::from_u16(*status))
                .collect::<Result<_, _>>()?,
        ),
        hits: AtomicUsize::new(0),
        upstream: upstream.url(),
        http: reqwest::Client::new(),
    });
    let app = axum::Router::new()
        .fallback(stub_handler)
        .with_state(Arc::clone(&stub));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stopped.cancelled_owned())
            .await
    });
    Ok((stub, url, stop))
}

#[tokio::test]
async fn overload_and_unavailability_are_retried_on_the_same_endpoint() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    for script in [&[503, 503][..], &[429], &[502, 504, 429]] {
        let (stub, url, stop) = start_stub(&server, script).await?;
        let client = Client::remote(fast_options(vec![url]))?;
        let put = client
            .put(&Customer {
                name: format!("{script:?}"),
            })
            .await?;
        assert!(put.seq > 0);
        assert_eq!(
            stub.hits.load(Ordering::SeqCst),
            script.len() + 1,
            "{script:?}"
        );
        stop.cancel();
    }
    server.stop().await
}

#[tokio::test]
async fn other_client_errors_are_not_retried() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (stub, url, stop) = start_stub(&server, &[409]).await?;
    let client = Client::remote(fast_options(vec![url]))?;
    match client.put(&Customer { name: "x".into() }).await {
        Err(error @ ClientError::Api { .. }) => {
            assert_eq!((error.status(), error.code()), (Some(409), Some("stub")));
            assert!(!error.is_retryable());
        }
        other => panic!("expected the 409, got {other:?}"),
    }
    assert_eq!(stub.hits.load(Ordering::SeqCst), 1);
    stop.cancel();
    server.stop().await
}

#[tokio::test]
async fn retries_stop_after_attempts_max() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (stub, url, stop) = start_stub(&server, &[503; 10]).await?;
    let client = Client::remote(fast_options(vec![url]))?;
    let attempts_max = fast_options(Vec::new()).attempts_max;
    match client.put(&Customer { name: "x".into() }).await {
        Err(ClientError::Unavailable {
            attempts,
            last_error,
        }) => {
            assert_eq!(attempts, attempts_max);
            assert!(last_error.contains("503"), "{last_error}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert_eq!(stub.hits.load(Ordering::SeqCst), attempts_max as usize);
    stop.cancel();
    server.stop().await
}
