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

/// Claim batches one store decides at once at most, each on its own
/// connection. One: on this project's 2-core machine, two or three in
/// flight were no faster in paired runs (`docs/benchmarks.md`, issue 14),
/// as a batch is short (two round trips) and the next one takes every
/// claim that arrived meanwhile; more in flight on the same keys would
/// also conflict with each other.
pub const CLAIM_BATCHES_IN_FLIGHT_MAX: usize = 1;

/// Optimistic attempts at a claim batch (read the records, decide, apply
/// if none changed meanwhile) before it is decided under the keys' row
/// locks. A conflict means another server decided on a key of the batch
/// in between; the next attempt reads its decision, and a claim of a key
/// that is now held changes nothing, so a second conflict is rare.
pub const CLAIM_OPTIMISTIC_ATTEMPTS_MAX: usize = 2;

const _: () = assert!(CLAIM_BATCH_MAX > 0 && CLAIM_BATCH_MAX <= CLAIM_QUEUE_MAX);
