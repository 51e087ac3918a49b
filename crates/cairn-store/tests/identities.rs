//! The `IdentityStore` contract, checked through the traits alone on both
//! backends (the `identity_conformance!` macro runs every check against
//! the embedded store and against PostgreSQL, a fresh database per test):
//! identities created, listed, rotated and revoked, with their refusals;
//! the revision; token uses; the audit trail with its paging and pruning;
//! authorship recorded atomically with the facts; and everything still
//! there after the store is reopened.

#[macro_use]
mod both_backends;

use std::sync::Arc;

use cairn_fact::{CanonicalFact, Hash};
use cairn_store::postgres::testing::TestDatabase;
use cairn_store::{
    AuditRecord, AuthorRecord, EmbeddedOptions, EmbeddedStore, IdentityError, IdentityRecord,
    IdentityStore, PostgresOptions, PostgresStore, Store, TokenRecord, WriteError,
    AUTHORS_AGAIN_MAX,
};

fn fact(type_name: &str, fields: &str, predecessors: &[(&str, &Hash)]) -> CanonicalFact {
    let predecessors: Vec<String> = predecessors
        .iter()
        .map(|(role, hash)| format!("\"{role}\":\"{hash}\""))
        .collect();
    let json = format!(
        r#"{{"type":"{type_name}","fields":{fields},"predecessors":{{{}}}}}"#,
        predecessors.join(",")
    );
    CanonicalFact::from_json(json.as_bytes(), 65536).unwrap()
}

fn token(id: &str, created_at_ms: u64) -> TokenRecord {
    TokenRecord {
        id: id.to_string(),
        secret_hash: *blake3::hash(id.as_bytes()).as_bytes(),
        created_at_ms,
        expires_at_ms: None,
        last_used_at_ms: None,
    }
}

fn identity(name: &str, tokens: Vec<TokenRecord>) -> IdentityRecord {
    IdentityRecord {
        name: name.to_string(),
        permissions_json: format!(r#"{{"read":["{name}.*"]}}"#),
        rate_per_s: Some(100),
        write_rate_per_s: None,
        created_at_ms: 1_000,
        tokens,
    }
}

fn audit_entry(detail: &str) -> AuditRecord {
    AuditRecord {
        seq: 999,
        at_ms: 5,
        identity: "-".into(),
        method: "POST".into(),
        route: "/v1/facts".into(),
        outcome: "forbidden".into(),
        status: 403,
        count: 1,
        detail: detail.into(),
    }
}

fn author(name: &str) -> Option<Arc<str>> {
    Some(Arc::from(name))
}

async fn identities_are_created_listed_rotated_and_revoked<S: IdentityStore>(store: &S) {
    let start = store.identity_revision().await.unwrap();
    let billing = identity("billing", vec![token("00000000000000b1", 1_000)]);
    store.create_identity(billing.clone()).await.unwrap();
    let after_create = store.identity_revision().await.unwrap();
    assert!(after_create > start);
    assert_eq!(store.identities().await.unwrap(), vec![billing.clone()]);

    let again = store
        .create_identity(identity("billing", vec![token("00000000000000b9", 1)]))
        .await;
    assert!(matches!(again, Err(IdentityError::Exists(name)) if name == "billing"));
    let taken = store
        .create_identity(identity("shop", vec![token("00000000000000b1", 1)]))
        .await;
    assert!(
        matches!(&taken, Err(IdentityError::TokenIdTaken(id)) if id == "00000000000000b1"),
        "{taken:?}"
    );
    assert_eq!(store.identity_revision().await.unwrap(), after_create);
    assert_eq!(store.identities().await.unwrap().len(), 1);

    let admin = identity("admin", Vec::new());
    store.create_identity(admin.clone()).await.unwrap();
    let names: Vec<String> = store
        .identities()
        .await
        .unwrap()
        .into_iter()
        .map(|identity| identity.name)
        .collect();
    assert_eq!(names, vec!["admin", "billing"], "listed by name");

    // Rotation: the old token expires at the overlap's end at the latest.
    let before_rotate = store.identity_revision().await.unwrap();
    store
        .rotate_token("billing", token("00000000000000b2", 2_000), 5_000)
        .await
        .unwrap();
    assert!(store.identity_revision().await.unwrap() > before_rotate);
    store
        .rotate_token("billing", token("00000000000000b3", 3_000), 9_000)
        .await
        .unwrap();
    let stored = store.identities().await.unwrap();
    let tokens: Vec<(&str, Option<u64>)> = stored[1]
        .tokens
        .iter()
        .map(|token| (token.id.as_str(), token.expires_at_ms))
        .collect();
    assert_eq!(
        tokens,
        vec![
            ("00000000000000b1", Some(5_000)),
            ("00000000000000b2", Some(9_000)),
            ("00000000000000b3", None),
        ],
        "oldest first; an expiry never moves later"
    );
    let unknown = store
        .rotate_token("nobody", token("00000000000000c1", 1), 1)
        .await;
    assert!(matches!(unknown, Err(IdentityError::Unknown(name)) if name == "nobody"));
    let reused = store
        .rotate_token("admin", token("00000000000000b3", 1), 1)
        .await;
    assert!(
        matches!(reused, Err(IdentityError::TokenIdTaken(_))),
        "{reused:?}"
    );

    let before_revoke = store.identity_revision().await.unwrap();
    store.revoke_identity("billing").await.unwrap();
    assert!(store.identity_revision().await.unwrap() > before_revoke);
    assert_eq!(store.identities().await.unwrap(), vec![admin]);
    let revision = store.identity_revision().await.unwrap();
    let gone = store.revoke_identity("billing").await;
    assert!(matches!(gone, Err(IdentityError::Unknown(name)) if name == "billing"));
    assert_eq!(store.identity_revision().await.unwrap(), revision);
    // The revoked identity's token ids are free again.
    store
        .create_identity(identity("billing", vec![token("00000000000000b1", 4_000)]))
        .await
        .unwrap();
}

async fn token_uses_are_recorded_without_moving_the_revision<S: IdentityStore>(store: &S) {
    store
        .create_identity(identity(
            "reader",
            vec![token("00000000000000a1", 1), token("00000000000000a2", 2)],
        ))
        .await
        .unwrap();
    let revision = store.identity_revision().await.unwrap();
    store
        .record_token_uses(vec![
            ("00000000000000a1".into(), 30),
            ("00000000000000a1".into(), 10),
            ("ffffffffffffffff".into(), 50),
        ])
        .await
        .unwrap();
    // An older use recorded later does not move the time back.
    store
        .record_token_uses(vec![("00000000000000a1".into(), 20)])
        .await
        .unwrap();
    store.record_token_uses(Vec::new()).await.unwrap();
    assert_eq!(store.identity_revision().await.unwrap(), revision);
    let stored = store.identities().await.unwrap();
    let used: Vec<Option<u64>> = stored[0]
        .tokens
        .iter()
        .map(|token| token.last_used_at_ms)
        .collect();
    assert_eq!(used, vec![Some(30), None]);
}

async fn the_audit_trail_appends_and_pages<S: IdentityStore>(store: &S) {
    assert!(store.audit(0, 10).await.unwrap().is_empty());
    let details = ["a", "b", "c", "d", "e"];
    store
        .append_audit(
            details[..2]
                .iter()
                .map(|detail| audit_entry(detail))
                .collect(),
        )
        .await
        .unwrap();
    store
        .append_audit(
            details[2..]
                .iter()
                .map(|detail| audit_entry(detail))
                .collect(),
        )
        .await
        .unwrap();
    store.append_audit(Vec::new()).await.unwrap();
    let first = store.audit(0, 3).await.unwrap();
    assert_eq!(first.len(), 3);
    assert!(first.windows(2).all(|pair| pair[0].seq < pair[1].seq));
    let rest = store.audit(first[2].seq, 10).await.unwrap();
    let all: Vec<&str> = first
        .iter()
        .chain(&rest)
        .map(|entry| entry.detail.as_str())
        .collect();
    assert_eq!(all, details);
    let expected = AuditRecord {
        seq: first[0].seq,
        ..audit_entry("a")
    };
    assert_eq!(first[0], expected, "every field read back; seq assigned");
}

async fn authorship_is_recorded_with_the_facts<S: Store + IdentityStore>(store: &S) {
    let parent = fact("T.Parent", "{}", &[]);
    let outcomes = store
        .put_facts_by(vec![parent.clone(), parent.clone()], author("alice"))
        .await
        .unwrap();
    assert!(outcomes[0].inserted);
    let record = |first: &str, again: &[&str]| AuthorRecord {
        first: first.to_string(),
        again: again.iter().map(|name| name.to_string()).collect(),
    };
    assert_eq!(
        store.authorship(&parent.hash).await.unwrap(),
        Some(record("alice", &[]))
    );
    for name in ["bob", "alice", "carol", "bob"] {
        store
            .put_facts_by(vec![parent.clone()], author(name))
            .await
            .unwrap();
    }
    store.put_facts(vec![parent.clone()]).await.unwrap();
    assert_eq!(
        store.authorship(&parent.hash).await.unwrap(),
        Some(record("alice", &["bob", "carol"]))
    );
    // Up to the cap, in order; then nobody more.
    let others: Vec<String> = (0..AUTHORS_AGAIN_MAX + 3)
        .map(|n| format!("writer{n:02}"))
        .collect();
    for name in &others {
        // Beside a new fact, so that batches of several facts are covered.
        let new = fact("T.Other", &format!(r#"{{"by":"{name}"}}"#), &[]);
        store
            .put_facts_by(vec![new, parent.clone()], author(name))
            .await
            .unwrap();
    }
    let mut expected_again = vec!["bob", "carol"];
    expected_again.extend(others.iter().map(String::as_str));
    expected_again.truncate(AUTHORS_AGAIN_MAX);
    assert_eq!(
        store.authorship(&parent.hash).await.unwrap(),
        Some(record("alice", &expected_again))
    );

    // Written without an author: nothing, even when an identity writes it
    // again later (who stored it is unknown).
    let anonymous = fact("T.Anonymous", "{}", &[]);
    store.put_facts(vec![anonymous.clone()]).await.unwrap();
    store
        .put_facts_by(vec![anonymous.clone()], author("dave"))
        .await
        .unwrap();
    assert_eq!(store.authorship(&anonymous.hash).await.unwrap(), None);

    // A refused batch records nothing, for new and stored facts alike.
    let child = fact("T.Child", "{}", &[("parent", &parent.hash)]);
    let orphan = fact("T.Child", "{}", &[("parent", &Hash([7; 32]))]);
    let refused = store
        .put_facts_by(vec![child.clone(), parent.clone(), orphan], author("eve"))
        .await;
    assert!(matches!(
        refused,
        Err(WriteError::MissingPredecessors { .. })
    ));
    assert_eq!(store.authorship(&child.hash).await.unwrap(), None);
    assert_eq!(
        store.authorship(&parent.hash).await.unwrap().unwrap().again,
        expected_again
    );
    assert_eq!(store.authorship(&Hash([8; 32])).await.unwrap(), None);
}

async fn concurrent_writers_of_one_fact_are_first_and_again<S: Store + IdentityStore>(store: &S) {
    for round in 0..20 {
        let shared = fact("T.Shared", &format!(r#"{{"round":{round}}}"#), &[]);
        let (left, right) = tokio::join!(
            store.put_facts_by(vec![shared.clone()], author("left")),
            store.put_facts_by(vec![shared.clone()], author("right")),
        );
        let left_inserted = left.unwrap()[0].inserted;
        assert_ne!(left_inserted, right.unwrap()[0].inserted);
        let (first, again) = if left_inserted {
            ("left", "right")
        } else {
            ("right", "left")
        };
        assert_eq!(
            store.authorship(&shared.hash).await.unwrap(),
            Some(AuthorRecord {
                first: first.into(),
                again: vec![again.into()],
            })
        );
    }
}

both_backends!(
    identities_are_created_listed_rotated_and_revoked,
    token_uses_are_recorded_without_moving_the_revision,
    the_audit_trail_appends_and_pages,
    authorship_is_recorded_with_the_facts,
    concurrent_writers_of_one_fact_are_first_and_again,
);

/// Writes a little of everything, for a store that is then reopened.
async fn write_some<S: Store + IdentityStore>(store: &S, written: &CanonicalFact) {
    store
        .create_identity(identity("kept", vec![token("00000000000000d1", 1)]))
        .await
        .unwrap();
    store
        .put_facts_by(vec![written.clone()], author("kept"))
        .await
        .unwrap();
    store
        .put_facts_by(vec![written.clone()], author("other"))
        .await
        .unwrap();
    store
        .append_audit((0..5).map(|n| audit_entry(&n.to_string())).collect())
        .await
        .unwrap();
}

/// Checks what [`write_some`] wrote, then that appending goes on after it
/// and keeps at most 3 entries.
async fn check_some<S: Store + IdentityStore>(store: &S, written: &CanonicalFact, revision: u64) {
    assert_eq!(store.identity_revision().await.unwrap(), revision);
    let identities = store.identities().await.unwrap();
    assert_eq!(
        identities,
        vec![identity("kept", vec![token("00000000000000d1", 1)])]
    );
    assert_eq!(
        store.authorship(&written.hash).await.unwrap(),
        Some(AuthorRecord {
            first: "kept".into(),
            again: vec!["other".into()],
        })
    );
    let trail = store.audit(0, 100).await.unwrap();
    let details: Vec<&str> = trail.iter().map(|entry| entry.detail.as_str()).collect();
    assert_eq!(details, ["2", "3", "4"], "the oldest beyond the limit went");
    store
        .append_audit(vec![audit_entry("5"), audit_entry("6")])
        .await
        .unwrap();
    let trail = store.audit(0, 100).await.unwrap();
    let details: Vec<&str> = trail.iter().map(|entry| entry.detail.as_str()).collect();
    assert_eq!(details, ["4", "5", "6"]);
    let seqs: Vec<u64> = trail.iter().map(|entry| entry.seq).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
}

const AUDIT_ENTRIES_KEPT: u64 = 3;

#[tokio::test]
async fn embedded_identities_survive_reopening_and_the_audit_trail_is_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        audit_entries_max: AUDIT_ENTRIES_KEPT,
        ..EmbeddedOptions::default()
    };
    let written = fact("T.Kept", "{}", &[]);
    let store = EmbeddedStore::open(dir.path(), options.clone()).unwrap();
    write_some(&store, &written).await;
    let revision = store.identity_revision().await.unwrap();
    // As `cairn tokens create --data DIR` does: open, create, close.
    tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap();
    let reopened = EmbeddedStore::open(dir.path(), options.clone()).unwrap();
    check_some(&reopened, &written, revision).await;
    tokio::task::spawn_blocking(move || reopened.close())
        .await
        .unwrap();
    // The pruned trail's bounds are found again at open.
    let reopened = EmbeddedStore::open(dir.path(), options).unwrap();
    let details: Vec<String> = reopened
        .audit(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.detail)
        .collect();
    assert_eq!(details, ["4", "5", "6"]);
    reopened.append_audit(vec![audit_entry("7")]).await.unwrap();
    assert_eq!(reopened.audit(0, 100).await.unwrap().len(), 3);
    assert_eq!(reopened.audit(0, 100).await.unwrap()[2].detail, "7");
}

#[tokio::test]
async fn postgres_identities_survive_reconnecting_and_the_audit_trail_is_pruned() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let connect = || async {
        PostgresStore::connect(&database.url(), PostgresOptions::default())
            .await
            .unwrap()
            .with_audit_entries_max(AUDIT_ENTRIES_KEPT)
    };
    let written = fact("T.Kept", "{}", &[]);
    let store = connect().await;
    write_some(&store, &written).await;
    let revision = store.identity_revision().await.unwrap();
    store.close();
    let reconnected = connect().await;
    check_some(&reconnected, &written, revision).await;
    reconnected.close();
}

#[tokio::test]
async fn postgres_identity_changes_from_many_servers_at_once_are_each_applied_once() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let mut servers = Vec::new();
    for _ in 0..4 {
        servers.push(
            PostgresStore::connect(&database.url(), PostgresOptions::default())
                .await
                .unwrap(),
        );
    }
    let creates = servers.iter().enumerate().map(|(n, server)| {
        server.create_identity(identity("contested", vec![token(&format!("{n:016x}"), 1)]))
    });
    let results = futures_util::future::join_all(creates).await;
    let n_created = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(n_created, 1, "{results:?}");
    assert!(results
        .iter()
        .filter_map(|result| result.as_ref().err())
        .all(|error| matches!(error, IdentityError::Exists(_))));
    let rotations = servers.iter().enumerate().map(|(n, server)| {
        server.rotate_token("contested", token(&format!("{:016x}", 100 + n), 2), 10)
    });
    for result in futures_util::future::join_all(rotations).await {
        result.unwrap();
    }
    let revokes = servers
        .iter()
        .map(|server| server.revoke_identity("contested"));
    let results = futures_util::future::join_all(revokes).await;
    assert_eq!(results.iter().filter(|result| result.is_ok()).count(), 1);
    assert_eq!(servers[0].identity_revision().await.unwrap(), 1 + 4 + 1);
    assert!(servers[0].identities().await.unwrap().is_empty());
    for server in servers {
        server.close();
    }
}
