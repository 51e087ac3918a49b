//! Checks of fjall's journals that fjall does not make, run at open before
//! fjall replays them, and the repair of the one damage from a power loss
//! that fjall refuses to recover from.
//!
//! **Sealed journals must be whole.** fjall replays each journal up to its
//! first malformed record and silently drops the rest of that journal. That
//! is right at the end of the newest journal, where a crash can cut the
//! batch being written. But a sealed journal was synced whole before the
//! next one was started, so a malformed record in it is damage to synced
//! data; and since each partition is flushed to table files on its own, the
//! records dropped there can be index entries (`by_hash`, `successors`) of
//! facts whose `facts` records are already in table files. The durable
//! watermark, which looks at the newest fact, cannot see that loss, and
//! reads would answer acknowledged facts as absent. So every journal but the
//! newest must hold whole batches followed by nothing but unwritten (zero)
//! space, or the store does not open.
//!
//! **The torn end of the newest journal is cut.** What a crash left of the
//! batch being written, after the newest journal's last whole batch, is cut
//! off before fjall reads it. fjall would drop it too, but garbage there (a
//! torn write) can make fjall fail or even panic.
//!
//! **A torn last batch is dropped.** fjall refuses to open when the items of
//! a batch do not match the checksum in its end marker. A power loss leaves
//! exactly that in the newest journal when the disk (or the page cache,
//! which writes dirty pages in any order before a sync) stored the batch's
//! end marker but not a sector inside one of its values. That batch was
//! never synced, so never acknowledged. When fjall reports such an error,
//! the newest journal's last batch is set aside and fjall opens again: if it
//! succeeds, that batch was the damaged one and stays dropped, like a batch
//! whose end marker never reached the disk; if not, the damage is elsewhere,
//! the batch is put back and open fails. While the batch is out of the
//! journal its bytes are kept in a synced file, so that a crash in between
//! loses nothing: the next open puts it back first.
//!
//! The journal layout (fjall 2): a batch is a start marker (tag 1, item
//! count u32, seqno u64, compression 2 bytes), its items (tag 2, value type
//! u8, partition name length u8 and bytes, key length u16 BE and bytes,
//! value length u32 BE and bytes) and an end marker (tag 3, xxh3 checksum of
//! the items u64, trailer `FJL\x02`). A new journal is pre-allocated with
//! zeros.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::ReadError;

const START_TAG: u8 = 1;
const ITEM_TAG: u8 = 2;
const END_TAG: u8 = 3;
/// Bytes of a start marker after its tag.
const START_REST_BYTES: u64 = 14;
/// fjall's value types: value, tombstone, weak tombstone.
const VALUE_TYPE_MAX: u8 = 2;
const END_TRAILER: [u8; 4] = *b"FJL\x02";
/// The file, in the data directory, holding a batch while it is set aside:
/// journal id (u64 LE), offset (u64 LE), then the batch's bytes.
const SET_ASIDE_FILE: &str = "journal-batch-set-aside";
/// The same while it is written; a crash can leave it partial, but then
/// the journal was not cut yet.
const SET_ASIDE_TEMPORARY_FILE: &str = "journal-batch-set-aside.tmp";
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// The journal files in `journals_dir`, oldest first (fjall numbers them).
fn journals(journals_dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let entries = match std::fs::read_dir(journals_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut journals = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let id = path
            .file_name()
            .and_then(|name| name.to_str()?.parse().ok());
        if let Some(id) = id {
            journals.push((id, path));
        }
    }
    journals.sort();
    Ok(journals)
}

/// How far a journal holds whole batches.
struct WholeBatches {
    /// The offset just past the last whole batch.
    end: u64,
    /// The offset of the last whole batch, if there is one.
    last_start: Option<u64>,
}

/// Reads a journal from its start, with its position and length.
struct JournalReader {
    reader: BufReader<File>,
    position: u64,
    length: u64,
}

impl JournalReader {
    /// The next `N` bytes, or `None` if the journal ends before them.
    fn bytes<const N: usize>(&mut self) -> io::Result<Option<[u8; N]>> {
        if self.position + N as u64 > self.length {
            return Ok(None);
        }
        let mut bytes = [0u8; N];
        self.reader.read_exact(&mut bytes)?;
        self.position += N as u64;
        Ok(Some(bytes))
    }

    /// Skips `n` bytes; false if the journal ends before.
    fn skip(&mut self, n: u64) -> io::Result<bool> {
        if self.position + n > self.length {
            return Ok(false);
        }
        self.reader.seek_relative(n as i64)?;
        self.position += n;
        Ok(true)
    }

    /// Reads the rest of a start marker: its item count, if fjall reads it.
    fn start(&mut self) -> io::Result<Option<u32>> {
        let Some(rest) = self.bytes::<{ START_REST_BYTES as usize }>()? else {
            return Ok(None);
        };
        let item_count = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes"));
        // The journal is not compressed: anything else makes fjall panic.
        Ok((rest[12..] == [0, 0]).then_some(item_count))
    }

    /// Reads the rest of an item; false if fjall would not read it.
    fn item(&mut self) -> io::Result<bool> {
        let Some([value_type, partition_bytes]) = self.bytes::<2>()? else {
            return Ok(false);
        };
        if value_type > VALUE_TYPE_MAX {
            return Ok(false);
        }
        let mut partition = vec![0u8; usize::from(partition_bytes)];
        if self.position + partition.len() as u64 > self.length {
            return Ok(false);
        }
        self.reader.read_exact(&mut partition)?;
        self.position += partition.len() as u64;
        if std::str::from_utf8(&partition).is_err() {
            return Ok(false);
        }
        let Some(key_bytes) = self.bytes::<2>()? else {
            return Ok(false);
        };
        if !self.skip(u64::from(u16::from_be_bytes(key_bytes)))? {
            return Ok(false);
        }
        let Some(value_bytes) = self.bytes::<4>()? else {
            return Ok(false);
        };
        self.skip(u64::from(u32::from_be_bytes(value_bytes)))
    }
}

/// Walks `path` from its start over whole batches, up to the first byte
/// that does not continue one the way fjall reads it (unwritten space,
/// damage, or the end). Checksums are left to fjall.
fn whole_batches(path: &Path) -> io::Result<WholeBatches> {
    let file = File::open(path)?;
    let length = file.metadata()?.len();
    let mut journal = JournalReader {
        reader: BufReader::with_capacity(READ_BUFFER_BYTES, file),
        position: 0,
        length,
    };
    let mut whole = WholeBatches {
        end: 0,
        last_start: None,
    };
    // The open batch: its start and the items it still announces.
    let mut batch: Option<(u64, u32)> = None;
    loop {
        let marker_start = journal.position;
        let Some([tag]) = journal.bytes::<1>()? else {
            return Ok(whole);
        };
        let readable = match (tag, batch) {
            (START_TAG, None) => match journal.start()? {
                Some(item_count) => {
                    batch = Some((marker_start, item_count));
                    true
                }
                None => false,
            },
            (ITEM_TAG, Some((start, items_left))) if items_left > 0 => {
                batch = Some((start, items_left - 1));
                journal.item()?
            }
            (END_TAG, Some((start, 0))) => match journal.bytes::<12>()? {
                Some(rest) if rest[8..] == END_TRAILER => {
                    whole = WholeBatches {
                        end: journal.position,
                        last_start: Some(start),
                    };
                    batch = None;
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if !readable {
            return Ok(whole);
        }
    }
}

/// The offset of the first byte of `path` from `offset` on that is not
/// zero, if any.
fn first_written_byte_from(path: &Path, offset: u64) -> io::Result<Option<u64>> {
    let file = File::open(path)?;
    let length = file.metadata()?.len();
    let zeros = vec![0u8; READ_BUFFER_BYTES];
    let mut buffer = vec![0u8; READ_BUFFER_BYTES];
    let mut position = offset;
    while position < length {
        let chunk_bytes = (length - position).min(READ_BUFFER_BYTES as u64) as usize;
        let chunk = &mut buffer[..chunk_bytes];
        file.read_exact_at(chunk, position)?;
        // Comparing whole chunks keeps the scan of a pre-allocated journal's
        // unwritten space (up to 32 MiB) at memory speed.
        if chunk[..] != zeros[..chunk_bytes] {
            let index = chunk
                .iter()
                .position(|&byte| byte != 0)
                .expect("a written byte");
            return Ok(Some(position + index as u64));
        }
        position += chunk_bytes as u64;
    }
    Ok(None)
}

/// Prepares the journals in `journals_dir` for fjall: puts back a batch a
/// crash left set aside, checks that every sealed journal is whole, and
/// cuts the newest journal after its last whole batch.
pub fn prepare(data_dir: &Path, journals_dir: &Path) -> Result<(), ReadError> {
    put_back_after_crash(data_dir, journals_dir)?;
    let journals = journals(journals_dir).map_err(|error| {
        ReadError::storage_caused_by(
            format!(
                "cannot list the journals in {}: {error}",
                journals_dir.display()
            ),
            error,
        )
    })?;
    let Some(((_, newest), sealed)) = journals.split_last() else {
        return Ok(());
    };
    for (_, path) in sealed {
        let cannot_read = |error: io::Error| {
            ReadError::storage_caused_by(format!("cannot read {}: {error}", path.display()), error)
        };
        let whole = whole_batches(path).map_err(cannot_read)?;
        if let Some(written_at) = first_written_byte_from(path, whole.end).map_err(cannot_read)? {
            return Err(ReadError::corrupt(format!(
                "the journal {} is damaged at byte {}: its whole batches end there, but it has \
                 bytes written at byte {written_at}, and it was synced whole when it was sealed; \
                 data files are damaged; restore from a replica or backup",
                path.display(),
                whole.end
            )));
        }
    }
    cut_torn_tail(newest).map_err(|error| {
        ReadError::storage_caused_by(
            format!("cannot cut the torn end of {}: {error}", newest.display()),
            error,
        )
    })
}

/// Cuts `journal` after its last whole batch if what follows is not
/// unwritten space: what a crash left of a batch being written. fjall would
/// stop reading there and drop it too, but garbage (a torn write) can make
/// fjall fail or panic (a start marker naming a compression, more items
/// than the batch announced). Only the byte right after the whole batches
/// matters: where it is zero, fjall stops without reading further.
fn cut_torn_tail(journal: &Path) -> io::Result<()> {
    let whole = whole_batches(journal)?;
    let file = OpenOptions::new().read(true).write(true).open(journal)?;
    let mut next_byte = [0u8; 1];
    if whole.end >= file.metadata()?.len() {
        return Ok(());
    }
    file.read_exact_at(&mut next_byte, whole.end)?;
    if next_byte[0] == 0 {
        return Ok(());
    }
    tracing::warn!(
        journal = %journal.display(), cut_at = whole.end,
        "dropped the end of the journal: a crash tore the batch being written, before it was \
         synced and acknowledged"
    );
    file.set_len(whole.end)?;
    file.sync_all()
}

/// The newest journal's last batch, moved out of the journal into a synced
/// file in the data directory until it is dropped or put back.
pub struct SetAsideBatch {
    data_dir: PathBuf,
    journal: PathBuf,
    offset: u64,
    bytes: Vec<u8>,
}

impl SetAsideBatch {
    /// Sets the newest journal's last whole batch aside, if there is one.
    pub fn take_last(data_dir: &Path, journals_dir: &Path) -> io::Result<Option<SetAsideBatch>> {
        let Some((id, journal)) = journals(journals_dir)?.pop() else {
            return Ok(None);
        };
        let whole = whole_batches(&journal)?;
        let Some(offset) = whole.last_start else {
            return Ok(None);
        };
        let mut bytes = vec![0u8; (whole.end - offset) as usize];
        File::open(&journal)?.read_exact_at(&mut bytes, offset)?;
        let mut record = Vec::with_capacity(16 + bytes.len());
        record.extend_from_slice(&id.to_le_bytes());
        record.extend_from_slice(&offset.to_le_bytes());
        record.extend_from_slice(&bytes);
        // Written under another name and renamed, so that the file exists
        // only whole: the journal is cut only once it does.
        let saving = data_dir.join(SET_ASIDE_TEMPORARY_FILE);
        std::fs::write(&saving, &record)?;
        File::open(&saving)?.sync_all()?;
        std::fs::rename(&saving, data_dir.join(SET_ASIDE_FILE))?;
        File::open(data_dir)?.sync_all()?;
        let file = OpenOptions::new().write(true).open(&journal)?;
        file.set_len(offset)?;
        file.sync_all()?;
        Ok(Some(SetAsideBatch {
            data_dir: data_dir.to_path_buf(),
            journal,
            offset,
            bytes,
        }))
    }

    /// Where the batch was, for the log.
    pub fn describe(&self) -> String {
        format!(
            "{} bytes at byte {} of {}",
            self.bytes.len(),
            self.offset,
            self.journal.display()
        )
    }

    /// Drops the batch for good.
    pub fn drop_batch(self) -> io::Result<()> {
        forget_saved(&self.data_dir)
    }

    /// Writes the batch back where it was.
    pub fn put_back(self) -> io::Result<()> {
        write_back(&self.journal, self.offset, &self.bytes)?;
        forget_saved(&self.data_dir)
    }
}

/// Puts back a batch that a crash left set aside (see the module comment).
fn put_back_after_crash(data_dir: &Path, journals_dir: &Path) -> Result<(), ReadError> {
    match std::fs::remove_file(data_dir.join(SET_ASIDE_TEMPORARY_FILE)) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            return Err(ReadError::storage_caused_by(
                format!(
                    "cannot remove {SET_ASIDE_TEMPORARY_FILE} in {}: {error}",
                    data_dir.display()
                ),
                error,
            ))
        }
        _ => {}
    }
    let saved = data_dir.join(SET_ASIDE_FILE);
    let record = match std::fs::read(&saved) {
        Ok(record) => record,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(ReadError::storage_caused_by(
                format!("cannot read {}: {error}", saved.display()),
                error,
            ))
        }
    };
    let damaged = || ReadError::corrupt(format!("{} is damaged", saved.display()));
    let id = u64::from_le_bytes(record.get(..8).ok_or_else(damaged)?.try_into().expect("8"));
    let offset = u64::from_le_bytes(
        record
            .get(8..16)
            .ok_or_else(damaged)?
            .try_into()
            .expect("8"),
    );
    let journal = journals_dir.join(id.to_string());
    write_back(&journal, offset, &record[16..])
        .and_then(|()| forget_saved(data_dir))
        .map_err(|error| {
            ReadError::storage_caused_by(
                format!("cannot put back {}: {error}", saved.display()),
                error,
            )
        })
}

fn write_back(journal: &Path, offset: u64, bytes: &[u8]) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(journal)?;
    file.write_all_at(bytes, offset)?;
    file.sync_all()
}

fn forget_saved(data_dir: &Path) -> io::Result<()> {
    std::fs::remove_file(data_dir.join(SET_ASIDE_FILE))?;
    File::open(data_dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch in fjall's journal layout, with one item per value (the
    /// checksum is left to fjall, so any value does here).
    fn batch(seqno: u64, values: &[&[u8]]) -> Vec<u8> {
        let mut bytes = vec![START_TAG];
        bytes.extend_from_slice(&(values.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&seqno.to_be_bytes());
        bytes.extend_from_slice(&[0, 0]);
        for value in values {
            bytes.extend_from_slice(&[ITEM_TAG, 0, 5]);
            bytes.extend_from_slice(b"facts");
            bytes.extend_from_slice(&8u16.to_be_bytes());
            bytes.extend_from_slice(&seqno.to_be_bytes());
            bytes.extend_from_slice(&(value.len() as u32).to_be_bytes());
            bytes.extend_from_slice(value);
        }
        bytes.push(END_TAG);
        bytes.extend_from_slice(&0x0123_4567_89ab_cdefu64.to_be_bytes());
        bytes.extend_from_slice(&END_TRAILER);
        bytes
    }

    struct Store {
        _dir: tempfile::TempDir,
        data_dir: PathBuf,
        journals_dir: PathBuf,
    }

    /// A data directory whose journals hold `journals` (id, bytes), each
    /// followed by `unwritten_bytes` zeros like fjall's pre-allocation.
    fn store(journals: &[(u64, Vec<u8>)], unwritten_bytes: u64) -> Store {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_path_buf();
        let journals_dir = data_dir.join("store/journals");
        std::fs::create_dir_all(&journals_dir).unwrap();
        for (id, bytes) in journals {
            let path = journals_dir.join(id.to_string());
            std::fs::write(&path, bytes).unwrap();
            let file = OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(bytes.len() as u64 + unwritten_bytes).unwrap();
        }
        Store {
            _dir: dir,
            data_dir,
            journals_dir,
        }
    }

    fn two_batches() -> Vec<u8> {
        [batch(1, &[b"one", b"two"]), batch(2, &[b"three"])].concat()
    }

    #[test]
    fn whole_batches_end_where_fjall_would_stop_reading() {
        let whole = two_batches();
        let first_end = batch(1, &[b"one", b"two"]).len() as u64;
        let torn = [whole.clone(), batch(3, &[b"four"])[..20].to_vec()].concat();
        let mut bad_value_type = [whole.clone(), batch(3, &[b"four"])].concat();
        bad_value_type[whole.len() + 16] = 7;
        let mut too_few_items = batch(3, &[b"four", b"five"]);
        too_few_items[4] = 3;
        for (bytes, end) in [
            (whole.clone(), whole.len() as u64),
            (torn, whole.len() as u64),
            (bad_value_type, whole.len() as u64),
            ([whole.clone(), too_few_items].concat(), whole.len() as u64),
            (whole[..whole.len() - 1].to_vec(), first_end),
        ] {
            let store = store(&[(0, bytes)], 4096);
            let scanned = whole_batches(&store.journals_dir.join("0")).unwrap();
            assert_eq!(scanned.end, end);
        }
    }

    #[test]
    fn a_sealed_journal_with_written_bytes_after_its_batches_is_damaged() {
        let intact = store(&[(3, two_batches()), (4, two_batches())], 1 << 20);
        prepare(&intact.data_dir, &intact.journals_dir).unwrap();

        // Zeros inside a sealed journal (a lost write): batches follow them.
        let mut holed = [two_batches(), two_batches()].concat();
        let holed_from = two_batches().len();
        holed[holed_from..holed_from + 20].fill(0);
        let damaged = store(&[(3, holed), (4, two_batches())], 1 << 20);
        let error = prepare(&damaged.data_dir, &damaged.journals_dir).unwrap_err();
        let expected = format!(
            "damaged at byte {holed_from}: its whole batches end there, but it has bytes written \
             at byte {}",
            holed_from + 20
        );
        assert!(
            matches!(&error, ReadError::Corrupt { message, .. } if message.contains(&expected)),
            "{error:?}"
        );
    }

    #[test]
    fn the_torn_end_of_the_newest_journal_is_cut() {
        let garbage = [two_batches(), vec![START_TAG, 9, 9, 9]].concat();
        let store = store(&[(3, two_batches()), (4, garbage)], 0);
        prepare(&store.data_dir, &store.journals_dir).unwrap();
        let newest = store.journals_dir.join("4");
        assert_eq!(std::fs::read(&newest).unwrap(), two_batches());
        // Unwritten space is left to fjall.
        let preallocated = self::store(&[(4, two_batches())], 4096);
        prepare(&preallocated.data_dir, &preallocated.journals_dir).unwrap();
        let newest = preallocated.journals_dir.join("4");
        assert_eq!(
            newest.metadata().unwrap().len(),
            two_batches().len() as u64 + 4096
        );
    }

    #[test]
    fn a_set_aside_batch_is_dropped_put_back_or_put_back_after_a_crash() {
        let journal_bytes = two_batches();
        let first_end = batch(1, &[b"one", b"two"]).len();
        for ending in ["drop", "put back", "crash"] {
            let store = store(&[(4, journal_bytes.clone())], 0);
            let journal = store.journals_dir.join("4");
            let set_aside = SetAsideBatch::take_last(&store.data_dir, &store.journals_dir)
                .unwrap()
                .unwrap();
            assert_eq!(
                std::fs::read(&journal).unwrap(),
                &journal_bytes[..first_end]
            );
            let expected = match ending {
                "drop" => {
                    set_aside.drop_batch().unwrap();
                    &journal_bytes[..first_end]
                }
                "put back" => {
                    set_aside.put_back().unwrap();
                    &journal_bytes[..]
                }
                _ => {
                    // The process died: the next open puts the batch back.
                    prepare(&store.data_dir, &store.journals_dir).unwrap();
                    &journal_bytes[..]
                }
            };
            assert_eq!(std::fs::read(&journal).unwrap(), expected, "{ending}");
            assert!(!store.data_dir.join(SET_ASIDE_FILE).exists(), "{ending}");
        }
    }
}
