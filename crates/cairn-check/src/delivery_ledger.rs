//! What the history keeps of a run's deliveries and acks: one small
//! summary per message and subscription instead of every delivery, so that
//! an hour of deliveries takes little memory and the oracle judges them in
//! one pass.
//!
//! The checks about one delivery at a time are judged here as the run
//! goes. "No redelivery after an ack" needs care: a delivery is a
//! violation when *any* ack of its message was answered before its pull
//! was sent, and an ack's answer is recorded a moment after it arrives, so
//! an ack answered before the pull may be recorded after the delivery.
//! Every ack therefore takes a ticket before it is sent, and a delivery
//! waits (in a short queue) until every ack that was already sent when the
//! delivery was recorded has been recorded: an ack sent later was answered
//! after the delivery's pull was sent and cannot convict it.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::fact_table::FactTable;
use crate::history::{Delivery, Phase};
use crate::workload::SubscriptionSpec;

/// What the oracle needs to know of one message of one subscription.
#[derive(Clone, Copy, Debug, Default)]
pub struct MessageSummary {
    /// When the first ack answered `"acked"` was answered (nanoseconds
    /// since the start), if it was acked.
    pub first_ack_answered_ns: Option<u64>,
    /// An ack was answered `"acked"` before the dead letters were replayed.
    pub acked_before_replay: bool,
    /// Delivered at least once before the clean restart.
    pub delivered_before_restart: bool,
    /// Delivered with attempt 1 after the dead letters were replayed.
    pub replayed_at_first_attempt: bool,
}

/// The first delivery of a message before the replay: the one whose pull
/// was sent first (per-key order is judged on these).
#[derive(Clone, Copy, Debug)]
pub struct FirstDelivery {
    /// The message's `seq` on the server that delivered it.
    pub seq: u64,
    /// When its pull was sent, in nanoseconds since the start of the run.
    pub pull_sent_ns: u64,
    /// When its pull was answered, in nanoseconds since the start of the run.
    pub pull_answered_ns: u64,
}

/// The messages of one subscription.
pub struct SubscriptionLedger {
    /// The subscription's name.
    pub name: String,
    max_attempts: u64,
    /// Messages of written facts, by fact index.
    messages: Vec<MessageSummary>,
    /// Messages acked whose hash is not a written fact (a phantom the
    /// consumer acked all the same), by hash as the server spelled it.
    unwritten_messages: HashMap<String, MessageSummary>,
    /// First deliveries by fact index; kept only when the subscription is
    /// ordered by key.
    first_deliveries: Option<Vec<Option<FirstDelivery>>>,
    /// Deliveries recorded.
    pub n_deliveries: u64,
}

impl SubscriptionLedger {
    /// The summary of the message of written fact `fact_idx`.
    pub fn message(&self, fact_idx: u32) -> MessageSummary {
        self.messages
            .get(fact_idx as usize)
            .copied()
            .unwrap_or_default()
    }

    /// The summary of the message whose hash is spelled `hash_text`.
    pub fn message_by_text(&self, facts: &FactTable, hash_text: &str) -> MessageSummary {
        match facts.idx_of_text(hash_text) {
            Some(fact_idx) => self.message(fact_idx),
            None => self
                .unwritten_messages
                .get(hash_text)
                .copied()
                .unwrap_or_default(),
        }
    }

    /// The first deliveries before the replay, by fact index (none when
    /// the subscription is not ordered by key).
    pub fn first_deliveries(&self) -> impl Iterator<Item = (u32, FirstDelivery)> + '_ {
        self.first_deliveries
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(fact_idx, first)| Some((fact_idx as u32, (*first)?)))
    }

    fn message_mut(&mut self, fact_idx: u32) -> &mut MessageSummary {
        let idx = fact_idx as usize;
        if idx >= self.messages.len() {
            self.messages.resize(idx + 1, MessageSummary::default());
        }
        &mut self.messages[idx]
    }
}

/// A delivery waiting for the acks that were in flight when it was
/// recorded.
struct WaitingDelivery {
    subscription_idx: usize,
    fact_idx: u32,
    delivery: Delivery,
    /// Tickets of acks issued before it was recorded.
    acks_sent_before: u64,
}

/// The messages of every subscription, and the deliveries not judged yet.
pub struct DeliveryLedger {
    subscriptions: Vec<SubscriptionLedger>,
    /// Tickets of acks sent whose answer is not recorded yet.
    acks_in_flight: BTreeSet<u64>,
    /// Tickets issued.
    n_acks_sent: u64,
    waiting: VecDeque<WaitingDelivery>,
    /// Deliveries recorded, over every subscription.
    pub n_deliveries: u64,
    /// Acks answered `"acked"`, over every subscription.
    pub n_acks: u64,
}

impl DeliveryLedger {
    /// An empty ledger for `subscriptions` (indexes follow their order).
    pub fn new(subscriptions: &[SubscriptionSpec]) -> DeliveryLedger {
        DeliveryLedger {
            subscriptions: subscriptions
                .iter()
                .map(|spec| SubscriptionLedger {
                    name: spec.name.clone(),
                    max_attempts: spec.max_attempts,
                    messages: Vec::new(),
                    unwritten_messages: HashMap::new(),
                    first_deliveries: spec.keyed.then(Vec::new),
                    n_deliveries: 0,
                })
                .collect(),
            acks_in_flight: BTreeSet::new(),
            n_acks_sent: 0,
            waiting: VecDeque::new(),
            n_deliveries: 0,
            n_acks: 0,
        }
    }

    /// The ledger of subscription `subscription_idx`.
    pub fn subscription(&self, subscription_idx: usize) -> &SubscriptionLedger {
        &self.subscriptions[subscription_idx]
    }

    /// Records a delivery of written fact `fact_idx`; judges its attempt
    /// now and whether it came after an ack once it can.
    pub fn record_delivery(
        &mut self,
        subscription_idx: usize,
        fact_idx: u32,
        delivery: Delivery,
        facts: &FactTable,
        violations: &mut Vec<(String, String)>,
    ) {
        self.n_deliveries += 1;
        let ledger = &mut self.subscriptions[subscription_idx];
        ledger.n_deliveries += 1;
        if delivery.attempt == 0 || delivery.attempt > ledger.max_attempts {
            violations.push((
                "dead letters only after max_attempts".into(),
                format!(
                    "{}: {} delivered with attempt {}",
                    ledger.name,
                    facts.get(fact_idx).hash,
                    delivery.attempt
                ),
            ));
        }
        let message = ledger.message_mut(fact_idx);
        if delivery.phase != Phase::AfterRestart {
            message.delivered_before_restart = true;
        }
        if delivery.phase == Phase::Replay && delivery.attempt == 1 {
            message.replayed_at_first_attempt = true;
        }
        if let Some(first_deliveries) = &mut ledger.first_deliveries {
            if delivery.phase < Phase::Replay {
                let idx = fact_idx as usize;
                if idx >= first_deliveries.len() {
                    first_deliveries.resize(idx + 1, None);
                }
                let first = &mut first_deliveries[idx];
                if first.is_none_or(|first| delivery.pull_sent_ns < first.pull_sent_ns) {
                    *first = Some(FirstDelivery {
                        seq: delivery.seq,
                        pull_sent_ns: delivery.pull_sent_ns,
                        pull_answered_ns: delivery.pull_answered_ns,
                    });
                }
            }
        }
        self.waiting.push_back(WaitingDelivery {
            subscription_idx,
            fact_idx,
            delivery,
            acks_sent_before: self.n_acks_sent,
        });
        self.judge_waiting(facts, violations);
    }

    /// Issues the ticket of an ack about to be sent.
    pub fn ack_sent(&mut self) -> u64 {
        let ticket = self.n_acks_sent;
        self.n_acks_sent += 1;
        self.acks_in_flight.insert(ticket);
        ticket
    }

    /// Records an ack of the message `hash_text` answered `"acked"`.
    pub fn record_ack(
        &mut self,
        subscription_idx: usize,
        hash_text: &str,
        phase: Phase,
        answered_ns: u64,
        facts: &FactTable,
    ) {
        self.n_acks += 1;
        let ledger = &mut self.subscriptions[subscription_idx];
        let message = match facts.idx_of_text(hash_text) {
            Some(fact_idx) => ledger.message_mut(fact_idx),
            None => ledger
                .unwritten_messages
                .entry(hash_text.to_string())
                .or_default(),
        };
        message.first_ack_answered_ns = Some(
            message
                .first_ack_answered_ns
                .map_or(answered_ns, |first| first.min(answered_ns)),
        );
        if phase < Phase::Replay {
            message.acked_before_replay = true;
        }
    }

    /// The ack with `ticket` is answered and recorded (or lost): judges
    /// the deliveries that were waiting for it.
    pub fn ack_answered(
        &mut self,
        ticket: u64,
        facts: &FactTable,
        violations: &mut Vec<(String, String)>,
    ) {
        self.acks_in_flight.remove(&ticket);
        self.judge_waiting(facts, violations);
    }

    /// Once no ack can be recorded any more: judges every delivery still
    /// waiting.
    pub fn finish(&mut self, facts: &FactTable, violations: &mut Vec<(String, String)>) {
        self.acks_in_flight.clear();
        self.judge_waiting(facts, violations);
    }

    /// Judges the waiting deliveries, oldest first, that no ack in flight
    /// can convict any more.
    fn judge_waiting(&mut self, facts: &FactTable, violations: &mut Vec<(String, String)>) {
        while let Some(waiting) = self.waiting.front() {
            let oldest_in_flight = self.acks_in_flight.first();
            if oldest_in_flight.is_some_and(|&ticket| ticket < waiting.acks_sent_before) {
                return;
            }
            let ledger = &self.subscriptions[waiting.subscription_idx];
            let delivery = &waiting.delivery;
            let acked_ns = ledger.message(waiting.fact_idx).first_ack_answered_ns;
            if acked_ns.is_some_and(|acked_ns| delivery.pull_sent_ns > acked_ns) {
                let check = if delivery.phase == Phase::AfterRestart {
                    "acked messages stay acked after a clean restart"
                } else {
                    "no redelivery after an ack"
                };
                violations.push((
                    check.into(),
                    format!(
                        "{}: {} (seq {}) delivered again (attempt {}, {:?}) after its ack was answered \"acked\"",
                        ledger.name,
                        facts.get(waiting.fact_idx).hash,
                        delivery.seq,
                        delivery.attempt,
                        delivery.phase
                    ),
                ));
            }
            self.waiting.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use cairn_delivery::SplitMix64;
    use cairn_fact::Hash;

    use super::*;

    /// One step of a simulated run, in the order the history's lock saw it.
    enum Step {
        AckSent { ack_idx: usize },
        AckRecorded { ack_idx: usize },
        DeliveryRecorded { delivery_idx: usize },
    }

    struct SimulatedAck {
        fact_idx: u32,
        sent_ns: u64,
        answered_ns: u64,
        recorded_ns: u64,
        acked: bool,
    }

    struct SimulatedDelivery {
        fact_idx: u32,
        delivery: Delivery,
        recorded_ns: u64,
    }

    fn ledger_and_facts(n_facts: u8) -> (DeliveryLedger, FactTable) {
        let mut facts = FactTable::default();
        for fact_byte in 0..n_facts {
            let hash = Hash::of_bytes(&[fact_byte]);
            facts.register(hash, [], hash, false, 0);
        }
        let spec = SubscriptionSpec {
            name: "subscription".into(),
            definition: serde_json::json!({}),
            max_attempts: 4,
            keyed: true,
        };
        (DeliveryLedger::new(&[spec]), facts)
    }

    /// What the oracle judged when it held every delivery and ack: a
    /// delivery is a redelivery when any ack of its message was answered
    /// before its pull was sent.
    fn judged_on_the_whole_history(
        acks: &[SimulatedAck],
        deliveries: &[SimulatedDelivery],
    ) -> Vec<u64> {
        let mut convicted: Vec<u64> = deliveries
            .iter()
            .filter(|delivered| {
                acks.iter().any(|ack| {
                    ack.acked
                        && ack.fact_idx == delivered.fact_idx
                        && delivered.delivery.pull_sent_ns > ack.answered_ns
                })
            })
            .map(|delivered| delivered.delivery.seq)
            .collect();
        convicted.sort_unstable();
        convicted
    }

    #[test]
    fn redeliveries_are_judged_as_on_the_whole_history_whatever_the_recording_order() {
        for seed in 0..2_000 {
            let mut random = SplitMix64::new(seed);
            let (mut ledger, facts) = ledger_and_facts(3);
            let acks: Vec<SimulatedAck> = (0..random.in_range(0, 6))
                .map(|_| {
                    let sent_ns = random.in_range(0, 1_000);
                    let answered_ns = sent_ns + random.in_range(1, 200);
                    SimulatedAck {
                        fact_idx: random.in_range(0, 2) as u32,
                        sent_ns,
                        answered_ns,
                        // Sometimes recorded long after it was answered.
                        recorded_ns: answered_ns + random.in_range(0, 300),
                        acked: random.in_range(0, 3) > 0,
                    }
                })
                .collect();
            let deliveries: Vec<SimulatedDelivery> = (0..random.in_range(0, 8))
                .map(|delivery_idx| {
                    let pull_sent_ns = random.in_range(0, 1_300);
                    let pull_answered_ns = pull_sent_ns + random.in_range(1, 100);
                    SimulatedDelivery {
                        fact_idx: random.in_range(0, 2) as u32,
                        delivery: Delivery {
                            // The seq tells the deliveries apart.
                            seq: delivery_idx,
                            attempt: 1,
                            phase: Phase::Faults,
                            pull_sent_ns,
                            pull_answered_ns,
                        },
                        recorded_ns: pull_answered_ns + random.in_range(0, 50),
                    }
                })
                .collect();
            let mut steps: Vec<(u64, Step)> = Vec::new();
            for (ack_idx, ack) in acks.iter().enumerate() {
                steps.push((ack.sent_ns, Step::AckSent { ack_idx }));
                steps.push((ack.recorded_ns, Step::AckRecorded { ack_idx }));
            }
            for (delivery_idx, delivered) in deliveries.iter().enumerate() {
                steps.push((
                    delivered.recorded_ns,
                    Step::DeliveryRecorded { delivery_idx },
                ));
            }
            steps.sort_by_key(|(at_ns, _)| *at_ns);
            let mut tickets = vec![0; acks.len()];
            let mut violations = Vec::new();
            for (_, step) in steps {
                match step {
                    Step::AckSent { ack_idx } => tickets[ack_idx] = ledger.ack_sent(),
                    Step::AckRecorded { ack_idx } => {
                        let ack = &acks[ack_idx];
                        if ack.acked {
                            let hash_text = facts.get(ack.fact_idx).hash.to_hex();
                            ledger.record_ack(
                                0,
                                &hash_text,
                                Phase::Faults,
                                ack.answered_ns,
                                &facts,
                            );
                        }
                        ledger.ack_answered(tickets[ack_idx], &facts, &mut violations);
                    }
                    Step::DeliveryRecorded { delivery_idx } => {
                        let delivered = &deliveries[delivery_idx];
                        let (fact_idx, delivery) = (delivered.fact_idx, delivered.delivery);
                        ledger.record_delivery(0, fact_idx, delivery, &facts, &mut violations);
                    }
                }
            }
            // Every ack was recorded: nothing may still be waiting.
            assert!(ledger.waiting.is_empty(), "seed {seed}");
            ledger.finish(&facts, &mut violations);
            let mut convicted: Vec<u64> = violations
                .iter()
                .map(|(check, detail)| {
                    assert_eq!(check, "no redelivery after an ack");
                    let seq = detail.split("(seq ").nth(1).unwrap().split(')').next();
                    seq.unwrap().parse().unwrap()
                })
                .collect();
            convicted.sort_unstable();
            assert_eq!(
                convicted,
                judged_on_the_whole_history(&acks, &deliveries),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn a_delivery_waits_only_for_acks_sent_before_it_was_recorded() {
        let (mut ledger, facts) = ledger_and_facts(1);
        let mut violations = Vec::new();
        let delivery = |pull_sent_ns| Delivery {
            seq: 7,
            attempt: 2,
            phase: Phase::AfterRestart,
            pull_sent_ns,
            pull_answered_ns: pull_sent_ns + 5,
        };
        let early_ack = ledger.ack_sent();
        ledger.record_delivery(0, 0, delivery(100), &facts, &mut violations);
        let later_ack = ledger.ack_sent();
        assert_eq!(ledger.waiting.len(), 1);
        // The ack sent first was answered before the pull was sent, but is
        // recorded only now: the delivery waited for it.
        ledger.record_ack(0, &facts.get(0).hash.to_hex(), Phase::Drain, 50, &facts);
        ledger.ack_answered(early_ack, &facts, &mut violations);
        assert!(ledger.waiting.is_empty());
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].0,
            "acked messages stay acked after a clean restart"
        );
        // A pull sent before the first ack was answered is no redelivery;
        // it waits for the ack in flight, then passes.
        ledger.record_delivery(0, 0, delivery(40), &facts, &mut violations);
        assert_eq!(ledger.waiting.len(), 1);
        ledger.ack_answered(later_ack, &facts, &mut violations);
        assert!(ledger.waiting.is_empty());
        assert_eq!(violations.len(), 1);
        // With no ack in flight, a delivery is judged as it is recorded.
        ledger.record_delivery(0, 0, delivery(60), &facts, &mut violations);
        assert!(ledger.waiting.is_empty());
        assert_eq!(violations.len(), 2);
        let message = ledger.subscription(0).message(0);
        assert_eq!(message.first_ack_answered_ns, Some(50));
        assert!(message.acked_before_replay);
        assert!(!message.delivered_before_restart);
    }
}
