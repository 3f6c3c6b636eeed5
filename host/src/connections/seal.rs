//! Secrets at rest: connected accounts' access tokens are sealed with
//! ChaCha20-Poly1305 under a key kept outside the database, so a copy of
//! the data directory's database alone reveals no token.
//!
//! The key is, in order: `FLOWHOST_SECRETS_KEY` (64 hex digits), the file
//! `secrets_key_file` of the configuration, or `<data_dir>/secrets.key`,
//! generated on first start, readable by this user only.

use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

const NONCE_BYTES: usize = 12;

/// Seals and opens secrets with one key.
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl SecretBox {
    pub fn from_key(key: [u8; 32]) -> Self {
        SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// The key from the environment, `key_file`, or `default_file`. When
    /// none exists yet, a new key is written to `default_file` (mode 600)
    /// if `create`; otherwise a key lives in memory only: nothing sealed
    /// with an absent key can be stored, and a key file that appears only
    /// when it is first needed keeps its absence meaningful.
    pub fn load(
        key_file: Option<&Path>,
        default_file: &Path,
        create: bool,
    ) -> anyhow::Result<Self> {
        if let Ok(hex_key) = std::env::var("FLOWHOST_SECRETS_KEY") {
            return Ok(Self::from_key(
                parse_key(&hex_key).context("FLOWHOST_SECRETS_KEY")?,
            ));
        }
        let path = key_file.unwrap_or(default_file);
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self::from_key(
                parse_key(&text).with_context(|| path.display().to_string())?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && key_file.is_none() => {
                let key: [u8; 32] = ChaCha20Poly1305::generate_key(&mut OsRng).into();
                if !create {
                    return Ok(Self::from_key(key));
                }
                crate::app::write_private(path, &hex::encode(key))
                    .with_context(|| format!("writing the secrets key {}", path.display()))?;
                tracing::info!("generated the secrets key {}", path.display());
                Ok(Self::from_key(key))
            }
            Err(e) => Err(e).with_context(|| format!("reading the secrets key {}", path.display())),
        }
    }

    /// `secret` sealed for the record named `owner` (a sealed secret opens
    /// only for the same owner, so records cannot swap tokens).
    pub fn seal(&self, owner: &str, secret: &str) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.as_bytes(),
                    aad: owner.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 seals any message of this size");
        STANDARD.encode([nonce.as_slice(), &sealed].concat())
    }

    /// The secret `sealed` holds; an error when it was sealed under another
    /// key or for another owner, or was altered.
    pub fn open(&self, owner: &str, sealed: &str) -> Result<String, SealError> {
        let bytes = STANDARD.decode(sealed).map_err(|_| SealError)?;
        if bytes.len() < NONCE_BYTES {
            return Err(SealError);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| SealError)?;
        String::from_utf8(plain).map_err(|_| SealError)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a sealed secret does not open with this key (another secrets key, or altered)")]
pub struct SealError;

fn parse_key(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(text.trim()).context("the key is not hexadecimal")?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        anyhow::anyhow!(
            "the key is {} bytes; it must be 32 (64 hex digits)",
            b.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_owner() {
        let sealer = SecretBox::from_key([7; 32]);
        let sealed = sealer.seal("1784", "IGAA-token");
        assert!(!sealed.contains("IGAA-token"));
        assert_eq!(sealer.open("1784", &sealed).unwrap(), "IGAA-token");
        assert!(sealer.open("1785", &sealed).is_err(), "another owner");
        assert!(
            SecretBox::from_key([8; 32]).open("1784", &sealed).is_err(),
            "another key"
        );
        let mut altered = STANDARD.decode(&sealed).unwrap();
        *altered.last_mut().unwrap() ^= 1;
        assert!(sealer.open("1784", &STANDARD.encode(altered)).is_err());
        assert!(sealer.open("1784", "short").is_err());
    }

    #[test]
    fn a_key_is_generated_once_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        SecretBox::load(None, &path, false).unwrap();
        assert!(!path.exists(), "no key file until one is needed");
        let sealed = SecretBox::load(None, &path, true).unwrap().seal("a", "b");
        assert_eq!(
            SecretBox::load(None, &path, false)
                .unwrap()
                .open("a", &sealed)
                .unwrap(),
            "b"
        );
        std::fs::write(dir.path().join("bad.key"), "abcd").unwrap();
        let err = SecretBox::load(Some(&dir.path().join("bad.key")), &path, true)
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("2 bytes"), "{err:#}");
        let missing = SecretBox::load(Some(&dir.path().join("none.key")), &path, true)
            .err()
            .unwrap();
        assert!(format!("{err:#}{missing:#}").contains("none.key"));
    }
}
