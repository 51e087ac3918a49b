//! The embedded store's files as the disk-fault tests see them: where fjall
//! keeps its journals and its table files, how far a journal is written,
//! copies of a data directory taken while the store is open (what a crash
//! leaves on disk), and the damage a disk can do to a file.
//!
//! fjall 2 pre-allocates each new journal (32 MiB of zeros) and writes
//! batches from offset 0, so a journal's length does not say how much of it
//! is written; [`journal_written_end`] walks fjall's journal markers
//! instead. A batch is a start marker (tag 1 and 14 more bytes), its items
//! (tag 2, value type, partition name, key and value, each after its
//! length) and an end marker (tag 3, an xxh3 checksum of the items and the
//! trailer `FJL\x02`). A zero tag is unwritten space. Any other layout fails
//! the test, so that a fjall upgrade that changes the format cannot make
//! these tests pass without testing anything.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const START_MARKER_BYTES: u64 = 15;
const END_MARKER_BYTES: u64 = 13;
const END_TRAILER: &[u8; 4] = b"FJL\x02";

/// The journal files of the store in `data_dir`, oldest first.
pub fn journal_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut journals: Vec<(u64, PathBuf)> = fs::read_dir(data_dir.join("store/journals"))
        .expect("the journals directory")
        .map(|entry| {
            let path = entry.expect("a journal entry").path();
            let id = path
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.parse().ok())
                .unwrap_or_else(|| panic!("unexpected journal file {}", path.display()));
            (id, path)
        })
        .collect();
    journals.sort();
    journals.into_iter().map(|(_, path)| path).collect()
}

/// The table (segment) files of every partition of the store in `data_dir`.
pub fn table_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut tables = Vec::new();
    for partition in fs::read_dir(data_dir.join("store/partitions")).expect("the partitions") {
        let segments = partition.expect("a partition").path().join("segments");
        let Ok(entries) = fs::read_dir(&segments) else {
            continue;
        };
        for entry in entries {
            tables.push(entry.expect("a table file").path());
        }
    }
    tables.sort();
    tables
}

/// The offset just past the last complete batch of `journal`, walking its
/// markers from `from`, which must be a batch boundary (0, or a value this
/// function returned for the same file).
pub fn journal_written_end(journal: &Path, from: u64) -> u64 {
    let file = File::open(journal).expect("the journal");
    let length = file.metadata().expect("journal metadata").len();
    let read = |offset: u64, bytes: &mut [u8]| -> bool {
        offset + bytes.len() as u64 <= length && file.read_exact_at(bytes, offset).is_ok()
    };
    let mut position = from;
    let mut batch_end = from;
    loop {
        let mut tag = [0u8; 1];
        if !read(position, &mut tag) {
            return batch_end;
        }
        match tag[0] {
            0 => return batch_end,
            1 => position += START_MARKER_BYTES,
            2 => {
                let mut partition_length = [0u8; 1];
                assert!(
                    read(position + 2, &mut partition_length),
                    "torn journal item"
                );
                let key_length_at = position + 3 + u64::from(partition_length[0]);
                let mut key_length = [0u8; 2];
                assert!(read(key_length_at, &mut key_length), "torn journal item");
                let value_length_at = key_length_at + 2 + u64::from(u16::from_be_bytes(key_length));
                let mut value_length = [0u8; 4];
                assert!(
                    read(value_length_at, &mut value_length),
                    "torn journal item"
                );
                position = value_length_at + 4 + u64::from(u32::from_be_bytes(value_length));
            }
            3 => {
                let mut marker = [0u8; END_MARKER_BYTES as usize];
                assert!(read(position, &mut marker), "torn journal end marker");
                assert_eq!(
                    &marker[9..],
                    END_TRAILER,
                    "journal end marker at {position}"
                );
                position += END_MARKER_BYTES;
                batch_end = position;
            }
            other => panic!(
                "unexpected journal marker tag {other} at {position} in {}",
                journal.display()
            ),
        }
    }
}

/// Copies the data directory `from` into `to` (which must not exist) file
/// by file, while the store may be open: what a crash leaves, with nothing
/// lost yet. Journals are copied up to their written end and keep their
/// length, so that the rest stays unwritten space (a hole).
pub fn copy_data_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create the copy");
    for entry in fs::read_dir(from).expect("read the data directory") {
        let entry = entry.expect("a data directory entry");
        let source = entry.path();
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_data_dir(&source, &target);
        } else if source
            .parent()
            .is_some_and(|parent| parent.ends_with("store/journals"))
        {
            let written_end = journal_written_end(&source, 0);
            let mut written = vec![0u8; written_end as usize];
            File::open(&source)
                .and_then(|file| file.read_exact_at(&mut written, 0))
                .expect("read the journal");
            fs::write(&target, &written).expect("write the journal copy");
            let length = source.metadata().expect("journal metadata").len();
            set_length(&target, length);
        } else {
            fs::copy(&source, &target).expect("copy a data file");
        }
    }
}

/// The length of `path` in bytes.
pub fn length(path: &Path) -> u64 {
    path.metadata().expect("file metadata").len()
}

/// Truncates or extends (with zeros) `path` to `length` bytes.
pub fn set_length(path: &Path, length: u64) {
    writable(path).set_len(length).expect("set the file length");
}

/// Overwrites the bytes of `path` at `offset`.
pub fn overwrite(path: &Path, offset: u64, bytes: &[u8]) {
    writable(path)
        .write_all_at(bytes, offset)
        .expect("overwrite file bytes");
}

/// Flips bit `bit` (0–7) of the byte at `offset` of `path`.
pub fn flip_bit(path: &Path, offset: u64, bit: u8) {
    let file = writable(path);
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, offset)
        .expect("read the byte to flip");
    byte[0] ^= 1 << bit;
    file.write_all_at(&byte, offset)
        .expect("write the flipped byte");
}

fn writable(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|error| panic!("cannot open {}: {error}", path.display()))
}
