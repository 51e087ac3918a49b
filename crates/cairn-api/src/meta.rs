//! The small answers: health, versions, a stored blob; and the one metric
//! of `GET /metrics` that clients read.

use cairn_fact::Hash;
use serde::{Deserialize, Serialize};

/// The metric of `GET /metrics` that holds the `seq` of the newest durable
/// fact in the log (0 for an empty log), a gauge without labels: a reader
/// that follows the log starts after it instead of paging through the log.
pub const LOG_LAST_SEQ_METRIC: &str = "cairn_store_last_seq";

/// The answer of `GET /v1/health` while the server can serve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// Always `"ok"` (an unhealthy server answers an error).
    pub status: String,
    /// The server's version.
    pub version: String,
    /// *Addition (issue 19):* what the server serves despite, in words,
    /// e.g. that its PostgreSQL primary acknowledges commits without a
    /// synchronous standby. Left out when there is nothing to say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The answer of `GET /versions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Versions {
    /// The API versions the server speaks, e.g. `["v1"]`.
    pub api: Vec<String>,
    /// The server's version.
    pub server: String,
    /// *Addition (issue 16):* each API version with its status and its
    /// deprecated routes.
    #[serde(default)]
    pub versions: Vec<crate::versioning::ApiVersion>,
}

/// The answer of `PUT /v1/blobs` and `PUT /v1/blobs/{hash}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlobStored {
    /// BLAKE3 of the bytes.
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub hash: Hash,
    /// Length in bytes.
    pub size: u64,
}
