//! A typed SDK fact reading three schema versions, against an embedded
//! node (the server's own routes, validator and registry, in-process):
//! versions 1 to 3 of `Shop.Order` are registered (a rename, then a move, a
//! default and a map), facts of each version are written through the
//! untyped API, and one `#[derive(Fact)]` struct at version 3 reads all
//! three as itself. Its own writes carry `cairn_version: 3`; the server's
//! `as_version` view of a version 1 fact equals the client's upcast; a
//! refused registration and a refused write surface their breaking
//! changes and violations; a reader of an older version meets a newer fact.

use cairn_api::schemas::upcast_fields;
use cairn_client::{
    schema_registration, CanonicalFact, Client, ClientError, Compatibility, Fact, Hash,
    SchemaRegistration, Typed, TypedFact, UpcastMarker, UpcastOperation,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const ORDER_TYPE: &str = "Shop.Order";

/// What each version of `Shop.Order` declares to read the one before.
fn order_upcasts(version: u32) -> Vec<UpcastOperation> {
    match version {
        2 => vec![UpcastOperation::Rename {
            from: "/amount".into(),
            to: "/total".into(),
        }],
        3 => vec![
            UpcastOperation::Move {
                from: "/total".into(),
                to: "/price/total".into(),
            },
            UpcastOperation::Default {
                path: "/currency".into(),
                value: json!("EUR"),
            },
            UpcastOperation::Map {
                path: "/state".into(),
                values: [
                    ("new".to_string(), json!("open")),
                    ("paid".to_string(), json!("settled")),
                ]
                .into_iter()
                .collect(),
            },
        ],
        _ => Vec::new(),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Price {
    total: f64,
}

/// The current shape: version 3.
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Shop.Order", version = 3, upcasts = order_upcasts)]
struct Order {
    id: String,
    price: Price,
    currency: String,
    state: String,
}

/// A reader still at version 2.
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Shop.Order", version = 2, upcasts = order_upcasts)]
struct OrderV2 {
    id: String,
    total: f64,
    state: String,
}

fn closed_object(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn schema_v1() -> Value {
    closed_object(
        json!({
            "id": {"type": "string"},
            "amount": {"type": "number"},
            "state": {"enum": ["new", "paid"]},
        }),
        &["id", "amount", "state"],
    )
}

fn schema_v2() -> Value {
    closed_object(
        json!({
            "id": {"type": "string"},
            "total": {"type": "number"},
            "state": {"enum": ["new", "paid"]},
        }),
        &["id", "total", "state"],
    )
}

fn schema_v3() -> Value {
    closed_object(
        json!({
            "id": {"type": "string"},
            // Open: the object a move creates in older facts is judged as
            // one that may hold anything.
            "price": {
                "type": "object",
                "properties": {"total": {"type": "number"}},
                "required": ["total"],
            },
            "currency": {"type": "string"},
            "state": {"enum": ["open", "settled"]},
        }),
        &["id", "price", "currency", "state"],
    )
}

/// A raw `Shop.Order` fact with these fields.
fn raw_order(fields: Value) -> CanonicalFact {
    let fact = json!({"type": ORDER_TYPE, "fields": fields, "predecessors": {}});
    CanonicalFact::from_json(&serde_json::to_vec(&fact).expect("JSON"), 1 << 20).expect("a fact")
}

async fn put_raw(client: &Client, fields: Value) -> Result<Hash, ClientError> {
    let mut results = client.put_facts(vec![raw_order(fields)]).await?;
    Ok(results.pop().expect("one result").hash)
}

async fn register_three_versions(client: &Client) -> anyhow::Result<()> {
    let v1 = SchemaRegistration {
        schema: schema_v1(),
        compatibility: Compatibility::Backward,
        upcast: Vec::new(),
        predecessors: None,
    };
    let first = client.register_schema(ORDER_TYPE, 1, &v1).await?;
    assert_eq!(first.registered, Some(true));
    assert_eq!(first.version, 1);
    let again = client.register_schema(ORDER_TYPE, 1, &v1).await?;
    assert_eq!(again.registered, Some(false), "the same registration again");
    assert_eq!(again.hash, first.hash);

    let v2 = SchemaRegistration {
        upcast: order_upcasts(2),
        ..schema_registration::<OrderV2>(schema_v2(), Compatibility::Backward)
    };
    assert_eq!(
        v2.upcast,
        OrderV2::upcasts(2),
        "the helper takes the type's upcasts"
    );
    assert_eq!(
        client.register_schema(ORDER_TYPE, 2, &v2).await?.registered,
        Some(true)
    );
    // Version 3 straight from the typed fact: its version and upcasts.
    let v3 = client
        .register_typed_schema::<Order>(schema_v3(), Compatibility::Backward)
        .await?;
    assert_eq!((v3.version, v3.registered), (3, Some(true)));
    assert_eq!(v3.registration.upcast, order_upcasts(3));
    Ok(())
}

#[tokio::test]
async fn a_typed_fact_reads_three_versions_as_the_current_type() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::embedded(dir.path()).await?;
    register_three_versions(&client).await?;

    let v1 = put_raw(
        &client,
        json!({"id": "o-1", "amount": 10.5, "state": "new"}),
    )
    .await?;
    let v2 = put_raw(
        &client,
        json!({"id": "o-2", "total": 20.0, "state": "paid", "cairn_version": 2}),
    )
    .await?;
    let v3 = put_raw(
        &client,
        json!({
            "id": "o-3",
            "price": {"total": 30.25},
            "currency": "CHF",
            "state": "open",
            "cairn_version": 3,
        }),
    )
    .await?;

    let expected = [
        (v1, "o-1", 10.5, "EUR", "open"),
        (v2, "o-2", 20.0, "EUR", "settled"),
        (v3, "o-3", 30.25, "CHF", "open"),
    ];
    for (hash, id, total, currency, state) in expected {
        let read = client.get::<Order>(&hash).await?.expect("stored");
        assert_eq!(read.hash, hash, "the stored fact's hash, not the view's");
        assert_eq!(
            read.value,
            Order {
                id: id.into(),
                price: Price { total },
                currency: currency.into(),
                state: state.into(),
            }
        );
    }

    // A typed write names its version, and the server validates it as such.
    let order = Order {
        id: "o-4".into(),
        price: Price { total: 1.0 },
        currency: "EUR".into(),
        state: "settled".into(),
    };
    let stored = client.put(&order).await?;
    assert_eq!(stored.hash, cairn_client::to_canonical_fact(&order)?.hash);
    let raw = client.get_fact(&stored.hash).await?.expect("stored");
    assert_eq!(raw.fact["fields"]["cairn_version"], json!(3));
    assert_eq!(
        client
            .get::<Order>(&stored.hash)
            .await?
            .expect("stored")
            .value,
        order
    );

    // The server's view of a version 1 fact as version 3 is the client's
    // upcast of it.
    let stored_v1 = client.get_fact(&v1).await?.expect("stored");
    let as_v3 = client.get_fact_as(&v1, 3).await?.expect("stored");
    assert_eq!(as_v3.hash, v1);
    assert_eq!(as_v3.upcast, Some(UpcastMarker { from: 1, to: 3 }));
    assert_eq!(as_v3.original.as_ref(), Some(&stored_v1.fact));
    let mut client_fields = stored_v1.fact["fields"]
        .as_object()
        .cloned()
        .expect("fields");
    let steps: Vec<Vec<UpcastOperation>> = (2..=3).map(Order::upcasts).collect();
    upcast_fields(&mut client_fields, 1, 3, |version| {
        steps[(version - 2) as usize].as_slice()
    })?;
    assert_eq!(as_v3.fact["fields"], Value::Object(client_fields));
    assert_eq!(
        Typed::<Order>::from_stored(as_v3)?.value,
        client.get::<Order>(&v1).await?.expect("stored").value,
        "reading the server's view and upcasting on the client agree"
    );
    // A fact of that version already comes as stored.
    let v3_as_v3 = client.get_fact_as(&v3, 3).await?.expect("stored");
    assert_eq!(v3_as_v3.upcast, None);
    assert_eq!(v3_as_v3.original, None);
    client.close().await;
    Ok(())
}

#[tokio::test]
async fn schemas_are_listed_and_refusals_carry_their_details() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::embedded(dir.path()).await?;
    register_three_versions(&client).await?;

    let list = client
        .schemas(ORDER_TYPE)
        .await?
        .expect("Shop.Order has schemas");
    let versions: Vec<u32> = list
        .versions
        .iter()
        .map(|summary| summary.version)
        .collect();
    assert_eq!(versions, vec![1, 2, 3]);
    let types = client.schema_types().await?;
    assert_eq!(types.len(), 1);
    assert_eq!(types[0], list);
    let v2 = client.schema(ORDER_TYPE, 2).await?.expect("version 2");
    assert_eq!(v2.registration.upcast, order_upcasts(2));
    assert_eq!(v2.registration.schema, schema_v2());
    assert!(client.schema(ORDER_TYPE, 9).await?.is_none());
    assert!(client.schemas("Shop.Nothing").await?.is_none());

    // A fact that is not stored is `None`; a version that does not exist
    // is the server's error, not `None`.
    let absent = Hash::of_bytes(b"never stored");
    assert!(client.get_fact_as(&absent, 3).await?.is_none());
    let v1 = put_raw(&client, json!({"id": "o-1", "amount": 1, "state": "new"})).await?;
    let error = client.get_fact_as(&v1, 9).await.expect_err("no version 9");
    assert_eq!(error.code(), Some("unknown_schema"), "{error}");

    // A version 4 that requires a new member without an upcast that
    // supplies it breaks backward compatibility.
    let mut schema_v4 = schema_v3();
    schema_v4["properties"]["note"] = json!({"type": "string"});
    schema_v4["required"] = json!(["id", "price", "currency", "state", "note"]);
    let v4 = SchemaRegistration {
        schema: schema_v4,
        compatibility: Compatibility::Backward,
        upcast: Vec::new(),
        predecessors: None,
    };
    let error = client
        .register_schema(ORDER_TYPE, 4, &v4)
        .await
        .expect_err("incompatible");
    assert_eq!(error.code(), Some("incompatible_schema"), "{error}");
    let breaking = error.breaking_changes();
    assert!(!breaking.is_empty(), "{error}");
    assert!(
        breaking
            .iter()
            .all(|change| change.version == 3 && change.direction == "backward"),
        "{breaking:?}"
    );
    assert!(error.violations().is_empty());
    assert!(
        client.schema(ORDER_TYPE, 4).await?.is_none(),
        "nothing registered"
    );

    // A write that does not fit its version's schema: the violations name
    // where and which rule.
    let error = put_raw(
        &client,
        json!({"id": "o-5", "price": {"total": "ten"}, "currency": "EUR", "state": "open", "cairn_version": 3}),
    )
    .await
    .expect_err("refused");
    assert_eq!(error.code(), Some("schema_violation"), "{error}");
    let violations = error.violations();
    assert!(
        violations
            .iter()
            .any(|violation| violation.pointer == "/fields/price/total" && violation.rule == "type"),
        "{violations:?}"
    );
    assert!(error.breaking_changes().is_empty());
    client.close().await;
    Ok(())
}

#[tokio::test]
async fn an_older_reader_reads_older_facts_and_meets_newer_ones() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::embedded(dir.path()).await?;
    register_three_versions(&client).await?;
    let v1 = put_raw(
        &client,
        json!({"id": "o-1", "amount": 2.5, "state": "paid"}),
    )
    .await?;
    let read = client.get::<OrderV2>(&v1).await?.expect("stored");
    assert_eq!(
        read.value,
        OrderV2 {
            id: "o-1".into(),
            total: 2.5,
            state: "paid".into(),
        },
        "version 2's rename only; version 3's steps are not applied"
    );

    // A version 3 fact no longer has `total`: a clear error, naming both
    // versions.
    let v3 = client
        .put(&Order {
            id: "o-3".into(),
            price: Price { total: 3.0 },
            currency: "EUR".into(),
            state: "open".into(),
        })
        .await?
        .hash;
    let error = client.get::<OrderV2>(&v3).await.expect_err("does not fit");
    match &error {
        ClientError::Deserialize { hash, message, .. } => {
            assert_eq!(*hash, v3);
            assert!(
                message.contains("schema version 3") && message.contains("version 2"),
                "{message}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    client.close().await;
    Ok(())
}
