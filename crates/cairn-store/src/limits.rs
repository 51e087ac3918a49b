//! Limits of the storage layer that are not options, in one place, so that
//! every bound a component enforces is visible and checked together.

/// Claims and releases one PostgreSQL claim batch decides at most (see
/// `postgres/claim_batcher.rs`). Large enough to take every claim a busy
/// server has waiting at once (its HTTP clients, often a few hundred), small
/// enough that one batch's arrays, `Cairn.Claimed` facts and row locks stay
/// small and the batch's transaction stays short.
pub const CLAIM_BATCH_MAX: usize = 512;

/// Claims and releases waiting for a batch at most, per store; a caller
/// beyond it waits for room (within its deadline), so a flood of claims
/// holds memory in proportion to this, not to the flood.
pub const CLAIM_QUEUE_MAX: usize = 4_096;

/// Claim batches one store decides at once at most, each in its own
/// transaction on its own connection. Two let a batch make and lock its
/// rows while the one before holds the log head's lock (`cairn_put_facts`
/// to commit), so the head is seldom idle; more would only queue for it.
pub const CLAIM_BATCHES_IN_FLIGHT_MAX: usize = 2;

/// Optimistic attempts at a claim batch (read the records, decide, apply
/// if none changed meanwhile) before it is decided under the keys' row
/// locks. A conflict means another server decided on a key of the batch
/// in between; the next attempt reads its decision, and a claim of a key
/// that is now held changes nothing, so a second conflict is rare.
pub const CLAIM_OPTIMISTIC_ATTEMPTS_MAX: usize = 2;

const _: () = assert!(CLAIM_BATCH_MAX > 0 && CLAIM_BATCH_MAX <= CLAIM_QUEUE_MAX);
