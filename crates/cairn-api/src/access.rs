//! Access control over the wire: the permissions of an identity, the
//! patterns they are written in, and the bodies of the token endpoints
//! (`/v1/tokens`) and the audit trail (`/v1/audit`).
//!
//! An *identity* has a name and a set of [`Permissions`]; it authenticates
//! with an *access token* (`Authorization: Bearer <token>`), which is not a
//! lease token. Tokens look like `cairn_<id>_<secret>`: the 16 hex digits of
//! the id name the token (safe to log and list), the 64 hex digits of the
//! secret are its 256 random bits, stored only as their BLAKE3 hash.
//!
//! *Patterns* are parsed and normalized once, here, by the same code for
//! the permission check and for whatever else reads them: `*` matches any
//! run of characters, dots included, and the empty run (`Shop.*` matches
//! `Shop.Order` and `Shop.Order.Line`; `Shop.Payment*` matches
//! `Shop.Payment` and `Shop.PaymentFailed`); every other character matches
//! itself. Runs of `*` are one `*`.

use serde::{Deserialize, Serialize};

/// Characters of an identity name at most.
pub const IDENTITY_NAME_BYTES_MAX: usize = 128;
/// Patterns per permission list at most.
pub const PATTERNS_MAX: usize = 64;
/// Bytes of one pattern at most.
pub const PATTERN_BYTES_MAX: usize = 256;
/// Bytes of an `Authorization` header the server reads at most; a longer
/// one is refused without being parsed further.
pub const AUTHORIZATION_BYTES_MAX: usize = 512;
/// The prefix of every access token.
pub const TOKEN_PREFIX: &str = "cairn_";
/// Hex digits of a token's id.
pub const TOKEN_ID_HEX_LEN: usize = 16;
/// Hex digits of a token's secret (256 bits).
pub const TOKEN_SECRET_HEX_LEN: usize = 64;

/// A pattern of fact types or subscription names, normalized.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pattern(String);

/// Why a pattern was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern is empty.
    #[error("a pattern is empty")]
    Empty,
    /// The pattern is longer than [`PATTERN_BYTES_MAX`].
    #[error("a pattern is longer than {PATTERN_BYTES_MAX} bytes")]
    TooLong,
    /// The pattern holds a character no name holds.
    #[error("pattern {0:?} holds a character other than letters, digits, '_', '.', '-' and '*'")]
    InvalidCharacter(String),
}

impl Pattern {
    /// Parses and normalizes a pattern: 1 to [`PATTERN_BYTES_MAX`] bytes of
    /// ASCII letters, digits, `_`, `.`, `-` and `*`; runs of `*` become one.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text.len() > PATTERN_BYTES_MAX {
            return Err(PatternError::TooLong);
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '*');
        if !text.chars().all(allowed) {
            let shown: String = text.chars().take(64).collect();
            return Err(PatternError::InvalidCharacter(shown));
        }
        let mut normalized = String::with_capacity(text.len());
        for c in text.chars() {
            if !(c == '*' && normalized.ends_with('*')) {
                normalized.push(c);
            }
        }
        Ok(Pattern(normalized))
    }

    /// The normalized text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches: `*` matches any run of characters (dots
    /// included, possibly empty), every other character itself.
    ///
    /// Linear in `name` per `*` (the classic backtracking over the last
    /// star only, which is enough for patterns whose one wildcard is `*`).
    pub fn matches(&self, name: &str) -> bool {
        let pattern = self.0.as_bytes();
        let name = name.as_bytes();
        let (mut p, mut n) = (0, 0);
        // Where the last `*` was, and the name position it matched up to.
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            if p < pattern.len() && pattern[p] == b'*' {
                star = Some((p, n));
                p += 1;
            } else if p < pattern.len() && pattern[p] == name[n] {
                p += 1;
                n += 1;
            } else if let Some((star_p, star_n)) = star {
                // Let the last star swallow one more character.
                p = star_p + 1;
                n = star_n + 1;
                star = Some((star_p, star_n + 1));
            } else {
                return false;
            }
        }
        pattern[p..].iter().all(|&c| c == b'*')
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Pattern::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Whether any of `patterns` matches `name`.
pub fn any_matches(patterns: &[Pattern], name: &str) -> bool {
    patterns.iter().any(|pattern| pattern.matches(name))
}

/// What an identity may do with blobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BlobAccess {
    /// `GET /v1/blobs/{hash}`.
    Read,
    /// Reading and `PUT /v1/blobs[/{hash}]`.
    Write,
}

/// What an identity may do. A new identity can do nothing until granted
/// (every member defaults to nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// Fact types it may read (`GET /v1/facts/{hash}`, the log, successors,
    /// subscriptions over them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub read: Vec<Pattern>,
    /// Fact types it may write (`POST /v1/facts`: every fact of a batch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub write: Vec<Pattern>,
    /// Subscriptions it may consume (pull, ack, nack, extend, stream, read
    /// its view and dead letters) and create or update over types it may
    /// read — not delete, pause, resume, replay or discard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub subscribe: Vec<Pattern>,
    /// Blob access, none if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blobs: Option<BlobAccess>,
    /// `GET /metrics` (a scraper's token needs nothing else).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub metrics: bool,
    /// Everything, including tokens, the audit trail, deleting, pausing
    /// and resuming subscriptions, replaying and discarding dead letters.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

impl Permissions {
    /// Everything.
    pub fn admin() -> Permissions {
        Permissions {
            admin: true,
            ..Permissions::default()
        }
    }

    /// May read facts of `type_name`.
    pub fn may_read(&self, type_name: &str) -> bool {
        self.admin || any_matches(&self.read, type_name)
    }

    /// May write facts of `type_name`.
    pub fn may_write(&self, type_name: &str) -> bool {
        self.admin || any_matches(&self.write, type_name)
    }

    /// May consume the subscription `name`.
    pub fn may_subscribe(&self, name: &str) -> bool {
        self.admin || any_matches(&self.subscribe, name)
    }

    /// May read blobs.
    pub fn may_read_blobs(&self) -> bool {
        self.admin || self.blobs.is_some()
    }

    /// May write blobs.
    pub fn may_write_blobs(&self) -> bool {
        self.admin || self.blobs == Some(BlobAccess::Write)
    }

    /// May scrape `/metrics`.
    pub fn may_read_metrics(&self) -> bool {
        self.admin || self.metrics
    }

    /// Checks the list sizes.
    pub fn validate(&self) -> Result<(), String> {
        for (list, patterns) in [
            ("read", &self.read),
            ("write", &self.write),
            ("subscribe", &self.subscribe),
        ] {
            if patterns.len() > PATTERNS_MAX {
                return Err(format!("{list} holds more than {PATTERNS_MAX} patterns"));
            }
        }
        Ok(())
    }
}

/// Checks an identity name: `[A-Za-z0-9][A-Za-z0-9_.-]*`, 1 to 128 bytes.
pub fn validate_identity_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && name.len() <= IDENTITY_NAME_BYTES_MAX {
        Ok(())
    } else {
        Err(format!(
            "an identity name is 1 to {IDENTITY_NAME_BYTES_MAX} characters of [A-Za-z0-9_.-], \
             starting with a letter or digit"
        ))
    }
}

/// The body of `POST /v1/tokens`: a new identity and its first token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenCreateRequest {
    /// The identity's name (unique).
    pub name: String,
    /// What it may do (nothing, if absent).
    #[serde(default)]
    pub permissions: Permissions,
    /// Seconds until the token expires (never, if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_s: Option<u64>,
    /// Requests per second this identity may make on each server (no
    /// limit, if absent); beyond it the server answers 429 `rate_limited`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_s: Option<u32>,
    /// Facts per second this identity may write on each server (no limit,
    /// if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_rate_per_s: Option<u32>,
}

/// The body of `POST /v1/tokens/{name}/rotate`: a new token for an
/// identity; its other tokens keep working for `overlap_s` seconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenRotateRequest {
    /// Seconds the identity's earlier tokens keep working (default 3600;
    /// 0 ends them now). An earlier token that expires sooner keeps its
    /// own expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_s: Option<u64>,
    /// Seconds until the new token expires (never, if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_s: Option<u64>,
}

/// The answer of `POST /v1/tokens` and of a rotation: the token, shown
/// this once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenCreated {
    /// The identity's name.
    pub name: String,
    /// The token's id (not secret).
    pub token_id: String,
    /// The token itself: keep it; the server keeps only its hash.
    pub token: String,
    /// When the token expires (ms since the Unix epoch), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

/// One token of an identity, as listed (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenView {
    /// The token's id.
    pub token_id: String,
    /// When it was created (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When it expires, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// When it was last used (to within a few seconds), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at_ms: Option<u64>,
}

/// An identity as listed: names, permissions, dates; never secrets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentityView {
    /// The identity's name.
    pub name: String,
    /// What it may do.
    pub permissions: Permissions,
    /// Requests per second, if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_s: Option<u32>,
    /// Facts written per second, if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_rate_per_s: Option<u32>,
    /// When it was created (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When any of its tokens was last used, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at_ms: Option<u64>,
    /// Its tokens that still work (or will, within an overlap).
    pub tokens: Vec<TokenView>,
}

/// The answer of `GET /v1/tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentityList {
    /// Every identity that is not revoked, by name.
    pub identities: Vec<IdentityView>,
}

/// The answer of `DELETE /v1/tokens/{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Revoked {
    /// The identity's name.
    pub name: String,
    /// Always `true` (revoking an unknown name answers 404).
    pub revoked: bool,
}

/// Who wrote a fact, in `GET /v1/facts/{hash}` for admins (recorded beside
/// the fact, never in it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Authorship {
    /// The identity whose write stored it.
    pub first: String,
    /// Other identities that wrote it again, in the order they first did,
    /// at most [`AUTHORS_AGAIN_MAX`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub again: Vec<String>,
}

/// Identities recorded as having written a fact again, at most.
pub const AUTHORS_AGAIN_MAX: usize = 8;

/// One entry of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Position in the trail (ascending).
    pub seq: u64,
    /// When (ms since the Unix epoch); for an aggregate, the first.
    pub at_ms: u64,
    /// The identity, or `-` when none was authenticated.
    pub identity: String,
    /// The HTTP method.
    pub method: String,
    /// The route (its template, e.g. `/v1/tokens/{name}`, for refusals;
    /// the path with names for admin actions).
    pub route: String,
    /// `created`, `revoked`, `rotated`, `admin`, `unauthenticated`,
    /// `forbidden` or `rate_limited`.
    pub outcome: String,
    /// The HTTP status answered.
    pub status: u16,
    /// How many requests this entry stands for (repeated refusals are
    /// aggregated; 1 otherwise).
    pub count: u64,
    /// What happened, in a few words (never a secret).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The answer of `GET /v1/audit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    /// Entries with `seq` above the query's `after`, ascending.
    pub entries: Vec<AuditEntry>,
    /// Pass as `after` for the next page.
    pub next: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> Pattern {
        Pattern::parse(text).expect("valid pattern")
    }

    #[test]
    fn star_matches_within_and_across_dots_and_the_empty_run() {
        let shop = pattern("Shop.*");
        assert!(shop.matches("Shop.Order"));
        assert!(shop.matches("Shop.Order.Line"));
        assert!(shop.matches("Shop."));
        assert!(!shop.matches("Shop"));
        assert!(!shop.matches("ShopX.Order"));
        assert!(!shop.matches("Other.Shop.Order"));
        let payment = pattern("Shop.Payment*");
        assert!(payment.matches("Shop.Payment"));
        assert!(payment.matches("Shop.PaymentFailed"));
        assert!(!payment.matches("Shop.Paymen"));
        assert!(pattern("*").matches("Anything.At.All"));
        assert!(pattern("*.Event").matches("Shop.Order.Event"));
        assert!(!pattern("*.Event").matches("Shop.Order.Events"));
        assert!(pattern("a*b*c").matches("abc"));
        assert!(pattern("a*b*c").matches("axxbyyc"));
        assert!(!pattern("a*b*c").matches("axxbyy"));
        assert!(pattern("Exact").matches("Exact"));
        assert!(!pattern("Exact").matches("exact"));
    }

    #[test]
    fn patterns_are_normalized_once_and_bad_ones_refused() {
        assert_eq!(pattern("Shop.**").as_str(), "Shop.*");
        assert_eq!(pattern("***").as_str(), "*");
        assert_eq!(Pattern::parse(""), Err(PatternError::Empty));
        assert!(matches!(
            Pattern::parse("Shop/Order"),
            Err(PatternError::InvalidCharacter(_))
        ));
        assert!(matches!(
            Pattern::parse("Shöp.*"),
            Err(PatternError::InvalidCharacter(_))
        ));
        assert_eq!(
            Pattern::parse(&"a".repeat(PATTERN_BYTES_MAX + 1)),
            Err(PatternError::TooLong)
        );
    }

    #[test]
    fn a_new_identity_may_do_nothing() {
        let nothing = Permissions::default();
        assert!(!nothing.may_read("Shop.Order"));
        assert!(!nothing.may_write("Shop.Order"));
        assert!(!nothing.may_subscribe("billing"));
        assert!(!nothing.may_read_blobs());
        assert!(!nothing.may_read_metrics());
        let admin = Permissions::admin();
        assert!(admin.may_write("Anything") && admin.may_read_metrics());
    }

    #[test]
    fn permissions_parse_strictly() {
        let parsed: Permissions =
            serde_json::from_str(r#"{"read":["Shop.*"],"blobs":"read"}"#).expect("parses");
        assert!(parsed.may_read("Shop.Order") && parsed.may_read_blobs());
        assert!(!parsed.may_write_blobs());
        assert!(serde_json::from_str::<Permissions>(r#"{"raed":["x"]}"#).is_err());
        assert!(serde_json::from_str::<Permissions>(r#"{"read":["a b"]}"#).is_err());
    }
}

/// Addition (issue 17): the answer of `GET /v1/whoami`: the caller's own
/// identity and permissions (never a token or a secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Whoami {
    /// Whether the server checks access (`cairn serve --auth`).
    pub auth: bool,
    /// The identity's name; `null` on a server without `--auth`.
    pub identity: Option<String>,
    /// What it may do; everything (`{"admin": true}`) without `--auth`.
    pub permissions: Permissions,
}
