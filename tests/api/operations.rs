use std::sync::atomic::Ordering;

use hyper::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn livez_readyz_and_metrics_answer_without_a_key() {
    let app = spawn_app().await;
    let live = app.livez().await;
    assert_eq!(live.status, 200);
    let ready = app.readyz().await;
    assert_eq!(ready.status, 200);
    app.registered(PHONE, "12345678").await;
    app.login_code(PHONE).await;
    let metrics = app.metrics().await;
    assert_eq!(metrics.status, 200);
    for needle in [
        "otpd_http_requests_total",
        "otpd_http_request_duration_seconds_bucket",
        "le=\"0.00005\"",
        "otpd_codes_issued_total",
    ] {
        assert!(metrics.text.contains(needle), "missing {needle}");
    }
    assert!(
        !metrics.text.contains("912345678"),
        "no phone numbers in metrics"
    );
}

#[tokio::test]
async fn readyz_is_503_while_draining() {
    let app = spawn_app().await;
    app.state.draining.store(true, Ordering::SeqCst);
    let r = app.readyz().await;
    assert_eq!((r.status.as_u16(), r.error_code()), (503, "draining"));
    assert_eq!(app.livez().await.status, 200);
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let app = spawn_app().await;
    let r = app.livez().await;
    assert_eq!(r.headers["x-request-id"].len(), 16);
}

#[tokio::test]
async fn a_restart_keeps_accounts_locks_and_live_challenges() {
    let app = spawn_app().await;
    let active = app.registered(PHONE, "12345678").await;
    let locked = app.registered("+351934567890", "22345678").await;
    app.lock(&locked, "audit").await;
    let (challenge, code) = app.login_code(PHONE).await;
    let wrong_once = app.verify(&challenge, &wrong(&code)).await;
    assert_eq!(wrong_once.status, 401);

    let app = app.restart().await;
    assert_eq!(app.account(&active).await.body["code_failures"], 1);
    assert_eq!(app.account(&locked).await.body["state"], "locked");
    assert_eq!(app.login("+351934567890", PIN).await.status, 423);
    let status = app.challenge_status(&challenge).await;
    assert_eq!(status.body["state"], "pending");
    assert_eq!(status.body["attempts_remaining"], 2);
    let v = app.verify(&challenge, &code).await;
    assert_eq!(v.status, 200, "{}", v.text);
}

#[tokio::test]
async fn logs_never_contain_pins_codes_keys_or_phone_numbers() {
    let app = spawn_app().await;
    let phone = "+351967452301";
    let pin = "82649173";
    let account = NewAccount::new(Identity::civil_id("31415926"))
        .phone(phone)
        .pin(pin);
    let r = app.register_account(&account).await;
    assert_eq!(r.status, 201);
    let login = app.login(phone, pin).await;
    let challenge = login.body["challenge_id"].as_str().unwrap().to_owned();
    let code = app.outbox.code_for(&challenge).await;
    app.login(phone, "8265").await;
    app.verify(&challenge, &wrong(&code)).await;
    app.verify(&challenge, &code).await;
    let logs = String::from_utf8(captured_logs().lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains(&challenge) || logs.contains("/v1/verify"),
        "the flow was logged"
    );
    let secret_part = app.auth_key.rsplit('_').next().unwrap();
    for secret in [
        pin,
        "82649174",
        &code,
        &wrong(&code),
        "967452301",
        secret_part,
    ] {
        let leaks: Vec<&str> = logs
            .lines()
            .filter(|line| contains_token(without_timestamp(line), secret))
            .collect();
        assert!(leaks.is_empty(), "the log contains {secret}: {leaks:?}");
    }
}

/// A log line without its leading timestamp, whose six digits of
/// microseconds can match a six-digit code by chance.
fn without_timestamp(line: &str) -> &str {
    match line.split_once(' ') {
        Some((first, rest)) if first.ends_with('Z') && first.contains('T') => rest,
        _ => line,
    }
}

/// Whether `needle` occurs on its own, not inside a longer run of hex digits
/// (ids and numbers in the log may contain any short digit string by chance).
fn contains_token(haystack: &str, needle: &str) -> bool {
    let bytes = haystack.as_bytes();
    haystack.match_indices(needle).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + needle.len()).copied();
        let hexish = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_hexdigit());
        !hexish(before) && !hexish(after)
    })
}

#[tokio::test]
async fn an_admin_backup_restores_into_a_working_server() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    let locked = app.lock(&account, "fraud").await;
    assert_eq!(locked.status, StatusCode::OK, "{}", locked.text);

    let refused = app.with_key(&app.auth_key).backup().await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let first = app.backup().await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let second = app.backup().await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    assert_ne!(first.body["file"], second.body["file"]);
    let file = std::path::PathBuf::from(first.body["file"].as_str().unwrap());
    assert!(file.starts_with(app.config.data_dir.join("backups")));
    assert!(first.body["records"].as_u64().unwrap() >= 2);

    let elsewhere = tempfile::tempdir().unwrap();
    let data = elsewhere.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let restored = engine::restore_backup(file.parent().unwrap(), &data.join("store")).unwrap();
    assert_eq!(restored.sha256, first.body["sha256"].as_str().unwrap());
    let copy = app.spawn_on_copy(data).await;
    let view = copy.account(&account).await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.text);
    assert_eq!(view.body["state"], "locked");
}

#[tokio::test]
async fn a_failed_backup_is_an_opaque_500_whose_cause_is_logged() {
    let app = spawn_app().await;
    // Where the server writes backups, a file: the backup cannot be made.
    std::fs::write(app.config.data_dir.join("backups"), b"in the way").unwrap();
    let r = app.backup().await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (500, "backup_failed"),
        "{}",
        r.text
    );
    let data_dir = app.config.data_dir.display().to_string();
    assert!(
        !r.text.contains(&data_dir) && !r.text.contains("backups"),
        "5xx bodies name no paths or causes: {}",
        r.text
    );
    let request_id = r.headers["x-request-id"].to_str().unwrap().to_owned();
    let logs = String::from_utf8(captured_logs().lock().unwrap().clone()).unwrap();
    assert!(
        logs.lines()
            .any(|l| l.contains("ERROR") && l.contains(&request_id) && l.contains("backup failed")),
        "no ERROR line with the cause for request {request_id}"
    );
}

/// An integrator generates a client from `/openapi.json` with no key; it
/// is the description committed in docs/ (which a unit test keeps equal to
/// what the code generates), and answers name their schemas.
#[tokio::test]
async fn the_openapi_description_is_served_without_a_key_and_is_the_committed_one() {
    let app = spawn_app().await;
    let r = app
        .request(hyper::Method::GET, "/openapi.json", None, None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/json");
    let committed = std::fs::read_to_string(repository().join("docs/openapi.json")).unwrap();
    assert!(
        r.text == committed,
        "served and committed descriptions differ"
    );
    assert_eq!(r.body["openapi"], "3.1.0");
    assert_eq!(
        r.body["paths"]["/v1/login"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/IssuedOut"
    );
}
