//! Check of the parsers of claims and leases: the `Cairn-Fence` header of
//! a write, and the JSON bodies of `/v1/claims` and `/v1/leases/…`.
//! The header is compared with a model written independently (a scan of
//! the bytes by hand, with the number's value built digit by digit); a
//! body the parser accepts must hold only values within the limits.

use cairn_api::coordination::parse_fence;
use cairn_api::{limits, parse_body, ClaimRequest, LeaseAcquireRequest, LeaseGrantRequest};

/// The model of `<lease name>=<fence>`: surrounding ASCII whitespace
/// allowed, a name of `[A-Za-z0-9][A-Za-z0-9_.-]*` up to 128 bytes, one
/// `=`, and a decimal number from 1 to u64::MAX without sign or leading
/// `+`.
fn fence_model(data: &[u8]) -> Option<(String, u64)> {
    let text = std::str::from_utf8(data).ok()?.trim();
    let equals = text.bytes().position(|byte| byte == b'=')?;
    let (name, number) = (&text[..equals], &text[equals + 1..]);
    let name_bytes = name.as_bytes();
    if name_bytes.is_empty()
        || name_bytes.len() > limits::LEASE_NAME_BYTES_MAX
        || !name_bytes[0].is_ascii_alphanumeric()
        || !name_bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.' || *b == b'-')
    {
        return None;
    }
    if number.is_empty() || number.len() > 20 {
        return None;
    }
    let mut value: u64 = 0;
    for digit in number.bytes() {
        if !digit.is_ascii_digit() {
            return None;
        }
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
    }
    (value > 0).then(|| (name.to_string(), value))
}

/// Parses `data` as a fence header and as each body, checking the
/// invariants above.
pub fn check_collaboration(data: &[u8]) {
    assert_eq!(
        parse_fence(data).ok(),
        fence_model(data),
        "{:?}",
        String::from_utf8_lossy(data)
    );
    if let Ok(claim) = parse_body::<ClaimRequest>(data) {
        assert!(!claim.key.is_empty() && claim.key.len() <= limits::CLAIM_KEY_BYTES_MAX);
        assert!(!claim.key.contains('\0'));
    }
    if let Ok(acquire) = parse_body::<LeaseAcquireRequest>(data) {
        assert!(!acquire.holder.is_empty());
        assert!(acquire.holder.len() <= limits::LEASE_HOLDER_BYTES_MAX);
        assert!((limits::LEASE_TTL_MS_MIN..=limits::LEASE_TTL_MS_MAX).contains(&acquire.ttl_ms));
    }
    if let Ok(grant) = parse_body::<LeaseGrantRequest>(data) {
        assert!(!grant.holder.is_empty());
        assert!(grant.holder.len() <= limits::LEASE_HOLDER_BYTES_MAX);
        if let Some(ttl_ms) = grant.ttl_ms {
            assert!((limits::LEASE_TTL_MS_MIN..=limits::LEASE_TTL_MS_MAX).contains(&ttl_ms));
        }
    }
}
