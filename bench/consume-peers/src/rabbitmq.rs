//! RabbitMQ peer on `lapin`: a quorum queue (`x-queue-type: quorum`, durable), persistent
//! messages published with publisher confirms, consumers with a prefetch window and manual
//! acknowledgements, one `multiple` ack per batch of deliveries that are ready.
//!
//! AMQP 0.9.1 has no reply to `basic.ack`, so a consumer cannot wait for its ack to be durable;
//! after a consume phase every channel is closed (which the server answers only after it has
//! handled the acks sent before it) and the queue depth is read back as a check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use tokio::sync::{mpsc, Barrier};

use crate::common::{
    self, backlog_payload, ConsumeProgress, ConsumeReport, LatencyReport, POLL_INTERVAL,
};

/// Unconfirmed publishes allowed in flight while preloading.
const PRELOAD_CONFIRMS_IN_FLIGHT: usize = 256;
/// AMQP delivery mode for persistent messages.
const DELIVERY_MODE_PERSISTENT: u8 = 2;
/// Reply code for a normal close.
const REPLY_SUCCESS: u16 = 200;
/// Bound on confirms buffered between the latency publisher and its confirm waiter.
const LATENCY_CONFIRMS_QUEUED_MAX: usize = 100_000;

/// The RabbitMQ peer.
pub struct RabbitMq {
    url: String,
    queue_name: String,
    prefetch: u16,
    ack_batch: usize,
}

fn connection_properties() -> ConnectionProperties {
    ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current())
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(DELIVERY_MODE_PERSISTENT)
}

impl RabbitMq {
    /// A peer on `url` (amqp://…) using the queue `queue_name`.
    pub fn new(url: &str, queue_name: &str, prefetch: u16, ack_batch: usize) -> Self {
        Self {
            url: url.into(),
            queue_name: queue_name.into(),
            prefetch,
            ack_batch,
        }
    }

    async fn connect(&self) -> Result<(Connection, Channel)> {
        let connection = Connection::connect(&self.url, connection_properties())
            .await
            .with_context(|| format!("connecting to {}", self.url))?;
        let channel = connection.create_channel().await?;
        Ok((connection, channel))
    }

    async fn declare(&self, channel: &Channel) -> Result<u32> {
        let mut arguments = FieldTable::default();
        arguments.insert(
            ShortString::from("x-queue-type"),
            AMQPValue::LongString("quorum".into()),
        );
        let queue = channel
            .queue_declare(
                &self.queue_name,
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            )
            .await?;
        Ok(queue.message_count())
    }

    /// A consumer channel with the prefetch window set, not yet consuming.
    async fn consumer_channel(&self, prefetch: u16) -> Result<(Connection, Channel)> {
        let (connection, channel) = self.connect().await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        Ok((connection, channel))
    }

    async fn start_consuming(&self, channel: &Channel, tag: &str) -> Result<Consumer> {
        Ok(channel
            .basic_consume(
                &self.queue_name,
                tag,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?)
    }
}

/// Waits up to `POLL_INTERVAL` for a delivery, then takes whatever else is ready, up to
/// `batch_max` in all. Returns the deliveries' payloads and the last delivery tag.
async fn next_batch(
    consumer: &mut Consumer,
    batch_max: usize,
) -> Result<Option<(Vec<Vec<u8>>, u64)>> {
    let first = match tokio::time::timeout(POLL_INTERVAL, consumer.next()).await {
        Err(_) => return Ok(None),
        Ok(None) => bail!("consumer cancelled by the server"),
        Ok(Some(delivery)) => delivery?,
    };
    let mut last_tag = first.delivery_tag;
    let mut payloads = vec![first.data];
    while payloads.len() < batch_max {
        match consumer.next().now_or_never() {
            Some(Some(delivery)) => {
                let delivery = delivery?;
                last_tag = delivery.delivery_tag;
                payloads.push(delivery.data);
            }
            Some(None) => bail!("consumer cancelled by the server"),
            None => break,
        }
    }
    Ok(Some((payloads, last_tag)))
}

async fn ack_up_to(channel: &Channel, delivery_tag: u64) -> Result<()> {
    channel
        .basic_ack(delivery_tag, BasicAckOptions { multiple: true })
        .await?;
    Ok(())
}

impl crate::Peer for RabbitMq {
    fn key(&self) -> &str {
        "rabbitmq"
    }

    fn settings(&self) -> String {
        format!(
            "quorum,durable,persistent,confirms,manual_ack,prefetch={},ack_batch_max={},multiple_ack",
            self.prefetch, self.ack_batch
        )
    }

    async fn reset(&self) -> Result<()> {
        let (connection, channel) = self.connect().await?;
        channel
            .queue_delete(&self.queue_name, QueueDeleteOptions::default())
            .await?;
        self.declare(&channel).await?;
        connection.close(REPLY_SUCCESS, "reset done").await?;
        Ok(())
    }

    async fn preload(&self, count: u64) -> Result<()> {
        let (connection, channel) = self.connect().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let payload = backlog_payload();
        let mut pending = FuturesUnordered::new();
        let mut sent = 0u64;
        let mut nacked = 0u64;
        while sent < count || !pending.is_empty() {
            while sent < count && pending.len() < PRELOAD_CONFIRMS_IN_FLIGHT {
                let confirm = channel
                    .basic_publish(
                        "",
                        &self.queue_name,
                        BasicPublishOptions::default(),
                        payload.as_bytes(),
                        persistent(),
                    )
                    .await?;
                pending.push(confirm);
                sent += 1;
            }
            if let Some(confirmation) = pending.next().await {
                if !confirmation?.is_ack() {
                    nacked += 1;
                }
            }
        }
        connection.close(REPLY_SUCCESS, "preload done").await?;
        if nacked > 0 {
            bail!("{nacked} publishes were nacked");
        }
        Ok(())
    }

    async fn consume(
        &self,
        consumers: usize,
        target: u64,
        timeout: Duration,
    ) -> Result<ConsumeReport> {
        let progress = ConsumeProgress::new(target);
        let start_gate = Arc::new(Barrier::new(consumers + 1));
        // Connections are set up before the gate opens, so set-up is not timed.
        let mut channels = Vec::with_capacity(consumers);
        for _ in 0..consumers {
            channels.push(self.consumer_channel(self.prefetch).await?);
        }
        let mut workers = Vec::with_capacity(consumers);
        for (index, (connection, channel)) in channels.into_iter().enumerate() {
            let progress = progress.clone();
            let start_gate = start_gate.clone();
            let queue_name = self.queue_name.clone();
            let ack_batch = self.ack_batch;
            workers.push(tokio::spawn(async move {
                start_gate.wait().await;
                let deadline = Instant::now() + timeout;
                let mut consumer = channel
                    .basic_consume(
                        &queue_name,
                        &format!("bench-{index}"),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                while !progress.is_done() && Instant::now() < deadline {
                    if let Some((payloads, last_tag)) = next_batch(&mut consumer, ack_batch).await?
                    {
                        ack_up_to(&channel, last_tag).await?;
                        progress.add(payloads.len() as u64);
                    }
                }
                // The close reply comes after the server has handled our earlier acks.
                channel.close(REPLY_SUCCESS, "consume done").await?;
                connection.close(REPLY_SUCCESS, "consume done").await?;
                anyhow::Ok(())
            }));
        }
        start_gate.wait().await;
        let start = Instant::now();
        for worker in workers {
            worker.await??;
        }
        let elapsed = progress.finished_at().unwrap_or_else(Instant::now) - start;
        let (connection, channel) = self.connect().await?;
        let left = channel
            .queue_declare(
                &self.queue_name,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?
            .message_count();
        connection.close(REPLY_SUCCESS, "check done").await?;
        Ok(ConsumeReport {
            acked: progress.acked(),
            elapsed,
            left: u64::from(left),
        })
    }

    async fn latency(
        &self,
        clock: common::Clock,
        rate_per_s: u64,
        duration: Duration,
        drain_grace: Duration,
    ) -> Result<LatencyReport> {
        let total = (rate_per_s as f64 * duration.as_secs_f64()).round() as u64;
        let (consumer_connection, consumer_channel) = self.consumer_channel(self.prefetch).await?;
        let mut consumer = self
            .start_consuming(&consumer_channel, "bench-latency")
            .await?;
        let ack_batch = self.ack_batch;
        let stop = common::StopFlag::default();
        let consumer_stop = stop.clone();
        let consumer_task = tokio::spawn(async move {
            let mut histogram = common::latency_histogram()?;
            let deadline = common::consumer_hard_deadline(duration, drain_grace);
            let mut received = 0u64;
            while received < total
                && !common::stop_requested(&consumer_stop)
                && Instant::now() < deadline
            {
                if let Some((payloads, last_tag)) = next_batch(&mut consumer, ack_batch).await? {
                    for payload in &payloads {
                        common::record_latency(&mut histogram, clock.age_us(payload)?);
                    }
                    ack_up_to(&consumer_channel, last_tag).await?;
                    received += payloads.len() as u64;
                }
            }
            consumer_channel
                .close(REPLY_SUCCESS, "latency done")
                .await?;
            consumer_connection
                .close(REPLY_SUCCESS, "latency done")
                .await?;
            anyhow::Ok(histogram)
        });

        let (publish_connection, publish_channel) = self.connect().await?;
        publish_channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        // Confirms are awaited by their own task so the publisher keeps its schedule.
        let (confirm_sender, mut confirm_receiver) = mpsc::channel::<
            lapin::publisher_confirm::PublisherConfirm,
        >(LATENCY_CONFIRMS_QUEUED_MAX);
        let confirm_task = tokio::spawn(async move {
            let mut acked = 0u64;
            while let Some(confirm) = confirm_receiver.recv().await {
                if confirm.await?.is_ack() {
                    acked += 1;
                }
            }
            anyhow::Ok(acked)
        });
        let start = Instant::now();
        for index in 0..total {
            if Instant::now() > common::publish_deadline(start, duration) {
                break;
            }
            tokio::time::sleep_until(common::due_at(start, index, rate_per_s).into()).await;
            let payload = clock.stamped_payload();
            let confirm = publish_channel
                .basic_publish(
                    "",
                    &self.queue_name,
                    BasicPublishOptions::default(),
                    payload.as_bytes(),
                    persistent(),
                )
                .await?;
            confirm_sender
                .send(confirm)
                .await
                .map_err(|_| anyhow::anyhow!("confirm waiter stopped early"))?;
        }
        drop(confirm_sender);
        let publish_elapsed = start.elapsed();
        let published = confirm_task.await??;
        publish_connection
            .close(REPLY_SUCCESS, "latency done")
            .await?;
        let histogram = common::finish_latency_consumer(consumer_task, &stop, drain_grace).await?;
        Ok(LatencyReport {
            published,
            histogram,
            publish_elapsed,
        })
    }

    async fn consume_one_at_a_time(&self, count_max: u64, duration: Duration) -> Result<u64> {
        let (connection, channel) = self.consumer_channel(1).await?;
        let mut consumer = self.start_consuming(&channel, "bench-ackcheck").await?;
        let deadline = Instant::now() + duration;
        let mut acked = 0u64;
        while acked < count_max && Instant::now() < deadline {
            if let Some((_, last_tag)) = next_batch(&mut consumer, 1).await? {
                channel
                    .basic_ack(last_tag, BasicAckOptions { multiple: false })
                    .await?;
                acked += 1;
            }
        }
        channel.close(REPLY_SUCCESS, "ackcheck done").await?;
        connection.close(REPLY_SUCCESS, "ackcheck done").await?;
        Ok(acked)
    }

    async fn remove(&self) -> Result<()> {
        let (connection, channel) = self.connect().await?;
        channel
            .queue_delete(&self.queue_name, QueueDeleteOptions::default())
            .await?;
        connection.close(REPLY_SUCCESS, "remove done").await?;
        Ok(())
    }
}
