//! Operations endpoints, request ids, the console's entry and error shapes of failed extractors.

use serde_json::Value;

use crate::helpers::{admin_error_code, spawn_app, ADMIN_PASSWORD};

#[actix_web::test]
async fn health_readiness_and_request_ids() {
    let app = spawn_app().await;
    let res = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(res.status(), 200);
    let id = res
        .headers()
        .get("x-request-id")
        .expect("request id")
        .to_str()
        .unwrap()
        .to_string();
    assert!(!id.is_empty());
    let again = reqwest::get(app.url("/healthz")).await.unwrap();
    let again = again.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(again, id, "one id per request");
    // Ids are time-ordered (UUID v7): the usage log's index on them grows at its end instead
    // of taking a write to a random page of the index for every row.
    for id in [&id, &again] {
        let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 7, "{id}");
    }
    assert!(again > id, "{again} after {id}");
    let res = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn root_redirects_to_the_console() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["location"], "/admin/");
    let page = reqwest::get(app.url("/admin/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("gpt2api"));
}

#[actix_web::test]
async fn malformed_json_answers_400_without_echoing_the_body() {
    let app = spawn_app().await;
    let res = reqwest::Client::new()
        .post(app.url("/admin/login"))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"username\": \"admin\", \"password\": \"{ADMIN_PASSWORD}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let text = res.text().await.unwrap();
    assert!(!text.contains(ADMIN_PASSWORD), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");

    let wrong_type = reqwest::Client::new()
        .post(app.url("/admin/login"))
        .header("content-type", "application/json")
        .body(r#"{"username": "admin", "password": 12345}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 400);
    let message = wrong_type.json::<Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("invalid type"), "{message}");
}

#[actix_web::test]
async fn wrong_content_type_and_oversized_bodies_keep_the_json_shape() {
    let app = spawn_app().await;
    let res = reqwest::Client::new()
        .post(app.url("/admin/login"))
        .header("content-type", "text/plain")
        .body("username=admin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    assert_eq!(admin_error_code(res).await, "unsupported_media_type");

    let huge = format!(
        "{{\"username\":\"admin\",\"password\":\"{}\"}}",
        "x".repeat(21 * 1024 * 1024)
    );
    let res = reqwest::Client::new()
        .post(app.url("/admin/login"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(admin_error_code(res).await, "payload_too_large");
}

#[actix_web::test]
async fn unknown_routes_answer_json_404() {
    let app = spawn_app().await;
    // Under /admin, every path but the sign-in and the console's files needs a session first.
    let res = reqwest::get(app.url("/admin/nope")).await.unwrap();
    assert_eq!(res.status(), 401);
    let token = app.admin_token().await;
    let res = app.get("/admin/nope", &token).await;
    assert_eq!(res.status(), 404);
    assert_eq!(admin_error_code(res).await, "not_found");
}

#[actix_web::test]
async fn settings_are_validated_applied_and_kept_across_restarts() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let body: Value = app
        .get("/admin/settings", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["strategy"], "quota_aware");
    for key in [
        "max_retries",
        "refresh_lead_seconds",
        "log_retention_days",
        "refresh_wait_seconds",
        "breaker_failures",
        "breaker_window_seconds",
        "breaker_open_seconds",
        "affinity_ttl_seconds",
        "usage_probe_interval_seconds",
    ] {
        assert!(body[key].is_u64(), "{key} in {body}");
    }
    assert_eq!(body["quota_ceiling_percent"], 98.0);

    let patch = |v: Value| {
        let app = &app;
        let token = token.clone();
        async move {
            reqwest::Client::new()
                .patch(app.url("/admin/settings"))
                .bearer_auth(token)
                .json(&v)
                .send()
                .await
                .unwrap()
        }
    };
    let bad = patch(serde_json::json!({"strategy": "least_used", "max_retries": -1})).await;
    assert_eq!(bad.status(), 400);
    let err: Value = bad.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid_setting");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_retries"));
    assert_eq!(
        app.state.settings.get().strategy,
        gpt2api::settings::Strategy::QuotaAware,
        "nothing changed"
    );
    for (key, value) in [
        ("quota_ceiling_percent", serde_json::json!(0)),
        ("quota_ceiling_percent", serde_json::json!(101)),
        ("breaker_failures", serde_json::json!(0)),
        ("affinity_ttl_seconds", serde_json::json!(0)),
        ("refresh_wait_seconds", serde_json::json!(121)),
        ("usage_probe_interval_seconds", serde_json::json!("often")),
    ] {
        let bad = patch(serde_json::json!({ key: value })).await;
        assert_eq!(bad.status(), 400, "{key}: {value}");
        let err: Value = bad.json().await.unwrap();
        assert!(err["error"]["message"].as_str().unwrap().contains(key));
    }

    let ok = patch(serde_json::json!({"strategy": "fill_first", "log_retention_days": 7, "quota_ceiling_percent": 95.5})).await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["strategy"], "fill_first");
    assert_eq!(
        app.state.settings.get().log_retention_days,
        7,
        "applied at once"
    );

    let (config, dir, db) = app.stop().await;
    let app = crate::helpers::start(config, dir, db).await;
    let settings = app.state.settings.get();
    assert_eq!(settings.strategy, gpt2api::settings::Strategy::FillFirst);
    assert!((settings.quota_ceiling_percent - 95.5).abs() < f64::EPSILON);
}

#[actix_web::test]
async fn system_information() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let body: Value = app.get("/admin/system", &token).await.json().await.unwrap();
    assert_eq!(body["version"], gpt2api::VERSION);
    assert!(body["database"] == "sqlite" || body["database"] == "postgres");
    assert!(body["uptime_seconds"].is_u64());
    assert_eq!(body["upstream_base_url"], app.config.codex.base_url);
}

#[actix_web::test]
async fn missing_fields_and_bad_query_parameters_answer_400_naming_them() {
    let app = spawn_app().await;
    let res = reqwest::Client::new()
        .post(app.url("/admin/login"))
        .header("content-type", "application/json")
        .body(r#"{"username": "admin"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("password"),
        "{body}"
    );
}
