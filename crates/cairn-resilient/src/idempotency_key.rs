//! The `Idempotency-Key` header: its name and the one validity rule shared by
//! the client (fail before sending) and the server layer (answer 400).

use crate::limits::IDEMPOTENCY_KEY_BYTES_MAX;

/// Header carrying the key that makes a request safe to repeat.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// Header the server layer adds to an answer replayed from its store.
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "idempotent-replayed";

/// True when `key` is 1 to [`IDEMPOTENCY_KEY_BYTES_MAX`] bytes of visible ASCII
/// (`!` to `~`): such keys survive every proxy and log unchanged.
pub fn is_valid_idempotency_key(key: &[u8]) -> bool {
    !key.is_empty()
        && key.len() <= IDEMPOTENCY_KEY_BYTES_MAX
        && key.iter().all(|byte| byte.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuids_and_rejects_empty_long_or_invisible_keys() {
        assert!(is_valid_idempotency_key(
            b"0b5e3c4e-8d7a-4a4b-9a51-0e3d2f1c9b7a"
        ));
        assert!(is_valid_idempotency_key(&[b'k'; IDEMPOTENCY_KEY_BYTES_MAX]));
        assert!(!is_valid_idempotency_key(b""));
        assert!(!is_valid_idempotency_key(
            &[b'k'; IDEMPOTENCY_KEY_BYTES_MAX + 1]
        ));
        assert!(!is_valid_idempotency_key(b"two words"));
        assert!(!is_valid_idempotency_key("clé".as_bytes()));
    }
}
