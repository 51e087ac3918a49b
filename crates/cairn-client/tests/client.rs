//! The client against a real in-process server: typed put, get and
//! successors, client-side hashes, typed errors.

mod common;

use cairn_client::{
    to_canonical_fact, CanonicalFact, ClientError, Hash, LogQuery, PullOptions,
    SubscriptionDefinition, TypedFact,
};
use common::{Customer, Order, TestServer};

#[tokio::test]
async fn typed_facts_round_trip_with_predecessors() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    let customer = client.put(&Customer { name: "Ada".into() }).await?;
    let mut orders = Vec::new();
    for index in 0..3 {
        let order = Order {
            id: format!("o-{index}"),
            total: 4.5 + f64::from(index),
            customer: Some(customer.hash),
        };
        orders.push((client.put(&order).await?, order));
    }

    let (first_put, first_order) = &orders[0];
    let read = client
        .get::<Order>(&first_put.hash)
        .await?
        .expect("stored order");
    assert_eq!(read.hash, first_put.hash);
    assert_eq!(read.seq, first_put.seq);
    assert_eq!(read.value.id, first_order.id);
    assert_eq!(read.value.total, first_order.total);
    assert_eq!(read.predecessors.first("customer"), Some(customer.hash));

    assert_eq!(read.value.customer, Some(customer.hash), "filled in");

    let in_role = client
        .successors::<Order>(&customer.hash)
        .role("customer")
        .all()
        .await?;
    let in_any_role = client.successors::<Order>(&customer.hash).all().await?;
    for successors in [in_role, in_any_role] {
        let ids: Vec<&str> = successors
            .iter()
            .map(|typed| typed.value.id.as_str())
            .collect();
        assert_eq!(ids, vec!["o-0", "o-1", "o-2"]);
    }
    let in_other_role = client
        .successors::<Order>(&customer.hash)
        .role("seller")
        .all()
        .await?;
    assert!(in_other_role.is_empty());
    server.stop().await
}

#[tokio::test]
async fn client_hashes_agree_with_the_server_and_puts_are_idempotent() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    let order = Order {
        id: "é€😀 \u{0007}".into(),
        total: 1e-7,
        customer: None,
    };
    let local = to_canonical_fact(&order)?;
    let first = client.put(&order).await?;
    assert_eq!(first.hash, local.hash);
    assert!(first.inserted);

    let again = client.put(&order).await?;
    assert_eq!(
        (again.hash, again.seq, again.inserted),
        (first.hash, first.seq, false)
    );

    // The fact as the server returns it hashes to the same value.
    let stored = client.get_fact(&first.hash).await?.expect("stored fact");
    let reparsed = CanonicalFact::from_json(&serde_json::to_vec(&stored.fact)?, 1 << 20)?;
    assert_eq!(reparsed.hash, local.hash);
    assert_eq!(reparsed.canonical, local.canonical);

    let log = client.log(LogQuery::default()).await?;
    assert_eq!(log.facts.len(), 1);
    server.stop().await
}

#[tokio::test]
async fn the_end_of_the_log_is_read_without_paging() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    assert_eq!(client.log_last_seq().await?, 0);
    let mut last = None;
    for name in ["A", "B", "C"] {
        last = Some(client.put(&Customer { name: name.into() }).await?);
    }
    let last_seq = client.log_last_seq().await?;
    assert_eq!(Some(last_seq), last.map(|put| put.seq));
    let after_the_end = client
        .log(LogQuery {
            after: Some(last_seq),
            limit: None,
            wait_ms: None,
        })
        .await?;
    assert!(after_the_end.facts.is_empty());
    server.stop().await
}

#[tokio::test]
async fn raw_pulls_keep_each_fact_as_the_server_sent_it() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    client
        .apply_subscription("raw", &SubscriptionDefinition::new(Order::TYPE_NAME))
        .await?;
    // 1e30 is `1e+30` in the canonical form; a JSON value would write `1e30`.
    let order = Order {
        id: "b".into(),
        total: 1e30,
        customer: None,
    };
    let local = to_canonical_fact(&order)?;
    client.put(&order).await?;
    let options = PullOptions {
        max: 10,
        wait_ms: 0,
        lease_ms: None,
    };
    let messages = client.transport().pull_raw("raw", options).await?;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].hash, local.hash);
    assert_eq!(messages[0].attempt, 1);
    assert_eq!(
        messages[0].fact.get().as_bytes(),
        local.canonical.as_slice()
    );
    server.stop().await
}

#[tokio::test]
async fn errors_are_typed() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    let absent = Hash([9; 32]);
    assert!(client.get::<Order>(&absent).await?.is_none());

    let missing_customer = Order {
        id: "o".into(),
        total: 1.0,
        customer: Some(absent),
    };
    match client.put(&missing_customer).await {
        Err(ClientError::Api {
            status,
            code,
            details,
            ..
        }) => {
            assert_eq!((status, code.as_str()), (422, "missing_predecessors"));
            assert_eq!(details["missing"], serde_json::json!([absent.to_hex()]));
        }
        other => panic!("expected missing_predecessors, got {other:?}"),
    }

    let customer = client.put(&Customer { name: "B".into() }).await?;
    match client.get::<Order>(&customer.hash).await {
        Err(ClientError::TypeMismatch {
            expected, found, ..
        }) => assert_eq!((expected, found.as_str()), ("Shop.Order", "Shop.Customer")),
        other => panic!("expected a type mismatch, got {other:?}"),
    }
    server.stop().await
}
