//! The simulated world: the stores, the links between them (topology and
//! filters), the faults a seed turns on, and what the run observed —
//! everything the links' sources and sinks reach through one lock.
//!
//! One seed draws the whole shape of a run ([`Config::draw`]): 2 to 6
//! stores, a topology (chain, stars, ring, rings both ways, every pair,
//! or a random graph that may hold two links between the same stores),
//! a filter per link, the writers' volume and how often their facts name
//! predecessors, the fault rates and the weights of the scheduler's
//! events.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use cairn_fact::{CanonicalFact, Hash};

use super::random::SplitMix64;
use super::store::MemoryStore;

/// The types local writers write (two families share a name, `x`, so a
/// pattern like `*.x` cuts across them).
pub const FACT_TYPES: [&str; 5] = ["A.x", "A.y", "B.x", "B.y", "C.z"];

/// The patterns a link's filter is drawn from.
pub const FILTER_PATTERNS: [&str; 8] = ["*", "A.*", "B.x", "C.*", "A.y", "*.x", "B.*", "*"];

/// A link: it follows `source`'s log into `target`, facts whose type
/// matches one of `types`.
#[derive(Clone, Debug)]
pub struct LinkDefinition {
    /// The store read from.
    pub source: usize,
    /// The store written to.
    pub target: usize,
    /// Its type patterns.
    pub types: Vec<String>,
}

/// The shape of the link graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// 0 → 1 → … → n−1 (each edge's direction drawn).
    Chain,
    /// 0 → every other store.
    StarOut,
    /// Every other store → 0.
    StarIn,
    /// 0 → 1 → … → n−1 → 0.
    Ring,
    /// A ring with links both ways (A ↔ B for two stores).
    RingBothWays,
    /// Every ordered pair.
    Complete,
    /// Each ordered pair with some probability, sometimes twice.
    Random,
}

const TOPOLOGIES: [Topology; 7] = [
    Topology::Chain,
    Topology::StarOut,
    Topology::StarIn,
    Topology::Ring,
    Topology::RingBothWays,
    Topology::Complete,
    Topology::Random,
];

/// Fault rates in per mille (of calls), and message delays.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// A call to the source fails (the network cut it).
    pub source_fails: u64,
    /// A page examines fewer entries than asked (a short page).
    pub short_pages: u64,
    /// A page answers from an older state of the source's log (a
    /// duplicated or delayed answer), never older than what the link
    /// already saw.
    pub stale_pages: u64,
    /// A page answers its entries out of order (garbage the link must
    /// refuse).
    pub garbled_pages: u64,
    /// The source answers "not found" for a fact it holds.
    pub lies: u64,
    /// A write or a save to the receiving store fails.
    pub sink_fails: u64,
    /// Polls a message may wait before it is handled, and again before
    /// its answer arrives, at most.
    pub delay_polls_max: u64,
}

/// Events of the chaotic phase that a seed may weigh differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Polls one in-flight link attempt once.
    Poll,
    /// Starts an attempt of an idle link (verify when needed, then step).
    Start,
    /// A local writer writes a fact (unsynced).
    Write,
    /// A store syncs its local writes.
    Sync,
    /// A link's network is cut, or healed.
    Partition,
    /// A link's runner crashes at whatever await it is (its follower is
    /// dropped; it restarts from the saved progress).
    CrashRunner,
    /// A link's runner loses its claim but goes on (a zombie whose saves
    /// are refused) while a new runner starts.
    Zombie,
    /// A store crashes: unsynced local writes are lost (a prefix may
    /// survive), its runners die, it stays down a while.
    CrashStore,
}

const EVENT_WEIGHTS: [(Event, u64, bool); 8] = [
    (Event::Poll, 400, false),
    (Event::Start, 120, false),
    (Event::Write, 60, false),
    (Event::Sync, 40, false),
    (Event::Partition, 10, true),
    (Event::CrashRunner, 8, true),
    (Event::Zombie, 5, true),
    (Event::CrashStore, 5, true),
];

/// The shape of one run, drawn from its seed.
#[derive(Clone, Debug)]
pub struct Config {
    /// Stores.
    pub n_stores: usize,
    /// The topology's shape.
    pub topology: Topology,
    /// The links.
    pub links: Vec<LinkDefinition>,
    /// Local writes over the whole run.
    pub n_writes: usize,
    /// Predecessors a local write names, at most.
    pub predecessors_max: usize,
    /// Events of the chaotic phase.
    pub n_events: usize,
    /// Fault rates of the chaotic phase.
    pub faults: Faults,
    /// How often each event happens in the chaotic phase.
    pub event_weights: Vec<(Event, u64)>,
    /// The followers' page size.
    pub page_facts_max: usize,
    /// The followers' predecessor fetches in flight.
    pub fetches_in_flight_max: usize,
}

impl Config {
    /// Draws a configuration.
    pub fn draw(random: &mut SplitMix64) -> Config {
        let n_stores = random.in_range(2, 6) as usize;
        let topology = TOPOLOGIES[random.index(TOPOLOGIES.len())];
        let links = draw_links(random, n_stores, topology);
        let faulty = random.chance(850);
        let mut rate = |max: u64| {
            if faulty {
                random.in_range(0, max)
            } else {
                0
            }
        };
        let faults = Faults {
            source_fails: rate(150),
            short_pages: rate(300),
            stale_pages: rate(200),
            garbled_pages: rate(30),
            lies: rate(30),
            sink_fails: rate(100),
            delay_polls_max: rate(4),
        };
        Config {
            n_stores,
            topology,
            links,
            n_writes: random.in_range(5, 120) as usize,
            predecessors_max: random.in_range(0, 3) as usize,
            n_events: random.in_range(200, 3_000) as usize,
            faults,
            event_weights: EVENT_WEIGHTS
                .iter()
                .map(|(event, weight, optional)| {
                    (*event, weight * random.in_range(u64::from(!optional), 3))
                })
                .collect(),
            page_facts_max: random.in_range(1, 8) as usize,
            fetches_in_flight_max: random.in_range(1, 4) as usize,
        }
    }
}

fn draw_filter(random: &mut SplitMix64) -> Vec<String> {
    let n_patterns = random.in_range(1, 2) as usize;
    (0..n_patterns)
        .map(|_| FILTER_PATTERNS[random.index(FILTER_PATTERNS.len())].to_string())
        .collect()
}

fn draw_links(random: &mut SplitMix64, n_stores: usize, topology: Topology) -> Vec<LinkDefinition> {
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    match topology {
        Topology::Chain => {
            for store in 0..n_stores - 1 {
                if random.chance(500) {
                    pairs.push((store, store + 1));
                } else {
                    pairs.push((store + 1, store));
                }
            }
        }
        Topology::StarOut => pairs.extend((1..n_stores).map(|store| (0, store))),
        Topology::StarIn => pairs.extend((1..n_stores).map(|store| (store, 0))),
        Topology::Ring => pairs.extend((0..n_stores).map(|store| (store, (store + 1) % n_stores))),
        Topology::RingBothWays => {
            for store in 0..n_stores {
                let next = (store + 1) % n_stores;
                if n_stores == 2 && store == 1 {
                    break; // A ↔ B once, not twice
                }
                pairs.push((store, next));
                pairs.push((next, store));
            }
        }
        Topology::Complete => {
            for source in 0..n_stores {
                for target in 0..n_stores {
                    if source != target {
                        pairs.push((source, target));
                    }
                }
            }
        }
        Topology::Random => {
            for source in 0..n_stores {
                for target in 0..n_stores {
                    if source != target && random.chance(350) {
                        pairs.push((source, target));
                        if random.chance(100) {
                            pairs.push((source, target));
                        }
                    }
                }
            }
            if pairs.is_empty() {
                pairs.push((0, 1));
            }
        }
    }
    pairs
        .into_iter()
        .map(|(source, target)| LinkDefinition {
            source,
            target,
            types: draw_filter(random),
        })
        .collect()
}

/// What the scheduler and the network know of a link.
#[derive(Debug)]
pub struct LinkState {
    /// Its definition.
    pub definition: LinkDefinition,
    /// Bumped when a runner loses the link (a zombie): the sink refuses
    /// saves of older generations.
    pub generation: u64,
    /// Whether its network is cut.
    pub partitioned: bool,
    /// The highest head any answer to this link carried: a stale page is
    /// never older (a link never sees the source's log shrink).
    pub seen_head: u64,
}

/// Faults injected into one follower's calls that make some errors
/// expected.
#[derive(Clone, Copy, Debug, Default)]
pub struct Injected {
    /// A page was garbled (`SourceError::Invalid` is expected).
    pub garbled: bool,
    /// The source lied that it lacks a fact (`PredecessorUnavailable` is
    /// expected).
    pub lied: bool,
}

/// Negative controls: ways to break the receiving store on purpose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Breakage {
    /// None: the store keeps its contract.
    #[default]
    None,
    /// The first batch a link writes loses its last fact silently (still
    /// counted as stored).
    DropsOneFact,
    /// Stores accept facts whose predecessors they lack.
    AcceptsMissingPredecessors,
}

/// Everything shared between the scheduler and the links' sources and
/// sinks.
#[derive(Debug)]
pub struct World {
    /// The run's randomness (scheduler and network draw from it in one
    /// deterministic order).
    pub random: SplitMix64,
    /// The stores.
    pub stores: Vec<MemoryStore>,
    /// The links.
    pub links: Vec<LinkState>,
    /// Current fault rates (zero after heal).
    pub faults: Faults,
    /// Faults injected per follower since its last failed attempt.
    pub injected: BTreeMap<u64, Injected>,
    /// Every fact any writer made, lost ones included.
    pub created: HashMap<Hash, CanonicalFact>,
    /// Invariant violations seen while running.
    pub violations: Vec<String>,
    /// The negative control in force.
    pub breakage: Breakage,
    /// Whether `Breakage::DropsOneFact` dropped its fact.
    pub dropped: Option<Hash>,
    /// How often each path of the model was taken (the sweep checks that
    /// the seeds exercise every one).
    pub tally: BTreeMap<&'static str, u64>,
}

/// Violations kept per run, at most (the first ones tell the story).
const VIOLATIONS_KEPT_MAX: usize = 20;

impl World {
    /// A world with the stores and links of `config`.
    pub fn new(config: &Config, random: SplitMix64, breakage: Breakage) -> World {
        let mut stores: Vec<MemoryStore> = (0..config.n_stores)
            .map(|store| MemoryStore::new(format!("store-{store}")))
            .collect();
        if breakage == Breakage::AcceptsMissingPredecessors {
            for store in &mut stores {
                store.accepts_missing_predecessors = true;
            }
        }
        World {
            random,
            stores,
            links: config
                .links
                .iter()
                .map(|definition| LinkState {
                    definition: definition.clone(),
                    generation: 0,
                    partitioned: false,
                    seen_head: 0,
                })
                .collect(),
            faults: config.faults,
            injected: BTreeMap::new(),
            created: HashMap::new(),
            violations: Vec::new(),
            breakage,
            dropped: None,
            tally: BTreeMap::new(),
        }
    }

    /// Records an invariant violation.
    pub fn violation(&mut self, detail: String) {
        if self.violations.len() < VIOLATIONS_KEPT_MAX {
            self.violations.push(detail);
        }
    }

    /// Counts one pass through `path`.
    pub fn count(&mut self, path: &'static str) {
        *self.tally.entry(path).or_default() += 1;
    }

    /// Marks a fault injected into `follower`'s calls.
    pub fn inject(&mut self, follower: u64, mark: impl FnOnce(&mut Injected)) {
        mark(self.injected.entry(follower).or_default());
    }
}

/// The world behind its lock, as sources and sinks hold it.
pub type SharedWorld = Arc<Mutex<World>>;

/// Locks the world (a panic elsewhere already fails the run, so a
/// poisoned lock is taken as it is).
pub fn lock(world: &SharedWorld) -> MutexGuard<'_, World> {
    world
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
