use std::time::Duration;

use engine::*;

use crate::helpers::*;

const PHONE: &str = "+351912345678";

#[test]
fn five_wrong_pins_lock_and_then_even_the_right_pin_gets_locked() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    for n in 1..=4 {
        assert!(matches!(
            t.login(PHONE, OTHER_PIN),
            LoginOutcome::InvalidCredentials
        ));
        assert_eq!(t.view(id).pin_failures, n);
    }
    assert!(matches!(t.login(PHONE, OTHER_PIN), LoginOutcome::Locked));
    match t.view(id).state {
        AccountState::Locked(lock) => {
            assert_eq!(lock.reason, LockReason::PinFailures);
            assert_eq!(lock.until, None, "locked until a privileged unlock");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(t.login(PHONE, PIN), LoginOutcome::Locked));
    t.advance(Duration::from_secs(365 * 86_400));
    assert!(matches!(t.login(PHONE, PIN), LoginOutcome::Locked));
}

#[test]
fn a_right_pin_resets_the_pin_counter() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    t.login(PHONE, OTHER_PIN);
    t.login(PHONE, OTHER_PIN);
    t.login_code(PHONE);
    assert_eq!(t.view(id).pin_failures, 0);
}

#[test]
fn wrong_codes_keep_counting_across_reissued_challenges_and_lock() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        let issued = t.login_code(PHONE);
        let bad = wrong(&issued.code);
        outcomes.push(t.verify(issued.challenge_id, &bad));
        outcomes.push(t.verify(issued.challenge_id, &bad));
    }
    assert_eq!(t.view(id).code_failures, 10);
    assert_eq!(outcomes.last(), Some(&Verification::Locked));
    assert!(matches!(
        t.view(id).state,
        AccountState::Locked(Lock {
            reason: LockReason::CodeFailures,
            ..
        })
    ));
}

#[test]
fn issuing_codes_never_resets_the_counters() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    let issued = t.login_code(PHONE);
    t.verify(issued.challenge_id, &wrong(&issued.code));
    t.login(PHONE, OTHER_PIN);
    t.step_up(id);
    let view = t.view(id);
    assert_eq!((view.pin_failures, view.code_failures), (1, 1));
}

#[test]
fn a_right_code_while_locked_answers_locked_and_does_not_unlock() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    let issued = t.login_code(PHONE);
    t.engine
        .lock(id, "suspected fraud")
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(
        t.verify(issued.challenge_id, issued.code.expose()),
        Verification::Locked
    );
    assert_eq!(
        t.verify(issued.challenge_id, &wrong(&issued.code)),
        Verification::Locked
    );
    assert!(matches!(t.view(id).state, AccountState::Locked(_)));
    assert_eq!(
        t.view(id).code_failures,
        0,
        "nothing is counted while locked"
    );
    assert!(matches!(
        t.engine.issue_step_up(id, None, None, None),
        Err(EngineError::Locked { until: None })
    ));
}

#[test]
fn unlock_clears_counters_and_kills_old_codes() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    let issued = t.login_code(PHONE);
    t.login(PHONE, OTHER_PIN);
    t.engine.lock(id, "lost phone").unwrap().wait().unwrap();
    match t.view(id).state {
        AccountState::Locked(lock) => {
            assert_eq!(lock.reason, LockReason::Administrative("lost phone".into()));
        }
        other => panic!("{other:?}"),
    }
    t.engine.unlock(id).unwrap().wait().unwrap();
    let view = t.view(id);
    assert_eq!(view.state, AccountState::Active);
    assert_eq!((view.pin_failures, view.code_failures), (0, 0));
    assert_eq!(
        t.verify(issued.challenge_id, issued.code.expose()),
        Verification::Superseded
    );
    assert!(matches!(t.login(PHONE, PIN), LoginOutcome::CodeSent(_)));
}

#[test]
fn a_lock_reason_must_be_printable_and_short() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    for bad in ["", "   ", "bad\u{0}reason", &"x".repeat(201)] {
        assert!(matches!(
            t.engine.lock(id, bad),
            Err(EngineError::Invalid {
                field: "reason",
                ..
            })
        ));
    }
}

#[test]
fn temporary_lock_mode_lifts_by_itself_and_escalates() {
    let t = TestEngine::with_config(|c| {
        c.lockout.mode = LockMode::Temporary {
            first: Duration::from_secs(60),
            max: Duration::from_secs(3600),
        };
    });
    t.register(PHONE);
    for _ in 0..5 {
        t.login(PHONE, OTHER_PIN);
    }
    assert!(matches!(t.login(PHONE, PIN), LoginOutcome::Locked));
    t.advance(Duration::from_secs(60));
    for _ in 0..5 {
        t.login(PHONE, OTHER_PIN);
    }
    t.advance(Duration::from_secs(60));
    assert!(
        matches!(t.login(PHONE, PIN), LoginOutcome::Locked),
        "second lock lasts 120 s"
    );
    t.advance(Duration::from_secs(60));
    assert!(matches!(t.login(PHONE, PIN), LoginOutcome::CodeSent(_)));
}

#[test]
fn thresholds_are_configuration() {
    let t = TestEngine::with_config(|c| c.lockout.pin_threshold = 2);
    t.register(PHONE);
    t.login(PHONE, OTHER_PIN);
    assert!(matches!(t.login(PHONE, OTHER_PIN), LoginOutcome::Locked));
}

#[test]
fn unsafe_thresholds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::for_tests();
    config.store.path = Some(dir.path().to_owned());
    config.lockout.code_threshold = 101;
    let opened = Engine::open(
        config,
        CodeKey::new([1; 32]),
        std::sync::Arc::new(ManualClock::new(START)),
        seeded_rng([0; 32]),
    );
    assert!(matches!(
        opened,
        Err(EngineError::Invalid {
            field: "lockout.code_threshold",
            ..
        })
    ));
}
