//! The OAuth token endpoint: refresh-token rotation, single use as upstream, and the account's
//! `RefreshBehaviour`.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::accounts::{make_id_token, new_refresh_token};
use crate::state::{Inner, MockState, TOKEN_LIFETIME_SECS};
use crate::{openai_error, status_code};

/// What the OAuth endpoint does for one account's refresh.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum RefreshBehaviour {
    /// Rotate the tokens (or answer `refresh_token_reused` for an old refresh token).
    #[default]
    Ok,
    /// 401 `refresh_token_reused` whatever the token.
    Reused,
    /// 401 `refresh_token_expired`.
    Expired,
    /// 401 `refresh_token_invalidated`.
    Invalidated,
    /// 400 `{"error": "invalid_grant"}` (the plain OAuth shape).
    InvalidGrant,
    /// This HTTP status (5xx: transient).
    ServerError(u16),
}

/// `POST /oauth/token`.
pub(crate) async fn oauth_token(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<MockState>,
) -> HttpResponse {
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let params = parse_params(&content_type, &body);
    let (status, answer, delay) = {
        let mut inner = state.lock();
        let delay = inner.refresh_delay;
        if inner.oauth_down {
            inner.oauth_outage_calls += 1;
            let down = json!({"error": "temporarily_unavailable", "error_description": "Service unavailable"});
            return HttpResponse::ServiceUnavailable().json(down);
        }
        let (status, answer) = match &params {
            Some(params) => decide_refresh(&mut inner, params),
            None => (
                400,
                json!({"error": "invalid_request", "error_description": "Unreadable body"}),
            ),
        };
        (status, answer, delay)
    };
    if !delay.is_zero() {
        actix_web::rt::time::sleep(delay).await;
    }
    HttpResponse::build(status_code(status)).json(answer)
}

/// Form-encoded or JSON parameters, whichever the body is.
fn parse_params(content_type: &str, body: &[u8]) -> Option<HashMap<String, String>> {
    let from_json = || -> Option<HashMap<String, String>> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let obj = value.as_object()?;
        Some(
            obj.iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    (k.clone(), v)
                })
                .collect(),
        )
    };
    let from_form = || -> Option<HashMap<String, String>> {
        let text = std::str::from_utf8(body).ok()?;
        web::Query::<HashMap<String, String>>::from_query(text)
            .ok()
            .map(web::Query::into_inner)
    };
    if content_type.starts_with("application/json") {
        from_json()
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        from_form()
    } else {
        from_json().or_else(from_form)
    }
}

/// The status and body to answer.
type RefreshAnswer = (u16, Value);

fn decide_refresh(inner: &mut Inner, params: &HashMap<String, String>) -> RefreshAnswer {
    let oauth_error = |status: u16, code: &str, description: &str| -> RefreshAnswer {
        (
            status,
            json!({"error": code, "error_description": description}),
        )
    };
    let param = |key: &str| {
        params
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    if param("grant_type") == Some("authorization_code") {
        return crate::signin::exchange(inner, params);
    }
    if param("grant_type") != Some("refresh_token") {
        return oauth_error(
            400,
            "unsupported_grant_type",
            "grant_type must be refresh_token",
        );
    }
    if param("client_id").is_none() {
        return oauth_error(400, "invalid_request", "Missing client_id");
    }
    let Some(refresh_token) = param("refresh_token") else {
        return oauth_error(400, "invalid_request", "Missing refresh_token");
    };
    let Some(account_id) = inner.refresh_owner.get(refresh_token).cloned() else {
        return oauth_error(400, "invalid_grant", "Invalid refresh token");
    };
    let acc = inner.account(&account_id);
    acc.refresh_calls += 1;
    let behaviour = acc
        .refresh_queue
        .pop_front()
        .unwrap_or_else(|| acc.refresh_behaviour.clone());
    let is_current = acc.refresh_token.as_deref() == Some(refresh_token);
    let coded = |status: u16, code: &str, message: &str| -> RefreshAnswer {
        (
            status,
            openai_error(message, "invalid_request_error", None, Some(code)),
        )
    };
    let reused = "Your refresh token has already been used to generate a new access token. \
                  Please try signing in again.";
    match behaviour {
        RefreshBehaviour::Ok if is_current => {}
        RefreshBehaviour::Ok | RefreshBehaviour::Reused => {
            acc.reuse_errors += 1;
            return coded(401, "refresh_token_reused", reused);
        }
        RefreshBehaviour::Expired => {
            return coded(
                401,
                "refresh_token_expired",
                "Your refresh token has expired. Please try signing in again.",
            )
        }
        RefreshBehaviour::Invalidated => {
            return coded(
                401,
                "refresh_token_invalidated",
                "Your refresh token has been invalidated. Please try signing in again.",
            )
        }
        RefreshBehaviour::InvalidGrant => {
            return oauth_error(400, "invalid_grant", "Invalid refresh token")
        }
        RefreshBehaviour::ServerError(status) => {
            return (
                status,
                openai_error("Internal server error", "server_error", None, None),
            )
        }
    }

    // Rotate: the old refresh token stays known (so reuse is detected) but is no longer valid.
    acc.refresh_successes += 1;
    let email = acc.email.clone();
    let plan = acc.plan_type.clone();
    let (access, seq) = inner.issue_access_token(&account_id, &email, &plan);
    let refresh = new_refresh_token();
    let id_token = make_id_token(&account_id, &email, &plan);
    inner
        .refresh_owner
        .insert(refresh.clone(), account_id.clone());
    let acc = inner.account(&account_id);
    acc.access_tokens.insert(access.clone(), seq);
    acc.latest_access = access.clone();
    acc.id_token = id_token.clone();
    acc.refresh_token = Some(refresh.clone());
    (
        200,
        json!({
            "access_token": access,
            "refresh_token": refresh,
            "id_token": id_token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECS,
            "scope": "openid profile email offline_access",
        }),
    )
}
