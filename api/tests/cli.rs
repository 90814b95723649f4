//! The `otpd` command line as an operator meets it: distinct exit codes
//! for a bad configuration, a store held by another process and a damaged
//! store (so a supervisor knows whether restarting can help), and a
//! printed configuration that does not show inline secrets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{OTPD, Server, add_client, cli, otpd, otpd_with, refused, settings};

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

#[test]
fn a_configuration_error_names_the_line_or_key_but_never_echoes_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("otpd.toml");
    for (text, named) in [
        ("[delivery.email]\npassword = hunter2\n", "line 2"),
        (
            "[delivery.email]\nport = \"hunter2\"\n",
            "delivery.email.port",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let mut command = otpd(&data);
        command.arg("--config").arg(&file).arg("config");
        let (code, why) = refused(command);
        assert_eq!(code, 78, "{why}");
        assert!(why.contains(named), "{why}");
        assert!(!why.contains("hunter2"), "{why}");
    }
}

#[test]
fn the_printed_configuration_hides_credentials_in_urls() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("otpd.toml");
    std::fs::write(
        &file,
        "[[delivery.sms]]\nurl = \"https://sms.example/send?token=s3cret&from=gov\"\n\
         template = \"{}\"\n",
    )
    .unwrap();
    let settings: Vec<(&str, &str)> = settings()
        .into_iter()
        .chain([
            ("OTPD_DELIVERY_PUSH_URL", "https://u:s3cret@push.example/x"),
            (
                "OTPD_DELIVERY_LETTER_URL",
                "https://print.example/in?api_key=s3cret",
            ),
        ])
        .collect();
    let out = otpd_with(&data, &settings)
        .arg("--config")
        .arg(&file)
        .arg("config")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("s3cret"), "{text}");
    assert!(
        text.contains("https://u:<redacted>@push.example/x"),
        "{text}"
    );
    assert!(text.contains("from=gov"), "{text}");
}

#[test]
fn a_server_that_cannot_bind_its_port_leaves_no_data_directory_or_key_behind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut command = std::process::Command::new(OTPD);
    command
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", &address, "--log-format", "json"])
        .envs(settings())
        // No key from the environment: a first start would generate one.
        .env_remove("OTPD_CODE_KEY")
        .arg("serve");
    let (code, why) = refused(command);
    assert_eq!(code, 1, "{why}");
    assert!(why.contains("cannot listen"), "{why}");
    assert!(
        !data.exists(),
        "a failed bind created {} (a new code.key?)",
        data.display()
    );
    drop(taken);
}
