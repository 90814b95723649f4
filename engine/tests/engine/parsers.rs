//! No input panics: every parser a request reaches, fed arbitrary text,
//! answers `Ok` or a typed error naming a field (issue #14: a 32-byte id of
//! multi-byte characters used to panic the handler).

use std::time::Duration;

use engine::*;
use proptest::prelude::*;

use crate::helpers::{PIN, START, TestEngine};

/// Arbitrary Unicode, plus text built from the characters parsers trip
/// on: hex digits, signs, spaces, separators and multi-byte characters at
/// odd offsets, at the lengths ids, keys and numbers have.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9a-fA-F+\\- _€é\u{202e}\u{0}]{0,70}",
        "\\+?[0-9 ()\\-.€]{0,24}",
        "[a-z0-9._%+\\-€]{0,20}@[a-z0-9.\\-€]{0,20}",
        "otpd_[0-9a-f€]{0,20}_[0-9a-f€]{0,70}",
        "[0-9\\-/€]{0,12}",
        prop::collection::vec(any::<u8>(), 0..80)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        exactly_32_bytes(),
    ]
}

/// 32 bytes (an id's length) mixing hex digits, signs and multi-byte
/// characters, so byte offsets fall inside characters.
fn exactly_32_bytes() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[0-9a-f]",
            Just("€".to_owned()),
            Just("é".to_owned()),
            Just("+".to_owned())
        ],
        1..32,
    )
    .prop_map(|parts| {
        let mut s = String::new();
        for p in parts {
            if s.len() + p.len() > 32 {
                break;
            }
            s.push_str(&p);
        }
        while s.len() < 32 {
            s.push('a');
        }
        s
    })
}

/// A typed error must name a field (`Invalid`), or be one of the typed refusals.
fn typed<T: std::fmt::Debug>(result: Result<T>) -> std::result::Result<(), TestCaseError> {
    match result {
        Ok(_)
        | Err(EngineError::Invalid { .. })
        | Err(EngineError::Conflict { .. })
        | Err(EngineError::ChallengeNotFound)
        | Err(EngineError::AccountNotFound)
        | Err(EngineError::ActivationNotFound)
        | Err(EngineError::WrongState(_))
        | Err(EngineError::ChannelUnavailable(_)) => Ok(()),
        Err(other) => Err(TestCaseError::fail(format!("untyped error {other:?}"))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn ids_parse_or_name_their_field(s in text()) {
        typed(AccountId::parse("account_id", &s))?;
        typed(ChallengeId::parse("challenge_id", &s))?;
        if let Ok(id) = ChallengeId::parse("challenge_id", &s) {
            // Whatever parses is exactly 32 hex digits and prints back the same.
            prop_assert_eq!(id.to_string(), s.trim().to_ascii_lowercase());
        }
    }

    #[test]
    fn identities_parse_or_name_their_field(kind in text(), number in text(), country in proptest::option::of(text())) {
        typed(IdentityKind::parse(&kind))?;
        for kind in [IdentityKind::CivilId, IdentityKind::Passport, IdentityKind::SocialSecurity] {
            typed(Identity::parse(kind, &number, country.as_deref()))?;
        }
    }

    #[test]
    fn contacts_dates_addresses_tokens_and_names_parse_or_name_their_field(s in text()) {
        typed(Phone::parse(&s))?;
        typed(Email::parse(&s))?;
        typed(BirthDate::parse(&s, START))?;
        typed(PostalAddress::parse(&s))?;
        typed(PushToken::parse(&s))?;
        typed(Channel::parse(&s))?;
        typed(Locale::parse(&s))?;
        typed(Scope::parse(&s))?;
        typed(PinPolicy::default().check("pin", &Pin::new(s.clone())))?;
        if let Ok(phone) = Phone::parse(&s) {
            // A parsed phone is E.164 and parses again to itself.
            prop_assert_eq!(Phone::parse(phone.as_str()).ok(), Some(phone));
        }
    }

    #[test]
    fn direct_message_handles_parse_or_name_their_field(platform in text(), handle in text()) {
        let policy = DmPolicy {
            platforms: vec!["twitter".into(), "signal".into()],
            case_sensitive: vec!["signal".into()],
        };
        typed(ContactKind::parse(&handle))?;
        for platform in [platform.as_str(), "twitter", "signal"] {
            match policy.parse(platform, &handle) {
                Ok(dm) => {
                    // Normalised once for good: it parses again to itself,
                    // and its mask never shows the whole handle.
                    prop_assert_eq!(policy.parse(dm.platform(), dm.handle()).ok(), Some(dm.clone()));
                    prop_assert!(!dm.masked_handle().contains(dm.handle()) || dm.handle().len() == 1);
                }
                Err(EngineError::Invalid { field, .. }) => {
                    prop_assert!(["dm.platform", "dm.handle"].contains(&field), "{}", field);
                }
                Err(other) => return Err(TestCaseError::fail(format!("untyped error {other:?}"))),
            }
        }
    }
}

/// The parsers behind the engine's operations: keys, PINs, codes, reasons.
#[test]
fn engine_operations_answer_arbitrary_text_with_typed_errors() {
    let t = TestEngine::with_config(|c| {
        c.limits = IssueLimitsConfig::off();
        c.resend_cooldown = ResendCooldown(Duration::ZERO);
        c.lockout.code_threshold = 100;
        c.lockout.pin_threshold = 100;
    });
    let account = t.register("+351912345678");
    let login = LoginId::Phone(Phone::parse("+351912345678").unwrap());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    });
    runner
        .run(&text(), |s| {
            prop_assert!(t.engine.authenticate_client(&s).is_none());
            typed(
                t.engine
                    .login(&login, &Pin::new(s.clone()), None, None, None)
                    .and_then(Durable::wait),
            )?;
            let issued = t.step_up(account);
            typed(
                t.engine
                    .verify(issued.challenge_id, Purpose::StepUp, &Code::new(s.clone()))
                    .and_then(Durable::wait),
            )?;
            typed(t.engine.lock(account, &s).and_then(Durable::wait))?;
            typed(t.engine.unlock(account).and_then(Durable::wait))?;
            Ok(())
        })
        .unwrap();
    // The PIN still works: nothing above changed it or locked the account.
    assert!(matches!(
        t.engine
            .login(&login, &Pin::new(PIN), None, None, None)
            .and_then(Durable::wait)
            .unwrap(),
        LoginOutcome::CodeSent(_)
    ));
}
