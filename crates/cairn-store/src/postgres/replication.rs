//! Whether the primary's commits wait for a synchronous standby.
//!
//! With `synchronous_commit` on (or `remote_write`, `remote_apply`) and a
//! synchronous standby, PostgreSQL answers a commit only once the standby
//! has it, so a write Cairn acknowledged survives the loss of the primary.
//! After a failover of a two-node cluster the new primary has no standby
//! until one rejoins; a cluster run so that it keeps taking writes then
//! (Patroni's default, non-strict synchronous mode, empties
//! `synchronous_standby_names`) acknowledges commits on one server alone.
//! Cairn keeps writing — refusing would turn every failover into an
//! outage — and says so instead: every [`REPLICATION_CHECK_INTERVAL`] it
//! reads the primary's replication state, exports it as metrics, and while
//! commits are acknowledged without a synchronous standby in a replicated
//! cluster, `/v1/health` carries a warning and the log says so once.
//!
//! "Replicated" means the URL lists several hosts, or the primary streams
//! to at least one standby, or it names synchronous standbys: a single
//! server without standbys is not warned about (it has no failover to lose
//! a commit to). The state needs `pg_monitor` (or a superuser) to be
//! visible; without it the metrics are left out and nothing is claimed.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::{PgPool, Row};

/// How often the primary's replication state is read.
pub(crate) const REPLICATION_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The primary's replication, as last read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicationStats {
    /// Standbys streaming from the primary.
    pub standbys: u32,
    /// Of those, the ones a commit waits for (`sync_state` `sync` or
    /// `quorum`).
    pub synchronous_standbys: u32,
    /// Why commits are not protected by a synchronous standby, while they
    /// are not: for `/v1/health` and the log.
    pub warning: Option<String>,
}

/// The replication settings and standbys of the primary, as one query
/// reads them.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    synchronous_commit: String,
    synchronous_standby_names: String,
    standbys: u32,
    synchronous_standbys: u32,
    /// Standbys whose state this role may not see (no `pg_monitor`).
    hidden_standbys: u32,
}

impl Observed {
    /// The stats, or `None` where the role may not see the standbys.
    fn stats(&self, url_lists_replicas: bool) -> Option<ReplicationStats> {
        if self.hidden_standbys > 0 {
            return None;
        }
        let names = self.synchronous_standby_names.trim();
        let replicated = url_lists_replicas || self.standbys > 0 || !names.is_empty();
        let commit_waits = !matches!(self.synchronous_commit.as_str(), "local" | "off");
        let warning = if !replicated {
            None
        } else if !commit_waits {
            Some(format!(
                "commits are acknowledged without a synchronous standby \
                 (synchronous_commit = {}): a failover may lose acknowledged writes",
                self.synchronous_commit
            ))
        } else if names.is_empty() {
            Some(format!(
                "commits are acknowledged without a synchronous standby \
                 (synchronous_standby_names is empty; {} standby(s) streaming): \
                 a failover now may lose acknowledged writes",
                self.standbys
            ))
        } else if self.synchronous_standbys == 0 {
            Some(format!(
                "no synchronous standby is connected (synchronous_standby_names = '{names}'): \
                 commits wait until one is"
            ))
        } else {
            None
        };
        Some(ReplicationStats {
            standbys: self.standbys,
            synchronous_standbys: self.synchronous_standbys,
            warning,
        })
    }
}

/// Reads the primary's replication state now and then; see the module
/// documentation.
pub(crate) struct ReplicationWatch {
    url_lists_replicas: bool,
    last: Mutex<Option<ReplicationStats>>,
}

impl ReplicationWatch {
    /// A watch for a store whose URL lists several hosts (or not).
    pub(crate) fn new(url_lists_replicas: bool) -> ReplicationWatch {
        ReplicationWatch {
            url_lists_replicas,
            last: Mutex::new(None),
        }
    }

    /// The state as last read; `None` before the first reading, while the
    /// database cannot be reached, or where the role may not see it.
    pub(crate) fn stats(&self) -> Option<ReplicationStats> {
        self.last.lock().expect("lock poisoned").clone()
    }

    /// Reads the state every [`REPLICATION_CHECK_INTERVAL`] until aborted,
    /// each reading bounded by `timeout`.
    pub(crate) async fn follow(&self, pool: PgPool, timeout: Duration) {
        let mut told_hidden = false;
        loop {
            let observed = tokio::time::timeout(timeout, observe(&pool)).await;
            let stats = match observed {
                Ok(Ok(observed)) => {
                    let stats = observed.stats(self.url_lists_replicas);
                    if stats.is_none() && !told_hidden {
                        told_hidden = true;
                        tracing::info!(
                            "cannot see the standbys' state (pg_stat_replication); grant \
                             pg_monitor to Cairn's role to have it in /metrics and /v1/health"
                        );
                    }
                    stats
                }
                // The primary is gone or busy: what was true of it is no
                // longer known.
                Ok(Err(_)) | Err(_) => None,
            };
            self.record(stats);
            tokio::time::sleep(REPLICATION_CHECK_INTERVAL).await;
        }
    }

    fn record(&self, stats: Option<ReplicationStats>) {
        let mut last = self.last.lock().expect("lock poisoned");
        let warned = last.as_ref().and_then(|stats| stats.warning.clone());
        let warning = stats.as_ref().and_then(|stats| stats.warning.clone());
        match (&warned, &warning) {
            (None, Some(warning)) => tracing::warn!("{warning}"),
            (Some(_), None) if stats.is_some() => {
                tracing::info!("commits wait for a synchronous standby again");
            }
            _ => {}
        }
        // While the primary cannot be read, the last warning stands.
        if stats.is_some() || warned.is_none() {
            *last = stats;
        }
    }
}

async fn observe(pool: &PgPool) -> Result<Observed, sqlx::Error> {
    let row = sqlx::query(
        "SELECT current_setting('synchronous_commit') AS synchronous_commit,
                current_setting('synchronous_standby_names') AS synchronous_standby_names,
                count(*) AS standbys,
                count(*) FILTER (WHERE sync_state IN ('sync', 'quorum')) AS synchronous_standbys,
                count(*) FILTER (WHERE sync_state IS NULL) AS hidden_standbys
         FROM pg_stat_replication",
    )
    .fetch_one(pool)
    .await?;
    let count = |name: &str| -> Result<u32, sqlx::Error> {
        let count: i64 = row.try_get(name)?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    };
    Ok(Observed {
        synchronous_commit: row.try_get("synchronous_commit")?,
        synchronous_standby_names: row.try_get("synchronous_standby_names")?,
        standbys: count("standbys")?,
        synchronous_standbys: count("synchronous_standbys")?,
        hidden_standbys: count("hidden_standbys")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(commit: &str, names: &str, standbys: u32, synchronous: u32) -> Observed {
        Observed {
            synchronous_commit: commit.to_string(),
            synchronous_standby_names: names.to_string(),
            standbys,
            synchronous_standbys: synchronous,
            hidden_standbys: 0,
        }
    }

    #[test]
    fn a_single_server_without_standbys_is_not_warned_about() {
        let stats = observed("on", "", 0, 0).stats(false).unwrap();
        assert_eq!(stats.warning, None);
        assert_eq!((stats.standbys, stats.synchronous_standbys), (0, 0));
    }

    #[test]
    fn a_synchronous_standby_protects_commits() {
        for names in ["standby1", "ANY 1 (s1, s2)", "FIRST 1 (s1)"] {
            let stats = observed("on", names, 2, 1).stats(true).unwrap();
            assert_eq!(stats.warning, None, "{names}");
        }
        let stats = observed("remote_apply", "s1", 1, 1).stats(false).unwrap();
        assert_eq!(stats.warning, None);
    }

    #[test]
    fn commits_without_a_synchronous_standby_are_warned_about_in_a_replicated_cluster() {
        // After a two-node failover: a multi-host URL, nobody streaming.
        let warning = observed("on", "", 0, 0)
            .stats(true)
            .unwrap()
            .warning
            .unwrap();
        assert!(
            warning.contains("synchronous_standby_names is empty"),
            "{warning}"
        );
        // An asynchronous standby only.
        let warning = observed("on", "", 1, 0)
            .stats(false)
            .unwrap()
            .warning
            .unwrap();
        assert!(warning.contains("1 standby(s) streaming"), "{warning}");
        // A synchronous standby that commits do not wait for.
        let warning = observed("local", "s1", 1, 1)
            .stats(false)
            .unwrap()
            .warning
            .unwrap();
        assert!(warning.contains("synchronous_commit = local"), "{warning}");
        // Named but not connected: commits wait, they are not lost.
        let warning = observed("on", "s1", 0, 0)
            .stats(false)
            .unwrap()
            .warning
            .unwrap();
        assert!(warning.contains("commits wait until one is"), "{warning}");
    }

    #[test]
    fn hidden_standbys_claim_nothing() {
        let mut hidden = observed("on", "", 1, 0);
        hidden.hidden_standbys = 1;
        assert_eq!(hidden.stats(true), None);
    }

    #[test]
    fn the_last_warning_stands_while_the_primary_cannot_be_read() {
        let watch = ReplicationWatch::new(true);
        let warned = observed("on", "", 0, 0).stats(true);
        watch.record(warned.clone());
        watch.record(None);
        assert_eq!(watch.stats(), warned);
        let protected = observed("on", "s1", 1, 1).stats(true);
        watch.record(protected.clone());
        assert_eq!(watch.stats(), protected);
        watch.record(None);
        assert_eq!(watch.stats(), None);
    }
}
