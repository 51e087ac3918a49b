//! API versions and deprecations (`docs/api-v1.md`, "API versions"; the
//! policy is in the README): what `GET /versions` lists, and the table of
//! deprecated routes, each still served with `Deprecation` (RFC 9745) and
//! `Sunset` (RFC 8594) headers until its sunset, beside its replacement.
//!
//! One table, here, so that the server's headers, `/versions` and the
//! OpenAPI document (`deprecated: true`) cannot disagree.

use serde::{Deserialize, Serialize};

/// Where an API version stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum VersionStatus {
    /// The version new clients should use.
    Current,
    /// Still served until its sunset; move to the current one.
    Deprecated,
}

/// One API version in `GET /versions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiVersion {
    /// The version, e.g. `v1`.
    pub version: String,
    /// Its status.
    pub status: VersionStatus,
    /// The path its routes start with, e.g. `/v1/`.
    pub base: String,
    /// When it stops being served (RFC 3339 date), once deprecated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sunset: Option<String>,
    /// Its routes that are deprecated, each served until its sunset.
    pub deprecated_routes: Vec<DeprecatedRouteView>,
}

/// A deprecated route in `GET /versions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeprecatedRouteView {
    /// The HTTP method.
    pub method: String,
    /// The route, as in the OpenAPI document.
    pub route: String,
    /// The route to use instead.
    pub replacement: String,
    /// Deprecated since (RFC 3339 date).
    pub deprecated: String,
    /// Served until (RFC 3339 date); after it the route may answer 410.
    pub sunset: String,
    /// Why.
    pub reason: String,
}

/// A deprecated route of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeprecatedRoute {
    /// The HTTP method.
    pub method: &'static str,
    /// The route, as in the OpenAPI document.
    pub route: &'static str,
    /// The route to use instead (same method).
    pub replacement: &'static str,
    /// Deprecated since, as an RFC 3339 date.
    pub deprecated: &'static str,
    /// The same instant in seconds since the Unix epoch (the
    /// `Deprecation` header's `@<seconds>`).
    pub deprecated_unix_s: u64,
    /// Served until, as an RFC 3339 date.
    pub sunset: &'static str,
    /// The same instant as an HTTP date (the `Sunset` header).
    pub sunset_http_date: &'static str,
    /// Why, for a person.
    pub reason: &'static str,
}

impl DeprecatedRoute {
    /// The value of the `Deprecation` header (RFC 9745: a structured-field
    /// date).
    pub fn deprecation_header(&self) -> String {
        format!("@{}", self.deprecated_unix_s)
    }

    /// The value of the `Link` header naming the replacement.
    pub fn link_header(&self) -> String {
        format!("<{}>; rel=\"successor-version\"", self.replacement)
    }

    /// As `GET /versions` lists it.
    pub fn view(&self) -> DeprecatedRouteView {
        DeprecatedRouteView {
            method: self.method.to_string(),
            route: self.route.to_string(),
            replacement: self.replacement.to_string(),
            deprecated: self.deprecated.to_string(),
            sunset: self.sunset.to_string(),
            reason: self.reason.to_string(),
        }
    }
}

/// Every deprecated route of API v1. A route stays served at least twelve
/// months after it is deprecated (the README's policy).
pub const DEPRECATED_ROUTES: &[DeprecatedRoute] = &[DeprecatedRoute {
    method: "PUT",
    route: "/v1/blobs",
    replacement: "/v1/blobs/{hash}",
    deprecated: "2026-12-06",
    deprecated_unix_s: 1_796_515_200,
    sunset: "2027-12-06",
    sunset_http_date: "Mon, 06 Dec 2027 00:00:00 GMT",
    reason: "an upload that names its hash is checked on arrival: bytes damaged on the way are \
             refused (422 blob_hash_mismatch) instead of stored under another hash",
}];

/// The deprecation of `method` on `route` (a route template), if any.
pub fn deprecation_of(method: &str, route: &str) -> Option<&'static DeprecatedRoute> {
    DEPRECATED_ROUTES
        .iter()
        .find(|deprecated| deprecated.method == method && deprecated.route == route)
}

/// The versions this server speaks, for `GET /versions`.
pub fn api_versions() -> Vec<ApiVersion> {
    vec![ApiVersion {
        version: "v1".to_string(),
        status: VersionStatus::Current,
        base: "/v1/".to_string(),
        sunset: None,
        deprecated_routes: DEPRECATED_ROUTES
            .iter()
            .map(DeprecatedRoute::view)
            .collect(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Days from 1970-01-01 to a proleptic Gregorian date.
    fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
        let year = if month <= 2 { year - 1 } else { year };
        let era = year.div_euclid(400);
        let year_of_era = year - era * 400;
        let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        era * 146_097 + day_of_era - 719_468
    }

    fn parse_date(text: &str) -> (i64, i64, i64) {
        let parts: Vec<i64> = text.split('-').map(|part| part.parse().unwrap()).collect();
        (parts[0], parts[1], parts[2])
    }

    #[test]
    fn the_header_values_agree_with_the_dates() {
        const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        for route in DEPRECATED_ROUTES {
            let (year, month, day) = parse_date(route.deprecated);
            let days = days_from_civil(year, month, day);
            assert_eq!(route.deprecated_unix_s as i64, days * 86_400, "{route:?}");
            let (year, month, day) = parse_date(route.sunset);
            let days = days_from_civil(year, month, day);
            let expected = format!(
                "{}, {day:02} {} {year} 00:00:00 GMT",
                WEEKDAYS[days.rem_euclid(7) as usize],
                MONTHS[month as usize - 1]
            );
            assert_eq!(route.sunset_http_date, expected, "{route:?}");
            // Served at least twelve months after its deprecation.
            let deprecated = parse_date(route.deprecated);
            assert!(
                (year, month, day) >= (deprecated.0 + 1, deprecated.1, deprecated.2),
                "{route:?}"
            );
            assert_ne!(route.route, route.replacement);
        }
    }

    #[test]
    fn lookups_find_exactly_the_table() {
        assert!(deprecation_of("PUT", "/v1/blobs").is_some());
        assert!(deprecation_of("PUT", "/v1/blobs/{hash}").is_none());
        assert!(deprecation_of("GET", "/v1/blobs").is_none());
        assert_eq!(
            api_versions()[0].deprecated_routes.len(),
            DEPRECATED_ROUTES.len()
        );
    }
}
