//! A fact's `fields` as the instance the JSON Schema validates: its
//! members without Cairn's own (`cairn_…`), as a `serde_json::Value`.
//!
//! Converting the parsed fields is cheaper than parsing the canonical
//! bytes again (measured in `tests/validation.rs`, the ignored timing
//! test), and the fact is already parsed when it is validated.

use cairn_api::schemas::RESERVED_FIELD_PREFIX;
use cairn_fact::Value as FactValue;
use serde_json::{Map, Number, Value};

/// The largest integer a double holds exactly (2^53): integral numbers up
/// to it become JSON integers, so messages show `5`, not `5.0`.
const EXACT_INTEGER_MAGNITUDE_MAX: f64 = 9_007_199_254_740_992.0;

/// The instance the schema of `fields` validates: the members whose names
/// do not start with [`RESERVED_FIELD_PREFIX`].
pub(crate) fn fields_instance(fields: &[(String, FactValue)]) -> Value {
    let mut object = Map::new();
    for (name, value) in fields {
        if !name.starts_with(RESERVED_FIELD_PREFIX) {
            object.insert(name.clone(), json_value(value));
        }
    }
    Value::Object(object)
}

/// One value, converted.
pub(crate) fn json_value(value: &FactValue) -> Value {
    match value {
        FactValue::Null => Value::Null,
        FactValue::Bool(boolean) => Value::Bool(*boolean),
        FactValue::Number(number) => json_number(*number),
        FactValue::String(text) => Value::String(text.clone()),
        FactValue::Array(items) => Value::Array(items.iter().map(json_value).collect()),
        FactValue::Object(members) => Value::Object(
            members
                .iter()
                .map(|(name, member)| (name.clone(), json_value(member)))
                .collect(),
        ),
    }
}

fn json_number(number: f64) -> Value {
    if number.fract() == 0.0 && number.abs() <= EXACT_INTEGER_MAGNITUDE_MAX {
        // Exact: the magnitude is at most 2^53, well inside i64.
        return Value::Number(Number::from(number as i64));
    }
    // A fact's numbers are finite (cairn_fact::Fact's invariant), so
    // `from_f64` answers; null would only stand for a broken invariant.
    Number::from_f64(number).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reserved_members_are_left_out_only_at_the_top() {
        let fields = vec![
            ("cairn_version".to_string(), FactValue::Number(2.0)),
            ("total".to_string(), FactValue::Number(12.5)),
            (
                "nested".to_string(),
                FactValue::Object(vec![("cairn_kept".to_string(), FactValue::Bool(true))]),
            ),
            (
                "items".to_string(),
                FactValue::Array(vec![FactValue::Null, FactValue::String("a".into())]),
            ),
            ("count".to_string(), FactValue::Number(-3.0)),
            ("big".to_string(), FactValue::Number(1e300)),
        ];
        assert_eq!(
            fields_instance(&fields),
            json!({
                "total": 12.5,
                "nested": {"cairn_kept": true},
                "items": [null, "a"],
                "count": -3,
                "big": 1e300
            })
        );
        assert!(fields_instance(&fields)["count"].is_i64());
    }
}
