//! Database entities and the connection: SQLite (WAL, busy timeout, foreign keys) or PostgreSQL.

pub mod account;
pub mod admin_recovery_code;
pub mod admin_session;
pub mod api_key;
pub mod api_log;
pub mod audit_log;
pub mod login_failure;
pub mod response_item;
pub mod setting;
pub mod stored_response;
pub mod totp_challenge;
pub mod usage_hourly;
pub mod usage_snapshot;
pub mod user;
pub mod webhook;
pub mod webhook_delivery;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use std::str::FromStr;

use sea_orm::{
    ActiveModelTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, IntoActiveModel, SqlxSqliteConnector,
    TransactionTrait,
};

use crate::config::{DatabaseConfig, DatabaseKind};

/// Opens the configured database, creating SQLite's directory; migrations are applied apart, by
/// [`migrate_up`] at start-up or by `gpt2api migrate`.
pub async fn connect(config: &DatabaseConfig) -> Result<DatabaseConnection, DbErr> {
    let kind = config.kind();
    if kind == DatabaseKind::Sqlite && config.url.is_none() {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::auth::jwt::create_private_dir(dir).map_err(|e| {
                DbErr::Custom(format!("cannot create directory {}: {e}", dir.display()))
            })?;
        }
    }
    if kind == DatabaseKind::Sqlite {
        if let Some(file) = sqlite_file(&config.connection_url()) {
            make_private(&file)
                .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", file.display())))?;
        }
        return connect_sqlite(config).await;
    }
    let mut options = ConnectOptions::new(config.connection_url());
    options
        .max_connections(config.max_connections.max(1))
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(options).await
}

/// The file a SQLite URL names (none for an in-memory database).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| path.into())
}

/// Creates the database file readable by its owner only (0600), or narrows an existing one and
/// its journal files: SQLite gives the WAL and shared-memory files the database file's mode.
fn make_private(file: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(file)?;
        let mut names = vec![file.to_path_buf()];
        for suffix in ["-wal", "-shm"] {
            let mut name = file.as_os_str().to_owned();
            name.push(suffix);
            names.push(name.into());
        }
        for name in names.iter().filter(|n| n.exists()) {
            std::fs::set_permissions(name, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// SQLite needs per-connection settings (WAL, busy timeout, foreign keys) that sea-orm's options
/// cannot express, so the pool is built with sqlx and handed to sea-orm.
async fn connect_sqlite(config: &DatabaseConfig) -> Result<DatabaseConnection, DbErr> {
    use sea_orm::sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    let url = config.connection_url();
    let options = SqliteConnectOptions::from_str(&url)
        .map_err(|e| DbErr::Custom(format!("invalid SQLite URL: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_millis(config.busy_timeout_ms));
    let pool = SqlitePoolOptions::new()
        .max_connections(config.max_connections.max(1))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| DbErr::Custom(format!("cannot open SQLite database: {e}")))?;
    Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
}

/// The most rows one multi-row insert takes.
const INSERT_CHUNK: usize = 128;

/// Inserts `rows` with multi-row inserts of [`insert_chunk`] rows each.
pub async fn insert_chunked<A, C>(db: &C, mut rows: Vec<A>) -> Result<(), DbErr>
where
    A: ActiveModelTrait + Send,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    C: ConnectionTrait,
{
    while !rows.is_empty() {
        let chunk: Vec<A> = rows.drain(..insert_chunk(rows.len())).collect();
        A::Entity::insert_many(chunk)
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// How many of `left` rows the next insert takes: [`INSERT_CHUNK`], else the largest power of
/// two that fits. The database caches a prepared statement per distinct SQL text, and an insert
/// of n rows is a text of its own: inserts of any size would each leave one (a large one) in
/// every connection's cache; these shapes are eight.
fn insert_chunk(left: usize) -> usize {
    if left >= INSERT_CHUNK {
        INSERT_CHUNK
    } else {
        1 << left.max(1).ilog2()
    }
}

/// Begins a transaction that reads and then writes.
///
/// SQLite starts a transaction as a reader and upgrades it at its first write; when another
/// connection (the usage-log writer, say) wrote in between, the upgrade fails at once with
/// "database is locked" instead of waiting out the busy timeout. On SQLite the transaction
/// therefore takes the write lock first, with a statement that writes nothing, so that it
/// waits its turn like any writer. PostgreSQL needs nothing of the kind.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let txn = db.begin().await?;
    if txn.get_database_backend() == DbBackend::Sqlite {
        txn.execute_unprepared("UPDATE settings SET key = key WHERE 0")
            .await?;
    }
    Ok(txn)
}

/// Applies every pending migration.
pub async fn migrate_up(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveValue::NotSet, EntityTrait, PaginatorTrait, Set, TransactionTrait};

    #[actix_web::test]
    async fn a_chunked_insert_writes_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::DatabaseConfig {
            path: dir.path().join("t.db"),
            ..Default::default()
        };
        let db = super::connect(&config).await.unwrap();
        super::migrate_up(&db).await.unwrap();
        // 128 + 128 + 32 + 8 + 4 + 1 rows: every shape on the way.
        let rows: Vec<_> = (0..301)
            .map(|n| super::audit_log::ActiveModel {
                id: NotSet,
                created_at: Set(chrono::Utc::now()),
                actor_id: Set(None),
                actor: Set(format!("a{n}")),
                role: Set(None),
                action: Set("test.insert".into()),
                target: Set(None),
                summary: Set(String::new()),
                client_ip: Set(None),
            })
            .collect();
        let txn = db.begin().await.unwrap();
        super::insert_chunked(&txn, rows).await.unwrap();
        txn.commit().await.unwrap();
        let count = super::audit_log::Entity::find().count(&db).await.unwrap();
        assert_eq!(count, 301);
    }

    #[test]
    fn inserts_take_a_few_fixed_sizes() {
        let mut shapes = std::collections::BTreeSet::new();
        for batch in 1..=1000 {
            let (mut left, mut total) = (batch, 0);
            while left > 0 {
                let n = super::insert_chunk(left);
                assert!(n >= 1 && n <= left, "{n} of {left}");
                shapes.insert(n);
                left -= n;
                total += n;
            }
            assert_eq!(total, batch);
        }
        assert_eq!(
            shapes.into_iter().collect::<Vec<_>>(),
            [1, 2, 4, 8, 16, 32, 64, 128]
        );
    }
}
