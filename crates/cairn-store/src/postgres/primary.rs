//! Following the writable primary of a replicated cluster.
//!
//! With several hosts in the URL (`hosts.rs`), the pool connects to the
//! host that accepted writes when it was last checked. Every
//! [`PRIMARY_CHECK_INTERVAL`] a background task asks that host, through a
//! pooled connection, whether it still accepts writes; when it does not
//! answer or has become read-only (a failover), the task tries every host
//! in order and points the pool at the first writable one
//! (`Pool::set_connect_options`). Three guards keep a request off a host
//! that cannot take writes in between:
//!
//! * a new connection checks its host's role before the pool hands it out
//!   (`after_connect`), so a standby never enters the pool;
//! * an idle connection opened before the pool last moved is discarded
//!   when it is next acquired (`before_acquire`);
//! * a write that still reaches a read-only host fails with
//!   read_only_sql_transaction, which the store reports as unavailable
//!   (503, retry), never as a storage failure.
//!
//! While no host accepts writes, the store's ping (`/v1/health`) answers
//! unavailable with each host's reason, and the task keeps looking.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;

use super::hosts::{role_of, HostList, HostRole};

/// How often the current host is asked whether it still accepts writes.
pub(crate) const PRIMARY_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long that question may take before the hosts are tried: a dead
/// primary should cost about a second, not the pool's acquire timeout
/// (a live but busy one is then found again, and nothing moves).
const PRIMARY_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Which host of a [`HostList`] the pool uses, and since when.
pub(crate) struct PrimaryTracker {
    hosts: HostList,
    state: Mutex<TrackerState>,
}

struct TrackerState {
    /// The position in `hosts` of the host the pool connects to.
    current: usize,
    /// When the pool was last pointed at a host: connections older than
    /// this may lead to the previous one.
    moved_at: Instant,
    /// Why no host accepts writes, while none does.
    missing: Option<String>,
}

impl PrimaryTracker {
    /// Tracks `hosts`, starting with the host at `current`.
    pub(crate) fn new(hosts: HostList, current: usize) -> PrimaryTracker {
        PrimaryTracker {
            hosts,
            state: Mutex::new(TrackerState {
                current,
                moved_at: Instant::now(),
                missing: None,
            }),
        }
    }

    /// The connect options of the host the pool should use now.
    pub(crate) fn current_options(&self) -> PgConnectOptions {
        let current = self.state().current;
        self.hosts.hosts[current].options.clone()
    }

    /// Why no host accepts writes, if none did at the last check.
    pub(crate) fn missing(&self) -> Option<String> {
        self.state().missing.clone()
    }

    /// Whether an idle connection described by `metadata` may be handed out:
    /// only if it was opened after the pool last moved.
    pub(crate) fn keeps(&self, metadata: &PoolConnectionMetadata) -> bool {
        metadata.age < self.state().moved_at.elapsed()
    }

    /// Checks the current host every [`PRIMARY_CHECK_INTERVAL`] and moves
    /// `pool` to another host when it stops accepting writes; runs until
    /// aborted. Each check takes at most [`PRIMARY_CHECK_TIMEOUT`] (and
    /// `timeout`), each probe of the hosts after it `timeout`.
    pub(crate) async fn follow(&self, pool: PgPool, timeout: Duration) {
        loop {
            tokio::time::sleep(PRIMARY_CHECK_INTERVAL).await;
            let still_primary = tokio::time::timeout(PRIMARY_CHECK_TIMEOUT.min(timeout), async {
                let mut connection = pool.acquire().await?;
                role_of(&mut connection).await
            })
            .await;
            if matches!(still_primary, Ok(Ok(HostRole::Primary))) {
                self.state().missing = None;
                continue;
            }
            self.look_for_primary(&pool, timeout).await;
        }
    }

    /// Tries every host in order and points `pool` at the first writable
    /// one, or records why there is none.
    async fn look_for_primary(&self, pool: &PgPool, timeout: Duration) {
        match self.hosts.select_primary(timeout).await {
            Ok(found) => {
                let mut state = self.state();
                if found != state.current {
                    tracing::warn!(
                        from = %self.hosts.hosts[state.current].name,
                        to = %self.hosts.hosts[found].name,
                        "the writable primary moved; reconnecting"
                    );
                    state.current = found;
                    state.moved_at = Instant::now();
                    pool.set_connect_options(self.hosts.hosts[found].options.clone());
                }
                if state.missing.take().is_some() {
                    tracing::info!(host = %self.hosts.hosts[found].name, "a writable primary is back");
                }
            }
            Err(reasons) => {
                let mut state = self.state();
                if state.missing.is_none() {
                    tracing::warn!(
                        hosts = %self.hosts.names(),
                        %reasons,
                        "no host accepts writes; answering 503 and retrying every second"
                    );
                }
                state.missing = Some(format!(
                    "no writable PostgreSQL primary among {}: {reasons}",
                    self.hosts.names()
                ));
            }
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state.lock().expect("lock poisoned")
    }
}
