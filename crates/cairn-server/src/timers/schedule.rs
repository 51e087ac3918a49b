//! When a durable timer is due, decided without I/O: the occurrences of a
//! one-shot `at` or of a cron expression in an IANA zone, and which
//! occurrences one firing pass fires under each catch-up policy. Times are
//! milliseconds since the Unix epoch; the zone rules are chrono-tz's
//! compiled-in tz database, so every server computes the same instants.
//!
//! Civil time to instant, at daylight-saving changes (`docs/api-v1.md`,
//! "Timers"):
//! - a local time that does not exist (the gap when clocks go forward)
//!   fires at the first valid instant after it — the moment the gap ends
//!   (Europe/Berlin, 29 March 2026, 02:30 fires at 03:00 CEST);
//! - a local time that exists twice (the hour repeated when clocks go
//!   back) fires once, at its first instance;
//! - several local times mapped to the same instant (a gap) fire once.
//!
//! The mapping is non-decreasing in local time, so walking the matching
//! local minutes in order yields the occurrences in order.

use chrono::offset::LocalResult;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::cron::{CronError, CronExpression};
use crate::limits::{TIMER_CATCH_UP_PER_PASS_MAX, TIMER_MISSED_AFTER_MS};

/// Days searched for the next occurrence at most: eight years and two
/// days, which holds every 29 February (2100 is not a leap year).
const SEARCH_DAYS_MAX: i64 = 8 * 366 + 2;
/// The largest shift of a daylight-saving change in the tz database, and
/// then some: a local time up to this far after an instant may map before it.
const ZONE_SHIFT_MINUTES_MAX: i64 = 180;

/// What a timer fires on.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// Once, at this instant.
    At {
        /// The instant (ms since the Unix epoch).
        at_ms: u64,
    },
    /// At every local time of `cron` in `zone`.
    Cron {
        /// The expression.
        cron: CronExpression,
        /// The zone its local times are in.
        zone: Tz,
    },
}

/// Which occurrences missed while no server ran are fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatchUp {
    /// Every one, in order, at most [`TIMER_CATCH_UP_PER_PASS_MAX`] per pass.
    All,
    /// Only the most recent one.
    Latest,
    /// None: only an occurrence at most [`TIMER_MISSED_AFTER_MS`] overdue
    /// fires.
    None,
}

/// What one firing pass of one timer does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pass {
    /// The occurrences to fire, ascending.
    pub fire_ms: Vec<u64>,
    /// The occurrence to fire after them; `None`: the timer is done. It
    /// may already be due (a long catch-up continues in the next pass).
    pub next_due_ms: Option<u64>,
}

/// Why a schedule was refused: a sentence for the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression is malformed.
    #[error(transparent)]
    Cron(#[from] CronError),
    /// The zone is not in the tz database.
    #[error("unknown time zone {0:?} (expected an IANA zone such as Europe/Berlin)")]
    UnknownZone(String),
    /// `at` is not an RFC 3339 instant Cairn can keep.
    #[error("invalid at {0:?}: {1}")]
    InvalidAt(String, String),
    /// The expression names no date that exists (30 February).
    #[error("the cron expression {0:?} never fires")]
    NeverFires(String),
}

/// Parses `at`: RFC 3339 with any offset, at most millisecond precision,
/// from 1970 to 9999.
pub fn parse_at(text: &str) -> Result<u64, ScheduleError> {
    let invalid = |why: &str| ScheduleError::InvalidAt(text.to_string(), why.to_string());
    let instant = DateTime::parse_from_rfc3339(text)
        .map_err(|error| invalid(&format!("not an RFC 3339 date-time ({error})")))?;
    if instant.timestamp_subsec_nanos() % 1_000_000 != 0 {
        return Err(invalid("finer than a millisecond"));
    }
    let at_ms = instant.timestamp_millis();
    if !(0..=253_402_300_799_999).contains(&at_ms) {
        return Err(invalid("outside 1970-01-01 to 9999-12-31 (UTC)"));
    }
    Ok(at_ms as u64)
}

/// Parses an IANA zone name.
pub fn parse_zone(name: &str) -> Result<Tz, ScheduleError> {
    name.parse::<Tz>()
        .map_err(|_| ScheduleError::UnknownZone(name.to_string()))
}

/// The one format of `fields.cairn_timer.due`: UTC, RFC 3339, three
/// fractional digits and `Z` (`2026-03-29T01:00:00.000Z`).
pub fn format_due(due_ms: u64) -> String {
    let instant = Utc
        .timestamp_millis_opt(due_ms as i64)
        .single()
        .expect("due times are within chrono's range");
    instant.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl Schedule {
    /// A cron schedule, checked to fire at least once after `now_ms`.
    pub fn cron(expression: &str, zone: &str, now_ms: u64) -> Result<Schedule, ScheduleError> {
        let schedule = Schedule::Cron {
            cron: CronExpression::parse(expression)?,
            zone: parse_zone(zone)?,
        };
        if schedule.first_at_or_after(now_ms).is_none() {
            return Err(ScheduleError::NeverFires(expression.to_string()));
        }
        Ok(schedule)
    }

    /// The first occurrence at or after `from_ms` (for `at`: the instant,
    /// even if it is past — a past `at` fires at once).
    pub fn first_at_or_after(&self, from_ms: u64) -> Option<u64> {
        match self {
            Schedule::At { at_ms } => Some(*at_ms),
            Schedule::Cron { .. } => self.next_after(from_ms.saturating_sub(1)),
        }
    }

    /// The first occurrence strictly after `after_ms`.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        match self {
            Schedule::At { at_ms } => (*at_ms > after_ms).then_some(*at_ms),
            Schedule::Cron { cron, zone } => cron_next_after(cron, *zone, after_ms),
        }
    }

    /// The occurrences one pass fires when the stored next occurrence is
    /// `due_ms` and the time is `now_ms` (see [`CatchUp`]).
    pub fn plan_pass(&self, catch_up: CatchUp, due_ms: u64, now_ms: u64) -> Pass {
        if due_ms > now_ms {
            return Pass {
                fire_ms: Vec::new(),
                next_due_ms: Some(due_ms),
            };
        }
        let (cron, zone) = match self {
            // A one-shot fires whatever the policy: "an at in the past
            // fires at once".
            Schedule::At { .. } => {
                return Pass {
                    fire_ms: vec![due_ms],
                    next_due_ms: None,
                }
            }
            Schedule::Cron { cron, zone } => (cron, *zone),
        };
        match catch_up {
            CatchUp::All => {
                let mut fire_ms = vec![due_ms];
                let mut next = cron_next_after(cron, zone, due_ms);
                while let Some(occurrence_ms) = next {
                    if occurrence_ms > now_ms || fire_ms.len() >= TIMER_CATCH_UP_PER_PASS_MAX {
                        break;
                    }
                    fire_ms.push(occurrence_ms);
                    next = cron_next_after(cron, zone, occurrence_ms);
                }
                Pass {
                    fire_ms,
                    next_due_ms: next,
                }
            }
            CatchUp::Latest | CatchUp::None => {
                let latest_ms =
                    cron_latest_at_or_before(cron, zone, now_ms, due_ms).unwrap_or(due_ms);
                let fires =
                    catch_up == CatchUp::Latest || now_ms - latest_ms <= TIMER_MISSED_AFTER_MS;
                Pass {
                    fire_ms: if fires { vec![latest_ms] } else { Vec::new() },
                    next_due_ms: cron_next_after(cron, zone, latest_ms.max(now_ms)),
                }
            }
        }
    }
}

fn local_of(zone: Tz, instant_ms: u64) -> NaiveDateTime {
    zone.timestamp_millis_opt(instant_ms as i64)
        .single()
        .expect("an instant has one local time")
        .naive_local()
}

/// The instant a local time fires at: its only or first instance, or, in
/// a gap, the first local minute after it that exists.
fn instant_of_local(zone: Tz, local: NaiveDateTime) -> u64 {
    let mut candidate = local;
    for _ in 0..=ZONE_SHIFT_MINUTES_MAX {
        match zone.from_local_datetime(&candidate) {
            LocalResult::Single(instant) => return instant.timestamp_millis().max(0) as u64,
            LocalResult::Ambiguous(earliest, _) => {
                return earliest.timestamp_millis().max(0) as u64
            }
            LocalResult::None => candidate += Duration::minutes(1),
        }
    }
    // No zone has a gap this long; treat the local time as UTC.
    Utc.from_utc_datetime(&local).timestamp_millis().max(0) as u64
}

fn at_time(date: NaiveDate, hour: u32, minute: u32) -> NaiveDateTime {
    date.and_time(NaiveTime::from_hms_opt(hour, minute, 0).expect("cron hours and minutes"))
}

fn cron_next_after(cron: &CronExpression, zone: Tz, after_ms: u64) -> Option<u64> {
    let start = local_of(zone, after_ms);
    let start_minute = at_time(
        start.date(),
        chrono::Timelike::hour(&start),
        chrono::Timelike::minute(&start),
    );
    let mut date = start.date();
    for _ in 0..SEARCH_DAYS_MAX {
        if cron.matches_day(date) {
            for hour in cron.hours() {
                for minute in cron.minutes() {
                    let local = at_time(date, hour, minute);
                    if local < start_minute {
                        continue;
                    }
                    let instant_ms = instant_of_local(zone, local);
                    if instant_ms > after_ms {
                        return Some(instant_ms);
                    }
                }
            }
        }
        date = date.succ_opt()?;
    }
    None
}

/// The latest occurrence at or before `now_ms`, if it is at or after
/// `floor_ms`.
fn cron_latest_at_or_before(
    cron: &CronExpression,
    zone: Tz,
    now_ms: u64,
    floor_ms: u64,
) -> Option<u64> {
    // A local time a little after now's may map before now (a repeated hour).
    let start = local_of(zone, now_ms) + Duration::minutes(ZONE_SHIFT_MINUTES_MAX);
    let floor_date = local_of(zone, floor_ms).date().pred_opt()?;
    let mut date = start.date();
    for _ in 0..SEARCH_DAYS_MAX {
        if date < floor_date {
            return None;
        }
        if cron.matches_day(date) {
            for hour in cron.hours().rev() {
                for minute in cron.minutes().rev() {
                    let local = at_time(date, hour, minute);
                    if local > start {
                        continue;
                    }
                    let instant_ms = instant_of_local(zone, local);
                    if instant_ms <= now_ms {
                        return (instant_ms >= floor_ms).then_some(instant_ms);
                    }
                }
            }
        }
        date = date.pred_opt()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> u64 {
        parse_at(text).unwrap()
    }

    fn cron(expression: &str, zone: &str) -> Schedule {
        Schedule::cron(expression, zone, ms("2026-01-01T00:00:00Z")).unwrap()
    }

    fn occurrences(schedule: &Schedule, from: &str, count: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut after = ms(from);
        for _ in 0..count {
            let next = schedule.next_after(after).unwrap();
            out.push(format_due(next));
            after = next;
        }
        out
    }

    #[test]
    fn the_due_format_is_fixed() {
        assert_eq!(format_due(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_due(ms("2026-03-29T03:00:00.5+02:00")),
            "2026-03-29T01:00:00.500Z"
        );
    }

    #[test]
    fn at_is_rfc_3339_to_the_millisecond() {
        assert_eq!(ms("1970-01-01T00:00:01Z"), 1_000);
        assert_eq!(ms("1970-01-01T01:00:01.002+01:00"), 1_002);
        for bad in [
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.0001Z",
            "1969-12-31T23:59:59Z",
            "tomorrow",
            "",
        ] {
            assert!(parse_at(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn zones_are_iana_names() {
        assert!(parse_zone("Europe/Berlin").is_ok());
        assert!(parse_zone("UTC").is_ok());
        for bad in ["Mars/Olympus", "", "europe/berlin ", "+02:00"] {
            assert!(parse_zone(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn an_at_fires_once_even_when_past() {
        let at = Schedule::At { at_ms: 5_000 };
        assert_eq!(at.first_at_or_after(9_000), Some(5_000));
        assert_eq!(at.next_after(5_000), None);
        let pass = at.plan_pass(CatchUp::None, 5_000, 1_000_000_000);
        assert_eq!(pass.fire_ms, [5_000]);
        assert_eq!(pass.next_due_ms, None);
        assert!(at.plan_pass(CatchUp::All, 5_000, 4_999).fire_ms.is_empty());
    }

    #[test]
    fn a_gap_fires_at_its_end_berlin() {
        // 29 March 2026: 02:00 CET becomes 03:00 CEST.
        let daily = cron("30 2 * * *", "Europe/Berlin");
        assert_eq!(
            occurrences(&daily, "2026-03-27T12:00:00Z", 3),
            [
                "2026-03-28T01:30:00.000Z",
                "2026-03-29T01:00:00.000Z",
                "2026-03-30T00:30:00.000Z"
            ]
        );
        // Every 15 minutes of the missing hour fire once, at its end.
        let quarter = cron("*/15 2,3 29 3 *", "Europe/Berlin");
        assert_eq!(
            occurrences(&quarter, "2026-03-29T00:00:00Z", 4),
            [
                "2026-03-29T01:00:00.000Z",
                "2026-03-29T01:15:00.000Z",
                "2026-03-29T01:30:00.000Z",
                "2026-03-29T01:45:00.000Z"
            ]
        );
    }

    #[test]
    fn a_repeated_hour_fires_once_berlin() {
        // 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:xx happens twice.
        let daily = cron("30 2 * * *", "Europe/Berlin");
        assert_eq!(
            occurrences(&daily, "2026-10-24T12:00:00Z", 3),
            [
                "2026-10-25T00:30:00.000Z",
                "2026-10-26T01:30:00.000Z",
                "2026-10-27T01:30:00.000Z"
            ]
        );
        // Hourly: 02:00 fires at its first instance only, then 03:00 CET.
        let hourly = cron("0 * * * *", "Europe/Berlin");
        assert_eq!(
            occurrences(&hourly, "2026-10-24T23:30:00Z", 3),
            [
                "2026-10-25T00:00:00.000Z",
                "2026-10-25T02:00:00.000Z",
                "2026-10-25T03:00:00.000Z"
            ]
        );
    }

    #[test]
    fn daylight_saving_in_new_york() {
        // 8 March 2026: 02:00 EST becomes 03:00 EDT.
        let daily = cron("30 2 * * *", "America/New_York");
        assert_eq!(
            occurrences(&daily, "2026-03-07T00:00:00Z", 2),
            ["2026-03-07T07:30:00.000Z", "2026-03-08T07:00:00.000Z"]
        );
        // 1 November 2026: 02:00 EDT becomes 01:00 EST; 01:30 fires once.
        let once = cron("30 1 * * *", "America/New_York");
        assert_eq!(
            occurrences(&once, "2026-10-31T12:00:00Z", 2),
            ["2026-11-01T05:30:00.000Z", "2026-11-02T06:30:00.000Z"]
        );
        // From inside the second 01:xx, the repeated 01:30 is not fired again.
        assert_eq!(
            occurrences(&once, "2026-11-01T06:10:00Z", 1),
            ["2026-11-02T06:30:00.000Z"]
        );
    }

    #[test]
    fn utc_and_rare_dates() {
        let leap = cron("0 12 29 2 *", "UTC");
        assert_eq!(
            occurrences(&leap, "2026-01-01T00:00:00Z", 2),
            ["2028-02-29T12:00:00.000Z", "2032-02-29T12:00:00.000Z"]
        );
        assert!(matches!(
            Schedule::cron("0 0 30 2 *", "UTC", 0),
            Err(ScheduleError::NeverFires(_))
        ));
        assert!(matches!(
            Schedule::cron("0 0 * * *", "Nowhere/City", 0),
            Err(ScheduleError::UnknownZone(_))
        ));
        let minutely = cron("* * * * *", "UTC");
        assert_eq!(
            minutely.first_at_or_after(ms("2026-01-01T00:00:00Z")),
            Some(ms("2026-01-01T00:00:00Z"))
        );
        assert_eq!(
            minutely.first_at_or_after(ms("2026-01-01T00:00:00.001Z")),
            Some(ms("2026-01-01T00:01:00Z"))
        );
    }

    #[test]
    fn catch_up_policies_after_downtime() {
        let minutely = cron("* * * * *", "UTC");
        let due = ms("2026-01-01T00:00:00Z");
        let now = ms("2026-01-01T00:09:30Z");
        let all = minutely.plan_pass(CatchUp::All, due, now);
        assert_eq!(all.fire_ms.len(), 10);
        assert_eq!(all.next_due_ms, Some(ms("2026-01-01T00:10:00Z")));
        let latest = minutely.plan_pass(CatchUp::Latest, due, now);
        assert_eq!(latest.fire_ms, [ms("2026-01-01T00:09:00Z")]);
        assert_eq!(latest.next_due_ms, Some(ms("2026-01-01T00:10:00Z")));
        // 30 s overdue is not missed; 10 minutes is.
        let none = minutely.plan_pass(CatchUp::None, due, now);
        assert_eq!(none.fire_ms, [ms("2026-01-01T00:09:00Z")]);
        let hourly = cron("0 * * * *", "UTC");
        let none = hourly.plan_pass(CatchUp::None, due, ms("2026-01-01T02:10:00Z"));
        assert!(none.fire_ms.is_empty());
        assert_eq!(none.next_due_ms, Some(ms("2026-01-01T03:00:00Z")));
        // Nothing due: nothing fires.
        let early = hourly.plan_pass(CatchUp::All, due, due - 1);
        assert!(early.fire_ms.is_empty());
        assert_eq!(early.next_due_ms, Some(due));
    }

    #[test]
    fn catching_up_everything_is_bounded_per_pass() {
        let minutely = cron("* * * * *", "UTC");
        let due = ms("2026-01-01T00:00:00Z");
        let now = ms("2026-01-02T00:00:00Z");
        let mut pass = minutely.plan_pass(CatchUp::All, due, now);
        let mut fired = 0;
        let mut passes = 0;
        while let Some(next) = pass.next_due_ms.filter(|&next| next <= now) {
            assert!(pass.fire_ms.len() <= TIMER_CATCH_UP_PER_PASS_MAX);
            fired += pass.fire_ms.len();
            passes += 1;
            assert!(passes < 100);
            pass = minutely.plan_pass(CatchUp::All, next, now);
        }
        fired += pass.fire_ms.len();
        assert_eq!(fired, 24 * 60 + 1);
    }

    #[test]
    fn latest_across_a_repeated_hour() {
        let hourly = cron("0 * * * *", "Europe/Berlin");
        // Now is 02:10 CET, in the second 02:xx; the latest is 02:00 CEST.
        let latest = hourly.plan_pass(
            CatchUp::Latest,
            ms("2026-10-24T20:00:00Z"),
            ms("2026-10-25T01:10:00Z"),
        );
        assert_eq!(latest.fire_ms, [ms("2026-10-25T00:00:00Z")]);
        assert_eq!(latest.next_due_ms, Some(ms("2026-10-25T02:00:00Z")));
    }
}
