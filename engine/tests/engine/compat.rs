//! Stores written by earlier versions still open and mean the same: a
//! backup taken by the version of issue #14 (before the code key was split
//! into keys with purpose and queued codes were sealed with an AEAD) is
//! restored and read by this version.
//!
//! The fixture holds a registered account with a PIN, a live step-up
//! challenge whose message is still queued (its code sealed the old way),
//! a login challenge whose message was dead-lettered, and a client.
//! `cargo test -p otp-engine --test engine -- --ignored write_the_v14_fixture`
//! rewrote it, with that version's code; it must not be rewritten now.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::*;

use crate::helpers::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v14")
}

const PHONE: &str = "+351912340014";

fn open(path: PathBuf) -> Engine {
    let mut config = EngineConfig::for_tests();
    config.store.path = Some(path);
    Engine::open(
        config,
        CodeKey::new([42; 32]),
        Arc::new(ManualClock::new(START)),
        seeded_rng([14; 32]),
    )
    .expect("the store opens")
}

/// What the fixture must hold, one `name value` per line.
fn expected() -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(fixture().join("expected.txt"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
#[ignore = "writes the fixture; run only with the version the fixture is named for"]
fn write_the_v14_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path().join("store"));
    let account = engine
        .register(NewAccount {
            identity: identity_for(PHONE),
            phone: Some(Phone::parse(PHONE).unwrap()),
            email: None,
            pin: Pin::new(PIN),
            birth_date: None,
            postal_address: None,
            dm: None,
            locale: None,
        })
        .and_then(Durable::wait)
        .unwrap()
        .id;
    let login = match engine
        .login(
            &LoginId::Phone(Phone::parse(PHONE).unwrap()),
            &Pin::new(PIN),
            None,
            None,
            None,
        )
        .and_then(Durable::wait)
        .unwrap()
    {
        LoginOutcome::CodeSent(issued) => issued,
        other => panic!("{other:?}"),
    };
    engine
        .outbox_report(
            login.message_id,
            SendResult::Permanent {
                reason: "gateway refused".into(),
            },
        )
        .and_then(Durable::wait)
        .unwrap();
    let step_up = engine
        .issue_step_up(account, None, None, None)
        .and_then(Durable::wait)
        .unwrap();
    let (_, key) = engine
        .add_client("fixture", Scopes::of(&[Scope::Auth]))
        .and_then(Durable::wait)
        .unwrap();
    let out = fixture();
    let _ = std::fs::remove_dir_all(&out);
    engine.backup_to(&out).unwrap();
    std::fs::write(
        out.join("expected.txt"),
        format!(
            "account {account}\nstep_up {}\nstep_up_code {}\nlogin {}\nclient_key {}\n",
            step_up.challenge_id,
            step_up.code.expose(),
            login.challenge_id,
            key.expose()
        ),
    )
    .unwrap();
}

#[test]
fn a_store_written_by_the_v14_version_opens_and_means_the_same() {
    let expected = expected();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let summary = restore_backup(&fixture(), &store).expect("the v14 backup restores");
    assert!(summary.records >= 6, "{summary:?}");
    let engine = open(store);

    let account = AccountId::parse("account", &expected["account"]).unwrap();
    let view = engine.account(account).unwrap();
    assert_eq!(view.state, AccountState::Active);
    assert_eq!(view.phone.unwrap().as_str(), PHONE);
    assert!(
        engine
            .authenticate_client(&expected["client_key"])
            .is_some()
    );
    assert_eq!(engine.dead_letters().unwrap().len(), 1);

    // The queued step-up message still unseals to its code...
    let due = engine.outbox_due(10);
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].challenge_id.to_string(), expected["step_up"]);
    assert_eq!(due[0].code.expose(), expected["step_up_code"]);
    // ...which still verifies (its keyed hash was made with the old key use).
    let step_up = ChallengeId::parse("challenge", &expected["step_up"]).unwrap();
    let outcome = engine
        .verify(
            step_up,
            Purpose::StepUp,
            &Code::new(expected["step_up_code"].clone()),
        )
        .and_then(Durable::wait)
        .unwrap();
    assert!(matches!(outcome, Verification::Approved(_)), "{outcome:?}");
    // And the PIN logs in.
    assert!(matches!(
        engine
            .login(
                &LoginId::Phone(Phone::parse(PHONE).unwrap()),
                &Pin::new(PIN),
                None,
                None,
                None,
            )
            .and_then(Durable::wait)
            .unwrap(),
        LoginOutcome::CodeSent(_)
    ));
}
