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

/// A client that keeps the session cookie of its sign-in.
async fn browser(app: &TestApp) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let res = client
        .post(app.url("/admin/login"))
        .json(
            &json!({"username": crate::helpers::ADMIN, "password": crate::helpers::ADMIN_PASSWORD}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    client
}

#[actix_web::test]
async fn a_cross_site_cookie_request_is_refused_and_a_same_origin_one_served() {
    let app = crate::helpers::spawn_app().await;
    let client = browser(&app).await;
    let create = |site: Option<&'static str>, origin: Option<&'static str>| {
        let mut req = client
            .post(app.url("/admin/api-keys"))
            .json(&json!({"name": "csrf"}));
        if let Some(site) = site {
            req = req.header("sec-fetch-site", site);
        }
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        req.send()
    };
    let res = create(Some("cross-site"), Some("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        crate::helpers::admin_error_code(res).await,
        "cross_site_request"
    );
    let res = create(None, Some("https://evil.example")).await.unwrap();
    assert_eq!(res.status(), 403, "a foreign Origin");
    let res = create(None, None).await.unwrap();
    assert_eq!(res.status(), 403, "neither header");
    let res = create(Some("same-site"), None).await.unwrap();
    assert_eq!(res.status(), 403, "a sibling site is another origin");

    let res = create(Some("same-origin"), None).await.unwrap();
    assert_eq!(res.status(), 201, "the console's own requests");
    let own = app.address.clone();
    let own: &'static str = Box::leak(own.into_boxed_str());
    let res = create(None, Some(own)).await.unwrap();
    assert_eq!(
        res.status(),
        201,
        "a same-origin Origin without Sec-Fetch-Site"
    );
    // Reads and Bearer-token calls are unaffected.
    let res = client
        .get(app.url("/admin/api-keys"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token = app.admin_token().await;
    let res = reqwest::Client::new()
        .post(app.url("/admin/api-keys"))
        .bearer_auth(&token)
        .header("origin", "https://evil.example")
        .json(&json!({"name": "api"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // Logout too.
    let res = client
        .post(app.url("/admin/logout"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = client.get(app.url("/admin/profile")).send().await.unwrap();
    assert_eq!(res.status(), 200, "still signed in");
}

#[actix_web::test]
async fn the_console_and_admin_json_carry_the_browser_security_headers() {
    let app = crate::helpers::spawn_app_with(|c| c.auth.cookie_secure = true).await;
    let token = app.admin_token().await;
    let check = |res: &reqwest::Response, json: bool| {
        let h = res.headers();
        assert_eq!(
            h["content-security-policy"],
            "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
        );
        assert_eq!(h["x-frame-options"], "DENY");
        assert!(h.contains_key("referrer-policy"));
        assert!(h["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age="));
        if json {
            assert_eq!(h["cache-control"], "no-store");
        }
    };
    let res = app.get("/admin/api-keys", &token).await;
    check(&res, true);
    let res = reqwest::get(app.url("/admin/")).await.unwrap();
    assert_eq!(res.status(), 200);
    check(&res, false);
    let res = reqwest::get(app.url("/admin/profile")).await.unwrap();
    assert_eq!(res.status(), 401);
    check(&res, true);

    let plain = crate::helpers::spawn_app().await;
    let res = reqwest::get(plain.url("/admin/")).await.unwrap();
    assert!(
        !res.headers().contains_key("strict-transport-security"),
        "no HSTS over plain HTTP"
    );
}

#[actix_web::test]
async fn the_rightmost_untrusted_forwarded_hop_is_the_client() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.server.trust_forwarded_for = true;
        c.auth.login_max_failures = 2;
    })
    .await;
    // The client writes any leftmost hops it likes; the proxy appends the real address.
    for spoof in ["1.1.1.1", "2.2.2.2"] {
        let res = app
            .login_from("nobody", "wrong", &format!("{spoof}, 203.0.113.9"))
            .await;
        assert_eq!(res.status(), 401);
    }
    let res = app
        .login_from("nobody", "wrong", "3.3.3.3, 203.0.113.9")
        .await;
    assert_eq!(
        res.status(),
        429,
        "the same client address, however spoofed"
    );
    let rows = gpt2api::db::login_failure::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(
        rows.iter().all(|r| r.client_ip == "203.0.113.9"),
        "{rows:?}"
    );

    // Two trusted proxies: the second appended the first's view of the client.
    let two = crate::helpers::spawn_app_with(|c| {
        c.server.trust_forwarded_for = true;
        c.server.trusted_proxies = 2;
    })
    .await;
    two.login_from("nobody", "wrong", "9.9.9.9, 198.51.100.7, 10.0.0.2")
        .await;
    let rows = gpt2api::db::login_failure::Entity::find()
        .all(&two.state.db)
        .await
        .unwrap();
    assert_eq!(rows[0].client_ip, "198.51.100.7");
}

#[actix_web::test]
async fn a_body_slower_than_the_deadline_is_refused_and_its_connection_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = crate::helpers::spawn_app_with(|c| c.server.body_read_timeout_seconds = 1).await;
    let addr = app.address.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(
            b"POST /admin/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    // Nothing more is sent; the gateway answers and closes well before the client would.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "the connection was closed by the gateway");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 4"), "{text}");
}

#[actix_web::test]
async fn connections_beyond_the_per_address_cap_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = crate::helpers::spawn_app_with(|c| c.server.max_connections_per_address = 3).await;
    let addr = app.address.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        // An answer on it proves the gateway counted it.
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 12];
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        held.push(conn);
    }
    // The fourth is accepted by the kernel and closed by the gateway at once.
    let mut fourth = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(std::time::Duration::from_secs(30), fourth.read(&mut buf))
        .await
        .expect("closed, not left hanging")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    // Once one closes, a new one is served (as soon as the gateway has seen it close).
    drop(held.pop());
    let mut served = false;
    for _ in 0..200 {
        if let Ok(res) = reqwest::get(app.url("/healthz")).await {
            served = res.status() == 200;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(served);
    let (soft, hard) = gpt2api::startup::open_file_limits().unwrap();
    assert_eq!(
        soft, hard,
        "the soft open-file limit was raised to the hard one"
    );
}

#[actix_web::test]
async fn wrong_passwords_from_one_address_never_lock_the_admin_out_elsewhere() {
    use crate::helpers::{ADMIN, ADMIN_PASSWORD};
    let app = crate::helpers::spawn_app_with(|c| c.server.trust_forwarded_for = true).await;
    for _ in 0..7 {
        let res = app.login_from(ADMIN, "Wrong-Passw0rd", "10.9.0.1").await;
        assert!([401, 429].contains(&res.status().as_u16()));
    }
    assert_eq!(
        app.login_from(ADMIN, ADMIN_PASSWORD, "10.9.0.1")
            .await
            .status(),
        429,
        "the attacking address is locked"
    );
    assert_eq!(
        app.login_from(ADMIN, ADMIN_PASSWORD, "10.9.0.2")
            .await
            .status(),
        200,
        "the real admin from a clean address is not"
    );
}

#[actix_web::test]
async fn concurrent_wrong_sign_ins_hash_at_most_the_limit() {
    let app = crate::helpers::spawn_app_with(|c| c.server.trust_forwarded_for = true).await;
    let attempts = (0..40).map(|i| {
        let app = &app;
        async move {
            app.login_from(&format!("user{i}"), "Wrong-Passw0rd", "10.8.0.1")
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + refused, 40, "{statuses:?}");
    assert!(
        checked <= 5,
        "{checked} passwords were checked: {statuses:?}"
    );
}

#[actix_web::test]
async fn sign_in_bodies_and_passwords_are_capped() {
    let app = crate::helpers::spawn_app().await;
    let res = reqwest::Client::new()
        .post(app.url("/admin/login"))
        .json(&json!({"username": "admin", "password": "x".repeat(5000)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413, "a body over 4 KB");
    let res = app.login_raw("admin", &"x".repeat(1025)).await;
    assert_eq!(res.status(), 400, "a password over 1 KB");
    assert_eq!(
        crate::helpers::admin_error_code(res).await,
        "invalid_request"
    );
}

#[actix_web::test]
async fn a_session_cannot_guess_the_current_password_without_limit() {
    let app = crate::helpers::spawn_app().await;
    let token = app.admin_token().await;
    let change = |current: &'static str| {
        let body = json!({"current_password": current, "new_password": "Another-Passw0rd-1"});
        let token = token.clone();
        let url = app.url("/admin/change-password");
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..5 {
        assert_eq!(change("Wrong-Guess-1").await.status(), 401);
    }
    let res = change(crate::helpers::ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 429, "locked like a sign-in");
    assert!(res.headers().contains_key("retry-after"));
}

#[actix_web::test]
async fn bad_proxy_urls_are_refused_and_good_ones_shown_masked() {
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin_token().await;
    let entry = |id: &str, proxy: &str| {
        json!({"type": "codex", "account_id": id, "access_token": "at", "refresh_token": "rt",
               "email": format!("{id}@example.com"), "proxy_url": proxy})
    };
    let body = json!([
        entry("p-file", "file:///etc/passwd"),
        entry("p-ftp", "ftp://proxy.example:21"),
        entry("p-nohost", "http://"),
        entry("p-good", "socks5h://user:s3cret@proxy.example:1080"),
    ]);
    let res = app.post("/admin/tokens/import", &admin, &body).await;
    assert_eq!(res.status(), 200);
    let summary: Value = res.json().await.unwrap();
    assert_eq!(summary["imported"], 1, "{summary}");
    let failed = summary["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 3, "{summary}");
    for f in failed {
        let reason = f["reason"].as_str().unwrap();
        assert!(reason.contains("proxy_url"), "{reason}");
        assert!(!reason.contains("/etc/passwd"), "{reason}");
    }
    let list: Value = app.get("/admin/tokens", &admin).await.json().await.unwrap();
    assert_eq!(list["total"], 1);
    assert_eq!(list["data"][0]["proxy"], "socks5h://***@proxy.example:1080");
    assert!(!list.to_string().contains("s3cret"));
}

#[actix_web::test]
async fn requests_refused_by_their_key_leave_a_log_row() {
    use sea_orm::Set;
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &mock.create_account("acct-refusals")).await;
    let (rpm_id, rpm) = create_key(&app, "rpm", |k| k.rpm_limit = Set(Some(1))).await;
    assert_eq!(chat(&app, &rpm, &ask("one", false)).await.status(), 200);
    assert_eq!(chat(&app, &rpm, &ask("two", false)).await.status(), 429);
    let (model_id, model) = create_key(&app, "model", |k| {
        k.allowed_models = Set(Some(r#"["gpt-5.4"]"#.into()));
    })
    .await;
    assert_eq!(chat(&app, &model, &ask("hi", false)).await.status(), 403);
    let (budget_id, budget) = create_key(&app, "budget", |k| {
        k.total_token_limit = Set(Some(10));
        k.tokens_used = Set(10);
    })
    .await;
    assert_eq!(chat(&app, &budget, &ask("hi", false)).await.status(), 429);
    let (expired_id, expired) = create_key(&app, "expired", |k| {
        k.expires_at = Set(Some(chrono::Utc::now() - chrono::Duration::hours(1)));
    })
    .await;
    assert_eq!(chat(&app, &expired, &ask("hi", false)).await.status(), 401);

    let rows = crate::helpers::pool::log_rows(&app).await;
    let refusal = |key: i32| {
        rows.iter()
            .find(|r| r.api_key_id == Some(key) && r.status_code >= 400)
            .unwrap_or_else(|| panic!("a refusal row for key {key}: {rows:?}"))
    };
    for (key, status, words) in [
        (rpm_id, 429, "per-minute"),
        (model_id, 403, "model"),
        (budget_id, 429, "budget"),
        (expired_id, 401, "expired"),
    ] {
        let row = refusal(key);
        assert_eq!(row.status_code, status);
        assert_eq!(row.account_id, None);
        let message = row.error_message.as_deref().unwrap_or_default();
        assert!(message.contains(words), "{message}");
    }
    assert_eq!(refusal(rpm_id).endpoint, "/v1/chat/completions");
    assert_eq!(refusal(expired_id).endpoint, "/v1/chat/completions");

    // The statistics count them as errors of their key.
    let admin = app.admin_token().await;
    let errors: Value = app
        .get(
            &format!("/admin/logs?status=error&api_key_id={rpm_id}"),
            &admin,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(errors["total"], 1);
    assert_eq!(errors["data"][0]["token_id"], Value::Null);
}

#[actix_web::test]
async fn concurrent_requests_overshoot_a_token_budget_by_one_request_at_most() {
    use sea_orm::Set;
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    for i in 0..3 {
        add_account(&app, &mock.create_account(&format!("acct-budget-{i}"))).await;
    }
    let (key_id, key) = create_key(&app, "budget", |k| k.total_token_limit = Set(Some(10))).await;
    let requests = (0..20).map(|i| {
        let (app, key) = (&app, &key);
        async move {
            chat(app, key, &ask(&format!("question {i}"), false))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(requests).await;
    let served = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        statuses.iter().all(|s| [200, 429].contains(s)),
        "{statuses:?}"
    );
    let rows = crate::helpers::pool::log_rows(&app).await;
    let used: i64 = rows
        .iter()
        .filter(|r| r.api_key_id == Some(key_id))
        .map(|r| r.input_tokens + r.output_tokens)
        .sum();
    let one_request = rows
        .iter()
        .filter(|r| r.api_key_id == Some(key_id))
        .map(|r| r.input_tokens + r.output_tokens)
        .max()
        .unwrap_or(0);
    assert!(served >= 1, "{statuses:?}");
    assert!(
        used <= 10 + one_request,
        "{used} tokens used by {served} requests of at most {one_request}"
    );
    assert!(served < 20, "the budget stopped most of them");
}

#[actix_web::test]
async fn an_import_over_the_account_cap_is_refused_whole() {
    let app = crate::helpers::spawn_app_with(|c| c.server.import_max_accounts = 50).await;
    let admin = app.admin_token().await;
    let accounts: Vec<Value> = (0..51)
        .map(|i| {
            json!({"type": "codex", "account_id": format!("cap-{i}"), "access_token": "at",
                   "refresh_token": "rt"})
        })
        .collect();
    let res = app
        .post(
            "/admin/tokens/import",
            &admin,
            &Value::Array(accounts.clone()),
        )
        .await;
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_accounts");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("50"),
        "{body}"
    );
    let list: Value = app.get("/admin/tokens", &admin).await.json().await.unwrap();
    assert_eq!(list["total"], 0, "nothing stored");
    let res = app
        .post(
            "/admin/tokens/import",
            &admin,
            &Value::Array(accounts[..50].to_vec()),
        )
        .await;
    assert_eq!(res.status(), 200, "at the cap is fine");
}

#[actix_web::test]
async fn the_failed_list_is_capped_and_counted() {
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin_token().await;
    let mut entries: Vec<Value> = (0..250).map(|i| json!({"junk": i})).collect();
    entries.push(json!(42));
    entries.push(json!([1, 2, 3]));
    entries.push(
        json!({"type": "codex", "account_id": "good", "access_token": "at",
                        "refresh_token": "rt"}),
    );
    let res = app
        .post("/admin/tokens/import", &admin, &Value::Array(entries))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["imported"], 1);
    assert_eq!(body["failed"].as_array().unwrap().len(), 100);
    assert_eq!(body["failed_count"], 252);
    assert_eq!(body["failed"][0]["source"], "request body[1]");
}

#[actix_web::test]
async fn usage_rows_survive_a_database_that_refuses_writes_for_a_while() {
    use sea_orm::ConnectionTrait;
    let mock = MockUpstream::start();
    let app = spawn_with_mock(&mock, |_| {}).await;
    add_account(&app, &mock.create_account("acct-busy")).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    let db = &app.state.db;
    db.execute_unprepared("ALTER TABLE api_logs RENAME TO api_logs_away")
        .await
        .unwrap();
    for i in 0..5 {
        let res = chat(&app, &key, &ask(&format!("q{i}"), false)).await;
        assert_eq!(res.status(), 200, "serving goes on");
    }
    // Several attempts fail (the writer keeps the rows and backs off)...
    assert!(app.state.usage.flush().await.is_err());
    let mut retried = false;
    for _ in 0..400 {
        if app.state.usage.retried() >= 3 {
            retried = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(retried, "the writer retries");
    // ... and requests are still taken in meanwhile.
    assert_eq!(chat(&app, &key, &ask("more", false)).await.status(), 200);
    db.execute_unprepared("ALTER TABLE api_logs_away RENAME TO api_logs")
        .await
        .unwrap();
    let rows = crate::helpers::pool::log_rows(&app).await;
    assert_eq!(rows.len(), 6, "no row was lost");
    let (_, dropped, failed) = app.state.usage.counts();
    assert_eq!((dropped, failed), (0, 0));
}
