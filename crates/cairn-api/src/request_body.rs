//! Parsing a JSON request body into its type: the shape comes from the
//! type (unknown members refused, `null` the same as absent), the values
//! are checked against [`crate::limits`] by [`RequestBody::check`], so a
//! body that parses is one the handler accepts.

use serde::de::DeserializeOwned;

use crate::limits;

/// A JSON request body of API v1.
pub trait RequestBody: DeserializeOwned {
    /// Checks the values beyond their type; the error is a sentence for
    /// the client. A body with nothing to check keeps this default.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Parses and checks a body of shape `T`; an empty body (or one of only
/// whitespace) counts as `{}`. The error is a sentence for the client
/// (answered as `400 invalid_request`).
pub fn parse_body<T: RequestBody>(bytes: &[u8]) -> Result<T, String> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    // Serde would also build a struct from an array of its members; a body
    // is an object.
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err("invalid body: expected a JSON object".to_string());
    }
    let body: T =
        serde_json::from_slice(bytes).map_err(|error| format!("invalid body: {error}"))?;
    body.check()?;
    Ok(body)
}

/// Checks that an optional number lies in `min..=max`.
pub(crate) fn check_range(
    name: &str,
    value: Option<u64>,
    min: u64,
    max: u64,
) -> Result<(), String> {
    match value {
        Some(value) if !(min..=max).contains(&value) => {
            Err(format!("{name} must be from {min} to {max}"))
        }
        _ => Ok(()),
    }
}

/// Checks an optional lease length against the definition's range.
pub(crate) fn check_lease_ms(lease_ms: Option<u64>) -> Result<(), String> {
    check_range(
        "lease_ms",
        lease_ms,
        limits::LEASE_MS_MIN,
        limits::LEASE_MS_MAX,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscriptions::*;
    use serde_json::json;

    #[test]
    fn an_empty_body_counts_as_an_empty_object() {
        assert_eq!(parse_body::<EmptyRequest>(b"").ok(), Some(EmptyRequest {}));
        assert_eq!(
            parse_body::<EmptyRequest>(b" \n\t").ok(),
            Some(EmptyRequest {})
        );
        assert_eq!(
            parse_body::<ReplayRequest>(b"").ok(),
            Some(ReplayRequest { hashes: None })
        );
        assert!(parse_body::<AckRequest>(b"").is_err());
        assert!(parse_body::<EmptyRequest>(br#"{"paused": true}"#).is_err());
        assert!(parse_body::<PullRequest>(b"[1]").is_err());
        assert!(parse_body::<EmptyRequest>(b"[]").is_err());
    }

    #[test]
    fn null_is_the_same_as_absent() {
        assert_eq!(
            parse_body::<PullRequest>(br#"{"max": null, "wait_ms": null, "lease_ms": null}"#),
            Ok(PullRequest::default())
        );
        assert_eq!(
            parse_body::<ReplayRequest>(br#"{"hashes": null}"#),
            Ok(ReplayRequest { hashes: None })
        );
        let definition: SubscriptionDefinition = serde_json::from_str(
            r#"{"type": "A", "predecessor": null, "start": null, "lease_ms": null,
                "max_attempts": null, "backoff": null, "ordering_key": null,
                "max_in_flight_per_key": null, "rate_limit_per_s": null}"#,
        )
        .unwrap();
        assert_eq!(definition, SubscriptionDefinition::new("A"));
    }

    #[test]
    fn token_lists_are_checked() {
        assert_eq!(
            parse_body::<AckRequest>(br#"{"tokens": ["a"]}"#).ok(),
            Some(AckRequest {
                tokens: vec!["a".into()]
            })
        );
        assert!(parse_body::<AckRequest>(br#"{"tokens": []}"#).is_err());
        let too_many = json!({ "tokens": vec!["a"; limits::ACK_TOKENS_MAX + 1] });
        assert!(parse_body::<AckRequest>(too_many.to_string().as_bytes()).is_err());
        assert!(parse_body::<ExtendRequest>(br#"{"tokens": []}"#).is_err());
        assert!(parse_body::<NackRequest>(br#"{"tokens": []}"#).is_err());
    }

    #[test]
    fn nack_delay_and_error_are_checked() {
        let largest = json!({
            "tokens": ["a"],
            "delay_ms": limits::DELAY_MS_MAX,
            "error": "x".repeat(limits::LAST_ERROR_BYTES_MAX),
        });
        assert!(parse_body::<NackRequest>(largest.to_string().as_bytes()).is_ok());
        let late = json!({ "tokens": ["a"], "delay_ms": limits::DELAY_MS_MAX + 1 });
        assert!(parse_body::<NackRequest>(late.to_string().as_bytes()).is_err());
        let long_error = json!({
            "tokens": ["a"],
            "error": "x".repeat(limits::LAST_ERROR_BYTES_MAX + 1),
        });
        assert!(parse_body::<NackRequest>(long_error.to_string().as_bytes()).is_err());
    }

    #[test]
    fn pull_and_extend_ranges_are_checked() {
        assert!(parse_body::<PullRequest>(br#"{"max": 0}"#).is_err());
        let pull_max = json!({ "max": limits::PULL_MESSAGES_MAX, "wait_ms": limits::WAIT_MS_MAX });
        assert!(parse_body::<PullRequest>(pull_max.to_string().as_bytes()).is_ok());
        let long_wait = json!({ "wait_ms": limits::WAIT_MS_MAX + 1 });
        assert!(parse_body::<PullRequest>(long_wait.to_string().as_bytes()).is_err());
        let short_lease = json!({ "tokens": ["a"], "lease_ms": limits::LEASE_MS_MIN - 1 });
        assert!(parse_body::<ExtendRequest>(short_lease.to_string().as_bytes()).is_err());
        let long_lease = json!({ "lease_ms": limits::LEASE_MS_MAX + 1 });
        assert!(parse_body::<PullRequest>(long_lease.to_string().as_bytes()).is_err());
    }

    #[test]
    fn replay_hash_lists_are_checked() {
        assert!(parse_body::<ReplayRequest>(br#"{"hashes": []}"#).is_err());
        assert_eq!(
            parse_body::<ReplayRequest>(br#"{"hashes": ["not checked here"]}"#).ok(),
            Some(ReplayRequest {
                hashes: Some(vec!["not checked here".into()])
            })
        );
    }
}
