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

const _: () = assert!(CLAIM_BATCH_MAX > 0 && CLAIM_BATCH_MAX <= CLAIM_QUEUE_MAX);
