//! The error of fact validation and canonicalization: one variant per way a
//! fact can be refused, each naming the offending member, role or value, and
//! each with the stable snake_case code that the HTTP API shows to users.

use crate::{Hash, JsonError};

/// Why a fact was refused, or why stored fact bytes failed verification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FactError {
    /// The fact's JSON text could not be parsed, or a value built in code
    /// breaks a rule that parsing enforces (a non-finite number, a
    /// duplicate key, nesting deeper than [`crate::JSON_DEPTH_MAX`]).
    #[error(transparent)]
    Json(#[from] JsonError),
    /// The fact is not a JSON object.
    #[error("a fact must be a JSON object with the members type, fields and predecessors")]
    NotAnObject,
    /// One of the three members of a fact is missing.
    #[error("the fact has no {name:?} member; a fact has exactly type, fields and predecessors")]
    MissingMember {
        /// The missing member: `type`, `fields` or `predecessors`.
        name: String,
    },
    /// The fact has a member other than its three.
    #[error(
        "the fact has an unknown member {name:?}; a fact has exactly type, fields and predecessors"
    )]
    UnknownMember {
        /// The unknown member's name (cut short when very long).
        name: String,
    },
    /// The fact's type is not a valid type name.
    #[error("invalid fact type {type_name:?}: {reason}")]
    InvalidType {
        /// The type as given: its text, or its JSON when it is not a string
        /// (cut short when very long).
        type_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The `fields` member is not an object.
    #[error("the fact's fields must be a JSON object")]
    FieldsNotObject,
    /// The `predecessors` member is not an object.
    #[error("the fact's predecessors must be a JSON object mapping roles to hashes")]
    PredecessorsNotObject,
    /// A predecessor role name is not valid.
    #[error(
        "invalid predecessor role {role:?}: a role is a letter followed by letters, digits \
         or underscores, at most 200 characters"
    )]
    InvalidRole {
        /// The role as given (cut short when very long).
        role: String,
    },
    /// The predecessors of a role are neither a hash nor a non-empty array of
    /// hashes.
    #[error("invalid predecessors for role {role:?}: {reason}")]
    InvalidPredecessor {
        /// The role.
        role: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// A predecessor is a string but not a hash.
    #[error(
        "the predecessor {text:?} of role {role:?} is not a hash: a hash is 64 lowercase \
         hexadecimal characters"
    )]
    InvalidHash {
        /// The role.
        role: String,
        /// The rejected text (cut short when very long).
        text: String,
    },
    /// The fact's canonical form is larger than allowed.
    #[error(
        "the fact's canonical form is {canonical_bytes} bytes, more than the limit of \
         {canonical_bytes_max} bytes; store large payloads as blobs and refer to their hashes"
    )]
    TooLarge {
        /// Size of the canonical form.
        canonical_bytes: usize,
        /// The limit it exceeds.
        canonical_bytes_max: usize,
    },
    /// Stored fact bytes do not hash to the hash they were stored under.
    #[error("the stored fact hashes to {actual}, not to the expected {expected}")]
    HashMismatch {
        /// The hash the fact was stored under.
        expected: Hash,
        /// The hash of the bytes read back.
        actual: Hash,
    },
    /// Stored fact bytes hash correctly but are not in canonical form, so
    /// they were not written by this code.
    #[error("the stored fact {expected} is not in canonical form")]
    NotCanonical {
        /// The hash the fact was stored under.
        expected: Hash,
    },
}

impl FactError {
    /// Returns the stable snake_case code of this error, as shown in API
    /// error responses. Parse errors keep the parser's code.
    pub fn code(&self) -> &'static str {
        match self {
            FactError::Json(json_error) => json_error.code(),
            FactError::NotAnObject
            | FactError::MissingMember { .. }
            | FactError::UnknownMember { .. }
            | FactError::FieldsNotObject
            | FactError::PredecessorsNotObject => "invalid_fact",
            FactError::InvalidType { .. } => "invalid_type",
            FactError::InvalidRole { .. } => "invalid_role",
            FactError::InvalidPredecessor { .. } => "invalid_predecessor",
            FactError::InvalidHash { .. } => "invalid_hash",
            FactError::TooLarge { .. } => "fact_too_large",
            FactError::HashMismatch { .. } | FactError::NotCanonical { .. } => "corrupt_fact",
        }
    }
}
