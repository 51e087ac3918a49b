//! The two delivery engines under test, built as the server builds them
//! but on a simulated clock and seeded token secrets: the in-memory engine
//! over a fresh embedded store in a temporary directory, and the shared
//! engine over a fresh PostgreSQL database. A restart rebuilds an engine
//! from its storage as a server start does.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cairn_delivery::MessageStatus;
use cairn_fact::CanonicalFact;
use cairn_server::clock::Clock;
use cairn_server::delivery::memory::{MemoryDeliveries, MemoryOptions};
use cairn_server::delivery::shared::{SharedDeliveries, SharedOptions};
use cairn_server::delivery::{Deliveries, Subscription, TokenSecrets};
use cairn_store::postgres::testing::TestDatabase;
use cairn_store::{
    DeliveryStore, EmbeddedOptions, EmbeddedStore, PostgresOptions, PostgresStore, Store,
};

/// Which engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    /// `delivery::memory` over the embedded store.
    Memory,
    /// `delivery::shared` over PostgreSQL.
    Shared,
}

impl EngineKind {
    /// Whether leases survive a restart (they are rows on PostgreSQL, and
    /// not recorded by the embedded store).
    pub fn leases_survive_restart(self) -> bool {
        self == EngineKind::Shared
    }
}

enum Backend {
    Memory {
        dir: tempfile::TempDir,
        /// `None` only while restarting.
        store: Option<Arc<EmbeddedStore>>,
    },
    Shared {
        store: Arc<PostgresStore>,
        /// The database, when the engine has one of its own (dropped after
        /// the store: the database goes when the engine does).
        _database: Option<Box<TestDatabase>>,
    },
}

/// A PostgreSQL database for a whole sweep of seeds, emptied before each
/// run (creating a database costs about a second, more than a run), so
/// that every run starts on a fresh one: seqs from 1, as in the run's
/// embedded store.
pub struct SharedDatabase {
    database: TestDatabase,
    store: Option<Arc<PostgresStore>>,
}

impl SharedDatabase {
    /// The database, or `None` when `CAIRN_TEST_POSTGRES=skip`.
    pub async fn create() -> Option<SharedDatabase> {
        Some(SharedDatabase {
            database: TestDatabase::create().await?,
            store: None,
        })
    }

    /// Empties the database and connects a store to it, closing the
    /// previous run's.
    pub async fn fresh_store(&mut self) -> Arc<PostgresStore> {
        // The first run finds the database new (and without a schema yet).
        if let Some(store) = self.store.take() {
            store.close();
            self.database
                .empty()
                .await
                .expect("the test database empties");
        }
        let store = connect(&self.database).await;
        self.store = Some(Arc::clone(&store));
        store
    }
}

async fn connect(database: &TestDatabase) -> Arc<PostgresStore> {
    Arc::new(
        PostgresStore::connect(&database.url(), PostgresOptions::default())
            .await
            .expect("the test database accepts connections"),
    )
}

/// One engine with its storage.
pub struct Engine {
    /// Which one.
    pub kind: EngineKind,
    clock: Clock,
    secrets: TokenSecrets,
    deliveries: Arc<dyn Deliveries>,
    backend: Backend,
}

impl Engine {
    /// The in-memory engine on a fresh embedded store.
    pub fn memory(clock: Clock, secrets_seed: u64) -> Engine {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Arc::new(
            EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).expect("the store opens"),
        );
        let secrets = TokenSecrets::seeded(secrets_seed);
        let deliveries = memory_deliveries(&store, &clock, &secrets);
        Engine {
            kind: EngineKind::Memory,
            clock,
            secrets,
            deliveries,
            backend: Backend::Memory {
                dir,
                store: Some(store),
            },
        }
    }

    /// The shared engine on a fresh PostgreSQL database of its own, or
    /// `None` when `CAIRN_TEST_POSTGRES=skip`.
    pub async fn shared(clock: Clock, secrets_seed: u64) -> Option<Engine> {
        let database = TestDatabase::create().await?;
        let store = connect(&database).await;
        Some(Engine::shared_over(
            store,
            Some(Box::new(database)),
            clock,
            secrets_seed,
        ))
    }

    /// The shared engine over `store` (see [`SharedDatabase`]).
    pub fn shared_on(store: Arc<PostgresStore>, clock: Clock, secrets_seed: u64) -> Engine {
        Engine::shared_over(store, None, clock, secrets_seed)
    }

    fn shared_over(
        store: Arc<PostgresStore>,
        database: Option<Box<TestDatabase>>,
        clock: Clock,
        secrets_seed: u64,
    ) -> Engine {
        let secrets = TokenSecrets::seeded(secrets_seed);
        let deliveries = shared_deliveries(&store, &clock, &secrets);
        Engine {
            kind: EngineKind::Shared,
            clock,
            secrets,
            deliveries,
            backend: Backend::Shared {
                store,
                _database: database,
            },
        }
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The registry.
    pub fn deliveries(&self) -> &dyn Deliveries {
        &*self.deliveries
    }

    /// The subscription named `name`.
    pub async fn subscription(&self, name: &str) -> Arc<dyn Subscription> {
        self.deliveries
            .get(name)
            .await
            .unwrap_or_else(|error| panic!("{:?}: subscription {name}: {error}", self.kind))
    }

    /// Stores facts (durably); their seqs.
    pub async fn publish(&self, facts: Vec<CanonicalFact>) -> Vec<u64> {
        let outcomes = match &self.backend {
            Backend::Memory { store, .. } => {
                let store = store.as_ref().expect("the store is open");
                store.put_facts(facts).await
            }
            Backend::Shared { store, .. } => store.put_facts(facts).await,
        };
        outcomes
            .unwrap_or_else(|error| panic!("{:?}: publishing: {error}", self.kind))
            .iter()
            .map(|outcome| outcome.seq)
            .collect()
    }

    /// The seqs of the dead and discarded letters of subscription `name`,
    /// read from the storage without going through the engine (which
    /// would first end the leases that ran out: a check must not change
    /// what it checks).
    pub async fn dead_seqs(&self, name: &str) -> BTreeSet<u64> {
        const LETTERS_MAX: usize = 100_000;
        let mut seqs = BTreeSet::new();
        match &self.backend {
            Backend::Memory { store, .. } => {
                let store = store.as_ref().expect("the store is open");
                let id = store
                    .load_subscriptions()
                    .expect("subscriptions read")
                    .into_iter()
                    .find(|stored| stored.record.name == name)
                    .expect("the subscription exists")
                    .record
                    .id;
                // Changes are queued in order: wait until they are applied.
                store
                    .write_delivery(id, Vec::new(), true)
                    .await
                    .expect("a barrier");
                for status in [MessageStatus::Dead, MessageStatus::Discarded] {
                    let records = store
                        .message_records(id, status, 0, LETTERS_MAX)
                        .expect("records read");
                    seqs.extend(records.into_iter().map(|(seq, _)| seq));
                }
            }
            Backend::Shared { store, .. } => {
                let id = store
                    .subscription(name)
                    .await
                    .expect("subscriptions read")
                    .expect("the subscription exists")
                    .id;
                for status in [MessageStatus::Dead, MessageStatus::Discarded] {
                    let rows = store
                        .message_rows(id, status, 0, LETTERS_MAX)
                        .await
                        .expect("rows read");
                    seqs.extend(rows.into_iter().map(|(seq, _, _)| seq));
                }
            }
        }
        seqs
    }

    /// Another server on the same database (shared engine only), built
    /// with `options`.
    pub fn another_server(&self, options: SharedOptions) -> Option<Arc<dyn Deliveries>> {
        match &self.backend {
            Backend::Shared { store, .. } => {
                Some(Arc::new(SharedDeliveries::new(Arc::clone(store), options)))
            }
            Backend::Memory { .. } => None,
        }
    }

    /// Stops the server and starts a new one on the same storage: the
    /// embedded store is closed and opened again and the subscriptions
    /// loaded from it; on PostgreSQL a new engine (a new server) takes over
    /// the same database.
    pub fn restart(&mut self) {
        match &mut self.backend {
            Backend::Memory { dir, store } => {
                // The engine holds the store too: drop both before the
                // directory is opened again.
                if let Some(old) = store.take() {
                    old.close();
                }
                self.deliveries = Arc::new(NoDeliveries);
                let reopened = Arc::new(
                    EmbeddedStore::open(dir.path(), EmbeddedOptions::default())
                        .expect("the store opens again"),
                );
                self.deliveries = memory_deliveries(&reopened, &self.clock, &self.secrets);
                *store = Some(reopened);
            }
            Backend::Shared { store, .. } => {
                self.deliveries = shared_deliveries(store, &self.clock, &self.secrets);
            }
        }
    }
}

fn memory_deliveries(
    store: &Arc<EmbeddedStore>,
    clock: &Clock,
    secrets: &TokenSecrets,
) -> Arc<dyn Deliveries> {
    let options = MemoryOptions {
        clock: clock.clone(),
        secrets: secrets.clone(),
    };
    Arc::new(MemoryDeliveries::load(Arc::clone(store), options).expect("the subscriptions load"))
}

fn shared_deliveries(
    store: &Arc<PostgresStore>,
    clock: &Clock,
    secrets: &TokenSecrets,
) -> Arc<dyn Deliveries> {
    let options = SharedOptions {
        clock: Some(clock.clone()),
        secrets: secrets.clone(),
        // Expired leases are ended on every operation that looks for
        // them, as the in-memory engine does, so that a run depends on the
        // simulated clock alone and not on how fast the machine is.
        expiry_interval: Duration::ZERO,
    };
    Arc::new(SharedDeliveries::new(Arc::clone(store), options))
}

/// The registry between a stop and a start: there is none.
struct NoDeliveries;

impl Deliveries for NoDeliveries {
    fn apply<'a>(
        &'a self,
        _name: &'a str,
        _definition: cairn_delivery::SubscriptionDefinition,
        _precondition: Option<cairn_api::GenerationPrecondition>,
    ) -> cairn_server::delivery::Answer<'a, (Arc<dyn Subscription>, cairn_server::delivery::Applied)>
    {
        unreachable!("no server is running")
    }

    fn get<'a>(
        &'a self,
        _name: &'a str,
    ) -> cairn_server::delivery::Answer<'a, Arc<dyn Subscription>> {
        unreachable!("no server is running")
    }

    fn list(&self) -> cairn_server::delivery::Answer<'_, Vec<Arc<dyn Subscription>>> {
        unreachable!("no server is running")
    }

    fn delete<'a>(&'a self, _name: &'a str) -> cairn_server::delivery::Answer<'a, ()> {
        unreachable!("no server is running")
    }
}
