//! The command line: configuration errors, migrations and the operator's password reset.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::helpers::{spawn_app, start, ADMIN, ADMIN_PASSWORD};

fn gpt2api() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpt2api"));
    cmd.env_remove("RUST_LOG")
        .env_remove("PORT")
        .env_remove("DATABASE_URL")
        .env_remove("GPT2API_CONFIG");
    cmd
}

#[test]
fn an_unknown_key_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "[server]\nport = 0\n[pool]\nstrategy = \"round_robin\"\nretries = 3\n",
    )
    .unwrap();
    let out = gpt2api()
        .arg("--config")
        .arg(&path)
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key `pool.retries`"), "{err}");
    assert!(
        err.contains("max_retries"),
        "lists the expected keys: {err}"
    );
}

#[test]
fn an_environment_value_of_the_wrong_type_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = gpt2api()
        .current_dir(dir.path())
        .env("GPT2API__POOL__MAX_RETRIES", "lots")
        .args(["migrate", "status"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pool.max_retries"), "{err}");
}

#[test]
fn a_missing_named_config_file_is_an_error() {
    let out = gpt2api()
        .args(["--config", "/nonexistent/gpt2api.toml", "migrate", "status"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn migrate_commands_work_on_a_fresh_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = gpt2api()
            .current_dir(dir.path())
            .env("DATABASE_PATH", dir.path().join("db/gpt2api.db"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    run(&["migrate", "up"]);
    let status = run(&["migrate", "status"]);
    assert!(
        status.contains("applied") && !status.contains("pending"),
        "{status}"
    );
    run(&["migrate", "down", "--steps", "2"]);
    let status = run(&["migrate", "status"]);
    assert_eq!(status.matches("pending").count(), 2, "{status}");
}

#[actix_web::test]
async fn reset_password_from_stdin_revokes_sessions() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (config, dir, db) = app.stop().await;

    let mut child = gpt2api()
        .current_dir(dir.path())
        .env("DATABASE_URL", config.database.connection_url())
        .env("GPT2API__SERVER__DATA_DIR", &config.server.data_dir)
        .args(["admin", "reset-password", ADMIN, "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Reset-By-Operator-9\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Reset-By-Operator-9"));

    let app = start(config, dir, db).await;
    assert_eq!(app.get("/admin/profile", &token).await.status(), 401);
    assert_eq!(app.login_raw(ADMIN, ADMIN_PASSWORD).await.status(), 401);
    assert_eq!(
        app.login_raw(ADMIN, "Reset-By-Operator-9").await.status(),
        200
    );
}

#[actix_web::test]
async fn reset_password_without_stdin_prints_a_generated_one_once() {
    let app = spawn_app().await;
    let (config, dir, db) = app.stop().await;
    let out = gpt2api()
        .current_dir(dir.path())
        .env("DATABASE_URL", config.database.connection_url())
        .env("GPT2API__SERVER__DATA_DIR", &config.server.data_dir)
        .args(["admin", "reset-password", ADMIN])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let password = stdout
        .lines()
        .find_map(|l| {
            l.split(": ")
                .nth(1)
                .filter(|_| l.starts_with("new password"))
        })
        .expect("the new password is printed")
        .trim()
        .to_string();
    let app = start(config, dir, db).await;
    let res = app.login_raw(ADMIN, &password).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user"]["must_change_password"], true);
}
