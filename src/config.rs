//! Configuration: built-in defaults, then the TOML file, then the environment, then flags.
//!
//! Every key has its default declared once, in the `Default` impls below; `config.toml` at the
//! repository root documents each of them. Unknown keys and wrongly typed values stop start-up
//! with a message that names the key. Secrets live in [`SecretString`], whose `Debug` is redacted.

use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The whole configuration of one gateway process.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub codex: CodexConfig,
    pub pool: PoolConfig,
    pub log: LogConfig,
    pub retention: RetentionConfig,
    pub responses: ResponsesConfig,
    pub secrets: SecretsConfig,
    pub limits: LimitsConfig,
    pub websocket: WebsocketConfig,
    pub webhooks: WebhooksConfig,
}

/// Webhook notifications: how events are delivered, retried, deduplicated and kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Events waiting for the notifier at most; more are dropped (and counted).
    pub mailbox_capacity: usize,
    /// Deliveries sent at once at most.
    pub max_concurrency: usize,
    /// Timeout of one delivery call, connection included.
    pub timeout_seconds: u64,
    /// The first retry waits this long; each next one twice as long (at most an hour).
    pub retry_initial_seconds: u64,
    /// A delivery is given up this long after its event.
    pub retry_for_seconds: u64,
    /// The same event of the same account or key is sent once within this window.
    pub dedup_window_seconds: u64,
    /// `account.refresh_failed` fires after this many failed refreshes in a row.
    pub refresh_failures: u32,
    /// `account.limit_near` fires when a usage window reaches this percent.
    pub limit_near_percent: f64,
    /// Deliveries older than this are deleted.
    pub retention_days: u32,
    /// How often the notifier looks for deliveries due (others' and retries).
    pub poll_interval_ms: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            mailbox_capacity: 1024,
            max_concurrency: 4,
            timeout_seconds: 10,
            retry_initial_seconds: 10,
            retry_for_seconds: 6 * 3600,
            dedup_window_seconds: 3600,
            refresh_failures: 3,
            limit_near_percent: 90.0,
            retention_days: 14,
            poll_interval_ms: 1000,
        }
    }
}

/// Where the keys' request limits are counted when several instances share them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// `redis://...`: count in Redis; unset: in PostgreSQL on PostgreSQL, in memory on SQLite.
    pub redis_url: Option<SecretString>,
    /// The prefix of the counters' Redis keys (instances of one gateway share it).
    pub redis_prefix: String,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_prefix: "gpt2api".into(),
        }
    }
}

/// The HTTP listener and process-level settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub workers: usize,
    pub data_dir: PathBuf,
    pub body_limit_bytes: usize,
    pub import_limit_bytes: usize,
    pub shutdown_timeout_seconds: u64,
    pub trust_forwarded_for: bool,
    /// Reverse proxies in front of the gateway that append to `X-Forwarded-For`.
    pub trusted_proxies: usize,
    /// How long a client may take to send a request's head.
    pub request_head_timeout_seconds: u64,
    /// How long a client may take to send a request's body.
    pub body_read_timeout_seconds: u64,
    /// Open connections from one address at most; 0 = no cap.
    pub max_connections_per_address: usize,
    /// Accounts one import may hold at most (413 `too_many_accounts` beyond).
    pub import_max_accounts: usize,
    /// `/v1` requests one API key may have in flight at once; 0 = no cap.
    pub max_concurrent_requests_per_key: usize,
    /// How long a key read from the database is served from memory before it is read again
    /// (the safety net behind change notices).
    pub key_cache_max_age_seconds: u64,
    /// Origins whose browser pages may call `/v1` (CORS); `*` is any origin, an empty list
    /// turns CORS off. Never applies to `/admin`.
    pub cors_allowed_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 8080,
            workers: 0,
            data_dir: PathBuf::from("./data"),
            body_limit_bytes: 20 * 1024 * 1024,
            import_limit_bytes: 64 * 1024 * 1024,
            shutdown_timeout_seconds: 30,
            trust_forwarded_for: false,
            trusted_proxies: 1,
            request_head_timeout_seconds: 10,
            body_read_timeout_seconds: 60,
            max_connections_per_address: 256,
            import_max_accounts: 10_000,
            max_concurrent_requests_per_key: 64,
            key_cache_max_age_seconds: 60,
            cors_allowed_origins: vec!["*".into()],
        }
    }
}

/// Where the data lives: SQLite by default, PostgreSQL when `url` is `postgres://...`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub url: Option<SecretString>,
    pub path: PathBuf,
    pub max_connections: u32,
    pub busy_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            path: PathBuf::from("./data/gpt2api.db"),
            max_connections: 10,
            busy_timeout_ms: 5000,
        }
    }
}

/// Which database engine a configuration points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

impl DatabaseConfig {
    /// The connection URL, SQLite's built from `path` when no URL is configured.
    pub fn connection_url(&self) -> String {
        match self.url.as_ref().map(|u| u.expose_secret().trim()) {
            Some(url) if !url.is_empty() => url.to_string(),
            _ => format!("sqlite://{}?mode=rwc", self.path.display()),
        }
    }

    /// The engine the connection URL names.
    pub fn kind(&self) -> DatabaseKind {
        let url = self.connection_url();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            DatabaseKind::Postgres
        } else {
            DatabaseKind::Sqlite
        }
    }

    /// The connection URL with any password replaced, for logs and the console.
    pub fn redacted_url(&self) -> String {
        let raw = self.connection_url();
        match url::Url::parse(&raw) {
            Ok(mut parsed) if parsed.password().is_some() => {
                // Cannot fail: the URL already has a password, so it has an authority.
                let _ = parsed.set_password(Some("[redacted]"));
                parsed.to_string()
            }
            _ => raw,
        }
    }
}

/// Admin sign-in: sessions, the first admin, throttling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub jwt_secret: Option<SecretString>,
    pub session_ttl_hours: u64,
    pub admin_username: String,
    pub admin_password: Option<SecretString>,
    pub cookie_secure: bool,
    pub login_max_failures: u32,
    pub login_window_seconds: u64,
    pub login_lockout_seconds: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            session_ttl_hours: 24,
            admin_username: "admin".into(),
            admin_password: None,
            cookie_secure: false,
            login_max_failures: 5,
            login_window_seconds: 900,
            login_lockout_seconds: 900,
        }
    }
}

/// The Codex upstream and its OAuth endpoint; defaults are the real service's values.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CodexConfig {
    pub base_url: String,
    pub oauth_token_url: String,
    pub oauth_authorize_url: String,
    pub device_usercode_url: String,
    pub device_token_url: String,
    pub client_id: String,
    pub originator: String,
    pub user_agent: String,
    pub client_version: String,
    pub connect_timeout_seconds: u64,
    pub read_timeout_seconds: u64,
    pub proxy_url: Option<SecretString>,
    pub models: Vec<String>,
    /// How often the upstream's model catalog is fetched (per plan type); 0 = never, and the
    /// configured `models` are served.
    pub catalog_refresh_seconds: u64,
    /// Whether `GET /v1/models` (OpenAI shape) also lists `<model>-<effort>` aliases.
    pub list_effort_aliases: bool,
}

impl Default for CodexConfig {
    fn default() -> Self {
        Self {
            base_url: "https://chatgpt.com/backend-api/codex".into(),
            oauth_token_url: "https://auth.openai.com/oauth/token".into(),
            oauth_authorize_url: "https://auth.openai.com/oauth/authorize".into(),
            device_usercode_url: "https://auth.openai.com/api/accounts/deviceauth/usercode".into(),
            device_token_url: "https://auth.openai.com/api/accounts/deviceauth/token".into(),
            client_id: "app_EMoamEEZ73f0CkXaXp7hrann".into(),
            originator: "codex_cli_rs".into(),
            user_agent: "codex_cli_rs/0.101.0 (Mac OS 26.0.1; arm64)".into(),
            client_version: "0.101.0".into(),
            connect_timeout_seconds: 10,
            read_timeout_seconds: 300,
            proxy_url: None,
            models: [
                "gpt-5",
                "gpt-5-codex",
                "gpt-5.1-codex",
                "gpt-5.4",
                "gpt-5.4-mini",
                "gpt-5.5",
            ]
            .map(String::from)
            .to_vec(),
            catalog_refresh_seconds: 300,
            list_effort_aliases: false,
        }
    }
}

/// How the account pool places a new conversation (a pinned one goes back to its account).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// By headroom weighed by how soon each window resets (headroom that resets within the
    /// hour is spent before headroom that lasts a week): each account draws new conversations
    /// in proportion to what it is worth, so the accounts run dry together.
    QuotaAware,
    /// Each request goes to the next available account in turn.
    RoundRobin,
    /// The available account with the fewest requests in flight, then the fewest served.
    LeastUsed,
    /// The first available account until it cools down, then the next.
    FillFirst,
}

/// Account selection, retries, refresh timing: the start-up values of the runtime settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    pub strategy: Strategy,
    pub max_retries: u32,
    pub refresh_lead_seconds: u64,
    pub refresh_check_interval_seconds: u64,
    pub transient_cooldown_seconds: u64,
    pub forbidden_cooldown_seconds: u64,
    pub actor_timeout_ms: u64,
    pub reload_interval_seconds: u64,
    pub refresh_wait_seconds: u64,
    pub breaker_failures: u32,
    pub breaker_window_seconds: u64,
    pub breaker_open_seconds: u64,
    pub affinity_ttl_seconds: u64,
    pub affinity_max_pins: usize,
    pub quota_ceiling_percent: f64,
    pub usage_probe_interval_seconds: u64,
    /// The account list's `near_limit` filter: either usage window at or above this percent.
    pub near_limit_percent: f64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::QuotaAware,
            max_retries: 3,
            refresh_lead_seconds: 5 * 24 * 3600,
            refresh_check_interval_seconds: 60,
            transient_cooldown_seconds: 60,
            forbidden_cooldown_seconds: 1800,
            actor_timeout_ms: 2000,
            reload_interval_seconds: 30,
            refresh_wait_seconds: 10,
            breaker_failures: 3,
            breaker_window_seconds: 300,
            breaker_open_seconds: 300,
            affinity_ttl_seconds: 3600,
            affinity_max_pins: 65_536,
            quota_ceiling_percent: 98.0,
            usage_probe_interval_seconds: 300,
            near_limit_percent: 80.0,
        }
    }
}

/// Process logs and the usage-log writer's batching.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
    pub batch_size: usize,
    pub flush_interval_ms: u64,
    pub mailbox_capacity: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
            batch_size: 1000,
            flush_interval_ms: 500,
            mailbox_capacity: 10_000,
        }
    }
}

/// How process logs are written.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// How long usage-log rows are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    pub log_retention_days: u32,
    /// Audit-log rows older than this are deleted.
    pub audit_retention_days: u32,
    pub cleanup_interval_seconds: u64,
    pub cleanup_batch_size: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            log_retention_days: 30,
            audit_retention_days: 365,
            cleanup_interval_seconds: 3600,
            cleanup_batch_size: 5000,
        }
    }
}

/// Stored `/v1/responses` answers: what `previous_response_id`, `item_reference` items and
/// `GET /v1/responses/{id}` read, since the upstream stores nothing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponsesConfig {
    /// Keep answers whose request did not say `store: false`; off = those features answer 400.
    pub store: bool,
    /// How long a stored answer can be continued or read.
    pub retention_hours: u64,
    /// Stored answers kept per API key at most; the oldest go first.
    pub max_per_key: u64,
}

impl Default for ResponsesConfig {
    fn default() -> Self {
        Self {
            store: true,
            retention_hours: 24,
            max_per_key: 1000,
        }
    }
}

/// `GET /v1/responses` as a WebSocket (the Responses protocol the Codex CLI prefers).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebsocketConfig {
    /// Serve the upgrade; off = it answers 426, which sends the Codex CLI to HTTP at once.
    pub enabled: bool,
    /// A connection with no turn running and nothing received for this long is closed.
    pub idle_timeout_seconds: u64,
    /// The largest message a client may send (a turn's `response.create`).
    pub max_frame_bytes: usize,
    /// The most a connection keeps of its last turn (full input and output) for the next
    /// incremental turn; a larger conversation is forgotten and the client resends it in full.
    pub max_state_bytes: usize,
}

impl Default for WebsocketConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            idle_timeout_seconds: 300,
            max_frame_bytes: 20 * 1024 * 1024,
            max_state_bytes: 32 * 1024 * 1024,
        }
    }
}

/// Encryption of content at rest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// 64 hex digits or base64 of 32 bytes; unset = generated once into `data_dir`.
    pub encryption_key: Option<SecretString>,
    /// Earlier keys, which still open what they sealed (see `gpt2api secrets rotate`).
    pub previous_keys: Vec<SecretString>,
}

/// Values given on the command line; they win over every other layer.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The classic environment variable names and the keys they set.
const CLASSIC_ENV: &[(&str, &str)] = &[
    ("PORT", "server.port"),
    ("JWT_SECRET", "auth.jwt_secret"),
    ("ADMIN_USERNAME", "auth.admin_username"),
    ("ADMIN_PASSWORD", "auth.admin_password"),
    ("DATABASE_PATH", "database.path"),
    ("DATABASE_URL", "database.url"),
];

/// Keys whose values are text even when they look like numbers (`JWT_SECRET=12345`).
const STRING_KEYS: &[&str] = &[
    "auth.jwt_secret",
    "secrets.encryption_key",
    "auth.admin_username",
    "auth.admin_password",
    "database.path",
    "database.url",
];

impl Config {
    /// Loads the layers: defaults, the file, the environment, then `overrides`.
    ///
    /// `path` is the file named by `--config`; without it `GPT2API_CONFIG`, else `./config.toml`
    /// (which may be absent). A file that was named but is missing is an error.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_from(path, overrides, std::env::vars())
    }

    /// [`Config::load`] with the environment given explicitly (tests use this).
    pub fn load_from(
        path: Option<&Path>,
        overrides: &Overrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let named = path
            .map(Path::to_path_buf)
            .or_else(|| lookup(&env, "GPT2API_CONFIG").map(PathBuf::from));
        let file = match named {
            Some(file) if !file.exists() => return Err(ConfigError::MissingFile(file)),
            Some(file) => Some(file),
            None => Some(PathBuf::from("config.toml")).filter(|p| p.exists()),
        };

        let mut figment = Figment::new();
        if let Some(file) = &file {
            figment = figment.merge(Toml::file(file));
        }
        for (name, key) in CLASSIC_ENV {
            if let Some(value) = lookup(&env, name) {
                figment = figment.merge(Serialized::default(key, env_value(key, value)));
            }
        }
        for (name, value) in &env {
            let Some(rest) = name.strip_prefix("GPT2API__") else {
                continue;
            };
            let key = rest.to_ascii_lowercase().replace("__", ".");
            figment = figment.merge(Serialized::default(&key, env_value(&key, value)));
        }
        let mut flags = Vec::new();
        if let Some(host) = &overrides.host {
            flags.push(("server.host", toml::Value::String(host.clone())));
        }
        if let Some(port) = overrides.port {
            flags.push(("server.port", toml::Value::Integer(port.into())));
        }
        if let Some(url) = &overrides.database_url {
            flags.push(("database.url", toml::Value::String(url.clone())));
        }
        for (key, value) in flags {
            figment = figment.merge(Serialized::default(key, value));
        }
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError::Invalid(format!("`{key}` {why}")));
        if self.log.batch_size == 0 {
            return bad("log.batch_size", "must be at least 1");
        }
        if !(1.0..=100.0).contains(&self.pool.near_limit_percent) {
            return bad("pool.near_limit_percent", "must be between 1 and 100");
        }
        if self.log.mailbox_capacity == 0 {
            return bad("log.mailbox_capacity", "must be at least 1");
        }
        if self.codex.models.is_empty() {
            return bad("codex.models", "must list at least one model");
        }
        if self.auth.admin_username.trim().is_empty() {
            return bad("auth.admin_username", "must not be empty");
        }
        if !(1..=24 * 365).contains(&self.responses.retention_hours) {
            return bad("responses.retention_hours", "must be between 1 and 8760");
        }
        if self.responses.max_per_key == 0 {
            return bad("responses.max_per_key", "must be at least 1");
        }
        if self.websocket.idle_timeout_seconds == 0 {
            return bad("websocket.idle_timeout_seconds", "must be at least 1");
        }
        if self.websocket.max_frame_bytes < 1024 {
            return bad("websocket.max_frame_bytes", "must be at least 1024");
        }
        let origin_ok = |o: &str| {
            o == "*"
                || url::Url::parse(o)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.path() == "/")
                    && !o.trim_end_matches('/').contains(['?', '#'])
        };
        if !self
            .server
            .cors_allowed_origins
            .iter()
            .all(|o| origin_ok(o))
        {
            return bad(
                "server.cors_allowed_origins",
                "must hold \"*\" or origins such as \"https://chat.example.com\"",
            );
        }
        if self.retention.audit_retention_days == 0 {
            return bad("retention.audit_retention_days", "must be at least 1");
        }
        let hooks = &self.webhooks;
        if hooks.mailbox_capacity == 0 || hooks.max_concurrency == 0 {
            return bad(
                "webhooks.mailbox_capacity and webhooks.max_concurrency",
                "must be at least 1",
            );
        }
        if !(1..=300).contains(&hooks.timeout_seconds) {
            return bad("webhooks.timeout_seconds", "must be between 1 and 300");
        }
        if hooks.refresh_failures == 0 {
            return bad("webhooks.refresh_failures", "must be at least 1");
        }
        if !(1.0..=100.0).contains(&hooks.limit_near_percent) {
            return bad("webhooks.limit_near_percent", "must be between 1 and 100");
        }
        if !url::Url::parse(&self.codex.base_url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            return bad("codex.base_url", "must be an http(s) URL");
        }
        let codex = &self.codex;
        for (key, value) in [
            ("codex.originator", &codex.originator),
            ("codex.user_agent", &codex.user_agent),
            ("codex.client_version", &codex.client_version),
        ] {
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return bad(
                    key,
                    "must be printable text on one line (it is sent as a header)",
                );
            }
        }
        Ok(())
    }
}

fn lookup<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Environment values are TOML literals (numbers, booleans, arrays) unless the key holds text.
fn env_value(key: &str, raw: &str) -> toml::Value {
    if STRING_KEYS.contains(&key) {
        return toml::Value::String(raw.to_string());
    }
    let wrapped = format!("v = {raw}");
    match wrapped.parse::<toml::Table>() {
        Ok(mut table) => table
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// One readable line per problem, naming the key and what was expected, without values of
/// secret keys.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let what = match &e.kind {
                figment::error::Kind::UnknownField(field, expected) => {
                    // figment's path already ends with the unknown field.
                    let key = if key.is_empty() { field.clone() } else { key };
                    return format!(
                        "unknown key `{key}` (expected one of: {})",
                        expected.join(", ")
                    );
                }
                figment::error::Kind::InvalidType(actual, expected) => {
                    format!("expected {expected}, found {}", kind_of(actual))
                }
                other => other.to_string(),
            };
            format!("`{key}`: {what}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn kind_of(actual: &figment::error::Actual) -> String {
    use figment::error::Actual;
    match actual {
        Actual::Str(_) => "a string".into(),
        Actual::Signed(_) | Actual::Unsigned(_) => "a number".into(),
        Actual::Float(_) => "a float".into(),
        Actual::Bool(_) => "a boolean".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "[server]\nport = 9000\nhost = \"127.0.0.1\"\n[pool]\nmax_retries = 5\n",
        );
        let overrides = Overrides::default();
        let c = Config::load_from(Some(&path), &overrides, env(&[])).unwrap();
        assert_eq!((c.server.port, c.pool.max_retries), (9000, 5));

        let c = Config::load_from(Some(&path), &overrides, env(&[("PORT", "9100")])).unwrap();
        assert_eq!(c.server.port, 9100);

        let vars = env(&[("PORT", "9100"), ("GPT2API__SERVER__PORT", "9200")]);
        let c = Config::load_from(Some(&path), &overrides, vars.clone()).unwrap();
        assert_eq!(c.server.port, 9200);
        assert_eq!(c.server.host, "127.0.0.1");

        let flags = Overrides {
            port: Some(9300),
            ..Default::default()
        };
        let c = Config::load_from(Some(&path), &flags, vars).unwrap();
        assert_eq!(c.server.port, 9300);
    }

    #[test]
    fn unknown_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "[server]\nprot = 1\n");
        let err = Config::load_from(Some(&path), &Overrides::default(), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key `server.prot`"), "{err}");
        assert!(err.contains("port"), "{err}");
    }

    #[test]
    fn upstream_url_and_header_values_are_checked() {
        for (file, key) in [
            (
                "[codex]\nbase_url = \"chatgpt.com/backend-api\"\n",
                "codex.base_url",
            ),
            (
                "[codex]\nbase_url = \"ftp://example.com/\"\n",
                "codex.base_url",
            ),
            ("[codex]\nuser_agent = \"a\\nb\"\n", "codex.user_agent"),
            ("[codex]\noriginator = \"x\\u0000\"\n", "codex.originator"),
            (
                "[codex]\nclient_version = \"1\\r\"\n",
                "codex.client_version",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = write(&dir, file);
            let err = Config::load_from(Some(&path), &Overrides::default(), env(&[]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("`{key}`")), "{file}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "[codex]\nbase_url = \"http://127.0.0.1:9/codex\"\n");
        Config::load_from(Some(&path), &Overrides::default(), env(&[])).expect("valid");
    }

    #[test]
    fn wrong_type_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "[pool]\nmax_retries = \"many\"\n");
        let err = Config::load_from(Some(&path), &Overrides::default(), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pool.max_retries"), "{err}");
        assert!(err.contains("expected"), "{err}");
    }

    #[test]
    fn missing_named_file_is_an_error() {
        let err = Config::load_from(
            Some(Path::new("/nonexistent/gpt2api.toml")),
            &Overrides::default(),
            env(&[]),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::MissingFile(_)));
    }

    #[test]
    fn numeric_looking_secrets_stay_text_and_are_redacted() {
        let vars = env(&[
            ("JWT_SECRET", "12345678"),
            ("ADMIN_PASSWORD", "hunter2hunter2"),
        ]);
        let c = Config::load_from(None, &Overrides::default(), vars).unwrap();
        let secret = c.auth.jwt_secret.as_ref().unwrap().expose_secret();
        assert_eq!(secret, "12345678");
        let debug = format!("{c:?}");
        assert!(!debug.contains("12345678"), "{debug}");
        assert!(!debug.contains("hunter2hunter2"), "{debug}");
    }

    #[test]
    fn database_password_is_redacted() {
        let db = DatabaseConfig {
            url: Some(SecretString::from("postgres://app:s3cret@db:5432/gw")),
            ..Default::default()
        };
        assert_eq!(db.kind(), DatabaseKind::Postgres);
        assert!(!db.redacted_url().contains("s3cret"));
        assert!(!format!("{db:?}").contains("s3cret"));
    }

    #[test]
    fn shipped_config_file_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let c = Config::load_from(Some(&path), &Overrides::default(), env(&[])).unwrap();
        let d = Config::default();
        assert_eq!(c.server.port, d.server.port);
        assert_eq!(c.codex.base_url, d.codex.base_url);
        assert_eq!(c.codex.models, d.codex.models);
        assert_eq!(c.pool.strategy, d.pool.strategy);
        assert_eq!(
            c.retention.log_retention_days,
            d.retention.log_retention_days
        );
    }
}
