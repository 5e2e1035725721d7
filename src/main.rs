//! The `gpt2api` command: serve (default), migrate, admin tools.

use std::io::Read;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use gpt2api::config::{Config, ConfigError, Overrides};
use gpt2api::error::AppError;
use gpt2api::startup::{Application, StartupError};
use migration::{Migrator, MigratorTrait};

#[derive(Parser)]
#[command(
    name = "gpt2api",
    version,
    about = "OpenAI-compatible gateway over a pool of Codex accounts"
)]
struct Cli {
    /// Configuration file (default: $GPT2API_CONFIG, else ./config.toml if present).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve {
        /// Address to listen on (server.host).
        #[arg(long)]
        host: Option<String>,
        /// Port to listen on (server.port).
        #[arg(long)]
        port: Option<u16>,
        /// Database URL (database.url), e.g. postgres://user@host/db.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Apply or roll back database migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Admin account tools.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Encryption key tools.
    Secrets {
        #[command(subcommand)]
        action: SecretsAction,
    },
}

#[derive(Subcommand)]
enum SecretsAction {
    /// Re-encrypt every stored secret with the current key. With `secrets.encryption_key`
    /// configured, that key is the new one (list the old one in `secrets.previous_keys`);
    /// without it, a new key is generated into data_dir and the old one kept beside it.
    Rotate,
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Roll back the latest migrations.
    Down {
        /// How many to roll back.
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
}

#[derive(Subcommand)]
enum AdminAction {
    /// Set a new password for an admin and revoke its sessions.
    ResetPassword {
        username: String,
        /// Read the new password from standard input instead of generating one.
        #[arg(long)]
        stdin: bool,
    },
    /// Turn off an admin's two-factor sign-in (a lost device): the password alone signs in
    /// again, and a new device can be enrolled.
    ResetTotp { username: String },
}

/// Why a command failed; printed as one line with its cause chain.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("the server stopped with an error")]
    Serve(#[source] std::io::Error),
    #[error("database")]
    Database(#[from] sea_orm::DbErr),
    #[error("cannot load the session signing secret")]
    Secret(#[source] std::io::Error),
    #[error("cannot load the encryption key")]
    EncryptionKey(#[source] std::io::Error),
    #[error("cannot re-encrypt the stored secrets")]
    Reseal(#[from] gpt2api::secrets::ResealError),
    #[error("cannot read the new password from standard input")]
    Stdin(#[source] std::io::Error),
    /// A refusal with a message meant for the operator (a weak password, an unknown admin).
    #[error("{}", .0.message())]
    Refused(#[from] AppError),
}

/// The error and its causes, joined as one line.
fn describe(error: &CliError) -> String {
    let mut line = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

fn main() -> std::process::ExitCode {
    limit_retained_heap();
    let cli = Cli::parse();
    let system = actix_web::rt::System::new();
    match system.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line with the cause chain; no backtrace for an operator's mistake.
            eprintln!("error: {}", describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let overrides = match &cli.command {
        Some(Command::Serve {
            host,
            port,
            database_url,
        }) => Overrides {
            host: host.clone(),
            port: *port,
            database_url: database_url.clone(),
        },
        _ => Overrides::default(),
    };
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    gpt2api::telemetry::init(&config.log);

    match cli.command.unwrap_or(Command::Serve {
        host: None,
        port: None,
        database_url: None,
    }) {
        Command::Serve { .. } => serve(config).await,
        Command::Migrate { action } => migrate(&config, action).await,
        Command::Admin {
            action: AdminAction::ResetPassword { username, stdin },
        } => reset_password(config, &username, stdin).await,
        Command::Admin {
            action: AdminAction::ResetTotp { username },
        } => reset_totp(config, &username).await,
        Command::Secrets {
            action: SecretsAction::Rotate,
        } => rotate(&config).await,
    }
}

async fn serve(config: Config) -> Result<(), CliError> {
    tracing::info!(
        version = gpt2api::VERSION,
        database = %config.database.redacted_url(),
        "starting gpt2api"
    );
    let host = config.server.host.clone();
    let username = config.auth.admin_username.clone();
    let app = Application::build(config).await?;
    if let Some(password) = app.first_admin_password() {
        // Printed once, on purpose outside the log stream: it is shown to the operator who
        // started the process and never written to a log file by the gateway.
        println!("\n  First start: created admin '{username}' with password: {password}");
        println!("  Sign in at /admin/ and change it.\n");
    }
    tracing::info!(
        "listening on http://{host}:{}; console at /admin/",
        app.port()
    );
    app.run_until_stopped(true).await.map_err(CliError::Serve)
}

async fn migrate(config: &Config, action: MigrateAction) -> Result<(), CliError> {
    let db = gpt2api::db::connect(&config.database).await?;
    match action {
        MigrateAction::Up => {
            Migrator::up(&db, None).await?;
            println!("migrations applied");
        }
        MigrateAction::Down { steps } => {
            Migrator::down(&db, Some(steps)).await?;
            println!("rolled back {steps} migration(s)");
        }
        MigrateAction::Status => {
            for m in Migrator::get_migration_with_status(&db).await? {
                println!(
                    "{:<10} {}",
                    format!("{:?}", m.status()).to_lowercase(),
                    m.name()
                );
            }
        }
    }
    Ok(())
}

async fn reset_totp(config: Config, username: &str) -> Result<(), CliError> {
    let auth = auth_service(&config).await?;
    auth.reset_totp(username).await?;
    println!("two-factor sign-in of '{username}' is off; it signs in with its password alone");
    Ok(())
}

/// The sign-in service over the configured database (migrated first).
async fn auth_service(config: &Config) -> Result<gpt2api::auth::AuthService, CliError> {
    let db = gpt2api::db::connect(&config.database).await?;
    gpt2api::db::migrate_up(&db).await?;
    let secret = gpt2api::auth::jwt::load_or_create_secret(
        config.auth.jwt_secret.as_ref(),
        &config.server.data_dir,
    )
    .map_err(CliError::Secret)?;
    Ok(gpt2api::auth::AuthService::new(
        db,
        gpt2api::auth::jwt::JwtKeys::new(&secret),
        config.auth.clone(),
    )
    .await?)
}

async fn reset_password(config: Config, username: &str, from_stdin: bool) -> Result<(), CliError> {
    let db = gpt2api::db::connect(&config.database).await?;
    gpt2api::db::migrate_up(&db).await?;
    let secret = gpt2api::auth::jwt::load_or_create_secret(
        config.auth.jwt_secret.as_ref(),
        &config.server.data_dir,
    )
    .map_err(CliError::Secret)?;
    let auth = gpt2api::auth::AuthService::new(
        db,
        gpt2api::auth::jwt::JwtKeys::new(&secret),
        config.auth.clone(),
    )
    .await?;
    let given = if from_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(CliError::Stdin)?;
        Some(text.trim_end_matches(['\r', '\n']).to_string())
    } else {
        None
    };
    let password = auth.reset_password(username, given.as_deref()).await?;
    if from_stdin {
        println!("password of '{username}' changed; its sessions were revoked");
    } else {
        println!("new password of '{username}': {password}");
        println!("it must be changed at the next sign-in; all sessions were revoked");
    }
    Ok(())
}

async fn rotate(config: &Config) -> Result<(), CliError> {
    use gpt2api::crypto::Cipher;
    let db = gpt2api::db::connect(&config.database).await?;
    gpt2api::db::migrate_up(&db).await?;
    let secrets = &config.secrets;
    let data_dir = &config.server.data_dir;
    let configured = secrets
        .encryption_key
        .as_ref()
        .filter(|k| !secrecy::ExposeSecret::expose_secret(*k).is_empty());
    let cipher = match configured {
        Some(key) => Cipher::load(Some(key), &secrets.previous_keys, data_dir),
        None => Cipher::load(None, &secrets.previous_keys, data_dir)
            .and_then(|_| Cipher::replace_generated(data_dir, &secrets.previous_keys)),
    }
    .map_err(CliError::EncryptionKey)?;
    let count =
        gpt2api::secrets::reseal(&db, &cipher, gpt2api::secrets::Reseal::NotCurrent).await?;
    println!(
        "re-encrypted {} account(s), {} stored response(s) and {} webhook secret(s) with key {}",
        count.accounts,
        count.responses,
        count.webhooks,
        cipher.key_id()
    );
    if configured.is_none() {
        println!(
            "the new key is in {}; restart the gateway to seal new values with it",
            data_dir.join("encryption_key").display()
        );
    }
    Ok(())
}

/// Large allocations (an argon2 hash takes 19 MiB) go straight to `mmap` and back to the system
/// when freed; otherwise glibc keeps them in each thread's arena and the resident size grows by
/// that much for every thread that ever hashed a password.
fn limit_retained_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tunable; it runs before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
