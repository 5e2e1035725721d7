//! The model catalog: the upstream's `GET {base_url}/models?client_version=...` (CODEX.md §7),
//! fetched per plan type through an account of that plan, kept with its `ETag`, and refreshed
//! every `codex.catalog_refresh_seconds` off the request path. `/v1/models` serves it in both
//! shapes: OpenAI's list and the Codex CLI's `{"models": [ModelInfo...]}`.
//!
//! When no catalog could be fetched (no accounts yet, the endpoint fails, the refresh is off),
//! the configured `codex.models` are served as today, and in the Codex shape as `ModelInfo`
//! objects with defaults for every field the CLI requires. A plan whose fetch fails keeps its
//! last catalog. Plans are merged in name order; a slug listed by two plans is taken from the
//! first.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::actors::account_pool::AccountPoolHandle;
use crate::codex::client::{CodexClient, ModelsFetch};

/// The most models kept per plan (the upstream lists a few dozen).
const MAX_MODELS_PER_PLAN: usize = 500;

/// The most plans kept (the upstream knows about ten).
const MAX_PLANS: usize = 32;

/// Instructions given to the CLI for a configured model that no upstream catalog describes:
/// the CLI sends a model's `base_instructions` as the request's `instructions`.
const FALLBACK_INSTRUCTIONS: &str = "You are Codex, a coding agent. You and the user share the \
same workspace and collaborate to achieve the user's goals. Be concise, run commands to check \
your work, and explain what you changed.";

/// One plan's catalog as the upstream sent it.
#[derive(Debug, Clone)]
struct PlanCatalog {
    models: Vec<Value>,
    etag: Option<String>,
}

/// The shared catalog: written by the refresh task, read by `/v1/models`.
#[derive(Clone, Default)]
pub struct Catalog {
    plans: Arc<RwLock<BTreeMap<String, PlanCatalog>>>,
}

/// What `/v1/models` serves.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// `ModelInfo` objects, in the Codex shape.
    pub models: Vec<Value>,
    /// Whether they come from the upstream (else from the configuration).
    pub upstream: bool,
}

impl Served {
    /// The `ETag` of this list (quoted): it changes whenever anything in it does.
    pub fn etag(&self) -> String {
        let digest = Sha256::digest(Value::Array(self.models.clone()).to_string());
        format!("\"{}\"", hex::encode(&digest[..12]))
    }

    /// The slugs of the models the CLI would show (visibility `list`), in order.
    pub fn visible_slugs(&self) -> Vec<&str> {
        self.models
            .iter()
            .filter(|m| m.get("visibility").and_then(Value::as_str) != Some("hide"))
            .filter_map(|m| m.get("slug").and_then(Value::as_str))
            .collect()
    }
}

impl Catalog {
    /// An empty catalog: the configured models are served until a fetch succeeds.
    pub fn new() -> Self {
        Self::default()
    }

    /// The catalog to serve: the upstream's, merged over plans, else `configured`.
    pub fn served(&self, configured: &[String]) -> Served {
        let plans = match self.plans.read() {
            Ok(plans) => plans,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut models: Vec<Value> = Vec::new();
        for plan in plans.values() {
            for model in &plan.models {
                let slug = model.get("slug").and_then(Value::as_str);
                if slug.is_some_and(|s| !models.iter().any(|m| m["slug"] == s)) {
                    models.push(model.clone());
                }
            }
        }
        if !models.is_empty() {
            return Served {
                models,
                upstream: true,
            };
        }
        Served {
            models: configured
                .iter()
                .enumerate()
                .map(|(i, slug)| fallback_model_info(slug, i))
                .collect(),
            upstream: false,
        }
    }

    /// The `ETag` the upstream gave a plan's catalog.
    fn etag(&self, plan: &str) -> Option<String> {
        let plans = self.plans.read().ok()?;
        plans.get(plan).and_then(|p| p.etag.clone())
    }

    /// Keeps a plan's fresh catalog (models without a string `slug` are left out).
    fn put(&self, plan: String, models: Vec<Value>, etag: Option<String>) {
        let models: Vec<Value> = models
            .into_iter()
            .filter(|m| m.get("slug").and_then(Value::as_str).is_some())
            .take(MAX_MODELS_PER_PLAN)
            .collect();
        let mut plans = match self.plans.write() {
            Ok(plans) => plans,
            Err(poisoned) => poisoned.into_inner(),
        };
        if plans.len() >= MAX_PLANS && !plans.contains_key(&plan) {
            return;
        }
        plans.insert(plan, PlanCatalog { models, etag });
    }

    /// Fetches every plan's catalog once, through one usable account of each plan.
    pub async fn refresh(&self, client: &CodexClient, pool: &AccountPoolHandle) {
        let targets = match pool.catalog_targets().await {
            Ok(targets) => targets,
            Err(e) => {
                tracing::debug!(error = %e, "no accounts for the model catalog");
                return;
            }
        };
        for (plan, target) in targets {
            let etag = self.etag(&plan);
            let fetched = client
                .models(
                    &target.access_token,
                    &target.chatgpt_account_id,
                    target.proxy_url.as_deref(),
                    etag.as_deref(),
                )
                .await;
            match fetched {
                Ok(ModelsFetch::NotModified) => {}
                Ok(ModelsFetch::Fresh { models, etag }) => {
                    tracing::debug!(plan, models = models.len(), "model catalog fetched");
                    self.put(plan, models, etag);
                }
                Err(e) => {
                    tracing::warn!(plan, account_id = target.account_id, error = %e, "cannot fetch the model catalog; the last one (or the configured models) is served");
                }
            }
        }
    }

    /// Refreshes the catalog now and then every `every`, until the process ends; nothing when
    /// `every` is zero.
    pub fn spawn(&self, client: CodexClient, pool: AccountPoolHandle, every: Duration) {
        if every.is_zero() {
            return;
        }
        let catalog = self.clone();
        actix_web::rt::spawn(async move {
            // The first fetch waits a moment, so that the pool's accounts are loaded.
            actix_web::rt::time::sleep(Duration::from_secs(1)).await;
            loop {
                catalog.refresh(&client, &pool).await;
                actix_web::rt::time::sleep(every).await;
            }
        });
    }
}

/// A `ModelInfo` for a configured model: every field the Codex CLI requires, with defaults
/// that suit a current Codex model.
pub fn fallback_model_info(slug: &str, priority: usize) -> Value {
    let levels: Vec<Value> = [
        ("low", "Fast responses with lighter reasoning"),
        (
            "medium",
            "Balances speed and reasoning depth for everyday tasks",
        ),
        ("high", "Greater reasoning depth for complex problems"),
        ("xhigh", "Extra high reasoning depth for complex problems"),
    ]
    .iter()
    .map(|(effort, description)| json!({"effort": effort, "description": description}))
    .collect();
    json!({
        "slug": slug,
        "display_name": slug,
        "description": null,
        "default_reasoning_level": "medium",
        "supported_reasoning_levels": levels,
        "shell_type": "shell_command",
        "visibility": "list",
        "supported_in_api": true,
        "priority": priority,
        "upgrade": null,
        "base_instructions": FALLBACK_INSTRUCTIONS,
        "supports_reasoning_summaries": true,
        "support_verbosity": true,
        "default_verbosity": null,
        "apply_patch_tool_type": "freeform",
        "truncation_policy": {"mode": "tokens", "limit": 10_000},
        "supports_parallel_tool_calls": true,
        "context_window": 272_000,
        "experimental_supported_tools": [],
        "input_modalities": ["text", "image"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields the Codex CLI cannot decode a `ModelInfo` without (CODEX.md §7).
    const REQUIRED: [&str; 13] = [
        "slug",
        "display_name",
        "supported_reasoning_levels",
        "shell_type",
        "visibility",
        "supported_in_api",
        "priority",
        "base_instructions",
        "support_verbosity",
        "truncation_policy",
        "supports_parallel_tool_calls",
        "experimental_supported_tools",
        "supports_reasoning_summaries",
    ];

    #[test]
    fn configured_models_are_served_with_every_required_field() {
        let served = Catalog::new().served(&["gpt-5".into(), "gpt-5.5".into()]);
        assert!(!served.upstream);
        assert_eq!(served.visible_slugs(), vec!["gpt-5", "gpt-5.5"]);
        for model in &served.models {
            for field in REQUIRED {
                assert!(model.get(field).is_some(), "{field} missing in {model}");
            }
            assert!(model["supported_reasoning_levels"][0]["effort"].is_string());
            assert!(model["truncation_policy"]["limit"].is_i64());
        }
        assert_eq!(served.models[1]["priority"], 1);
    }

    #[test]
    fn plans_are_merged_first_plan_first_and_the_etag_follows_the_content() {
        let catalog = Catalog::new();
        let configured = ["gpt-5".to_owned()];
        let before = catalog.served(&configured).etag();
        catalog.put(
            "pro".into(),
            vec![
                json!({"slug": "a", "visibility": "list", "priority": 1}),
                json!({"slug": "hidden", "visibility": "hide"}),
            ],
            Some("\"p1\"".into()),
        );
        catalog.put(
            "plus".into(),
            vec![
                json!({"slug": "a", "visibility": "list", "priority": 9}),
                json!({"slug": "b", "visibility": "list"}),
                json!({"no": "slug"}),
            ],
            None,
        );
        let served = catalog.served(&configured);
        assert!(served.upstream);
        // "plus" sorts before "pro": its "a" wins.
        assert_eq!(served.models[0]["priority"], 9);
        assert_eq!(served.visible_slugs(), vec!["a", "b"]);
        assert_eq!(served.models.len(), 3);
        assert_ne!(served.etag(), before);
        assert_eq!(served.etag(), catalog.served(&configured).etag());
        assert_eq!(catalog.etag("pro").as_deref(), Some("\"p1\""));
        assert_eq!(catalog.etag("plus"), None);
    }
}
