//! `#[derive(Fact)]` and the typed reads against a real in-process server:
//! predecessors as typed fields in every shape, serde attributes on the
//! other fields, successors without their tombstones, and the log and
//! successors as streams that follow new facts.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use cairn_client::{to_canonical_fact, Fact, Hash, Typed, TypedFact};
use common::TestServer;
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Library.Book")]
struct Book {
    isbn: String,
    title: String,
}

#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Library.Member")]
struct Member {
    name: String,
}

/// Two identical loans must stay two loans: `loan_id` gives each its own
/// identity (see the README on identity by content).
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Library.Loan")]
#[serde(rename_all = "camelCase")]
struct Loan {
    #[predecessor]
    book: Hash,
    #[predecessor(role = "borrower")]
    member: Hash,
    loan_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// A tombstone: the loan ended.
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Library.Return")]
struct Return {
    #[predecessor]
    loan: Hash,
}

/// Every predecessor shape at once.
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Library.Shelf")]
struct Shelf {
    #[predecessor]
    books: Vec<Hash>,
    #[predecessor]
    curators: BTreeSet<Hash>,
    #[predecessor]
    previous: Option<Hash>,
    label: Label,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Label {
    text: String,
}

#[test]
fn predecessor_fields_are_predecessors_and_serde_attributes_apply() {
    let loan = Loan {
        book: Hash([1; 32]),
        member: Hash([2; 32]),
        loan_id: "l-1".into(),
        note: None,
    };
    let fact = to_canonical_fact(&loan).unwrap();
    let expected = format!(
        "{{\"fields\":{{\"loanId\":\"l-1\"}},\"predecessors\":{{\"book\":\"{}\",\"borrower\":\"{}\"}},\"type\":\"Library.Loan\"}}",
        Hash([1; 32]),
        Hash([2; 32])
    );
    assert_eq!(String::from_utf8(fact.canonical.clone()).unwrap(), expected);
    let json: serde_json::Value = serde_json::from_slice(&fact.canonical).unwrap();
    let read: Typed<Loan> = Typed::from_parts(fact.hash, 1, json).unwrap();
    assert_eq!(read.value, loan);
}

#[test]
fn sets_and_optional_predecessors_round_trip() {
    let shelf = Shelf {
        books: vec![Hash([4; 32]), Hash([3; 32])],
        curators: BTreeSet::from([Hash([5; 32])]),
        previous: None,
        label: Label { text: "SF".into() },
    };
    let fact = to_canonical_fact(&shelf).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&fact.canonical).unwrap();
    assert!(json["predecessors"]["books"].is_array());
    assert!(json["predecessors"].get("previous").is_none());
    let read: Typed<Shelf> = Typed::from_parts(fact.hash, 1, json).unwrap();
    // A set reads back sorted: the fact holds it in canonical order.
    assert_eq!(read.value.books, vec![Hash([3; 32]), Hash([4; 32])]);
    assert_eq!(read.value.curators, shelf.curators);
    assert_eq!(read.value.previous, None);
    assert_eq!(read.value.label, shelf.label);
}

#[test]
fn a_fact_without_a_required_predecessor_does_not_read_as_the_type() {
    let json = serde_json::json!({
        "type": "Library.Return",
        "fields": {},
        "predecessors": {},
    });
    let error = Typed::<Return>::from_parts(Hash([0; 32]), 1, json).unwrap_err();
    assert!(error.to_string().contains("\"loan\" is missing"), "{error}");
}

#[tokio::test]
async fn successors_leave_out_tombstoned_loans() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    let book = client
        .put(&Book {
            isbn: "978-0".into(),
            title: "SICP".into(),
        })
        .await?
        .hash;
    let member = client.put(&Member { name: "Ada".into() }).await?.hash;
    let mut loans = Vec::new();
    for loan_id in ["l-1", "l-2", "l-3"] {
        let loan = Loan {
            book,
            member,
            loan_id: loan_id.into(),
            note: None,
        };
        loans.push(client.put(&loan).await?.hash);
    }
    client.put(&Return { loan: loans[1] }).await?;

    let open: Vec<String> = client
        .successors::<Loan>(&book)
        .role("book")
        .without::<Return>()
        .all()
        .await?
        .into_iter()
        .map(|loan| loan.value.loan_id)
        .collect();
    assert_eq!(open, vec!["l-1", "l-3"]);
    let first_open = client
        .successors::<Loan>(&book)
        .without::<Return>()
        .first()
        .await?
        .expect("an open loan");
    assert_eq!(first_open.value.loan_id, "l-1");
    assert!(client
        .successors::<Return>(&loans[0])
        .first()
        .await?
        .is_none());
    let of_member = client
        .successors::<Loan>(&member)
        .role("borrower")
        .all()
        .await?;
    assert_eq!(of_member.len(), 3);
    assert!(of_member.iter().all(|loan| loan.value.member == member));
    server.stop().await
}

#[tokio::test]
async fn streams_follow_new_facts() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    let book = client
        .put(&Book {
            isbn: "1".into(),
            title: "A".into(),
        })
        .await?
        .hash;
    let member = client.put(&Member { name: "B".into() }).await?.hash;
    let loan = move |loan_id: &str| Loan {
        book,
        member,
        loan_id: loan_id.into(),
        note: Some("first".into()),
    };
    client.put(&loan("before")).await?;

    let mut loans = Box::pin(client.successors::<Loan>(&book).follow());
    let mut members = Box::pin(client.log_facts().of_type::<Member>().follow());
    assert_eq!(next(&mut loans).await?.value.loan_id, "before");
    assert_eq!(next(&mut members).await?.value.name, "B");

    let writer = client.clone();
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer.put(&loan("after")).await?;
        writer.put(&Member { name: "C".into() }).await
    });
    let after = next(&mut loans).await?;
    assert_eq!(after.value.loan_id, "after");
    assert_eq!(after.value.note.as_deref(), Some("first"));
    assert_eq!(next(&mut members).await?.value.name, "C");
    later.await??;

    // Without `follow` the streams end at the last fact stored.
    let all_facts: Vec<_> = client.log_facts().stream().try_collect().await?;
    assert_eq!(all_facts.len(), 5);
    let after_first: Vec<_> = client
        .log_facts()
        .after(all_facts[0].seq)
        .of_type::<Book>()
        .stream()
        .try_collect()
        .await?;
    assert!(after_first.is_empty());
    server.stop().await
}

/// The next item of a followed stream, failing after a bounded time.
async fn next<T>(
    stream: &mut (impl futures_util::Stream<Item = cairn_client::Result<T>> + Unpin),
) -> anyhow::Result<T> {
    let item = tokio::time::timeout(Duration::from_secs(20), stream.next()).await?;
    Ok(item.ok_or_else(|| anyhow::anyhow!("the stream ended"))??)
}

#[test]
fn type_names_come_from_the_attribute() {
    assert_eq!(Loan::TYPE_NAME, "Library.Loan");
    assert_eq!(Return::TYPE_NAME, "Library.Return");
}

#[tokio::test]
async fn waiting_for_a_fact_returns_it_once_stored_or_says_it_is_not() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    let member = Member {
        name: "Later".into(),
    };
    let hash = to_canonical_fact(&member)?.hash;
    let writer = client.clone();
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        writer.put(&member).await
    });
    let stored = client.wait_for_fact(&hash, Duration::from_secs(20)).await?;
    assert_eq!(stored.hash, hash);
    later.await??;

    let never = Hash([9; 32]);
    match client
        .wait_for_fact(&never, Duration::from_millis(200))
        .await
    {
        Err(cairn_client::ClientError::NotStored { hash, waited_ms }) => {
            assert_eq!((hash, waited_ms), (never, 200));
        }
        other => panic!("expected NotStored, got {other:?}"),
    }
    server.stop().await
}

#[test]
fn unique_ids_are_128_random_bits_in_hex() {
    let first = cairn_client::unique_id().unwrap();
    let second = cairn_client::unique_id().unwrap();
    assert_ne!(first, second);
    assert_eq!(first.len(), 32);
    assert!(first
        .bytes()
        .all(|byte| byte.is_ascii_hexdigit() && !byte.is_ascii_uppercase()));
}
