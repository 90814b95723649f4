//! Notices to the citizen: a PIN reset or a contact change is told to every
//! contact (the replaced one too) with no code in it; which kinds are sent
//! is configuration; a notice that cannot be delivered never fails the
//! operation it tells of.

use std::collections::BTreeSet;
use std::time::Duration;

use engine::{Notice, Outgoing, SendResult};
use otpd::delivery::Rendered;
use serde_json::Value;

use crate::helpers::*;

const EMAIL: &str = "ana@example.pt";
const NEW_PIN: &str = "60418275";

/// Ana with a phone and an email.
fn ana() -> NewAccount {
    NewAccount::new(Identity::civil_id("12345678"))
        .phone(PHONE)
        .email(EMAIL)
        .pin(PIN)
}

async fn register(app: &TestApp, account: &NewAccount) -> String {
    let r = app.register_account(account).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["account_id"].as_str().unwrap().to_owned()
}

/// Whether `text` has a run of exactly six digits: what a code looks like.
fn has_six_digit_run(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_digit())
        .any(|run| run.len() == 6)
}

/// A notice carries no code, in any of its renderings.
fn assert_no_code(message: &Outgoing, rendered: &Rendered) {
    assert!(message.code.expose().is_empty(), "{message:?}");
    for text in [
        &rendered.short,
        &rendered.subject,
        &rendered.text,
        &rendered.html,
        &rendered.letter,
    ] {
        assert!(!has_six_digit_run(text), "a code-like number in {text}");
    }
}

/// Where the notices went: (channel, destination, which notice), sorted.
fn sent_to(notices: &[(Outgoing, Rendered)]) -> BTreeSet<(String, String, &'static str)> {
    notices
        .iter()
        .map(|(m, _)| {
            (
                m.channel.as_str().to_owned(),
                m.destination.clone(),
                m.notice.unwrap().as_str(),
            )
        })
        .collect()
}

/// The `notice_queued` events of `account`: (notice, masked destination, client).
async fn queued(app: &TestApp, account: &str) -> Vec<(String, String, Value)> {
    let r = app.account_events(account, "limit=1000").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut queued: Vec<_> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "notice_queued")
        .map(|e| {
            (
                e["details"]["notice"].as_str().unwrap().to_owned(),
                e["details"]["to"].as_str().unwrap().to_owned(),
                e["client"].clone(),
            )
        })
        .collect();
    queued.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    queued
}

/// Changes the account's phone or email through a step-up proof.
async fn change_contact(app: &TestApp, account: &str, new: Contact<'_>) {
    // One relying party asks for the proof and uses it.
    let portal = app.portal();
    let r = portal.step_up_with(account, Sending::by("sms")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let proof = r.body["challenge_id"].as_str().unwrap().to_owned();
    let code = app.outbox.code_for(&proof).await;
    let r = portal
        .begin_contact_change(account, (&proof, &code), new)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let change = r.body["challenge_id"].as_str().unwrap().to_owned();
    let code = app.outbox.code_for(&change).await;
    let r = portal.confirm_contact_change(&change, &code).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

fn strings(items: &[(&str, &str, &str)]) -> Vec<(String, String, Value)> {
    items
        .iter()
        .map(|(n, to, client)| ((*n).to_owned(), (*to).to_owned(), Value::from(*client)))
        .collect()
}

#[tokio::test]
async fn a_pin_reset_tells_every_contact_of_the_citizen_with_no_code() {
    let app = spawn_app().await;
    let account = register(&app, &ana()).await;
    let r = app.reset_pin(&account, NEW_PIN).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let notices = app.outbox.wait_for_notices(2, || {}).await;
    assert_eq!(
        sent_to(&notices),
        BTreeSet::from([
            ("email".into(), EMAIL.into(), "pin_reset"),
            ("sms".into(), PHONE.into(), "pin_reset"),
        ])
    );
    for (message, rendered) in &notices {
        assert_no_code(message, rendered);
        assert!(rendered.short.contains("PIN"), "{}", rendered.short);
    }
    assert_eq!(
        queued(&app, &account).await,
        strings(&[
            ("pin_reset", "+351******678", "admin-only"),
            ("pin_reset", "a***@example.pt", "admin-only"),
        ])
    );
    let r = app
        .login_with(Contact::Phone(PHONE), NEW_PIN, Sending::by("sms"))
        .await;
    assert_eq!(r.status, 201, "the reset took: {}", r.text);
}

#[tokio::test]
async fn a_contact_change_tells_the_new_contact_and_the_one_it_replaced() {
    let app = spawn_app().await;
    // A phone replaced on an account with no email: the old and the new phone.
    let rui = NewAccount::new(Identity::civil_id("23456789"))
        .phone("+351912000002")
        .pin(PIN);
    let rui = register(&app, &rui).await;
    change_contact(&app, &rui, Contact::Phone("+351913000002")).await;
    let notices = app.outbox.wait_for_notices(2, || {}).await;
    assert_eq!(
        sent_to(&notices),
        BTreeSet::from([
            ("sms".into(), "+351912000002".into(), "contact_changed"),
            ("sms".into(), "+351913000002".into(), "contact_changed"),
        ])
    );
    // An email replaced: the phone, the new email and the old one.
    let ana = register(&app, &ana()).await;
    change_contact(&app, &ana, Contact::Email("ana.nova@example.pt")).await;
    let notices = app.outbox.wait_for_notices(5, || {}).await;
    assert_eq!(notices.len(), 5, "one try each");
    let to_ana = sent_to(&notices[2..]);
    assert_eq!(
        to_ana,
        BTreeSet::from([
            ("email".into(), EMAIL.into(), "contact_changed"),
            (
                "email".into(),
                "ana.nova@example.pt".into(),
                "contact_changed"
            ),
            ("sms".into(), PHONE.into(), "contact_changed"),
        ])
    );
    for (message, rendered) in &notices {
        assert_no_code(message, rendered);
    }
    assert_eq!(
        queued(&app, &ana).await,
        strings(&[
            ("contact_changed", "+351******678", "everything"),
            ("contact_changed", "a***@example.pt", "everything"),
            ("contact_changed", "a***@example.pt", "everything"),
        ])
    );
}

#[tokio::test]
async fn a_notice_kind_turned_off_is_not_sent_and_one_turned_on_is() {
    let app = spawn_app_with(|c| {
        c.notices.pin_reset = false;
        c.notices.contact_changed = false;
        c.notices.pin_changed = true;
        c.notices.locked = true;
    })
    .await;
    let rui = NewAccount::new(Identity::civil_id("23456789"))
        .phone("+351912000002")
        .pin(PIN);
    let rui = register(&app, &rui).await;
    assert_eq!(app.reset_pin(&rui, NEW_PIN).await.status, 200);
    change_contact(&app, &rui, Contact::Phone("+351913000002")).await;
    assert_eq!(queued(&app, &rui).await, Vec::new(), "nothing queued");

    let portal = app.portal();
    let (id, code) = app.step_up_code_as(&portal, &rui).await;
    let r = portal
        .change_pin(&rui, NEW_PIN, (&id, &code), "73920461")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.lock(&rui, "under review").await.status, 200);
    let notices = app.outbox.wait_for_notices(2, || {}).await;
    assert_eq!(
        sent_to(&notices),
        BTreeSet::from([
            ("sms".into(), "+351913000002".into(), "locked"),
            ("sms".into(), "+351913000002".into(), "pin_changed"),
        ])
    );
    assert_eq!(
        queued(&app, &rui).await,
        strings(&[
            ("locked", "+351******002", "admin-only"),
            ("pin_changed", "+351******002", "everything"),
        ])
    );
}

#[tokio::test]
async fn a_notice_that_cannot_be_delivered_does_not_fail_the_pin_reset() {
    let app = spawn_app().await;
    let refused = || SendResult::Permanent {
        reason: "gateway refused".into(),
    };
    app.outbox.answer_notices_with(vec![refused(), refused()]);
    let account = register(&app, &ana()).await;
    let r = app.reset_pin(&account, NEW_PIN).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.outbox.wait_for_notices(2, || {}).await.len(), 2);

    // Both given up, and codes still go out.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.state.engine.dead_letters().unwrap().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = app
        .login_with(Contact::Phone(PHONE), NEW_PIN, Sending::by("sms"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["challenge_id"].as_str().unwrap();
    let code = app.outbox.code_for(id).await;
    assert_eq!(app.verify(id, &code).await.status, 200);
}

#[tokio::test]
async fn a_notice_the_gateway_defers_is_tried_again_like_a_code() {
    let app = spawn_app_with(|c| c.delivery.poll_interval_ms = 10).await;
    app.outbox.answer_notices_with(vec![SendResult::Retry {
        after: None,
        reason: "gateway busy".into(),
    }]);
    let rui = NewAccount::new(Identity::civil_id("23456789"))
        .phone("+351912000002")
        .pin(PIN);
    let rui = register(&app, &rui).await;
    assert_eq!(app.reset_pin(&rui, NEW_PIN).await.status, 200);
    let clock = app.clock.clone();
    let tries = app
        .outbox
        .wait_for_notices(2, || clock.advance(Duration::from_secs(5)))
        .await;
    let (first, second) = (&tries[0].0, &tries[1].0);
    assert_eq!(first.id, second.id, "the same notice");
    assert_eq!((first.attempt, second.attempt), (1, 2));
    assert_eq!(second.notice, Some(Notice::PinReset));
}
