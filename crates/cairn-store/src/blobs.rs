//! Content-addressed blobs: large payloads stored as files named by the
//! BLAKE3 hash of their bytes.
//!
//! A blob is streamed into a temporary file while it is hashed, synced,
//! then renamed into place (`blobs/<first two hex>/<hash>`) and the
//! directory synced, so a blob is either absent or complete. Writing the
//! same bytes again is a no-op. Temporary files left by a crash are removed
//! at open.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_fact::Hash;
use tokio::fs::File;
use tokio::io::AsyncWriteExt;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
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
}

/// The blob directory of a data directory.
#[derive(Debug)]
pub struct BlobStore {
    dir: PathBuf,
    temp_dir: PathBuf,
    bytes_max: u64,
    next_temp_id: AtomicU64,
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
            dir: dir.to_path_buf(),
            temp_dir,
            bytes_max,
            next_temp_id: AtomicU64::new(0),
        })
    }

    /// The largest blob accepted, in bytes.
    pub fn bytes_max(&self) -> u64 {
        self.bytes_max
    }

    /// Starts a new upload.
    pub async fn writer(&self) -> Result<BlobWriter<'_>, BlobError> {
        let temp_id = self.next_temp_id.fetch_add(1, Ordering::Relaxed);
        let temp_path = self
            .temp_dir
            .join(format!("{}-{temp_id}", std::process::id()));
        let file = File::create(&temp_path).await?;
        Ok(BlobWriter {
            store: self,
            file: Some(file),
            temp_path,
            hasher: blake3::Hasher::new(),
            size: 0,
        })
    }

    /// Opens a stored blob for reading, with its size.
    pub async fn open_blob(&self, hash: &Hash) -> Result<Option<(File, u64)>, BlobError> {
        match File::open(self.path_of(hash)).await {
            Ok(file) => {
                let size = file.metadata().await?.len();
                Ok(Some((file, size)))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    fn path_of(&self, hash: &Hash) -> PathBuf {
        let hex = hash.to_hex();
        self.dir.join(&hex[..2]).join(hex)
    }
}

/// An upload in progress. Dropping it without [`BlobWriter::finish`]
/// removes the temporary file.
pub struct BlobWriter<'a> {
    store: &'a BlobStore,
    file: Option<File>,
    temp_path: PathBuf,
    hasher: blake3::Hasher,
    size: u64,
}

impl BlobWriter<'_> {
    /// Appends a chunk; fails once the total passes the store's limit.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.size += chunk.len() as u64;
        if self.size > self.store.bytes_max {
            return Err(BlobError::TooLarge {
                bytes_max: self.store.bytes_max,
            });
        }
        self.hasher.update(chunk);
        let file = self.file.as_mut().expect("file is present until finish");
        file.write_all(chunk).await?;
        Ok(())
    }

    /// Makes the blob durable under its hash and returns the hash and size.
    pub async fn finish(mut self) -> Result<(Hash, u64), BlobError> {
        let hash = Hash(*self.hasher.finalize().as_bytes());
        let mut file = self.file.take().expect("file is present until finish");
        file.flush().await?;
        file.sync_data().await?;
        drop(file);
        let final_path = self.store.path_of(&hash);
        let parent = final_path
            .parent()
            .expect("blob paths have a parent")
            .to_path_buf();
        let temp_path = self.temp_path.clone();
        let size = self.size;
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
        Ok((hash, size))
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}
