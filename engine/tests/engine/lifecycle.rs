//! Activation, PIN change and reset, contact change.

use std::time::Duration;

use engine::*;

use crate::helpers::*;

const PHONE: &str = "+351912345678";

fn birth() -> BirthDate {
    BirthDate::parse("1980-04-25", START).unwrap()
}

fn pre_register(t: &TestEngine, phone: Option<&str>, address: Option<&str>) -> AccountId {
    t.engine
        .pre_register(PreRegistration {
            identity: Identity::parse(IdentityKind::SocialSecurity, "11234567892", None).unwrap(),
            birth_date: birth(),
            phone: phone.map(|p| Phone::parse(p).unwrap()),
            email: None,
            postal_address: address.map(|a| PostalAddress::parse(a).unwrap()),
            locale: None,
        })
        .unwrap()
        .wait()
        .unwrap()
        .id
}

fn niss() -> Identity {
    Identity::parse(IdentityKind::SocialSecurity, "11234567892", None).unwrap()
}

fn by_challenge(id: ChallengeId) -> ActivationTarget {
    ActivationTarget::Challenge {
        id,
        birth_date: None,
    }
}

fn by_niss(birth_date: Option<BirthDate>) -> ActivationTarget {
    ActivationTarget::Identity {
        identity: niss(),
        birth_date,
    }
}

fn activate(t: &TestEngine, target: &ActivationTarget, code: &str) -> Result<Verification> {
    t.engine
        .activate(target, &Code::new(code), &Pin::new(PIN))
        .and_then(Durable::wait)
}

#[test]
fn a_letter_code_activates_with_the_niss_alone_as_the_social_security_guide_has_it() {
    let t = TestEngine::new();
    let id = pre_register(&t, None, Some("Rua Augusta 1\n1100-048 Lisboa"));
    let letter = t
        .engine
        .request_activation(&niss(), birth(), Channel::Letter, None)
        .unwrap()
        .wait()
        .unwrap();
    t.advance(Duration::from_secs(8 * 86_400));
    let t = t.restart();
    let typed = letter.code.expose().to_lowercase();
    assert!(matches!(
        activate(&t, &by_niss(None), &typed).unwrap(),
        Verification::Approved(_)
    ));
    assert_eq!(t.view(id).state, AccountState::Active);
    // The same code again: by its challenge it is "already used" (as at
    // verify); by identity there is nothing pending any more.
    assert_eq!(
        activate(&t, &by_challenge(letter.challenge_id), &typed).unwrap(),
        Verification::AlreadyUsed
    );
    assert!(matches!(
        activate(&t, &by_niss(None), &typed),
        Err(EngineError::ActivationNotFound)
    ));
}

#[test]
fn activation_by_identity_counts_wrong_codes_and_hashes_only_after_a_right_one() {
    let t = TestEngine::with_config(|c| c.lockout.code_threshold = 3);
    let id = pre_register(&t, Some(PHONE), None);
    let sms = t
        .engine
        .request_activation(&niss(), birth(), Channel::Sms, None)
        .unwrap()
        .wait()
        .unwrap();
    let runs = t.engine.stats().argon2_runs;
    let wrong = wrong(&sms.code);
    assert!(matches!(
        activate(&t, &by_niss(Some(birth())), &wrong).unwrap(),
        Verification::WrongCode {
            attempts_remaining: 2
        }
    ));
    assert_eq!(t.view(id).code_failures, 1);
    assert_eq!(
        t.engine.stats().argon2_runs,
        runs,
        "a wrong code costs no Argon2"
    );
    // Another birth date, an unknown identity: one answer, nothing counted.
    let other_day = BirthDate::parse("1980-04-26", START).unwrap();
    assert!(matches!(
        activate(&t, &by_niss(Some(other_day)), sms.code.expose()),
        Err(EngineError::ActivationNotFound)
    ));
    let stranger = ActivationTarget::Identity {
        identity: Identity::parse(IdentityKind::SocialSecurity, "12345678902", None).unwrap(),
        birth_date: None,
    };
    assert!(matches!(
        activate(&t, &stranger, sms.code.expose()),
        Err(EngineError::ActivationNotFound)
    ));
    assert_eq!(t.view(id).code_failures, 1);
    assert_eq!(t.engine.stats().argon2_runs, runs);
    assert!(matches!(
        activate(&t, &by_niss(Some(birth())), sms.code.expose()).unwrap(),
        Verification::Approved(_)
    ));
    assert_eq!(
        t.engine.stats().argon2_runs,
        runs + 1,
        "one hash, for the right code"
    );
    assert_eq!(t.view(id).state, AccountState::Active);
}

#[test]
fn a_locked_pending_account_answers_by_identity_as_an_unknown_one() {
    let t = TestEngine::with_config(|c| c.lockout.code_threshold = 2);
    let id = pre_register(&t, Some(PHONE), None);
    let sms = t
        .engine
        .request_activation(&niss(), birth(), Channel::Sms, None)
        .unwrap()
        .wait()
        .unwrap();
    let wrong = wrong(&sms.code);
    activate(&t, &by_niss(None), &wrong).unwrap();
    assert_eq!(
        activate(&t, &by_niss(None), &wrong).unwrap(),
        Verification::Locked
    );
    assert!(matches!(t.view(id).state, AccountState::Locked(_)));
    assert!(matches!(
        activate(&t, &by_niss(None), sms.code.expose()),
        Err(EngineError::ActivationNotFound)
    ));
    assert_eq!(
        activate(&t, &by_challenge(sms.challenge_id), sms.code.expose()).unwrap(),
        Verification::Locked,
        "by challenge id, a lock answers as at verify"
    );
}

#[test]
fn a_pre_registered_account_activates_with_an_sms_code_and_a_new_pin() {
    let t = TestEngine::new();
    let id = pre_register(&t, Some(PHONE), None);
    assert_eq!(t.view(id).state, AccountState::PendingActivation);
    assert!(
        matches!(t.login(PHONE, PIN), LoginOutcome::InvalidCredentials),
        "no PIN yet"
    );
    let issued = t
        .engine
        .request_activation(&niss(), birth(), Channel::Sms, None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(issued.purpose, Purpose::Activation);
    assert_eq!(issued.expires_at, START.plus(Duration::from_secs(600)));
    let weak = t.engine.activate(
        &by_challenge(issued.challenge_id),
        &issued.code,
        &Pin::new("1111"),
    );
    assert!(matches!(
        weak,
        Err(EngineError::Invalid { field: "pin", .. })
    ));
    let outcome = t
        .engine
        .activate(
            &by_challenge(issued.challenge_id),
            &issued.code,
            &Pin::new(PIN),
        )
        .unwrap()
        .wait()
        .unwrap();
    assert!(matches!(outcome, Verification::Approved(_)));
    assert_eq!(t.view(id).state, AccountState::Active);
    assert!(matches!(t.login(PHONE, PIN), LoginOutcome::CodeSent(_)));
}

#[test]
fn activation_needs_the_matching_birth_date_and_a_pending_account() {
    let t = TestEngine::new();
    pre_register(&t, Some(PHONE), None);
    let other_day = BirthDate::parse("1980-04-26", START).unwrap();
    assert!(matches!(
        t.engine
            .request_activation(&niss(), other_day, Channel::Sms, None),
        Err(EngineError::ActivationNotFound)
    ));
    let stranger = Identity::parse(IdentityKind::CivilId, "87654321", None).unwrap();
    assert!(matches!(
        t.engine
            .request_activation(&stranger, birth(), Channel::Sms, None),
        Err(EngineError::ActivationNotFound)
    ));
    assert!(matches!(
        t.engine
            .request_activation(&niss(), birth(), Channel::Email, None),
        Err(EngineError::ChannelUnavailable(_))
    ));
    assert!(matches!(
        t.engine
            .request_activation(&niss(), birth(), Channel::Letter, None),
        Err(EngineError::ChannelUnavailable(_))
    ));
}

#[test]
fn a_letter_code_lives_thirty_days_and_survives_restarts() {
    let t = TestEngine::new();
    let id = pre_register(&t, None, Some("Rua Augusta 1\n1100-048 Lisboa"));
    let issued = t
        .engine
        .request_activation(&niss(), birth(), Channel::Letter, None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(issued.destination, "Rua Augusta 1\n1100-048 Lisboa");
    assert_eq!(issued.code.expose().len(), 10);
    assert_eq!(
        issued.expires_at,
        START.plus(Duration::from_secs(30 * 86_400))
    );
    // Eight business days in the post, and two restarts of the service.
    t.advance(Duration::from_secs(12 * 86_400));
    let t = t.restart();
    t.engine.sweep_expired().unwrap();
    let t = t.restart();
    let typed = issued.code.expose().to_lowercase();
    let typed = format!("{}-{}", &typed[..5], &typed[5..]);
    let outcome = t
        .engine
        .activate(
            &by_challenge(issued.challenge_id),
            &Code::new(typed),
            &Pin::new(PIN),
        )
        .unwrap()
        .wait()
        .unwrap();
    assert!(matches!(outcome, Verification::Approved(_)));
    assert_eq!(t.view(id).state, AccountState::Active);
}

#[test]
fn a_newer_activation_code_supersedes_the_letter() {
    let t = TestEngine::new();
    pre_register(&t, Some(PHONE), Some("Rua Augusta 1"));
    let letter = t
        .engine
        .request_activation(&niss(), birth(), Channel::Letter, None)
        .unwrap()
        .wait()
        .unwrap();
    let sms = t
        .engine
        .request_activation(&niss(), birth(), Channel::Sms, None)
        .unwrap()
        .wait()
        .unwrap();
    let old = t
        .engine
        .activate(
            &by_challenge(letter.challenge_id),
            &letter.code,
            &Pin::new(PIN),
        )
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(old, Verification::Superseded);
    let new = t
        .engine
        .activate(&by_challenge(sms.challenge_id), &sms.code, &Pin::new(PIN))
        .unwrap()
        .wait()
        .unwrap();
    assert!(matches!(new, Verification::Approved(_)));
    assert!(
        matches!(
            t.engine
                .request_activation(&niss(), birth(), Channel::Sms, None),
            Err(EngineError::ActivationNotFound)
        ),
        "an active account cannot be activated again"
    );
}

#[test]
fn changing_the_pin_needs_the_current_pin_and_a_fresh_code() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    let step_up = t.step_up(id);
    let change = |current: &str, code: &Code, new: &str| {
        t.engine
            .change_pin(
                id,
                &Pin::new(current),
                step_up.challenge_id,
                code,
                &Pin::new(new),
            )
            .and_then(Durable::wait)
    };
    assert!(matches!(
        change(PIN, &step_up.code, "1234"),
        Err(EngineError::Invalid {
            field: "new_pin",
            ..
        })
    ));
    assert!(matches!(
        change(PIN, &step_up.code, PIN),
        Err(EngineError::Invalid {
            field: "new_pin",
            ..
        })
    ));
    assert_eq!(
        change("7302", &step_up.code, "5829").unwrap(),
        PinChange::WrongPin
    );
    assert_eq!(t.view(id).pin_failures, 1);
    let bad = Code::new(wrong(&step_up.code));
    assert_eq!(
        change(PIN, &bad, "5829").unwrap(),
        PinChange::CodeRejected(Verification::WrongCode {
            attempts_remaining: 2
        })
    );
    assert_eq!(
        change(PIN, &step_up.code, "5829").unwrap(),
        PinChange::Changed
    );
    assert!(matches!(
        t.login(PHONE, PIN),
        LoginOutcome::InvalidCredentials
    ));
    assert!(matches!(t.login(PHONE, "5829"), LoginOutcome::CodeSent(_)));
}

#[test]
fn a_privileged_pin_reset_unlocks_and_sets_the_new_pin() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    let old = t.login_code(PHONE);
    for _ in 0..5 {
        t.login(PHONE, OTHER_PIN);
    }
    assert!(matches!(t.view(id).state, AccountState::Locked(_)));
    assert!(matches!(
        t.engine.reset_pin(id, &Pin::new("0000")),
        Err(EngineError::Invalid { field: "pin", .. })
    ));
    t.engine
        .reset_pin(id, &Pin::new("5829"))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(t.view(id).state, AccountState::Active);
    assert_eq!(
        t.verify(old.challenge_id, old.code.expose()),
        Verification::Superseded
    );
    assert!(matches!(t.login(PHONE, "5829"), LoginOutcome::CodeSent(_)));
}

#[test]
fn a_pin_reset_also_activates_a_pending_account() {
    let t = TestEngine::new();
    let id = pre_register(&t, Some(PHONE), None);
    t.engine
        .reset_pin(id, &Pin::new(PIN))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(t.view(id).state, AccountState::Active);
}

#[test]
fn changing_the_phone_proves_the_old_contact_and_the_new_one() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    let proof = t.step_up(id);
    let new_phone = Phone::parse("+351934567890").unwrap();
    let bad = Code::new(wrong(&proof.code));
    let rejected = t
        .engine
        .begin_contact_change(
            id,
            proof.challenge_id,
            &bad,
            Contact::Phone(new_phone.clone()),
            None,
        )
        .unwrap()
        .wait()
        .unwrap();
    assert!(matches!(
        rejected,
        ContactChangeStart::ProofRejected(Verification::WrongCode { .. })
    ));
    let started = t
        .engine
        .begin_contact_change(
            id,
            proof.challenge_id,
            &proof.code,
            Contact::Phone(new_phone.clone()),
            None,
        )
        .unwrap()
        .wait()
        .unwrap();
    let ContactChangeStart::CodeSent(to_new) = started else {
        panic!("{started:?}")
    };
    assert_eq!(to_new.destination, "+351934567890");
    assert_eq!(
        t.view(id).phone.as_ref(),
        Some(&Phone::parse(PHONE).unwrap()),
        "not changed yet"
    );
    let done = t
        .engine
        .confirm_contact_change(to_new.challenge_id, &to_new.code)
        .unwrap()
        .wait()
        .unwrap();
    assert!(matches!(done, Verification::Approved(_)));
    assert_eq!(t.view(id).phone, Some(new_phone));
    assert!(matches!(
        t.login(PHONE, PIN),
        LoginOutcome::InvalidCredentials
    ));
    assert!(matches!(
        t.login("+351934567890", PIN),
        LoginOutcome::CodeSent(_)
    ));
    // The old number is free for someone else.
    t.register_full(PHONE, None, PIN);
}

#[test]
fn a_contact_taken_by_another_account_cannot_be_claimed() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    t.register_full("+351934567890", Some("rui@example.pt"), PIN);
    let proof = t.step_up(id);
    let taken = Contact::Email(Email::parse("rui@example.pt").unwrap());
    assert!(matches!(
        t.engine
            .begin_contact_change(id, proof.challenge_id, &proof.code, taken, None),
        Err(EngineError::Conflict { field: "email" })
    ));
    // The proof code was not spent by the refused request.
    let email = Contact::Email(Email::parse("ana@example.pt").unwrap());
    let started = t
        .engine
        .begin_contact_change(id, proof.challenge_id, &proof.code, email, None)
        .unwrap()
        .wait()
        .unwrap();
    let ContactChangeStart::CodeSent(to_new) = started else {
        panic!("{started:?}")
    };
    // Someone else registers the address before the citizen confirms it.
    t.register_full("+351945678901", Some("ana@example.pt"), PIN);
    assert!(matches!(
        t.engine
            .confirm_contact_change(to_new.challenge_id, &to_new.code),
        Err(EngineError::Conflict { field: "email" })
    ));
    assert_eq!(t.view(id).email, None);
}
