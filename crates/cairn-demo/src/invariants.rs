//! The business invariants, checked from the facts in Cairn and the dead
//! letters of the demo's subscriptions alone — never from the services'
//! memory or tables. Pure: the facts go in, the outcomes come out, so a
//! test can feed it a double charge and see it fail.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use cairn_client::{Hash, TypedFact};

use crate::facts::{
    MenuItem, MenuItemWithdrawn, NotificationSent, OrderAccepted, OrderPlaced, OrderServed,
    PaymentCaptured, PaymentFailed, PaymentRefunded, PlaceOrder, PreparationClaimed, RestockDue,
};
use crate::limits::RESTOCK_PRICE_CENTS;
use crate::services::stock::{menu_item, MENU, SCARCE_ITEM};

/// The type of Cairn's record of a won claim.
pub const CLAIMED_TYPE: &str = "Cairn.Claimed";

/// The type of a saga instance's start (its hash is the saga's id).
pub const SAGA_STARTED_TYPE: &str = "Saga.Started";
/// The type of a saga journal's transitions.
pub const SAGA_TRANSITION_TYPE: &str = "Saga.Transition";
/// The transitions that end a saga.
const SAGA_ENDS: [&str; 4] = ["completed", "compensated", "aborted", "failed"];

/// Offending orders named in a failed invariant's detail at most.
const EXAMPLES_MAX: usize = 5;

/// A fact as read from the log.
#[derive(Clone, Debug, PartialEq)]
pub struct FactRecord {
    /// Its hash.
    pub hash: Hash,
    /// Its type.
    pub type_name: String,
    /// Its fields.
    pub fields: serde_json::Value,
    /// Its predecessors, by role.
    pub predecessors: serde_json::Value,
}

impl FactRecord {
    /// A record of a stored fact's JSON (`type`, `fields`, `predecessors`).
    pub fn from_json(hash: Hash, fact: &serde_json::Value) -> FactRecord {
        FactRecord {
            hash,
            type_name: fact
                .get("type")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            fields: fact.get("fields").cloned().unwrap_or_default(),
            predecessors: fact.get("predecessors").cloned().unwrap_or_default(),
        }
    }

    /// The hash it names in `role` (one hash), as text.
    pub fn predecessor(&self, role: &str) -> Option<String> {
        self.predecessors
            .get(role)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    }

    fn flag(&self, name: &str) -> Option<bool> {
        self.fields.get(name).and_then(serde_json::Value::as_bool)
    }

    /// The schema version the fact was written at (`cairn_version`, 1 if
    /// absent).
    pub fn version(&self) -> u64 {
        self.fields
            .get("cairn_version")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(1)
    }

    fn text(&self, name: &str) -> String {
        self.fields
            .get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }
}

/// A dead letter of one of the demo's subscriptions.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetterRecord {
    /// The subscription.
    pub subscription: String,
    /// The message's fact.
    pub fact: FactRecord,
    /// The last error a handler gave, if any.
    pub last_error: Option<String>,
}

/// One invariant's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvariantOutcome {
    /// What is promised.
    pub name: &'static str,
    /// Whether it holds.
    pub passed: bool,
    /// Counts when it holds, the first offenders when it does not.
    pub detail: String,
}

/// What the facts say about one order.
#[derive(Clone, Debug, Default)]
pub struct OrderStory {
    /// A customer asked for it.
    pub requested: bool,
    /// The orders service answered a request for it.
    pub accepted: bool,
    /// Its `Cafe.OrderPlaced`.
    pub placed: bool,
    /// Ids of the charges of it.
    pub charges: BTreeSet<String>,
    /// Payments gave up on it.
    pub payment_failed: bool,
    /// Ids of the charges refunded.
    pub refunds: BTreeSet<String>,
    /// `Cafe.OrderServed` facts of it.
    pub served: usize,
    /// Notifications sent, by kind.
    pub notifications: BTreeMap<String, usize>,
    /// The schema versions its requests were written at.
    pub request_versions: BTreeSet<u64>,
    /// The `takeaway` a request said, read as version 2 (`false` for a
    /// version-1 request, as its upcast says).
    pub requested_takeaway: Option<bool>,
    /// The `takeaway` of its `Cafe.OrderPlaced`.
    pub placed_takeaway: Option<bool>,
    /// Its fulfilment saga was started.
    pub saga_started: bool,
    /// The ends its saga's journal reached (`completed`, `compensated`,
    /// `aborted`, `failed`): one, once it ended.
    pub saga_ends: BTreeSet<String>,
}

impl OrderStory {
    /// How the order ended, if it did: `served`, `refunded` or
    /// `payment_failed` (the notification kinds).
    pub fn end(&self) -> Option<&'static str> {
        if self.served > 0 {
            Some("served")
        } else if !self.refunds.is_empty() {
            Some("refunded")
        } else if self.payment_failed && self.charges.is_empty() {
            Some("payment_failed")
        } else {
            None
        }
    }

    /// Whether nothing more will happen to it: ended, its customer told,
    /// and its saga (if it has one) ended.
    pub fn is_settled(&self) -> bool {
        self.end()
            .is_some_and(|end| self.notifications.contains_key(end))
            && (!self.saga_started || !self.saga_ends.is_empty())
    }
}

/// Every order's story, by order id, from the facts.
pub fn stories(facts: &[FactRecord]) -> BTreeMap<String, OrderStory> {
    let mut stories: BTreeMap<String, OrderStory> = BTreeMap::new();
    // A saga's id is its `Saga.Started`'s hash; the instance's own id is
    // the order's.
    let sagas: BTreeMap<String, String> = facts
        .iter()
        .filter(|fact| fact.type_name == SAGA_STARTED_TYPE)
        .map(|fact| (fact.hash.to_string(), fact.text("id")))
        .collect();
    for fact in facts {
        if fact.type_name == SAGA_STARTED_TYPE {
            stories.entry(fact.text("id")).or_default().saga_started = true;
            continue;
        }
        if fact.type_name == SAGA_TRANSITION_TYPE {
            let kind = fact.text("kind");
            let order_id = fact
                .predecessor("saga")
                .and_then(|saga| sagas.get(&saga).cloned());
            if let (true, Some(order_id)) = (SAGA_ENDS.contains(&kind.as_str()), order_id) {
                stories.entry(order_id).or_default().saga_ends.insert(kind);
            }
            continue;
        }
        let order_id = fact.text("order_id");
        if order_id.is_empty() {
            continue;
        }
        let type_name = fact.type_name.as_str();
        let story = stories.entry(order_id).or_default();
        if type_name == PlaceOrder::TYPE_NAME {
            story.requested = true;
            let version = fact.version();
            story.request_versions.insert(version);
            // What a reader of version 2 must see: the upcast's default for
            // version 1.
            let takeaway = if version >= 2 {
                fact.flag("takeaway")
            } else {
                Some(false)
            };
            story.requested_takeaway = story.requested_takeaway.or(takeaway);
        } else if type_name == OrderAccepted::TYPE_NAME {
            story.accepted = true;
        } else if type_name == OrderPlaced::TYPE_NAME {
            story.placed = true;
            story.placed_takeaway = fact.flag("takeaway");
        } else if type_name == PaymentCaptured::TYPE_NAME {
            story.charges.insert(fact.text("charge_id"));
        } else if type_name == PaymentFailed::TYPE_NAME {
            story.payment_failed = true;
        } else if type_name == PaymentRefunded::TYPE_NAME {
            story.refunds.insert(fact.text("charge_id"));
        } else if type_name == OrderServed::TYPE_NAME {
            story.served += 1;
        } else if type_name == NotificationSent::TYPE_NAME {
            *story.notifications.entry(fact.text("kind")).or_default() += 1;
        }
    }
    stories
}

/// Checks every invariant.
pub fn check(facts: &[FactRecord], dead_letters: &[DeadLetterRecord]) -> Vec<InvariantOutcome> {
    let stories = stories(facts);
    vec![
        charged_at_most_once(&stories),
        served_or_refunded(&stories),
        none_lost(&stories),
        no_notification_twice(&stories),
        every_customer_told(&stories),
        dead_letters_explained(&stories, dead_letters),
        requests_read_upcast(&stories),
        prepared_once_by_its_claimant(facts),
        every_saga_ended(&stories),
        restocked_by_its_timer(facts),
    ]
}

/// An outcome from the offending order ids (and why), with `summary` when
/// there are none.
fn outcome(name: &'static str, offenders: Vec<String>, summary: String) -> InvariantOutcome {
    if offenders.is_empty() {
        return InvariantOutcome {
            name,
            passed: true,
            detail: summary,
        };
    }
    let mut detail = format!("{} offending: ", offenders.len());
    for (index, offender) in offenders.iter().take(EXAMPLES_MAX).enumerate() {
        if index > 0 {
            detail.push_str("; ");
        }
        detail.push_str(offender);
    }
    if offenders.len() > EXAMPLES_MAX {
        let _ = write!(detail, "; …");
    }
    InvariantOutcome {
        name,
        passed: false,
        detail,
    }
}

fn charged_at_most_once(stories: &BTreeMap<String, OrderStory>) -> InvariantOutcome {
    let offenders = stories
        .iter()
        .filter(|(_, story)| story.charges.len() > 1)
        .map(|(order_id, story)| format!("{order_id} charged {} times", story.charges.len()))
        .collect();
    let charged = stories.values().filter(|s| !s.charges.is_empty()).count();
    outcome(
        "every order charged at most once",
        offenders,
        format!("{charged} orders charged, each once"),
    )
}

fn served_or_refunded(stories: &BTreeMap<String, OrderStory>) -> InvariantOutcome {
    let mut offenders = Vec::new();
    let (mut served, mut refunded, mut never_charged) = (0, 0, 0);
    for (order_id, story) in stories.iter().filter(|(_, story)| story.placed) {
        let unrefunded: Vec<&String> = story.charges.difference(&story.refunds).collect();
        let problem = match story.end() {
            None if story.charges.is_empty() => Some("neither paid nor given up"),
            None => Some("charged, but neither served nor refunded"),
            Some("served") if !story.refunds.is_empty() => Some("served and refunded"),
            Some("served") if story.charges.is_empty() => Some("served without a charge"),
            Some("served") if story.served > 1 => Some("served more than once"),
            Some("refunded") if !unrefunded.is_empty() => Some("a charge left unrefunded"),
            Some("served") => {
                served += 1;
                None
            }
            Some("refunded") => {
                refunded += 1;
                None
            }
            Some(_) => {
                never_charged += 1;
                None
            }
        };
        if let Some(problem) = problem {
            offenders.push(format!("{order_id}: {problem}"));
        }
    }
    outcome(
        "every order served or its money back",
        offenders,
        format!("{served} served, {refunded} refunded, {never_charged} declined and never charged"),
    )
}

fn none_lost(stories: &BTreeMap<String, OrderStory>) -> InvariantOutcome {
    let offenders = stories
        .iter()
        .filter(|(_, story)| (story.requested || story.accepted) && !story.placed)
        .map(|(order_id, story)| {
            let asked = if story.accepted {
                "accepted"
            } else {
                "requested"
            };
            format!("{order_id} {asked} but never placed")
        })
        .collect();
    let requested = stories.values().filter(|story| story.requested).count();
    outcome(
        "no order lost",
        offenders,
        format!("{requested} orders requested, each placed"),
    )
}

fn no_notification_twice(stories: &BTreeMap<String, OrderStory>) -> InvariantOutcome {
    let mut offenders = Vec::new();
    let mut sent = 0;
    for (order_id, story) in stories {
        for (kind, count) in &story.notifications {
            sent += count;
            if *count > 1 {
                offenders.push(format!("{order_id}: {kind} sent {count} times"));
            }
        }
    }
    outcome(
        "no notification sent twice",
        offenders,
        format!("{sent} notifications, none twice"),
    )
}

fn every_customer_told(stories: &BTreeMap<String, OrderStory>) -> InvariantOutcome {
    let offenders = stories
        .iter()
        .filter_map(|(order_id, story)| {
            let end = story.end()?;
            (!story.notifications.contains_key(end))
                .then(|| format!("{order_id} {end}, customer not told"))
        })
        .collect();
    let ended = stories
        .values()
        .filter(|story| story.end().is_some())
        .count();
    outcome(
        "every customer told how the order ended",
        offenders,
        format!("{ended} customers told"),
    )
}

fn dead_letters_explained(
    stories: &BTreeMap<String, OrderStory>,
    dead_letters: &[DeadLetterRecord],
) -> InvariantOutcome {
    let mut offenders = Vec::new();
    for dead_letter in dead_letters {
        let order_id = dead_letter.fact.text("order_id");
        let explained = dead_letter.subscription == crate::services::payments::SUBSCRIPTION
            && dead_letter.fact.type_name == OrderPlaced::TYPE_NAME
            && dead_letter
                .last_error
                .as_deref()
                .is_some_and(|error| !error.is_empty())
            && stories
                .get(&order_id)
                .is_some_and(|story| story.payment_failed && story.charges.is_empty());
        if !explained {
            offenders.push(format!(
                "{} in {}: {}",
                dead_letter.fact.hash,
                dead_letter.subscription,
                dead_letter
                    .last_error
                    .as_deref()
                    .unwrap_or("no error given")
            ));
        }
    }
    outcome(
        "dead letters explained",
        offenders,
        format!(
            "{} dead letters, each a declined payment with its reason and its Cafe.PaymentFailed",
            dead_letters.len()
        ),
    )
}

fn requests_read_upcast(stories: &BTreeMap<String, OrderStory>) -> InvariantOutcome {
    let mut offenders = Vec::new();
    let (mut version_one, mut version_two) = (0, 0);
    for (order_id, story) in stories.iter().filter(|(_, story)| story.placed) {
        if story.request_versions.contains(&1) {
            version_one += 1;
        }
        if story.request_versions.iter().any(|version| *version >= 2) {
            version_two += 1;
        }
        let Some(requested) = story.requested_takeaway else {
            continue;
        };
        if story.placed_takeaway != Some(requested) {
            offenders.push(format!(
                "{order_id}: asked takeaway {requested} (version {:?}), placed with {:?}",
                story.request_versions, story.placed_takeaway
            ));
        }
    }
    outcome(
        "every request read at schema version 2",
        offenders,
        format!("{version_one} orders from version-1 requests (read upcast), {version_two} from version 2"),
    )
}

/// No order made twice, and each by the cook whose bid won its claim:
/// from the `Cafe.OrderServed` facts (naming the cook), the bids
/// (`Cafe.PreparationClaimed`) and Cairn's `Cairn.Claimed` decisions.
fn prepared_once_by_its_claimant(facts: &[FactRecord]) -> InvariantOutcome {
    let bids: BTreeMap<String, String> = facts
        .iter()
        .filter(|fact| fact.type_name == PreparationClaimed::TYPE_NAME)
        .map(|fact| (fact.hash.to_string(), fact.text("worker")))
        .collect();
    let mut winners: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for claimed in facts.iter().filter(|fact| fact.type_name == CLAIMED_TYPE) {
        let key = claimed.text("key");
        let Some(order_id) = key.strip_prefix("prepare.") else {
            continue;
        };
        let worker = claimed
            .predecessor("fact")
            .and_then(|bid| bids.get(&bid).cloned())
            .unwrap_or_else(|| "an unknown bid".to_owned());
        winners
            .entry(order_id.to_owned())
            .or_default()
            .insert(worker);
    }
    let mut servings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for served in facts
        .iter()
        .filter(|fact| fact.type_name == OrderServed::TYPE_NAME)
    {
        servings
            .entry(served.text("order_id"))
            .or_default()
            .push(served.text("worker"));
    }
    let mut offenders = Vec::new();
    let mut by_worker: BTreeMap<&str, usize> = BTreeMap::new();
    for (order_id, workers) in &servings {
        let winner = winners.get(order_id);
        if workers.len() > 1 {
            offenders.push(format!(
                "{order_id} made {} times: {workers:?}",
                workers.len()
            ));
        } else if winner.is_none_or(|winner| winner.len() != 1 || !winner.contains(&workers[0])) {
            offenders.push(format!(
                "{order_id} made by {} but its claim was won by {:?}",
                workers[0],
                winner.cloned().unwrap_or_default()
            ));
        } else {
            *by_worker.entry(workers[0].as_str()).or_default() += 1;
        }
    }
    let split: Vec<String> = by_worker
        .iter()
        .map(|(worker, count)| format!("{count} by {worker}"))
        .collect();
    outcome(
        "no order prepared twice, each by the cook that won its claim",
        offenders,
        format!("{} orders made, {}", servings.len(), split.join(", ")),
    )
}

/// Every charged order's fulfilment saga ended: `completed` when stock
/// set the item aside, `compensated` — the charge refunded — when it ran
/// out; never `failed` (a refund given up) nor two ends.
fn every_saga_ended(stories: &BTreeMap<String, OrderStory>) -> InvariantOutcome {
    let mut offenders = Vec::new();
    let (mut completed, mut compensated) = (0, 0);
    for (order_id, story) in stories {
        if !story.charges.is_empty() && !story.saga_started {
            offenders.push(format!("{order_id}: charged without a saga"));
            continue;
        }
        if !story.saga_started {
            continue;
        }
        let ends: Vec<&str> = story.saga_ends.iter().map(String::as_str).collect();
        let refunded = !story.refunds.is_empty();
        match ends.as_slice() {
            ["completed"] if !refunded => completed += 1,
            ["compensated"] if refunded => compensated += 1,
            [] => offenders.push(format!("{order_id}: its saga never ended")),
            [end] => offenders.push(format!(
                "{order_id}: its saga ended {end} but the order was {}",
                if refunded { "refunded" } else { "not refunded" }
            )),
            ends => offenders.push(format!("{order_id}: its saga ended {ends:?}")),
        }
    }
    outcome(
        "every fulfilment saga ended: completed, or compensated with a refund",
        offenders,
        format!("{completed} completed, {compensated} compensated (refunded)"),
    )
}

/// The hash of a typed value's fact, as text.
fn hash_text<T: TypedFact>(value: &T) -> Option<String> {
    cairn_client::to_canonical_fact(value)
        .ok()
        .map(|fact| fact.hash.to_string())
}

/// What the facts say about the croissant delivery: the tombstone of the
/// first batch (if it sold out), the restock timer's facts for it, and
/// whether the new batch is on the menu.
struct Restock {
    withdrawn: Option<String>,
    fired: Vec<FactRecord>,
    back_on_menu: bool,
}

fn restock(facts: &[FactRecord]) -> Restock {
    let first_price = MENU
        .iter()
        .find(|(item, _)| *item == SCARCE_ITEM)
        .map_or(0, |(_, price)| *price);
    let first_batch = menu_item(SCARCE_ITEM, first_price)
        .ok()
        .and_then(|item| hash_text(&item));
    let new_batch = menu_item(SCARCE_ITEM, RESTOCK_PRICE_CENTS)
        .ok()
        .and_then(|item| hash_text(&item));
    let withdrawn = facts
        .iter()
        .find(|fact| {
            fact.type_name == MenuItemWithdrawn::TYPE_NAME
                && first_batch.is_some()
                && fact.predecessor("item") == first_batch
        })
        .map(|fact| fact.hash.to_string());
    let fired = facts
        .iter()
        .filter(|fact| {
            fact.type_name == RestockDue::TYPE_NAME
                && withdrawn.is_some()
                && fact.predecessor("withdrawn") == withdrawn
        })
        .cloned()
        .collect();
    let back_on_menu = facts.iter().any(|fact| {
        fact.type_name == MenuItem::TYPE_NAME && Some(fact.hash.to_string()) == new_batch
    });
    Restock {
        withdrawn,
        fired,
        back_on_menu,
    }
}

/// Whether the croissants sold out and their delivery has not yet put
/// them back on the menu (the drain waits for it).
pub fn restock_pending(facts: &[FactRecord]) -> bool {
    let restock = restock(facts);
    restock.withdrawn.is_some() && !restock.back_on_menu
}

/// The sold-out croissants came back: their restock timer fired once
/// (its `Cafe.RestockDue`, written by Cairn with `cairn_timer`) and the
/// new batch is on the menu.
fn restocked_by_its_timer(facts: &[FactRecord]) -> InvariantOutcome {
    let restock = restock(facts);
    let name = "the sold-out croissants restocked by their durable timer";
    let Some(_) = restock.withdrawn else {
        return outcome(
            name,
            Vec::new(),
            "croissants never sold out: no delivery due".to_owned(),
        );
    };
    let mut offenders = Vec::new();
    match restock.fired.as_slice() {
        [] => offenders.push("sold out, but the restock timer never fired".to_owned()),
        [due] if due.fields.get("cairn_timer").is_none() => {
            offenders.push("the delivery was not written by the timer".to_owned())
        }
        [_] => {}
        more => offenders.push(format!("the restock timer fired {} facts", more.len())),
    }
    if !restock.back_on_menu {
        offenders.push("the new batch never came back on the menu".to_owned());
    }
    let due = restock
        .fired
        .first()
        .and_then(|due| due.fields.get("cairn_timer"))
        .and_then(|timer| timer.get("due"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    outcome(
        name,
        offenders,
        format!("sold out, the timer fired once (due {due}), back on the menu"),
    )
}

/// The report's lines: one per invariant, then `invariants: N passed, M
/// failed` last.
pub fn report_lines(outcomes: &[InvariantOutcome]) -> Vec<String> {
    let mut lines: Vec<String> = outcomes
        .iter()
        .map(|outcome| {
            let verdict = if outcome.passed { "PASS" } else { "FAIL" };
            format!("  {verdict}  {}: {}", outcome.name, outcome.detail)
        })
        .collect();
    let passed = outcomes.iter().filter(|outcome| outcome.passed).count();
    lines.push(format!(
        "invariants: {passed} passed, {} failed",
        outcomes.len() - passed
    ));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_client::to_canonical_fact;

    fn record<T: TypedFact>(value: &T) -> FactRecord {
        let fact = to_canonical_fact(value).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&fact.canonical).unwrap();
        FactRecord::from_json(fact.hash, &json)
    }

    fn placed(order_id: &str) -> (OrderPlaced, Hash) {
        let order = OrderPlaced {
            order_id: order_id.to_owned(),
            customer: "ada".to_owned(),
            item: "espresso".to_owned(),
            price_cents: 250,
            takeaway: true,
        };
        let hash = record(&order).hash;
        (order, hash)
    }

    /// A cook's bid for an order.
    fn bid(order_id: &str, worker: &str) -> FactRecord {
        record(&PreparationClaimed {
            order_id: order_id.to_owned(),
            worker: worker.to_owned(),
            order: placed(order_id).1,
        })
    }

    /// Cairn's record that `bid` won the order's claim.
    fn claimed(order_id: &str, bid: &FactRecord) -> FactRecord {
        FactRecord::from_json(
            Hash([7; 32]),
            &serde_json::json!({
                "type": CLAIMED_TYPE,
                "fields": {"key": format!("prepare.{order_id}"), "generation": 1},
                "predecessors": {"fact": bid.hash.to_string()}
            }),
        )
    }

    /// The start of an order's fulfilment saga.
    fn saga_started(order_id: &str) -> FactRecord {
        record(&cairn_client::saga::facts::StartedFact {
            definition: Hash([3; 32]),
            id: order_id.to_owned(),
            input: serde_json::json!({}),
        })
    }

    /// A transition of `kind` in the journal of the saga `started`.
    fn saga_transition(started: &FactRecord, kind: &str) -> FactRecord {
        FactRecord::from_json(
            Hash([9; 32]),
            &serde_json::json!({
                "type": SAGA_TRANSITION_TYPE,
                "fields": {"kind": kind},
                "predecessors": {"saga": started.hash.to_string()}
            }),
        )
    }

    /// A served order's facts, notification included.
    fn served_order(order_id: &str) -> Vec<FactRecord> {
        let (order, hash) = placed(order_id);
        let bid = bid(order_id, "kitchen-1");
        let saga = saga_started(order_id);
        vec![
            record(&PlaceOrder {
                order_id: order_id.to_owned(),
                customer: "ada".to_owned(),
                item: "espresso".to_owned(),
                price_cents: 250,
                takeaway: true,
            }),
            record(&order),
            record(&PaymentCaptured {
                order_id: order_id.to_owned(),
                charge_id: format!("ch-{order_id}"),
                amount_cents: 250,
                item: "espresso".to_owned(),
                order: hash,
            }),
            saga_transition(&saga, "completed"),
            saga,
            bid.clone(),
            claimed(order_id, &bid),
            record(&OrderServed {
                order_id: order_id.to_owned(),
                item: "espresso".to_owned(),
                worker: "kitchen-1".to_owned(),
                order: hash,
            }),
            record(&NotificationSent {
                order_id: order_id.to_owned(),
                kind: "served".to_owned(),
                text: "enjoy".to_owned(),
                send_id: format!("n-{order_id}"),
                order: hash,
            }),
        ]
    }

    fn failed(outcomes: &[InvariantOutcome]) -> Vec<&'static str> {
        outcomes
            .iter()
            .filter(|outcome| !outcome.passed)
            .map(|outcome| outcome.name)
            .collect()
    }

    #[test]
    fn a_clean_run_passes_every_invariant() {
        let mut facts = served_order("o-1");
        facts.extend(served_order("o-2"));
        let outcomes = check(&facts, &[]);
        assert_eq!(failed(&outcomes), Vec::<&str>::new());
        assert_eq!(
            report_lines(&outcomes).last().unwrap(),
            "invariants: 10 passed, 0 failed"
        );
    }

    #[test]
    fn a_double_charge_fails() {
        let mut facts = served_order("o-1");
        let (_, hash) = placed("o-1");
        facts.push(record(&PaymentCaptured {
            order_id: "o-1".to_owned(),
            charge_id: "ch-second".to_owned(),
            amount_cents: 250,
            item: "espresso".to_owned(),
            order: hash,
        }));
        let outcomes = check(&facts, &[]);
        assert_eq!(failed(&outcomes), vec!["every order charged at most once"]);
        assert_eq!(
            report_lines(&outcomes).last().unwrap(),
            "invariants: 9 passed, 1 failed"
        );
    }

    #[test]
    fn a_notification_sent_twice_fails() {
        let mut facts = served_order("o-1");
        let (_, hash) = placed("o-1");
        facts.push(record(&NotificationSent {
            order_id: "o-1".to_owned(),
            kind: "served".to_owned(),
            text: "enjoy".to_owned(),
            send_id: "n-again".to_owned(),
            order: hash,
        }));
        assert_eq!(
            failed(&check(&facts, &[])),
            vec!["no notification sent twice"]
        );
    }

    #[test]
    fn a_charged_order_never_served_nor_refunded_fails() {
        let facts: Vec<FactRecord> = served_order("o-1")
            .into_iter()
            .filter(|fact| {
                fact.type_name != OrderServed::TYPE_NAME
                    && fact.type_name != NotificationSent::TYPE_NAME
            })
            .collect();
        assert_eq!(
            failed(&check(&facts, &[])),
            vec!["every order served or its money back"]
        );
    }

    #[test]
    fn a_version_one_request_placed_as_a_takeaway_fails() {
        // The old app's request cannot say takeaway: read at version 2 it is
        // not one, so an order placed as a takeaway misread it.
        let mut facts = served_order("o-1");
        facts[0] = record(&crate::facts::PlaceOrderV1 {
            order_id: "o-1".to_owned(),
            customer: "ada".to_owned(),
            item: "espresso".to_owned(),
            price_cents: 250,
        });
        assert_eq!(
            failed(&check(&facts, &[])),
            vec!["every request read at schema version 2"]
        );
    }

    #[test]
    fn an_order_made_by_both_cooks_or_by_the_loser_fails() {
        let (_, hash) = placed("o-1");
        let served_by = |worker: &str| {
            record(&OrderServed {
                order_id: "o-1".to_owned(),
                item: "espresso".to_owned(),
                worker: worker.to_owned(),
                order: hash,
            })
        };
        let mut twice = served_order("o-1");
        twice.push(bid("o-1", "kitchen-2"));
        twice.push(served_by("kitchen-2"));
        assert!(failed(&check(&twice, &[]))
            .contains(&"no order prepared twice, each by the cook that won its claim"));
        // Made once, but by the cook whose bid lost.
        let mut by_the_loser: Vec<FactRecord> = served_order("o-1")
            .into_iter()
            .filter(|fact| fact.type_name != OrderServed::TYPE_NAME)
            .collect();
        by_the_loser.push(bid("o-1", "kitchen-2"));
        by_the_loser.push(served_by("kitchen-2"));
        assert_eq!(
            failed(&check(&by_the_loser, &[])),
            vec!["no order prepared twice, each by the cook that won its claim"]
        );
    }

    #[test]
    fn a_saga_that_never_ended_or_ended_wrong_fails() {
        let saga_rule = "every fulfilment saga ended: completed, or compensated with a refund";
        let unended: Vec<FactRecord> = served_order("o-1")
            .into_iter()
            .filter(|fact| fact.type_name != SAGA_TRANSITION_TYPE)
            .collect();
        let outcomes = check(&unended, &[]);
        assert_eq!(failed(&outcomes), vec![saga_rule]);
        // Compensated, yet nobody got the money back.
        let mut compensated = unended.clone();
        compensated.push(saga_transition(&saga_started("o-1"), "compensated"));
        assert_eq!(failed(&check(&compensated, &[])), vec![saga_rule]);
        // Charged, and no saga took the order over.
        let without_saga: Vec<FactRecord> = unended
            .into_iter()
            .filter(|fact| fact.type_name != SAGA_STARTED_TYPE)
            .collect();
        assert_eq!(failed(&check(&without_saga, &[])), vec![saga_rule]);
    }

    #[test]
    fn sold_out_croissants_need_their_timer_and_the_new_batch() {
        let rule = "the sold-out croissants restocked by their durable timer";
        let sold_out = crate::services::stock::sold_out(SCARCE_ITEM, 280).unwrap();
        let mut facts = served_order("o-1");
        facts.push(record(&sold_out));
        assert_eq!(failed(&check(&facts, &[])), vec![rule]);
        assert!(restock_pending(&facts));
        // The timer's fact, as Cairn writes it: the template plus
        // `cairn_timer`.
        let due = RestockDue {
            item: SCARCE_ITEM.to_owned(),
            price_cents: RESTOCK_PRICE_CENTS,
            withdrawn: record(&sold_out).hash,
        };
        let mut fired: serde_json::Value =
            serde_json::from_slice(&cairn_client::to_canonical_fact(&due).unwrap().canonical)
                .unwrap();
        fired["fields"]["cairn_timer"] =
            serde_json::json!({"name": "restock.croissant", "due": "2026-12-07T03:00:00.000Z"});
        // The stock service reads the fired fact as its type.
        let typed =
            cairn_client::Typed::<RestockDue>::from_parts(Hash([5; 32]), 1, fired.clone()).unwrap();
        assert_eq!(typed.value, due);
        facts.push(FactRecord::from_json(Hash([5; 32]), &fired));
        assert_eq!(
            failed(&check(&facts, &[])),
            vec![rule],
            "not back on the menu"
        );
        facts.push(record(
            &menu_item(SCARCE_ITEM, RESTOCK_PRICE_CENTS).unwrap(),
        ));
        assert_eq!(failed(&check(&facts, &[])), Vec::<&str>::new());
        assert!(!restock_pending(&facts));
        // Back on the menu without the timer: a delivery nobody scheduled.
        let untimed: Vec<FactRecord> = facts
            .into_iter()
            .filter(|fact| fact.type_name != RestockDue::TYPE_NAME)
            .collect();
        assert_eq!(failed(&check(&untimed, &[])), vec![rule]);
    }

    #[test]
    fn a_request_without_an_order_is_lost() {
        let facts = vec![served_order("o-1").remove(0)];
        assert_eq!(failed(&check(&facts, &[])), vec!["no order lost"]);
    }

    #[test]
    fn a_declined_order_with_its_failure_is_an_explained_dead_letter() {
        let (order, hash) = placed("o-9");
        let facts = vec![
            record(&order),
            record(&PaymentFailed {
                order_id: "o-9".to_owned(),
                reason: "503".to_owned(),
                attempts: 3,
                order: hash,
            }),
            record(&NotificationSent {
                order_id: "o-9".to_owned(),
                kind: "payment_failed".to_owned(),
                text: "sorry".to_owned(),
                send_id: "n-9".to_owned(),
                order: hash,
            }),
        ];
        let dead_letter = DeadLetterRecord {
            subscription: crate::services::payments::SUBSCRIPTION.to_owned(),
            fact: record(&order),
            last_error: Some("card provider: 503".to_owned()),
        };
        let outcomes = check(&facts, std::slice::from_ref(&dead_letter));
        assert_eq!(failed(&outcomes), Vec::<&str>::new());
        let unexplained = DeadLetterRecord {
            subscription: "kitchen-1".to_owned(),
            ..dead_letter
        };
        assert_eq!(
            failed(&check(&facts, &[unexplained])),
            vec!["dead letters explained"]
        );
    }
}
