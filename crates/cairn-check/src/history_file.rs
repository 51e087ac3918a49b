//! `history.tsv` in the work directory: every delivery, ack and fault of a
//! run, one per line with times in milliseconds since the start, for
//! reading a counterexample's story. Lines are written as they are
//! recorded (through a buffer), so the run never holds them all.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::history::{Delivery, FaultEvent, Phase};

/// Bytes buffered before a write to the file: large enough that the
/// writes cost little under the history's lock.
const BUFFER_BYTES: usize = 1 << 20;
/// The history keeps times in nanoseconds since the start; the file, in
/// milliseconds (truncated, as `Duration::as_millis` does).
const NS_PER_MS: u64 = 1_000_000;

/// The file a run's history is streamed to. The first error ends the
/// writing and is reported at the end; the run goes on without the file.
#[derive(Default)]
pub struct HistoryFile {
    out: Option<BufWriter<File>>,
    error: Option<String>,
}

impl HistoryFile {
    /// Creates the file at `path` and writes its header.
    pub fn create(path: &Path) -> HistoryFile {
        let mut file = HistoryFile::default();
        match File::create(path) {
            Ok(created) => file.out = Some(BufWriter::with_capacity(BUFFER_BYTES, created)),
            Err(error) => file.error = Some(error.to_string()),
        }
        file.line(format_args!(
            "event\tsubscription\thash\tseq\tattempt\tphase\tsent_ms\tanswered_ms"
        ));
        file
    }

    /// A message a consumer received.
    pub fn delivery(&mut self, subscription: &str, hash_text: &str, delivery: &Delivery) {
        let Delivery {
            seq,
            attempt,
            phase,
            pull_sent_ns,
            pull_answered_ns,
        } = *delivery;
        let (sent_ms, answered_ms) = (pull_sent_ns / NS_PER_MS, pull_answered_ns / NS_PER_MS);
        self.line(format_args!(
            "delivery\t{subscription}\t{hash_text}\t{seq}\t{attempt}\t{phase:?}\t{sent_ms}\t{answered_ms}"
        ));
    }

    /// An ack answered `"acked"`.
    pub fn ack(&mut self, subscription: &str, hash_text: &str, phase: Phase, answered_ns: u64) {
        let answered_ms = answered_ns / NS_PER_MS;
        self.line(format_args!(
            "ack\t{subscription}\t{hash_text}\t\t\t{phase:?}\t\t{answered_ms}"
        ));
    }

    /// A fault the nemesis injected.
    pub fn fault(&mut self, fault: &FaultEvent) {
        self.line(format_args!(
            "fault\t{}\t{}\t\t\t\t{}\t",
            fault.kind.name(),
            fault.detail,
            fault.at_ms
        ));
    }

    /// Writes what is buffered; the first error met since the file was
    /// created, if any.
    pub fn finish(&mut self) -> Result<(), String> {
        if let Some(out) = &mut self.out {
            if let Err(error) = out.flush() {
                self.error.get_or_insert(error.to_string());
            }
        }
        self.out = None;
        match &self.error {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    fn line(&mut self, line: std::fmt::Arguments) {
        let Some(out) = &mut self.out else {
            return;
        };
        if let Err(error) = writeln!(out, "{line}") {
            self.error = Some(error.to_string());
            self.out = None;
        }
    }
}
