//! The configuration's defaults, layers, validation and printing.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
}

#[test]
fn defaults_are_valid_and_safe() {
    let config = Config::load(None, env(&[]), &Overrides::default()).unwrap();
    assert_eq!(config, Config::default());
    let engine = config.engine_config();
    assert_eq!(engine.argon2.memory_kib, 19_456);
    assert_eq!(engine.lockout.pin_threshold, 5);
    assert_eq!(config.listen, "127.0.0.1:8080");
}

#[test]
fn the_defaults_in_the_operations_guide_are_the_defaults() {
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/OPERATIONS.md"),
    )
    .unwrap();
    let block = guide
        .split_once("The defaults:\n\n```toml\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("docs/OPERATIONS.md has the defaults block");
    let documented: Vec<&str> = block
        .lines()
        .map(|l| {
            l.split_once(" #")
                .map_or(l, |(setting, _)| setting)
                .trim_end()
        })
        .collect();
    let actual = toml::to_string(&Config::default()).unwrap();
    let actual: Vec<&str> = actual.lines().map(str::trim_end).collect();
    assert_eq!(documented, actual, "update docs/OPERATIONS.md's defaults");
}

#[test]
fn log_levels_are_levels_or_directives_and_nothing_else() {
    for good in ["info", "WARN", "otpd=debug,hyper=warn", "debug,sled=error"] {
        let config = Config::load(
            None,
            env(&[("OTPD_LOG_LEVEL", good)]),
            &Overrides::default(),
        );
        assert!(config.is_ok(), "{good}: {config:?}");
    }
    for bad in ["infoo", "", "verbose", "otpd=loud", "=info"] {
        let err =
            Config::load(None, env(&[("OTPD_LOG_LEVEL", bad)]), &Overrides::default()).unwrap_err();
        assert!(err.contains("log_level"), "{bad}: {err}");
    }
}

#[test]
fn printing_redacts_inline_secrets_and_keeps_references() {
    let mut config = Config::default();
    config.delivery.email.password = "hunter2".into();
    config.delivery.push.auth_value = "env:PUSH_TOKEN".into();
    config.delivery.letter.auth_value = "Bearer print-house-secret".into();
    config.delivery.dm.auth_value = "Bearer dm-relay-secret".into();
    config.delivery.sms.push(SmsGatewayConfig {
        name: "gw".into(),
        url: "https://sms.example/send".into(),
        auth_header: "authorization".into(),
        auth_value: "Bearer sms-secret".into(),
        body: BodyFormat::Json,
        template: "{}".into(),
    });
    let text = toml::to_string(&config.redacted()).unwrap();
    for secret in [
        "hunter2",
        "print-house-secret",
        "sms-secret",
        "dm-relay-secret",
    ] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
    assert!(text.contains("env:PUSH_TOKEN"));
    assert_eq!(text.matches("<redacted>").count(), 4, "{text}");
    assert_eq!(
        config.delivery.email.password, "hunter2",
        "the original is untouched"
    );
}

#[test]
fn layers_apply_in_order_file_then_env_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("otpd.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9000\"\n[lockout]\npin_threshold = 3\n[codes.login]\nlength = 8\nalphabet = \"digits\"\nlifetime_seconds = 120\nmax_attempts = 3\n",
    )
    .unwrap();
    let config = Config::load(
        Some(&file),
        env(&[
            ("OTPD_LOCKOUT_PIN_THRESHOLD", "4"),
            ("OTPD_SERVER_MAX_CONNECTIONS", "7"),
            ("PATH", "/bin"),
        ]),
        &Overrides {
            listen: Some("127.0.0.1:9100".into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(config.lockout.pin_threshold, 4, "env beats file");
    assert_eq!(config.server.max_connections, 7);
    assert_eq!(config.codes.login.length, 8, "file beats defaults");
    assert_eq!(config.listen, "127.0.0.1:9100", "flags beat all");
}

#[test]
fn unknown_keys_are_errors_in_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("otpd.toml");
    std::fs::write(&file, "[lockout]\npin_treshold = 3\n").unwrap();
    let err = Config::load(Some(&file), env(&[]), &Overrides::default()).unwrap_err();
    assert!(err.contains("pin_treshold"), "{err}");
    let err = Config::load(
        None,
        env(&[("OTPD_LOCKOUT_PIN_TRESHOLD", "3")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.contains("OTPD_LOCKOUT_PIN_TRESHOLD"), "{err}");
}

#[test]
fn an_operators_listener_needs_an_address_of_its_own() {
    let load = |vars: &[(&str, &str)]| Config::load(None, env(vars), &Overrides::default());
    let config = load(&[]).unwrap();
    assert_eq!(config.ops_listen_addr().unwrap(), None, "off by default");
    let config = load(&[("OTPD_OPS_LISTEN", "127.0.0.1:9091")]).unwrap();
    assert_eq!(
        config.ops_listen_addr().unwrap(),
        Some("127.0.0.1:9091".parse().unwrap())
    );
    for (listen, ops, named) in [
        ("127.0.0.1:9000", "127.0.0.1:9000", "also `listen`"),
        ("127.0.0.1:9000", "nowhere", "ops_listen: not an address"),
    ] {
        let err = load(&[("OTPD_LISTEN", listen), ("OTPD_OPS_LISTEN", ops)]).unwrap_err();
        assert!(err.contains(named), "{ops}: {err}");
    }
    // Port 0 on both picks two ports: allowed (the tests do it).
    load(&[
        ("OTPD_LISTEN", "127.0.0.1:0"),
        ("OTPD_OPS_LISTEN", "127.0.0.1:0"),
    ])
    .unwrap();
}

#[test]
fn bad_values_name_the_setting() {
    let err = Config::load(
        None,
        env(&[("OTPD_SERVER_MAX_CONNECTIONS", "lots")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.contains("OTPD_SERVER_MAX_CONNECTIONS"), "{err}");
    let err = Config::load(
        None,
        env(&[("OTPD_LOCKOUT_CODE_THRESHOLD", "1000")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.contains("lockout.code_threshold"), "{err}");
    let err = Config::load(
        None,
        env(&[("OTPD_LISTEN", "nowhere")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.contains("listen"), "{err}");
    let err = Config::load(
        None,
        env(&[("OTPD_ENVIRONMENT", "staging")]),
        &Overrides::default(),
    )
    .unwrap_err();
    // Named by its key and the values it takes; the value given is not
    // echoed (it could be a secret typed on the wrong line).
    assert!(err.contains("environment"), "{err}");
    assert!(err.contains("production"), "{err}");
    assert!(!err.contains("staging"), "{err}");
}

#[test]
fn errors_in_the_file_name_the_line_or_key_but_never_echo_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("otpd.toml");
    std::fs::write(&file, "[delivery.email]\npassword = hunter2\n").unwrap();
    let err = Config::load(Some(&file), env(&[]), &Overrides::default()).unwrap_err();
    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    std::fs::write(&file, "[delivery.email]\nport = \"hunter2\"\n").unwrap();
    let err = Config::load(Some(&file), env(&[]), &Overrides::default()).unwrap_err();
    assert!(err.contains("delivery.email.port"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    for (variable, value) in [
        ("OTPD_DELIVERY_EMAIL_PORT", "hunter2"),
        ("OTPD_LISTEN", "hunter2"),
        ("OTPD_LOG_LEVEL", "hunter2"),
        ("OTPD_LIMITS_TRUSTED_PROXIES", "10.0.0.1,hunter2"),
        ("OTPD_DELIVERY_LOG_SINK", "hunter2"),
    ] {
        let err = Config::load(None, env(&[(variable, value)]), &Overrides::default()).unwrap_err();
        assert!(!err.contains("hunter2"), "{variable}: {err}");
    }
}

#[test]
fn printing_redacts_url_credentials_and_secret_query_values() {
    let mut config = Config::default();
    config.delivery.push.url = "https://u:s3cret@push.example/x".into();
    config.delivery.letter.url = "https://print.example/in?api_key=s3cret&batch=1".into();
    config.delivery.sms.push(SmsGatewayConfig {
        name: "gw".into(),
        url: "https://sms.example/send?token=s3cret".into(),
        auth_header: String::new(),
        auth_value: String::new(),
        body: BodyFormat::Json,
        template: "{}".into(),
    });
    let text = toml::to_string(&config.redacted()).unwrap();
    assert!(!text.contains("s3cret"), "{text}");
    assert!(
        text.contains("https://u:<redacted>@push.example/x"),
        "{text}"
    );
    assert!(text.contains("batch=1"), "{text}");
}

#[test]
fn lists_come_from_comma_separated_variables() {
    let config = Config::load(
        None,
        env(&[("OTPD_PIN_BLOCKLIST", "1357, 2468")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(config.pin.blocklist, vec!["1357", "2468"]);
}

#[test]
fn direct_message_platforms_are_a_list_checked_at_load() {
    let config = Config::load(
        None,
        env(&[
            ("OTPD_DELIVERY_DM_PLATFORMS", "twitter, mastodon,signal"),
            ("OTPD_DELIVERY_DM_CASE_SENSITIVE_PLATFORMS", "signal"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    let policy = config.engine_config().dm;
    assert_eq!(policy.platforms, ["twitter", "mastodon", "signal"]);
    assert_eq!(policy.case_sensitive, ["signal"]);
    for (variable, value, named) in [
        (
            "OTPD_DELIVERY_DM_PLATFORMS",
            "Twitter",
            "delivery.dm.platforms",
        ),
        (
            "OTPD_DELIVERY_DM_PLATFORMS",
            "twitter,twitter",
            "delivery.dm.platforms",
        ),
        (
            "OTPD_DELIVERY_DM_CASE_SENSITIVE_PLATFORMS",
            "telegram",
            "delivery.dm.case_sensitive_platforms",
        ),
    ] {
        let err = Config::load(None, env(&[(variable, value)]), &Overrides::default()).unwrap_err();
        assert!(err.contains(named), "{variable}={value}: {err}");
    }
}

#[test]
fn tls_is_set_in_the_file_or_the_environment_and_its_clients_in_the_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("otpd.toml");
    std::fs::write(
        &file,
        "[server.tls]\ncert = \"/tls/cert.pem\"\nkey = \"/tls/key.pem\"\n\
         client_ca = \"/tls/ca.pem\"\n\
         [[server.tls.clients]]\nname = \"portal\"\nsubject = \"portal.example\"\nmode = \"also\"\n",
    )
    .unwrap();
    let config = Config::load(
        Some(&file),
        env(&[("OTPD_SERVER_TLS_KEY", "/run/secrets/key.pem")]),
        &Overrides::default(),
    )
    .unwrap();
    let tls = &config.server.tls;
    assert!(tls.enabled());
    assert_eq!(tls.cert, "/tls/cert.pem");
    assert_eq!(tls.key, "/run/secrets/key.pem", "env beats file");
    assert_eq!(tls.client("portal").unwrap().mode, CertificateMode::Also);
    let vars = Config::environment_variables();
    let names: Vec<&str> = vars.iter().map(|(v, _)| v.as_str()).collect();
    for expected in [
        "OTPD_SERVER_TLS_CERT",
        "OTPD_SERVER_TLS_KEY",
        "OTPD_SERVER_TLS_CLIENT_CA",
    ] {
        assert!(names.contains(&expected), "{expected} missing");
    }
    assert!(!names.contains(&"OTPD_SERVER_TLS_CLIENTS"));
    let err = Config::load(
        None,
        env(&[("OTPD_SERVER_TLS_CERT", "/tls/cert.pem")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.contains("server.tls.key"), "{err}");
    std::fs::write(
        &file,
        "[server.tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n\
         [[server.tls.clients]]\nname = \"portal\"\nsubject = \"portal.example\"\nmode = \"sometimes\"\n",
    )
    .unwrap();
    let err = Config::load(Some(&file), env(&[]), &Overrides::default()).unwrap_err();
    assert!(err.contains("server.tls.clients[0].mode"), "{err}");
}

#[test]
fn every_setting_has_an_environment_variable() {
    let vars = Config::environment_variables();
    let names: Vec<&str> = vars.iter().map(|(v, _)| v.as_str()).collect();
    for expected in [
        "OTPD_LISTEN",
        "OTPD_DATA_DIR",
        "OTPD_CODES_LOGIN_LIFETIME_SECONDS",
        "OTPD_ARGON2_MEMORY_KIB",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
}
