//! `/v1/destinations/verify`: a phone or an email proven with no account,
//! under every rule a code has, and the issuance limits (these requests
//! carry no account and no PIN, so the limits are all that stands between
//! an attacker and the SMS bill).

use hyper::StatusCode;
use otpd::config::Config;
use serde_json::{Value, json};

use crate::helpers::*;

const TO: &str = "+351912000444";

async fn send(app: &ApiClient, body: Value) -> Response {
    app.post("/v1/destinations/verify", &app.all_key, body)
        .await
}

async fn check(app: &ApiClient, challenge: &str, code: &str) -> Response {
    app.post(
        "/v1/destinations/verify/check",
        &app.all_key,
        json!({"challenge_id": challenge, "code": code}),
    )
    .await
}

/// Sends a code to `body`'s destination; answers (challenge id, code).
async fn sent(app: &TestApp, body: Value) -> (String, String) {
    let r = send(app, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["purpose"], "destination");
    let id = r.body["challenge_id"].as_str().unwrap().to_owned();
    let code = app.outbox.code_for(&id).await;
    (id, code)
}

#[tokio::test]
async fn a_phone_is_proven_once_by_its_last_code() {
    let app = spawn_app().await;
    let (first, first_code) = sent(&app, json!({"phone": TO})).await;
    let (id, code) = sent(&app, json!({"phone": TO, "locale": "en"})).await;
    let r = check(&app, &first, &first_code).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::GONE, "superseded"),
        "{}",
        r.text
    );
    let r = check(&app, &id, &wrong(&code)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(r.body["error"]["attempts_remaining"], 2);
    let r = check(&app, &id, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["destination"], TO);
    assert_eq!(r.body["verified"], true);
    assert_eq!(r.body["state"], "verified");
    assert_eq!(r.body["channel"], "sms");
    let r = check(&app, &id, &code).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::GONE, "already_used")
    );
    let r = app
        .get(&format!("/v1/destinations/verify/{id}"), &app.all_key)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["state"], "verified");
    // The message said what the code is for, in the language asked.
    let (message, rendered) = app.outbox.message_for(&id).await;
    assert_eq!(message.destination, TO);
    assert!(
        rendered.short.contains("verification code"),
        "{}",
        rendered.short
    );
}

#[tokio::test]
async fn an_email_is_proven_and_no_account_comes_of_it() {
    let app = spawn_app().await;
    let (id, code) = sent(&app, json!({"email": "ana@example.pt"})).await;
    let r = check(&app, &id, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (r.body["destination"].as_str(), r.body["channel"].as_str()),
        (Some("ana@example.pt"), Some("email"))
    );
    // Nobody holds the email: a citizen registers with it.
    let account = NewAccount::new(Identity::civil_id("31000001"))
        .phone(TO)
        .email("ana@example.pt")
        .pin(PIN);
    let r = app.register_account(&account).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // The generic challenge read does not show it (it has no account).
    let r = app.challenge_status(&id).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

#[tokio::test]
async fn bad_requests_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let (id, _) = sent(&app, json!({"phone": TO})).await;
    for (body, status, field) in [
        (json!({}), StatusCode::BAD_REQUEST, "phone"),
        (
            json!({"phone": TO, "email": "a@example.pt"}),
            StatusCode::BAD_REQUEST,
            "phone",
        ),
        (
            json!({"phone": "912000444"}),
            StatusCode::BAD_REQUEST,
            "phone",
        ),
        (
            json!({"email": "not-an-email"}),
            StatusCode::BAD_REQUEST,
            "email",
        ),
        (
            json!({"phone": TO, "channel": "email"}),
            StatusCode::BAD_REQUEST,
            "channel",
        ),
        (
            json!({"phone": TO, "channel": "letter"}),
            StatusCode::BAD_REQUEST,
            "channel",
        ),
        (
            json!({"phone": TO, "channel": "pigeon"}),
            StatusCode::BAD_REQUEST,
            "channel",
        ),
        (
            json!({"phone": TO, "lifetime_seconds": 601}),
            StatusCode::BAD_REQUEST,
            "lifetime_seconds",
        ),
        (
            json!({"phone": TO, "lifetime_seconds": 5}),
            StatusCode::BAD_REQUEST,
            "lifetime_seconds",
        ),
        (
            json!({"phone": TO, "locale": "fr"}),
            StatusCode::BAD_REQUEST,
            "locale",
        ),
        (
            json!({"phone": TO, "pin": "4821"}),
            StatusCode::BAD_REQUEST,
            "pin",
        ),
    ] {
        let r = send(&app, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["field"], field, "{body}: {}", r.text);
    }
    for (challenge, code, status, field) in [
        ("nothex", "123456", StatusCode::BAD_REQUEST, "challenge_id"),
        (id.as_str(), "12ab56", StatusCode::BAD_REQUEST, "code"),
        (id.as_str(), "1234567", StatusCode::BAD_REQUEST, "code"),
    ] {
        let r = check(&app, challenge, code).await;
        assert_eq!(r.status, status, "{challenge} {code}: {}", r.text);
        assert_eq!(r.body["error"]["field"], field, "{}", r.text);
    }
    // Its own scope: `auth` does not grant it.
    for key in [&app.accounts_key, &app.auth_key] {
        let r = app
            .post("/v1/destinations/verify", key, json!({"phone": TO}))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    }
    let r = app.get("/v1/destinations/verify/zz", &app.all_key).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

#[tokio::test]
async fn a_client_sees_only_its_own_verifications() {
    let app = spawn_app().await;
    let (id, code) = sent(&app, json!({"phone": TO})).await;
    // Another client with the verify scope: the challenge does not exist for it.
    let key = app
        .new_client(json!({"name": "shop", "scopes": ["verify"]}))
        .await;
    let other = app.with_key(&key);
    let r = other
        .post(
            "/v1/destinations/verify/check",
            &key,
            json!({"challenge_id": id, "code": code}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = other
        .get(&format!("/v1/destinations/verify/{id}"), &key)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // Its own code to the same phone does not touch the first client's.
    let r = other
        .post("/v1/destinations/verify", &key, json!({"phone": TO}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(check(&app, &id, &code).await.status, StatusCode::OK);
}

fn trust_loopback(c: &mut Config) {
    c.limits.trusted_proxies = vec!["127.0.0.1".into()];
}

/// Attack: one phone number asked for from many addresses (an attacker
/// spreading an SMS flood over a botnet). The per-destination limit counts
/// the number, whatever the address.
#[tokio::test]
async fn one_destination_from_many_addresses_is_limited_by_the_destination() {
    let app = spawn_app_with(|c| {
        trust_loopback(c);
        c.limits.issue_per_ip_minute = 2;
        c.limits.issue_per_destination_10min = 3;
    })
    .await;
    let mut answers = Vec::new();
    for n in 0..6 {
        let from = app.forwarded_for(&format!("198.51.100.{n}"));
        let r = send(&from, json!({"phone": TO})).await;
        answers.push((
            r.status,
            r.body["error"]["reason"].as_str().map(str::to_owned),
        ));
    }
    assert!(
        answers[..3].iter().all(|(s, _)| *s == StatusCode::CREATED),
        "{answers:?}"
    );
    for (status, reason) in &answers[3..] {
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{answers:?}");
        assert!(
            matches!(
                reason.as_deref(),
                Some("destination_issue_rate" | "account_issue_rate")
            ),
            "{answers:?}"
        );
    }
    assert_eq!(
        app.outbox.codes().len(),
        3,
        "only the admitted codes went out"
    );
}

/// Attack: SMS pumping, rotating numbers of one premium-rate country from
/// one client. Each number is new (no per-destination limit trips); the
/// country's budget does.
#[tokio::test]
async fn rotating_numbers_of_one_country_run_into_its_budget() {
    let app = spawn_app_with(|c| {
        trust_loopback(c);
        c.limits.sms_per_country_hour = 4;
        c.limits.sms_blocked_prefixes = vec!["+882".into()];
    })
    .await;
    let mut created = 0;
    for n in 0..10 {
        let from = app.forwarded_for(&format!("203.0.113.{n}"));
        let r = send(&from, json!({"phone": format!("+4477009001{n:02}")})).await;
        match r.status {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(
                    r.body["error"]["reason"], "sms_country_budget",
                    "{}",
                    r.text
                );
            }
            other => panic!("{other}: {}", r.text),
        }
    }
    assert_eq!(created, 4, "the country's budget");
    // Another country still gets its codes; a blocked prefix none.
    assert_eq!(
        send(&app, json!({"phone": TO})).await.status,
        StatusCode::CREATED
    );
    let r = send(&app, json!({"phone": "+88216000001"})).await;
    assert_eq!(r.error_code(), "destination_not_allowed", "{}", r.text);
    assert_eq!(app.outbox.codes().len(), 5);
}
