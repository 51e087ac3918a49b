//! Lease tokens: what a consumer holds for one lease of one message.

use std::fmt;

/// Identifies one lease of one message: the message's `seq` and the lease
/// id drawn when it was leased. Written as `<seq hex>-<lease id hex>`; any
/// other string is not a token (acks report it as unknown).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LeaseToken {
    /// The leased message.
    pub seq: u64,
    /// The lease (random, so a token from an earlier lease or an earlier run
    /// of the server does not match).
    pub lease_id: u64,
}

impl LeaseToken {
    /// Parses a token; `None` for anything that is not one.
    pub fn parse(text: &str) -> Option<LeaseToken> {
        let (seq, lease_id) = text.split_once('-')?;
        let valid = |part: &str| {
            !part.is_empty() && part.len() <= 16 && part.bytes().all(|b| b.is_ascii_hexdigit())
        };
        if !valid(seq) || !valid(lease_id) {
            return None;
        }
        let seq = u64::from_str_radix(seq, 16).ok()?;
        let lease_id = u64::from_str_radix(lease_id, 16).ok()?;
        Some(LeaseToken { seq, lease_id })
    }
}

impl fmt::Display for LeaseToken {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:x}-{:016x}", self.seq, self.lease_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let token = LeaseToken {
            seq: 42,
            lease_id: 0xdead_beef,
        };
        assert_eq!(LeaseToken::parse(&token.to_string()), Some(token));
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "x-1",
            "1-2-3",
            "11111111111111111-1",
            "+1-2",
        ] {
            assert_eq!(LeaseToken::parse(bad), None, "{bad}");
        }
    }
}
