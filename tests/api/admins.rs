//! Several admins: the role policy over every admin route, admin management, TOTP, the audit
//! log and CORS on `/v1`.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{
    admin_error_code, spawn_app, spawn_app_with, start, TestApp, ADMIN, ADMIN_PASSWORD,
};

/// Who may make a request, as this test expects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Need {
    Public,
    SignedIn,
    Viewer,
    Operator,
    Owner,
}

/// Every admin route with the decision of the policy. A route added to `src/http/admin`
/// without a line here fails [`every_route_has_a_decision_and_every_role_gets_it`].
const ROUTES: &[(&str, &str, Need)] = &[
    ("GET", "", Need::Public),
    ("GET", "/", Need::Public),
    ("GET", "/assets/{path:.*}", Need::Public),
    ("POST", "/login", Need::Public),
    ("POST", "/login/totp", Need::Public),
    ("POST", "/logout", Need::SignedIn),
    ("POST", "/change-password", Need::SignedIn),
    ("GET", "/profile", Need::SignedIn),
    ("GET", "/me", Need::SignedIn),
    ("POST", "/totp/setup", Need::SignedIn),
    ("POST", "/totp/enable", Need::SignedIn),
    ("POST", "/totp/disable", Need::SignedIn),
    ("GET", "/api-keys", Need::Viewer),
    ("POST", "/api-keys", Need::Operator),
    ("PATCH", "/api-keys/{id}", Need::Operator),
    ("DELETE", "/api-keys/{id}", Need::Operator),
    ("GET", "/api-keys/{id}", Need::Viewer),
    ("POST", "/playground", Need::Operator),
    ("GET", "/models", Need::Viewer),
    ("GET", "/tokens", Need::Viewer),
    ("POST", "/tokens/import", Need::Operator),
    ("GET", "/tokens/export", Need::Operator),
    ("PATCH", "/tokens/{id}", Need::Operator),
    ("DELETE", "/tokens/{id}", Need::Operator),
    ("POST", "/tokens/{id}/refresh", Need::Operator),
    ("POST", "/tokens/bulk", Need::Operator),
    ("GET", "/tokens/{id}/detail", Need::Viewer),
    ("POST", "/tokens/oauth/start", Need::Operator),
    ("POST", "/tokens/oauth/{flow_id}/callback", Need::Operator),
    ("GET", "/tokens/oauth/{flow_id}", Need::Viewer),
    ("DELETE", "/tokens/oauth/{flow_id}", Need::Operator),
    ("GET", "/stats/overview", Need::Viewer),
    ("GET", "/stats/usage", Need::Viewer),
    ("GET", "/logs", Need::Viewer),
    ("GET", "/logs/export", Need::Viewer),
    ("GET", "/settings", Need::Owner),
    ("PATCH", "/settings", Need::Owner),
    ("GET", "/system", Need::Viewer),
    ("GET", "/admins", Need::Owner),
    ("POST", "/admins", Need::Owner),
    ("PATCH", "/admins/{id}", Need::Owner),
    ("DELETE", "/admins/{id}", Need::Owner),
    ("GET", "/audit", Need::Viewer),
    ("GET", "/webhooks", Need::Owner),
    ("POST", "/webhooks", Need::Owner),
    ("PATCH", "/webhooks/{id}", Need::Owner),
    ("DELETE", "/webhooks/{id}", Need::Owner),
    ("POST", "/webhooks/{id}/test", Need::Owner),
    ("GET", "/webhooks/{id}/deliveries", Need::Owner),
];

/// The (method, path) of every route the admin modules mount, read from their source.
fn mounted_routes() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/admin");
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        // `.route("/path", web::get()...` and `web::resource("/path")...route(web::post()...`
        let method_after = |rest: &str| -> Option<String> {
            let at = rest.find("web::")?;
            let name: String = rest[at + 5..]
                .chars()
                .take_while(char::is_ascii_alphabetic)
                .collect();
            Some(name.to_uppercase())
        };
        for (i, _) in text.match_indices(".route(\"") {
            let rest = &text[i + 8..];
            let end = rest.find('"').unwrap();
            found.insert((method_after(&rest[end..]).unwrap(), rest[..end].to_string()));
        }
        for (i, _) in text.match_indices("resource(\"") {
            let rest = &text[i + 10..];
            let end = rest.find('"').unwrap();
            let after = &rest[end..];
            let route = after.find(".route(web::").unwrap();
            found.insert((
                method_after(&after[route..]).unwrap(),
                rest[..end].to_string(),
            ));
        }
    }
    found
}

/// Signs in with a fresh token.
async fn sign_in(app: &TestApp, username: &str, password: &str) -> String {
    let res = app.login_raw(username, password).await;
    assert_eq!(res.status(), 200, "sign-in of {username}");
    res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new().request(method, app.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    req.send().await.unwrap()
}

/// Creates an admin with `role` through the API, changes its one-time password and answers
/// (id, password, token).
async fn make_admin(
    app: &TestApp,
    owner: &str,
    username: &str,
    role: &str,
) -> (i64, String, String) {
    let res = app
        .post(
            "/admin/admins",
            owner,
            &json!({"username": username, "role": role}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["role"], role);
    assert_eq!(body["must_change_password"], true);
    let once = body["password"].as_str().unwrap().to_string();
    let id = body["id"].as_i64().unwrap();
    let token = sign_in(app, username, &once).await;
    // The one-time password opens nothing but the password change.
    assert_eq!(
        admin_error_code(app.get("/admin/api-keys", &token).await).await,
        "password_change_required"
    );
    let new = format!("{username}-Changed-9");
    let res = app
        .post(
            "/admin/change-password",
            &token,
            &json!({"current_password": once, "new_password": new}),
        )
        .await;
    assert_eq!(res.status(), 204);
    let token = sign_in(app, username, &new).await;
    (id, new, token)
}

#[actix_web::test]
async fn every_route_has_a_decision_and_every_role_gets_it() {
    let mounted = mounted_routes();
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| ((*m).to_string(), (*p).to_string()))
        .collect();
    let undecided: Vec<_> = mounted.difference(&listed).collect();
    assert!(
        undecided.is_empty(),
        "routes without a policy decision in this test: {undecided:?}"
    );
    let gone: Vec<_> = listed.difference(&mounted).collect();
    assert!(
        gone.is_empty(),
        "listed routes that are not mounted: {gone:?}"
    );

    let app = spawn_app().await;
    let owner = app.admin_token().await;
    let (_, _, operator) = make_admin(&app, &owner, "op", "operator").await;
    let (_, viewer_password, viewer) = make_admin(&app, &owner, "viewer", "viewer").await;
    let roles = [
        (Need::Owner, owner.clone()),
        (Need::Operator, operator),
        (Need::Viewer, viewer),
    ];
    for (method, pattern, need) in ROUTES {
        let path = format!(
            "/admin{}",
            pattern
                .replace("{path:.*}", "app.css")
                .replace("{id}", "999999")
                .replace("{flow_id}", "no-such-flow")
        );
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = (method != Method::GET).then(|| json!({}));
        let anonymous = send(&app, method.clone(), &path, None, body.as_ref()).await;
        if *need == Need::Public {
            assert_ne!(anonymous.status(), 401, "{method} {path} is public");
            continue;
        }
        assert_eq!(anonymous.status(), 401, "{method} {path} without a session");
        for (role, token) in &roles {
            // Signing out must not end the sessions the rest of the test uses: it is tried
            // with a session of its own.
            let logout = pattern.ends_with("logout");
            if logout && *role != Need::Viewer {
                continue;
            }
            let token = if logout {
                sign_in(&app, "viewer", &viewer_password).await
            } else {
                token.clone()
            };
            let res = send(&app, method.clone(), &path, Some(&token), body.as_ref()).await;
            let status = res.status();
            if role < need && *need != Need::SignedIn {
                assert_eq!(status, 403, "{role:?} {method} {path}");
                assert_eq!(admin_error_code(res).await, "forbidden");
            } else {
                let text = res.text().await.unwrap();
                assert!(
                    status != 403 && status != 401,
                    "{role:?} {method} {path}: {status} {text}"
                );
            }
        }
    }
    // Routes decided by the defaults alone: reads for viewers, writes for
    // operators, the owner's prefixes for owners.
    let viewer = sign_in(&app, "viewer", &viewer_password).await;
    let status = |res: reqwest::Response| res.status().as_u16();
    assert_eq!(
        status(
            send(
                &app,
                Method::POST,
                "/admin/tokens/bulk",
                Some(&viewer),
                Some(&json!({}))
            )
            .await
        ),
        403
    );
    assert_eq!(
        status(send(&app, Method::GET, "/admin/logs/export", Some(&viewer), None).await),
        200
    );
    assert_eq!(
        status(send(&app, Method::GET, "/admin/webhooks", Some(&viewer), None).await),
        403
    );
}

#[actix_web::test]
async fn owners_manage_admins_and_the_last_owner_stays() {
    let app = spawn_app().await;
    let owner = app.admin_token().await;
    let me: Value = app.get("/admin/me", &owner).await.json().await.unwrap();
    assert_eq!(me["role"], "owner");
    let owner_id = me["id"].as_i64().unwrap();

    // Bad input changes nothing.
    for body in [
        json!({"username": "x", "role": "king"}),
        json!({"username": "a b", "role": "viewer"}),
        json!({"username": "x", "role": "viewer", "password": "mine"}),
    ] {
        let res = app.post("/admin/admins", &owner, &body).await;
        assert_eq!(res.status(), 400, "{body}");
    }
    let res = app
        .post(
            "/admin/admins",
            &owner,
            &json!({"username": ADMIN, "role": "viewer"}),
        )
        .await;
    assert_eq!(admin_error_code(res).await, "username_taken");

    let (op_id, op_password, op) = make_admin(&app, &owner, "ops", "operator").await;
    let list: Value = app.get("/admin/admins", &owner).await.json().await.unwrap();
    assert_eq!(list["total"], 2);
    assert!(!list.to_string().contains("\"password\""), "{list}");

    // The only owner cannot be demoted, disabled or deleted.
    let patch = |id: i64, body: Value| {
        let (app, owner) = (&app, owner.clone());
        async move {
            reqwest::Client::new()
                .patch(app.url(&format!("/admin/admins/{id}")))
                .bearer_auth(owner)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    for body in [json!({"role": "viewer"}), json!({"disabled": true})] {
        assert_eq!(
            admin_error_code(patch(owner_id, body).await).await,
            "last_owner"
        );
    }
    let res = send(
        &app,
        Method::DELETE,
        &format!("/admin/admins/{owner_id}"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(admin_error_code(res).await, "last_owner");

    // A role change applies to the open session at once.
    assert_eq!(
        app.post("/admin/api-keys", &op, &json!({"name": "k"}))
            .await
            .status(),
        201
    );
    let res = patch(op_id, json!({"role": "viewer"})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.post("/admin/api-keys", &op, &json!({"name": "k2"}))
            .await
            .status(),
        403
    );

    // Disabling revokes the sessions at once and refuses the next sign-in.
    assert_eq!(patch(op_id, json!({"disabled": true})).await.status(), 200);
    assert_eq!(app.get("/admin/me", &op).await.status(), 401);
    let res = app.login_raw("ops", &op_password).await;
    assert_eq!(admin_error_code(res).await, "admin_disabled");
    assert_eq!(patch(op_id, json!({"disabled": false})).await.status(), 200);
    let op = sign_in(&app, "ops", &op_password).await;

    // A second owner may be deleted; deleting revokes its sessions at once.
    assert_eq!(patch(op_id, json!({"role": "owner"})).await.status(), 200);
    let res = send(
        &app,
        Method::DELETE,
        &format!("/admin/admins/{op_id}"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(res.status(), 204);
    assert_eq!(app.get("/admin/me", &op).await.status(), 401);
    assert_eq!(app.login_raw("ops", &op_password).await.status(), 401);
    let res = send(
        &app,
        Method::DELETE,
        &format!("/admin/admins/{op_id}"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(res.status(), 404);
}

/// The TOTP of a base32 secret at a time step.
fn code_at(secret: &str, step: u64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_string())
        .to_bytes()
        .unwrap();
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes, None, "x".into())
        .unwrap()
        .generate(step * 30)
}

fn step_now() -> u64 {
    chrono::Utc::now().timestamp() as u64 / 30
}

/// Enrols TOTP for the token's admin; answers the secret and the recovery codes.
async fn enrol(app: &TestApp, token: &str) -> (String, Vec<String>) {
    let res = app.post("/admin/totp/setup", token, &json!({})).await;
    assert_eq!(res.status(), 200);
    let setup: Value = res.json().await.unwrap();
    let secret = setup["secret"].as_str().unwrap().to_string();
    let uri = setup["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&secret),
        "{uri}"
    );
    let res = app
        .post("/admin/totp/enable", token, &json!({"code": "000000"}))
        .await;
    let wrong = code_at(&secret, step_now()) == "000000";
    if !wrong {
        assert_eq!(admin_error_code(res).await, "invalid_totp_code");
    }
    let res = app
        .post(
            "/admin/totp/enable",
            token,
            &json!({"code": code_at(&secret, step_now())}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let codes: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

async fn challenge(app: &TestApp) -> String {
    let res = app.login_raw(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get("set-cookie").is_none(),
        "no session before the code"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["totp_required"], true);
    assert!(body.get("token").is_none());
    body["challenge"].as_str().unwrap().to_string()
}

async fn answer(app: &TestApp, challenge: &str, code: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url("/admin/login/totp"))
        .json(&json!({"challenge": challenge, "code": code}))
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn totp_enrolment_sign_in_recovery_replay_and_cli_reset() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (secret, codes) = enrol(&app, &token).await;
    let me: Value = app.get("/admin/me", &token).await.json().await.unwrap();
    assert_eq!(me["totp_enabled"], true);
    let res = app.post("/admin/totp/setup", &token, &json!({})).await;
    assert_eq!(admin_error_code(res).await, "totp_already_enabled");

    // The code used to enable is refused from now on (same time step).
    let used = code_at(&secret, step_now());
    let first = challenge(&app).await;
    let res = answer(&app, &first, &used).await;
    assert_eq!(admin_error_code(res).await, "invalid_totp_code");
    // The next step's code (within the allowed drift) opens a session; replaying it fails.
    let next = code_at(&secret, step_now() + 1);
    let res = answer(&app, &first, &next).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let session = body["token"].as_str().unwrap().to_string();
    assert_eq!(app.get("/admin/me", &session).await.status(), 200);
    let res = answer(&app, &first, &next).await;
    assert_eq!(
        admin_error_code(res).await,
        "invalid_challenge",
        "a challenge is used once"
    );
    let second = challenge(&app).await;
    let res = answer(&app, &second, &next).await;
    assert_eq!(
        admin_error_code(res).await,
        "invalid_totp_code",
        "a code is used once"
    );

    // A recovery code works once, typed in any case.
    let res = answer(&app, &second, &codes[0].to_uppercase()).await;
    assert_eq!(res.status(), 200);
    let third = challenge(&app).await;
    assert_eq!(
        admin_error_code(answer(&app, &third, &codes[0]).await).await,
        "invalid_totp_code"
    );
    assert_eq!(answer(&app, &third, &codes[1]).await.status(), 200);
    let res = answer(&app, "not-a-challenge", &codes[2]).await;
    assert_eq!(admin_error_code(res).await, "invalid_challenge");

    // Disabling needs a code or the password.
    let res = app
        .post(
            "/admin/totp/disable",
            &session,
            &json!({"password": "wrong-Passw0rd"}),
        )
        .await;
    assert_eq!(res.status(), 401);
    let res = app.post("/admin/totp/disable", &session, &json!({})).await;
    assert_eq!(res.status(), 400);

    // A lost device: the operator resets it from the command line.
    let (config, dir, db) = app.stop().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gpt2api"))
        .env_remove("RUST_LOG")
        .env_remove("GPT2API_CONFIG")
        .current_dir(dir.path())
        .env("DATABASE_URL", config.database.connection_url())
        .env("GPT2API__SERVER__DATA_DIR", &config.server.data_dir)
        .args(["admin", "reset-totp", ADMIN])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app = start(config, dir, db).await;
    let res = app.login_raw(ADMIN, ADMIN_PASSWORD).await;
    let body: Value = res.json().await.unwrap();
    assert!(body["token"].is_string(), "{body}");
    assert_eq!(body["user"]["totp_enabled"], false);
}

#[actix_web::test]
async fn wrong_codes_are_locked_out_like_passwords() {
    let app = spawn_app_with(|c| {
        c.auth.login_max_failures = 3;
    })
    .await;
    let token = app.admin_token().await;
    let (_secret, codes) = enrol(&app, &token).await;
    let challenge = challenge(&app).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(answer(&app, &challenge, "123123").await.status().as_u16());
    }
    assert!(
        statuses.contains(&429),
        "wrong codes are locked out: {statuses:?}"
    );
    let res = app
        .post("/admin/totp/disable", &token, &json!({"code": codes[3]}))
        .await;
    // The lockout covers this address for every step that checks a secret.
    assert_eq!(res.status(), 429);
}

/// The audit rows, as the API lists them.
async fn audit(app: &TestApp, token: &str, query: &str) -> Value {
    let res = app.get(&format!("/admin/audit{query}"), token).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[actix_web::test]
async fn every_change_is_audited_without_secrets() {
    let app = spawn_app().await;
    assert_eq!(app.login_raw(ADMIN, "Wrong-Passw0rd").await.status(), 401);
    let owner = app.admin_token().await;
    let res = app
        .post("/admin/api-keys", &owner, &json!({"name": "audited"}))
        .await;
    let key: Value = res.json().await.unwrap();
    let key_secret = key["key"].as_str().unwrap().to_string();
    let key_id = key["id"].as_i64().unwrap();
    let res = reqwest::Client::new()
        .patch(app.url(&format!("/admin/api-keys/{key_id}")))
        .bearer_auth(&owner)
        .json(&json!({"name": "renamed", "rpm_limit": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = send(
        &app,
        Method::DELETE,
        &format!("/admin/api-keys/{key_id}"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(res.status(), 204);
    let res = reqwest::Client::new()
        .patch(app.url("/admin/settings"))
        .bearer_auth(&owner)
        .json(&json!({"max_retries": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, viewer_password, viewer) = make_admin(&app, &owner, "auditor", "viewer").await;
    let (secret, codes) = enrol(&app, &owner).await;
    let res = app
        .post(
            "/admin/totp/disable",
            &owner,
            &json!({"password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 204);
    let import = json!({"type": "codex", "email": "a@example.com", "account_id": "acc-audit",
        "access_token": "at-secret-audit", "refresh_token": "rt-secret-audit", "id_token": "x.y.z"});
    let res = app.post("/admin/tokens/import", &owner, &import).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(
        send(&app, Method::POST, "/admin/logout", Some(&owner), None)
            .await
            .status(),
        204
    );

    // Every role reads the log.
    let all = audit(&app, &viewer, "?page_size=200").await;
    let rows = all["data"].as_array().unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    for expected in [
        "login.failure",
        "login.success",
        "api_key.create",
        "api_key.update",
        "api_key.delete",
        "settings.update",
        "admin.create",
        "password.change",
        "totp.setup",
        "totp.enable",
        "totp.disable",
        "account.import",
        "logout",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let created = rows
        .iter()
        .find(|r| r["action"] == "api_key.create")
        .unwrap();
    assert_eq!(created["actor"], ADMIN);
    assert_eq!(created["role"], "owner");
    assert_eq!(created["target"], format!("api-keys/{key_id}"));
    assert_eq!(created["client_ip"], "127.0.0.1");
    assert_eq!(created["summary"]["name"], "audited");
    let updated = rows
        .iter()
        .find(|r| r["action"] == "api_key.update")
        .unwrap();
    assert_eq!(updated["summary"]["rpm_limit"], 5);
    let failure = rows
        .iter()
        .find(|r| r["action"] == "login.failure")
        .unwrap();
    assert_eq!(failure["actor"], ADMIN);
    assert_eq!(failure["summary"]["reason"], "invalid_credentials");
    let settings = rows
        .iter()
        .find(|r| r["action"] == "settings.update")
        .unwrap();
    assert_eq!(settings["summary"]["max_retries"]["to"], 2);

    // No secret anywhere.
    let text = all.to_string();
    for secret in [
        key_secret.as_str(),
        ADMIN_PASSWORD,
        "Wrong-Passw0rd",
        viewer_password.as_str(),
        secret.as_str(),
        codes[0].as_str(),
        "at-secret-audit",
        "rt-secret-audit",
    ] {
        assert!(!text.contains(secret), "a secret is in the audit log");
    }

    // Filters and paging.
    let keys = audit(&app, &viewer, "?action=api_key.*").await;
    assert_eq!(keys["total"], 3);
    let by_target = audit(&app, &viewer, &format!("?target=api-keys/{key_id}")).await;
    assert_eq!(by_target["total"], 3);
    let by_actor = audit(&app, &viewer, "?actor=auditor&page_size=1").await;
    assert!(by_actor["total"].as_u64().unwrap() >= 2);
    assert_eq!(by_actor["data"].as_array().unwrap().len(), 1);
    let future = audit(&app, &viewer, "?since=2999-01-01T00:00:00Z").await;
    assert_eq!(future["total"], 0);
    let res = app.get("/admin/audit?page_size=500", &viewer).await;
    assert_eq!(res.status(), 400);
    let res = app.get("/admin/audit?since=yesterday", &viewer).await;
    assert_eq!(res.status(), 400);
}

#[actix_web::test]
async fn v1_answers_cors_for_browsers_and_admin_does_not() {
    let app = spawn_app().await;
    let preflight = |path: &'static str, origin: &'static str| {
        let url = app.url(path);
        async move {
            reqwest::Client::new()
                .request(Method::OPTIONS, url)
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization,content-type,session_id,x-stainless-os",
                )
                .send()
                .await
                .unwrap()
        }
    };
    let res = preflight("/v1/chat/completions", "http://chat.example").await;
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in ["authorization", "content-type", "session_id"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert!(h.get("access-control-allow-credentials").is_none());

    let res = reqwest::Client::new()
        .get(app.url("/v1/models"))
        .header("origin", "http://chat.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in [
        "retry-after",
        "x-request-id",
        "x-ratelimit-remaining-requests",
    ] {
        assert!(exposed.contains(name), "{exposed}");
    }

    let res = preflight("/admin/login", "http://chat.example").await;
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let res = reqwest::Client::new()
        .post(app.url("/admin/login"))
        .header("origin", "http://chat.example")
        .json(&json!({"username": ADMIN, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());

    // A list of origins: only those.
    let app = spawn_app_with(|c| {
        c.server.cors_allowed_origins = vec!["http://good.example".into()];
    })
    .await;
    let url = app.url("/v1/models");
    let get = |origin: &'static str| {
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .get(url)
                .header("origin", origin)
                .send()
                .await
                .unwrap()
        }
    };
    let res = get("http://good.example").await;
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://good.example"
    );
    let res = get("http://evil.example").await;
    assert!(res.headers().get("access-control-allow-origin").is_none());
}
