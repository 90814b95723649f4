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

/// `otpd client ARGS` on `data`, with `admin` as OTPD_ADMIN_KEY if given:
/// (succeeded, stdout, stderr).
fn client_cli(
    data: &std::path::Path,
    admin: Option<&str>,
    args: &[&str],
) -> (bool, String, String) {
    let mut command = otpd(data);
    if let Some(key) = admin {
        command.env("OTPD_ADMIN_KEY", key);
    }
    let out = command.arg("client").args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The status a key gets from the server (401 when it is refused).
async fn status_with(server: &Server, key: &str) -> u16 {
    let api = support::Api::new(server, key);
    let (status, _) = api
        .call(
            hyper::Method::GET,
            "/v1/challenges/0123456789abcdef0123456789abcdef",
            None,
        )
        .await
        .unwrap();
    status.as_u16()
}

#[tokio::test]
async fn clients_are_managed_through_the_running_server_and_on_the_stopped_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let admin = add_client(&data);
    // Stopped: on the store, with a policy.
    let (ok, key, err) = client_cli(
        &data,
        None,
        &[
            "add",
            "portal",
            "--scopes",
            "auth",
            "--channels",
            "sms",
            "--rate",
            "10/minute",
            "--expires-at",
            "2099-01-01",
        ],
    );
    assert!(ok, "{err}");
    let key = key.trim().to_owned();
    assert!(key.starts_with("otpd_"), "{key}");
    assert!(err.contains("shown only now"), "{err}");
    let (ok, list, _) = client_cli(&data, None, &["list"]);
    assert!(ok);
    let line = list.lines().find(|l| l.starts_with("portal ")).unwrap();
    for part in [
        "active",
        "scopes=auth",
        "channels=sms",
        "rate=10/minute",
        "live until 2099",
    ] {
        assert!(line.contains(part), "{part}: {line}");
    }
    assert!(!list.contains(&key[22..]), "no key in the list");
    let (ok, _, err) = client_cli(
        &data,
        None,
        &["add", "x", "--scopes", "auth", "--rate", "lots"],
    );
    assert!(!ok && err.contains("--rate"), "{err}");

    // Running: through the admin API, no restart.
    let server = Server::start(&data);
    let url = format!("http://{}", server.address);
    assert_eq!(status_with(&server, &key).await, 404);
    let (ok, _, err) = client_cli(&data, None, &["rotate", "portal", "--server", &url]);
    assert!(!ok && err.contains("OTPD_ADMIN_KEY"), "{err}");
    let (ok, second, err) =
        client_cli(&data, Some(&admin), &["rotate", "portal", "--server", &url]);
    assert!(ok, "{err}");
    let second = second.trim().to_owned();
    assert_eq!(status_with(&server, &second).await, 404, "works at once");
    assert_eq!(
        status_with(&server, &key).await,
        404,
        "and so does the old one"
    );
    let first_id = &key[5..21];
    let (ok, _, err) = client_cli(
        &data,
        Some(&admin),
        &["revoke", "portal", "--key", first_id, "--server", &url],
    );
    assert!(ok, "{err}");
    assert_eq!(status_with(&server, &key).await, 401, "refused at once");
    assert_eq!(status_with(&server, &second).await, 404);
    let (ok, added, err) = client_cli(
        &data,
        Some(&admin),
        &["add", "portal-saude", "--scopes", "auth", "--server", &url],
    );
    assert!(ok, "{err}");
    assert_eq!(status_with(&server, added.trim()).await, 404);
    let (ok, list, err) = client_cli(&data, Some(&admin), &["list", "--server", &url]);
    assert!(ok, "{err}");
    let line = list.lines().find(|l| l.starts_with("portal ")).unwrap();
    assert!(line.contains(&format!("{first_id} (revoked)")), "{line}");
    let (ok, _, err) = client_cli(&data, Some(&admin), &["revoke", "portal", "--server", &url]);
    assert!(ok, "{err}");
    assert_eq!(status_with(&server, &second).await, 401);
    let (ok, _, err) = client_cli(&data, Some(&admin), &["revoke", "nobody", "--server", &url]);
    assert!(!ok && err.contains("no active client"), "{err}");
    assert!(server.terminate().success());

    // Stopped again: the store has every change the server made.
    let (ok, list, _) = client_cli(&data, None, &["list"]);
    assert!(ok);
    assert!(
        list.lines()
            .any(|l| l.starts_with("portal ") && l.contains("revoked")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("portal-saude ") && l.contains("active")),
        "{list}"
    );
}

/// With `ops_listen`, the real binary serves health, metrics and the admin
/// API on that address only, and relying parties' routes on `listen` only.
#[tokio::test]
async fn an_operators_listener_takes_health_metrics_and_admin_off_the_public_one() {
    use hyper::{Method, StatusCode};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = add_client(&data);
    let mut settings = settings();
    settings.push(("OTPD_OPS_LISTEN", "127.0.0.1:0"));
    let server = Server::spawn(otpd_with(&data, &settings));
    let ops_address = server.ops_address.expect("the log names the ops address");
    assert_ne!(ops_address, server.address);
    let public = support::Api::new(&server, &key);
    let mut ops = support::Api::new(&server, &key);
    ops.base = format!("http://{ops_address}");
    let status = |answer: support::Answer| answer.expect("an answer").0;
    for path in ["/livez", "/readyz", "/metrics", "/v1/admin/clients"] {
        assert_eq!(
            status(public.call(Method::GET, path, None).await),
            StatusCode::NOT_FOUND,
            "{path}"
        );
        assert_eq!(
            status(ops.call(Method::GET, path, None).await),
            StatusCode::OK,
            "{path}"
        );
    }
    // A relying party's call: the public side answers it (here, a bad
    // body), the operators' side knows no such route.
    let login = serde_json::json!({});
    assert_eq!(
        status(public.post("/v1/login", login.clone()).await),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status(ops.post("/v1/login", login).await),
        StatusCode::NOT_FOUND
    );
    // The admin API still wants an admin key there.
    let mut stranger = support::Api::new(&server, "otpd_not_a_key");
    stranger.base = ops.base.clone();
    assert_eq!(
        status(stranger.call(Method::GET, "/v1/admin/clients", None).await),
        StatusCode::UNAUTHORIZED
    );
    server.terminate();
}

/// A server certificate and key for localhost from `ca`, written to
/// `dir/server.pem` and `dir/server.key`; returns the certificate.
fn write_server_certificate(
    dir: &std::path::Path,
    ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    serial: u64,
) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.serial_number = Some(serial.into());
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = params.signed_by(&key, ca).unwrap();
    // Each file by a rename, as docs/OPERATIONS.md asks, so a look at the
    // files never sees half of one.
    for (name, text) in [
        ("server.key", key.serialize_pem()),
        ("server.pem", certificate.pem()),
    ] {
        let temporary = dir.join(format!("{name}.new"));
        std::fs::write(&temporary, text).unwrap();
        std::fs::rename(&temporary, dir.join(name)).unwrap();
    }
    certificate.der().to_vec()
}

/// The certificate the server at `address` shows in a TLS handshake.
async fn served_certificate(
    address: std::net::SocketAddr,
    ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// The real binary reloads its certificate on SIGHUP: new connections get
/// the new one, the process goes on.
#[tokio::test]
async fn sighup_puts_a_renewed_certificate_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut ca = rcgen::CertificateParams::default();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
    let first = write_server_certificate(dir.path(), &ca, 1);
    let (cert, key) = (
        dir.path().join("server.pem").display().to_string(),
        dir.path().join("server.key").display().to_string(),
    );
    let mut settings = settings();
    settings.push(("OTPD_SERVER_TLS_CERT", &cert));
    settings.push(("OTPD_SERVER_TLS_KEY", &key));
    let server = Server::spawn(otpd_with(&data, &settings));
    assert_eq!(served_certificate(server.address, &ca).await, first);

    let renewed = write_server_certificate(dir.path(), &ca, 2);
    let pid = server.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Wait for the server to say it reloaded (an event, bounded), then look.
    let deadline = std::time::Instant::now() + support::PATIENCE;
    let said = |needle: &str| {
        server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    };
    while !(said("SIGHUP: reloading the TLS files") && said("TLS certificate reloaded")) {
        assert!(std::time::Instant::now() < deadline, "no reload logged");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(served_certificate(server.address, &ca).await, renewed);
    assert!(server.terminate().success());
}
