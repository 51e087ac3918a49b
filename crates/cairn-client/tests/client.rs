//! The client against a real in-process server: typed put, get and
//! successors, client-side hashes, typed errors, request and reply.

mod common;

use std::time::Duration;

use cairn_client::{
    to_canonical_fact, CanonicalFact, ClientError, Hash, LogQuery, Predecessors, PullOptions,
    SubscriptionDefinition, TypedFact,
};
use common::{Customer, Order, TestServer};
use serde::{Deserialize, Serialize};

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

    for role in [Some("customer"), None] {
        let successors = client.successors::<Order>(&customer.hash, role).await?;
        let ids: Vec<&str> = successors
            .iter()
            .map(|typed| typed.value.id.as_str())
            .collect();
        assert_eq!(ids, vec!["o-0", "o-1", "o-2"], "role {role:?}");
    }
    let in_other_role = client
        .successors::<Order>(&customer.hash, Some("seller"))
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

#[derive(Debug, Serialize, Deserialize)]
struct QuoteRequest {
    item: String,
}

impl TypedFact for QuoteRequest {
    const TYPE_NAME: &'static str = "Demo.QuoteRequest";
}

#[derive(Debug, Serialize, Deserialize)]
struct Quote {
    price: u32,
    #[serde(skip)]
    request: Option<Hash>,
}

impl TypedFact for Quote {
    const TYPE_NAME: &'static str = "Demo.Quote";

    fn predecessors(&self) -> Predecessors {
        match self.request {
            Some(request) => Predecessors::new().with_one("request", request),
            None => Predecessors::new(),
        }
    }
}

#[tokio::test]
async fn requests_get_replies_from_a_responder() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;

    // The responder follows the log and answers every quote request.
    let responder_client = client.clone();
    let responder = tokio::spawn(async move {
        let mut after = 0;
        for _ in 0..100 {
            let page = responder_client
                .log(LogQuery {
                    after: Some(after),
                    limit: None,
                    wait_ms: Some(1_000),
                })
                .await?;
            after = page.next;
            for stored in page.facts {
                if stored.fact["type"] != QuoteRequest::TYPE_NAME {
                    continue;
                }
                let request = cairn_client::Typed::<QuoteRequest>::from_stored(stored)?;
                let quote = Quote {
                    price: u32::try_from(request.value.item.len())? * 100,
                    request: Some(request.hash),
                };
                responder_client.reply_to(&request.hash, &quote).await?;
                return anyhow::Ok(());
            }
        }
        anyhow::bail!("no request seen")
    });

    let pending = client
        .request(&QuoteRequest {
            item: "lamp".into(),
        })
        .await?;
    let reply = pending.reply::<Quote>(Duration::from_secs(20)).await?;
    assert_eq!(reply.value.price, 400);
    assert_eq!(reply.predecessors.first("request"), Some(pending.hash()));
    responder.await??;

    // A reply stored before anyone waits is found at once.
    let again = pending.reply::<Quote>(Duration::from_millis(1)).await?;
    assert_eq!(again.hash, reply.hash);
    server.stop().await
}

#[tokio::test]
async fn unanswered_requests_time_out_and_unlinked_replies_are_refused() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client()?;
    let pending = client
        .request(&QuoteRequest {
            item: "chair".into(),
        })
        .await?;
    match pending.reply::<Quote>(Duration::from_millis(300)).await {
        Err(ClientError::ReplyTimeout {
            request, waited_ms, ..
        }) => {
            assert_eq!(request, pending.hash());
            assert!(waited_ms >= 300);
        }
        other => panic!("expected a reply timeout, got {other:?}"),
    }
    let unlinked = Quote {
        price: 1,
        request: None,
    };
    assert!(matches!(
        client.reply_to(&pending.hash(), &unlinked).await,
        Err(ClientError::ReplyNotLinked { .. })
    ));
    server.stop().await
}
