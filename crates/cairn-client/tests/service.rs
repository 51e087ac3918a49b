//! `Service` against a real in-process server: parts start together, stop
//! in order (subscribers drain before tasks are told to stop), and a
//! failing part stops the whole service with its error.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_client::{
    Delivery, HandlerError, Service, ServiceError, Subscriber, SubscriptionDefinition, TypedFact,
};
use common::{Order, TestServer};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn subscribers_drain_before_tasks_are_stopped() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    client
        .apply_subscription("audit", &SubscriptionDefinition::new(Order::TYPE_NAME))
        .await?;
    let events = Arc::new(Mutex::new(Vec::<String>::new()));

    let handler_events = Arc::clone(&events);
    let handler = move |delivery: Delivery| {
        let events = Arc::clone(&handler_events);
        async move {
            events.lock().unwrap().push("handler started".to_string());
            // A slow handler still running when the stop signal comes.
            tokio::time::sleep(Duration::from_millis(300)).await;
            events
                .lock()
                .unwrap()
                .push(format!("handled {}", delivery.hash()));
            Ok::<(), HandlerError>(())
        }
    };
    let task_events = Arc::clone(&events);
    let stop = CancellationToken::new();
    let service = Service::new("audit-service")
        .subscriber(Subscriber::new(client.clone(), "audit", handler).wait_ms(100))
        .task("relay", move |shutdown| async move {
            shutdown.cancelled().await;
            task_events
                .lock()
                .unwrap()
                .push("relay stopped".to_string());
            Ok::<(), std::io::Error>(())
        });
    let running = tokio::spawn(service.run_until(stop.clone().cancelled_owned()));

    let order = client
        .put(&Order {
            id: "o-1".into(),
            total: 1.0,
            customer: None,
        })
        .await?;
    // Stop while the handler runs.
    for _ in 0..2_000 {
        if !events.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    let report = running.await??;

    assert_eq!(
        *events.lock().unwrap(),
        vec![
            "handler started".to_string(),
            format!("handled {}", order.hash),
            "relay stopped".to_string()
        ]
    );
    assert_eq!(report.subscribers.len(), 1);
    assert_eq!(report.subscribers[0].0, "audit");
    assert_eq!(report.subscribers[0].1.messages_succeeded, 1);
    server.stop().await
}

#[tokio::test]
async fn a_failing_part_stops_the_service_with_its_error() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    let handler = |_: Delivery| async { Ok::<(), HandlerError>(()) };
    let task_stopped = Arc::new(Mutex::new(false));
    let stopped = Arc::clone(&task_stopped);
    let never = CancellationToken::new();
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        Service::new("broken")
            // No such subscription: the subscriber fails at its start.
            .subscriber(Subscriber::new(client.clone(), "missing", handler))
            .task("relay", move |shutdown| async move {
                shutdown.cancelled().await;
                *stopped.lock().unwrap() = true;
                Ok::<(), std::io::Error>(())
            })
            .run_until(never.cancelled_owned()),
    )
    .await?;
    match outcome {
        Err(ServiceError::PartFailed { part, source, .. }) => {
            assert_eq!(part, "missing");
            assert!(source.to_string().contains("missing"), "{source}");
        }
        other => panic!("expected the subscriber's failure, got {other:?}"),
    }
    assert!(*task_stopped.lock().unwrap(), "the task was not shut down");
    server.stop().await
}
