//! Recovery as the FAQ describes it: a citizen who proved who they are
//! elsewhere is unlocked or given a new PIN by a `recovery` client, and a
//! helpdesk finds the account by an exact identifier.

use serde_json::Value;

use crate::helpers::*;

/// Eight digits: the tests look for it in whole event listings, whose
/// hashes and times are random enough to hold a four-digit run now and then
/// (this one failed about one run in twenty as "5829").
const NEW_PIN: &str = "58294716";
const EMAIL: &str = "ana@example.pt";

async fn locked_out(app: &TestApp) -> String {
    let account = app.registered(PHONE, "12345678").await;
    for _ in 0..5 {
        app.login(PHONE, "9135").await;
    }
    assert_eq!(app.account(&account).await.body["state"], "locked");
    account
}

async fn events_of(app: &TestApp, account: &str, kind: &str) -> Vec<Value> {
    let r = app.account_events(account, "limit=1000").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_citizen_locked_out_by_wrong_pins_is_unlocked_by_a_recovery_client_and_logs_in() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    let (old, old_code) = app.login_code(PHONE).await;
    for _ in 0..5 {
        app.login(PHONE, "9135").await;
    }
    assert_eq!(app.login(PHONE, PIN).await.status, 423);

    let r = app
        .recovery_unlock(&account, "citizen_card", "PA-2026-000123")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "active");
    assert_eq!(
        (r.body["pin_failures"].as_u64(), r.body["lock"].clone()),
        (Some(0), Value::Null)
    );

    assert_eq!(
        app.verify(&old, &old_code).await.error_code(),
        "superseded",
        "a code sent before the recovery is dead"
    );
    let (challenge, code) = app.login_code(PHONE).await;
    assert_eq!(app.verify(&challenge, &code).await.status, 200);
}

#[tokio::test]
async fn a_recovery_resets_both_counters_even_before_a_lock() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    let (challenge, code) = app.login_code(PHONE).await;
    app.verify(&challenge, &wrong(&code)).await;
    assert_eq!(app.login(PHONE, "9135").await.status, 401);
    let before = app.account(&account).await;
    assert_eq!(
        (
            before.body["pin_failures"].as_u64(),
            before.body["code_failures"].as_u64()
        ),
        (Some(1), Some(1)),
        "{}",
        before.text
    );

    let r = app
        .recovery_unlock(&account, "in_person", "Loja do Cidadão Lisboa #42")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (
            r.body["pin_failures"].as_u64(),
            r.body["code_failures"].as_u64()
        ),
        (Some(0), Some(0))
    );
}

#[tokio::test]
async fn recovery_pin_sets_a_new_pin_that_logs_in_and_the_old_one_no_longer_does() {
    let app = spawn_app().await;
    let account = locked_out(&app).await;
    let r = app
        .recovery_pin(&account, "in_person", "CS-Porto-7781", NEW_PIN)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "active");
    assert_eq!(
        (
            r.body["pin_failures"].as_u64(),
            r.body["code_failures"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(app.login(PHONE, PIN).await.status, 401, "the old PIN");
    assert_eq!(app.login(PHONE, NEW_PIN).await.status, 201, "the new PIN");
}

#[tokio::test]
async fn a_code_outstanding_before_a_new_pin_is_dead_after_it() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    let (old, old_code) = app.login_code(PHONE).await;
    let r = app
        .recovery_pin(&account, "qualified_certificate", "QC-1", NEW_PIN)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.verify(&old, &old_code).await.error_code(), "superseded");
}

#[tokio::test]
async fn a_bad_method_reference_or_pin_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let account = locked_out(&app).await;
    let long = "x".repeat(129);
    let cases: [(&str, &str, Option<&str>, &str); 7] = [
        ("sms", "ref-1", None, "method"),
        ("CITIZEN CARD", "ref-1", None, "method"),
        ("citizen_card", "", None, "reference"),
        ("citizen_card", "   ", None, "reference"),
        ("citizen_card", &long, None, "reference"),
        ("citizen_card", "line\nbreak", None, "reference"),
        ("citizen_card", "ref-1", Some("0000"), "new_pin"),
    ];
    for (method, reference, pin, field) in cases {
        let r = match pin {
            None => app.recovery_unlock(&account, method, reference).await,
            Some(pin) => app.recovery_pin(&account, method, reference, pin).await,
        };
        assert_eq!(
            (r.status.as_u16(), r.body["error"]["field"].as_str()),
            (400, Some(field)),
            "{method:?} {reference:?}: {}",
            r.text
        );
    }
    let r = app.recovery_unlock(&account, "sms", "ref-1").await;
    for allowed in ["citizen_card", "in_person", "qualified_certificate"] {
        assert!(r.text.contains(allowed), "{}", r.text);
    }
    let missing = app
        .post(
            &format!("/v1/accounts/{account}/recovery/pin"),
            &app.recovery_key,
            serde_json::json!({ "method": "in_person", "reference": "r" }),
        )
        .await;
    assert_eq!(
        missing.body["error"]["field"], "new_pin",
        "{}",
        missing.text
    );
    assert_eq!(
        app.account(&account).await.body["state"],
        "locked",
        "nothing refused changed anything"
    );
    let at_the_limit = app
        .recovery_unlock(&account, "citizen_card", &"é".repeat(128))
        .await;
    assert_eq!(at_the_limit.status, 200, "{}", at_the_limit.text);
}

#[tokio::test]
async fn only_a_recovery_client_may_recover_and_admin_does_not_imply_it() {
    let app = spawn_app().await;
    let account = locked_out(&app).await;
    for key in [
        &app.auth_key,
        &app.accounts_key,
        &app.admin_key,
        &app.sign_key,
    ] {
        let client = app.with_key(key);
        let unlock = client.recovery_unlock(&account, "citizen_card", "r").await;
        let pin = client
            .recovery_pin(&account, "citizen_card", "r", NEW_PIN)
            .await;
        for r in [unlock, pin] {
            assert_eq!(
                (r.status.as_u16(), r.error_code()),
                (403, "forbidden"),
                "{}",
                r.text
            );
        }
    }
    let search = app
        .with_key(&app.recovery_key)
        .find_accounts("phone=%2B351912345678")
        .await;
    assert_eq!(
        search.status, 403,
        "the helpdesk search is for admin: {}",
        search.text
    );
    assert_eq!(app.account(&account).await.body["state"], "locked");
}

#[tokio::test]
async fn a_cancelled_or_pending_account_is_not_recovered() {
    let app = spawn_app().await;
    let cancelled = app.registered(PHONE, "12345678").await;
    assert_eq!(app.cancel(&cancelled).await.status, 200);
    let pending = app
        .pre_register(
            &NewAccount::new(Identity::civil_id("22345678"))
                .phone("+351934567890")
                .birth_date("1970-01-01"),
        )
        .await;
    assert_eq!(pending.status, 201, "{}", pending.text);
    let pending = pending.body["account_id"].as_str().unwrap().to_owned();
    for account in [&cancelled, &pending] {
        let unlock = app.recovery_unlock(account, "in_person", "r").await;
        let pin = app.recovery_pin(account, "in_person", "r", NEW_PIN).await;
        for r in [unlock, pin] {
            assert_eq!(
                (r.status.as_u16(), r.error_code()),
                (409, "wrong_state"),
                "{}",
                r.text
            );
        }
    }
    let r = app.recovery_unlock(&pending, "in_person", "r").await;
    assert!(r.text.contains("activation"), "{}", r.text);
}

#[tokio::test]
async fn an_operators_lock_is_left_to_an_operator() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    assert_eq!(app.lock(&account, "court order").await.status, 200);
    let r = app.recovery_unlock(&account, "citizen_card", "r").await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (409, "wrong_state"),
        "{}",
        r.text
    );
    assert_eq!(app.account(&account).await.body["state"], "locked");
}

#[tokio::test]
async fn each_recovery_is_audited_with_method_reference_and_client_and_never_the_pin() {
    let app = spawn_app().await;
    let account = locked_out(&app).await;
    assert_eq!(
        app.recovery_unlock(&account, "citizen_card", "PA-1")
            .await
            .status,
        200
    );
    assert_eq!(
        app.recovery_pin(&account, "in_person", "CS-2", NEW_PIN)
            .await
            .status,
        200
    );
    let unlocked = events_of(&app, &account, "recovery_unlocked").await;
    let pin_set = events_of(&app, &account, "recovery_pin_set").await;
    for (events, method, reference) in [
        (&unlocked, "citizen_card", "PA-1"),
        (&pin_set, "in_person", "CS-2"),
    ] {
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!(e["client"], "recovery-desk");
        assert_eq!(e["outcome"], "success");
        assert_eq!(e["details"]["method"], method);
        assert_eq!(e["details"]["reference"], reference);
        assert!(!e.to_string().contains(NEW_PIN), "{e}");
    }
    let notices: Vec<Value> = events_of(&app, &account, "notice_queued")
        .await
        .into_iter()
        .filter(|e| e["details"]["notice"] == "pin_reset")
        .collect();
    assert_eq!(
        notices.len(),
        1,
        "the citizen is told of the new PIN: {notices:?}"
    );
    assert_eq!(notices[0]["client"], "recovery-desk");
    let all = app.account_events(&account, "limit=1000").await;
    assert!(!all.text.contains(NEW_PIN), "{}", all.text);
}

#[tokio::test]
async fn a_helpdesk_finds_an_account_by_exact_identity_phone_or_email() {
    let app = spawn_app().await;
    let r = app
        .register_account(
            &NewAccount::new(Identity::civil_id("12345678"))
                .phone(PHONE)
                .email(EMAIL)
                .pin(PIN),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let account = r.body["account_id"].as_str().unwrap().to_owned();
    app.registered("+351934567890", "22345678").await;
    let read = app.account(&account).await;

    for query in [
        "identity=civil_id:12345678",
        "identity=CIVIL_ID:1234%205678",
        "phone=%2B351912345678",
        "phone=00351%20912%20345%20678",
        "email=Ana@Example.PT",
        "email=%20ana@example.pt%20",
    ] {
        let r = app.find_accounts(query).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        assert_eq!(
            r.body["accounts"],
            serde_json::json!([read.body]),
            "{query}"
        );
    }
    for query in [
        "identity=civil_id:32345678",
        "phone=%2B351911111111",
        "email=an@example.pt",
        "email=na@example.pt",
    ] {
        let r = app.find_accounts(query).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        assert_eq!(
            r.body["accounts"],
            serde_json::json!([]),
            "{query}: no prefix or suffix match"
        );
    }
}

#[tokio::test]
async fn a_helpdesk_search_takes_exactly_one_known_parameter() {
    let app = spawn_app().await;
    app.registered(PHONE, "12345678").await;
    for (query, field) in [
        ("", "identity"),
        ("phone=%2B351912345678&email=ana@example.pt", "email"),
        ("phone=%2B351912345678&phone=%2B351912345678", "phone"),
        ("name=Ana", "name"),
        ("identity=12345678", "identity"),
        ("identity=driving_licence:12345678", "identity"),
        ("identity=civil_id:", "identity"),
        ("phone=912345678", "phone"),
        ("phone=%2B3519123", "phone"),
        ("email=not-an-email", "email"),
    ] {
        let r = app.find_accounts(query).await;
        assert_eq!(
            (r.status.as_u16(), r.body["error"]["field"].as_str()),
            (400, Some(field)),
            "{query}: {}",
            r.text
        );
    }
}
