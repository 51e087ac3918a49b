//! `both_backends!`: runs each listed check — an `async fn(&S)` over a
//! store — against a fresh embedded store and against PostgreSQL (a fresh
//! database per test; skipped where `TestDatabase::create` finds none),
//! as `embedded::<check>` and `postgres::<check>`. The conformance suites
//! of the store's traits share it (`conformance.rs`, `identities.rs`,
//! `coordination.rs`, `timers.rs`, `links.rs`); the including file imports
//! `EmbeddedStore`, `EmbeddedOptions`, `PostgresStore`, `PostgresOptions`
//! and `TestDatabase`.

macro_rules! both_backends {
    ($($check:ident),* $(,)?) => {
        mod embedded {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
                    super::$check(&store).await;
                    tokio::task::spawn_blocking(move || store.close()).await.unwrap();
                }
            )*
        }

        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    let Some(database) = TestDatabase::create().await else {
                        return;
                    };
                    let store = PostgresStore::connect(&database.url(), PostgresOptions::default())
                        .await
                        .unwrap();
                    super::$check(&store).await;
                    store.close();
                }
            )*
        }
    };
}
