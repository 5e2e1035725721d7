//! Accounts and their tokens: registration and import of credential files, issue of access,
//! refresh and id tokens, and the JWT helpers.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::state::{Inner, MockState, TOKEN_LIFETIME_SECS};

/// The JWT claim namespace where OpenAI puts the ChatGPT account id and plan.
const AUTH_CLAIM: &str = "https://api.openai.com/auth";
/// The JWT claim namespace where OpenAI access tokens carry the e-mail.
const PROFILE_CLAIM: &str = "https://api.openai.com/profile";

/// An account's current credentials as the mock knows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockAccount {
    /// ChatGPT account id.
    pub account_id: String,
    /// E-mail carried by the id_token.
    pub email: Option<String>,
    /// Plan carried by the id_token.
    pub plan_type: String,
    /// The newest access token.
    pub access_token: String,
    /// The refresh token that is valid now.
    pub refresh_token: String,
    /// The newest id_token.
    pub id_token: String,
}

impl MockAccount {
    /// The account as a CLIProxyAPI credential file, ready to import into the gateway.
    pub fn to_cliproxy_json(&self) -> Value {
        let mut obj = json!({
            "type": "codex",
            "account_id": self.account_id,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "id_token": self.id_token,
            "last_refresh": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        let expiry = jwt_claims(&self.access_token)
            .and_then(|c| c.get("exp")?.as_i64())
            .and_then(|exp| chrono::DateTime::from_timestamp(exp, 0));
        if let Some(map) = obj.as_object_mut() {
            if let Some(email) = &self.email {
                map.insert("email".into(), Value::from(email.as_str()));
            }
            if let Some(at) = expiry {
                let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                map.insert("expired".into(), Value::from(at));
            }
        }
        obj
    }
}

impl MockState {
    /// Registers every account of parsed credential-file content (CLIProxyAPI object/array or
    /// Codex CLI `auth.json`), taking e-mail and plan from the file and its id_token; returns
    /// their ids.
    pub fn add_accounts_from_value(&self, value: &Value) -> Result<Vec<String>, String> {
        let items = match value {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        let mut inner = self.lock();
        let mut ids = Vec::new();
        for item in &items {
            let tokens = item.get("tokens").filter(|t| t.is_object()).unwrap_or(item);
            let text = |v: &Value, key: &str| v.get(key)?.as_str().map(str::to_owned);
            let id_claims = text(tokens, "id_token").and_then(|t| jwt_claims(&t));
            let auth = id_claims.as_ref().and_then(|c| c.get(AUTH_CLAIM));
            let account_id = text(tokens, "account_id")
                .or_else(|| text(item, "account_id"))
                .or_else(|| auth.and_then(|a| text(a, "chatgpt_account_id")))
                .ok_or("an entry has no account_id")?;
            let access = text(tokens, "access_token").ok_or("an entry has no access_token")?;
            let refresh = text(tokens, "refresh_token").ok_or("an entry has no refresh_token")?;
            let email =
                text(item, "email").or_else(|| id_claims.as_ref().and_then(|c| text(c, "email")));
            let plan = auth
                .and_then(|a| text(a, "chatgpt_plan_type"))
                .unwrap_or_else(|| "plus".into());
            inner.register(&account_id, &refresh, &access, email, plan);
            ids.push(account_id);
        }
        Ok(ids)
    }

    /// Creates an account with fresh tokens (e-mail `<id>@example.com`, plan `plus`).
    pub fn create_account(&self, account_id: &str) -> MockAccount {
        let mut inner = self.lock();
        let email = Some(format!("{account_id}@example.com"));
        let (access, _) = inner.issue_access_token(account_id, &email, "plus");
        let refresh = new_refresh_token();
        inner.register(account_id, &refresh, &access, email, "plus".into())
    }

    /// The account's current tokens, if it is known.
    pub fn account(&self, account_id: &str) -> Option<MockAccount> {
        self.lock().snapshot(account_id)
    }

    /// Every account with its current tokens, sorted by id.
    pub fn accounts(&self) -> Vec<MockAccount> {
        let inner = self.lock();
        let mut ids: Vec<_> = inner.accounts.keys().cloned().collect();
        ids.sort();
        ids.iter().filter_map(|id| inner.snapshot(id)).collect()
    }

    /// The refresh token that is valid now for an account.
    pub fn current_refresh_token(&self, account_id: &str) -> Option<String> {
        self.lock().accounts.get(account_id)?.refresh_token.clone()
    }
}

impl Inner {
    pub(crate) fn register(
        &mut self,
        account_id: &str,
        refresh_token: &str,
        access_token: &str,
        email: Option<String>,
        plan: String,
    ) -> MockAccount {
        self.token_seq += 1;
        let seq = self.token_seq;
        let id_token = make_id_token(account_id, &email, &plan);
        self.refresh_owner
            .insert(refresh_token.to_owned(), account_id.to_owned());
        let acc = self.account(account_id);
        acc.email = email.clone();
        acc.plan_type = plan.clone();
        acc.access_tokens.insert(access_token.to_owned(), seq);
        acc.latest_access = access_token.to_owned();
        acc.id_token = id_token.clone();
        acc.refresh_token = Some(refresh_token.to_owned());
        MockAccount {
            account_id: account_id.to_owned(),
            email,
            plan_type: plan,
            access_token: access_token.to_owned(),
            refresh_token: refresh_token.to_owned(),
            id_token,
        }
    }

    pub(crate) fn issue_access_token(
        &mut self,
        account_id: &str,
        email: &Option<String>,
        plan: &str,
    ) -> (String, u64) {
        self.token_seq += 1;
        let now = chrono::Utc::now().timestamp();
        let mut claims = json!({
            "exp": now + TOKEN_LIFETIME_SECS,
            "iat": now,
            "jti": uuid::Uuid::new_v4().to_string(),
            AUTH_CLAIM: {"chatgpt_account_id": account_id, "chatgpt_plan_type": plan},
        });
        if let (Some(email), Some(map)) = (email, claims.as_object_mut()) {
            map.insert(PROFILE_CLAIM.into(), json!({ "email": email }));
        }
        (fake_jwt(&claims), self.token_seq)
    }

    pub(crate) fn snapshot(&self, account_id: &str) -> Option<MockAccount> {
        let acc = self.accounts.get(account_id)?;
        Some(MockAccount {
            account_id: account_id.to_owned(),
            email: acc.email.clone(),
            plan_type: acc.plan_type.clone(),
            access_token: acc.latest_access.clone(),
            refresh_token: acc.refresh_token.clone()?,
            id_token: acc.id_token.clone(),
        })
    }
}

/// A new opaque refresh token.
pub(crate) fn new_refresh_token() -> String {
    format!("rt_mock_{}", uuid::Uuid::new_v4().simple())
}

/// An id_token carrying the account id, plan and e-mail, as OpenAI's does.
pub(crate) fn make_id_token(account_id: &str, email: &Option<String>, plan: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "exp": now + TOKEN_LIFETIME_SECS,
        "iat": now,
        "iss": "https://auth.openai.com",
        "aud": ["app_EMoamEEZ73f0CkXaXp7hrann"],
        AUTH_CLAIM: {
            "chatgpt_account_id": account_id,
            "chatgpt_plan_type": plan,
            "chatgpt_user_id": format!("user-{account_id}"),
        },
    });
    if let (Some(email), Some(map)) = (email, claims.as_object_mut()) {
        map.insert("email".into(), Value::from(email.as_str()));
    }
    fake_jwt(&claims)
}

/// A JWT-shaped string (header.payload.signature) with these claims and a fake signature.
pub fn fake_jwt(claims: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        b64.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64.encode(claims.to_string()),
        b64.encode(b"mock-signature"),
    )
}

/// Decodes a JWT's payload without checking anything.
pub fn jwt_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}
