//! Access tokens: `cairn_<id>_<secret>`, made from 64 + 256 random bits,
//! and the one parser of the `Authorization` header.
//!
//! The id (16 hex digits) names a token in lists and logs; the secret (64
//! hex digits) is never kept: the server stores and compares its BLAKE3
//! hash, in constant time (`blake3::Hash`'s equality), so no secret can be
//! recovered from the store and no timing tells how much of one matched.

use cairn_api::access::{
    AUTHORIZATION_BYTES_MAX, TOKEN_ID_HEX_LEN, TOKEN_PREFIX, TOKEN_SECRET_HEX_LEN,
};

/// A token as presented: its id (borrowed from the header) and its
/// secret's hash (the secret itself is not kept once it is hashed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresentedToken<'a> {
    /// The token's id.
    pub id: &'a str,
    /// BLAKE3 of the secret.
    pub secret_hash: blake3::Hash,
}

/// Why an `Authorization` header was not accepted. The messages never
/// quote the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// No `Authorization` header.
    #[error("an access token is required (Authorization: Bearer <token>)")]
    Missing,
    /// More than one `Authorization` header.
    #[error("send one Authorization header")]
    Repeated,
    /// Longer than the server reads.
    #[error("the Authorization header is too long")]
    TooLong,
    /// Not `Bearer <token>` with a token of Cairn's shape.
    #[error("the Authorization header is not \"Bearer <access token>\"")]
    Malformed,
}

/// A new token: the text handed out once, its id and its secret's hash.
pub struct NewToken {
    /// `cairn_<id>_<secret>`.
    pub text: String,
    /// The id.
    pub id: String,
    /// BLAKE3 of the secret.
    pub secret_hash: blake3::Hash,
}

/// The operating system's random source failed.
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("the operating system's random source failed")]
pub struct RandomSourceFailed;

/// Makes a token from the operating system's random source.
pub fn generate() -> Result<NewToken, RandomSourceFailed> {
    use ring::rand::SecureRandom as _;
    let random = ring::rand::SystemRandom::new();
    let mut id = [0u8; TOKEN_ID_HEX_LEN / 2];
    let mut secret = [0u8; TOKEN_SECRET_HEX_LEN / 2];
    random.fill(&mut id).map_err(|_| RandomSourceFailed)?;
    random.fill(&mut secret).map_err(|_| RandomSourceFailed)?;
    let id = hex(&id);
    let secret = hex(&secret);
    Ok(NewToken {
        text: format!("{TOKEN_PREFIX}{id}_{secret}"),
        secret_hash: blake3::hash(secret.as_bytes()),
        id,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Whether each byte is a lowercase hex digit, by table: this check runs
/// on every authenticated request.
const LOWER_HEX: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = matches!(byte as u8, b'0'..=b'9' | b'a'..=b'f');
        byte += 1;
    }
    table
};

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| LOWER_HEX[usize::from(b)])
}

/// Parses a token's text (`cairn_<16 hex>_<64 hex>`).
pub fn parse_token(text: &str) -> Option<PresentedToken<'_>> {
    let rest = text.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if !is_lower_hex(id, TOKEN_ID_HEX_LEN) || !is_lower_hex(secret, TOKEN_SECRET_HEX_LEN) {
        return None;
    }
    Some(PresentedToken {
        id,
        secret_hash: blake3::hash(secret.as_bytes()),
    })
}

/// Parses the values of a request's `Authorization` headers: exactly one,
/// `Bearer` (any case) and one space, then a token. Bytes that are not
/// ASCII, extra spaces or other schemes are malformed.
pub fn parse_authorization<'a>(
    mut values: impl Iterator<Item = &'a [u8]>,
) -> Result<PresentedToken<'a>, HeaderError> {
    let value = values.next().ok_or(HeaderError::Missing)?;
    if values.next().is_some() {
        return Err(HeaderError::Repeated);
    }
    if value.len() > AUTHORIZATION_BYTES_MAX {
        return Err(HeaderError::TooLong);
    }
    let text = std::str::from_utf8(value).map_err(|_| HeaderError::Malformed)?;
    let (scheme, token) = text.split_once(' ').ok_or(HeaderError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(HeaderError::Malformed);
    }
    parse_token(token).ok_or(HeaderError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<'a>(values: &[&'a [u8]]) -> Result<PresentedToken<'a>, HeaderError> {
        parse_authorization(values.iter().copied())
    }

    #[test]
    fn a_generated_token_parses_back_to_its_id_and_hash() {
        let token = generate().expect("random bytes");
        let header = format!("Bearer {}", token.text);
        let presented = parse(&[header.as_bytes()]).expect("parses");
        assert_eq!(presented.id, token.id);
        assert_eq!(presented.secret_hash, token.secret_hash);
        let other = generate().expect("random bytes");
        assert_ne!(other.id, token.id);
        assert_ne!(other.secret_hash, token.secret_hash);
        assert!(parse(&[format!("bearer {}", token.text).as_bytes()]).is_ok());
    }

    #[test]
    fn hostile_headers_are_refused_by_kind() {
        let token = generate().expect("random bytes").text;
        assert_eq!(parse(&[]), Err(HeaderError::Missing));
        let good = format!("Bearer {token}");
        assert_eq!(
            parse(&[good.as_bytes(), good.as_bytes()]),
            Err(HeaderError::Repeated)
        );
        let long = format!("Bearer {}", "a".repeat(8 * 1024));
        assert_eq!(parse(&[long.as_bytes()]), Err(HeaderError::TooLong));
        for bad in [
            "".to_string(),
            "Bearer".to_string(),
            "Bearer ".to_string(),
            format!("Basic {token}"),
            format!("Bearer  {token}"),
            format!("Bearer {token} "),
            format!("Bearer {}", token.to_uppercase()),
            format!("Bearer {}", &token[..token.len() - 1]),
            format!("Bearer {token}0"),
            format!("Bearer {}", token.replace('_', "-")),
            "Bearer cairn__".to_string(),
        ] {
            assert_eq!(
                parse(&[bad.as_bytes()]),
                Err(HeaderError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse(&["Bearer caïrn_00".as_bytes()]),
            Err(HeaderError::Malformed)
        );
        assert_eq!(
            parse(&[&[0xff, 0xfe, b' ', b'x']]),
            Err(HeaderError::Malformed)
        );
    }
}
