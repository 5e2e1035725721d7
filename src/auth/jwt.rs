//! Admin session tokens: HS256 JWTs with an expiry and a unique id (`jti`).
//!
//! The `jti` names a row of `admin_sessions`, which is what makes revocation possible.

use std::path::Path;

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// The claims of an admin session token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The admin's id.
    pub sub: i32,
    /// The session id.
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

/// Signing and verification keys derived from the secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys([redacted])")
    }
}

impl JwtKeys {
    /// Keys from a secret.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// Signs claims.
    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// Verifies the signature and expiry and returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        decode::<Claims>(token, &self.decoding, &validation).map(|data| data.claims)
    }
}

/// The configured secret, or the one kept in `data_dir/jwt_secret`, created on first start with
/// mode 0600 so that sessions survive restarts. There is no built-in default secret.
pub fn load_or_create_secret(
    configured: Option<&SecretString>,
    data_dir: &Path,
) -> std::io::Result<Vec<u8>> {
    if let Some(secret) = configured
        .map(secrecy::ExposeSecret::expose_secret)
        .filter(|s| !s.is_empty())
    {
        if secret.len() < 16 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "auth.jwt_secret must have at least 16 characters",
            ));
        }
        return Ok(secret.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt_secret");
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 32 => return Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is too short; delete it to generate a new one",
                    path.display()
                ),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    create_private_dir(data_dir)?;
    let mut bytes = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    write_private(&path, secret.as_bytes())?;
    tracing::info!(path = %path.display(), "generated a new session signing secret");
    Ok(secret.into_bytes())
}

/// Creates a directory (and its parents) that only its owner may enter (0700); an existing one
/// is left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates `path` with `bytes`, readable by the owner only (0600); fails if it exists.
#[cfg(unix)]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Creates `path` with `bytes`.
#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_secret(None, dir.path()).unwrap();
        let second = load_or_create_secret(None, dir.path()).unwrap();
        assert_eq!(first, second);
        assert!(first.len() >= 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("jwt_secret"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn tokens_expire_and_need_the_right_key() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef");
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: 1,
            jti: "a".into(),
            iat: now,
            exp: now + 60,
        };
        let token = keys.sign(&claims).unwrap();
        assert_eq!(keys.verify(&token).unwrap().jti, "a");
        let other = JwtKeys::new(b"another-secret-another-secret!!!");
        assert!(other.verify(&token).is_err());
        let expired = keys
            .sign(&Claims {
                exp: now - 10,
                ..claims
            })
            .unwrap();
        assert!(keys.verify(&expired).is_err());
    }
}
