//! What a check run drives and injects: the deployment, the workload's size,
//! the faults, and the seed that fixes the schedule of both.

use std::path::PathBuf;
use std::time::Duration;

/// The deployment under test.
#[derive(Clone, Debug)]
pub enum Target {
    /// One embedded server the checker starts itself, in a data directory
    /// under the work directory.
    Embedded,
    /// `servers` servers the checker starts over one PostgreSQL database:
    /// at `store_url` if given (which the checker never restarts), or else
    /// a private PostgreSQL cluster it creates, starts and restarts itself.
    Postgres {
        /// How many servers to start.
        servers: usize,
        /// An existing database, which the checker never restarts.
        store_url: Option<String>,
    },
    /// `servers` servers the checker starts over a replicated PostgreSQL
    /// it creates: a primary and a streaming standby (see
    /// [`crate::replicated_postgres`]), which the nemesis fails over
    /// ([`FaultKind::Failover`]). The servers get both hosts in their URL.
    PostgresReplicated {
        /// How many servers to start.
        servers: usize,
        /// Whether commits wait for the standby (`synchronous_commit =
        /// on`, the guarantee), or only for the primary's disk (`local`:
        /// the negative control, which must lose acknowledged writes).
        commits_wait_for_standby: bool,
    },
    /// Servers someone else runs: the checker cannot kill, pause or corrupt
    /// them, so it injects only network faults (through its proxies).
    Urls(Vec<String>),
}

/// How the deployments under test are arranged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Topology {
    /// One deployment: one embedded server, or servers sharing one
    /// PostgreSQL store, or the servers given by URL.
    #[default]
    Single,
    /// Three embedded deployments, A, B and C, each with a store of its
    /// own, linked in a ring by replication links that each reach their
    /// source through its fault proxy: B follows A, C follows B, A follows
    /// C, with type filters that let different facts through (see
    /// [`crate::ring`]). Embedded only.
    Ring3,
}

impl Topology {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Topology::Single => "single",
            Topology::Ring3 => "ring3",
        }
    }

    /// Parses a name as printed by [`Topology::name`].
    pub fn from_name(name: &str) -> Option<Topology> {
        [Topology::Single, Topology::Ring3]
            .into_iter()
            .find(|topology| topology.name() == name)
    }
}

/// A kind of fault the nemesis can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// `kill -9` of a server, then a restart.
    Kill,
    /// SIGSTOP, a pause, SIGCONT.
    Pause,
    /// Several quick start–kill cycles, then a restart.
    RestartLoop,
    /// SIGTERM (graceful shutdown), then a restart.
    CleanRestart,
    /// The server's delivery clock jumps forwards or backwards (embedded).
    ClockJump,
    /// Delay, drop, reset, one-way stall or black hole between client and
    /// server, through the checker's proxy.
    Network,
    /// An immediate (crash) or fast restart of the private PostgreSQL.
    PostgresRestart,
    /// The replicated PostgreSQL's primary is cut off from its standby,
    /// killed (`kill -9` of its postmaster), the standby promoted, and the
    /// old primary rebuilt as the new primary's synchronous standby.
    Failover,
    /// `kill -9`, then a torn last write: garbage after the journal's last
    /// record, as a write cut by power loss leaves it (embedded).
    TornWrite,
    /// A stopped server's data files are bit-flipped or truncated; the
    /// server must refuse to serve wrong data, and the checker then puts
    /// the intact files back (embedded).
    Corruption,
}

impl FaultKind {
    /// Every kind, in report order.
    pub const ALL: [FaultKind; 10] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::RestartLoop,
        FaultKind::CleanRestart,
        FaultKind::ClockJump,
        FaultKind::Network,
        FaultKind::PostgresRestart,
        FaultKind::Failover,
        FaultKind::TornWrite,
        FaultKind::Corruption,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::RestartLoop => "restart-loop",
            FaultKind::CleanRestart => "clean-restart",
            FaultKind::ClockJump => "clock-jump",
            FaultKind::Network => "network",
            FaultKind::PostgresRestart => "postgres-restart",
            FaultKind::Failover => "failover",
            FaultKind::TornWrite => "torn-write",
            FaultKind::Corruption => "corruption",
        }
    }

    /// Parses a name as printed by [`FaultKind::name`].
    pub fn from_name(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// True when this kind needs control of the server processes.
    pub fn needs_processes(self) -> bool {
        self != FaultKind::Network
    }

    /// True when this kind works only on the embedded store.
    pub fn embedded_only(self) -> bool {
        matches!(
            self,
            FaultKind::ClockJump | FaultKind::TornWrite | FaultKind::Corruption
        )
    }
}

/// Settings of one check run.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Fixes the schedule of operations and faults.
    pub seed: u64,
    /// How long the workload and the faults run (the final checks follow).
    pub duration: Duration,
    /// What is checked.
    pub target: Target,
    /// How the deployments are arranged ([`Topology::Ring3`] needs
    /// [`Target::Embedded`] and no `auth`).
    pub topology: Topology,
    /// The negative control of [`Topology::Ring3`]: one link is defined
    /// with other types than the oracle expects, so the run must fail.
    pub ring_misdefined_link: bool,
    /// The `cairn` binary to start servers from.
    pub binary: PathBuf,
    /// Where data directories, server logs and the report go.
    pub work_dir: PathBuf,
    /// Concurrent writers.
    pub writers: usize,
    /// Pause between one writer's batches (sets the write rate).
    pub write_interval: Duration,
    /// Concurrent readers (point reads and log followers).
    pub readers: usize,
    /// Concurrent consumers, spread over the subscriptions.
    pub consumers: usize,
    /// Concurrent claimers, racing for the run's few claim keys (0: none).
    pub claimers: usize,
    /// Concurrent fenced writers, sharing the run's leases (0: none).
    pub fenced_writers: usize,
    /// Concurrent timer setters, putting and deleting durable timers
    /// (0: none).
    pub timer_setters: usize,
    /// The kinds of fault injected (those that do not apply to the target
    /// are left out).
    pub faults: Vec<FaultKind>,
    /// Mean time between the start of one fault and the next.
    pub fault_interval: Duration,
    /// Extra arguments for every server the checker starts (for the
    /// negative control: `--unsafe-ack-before-write`).
    pub server_args: Vec<String>,
    /// Start the servers with `--auth` and send every request with the
    /// token of one of the checker's own identities (created offline before
    /// the servers start). Not for [`Target::Urls`].
    pub auth: bool,
    /// Draw a progress bar.
    pub progress: bool,
}

impl CheckOptions {
    /// True when every clock that decides when a timer is due is the
    /// checker's own, plus the jumps the nemesis makes: the servers it
    /// starts, over the embedded store or a PostgreSQL on this machine
    /// (which judges "due" by its clock). Servers given by URL and a
    /// remote database may run on other clocks.
    pub fn clocks_shared(&self) -> bool {
        match &self.target {
            Target::Embedded
            | Target::Postgres {
                store_url: None, ..
            }
            | Target::PostgresReplicated { .. } => true,
            Target::Postgres {
                store_url: Some(url),
                ..
            } => is_local_database(url),
            Target::Urls(_) => false,
        }
    }

    /// Why these options cannot run, if they cannot: a ring of
    /// deployments is made of embedded servers the checker starts itself,
    /// without `--auth` (its links would need tokens for each other).
    pub fn topology_problem(&self) -> Option<&'static str> {
        match (self.topology, &self.target) {
            (Topology::Single, _) if self.ring_misdefined_link => {
                Some("the misdefined link is a negative control of --topology ring3")
            }
            (Topology::Single, _) => None,
            (Topology::Ring3, Target::Embedded) if self.auth => {
                Some("--topology ring3 does not run with --auth yet")
            }
            (Topology::Ring3, Target::Embedded) => None,
            (Topology::Ring3, _) => Some(
                "--topology ring3 runs three embedded deployments the checker starts \
                 itself: it needs --backend embedded (not postgres, not --url)",
            ),
        }
    }

    /// The fault kinds that apply to the target, in report order.
    pub fn applicable_faults(&self) -> Vec<FaultKind> {
        let mut kinds: Vec<FaultKind> = self
            .faults
            .iter()
            .copied()
            .filter(|kind| match &self.target {
                Target::Embedded => {
                    !matches!(kind, FaultKind::PostgresRestart | FaultKind::Failover)
                }
                Target::Postgres { store_url, .. } => {
                    !kind.embedded_only()
                        && *kind != FaultKind::Failover
                        && (*kind != FaultKind::PostgresRestart || store_url.is_none())
                }
                Target::PostgresReplicated { .. } => {
                    !kind.embedded_only() && *kind != FaultKind::PostgresRestart
                }
                Target::Urls(_) => !kind.needs_processes(),
            })
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }
}

/// True when a PostgreSQL URL names this machine (loopback, or a Unix
/// socket: no host).
fn is_local_database(url: &str) -> bool {
    let Some(rest) = url.split_once("://").map(|(_, rest)| rest) else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    matches!(host, "" | "localhost" | "::1") || host.starts_with("127.")
}

#[cfg(test)]
mod tests {
    use super::is_local_database;

    #[test]
    fn only_databases_on_this_machine_share_its_clock() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/test",
            "postgresql://localhost/test",
            "postgres://user:secret@[::1]:5432/test",
            "postgres:///test?host=/run/postgresql",
        ] {
            assert!(is_local_database(url), "{url}");
        }
        for url in [
            "postgres://postgres@db.example.com:5432/test",
            "postgres://10.0.0.7/test",
            "not a url",
        ] {
            assert!(!is_local_database(url), "{url}");
        }
    }
}
