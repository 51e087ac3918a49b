//! The shared delivery engine's statements on PostgreSQL, where storage is
//! what is being tested: the bytes admission reads to find a message's
//! ordering key and not-before time are verified like every other read,
//! and a stored fact that does not match its hash, or does not parse, is
//! corruption (`WriteError::Corrupt`), never default attributes.

use cairn_delivery::TokenKey;
use cairn_fact::CanonicalFact;
use cairn_store::postgres::delivery::{Admission, CreateOutcome};
use cairn_store::postgres::testing::TestDatabase;
use cairn_store::{MessageSelection, PostgresOptions, PostgresStore, Store, WriteError};

const WINDOW_MAX: usize = 100;

/// A fresh store with a subscription to `Job` facts ordered by `customer`
/// and one such fact (seq 2) naming a customer (seq 1); `None` without
/// PostgreSQL.
async fn store_with_one_message() -> Option<(TestDatabase, PostgresStore, u64)> {
    let database = TestDatabase::create().await?;
    let store = PostgresStore::connect(&database.url(), PostgresOptions::default())
        .await
        .expect("the test database accepts connections");
    let customer = CanonicalFact::from_json(
        br#"{"type":"Customer","fields":{},"predecessors":{}}"#,
        65_536,
    )
    .unwrap();
    let job = CanonicalFact::from_json(
        format!(
            r#"{{"type":"Job","fields":{{"cairn_not_before":"2026-11-28T09:00:00Z"}},
                "predecessors":{{"customer":"{}"}}}}"#,
            customer.hash
        )
        .as_bytes(),
        65_536,
    )
    .unwrap();
    store.put_facts(vec![customer, job]).await.unwrap();
    // The statements do not read the definition; the engine does.
    let json = r#"{"type":"Job","ordering_key":"customer"}"#;
    let key = TokenKey::from_seed(1);
    let CreateOutcome::Created(row) = store
        .create_subscription("jobs", json, false, 10, key.secret(), None)
        .await
        .unwrap()
    else {
        panic!("the subscription is new");
    };
    Some((database, store, row.id))
}

async fn admit(store: &PostgresStore, id: u64) -> Result<Admission, WriteError> {
    store
        .admit(
            id,
            &MessageSelection::Type("Job".into()),
            WINDOW_MAX,
            Some("customer"),
            None,
            None,
        )
        .await
}

/// Runs `sql` on the store's database.
async fn damage(store: &PostgresStore, sql: &str) {
    sqlx::query(sql).execute(store.pool()).await.unwrap();
}

#[tokio::test]
async fn admission_reads_attributes_from_verified_bytes() {
    let Some((_database, store, id)) = store_with_one_message().await else {
        return;
    };
    let admission = admit(&store, id).await.unwrap();
    assert!(matches!(
        admission,
        Admission::Admitted { n_admitted: 1, .. }
    ));
    let (available_at_ms, key): (i64, Vec<u8>) =
        sqlx::query_as("SELECT available_at_ms, ordering_key FROM cairn_messages WHERE seq = 2")
            .fetch_one(store.pool())
            .await
            .unwrap();
    let customer: Vec<u8> = sqlx::query_scalar("SELECT hash FROM cairn_facts WHERE seq = 1")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!((available_at_ms, key), (1_795_856_400_000, customer));
}

#[tokio::test]
async fn admission_refuses_bytes_that_do_not_match_their_hash() {
    let Some((_database, store, id)) = store_with_one_message().await else {
        return;
    };
    // One byte of the fact's JSON changes; its hash stays.
    damage(
        &store,
        "UPDATE cairn_facts SET canonical = overlay(canonical PLACING '9' FROM
             position('2026' IN convert_from(canonical, 'UTF8')) FOR 1) WHERE seq = 2",
    )
    .await;
    let error = admit(&store, id).await.unwrap_err();
    assert!(matches!(error, WriteError::Corrupt(_)), "{error:?}");
    assert!(
        error.to_string().contains("does not match its hash"),
        "{error}"
    );
}

#[tokio::test]
async fn admission_refuses_a_stored_fact_that_does_not_parse() {
    let Some((_database, store, id)) = store_with_one_message().await else {
        return;
    };
    // Bytes and hash agree, but the bytes are no fact.
    let bytes = b"{\"cairn_not_before\":";
    let hash = blake3::hash(bytes);
    damage(
        &store,
        &format!(
            "UPDATE cairn_facts SET canonical = '\\x{}', hash = '\\x{}' WHERE seq = 2",
            hex(bytes),
            hex(hash.as_bytes())
        ),
    )
    .await;
    let error = admit(&store, id).await.unwrap_err();
    assert!(matches!(error, WriteError::Corrupt(_)), "{error:?}");
    assert!(error.to_string().contains("does not parse"), "{error}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
