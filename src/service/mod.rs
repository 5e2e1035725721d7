//! The admin API's services. Every database query and every notice to the account pool or the
//! key cache behind `/admin/*` lives here: the handlers in `http::admin` parse the request, call
//! one service and render its answer as JSON.
//!
//! A service is a few cloned handles (the connection pool, actor handles, the settings store),
//! cheap to build per request from the shared state. Services answer [`AppResult`] with domain
//! values (rows, summaries, pages); they never choose an HTTP status or a JSON shape.

pub mod accounts;
pub mod keys;
pub mod sign_in;
pub mod stats;
pub mod webhooks;

use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, PrimaryKeyTrait, QueryFilter,
    Select,
};
use serde::{Deserialize, Deserializer};

pub use accounts::AccountService;
pub use keys::KeyService;
pub use sign_in::SignInService;
pub use stats::StatsService;

use crate::error::{AppError, AppResult};

/// Which page of a list: the page number (from 1) and its size, both already validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// The page number, from 1.
    pub page: u64,
    /// Rows per page, at least 1.
    pub size: u64,
}

impl PageRequest {
    /// The rows of this page out of a list already in memory.
    fn slice<T>(self, all: Vec<T>) -> Vec<T> {
        let start = (self.page.saturating_sub(1) * self.size) as usize;
        all.into_iter()
            .skip(start)
            .take(self.size as usize)
            .collect()
    }
}

/// One page of a list and how many rows the whole filtered list has.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The rows of the requested page.
    pub rows: Vec<T>,
    /// The number of rows over all pages.
    pub total: u64,
}

impl<T> Page<T> {
    /// Changes every row, keeping the total.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            rows: self.rows.into_iter().map(f).collect(),
            total: self.total,
        }
    }
}

/// Counts and fetches one page of a query.
async fn fetch_page<E>(
    select: Select<E>,
    db: &DatabaseConnection,
    at: PageRequest,
) -> AppResult<Page<E::Model>>
where
    E: EntityTrait,
    E::Model: Sync,
{
    let paginator = select.paginate(db, at.size);
    let total = paginator.num_items().await?;
    let rows = paginator.fetch_page(at.page.saturating_sub(1)).await?;
    Ok(Page { rows, total })
}

/// The row of `E` with this id, unless it is soft-deleted (its `deleted_at` column is set);
/// else 404 "no `what` with id `id`".
async fn find_live<E>(
    db: &DatabaseConnection,
    id: i32,
    deleted_at: E::Column,
    what: &str,
) -> AppResult<E::Model>
where
    E: EntityTrait,
    i32: Into<<E::PrimaryKey as PrimaryKeyTrait>::ValueType>,
{
    E::find_by_id(id)
        .filter(deleted_at.is_null())
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found(format!("no {what} with id {id}")))
}

/// Sets an active-model field when a change carries a value for it.
fn set_if<T: Into<sea_orm::Value>>(field: &mut sea_orm::ActiveValue<T>, change: Option<T>) {
    if let Some(value) = change {
        *field = sea_orm::ActiveValue::Set(value);
    }
}

/// The error "`field` why" of a payload field.
fn invalid<E: serde::de::Error>(field: &str, why: &str) -> E {
    E::custom(format!("`{field}` {why}"))
}

/// Reads a payload field as a `T`, or fails with "`field` why": serde's own messages say what
/// was expected but not which field was wrong.
fn read<'de, D, T>(d: D, field: &str, why: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map_err(|_| invalid(field, why))
}

/// Reads an `is_active` payload field (present means changed).
fn is_active<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    read(d, "is_active", "must be true or false").map(Some)
}
