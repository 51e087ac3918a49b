//! Durable timers over the wire (`/v1/timers`, "Timers" in
//! `docs/api-v1.md`): the definition a `PUT` carries, the view a `GET`
//! answers, and the name rules.
//!
//! A timer writes a fact when an occurrence is due: its template fact with
//! `fields.cairn_timer = {"name", "due"}` added, `due` in one fixed format
//! (UTC, RFC 3339, milliseconds, `Z`), so the same occurrence is always the
//! same fact (the same hash) whichever server fires it and however often.
//! The checks here are those that need no clock and no zone database; the
//! server parses the schedule (`at`, `cron`, `timezone`) itself.

use serde::{Deserialize, Serialize};

use crate::limits::{TIMER_BODY_BYTES_MAX, TIMER_NAME_BYTES_MAX, TIMER_SCHEDULE_BYTES_MAX};
use crate::request_body::RequestBody;

/// The field a timer adds to its template's `fields`.
pub const TIMER_FIELD: &str = "cairn_timer";
/// Which occurrences missed while no server ran are fired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Every missed occurrence, oldest first (at most 100 per timer per
    /// pass; the rest in the passes right after).
    All,
    /// Only the most recent missed occurrence (the default).
    #[default]
    Latest,
    /// None: an occurrence more than 60 s overdue is skipped.
    None,
}

/// The body of `PUT /v1/timers/{name}`, and the definition part of a view
/// (where `catch_up` is filled in). Exactly one of `at` and `cron`;
/// `timezone` with `cron` only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TimerDefinition {
    /// A one-shot timer: the instant, RFC 3339 with an offset, at most
    /// millisecond precision (`2026-03-29T02:30:00+02:00`). In the past,
    /// it fires at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// A recurring timer: a 5-field cron expression (minute, hour, day of
    /// month, month, day of week) in `timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 200))]
    pub cron: Option<String>,
    /// The IANA zone of `cron` (`Europe/Berlin`, `UTC`); required with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 200))]
    pub timezone: Option<String>,
    /// The template: a fact (`type`, `fields`, `predecessors`) without
    /// `fields.cairn_timer`, of a type outside `Cairn.`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub fact: serde_json::Value,
    /// Which occurrences missed while no server ran fire (default
    /// `latest`; a one-shot fires whatever it says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<CatchUp>,
}

impl TimerDefinition {
    /// A one-shot timer at `at` writing `fact`.
    pub fn at(at: impl Into<String>, fact: serde_json::Value) -> TimerDefinition {
        TimerDefinition {
            at: Some(at.into()),
            cron: None,
            timezone: None,
            fact,
            catch_up: None,
        }
    }

    /// A one-shot timer at `at_ms` (ms since the Unix epoch, UTC) writing
    /// `fact`: a timeout, say, whose template names the fact it guards as
    /// a predecessor.
    pub fn at_ms(at_ms: u64, fact: serde_json::Value) -> TimerDefinition {
        TimerDefinition::at(format_utc_ms(at_ms), fact)
    }

    /// A cron timer in `timezone` writing `fact`.
    pub fn cron(
        cron: impl Into<String>,
        timezone: impl Into<String>,
        fact: serde_json::Value,
    ) -> TimerDefinition {
        TimerDefinition {
            at: None,
            cron: Some(cron.into()),
            timezone: Some(timezone.into()),
            fact,
            catch_up: None,
        }
    }

    /// The template's type, if it has one.
    pub fn type_name(&self) -> Option<&str> {
        self.fact.get("type").and_then(serde_json::Value::as_str)
    }
}

impl RequestBody for TimerDefinition {
    fn check(&self) -> Result<(), String> {
        match (&self.at, &self.cron, &self.timezone) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => {}
            (Some(_), Some(_), _) => return Err("give either at or cron, not both".into()),
            (Some(_), None, Some(_)) => {
                return Err("timezone goes with cron; at carries its own offset".into())
            }
            (None, Some(_), None) => {
                return Err("cron needs a timezone (an IANA zone such as UTC)".into())
            }
            (None, None, _) => return Err("give either at or cron".into()),
        }
        for (member, value) in [
            ("at", &self.at),
            ("cron", &self.cron),
            ("timezone", &self.timezone),
        ] {
            if value
                .as_ref()
                .is_some_and(|value| value.len() > TIMER_SCHEDULE_BYTES_MAX)
            {
                return Err(format!(
                    "{member} is longer than {TIMER_SCHEDULE_BYTES_MAX} bytes"
                ));
            }
        }
        check_template(&self.fact)
    }
}

/// Checks a template: a valid fact of a type outside `Cairn.`, whose
/// `fields` do not hold `cairn_timer`, which stays a valid fact once the
/// server adds it.
pub fn check_template(fact: &serde_json::Value) -> Result<(), String> {
    let Some(object) = fact.as_object() else {
        return Err("fact must be an object with type, fields and predecessors".into());
    };
    if let Some(type_name) = object.get("type").and_then(serde_json::Value::as_str) {
        if crate::facts::is_reserved_type(type_name) {
            return Err(format!(
                "fact types under {} are reserved for the server",
                crate::facts::RESERVED_TYPE_PREFIX
            ));
        }
    }
    if object
        .get("fields")
        .and_then(|fields| fields.get(TIMER_FIELD))
        .is_some()
    {
        return Err(format!(
            "fact.fields must not hold {TIMER_FIELD}: the server adds it at each occurrence"
        ));
    }
    let mut with_sample = fact.clone();
    if let Some(fields) = with_sample
        .get_mut("fields")
        .and_then(serde_json::Value::as_object_mut)
    {
        fields.insert(
            TIMER_FIELD.into(),
            serde_json::json!({"name": "n", "due": "1970-01-01T00:00:00.000Z"}),
        );
    }
    let text = serde_json::to_vec(&with_sample).map_err(|error| error.to_string())?;
    cairn_fact::CanonicalFact::from_json(&text, TIMER_BODY_BYTES_MAX)
        .map(|_| ())
        .map_err(|error| format!("fact is not a valid fact: {error}"))
}

/// An instant (ms since the Unix epoch) in the `due` format: UTC, RFC
/// 3339, milliseconds and `Z` (`2026-03-29T01:00:00.000Z`); years past
/// 9999 are written as 9999-12-31T23:59:59.999Z.
pub fn format_utc_ms(at_ms: u64) -> String {
    let at_ms = at_ms.min(253_402_300_799_999);
    let days = (at_ms / 86_400_000) as i64;
    let ms_of_day = at_ms % 86_400_000;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1_000 % 60,
        ms_of_day % 1_000
    )
}

/// Checks a timer name: `[A-Za-z0-9][A-Za-z0-9_.-]*`, 1 to 128 bytes (the
/// rules of subscription names).
pub fn validate_timer_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && name.len() <= TIMER_NAME_BYTES_MAX {
        Ok(())
    } else {
        Err(format!(
            "a timer name is 1 to {TIMER_NAME_BYTES_MAX} characters of [A-Za-z0-9_.-], \
             starting with a letter or digit"
        ))
    }
}

/// A timer as the server shows it: its definition (with `catch_up` filled
/// in) and where its schedule stands (one flat object on the wire).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimerView {
    /// The timer's name.
    pub name: String,
    /// The definition.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub definition: TimerDefinition,
    /// The next occurrence to fire, in the `due` format; absent once a
    /// one-shot has fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_due: Option<String>,
    /// The last occurrence fired, in the `due` format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fired: Option<String>,
    /// Why the last attempt to fire failed (the template's predecessors
    /// are missing, say); it is retried every 5 s. Absent after a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The answer of `GET /v1/timers`: a page of timers by name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimerList {
    /// The timers the caller may see, by name.
    pub timers: Vec<TimerView>,
    /// When there may be more: the `after` of the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_body;
    use serde_json::json;

    fn body(value: serde_json::Value) -> Result<TimerDefinition, String> {
        parse_body::<TimerDefinition>(value.to_string().as_bytes())
    }

    #[test]
    fn a_schedule_is_at_or_cron_with_a_zone() {
        let fact = json!({"type": "Shop.Reminder", "fields": {}, "predecessors": {}});
        assert!(body(json!({"at": "2026-01-01T00:00:00Z", "fact": fact})).is_ok());
        assert!(
            body(json!({"cron": "* * * * *", "timezone": "UTC", "fact": fact,
            "catch_up": "all"}))
            .is_ok()
        );
        assert!(
            body(json!({"at": "x", "cron": "* * * * *", "timezone": "UTC", "fact": fact})).is_err()
        );
        assert!(body(json!({"cron": "* * * * *", "fact": fact})).is_err());
        assert!(
            body(json!({"at": "2026-01-01T00:00:00Z", "timezone": "UTC", "fact": fact})).is_err()
        );
        assert!(body(json!({"fact": fact})).is_err());
        assert!(body(json!({"at": "2026-01-01T00:00:00Z"})).is_err());
        assert!(
            body(json!({"at": "2026-01-01T00:00:00Z", "fact": fact, "catch_up": "some"})).is_err()
        );
        assert!(body(json!({"at": "2026-01-01T00:00:00Z", "fact": fact, "extra": 1})).is_err());
        let long = "x".repeat(TIMER_SCHEDULE_BYTES_MAX + 1);
        assert!(body(json!({"cron": long, "timezone": "UTC", "fact": fact})).is_err());
    }

    #[test]
    fn a_template_is_a_valid_fact_outside_the_reserved_types() {
        let at = "2026-01-01T00:00:00Z";
        for bad in [
            json!([]),
            json!({"type": "Shop.Reminder", "fields": {}}),
            json!({"type": "shop reminder", "fields": {}, "predecessors": {}}),
            json!({"type": "Cairn.Timer", "fields": {}, "predecessors": {}}),
            json!({"type": "A", "fields": {"cairn_timer": 1}, "predecessors": {}}),
            json!({"type": "A", "fields": {}, "predecessors": {"p": "nothex"}}),
            json!({"type": "A", "fields": {"n": 9_007_199_254_740_993_u64}, "predecessors": {}}),
        ] {
            assert!(
                body(json!({"at": at, "fact": bad})).is_err(),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn instants_are_written_in_the_due_format() {
        assert_eq!(format_utc_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc_ms(951_782_400_001), "2000-02-29T00:00:00.001Z");
        assert_eq!(format_utc_ms(1_774_746_000_000), "2026-03-29T01:00:00.000Z");
        assert_eq!(format_utc_ms(u64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn names_follow_the_subscription_rules() {
        assert!(validate_timer_name("order-42.timeout_1").is_ok());
        for bad in [
            "",
            "-a",
            "a b",
            "a/b",
            "é",
            &"a".repeat(TIMER_NAME_BYTES_MAX + 1),
        ] {
            assert!(validate_timer_name(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
