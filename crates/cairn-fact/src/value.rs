//! The parsed JSON value. Objects keep their members in input order (the
//! canonical writer sorts them), and the parser guarantees that their keys
//! are unique; numbers are IEEE-754 doubles, as RFC 8785 requires.

/// A JSON value.
///
/// Values produced by [`crate::parse_json`] hold only finite numbers and
/// objects without duplicate keys. Values built by hand may break those
/// rules; [`crate::Fact::from_value`] checks them again.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, always held as a double.
    Number(f64),
    /// A string of Unicode scalar values (never a lone surrogate).
    String(String),
    /// An array, in order.
    Array(Vec<Value>),
    /// An object's members as (key, value) pairs in input order.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// Returns the value of the object member named `key`, or `None` when
    /// this is not an object or has no such member.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?
            .iter()
            .find(|(member_key, _)| member_key == key)
            .map(|(_, member_value)| member_value)
    }

    /// Returns the members when this is an object.
    pub fn as_object(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(members) => Some(members),
            _ => None,
        }
    }

    /// Returns the items when this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// Returns the text when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// Returns the number when this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(number) => Some(*number),
            _ => None,
        }
    }

    /// Returns the JSON kind of this value as a word for error messages.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_return_only_their_kind() {
        let object = Value::Object(vec![
            ("a".to_string(), Value::Number(1.5)),
            ("b".to_string(), Value::String("text".to_string())),
            ("c".to_string(), Value::Array(vec![Value::Null])),
        ]);
        assert_eq!(object.get("a").and_then(Value::as_f64), Some(1.5));
        assert_eq!(object.get("b").and_then(Value::as_str), Some("text"));
        assert_eq!(
            object
                .get("c")
                .and_then(Value::as_array)
                .map(<[Value]>::len),
            Some(1)
        );
        assert_eq!(object.get("missing"), None);
        assert_eq!(object.as_object().map(<[(String, Value)]>::len), Some(3));
        assert_eq!(Value::Null.get("a"), None);
        assert_eq!(Value::Bool(true).as_str(), None);
        assert_eq!(Value::Null.as_f64(), None);
        assert_eq!(Value::Null.as_array(), None);
        assert_eq!(Value::Null.as_object(), None);
    }
}
