//! Encryption at rest for content the database must not hold in clear (stored conversations).
//!
//! AES-256-GCM with a random 96-bit nonce per value. A sealed value is text, so it fits any text
//! column on SQLite and PostgreSQL: `enc:v1:<key id>:<base64(nonce || ciphertext)>`. The key id
//! (the first 8 hex digits of the key's SHA-256) says which key sealed a row, so that a new key
//! can be introduced while old rows are still readable.
//!
//! The key comes from `secrets.encryption_key` (64 hex digits or base64 of 32 bytes), else from
//! `data_dir/encryption_key`, generated on first start with mode 0600. Instances that share a
//! database must be configured with the same key.

use std::path::Path;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 12;
const KEY_FILE: &str = "encryption_key";

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The text is not a sealed value.
    #[error("the value is not encrypted")]
    NotSealed,
    /// It was sealed with another key than the one configured.
    #[error("the value was encrypted with key {0}, which is not configured")]
    UnknownKey(String),
    /// The ciphertext was changed or is truncated.
    #[error("the encrypted value is damaged")]
    Damaged,
}

/// Seals and opens values with the configured key.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
    key_id: String,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cipher")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Cipher {
    /// A cipher over a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        let key_id = hex::encode(&Sha256::digest(key)[..4]);
        Self {
            aead: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
            key_id,
        }
    }

    /// The configured key, or the one kept in `data_dir/encryption_key` (created on first start,
    /// mode 0600).
    pub fn load_or_create(
        configured: Option<&SecretString>,
        data_dir: &Path,
    ) -> std::io::Result<Self> {
        let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
        if let Some(text) = configured
            .map(ExposeSecret::expose_secret)
            .filter(|s| !s.is_empty())
        {
            let key = parse_key(text).ok_or_else(|| {
                invalid("secrets.encryption_key must be 64 hex digits or base64 of 32 bytes".into())
            })?;
            return Ok(Self::new(&key));
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = parse_key(text.trim()).ok_or_else(|| {
                    invalid(format!(
                        "{} does not hold a 32-byte key; restore it from a backup",
                        path.display()
                    ))
                })?;
                return Ok(Self::new(&key));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(data_dir)?;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        crate::auth::jwt::write_private(&path, hex::encode(key).as_bytes())?;
        tracing::info!(path = %path.display(), "generated a new encryption key");
        Ok(Self::new(&key))
    }

    /// The id of the key this cipher seals with.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Seals `plain` into text.
    pub fn seal(&self, plain: &[u8]) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        // Encrypting into a Vec only fails when the plaintext exceeds GCM's 64 GiB limit, which
        // no request body can reach (bodies are capped far below).
        let sealed = self.aead.encrypt(&nonce, plain).unwrap_or_default();
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", self.key_id, BASE64.encode(bytes))
    }

    /// Opens a value sealed by [`Cipher::seal`].
    pub fn open(&self, text: &str) -> Result<Vec<u8>, CryptoError> {
        let rest = text.strip_prefix(PREFIX).ok_or(CryptoError::NotSealed)?;
        let (key_id, data) = rest.split_once(':').ok_or(CryptoError::NotSealed)?;
        if key_id != self.key_id {
            return Err(CryptoError::UnknownKey(key_id.to_owned()));
        }
        let bytes = BASE64.decode(data).map_err(|_| CryptoError::Damaged)?;
        if bytes.len() < NONCE_LEN {
            return Err(CryptoError::Damaged);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        self.aead
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| CryptoError::Damaged)
    }
}

/// 64 hex digits, or base64 of exactly 32 bytes.
fn parse_key(text: &str) -> Option<[u8; 32]> {
    let bytes = if text.len() == 64 {
        hex::decode(text).ok()?
    } else {
        BASE64.decode(text).ok()?
    };
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_hides_the_plaintext() {
        let cipher = Cipher::new(&[7u8; 32]);
        let sealed = cipher.seal(b"the conversation so far");
        assert!(sealed.starts_with("enc:v1:"));
        assert!(!sealed.contains("conversation"));
        assert_eq!(cipher.open(&sealed).unwrap(), b"the conversation so far");
        // A fresh nonce each time.
        assert_ne!(sealed, cipher.seal(b"the conversation so far"));
    }

    #[test]
    fn refuses_tampering_and_other_keys() {
        let cipher = Cipher::new(&[7u8; 32]);
        let sealed = cipher.seal(b"secret");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            cipher.open(std::str::from_utf8(&tampered).unwrap()),
            Err(CryptoError::Damaged)
        );
        let other = Cipher::new(&[8u8; 32]);
        assert!(matches!(
            other.open(&sealed),
            Err(CryptoError::UnknownKey(_))
        ));
        assert_eq!(cipher.open("plain text"), Err(CryptoError::NotSealed));
    }

    #[test]
    fn generated_key_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let first = Cipher::load_or_create(None, dir.path()).unwrap();
        let second = Cipher::load_or_create(None, dir.path()).unwrap();
        assert_eq!(first.key_id(), second.key_id());
        assert_eq!(second.open(&first.seal(b"x")).unwrap(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn configured_keys_are_hex_or_base64() {
        let dir = tempfile::tempdir().unwrap();
        let hex_key = SecretString::from("11".repeat(32));
        let b64_key = SecretString::from(BASE64.encode([0x11u8; 32]));
        let a = Cipher::load_or_create(Some(&hex_key), dir.path()).unwrap();
        let b = Cipher::load_or_create(Some(&b64_key), dir.path()).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        let short = SecretString::from("abc");
        assert!(Cipher::load_or_create(Some(&short), dir.path()).is_err());
        assert!(
            !dir.path().join(KEY_FILE).exists(),
            "a configured key writes no file"
        );
    }
}
