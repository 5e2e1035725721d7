//! "Sign in with OpenAI" (`/admin/tokens/oauth/*`) against the mock's authorize page, code
//! exchange and device endpoints: both flows end to end, re-signing, and every refusal.

use std::time::{Duration, Instant};

use gpt2api::sign_in_flows::MAX_PENDING_FLOWS;
use mock_upstream::{DeviceSettings, MockUpstream, SignIn};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::admin_error_code;
use crate::helpers::pool::{ask, chat, create_key, spawn_with_mock};
use crate::helpers::TestApp;

async fn spawn(mock: &MockUpstream) -> TestApp {
    let (authorize, usercode, device_token) = (
        mock.authorize_url(),
        mock.device_usercode_url(),
        mock.device_token_url(),
    );
    spawn_with_mock(mock, move |c| {
        c.codex.oauth_authorize_url = authorize;
        c.codex.device_usercode_url = usercode;
        c.codex.device_token_url = device_token;
    })
    .await
}

/// A device flow the tests can poll quickly.
fn fast_device(approve_after: Option<usize>) -> DeviceSettings {
    DeviceSettings {
        approve_after,
        interval: "0.1".into(),
        ..DeviceSettings::default()
    }
}

async fn start(app: &TestApp, admin: &str, body: Value) -> reqwest::Response {
    app.post("/admin/tokens/oauth/start", admin, &body).await
}

/// Starts a PKCE flow; answers its id and authorize URL.
async fn start_pkce(app: &TestApp, admin: &str) -> (String, String) {
    let res = start(app, admin, json!({"method": "pkce"})).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["method"], "pkce");
    assert!(body["expires_at"].is_string());
    (
        body["flow_id"].as_str().unwrap().to_string(),
        body["authorize_url"].as_str().unwrap().to_string(),
    )
}

/// Opens the authorize URL as a browser would and answers where it lands (the callback URL).
async fn sign_in_at(authorize_url: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client.get(authorize_url).send().await.unwrap();
    assert_eq!(
        res.status(),
        302,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("http://localhost:1455/auth/callback?"),
        "{location}"
    );
    location
}

async fn callback(app: &TestApp, admin: &str, flow: &str, url: &str) -> reqwest::Response {
    app.post(
        &format!("/admin/tokens/oauth/{flow}/callback"),
        admin,
        &json!({"redirect_url": url}),
    )
    .await
}

async fn flow_status(app: &TestApp, admin: &str, flow: &str) -> Value {
    let res = app.get(&format!("/admin/tokens/oauth/{flow}"), admin).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn cancel(app: &TestApp, admin: &str, flow: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .delete(app.url(&format!("/admin/tokens/oauth/{flow}")))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .status()
}

async fn accounts(app: &TestApp, admin: &str) -> Vec<Value> {
    let body: Value = app.get("/admin/tokens", admin).await.json().await.unwrap();
    body["data"].as_array().unwrap().clone()
}

/// Polls the flow's status (as the console does) until it is no longer pending.
async fn settled(app: &TestApp, admin: &str, flow: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = flow_status(app, admin, flow).await;
        if status["status"] != "pending" || Instant::now() > deadline {
            return status;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `condition` holds (20 s at most).
async fn until(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "condition never held");
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A proxied request on the gateway succeeds and is served by `account_id`.
async fn served_by(app: &TestApp, account_id: &str) {
    let (_, key) = create_key(app, &format!("k-{}", Uuid::new_v4()), |_| {}).await;
    let res = chat(app, &key, &ask("hi", false)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let text = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains(&format!("Hello from {account_id}")), "{text}");
}

#[actix_web::test]
async fn a_pkce_sign_in_creates_a_usable_account() {
    let mock = MockUpstream::start();
    mock.set_sign_in(SignIn::Account("acct-new".into()));
    let app = spawn(&mock).await;
    let admin = app.admin_token().await;

    let res = start(&app, &admin, json!({"method": "pkce", "name": " work "})).await;
    assert_eq!(res.status(), 201);
    let started: Value = res.json().await.unwrap();
    let flow = started["flow_id"].as_str().unwrap();
    let authorize = started["authorize_url"].as_str().unwrap();
    assert!(authorize.starts_with(&mock.authorize_url()), "{authorize}");
    for part in [
        "client_id=app_EMoamEEZ73f0CkXaXp7hrann",
        "code_challenge_method=S256",
        "redirect_uri=http%3A%2F%2Flocalhost%3A1455%2Fauth%2Fcallback",
        "codex_cli_simplified_flow=true",
    ] {
        assert!(authorize.contains(part), "{authorize} lacks {part}");
    }
    assert_eq!(flow_status(&app, &admin, flow).await["status"], "pending");

    let landed = sign_in_at(authorize).await;
    let res = callback(&app, &admin, flow, &landed).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let token: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(token["account_id"], "acct-new");
    assert_eq!(token["email"], "acct-new@example.com");
    assert_eq!(token["name"], "work");
    assert_eq!(token["status"], "active");
    let stored = mock.account("acct-new").unwrap();
    assert!(!text.contains(&stored.access_token) && !text.contains(&stored.refresh_token));
    assert_eq!(mock.code_exchanges(), 1);

    let status = flow_status(&app, &admin, flow).await;
    assert_eq!(status["status"], "done");
    assert_eq!(status["token"]["id"], token["id"]);
    // Single use.
    let again = callback(&app, &admin, flow, &landed).await;
    assert_eq!(again.status(), 410);
    assert_eq!(admin_error_code(again).await, "oauth_flow_expired");
    assert_eq!(mock.code_exchanges(), 1);

    served_by(&app, "acct-new").await;

    // Its tokens are sealed at rest, as an imported account's are.
    let raw = <gpt2api::db::account::Entity as sea_orm::EntityTrait>::find_by_id(
        token["id"].as_i64().unwrap() as i32,
    )
    .one(&app.state.db)
    .await
    .unwrap()
    .unwrap();
    assert!(
        raw.access_token.starts_with("enc:v1:"),
        "sealed access token"
    );
    assert!(
        raw.refresh_token.starts_with("enc:v1:"),
        "sealed refresh token"
    );
    assert!(!raw.refresh_token.contains(&stored.refresh_token));
}

#[actix_web::test]
async fn a_device_sign_in_is_polled_to_an_account() {
    let mock = MockUpstream::start();
    mock.set_sign_in(SignIn::Account("acct-device".into()));
    mock.set_device(fast_device(Some(2)));
    let app = spawn(&mock).await;
    let admin = app.admin_token().await;

    let res = start(&app, &admin, json!({"method": "device"})).await;
    assert_eq!(res.status(), 201);
    let started: Value = res.json().await.unwrap();
    assert_eq!(started["method"], "device");
    assert_eq!(
        started["verification_url"],
        format!("{}/codex/device", mock.root_url())
    );
    assert!(started["user_code"].as_str().is_some_and(|c| c.len() == 10));
    assert_eq!(started["interval_seconds"], 1);
    assert!(started.get("device_auth_id").is_none());
    let flow = started["flow_id"].as_str().unwrap();

    let status = settled(&app, &admin, flow).await;
    assert_eq!(status["status"], "done", "{status}");
    assert_eq!(status["token"]["account_id"], "acct-device");
    // Pending twice, then approved; the poller is gone.
    assert_eq!(mock.device_polls(), 3);
    until(|| app.state.sign_in_flows.running_pollers() == 0).await;
    assert_eq!(accounts(&app, &admin).await.len(), 1);
    served_by(&app, "acct-device").await;
}

#[actix_web::test]
async fn signing_in_again_updates_the_account() {
    let mock = MockUpstream::start();
    mock.set_sign_in(SignIn::Account("acct-again".into()));
    let app = spawn(&mock).await;
    let admin = app.admin_token().await;

    let (flow, url) = start_pkce(&app, &admin).await;
    let first: Value = callback(&app, &admin, &flow, &sign_in_at(&url).await)
        .await
        .json()
        .await
        .unwrap();

    let res = start(&app, &admin, json!({"method": "pkce", "name": "renamed"})).await;
    let started: Value = res.json().await.unwrap();
    let flow = started["flow_id"].as_str().unwrap();
    let landed = sign_in_at(started["authorize_url"].as_str().unwrap()).await;
    let res = callback(&app, &admin, flow, &landed).await;
    assert_eq!(res.status(), 200);
    let second: Value = res.json().await.unwrap();
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["name"], "renamed");

    let list = accounts(&app, &admin).await;
    assert_eq!(list.len(), 1);
    // The stored tokens are the newest ones.
    let row = crate::helpers::pool::account_row(&app, first["id"].as_i64().unwrap() as i32).await;
    assert_eq!(
        row.access_token,
        mock.account("acct-again").unwrap().access_token
    );
    served_by(&app, "acct-again").await;
}

#[actix_web::test]
async fn a_state_mismatch_is_refused_and_changes_nothing() {
    let mock = MockUpstream::start();
    let app = spawn(&mock).await;
    let admin = app.admin_token().await;
    let (flow_a, url_a) = start_pkce(&app, &admin).await;
    let (flow_b, _) = start_pkce(&app, &admin).await;

    let landed_a = sign_in_at(&url_a).await;
    let res = callback(&app, &admin, &flow_b, &landed_a).await;
    assert_eq!(res.status(), 400);
    assert_eq!(admin_error_code(res).await, "oauth_state_mismatch");
    assert_eq!(mock.code_exchanges(), 0);
    assert!(accounts(&app, &admin).await.is_empty());
    // Neither flow is used up.
    assert_eq!(
        flow_status(&app, &admin, &flow_b).await["status"],
        "pending"
    );
    let res = callback(&app, &admin, &flow_a, &landed_a).await;
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn a_reused_code_is_refused_with_the_upstreams_reason() {
    let mock = MockUpstream::start();
    mock.set_sign_in(SignIn::Account("acct-reuse".into()));
    let app = spawn(&mock).await;
    let admin = app.admin_token().await;
    let (flow_a, url_a) = start_pkce(&app, &admin).await;
    let landed_a = sign_in_at(&url_a).await;
    let first: Value = callback(&app, &admin, &flow_a, &landed_a)
        .await
        .json()
        .await
        .unwrap();
    let before =
        crate::helpers::pool::account_row(&app, first["id"].as_i64().unwrap() as i32).await;

    // The first flow's code pasted again, with a new flow's state.
    let (flow_b, url_b) = start_pkce(&app, &admin).await;
    let state_b = url::Url::parse(&url_b)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string();
    let code_a = url::Url::parse(&landed_a)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let forged = format!(
        "http://localhost:1455/auth/callback?code={code_a}&state={}",
        urlencode(&state_b)
    );
    let res = callback(&app, &admin, &flow_b, &forged).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "oauth_exchange_failed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("already been used"), "{message}");
    assert!(!message.contains(&code_a));
    let after = crate::helpers::pool::account_row(&app, before.id).await;
    assert_eq!(after.access_token, before.access_token);
    assert_eq!(after.updated_at, before.updated_at);
    assert_eq!(flow_status(&app, &admin, &flow_b).await["status"], "failed");
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[actix_web::test]
async fn an_expired_flow_is_refused_and_changes_nothing() {
    let mock = MockUpstream::start();
    let app = spawn(&mock).await;
    let admin = app.admin_token().await;
    let (flow, url) = start_pkce(&app, &admin).await;
    let landed = sign_in_at(&url).await;
    app.state
        .sign_in_flows
        .expire_now(Uuid::parse_str(&flow).unwrap());

    let res = callback(&app, &admin, &flow, &landed).await;
    assert_eq!(res.status(), 410);
    assert_eq!(admin_error_code(res).await, "oauth_flow_expired");
    assert_eq!(mock.code_exchanges(), 0);
    assert!(accounts(&app, &admin).await.is_empty());
    let status = flow_status(&app, &admin, &flow).await;
    assert_eq!(status["status"], "expired");
    assert_eq!(status["error"]["code"], "oauth_flow_expired");
}

#[actix_web::test]
async fn a_denied_sign_in_reports_the_missing_entitlement() {
    let mock = MockUpstream::start();
    mock.set_sign_in(SignIn::Denied("missing_codex_entitlement".into()));
    let app = spawn(&mock).await;
    let admin = app.admin_token().await;
    let (flow, url) = start_pkce(&app, &admin).await;
    let (other, _) = start_pkce(&app, &admin).await;
    let landed = sign_in_at(&url).await;
    assert!(landed.contains("error=access_denied"), "{landed}");
    // Another flow's refusal does not close this one.
    let res = callback(&app, &admin, &other, &landed).await;
    assert_eq!(admin_error_code(res).await, "oauth_state_mismatch");
    assert_eq!(flow_status(&app, &admin, &other).await["status"], "pending");

    let res = callback(&app, &admin, &flow, &landed).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "oauth_denied");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("access_denied") && message.contains("missing_codex_entitlement"),
        "{message}"
    );
    assert!(accounts(&app, &admin).await.is_empty());
    let status = flow_status(&app, &admin, &flow).await;
    assert_eq!(status["status"], "failed");
    assert_eq!(status["error"]["code"], "oauth_denied");
}

#[actix_web::test]
async fn a_device_flow_expires_or_is_cancelled_and_changes_nothing() {
    let mock = MockUpstream::start();
    mock.set_device(DeviceSettings {
        expired: true,
        ..fast_device(None)
    });
    let app = spawn(&mock).await;
    let admin = app.admin_token().await;

    // Expiry: the upstream says "expired"; the gateway's own deadline ends the flow.
    let started: Value = start(&app, &admin, json!({"method": "device"}))
        .await
        .json()
        .await
        .unwrap();
    let flow = started["flow_id"].as_str().unwrap().to_string();
    until(|| mock.device_polls() >= 1).await;
    assert_eq!(flow_status(&app, &admin, &flow).await["status"], "pending");
    app.state
        .sign_in_flows
        .expire_now(Uuid::parse_str(&flow).unwrap());
    let status = flow_status(&app, &admin, &flow).await;
    assert_eq!(status["status"], "expired");
    assert_eq!(status["error"]["code"], "oauth_flow_expired");
    let message = status["error"]["message"].as_str().unwrap();
    assert!(message.contains("deviceauth_expired"), "{message}");
    until(|| app.state.sign_in_flows.running_pollers() == 0).await;

    // Cancel: the poller stops, the flow is gone, and an approval afterwards adds nothing.
    mock.set_device(fast_device(None));
    let started: Value = start(&app, &admin, json!({"method": "device"}))
        .await
        .json()
        .await
        .unwrap();
    let flow = started["flow_id"].as_str().unwrap().to_string();
    assert_eq!(app.state.sign_in_flows.running_pollers(), 1);
    assert_eq!(cancel(&app, &admin, &flow).await, 204);
    until(|| app.state.sign_in_flows.running_pollers() == 0).await;
    let polls = mock.device_polls();
    mock.set_device(fast_device(Some(0)));
    let res = app
        .get(&format!("/admin/tokens/oauth/{flow}"), &admin)
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(cancel(&app, &admin, &flow).await, 404);
    assert_eq!(mock.device_polls(), polls);
    assert!(accounts(&app, &admin).await.is_empty());

    // Device login not enabled upstream.
    mock.set_device(DeviceSettings {
        enabled: false,
        ..fast_device(None)
    });
    let res = start(&app, &admin, json!({"method": "device"})).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "oauth_denied");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not enabled"));
}

#[actix_web::test]
async fn only_a_signed_in_admin_can_use_the_flows() {
    let mock = MockUpstream::start();
    let app = spawn(&mock).await;
    let admin = app.admin_token().await;
    let (flow, _) = start_pkce(&app, &admin).await;
    let (_, key) = create_key(&app, "client", |_| {}).await;
    let client = reqwest::Client::new();
    for bearer in [None, Some(key.as_str()), Some("not-a-session")] {
        let with = |r: reqwest::RequestBuilder| match bearer {
            Some(b) => r.bearer_auth(b),
            None => r,
        };
        let requests = [
            with(client.post(app.url("/admin/tokens/oauth/start")))
                .json(&json!({"method": "pkce"})),
            with(client.post(app.url(&format!("/admin/tokens/oauth/{flow}/callback")))).json(
                &json!({"redirect_url": "http://localhost:1455/auth/callback?code=a&state=b"}),
            ),
            with(client.get(app.url(&format!("/admin/tokens/oauth/{flow}")))),
            with(client.delete(app.url(&format!("/admin/tokens/oauth/{flow}")))),
        ];
        for request in requests {
            let res = request.send().await.unwrap();
            assert_eq!(res.status(), 401);
        }
    }
    assert_eq!(flow_status(&app, &admin, &flow).await["status"], "pending");
}

#[actix_web::test]
async fn flows_are_capped() {
    let mock = MockUpstream::start();
    let app = spawn(&mock).await;
    let admin = app.admin_token().await;
    let mut flows = Vec::new();
    for _ in 0..MAX_PENDING_FLOWS {
        flows.push(start_pkce(&app, &admin).await.0);
    }
    let res = start(&app, &admin, json!({"method": "pkce"})).await;
    assert_eq!(res.status(), 429);
    assert_eq!(admin_error_code(res).await, "too_many_flows");
    let res = start(&app, &admin, json!({"method": "device"})).await;
    assert_eq!(res.status(), 429);
    assert_eq!(mock.device_polls(), 0);
    assert_eq!(cancel(&app, &admin, &flows[0]).await, 204);
    start_pkce(&app, &admin).await;
}

#[actix_web::test]
async fn bad_input_gets_a_clear_error() {
    let mock = MockUpstream::start();
    let app = spawn(&mock).await;
    let admin = app.admin_token().await;
    for (body, what) in [
        (json!({}), "method"),
        (json!({"method": "password"}), "method"),
        (
            json!({"method": "pkce", "proxy_url": "ftp://x"}),
            "proxy_url",
        ),
        (json!({"method": "pkce", "name": "x".repeat(201)}), "name"),
        (json!({"method": "pkce", "extra": 1}), "extra"),
    ] {
        let res = start(&app, &admin, body).await;
        assert_eq!(res.status(), 400);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(what),
            "{body}"
        );
    }
    let (flow, _) = start_pkce(&app, &admin).await;
    let res = callback(&app, &admin, &flow, "hello").await;
    assert_eq!(res.status(), 400);
    assert_eq!(admin_error_code(res).await, "invalid_request");
    let res = callback(
        &app,
        &admin,
        &flow,
        "http://localhost:1455/auth/callback?state=x",
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(flow_status(&app, &admin, &flow).await["status"], "pending");
    let unknown = Uuid::new_v4();
    let res = callback(&app, &admin, &unknown.to_string(), "code=a&state=b").await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        app.get("/admin/tokens/oauth/nope", &admin).await.status(),
        404
    );
}

#[actix_web::test]
async fn the_exchange_goes_through_the_flows_proxy() {
    let mock = MockUpstream::start();
    let app = spawn(&mock).await;
    let admin = app.admin_token().await;
    // A proxy nobody listens on: the exchange cannot reach the token endpoint.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let res = start(
        &app,
        &admin,
        json!({"method": "pkce", "proxy_url": format!("http://127.0.0.1:{port}")}),
    )
    .await;
    let started: Value = res.json().await.unwrap();
    let flow = started["flow_id"].as_str().unwrap();
    let landed = sign_in_at(started["authorize_url"].as_str().unwrap()).await;
    let res = callback(&app, &admin, flow, &landed).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "oauth_exchange_failed");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("could not reach the token endpoint"));
    assert_eq!(mock.code_exchanges(), 0);
    assert!(accounts(&app, &admin).await.is_empty());
}
