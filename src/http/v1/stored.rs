//! OpenAI's stored-response endpoints over the gateway's response store:
//! `GET /v1/responses/{id}`, `GET /v1/responses/{id}/input_items` and
//! `DELETE /v1/responses/{id}`, each scoped to the API key that made the response.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::ApiKeyAuth;
use crate::error::{AppError, ErrorCode, OpenAiError};
use crate::response_store::StoreError;
use crate::state::AppState;

/// Items per page when the client names no `limit`.
const DEFAULT_LIMIT: usize = 20;
/// The largest page OpenAI allows.
const MAX_LIMIT: usize = 100;

/// A store error as the client sees it; `missing` is the status for an unknown id.
pub fn store_error(e: StoreError, missing: ErrorCode, param: Option<&str>) -> AppError {
    let error = match e {
        StoreError::Disabled => AppError::invalid_request(
            "stored responses are turned off on this gateway (responses.store = false)",
        ),
        StoreError::NotFound(id) => AppError::new(
            missing,
            format!("Response with id '{}' not found.", shorten(&id)),
        ),
        StoreError::Unreadable(cause) => {
            AppError::internal(format_args!("stored response unreadable: {cause}"))
        }
        StoreError::Database(e) => e.into(),
    };
    match param {
        Some(param) if error.code() != ErrorCode::InternalError => error.with_param(param),
        _ => error,
    }
}

/// The stored response object.
pub async fn retrieve(
    state: web::Data<AppState>,
    key: ApiKeyAuth,
    id: web::Path<String>,
) -> Result<HttpResponse, OpenAiError> {
    let stored = state
        .responses
        .get(key.0.id, &id)
        .await
        .map_err(|e| store_error(e, ErrorCode::NotFound, None))?;
    Ok(HttpResponse::Ok().json(stored.response))
}

/// Query of the input-items list, as OpenAI names it.
/// Other parameters (`include`) are accepted and ignored.
#[derive(Debug, Deserialize)]
pub struct ItemsQuery {
    limit: Option<usize>,
    order: Option<Order>,
    after: Option<String>,
    before: Option<String>,
}

/// Listing order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    Asc,
    #[default]
    Desc,
}

/// One page of a stored response's input items.
pub async fn input_items(
    state: web::Data<AppState>,
    key: ApiKeyAuth,
    id: web::Path<String>,
    query: web::Query<ItemsQuery>,
) -> Result<HttpResponse, OpenAiError> {
    let query = query.into_inner();
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::invalid_request(format!(
            "'limit' must be between 1 and {MAX_LIMIT}"
        ))
        .with_param("limit")
        .into());
    }
    let items = state
        .responses
        .input_items(key.0.id, &id)
        .await
        .map_err(|e| store_error(e, ErrorCode::NotFound, None))?;
    let page = page_of(items, query.order.unwrap_or_default(), &query, limit)?;
    Ok(HttpResponse::Ok().json(page))
}

/// Deletes a stored response.
pub async fn delete(
    state: web::Data<AppState>,
    key: ApiKeyAuth,
    id: web::Path<String>,
) -> Result<HttpResponse, OpenAiError> {
    state
        .responses
        .delete(key.0.id, &id)
        .await
        .map_err(|e| store_error(e, ErrorCode::NotFound, None))?;
    Ok(HttpResponse::Ok().json(json!({"id": id.as_str(), "object": "response", "deleted": true})))
}

/// OpenAI's list page: `data` in `order`, starting after the `after` id (or ending before the
/// `before` id), at most `limit` items.
fn page_of(
    mut items: Vec<Value>,
    order: Order,
    query: &ItemsQuery,
    limit: usize,
) -> Result<Value, AppError> {
    if order == Order::Desc {
        items.reverse();
    }
    let position = |cursor: &str, param: &str| {
        items
            .iter()
            .position(|item| item.get("id").and_then(Value::as_str) == Some(cursor))
            .ok_or_else(|| {
                AppError::invalid_request(format!("no input item with id '{}'", shorten(cursor)))
                    .with_param(param.to_owned())
            })
    };
    let start = match &query.after {
        Some(after) => position(after, "after")? + 1,
        None => 0,
    };
    let end = match &query.before {
        Some(before) => position(before, "before")?,
        None => items.len(),
    };
    let window: Vec<Value> = items
        .get(start..end.max(start))
        .unwrap_or_default()
        .iter()
        .take(limit)
        .cloned()
        .collect();
    let has_more = start + window.len() < end;
    let id_of = |item: Option<&Value>| item.and_then(|i| i.get("id")).cloned();
    Ok(json!({
        "object": "list",
        "data": window,
        "first_id": id_of(window.first()),
        "last_id": id_of(window.last()),
        "has_more": has_more,
    }))
}

/// A client-supplied id, shortened for an error message.
fn shorten(text: &str) -> String {
    text.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<Value> {
        (0..n).map(|i| json!({"id": format!("msg_{i}")})).collect()
    }

    fn query(after: Option<&str>, before: Option<&str>) -> ItemsQuery {
        ItemsQuery {
            limit: None,
            order: None,
            after: after.map(str::to_owned),
            before: before.map(str::to_owned),
        }
    }

    #[test]
    fn pages_newest_first_by_default() {
        let page = page_of(items(5), Order::Desc, &query(None, None), 2).unwrap();
        assert_eq!(page["data"], json!([{"id": "msg_4"}, {"id": "msg_3"}]));
        assert_eq!(page["first_id"], "msg_4");
        assert_eq!(page["last_id"], "msg_3");
        assert_eq!(page["has_more"], true);
        let next = page_of(items(5), Order::Desc, &query(Some("msg_3"), None), 10).unwrap();
        assert_eq!(next["data"].as_array().unwrap().len(), 3);
        assert_eq!(next["has_more"], false);
    }

    #[test]
    fn ascending_and_before() {
        let page = page_of(items(5), Order::Asc, &query(None, Some("msg_2")), 10).unwrap();
        assert_eq!(page["data"], json!([{"id": "msg_0"}, {"id": "msg_1"}]));
        assert!(page_of(items(2), Order::Asc, &query(Some("nope"), None), 10).is_err());
        let empty = page_of(Vec::new(), Order::Asc, &query(None, None), 10).unwrap();
        assert_eq!(empty["first_id"], Value::Null);
    }
}
