//! The actors that own the gateway's moving state. Each is started once, at start-up, and
//! reached through a small cloneable handle with async methods, so handlers never see `Addr`.
//!
//! Request/response messages on the hot path are sent with a timeout (a full or stuck mailbox
//! answers 503); fire-and-forget records use `try_send` on a bounded mailbox and count drops.

pub mod account_pool;
pub mod key_cache;
pub mod refresher;
pub mod usage_log;
pub mod usage_probe;
pub mod webhooks;

use std::time::Duration;

/// An actor that could not be reached: its mailbox is closed or full, or it did not answer in
/// time. The HTTP layer answers 503 for it.
#[derive(Debug, thiserror::Error)]
pub enum ActorError {
    /// The mailbox is closed or full.
    #[error("the {0} is not available")]
    Unavailable(&'static str),
    /// No answer within the timeout.
    #[error("the {0} is busy; try again")]
    Busy(&'static str),
    /// The actor answered, but its database work failed.
    #[error("database: {0}")]
    Storage(#[from] sea_orm::DbErr),
}

/// Sends a message and waits at most `timeout` for the answer.
pub(crate) async fn ask<A, M>(
    addr: &actix::Addr<A>,
    msg: M,
    timeout: Duration,
    what: &'static str,
) -> Result<M::Result, ActorError>
where
    A: actix::Actor + actix::Handler<M>,
    A::Context: actix::dev::ToEnvelope<A, M>,
    M: actix::Message + Send + 'static,
    M::Result: Send,
{
    match tokio::time::timeout(timeout, addr.send(msg)).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(e)) => {
            tracing::error!(actor = what, error = %e, "actor mailbox unavailable");
            Err(ActorError::Unavailable(what))
        }
        Err(_) => {
            tracing::warn!(actor = what, "actor did not answer in time");
            Err(ActorError::Busy(what))
        }
    }
}
