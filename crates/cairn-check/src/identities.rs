//! The checker's own identities for a run with `--auth`, created offline
//! with `cairn tokens create --data DIR` (embedded) or `--store URL`
//! (PostgreSQL) before the servers start, from the binary the servers are
//! started from. Each has the least it needs: the writer writes and reads
//! the workload's types, claims keys and holds leases (write on
//! `Cairn.Claimed` and `Cairn.LeaseGranted`, read on the claimed facts'
//! type) and sets and deletes timers (write on their template type), the
//! reader reads every type the workload and the servers'
//! decisions write, the consumer consumes (and creates) the run's
//! subscriptions and reads what they select, and the admin replays dead
//! letters, which only an admin may do.
//!
//! Identities are durable in the store, so kills and restarts keep them.
//! Their names carry the run id, so runs over a given database never
//! collide. A token is read from the last line of the command's standard
//! output and never printed; errors quote only its standard error.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::api::AccessTokens;
use crate::claims::{CLAIMANT_TYPE, CLAIMED_TYPE, CLAIM_RELEASED_TYPE};
use crate::error::CheckError;
use crate::fences::{FENCED_TYPE, LEASE_GRANTED_TYPE, LEASE_RELEASED_TYPE};
use crate::timers::TIMER_TYPE;
use crate::workload::{ITEM_TYPE, KEY_TYPE, PROBE_TYPE};

/// Every type the workload writes or the servers decide, which the writer
/// and the reader read.
const READ_TYPES: [&str; 9] = [
    ITEM_TYPE,
    KEY_TYPE,
    CLAIMANT_TYPE,
    FENCED_TYPE,
    CLAIMED_TYPE,
    CLAIM_RELEASED_TYPE,
    LEASE_GRANTED_TYPE,
    LEASE_RELEASED_TYPE,
    TIMER_TYPE,
];
/// The types the writer writes: its facts, and (for claims and leases)
/// the server's decision types, whose write permission governs them; and
/// the timers' template type (setting and deleting a timer need write on
/// it); and the failover probes.
const WRITE_TYPES: [&str; 8] = [
    ITEM_TYPE,
    PROBE_TYPE,
    KEY_TYPE,
    CLAIMANT_TYPE,
    FENCED_TYPE,
    CLAIMED_TYPE,
    LEASE_GRANTED_TYPE,
    TIMER_TYPE,
];

/// `--flag type` for each type.
fn each<'a>(flag: &'a str, types: &[&'a str]) -> Vec<&'a str> {
    types
        .iter()
        .flat_map(|fact_type| [flag, fact_type])
        .collect()
}

/// Where the identities are kept: the store the servers will use.
#[derive(Clone, Debug)]
pub enum IdentityStore {
    /// An embedded data directory whose server is not running.
    Data(PathBuf),
    /// A PostgreSQL store.
    Postgres(String),
}

/// The name of the run's identity with this role.
pub fn identity_name(run_id: &str, role: &str) -> String {
    format!("check-{run_id}-{role}")
}

/// Creates the writer, reader, consumer and admin of run `run_id` in
/// `store` with `binary tokens create`; their tokens.
pub async fn create(
    binary: &Path,
    store: &IdentityStore,
    run_id: &str,
) -> Result<AccessTokens, CheckError> {
    let subscriptions = format!("check-{run_id}-*");
    let writer: Vec<&str> = each("--write", &WRITE_TYPES)
        .into_iter()
        .chain(each("--read", &READ_TYPES))
        .collect();
    let roles: [(&str, Vec<&str>); 4] = [
        ("writer", writer),
        ("reader", each("--read", &READ_TYPES)),
        (
            "consumer",
            vec!["--subscribe", &subscriptions, "--read", ITEM_TYPE],
        ),
        ("admin", vec!["--admin"]),
    ];
    let mut tokens = Vec::new();
    for (role, permissions) in roles {
        let name = identity_name(run_id, role);
        let mut args: Vec<String> = ["tokens", "create", "--name", &name]
            .into_iter()
            .chain(permissions)
            .map(str::to_string)
            .collect();
        match store {
            IdentityStore::Data(dir) => {
                args.push("--data".to_string());
                args.push(dir.to_string_lossy().into_owned());
            }
            IdentityStore::Postgres(url) => {
                args.push("--store".to_string());
                args.push(url.clone());
            }
        }
        let binary = binary.to_path_buf();
        let token = tokio::task::spawn_blocking(move || create_one(&binary, &args))
            .await
            .map_err(|error| CheckError::Identities(format!("{name}: {error}")))?
            .map_err(|problem| CheckError::Identities(format!("{name}: {problem}")))?;
        tokens.push(token);
    }
    let [writer, reader, consumer, admin]: [String; 4] = tokens
        .try_into()
        .map_err(|_| CheckError::Identities("not every identity was made".to_string()))?;
    Ok(AccessTokens {
        writer,
        reader,
        consumer,
        admin,
    })
}

/// Runs one `cairn tokens create`; the token on its last line of output.
fn create_one(binary: &Path, args: &[String]) -> Result<String, String> {
    let output = Command::new(binary)
        .args(args)
        .env_remove("CAIRN_TOKEN")
        .env_remove("CAIRN_STORE")
        .env_remove("CAIRN_DATA")
        .env_remove("CAIRN_SERVER")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run {}: {error}", binary.display()))?;
    if !output.status.success() {
        // Only standard error: standard output would hold the token.
        return Err(format!(
            "`cairn tokens create` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_string)
        .ok_or_else(|| "`cairn tokens create` printed no token".to_string())
}
