//! A replicated PostgreSQL for `cairn check --backend postgres-replicated`:
//! two private clusters (`pg0`, `pg1`; the project's failover harness,
//! `cairn_store::postgres::private_cluster`), one the primary and one its
//! streaming standby, which the nemesis fails over again and again.
//!
//! The standby streams from the primary through a [`FaultProxy`], so that
//! replication can be cut. A failover ([`ReplicatedPostgres::fail_over`])
//! is the worst case for acknowledged writes: replication is cut first
//! (the primary keeps taking writes, or waiting for the standby), then the
//! primary's postmaster is killed, the standby promoted (as a person or
//! Patroni would), and only then is the old primary rebuilt from the new
//! one (a fresh base backup) and made its synchronous standby again.
//!
//! With `synchronous_commit = on` and `synchronous_standby_names` naming
//! the standby, a commit answers only once the standby has it, so no write
//! Cairn acknowledged may be missing after the failover. The negative
//! control runs with `synchronous_commit = local` (set on the role, so the
//! promoted standby has it too): commits answer from the primary's disk
//! alone, those made while replication was cut are lost with the primary,
//! and the oracle must find them missing.
//!
//! Between the promotion and the rebuilt standby's catching up, the new
//! primary runs without a synchronous standby (a two-node cluster in
//! non-strict synchronous mode); the nemesis injects no other fault then.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use cairn_store::postgres::private_cluster::PrivateCluster;
use tokio::sync::Mutex;

use crate::proxy::{FaultProxy, NetworkFault};

/// The members' names, as `synchronous_standby_names` and each standby's
/// `application_name` know them.
const MEMBER_NAMES: [&str; 2] = ["pg0", "pg1"];

/// How long a standby may take to become synchronous.
const SYNCHRONOUS_WAIT: Duration = Duration::from_secs(60);

/// The primary, its standby and the cut-able link between them.
pub struct ReplicatedPostgres {
    pair: Mutex<Pair>,
    /// The members' ports, in member order: the servers' URL lists both.
    ports: [u16; 2],
    commits_wait_for_standby: bool,
}

struct Pair {
    members: [PrivateCluster; 2],
    /// The member that is the primary.
    primary: usize,
    /// The standby streams from the primary through this proxy.
    replication: FaultProxy,
}

impl ReplicatedPostgres {
    /// Creates `pg0` (the primary) and `pg1` (its synchronous standby), and
    /// waits until the standby is synchronous.
    pub async fn create(commits_wait_for_standby: bool) -> Result<ReplicatedPostgres, String> {
        let bin_dir = PrivateCluster::find_bin_dir().ok_or(
            "PostgreSQL's programs (initdb, pg_ctl, pg_basebackup) were not found; \
             --backend postgres-replicated needs them",
        )?;
        let primary = blocking(|| {
            let mut primary = PrivateCluster::init(&bin_dir)?;
            primary.configure(&[(
                "synchronous_standby_names",
                &format!("'{}'", MEMBER_NAMES[1]),
            )])?;
            primary.start()?;
            Ok(primary)
        })?;
        let replication = proxy_to(primary.port()).await?;
        let standby = blocking(|| {
            let mut standby = PrivateCluster::standby_through(
                &primary,
                replication.address().port(),
                MEMBER_NAMES[1],
            )?;
            // Promoted, it must not wait for a standby that is gone.
            standby.configure(&[("synchronous_standby_names", "''")])?;
            standby.start()?;
            wait_until_synchronous(&primary, MEMBER_NAMES[1])?;
            // Only now: until the standby streams, this commit would wait.
            if !commits_wait_for_standby {
                primary.sql("ALTER ROLE postgres SET synchronous_commit = local")?;
            }
            Ok(standby)
        })?;
        Ok(ReplicatedPostgres {
            ports: [primary.port(), standby.port()],
            pair: Mutex::new(Pair {
                members: [primary, standby],
                primary: 0,
                replication,
            }),
            commits_wait_for_standby,
        })
    }

    /// The URL the servers use: both members, Cairn to find the writable
    /// one (libpq's convention).
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
            self.ports[0], self.ports[1]
        )
    }

    /// A short description for the report.
    pub fn description(&self) -> String {
        format!(
            "a primary and a streaming standby (synchronous_commit = {})",
            if self.commits_wait_for_standby {
                "on, synchronous_standby_names set"
            } else {
                "local: the negative control"
            }
        )
    }

    /// Fails over: replication is cut for `cut_ms`, the primary killed
    /// (`kill -9` of its postmaster) and the standby promoted. Answers when
    /// the primary was killed and what happened, or the step that failed.
    /// The new primary has no standby until [`ReplicatedPostgres::rejoin`].
    pub async fn fail_over(&self, cut_ms: u64) -> Result<(Instant, String), String> {
        let mut pair = self.pair.lock().await;
        let old = pair.primary;
        let new = 1 - old;
        pair.replication.set_fault(NetworkFault::Blackhole);
        tokio::time::sleep(Duration::from_millis(cut_ms)).await;
        let killed_at = Instant::now();
        blocking(|| pair.members[old].kill_postmaster())?;
        blocking(|| pair.members[new].promote())?;
        pair.primary = new;
        Ok((
            killed_at,
            format!(
                "replication cut for {cut_ms} ms, {} killed, {} promoted {} ms later",
                MEMBER_NAMES[old],
                MEMBER_NAMES[new],
                killed_at.elapsed().as_millis()
            ),
        ))
    }

    /// Rebuilds the member that is not the primary (the one killed by the
    /// last failover) from the primary, as its synchronous standby.
    pub async fn rejoin(&self) -> Result<String, String> {
        let mut pair = self.pair.lock().await;
        let primary_idx = pair.primary;
        let rejoining_idx = 1 - primary_idx;
        pair.replication = proxy_to(pair.members[primary_idx].port()).await?;
        let replication_port = pair.replication.address().port();
        let started = Instant::now();
        blocking(|| {
            let [first, second] = &mut pair.members;
            let (rejoining, primary) = if rejoining_idx == 0 {
                (first, &*second)
            } else {
                (second, &*first)
            };
            let name = MEMBER_NAMES[rejoining_idx];
            rejoining.rebuild_as_standby(replication_port, name)?;
            // Its copied settings name itself as the synchronous standby.
            rejoining.configure(&[("synchronous_standby_names", "''")])?;
            rejoining.start()?;
            primary.configure(&[("synchronous_standby_names", &format!("'{name}'"))])?;
            primary.sql("SELECT pg_reload_conf()")?;
            wait_until_synchronous(primary, name)
        })?;
        Ok(format!(
            "{} rebuilt as the synchronous standby in {} ms",
            MEMBER_NAMES[rejoining_idx],
            started.elapsed().as_millis()
        ))
    }
}

/// Runs PostgreSQL's programs, which block for up to seconds, without
/// holding up the runtime's other tasks.
fn blocking<T>(work: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    tokio::task::block_in_place(work)
}

async fn proxy_to(port: u16) -> Result<FaultProxy, String> {
    FaultProxy::start(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(|error| format!("cannot start the replication proxy: {error}"))
}

/// Waits until `primary` streams synchronously to the standby `name`.
fn wait_until_synchronous(primary: &PrivateCluster, name: &str) -> Result<(), String> {
    let deadline = Instant::now() + SYNCHRONOUS_WAIT;
    let query =
        format!("SELECT sync_state FROM pg_stat_replication WHERE application_name = '{name}'");
    loop {
        if primary.sql(&query)? == "sync" {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{name} did not become a synchronous standby within {SYNCHRONOUS_WAIT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
