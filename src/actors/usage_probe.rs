//! The usage prober: keeps idle accounts' usage windows fresh by reading the usage endpoint
//! (CODEX.md §9), which spends nothing, so that a window that reset early puts its account back
//! at once and a freshly imported account shows its limits before its first request. Live
//! traffic brings the windows of busy accounts in its headers; only accounts whose windows were
//! not seen for `usage_probe_interval_seconds` are probed.
//!
//! It owns only how many probes are in flight. Every second (a tick it sends itself) it asks
//! the account pool for accounts due ([`DueForProbe`](super::account_pool::DueForProbe): the
//! pool marks them, so one account never has two probes at a time), probes them outside the
//! actor, at most [`MAX_IN_FLIGHT`] at once, and hands each report to the pool. Never on a
//! request's path.

use std::time::Duration;

use actix::prelude::*;

use super::account_pool::{AccountPoolHandle, ProbeTarget};
use crate::codex::client::CodexClient;
use crate::metrics::Metrics;

/// Probes in flight at most, over all accounts.
pub const MAX_IN_FLIGHT: usize = 4;

#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

#[derive(Message)]
#[rtype(result = "()")]
struct Done;

/// The usage prober actor.
pub struct UsageProber {
    client: CodexClient,
    pool: AccountPoolHandle,
    metrics: Metrics,
    tick: Duration,
    in_flight: usize,
    /// A tick's question to the pool is under way.
    asking: bool,
}

impl UsageProber {
    /// A prober that looks for due accounts every `tick`.
    pub fn new(
        client: CodexClient,
        pool: AccountPoolHandle,
        metrics: Metrics,
        tick: Duration,
    ) -> Self {
        Self {
            client,
            pool,
            metrics,
            tick,
            in_flight: 0,
            asking: false,
        }
    }

    fn probe(&mut self, ctx: &mut Context<Self>, target: ProbeTarget) {
        self.in_flight += 1;
        let client = self.client.clone();
        let pool = self.pool.clone();
        let metrics = self.metrics.clone();
        let probe = async move {
            let report = client
                .usage(
                    &target.access_token,
                    &target.chatgpt_account_id,
                    target.proxy_url.as_deref(),
                )
                .await;
            metrics.probe(if report.is_ok() { "ok" } else { "failed" });
            pool.probed(target.account_id, report);
        };
        ctx.spawn(probe.into_actor(self).map(|(), _, ctx| ctx.notify(Done)));
    }
}

impl Actor for UsageProber {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.tick, |_, ctx| ctx.notify(Tick));
    }
}

impl Handler<Tick> for UsageProber {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Self::Context) {
        let free = MAX_IN_FLIGHT.saturating_sub(self.in_flight);
        if free == 0 || self.asking {
            return;
        }
        self.asking = true;
        let pool = self.pool.clone();
        let due = async move { pool.due_for_probe(free).await };
        ctx.spawn(due.into_actor(self).map(|due, act, ctx| {
            act.asking = false;
            match due {
                Ok(targets) => {
                    for target in targets {
                        act.probe(ctx, target);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "cannot ask the pool for accounts to probe"),
            }
        }));
    }
}

impl Handler<Done> for UsageProber {
    type Result = ();

    fn handle(&mut self, _: Done, _: &mut Self::Context) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }
}

/// A running prober (it needs no messages from outside; the handle tells whether it runs).
#[derive(Clone)]
pub struct UsageProberHandle {
    addr: Addr<UsageProber>,
}

impl UsageProberHandle {
    /// Starts the prober.
    pub fn start(prober: UsageProber) -> Self {
        Self {
            addr: prober.start(),
        }
    }

    /// Whether the actor is running.
    pub fn connected(&self) -> bool {
        self.addr.connected()
    }
}
