//! Blobs in PostgreSQL, as chunk rows, so that a blob written through one
//! server is readable through every other and replicated with the database.
//!
//! The tables and the locking that keeps cleanup from racing a live upload
//! are described in `migrations/0003_blobs.sql`. Here: the upload
//! ([`PostgresBlobWriter`]: buffer up to [`CHUNK_BYTES`], insert each full
//! chunk, finish in one transaction), the chunk-by-chunk read
//! ([`chunks`]), and the removal of uploads that were abandoned. Hashing,
//! the size limit and the verification of what is read are the backend-free
//! part, in `crate::blobs`.

use std::time::Duration;

use bytes::Bytes;
use cairn_fact::Hash;
use futures_util::Stream;
use sqlx::{PgPool, Row};

use super::errors::read_error;
use super::transaction::{self, TransactionConnection};
use crate::blobs::BlobError;
use crate::error::ReadError;

/// How long one database operation of a blob (a chunk, the finishing
/// transaction, a lookup) may take. Without it, a database that stops
/// answering (a partition, where PostgreSQL's statement timeout cannot reach
/// us) would hold an upload or download for the server's one-hour blob
/// timeout; with it the request fails as unavailable (503).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one database operation of a blob within [`OPERATION_TIMEOUT`].
async fn bounded<T>(
    operation: impl std::future::Future<Output = Result<T, BlobError>>,
) -> Result<T, BlobError> {
    tokio::time::timeout(OPERATION_TIMEOUT, operation)
        .await
        .unwrap_or_else(|_| {
            Err(BlobError::unavailable(format!(
                "no answer from the database within {} s",
                OPERATION_TIMEOUT.as_secs()
            )))
        })
}

/// Bytes of one chunk row (the last chunk of a blob may be shorter).
const CHUNK_BYTES: usize = 1024 * 1024;

/// Age after which an upload still in progress counts as abandoned (its
/// server crashed, so its writer never removed it). The HTTP server gives
/// an upload at most an hour (`BLOB_TIMEOUT`); the margin keeps a live
/// upload safe even if that limit is raised a little. Removing a live
/// upload would fail it, never corrupt a blob (see the migration).
pub(crate) const ABANDONED_UPLOAD_AGE: Duration = Duration::from_secs(6 * 3600);

/// How often each server looks for abandoned uploads.
const ABANDONED_UPLOAD_SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// Uploads removed per transaction by [`remove_abandoned_uploads`].
const ABANDONED_UPLOADS_PER_BATCH: i64 = 100;

/// Batches one call of [`remove_abandoned_uploads`] runs at most; the next
/// sweep continues.
const ABANDONED_UPLOAD_BATCHES_MAX: usize = 1_000;

const _: () = assert!(CHUNK_BYTES > 0 && CHUNK_BYTES <= i32::MAX as usize);

/// A database failure as a blob error: unreachable or overloaded is
/// `Unavailable` (the server answers 503), anything else `Storage`.
pub(crate) fn blob_error(error: sqlx::Error) -> BlobError {
    match read_error(error) {
        ReadError::Unavailable { message, source } => BlobError::Unavailable { message, source },
        ReadError::Storage { message, source } | ReadError::Corrupt { message, source } => {
            BlobError::Storage { message, source }
        }
    }
}

/// An upload in progress: a row in `cairn_blob_uploads` and the chunks
/// inserted so far. Dropped without [`PostgresBlobWriter::finish`], it
/// removes itself from a spawned task.
pub(crate) struct PostgresBlobWriter {
    pool: PgPool,
    upload_id: i64,
    buffer: Vec<u8>,
    n_chunks: i32,
    bytes_written: u64,
    finished: bool,
}

impl PostgresBlobWriter {
    /// Registers a new upload.
    pub(crate) async fn start(pool: &PgPool) -> Result<PostgresBlobWriter, BlobError> {
        let upload_id: i64 = bounded(async {
            sqlx::query_scalar("INSERT INTO cairn_blob_uploads DEFAULT VALUES RETURNING upload_id")
                .fetch_one(pool)
                .await
                .map_err(blob_error)
        })
        .await?;
        Ok(PostgresBlobWriter {
            pool: pool.clone(),
            upload_id,
            buffer: Vec::with_capacity(CHUNK_BYTES),
            n_chunks: 0,
            bytes_written: 0,
            finished: false,
        })
    }

    /// Buffers `bytes`, inserting every chunk that fills up.
    pub(crate) async fn write(&mut self, mut bytes: &[u8]) -> Result<(), BlobError> {
        while !bytes.is_empty() {
            let taken = bytes.len().min(CHUNK_BYTES - self.buffer.len());
            self.buffer.extend_from_slice(&bytes[..taken]);
            bytes = &bytes[taken..];
            if self.buffer.len() == CHUNK_BYTES {
                self.insert_buffered_chunk().await?;
            }
        }
        Ok(())
    }

    async fn insert_buffered_chunk(&mut self) -> Result<(), BlobError> {
        debug_assert!(!self.buffer.is_empty() && self.buffer.len() <= CHUNK_BYTES);
        // Inserted only while the upload's row exists, and with that row
        // locked so that cleanup cannot remove the upload in between.
        //
        // The statement is its own transaction (on the pool, never inside
        // another one) and commits without waiting for the WAL flush
        // (`set_config(..., true)` lasts until that commit): a chunk needs
        // to be durable only once `finish` references it, and finish's own
        // synchronous commit flushes (and replicates) the WAL up to its
        // commit record, which comes after every chunk's. This halves the
        // upload time (one flush per chunk otherwise). A chunk lost to a
        // database crash is caught by the chunk count in `finish`.
        let inserted = bounded(async {
            sqlx::query(
                "INSERT INTO cairn_blob_chunks (upload_id, n, bytes) \
                 SELECT u.upload_id, $2, $3 FROM cairn_blob_uploads u, \
                 (SELECT set_config('synchronous_commit', 'off', true)) s \
                 WHERE u.upload_id = $1 FOR KEY SHARE OF u",
            )
            .bind(self.upload_id)
            .bind(self.n_chunks)
            .bind(self.buffer.as_slice())
            .execute(&self.pool)
            .await
            .map_err(blob_error)
        })
        .await?
        .rows_affected();
        if inserted != 1 {
            return Err(self.removed_as_abandoned());
        }
        self.n_chunks = self
            .n_chunks
            .checked_add(1)
            .ok_or_else(|| BlobError::storage("too many chunks in one blob"))?;
        self.bytes_written += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    fn removed_as_abandoned(&self) -> BlobError {
        BlobError::storage(format!(
            "upload {} was removed as abandoned before it finished",
            self.upload_id
        ))
    }

    /// Inserts the last chunk, then stores the blob under `hash` in one
    /// transaction; if the blob was already stored, that transaction
    /// deletes this upload's chunks instead. `size` is the number of bytes
    /// written.
    pub(crate) async fn finish(mut self, hash: &Hash, size: u64) -> Result<(), BlobError> {
        if !self.buffer.is_empty() {
            self.insert_buffered_chunk().await?;
        }
        if self.bytes_written != size {
            return Err(BlobError::storage(format!(
                "upload {} wrote {} bytes of a {size}-byte blob",
                self.upload_id, self.bytes_written
            )));
        }
        let size_column = i64::try_from(size)
            .map_err(|_| BlobError::storage(format!("a blob of {size} bytes is too large")))?;
        bounded(self.commit(hash, size, size_column)).await?;
        self.finished = true;
        Ok(())
    }

    /// The transaction of [`PostgresBlobWriter::finish`].
    async fn commit(&self, hash: &Hash, size: u64, size_column: i64) -> Result<(), BlobError> {
        let mut connection = TransactionConnection::acquire(&self.pool)
            .await
            .map_err(blob_error)?;
        let mut transaction = connection.begin().await.map_err(blob_error)?;
        // Deleting the upload's row first settles any race with cleanup:
        // if cleanup removed it, this finds nothing; if this goes first,
        // cleanup finds nothing.
        let registered = sqlx::query("DELETE FROM cairn_blob_uploads WHERE upload_id = $1")
            .bind(self.upload_id)
            .execute(&mut *transaction)
            .await
            .map_err(blob_error)?
            .rows_affected();
        if registered != 1 {
            return Err(self.removed_as_abandoned());
        }
        // Check what is about to be referenced before referencing it.
        let stored = sqlx::query(
            "SELECT count(*) AS n_chunks, coalesce(sum(length(bytes)), 0)::bigint AS size \
             FROM cairn_blob_chunks WHERE upload_id = $1",
        )
        .bind(self.upload_id)
        .fetch_one(&mut *transaction)
        .await
        .map_err(blob_error)?;
        let stored_chunks: i64 = stored.try_get("n_chunks").map_err(blob_error)?;
        let stored_size: i64 = stored.try_get("size").map_err(blob_error)?;
        if stored_chunks != i64::from(self.n_chunks) || stored_size != size_column {
            // Chunks commit without waiting for the flush: a database
            // that crashed and recovered during the upload may have lost
            // some. The upload fails; another one can succeed.
            return Err(BlobError::unavailable(format!(
                "upload {} holds {stored_chunks} chunks of {stored_size} bytes, \
                 expected {} chunks of {size} bytes (did the database restart?)",
                self.upload_id, self.n_chunks
            )));
        }
        let inserted = sqlx::query(
            "INSERT INTO cairn_blobs (hash, size, upload_id) VALUES ($1, $2, $3) \
             ON CONFLICT (hash) DO NOTHING",
        )
        .bind(hash.0.as_slice())
        .bind(size_column)
        .bind(self.upload_id)
        .execute(&mut *transaction)
        .await
        .map_err(blob_error)?
        .rows_affected();
        if inserted == 0 {
            sqlx::query("DELETE FROM cairn_blob_chunks WHERE upload_id = $1")
                .bind(self.upload_id)
                .execute(&mut *transaction)
                .await
                .map_err(blob_error)?;
        }
        transaction::commit(transaction).await.map_err(blob_error)
    }
}

impl Drop for PostgresBlobWriter {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Without a runtime (a writer dropped after its runtime ended) the
        // periodic sweep removes the upload once it is old enough.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = self.pool.clone();
        let upload_id = self.upload_id;
        runtime.spawn(async move {
            if let Err(error) = remove_upload(&pool, upload_id).await {
                tracing::warn!(upload_id, %error, "could not remove an unfinished blob upload");
            }
        });
    }
}

/// Removes one unfinished upload: its row and its chunks. Safe even if a
/// `finish` of the same upload is running or has committed: the delete of
/// the upload's row waits for that transaction, and chunks referenced by a
/// blob are kept.
async fn remove_upload(pool: &PgPool, upload_id: i64) -> Result<(), sqlx::Error> {
    let mut connection = TransactionConnection::acquire(pool).await?;
    let mut transaction = connection.begin().await?;
    sqlx::query("DELETE FROM cairn_blob_uploads WHERE upload_id = $1")
        .bind(upload_id)
        .execute(&mut *transaction)
        .await?;
    delete_unreferenced_chunks(&mut transaction, &[upload_id]).await?;
    transaction::commit(transaction).await
}

/// Deletes the chunks of these uploads unless a blob references them. A
/// statement of its own, so that it sees every commit up to the upload-row
/// deletes before it (read committed takes a snapshot per statement).
async fn delete_unreferenced_chunks(
    transaction: &mut sqlx::PgConnection,
    upload_ids: &[i64],
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM cairn_blob_chunks c WHERE c.upload_id = ANY($1) \
         AND NOT EXISTS (SELECT 1 FROM cairn_blobs b WHERE b.upload_id = c.upload_id)",
    )
    .bind(upload_ids)
    .execute(transaction)
    .await?
    .rows_affected())
}

/// Removes the uploads started more than `older_than` ago that have not
/// finished, with their chunks; returns how many uploads were removed.
/// Uploads being finished or removed by another server are skipped.
pub(crate) async fn remove_abandoned_uploads(
    pool: &PgPool,
    older_than: Duration,
) -> Result<u64, BlobError> {
    let mut n_removed = 0;
    for _ in 0..ABANDONED_UPLOAD_BATCHES_MAX {
        let mut connection = TransactionConnection::acquire(pool)
            .await
            .map_err(blob_error)?;
        let mut transaction = connection.begin().await.map_err(blob_error)?;
        let upload_ids: Vec<i64> = sqlx::query_scalar(
            "DELETE FROM cairn_blob_uploads WHERE upload_id IN ( \
                 SELECT upload_id FROM cairn_blob_uploads \
                 WHERE started_at < now() - make_interval(secs => $1) \
                 ORDER BY upload_id LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING upload_id",
        )
        .bind(older_than.as_secs_f64())
        .bind(ABANDONED_UPLOADS_PER_BATCH)
        .fetch_all(&mut *transaction)
        .await
        .map_err(blob_error)?;
        delete_unreferenced_chunks(&mut transaction, &upload_ids)
            .await
            .map_err(blob_error)?;
        transaction::commit(transaction).await.map_err(blob_error)?;
        n_removed += upload_ids.len() as u64;
        if (upload_ids.len() as i64) < ABANDONED_UPLOADS_PER_BATCH {
            break;
        }
    }
    if n_removed > 0 {
        tracing::info!(n_removed, "removed abandoned blob uploads");
    }
    Ok(n_removed)
}

/// Removes abandoned uploads every [`ABANDONED_UPLOAD_SWEEP_INTERVAL`],
/// forever; the caller aborts the task.
pub(crate) async fn sweep_abandoned_uploads(pool: PgPool) {
    let mut interval = tokio::time::interval(ABANDONED_UPLOAD_SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate, and the caller has just swept.
    interval.tick().await;
    loop {
        interval.tick().await;
        if let Err(error) = remove_abandoned_uploads(&pool, ABANDONED_UPLOAD_AGE).await {
            tracing::warn!(%error, "could not remove abandoned blob uploads");
        }
    }
}

/// The stored size and upload of the blob `hash`, if it is stored.
pub(crate) async fn find(pool: &PgPool, hash: &Hash) -> Result<Option<(u64, i64)>, BlobError> {
    let row = bounded(async {
        sqlx::query("SELECT size, upload_id FROM cairn_blobs WHERE hash = $1")
            .bind(hash.0.as_slice())
            .fetch_optional(pool)
            .await
            .map_err(blob_error)
    })
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let size: i64 = row.try_get("size").map_err(blob_error)?;
    let upload_id: i64 = row.try_get("upload_id").map_err(blob_error)?;
    let size = u64::try_from(size)
        .map_err(|_| BlobError::Corrupt(format!("blob {hash} has a negative size {size}")))?;
    Ok(Some((size, upload_id)))
}

/// The chunks of a stored blob in order, one query per chunk, so at most
/// one chunk is in memory. Ends after `size` bytes; a missing, empty or
/// overlong chunk ends it with an `InvalidData` error. (Whether the bytes
/// match the hash is checked by the caller's `BlobReader`.)
pub(crate) fn chunks(
    pool: PgPool,
    upload_id: i64,
    size: u64,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let state = (pool, 0_i32, size);
    futures_util::stream::try_unfold(state, move |(pool, n, remaining)| async move {
        if remaining == 0 {
            return Ok(None);
        }
        let bytes: Option<Vec<u8>> = bounded(async {
            sqlx::query_scalar(
                "SELECT bytes FROM cairn_blob_chunks WHERE upload_id = $1 AND n = $2",
            )
            .bind(upload_id)
            .bind(n)
            .fetch_optional(&pool)
            .await
            .map_err(blob_error)
        })
        .await
        .map_err(std::io::Error::other)?;
        let corrupt = |what: String| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                BlobError::Corrupt(format!("upload {upload_id}: {what}")),
            )
        };
        let bytes = bytes.ok_or_else(|| corrupt(format!("chunk {n} is missing")))?;
        if bytes.is_empty() || bytes.len() as u64 > remaining {
            return Err(corrupt(format!(
                "chunk {n} has {} bytes, with {remaining} bytes of the blob left",
                bytes.len()
            )));
        }
        let next_n = n
            .checked_add(1)
            .ok_or_else(|| corrupt("too many chunks".to_string()))?;
        let remaining = remaining - bytes.len() as u64;
        Ok(Some((Bytes::from(bytes), (pool, next_n, remaining))))
    })
}
