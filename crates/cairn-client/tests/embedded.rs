//! The same client over a Cairn server embedded in the process: typed facts,
//! a subscriber that handles messages, state that survives closing and
//! reopening the data directory, a node that lives exactly as long as its
//! client, a node that serves API v1 on a local port too, and durable
//! timers that fire in the embedded node.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_client::{
    Client, ClientError, ClientOptions, Delivery, EmbeddedOptions, PullOptions, Subscriber,
    SubscriptionDefinition, TimerDefinition,
};
use common::Order;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn embedded_client_stores_delivers_and_persists() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::embedded(dir.path()).await?;
    client
        .apply_subscription("billing", &SubscriptionDefinition::new("Shop.Order"))
        .await?;
    let mut hashes = Vec::new();
    for index in 0..5 {
        let order = Order {
            id: format!("o-{index}"),
            total: 1.0 + f64::from(index),
            customer: None,
        };
        hashes.push(client.put(&order).await?.hash);
    }
    let read = client.get::<Order>(&hashes[0]).await?.expect("stored");
    assert_eq!(read.value.id, "o-0");

    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let shutdown = CancellationToken::new();
    let handler_seen = Arc::clone(&seen);
    let subscriber = Subscriber::new(client.clone(), "billing", move |delivery: Delivery| {
        let seen = Arc::clone(&handler_seen);
        async move {
            let order = delivery.fact_as::<Order>()?;
            seen.lock().expect("lock").push(order.value.id);
            Ok(())
        }
    })
    .wait_ms(200);
    let running = tokio::spawn(subscriber.run(shutdown.clone()));
    for _ in 0..100 {
        if seen.lock().expect("lock").len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    running.await??;
    assert_eq!(seen.lock().expect("lock").len(), 5);
    client.close().await;

    // Reopened: the facts are there and the acknowledged messages stay acked.
    let client = Client::embedded(dir.path()).await?;
    assert!(client.get::<Order>(&hashes[4]).await?.is_some());
    let view = client.subscription("billing").await?.expect("subscription");
    assert_eq!((view.backlog, view.in_flight), (0, 0));
    client.close().await;
    Ok(())
}

/// The node lives as long as the client: a long-poll still waits for a fact
/// stored while it waits (with a node dropped at once it answered empty
/// at once, and every long-poll became a 50 ms poll).
#[tokio::test]
async fn long_polls_wait_while_the_client_lives() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::embedded(dir.path()).await?;
    client
        .apply_subscription("billing", &SubscriptionDefinition::new("Shop.Order"))
        .await?;
    let pull = spawn_long_poll(&client, 20_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let order = Order {
        id: "o-late".to_string(),
        total: 1.0,
        customer: None,
    };
    let stored = client.put(&order).await?;
    let pulled = pull.await??;
    assert_eq!(
        pulled
            .iter()
            .map(|message| message.hash)
            .collect::<Vec<_>>(),
        vec![stored.hash],
        "the long-poll did not wait for the fact"
    );
    client.close().await;
    Ok(())
}

/// Closing one clone closes them all: their calls fail with a clear error,
/// a long-poll in progress ends, and the directory can be opened again.
#[tokio::test]
async fn a_closed_client_refuses_calls_on_every_clone() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::embedded(dir.path()).await?;
    let clone = client.clone();
    client
        .apply_subscription("billing", &SubscriptionDefinition::new("Shop.Order"))
        .await?;
    let pull = spawn_long_poll(&client, 60_000);
    tokio::time::sleep(Duration::from_millis(100)).await;
    clone.close().await;
    // The long-poll ends at the close instead of after its minute.
    let ended = tokio::time::timeout(Duration::from_secs(30), pull).await?;
    assert!(ended.is_ok(), "the long-poll task failed");

    let order = Order {
        id: "o-after-close".to_string(),
        total: 1.0,
        customer: None,
    };
    match client.put(&order).await {
        Err(ClientError::Closed) => {}
        other => panic!("a call on a closed client answered {other:?}"),
    }
    assert!(matches!(
        clone.subscriptions().await,
        Err(ClientError::Closed)
    ));
    // Closing again is harmless.
    client.close().await;

    let reopened = Client::embedded(dir.path()).await?;
    assert!(reopened.subscription("billing").await?.is_some());
    reopened.close().await;
    Ok(())
}

/// A subscriber running when its client is closed stops by itself, rather
/// than retrying pulls that can never succeed again.
#[tokio::test]
async fn a_subscriber_stops_when_its_client_is_closed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::embedded(dir.path()).await?;
    let handler = |_: cairn_client::Delivery| async { Ok::<(), cairn_client::HandlerError>(()) };
    let subscriber = cairn_client::Subscriber::new(client.clone(), "billing", handler)
        .definition(SubscriptionDefinition::new("Shop.Order"))
        .wait_ms(20_000);
    let never = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(subscriber.run(never.clone()));
    // Wait until the subscriber has put its definition and is pulling.
    for _ in 0..1_000 {
        if client.subscription("billing").await?.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.close().await;
    let report = tokio::time::timeout(Duration::from_secs(30), running).await???;
    assert_eq!(report.messages_succeeded, 0);
    Ok(())
}

/// An embedded node started with a listen address serves the same API over
/// real HTTP, to any client: here plain reqwest, as a browser or `curl`
/// would call it, and a remote SDK client.
#[tokio::test]
async fn a_listening_node_answers_over_http() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client =
        Client::embedded_with(EmbeddedOptions::new(dir.path()).listen("127.0.0.1:0")).await?;
    let address = client.local_address().expect("the node listens");
    assert!(address.ip().is_loopback());
    assert_ne!(address.port(), 0, "the bound port, not the one asked for");
    client
        .apply_subscription("billing", &SubscriptionDefinition::new("Shop.Order"))
        .await?;
    let order = Order {
        id: "o-over-http".to_string(),
        total: 2.5,
        customer: None,
    };
    let stored = client.put(&order).await?;

    let http = reqwest::Client::new();
    let fact: serde_json::Value = http
        .get(format!(
            "http://{address}/v1/facts/{}",
            stored.hash.to_hex()
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(fact["fact"]["fields"]["id"], "o-over-http", "{fact}");
    let subscriptions: serde_json::Value = http
        .get(format!("http://{address}/v1/subscriptions"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(
        subscriptions["subscriptions"][0]["name"], "billing",
        "{subscriptions}"
    );

    let remote = Client::remote(ClientOptions::new([format!("http://{address}")]))?;
    let read = remote.get::<Order>(&stored.hash).await?.expect("stored");
    assert_eq!(read.value, order);

    // Closing stops the listener too.
    client.close().await;
    let refused = http
        .get(format!("http://{address}/v1/subscriptions"))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "the closed node still answers: {refused:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_remote_client_has_no_local_address() -> anyhow::Result<()> {
    let client = Client::remote(ClientOptions::new(["http://127.0.0.1:9"]))?;
    assert_eq!(client.local_address(), None);
    client.close().await;
    assert!(matches!(
        client.subscriptions().await,
        Err(ClientError::Closed)
    ));
    Ok(())
}

/// A listen address that cannot be bound fails the start with a clear
/// error and leaves the data directory free.
#[tokio::test]
async fn a_taken_port_fails_the_start_and_frees_the_directory() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = taken.local_addr()?.to_string();
    match Client::embedded_with(EmbeddedOptions::new(dir.path()).listen(address.clone())).await {
        Err(ClientError::Embedded(message)) => {
            assert!(message.contains(&address), "{message}");
        }
        other => panic!("a taken port answered {other:?}"),
    }
    let client = Client::embedded(dir.path()).await?;
    client.close().await;
    Ok(())
}

/// A pull of the subscription `billing` that long-polls for `wait_ms`, in
/// a task of its own.
fn spawn_long_poll(
    client: &Client,
    wait_ms: u64,
) -> tokio::task::JoinHandle<cairn_client::Result<Vec<cairn_client::Message>>> {
    let puller = client.clone();
    tokio::spawn(async move {
        let options = PullOptions {
            max: 10,
            wait_ms,
            lease_ms: None,
        };
        puller.transport().pull("billing", options).await
    })
}

#[tokio::test]
async fn an_embedded_timer_fires_its_fact_and_survives_reopening() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::embedded(dir.path()).await?;
    let template = serde_json::json!({
        "type": "Test.Timeout", "fields": {"order": "42"}, "predecessors": {},
    });
    let view = client
        .put_timer(
            "timeout-42",
            &TimerDefinition::at_ms(1_000, template.clone()),
        )
        .await?;
    assert_eq!(view.next_due.as_deref(), Some("1970-01-01T00:00:01.000Z"));
    let far = client
        .put_timer(
            "far",
            &TimerDefinition::at("2999-01-01T00:00:00Z", template),
        )
        .await?;
    assert_eq!(far.next_due.as_deref(), Some("2999-01-01T00:00:00.000Z"));
    let mut fired = None;
    for _ in 0..200 {
        let timer = client.get_timer("timeout-42").await?.expect("the timer");
        if timer.last_fired.is_some() {
            fired = Some(timer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let fired = fired.expect("the timer fired within 5 s");
    assert_eq!(
        fired.last_fired.as_deref(),
        Some("1970-01-01T00:00:01.000Z")
    );
    let page = client.log(cairn_client::LogQuery::default()).await?;
    assert_eq!(page.facts.len(), 1);
    assert_eq!(
        page.facts[0].fact["fields"]["cairn_timer"],
        serde_json::json!({"name": "timeout-42", "due": "1970-01-01T00:00:01.000Z"})
    );
    client.close().await;
    let reopened = Client::embedded(dir.path()).await?;
    let names: Vec<String> = reopened
        .list_timers()
        .await?
        .into_iter()
        .map(|timer| timer.name)
        .collect();
    assert_eq!(names, ["far", "timeout-42"]);
    reopened.delete_timer("far").await?;
    assert!(reopened.get_timer("far").await?.is_none());
    assert!(reopened.delete_timer("far").await.is_err());
    reopened.close().await;
    Ok(())
}
