//! Admin sign-in: login, throttling, logout, password change, profile, the first admin.

use serde_json::{json, Value};

use crate::helpers::{admin_error_code, spawn_app, spawn_app_with, start, ADMIN, ADMIN_PASSWORD};

#[actix_web::test]
async fn login_returns_token_user_and_a_strict_http_only_cookie() {
    let app = spawn_app().await;
    let res = app.login_raw(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 200);
    let cookie = res
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("gpt2api_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    let body: Value = res.json().await.unwrap();
    assert!(body["token"].as_str().unwrap().len() > 20);
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["user"]["username"], ADMIN);
    assert_eq!(body["user"]["must_change_password"], false);
    assert!(body["user"]["id"].as_i64().is_some());
}

#[actix_web::test]
async fn wrong_password_and_unknown_user_answer_the_same_401() {
    let app = spawn_app().await;
    let wrong = app.login_raw(ADMIN, "Wrong-Passw0rd").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(admin_error_code(wrong).await, "invalid_credentials");
    let unknown = app.login_raw("nobody", "Wrong-Passw0rd").await;
    assert_eq!(unknown.status(), 401);
    assert_eq!(admin_error_code(unknown).await, "invalid_credentials");
}

#[actix_web::test]
async fn profile_accepts_bearer_and_cookie_and_rejects_anonymous() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let res = app.get("/admin/profile", &token).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    for key in [
        "id",
        "username",
        "created_at",
        "updated_at",
        "must_change_password",
    ] {
        assert!(body.get(key).is_some(), "profile has {key}: {body}");
    }
    assert_eq!(body["username"], ADMIN);

    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let login = browser
        .post(app.url("/admin/login"))
        .json(&json!({"username": ADMIN, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let res = browser.get(app.url("/admin/profile")).send().await.unwrap();
    assert_eq!(res.status(), 200, "the cookie alone signs the browser in");

    let res = reqwest::get(app.url("/admin/profile")).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(admin_error_code(res).await, "unauthorized");
    let res = app.get("/admin/profile", "not-a-jwt").await;
    assert_eq!(res.status(), 401);
}

#[actix_web::test]
async fn repeated_failures_lock_the_username_with_retry_after() {
    let app = spawn_app().await;
    for _ in 0..5 {
        assert_eq!(app.login_raw(ADMIN, "Wrong-Passw0rd").await.status(), 401);
    }
    let locked = app.login_raw(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(locked.status(), 429, "even the right password waits");
    let retry: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 800 && retry <= 900, "Retry-After {retry}");
    assert_eq!(admin_error_code(locked).await, "too_many_attempts");
}

#[actix_web::test]
async fn one_address_failing_locks_that_address_only() {
    let app = spawn_app_with(|c| c.server.trust_forwarded_for = true).await;
    for i in 0..5 {
        let res = app
            .login_from(&format!("guess{i}"), "Wrong-Passw0rd", "10.0.0.3")
            .await;
        assert_eq!(res.status(), 401);
    }
    let res = app.login_from(ADMIN, ADMIN_PASSWORD, "10.0.0.3").await;
    assert_eq!(res.status(), 429, "the address is locked");
    let res = app.login_from(ADMIN, ADMIN_PASSWORD, "10.0.0.4").await;
    assert_eq!(res.status(), 200, "another address is not");
}

#[actix_web::test]
async fn a_success_elsewhere_does_not_clear_failures() {
    let app = spawn_app_with(|c| c.server.trust_forwarded_for = true).await;
    for _ in 0..4 {
        let res = app.login_from(ADMIN, "Wrong-Passw0rd", "10.0.0.1").await;
        assert_eq!(res.status(), 401);
    }
    let res = app.login_from(ADMIN, ADMIN_PASSWORD, "10.0.0.2").await;
    assert_eq!(res.status(), 200);
    let res = app.login_from(ADMIN, "Wrong-Passw0rd", "10.0.0.1").await;
    assert_eq!(res.status(), 401);
    let res = app.login_from(ADMIN, ADMIN_PASSWORD, "10.0.0.1").await;
    assert_eq!(
        res.status(),
        429,
        "five failures for the username are still counted"
    );
}

#[actix_web::test]
async fn a_success_clears_failures_of_its_own_address() {
    let app = spawn_app_with(|c| c.server.trust_forwarded_for = true).await;
    for _ in 0..4 {
        app.login_from(ADMIN, "Wrong-Passw0rd", "10.0.0.7").await;
    }
    assert_eq!(
        app.login_from(ADMIN, ADMIN_PASSWORD, "10.0.0.7")
            .await
            .status(),
        200
    );
    for _ in 0..4 {
        assert_eq!(
            app.login_from(ADMIN, "Wrong-Passw0rd", "10.0.0.7")
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        app.login_from(ADMIN, ADMIN_PASSWORD, "10.0.0.7")
            .await
            .status(),
        200
    );
}

#[actix_web::test]
async fn logout_revokes_the_token_and_clears_the_cookie() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let other = app.admin_token().await;
    let res = app.post("/admin/logout", &token, &json!({})).await;
    assert_eq!(res.status(), 204);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("gpt2api_session=;") || cookie.contains("Max-Age=0"),
        "{cookie}"
    );
    assert_eq!(app.get("/admin/profile", &token).await.status(), 401);
    assert_eq!(
        app.get("/admin/profile", &other).await.status(),
        200,
        "other sessions live on"
    );
}

#[actix_web::test]
async fn revocation_and_sessions_survive_a_restart() {
    let app = spawn_app().await;
    let revoked = app.admin_token().await;
    let kept = app.admin_token().await;
    assert_eq!(
        app.post("/admin/logout", &revoked, &json!({}))
            .await
            .status(),
        204
    );
    let (config, dir, db) = app.stop().await;

    let app = start(config, dir, db).await;
    assert_eq!(app.get("/admin/profile", &revoked).await.status(), 401);
    assert_eq!(
        app.get("/admin/profile", &kept).await.status(),
        200,
        "the generated signing secret was kept"
    );
}

#[actix_web::test]
async fn password_change_revokes_other_sessions_and_enforces_rules() {
    let app = spawn_app().await;
    let current = app.admin_token().await;
    let other = app.admin_token().await;

    let weak = app
        .post(
            "/admin/change-password",
            &current,
            &json!({"current_password": ADMIN_PASSWORD, "new_password": "abcdefgh"}),
        )
        .await;
    assert_eq!(weak.status(), 400);
    let body: Value = weak.json().await.unwrap();
    assert_eq!(body["error"]["code"], "weak_password");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at least 8 characters"));

    let same_as_name = app
        .post(
            "/admin/change-password",
            &current,
            &json!({"current_password": ADMIN_PASSWORD, "new_password": "ADMIN"}),
        )
        .await;
    assert_eq!(same_as_name.status(), 400);

    let wrong_current = app
        .post(
            "/admin/change-password",
            &current,
            &json!({"current_password": "Not-The-Passw0rd", "new_password": "Brand-New-Passw0rd"}),
        )
        .await;
    assert_eq!(wrong_current.status(), 401);
    assert_eq!(admin_error_code(wrong_current).await, "invalid_credentials");

    let res = app
        .post(
            "/admin/change-password",
            &current,
            &json!({"current_password": ADMIN_PASSWORD, "new_password": "Brand-New-Passw0rd"}),
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(app.get("/admin/profile", &current).await.status(), 200);
    assert_eq!(app.get("/admin/profile", &other).await.status(), 401);
    assert_eq!(app.login_raw(ADMIN, ADMIN_PASSWORD).await.status(), 401);
    assert_eq!(
        app.login_raw(ADMIN, "Brand-New-Passw0rd").await.status(),
        200
    );
}

#[actix_web::test]
async fn first_start_without_a_password_generates_one_that_must_change() {
    let app = spawn_app_with(|c| c.auth.admin_password = None).await;
    let generated = app
        .first_admin_password
        .clone()
        .expect("a generated password");
    assert!(generated.len() >= 16);
    let res = app.login_raw(ADMIN, &generated).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["must_change_password"], true);
    let token = body["token"].as_str().unwrap().to_string();

    let blocked = app.get("/admin/settings", &token).await;
    assert_eq!(blocked.status(), 403);
    assert_eq!(admin_error_code(blocked).await, "password_change_required");

    let res = app
        .post(
            "/admin/change-password",
            &token,
            &json!({"current_password": generated, "new_password": "Operator-Chosen-1"}),
        )
        .await;
    assert_eq!(res.status(), 204);
    let profile: Value = app
        .get("/admin/profile", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(profile["must_change_password"], false);

    let (config, dir, db) = app.stop().await;
    let again = start(config, dir, db).await;
    assert!(again.first_admin_password.is_none(), "created only once");
}

#[actix_web::test]
async fn a_well_known_configured_password_must_be_changed() {
    let app = spawn_app_with(|c| c.auth.admin_password = Some("admin123".to_string().into())).await;
    assert!(
        app.first_admin_password.is_none(),
        "configured, not generated"
    );
    let body: Value = app.login_raw(ADMIN, "admin123").await.json().await.unwrap();
    assert_eq!(body["user"]["must_change_password"], true);
}
