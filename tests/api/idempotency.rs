//! `Idempotency-Key`: a retry is answered from the first request and never runs it again.

use std::time::Duration;

use bytes::Bytes;
use engine::audit::{Actor, acting};
use engine::{Durable, LoginId, Phone, Pin};
use http_body_util::Full;
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const REPLAYED: &str = "idempotent-replayed";

fn replayed(r: &Response) -> bool {
    r.headers.get(REPLAYED).is_some_and(|v| v == "true")
}

/// A citizen with `PHONE` and `PIN`; returns the account id.
async fn citizen(app: &TestApp) -> String {
    app.registered(PHONE, "12345678").await
}

#[tokio::test]
async fn a_retried_login_sends_exactly_one_code_and_the_first_code_still_works() {
    let app = spawn_app().await;
    citizen(&app).await;
    let keyed = app.with_idempotency_key("login-7f3a");
    let first = keyed.login(PHONE, PIN).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert!(!replayed(&first), "the first answer is not a replay");
    let retry = keyed.login(PHONE, PIN).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.text);
    assert!(replayed(&retry));
    assert_eq!(retry.text, first.text, "the same answer, byte for byte");
    assert_eq!(
        retry.headers["content-type"], first.headers["content-type"],
        "with its content type"
    );
    let id = first.body["challenge_id"].as_str().unwrap();
    let code = app.outbox.code_for(id).await;
    assert_eq!(app.challenges_held(), 1, "one code issued");
    assert_eq!(app.outbox.codes().len(), 1, "one code sent");
    let approved = app.verify(id, &code).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
}

#[tokio::test]
async fn a_retried_registration_creates_one_account() {
    let app = spawn_app().await;
    let keyed = app.with_idempotency_key("register-ana");
    let first = keyed.register(PHONE, "12345678").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    // Without the key, the same registration again is a conflict.
    let retry = keyed.register(PHONE, "12345678").await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.text);
    assert!(replayed(&retry));
    assert_eq!(retry.body["account_id"], first.body["account_id"]);
    assert_eq!(app.accounts_held(), 1);
    let again = app.register(PHONE, "12345678").await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_422_and_runs_nothing() {
    let app = spawn_app().await;
    let account = citizen(&app).await;
    let keyed = app.with_idempotency_key("k-1");
    let first = keyed.login(PHONE, PIN).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let other_body = keyed.login(PHONE, "9135").await;
    let other_path = keyed.step_up(&account).await;
    for r in [&other_body, &other_path] {
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(r.error_code(), "idempotency_key_reused");
        assert_eq!(r.body["error"]["field"], "Idempotency-Key");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("different request"),
            "{}",
            r.text
        );
    }
    let view = app.account(&account).await;
    assert_eq!(
        view.body["pin_failures"], 0,
        "the wrong PIN was never tried"
    );
    assert_eq!(app.challenges_held(), 1, "no step-up code");
}

#[tokio::test]
async fn two_clients_may_use_one_key_independently() {
    let app = spawn_app().await;
    citizen(&app).await;
    let by_one = app.with_idempotency_key("shared-key");
    let by_other = by_one.with_key(&app.all_key);
    let one = by_one.login(PHONE, PIN).await;
    let other = by_other.login(PHONE, PIN).await;
    for r in [&one, &other] {
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert!(!replayed(r));
    }
    assert_ne!(one.body["challenge_id"], other.body["challenge_id"]);
    assert_eq!(app.challenges_held(), 2);
    // Each client's retry gets its own first answer.
    assert_eq!(by_one.login(PHONE, PIN).await.text, one.text);
    assert_eq!(by_other.login(PHONE, PIN).await.text, other.text);
}

#[tokio::test]
async fn concurrent_retries_with_one_key_run_one_operation() {
    let app = spawn_app().await;
    let account = citizen(&app).await;
    let keyed = app.with_idempotency_key("burst");
    let retries: Vec<_> = (0..8)
        .map(|_| {
            let keyed = keyed.clone();
            tokio::spawn(async move { keyed.login(PHONE, PIN).await })
        })
        .collect();
    let mut answers = Vec::new();
    for retry in retries {
        answers.push(retry.await.unwrap());
    }
    for r in &answers {
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.text, answers[0].text, "every retry gets the one answer");
    }
    assert_eq!(
        answers.iter().filter(|r| !replayed(r)).count(),
        1,
        "one request ran; the others waited for it and were replayed"
    );
    let id = answers[0].body["challenge_id"].as_str().unwrap();
    app.outbox.code_for(id).await;
    assert_eq!(app.challenges_held(), 1);
    assert_eq!(app.outbox.codes().len(), 1);
    assert_eq!(app.account(&account).await.body["pin_failures"], 0);
}

fn login() -> LoginId {
    LoginId::Phone(Phone::parse(PHONE).unwrap())
}

#[tokio::test]
async fn keys_and_their_answers_survive_a_restart() {
    let app = spawn_app().await;
    citizen(&app).await;
    let first = app
        .with_idempotency_key("before-restart")
        .login(PHONE, PIN)
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let id = first.body["challenge_id"].as_str().unwrap().to_owned();
    let code = app.outbox.code_for(&id).await;
    let app = app.restart().await;
    let retry = app
        .with_idempotency_key("before-restart")
        .login(PHONE, PIN)
        .await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.text);
    assert!(replayed(&retry));
    assert_eq!(retry.text, first.text);
    assert_eq!(app.challenges_held(), 1, "no second code");
    let approved = app.verify(&id, &code).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
}

#[tokio::test]
async fn a_key_is_forgotten_24_hours_after_its_first_request() {
    let app = spawn_app().await;
    citizen(&app).await;
    let keyed = app.with_idempotency_key("daily");
    let first = keyed.login(PHONE, PIN).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    app.clock
        .advance(Duration::from_secs(24 * 3600) - Duration::from_millis(1));
    assert!(
        replayed(&keyed.login(PHONE, PIN).await),
        "still within 24 h"
    );
    app.clock.advance(Duration::from_millis(1));
    let later = keyed.login(PHONE, PIN).await;
    assert_eq!(later.status, StatusCode::CREATED, "{}", later.text);
    assert!(!replayed(&later), "run again as a new request");
    assert_ne!(later.body["challenge_id"], first.body["challenge_id"]);
    // Once swept it is gone from memory and disk too (on a cluster the
    // record is replaced in place, and expires there by its TTL).
    if crate::BACKEND == otpd::config::Backend::Sled {
        app.state.engine.sweep_expired().unwrap();
        assert_eq!(
            app.state.engine.stats().idempotency_keys,
            1,
            "only the new one"
        );
    }
}

/// A raw login request carrying `key` as raw header bytes (each one sent).
async fn login_with_raw_keys(app: &TestApp, keys: &[&[u8]]) -> Response {
    let body = json!({ "phone": PHONE, "pin": PIN }).to_string();
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/v1/login", app.address))
        .header("authorization", format!("Bearer {}", app.auth_key))
        .header("content-type", "application/json");
    for key in keys {
        request = request.header(
            "idempotency-key",
            hyper::header::HeaderValue::from_bytes(key).unwrap(),
        );
    }
    app.send(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
}

#[tokio::test]
async fn malformed_keys_are_400_naming_the_header_and_nothing_runs() {
    let app = spawn_app().await;
    citizen(&app).await;
    let long = "k".repeat(256);
    let cases: [&[&[u8]]; 5] = [
        &[b""],
        &[long.as_bytes()],
        &[b"caf\xc3\xa9"],
        &[b"tab\there"],
        &[b"one", b"two"],
    ];
    for keys in cases {
        let r = login_with_raw_keys(&app, keys).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{keys:?}: {}", r.text);
        assert_eq!(r.error_code(), "invalid_field");
        assert_eq!(r.body["error"]["field"], "Idempotency-Key", "{keys:?}");
    }
    assert_eq!(app.challenges_held(), 0, "no login ran");
    let longest = "k".repeat(255);
    let r = login_with_raw_keys(&app, &[longest.as_bytes()]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn reads_ignore_the_header() {
    let app = spawn_app().await;
    let account = citizen(&app).await;
    let path = format!("/v1/accounts/{account}");
    for key in [&b"not\tvalid"[..], b"read-1", b"read-1"] {
        let request = Request::builder()
            .uri(format!("{}{path}", app.address))
            .header("authorization", format!("Bearer {}", app.accounts_key))
            .header(
                "idempotency-key",
                hyper::header::HeaderValue::from_bytes(key).unwrap(),
            )
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = app.send(request).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(!replayed(&r));
    }
    assert_eq!(app.state.engine.stats().idempotency_keys, 0);
}

#[tokio::test]
async fn a_wrong_pin_retried_with_its_key_is_counted_once() {
    let app = spawn_app().await;
    let account = citizen(&app).await;
    let keyed = app.with_idempotency_key("wrong-pin");
    let first = keyed.login(PHONE, "9135").await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED, "{}", first.text);
    let retry = keyed.login(PHONE, "9135").await;
    assert_eq!(retry.status, StatusCode::UNAUTHORIZED);
    assert!(replayed(&retry));
    assert_eq!(retry.text, first.text);
    assert_eq!(app.account(&account).await.body["pin_failures"], 1);
}

#[tokio::test]
async fn an_answer_over_the_limit_is_not_kept_and_its_retry_is_409_without_running() {
    let app = spawn_app_with(|c| c.idempotency.max_answer_bytes = 256).await;
    citizen(&app).await;
    let (id, code) = app.login_code(PHONE).await;
    let keyed = app.with_idempotency_key("verify-big");
    let first = keyed.verify(&id, &code).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert!(first.text.len() > 256, "an attestation makes it long");
    let retry = keyed.verify(&id, &code).await;
    assert_eq!(retry.status, StatusCode::CONFLICT, "{}", retry.text);
    assert_eq!(retry.error_code(), "idempotent_answer_not_kept");
    assert_eq!(retry.body["error"]["first_status"], 200);
    assert!(!replayed(&retry));
}

#[tokio::test]
async fn a_refusal_that_changed_nothing_is_not_kept_and_its_retry_runs_again() {
    let app = spawn_app_with(|c| c.limits.issue_per_account_10min = 1).await;
    citizen(&app).await;
    app.login_code(PHONE).await;
    let keyed = app.with_idempotency_key("limited");
    let refused = keyed.login(PHONE, PIN).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text
    );
    app.clock.advance(Duration::from_secs(600));
    let retry = keyed.login(PHONE, PIN).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.text);
    assert!(!replayed(&retry), "a 429 is not an answer to keep");
    assert!(replayed(&keyed.login(PHONE, PIN).await), "a 201 is");
}

/// The body `login` sends, as the server fingerprints it.
fn login_body() -> Value {
    json!({ "phone": PHONE, "pin": PIN })
}

#[tokio::test]
async fn a_request_that_ran_but_lost_its_answer_is_409_and_never_runs_again() {
    let app = spawn_app().await;
    citizen(&app).await;
    // What a crash between the login's batch and its answer leaves: the
    // claim, written with the login's change (on a cluster: taken before
    // the login, its node gone past the take's lease), and no answer.
    let claim = otpd::idempotency_claim(
        &app.state.engine,
        "auth-only",
        "crashed",
        (&Method::POST, "/v1/login"),
        login_body().to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(app.state.engine.take(&claim).unwrap(), engine::Taken::Run);
    let actor = Actor {
        client: Some("auth-only".into()),
        idempotency: Some(std::sync::Arc::new(claim)),
        ..Actor::default()
    };
    acting(&actor, || {
        app.state
            .engine
            .login(&login(), &Pin::new(PIN), None, None, None)
    })
    .and_then(Durable::wait)
    .unwrap();
    let app = app.restart().await;
    app.clock.advance(Duration::from_secs(121));
    let keyed = app.with_idempotency_key("crashed");
    let retry = keyed.post("/v1/login", &app.auth_key, login_body()).await;
    assert_eq!(retry.status, StatusCode::CONFLICT, "{}", retry.text);
    assert_eq!(retry.error_code(), "idempotent_answer_lost");
    assert_eq!(retry.body["error"]["field"], "Idempotency-Key");
    assert_eq!(app.challenges_held(), 1, "no second code");
    // Another request with the key is still another request.
    let other = keyed.login(PHONE, "9135").await;
    assert_eq!(
        other.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        other.text
    );
}
