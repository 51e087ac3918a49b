//! Service boundaries (`/v1/services`, `/v1/boundaries`; "Service
//! boundaries" in `docs/api-v1.md`): what services declare they own and
//! consume, what identities were actually seen writing and consuming,
//! and the check of the one against the other.
//!
//! `services.rs` keeps declarations as `Cairn.Service` facts, `flows.rs`
//! observes flows in memory and persists them as `Cairn.Flow` facts off
//! the request path, and `check.rs` is the pure judgement. Being facts,
//! both work the same on the embedded store and on PostgreSQL, and
//! replicate like any fact.

pub mod check;
mod flows;
pub mod services;

pub use flows::{flow_registry_anchor, spawn_recorder, Flows};

use cairn_fact::CanonicalFact;

/// Milliseconds of a day.
const DAY_MS: u64 = 86_400_000;

/// Builds a fact the server writes; its parts are validated already, so a
/// failure is a bug.
fn server_fact(value: serde_json::Value) -> CanonicalFact {
    CanonicalFact::from_json(value.to_string().as_bytes(), usize::MAX)
        .expect("a fact the server builds is valid")
}

/// The UTC day (days since the Unix epoch) of an instant.
fn day_of(at_ms: u64) -> u64 {
    at_ms / DAY_MS
}

/// The first millisecond of a UTC day.
fn day_start_ms(day: u64) -> u64 {
    day.saturating_mul(DAY_MS)
}

/// A UTC day as `2026-12-06`.
fn day_text(day: u64) -> String {
    cairn_api::format_utc_ms(day_start_ms(day))[..10].to_string()
}

/// The UTC day of `2026-12-06` (Howard Hinnant's `days_from_civil`).
fn parse_day(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|byte| byte.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    u64::try_from(era * 146_097 + day_of_era - 719_468).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_written_and_read_back() {
        for day in [0, 1, 59, 60, 365, 10_957, 20_793, 2_932_896] {
            assert_eq!(parse_day(&day_text(day)), Some(day), "{}", day_text(day));
        }
        assert_eq!(day_text(20_793), "2026-12-06");
        for bad in [
            "2026-13-01",
            "2026-1-01",
            "20261206xx",
            "1969-12-31",
            "abcd-ef-gh",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }
}
