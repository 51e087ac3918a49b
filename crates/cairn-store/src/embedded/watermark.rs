//! The durable watermark: a small file recording a sequence number that is
//! known to be durable, so that opening the store can tell a damaged store
//! that lost acknowledged facts from an intact one.
//!
//! The storage engine's journal recovery treats a damaged record as a torn
//! tail and drops everything after it. Without an outside reference, a store
//! damaged in the middle of its journal would open silently with fewer
//! facts. The writer records its durable seq here at most once per
//! [`WATERMARK_INTERVAL`] and at close; at open, a store whose newest fact is
//! older than the watermark is refused.
//!
//! Layout: 16 bytes, overwritten in place — the seq (u64 little-endian) and
//! the first 8 bytes of BLAKE3 of those 8 bytes. A 16-byte write at offset 0
//! lies in one disk sector, so it is never torn.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the writer records the watermark at most.
pub const WATERMARK_INTERVAL: Duration = Duration::from_secs(1);
const RECORD_BYTES: usize = 16;

/// The open watermark file.
pub struct Watermark {
    file: File,
    recorded_seq: u64,
    recorded_at: Instant,
}

impl Watermark {
    /// Opens (or creates) the watermark in `dir` and returns it with the
    /// seq it holds (0 when new).
    pub fn open(dir: &Path) -> Result<(Watermark, u64), String> {
        let path = dir.join("durable-seq");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|error| format!("cannot open {}: {error}", path.display()))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let seq = match bytes.len() {
            0 => 0,
            RECORD_BYTES => decode(&bytes)
                .ok_or_else(|| format!("{} is damaged (checksum mismatch)", path.display()))?,
            n => {
                return Err(format!(
                    "{} is damaged ({n} bytes, expected 16)",
                    path.display()
                ))
            }
        };
        let watermark = Watermark {
            file,
            recorded_seq: seq,
            recorded_at: Instant::now(),
        };
        Ok((watermark, seq))
    }

    /// Records `seq` if it is new and the interval has passed (or `force`).
    pub fn record(&mut self, seq: u64, force: bool) -> std::io::Result<()> {
        if seq == self.recorded_seq || (!force && self.recorded_at.elapsed() < WATERMARK_INTERVAL) {
            return Ok(());
        }
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&encode(seq))?;
        self.file.sync_data()?;
        self.recorded_seq = seq;
        self.recorded_at = Instant::now();
        Ok(())
    }
}

fn checksum(seq_bytes: &[u8; 8]) -> [u8; 8] {
    let hash = blake3::hash(seq_bytes);
    hash.as_bytes()[..8].try_into().expect("8 bytes")
}

fn encode(seq: u64) -> [u8; RECORD_BYTES] {
    let seq_bytes = seq.to_le_bytes();
    let mut record = [0u8; RECORD_BYTES];
    record[..8].copy_from_slice(&seq_bytes);
    record[8..].copy_from_slice(&checksum(&seq_bytes));
    record
}

fn decode(bytes: &[u8]) -> Option<u64> {
    let seq_bytes: [u8; 8] = bytes[..8].try_into().ok()?;
    (bytes[8..RECORD_BYTES] == checksum(&seq_bytes)).then(|| u64::from_le_bytes(seq_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_reads_back_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let (mut watermark, seq) = Watermark::open(dir.path()).unwrap();
        assert_eq!(seq, 0);
        watermark.record(42, true).unwrap();
        watermark.record(43, false).unwrap(); // within the interval: skipped
        drop(watermark);
        assert_eq!(Watermark::open(dir.path()).unwrap().1, 42);
        let path = dir.path().join("durable-seq");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[3] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(Watermark::open(dir.path())
            .err()
            .unwrap()
            .contains("damaged"));
    }
}
