//! The `Store` contract, checked through the trait alone so that every
//! backend can run the same suite: durable writes with dense sequence
//! numbers, idempotence, all-or-nothing batches with predecessors first,
//! successors with role, `without` and paging, the distinct types of a
//! fact's successors, the log, the durable-seq
//! watch, concurrent writers with a following reader, and (embedded only)
//! poisoning after a failed sync. The `both_backends!` macro runs every check
//! against the embedded store and against PostgreSQL (a fresh database per
//! test, dropped afterwards).

#[macro_use]
mod both_backends;

use cairn_fact::{CanonicalFact, Hash};
use cairn_store::postgres::testing::TestDatabase;
use cairn_store::{
    EmbeddedOptions, EmbeddedStore, PostgresOptions, PostgresStore, Store, SuccessorsQuery,
    WriteError,
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

fn query(predecessor: &Hash, type_name: &str) -> SuccessorsQuery {
    SuccessorsQuery {
        predecessor: *predecessor,
        type_name: type_name.to_string(),
        role: None,
        without_types: Vec::new(),
        after_seq: 0,
        limit: 100,
    }
}

fn hashes(page: &cairn_store::Page) -> Vec<Hash> {
    page.facts.iter().map(|fact| fact.hash).collect()
}

async fn writes_are_dense_idempotent_and_read_back<S: Store>(store: &S) {
    let a = fact("T.A", r#"{"n":1}"#, &[]);
    let b = fact("T.A", r#"{"n":2}"#, &[]);
    let outcomes = store
        .put_facts(vec![a.clone(), b.clone(), a.clone()])
        .await
        .unwrap();
    let seqs: Vec<(u64, bool)> = outcomes.iter().map(|o| (o.seq, o.inserted)).collect();
    assert_eq!(seqs, vec![(1, true), (2, true), (1, false)]);
    let again = store.put_facts(vec![b.clone()]).await.unwrap();
    assert_eq!((again[0].seq, again[0].inserted), (2, false));
    let stored = store.get_fact(&a.hash).await.unwrap().unwrap();
    assert_eq!(
        (stored.seq, stored.canonical.as_slice()),
        (1, a.canonical.as_slice())
    );
    assert!(store.get_fact(&Hash([9; 32])).await.unwrap().is_none());
    assert_eq!(*store.watch_last_seq().borrow(), 2);
    let log = store.log(0, 10).await.unwrap();
    assert_eq!(hashes(&log), vec![a.hash, b.hash]);
    assert_eq!(log.next_seq, 2);
    assert_eq!(store.log(2, 10).await.unwrap().facts.len(), 0);
    assert_eq!(store.log(2, 10).await.unwrap().next_seq, 2);
    assert_eq!(store.log(0, 1).await.unwrap().next_seq, 1);
}

async fn a_batch_with_a_missing_predecessor_stores_nothing<S: Store>(store: &S) {
    let before = *store.watch_last_seq().borrow();
    let parent = fact("T.Parent", "{}", &[]);
    let unknown = Hash([7; 32]);
    let child = fact("T.Child", "{}", &[("parent", &parent.hash)]);
    let orphan = fact("T.Child", r#"{"orphan":true}"#, &[("parent", &unknown)]);
    match store
        .put_facts(vec![parent.clone(), child.clone(), orphan])
        .await
    {
        Err(WriteError::MissingPredecessors { missing }) => assert_eq!(missing, vec![unknown]),
        other => panic!("expected missing predecessors, got {other:?}"),
    }
    assert_eq!(*store.watch_last_seq().borrow(), before);
    assert!(store.get_fact(&parent.hash).await.unwrap().is_none());
    // A predecessor later in the batch does not count.
    let result = store.put_facts(vec![child.clone(), parent.clone()]).await;
    assert!(matches!(
        result,
        Err(WriteError::MissingPredecessors { .. })
    ));
    // In order, the same facts are accepted.
    store.put_facts(vec![parent, child]).await.unwrap();
    assert_eq!(*store.watch_last_seq().borrow(), before + 2);
}

async fn successors_filter_by_type_role_and_without_and_page<S: Store>(store: &S) {
    let list = fact("Todo.List", r#"{"list":1}"#, &[]);
    store.put_facts(vec![list.clone()]).await.unwrap();
    let items: Vec<CanonicalFact> = (0..5)
        .map(|n| {
            fact(
                "Todo.Item",
                &format!(r#"{{"n":{n}}}"#),
                &[("list", &list.hash)],
            )
        })
        .collect();
    store.put_facts(items.clone()).await.unwrap();
    let other_role = fact("Todo.Item", r#"{"owner":true}"#, &[("owner", &list.hash)]);
    let both_roles = fact(
        "Todo.Item",
        r#"{"both":true}"#,
        &[("list", &list.hash), ("owner", &list.hash)],
    );
    let deleted = fact("Todo.Deleted", "{}", &[("item", &items[1].hash)]);
    store
        .put_facts(vec![other_role.clone(), both_roles.clone(), deleted])
        .await
        .unwrap();

    let all = store
        .successors(&query(&list.hash, "Todo.Item"))
        .await
        .unwrap();
    assert_eq!(
        all.facts.len(),
        7,
        "a fact naming the list in two roles is listed once"
    );
    assert!(all.facts.windows(2).all(|pair| pair[0].seq < pair[1].seq));

    let by_role = store
        .successors(&SuccessorsQuery {
            role: Some("owner".into()),
            ..query(&list.hash, "Todo.Item")
        })
        .await
        .unwrap();
    assert_eq!(hashes(&by_role), vec![other_role.hash, both_roles.hash]);

    let live = store
        .successors(&SuccessorsQuery {
            without_types: vec!["Todo.Deleted".into()],
            ..query(&list.hash, "Todo.Item")
        })
        .await
        .unwrap();
    assert!(!hashes(&live).contains(&items[1].hash));
    assert_eq!(live.facts.len(), 6);

    let first = store
        .successors(&SuccessorsQuery {
            limit: 2,
            ..query(&list.hash, "Todo.Item")
        })
        .await
        .unwrap();
    assert_eq!(hashes(&first), vec![items[0].hash, items[1].hash]);
    let second = store
        .successors(&SuccessorsQuery {
            after_seq: first.next_seq,
            limit: 2,
            ..query(&list.hash, "Todo.Item")
        })
        .await
        .unwrap();
    assert_eq!(hashes(&second), vec![items[2].hash, items[3].hash]);
    assert!(store
        .successors(&query(&list.hash, "Todo.Other"))
        .await
        .unwrap()
        .facts
        .is_empty());
}

async fn concurrent_writers_leave_a_gap_free_log_that_readers_follow<S: Store>(store: &S) {
    let before = *store.watch_last_seq().borrow();
    let writers = (0..4).map(|writer| async move {
        for batch in 0..10 {
            let facts = (0..3)
                .map(|n| {
                    fact(
                        "T.Load",
                        &format!(r#"{{"w":{writer},"b":{batch},"n":{n}}}"#),
                        &[],
                    )
                })
                .collect();
            store.put_facts(facts).await.unwrap();
        }
    });
    let reader = async {
        // Follows the log while the writers run: every page continues
        // exactly where the previous one ended.
        let mut after = before;
        while after < before + 120 {
            let page = store.log(after, 7).await.unwrap();
            for (offset, fact) in page.facts.iter().enumerate() {
                assert_eq!(
                    fact.seq,
                    after + 1 + offset as u64,
                    "the log skipped a fact"
                );
            }
            after = page.next_seq;
            tokio::task::yield_now().await;
        }
    };
    tokio::join!(futures_util::future::join_all(writers), reader);
    assert_eq!(*store.watch_last_seq().borrow(), before + 120);
}

async fn single_fact_writes_race_and_check_predecessors<S: Store>(store: &S) {
    let before = *store.watch_last_seq().borrow();
    let shared = fact("T.Shared", "{}", &[]);
    let writers = (0..4).map(|writer| {
        let shared = shared.clone();
        async move {
            let mut seqs = Vec::new();
            for n in 0..5 {
                let own = fact("T.Own", &format!(r#"{{"w":{writer},"n":{n}}}"#), &[]);
                store.put_facts(vec![own]).await.unwrap();
                seqs.push(store.put_facts(vec![shared.clone()]).await.unwrap()[0].seq);
            }
            seqs
        }
    });
    let seqs: Vec<u64> = futures_util::future::join_all(writers)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert!(seqs.windows(2).all(|pair| pair[0] == pair[1]), "{seqs:?}");
    assert_eq!(*store.watch_last_seq().borrow(), before + 21);
    let log = store.log(before, 100).await.unwrap();
    assert_eq!(log.facts.len(), 21, "dense, each fact once");
    let orphan = fact(
        "T.Child",
        r#"{"single":true}"#,
        &[("parent", &Hash([5; 32]))],
    );
    match store.put_facts(vec![orphan]).await {
        Err(WriteError::MissingPredecessors { missing }) => {
            assert_eq!(missing, vec![Hash([5; 32])])
        }
        other => panic!("expected missing predecessors, got {other:?}"),
    }
    let child = fact(
        "T.Child",
        r#"{"single":true}"#,
        &[("parent", &shared.hash), ("again", &shared.hash)],
    );
    let stored = store.put_facts(vec![child.clone()]).await.unwrap();
    assert_eq!((stored[0].seq, stored[0].inserted), (before + 22, true));
    let successors = store
        .successors(&query(&shared.hash, "T.Child"))
        .await
        .unwrap();
    assert_eq!(
        hashes(&successors),
        vec![child.hash],
        "listed once for two roles"
    );
}

async fn successor_types_are_distinct_sorted_paged_and_bounded<S: Store>(store: &S) {
    let root = fact("Types.Root", r#"{"root":1}"#, &[]);
    let other_root = fact("Types.Root", r#"{"root":2}"#, &[]);
    store
        .put_facts(vec![root.clone(), other_root.clone()])
        .await
        .unwrap();
    // Many successors of one type, so that a store reading every entry
    // would show; written in batches that interleave with the others.
    let many: Vec<CanonicalFact> = (0..600)
        .map(|n| {
            fact(
                "Types.Many",
                &format!(r#"{{"n":{n}}}"#),
                &[("parent", &root.hash)],
            )
        })
        .collect();
    store.put_facts(many[..300].to_vec()).await.unwrap();
    let few = vec![
        fact(
            "Types.Z",
            "{}",
            &[("parent", &root.hash), ("again", &root.hash)],
        ),
        fact("Types.Many.Sub", "{}", &[("parent", &root.hash)]),
        fact("Types.a", "{}", &[("first", &root.hash)]),
        fact("Types_", "{}", &[("parent", &root.hash)]),
        fact("Types.A", "{}", &[("parent", &root.hash)]),
        fact("Types.Elsewhere", "{}", &[("parent", &other_root.hash)]),
    ];
    store.put_facts(few.clone()).await.unwrap();
    store.put_facts(many[300..].to_vec()).await.unwrap();
    // Successors of a successor are not the root's.
    let grandchild = fact("Types.Grandchild", "{}", &[("parent", &few[0].hash)]);
    store.put_facts(vec![grandchild]).await.unwrap();

    let all = store.successor_types(&root.hash, None, 100).await.unwrap();
    // Byte order: '.' < 'A'..'Z' < '_' < 'a'..'z'.
    let expected = [
        "Types.A",
        "Types.Many",
        "Types.Many.Sub",
        "Types.Z",
        "Types.a",
        "Types_",
    ];
    assert_eq!(all, expected);
    assert_eq!(
        store
            .successor_types(&root.hash, Some("Types.Many"), 2)
            .await
            .unwrap(),
        ["Types.Many.Sub", "Types.Z"],
        "pages start after the type given"
    );
    assert_eq!(
        store
            .successor_types(&root.hash, Some("Types.M"), 1)
            .await
            .unwrap(),
        ["Types.Many"],
        "after a type that is not listed"
    );
    assert!(store
        .successor_types(&root.hash, Some("Types_"), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .successor_types(&root.hash, None, 0)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .successor_types(&other_root.hash, None, 10)
            .await
            .unwrap(),
        ["Types.Elsewhere"]
    );
    assert_eq!(
        store.successor_types(&few[0].hash, None, 10).await.unwrap(),
        ["Types.Grandchild"]
    );
    assert!(
        store
            .successor_types(&Hash([9; 32]), None, 10)
            .await
            .unwrap()
            .is_empty(),
        "a fact that is not stored has no successor types"
    );
    assert!(store
        .successor_types(&many[0].hash, None, 10)
        .await
        .unwrap()
        .is_empty());

    // More types than one answer holds: the first `limit`, then the rest.
    let wide = fact("Types.Wide", "{}", &[]);
    store.put_facts(vec![wide.clone()]).await.unwrap();
    let n_types = 257;
    let mut wide_types: Vec<String> = (0..n_types).map(|n| format!("Wide.T{n}")).collect();
    let successors: Vec<CanonicalFact> = wide_types
        .iter()
        .map(|type_name| fact(type_name, "{}", &[("of", &wide.hash)]))
        .collect();
    store.put_facts(successors).await.unwrap();
    wide_types.sort();
    let first = store.successor_types(&wide.hash, None, 256).await.unwrap();
    assert_eq!(first, wide_types[..256]);
    let rest = store
        .successor_types(&wide.hash, first.last().map(String::as_str), 256)
        .await
        .unwrap();
    assert_eq!(rest, wide_types[256..]);
}

both_backends!(
    successor_types_are_distinct_sorted_paged_and_bounded,
    writes_are_dense_idempotent_and_read_back,
    a_batch_with_a_missing_predecessor_stores_nothing,
    successors_filter_by_type_role_and_without_and_page,
    concurrent_writers_leave_a_gap_free_log_that_readers_follow,
    single_fact_writes_race_and_check_predecessors,
);

/// The successor types are listed by bytes on a database whose collation
/// sorts text otherwise (ICU's English: lower case before upper case, `_`
/// before `.`), where the index's order is not the contract's.
#[tokio::test]
async fn postgres_lists_successor_types_by_bytes_under_a_natural_language_collation() {
    let Some(database) = TestDatabase::create_with(
        "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'",
    )
    .await
    else {
        return;
    };
    let store = PostgresStore::connect(&database.url(), PostgresOptions::default())
        .await
        .unwrap();
    successor_types_are_distinct_sorted_paged_and_bounded(&store).await;
    store.close();
}

fn open_embedded(dir: &std::path::Path, options: EmbeddedOptions) -> EmbeddedStore {
    EmbeddedStore::open(dir, options).unwrap()
}

#[tokio::test]
async fn embedded_store_is_poisoned_by_a_failed_sync_and_reopens_with_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        fail_sync_after: Some(1),
        ..EmbeddedOptions::default()
    };
    let store = open_embedded(dir.path(), options);
    let kept = fact("T.Kept", "{}", &[]);
    store.put_facts(vec![kept.clone()]).await.unwrap();
    let failed = store.put_facts(vec![fact("T.Lost", "{}", &[])]).await;
    assert!(
        matches!(failed, Err(WriteError::Storage { .. })),
        "{failed:?}"
    );
    let refused = store.put_facts(vec![fact("T.Refused", "{}", &[])]).await;
    assert!(matches!(refused, Err(WriteError::Poisoned)), "{refused:?}");
    assert!(store.stats().poisoned);
    assert_eq!(
        store.log(0, 10).await.unwrap().facts.len(),
        1,
        "readers see only acknowledged facts"
    );
    tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap();
    let reopened = open_embedded(dir.path(), EmbeddedOptions::default());
    assert!(reopened.get_fact(&kept.hash).await.unwrap().is_some());
    assert!(!reopened.stats().poisoned);
}
