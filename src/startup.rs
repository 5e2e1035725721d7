//! Builds the application from a configuration: binds the listener (port 0 in tests), opens and
//! migrates the database, starts the services and actors once, and returns a handle with the
//! bound port and a way to stop. `main` and the tests use the same path.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use tracing_actix_web::TracingLogger;

use actix::Actor;
use sea_orm::DatabaseConnection;

use crate::actors::account_pool::{AccountPool, AccountPoolHandle};
use crate::actors::key_cache::{KeyCache, KeyCacheHandle};
use crate::actors::refresher::{Refresher, RefresherHandle};
use crate::actors::usage_log::{UsageLogHandle, UsageLogWriter};
use crate::actors::usage_probe::{UsageProber, UsageProberHandle};
use crate::actors::ActorError;
use crate::auth::{jwt, AuthService};
use crate::codex::client::CodexClient;
use crate::config::Config;
use crate::error::AppError;
use crate::settings::SettingsStore;
use crate::state::AppState;
use crate::{db, http};

/// Why the gateway could not start. Each variant says which step failed; the cause follows.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened (the URL is shown without its password).
    #[error("cannot open the database {url}")]
    Database {
        url: String,
        #[source]
        source: sea_orm::DbErr,
    },
    /// Migrations failed.
    #[error("cannot apply migrations")]
    Migrations(#[source] sea_orm::DbErr),
    /// The session signing secret could not be read or created.
    #[error("cannot load the session signing secret")]
    Secret(#[source] std::io::Error),
    /// The encryption key could not be read, created or parsed.
    #[error("cannot load the encryption key")]
    EncryptionKey(#[source] std::io::Error),
    /// Account tokens stored in clear could not be encrypted.
    #[error("cannot encrypt the stored account tokens")]
    Reseal(#[source] crate::secrets::ResealError),
    /// Preparing the admin sign-in failed.
    #[error("cannot prepare the admin sign-in")]
    Auth(#[source] AppError),
    /// The runtime settings could not be read.
    #[error("cannot load the runtime settings")]
    Settings(#[source] sea_orm::DbErr),
    /// The upstream client could not be built (an invalid proxy URL, say).
    #[error("cannot build the upstream client")]
    Client(#[source] crate::codex::client::ClientError),
    /// The accounts could not be loaded into the pool.
    #[error("cannot load accounts")]
    Accounts(#[source] ActorError),
    /// The metrics registry refused a metric.
    #[error("cannot register metrics")]
    Metrics(#[source] prometheus::Error),
    /// `limits.redis_url` is not a Redis URL.
    #[error("cannot use limits.redis_url")]
    Limits(#[source] redis::RedisError),
    /// PostgreSQL: the change listener could not connect.
    #[error("cannot listen for the other instances' changes")]
    Listener(#[source] sea_orm::sqlx::Error),
    /// The HTTP server could not start on the listener.
    #[error("cannot start the HTTP server")]
    Server(#[source] std::io::Error),
}

/// Audit entries waiting for the writer at most; more are dropped and counted.
const AUDIT_CHANNEL_CAPACITY: usize = 4096;

/// A built, not yet running, gateway.
pub struct Application {
    port: u16,
    first_admin_password: Option<String>,
    server: Server,
    state: AppState,
}

impl Application {
    /// Binds, migrates, creates the first admin if needed and starts the services.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        raise_open_file_limit();
        let bind_error = |source| StartupError::Bind {
            addr: format!("{}:{}", config.server.host, config.server.port),
            source,
        };
        let listener = TcpListener::bind((config.server.host.as_str(), config.server.port))
            .map_err(bind_error)?;
        let port = listener.local_addr().map_err(bind_error)?.port();

        let db = db::connect(&config.database)
            .await
            .map_err(|source| StartupError::Database {
                url: config.database.redacted_url(),
                source,
            })?;
        db::migrate_up(&db)
            .await
            .map_err(StartupError::Migrations)?;

        let secret =
            jwt::load_or_create_secret(config.auth.jwt_secret.as_ref(), &config.server.data_dir)
                .map_err(StartupError::Secret)?;
        let auth = AuthService::new(db.clone(), jwt::JwtKeys::new(&secret), config.auth.clone())
            .await
            .map_err(StartupError::Auth)?;
        let first_admin_password = auth.ensure_admin().await.map_err(StartupError::Auth)?;

        let settings = SettingsStore::load(db.clone(), &config)
            .await
            .map_err(StartupError::Settings)?;

        let cipher = Arc::new(
            crate::crypto::Cipher::load(
                config.secrets.encryption_key.as_ref(),
                &config.secrets.previous_keys,
                &config.server.data_dir,
            )
            .map_err(StartupError::EncryptionKey)?,
        );
        let migrated = crate::secrets::reseal(&db, &cipher, crate::secrets::Reseal::Plaintext)
            .await
            .map_err(StartupError::Reseal)?;
        if migrated.accounts > 0 {
            tracing::info!(
                accounts = migrated.accounts,
                "encrypted the tokens stored in clear"
            );
        }
        let metrics = crate::metrics::Metrics::new().map_err(StartupError::Metrics)?;
        let webhooks = crate::actors::webhooks::WebhookHandle::start(
            crate::actors::webhooks::Notifier::new(
                db.clone(),
                cipher.clone(),
                config.webhooks.clone(),
            )
            .map_err(|e| StartupError::Client(e.into()))?,
        );
        let actors = start_actors(&config, &db, &settings, &cipher, &metrics, &webhooks).await?;
        let changes = crate::changes::Changes::new(db.clone());
        crate::changes::start_listener(
            changes.clone(),
            config.database.connection_url(),
            crate::changes::Targets {
                db: db.clone(),
                keys: actors.keys.clone(),
                pool: actors.pool.clone(),
                settings: settings.clone(),
            },
        )
        .await
        .map_err(StartupError::Listener)?;
        let responses = crate::response_store::ResponseStore::new(
            db.clone(),
            cipher.clone(),
            config.responses.clone(),
        );
        let audit = crate::audit::AuditHandle::start(db.clone(), AUDIT_CHANNEL_CAPACITY);
        crate::retention::spawn(
            db.clone(),
            settings.clone(),
            auth.clone(),
            responses.clone(),
            Duration::from_secs(config.retention.cleanup_interval_seconds.max(1)),
            config.retention.cleanup_batch_size,
            config.retention.audit_retention_days,
        );

        // Off the request path: the upstream's model catalog, per plan type.
        let catalog = crate::catalog::Catalog::new();
        catalog.spawn(
            actors.upstream.clone(),
            actors.pool.clone(),
            Duration::from_secs(config.codex.catalog_refresh_seconds),
        );
        let state = AppState {
            config: Arc::new(config),
            db,
            auth,
            settings,
            pool: actors.pool,
            prober: actors.prober,
            refresher: actors.refresher,
            usage: actors.usage,
            keys: actors.keys,
            changes,
            upstream: actors.upstream,
            catalog,
            responses,
            sign_in_flows: crate::sign_in_flows::SignInFlows::new(),
            cipher,
            metrics,
            audit,
            webhooks,
            started_at: Instant::now(),
        };
        let server = build_server(listener, state.clone())?;
        Ok(Self {
            port,
            first_admin_password,
            server,
            state,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The password generated for the first admin on this start, if one was; the caller shows
    /// it once to the operator.
    pub fn first_admin_password(&self) -> Option<&str> {
        self.first_admin_password.as_deref()
    }

    /// The shared state (tests use it to reach the database and actors).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A handle that stops the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped through the handle, or by SIGINT/SIGTERM when `signals` is true;
    /// then lets in-flight requests finish and drains the background work.
    pub async fn run_until_stopped(self, signals: bool) -> std::io::Result<()> {
        let handle = self.server.handle();
        if signals {
            actix_web::rt::spawn(async move {
                wait_for_signal().await;
                tracing::info!("shutdown signal received; finishing in-flight requests");
                handle.stop(true).await;
            });
        }
        let result = self.server.await;
        tracing::info!("server stopped; writing buffered usage logs");
        if let Err(e) = self.state.usage.flush().await {
            tracing::error!(error = %e, "cannot write the buffered usage logs");
        }
        self.state.audit.flush().await;
        self.state.webhooks.stop();
        result
    }
}

struct Actors {
    pool: AccountPoolHandle,
    prober: UsageProberHandle,
    refresher: RefresherHandle,
    usage: UsageLogHandle,
    keys: KeyCacheHandle,
    upstream: CodexClient,
}

/// Starts every actor once and forwards settings changes to them as messages.
async fn start_actors(
    config: &Config,
    db: &DatabaseConnection,
    settings: &SettingsStore,
    cipher: &Arc<crate::crypto::Cipher>,
    metrics: &crate::metrics::Metrics,
    webhooks: &crate::actors::webhooks::WebhookHandle,
) -> Result<Actors, StartupError> {
    let timeout = Duration::from_millis(config.pool.actor_timeout_ms.max(1));
    let upstream = CodexClient::new(config.codex.clone()).map_err(StartupError::Client)?;
    let pool = AccountPoolHandle::new(
        AccountPool::new(
            db.clone(),
            settings.get(),
            Duration::from_secs(config.pool.reload_interval_seconds.max(1)),
            config.pool.affinity_max_pins,
        )
        .with_cipher(cipher.clone())
        .with_notifier(webhooks.clone())
        .start(),
        timeout,
    );
    let loaded = pool.reload().await.map_err(StartupError::Accounts)?;
    tracing::info!(accounts = loaded, "account pool loaded");
    let refresher = RefresherHandle::new(
        Refresher::new(
            db.clone(),
            upstream.clone(),
            pool.clone(),
            settings.get(),
            Duration::from_secs(config.pool.refresh_check_interval_seconds.max(1)),
        )
        .with_cipher(cipher.clone())
        .with_notifier(webhooks.clone())
        .start(),
    );
    // Off the request path: probes idle accounts' usage windows.
    let prober = UsageProberHandle::start(UsageProber::new(
        upstream.clone(),
        pool.clone(),
        metrics.clone(),
        Duration::from_secs(1),
    ));
    let usage = UsageLogHandle::start(UsageLogWriter::new(
        db.clone(),
        config.log.batch_size,
        Duration::from_millis(config.log.flush_interval_ms.max(1)),
        config.log.mailbox_capacity,
    ));
    let counters = crate::limits::Counters::new(
        db,
        config
            .limits
            .redis_url
            .as_ref()
            .map(secrecy::ExposeSecret::expose_secret),
        &config.limits.redis_prefix,
    )
    .map_err(StartupError::Limits)?;
    let keys = KeyCacheHandle::new(
        KeyCache::new(db.clone()).with_max_age(Duration::from_secs(
            config.server.key_cache_max_age_seconds.max(1),
        )),
        timeout,
    )
    .with_counters(counters)
    .with_notifier(webhooks.clone());
    tracing::info!(counters = keys.counters(), "key limits counted");

    let mut changes = settings.subscribe();
    let (pool_rx, refresher_rx) = (pool.clone(), refresher.clone());
    actix_web::rt::spawn(async move {
        while changes.changed().await.is_ok() {
            let next = changes.borrow_and_update().clone();
            pool_rx.apply_settings(next.clone()).await;
            refresher_rx.apply_settings(next).await;
        }
    });
    Ok(Actors {
        pool,
        prober,
        refresher,
        usage,
        keys,
        upstream,
    })
}

fn build_server(listener: TcpListener, state: AppState) -> Result<Server, StartupError> {
    let workers = match state.config.server.workers {
        0 => std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
        n => n,
    };
    let shutdown = state.config.server.shutdown_timeout_seconds;
    let head_timeout = Duration::from_secs(state.config.server.request_head_timeout_seconds);
    let per_address = state.config.server.max_connections_per_address;
    // Behind a reverse proxy every connection comes from the proxy: no cap per address there.
    let per_address = if state.config.server.trust_forwarded_for {
        0
    } else {
        per_address
    };
    let connections = http::guard::ConnectionCounter::default();
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        let data = data.clone();
        App::new()
            .app_data(data.clone())
            .wrap(from_fn(http::guard::body_deadline))
            .wrap(from_fn(http::request_id_header))
            .wrap(TracingLogger::default())
            .configure(|cfg| http::configure(cfg, &data))
    })
    .on_connect(move |conn, ext| {
        let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        // Streaming is many small writes; Nagle's algorithm would hold them back.
        let _ = tcp.set_nodelay(true);
        if per_address == 0 {
            return;
        }
        let Ok(peer) = tcp.peer_addr() else { return };
        if let Some(slot) = connections.admit(peer.ip(), per_address) {
            ext.insert(slot);
        } else {
            // Over the cap: closed before a byte is read.
            tracing::debug!(ip = %peer.ip(), "connection refused: too many from this address");
            let _ = socket2::SockRef::from(tcp).shutdown(std::net::Shutdown::Both);
        }
    })
    .workers(workers)
    .shutdown_timeout(shutdown)
    .disable_signals()
    .client_request_timeout(head_timeout)
    .listen(listener)
    .map_err(StartupError::Server)?
    .run();
    Ok(server)
}

/// Raises the soft limit of open files to the hard one: every connection is a descriptor, and
/// the common default soft limit (1,024) is far below what a busy gateway holds.
fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit read and write the one struct passed by reference.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) != 0 {
                return;
            }
            if limit.rlim_cur < limit.rlim_max {
                let before = limit.rlim_cur;
                limit.rlim_cur = limit.rlim_max;
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) == 0 {
                    tracing::debug!(
                        from = before,
                        to = limit.rlim_max,
                        "raised the open-file limit"
                    );
                }
            }
        }
    }
}

/// The soft and hard limits of open files.
pub fn open_file_limits() -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the one struct passed by reference.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } == 0;
        ok.then_some((limit.rlim_cur, limit.rlim_max))
    }
    #[cfg(not(unix))]
    None
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
