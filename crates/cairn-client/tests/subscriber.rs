//! The subscription calls and the subscriber runtime against a real
//! in-process server: acks on success, nacks with the error text that ends
//! in the dead letter, the concurrency limit, lease renewal of slow
//! handlers, draining at shutdown, and definitions kept in code (created
//! or updated at the start, waited for while Cairn is unreachable).

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_client::{
    ApplyOutcome, Backoff, BackoffDefinition, Client, ClientError, DeadLetterQuery, Delivery,
    GenerationPrecondition, HandlerError, Hash, PullOptions, ReplaySelection, Subscriber,
    SubscriptionDefinition, SubscriptionView, TypedFact,
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
        .apply_subscription("audit", &definition(5_000, 3))
        .await?;
    assert_eq!(created.outcome, ApplyOutcome::Created);
    assert_eq!(created.generation(), 1);
    assert_eq!(created.view.name, "audit");
    assert_eq!(created.view.definition.lease_ms, Some(5_000));
    assert_eq!(created.view.definition.max_attempts, Some(3));
    let again = client
        .apply_subscription("audit", &definition(5_000, 3))
        .await?;
    assert_eq!(
        (again.outcome, again.generation()),
        (ApplyOutcome::Unchanged, 1)
    );
    let updated = client
        .apply_subscription("audit", &definition(6_000, 3))
        .await?;
    assert_eq!(
        (updated.outcome, updated.generation()),
        (ApplyOutcome::Updated, 2)
    );
    assert_eq!(updated.view.definition.lease_ms, Some(6_000));
    // With If-Match: only over the generation named.
    let stale = client
        .apply_subscription_if(
            "audit",
            &definition(7_000, 3),
            GenerationPrecondition::Generation(1),
        )
        .await
        .expect_err("a stale generation is refused");
    assert_eq!(
        (stale.status(), stale.code()),
        (Some(412), Some("generation_mismatch"))
    );
    let current = client
        .apply_subscription_if(
            "audit",
            &definition(7_000, 3),
            GenerationPrecondition::Generation(2),
        )
        .await?;
    assert_eq!(
        (current.outcome, current.generation()),
        (ApplyOutcome::Updated, 3)
    );
    assert_eq!(view(&client, "audit").await?.generation, 3);
    let started_now = SubscriptionDefinition {
        start: Some(cairn_client::Start::Now),
        ..definition(7_000, 3)
    };
    match client.apply_subscription("audit", &started_now).await {
        Err(error) => assert_eq!(
            (error.status(), error.code()),
            (Some(409), Some("subscription_conflict"))
        ),
        Ok(other) => panic!("a change of start was accepted: {other:?}"),
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
        .apply_subscription("billing", &definition(5_000, 5))
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
        .apply_subscription("billing", &definition(5_000, 2))
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
        .apply_subscription("billing", &definition(5_000, 2))
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
        .apply_subscription("billing", &definition(10_000, 5))
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
        .apply_subscription("billing", &definition(300, 10))
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
        .apply_subscription("billing", &definition(10_000, 5))
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
        .apply_subscription("billing", &definition(10_000, 5))
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
        .apply_subscription("billing", &definition(5_000, 5))
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
        .apply_subscription("billing", &definition(5_000, 5))
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

/// A subscriber that counts the messages it handled.
fn counting_subscriber(
    client: Client,
    name: &str,
    handled: &Arc<AtomicUsize>,
) -> Subscriber<impl Fn(Delivery) -> std::future::Ready<Result<(), HandlerError>> + Send + Sync> {
    let handled = Arc::clone(handled);
    Subscriber::new(client, name, move |_: Delivery| {
        handled.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(()))
    })
    .wait_ms(200)
    .retry_backoff(Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
    })
}

/// Runs a subscriber until its subscription shows `generation`, then stops
/// it; returns what its run answered.
async fn run_until_generation<H, F>(
    subscriber: Subscriber<H>,
    client: &Client,
    name: &str,
    generation: u64,
) -> anyhow::Result<cairn_client::Result<cairn_client::SubscriberReport>>
where
    H: Fn(Delivery) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(subscriber.run(shutdown.clone()));
    eventually("the definition in force", || async {
        let current = client.subscription(name).await?;
        Ok(
            (current.is_some_and(|view| view.generation == generation) || running.is_finished())
                .then_some(()),
        )
    })
    .await?;
    shutdown.cancel();
    Ok(running.await?)
}

#[tokio::test]
async fn a_subscriber_puts_its_definition_waiting_for_cairn_while_it_is_unreachable(
) -> anyhow::Result<()> {
    // A port nothing listens on yet: the server comes up on it later.
    let address = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        listener.local_addr()?
    };
    let client = Client::remote(common::fast_options(vec![format!("http://{address}")]))?;
    let handled = Arc::new(AtomicUsize::new(0));
    let shutdown = CancellationToken::new();
    let subscriber =
        counting_subscriber(client.clone(), "billing", &handled).definition(definition(5_000, 4));
    let running = tokio::spawn(subscriber.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !running.is_finished(),
        "the subscriber gave up while Cairn was unreachable"
    );

    let server = TestServer::start_on(address).await?;
    put_orders(&client, 3).await?;
    eventually("every order handled", || async {
        Ok((handled.load(Ordering::SeqCst) == 3).then_some(()))
    })
    .await?;
    shutdown.cancel();
    let report = running.await??;
    assert_eq!(report.messages_succeeded, 3);
    let created = view(&client, "billing").await?;
    assert_eq!(
        (
            created.generation,
            created.definition.max_attempts,
            created.acked
        ),
        (1, Some(4), 3)
    );
    server.stop().await
}

#[tokio::test]
async fn a_subscriber_updates_its_definition_and_fails_clearly_on_a_conflict() -> anyhow::Result<()>
{
    let server = TestServer::start().await?;
    let client = server.client()?;
    client
        .apply_subscription("billing", &definition(5_000, 2))
        .await?;
    put_orders(&client, 2).await?;
    // A message leased before the update stays leased through it.
    let leased = client
        .transport()
        .pull(
            "billing",
            PullOptions {
                max: 1,
                wait_ms: 0,
                lease_ms: Some(60_000),
            },
        )
        .await?;
    assert_eq!(leased.len(), 1);

    let handled = Arc::new(AtomicUsize::new(0));
    let subscriber =
        counting_subscriber(client.clone(), "billing", &handled).definition(definition(8_000, 6));
    run_until_generation(subscriber, &client, "billing", 2).await??;
    let updated = view(&client, "billing").await?;
    assert_eq!(
        (updated.definition.lease_ms, updated.definition.max_attempts),
        (Some(8_000), Some(6))
    );
    assert_eq!(updated.in_flight, 1, "{updated:?}");
    let acked = client
        .transport()
        .ack("billing", &[leased[0].token.clone()])
        .await?;
    assert_eq!(acked[0].status, cairn_client::TokenStatus::Acked);

    // Another type under the same name cannot be put: the run fails at
    // once, naming the conflict, and the subscription is untouched.
    let conflicting = counting_subscriber(client.clone(), "billing", &handled)
        .definition(SubscriptionDefinition::new("Shop.Refund"));
    let refused = tokio::time::timeout(
        EVENTUALLY_TIMEOUT,
        conflicting.run(CancellationToken::new()),
    )
    .await?
    .expect_err("a conflicting definition is refused");
    assert_eq!(
        (refused.status(), refused.code()),
        (Some(409), Some("subscription_conflict"))
    );
    assert!(refused.to_string().contains("type"), "{refused}");
    assert_eq!(view(&client, "billing").await?.generation, 2);
    server.stop().await
}

#[tokio::test]
async fn a_definition_replacing_a_generation_never_overwrites_a_newer_one() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    let handled = Arc::new(AtomicUsize::new(0));
    let subscriber = |lease_ms: u64, replaces: u64| {
        counting_subscriber(client.clone(), "billing", &handled)
            .definition_replacing(definition(lease_ms, 5), replaces)
    };
    // Missing: created.
    run_until_generation(subscriber(5_000, 3), &client, "billing", 1).await??;
    assert_eq!(
        view(&client, "billing").await?.definition.lease_ms,
        Some(5_000)
    );
    // Generation 1 is replaced by the new version's definition.
    run_until_generation(subscriber(6_000, 1), &client, "billing", 2).await??;
    assert_eq!(
        view(&client, "billing").await?.definition.lease_ms,
        Some(6_000)
    );
    // An instance of the old version restarting mid-deploy runs (it
    // handles a message) under the newer definition without putting its
    // own.
    put_orders(&client, 1).await?;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(subscriber(5_000, 1).run(shutdown.clone()));
    eventually("the order handled by the old version", || async {
        Ok((handled.load(Ordering::SeqCst) == 1).then_some(()))
    })
    .await?;
    shutdown.cancel();
    assert_eq!(running.await??.messages_succeeded, 1);
    let kept = view(&client, "billing").await?;
    assert_eq!(
        (kept.generation, kept.definition.lease_ms),
        (2, Some(6_000))
    );
    // A definition expecting a history the server does not have fails.
    let refused = subscriber(7_000, 9)
        .run(CancellationToken::new())
        .await
        .expect_err("a generation ahead of the server's is refused");
    assert_eq!(refused.code(), Some("generation_mismatch"));
    assert_eq!(view(&client, "billing").await?.generation, 2);
    server.stop().await
}
