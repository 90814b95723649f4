//! Test clients and test destinations: fixed codes and nothing queued for
//! a test destination, test clients confined to accounts made of test
//! destinations, and refused where they are not allowed.

use engine::audit::acting;
use engine::*;

use crate::clients::{PHONE, add, as_client};
use crate::helpers::*;

const TEST_PHONE: &str = "+351910000000";
const TEST_EMAIL: &str = "dev@example.pt";

fn test_mode(t: &mut EngineConfig) {
    t.test_mode = TestMode {
        clients_allowed: true,
        destinations: [(TEST_PHONE, "123456"), (TEST_EMAIL, "654321")]
            .into_iter()
            .map(|(d, c)| (d.to_owned(), c.to_owned()))
            .collect(),
    };
}

#[test]
fn a_test_destination_gets_its_fixed_code_and_nothing_is_queued() {
    let t = TestEngine::with_config(test_mode);
    let account = t.register_full(TEST_PHONE, Some(TEST_EMAIL), PIN);
    let issued = t.login_code(TEST_PHONE);
    assert_eq!(issued.code.expose(), "123456");
    let by_email = t
        .engine
        .issue_step_up(account, Some(Channel::Email), None, None)
        .and_then(Durable::wait)
        .unwrap();
    assert_eq!(by_email.code.expose(), "654321");
    assert!(t.engine.outbox_due(10).is_empty(), "nothing for a gateway");
    let status = t.engine.challenge_status(issued.challenge_id).unwrap();
    assert_eq!(status.delivery, DeliveryState::Withheld);
    assert!(matches!(
        t.verify(issued.challenge_id, "123456"),
        Verification::Approved(_)
    ));
    // Issuance limits do not apply: nothing leaves.
    let t = TestEngine::with_config(|c| {
        test_mode(c);
        c.limits = IssueLimitsConfig::default();
    });
    t.register(TEST_PHONE);
    for _ in 0..30 {
        t.login_code(TEST_PHONE);
    }
}

#[test]
fn a_test_client_touches_only_accounts_made_of_test_destinations() {
    let t = TestEngine::with_config(test_mode);
    let (tester, _) = add(
        &t,
        NewClient {
            test: true,
            ..NewClient::new("fe-dev", Scopes::of(&[Scope::Auth, Scope::Accounts]))
        },
    );
    let real = t.register(PHONE);
    let mixed = t.register_full(TEST_PHONE, Some("ana@example.pt"), PIN);
    let who = as_client(&tester);
    let refused = |r: Result<(), EngineError>, want: &str| match r {
        Err(EngineError::NotPermitted { field, message }) => {
            assert_eq!(field, want, "{message}");
            assert!(
                message.contains("fe-dev") && message.contains("test"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    };
    acting(&who, || {
        refused(t.engine.account(real).map(|_| ()), "account_id");
        refused(t.engine.account(mixed).map(|_| ()), "account_id");
        refused(
            t.engine.issue_step_up(real, None, None, None).map(|_| ()),
            "account_id",
        );
        refused(t.engine.cancel(real).map(|_| ()), "account_id");
        refused(
            t.engine
                .login(
                    &LoginId::Phone(Phone::parse(PHONE).unwrap()),
                    &Pin::new(PIN),
                    None,
                    None,
                    None,
                )
                .map(|_| ()),
            "phone",
        );
        refused(
            t.engine
                .register(NewAccount {
                    identity: identity_for("+351910000077"),
                    phone: Some(Phone::parse(TEST_PHONE).unwrap()),
                    email: Some(Email::parse("ana2@example.pt").unwrap()),
                    pin: Pin::new(PIN),
                    birth_date: None,
                    postal_address: None,
                    dm: None,
                    locale: None,
                })
                .map(|_| ()),
            "email",
        );
    });
    assert_eq!(t.view(real).state, AccountState::Active, "untouched");
    // Its own test account works end to end, with the fixed code.
    let t2 = TestEngine::with_config(test_mode);
    let (tester, _) = add(
        &t2,
        NewClient {
            test: true,
            ..NewClient::new("fe-dev", Scopes::of(&[Scope::Auth, Scope::Accounts]))
        },
    );
    let outcome = acting(&as_client(&tester), || {
        let account = t2.register_full(TEST_PHONE, Some(TEST_EMAIL), PIN);
        let issued = t2.login_code(TEST_PHONE);
        assert_eq!(t2.view(account).phone.unwrap().as_str(), TEST_PHONE);
        t2.verify(issued.challenge_id, "123456")
    });
    assert!(matches!(outcome, Verification::Approved(_)), "{outcome:?}");
}

#[test]
fn test_clients_are_refused_where_not_allowed_and_never_hold_admin() {
    let t = TestEngine::new();
    match t.engine.add_client_with(NewClient {
        test: true,
        ..NewClient::new("fe-dev", Scopes::of(&[Scope::Auth]))
    }) {
        Err(EngineError::NotPermitted { field, .. }) => assert_eq!(field, "test"),
        other => panic!("{other:?}"),
    }
    let t = TestEngine::with_config(test_mode);
    for scope in [Scope::Admin, Scope::Audit] {
        assert!(matches!(
            t.engine.add_client_with(NewClient {
                test: true,
                ..NewClient::new("fe-dev", Scopes::of(&[Scope::Auth, scope]))
            }),
            Err(EngineError::Invalid {
                field: "scopes",
                ..
            })
        ));
    }
    add(
        &t,
        NewClient {
            test: true,
            ..NewClient::new("fe-dev", Scopes::of(&[Scope::Auth]))
        },
    );
    assert_eq!(t.engine.test_clients(), ["fe-dev"]);
    assert!(matches!(
        t.engine.update_client(
            "fe-dev",
            ClientUpdate {
                scopes: Some(Scopes::of(&[Scope::Admin])),
                ..ClientUpdate::default()
            }
        ),
        Err(EngineError::Invalid {
            field: "scopes",
            ..
        })
    ));
    t.engine
        .revoke_client("fe-dev")
        .and_then(Durable::wait)
        .unwrap();
    assert!(t.engine.test_clients().is_empty());
}
