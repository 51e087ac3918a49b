//! One seeded schedule: the subscription's definition and every step the
//! clients and the operator take, drawn from the seed alone, before and
//! independently of what any engine answers. A step that refers to tokens
//! carries raw picks that each engine's driver resolves against the tokens
//! its own consumers hold, so both engines run the same schedule even where
//! their answers may legitimately differ (after a restart).

use cairn_delivery::{SplitMix64, SubscriptionDefinition};

/// Simulated time starts here (ms since the Unix epoch).
pub const START_MS: u64 = 1_800_000_000_000;

/// What one step does.
#[derive(Clone, Debug)]
pub enum Step {
    /// Publishers append matching facts (the drawn count, capped by what
    /// is left to publish), each with its key and not-before draw.
    Publish(Vec<FactDraw>),
    /// A consumer pulls (never waiting: time is simulated).
    Pull {
        /// Who.
        consumer: usize,
        /// Messages at most.
        max: usize,
        /// A lease other than the definition's.
        lease_ms: Option<u64>,
    },
    /// A consumer acks.
    Ack {
        /// Who.
        consumer: usize,
        /// Which tokens.
        picks: TokenPicks,
    },
    /// A consumer nacks.
    Nack {
        /// Who.
        consumer: usize,
        /// Which tokens.
        picks: TokenPicks,
        /// The delay asked for.
        delay_ms: Option<u64>,
        /// The error text given.
        error: Option<&'static str>,
    },
    /// A consumer extends (or shortens) leases.
    Extend {
        /// Who.
        consumer: usize,
        /// Which tokens.
        picks: TokenPicks,
        /// The new lease, from now.
        lease_ms: Option<u64>,
    },
    /// A consumer dies with its leases.
    Vanish {
        /// Who.
        consumer: usize,
    },
    /// Time moves on.
    Advance {
        /// By this much.
        delta_ms: u64,
    },
    /// The operator pauses or resumes.
    TogglePause,
    /// The operator replays dead letters: all, or picks among them.
    Replay {
        /// `None`: every dead letter.
        picks: Option<Vec<u64>>,
    },
    /// The operator discards one dead letter.
    Discard {
        /// Which one, among the dead letters.
        pick: u64,
    },
    /// Someone looks at the subscription.
    View,
    /// Someone lists the dead letters.
    ListDead,
    /// The server stops and starts again.
    Restart,
    /// The operator puts a definition again (a deploy of the service that
    /// owns the subscription): changed delivery members, sometimes a
    /// member that cannot change, sometimes the same definition, with or
    /// without an `If-Match` precondition.
    Update(UpdateDraw),
}

/// One `PUT` of a definition over the run's subscription.
#[derive(Clone, Debug)]
pub struct UpdateDraw {
    /// The delivery members to put (the selection stays the run's).
    pub config: Config,
    /// A member that cannot change, changed too (expect a conflict).
    pub fixed_change: Option<FixedChange>,
    /// The precondition sent.
    pub precondition: PreconditionDraw,
}

/// A member that cannot change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixedChange {
    /// Another type.
    Type,
    /// `start` `now` instead of `beginning`.
    Start,
    /// An ordering key added, or the one there removed.
    OrderingKey,
}

/// The `If-Match` a `PUT` is sent with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreconditionDraw {
    /// None.
    None,
    /// `*`.
    Exists,
    /// The generation the driver last saw.
    Current,
    /// One it did not see (a lost race): nothing may change.
    Stale,
}

/// One published fact's draws.
#[derive(Clone, Copy, Debug)]
pub struct FactDraw {
    /// Its ordering key (an index into the key facts), if it has one.
    pub key: Option<u8>,
    /// `cairn_not_before` as an offset from now (negative: in the past).
    pub not_before_offset_ms: Option<i64>,
}

/// Which tokens an ack, nack or extend sends, as raw draws the driver
/// resolves against what the consumer holds.
#[derive(Clone, Debug, Default)]
pub struct TokenPicks {
    /// Picks among the tokens the consumer holds.
    pub held: Vec<u64>,
    /// A pick among tokens it spent already (stale ones).
    pub spent: Option<u64>,
    /// A token of a published message signed with a key no subscription
    /// has (another subscription's, or a forgery): (message pick, key seed).
    pub foreign: Option<(u64, u64)>,
    /// A held token spelled differently (uppercase, leading zero).
    pub misspelled: Option<(u64, bool)>,
    /// A string that is not a token at all.
    pub garbage: bool,
    /// The first token sent twice.
    pub repeated: bool,
}

/// The shape of one run.
#[derive(Clone, Debug)]
pub struct Config {
    /// The definition's `max_attempts`.
    pub max_attempts: u32,
    /// The definition's `lease_ms`.
    pub lease_ms: u64,
    /// The definition's backoff.
    pub backoff_initial_ms: u64,
    /// The definition's backoff ceiling.
    pub backoff_max_ms: u64,
    /// `max_in_flight_per_key` when the subscription has an ordering key.
    pub max_in_flight_per_key: Option<u32>,
    /// The definition's `rate_limit_per_s`.
    pub rate_limit_per_s: Option<u32>,
    /// Consumers.
    pub n_consumers: usize,
    /// Distinct ordering keys.
    pub n_keys: u8,
    /// Messages published in the whole run.
    pub n_messages: usize,
}

impl Config {
    fn draw(random: &mut SplitMix64) -> Config {
        let backoff_initial_ms = random.in_range(1, 300);
        Config {
            max_attempts: random.in_range(1, 5) as u32,
            lease_ms: random.in_range(100, 2_000),
            backoff_initial_ms,
            backoff_max_ms: random.in_range(backoff_initial_ms, 3_000),
            max_in_flight_per_key: match random.in_range(0, 7) {
                0 | 1 => None,
                2 => Some(2),
                3 => Some(3),
                _ => Some(1),
            },
            rate_limit_per_s: (random.in_range(0, 9) < 3).then(|| random.in_range(1, 40) as u32),
            n_consumers: random.in_range(1, 3) as usize,
            n_keys: random.in_range(1, 4) as u8,
            n_messages: random.in_range(8, 60) as usize,
        }
    }

    /// The definition, as a client would send it.
    pub fn definition(&self, type_name: &str) -> SubscriptionDefinition {
        SubscriptionDefinition::from_json(self.definition_json(type_name, None).as_bytes())
            .expect("a valid definition")
    }

    /// The definition as JSON, with a member that cannot change changed.
    pub fn definition_json(&self, type_name: &str, fixed_change: Option<FixedChange>) -> String {
        let type_name = match fixed_change {
            Some(FixedChange::Type) => format!("{type_name}Other"),
            _ => type_name.to_string(),
        };
        let mut json = format!(
            r#"{{"type":"{type_name}","lease_ms":{},"max_attempts":{},"backoff":{{"initial_ms":{},"max_ms":{}}}"#,
            self.lease_ms, self.max_attempts, self.backoff_initial_ms, self.backoff_max_ms
        );
        let keyed = self.max_in_flight_per_key.is_some()
            != (fixed_change == Some(FixedChange::OrderingKey));
        if keyed {
            let window = self.max_in_flight_per_key.unwrap_or(1);
            json += &format!(r#","ordering_key":"key","max_in_flight_per_key":{window}"#);
        }
        if let Some(rate) = self.rate_limit_per_s {
            json += &format!(r#","rate_limit_per_s":{rate}"#);
        }
        if fixed_change == Some(FixedChange::Start) {
            json += r#","start":"now""#;
        }
        json += "}";
        json
    }

    /// New delivery members for a run's subscription: the selection (and
    /// so whether it has an ordering key) stays, the rest is drawn again,
    /// each member kept with some chance.
    fn draw_update(&self, random: &mut SplitMix64) -> Config {
        let mut drawn = Config::draw(random);
        let keep = |random: &mut SplitMix64| chance(random, 40);
        if keep(random) {
            drawn.max_attempts = self.max_attempts;
        }
        if keep(random) {
            drawn.lease_ms = self.lease_ms;
        }
        if keep(random) {
            drawn.backoff_initial_ms = self.backoff_initial_ms;
            drawn.backoff_max_ms = self.backoff_max_ms;
        }
        drawn.max_in_flight_per_key = match self.max_in_flight_per_key {
            Some(_) if keep(random) => self.max_in_flight_per_key,
            Some(_) => Some(random.in_range(1, 3) as u32),
            None => None,
        };
        if keep(random) {
            drawn.rate_limit_per_s = self.rate_limit_per_s;
        }
        Config {
            n_consumers: self.n_consumers,
            n_keys: self.n_keys,
            n_messages: self.n_messages,
            ..drawn
        }
    }
}

/// Each step's weight in per mille; a seed scales each by 0 to 3 (1 to 3
/// for the ones no run does without), so runs differ in character.
const STEP_WEIGHTS: [(StepKind, u64, bool); 15] = [
    (StepKind::Publish, 90, false),
    (StepKind::Pull, 230, false),
    (StepKind::Ack, 150, false),
    (StepKind::Nack, 80, true),
    (StepKind::Extend, 60, true),
    (StepKind::Vanish, 30, true),
    (StepKind::Advance, 170, false),
    (StepKind::Leap, 25, true),
    (StepKind::Pause, 20, true),
    (StepKind::Replay, 25, true),
    (StepKind::Discard, 15, true),
    (StepKind::View, 40, true),
    (StepKind::ListDead, 20, true),
    (StepKind::Restart, 15, true),
    (StepKind::Update, 25, true),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StepKind {
    Publish,
    Pull,
    Ack,
    Nack,
    Extend,
    Vanish,
    Advance,
    Leap,
    Pause,
    Replay,
    Discard,
    View,
    ListDead,
    Restart,
    Update,
}

/// A run's whole schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Its shape.
    pub config: Config,
    /// The steps of the fault phase, in order (the drain phase follows).
    pub steps: Vec<Step>,
}

impl Schedule {
    /// Draws the schedule of `seed`.
    pub fn draw(seed: u64) -> Schedule {
        let mut random = SplitMix64::new(seed);
        let config = Config::draw(&mut random);
        let weights: Vec<(StepKind, u64)> = STEP_WEIGHTS
            .iter()
            .map(|(kind, weight, optional)| {
                (*kind, weight * random.in_range(u64::from(!optional), 3))
            })
            .collect();
        let total: u64 = weights.iter().map(|(_, weight)| weight).sum();
        let n_steps = random.in_range(40, 220) as usize;
        let steps = (0..n_steps)
            .map(|_| {
                let mut roll = random.in_range(0, total - 1);
                let kind = weights
                    .iter()
                    .find(|(_, weight)| {
                        let found = roll < *weight;
                        roll = roll.saturating_sub(*weight);
                        found
                    })
                    .map_or(StepKind::Pull, |(kind, _)| *kind);
                draw_step(kind, &config, &mut random)
            })
            .collect();
        Schedule { config, steps }
    }
}

fn chance(random: &mut SplitMix64, percent: u64) -> bool {
    random.in_range(0, 99) < percent
}

fn draw_step(kind: StepKind, config: &Config, random: &mut SplitMix64) -> Step {
    let consumer = random.in_range(0, config.n_consumers as u64 - 1) as usize;
    match kind {
        StepKind::Publish => {
            let n = random.in_range(1, 4) as usize;
            Step::Publish((0..n).map(|_| draw_fact(config, random)).collect())
        }
        StepKind::Pull => Step::Pull {
            consumer,
            max: random.in_range(1, 6) as usize,
            lease_ms: chance(random, 20).then(|| random.in_range(100, 3_000)),
        },
        StepKind::Ack => Step::Ack {
            consumer,
            picks: draw_picks(random, 3),
        },
        StepKind::Nack => Step::Nack {
            consumer,
            picks: draw_picks(random, 2),
            delay_ms: chance(random, 50).then(|| random.in_range(0, 2_000)),
            error: chance(random, 60).then_some("handler failed"),
        },
        StepKind::Extend => Step::Extend {
            consumer,
            picks: draw_picks(random, 2),
            // Shorter and longer than the definition's lease.
            lease_ms: chance(random, 60).then(|| random.in_range(100, 3_000)),
        },
        StepKind::Vanish => Step::Vanish { consumer },
        StepKind::Advance => Step::Advance {
            delta_ms: random.in_range(1, 400),
        },
        StepKind::Leap => Step::Advance {
            delta_ms: random.in_range(config.lease_ms, 8_000),
        },
        StepKind::Pause => Step::TogglePause,
        StepKind::Replay => Step::Replay {
            picks: chance(random, 50).then(|| {
                (0..random.in_range(1, 3))
                    .map(|_| random.next_u64())
                    .collect()
            }),
        },
        StepKind::Discard => Step::Discard {
            pick: random.next_u64(),
        },
        StepKind::View => Step::View,
        StepKind::ListDead => Step::ListDead,
        StepKind::Restart => Step::Restart,
        StepKind::Update => Step::Update(UpdateDraw {
            config: if chance(random, 10) {
                config.clone()
            } else {
                config.draw_update(random)
            },
            fixed_change: match random.in_range(0, 19) {
                0 => Some(FixedChange::Type),
                1 => Some(FixedChange::Start),
                2 => Some(FixedChange::OrderingKey),
                _ => None,
            },
            precondition: match random.in_range(0, 9) {
                0..=4 => PreconditionDraw::None,
                5 => PreconditionDraw::Exists,
                6..=7 => PreconditionDraw::Current,
                _ => PreconditionDraw::Stale,
            },
        }),
    }
}

fn draw_fact(config: &Config, random: &mut SplitMix64) -> FactDraw {
    let keyed = config.max_in_flight_per_key.is_some() && chance(random, 85);
    FactDraw {
        key: keyed.then(|| random.in_range(0, u64::from(config.n_keys) - 1) as u8),
        not_before_offset_ms: match random.in_range(0, 19) {
            0..=2 => Some(random.in_range(0, 3_000) as i64),
            3 => Some(-(random.in_range(0, 3_000) as i64)),
            _ => None,
        },
    }
}

fn draw_picks(random: &mut SplitMix64, n_held_max: u64) -> TokenPicks {
    TokenPicks {
        held: (0..random.in_range(1, n_held_max))
            .map(|_| random.next_u64())
            .collect(),
        spent: chance(random, 12).then(|| random.next_u64()),
        foreign: chance(random, 6).then(|| (random.next_u64(), random.next_u64())),
        misspelled: chance(random, 5).then(|| (random.next_u64(), chance(random, 50))),
        garbage: chance(random, 3),
        repeated: chance(random, 4),
    }
}
