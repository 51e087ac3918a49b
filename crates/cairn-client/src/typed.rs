//! Typed facts: [`TypedFact`] maps a serde type to a fact type, whose
//! `fields` are the value's serde form and whose predecessors come from
//! [`TypedFact::predecessors`]. The fact and its hash are built on the
//! client ([`to_canonical_fact`]), so the caller knows a fact's identity
//! before the server does and can check that the server agrees.
//!
//! A typed fact also names its schema version ([`TypedFact::VERSION`],
//! written as `cairn_version` beyond version 1) and how each version reads
//! the one before ([`TypedFact::upcasts`]), so that [`Typed::from_parts`]
//! reads facts written at older versions as the current type, with the
//! same upcast operations the server applies for `as_version`.

use std::collections::BTreeSet;

use cairn_api::schemas::{fact_version, upcast_fields, VERSION_FIELD};
use cairn_api::{Compatibility, SchemaRegistration, UpcastOperation};
use cairn_fact::{CanonicalFact, Hash};

use crate::error::{ClientError, Result};
use crate::limits;
use crate::predecessors::{PredecessorHashes, Predecessors};
use crate::wire::StoredFact;

/// A Rust type stored as facts of one fact type.
///
/// Derive it: `#[derive(Fact)]` with `#[fact(type = "Shop.Order")]`, and
/// `#[predecessor(role = "…")]` on the fields that name other facts (see
/// [`macro@crate::Fact`]). The other fields are the fact's `fields`, through
/// serde. For a serde type without predecessors,
/// `typed_fact!(Ping = "Demo.Ping")` does the same in one line. Numbers
/// follow the contract: integers beyond ±(2^53−1) are refused (send them as
/// strings), and serde_json writes non-finite floats as `null`.
///
/// A type whose shape changed over time declares its schema version with
/// `#[fact(version = N)]` and how each version reads the one before with
/// `#[fact(upcasts = function)]` (see [`TypedFact::upcasts`]): it then
/// writes `cairn_version: N` into its facts and reads facts of every
/// earlier version as itself.
pub trait TypedFact: Sized {
    /// The fact type, for example `"Shop.Order"`.
    const TYPE_NAME: &'static str;

    /// The schema version this type is (1 to
    /// [`SCHEMA_VERSION_MAX`](crate::limits::SCHEMA_VERSION_MAX)): its
    /// facts carry it in `fields` as `cairn_version` when it is above 1
    /// (absent means 1), and it is part of their hash.
    const VERSION: u32 = 1;

    /// The upcast operations that read a fact of version `version - 1` as
    /// version `version` (what the schema registration of `version`
    /// declares as `upcast`), for `version` from 2 to [`Self::VERSION`].
    /// A fact written at an older version is read through every step up
    /// to [`Self::VERSION`], in order. The default declares none.
    fn upcasts(version: u32) -> Vec<UpcastOperation> {
        let _ = version;
        Vec::new()
    }

    /// The fact's `fields`: must be a JSON object.
    fn fields(&self) -> std::result::Result<serde_json::Value, serde_json::Error>;

    /// The facts this one follows, by role.
    fn predecessors(&self) -> Predecessors {
        Predecessors::new()
    }

    /// Builds the value from a fact's `fields` and `predecessors`; the
    /// error text says what does not fit.
    fn from_fact(
        fields: serde_json::Value,
        predecessors: &Predecessors,
    ) -> std::result::Result<Self, String>;
}

/// A typed fact that answers a request of type [`Reply::Request`]: it
/// names the request as its predecessor in the role `request`. Derive it
/// with `#[fact(type = "…", reply_to = Command)]`; then
/// [`PendingRequest::reply`](crate::PendingRequest::reply) accepts only
/// replies to its own command type, checked at compile time:
///
/// ```
/// use cairn_client::{Client, Fact, Hash};
/// # use std::time::Duration;
///
/// #[derive(Fact)]
/// #[fact(type = "Library.IsAvailable")]
/// struct IsAvailable { isbn: String }
///
/// #[derive(Fact)]
/// #[fact(type = "Library.Availability", reply_to = IsAvailable)]
/// struct Availability { #[predecessor] request: Hash, available: bool }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cairn_client::Result<()> {
/// # let data = tempfile::tempdir().expect("a temporary directory");
/// # let client = Client::embedded(data.path()).await?;
/// let pending = client.request(&IsAvailable { isbn: "978-0".into() }).await?;
/// // A responder (see `Client::responder`) stores the answer:
/// client.put(&Availability { request: pending.hash(), available: true }).await?;
/// let reply = pending.reply::<Availability>(Duration::from_secs(5)).await?;
/// assert!(reply.value.available);
/// # client.close().await;
/// # Ok(()) }
/// ```
///
/// Awaiting a reply to another command does not compile:
///
/// ```compile_fail
/// use cairn_client::{Client, Fact, Hash};
/// # use std::time::Duration;
///
/// #[derive(Fact)]
/// #[fact(type = "Library.IsAvailable")]
/// struct IsAvailable { isbn: String }
///
/// #[derive(Fact)]
/// #[fact(type = "Library.Reserve")]
/// struct Reserve { isbn: String }
///
/// #[derive(Fact)]
/// #[fact(type = "Library.Reserved", reply_to = Reserve)]
/// struct Reserved { #[predecessor] request: Hash }
///
/// # async fn example(client: Client) -> cairn_client::Result<()> {
/// let pending = client.request(&IsAvailable { isbn: "978-0".into() }).await?;
/// let reply = pending.reply::<Reserved>(Duration::from_secs(5)).await?;
/// # Ok(()) }
/// ```
pub trait Reply: TypedFact {
    /// The command this answers.
    type Request: TypedFact;

    /// The request fact answered.
    fn request(&self) -> Hash;
}

/// A field type that holds the predecessors of one role: [`Hash`] (one
/// fact, required), `Option<Hash>` (one fact, optional), `Vec<Hash>` and
/// `BTreeSet<Hash>` (a set of facts; empty leaves the role out).
pub trait PredecessorField: Sized {
    /// Adds the field's hashes to `predecessors` in `role`.
    fn add_to(&self, role: &str, predecessors: Predecessors) -> Predecessors;

    /// Reads the field from a fact's predecessors.
    fn read_from(predecessors: &Predecessors, role: &str) -> std::result::Result<Self, String>;
}

impl PredecessorField for Hash {
    fn add_to(&self, role: &str, predecessors: Predecessors) -> Predecessors {
        predecessors.with_one(role, *self)
    }

    fn read_from(predecessors: &Predecessors, role: &str) -> std::result::Result<Hash, String> {
        match predecessors.get(role) {
            Some(PredecessorHashes::One(hash)) => Ok(*hash),
            Some(PredecessorHashes::Many(_)) => Err(format!(
                "the predecessor role {role:?} names a set of facts, not one"
            )),
            None => Err(format!("the predecessor role {role:?} is missing")),
        }
    }
}

impl PredecessorField for Option<Hash> {
    fn add_to(&self, role: &str, predecessors: Predecessors) -> Predecessors {
        match self {
            Some(hash) => predecessors.with_one(role, *hash),
            None => predecessors,
        }
    }

    fn read_from(
        predecessors: &Predecessors,
        role: &str,
    ) -> std::result::Result<Option<Hash>, String> {
        match predecessors.get(role) {
            None => Ok(None),
            Some(_) => Hash::read_from(predecessors, role).map(Some),
        }
    }
}

impl PredecessorField for Vec<Hash> {
    fn add_to(&self, role: &str, predecessors: Predecessors) -> Predecessors {
        predecessors.with_many(role, self.iter().copied())
    }

    fn read_from(
        predecessors: &Predecessors,
        role: &str,
    ) -> std::result::Result<Vec<Hash>, String> {
        match predecessors.get(role) {
            Some(PredecessorHashes::One(_)) => Err(format!(
                "the predecessor role {role:?} names one fact, not a set"
            )),
            Some(PredecessorHashes::Many(hashes)) => Ok(hashes.clone()),
            None => Ok(Vec::new()),
        }
    }
}

impl PredecessorField for BTreeSet<Hash> {
    fn add_to(&self, role: &str, predecessors: Predecessors) -> Predecessors {
        predecessors.with_many(role, self.iter().copied())
    }

    fn read_from(
        predecessors: &Predecessors,
        role: &str,
    ) -> std::result::Result<BTreeSet<Hash>, String> {
        Vec::<Hash>::read_from(predecessors, role).map(|hashes| hashes.into_iter().collect())
    }
}

/// Implements [`TypedFact`] for a serde type with no predecessors:
/// `cairn_client::typed_fact!(Ping = "Demo.Ping");`.
#[macro_export]
macro_rules! typed_fact {
    ($rust_type:ty = $type_name:expr) => {
        impl $crate::TypedFact for $rust_type {
            const TYPE_NAME: &'static str = $type_name;

            fn fields(
                &self,
            ) -> ::std::result::Result<
                $crate::__private::serde_json::Value,
                $crate::__private::serde_json::Error,
            > {
                $crate::__private::serde_json::to_value(self)
            }

            fn from_fact(
                fields: $crate::__private::serde_json::Value,
                _predecessors: &$crate::Predecessors,
            ) -> ::std::result::Result<Self, ::std::string::String> {
                $crate::__private::serde_json::from_value(fields).map_err(|error| error.to_string())
            }
        }
    };
}

/// A typed fact as read back from the store.
#[derive(Clone, Debug, PartialEq)]
pub struct Typed<T> {
    /// The fact's hash.
    pub hash: Hash,
    /// The fact's position in the log of the server that answered.
    pub seq: u64,
    /// The fact's fields as the typed value.
    pub value: T,
    /// The fact's predecessors.
    pub predecessors: Predecessors,
}

impl<T: TypedFact> Typed<T> {
    /// Reads a stored fact as a `T`, checking its type name.
    pub fn from_stored(stored: StoredFact) -> Result<Typed<T>> {
        Typed::from_parts(stored.hash, stored.seq, stored.fact)
    }

    /// Reads a fact's JSON as a `T`, checking its type name.
    pub fn from_parts(hash: Hash, seq: u64, fact: serde_json::Value) -> Result<Typed<T>> {
        let deserialize_error = |message: String| ClientError::Deserialize {
            hash,
            type_name: T::TYPE_NAME,
            message,
        };
        let serde_json::Value::Object(mut members) = fact else {
            return Err(deserialize_error("the fact is not an object".to_string()));
        };
        let found = members.get("type").and_then(serde_json::Value::as_str);
        if found != Some(T::TYPE_NAME) {
            return Err(ClientError::TypeMismatch {
                hash,
                expected: T::TYPE_NAME,
                found: found.unwrap_or_default().to_string(),
            });
        }
        let predecessors =
            Predecessors::from_json(members.get("predecessors")).map_err(deserialize_error)?;
        let mut fields = members
            .remove("fields")
            .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
        let mut written_version = None;
        if let serde_json::Value::Object(members) = &mut fields {
            written_version = Some(read_as_current::<T>(members).map_err(deserialize_error)?);
            // What the SDK adds to a request is not the command's own fields.
            members.remove(crate::request::REQUEST_ID_FIELD);
            members.remove(crate::request::EXPIRES_AT_FIELD);
        }
        let value = T::from_fact(fields, &predecessors).map_err(|message| {
            deserialize_error(match written_version {
                Some(version) if version > T::VERSION => format!(
                    "it was written at schema version {version}, newer than this type's \
                     version {}, and does not read as it: {message}",
                    T::VERSION
                ),
                _ => message,
            })
        })?;
        Ok(Typed {
            hash,
            seq,
            value,
            predecessors,
        })
    }
}

/// Brings a fact's `fields` to `T`'s version: applies `T`'s upcasts to a
/// fact of an older version, leaves a newer one as it is (it reads as `T`
/// if its fields still fit), and removes [`VERSION_FIELD`], which is not
/// one of `T`'s own fields. Answers the version the fact was written at.
fn read_as_current<T: TypedFact>(
    fields: &mut serde_json::Map<String, serde_json::Value>,
) -> std::result::Result<u32, String> {
    let written_version = fact_version(fields)?;
    if written_version < T::VERSION {
        // Each step's operations, collected once: `upcast_fields` borrows them.
        let steps: Vec<Vec<UpcastOperation>> =
            (written_version + 1..=T::VERSION).map(T::upcasts).collect();
        let upcasts = |version: u32| {
            let step_index = version.saturating_sub(written_version + 1) as usize;
            steps.get(step_index).map_or(&[][..], Vec::as_slice)
        };
        upcast_fields(fields, written_version, T::VERSION, upcasts).map_err(|error| {
            format!(
                "it was written at schema version {written_version} and cannot be read as \
                 version {}: {error}",
                T::VERSION
            )
        })?;
    }
    fields.remove(VERSION_FIELD);
    Ok(written_version)
}

/// The registration of `T`'s version ([`TypedFact::VERSION`]) with the
/// JSON Schema `schema` of its fields: its upcasts are `T`'s own
/// ([`TypedFact::upcasts`]), so that the server's `as_version` reads what
/// the SDK reads. Register it with [`crate::Client::register_typed_schema`],
/// or add predecessor constraints first.
pub fn schema_registration<T: TypedFact>(
    schema: serde_json::Value,
    compatibility: Compatibility,
) -> SchemaRegistration {
    SchemaRegistration {
        schema,
        compatibility,
        upcast: if T::VERSION > 1 {
            T::upcasts(T::VERSION)
        } else {
            Vec::new()
        },
        predecessors: None,
    }
}

/// Builds the fact of a typed value and computes its hash, exactly as the
/// server will.
pub fn to_canonical_fact<T: TypedFact>(value: &T) -> Result<CanonicalFact> {
    fact_with_extra_fields(value, serde_json::Map::new())
}

/// Builds the fact of a typed value with `extra` members added to its
/// fields (what the SDK adds to a request); a value that already has one
/// of those members is refused.
pub(crate) fn fact_with_extra_fields<T: TypedFact>(
    value: &T,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Result<CanonicalFact> {
    let serialize_error = |message: String| ClientError::Serialize {
        type_name: T::TYPE_NAME,
        message,
    };
    if !(1..=limits::SCHEMA_VERSION_MAX).contains(&T::VERSION) {
        return Err(serialize_error(format!(
            "its VERSION is {}, but a schema version is from 1 to {}",
            T::VERSION,
            limits::SCHEMA_VERSION_MAX
        )));
    }
    let mut extra = extra;
    if T::VERSION > 1 {
        extra.insert(VERSION_FIELD.to_string(), T::VERSION.into());
    }
    let fields = value
        .fields()
        .map_err(|error| serialize_error(error.to_string()))?;
    let serde_json::Value::Object(mut fields) = fields else {
        return Err(serialize_error(
            "the fields must serialize to a JSON object (a struct or a map)".to_string(),
        ));
    };
    for (name, extra_value) in extra {
        if fields.contains_key(&name) {
            return Err(serialize_error(format!(
                "the field {name:?} is reserved for the SDK"
            )));
        }
        fields.insert(name, extra_value);
    }
    let fact = serde_json::json!({
        "type": T::TYPE_NAME,
        "fields": fields,
        "predecessors": value.predecessors().to_json(),
    });
    let bytes = serde_json::to_vec(&fact).map_err(|error| serialize_error(error.to_string()))?;
    Ok(CanonicalFact::from_json(
        &bytes,
        limits::FACT_CANONICAL_BYTES_MAX,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Fact;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Fact)]
    #[fact(type = "Shop.Order")]
    struct Order {
        id: String,
        total: f64,
        #[predecessor]
        customer: Option<Hash>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Ping {}
    typed_fact!(Ping = "Demo.Ping");

    #[derive(Serialize, Deserialize)]
    struct NotAnObject(u32);
    typed_fact!(NotAnObject = "Demo.Number");

    #[test]
    fn the_fact_has_type_fields_and_predecessors() {
        let customer = Hash([7; 32]);
        let order = Order {
            id: "o-1".to_string(),
            total: 4.5,
            customer: Some(customer),
        };
        let fact = to_canonical_fact(&order).unwrap();
        let expected = format!(
            "{{\"fields\":{{\"id\":\"o-1\",\"total\":4.5}},\"predecessors\":{{\"customer\":\"{customer}\"}},\"type\":\"Shop.Order\"}}"
        );
        assert_eq!(String::from_utf8(fact.canonical.clone()).unwrap(), expected);
        assert_eq!(fact.hash, Hash::of_bytes(expected.as_bytes()));
    }

    #[test]
    fn reading_back_checks_the_type_and_splits_predecessors() {
        let customer = Hash([7; 32]);
        let order = Order {
            id: "o-1".to_string(),
            total: 450.0,
            customer: Some(customer),
        };
        let fact = to_canonical_fact(&order).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&fact.canonical).unwrap();
        let typed: Typed<Order> = Typed::from_parts(fact.hash, 1, json.clone()).unwrap();
        assert_eq!(typed.value.id, "o-1");
        assert_eq!(typed.value.customer, Some(customer), "read back filled in");
        assert_eq!(typed.predecessors.first("customer"), Some(customer));
        let mismatch = Typed::<Ping>::from_parts(fact.hash, 1, json).unwrap_err();
        assert!(matches!(mismatch, ClientError::TypeMismatch { .. }));
    }

    fn rename_amount(version: u32) -> Vec<UpcastOperation> {
        match version {
            2 => vec![UpcastOperation::Rename {
                from: "/amount".into(),
                to: "/total".into(),
            }],
            _ => Vec::new(),
        }
    }

    #[derive(Debug, PartialEq, Fact)]
    #[fact(type = "Shop.Invoice", version = 2, upcasts = rename_amount)]
    struct Invoice {
        total: f64,
    }

    fn invoice_fact(fields: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"type": "Shop.Invoice", "fields": fields, "predecessors": {}})
    }

    #[test]
    fn a_versioned_value_names_its_version_and_reads_older_facts() {
        let fact = to_canonical_fact(&Invoice { total: 2.5 }).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&fact.canonical).unwrap();
        assert_eq!(
            json["fields"],
            serde_json::json!({"total": 2.5, "cairn_version": 2})
        );
        let hash = Hash([1; 32]);
        for fields in [
            serde_json::json!({"amount": 2.0}),
            serde_json::json!({"total": 2.0, "cairn_version": 2}),
            // Newer, and still readable: read as it is.
            serde_json::json!({"total": 2.0, "note": "x", "cairn_version": 3}),
        ] {
            let read = Typed::<Invoice>::from_parts(hash, 1, invoice_fact(fields.clone()));
            assert_eq!(read.unwrap().value, Invoice { total: 2.0 }, "{fields}");
        }
        for (fields, expected) in [
            (serde_json::json!({"sum": 2.0, "cairn_version": 3}), "newer"),
            (
                serde_json::json!({"total": 2.0, "cairn_version": 0}),
                "cairn_version",
            ),
            (
                serde_json::json!({"total": 2.0, "cairn_version": "2"}),
                "cairn_version",
            ),
        ] {
            match Typed::<Invoice>::from_parts(hash, 1, invoice_fact(fields.clone())) {
                Err(ClientError::Deserialize { message, .. }) => {
                    assert!(message.contains(expected), "{fields}: {message}")
                }
                other => panic!("{fields}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn a_version_out_of_range_or_a_field_named_like_it_is_refused() {
        #[derive(Serialize, Deserialize)]
        struct Zero {}
        impl TypedFact for Zero {
            const TYPE_NAME: &'static str = "Demo.Zero";
            const VERSION: u32 = 0;
            fn fields(&self) -> std::result::Result<serde_json::Value, serde_json::Error> {
                serde_json::to_value(self)
            }
            fn from_fact(
                fields: serde_json::Value,
                _predecessors: &Predecessors,
            ) -> std::result::Result<Self, String> {
                serde_json::from_value(fields).map_err(|error| error.to_string())
            }
        }
        assert!(matches!(
            to_canonical_fact(&Zero {}),
            Err(ClientError::Serialize { .. })
        ));
        #[derive(Fact)]
        #[fact(type = "Demo.Clash", version = 2)]
        struct Clash {
            cairn_version: u32,
        }
        assert!(matches!(
            to_canonical_fact(&Clash { cairn_version: 2 }),
            Err(ClientError::Serialize { .. })
        ));
    }

    #[test]
    fn a_registration_carries_the_types_upcasts() {
        let registration =
            schema_registration::<Invoice>(serde_json::json!(true), Compatibility::Backward);
        assert_eq!(registration.upcast, rename_amount(2));
        let registration =
            schema_registration::<Ping>(serde_json::json!(true), Compatibility::None);
        assert!(registration.upcast.is_empty());
    }

    #[test]
    fn values_that_are_not_objects_or_out_of_range_are_refused() {
        assert!(matches!(
            to_canonical_fact(&NotAnObject(1)),
            Err(ClientError::Serialize { .. })
        ));
        #[derive(Serialize, Deserialize)]
        struct Big {
            count: u64,
        }
        typed_fact!(Big = "Demo.Big");
        assert!(matches!(
            to_canonical_fact(&Big { count: u64::MAX }),
            Err(ClientError::Fact(_))
        ));
        assert!(to_canonical_fact(&Ping {}).is_ok());
    }
}
