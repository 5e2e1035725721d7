//! The pool-yield benchmark: how well the account pool spends its accounts. N conversations of M
//! turns each (clients that resend the whole history, four requests at a time, every open
//! conversation advancing one turn per round) go through the gateway to the mock upstream's
//! economy (per-account usage budgets behind the used-percent headers, 429 at 100%, and a
//! prompt cache per account), once per strategy and per kind of conversation key (the client's
//! `prompt_cache_key`, or none: the gateway derives one), each on a fresh gateway and mock.
//!
//! Reported per run: the turns that stayed on the account of their conversation's previous
//! turn, the cached share of input tokens against the ideal (the same workload with every
//! conversation always on one account), the usage-limit refusals the upstream answered, and
//! the requests served before the first 429 a client saw. The accounts' budgets are sized from
//! the ideal run so that the workload fits only when its prompt caches are kept: a strategy
//! that loses them runs out earlier. A last run per strategy takes one account's token away
//! while the OAuth endpoint is down, and reports the slowest request afterwards (no request
//! may wait for a refresh while another account can serve).
//!
//! Three pools: equal accounts with budgets of 115% of the ideal spending; unequal accounts
//! (0, 25, 50, 75% of their 5-hour windows used at the start, as a pool in use has them) whose
//! remaining budgets are 115% of it; and the same with 85% (not enough: the 429s come, and the
//! question is how late).
//!
//! `cargo run --release --example pool_yield -- [--conversations N] [--turns M] [--accounts K]
//! [--concurrency C]` (defaults 64, 12, 4, 4); Markdown on stdout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use futures_util::StreamExt;
use gpt2api::config::{Config, Strategy};
use gpt2api::db::{account, api_key};
use gpt2api::startup::Application;
use mock_upstream::{Behaviour, Economy, MockUpstream};
use sea_orm::{ActiveModelTrait, Set};
use secrecy::SecretString;
use serde_json::{json, Value};

/// What a cached input token spends of a budget, against 1 for an uncached one (the mock's).
const CACHED_COST: f64 = 0.1;
/// A shared system prompt, as coding assistants send (about 300 tokens).
const SYSTEM: &str = "You are a careful coding assistant working in a large repository. Read the \
    question, think about the code paths involved, and answer with the smallest change that \
    fixes the problem. Prefer clear names, small functions and tests that drive the real \
    interface. When you are unsure, say what you would check first and why. Never invent APIs: \
    name the file and the function you rely on. Keep answers short; the user reads them in a \
    terminal. Use fenced code blocks for code, and explain each change in one sentence. When a \
    question touches security (authentication, secrets, input validation), point out the risk \
    before the fix. When the question is about performance, ask for a measurement before \
    proposing a change, and say which one. Treat warnings as errors. Do not reformat code you \
    did not change. Answer in the language of the question.";

/// The benchmark's shape.
#[derive(Debug, Clone, Copy)]
struct Shape {
    conversations: usize,
    turns: usize,
    accounts: usize,
    concurrency: usize,
}

/// A pool to run the workload on: how much of each account's 5-hour window is used at the
/// start, and the budget left in all of them together, as a share of the ideal run's spending.
struct Scenario {
    title: &'static str,
    start_used: Vec<f64>,
    capacity: f64,
}

/// What one run measured.
#[derive(Debug, Default, Clone)]
struct Outcome {
    served: usize,
    /// Turns after a conversation's first that were served.
    followups: usize,
    /// Of those, served by the account of the conversation's previous turn.
    kept: usize,
    input_tokens: u64,
    cached_tokens: u64,
    /// Budget spent, by the mock's rule.
    spent: f64,
    client_429: usize,
    /// Upstream refusals while another account could have served (under the ceiling).
    avoidable: usize,
    /// Served requests counted when the first client-visible 429 came.
    served_before_429: Option<usize>,
    other_errors: usize,
    refusals: usize,
    latencies: Vec<Duration>,
    per_account: HashMap<String, usize>,
}

impl Outcome {
    fn cached_share(&self) -> f64 {
        self.cached_tokens as f64 / self.input_tokens.max(1) as f64
    }
}

/// One conversation of a client that resends its history.
struct Conversation {
    index: usize,
    messages: Vec<Value>,
    last_account: Option<String>,
    /// A client that saw a usage limit stops.
    stopped: bool,
}

/// A running gateway and mock for one run.
struct Stack {
    mock: MockUpstream,
    base: String,
    key: String,
    _dir: tempfile::TempDir,
    handle: actix_web::dev::ServerHandle,
}

async fn stack(
    strategy: Strategy,
    accounts: usize,
    budget: f64,
    start_used: &[f64],
) -> anyhow::Result<Stack> {
    let mock = MockUpstream::start();
    mock.set_economy(Some(Economy {
        primary_budget: budget,
        secondary_budget: budget * 1000.0,
        cached_cost: CACHED_COST,
        ..Economy::default()
    }));
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    config.server.data_dir = dir.path().join("data");
    config.database.path = dir.path().join("gpt2api.db");
    config.auth.admin_password = Some(SecretString::from("Bench-Passw0rd"));
    config.codex.base_url = mock.base_url();
    config.codex.oauth_token_url = mock.oauth_url();
    config.pool.strategy = strategy;
    config.pool.refresh_wait_seconds = 10;
    let app = Application::build(config).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped(false));

    let now = Utc::now();
    for i in 1..=accounts {
        let a = mock.create_account(&format!("acct-{i:02}"));
        let used = start_used.get(i - 1).copied().unwrap_or(0.0);
        mock.set_usage(&a.account_id, used, used / 10.0);
        let row = account::ActiveModel {
            email: Set(a.email.clone()),
            chatgpt_account_id: Set(a.account_id.clone()),
            plan_type: Set(Some(a.plan_type.clone())),
            access_token: Set(a.access_token.clone()),
            refresh_token: Set(a.refresh_token.clone()),
            id_token: Set(Some(a.id_token.clone())),
            expires_at: Set(Some(now + chrono::Duration::days(10))),
            last_refresh_at: Set(Some(now)),
            is_active: Set(true),
            status: Set(account::AccountStatus::Active),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&state.db)
        .await?;
        state.pool.upsert(row).await?;
    }
    let key = format!("sk-{}", uuid::Uuid::new_v4().simple());
    api_key::ActiveModel {
        name: Set("bench".into()),
        key_hash: Set(gpt2api::actors::key_cache::hash_key(&key)),
        masked_key: Set("sk-bench...".into()),
        is_active: Set(true),
        tokens_used: Set(0),
        usage_count: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&state.db)
    .await?;
    // A running gateway knows its accounts' windows: wait for the first probes.
    let started = Instant::now();
    loop {
        let views = state.pool.snapshot().await?.accounts;
        if views.len() == accounts && views.iter().all(|v| v.usage_checked_at.is_some()) {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "no probe answered"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Stack {
        mock,
        base,
        key,
        _dir: dir,
        handle,
    })
}

/// A turn's user message: unique to the conversation and the turn, about 60 tokens.
fn user_text(conversation: usize, turn: usize) -> String {
    format!(
        "Conversation {conversation}, turn {turn}: the function parse_config in src/config.rs \
         fails on an empty file with an unhelpful error; what is the smallest fix, and which \
         test shows it? Keep the answer short."
    )
}

/// Sends one turn; answers (status, account, prompt tokens, cached tokens, output tokens).
async fn send(
    client: &reqwest::Client,
    stack: &Stack,
    conversation: &Conversation,
    user: &str,
    hinted: bool,
) -> anyhow::Result<(u16, Option<(String, u64, u64, u64, String)>)> {
    let mut messages = conversation.messages.clone();
    messages.push(json!({"role": "user", "content": user}));
    let mut body = json!({"model": "gpt-5", "messages": messages});
    if hinted {
        body["prompt_cache_key"] = json!(format!("bench-conversation-{}", conversation.index));
    }
    let res = client
        .post(format!("{}/v1/chat/completions", stack.base))
        .bearer_auth(&stack.key)
        .json(&body)
        .send()
        .await?;
    let status = res.status().as_u16();
    let answer: Value = res.json().await.unwrap_or(Value::Null);
    if status != 200 {
        return Ok((status, None));
    }
    let content = answer["choices"][0]["message"]["content"]
        .as_str()
        .context("no content")?
        .to_owned();
    let account = content
        .split("Hello from ")
        .nth(1)
        .and_then(|rest| rest.split('!').next())
        .context("no account in the answer")?
        .to_owned();
    let usage = &answer["usage"];
    let number = |v: &Value| v.as_u64().unwrap_or(0);
    Ok((
        status,
        Some((
            account,
            number(&usage["prompt_tokens"]),
            number(&usage["prompt_tokens_details"]["cached_tokens"]),
            number(&usage["completion_tokens"]),
            content,
        )),
    ))
}

/// Runs the workload: every open conversation advances one turn per round, `concurrency`
/// requests at a time. `outage_after` takes the first account's token away, with the OAuth
/// endpoint down, before that round.
async fn workload(
    stack: &Stack,
    shape: Shape,
    hinted: bool,
    outage_after: Option<usize>,
) -> anyhow::Result<(Outcome, Vec<Duration>)> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(shape.concurrency)
        .build()?;
    let conversations: Vec<Arc<Mutex<Conversation>>> = (0..shape.conversations)
        .map(|index| {
            Arc::new(Mutex::new(Conversation {
                index,
                messages: vec![json!({"role": "system", "content": SYSTEM})],
                last_account: None,
                stopped: false,
            }))
        })
        .collect();
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let served = Arc::new(AtomicUsize::new(0));
    let mut after_outage = Vec::new();
    for turn in 0..shape.turns {
        if outage_after == Some(turn) {
            stack.mock.set_behaviour("acct-01", Behaviour::Unauthorized);
            stack.mock.set_oauth_down(true);
        }
        let round = futures_util::stream::iter(conversations.iter().cloned())
            .map(|conversation| {
                let client = client.clone();
                let outcome = outcome.clone();
                let served = served.clone();
                async move {
                    let (index, snapshot) = {
                        let c = conversation.lock().unwrap_or_else(PoisonError::into_inner);
                        if c.stopped {
                            return None;
                        }
                        let snapshot = Conversation {
                            index: c.index,
                            messages: c.messages.clone(),
                            last_account: c.last_account.clone(),
                            stopped: false,
                        };
                        (c.index, snapshot)
                    };
                    let user = user_text(index, turn);
                    let started = Instant::now();
                    let sent = send(&client, stack, &snapshot, &user, hinted).await;
                    let took = started.elapsed();
                    let mut o = outcome.lock().unwrap_or_else(PoisonError::into_inner);
                    o.latencies.push(took);
                    let mut c = conversation.lock().unwrap_or_else(PoisonError::into_inner);
                    match sent {
                        Ok((200, Some((account, input, cached, output, content)))) => {
                            let n = served.fetch_add(1, Ordering::SeqCst) + 1;
                            o.served = n;
                            if let Some(previous) = &c.last_account {
                                o.followups += 1;
                                if *previous == account {
                                    o.kept += 1;
                                }
                            }
                            o.input_tokens += input;
                            o.cached_tokens += cached;
                            o.spent += (input - cached) as f64
                                + cached as f64 * CACHED_COST
                                + output as f64;
                            *o.per_account.entry(account.clone()).or_default() += 1;
                            c.last_account = Some(account);
                            c.messages.push(json!({"role": "user", "content": user}));
                            c.messages
                                .push(json!({"role": "assistant", "content": content}));
                        }
                        Ok((429, _)) => {
                            o.client_429 += 1;
                            if o.served_before_429.is_none() {
                                o.served_before_429 = Some(served.load(Ordering::SeqCst));
                            }
                            c.stopped = true;
                        }
                        Ok(_) | Err(_) => {
                            o.other_errors += 1;
                        }
                    }
                    Some(took)
                }
            })
            .buffer_unordered(shape.concurrency)
            .collect::<Vec<_>>()
            .await;
        if outage_after.is_some_and(|at| turn >= at) {
            after_outage.extend(round.into_iter().flatten());
        }
    }
    let mut outcome = Arc::try_unwrap(outcome)
        .map_err(|_| anyhow::anyhow!("the workload still runs"))?
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    outcome.refusals = stack.mock.usage_limit_refusals();
    outcome.avoidable = stack.mock.refusals_while_another_had_headroom(98.0);
    Ok((outcome, after_outage))
}

fn parse_args() -> anyhow::Result<Shape> {
    let mut shape = Shape {
        conversations: 64,
        turns: 12,
        accounts: 4,
        concurrency: 4,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().context("a value is missing");
        match arg.as_str() {
            "--conversations" => shape.conversations = value()?.parse()?,
            "--turns" => shape.turns = value()?.parse()?,
            "--accounts" => shape.accounts = value()?.parse()?,
            "--concurrency" => shape.concurrency = value()?.parse()?,
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    Ok(shape)
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let shape = parse_args()?;
    let strategies = [
        ("quota_aware", Strategy::QuotaAware),
        ("round_robin", Strategy::RoundRobin),
        ("least_used", Strategy::LeastUsed),
        ("fill_first", Strategy::FillFirst),
    ];

    // The ideal: every conversation always on one account (one account, no limit).
    let ideal_stack = stack(Strategy::QuotaAware, 1, 1e12, &[]).await?;
    let (ideal, _) = workload(&ideal_stack, shape, true, None).await?;
    ideal_stack.handle.stop(true).await;
    println!(
        "# Pool yield\n\n{} conversations x {} turns (clients that resend the history; every open \
         conversation advances one turn per round, {} requests at a time) over {} accounts. \
         Cached input costs {CACHED_COST} of an uncached token. The ideal run (one account, no \
         limit) spent {:.0} tokens of budget, with a cached share of {}.",
        shape.conversations,
        shape.turns,
        shape.concurrency,
        shape.accounts,
        ideal.spent,
        percent(ideal.cached_share()),
    );
    let unequal: Vec<f64> = (0..shape.accounts)
        .map(|i| (i * 100 / shape.accounts) as f64)
        .collect();
    let scenarios = [
        Scenario {
            title: "Equal accounts, budgets 115% of the ideal spending",
            start_used: vec![0.0; shape.accounts],
            capacity: 1.15,
        },
        Scenario {
            title: "Unequal accounts, budgets left 115% of the ideal spending",
            start_used: unequal.clone(),
            capacity: 1.15,
        },
        Scenario {
            title: "Unequal accounts, budgets left 85% of the ideal spending (not enough)",
            start_used: unequal,
            capacity: 0.85,
        },
    ];
    for scenario in &scenarios {
        let left: f64 = scenario
            .start_used
            .iter()
            .map(|used| 1.0 - used / 100.0)
            .sum();
        let budget = ideal.spent * scenario.capacity / left;
        let used: Vec<String> = scenario
            .start_used
            .iter()
            .map(|u| format!("{u:.0}%"))
            .collect();
        println!(
            "\n## {}\n\nBudget per account {budget:.0} tokens; used at the start: {}.\n",
            scenario.title,
            used.join(" / ")
        );
        println!(
            "| strategy | conversation key | served | turns that kept their account | cached share | \
             of the ideal | upstream usage-limit refusals (avoidable: another account was under \
             98%) | served before the first 429 | client \
             429s | other errors | requests per account | p50 ms | p99 ms |"
        );
        println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |");
        for (name, strategy) in strategies {
            for hinted in [true, false] {
                let s = stack(strategy, shape.accounts, budget, &scenario.start_used).await?;
                let (o, _) = workload(&s, shape, hinted, None).await?;
                s.handle.stop(true).await;
                let mut per_account: Vec<_> = o.per_account.iter().collect();
                per_account.sort();
                let spread: Vec<String> = per_account.iter().map(|(_, n)| n.to_string()).collect();
                let mut latencies = o.latencies.clone();
                latencies.sort();
                println!(
                    "| {name} | {} | {} | {} ({}/{}) | {} | {} | {} ({} avoidable) | {} | {} | {} | {} | {:.1} | {:.1} |",
                    if hinted { "prompt_cache_key" } else { "derived" },
                    o.served,
                    percent(o.kept as f64 / o.followups.max(1) as f64),
                    o.kept,
                    o.followups,
                    percent(o.cached_share()),
                    percent(o.cached_share() / ideal.cached_share().max(f64::EPSILON)),
                    o.refusals,
                    o.avoidable,
                    o.served_before_429
                        .map_or_else(|| format!("all {} (none)", o.served), |n| n.to_string()),
                    o.client_429,
                    o.other_errors,
                    spread.join(" / "),
                    quantile(&latencies, 0.5).as_secs_f64() * 1000.0,
                    quantile(&latencies, 0.99).as_secs_f64() * 1000.0,
                );
            }
        }
    }

    // A refused token while the OAuth endpoint is down: nobody may wait for the refresh.
    let outage_shape = Shape {
        conversations: 16,
        turns: 6,
        ..shape
    };
    println!(
        "\n## A refused token with the OAuth endpoint down\n\n{} conversations x {} turns, \
         unlimited budgets. After the second round, the first account's token is refused and \
         every refresh fails (the refresh scheduler tries three times over about three \
         seconds).\n",
        outage_shape.conversations, outage_shape.turns
    );
    println!(
        "| strategy | requests after the outage | served | p50 ms | p99 ms | slowest ms | \
         requests over 1 s |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, strategy) in strategies {
        let s = stack(strategy, shape.accounts, 1e12, &[]).await?;
        let (o, mut after) = workload(&s, outage_shape, true, Some(2)).await?;
        s.handle.stop(true).await;
        after.sort();
        let slow = after
            .iter()
            .filter(|d| **d >= Duration::from_secs(1))
            .count();
        println!(
            "| {name} | {} | {} | {:.1} | {:.1} | {:.1} | {slow} |",
            after.len(),
            o.served,
            quantile(&after, 0.5).as_secs_f64() * 1000.0,
            quantile(&after, 0.99).as_secs_f64() * 1000.0,
            after.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
        );
    }
    // The stopped gateways' database pools would outlive the runtime: leave at once.
    std::io::Write::flush(&mut std::io::stdout())?;
    std::process::exit(0)
}
