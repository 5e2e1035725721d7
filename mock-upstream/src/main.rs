//! The mock Codex upstream as a standalone process, for the browser end-to-end tests and the
//! benchmark, which need an upstream outside the test process.
//!
//! Prints one line `MOCK_UPSTREAM base_url=... oauth_url=... root_url=...` once it listens, then
//! runs until killed. Accounts come from `--accounts N` (optionally written to a file the gateway
//! can import with `--accounts-out FILE`) or from `POST /__mock/accounts`; behaviours are set with
//! `POST /__mock/behaviour`, counters read at `GET /__mock/stats`.
//!
//! ```text
//! cargo run -p mock-upstream -- --port 0 --accounts 3 --accounts-out /tmp/accounts.json
//! ```

use std::io::Write as _;
use std::path::PathBuf;

use mock_upstream::{MockAccount, MockOptions, MockUpstream};

const USAGE: &str = "usage: mock_upstream [--port N] [--accounts N] [--accounts-out FILE] \
                     [--workers N] [--fast]";

/// Command-line options.
struct Args {
    options: MockOptions,
    accounts: usize,
    accounts_out: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        options: MockOptions::default(),
        accounts: 0,
        accounts_out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => args.options.port = parse_number(&value("--port")?)?,
            "--accounts" => args.accounts = parse_number(&value("--accounts")?)?,
            "--accounts-out" => args.accounts_out = Some(value("--accounts-out")?.into()),
            "--workers" => args.options.workers = parse_number(&value("--workers")?)?,
            "--fast" => args.options.fast = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    Ok(args)
}

fn parse_number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not a valid number"))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let mock = MockUpstream::start_with(args.options)?;
    // Same names as `POST /__mock/accounts {"count": N}` gives, so both ways agree.
    let accounts: Vec<MockAccount> = (1..=args.accounts)
        .map(|i| mock.create_account(&format!("mock-account-{i:03}")))
        .collect();
    if let Some(path) = &args.accounts_out {
        let files: Vec<_> = accounts.iter().map(MockAccount::to_cliproxy_json).collect();
        let text = serde_json::to_string_pretty(&files).map_err(std::io::Error::other)?;
        std::fs::write(path, text)?;
    }

    let mut stdout = std::io::stdout();
    writeln!(
        stdout,
        "MOCK_UPSTREAM base_url={} oauth_url={} root_url={}",
        mock.base_url(),
        mock.oauth_url(),
        mock.root_url()
    )?;
    // Whoever started the process waits for this line: do not leave it in a buffer.
    stdout.flush()?;

    std::future::pending::<()>().await;
    Ok(())
}
