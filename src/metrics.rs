//! Prometheus metrics: request counts and latencies per endpoint and status, upstream attempts
//! by outcome, how conversations found their pinned accounts, probes of usage windows, and,
//! computed when scraped, the
//! pool's accounts by state, the conversations pinned, and the usage-log writer's rows written,
//! dropped and failed.

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The metrics of one gateway instance (its own registry, so tests can run several).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    upstream: IntCounterVec,
    accounts: IntGaugeVec,
    usage_rows: IntGaugeVec,
    notifications: IntGaugeVec,
    key_lookups: IntGaugeVec,
    oldest_key: Gauge,
    affinity: IntCounterVec,
    pins: IntGauge,
    probes: IntCounterVec,
    input_tokens: IntCounterVec,
}

/// The pool's state when scraped.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolGauges {
    /// Accounts that can serve now.
    pub available: i64,
    /// Accounts that cannot (cooling, refreshing, breaker open, out).
    pub unavailable: i64,
    /// Requests in flight on all accounts.
    pub in_flight: i64,
    /// Conversations pinned to an account.
    pub pins: i64,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("gpt2api".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "proxy_requests_total",
                "Proxied requests by endpoint and status",
            ),
            &["endpoint", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("proxy_request_duration_seconds", "Proxied request duration")
                .buckets(vec![
                    0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
                ]),
            &["endpoint"],
        )?;
        let upstream = IntCounterVec::new(
            Opts::new("upstream_attempts_total", "Upstream attempts by outcome"),
            &["outcome"],
        )?;
        let accounts = IntGaugeVec::new(
            Opts::new("pool_accounts", "Accounts in the pool by state"),
            &["state"],
        )?;
        let usage_rows = IntGaugeVec::new(
            Opts::new("usage_log_rows", "Usage-log rows since start by result"),
            &["result"],
        )?;
        let notifications = IntGaugeVec::new(
            Opts::new(
                "change_notifications",
                "Change notices from other instances since start: received, applied, and full resynchronisations of the listener",
            ),
            &["result"],
        )?;
        registry.register(Box::new(notifications.clone()))?;
        let key_lookups = IntGaugeVec::new(
            Opts::new(
                "key_cache_lookups",
                "API key lookups since start: hit (read from the shared map) or miss (asked the key cache)",
            ),
            &["result"],
        )?;
        registry.register(Box::new(key_lookups.clone()))?;
        let oldest_key = Gauge::new(
            "key_cache_oldest_entry_age_seconds",
            "Age of the oldest API key held by the key cache",
        )?;
        registry.register(Box::new(oldest_key.clone()))?;
        let affinity = IntCounterVec::new(
            Opts::new(
                "affinity_lookups_total",
                "Requests of conversations by how they found their pinned account: hit (went back to it), moved (it could not serve), new (no pin)",
            ),
            &["result"],
        )?;
        let pins = IntGauge::new("affinity_pins", "Conversations pinned to an account")?;
        let probes = IntCounterVec::new(
            Opts::new(
                "usage_probes_total",
                "Probes of accounts' usage windows by result (ok, failed)",
            ),
            &["result"],
        )?;
        let input_tokens = IntCounterVec::new(
            Opts::new(
                "input_tokens_total",
                "Input tokens of served requests, by whether the upstream's prompt cache held them (cached) or not (uncached)",
            ),
            &["cache"],
        )?;
        registry.register(Box::new(probes.clone()))?;
        registry.register(Box::new(input_tokens.clone()))?;
        registry.register(Box::new(affinity.clone()))?;
        registry.register(Box::new(pins.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(upstream.clone()))?;
        registry.register(Box::new(accounts.clone()))?;
        registry.register(Box::new(usage_rows.clone()))?;
        Ok(Self {
            registry,
            requests,
            duration,
            upstream,
            accounts,
            usage_rows,
            notifications,
            key_lookups,
            oldest_key,
            affinity,
            pins,
            probes,
            input_tokens,
        })
    }

    /// Counts a request's input tokens, `cached` of them held by the prompt cache.
    pub fn input_tokens(&self, input: u64, cached: u64) {
        let cached = cached.min(input);
        self.input_tokens
            .with_label_values(&["cached"])
            .inc_by(cached);
        self.input_tokens
            .with_label_values(&["uncached"])
            .inc_by(input - cached);
    }

    /// How served requests of conversations found their pins since start: hits, moved, new.
    pub fn affinity_counts(&self) -> (u64, u64, u64) {
        let count = |result: &str| self.affinity.with_label_values(&[result]).get();
        (count("hit"), count("moved"), count("new"))
    }

    /// Counts a probe of an account's usage windows (`ok`, `failed`).
    pub fn probe(&self, result: &str) {
        self.probes.with_label_values(&[result]).inc();
    }

    /// Counts how a conversation's request found its pin (`hit`, `moved`, `new`).
    pub fn affinity(&self, result: &str) {
        self.affinity.with_label_values(&[result]).inc();
    }

    /// Counts a finished proxied request.
    pub fn request(&self, endpoint: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[endpoint, &status.to_string()])
            .inc();
        self.duration
            .with_label_values(&[endpoint])
            .observe(seconds);
    }

    /// Counts an upstream attempt (`success`, `usage_limit`, `transient`, `unauthorized`, ...).
    pub fn upstream(&self, outcome: &str) {
        self.upstream.with_label_values(&[outcome]).inc();
    }

    /// Sets the change listener's counts, before a render.
    pub fn changes(&self, received: u64, applied: u64, resyncs: u64) {
        for (label, value) in [
            ("received", received),
            ("applied", applied),
            ("resyncs", resyncs),
        ] {
            self.notifications
                .with_label_values(&[label])
                .set(value as i64);
        }
    }

    /// Sets the key cache's lookups (hits, misses) and the age of its oldest key, before a
    /// render.
    pub fn key_cache(&self, lookups: (u64, u64), oldest_age_seconds: f64) {
        self.key_lookups
            .with_label_values(&["hit"])
            .set(lookups.0 as i64);
        self.key_lookups
            .with_label_values(&["miss"])
            .set(lookups.1 as i64);
        self.oldest_key.set(oldest_age_seconds);
    }

    /// Renders the text format, after setting the gauges computed at scrape time.
    pub fn render(&self, pool: PoolGauges, rows: (u64, u64, u64)) -> String {
        self.accounts
            .with_label_values(&["available"])
            .set(pool.available);
        self.accounts
            .with_label_values(&["unavailable"])
            .set(pool.unavailable);
        self.accounts
            .with_label_values(&["in_flight_requests"])
            .set(pool.in_flight);
        self.pins.set(pool.pins);
        self.usage_rows
            .with_label_values(&["written"])
            .set(rows.0 as i64);
        self.usage_rows
            .with_label_values(&["dropped"])
            .set(rows.1 as i64);
        self.usage_rows
            .with_label_values(&["failed"])
            .set(rows.2 as i64);
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
