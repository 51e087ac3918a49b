//! Strict parsing of URL query strings: unknown parameters, repeated
//! single-valued parameters and out-of-range numbers are clear 400 errors,
//! never silently ignored.

use crate::error::ApiError;
use cairn_api::ErrorCode;

/// The decoded parameters of one request.
pub struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl QueryParams {
    /// Decodes `raw` and rejects any parameter not in `allowed`.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<QueryParams, ApiError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        for (key, _) in &pairs {
            if !allowed.contains(&key.as_str()) {
                let expected = if allowed.is_empty() {
                    "this endpoint takes no query parameters".to_string()
                } else {
                    format!("allowed: {}", allowed.join(", "))
                };
                return Err(ApiError::new(
                    ErrorCode::UnknownParameter,
                    format!("unknown query parameter {key:?}; {expected}"),
                ));
            }
        }
        Ok(QueryParams { pairs })
    }

    /// All values of a repeatable parameter, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// The value of a parameter given at most once.
    pub fn single(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.all(name).as_slice() {
            [] => Ok(None),
            [value] => Ok(Some(value)),
            _ => Err(ApiError::new(
                ErrorCode::InvalidParameter,
                format!("query parameter {name:?} may be given only once"),
            )),
        }
    }

    /// A parameter `true` or `false`, false when absent.
    pub fn boolean(&self, name: &str) -> Result<bool, ApiError> {
        match self.single(name)? {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ApiError::new(
                ErrorCode::InvalidParameter,
                format!("query parameter {name:?} must be true or false, got {other:?}"),
            )),
        }
    }

    /// An integer parameter within `min..=max`, or `default` when absent.
    pub fn integer(&self, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ApiError> {
        let Some(text) = self.single(name)? else {
            return Ok(default);
        };
        let value: u64 = text.parse().map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidParameter,
                format!("query parameter {name:?} must be a non-negative integer, got {text:?}"),
            )
        })?;
        if value < min || value > max {
            return Err(ApiError::new(
                ErrorCode::ParameterOutOfRange,
                format!("query parameter {name:?} must be between {min} and {max}, got {value}"),
            ));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_and_repeated_parameters() {
        assert_eq!(
            QueryParams::parse(Some("x=1"), &["limit"])
                .err()
                .unwrap()
                .code,
            ErrorCode::UnknownParameter
        );
        let params = QueryParams::parse(Some("limit=1&limit=2"), &["limit"]).unwrap();
        assert_eq!(
            params.single("limit").err().unwrap().code,
            ErrorCode::InvalidParameter
        );
    }

    #[test]
    fn integers_are_range_checked() {
        let params = QueryParams::parse(Some("limit=0&after=abc"), &["limit", "after"]).unwrap();
        assert_eq!(
            params.integer("limit", 5, 1, 10).err().unwrap().code,
            ErrorCode::ParameterOutOfRange
        );
        assert_eq!(
            params.integer("after", 0, 0, u64::MAX).err().unwrap().code,
            ErrorCode::InvalidParameter
        );
        assert_eq!(params.integer("wait_ms", 7, 0, 10).unwrap(), 7);
    }

    #[test]
    fn decodes_percent_escapes_and_repeats() {
        let params = QueryParams::parse(Some("without=A%2EB&without=C"), &["without"]).unwrap();
        assert_eq!(params.all("without"), vec!["A.B", "C"]);
    }
}
