//! The owners' management of admins: list, create (with a one-time password), change role,
//! disable, delete. There is always at least one enabled owner: the last one cannot be
//! demoted, disabled or deleted. Disabling or deleting revokes every session of the admin at
//! once (sessions are rows read on every request, so every instance sees it).

use chrono::Utc;
use sea_orm::sea_query::{Expr, Query, SimpleExpr, SubQueryStatement};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    Set, TransactionTrait,
};

use super::roles::Role;
use super::{password, AuthService};
use crate::db::{admin_session, user};
use crate::error::{AppError, AppResult, ErrorCode};

/// A change to an admin; absent fields stay as they are.
#[derive(Debug, Default)]
pub struct AdminChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

/// Checks a new admin's username: 1 to 64 letters, digits and `.`, `_`, `-`, `@`.
fn check_username(name: &str) -> AppResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(AppError::invalid_request(
            "`username` must have 1 to 64 letters, digits, `.`, `_`, `-` or `@`",
        )
        .with_param("username"))
    }
}

/// The condition "another enabled owner than `id` exists", as a subquery count.
fn another_owner(id: i32) -> Condition {
    let others = Query::select()
        .expr(Expr::col(user::Column::Id).count())
        .from(user::Entity)
        .and_where(user::Column::Role.eq(Role::Owner.as_str()))
        .and_where(user::Column::Disabled.eq(false))
        .and_where(user::Column::Id.ne(id))
        .to_owned();
    Condition::all().add(
        Expr::expr(SimpleExpr::SubQuery(
            None,
            Box::new(SubQueryStatement::SelectStatement(others)),
        ))
        .gte(1),
    )
}

fn last_owner() -> AppError {
    AppError::new(
        ErrorCode::LastOwner,
        "the last enabled owner cannot be removed, disabled or demoted",
    )
}

impl AuthService {
    /// Every admin, oldest first.
    pub async fn list_admins(&self, page: u64, size: u64) -> AppResult<(Vec<user::Model>, u64)> {
        let paginator = user::Entity::find()
            .order_by_asc(user::Column::Id)
            .paginate(&self.db, size);
        let total = paginator.num_items().await?;
        let rows = paginator.fetch_page(page.saturating_sub(1)).await?;
        Ok((rows, total))
    }

    /// One admin; 404 when there is none with this id.
    pub async fn list_admin(&self, id: i32) -> AppResult<user::Model> {
        user::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no admin {id}")))
    }

    /// Creates an admin with a generated password that must be changed at first sign-in;
    /// answers it with the password (shown once).
    pub async fn create_admin(
        &self,
        username: &str,
        role: Role,
    ) -> AppResult<(user::Model, String)> {
        check_username(username)?;
        let taken = user::Entity::find()
            .filter(user::Column::Username.eq(username))
            .count(&self.db)
            .await?;
        if taken > 0 {
            return Err(AppError::new(
                ErrorCode::UsernameTaken,
                format!("an admin named {username} exists"),
            )
            .with_param("username"));
        }
        let pass = password::generate();
        let phc = self.hash(&pass).await?;
        let now = Utc::now();
        let row = user::ActiveModel {
            username: Set(username.to_string()),
            password_hash: Set(phc),
            must_change_password: Set(true),
            created_at: Set(now),
            updated_at: Set(now),
            role: Set(role.as_str().to_string()),
            disabled: Set(false),
            totp_enabled: Set(false),
            ..Default::default()
        }
        .insert(&self.db)
        .await
        .map_err(|e| match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => AppError::new(
                ErrorCode::UsernameTaken,
                format!("an admin named {username} exists"),
            ),
            _ => e.into(),
        })?;
        Ok((row, pass))
    }

    /// Changes an admin's role or disables it; refuses to leave no enabled owner. Disabling
    /// revokes the admin's sessions.
    pub async fn update_admin(&self, id: i32, change: &AdminChange) -> AppResult<user::Model> {
        let found = user::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no admin {id}")))?;
        let removes_owner = found.role == Role::Owner.as_str()
            && !found.disabled
            && (change.role.is_some_and(|r| r != Role::Owner) || change.disabled == Some(true));
        let now = Utc::now();
        let txn = self.db.begin().await?;
        let mut update = user::Entity::update_many()
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::Id.eq(id));
        if let Some(role) = change.role {
            update = update.col_expr(user::Column::Role, Expr::value(role.as_str()));
        }
        if let Some(disabled) = change.disabled {
            update = update.col_expr(user::Column::Disabled, Expr::value(disabled));
        }
        if removes_owner {
            update = update.filter(another_owner(id));
        }
        if update.exec(&txn).await?.rows_affected == 0 {
            return Err(if removes_owner {
                last_owner()
            } else {
                AppError::not_found(format!("no admin {id}"))
            });
        }
        if change.disabled == Some(true) {
            admin_session::Entity::update_many()
                .col_expr(admin_session::Column::RevokedAt, Expr::value(now))
                .filter(admin_session::Column::UserId.eq(id))
                .filter(admin_session::Column::RevokedAt.is_null())
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        user::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no admin {id}")))
    }

    /// Deletes an admin (its sessions, recovery codes and challenges go with it); refuses to
    /// delete the last enabled owner. Answers the deleted row.
    pub async fn delete_admin(&self, id: i32) -> AppResult<user::Model> {
        let found = user::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no admin {id}")))?;
        let txn = self.db.begin().await?;
        // Revoked first: a request that read the session a moment ago is refused next time
        // even where the cascade has not reached yet.
        admin_session::Entity::delete_many()
            .filter(admin_session::Column::UserId.eq(id))
            .exec(&txn)
            .await?;
        let mut delete = user::Entity::delete_many().filter(user::Column::Id.eq(id));
        if found.role == Role::Owner.as_str() && !found.disabled {
            delete = delete.filter(another_owner(id));
        }
        if delete.exec(&txn).await?.rows_affected == 0 {
            return Err(last_owner());
        }
        txn.commit().await?;
        Ok(found)
    }
}
