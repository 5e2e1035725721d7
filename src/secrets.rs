//! Account credentials at rest: the access, refresh and id tokens of every account are sealed
//! with the [`Cipher`] (AES-256-GCM, the key id in each value), opened where they are used
//! (the pool, the refresh scheduler, the export), and re-sealed by [`reseal`]: on start for rows
//! still in clear, and by `gpt2api secrets rotate` for every row not sealed with the current
//! key (stored responses and webhook secrets too).

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use crate::crypto::{Cipher, CryptoError};
use crate::db::{account, stored_response, webhook};

/// Which values [`reseal`] seals again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reseal {
    /// Only values in clear (written before encryption): the start-up migration.
    Plaintext,
    /// Every value not sealed with the current key: a key rotation.
    NotCurrent,
}

/// What [`reseal`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealCount {
    /// Account rows written again.
    pub accounts: u64,
    /// Stored responses written again.
    pub responses: u64,
    /// Webhook secrets written again.
    pub webhooks: u64,
}

/// Why values could not be sealed again.
#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    /// A value was sealed with a key that is not configured.
    #[error("account {id}: {source}")]
    Account {
        id: i32,
        #[source]
        source: CryptoError,
    },
    /// A stored response was sealed with a key that is not configured.
    #[error("stored response {id}: {source}")]
    Response {
        id: String,
        #[source]
        source: CryptoError,
    },
    /// A webhook's secret was sealed with a key that is not configured.
    #[error("webhook {id}: {source}")]
    Webhook {
        id: i32,
        #[source]
        source: CryptoError,
    },
    /// The database failed.
    #[error("database")]
    Database(#[from] DbErr),
}

/// The row with its tokens opened.
pub fn open_account(
    cipher: &Cipher,
    mut row: account::Model,
) -> Result<account::Model, CryptoError> {
    row.access_token = cipher.open_text(&row.access_token)?;
    row.refresh_token = cipher.open_text(&row.refresh_token)?;
    row.id_token = row
        .id_token
        .as_deref()
        .map(|t| cipher.open_text(t))
        .transpose()?;
    Ok(row)
}

/// A token (access, refresh or id) sealed for its column.
pub fn seal(cipher: &Cipher, token: &str) -> String {
    cipher.seal_text(token)
}

fn needs(cipher: &Cipher, which: Reseal, text: &str) -> bool {
    if text.is_empty() {
        return false;
    }
    match which {
        Reseal::Plaintext => !text.starts_with("enc:"),
        Reseal::NotCurrent => !cipher.is_current(text),
    }
}

/// Seals again the account tokens (and, for a rotation, the stored responses) that `which`
/// names. Rows are read and written one by one, so it runs beside a serving gateway; a row
/// changed meanwhile is written only if its tokens are still the ones read.
pub async fn reseal(
    db: &DatabaseConnection,
    cipher: &Cipher,
    which: Reseal,
) -> Result<ResealCount, ResealError> {
    let mut count = ResealCount::default();
    let prefix = match which {
        Reseal::Plaintext => "enc:".to_owned(),
        Reseal::NotCurrent => cipher.current_prefix(),
    };
    let pattern = format!("{prefix}%");
    let rows = account::Entity::find()
        .filter(
            Condition::any()
                .add(account::Column::AccessToken.not_like(&pattern))
                .add(account::Column::RefreshToken.not_like(&pattern))
                .add(account::Column::IdToken.not_like(&pattern)),
        )
        .all(db)
        .await?;
    for row in rows {
        let stale = [
            Some(row.access_token.as_str()),
            Some(row.refresh_token.as_str()),
            row.id_token.as_deref(),
        ];
        if !stale.into_iter().flatten().any(|t| needs(cipher, which, t)) {
            continue;
        }
        let (id, old_access, old_refresh) =
            (row.id, row.access_token.clone(), row.refresh_token.clone());
        let open =
            open_account(cipher, row).map_err(|source| ResealError::Account { id, source })?;
        let result = account::Entity::update_many()
            .col_expr(
                account::Column::AccessToken,
                Expr::value(seal(cipher, &open.access_token)),
            )
            .col_expr(
                account::Column::RefreshToken,
                Expr::value(seal(cipher, &open.refresh_token)),
            )
            .col_expr(
                account::Column::IdToken,
                Expr::value(open.id_token.as_deref().map(|t| seal(cipher, t))),
            )
            .filter(account::Column::Id.eq(id))
            .filter(account::Column::AccessToken.eq(old_access))
            .filter(account::Column::RefreshToken.eq(old_refresh))
            .exec(db)
            .await?;
        count.accounts += result.rows_affected;
    }
    if which == Reseal::NotCurrent {
        let rows = stored_response::Entity::find()
            .filter(
                Condition::any()
                    .add(stored_response::Column::Input.not_like(&pattern))
                    .add(stored_response::Column::Response.not_like(&pattern)),
            )
            .all(db)
            .await?;
        for row in rows {
            let open = |text: &str| {
                cipher.open(text).map_err(|source| ResealError::Response {
                    id: row.id.clone(),
                    source,
                })
            };
            let input = cipher.seal(&open(&row.input)?);
            let response = cipher.seal(&open(&row.response)?);
            let result = stored_response::Entity::update_many()
                .col_expr(stored_response::Column::Input, Expr::value(input))
                .col_expr(stored_response::Column::Response, Expr::value(response))
                .filter(stored_response::Column::Id.eq(row.id.as_str()))
                .exec(db)
                .await?;
            count.responses += result.rows_affected;
        }
        let rows = webhook::Entity::find()
            .filter(webhook::Column::Secret.not_like(&pattern))
            .all(db)
            .await?;
        for row in rows {
            let secret = cipher
                .open_text(&row.secret)
                .map_err(|source| ResealError::Webhook { id: row.id, source })?;
            let result = webhook::Entity::update_many()
                .col_expr(
                    webhook::Column::Secret,
                    Expr::value(cipher.seal_text(&secret)),
                )
                .filter(webhook::Column::Id.eq(row.id))
                .filter(webhook::Column::Secret.eq(row.secret.as_str()))
                .exec(db)
                .await?;
            count.webhooks += result.rows_affected;
        }
    }
    Ok(count)
}
