//! Typed facts: [`TypedFact`] maps a serde type to a fact type, whose
//! `fields` are the value's serde form and whose predecessors come from
//! [`TypedFact::predecessors`]. The fact and its hash are built on the
//! client ([`to_canonical_fact`]), so the caller knows a fact's identity
//! before the server does and can check that the server agrees.

use cairn_fact::{CanonicalFact, Hash};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ClientError, Result};
use crate::limits;
use crate::predecessors::Predecessors;
use crate::wire::StoredFact;

/// A Rust type stored as facts of one fact type.
///
/// Its serde form must be a JSON object: it becomes the fact's `fields`.
/// Predecessor hashes do not belong in the fields; [`predecessors`]
/// supplies them, and typed reads return them beside the value in
/// [`Typed::predecessors`]. Numbers follow the contract: integers beyond
/// ±(2^53−1) are refused (send them as strings), and serde_json writes
/// non-finite floats as `null`.
///
/// [`predecessors`]: TypedFact::predecessors
pub trait TypedFact: Serialize + DeserializeOwned {
    /// The fact type, for example `"Shop.Order"`.
    const TYPE_NAME: &'static str;

    /// The facts this one follows, by role. None by default.
    fn predecessors(&self) -> Predecessors {
        Predecessors::new()
    }
}

/// Implements [`TypedFact`] with no predecessors:
/// `cairn_client::typed_fact!(Ping = "Demo.Ping");`.
#[macro_export]
macro_rules! typed_fact {
    ($rust_type:ty = $type_name:expr) => {
        impl $crate::TypedFact for $rust_type {
            const TYPE_NAME: &'static str = $type_name;
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
        let fields = members
            .remove("fields")
            .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
        let value =
            serde_json::from_value(fields).map_err(|error| deserialize_error(error.to_string()))?;
        Ok(Typed {
            hash,
            seq,
            value,
            predecessors,
        })
    }
}

/// Builds the fact of a typed value and computes its hash, exactly as the
/// server will.
pub fn to_canonical_fact<T: TypedFact>(value: &T) -> Result<CanonicalFact> {
    let serialize_error = |message: String| ClientError::Serialize {
        type_name: T::TYPE_NAME,
        message,
    };
    let fields = serde_json::to_value(value).map_err(|error| serialize_error(error.to_string()))?;
    if !fields.is_object() {
        return Err(serialize_error(
            "the fields must serialize to a JSON object (a struct or a map)".to_string(),
        ));
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
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Order {
        id: String,
        total: f64,
        #[serde(skip)]
        customer: Option<Hash>,
    }

    impl TypedFact for Order {
        const TYPE_NAME: &'static str = "Shop.Order";

        fn predecessors(&self) -> Predecessors {
            match self.customer {
                Some(customer) => Predecessors::new().with_one("customer", customer),
                None => Predecessors::new(),
            }
        }
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
        assert_eq!(typed.predecessors.first("customer"), Some(customer));
        let mismatch = Typed::<Ping>::from_parts(fact.hash, 1, json).unwrap_err();
        assert!(matches!(mismatch, ClientError::TypeMismatch { .. }));
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
