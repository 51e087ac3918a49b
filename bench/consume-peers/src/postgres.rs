//! PostgreSQL peer on `tokio-postgres`: a queue table
//! `q (id bigserial primary key, payload text, not_before timestamptz default now())` consumed
//! with `FOR UPDATE SKIP LOCKED`, with `synchronous_commit` on, so that a consumer's commit is
//! its durable acknowledgement.
//!
//! Two consume variants:
//!   * one step (default): `DELETE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n)
//!     RETURNING id, payload` as a single-statement transaction — pull and ack in one round trip;
//!   * two steps: `BEGIN; SELECT … FOR UPDATE SKIP LOCKED LIMIT n; DELETE … WHERE id = ANY(…);
//!     COMMIT`, as a handler that looks at the rows before it acknowledges them would do.
//!
//! For the latency phase a statement trigger sends `NOTIFY` on insert and the consumer, which
//! `LISTEN`s, drains the table after each wake-up (with a short timeout as a safety net). The
//! commits of notifying transactions are serialized by PostgreSQL (a global lock held through
//! the commit), so `--postgres-wakeup poll` offers a consumer that polls every millisecond
//! instead, without trigger.
//! The latency publisher spreads its fixed-rate inserts over a few connections, since one
//! connection can commit only one insert per WAL flush.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::future::poll_fn;
use tokio::sync::{Barrier, Notify};
use tokio_postgres::{AsyncMessage, Client, NoTls, Statement};

use crate::common::{self, backlog_payload, ConsumeProgress, ConsumeReport, LatencyReport};

/// Rows inserted per statement while preloading.
const PRELOAD_ROWS_PER_STATEMENT: u64 = 10_000;
/// Pause of a consumer that found no unlocked row while others still hold the last ones.
const EMPTY_QUEUE_PAUSE: Duration = Duration::from_millis(1);
/// Pause of the polling latency consumer after it found the table drained.
const POLL_WAKEUP_INTERVAL: Duration = Duration::from_millis(1);
/// Longest wait for a NOTIFY before the latency consumer looks at the table anyway.
const NOTIFY_WAIT_MAX: Duration = Duration::from_millis(100);
/// Publisher connections of the latency phase.
const LATENCY_PUBLISHERS: u64 = 4;
/// Channel name of the insert notifications.
const NOTIFY_CHANNEL: &str = "cairn_bench_q";

const SCHEMA_SQL: &str = "
DROP TABLE IF EXISTS q;
CREATE TABLE q (id bigserial PRIMARY KEY, payload text, not_before timestamptz DEFAULT now());
";
/// Created only for the latency phase with NOTIFY wake-ups (dropped with the table).
const NOTIFY_TRIGGER_SQL: &str = "
CREATE OR REPLACE FUNCTION q_notify() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_notify('cairn_bench_q', ''); RETURN NULL; END $$;
CREATE TRIGGER q_notify AFTER INSERT ON q FOR EACH STATEMENT EXECUTE FUNCTION q_notify();
";
const DELETE_RETURNING_SQL: &str = "DELETE FROM q WHERE id IN \
(SELECT id FROM q ORDER BY id FOR UPDATE SKIP LOCKED LIMIT $1) RETURNING id, payload";
const SELECT_LOCKED_SQL: &str =
    "SELECT id, payload FROM q ORDER BY id FOR UPDATE SKIP LOCKED LIMIT $1";
const DELETE_IDS_SQL: &str = "DELETE FROM q WHERE id = ANY($1)";

/// The PostgreSQL peer.
pub struct Postgres {
    url: String,
    batch: i64,
    two_step: bool,
    notify_wakeup: bool,
}

/// Opens a connection; its driver task wakes `notify` on every notification.
async fn connect(url: &str, notify: Option<Arc<Notify>>) -> Result<Client> {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(async move {
        while let Some(message) = poll_fn(|context| connection.poll_message(context)).await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if let Some(notify) = &notify {
                        notify.notify_one();
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    eprintln!("consume-peers: postgres connection error: {error}");
                    break;
                }
            }
        }
    });
    Ok(client)
}

/// One consumer connection with its statements prepared.
struct QueueConsumer {
    client: Client,
    delete_returning: Statement,
    select_locked: Statement,
    delete_ids: Statement,
    batch: i64,
    two_step: bool,
}

impl QueueConsumer {
    async fn open(
        url: &str,
        batch: i64,
        two_step: bool,
        notify: Option<Arc<Notify>>,
    ) -> Result<Self> {
        let client = connect(url, notify).await?;
        Ok(Self {
            delete_returning: client.prepare(DELETE_RETURNING_SQL).await?,
            select_locked: client.prepare(SELECT_LOCKED_SQL).await?,
            delete_ids: client.prepare(DELETE_IDS_SQL).await?,
            client,
            batch,
            two_step,
        })
    }

    /// Takes up to `batch` rows and acknowledges them durably (the commit); returns payloads.
    async fn take(&mut self) -> Result<Vec<String>> {
        let batch = self.batch;
        if !self.two_step {
            let rows = self.client.query(&self.delete_returning, &[&batch]).await?;
            return rows.iter().map(|row| Ok(row.try_get(1)?)).collect();
        }
        let transaction = self.client.transaction().await?;
        let rows = transaction.query(&self.select_locked, &[&batch]).await?;
        let ids = rows
            .iter()
            .map(|row| row.try_get::<_, i64>(0))
            .collect::<Result<Vec<_>, _>>()?;
        transaction.execute(&self.delete_ids, &[&ids]).await?;
        transaction.commit().await?;
        rows.iter().map(|row| Ok(row.try_get(1)?)).collect()
    }
}

impl Postgres {
    /// A peer on `url` (postgres://…); `two_step` selects the select-then-delete variant;
    /// `notify_wakeup` wakes the latency consumer by NOTIFY instead of polling.
    pub fn new(url: &str, batch: usize, two_step: bool, notify_wakeup: bool) -> Self {
        Self {
            url: url.into(),
            batch: i64::try_from(batch).unwrap_or(i64::MAX),
            two_step,
            notify_wakeup,
        }
    }
}

impl crate::Peer for Postgres {
    fn key(&self) -> &str {
        if self.two_step {
            "postgres_twostep"
        } else {
            "postgres"
        }
    }

    fn settings(&self) -> String {
        format!(
            "table_queue,skip_locked,{},synchronous_commit=on,batch={},latency_wakeup={}",
            if self.two_step {
                "select_then_delete_in_one_transaction"
            } else {
                "delete_returning_one_statement"
            },
            self.batch,
            if self.notify_wakeup {
                "notify".to_string()
            } else {
                format!("poll_{}ms", POLL_WAKEUP_INTERVAL.as_millis())
            }
        )
    }

    async fn reset(&self) -> Result<()> {
        let client = connect(&self.url, None).await?;
        client.batch_execute(SCHEMA_SQL).await?;
        Ok(())
    }

    async fn preload(&self, count: u64) -> Result<()> {
        let client = connect(&self.url, None).await?;
        let insert = client
            .prepare("INSERT INTO q (payload) SELECT $1 FROM generate_series(1, $2::int)")
            .await?;
        let payload = backlog_payload();
        let mut inserted = 0u64;
        while inserted < count {
            let rows = (count - inserted).min(PRELOAD_ROWS_PER_STATEMENT);
            client
                .execute(&insert, &[&payload, &i32::try_from(rows)?])
                .await?;
            inserted += rows;
        }
        // Start every consume phase from the same state: backlog flushed, statistics fresh.
        client.batch_execute("ANALYZE q; CHECKPOINT;").await?;
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
        let mut queue_consumers = Vec::with_capacity(consumers);
        for _ in 0..consumers {
            queue_consumers
                .push(QueueConsumer::open(&self.url, self.batch, self.two_step, None).await?);
        }
        let mut workers = Vec::with_capacity(consumers);
        for mut queue_consumer in queue_consumers {
            let progress = progress.clone();
            let start_gate = start_gate.clone();
            workers.push(tokio::spawn(async move {
                start_gate.wait().await;
                let deadline = Instant::now() + timeout;
                while !progress.is_done() && Instant::now() < deadline {
                    let payloads = queue_consumer.take().await?;
                    if payloads.is_empty() {
                        tokio::time::sleep(EMPTY_QUEUE_PAUSE).await;
                    }
                    progress.add(payloads.len() as u64);
                }
                anyhow::Ok(())
            }));
        }
        start_gate.wait().await;
        let start = Instant::now();
        for worker in workers {
            worker.await??;
        }
        let elapsed = progress.finished_at().unwrap_or_else(Instant::now) - start;
        let client = connect(&self.url, None).await?;
        let left: i64 = client
            .query_one("SELECT count(*) FROM q", &[])
            .await?
            .try_get(0)?;
        Ok(ConsumeReport {
            acked: progress.acked(),
            elapsed,
            left: u64::try_from(left)?,
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
        let wakeup = Arc::new(Notify::new());
        let mut queue_consumer =
            QueueConsumer::open(&self.url, self.batch, self.two_step, Some(wakeup.clone())).await?;
        let notify_wakeup = self.notify_wakeup;
        if notify_wakeup {
            queue_consumer
                .client
                .batch_execute(&format!("{NOTIFY_TRIGGER_SQL} LISTEN {NOTIFY_CHANNEL};"))
                .await?;
        }
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
                let payloads = queue_consumer.take().await?;
                for payload in &payloads {
                    common::record_latency(&mut histogram, clock.age_us(payload.as_bytes())?);
                }
                received += payloads.len() as u64;
                if (payloads.len() as i64) < queue_consumer.batch {
                    // Drained: sleep until the next insert is committed (or the safety timeout).
                    if notify_wakeup {
                        let _ = tokio::time::timeout(NOTIFY_WAIT_MAX, wakeup.notified()).await;
                    } else {
                        tokio::time::sleep(POLL_WAKEUP_INTERVAL).await;
                    }
                }
            }
            anyhow::Ok(histogram)
        });

        // A commit per insert takes one flush; several publisher connections, each sending
        // every LATENCY_PUBLISHERS-th message, keep the fixed rate when a flush is slow.
        let mut publishers = Vec::with_capacity(LATENCY_PUBLISHERS as usize);
        for _ in 0..LATENCY_PUBLISHERS {
            let client = connect(&self.url, None).await?;
            let insert = client
                .prepare("INSERT INTO q (payload) VALUES ($1)")
                .await?;
            publishers.push((client, insert));
        }
        let start = Instant::now();
        let mut publisher_tasks = Vec::with_capacity(publishers.len());
        for (first_index, (client, insert)) in (0u64..).zip(publishers) {
            publisher_tasks.push(tokio::spawn(async move {
                let mut published = 0u64;
                for index in (first_index..total).step_by(LATENCY_PUBLISHERS as usize) {
                    if Instant::now() > common::publish_deadline(start, duration) {
                        break;
                    }
                    tokio::time::sleep_until(common::due_at(start, index, rate_per_s).into()).await;
                    let payload = clock.stamped_payload();
                    // Autocommit: the insert is acknowledged after its commit is flushed.
                    client.execute(&insert, &[&payload]).await?;
                    published += 1;
                }
                anyhow::Ok(published)
            }));
        }
        let mut published = 0u64;
        for task in publisher_tasks {
            published += task.await??;
        }
        let publish_elapsed = start.elapsed();
        let histogram = common::finish_latency_consumer(consumer_task, &stop, drain_grace).await?;
        Ok(LatencyReport {
            published,
            histogram,
            publish_elapsed,
        })
    }

    async fn consume_one_at_a_time(&self, count_max: u64, duration: Duration) -> Result<u64> {
        let mut queue_consumer = QueueConsumer::open(&self.url, 1, self.two_step, None).await?;
        let deadline = Instant::now() + duration;
        let mut acked = 0u64;
        while acked < count_max && Instant::now() < deadline {
            let taken = queue_consumer.take().await?.len() as u64;
            if taken == 0 {
                break;
            }
            acked += taken;
        }
        Ok(acked)
    }

    async fn remove(&self) -> Result<()> {
        let client = connect(&self.url, None).await?;
        client
            .batch_execute("DROP TABLE IF EXISTS q; DROP FUNCTION IF EXISTS q_notify();")
            .await?;
        Ok(())
    }
}
