//! Disk faults on a stopped embedded server's data directory: a torn last
//! write after a crash, and corruption (bit flips, truncation) of journals
//! and table files, with a backup to put the intact files back afterwards.
//!
//! A torn write only touches bytes after the journal's last record, which
//! no acknowledged write can own: the server must recover and keep every
//! acknowledged fact. Corruption hits acknowledged data on purpose: the
//! server may refuse to start or refuse to serve what is damaged, but it
//! must never serve wrong data nor acknowledge writes on top of it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use cairn_delivery::SplitMix64;

/// Garbage bytes of a torn write at most.
const TORN_BYTES_MAX: u64 = 512;

/// The journal files of an embedded data directory, oldest first. They are
/// numbered: sorting their names as text would put `99` after `100` and
/// make a sealed journal look like the newest one.
fn journals(data_dir: &Path) -> Vec<PathBuf> {
    let mut files = files_under(&data_dir.join("store").join("journals"));
    files.sort_by_key(|path| {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned());
        let number = name.as_deref().and_then(|name| name.parse::<u64>().ok());
        (number, name)
    });
    files
}

/// The table (segment) files of every partition.
fn tables(data_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = files_under(&data_dir.join("store").join("partitions"))
        .into_iter()
        .filter(|path| {
            path.components()
                .any(|component| component.as_os_str() == "segments")
        })
        .collect();
    files.sort();
    files
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else if entry
            .metadata()
            .map(|metadata| metadata.len() > 0)
            .unwrap_or(false)
        {
            files.push(path);
        }
    }
    files
}

/// The length of a journal's written part: journals are pre-allocated, so
/// the records end at the last non-zero byte.
fn written_length(path: &Path) -> std::io::Result<u64> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    Ok(bytes
        .iter()
        .rposition(|byte| *byte != 0)
        .map_or(0, |position| position as u64 + 1))
}

/// Writes random bytes right after the newest journal's last record, as a
/// write cut short by a crash leaves them. Returns what was done.
pub fn tear_last_write(data_dir: &Path, random: &mut SplitMix64) -> std::io::Result<String> {
    let Some(journal) = journals(data_dir).pop() else {
        return Ok("no journal to tear".into());
    };
    let end = written_length(&journal)?;
    let n_bytes = random.in_range(1, TORN_BYTES_MAX);
    let garbage: Vec<u8> = (0..n_bytes).map(|_| random.next_u64() as u8).collect();
    let mut file = OpenOptions::new().write(true).open(&journal)?;
    file.seek(SeekFrom::Start(end))?;
    file.write_all(&garbage)?;
    file.sync_all()?;
    Ok(format!(
        "{n_bytes} garbage bytes after the last record (offset {end}) of {}",
        short_name(data_dir, &journal)
    ))
}

/// Damages one data file: a bit flip or a truncation, in a table file or
/// in the written part of a journal. Returns what was done, or `None` when
/// there is nothing to damage.
pub fn corrupt(data_dir: &Path, random: &mut SplitMix64) -> std::io::Result<Option<String>> {
    let tables = tables(data_dir);
    let journals = journals(data_dir);
    let use_table = !tables.is_empty() && (journals.is_empty() || random.in_range(0, 1) == 0);
    let (path, length) = if use_table {
        let path = tables[random.in_range(0, tables.len() as u64 - 1) as usize].clone();
        let length = std::fs::metadata(&path)?.len();
        (path, length)
    } else {
        let Some(path) = journals
            .iter()
            .rev()
            .find(|path| {
                written_length(path)
                    .map(|length| length > 0)
                    .unwrap_or(false)
            })
            .cloned()
        else {
            return Ok(None);
        };
        let length = written_length(&path)?;
        (path, length)
    };
    if length == 0 {
        return Ok(None);
    }
    let offset = random.in_range(0, length - 1);
    let name = short_name(data_dir, &path);
    if random.in_range(0, 2) == 0 {
        let file = OpenOptions::new().write(true).open(&path)?;
        file.set_len(offset)?;
        file.sync_all()?;
        Ok(Some(format!(
            "truncated {name} from {length} to {offset} bytes"
        )))
    } else {
        let bit = random.in_range(0, 7) as u8;
        let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
        let mut byte = [0u8];
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut byte)?;
        byte[0] ^= 1 << bit;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(&byte)?;
        file.sync_all()?;
        Ok(Some(format!(
            "flipped bit {bit} at offset {offset} of {name}"
        )))
    }
}

/// Copies a data directory (of a stopped server) to `backup`.
pub fn back_up(data_dir: &Path, backup: &Path) -> std::io::Result<()> {
    if backup.exists() {
        std::fs::remove_dir_all(backup)?;
    }
    copy_dir(data_dir, backup)
}

/// Replaces a data directory with its backup.
pub fn restore(data_dir: &Path, backup: &Path) -> std::io::Result<()> {
    std::fs::remove_dir_all(data_dir)?;
    std::fs::rename(backup, data_dir)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn short_name(data_dir: &Path, path: &Path) -> String {
    path.strip_prefix(data_dir)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_write_lands_after_the_last_record() {
        let dir = std::env::temp_dir().join(format!("cairn-check-disk-{}", std::process::id()));
        let journals = dir.join("store").join("journals");
        std::fs::create_dir_all(&journals).unwrap();
        // A sealed journal whose name sorts after the newest one's as text.
        std::fs::write(journals.join("99"), vec![9u8; 4096]).unwrap();
        let journal = journals.join("100");
        let mut content = vec![7u8; 100];
        content.resize(4096, 0);
        std::fs::write(&journal, &content).unwrap();
        let mut random = SplitMix64::new(1);
        tear_last_write(&dir, &mut random).unwrap();
        let after = std::fs::read(&journal).unwrap();
        assert_eq!(&after[..100], &content[..100]);
        assert_eq!(after.len(), 4096);
        assert!(written_length(&journal).unwrap() > 100);
        assert_eq!(std::fs::read(journals.join("99")).unwrap(), vec![9u8; 4096]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
