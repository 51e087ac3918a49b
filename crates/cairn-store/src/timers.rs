//! Durable timers as the store keeps them (`/v1/timers`, "Timers" in
//! `docs/api-v1.md`): each timer's definition and where its schedule
//! stands, with an index of the timers to look at ordered by time, so that
//! a scheduler reads only the due ones — a million pending timers are
//! never all in memory.
//!
//! The store does not interpret definitions or compute occurrences (the
//! server's `timers/schedule.rs` does); it keeps records and applies the
//! changes below atomically and durably (durable on return, like a fact).

use futures_util::future::BoxFuture;

use crate::error::{ReadError, WriteError};

/// One timer as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerRecord {
    /// Its unique name.
    pub name: String,
    /// Its definition as JSON text (the server's; not interpreted here).
    pub definition_json: String,
    /// 1 when created, one more at each `put_timer` that changed the
    /// definition; assigned by the store.
    pub generation: u64,
    /// The occurrence to fire next (ms since the Unix epoch); `None` once
    /// there is none (a one-shot that fired).
    pub next_due_ms: Option<u64>,
    /// When a scheduler should look at the timer next: normally
    /// `next_due_ms`, later after a failed attempt (and, on PostgreSQL,
    /// while a server holds a claim). `None`: never. This is the index.
    pub attempt_at_ms: Option<u64>,
    /// The last occurrence fired.
    pub last_fired_ms: Option<u64>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

/// What [`TimerStore::put_timer`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerPut {
    /// The timer did not exist.
    Created,
    /// The timer existed with another definition; it now has the new one
    /// (and the next generation).
    Replaced,
    /// The timer existed with the same definition; nothing changed.
    Unchanged,
}

/// Due timers claimed by one scheduler pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueTimers {
    /// The time the store judged "due" by (ms since the Unix epoch): the
    /// caller's on the embedded store, the database's on PostgreSQL.
    pub now_ms: u64,
    /// The due timers, earliest `attempt_at_ms` first.
    pub timers: Vec<TimerRecord>,
}

/// What one firing pass did with one claimed timer, recorded only if the
/// timer is still at `generation` with `from_due_ms` as its next
/// occurrence — a compare-and-set, so progress never moves backwards, a
/// definition replaced meanwhile is not overwritten, and a deleted timer
/// is not resurrected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerProgress {
    /// The timer.
    pub name: String,
    /// The generation the pass saw.
    pub generation: u64,
    /// The `next_due_ms` the pass saw.
    pub from_due_ms: Option<u64>,
    /// The last occurrence the pass fired (durably), if any.
    pub fired_ms: Option<u64>,
    /// The occurrence to fire next.
    pub next_due_ms: Option<u64>,
    /// When to look again.
    pub attempt_at_ms: Option<u64>,
    /// Why the pass failed, if it did.
    pub last_error: Option<String>,
}

/// The persistence of durable timers. Implemented by both backends;
/// every write is durable on return.
pub trait TimerStore: Send + Sync + 'static {
    /// Creates or replaces the timer `record.name`. If it exists with the
    /// same `definition_json`, nothing changes (`Unchanged`, the stored
    /// record answered). Otherwise the record is stored with the next
    /// generation, keeping the stored `last_fired_ms` if there was one.
    /// Answers what it did and the record as stored.
    fn put_timer(
        &self,
        record: TimerRecord,
    ) -> BoxFuture<'_, Result<(TimerPut, TimerRecord), WriteError>>;

    /// The timer `name`, if it exists.
    fn timer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<TimerRecord>, ReadError>>;

    /// Timers with names after `after` (all if `None`), by name, at most
    /// `limit`.
    fn timers<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<TimerRecord>, ReadError>>;

    /// Deletes the timer `name`; `false` if it did not exist. A deleted
    /// timer never fires again: progress recorded for it later is ignored.
    fn delete_timer<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, WriteError>>;

    /// Claims at most `limit` timers whose `attempt_at_ms` is at or before
    /// now, earliest first, read through the time index. "Now" is
    /// `now_ms` on the embedded store and the database's clock on
    /// PostgreSQL (answered in [`DueTimers::now_ms`]). On PostgreSQL the
    /// claim moves their `attempt_at_ms` to now + `claim_ms` (rows locked
    /// by another claim are skipped), so servers sharing the database
    /// share the work and a claimer that dies is replaced after
    /// `claim_ms`; the embedded store has one scheduler and records no
    /// claim.
    fn claim_due_timers(
        &self,
        now_ms: u64,
        claim_ms: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<DueTimers, ReadError>>;

    /// Records progress (see [`TimerProgress`]); answers how many of the
    /// entries applied.
    fn record_timer_progress(
        &self,
        progress: Vec<TimerProgress>,
    ) -> BoxFuture<'_, Result<usize, WriteError>>;

    /// The earliest `attempt_at_ms` of any timer, if any: when the
    /// scheduler should wake.
    fn next_timer_attempt_ms(&self) -> BoxFuture<'_, Result<Option<u64>, ReadError>>;

    /// Timers with an `attempt_at_ms` (that will fire again).
    fn pending_timers(&self) -> BoxFuture<'_, Result<u64, ReadError>>;
}
