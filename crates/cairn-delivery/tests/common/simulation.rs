//! The seeded simulation of one subscription: a scheduler that drives the
//! delivery state machine the way the server's runtime does, under faults,
//! and records what happened as a history for the invariant checkers.
//!
//! One seed fixes everything: the subscription's definition (attempts,
//! lease, backoff, ordering key and per-key window, rate limit), the
//! publishers, the consumers and every fault. The runtime model mirrors
//! `cairn-server`'s memory engine: a pull first processes due events and
//! admits new matching facts from the log (without waiting for the disk),
//! then leases; ack, nack, pause, replay and discard are answered only after
//! a barrier made their changes durable; extend writes nothing.
//!
//! Faults: consumers that vanish with their leases, that act late or with
//! stale, forged or malformed tokens; clock jumps forward and backward (the
//! state machine takes the time as an argument, so a wall clock that steps
//! back reaches it unchanged); server crashes that keep only a prefix of the
//! changes not yet synced and rebuild the state from the disk, sometimes in
//! the middle of an answered operation. After the faults, a drain phase lets
//! a well-behaved consumer ack whatever is delivered until nothing is left.

use std::collections::BTreeSet;

use cairn_delivery::{
    AdmittedMessage, Backoff, Change, Counters, LeaseToken, MessageAttributes, MessageStatus,
    SplitMix64, SubscriptionDefinition, SubscriptionState, TokenKey, TokenStatus,
};
use cairn_fact::Hash;

use super::model_store::ModelStore;

/// Simulated time starts here (ms since the Unix epoch), far enough from
/// zero that backward jumps never reach it.
const START_MS: u64 = 1_700_000_000_000;
/// Rounds of the drain phase at most; each one leases something or moves
/// time to the state machine's next event.
const DRAIN_ROUNDS_MAX: usize = 5_000;
/// Messages a consumer asks for per pull in the drain phase.
const DRAIN_PULL_MAX: usize = 50;
/// Spent tokens a consumer remembers for stale acks.
const SPENT_TOKENS_KEPT: usize = 16;

/// What one step of the fault phase does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Publishers append matching facts.
    Publish,
    /// A consumer pulls.
    Pull,
    /// A consumer acks.
    Ack,
    /// A consumer nacks.
    Nack,
    /// A consumer extends leases.
    Extend,
    /// A consumer dies with its leases.
    Vanish,
    /// The runtime's timer fires.
    Tick,
    /// The clock moves on a little.
    ClockForward,
    /// The clock jumps beyond leases and backoffs.
    ClockLeap,
    /// The clock steps back.
    ClockBack,
    /// An operator pauses or resumes.
    Pause,
    /// An operator replays dead letters.
    Replay,
    /// An operator discards a dead letter.
    Discard,
    /// The server crashes and restarts.
    Crash,
    /// Another write syncs the journal.
    Sync,
}

/// Each step's base weight in per mille, and whether a seed may leave it
/// out. A seed scales every weight by 0 to 3 (1 to 3 for the steps no run
/// can do without), so some runs crash often and others never, some step
/// the clock back and others do not, and so on.
const STEP_WEIGHTS: [(Step, u64, bool); 15] = [
    (Step::Publish, 100, false),
    (Step::Pull, 250, false),
    (Step::Ack, 150, false),
    (Step::Nack, 70, true),
    (Step::Extend, 50, true),
    (Step::Vanish, 30, true),
    (Step::Tick, 50, true),
    (Step::ClockForward, 150, false),
    (Step::ClockLeap, 20, true),
    (Step::ClockBack, 30, true),
    (Step::Pause, 20, true),
    (Step::Replay, 20, true),
    (Step::Discard, 15, true),
    (Step::Crash, 20, true),
    (Step::Sync, 25, true),
];

/// The shape of one simulated run, drawn from its seed.
#[derive(Clone, Debug)]
pub struct Config {
    /// The definition's `max_attempts`.
    pub max_attempts: u32,
    /// The definition's `lease_ms`.
    pub lease_ms: u64,
    /// The definition's backoff.
    pub backoff: Backoff,
    /// `Some(window)` when the subscription has an ordering key, with its
    /// `max_in_flight_per_key`.
    pub max_in_flight_per_key: Option<u32>,
    /// The definition's `rate_limit_per_s`.
    pub rate_limit_per_s: Option<u32>,
    /// Consumers pulling concurrently.
    pub n_consumers: usize,
    /// Distinct ordering keys among the messages.
    pub n_keys: u8,
    /// Messages published in the whole run.
    pub n_messages: usize,
    /// Steps of the fault phase.
    pub n_fault_steps: usize,
    /// How often each step happens in the fault phase.
    pub step_weights: Vec<(Step, u64)>,
}

impl Config {
    /// Draws a configuration.
    pub fn draw(random: &mut SplitMix64) -> Config {
        let backoff_initial_ms = random.in_range(1, 300);
        Config {
            max_attempts: random.in_range(1, 5) as u32,
            lease_ms: random.in_range(100, 2_000),
            backoff: Backoff {
                initial_ms: backoff_initial_ms,
                max_ms: random.in_range(backoff_initial_ms, 3_000),
            },
            max_in_flight_per_key: match random.in_range(0, 7) {
                0 | 1 => None,
                2 => Some(2),
                3 => Some(3),
                _ => Some(1),
            },
            rate_limit_per_s: (random.in_range(0, 9) < 3).then(|| random.in_range(1, 40) as u32),
            n_consumers: random.in_range(1, 4) as usize,
            n_keys: random.in_range(1, 6) as u8,
            n_messages: random.in_range(10, 150) as usize,
            n_fault_steps: random.in_range(100, 800) as usize,
            step_weights: STEP_WEIGHTS
                .iter()
                .map(|(step, weight, optional)| {
                    let factor = random.in_range(u64::from(!optional), 3);
                    (*step, weight * factor)
                })
                .collect(),
        }
    }

    /// The subscription definition, parsed and validated like one sent to
    /// the API.
    pub fn definition(&self) -> SubscriptionDefinition {
        let mut json = format!(
            r#"{{"type":"Sim.Message","lease_ms":{},"max_attempts":{},"backoff":{{"initial_ms":{},"max_ms":{}}}"#,
            self.lease_ms, self.max_attempts, self.backoff.initial_ms, self.backoff.max_ms
        );
        if let Some(window) = self.max_in_flight_per_key {
            json += &format!(r#","ordering_key":"key","max_in_flight_per_key":{window}"#);
        }
        if let Some(rate) = self.rate_limit_per_s {
            json += &format!(r#","rate_limit_per_s":{rate}"#);
        }
        json += "}";
        SubscriptionDefinition::from_json(json.as_bytes()).expect("a valid definition")
    }

    /// The lower bound of the jittered backoff after `failed_attempts`
    /// failures: half of `min(max_ms, initial_ms · 2^(n−1))`, computed here
    /// from the documented formula rather than by the crate.
    pub fn backoff_floor_ms(&self, failed_attempts: u32) -> u64 {
        let doublings = failed_attempts.saturating_sub(1).min(40);
        let ceiling = self
            .backoff
            .initial_ms
            .saturating_mul(1 << doublings)
            .min(self.backoff.max_ms);
        ceiling / 2
    }
}

/// What a consumer asked of one token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenOperation {
    /// An ack.
    Ack,
    /// A nack at `now_ms`, with the delay given (else the backoff applies).
    Nack {
        /// When.
        now_ms: u64,
        /// The delay asked for.
        delay_ms: Option<u64>,
    },
    /// An extend at `now_ms`; if it succeeds the lease runs until
    /// `expires_at_ms`.
    Extend {
        /// When.
        now_ms: u64,
        /// The lease's end if extended.
        expires_at_ms: u64,
    },
}

/// One step of a history. `batch` numbers the write that carried an
/// event's changes (`None`: nothing was written); a crash keeps the writes
/// up to its `durable_through_batch`. `answered` says the runtime told the
/// client, which it does only after a barrier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A matching fact was appended to the log (durably).
    Published {
        /// Its position.
        seq: u64,
        /// Its ordering key (`None` when it has none or the subscription
        /// orders nothing).
        key: Option<u8>,
        /// Its `cairn_not_before`.
        not_before_ms: Option<u64>,
    },
    /// Messages entered the subscription's window.
    Admitted {
        /// Their positions.
        seqs: Vec<u64>,
        /// The write.
        batch: Option<u64>,
    },
    /// A pull; its leases follow as `Leased`.
    Pulled {
        /// Who pulled.
        consumer: usize,
        /// When.
        now_ms: u64,
        /// How many it asked for.
        max: usize,
        /// How many it got.
        n_leased: usize,
    },
    /// A message leased to a consumer.
    Leased {
        /// Who holds it.
        consumer: usize,
        /// The message.
        seq: u64,
        /// The token handed out.
        token: LeaseToken,
        /// The attempt the state machine reported.
        attempt: u32,
        /// When.
        now_ms: u64,
        /// When the lease ends unless extended (from the lease asked for).
        expires_at_ms: u64,
    },
    /// The state machine's answer for one token of an ack, nack or extend.
    Answered {
        /// Who asked.
        consumer: usize,
        /// What was asked.
        operation: TokenOperation,
        /// The token sent (`None`: a string that is not a token).
        token: Option<LeaseToken>,
        /// The answer.
        status: TokenStatus,
        /// The write.
        batch: Option<u64>,
        /// Whether the answer reached the consumer.
        answered: bool,
    },
    /// The state machine ended a lease that ran out (a failed attempt).
    LeaseExpired {
        /// The message.
        seq: u64,
        /// Its attempts as recorded.
        attempts: u32,
        /// Whether it became a dead letter.
        dead: bool,
        /// The time of the call that processed it.
        now_ms: u64,
        /// The write.
        batch: Option<u64>,
    },
    /// A message became a dead letter.
    DeadLettered {
        /// The message.
        seq: u64,
        /// Its attempts as recorded.
        attempts: u32,
        /// The write.
        batch: Option<u64>,
        /// Whether a client was told (a nack) rather than nobody (an expiry).
        answered: bool,
    },
    /// The runtime's timer processed due events.
    Advanced {
        /// When.
        now_ms: u64,
    },
    /// Delivery was paused or resumed.
    PauseSet {
        /// The new setting.
        paused: bool,
        /// The write.
        batch: Option<u64>,
        /// Whether the answer reached the client.
        answered: bool,
    },
    /// Dead letters were replayed.
    Replayed {
        /// When.
        now_ms: u64,
        /// The messages asked for by hash, or `None` for every dead letter.
        requested: Option<Vec<u64>>,
        /// `admission_room()` before the replay.
        room: usize,
        /// The count the state machine answered.
        n_replayed: usize,
        /// The messages its changes brought back.
        seqs: Vec<u64>,
        /// The write.
        batch: Option<u64>,
        /// Whether the answer reached the client.
        answered: bool,
    },
    /// A dead letter was discarded.
    Discarded {
        /// The message.
        seq: u64,
        /// The write.
        batch: Option<u64>,
        /// Whether the answer reached the client.
        answered: bool,
    },
    /// The server crashed; writes after `durable_through_batch` are lost.
    Crashed {
        /// The last durable write.
        durable_through_batch: u64,
    },
    /// The server rebuilt the state from the disk.
    Restarted {
        /// When.
        now_ms: u64,
    },
    /// The counters after a step.
    Counted {
        /// As the state machine reports them.
        counters: Counters,
    },
    /// A pull leased nothing; what the state machine said about the future.
    Idle {
        /// When.
        now_ms: u64,
        /// `next_event_at_ms()` right after the pull.
        next_event_at_ms: Option<u64>,
        /// Whether delivery is paused.
        paused: bool,
        /// The counters right after the pull.
        counters: Counters,
    },
}

impl Event {
    /// The time given to the state machine by the call this event records,
    /// for calls that change its state with it.
    pub fn state_now_ms(&self) -> Option<u64> {
        match self {
            Event::Pulled { now_ms, .. }
            | Event::Leased { now_ms, .. }
            | Event::LeaseExpired { now_ms, .. }
            | Event::Advanced { now_ms }
            | Event::Replayed { now_ms, .. }
            | Event::Restarted { now_ms }
            | Event::Answered {
                operation:
                    TokenOperation::Nack { now_ms, .. } | TokenOperation::Extend { now_ms, .. },
                ..
            } => Some(*now_ms),
            _ => None,
        }
    }

    /// Whether this event concerns message `seq`.
    pub fn mentions(&self, seq: u64) -> bool {
        match self {
            Event::Published { seq: other, .. }
            | Event::Leased { seq: other, .. }
            | Event::LeaseExpired { seq: other, .. }
            | Event::DeadLettered { seq: other, .. }
            | Event::Discarded { seq: other, .. } => *other == seq,
            Event::Admitted { seqs, .. } => seqs.contains(&seq),
            Event::Replayed {
                seqs, requested, ..
            } => seqs.contains(&seq) || requested.as_ref().is_some_and(|r| r.contains(&seq)),
            Event::Answered { token, .. } => token.is_some_and(|token| token.seq == seq),
            Event::Crashed { .. } | Event::Restarted { .. } => true,
            _ => false,
        }
    }
}

/// The durable state once the run is over.
#[derive(Clone, Debug, Default)]
pub struct EndState {
    /// Whether the drain phase emptied the subscription.
    pub drained: bool,
    /// The durable cursor.
    pub cursor_seq: u64,
    /// The last position in the log (matching or not).
    pub last_log_seq: u64,
    /// Every durable message record as `(seq, status, attempts)`.
    pub records: Vec<(u64, MessageStatus, u32)>,
}

/// One simulated run.
#[derive(Clone, Debug)]
pub struct Run {
    /// Its seed.
    pub seed: u64,
    /// Its shape.
    pub config: Config,
    /// What happened, in order.
    pub history: Vec<Event>,
    /// Where it ended.
    pub end: EndState,
}

impl Run {
    /// The last events about one message up to `through_index` (crashes
    /// and restarts included), for counterexamples.
    pub fn describe_message(&self, seq: u64, through_index: usize) -> String {
        const SHOWN_MAX: usize = 16;
        let mentions: Vec<String> = self
            .history
            .iter()
            .enumerate()
            .take(through_index.saturating_add(1))
            .filter(|(_, event)| event.mentions(seq))
            .map(|(index, event)| format!("#{index} {event:?}"))
            .collect();
        let skipped = mentions.len().saturating_sub(SHOWN_MAX);
        let shown = mentions[skipped..].join("\n    ");
        format!(
            "\n  config: {:?}\n  last events about message {seq} ({skipped} earlier ones left out):\n    {shown}",
            self.config
        )
    }
}

/// Switches that make the runtime model unsafe, for negative controls.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Answer acks, nacks, pauses, replays and discards without waiting for
    /// their changes to be durable.
    pub skip_answer_barriers: bool,
}

/// Runs one seed with the safe runtime model.
pub fn simulate(seed: u64) -> Run {
    simulate_with(seed, Options::default())
}

/// Runs one seed.
pub fn simulate_with(seed: u64, options: Options) -> Run {
    let mut simulation = Simulation::new(seed, options);
    for _ in 0..simulation.config.n_fault_steps {
        simulation.fault_step();
        let counters = simulation.state.counters(simulation.now_ms);
        simulation.history.push(Event::Counted { counters });
    }
    let drained = simulation.drain();
    simulation.finish(drained)
}

/// A published message, as the log holds it.
#[derive(Clone, Copy, Debug)]
struct LogEntry {
    seq: u64,
    key: Option<u8>,
    not_before_ms: Option<u64>,
}

impl LogEntry {
    fn admitted(&self) -> AdmittedMessage {
        AdmittedMessage {
            seq: self.seq,
            hash: message_hash(self.seq),
            attributes: MessageAttributes {
                key: self.key.map(|key| Hash::of_bytes(&[key])),
                not_before_ms: self.not_before_ms,
            },
        }
    }
}

/// The hash of the fact at `seq` (one fact per seq in the simulation).
pub fn message_hash(seq: u64) -> Hash {
    Hash::of_bytes(&seq.to_be_bytes())
}

#[derive(Debug, Default)]
struct Consumer {
    held: Vec<LeaseToken>,
    spent: Vec<LeaseToken>,
}

impl Consumer {
    fn spend(&mut self, token: LeaseToken) {
        self.held.retain(|held| *held != token);
        if self.spent.len() == SPENT_TOKENS_KEPT {
            self.spent.remove(0);
        }
        self.spent.push(token);
    }
}

struct Simulation {
    seed: u64,
    random: SplitMix64,
    config: Config,
    options: Options,
    now_ms: u64,
    state: SubscriptionState,
    store: ModelStore,
    log: Vec<LogEntry>,
    /// The last position in the log, counting facts that do not match.
    last_log_seq: u64,
    consumers: Vec<Consumer>,
    history: Vec<Event>,
}

impl Simulation {
    fn new(seed: u64, options: Options) -> Simulation {
        let mut random = SplitMix64::new(seed);
        let config = Config::draw(&mut random);
        let state = SubscriptionState::new(
            1,
            "sim".into(),
            config.definition(),
            0,
            START_MS,
            TokenKey::from_seed(random.next_u64()),
        );
        let store = ModelStore::new(vec![Change::Subscription(state.record())]);
        let consumers = (0..config.n_consumers)
            .map(|_| Consumer::default())
            .collect();
        Simulation {
            seed,
            random,
            config,
            options,
            now_ms: START_MS,
            state,
            store,
            log: Vec::new(),
            last_log_seq: 0,
            consumers,
            history: Vec::new(),
        }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.random.in_range(0, 99) < percent
    }

    fn pick(&mut self, n: usize) -> usize {
        self.random.in_range(0, n as u64 - 1) as usize
    }

    fn fault_step(&mut self) {
        let total: u64 = self
            .config
            .step_weights
            .iter()
            .map(|(_, weight)| weight)
            .sum();
        let mut roll = self.random.in_range(0, total - 1);
        let step = self
            .config
            .step_weights
            .iter()
            .find(|(_, weight)| {
                let found = roll < *weight;
                roll = roll.saturating_sub(*weight);
                found
            })
            .map_or(Step::Pull, |(step, _)| *step);
        match step {
            Step::Publish => {
                let n = self.random.in_range(1, 5) as usize;
                self.publish(n);
            }
            Step::Pull => {
                let consumer = self.pick(self.config.n_consumers);
                let max = self.random.in_range(1, 8) as usize;
                let lease_ms = self.chance(20).then(|| self.random.in_range(100, 3_000));
                self.pull(consumer, max, lease_ms);
            }
            Step::Ack => self.settle(false),
            Step::Nack => self.settle(true),
            Step::Extend => self.extend(),
            Step::Vanish => {
                let consumer = self.pick(self.config.n_consumers);
                self.vanish(consumer);
            }
            Step::Tick => self.tick(),
            Step::ClockForward => self.now_ms += self.random.in_range(1, 400),
            Step::ClockLeap => self.now_ms += self.random.in_range(self.config.lease_ms, 20_000),
            Step::ClockBack => self.now_ms -= self.random.in_range(1, 3_000),
            Step::Pause => {
                let interrupted = self.chance(5);
                self.set_paused(!self.state.paused(), interrupted);
            }
            Step::Replay => self.replay(),
            Step::Discard => self.discard(),
            Step::Crash => self.crash(),
            Step::Sync => self.store.barrier(),
        }
    }

    /// The runtime's barrier before answering a client.
    fn answer_barrier(&mut self) {
        if !self.options.skip_answer_barriers {
            self.store.barrier();
        }
    }

    /// Appends up to `n` matching facts (and some that do not match) to the
    /// durable log. A fact append is a synced write that shares the journal
    /// with delivery changes, so it makes the queued ones durable too, unless
    /// they landed in a later group.
    fn publish(&mut self, n: usize) {
        let n = n.min(self.config.n_messages - self.log.len());
        for _ in 0..n {
            self.last_log_seq += self.random.in_range(1, 3);
            let keyed = self.config.max_in_flight_per_key.is_some() && self.chance(85);
            let key =
                keyed.then(|| self.random.in_range(0, u64::from(self.config.n_keys) - 1) as u8);
            let not_before_ms = match self.random.in_range(0, 19) {
                0..=2 => Some(self.now_ms + self.random.in_range(0, 3_000)),
                3 => Some(self.now_ms - self.random.in_range(0, 3_000)),
                _ => None,
            };
            let entry = LogEntry {
                seq: self.last_log_seq,
                key,
                not_before_ms,
            };
            self.log.push(entry);
            self.history.push(Event::Published {
                seq: entry.seq,
                key,
                not_before_ms,
            });
        }
        self.last_log_seq += self.random.in_range(0, 2);
        if self.chance(50) {
            self.store.barrier();
        }
    }

    /// Writes the changes of `advance` (or of `pull`, whose changes all come
    /// from the `advance` it starts with) and records each as the lease
    /// expiry it is: those are the only changes `advance` makes.
    fn record_expiries(&mut self, changes: Vec<Change>) {
        let expiries: Vec<(u64, u32, bool)> = changes
            .iter()
            .filter_map(|change| match change {
                Change::Message { seq, record, .. } => {
                    Some((*seq, record.attempts, record.status == MessageStatus::Dead))
                }
                _ => None,
            })
            .collect();
        let batch = self.store.write(changes);
        for (seq, attempts, dead) in expiries {
            self.history.push(Event::LeaseExpired {
                seq,
                attempts,
                dead,
                now_ms: self.now_ms,
                batch,
            });
            if dead {
                self.history.push(Event::DeadLettered {
                    seq,
                    attempts,
                    batch,
                    answered: false,
                });
            }
        }
    }

    /// The runtime's `catch_up`: due events, then admission of new matching
    /// facts in pages, while the window has room.
    fn catch_up(&mut self) {
        let changes = self.state.advance(self.now_ms);
        self.record_expiries(changes);
        while self.state.cursor_seq() < self.last_log_seq {
            let page_max = self
                .state
                .admission_room()
                .min(self.random.in_range(1, 40) as usize);
            if page_max == 0 {
                break;
            }
            let cursor = self.state.cursor_seq();
            let page: Vec<AdmittedMessage> = self
                .log
                .iter()
                .filter(|entry| entry.seq > cursor)
                .take(page_max)
                .map(LogEntry::admitted)
                .collect();
            let next_seq = match page.last() {
                Some(last) if page.len() == page_max => last.seq,
                _ => self.last_log_seq,
            };
            let seqs = page.iter().map(|message| message.seq).collect();
            let changes = self.state.admit(&page, next_seq, self.now_ms);
            let batch = self.store.write(changes);
            self.history.push(Event::Admitted { seqs, batch });
        }
    }

    fn pull(&mut self, consumer: usize, max: usize, lease_ms: Option<u64>) -> Vec<LeaseToken> {
        self.catch_up();
        let now_ms = self.now_ms;
        let (leases, changes) = self.state.pull(max, lease_ms, now_ms);
        self.record_expiries(changes);
        self.history.push(Event::Pulled {
            consumer,
            now_ms,
            max,
            n_leased: leases.len(),
        });
        let expires_at_ms = now_ms + lease_ms.unwrap_or(self.config.lease_ms);
        for lease in &leases {
            self.history.push(Event::Leased {
                consumer,
                seq: lease.seq,
                token: lease.token,
                attempt: lease.attempt,
                now_ms,
                expires_at_ms,
            });
            self.consumers[consumer].held.push(lease.token);
        }
        if leases.is_empty() {
            self.history.push(Event::Idle {
                now_ms,
                next_event_at_ms: self.state.next_event_at_ms(),
                paused: self.state.paused(),
                counters: self.state.counters(now_ms),
            });
        }
        leases.iter().map(|lease| lease.token).collect()
    }

    /// A consumer that holds leases, if any does (a busy consumer settles
    /// more often than an idle one asks with stale tokens).
    fn pick_holder(&mut self) -> usize {
        let holders: Vec<usize> = (0..self.config.n_consumers)
            .filter(|consumer| !self.consumers[*consumer].held.is_empty())
            .collect();
        if holders.is_empty() {
            self.pick(self.config.n_consumers)
        } else {
            holders[self.pick(holders.len())]
        }
    }

    /// Picks tokens for an ack, nack or extend: some the consumer holds,
    /// and now and then a spent, forged or malformed one.
    fn pick_tokens(&mut self, consumer: usize, n_held_max: u64) -> Vec<Option<LeaseToken>> {
        let mut tokens = Vec::new();
        for _ in 0..self.random.in_range(1, n_held_max) {
            let held = &self.consumers[consumer].held;
            if held.is_empty() {
                break;
            }
            let token = held[self.random.in_range(0, held.len() as u64 - 1) as usize];
            if !tokens.contains(&Some(token)) {
                tokens.push(Some(token));
            }
        }
        let n_spent = self.consumers[consumer].spent.len();
        if n_spent > 0 && self.chance(10) {
            let spent_index = self.pick(n_spent);
            let token = self.consumers[consumer].spent[spent_index];
            tokens.push(Some(token));
        }
        if !self.log.is_empty() && self.chance(5) {
            let log_index = self.pick(self.log.len());
            let seq = self.log[log_index].seq;
            // A token this subscription never signed (forged, or another
            // subscription's).
            tokens.push(Some(LeaseToken {
                seq,
                lease_id: self.random.in_range(0, 3),
                mac: self.random.next_u64(),
            }));
        }
        if tokens.is_empty() || self.chance(3) {
            tokens.push(None);
        }
        tokens
    }

    fn token_texts(tokens: &[Option<LeaseToken>]) -> Vec<String> {
        tokens
            .iter()
            .map(|token| token.map_or_else(|| "not-a-token".to_string(), |t| t.to_string()))
            .collect()
    }

    /// A consumer acks or nacks some of its tokens; now and then the server
    /// crashes after the state machine ran but before the barrier, so the
    /// consumer never hears the answer.
    fn settle(&mut self, nack: bool) {
        let consumer = self.pick_holder();
        let tokens = self.pick_tokens(consumer, 3);
        let interrupted = self.chance(5);
        if nack {
            let delay_ms = self.chance(60).then(|| self.random.in_range(0, 3_000));
            let error = self.chance(70).then_some("handler failed");
            self.nack(consumer, &tokens, delay_ms, error, interrupted);
        } else {
            self.ack(consumer, &tokens, interrupted);
        }
    }

    fn ack(&mut self, consumer: usize, tokens: &[Option<LeaseToken>], interrupted: bool) {
        let (outcomes, changes) = self.state.ack(&Self::token_texts(tokens));
        let batch = self.store.write(changes);
        if !interrupted {
            self.answer_barrier();
        }
        for (token, outcome) in tokens.iter().zip(outcomes) {
            self.history.push(Event::Answered {
                consumer,
                operation: TokenOperation::Ack,
                token: *token,
                status: outcome.status,
                batch,
                answered: !interrupted,
            });
            if let Some(token) = token {
                self.consumers[consumer].spend(*token);
            }
        }
        if interrupted {
            self.crash();
        }
    }

    fn nack(
        &mut self,
        consumer: usize,
        tokens: &[Option<LeaseToken>],
        delay_ms: Option<u64>,
        error: Option<&str>,
        interrupted: bool,
    ) {
        let now_ms = self.now_ms;
        let (outcomes, changes) =
            self.state
                .nack(&Self::token_texts(tokens), delay_ms, error, now_ms);
        let dead: Vec<(u64, u32)> = changes
            .iter()
            .filter_map(|change| match change {
                Change::Message { seq, record, .. } if record.status == MessageStatus::Dead => {
                    Some((*seq, record.attempts))
                }
                _ => None,
            })
            .collect();
        let batch = self.store.write(changes);
        if !interrupted {
            self.answer_barrier();
        }
        for (token, outcome) in tokens.iter().zip(outcomes) {
            self.history.push(Event::Answered {
                consumer,
                operation: TokenOperation::Nack { now_ms, delay_ms },
                token: *token,
                status: outcome.status,
                batch,
                answered: !interrupted,
            });
            if let Some(token) = token {
                self.consumers[consumer].spend(*token);
            }
        }
        for (seq, attempts) in dead {
            self.history.push(Event::DeadLettered {
                seq,
                attempts,
                batch,
                answered: !interrupted,
            });
        }
        if interrupted {
            self.crash();
        }
    }

    fn extend(&mut self) {
        let consumer = self.pick_holder();
        let tokens = self.pick_tokens(consumer, 2);
        let lease_ms = self.chance(50).then(|| self.random.in_range(100, 3_000));
        let now_ms = self.now_ms;
        let outcomes = self
            .state
            .extend(&Self::token_texts(&tokens), lease_ms, now_ms);
        let expires_at_ms = now_ms + lease_ms.unwrap_or(self.config.lease_ms);
        for (token, outcome) in tokens.iter().zip(outcomes) {
            self.history.push(Event::Answered {
                consumer,
                operation: TokenOperation::Extend {
                    now_ms,
                    expires_at_ms,
                },
                token: *token,
                status: outcome.status,
                batch: None,
                answered: true,
            });
            if let (Some(token), false) = (token, outcome.status == TokenStatus::Extended) {
                self.consumers[consumer].spend(*token);
            }
        }
    }

    /// A consumer process dies: its leases are left to run out.
    fn vanish(&mut self, consumer: usize) {
        let held = std::mem::take(&mut self.consumers[consumer].held);
        held.into_iter()
            .for_each(|token| self.consumers[consumer].spend(token));
    }

    fn tick(&mut self) {
        self.history.push(Event::Advanced {
            now_ms: self.now_ms,
        });
        let changes = self.state.advance(self.now_ms);
        self.record_expiries(changes);
    }

    fn set_paused(&mut self, paused: bool, interrupted: bool) {
        let changes = self.state.set_paused(paused);
        let batch = self.store.write(changes);
        if !interrupted {
            self.answer_barrier();
        }
        self.history.push(Event::PauseSet {
            paused,
            batch,
            answered: !interrupted,
        });
        if interrupted {
            self.crash();
        }
    }

    /// Replays every dead letter or some by hash (with hashes that are not
    /// dead letters among them), reading them from the disk after a
    /// barrier, as the runtime does.
    fn replay(&mut self) {
        self.store.barrier();
        let room = self.state.admission_room();
        let dead = self.store.durable().records_with(MessageStatus::Dead);
        let requested: Option<Vec<u64>> = self.chance(50).then(|| {
            let mut seqs = Vec::new();
            for _ in 0..self.random.in_range(0, 3) {
                if !dead.is_empty() {
                    seqs.push(dead[self.pick(dead.len())].0);
                }
            }
            if !self.log.is_empty() && self.chance(30) {
                let log_index = self.pick(self.log.len());
                seqs.push(self.log[log_index].seq);
            }
            if self.chance(20) {
                seqs.push(self.last_log_seq + 1_000);
            }
            seqs
        });
        let records = match &requested {
            None => dead.into_iter().take(room).collect(),
            Some(seqs) => seqs
                .iter()
                .filter_map(|seq| self.store.durable().dead_letter(&message_hash(*seq)))
                .collect(),
        };
        let now_ms = self.now_ms;
        let (n_replayed, changes) = self.state.replay(records, now_ms);
        let seqs = changes
            .iter()
            .filter_map(|change| match change {
                Change::Message { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        let batch = self.store.write(changes);
        let interrupted = self.chance(5);
        if !interrupted {
            self.answer_barrier();
        }
        self.history.push(Event::Replayed {
            now_ms,
            requested,
            room,
            n_replayed,
            seqs,
            batch,
            answered: !interrupted,
        });
        if interrupted {
            self.crash();
        }
    }

    /// Discards one dead letter read from the disk after a barrier, as the
    /// runtime does (an unknown hash finds nothing and changes nothing).
    fn discard(&mut self) {
        self.store.barrier();
        let dead = self.store.durable().records_with(MessageStatus::Dead);
        if dead.is_empty() {
            return;
        }
        let (seq, _) = dead[self.pick(dead.len())];
        let Some((seq, record)) = self.store.durable().dead_letter(&message_hash(seq)) else {
            return;
        };
        let changes = self.state.discard(seq, record);
        let batch = self.store.write(changes);
        let interrupted = self.chance(5);
        if !interrupted {
            self.answer_barrier();
        }
        self.history.push(Event::Discarded {
            seq,
            batch,
            answered: !interrupted,
        });
        if interrupted {
            self.crash();
        }
    }

    /// The server dies: a prefix of the queued writes reached the disk; the
    /// state is rebuilt from it. Consumers keep their tokens (they do not
    /// know), and some of them die too.
    fn crash(&mut self) {
        let n_surviving = self.random.in_range(0, self.store.n_queued() as u64) as usize;
        let durable_through_batch = self.store.crash(n_surviving);
        self.history.push(Event::Crashed {
            durable_through_batch,
        });
        self.state = self
            .store
            .durable()
            .restore(self.now_ms, TokenKey::from_seed(self.random.next_u64()));
        self.history.push(Event::Restarted {
            now_ms: self.now_ms,
        });
        for consumer in 0..self.config.n_consumers {
            if self.chance(30) {
                self.vanish(consumer);
            }
        }
    }

    /// No more faults: consumers restart empty-handed, delivery resumes,
    /// the rest of the messages are published, and one consumer acks all it
    /// gets, moving time to the state machine's next event whenever a pull
    /// comes back empty. Returns whether the subscription emptied.
    fn drain(&mut self) -> bool {
        for consumer in 0..self.config.n_consumers {
            self.vanish(consumer);
        }
        if self.state.paused() {
            self.set_paused(false, false);
        }
        self.publish(self.config.n_messages);
        for _ in 0..DRAIN_ROUNDS_MAX {
            let tokens = self.pull(0, DRAIN_PULL_MAX, None);
            if !tokens.is_empty() {
                let tokens: Vec<Option<LeaseToken>> = tokens.into_iter().map(Some).collect();
                self.ack(0, &tokens, false);
                continue;
            }
            let counters = self.state.counters(self.now_ms);
            let tracked = counters.in_flight + counters.tracked_not_leased;
            if tracked == 0 && self.state.cursor_seq() >= self.last_log_seq {
                return true;
            }
            match self.state.next_event_at_ms() {
                Some(next_ms) if next_ms > self.now_ms => self.now_ms = next_ms,
                Some(_) => self.now_ms += 1,
                None => return false,
            }
        }
        false
    }

    fn finish(mut self, drained: bool) -> Run {
        self.store.barrier();
        let durable = self.store.durable();
        let end = EndState {
            drained,
            cursor_seq: durable
                .subscription
                .as_ref()
                .map_or(0, |record| record.cursor_seq),
            last_log_seq: self.last_log_seq,
            records: durable.statuses(),
        };
        Run {
            seed: self.seed,
            config: self.config,
            history: self.history,
            end,
        }
    }
}

/// A run put together by hand, for negative controls: a subscription with
/// the given attempts, per-key window and rate limit, and `history`.
pub fn handmade_run(
    max_attempts: u32,
    max_in_flight_per_key: Option<u32>,
    rate_limit_per_s: Option<u32>,
    history: Vec<Event>,
) -> Run {
    let published: BTreeSet<u64> = history
        .iter()
        .filter_map(|event| match event {
            Event::Published { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    let last_log_seq = published.last().copied().unwrap_or(0);
    Run {
        seed: 0,
        config: Config {
            max_attempts,
            lease_ms: 1_000,
            backoff: Backoff {
                initial_ms: 100,
                max_ms: 1_000,
            },
            max_in_flight_per_key,
            rate_limit_per_s,
            n_consumers: 2,
            n_keys: 2,
            n_messages: published.len(),
            n_fault_steps: 0,
            step_weights: Vec::new(),
        },
        history,
        end: EndState {
            drained: true,
            cursor_seq: last_log_seq,
            last_log_seq,
            records: Vec::new(),
        },
    }
}

/// A token for hand-made histories.
pub fn token(seq: u64, lease_id: u64) -> LeaseToken {
    LeaseToken {
        seq,
        lease_id,
        mac: 0,
    }
}
