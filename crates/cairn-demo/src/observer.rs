//! The demo's view of the café: it reads Cairn's log (with the admin
//! token, over the public HTTP API) page by page from where it stopped, and
//! keeps every `Cafe.*` fact, Cairn's `Cairn.Claimed` and the sagas' journals; the progress line, the drain and the
//! invariants are all computed from these facts and the subscriptions'
//! dead letters, never from what the services hold in memory.

use cairn_client::{Client, DeadLetterQuery, LogQuery, SagaRunner};

use crate::error::DemoError;
use crate::invariants::{
    stories, DeadLetterRecord, FactRecord, CLAIMED_TYPE, SAGA_STARTED_TYPE, SAGA_TRANSITION_TYPE,
};
use crate::limits::{DEAD_LETTERS_MAX, LOG_PAGES_PER_READ_MAX, LOG_PAGE_FACTS};
use crate::services::{fulfilment, kitchen, notifications, orders, payments, stock};

/// Every subscription of the café.
pub fn subscriptions() -> Vec<String> {
    let mut names = vec![
        orders::SUBSCRIPTION,
        payments::SUBSCRIPTION,
        stock::SUBSCRIPTION,
        stock::RESTOCK_SUBSCRIPTION,
    ];
    names.extend(kitchen::WORKERS);
    names.extend(notifications::SUBSCRIPTIONS.iter().map(|(name, _)| *name));
    let mut names: Vec<String> = names.into_iter().map(str::to_owned).collect();
    names.extend(SagaRunner::subscription_names(
        fulfilment::SAGA_NAME,
        fulfilment::SAGA_VERSION,
    ));
    names
}

/// Whether the report needs facts of this type: the café's own, and
/// Cairn's records of the decisions the café asked for (claims), and
/// the fulfilment sagas' journals.
fn is_cafe_fact(type_name: &str) -> bool {
    type_name.starts_with("Cafe.")
        || type_name == CLAIMED_TYPE
        || type_name == SAGA_STARTED_TYPE
        || type_name == SAGA_TRANSITION_TYPE
}

/// The facts read so far and where the next read starts.
pub struct Observer {
    client: Client,
    after: u64,
    facts: Vec<FactRecord>,
}

/// Counts for the progress line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Orders requested by customers.
    pub requested: usize,
    /// Orders placed.
    pub placed: usize,
    /// Orders served.
    pub served: usize,
    /// Orders refunded.
    pub refunded: usize,
    /// Orders declined.
    pub declined: usize,
    /// Orders that ended and whose customer was told.
    pub settled: usize,
}

impl Observer {
    /// An observer reading through `client` (an admin's).
    pub fn new(client: Client) -> Observer {
        Observer {
            client,
            after: 0,
            facts: Vec::new(),
        }
    }

    /// Reads what was added to the log since the last read.
    pub async fn read(&mut self) -> Result<(), DemoError> {
        for _ in 0..LOG_PAGES_PER_READ_MAX {
            let page = self
                .client
                .log(LogQuery {
                    after: Some(self.after),
                    limit: Some(LOG_PAGE_FACTS),
                    wait_ms: None,
                })
                .await?;
            let read = page.facts.len();
            for stored in page.facts {
                let record = FactRecord::from_json(stored.hash, &stored.fact);
                if is_cafe_fact(&record.type_name) {
                    self.facts.push(record);
                }
            }
            self.after = self.after.max(page.next);
            if read < LOG_PAGE_FACTS as usize {
                break;
            }
        }
        Ok(())
    }

    /// The facts read.
    pub fn facts(&self) -> &[FactRecord] {
        &self.facts
    }

    /// The counts of the progress line.
    pub fn progress(&self) -> Progress {
        let mut progress = Progress::default();
        for story in stories(&self.facts).values() {
            progress.requested += usize::from(story.requested);
            progress.placed += usize::from(story.placed);
            match story.end() {
                Some("served") => progress.served += 1,
                Some("refunded") => progress.refunded += 1,
                Some(_) => progress.declined += 1,
                None => {}
            }
            progress.settled += usize::from(story.is_settled());
        }
        progress
    }

    /// Every dead letter of the café's subscriptions.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetterRecord>, DemoError> {
        let mut dead_letters = Vec::new();
        for subscription in subscriptions() {
            let mut after = 0;
            loop {
                let page = self
                    .client
                    .dead_letters(
                        &subscription,
                        DeadLetterQuery {
                            limit: Some(1_000),
                            after: Some(after),
                            discarded: false,
                        },
                    )
                    .await?;
                let read = page.messages.len();
                for message in page.messages {
                    after = after.max(message.seq);
                    dead_letters.push(DeadLetterRecord {
                        subscription: subscription.clone(),
                        fact: FactRecord::from_json(message.hash, &message.fact),
                        last_error: message.last_error,
                    });
                }
                if read < 1_000 || dead_letters.len() >= DEAD_LETTERS_MAX as usize {
                    break;
                }
            }
        }
        Ok(dead_letters)
    }
}
