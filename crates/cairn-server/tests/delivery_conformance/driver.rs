//! Runs a schedule against one engine through the `Deliveries` and
//! `Subscription` traits, as the HTTP handlers call them: its consumers
//! hold and spend tokens, the oracle checks every answer, and each step
//! yields an [`Observation`] to compare with the other engine's.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use cairn_api::GenerationPrecondition;
use cairn_delivery::SubscriptionDefinition;
use cairn_delivery::{lease_number, SplitMix64, TokenKey, TokenStatus};
use cairn_fact::{CanonicalFact, Hash};
use cairn_server::delivery::{Applied, DeadLetter, DeliveryError, Subscription};
use tokio_util::sync::CancellationToken;

use crate::engines::Engine;
use crate::oracle::{Oracle, Verb, ViewCounts};
use crate::schedule::{Config, FactDraw, PreconditionDraw, Step, TokenPicks, UpdateDraw};

/// Messages a consumer asks for per pull while draining.
const DRAIN_PULL_MAX: usize = 50;
/// Dead letters listed per page.
const DEAD_PAGE_MAX: usize = 1_000;
/// Spent tokens a consumer remembers (to send stale ones).
const SPENT_TOKENS_KEPT: usize = 16;

/// What a step showed a client: compared between engines where the
/// contract makes it deterministic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// Nothing to compare.
    Nothing,
    /// Messages published.
    Published(usize),
    /// `(message index, attempt)` per leased message.
    Pulled(Vec<(usize, u32)>),
    /// The status per token sent.
    Answered(Vec<&'static str>),
    /// The view after a pause or resume.
    Paused(bool),
    /// How many dead letters were replayed.
    Replayed(usize),
    /// Whether a dead letter was discarded.
    Discarded(bool),
    /// The view.
    Viewed(ViewSummary),
    /// Dead and discarded letters: `(message index, attempts, last error,
    /// dead at)`.
    Dead(Vec<DeadSummary>, Vec<DeadSummary>),
    /// The server restarted.
    Restarted,
    /// What a `PUT` of a definition did, and the generation after it.
    Applied(&'static str, u64),
}

/// A dead letter as compared.
pub type DeadSummary = (usize, u32, Option<String>, Option<u64>);

/// The view's members, as compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewSummary {
    paused: bool,
    backlog: u64,
    in_flight: u64,
    delivered: u64,
    redelivered: u64,
    acked: u64,
    dead: u64,
    discarded: u64,
    oldest_unacked_age_ms: u64,
    consumer_lag: u64,
}

#[derive(Debug, Default)]
struct Consumer {
    held: Vec<String>,
    spent: Vec<String>,
}

impl Consumer {
    fn spend(&mut self, token: &str) {
        self.held.retain(|held| held != token);
        if self.spent.len() == SPENT_TOKENS_KEPT {
            self.spent.remove(0);
        }
        self.spent.push(token.to_string());
    }
}

/// A published message.
#[derive(Clone, Copy, Debug)]
struct Published {
    seq: u64,
    hash: Hash,
}

/// One engine's side of a run.
pub struct Driver {
    /// The engine.
    pub engine: Engine,
    /// The run's subscription.
    subscription: String,
    /// The type of its messages (one per run: runs may share a database).
    message_type: String,
    config: Config,
    shutdown: CancellationToken,
    key_hashes: Vec<Hash>,
    published: Vec<Published>,
    index_of_seq: HashMap<u64, usize>,
    consumers: Vec<Consumer>,
    paused: bool,
    /// The definition's generation as last answered.
    generation: u64,
    oracle: Oracle,
}

fn fact(json: &serde_json::Value) -> CanonicalFact {
    CanonicalFact::from_json(json.to_string().as_bytes(), 65_536).expect("a valid fact")
}

impl Driver {
    /// Sets the engine up for run `seed` of `config`: the key facts and
    /// the subscription.
    pub async fn start(engine: Engine, seed: u64, config: &Config) -> Driver {
        let subscription = format!("conformance-{seed}");
        let message_type = format!("Conformance.S{seed}.Message");
        let key_type = format!("Conformance.S{seed}.Key");
        let keys: Vec<CanonicalFact> = (0..config.n_keys)
            .map(|key| {
                fact(&serde_json::json!({"type": key_type, "fields": {"key": key}, "predecessors": {}}))
            })
            .collect();
        let key_hashes = keys.iter().map(|key| key.hash).collect();
        engine.publish(keys).await;
        let (_, applied) = engine
            .deliveries()
            .apply(&subscription, config.definition(&message_type), None)
            .await
            .expect("the subscription is created");
        assert_eq!(applied, Applied::Created);
        Driver {
            subscription,
            message_type,
            oracle: Oracle::new(engine.kind, config),
            engine,
            config: config.clone(),
            shutdown: CancellationToken::new(),
            key_hashes,
            published: Vec::new(),
            index_of_seq: HashMap::new(),
            consumers: (0..config.n_consumers)
                .map(|_| Consumer::default())
                .collect(),
            paused: false,
            generation: 1,
        }
    }

    async fn subscription(&self) -> Arc<dyn Subscription> {
        self.engine.subscription(&self.subscription).await
    }

    fn now_ms(&self) -> u64 {
        self.engine.clock().now_ms()
    }

    fn index(&self, seq: u64) -> usize {
        self.index_of_seq[&seq]
    }

    /// Messages still to publish.
    pub fn n_unpublished(&self) -> usize {
        self.config.n_messages - self.published.len()
    }

    /// Runs one step (the clock is moved by the caller, for both engines).
    pub async fn step(&mut self, step: &Step) -> Result<Observation, String> {
        match step {
            Step::Publish(draws) => self.publish(draws).await,
            Step::Pull {
                consumer,
                max,
                lease_ms,
            } => self.pull(*consumer, *max, *lease_ms).await,
            Step::Ack { consumer, picks } => {
                let texts = self.pick_tokens(*consumer, picks);
                self.settle(*consumer, Verb::Ack, &texts, None, None).await
            }
            Step::Nack {
                consumer,
                picks,
                delay_ms,
                error,
            } => {
                let texts = self.pick_tokens(*consumer, picks);
                self.settle(*consumer, Verb::Nack, &texts, *delay_ms, *error)
                    .await
            }
            Step::Extend {
                consumer,
                picks,
                lease_ms,
            } => {
                let texts = self.pick_tokens(*consumer, picks);
                let verb = Verb::Extend {
                    lease_ms: lease_ms.unwrap_or(self.config.lease_ms),
                };
                let subscription = self.subscription().await;
                let now_ms = self.now_ms();
                let outcomes = subscription
                    .extend(&texts, *lease_ms)
                    .await
                    .map_err(|error| format!("extend failed: {error}"))?;
                self.answered(*consumer, verb, now_ms, &texts, outcomes)
                    .await
            }
            Step::Vanish { consumer } => {
                self.vanish(*consumer);
                Ok(Observation::Nothing)
            }
            Step::Advance { .. } => Ok(Observation::Nothing),
            Step::TogglePause => {
                let paused = !self.paused;
                self.set_paused(paused).await
            }
            Step::Replay { picks } => self.replay(picks.as_deref()).await,
            Step::Discard { pick } => self.discard(*pick).await,
            Step::View => self.view().await,
            Step::ListDead => {
                let (dead, discarded) = self.dead_letters().await?;
                let summary = |letters: Vec<DeadLetter>| -> Vec<DeadSummary> {
                    letters
                        .into_iter()
                        .map(|letter| {
                            (
                                self.index(letter.seq),
                                letter.record.attempts,
                                letter.record.last_error,
                                letter.record.dead_at_ms,
                            )
                        })
                        .collect()
                };
                Ok(Observation::Dead(summary(dead), summary(discarded)))
            }
            Step::Restart => {
                self.engine.restart();
                self.oracle.restarted();
                Ok(Observation::Restarted)
            }
            Step::Update(draw) => self.update(draw).await,
        }
    }

    /// Puts a definition again and checks what the engine did: a stale
    /// precondition changes nothing, a changed member that cannot change
    /// is a conflict, the same definition is no change, anything else an
    /// update that keeps every message (the oracle's accounting checks
    /// that at the next view) and applies from now on.
    async fn update(&mut self, draw: &UpdateDraw) -> Result<Observation, String> {
        let json = draw
            .config
            .definition_json(&self.message_type, draw.fixed_change);
        let definition = SubscriptionDefinition::from_json(json.as_bytes())
            .map_err(|error| format!("the drawn definition is invalid: {error}"))?;
        let precondition = match draw.precondition {
            PreconditionDraw::None => None,
            PreconditionDraw::Exists => Some(GenerationPrecondition::Exists),
            PreconditionDraw::Current => Some(GenerationPrecondition::Generation(self.generation)),
            PreconditionDraw::Stale => {
                Some(GenerationPrecondition::Generation(self.generation - 1))
            }
        };
        let before = self
            .subscription()
            .await
            .view()
            .await
            .map_err(|error| format!("view failed: {error}"))?;
        if before.generation != self.generation {
            return Err(format!(
                "generation {} before the update, {} expected",
                before.generation, self.generation
            ));
        }
        let answer = self
            .engine
            .deliveries()
            .apply(&self.subscription, definition.clone(), precondition)
            .await;
        let changed = definition != self.config.definition(&self.message_type);
        let expected = if draw.precondition == PreconditionDraw::Stale {
            "mismatch"
        } else if draw.fixed_change.is_some() {
            "conflict"
        } else if changed {
            "updated"
        } else {
            "unchanged"
        };
        let outcome = match answer {
            Ok((_, Applied::Updated)) => "updated",
            Ok((_, Applied::Unchanged)) => "unchanged",
            Ok((_, Applied::Created)) => "created",
            Err(DeliveryError::Conflict { .. }) => "conflict",
            Err(DeliveryError::GenerationMismatch {
                current_generation, ..
            }) => {
                if current_generation != Some(self.generation) {
                    return Err(format!(
                        "a mismatch reports generation {current_generation:?}, not {}",
                        self.generation
                    ));
                }
                "mismatch"
            }
            Err(error) => return Err(format!("update failed: {error}")),
        };
        if outcome != expected {
            return Err(format!(
                "the update answered {outcome}, expected {expected}"
            ));
        }
        if outcome == "updated" {
            self.generation += 1;
            self.config = Config {
                n_consumers: self.config.n_consumers,
                n_keys: self.config.n_keys,
                n_messages: self.config.n_messages,
                ..draw.config.clone()
            };
            self.oracle.definition_changed(&self.config);
        }
        let after = self
            .subscription()
            .await
            .view()
            .await
            .map_err(|error| format!("view failed: {error}"))?;
        let in_force = SubscriptionDefinition::from_wire(after.definition.clone())
            .map_err(|error| format!("the view's definition is invalid: {error}"))?;
        if after.generation != self.generation
            || in_force != self.config.definition(&self.message_type)
        {
            return Err(format!(
                "after the update the view shows generation {} and {:?}, expected {} and {:?}",
                after.generation,
                after.definition,
                self.generation,
                self.config.definition(&self.message_type)
            ));
        }
        let kept = |view: &cairn_server::delivery::SubscriptionView| {
            (
                view.backlog,
                view.in_flight,
                view.dead,
                view.discarded,
                view.paused,
            )
        };
        if kept(&before) != kept(&after) {
            return Err(format!(
                "the update changed the messages: (backlog, in flight, dead, discarded, paused) \
                 {:?} before, {:?} after",
                kept(&before),
                kept(&after)
            ));
        }
        Ok(Observation::Applied(outcome, self.generation))
    }

    async fn publish(&mut self, draws: &[FactDraw]) -> Result<Observation, String> {
        let n = draws.len().min(self.n_unpublished());
        let now_ms = self.now_ms();
        let facts: Vec<CanonicalFact> = draws[..n]
            .iter()
            .enumerate()
            .map(|(offset, draw)| {
                let mut fields = serde_json::json!({ "n": self.published.len() + offset });
                if let Some(offset_ms) = draw.not_before_offset_ms {
                    let at_ms = now_ms.saturating_add_signed(offset_ms);
                    fields["cairn_not_before"] = rfc3339(at_ms).into();
                }
                let predecessors = match draw.key {
                    Some(key) => {
                        serde_json::json!({ "key": self.key_hashes[key as usize].to_hex() })
                    }
                    None => serde_json::json!({}),
                };
                fact(&serde_json::json!({
                    "type": self.message_type, "fields": fields, "predecessors": predecessors
                }))
            })
            .collect();
        let hashes: Vec<Hash> = facts.iter().map(|fact| fact.hash).collect();
        let seqs = self.engine.publish(facts).await;
        for ((seq, hash), draw) in seqs.into_iter().zip(hashes).zip(draws) {
            self.index_of_seq.insert(seq, self.published.len());
            self.published.push(Published { seq, hash });
            self.oracle.published(seq, draw.key);
        }
        Ok(Observation::Published(n))
    }

    async fn pull(
        &mut self,
        consumer: usize,
        max: usize,
        lease_ms: Option<u64>,
    ) -> Result<Observation, String> {
        let subscription = self.subscription().await;
        let now_ms = self.now_ms();
        let messages = subscription
            .pull(max, 0, lease_ms, &self.shutdown)
            .await
            .map_err(|error| format!("pull failed: {error}"))?;
        let leases: Vec<(u64, u32, String)> = messages
            .iter()
            .map(|message| (message.seq, message.attempt, message.token.clone()))
            .collect();
        for message in &messages {
            let expected = self.published[self.index(message.seq)].hash;
            if message.hash != expected
                || cairn_fact::Hash::of_bytes(&message.canonical) != expected
            {
                return Err(format!("message {} came with another fact", message.seq));
            }
        }
        let dead = if self.oracle.pull_needs_dead(leases.len()) {
            self.dead_set().await?
        } else {
            BTreeSet::new()
        };
        let lease_ms = lease_ms.unwrap_or(self.config.lease_ms);
        self.oracle.pulled(now_ms, &leases, lease_ms, &dead)?;
        self.consumers[consumer]
            .held
            .extend(leases.iter().map(|(_, _, token)| token.clone()));
        Ok(Observation::Pulled(
            leases
                .iter()
                .map(|(seq, attempt, _)| (self.index(*seq), *attempt))
                .collect(),
        ))
    }

    /// Resolves picks against what `consumer` holds and has spent.
    fn pick_tokens(&self, consumer: usize, picks: &TokenPicks) -> Vec<String> {
        let holder = &self.consumers[consumer];
        let mut texts: Vec<String> = Vec::new();
        if !holder.held.is_empty() {
            for pick in &picks.held {
                let token = &holder.held[(pick % holder.held.len() as u64) as usize];
                if !texts.contains(token) {
                    texts.push(token.clone());
                }
            }
        }
        if let (Some(pick), false) = (picks.spent, holder.spent.is_empty()) {
            texts.push(holder.spent[(pick % holder.spent.len() as u64) as usize].clone());
        }
        if let (Some((pick, key_seed)), false) = (picks.foreign, self.published.is_empty()) {
            let seq = self.published[(pick % self.published.len() as u64) as usize].seq;
            let stranger = TokenKey::from_seed(key_seed);
            texts.push(stranger.issue(seq, lease_number(0, 1)).to_string());
        }
        if let (Some((pick, uppercase)), false) = (picks.misspelled, holder.held.is_empty()) {
            let token = &holder.held[(pick % holder.held.len() as u64) as usize];
            texts.push(if uppercase {
                token.to_uppercase()
            } else {
                format!("0{token}")
            });
        }
        if picks.garbage || texts.is_empty() {
            texts.push("not-a-token".to_string());
        }
        if picks.repeated {
            texts.push(texts[0].clone());
        }
        texts
    }

    async fn settle(
        &mut self,
        consumer: usize,
        verb: Verb,
        texts: &[String],
        delay_ms: Option<u64>,
        error: Option<&str>,
    ) -> Result<Observation, String> {
        let subscription = self.subscription().await;
        let now_ms = self.now_ms();
        let outcomes = match verb {
            Verb::Ack => subscription.ack(texts).await,
            _ => subscription.nack(texts, delay_ms, error).await,
        }
        .map_err(|error| format!("{verb:?} failed: {error}"))?;
        self.answered(consumer, verb, now_ms, texts, outcomes).await
    }

    async fn answered(
        &mut self,
        consumer: usize,
        verb: Verb,
        now_ms: u64,
        texts: &[String],
        outcomes: Vec<cairn_delivery::TokenOutcome>,
    ) -> Result<Observation, String> {
        if outcomes.len() != texts.len()
            || outcomes
                .iter()
                .zip(texts)
                .any(|(outcome, text)| outcome.token != *text)
        {
            return Err(format!(
                "{verb:?}: answers {outcomes:?} do not match the tokens {texts:?}"
            ));
        }
        let answers: Vec<(String, TokenStatus)> = outcomes
            .into_iter()
            .map(|outcome| (outcome.token, outcome.status))
            .collect();
        let dead = if self.oracle.answers_need_dead(&answers) {
            self.dead_set().await?
        } else {
            BTreeSet::new()
        };
        // Tokens that acted first: the others are judged against the state
        // after the whole request, as the contract's engines judge them.
        let acted = |status: &TokenStatus| {
            matches!(
                status,
                TokenStatus::Acked | TokenStatus::Nacked | TokenStatus::Extended
            )
        };
        let in_order = answers
            .iter()
            .filter(|(_, status)| acted(status))
            .chain(answers.iter().filter(|(_, status)| !acted(status)));
        for (text, status) in in_order {
            self.oracle.answered(verb, now_ms, text, *status, &dead)?;
            let keeps = matches!(verb, Verb::Extend { .. }) && *status == TokenStatus::Extended;
            if !keeps {
                self.consumers[consumer].spend(text);
            }
        }
        Ok(Observation::Answered(
            answers.iter().map(|(_, status)| status.as_str()).collect(),
        ))
    }

    fn vanish(&mut self, consumer: usize) {
        let held = std::mem::take(&mut self.consumers[consumer].held);
        for token in held {
            self.consumers[consumer].spend(&token);
        }
    }

    async fn set_paused(&mut self, paused: bool) -> Result<Observation, String> {
        let view = self
            .subscription()
            .await
            .set_paused(paused)
            .await
            .map_err(|error| format!("pause failed: {error}"))?;
        self.paused = paused;
        if view.paused != paused {
            return Err(format!(
                "asked paused={paused}, the view says {}",
                view.paused
            ));
        }
        Ok(Observation::Paused(view.paused))
    }

    /// Every dead letter, and every discarded one.
    async fn dead_letters(&self) -> Result<(Vec<DeadLetter>, Vec<DeadLetter>), String> {
        let subscription = self.subscription().await;
        let mut lists = Vec::new();
        for discarded in [false, true] {
            let mut letters: Vec<DeadLetter> = Vec::new();
            loop {
                let after_seq = letters.last().map_or(0, |letter| letter.seq);
                let page = subscription
                    .dead_letters(discarded, after_seq, DEAD_PAGE_MAX)
                    .await
                    .map_err(|error| format!("listing dead letters failed: {error}"))?;
                let full = page.len() == DEAD_PAGE_MAX;
                letters.extend(page);
                if !full {
                    break;
                }
            }
            lists.push(letters);
        }
        let discarded = lists.pop().unwrap_or_default();
        let dead = lists.pop().unwrap_or_default();
        Ok((dead, discarded))
    }

    /// The seqs of every dead and discarded letter, as they stand (read
    /// without ending leases that ran out, as listing them would).
    async fn dead_set(&self) -> Result<BTreeSet<u64>, String> {
        Ok(self.engine.dead_seqs(&self.subscription).await)
    }

    async fn replay(&mut self, picks: Option<&[u64]>) -> Result<Observation, String> {
        let before = self.dead_letters().await?.0;
        let hashes: Option<Vec<Hash>> = picks.map(|picks| {
            let mut hashes: Vec<Hash> = Vec::new();
            for pick in picks {
                if !before.is_empty() {
                    hashes.push(before[(pick % before.len() as u64) as usize].record.hash);
                }
            }
            // A message that is not a dead letter is ignored.
            if let (Some(pick), false) = (picks.first(), self.published.is_empty()) {
                hashes.push(self.published[(pick % self.published.len() as u64) as usize].hash);
            }
            hashes.push(Hash::of_bytes(b"never published"));
            hashes
        });
        let n_replayed = self
            .subscription()
            .await
            .replay(hashes.as_deref())
            .await
            .map_err(|error| format!("replay failed: {error}"))?;
        let after: BTreeSet<u64> = self.dead_letters().await?.0.iter().map(|l| l.seq).collect();
        let replayed: Vec<u64> = before
            .iter()
            .map(|letter| letter.seq)
            .filter(|seq| !after.contains(seq))
            .collect();
        if replayed.len() != n_replayed {
            return Err(format!(
                "replay answered {n_replayed}, but {} dead letters came back ({replayed:?})",
                replayed.len()
            ));
        }
        self.oracle.replayed(replayed);
        Ok(Observation::Replayed(n_replayed))
    }

    async fn discard(&mut self, pick: u64) -> Result<Observation, String> {
        let dead = self.dead_letters().await?.0;
        let subscription = self.subscription().await;
        let (hash, expected) = if dead.is_empty() {
            match self.published.first() {
                // Not a dead letter: nothing to discard.
                Some(message) => (message.hash, false),
                None => return Ok(Observation::Nothing),
            }
        } else {
            (dead[(pick % dead.len() as u64) as usize].record.hash, true)
        };
        let discarded = subscription
            .discard(&hash)
            .await
            .map_err(|error| format!("discard failed: {error}"))?;
        if discarded != expected {
            return Err(format!(
                "discard of {hash} answered {discarded}, expected {expected}"
            ));
        }
        Ok(Observation::Discarded(discarded))
    }

    async fn view(&mut self) -> Result<Observation, String> {
        let now_ms = self.now_ms();
        let view = self
            .subscription()
            .await
            .view()
            .await
            .map_err(|error| format!("view failed: {error}"))?;
        self.oracle.viewed(
            now_ms,
            self.published.len(),
            ViewCounts {
                backlog: view.backlog,
                in_flight: view.in_flight,
                dead: view.dead,
                discarded: view.discarded,
            },
        )?;
        Ok(Observation::Viewed(ViewSummary {
            paused: view.paused,
            backlog: view.backlog,
            in_flight: view.in_flight,
            delivered: view.delivered,
            redelivered: view.redelivered,
            acked: view.acked,
            dead: view.dead,
            discarded: view.discarded,
            oldest_unacked_age_ms: view.oldest_unacked_age_ms,
            consumer_lag: view.consumer_lag,
        }))
    }

    /// The start of the drain phase: consumers restart empty-handed,
    /// delivery resumes, and the rest of the messages are published.
    pub async fn begin_drain(&mut self, seed: u64) -> Result<(), String> {
        for consumer in 0..self.consumers.len() {
            self.vanish(consumer);
        }
        if self.paused {
            self.set_paused(false).await?;
        }
        let mut random = SplitMix64::new(seed ^ 0xd1a1_d1a1);
        let draws: Vec<FactDraw> = (0..self.n_unpublished())
            .map(|_| FactDraw {
                key: self
                    .config
                    .max_in_flight_per_key
                    .map(|_| random.in_range(0, u64::from(self.config.n_keys) - 1) as u8),
                not_before_offset_ms: None,
            })
            .collect();
        self.publish(&draws).await?;
        Ok(())
    }

    /// One round of the drain: consumer 0 pulls and acks all it gets.
    /// Returns whether it leased anything, and whether nothing is left.
    pub async fn drain_round(&mut self) -> Result<(Observation, bool), String> {
        let pulled = self.pull(0, DRAIN_PULL_MAX, None).await?;
        let Observation::Pulled(leases) = &pulled else {
            unreachable!("a pull observes a pull");
        };
        if !leases.is_empty() {
            let tokens = std::mem::take(&mut self.consumers[0].held);
            let answered = self.settle(0, Verb::Ack, &tokens, None, None).await?;
            if answered != Observation::Answered(vec!["acked"; tokens.len()]) {
                return Err(format!("draining, fresh tokens answered {answered:?}"));
            }
            return Ok((pulled, false));
        }
        let Observation::Viewed(view) = self.view().await? else {
            unreachable!("a view observes a view");
        };
        Ok((pulled, view.backlog == 0 && view.in_flight == 0))
    }

    /// The end of a run: every message acked or dead exactly once.
    pub async fn finish(self) -> Result<(), String> {
        let dead = self.dead_set().await?;
        self.oracle.finished(&dead)?;
        self.engine
            .deliveries()
            .delete(&self.subscription)
            .await
            .map_err(|error| format!("delete failed: {error}"))
    }
}

/// RFC 3339 in UTC for a time in ms since the epoch.
fn rfc3339(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .expect("a time the schedule draws is representable")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a UTC time formats as RFC 3339")
}
