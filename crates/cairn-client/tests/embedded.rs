//! The same client over a Cairn server embedded in the process: typed facts,
//! a subscriber that handles messages, and state that survives closing and
//! reopening the data directory.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_client::{Client, Delivery, Subscriber, SubscriptionDefinition};
use common::Order;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn embedded_client_stores_delivers_and_persists() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (client, node) = Client::embedded(dir.path()).await?;
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
    node.close().await;
    // The directory is released when the last handle on the store goes.
    drop(client);

    // Reopened: the facts are there and the acknowledged messages stay acked.
    let (client, node) = Client::embedded(dir.path()).await?;
    assert!(client.get::<Order>(&hashes[4]).await?.is_some());
    let view = client.subscription("billing").await?.expect("subscription");
    assert_eq!((view.backlog, view.in_flight), (0, 0));
    node.close().await;
    Ok(())
}
