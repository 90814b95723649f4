//! Signature authorisation end to end: a code bound to a document, its
//! approval, and the attestation a signing service checks with nothing but
//! the published key set, by otpd's own verifier and by PyJWT.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::helpers::*;

const HASH: &str = "3a7f9c21d0e4b5a6978877665544332211ffeeddccbbaa009988776655443322";
const OTHER: &str = "0000000000000000000000000000000000000000000000000000000000000001";

fn contract() -> Document {
    Document::new("contrato-arrendamento.pdf", HASH).size(482_113)
}

/// Writes the server's key set to a file a verifier can read.
async fn key_set_file(app: &TestApp) -> (tempfile::NamedTempFile, Value) {
    let r = app.jwks().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), r.text.as_bytes()).unwrap();
    (file, r.body)
}

/// A citizen approves a signature: (account id, the approval's body).
async fn approved_signature(app: &TestApp) -> (String, Value) {
    let account = app.registered(PHONE, "12345678").await;
    let (id, code) = app.signature_code(PHONE, &contract()).await;
    let r = app.verify_signature(&id, &code).await;
    assert_eq!(r.status, 200, "{}", r.text);
    (account, r.body)
}

fn pyjwt(jwks: &std::path::Path, token: &str, extra: &[&str]) -> (i32, String, String) {
    let jwks = jwks.to_str().unwrap();
    let mut args = vec!["--jwks", jwks];
    args.extend_from_slice(extra);
    args.push(token);
    run_python("examples/signing-service/verify_attestation.py", &args)
}

/// The token with its payload changed by `change` and the signature kept.
fn tampered(token: &str, change: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    change(&mut claims);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

#[tokio::test]
async fn a_signing_service_verifies_with_pyjwt_who_approved_which_document_through_whom() {
    let app = spawn_app().await;
    app.at_real_time();
    let account = app.registered(PHONE, "12345678").await;
    let r = app
        .request_signature(Contact::Phone(PHONE), PIN, &contract(), Sending::default())
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["purpose"], "signature");
    assert_eq!(r.body["document"]["fingerprint"], "3a7f-9c21");
    let id = r.body["challenge_id"].as_str().unwrap().to_owned();
    // The citizen is shown what they approve.
    let (_, rendered) = app.outbox.message_for(&id).await;
    assert!(rendered.short.contains("3a7f-9c21"), "{}", rendered.short);
    assert!(rendered.short.contains("contrato"), "{}", rendered.short);
    let code = app.outbox.code_for(&id).await;
    let v = app.verify_signature(&id, &code).await;
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!(v.body["purpose"], "signature");
    assert_eq!(v.body["document"]["sha256"], HASH);
    let token = v.body["attestation"].as_str().unwrap();

    let (jwks, _) = key_set_file(&app).await;
    let (code, out, err) = pyjwt(jwks.path(), token, &["--sha256", HASH, "--issuer", "otpd"]);
    assert_eq!(code, 0, "PyJWT refused: {err}");
    let claims: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(claims["sub"], account.as_str());
    assert_eq!(claims["identity"]["number"], "12345678");
    assert_eq!(
        claims["doc"],
        json!({ "name": "contrato-arrendamento.pdf", "sha256": HASH, "size": 482_113 })
    );
    assert_eq!(claims["challenge_id"], id.as_str());
    assert_eq!(claims["client"], "sign-only");
    assert_eq!(claims["purpose"], "signature");
    assert_eq!(claims["amr"], json!(["pin", "otp", "sms"]));
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        300
    );
    // Another document's hash, and another issuer, are refused.
    let (code, _, err) = pyjwt(jwks.path(), token, &["--sha256", OTHER]);
    assert_eq!(code, 1, "{err}");
    let (code, _, _) = pyjwt(jwks.path(), token, &["--issuer", "someone-else"]);
    assert_eq!(code, 1);
    // otpd's own offline verifier agrees, reading the key set by URL.
    let url = format!("{}/.well-known/jwks.json", app.address);
    let checked = tokio::task::spawn_blocking({
        let token = token.to_owned();
        move || otpd::cli::attestation::check(&url, &token, Some(HASH), Some("otpd"))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(checked.sub, account);
}

#[tokio::test]
async fn changing_any_claim_of_a_token_breaks_it_for_both_verifiers() {
    let app = spawn_app().await;
    app.at_real_time();
    let (_, approval) = approved_signature(&app).await;
    let token = approval["attestation"].as_str().unwrap();
    let (jwks_file, jwks) = key_set_file(&app).await;
    assert!(otpd::signing::verify(token, &jwks, Some(HASH)).is_ok());
    let flip_hash = |c: &mut Value| {
        // One bit of the hash: 3a → 3b.
        c["doc"]["sha256"] = json!(HASH.replacen("3a", "3b", 1));
    };
    type Change = Box<dyn FnOnce(&mut Value)>;
    let changes: [(&str, Change); 5] = [
        ("doc.sha256", Box::new(flip_hash)),
        (
            "doc.name",
            Box::new(|c| c["doc"]["name"] = json!("outro.pdf")),
        ),
        ("client", Box::new(|c| c["client"] = json!("another-party"))),
        ("sub", Box::new(|c| c["sub"] = json!("ab".repeat(16)))),
        (
            "exp",
            Box::new(|c| c["exp"] = json!(c["exp"].as_u64().unwrap() + 3600)),
        ),
    ];
    for (claim, change) in changes {
        let forged = tampered(token, change);
        let err = otpd::signing::verify(&forged, &jwks, None).unwrap_err();
        assert!(err.contains("signature does not hold"), "{claim}: {err}");
        let (code, _, err) = pyjwt(jwks_file.path(), &forged, &[]);
        assert_eq!(code, 1, "PyJWT took a token with {claim} changed: {err}");
    }
}

#[tokio::test]
async fn a_code_approves_only_its_own_document_and_only_the_last_request() {
    let app = spawn_app().await;
    app.registered(PHONE, "12345678").await;
    let (for_a, code_a) = app.signature_code(PHONE, &contract()).await;
    let b = Document::new("outro.pdf", OTHER);
    let (for_b, code_b) = app.signature_code(PHONE, &b).await;
    assert_ne!(code_a, code_b);
    // A's code on B's challenge is a wrong code; A's challenge is superseded.
    let r = app.verify_signature(&for_b, &code_a).await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (401, "wrong_code"),
        "{}",
        r.text
    );
    let r = app.verify_signature(&for_a, &code_a).await;
    assert_eq!((r.status.as_u16(), r.error_code()), (410, "superseded"));
    let r = app.verify_signature(&for_b, &code_b).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["document"]["sha256"], OTHER);
    let r = app.verify_signature(&for_b, &code_b).await;
    assert_eq!((r.status.as_u16(), r.error_code()), (410, "already_used"));
}

#[tokio::test]
async fn signature_and_login_codes_are_useless_on_each_others_endpoints() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    let (signature, signature_code) = app.signature_code(PHONE, &contract()).await;
    for r in [
        app.verify(&signature, &signature_code).await,
        app.step_up_verify(&signature, &signature_code).await,
    ] {
        assert_eq!(
            (r.status.as_u16(), r.error_code()),
            (404, "challenge_not_found"),
            "{}",
            r.text
        );
    }
    let (login, login_code) = app.login_code(PHONE).await;
    let r = app.verify_signature(&login, &login_code).await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (404, "challenge_not_found")
    );
    let (step_up, step_up_code) = app.step_up_code(&account).await;
    let r = app.verify_signature(&step_up, &step_up_code).await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (404, "challenge_not_found")
    );
    // None of those attempts used anything up.
    assert_eq!(app.verify(&login, &login_code).await.status, 200);
    assert_eq!(
        app.step_up_verify(&step_up, &step_up_code).await.status,
        200
    );
}

/// Wrong codes and wrong PINs against a signature run exactly as against a login.
#[tokio::test]
async fn lockout_counts_signature_failures_as_it_counts_login_failures() {
    async fn wrong_codes_then_pins(app: &TestApp, signature: bool) -> Vec<(u16, String)> {
        let mut seen = Vec::new();
        for _ in 0..4 {
            let r = if signature {
                app.request_signature(Contact::Phone(PHONE), PIN, &contract(), Sending::default())
                    .await
            } else {
                app.login(PHONE, PIN).await
            };
            if r.status != 201 {
                seen.push((r.status.as_u16(), r.error_code().to_owned()));
                continue;
            }
            let id = r.body["challenge_id"].as_str().unwrap();
            for _ in 0..3 {
                let r = if signature {
                    app.verify_signature(id, "000000").await
                } else {
                    app.verify(id, "000000").await
                };
                seen.push((r.status.as_u16(), r.error_code().to_owned()));
            }
        }
        for pin in ["1111", "2222", "3333", "4444", "5555", "6666"] {
            let r = if signature {
                app.request_signature(Contact::Phone(PHONE), pin, &contract(), Sending::default())
                    .await
            } else {
                app.login(PHONE, pin).await
            };
            seen.push((r.status.as_u16(), r.error_code().to_owned()));
        }
        seen
    }
    let quiet = |c: &mut otpd::config::Config| {
        c.resend_cooldown_seconds = 0;
        c.limits.issue_per_account_10min = 0;
        c.limits.issue_per_destination_10min = 0;
    };
    let logins = spawn_app_with(quiet).await;
    logins.registered(PHONE, "12345678").await;
    let signatures = spawn_app_with(quiet).await;
    signatures.registered(PHONE, "12345678").await;
    let by_login = wrong_codes_then_pins(&logins, false).await;
    let by_signature = wrong_codes_then_pins(&signatures, true).await;
    assert!(
        by_login.iter().any(|(_, code)| code == "locked"),
        "the sequence locks: {by_login:?}"
    );
    assert_eq!(by_signature, by_login);
}

#[tokio::test]
async fn logins_and_step_ups_carry_an_assertion_of_the_same_form_without_a_document() {
    let app = spawn_app().await;
    app.at_real_time();
    let account = app.registered(PHONE, "12345678").await;
    let (_, jwks) = key_set_file(&app).await;
    let (id, code) = app.login_code(PHONE).await;
    let v = app.verify(&id, &code).await;
    assert_eq!(v.body["result"], "approved", "existing fields stay");
    let claims =
        otpd::signing::verify(v.body["attestation"].as_str().unwrap(), &jwks, None).unwrap();
    assert_eq!(
        (claims.purpose.as_str(), claims.client.as_str()),
        ("login", "auth-only")
    );
    assert_eq!(claims.amr, ["pin", "otp", "sms"]);
    assert!(claims.doc.is_none());
    let (id, code) = app.step_up_code(&account).await;
    let v = app.step_up_verify(&id, &code).await;
    let token = v.body["attestation"].as_str().unwrap();
    let claims = otpd::signing::verify(token, &jwks, None).unwrap();
    assert_eq!(claims.purpose, "step_up");
    assert_eq!(claims.amr, ["otp", "sms"], "a step-up asks no PIN");
    let err = otpd::signing::verify(token, &jwks, Some(HASH)).unwrap_err();
    assert!(err.contains("no document"), "{err}");
}

#[tokio::test]
async fn after_rotation_old_tokens_verify_within_the_overlap_new_ones_carry_the_new_key() {
    let app = spawn_app().await;
    app.at_real_time();
    let (_, approval) = approved_signature(&app).await;
    let old_token = approval["attestation"].as_str().unwrap().to_owned();
    let old_kid = jsonwebtoken_kid(&old_token);
    let r = app.rotate_key().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let states: Vec<(&str, &str)> = r.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states[0], (old_kid.as_str(), "previous"));
    assert_eq!(states[1].1, "active");
    let new_kid = states[1].0.to_owned();
    let (_, jwks) = key_set_file(&app).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert!(otpd::signing::verify(&old_token, &jwks, Some(HASH)).is_ok());
    let (id, code) = app.signature_code(PHONE, &contract()).await;
    let v = app.verify_signature(&id, &code).await;
    let new_token = v.body["attestation"].as_str().unwrap();
    assert_eq!(jsonwebtoken_kid(new_token), new_kid);
    // Retired: no longer published, its tokens refused by both verifiers.
    let r = app.retire_key(&old_kid).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (jwks_file, jwks) = key_set_file(&app).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    let err = otpd::signing::verify(&old_token, &jwks, None).unwrap_err();
    assert!(err.contains("not in the key set"), "{err}");
    let (code, _, _) = pyjwt(jwks_file.path(), &old_token, &[]);
    assert_eq!(code, 1, "PyJWT took a token of a retired key");
    assert!(otpd::signing::verify(new_token, &jwks, Some(HASH)).is_ok());
    // The admin endpoints refuse what does not apply, with reasons.
    let r = app.retire_key(&new_kid).await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (409, "key_refused"),
        "{}",
        r.text
    );
    let r = app.retire_key(&"A".repeat(43)).await;
    assert_eq!((r.status.as_u16(), r.error_code()), (404, "key_not_found"));
    let r = app.retire_key("not-a-kid").await;
    assert_eq!(
        (r.status.as_u16(), r.body["error"]["field"].as_str()),
        (400, Some("kid"))
    );
}

#[tokio::test]
async fn a_replaced_key_leaves_the_key_set_when_its_overlap_ends_and_keys_survive_restart() {
    let app = spawn_app().await;
    let first = app.jwks().await.body["keys"][0]["kid"].clone();
    let r = app.rotate_key().await;
    assert_eq!(r.status, 200);
    assert_eq!(app.jwks().await.body["keys"].as_array().unwrap().len(), 2);
    app.clock
        .advance(std::time::Duration::from_secs(7 * 24 * 3600 + 1));
    let keys = app.jwks().await.body["keys"].clone();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_ne!(keys[0]["kid"], first);
    let listed = app.keys().await;
    assert_eq!(listed.body["keys"][0]["state"], "expired");
    let app = app.restart().await;
    assert_eq!(
        app.jwks().await.body["keys"],
        keys,
        "the same key after a restart"
    );
}

#[tokio::test]
async fn bad_documents_get_400s_naming_the_field() {
    let app = spawn_app().await;
    app.registered(PHONE, "12345678").await;
    let cases = [
        (Document::new("a.pdf", "abc"), "document.sha256"),
        (Document::new("a.pdf", &"g".repeat(64)), "document.sha256"),
        (
            Document::new("a.pdf", &format!("{HASH}00")),
            "document.sha256",
        ),
        (Document::new("", HASH), "document.name"),
        (Document::new("   ", HASH), "document.name"),
        (Document::new(&"n".repeat(300), HASH), "document.name"),
        (Document::new("a\u{0007}.pdf", HASH), "document.name"),
        (Document::new("fdp.\u{202E}fdp.exe", HASH), "document.name"),
        (Document::new("a\u{2066}b.pdf", HASH), "document.name"),
        (Document::new("a.pdf", HASH).size(0), "document.size"),
        (Document::new("a.pdf", HASH).size(u64::MAX), "document.size"),
        (Document::raw(json!({ "name": "a.pdf" })), "document.sha256"),
        (Document::raw(json!("a.pdf")), "document"),
        (
            Document::raw(json!({ "name": "a.pdf", "sha256": HASH, "pages": 3 })),
            "document.pages",
        ),
        (
            Document::raw(json!({ "name": "a.pdf", "sha256": HASH, "size": -1 })),
            "document.size",
        ),
    ];
    for (document, field) in cases {
        let r = app
            .request_signature(Contact::Phone(PHONE), PIN, &document, Sending::default())
            .await;
        assert_eq!(r.status, 400, "{document:?}: {}", r.text);
        assert_eq!(r.body["error"]["field"], field, "{document:?}: {}", r.text);
        assert!(!r.body["error"]["message"].as_str().unwrap().is_empty());
    }
    // A client without the sign scope is refused before anything is read.
    let r = app
        .with_key(&app.auth_key)
        .request_signature(Contact::Phone(PHONE), PIN, &contract(), Sending::default())
        .await;
    assert_eq!((r.status.as_u16(), r.error_code()), (403, "forbidden"));
}

fn jsonwebtoken_kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}
