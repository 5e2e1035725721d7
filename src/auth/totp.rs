//! The optional second factor of an admin: TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps)
//! and one-time recovery codes.
//!
//! The secret is sealed at rest with the gateway's encryption key. A code is accepted for the
//! step before, the current one and the one after (clock drift), and only for a step later
//! than the last one accepted: a code seen once (over a shoulder, in a proxy log) is refused.
//! Recovery codes are random, shown once, and stored as their SHA-256; each works once.
//!
//! A sign-in with TOTP enabled is two steps: the password answers a challenge (random, stored
//! as its SHA-256, valid [`CHALLENGE_TTL_SECONDS`], used once), and the code answered with the
//! challenge opens the session. Wrong codes count as failed sign-ins (same lockout).

use chrono::{DateTime, Duration, Utc};
use rand::{Rng, RngCore};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, Set, TransactionTrait,
};
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, TOTP};

use super::{AuthService, LoginOutcome, Session};
use crate::crypto::Cipher;
use crate::db::{admin_recovery_code, totp_challenge, user};
use crate::error::{AppError, AppResult, ErrorCode};

/// How long a sign-in challenge may be answered.
pub const CHALLENGE_TTL_SECONDS: i64 = 300;
/// Recovery codes handed out when TOTP is enabled.
pub const RECOVERY_CODES: usize = 10;
/// The issuer shown by authenticator apps.
const ISSUER: &str = "gpt2api";
const STEP_SECONDS: u64 = 30;

/// What `POST /admin/totp/setup` answers.
#[derive(Debug)]
pub struct TotpSetup {
    /// The secret in base32, for typing into an app.
    pub secret: String,
    /// The `otpauth://` URI the QR code holds.
    pub otpauth_uri: String,
}

/// The TOTP of a secret for `account`.
fn totp_for(secret: Vec<u8>, account: &str) -> AppResult<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP_SECONDS,
        secret,
        Some(ISSUER.to_string()),
        account.to_string(),
    )
    .map_err(AppError::internal)
}

/// The SHA-256 of a text, in hex.
fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A recovery code as typed: case, spaces and dashes do not matter.
fn normalize_recovery(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A new recovery code: ten characters in two groups (`abcde-23456`), about 50 bits.
fn new_recovery_code() -> String {
    const CHARSET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    let mut code: String = (0..10)
        .map(|_| CHARSET[rng.gen_range(0..CHARSET.len())] as char)
        .collect();
    code.insert(5, '-');
    code
}

/// Whether `code` looks like a TOTP code (six digits), rather than a recovery code.
fn is_totp_code(code: &str) -> bool {
    code.len() == 6 && code.chars().all(|c| c.is_ascii_digit())
}

impl AuthService {
    /// Starts (or restarts) enrolment: a new secret, kept sealed until `enable` confirms it.
    /// 409 `totp_already_enabled` when TOTP is on.
    pub async fn totp_setup(&self, session: &Session, cipher: &Cipher) -> AppResult<TotpSetup> {
        if session.user.totp_enabled {
            return Err(AppError::new(
                ErrorCode::TotpAlreadyEnabled,
                "two-factor sign-in is already enabled; disable it first",
            ));
        }
        let mut secret = vec![0u8; 20];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let totp = totp_for(secret.clone(), &session.user.username)?;
        user::Entity::update_many()
            .col_expr(user::Column::TotpSecret, Expr::value(cipher.seal(&secret)))
            .col_expr(user::Column::TotpLastStep, Expr::value(Option::<i64>::None))
            .col_expr(user::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(user::Column::Id.eq(session.user.id))
            .exec(&self.db)
            .await?;
        Ok(TotpSetup {
            secret: totp.get_secret_base32(),
            otpauth_uri: totp.get_url(),
        })
    }

    /// Confirms enrolment with a code of the new secret; answers the recovery codes (shown
    /// once).
    pub async fn totp_enable(
        &self,
        session: &Session,
        cipher: &Cipher,
        code: &str,
    ) -> AppResult<Vec<String>> {
        let user = &session.user;
        if user.totp_enabled {
            return Err(AppError::new(
                ErrorCode::TotpAlreadyEnabled,
                "two-factor sign-in is already enabled",
            ));
        }
        if user.totp_secret.is_none() {
            return Err(AppError::new(
                ErrorCode::TotpNotEnabled,
                "start with POST /admin/totp/setup",
            ));
        }
        if !self.accept_totp(user, cipher, code.trim()).await? {
            return Err(AppError::new(
                ErrorCode::InvalidTotpCode,
                "the code is wrong or was already used",
            ));
        }
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        let now = Utc::now();
        let txn = self.db.begin().await?;
        admin_recovery_code::Entity::delete_many()
            .filter(admin_recovery_code::Column::UserId.eq(user.id))
            .exec(&txn)
            .await?;
        for code in &codes {
            admin_recovery_code::ActiveModel {
                user_id: Set(user.id),
                code_hash: Set(digest(&normalize_recovery(code))),
                created_at: Set(now),
                used_at: Set(None),
                ..Default::default()
            }
            .insert(&txn)
            .await?;
        }
        user::Entity::update_many()
            .col_expr(user::Column::TotpEnabled, Expr::value(true))
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::Id.eq(user.id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(codes)
    }

    /// Turns TOTP off after a code (TOTP or recovery) or the password; throttled like a
    /// sign-in.
    pub async fn totp_disable(
        &self,
        session: &Session,
        cipher: &Cipher,
        code: Option<&str>,
        password: Option<&str>,
        client_ip: &str,
    ) -> AppResult<()> {
        let user = &session.user;
        if !user.totp_enabled {
            return Err(AppError::new(
                ErrorCode::TotpNotEnabled,
                "two-factor sign-in is not enabled",
            ));
        }
        let username = user.username.as_str();
        let now = Utc::now();
        self.check_throttle(username, client_ip, now).await?;
        self.username_delay(username, now).await?;
        let ok = match (code, password) {
            (Some(code), _) => {
                self.count_attempt(username, client_ip, now).await?;
                self.accept_code(user, cipher, code).await?
            }
            (None, Some(password)) => {
                super::check_length(password)?;
                self.count_attempt(username, client_ip, now).await?;
                self.verify(password, user.password_hash.clone()).await?
            }
            (None, None) => {
                return Err(AppError::invalid_request(
                    "send `code` (a TOTP or recovery code) or `password`",
                ))
            }
        };
        if !ok {
            return Err(AppError::new(
                ErrorCode::InvalidCredentials,
                "the code or password is wrong",
            ));
        }
        self.clear_failures(username, client_ip).await?;
        self.clear_totp(user.id).await
    }

    /// Removes an admin's second factor (TOTP off, secret and recovery codes gone).
    pub(crate) async fn clear_totp(&self, user_id: i32) -> AppResult<()> {
        let txn = self.db.begin().await?;
        user::Entity::update_many()
            .col_expr(user::Column::TotpEnabled, Expr::value(false))
            .col_expr(
                user::Column::TotpSecret,
                Expr::value(Option::<String>::None),
            )
            .col_expr(user::Column::TotpLastStep, Expr::value(Option::<i64>::None))
            .col_expr(user::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(user::Column::Id.eq(user_id))
            .exec(&txn)
            .await?;
        admin_recovery_code::Entity::delete_many()
            .filter(admin_recovery_code::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        totp_challenge::Entity::delete_many()
            .filter(totp_challenge::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// The operator's reset for a lost device: the admin signs in with the password alone.
    pub async fn reset_totp(&self, username: &str) -> AppResult<()> {
        let found = user::Entity::find()
            .filter(user::Column::Username.eq(username))
            .one(&self.db)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no admin named {username}")))?;
        self.clear_totp(found.id).await
    }

    /// A new sign-in challenge for an admin whose password was right.
    pub(crate) async fn open_challenge(
        &self,
        user_id: i32,
        client_ip: &str,
    ) -> AppResult<(String, DateTime<Utc>)> {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let challenge = hex::encode(bytes);
        let now = Utc::now();
        let expires_at = now + Duration::seconds(CHALLENGE_TTL_SECONDS);
        totp_challenge::Entity::delete_many()
            .filter(totp_challenge::Column::ExpiresAt.lt(now))
            .exec(&self.db)
            .await?;
        totp_challenge::ActiveModel {
            id: Set(digest(&challenge)),
            user_id: Set(user_id),
            client_ip: Set(client_ip.to_string()),
            expires_at: Set(expires_at),
            used_at: Set(None),
        }
        .insert(&self.db)
        .await?;
        Ok((challenge, expires_at))
    }

    /// The second sign-in step: a live challenge and a TOTP or recovery code open a session.
    /// The challenge is used up by the sign-in it opens.
    pub async fn login_totp(
        &self,
        challenge: &str,
        code: &str,
        cipher: &Cipher,
        client_ip: &str,
    ) -> AppResult<(LoginOutcome, user::Model)> {
        let invalid = || {
            AppError::new(
                ErrorCode::InvalidChallenge,
                "the sign-in challenge is unknown, expired or used; sign in again",
            )
        };
        if challenge.len() > 128 || code.len() > 64 {
            return Err(invalid());
        }
        let now = Utc::now();
        let row = totp_challenge::Entity::find_by_id(digest(challenge))
            .one(&self.db)
            .await?
            .filter(|c| c.used_at.is_none() && c.expires_at > now)
            .ok_or_else(invalid)?;
        let user = user::Entity::find_by_id(row.user_id)
            .one(&self.db)
            .await?
            .filter(|u| !u.disabled && u.totp_enabled)
            .ok_or_else(invalid)?;
        let username = user.username.as_str();
        self.check_throttle(username, client_ip, now).await?;
        self.username_delay(username, now).await?;
        self.count_attempt(username, client_ip, now).await?;
        if !self.accept_code(&user, cipher, code).await? {
            tracing::warn!(username, client_ip, "wrong second-factor code");
            return Err(AppError::new(
                ErrorCode::InvalidTotpCode,
                "the code is wrong or was already used",
            ));
        }
        let consumed = totp_challenge::Entity::update_many()
            .col_expr(totp_challenge::Column::UsedAt, Expr::value(now))
            .filter(totp_challenge::Column::Id.eq(row.id.as_str()))
            .filter(totp_challenge::Column::UsedAt.is_null())
            .exec(&self.db)
            .await?;
        if consumed.rows_affected != 1 {
            return Err(invalid());
        }
        self.clear_failures(username, client_ip).await?;
        let (token, expires_at) = self.open_session(user.id, Some(client_ip)).await?;
        tracing::info!(username, client_ip, "admin signed in with a second factor");
        Ok((
            LoginOutcome {
                token,
                expires_at,
                user: user.clone(),
            },
            user,
        ))
    }

    /// A TOTP code, or else a recovery code (used up).
    async fn accept_code(
        &self,
        user: &user::Model,
        cipher: &Cipher,
        code: &str,
    ) -> AppResult<bool> {
        let code = code.trim();
        if is_totp_code(code) {
            return self.accept_totp(user, cipher, code).await;
        }
        let normalized = normalize_recovery(code);
        if normalized.len() != 10 {
            return Ok(false);
        }
        let spent = admin_recovery_code::Entity::update_many()
            .col_expr(admin_recovery_code::Column::UsedAt, Expr::value(Utc::now()))
            .filter(admin_recovery_code::Column::UserId.eq(user.id))
            .filter(admin_recovery_code::Column::CodeHash.eq(digest(&normalized)))
            .filter(admin_recovery_code::Column::UsedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(spent.rows_affected > 0)
    }

    /// Checks a TOTP code against the admin's secret and claims its step, so that it is never
    /// accepted again (by this instance or another on the same database).
    async fn accept_totp(
        &self,
        user: &user::Model,
        cipher: &Cipher,
        code: &str,
    ) -> AppResult<bool> {
        if !is_totp_code(code) {
            return Ok(false);
        }
        let Some(sealed) = user.totp_secret.as_deref() else {
            return Ok(false);
        };
        let secret = cipher.open(sealed).map_err(AppError::internal)?;
        let totp = totp_for(secret, &user.username)?;
        let now = Utc::now().timestamp().max(0) as u64;
        let current = now / STEP_SECONDS;
        let Some(step) = [current.saturating_sub(1), current, current + 1]
            .into_iter()
            .find(|step| constant_eq(&totp.generate(step * STEP_SECONDS), code))
        else {
            return Ok(false);
        };
        let step = step as i64;
        let claimed = user::Entity::update_many()
            .col_expr(user::Column::TotpLastStep, Expr::value(step))
            .filter(user::Column::Id.eq(user.id))
            .filter(
                Condition::any()
                    .add(user::Column::TotpLastStep.is_null())
                    .add(user::Column::TotpLastStep.lt(step)),
            )
            .exec(&self.db)
            .await?;
        Ok(claimed.rows_affected == 1)
    }
}

/// Compares two short strings in time independent of where they differ.
fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_typed_loosely() {
        let code = new_recovery_code();
        assert_eq!(code.len(), 11);
        assert_eq!(
            normalize_recovery(&code.to_uppercase()),
            normalize_recovery(&code)
        );
        assert_eq!(normalize_recovery(" abcde-23456 "), "abcde23456");
        assert!(is_totp_code("012345"));
        assert!(!is_totp_code("01234a"));
    }

    #[test]
    fn rfc6238_sha1_vector() {
        // RFC 6238, appendix B: the 20-byte ASCII secret, T = 59 s, 8 digits: 94287082.
        let totp = TOTP::new(
            Algorithm::SHA1,
            8,
            1,
            30,
            b"12345678901234567890".to_vec(),
            None,
            "a".into(),
        )
        .unwrap();
        assert_eq!(totp.generate(59), "94287082");
    }
}
