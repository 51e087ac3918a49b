//! Claims and leases over the wire (`docs/api-v1.md`, "Collaboration"):
//! the bodies of `/v1/claims` and `/v1/leases/{name}/…`, the checks of
//! keys, names and holders, and the `Cairn-Fence` header a fenced write
//! carries.

use cairn_fact::Hash;
use serde::{Deserialize, Serialize};

use crate::limits;
use crate::request_body::{check_range, RequestBody};

/// The header that fences a write of facts: `Cairn-Fence: <name>=<fence>`.
pub const FENCE_HEADER: &str = "cairn-fence";

/// The body of `POST /v1/claims` and of `POST /v1/claims/release`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The key: 1 to 512 bytes of UTF-8, without NUL.
    pub key: String,
    /// The hash of a stored fact: the claimant.
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub fact: Hash,
}

impl RequestBody for ClaimRequest {
    fn check(&self) -> Result<(), String> {
        check_claim_key(&self.key)
    }
}

/// Checks a claim key: 1 to [`limits::CLAIM_KEY_BYTES_MAX`] bytes of
/// UTF-8, without NUL (which no backend can keep in a key).
pub fn check_claim_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > limits::CLAIM_KEY_BYTES_MAX {
        return Err(format!(
            "a claim key is 1 to {} bytes of UTF-8; this one has {}",
            limits::CLAIM_KEY_BYTES_MAX,
            key.len()
        ));
    }
    if key.contains('\0') {
        return Err("a claim key cannot contain NUL (U+0000)".to_string());
    }
    Ok(())
}

/// The answer of `POST /v1/claims` and `GET /v1/claims/{key}`: who holds
/// the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimAnswer {
    /// The key.
    pub key: String,
    /// The winner: the fact that holds the key.
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub fact: Hash,
    /// True if the fact of the request is the winner (only in the answer
    /// of `POST /v1/claims`; a `GET` has no claimant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub won: Option<bool>,
    /// The position of the `Cairn.Claimed` fact in the log.
    pub seq: u64,
    /// Claims won on this key so far, this one included: a claim after a
    /// release is a new generation.
    pub generation: u64,
    /// The `Cairn.Claimed` fact that records the decision.
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub claimed: Hash,
}

/// The answer of `POST /v1/claims/release`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimReleased {
    /// The key, free again.
    pub key: String,
    /// The fact that held it.
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub fact: Hash,
    /// The `Cairn.ClaimReleased` fact that records the release.
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub released: Hash,
    /// Its position in the log.
    pub seq: u64,
}

/// Checks a lease name: `[A-Za-z0-9][A-Za-z0-9_.-]*`, 1 to
/// [`limits::LEASE_NAME_BYTES_MAX`] bytes (as subscription names).
pub fn check_lease_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if first_ok && rest_ok && name.len() <= limits::LEASE_NAME_BYTES_MAX {
        Ok(())
    } else {
        Err(format!(
            "a lease name is 1 to {} characters of [A-Za-z0-9_.-], starting with a letter or digit",
            limits::LEASE_NAME_BYTES_MAX
        ))
    }
}

fn check_holder(holder: &str) -> Result<(), String> {
    if holder.is_empty() || holder.len() > limits::LEASE_HOLDER_BYTES_MAX || holder.contains('\0') {
        return Err(format!(
            "holder is 1 to {} bytes of UTF-8, without NUL",
            limits::LEASE_HOLDER_BYTES_MAX
        ));
    }
    Ok(())
}

fn check_ttl_ms(ttl_ms: Option<u64>) -> Result<(), String> {
    check_range(
        "ttl_ms",
        ttl_ms,
        limits::LEASE_TTL_MS_MIN,
        limits::LEASE_TTL_MS_MAX,
    )
}

/// The body of `POST /v1/leases/{name}/acquire`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeaseAcquireRequest {
    /// Who asks: 1 to 256 bytes of UTF-8 (a process, a host, an instance
    /// id). The current holder acquiring again keeps its grant, renewed.
    pub holder: String,
    /// Lease length, 100 to 3,600,000 ms.
    pub ttl_ms: u64,
}

impl RequestBody for LeaseAcquireRequest {
    fn check(&self) -> Result<(), String> {
        check_holder(&self.holder)?;
        check_ttl_ms(Some(self.ttl_ms))
    }
}

/// The body of `POST /v1/leases/{name}/renew` and `…/release`: the grant
/// the holder has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeaseGrantRequest {
    /// The holder the grant was made to.
    pub holder: String,
    /// The grant's fence.
    pub fence: u64,
    /// A renewal's new lease length (default: the grant's own); not taken
    /// by a release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

impl RequestBody for LeaseGrantRequest {
    fn check(&self) -> Result<(), String> {
        check_holder(&self.holder)?;
        check_ttl_ms(self.ttl_ms)
    }
}

/// A lease's grant: the answer of acquire, renew and release, and of
/// `GET /v1/leases/{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseGrant {
    /// The lease's name.
    pub name: String,
    /// The holder.
    pub holder: String,
    /// The fence: strictly increasing per name across every grant,
    /// restart and server.
    pub fence: u64,
    /// When the grant expires, RFC 3339 in UTC with milliseconds.
    pub expires_at: String,
    /// The same instant in ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// The lease length renewals keep.
    pub ttl_ms: u64,
    /// True once the holder released it.
    pub released: bool,
    /// The `Cairn.LeaseGranted` fact of this grant.
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub granted: Hash,
}

/// Parses a `Cairn-Fence` header value: `<lease name>=<fence>`.
pub fn parse_fence(value: &[u8]) -> Result<(String, u64), String> {
    let text = std::str::from_utf8(value)
        .map_err(|_| "Cairn-Fence must be ASCII: <lease name>=<fence>".to_string())?;
    let (name, fence) = text
        .trim()
        .split_once('=')
        .ok_or_else(|| "Cairn-Fence must be <lease name>=<fence>".to_string())?;
    check_lease_name(name)?;
    if fence.is_empty() || fence.len() > 20 || !fence.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the fence of Cairn-Fence must be a positive integer".to_string());
    }
    let fence: u64 = fence
        .parse()
        .map_err(|_| "the fence of Cairn-Fence is too large".to_string())?;
    if fence == 0 {
        return Err("the fence of Cairn-Fence must be a positive integer".to_string());
    }
    Ok((name.to_string(), fence))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_body;

    #[test]
    fn claim_keys_are_checked() {
        let hash = "a".repeat(64);
        let body =
            |key: &str| format!(r#"{{"key": {}, "fact": "{hash}"}}"#, serde_json::json!(key));
        assert!(parse_body::<ClaimRequest>(body("seat 12A").as_bytes()).is_ok());
        assert!(parse_body::<ClaimRequest>(body("ü").as_bytes()).is_ok());
        let longest = "k".repeat(limits::CLAIM_KEY_BYTES_MAX);
        assert!(parse_body::<ClaimRequest>(body(&longest).as_bytes()).is_ok());
        for bad in ["", "a\u{0}b", &format!("{longest}k")] {
            assert!(
                parse_body::<ClaimRequest>(body(bad).as_bytes()).is_err(),
                "{bad:?}"
            );
        }
        assert!(parse_body::<ClaimRequest>(br#"{"key": "k", "fact": "nope"}"#).is_err());
        assert!(parse_body::<ClaimRequest>(br#"{"key": "k"}"#).is_err());
        let extra = format!(r#"{{"key": "k", "fact": "{hash}", "x": 1}}"#);
        assert!(parse_body::<ClaimRequest>(extra.as_bytes()).is_err());
    }

    #[test]
    fn lease_bodies_are_checked() {
        assert!(parse_body::<LeaseAcquireRequest>(br#"{"holder": "a", "ttl_ms": 100}"#).is_ok());
        assert!(
            parse_body::<LeaseAcquireRequest>(br#"{"holder": "a", "ttl_ms": 3600000}"#).is_ok()
        );
        for bad in [
            r#"{"holder": "a", "ttl_ms": 99}"#,
            r#"{"holder": "a", "ttl_ms": 3600001}"#,
            r#"{"holder": "", "ttl_ms": 1000}"#,
            r#"{"holder": "a"}"#,
            r#"{"holder": "a", "ttl_ms": -1}"#,
            r#"{"holder": "a", "ttl_ms": 1.5}"#,
        ] {
            assert!(
                parse_body::<LeaseAcquireRequest>(bad.as_bytes()).is_err(),
                "{bad}"
            );
        }
        let long_holder = format!(
            r#"{{"holder": "{}", "fence": 1}}"#,
            "h".repeat(limits::LEASE_HOLDER_BYTES_MAX + 1)
        );
        assert!(parse_body::<LeaseGrantRequest>(long_holder.as_bytes()).is_err());
        assert!(parse_body::<LeaseGrantRequest>(br#"{"holder": "a", "fence": 3}"#).is_ok());
        assert!(parse_body::<LeaseGrantRequest>(br#"{"holder": "a"}"#).is_err());
    }

    #[test]
    fn lease_names_are_checked() {
        assert!(check_lease_name("leader.billing-1_a").is_ok());
        for bad in [
            "",
            "-a",
            "a b",
            "a/b",
            "ä",
            &"n".repeat(limits::LEASE_NAME_BYTES_MAX + 1),
        ] {
            assert!(check_lease_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fence_headers_are_parsed_strictly() {
        assert_eq!(parse_fence(b"leader=7"), Ok(("leader".to_string(), 7)));
        assert_eq!(
            parse_fence(b" leader=18446744073709551615 "),
            Ok(("leader".to_string(), u64::MAX))
        );
        for bad in [
            &b"leader"[..],
            b"leader=",
            b"=7",
            b"leader=0",
            b"leader=-1",
            b"leader=+1",
            b"leader=7x",
            b"leader=18446744073709551616",
            b"lea der=7",
            b"leader=7=8",
            b"\xff=1",
        ] {
            assert!(
                parse_fence(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
