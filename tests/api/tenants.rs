//! Relying parties as tenants, attacked: a second client tries every route
//! that takes a challenge on the first client's challenge and gets the 404
//! an unknown challenge gets, with nothing counted; keys revoked or
//! rotated out are refused on the very next request; a client is held to
//! its purposes, channels and rate.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// A challenge id nothing has.
const UNKNOWN: &str = "0123456789abcdef0123456789abcdef";
const BIRTH: &str = "1990-05-17";
const CIVIL_ID: &str = "12345678";

/// A server, two relying parties and a citizen.
struct Parties {
    app: TestApp,
    first: ApiClient,
    second: ApiClient,
    account: String,
}

async fn parties() -> Parties {
    let app = spawn_app().await;
    let first = app.relying_party("portal-financas").await;
    let second = app.relying_party("portal-saude").await;
    let account = first.registered(PHONE, CIVIL_ID).await;
    Parties {
        app,
        first,
        second,
        account,
    }
}

impl Parties {
    /// A login code asked for by the first client: (challenge id, code).
    async fn first_login(&self) -> (String, String) {
        self.app.login_code_as(&self.first, PHONE).await
    }

    /// Where the first client's challenge stands, as it sees it.
    async fn status(&self, id: &str) -> Value {
        let r = self.first.challenge_status(id).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body
    }

    /// Nothing was counted against the citizen.
    async fn nothing_counted(&self) {
        let a = self.first.account(&self.account).await;
        assert_eq!(a.body["code_failures"], 0, "{}", a.text);
        assert_eq!(a.body["pin_failures"], 0, "{}", a.text);
        assert_eq!(a.body["state"], "active", "{}", a.text);
    }
}

/// `r` is exactly what `unknown` (the same call on a challenge no one has) is.
fn as_if_unknown(r: &Response, unknown: &Response) {
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.body["error"], unknown.body["error"], "{}", r.text);
    assert_eq!(
        (unknown.status, unknown.error_code()),
        (StatusCode::NOT_FOUND, "challenge_not_found"),
        "{}",
        unknown.text
    );
}

#[tokio::test]
async fn a_second_client_cannot_read_the_first_clients_challenge() {
    let p = parties().await;
    let (id, _) = p.first_login().await;
    let r = p.second.challenge_status(&id).await;
    as_if_unknown(&r, &p.second.challenge_status(UNKNOWN).await);
    let head = p
        .second
        .request(
            Method::HEAD,
            &format!("/v1/challenges/{id}"),
            Some(&key_of(&p.second)),
            None,
        )
        .await;
    assert_eq!(head.status, StatusCode::NOT_FOUND);
    assert_eq!(p.status(&id).await["state"], "pending");
}

#[tokio::test]
async fn a_second_client_cannot_resend_the_first_clients_code() {
    let p = parties().await;
    let (id, code) = p.first_login().await;
    p.app.clock.advance(std::time::Duration::from_secs(30)); // past the cooldown
    let r = p.second.resend(&id).await;
    as_if_unknown(&r, &p.second.resend(UNKNOWN).await);
    // The first code is still the live one: nothing was sent.
    assert_eq!(p.status(&id).await["state"], "pending");
    let r = p.first.verify(&id, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_second_client_cannot_verify_the_first_clients_login_code() {
    let p = parties().await;
    let (id, code) = p.first_login().await;
    for guess in [wrong(&code), code.clone()] {
        let r = p.second.verify(&id, &guess).await;
        as_if_unknown(&r, &p.second.verify(UNKNOWN, &guess).await);
    }
    assert_eq!(p.status(&id).await["attempts_remaining"], 3, "not counted");
    p.nothing_counted().await;
    let r = p.first.verify(&id, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_second_client_cannot_verify_the_first_clients_step_up_code() {
    let p = parties().await;
    let (id, code) = p.app.step_up_code_as(&p.first, &p.account).await;
    let r = p.second.step_up_verify(&id, &code).await;
    as_if_unknown(&r, &p.second.step_up_verify(UNKNOWN, &code).await);
    p.nothing_counted().await;
    let r = p.first.step_up_verify(&id, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_second_client_cannot_verify_the_first_clients_signature_code() {
    let p = parties().await;
    let document = Document::new("contrato.pdf", &"ab".repeat(32));
    let r = p
        .first
        .request_signature(Contact::Phone(PHONE), PIN, &document, Sending::default())
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["challenge_id"].as_str().unwrap().to_owned();
    let code = p.app.outbox.code_for(&id).await;
    let r = p.second.verify_signature(&id, &code).await;
    as_if_unknown(&r, &p.second.verify_signature(UNKNOWN, &code).await);
    p.nothing_counted().await;
    let r = p.first.verify_signature(&id, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["attestation"].is_string());
}

#[tokio::test]
async fn a_second_client_cannot_complete_the_first_clients_activation() {
    let app = spawn_app().await;
    let first = app.relying_party("portal-financas").await;
    let second = app.relying_party("portal-saude").await;
    let identity = Identity::social_security("11234567892");
    let pending = NewAccount::new(Identity::social_security("11234567892"))
        .phone(PHONE)
        .birth_date(BIRTH);
    assert_eq!(
        first.pre_register(&pending).await.status,
        StatusCode::CREATED
    );
    let r = first
        .request_activation(&identity, BIRTH, Sending::by("sms"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["challenge_id"].as_str().unwrap().to_owned();
    let code = app.outbox.code_for(&id).await;
    // By the challenge id: as an unknown challenge.
    let r = second
        .complete_activation(&Activation::by_challenge(&id, &code, "7391"))
        .await;
    let unknown = second
        .complete_activation(&Activation::by_challenge(UNKNOWN, &code, "7391"))
        .await;
    as_if_unknown(&r, &unknown);
    // By the identity (the letter's way): as an identity with nothing pending.
    let r = second
        .complete_activation(&Activation::by_identity(&identity, &code, "7391"))
        .await;
    let nobody = second
        .complete_activation(&Activation::by_identity(
            &Identity::civil_id("87654321"),
            &code,
            "7391",
        ))
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::NOT_FOUND, "activation_not_found"),
        "{}",
        r.text
    );
    assert_eq!(r.body["error"], nobody.body["error"]);
    let r = first
        .complete_activation(&Activation::by_identity(&identity, &code, "7391"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_second_client_cannot_confirm_the_first_clients_contact_change() {
    let p = parties().await;
    let (proof, proof_code) = p.app.step_up_code_as(&p.first, &p.account).await;
    let r = p
        .first
        .begin_contact_change(
            &p.account,
            (&proof, &proof_code),
            Contact::Phone("+351934567890"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["challenge_id"].as_str().unwrap().to_owned();
    let code = p.app.outbox.code_for(&id).await;
    let r = p.second.confirm_contact_change(&id, &code).await;
    as_if_unknown(&r, &p.second.confirm_contact_change(UNKNOWN, &code).await);
    let r = p.first.confirm_contact_change(&id, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_second_client_cannot_use_the_first_clients_step_up_code_to_change_the_pin() {
    let p = parties().await;
    let (proof, code) = p.app.step_up_code_as(&p.first, &p.account).await;
    let r = p
        .second
        .change_pin(&p.account, PIN, (&proof, &code), "7391")
        .await;
    let unknown = p
        .second
        .change_pin(&p.account, PIN, (UNKNOWN, &code), "7391")
        .await;
    as_if_unknown(&r, &unknown);
    p.nothing_counted().await;
    let r = p
        .first
        .change_pin(&p.account, PIN, (&proof, &code), "7391")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn a_second_client_cannot_use_the_first_clients_step_up_code_to_change_a_contact() {
    let p = parties().await;
    let (proof, code) = p.app.step_up_code_as(&p.first, &p.account).await;
    let new = || Contact::Email("ana@example.pt");
    let r = p
        .second
        .begin_contact_change(&p.account, (&proof, &code), new())
        .await;
    let unknown = p
        .second
        .begin_contact_change(&p.account, (UNKNOWN, &code), new())
        .await;
    as_if_unknown(&r, &unknown);
    let r = p
        .first
        .begin_contact_change(&p.account, (&proof, &code), new())
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// The attack in one: every route that takes a challenge, tried by the
/// second client with the right code, then wrong codes until a lock would
/// have come; the first client's code still works and nothing was counted.
#[tokio::test]
async fn a_second_client_trying_every_challenge_route_learns_nothing_and_counts_nothing() {
    let p = parties().await;
    let (id, code) = p.first_login().await;
    let tries: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/v1/challenges/{id}"), None),
        (
            Method::POST,
            format!("/v1/challenges/{id}/resend"),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/v1/verify".into(),
            Some(json!({ "challenge_id": id, "code": code })),
        ),
        (
            Method::POST,
            "/v1/step-up/verify".into(),
            Some(json!({ "challenge_id": id, "code": code })),
        ),
        (
            Method::POST,
            "/v1/signatures/verify".into(),
            Some(json!({ "challenge_id": id, "code": code })),
        ),
        (
            Method::POST,
            "/v1/contact-changes/confirm".into(),
            Some(json!({ "challenge_id": id, "code": code })),
        ),
        (
            Method::POST,
            "/v1/activation/complete".into(),
            Some(json!({ "challenge_id": id, "code": code, "pin": "7391" })),
        ),
        (
            Method::POST,
            format!("/v1/accounts/{}/pin", p.account),
            Some(
                json!({ "current_pin": PIN, "challenge_id": id, "code": code, "new_pin": "7391" }),
            ),
        ),
        (
            Method::POST,
            format!("/v1/accounts/{}/contact", p.account),
            Some(
                json!({ "proof_challenge_id": id, "proof_code": code, "email": "ana@example.pt" }),
            ),
        ),
    ];
    let key = key_of(&p.second);
    for (method, path, body) in &tries {
        let r = p
            .second
            .request(method.clone(), path, Some(&key), body.clone())
            .await;
        let unknown_path = path.replace(&id, UNKNOWN);
        let unknown_body = body
            .as_ref()
            .map(|b| serde_json::from_str(&b.to_string().replace(&id, UNKNOWN)).unwrap());
        let unknown = p
            .second
            .request(method.clone(), &unknown_path, Some(&key), unknown_body)
            .await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            r.text
        );
        assert_eq!(r.body, unknown.body, "{method} {path}");
    }
    for _ in 0..12 {
        let r = p.second.verify(&id, &wrong(&code)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    }
    p.nothing_counted().await;
    assert_eq!(p.status(&id).await["attempts_remaining"], 3);
    let r = p.first.verify(&id, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["result"], "approved");
}

#[tokio::test]
async fn admin_operations_stay_global_but_give_no_way_into_another_clients_challenge() {
    let p = parties().await;
    let (id, code) = p.first_login().await;
    // A client with every scope, admin included, is still another client.
    let r = p.app.portal().challenge_status(&id).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = p.app.portal().verify(&id, &code).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // The operator locks the citizen the first client is logging in.
    assert_eq!(p.app.lock(&p.account, "reported stolen").await.status, 200);
    let r = p.first.verify(&id, &code).await;
    assert_eq!(r.status, StatusCode::LOCKED, "{}", r.text);
    assert_eq!(p.app.unlock(&p.account).await.status, 200);
}

#[tokio::test]
async fn a_revoked_key_is_refused_on_the_very_next_request() {
    let app = spawn_app().await;
    let portal = app.relying_party("portal-financas").await;
    portal.registered(PHONE, CIVIL_ID).await;
    let (id, _) = app.login_code_as(&portal, PHONE).await;
    let r = app.revoke_client("portal-financas").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["client"]["state"], "revoked");
    for r in [
        portal.challenge_status(&id).await,
        portal.login(PHONE, PIN).await,
    ] {
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{}",
            r.text
        );
    }
    // It stays refused after a restart, and a new client of the same name
    // is another client: the old one's challenges are not its own.
    let app = app.restart().await;
    let portal = app.with_key(portal.key());
    assert_eq!(
        portal.login(PHONE, PIN).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = app.relying_party("portal-financas").await;
    assert_eq!(
        again.challenge_status(&id).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_rotated_out_key_works_until_its_expiry_and_not_a_moment_after() {
    let app = spawn_app().await;
    let old = app.relying_party("portal-financas").await;
    old.registered(PHONE, CIVIL_ID).await;
    let (id, code) = app.login_code_as(&old, PHONE).await;
    // 2026-11-23T01:00:00Z, an hour after the test clock's start.
    let r = app
        .rotate_client_key(
            "portal-financas",
            json!({ "previous_expires_at": "2026-11-23T01:00:00Z" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let new = app.with_key(r.body["key"].as_str().unwrap());
    // Both work meanwhile, as one client: the new key sees the old key's challenge.
    assert_eq!(old.challenge_status(&id).await.status, StatusCode::OK);
    assert_eq!(new.challenge_status(&id).await.status, StatusCode::OK);
    app.clock.advance(std::time::Duration::from_secs(3_599));
    assert_eq!(old.challenge_status(&id).await.status, StatusCode::OK);
    let r = new.verify(&id, &code).await;
    assert_eq!(r.status, StatusCode::GONE, "expired meanwhile: {}", r.text);
    app.clock.advance(std::time::Duration::from_secs(1));
    let r = old.login(PHONE, PIN).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::UNAUTHORIZED, "unauthenticated"),
        "{}",
        r.text
    );
    let r = new.login(PHONE, PIN).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let listed = app.client("portal-financas").await;
    let states: Vec<&str> = listed.body["client"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["expired", "live"]);
}

#[tokio::test]
async fn a_client_is_refused_purposes_and_channels_it_was_not_given_naming_them() {
    let app = spawn_app().await;
    let key = app
        .new_client(json!({
            "name": "sms-logins", "scopes": ["auth", "accounts", "sign"],
            "purposes": ["login"], "channels": ["sms"],
        }))
        .await;
    let limited = app.with_key(&key);
    let account = limited
        .register_account(
            &NewAccount::new(Identity::civil_id(CIVIL_ID))
                .phone(PHONE)
                .email("ana@example.pt")
                .pin(PIN),
        )
        .await;
    assert_eq!(account.status, StatusCode::CREATED, "{}", account.text);
    let account = account.body["account_id"].as_str().unwrap().to_owned();
    let not_permitted = |r: &Response, field: &str, named: &str| {
        assert_eq!(
            (r.status, r.error_code(), r.body["error"]["field"].as_str()),
            (StatusCode::FORBIDDEN, "not_permitted", Some(field)),
            "{}",
            r.text
        );
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(named) && message.contains("sms-logins"),
            "{message}"
        );
    };
    let r = limited
        .login_with(Contact::Phone(PHONE), PIN, Sending::by("email"))
        .await;
    not_permitted(&r, "channel", "email");
    not_permitted(&limited.step_up(&account).await, "purpose", "step_up");
    let document = Document::new("contrato.pdf", &"ab".repeat(32));
    let r = limited
        .request_signature(Contact::Phone(PHONE), PIN, &document, Sending::by("sms"))
        .await;
    not_permitted(&r, "purpose", "signature");
    let r = limited
        .login_with(Contact::Phone(PHONE), PIN, Sending::by("sms"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Widened while the server runs: the next request may.
    let r = app
        .update_client("sms-logins", json!({ "purposes": null }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["client"]["purposes"], Value::Null);
    assert_eq!(r.body["client"]["channels"], json!(["sms"]));
    let r = limited.step_up_with(&account, Sending::by("sms")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let a = limited.account(&account).await;
    assert_eq!(a.body["pin_failures"], 0, "refusals counted nothing");
}

#[tokio::test]
async fn a_clients_own_issue_rate_is_refused_with_429_and_spares_the_others() {
    let app = spawn_app().await;
    let key = app
        .new_client(json!({
            "name": "small-portal", "scopes": ["auth", "accounts"],
            "issue_rate": { "codes": 2, "per": "minute" },
        }))
        .await;
    let small = app.with_key(&key);
    let other = app.relying_party("big-portal").await;
    let accounts = [
        small.registered("+351912000001", "11111111").await,
        small.registered("+351912000002", "22222222").await,
        small.registered("+351912000003", "33333333").await,
    ];
    for account in &accounts[..2] {
        assert_eq!(small.step_up(account).await.status, StatusCode::CREATED);
    }
    let r = small.step_up(&accounts[2]).await;
    assert_eq!(
        (r.status, r.error_code(), r.body["error"]["reason"].as_str()),
        (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            Some("client_issue_rate")
        ),
        "{}",
        r.text
    );
    assert_eq!(r.headers["retry-after"], "30");
    assert_eq!(
        other.step_up(&accounts[2]).await.status,
        StatusCode::CREATED
    );
    app.clock.advance(std::time::Duration::from_secs(30));
    assert_eq!(
        small.step_up(&accounts[2]).await.status,
        StatusCode::CREATED
    );
}

/// The key an `ApiClient` made by `with_key` sends.
fn key_of(client: &ApiClient) -> String {
    client.key().to_owned()
}
