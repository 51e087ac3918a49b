//! [`ClientOptions`]: where the remote server is and how patiently to talk
//! to it.

use std::time::Duration;

use crate::limits;
use crate::CaCertificate;

/// Options of a client for remote servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Base URLs of equivalent servers (for example
    /// `http://127.0.0.1:7710`, or `https://…` for a server with TLS), tried in turn: a call that cannot reach one
    /// fails over to the next, and the client keeps using the last one that
    /// answered. At least one.
    pub endpoints: Vec<String>,
    /// Time one request may take; a long-poll gets its `wait_ms` plus
    /// [`limits::LONG_POLL_MARGIN`] on top.
    pub request_timeout: Duration,
    /// Tries of one call across all endpoints before it fails with
    /// [`crate::ClientError::Unavailable`]. At least one.
    pub attempts_max: u32,
    /// Upper bound of the first wait between tries.
    pub backoff_initial: Duration,
    /// Upper bound of every wait between tries.
    pub backoff_max: Duration,
    /// The access token sent with every request (`Authorization: Bearer`),
    /// for a server that runs with `--auth`; see [`AccessToken::from_env`].
    pub access_token: Option<AccessToken>,
    /// Certificate authorities trusted for `https://` endpoints besides the
    /// public roots (for a server whose certificate a private CA signed).
    pub ca_certificates: Vec<CaCertificate>,
}

/// An access token: a secret, so it is never printed (its `Debug` shows
/// only that there is one) and is sent as a sensitive header.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// A token given as text (as `cairn tokens create` printed it).
    pub fn new(token: impl Into<String>) -> AccessToken {
        AccessToken(token.into().trim().to_string())
    }

    /// The token in the environment variable `CAIRN_TOKEN`, if it is set
    /// and not empty.
    pub fn from_env() -> Option<AccessToken> {
        std::env::var("CAIRN_TOKEN")
            .ok()
            .filter(|token| !token.trim().is_empty())
            .map(AccessToken::new)
    }

    /// The secret text, to put in a header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

impl ClientOptions {
    /// Default options for the given endpoints.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> ClientOptions {
        ClientOptions {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            ..ClientOptions::default()
        }
    }
}

impl Default for ClientOptions {
    /// One server at the default address `http://127.0.0.1:7710`.
    fn default() -> Self {
        ClientOptions {
            endpoints: vec!["http://127.0.0.1:7710".to_string()],
            request_timeout: limits::REQUEST_TIMEOUT_DEFAULT,
            attempts_max: limits::ATTEMPTS_MAX_DEFAULT,
            backoff_initial: limits::BACKOFF_INITIAL_DEFAULT,
            backoff_max: limits::BACKOFF_MAX_DEFAULT,
            access_token: None,
            ca_certificates: Vec::new(),
        }
    }
}
