//! Contacts end to end: a code by direct message through a relay on
//! loopback (retried and dead-lettered by the outbox), a handle added by the
//! contact-change flow, contacts removed with a step-up code while a way in
//! remains, and the citizen's own language for every message.

use std::time::Duration;

use engine::Locale;
use otpd::config::Config;
use serde_json::{Value, json};

use crate::delivery::{code_in, fast_retries, wait_for_delivery};
use crate::helpers::*;
use crate::peers::{Answer, HttpPeer};

const EMAIL: &str = "ana@example.pt";

/// Sends direct messages to `relay`, with its credential read from a file.
fn dm_relay(relay: &HttpPeer, credential: &std::path::Path) -> impl FnOnce(&mut Config) {
    let url = format!("{}/dm", relay.url);
    let reference = format!("file:{}", credential.display());
    move |c| {
        // SMS and email still go to the test's capture; the relay takes DMs.
        fast_retries(c);
        c.delivery.dm.url = url;
        c.delivery.dm.auth_header = "Authorization".into();
        c.delivery.dm.auth_value = reference;
        c.delivery.dm.platforms = vec!["twitter".into(), "mastodon".into()];
    }
}

/// A relay on loopback, and the file its credential is read from.
async fn relay() -> (HttpPeer, tempfile::NamedTempFile) {
    relay_answering(&[]).await
}

async fn relay_answering(script: &[Answer]) -> (HttpPeer, tempfile::NamedTempFile) {
    let credential = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(credential.path(), "Bearer relay-token\n").unwrap();
    (HttpPeer::start(script).await, credential)
}

async fn register(app: &TestApp, account: &NewAccount) -> String {
    let r = app.register_account(account).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["account_id"].as_str().unwrap().to_owned()
}

/// The account's audit events, newest first, as the API lists them.
async fn events(app: &TestApp, account: &str) -> Vec<Value> {
    let r = app.account_events(account, "limit=1000").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["events"].as_array().unwrap().clone()
}

fn first_of<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {events:?}"))
}

#[tokio::test]
async fn a_login_code_by_direct_message_reaches_the_relay_and_verifies() {
    let (relay, credential) = relay().await;
    let app = spawn_app_with(dm_relay(&relay, credential.path())).await;
    let ana = NewAccount::new(Identity::civil_id("12345678"))
        .phone(PHONE)
        .pin(PIN)
        .dm("Twitter", "@Ana_Silva")
        .locale("en");
    let r = app.register_account(&ana).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.body["dm"],
        json!({ "platform": "twitter", "handle": "a***" }),
        "masked in the answer"
    );
    assert_eq!(r.body["locale"], "en");
    let account = r.body["account_id"].as_str().unwrap().to_owned();

    let login = app
        .login_with(Contact::Phone(PHONE), PIN, Sending::by("dm"))
        .await;
    assert_eq!(login.status, 201, "{}", login.text);
    assert_eq!(login.body["channel"], "dm");
    assert_eq!(login.body["masked_destination"], "twitter:a***");
    let challenge = login.body["challenge_id"].as_str().unwrap().to_owned();

    let request = relay.wait_for(1, || {}).await.remove(0);
    assert_eq!(request.path, "/dm");
    assert_eq!(request.headers["authorization"], "Bearer relay-token");
    assert_eq!(request.headers["content-type"], "application/json");
    let body = request.json();
    assert_eq!(body["platform"], "twitter");
    assert_eq!(
        body["handle"], "ana_silva",
        "normalised: Twitter ignores case"
    );
    assert_eq!(
        request.headers["idempotency-key"],
        body["message_id"].as_str().unwrap()
    );
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("Never share this code"), "in English: {text}");
    let code = code_in(text);
    wait_for_delivery(&app, &challenge, "sent", || {}).await;
    assert_eq!(app.verify(&challenge, &code).await.status, 200);

    let status = app.challenge_status(&challenge).await;
    assert_eq!(status.body["masked_destination"], "twitter:a***");
    let events = events(&app, &account).await;
    let issued = first_of(&events, "code_issued");
    assert_eq!(issued["details"]["channel"], "dm");
    assert_eq!(issued["details"]["destination"], "twitter:a***");
    let registered = first_of(&events, "registered");
    assert_eq!(registered["details"]["dm"], "twitter:a***");
    let trail = serde_json::to_string(&events).unwrap();
    assert!(
        !trail.contains("ana_silva"),
        "the handle is masked in every event"
    );
}

#[tokio::test]
async fn a_relay_that_fails_is_retried_then_a_refusal_is_dead_lettered() {
    let (relay, credential) = relay_answering(&[Answer::Status(503), Answer::Status(400)]).await;
    let app = spawn_app_with(dm_relay(&relay, credential.path())).await;
    let ana = NewAccount::new(Identity::civil_id("12345678"))
        .phone(PHONE)
        .pin(PIN)
        .dm("mastodon", "ana@social.example");
    let account = register(&app, &ana).await;
    let r = app.step_up_with(&account, Sending::by("dm")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["masked_destination"], "mastodon:a***@social.example");
    let challenge = r.body["challenge_id"].as_str().unwrap().to_owned();
    let clock = app.clock.clone();
    let tries = relay
        .wait_for(2, || clock.advance(Duration::from_millis(500)))
        .await;
    assert_eq!(
        tries[0].headers["idempotency-key"], tries[1].headers["idempotency-key"],
        "one message, tried twice"
    );
    wait_for_delivery(&app, &challenge, "failed", || {}).await;
    let dead = app.state.engine.dead_letters().unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].channel, engine::Channel::Dm);
    assert_eq!(dead[0].attempts, 2);
    assert!(dead[0].reason.contains("400"), "{}", dead[0].reason);
}

#[tokio::test]
async fn a_handle_is_added_through_the_contact_change_flow() {
    let (relay, credential) = relay().await;
    let app = spawn_app_with(dm_relay(&relay, credential.path())).await;
    let account = app.registered(PHONE, "12345678").await;
    let (proof, code) = app.step_up_code_as(&app.portal(), &account).await;
    let r = app
        .portal()
        .begin_contact_change(
            &account,
            (&proof, &code),
            Contact::Dm("twitter", "AnaSilva"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["channel"], "dm");
    assert_eq!(r.body["masked_destination"], "twitter:a***");
    let change = r.body["challenge_id"].as_str().unwrap().to_owned();
    // The confirmation code goes to the new handle, through the relay.
    let message = relay.wait_for(1, || {}).await.remove(0).json();
    assert_eq!(message["handle"], "anasilva");
    let code = code_in(message["text"].as_str().unwrap());
    let r = app.portal().confirm_contact_change(&change, &code).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let view = app.account(&account).await;
    assert_eq!(
        view.body["dm"],
        json!({ "platform": "twitter", "handle": "a***" })
    );
    // Told to the phone and, through the relay, to the new handle.
    let notice = relay.wait_for(2, || {}).await.remove(1).json();
    assert_eq!(notice["handle"], "anasilva");
    assert!(
        notice["text"].as_str().unwrap().contains("mensagem direta"),
        "{notice}"
    );
    let changed = events(&app, &account).await;
    let changed = first_of(&changed, "contact_changed");
    assert_eq!(changed["details"]["field"], "dm");
    assert_eq!(changed["details"]["to"], "twitter:a***");
    // The handle is now this citizen's alone.
    let rui = NewAccount::new(Identity::civil_id("23456789"))
        .phone("+351912000002")
        .pin(PIN)
        .dm("twitter", "anasilva");
    let r = app.register_account(&rui).await;
    assert_eq!(
        (
            r.status.as_u16(),
            r.error_code(),
            r.body["error"]["field"].as_str()
        ),
        (409, "conflict", Some("dm")),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn a_contact_is_removed_with_a_step_up_code_while_a_way_in_remains() {
    let app = spawn_app().await;
    let ana = NewAccount::new(Identity::civil_id("12345678"))
        .phone(PHONE)
        .email(EMAIL)
        .pin(PIN);
    let account = register(&app, &ana).await;
    let step_up = || {
        let (app, account) = (&app, &account);
        async move {
            let r = app.portal().step_up_with(account, Sending::by("sms")).await;
            assert_eq!(r.status, 201, "{}", r.text);
            let id = r.body["challenge_id"].as_str().unwrap().to_owned();
            let code = app.outbox.code_for(&id).await;
            (id, code)
        }
    };

    let (proof, code) = step_up().await;
    let r = app
        .portal()
        .remove_contact(&account, (&proof, &wrong(&code)), "email")
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (401, "wrong_code"),
        "{}",
        r.text
    );
    let r = app
        .portal()
        .remove_contact(&account, (&proof, &code), "email")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["removed"], "email");
    let view = app.account(&account).await;
    assert_eq!(view.body["email"], Value::Null);
    let by_email = app
        .login_with(Contact::Email(EMAIL), PIN, Sending::default())
        .await;
    assert_eq!(by_email.status, 401, "the email logs in no more");

    // The removed email is told, and so is the phone.
    let notices = app.outbox.wait_for_notices(2, || {}).await;
    let mut told: Vec<(String, &str)> = notices
        .iter()
        .map(|(m, _)| (m.destination.clone(), m.notice.unwrap().as_str()))
        .collect();
    told.sort();
    assert_eq!(
        told,
        [
            (PHONE.to_owned(), "contact_removed"),
            (EMAIL.to_owned(), "contact_removed"),
        ]
    );
    let removed = events(&app, &account).await;
    let removed = first_of(&removed, "contact_removed");
    assert_eq!(removed["details"]["field"], "email");
    assert_eq!(removed["details"]["from"], "a***@example.pt");

    // The phone is the last way to log in: it stays, and the answer says why.
    let (proof, code) = step_up().await;
    let r = app
        .portal()
        .remove_contact(&account, (&proof, &code), "phone")
        .await;
    assert_eq!(
        (
            r.status.as_u16(),
            r.error_code(),
            r.body["error"]["field"].as_str()
        ),
        (409, "last_contact", Some("phone")),
        "{}",
        r.text
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("logs in"),
        "{}",
        r.text
    );
    // Refused before the proof was spent: the same code still proves.
    let r = app
        .portal()
        .remove_contact(&account, (&proof, &code), "dm")
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (409, "wrong_state"),
        "{}",
        r.text
    );
    let r = app
        .portal()
        .remove_contact(&account, (&proof, &code), "fax")
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["error"]["field"].as_str()),
        (400, Some("contact")),
        "{}",
        r.text
    );
    app.push_device(&account, "device-token-0123456789").await;
    let r = app
        .portal()
        .remove_contact(&account, (&proof, &code), "push_device")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.account(&account).await.body["has_push_device"], false);
}

#[tokio::test]
async fn the_citizens_language_is_used_for_codes_and_notices_unless_a_request_names_one() {
    let app = spawn_app().await;
    let ana = NewAccount::new(Identity::civil_id("12345678"))
        .phone(PHONE)
        .pin(PIN)
        .locale("en");
    let account = register(&app, &ana).await;
    let language_of = |sending: Sending<'static>| {
        let (app, account) = (&app, &account);
        async move {
            let r = app.portal().step_up_with(account, sending).await;
            assert_eq!(r.status, 201, "{}", r.text);
            let id = r.body["challenge_id"].as_str().unwrap().to_owned();
            let (message, rendered) = app.outbox.message_for(&id).await;
            (message.locale, rendered.short)
        }
    };
    let (locale, text) = language_of(Sending::default()).await;
    assert_eq!(locale, Locale::En);
    assert!(text.contains("Never share"), "{text}");
    let (locale, _) = language_of(Sending::default().locale("pt")).await;
    assert_eq!(locale, Locale::Pt, "a request's own locale wins");

    let r = app.set_locale(&account, json!({ "locale": "PT-pt" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["locale"], "pt");
    let (locale, text) = language_of(Sending::default()).await;
    assert_eq!(locale, Locale::Pt);
    assert!(text.contains("Nunca partilhe"), "{text}");

    // Notices too.
    let r = app.set_locale(&account, json!({ "locale": "en" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.reset_pin(&account, "60418275").await.status, 200);
    let notices = app.outbox.wait_for_notices(1, || {}).await;
    assert_eq!(notices[0].0.locale, Locale::En);
    assert!(
        notices[0].1.short.contains("reset"),
        "{}",
        notices[0].1.short
    );

    // null goes back to the server's default; a missing or unknown one is refused.
    let r = app.set_locale(&account, json!({ "locale": null })).await;
    assert_eq!(
        (r.status.as_u16(), &r.body["locale"]),
        (200, &Value::Null),
        "{}",
        r.text
    );
    for body in [json!({}), json!({ "locale": "fr" }), json!({ "locale": 3 })] {
        let r = app.set_locale(&account, body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.body["error"]["field"].as_str()),
            (400, Some("locale")),
            "{body}: {}",
            r.text
        );
    }
    let changes: Vec<Value> = events(&app, &account)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "locale_changed")
        .map(|e| e["details"]["to"].clone())
        .collect();
    assert_eq!(changes, [json!("default"), json!("en"), json!("pt")]);
}

#[tokio::test]
async fn bad_handles_and_contact_bodies_name_the_field() {
    let app = spawn_app().await;
    let ana = |platform: &str, handle: &str| {
        NewAccount::new(Identity::civil_id("12345678"))
            .phone(PHONE)
            .pin(PIN)
            .dm(platform, handle)
    };
    for (account, field) in [
        (ana("facebook", "ana"), "dm.platform"),
        (ana("twitter", "ana silva"), "dm.handle"),
        (ana("twitter", ""), "dm.handle"),
        (ana("twitter", &"a".repeat(65)), "dm.handle"),
        (ana("twitter", "ana").locale("fr"), "locale"),
    ] {
        let r = app.register_account(&account).await;
        assert_eq!(
            (r.status.as_u16(), r.body["error"]["field"].as_str()),
            (400, Some(field)),
            "{}",
            r.text
        );
    }
    for dm in [
        json!("twitter:ana"),
        json!({ "platform": "twitter" }),
        json!({
        "platform": "twitter", "handle": "ana", "extra": 1 }),
    ] {
        let body = json!({ "identity": { "kind": "civil_id", "number": "12345678" },
            "phone": PHONE, "pin": PIN, "dm": dm });
        let r = app.post("/v1/accounts", &app.accounts_key, body).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(
            r.body["error"]["field"].as_str().unwrap().starts_with("dm"),
            "{}",
            r.text
        );
    }
    let account = app.registered(PHONE, "12345678").await;
    let (proof, code) = app.step_up_code_as(&app.portal(), &account).await;
    let path = format!("/v1/accounts/{account}/contact");
    let both = json!({ "proof_challenge_id": proof, "proof_code": code,
        "email": EMAIL, "dm": { "platform": "twitter", "handle": "ana" } });
    let r = app.post(&path, &app.accounts_key, both).await;
    assert_eq!(
        (r.status.as_u16(), r.body["error"]["field"].as_str()),
        (400, Some("phone")),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("exactly one of phone, email or dm"),
        "{}",
        r.text
    );
    let r = app
        .login_with(Contact::Phone(PHONE), PIN, Sending::by("dm"))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (409, "channel_unavailable"),
        "no handle on file: {}",
        r.text
    );
}

#[tokio::test]
async fn without_a_relay_a_handle_is_kept_but_no_direct_message_is_sent() {
    let app = spawn_app_without_capture(|c| c.delivery.log_sink = false).await;
    let ana = NewAccount::new(Identity::civil_id("12345678"))
        .phone(PHONE)
        .pin(PIN)
        .dm("twitter", "ana");
    let account = register(&app, &ana).await;
    let r = app.step_up_with(&account, Sending::by("dm")).await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (409, "channel_unavailable"),
        "{}",
        r.text
    );
    assert!(r.text.contains("direct-message delivery"), "{}", r.text);
}
