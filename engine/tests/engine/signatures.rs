//! Signature authorisation: a PIN, then a code bound to one document's hash.

use engine::*;

use crate::helpers::*;

const PHONE: &str = "+351912345000";
const HASH_A: &str = "3a7f9c21d0e4b5a6978877665544332211ffeeddccbbaa009988776655443322";
const HASH_B: &str = "3a7f9c21d0e4b5a6978877665544332211ffeeddccbbaa009988776655443323";

fn document(name: &str, hash: &str) -> Document {
    Document::parse(name, hash, Some(4096)).unwrap()
}

fn request(t: &TestEngine, pin: &str, document: Document) -> LoginOutcome {
    t.engine
        .request_signature(
            &LoginId::Phone(Phone::parse(PHONE).unwrap()),
            &Pin::new(pin),
            document,
            None,
            None,
            None,
        )
        .and_then(Durable::wait)
        .unwrap()
}

fn issued(outcome: LoginOutcome) -> Issued {
    match outcome {
        LoginOutcome::CodeSent(issued) => issued,
        other => panic!("expected a code, got {other:?}"),
    }
}

fn sign(t: &TestEngine, challenge: ChallengeId, code: &str) -> Verification {
    t.engine
        .verify(challenge, Purpose::Signature, &Code::new(code))
        .and_then(Durable::wait)
        .unwrap()
}

#[test]
fn a_signature_code_approves_its_document_and_says_which() {
    let t = TestEngine::new();
    let account = t.register(PHONE);
    let issued = issued(request(&t, PIN, document("contrato.pdf", HASH_A)));
    assert_eq!(issued.purpose, Purpose::Signature);
    assert_eq!(issued.document.as_ref().unwrap().sha256_hex(), HASH_A);
    match sign(&t, issued.challenge_id, issued.code.expose()) {
        Verification::Approved(a) => {
            assert_eq!(a.account_id, account);
            assert_eq!(a.purpose, Purpose::Signature);
            assert_eq!(a.channel, Channel::Sms);
            let d = a.document.unwrap();
            assert_eq!(
                (d.name(), d.sha256_hex()),
                ("contrato.pdf", HASH_A.to_owned())
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        sign(&t, issued.challenge_id, issued.code.expose()),
        Verification::AlreadyUsed
    );
}

#[test]
fn a_new_request_supersedes_the_last_and_codes_do_not_cross_purposes() {
    let t = TestEngine::new();
    t.register(PHONE);
    let first = issued(request(&t, PIN, document("a.pdf", HASH_A)));
    let second = issued(request(&t, PIN, document("b.pdf", HASH_B)));
    assert_eq!(
        sign(&t, first.challenge_id, first.code.expose()),
        Verification::Superseded
    );
    // A signature code is no login code, and a login code no signature code.
    assert!(matches!(
        t.engine
            .verify(second.challenge_id, Purpose::Login, &second.code)
            .map(|d| d.wait()),
        Err(EngineError::ChallengeNotFound)
    ));
    let login = t.login_code(PHONE);
    assert!(matches!(
        t.engine
            .verify(login.challenge_id, Purpose::Signature, &login.code)
            .map(|d| d.wait()),
        Err(EngineError::ChallengeNotFound)
    ));
    assert!(matches!(
        sign(&t, second.challenge_id, second.code.expose()),
        Verification::Approved(_)
    ));
}

#[test]
fn wrong_pins_count_and_lock_as_at_login_and_wrong_codes_as_at_verify() {
    let t = TestEngine::with_config(|c| {
        c.lockout.pin_threshold = 3;
        c.lockout.code_threshold = 2;
    });
    let account = t.register(PHONE);
    assert!(matches!(
        request(&t, OTHER_PIN, document("a.pdf", HASH_A)),
        LoginOutcome::InvalidCredentials
    ));
    assert_eq!(t.view(account).pin_failures, 1);
    let issued = issued(request(&t, PIN, document("a.pdf", HASH_A)));
    assert_eq!(t.view(account).pin_failures, 0);
    assert!(matches!(
        sign(&t, issued.challenge_id, &wrong(&issued.code)),
        Verification::WrongCode { .. }
    ));
    assert_eq!(
        sign(&t, issued.challenge_id, &wrong(&issued.code)),
        Verification::Locked
    );
    assert!(matches!(
        request(&t, PIN, document("a.pdf", HASH_A)),
        LoginOutcome::Locked
    ));
}

#[test]
fn the_binding_survives_a_restart_and_a_resend() {
    let t =
        TestEngine::with_config(|c| c.resend_cooldown = ResendCooldown(std::time::Duration::ZERO));
    t.register(PHONE);
    let issued = issued(request(&t, PIN, document("a.pdf", HASH_A)));
    let t = t.restart();
    let again = t
        .engine
        .resend(issued.challenge_id, None)
        .and_then(Durable::wait)
        .unwrap();
    assert_eq!(again.document.as_ref().unwrap().sha256_hex(), HASH_A);
    let t = t.restart();
    match sign(&t, again.challenge_id, again.code.expose()) {
        Verification::Approved(a) => assert_eq!(a.document.unwrap().sha256_hex(), HASH_A),
        other => panic!("{other:?}"),
    }
}
