//! The small answers: health, versions, a stored blob.

use cairn_fact::Hash;
use serde::{Deserialize, Serialize};

/// The answer of `GET /v1/health` while the server can serve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// Always `"ok"` (an unhealthy server answers an error).
    pub status: String,
    /// The server's version.
    pub version: String,
}

/// The answer of `GET /versions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Versions {
    /// The API versions the server speaks, e.g. `["v1"]`.
    pub api: Vec<String>,
    /// The server's version.
    pub server: String,
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
