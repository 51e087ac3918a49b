//! Claims, leases and fenced writes: the decisions services make together
//! through one deployment (`docs/api-v1.md`, "Collaboration"), kept beside
//! the facts by every backend.
//!
//! The rules are decided here, once, as pure functions over a record and a
//! request ([`decide_claim`], [`decide_claim_release`], [`decide_acquire`],
//! [`decide_renew`], [`decide_lease_release`], [`check_fence`]); each
//! backend loads the record under its own exclusion (the embedded writer
//! thread; a row lock on PostgreSQL), applies the decision and writes the
//! record together with the decision's fact in one atomic, durable commit.
//! The facts (`Cairn.Claimed`, `Cairn.ClaimReleased`, `Cairn.LeaseGranted`,
//! `Cairn.LeaseReleased`) are built here too, so both backends derive the
//! same bytes from the same decision.
//!
//! *Invariant:* a lease's fence only grows, per name, across every grant,
//! restart and server: the record keeps the last fence granted and is
//! never deleted.

use cairn_fact::{CanonicalFact, Hash};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::error::{ReadError, WriteError};
use crate::store::PutOutcome;

/// The holder of a claim: the winning fact and the `Cairn.Claimed` fact
/// that records the decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimHolder {
    /// The winning fact.
    pub fact: Hash,
    /// The `Cairn.Claimed` fact of this generation.
    pub claimed: Hash,
    /// Its position in the log.
    pub claimed_seq: u64,
}

/// A claim key's record: how often it was won, and who holds it now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    /// The key.
    pub key: String,
    /// Claims won on this key so far (the current one included).
    pub generation: u64,
    /// The current holder; `None` once released.
    pub holder: Option<ClaimHolder>,
    /// The last release (its holder and the `Cairn.ClaimReleased` fact),
    /// so that a retried release is answered alike.
    pub released: Option<ClaimRelease>,
}

/// A release of a claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRelease {
    /// The fact that held the claim.
    pub fact: Hash,
    /// The `Cairn.ClaimReleased` fact.
    pub released: Hash,
    /// Its position in the log.
    pub released_seq: u64,
}

/// A lease name's record: the last grant (current unless released).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The lease's name.
    pub name: String,
    /// The holder of the last grant.
    pub holder: String,
    /// The fence of the last grant: strictly increasing per name.
    pub fence: u64,
    /// When the last grant expires (ms since the Unix epoch).
    pub expires_at_ms: u64,
    /// The last grant's lease length, kept for renewals.
    pub ttl_ms: u64,
    /// True once the last grant was released.
    pub released: bool,
    /// The `Cairn.LeaseGranted` fact of the last grant.
    pub granted: Hash,
    /// The `Cairn.LeaseReleased` fact, once released.
    pub released_fact: Option<Hash>,
}

/// A fence a write carries (`Cairn-Fence: <name>=<fence>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// The lease's name.
    pub name: String,
    /// The fence of the grant the writer holds.
    pub fence: u64,
}

/// The answer to a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimOutcome {
    /// The key's record after the claim (its holder is the winner).
    pub record: ClaimRecord,
    /// True if the claimed fact holds the key.
    pub won: bool,
}

/// The answer to a lease operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The grant, as it stands after the operation.
    Granted(LeaseRecord),
    /// Another holder's grant is current (acquire only).
    Held(LeaseRecord),
    /// The grant named is not the current one; `current` is the record,
    /// if the name has one.
    Stale(Option<LeaseRecord>),
}

/// The answer to a release of a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimReleaseOutcome {
    /// Released (or released already by this same fact: a retry).
    Released(ClaimRecord),
    /// The fact does not hold the key; the current holder, if any.
    NotHolder(Option<ClaimHolder>),
}

/// A lease operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseRequest {
    /// Acquire `name` for `holder` for `ttl_ms`.
    Acquire {
        /// The lease's name.
        name: String,
        /// Who asks.
        holder: String,
        /// Lease length.
        ttl_ms: u64,
    },
    /// Renew the grant `fence` of `holder` for `ttl_ms` (or its own length).
    Renew {
        /// The lease's name.
        name: String,
        /// Who holds it.
        holder: String,
        /// The grant.
        fence: u64,
        /// New lease length, if it changes.
        ttl_ms: Option<u64>,
    },
    /// Release the grant `fence` of `holder`.
    Release {
        /// The lease's name.
        name: String,
        /// Who holds it.
        holder: String,
        /// The grant.
        fence: u64,
    },
}

impl LeaseRequest {
    /// The lease's name.
    pub fn name(&self) -> &str {
        match self {
            LeaseRequest::Acquire { name, .. }
            | LeaseRequest::Renew { name, .. }
            | LeaseRequest::Release { name, .. } => name,
        }
    }
}

/// Claims, leases and fenced writes, kept durably beside the facts. Every
/// method that changes something is linearizable within the deployment
/// (one embedded store, or every server on one database) and durable on
/// return, together with the fact it writes.
///
/// `now_ms` is the caller's clock; a store shared by several servers
/// decides expiry by its own clock instead, so that every server agrees.
pub trait CoordinationStore: Send + Sync + 'static {
    /// This deployment's identity: random, made when the store was
    /// created, the same for every server of a shared store. Facts the
    /// store writes name it, so that a decision replicated from another
    /// deployment is told apart.
    fn deployment(&self) -> &str;

    /// Claims `key` for the stored fact `fact`: the first claim of a free
    /// key wins and writes `Cairn.Claimed`; any other claim answers the
    /// current winner (`won` is true again for the winner itself).
    /// `MissingPredecessors` if `fact` is not stored.
    fn claim<'a>(
        &'a self,
        key: &'a str,
        fact: Hash,
    ) -> BoxFuture<'a, Result<ClaimOutcome, WriteError>>;

    /// The record of `key`, if it was ever claimed.
    fn claim_record<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<ClaimRecord>, ReadError>>;

    /// Releases `key` if `fact` holds it, writing `Cairn.ClaimReleased`.
    fn release_claim<'a>(
        &'a self,
        key: &'a str,
        fact: Hash,
    ) -> BoxFuture<'a, Result<ClaimReleaseOutcome, WriteError>>;

    /// Acquires, renews or releases a lease; a new grant (and a release)
    /// writes its fact, a renewal writes none.
    fn update_lease(
        &self,
        request: LeaseRequest,
        now_ms: u64,
    ) -> BoxFuture<'_, Result<LeaseOutcome, WriteError>>;

    /// The record of the lease `name`, if it was ever granted.
    fn lease_record<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<LeaseRecord>, ReadError>>;

    /// Writes facts as [`crate::Store::put_facts_by`] does, only if `fence`
    /// is the current grant of its lease, checked atomically with the
    /// write (`WriteError::StaleFence` otherwise, nothing stored).
    fn put_facts_fenced(
        &self,
        facts: Vec<CanonicalFact>,
        author: Option<std::sync::Arc<str>>,
        fence: Fence,
    ) -> BoxFuture<'_, Result<Vec<PutOutcome>, WriteError>>;
}

/// What a claim decides, before its fact is written.
#[derive(Clone, Debug)]
pub enum ClaimDecision {
    /// The key is free: write this `Cairn.Claimed` fact, then hold the key
    /// ([`ClaimRecord::won`]).
    Win {
        /// The fact to write.
        claimed: CanonicalFact,
        /// The key's new generation.
        generation: u64,
    },
    /// The key is held: answer its record as it is.
    Held {
        /// True if the claimed fact is the holder.
        won: bool,
    },
}

/// Decides a claim of `key` by `fact` against the key's record.
pub fn decide_claim(
    record: Option<&ClaimRecord>,
    key: &str,
    fact: &Hash,
    deployment: &str,
) -> ClaimDecision {
    match record.and_then(|record| record.holder.as_ref()) {
        Some(holder) => ClaimDecision::Held {
            won: holder.fact == *fact,
        },
        None => {
            let generation = record.map_or(0, |record| record.generation) + 1;
            ClaimDecision::Win {
                claimed: claimed_fact(key, fact, generation, deployment),
                generation,
            }
        }
    }
}

impl ClaimRecord {
    /// The record after `fact` won `key` at `generation`, recorded by the
    /// fact `claimed` at `claimed_seq`.
    pub fn won(
        previous: Option<ClaimRecord>,
        key: &str,
        fact: Hash,
        generation: u64,
        claimed: Hash,
        claimed_seq: u64,
    ) -> ClaimRecord {
        ClaimRecord {
            key: key.to_string(),
            generation,
            holder: Some(ClaimHolder {
                fact,
                claimed,
                claimed_seq,
            }),
            released: previous.and_then(|previous| previous.released),
        }
    }
}

/// What a release of a claim decides, before its fact is written.
#[derive(Clone, Debug)]
pub enum ClaimReleaseDecision {
    /// Write this `Cairn.ClaimReleased` fact, then free the key
    /// ([`ClaimRecord::released`]).
    Release {
        /// The fact to write.
        released: CanonicalFact,
    },
    /// Nothing to write: answer this.
    Answer(ClaimReleaseOutcome),
}

/// Decides a release of `key` by `fact`: only the holder releases; a
/// release retried by the fact that was released last, while nobody
/// holds the key, is answered as done again.
pub fn decide_claim_release(
    record: Option<&ClaimRecord>,
    fact: &Hash,
    deployment: &str,
) -> ClaimReleaseDecision {
    let Some(record) = record else {
        return ClaimReleaseDecision::Answer(ClaimReleaseOutcome::NotHolder(None));
    };
    match &record.holder {
        Some(holder) if holder.fact == *fact => ClaimReleaseDecision::Release {
            released: claim_released_fact(record, holder, deployment),
        },
        Some(holder) => {
            ClaimReleaseDecision::Answer(ClaimReleaseOutcome::NotHolder(Some(holder.clone())))
        }
        None => match &record.released {
            Some(release) if release.fact == *fact => {
                ClaimReleaseDecision::Answer(ClaimReleaseOutcome::Released(record.clone()))
            }
            _ => ClaimReleaseDecision::Answer(ClaimReleaseOutcome::NotHolder(None)),
        },
    }
}

impl ClaimRecord {
    /// The record after its holder released it by the fact `released` at
    /// `released_seq`.
    pub fn released(mut self, released: Hash, released_seq: u64) -> ClaimRecord {
        if let Some(holder) = self.holder.take() {
            self.released = Some(ClaimRelease {
                fact: holder.fact,
                released,
                released_seq,
            });
        }
        self
    }
}

/// What a lease operation decides.
#[derive(Clone, Debug)]
pub enum LeaseDecision {
    /// Store `record` and write `fact` with it (a new grant, a release).
    WriteWithFact {
        /// The record to store.
        record: LeaseRecord,
        /// The fact to write in the same commit.
        fact: CanonicalFact,
    },
    /// Store `record` (a renewal: no fact).
    Write(LeaseRecord),
    /// Nothing to write: answer this.
    Answer(LeaseOutcome),
}

impl LeaseRecord {
    /// True if this grant is current: the last one, and not released. An
    /// expired grant stays current until another holder acquires the
    /// lease (expiry only allows that), so a fence is refused only once a
    /// later grant exists or it was released.
    fn is_current(&self, holder: &str, fence: u64) -> bool {
        !self.released && self.fence == fence && self.holder == holder
    }
}

/// Decides a lease operation at `now_ms` against the name's record.
pub fn decide_lease(
    record: Option<&LeaseRecord>,
    request: &LeaseRequest,
    now_ms: u64,
    deployment: &str,
) -> LeaseDecision {
    match request {
        LeaseRequest::Acquire {
            name,
            holder,
            ttl_ms,
        } => match record {
            // The current holder acquiring again (a retry, or a restart
            // that kept its holder name) keeps its grant, renewed.
            Some(current) if !current.released && current.holder == *holder => {
                LeaseDecision::Write(renewed(current, now_ms, *ttl_ms))
            }
            Some(current) if !current.released && current.expires_at_ms > now_ms => {
                LeaseDecision::Answer(LeaseOutcome::Held(current.clone()))
            }
            _ => {
                let fence = record.map_or(0, |record| record.fence) + 1;
                let fact = lease_granted_fact(
                    name,
                    holder,
                    fence,
                    *ttl_ms,
                    record.map(|r| &r.granted),
                    deployment,
                );
                LeaseDecision::WriteWithFact {
                    record: LeaseRecord {
                        name: name.clone(),
                        holder: holder.clone(),
                        fence,
                        expires_at_ms: now_ms.saturating_add(*ttl_ms),
                        ttl_ms: *ttl_ms,
                        released: false,
                        granted: fact.hash,
                        released_fact: None,
                    },
                    fact,
                }
            }
        },
        LeaseRequest::Renew {
            holder,
            fence,
            ttl_ms,
            ..
        } => match record {
            Some(current) if current.is_current(holder, *fence) => {
                LeaseDecision::Write(renewed(current, now_ms, ttl_ms.unwrap_or(current.ttl_ms)))
            }
            _ => LeaseDecision::Answer(LeaseOutcome::Stale(record.cloned())),
        },
        LeaseRequest::Release { holder, fence, .. } => match record {
            Some(current) if current.is_current(holder, *fence) => {
                let fact = lease_released_fact(current, deployment);
                let mut record = current.clone();
                record.released = true;
                record.released_fact = Some(fact.hash);
                LeaseDecision::WriteWithFact { record, fact }
            }
            // A retried release of the grant released last.
            Some(current)
                if current.released && current.fence == *fence && current.holder == *holder =>
            {
                LeaseDecision::Answer(LeaseOutcome::Granted(current.clone()))
            }
            _ => LeaseDecision::Answer(LeaseOutcome::Stale(record.cloned())),
        },
    }
}

fn renewed(current: &LeaseRecord, now_ms: u64, ttl_ms: u64) -> LeaseRecord {
    LeaseRecord {
        expires_at_ms: now_ms.saturating_add(ttl_ms),
        ttl_ms,
        ..current.clone()
    }
}

/// Checks a fenced write against the lease's record: the fence must be
/// the current grant's (see [`LeaseRecord`]; expiry alone does not make it
/// stale, a later grant or a release does).
pub fn check_fence(record: Option<&LeaseRecord>, fence: &Fence) -> Result<(), WriteError> {
    match record {
        Some(current) if !current.released && current.fence == fence.fence => Ok(()),
        _ => Err(WriteError::StaleFence {
            name: fence.name.clone(),
            fence: fence.fence,
            current: record.filter(|r| !r.released).map(|r| r.fence),
        }),
    }
}

/// Builds a fact the server writes; its parts are validated already, so a
/// failure is a bug.
fn server_fact(value: serde_json::Value) -> CanonicalFact {
    CanonicalFact::from_json(value.to_string().as_bytes(), usize::MAX)
        .expect("a fact the server builds is valid")
}

/// `Cairn.Claimed`: `fact` won `key` at `generation` in `deployment`.
pub fn claimed_fact(key: &str, fact: &Hash, generation: u64, deployment: &str) -> CanonicalFact {
    server_fact(serde_json::json!({
        "type": "Cairn.Claimed",
        "fields": {"key": key, "generation": generation, "deployment": deployment},
        "predecessors": {"fact": fact.to_hex()},
    }))
}

fn claim_released_fact(
    record: &ClaimRecord,
    holder: &ClaimHolder,
    deployment: &str,
) -> CanonicalFact {
    server_fact(serde_json::json!({
        "type": "Cairn.ClaimReleased",
        "fields": {"key": record.key, "generation": record.generation, "deployment": deployment},
        "predecessors": {"claim": holder.claimed.to_hex()},
    }))
}

fn lease_granted_fact(
    name: &str,
    holder: &str,
    fence: u64,
    ttl_ms: u64,
    previous: Option<&Hash>,
    deployment: &str,
) -> CanonicalFact {
    let predecessors = match previous {
        Some(previous) => serde_json::json!({"previous": previous.to_hex()}),
        None => serde_json::json!({}),
    };
    server_fact(serde_json::json!({
        "type": "Cairn.LeaseGranted",
        "fields": {
            "name": name, "holder": holder, "fence": fence, "ttl_ms": ttl_ms,
            "deployment": deployment,
        },
        "predecessors": predecessors,
    }))
}

fn lease_released_fact(record: &LeaseRecord, deployment: &str) -> CanonicalFact {
    server_fact(serde_json::json!({
        "type": "Cairn.LeaseReleased",
        "fields": {
            "name": record.name, "holder": record.holder, "fence": record.fence,
            "deployment": deployment,
        },
        "predecessors": {"grant": record.granted.to_hex()},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = "d1";

    fn hash(n: u8) -> Hash {
        Hash::of_bytes(&[n])
    }

    fn won(record: Option<ClaimRecord>, key: &str, fact: Hash) -> ClaimRecord {
        match decide_claim(record.as_ref(), key, &fact, DEPLOYMENT) {
            ClaimDecision::Win {
                claimed,
                generation,
            } => ClaimRecord::won(record, key, fact, generation, claimed.hash, 7),
            ClaimDecision::Held { .. } => panic!("expected a win"),
        }
    }

    #[test]
    fn the_first_claim_wins_and_others_see_the_winner() {
        let record = won(None, "k", hash(1));
        assert_eq!(record.generation, 1);
        assert!(matches!(
            decide_claim(Some(&record), "k", &hash(1), DEPLOYMENT),
            ClaimDecision::Held { won: true }
        ));
        assert!(matches!(
            decide_claim(Some(&record), "k", &hash(2), DEPLOYMENT),
            ClaimDecision::Held { won: false }
        ));
    }

    #[test]
    fn a_claim_after_a_release_is_a_new_generation_and_a_new_fact() {
        let first = won(None, "k", hash(1));
        let first_claimed = first.holder.clone().unwrap().claimed;
        let ClaimReleaseDecision::Release { released } =
            decide_claim_release(Some(&first), &hash(1), DEPLOYMENT)
        else {
            panic!("the holder releases");
        };
        assert_eq!(released.fact.type_name, "Cairn.ClaimReleased");
        let free = first.released(released.hash, 8);
        assert!(matches!(
            decide_claim_release(Some(&free), &hash(1), DEPLOYMENT),
            ClaimReleaseDecision::Answer(ClaimReleaseOutcome::Released(_))
        ));
        assert!(matches!(
            decide_claim_release(Some(&free), &hash(2), DEPLOYMENT),
            ClaimReleaseDecision::Answer(ClaimReleaseOutcome::NotHolder(None))
        ));
        let second = won(Some(free), "k", hash(1));
        assert_eq!(second.generation, 2);
        assert_ne!(second.holder.unwrap().claimed, first_claimed);
    }

    #[test]
    fn only_the_holder_releases() {
        let record = won(None, "k", hash(1));
        assert!(matches!(
            decide_claim_release(Some(&record), &hash(2), DEPLOYMENT),
            ClaimReleaseDecision::Answer(ClaimReleaseOutcome::NotHolder(Some(_)))
        ));
        assert!(matches!(
            decide_claim_release(None, &hash(1), DEPLOYMENT),
            ClaimReleaseDecision::Answer(ClaimReleaseOutcome::NotHolder(None))
        ));
    }

    #[test]
    fn claimed_facts_differ_by_key_generation_and_deployment() {
        let base = claimed_fact("k", &hash(1), 1, "d1").hash;
        assert_eq!(base, claimed_fact("k", &hash(1), 1, "d1").hash);
        assert_ne!(base, claimed_fact("k2", &hash(1), 1, "d1").hash);
        assert_ne!(base, claimed_fact("k", &hash(1), 2, "d1").hash);
        assert_ne!(base, claimed_fact("k", &hash(1), 1, "d2").hash);
    }

    fn acquire(name: &str, holder: &str, ttl_ms: u64) -> LeaseRequest {
        LeaseRequest::Acquire {
            name: name.into(),
            holder: holder.into(),
            ttl_ms,
        }
    }

    fn granted(record: Option<&LeaseRecord>, request: &LeaseRequest, now_ms: u64) -> LeaseRecord {
        match decide_lease(record, request, now_ms, DEPLOYMENT) {
            LeaseDecision::WriteWithFact { record, fact } => {
                let written = if record.released {
                    record.released_fact
                } else {
                    Some(record.granted)
                };
                assert_eq!(written, Some(fact.hash));
                record
            }
            LeaseDecision::Write(record) => record,
            LeaseDecision::Answer(answer) => panic!("expected a grant, got {answer:?}"),
        }
    }

    #[test]
    fn fences_grow_with_every_grant_and_a_held_lease_is_refused() {
        let first = granted(None, &acquire("l", "a", 1_000), 0);
        assert_eq!(first.fence, 1);
        assert!(matches!(
            decide_lease(Some(&first), &acquire("l", "b", 1_000), 999, DEPLOYMENT),
            LeaseDecision::Answer(LeaseOutcome::Held(_))
        ));
        // Expired: another holder gets the next fence.
        let second = granted(Some(&first), &acquire("l", "b", 1_000), 1_000);
        assert_eq!(second.fence, 2);
        assert_eq!(second.expires_at_ms, 2_000);
        // The same holder acquiring again keeps its fence, renewed.
        let again = granted(Some(&second), &acquire("l", "b", 5_000), 1_500);
        assert_eq!((again.fence, again.expires_at_ms), (2, 6_500));
    }

    #[test]
    fn a_fence_is_stale_once_a_later_grant_exists_or_it_was_released() {
        let first = granted(None, &acquire("l", "a", 1_000), 0);
        let fence = |fence| Fence {
            name: "l".into(),
            fence,
        };
        assert!(check_fence(Some(&first), &fence(1)).is_ok());
        // Expired but not taken over: still current.
        assert!(check_fence(Some(&first), &fence(1)).is_ok());
        let second = granted(Some(&first), &acquire("l", "b", 1_000), 5_000);
        assert!(matches!(
            check_fence(Some(&second), &fence(1)),
            Err(WriteError::StaleFence {
                current: Some(2),
                ..
            })
        ));
        assert!(check_fence(Some(&second), &fence(3)).is_err());
        assert!(check_fence(None, &fence(1)).is_err());
        let release = LeaseRequest::Release {
            name: "l".into(),
            holder: "b".into(),
            fence: 2,
        };
        let released = granted(Some(&second), &release, 5_001);
        assert!(released.released);
        assert!(check_fence(Some(&released), &fence(2)).is_err());
        // A retried release answers the same; a renewal of it is stale.
        assert!(matches!(
            decide_lease(Some(&released), &release, 5_002, DEPLOYMENT),
            LeaseDecision::Answer(LeaseOutcome::Granted(_))
        ));
        let renew = LeaseRequest::Renew {
            name: "l".into(),
            holder: "b".into(),
            fence: 2,
            ttl_ms: None,
        };
        assert!(matches!(
            decide_lease(Some(&released), &renew, 5_002, DEPLOYMENT),
            LeaseDecision::Answer(LeaseOutcome::Stale(_))
        ));
        // After a release the next grant takes the next fence.
        assert_eq!(
            granted(Some(&released), &acquire("l", "a", 100), 5_003).fence,
            3
        );
    }

    #[test]
    fn renewals_move_the_expiry_and_keep_the_length_unless_given() {
        let first = granted(None, &acquire("l", "a", 1_000), 0);
        let renew = |ttl_ms| LeaseRequest::Renew {
            name: "l".into(),
            holder: "a".into(),
            fence: 1,
            ttl_ms,
        };
        let renewed = granted(Some(&first), &renew(None), 900);
        assert_eq!((renewed.expires_at_ms, renewed.ttl_ms), (1_900, 1_000));
        let longer = granted(Some(&renewed), &renew(Some(10_000)), 1_000);
        assert_eq!(longer.expires_at_ms, 11_000);
        let wrong_holder = LeaseRequest::Renew {
            name: "l".into(),
            holder: "b".into(),
            fence: 1,
            ttl_ms: None,
        };
        assert!(matches!(
            decide_lease(Some(&first), &wrong_holder, 10, DEPLOYMENT),
            LeaseDecision::Answer(LeaseOutcome::Stale(_))
        ));
    }
}
