//! Durable timers under faults: timer setters, through every server, put
//! one-shot timers due a little later (0.5–5 s, with every `catch_up`
//! variant), each setter one cron timer that fires every minute (`* * *
//! * *` in UTC; even setters `catch_up: all`, kept to the end; odd ones
//! `latest`, deleted during the run), and delete some timers — some
//! before their due time, some after. The history keeps every answer
//! (acknowledged, refused or unknown) with the checker's wall-clock times,
//! and the nemesis records every clock jump it makes ([`ClockJump`]).
//!
//! An occurrence of a timer is one fact, the template with
//! `fields.cairn_timer = {"name", "due"}` added (`docs/api-v1.md`,
//! "Timers"), so the oracle finds each one in every server's log and
//! checks:
//!
//! - **at most once**: per (timer, due) at most one entry in the log;
//! - **no phantom**: every occurrence belongs to a timer a `PUT` may have
//!   created (named by the run, not refused at its first answer), carries
//!   that timer's template, and is due when its schedule says (a
//!   one-shot's `at`; a whole minute, not long before the cron was set);
//! - **at least once after heal**: every one-shot whose `PUT` was
//!   acknowledged and that no `DELETE` was sent for, and every minute of a
//!   `catch_up: all` cron from its acknowledgement (plus the largest
//!   forward clock jump then in force) to the heal, has its occurrence.
//!   One-shots fire whatever their `catch_up` says (the API: "a one-shot
//!   `at` fires whatever it says"), so none is left out for it; `latest`
//!   crons may legitimately skip minutes missed during a long outage, so
//!   they are judged only by the two checks above. The run waits after the
//!   heal until every expected occurrence is stored, at most
//!   [`SETTLE_AFTER_DUE_MS`] past the latest one's due time;
//! - **deleted timers do not fire**: an occurrence is not stored if the
//!   timer's `DELETE` was acknowledged before any server's clock could
//!   reach its due time. A scheduler claims an occurrence only once its
//!   clock reaches the due time and may write it after a `DELETE` that
//!   came later, so only "before" is sound — with a margin
//!   ([`CLOCK_MARGIN_MS`]), and counting every forward clock jump in force
//!   between the `PUT` and the `DELETE` (the embedded server's clock is the
//!   fault clock, moved up to 30 s ahead; on PostgreSQL the database's
//!   clock, never moved, decides). A timer whose `PUT` had an attempt
//!   without an answer is not judged: that attempt may reach the server
//!   late (the proxy holds stalled bytes until it heals) and create the
//!   timer again after the `DELETE`, which is correct behaviour.
//!
//! The checks that depend on time need the servers' clocks to be the
//! checker's (plus the jumps it made): servers it starts, over the
//! embedded store or a PostgreSQL on this machine. For servers given by
//! URL, or a remote database, only the first two checks are made.
//!
//! After the wait the run deletes every cron timer that is left, so that
//! nothing fires into a database that outlives the run.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn_delivery::SplitMix64;
use cairn_fact::Hash;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

use crate::api::{Answer, Api};
use crate::coordination::{retry_pause, ATTEMPTS_MAX};
use crate::oracle::Verdicts;
use crate::report::CoordinationSummary;
use crate::workload::{canonical_of, Workload};

/// The type of the timers' templates, and so of their occurrences.
pub const TIMER_TYPE: &str = "check.TimerFired";
/// The types of the log this module keeps.
pub const TYPES: [&str; 1] = [TIMER_TYPE];

/// No occurrence is stored twice.
pub const AT_MOST_ONCE: &str = "timer occurrences stored at most once";
/// Every occurrence stored belongs to a timer the run set.
pub const NO_PHANTOM: &str = "no phantom timer occurrences";
/// Every occurrence due is stored once the faults are healed.
pub const AT_LEAST_ONCE: &str = "timer occurrences stored at least once after heal";
/// A timer deleted before it was due never fires.
pub const DELETED_DO_NOT_FIRE: &str = "deleted timers do not fire";

/// How far ahead of the `PUT` a one-shot is due, at least and at most.
const DUE_MS_MIN: u64 = 500;
const DUE_MS_MAX: u64 = 5_000;
/// One-shots to be deleted before their due time are due this far ahead
/// at least (so that the `DELETE` can be judged), and deleted this long
/// after their `PUT` at most.
const DUE_MS_MIN_DELETED_BEFORE: u64 = 2_500;
const DELETE_BEFORE_AFTER_MS_MAX: u64 = 1_000;
/// One-shots deleted after their due time are deleted up to this long
/// after it.
const DELETE_AFTER_DUE_MS_MAX: u64 = 1_500;
/// Percent of one-shots deleted before their due time, and after it.
const DELETE_BEFORE_DUE_PERCENT: u64 = 25;
const DELETE_AFTER_DUE_PERCENT: u64 = 10;
/// Pause between two timers of one setter, at least and at most.
const PAUSE_MS_MIN: u64 = 100;
const PAUSE_MS_MAX: u64 = 600;
/// When an odd setter deletes its `latest` cron, after setting it.
const CRON_DELETE_AFTER_MS_MIN: u64 = 5_000;
const CRON_DELETE_AFTER_MS_MAX: u64 = 40_000;
/// The cron timers' expression: every minute.
const CRON_EVERY_MINUTE: &str = "* * * * *";
const MINUTE_MS: u64 = 60_000;
/// How far the checker's reading of the time may be from a server's
/// (same machine, same clock: reading and rounding only; kept generous).
pub const CLOCK_MARGIN_MS: u64 = 1_000;
/// How long a server may keep a clock offset after the checker set it
/// back (the server reads the fault clock file every 50 ms; generous for
/// a loaded machine).
pub const CLOCK_FILE_LAG_MS: u64 = 2_000;
/// How long the run waits for the expected occurrences after the latest
/// one's due time (or after the heal, if later): covers a PostgreSQL
/// server's claim of a timer that died with it (5 s) and a failed write's
/// retry (5 s) with some to spare, while keeping the run short.
pub const SETTLE_AFTER_DUE_MS: u64 = 10_000;
// A one-shot meant to be deleted before its due time can be: its DELETE
// is sent before the due time less the margin, unless the run is slow.
const _: () = assert!(DUE_MS_MIN_DELETED_BEFORE > DELETE_BEFORE_AFTER_MS_MAX + CLOCK_MARGIN_MS);
const _: () = assert!(DUE_MS_MIN <= DUE_MS_MIN_DELETED_BEFORE);
const _: () = assert!(DUE_MS_MIN_DELETED_BEFORE <= DUE_MS_MAX);
/// How often the wait looks for the occurrences still missing.
const SETTLE_POLL: Duration = Duration::from_millis(200);

/// The checker's wall clock, in ms since the Unix epoch: timers are due
/// by it (and by the servers' clocks, which are it plus the jumps).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// The one format of `fields.cairn_timer.due`: UTC, RFC 3339, three
/// fractional digits and `Z`.
pub fn format_due(due_ms: u64) -> String {
    Utc.timestamp_millis_opt(due_ms as i64)
        .single()
        .map(|instant| instant.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// Parses a `due` in the one format; `None` for anything else.
pub fn parse_due(text: &str) -> Option<u64> {
    let due_ms = u64::try_from(DateTime::parse_from_rfc3339(text).ok()?.timestamp_millis()).ok()?;
    (format_due(due_ms) == text).then_some(due_ms)
}

/// The name of timer `n` of setter `setter_idx` of run `run_id`.
pub fn timer_name(run_id: &str, setter_idx: usize, n: u64) -> String {
    format!("check-{run_id}-timer-{setter_idx}-{n}")
}

/// The fact an occurrence of the timer `name` due at `due` is: the
/// template with `fields.cairn_timer` added.
pub fn occurrence_fact(template: &Value, name: &str, due: &str) -> Value {
    let mut fact = template.clone();
    fact["fields"]["cairn_timer"] = json!({"name": name, "due": due});
    fact
}

/// The hash of that fact.
pub fn occurrence_hash(template: &Value, name: &str, due: &str) -> Option<Hash> {
    canonical_of(&occurrence_fact(template, name, due)).map(|canonical| canonical.hash)
}

/// When a timer fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerSchedule {
    /// Once, at this instant (ms since the Unix epoch).
    At {
        /// The instant.
        at_ms: u64,
    },
    /// At every whole minute (UTC), with this `catch_up`.
    EveryMinute {
        /// True for `catch_up: all`, false for `latest`.
        catch_up_all: bool,
    },
}

/// How a `PUT` or a `DELETE` was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerAnswer {
    /// Done (`200`/`201`; for a `DELETE` also a `404` after an attempt
    /// without an answer, which that attempt explains), answered at this
    /// wall-clock time.
    Done {
        /// When the answer came (ms since the Unix epoch).
        answered_ms: u64,
    },
    /// Refused at its first answer: nothing was done (for a `DELETE`, a
    /// `404`: there was no such timer).
    Refused {
        /// The status.
        status: u16,
    },
    /// No answer to any attempt, or a refusal after an attempt without one.
    Unknown,
}

/// One timer the run set, with what came of it.
#[derive(Clone, Debug, PartialEq)]
pub struct TimerSet {
    /// Its name.
    pub name: String,
    /// When it fires.
    pub schedule: TimerSchedule,
    /// Its template.
    pub template: Value,
    /// When the `PUT`'s first attempt was sent (wall clock, ms).
    pub put_sent_ms: u64,
    /// How the `PUT` was answered.
    pub put: TimerAnswer,
    /// True when an attempt of the `PUT` got no answer: it may reach a
    /// server late, and create the timer again.
    pub put_unanswered: bool,
    /// The `DELETE` the workload sent, if any: its first attempt's time
    /// and its answer.
    pub delete: Option<(u64, TimerAnswer)>,
}

/// A clock jump the nemesis made: a server's clock was `offset_ms` off
/// from `from_ms` to `to_ms` (the checker's wall clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockJump {
    /// The offset (positive: ahead).
    pub offset_ms: i64,
    /// When the checker moved the clock.
    pub from_ms: u64,
    /// When it set it back.
    pub to_ms: u64,
}

/// What the timer setters recorded, and what the run knows of clocks.
#[derive(Debug, Default)]
pub struct TimerRecords {
    /// Every timer set, in order of completion of its `PUT`.
    pub timers: Vec<TimerSet>,
    /// Every clock jump, in order.
    pub clock_jumps: Vec<ClockJump>,
    /// When the faults were healed (wall clock, ms); `None` until then.
    pub healed_ms: Option<u64>,
    /// True when the servers' clocks are the checker's (plus the jumps):
    /// only then are the checks that depend on time made.
    pub clocks_shared: bool,
    /// How long the run waited for the expected occurrences after the
    /// heal and the drain (ms).
    pub waited_ms: u64,
}

impl TimerRecords {
    /// The largest forward jump in force at some moment from `from_ms` to
    /// `to_ms` (counting the time a server takes to notice the jump's end).
    fn forward_jump_ms(&self, from_ms: u64, to_ms: u64) -> u64 {
        self.clock_jumps
            .iter()
            .filter(|jump| {
                jump.offset_ms > 0
                    && jump.from_ms <= to_ms
                    && jump.to_ms + CLOCK_FILE_LAG_MS >= from_ms
            })
            .map(|jump| jump.offset_ms as u64)
            .max()
            .unwrap_or(0)
    }

    /// The largest jump either way.
    fn largest_jump_ms(&self) -> u64 {
        self.clock_jumps
            .iter()
            .map(|jump| jump.offset_ms.unsigned_abs())
            .max()
            .unwrap_or(0)
    }

    /// True when some server's clock may have reached `due_ms` by
    /// `by_ms` (wall clock) while a timer set at `set_ms` existed.
    fn may_be_due_by(&self, due_ms: u64, set_ms: u64, by_ms: u64) -> bool {
        if by_ms + CLOCK_MARGIN_MS >= due_ms {
            return true;
        }
        self.clock_jumps.iter().any(|jump| {
            let noticed_until_ms = jump.to_ms + CLOCK_FILE_LAG_MS;
            jump.offset_ms > 0
                && jump.from_ms <= by_ms
                && noticed_until_ms >= set_ms
                && noticed_until_ms.min(by_ms) + jump.offset_ms as u64 + CLOCK_MARGIN_MS >= due_ms
        })
    }

    /// The occurrences that must be stored after the heal: (index of the
    /// timer in `timers`, due time). Empty unless the clocks are shared
    /// and the heal is recorded.
    pub fn expected(&self) -> Vec<(usize, u64)> {
        let Some(healed_ms) = self.healed_ms.filter(|_| self.clocks_shared) else {
            return Vec::new();
        };
        let mut expected = Vec::new();
        for (timer_idx, timer) in self.timers.iter().enumerate() {
            let TimerAnswer::Done { answered_ms } = timer.put else {
                continue;
            };
            if timer.delete.is_some() {
                continue;
            }
            match timer.schedule {
                TimerSchedule::At { at_ms } => expected.push((timer_idx, at_ms)),
                TimerSchedule::EveryMinute { catch_up_all: true } => {
                    // Created at some moment up to the answer, by a server
                    // whose clock may have been ahead: its first
                    // occurrence is at the latest the first minute after.
                    let lower_ms = answered_ms
                        + self.forward_jump_ms(timer.put_sent_ms, answered_ms)
                        + CLOCK_MARGIN_MS;
                    let upper_ms = healed_ms.saturating_sub(CLOCK_MARGIN_MS);
                    let mut minute_ms = lower_ms.div_ceil(MINUTE_MS) * MINUTE_MS;
                    while minute_ms <= upper_ms {
                        expected.push((timer_idx, minute_ms));
                        minute_ms += MINUTE_MS;
                    }
                }
                TimerSchedule::EveryMinute {
                    catch_up_all: false,
                } => {}
            }
        }
        expected
    }
}

/// One timer setter: puts one-shot timers (and a cron timer) through
/// random servers and deletes some, until told to stop.
pub async fn run_timer_setter(workload: Arc<Workload>, setter_idx: usize) {
    let mut random = SplitMix64::new(workload.seed ^ (0x5449_4d45 + setter_idx as u64));
    let mut n = 0u64;
    // Deletes to send: when, and the timer's index in the records.
    let mut deletes: Vec<(Instant, usize)> = Vec::new();
    // The cron timer: even setters keep theirs, odd ones delete it.
    let catch_up_all = setter_idx.is_multiple_of(2);
    let mut cron_pending = true;
    while !workload.stop_writes.load(Ordering::Acquire) {
        let now = Instant::now();
        let mut due_now = Vec::new();
        deletes.retain(|&(at, timer_idx)| {
            let due = at <= now;
            if due {
                due_now.push(timer_idx);
            }
            !due
        });
        for timer_idx in due_now {
            delete(&workload, timer_idx, &mut random).await;
        }
        n += 1;
        let name = timer_name(&workload.run_id, setter_idx, n);
        let template = json!({
            "type": TIMER_TYPE,
            "fields": {"run": workload.run_id, "setter": setter_idx, "n": n},
            "predecessors": {},
        });
        if cron_pending {
            cron_pending = false;
            let catch_up = if catch_up_all { "all" } else { "latest" };
            let definition = json!({"cron": CRON_EVERY_MINUTE, "timezone": "UTC",
                "catch_up": catch_up, "fact": template});
            let schedule = TimerSchedule::EveryMinute { catch_up_all };
            let timer_idx = put(
                &workload,
                name,
                schedule,
                template,
                &definition,
                &mut random,
            )
            .await;
            if !catch_up_all {
                let after_ms = random.in_range(CRON_DELETE_AFTER_MS_MIN, CRON_DELETE_AFTER_MS_MAX);
                deletes.push((Instant::now() + Duration::from_millis(after_ms), timer_idx));
            }
            continue;
        }
        let roll = random.in_range(0, 99);
        let delete_before = roll < DELETE_BEFORE_DUE_PERCENT;
        let delete_after =
            !delete_before && roll < DELETE_BEFORE_DUE_PERCENT + DELETE_AFTER_DUE_PERCENT;
        let ahead_ms = if delete_before {
            random.in_range(DUE_MS_MIN_DELETED_BEFORE, DUE_MS_MAX)
        } else {
            random.in_range(DUE_MS_MIN, DUE_MS_MAX)
        };
        let at_ms = wall_ms() + ahead_ms;
        let mut definition = json!({"at": format_due(at_ms), "fact": template});
        match random.in_range(0, 3) {
            0 => definition["catch_up"] = json!("none"),
            1 => definition["catch_up"] = json!("latest"),
            2 => definition["catch_up"] = json!("all"),
            _ => {}
        }
        let sent = Instant::now();
        let schedule = TimerSchedule::At { at_ms };
        let timer_idx = put(
            &workload,
            name,
            schedule,
            template,
            &definition,
            &mut random,
        )
        .await;
        if delete_before {
            let after_ms = random.in_range(0, DELETE_BEFORE_AFTER_MS_MAX);
            deletes.push((Instant::now() + Duration::from_millis(after_ms), timer_idx));
        } else if delete_after {
            let after_ms = ahead_ms + random.in_range(0, DELETE_AFTER_DUE_MS_MAX);
            deletes.push((sent + Duration::from_millis(after_ms), timer_idx));
        }
        let pause_ms = random.in_range(PAUSE_MS_MIN, PAUSE_MS_MAX);
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
}

/// Puts a timer, retrying attempts without an answer (a `PUT` of the same
/// definition changes nothing) and overloaded ones; records it and
/// answers its index in the records.
async fn put(
    workload: &Workload,
    name: String,
    schedule: TimerSchedule,
    template: Value,
    definition: &Value,
    random: &mut SplitMix64,
) -> usize {
    let put_sent_ms = wall_ms();
    let mut unanswered = false;
    let mut answer = TimerAnswer::Unknown;
    for attempt in 0..ATTEMPTS_MAX {
        let base = workload.random_base(random).to_string();
        match workload.api.put_timer(&base, &name, definition).await {
            Answer::Done(_) => {
                answer = TimerAnswer::Done {
                    answered_ms: wall_ms(),
                };
                break;
            }
            Answer::Refused(429, _) => {
                if attempt + 1 == ATTEMPTS_MAX && !unanswered {
                    answer = TimerAnswer::Refused { status: 429 };
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Answer::Refused(status, code) => {
                if !unanswered {
                    answer = TimerAnswer::Refused { status };
                }
                workload.history.violation(
                    "valid writes are accepted",
                    format!("PUT of timer {name} was refused: {status} {code}"),
                );
                break;
            }
            Answer::Unknown(..) => {
                unanswered = true;
                tokio::time::sleep(retry_pause(random, attempt)).await;
            }
        }
    }
    workload.history.with(|recorded| {
        let timers = &mut recorded.coordination.timers.timers;
        timers.push(TimerSet {
            name,
            schedule,
            template,
            put_sent_ms,
            put: answer,
            put_unanswered: unanswered,
            delete: None,
        });
        timers.len() - 1
    })
}

/// Deletes the timer at `timer_idx` of the records, retrying attempts
/// without an answer, and records the outcome.
async fn delete(workload: &Workload, timer_idx: usize, random: &mut SplitMix64) {
    let name = workload
        .history
        .with(|recorded| recorded.coordination.timers.timers[timer_idx].name.clone());
    let sent_ms = wall_ms();
    let mut unanswered = false;
    let mut answer = TimerAnswer::Unknown;
    for attempt in 0..ATTEMPTS_MAX {
        let base = workload.random_base(random).to_string();
        match workload.api.delete_timer(&base, &name).await {
            Answer::Done(_) => {
                answer = TimerAnswer::Done {
                    answered_ms: wall_ms(),
                };
                break;
            }
            // An earlier attempt without an answer deleted it.
            Answer::Refused(404, _) if unanswered => {
                answer = TimerAnswer::Done {
                    answered_ms: wall_ms(),
                };
                break;
            }
            Answer::Refused(429, _) => {
                if attempt + 1 == ATTEMPTS_MAX && !unanswered {
                    answer = TimerAnswer::Refused { status: 429 };
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Answer::Refused(status, code) => {
                answer = TimerAnswer::Refused { status };
                if status != 404 {
                    workload.history.violation(
                        "valid writes are accepted",
                        format!("DELETE of timer {name} was refused: {status} {code}"),
                    );
                }
                break;
            }
            Answer::Unknown(..) => {
                unanswered = true;
                tokio::time::sleep(retry_pause(random, attempt)).await;
            }
        }
    }
    workload.history.with(|recorded| {
        recorded.coordination.timers.timers[timer_idx].delete = Some((sent_ms, answer));
    });
}

/// After the heal: waits until every expected occurrence is stored on the
/// server at `base`, at most [`SETTLE_AFTER_DUE_MS`] past the latest
/// due time (or past now, if later); the oracle then judges what the
/// logs hold. Then deletes every cron timer left, so that nothing fires
/// after the run.
pub async fn settle(api: &Api, base: &str, workload: &Workload) {
    let (mut missing, crons) = workload.history.with(|recorded| {
        let records = &recorded.coordination.timers;
        let missing: Vec<(Hash, u64)> = records
            .expected()
            .into_iter()
            .filter_map(|(timer_idx, due_ms)| {
                let timer = &records.timers[timer_idx];
                let hash = occurrence_hash(&timer.template, &timer.name, &format_due(due_ms))?;
                Some((hash, due_ms))
            })
            .collect();
        let crons: Vec<String> = records
            .timers
            .iter()
            .filter(|timer| matches!(timer.schedule, TimerSchedule::EveryMinute { .. }))
            .filter(|timer| !matches!(timer.delete, Some((_, TimerAnswer::Done { .. }))))
            .map(|timer| timer.name.clone())
            .collect();
        (missing, crons)
    });
    let started = Instant::now();
    let latest_due_ms = missing.iter().map(|&(_, due_ms)| due_ms).max().unwrap_or(0);
    let deadline_ms = latest_due_ms.max(wall_ms()) + SETTLE_AFTER_DUE_MS;
    while !missing.is_empty() && wall_ms() <= deadline_ms {
        let mut still_missing = Vec::new();
        for (hash, due_ms) in missing {
            // Not yet due, or not stored yet: look again (a refusal other
            // than 404 or no answer too; the oracle judges the logs).
            let now_ms = wall_ms();
            let stored = due_ms <= now_ms
                && now_ms <= deadline_ms
                && matches!(api.get_fact(base, &hash.to_hex()).await, Answer::Done(_));
            if !stored {
                still_missing.push((hash, due_ms));
            }
        }
        missing = still_missing;
        if !missing.is_empty() {
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }
    let waited_ms = started.elapsed().as_millis() as u64;
    workload
        .history
        .with(|recorded| recorded.coordination.timers.waited_ms = waited_ms);
    for name in crons {
        for _ in 0..ATTEMPTS_MAX {
            if !matches!(api.delete_timer(base, &name).await, Answer::Unknown(..)) {
                break;
            }
        }
    }
}

/// An occurrence of a timer of the run in one server's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedOccurrence {
    /// The timer's name (`fields.cairn_timer.name`).
    pub name: String,
    /// Its due time as written (`fields.cairn_timer.due`).
    pub due: String,
    /// The fact's hash.
    pub hash: Hash,
    /// Its seq.
    pub seq: u64,
}

/// What one server's log holds of the run's timer occurrences.
#[derive(Debug)]
pub struct TimerLog {
    run_id: String,
    /// The occurrences, in log order.
    pub occurrences: Vec<LoggedOccurrence>,
    /// Facts of the run's timer type without their `cairn_timer`.
    pub malformed: Vec<String>,
}

impl TimerLog {
    /// An empty log of run `run_id`'s timers.
    pub fn new(run_id: &str) -> TimerLog {
        TimerLog {
            run_id: run_id.to_string(),
            occurrences: Vec::new(),
            malformed: Vec::new(),
        }
    }

    /// Keeps `fact` at `seq` if it is an occurrence of a timer of the run.
    pub fn observe(&mut self, seq: u64, hash: Hash, fact: &Value) {
        let fields = &fact["fields"];
        if fields["run"].as_str() != Some(self.run_id.as_str()) {
            return;
        }
        let timer = &fields["cairn_timer"];
        match (timer["name"].as_str(), timer["due"].as_str()) {
            (Some(name), Some(due)) => self.occurrences.push(LoggedOccurrence {
                name: name.to_string(),
                due: due.to_string(),
                hash,
                seq,
            }),
            _ => self.malformed.push(format!("seq {seq}: {fact}")),
        }
    }

    fn by_occurrence(&self) -> HashMap<(&str, &str), Vec<&LoggedOccurrence>> {
        let mut by_occurrence: HashMap<(&str, &str), Vec<&LoggedOccurrence>> = HashMap::new();
        for occurrence in &self.occurrences {
            by_occurrence
                .entry((occurrence.name.as_str(), occurrence.due.as_str()))
                .or_default()
                .push(occurrence);
        }
        by_occurrence
    }
}

/// Judges one server's log of timer occurrences against the recorded
/// timers (see the module doc for the four checks).
pub fn judge(server_idx: usize, log: &TimerLog, records: &TimerRecords, verdicts: &mut Verdicts) {
    for problem in &log.malformed {
        verdicts.violation(
            NO_PHANTOM,
            format!("server {server_idx}: a timer fact without its cairn_timer: {problem}"),
        );
    }
    let by_occurrence = log.by_occurrence();
    // At most once.
    for ((name, due), entries) in &by_occurrence {
        verdicts.examined(AT_MOST_ONCE, 1);
        if entries.len() > 1 {
            let seqs: Vec<u64> = entries.iter().map(|entry| entry.seq).collect();
            verdicts.violation(
                AT_MOST_ONCE,
                format!("server {server_idx}: timer {name} due {due} is stored {} times, at seqs {seqs:?}", entries.len()),
            );
        }
    }
    // No phantom.
    let by_name: HashMap<&str, &TimerSet> = records
        .timers
        .iter()
        .map(|timer| (timer.name.as_str(), timer))
        .collect();
    let slack_ms = records.largest_jump_ms() + CLOCK_FILE_LAG_MS + CLOCK_MARGIN_MS;
    for occurrence in &log.occurrences {
        verdicts.examined(NO_PHANTOM, 1);
        if let Some(problem) = phantom(
            occurrence,
            by_name.get(occurrence.name.as_str()),
            records.clocks_shared,
            slack_ms,
        ) {
            verdicts.violation(
                NO_PHANTOM,
                format!(
                    "server {server_idx}: timer {} due {} is stored at seq {}, but {problem}",
                    occurrence.name, occurrence.due, occurrence.seq
                ),
            );
        }
    }
    // At least once after heal.
    for (timer_idx, due_ms) in records.expected() {
        verdicts.examined(AT_LEAST_ONCE, 1);
        let timer = &records.timers[timer_idx];
        let due = format_due(due_ms);
        if !by_occurrence.contains_key(&(timer.name.as_str(), due.as_str())) {
            verdicts.violation(
                AT_LEAST_ONCE,
                format!(
                    "server {server_idx}: timer {} ({}) was acknowledged and not deleted, but its occurrence due {due} is not stored",
                    timer.name,
                    describe(timer.schedule)
                ),
            );
        }
    }
    // Deleted timers do not fire.
    if !records.clocks_shared {
        return;
    }
    let mut by_timer: HashMap<&str, Vec<&LoggedOccurrence>> = HashMap::new();
    for occurrence in &log.occurrences {
        by_timer
            .entry(occurrence.name.as_str())
            .or_default()
            .push(occurrence);
    }
    for timer in &records.timers {
        let (TimerAnswer::Done { .. }, false, Some((_, TimerAnswer::Done { answered_ms }))) =
            (timer.put, timer.put_unanswered, timer.delete)
        else {
            continue;
        };
        let fired_late =
            |due_ms: u64| !records.may_be_due_by(due_ms, timer.put_sent_ms, answered_ms);
        match timer.schedule {
            TimerSchedule::At { at_ms } => {
                if !fired_late(at_ms) {
                    continue;
                }
                verdicts.examined(DELETED_DO_NOT_FIRE, 1);
            }
            TimerSchedule::EveryMinute { .. } => verdicts.examined(DELETED_DO_NOT_FIRE, 1),
        }
        for occurrence in by_timer.get(timer.name.as_str()).into_iter().flatten() {
            let Some(due_ms) = parse_due(&occurrence.due) else {
                continue;
            };
            if fired_late(due_ms) {
                verdicts.violation(
                    DELETED_DO_NOT_FIRE,
                    format!(
                        "server {server_idx}: timer {} was deleted (answered at {}) before it was due at {}, but that occurrence is stored at seq {}",
                        timer.name,
                        format_due(answered_ms),
                        occurrence.due,
                        occurrence.seq
                    ),
                );
            }
        }
    }
}

/// Why an occurrence in a log cannot be one of the run's timers; `None`
/// if it can.
fn phantom(
    occurrence: &LoggedOccurrence,
    timer: Option<&&TimerSet>,
    clocks_shared: bool,
    slack_ms: u64,
) -> Option<String> {
    let Some(timer) = timer else {
        return Some("the run never set that timer".into());
    };
    if let TimerAnswer::Refused { status } = timer.put {
        return Some(format!(
            "its PUT was refused ({status}) at its first answer"
        ));
    }
    let Some(due_ms) = parse_due(&occurrence.due) else {
        return Some("that is not a due time in the one format".into());
    };
    match timer.schedule {
        TimerSchedule::At { at_ms } if due_ms != at_ms => {
            return Some(format!("the timer is due at {}", format_due(at_ms)))
        }
        TimerSchedule::At { .. } => {}
        TimerSchedule::EveryMinute { .. } => {
            if !due_ms.is_multiple_of(MINUTE_MS) {
                return Some("the timer fires on whole minutes".into());
            }
            // Scheduled from the server's clock at the PUT, which may have
            // been behind by the largest jump.
            if clocks_shared && due_ms + slack_ms < timer.put_sent_ms {
                return Some(format!(
                    "the timer was set at {}",
                    format_due(timer.put_sent_ms)
                ));
            }
        }
    }
    if occurrence_hash(&timer.template, &timer.name, &occurrence.due) != Some(occurrence.hash) {
        return Some("it is not the timer's template with the occurrence added".into());
    }
    None
}

fn describe(schedule: TimerSchedule) -> String {
    match schedule {
        TimerSchedule::At { at_ms } => format!("at {}", format_due(at_ms)),
        TimerSchedule::EveryMinute { catch_up_all } => format!(
            "cron {CRON_EVERY_MINUTE:?} UTC, catch_up {}",
            if catch_up_all { "all" } else { "latest" }
        ),
    }
}

/// Judges the recorded answers among themselves (once, not per server):
/// a timer whose `PUT` was acknowledged exists until it is deleted, so a
/// `DELETE` of it is not answered `404` at its first answer.
pub fn judge_history(records: &TimerRecords, verdicts: &mut Verdicts) {
    for timer in &records.timers {
        if let (TimerAnswer::Done { .. }, Some((_, TimerAnswer::Refused { status: 404 }))) =
            (timer.put, timer.delete)
        {
            verdicts.violation(
                AT_LEAST_ONCE,
                format!(
                    "timer {} was acknowledged, but its DELETE was answered 404 unknown_timer: the timer was lost",
                    timer.name
                ),
            );
        }
    }
}

/// Adds the timers to the summary.
pub fn summarize(
    records: &TimerRecords,
    first_log: Option<&TimerLog>,
    summary: &mut CoordinationSummary,
) {
    for timer in &records.timers {
        summary.timers_set += 1;
        if matches!(timer.schedule, TimerSchedule::EveryMinute { .. }) {
            summary.timers_cron += 1;
        }
        match timer.put {
            TimerAnswer::Done { .. } => summary.timers_acknowledged += 1,
            TimerAnswer::Refused { .. } => summary.timers_refused += 1,
            TimerAnswer::Unknown => summary.timers_unknown += 1,
        }
        match timer.delete {
            Some((_, TimerAnswer::Done { .. })) => summary.timers_deleted += 1,
            Some((_, TimerAnswer::Unknown)) => summary.timer_deletes_unknown += 1,
            Some((_, TimerAnswer::Refused { .. })) => summary.timer_deletes_refused += 1,
            None => {}
        }
    }
    for (timer_idx, _) in records.expected() {
        summary.timer_occurrences_expected += 1;
        if matches!(
            records.timers[timer_idx].schedule,
            TimerSchedule::EveryMinute { .. }
        ) {
            summary.timer_cron_minutes_expected += 1;
        }
    }
    summary.timer_wait_s = crate::report::seconds(Duration::from_millis(records.waited_ms));
    if let Some(log) = first_log {
        let distinct: HashSet<(&str, &str)> = log
            .occurrences
            .iter()
            .map(|occurrence| (occurrence.name.as_str(), occurrence.due.as_str()))
            .collect();
        summary.timer_occurrences_logged = distinct.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole minute, as wall-clock ms.
    const T: u64 = 1_800_000_000_000;

    fn template(n: u64) -> Value {
        json!({"type": TIMER_TYPE, "fields": {"run": "r1", "setter": 0, "n": n}, "predecessors": {}})
    }

    fn one_shot(
        n: u64,
        at_ms: u64,
        put: TimerAnswer,
        delete: Option<(u64, TimerAnswer)>,
    ) -> TimerSet {
        TimerSet {
            name: timer_name("r1", 0, n),
            schedule: TimerSchedule::At { at_ms },
            template: template(n),
            put_sent_ms: at_ms - 3_000,
            put,
            put_unanswered: put == TimerAnswer::Unknown,
            delete,
        }
    }

    fn done(answered_ms: u64) -> TimerAnswer {
        TimerAnswer::Done { answered_ms }
    }

    /// The fact of an occurrence as a server stores it.
    fn occurrence(timer: &TimerSet, due_ms: u64) -> Value {
        occurrence_fact(&timer.template, &timer.name, &format_due(due_ms))
    }

    fn observe(log: &mut TimerLog, seq: u64, fact: &Value) {
        log.observe(seq, canonical_of(fact).unwrap().hash, fact);
    }

    /// Timers 1–6 and a cron, and the log a correct server holds at the
    /// end: the heal came at T + 200 s.
    fn consistent() -> (TimerLog, TimerRecords) {
        let cron = TimerSet {
            name: timer_name("r1", 0, 7),
            schedule: TimerSchedule::EveryMinute { catch_up_all: true },
            template: template(7),
            put_sent_ms: T + 10_000,
            put: done(T + 10_100),
            put_unanswered: false,
            delete: None,
        };
        let records = TimerRecords {
            timers: vec![
                // Acknowledged, fired.
                one_shot(1, T + 5_000, done(T + 2_100), None),
                // Unknown, fired anyway (its PUT arrived).
                one_shot(2, T + 6_000, TimerAnswer::Unknown, None),
                // Unknown, never arrived.
                one_shot(3, T + 7_000, TimerAnswer::Unknown, None),
                // Deleted well before its due time: not fired.
                one_shot(
                    4,
                    T + 9_000,
                    done(T + 6_100),
                    Some((T + 6_500, done(T + 6_600))),
                ),
                // Deleted after its due time: fired.
                one_shot(
                    5,
                    T + 9_000,
                    done(T + 6_100),
                    Some((T + 9_500, done(T + 9_600))),
                ),
                // Deleted just before its due time: fired, as it may.
                one_shot(
                    6,
                    T + 12_000,
                    done(T + 9_100),
                    Some((T + 11_000, done(T + 11_500))),
                ),
                cron,
            ],
            clock_jumps: Vec::new(),
            healed_ms: Some(T + 200_000),
            clocks_shared: true,
            waited_ms: 0,
        };
        let mut log = TimerLog::new("r1");
        let timers = &records.timers;
        observe(&mut log, 10, &occurrence(&timers[0], T + 5_000));
        observe(&mut log, 11, &occurrence(&timers[1], T + 6_000));
        observe(&mut log, 12, &occurrence(&timers[4], T + 9_000));
        observe(&mut log, 13, &occurrence(&timers[5], T + 12_000));
        // The cron, set at T + 10 s: every minute from T + 60 s on (and
        // after the heal, which nothing requires).
        for minute in 1..=4 {
            observe(
                &mut log,
                20 + minute,
                &occurrence(&timers[6], T + minute * MINUTE_MS),
            );
        }
        // Another run's occurrence is skipped.
        let mut other = occurrence(&timers[0], T + 5_000);
        other["fields"]["run"] = json!("r2");
        observe(&mut log, 30, &other);
        (log, records)
    }

    fn judged(log: &TimerLog, records: &TimerRecords) -> Vec<crate::report::CheckResult> {
        let mut verdicts = Verdicts::default();
        judge(0, log, records, &mut verdicts);
        judge_history(records, &mut verdicts);
        verdicts.into_results()
    }

    fn violations(results: &[crate::report::CheckResult], check: &str) -> Vec<String> {
        results
            .iter()
            .find(|result| result.name == check)
            .map(|result| result.counterexamples.clone())
            .unwrap_or_default()
    }

    fn examined(results: &[crate::report::CheckResult], check: &str) -> u64 {
        results
            .iter()
            .find(|result| result.name == check)
            .unwrap()
            .examined
    }

    #[test]
    fn due_times_have_one_format() {
        assert_eq!(format_due(T), "2027-01-15T08:00:00.000Z");
        assert_eq!(parse_due("2027-01-15T08:00:00.000Z"), Some(T));
        assert_eq!(parse_due(&format_due(T + 1)), Some(T + 1));
        assert_eq!(parse_due("2027-01-15T08:00:00Z"), None);
        assert_eq!(parse_due("2027-01-15T09:00:00.000+01:00"), None);
    }

    #[test]
    fn a_consistent_history_passes() {
        let (log, records) = consistent();
        assert_eq!(log.occurrences.len(), 8);
        let results = judged(&log, &records);
        for result in &results {
            assert!(result.passed(), "{result:?}");
        }
        assert_eq!(examined(&results, AT_MOST_ONCE), 8);
        assert_eq!(examined(&results, NO_PHANTOM), 8);
        // Timer 1, and the cron's minutes 1 to 3 (minute 4 is after the
        // heal).
        assert_eq!(examined(&results, AT_LEAST_ONCE), 4);
        // Only timer 4 was deleted surely before it was due.
        assert_eq!(examined(&results, DELETED_DO_NOT_FIRE), 1);
    }

    #[test]
    fn an_occurrence_stored_twice_is_reported() {
        let (mut log, records) = consistent();
        observe(&mut log, 40, &occurrence(&records.timers[0], T + 5_000));
        let results = judged(&log, &records);
        let found = violations(&results, AT_MOST_ONCE);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("stored 2 times, at seqs [10, 40]"),
            "{found:?}"
        );
    }

    #[test]
    fn a_missing_occurrence_is_reported() {
        let (mut log, records) = consistent();
        // Timer 1's occurrence and the cron's second minute are lost.
        log.occurrences.retain(|occurrence| {
            occurrence.seq != 10 && occurrence.due != format_due(T + 2 * MINUTE_MS)
        });
        let results = judged(&log, &records);
        let found = violations(&results, AT_LEAST_ONCE);
        assert_eq!(found.len(), 2, "{found:?}");
        // Without a heal or without shared clocks, nothing is expected.
        let mut unhealed = records;
        unhealed.healed_ms = None;
        assert!(violations(&judged(&log, &unhealed), AT_LEAST_ONCE).is_empty());
    }

    #[test]
    fn an_occurrence_after_an_acknowledged_delete_is_reported_unless_a_clock_jump_explains_it() {
        let (mut log, mut records) = consistent();
        // Timer 4 fires although it was deleted 2.4 s before its due time.
        observe(&mut log, 41, &occurrence(&records.timers[3], T + 9_000));
        let found = violations(&judged(&log, &records), DELETED_DO_NOT_FIRE);
        assert_eq!(found.len(), 1, "{found:?}");
        // The cron deleted at T + 95 s fires minutes 2, 3 and 4 after it.
        records.timers[6].delete = Some((T + 95_000, done(T + 95_100)));
        let found = violations(&judged(&log, &records), DELETED_DO_NOT_FIRE);
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found.iter().any(|v| v.contains("2027-01-15T08:02:00.000Z")));
        // Forward jumps of the server's clock while the timers existed
        // explain timer 4 and the cron's minute 2: its scheduler may have
        // claimed them in time.
        records.clock_jumps.push(ClockJump {
            offset_ms: 30_000,
            from_ms: T + 90_000,
            to_ms: T + 94_000,
        });
        records.clock_jumps.push(ClockJump {
            offset_ms: 5_000,
            from_ms: T + 6_000,
            to_ms: T + 6_500,
        });
        // A backward jump explains nothing.
        records.clock_jumps.push(ClockJump {
            offset_ms: -30_000,
            from_ms: T + 100_000,
            to_ms: T + 104_000,
        });
        let found = violations(&judged(&log, &records), DELETED_DO_NOT_FIRE);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("2027-01-15T08:03:00.000Z"), "{found:?}");
        // A PUT with an attempt without an answer is not judged: that
        // attempt may create the timer again after the DELETE.
        records.timers[6].put_unanswered = true;
        assert!(violations(&judged(&log, &records), DELETED_DO_NOT_FIRE).is_empty());
    }

    #[test]
    fn phantom_occurrences_are_reported() {
        let (mut log, mut records) = consistent();
        // A timer the run never set.
        let stranger = one_shot(99, T + 5_000, done(T), None);
        observe(&mut log, 50, &occurrence(&stranger, T + 5_000));
        // Timer 1 at another due time.
        observe(&mut log, 51, &occurrence(&records.timers[0], T + 5_001));
        // Timer 1's due with another template.
        let mut altered = occurrence(&records.timers[0], T + 5_000);
        altered["fields"]["n"] = json!(100);
        observe(&mut log, 52, &altered);
        // The cron long before it was set, and off the minute.
        observe(
            &mut log,
            53,
            &occurrence(&records.timers[6], T - 10 * MINUTE_MS),
        );
        observe(&mut log, 54, &occurrence(&records.timers[6], T + 90_000));
        // A timer whose PUT was refused.
        records.timers.push(one_shot(
            8,
            T + 8_000,
            TimerAnswer::Refused { status: 400 },
            None,
        ));
        observe(&mut log, 55, &occurrence(&records.timers[7], T + 8_000));
        let found = violations(&judged(&log, &records), NO_PHANTOM);
        assert_eq!(found.len(), 6, "{found:?}");
        assert!(found.iter().any(|v| v.contains("never set")));
        assert!(found.iter().any(|v| v.contains("refused")));
        assert!(found.iter().any(|v| v.contains("template")));
        assert!(found.iter().any(|v| v.contains("whole minutes")));
    }

    #[test]
    fn an_acknowledged_timer_that_vanished_is_reported() {
        let (log, mut records) = consistent();
        records.timers[0].delete = Some((T + 9_000, TimerAnswer::Refused { status: 404 }));
        let found = violations(&judged(&log, &records), AT_LEAST_ONCE);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("was lost"), "{found:?}");
    }
}
