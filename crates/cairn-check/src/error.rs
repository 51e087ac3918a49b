//! Why a check could not run at all, as opposed to a run that found
//! violations (those are in its [`crate::Report`]). Each is a problem of the
//! setup — the work directory, the server binary, PostgreSQL, the server
//! URLs — that the caller can fix before trying again.

/// Why a check could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// A directory, file or socket of the deployment could not be made.
    #[error("cannot {action}")]
    Io {
        /// What the checker was doing, e.g. `create /tmp/check/server-0`.
        action: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The system clock reads a time before 1970, so no run id can be made.
    #[error("the system clock is before 1970")]
    Clock(#[from] std::time::SystemTimeError),
    /// The private PostgreSQL cluster could not be created.
    #[error("cannot set up a private PostgreSQL cluster: {0}")]
    PrivatePostgres(String),
    /// A server the checker started exited or did not become healthy.
    #[error("server {server_idx} did not start:\n{log_tail}")]
    ServerDidNotStart {
        /// Which server.
        server_idx: usize,
        /// The end of its log, or why it could not be spawned.
        log_tail: String,
    },
    /// A server URL given to the checker is not one it can put a proxy in
    /// front of.
    #[error("{url}: {problem}")]
    ServerUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The checker's identities could not be created (a run with
    /// `--auth`).
    #[error("cannot create the checker's identities: {0}")]
    Identities(String),
    /// A setup step on the servers (creating the subscriptions, writing the
    /// ordering keys) was refused or never done.
    #[error("{0}")]
    Setup(String),
}

impl CheckError {
    /// An I/O failure while doing `action`.
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> CheckError {
        let action = action.into();
        move |source| CheckError::Io { action, source }
    }
}
