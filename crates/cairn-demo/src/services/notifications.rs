//! The notifications service: tells each customer how the order ended —
//! served (`Cafe.OrderServed`), refunded (`Cafe.PaymentRefunded`) or
//! declined (`Cafe.PaymentFailed`) — with one `Cafe.NotificationSent`
//! each. Delivery is at least once, so the same event can arrive again
//! (after this process was killed before its ack); each sending has an id
//! of its own, so without the inbox a redelivery would send a second
//! notification. The inbox's transaction makes it one.

use std::future::Future;

use cairn_client::{unique_id, Delivery, HandlerError, Hash, Service, TypedFact};
use cairn_sql::{with_inbox, Outbox};

use crate::error::DemoError;
use crate::facts::{NotificationSent, OrderServed, PaymentFailed, PaymentRefunded};
use crate::limits::ATTEMPTS_MAX;
use crate::services::{
    definition, drain_relay, open_database, start_relay, subscriber, ServiceOptions,
};

/// Subscriptions, by the kind of notification they send.
pub const SUBSCRIPTIONS: [(&str, &str); 3] = [
    ("notify-served", "served"),
    ("notify-refunded", "refunded"),
    ("notify-failed", "payment_failed"),
];

/// The order, its id and the text to send for a delivered event.
fn notice(delivery: &Delivery) -> Result<(Hash, String, String), HandlerError> {
    let type_name = delivery
        .fact()
        .get("type")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    if type_name == OrderServed::TYPE_NAME {
        let served = delivery.fact_as::<OrderServed>()?.value;
        let text = format!("Your {} is ready. Enjoy!", served.item);
        Ok((served.order, served.order_id, text))
    } else if type_name == PaymentRefunded::TYPE_NAME {
        let refunded = delivery.fact_as::<PaymentRefunded>()?.value;
        let text = "Sorry, we ran out; your money is on its way back.".to_owned();
        Ok((refunded.order, refunded.order_id, text))
    } else {
        let failed = delivery.fact_as::<PaymentFailed>()?.value;
        let text = "Sorry, your card could not be charged; nothing was taken.".to_owned();
        Ok((failed.order, failed.order_id, text))
    }
}

/// Runs the notifications service until `stop`.
pub async fn run(options: ServiceOptions, stop: impl Future<Output = ()>) -> Result<(), DemoError> {
    let pool = open_database(&options.data_dir, "notifications").await?;
    let client = options.client()?;
    let relay = start_relay(&pool, &client);
    let mut service = Service::new("notifications");
    for ((name, kind), type_name) in SUBSCRIPTIONS.into_iter().zip([
        OrderServed::TYPE_NAME,
        PaymentRefunded::TYPE_NAME,
        PaymentFailed::TYPE_NAME,
    ]) {
        let send_once = with_inbox(pool.clone(), move |delivery, transaction| {
            Box::pin(async move {
                let (order, order_id, text) = notice(&delivery)?;
                let sent = NotificationSent {
                    order_id,
                    kind: kind.to_owned(),
                    text,
                    send_id: unique_id()?,
                    order,
                };
                Outbox::new().enqueue_value(transaction, &sent).await?;
                Ok(())
            })
        });
        let relay_handle = relay.handle();
        let handler = move |delivery: Delivery| {
            let sending = send_once(delivery);
            let relay = relay_handle.clone();
            async move {
                sending.await?;
                relay.notify();
                Ok(())
            }
        };
        service = service.subscriber(subscriber(
            &client,
            name,
            definition(type_name, ATTEMPTS_MAX),
            handler,
        ));
    }
    service
        .task("outbox relay", |shutdown| async move {
            shutdown.cancelled().await;
            drain_relay(relay).await
        })
        .run_until(stop)
        .await?;
    Ok(())
}
