//! Making identities and tokens, shared by `POST /v1/tokens` and by the
//! offline `cairn tokens create --data DIR` / `--store URL`, which is how
//! an operator makes the first admin of a store whose server is not
//! running.

use cairn_api::access::validate_identity_name;
use cairn_api::{ErrorCode, TokenCreateRequest, TokenCreated};
use cairn_store::{IdentityError, IdentityRecord, IdentityStore, TokenRecord};

use super::{token, unix_ms};
use crate::error::ApiError;

/// Checks `request`, makes a token and stores the new identity with it;
/// answers the token (shown this once).
pub async fn create_identity(
    store: &dyn IdentityStore,
    request: &TokenCreateRequest,
) -> Result<TokenCreated, ApiError> {
    validate_identity_name(&request.name).map_err(ApiError::invalid_request)?;
    request
        .permissions
        .validate()
        .map_err(ApiError::invalid_request)?;
    if request.rate_per_s == Some(0) || request.write_rate_per_s == Some(0) {
        return Err(ApiError::invalid_request(
            "a rate limit must be 1 or more per second",
        ));
    }
    let now_ms = unix_ms();
    let (made, record) = new_token(now_ms, expiry(now_ms, request.expires_in_s)?)?;
    let identity = IdentityRecord {
        name: request.name.clone(),
        permissions_json: serde_json::to_string(&request.permissions)
            .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?,
        rate_per_s: request.rate_per_s,
        write_rate_per_s: request.write_rate_per_s,
        created_at_ms: now_ms,
        tokens: vec![record.clone()],
    };
    store
        .create_identity(identity)
        .await
        .map_err(identity_error)?;
    Ok(TokenCreated {
        name: request.name.clone(),
        token_id: record.id,
        token: made.text,
        expires_at_ms: record.expires_at_ms,
    })
}

/// The audit detail of a creation: names and permissions, never a secret.
pub fn created_detail(request: &TokenCreateRequest, created: &TokenCreated) -> String {
    format!(
        "identity {} token {} permissions {}",
        request.name,
        created.token_id,
        serde_json::to_string(&request.permissions).unwrap_or_default()
    )
}

/// When a token made now expires, `expires_in_s` from now (never if `None`).
pub fn expiry(now_ms: u64, expires_in_s: Option<u64>) -> Result<Option<u64>, ApiError> {
    expires_in_s
        .map(|seconds| {
            seconds
                .checked_mul(1_000)
                .and_then(|ms| now_ms.checked_add(ms))
                .filter(|_| seconds > 0)
                .ok_or_else(|| {
                    ApiError::invalid_request(
                        "expires_in_s must be 1 or more, and not absurdly large",
                    )
                })
        })
        .transpose()
}

/// A new token and the record the store keeps of it.
pub fn new_token(
    now_ms: u64,
    expires_at_ms: Option<u64>,
) -> Result<(token::NewToken, TokenRecord), ApiError> {
    let made = token::generate()
        .map_err(|_| ApiError::new(ErrorCode::Internal, "the random source failed"))?;
    let record = TokenRecord {
        id: made.id.clone(),
        secret_hash: *made.secret_hash.as_bytes(),
        created_at_ms: now_ms,
        expires_at_ms,
        last_used_at_ms: None,
    };
    Ok((made, record))
}

/// The API error of a refused identity change.
pub fn identity_error(error: IdentityError) -> ApiError {
    match error {
        IdentityError::Exists(name) => ApiError::new(
            ErrorCode::IdentityExists,
            format!("an identity named {name} exists; rotate its token or revoke it first"),
        ),
        IdentityError::Unknown(name) => ApiError::new(
            ErrorCode::UnknownIdentity,
            format!("no identity named {name}"),
        ),
        IdentityError::Write(error) => error.into(),
        other => ApiError::new(ErrorCode::Internal, other.to_string()),
    }
}
