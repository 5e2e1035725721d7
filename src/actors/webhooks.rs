//! Webhook notifications: the events the gateway tells operators of, and the notifier actor
//! that delivers them.
//!
//! Producers (the refresh scheduler, the account pool, the key cache) hold a
//! [`WebhookHandle`] and call [`WebhookHandle::emit`]: a `try_send` of a small [`Event`] on a
//! bounded mailbox; a full mailbox drops the event and counts it. Nothing waits for a delivery.
//!
//! The notifier first claims the event in the database (`webhook_claims`: one row per event and
//! subject, held for `dedup_window_seconds`), so that the same event of the same account or key
//! is sent once per window even when several instances see it. It then writes one pending
//! delivery per enabled webhook subscribed to the event, and sends them. Deliveries are rows
//! first: a restart resumes the pending ones, and every instance polls for due ones, claiming
//! each by moving its `next_attempt_at` forward (only one instance wins the update).
//!
//! A delivery is a `POST` of `{"id","event","created_at","data"}` signed with the webhook's
//! secret: `x-gpt2api-signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. A 2xx answer
//! delivers it; anything else is retried with exponential back-off until
//! `retry_for_seconds` after the event, then given up. At most `max_concurrency` calls are in
//! flight, each with `timeout_seconds`, and redirects are not followed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sea_orm::sea_query::{Alias, Expr, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::config::WebhooksConfig;
use crate::crypto::Cipher;
use crate::db::{webhook, webhook_delivery};

/// The events a webhook may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// An account's refresh token was refused: it must sign in again.
    NeedsRelogin,
    /// An account's refresh failed `refresh_failures` times in a row.
    RefreshFailed,
    /// One of an account's usage windows reached `limit_near_percent`.
    LimitNear,
    /// No account can serve.
    PoolExhausted,
    /// An account can serve again after the pool was exhausted.
    PoolRecovered,
    /// An API key hit one of its limits.
    KeyLimitReached,
    /// The console's "send a test" button (never subscribed to, never deduplicated).
    Test,
}

impl EventKind {
    /// Every event a webhook may subscribe to.
    pub const SUBSCRIBABLE: [EventKind; 6] = [
        EventKind::NeedsRelogin,
        EventKind::RefreshFailed,
        EventKind::LimitNear,
        EventKind::PoolExhausted,
        EventKind::PoolRecovered,
        EventKind::KeyLimitReached,
    ];

    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::NeedsRelogin => "account.needs_relogin",
            EventKind::RefreshFailed => "account.refresh_failed",
            EventKind::LimitNear => "account.limit_near",
            EventKind::PoolExhausted => "pool.exhausted",
            EventKind::PoolRecovered => "pool.recovered",
            EventKind::KeyLimitReached => "key.limit_reached",
            EventKind::Test => "webhook.test",
        }
    }

    /// The subscribable event of this name.
    pub fn parse(name: &str) -> Option<EventKind> {
        Self::SUBSCRIBABLE.into_iter().find(|k| k.as_str() == name)
    }
}

/// What an event is about, for deduplication: the same event of the same subject is sent once
/// per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    Account(i32),
    Key(i32),
    Pool,
}

impl Subject {
    fn key(self) -> String {
        match self {
            Subject::Account(id) => format!("account:{id}"),
            Subject::Key(id) => format!("key:{id}"),
            Subject::Pool => "pool".into(),
        }
    }
}

/// One event, as a producer hands it over.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Event {
    pub kind: EventKind,
    pub subject: Subject,
    /// The event's `data` object.
    pub data: Value,
}

/// Looks for deliveries due now.
#[derive(Message)]
#[rtype(result = "()")]
struct Poll;

#[derive(Message)]
#[rtype(result = "()")]
struct Done;

/// Stops the notifier (at shutdown): calls in flight are dropped and stay pending in the
/// database, for the next start or another instance.
#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

/// The status of a delivery.
pub const PENDING: &str = "pending";
/// Sent, answered 2xx.
pub const DELIVERED: &str = "delivered";
/// Given up after `retry_for_seconds`.
pub const FAILED: &str = "failed";

/// The signature header's value for `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        // HMAC takes keys of any length; this branch is never taken.
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The body of an event: `{"id","event","created_at","data"}`.
pub fn envelope(kind: EventKind, data: &Value, at: DateTime<Utc>) -> (String, String) {
    let id = format!("evt_{}", uuid::Uuid::new_v4().simple());
    let body = json!({
        "id": id,
        "event": kind.as_str(),
        "created_at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "data": data,
    });
    (id, body.to_string())
}

/// Stores a pending delivery of `body` to one webhook.
pub async fn enqueue(
    db: &DatabaseConnection,
    webhook_id: i32,
    event_id: &str,
    kind: EventKind,
    body: &str,
) -> Result<webhook_delivery::Model, sea_orm::DbErr> {
    let now = Utc::now();
    webhook_delivery::ActiveModel {
        webhook_id: Set(webhook_id),
        event_id: Set(event_id.to_string()),
        event: Set(kind.as_str().to_string()),
        payload: Set(body.to_string()),
        status: Set(PENDING.into()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// The notifier actor: records events as deliveries and sends them.
pub struct Notifier {
    db: DatabaseConnection,
    cipher: Arc<Cipher>,
    http: reqwest::Client,
    config: WebhooksConfig,
    in_flight: usize,
    /// A poll's query is under way.
    polling: bool,
    /// When the retention job last ran.
    cleaned_at: Option<std::time::Instant>,
    /// Events being recorded (claim and rows) at the moment.
    recording: usize,
    /// Events this instance claimed, and when: repeats within the window are dropped without
    /// asking the database. At most [`MAX_RECENT`] entries.
    recent: HashMap<(EventKind, Subject), std::time::Instant>,
    /// Events dropped: a full mailbox (counted by the handle) or too many being recorded.
    dropped: Arc<AtomicU64>,
}

/// Events recorded at once at most; more are dropped (and counted).
const MAX_RECORDING: usize = 64;
/// Recently claimed events remembered at most.
const MAX_RECENT: usize = 10_000;

impl Notifier {
    /// A notifier over `db`, opening the webhooks' secrets with `cipher`.
    pub fn new(
        db: DatabaseConnection,
        cipher: Arc<Cipher>,
        config: WebhooksConfig,
    ) -> Result<Self, reqwest::Error> {
        let timeout = Duration::from_secs(config.timeout_seconds.max(1));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("gpt2api-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            db,
            cipher,
            http,
            config,
            in_flight: 0,
            polling: false,
            cleaned_at: None,
            recording: 0,
            recent: HashMap::new(),
            dropped: Arc::default(),
        })
    }

    /// Claims, then records the event as deliveries (none when another instance, or this one,
    /// sent it within the window).
    async fn record(
        db: DatabaseConnection,
        dedup_window: Duration,
        event: Event,
    ) -> Result<usize, sea_orm::DbErr> {
        let now = Utc::now();
        if event.kind != EventKind::Test
            && !claim(&db, event.kind, event.subject, now, dedup_window).await?
        {
            tracing::debug!(
                event = event.kind.as_str(),
                "event already sent within the dedup window"
            );
            return Ok(0);
        }
        let hooks = webhook::Entity::find()
            .filter(webhook::Column::IsEnabled.eq(true))
            .all(&db)
            .await?;
        let name = event.kind.as_str();
        let subscribed: Vec<_> = hooks
            .into_iter()
            .filter(|h| {
                serde_json::from_str::<Vec<String>>(&h.events)
                    .is_ok_and(|events| events.iter().any(|e| e == name))
            })
            .collect();
        if subscribed.is_empty() {
            return Ok(0);
        }
        let (event_id, body) = envelope(event.kind, &event.data, now);
        for hook in &subscribed {
            enqueue(&db, hook.id, &event_id, event.kind, &body).await?;
        }
        Ok(subscribed.len())
    }

    fn retention_due(&mut self) -> bool {
        let every = Duration::from_hours(1);
        let due = self.cleaned_at.is_none_or(|at| at.elapsed() >= every);
        if due {
            self.cleaned_at = Some(std::time::Instant::now());
        }
        due
    }
}

/// Claims an event of a subject for the dedup window: true when this caller may send it.
async fn claim(
    db: &DatabaseConnection,
    kind: EventKind,
    subject: Subject,
    now: DateTime<Utc>,
    window: Duration,
) -> Result<bool, sea_orm::DbErr> {
    let table = Alias::new("webhook_claims");
    let key_col = Alias::new("dedup_key");
    let expires_col = Alias::new("expires_at");
    let until = now + chrono::Duration::from_std(window).unwrap_or_default();
    let mut stmt = Query::insert();
    stmt.into_table(table.clone())
        .columns([key_col.clone(), expires_col.clone()])
        .values([
            format!("{}:{}", kind.as_str(), subject.key()).into(),
            until.into(),
        ])
        .map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?
        .on_conflict(
            OnConflict::column(key_col)
                .update_column(expires_col.clone())
                .action_and_where(Expr::col((table, expires_col)).lte(now))
                .to_owned(),
        );
    let backend = db.get_database_backend();
    let result = db.execute(backend.build(&stmt)).await?;
    Ok(result.rows_affected() == 1)
}

/// Deletes deliveries older than the retention and claims whose window ended.
async fn clean(db: &DatabaseConnection, retention_days: u32) -> Result<u64, sea_orm::DbErr> {
    let now = Utc::now();
    let before = now - chrono::Duration::days(i64::from(retention_days.max(1)));
    let deleted = webhook_delivery::Entity::delete_many()
        .filter(webhook_delivery::Column::CreatedAt.lt(before))
        .exec(db)
        .await?
        .rows_affected;
    let stmt = Query::delete()
        .from_table(Alias::new("webhook_claims"))
        .and_where(Expr::col(Alias::new("expires_at")).lt(now))
        .to_owned();
    db.execute(db.get_database_backend().build(&stmt)).await?;
    Ok(deleted)
}

/// Up to `max` due deliveries, each claimed for this instance by moving its next attempt past
/// the time one call may take.
async fn claim_due(
    db: &DatabaseConnection,
    max: usize,
    hold: Duration,
) -> Result<Vec<webhook_delivery::Model>, sea_orm::DbErr> {
    let now = Utc::now();
    let rows = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Status.eq(PENDING))
        .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
        .order_by_asc(webhook_delivery::Column::NextAttemptAt)
        .limit(max as u64)
        .all(db)
        .await?;
    let until = now + chrono::Duration::from_std(hold).unwrap_or_default();
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let won = webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(until))
            .filter(webhook_delivery::Column::Id.eq(row.id))
            .filter(webhook_delivery::Column::Status.eq(PENDING))
            .filter(webhook_delivery::Column::NextAttemptAt.eq(row.next_attempt_at))
            .exec(db)
            .await?
            .rows_affected
            == 1;
        if won {
            claimed.push(row);
        }
    }
    Ok(claimed)
}

/// What one call came to: the HTTP status, or why there was none.
struct Attempt {
    status: Option<u16>,
    error: Option<String>,
}

impl Attempt {
    fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Sends one delivery and stores its outcome.
async fn deliver(
    db: DatabaseConnection,
    cipher: Arc<Cipher>,
    http: reqwest::Client,
    config: WebhooksConfig,
    row: webhook_delivery::Model,
) {
    let hook = match webhook::Entity::find_by_id(row.webhook_id).one(&db).await {
        Ok(Some(hook)) => hook,
        // Deleted meanwhile: its deliveries went with it.
        Ok(None) => return,
        Err(e) => {
            tracing::error!(delivery_id = row.id, error = %e, "cannot read the webhook of a delivery");
            return;
        }
    };
    let attempt = match cipher.open_text(&hook.secret) {
        Ok(secret) => send(&http, &hook.url, &secret, &row).await,
        Err(_) => Attempt {
            status: None,
            error: Some("the webhook's secret cannot be decrypted with the configured keys".into()),
        },
    };
    let now = Utc::now();
    let attempts = row.attempts + 1;
    let mut update = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Attempts, Expr::value(attempts))
        .col_expr(
            webhook_delivery::Column::LastStatusCode,
            Expr::value(attempt.status.map(i32::from)),
        )
        .col_expr(
            webhook_delivery::Column::LastError,
            Expr::value(attempt.error.clone()),
        )
        .col_expr(webhook_delivery::Column::UpdatedAt, Expr::value(now));
    if attempt.delivered() {
        update = update
            .col_expr(webhook_delivery::Column::Status, Expr::value(DELIVERED))
            .col_expr(webhook_delivery::Column::DeliveredAt, Expr::value(now));
        tracing::info!(
            webhook_id = hook.id,
            delivery_id = row.id,
            event = %row.event,
            attempts,
            "webhook delivered"
        );
    } else {
        let wait = backoff(config.retry_initial_seconds, attempts);
        let give_up_at = row.created_at
            + chrono::Duration::seconds(config.retry_for_seconds.min(i64::MAX as u64) as i64);
        if now + wait > give_up_at {
            update = update.col_expr(webhook_delivery::Column::Status, Expr::value(FAILED));
            tracing::warn!(
                webhook_id = hook.id,
                delivery_id = row.id,
                event = %row.event,
                attempts,
                status = ?attempt.status,
                error = ?attempt.error,
                "webhook delivery given up"
            );
        } else {
            update = update.col_expr(
                webhook_delivery::Column::NextAttemptAt,
                Expr::value(now + wait),
            );
            tracing::debug!(
                webhook_id = hook.id,
                delivery_id = row.id,
                attempts,
                status = ?attempt.status,
                "webhook delivery failed; retrying later"
            );
        }
    }
    if let Err(e) = update
        .filter(webhook_delivery::Column::Id.eq(row.id))
        .exec(&db)
        .await
    {
        tracing::error!(delivery_id = row.id, error = %e, "cannot store a webhook delivery's outcome");
    }
}

/// The wait before the next attempt after `attempts` failed ones: the initial wait, doubled
/// each time, at most an hour.
fn backoff(initial_seconds: u64, attempts: i32) -> chrono::Duration {
    let factor = 1u64 << attempts.saturating_sub(1).clamp(0, 16);
    chrono::Duration::seconds(initial_seconds.max(1).saturating_mul(factor).min(3600) as i64)
}

/// One signed `POST`. Errors name the kind of failure, never the URL (it may hold credentials).
async fn send(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    row: &webhook_delivery::Model,
) -> Attempt {
    let timestamp = Utc::now().timestamp();
    let result = http
        .post(url)
        .header("content-type", "application/json")
        .header("x-gpt2api-event", row.event.as_str())
        .header("x-gpt2api-delivery", row.event_id.as_str())
        .header("x-gpt2api-timestamp", timestamp.to_string())
        .header(
            "x-gpt2api-signature",
            signature(secret, timestamp, &row.payload),
        )
        .body(row.payload.clone())
        .send()
        .await;
    match result {
        Ok(res) => {
            let status = res.status();
            Attempt {
                status: Some(status.as_u16()),
                error: (!status.is_success()).then(|| format!("the receiver answered {status}")),
            }
        }
        Err(e) => Attempt {
            status: None,
            error: Some(describe(&e)),
        },
    }
}

/// A transport error in words, without its URL.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the receiver did not answer in time".into()
    } else if e.is_connect() {
        "cannot connect to the receiver".into()
    } else if e.is_redirect() {
        "the receiver answered a redirect (not followed)".into()
    } else {
        "the request to the receiver failed".into()
    }
}

impl Actor for Notifier {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.config.mailbox_capacity.max(1));
        let every = Duration::from_millis(self.config.poll_interval_ms.max(10));
        ctx.notify(Poll);
        ctx.run_interval(every, |_, ctx| ctx.notify(Poll));
    }
}

impl Handler<Event> for Notifier {
    type Result = ();

    fn handle(&mut self, event: Event, ctx: &mut Self::Context) {
        let window = Duration::from_secs(self.config.dedup_window_seconds);
        let kind = event.kind;
        // A repeat this instance already claimed: no need to ask the database.
        let key = (kind, event.subject);
        if kind != EventKind::Test {
            if self
                .recent
                .get(&key)
                .is_some_and(|at| at.elapsed() < window)
            {
                return;
            }
            if self.recent.len() >= MAX_RECENT {
                self.recent.retain(|_, at| at.elapsed() < window);
                if self.recent.len() >= MAX_RECENT {
                    self.recent.clear();
                }
            }
            self.recent.insert(key, std::time::Instant::now());
        }
        if self.recording >= MAX_RECORDING {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                event = kind.as_str(),
                dropped,
                "too many webhook events at once: event dropped"
            );
            return;
        }
        self.recording += 1;
        let fut = on_runtime(Self::record(self.db.clone(), window, event));
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            act.recording -= 1;
            match result {
                None | Some(Ok(0)) => {}
                Some(Ok(_)) => ctx.notify(Poll),
                Some(Err(e)) => {
                    tracing::error!(event = kind.as_str(), error = %e, "cannot record a webhook event");
                }
            }
        }));
    }
}

impl Handler<Poll> for Notifier {
    type Result = ();

    fn handle(&mut self, _: Poll, ctx: &mut Self::Context) {
        if self.retention_due() {
            let db = self.db.clone();
            let days = self.config.retention_days;
            ctx.spawn(
                async move {
                    match on_runtime(async move { clean(&db, days).await })
                        .await
                        .unwrap_or(Ok(0))
                    {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(deleted = n, "old webhook deliveries deleted"),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot delete old webhook deliveries");
                        }
                    }
                }
                .into_actor(self),
            );
        }
        let free = self.config.max_concurrency.saturating_sub(self.in_flight);
        if free == 0 || self.polling {
            return;
        }
        self.polling = true;
        let db = self.db.clone();
        // A claimed delivery is someone else's to retry only once its call surely ended.
        let hold = Duration::from_secs(self.config.timeout_seconds.max(1) + 30);
        let due = on_runtime(async move { claim_due(&db, free, hold).await });
        ctx.spawn(due.into_actor(self).map(|due, act, ctx| {
            act.polling = false;
            let rows = match due {
                None => return,
                Some(Ok(rows)) => rows,
                Some(Err(e)) => {
                    tracing::error!(error = %e, "cannot look for webhook deliveries due");
                    return;
                }
            };
            for row in rows {
                act.in_flight += 1;
                let job = on_runtime(deliver(
                    act.db.clone(),
                    act.cipher.clone(),
                    act.http.clone(),
                    act.config.clone(),
                    row,
                ));
                ctx.spawn(
                    async move {
                        job.await;
                    }
                    .into_actor(act)
                    .map(|(), _, ctx| ctx.notify(Done)),
                );
            }
        }));
    }
}

impl Handler<Stop> for Notifier {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Done> for Notifier {
    type Result = ();

    fn handle(&mut self, _: Done, ctx: &mut Self::Context) {
        self.in_flight = self.in_flight.saturating_sub(1);
        // More may be waiting for a free slot.
        ctx.notify(Poll);
    }
}

/// Runs the notifier's database and delivery work as a task of the runtime rather than of the
/// actor's context: work cut short at shutdown is then dropped inside the runtime, where a
/// database connection it holds can still go back to its pool. `None` when the task did not
/// finish (shutdown).
async fn on_runtime<F>(work: F) -> Option<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(work).await.ok()
}

/// The producers' way to the notifier. A handle without a notifier (unit tests, tools) drops
/// every event.
#[derive(Clone, Default)]
pub struct WebhookHandle {
    addr: Option<Addr<Notifier>>,
    dropped: Arc<AtomicU64>,
    /// `account.limit_near` fires at this percent of a usage window.
    pub limit_near_percent: f64,
    /// `account.refresh_failed` fires after this many failures in a row.
    pub refresh_failures: u32,
}

impl WebhookHandle {
    /// Starts the notifier.
    pub fn start(notifier: Notifier) -> Self {
        let limit_near_percent = notifier.config.limit_near_percent;
        let refresh_failures = notifier.config.refresh_failures.max(1);
        let dropped = notifier.dropped.clone();
        Self {
            addr: Some(notifier.start()),
            dropped,
            limit_near_percent,
            refresh_failures,
        }
    }

    /// Hands an event to the notifier without waiting; a full mailbox drops it (counted).
    pub fn emit(&self, kind: EventKind, subject: Subject, data: Value) {
        let Some(addr) = &self.addr else {
            return;
        };
        if addr
            .try_send(Event {
                kind,
                subject,
                data,
            })
            .is_err()
        {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                event = kind.as_str(),
                dropped,
                "webhook notifier mailbox full: event dropped"
            );
        }
    }

    /// Asks the notifier to look for due deliveries now (after a test delivery was stored).
    pub fn kick(&self) {
        if let Some(addr) = &self.addr {
            let _ = addr.try_send(Poll);
        }
    }

    /// Stops sending (at shutdown); what is pending stays in the database.
    pub fn stop(&self) {
        if let Some(addr) = &self.addr {
            addr.do_send(Stop);
        }
    }

    /// Events dropped on a full mailbox since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether the notifier is running.
    pub fn connected(&self) -> bool {
        self.addr.as_ref().is_some_and(Addr::connected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Reference value computed with `printf '1700000000.{}' | openssl dgst -sha256 -hmac s3cret`.
        let header = signature("s3cret", 1_700_000_000, "{}");
        assert_eq!(
            header,
            "t=1700000000,v1=97926816e98fbb41ccb1673225ff29a2f35369099990e1b1561651e7bd097ebf"
        );
    }

    #[test]
    fn back_off_doubles_and_stops_at_an_hour() {
        assert_eq!(backoff(10, 1).num_seconds(), 10);
        assert_eq!(backoff(10, 2).num_seconds(), 20);
        assert_eq!(backoff(10, 4).num_seconds(), 80);
        assert_eq!(backoff(10, 30).num_seconds(), 3600);
    }

    #[test]
    fn event_names_round_trip() {
        for kind in EventKind::SUBSCRIBABLE {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("webhook.test"), None);
    }
}
