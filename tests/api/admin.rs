use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn five_wrong_pins_lock_and_a_privileged_unlock_kills_old_codes() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    let (old, old_code) = app.login_code(PHONE).await;
    for _ in 0..4 {
        assert_eq!(app.login(PHONE, "9135").await.status, 401);
    }
    let fifth = app.login(PHONE, "9135").await;
    assert_eq!((fifth.status.as_u16(), fifth.error_code()), (423, "locked"));
    assert_eq!(
        app.login(PHONE, PIN).await.status,
        423,
        "a right PIN does not unlock"
    );
    assert_eq!(app.verify(&old, &old_code).await.status, 423);
    let read = app.account(&account).await;
    assert_eq!(read.body["state"], "locked");
    assert_eq!(read.body["lock"]["reason"], "pin_failures");
    let unlocked = app.unlock(&account).await;
    assert_eq!(unlocked.status, 200, "{}", unlocked.text);
    assert_eq!(unlocked.body["state"], "active");
    assert_eq!(app.verify(&old, &old_code).await.error_code(), "superseded");
    assert_eq!(app.login(PHONE, PIN).await.status, 201);
}

#[tokio::test]
async fn admin_lock_with_reason_and_pin_reset_which_also_unlocks() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    let r = app.lock(&account, "reported stolen phone").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["lock"]["reason"],
        "administrative: reported stolen phone"
    );
    assert_eq!(app.login(PHONE, PIN).await.status, 423);
    let weak = app.reset_pin(&account, "0000").await;
    assert_eq!(
        (weak.status.as_u16(), weak.body["error"]["field"].as_str()),
        (400, Some("pin"))
    );
    let reset = app.reset_pin(&account, "5829").await;
    assert_eq!(reset.status, 200, "{}", reset.text);
    assert_eq!(reset.body["state"], "active");
    assert_eq!(app.login(PHONE, "5829").await.status, 201);
}

#[tokio::test]
async fn bulk_import_keeps_argon2_hashes_and_reports_each_row() {
    let app = spawn_app().await;
    // PIN 4821 hashed by the reference C implementation (argon2-cffi).
    let phc = "$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$vVdDII2mHU6HzA/gjXRyKBXF7r1B3vYaLi/FqG604wU";
    let civil_id = |number| NewAccount::new(Identity::civil_id(number));
    let r = app
        .import(&[
            civil_id("12345678").phone(PHONE).pin_hash(phc),
            civil_id("22345678")
                .phone("+351934567890")
                .pin_hash(phc)
                .state("locked")
                .lock_reason("migrated"),
            civil_id("32345678")
                .email("x@example.pt")
                .state("pending_activation")
                .birth_date("1970-01-01"),
            civil_id("42345678").phone(PHONE).pin_hash(phc),
            civil_id("52345678")
                .phone("+351945678901")
                .pin_hash("plain"),
        ])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.body["imported"].as_u64(), r.body["failed"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(r.body["results"][3]["error"]["code"], "conflict");
    assert_eq!(r.body["results"][4]["error"]["field"], "pin_hash");
    assert_eq!(app.login(PHONE, PIN).await.status, 201);
    assert_eq!(app.login("+351934567890", PIN).await.status, 423);
}

#[tokio::test]
async fn clients_without_the_scope_are_forbidden_and_strangers_unauthenticated() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    let cases = [
        (
            "/v1/login",
            app.with_key(&app.accounts_key).login(PHONE, PIN).await,
        ),
        (
            "/v1/accounts",
            app.post("/v1/accounts", &app.auth_key, json!({})).await,
        ),
        (
            "/v1/admin/import",
            app.with_key(&app.auth_key).import(&[]).await,
        ),
    ];
    for (path, r) in cases {
        assert_eq!(
            (r.status.as_u16(), r.error_code()),
            (403, "forbidden"),
            "{path}"
        );
    }
    let lock = app.lock(&account, "x").await;
    assert_eq!(lock.status, 200, "the admin key works");
    let none = app
        .request(hyper::Method::POST, "/v1/login", None, Some(json!({})))
        .await;
    assert_eq!(
        (none.status.as_u16(), none.error_code()),
        (401, "unauthenticated")
    );
    let forged = app
        .post("/v1/login", "otpd_0000000000000000_00", json!({}))
        .await;
    assert_eq!(forged.status, 401);
    let all = app.with_key(&app.all_key).login(PHONE, PIN).await;
    assert_eq!(all.status, 423, "authorised; the account is locked");
    app.state
        .engine
        .revoke_client("everything")
        .unwrap()
        .wait()
        .unwrap();
    let revoked = app.with_key(&app.all_key).login(PHONE, PIN).await;
    assert_eq!(revoked.status, 401);
}

#[tokio::test]
async fn an_audit_key_reads_the_trail_and_can_change_nothing() {
    use engine::{Durable, Scope, Scopes};
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    let (_, key) = app
        .state
        .engine
        .add_client("siem", Scopes::of(&[Scope::Audit]))
        .and_then(Durable::wait)
        .unwrap();
    let siem = key.expose();
    let feed = app.get("/v1/admin/events?after=0", siem).await;
    assert_eq!(feed.status, 200, "{}", feed.text);
    assert!(
        feed.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "registered"),
        "{}",
        feed.text
    );
    let events = app
        .get(&format!("/v1/admin/accounts/{account}/events"), siem)
        .await;
    assert_eq!(events.status, 200, "{}", events.text);
    assert_eq!(app.get("/v1/admin/audit", siem).await.status, 200);
    // Nothing else: not a lock, not an account, not a login.
    let lock = app
        .post(
            &format!("/v1/admin/accounts/{account}/lock"),
            siem,
            json!({ "reason": "curious" }),
        )
        .await;
    assert_eq!(lock.status, 403, "{}", lock.text);
    assert!(lock.text.contains("admin"), "{}", lock.text);
    assert_eq!(
        app.get(&format!("/v1/accounts/{account}"), siem)
            .await
            .status,
        403
    );
    let login = app
        .post("/v1/login", siem, json!({ "phone": PHONE, "pin": PIN }))
        .await;
    assert_eq!(login.status, 403);
    // And an admin key still reads the trail.
    let admin = app.admin_key.clone();
    assert_eq!(app.get("/v1/admin/events", &admin).await.status, 200);
}
