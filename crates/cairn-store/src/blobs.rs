//! Content-addressed blobs: large payloads stored under the BLAKE3 hash of
//! their bytes, either as files in a directory (one server) or as chunk
//! rows in PostgreSQL (many servers over one database; see
//! `postgres/blobs.rs`).
//!
//! What does not depend on the backend lives here: the size limit and the
//! hashing of an upload ([`BlobWriter`]), and the verification of a read
//! ([`BlobReader`]), which hashes the bytes as they stream and ends the
//! stream with an error instead of the last bytes if they do not match.
//!
//! Files: a blob is streamed into a temporary file while it is hashed,
//! synced, then renamed into place (`blobs/<first two hex>/<hash>`) and the
//! directory synced, so a blob is either absent or complete. Writing the
//! same bytes again is a no-op. Temporary files left by a crash are removed
//! at open.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cairn_fact::Hash;
use futures_util::Stream;
use sqlx::PgPool;
use tokio::fs::File;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use crate::error::SourceError;
use crate::postgres::blobs::{self as postgres_blobs, PostgresBlobWriter};

/// Bytes read from a blob file at a time.
const FILE_READ_BYTES: usize = 64 * 1024;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The blob is larger than the configured limit; nothing was stored.
    #[error("the blob exceeds the limit of {bytes_max} bytes")]
    TooLarge {
        /// The limit.
        bytes_max: u64,
    },
    /// The file system failed.
    #[error("blob storage failure: {0}")]
    Io(#[from] std::io::Error),
    /// The database is unreachable, overloaded or too slow; nothing was
    /// stored, and retrying later (or on another server) is safe.
    #[error("the blob database is unavailable: {message}")]
    Unavailable {
        /// What failed, quoting the underlying error if there is one.
        message: String,
        /// The underlying error, if there is one.
        #[source]
        source: Option<SourceError>,
    },
    /// The database refused or failed the operation for another reason.
    #[error("blob storage failure: {message}")]
    Storage {
        /// What failed, quoting the underlying error if there is one.
        message: String,
        /// The underlying error, if there is one.
        #[source]
        source: Option<SourceError>,
    },
    /// Stored blob data contradicts itself (a size or chunk that does not
    /// add up).
    #[error("corrupt blob data: {0}")]
    Corrupt(String),
}

impl BlobError {
    /// The database was unavailable, as the blob code found by itself (no
    /// underlying error says so).
    pub(crate) fn unavailable(message: impl Into<String>) -> BlobError {
        BlobError::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// A storage failure that no underlying error explains.
    pub(crate) fn storage(message: impl Into<String>) -> BlobError {
        BlobError::Storage {
            message: message.into(),
            source: None,
        }
    }
}

/// Where the blobs are.
#[derive(Debug)]
enum Backend {
    Files(FileBlobs),
    Postgres(PostgresBlobs),
}

/// The blobs of a data directory.
#[derive(Debug)]
struct FileBlobs {
    dir: PathBuf,
    temp_dir: PathBuf,
    next_temp_id: AtomicU64,
}

/// The blobs of a PostgreSQL database, and the task that removes abandoned
/// uploads (aborted when the store is dropped).
#[derive(Debug)]
struct PostgresBlobs {
    pool: PgPool,
    sweeper: tokio::task::JoinHandle<()>,
}

impl Drop for PostgresBlobs {
    fn drop(&mut self) {
        self.sweeper.abort();
    }
}

/// The blob store: a directory of files ([`BlobStore::open`]) or a
/// PostgreSQL database ([`BlobStore::postgres`]), behind one interface.
#[derive(Debug)]
pub struct BlobStore {
    backend: Backend,
    bytes_max: u64,
}

impl BlobStore {
    /// Opens (or creates) `dir`, removing temporary files of interrupted uploads.
    pub fn open(dir: &Path, bytes_max: u64) -> Result<BlobStore, BlobError> {
        let temp_dir = dir.join("tmp");
        if temp_dir.exists() {
            std::fs::remove_dir_all(&temp_dir)?;
        }
        std::fs::create_dir_all(&temp_dir)?;
        Ok(BlobStore {
            backend: Backend::Files(FileBlobs {
                dir: dir.to_path_buf(),
                temp_dir,
                next_temp_id: AtomicU64::new(0),
            }),
            bytes_max,
        })
    }

    /// Keeps blobs in the PostgreSQL database of `pool`, whose schema
    /// `PostgresStore::connect` has migrated. Removes the uploads that were
    /// abandoned (a server crashed during them) now and every hour after,
    /// from a task that stops when the store is dropped. Must run inside a
    /// tokio runtime.
    pub async fn postgres(pool: PgPool, bytes_max: u64) -> Result<BlobStore, BlobError> {
        postgres_blobs::remove_abandoned_uploads(&pool, postgres_blobs::ABANDONED_UPLOAD_AGE)
            .await?;
        let sweeper = tokio::spawn(postgres_blobs::sweep_abandoned_uploads(pool.clone()));
        Ok(BlobStore {
            backend: Backend::Postgres(PostgresBlobs { pool, sweeper }),
            bytes_max,
        })
    }

    /// The largest blob accepted, in bytes.
    pub fn bytes_max(&self) -> u64 {
        self.bytes_max
    }

    /// Starts a new upload.
    pub async fn writer(&self) -> Result<BlobWriter<'_>, BlobError> {
        let sink = match &self.backend {
            Backend::Files(files) => Sink::File(files.writer().await?),
            Backend::Postgres(postgres) => {
                Sink::Postgres(PostgresBlobWriter::start(&postgres.pool).await?)
            }
        };
        Ok(BlobWriter {
            bytes_max: self.bytes_max,
            hasher: blake3::Hasher::new(),
            size: 0,
            sink,
        })
    }

    /// Opens a stored blob for reading, with its size. The reader checks
    /// the bytes against `hash` as they stream (see `BlobReader`).
    pub async fn open_blob(&self, hash: &Hash) -> Result<Option<(BlobReader, u64)>, BlobError> {
        let (source, size): (ChunkStream, u64) = match &self.backend {
            Backend::Files(files) => match File::open(files.path_of(hash)).await {
                Ok(file) => {
                    let size = file.metadata().await?.len();
                    let chunks = ReaderStream::with_capacity(file, FILE_READ_BYTES);
                    (Box::pin(chunks), size)
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(error.into()),
            },
            Backend::Postgres(postgres) => {
                let Some((size, upload_id)) = postgres_blobs::find(&postgres.pool, hash).await?
                else {
                    return Ok(None);
                };
                let chunks = postgres_blobs::chunks(postgres.pool.clone(), upload_id, size);
                (Box::pin(chunks), size)
            }
        };
        Ok(Some((BlobReader::new(source, *hash, size), size)))
    }

    /// Removes the uploads that started more than `older_than` ago and have
    /// not finished, with what they stored; returns how many. Only the
    /// PostgreSQL backend has such uploads (a directory's temporary files
    /// are removed at open), and [`BlobStore::postgres`] already does this
    /// every hour for uploads older than six hours.
    pub async fn remove_abandoned_uploads(&self, older_than: Duration) -> Result<u64, BlobError> {
        match &self.backend {
            Backend::Files(_) => Ok(0),
            Backend::Postgres(postgres) => {
                postgres_blobs::remove_abandoned_uploads(&postgres.pool, older_than).await
            }
        }
    }
}

impl FileBlobs {
    async fn writer(&self) -> Result<FileSink<'_>, BlobError> {
        let temp_id = self.next_temp_id.fetch_add(1, Ordering::Relaxed);
        let temp_path = self
            .temp_dir
            .join(format!("{}-{temp_id}", std::process::id()));
        let file = File::create(&temp_path).await?;
        Ok(FileSink {
            blobs: self,
            file: Some(file),
            temp_path,
        })
    }

    fn path_of(&self, hash: &Hash) -> PathBuf {
        let hex = hash.to_hex();
        self.dir.join(&hex[..2]).join(hex)
    }
}

/// An upload in progress. Dropping it without [`BlobWriter::finish`]
/// removes what it stored (for PostgreSQL, from a spawned task).
pub struct BlobWriter<'a> {
    bytes_max: u64,
    hasher: blake3::Hasher,
    size: u64,
    sink: Sink<'a>,
}

/// Where an upload's bytes go.
enum Sink<'a> {
    File(FileSink<'a>),
    Postgres(PostgresBlobWriter),
}

impl BlobWriter<'_> {
    /// Appends a chunk; fails once the total passes the store's limit.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.size += chunk.len() as u64;
        if self.size > self.bytes_max {
            return Err(BlobError::TooLarge {
                bytes_max: self.bytes_max,
            });
        }
        self.hasher.update(chunk);
        match &mut self.sink {
            Sink::File(file) => file.write(chunk).await,
            Sink::Postgres(postgres) => postgres.write(chunk).await,
        }
    }

    /// The hash of the bytes written so far. An upload dropped without
    /// [`BlobWriter::finish`] leaves nothing behind, so a caller that
    /// expects a hash checks it here first.
    pub fn hash(&self) -> Hash {
        Hash(*self.hasher.finalize().as_bytes())
    }

    /// Makes the blob durable under its hash and returns the hash and size.
    pub async fn finish(self) -> Result<(Hash, u64), BlobError> {
        let hash = self.hash();
        match self.sink {
            Sink::File(file) => file.finish(&hash).await?,
            Sink::Postgres(postgres) => postgres.finish(&hash, self.size).await?,
        }
        Ok((hash, self.size))
    }
}

/// An upload to a temporary file; dropping it before `finish` removes the
/// file.
struct FileSink<'a> {
    blobs: &'a FileBlobs,
    file: Option<File>,
    temp_path: PathBuf,
}

impl FileSink<'_> {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        let file = self.file.as_mut().expect("file is present until finish");
        file.write_all(chunk).await?;
        Ok(())
    }

    async fn finish(mut self, hash: &Hash) -> Result<(), BlobError> {
        let mut file = self.file.take().expect("file is present until finish");
        file.flush().await?;
        file.sync_data().await?;
        drop(file);
        let final_path = self.blobs.path_of(hash);
        let parent = final_path
            .parent()
            .expect("blob paths have a parent")
            .to_path_buf();
        let temp_path = self.temp_path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if final_path.exists() {
                return std::fs::remove_file(&temp_path);
            }
            std::fs::create_dir_all(&parent)?;
            std::fs::rename(&temp_path, &final_path)?;
            std::fs::File::open(&parent)?.sync_all()
        })
        .await
        .map_err(|error| BlobError::Io(std::io::Error::other(error)))??;
        Ok(())
    }
}

impl Drop for FileSink<'_> {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}

/// The bytes of a blob as a backend produces them.
type ChunkStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A stored blob's bytes, streamed and verified: the bytes are hashed as
/// they pass, and the piece that completes the blob is released only if
/// the blob matches its hash and size; otherwise the stream ends with an
/// `InvalidData` error in its place. A reader of a corrupt blob therefore
/// gets an error and fewer bytes than the size announced, never the whole
/// blob. The whole blob is never in memory: one backend chunk at a time.
pub struct BlobReader {
    source: ChunkStream,
    hash: Hash,
    size: u64,
    bytes_read: u64,
    hasher: blake3::Hasher,
    state: ReadState,
}

/// How far a [`BlobReader`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadState {
    /// Fewer than `size` bytes have passed.
    Reading,
    /// All `size` bytes passed and matched the hash; the source must end.
    Verified,
    /// The stream has ended (after the end or an error).
    Ended,
}

impl BlobReader {
    fn new(source: ChunkStream, hash: Hash, size: u64) -> BlobReader {
        BlobReader {
            source,
            hash,
            size,
            bytes_read: 0,
            hasher: blake3::Hasher::new(),
            state: ReadState::Reading,
        }
    }

    /// The error that replaces the rest of a corrupt blob.
    fn corrupt(&mut self, what: String) -> std::io::Error {
        self.state = ReadState::Ended;
        // The reader's side only sees a body cut short: say why here.
        tracing::error!(hash = %self.hash, "corrupt blob: {what}");
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            BlobError::Corrupt(format!("blob {}: {what}", self.hash)),
        )
    }

    /// Checks the hash once every byte has passed.
    fn verify(&mut self) -> Result<(), std::io::Error> {
        let actual = Hash(*self.hasher.finalize().as_bytes());
        if actual != self.hash {
            return Err(self.corrupt(format!("its {} bytes hash to {actual}", self.size)));
        }
        self.state = ReadState::Verified;
        Ok(())
    }
}

impl Stream for BlobReader {
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let reader = self.get_mut();
        if reader.state == ReadState::Ended {
            return Poll::Ready(None);
        }
        let polled = std::task::ready!(reader.source.as_mut().poll_next(context));
        let item = match polled {
            Some(Ok(bytes)) if bytes.is_empty() => return Poll::Ready(Some(Ok(bytes))),
            Some(Ok(bytes)) => {
                let bytes_read = reader.bytes_read + bytes.len() as u64;
                if reader.state == ReadState::Verified || bytes_read > reader.size {
                    let size = reader.size;
                    Err(reader.corrupt(format!("more than its {size} bytes are stored")))
                } else {
                    reader.bytes_read = bytes_read;
                    reader.hasher.update(&bytes);
                    if bytes_read == reader.size {
                        reader.verify().map(|()| bytes)
                    } else {
                        Ok(bytes)
                    }
                }
            }
            Some(Err(error)) => {
                reader.state = ReadState::Ended;
                Err(error)
            }
            None => {
                let checked = match reader.state {
                    // Only an empty blob is verified at the end.
                    ReadState::Reading if reader.bytes_read == reader.size => reader.verify(),
                    ReadState::Reading => {
                        let (bytes_read, size) = (reader.bytes_read, reader.size);
                        Err(reader
                            .corrupt(format!("only {bytes_read} of its {size} bytes are stored")))
                    }
                    ReadState::Verified | ReadState::Ended => Ok(()),
                };
                reader.state = ReadState::Ended;
                return Poll::Ready(checked.err().map(Err));
            }
        };
        Poll::Ready(Some(item))
    }
}
