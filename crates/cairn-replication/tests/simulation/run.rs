//! The scheduler: runs one seed — the chaotic phase, the heal, the
//! oracle — driving the real `Follower` through the simulated network.
//!
//! The executor is a loop, not a runtime: each link's runner is at most
//! one in-flight attempt (a boxed future: verify when the link is not
//! verified, then one step; on failure, record `last_error` and save it,
//! as the server's runner does), and every event of the chaotic phase is
//! drawn from the seed: poll one in-flight attempt once (the network's
//! delays make a call take several polls, so attempts of different links
//! interleave at every await, and the calls inside one step — the
//! read-ahead beside the write, the predecessor fetches — complete in a
//! seeded order), start an idle link's next attempt, write or sync
//! locally, cut or heal a link's network, crash a runner (its attempt is
//! dropped at whatever await it stands; the link restarts from the
//! progress its store saved), turn a runner into a zombie (it runs on,
//! its saves refused, while a new runner starts), or crash a store (its
//! unsynced local writes lost but a prefix, its runners gone, down a
//! while). Nothing depends on the wall clock or on hash-map order, so a
//! seed replays exactly.
//!
//! The heal: faults off, partitions healed, stores up and synced; the
//! in-flight attempts finish; then every link steps in a seeded order,
//! round after round, until two whole rounds in a row move nothing (a
//! follower may still hold a page it read ahead before the heal: the
//! first round uses it, and a failure on a garbled one counts as a move).
//! Then the oracle.

use std::collections::BTreeMap;
use std::task::{Context, Poll};

use cairn_fact::{parse_json, CanonicalFact, JSON_DEPTH_MAX};
use cairn_replication::{Follower, FollowerOptions, LinkError, Sink, StepOutcome};
use futures_util::future::BoxFuture;
use futures_util::task::noop_waker_ref;

use super::network::{LinkSink, LinkSource};
use super::oracle;
use super::random::SplitMix64;
use super::world::{lock, Breakage, Config, Event, Faults, SharedWorld, World, FACT_TYPES};

/// The follower the simulation drives: the real one.
type SimFollower = Follower<LinkSource, LinkSink>;

/// Heal rounds at most before the run counts as not converging.
const HEAL_ROUNDS_MAX: usize = 2_000;
/// Polls one attempt may take after heal, at most.
const ATTEMPT_POLLS_MAX: usize = 100_000;
/// The simulated clock's start (ms since the Unix epoch).
const START_MS: u64 = 1_700_000_000_000;

/// How one attempt ended.
struct Finished {
    follower: SimFollower,
    result: Result<StepOutcome, LinkError>,
    /// The runner stopped: a save answered that the link is no longer
    /// its own.
    stopped: bool,
}

/// One in-flight attempt.
struct Task {
    /// The follower's identity.
    follower: u64,
    /// The link.
    link: usize,
    /// Whether the runner lost the link (its saves are refused).
    zombie: bool,
    future: BoxFuture<'static, Finished>,
}

/// A link's runner between attempts.
#[derive(Default)]
struct Runner {
    /// The follower kept between attempts (as the server's runner keeps
    /// it), with its identity; `None` after a crash.
    follower: Option<(u64, SimFollower)>,
    /// Whether the bookmark was checked since the last failure.
    verified: bool,
    /// The follower whose attempt is in flight.
    in_flight: Option<u64>,
}

/// What happened in a run, for reports and the replay check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Local writes made durable.
    pub local_writes: usize,
    /// Local writes lost in crashes.
    pub writes_lost: usize,
    /// Attempts that succeeded.
    pub steps_ok: usize,
    /// Attempts that failed (an expected failure, given the faults).
    pub steps_failed: usize,
    /// Runners crashed.
    pub runner_crashes: usize,
    /// Runners turned into zombies.
    pub zombies: usize,
    /// Stores crashed.
    pub store_crashes: usize,
    /// Facts the links stored that were new to their store.
    pub facts_replicated: u64,
    /// Rounds the heal took.
    pub heal_rounds: usize,
}

/// The outcome of one run.
#[derive(Debug)]
pub struct Report {
    /// The run's shape.
    pub config: Config,
    /// What happened.
    pub counters: Counters,
    /// Every store's final log, as hashes in `seq` order.
    pub logs: Vec<Vec<cairn_fact::Hash>>,
    /// Violations seen while running, then the oracle's findings.
    pub violations: Vec<String>,
    /// How often each path of the model was taken.
    pub tally: BTreeMap<&'static str, u64>,
}

impl Report {
    /// The run's shape and counters, for a failure message.
    pub fn summary(&self) -> String {
        let links: Vec<String> = self
            .config
            .links
            .iter()
            .map(|link| format!("{}→{} {:?}", link.source, link.target, link.types))
            .collect();
        format!(
            "{} stores, {:?}: {}; faults {:?}; page {} facts; {:?}",
            self.config.n_stores,
            self.config.topology,
            links.join(", "),
            self.config.faults,
            self.config.page_facts_max,
            self.counters
        )
    }
}

struct Simulation {
    world: SharedWorld,
    config: Config,
    runners: Vec<Runner>,
    tasks: Vec<Task>,
    next_follower: u64,
    writes_made: usize,
    counters: Counters,
    now_ms: u64,
}

/// Runs `seed` with stores that keep their contract.
pub fn simulate(seed: u64) -> Report {
    simulate_with(seed, Breakage::None)
}

/// Runs `seed` with the drawn configuration and `breakage`.
pub fn simulate_with(seed: u64, breakage: Breakage) -> Report {
    let mut random = SplitMix64::new(seed);
    let config = Config::draw(&mut random);
    run_config(config, random, breakage)
}

/// Runs `config`, drawing every decision from `random`.
pub fn run_config(config: Config, random: SplitMix64, breakage: Breakage) -> Report {
    let world = World::new(&config, random, breakage);
    let mut simulation = Simulation {
        world: std::sync::Arc::new(std::sync::Mutex::new(world)),
        runners: (0..config.links.len()).map(|_| Runner::default()).collect(),
        config,
        tasks: Vec::new(),
        next_follower: 0,
        writes_made: 0,
        counters: Counters::default(),
        now_ms: START_MS,
    };
    simulation.chaos();
    simulation.heal();
    let world = lock(&simulation.world);
    let mut violations = world.violations.clone();
    violations.extend(oracle::check(&world));
    let mut counters = simulation.counters.clone();
    counters.local_writes = world
        .stores
        .iter()
        .map(|store| store.local_writes.len())
        .sum();
    Report {
        config: simulation.config.clone(),
        counters,
        logs: world
            .stores
            .iter()
            .map(|store| store.log().iter().map(|fact| fact.hash).collect())
            .collect(),
        violations,
        tally: world.tally.clone(),
    }
}

/// The attempt the server's runner makes: verify when needed, then one
/// step; on failure record the error and save it.
async fn attempt(mut follower: SimFollower, verify_first: bool, now_ms: u64) -> Finished {
    let verified = if verify_first {
        follower.verify().await
    } else {
        Ok(())
    };
    let result = match verified {
        Ok(()) => follower.step(now_ms).await,
        Err(error) => Err(error),
    };
    let mut stopped = matches!(result, Err(LinkError::Superseded));
    if let Err(error) = &result {
        if !stopped {
            follower.progress_mut().last_error = Some(error.to_string());
            if let Ok(false) = Sink::save(follower.sink(), follower.progress()).await {
                stopped = true;
            }
        }
    }
    Finished {
        follower,
        result,
        stopped,
    }
}

fn poll_once(future: &mut BoxFuture<'static, Finished>) -> Poll<Finished> {
    let mut context = Context::from_waker(noop_waker_ref());
    future.as_mut().poll(&mut context)
}

impl Simulation {
    fn draw(&self, bound: usize) -> usize {
        lock(&self.world).random.index(bound)
    }

    fn chaos(&mut self) {
        let total_weight: u64 = self.config.event_weights.iter().map(|(_, w)| w).sum();
        for _ in 0..self.config.n_events {
            self.now_ms += 1;
            for store in &mut lock(&self.world).stores {
                store.down_ticks = store.down_ticks.saturating_sub(1);
            }
            let mut roll = lock(&self.world).random.below(total_weight.max(1));
            let mut event = Event::Poll;
            for (candidate, weight) in &self.config.event_weights {
                if roll < *weight {
                    event = *candidate;
                    break;
                }
                roll -= weight;
            }
            self.handle(event);
        }
    }

    fn handle(&mut self, event: Event) {
        let n_links = self.config.links.len();
        match event {
            Event::Poll => {
                if !self.tasks.is_empty() {
                    let task = self.draw(self.tasks.len());
                    self.poll_task(task);
                }
            }
            Event::Start => {
                let link = self.draw(n_links);
                self.start(link);
            }
            Event::Write => self.write(),
            Event::Sync => {
                let store = self.draw(self.config.n_stores);
                let mut world = lock(&self.world);
                if world.stores[store].is_up() {
                    world.stores[store].sync(usize::MAX);
                }
            }
            Event::Partition => {
                let link = self.draw(n_links);
                let mut world = lock(&self.world);
                world.links[link].partitioned = !world.links[link].partitioned;
            }
            Event::CrashRunner => {
                let link = self.draw(n_links);
                self.crash_runner(link);
            }
            Event::Zombie => {
                let link = self.draw(n_links);
                if let Some(follower) = self.runners[link].in_flight.take() {
                    for task in &mut self.tasks {
                        if task.follower == follower {
                            task.zombie = true;
                        }
                    }
                    self.runners[link].follower = None;
                    self.runners[link].verified = false;
                    lock(&self.world).links[link].generation += 1;
                    self.counters.zombies += 1;
                }
            }
            Event::CrashStore => {
                let store = self.draw(self.config.n_stores);
                for link in 0..n_links {
                    if self.config.links[link].target == store {
                        self.crash_runner(link);
                        self.tasks.retain(|task| task.link != link);
                    }
                }
                let mut world = lock(&self.world);
                let n_pending = world.stores[store].n_pending();
                let n_synced = world.random.in_range(0, n_pending as u64) as usize;
                let down_ticks = world.random.in_range(0, 40);
                world.stores[store].crash(n_synced, down_ticks);
                self.counters.writes_lost += n_pending - n_synced;
                self.counters.store_crashes += 1;
            }
        }
    }

    /// A local write at a random store that is up: a fact of a random
    /// type naming up to `predecessors_max` facts the store holds.
    fn write(&mut self) {
        if self.writes_made >= self.config.n_writes {
            return;
        }
        let mut world = lock(&self.world);
        let store = world.random.index(self.config.n_stores);
        if !world.stores[store].is_up() {
            return;
        }
        let type_name = FACT_TYPES[world.random.index(FACT_TYPES.len())];
        let candidates: Vec<String> = world.stores[store]
            .writable_predecessors()
            .map(|fact| fact.hash.to_string())
            .collect();
        let n_predecessors = if candidates.is_empty() {
            0
        } else {
            world
                .random
                .in_range(0, self.config.predecessors_max as u64) as usize
        };
        let mut named: Vec<String> = Vec::new();
        for _ in 0..n_predecessors {
            let candidate = format!("\"{}\"", candidates[world.random.index(candidates.len())]);
            if !named.contains(&candidate) {
                named.push(candidate);
            }
        }
        let predecessors = if named.is_empty() {
            String::new()
        } else {
            format!(r#""of":[{}]"#, named.join(","))
        };
        let json = format!(
            r#"{{"type":"{type_name}","fields":{{"origin":"{}","n":{}}},"predecessors":{{{predecessors}}}}}"#,
            world.stores[store].id, self.writes_made,
        );
        let fact = CanonicalFact::from_value(
            &parse_json(json.as_bytes(), JSON_DEPTH_MAX).expect("the simulation writes JSON"),
            1 << 20,
        )
        .expect("the simulation writes valid facts");
        world.created.insert(fact.hash, fact.clone());
        world.stores[store].write_local(fact);
        self.writes_made += 1;
    }

    fn new_follower(&mut self, link: usize) -> (u64, SimFollower) {
        let world = lock(&self.world);
        let definition = &world.links[link].definition;
        let target = &world.stores[definition.target];
        let progress = target
            .saved_progress
            .get(&link)
            .cloned()
            .unwrap_or_default();
        let follower = self.next_follower;
        self.next_follower += 1;
        let source = LinkSource {
            world: self.world.clone(),
            link,
            follower,
        };
        let sink = LinkSink {
            world: self.world.clone(),
            link,
            generation: world.links[link].generation,
            store_id: target.id.clone(),
        };
        let options = FollowerOptions {
            page_facts_max: self.config.page_facts_max,
            wait_ms: 0,
            fetches_in_flight_max: self.config.fetches_in_flight_max,
            ..FollowerOptions::default()
        };
        let types = definition.types.clone();
        (
            follower,
            Follower::new(source, sink, types, progress, options),
        )
    }

    /// Starts the link's next attempt unless one is in flight or its
    /// store is down.
    fn start(&mut self, link: usize) -> bool {
        let target = self.config.links[link].target;
        if self.runners[link].in_flight.is_some() || !lock(&self.world).stores[target].is_up() {
            return false;
        }
        let (follower_id, follower) = match self.runners[link].follower.take() {
            Some(kept) => kept,
            None => {
                self.runners[link].verified = false;
                self.new_follower(link)
            }
        };
        let future = Box::pin(attempt(follower, !self.runners[link].verified, self.now_ms));
        self.tasks.push(Task {
            follower: follower_id,
            link,
            zombie: false,
            future,
        });
        self.runners[link].in_flight = Some(follower_id);
        true
    }

    /// Polls task `index` once; answers its outcome if it finished.
    fn poll_task(&mut self, index: usize) -> Option<Result<StepOutcome, LinkError>> {
        let Poll::Ready(finished) = poll_once(&mut self.tasks[index].future) else {
            return None;
        };
        let task = self.tasks.swap_remove(index);
        // A garbled page may be one read ahead by an earlier, successful
        // step: the faults injected into a follower count until one of
        // its attempts fails (which drops the page read ahead).
        let injected = {
            let mut world = lock(&self.world);
            if finished.result.is_err() {
                world.injected.remove(&task.follower)
            } else {
                world.injected.get(&task.follower).copied()
            }
            .unwrap_or_default()
        };
        let link = task.link;
        let describe = |detail: &str| {
            let definition = &self.config.links[link];
            format!(
                "link {link} ({} → {}, {:?}){}: {detail}",
                definition.source,
                definition.target,
                definition.types,
                if task.zombie { ", a zombie runner" } else { "" }
            )
        };
        let unexpected = match &finished.result {
            Ok(outcome) => {
                self.counters.facts_replicated += outcome.facts_inserted;
                None
            }
            Err(LinkError::Source(cairn_replication::SourceError::Unavailable(_)))
            | Err(LinkError::Sink(cairn_replication::SinkError::Unavailable(_))) => None,
            Err(LinkError::Source(cairn_replication::SourceError::Invalid(_)))
                if injected.garbled =>
            {
                None
            }
            Err(LinkError::PredecessorUnavailable { .. }) if injected.lied => None,
            Err(LinkError::Superseded) if task.zombie => None,
            Err(error) => Some(format!("an unexpected failure: {error}")),
        };
        if let Some(detail) = unexpected {
            let message = describe(&detail);
            lock(&self.world).violation(message);
        }
        if finished.stopped && !task.zombie {
            let message = describe("the runner was told the link is no longer its own");
            lock(&self.world).violation(message);
        }
        match finished.result {
            Ok(_) => self.counters.steps_ok += 1,
            Err(_) => self.counters.steps_failed += 1,
        }
        if !task.zombie {
            let runner = &mut self.runners[link];
            runner.in_flight = None;
            runner.verified = finished.result.is_ok();
            runner.follower = Some((task.follower, finished.follower));
        }
        Some(finished.result)
    }

    /// The link's runner dies: its attempt is dropped wherever it
    /// stands, and the next one starts from the saved progress.
    fn crash_runner(&mut self, link: usize) {
        let runner = &mut self.runners[link];
        if let Some(follower) = runner.in_flight.take() {
            self.tasks.retain(|task| task.follower != follower);
            lock(&self.world).count("runner dropped mid-attempt");
        }
        runner.follower = None;
        runner.verified = false;
        self.counters.runner_crashes += 1;
    }

    fn heal(&mut self) {
        {
            let mut world = lock(&self.world);
            world.faults = Faults::default();
            for link in &mut world.links {
                link.partitioned = false;
            }
            for store in &mut world.stores {
                store.down_ticks = 0;
                store.sync(usize::MAX);
            }
        }
        // What is in flight finishes (zombies included).
        let mut polls = 0;
        while !self.tasks.is_empty() {
            let task = self.draw(self.tasks.len());
            self.poll_task(task);
            polls += 1;
            if polls > ATTEMPT_POLLS_MAX {
                lock(&self.world).violation("attempts in flight never finished after heal".into());
                return;
            }
        }
        let n_links = self.config.links.len();
        let mut quiet_rounds = 0;
        for round in 1..=HEAL_ROUNDS_MAX {
            self.counters.heal_rounds = round;
            let mut order: Vec<usize> = (0..n_links).collect();
            lock(&self.world).random.shuffle(&mut order);
            let mut moved = false;
            for link in order {
                self.now_ms += 1;
                let before = self.bookmark_of(link);
                if !self.start(link) {
                    lock(&self.world).violation(format!("link {link} cannot start after heal"));
                    return;
                }
                let index = self.tasks.len() - 1;
                let mut result = None;
                for _ in 0..ATTEMPT_POLLS_MAX {
                    result = self.poll_task(index);
                    if result.is_some() {
                        break;
                    }
                }
                match result {
                    Some(Ok(outcome)) => {
                        let after = self.bookmark_of(link);
                        if outcome.facts_inserted > 0 || after != before || !outcome.caught_up {
                            moved = true;
                        }
                    }
                    // Only a failure the chaos explains (a garbled page read
                    // ahead before the heal); `poll_task` recorded any other.
                    Some(Err(_)) => moved = true,
                    None => {
                        lock(&self.world)
                            .violation(format!("link {link}'s step never finished after heal"));
                        return;
                    }
                }
            }
            // Two quiet rounds: a step of the first may have used a page
            // read ahead long before (its head old, so "caught up"), and
            // such a step reads nothing ahead; the second reads afresh.
            quiet_rounds = if moved { 0 } else { quiet_rounds + 1 };
            if quiet_rounds == 2 {
                return;
            }
        }
        lock(&self.world).violation(format!(
            "the links still moved after {HEAL_ROUNDS_MAX} rounds of heal"
        ));
    }

    fn bookmark_of(&self, link: usize) -> u64 {
        match &self.runners[link].follower {
            Some((_, follower)) => follower.progress().bookmark.after,
            None => {
                let world = lock(&self.world);
                let target = self.config.links[link].target;
                world.stores[target]
                    .saved_progress
                    .get(&link)
                    .map_or(0, |progress| progress.bookmark.after)
            }
        }
    }
}
