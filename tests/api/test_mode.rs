//! Test mode end to end: a test client runs a front-end suite against test
//! destinations whose codes are fixed and never sent, and is refused every
//! account that is not made of them; production has none of it.

use std::sync::Arc;

use hyper::StatusCode;
use otpd::config::{Config, Environment};
use serde_json::json;

use crate::helpers::*;

const TEST_PHONE: &str = "+351910000000";
const TEST_EMAIL: &str = "dev@example.pt";

fn test_destinations(c: &mut Config) {
    c.test_mode.destinations = [(TEST_PHONE, "123456"), (TEST_EMAIL, "654321")]
        .into_iter()
        .map(|(d, code)| (d.to_owned(), code.to_owned()))
        .collect();
}

async fn test_client(app: &TestApp) -> ApiClient {
    let r = app
        .add_client(json!({ "name": "fe-dev", "scopes": ["auth", "accounts"], "test": true }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["client"]["test"], true);
    app.with_key(r.body["key"].as_str().unwrap())
}

#[tokio::test]
async fn a_front_end_suite_logs_in_with_the_fixed_code_and_nothing_is_sent() {
    let app = spawn_app_with(test_destinations).await;
    let fe = test_client(&app).await;
    let account = NewAccount::new(Identity::civil_id("12345678"))
        .phone(TEST_PHONE)
        .email(TEST_EMAIL)
        .pin(PIN);
    let r = fe.register_account(&account).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let account = r.body["account_id"].as_str().unwrap().to_owned();
    let r = fe
        .login_with(Contact::Phone(TEST_PHONE), PIN, Sending::by("sms"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let login = r.body["challenge_id"].as_str().unwrap().to_owned();
    let r = fe.step_up_with(&account, Sending::by("email")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let step_up = r.body["challenge_id"].as_str().unwrap().to_owned();
    for id in [&login, &step_up] {
        let status = fe.challenge_status(id).await;
        assert_eq!(status.body["delivery"], "withheld", "{}", status.text);
    }
    assert_eq!(fe.verify(&login, "123456").await.status, StatusCode::OK);
    assert_eq!(
        fe.step_up_verify(&step_up, "654321").await.status,
        StatusCode::OK
    );
    // Nothing reached the gateway: once a code to a real number has been
    // delivered (the sender goes oldest first), no message went to a test
    // destination.
    app.registered(PHONE, "22345678").await;
    let (real, _) = app.login_code(PHONE).await;
    let sent = app.outbox.message_for(&real).await;
    assert_eq!(sent.0.destination, PHONE);
    let to_tests: Vec<String> = app
        .outbox
        .sent()
        .into_iter()
        .map(|(m, _)| m.destination)
        .filter(|d| d == TEST_PHONE || d == TEST_EMAIL)
        .collect();
    assert!(to_tests.is_empty(), "sent to {to_tests:?}");
}

#[tokio::test]
async fn a_test_client_is_refused_every_account_not_made_of_test_destinations() {
    let app = spawn_app_with(test_destinations).await;
    let fe = test_client(&app).await;
    let real = app.registered(PHONE, "12345678").await;
    let refused = |r: &Response, field: &str| {
        assert_eq!(
            (r.status, r.error_code(), r.body["error"]["field"].as_str()),
            (StatusCode::FORBIDDEN, "not_permitted", Some(field)),
            "{}",
            r.text
        );
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("fe-dev") && message.contains("test destination"),
            "{message}"
        );
        assert!(
            !message.contains("912345678"),
            "no contact of the account: {message}"
        );
    };
    refused(&fe.account(&real).await, "account_id");
    refused(&fe.step_up(&real).await, "account_id");
    refused(&fe.cancel(&real).await, "account_id");
    refused(
        &fe.push_device(&real, "token-0123456789abcdef").await,
        "account_id",
    );
    refused(&fe.login(PHONE, PIN).await, "phone");
    let mixed = NewAccount::new(Identity::civil_id("22345678"))
        .phone(TEST_PHONE)
        .email("ana@example.pt")
        .pin(PIN);
    refused(&fe.register_account(&mixed).await, "email");
    // An account that is real (ana's email) though it shares a test number.
    assert_eq!(
        app.register_account(&mixed).await.status,
        StatusCode::CREATED
    );
    refused(&fe.login(TEST_PHONE, PIN).await, "account_id");
    let a = app.account(&real).await;
    assert_eq!(a.body["state"], "active");
    assert_eq!(a.body["pin_failures"], 0);
}

#[tokio::test]
async fn production_refuses_test_clients_and_will_not_start_with_one() {
    let app = spawn_app_with(|c| c.environment = Environment::Production).await;
    let r = app
        .add_client(json!({ "name": "fe-dev", "scopes": ["auth"], "test": true }))
        .await;
    assert_eq!(
        (r.status, r.error_code(), r.body["error"]["field"].as_str()),
        (StatusCode::FORBIDDEN, "not_permitted", Some("test")),
        "{}",
        r.text
    );
    drop(app);

    // A test client made elsewhere, then the store served in production.
    let mut app = spawn_app().await;
    test_client(&app).await;
    app.stop().await.unwrap();
    let mut config = app.config.clone();
    let engine = Arc::downgrade(&app.state.engine);
    let dir = Arc::clone(&app.dir);
    drop(app);
    while engine.strong_count() > 0 {
        tokio::task::yield_now().await;
    }
    config.environment = Environment::Production;
    let deps = || otpd::Dependencies {
        clock: Arc::new(engine::ManualClock::new(START)),
        rng: engine::seeded_rng([1; 32]),
        code_key: engine::CodeKey::new([42; 32]),
        delivery: Some(Arc::new(Outbox::default()) as Arc<dyn otpd::delivery::Channel>),
    };
    let err = otpd::App::build(config.clone(), deps()).unwrap_err();
    assert!(err.to_string().contains("fe-dev"), "{err}");
    assert_eq!(err.exit_code(), otpd::failure::Failure::CONFIG);
    // Revoked on the stopped store, it starts.
    config.environment = Environment::Development;
    let engine = engine::Engine::open(
        config.engine_config(),
        engine::CodeKey::new([42; 32]),
        Arc::new(engine::ManualClock::new(START)),
        engine::seeded_rng([2; 32]),
    )
    .unwrap();
    engine
        .revoke_client("fe-dev")
        .and_then(engine::Durable::wait)
        .unwrap();
    drop(engine);
    config.environment = Environment::Production;
    assert!(otpd::App::build(config, deps()).is_ok());
    drop(dir);
}
