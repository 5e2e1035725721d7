//! Migrations go up, all the way down, and up again, on the test's database engine.

use migration::{Migrator, MigratorTrait};
use sea_orm::ConnectionTrait;

use crate::helpers::TestDatabase;

async fn table_exists(db: &sea_orm::DatabaseConnection, table: &str) -> bool {
    let sql = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Sqlite => {
            format!("SELECT name FROM sqlite_master WHERE type='table' AND name='{table}'")
        }
        _ => format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name='{table}'"
        ),
    };
    db.query_one(sea_orm::Statement::from_string(
        db.get_database_backend(),
        sql,
    ))
    .await
    .unwrap()
    .is_some()
}

#[actix_web::test]
async fn migrations_up_down_up() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDatabase::create(&dir).await;
    let config = crate::helpers::test_config(&dir, &test_db);
    let db = gpt2api::db::connect(&config.database).await.unwrap();

    Migrator::up(&db, None).await.unwrap();
    for table in [
        "users",
        "admin_sessions",
        "login_failures",
        "api_keys",
        "tokens",
        "api_logs",
        "settings",
        "webhooks",
        "webhook_deliveries",
        "webhook_claims",
    ] {
        assert!(table_exists(&db, table).await, "{table} exists after up");
    }
    let total = Migrator::migrations().len();
    assert_eq!(
        Migrator::get_applied_migrations(&db).await.unwrap().len(),
        total
    );

    Migrator::down(&db, Some(1)).await.unwrap();
    assert_eq!(
        Migrator::get_pending_migrations(&db).await.unwrap().len(),
        1
    );

    Migrator::down(&db, None).await.unwrap();
    for table in ["users", "api_keys", "tokens", "api_logs", "settings"] {
        assert!(
            !table_exists(&db, table).await,
            "{table} is gone after down"
        );
    }
    Migrator::up(&db, None).await.unwrap();
    assert!(table_exists(&db, "api_logs").await);
    assert!(Migrator::get_pending_migrations(&db)
        .await
        .unwrap()
        .is_empty());
    db.close().await.ok();
}

#[actix_web::test]
async fn sqlite_runs_with_wal_and_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = gpt2api::config::Config::default();
    config.database.path = dir.path().join("nested/dir/gpt2api.db");
    let db = gpt2api::db::connect(&config.database).await.unwrap();
    assert!(
        dir.path().join("nested/dir").is_dir(),
        "the directory is created"
    );
    let backend = db.get_database_backend();
    let mode = db
        .query_one(sea_orm::Statement::from_string(
            backend,
            "PRAGMA journal_mode",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<String>(0)
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    let fk = db
        .query_one(sea_orm::Statement::from_string(
            backend,
            "PRAGMA foreign_keys",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i32>(0)
        .unwrap();
    assert_eq!(fk, 1);
    let busy = db
        .query_one(sea_orm::Statement::from_string(
            backend,
            "PRAGMA busy_timeout",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i32>(0)
        .unwrap();
    assert_eq!(busy, 5000);
}
