//! Replication links over the wire (`/v1/links`, "Replication links" in
//! `docs/api-v1.md`): the definition a `PUT` carries, the view a `GET`
//! answers, the bookmark both show, and the name rules.
//!
//! A link is defined on the receiving deployment and follows the log of
//! its `source` (another Cairn) into this one, facts of `types` only,
//! predecessors first. The `token` it authenticates with at the source is
//! write-only: it is kept beside the link (never in a fact or a log line)
//! and never answered.

use cairn_fact::Hash;
use serde::{Deserialize, Serialize};

use crate::access::Pattern;
use crate::limits::{LINK_NAME_BYTES_MAX, LINK_SOURCE_BYTES_MAX, LINK_TYPES_MAX};
use crate::request_body::RequestBody;

/// The body of `PUT /v1/links/{name}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LinkDefinition {
    /// The base URL of the source deployment (`http://` or `https://`,
    /// no credentials, query or fragment), e.g. `https://eu.example:7710`.
    #[cfg_attr(feature = "openapi", schema(max_length = 2048))]
    pub source: String,
    /// Type patterns (as in permissions): the facts the link receives.
    /// Their predecessors come along whatever their type.
    pub types: Vec<String>,
    /// The access token the link presents to the source, when the source
    /// runs with `--auth`. Write-only: answered as `authenticated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl std::fmt::Debug for LinkDefinition {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LinkDefinition")
            .field("source", &self.source)
            .field("types", &self.types)
            .field("token", &self.token.as_ref().map(|_| "<not shown>"))
            .finish()
    }
}

impl RequestBody for LinkDefinition {
    fn check(&self) -> Result<(), String> {
        if self.source.is_empty() || self.source.len() > LINK_SOURCE_BYTES_MAX {
            return Err(format!(
                "source must be a URL of 1 to {LINK_SOURCE_BYTES_MAX} bytes"
            ));
        }
        if self.types.is_empty() || self.types.len() > LINK_TYPES_MAX {
            return Err(format!(
                "types must hold 1 to {LINK_TYPES_MAX} type patterns"
            ));
        }
        for pattern in &self.types {
            Pattern::parse(pattern).map_err(|error| format!("types: {error}"))?;
        }
        if let Some(token) = &self.token {
            // The shape of an access token (`cairn_<16 hex>_<64 hex>`),
            // checked loosely: it is the source's to judge.
            if token.is_empty()
                || token.len() > 256
                || !token.bytes().all(|byte| byte.is_ascii_graphic())
            {
                return Err("token must be 1 to 256 printable ASCII characters".into());
            }
        }
        Ok(())
    }
}

/// What state a link is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// Following its source (caught up or catching up).
    Running,
    /// Paused by an operator.
    Paused,
    /// Its last attempt failed (`last_error` says why); it retries with
    /// backoff.
    Failing,
}

/// A position in the source's log and what identifies that log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Bookmark {
    /// The source's store identity, learned from its first answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Every entry of the source's log up to this `seq` was examined, and
    /// what matched is stored here; reading goes on after it. It moves
    /// over facts the types do not select.
    pub after: u64,
    /// The last fact received and its `seq` in the source's log, checked
    /// again whenever the link (re)connects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
}

/// A fact at a position of the source's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Anchor {
    /// Its `seq` in the source's log.
    pub seq: u64,
    /// Its hash.
    #[serde(with = "crate::hash_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::HashText))]
    pub hash: Hash,
}

/// The answer of `GET /v1/links/{name}`, one entry of `GET /v1/links`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkView {
    /// The link's name.
    pub name: String,
    /// The source's base URL.
    pub source: String,
    /// The type patterns it receives.
    pub types: Vec<String>,
    /// Whether it presents a token to its source (never the token).
    pub authenticated: bool,
    /// Running, paused or failing.
    pub state: LinkState,
    /// Where it stands in the source's log.
    pub bookmark: Bookmark,
    /// Entries of the source's log after the bookmark, as last seen; 0
    /// once caught up.
    pub lag_facts: u64,
    /// 0 when caught up; otherwise ms since it last was (or since it was
    /// created).
    pub lag_ms: u64,
    /// Why the last attempt failed, while it is failing.
    pub last_error: Option<String>,
    /// Facts it stored that this deployment did not hold before
    /// (predecessors fetched for them included).
    pub facts_received: u64,
    /// When it was created (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// On PostgreSQL, the server that runs it now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
}

/// The answer of `POST /v1/links/{name}/repair`: what a comparison of the
/// source's digests with this deployment's found for the link's types,
/// and what was fetched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkRepaired {
    /// The link's name.
    pub name: String,
    /// The source's store identity.
    pub source_store: String,
    /// Facts of the link's types (that its token may read) the source
    /// holds and this deployment lacked.
    pub missing: u64,
    /// Facts stored here by the repair, predecessors fetched for them
    /// included (fewer than `missing` if some arrived meanwhile).
    pub stored: u64,
    /// Missing facts left for another repair (one fetches at most 100,000).
    pub remaining: u64,
    /// Facts of the link's types this deployment holds and the source
    /// does not (written here, or unreadable there): not changed.
    pub only_here: u64,
    /// Digest requests the comparison made, both sides together.
    pub requests: u64,
}

/// The answer of `GET /v1/links`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkList {
    /// The links, by name.
    pub links: Vec<LinkView>,
}

/// Checks a link name: 1 to 128 bytes of ASCII letters, digits, `_`,
/// `.` and `-`, starting with a letter or digit.
pub fn validate_link_name(name: &str) -> Result<(), String> {
    let valid_characters = name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'));
    let valid_start = name
        .bytes()
        .next()
        .is_some_and(|byte| byte.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > LINK_NAME_BYTES_MAX || !valid_characters || !valid_start {
        return Err(format!(
            "a link name is 1 to {LINK_NAME_BYTES_MAX} bytes of letters, digits, _, . and -, starting with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_body;

    #[test]
    fn definitions_are_checked() {
        let good: LinkDefinition =
            parse_body(br#"{"source":"http://127.0.0.1:7711","types":["Shop.*"]}"#).unwrap();
        assert_eq!(good.types, vec!["Shop.*"]);
        for (body, expected) in [
            (r#"{"source":"","types":["A"]}"#, "source"),
            (r#"{"source":"http://x","types":[]}"#, "types"),
            (r#"{"source":"http://x","types":["A B"]}"#, "types"),
            (r#"{"source":"http://x","types":["A"],"token":""}"#, "token"),
            (r#"{"source":"http://x","types":["A"],"extra":1}"#, "extra"),
        ] {
            let error = parse_body::<LinkDefinition>(body.as_bytes()).unwrap_err();
            assert!(error.contains(expected), "{body}: {error}");
        }
    }

    #[test]
    fn the_token_never_shows_in_debug() {
        let definition = LinkDefinition {
            source: "http://x".into(),
            types: vec!["A".into()],
            token: Some("cairn_secret".into()),
        };
        assert!(!format!("{definition:?}").contains("secret"));
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_link_name("eu-to-us.1").is_ok());
        for bad in ["", "-a", "a b", "a/b", &"a".repeat(129)] {
            assert!(validate_link_name(bad).is_err(), "{bad:?}");
        }
    }
}
