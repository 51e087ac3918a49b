//! The subscription calls and the subscriber runtime against a real
//! in-process server: acks on success, nacks with the error text that ends
//! in the dead letter, the concurrency limit, lease renewal of slow
//! handlers, and draining at shutdown.

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_client::{
    Backoff, BackoffDefinition, Client, ClientError, DeadLetterQuery, Delivery, HandlerError, Hash,
    PullOptions, ReplaySelection, Subscriber, SubscriptionDefinition, SubscriptionView, TypedFact,
};
use common::{Order, TestServer};
use tokio_util::sync::CancellationToken;

/// Longest time a test waits for something to happen.
const EVENTUALLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Interval between two checks of a condition.
const EVENTUALLY_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `check` until it answers `Some`, failing after a bounded time.
async fn eventually<T, F, Fut>(what: &str, check: F) -> anyhow::Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let rounds_max = EVENTUALLY_TIMEOUT.as_millis() / EVENTUALLY_INTERVAL.as_millis();
    for _ in 0..rounds_max {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        tokio::time::sleep(EVENTUALLY_INTERVAL).await;
    }
    anyhow::bail!("timed out waiting for {what}")
}

fn definition(lease_ms: u64, max_attempts: u32) -> SubscriptionDefinition {
    SubscriptionDefinition {
        lease_ms: Some(lease_ms),
        max_attempts: Some(max_attempts),
        backoff: Some(BackoffDefinition {
            initial_ms: Some(1),
            max_ms: Some(20),
        }),
        ..SubscriptionDefinition::new(Order::TYPE_NAME)
    }
}

async fn put_orders(client: &Client, count: usize) -> anyhow::Result<Vec<Hash>> {
    let mut hashes = Vec::new();
    for index in 0..count {
        let order = Order {
            id: format!("o-{index}"),
            total: 10.0,
            customer: None,
        };
        hashes.push(client.put(&order).await?.hash);
    }
    Ok(hashes)
}

async fn view(client: &Client, name: &str) -> anyhow::Result<SubscriptionView> {
    client
        .subscription(name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("subscription {name} is gone"))
}

#[tokio::test]
async fn subscriptions_are_managed_over_the_wire() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    let created = client
        .create_subscription("audit", &definition(5_000, 3))
        .await?;
    assert!(created.created);
    assert_eq!(created.view.name, "audit");
    assert_eq!(created.view.definition.lease_ms, Some(5_000));
    assert_eq!(created.view.definition.max_attempts, Some(3));
    let again = client
        .create_subscription("audit", &definition(5_000, 3))
        .await?;
    assert!(!again.created);
    match client
        .create_subscription("audit", &definition(6_000, 3))
        .await
    {
        Err(error) => assert_eq!(
            (error.status(), error.code()),
            (Some(409), Some("subscription_conflict"))
        ),
        Ok(other) => panic!("a different definition was accepted: {other:?}"),
    }

    put_orders(&client, 2).await?;
    let listed = client.subscriptions().await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(view(&client, "audit").await?.backlog, 2);

    assert!(client.pause("audit").await?.paused);
    let transport = client.transport();
    let pulled = transport
        .pull(
            "audit",
            PullOptions {
                max: 10,
                wait_ms: 0,
                lease_ms: None,
            },
        )
        .await?;
    assert!(pulled.is_empty(), "a paused subscription delivered");
    assert!(!client.resume("audit").await?.paused);
    let pulled = transport
        .pull(
            "audit",
            PullOptions {
                max: 10,
                wait_ms: 1_000,
                lease_ms: None,
            },
        )
        .await?;
    assert_eq!(pulled.len(), 2);
    assert!(pulled.iter().all(|message| message.attempt == 1));
    let tokens: Vec<String> = pulled.iter().map(|message| message.token.clone()).collect();
    let extended = transport.extend("audit", &tokens, Some(10_000)).await?;
    assert!(extended
        .iter()
        .all(|result| result.status == cairn_client::TokenStatus::Extended));
    let acked = transport.ack("audit", &tokens).await?;
    assert!(acked
        .iter()
        .all(|result| result.status == cairn_client::TokenStatus::Acked));

    client.delete_subscription("audit").await?;
    assert!(client.subscription("audit").await?.is_none());
    assert!(matches!(
        Subscriber::new(client.clone(), "audit", |_: Delivery| async { Ok(()) })
            .run(CancellationToken::new())
            .await,
        Err(ClientError::UnknownSubscription { .. })
    ));
    server.stop().await
}

#[tokio::test]
async fn successful_handlers_are_acknowledged() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    client
        .create_subscription("billing", &definition(5_000, 5))
        .await?;
    let hashes = put_orders(&client, 5).await?;

    let seen = Arc::new(Mutex::new(Vec::new()));
    let shutdown = CancellationToken::new();
    let handler_seen = Arc::clone(&seen);
    let subscriber = Subscriber::new(client.clone(), "billing", move |delivery: Delivery| {
        let seen = Arc::clone(&handler_seen);
        async move {
            let order = delivery.fact_as::<Order>()?;
            seen.lock()
                .expect("seen lock")
                .push((order.hash, order.value.id));
            Ok(())
        }
    })
    .concurrency(2)
    .wait_ms(500);
    let running = tokio::spawn(subscriber.run(shutdown.clone()));

    eventually("every order acknowledged", || async {
        let view = view(&client, "billing").await?;
        Ok((view.acked == 5 && view.backlog == 0 && view.in_flight == 0).then_some(()))
    })
    .await?;
    shutdown.cancel();
    let report = running.await??;
    assert_eq!(report.messages_succeeded, 5);
    assert_eq!(report.messages_failed, 0);
    assert_eq!(report.outcomes_not_recorded, 0);
    let mut seen_hashes: Vec<Hash> = seen
        .lock()
        .expect("seen lock")
        .iter()
        .map(|(hash, _)| *hash)
        .collect();
    seen_hashes.sort();
    let mut expected = hashes;
    expected.sort();
    assert_eq!(seen_hashes, expected);
    server.stop().await
}

#[tokio::test]
async fn failures_are_nacked_with_their_error_into_the_dead_letters() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    client
        .create_subscription("billing", &definition(5_000, 2))
        .await?;
    let hashes = put_orders(&client, 1).await?;

    let attempts = Arc::new(Mutex::new(Vec::new()));
    let handler_attempts = Arc::clone(&attempts);
    let shutdown = CancellationToken::new();
    let subscriber = Subscriber::new(client.clone(), "billing", move |delivery: Delivery| {
        let attempts = Arc::clone(&handler_attempts);
        async move {
            attempts
                .lock()
                .expect("attempts lock")
                .push(delivery.attempt());
            let order = delivery.fact_as::<Order>()?;
            Err(HandlerError::from(format!(
                "card declined for {}",
                order.value.id
            )))
        }
    })
    .wait_ms(200);
    let running = tokio::spawn(subscriber.run(shutdown.clone()));

    let dead = eventually("the dead letter", || async {
        Ok(client.dead_letter("billing", &hashes[0]).await?)
    })
    .await?;
    shutdown.cancel();
    let report = running.await??;
    assert_eq!(dead.hash, hashes[0]);
    assert_eq!(dead.attempts, 2);
    assert_eq!(dead.last_error.as_deref(), Some("card declined for o-0"));
    assert_eq!(*attempts.lock().expect("attempts lock"), vec![1, 2]);
    assert_eq!(report.messages_failed, 2);
    assert_eq!(report.outcomes_not_recorded, 0);

    let page = client
        .dead_letters("billing", DeadLetterQuery::default())
        .await?;
    assert_eq!(page.messages.len(), 1);
    client.discard_dead_letter("billing", &hashes[0]).await?;
    let live = client
        .dead_letters("billing", DeadLetterQuery::default())
        .await?;
    assert!(live.messages.is_empty());
    let discarded = client
        .dead_letters(
            "billing",
            DeadLetterQuery {
                discarded: true,
                ..DeadLetterQuery::default()
            },
        )
        .await?;
    assert_eq!(discarded.messages.len(), 1);
    let replayed = client
        .replay_dead_letters("billing", &ReplaySelection::All)
        .await?;
    assert_eq!(replayed, 0, "a discarded message is not replayed");
    server.stop().await
}

/// A failure three layers deep, as a service meets it: an I/O error
/// inside a library's error inside the service's own.
#[derive(Debug, thiserror::Error)]
enum ChargeError {
    #[error("the payment gateway failed")]
    Gateway(#[source] GatewayError),
}

#[derive(Debug, thiserror::Error)]
#[error("cannot reach gateway.example")]
struct GatewayError(#[source] std::io::Error);

/// An application's catch-all error converts with `?` too, its context
/// layers kept as causes.
#[test]
fn anyhow_errors_convert_with_their_context() {
    fn charge() -> Result<(), HandlerError> {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        Err(anyhow::Error::new(refused).context("cannot reach gateway.example"))
            .map_err(|error| error.context("charging o-1"))?;
        Ok(())
    }
    assert_eq!(
        charge().expect_err("charging fails").message(),
        "charging o-1: cannot reach gateway.example: refused"
    );
}

#[tokio::test]
async fn dead_letters_keep_every_cause_of_a_handler_error() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    client
        .create_subscription("billing", &definition(5_000, 2))
        .await?;
    let hashes = put_orders(&client, 1).await?;

    let shutdown = CancellationToken::new();
    let subscriber = Subscriber::new(client.clone(), "billing", |_delivery: Delivery| async {
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        Err(ChargeError::Gateway(GatewayError(refused)))?;
        Ok(())
    })
    .wait_ms(200);
    let running = tokio::spawn(subscriber.run(shutdown.clone()));
    let dead = eventually("the dead letter", || async {
        Ok(client.dead_letter("billing", &hashes[0]).await?)
    })
    .await?;
    shutdown.cancel();
    running.await??;
    assert_eq!(dead.attempts, 2);
    assert_eq!(
        dead.last_error.as_deref(),
        Some("the payment gateway failed: cannot reach gateway.example: connection refused")
    );
    server.stop().await
}

#[tokio::test]
async fn no_more_handlers_run_than_the_concurrency_allows() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    client
        .create_subscription("billing", &definition(10_000, 5))
        .await?;
    put_orders(&client, 12).await?;

    let running_now = Arc::new(AtomicUsize::new(0));
    let running_max = Arc::new(AtomicUsize::new(0));
    let (handler_now, handler_max) = (Arc::clone(&running_now), Arc::clone(&running_max));
    let shutdown = CancellationToken::new();
    let subscriber = Subscriber::new(client.clone(), "billing", move |_: Delivery| {
        let (now, max) = (Arc::clone(&handler_now), Arc::clone(&handler_max));
        async move {
            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(running, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            now.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .concurrency(3)
    .wait_ms(200);
    let running = tokio::spawn(subscriber.run(shutdown.clone()));
    eventually("every order acknowledged", || async {
        Ok((view(&client, "billing").await?.acked == 12).then_some(()))
    })
    .await?;
    shutdown.cancel();
    let report = running.await??;
    assert_eq!(report.messages_succeeded, 12);
    let observed_max = running_max.load(Ordering::SeqCst);
    assert!(observed_max <= 3, "{observed_max} handlers ran at once");
    assert!(observed_max >= 2, "handlers never overlapped");
    server.stop().await
}

#[tokio::test]
async fn slow_handlers_keep_their_lease() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    // A lease of 300 ms and a handler of 1.5 s: without renewal the message
    // would be leased again (and handed to a free slot) several times.
    client
        .create_subscription("billing", &definition(300, 10))
        .await?;
    let hashes = put_orders(&client, 1).await?;

    let deliveries: Arc<Mutex<HashMap<Hash, Vec<u32>>>> = Arc::default();
    let handler_deliveries = Arc::clone(&deliveries);
    let shutdown = CancellationToken::new();
    let subscriber = Subscriber::new(client.clone(), "billing", move |delivery: Delivery| {
        let deliveries = Arc::clone(&handler_deliveries);
        async move {
            deliveries
                .lock()
                .expect("deliveries lock")
                .entry(delivery.hash())
                .or_default()
                .push(delivery.attempt());
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            Ok(())
        }
    })
    .concurrency(4)
    .wait_ms(100);
    let running = tokio::spawn(subscriber.run(shutdown.clone()));
    eventually("the slow message acknowledged", || async {
        let view = view(&client, "billing").await?;
        Ok((view.acked == 1 && view.in_flight == 0).then_some(()))
    })
    .await?;
    shutdown.cancel();
    let report = running.await??;
    assert_eq!(
        deliveries.lock().expect("deliveries lock").get(&hashes[0]),
        Some(&vec![1])
    );
    assert_eq!(report.messages_succeeded, 1);
    assert_eq!(report.outcomes_not_recorded, 0);
    assert_eq!(view(&client, "billing").await?.redelivered, 0);
    server.stop().await
}

#[tokio::test]
async fn shutdown_drains_running_handlers() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    client
        .create_subscription("billing", &definition(10_000, 5))
        .await?;
    put_orders(&client, 4).await?;

    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let (handler_started, handler_finished) = (Arc::clone(&started), Arc::clone(&finished));
    let shutdown = CancellationToken::new();
    let subscriber = Subscriber::new(client.clone(), "billing", move |_: Delivery| {
        let (started, finished) = (Arc::clone(&handler_started), Arc::clone(&handler_finished));
        async move {
            started.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(500)).await;
            finished.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
    .concurrency(2)
    .wait_ms(200);
    let running = tokio::spawn(subscriber.run(shutdown.clone()));
    let started_ref = &started;
    eventually("two handlers running", || async move {
        Ok((started_ref.load(Ordering::SeqCst) == 2).then_some(()))
    })
    .await?;
    shutdown.cancel();
    let report = running.await??;

    // Every handler that started finished, and its ack was sent before
    // `run` returned; nothing more was pulled after the shutdown.
    let started_n = started.load(Ordering::SeqCst);
    assert_eq!(finished.load(Ordering::SeqCst), started_n);
    assert_eq!(report.messages_succeeded, started_n as u64);
    assert_eq!(report.messages_abandoned, 0);
    let view = view(&client, "billing").await?;
    assert_eq!(view.acked, started_n as u64);
    assert_eq!(view.backlog, 4 - started_n as u64);
    server.stop().await
}

#[tokio::test]
async fn handlers_past_the_drain_timeout_are_abandoned() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    client
        .create_subscription("billing", &definition(10_000, 5))
        .await?;
    put_orders(&client, 1).await?;

    let started = Arc::new(AtomicUsize::new(0));
    let handler_started = Arc::clone(&started);
    let shutdown = CancellationToken::new();
    let subscriber = Subscriber::new(client.clone(), "billing", move |_: Delivery| {
        let started = Arc::clone(&handler_started);
        async move {
            started.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
    })
    .drain_timeout(Duration::from_millis(200))
    .wait_ms(200);
    let running = tokio::spawn(subscriber.run(shutdown.clone()));
    let started_ref = &started;
    eventually("the handler running", || async move {
        Ok((started_ref.load(Ordering::SeqCst) == 1).then_some(()))
    })
    .await?;
    shutdown.cancel();
    let report = running.await??;
    assert_eq!(report.messages_abandoned, 1);
    assert_eq!(report.messages_succeeded, 0);
    assert_eq!(view(&client, "billing").await?.acked, 0);
    server.stop().await
}

#[tokio::test]
async fn failing_pulls_are_retried_without_stopping_the_subscriber() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    client
        .create_subscription("billing", &definition(5_000, 5))
        .await?;
    put_orders(&client, 1).await?;

    let shutdown = CancellationToken::new();
    let subscriber = Subscriber::new(client.clone(), "billing", |_: Delivery| async { Ok(()) })
        .wait_ms(100)
        .retry_backoff(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
        });
    let running = tokio::spawn(subscriber.run(shutdown.clone()));
    eventually("the first order acknowledged", || async {
        Ok((view(&client, "billing").await?.acked == 1).then_some(()))
    })
    .await?;

    // Without the subscription every pull fails with 404; the subscriber
    // keeps trying and picks up the subscription once it exists again.
    client.delete_subscription("billing").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!running.is_finished(), "the subscriber stopped");
    client
        .create_subscription("billing", &definition(5_000, 5))
        .await?;
    // `o-0` is stored already (puts are idempotent), `o-1` is new; the new
    // subscription starts at the beginning, so both are its messages.
    put_orders(&client, 2).await?;
    eventually("the recreated subscription drained", || async {
        let view = view(&client, "billing").await?;
        Ok((view.backlog == 0 && view.in_flight == 0 && view.acked >= 2).then_some(()))
    })
    .await?;
    shutdown.cancel();
    let report = running.await??;
    assert_eq!(report.messages_succeeded, 3);
    assert_eq!(report.messages_failed, 0);
    server.stop().await
}
