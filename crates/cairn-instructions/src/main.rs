//! `cairn-instructions <path>`: one of Cairn's core paths on fixed,
//! deterministic inputs, for the instruction-count guard
//! (`bench/instructions.sh`), which runs each path in its own process under
//! `valgrind --tool=callgrind` and compares the count with a committed
//! baseline.
//!
//! A run prepares everything first (the inputs, a fresh store in a
//! temporary directory, loading it with facts where the path reads them),
//! then calls [`measurement_begins`], runs the path, and calls
//! [`measurement_ends`]. The script tells callgrind to zero its counters
//! when the first is entered (`--zero-before`) and to dump them when the
//! second is (`--dump-before`): the dump holds the instructions of every
//! thread in between (the store's writer thread and the storage engine's
//! threads included), and none of start-up, setup or teardown. Wall time
//! would be too noisy on a shared machine; instruction counts repeat.
//!
//! Inputs are fixed by a seed and contain no timestamps; the delivery
//! clock is simulated and the token secrets seeded. Each workload stays
//! far below the storage engine's memtable and write-buffer limits, so no
//! background flush or compaction (whose timing varies) runs while it is
//! measured. The allocator is the `cairn` binary's (mimalloc), so the
//! counts are those of the code that ships.

#![forbid(unsafe_code)]

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod delivery;
mod facts;
mod http;
mod inputs;
mod store;

use std::hint::black_box;

use anyhow::{bail, Context};

/// A measured path: its name on the command line and the function that
/// prepares and runs it, returning how many units (facts, messages) the
/// measured part handled.
struct Path {
    name: &'static str,
    unit: &'static str,
    run: fn() -> anyhow::Result<u64>,
}

/// Every path, in the order the guard runs them.
const PATHS: [Path; 5] = [
    Path {
        name: "fact",
        unit: "fact",
        run: facts::run,
    },
    Path {
        name: "store-write",
        unit: "fact",
        run: store::run_write,
    },
    Path {
        name: "store-read",
        unit: "fact",
        run: store::run_read,
    },
    Path {
        name: "delivery",
        unit: "message",
        run: delivery::run,
    },
    Path {
        name: "http-write",
        unit: "fact",
        run: http::run,
    },
];

fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let usage = || {
        let names: Vec<&str> = PATHS.iter().map(|path| path.name).collect();
        format!(
            "usage: cairn-instructions <path> | --list (paths: {})",
            names.join(", ")
        )
    };
    let [argument] = arguments.as_slice() else {
        bail!("{}", usage());
    };
    if argument == "--list" {
        for path in &PATHS {
            println!("{}", path.name);
        }
        return Ok(());
    }
    let Some(path) = PATHS.iter().find(|path| path.name == argument) else {
        bail!("unknown path {argument:?}; {}", usage());
    };
    let units = (path.run)().with_context(|| format!("path {}", path.name))?;
    println!("path={} units={units} unit={}", path.name, path.unit);
    Ok(())
}

/// Runs `work`, the measured part of a path, between the two markers the
/// guard's callgrind options name, and returns what it counted.
fn measure(path: &str, work: impl FnOnce() -> anyhow::Result<u64>) -> anyhow::Result<u64> {
    measurement_begins(path);
    let units = work();
    measurement_ends(units.as_ref().map_or(0, |units| *units));
    units
}

/// Callgrind zeroes every thread's counters when this is entered
/// (`--zero-before=cairn_instructions::measurement_begins`). Never inlined,
/// and `black_box` keeps the call from being optimized away, so the symbol
/// is entered on every run; it differs from [`measurement_ends`] in
/// signature so the compiler cannot merge the two.
#[inline(never)]
fn measurement_begins(path: &str) {
    black_box(path);
}

/// Callgrind dumps the counters when this is entered
/// (`--dump-before=cairn_instructions::measurement_ends`); see
/// [`measurement_begins`].
#[inline(never)]
fn measurement_ends(units: u64) -> u64 {
    black_box(units)
}
