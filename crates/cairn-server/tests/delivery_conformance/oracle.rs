//! The invariants every engine must keep, checked as a run goes, from what
//! its clients saw (the contract), never from the engine's internals:
//!
//! * **one holder at a time**: a message is leased again only after its
//!   lease ended (acked, nacked, or its end passed; on the embedded
//!   backend also a restart, which voids leases);
//! * **per-key order**: a message with an ordering key is leased only while
//!   fewer than `max_in_flight_per_key` earlier messages of its key are
//!   unsettled (neither acked nor dead), and no more than that many of one
//!   key are leased at once;
//! * **attempts**: no delivery has an attempt above `max_attempts` (the
//!   largest one in force during the run: a lowered `max_attempts` applies
//!   at a message's next failure, so a message that failed before may be
//!   delivered once more);
//! * **updates keep state**: a changed definition keeps every message
//!   where it was (the driver compares the views around it), and the key
//!   window checked is the one in force;
//! * **nothing after an ack**: a message answered `acked` is never leased
//!   again nor acked again;
//! * **tokens**: only the latest lease of a message acts; a token its
//!   subscription never issued (another subscription's, a forged or
//!   misspelled one, one from before an embedded restart) is `unknown`;
//!   `expired` only for a lease that is over while its message is pending
//!   and was leased again; an extend never revives an ended lease;
//! * **accounting**: `in_flight` is the number of leases the contract
//!   says are held, and acked + backlog + in flight + dead + discarded is
//!   every published message;
//! * at the end, **every message is acked or dead exactly once**.

use std::collections::{BTreeSet, HashMap, HashSet};

use cairn_delivery::{LeaseToken, TokenStatus};

use crate::engines::EngineKind;
use crate::schedule::Config;

/// An issued token.
#[derive(Clone, Copy, Debug)]
struct Issued {
    seq: u64,
    incarnation: u32,
}

/// A lease the contract says is held until `expires_at_ms`.
#[derive(Clone, Debug)]
struct OpenLease {
    token: String,
    expires_at_ms: u64,
}

/// What an ack, nack or extend asked, for checking its answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// An ack.
    Ack,
    /// A nack.
    Nack,
    /// An extend, for this long from now.
    Extend {
        /// The lease asked for.
        lease_ms: u64,
    },
}

/// The bookkeeping of one engine's run; see the module documentation.
#[derive(Debug)]
pub struct Oracle {
    kind: EngineKind,
    max_attempts: u32,
    max_in_flight_per_key: Option<u32>,
    incarnation: u32,
    issued: HashMap<String, Issued>,
    newest: HashMap<u64, String>,
    open: HashMap<u64, OpenLease>,
    acked: BTreeSet<u64>,
    replayed_since_lease: HashSet<u64>,
    /// Ordering key per message, in publication order.
    keys: Vec<(u64, Option<u8>)>,
}

impl Oracle {
    /// The oracle of a run of `kind` with `config`.
    pub fn new(kind: EngineKind, config: &Config) -> Oracle {
        Oracle {
            kind,
            max_attempts: config.max_attempts,
            max_in_flight_per_key: config.max_in_flight_per_key,
            incarnation: 0,
            issued: HashMap::new(),
            newest: HashMap::new(),
            open: HashMap::new(),
            acked: BTreeSet::new(),
            replayed_since_lease: HashSet::new(),
            keys: Vec::new(),
        }
    }

    /// The definition changed to `config`'s delivery members.
    pub fn definition_changed(&mut self, config: &Config) {
        self.max_attempts = self.max_attempts.max(config.max_attempts);
        self.max_in_flight_per_key = config.max_in_flight_per_key;
    }

    /// A message was published.
    pub fn published(&mut self, seq: u64, key: Option<u8>) {
        self.keys.push((seq, key));
    }

    fn key_of(&self, seq: u64) -> Option<u8> {
        self.keys
            .iter()
            .find(|(other, _)| *other == seq)
            .and_then(|(_, key)| *key)
    }

    /// Leases the contract says are held at `now_ms`.
    pub fn open_leases(&self, now_ms: u64) -> usize {
        self.open
            .values()
            .filter(|lease| lease.expires_at_ms > now_ms)
            .count()
    }

    /// One pull's leases, `(seq, attempt, token)`, at `now_ms`, each for
    /// `lease_ms`; `dead` are the dead and discarded letters after it.
    pub fn pulled(
        &mut self,
        now_ms: u64,
        leases: &[(u64, u32, String)],
        lease_ms: u64,
        dead: &BTreeSet<u64>,
    ) -> Result<(), String> {
        for (seq, attempt, token) in leases {
            let parsed = LeaseToken::parse(token)
                .ok_or_else(|| format!("message {seq} leased with a malformed token {token:?}"))?;
            if parsed.seq != *seq || parsed.attempt() != *attempt {
                return Err(format!(
                    "message {seq} (attempt {attempt}) leased with token {token} of another lease"
                ));
            }
            if *attempt == 0 || *attempt > self.max_attempts {
                return Err(format!(
                    "message {seq} delivered with attempt {attempt} (max_attempts {})",
                    self.max_attempts
                ));
            }
            if self.acked.contains(seq) {
                return Err(format!(
                    "message {seq} delivered again after an answered ack"
                ));
            }
            if let Some(open) = self.open.get(seq) {
                if open.expires_at_ms > now_ms {
                    return Err(format!(
                        "message {seq} leased at {now_ms} while lease {} holds it until {}",
                        open.token, open.expires_at_ms
                    ));
                }
            }
            if self.issued.contains_key(token) {
                return Err(format!("token {token} handed out twice"));
            }
            self.issued.insert(
                token.clone(),
                Issued {
                    seq: *seq,
                    incarnation: self.incarnation,
                },
            );
            self.newest.insert(*seq, token.clone());
            self.open.insert(
                *seq,
                OpenLease {
                    token: token.clone(),
                    expires_at_ms: now_ms + lease_ms,
                },
            );
            self.replayed_since_lease.remove(seq);
        }
        self.check_keys(now_ms, leases, dead)
    }

    /// The per-key rules, right after a pull.
    fn check_keys(
        &self,
        now_ms: u64,
        leases: &[(u64, u32, String)],
        dead: &BTreeSet<u64>,
    ) -> Result<(), String> {
        let Some(window) = self.max_in_flight_per_key else {
            return Ok(());
        };
        for (seq, _, _) in leases {
            let Some(key) = self.key_of(*seq) else {
                continue;
            };
            let held: Vec<u64> = self
                .open
                .iter()
                .filter(|(other, lease)| {
                    lease.expires_at_ms > now_ms && self.key_of(**other) == Some(key)
                })
                .map(|(other, _)| *other)
                .collect();
            if held.len() > window as usize {
                return Err(format!(
                    "{} messages of key {key} are leased at once ({held:?}), above \
                     max_in_flight_per_key {window}",
                    held.len()
                ));
            }
            let earlier: Vec<u64> = self
                .keys
                .iter()
                .filter(|(other, other_key)| {
                    *other < *seq && *other_key == Some(key) && !self.acked.contains(other)
                })
                .map(|(other, _)| *other)
                .collect();
            if earlier.len() < window as usize {
                continue;
            }
            let unsettled: Vec<u64> = earlier
                .into_iter()
                .filter(|other| !dead.contains(other))
                .collect();
            if unsettled.len() >= window as usize {
                return Err(format!(
                    "message {seq} of key {key} leased while earlier messages {unsettled:?} of \
                     its key are unsettled (max_in_flight_per_key {window})"
                ));
            }
        }
        Ok(())
    }

    /// The answer `status` to `text` (one token of an ack, nack or extend,
    /// in request order) at `now_ms`; `dead` are the dead and discarded
    /// letters after the request.
    pub fn answered(
        &mut self,
        verb: Verb,
        now_ms: u64,
        text: &str,
        status: TokenStatus,
        dead: &BTreeSet<u64>,
    ) -> Result<(), String> {
        let fail = |why: &str| Err(format!("{verb:?} of {text:?} answered {status:?}: {why}"));
        let Some(issued) = self.issued.get(text).copied() else {
            return match status {
                TokenStatus::Unknown => Ok(()),
                _ => fail("the subscription never issued this token"),
            };
        };
        let voided = !self.kind.leases_survive_restart() && issued.incarnation != self.incarnation;
        if voided {
            return match status {
                TokenStatus::Unknown => Ok(()),
                _ => fail("the token is from before the restart, which voided its lease"),
            };
        }
        let seq = issued.seq;
        let newest = self.newest.get(&seq).map(String::as_str) == Some(text);
        let open_now = self
            .open
            .get(&seq)
            .is_some_and(|lease| lease.token == text && lease.expires_at_ms > now_ms);
        match status {
            TokenStatus::Acked | TokenStatus::Nacked | TokenStatus::Extended if !newest => {
                fail("the message was leased again since: a superseded token acted")
            }
            TokenStatus::Acked => {
                if !self.acked.insert(seq) {
                    return fail("the message was acked already");
                }
                self.open.remove(&seq);
                Ok(())
            }
            TokenStatus::Nacked => {
                self.open.remove(&seq);
                Ok(())
            }
            TokenStatus::Extended => {
                let Verb::Extend { lease_ms } = verb else {
                    return fail("only an extend extends");
                };
                if !open_now {
                    return fail("the lease had ended: an extend revived it");
                }
                if let Some(lease) = self.open.get_mut(&seq) {
                    lease.expires_at_ms = now_ms + lease_ms;
                }
                Ok(())
            }
            TokenStatus::Expired => {
                if self.acked.contains(&seq) || dead.contains(&seq) {
                    return fail("the message is not pending (acked or dead): it is unknown");
                }
                if newest && !matches!(verb, Verb::Extend { .. }) {
                    return fail("the token names the latest lease: it acts");
                }
                if newest && open_now {
                    return fail("the lease is still held: it is extended");
                }
                if !newest && self.replayed_since_lease.contains(&seq) {
                    return fail("the message was not leased again since its replay");
                }
                Ok(())
            }
            TokenStatus::Unknown => {
                if self.acked.contains(&seq)
                    || self.replayed_since_lease.contains(&seq)
                    || dead.contains(&seq)
                {
                    Ok(())
                } else if newest {
                    fail("the latest lease of a pending message was not recognised")
                } else {
                    fail("an earlier lease of a message leased again since is expired")
                }
            }
        }
    }

    /// Whether checking these answers needs to know the dead letters.
    pub fn answers_need_dead(&self, answers: &[(String, TokenStatus)]) -> bool {
        answers.iter().any(|(text, status)| {
            matches!(status, TokenStatus::Expired | TokenStatus::Unknown)
                && self.issued.contains_key(text)
        })
    }

    /// Whether checking a pull needs to know the dead letters.
    pub fn pull_needs_dead(&self, n_leased: usize) -> bool {
        n_leased > 0 && self.max_in_flight_per_key.is_some()
    }

    /// Dead letters brought back by a replay.
    pub fn replayed(&mut self, seqs: impl IntoIterator<Item = u64>) {
        self.replayed_since_lease.extend(seqs);
    }

    /// The server restarted: on the embedded backend every lease is void.
    pub fn restarted(&mut self) {
        self.incarnation += 1;
        if !self.kind.leases_survive_restart() {
            self.open.clear();
        }
    }

    /// The view's counts at `now_ms`, against the contract's.
    pub fn viewed(
        &self,
        now_ms: u64,
        n_published: usize,
        counts: ViewCounts,
    ) -> Result<(), String> {
        let held = self.open_leases(now_ms) as u64;
        if counts.in_flight != held {
            return Err(format!(
                "the view says {} in flight; the contract's leases held are {held}",
                counts.in_flight
            ));
        }
        let accounted = self.acked.len() as u64
            + counts.backlog
            + counts.in_flight
            + counts.dead
            + counts.discarded;
        if accounted != n_published as u64 {
            return Err(format!(
                "acked {} + backlog {} + in flight {} + dead {} + discarded {} = {accounted}, \
                 but {n_published} messages were published",
                self.acked.len(),
                counts.backlog,
                counts.in_flight,
                counts.dead,
                counts.discarded
            ));
        }
        Ok(())
    }

    /// The end of a run: every published message acked or dead (or
    /// discarded), exactly once.
    pub fn finished(&self, dead: &BTreeSet<u64>) -> Result<(), String> {
        let both: Vec<u64> = self.acked.intersection(dead).copied().collect();
        if !both.is_empty() {
            return Err(format!("messages {both:?} are acked and dead letters"));
        }
        let missing: Vec<u64> = self
            .keys
            .iter()
            .map(|(seq, _)| *seq)
            .filter(|seq| !self.acked.contains(seq) && !dead.contains(seq))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "messages {missing:?} were neither acked nor dead letters at the end"
            ));
        }
        Ok(())
    }
}

/// The counts of a view the oracle checks.
#[derive(Clone, Copy, Debug)]
pub struct ViewCounts {
    /// `backlog`.
    pub backlog: u64,
    /// `in_flight`.
    pub in_flight: u64,
    /// `dead`.
    pub dead: u64,
    /// `discarded`.
    pub discarded: u64,
}
