//! Lease tokens: what a consumer holds for one lease of one message, and
//! how a subscription decides what a token it is given refers to.
//!
//! A token names a message (`seq`) and one of its leases (the *lease
//! number*: the replay round in the high 32 bits, the delivery attempt in
//! the low 32), and carries a MAC over both, keyed with the secret of one
//! subscription incarnation ([`TokenKey`]). So a subscription recognises
//! its own tokens without storing old lease ids: a token whose MAC fails is
//! not one of its tokens at all (forged, mistyped, from another
//! subscription or, on the embedded backend, from before a restart), and a
//! genuine token is compared with the message's current lease number to
//! tell the current lease from an earlier one ([`match_token`]).
//!
//! Only the exact text that was issued acts: the text is parsed and must
//! be written back identically (lowercase hex, no leading zeros), so two
//! spellings never name one lease.

use std::fmt;

/// Hex digits of a token's MAC (64 bits).
const MAC_HEX_DIGITS: usize = 16;
/// Hex digits of a `u64` at most.
const U64_HEX_DIGITS_MAX: usize = 16;
/// Context of the key derivation for token MACs (BLAKE3 `derive_key`).
const MAC_KEY_CONTEXT: &str = "cairn 2026-12-06 lease token mac";
/// Context of the key derivation for backoff jitter.
const JITTER_KEY_CONTEXT: &str = "cairn 2026-12-06 backoff jitter";

/// The lease number of `attempt` in replay round `round`: lease numbers of
/// one message grow with every lease, also across replays (which start the
/// attempts again at 1 in the next round).
pub fn lease_number(round: u32, attempt: u32) -> u64 {
    (u64::from(round) << 32) | u64::from(attempt)
}

/// One lease of one message, as written in its token
/// `<seq hex>-<lease number hex>-<mac, 16 hex digits>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LeaseToken {
    /// The leased message.
    pub seq: u64,
    /// Which lease of the message: see [`lease_number`].
    pub lease_id: u64,
    /// The MAC of `(seq, lease_id)` under the subscription's key.
    pub mac: u64,
}

impl LeaseToken {
    /// Parses token text of the exact form [`LeaseToken`]'s `Display`
    /// writes; `None` for anything else (other spellings included). The
    /// MAC is not checked here: see [`TokenKey::verify`].
    pub fn parse(text: &str) -> Option<LeaseToken> {
        let mut parts = text.split('-');
        let (seq, lease_id, mac) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || mac.len() != MAC_HEX_DIGITS {
            return None;
        }
        let hex = |part: &str| {
            let digits_ok = !part.is_empty()
                && part.len() <= U64_HEX_DIGITS_MAX
                && part.bytes().all(|b| b.is_ascii_hexdigit());
            digits_ok
                .then(|| u64::from_str_radix(part, 16).ok())
                .flatten()
        };
        let token = LeaseToken {
            seq: hex(seq)?,
            lease_id: hex(lease_id)?,
            mac: hex(mac)?,
        };
        // One spelling per token: uppercase digits or leading zeros would
        // make a second text act on the same lease.
        (token.to_string() == text).then_some(token)
    }

    /// The delivery attempt this lease was (1 on the first delivery).
    pub fn attempt(&self) -> u32 {
        self.lease_id as u32
    }

    /// The replay round this lease was in (0 before any replay).
    pub fn round(&self) -> u32 {
        (self.lease_id >> 32) as u32
    }
}

impl fmt::Display for LeaseToken {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{:x}-{:x}-{:016x}",
            self.seq, self.lease_id, self.mac
        )
    }
}

/// The secret of one subscription incarnation: it signs the tokens the
/// subscription issues and draws the jitter of its backoff. Random per
/// incarnation in production (the embedded backend makes a new one at
/// every start, so tokens from before a restart are unknown; PostgreSQL
/// keeps one per subscription row, so every server honours them).
#[derive(Clone)]
pub struct TokenKey {
    secret: [u8; 32],
    mac_key: [u8; 32],
    jitter_key: [u8; 32],
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// The key of `secret` (32 random bytes).
    pub fn new(secret: [u8; 32]) -> TokenKey {
        TokenKey {
            secret,
            mac_key: blake3::derive_key(MAC_KEY_CONTEXT, &secret),
            jitter_key: blake3::derive_key(JITTER_KEY_CONTEXT, &secret),
        }
    }

    /// A key fixed by `seed`, for simulations and tests that replay runs
    /// from one number; not secret.
    pub fn from_seed(seed: u64) -> TokenKey {
        TokenKey::new(*blake3::hash(&seed.to_le_bytes()).as_bytes())
    }

    /// The secret, for a backend that stores it.
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The token of lease `lease_id` of message `seq`.
    pub fn issue(&self, seq: u64, lease_id: u64) -> LeaseToken {
        LeaseToken {
            seq,
            lease_id,
            mac: self.keyed_u64(&self.mac_key, seq, lease_id),
        }
    }

    /// The token `text` names, if this key issued exactly this text.
    pub fn verify(&self, text: &str) -> Option<LeaseToken> {
        let token = LeaseToken::parse(text)?;
        (self.issue(token.seq, token.lease_id) == token).then_some(token)
    }

    /// Uniform random bits for the backoff after lease `lease_id` of
    /// message `seq` failed: a function of the failure, not of the order
    /// in which failures are processed, so every engine (and every server
    /// of one) draws the same delay for the same failure.
    pub fn jitter(&self, seq: u64, lease_id: u64) -> u64 {
        self.keyed_u64(&self.jitter_key, seq, lease_id)
    }

    fn keyed_u64(&self, key: &[u8; 32], seq: u64, lease_id: u64) -> u64 {
        let mut input = [0u8; 16];
        input[..8].copy_from_slice(&seq.to_le_bytes());
        input[8..].copy_from_slice(&lease_id.to_le_bytes());
        let output = blake3::keyed_hash(key, &input);
        let mut first = [0u8; 8];
        first.copy_from_slice(&output.as_bytes()[..8]);
        u64::from_le_bytes(first)
    }
}

/// What a subscription knows about a pending message's leases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageLease {
    /// The lease number of its latest lease (attempts 0: not leased since
    /// it was admitted or replayed).
    pub lease_id: u64,
    /// Whether that lease is still held (its end not yet processed).
    pub leased: bool,
}

/// What a genuine token refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenMatch {
    /// The message's latest lease: the token may act.
    Current {
        /// Whether the lease is still held.
        leased: bool,
    },
    /// An earlier lease of a message that was leased again since.
    Superseded,
    /// Not a lease of a pending message: acknowledged, dead, or never
    /// issued.
    Unknown,
}

/// Decides what `token` (already verified with the subscription's key)
/// refers to, given its message's state (`None`: not pending).
pub fn match_token(token: &LeaseToken, message: Option<MessageLease>) -> TokenMatch {
    let Some(message) = message else {
        return TokenMatch::Unknown;
    };
    let never_leased_this_round = message.lease_id as u32 == 0;
    if never_leased_this_round || token.lease_id > message.lease_id {
        TokenMatch::Unknown
    } else if token.lease_id == message.lease_id {
        TokenMatch::Current {
            leased: message.leased,
        }
    } else {
        TokenMatch::Superseded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_text_verifies_and_no_other_spelling_does() {
        let key = TokenKey::from_seed(1);
        let token = key.issue(42, lease_number(0, 3));
        let text = token.to_string();
        assert_eq!(key.verify(&text), Some(token));
        assert_eq!((token.round(), token.attempt()), (0, 3));
        let upper = text.to_uppercase();
        let padded = format!("0{text}");
        let mac_changed = format!("{}{}", &text[..text.len() - 1], "x");
        for other in [upper.as_str(), padded.as_str(), mac_changed.as_str()] {
            assert_eq!(key.verify(other), None, "{other}");
        }
        assert_eq!(TokenKey::from_seed(2).verify(&text), None);
        let forged = LeaseToken {
            mac: token.mac ^ 1,
            ..token
        };
        assert_eq!(key.verify(&forged.to_string()), None);
    }

    #[test]
    fn parse_rejects_garbage() {
        for bad in [
            "",
            "-",
            "1-2",
            "1-2-",
            "1-2-3",
            "1-2-000000000000000g",
            "1-2-0000000000000001-4",
            "+1-2-0000000000000001",
            "01-2-0000000000000001",
            "11111111111111111-2-0000000000000001",
        ] {
            assert_eq!(LeaseToken::parse(bad), None, "{bad}");
        }
        assert!(LeaseToken::parse("1-2-0000000000000001").is_some());
    }

    #[test]
    fn a_token_is_current_superseded_or_unknown() {
        let key = TokenKey::from_seed(7);
        let second = key.issue(5, lease_number(0, 2));
        let message = |round, attempts, leased| {
            Some(MessageLease {
                lease_id: lease_number(round, attempts),
                leased,
            })
        };
        assert_eq!(
            match_token(&second, message(0, 2, true)),
            TokenMatch::Current { leased: true }
        );
        assert_eq!(
            match_token(&second, message(0, 2, false)),
            TokenMatch::Current { leased: false }
        );
        assert_eq!(
            match_token(&second, message(0, 3, true)),
            TokenMatch::Superseded
        );
        assert_eq!(
            match_token(&second, message(1, 1, true)),
            TokenMatch::Superseded
        );
        assert_eq!(
            match_token(&second, message(0, 1, true)),
            TokenMatch::Unknown
        );
        assert_eq!(
            match_token(&second, message(1, 0, false)),
            TokenMatch::Unknown
        );
        assert_eq!(match_token(&second, None), TokenMatch::Unknown);
    }
}
