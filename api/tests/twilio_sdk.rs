//! The official Twilio SDKs against a real otpd on loopback: a service that
//! codes against Twilio Verify moves to otpd by changing the SDK's base URL
//! and credentials, nothing else. The SDKs come pinned from the package
//! registries (`scripts/python-env.sh`, `scripts/node-env.sh`) into
//! `target/`; the scripts are `tests/twilio-sdk/check.{py,js}`, which read
//! each code from otpd's development log sink and fail if a field the SDK
//! reads is missing from an answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Server, client_key, otpd};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A running otpd whose log is copied to a file, and a client's Twilio credentials.
struct Target {
    _server: Server,
    url: String,
    log: PathBuf,
    account_sid: String,
    auth_token: String,
    _dir: tempfile::TempDir,
}

fn start() -> Target {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = client_key(otpd(&data), "shop", "verify");
    let log = dir.path().join("otpd.log");
    let server = Server::spawn_teeing(otpd(&data), Some(&log));
    // The key's Twilio form (docs/TWILIO.md): AC + key id + 16 zeros, and its secret.
    let (id, secret) = key
        .strip_prefix("otpd_")
        .and_then(|k| k.split_once('_'))
        .unwrap();
    Target {
        url: format!("http://{}", server.address),
        _server: server,
        log,
        account_sid: format!("AC{id}0000000000000000"),
        auth_token: secret.to_owned(),
        _dir: dir,
    }
}

fn run(mut command: Command, target: &Target, what: &str) {
    let out = command
        .env("OTPD_URL", &target.url)
        .env("TWILIO_ACCOUNT_SID", &target.account_sid)
        .env("TWILIO_AUTH_TOKEN", &target.auth_token)
        .env("TO_PHONE", "+351912000333")
        .env("TO_EMAIL", "sdk@example.pt")
        .env("CODE_LOG", &target.log)
        .env_remove("TWILIO_EDGE")
        .env_remove("TWILIO_REGION")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("OK:"), "{what}: {stdout}\n{stderr}");
    eprintln!("{}", stdout.trim());
}

#[test]
fn the_official_python_sdk_verifies_an_sms_and_an_email_through_otpd() {
    let env = Command::new(root().join("scripts/python-env.sh"))
        .output()
        .unwrap();
    assert!(
        env.status.success(),
        "scripts/python-env.sh: {}",
        String::from_utf8_lossy(&env.stderr)
    );
    let python = String::from_utf8_lossy(&env.stdout).trim().to_owned();
    let target = start();
    let mut command = Command::new(python);
    command.arg(root().join("tests/twilio-sdk/check.py"));
    run(command, &target, "the Python SDK check");
}

#[test]
fn the_official_node_sdk_verifies_an_sms_and_an_email_through_otpd() {
    let env = Command::new(root().join("scripts/node-env.sh"))
        .output()
        .unwrap();
    if env.status.code() == Some(3) {
        eprintln!("skipped: no Node runtime on this machine (node and npm)");
        return;
    }
    assert!(
        env.status.success(),
        "scripts/node-env.sh: {}",
        String::from_utf8_lossy(&env.stderr)
    );
    let modules = String::from_utf8_lossy(&env.stdout).trim().to_owned();
    let target = start();
    let mut command = Command::new("node");
    command
        .arg(root().join("tests/twilio-sdk/check.js"))
        .env("NODE_PATH", modules);
    run(command, &target, "the Node SDK check");
}
