//! A small HTTP load generator for the benchmark (`tests/bench/run.sh`).
//!
//! Sends one kind of POST request, either as fast as `--connections` concurrent clients can
//! (closed loop: each client sends its next request when the previous answer is complete), or at
//! a fixed arrival rate with `--rate R` (open loop: request *i* is due at `start + i / R` whether
//! or not earlier answers came back; latency is counted from its release by the scheduler, which
//! includes any wait for a free connection slot, so a stalled server is not hidden by a stalled
//! generator). Per request it measures the total latency (until
//! the last body byte), the time to the first body byte (TTFT for streams) and the status, and
//! checks that the answer is complete. Prints one JSON object on stdout.
//!
//! ```text
//! # through the gateway, streaming chat completions, 10 s after 2 s of warm-up
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8080/v1/chat/completions \
//!     --key sk-... --stream --connections 32 --duration 10 --warmup 2
//! # direct to the mock upstream, a Codex body, credentials from the mock's --accounts-out file
//! cargo run --release --example loadgen -- --url http://127.0.0.1:9000/backend-api/codex/responses \
//!     --codex --accounts accounts.json --rate 1000 --duration 10
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const USAGE: &str = "\
usage: loadgen --url URL [options]
  --url URL            where to POST
  --key KEY            Authorization: Bearer KEY
  --accounts FILE      the mock upstream's --accounts-out file: each request takes the next
                       account's Authorization: Bearer <access_token> and Chatgpt-Account-Id
  --header 'N: V'      an extra request header (repeatable)
  --body JSON          the request body (default: a one-message chat completion, or with
                       --codex a one-message Codex Responses request)
  --body-file FILE     the request body from a file
  --stream             streaming chat completion (default body with \"stream\": true)
  --codex              default body in the Codex Responses shape (always a stream)
  --model M            model of the default body (default gpt-5)
  --conversations N    the default body's question names one of N conversations, in turn, so
                       that a gateway pins N conversations over its accounts (default 1)
  --connections N      concurrent clients, or at most N requests in flight with --rate (default 32)
  --duration S         how long to measure, seconds (default 10)
  --requests N         stop after N measured requests instead
  --rate R             open loop: R requests per second (default: closed loop, max throughput)
  --warmup S           send for S seconds first, not measured (default 1)
  --threads N          runtime worker threads (default 2)
  --timeout S          per-request timeout, seconds (default 30)
  --label TEXT         copied into the JSON output
  --trace FILE         also write every measured request as a line `start_ms latency_ms ttfb_ms
                       status` (start relative to the end of the warm-up), to look for patterns";

struct Args {
    url: String,
    key: Option<String>,
    accounts: Option<String>,
    headers: Vec<(String, String)>,
    body: Option<String>,
    stream: bool,
    codex: bool,
    model: String,
    conversations: usize,
    connections: usize,
    duration: Option<f64>,
    requests: Option<u64>,
    rate: Option<f64>,
    warmup: f64,
    threads: usize,
    timeout: f64,
    label: Option<String>,
    trace: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        key: None,
        accounts: None,
        headers: Vec::new(),
        body: None,
        stream: false,
        codex: false,
        model: "gpt-5".into(),
        conversations: 1,
        connections: 32,
        duration: None,
        requests: None,
        rate: None,
        warmup: 1.0,
        threads: 2,
        timeout: 30.0,
        label: None,
        trace: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--url" => args.url = value("--url")?,
            "--key" => args.key = Some(value("--key")?),
            "--accounts" => args.accounts = Some(value("--accounts")?),
            "--header" => {
                let h = value("--header")?;
                let (name, val) = h
                    .split_once(':')
                    .ok_or(format!("--header `{h}` is not `Name: value`"))?;
                args.headers.push((name.trim().into(), val.trim().into()));
            }
            "--body" => args.body = Some(value("--body")?),
            "--body-file" => {
                let path = value("--body-file")?;
                args.body = Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read {path}: {e}"))?,
                );
            }
            "--stream" => args.stream = true,
            "--codex" => args.codex = true,
            "--model" => args.model = value("--model")?,
            "--conversations" => args.conversations = number(&value("--conversations")?)?,
            "--connections" => args.connections = number(&value("--connections")?)?,
            "--duration" => args.duration = Some(number(&value("--duration")?)?),
            "--requests" => args.requests = Some(number(&value("--requests")?)?),
            "--rate" => args.rate = Some(number(&value("--rate")?)?),
            "--warmup" => args.warmup = number(&value("--warmup")?)?,
            "--threads" => args.threads = number(&value("--threads")?)?,
            "--timeout" => args.timeout = number(&value("--timeout")?)?,
            "--label" => args.label = Some(value("--label")?),
            "--trace" => args.trace = Some(value("--trace")?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    if args.url.is_empty() {
        return Err(format!("--url is required\n{USAGE}"));
    }
    if args.connections == 0 || args.threads == 0 {
        return Err("--connections and --threads must be at least 1".into());
    }
    if args.rate.is_some_and(|r| r <= 0.0) {
        return Err("--rate must be positive".into());
    }
    if args.duration.is_none() && args.requests.is_none() {
        args.duration = Some(10.0);
    }
    Ok(args)
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not a valid number"))
}

/// What a complete answer looks like, to count truncated or failed answers as errors.
#[derive(Clone, Copy)]
enum Expect {
    /// A Codex SSE stream: must carry `response.completed`.
    Codex,
    /// A chat completion stream: must end with `data: [DONE]`.
    ChatStream,
    /// A chat completion object: must carry `choices`.
    ChatObject,
}

impl Expect {
    fn complete(self, body: &[u8]) -> bool {
        match self {
            Expect::Codex => contains(body, b"response.completed"),
            Expect::ChatStream => trim_end(body).ends_with(b"data: [DONE]"),
            Expect::ChatObject => contains(body, b"\"choices\""),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn trim_end(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., last] = b {
        if last.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    b
}

/// A header set to send with one request.
type HeaderSet = reqwest::header::HeaderMap;

/// Everything a request needs, shared by all clients.
struct Plan {
    client: reqwest::Client,
    url: String,
    /// The bodies sent in turn (one per conversation).
    bodies: Vec<bytes::Bytes>,
    next_body: AtomicU64,
    header_sets: Vec<HeaderSet>,
    next_set: AtomicU64,
    expect: Expect,
    timeout: Duration,
}

impl Plan {
    fn headers(&self) -> HeaderSet {
        let i = self.next_set.fetch_add(1, Ordering::Relaxed) as usize;
        self.header_sets[i % self.header_sets.len()].clone()
    }

    fn body(&self) -> bytes::Bytes {
        let i = self.next_body.fetch_add(1, Ordering::Relaxed) as usize;
        self.bodies[i % self.bodies.len()].clone()
    }
}

/// One finished request.
struct Sample {
    start: Instant,
    latency_us: u64,
    ttft_us: Option<u64>,
    status: u16,
    ok: bool,
}

/// Samples, counters and the first few error descriptions.
#[derive(Default)]
struct Results {
    samples: Vec<Sample>,
    errors_seen: Vec<String>,
}

#[derive(Default)]
struct Counters {
    /// Every request sent, warm-up included (what the gateway should have logged).
    sent: AtomicU64,
    /// Every request that got an HTTP answer, warm-up included.
    answered: AtomicU64,
    /// Open loop: requests that waited for a free connection slot for more than 1 ms.
    late: AtomicU64,
}

/// Sends one request; `due` is when it should have started (latency counts from there).
async fn one_request(plan: &Plan, due: Instant) -> (Sample, Option<String>) {
    let headers = plan.headers();
    let result = tokio::time::timeout(plan.timeout, async {
        let response = plan
            .client
            .post(&plan.url)
            .headers(headers)
            .body(plan.body())
            .send()
            .await
            .map_err(|e| format!("send: {e}"))?;
        let status = response.status().as_u16();
        let mut response = response;
        let mut body = Vec::new();
        let mut ttft = None;
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("body: {e}"))? {
            if ttft.is_none() && !chunk.is_empty() {
                ttft = Some(due.elapsed());
            }
            body.extend_from_slice(&chunk);
        }
        Ok::<_, String>((status, ttft, body))
    })
    .await;
    let latency_us = due.elapsed().as_micros() as u64;
    match result {
        Ok(Ok((status, ttft, body))) => {
            let ok = status == 200 && plan.expect.complete(&body);
            let error = (!ok).then(|| {
                let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
                format!("HTTP {status}: {text}")
            });
            let sample = Sample {
                start: due,
                latency_us,
                ttft_us: ttft.map(|d| d.as_micros() as u64),
                status,
                ok,
            };
            (sample, error)
        }
        Ok(Err(e)) => (
            Sample {
                start: due,
                latency_us,
                ttft_us: None,
                status: 0,
                ok: false,
            },
            Some(e),
        ),
        Err(_) => (
            Sample {
                start: due,
                latency_us,
                ttft_us: None,
                status: 0,
                ok: false,
            },
            Some("timed out".into()),
        ),
    }
}

fn record(
    results: &Mutex<Results>,
    counters: &Counters,
    measured: bool,
    sample: Sample,
    error: Option<String>,
) {
    if sample.status != 0 {
        counters.answered.fetch_add(1, Ordering::Relaxed);
    }
    let mut r = results
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(e) = error {
        if r.errors_seen.len() < 5 {
            r.errors_seen.push(e);
        }
    }
    if measured {
        r.samples.push(sample);
    }
}

fn build_plan(args: &Args) -> Result<Plan, String> {
    use reqwest::header::{HeaderName, HeaderValue};
    let expect = if args.codex {
        Expect::Codex
    } else if args.stream {
        Expect::ChatStream
    } else {
        Expect::ChatObject
    };
    let question = |n: usize| {
        if args.conversations > 1 {
            format!("Say ok. (conversation {n})")
        } else {
            "Say ok.".to_string()
        }
    };
    let body = |n: usize| match &args.body {
        Some(b) => b.clone(),
        None if args.codex => json!({
            "model": args.model,
            "instructions": "You are a helpful assistant.",
            "input": [{"type": "message", "role": "user",
                       "content": [{"type": "input_text", "text": question(n)}]}],
            "tools": [],
            "tool_choice": "auto",
            "parallel_tool_calls": false,
            "store": false,
            "stream": true,
            "include": [],
        })
        .to_string(),
        None => json!({
            "model": args.model,
            "messages": [{"role": "user", "content": question(n)}],
            "stream": args.stream,
        })
        .to_string(),
    };
    if let Some(b) = &args.body {
        serde_json::from_str::<Value>(b).map_err(|e| format!("--body is not JSON: {e}"))?;
    }
    let conversations = if args.body.is_some() {
        1
    } else {
        args.conversations.max(1)
    };
    let bodies = (0..conversations)
        .map(|n| bytes::Bytes::from(body(n)))
        .collect();

    let mut base = HeaderSet::new();
    base.insert("content-type", HeaderValue::from_static("application/json"));
    base.insert(
        "accept",
        HeaderValue::from_static(if args.codex || args.stream {
            "text/event-stream"
        } else {
            "application/json"
        }),
    );
    if let Some(key) = &args.key {
        let v = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|e| e.to_string())?;
        base.insert("authorization", v);
    }
    for (name, value) in &args.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("{name}: {e}"))?;
        let value = HeaderValue::from_str(value).map_err(|e| format!("{name}: {e}"))?;
        base.insert(name, value);
    }
    let mut header_sets = Vec::new();
    if let Some(path) = &args.accounts {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let accounts: Vec<Value> =
            serde_json::from_str(&text).map_err(|e| format!("{path}: not a JSON array: {e}"))?;
        for a in &accounts {
            let (Some(token), Some(id)) = (
                a.get("access_token").and_then(Value::as_str),
                a.get("account_id").and_then(Value::as_str),
            ) else {
                return Err(format!("{path}: an entry lacks access_token or account_id"));
            };
            let mut set = base.clone();
            set.insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| e.to_string())?,
            );
            set.insert(
                "chatgpt-account-id",
                HeaderValue::from_str(id).map_err(|e| e.to_string())?,
            );
            header_sets.push(set);
        }
        if header_sets.is_empty() {
            return Err(format!("{path}: no accounts"));
        }
    } else {
        header_sets.push(base);
    }

    let client = reqwest::Client::builder()
        // Streams are many small writes: Nagle would hold them (CODEX.md §4).
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.connections)
        .pool_idle_timeout(Duration::from_secs(90))
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Plan {
        client,
        url: args.url.clone(),
        bodies,
        next_body: AtomicU64::new(0),
        header_sets,
        next_set: AtomicU64::new(0),
        expect,
        timeout: Duration::from_secs_f64(args.timeout),
    })
}

/// Closed loop: `connections` clients, each sending its next request when the last is done.
async fn closed_loop(
    plan: Arc<Plan>,
    args: &Args,
    results: Arc<Mutex<Results>>,
    counters: Arc<Counters>,
) -> (Instant, Instant) {
    let warm_until = Instant::now() + Duration::from_secs_f64(args.warmup);
    let stop_at = args
        .duration
        .map(|d| warm_until + Duration::from_secs_f64(d));
    let budget = Arc::new(AtomicU64::new(args.requests.unwrap_or(u64::MAX)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (plan, results, counters, budget, stop) = (
            plan.clone(),
            results.clone(),
            counters.clone(),
            budget.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let now = Instant::now();
                if stop.load(Ordering::Relaxed) || stop_at.is_some_and(|s| now >= s) {
                    break;
                }
                let measured = now >= warm_until;
                if measured {
                    // Take one request from the budget; none left: done.
                    let took = budget
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                        .is_ok();
                    if !took {
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                }
                counters.sent.fetch_add(1, Ordering::Relaxed);
                let (sample, error) = one_request(&plan, now).await;
                record(&results, &counters, measured, sample, error);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (warm_until, Instant::now())
}

/// Open loop: request *i* due at `start + i / rate`, at most `connections` in flight.
/// `late` counts requests that had to wait more than 1 ms for a free slot.
async fn open_loop(
    plan: Arc<Plan>,
    args: &Args,
    rate: f64,
    results: Arc<Mutex<Results>>,
    counters: Arc<Counters>,
) -> (Instant, Instant) {
    let start = Instant::now();
    let warm_until = start + Duration::from_secs_f64(args.warmup);
    let stop_at = args
        .duration
        .map(|d| warm_until + Duration::from_secs_f64(d));
    let slots = Arc::new(tokio::sync::Semaphore::new(args.connections));
    let period = 1.0 / rate;
    let mut measured_count = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0u64.. {
        let due = start + Duration::from_secs_f64(i as f64 * period);
        if stop_at.is_some_and(|s| due >= s) {
            break;
        }
        let measured = due >= warm_until;
        if measured {
            if args.requests.is_some_and(|n| measured_count >= n) {
                break;
            }
            measured_count += 1;
        }
        tokio::time::sleep_until(due.into()).await;
        let (plan, results, counters, slots) = (
            plan.clone(),
            results.clone(),
            counters.clone(),
            slots.clone(),
        );
        // Latency counts from here: tokio's timer wakes up to 1 ms after `due`, and that slack
        // belongs to the generator, not to the server. Waiting for a free slot (all
        // `connections` busy) is the server's and is counted.
        let released = Instant::now();
        tasks.spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            if released.elapsed() > Duration::from_millis(1) {
                counters.late.fetch_add(1, Ordering::Relaxed);
            }
            counters.sent.fetch_add(1, Ordering::Relaxed);
            let (sample, error) = one_request(&plan, released).await;
            record(&results, &counters, measured, sample, error);
        });
        // Reap finished tasks now and then so that the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    let last_due = Instant::now();
    while tasks.join_next().await.is_some() {}
    // The measured window is the schedule's, not the tail of the last answers.
    (warm_until, last_due.max(warm_until))
}

fn write_trace(path: &str, samples: &[Sample], origin: Instant) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by_key(|s| s.start);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for s in sorted {
        let start = s.start.saturating_duration_since(origin).as_secs_f64() * 1000.0;
        let ttft = s.ttft_us.map_or(-1.0, |t| t as f64 / 1000.0);
        let latency = s.latency_us as f64 / 1000.0;
        writeln!(out, "{start:.3} {latency:.3} {ttft:.3} {}", s.status)?;
    }
    out.flush()
}

/// The value at quantile `q` of sorted values (nearest rank).
fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn ms(us: Option<u64>) -> Value {
    match us {
        Some(us) => json!(us as f64 / 1000.0),
        None => Value::Null,
    }
}

fn report(
    args: &Args,
    results: &Results,
    counters: &Counters,
    window: (Instant, Instant),
) -> Value {
    let samples = &results.samples;
    let elapsed = window.1.saturating_duration_since(window.0).as_secs_f64();
    let errors = samples.iter().filter(|s| !s.ok).count();
    let mut latency: Vec<u64> = samples.iter().map(|s| s.latency_us).collect();
    latency.sort_unstable();
    let mut ttft: Vec<u64> = samples.iter().filter_map(|s| s.ttft_us).collect();
    ttft.sort_unstable();
    let mut statuses = serde_json::Map::new();
    for s in samples {
        let k = s.status.to_string();
        let n = statuses.get(&k).and_then(Value::as_u64).unwrap_or(0);
        statuses.insert(k, json!(n + 1));
    }
    let mean = (!latency.is_empty()).then(|| latency.iter().sum::<u64>() / latency.len() as u64);
    json!({
        "label": args.label,
        "url": args.url,
        "mode": if args.rate.is_some() { "open" } else { "closed" },
        "offered_rps": args.rate,
        "connections": args.connections,
        "requests": samples.len(),
        "errors": errors,
        "statuses": statuses,
        "duration_s": (elapsed * 1000.0).round() / 1000.0,
        "rps": if elapsed > 0.0 { ((samples.len() as f64 / elapsed) * 10.0).round() / 10.0 } else { 0.0 },
        "p50_ms": ms(quantile(&latency, 0.50)),
        "p90_ms": ms(quantile(&latency, 0.90)),
        "p99_ms": ms(quantile(&latency, 0.99)),
        "max_ms": ms(latency.last().copied()),
        "mean_ms": ms(mean),
        "ttft_p50_ms": ms(quantile(&ttft, 0.50)),
        "ttft_p99_ms": ms(quantile(&ttft, 0.99)),
        "sent_total": counters.sent.load(Ordering::Relaxed),
        "answered_total": counters.answered.load(Ordering::Relaxed),
        "late": counters.late.load(Ordering::Relaxed),
        "cpu_s": own_cpu_seconds(),
        "error_samples": results.errors_seen,
    })
}

/// CPU time (user + system) this process used so far, from `/proc/self/stat` (Linux; USER_HZ
/// is 100 there), so that the benchmark can tell its own load from other processes'.
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name, which may itself hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let plan = match build_plan(&args) {
        Ok(p) => Arc::new(p),
        Err(message) => {
            eprintln!("loadgen: {message}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("loadgen: cannot start the runtime: {e}");
            std::process::exit(1);
        });
    let results = Arc::new(Mutex::new(Results::default()));
    let counters = Arc::new(Counters::default());
    let window = runtime.block_on(async {
        match args.rate {
            Some(rate) => open_loop(plan, &args, rate, results.clone(), counters.clone()).await,
            None => closed_loop(plan, &args, results.clone(), counters.clone()).await,
        }
    });
    let results = results
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(path) = &args.trace {
        if let Err(e) = write_trace(path, &results.samples, window.0) {
            eprintln!("loadgen: cannot write {path}: {e}");
        }
    }
    let out = report(&args, &results, &counters, window);
    println!("{out}");
    if !results.errors_seen.is_empty() {
        for e in &results.errors_seen {
            eprintln!("loadgen: error: {e}");
        }
    }
}
