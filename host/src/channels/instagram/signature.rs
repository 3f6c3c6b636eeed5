//! `X-Hub-Signature-256`: Meta signs the raw request body with the app
//! secret. The check runs over the bytes exactly as received (Meta signs its
//! escaped-unicode encoding; re-serialised JSON would not match) and
//! compares in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request has no X-Hub-Signature-256 header")]
    Missing,
    #[error("X-Hub-Signature-256 is not `sha256=<64 hex digits>`")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match the body")]
    Mismatch,
}

/// The digest an `X-Hub-Signature-256` header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest([u8; 32]);

/// Reads the header's value: `sha256=<64 hex digits>`. Checked before the
/// body is looked at, so a request without one costs nothing more.
pub fn parse_header(header: Option<&str>) -> Result<Digest, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let hex_digest = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut digest).map_err(|_| SignatureError::Malformed)?;
    Ok(Digest(digest))
}

/// Whether `digest` is the HMAC of `body` under `app_secret` (constant time).
pub fn matches(app_secret: &[u8], body: &[u8], digest: &Digest) -> bool {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(app_secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&digest.0).is_ok()
}

/// Checks `header` (the header's value) against `body` and `app_secret`.
pub fn verify(app_secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    let digest = parse_header(header)?;
    if matches(app_secret, body, &digest) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The header value Meta would send for `body` (for stand-ins and docs).
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(app_secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_over_the_raw_bytes_verifies() {
        // Meta escapes non-ASCII as \uXXXX; the signature is over those bytes.
        let body = br#"{"object":"instagram","entry":[{"id":"1","time":1,"messaging":[{"message":{"text":"\u00e7ok g\u00fczel"}}]}]}"#;
        let header = sign(b"app-secret", body);
        assert_eq!(verify(b"app-secret", body, Some(&header)), Ok(()));

        let reencoded =
            serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(body).unwrap())
                .unwrap();
        assert_eq!(
            verify(b"app-secret", &reencoded, Some(&header)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other-secret", body, Some(&header)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_refused() {
        assert_eq!(verify(b"s", b"{}", None), Err(SignatureError::Missing));
        assert_eq!(
            verify(b"s", b"{}", Some("sha1=abcd")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"s", b"{}", Some("sha256=zz")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"s", b"{}", Some("sha256=abcd")),
            Err(SignatureError::Malformed)
        );
    }
}
