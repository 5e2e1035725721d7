//! Admin accounts and sessions: sign-in with throttling, session tokens that can be revoked,
//! password changes, the first admin, and the operator's password reset.

pub mod admins;
pub mod jwt;
pub mod password;
pub mod roles;
pub mod totp;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::config::AuthConfig;
use crate::db::{admin_session, login_failure, user};
use crate::error::{AppError, AppResult, ErrorCode};
use jwt::{Claims, JwtKeys};

/// Everything sign-in needs, shared by the handlers.
#[derive(Clone)]
pub struct AuthService {
    db: DatabaseConnection,
    keys: JwtKeys,
    config: AuthConfig,
    /// Verified against when the username is unknown, so both cases cost the same time.
    dummy_hash: std::sync::Arc<str>,
    /// Password hashes computed at once, at most one per core (each takes 19 MiB).
    hashing: std::sync::Arc<tokio::sync::Semaphore>,
}

/// The longest password accepted (bytes); longer ones are refused before any hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The longest delay a username under attack adds to its sign-ins.
const MAX_USERNAME_DELAY: std::time::Duration = std::time::Duration::from_secs(8);

/// What a right password leads to: a session, or, with a second factor, a challenge.
#[derive(Debug)]
pub enum LoginStep {
    /// Signed in.
    Session(LoginOutcome),
    /// The second factor is needed: `POST /admin/login/totp` with this challenge.
    TotpRequired {
        challenge: String,
        expires_at: DateTime<Utc>,
        user: user::Model,
    },
}

/// A successful sign-in.
#[derive(Debug)]
pub struct LoginOutcome {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: user::Model,
}

/// The signed-in admin behind a request.
#[derive(Debug, Clone)]
pub struct Session {
    pub session_id: String,
    pub user: user::Model,
}

impl AuthService {
    /// Builds the service; computes the dummy hash once (off the async workers).
    pub async fn new(db: DatabaseConnection, keys: JwtKeys, config: AuthConfig) -> AppResult<Self> {
        let dummy_hash = actix_web::web::block(|| password::hash(&password::generate()))
            .await?
            .map_err(AppError::internal)?;
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Ok(Self {
            db,
            keys,
            config,
            dummy_hash: dummy_hash.into(),
            hashing: std::sync::Arc::new(tokio::sync::Semaphore::new(cores)),
        })
    }

    /// How long a session lasts.
    pub fn session_ttl(&self) -> Duration {
        Duration::hours(self.config.session_ttl_hours.max(1) as i64)
    }

    /// Whether the session cookie must be marked `Secure`.
    pub fn cookie_secure(&self) -> bool {
        self.config.cookie_secure
    }

    /// Signs in, enforcing the throttling rules first. An admin with a second factor gets a
    /// challenge instead of a session; the failures counted so far stay until it is answered.
    pub async fn login(&self, username: &str, pass: &str, client_ip: &str) -> AppResult<LoginStep> {
        let now = Utc::now();
        check_length(pass)?;
        self.check_throttle(username, client_ip, now).await?;
        self.username_delay(username, now).await?;
        self.count_attempt(username, client_ip, now).await?;

        let found = user::Entity::find()
            .filter(user::Column::Username.eq(username))
            .one(&self.db)
            .await?;
        let phc = found
            .as_ref()
            .map_or_else(|| self.dummy_hash.to_string(), |u| u.password_hash.clone());
        let verified = self.verify(pass, phc).await?;

        let Some(found) = found.filter(|_| verified) else {
            // The attempt was counted before the hash ran.
            tracing::warn!(username, client_ip, "failed admin sign-in");
            return Err(AppError::new(
                ErrorCode::InvalidCredentials,
                "wrong username or password",
            ));
        };

        if found.disabled {
            return Err(AppError::new(
                ErrorCode::AdminDisabled,
                "this admin is disabled",
            ));
        }
        if found.totp_enabled {
            let (challenge, expires_at) = self.open_challenge(found.id, client_ip).await?;
            return Ok(LoginStep::TotpRequired {
                challenge,
                expires_at,
                user: found,
            });
        }
        self.clear_failures(username, client_ip).await?;
        let (token, expires_at) = self.open_session(found.id, Some(client_ip)).await?;
        tracing::info!(username, client_ip, "admin signed in");
        Ok(LoginStep::Session(LoginOutcome {
            token,
            expires_at,
            user: found,
        }))
    }

    /// Forgets the failures of this username from this address (after a full sign-in).
    async fn clear_failures(&self, username: &str, client_ip: &str) -> AppResult<()> {
        login_failure::Entity::delete_many()
            .filter(login_failure::Column::Username.eq(username))
            .filter(login_failure::Column::ClientIp.eq(client_ip))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Runs argon2 work on a blocking thread, one job per core at a time.
    async fn hashing_job<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> AppResult<T> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| AppError::internal("the hashing semaphore is closed"))?;
        Ok(actix_web::web::block(job).await?)
    }

    /// Checks a password against a hash.
    pub(crate) async fn verify(&self, pass: &str, phc: String) -> AppResult<bool> {
        let candidate = pass.to_string();
        self.hashing_job(move || password::verify(&candidate, &phc))
            .await
    }

    /// Hashes a new password.
    pub(crate) async fn hash(&self, pass: &str) -> AppResult<String> {
        let owned = pass.to_string();
        self.hashing_job(move || password::hash(&owned))
            .await?
            .map_err(AppError::internal)
    }

    /// Records an attempt as a failure before its password is checked (a success deletes it),
    /// then refuses it if, with the attempts that raced it, its scope is over the limit: of
    /// many concurrent guesses, at most the limit are hashed.
    pub(crate) async fn count_attempt(
        &self,
        username: &str,
        client_ip: &str,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        login_failure::ActiveModel {
            username: Set(username.to_string()),
            client_ip: Set(client_ip.to_string()),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        let window_start = now - Duration::seconds(self.config.login_window_seconds as i64);
        let max = u64::from(self.config.login_max_failures.max(1));
        for scope in Self::lockout_scopes(username, client_ip) {
            let recent = login_failure::Entity::find()
                .filter(scope)
                .filter(login_failure::Column::CreatedAt.gte(window_start))
                .count(&self.db)
                .await?;
            if recent > max {
                let wait = self.config.login_lockout_seconds.max(1);
                return Err(AppError::new(
                    ErrorCode::TooManyAttempts,
                    format!("too many failed sign-in attempts; try again in {wait} seconds"),
                )
                .with_retry_after(wait));
            }
        }
        Ok(())
    }

    /// A username that failed more than the limit (from any address) answers more slowly with
    /// every further failure, but is never locked: the right password from a clean address
    /// still signs in.
    pub(crate) async fn username_delay(&self, username: &str, now: DateTime<Utc>) -> AppResult<()> {
        let window_start = now - Duration::seconds(self.config.login_window_seconds as i64);
        let max = u64::from(self.config.login_max_failures.max(1));
        let failures = login_failure::Entity::find()
            .filter(login_failure::Column::Username.eq(username))
            .filter(login_failure::Column::CreatedAt.gte(window_start))
            .count(&self.db)
            .await?;
        if failures >= max {
            let doublings = (failures - max).min(10) as u32;
            let delay = (std::time::Duration::from_millis(250) * 2u32.pow(doublings))
                .min(MAX_USERNAME_DELAY);
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }

    /// The scopes a lockout applies to: this username from this address, and this address.
    fn lockout_scopes(username: &str, client_ip: &str) -> [sea_orm::Condition; 2] {
        [
            sea_orm::Condition::all()
                .add(login_failure::Column::Username.eq(username))
                .add(login_failure::Column::ClientIp.eq(client_ip)),
            sea_orm::Condition::all().add(login_failure::Column::ClientIp.eq(client_ip)),
        ]
    }

    /// 429 with `Retry-After` while this username from this address, or this address, has too
    /// many recent failures.
    pub(crate) async fn check_throttle(
        &self,
        username: &str,
        client_ip: &str,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        let window_start = now - Duration::seconds(self.config.login_window_seconds as i64);
        let max = u64::from(self.config.login_max_failures.max(1));
        let lockout = Duration::seconds(self.config.login_lockout_seconds as i64);
        for scope in Self::lockout_scopes(username, client_ip) {
            let recent = login_failure::Entity::find()
                .filter(scope)
                .filter(login_failure::Column::CreatedAt.gte(window_start))
                .order_by_desc(login_failure::Column::CreatedAt);
            if recent.clone().count(&self.db).await? < max {
                continue;
            }
            let latest = recent
                .select_only()
                .column(login_failure::Column::CreatedAt)
                .into_tuple::<DateTime<Utc>>()
                .one(&self.db)
                .await?
                .unwrap_or(now);
            let wait = (latest + lockout - now).num_seconds();
            if wait > 0 {
                return Err(AppError::new(
                    ErrorCode::TooManyAttempts,
                    format!("too many failed sign-in attempts; try again in {wait} seconds"),
                )
                .with_retry_after(wait as u64));
            }
        }
        Ok(())
    }

    pub(crate) async fn open_session(
        &self,
        user_id: i32,
        client_ip: Option<&str>,
    ) -> AppResult<(String, DateTime<Utc>)> {
        let now = Utc::now();
        let expires_at = now + self.session_ttl();
        let session_id = Uuid::new_v4().to_string();
        admin_session::ActiveModel {
            id: Set(session_id.clone()),
            user_id: Set(user_id),
            created_at: Set(now),
            expires_at: Set(expires_at),
            revoked_at: Set(None),
            client_ip: Set(client_ip.map(str::to_string)),
        }
        .insert(&self.db)
        .await?;
        let token = self
            .keys
            .sign(&Claims {
                sub: user_id,
                jti: session_id,
                iat: now.timestamp(),
                exp: expires_at.timestamp(),
            })
            .map_err(AppError::internal)?;
        Ok((token, expires_at))
    }

    /// Resolves a session token: valid signature, not expired, session not revoked.
    pub async fn authenticate(&self, token: &str) -> AppResult<Session> {
        let unauthorized =
            || AppError::unauthorized("sign in first: the session is missing, expired or revoked");
        let claims = self.keys.verify(token).map_err(|_| unauthorized())?;
        let session = admin_session::Entity::find_by_id(claims.jti.clone())
            .one(&self.db)
            .await?
            .filter(|s| {
                s.revoked_at.is_none() && s.expires_at > Utc::now() && s.user_id == claims.sub
            })
            .ok_or_else(unauthorized)?;
        let user = user::Entity::find_by_id(session.user_id)
            .one(&self.db)
            .await?
            .filter(|u| !u.disabled)
            .ok_or_else(unauthorized)?;
        Ok(Session {
            session_id: session.id,
            user,
        })
    }

    /// Revokes one session.
    pub async fn logout(&self, session: &Session) -> AppResult<()> {
        admin_session::Entity::update_many()
            .col_expr(admin_session::Column::RevokedAt, Expr::value(Utc::now()))
            .filter(admin_session::Column::Id.eq(session.session_id.as_str()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Changes the password after checking the current one (throttled like a sign-in: a
    /// stolen session cannot guess it without limit); revokes the admin's other sessions.
    pub async fn change_password(
        &self,
        session: &Session,
        current: &str,
        new: &str,
        client_ip: &str,
    ) -> AppResult<()> {
        check_length(current)?;
        check_length(new)?;
        let username = session.user.username.as_str();
        let now = Utc::now();
        self.check_throttle(username, client_ip, now).await?;
        self.username_delay(username, now).await?;
        self.count_attempt(username, client_ip, now).await?;
        let phc = session.user.password_hash.clone();
        if !self.verify(current, phc).await? {
            tracing::warn!(
                username,
                client_ip,
                "wrong current password on a password change"
            );
            return Err(AppError::new(
                ErrorCode::InvalidCredentials,
                "the current password is wrong",
            ));
        }
        login_failure::Entity::delete_many()
            .filter(login_failure::Column::Username.eq(username))
            .filter(login_failure::Column::ClientIp.eq(client_ip))
            .exec(&self.db)
            .await?;
        password::check_rules(&session.user.username, new)
            .map_err(|rules| AppError::new(ErrorCode::WeakPassword, rules))?;
        self.set_password(session.user.id, new, false, Some(&session.session_id))
            .await
    }

    /// Stores a new password and revokes every session of the admin except `keep`.
    pub(crate) async fn set_password(
        &self,
        user_id: i32,
        new: &str,
        must_change: bool,
        keep: Option<&str>,
    ) -> AppResult<()> {
        let phc = self.hash(new).await?;
        let now = Utc::now();
        let txn = self.db.begin().await?;
        user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(phc))
            .col_expr(user::Column::MustChangePassword, Expr::value(must_change))
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::Id.eq(user_id))
            .exec(&txn)
            .await?;
        let mut revoke = admin_session::Entity::update_many()
            .col_expr(admin_session::Column::RevokedAt, Expr::value(now))
            .filter(admin_session::Column::UserId.eq(user_id))
            .filter(admin_session::Column::RevokedAt.is_null());
        if let Some(keep) = keep {
            revoke = revoke.filter(admin_session::Column::Id.ne(keep));
        }
        revoke.exec(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Creates the first admin when there is none. Returns the generated password, if one was
    /// generated, so that the caller prints it once.
    pub async fn ensure_admin(&self) -> AppResult<Option<String>> {
        if user::Entity::find().count(&self.db).await? > 0 {
            return Ok(None);
        }
        let username = self.config.admin_username.trim().to_string();
        let configured = self
            .config
            .admin_password
            .as_ref()
            .map(|p| p.expose_secret().to_string())
            .filter(|p| !p.is_empty());
        let (pass, generated, must_change) = match configured {
            // A configured password that breaks the rules (a well-known default such as
            // `admin123`) is accepted only on condition that it is changed at first sign-in.
            Some(pass) => {
                let weak = password::check_rules(&username, &pass).is_err();
                if weak {
                    tracing::warn!(username, "the configured admin password is weak; it must be changed at first sign-in");
                }
                (pass, false, weak)
            }
            None => (password::generate(), true, true),
        };
        let owned = pass.clone();
        let phc = actix_web::web::block(move || password::hash(&owned))
            .await?
            .map_err(AppError::internal)?;
        let now = Utc::now();
        user::ActiveModel {
            username: Set(username.clone()),
            password_hash: Set(phc),
            must_change_password: Set(must_change),
            created_at: Set(now),
            updated_at: Set(now),
            role: Set(roles::Role::Owner.as_str().to_string()),
            disabled: Set(false),
            totp_enabled: Set(false),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        tracing::info!(username, "created the first admin");
        Ok(generated.then_some(pass))
    }

    /// Sets a new password for `username` (the operator's reset) and revokes all its sessions.
    /// The new password must change at the next sign-in when it was generated.
    pub async fn reset_password(&self, username: &str, new: Option<&str>) -> AppResult<String> {
        let found = user::Entity::find()
            .filter(user::Column::Username.eq(username))
            .one(&self.db)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no admin named {username}")))?;
        let (pass, must_change) = match new {
            Some(given) => {
                password::check_rules(username, given)
                    .map_err(|rules| AppError::new(ErrorCode::WeakPassword, rules))?;
                (given.to_string(), false)
            }
            None => (password::generate(), true),
        };
        self.set_password(found.id, &pass, must_change, None)
            .await?;
        login_failure::Entity::delete_many()
            .filter(login_failure::Column::Username.eq(username))
            .exec(&self.db)
            .await?;
        Ok(pass)
    }

    /// Deletes expired sessions and old failures (housekeeping).
    pub async fn purge_expired(&self) -> AppResult<()> {
        let now = Utc::now();
        admin_session::Entity::delete_many()
            .filter(admin_session::Column::ExpiresAt.lt(now))
            .exec(&self.db)
            .await?;
        let horizon = now
            - Duration::seconds(
                (self.config.login_window_seconds + self.config.login_lockout_seconds) as i64,
            );
        login_failure::Entity::delete_many()
            .filter(login_failure::Column::CreatedAt.lt(horizon))
            .exec(&self.db)
            .await?;
        crate::db::totp_challenge::Entity::delete_many()
            .filter(crate::db::totp_challenge::Column::ExpiresAt.lt(now))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

/// Refuses a password longer than [`MAX_PASSWORD_BYTES`] before anything is hashed.
fn check_length(pass: &str) -> AppResult<()> {
    if pass.len() > MAX_PASSWORD_BYTES {
        return Err(AppError::invalid_request(format!(
            "a password has at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}
