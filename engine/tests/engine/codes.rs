use std::time::Duration;

use engine::*;

use crate::helpers::*;

const PHONE: &str = "+351912345678";

#[test]
fn the_right_code_is_approved_once_with_the_account_and_identity() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    let issued = t.login_code(PHONE);
    assert_eq!(issued.channel, Channel::Sms);
    assert_eq!(issued.destination, PHONE);
    assert_eq!(issued.masked_destination, "+351******678");
    assert_eq!(issued.expires_at, START.plus(Duration::from_secs(300)));
    let code = issued.code.expose().to_owned();
    assert_eq!(code.len(), 6);
    match t.verify(issued.challenge_id, &code) {
        Verification::Approved(approval) => {
            assert_eq!(approval.account_id, id);
            assert_eq!(approval.identity, identity_for(PHONE));
            assert_eq!(approval.purpose, Purpose::Login);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        t.verify(issued.challenge_id, &code),
        Verification::AlreadyUsed
    );
    assert_eq!(
        t.engine
            .challenge_status(issued.challenge_id)
            .unwrap()
            .state,
        ChallengeStatusKind::Verified
    );
}

#[test]
fn every_login_sends_a_new_code_and_only_the_last_is_valid() {
    let t = TestEngine::new();
    t.register(PHONE);
    let first = t.login_code(PHONE);
    let second = t.login_code(PHONE);
    assert_ne!(first.challenge_id, second.challenge_id);
    // Each names its account's cluster slot in its first 8 bytes; the
    // rest is random.
    for issued in [&first, &second] {
        let (challenge, account) = (issued.challenge_id.to_bytes(), issued.account_id.to_bytes());
        assert_eq!(challenge[..8], account[..8]);
    }
    assert_ne!(
        first.challenge_id.to_bytes()[8..],
        second.challenge_id.to_bytes()[8..]
    );
    assert_eq!(
        t.verify(first.challenge_id, first.code.expose()),
        Verification::Superseded
    );
    assert_eq!(
        t.engine.challenge_status(first.challenge_id).unwrap().state,
        ChallengeStatusKind::Superseded
    );
    assert!(matches!(
        t.verify(second.challenge_id, second.code.expose()),
        Verification::Approved(_)
    ));
}

#[test]
fn a_code_past_its_lifetime_never_verifies() {
    let t = TestEngine::new();
    t.register(PHONE);
    let issued = t.login_code(PHONE);
    t.advance(Duration::from_secs(299));
    let status = t.engine.challenge_status(issued.challenge_id).unwrap();
    assert_eq!(status.state, ChallengeStatusKind::Pending);
    t.advance(Duration::from_secs(1));
    assert_eq!(
        t.verify(issued.challenge_id, issued.code.expose()),
        Verification::Expired
    );
}

#[test]
fn wrong_codes_exhaust_a_challenge_and_then_the_right_one_is_refused() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    let issued = t.login_code(PHONE);
    let bad = wrong(&issued.code);
    assert_eq!(
        t.verify(issued.challenge_id, &bad),
        Verification::WrongCode {
            attempts_remaining: 2
        }
    );
    assert_eq!(
        t.verify(issued.challenge_id, &bad),
        Verification::WrongCode {
            attempts_remaining: 1
        }
    );
    assert_eq!(
        t.verify(issued.challenge_id, &bad),
        Verification::WrongCode {
            attempts_remaining: 0
        }
    );
    assert_eq!(
        t.verify(issued.challenge_id, issued.code.expose()),
        Verification::Exhausted
    );
    assert_eq!(
        t.view(id).code_failures,
        3,
        "exhausted attempts are not checked or counted"
    );
}

#[test]
fn a_caller_may_shorten_a_codes_life_but_never_lengthen_it() {
    let t = TestEngine::new();
    t.register(PHONE);
    let login = |lifetime| {
        t.engine.login(
            &LoginId::Phone(Phone::parse(PHONE).unwrap()),
            &Pin::new(PIN),
            None,
            Some(lifetime),
            None,
        )
    };
    let short = match login(Duration::from_secs(60)).unwrap().wait().unwrap() {
        LoginOutcome::CodeSent(issued) => issued,
        other => panic!("{other:?}"),
    };
    assert_eq!(short.expires_at, START.plus(Duration::from_secs(60)));
    assert!(matches!(
        login(Duration::from_secs(301)),
        Err(EngineError::Invalid {
            field: "lifetime",
            ..
        })
    ));
    assert!(matches!(
        login(Duration::from_secs(1)),
        Err(EngineError::Invalid {
            field: "lifetime",
            ..
        })
    ));
}

#[test]
fn a_malformed_code_is_an_error_and_costs_no_attempt() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    let issued = t.login_code(PHONE);
    for bad in ["12345", "abcdef", "１２３４５６", &"1".repeat(100_000)] {
        let result = t
            .engine
            .verify(issued.challenge_id, Purpose::Login, &Code::new(bad));
        assert!(
            matches!(result, Err(EngineError::Invalid { field: "code", .. })),
            "{bad:.10}"
        );
    }
    assert_eq!(t.view(id).code_failures, 0);
    assert!(matches!(
        t.verify(issued.challenge_id, issued.code.expose()),
        Verification::Approved(_)
    ));
}

#[test]
fn a_code_cannot_be_used_for_another_purpose_or_an_unknown_challenge() {
    let t = TestEngine::new();
    t.register(PHONE);
    let issued = t.login_code(PHONE);
    let as_step_up = t
        .engine
        .verify(issued.challenge_id, Purpose::StepUp, &issued.code);
    assert!(matches!(as_step_up, Err(EngineError::ChallengeNotFound)));
    let unknown = ChallengeId::parse("challenge_id", &"0".repeat(32)).unwrap();
    assert!(matches!(
        t.engine.verify(unknown, Purpose::Login, &issued.code),
        Err(EngineError::ChallengeNotFound)
    ));
    assert!(matches!(
        t.verify(issued.challenge_id, issued.code.expose()),
        Verification::Approved(_)
    ));
}

#[test]
fn step_up_issues_a_code_without_a_pin() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    let issued = t.step_up(id);
    assert_eq!(issued.purpose, Purpose::StepUp);
    let login_verify = t
        .engine
        .verify(issued.challenge_id, Purpose::Login, &issued.code);
    assert!(matches!(login_verify, Err(EngineError::ChallengeNotFound)));
    let ok = t
        .engine
        .verify(issued.challenge_id, Purpose::StepUp, &issued.code)
        .unwrap()
        .wait()
        .unwrap();
    assert!(matches!(ok, Verification::Approved(_)));
}

#[test]
fn step_up_and_login_codes_do_not_supersede_each_other() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    let login = t.login_code(PHONE);
    let step_up = t.step_up(id);
    assert!(matches!(
        t.verify(login.challenge_id, login.code.expose()),
        Verification::Approved(_)
    ));
    let ok = t
        .engine
        .verify(step_up.challenge_id, Purpose::StepUp, &step_up.code);
    assert!(matches!(
        ok.unwrap().wait().unwrap(),
        Verification::Approved(_)
    ));
}

#[test]
fn resend_waits_for_the_cooldown_and_kills_the_old_code() {
    let t = TestEngine::new();
    t.register(PHONE);
    let first = t.login_code(PHONE);
    match t.engine.resend(first.challenge_id, None) {
        Err(EngineError::TooSoon { retry_after }) => {
            assert_eq!(retry_after, Duration::from_secs(30))
        }
        other => panic!("{other:?}"),
    }
    t.advance(Duration::from_secs(30));
    let second = t
        .engine
        .resend(first.challenge_id, None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(second.destination, first.destination);
    assert_eq!(second.expires_at, START.plus(Duration::from_secs(330)));
    assert_eq!(
        t.verify(first.challenge_id, first.code.expose()),
        Verification::Superseded
    );
    assert!(matches!(
        t.engine.resend(first.challenge_id, None),
        Err(EngineError::WrongState(_))
    ));
    assert!(matches!(
        t.verify(second.challenge_id, second.code.expose()),
        Verification::Approved(_)
    ));
}

#[test]
fn login_asks_for_a_channel_when_the_account_has_phone_and_email() {
    let t = TestEngine::new();
    t.register_full(PHONE, Some("ana@example.pt"), PIN);
    let login = |channel| {
        t.engine.login(
            &LoginId::Email(Email::parse("ana@example.pt").unwrap()),
            &Pin::new(PIN),
            channel,
            None,
            None,
        )
    };
    assert!(matches!(
        login(None),
        Err(EngineError::Invalid {
            field: "channel",
            ..
        })
    ));
    match login(Some(Channel::Email)).unwrap().wait().unwrap() {
        LoginOutcome::CodeSent(issued) => {
            assert_eq!(issued.channel, Channel::Email);
            assert_eq!(issued.masked_destination, "a***@example.pt");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        login(Some(Channel::Push)),
        Err(EngineError::ChannelUnavailable(_))
    ));
    assert!(matches!(
        login(Some(Channel::Letter)),
        Err(EngineError::Invalid {
            field: "channel",
            ..
        })
    ));
}

#[test]
fn a_registered_app_receives_push_codes() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    let token = PushToken::parse("app-install-0123456789abcdef").unwrap();
    t.engine
        .register_push_device(id, token)
        .unwrap()
        .wait()
        .unwrap();
    assert!(t.view(id).has_push_device);
    let issued = t
        .engine
        .issue_step_up(id, Some(Channel::Push), None, None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(issued.channel, Channel::Push);
    assert_eq!(issued.destination, "app-install-0123456789abcdef");
    assert_eq!(issued.masked_destination, "registered app");
}

#[test]
fn unknown_logins_and_wrong_pins_answer_alike() {
    let t = TestEngine::new();
    t.register(PHONE);
    assert!(matches!(
        t.login("+351999999999", PIN),
        LoginOutcome::InvalidCredentials
    ));
    assert!(matches!(
        t.login(PHONE, OTHER_PIN),
        LoginOutcome::InvalidCredentials
    ));
    let odd = t.engine.login(
        &LoginId::Phone(Phone::parse(PHONE).unwrap()),
        &Pin::new("1".repeat(10_000)),
        None,
        None,
        None,
    );
    assert!(matches!(
        odd,
        Err(EngineError::Invalid { field: "pin", .. })
    ));
}

#[test]
fn code_hashes_are_stored_never_the_codes() {
    let t = TestEngine::new();
    t.register(PHONE);
    let issued = t.login_code(PHONE);
    let code = issued.code.expose().to_owned();
    let t = t.restart();
    assert_eq!(t.challenges_held(), 1, "the challenge itself was stored");
    let mut found = false;
    for entry in walk(t.dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        found |= bytes.windows(code.len()).any(|w| w == code.as_bytes());
    }
    assert!(!found, "the plain code was found on disk");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
