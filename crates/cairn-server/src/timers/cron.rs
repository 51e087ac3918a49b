//! The 5-field cron expressions of durable timers (`minute hour
//! day-of-month month day-of-week`), parsed into bit sets. Pure: no clock,
//! no zone — `schedule.rs` walks local days and maps them to instants.
//!
//! The grammar is the classic (Vixie) one: each field is a comma list of
//! `*`, `N`, `A-B`, each optionally followed by `/STEP`; months and days
//! of the week also take English three-letter names (`JAN`, `MON`, any
//! case); day of week 0 and 7 are both Sunday. As in Vixie cron, when both
//! day fields are restricted (neither starts with `*`) a day matches if
//! either matches; otherwise both must. 6- and 7-field expressions
//! (seconds, years), nicknames (`@daily`) and the Quartz extensions
//! (`?`, `L`, `W`, `#`) are refused.

use chrono::{Datelike, NaiveDate};

/// Longest cron expression accepted, in bytes.
pub const CRON_BYTES_MAX: usize = 200;

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A parsed cron expression: which minutes, hours, days and months match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronExpression {
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    months: u16,
    days_of_week: u8,
    day_of_month_restricted: bool,
    day_of_week_restricted: bool,
}

/// Why a cron expression was refused: a sentence for the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression: {0}")]
pub struct CronError(pub String);

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The value the first name stands for (`JAN` = 1, `SUN` = 0).
    names_start: u32,
}

const FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        names_start: 0,
    },
    FieldSpec {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        names_start: 0,
    },
    FieldSpec {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
        names_start: 0,
    },
    FieldSpec {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTH_NAMES,
        names_start: 1,
    },
    FieldSpec {
        name: "day of week",
        min: 0,
        max: 7,
        names: &DAY_NAMES,
        names_start: 0,
    },
];

impl CronExpression {
    /// Parses a 5-field expression.
    pub fn parse(text: &str) -> Result<CronExpression, CronError> {
        if text.len() > CRON_BYTES_MAX {
            return Err(CronError(format!("longer than {CRON_BYTES_MAX} bytes")));
        }
        if text.trim_start().starts_with('@') {
            return Err(CronError(
                "nicknames such as @daily are not supported; write the 5 fields".into(),
            ));
        }
        let fields: Vec<&str> = text.split_ascii_whitespace().collect();
        if fields.len() != 5 {
            return Err(CronError(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            )));
        }
        let mut sets = [0u64; 5];
        for (index, (field, spec)) in fields.iter().zip(FIELDS.iter()).enumerate() {
            sets[index] = parse_field(field, spec)?;
        }
        // Day of week 7 is Sunday, like 0.
        let mut days_of_week = sets[4];
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week | 1) & !(1 << 7);
        }
        Ok(CronExpression {
            minutes: sets[0],
            hours: sets[1] as u32,
            days_of_month: sets[2] as u32,
            months: sets[3] as u16,
            days_of_week: days_of_week as u8,
            day_of_month_restricted: !fields[2].starts_with('*'),
            day_of_week_restricted: !fields[4].starts_with('*'),
        })
    }

    /// Whether the local date `date` is a day of the expression.
    pub fn matches_day(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let day_of_month = self.days_of_month & (1 << date.day()) != 0;
        let day_of_week = self.days_of_week & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.day_of_month_restricted && self.day_of_week_restricted {
            day_of_month || day_of_week
        } else {
            day_of_month && day_of_week
        }
    }

    /// The matching hours of a day, ascending.
    pub fn hours(&self) -> impl DoubleEndedIterator<Item = u32> + '_ {
        (0..24).filter(|hour| self.hours & (1 << hour) != 0)
    }

    /// The matching minutes of an hour, ascending.
    pub fn minutes(&self) -> impl DoubleEndedIterator<Item = u32> + Clone + '_ {
        (0..60).filter(|minute| self.minutes & (1 << minute) != 0)
    }
}

fn parse_value(text: &str, spec: &FieldSpec) -> Result<u32, CronError> {
    if let Some(position) = spec
        .names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
    {
        return Ok(spec.names_start + position as u32);
    }
    if text.is_empty() || text.len() > 2 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(CronError(format!(
            "{:?} is not a valid {} (expected {}-{}{})",
            text,
            spec.name,
            spec.min,
            spec.max,
            if spec.names.is_empty() {
                ""
            } else {
                " or a three-letter name"
            }
        )));
    }
    let value: u32 = text.parse().expect("checked digits");
    if !(spec.min..=spec.max).contains(&value) {
        return Err(CronError(format!(
            "{} {value} is outside {}-{}",
            spec.name, spec.min, spec.max
        )));
    }
    Ok(value)
}

fn parse_field(field: &str, spec: &FieldSpec) -> Result<u64, CronError> {
    let mut set = 0u64;
    for element in field.split(',') {
        let (range, step) = match element.split_once('/') {
            None => (element, None),
            Some((range, step)) => {
                let step_value: u32 = if !step.is_empty()
                    && step.len() <= 2
                    && step.bytes().all(|byte| byte.is_ascii_digit())
                {
                    step.parse().expect("checked digits")
                } else {
                    0
                };
                if step_value == 0 || step_value > spec.max {
                    return Err(CronError(format!(
                        "step {step:?} of the {} field must be from 1 to {}",
                        spec.name, spec.max
                    )));
                }
                (range, Some(step_value))
            }
        };
        let (low, high) = if range == "*" {
            (spec.min, spec.max)
        } else if let Some((low, high)) = range.split_once('-') {
            let (low, high) = (parse_value(low, spec)?, parse_value(high, spec)?);
            if low > high {
                return Err(CronError(format!(
                    "range {range:?} of the {} field runs backwards",
                    spec.name
                )));
            }
            (low, high)
        } else {
            let value = parse_value(range, spec)?;
            // `N/STEP` runs from N to the end of the field.
            (value, if step.is_some() { spec.max } else { value })
        };
        let step = step.unwrap_or(1);
        let mut value = low;
        while value <= high {
            set |= 1 << value;
            value += step;
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).unwrap()
    }

    #[test]
    fn fields_lists_ranges_steps_and_names_parse() {
        let cron = CronExpression::parse("*/15 9-17 * JAN-mar,Dec mon-FRI").unwrap();
        assert_eq!(cron.minutes().collect::<Vec<_>>(), [0, 15, 30, 45]);
        assert_eq!(cron.hours().count(), 9);
        assert!(cron.matches_day(date(2026, 1, 5))); // a Monday
        assert!(!cron.matches_day(date(2026, 1, 4))); // a Sunday
        assert!(!cron.matches_day(date(2026, 4, 6))); // April
        assert!(cron.matches_day(date(2026, 12, 7)));
        let cron = CronExpression::parse("5/20 0 1 * *").unwrap();
        assert_eq!(cron.minutes().collect::<Vec<_>>(), [5, 25, 45]);
    }

    #[test]
    fn sunday_is_0_and_7_and_restricted_day_fields_match_either() {
        let seven = CronExpression::parse("0 0 * * 7").unwrap();
        let zero = CronExpression::parse("0 0 * * 0").unwrap();
        assert_eq!(seven, zero);
        assert!(seven.matches_day(date(2026, 1, 4)));
        // The 13th or any Friday.
        let either = CronExpression::parse("0 0 13 * FRI").unwrap();
        assert!(either.matches_day(date(2026, 1, 13))); // a Tuesday
        assert!(either.matches_day(date(2026, 1, 2))); // a Friday
        assert!(!either.matches_day(date(2026, 1, 3)));
        // A starred day of week leaves the day of month alone.
        let both = CronExpression::parse("0 0 13 * */1").unwrap();
        assert!(!both.matches_day(date(2026, 1, 2)));
    }

    #[test]
    fn malformed_expressions_are_refused_with_a_reason() {
        for bad in [
            "",
            "* * * *",
            "0 * * * * *",
            "0 0 * * * * 2026",
            "@daily",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * 32 * *",
            "* * * 13 *",
            "* * * * 8",
            "*/0 * * * *",
            "*/61 * * * *",
            "5-1 * * * *",
            "a * * * *",
            "? * * * *",
            "* * L * *",
            "* * * * 1#2",
            ",* * * * *",
            "1,,2 * * * *",
            "-1 * * * *",
            "001 * * * *",
        ] {
            assert!(CronExpression::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(CronExpression::parse(&format!("{} * * * *", "0,".repeat(100))).is_err());
    }
}
