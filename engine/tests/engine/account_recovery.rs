//! Account recovery: unlock or a new PIN after the citizen proved who they
//! are elsewhere, recorded with its method and reference.

use engine::audit::EventKind;
use engine::*;

use crate::helpers::*;

const PHONE: &str = "+351912345678";

fn by_card(reference: &str) -> Recovery {
    Recovery::new(RecoveryMethod::CitizenCard, reference).unwrap()
}

fn lock_out(t: &TestEngine) -> AccountId {
    let id = t.register(PHONE);
    for _ in 0..t.config.lockout.pin_threshold {
        t.login(PHONE, OTHER_PIN);
    }
    assert!(matches!(t.view(id).state, AccountState::Locked(_)));
    id
}

#[test]
fn methods_and_references_parse_or_name_their_field() {
    for method in RecoveryMethod::ALL {
        assert_eq!(RecoveryMethod::parse(method.as_str()).unwrap(), method);
    }
    for bad in ["", "sms", "Citizen_Card", " in_person"] {
        let Err(EngineError::Invalid { field, .. }) = RecoveryMethod::parse(bad) else {
            panic!("{bad:?} accepted");
        };
        assert_eq!(field, "method");
    }
    assert_eq!(by_card("  CS-1 ").reference(), "CS-1");
    assert!(Recovery::new(RecoveryMethod::InPerson, &"é".repeat(128)).is_ok());
    for bad in ["".to_owned(), " ".into(), "a\tb".into(), "x".repeat(129)] {
        let Err(EngineError::Invalid { field, .. }) = Recovery::new(RecoveryMethod::InPerson, &bad)
        else {
            panic!("{bad:?} accepted");
        };
        assert_eq!(field, "reference");
    }
}

#[test]
fn a_recovery_unlock_clears_the_lock_and_counters_and_kills_old_codes() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    let old = t.login_code(PHONE);
    for _ in 0..t.config.lockout.pin_threshold {
        t.login(PHONE, OTHER_PIN);
    }
    let view = t
        .engine
        .recover_unlock(id, &by_card("PA-1"))
        .and_then(Durable::wait)
        .unwrap();
    assert_eq!(view.state, AccountState::Active);
    assert_eq!((view.pin_failures, view.code_failures), (0, 0));
    assert_eq!(
        t.verify(old.challenge_id, "000000"),
        Verification::Superseded
    );
    assert!(matches!(t.login(PHONE, PIN), LoginOutcome::CodeSent(_)));
    let events = t.engine.account_events(id, None, 100).unwrap();
    let event = &events
        .iter()
        .find(|r| r.event.kind == EventKind::RecoveryUnlocked)
        .expect("recorded")
        .event;
    assert_eq!(event.detail("method"), Some("citizen_card"));
    assert_eq!(event.detail("reference"), Some("PA-1"));
}

#[test]
fn a_recovery_pin_checks_the_policy_then_replaces_the_pin_and_unlocks() {
    let t = TestEngine::new();
    let id = lock_out(&t);
    let Err(EngineError::Invalid { field, .. }) =
        t.engine.recover_pin(id, &by_card("r"), &Pin::new("0000"))
    else {
        panic!("a weak PIN accepted");
    };
    assert_eq!(field, "new_pin");
    let view = t
        .engine
        .recover_pin(id, &by_card("r"), &Pin::new("5829"))
        .and_then(Durable::wait)
        .unwrap();
    assert_eq!(view.state, AccountState::Active);
    assert!(matches!(
        t.login(PHONE, PIN),
        LoginOutcome::InvalidCredentials
    ));
    assert!(matches!(t.login(PHONE, "5829"), LoginOutcome::CodeSent(_)));
    let kinds: Vec<EventKind> = t
        .engine
        .account_events(id, None, 100)
        .unwrap()
        .iter()
        .map(|r| r.event.kind)
        .collect();
    assert!(kinds.contains(&EventKind::RecoveryPinSet), "{kinds:?}");
}

#[test]
fn a_recovery_refuses_cancelled_pending_and_operator_locked_accounts() {
    let t = TestEngine::new();
    let cancelled = t.register(PHONE);
    t.engine.cancel(cancelled).unwrap().wait().unwrap();
    let held = t.register("+351934567890");
    t.engine.lock(held, "court order").unwrap().wait().unwrap();
    for id in [cancelled, held] {
        for result in [
            t.engine.recover_unlock(id, &by_card("r")).map(|_| ()),
            t.engine
                .recover_pin(id, &by_card("r"), &Pin::new("5829"))
                .map(|_| ()),
        ] {
            assert!(matches!(result, Err(EngineError::WrongState(_))), "{id:?}");
        }
    }
    assert!(matches!(t.view(held).state, AccountState::Locked(_)));
}
