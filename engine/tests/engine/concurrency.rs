//! Single use and atomic counting under real threads.

use std::sync::Arc;

use engine::*;

use crate::helpers::*;

const PHONE: &str = "+351912345678";

#[test]
fn the_right_code_in_fifty_parallel_requests_is_approved_exactly_once() {
    let t = TestEngine::new();
    t.register(PHONE);
    let issued = t.login_code(PHONE);
    let engine = Arc::clone(&t.engine);
    let (id, code) = (issued.challenge_id, issued.code.clone());
    let results = in_parallel(50, move |_| {
        engine
            .verify(id, Purpose::Login, &code)
            .unwrap()
            .wait()
            .unwrap()
    });
    let approved = results
        .iter()
        .filter(|r| matches!(r, Verification::Approved(_)))
        .count();
    assert_eq!(approved, 1);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Verification::Approved(_) | Verification::AlreadyUsed))
    );
}

#[test]
fn parallel_wrong_codes_are_each_counted() {
    let t = TestEngine::with_config(|c| {
        c.codes.login.max_attempts = 100;
        c.lockout.code_threshold = 100;
    });
    let account = t.register(PHONE);
    let issued = t.login_code(PHONE);
    let engine = Arc::clone(&t.engine);
    let (id, bad) = (issued.challenge_id, Code::new(wrong(&issued.code)));
    let results = in_parallel(40, move |_| {
        engine
            .verify(id, Purpose::Login, &bad)
            .unwrap()
            .wait()
            .unwrap()
    });
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Verification::WrongCode { .. }))
    );
    assert_eq!(t.view(account).code_failures, 40);
    assert_eq!(
        t.engine.challenge_status(id).unwrap().attempts_remaining,
        60
    );
}

#[test]
fn parallel_wrong_guesses_past_the_limit_are_not_even_checked() {
    let t = TestEngine::new();
    let account = t.register(PHONE);
    let issued = t.login_code(PHONE);
    let engine = Arc::clone(&t.engine);
    let (id, bad) = (issued.challenge_id, Code::new(wrong(&issued.code)));
    let results = in_parallel(200, move |_| {
        engine
            .verify(id, Purpose::Login, &bad)
            .unwrap()
            .wait()
            .unwrap()
    });
    let wrong = results
        .iter()
        .filter(|r| matches!(r, Verification::WrongCode { .. }))
        .count();
    let exhausted = results
        .iter()
        .filter(|r| **r == Verification::Exhausted)
        .count();
    assert_eq!((wrong, exhausted), (3, 197));
    assert_eq!(t.view(account).code_failures, 3);
}

#[test]
fn parallel_wrong_pins_are_each_counted() {
    let t = TestEngine::with_config(|c| c.lockout.pin_threshold = 100);
    let account = t.register(PHONE);
    let engine = Arc::clone(&t.engine);
    let results = in_parallel(20, move |_| {
        let login = LoginId::Phone(Phone::parse(PHONE).unwrap());
        engine
            .login(&login, &Pin::new(OTHER_PIN), None, None, None)
            .unwrap()
            .wait()
            .unwrap()
    });
    assert!(
        results
            .iter()
            .all(|r| matches!(r, LoginOutcome::InvalidCredentials))
    );
    assert_eq!(t.view(account).pin_failures, 20);
}

#[test]
fn parallel_registrations_of_one_phone_have_one_winner() {
    // Ten rounds: a failed registration rolls back its reservations, and a
    // rollback once deadlocked when two of its keys shared an index shard.
    let t = TestEngine::new();
    for round in 0..10u32 {
        let engine = Arc::clone(&t.engine);
        let phone = format!("+35191{round:07}");
        let results = in_parallel(16, move |i| {
            engine
                .register(NewAccount {
                    identity: Identity::parse(
                        IdentityKind::CivilId,
                        &format!("{round:04}{i:04}"),
                        None,
                    )
                    .unwrap(),
                    phone: Some(Phone::parse(&phone).unwrap()),
                    email: None,
                    pin: Pin::new(PIN),
                    birth_date: None,
                    postal_address: None,
                    dm: None,
                    locale: None,
                })
                .and_then(Durable::wait)
        });
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "round {round}");
        assert!(
            results
                .iter()
                .all(|r| r.is_ok() || matches!(r, Err(EngineError::Conflict { field: "phone" })))
        );
    }
    assert_eq!(t.accounts_held(), 10);
}

#[test]
fn logins_and_verifies_on_many_accounts_in_parallel_stay_consistent() {
    let t = TestEngine::new();
    let phones: Vec<String> = (0..8).map(|i| format!("+35191000000{i}")).collect();
    for p in &phones {
        t.register(p);
    }
    let engine = Arc::clone(&t.engine);
    let phones = Arc::new(phones);
    let approvals = in_parallel(8, move |i| {
        let login = LoginId::Phone(Phone::parse(&phones[i]).unwrap());
        let mut approved = 0;
        for _ in 0..25 {
            let LoginOutcome::CodeSent(issued) = engine
                .login(&login, &Pin::new(PIN), None, None, None)
                .unwrap()
                .wait()
                .unwrap()
            else {
                panic!("login failed")
            };
            let v = engine
                .verify(issued.challenge_id, Purpose::Login, &issued.code)
                .unwrap()
                .wait()
                .unwrap();
            approved += usize::from(matches!(v, Verification::Approved(_)));
        }
        approved
    });
    assert_eq!(approvals, vec![25; 8]);
    assert!(t.engine.stats().flush.flushes > 0);
}
