use engine::*;

use crate::helpers::*;

fn new_account(phone: Option<&str>, email: Option<&str>, pin: &str) -> NewAccount {
    NewAccount {
        identity: identity_for(phone.unwrap_or("+351910000001")),
        phone: phone.map(|p| Phone::parse(p).unwrap()),
        email: email.map(|e| Email::parse(e).unwrap()),
        pin: Pin::new(pin),
        birth_date: None,
        postal_address: None,
        dm: None,
        locale: None,
    }
}

#[test]
fn registering_binds_identity_and_contacts_to_an_opaque_id() {
    let t = TestEngine::new();
    let id = t.register_full("+351912345678", Some("ana@example.pt"), PIN);
    let view = t.view(id);
    assert_eq!(view.state, AccountState::Active);
    assert_eq!(view.phone.unwrap().as_str(), "+351912345678");
    assert_eq!(view.email.unwrap().as_str(), "ana@example.pt");
    assert_eq!(id.to_string().len(), 32);
    assert!(
        !id.to_string().contains("12345678"),
        "the id says nothing of the identity"
    );
    assert_eq!(
        t.engine
            .find_by_identity(&identity_for("+351912345678"))
            .unwrap(),
        Some(id)
    );
}

#[test]
fn a_foreign_mobile_number_can_be_registered() {
    let t = TestEngine::new();
    let id = t.register("+44 7700 900123");
    assert_eq!(t.view(id).phone.unwrap().as_str(), "+447700900123");
}

#[test]
fn a_phone_email_or_identity_already_registered_is_a_conflict() {
    let t = TestEngine::new();
    t.register_full("+351912345678", Some("ana@example.pt"), PIN);
    let same_phone = NewAccount {
        identity: identity_for("+351900000002"),
        ..new_account(Some("+351912345678"), None, PIN)
    };
    let same_email = NewAccount {
        identity: identity_for("+351900000003"),
        ..new_account(Some("+351911111111"), Some("ANA@example.pt"), PIN)
    };
    let same_identity = NewAccount {
        identity: identity_for("+351912345678"),
        ..new_account(Some("+351922222222"), None, PIN)
    };
    for (attempt, field) in [
        (same_phone, "phone"),
        (same_email, "email"),
        (same_identity, "identity"),
    ] {
        match t.engine.register(attempt).map(|d| d.wait()) {
            Err(EngineError::Conflict { field: f }) => assert_eq!(f, field),
            other => panic!("expected a {field} conflict, got {other:?}"),
        }
    }
    assert_eq!(
        t.accounts_held(),
        1,
        "failed registrations leave nothing behind"
    );
}

#[test]
fn a_failed_registration_releases_what_it_reserved() {
    let t = TestEngine::new();
    t.register_full("+351912345678", None, PIN);
    // New phone, taken identity: the phone must stay free afterwards.
    let clash = NewAccount {
        identity: identity_for("+351912345678"),
        ..new_account(Some("+351933333333"), None, PIN)
    };
    assert!(matches!(
        t.engine.register(clash),
        Err(EngineError::Conflict { field: "identity" })
    ));
    t.register("+351933333333");
}

#[test]
fn registration_needs_a_phone_or_an_email() {
    let t = TestEngine::new();
    match t.engine.register(new_account(None, None, PIN)) {
        Err(EngineError::Invalid { field, .. }) => assert_eq!(field, "phone"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_weak_pin_is_refused_naming_the_field() {
    let t = TestEngine::new();
    for weak in ["1234", "0000", "12", "abcd"] {
        match t
            .engine
            .register(new_account(Some("+351912345678"), None, weak))
        {
            Err(EngineError::Invalid { field, .. }) => assert_eq!(field, "pin"),
            other => panic!("{weak}: {other:?}"),
        }
    }
}

#[test]
fn cancelling_frees_identity_and_contacts_and_keeps_the_record() {
    let t = TestEngine::new();
    let id = t.register_full("+351912345678", Some("ana@example.pt"), PIN);
    let issued = t.login_code("+351912345678");
    t.engine.cancel(id).unwrap().wait().unwrap();
    assert!(matches!(t.view(id).state, AccountState::Cancelled { .. }));
    assert!(matches!(
        t.engine.challenge_status(issued.challenge_id),
        Err(EngineError::ChallengeNotFound)
    ));
    assert!(matches!(
        t.login("+351912345678", PIN),
        LoginOutcome::InvalidCredentials
    ));
    assert!(matches!(
        t.engine.cancel(id),
        Err(EngineError::WrongState(_))
    ));
    let again = t.register_full("+351912345678", Some("ana@example.pt"), PIN);
    assert_ne!(again, id);
    let t = t.restart();
    assert!(
        matches!(t.view(id).state, AccountState::Cancelled { .. }),
        "kept for audit"
    );
    assert_eq!(t.view(again).state, AccountState::Active);
}

#[test]
fn account_views_never_show_the_pin_hash() {
    let t = TestEngine::new();
    let id = t.register("+351912345678");
    let shown = format!("{:?}", t.view(id));
    assert!(!shown.contains("argon2"), "{shown}");
}

#[test]
fn imports_without_a_usable_hash_are_refused() {
    let t = TestEngine::new();
    let phc = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$";
    let bad = t.engine.import(ImportAccount {
        identity: identity_for("+351912345678"),
        phone: Some(Phone::parse("+351912345678").unwrap()),
        email: None,
        birth_date: None,
        postal_address: None,
        pin_hash: Some(phc.into()),
        state: ImportState::Active,
    });
    assert!(matches!(
        bad,
        Err(EngineError::Invalid {
            field: "pin_hash",
            ..
        })
    ));
    let no_hash = t.engine.import(ImportAccount {
        identity: identity_for("+351912345678"),
        phone: Some(Phone::parse("+351912345678").unwrap()),
        email: None,
        birth_date: None,
        postal_address: None,
        pin_hash: None,
        state: ImportState::Active,
    });
    assert!(matches!(
        no_hash,
        Err(EngineError::Invalid {
            field: "pin_hash",
            ..
        })
    ));
}

#[test]
fn an_imported_locked_account_answers_locked() {
    let t = TestEngine::new();
    let id = t
        .engine
        .import(ImportAccount {
            identity: identity_for("+351912345678"),
            phone: Some(Phone::parse("+351912345678").unwrap()),
            email: None,
            birth_date: None,
            postal_address: None,
            pin_hash: Some(known_hash()),
            state: ImportState::Locked("migrated locked".into()),
        })
        .unwrap()
        .wait()
        .unwrap();
    assert!(matches!(t.view(id).state, AccountState::Locked(_)));
    assert!(matches!(
        t.login("+351912345678", PIN),
        LoginOutcome::Locked
    ));
    t.engine.unlock(id).unwrap().wait().unwrap();
    assert!(matches!(
        t.login("+351912345678", PIN),
        LoginOutcome::CodeSent(_)
    ));
}

/// The PHC string of PIN 4821 made by the reference C implementation
/// (argon2-cffi: `hash_secret(b"4821", b"\0" * 16, time_cost=1, memory_cost=64, parallelism=1, hash_len=32, type=ID)`).
fn known_hash() -> String {
    "$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$vVdDII2mHU6HzA/gjXRyKBXF7r1B3vYaLi/FqG604wU"
        .to_string()
}

#[test]
fn imported_hash_verifies_the_pin_it_was_made_from() {
    let t = TestEngine::new();
    t.engine
        .import(ImportAccount {
            identity: identity_for("+351912345678"),
            phone: Some(Phone::parse("+351912345678").unwrap()),
            email: None,
            birth_date: None,
            postal_address: None,
            pin_hash: Some(known_hash()),
            state: ImportState::Active,
        })
        .unwrap()
        .wait()
        .unwrap();
    assert!(matches!(
        t.login("+351912345678", PIN),
        LoginOutcome::CodeSent(_)
    ));
    assert!(matches!(
        t.login("+351912345678", OTHER_PIN),
        LoginOutcome::InvalidCredentials
    ));
}

#[test]
fn client_keys_authenticate_until_revoked_and_survive_restarts() {
    let t = TestEngine::new();
    let scopes = Scopes::of(&[Scope::Auth, Scope::Accounts]);
    let (info, key) = t
        .engine
        .add_client("portal", scopes)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(info.scopes, scopes);
    assert!(matches!(
        t.engine.add_client("portal", scopes),
        Err(EngineError::Conflict { field: "name" })
    ));
    assert!(matches!(
        t.engine.add_client("bad name!", scopes),
        Err(EngineError::Invalid { .. })
    ));
    assert!(matches!(
        t.engine.add_client("none", Scopes::default()),
        Err(EngineError::Invalid { .. })
    ));
    let t = t.restart();
    assert_eq!(
        t.engine.authenticate_client(key.expose()).unwrap().name,
        "portal"
    );
    let mut tampered = key.expose().to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    assert!(t.engine.authenticate_client(&tampered).is_none());
    assert!(
        t.engine
            .authenticate_client("otpd_0000000000000000_00")
            .is_none()
    );
    t.engine.revoke_client("portal").unwrap().wait().unwrap();
    assert!(t.engine.authenticate_client(key.expose()).is_none());
    let t = t.restart();
    assert!(t.engine.authenticate_client(key.expose()).is_none());
    assert!(t.engine.clients()[0].revoked_at.is_some());
    let (_, again) = t
        .engine
        .add_client("portal", scopes)
        .unwrap()
        .wait()
        .unwrap();
    assert!(t.engine.authenticate_client(again.expose()).is_some());
}
