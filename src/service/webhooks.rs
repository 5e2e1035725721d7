//! Webhooks: the typed [`WebhookChanges`] a create or update may make, and [`WebhookService`],
//! which owns their queries, seals their secrets and lists their deliveries. Sending is the
//! notifier's ([`crate::actors::webhooks`]).

use std::sync::Arc;

use chrono::Utc;
use rand::distributions::{Alphanumeric, DistString};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde::{Deserialize, Deserializer};
use serde_json::json;

use super::{fetch_page, invalid, read, set_if, Page, PageRequest};
use crate::actors::webhooks::{self, EventKind, WebhookHandle};
use crate::crypto::Cipher;
use crate::db::{webhook, webhook_delivery};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// The longest target URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// What a create or `PATCH /admin/webhooks/{id}` sets. An absent field stays as it is. Each
/// field is validated as it is read, and a wrong one is named in the error (never with the
/// value: a URL or a secret may hold credentials).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookChanges {
    /// The display name: non-empty after trimming, at most 100 characters.
    #[serde(default, deserialize_with = "name")]
    pub name: Option<String>,
    /// The target: an absolute `http` or `https` URL of at most 2048 characters.
    #[serde(default, deserialize_with = "target")]
    pub url: Option<String>,
    /// Whether events are sent to it.
    #[serde(default, deserialize_with = "is_enabled")]
    pub is_enabled: Option<bool>,
    /// The events it receives: a non-empty list of known event names.
    #[serde(default, deserialize_with = "events")]
    pub events: Option<Vec<String>>,
    /// The signing secret: 16 to 256 printable characters; generated when a create leaves it
    /// out.
    #[serde(default, deserialize_with = "secret")]
    pub secret: Option<String>,
}

fn name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    const WHY: &str = "must be a non-empty string of at most 100 characters";
    let name: String = read(d, "name", WHY)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(invalid("name", WHY));
    }
    Ok(Some(name.to_string()))
}

fn target<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    const WHY: &str = "must be an absolute http or https URL of at most 2048 characters";
    let text: String = read(d, "url", WHY)?;
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_URL_LEN {
        return Err(invalid("url", WHY));
    }
    let url = url::Url::parse(text).map_err(|_| invalid("url", WHY))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("url", WHY));
    }
    Ok(Some(url.to_string()))
}

fn is_enabled<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    read(d, "is_enabled", "must be true or false").map(Some)
}

fn events<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let why = format!(
        "must be a non-empty list of: {}",
        EventKind::SUBSCRIBABLE.map(EventKind::as_str).join(", ")
    );
    let names: Vec<String> = read(d, "events", &why)?;
    if names.is_empty() || names.iter().any(|n| EventKind::parse(n).is_none()) {
        return Err(invalid("events", &why));
    }
    // Stored in the canonical order, each once.
    let events = EventKind::SUBSCRIBABLE
        .into_iter()
        .map(EventKind::as_str)
        .filter(|e| names.iter().any(|n| n == e))
        .map(str::to_string)
        .collect();
    Ok(Some(events))
}

fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    const WHY: &str = "must be 16 to 256 printable ASCII characters without spaces";
    let secret: String = read(d, "secret", WHY)?;
    if !(16..=256).contains(&secret.len()) || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid("secret", WHY));
    }
    Ok(Some(secret))
}

/// A webhook just created, with its secret: the only time the secret is shown.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub row: webhook::Model,
    pub secret: String,
}

/// The subscribed events of a row.
pub fn events_of(row: &webhook::Model) -> Vec<String> {
    serde_json::from_str(&row.events).unwrap_or_default()
}

/// The URL with any user name and password replaced by `***`, for display.
pub fn masked_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("***");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => String::new(),
    }
}

/// Queries and changes webhooks and reads their deliveries.
#[derive(Clone)]
pub struct WebhookService {
    db: DatabaseConnection,
    cipher: Arc<Cipher>,
    notifier: WebhookHandle,
}

impl WebhookService {
    /// The service over the shared state.
    pub fn new(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            cipher: state.cipher.clone(),
            notifier: state.webhooks.clone(),
        }
    }

    /// A page of the webhooks, oldest first.
    pub async fn list(&self, at: PageRequest) -> AppResult<Page<webhook::Model>> {
        let select = webhook::Entity::find().order_by_asc(webhook::Column::Id);
        fetch_page(select, &self.db, at).await
    }

    async fn find(&self, id: i32) -> AppResult<webhook::Model> {
        webhook::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no webhook with id {id}")))
    }

    /// Creates a webhook; `name`, `url` and `events` are required, the secret is generated
    /// when not given.
    pub async fn create(&self, changes: WebhookChanges) -> AppResult<NewWebhook> {
        for (field, missing) in [
            ("name", changes.name.is_none()),
            ("url", changes.url.is_none()),
            ("events", changes.events.is_none()),
        ] {
            if missing {
                return Err(AppError::invalid_request(format!("`{field}` is required")));
            }
        }
        let secret = changes.secret.clone().unwrap_or_else(|| {
            format!(
                "whsec_{}",
                Alphanumeric.sample_string(&mut rand::rngs::OsRng, 32)
            )
        });
        let now = Utc::now();
        let mut model = webhook::ActiveModel {
            is_enabled: Set(true),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        self.apply(&mut model, changes);
        model.secret = Set(self.cipher.seal_text(&secret));
        let row = model.insert(&self.db).await?;
        Ok(NewWebhook { row, secret })
    }

    fn apply(&self, model: &mut webhook::ActiveModel, changes: WebhookChanges) {
        set_if(&mut model.name, changes.name);
        set_if(&mut model.url, changes.url);
        set_if(&mut model.is_enabled, changes.is_enabled);
        set_if(
            &mut model.events,
            changes.events.map(|e| json!(e).to_string()),
        );
        set_if(
            &mut model.secret,
            changes.secret.map(|s| self.cipher.seal_text(&s)),
        );
    }

    /// Changes a webhook (a new secret replaces the old one at once).
    pub async fn update(&self, id: i32, changes: WebhookChanges) -> AppResult<webhook::Model> {
        let mut model: webhook::ActiveModel = self.find(id).await?.into();
        self.apply(&mut model, changes);
        model.updated_at = Set(Utc::now());
        Ok(model.update(&self.db).await?)
    }

    /// Deletes a webhook and its deliveries.
    pub async fn delete(&self, id: i32) -> AppResult<()> {
        self.find(id).await?;
        webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::WebhookId.eq(id))
            .exec(&self.db)
            .await?;
        webhook::Entity::delete_by_id(id).exec(&self.db).await?;
        Ok(())
    }

    /// Stores a `webhook.test` delivery to this webhook (enabled or not) and has the notifier
    /// send it now.
    pub async fn test(&self, id: i32) -> AppResult<webhook_delivery::Model> {
        let hook = self.find(id).await?;
        let (event_id, body) = webhooks::envelope(
            EventKind::Test,
            &json!({"webhook_id": hook.id, "name": hook.name}),
            Utc::now(),
        );
        let row = webhooks::enqueue(&self.db, hook.id, &event_id, EventKind::Test, &body).await?;
        self.notifier.kick();
        Ok(row)
    }

    /// A page of a webhook's deliveries, newest first, optionally of one status.
    pub async fn deliveries(
        &self,
        id: i32,
        status: Option<&str>,
        at: PageRequest,
    ) -> AppResult<Page<webhook_delivery::Model>> {
        self.find(id).await?;
        let mut select = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::WebhookId.eq(id))
            .order_by_desc(webhook_delivery::Column::Id);
        if let Some(status) = status {
            if ![webhooks::PENDING, webhooks::DELIVERED, webhooks::FAILED].contains(&status) {
                return Err(AppError::invalid_request(
                    "`status` must be pending, delivered or failed",
                ));
            }
            select = select.filter(webhook_delivery::Column::Status.eq(status));
        }
        fetch_page(select, &self.db, at).await
    }
}
