//! How the client commands reach a server: the `--server` argument, the SDK
//! client made from it, and the wording of the SDK's errors for a person at
//! a terminal. Every client command (`put`, `get`, `successors`, `log`,
//! `tail`, `subs`) goes through the SDK, so the CLI sends exactly the
//! requests a service would; only `cairn bench` keeps its own HTTP client,
//! to measure the server rather than the SDK.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use cairn_client::{AccessToken, CaCertificate, Client, ClientError, ClientOptions};

/// Tries of one request. A command typed by hand should fail fast when the
/// server is down (three refused connections take well under a second with
/// the backoff below), yet ride out a moment of overload (429, 503).
const ATTEMPTS_MAX: u32 = 3;
/// Upper bound of the first wait between tries.
const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Upper bound of every wait between tries.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Time one request may take (a long-poll gets its wait on top). It is
/// longer than the server's own request timeout, so a slow request ends
/// with the server's answer rather than with a retry.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

const _: () = assert!(REQUEST_TIMEOUT.as_secs() > cairn_server::limits::REQUEST_TIMEOUT.as_secs());

/// The server a client command talks to.
#[derive(clap::Args, Clone)]
pub struct ServerArg {
    /// Base URL of the server.
    #[arg(long = "server", env = "CAIRN_SERVER", default_value = crate::DEFAULT_SERVER)]
    pub url: String,
    /// Access token for a server that runs with `--auth` (prefer the
    /// environment variable: a flag shows in the process list).
    #[arg(long = "token", env = "CAIRN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A CA certificate file (PEM) to trust for an `https://` server, in
    /// addition to the public roots: for a certificate a private CA signed.
    #[arg(long = "ca-cert", env = "CAIRN_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

impl ServerArg {
    /// An SDK client of this server (it connects on the first request).
    pub fn client(&self) -> anyhow::Result<Client> {
        let options = ClientOptions {
            request_timeout: REQUEST_TIMEOUT,
            attempts_max: ATTEMPTS_MAX,
            backoff_initial: BACKOFF_INITIAL,
            backoff_max: BACKOFF_MAX,
            access_token: self
                .token
                .as_deref()
                .filter(|token| !token.trim().is_empty())
                .map(AccessToken::new),
            ca_certificates: self
                .ca_cert
                .iter()
                .cloned()
                .map(CaCertificate::File)
                .collect(),
            ..ClientOptions::new([self.url.as_str()])
        };
        Client::remote(options).map_err(explain)
    }
}

/// An SDK error worded for the terminal: an error answer starts with the
/// server's stable code (scripts and tests look for it), followed by its
/// message, status and details, the breaking changes of a schema and the
/// violations of a write one per line; no answer at all is "cannot reach
/// the server", with the last failure.
pub fn explain(error: ClientError) -> anyhow::Error {
    let breaking = error.breaking_changes();
    let violations = error.violations();
    match error {
        ClientError::Api {
            status,
            code,
            message,
            mut details,
        } => {
            let mut text = format!("{code}: {message} (HTTP {status})");
            if !breaking.is_empty() {
                details.remove("breaking");
            }
            if !violations.is_empty() {
                details.remove("violations");
            }
            if !details.is_empty() {
                text = format!("{text} {}", serde_json::Value::Object(details));
            }
            for change in &breaking {
                text.push_str(&format!(
                    "\n  breaks {} compatibility with version {}: {} at {}: {}",
                    change.direction, change.version, change.rule, change.path, change.message
                ));
            }
            for violation in &violations {
                text.push_str(&format!(
                    "\n  {} at {}: {}",
                    violation.rule, violation.pointer, violation.message
                ));
            }
            anyhow!(text)
        }
        ClientError::Unavailable { ref last_error, .. } if last_error.contains("certificate") => {
            anyhow!(
                "cannot reach the server: {error} (the server's TLS certificate is not trusted: \
                 pass the CA that signed it with --ca-cert FILE or CAIRN_CA_CERT)"
            )
        }
        ClientError::Unavailable { .. } => anyhow!("cannot reach the server: {error}"),
        other => anyhow::Error::new(other),
    }
}
