//! Relying parties as tenants: keys rotated, revoked and expiring while the
//! engine runs; each client's challenges its own; per-client purposes,
//! channels and rates. Test clients are in `test_clients.rs`.

use std::time::Duration;

use engine::audit::{Actor, EventKind, acting};
use engine::*;

use crate::helpers::*;

pub(crate) const PHONE: &str = "+351912345678";

pub(crate) fn as_client(info: &ClientInfo) -> Actor {
    Actor {
        client: Some(info.name.as_str().into()),
        client_id: Some(info.id),
        ..Actor::default()
    }
}

pub(crate) fn add(t: &TestEngine, new: NewClient) -> (ClientInfo, NewKey) {
    t.engine
        .add_client_with(new)
        .and_then(Durable::wait)
        .unwrap()
}

fn portal(t: &TestEngine, name: &str) -> ClientInfo {
    add(t, NewClient::new(name, Scopes::of(&Scope::ALL))).0
}

fn event_kinds(t: &TestEngine) -> Vec<(EventKind, Vec<(String, String)>)> {
    t.engine.flush().unwrap();
    let mut out = Vec::new();
    t.engine
        .scan_events(0, &mut |r| {
            if r.event.kind != EventKind::Checkpoint {
                out.push((
                    r.event.kind,
                    r.event
                        .details
                        .into_iter()
                        .map(|(k, v)| (k.into_owned(), v.to_string()))
                        .collect(),
                ));
            }
            Ok(true)
        })
        .unwrap();
    out
}

#[test]
fn a_rotated_key_works_beside_the_old_one_until_that_one_is_revoked() {
    let t = TestEngine::new();
    let (info, first) = add(&t, NewClient::new("portal", Scopes::of(&[Scope::Auth])));
    let second = t
        .engine
        .rotate_client_key("portal", None, None)
        .and_then(Durable::wait)
        .unwrap();
    assert_ne!(second.info.id, first.info.id);
    for key in [&first.key, &second.key] {
        let found = t.engine.authenticate_client(key.expose()).unwrap();
        assert_eq!(found.id, info.id, "one client, whichever key");
        assert_eq!(found.keys.len(), 2);
    }
    t.engine
        .revoke_client_key("portal", first.info.id)
        .and_then(Durable::wait)
        .unwrap();
    assert!(
        t.engine.authenticate_client(first.key.expose()).is_none(),
        "refused at once"
    );
    assert!(t.engine.authenticate_client(second.key.expose()).is_some());
    let t = t.restart();
    assert!(t.engine.authenticate_client(first.key.expose()).is_none());
    assert!(t.engine.authenticate_client(second.key.expose()).is_some());
    assert!(matches!(
        t.engine.revoke_client_key("portal", first.info.id),
        Err(EngineError::WrongState(_))
    ));
    assert!(matches!(
        t.engine.revoke_client_key(
            "portal",
            KeyId::parse("key_id", "0102030405060708").unwrap()
        ),
        Err(EngineError::ClientKeyNotFound)
    ));
    assert!(matches!(
        t.engine.rotate_client_key("nobody", None, None),
        Err(EngineError::ClientNotFound)
    ));
    let events = event_kinds(&t);
    let kinds: Vec<EventKind> = events.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        [
            EventKind::ClientAdded,
            EventKind::ClientKeyRotated,
            EventKind::ClientKeyRevoked
        ]
    );
    for (_, details) in &events {
        assert!(
            details.contains(&("name".into(), "portal".into())),
            "{details:?}"
        );
        let text = format!("{details:?}");
        for key in [&first.key, &second.key] {
            assert!(!text.contains(&key.expose()[22..]), "no secret in events");
        }
    }
    assert!(
        events[2]
            .1
            .contains(&("key_id".into(), first.info.id.to_string()))
    );
}

#[test]
fn keys_expire_by_the_clock_and_rotation_can_retire_the_old_ones() {
    let t = TestEngine::new();
    let in_a_day = START.plus(Duration::from_secs(86_400));
    let (_, first) = add(
        &t,
        NewClient {
            key_expires_at: Some(in_a_day),
            ..NewClient::new("portal", Scopes::of(&[Scope::Auth]))
        },
    );
    assert!(matches!(
        t.engine.rotate_client_key("portal", Some(START), None),
        Err(EngineError::Invalid {
            field: "expires_at",
            ..
        })
    ));
    let in_an_hour = START.plus(Duration::from_secs(3_600));
    let second = t
        .engine
        .rotate_client_key("portal", None, Some(in_an_hour))
        .and_then(Durable::wait)
        .unwrap();
    let keys = t.engine.client("portal").unwrap().keys;
    assert_eq!(keys[0].expires_at, Some(in_an_hour), "brought forward");
    t.advance(Duration::from_secs(3_599));
    assert!(t.engine.authenticate_client(first.key.expose()).is_some());
    t.advance(Duration::from_secs(1));
    assert!(t.engine.authenticate_client(first.key.expose()).is_none());
    assert!(t.engine.authenticate_client(second.key.expose()).is_some());
    // A later expiry never postpones an earlier one.
    let third = t
        .engine
        .rotate_client_key("portal", None, Some(in_a_day.plus(Duration::from_secs(9))))
        .and_then(Durable::wait)
        .unwrap();
    let keys = t.engine.client("portal").unwrap().keys;
    assert_eq!(keys[0].expires_at, Some(in_an_hour));
    assert_eq!(
        keys[1].expires_at,
        Some(in_a_day.plus(Duration::from_secs(9)))
    );
    assert_eq!(keys[2].id, third.info.id);
}

#[test]
fn a_client_holds_a_bounded_number_of_live_keys() {
    let t = TestEngine::new();
    portal(&t, "portal");
    for _ in 1..MAX_LIVE_KEYS {
        t.engine
            .rotate_client_key("portal", None, None)
            .and_then(Durable::wait)
            .unwrap();
    }
    assert!(matches!(
        t.engine.rotate_client_key("portal", None, None),
        Err(EngineError::WrongState(_))
    ));
    let first = t.engine.client("portal").unwrap().keys[0].id;
    t.engine
        .revoke_client_key("portal", first)
        .and_then(Durable::wait)
        .unwrap();
    assert!(t.engine.rotate_client_key("portal", None, None).is_ok());
}

#[test]
fn a_revoked_client_loses_every_key_and_its_name_can_be_given_again() {
    let t = TestEngine::new();
    let (old, first) = add(&t, NewClient::new("portal", Scopes::of(&[Scope::Auth])));
    let second = t
        .engine
        .rotate_client_key("portal", None, None)
        .and_then(Durable::wait)
        .unwrap();
    t.engine
        .revoke_client("portal")
        .and_then(Durable::wait)
        .unwrap();
    for key in [&first.key, &second.key] {
        assert!(t.engine.authenticate_client(key.expose()).is_none());
    }
    assert!(matches!(
        t.engine.client("portal"),
        Err(EngineError::ClientNotFound)
    ));
    let (new, _) = add(&t, NewClient::new("portal", Scopes::of(&[Scope::Auth])));
    assert_ne!(new.id, old.id, "a new client, not the old one again");
}

#[test]
fn updates_change_scopes_and_policy_at_once_and_are_validated() {
    let t = TestEngine::new();
    let (_, key) = add(&t, NewClient::new("portal", Scopes::of(&[Scope::Auth])));
    let policy = ClientPolicy {
        purposes: Some(PurposeSet::of(&[Purpose::Login])),
        channels: None,
        issue_rate: Some(Rate::per_minute(10)),
    };
    t.engine
        .update_client(
            "portal",
            ClientUpdate {
                scopes: Some(Scopes::of(&[Scope::Auth, Scope::Accounts])),
                purposes: Some(policy.purposes),
                issue_rate: Some(policy.issue_rate),
                ..ClientUpdate::default()
            },
        )
        .and_then(Durable::wait)
        .unwrap();
    let seen = t.engine.authenticate_client(key.key.expose()).unwrap();
    assert!(seen.scopes.contains(Scope::Accounts));
    assert_eq!(seen.policy, policy);
    let t = t.restart();
    assert_eq!(t.engine.client("portal").unwrap().policy, policy);
    for (update, field) in [
        (
            ClientUpdate {
                scopes: Some(Scopes::default()),
                ..ClientUpdate::default()
            },
            "scopes",
        ),
        (
            ClientUpdate {
                channels: Some(Some(ChannelSet::default())),
                ..ClientUpdate::default()
            },
            "channels",
        ),
    ] {
        match t.engine.update_client("portal", update) {
            Err(EngineError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{other:?}"),
        }
    }
    let last = event_kinds(&t).pop().unwrap();
    assert_eq!(last.0, EventKind::ClientUpdated);
    assert!(
        last.1.contains(&("purposes".into(), "login".into())),
        "{:?}",
        last.1
    );
    assert!(last.1.contains(&("issue_rate".into(), "10/60s".into())));
}

#[test]
fn another_clients_challenge_does_not_exist_for_it() {
    let t = TestEngine::new();
    let (a, b) = (portal(&t, "portal-a"), portal(&t, "portal-b"));
    let account = t.register(PHONE);
    let issued = acting(&as_client(&a), || t.login_code(PHONE));
    let id = issued.challenge_id;
    let as_b = as_client(&b);
    acting(&as_b, || {
        assert!(matches!(
            t.engine.challenge_status(id),
            Err(EngineError::ChallengeNotFound)
        ));
        assert!(matches!(
            t.engine.resend(id, None),
            Err(EngineError::ChallengeNotFound)
        ));
        assert!(matches!(
            t.engine.verify(id, Purpose::Login, &issued.code),
            Err(EngineError::ChallengeNotFound)
        ));
        assert!(matches!(
            t.engine.confirm_contact_change(id, &issued.code),
            Err(EngineError::ChallengeNotFound)
        ));
    });
    // Nothing was counted against the challenge or the account.
    let t = t.restart();
    assert_eq!(t.view(account).code_failures, 0);
    let status = acting(&as_client(&a), || t.engine.challenge_status(id)).unwrap();
    assert_eq!(status.attempts_remaining, 3);
    assert!(
        acting(&as_b, || t.engine.challenge_status(id)).is_err(),
        "after a restart too"
    );
    let outcome = acting(&as_client(&a), || {
        t.engine
            .verify(id, Purpose::Login, &issued.code)
            .and_then(Durable::wait)
    })
    .unwrap();
    assert!(matches!(outcome, Verification::Approved(_)), "{outcome:?}");
}

#[test]
fn a_step_up_code_proves_a_change_only_for_the_client_that_asked_for_it() {
    let t = TestEngine::new();
    let (a, b) = (portal(&t, "portal-a"), portal(&t, "portal-b"));
    let account = t.register(PHONE);
    let proof = acting(&as_client(&a), || t.step_up(account));
    let by_b = acting(&as_client(&b), || {
        t.engine.change_pin(
            account,
            &Pin::new(PIN),
            proof.challenge_id,
            &proof.code,
            &Pin::new("7391"),
        )
    });
    assert!(
        matches!(by_b, Err(EngineError::ChallengeNotFound)),
        "{by_b:?}"
    );
    let by_b = acting(&as_client(&b), || {
        t.engine.begin_contact_change(
            account,
            proof.challenge_id,
            &proof.code,
            Contact::Phone(Phone::parse("+351934567890").unwrap()),
            None,
        )
    });
    assert!(
        matches!(by_b, Err(EngineError::ChallengeNotFound)),
        "{by_b:?}"
    );
    let by_a = acting(&as_client(&a), || {
        t.engine
            .change_pin(
                account,
                &Pin::new(PIN),
                proof.challenge_id,
                &proof.code,
                &Pin::new("7391"),
            )
            .and_then(Durable::wait)
    });
    assert!(matches!(by_a, Ok(PinChange::Changed)), "{by_a:?}");
}

#[test]
fn an_activation_code_by_identity_is_found_only_by_the_client_that_sent_it() {
    let t = TestEngine::new();
    let (a, b) = (portal(&t, "portal-a"), portal(&t, "portal-b"));
    let identity = identity_for(PHONE);
    let birth = BirthDate::parse("1990-05-17", START).unwrap();
    t.engine
        .pre_register(PreRegistration {
            identity: identity.clone(),
            birth_date: birth,
            phone: Some(Phone::parse(PHONE).unwrap()),
            email: None,
            postal_address: None,
            locale: None,
        })
        .and_then(Durable::wait)
        .unwrap();
    let issued = acting(&as_client(&a), || {
        t.engine
            .request_activation(&identity, birth, Channel::Sms, None)
            .and_then(Durable::wait)
    })
    .unwrap();
    for target in [
        ActivationTarget::Identity {
            identity: identity.clone(),
            birth_date: None,
        },
        ActivationTarget::Challenge {
            id: issued.challenge_id,
            birth_date: None,
        },
    ] {
        let by_b = acting(&as_client(&b), || {
            t.engine.activate(&target, &issued.code, &Pin::new("7391"))
        });
        assert!(
            matches!(
                by_b,
                Err(EngineError::ActivationNotFound | EngineError::ChallengeNotFound)
            ),
            "{by_b:?}"
        );
    }
    let by_a = acting(&as_client(&a), || {
        t.engine
            .activate(
                &ActivationTarget::Identity {
                    identity,
                    birth_date: None,
                },
                &issued.code,
                &Pin::new("7391"),
            )
            .and_then(Durable::wait)
    });
    assert!(matches!(by_a, Ok(Verification::Approved(_))), "{by_a:?}");
}

#[test]
fn a_client_gets_codes_only_for_its_purposes_and_channels_and_before_any_pin_work() {
    let t = TestEngine::new();
    let (sms_logins, _) = add(
        &t,
        NewClient {
            policy: ClientPolicy {
                purposes: Some(PurposeSet::of(&[Purpose::Login])),
                channels: Some(ChannelSet::of(&[Channel::Sms])),
                issue_rate: None,
            },
            ..NewClient::new("sms-logins", Scopes::of(&Scope::ALL))
        },
    );
    let account = t.register_full(PHONE, Some("ana@example.pt"), PIN);
    let who = as_client(&sms_logins);
    let before = event_kinds(&t).len();
    let refused = acting(&who, || {
        t.engine.login(
            &LoginId::Phone(Phone::parse(PHONE).unwrap()),
            &Pin::new(OTHER_PIN),
            Some(Channel::Email),
            None,
            None,
        )
    });
    match refused {
        Err(EngineError::NotPermitted { field, message }) => {
            assert_eq!(field, "channel");
            assert!(
                message.contains("email") && message.contains("sms-logins"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        t.view(account).pin_failures,
        0,
        "refused before the PIN was checked"
    );
    assert_eq!(event_kinds(&t).len(), before);
    match acting(&who, || t.engine.issue_step_up(account, None, None, None)) {
        Err(EngineError::NotPermitted { field, message }) => {
            assert_eq!(field, "purpose");
            assert!(message.contains("step_up"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // No channel named: the engine's choice is held to the policy too.
    let (email_only, _) = add(
        &t,
        NewClient {
            policy: ClientPolicy {
                channels: Some(ChannelSet::of(&[Channel::Email])),
                ..ClientPolicy::default()
            },
            ..NewClient::new("email-only", Scopes::of(&Scope::ALL))
        },
    );
    let phone_only = t.register("+351912345679");
    let chosen = acting(&as_client(&email_only), || {
        t.engine.issue_step_up(phone_only, None, None, None)
    });
    assert!(
        matches!(
            &chosen,
            Err(EngineError::NotPermitted {
                field: "channel",
                ..
            })
        ),
        "{chosen:?}"
    );
}

#[test]
fn a_clients_issue_rate_refuses_codes_beyond_it_and_records_the_refusal() {
    let t = TestEngine::new();
    let (limited, _) = add(
        &t,
        NewClient {
            policy: ClientPolicy {
                issue_rate: Some(Rate::per_minute(2)),
                ..ClientPolicy::default()
            },
            ..NewClient::new("limited", Scopes::of(&Scope::ALL))
        },
    );
    let other = portal(&t, "other");
    let accounts: Vec<AccountId> = (0..3)
        .map(|i| t.register(&format!("+35191234500{i}")))
        .collect();
    let who = as_client(&limited);
    for account in &accounts[..2] {
        acting(&who, || t.step_up(*account));
    }
    match acting(&who, || {
        t.engine.issue_step_up(accounts[2], None, None, None)
    }) {
        Err(EngineError::RateLimited {
            reason,
            retry_after,
            ..
        }) => {
            assert_eq!(reason, "client_issue_rate");
            assert_eq!(retry_after, Duration::from_secs(30));
        }
        other => panic!("{other:?}"),
    }
    // Another client is not held to it.
    acting(&as_client(&other), || t.step_up(accounts[2]));
    let last_refusal = event_kinds(&t)
        .into_iter()
        .rfind(|(k, _)| *k == EventKind::RateLimited)
        .unwrap();
    assert!(
        last_refusal
            .1
            .contains(&("reason".into(), "client_issue_rate".into()))
    );
    t.advance(Duration::from_secs(30));
    acting(&who, || t.step_up(accounts[2]));
}
