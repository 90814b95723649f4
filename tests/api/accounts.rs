use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_registered_account_reads_back_masked_and_without_its_pin_hash() {
    let app = spawn_app().await;
    let joana = NewAccount::new(Identity::social_security("11234567892"))
        .phone(PHONE)
        .email("joana@example.pt")
        .pin(PIN)
        .birth_date("1980-04-25");
    let r = app.register_account(&joana).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["account_id"].as_str().unwrap();
    let read = app.account(id).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["state"], "active");
    assert_eq!(read.body["phone"], "+351******678");
    assert_eq!(read.body["email"], "j***@example.pt");
    assert!(!read.text.contains("argon2"), "{}", read.text);
    assert!(!read.text.contains("912345678"));
}

#[tokio::test]
async fn duplicate_phone_email_or_identity_is_a_conflict() {
    let app = spawn_app().await;
    app.registered(PHONE, "12345678").await;
    let same_phone = app.register(PHONE, "87654321").await;
    assert_eq!(
        (same_phone.status.as_u16(), same_phone.error_code()),
        (409, "conflict")
    );
    assert_eq!(same_phone.body["error"]["field"], "phone");
    let same_identity = app.register("+351934567890", "12345678").await;
    assert_eq!(same_identity.body["error"]["field"], "identity");
}

#[tokio::test]
async fn invalid_fields_are_named() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({ "identity": { "kind": "civil_id", "number": "123" }, "phone": PHONE, "pin": PIN }),
            "identity.number",
        ),
        (
            json!({ "identity": { "kind": "passport", "number": "AB123456", "country": "XX" }, "phone": PHONE, "pin": PIN }),
            "identity.country",
        ),
        (
            json!({ "identity": { "kind": "alien", "number": "1" }, "phone": PHONE, "pin": PIN }),
            "identity.kind",
        ),
        (
            json!({ "identity": { "kind": "civil_id", "number": "12345678" }, "phone": "912345678", "pin": PIN }),
            "phone",
        ),
        (
            json!({ "identity": { "kind": "civil_id", "number": "12345678" }, "email": "nope", "pin": PIN }),
            "email",
        ),
        (
            json!({ "identity": { "kind": "civil_id", "number": "12345678" }, "phone": PHONE, "pin": "1234" }),
            "pin",
        ),
        (
            json!({ "identity": { "kind": "civil_id", "number": "12345678" }, "phone": PHONE, "pin": PIN, "birth_date": "2031-01-01" }),
            "birth_date",
        ),
        (
            json!({ "identity": { "kind": "civil_id", "number": "12345678" }, "phone": PHONE, "pin": PIN, "nickname": "x" }),
            "nickname",
        ),
        (
            json!({ "identity": { "kind": "civil_id", "number": "12345678" }, "phone": PHONE }),
            "pin",
        ),
    ];
    for (body, field) in cases {
        let r = app.post("/v1/accounts", &app.accounts_key, body).await;
        assert_eq!(r.status, 400, "{field}: {}", r.text);
        assert_eq!(r.body["error"]["field"], field, "{}", r.text);
        assert!(!r.body["error"]["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn changing_the_pin_needs_the_current_pin_and_a_step_up_code() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    // One relying party asks for the proof and uses it.
    let portal = app.portal();
    let (challenge, code) = app.step_up_code_as(&portal, &account).await;
    let wrong_pin = portal
        .change_pin(&account, "9135", (&challenge, &code), "5829")
        .await;
    assert_eq!(
        (wrong_pin.status.as_u16(), wrong_pin.error_code()),
        (401, "invalid_credentials")
    );
    let ok = portal
        .change_pin(&account, PIN, (&challenge, &code), "5829")
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(app.login(PHONE, PIN).await.status, 401);
    assert_eq!(app.login(PHONE, "5829").await.status, 201);
}

#[tokio::test]
async fn changing_the_phone_proves_both_numbers() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    let portal = app.portal();
    let (proof_id, proof_code) = app.step_up_code_as(&portal, &account).await;
    let r = portal
        .begin_contact_change(
            &account,
            (&proof_id, &proof_code),
            Contact::Phone("+351934567890"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["masked_destination"], "+351******890");
    let new_id = r.body["challenge_id"].as_str().unwrap();
    let new_code = app.outbox.code_for(new_id).await;
    let done = portal.confirm_contact_change(new_id, &new_code).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(app.account(&account).await.body["phone"], "+351******890");
    assert_eq!(app.login("+351934567890", PIN).await.status, 201);
}

#[tokio::test]
async fn cancelling_frees_the_phone_and_keeps_the_record() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    let r = app.cancel(&account).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.account(&account).await.body["state"], "cancelled");
    let again = app.cancel(&account).await;
    assert_eq!(
        (again.status.as_u16(), again.error_code()),
        (409, "wrong_state")
    );
    assert_eq!(app.register(PHONE, "12345678").await.status, 201);
}

#[tokio::test]
async fn a_pre_registered_citizen_activates_by_sms_or_letter() {
    let app = spawn_app().await;
    let niss = Identity::social_security("11234567892");
    let pending = NewAccount::new(niss.clone())
        .birth_date("1980-04-25")
        .phone(PHONE)
        .postal_address("Rua Augusta 1\n1100-048 Lisboa");
    let r = app.pre_register(&pending).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["state"], "pending_activation");
    let wrong_birth = app
        .request_activation(&niss, "1980-04-26", Sending::by("sms"))
        .await;
    assert_eq!(
        (wrong_birth.status.as_u16(), wrong_birth.error_code()),
        (404, "activation_not_found")
    );
    let letter = app
        .request_activation(&niss, "1980-04-25", Sending::by("letter"))
        .await;
    assert_eq!(letter.status, 201, "{}", letter.text);
    assert_eq!(
        letter.body["expires_at"], "2026-12-23T00:00:00.000Z",
        "30 days for the post"
    );
    let letter_id = letter.body["challenge_id"].as_str().unwrap();
    let letter_code = app.outbox.code_for(letter_id).await;
    assert_eq!(letter_code.len(), 10);
    let done = app
        .complete_activation(&Activation::by_challenge(letter_id, &letter_code, PIN))
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["state"], "active");
    assert_eq!(app.login(PHONE, PIN).await.status, 201);
}

#[tokio::test]
async fn ids_push_tokens_and_postal_addresses_are_read_as_documented() {
    let app = spawn_app().await;
    let id = app.registered(PHONE, "12345678").await;
    // Ids: either case in, lower case out.
    let r = app.account(&id.to_uppercase()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["account_id"], id.as_str());
    // Push tokens: printable ASCII other than space.
    let r = app.push_device(&id, "a token with spaces").await;
    assert_eq!(
        (r.status.as_u16(), r.body["error"]["field"].as_str()),
        (400, Some("push_token")),
        "{}",
        r.text
    );
    assert_eq!(app.push_device(&id, &"t".repeat(16)).await.status, 200);
    // Postal addresses: lines trimmed, blank lines dropped without an error.
    let niss = Identity::social_security("11234567892");
    let pending = NewAccount::new(niss.clone())
        .birth_date("1980-04-25")
        .postal_address("Rua Augusta 1\n\n   \n 1100-048 Lisboa ");
    let r = app.pre_register(&pending).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let letter = app
        .request_activation(&niss, "1980-04-25", Sending::by("letter"))
        .await;
    assert_eq!(letter.status, 201, "{}", letter.text);
    let (message, _) = app
        .outbox
        .message_for(letter.body["challenge_id"].as_str().unwrap())
        .await;
    assert_eq!(message.destination, "Rua Augusta 1\n1100-048 Lisboa");
}
