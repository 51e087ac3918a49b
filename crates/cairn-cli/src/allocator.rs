//! The process's memory allocator: mimalloc (with the default `mimalloc`
//! feature), and the two settings that keep its resident memory close to
//! what the server really holds. The only unsafe code of the binary lives
//! here: one call into mimalloc's C API.
//!
//! Measured with `bench/heap.sh` and `bench/scale.sh` (10 million facts
//! ingested over HTTP): the server's heap peaked at about 150 MiB while its
//! resident memory peaked at 296 MiB. Two causes, both in how mimalloc hands
//! memory back:
//! - mimalloc asks for transparent huge pages on its arenas, so one live
//!   object kept a whole 2 MiB page resident (`AnonHugePages` was 58 MiB at
//!   3 million facts). Built with mimalloc's `no_thp` feature, it does not ask.
//! - freed pages are given back to the kernel only after `purge_delay`
//!   (1 s by default), and the memtables free 8 MiB of small objects at a
//!   time, several times a second under bulk ingest: most of that stayed
//!   resident. 100 ms bounds it without a measurable cost in throughput;
//!   0 ms cost 12 % of the ingest rate.

/// mimalloc: with the system allocator, ingest was 30 % slower (see
/// ARCHITECTURE.md, dependencies). Heap profiles are taken without it
/// (`--no-default-features`), since profilers follow the system allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: its position in the C enum
/// `mi_option_t`, the same in mimalloc 2 and 3 (the enum keeps the slots of
/// deprecated options so that its values stay stable); `libmimalloc-sys`
/// has no constant for it.
#[cfg(feature = "mimalloc")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Milliseconds mimalloc waits before it gives freed pages back.
#[cfg(feature = "mimalloc")]
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// Applies the settings above; call first thing in `main`.
pub fn configure() {
    #[cfg(feature = "mimalloc")]
    // SAFETY: `mi_option_set` only stores a value in mimalloc's option
    // table (atomically); any option and value are valid inputs.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
    }
}
