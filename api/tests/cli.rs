//! The `otpd` command line as an operator meets it: distinct exit codes
//! for a bad configuration, a store held by another process and a damaged
//! store (so a supervisor knows whether restarting can help), and a
//! printed configuration that does not show inline secrets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{Server, add_client, cli, otpd, otpd_with, refused, settings};

#[test]
fn a_bad_setting_exits_with_ex_config() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (variable, value, named) in [
        ("OTPD_LOG_LEVEL", "infoo", "log_level"),
        ("OTPD_SERVER_MAX_CONNECTIONS", "0", "max_connections"),
        ("OTPD_NO_SUCH_SETTING", "1", "OTPD_NO_SUCH_SETTING"),
    ] {
        let mut command = otpd(&data);
        command.env(variable, value).arg("serve");
        let (code, why) = refused(command);
        assert_eq!(code, 78, "{variable}={value}: {why}");
        assert!(why.contains(named), "{why}");
    }
}

#[test]
fn a_store_held_by_a_running_server_exits_with_ex_tempfail() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_client(&data);
    let server = Server::start(&data);
    let (code, why) = refused(otpd(&data));
    assert_eq!(code, 75, "{why}");
    assert!(why.contains("in use"), "{why}");
    let (ok, _, why) = cli(&data, &["check"]);
    assert!(!ok && why.contains("running"), "{why}");
    server.kill();
}

#[test]
fn the_printed_configuration_hides_inline_secrets_but_not_references() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let settings: Vec<(&str, &str)> = settings()
        .into_iter()
        .chain([
            ("OTPD_DELIVERY_EMAIL_PASSWORD", "hunter2"),
            ("OTPD_DELIVERY_PUSH_AUTH_VALUE", "env:PUSH_TOKEN"),
        ])
        .collect();
    let out = otpd_with(&data, &settings).arg("config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("password = \"<redacted>\""), "{text}");
    assert!(text.contains("env:PUSH_TOKEN"), "{text}");
}
