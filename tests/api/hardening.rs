//! Hardening: secrets at rest, hostile input, cross-site requests, forwarded addresses,
//! browser headers and refusals that leave a trace.

use mock_upstream::MockUpstream;
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::{json, Value};

use crate::helpers::pool::{add_account, ask, chat, create_key, spawn_with_mock};
use crate::helpers::{start, TestApp};

/// The stored rows of `tokens`, as the database holds them.
async fn raw_accounts(app: &TestApp) -> Vec<gpt2api::db::account::Model> {
    gpt2api::db::account::Entity::find()
        .order_by_asc(gpt2api::db::account::Column::Id)
        .all(&app.state.db)
        .await
        .unwrap()
}

fn assert_sealed(row: &gpt2api::db::account::Model, key_id: &str, plain: [&str; 3]) {
    let prefix = format!("enc:v1:{key_id}:");
    let stored = [
        row.access_token.as_str(),
        row.refresh_token.as_str(),
        row.id_token.as_deref().unwrap_or_default(),
    ];
    for (stored, plain) in stored.iter().zip(plain) {
        assert!(
            stored.starts_with(&prefix),
            "sealed with {key_id}: {stored}"
        );
        assert!(!stored.contains(plain), "no plaintext in the column");
    }
}

#[actix_web::test]
async fn imported_tokens_are_encrypted_at_rest_and_exported_in_clear() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    let admin = app.admin_token().await;
    let a = mock.create_account("acct-sealed");
    let res = app
        .post(
            "/admin/tokens/import",
            &admin,
            &json!([a.to_cliproxy_json()]),
        )
        .await;
    assert_eq!(res.status(), 200);

    let rows = raw_accounts(&app).await;
    let key_id = app.state.cipher.key_id().to_string();
    assert_sealed(
        &rows[0],
        &key_id,
        [&a.access_token, &a.refresh_token, &a.id_token],
    );
    // The pool opens them: requests are served with the real token.
    let (_, key) = create_key(&app, "client", |_| {}).await;
    assert_eq!(chat(&app, &key, &ask("hi", false)).await.status(), 200);

    let exported: Value = app
        .get("/admin/tokens/export", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(exported[0]["access_token"], a.access_token);
    assert_eq!(exported[0]["refresh_token"], a.refresh_token);
    assert_eq!(exported[0]["id_token"], a.id_token);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&app.config.server.data_dir), 0o700, "data_dir");
        if app.config.database.kind() == gpt2api::config::DatabaseKind::Sqlite {
            let file = app.dir.path().join("gpt2api.db");
            assert_eq!(mode(&file), 0o600, "database file");
            let wal = app.dir.path().join("gpt2api.db-wal");
            if wal.exists() {
                assert_eq!(mode(&wal), 0o600, "WAL");
            }
        }
    }
}

#[actix_web::test]
async fn tokens_stored_in_clear_are_encrypted_on_start() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    let a = mock.create_account("acct-clear");
    // Written directly, as an older version did.
    let row = add_account(&app, &a).await;
    assert_eq!(raw_accounts(&app).await[0].access_token, a.access_token);
    let (config, dir, db) = app.stop().await;

    let app = start(config, dir, db).await;
    let rows = raw_accounts(&app).await;
    assert_eq!(rows[0].id, row.id);
    assert_sealed(
        &rows[0],
        app.state.cipher.key_id(),
        [&a.access_token, &a.refresh_token, &a.id_token],
    );
    let (_, key) = create_key(&app, "client", |_| {}).await;
    assert_eq!(chat(&app, &key, &ask("hi", false)).await.status(), 200);
}

#[actix_web::test]
async fn rotation_re_encrypts_with_a_new_key_and_old_rows_stay_readable_meanwhile() {
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    let admin = app.admin_token().await;
    let a = mock.create_account("acct-rotate");
    app.post(
        "/admin/tokens/import",
        &admin,
        &json!([a.to_cliproxy_json()]),
    )
    .await;
    let old_id = app.state.cipher.key_id().to_string();
    let (config, dir, db) = app.stop().await;

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gpt2api"))
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env_remove("GPT2API_CONFIG")
        .env("DATABASE_URL", config.database.connection_url())
        .env("GPT2API__SERVER__DATA_DIR", &config.server.data_dir)
        .args(["secrets", "rotate"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("re-encrypted 1 account(s)"), "{stdout}");
    assert!(!stdout.contains(&a.refresh_token));

    let app = start(config, dir, db).await;
    let new_id = app.state.cipher.key_id().to_string();
    assert_ne!(new_id, old_id, "a new key");
    let rows = raw_accounts(&app).await;
    assert_sealed(
        &rows[0],
        &new_id,
        [&a.access_token, &a.refresh_token, &a.id_token],
    );
    let admin = app.admin_token().await;
    let exported: Value = app
        .get("/admin/tokens/export", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(exported[0]["refresh_token"], a.refresh_token);
}

#[actix_web::test]
async fn a_configured_previous_key_opens_rows_sealed_before_the_change() {
    let mock = MockUpstream::start();
    let old_key = "11".repeat(32);
    let new_key = "22".repeat(32);
    let key = old_key.clone();
    let app = spawn_with_mock(&mock, move |c| {
        c.secrets.encryption_key = Some(key.into());
    })
    .await;
    let admin = app.admin_token().await;
    let a = mock.create_account("acct-prev");
    app.post(
        "/admin/tokens/import",
        &admin,
        &json!([a.to_cliproxy_json()]),
    )
    .await;
    let (mut config, dir, db) = app.stop().await;
    config.secrets.encryption_key = Some(new_key.into());
    config.secrets.previous_keys = vec![old_key.into()];
    let app = start(config, dir, db).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    assert_eq!(
        chat(&app, &key, &ask("hi", false)).await.status(),
        200,
        "served with the token sealed by the previous key"
    );
}
