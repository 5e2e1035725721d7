//! Measures the statistics and log endpoints on a large history: seeds a fresh SQLite database
//! with N usage-log rows (default 1,000,000) spread over 30 days, with their hourly rollups, then
//! times `/admin/stats/overview`, `/admin/stats/usage?range=30d` and filtered `/admin/logs`
//! pages through HTTP. `cargo run --release --example stats_bench -- [ROWS]`

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use gpt2api::config::Config;
use gpt2api::db::{api_key, api_log, usage_hourly};
use gpt2api::startup::Application;
use sea_orm::{EntityTrait, Set, TransactionTrait};
use secrecy::SecretString;
use serde_json::{json, Value};

const KEYS: i32 = 20;
const ACCOUNTS: i32 = 50;
const MODELS: [&str; 4] = ["gpt-5", "gpt-5-codex", "gpt-5.4", "gpt-5.5"];

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let rows: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    config.server.data_dir = dir.path().join("data");
    config.database.path = dir.path().join("gpt2api.db");
    config.auth.admin_password = Some(SecretString::from("Bench-Passw0rd"));
    let app = Application::build(config).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let db = app.state().db.clone();
    actix_web::rt::spawn(app.run_until_stopped(false));

    let started = Instant::now();
    let now = Utc::now();
    let txn = db.begin().await?;
    for id in 1..=KEYS {
        api_key::Entity::insert(api_key::ActiveModel {
            name: Set(format!("key {id}")),
            key_hash: Set(format!("hash-{id}")),
            masked_key: Set("sk-bench...".into()),
            is_active: Set(true),
            tokens_used: Set(0),
            usage_count: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
    }
    txn.commit().await?;
    let span = 30 * 86_400 - 60;
    let mut hours: HashMap<(i64, i32, i32, &str), [i64; 4]> = HashMap::new();
    let mut batch = Vec::with_capacity(1000);
    let mut seeded = 0u64;
    while seeded < rows {
        let txn = db.begin().await?;
        for _ in 0..50 {
            batch.clear();
            for _ in 0..1000 {
                if seeded >= rows {
                    break;
                }
                let i = seeded;
                seeded += 1;
                let at = now - chrono::Duration::seconds((i as i64 * 7919) % span);
                let key = (i % KEYS as u64) as i32 + 1;
                let account = (i % ACCOUNTS as u64) as i32 + 1;
                let model = MODELS[(i % MODELS.len() as u64) as usize];
                let status = if i.is_multiple_of(50) { 502 } else { 200 };
                let bucket = at.timestamp().div_euclid(3600) * 3600;
                let sums = hours.entry((bucket, key, account, model)).or_default();
                sums[0] += 1;
                sums[1] += i64::from(status >= 400);
                sums[2] += 120;
                sums[3] += 40;
                batch.push(api_log::ActiveModel {
                    created_at: Set(at),
                    api_key_id: Set(Some(key)),
                    account_id: Set(Some(account)),
                    model: Set(model.into()),
                    endpoint: Set("/v1/chat/completions".into()),
                    stream: Set(i.is_multiple_of(2)),
                    status_code: Set(status),
                    error_message: Set(
                        (status >= 400).then(|| "upstream_error: upstream answered 500".into())
                    ),
                    input_tokens: Set(120),
                    output_tokens: Set(40),
                    cached_tokens: Set(0),
                    reasoning_tokens: Set(0),
                    latency_ms: Set(800),
                    ttft_ms: Set(Some(200)),
                    ..Default::default()
                });
            }
            if batch.is_empty() {
                break;
            }
            for chunk in batch.chunks(500) {
                api_log::Entity::insert_many(chunk.to_vec())
                    .exec(&txn)
                    .await?;
            }
        }
        txn.commit().await?;
    }
    let txn = db.begin().await?;
    let rollups: Vec<_> = hours
        .into_iter()
        .map(
            |((bucket, key, account, model), s)| usage_hourly::ActiveModel {
                bucket: Set(bucket),
                api_key_id: Set(key),
                account_id: Set(account),
                model: Set(model.into()),
                requests: Set(s[0]),
                errors: Set(s[1]),
                input_tokens: Set(s[2]),
                output_tokens: Set(s[3]),
                cached_tokens: Set(0),
                reasoning_tokens: Set(0),
            },
        )
        .collect();
    let rollup_rows = rollups.len();
    for chunk in rollups.chunks(500) {
        usage_hourly::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    println!(
        "seeded {rows} log rows and {rollup_rows} rollup rows in {:.1?}",
        started.elapsed()
    );

    let client = reqwest::Client::new();
    let login: Value = client
        .post(format!("{base}/admin/login"))
        .json(&json!({"username": "admin", "password": "Bench-Passw0rd"}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["token"].as_str().unwrap_or_default().to_string();
    let since =
        (now - chrono::Duration::days(7)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let queries = [
        "/admin/stats/overview".to_string(),
        "/admin/stats/usage?range=24h".to_string(),
        "/admin/stats/usage?range=30d".to_string(),
        "/admin/logs?page=1&page_size=50".to_string(),
        "/admin/logs?status=error&api_key_id=3&page_size=50".to_string(),
        format!("/admin/logs?model=gpt-5.4&since={since}&page=3&page_size=50"),
        "/admin/logs?token_id=7&status=success&page=10&page_size=50".to_string(),
    ];
    println!("| query | median | max |\n| --- | --- | --- |");
    for query in queries {
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let res = client
                .get(format!("{base}{query}"))
                .bearer_auth(&token)
                .send()
                .await?;
            anyhow::ensure!(res.status().is_success(), "{query}: {}", res.status());
            res.bytes().await?;
            times.push(t.elapsed());
        }
        times.sort();
        println!("| `{query}` | {:.0?} | {:.0?} |", times[2], times[4]);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
