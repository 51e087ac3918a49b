//! The blob store's contract, checked on both backends (a directory of
//! files, and PostgreSQL in a fresh database per test): a multi-chunk
//! round trip, idempotent uploads that leave one copy (also when two run at
//! once), the empty blob, a too-large blob refused with nothing left
//! behind, a dropped writer leaving nothing behind, and corrupt or missing
//! stored bytes detected on read and never served whole. Then what only
//! PostgreSQL has: the chunk layout, the removal of abandoned uploads
//! (without touching live ones or finished blobs), an upload that lost a
//! chunk refused at finish, and an unreachable database reported as
//! `Unavailable`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cairn_fact::Hash;
use cairn_store::postgres::testing::TestDatabase;
use cairn_store::{BlobError, BlobStore, PostgresOptions, PostgresStore, Store};
use futures_util::StreamExt;
use sqlx::PgPool;

/// The blob size limit of every test store.
const BYTES_MAX: u64 = 8 * 1024 * 1024;
/// The PostgreSQL backend's chunk size (the tests check the layout).
const CHUNK_BYTES: usize = 1024 * 1024;
/// Bytes handed to one `write`: not a divisor of the chunk size, so that
/// writes straddle chunk boundaries.
const WRITE_BYTES: usize = 100_000;
/// How long a check waits for a dropped writer's clean-up task.
const CLEANUP_WAIT: Duration = Duration::from_secs(10);

/// `len` deterministic pseudo-random bytes.
fn bytes_of(seed: &str, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    blake3::Hasher::new()
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(&mut bytes);
    bytes
}

/// Where a test's blobs are, with what the checks need to look behind the
/// store's back.
enum Backend {
    Files { dir: tempfile::TempDir },
    Postgres(Box<PostgresDatabase>),
}

/// A fresh database, migrated by the facts store.
struct PostgresDatabase {
    url: String,
    facts: PostgresStore,
    // Dropped last: the database goes with it.
    _database: TestDatabase,
}

struct Fixture {
    store: BlobStore,
    backend: Backend,
}

impl Fixture {
    fn files() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&dir.path().join("blobs"), BYTES_MAX).unwrap();
        Fixture {
            store,
            backend: Backend::Files { dir },
        }
    }

    async fn postgres() -> Option<Fixture> {
        let database = TestDatabase::create().await?;
        let facts = PostgresStore::connect(&database.url(), PostgresOptions::default())
            .await
            .unwrap();
        let store = BlobStore::postgres(facts.pool().clone(), BYTES_MAX)
            .await
            .unwrap();
        Some(Fixture {
            store,
            backend: Backend::Postgres(Box::new(PostgresDatabase {
                url: database.url(),
                facts,
                _database: database,
            })),
        })
    }

    fn url(&self) -> &str {
        match &self.backend {
            Backend::Postgres(postgres) => &postgres.url,
            Backend::Files { .. } => panic!("not a PostgreSQL fixture"),
        }
    }

    fn pool(&self) -> &PgPool {
        match &self.backend {
            Backend::Postgres(postgres) => postgres.facts.pool(),
            Backend::Files { .. } => panic!("not a PostgreSQL fixture"),
        }
    }

    fn blob_dir(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("blobs")
    }

    async fn upload(&self, bytes: &[u8]) -> Result<(Hash, u64), BlobError> {
        let mut writer = self.store.writer().await?;
        for piece in bytes.chunks(WRITE_BYTES) {
            writer.write(piece).await?;
        }
        writer.finish().await
    }

    /// The blob's bytes as the reader streams them, and the error that
    /// ended the stream, if one did (nothing may follow an error).
    async fn read(&self, hash: &Hash) -> Option<(Vec<u8>, Option<std::io::Error>, u64)> {
        let (mut reader, size) = self.store.open_blob(hash).await.unwrap()?;
        let mut bytes = Vec::new();
        let mut failure = None;
        while let Some(item) = reader.next().await {
            assert!(failure.is_none(), "the stream went on after an error");
            match item {
                Ok(piece) => bytes.extend_from_slice(&piece),
                Err(error) => failure = Some(error),
            }
        }
        Some((bytes, failure, size))
    }

    /// Bytes of stored blob data (complete blobs and uploads alike).
    async fn stored_bytes(&self) -> u64 {
        match &self.backend {
            Backend::Files { dir } => files_under(&Self::blob_dir(dir))
                .iter()
                .map(|path| std::fs::metadata(path).unwrap().len())
                .sum(),
            Backend::Postgres(postgres) => sqlx::query_scalar::<_, i64>(
                "SELECT coalesce(sum(length(bytes)), 0)::bigint FROM cairn_blob_chunks",
            )
            .fetch_one(postgres.facts.pool())
            .await
            .unwrap() as u64,
        }
    }

    /// Traces of unfinished uploads: temporary files, or upload rows and
    /// chunks that no blob references.
    async fn leftovers(&self) -> u64 {
        match &self.backend {
            Backend::Files { dir } => files_under(&Self::blob_dir(dir).join("tmp")).len() as u64,
            Backend::Postgres(postgres) => sqlx::query_scalar::<_, i64>(
                "SELECT (SELECT count(*) FROM cairn_blob_uploads) + \
                            (SELECT count(*) FROM cairn_blob_chunks c WHERE NOT EXISTS \
                                (SELECT 1 FROM cairn_blobs b WHERE b.upload_id = c.upload_id))",
            )
            .fetch_one(postgres.facts.pool())
            .await
            .unwrap() as u64,
        }
    }

    /// Waits (boundedly) until unfinished uploads have removed themselves.
    async fn assert_no_leftovers_eventually(&self) {
        let started = Instant::now();
        loop {
            let leftovers = self.leftovers().await;
            if leftovers == 0 {
                return;
            }
            assert!(
                started.elapsed() < CLEANUP_WAIT,
                "{leftovers} traces of unfinished uploads remain"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Changes one stored byte of the blob (in its second megabyte).
    async fn flip_a_byte(&self, hash: &Hash) {
        match &self.backend {
            Backend::Files { dir } => {
                let hex = hash.to_hex();
                let path = Self::blob_dir(dir).join(&hex[..2]).join(&hex);
                let mut bytes = std::fs::read(&path).unwrap();
                bytes[CHUNK_BYTES + 7] ^= 1;
                std::fs::write(&path, bytes).unwrap();
            }
            Backend::Postgres(postgres) => {
                let updated = sqlx::query(
                    "UPDATE cairn_blob_chunks SET bytes = set_byte(bytes, 7, get_byte(bytes, 7) # 1) \
                     WHERE n = 1 AND upload_id = (SELECT upload_id FROM cairn_blobs WHERE hash = $1)",
                )
                .bind(hash.0.as_slice())
                .execute(postgres.facts.pool())
                .await
                .unwrap();
                assert_eq!(updated.rows_affected(), 1);
            }
        }
    }

    /// Loses the blob's last stored bytes (the last chunk, or the file's
    /// tail).
    async fn lose_the_tail(&self, hash: &Hash) {
        match &self.backend {
            Backend::Files { dir } => {
                let hex = hash.to_hex();
                let path = Self::blob_dir(dir).join(&hex[..2]).join(&hex);
                let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                let len = file.metadata().unwrap().len();
                file.set_len(len - 1000).unwrap();
            }
            Backend::Postgres(postgres) => {
                let deleted = sqlx::query(
                    "DELETE FROM cairn_blob_chunks WHERE (upload_id, n) = \
                     (SELECT c.upload_id, max(c.n) FROM cairn_blob_chunks c \
                      JOIN cairn_blobs b ON b.upload_id = c.upload_id \
                      WHERE b.hash = $1 GROUP BY c.upload_id)",
                )
                .bind(hash.0.as_slice())
                .execute(postgres.facts.pool())
                .await
                .unwrap();
                assert_eq!(deleted.rows_affected(), 1);
            }
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Backend::Postgres(postgres) = &self.backend {
            postgres.facts.close();
        }
    }
}

fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name() != Some("tmp".as_ref()) {
                files.extend(files_under(&path));
            }
        } else {
            files.push(path);
        }
    }
    files
}

async fn a_multi_chunk_blob_round_trips(fixture: &Fixture) {
    let bytes = bytes_of("round trip", 3 * CHUNK_BYTES + CHUNK_BYTES / 2);
    let (hash, size) = fixture.upload(&bytes).await.unwrap();
    assert_eq!((hash, size), (Hash::of_bytes(&bytes), bytes.len() as u64));
    let (read, failure, announced) = fixture.read(&hash).await.unwrap();
    assert!(failure.is_none(), "{failure:?}");
    assert_eq!(announced, size);
    assert!(read == bytes, "the blob read back differs");
    assert!(fixture.read(&Hash([7; 32])).await.is_none());
    assert_eq!(fixture.stored_bytes().await, size);
    assert_eq!(fixture.leftovers().await, 0);
}

async fn uploading_a_blob_again_keeps_one_copy(fixture: &Fixture) {
    let bytes = bytes_of("again", 2 * CHUNK_BYTES + 5);
    let first = fixture.upload(&bytes).await.unwrap();
    let second = fixture.upload(&bytes).await.unwrap();
    assert_eq!(first, second);
    // Two uploads of the same bytes at once, finishing after each other.
    let (mut one, mut two) = (
        fixture.store.writer().await.unwrap(),
        fixture.store.writer().await.unwrap(),
    );
    for piece in bytes.chunks(WRITE_BYTES) {
        one.write(piece).await.unwrap();
        two.write(piece).await.unwrap();
    }
    assert_eq!(one.finish().await.unwrap(), first);
    assert_eq!(two.finish().await.unwrap(), first);
    assert_eq!(fixture.stored_bytes().await, bytes.len() as u64);
    assert_eq!(fixture.leftovers().await, 0);
    let (read, failure, _) = fixture.read(&first.0).await.unwrap();
    assert!(failure.is_none() && read == bytes);
}

async fn the_empty_blob_round_trips(fixture: &Fixture) {
    let (hash, size) = fixture.upload(&[]).await.unwrap();
    assert_eq!((hash, size), (Hash::of_bytes(&[]), 0));
    assert_eq!(fixture.upload(&[]).await.unwrap(), (hash, 0));
    let (read, failure, announced) = fixture.read(&hash).await.unwrap();
    assert!(failure.is_none(), "{failure:?}");
    assert_eq!((read.len(), announced), (0, 0));
    assert_eq!(fixture.leftovers().await, 0);
}

async fn a_too_large_blob_is_refused_and_leaves_nothing(fixture: &Fixture) {
    assert_eq!(fixture.store.bytes_max(), BYTES_MAX);
    let bytes = bytes_of("too large", BYTES_MAX as usize + 1);
    let mut writer = fixture.store.writer().await.unwrap();
    let mut refused = None;
    for piece in bytes.chunks(WRITE_BYTES) {
        if let Err(error) = writer.write(piece).await {
            refused = Some(error);
            break;
        }
    }
    match refused {
        Some(BlobError::TooLarge { bytes_max }) => assert_eq!(bytes_max, BYTES_MAX),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    drop(writer);
    fixture.assert_no_leftovers_eventually().await;
    assert_eq!(fixture.stored_bytes().await, 0);
    assert!(fixture.read(&Hash::of_bytes(&bytes)).await.is_none());
}

async fn a_dropped_writer_leaves_nothing(fixture: &Fixture) {
    let bytes = bytes_of("dropped", 2 * CHUNK_BYTES + CHUNK_BYTES / 2);
    let mut writer = fixture.store.writer().await.unwrap();
    for piece in bytes.chunks(WRITE_BYTES) {
        writer.write(piece).await.unwrap();
    }
    assert!(fixture.leftovers().await > 0);
    drop(writer);
    fixture.assert_no_leftovers_eventually().await;
    assert_eq!(fixture.stored_bytes().await, 0);
    assert!(fixture.read(&Hash::of_bytes(&bytes)).await.is_none());
}

/// A corrupt blob's read ends with an `InvalidData` error and fewer bytes
/// than its size: never the whole blob, never silently.
fn assert_detected(read: Option<(Vec<u8>, Option<std::io::Error>, u64)>) {
    let (bytes, failure, size) = read.expect("the blob is still listed");
    let failure = failure.expect("the corruption was not detected");
    assert_eq!(failure.kind(), std::io::ErrorKind::InvalidData, "{failure}");
    assert!((bytes.len() as u64) < size, "the whole blob was served");
}

async fn corrupt_stored_bytes_are_detected_on_read(fixture: &Fixture) {
    let bytes = bytes_of("corrupt", 3 * CHUNK_BYTES + CHUNK_BYTES / 2);
    let (hash, _) = fixture.upload(&bytes).await.unwrap();
    fixture.flip_a_byte(&hash).await;
    assert_detected(fixture.read(&hash).await);
    let other = bytes_of("truncated", 2 * CHUNK_BYTES + 10);
    let (other_hash, _) = fixture.upload(&other).await.unwrap();
    fixture.lose_the_tail(&other_hash).await;
    assert_detected(fixture.read(&other_hash).await);
}

macro_rules! blob_checks {
    ($($check:ident),* $(,)?) => {
        mod files {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(&super::Fixture::files()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    let Some(fixture) = super::Fixture::postgres().await else {
                        return;
                    };
                    super::$check(&fixture).await;
                }
            )*
        }
    };
}

blob_checks!(
    a_multi_chunk_blob_round_trips,
    uploading_a_blob_again_keeps_one_copy,
    the_empty_blob_round_trips,
    a_too_large_blob_is_refused_and_leaves_nothing,
    a_dropped_writer_leaves_nothing,
    corrupt_stored_bytes_are_detected_on_read,
);

async fn chunk_rows(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM cairn_blob_chunks")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn postgres_blobs_are_stored_in_chunks_of_a_mebibyte() {
    let Some(fixture) = Fixture::postgres().await else {
        return;
    };
    let bytes = bytes_of("layout", 3 * CHUNK_BYTES + CHUNK_BYTES / 2);
    let (hash, _) = fixture.upload(&bytes).await.unwrap();
    let lengths: Vec<i32> = sqlx::query_scalar(
        "SELECT length(c.bytes) FROM cairn_blob_chunks c \
         JOIN cairn_blobs b ON b.upload_id = c.upload_id WHERE b.hash = $1 ORDER BY c.n",
    )
    .bind(hash.0.as_slice())
    .fetch_all(fixture.pool())
    .await
    .unwrap();
    let full = CHUNK_BYTES as i32;
    assert_eq!(lengths, vec![full, full, full, full / 2]);
}

#[tokio::test]
async fn postgres_abandoned_uploads_are_removed_but_not_live_ones_or_blobs() {
    let Some(fixture) = Fixture::postgres().await else {
        return;
    };
    let kept = bytes_of("kept", 2 * CHUNK_BYTES);
    let (kept_hash, _) = fixture.upload(&kept).await.unwrap();
    // A server that crashes mid-upload never drops its writer.
    let mut crashed = fixture.store.writer().await.unwrap();
    crashed
        .write(&bytes_of("crashed", CHUNK_BYTES + 10))
        .await
        .unwrap();
    std::mem::forget(crashed);
    let mut live = fixture.store.writer().await.unwrap();
    let live_bytes = bytes_of("live", 3 * CHUNK_BYTES);
    live.write(&live_bytes[..CHUNK_BYTES + 1]).await.unwrap();
    assert_eq!(chunk_rows(fixture.pool()).await, 4);

    let hour = Duration::from_secs(3600);
    assert_eq!(
        fixture.store.remove_abandoned_uploads(hour).await.unwrap(),
        0
    );
    sqlx::query(
        "UPDATE cairn_blob_uploads SET started_at = now() - interval '7 hours' \
         WHERE upload_id = (SELECT min(upload_id) FROM cairn_blob_uploads)",
    )
    .execute(fixture.pool())
    .await
    .unwrap();
    assert_eq!(
        fixture.store.remove_abandoned_uploads(hour).await.unwrap(),
        1
    );
    assert_eq!(chunk_rows(fixture.pool()).await, 3);

    live.write(&live_bytes[CHUNK_BYTES + 1..]).await.unwrap();
    let (live_hash, _) = live.finish().await.unwrap();
    assert_eq!(fixture.leftovers().await, 0);
    for (hash, bytes) in [(kept_hash, kept), (live_hash, live_bytes)] {
        let (read, failure, _) = fixture.read(&hash).await.unwrap();
        assert!(failure.is_none() && read == bytes);
    }
    // Finished blobs are never candidates, whatever the age.
    assert_eq!(
        fixture
            .store
            .remove_abandoned_uploads(Duration::ZERO)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn postgres_an_upload_removed_as_abandoned_cannot_finish() {
    let Some(fixture) = Fixture::postgres().await else {
        return;
    };
    let bytes = bytes_of("slow", 2 * CHUNK_BYTES + 3);
    let mut writer = fixture.store.writer().await.unwrap();
    writer.write(&bytes[..CHUNK_BYTES + 3]).await.unwrap();
    let removed = fixture
        .store
        .remove_abandoned_uploads(Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    // Its next chunk is refused, not stored without its upload.
    let refused = writer.write(&bytes[CHUNK_BYTES + 3..]).await;
    assert!(
        matches!(refused, Err(BlobError::Storage { .. })),
        "{refused:?}"
    );
    assert_eq!(chunk_rows(fixture.pool()).await, 0);
    drop(writer);

    let mut writer = fixture.store.writer().await.unwrap();
    writer.write(&bytes).await.unwrap();
    fixture
        .store
        .remove_abandoned_uploads(Duration::ZERO)
        .await
        .unwrap();
    let finished = writer.finish().await;
    assert!(
        matches!(finished, Err(BlobError::Storage { .. })),
        "{finished:?}"
    );
    fixture.assert_no_leftovers_eventually().await;
    assert!(fixture.read(&Hash::of_bytes(&bytes)).await.is_none());
}

#[tokio::test]
async fn postgres_an_upload_that_lost_a_chunk_does_not_finish() {
    let Some(fixture) = Fixture::postgres().await else {
        return;
    };
    let bytes = bytes_of("lost", 2 * CHUNK_BYTES + 3);
    let mut writer = fixture.store.writer().await.unwrap();
    writer.write(&bytes).await.unwrap();
    // As a database crash could lose a chunk committed without a flush.
    sqlx::query("DELETE FROM cairn_blob_chunks WHERE n = 0")
        .execute(fixture.pool())
        .await
        .unwrap();
    let finished = writer.finish().await;
    assert!(
        matches!(finished, Err(BlobError::Unavailable { .. })),
        "{finished:?}"
    );
    fixture.assert_no_leftovers_eventually().await;
    assert!(fixture.read(&Hash::of_bytes(&bytes)).await.is_none());
    assert_eq!(fixture.upload(&bytes).await.unwrap().1, bytes.len() as u64);
}

#[tokio::test]
async fn postgres_an_unreachable_database_is_unavailable() {
    let Some(fixture) = Fixture::postgres().await else {
        return;
    };
    let (hash, _) = fixture.upload(b"stored").await.unwrap();
    let pool = PgPool::connect(fixture.url()).await.unwrap();
    let store = BlobStore::postgres(pool.clone(), BYTES_MAX).await.unwrap();
    pool.close().await;
    assert!(matches!(
        store.writer().await,
        Err(BlobError::Unavailable { .. })
    ));
    assert!(matches!(
        store.open_blob(&hash).await,
        Err(BlobError::Unavailable { .. })
    ));
}
