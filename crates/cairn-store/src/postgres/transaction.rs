//! Transactions that begin safely under a deadline.
//!
//! Every database operation runs under a deadline that drops its future
//! when PostgreSQL does not answer in time. sqlx cannot take that for
//! `BEGIN`: if the future is dropped after `BEGIN` was sent but before its
//! answer was read, sqlx does not count the transaction, queues no
//! rollback, and returns the connection to the pool *inside* a transaction.
//! Every later statement on it — `cairn_put_facts` among them — then runs
//! in that transaction and is answered as done without being committed:
//! other servers do not see the facts (the reliability checker found this
//! as predecessors reported missing after their write was acknowledged),
//! and a crash would lose them. A connection whose `BEGIN` was not answered
//! is therefore closed, never returned to the pool; PostgreSQL rolls back
//! what it held.
//!
//! Every transaction ends through [`commit`], which turns the statement
//! timeout off first. A `COMMIT` that waits for a synchronous standby and
//! is cancelled answers *success*, with only a warning ("canceling wait for
//! synchronous replication"), although the standby may never have received
//! it: the write would be acknowledged on the primary alone, and lost with
//! it at a failover. PostgreSQL itself switches the statement timeout off
//! before it commits (`finish_xact_command`, checked on 15 by
//! `postgres_failover.rs`), so this is a second lock on the same door, for
//! settings or versions that might time the commit out. The
//! implicit commit of a single statement (`cairn_put_facts` on the pool)
//! has only PostgreSQL's. Cairn itself never sends a cancel request: its
//! own deadline drops the request, which is then not acknowledged.

use sqlx::pool::PoolConnection;
use sqlx::{Acquire, PgPool, Postgres, Transaction};

/// A pooled connection for one transaction.
pub(crate) struct TransactionConnection {
    connection: PoolConnection<Postgres>,
    begun: bool,
}

impl TransactionConnection {
    /// Takes a connection from the pool.
    pub(crate) async fn acquire(pool: &PgPool) -> Result<TransactionConnection, sqlx::Error> {
        Ok(TransactionConnection {
            connection: pool.acquire().await?,
            begun: false,
        })
    }

    /// Begins the transaction. Once `BEGIN` is answered, sqlx rolls the
    /// transaction back if it is dropped unfinished, and the connection can
    /// go back to the pool.
    pub(crate) async fn begin(&mut self) -> Result<Transaction<'_, Postgres>, sqlx::Error> {
        let transaction = (&mut self.connection).begin().await?;
        self.begun = true;
        Ok(transaction)
    }
}

/// Commits `transaction` with the statement timeout off, so that no timeout
/// can cut the wait for a synchronous standby short into a false success
/// (see the module documentation).
pub(crate) async fn commit(mut transaction: Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
    sqlx::query("SET LOCAL statement_timeout = 0")
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await
}

impl Drop for TransactionConnection {
    fn drop(&mut self) {
        if !self.begun {
            self.connection.close_on_drop();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::{poll_fn, Future};
    use std::pin::pin;
    use std::task::Poll;
    use std::time::Duration;

    use sqlx::postgres::PgPoolOptions;

    use super::*;
    use crate::postgres::testing::TestDatabase;

    async fn pool_of_one(url: &str) -> PgPool {
        PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .unwrap()
    }

    async fn open_transactions(observer: &PgPool) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND state = 'idle in transaction'",
        )
        .fetch_one(observer)
        .await
        .unwrap()
    }

    /// Polls `future` until PostgreSQL has a transaction open (its `BEGIN`
    /// was sent and run), then drops it before it reads the answer, as a
    /// deadline does.
    async fn drop_once_begun(future: impl Future, observer: &PgPool) {
        let mut future = pin!(future);
        for _ in 0..1_000 {
            let ready =
                poll_fn(|context| Poll::Ready(future.as_mut().poll(context).is_ready())).await;
            assert!(
                !ready,
                "the transaction finished before it could be cut off"
            );
            if open_transactions(observer).await == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("BEGIN was never sent");
    }

    #[tokio::test]
    async fn a_begin_cut_off_before_its_answer_leaves_no_transaction_open() {
        let Some(database) = TestDatabase::create().await else {
            return;
        };
        // One connection, so that the next statement gets the same one
        // unless it was closed.
        let pool = pool_of_one(&database.url()).await;
        let observer = pool_of_one(&database.url()).await;
        sqlx::query("CREATE TABLE cut_off (x int)")
            .execute(&pool)
            .await
            .unwrap();
        let begin = async {
            let mut connection = TransactionConnection::acquire(&pool).await.unwrap();
            let _transaction = connection.begin().await.unwrap();
            // Never reached: the future is dropped while `BEGIN` is unanswered.
            std::future::pending::<()>().await;
        };
        drop_once_begun(begin, &observer).await;
        sqlx::query("INSERT INTO cut_off VALUES (1)")
            .execute(&pool)
            .await
            .unwrap();
        let committed: i64 = sqlx::query_scalar("SELECT count(*) FROM cut_off")
            .fetch_one(&observer)
            .await
            .unwrap();
        assert_eq!(
            committed, 1,
            "the insert ran inside an abandoned transaction"
        );
    }
}
