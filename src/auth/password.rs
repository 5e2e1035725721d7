//! Password hashing (argon2id) and the password rules.
//!
//! Hashing and verification are CPU-heavy on purpose; callers run them off the async workers
//! (`web::block` / `spawn_blocking`).

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, PasswordVerifier};
use rand::Rng;

/// Hashes a password with argon2id and a random salt, in PHC string form.
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Checks a password against a PHC hash; a malformed hash never verifies.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// What a password must satisfy, as shown to the user.
pub const RULES: &str = "the password must have at least 8 characters, mix at least two kinds \
of characters (lower case, upper case, digits, symbols) and differ from the username";

/// Checks the password rules; the error is [`RULES`].
pub fn check_rules(username: &str, password: &str) -> Result<(), &'static str> {
    let classes = [
        password.chars().any(char::is_lowercase),
        password.chars().any(char::is_uppercase),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ]
    .into_iter()
    .filter(|present| *present)
    .count();
    let long_enough = password.chars().count() >= 8;
    let differs = !password.eq_ignore_ascii_case(username);
    if long_enough && classes >= 2 && differs && !is_well_known(password) {
        Ok(())
    } else {
        Err(RULES)
    }
}

/// Passwords that appear in every default-credentials list.
const WELL_KNOWN: &[&str] = &[
    "admin123",
    "admin1234",
    "admin@123",
    "password",
    "password1",
    "password123",
    "passw0rd",
    "12345678",
    "123456789",
    "qwerty123",
    "changeme",
    "changeme123",
    "letmein1",
    "welcome1",
    "root1234",
    "abc12345",
];

/// Whether the password is one an attacker tries first.
pub fn is_well_known(password: &str) -> bool {
    WELL_KNOWN
        .iter()
        .any(|weak| weak.eq_ignore_ascii_case(password))
}

/// A strong random password (20 characters, letters and digits of both cases).
pub fn generate() -> String {
    const CHARSET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    loop {
        let candidate: String = (0..20)
            .map(|_| CHARSET[rng.gen_range(0..CHARSET.len())] as char)
            .collect();
        if check_rules("", &candidate).is_ok() {
            return candidate;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let phc = hash("Correct-Horse-9").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("Correct-Horse-9", &phc));
        assert!(!verify("correct-horse-9", &phc));
        assert!(!verify("anything", "not a hash"));
    }

    #[test]
    fn rules() {
        assert!(check_rules("admin", "short1").is_err());
        assert!(check_rules("admin", "alllowercase").is_err());
        assert!(check_rules("Admin-2026x", "admin-2026X").is_err());
        assert!(check_rules("admin", "admin123").is_err());
        assert!(check_rules("admin", "lower-and-symbol").is_ok());
        assert!(check_rules("admin", "Sup3rSecret").is_ok());
        assert!(check_rules("admin", &generate()).is_ok());
    }
}
