//! Encryption at rest for content the database must not hold in clear (stored conversations).
//!
//! AES-256-GCM with a random 96-bit nonce per value. A sealed value is text, so it fits any text
//! column on SQLite and PostgreSQL: `enc:v1:<key id>:<base64(nonce || ciphertext)>`. The key id
//! (the first 8 hex digits of the key's SHA-256) says which key sealed a row, so that a new key
//! can be introduced while old rows are still readable.
//!
//! The key comes from `secrets.encryption_key` (64 hex digits or base64 of 32 bytes), else from
//! `data_dir/encryption_key`, generated on first start with mode 0600. Instances that share a
//! database must be configured with the same key. Earlier keys (`secrets.previous_keys`, and
//! `data_dir/encryption_key.previous`, one a line, written by `gpt2api secrets rotate`) still
//! open what they sealed, so a key can be replaced without downtime.

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
const PREVIOUS_FILE: &str = "encryption_key.previous";

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

/// Seals values with the configured key and opens them with it or with an earlier key.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
    key_id: String,
    /// Earlier keys by id: they open, never seal.
    previous: Vec<(String, Aes256Gcm)>,
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
            previous: Vec::new(),
        }
    }

    /// This cipher, also opening what `key` sealed.
    #[must_use]
    pub fn with_previous(mut self, key: &[u8; 32]) -> Self {
        let old = Self::new(key);
        if old.key_id != self.key_id && !self.previous.iter().any(|(id, _)| *id == old.key_id) {
            self.previous.push((old.key_id, old.aead));
        }
        self
    }

    /// The configured key with the earlier ones (configured, and those kept in
    /// `data_dir/encryption_key.previous`), or the generated one; see [`Cipher::load_or_create`].
    pub fn load(
        configured: Option<&SecretString>,
        previous: &[SecretString],
        data_dir: &Path,
    ) -> std::io::Result<Self> {
        let mut cipher = Self::load_or_create(configured, data_dir)?;
        for key in previous {
            let key = parse_key(key.expose_secret().trim()).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "secrets.previous_keys must hold 64 hex digits or base64 of 32 bytes each",
                )
            })?;
            cipher = cipher.with_previous(&key);
        }
        for key in read_previous_file(data_dir)? {
            cipher = cipher.with_previous(&key);
        }
        Ok(cipher)
    }

    /// Replaces the generated key in `data_dir` with a new one, keeping the old one in
    /// `data_dir/encryption_key.previous` (mode 0600) so that what it sealed stays readable.
    /// Answers the cipher of the new key (with every earlier one).
    pub fn replace_generated(data_dir: &Path, previous: &[SecretString]) -> std::io::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        let old = std::fs::read_to_string(&path)?;
        let old_key = parse_key(old.trim()).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} does not hold a 32-byte key", path.display()),
            )
        })?;
        let mut kept: Vec<String> = read_previous_file(data_dir)?
            .iter()
            .map(hex::encode)
            .collect();
        kept.push(hex::encode(old_key));
        replace_private(
            &data_dir.join(PREVIOUS_FILE),
            format!("{}\n", kept.join("\n")).as_bytes(),
        )?;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        replace_private(&path, hex::encode(key).as_bytes())?;
        Self::load(None, previous, data_dir)
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
        crate::auth::jwt::create_private_dir(data_dir)?;
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
        let aead = if key_id == self.key_id {
            &self.aead
        } else {
            self.previous
                .iter()
                .find(|(id, _)| id == key_id)
                .map(|(_, aead)| aead)
                .ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?
        };
        let bytes = BASE64.decode(data).map_err(|_| CryptoError::Damaged)?;
        if bytes.len() < NONCE_LEN {
            return Err(CryptoError::Damaged);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        aead.decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| CryptoError::Damaged)
    }

    /// Seals a text value; an empty one stays empty (a deleted account keeps no secret).
    pub fn seal_text(&self, plain: &str) -> String {
        if plain.is_empty() {
            String::new()
        } else {
            self.seal(plain.as_bytes())
        }
    }

    /// Opens a text value sealed by [`Cipher::seal_text`]; a value that was never sealed (a row
    /// written before encryption, not yet migrated) is answered as it is.
    pub fn open_text(&self, text: &str) -> Result<String, CryptoError> {
        match self.open(text) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| CryptoError::Damaged),
            Err(CryptoError::NotSealed) => Ok(text.to_owned()),
            Err(e) => Err(e),
        }
    }

    /// Whether `text` is sealed with the current key.
    pub fn is_current(&self, text: &str) -> bool {
        text.strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(id, _)| id == self.key_id)
    }

    /// The prefix of every value the current key seals (for queries).
    pub fn current_prefix(&self) -> String {
        format!("{PREFIX}{}:", self.key_id)
    }
}

/// Writes `path` (mode 0600) through a temporary file renamed over it.
fn replace_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    crate::auth::jwt::write_private(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The keys kept in `data_dir/encryption_key.previous`, one a line (none when it is absent).
fn read_previous_file(data_dir: &Path) -> std::io::Result<Vec<[u8; 32]>> {
    let path = data_dir.join(PREVIOUS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            parse_key(l).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} holds a line that is not a key", path.display()),
                )
            })
        })
        .collect()
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
    fn previous_keys_open_what_they_sealed() {
        let old = Cipher::new(&[7u8; 32]);
        let sealed = old.seal_text("refresh");
        let new = Cipher::new(&[9u8; 32]).with_previous(&[7u8; 32]);
        assert_eq!(new.open_text(&sealed).unwrap(), "refresh");
        assert!(!new.is_current(&sealed));
        assert!(new.is_current(&new.seal_text("x")));
        assert_eq!(new.open_text("plain").unwrap(), "plain");
        assert_eq!(new.seal_text(""), "");
    }

    #[test]
    fn a_replaced_generated_key_still_opens_old_values() {
        let dir = tempfile::tempdir().unwrap();
        let first = Cipher::load(None, &[], dir.path()).unwrap();
        let sealed = first.seal_text("secret");
        let second = Cipher::replace_generated(dir.path(), &[]).unwrap();
        assert_ne!(first.key_id(), second.key_id());
        assert_eq!(second.open_text(&sealed).unwrap(), "secret");
        let reloaded = Cipher::load(None, &[], dir.path()).unwrap();
        assert_eq!(reloaded.key_id(), second.key_id());
        assert_eq!(reloaded.open_text(&sealed).unwrap(), "secret");
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
