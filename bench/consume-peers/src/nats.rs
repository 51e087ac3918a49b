//! NATS JetStream peer on `async-nats`: a file-backed, single-replica stream, preloaded with
//! publishes that each wait for their PubAck, and a durable pull consumer with explicit acks.
//!
//! Consumers take what is ready (up to the ack batch), acknowledge every message, and send the
//! last acknowledgement of each batch as a double ack (`AckSync`): the server answers it after
//! it has handled the ack, and because one connection's acks are handled in order, the answer
//! also covers the earlier plain acks of the batch. With `--nats-ack single` every ack is a
//! plain, unanswered one.
//!
//! With the default limits retention consuming does not remove messages, so the consume phases
//! after the first reuse the preloaded backlog, each with a fresh durable consumer that starts
//! from the first message (preloading with one fsync per message is the slow part here).

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use async_nats::jetstream::{self, consumer, stream, Context};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use tokio::sync::{mpsc, Barrier};

use crate::common::{
    self, backlog_payload, ConsumeProgress, ConsumeReport, LatencyReport, POLL_INTERVAL,
};

/// Stream that holds the bench messages.
const STREAM_NAME: &str = "CAIRN_CONSUME_BENCH";
/// Subject the bench messages are published to.
const SUBJECT: &str = "cairn.consume.bench";
/// Durable pull consumer shared by all consumer tasks of a phase.
const CONSUMER_NAME: &str = "bench";
/// Unacknowledged publishes allowed in flight while preloading.
const PRELOAD_ACKS_IN_FLIGHT: usize = 256;
/// Messages a consumer may have delivered but unacknowledged, across all consumer tasks;
/// well above prefetch × consumers so that it never throttles the measured consumers.
const ACK_PENDING_MAX: i64 = 100_000;
/// Bound on PubAck futures buffered between the latency publisher and its ack waiter.
const LATENCY_ACKS_QUEUED_MAX: usize = 100_000;

/// The NATS JetStream peer.
pub struct Nats {
    url: String,
    prefetch: u16,
    ack_batch: usize,
    double_ack: bool,
    workqueue: bool,
}

type PullMessages = consumer::pull::Stream;

impl Nats {
    /// A peer on `url` (nats://…).
    pub fn new(
        url: &str,
        prefetch: u16,
        ack_batch: usize,
        double_ack: bool,
        workqueue: bool,
    ) -> Self {
        Self {
            url: url.into(),
            prefetch,
            ack_batch,
            double_ack,
            workqueue,
        }
    }

    async fn connect(&self) -> Result<Context> {
        let client = async_nats::connect(&self.url)
            .await
            .with_context(|| format!("connecting to {}", self.url))?;
        Ok(jetstream::ContextBuilder::new()
            .max_ack_inflight(PRELOAD_ACKS_IN_FLIGHT * 2)
            .build(client))
    }

    /// Creates the durable pull consumer of a phase (from the start of the stream).
    async fn create_consumer(&self, context: &Context) -> Result<()> {
        let stream = context.get_stream(STREAM_NAME).await?;
        let _ = stream.delete_consumer(CONSUMER_NAME).await;
        stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(CONSUMER_NAME.into()),
                ack_policy: consumer::AckPolicy::Explicit,
                deliver_policy: consumer::DeliverPolicy::All,
                max_ack_pending: ACK_PENDING_MAX,
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// Pulls messages for one consumer task, `prefetch` at a time.
    async fn pull(&self, context: &Context, prefetch: u16) -> Result<PullMessages> {
        let consumer: consumer::PullConsumer = context
            .get_stream(STREAM_NAME)
            .await?
            .get_consumer(CONSUMER_NAME)
            .await
            .map_err(|error| anyhow::anyhow!(error))?;
        Ok(consumer
            .stream()
            .max_messages_per_batch(usize::from(prefetch))
            .messages()
            .await?)
    }

    async fn messages_left(&self, context: &Context) -> Result<u64> {
        let stream = context.get_stream(STREAM_NAME).await?;
        let info = stream.consumer_info(CONSUMER_NAME).await?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }
}

/// Waits up to `POLL_INTERVAL` for a message, then takes whatever else is ready, up to
/// `batch_max` in all.
async fn next_batch(
    messages: &mut PullMessages,
    batch_max: usize,
) -> Result<Vec<jetstream::Message>> {
    let first = match tokio::time::timeout(POLL_INTERVAL, messages.next()).await {
        Err(_) => return Ok(Vec::new()),
        Ok(None) => bail!("pull consumer stream ended"),
        Ok(Some(message)) => message.map_err(|error| anyhow::anyhow!(error))?,
    };
    let mut batch = vec![first];
    while batch.len() < batch_max {
        match messages.next().now_or_never() {
            Some(Some(message)) => batch.push(message.map_err(|error| anyhow::anyhow!(error))?),
            Some(None) => bail!("pull consumer stream ended"),
            None => break,
        }
    }
    Ok(batch)
}

/// Acknowledges every message of `batch`; with `double_ack` the last one waits for the server.
async fn ack_batch(batch: &[jetstream::Message], double_ack: bool) -> Result<()> {
    let Some((last, earlier)) = batch.split_last() else {
        return Ok(());
    };
    for message in earlier {
        message
            .ack()
            .await
            .map_err(|error| anyhow::anyhow!(error))?;
    }
    if double_ack {
        last.double_ack()
            .await
            .map_err(|error| anyhow::anyhow!(error))?;
    } else {
        last.ack().await.map_err(|error| anyhow::anyhow!(error))?;
    }
    Ok(())
}

impl crate::Peer for Nats {
    fn key(&self) -> &str {
        "nats"
    }

    fn settings(&self) -> String {
        format!(
            "file,replicas=1,retention={},pull,ack=explicit,{},pull_batch={},ack_batch_max={}",
            if self.workqueue {
                "workqueue"
            } else {
                "limits"
            },
            if self.double_ack {
                "double_ack_last_of_batch"
            } else {
                "plain_ack"
            },
            self.prefetch,
            self.ack_batch
        )
    }

    /// With limits retention acks only move the consumer's floor; the messages stay.
    fn backlog_survives_consume(&self) -> bool {
        !self.workqueue
    }

    async fn reset(&self) -> Result<()> {
        let context = self.connect().await?;
        let _ = context.delete_stream(STREAM_NAME).await;
        context
            .create_stream(stream::Config {
                name: STREAM_NAME.into(),
                subjects: vec![SUBJECT.into()],
                storage: stream::StorageType::File,
                num_replicas: 1,
                retention: if self.workqueue {
                    stream::RetentionPolicy::WorkQueue
                } else {
                    stream::RetentionPolicy::Limits
                },
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    async fn preload(&self, count: u64) -> Result<()> {
        let context = self.connect().await?;
        let payload = Bytes::from(backlog_payload());
        let mut pending = FuturesUnordered::new();
        let mut sent = 0u64;
        while sent < count || !pending.is_empty() {
            while sent < count && pending.len() < PRELOAD_ACKS_IN_FLIGHT {
                pending.push(
                    context
                        .publish(SUBJECT, payload.clone())
                        .await?
                        .into_future(),
                );
                sent += 1;
            }
            if let Some(ack) = pending.next().await {
                ack?;
            }
        }
        Ok(())
    }

    async fn consume(
        &self,
        consumers: usize,
        target: u64,
        timeout: Duration,
    ) -> Result<ConsumeReport> {
        let admin = self.connect().await?;
        self.create_consumer(&admin).await?;
        let progress = ConsumeProgress::new(target);
        let start_gate = Arc::new(Barrier::new(consumers + 1));
        // One connection per consumer task, set up before the gate opens (not timed).
        let mut contexts = Vec::with_capacity(consumers);
        for _ in 0..consumers {
            contexts.push(self.connect().await?);
        }
        let mut workers = Vec::with_capacity(consumers);
        for context in contexts {
            let progress = progress.clone();
            let start_gate = start_gate.clone();
            let consumer: consumer::PullConsumer = context
                .get_stream(STREAM_NAME)
                .await?
                .get_consumer(CONSUMER_NAME)
                .await
                .map_err(|error| anyhow::anyhow!(error))?;
            let (prefetch, ack_batch_max, double_ack) =
                (self.prefetch, self.ack_batch, self.double_ack);
            workers.push(tokio::spawn(async move {
                start_gate.wait().await;
                let deadline = Instant::now() + timeout;
                let mut messages = consumer
                    .stream()
                    .max_messages_per_batch(usize::from(prefetch))
                    .messages()
                    .await?;
                while !progress.is_done() && Instant::now() < deadline {
                    let batch = next_batch(&mut messages, ack_batch_max).await?;
                    ack_batch(&batch, double_ack).await?;
                    progress.add(batch.len() as u64);
                }
                // Plain acks are fire-and-forget: flush them before the connection goes.
                context.client().flush().await?;
                anyhow::Ok(())
            }));
        }
        start_gate.wait().await;
        let start = Instant::now();
        for worker in workers {
            worker.await??;
        }
        let elapsed = progress.finished_at().unwrap_or_else(Instant::now) - start;
        Ok(ConsumeReport {
            acked: progress.acked(),
            elapsed,
            left: self.messages_left(&admin).await?,
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
        let admin = self.connect().await?;
        self.create_consumer(&admin).await?;
        let consumer_context = self.connect().await?;
        let mut messages = self.pull(&consumer_context, self.prefetch).await?;
        let (ack_batch_max, double_ack) = (self.ack_batch, self.double_ack);
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
                let batch = next_batch(&mut messages, ack_batch_max).await?;
                for message in &batch {
                    common::record_latency(&mut histogram, clock.age_us(&message.payload)?);
                }
                ack_batch(&batch, double_ack).await?;
                received += batch.len() as u64;
            }
            consumer_context.client().flush().await?;
            anyhow::Ok(histogram)
        });

        let publisher = self.connect().await?;
        // PubAcks are awaited by their own task so the publisher keeps its schedule.
        let (ack_sender, mut ack_receiver) =
            mpsc::channel::<jetstream::context::PublishAckFuture>(LATENCY_ACKS_QUEUED_MAX);
        let ack_task = tokio::spawn(async move {
            let mut acked = 0u64;
            while let Some(ack) = ack_receiver.recv().await {
                if ack.await.is_ok() {
                    acked += 1;
                }
            }
            acked
        });
        let start = Instant::now();
        for index in 0..total {
            if Instant::now() > common::publish_deadline(start, duration) {
                break;
            }
            tokio::time::sleep_until(common::due_at(start, index, rate_per_s).into()).await;
            let payload = Bytes::from(clock.stamped_payload());
            ack_sender
                .send(publisher.publish(SUBJECT, payload).await?)
                .await
                .map_err(|_| anyhow::anyhow!("PubAck waiter stopped early"))?;
        }
        drop(ack_sender);
        let publish_elapsed = start.elapsed();
        let published = ack_task.await?;
        let histogram = common::finish_latency_consumer(consumer_task, &stop, drain_grace).await?;
        Ok(LatencyReport {
            published,
            histogram,
            publish_elapsed,
        })
    }

    async fn consume_one_at_a_time(&self, count_max: u64, duration: Duration) -> Result<u64> {
        let admin = self.connect().await?;
        self.create_consumer(&admin).await?;
        let context = self.connect().await?;
        let mut messages = self.pull(&context, 1).await?;
        let deadline = Instant::now() + duration;
        let mut acked = 0u64;
        while acked < count_max && Instant::now() < deadline {
            let batch = next_batch(&mut messages, 1).await?;
            ack_batch(&batch, self.double_ack).await?;
            acked += batch.len() as u64;
        }
        context.client().flush().await?;
        Ok(acked)
    }

    async fn remove(&self) -> Result<()> {
        let context = self.connect().await?;
        context.delete_stream(STREAM_NAME).await?;
        Ok(())
    }
}
