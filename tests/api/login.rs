use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn register_login_and_verify_approve_the_citizen() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    let r = app.login(PHONE, PIN).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["channel"], "sms");
    assert_eq!(r.body["masked_destination"], "+351******678");
    assert_eq!(r.body["purpose"], "login");
    assert_eq!(r.body["expires_at"], "2026-11-23T00:05:00.000Z");
    assert!(
        r.body.get("code").is_none(),
        "the code is never in a response"
    );
    let challenge = r.body["challenge_id"].as_str().unwrap();
    let code = app.outbox.code_for(challenge).await;
    assert!(!r.text.contains(&code));
    let v = app.verify(challenge, &code).await;
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!(v.body["result"], "approved");
    assert_eq!(v.body["account_id"], account.as_str());
    assert_eq!(
        v.body["identity"],
        json!({ "kind": "civil_id", "number": "12345678", "country": null })
    );
    let again = app.verify(challenge, &code).await;
    assert_eq!(
        (again.status.as_u16(), again.error_code()),
        (410, "already_used")
    );
}

#[tokio::test]
async fn unknown_phone_and_wrong_pin_get_identical_answers() {
    let app = spawn_app().await;
    app.registered(PHONE, "12345678").await;
    let unknown = app.login("+351999999999", PIN).await;
    let wrong_pin = app.login(PHONE, "9135").await;
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.status, wrong_pin.status);
    assert_eq!(unknown.body, wrong_pin.body);
    assert_eq!(unknown.error_code(), "invalid_credentials");
}

#[tokio::test]
async fn only_the_last_code_sent_is_valid() {
    let app = spawn_app().await;
    app.registered(PHONE, "12345678").await;
    let (first, first_code) = app.login_code(PHONE).await;
    let (second, second_code) = app.login_code(PHONE).await;
    let old = app.verify(&first, &first_code).await;
    assert_eq!((old.status.as_u16(), old.error_code()), (410, "superseded"));
    let status = app.challenge_status(&first).await;
    assert_eq!(status.body["state"], "superseded");
    assert_eq!(app.verify(&second, &second_code).await.status, 200);
}

#[tokio::test]
async fn wrong_expired_and_exhausted_codes_get_typed_failures() {
    let app = spawn_app().await;
    app.registered(PHONE, "12345678").await;
    let (id, code) = app.login_code(PHONE).await;
    let r = app.verify(&id, &wrong(&code)).await;
    assert_eq!((r.status.as_u16(), r.error_code()), (401, "wrong_code"));
    assert_eq!(r.body["error"]["attempts_remaining"], 2);
    app.verify(&id, &wrong(&code)).await;
    app.verify(&id, &wrong(&code)).await;
    let r = app.verify(&id, &code).await;
    assert_eq!((r.status.as_u16(), r.error_code()), (410, "exhausted"));

    let (id, code) = app.login_code(PHONE).await;
    app.clock.advance(Duration::from_secs(300));
    let r = app.verify(&id, &code).await;
    assert_eq!((r.status.as_u16(), r.error_code()), (410, "expired"));
    let status = app.challenge_status(&id).await;
    assert_eq!(status.body["state"], "expired");
}

#[tokio::test]
async fn resend_has_a_cooldown_and_kills_the_previous_code() {
    let app = spawn_app().await;
    app.registered(PHONE, "12345678").await;
    let (id, code) = app.login_code(PHONE).await;
    let r = app.resend(&id).await;
    assert_eq!((r.status.as_u16(), r.error_code()), (429, "too_soon"));
    assert_eq!(r.headers["retry-after"], "30");
    app.clock.advance(Duration::from_secs(30));
    let r = app.resend(&id).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let new_id = r.body["challenge_id"].as_str().unwrap();
    assert_eq!(app.verify(&id, &code).await.error_code(), "superseded");
    let new_code = app.outbox.code_for(new_id).await;
    assert_eq!(app.verify(new_id, &new_code).await.status, 200);
}

#[tokio::test]
async fn login_by_email_with_a_chosen_channel_and_a_shorter_lifetime() {
    let app = spawn_app().await;
    let ana = NewAccount::new(Identity::passport("ab123456", "br"))
        .phone("+55 11 91234-5678")
        .email("Ana@Example.com")
        .pin(PIN);
    let r = app.register_account(&ana).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["identity"]["country"], "BR");
    let by_email = Contact::Email("ana@example.com");
    let ambiguous = app.login_with(by_email, PIN, Sending::default()).await;
    assert_eq!(
        (
            ambiguous.status.as_u16(),
            ambiguous.body["error"]["field"].as_str()
        ),
        (400, Some("channel"))
    );
    let r = app
        .login_with(by_email, PIN, Sending::by("email").lifetime_seconds(60))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["masked_destination"], "a***@example.com");
    assert_eq!(r.body["expires_at"], "2026-11-23T00:01:00.000Z");
    let too_long = app
        .login_with(by_email, PIN, Sending::by("email").lifetime_seconds(301))
        .await;
    assert_eq!(too_long.body["error"]["field"], "lifetime_seconds");
}

#[tokio::test]
async fn lifetime_errors_name_lifetime_seconds_whether_range_or_type() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    for (seconds, code) in [
        (json!(5), "invalid_field"),
        (json!(301), "invalid_field"),
        (json!("a minute"), "malformed_json"),
        (json!(-1), "malformed_json"),
    ] {
        let login = json!({ "phone": PHONE, "pin": PIN, "lifetime_seconds": seconds });
        let step_up = json!({ "account_id": account, "lifetime_seconds": seconds });
        for (path, body) in [("/v1/login", login), ("/v1/step-up", step_up)] {
            let r = app.post(path, &app.all_key, body).await;
            assert_eq!(
                (
                    r.status.as_u16(),
                    r.error_code(),
                    r.body["error"]["field"].as_str()
                ),
                (400, code, Some("lifetime_seconds")),
                "{path} {seconds}: {}",
                r.text
            );
        }
    }
}

#[tokio::test]
async fn step_up_issues_and_verifies_without_a_pin() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    let r = app.step_up(&account).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["purpose"], "step_up");
    let id = r.body["challenge_id"].as_str().unwrap();
    let code = app.outbox.code_for(id).await;
    let as_login = app.verify(id, &code).await;
    assert_eq!(as_login.status, 404, "a step-up code is not a login code");
    let ok = app.step_up_verify(id, &code).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.body["purpose"], "step_up");
}

#[tokio::test]
async fn push_device_registration_enables_the_push_channel() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    let no_device = app.step_up_with(&account, Sending::by("push")).await;
    assert_eq!(
        (no_device.status.as_u16(), no_device.error_code()),
        (409, "channel_unavailable")
    );
    let r = app
        .push_device(&account, "fcm-token-0123456789abcdef")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.step_up_with(&account, Sending::by("push")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["masked_destination"], "registered app");
    let challenge = r.body["challenge_id"].as_str().unwrap();
    let (message, _) = app.outbox.message_for(challenge).await;
    assert_eq!(message.destination, "fcm-token-0123456789abcdef");
}
