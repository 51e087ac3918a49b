//! Durable timers (`/v1/timers`, "Timers" in `docs/api-v1.md`): the
//! handle the routes share ([`Timers`]: the timer store, the clock, the
//! scheduler's wake-up, the metrics) and the scheduler task that fires due
//! occurrences ([`spawn_scheduler`]).
//!
//! The pure parts are `cron.rs` (the expression) and `schedule.rs` (the
//! occurrences, DST and catch-up). The scheduler is a thin runtime around
//! them: it claims due timers from the store's time index, builds each due
//! occurrence's fact (the template with `fields.cairn_timer` added), writes
//! them with the ordinary `Store::put_facts` (idempotent by hash: a second
//! firing of an occurrence stores nothing new), and only once they are
//! durable records each timer's progress, conditionally (see
//! `cairn_store::TimerProgress`). A crash between the two fires the same
//! occurrences again, which stores nothing new: each occurrence is stored
//! at most once, and at least once after a restart.

pub mod cron;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use cairn_api::timers::TIMER_FIELD;
use cairn_api::{TimerDefinition, TimerView};
use cairn_fact::{parse_json, CanonicalFact, Value, JSON_DEPTH_MAX};
use cairn_store::{Store, TimerProgress, TimerRecord, TimerStore, WriteError};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::limits::{
    BATCH_FACTS_MAX, TIMERS_DUE_PER_PASS_MAX, TIMER_CLAIM_MS, TIMER_IDLE_WAKE, TIMER_RETRY_MS,
};
use schedule::{format_due, parse_at, CatchUp, Schedule, ScheduleError};

/// How often the pending-timers gauge is refreshed at most.
const PENDING_REFRESH: Duration = Duration::from_secs(10);

/// The timers of one server, shared by the routes and the scheduler.
pub struct Timers {
    /// Where timers are kept.
    pub store: Arc<dyn TimerStore>,
    /// The time the embedded store judges "due" by (the fault clock in
    /// tests); on PostgreSQL the database's clock decides what is due.
    pub clock: Clock,
    /// Canonical bytes of one fact at most (the server's setting).
    pub fact_canonical_bytes_max: usize,
    wake: Notify,
    metrics: TimerMetrics,
}

struct TimerMetrics {
    pending: IntGauge,
    fired: IntCounter,
    lateness_seconds: Histogram,
}

impl TimerMetrics {
    fn new() -> TimerMetrics {
        TimerMetrics {
            pending: IntGauge::new(
                "cairn_timers_pending",
                "Timers that will fire again (refreshed every 10 s)",
            )
            .expect("valid gauge"),
            fired: IntCounter::new(
                "cairn_timer_fired_total",
                "Timer occurrences fired by this server (their facts are durable)",
            )
            .expect("valid counter"),
            lateness_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "cairn_timer_lateness_seconds",
                    "Time from an occurrence's due time to its fact being durable",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
                ]),
            )
            .expect("valid histogram"),
        }
    }
}

/// A definition as stored and its parsed schedule.
pub struct ParsedTimer {
    /// The definition (catch-up filled in, template canonical).
    pub definition: TimerDefinition,
    /// Its schedule.
    pub schedule: Schedule,
    /// Its catch-up policy.
    pub catch_up: CatchUp,
}

/// Why a definition was refused.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// The schedule is invalid.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// The template is not a valid fact (with the timer's field added).
    #[error("fact is not a valid fact: {0}")]
    Template(cairn_fact::FactError),
}

fn catch_up_of(policy: cairn_api::CatchUp) -> CatchUp {
    match policy {
        cairn_api::CatchUp::All => CatchUp::All,
        cairn_api::CatchUp::Latest => CatchUp::Latest,
        cairn_api::CatchUp::None => CatchUp::None,
    }
}

impl Timers {
    /// A handle over `store`; `clock` is the embedded store's notion of now.
    pub fn new(
        store: Arc<dyn TimerStore>,
        clock: Clock,
        fact_canonical_bytes_max: usize,
    ) -> Arc<Timers> {
        Arc::new(Timers {
            store,
            clock,
            fact_canonical_bytes_max,
            wake: Notify::new(),
            metrics: TimerMetrics::new(),
        })
    }

    /// Adds the timer metrics to what `/metrics` renders.
    pub fn register_metrics(&self, metrics: &crate::HttpMetrics) {
        metrics.register(Box::new(self.metrics.pending.clone()));
        metrics.register(Box::new(self.metrics.fired.clone()));
        metrics.register(Box::new(self.metrics.lateness_seconds.clone()));
    }

    /// Wakes the scheduler (a timer was put).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Checks a definition that passed the body checks and normalizes it
    /// (catch-up filled in, the template in canonical form): the schedule
    /// parses, and the template with the timer's field added is a fact of
    /// at most the server's size. `now_ms` checks that a cron fires.
    pub fn prepare(
        &self,
        name: &str,
        mut definition: TimerDefinition,
        now_ms: u64,
    ) -> Result<ParsedTimer, DefinitionError> {
        let schedule = match (&definition.at, &definition.cron, &definition.timezone) {
            (Some(at), _, _) => Schedule::At {
                at_ms: parse_at(at)?,
            },
            (None, Some(cron), Some(zone)) => Schedule::cron(cron, zone, now_ms)?,
            _ => unreachable!("the body checks require at or cron with a timezone"),
        };
        let template_text = serde_json::to_vec(&definition.fact).expect("values serialize");
        let template = CanonicalFact::from_json(&template_text, usize::MAX)
            .map_err(DefinitionError::Template)?;
        // Every occurrence's fact has this size: every due text has one length.
        build_fact(&template, name, 0, self.fact_canonical_bytes_max)
            .map_err(DefinitionError::Template)?;
        definition.fact = serde_json::from_slice(&template.canonical).expect("canonical JSON");
        let catch_up = definition.catch_up.unwrap_or_default();
        definition.catch_up = Some(catch_up);
        Ok(ParsedTimer {
            definition,
            schedule,
            catch_up: catch_up_of(catch_up),
        })
    }

    /// Parses a stored definition again.
    pub fn parse_stored(&self, record: &TimerRecord) -> Result<ParsedTimer, String> {
        let definition: TimerDefinition = serde_json::from_str(&record.definition_json)
            .map_err(|error| format!("stored definition does not parse: {error}"))?;
        // A cron that fired once still parses: its check is against 0.
        self.prepare(&record.name, definition, 0)
            .map_err(|error| format!("stored definition is invalid: {error}"))
    }

    /// The view of a stored timer.
    pub fn view(&self, record: &TimerRecord) -> Result<TimerView, String> {
        let definition: TimerDefinition =
            serde_json::from_str(&record.definition_json).map_err(|error| {
                format!(
                    "stored definition of {:?} does not parse: {error}",
                    record.name
                )
            })?;
        Ok(TimerView {
            name: record.name.clone(),
            definition,
            next_due: record.next_due_ms.map(format_due),
            last_fired: record.last_fired_ms.map(format_due),
            last_error: record.last_error.clone(),
        })
    }
}

/// The fact of one occurrence: `template` with `fields.cairn_timer =
/// {"name", "due"}` added.
pub fn build_fact(
    template: &CanonicalFact,
    name: &str,
    due_ms: u64,
    canonical_bytes_max: usize,
) -> Result<CanonicalFact, cairn_fact::FactError> {
    let mut value = parse_json(&template.canonical, JSON_DEPTH_MAX)?;
    let timer_field = Value::Object(vec![
        ("name".to_string(), Value::String(name.to_string())),
        ("due".to_string(), Value::String(format_due(due_ms))),
    ]);
    if let Value::Object(members) = &mut value {
        for (key, member) in members.iter_mut() {
            if key == "fields" {
                if let Value::Object(fields) = member {
                    fields.retain(|(field, _)| field != TIMER_FIELD);
                    fields.push((TIMER_FIELD.to_string(), timer_field.clone()));
                }
            }
        }
    }
    CanonicalFact::from_value(&value, canonical_bytes_max)
}

/// Starts the scheduler of `store`'s timers; it stops when `shutdown` is
/// cancelled (await the handle before closing the store).
pub fn spawn_scheduler<S: Store + TimerStore>(
    store: Arc<S>,
    timers: Arc<Timers>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut pending_refreshed: Option<tokio::time::Instant> = None;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            if pending_refreshed.is_none_or(|at| at.elapsed() >= PENDING_REFRESH) {
                pending_refreshed = Some(tokio::time::Instant::now());
                match store.pending_timers().await {
                    Ok(pending) => timers.metrics.pending.set(pending as i64),
                    Err(error) => tracing::warn!(%error, "cannot count the pending timers"),
                }
            }
            let claimed = store
                .claim_due_timers(
                    timers.clock.now_ms(),
                    TIMER_CLAIM_MS,
                    TIMERS_DUE_PER_PASS_MAX,
                )
                .await;
            let due = match claimed {
                Ok(due) => due,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the due timers; trying again");
                    sleep_or_wake(&timers, &shutdown, TIMER_IDLE_WAKE).await;
                    continue;
                }
            };
            if due.timers.is_empty() {
                let wait = match store.next_timer_attempt_ms().await {
                    Ok(Some(attempt_at_ms)) => {
                        Duration::from_millis(attempt_at_ms.saturating_sub(timers.clock.now_ms()))
                            .min(TIMER_IDLE_WAKE)
                    }
                    _ => TIMER_IDLE_WAKE,
                };
                sleep_or_wake(&timers, &shutdown, wait).await;
                continue;
            }
            if !fire_pass(&*store, &timers, due.now_ms, due.timers).await {
                // The store refuses writes (or is unreachable): try again
                // later rather than at once.
                sleep_or_wake(&timers, &shutdown, TIMER_IDLE_WAKE).await;
            }
        }
    })
}

async fn sleep_or_wake(timers: &Timers, shutdown: &CancellationToken, wait: Duration) {
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        () = timers.wake.notified() => {}
        () = shutdown.cancelled() => {}
    }
}

/// One claimed timer in a pass: what it fires and where it goes next.
struct Planned {
    record: TimerRecord,
    facts: Vec<CanonicalFact>,
    fired_ms: Vec<u64>,
    next_due_ms: Option<u64>,
    error: Option<String>,
}

/// Fires one pass; false if its progress could not be recorded.
async fn fire_pass<S: Store + TimerStore>(
    store: &S,
    timers: &Timers,
    now_ms: u64,
    claimed: Vec<TimerRecord>,
) -> bool {
    let mut planned = Vec::with_capacity(claimed.len());
    for record in claimed {
        let mut entry = Planned {
            facts: Vec::new(),
            fired_ms: Vec::new(),
            next_due_ms: record.next_due_ms,
            error: None,
            record,
        };
        match plan(timers, &entry.record, now_ms) {
            Ok((facts, fired_ms, next_due_ms)) => {
                entry.facts = facts;
                entry.fired_ms = fired_ms;
                entry.next_due_ms = next_due_ms;
            }
            Err(error) => {
                tracing::error!(timer = %entry.record.name, %error, "timer cannot fire");
                entry.error = Some(error);
            }
        }
        planned.push(entry);
    }
    write_facts(store, &mut planned).await;
    let written_at_ms = timers.clock.now_ms();
    let mut progress = Vec::with_capacity(planned.len());
    for entry in planned {
        let record = &entry.record;
        let (fired_ms, next_due_ms, attempt_at_ms) = match &entry.error {
            None => {
                for &due_ms in &entry.fired_ms {
                    timers.metrics.fired.inc();
                    timers
                        .metrics
                        .lateness_seconds
                        .observe(written_at_ms.saturating_sub(due_ms) as f64 / 1000.0);
                }
                (
                    entry.fired_ms.last().copied(),
                    entry.next_due_ms,
                    entry.next_due_ms,
                )
            }
            Some(_) => (
                None,
                record.next_due_ms,
                Some(now_ms.saturating_add(TIMER_RETRY_MS)),
            ),
        };
        progress.push(TimerProgress {
            name: record.name.clone(),
            generation: record.generation,
            from_due_ms: record.next_due_ms,
            fired_ms,
            next_due_ms,
            attempt_at_ms,
            last_error: entry.error.clone(),
        });
    }
    match store.record_timer_progress(progress).await {
        Ok(_) => true,
        Err(error) => {
            // The facts are durable; the next pass fires them again, which
            // stores nothing new.
            tracing::warn!(%error, "cannot record timer progress; the occurrences fire again");
            false
        }
    }
}

type Plan = (Vec<CanonicalFact>, Vec<u64>, Option<u64>);

fn plan(timers: &Timers, record: &TimerRecord, now_ms: u64) -> Result<Plan, String> {
    let Some(due_ms) = record.next_due_ms else {
        return Ok((Vec::new(), Vec::new(), None));
    };
    let parsed = timers.parse_stored(record)?;
    let pass = parsed.schedule.plan_pass(parsed.catch_up, due_ms, now_ms);
    let template_text = serde_json::to_vec(&parsed.definition.fact).expect("values serialize");
    let template = CanonicalFact::from_json(&template_text, usize::MAX)
        .map_err(|error| format!("stored template is invalid: {error}"))?;
    let facts = pass
        .fire_ms
        .iter()
        .map(|&due_ms| {
            build_fact(
                &template,
                &record.name,
                due_ms,
                timers.fact_canonical_bytes_max,
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("the occurrence's fact is invalid: {error}"))?;
    Ok((facts, pass.fire_ms, pass.next_due_ms))
}

/// Writes the facts of every planned timer, in batches; a batch refused
/// for its content (missing predecessors) is written again timer by timer,
/// so that one timer's missing predecessor does not hold up the others.
async fn write_facts<S: Store>(store: &S, planned: &mut [Planned]) {
    let mut start = 0;
    while start < planned.len() {
        let mut end = start;
        let mut n_facts = 0;
        while end < planned.len()
            && (end == start || n_facts + planned[end].facts.len() <= BATCH_FACTS_MAX)
        {
            n_facts += planned[end].facts.len();
            end += 1;
        }
        let chunk = &mut planned[start..end];
        let batch: Vec<CanonicalFact> = chunk
            .iter()
            .filter(|entry| entry.error.is_none())
            .flat_map(|entry| entry.facts.iter().cloned())
            .collect();
        if !batch.is_empty() {
            match store.put_facts(batch).await {
                Ok(_) => {}
                Err(WriteError::MissingPredecessors { .. }) if chunk.len() > 1 => {
                    for entry in chunk.iter_mut().filter(|entry| entry.error.is_none()) {
                        if entry.facts.is_empty() {
                            continue;
                        }
                        if let Err(error) = store.put_facts(entry.facts.clone()).await {
                            entry.error = Some(firing_error(&error));
                        }
                    }
                }
                Err(error) => {
                    for entry in chunk.iter_mut().filter(|entry| entry.error.is_none()) {
                        entry.error = Some(firing_error(&error));
                    }
                }
            }
        }
        start = end;
    }
}

fn firing_error(error: &WriteError) -> String {
    match error {
        WriteError::MissingPredecessors { missing } => format!(
            "the template's predecessors are not stored: {}",
            missing
                .iter()
                .map(|hash| hash.to_hex())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => format!("the fact could not be written: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_occurrence_is_the_template_with_the_timer_field() {
        let template = CanonicalFact::from_json(
            br#"{"type":"Shop.Reminder","fields":{"order":"42"},"predecessors":{}}"#,
            usize::MAX,
        )
        .unwrap();
        let fact = build_fact(&template, "remind-42", 1_000, usize::MAX).unwrap();
        assert_eq!(
            String::from_utf8(fact.canonical.clone()).unwrap(),
            r#"{"fields":{"cairn_timer":{"due":"1970-01-01T00:00:01.000Z","name":"remind-42"},"order":"42"},"predecessors":{},"type":"Shop.Reminder"}"#
        );
        let again = build_fact(&template, "remind-42", 1_000, usize::MAX).unwrap();
        assert_eq!(fact.hash, again.hash);
        let other = build_fact(&template, "remind-42", 1_001, usize::MAX).unwrap();
        assert_ne!(fact.hash, other.hash);
        assert!(build_fact(&template, "remind-42", 1_000, 50).is_err());
    }
}
